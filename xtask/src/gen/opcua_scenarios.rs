//! The generated OPC UA captures (`pcaps/opcua/`), one function each.
//! pcaps/README.md tells the story of each.
//!
//! Conventions: the client is 10.40.1.11 (hmi-1) on a port of its own per capture, the
//! server 10.30.1.10:4840 (plc-boiler-1); every capture starts at 2026-11-20T10:00:00Z
//! ([`T0`]) with the TCP handshake, HEL at +5 ms, each message answered 3 ms later,
//! the next exchange 20 ms after the previous one, and ends with CLO and a FIN close.

use std::net::Ipv4Addr;

use super::opcua::{self, Channel, Mode, NodeId, Request, UaExp, UaMsg, Value};
use super::tcp::{Capture, Conn, MS, T0};
use super::wire::Host;

/// A generated capture: its path under `pcaps/` (without extension) and its builder.
pub type Case = (&'static str, fn() -> anyhow::Result<Capture>);

/// Every OPC UA capture `gen_pcaps` writes.
pub const CASES: &[Case] = &[
    ("opcua/none_session", none_session),
    ("opcua/chunked", chunked),
    ("opcua/encrypted", encrypted),
];

pub const ENDPOINT: &str = "opc.tcp://10.30.1.10:4840/";
/// The buffer sizes and limits the client asks for and the server grants.
const HEL_LIMITS: [u32; 4] = [65_536, 65_536, 0, 0];
const ACK_LIMITS: [u32; 4] = [65_536, 65_536, 4_194_304, 64];
/// The client's application description.
pub const APP: [&str; 3] = ["urn:hmi-1:LineView", "urn:example:LineView", "LineView HMI"];

const RTT: u64 = 3 * MS;
const STEP: u64 = 20 * MS;

fn hmi() -> Host {
    Host::new(Ipv4Addr::new(10, 40, 1, 11), 128)
}
fn server() -> Host {
    Host::new(Ipv4Addr::new(10, 30, 1, 10), 64)
}

/// A UA TCP connection with its secure channel; `t` is when the next exchange starts.
pub struct UaLink {
    pub c: Conn,
    pub ch: Channel,
    pub t: u64,
}

impl UaLink {
    /// Over an open TCP connection: HEL/ACK at `t`, then OPN.
    pub fn start(cap: &mut Capture, c: Conn, ch: Channel, t: u64) -> Self {
        let mut l = UaLink { c, ch, t };
        let (h, a) = (
            opcua::hello(ENDPOINT, HEL_LIMITS),
            opcua::acknowledge(ACK_LIMITS),
        );
        l.pair(cap, &h, &a);
        l.ch.now = l.t;
        let (q, a) = l.ch.open();
        l.pair(cap, &q, &a);
        l
    }

    /// `q` at the current time, `a` 3 ms later; the next exchange 20 ms after `q`.
    pub fn pair(&mut self, cap: &mut Capture, q: &UaMsg, a: &UaMsg) {
        Channel::send(&mut self.c, cap, self.t, MS, q);
        let last = self.t + (q.chunks.len() as u64 - 1) * MS;
        Channel::send(&mut self.c, cap, last + RTT, MS, a);
        self.t = last + STEP;
    }

    /// A request and its response (`rsp` builds it), each in one chunk; returns the
    /// request's expected event.
    pub fn call(
        &mut self,
        cap: &mut Capture,
        req: impl FnOnce(&mut Channel) -> Request,
        rsp: impl FnOnce(&mut Channel, &Request) -> Request,
    ) -> UaExp {
        self.call_chunked(cap, req, rsp, 65_536)
    }

    /// As [`UaLink::call`], the request in chunks of at most `max_body` body octets.
    pub fn call_chunked(
        &mut self,
        cap: &mut Capture,
        req: impl FnOnce(&mut Channel) -> Request,
        rsp: impl FnOnce(&mut Channel, &Request) -> Request,
        max_body: usize,
    ) -> UaExp {
        self.ch.now = self.t;
        let q = req(&mut self.ch);
        let qm = self.ch.frame(b"MSG", &q, max_body);
        self.ch.now = self.t + (qm.chunks.len() as u64 - 1) * MS + RTT;
        let a = rsp(&mut self.ch, &q);
        let am = self.ch.frame(b"MSG", &a, 65_536);
        self.pair(cap, &qm, &am);
        qm.exp
    }

    /// CreateSession and ActivateSession (anonymous, or a user name with an encrypted
    /// password); returns the ActivateSession request's event.
    pub fn session(&mut self, cap: &mut Capture, user: Option<&str>) -> UaExp {
        self.call(
            cap,
            |ch| ch.create_session(ENDPOINT, &APP),
            |ch, q| ch.create_session_rsp(q),
        );
        let password = opcua::opaque(0x7777, 256);
        self.call(
            cap,
            |ch| ch.activate_session(user.map(|u| (u, &password[..]))),
            |ch, q| ch.activate_session_rsp(q),
        )
    }

    /// CloseSession, answered; CLO; the TCP close 20 ms later.
    pub fn finish(&mut self, cap: &mut Capture) {
        self.call(cap, |ch| ch.close_session(), |ch, q| ch.response(q, &[]));
        self.ch.now = self.t;
        let r = self.ch.close_channel();
        let m = self.ch.frame(b"CLO", &r, 65_536);
        Channel::send(&mut self.c, cap, self.t, MS, &m);
        self.c.close(cap, self.t + STEP);
    }
}

/// hmi-1's connection from `port`, handshake at [`T0`], HEL at +5 ms.
fn link(cap: &mut Capture, port: u16, mode: Mode, seed: u32) -> UaLink {
    let mut c = Conn::new(
        hmi(),
        port,
        server(),
        opcua::PORT,
        u32::from(port).wrapping_mul(0x9e37_79b1),
        seed.wrapping_mul(0x85eb_ca6b),
    );
    c.handshake(cap, T0);
    UaLink::start(
        cap,
        c,
        Channel::new(mode, 0x0000_0a01 + seed, 1, seed),
        T0 + 5 * MS,
    )
}

pub fn speed() -> NodeId {
    NodeId::s(2, "Line1.Speed")
}
pub fn plc_object() -> NodeId {
    NodeId::s(2, "Line1.Plc")
}
pub fn stop_method() -> NodeId {
    NodeId::s(2, "Line1.Plc.Stop")
}

/// 1: a whole session over a None channel: HEL/ACK, OPN, CreateSession,
/// ActivateSession (anonymous), Read of Line1.Speed and i=2258 (the server's current
/// time), Write ns=2;s=Line1.Speed = 1.2 (Double), Call of Line1.Plc's Stop method,
/// CloseSession — each answered — and CLO.
fn none_session() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut l = link(&mut cap, 49901, Mode::None, 1);
    l.session(&mut cap, None);
    l.call(
        &mut cap,
        |ch| ch.read(&[speed(), NodeId::Numeric(0, 2258)]),
        |ch, q| ch.read_rsp(q, &[Value::Double(1.0), Value::Double(0.0)]),
    );
    l.call(
        &mut cap,
        |ch| ch.write(&[(speed(), Value::Double(1.2))]),
        |ch, q| ch.results_rsp(q, 1),
    );
    l.call(
        &mut cap,
        |ch| ch.call(&plc_object(), &stop_method()),
        |ch, q| ch.call_rsp(q),
    );
    l.finish(&mut cap);
    Ok(cap)
}

/// 2: a session (anonymous, None) whose WriteRequest of Line1.Speed = 1.5 and
/// Line1.Enable = true travels in three chunks (C, C, F: 40 + 40 + the rest of the
/// body, each its own segment 1 ms apart); the event comes with the F chunk.
fn chunked() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut l = link(&mut cap, 49902, Mode::None, 2);
    l.session(&mut cap, None);
    l.call_chunked(
        &mut cap,
        |ch| {
            ch.write(&[
                (speed(), Value::Double(1.5)),
                (NodeId::s(2, "Line1.Enable"), Value::Boolean(true)),
            ])
        },
        |ch, q| ch.results_rsp(q, 2),
        40,
    );
    l.finish(&mut cap);
    Ok(cap)
}

/// 3: a Basic256Sha256 SignAndEncrypt channel: HEL/ACK in clear; OPN request and
/// response with the policy URI, certificates and thumbprints in clear and encrypted
/// bodies; CreateSession, ActivateSession, a Read and CloseSession as encrypted MSGs;
/// CLO encrypted.
fn encrypted() -> anyhow::Result<Capture> {
    let mut cap = Capture::new();
    let mut l = link(&mut cap, 49903, Mode::SignAndEncrypt, 3);
    l.session(&mut cap, Some("operator1"));
    l.call(
        &mut cap,
        |ch| ch.read(&[speed()]),
        |ch, q| ch.read_rsp(q, &[Value::Double(1.2)]),
    );
    l.finish(&mut cap);
    Ok(cap)
}

#[cfg(test)]
mod tests {
    use super::super::expect::sha1;
    use super::super::tshark;
    use super::*;

    /// output.md's operations of the services used here (a response: its request's).
    fn table_operation(service: u64) -> Option<&'static str> {
        match service {
            461 | 464 | 467 | 470 | 473 | 476 => Some("session"),
            631 | 634 => Some("read"),
            673 | 676 => Some("write"),
            712 | 715 => Some("other"),
            _ => None,
        }
    }

    /// The tshark fields compared, per frame, against the expected OPC UA events.
    const FIELDS: &[&str] = &[
        "ip.src",
        "opcua.transport.type",
        "opcua.transport.chunk",
        "opcua.transport.scid",
        "opcua.security.tokenid",
        "opcua.servicenodeid.numeric",
        "opcua.RequestHandle",
        "opcua.ServiceResult",
        "opcua.nodeid.string",
        "opcua.AttributeId",
        "opcua.Double",
        "opcua.Boolean",
        "opcua.security.spu",
        "opcua.security.scert",
        "opcua.security.rcthumb",
        "opcua.transport.endpoint",
        "opcua.transport.rbs",
        "opcua.transport.sbs",
        "opcua.transport.mms",
        "opcua.transport.mcc",
        "opcua.ApplicationUri",
        "opcua.ProductUri",
        "opcua.loctext.Text",
        "opcua.PolicyId",
        "opcua.UserName",
    ];

    /// Every generated OPC UA capture as tshark sees it: no malformed frame, good
    /// checksums; every frame that completes a UA TCP message (its F chunk) carries
    /// exactly one expected event with the same sender, message type, secure channel
    /// id, token id, service id (`opcua.servicenodeid.numeric`; none where the body
    /// is encrypted), request handle, service result, written and called nodes with
    /// their attribute and values, security policy, certificate thumbprints (SHA-1 of
    /// the certificate tshark shows), HEL endpoint and limits, the client's
    /// application, the identity token's user name; the operation is the table's.
    /// Intermediate (C) chunks carry no event.
    #[test]
    fn opcua_expected_events_agree_with_tshark() {
        use serde_json::Value as J;
        if !tshark::available("pcaps/opcua") {
            return;
        }
        let dir = tshark::temp_dir("tshark-opcua");
        let mut compared = 0;
        for (name, build) in CASES {
            let cap = build().unwrap();
            let (frames, expected) = tshark::frames(&cap, &dir, name, &[], FIELDS);
            let mut by_time: std::collections::BTreeMap<String, J> = Default::default();
            for l in expected.lines() {
                let e: J = serde_json::from_str(l).unwrap();
                let ts = e["timestamp"].as_str().unwrap().to_owned();
                assert!(
                    by_time.insert(ts, e).is_none(),
                    "{name}: two events, one frame"
                );
            }
            for f in &frames {
                let at = format!("{name} frame {} ({})", f.number, f.ts);
                let Some(e) = by_time.remove(&f.ts) else {
                    assert!(
                        f.all("opcua.transport.type").is_empty()
                            || f.all("opcua.transport.chunk") == ["C"],
                        "{at}: a message without an event"
                    );
                    continue;
                };
                let o = &e["opcua"];
                let sender = if e["direction"] == "to_server" {
                    &e["flow"]["src_ip"]
                } else {
                    &e["flow"]["dst_ip"]
                };
                let list = |field: &str, want: Vec<String>| {
                    assert_eq!(f.all(field), want, "{at}: {field}");
                };
                let opt = |v: &J| -> Vec<String> {
                    match v {
                        J::Null => vec![],
                        J::String(s) => vec![s.clone()],
                        v => vec![v.to_string()],
                    }
                };
                list("ip.src", opt(sender));
                list("opcua.transport.type", opt(&o["message_type"]));
                list("opcua.transport.chunk", vec!["F".into()]);
                list("opcua.transport.scid", opt(&o["secure_channel_id"]));
                list("opcua.security.tokenid", opt(&o["token_id"]));
                list("opcua.servicenodeid.numeric", opt(&o["service_id"]));
                assert_eq!(
                    o["encrypted"] == true,
                    o.get("service_id").is_some_and(J::is_null),
                    "{at}: encrypted and no service"
                );
                list("opcua.RequestHandle", opt(&o["request_handle"]));
                list(
                    "opcua.ServiceResult",
                    o["status_code"]
                        .as_u64()
                        .map(|c| format!("0x{c:08x}"))
                        .into_iter()
                        .collect(),
                );
                if let Some(nodes) = o["nodes"].as_array() {
                    let strip = |id: &str| id.split_once(";s=").map_or(id, |(_, s)| s).to_owned();
                    let ids: Vec<String> = nodes
                        .iter()
                        .flat_map(|n| {
                            let mut v = vec![strip(n["node_id"].as_str().unwrap())];
                            v.extend(n["method"].as_str().map(strip));
                            v
                        })
                        .collect();
                    list("opcua.nodeid.string", ids);
                    list(
                        "opcua.AttributeId",
                        nodes
                            .iter()
                            .filter_map(|n| n["attribute_id"].as_u64())
                            .map(|a| format!("0x{a:08x}"))
                            .collect(),
                    );
                    let vals = |p: fn(&J) -> Option<String>| -> Vec<String> {
                        nodes.iter().filter_map(|n| p(&n["value"])).collect()
                    };
                    list(
                        "opcua.Double",
                        vals(|v| {
                            v.as_f64()
                                .filter(|_| !v.is_boolean())
                                .map(|d| d.to_string())
                        }),
                    );
                    list(
                        "opcua.Boolean",
                        vals(|v| v.as_bool().map(|b| u8::from(b).to_string())),
                    );
                }
                list("opcua.security.spu", opt(&o["security_policy"]));
                let hex_bytes = |s: &str| -> Vec<u8> {
                    (0..s.len() / 2)
                        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
                        .collect()
                };
                let cert = f.all("opcua.security.scert");
                list(
                    "opcua.security.scert",
                    cert.iter().map(|c| (*c).to_owned()).collect(),
                );
                assert_eq!(
                    cert.first().map(|c| opcua::hex(&sha1(&hex_bytes(c)))),
                    o["sender_certificate_thumbprint"]
                        .as_str()
                        .map(str::to_owned),
                    "{at}: sender certificate thumbprint"
                );
                list(
                    "opcua.security.rcthumb",
                    opt(&o["receiver_certificate_thumbprint"]),
                );
                list("opcua.transport.endpoint", opt(&o["endpoint_url"]));
                for (field, key) in [
                    ("opcua.transport.rbs", "receive_buffer_size"),
                    ("opcua.transport.sbs", "send_buffer_size"),
                    ("opcua.transport.mms", "max_message_size"),
                    ("opcua.transport.mcc", "max_chunk_count"),
                ] {
                    list(field, opt(&o[key]));
                }
                let app = &o["application"];
                list("opcua.ApplicationUri", opt(&app["application_uri"]));
                list("opcua.ProductUri", opt(&app["product_uri"]));
                list("opcua.loctext.Text", opt(&app["application_name"]));
                list("opcua.UserName", opt(&o["user"]));
                if o["token_type"] == "anonymous" {
                    list("opcua.PolicyId", vec!["anonymous".into()]);
                }
                let op = e.get("operation").and_then(J::as_str);
                let svc = o["service_id"].as_u64().unwrap_or(0);
                if o["message_type"] == "MSG" && svc != 0 {
                    assert_eq!(op, table_operation(svc), "{at}: operation");
                }
                compared += 1;
            }
            assert!(
                by_time.is_empty(),
                "{name}: expected events at times with no frame: {:?}",
                by_time.keys().collect::<Vec<_>>()
            );
        }
        assert!(compared >= 40, "only {compared} OPC UA messages compared");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_capture_builds_with_increasing_times() {
        for (name, build) in CASES {
            let cap = build().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(cap.check_times().is_ok(), "{name}");
            assert!(cap.len() > 10, "{name}");
        }
    }
}
