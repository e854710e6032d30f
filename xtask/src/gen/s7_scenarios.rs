//! The generated S7comm captures (`pcaps/s7comm/`), one function each.
//! pcaps/README.md tells the story of each.
//!
//! Conventions: the PG is 10.20.1.5 (engineering station) on a port of its own per
//! capture, the PLC 10.30.1.10:102; the PG's calling TSAP is 0x0100, the called TSAP
//! 0x0102 (rack 0, slot 2); every capture starts at 2026-11-20T10:00:00Z ([`T0`]) with
//! the TCP handshake, the COTP connection 1 ms later and setup communication at 5 ms,
//! and ends with a FIN close. Each S7 PDU travels alone in one segment.

use std::net::Ipv4Addr;

use super::s7::{self, area, ret, size, Block, Item, ModuleId, S7Exp, S7Pdu, Session};
use super::tcp::{Capture, Conn, MS, SEC, T0};
use super::wire::Host;

/// A generated capture: its path under `pcaps/` (without extension) and its builder.
pub type Case = (&'static str, fn() -> anyhow::Result<Capture>);

/// Every S7comm capture `gen_pcaps` writes.
pub const CASES: &[Case] = &[
    ("s7comm/download", download),
    ("s7comm/upload", upload),
    ("s7comm/plc_stop", plc_stop),
    ("s7comm/db_write", db_write),
    ("s7comm/szl_read", szl_read),
    ("s7comm/password", password),
];

/// The PG's calling TSAP and the PLC's (rack 0, slot 2).
pub const PG_TSAP: u16 = 0x0100;
pub const PLC_TSAP: u16 = 0x0102;

fn ews() -> Host {
    Host::new(Ipv4Addr::new(10, 20, 1, 5), 128)
}
fn plc() -> Host {
    Host::new(Ipv4Addr::new(10, 30, 1, 10), 64)
}

/// A PG connection to the PLC: handshake at [`T0`], COTP at +1 ms, setup communication
/// at +5 ms.
fn pg_conn(cap: &mut Capture, port: u16, client_isn: u32, server_isn: u32) -> (Conn, Session) {
    let mut c = Conn::new(ews(), port, plc(), s7::PORT, client_isn, server_isn);
    c.handshake(cap, T0);
    let mut s = Session::new(PG_TSAP, PLC_TSAP, 0x0100);
    s.connect(&mut c, cap, T0 + MS);
    s.setup(&mut c, cap, T0 + 5 * MS);
    (c, s)
}

/// `n` bytes of an MC7 data block: the block header (0x70 0x70, version, attributes,
/// language, type 0x0A = DB, number) and then a counter. Plausible, illustrative.
pub fn mc7_block(number: u16, n: usize) -> Vec<u8> {
    let mut v = vec![0x70, 0x70, 0x01, 0x01, 0x05, 0x0a];
    v.extend_from_slice(&number.to_be_bytes());
    let mut k = 0u8;
    while v.len() < n {
        v.push(k);
        k = k.wrapping_add(3);
    }
    v.truncate(n);
    v
}

/// The PLC's PDU references for the jobs it sends itself.
const PLC_REF: u16 = 0x0e00;

/// A complete download of DB1 as a PG performs it, starting at `t`: request download
/// (PG), two download-block jobs *from the PLC* answered by the PG's ack_data with
/// 64 + 32 bytes of the block, download ended (PLC) and its ack, then PI `_INSE`
/// (PG) to activate the block. Every step 20 ms after the previous one, answers 3 ms
/// after their job. Returns the time of the last answer and the expected event of the
/// request download (with the session's TSAPs).
pub fn download_session(c: &mut Conn, s: &mut Session, cap: &mut Capture, t: u64) -> (u64, S7Exp) {
    let db1 = Block::db(1);
    let body = mc7_block(1, 96);
    let (head, tail) = body.split_at(64);
    let req = s7::request_download(s.next_ref(), db1, 96, 40);
    s.exchange(c, cap, t, 3 * MS, &req, &s7::plain_ack(&req));
    let b1 = s7::download_block(PLC_REF + 1, db1);
    s.exchange(
        c,
        cap,
        t + 20 * MS,
        3 * MS,
        &b1,
        &s7::block_data_ack(&b1, true, head),
    );
    let b2 = s7::download_block(PLC_REF + 2, db1);
    s.exchange(
        c,
        cap,
        t + 40 * MS,
        3 * MS,
        &b2,
        &s7::block_data_ack(&b2, false, tail),
    );
    let end = s7::download_ended(PLC_REF + 3, db1);
    s.exchange(c, cap, t + 60 * MS, 3 * MS, &end, &s7::plain_ack(&end));
    let inse = s7::pi_service(s.next_ref(), "_INSE", &[db1]);
    s.exchange(c, cap, t + 80 * MS, 3 * MS, &inse, &s7::plain_ack(&inse));
    let mut first = req.exp;
    first.calling_tsap = s.calling_tsap;
    first.called_tsap = s.called_tsap;
    (t + 83 * MS, first)
}

/// 1: the download of DB1 (see [`download_session`]) at 10:00:00.050.
fn download() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49901, 0x3a4b_5c6d, 0x7e8f_9001);
    let (end, _) = download_session(&mut c, &mut s, &mut cap, T0 + 50 * MS);
    c.close(&mut cap, end + 100 * MS);
    Ok(cap)
}

/// 2: the upload of DB1 by the PG: start upload (the PLC gives upload id 7 and the
/// length 96), two upload jobs answered with 64 (more follows) and 32 bytes, end upload.
fn upload() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49902, 0x4b5c_6d7e, 0x8f90_0112);
    let body = mc7_block(1, 96);
    let (head, tail) = body.split_at(64);
    let mut t = T0 + 50 * MS;
    let start = s7::start_upload(s.next_ref(), Block::db(1));
    s.exchange(
        &mut c,
        &mut cap,
        t,
        3 * MS,
        &start,
        &s7::start_upload_ack(&start, 7, 96),
    );
    for (part, more) in [(head, true), (tail, false)] {
        t += 20 * MS;
        let up = s7::upload(s.next_ref(), 7);
        s.exchange(
            &mut c,
            &mut cap,
            t,
            3 * MS,
            &up,
            &s7::block_data_ack(&up, more, part),
        );
    }
    t += 20 * MS;
    let end = s7::end_upload(s.next_ref(), 7);
    s.exchange(&mut c, &mut cap, t, 3 * MS, &end, &s7::plain_ack(&end));
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// 3: PLC stop, answered; a second PLC stop 2 s later, refused (ack_data with header
/// error class 0x84, code 0x04: the function cannot be performed); then PI `P_PROGRAM`
/// (start) 10 s after the first stop.
fn plc_stop() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49903, 0x5c6d_7e8f, 0x9001_1223);
    let t = T0 + 50 * MS;
    let stop = s7::plc_stop(s.next_ref());
    s.exchange(&mut c, &mut cap, t, 3 * MS, &stop, &s7::plain_ack(&stop));
    let again = s7::plc_stop(s.next_ref());
    s.exchange(
        &mut c,
        &mut cap,
        t + 2 * SEC,
        3 * MS,
        &again,
        &s7::error_ack(&again, 0x84, 0x04),
    );
    let start = s7::pi_service(s.next_ref(), "P_PROGRAM", &[]);
    s.exchange(
        &mut c,
        &mut cap,
        t + 10 * SEC,
        3 * MS,
        &start,
        &s7::plain_ack(&start),
    );
    c.close(&mut cap, t + 10 * SEC + 100 * MS);
    Ok(cap)
}

/// 4: variable access: write DB10.DBW4 = 80 and read it back; a read of three items
/// (M10.3, DB10.DBB0-2, IB0); a write of two items (M20.1 = 1, QB4 = 0x0F); a write
/// of DB99.DBW0, which does not exist (item return code 0x0A).
fn db_write() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49904, 0x6d7e_8f90, 0x0112_2334);
    let dbw4 = Item::db(10, 4, size::WORD, 1);
    let mut t = T0 + 50 * MS;
    let mut call = |s: &mut Session, c: &mut Conn, cap: &mut Capture, req: &S7Pdu, rsp: S7Pdu| {
        s.exchange(c, cap, t, 3 * MS, req, &rsp);
        t += 50 * MS;
    };
    let w = s7::write_var(s.next_ref(), &[(dbw4, vec![0x00, 0x50])]);
    let a = s7::write_var_ack(&w, &[ret::SUCCESS]);
    call(&mut s, &mut c, &mut cap, &w, a);
    let r = s7::read_var(s.next_ref(), &[dbw4]);
    let a = s7::read_var_ack(&r, &[Ok(vec![0x00, 0x50])]);
    call(&mut s, &mut c, &mut cap, &r, a);
    let r = s7::read_var(
        s.next_ref(),
        &[
            Item::bit(area::M, 0, 10, 3),
            Item::db(10, 0, size::BYTE, 3),
            Item::at(area::I, 0, size::BYTE, 1),
        ],
    );
    let a = s7::read_var_ack(
        &r,
        &[Ok(vec![0x01]), Ok(vec![0x12, 0x34, 0x56]), Ok(vec![0xa5])],
    );
    call(&mut s, &mut c, &mut cap, &r, a);
    let w = s7::write_var(
        s.next_ref(),
        &[
            (Item::bit(area::M, 0, 20, 1), vec![0x01]),
            (Item::at(area::Q, 4, size::BYTE, 1), vec![0x0f]),
        ],
    );
    let a = s7::write_var_ack(&w, &[ret::SUCCESS, ret::SUCCESS]);
    call(&mut s, &mut c, &mut cap, &w, a);
    let w = s7::write_var(
        s.next_ref(),
        &[(Item::db(99, 0, size::WORD, 1), vec![0x00, 0x01])],
    );
    let a = s7::write_var_ack(&w, &[ret::OBJECT_DOES_NOT_EXIST]);
    call(&mut s, &mut c, &mut cap, &w, a);
    c.close(&mut cap, t + 50 * MS);
    Ok(cap)
}

/// The CPU of plc-boiler-1 as SZL 0x0011 describes it: an S7-315-2 PN/DP.
pub const CPU_ORDER_NUMBER: &str = "6ES7 315-2EH14-0AB0";

/// 5: SZL read of 0x0011 (module identification), index 0, answered with three
/// records: 0x0001 (the module), 0x0006 (basic hardware), 0x0007 (basic firmware,
/// version V3.3.8, no order number).
fn szl_read() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49905, 0x7e8f_9001, 0x1223_3445);
    let t = T0 + 50 * MS;
    let q = s7::szl_read(s.next_ref(), 0x0011, 0x0000);
    let rsp = s7::szl_0011_rsp(
        &q,
        &[
            ModuleId {
                index: 0x0001,
                order_number: CPU_ORDER_NUMBER,
                bg_type: 0x0000,
                version: 0x0001,
                release: 0x0001,
            },
            ModuleId {
                index: 0x0006,
                order_number: CPU_ORDER_NUMBER,
                bg_type: 0x0000,
                version: 0x0001,
                release: 0x0001,
            },
            ModuleId {
                index: 0x0007,
                order_number: "",
                bg_type: 0x0000,
                version: 0x5603,
                release: 0x0308,
            },
        ],
    );
    s.exchange(&mut c, &mut cap, t, 4 * MS, &q, &rsp);
    c.close(&mut cap, t + 100 * MS);
    Ok(cap)
}

/// The password of plc-boiler-1's protection level in these captures.
pub const PLC_PASSWORD: &str = "boiler1";

/// 6: the PG presents the PLC password (`boiler1`, sent encoded), reads DB10.DBW4,
/// then clears the password (no data, no credential).
fn password() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let (mut c, mut s) = pg_conn(&mut cap, 49906, 0x8f90_0112, 0x2334_4556);
    let t = T0 + 50 * MS;
    let p = s7::password(s.next_ref(), PLC_PASSWORD);
    s.exchange(&mut c, &mut cap, t, 3 * MS, &p, &s7::security_rsp(&p));
    let r = s7::read_var(s.next_ref(), &[Item::db(10, 4, size::WORD, 1)]);
    let a = s7::read_var_ack(&r, &[Ok(vec![0x00, 0x50])]);
    s.exchange(&mut c, &mut cap, t + 50 * MS, 3 * MS, &r, &a);
    let clear = s7::clear_password(s.next_ref());
    s.exchange(
        &mut c,
        &mut cap,
        t + 100 * MS,
        3 * MS,
        &clear,
        &s7::security_rsp(&clear),
    );
    c.close(&mut cap, t + 200 * MS);
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capture_builds_with_increasing_times() {
        for (name, build) in CASES {
            let cap = build().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(cap.check_times().is_ok(), "{name}");
            assert!(cap.len() > 10, "{name}");
        }
    }

    #[test]
    fn mc7_block_header() {
        let b = mc7_block(1, 96);
        assert_eq!(b.len(), 96);
        assert_eq!(&b[..8], &[0x70, 0x70, 0x01, 0x01, 0x05, 0x0a, 0x00, 0x01]);
    }
}
