//! The generated captures, one function each. pcaps/README.md tells the story of each.
//!
//! Conventions: the client is 10.20.1.5 (engineering station) on a port of its own per
//! capture, the server 10.30.1.10:502 (plc-boiler-1), unit 1; ISNs are fixed; every
//! capture starts at 2026-11-20T10:00:00Z ([`T0`]).

use std::net::Ipv4Addr;

use super::modbus::{self as mb, fc, umas, Adu};
use super::tcp::{Capture, Conn, Side, MS, SEC, T0};
use super::wire::{Host, ACK, PSH};

/// A generated capture: its path under `pcaps/` (without extension) and its builder.
pub type Case = (&'static str, fn() -> anyhow::Result<Capture>);

/// Every capture `gen_pcaps` writes.
pub const CASES: &[Case] = &[
    ("modbus/polling", polling),
    ("modbus/writes", writes),
    ("modbus/split_adu", split_adu),
    ("modbus/two_adus_one_segment", two_adus_one_segment),
    ("modbus/retransmission", retransmission),
    ("modbus/out_of_order", out_of_order),
    ("modbus/midstream", midstream),
    ("modbus/exception", exception),
    ("modbus/garbage", garbage),
    ("modbus/diagnostics", diagnostics),
    ("modbus/umas", umas_transfer),
    ("demo-plant", demo_plant),
];

const UNIT: u8 = 1;

fn ews() -> Host {
    Host::new(Ipv4Addr::new(10, 20, 1, 5), 128)
}
fn plc() -> Host {
    Host::new(Ipv4Addr::new(10, 30, 1, 10), 64)
}
fn hmi() -> Host {
    Host::new(Ipv4Addr::new(10, 40, 1, 11), 128)
}
fn unknown_host() -> Host {
    Host::new(Ipv4Addr::new(10, 0, 5, 99), 64)
}

/// A connection from the engineering station to the PLC, handshake done at [`T0`].
fn ews_conn(cap: &mut Capture, port: u16, client_isn: u32, server_isn: u32) -> Conn {
    let mut c = Conn::new(ews(), port, plc(), 502, client_isn, server_isn);
    c.handshake(cap, T0);
    c
}

/// Ten holding registers of the boiler's process image: temperatures in tenths of a
/// degree, pressures in mbar, a status word; `k` makes them drift a little per poll.
fn process_values(k: u64) -> Vec<u16> {
    let d = (k * 7 % 13) as u16;
    vec![
        742 + d,
        738 + d / 2,
        1_013 + d,
        2_150 - d,
        61,
        0x0005,
        1_450 + 3 * d,
        12,
        0,
        100 - d,
    ]
}

fn bits(pattern: &[u8]) -> Vec<bool> {
    pattern.iter().map(|&b| b != 0).collect()
}

/// 1: normal polling (FC3, FC4, FC1, FC2) in two cycles a second apart, the client
/// acknowledging each response, then a FIN close.
fn polling() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49801, 0x1a2b_3c4d, 0x5e6f_7081);
    let mut tid = 1;
    for cycle in 0..2u64 {
        let mut t = T0 + cycle * SEC + 2 * MS;
        let coils = bits(&[1, 1, 0, 1, 0, 0, 0, 0, 1, cycle as u8]);
        let inputs = bits(&[1, 0, 1, 1, 1 - cycle as u8]);
        let reqs = [
            mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 10),
            mb::read_regs(fc::READ_INPUT_REGISTERS, tid + 1, UNIT, 0, 4),
            mb::read_bits(fc::READ_COILS, tid + 2, UNIT, 0, 10),
            mb::read_bits(fc::READ_DISCRETE_INPUTS, tid + 3, UNIT, 16, 5),
        ];
        let [hr, ir, co, di] = &reqs;
        let rsps = [
            mb::read_regs_rsp(hr, &process_values(cycle)),
            mb::read_regs_rsp(ir, &[215, 3_080 + cycle as u16, 0, 65_535]),
            mb::read_bits_rsp(co, &coils),
            mb::read_bits_rsp(di, &inputs),
        ];
        for (req, rsp) in reqs.iter().zip(&rsps) {
            c.exchange(&mut cap, t, 2_500, req, rsp);
            c.ack(&mut cap, t + 42 * MS, Side::Client);
            t += 100 * MS;
        }
        tid += 4;
    }
    c.close(&mut cap, T0 + 2 * SEC);
    Ok(cap)
}

/// 2: every write function, each answered normally.
fn writes() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49802, 0x2b3c_4d5e, 0x6f70_8192);
    let reqs = [
        mb::write_single_coil(1, UNIT, 3, true),
        mb::write_single_reg(2, UNIT, 101, 450),
        mb::write_multi_coils(3, UNIT, 19, &bits(&[1, 0, 1, 1, 0, 0, 1, 1, 1, 0])),
        mb::write_multi_regs(4, UNIT, 200, &[1_200, 1_350, 17]),
        mb::mask_write(5, UNIT, 4, 0x00f2, 0x0025),
        mb::read_write_regs(6, UNIT, 0, 6, 14, &[0x00ff, 0x00ff, 0x00ff]),
    ];
    let mut t = T0 + 5 * MS;
    for req in &reqs {
        let rsp = match req.pdu.function_code {
            fc::WRITE_MULTIPLE_COILS | fc::WRITE_MULTIPLE_REGISTERS => mb::write_multi_rsp(req),
            fc::READ_WRITE_MULTIPLE_REGISTERS => {
                mb::read_write_regs_rsp(req, &[742, 738, 1_013, 2_150, 61, 0x0005])
            }
            _ => mb::echo(req),
        };
        c.exchange(&mut cap, t, 3 * MS, req, &rsp);
        t += 200 * MS;
    }
    c.close(&mut cap, t);
    Ok(cap)
}

/// 3: a normal exchange, then an FC16 request split across three segments (8, 6 and 7
/// bytes: the PDU is complete with the third), its response in one segment; then an
/// FC6 request split 5/4/3 (inside the MBAP header), its response in one segment.
fn split_adu() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49803, 0x3c4d_5e6f, 0x7081_92a3);
    let r1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 100, 4);
    c.exchange(
        &mut cap,
        T0 + 5 * MS,
        3 * MS,
        &r1,
        &mb::read_regs_rsp(&r1, &[75, 60, 45, 30]),
    );
    let req = mb::write_multi_regs(2, UNIT, 100, &[80, 85, 90, 95]);
    let t = T0 + 200 * MS;
    // 21 bytes: [0..5) ends inside the MBAP header, [5..12) inside the PDU header.
    c.send(&mut cap, t, Side::Client, &req.bytes[..8], vec![]);
    c.send(&mut cap, t + 800, Side::Client, &req.bytes[8..14], vec![]);
    c.send(
        &mut cap,
        t + 1_600,
        Side::Client,
        &req.bytes[14..],
        vec![req.pdu.clone()],
    );
    c.send_adu(&mut cap, t + 4 * MS, &mb::write_multi_rsp(&req));
    // A second request split inside its MBAP header (tshark 4.0 cannot reassemble this
    // one: it needs 8 bytes in the first segment to recognise Modbus/TCP).
    let req = mb::write_single_reg(3, UNIT, 101, 55);
    let t = T0 + 400 * MS;
    c.send(&mut cap, t, Side::Client, &req.bytes[..5], vec![]);
    c.send(&mut cap, t + 700, Side::Client, &req.bytes[5..9], vec![]);
    c.send(
        &mut cap,
        t + 1_400,
        Side::Client,
        &req.bytes[9..],
        vec![req.pdu.clone()],
    );
    c.send_adu(&mut cap, t + 4 * MS, &mb::echo(&req));
    c.close(&mut cap, T0 + 600 * MS);
    Ok(cap)
}

/// 4: two requests in one segment, both responses in one segment.
fn two_adus_one_segment() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49804, 0x4d5e_6f70, 0x8192_a3b4);
    let q1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 0, 10);
    let q2 = mb::read_regs(fc::READ_INPUT_REGISTERS, 2, UNIT, 0, 4);
    let a1 = mb::read_regs_rsp(&q1, &process_values(0));
    let a2 = mb::read_regs_rsp(&q2, &[215, 3_080, 0, 65_535]);
    let t = T0 + 5 * MS;
    c.send(
        &mut cap,
        t,
        Side::Client,
        &[q1.bytes.as_slice(), &q2.bytes].concat(),
        vec![q1.pdu.clone(), q2.pdu.clone()],
    );
    c.send(
        &mut cap,
        t + 4 * MS,
        Side::Server,
        &[a1.bytes.as_slice(), &a2.bytes].concat(),
        vec![a1.pdu.clone(), a2.pdu.clone()],
    );
    c.close(&mut cap, t + 300 * MS);
    Ok(cap)
}

/// 5: a request retransmitted whole (same sequence number and bytes), then a request
/// whose tail is retransmitted together with the next request (a partial overlap).
fn retransmission() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49805, 0x5e6f_7081, 0x92a3_b4c5);
    // Exact retransmission.
    let q1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 0, 10);
    let t = T0 + 5 * MS;
    let seq = c.next_seq(Side::Client);
    c.send_adu(&mut cap, t, &q1);
    let again = c.frame(Side::Client, seq, PSH | ACK, &q1.bytes);
    cap.push(t + 200 * MS, again, &c.flow, vec![]);
    c.send_adu(
        &mut cap,
        t + 203 * MS,
        &mb::read_regs_rsp(&q1, &process_values(1)),
    );
    // Partial overlap: bytes 6.. of q2 again, followed by the new request q3.
    let q2 = mb::write_single_reg(2, UNIT, 100, 80);
    let q3 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 3, UNIT, 100, 1);
    let t = T0 + 500 * MS;
    let seq = c.next_seq(Side::Client);
    c.send_adu(&mut cap, t, &q2);
    let overlap = [&q2.bytes[6..], q3.bytes.as_slice()].concat();
    let f = c.frame(Side::Client, seq.wrapping_add(6), PSH | ACK, &overlap);
    c.advance(Side::Client, q3.bytes.len());
    cap.push(t + 200 * MS, f, &c.flow, vec![q3.pdu.clone()]);
    c.send_adu(&mut cap, t + 202 * MS, &mb::echo(&q2));
    c.send_adu(&mut cap, t + 204 * MS, &mb::read_regs_rsp(&q3, &[80]));
    c.close(&mut cap, T0 + SEC);
    Ok(cap)
}

/// 6: two pipelined requests captured in reverse order, then the two halves of one
/// request captured in reverse order.
fn out_of_order() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49806, 0x6f70_8192, 0xa3b4_c5d6);
    let q1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 0, 10);
    let q2 = mb::read_regs(fc::READ_INPUT_REGISTERS, 2, UNIT, 0, 4);
    let s = c.next_seq(Side::Client);
    let f1 = c.frame(Side::Client, s, PSH | ACK, &q1.bytes);
    let f2 = c.frame(
        Side::Client,
        s.wrapping_add(q1.bytes.len() as u32),
        PSH | ACK,
        &q2.bytes,
    );
    c.advance(Side::Client, q1.bytes.len() + q2.bytes.len());
    let t = T0 + 5 * MS;
    cap.push(t, f2, &c.flow, vec![]);
    // The first segment fills the hole: both requests complete here, in stream order.
    cap.push(t + 150, f1, &c.flow, vec![q1.pdu.clone(), q2.pdu.clone()]);
    c.send_adu(
        &mut cap,
        t + 3 * MS,
        &mb::read_regs_rsp(&q1, &process_values(2)),
    );
    c.send_adu(
        &mut cap,
        t + 4 * MS,
        &mb::read_regs_rsp(&q2, &[215, 3_081, 0, 65_535]),
    );

    let q3 = mb::write_multi_regs(3, UNIT, 100, &[81, 82, 83, 84, 85]);
    let s = c.next_seq(Side::Client);
    let head = c.frame(Side::Client, s, PSH | ACK, &q3.bytes[..11]);
    let tail = c.frame(Side::Client, s.wrapping_add(11), PSH | ACK, &q3.bytes[11..]);
    c.advance(Side::Client, q3.bytes.len());
    let t = T0 + 300 * MS;
    cap.push(t, tail, &c.flow, vec![]);
    cap.push(t + 200, head, &c.flow, vec![q3.pdu.clone()]);
    c.send_adu(&mut cap, t + 3 * MS, &mb::write_multi_rsp(&q3));
    c.close(&mut cap, T0 + SEC);
    Ok(cap)
}

/// 7: the sensor joins mid-connection: no handshake, the first packet is a response
/// whose request was not captured; three normal pairs follow; no close.
fn midstream() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = Conn::new(ews(), 51234, plc(), 502, 0x7f3a_9c01, 0x0bad_1dea);
    let unseen = mb::read_regs(fc::READ_HOLDING_REGISTERS, 0x0107, UNIT, 0, 10);
    let mut first = mb::read_regs_rsp(&unseen, &process_values(3));
    // Nobody saw the request: the response's address cannot be known.
    first.pdu.address = None;
    c.send_adu(&mut cap, T0, &first);
    let mut t = T0 + 250 * MS;
    for (i, tid) in (0x0108..0x010b).enumerate() {
        let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 10);
        let a = mb::read_regs_rsp(&q, &process_values(4 + i as u64));
        c.exchange(&mut cap, t, 2 * MS, &q, &a);
        t += 250 * MS;
    }
    Ok(cap)
}

/// 8: a normal read, a read of an address the PLC lacks (0x83, illegal data address)
/// and a write the PLC fails (0x86, server device failure).
fn exception() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49808, 0x8192_a3b4, 0xc5d6_e7f8);
    let q1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 0, 10);
    c.exchange(
        &mut cap,
        T0 + 5 * MS,
        3 * MS,
        &q1,
        &mb::read_regs_rsp(&q1, &process_values(5)),
    );
    let q2 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 2, UNIT, 9_000, 10);
    c.exchange(
        &mut cap,
        T0 + 200 * MS,
        3 * MS,
        &q2,
        &mb::exception(&q2, 0x02),
    );
    let q3 = mb::write_single_reg(3, UNIT, 100, 80);
    c.exchange(
        &mut cap,
        T0 + 400 * MS,
        3 * MS,
        &q3,
        &mb::exception(&q3, 0x04),
    );
    c.close(&mut cap, T0 + 600 * MS);
    Ok(cap)
}

/// Bytes with no zero byte, so that no offset inside them looks like an MBAP header
/// with a legal length (any length field read there is at least 0x0100).
const GARBAGE: &[u8] = b"GET / HTTP/1.1\r\nHost: 10.30.1.10\r\nUser-Agent: probe\r\n\r\n";

/// 9: a valid exchange, a segment of garbage on the Modbus stream, a valid exchange.
/// The transaction ids (0x2301, 0x2302) are above 0x00ff so that an MBAP header read
/// four bytes before the second request (garbage + its transaction id as length) has
/// an illegal length too.
fn garbage() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49809, 0x92a3_b4c5, 0xd6e7_f809);
    let q1 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 0x2301, UNIT, 0, 10);
    c.exchange(
        &mut cap,
        T0 + 5 * MS,
        3 * MS,
        &q1,
        &mb::read_regs_rsp(&q1, &process_values(6)),
    );
    c.send(&mut cap, T0 + 200 * MS, Side::Client, GARBAGE, vec![]);
    let q2 = mb::read_regs(fc::READ_HOLDING_REGISTERS, 0x2302, UNIT, 100, 2);
    c.exchange(
        &mut cap,
        T0 + 400 * MS,
        3 * MS,
        &q2,
        &mb::read_regs_rsp(&q2, &[75, 60]),
    );
    c.close(&mut cap, T0 + 600 * MS);
    Ok(cap)
}

/// 10: diagnostics and identification: FC8/00 echo, FC8/01 restart communications,
/// FC17 report server id, FC43/14 read device identification, and last FC8/04 force
/// listen only, which the server never answers (spec 6.8.1).
fn diagnostics() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49810, 0xa3b4_c5d6, 0xe7f8_091a);
    let echo = mb::diagnostics(1, UNIT, 0x0000, 0xa537);
    c.exchange(&mut cap, T0 + 5 * MS, 2 * MS, &echo, &mb::echo(&echo));
    let restart = mb::diagnostics(2, UNIT, 0x0001, 0x0000);
    c.exchange(
        &mut cap,
        T0 + 200 * MS,
        2 * MS,
        &restart,
        &mb::echo(&restart),
    );
    let id = mb::report_server_id(3, UNIT);
    let id_rsp = mb::report_server_id_rsp(&id, 0x0a, true, b"BMX P34 2020");
    c.exchange(&mut cap, T0 + 400 * MS, 2 * MS, &id, &id_rsp);
    let dev = mb::read_device_id(4, UNIT, 0x01, 0x00);
    let dev_rsp = mb::read_device_id_rsp(
        &dev,
        0x01,
        &[(0, "Schneider Electric"), (1, "BMX P34 2020"), (2, "v3.20")],
    );
    c.exchange(&mut cap, T0 + 600 * MS, 3 * MS, &dev, &dev_rsp);
    let listen = mb::diagnostics(5, UNIT, 0x0004, 0x0000);
    c.send_adu(&mut cap, T0 + 800 * MS, &listen);
    c.ack(&mut cap, T0 + 840 * MS, Side::Server);
    c.close(&mut cap, T0 + 2 * SEC);
    Ok(cap)
}

/// A deterministic "program block" of `len` bytes.
pub(super) fn block(n: u16, len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491u32 ^ u32::from(n);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// One UMAS request answered 0xFE `4 ms` later; the next step starts 60 ms on.
fn umas_step(c: &mut Conn, cap: &mut Capture, t: &mut u64, req: Adu, rsp_data: &[u8]) {
    let rsp = mb::umas_rsp(&req, umas::STATUS_OK, rsp_data);
    c.exchange(cap, *t, 4 * MS, &req, &rsp);
    *t += 60 * MS;
}

/// The UMAS session of a strategy (program) transfer to the PLC, starting at `t`:
/// reserve, stop, initialize upload, three blocks, end, start, release. Unit 0, as
/// Unity/EcoStruxure uses.
fn umas_session(c: &mut Conn, cap: &mut Capture, mut t: u64, first_tid: u16) -> u64 {
    const KEY: u8 = 0x8c;
    let mut tid = first_tid;
    let mut next = || {
        tid += 1;
        tid - 1
    };
    // Take reservation: session key 0 in the request, the new key in the response.
    let mut reserve = vec![0x00, 0x00, 0x05];
    reserve.extend_from_slice(b"EWS-1");
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, 0x00, umas::TAKE_PLC_RESERVATION, &reserve),
        &[KEY],
    );
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::STOP_PLC, &[0xff, 0x00]),
        &[],
    );
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::INITIALIZE_UPLOAD, &[0x00, 0x01]),
        &[0x00, 0x04, 0x00, 0x00],
    );
    for n in 1..=3u16 {
        let data = block(n, 200);
        let mut d = Vec::with_capacity(4 + data.len());
        d.extend_from_slice(&n.to_le_bytes());
        d.extend_from_slice(&(data.len() as u16).to_le_bytes());
        d.extend_from_slice(&data);
        umas_step(
            c,
            cap,
            &mut t,
            mb::umas_req(next(), 0, KEY, umas::UPLOAD_BLOCK, &d),
            &[],
        );
    }
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::END_STRATEGY_UPLOAD, &[0x03, 0x00]),
        &[],
    );
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::START_PLC, &[0xff, 0x00]),
        &[],
    );
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::RELEASE_PLC_RESERVATION, &[]),
        &[],
    );
    t
}

/// 11: UMAS strategy transfer to the PLC with start/stop, every step answered 0xFE.
fn umas_transfer() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = ews_conn(&mut cap, 49811, 0xb4c5_d6e7, 0xf809_1a2b);
    let t = umas_session(&mut c, &mut cap, T0 + 5 * MS, 1);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// The setpoint block 100..=109 of plc-boiler-1 as the HMI reads it at time `t`: the
/// writes of the demo story take effect when they are answered.
fn setpoints_at(t: u64) -> Vec<u16> {
    let mut regs = vec![75, 60, 45, 30, 1, 0, 0, 0, 0, 0];
    if t > DEMO_WRITE_80 {
        regs[0] = 80;
    }
    if t > DEMO_WRITE_120 {
        regs[0] = 120;
    }
    if t > DEMO_UNKNOWN_WRITE {
        // FC16 over 98..=103 from the unknown host: registers 100..=103.
        regs[..4].copy_from_slice(&UNKNOWN_VALUES[2..]);
    }
    regs
}

const DEMO_INWINDOW: u64 = T0 + 40 * SEC + 250 * MS;
const DEMO_WRITE_80: u64 = T0 + 90 * SEC + 412 * MS;
const DEMO_UMAS: u64 = T0 + 190 * SEC + 250 * MS;
/// The out-of-window session starts the PLC again 75 s after connecting.
const DEMO_UMAS_START: u64 = DEMO_UMAS + 75 * SEC;
const DEMO_WRITE_120: u64 = T0 + 340 * SEC + 730 * MS;
const DEMO_UNKNOWN_WRITE: u64 = T0 + 435 * SEC + 118 * MS;
const UNKNOWN_VALUES: [u16; 6] = [1, 1, 130, 90, 90, 90];
const DEMO_OUT_OF_WINDOW_PORT: u16 = 50322;
const DEMO_WRITE_120_PORT: u16 = 50323;
const DEMO_UNKNOWN_PORT: u16 = 41872;

/// When the packets of the demo story that raise alerts were sent, and on which
/// client ports (for `rules::demo_alerts`).
#[derive(Debug, Clone, Copy)]
pub struct DemoTimes {
    pub out_of_window_port: u16,
    pub write_120_port: u16,
    pub unknown_port: u16,
    /// UMAS stop PLC of the out-of-window session.
    pub stop: u64,
    /// Its initialize-upload request: the session's first program_download PDU.
    pub initialize: u64,
    /// UMAS start PLC of that session.
    pub start: u64,
    /// ews-1's FC6 of 120 (the request).
    pub write_120: u64,
    /// The unknown host's SYN, its first request (FC3) and its FC16.
    pub unknown_syn: u64,
    pub unknown_read: u64,
    pub unknown_write: u64,
}

pub fn demo_times() -> DemoTimes {
    DemoTimes {
        out_of_window_port: DEMO_OUT_OF_WINDOW_PORT,
        write_120_port: DEMO_WRITE_120_PORT,
        unknown_port: DEMO_UNKNOWN_PORT,
        stop: DEMO_UMAS + 70 * MS,
        initialize: DEMO_UMAS + 130 * MS,
        start: DEMO_UMAS_START,
        write_120: DEMO_WRITE_120 - 3 * MS,
        unknown_syn: DEMO_UNKNOWN_WRITE - 900 * MS,
        unknown_read: DEMO_UNKNOWN_WRITE - 800 * MS,
        unknown_write: DEMO_UNKNOWN_WRITE - 4 * MS,
    }
}

/// A strategy transfer to the PLC as the demo's engineering station does it, on `c`
/// from `t`: reserve, [stop], initialize upload, three blocks of 200 bytes, end,
/// [start at `start_at`], release; each step 60 ms after the previous one. Returns the
/// time after the last step.
fn demo_transfer(c: &mut Conn, cap: &mut Capture, mut t: u64, start_at: Option<u64>) -> u64 {
    const KEY: u8 = 0x8c;
    let mut tid = 1u16;
    let mut next = || {
        tid += 1;
        tid - 1
    };
    let mut reserve = vec![0x00, 0x00, 0x05];
    reserve.extend_from_slice(b"EWS-1");
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, 0x00, umas::TAKE_PLC_RESERVATION, &reserve),
        &[KEY],
    );
    if start_at.is_some() {
        umas_step(
            c,
            cap,
            &mut t,
            mb::umas_req(next(), 0, KEY, umas::STOP_PLC, &[0xff, 0x00]),
            &[],
        );
    }
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::INITIALIZE_UPLOAD, &[0x00, 0x01]),
        &[0x00, 0x04, 0x00, 0x00],
    );
    for n in 1..=3u16 {
        let data = block(n, 200);
        let mut d = Vec::with_capacity(4 + data.len());
        d.extend_from_slice(&n.to_le_bytes());
        d.extend_from_slice(&(data.len() as u16).to_le_bytes());
        d.extend_from_slice(&data);
        umas_step(
            c,
            cap,
            &mut t,
            mb::umas_req(next(), 0, KEY, umas::UPLOAD_BLOCK, &d),
            &[],
        );
    }
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::END_STRATEGY_UPLOAD, &[0x03, 0x00]),
        &[],
    );
    if let Some(start) = start_at {
        t = t.max(start);
        umas_step(
            c,
            cap,
            &mut t,
            mb::umas_req(next(), 0, KEY, umas::START_PLC, &[0xff, 0x00]),
            &[],
        );
    }
    umas_step(
        c,
        cap,
        &mut t,
        mb::umas_req(next(), 0, KEY, umas::RELEASE_PLC_RESERVATION, &[]),
        &[],
    );
    t
}

/// The demo plant (pcaps/README.md): hmi-1 polls plc-boiler-1 every 5 s for ten
/// minutes; ews-1 downloads a program inside the change window CHG-4711 (09:00-10:02
/// UTC, rules/demo-plant.toml) and writes the boiler setpoint (80); then ews-1
/// downloads again after the window with a stop and start of the PLC, writes the
/// setpoint out of range (120), and an unknown host in the enterprise zone writes
/// registers 98..=103.
fn demo_plant() -> anyhow::Result<Capture> {
    // hmi-1: one long connection, two reads per poll.
    let mut hmi_cap = Capture::new();
    let mut h = Conn::new(hmi(), 50110, plc(), 502, 0x0c1d_2e3f, 0x4a5b_6c7d);
    h.handshake(&mut hmi_cap, T0 + 500 * MS);
    let mut tid = 1u16;
    for k in 0..120u64 {
        let t = T0 + SEC + k * 5 * SEC;
        let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 10);
        h.exchange(
            &mut hmi_cap,
            t,
            3 * MS,
            &q,
            &mb::read_regs_rsp(&q, &process_values(k)),
        );
        let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, tid + 1, UNIT, 100, 10);
        let sp = setpoints_at(t + 20 * MS);
        h.exchange(
            &mut hmi_cap,
            t + 20 * MS,
            3 * MS,
            &q,
            &mb::read_regs_rsp(&q, &sp),
        );
        tid = tid.wrapping_add(2);
    }
    h.close(&mut hmi_cap, T0 + 599 * SEC + 500 * MS);

    // ews-1 downloads the planned logic update inside the change window (no stop or
    // start: a mode change alerts even inside a window).
    let mut dl1 = Capture::new();
    let mut c = Conn::new(ews(), 50320, plc(), 502, 0x0e1f_2a3b, 0x5c6d_7e8f);
    c.handshake(&mut dl1, DEMO_INWINDOW);
    let t = demo_transfer(&mut c, &mut dl1, DEMO_INWINDOW + 10 * MS, None);
    c.close(&mut dl1, t + 100 * MS);

    // ews-1 sets the boiler setpoint to 80 (allowed, in range), reading it before and
    // after.
    let mut w1 = Capture::new();
    let mut c = Conn::new(ews(), 50321, plc(), 502, 0x1d2e_3f40, 0x5b6c_7d8e);
    let t = DEMO_WRITE_80 - 40 * MS;
    c.handshake(&mut w1, t);
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 100, 1);
    c.exchange(
        &mut w1,
        t + 10 * MS,
        3 * MS,
        &q,
        &mb::read_regs_rsp(&q, &[75]),
    );
    let q = mb::write_single_reg(2, UNIT, 100, 80);
    c.exchange(&mut w1, DEMO_WRITE_80 - 3 * MS, 3 * MS, &q, &mb::echo(&q));
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, 3, UNIT, 100, 1);
    c.exchange(
        &mut w1,
        DEMO_WRITE_80 + 30 * MS,
        3 * MS,
        &q,
        &mb::read_regs_rsp(&q, &[80]),
    );
    c.close(&mut w1, DEMO_WRITE_80 + 150 * MS);

    // ews-1 downloads again after the window has closed, stopping the PLC and
    // starting it 75 s later.
    let mut dl2 = Capture::new();
    let mut c = Conn::new(
        ews(),
        DEMO_OUT_OF_WINDOW_PORT,
        plc(),
        502,
        0x2e3f_4051,
        0x6c7d_8e9f,
    );
    c.handshake(&mut dl2, DEMO_UMAS);
    let t = demo_transfer(&mut c, &mut dl2, DEMO_UMAS + 10 * MS, Some(DEMO_UMAS_START));
    c.close(&mut dl2, t + 100 * MS);

    // ews-1 sets the setpoint to 120: an allowed writer, a value out of range.
    let mut w2 = Capture::new();
    let mut c = Conn::new(
        ews(),
        DEMO_WRITE_120_PORT,
        plc(),
        502,
        0x3f40_5162,
        0x7d8e_9fa0,
    );
    c.handshake(&mut w2, DEMO_WRITE_120 - 20 * MS);
    let q = mb::write_single_reg(1, UNIT, 100, 120);
    c.exchange(&mut w2, DEMO_WRITE_120 - 3 * MS, 3 * MS, &q, &mb::echo(&q));
    c.close(&mut w2, DEMO_WRITE_120 + 100 * MS);

    // An unknown host reads around the setpoints, then writes 98..=103.
    let mut un = Capture::new();
    let mut c = Conn::new(
        unknown_host(),
        DEMO_UNKNOWN_PORT,
        plc(),
        502,
        0x4051_6273,
        0x8e9f_a0b1,
    );
    c.handshake(&mut un, DEMO_UNKNOWN_WRITE - 900 * MS);
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, 1, UNIT, 90, 20);
    let mut seen = vec![0u16; 10];
    seen.extend_from_slice(&setpoints_at(DEMO_UNKNOWN_WRITE - 800 * MS));
    c.exchange(
        &mut un,
        DEMO_UNKNOWN_WRITE - 800 * MS,
        4 * MS,
        &q,
        &mb::read_regs_rsp(&q, &seen),
    );
    let q = mb::write_multi_regs(2, UNIT, 98, &UNKNOWN_VALUES);
    c.exchange(
        &mut un,
        DEMO_UNKNOWN_WRITE - 4 * MS,
        4 * MS,
        &q,
        &mb::write_multi_rsp(&q),
    );
    c.close(&mut un, DEMO_UNKNOWN_WRITE + 200 * MS);

    Capture::merge(vec![hmi_cap, dl1, w1, dl2, w2, un])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setpoint_story() {
        assert_eq!(setpoints_at(T0)[0], 75);
        assert_eq!(setpoints_at(DEMO_WRITE_80 + 1)[0], 80);
        assert_eq!(setpoints_at(DEMO_WRITE_120 + 1)[0], 120);
        assert_eq!(
            &setpoints_at(DEMO_UNKNOWN_WRITE + 1)[..4],
            &[130, 90, 90, 90]
        );
    }

    #[test]
    fn every_case_builds_with_increasing_times() {
        for (name, build) in CASES {
            let cap = build().unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(cap.len() >= 4, "{name}");
            cap.check_times()
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }
}
