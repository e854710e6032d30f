//! The validated policy: what `policy.rs` builds from TOML and what the engine reads.
//!
//! Every name is resolved and every cross-reference checked when the policy is loaded,
//! so the engine never meets an unknown zone or asset.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use jiff::tz::TimeZone;
use jiff::Timestamp as JiffTimestamp;
use otwatch_event::Operation;

/// The zone of an address in no declared zone.
pub const UNKNOWN_ZONE: &str = "unknown";

#[derive(Debug, Clone)]
pub struct Policy {
    pub sensor: Sensor,
    /// Zones by name, each with its prefixes. Lookups go through `zone_of`, most
    /// specific prefix first.
    pub zones: Vec<Zone>,
    pub assets: Vec<Asset>,
    pub conduits: Vec<Conduit>,
    pub windows: Vec<Window>,
    pub setpoints: Vec<Setpoint>,
    pub credentials: Vec<Credential>,
    pub overrides: Vec<Override>,
    pub dnp3: Dnp3Hints,
    pub opcua_methods: Vec<OpcuaMethod>,
    /// Packet-time interval within which an identical alert is folded (default 60 s).
    pub repeat_interval_secs: u64,
    /// The files the policy was read from (the main file first, then includes).
    pub sources: Vec<std::path::PathBuf>,
    /// Lookup structures built once at load time (see `lookup.rs`).
    pub(crate) index: crate::lookup::Index,
}

#[derive(Debug, Clone)]
pub struct Sensor {
    pub name: String,
    pub timezone_name: String,
    pub timezone: TimeZone,
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub prefixes: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Plc,
    Rtu,
    Hmi,
    Engineering,
    Historian,
    Gateway,
    Server,
    Other,
}

#[derive(Debug, Clone)]
pub struct Asset {
    pub name: String,
    pub ip: IpAddr,
    pub role: Role,
}

/// What a conduit allows: a dissector's name, or a transport port for anything else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConduitProtocol {
    /// `modbus`, `s7comm` (which also covers `s7comm_plus`), `dnp3`, `opcua`.
    Dissector(String),
    Tcp(u16),
    Udp(u16),
}

#[derive(Debug, Clone)]
pub struct Conduit {
    pub from: String,
    pub to: String,
    /// `None`: any protocol.
    pub protocols: Option<Vec<ConduitProtocol>>,
}

/// One `Ddd HH:MM-Ddd HH:MM` span of a weekly window, in minutes since Monday 00:00
/// local time (0..10080). `end` may be smaller than `start` (wraps past the week's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySpan {
    pub start_minute: u32,
    pub end_minute: u32,
}

#[derive(Debug, Clone)]
pub enum WindowSchedule {
    Weekly(Vec<WeeklySpan>),
    /// `[start, end)`.
    OneOff {
        start: JiffTimestamp,
        end: JiffTimestamp,
    },
}

/// What a window or a setpoint applies to: names resolved to zones or assets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Zone(String),
    Asset(String),
}

#[derive(Debug, Clone)]
pub struct Window {
    pub name: String,
    pub ticket: Option<String>,
    pub applies_to: Vec<Target>,
    /// Source asset names covered; `None` = any source.
    pub sources: Option<Vec<String>>,
    pub schedule: WindowSchedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordOrder {
    Big,
    Little,
}

/// Where a setpoint lives, per protocol. Ranges are inclusive.
#[derive(Debug, Clone, PartialEq)]
pub enum SetpointAddress {
    Modbus {
        unit: Option<u8>,
        holding_registers: Option<RangeInclusive<u16>>,
        coils: Option<RangeInclusive<u16>>,
    },
    S7 {
        area: S7Area,
        db: Option<u16>,
        bytes: RangeInclusive<u32>,
    },
    Dnp3 {
        analog_outputs: Option<RangeInclusive<u32>>,
        binary_outputs: Option<RangeInclusive<u32>>,
    },
    Opcua {
        nodes: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S7Area {
    Db,
    M,
    I,
    Q,
}

#[derive(Debug, Clone)]
pub struct Setpoint {
    pub name: String,
    /// The asset holding the setpoint.
    pub asset: String,
    /// Asset names allowed to write it (empty = nobody).
    pub writers: Vec<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub value_type: ValueType,
    pub word_order: WordOrder,
    pub address: SetpointAddress,
}

#[derive(Debug, Clone)]
pub struct Credential {
    pub user: String,
    pub sources: Vec<String>,
}

/// What an override selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverrideSelector {
    Kind(String),
    Rule(String),
}

#[derive(Debug, Clone)]
pub struct Override {
    pub selector: OverrideSelector,
    pub severity: Option<Severity>,
    pub enabled: Option<bool>,
    pub except_sources: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Default)]
pub struct Dnp3Hints {
    /// Glob patterns: a file written to a matching path is a program download.
    pub program_files: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct OpcuaMethod {
    pub node: String,
    pub operation: Operation,
}
