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

use super::expect::{community_id, rfc3339_micros, FlowExp};
use super::modbus::{self as mb, fc, umas, Adu};
use super::scenarios::{self, block};
use super::tcp::{Capture, Conn, Side, MS, SEC, T0};
use super::wire::{Host, ACK, PSH, RST, SYN};

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
             \"transport\":\"tcp\",\"community_id\":{},\"src_zone\":{},\"dst_zone\":{}}}",
            rfc3339_micros(self.ts),
            js(SENSOR),
            self.kind,
            self.repeats,
            f.src_ip,
            f.src_port,
            f.dst_ip,
            f.dst_port,
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
            ",\"src_asset\":{},\"dst_asset\":{}}}",
            opt(self.src_asset),
            opt(self.dst_asset)
        );
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
/// protocol) at the first PDU, not per flow: the second flow engineering -> cell-2 is
/// silent.
fn new_conduit() -> RuleCase {
    let mut cap = Capture::new();
    let mut alerts = Vec::new();
    let read = |tid| mb::read_regs(fc::READ_HOLDING_REGISTERS, tid, UNIT, 0, 4);
    let mut t = T0;
    for (client, port, server, alert) in [
        (EWS1, 50301, PLC3, true),  // engineering -> cell-2
        (EWS1, 50302, PLC3, false), // the same pair again, another flow
        (HMI1, 50303, PLC3, true),  // hmi -> cell-2
        (PLC3, 50304, PLC1, true),  // cell-2 -> cell-1
    ] {
        let mut l = Link::modbus(&mut cap, client, port, server, t);
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
/// ends with the second FIN) and a refused connection to port 23 (SYN, RST: ends with
/// the RST). hmi -> cell-1 is approved for Modbus only.
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
    RuleCase {
        cap,
        policy: policy(
            "conduit_no_pdu",
            "Flows no dissector recognises on a path approved for Modbus only: new_conduit as tcp/PORT.",
            BERLIN,
            NO_FOLDING,
            "",
        ),
        alerts: vec![a80, a23],
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
/// address in no zone (192.168.77.5) is not a plant asset: silent.
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
    RuleCase {
        cap,
        policy: policy(
            "new_asset",
            "Undeclared addresses in declared zones: one alert per address.",
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
    let t = T0 + 100 * MS;
    l.c.send(
        &mut cap,
        t,
        Side::Client,
        b"GET / HTTP/1.1\r\nHost: 10.30.1.10\r\n\r\n",
        vec![],
    );
    let mut a = l.pdu_alert(t, ANOMALY, "other");
    a.operation = None; // what garbage "does" is not defined
    alerts.push(a);
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
            community_id: community_id((client.host.ip, port), (server.host.ip, 502), 6),
        },
        src_zone: client.zone,
        dst_zone: server.zone,
        direction: None,
        protocol: None,
        operation: None,
        src_asset: client.name,
        dst_asset: server.name,
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
    fn f32_words_big_endian() {
        // 9.5 = 0x41180000 (IEEE 754: sign 0, exponent 130, mantissa 0x180000).
        assert_eq!(f32_words(9.5), [0x4118, 0x0000]);
        assert_eq!(f32_words(f32::NAN), [0x7fc0, 0x0000]);
    }
}
