//! Captures that exercise the rule engine, one detection (or one way to stay silent)
//! each: `pcaps/rules/<case>.pcap`, the policy it is replayed with
//! (`<case>.policy.toml`) and the alerts otwatch must raise for it
//! (`<case>.expected-alerts.jsonl`, one object per alert in output order; an empty file
//! means "must stay silent").
//!
//! The expected alerts are derived from the scenario and the contracts
//! (`shared/spec/policy.md`, "What the detections mean"; `shared/spec/output.md`,
//! "Alert"), never from otwatch's output: who sends what to whom and when is decided
//! here, and each expectation says which rule of the spec makes it fire.
//!
//! Conventions:
//!
//! * One plant for every case ([`BASE_POLICY`]): zones enterprise, engineering, hmi,
//!   cell-1, cell-2; declared assets plc-boiler-1, plc-2 (cell-1), plc-3 (cell-2), ews-1,
//!   ews-2 (engineering stations), hmi-1, historian-1 (enterprise) and laptop-7 (role
//!   `other`, in the engineering zone); conduits engineering -> cell-1 and hmi -> cell-1
//!   over Modbus. A case adds windows, setpoints or conduits.
//! * `repeat_interval = 0` (folding off) except in the `repeats` case: a detection case
//!   shows every alert its detection raises, not what folding leaves of them.
//! * Time zone Europe/Berlin unless a case says otherwise. 2026-11-20 is a Friday; in
//!   November Berlin is UTC+1 (CET). Each case states the local time of what matters.
//! * Every operation is a request from the Modbus client; the server answers normally
//!   3 ms later (responses never alert: output.md, operation alerts fire on requests).
//! * The expected fields are those the contract defines and the scenario determines:
//!   `timestamp`, `sensor`, `alert.kind`, `alert.repeats`, the `flow` block (with the
//!   Community ID and zones), `direction` (PDU alerts), `protocol` (except `new_asset`),
//!   `operation` (PDU alerts with a well-defined operation), `src_asset`, `dst_asset`
//!   (`null` = not a declared asset).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::dnp3::{self, file_mode, Apdu, Dnp3Exp};
use super::dnp3_scenarios::{file_write_session, LOGIC_FILE, MASTER, OUTSTATION};
use super::expect::{community_id, rfc3339_micros, FlowExp};
use super::modbus::{self as mb, fc, umas, Adu};
use super::opcua::{self, Channel, Mode, NodeId, UaExp, Value};
use super::opcua_scenarios::{plc_object, speed, stop_method, UaLink};
use super::s7::{self, size, Item, S7Exp, S7Pdu, Session};
use super::s7_scenarios::{download_session, PG_TSAP, PLC_TSAP};
use super::scenarios::{self, block};
use super::tcp::{Capture, Conn, Side, MS, SEC, T0};
use super::wire::{self, Host, ACK, PSH, RST, SYN};

/// A rule case: its name under `pcaps/rules/` and its builder.
pub type Case = (&'static str, fn() -> RuleCase);

/// Every rule case `gen_pcaps` writes, under `pcaps/rules/`.
pub const CASES: &[Case] = &[
    ("download_outside_window", download_outside_window),
    (
        "download_inside_weekly_window",
        download_inside_weekly_window,
    ),
    (
        "download_inside_oneoff_window_with_sources",
        download_inside_oneoff_window_with_sources,
    ),
    ("oneoff_window_expired", oneoff_window_expired),
    ("window_dst_europe", window_dst_europe),
    ("window_dst_us", window_dst_us),
    ("setpoint_unauthorized_writer", setpoint_unauthorized_writer),
    ("setpoint_authorized_in_range", setpoint_authorized_in_range),
    ("setpoint_out_of_range", setpoint_out_of_range),
    ("setpoint_adjacent_write", setpoint_adjacent_write),
    ("setpoint_overlapping_range", setpoint_overlapping_range),
    ("new_conduit", new_conduit),
    ("approved_conduit", approved_conduit),
    ("intra_zone", intra_zone),
    ("conduit_no_pdu", conduit_no_pdu),
    ("unauthorized_write", unauthorized_write),
    ("plc_mode_change", plc_mode_change),
    ("device_restart", device_restart),
    ("program_upload", program_upload),
    ("new_asset", new_asset),
    ("protocol_anomaly", protocol_anomaly),
    ("repeats", repeats),
    ("live_latency", live_latency),
    ("s7_download_outside_window", s7_download_outside_window),
    ("s7_plc_stop", s7_plc_stop),
    (
        "s7_setpoint_unauthorized_writer",
        s7_setpoint_unauthorized_writer,
    ),
    ("s7_credential", s7_credential),
    (
        "dnp3_setpoint_unauthorized_writer",
        dnp3_setpoint_unauthorized_writer,
    ),
    ("dnp3_cold_restart", dnp3_cold_restart),
    ("dnp3_program_file", dnp3_program_file),
    ("opcua_setpoint_write", opcua_setpoint_write),
    ("opcua_credentials", opcua_credentials),
    ("opcua_method_stop", opcua_method_stop),
];

/// A generated capture with its policy and the alerts it must raise.
#[derive(Debug)]
pub struct RuleCase {
    pub cap: Capture,
    pub policy: String,
    pub alerts: Vec<AlertExp>,
}

impl RuleCase {
    /// Writes `<name>.pcap`, `<name>.policy.toml` and `<name>.expected-alerts.jsonl`
    /// into `dir`.
    pub fn write(&self, dir: &std::path::Path, name: &str) -> anyhow::Result<()> {
        self.cap.write_pcap(dir, name)?;
        std::fs::write(dir.join(format!("{name}.policy.toml")), &self.policy)?;
        write_alerts(
            &dir.join(format!("{name}.expected-alerts.jsonl")),
            &self.alerts,
        )
    }
}

/// Writes expected alerts as JSON lines.
pub fn write_alerts(path: &std::path::Path, alerts: &[AlertExp]) -> anyhow::Result<()> {
    let mut s = String::new();
    for a in alerts {
        s.push_str(&a.json_line());
        s.push('\n');
    }
    std::fs::write(path, s)?;
    Ok(())
}

// ---- the plant --------------------------------------------------------------------

/// A host of the plant: its address, its asset name (`None`: not declared) and its
/// zone (`"unknown"`: in no zone).
#[derive(Debug, Clone, Copy)]
pub struct Node {
    pub host: Host,
    pub name: Option<&'static str>,
    pub zone: &'static str,
}

const fn node(ip: [u8; 4], ttl: u8, name: Option<&'static str>, zone: &'static str) -> Node {
    Node {
        host: Host {
            mac: [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]],
            ip: Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]),
            ttl,
        },
        name,
        zone,
    }
}

pub const PLC1: Node = node([10, 30, 1, 10], 64, Some("plc-boiler-1"), "cell-1");
const PLC2: Node = node([10, 30, 1, 11], 64, Some("plc-2"), "cell-1");
const PLC3: Node = node([10, 30, 2, 10], 64, Some("plc-3"), "cell-2");
pub const EWS1: Node = node([10, 20, 1, 5], 128, Some("ews-1"), "engineering");
const EWS2: Node = node([10, 20, 1, 6], 128, Some("ews-2"), "engineering");
pub const HMI1: Node = node([10, 40, 1, 11], 128, Some("hmi-1"), "hmi");
const HISTORIAN: Node = node([10, 0, 5, 20], 128, Some("historian-1"), "enterprise");
const LAPTOP: Node = node([10, 20, 1, 77], 128, Some("laptop-7"), "engineering");
/// Undeclared, inside cell-1.
const STRANGER_CELL: Node = node([10, 30, 1, 77], 64, None, "cell-1");
/// Undeclared, inside the engineering zone.
const STRANGER_ENG: Node = node([10, 20, 1, 99], 64, None, "engineering");
/// Undeclared and in no zone.
const OUTSIDER: Node = node([192, 168, 77, 5], 64, None, "unknown");
/// Undeclared, inside cell-1; it only pings.
const PINGER: Node = node([10, 30, 1, 78], 64, None, "cell-1");

/// The plant every case starts from (see the module docs). `{header}`, `{timezone}`
/// and `{repeat}` are filled in per case.
const BASE_POLICY: &str = r#"[sensor]
name = "rules-lab"
timezone = "{timezone}"
repeat_interval = {repeat}

[zones]
enterprise  = ["10.0.0.0/16"]
engineering = ["10.20.1.0/24"]
hmi         = ["10.40.1.0/24"]
cell-1      = ["10.30.1.0/24"]
cell-2      = ["10.30.2.0/24"]

[[assets]]
name = "plc-boiler-1"
ip   = "10.30.1.10"
role = "plc"

[[assets]]
name = "plc-2"
ip   = "10.30.1.11"
role = "plc"

[[assets]]
name = "plc-3"
ip   = "10.30.2.10"
role = "plc"

[[assets]]
name = "ews-1"
ip   = "10.20.1.5"
role = "engineering"

[[assets]]
name = "ews-2"
ip   = "10.20.1.6"
role = "engineering"

[[assets]]
name = "hmi-1"
ip   = "10.40.1.11"
role = "hmi"

[[assets]]
name = "historian-1"
ip   = "10.0.5.20"
role = "historian"

[[assets]]
name = "laptop-7"
ip   = "10.20.1.77"
role = "other"

[[conduits]]
from = "engineering"
to   = "cell-1"
protocols = ["modbus"]

[[conduits]]
from = "hmi"
to   = "cell-1"
protocols = ["modbus"]
"#;

/// The sensor name of [`BASE_POLICY`].
const SENSOR: &str = "rules-lab";

/// The policy of a case: a header saying what the case is, the base plant with the
/// case's time zone and repeat interval, and the case's own definitions.
fn policy(name: &str, about: &str, timezone: &str, repeat: &str, extra: &str) -> String {
    let mut s = format!(
        "# pcaps/rules/{name}.policy.toml: written by `cargo xtask gen-pcaps`\n\
         # (xtask/src/gen/rules.rs); edit the generator, not this file.\n"
    );
    for line in about.lines() {
        let _ = writeln!(s, "# {}", line.trim());
    }
    s.push('\n');
    s.push_str(
        &BASE_POLICY
            .replace("{timezone}", timezone)
            .replace("{repeat}", repeat),
    );
    if !extra.is_empty() {
        s.push('\n');
        s.push_str(extra.trim_start());
    }
    s
}

/// Folding off: every alert is reported.
const NO_FOLDING: &str = "0  # folding off: this case shows every alert its detection raises";
const BERLIN: &str = "Europe/Berlin";

const WEEKLY_CELL_1: &str = r#"[[windows]]
name = "weekly-maintenance"
applies_to = ["cell-1"]
weekly = ["Sat 22:00-Sun 06:00"]
"#;

/// The boiler temperature setpoint: holding registers 100-109 of unit 1 on
/// plc-boiler-1, writable by ews-1 and hmi-1, bounds 0..=95.
const TEMP_SETPOINT: &str = r#"[[setpoints]]
name    = "boiler-1 temperature setpoint"
asset   = "plc-boiler-1"
writers = ["ews-1", "hmi-1"]
min = 0.0
max = 95.0
modbus = { unit = 1, holding_registers = "100-109" }
"#;

// ---- time -------------------------------------------------------------------------

/// Microseconds since the epoch of a UTC date and time (proleptic Gregorian).
pub fn utc(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> u64 {
    // Days from 1970-01-01 to y-mo-d (H. Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((mo + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    (secs as u64) * SEC
}

// ---- connections --------------------------------------------------------------------

const UNIT: u8 = 1;
/// The session key plc-boiler-1 hands out for a UMAS reservation.
const KEY: u8 = 0x5c;

/// A TCP connection between two nodes with its Modbus transaction counter.
struct Link {
    c: Conn,
    client: Node,
    server: Node,
    tid: u16,
}

/// A fixed ISN per connection, different for every client port and side.
fn isn(port: u16, side: u32) -> u32 {
    u32::from(port).wrapping_mul(0x9e37_79b1) ^ side
}

impl Link {
    /// A connection from `client:port` to `server:server_port`, handshake at `t`.
    fn open(
        cap: &mut Capture,
        client: Node,
        port: u16,
        server: Node,
        server_port: u16,
        t: u64,
    ) -> Link {
        let mut c = Conn::new(
            client.host,
            port,
            server.host,
            server_port,
            isn(port, 0x0c11_e470),
            isn(port, 0x5e7e_0000),
        );
        c.handshake(cap, t);
        Link {
            c,
            client,
            server,
            tid: 1,
        }
    }

    /// A Modbus/TCP connection (server port 502), handshake at `t`.
    fn modbus(cap: &mut Capture, client: Node, port: u16, server: Node, t: u64) -> Link {
        Link::open(cap, client, port, server, 502, t)
    }

    /// Sends the request `build(tid)` at `t` and its normal response 3 ms later.
    fn call(&mut self, cap: &mut Capture, t: u64, build: impl FnOnce(u16) -> Adu) -> u64 {
        let req = build(self.tid);
        self.tid = self.tid.wrapping_add(1);
        match respond(&req) {
            Some(rsp) => self.c.exchange(cap, t, 3 * MS, &req, &rsp),
            None => self.c.send_adu(cap, t, &req),
        }
        t
    }

    /// A UMAS request (unit 0, the reservation's key) at `t`, answered OK with
    /// `rsp_data`.
    fn umas(&mut self, cap: &mut Capture, t: u64, function: u8, data: &[u8], rsp_data: &[u8]) {
        let req = mb::umas_req(self.tid, 0, KEY, function, data);
        self.tid = self.tid.wrapping_add(1);
        let rsp = mb::umas_rsp(&req, umas::STATUS_OK, rsp_data);
        self.c.exchange(cap, t, 3 * MS, &req, &rsp);
    }

    /// Takes a UMAS reservation at `t` (key 0 in the request, [`KEY`] in the answer).
    fn reserve(&mut self, cap: &mut Capture, t: u64) {
        let mut name = vec![0x00, 0x00, 0x05];
        name.extend_from_slice(b"EWS-1");
        let req = mb::umas_req(self.tid, 0, 0x00, umas::TAKE_PLC_RESERVATION, &name);
        self.tid = self.tid.wrapping_add(1);
        let rsp = mb::umas_rsp(&req, umas::STATUS_OK, &[KEY]);
        self.c.exchange(cap, t, 3 * MS, &req, &rsp);
    }

    /// Client FIN at `t` (server FIN 200 µs later, last ACK 400 µs later).
    fn close(&mut self, cap: &mut Capture, t: u64) {
        self.c.close(cap, t);
    }

    fn flow(&self) -> FlowExp {
        self.c.flow.clone()
    }

    /// An alert on a request PDU of this connection sent at `ts`.
    fn pdu_alert(&self, ts: u64, kind: &'static str, operation: &'static str) -> AlertExp {
        AlertExp {
            direction: Some("to_server"),
            protocol: Some("modbus".into()),
            operation: Some(operation),
            ..self.flow_alert(ts, kind)
        }
    }

    /// A flow-level alert (new_asset, new_conduit): initiator and responder.
    fn flow_alert(&self, ts: u64, kind: &'static str) -> AlertExp {
        AlertExp {
            ts,
            kind,
            repeats: 0,
            flow: self.flow(),
            src_zone: self.client.zone,
            dst_zone: self.server.zone,
            direction: None,
            protocol: None,
            operation: None,
            src_asset: self.client.name,
            dst_asset: self.server.name,
            evidence: None,
        }
    }
}

/// The normal response to a request, or `None` where the server does not answer
/// (FC8/04 force listen only, spec 6.8.1).
fn respond(req: &Adu) -> Option<Adu> {
    let p = &req.pdu;
    let n = |q: Option<u16>| usize::from(q.unwrap_or(0));
    // Plausible register contents: a function of the address.
    let regs = |addr: Option<u16>, q: usize| -> Vec<u16> {
        let a = addr.unwrap_or(0);
        (0..q as u16)
            .map(|i| a.wrapping_add(i).wrapping_mul(7) % 1000)
            .collect()
    };
    Some(match p.function_code {
        fc::READ_COILS | fc::READ_DISCRETE_INPUTS => {
            let bits: Vec<bool> = (0..n(p.quantity)).map(|i| i % 3 == 0).collect();
            mb::read_bits_rsp(req, &bits)
        }
        fc::READ_HOLDING_REGISTERS | fc::READ_INPUT_REGISTERS => {
            mb::read_regs_rsp(req, &regs(p.address, n(p.quantity)))
        }
        fc::WRITE_SINGLE_COIL | fc::WRITE_SINGLE_REGISTER | fc::MASK_WRITE_REGISTER => {
            mb::echo(req)
        }
        fc::DIAGNOSTICS if p.sub_function == Some(4) => return None,
        fc::DIAGNOSTICS => mb::echo(req),
        fc::WRITE_MULTIPLE_COILS | fc::WRITE_MULTIPLE_REGISTERS => mb::write_multi_rsp(req),
        fc::READ_WRITE_MULTIPLE_REGISTERS => {
            mb::read_write_regs_rsp(req, &regs(p.read_address, n(p.read_quantity)))
        }
        fc::UMAS => mb::umas_rsp(req, umas::STATUS_OK, &[]),
        _ => return None,
    })
}

/// A strategy transfer to the PLC (UMAS "upload": output.md's program_download) on its
/// own connection, with no stop or start: handshake 100 ms before `t`, reservation
/// 60 ms before, initialize (0x30) at `t`, three 64-byte blocks (0x31) and the end
/// (0x32) 60 ms apart, release, close. Returns the link (closed) for its alerts.
fn download_flow(cap: &mut Capture, client: Node, port: u16, server: Node, t: u64) -> Link {
    let mut l = Link::modbus(cap, client, port, server, t - 100 * MS);
    l.reserve(cap, t - 60 * MS);
    l.umas(
        cap,
        t,
        umas::INITIALIZE_UPLOAD,
        &[0x00, 0x01],
        &[0x00, 0x04, 0x00, 0x00],
    );
    let mut at = t;
    for n in 1..=3u16 {
        at += 60 * MS;
        let data = block(n, 64);
        let mut d = Vec::with_capacity(4 + data.len());
        d.extend_from_slice(&n.to_le_bytes());
        d.extend_from_slice(&(data.len() as u16).to_le_bytes());
        d.extend_from_slice(&data);
        l.umas(cap, at, umas::UPLOAD_BLOCK, &d, &[]);
    }
    at += 60 * MS;
    l.umas(cap, at, umas::END_STRATEGY_UPLOAD, &[0x03, 0x00], &[]);
    at += 60 * MS;
    l.umas(cap, at, umas::RELEASE_PLC_RESERVATION, &[], &[]);
    l.close(cap, at + 50 * MS);
    l
}

fn f32_words(v: f32) -> [u16; 2] {
    let b = v.to_bits();
    [(b >> 16) as u16, b as u16]
}

// ---- expected alerts ------------------------------------------------------------------

/// One expected alert: the fields of output.md's alert object the scenario determines.
#[derive(Debug, Clone)]
pub struct AlertExp {
    pub ts: u64,
    pub kind: &'static str,
    pub repeats: u64,
    pub flow: FlowExp,
    pub src_zone: &'static str,
    pub dst_zone: &'static str,
    /// `None`: not compared (flow-level alerts have no PDU direction).
    pub direction: Option<&'static str>,
    /// `None`: not compared.
    pub protocol: Option<String>,
    /// `None`: not compared.
    pub operation: Option<&'static str>,
    /// `None`: the address is not a declared asset (`null`).
    pub src_asset: Option<&'static str>,
    pub dst_asset: Option<&'static str>,
    /// The `evidence` object as JSON; `None`: not compared.
    pub evidence: Option<String>,
}

impl AlertExp {
    fn with_repeats(mut self, n: u64) -> Self {
        self.repeats = n;
        self
    }

    /// The alert as one JSON line (no newline), keys in a fixed order.
    pub fn json_line(&self) -> String {
        let js = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
        let opt = |v: Option<&str>| v.map_or_else(|| "null".to_owned(), js);
        let f = &self.flow;
        let mut s = String::with_capacity(400);
        let _ = write!(
            s,
            "{{\"schema\":\"otwatch/1\",\"event_type\":\"alert\",\"timestamp\":\"{}\",\
             \"sensor\":{},\"alert\":{{\"kind\":\"{}\",\"repeats\":{}}},\
             \"flow\":{{\"src_ip\":\"{}\",\"src_port\":{},\"dst_ip\":\"{}\",\"dst_port\":{},\
             \"transport\":\"{}\",\"community_id\":{},\"src_zone\":{},\"dst_zone\":{}}}",
            rfc3339_micros(self.ts),
            js(SENSOR),
            self.kind,
            self.repeats,
            f.src_ip,
            f.src_port,
            f.dst_ip,
            f.dst_port,
            f.transport,
            js(&f.community_id),
            js(self.src_zone),
            js(self.dst_zone),
        );
        if let Some(d) = self.direction {
            let _ = write!(s, ",\"direction\":{}", js(d));
        }
        if let Some(p) = &self.protocol {
            let _ = write!(s, ",\"protocol\":{}", js(p));
        }
        if let Some(o) = self.operation {
            let _ = write!(s, ",\"operation\":{}", js(o));
        }
        let _ = write!(
            s,
            ",\"src_asset\":{},\"dst_asset\":{}",
            opt(self.src_asset),
            opt(self.dst_asset)
        );
        if let Some(e) = &self.evidence {
            let _ = write!(s, ",\"evidence\":{e}");
        }
        s.push('}');
        s
    }

    /// The same alert with another sensor name (the demo policy's).
    pub fn json_line_for(&self, sensor: &str) -> String {
        self.json_line().replacen(
            &format!("\"sensor\":\"{SENSOR}\""),
            &format!("\"sensor\":\"{sensor}\""),
            1,
        )
    }
}

const DOWNLOAD: &str = "program_download_outside_window";
const SP_UNAUTH: &str = "unauthorized_setpoint_write";
const SP_RANGE: &str = "setpoint_out_of_range";
const NEW_CONDUIT: &str = "new_conduit";
const UNAUTH_WRITE: &str = "unauthorized_write";
const MODE: &str = "plc_mode_change";
const RESTART: &str = "device_restart";
const UPLOAD: &str = "program_upload";
const NEW_ASSET: &str = "new_asset";
const ANOMALY: &str = "protocol_anomaly";
const CREDENTIAL: &str = "credential_unusual_origin";

// ---- program downloads and windows ----------------------------------------------------

/// Downloads towards cell-1 outside its weekly window (Sat 22:00 - Sun 06:00 Berlin),
/// and one towards cell-2, to which no window applies. Each session (reservation,
/// initialize, three blocks, end) raises one alert, on its initialize request: one per
/// session, not per block (policy.md).
fn download_outside_window() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    // Fri 2026-11-20 11:00 CET: a weekday, no window open.
    let t = T0;
    let l = download_flow(&mut cap, EWS1, 50101, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-11-21 21:59:00 CET: one minute before the window opens.
    let t = utc(2026, 11, 21, 20, 59, 0);
    let l = download_flow(&mut cap, EWS1, 50102, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-11-21 23:00 CET, inside cell-1's window, but towards plc-3 in cell-2: the
    // window applies to cell-1 only.
    let t = utc(2026, 11, 21, 22, 0, 0);
    let l = download_flow(&mut cap, EWS1, 50103, PLC3, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sun 2026-11-22 06:00:00.000000 CET exactly: the window is [start, end), closed.
    let t = utc(2026, 11, 22, 5, 0, 0);
    let l = download_flow(&mut cap, EWS1, 50104, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    RuleCase {
        cap,
        policy: policy(
            "download_outside_window",
            "Program downloads outside the weekly window of cell-1: four sessions, four alerts.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{WEEKLY_CELL_1}\n[[conduits]]\nfrom = \"engineering\"\nto   = \"cell-2\"\nprotocols = [\"modbus\"]\n"
            ),
        ),
        alerts,
    }
}

/// Downloads inside weekly windows: the window's first microsecond, its last second,
/// a span that wraps past the end of the week (Sun -> Mon), and a window that applies
/// by asset name. Silent.
fn download_inside_weekly_window() -> RuleCase {
    let mut cap = Capture::new();
    // Sat 2026-11-21 22:00:00.000000 CET: the window opens (start inclusive).
    download_flow(&mut cap, EWS1, 50111, PLC1, utc(2026, 11, 21, 21, 0, 0));
    // Sun 2026-11-22 05:59:59 CET: the whole session (0.4 s) before 06:00.
    download_flow(&mut cap, EWS1, 50112, PLC1, utc(2026, 11, 22, 4, 59, 59));
    // Sun 2026-11-22 23:30 CET and Mon 2026-11-23 01:30 CET: "Sun 22:00-Mon 02:00"
    // wraps past the week's end.
    download_flow(&mut cap, EWS1, 50113, PLC1, utc(2026, 11, 22, 22, 30, 0));
    download_flow(&mut cap, EWS1, 50114, PLC1, utc(2026, 11, 23, 0, 30, 0));
    // Wed 2026-11-25 12:30 CET towards plc-2: its own window, by asset name.
    download_flow(&mut cap, EWS1, 50115, PLC2, utc(2026, 11, 25, 11, 30, 0));
    RuleCase {
        cap,
        policy: policy(
            "download_inside_weekly_window",
            "Program downloads inside weekly windows (also wrapping Sunday to Monday): silent.",
            BERLIN,
            NO_FOLDING,
            r#"[[windows]]
name = "weekly-maintenance"
applies_to = ["cell-1"]
weekly = ["Sat 22:00-Sun 06:00", "Sun 22:00-Mon 02:00"]

[[windows]]
name = "plc-2 midweek"
applies_to = ["plc-2"]
weekly = ["Wed 12:00-Wed 13:00"]
"#,
        ),
        alerts: vec![],
    }
}

/// The one-off window of a change ticket, 2026-11-20 11:00-13:00 CET (10:00-12:00 UTC),
/// for plc-boiler-1 and source ews-1 only.
const ONEOFF_WINDOW: &str = r#"[[windows]]
name = "CHG-4711 boiler-1 logic update"
ticket = "CHG-4711"
applies_to = ["plc-boiler-1"]
sources = ["ews-1"]
start = "2026-11-20T11:00:00+01:00"
end   = "2026-11-20T12:00:00Z"
"#;

/// Inside the one-off window: ews-1 (a listed source) downloads silently; ews-2, not
/// listed, downloads in the same window and raises the alert (policy.md: "where the
/// window lists `sources`, covers the source").
fn download_inside_oneoff_window_with_sources() -> RuleCase {
    let mut cap = Capture::new();
    // 11:30 CET.
    download_flow(&mut cap, EWS1, 50121, PLC1, T0 + 30 * 60 * SEC);
    // 11:45 CET.
    let t = T0 + 45 * 60 * SEC;
    let l = download_flow(&mut cap, EWS2, 50122, PLC1, t);
    RuleCase {
        cap,
        policy: policy(
            "download_inside_oneoff_window_with_sources",
            "A one-off window that lists its sources: ews-1 is covered, ews-2 is not.",
            BERLIN,
            NO_FOLDING,
            ONEOFF_WINDOW,
        ),
        alerts: vec![l.pdu_alert(t, DOWNLOAD, "program_download")],
    }
}

/// The one-off window expires by itself: a session in its last second is silent; one
/// starting at `end` (exclusive) and one the next day alert.
fn oneoff_window_expired() -> RuleCase {
    let mut cap = Capture::new();
    // 12:59:59 CET (11:59:59Z): the whole session before the end.
    download_flow(&mut cap, EWS1, 50131, PLC1, utc(2026, 11, 20, 11, 59, 59));
    // 13:00:00.000000 CET: `end` itself.
    let t1 = utc(2026, 11, 20, 12, 0, 0);
    let l1 = download_flow(&mut cap, EWS1, 50132, PLC1, t1);
    // Sat 2026-11-21 10:00 CET: long expired.
    let t2 = utc(2026, 11, 21, 9, 0, 0);
    let l2 = download_flow(&mut cap, EWS1, 50133, PLC1, t2);
    RuleCase {
        cap,
        policy: policy(
            "oneoff_window_expired",
            "A one-off window that has expired: downloads after its end alert.",
            BERLIN,
            NO_FOLDING,
            ONEOFF_WINDOW,
        ),
        alerts: vec![
            l1.pdu_alert(t1, DOWNLOAD, "program_download"),
            l2.pdu_alert(t2, DOWNLOAD, "program_download"),
        ],
    }
}

/// The weekly window "Sat 22:00-Sun 06:00" (Berlin) across the 2026 European changes:
/// summer time starts Sun 2026-03-29 02:00 CET (-> 03:00 CEST, UTC+2) and ends Sun
/// 2026-10-25 03:00 CEST (-> 02:00 CET, UTC+1). Each time below is chosen so that a
/// fixed offset (the one of the other season) would decide otherwise.
fn window_dst_europe() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    // Sun 2026-03-29 05:30 CEST (03:30Z): open. Silent.
    download_flow(&mut cap, EWS1, 50141, PLC1, utc(2026, 3, 29, 3, 30, 0));
    // Sun 2026-03-29 06:30 CEST (04:30Z): closed (with UTC+1 it would be 05:30, open).
    let t = utc(2026, 3, 29, 4, 30, 0);
    let l = download_flow(&mut cap, EWS1, 50142, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-10-24 21:59:59 CEST (19:59:59Z): not yet open.
    let t = utc(2026, 10, 24, 19, 59, 59);
    let l = download_flow(&mut cap, EWS1, 50143, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-10-24 22:30 CEST (20:30Z): open (with UTC+1 it would be 21:30, closed).
    download_flow(&mut cap, EWS1, 50144, PLC1, utc(2026, 10, 24, 20, 30, 0));
    // Sun 2026-10-25 05:30 CET (04:30Z): open (with UTC+2 it would be 06:30, closed).
    download_flow(&mut cap, EWS1, 50145, PLC1, utc(2026, 10, 25, 4, 30, 0));
    // Sun 2026-10-25 06:00 CET (05:00Z): the window's end, closed.
    let t = utc(2026, 10, 25, 5, 0, 0);
    let l = download_flow(&mut cap, EWS1, 50146, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    RuleCase {
        cap,
        policy: policy(
            "window_dst_europe",
            "A weekly window across the 2026 European daylight-saving changes.",
            BERLIN,
            NO_FOLDING,
            WEEKLY_CELL_1,
        ),
        alerts,
    }
}

/// The same weekly window in America/Chicago across the 2026 US changes: daylight time
/// starts Sun 2026-03-08 02:00 CST (-> 03:00 CDT, UTC-5) and ends Sun 2026-11-01
/// 02:00 CDT (-> 01:00 CST, UTC-6).
fn window_dst_us() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    // Sun 2026-03-08 05:30 CDT (10:30Z): open. Silent.
    download_flow(&mut cap, EWS1, 50151, PLC1, utc(2026, 3, 8, 10, 30, 0));
    // Sun 2026-03-08 06:30 CDT (11:30Z): closed (with UTC-6 it would be 05:30, open).
    let t = utc(2026, 3, 8, 11, 30, 0);
    let l = download_flow(&mut cap, EWS1, 50152, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-10-31 21:30 CDT (2026-11-01 02:30Z): not yet open.
    let t = utc(2026, 11, 1, 2, 30, 0);
    let l = download_flow(&mut cap, EWS1, 50153, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    // Sat 2026-10-31 22:30 CDT (03:30Z): open (with UTC-6 it would be 21:30, closed).
    download_flow(&mut cap, EWS1, 50154, PLC1, utc(2026, 11, 1, 3, 30, 0));
    // Sun 2026-11-01 05:30 CST (11:30Z): open (with UTC-5 it would be 06:30, closed).
    download_flow(&mut cap, EWS1, 50155, PLC1, utc(2026, 11, 1, 11, 30, 0));
    // Sun 2026-11-01 06:00 CST (12:00Z): the window's end, closed.
    let t = utc(2026, 11, 1, 12, 0, 0);
    let l = download_flow(&mut cap, EWS1, 50156, PLC1, t);
    alerts.push(l.pdu_alert(t, DOWNLOAD, "program_download"));
    RuleCase {
        cap,
        policy: policy(
            "window_dst_us",
            "A weekly window across the 2026 US daylight-saving changes (America/Chicago).",
            "America/Chicago",
            NO_FOLDING,
            WEEKLY_CELL_1,
        ),
        alerts,
    }
}

// ---- setpoints --------------------------------------------------------------------------

/// The temperature setpoint, a coil block writable by ews-1 only, and the approved
/// conduit enterprise -> cell-1 (the historian polls the PLC).
fn setpoint_unauthorized_writer() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    // historian-1 (role historian) writes register 105 = 50, in range: the setpoint
    // alert, and unauthorized_write because a historian may not write to a PLC; spec
    // order: unauthorized_setpoint_write before unauthorized_write.
    let mut l = Link::modbus(&mut cap, HISTORIAN, 50201, PLC1, T0);
    l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 10)
    });
    let t = l.call(&mut cap, T0 + 100 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 105, 50)
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write"));
    l.close(&mut cap, T0 + 200 * MS);
    // ews-2, an engineering station but not a writer: only the setpoint alert.
    let mut l = Link::modbus(&mut cap, EWS2, 50202, PLC1, T0 + SEC);
    let t = l.call(&mut cap, T0 + SEC + 10 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 100, 60)
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    // ... and FC5 to coil 16, next to the interlock coils 0-15: silent.
    l.call(&mut cap, T0 + SEC + 100 * MS, |tid| {
        mb::write_single_coil(tid, UNIT, 16, true)
    });
    l.close(&mut cap, T0 + SEC + 200 * MS);
    // hmi-1 writes coils 10-19 (FC15): a writer of the temperature setpoint, not of
    // the interlocks.
    let mut l = Link::modbus(&mut cap, HMI1, 50203, PLC1, T0 + 2 * SEC);
    let t = l.call(&mut cap, T0 + 2 * SEC + 10 * MS, |tid| {
        mb::write_multi_coils(tid, UNIT, 10, &[true; 10])
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    l.close(&mut cap, T0 + 2 * SEC + 100 * MS);
    // ews-1 writes coil 3 and register 100: its own setpoints, in range. Silent.
    let mut l = Link::modbus(&mut cap, EWS1, 50204, PLC1, T0 + 3 * SEC);
    l.call(&mut cap, T0 + 3 * SEC + 10 * MS, |tid| {
        mb::write_single_coil(tid, UNIT, 3, false)
    });
    l.call(&mut cap, T0 + 3 * SEC + 50 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 100, 70)
    });
    l.close(&mut cap, T0 + 3 * SEC + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "setpoint_unauthorized_writer",
            "Setpoints written by hosts that are not their writers.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{TEMP_SETPOINT}\n[[setpoints]]\nname    = \"burner interlocks\"\nasset   = \"plc-boiler-1\"\nwriters = [\"ews-1\"]\nmodbus = {{ unit = 1, coils = \"0-15\" }}\n\n[[conduits]]\nfrom = \"enterprise\"\nto   = \"cell-1\"\nprotocols = [\"modbus\"]\n"
            ),
        ),
        alerts,
    }
}

/// Setpoints of other value types: an f32 over two registers (big word order) and an
/// i16.
const TYPED_SETPOINTS: &str = r#"
[[setpoints]]
name    = "boiler-1 pressure limit"
asset   = "plc-boiler-1"
writers = ["ews-1"]
min = 0.0
max = 10.0
type = "f32"
word_order = "big"
modbus = { unit = 1, holding_registers = "200-201" }

[[setpoints]]
name    = "boiler-1 trim"
asset   = "plc-boiler-1"
writers = ["ews-1"]
min = -50.0
max = 50.0
type = "i16"
modbus = { unit = 1, holding_registers = "300" }
"#;

/// Authorized writers writing values inside the bounds, the bounds themselves
/// included (inclusive), as u16, f32 and i16. Silent.
fn setpoint_authorized_in_range() -> RuleCase {
    let mut cap = Capture::new();
    let mut l = Link::modbus(&mut cap, HMI1, 50211, PLC1, T0);
    l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 100, 80)
    });
    l.close(&mut cap, T0 + 100 * MS);
    let mut l = Link::modbus(&mut cap, EWS1, 50212, PLC1, T0 + SEC);
    let mut t = T0 + SEC + 10 * MS;
    // FC16 100-103 = 80, 85, 90, 95 (max itself).
    l.call(&mut cap, t, |tid| {
        mb::write_multi_regs(tid, UNIT, 100, &[80, 85, 90, 95])
    });
    t += 50 * MS;
    // FC23: read 0-3, write 108-109 = 0 (min itself), 1.
    l.call(&mut cap, t, |tid| {
        mb::read_write_regs(tid, UNIT, 0, 4, 108, &[0, 1])
    });
    t += 50 * MS;
    // f32 9.5 into 200-201.
    l.call(&mut cap, t, |tid| {
        mb::write_multi_regs(tid, UNIT, 200, &f32_words(9.5))
    });
    t += 50 * MS;
    // i16 -50 (0xFFCE; as u16 it would be 65486, out of range).
    l.call(&mut cap, t, |tid| {
        mb::write_single_reg(tid, UNIT, 300, 0xffce)
    });
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "setpoint_authorized_in_range",
            "Authorized setpoint writes inside the bounds: silent.",
            BERLIN,
            NO_FOLDING,
            &format!("{TEMP_SETPOINT}{TYPED_SETPOINTS}"),
        ),
        alerts: vec![],
    }
}

/// Authorized writers writing values outside the bounds: one setpoint_out_of_range per
/// write and setpoint.
fn setpoint_out_of_range() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, EWS1, 50221, PLC1, T0);
    let mut t = T0 + 10 * MS;
    // FC6 100 = 96 (max 95).
    l.call(&mut cap, t, |tid| mb::write_single_reg(tid, UNIT, 100, 96));
    alerts.push(l.pdu_alert(t, SP_RANGE, "write"));
    t += 50 * MS;
    // f32 NaN into 200-201: NaN is out of range.
    l.call(&mut cap, t, |tid| {
        mb::write_multi_regs(tid, UNIT, 200, &f32_words(f32::NAN))
    });
    alerts.push(l.pdu_alert(t, SP_RANGE, "write"));
    t += 50 * MS;
    // f32 10.5 (max 10).
    l.call(&mut cap, t, |tid| {
        mb::write_multi_regs(tid, UNIT, 200, &f32_words(10.5))
    });
    alerts.push(l.pdu_alert(t, SP_RANGE, "write"));
    t += 50 * MS;
    // i16 -51 (0xFFCD; min -50).
    l.call(&mut cap, t, |tid| {
        mb::write_single_reg(tid, UNIT, 300, 0xffcd)
    });
    alerts.push(l.pdu_alert(t, SP_RANGE, "write"));
    t += 50 * MS;
    // i16 50: in range, silent.
    l.call(&mut cap, t, |tid| mb::write_single_reg(tid, UNIT, 300, 50));
    l.close(&mut cap, t + 100 * MS);
    // hmi-1: FC16 100-103 = 80, 200, 90, 95: the second value is out of range.
    let mut l = Link::modbus(&mut cap, HMI1, 50222, PLC1, T0 + SEC);
    let t = l.call(&mut cap, T0 + SEC + 10 * MS, |tid| {
        mb::write_multi_regs(tid, UNIT, 100, &[80, 200, 90, 95])
    });
    alerts.push(l.pdu_alert(t, SP_RANGE, "write"));
    l.close(&mut cap, T0 + SEC + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "setpoint_out_of_range",
            "Authorized setpoint writes outside the bounds (u16, f32 NaN and above max, i16).",
            BERLIN,
            NO_FOLDING,
            &format!("{TEMP_SETPOINT}{TYPED_SETPOINTS}"),
        ),
        alerts,
    }
}

/// The temperature setpoint with hmi-1 as its only writer.
const HMI_ONLY_SETPOINT: &str = r#"[[setpoints]]
name    = "boiler-1 temperature setpoint"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 95.0
modbus = { unit = 1, holding_registers = "100-109" }
"#;

/// ews-2 (not a writer) writes right next to the setpoint's registers 100-109 without
/// touching them, and onto them on another unit. Silent.
fn setpoint_adjacent_write() -> RuleCase {
    let mut cap = Capture::new();
    let mut l = Link::modbus(&mut cap, EWS2, 50231, PLC1, T0);
    let mut t = T0 + 10 * MS;
    let writes: [Box<dyn Fn(u16) -> Adu>; 6] = [
        // FC16 94-99: ends one register before the setpoint.
        Box::new(|tid| mb::write_multi_regs(tid, UNIT, 94, &[1, 2, 3, 4, 5, 6])),
        // FC16 110-112: starts one register after it.
        Box::new(|tid| mb::write_multi_regs(tid, UNIT, 110, &[7, 8, 9])),
        Box::new(|tid| mb::write_single_reg(tid, UNIT, 99, 10)),
        Box::new(|tid| mb::write_single_reg(tid, UNIT, 110, 11)),
        // FC23 writing 90-99.
        Box::new(|tid| mb::read_write_regs(tid, UNIT, 100, 10, 90, &[0; 10])),
        // FC16 100-103 on unit 2: the setpoint lives on unit 1.
        Box::new(|tid| mb::write_multi_regs(tid, 2, 100, &[1, 2, 3, 4])),
    ];
    for w in writes {
        l.call(&mut cap, t, w);
        t += 50 * MS;
    }
    l.close(&mut cap, t);
    RuleCase {
        cap,
        policy: policy(
            "setpoint_adjacent_write",
            "Writes next to, but not touching, a setpoint's registers: silent.",
            BERLIN,
            NO_FOLDING,
            HMI_ONLY_SETPOINT,
        ),
        alerts: vec![],
    }
}

/// ews-2 (not a writer) writes ranges that overlap the setpoint's registers 100-109 at
/// either end.
fn setpoint_overlapping_range() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, EWS2, 50241, PLC1, T0);
    // FC16 98-103 (overlaps 100-103).
    let t = l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::write_multi_regs(tid, UNIT, 98, &[1, 1, 130, 90, 90, 90])
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    // FC16 108-111 (overlaps 108-109).
    let t = l.call(&mut cap, T0 + 60 * MS, |tid| {
        mb::write_multi_regs(tid, UNIT, 108, &[5, 5, 5, 5])
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    // FC23 writing 109-110 (overlaps 109).
    let t = l.call(&mut cap, T0 + 110 * MS, |tid| {
        mb::read_write_regs(tid, UNIT, 0, 2, 109, &[6, 6])
    });
    alerts.push(l.pdu_alert(t, SP_UNAUTH, "write"));
    l.close(&mut cap, T0 + 200 * MS);
    RuleCase {
        cap,
        policy: policy(
            "setpoint_overlapping_range",
            "Multi-register writes that overlap a setpoint's range from a non-writer.",
            BERLIN,
            NO_FOLDING,
            HMI_ONLY_SETPOINT,
        ),
        alerts,
    }
}

// ---- conduits ---------------------------------------------------------------------------

/// Reads over zone pairs no conduit approves. One alert per (src zone, dst zone,
/// protocol) at the first recognised PDU, not per flow: the second flow engineering ->
/// cell-2 is silent. hmi-1 sends garbage before its first read: the garbage is a
/// protocol_anomaly, and the read, not the garbage, decides the conduit.
fn new_conduit() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let read = |tid| mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4);
    let mut t = T0;
    for (client, port, server, alert) in [
        (EWS1, 50301, PLC3, true),  // engineering -> cell-2
        (EWS1, 50302, PLC3, false), // the same pair again, another flow
        (HMI1, 50303, PLC3, true),  // hmi -> cell-2, garbage first
        (PLC3, 50304, PLC1, true),  // cell-2 -> cell-1
    ] {
        let mut l = Link::modbus(&mut cap, client, port, server, t);
        if port == 50303 {
            // An HTTP request on the Modbus stream (no zero byte in it: nothing in it
            // frames as an MBAP header).
            let get = b"GET / HTTP/1.0\r\nHost: plc\r\n\r\n";
            alerts.push(send_garbage(&mut l, &mut cap, t + 5 * MS, get));
        }
        let at = l.call(&mut cap, t + 10 * MS, read);
        l.call(&mut cap, t + 60 * MS, read);
        l.close(&mut cap, t + 100 * MS);
        if alert {
            alerts.push(l.pdu_alert(at, NEW_CONDUIT, "read"));
        }
        t += SEC;
    }
    RuleCase {
        cap,
        policy: policy(
            "new_conduit",
            "Zone-to-zone paths that no conduit approves: one alert per zone pair and protocol.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

/// Approved paths: engineering and hmi to cell-1 over Modbus, engineering to cell-2
/// with any protocol (Modbus and a TCP flow to port 80 that no dissector recognises).
/// Silent.
fn approved_conduit() -> RuleCase {
    let mut cap = Capture::new();
    let read = |tid| mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4);
    let mut t = T0;
    for (client, port, server) in [
        (EWS1, 50311, PLC1),
        (HMI1, 50312, PLC1),
        (EWS1, 50313, PLC3),
    ] {
        let mut l = Link::modbus(&mut cap, client, port, server, t);
        l.call(&mut cap, t + 10 * MS, read);
        l.close(&mut cap, t + 100 * MS);
        t += SEC;
    }
    let mut l = Link::open(&mut cap, EWS1, 50314, PLC3, 80, t);
    http_exchange(&mut l, &mut cap, t + 10 * MS);
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "approved_conduit",
            "Traffic on approved conduits only: silent.",
            BERLIN,
            NO_FOLDING,
            "[[conduits]]\nfrom = \"engineering\"\nto   = \"cell-2\"    # no protocols: any\n",
        ),
        alerts: vec![],
    }
}

/// `bytes` that form no PDU (garbage), sent by the client at `t` on a stream whose
/// dissector is decided by its port: the protocol_anomaly alert they raise.
fn send_garbage(l: &mut Link, cap: &mut Capture, t: u64, bytes: &[u8]) -> AlertExp {
    l.c.send(cap, t, Side::Client, bytes, vec![]);
    let mut a = l.pdu_alert(t, ANOMALY, "other");
    a.operation = None; // what garbage "does" is not defined
    a
}

/// An HTTP request and its answer: bytes no dissector of otwatch recognises.
fn http_exchange(l: &mut Link, cap: &mut Capture, t: u64) {
    l.c.send(
        cap,
        t,
        Side::Client,
        b"GET / HTTP/1.0\r\nHost: plc\r\n\r\n",
        vec![],
    );
    l.c.send(
        cap,
        t + 5 * MS,
        Side::Server,
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        vec![],
    );
}

/// Traffic inside one zone is never a conduit: plc-2 polls plc-boiler-1 (cell-1),
/// ews-1 talks HTTP to ews-2 (engineering). Silent.
fn intra_zone() -> RuleCase {
    let mut cap = Capture::new();
    let mut l = Link::modbus(&mut cap, PLC2, 50321, PLC1, T0);
    l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4)
    });
    l.call(&mut cap, T0 + 50 * MS, |tid| {
        mb::read_bits(fc::READ_COILS, tid, UNIT, 0, 8)
    });
    l.close(&mut cap, T0 + 100 * MS);
    let mut l = Link::open(&mut cap, EWS1, 50322, EWS2, 80, T0 + SEC);
    http_exchange(&mut l, &mut cap, T0 + SEC + 10 * MS);
    l.close(&mut cap, T0 + SEC + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "intra_zone",
            "Traffic inside one zone: silent.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts: vec![],
    }
}

/// Flows that never carry a recognised PDU are decided when they end, as `tcp/PORT` of
/// the responder (policy.md): hmi-1 -> plc-boiler-1:80 (HTTP, FIN close: the flow
/// ends with the second FIN), a refused connection to port 23 (SYN, RST: ends with
/// the RST), and an HTTP request to port 502: garbage is no recognised PDU (a
/// protocol_anomaly at the request), so that flow too is `tcp/502`, which the conduit's
/// `modbus` does not list. hmi -> cell-1 is approved for Modbus only.
fn conduit_no_pdu() -> RuleCase {
    let mut cap = Capture::new();
    let mut l = Link::open(&mut cap, HMI1, 50331, PLC1, 80, T0);
    http_exchange(&mut l, &mut cap, T0 + 10 * MS);
    let close = T0 + 100 * MS;
    l.close(&mut cap, close);
    let mut a80 = l.flow_alert(close + 200, NEW_CONDUIT); // the server's FIN
    a80.protocol = Some("tcp/80".into());
    // Port 23: SYN, answered by RST/ACK.
    let t = T0 + SEC;
    let mut c = Conn::new(
        HMI1.host,
        50332,
        PLC1.host,
        23,
        isn(50332, 1),
        isn(50332, 2),
    );
    let syn = c.frame(Side::Client, c.next_seq(Side::Client), SYN, &[]);
    c.advance(Side::Client, 1);
    cap.push(t, syn, &c.flow, vec![]);
    let rst = c.frame(Side::Server, c.next_seq(Side::Server), RST | ACK, &[]);
    cap.push(t + 150, rst, &c.flow, vec![]);
    let l23 = Link {
        c,
        client: HMI1,
        server: PLC1,
        tid: 1,
    };
    let mut a23 = l23.flow_alert(t + 150, NEW_CONDUIT);
    a23.protocol = Some("tcp/23".into());
    // Port 502: an HTTP request, acknowledged, then FIN close.
    let t = T0 + 2 * SEC;
    let mut l = Link::open(&mut cap, HMI1, 50333, PLC1, 502, t);
    let get = t + 10 * MS;
    let garbage = send_garbage(
        &mut l,
        &mut cap,
        get,
        b"GET / HTTP/1.0\r\nHost: plc\r\n\r\n",
    );
    l.c.ack(&mut cap, get + 40 * MS, Side::Server);
    let close = t + 100 * MS;
    l.close(&mut cap, close);
    let mut a502 = l.flow_alert(close + 200, NEW_CONDUIT); // the server's FIN
    a502.protocol = Some("tcp/502".into());
    RuleCase {
        cap,
        policy: policy(
            "conduit_no_pdu",
            "Flows no dissector recognises on a path approved for Modbus only: new_conduit as tcp/PORT.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts: vec![a80, a23, garbage, a502],
    }
}

// ---- operations -------------------------------------------------------------------------

/// Writes to a PLC from a source whose role is `other` (laptop-7) and from an
/// undeclared source in no zone (no role): unauthorized_write. Reads, and writes from
/// engineering and HMI sources or to a non-controller, stay silent.
fn unauthorized_write() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, LAPTOP, 50401, PLC1, T0);
    l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4)
    });
    let t = l.call(&mut cap, T0 + 50 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 7, 1)
    });
    alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write"));
    let t = l.call(&mut cap, T0 + 90 * MS, |tid| {
        mb::write_multi_coils(tid, UNIT, 0, &[true, false, true])
    });
    alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write"));
    l.close(&mut cap, T0 + 200 * MS);
    // An address in no zone (zone "unknown"; the conduit unknown -> cell-1 is approved).
    let mut l = Link::modbus(&mut cap, OUTSIDER, 50402, PLC1, T0 + SEC);
    let t = l.call(&mut cap, T0 + SEC + 10 * MS, |tid| {
        mb::write_multi_regs(tid, UNIT, 20, &[1, 2])
    });
    alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write"));
    l.close(&mut cap, T0 + SEC + 100 * MS);
    // Allowed roles: silent.
    for (i, client) in [EWS1, HMI1].into_iter().enumerate() {
        let t = T0 + (2 + i as u64) * SEC;
        let mut l = Link::modbus(&mut cap, client, 50403 + i as u16, PLC1, t);
        l.call(&mut cap, t + 10 * MS, |tid| {
            mb::write_single_reg(tid, UNIT, 7, 0)
        });
        l.close(&mut cap, t + 100 * MS);
    }
    // laptop-7 writing to ews-2 (an engineering station, not a PLC or RTU): silent.
    let t = T0 + 4 * SEC;
    let mut l = Link::modbus(&mut cap, LAPTOP, 50405, EWS2, t);
    l.call(&mut cap, t + 10 * MS, |tid| {
        mb::write_single_reg(tid, UNIT, 7, 1)
    });
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "unauthorized_write",
            "Writes to a PLC from a role-less or `other` source.",
            BERLIN,
            NO_FOLDING,
            "[[conduits]]\nfrom = \"unknown\"\nto   = \"cell-1\"\nprotocols = [\"modbus\"]\n",
        ),
        alerts,
    }
}

/// ews-1 stops the PLC (UMAS 0x41), starts it again 90 s later (0x40), then forces
/// it into listen-only mode (FC8/04, never answered). A diagnostic echo (FC8/00)
/// is silent. ews-1 is an engineering station: no unauthorized_write.
fn plc_mode_change() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, EWS1, 50411, PLC1, T0);
    l.reserve(&mut cap, T0 + 10 * MS);
    let t = T0 + 70 * MS;
    l.umas(&mut cap, t, umas::STOP_PLC, &[0xff, 0x00], &[]);
    alerts.push(l.pdu_alert(t, MODE, "mode_change"));
    let t = T0 + 90 * SEC;
    l.umas(&mut cap, t, umas::START_PLC, &[0xff, 0x00], &[]);
    alerts.push(l.pdu_alert(t, MODE, "mode_change"));
    l.umas(
        &mut cap,
        T0 + 90 * SEC + 60 * MS,
        umas::RELEASE_PLC_RESERVATION,
        &[],
        &[],
    );
    l.call(&mut cap, T0 + 91 * SEC, |tid| {
        mb::diagnostics(tid, UNIT, 0x0000, 0xa537)
    });
    let t = l.call(&mut cap, T0 + 92 * SEC, |tid| {
        mb::diagnostics(tid, UNIT, 0x0004, 0x0000)
    });
    alerts.push(l.pdu_alert(t, MODE, "mode_change"));
    l.c.ack(&mut cap, T0 + 92 * SEC + 40 * MS, Side::Server);
    l.close(&mut cap, T0 + 93 * SEC);
    RuleCase {
        cap,
        policy: policy(
            "plc_mode_change",
            "Stop, start and force-listen-only commands from the engineering station.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

/// FC8/01 (restart communications) from ews-1: device_restart. From laptop-7 (role
/// other): unauthorized_write (a restart changes the device) then device_restart, in
/// the spec's order. FC8/00 is a diagnostic: silent.
fn device_restart() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, EWS1, 50421, PLC1, T0);
    l.call(&mut cap, T0 + 10 * MS, |tid| {
        mb::diagnostics(tid, UNIT, 0x0000, 0x1234)
    });
    let t = l.call(&mut cap, T0 + 50 * MS, |tid| {
        mb::diagnostics(tid, UNIT, 0x0001, 0x0000)
    });
    alerts.push(l.pdu_alert(t, RESTART, "restart"));
    l.close(&mut cap, T0 + 100 * MS);
    let mut l = Link::modbus(&mut cap, LAPTOP, 50422, PLC1, T0 + SEC);
    let t = l.call(&mut cap, T0 + SEC + 10 * MS, |tid| {
        mb::diagnostics(tid, UNIT, 0x0001, 0xff00)
    });
    alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "restart"));
    alerts.push(l.pdu_alert(t, RESTART, "restart"));
    l.close(&mut cap, T0 + SEC + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "device_restart",
            "Restart commands (Modbus FC8/01).",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

/// ews-1 reads the PLC's program out (UMAS "download", output.md: program_upload):
/// initialize (0x33), three blocks (0x34), end (0x35). With folding off every request
/// raises program_upload; the responses (which carry the program) do not.
fn program_upload() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, EWS1, 50431, PLC1, T0);
    l.reserve(&mut cap, T0 + 10 * MS);
    let mut t = T0 + 70 * MS;
    l.umas(
        &mut cap,
        t,
        umas::INITIALIZE_DOWNLOAD,
        &[0x00, 0x01],
        &[0x00, 0x04, 0x00, 0x00],
    );
    alerts.push(l.pdu_alert(t, UPLOAD, "program_upload"));
    for n in 1..=3u16 {
        t += 60 * MS;
        let mut rsp = n.to_le_bytes().to_vec();
        rsp.extend_from_slice(&block(n + 100, 64));
        l.umas(&mut cap, t, umas::DOWNLOAD_BLOCK, &n.to_le_bytes(), &rsp);
        alerts.push(l.pdu_alert(t, UPLOAD, "program_upload"));
    }
    t += 60 * MS;
    l.umas(&mut cap, t, umas::END_STRATEGY_DOWNLOAD, &[0x03, 0x00], &[]);
    alerts.push(l.pdu_alert(t, UPLOAD, "program_upload"));
    t += 60 * MS;
    l.umas(&mut cap, t, umas::RELEASE_PLC_RESERVATION, &[], &[]);
    l.close(&mut cap, t + 50 * MS);
    RuleCase {
        cap,
        policy: policy(
            "program_upload",
            "A program read out of the PLC (UMAS 0x33-0x35).",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

/// Undeclared addresses inside declared zones: 10.30.1.77 (cell-1) in three flows, one
/// alert at its first packet (the SYN); 10.20.1.99 (engineering) as a responder; an
/// address in no zone (192.168.77.5) is not a plant asset: silent; 10.30.1.78 only
/// pings plc-boiler-1, one alert at its echo request.
fn new_asset() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let read = |tid| mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4);
    let mut t = T0;
    for (client, port, server, alert) in [
        (STRANGER_CELL, 50441, PLC1, true),
        (STRANGER_CELL, 50442, PLC1, false),
        (STRANGER_CELL, 50443, PLC2, false),
        (EWS1, 50444, STRANGER_ENG, true),
        (OUTSIDER, 50445, PLC1, false),
    ] {
        let mut l = Link::modbus(&mut cap, client, port, server, t);
        l.call(&mut cap, t + 10 * MS, read);
        l.close(&mut cap, t + 100 * MS);
        if alert {
            alerts.push(l.flow_alert(t, NEW_ASSET)); // the SYN
        }
        t += SEC;
    }
    // An address that only pings (ICMP makes no flow): its echo request is the first
    // packet that involves it. ICMP's type and code stand for the ports; the Community
    // ID is the reference implementation's (`communityid` 1.5.0, `make_icmp`).
    let flow = FlowExp {
        src_ip: PINGER.host.ip,
        src_port: 8,
        dst_ip: PLC1.host.ip,
        dst_port: 0,
        transport: "icmp",
        community_id: "1:zUwXOwVTX5d6jyHOOD1VV8XvxTU=".into(),
    };
    for (from, to, icmp_type, at) in [(PINGER, PLC1, 8, t), (PLC1, PINGER, 0, t + 300)] {
        let mut frame = Vec::new();
        wire::build_icmp_echo_frame(from.host, to.host, icmp_type, (1, 1), 1, &mut frame);
        cap.push(at, frame, &flow, vec![]);
    }
    alerts.push(AlertExp {
        ts: t,
        kind: NEW_ASSET,
        repeats: 0,
        flow,
        src_zone: PINGER.zone,
        dst_zone: PLC1.zone,
        direction: None,
        protocol: None,
        operation: None,
        src_asset: None,
        dst_asset: PLC1.name,
        evidence: None,
    });
    RuleCase {
        cap,
        policy: policy(
            "new_asset",
            "Undeclared addresses in declared zones (one that only pings too): one alert per address.",
            BERLIN,
            NO_FOLDING,
            "[[conduits]]\nfrom = \"unknown\"\nto   = \"cell-1\"\nprotocols = [\"modbus\"]\n",
        ),
        alerts,
    }
}

/// Out-of-spec requests on port 502 from ews-1: non-Modbus bytes, an MBAP length of 0
/// (illegal: 2..=254), a protocol id of 1 — each a protocol_anomaly with ews-1, the
/// sender, as source. Legal things stay silent: an exception response, a request split
/// over two segments (incomplete, then complete), a retransmission.
fn protocol_anomaly() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let read = |addr| move |tid| mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, addr, 4);
    let mut l = Link::modbus(&mut cap, EWS1, 50451, PLC1, T0);
    l.tid = 0x2501; // above 0x00ff: no offset in the bad bytes frames as a header
    l.call(&mut cap, T0 + 10 * MS, read(0));
    // Garbage: an HTTP request on the Modbus stream (no zero byte in it).
    let get = b"GET / HTTP/1.1\r\nHost: 10.30.1.10\r\n\r\n";
    alerts.push(send_garbage(&mut l, &mut cap, T0 + 100 * MS, get));
    l.call(&mut cap, T0 + 200 * MS, read(4));
    // Exception response (illegal data address): legal, silent.
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, l.tid, UNIT, 9000, 4);
    l.tid += 1;
    l.c.exchange(
        &mut cap,
        T0 + 300 * MS,
        3 * MS,
        &q,
        &mb::exception(&q, 0x02),
    );
    // A request in two segments: incomplete after the first, silent.
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, l.tid, UNIT, 8, 4);
    l.tid += 1;
    l.c.send(&mut cap, T0 + 400 * MS, Side::Client, &q.bytes[..9], vec![]);
    l.c.send(
        &mut cap,
        T0 + 401 * MS,
        Side::Client,
        &q.bytes[9..],
        vec![q.pdu.clone()],
    );
    l.c.send_adu(
        &mut cap,
        T0 + 404 * MS,
        &mb::read_regs_rsp(&q, &[1, 2, 3, 4]),
    );
    // A request retransmitted whole: silent.
    let q = mb::read_regs(fc::READ_HOLDING_REGISTERS, l.tid, UNIT, 12, 4);
    l.tid += 1;
    let seq = l.c.next_seq(Side::Client);
    l.c.send_adu(&mut cap, T0 + 500 * MS, &q);
    let again = l.c.frame(Side::Client, seq, PSH | ACK, &q.bytes);
    cap.push(T0 + 700 * MS, again, &l.c.flow, vec![]);
    l.c.send_adu(
        &mut cap,
        T0 + 703 * MS,
        &mb::read_regs_rsp(&q, &[5, 6, 7, 8]),
    );
    // An MBAP header with length 0: tid 0x2520, protocol 0, length 0, unit 1, then
    // an FC3 body (address 0, quantity 0xffff). No offset inside frames as a header.
    let t = T0 + 800 * MS;
    let bad = [
        0x25, 0x20, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x00, 0x00, 0xff, 0xff,
    ];
    l.c.send(&mut cap, t, Side::Client, &bad, vec![]);
    let mut a = l.pdu_alert(t, ANOMALY, "other");
    a.operation = None;
    alerts.push(a);
    l.call(&mut cap, T0 + 900 * MS, read(16));
    // Protocol id 1 in an otherwise well-formed FC3 request; the PLC does not answer.
    let t = T0 + SEC;
    let mut q = mb::read_regs(fc::READ_HOLDING_REGISTERS, 0x2530, UNIT, 0, 4);
    q.bytes[3] = 0x01;
    l.c.send(&mut cap, t, Side::Client, &q.bytes, vec![]);
    alerts.push(l.pdu_alert(t, ANOMALY, "read"));
    l.c.ack(&mut cap, t + 40 * MS, Side::Server);
    l.close(&mut cap, T0 + 2 * SEC);
    RuleCase {
        cap,
        policy: policy(
            "protocol_anomaly",
            "Malformed Modbus/TCP on port 502 (garbage, an illegal MBAP length, a wrong\nprotocol id), next to legal exceptions, split requests and retransmissions.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

/// Repeats (output.md): laptop-7 writes register 7 every 10.001 s, 13 times (0 to
/// 120.012 s), with `repeat_interval = "60s"`; at 35 s it also writes register 8 once.
///
/// The arithmetic, write k at t_k = k x 10.001 s:
/// * k = 0 (0 s): emitted, `repeats` 0. Folding starts from here.
/// * k = 1..=5 (10.001 .. 50.005 s): within 60 s of the last emitted one: folded (5).
/// * k = 6 (60.006 s): 60.006 s after the last emitted one, no longer within the
///   interval: emitted with `repeats` 5.
/// * k = 7..=11: within 60 s of k = 6: folded (5); k = 12 (120.012 s): emitted with
///   `repeats` 5.
/// * Register 8 at 35 s is another target address, so not identical: emitted, 0.
///
/// The 1 ms step keeps every write clear of the interval's boundary (60.000 s after
/// an emitted alert), which the contract leaves open.
fn repeats() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Link::modbus(&mut cap, LAPTOP, 50461, PLC1, T0 - SEC);
    for k in 0..=12u64 {
        let t = T0 + k * 10_001 * MS;
        l.call(&mut cap, t, |tid| mb::write_single_reg(tid, UNIT, 7, 1));
        match k {
            0 => alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write")),
            6 | 12 => alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write").with_repeats(5)),
            _ => {}
        }
        if k == 3 {
            let t8 = T0 + 35 * SEC;
            l.call(&mut cap, t8, |tid| mb::write_single_reg(tid, UNIT, 8, 1));
            alerts.push(l.pdu_alert(t8, UNAUTH_WRITE, "write"));
        }
    }
    l.close(&mut cap, T0 + 121 * SEC);
    RuleCase {
        cap,
        policy: policy(
            "repeats",
            "An unauthorized write repeated every 10 s for 2 minutes, folded with repeat_interval 60 s.",
            BERLIN,
            "\"60s\"",
            "",
        ),
        alerts,
    }
}

// ---- S7comm ------------------------------------------------------------------------------

/// The S7 conduits of the S7 cases: engineering and hmi to cell-1 over s7comm (the base
/// plant's conduits are Modbus only).
const S7_CONDUITS: &str = r#"[[conduits]]
from = "engineering"
to   = "cell-1"
protocols = ["s7comm"]

[[conduits]]
from = "hmi"
to   = "cell-1"
protocols = ["s7comm"]
"#;

/// An S7 connection (server port 102): the TCP link and its ISO session.
struct S7Link {
    l: Link,
    s: Session,
}

impl S7Link {
    /// Handshake at `t`, COTP connection at +1 ms (calling TSAP `calling`, called
    /// 0x0102), setup communication at +5 ms.
    fn open(
        cap: &mut Capture,
        client: Node,
        port: u16,
        server: Node,
        t: u64,
        calling: u16,
    ) -> S7Link {
        let mut l = Link::open(cap, client, port, server, s7::PORT, t);
        let mut s = Session::new(calling, PLC_TSAP, 0x0200);
        s.connect(&mut l.c, cap, t + MS);
        s.setup(&mut l.c, cap, t + 5 * MS);
        S7Link { l, s }
    }

    /// The job `req(pdu_ref)` at `t`, answered by `rsp(job)` 3 ms later; returns the
    /// job's expected event (with the session's TSAPs) for its alerts.
    fn call(
        &mut self,
        cap: &mut Capture,
        t: u64,
        req: impl FnOnce(u16) -> S7Pdu,
        rsp: impl FnOnce(&S7Pdu) -> S7Pdu,
    ) -> S7Exp {
        let q = req(self.s.next_ref());
        let a = rsp(&q);
        self.s.exchange(&mut self.l.c, cap, t, 3 * MS, &q, &a);
        let mut exp = q.exp;
        exp.calling_tsap = self.s.calling_tsap;
        exp.called_tsap = self.s.called_tsap;
        exp
    }

    /// An alert on the S7 job `job` sent at `ts`, with the job's native block as the
    /// alert's `evidence.s7comm`.
    fn alert(&self, ts: u64, kind: &'static str, job: &S7Exp) -> AlertExp {
        AlertExp {
            protocol: Some("s7comm".into()),
            operation: Some(job.operation),
            evidence: Some(format!("{{{}}}", job.json_block())),
            ..self.l.pdu_alert(ts, kind, job.operation)
        }
    }

    fn close(&mut self, cap: &mut Capture, t: u64) {
        self.l.close(cap, t);
    }
}

/// S7 program downloads (request download by ews-1, download blocks *sent by the
/// PLC*, download ended, PI `_INSE`) towards plc-boiler-1 under the weekly window of
/// cell-1 (Sat 22:00 - Sun 06:00 Berlin): Fri 11:00 CET (closed), Sat 23:00 CET (open:
/// silent), Sun 06:00:00.000000 CET (the end, exclusive: closed). One alert per
/// session, on its request download; the PLC's download-block jobs, download ended and
/// `_INSE` belong to the same session.
fn s7_download_outside_window() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    for (port, t, outside) in [
        (50401, T0, true),
        (50402, utc(2026, 11, 21, 22, 0, 0), false),
        (50403, utc(2026, 11, 22, 5, 0, 0), true),
    ] {
        let mut l = S7Link::open(&mut cap, EWS1, port, PLC1, t - 50 * MS, PG_TSAP);
        let (end, req) = download_session(&mut l.l.c, &mut l.s, &mut cap, t);
        if outside {
            alerts.push(l.alert(t, DOWNLOAD, &req));
        }
        l.close(&mut cap, end + 50 * MS);
    }
    RuleCase {
        cap,
        policy: policy(
            "s7_download_outside_window",
            "S7 program downloads (DB1) outside, inside and at the end of cell-1's weekly window.",
            BERLIN,
            NO_FOLDING,
            &format!("{WEEKLY_CELL_1}\n{S7_CONDUITS}"),
        ),
        alerts,
    }
}

/// S7 mode changes: ews-1 stops plc-boiler-1 (PLC stop 0x29) and starts it 90 s later
/// (PI `P_PROGRAM`); laptop-7 (role `other`) stops it too: `unauthorized_write` (a mode
/// change from a source that may not change a PLC) before `plc_mode_change` (spec
/// order).
fn s7_plc_stop() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = S7Link::open(&mut cap, EWS1, 50411, PLC1, T0, PG_TSAP);
    let t = T0 + 50 * MS;
    let job = l.call(&mut cap, t, s7::plc_stop, s7::plain_ack);
    alerts.push(l.alert(t, MODE, &job));
    let t = T0 + 90 * SEC;
    let job = l.call(
        &mut cap,
        t,
        |r| s7::pi_service(r, "P_PROGRAM", &[]),
        s7::plain_ack,
    );
    alerts.push(l.alert(t, MODE, &job));
    l.close(&mut cap, t + 100 * MS);
    let mut l = S7Link::open(&mut cap, LAPTOP, 50412, PLC1, T0 + 100 * SEC, PG_TSAP);
    let t = T0 + 100 * SEC + 50 * MS;
    let job = l.call(&mut cap, t, s7::plc_stop, s7::plain_ack);
    alerts.push(l.alert(t, UNAUTH_WRITE, &job));
    alerts.push(l.alert(t, MODE, &job));
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "s7_plc_stop",
            "S7 PLC stop and start (PI P_PROGRAM) by ews-1, and a stop by laptop-7 (role other).",
            BERLIN,
            NO_FOLDING,
            S7_CONDUITS,
        ),
        alerts,
    }
}

/// The boiler temperature setpoint as an S7 data word: DB10 bytes 4-5 (DB10.DBW4) on
/// plc-boiler-1, u16 big-endian, 0..=95, written by ews-1 only.
const S7_SETPOINT: &str = r#"[[setpoints]]
name    = "boiler-1 temperature setpoint (S7)"
asset   = "plc-boiler-1"
writers = ["ews-1"]
min = 0.0
max = 95.0
type = "u16"
s7 = { area = "DB", db = 10, bytes = "4-5" }
"#;

/// S7 writes to DB10.DBW4 and around it. historian-1 (enterprise, role historian)
/// writes DBW4 = 50: `unauthorized_setpoint_write` + `unauthorized_write`. ews-2 (not a
/// writer) writes DBW4 = 60 and DBD2 (bytes 2-5, overlapping): one
/// `unauthorized_setpoint_write` each; its writes of DB10.DBW6, DB11.DBW4 and MW4 touch
/// no setpoint byte: silent. ews-1 (the writer) writes DBW4 = 80 (silent), DBW4 = 120
/// and, as two BYTEs, DBB4-5 = 00 60 (96): one `setpoint_out_of_range` each.
fn s7_setpoint_unauthorized_writer() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let dbw4 = Item::db(10, 4, size::WORD, 1);
    let write = |item: Item, bytes: &[u8]| {
        let bytes = bytes.to_vec();
        move |r: u16| s7::write_var(r, &[(item, bytes)])
    };
    let ok = |q: &S7Pdu| s7::write_var_ack(q, &[s7::ret::SUCCESS]);
    // historian-1.
    let mut l = S7Link::open(&mut cap, HISTORIAN, 50421, PLC1, T0, PG_TSAP);
    let t = T0 + 50 * MS;
    let job = l.call(&mut cap, t, write(dbw4, &[0, 50]), ok);
    alerts.push(l.alert(t, SP_UNAUTH, &job));
    alerts.push(l.alert(t, UNAUTH_WRITE, &job));
    l.close(&mut cap, t + 100 * MS);
    // ews-2.
    let t0 = T0 + SEC;
    let mut l = S7Link::open(&mut cap, EWS2, 50422, PLC1, t0, PG_TSAP);
    let mut t = t0 + 50 * MS;
    let job = l.call(&mut cap, t, write(dbw4, &[0, 60]), ok);
    alerts.push(l.alert(t, SP_UNAUTH, &job));
    t += 50 * MS;
    let job = l.call(
        &mut cap,
        t,
        write(Item::db(10, 2, size::DWORD, 1), &[0, 1, 0, 60]),
        ok,
    );
    alerts.push(l.alert(t, SP_UNAUTH, &job));
    for (item, bytes) in [
        (Item::db(10, 6, size::WORD, 1), [0u8, 7]),
        (Item::db(11, 4, size::WORD, 1), [0, 8]),
        (Item::at(s7::area::M, 4, size::WORD, 1), [0, 9]),
    ] {
        t += 50 * MS;
        l.call(&mut cap, t, write(item, &bytes), ok);
    }
    l.close(&mut cap, t + 100 * MS);
    // ews-1.
    let t0 = T0 + 2 * SEC;
    let mut l = S7Link::open(&mut cap, EWS1, 50423, PLC1, t0, PG_TSAP);
    let mut t = t0 + 50 * MS;
    l.call(&mut cap, t, write(dbw4, &[0, 80]), ok);
    t += 50 * MS;
    let job = l.call(&mut cap, t, write(dbw4, &[0, 120]), ok);
    alerts.push(l.alert(t, SP_RANGE, &job));
    t += 50 * MS;
    let job = l.call(
        &mut cap,
        t,
        write(Item::db(10, 4, size::BYTE, 2), &[0x00, 0x60]),
        ok,
    );
    alerts.push(l.alert(t, SP_RANGE, &job));
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "s7_setpoint_unauthorized_writer",
            "An S7 setpoint (DB10.DBW4) written by non-writers, next to it, and out of range.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{S7_SETPOINT}\n{S7_CONDUITS}\n[[conduits]]\nfrom = \"enterprise\"\nto   = \"cell-1\"\nprotocols = [\"s7comm\"]\n"
            ),
        ),
        alerts,
    }
}

/// S7 passwords. The credential of `boiler1` is listed for hmi-1: hmi-1 presents it
/// (silent), ews-2 presents it twice on two connections (one
/// `credential_unusual_origin`: one per credential and source). The unlisted
/// credential of `other-pw` is first seen from ews-1 (silent), then from ews-2 (alert).
fn s7_credential() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let listed = s7::credential(&s7::encode_password("boiler1"));
    let mut t0 = T0;
    for (who, port, calling, pw, alert) in [
        (HMI1, 50431, 0x0200, "boiler1", false),
        (EWS2, 50432, PG_TSAP, "boiler1", true),
        (EWS2, 50433, PG_TSAP, "boiler1", false),
        (EWS1, 50434, PG_TSAP, "other-pw", false),
        (EWS2, 50435, PG_TSAP, "other-pw", true),
    ] {
        let mut l = S7Link::open(&mut cap, who, port, PLC1, t0, calling);
        let t = t0 + 50 * MS;
        let job = l.call(&mut cap, t, |r| s7::password(r, pw), s7::security_rsp);
        if alert {
            alerts.push(l.alert(t, CREDENTIAL, &job));
        }
        l.call(
            &mut cap,
            t + 50 * MS,
            |r| s7::read_var(r, &[Item::db(10, 4, size::WORD, 1)]),
            |q| s7::read_var_ack(q, &[Ok(vec![0, 80])]),
        );
        l.close(&mut cap, t + 100 * MS);
        t0 += SEC;
    }
    RuleCase {
        cap,
        policy: policy(
            "s7_credential",
            "S7 passwords: a listed credential from its source and from another, an unlisted one from two sources.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{S7_CONDUITS}\n[[credentials]]\nuser = \"{listed}\"   # the PLC password \"boiler1\" as sent\nsources = [\"hmi-1\"]\n"
            ),
        ),
        alerts,
    }
}

// ---- DNP3 -----------------------------------------------------------------------------------

/// The DNP3 conduits of the DNP3 cases: engineering and hmi to cell-1 over dnp3.
const DNP3_CONDUITS: &str = r#"[[conduits]]
from = "engineering"
to   = "cell-1"
protocols = ["dnp3"]

[[conduits]]
from = "hmi"
to   = "cell-1"
protocols = ["dnp3"]
"#;

/// A DNP3 connection (server port 20000): the TCP link and the DNP3 session (master
/// link address 1, outstation 10).
struct Dnp3Link {
    l: Link,
    s: dnp3::Session,
}

impl Dnp3Link {
    /// Handshake at `t`; the first request may follow 5 ms later.
    fn open(cap: &mut Capture, client: Node, port: u16, server: Node, t: u64) -> Dnp3Link {
        let l = Link::open(cap, client, port, server, dnp3::PORT, t);
        Dnp3Link {
            l,
            s: dnp3::Session::new(MASTER, OUTSTATION),
        }
    }

    /// The request `req(sequence)` at `t`, answered by `rsp(request)` 4 ms later;
    /// returns the request's expected event (with the link addresses) for its alerts.
    fn call(
        &mut self,
        cap: &mut Capture,
        t: u64,
        req: impl FnOnce(u8) -> Apdu,
        rsp: impl FnOnce(&Apdu) -> Apdu,
    ) -> Dnp3Exp {
        let q = req(self.s.next_seq());
        let a = rsp(&q);
        self.s.exchange(&mut self.l.c, cap, (t, 4 * MS), &q, &a);
        self.s.event_of(&q)
    }

    /// An alert on the request `req` sent at `ts` with operation `operation` (the
    /// policy's, for a program file), with the request's native block as the alert's
    /// `evidence.dnp3`.
    fn alert(
        &self,
        ts: u64,
        kind: &'static str,
        req: &Dnp3Exp,
        operation: &'static str,
    ) -> AlertExp {
        AlertExp {
            protocol: Some("dnp3".into()),
            evidence: Some(format!("{{{}}}", req.json_block())),
            ..self.l.pdu_alert(ts, kind, operation)
        }
    }

    fn close(&mut self, cap: &mut Capture, t: u64) {
        self.l.close(cap, t);
    }
}

/// Analog outputs 0-3 of plc-boiler-1 (the burner's setpoints) over DNP3, written by
/// hmi-1 only, 0..=500 (values typed by the object variation: g41v2 is a 16-bit
/// integer).
const DNP3_SETPOINT: &str = r#"[[setpoints]]
name    = "boiler-1 burner setpoints (DNP3)"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 500.0
dnp3 = { analog_outputs = "0-3" }
"#;

/// DNP3 analog outputs (g41v2). historian-1 (enterprise, role historian) DIRECT
/// OPERATEs output 1 = 480: `unauthorized_setpoint_write` + `unauthorized_write`.
/// ews-2 (engineering, not a writer) DIRECT OPERATEs output 2 = 300:
/// `unauthorized_setpoint_write`; output 5 (outside 0-3): silent; SELECTs output 1 =
/// 480 without operating it: silent (a SELECT alone writes nothing). hmi-1 (the
/// writer) SELECTs and OPERATEs output 3 = 450 (silent), DIRECT OPERATEs output 1 =
/// 900 and output 0 = -5: one `setpoint_out_of_range` each.
fn dnp3_setpoint_unauthorized_writer() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let echo = |q: &Apdu| dnp3::control_echo(q, dnp3::iin::NONE);
    let direct = |index: u16, value: i16| move |seq| dnp3::direct_operate_analog(seq, index, value);
    // historian-1.
    let mut l = Dnp3Link::open(&mut cap, HISTORIAN, 50501, PLC1, T0);
    let t = T0 + 5 * MS;
    let req = l.call(&mut cap, t, direct(1, 480), echo);
    alerts.push(l.alert(t, SP_UNAUTH, &req, "write"));
    alerts.push(l.alert(t, UNAUTH_WRITE, &req, "write"));
    l.close(&mut cap, t + 100 * MS);
    // ews-2.
    let t0 = T0 + SEC;
    let mut l = Dnp3Link::open(&mut cap, EWS2, 50502, PLC1, t0);
    let mut t = t0 + 5 * MS;
    let req = l.call(&mut cap, t, direct(2, 300), echo);
    alerts.push(l.alert(t, SP_UNAUTH, &req, "write"));
    t += 50 * MS;
    l.call(&mut cap, t, direct(5, 300), echo);
    t += 50 * MS;
    l.call(&mut cap, t, |seq| dnp3::select_analog(seq, 1, 480), echo);
    l.close(&mut cap, t + 100 * MS);
    // hmi-1.
    let t0 = T0 + 2 * SEC;
    let mut l = Dnp3Link::open(&mut cap, HMI1, 50503, PLC1, t0);
    let mut t = t0 + 5 * MS;
    l.call(&mut cap, t, |seq| dnp3::select_analog(seq, 3, 450), echo);
    t += 50 * MS;
    l.call(&mut cap, t, |seq| dnp3::operate_analog(seq, 3, 450), echo);
    for (index, value) in [(1, 900), (0, -5)] {
        t += 50 * MS;
        let req = l.call(&mut cap, t, direct(index, value), echo);
        alerts.push(l.alert(t, SP_RANGE, &req, "write"));
    }
    l.close(&mut cap, t + 100 * MS);
    RuleCase {
        cap,
        policy: policy(
            "dnp3_setpoint_unauthorized_writer",
            "DNP3 analog outputs 0-3 (a setpoint) operated by non-writers, next to them, selected only, and out of range.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{DNP3_SETPOINT}\n{DNP3_CONDUITS}\n[[conduits]]\nfrom = \"enterprise\"\nto   = \"cell-1\"\nprotocols = [\"dnp3\"]\n"
            ),
        ),
        alerts,
    }
}

/// DNP3 COLD RESTART (answered with a 5 s time delay) from ews-1: `device_restart`;
/// from laptop-7 (role `other`): `unauthorized_write` (a restart changes the device)
/// then `device_restart`, in the spec's order.
fn dnp3_cold_restart() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    for (who, port, t0, unauthorized) in [
        (EWS1, 50511, T0, false),
        (LAPTOP, 50512, T0 + 10 * SEC, true),
    ] {
        let mut l = Dnp3Link::open(&mut cap, who, port, PLC1, t0);
        let t = t0 + 5 * MS;
        let req = l.call(&mut cap, t, dnp3::cold_restart, |q| {
            dnp3::restart_response(q, 5000)
        });
        if unauthorized {
            alerts.push(l.alert(t, UNAUTH_WRITE, &req, "restart"));
        }
        alerts.push(l.alert(t, RESTART, &req, "restart"));
        l.close(&mut cap, t + 100 * MS);
    }
    RuleCase {
        cap,
        policy: policy(
            "dnp3_cold_restart",
            "DNP3 cold restarts of plc-boiler-1 by ews-1 and by laptop-7 (role other).",
            BERLIN,
            NO_FOLDING,
            DNP3_CONDUITS,
        ),
        alerts,
    }
}

/// DNP3 files on plc-boiler-1 with `[dnp3] program_files = ["/config/*"]` and cell-1's
/// weekly window (closed on Friday 11:00 CET). ews-1 opens `/config/logic.bin` for
/// writing, writes two blocks and closes it: one `program_download_outside_window` on
/// the OPEN (its operation `program_download` by the policy); the blocks and the close
/// name no file (file transfers). ews-1 then opens `/config/logic.bin` for reading
/// (silent: a read is no download) and writes `/data/trend.csv` (silent: not a program
/// path; ews-1 may transfer files).
fn dnp3_program_file() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut l = Dnp3Link::open(&mut cap, EWS1, 50521, PLC1, T0);
    let t = T0 + 5 * MS;
    let (open, end) = file_write_session(&mut l.l.c, &mut l.s, &mut cap, t);
    alerts.push(l.alert(t, DOWNLOAD, &open.exp, "program_download"));
    let created = T0 / 1000 - 3_600_000;
    let status = |q: &Apdu| dnp3::file_status_response(q, 0x0000_1235, 96);
    let mut t = end + SEC;
    for (name, mode) in [
        (LOGIC_FILE, file_mode::READ),
        ("/data/trend.csv", file_mode::WRITE),
    ] {
        l.call(
            &mut cap,
            t,
            |seq| dnp3::open_file(seq, name, mode, 96, created),
            status,
        );
        t += 20 * MS;
        l.call(
            &mut cap,
            t,
            |seq| dnp3::close_file(seq, 0x0000_1235),
            status,
        );
        t += SEC;
    }
    l.close(&mut cap, t);
    RuleCase {
        cap,
        policy: policy(
            "dnp3_program_file",
            "DNP3 file transfers: /config/logic.bin written (a program download outside the window), read, and another file written.",
            BERLIN,
            NO_FOLDING,
            &format!("{WEEKLY_CELL_1}\n{DNP3_CONDUITS}\n[dnp3]\nprogram_files = [\"/config/*\"]\n"),
        ),
        alerts,
    }
}

// ---- OPC UA ---------------------------------------------------------------------------------

/// The OPC UA conduits of the OPC UA cases: engineering and hmi to cell-1 over opcua.
const OPCUA_CONDUITS: &str = r#"[[conduits]]
from = "engineering"
to   = "cell-1"
protocols = ["opcua"]

[[conduits]]
from = "hmi"
to   = "cell-1"
protocols = ["opcua"]
"#;

const INSECURE: &str = "insecure_session";

/// An OPC UA connection (server port 4840) with its secure channel.
struct UaRuleLink {
    ua: UaLink,
    client: Node,
    server: Node,
}

impl UaRuleLink {
    /// Handshake at `t`, HEL at +5 ms, OPN, CreateSession, ActivateSession
    /// (anonymous, or `user`), each answered 3 ms later, 20 ms apart. Returns the link
    /// and the ActivateSession request with its time.
    fn open(
        cap: &mut Capture,
        (client, port, server): (Node, u16, Node),
        t: u64,
        mode: Mode,
        user: Option<&str>,
    ) -> (UaRuleLink, (u64, UaExp)) {
        let Link { c, .. } = Link::open(cap, client, port, server, opcua::PORT, t);
        let seed = u32::from(port);
        let ch = Channel::new(mode, 0x0000_1000 + seed, 1, seed);
        let mut l = UaRuleLink {
            ua: UaLink::start(cap, c, ch, t + 5 * MS),
            client,
            server,
        };
        // CreateSession, then ActivateSession 20 ms later.
        let at = l.ua.t + 20 * MS;
        let exp = l.ua.session(cap, user);
        (l, (at, exp))
    }

    /// An alert on the request `req` sent at `ts`, with operation `operation` and the
    /// request's native block as `evidence.opcua`.
    fn alert(&self, ts: u64, kind: &'static str, req: &UaExp, operation: &'static str) -> AlertExp {
        AlertExp {
            ts,
            kind,
            repeats: 0,
            flow: self.ua.c.flow.clone(),
            src_zone: self.client.zone,
            dst_zone: self.server.zone,
            direction: Some("to_server"),
            protocol: Some("opcua".into()),
            operation: Some(operation),
            src_asset: self.client.name,
            dst_asset: self.server.name,
            evidence: Some(format!("{{{}}}", req.json_block())),
        }
    }

    /// A request and its response; returns the request's time and event.
    fn call(
        &mut self,
        cap: &mut Capture,
        req: impl FnOnce(&mut Channel) -> opcua::Request,
        rsp: impl FnOnce(&mut Channel, &opcua::Request) -> opcua::Request,
    ) -> (u64, UaExp) {
        let t = self.ua.t;
        (t, self.ua.call(cap, req, rsp))
    }

    /// CloseSession, CLO, TCP close.
    fn finish(&mut self, cap: &mut Capture) {
        self.ua.finish(cap);
    }
}

/// The conveyor speed of line 1, an OPC UA variable on plc-boiler-1, written by hmi-1
/// only, 0..=2 (m/s; values typed by the Variant: a Double).
const OPCUA_SETPOINT: &str = r#"[[setpoints]]
name    = "line-1 conveyor speed (OPC UA)"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 2.0
opcua = { nodes = ["ns=2;s=Line1.Speed"] }
"#;

/// OPC UA writes of ns=2;s=Line1.Speed over anonymous sessions on None channels (each
/// ActivateSession raises `insecure_session`). ews-2 (not a writer) writes 1.2:
/// `unauthorized_setpoint_write`. hmi-1 (the writer) writes 1.2 (silent), 2.5
/// (`setpoint_out_of_range`) and ns=2;s=Line1.Temp = 80 (no setpoint: silent).
fn opcua_setpoint_write() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let write = |v: f64| move |ch: &mut Channel| ch.write(&[(speed(), Value::Double(v))]);
    let ok = |ch: &mut Channel, q: &opcua::Request| ch.results_rsp(q, 1);
    // ews-2.
    let (mut l, (ta, act)) = UaRuleLink::open(&mut cap, (EWS2, 50601, PLC1), T0, Mode::None, None);
    alerts.push(l.alert(ta, INSECURE, &act, "session"));
    let (t, req) = l.call(&mut cap, write(1.2), ok);
    alerts.push(l.alert(t, SP_UNAUTH, &req, "write"));
    l.finish(&mut cap);
    // hmi-1.
    let (mut l, (ta, act)) =
        UaRuleLink::open(&mut cap, (HMI1, 50602, PLC1), T0 + SEC, Mode::None, None);
    alerts.push(l.alert(ta, INSECURE, &act, "session"));
    l.call(&mut cap, write(1.2), ok);
    let (t, req) = l.call(&mut cap, write(2.5), ok);
    alerts.push(l.alert(t, SP_RANGE, &req, "write"));
    l.call(
        &mut cap,
        |ch| ch.write(&[(NodeId::s(2, "Line1.Temp"), Value::Double(80.0))]),
        ok,
    );
    l.finish(&mut cap);
    RuleCase {
        cap,
        policy: policy(
            "opcua_setpoint_write",
            "An OPC UA setpoint (ns=2;s=Line1.Speed) written by a non-writer, by its writer in and out of range, and another node.",
            BERLIN,
            NO_FOLDING,
            &format!("{OPCUA_SETPOINT}\n{OPCUA_CONDUITS}"),
        ),
        alerts,
    }
}

/// OPC UA user names. `operator1` is listed for hmi-1. Over Basic256Sha256 Sign
/// channels (readable, signed messages): hmi-1 logs in as operator1 (silent), ews-1
/// too (`credential_unusual_origin`). Over None channels (the name readable by
/// anyone): hmi-1 as operator1 (`insecure_session`), ews-2 as operator1
/// (`credential_unusual_origin` then `insecure_session`, in the engine's order).
fn opcua_credentials() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let mut t0 = T0;
    for (who, port, mode, kinds) in [
        (HMI1, 50611, Mode::Sign, &[][..]),
        (EWS1, 50612, Mode::Sign, &[CREDENTIAL][..]),
        (HMI1, 50613, Mode::None, &[INSECURE][..]),
        (EWS2, 50614, Mode::None, &[CREDENTIAL, INSECURE][..]),
    ] {
        let (mut l, (ta, act)) =
            UaRuleLink::open(&mut cap, (who, port, PLC1), t0, mode, Some("operator1"));
        for k in kinds {
            alerts.push(l.alert(ta, k, &act, "session"));
        }
        l.call(
            &mut cap,
            |ch| ch.read(&[speed()]),
            |ch, q| ch.read_rsp(q, &[Value::Double(1.2)]),
        );
        l.finish(&mut cap);
        t0 += SEC;
    }
    RuleCase {
        cap,
        policy: policy(
            "opcua_credentials",
            "OPC UA logins as operator1 (listed for hmi-1) over signed and unsecured channels, from hmi-1, ews-1 and ews-2.",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{OPCUA_CONDUITS}\n[[credentials]]\nuser = \"operator1\"\nsources = [\"hmi-1\"]\n"
            ),
        ),
        alerts,
    }
}

/// OPC UA method calls with `[[opcua_methods]]` marking ns=2;s=Line1.Plc.Stop as a
/// mode change: ews-1 (anonymous session on a None channel: `insecure_session`) calls
/// Line1.Plc's Stop method (`plc_mode_change`, operation `mode_change`) and its Reset
/// method (not listed: `other`, silent).
fn opcua_method_stop() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let (mut l, (ta, act)) = UaRuleLink::open(&mut cap, (EWS1, 50621, PLC1), T0, Mode::None, None);
    alerts.push(l.alert(ta, INSECURE, &act, "session"));
    let (t, req) = l.call(
        &mut cap,
        |ch| ch.call(&plc_object(), &stop_method()),
        |ch, q| ch.call_rsp(q),
    );
    alerts.push(l.alert(t, MODE, &req, "mode_change"));
    l.call(
        &mut cap,
        |ch| ch.call(&plc_object(), &NodeId::s(2, "Line1.Plc.Reset")),
        |ch, q| ch.call_rsp(q),
    );
    l.finish(&mut cap);
    RuleCase {
        cap,
        policy: policy(
            "opcua_method_stop",
            "OPC UA method calls: Line1.Plc.Stop (a mode change per [[opcua_methods]]) and Line1.Plc.Reset (not listed).",
            BERLIN,
            NO_FOLDING,
            &format!(
                "{OPCUA_CONDUITS}\n[[opcua_methods]]\nnode = \"ns=2;s=Line1.Plc.Stop\"\noperation = \"mode_change\"\n"
            ),
        ),
        alerts,
    }
}

// ---- the demo ---------------------------------------------------------------------------

/// The alerts `pcaps/demo-plant.pcap` must raise with the demo policy
/// (`rules/demo-plant.toml`; pcaps/README.md tells the story). Times come from the
/// demo scenario's constants.
pub fn demo_alerts() -> Vec<String> {
    let d = scenarios::demo_times();
    let flow = |client: Node, port: u16, server: Node| AlertExp {
        ts: 0,
        kind: "",
        repeats: 0,
        flow: FlowExp {
            src_ip: client.host.ip,
            src_port: port,
            dst_ip: server.host.ip,
            dst_port: 502,
            transport: "tcp",
            community_id: community_id((client.host.ip, port), (server.host.ip, 502), 6),
        },
        src_zone: client.zone,
        dst_zone: server.zone,
        direction: None,
        protocol: None,
        operation: None,
        src_asset: client.name,
        dst_asset: server.name,
        evidence: None,
    };
    let pdu = |base: &AlertExp, ts: u64, kind: &'static str, op: &'static str| AlertExp {
        ts,
        kind,
        direction: Some("to_server"),
        protocol: Some("modbus".into()),
        operation: Some(op),
        ..base.clone()
    };
    let unknown = node([10, 0, 5, 99], 64, None, "enterprise");
    let dl = flow(EWS1, d.out_of_window_port, PLC1);
    let w120 = flow(EWS1, d.write_120_port, PLC1);
    let un = flow(unknown, d.unknown_port, PLC1);
    let alerts = [
        // Out-of-window session: stop (mode change), the session's first download
        // PDU, start 75 s later (a mode change even inside a window).
        pdu(&dl, d.stop, MODE, "mode_change"),
        pdu(&dl, d.initialize, DOWNLOAD, "program_download"),
        pdu(&dl, d.start, MODE, "mode_change"),
        // An allowed writer, a value out of range.
        pdu(&w120, d.write_120, SP_RANGE, "write"),
        // The unknown host: new_asset at its SYN, new_conduit at its first PDU, then
        // the FC16 over 98-103 touching register 100: both kinds, in spec order.
        AlertExp {
            ts: d.unknown_syn,
            kind: NEW_ASSET,
            ..un.clone()
        },
        pdu(&un, d.unknown_read, NEW_CONDUIT, "read"),
        pdu(&un, d.unknown_write, SP_UNAUTH, "write"),
        pdu(&un, d.unknown_write, UNAUTH_WRITE, "write"),
    ];
    alerts
        .iter()
        .map(|a| a.json_line_for("plant-a-span1"))
        .collect()
}

/// For the live tests' packet-to-alert latency (docs/benchmarks.md): 120 short
/// connections from laptop-7 (role `other`), 50 ms apart, each writing one register of
/// plc-boiler-1 once: 120 unauthorized_write alerts at about 200 packets/s.
fn live_latency() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    for i in 0..120u64 {
        let t0 = T0 + i * 50 * MS;
        let mut l = Link::modbus(&mut cap, LAPTOP, 51000 + i as u16, PLC1, t0);
        let t = l.call(&mut cap, t0 + 5 * MS, |tid| {
            mb::write_single_reg(tid, UNIT, 7, i as u16)
        });
        alerts.push(l.pdu_alert(t, UNAUTH_WRITE, "write"));
        l.close(&mut cap, t0 + 20 * MS);
    }
    RuleCase {
        cap,
        policy: policy(
            "live_latency",
            "120 unauthorized writes, 50 ms apart (live latency).",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_agrees_with_rfc3339() {
        assert_eq!(utc(2026, 11, 20, 10, 0, 0), T0);
        for (t, s) in [
            (utc(2026, 3, 29, 4, 30, 0), "2026-03-29T04:30:00.000000Z"),
            (utc(2026, 11, 1, 12, 0, 0), "2026-11-01T12:00:00.000000Z"),
            (utc(2000, 2, 29, 23, 59, 59), "2000-02-29T23:59:59.000000Z"),
            (utc(1970, 1, 1, 0, 0, 0), "1970-01-01T00:00:00.000000Z"),
        ] {
            assert_eq!(rfc3339_micros(t), s);
        }
    }

    #[test]
    fn every_case_builds_and_alerts_in_time_order() {
        for (name, build) in CASES {
            let c = build();
            c.cap
                .check_times()
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(
                c.alerts.windows(2).all(|w| w[0].ts <= w[1].ts),
                "{name}: expected alerts out of time order"
            );
            assert!(c.policy.contains("[sensor]"), "{name}");
        }
    }

    #[test]
    fn expected_alert_json_shape() {
        let mut cap = Capture::new();
        let l = Link::modbus(&mut cap, EWS1, 50000, PLC1, T0);
        let v: serde_json::Value =
            serde_json::from_str(&l.pdu_alert(T0, DOWNLOAD, "program_download").json_line())
                .unwrap();
        assert_eq!(v["alert"]["kind"], DOWNLOAD);
        assert_eq!(v["flow"]["src_zone"], "engineering");
        assert_eq!(v["flow"]["dst_ip"], "10.30.1.10");
        assert_eq!(v["timestamp"], "2026-11-20T10:00:00.000000Z");
        assert_eq!(v["dst_asset"], "plc-boiler-1");
        let v: serde_json::Value =
            serde_json::from_str(&l.flow_alert(T0, NEW_ASSET).json_line()).unwrap();
        assert!(v.get("protocol").is_none() && v.get("direction").is_none());
    }

    #[test]
    fn every_policy_parses() {
        for (name, build) in CASES {
            let origin = std::path::PathBuf::from(format!("pcaps/rules/{name}.policy.toml"));
            if let Err(e) = otwatch_rules::parse_str(&build().policy, &origin) {
                panic!("{name}: {e}");
            }
        }
    }

    #[test]
    fn s7_setpoint_case_writes_the_bytes_it_says() {
        // DB10.DBD2 = 00 01 00 3c: bytes 4-5 of the DB hold 0x003c = 60; DBB4-5 as two
        // BYTEs = 00 60 = 96 > 95.
        let c = s7_setpoint_unauthorized_writer();
        let kinds: Vec<&str> = c.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                SP_UNAUTH,
                UNAUTH_WRITE,
                SP_UNAUTH,
                SP_UNAUTH,
                SP_RANGE,
                SP_RANGE
            ]
        );
        assert!(c
            .alerts
            .iter()
            .all(|a| a.protocol.as_deref() == Some("s7comm")));
    }

    #[test]
    fn f32_words_big_endian() {
        // 9.5 = 0x41180000 (IEEE 754: sign 0, exponent 130, mantissa 0x180000).
        assert_eq!(f32_words(9.5), [0x4118, 0x0000]);
        assert_eq!(f32_words(f32::NAN), [0x7fc0, 0x0000]);
    }
}
