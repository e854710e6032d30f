//! The generated DNP3 captures (`pcaps/dnp3/`), one function each.
//! pcaps/README.md tells the story of each.
//!
//! Conventions: the master is 10.20.1.5 (ews-1) with link address 1, on a port of its
//! own per capture; the outstation is 10.30.1.10:20000 (plc-boiler-1) with link
//! address 10. Over TCP every capture starts at 2026-11-20T10:00:00Z ([`T0`]) with the
//! handshake (the master connects), the first request at +5 ms, answers 4 ms after
//! their request, and ends with a FIN close. Each application fragment travels in one
//! segment unless the capture says otherwise.

use std::net::Ipv4Addr;

use super::dnp3::{self, crob, file_mode, iin, Apdu, Carrier, Session};
use super::tcp::{Capture, Conn, UdpConv, MS, SEC, T0};
use super::wire::Host;

/// A generated capture: its path under `pcaps/` (without extension) and its builder.
pub type Case = (&'static str, fn() -> anyhow::Result<Capture>);

/// Every DNP3 capture `gen_pcaps` writes.
pub const CASES: &[Case] = &[
    ("dnp3/read_tcp", read_tcp),
    ("dnp3/direct_operate_analog", direct_operate_analog),
    ("dnp3/select_operate_crob", select_operate_crob),
    ("dnp3/cold_restart", cold_restart),
    ("dnp3/file_write", file_write),
    ("dnp3/write_time", write_time),
    ("dnp3/udp_read", udp_read),
    ("dnp3/split_frame", split_frame),
    ("dnp3/bad_crc", bad_crc),
];

/// Link addresses of the master and of the outstation.
pub const MASTER: u16 = 1;
pub const OUTSTATION: u16 = 10;

fn master() -> Host {
    Host::new(Ipv4Addr::new(10, 20, 1, 5), 128)
}
fn outstation() -> Host {
    Host::new(Ipv4Addr::new(10, 30, 1, 10), 64)
}

/// A TCP connection from the master's `port`, handshake at [`T0`], and its session.
fn tcp_session(cap: &mut Capture, port: u16, client_isn: u32, server_isn: u32) -> (Conn, Session) {
    let mut c = Conn::new(
        master(),
        port,
        outstation(),
        dnp3::PORT,
        client_isn,
        server_isn,
    );
    c.handshake(cap, T0);
    (c, Session::new(MASTER, OUTSTATION))
}

const RTT: u64 = 4 * MS;

/// The plant's analog inputs: 80 16-bit values (a temperature profile), and 8 binary
/// inputs.
fn analogs() -> Vec<i16> {
    (0..80).map(|i| 200 + 3 * i - (i % 7) * 11).collect()
}
const BINARIES: [bool; 8] = [true, false, true, true, false, false, true, false];

/// 1: class 0 READ (g60v1) answered by 80 g30v2 analog inputs (range 0-79, 2-octet
/// range) and 8 g1v2 binary inputs (range 0-7): 264 application octets, two transport
/// segments, each link frame in its own TCP segment 1 ms apart; the same poll 1 s later
/// with both link frames in one TCP segment.
fn read_tcp() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49801, 0x1a2b_3c4d, 0x5e6f_7081);
    let mut t = T0 + 5 * MS;
    let req = dnp3::read_class0(s.next_seq());
    let rsp = dnp3::static_response(&req, iin::NONE, &analogs(), &BINARIES);
    s.send(&mut c, &mut cap, t, &req);
    s.send_frames_apart(&mut c, &mut cap, t + RTT, MS, &rsp);
    t += SEC;
    let req = dnp3::read_class0(s.next_seq());
    let rsp = dnp3::static_response(&req, iin::NONE, &analogs(), &BINARIES);
    s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// 2: DIRECT OPERATE of analog output 1 (g41v2, qualifier 0x17) to 480, echoed with
/// status 0.
fn direct_operate_analog() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49802, 0x2b3c_4d5e, 0x6f70_8192);
    let t = T0 + 5 * MS;
    let req = dnp3::direct_operate_analog(s.next_seq(), 1, 480);
    let rsp = dnp3::control_echo(&req, iin::NONE);
    s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// 3: SELECT of CROB 3 (g12v1, qualifier 0x28, latch on), echoed; OPERATE of the same
/// CROB 50 ms later, echoed.
fn select_operate_crob() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49803, 0x3c4d_5e6f, 0x7081_92a3);
    let t = T0 + 5 * MS;
    let sel = dnp3::select_crob(s.next_seq(), 3, crob::LATCH_ON);
    s.exchange(
        &mut c,
        &mut cap,
        (t, RTT),
        &sel,
        &dnp3::control_echo(&sel, iin::NONE),
    );
    let op = dnp3::operate_crob(s.next_seq(), 3, crob::LATCH_ON);
    s.exchange(
        &mut c,
        &mut cap,
        (t + 50 * MS, RTT),
        &op,
        &dnp3::control_echo(&op, iin::NONE),
    );
    c.close(&mut cap, t + 150 * MS);
    Ok(cap)
}

/// 4: COLD RESTART, answered with g52v2 (time delay fine, count 1) = 5000 ms.
fn cold_restart() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49804, 0x4d5e_6f70, 0x8192_a3b4);
    let t = T0 + 5 * MS;
    let req = dnp3::cold_restart(s.next_seq());
    let rsp = dnp3::restart_response(&req, 5000);
    s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// The file the engineering station writes to the outstation.
pub const LOGIC_FILE: &str = "/config/logic.bin";

/// `n` octets of a logic file (illustrative).
pub fn logic_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(13) ^ 0x5a).collect()
}

/// The OPEN (g70v3, `/config/logic.bin`, mode write, 96 octets) of a file write
/// session at `t`, the two WRITE blocks (g70v5, 64 + 32 octets, the second marked
/// last) and the CLOSE (g70v4), each answered (g70v4 handle 0x00001234, g70v6), 20 ms
/// apart. Returns the OPEN request (for its alerts) and the time of the last answer.
pub fn file_write_session(
    c: &mut dyn Carrier,
    s: &mut Session,
    cap: &mut Capture,
    t: u64,
) -> (Apdu, u64) {
    const HANDLE: u32 = 0x0000_1234;
    let body = logic_bytes(96);
    let created = T0 / 1000 - 3_600_000;
    let open = dnp3::open_file(s.next_seq(), LOGIC_FILE, file_mode::WRITE, 96, created);
    s.exchange(
        c,
        cap,
        (t, RTT),
        &open,
        &dnp3::file_status_response(&open, HANDLE, 96),
    );
    for (n, (part, last)) in [(&body[..64], false), (&body[64..], true)]
        .into_iter()
        .enumerate()
    {
        let w = dnp3::write_file_block(s.next_seq(), HANDLE, n as u32, last, part);
        let a = dnp3::file_block_response(&w, HANDLE, n as u32, last);
        s.exchange(c, cap, (t + (n as u64 + 1) * 20 * MS, RTT), &w, &a);
    }
    let close = dnp3::close_file(s.next_seq(), HANDLE);
    s.exchange(
        c,
        cap,
        (t + 60 * MS, RTT),
        &close,
        &dnp3::file_status_response(&close, HANDLE, 96),
    );
    let exp = s.event_of(&open);
    (
        Apdu {
            bytes: open.bytes,
            exp,
        },
        t + 60 * MS + RTT,
    )
}

/// 5: a file write (see [`file_write_session`]).
fn file_write() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49805, 0x5e6f_7081, 0x92a3_b4c5);
    let (_, end) = file_write_session(&mut c, &mut s, &mut cap, T0 + 5 * MS);
    c.close(&mut cap, end + 100 * MS);
    Ok(cap)
}

/// 6: a class 0 READ answered with IIN1.4 NEED_TIME (2 analogs, 2 binaries); the
/// master WRITEs the time (g50v1, count 1) = the packet's own time in ms, answered
/// without objects and IIN 0.
fn write_time() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49806, 0x6f70_8192, 0xa3b4_c5d6);
    let t = T0 + 5 * MS;
    let req = dnp3::read_class0(s.next_seq());
    let rsp = dnp3::static_response(&req, iin::NEED_TIME, &[215, -12], &[true, false]);
    s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    let t = t + 50 * MS;
    let w = dnp3::write_time(s.next_seq(), t / 1000);
    s.exchange(
        &mut c,
        &mut cap,
        (t, RTT),
        &w,
        &dnp3::null_response(&w, iin::NONE),
    );
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// 7: DNP3 over UDP, both ends on port 20000 (the link layer's DIR bit tells the
/// master): an integrity poll (g60v2, v3, v4, v1) answered with 4 g30v2 and 4 g1v2,
/// twice, 1 s apart.
fn udp_read() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut c = UdpConv::new(master(), dnp3::PORT, outstation(), dnp3::PORT);
    let mut s = Session::new(MASTER, OUTSTATION);
    for k in 0..2 {
        let t = T0 + k * SEC;
        let req = dnp3::integrity_poll(s.next_seq());
        let values = [101 + k as i16, 202, -3, 404];
        let rsp = dnp3::static_response(&req, iin::NONE, &values, &[false, true, true, false]);
        s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    }
    Ok(cap)
}

/// 8: a class 0 READ whose link frame is split after 5 octets (inside the link
/// header), answered by a response split after 20 octets (inside the first data
/// block); the halves 2 ms apart, the event with the second.
fn split_frame() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49808, 0x8192_a3b4, 0xc5d6_e7f8);
    let t = T0 + 5 * MS;
    let req = dnp3::read_class0(s.next_seq());
    let rsp = dnp3::static_response(&req, iin::NONE, &[321, 654], &[true, true]);
    s.send_split(&mut c, &mut cap, (t, 2 * MS), 5, &req);
    s.send_split(&mut c, &mut cap, (t + 10 * MS, 2 * MS), 20, &rsp);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// 9: a class 0 READ answered; the next READ (sequence 1) with the CRC of its first
/// data block corrupted (the link header and its CRC intact): an event with the link
/// fields and `bad_checksum` only, no answer; the master repeats the READ (same
/// sequence) 2 s later, answered.
fn bad_crc() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = tcp_session(&mut cap, 49809, 0x92a3_b4c5, 0xd6e7_f809);
    let t = T0 + 5 * MS;
    let req = dnp3::read_class0(s.next_seq());
    let rsp = dnp3::static_response(&req, iin::NONE, &[11, 22], &[false, true]);
    s.exchange(&mut c, &mut cap, (t, RTT), &req, &rsp);
    let seq = s.next_seq();
    let bad = dnp3::read_class0(seq);
    s.send_bad_crc(&mut c, &mut cap, t + 50 * MS, &bad);
    let again = dnp3::read_class0(seq);
    let rsp = dnp3::static_response(&again, iin::NONE, &[11, 22], &[false, true]);
    s.exchange(&mut c, &mut cap, (t + 50 * MS + 2 * SEC, RTT), &again, &rsp);
    c.close(&mut cap, t + 3 * SEC);
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::super::expect::rfc3339_micros;
    use super::super::tshark;
    use super::*;

    #[test]
    fn every_capture_builds_with_increasing_times() {
        for (name, build) in CASES {
            let cap = build().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(cap.check_times().is_ok(), "{name}");
            assert!(cap.len() >= 2, "{name}");
        }
    }

    /// `2026-11-20T10:00:00.055000Z` as tshark prints an absolute time field:
    /// `Nov 20, 2026 10:00:00.055000000 UTC`.
    fn tshark_time(rfc3339: &str) -> String {
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let (date, time) = rfc3339.trim_end_matches('Z').split_once('T').unwrap();
        let d: Vec<&str> = date.split('-').collect();
        let month = MONTHS[d[1].parse::<usize>().unwrap() - 1];
        let day = d[2].trim_start_matches('0');
        format!("{month} {day}, {} {time}000 UTC", d[0])
    }

    /// The operation output.md's table gives a request: READ read; WRITE other for g50
    /// (time) and file_transfer for g70; SELECT other; OPERATE / DIRECT OPERATE on g12
    /// or g41 write; COLD RESTART restart; OPEN / CLOSE FILE file_transfer.
    fn table_operation(fc: u64, groups: &[u64]) -> &'static str {
        match fc {
            1 => "read",
            2 if groups.contains(&70) => "file_transfer",
            2 if groups.iter().all(|g| *g == 50 || *g == 80) => "other",
            2 => "write",
            3 => "other",
            4..=6 if groups.iter().any(|g| *g == 12 || *g == 41) => "write",
            13 | 14 => "restart",
            25..=30 => "file_transfer",
            _ => "other",
        }
    }

    /// The tshark fields compared, per frame, against the expected DNP3 events.
    const FIELDS: &[&str] = &[
        "ip.src",
        "dnp3.src",
        "dnp3.dst",
        "dnp3.ctl.dir",
        "dnp.hdr.CRC.status",
        "dnp.data_chunk.CRC.status",
        "dnp3.al.func",
        "dnp3.al.seq",
        "dnp3.al.fir",
        "dnp3.al.fin",
        "dnp3.al.con",
        "dnp3.al.uns",
        "dnp3.al.iin",
        "dnp3.al.obj",
        "dnp3.al.objq.prefix",
        "dnp3.al.objq.range",
        "dnp3.al.range.start",
        "dnp3.al.range.stop",
        "dnp3.al.range.quantity",
        "dnp3.al.point_index",
        "dnp3.al.index",
        "dnp3.al.ana.int",
        "dnp3.al.biq.b7",
        "dnp3.al.anaout.int",
        "dnp3.al.ctrlstatus",
        "dnp3.ctl.op",
        "dnp3.al.file_name",
        "dnp3.al.file.mode",
        "dnp3.al.timestamp",
    ];

    /// Every generated DNP3 capture as tshark sees it: no malformed frame, good IP,
    /// TCP/UDP and link header CRCs; each frame that completes an application fragment
    /// carries exactly one expected event, with the same sender, link addresses and DIR
    /// bit, function, sequence, control bits, IIN (responses only), object headers
    /// (group/variation, qualifier, range or quantity), points (indexes, analog values,
    /// binary states, CROB operation types, control statuses), file name and mode, and
    /// time; its operation is the table's (a response: its request's). The frame with
    /// a corrupted data-block CRC is the one expected with `bad_checksum` and no
    /// application fields, and tshark decodes no fragment from it.
    #[test]
    fn dnp3_expected_events_agree_with_tshark() {
        use serde_json::Value;
        if !tshark::available("pcaps/dnp3") {
            return;
        }
        let dir = tshark::temp_dir("tshark-dnp3");
        let mut compared = 0;
        for (name, build) in CASES {
            let cap = build().unwrap();
            let (frames, expected) = tshark::frames(&cap, &dir, name, &[], FIELDS);
            let mut by_time: std::collections::BTreeMap<String, Value> = Default::default();
            for l in expected.lines() {
                let e: Value = serde_json::from_str(l).unwrap();
                let ts = e["timestamp"].as_str().unwrap().to_owned();
                assert!(
                    by_time.insert(ts, e).is_none(),
                    "{name}: two events, one frame"
                );
            }
            let mut request_ops: std::collections::BTreeMap<u64, String> = Default::default();
            for f in &frames {
                let at = format!("{name} frame {} ({})", f.number, f.ts);
                let Some(e) = by_time.remove(&f.ts) else {
                    assert!(
                        f.all("dnp3.al.func").is_empty(),
                        "{at}: unexpected fragment"
                    );
                    continue;
                };
                let d = &e["dnp3"];
                let to_server = e["direction"] == "to_server";
                let sender = if to_server {
                    &e["flow"]["src_ip"]
                } else {
                    &e["flow"]["dst_ip"]
                };
                assert_eq!(f.all("ip.src"), [sender.as_str().unwrap()], "{at}");
                let each = |field: &str, want: String| {
                    let got = f.all(field);
                    assert!(!got.is_empty(), "{at}: no {field}");
                    assert!(got.iter().all(|g| *g == want), "{at}: {field} {got:?}");
                };
                each("dnp3.src", d["link_src"].to_string());
                each("dnp3.dst", d["link_dst"].to_string());
                let bit = |v: &Value| if v.as_bool().unwrap() { "1" } else { "0" }.to_owned();
                each("dnp3.ctl.dir", bit(&d["from_master"]));
                assert_eq!(d["from_master"].as_bool(), Some(to_server), "{at}");
                each("dnp.hdr.CRC.status", "1".into());
                let Some(fc) = d["function_code"].as_u64() else {
                    // The corrupted frame.
                    assert_eq!(e["anomalies"], serde_json::json!(["bad_checksum"]), "{at}");
                    assert!(f.all("dnp.data_chunk.CRC.status").contains(&"0"), "{at}");
                    assert!(f.all("dnp3.al.func").is_empty(), "{at}");
                    compared += 1;
                    continue;
                };
                each("dnp.data_chunk.CRC.status", "1".into());
                let list = |field: &str, want: Vec<String>| {
                    assert_eq!(f.all(field), want, "{at}: {field}");
                };
                let one = |v: &Value| vec![v.to_string()];
                list("dnp3.al.func", vec![fc.to_string()]);
                list("dnp3.al.seq", one(&d["sequence"]));
                for k in ["fir", "fin", "con", "uns"] {
                    list(&format!("dnp3.al.{k}"), vec![bit(&d[k])]);
                }
                list(
                    "dnp3.al.iin",
                    d["iin"]
                        .as_u64()
                        .map(|i| format!("0x{i:04x}"))
                        .into_iter()
                        .collect(),
                );
                let objs = d["objects"].as_array().unwrap();
                let n = |o: &Value, k: &str| o[k].as_u64().unwrap();
                list(
                    "dnp3.al.obj",
                    objs.iter()
                        .map(|o| format!("0x{:02x}{:02x}", n(o, "group"), n(o, "variation")))
                        .collect(),
                );
                list(
                    "dnp3.al.objq.prefix",
                    objs.iter()
                        .map(|o| (n(o, "qualifier") >> 4).to_string())
                        .collect(),
                );
                list(
                    "dnp3.al.objq.range",
                    objs.iter()
                        .map(|o| (n(o, "qualifier") & 15).to_string())
                        .collect(),
                );
                let ranged: Vec<&Value> =
                    objs.iter().filter(|o| o.get("start").is_some()).collect();
                list(
                    "dnp3.al.range.start",
                    ranged.iter().map(|o| o["start"].to_string()).collect(),
                );
                list(
                    "dnp3.al.range.stop",
                    ranged.iter().map(|o| o["stop"].to_string()).collect(),
                );
                for o in &ranged {
                    assert_eq!(n(o, "count"), n(o, "stop") - n(o, "start") + 1, "{at}");
                }
                list(
                    "dnp3.al.range.quantity",
                    objs.iter()
                        .filter(|o| o.get("start").is_none() && n(o, "qualifier") != 6)
                        .map(|o| o["count"].to_string())
                        .collect(),
                );
                let points: Vec<&Value> = d["points"]
                    .as_array()
                    .map_or(vec![], |a| a.iter().collect());
                let of = |groups: &[u64]| -> Vec<&Value> {
                    points
                        .iter()
                        .copied()
                        .filter(|p| groups.contains(&n(p, "group")))
                        .collect()
                };
                let ints = |ps: Vec<&Value>, k: &str| -> Vec<String> {
                    ps.iter()
                        .map(|p| format!("{}", p[k].as_f64().unwrap() as i64))
                        .collect()
                };
                // tshark numbers the objects of range and count qualifiers (a count
                // from 0); the points listed are those of the g1/g30 ranges.
                let numbered: Vec<String> = objs
                    .iter()
                    .flat_map(|o| match (o["start"].as_u64(), n(o, "qualifier")) {
                        (Some(a), _) => (a..=n(o, "stop")).collect(),
                        (None, 0x07 | 0x08) => (0..n(o, "count")).collect(),
                        _ => vec![],
                    })
                    .map(|i| i.to_string())
                    .collect();
                list("dnp3.al.point_index", numbered.clone());
                let ranged_points = ints(of(&[1, 30]), "index");
                assert!(
                    ranged_points.len() <= numbered.len()
                        && ranged_points.iter().zip(&numbered).all(|(a, b)| a == b),
                    "{at}: point indexes"
                );
                list("dnp3.al.index", ints(of(&[12, 41]), "index"));
                list("dnp3.al.ana.int", ints(of(&[30]), "value"));
                list("dnp3.al.biq.b7", ints(of(&[1]), "value"));
                list("dnp3.al.anaout.int", ints(of(&[41]), "value"));
                list("dnp3.al.ctrlstatus", ints(of(&[12, 41]), "status"));
                list(
                    "dnp3.ctl.op",
                    of(&[12])
                        .iter()
                        .map(|p| (n(p, "control_code") & 15).to_string())
                        .collect(),
                );
                // Each object group/variation the expected points claim is on the wire.
                for p in &points {
                    assert!(
                        objs.iter()
                            .any(|o| o["group"] == p["group"] && o["variation"] == p["variation"]),
                        "{at}: point of an object not listed"
                    );
                }
                list(
                    "dnp3.al.file_name",
                    d["file_name"]
                        .as_str()
                        .map(str::to_owned)
                        .into_iter()
                        .collect(),
                );
                list(
                    "dnp3.al.file.mode",
                    d["file_mode"]
                        .as_u64()
                        .map(|m| m.to_string())
                        .into_iter()
                        .collect(),
                );
                // A g70v3 carries its file's creation time, shown in the same field;
                // time_ms is g50's only.
                let file = objs.iter().any(|o| n(o, "group") == 70);
                assert!(!file || d.get("time_ms").is_none(), "{at}");
                if !file {
                    list(
                        "dnp3.al.timestamp",
                        d["time_ms"]
                            .as_u64()
                            .map(|ms| tshark_time(&rfc3339_micros(ms * 1000)))
                            .into_iter()
                            .collect(),
                    );
                }
                // Operations: the table's for requests, the request's for responses.
                let op = e["operation"].as_str().unwrap().to_owned();
                let seq = n(d, "sequence");
                if fc == 0x81 {
                    assert_eq!(request_ops.get(&seq), Some(&op), "{at}: response operation");
                } else {
                    let groups: Vec<u64> = objs.iter().map(|o| n(o, "group")).collect();
                    assert_eq!(op, table_operation(fc, &groups), "{at}: operation");
                    request_ops.insert(seq, op);
                }
                compared += 1;
            }
            assert!(
                by_time.is_empty(),
                "{name}: expected events at times with no frame: {:?}",
                by_time.keys().collect::<Vec<_>>()
            );
        }
        assert!(compared >= 30, "only {compared} DNP3 fragments compared");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn analog_profile_fits_16_bits() {
        let a = analogs();
        assert_eq!(a.len(), 80);
        assert!(a.iter().all(|v| (100..500).contains(v)));
    }
}
