//! The expected events of a generated capture, written as JSON lines.
//!
//! Everything here is computed from what the generator put on the wire, independently
//! of otwatch's own code (its own Community ID, its own time formatting), so that the
//! expected files can catch otwatch's mistakes rather than copy them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::dnp3::Dnp3Exp;
use super::modbus::{Dir, Pdu};
use super::opcua::UaExp;
use super::s7::S7Exp;

/// The `flow` block of every event of one TCP connection (or UDP conversation),
/// oriented client -> server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowExp {
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_ip: Ipv4Addr,
    pub dst_port: u16,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    pub community_id: String,
}

impl FlowExp {
    pub fn tcp(src_ip: Ipv4Addr, src_port: u16, dst_ip: Ipv4Addr, dst_port: u16) -> Self {
        FlowExp {
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            transport: "tcp",
            community_id: community_id((src_ip, src_port), (dst_ip, dst_port), 6),
        }
    }

    pub fn udp(src_ip: Ipv4Addr, src_port: u16, dst_ip: Ipv4Addr, dst_port: u16) -> Self {
        FlowExp {
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            transport: "udp",
            community_id: community_id((src_ip, src_port), (dst_ip, dst_port), 17),
        }
    }
}

/// The protocol part of one expected event.
#[derive(Debug, Clone)]
pub enum ExpPdu {
    Modbus(Pdu),
    S7(S7Exp),
    Dnp3(Dnp3Exp),
    Opcua(UaExp),
}

/// One expected event: the PDU, its flow and the time of the packet that completed it.
#[derive(Debug, Clone)]
pub struct Event {
    pub ts_micros: u64,
    pub flow: FlowExp,
    pub pdu: ExpPdu,
}

impl Event {
    /// The event as one JSON line (no newline), keys in a fixed order.
    pub fn json_line(&self) -> String {
        match &self.pdu {
            ExpPdu::Modbus(p) => self.modbus_line(p),
            ExpPdu::S7(p) => {
                let mut s = self.head(dir_name(p.dir), "s7comm", Some(p.operation));
                s.push(',');
                s.push_str(&p.json_block());
                s.push('}');
                s
            }
            ExpPdu::Opcua(p) => {
                let mut s = self.head(dir_name(p.dir), "opcua", p.operation);
                s.push(',');
                s.push_str(&p.json_block());
                s.push('}');
                s
            }
            ExpPdu::Dnp3(p) => {
                let mut s = self.head(dir_name(p.dir), "dnp3", p.operation);
                if !p.anomalies.is_empty() {
                    let list: Vec<String> = p.anomalies.iter().map(|a| json_str(a)).collect();
                    let _ = write!(s, ",\"anomalies\":[{}]", list.join(","));
                }
                s.push(',');
                s.push_str(&p.json_block());
                s.push('}');
                s
            }
        }
    }

    /// Everything up to and including `operation` (no closing brace; no `operation`
    /// when it is `None`: not compared).
    fn head(&self, direction: &str, protocol: &str, operation: Option<&str>) -> String {
        let f = &self.flow;
        let mut s = String::with_capacity(512);
        let _ = write!(
            s,
            "{{\"schema\":\"otwatch/1\",\"event_type\":\"ot\",\"timestamp\":\"{}\",\
             \"flow\":{{\"src_ip\":\"{}\",\"src_port\":{},\"dst_ip\":\"{}\",\"dst_port\":{},\
             \"transport\":\"{}\",\"community_id\":{}}},\
             \"direction\":\"{direction}\",\"protocol\":\"{protocol}\"",
            rfc3339_micros(self.ts_micros),
            f.src_ip,
            f.src_port,
            f.dst_ip,
            f.dst_port,
            f.transport,
            json_str(&f.community_id),
        );
        if let Some(op) = operation {
            let _ = write!(s, ",\"operation\":\"{op}\"");
        }
        s
    }

    fn modbus_line(&self, p: &Pdu) -> String {
        let mut s = self.head(dir_name(p.dir), "modbus", Some(p.operation));
        let _ = write!(
            s,
            ",\"modbus\":{{\"transaction_id\":{},\"unit_id\":{},\"function_code\":{},\
             \"exception_code\":{}",
            p.transaction_id,
            p.unit_id,
            p.function_code,
            opt(p.exception_code),
        );
        for (k, v) in [("address", p.address), ("quantity", p.quantity)] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        if let Some(vals) = &p.values {
            let list: Vec<String> = vals.iter().map(u16::to_string).collect();
            let _ = write!(s, ",\"values\":[{}]", list.join(","));
        }
        let more: [(&str, Option<u16>); 5] = [
            ("read_address", p.read_address),
            ("read_quantity", p.read_quantity),
            ("and_mask", p.and_mask),
            ("or_mask", p.or_mask),
            ("sub_function", p.sub_function),
        ];
        for (k, v) in more {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        if let Some(m) = p.mei_type {
            let _ = write!(s, ",\"mei_type\":{m}");
        }
        if let Some(objs) = &p.device_id {
            let list: Vec<String> = objs
                .iter()
                .map(|(id, v)| format!("{{\"id\":{id},\"value\":{}}}", json_str(v)))
                .collect();
            let _ = write!(s, ",\"device_id\":[{}]", list.join(","));
        }
        if let Some(u) = &p.umas {
            let _ = write!(
                s,
                ",\"umas\":{{\"session_key\":{},\"function_code\":{}",
                u.session_key, u.function_code
            );
            if let Some(st) = u.status {
                let _ = write!(s, ",\"status\":{st}");
            }
            s.push('}');
        }
        s.push_str("}}");
        s
    }
}

/// The contract's name of a direction.
pub fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

fn opt(v: Option<u8>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

pub fn json_str(v: &str) -> String {
    serde_json::Value::String(v.to_owned()).to_string()
}

/// Community ID v1 with seed 0: `"1:" + base64(sha1(seed, ip, ip, proto, 0, port, port))`
/// with the endpoints ordered so that the smaller (address, port) comes first.
pub fn community_id(a: (Ipv4Addr, u16), b: (Ipv4Addr, u16), proto: u8) -> String {
    let (lo, hi) = if (a.0.octets(), a.1) <= (b.0.octets(), b.1) {
        (a, b)
    } else {
        (b, a)
    };
    let mut m = Vec::with_capacity(18);
    m.extend_from_slice(&0u16.to_be_bytes()); // seed
    m.extend_from_slice(&lo.0.octets());
    m.extend_from_slice(&hi.0.octets());
    m.push(proto);
    m.push(0); // padding
    m.extend_from_slice(&lo.1.to_be_bytes());
    m.extend_from_slice(&hi.1.to_be_bytes());
    format!("1:{}", base64(&sha1(&m)))
}

/// SHA-1 (FIPS 180-4), enough for the short inputs of Community ID and of S7 password
/// fingerprints.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5a82_7999),
                20..=39 => (b ^ c ^ d, 0x6ed9_eba1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc),
                _ => (b ^ c ^ d, 0xca62_c1d6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, v) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// RFC 3339 UTC with six fractional digits, e.g. `2026-11-20T10:00:00.000350Z`.
pub fn rfc3339_micros(ts_micros: u64) -> String {
    let secs = ts_micros / 1_000_000;
    let micros = ts_micros % 1_000_000;
    let mut days = secs / 86_400;
    let sod = secs % 86_400;
    // Walk years then months: slow but obviously right, and independent of the
    // arithmetic otwatch uses.
    let mut year = 1970u64;
    loop {
        let len = if is_leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let month_len = [
        31,
        if is_leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let mut month = 1;
    for len in month_len {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        days + 1,
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

fn is_leap(y: u64) -> bool {
    // Divisible by 4 but not by 100, or by 400.
    matches!((y % 4, y % 100, y % 400), (0, 1.., _) | (_, _, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answers() {
        // FIPS 180 examples: "abc" and the 56-byte two-block message.
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn community_id_matches_the_spec_baseline() {
        // The Community ID spec's TCP example (128.232.110.120:34855 -> 66.35.250.204:80),
        // in both directions.
        let a = (Ipv4Addr::new(128, 232, 110, 120), 34855);
        let b = (Ipv4Addr::new(66, 35, 250, 204), 80);
        assert_eq!(community_id(a, b, 6), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(community_id(b, a, 6), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }

    #[test]
    fn rfc3339_six_digits() {
        // 1795168800 s is 2026-11-20T10:00:00Z (python: datetime(2026,11,20,10).timestamp()).
        assert_eq!(
            rfc3339_micros(1_795_168_800_000_350),
            "2026-11-20T10:00:00.000350Z"
        );
        assert_eq!(
            rfc3339_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }
}
