//! `OtEvent`: one dissected industrial PDU, in the protocol's own terms *and* in the
//! normalized operation language shared by every protocol.
//!
//! This crate is the meeting point of the pipeline: dissector crates produce [`Pdu`]s,
//! the flow layer wraps them into [`OtEvent`]s with the flow and the packet they came
//! from, and the rule engine and sinks consume them. It is deliberately tiny (serde and
//! bitflags only) so that every dissector can depend on it and still be fuzzed alone.
//!
//! The JSON form is a contract (`schema: otwatch/1`): see `docs/events.md`.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

pub mod dnp3;
pub mod modbus;
pub mod opcua;
mod outstanding;
pub mod s7comm;
mod skipped;
#[cfg(feature = "testing")]
pub mod testing;
mod time;

pub use dnp3::{Dnp3Attribute, Dnp3Info, Dnp3Object, Dnp3Point};
pub use modbus::{ModbusInfo, ModbusMore};
pub use opcua::{OpcuaApplication, OpcuaInfo, OpcuaNode, OpcuaValue};
pub use outstanding::{Outstanding, Request};
pub use s7comm::{S7Block, S7Identity, S7Item, S7commInfo, S7commPlusInfo};
pub use skipped::Skipped;
pub use time::Timestamp;

/// The schema tag carried by every JSON object otwatch writes.
pub const SCHEMA: &str = "otwatch/1";

/// What a PDU does to the process, the same for every protocol, so that one rule covers
/// them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Write,
    ProgramDownload,
    ProgramUpload,
    ModeChange,
    Restart,
    FirmwareUpdate,
    FileTransfer,
    Diagnostic,
    Identify,
    Session,
    Other,
}

impl Operation {
    /// Every operation, in the order of the spec.
    pub const ALL: [Operation; 12] = [
        Operation::Read,
        Operation::Write,
        Operation::ProgramDownload,
        Operation::ProgramUpload,
        Operation::ModeChange,
        Operation::Restart,
        Operation::FirmwareUpdate,
        Operation::FileTransfer,
        Operation::Diagnostic,
        Operation::Identify,
        Operation::Session,
        Operation::Other,
    ];

    /// The name used in JSON and in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::ProgramDownload => "program_download",
            Operation::ProgramUpload => "program_upload",
            Operation::ModeChange => "mode_change",
            Operation::Restart => "restart",
            Operation::FirmwareUpdate => "firmware_update",
            Operation::FileTransfer => "file_transfer",
            Operation::Diagnostic => "diagnostic",
            Operation::Identify => "identify",
            Operation::Session => "session",
            Operation::Other => "other",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way a PDU went, relative to the flow's initiator (client) and responder
/// (server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }

    /// 0 for to_server, 1 for to_client: an index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ToServer => "to_server",
            Direction::ToClient => "to_client",
        }
    }
}

/// Transport protocol of a flow. Only TCP and UDP make flows; the others name the
/// packets of an IP protocol the flow table does not track (a `new_asset` alert on
/// an ICMP echo), whose "ports" are ICMP's type and code, or 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other IP protocol, by its number.
    Ip(u8),
}

impl Transport {
    /// The IANA protocol number (Community ID hashes it).
    pub fn ip_proto(self) -> u8 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
            Transport::Icmp => 1,
            Transport::Icmpv6 => 58,
            Transport::Ip(n) => n,
        }
    }

    /// The transport of an IP protocol number.
    pub fn of_ip_proto(n: u8) -> Transport {
        match n {
            6 => Transport::Tcp,
            17 => Transport::Udp,
            1 => Transport::Icmp,
            58 => Transport::Icmpv6,
            n => Transport::Ip(n),
        }
    }

    /// As written in JSON (`"transport"`): `ip` for the protocols without a name here.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Icmp => "icmp",
            Transport::Icmpv6 => "icmpv6",
            Transport::Ip(_) => "ip",
        }
    }
}

impl Serialize for Transport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The dissector that produced a PDU; its name is the key of the native block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Modbus,
    S7comm,
    S7commPlus,
    Dnp3,
    Opcua,
}

impl Protocol {
    pub const ALL: [Protocol; 5] = [
        Protocol::Modbus,
        Protocol::S7comm,
        Protocol::S7commPlus,
        Protocol::Dnp3,
        Protocol::Opcua,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Modbus => "modbus",
            Protocol::S7comm => "s7comm",
            Protocol::S7commPlus => "s7comm_plus",
            Protocol::Dnp3 => "dnp3",
            Protocol::Opcua => "opcua",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

bitflags::bitflags! {
    /// Out-of-spec properties of a PDU that was still framed well enough to report.
    ///
    /// Anomalies are data, not errors: the PDU travels on with them and rules match
    /// them (`protocol_anomaly`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Anomalies: u32 {
        /// A length field disagrees with the bytes present or is out of the legal range.
        const BAD_LENGTH = 1 << 0;
        /// The protocol identifier is not the one the protocol requires.
        const PROTOCOL_ID = 1 << 1;
        /// A function/service code that the protocol does not define.
        const UNKNOWN_FUNCTION = 1 << 2;
        /// The body does not decode as its function requires.
        const MALFORMED = 1 << 3;
        /// A response with no matching request in this flow.
        const UNMATCHED_RESPONSE = 1 << 4;
        /// A response whose content contradicts its request (e.g. a byte count that
        /// does not fit the requested quantity).
        const RESPONSE_MISMATCH = 1 << 5;
        /// Explained by the sensor's own loss of bytes (a capture gap), not by the
        /// device: the bytes skipped after a gap to find the next PDU, or a response
        /// whose request was lost. Not an anomaly of the device on its own.
        const RESYNC = 1 << 6;
        /// Values outside the range the spec allows (quantity limits, coil values).
        const OUT_OF_SPEC_VALUE = 1 << 7;
        /// An exception code that the protocol does not define.
        const UNKNOWN_EXCEPTION = 1 << 8;
        /// More requests were outstanding than the flow keeps; the oldest was dropped.
        const REQUEST_FLOOD = 1 << 9;
        /// Bytes that never formed a PDU (garbage); reported once per stretch.
        const GARBAGE = 1 << 10;
        /// A checksum carried by the protocol (DNP3 link-layer CRC) does not match:
        /// the bytes it covers are not trusted.
        const BAD_CHECKSUM = 1 << 11;
    }
}

impl Anomalies {
    /// Stable names of the flags, as written in JSON.
    pub const NAMES: [(Anomalies, &'static str); 12] = [
        (Anomalies::BAD_LENGTH, "bad_length"),
        (Anomalies::PROTOCOL_ID, "protocol_id"),
        (Anomalies::UNKNOWN_FUNCTION, "unknown_function"),
        (Anomalies::MALFORMED, "malformed"),
        (Anomalies::UNMATCHED_RESPONSE, "unmatched_response"),
        (Anomalies::RESPONSE_MISMATCH, "response_mismatch"),
        (Anomalies::RESYNC, "resync"),
        (Anomalies::OUT_OF_SPEC_VALUE, "out_of_spec_value"),
        (Anomalies::UNKNOWN_EXCEPTION, "unknown_exception"),
        (Anomalies::REQUEST_FLOOD, "request_flood"),
        (Anomalies::GARBAGE, "garbage"),
        (Anomalies::BAD_CHECKSUM, "bad_checksum"),
    ];

    /// Names of the flags that are set, in a fixed order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, name)| name)
    }
}

/// The five-tuple of a flow, oriented initiator -> responder, and its Community ID.
///
/// Created once per flow and shared (`Arc`) by every event of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlowMeta {
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    /// Community ID v1 (seed 0), e.g. `1:LQU9qZlK+B5F3KDmev6m5PMibrg=`.
    pub community_id: String,
    /// Whether the TCP handshake was seen (so `src` is known to be the initiator).
    pub handshake_seen: bool,
}

/// The protocol's own view of a PDU. One variant per dissector.
#[derive(Debug, Clone, PartialEq)]
pub enum Native {
    Modbus(ModbusInfo),
    /// Boxed: S7 PDUs carry more optional fields than the others, and every event
    /// should not pay for them in size.
    S7comm(Box<S7commInfo>),
    S7commPlus(S7commPlusInfo),
    /// Boxed, as S7comm: its object and point lists are rare in other protocols.
    Dnp3(Box<Dnp3Info>),
    /// Boxed, as S7comm.
    Opcua(Box<OpcuaInfo>),
}

impl Native {
    pub fn protocol(&self) -> Protocol {
        match self {
            Native::Modbus(_) => Protocol::Modbus,
            Native::S7comm(_) => Protocol::S7comm,
            Native::S7commPlus(_) => Protocol::S7commPlus,
            Native::Dnp3(_) => Protocol::Dnp3,
            Native::Opcua(_) => Protocol::Opcua,
        }
    }
}

/// What a dissector reports for one PDU, before the flow layer adds where and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Pdu {
    pub direction: Direction,
    /// A response (or other answer from the device side), as opposed to a request
    /// from the requesting side. The *source* of the operation is the sender of a
    /// request and the receiver of a response.
    pub is_response: bool,
    pub operation: Operation,
    pub anomalies: Anomalies,
    pub native: Native,
}

// Every PDU is moved several times on its way (dissector, flow table, event): the
// rare and large native fields live behind a `Box` so that this stays small.
const _: () = assert!(std::mem::size_of::<Pdu>() <= 80);

impl Pdu {
    pub fn protocol(&self) -> Protocol {
        self.native.protocol()
    }

    /// The event of a stretch of bytes that formed no PDU (garbage, or what a capture
    /// gap left of one): the dissector skipped them, it recognised nothing.
    pub fn is_skipped_bytes(&self) -> bool {
        const SKIPPED: &str = "garbage";
        match &self.native {
            Native::Modbus(m) => m.function == SKIPPED,
            Native::S7comm(s) => s.function == SKIPPED,
            Native::S7commPlus(_) => false,
            Native::Dnp3(d) => d.function == SKIPPED,
            Native::Opcua(o) => o.message_type == SKIPPED,
        }
    }
}

/// Where a dissector puts the PDUs it completes, in order.
pub trait PduSink {
    fn push(&mut self, pdu: Pdu);

    /// Whether `pdu`, if pushed next, would become an event. A dissector may ask before
    /// building what only an event shows (the register and coil values of a Modbus
    /// response) and leave it out when the answer is no: the PDU is still pushed, and
    /// counted. `pdu` is then complete but for those values, and still carries the
    /// dissector's own direction: the answer depends only on `is_response`,
    /// `operation`, `anomalies`, the protocol, and the PDU's place in its flow.
    fn wants(&self, _pdu: &Pdu) -> bool {
        true
    }
}

/// Every PDU is wanted.
impl PduSink for Vec<Pdu> {
    fn push(&mut self, pdu: Pdu) {
        Vec::push(self, pdu);
    }
}

/// One dissected PDU with its flow, direction and packet time.
#[derive(Debug, Clone, PartialEq)]
pub struct OtEvent {
    /// Time of the packet that completed the PDU.
    pub timestamp: Timestamp,
    /// Index (0-based, over all input files) of the packet that completed the PDU: the
    /// primary key of the global event order.
    pub packet_index: u64,
    /// Index of the first packet of the flow: a deterministic flow identity, and the
    /// secondary order key (events emitted at the end of input, by no packet, carry
    /// `packet_index == u64::MAX` and are ordered by flow).
    pub flow_id: u64,
    /// Ordinal of the PDU among those of the same flow completed by the same packet.
    pub pdu_ordinal: u32,
    /// Ordinal of the PDU within its flow and direction (stable across runs and thread
    /// counts; alert ids derive from it).
    pub flow_ordinal: u64,
    pub flow: Arc<FlowMeta>,
    pub pdu: Pdu,
}

impl OtEvent {
    /// The key that puts events back into packet order after the workers (shared
    /// with [`FlowNote::order_key`]).
    pub fn order_key(&self) -> (u64, u64, u8, u32) {
        (self.packet_index, self.flow_id, 1, self.pdu_ordinal)
    }

    pub fn protocol(&self) -> Protocol {
        self.pdu.protocol()
    }

    /// Appends the event's JSON object (one line, no newline) to `out`.
    pub fn write_json(&self, ctx: &JsonContext<'_>, out: &mut Vec<u8>) {
        let event = EventJson {
            schema: SCHEMA,
            event_type: "ot",
            timestamp: self.timestamp,
            sensor: ctx.sensor,
            flow: FlowJson::new(&self.flow, ctx.zones),
            direction: self.pdu.direction,
            protocol: self.protocol(),
            operation: self.pdu.operation,
            anomalies: AnomaliesJson(self.pdu.anomalies),
            ticket: ctx.ticket,
            modbus: match &self.pdu.native {
                Native::Modbus(m) => Some(m),
                _ => None,
            },
            s7comm: match &self.pdu.native {
                Native::S7comm(s) => Some(s),
                _ => None,
            },
            s7comm_plus: match &self.pdu.native {
                Native::S7commPlus(s) => Some(s),
                _ => None,
            },
            dnp3: match &self.pdu.native {
                Native::Dnp3(d) => Some(d),
                _ => None,
            },
            opcua: match &self.pdu.native {
                Native::Opcua(o) => Some(o),
                _ => None,
            },
        };
        // Serializing plain structs into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &event);
    }
}

/// A flow's life, as the rule engine needs it: its first packet (new assets), and its
/// end (conduits of flows that never carried a recognised PDU).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowNote {
    /// Time of the packet that started or ended the flow (at the end of input: the
    /// flow's last packet).
    pub timestamp: Timestamp,
    /// As in [`OtEvent::packet_index`]; `u64::MAX` for flows ended by the end of input.
    pub packet_index: u64,
    pub flow_id: u64,
    pub flow: Arc<FlowMeta>,
    pub kind: FlowNoteKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowNoteKind {
    Start,
    /// A packet of an IP protocol that makes no flow (ICMP, ...): its addresses, for
    /// `new_asset`. Its `flow` names the packet's two ends (sender first) and
    /// protocol; `flow_id` is the packet's index. Sent once per address pair and
    /// protocol while the worker remembers it.
    Packet,
    End {
        /// At least one PDU was dissected on the flow.
        recognised: bool,
        /// SYN and SYN-ACK were seen and the initiator went on sending (TCP only).
        handshake_completed: bool,
        /// Packets and transport payload bytes, both directions.
        packets: u64,
        bytes: u64,
    },
}

impl FlowNote {
    /// Where the note goes in the global order: a flow's start before the PDUs of its
    /// first packet, its end after the PDUs of its last.
    pub fn order_key(&self) -> (u64, u64, u8, u32) {
        let rank = match self.kind {
            FlowNoteKind::Start | FlowNoteKind::Packet => 0,
            FlowNoteKind::End { .. } => 2,
        };
        (self.packet_index, self.flow_id, rank, 0)
    }
}

/// What JSON output needs beyond the event: the sensor name and, once the rule engine
/// knows them, the zones of the flow's ends and the ticket of the maintenance window
/// that covers the event's operation.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonContext<'a> {
    pub sensor: &'a str,
    pub zones: Option<(&'a str, &'a str)>,
    pub ticket: Option<&'a str>,
}

#[derive(Serialize)]
struct EventJson<'a> {
    schema: &'static str,
    event_type: &'static str,
    timestamp: Timestamp,
    sensor: &'a str,
    flow: FlowJson<'a>,
    direction: Direction,
    protocol: Protocol,
    operation: Operation,
    #[serde(skip_serializing_if = "AnomaliesJson::is_empty")]
    anomalies: AnomaliesJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    ticket: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    modbus: Option<&'a ModbusInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s7comm: Option<&'a S7commInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s7comm_plus: Option<&'a S7commPlusInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dnp3: Option<&'a Dnp3Info>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opcua: Option<&'a OpcuaInfo>,
}

/// The `flow` block of events and alerts.
#[derive(Debug, Serialize)]
pub struct FlowJson<'a> {
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    pub transport: Transport,
    pub community_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_zone: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst_zone: Option<&'a str>,
}

impl<'a> FlowJson<'a> {
    pub fn new(flow: &'a FlowMeta, zones: Option<(&'a str, &'a str)>) -> Self {
        FlowJson {
            src_ip: flow.src_ip,
            src_port: flow.src_port,
            dst_ip: flow.dst_ip,
            dst_port: flow.dst_port,
            transport: flow.transport,
            community_id: &flow.community_id,
            src_zone: zones.map(|z| z.0),
            dst_zone: zones.map(|z| z.1),
        }
    }
}

struct AnomaliesJson(Anomalies);

impl AnomaliesJson {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for AnomaliesJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn flow() -> Arc<FlowMeta> {
        Arc::new(FlowMeta {
            src_ip: IpAddr::V4(Ipv4Addr::new(10, 20, 1, 5)),
            src_port: 49152,
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 30, 1, 10)),
            dst_port: 502,
            transport: Transport::Tcp,
            community_id: "1:abc=".into(),
            handshake_seen: true,
        })
    }

    /// The JSON of `pdu` as an event of `flow()` at a fixed time, on sensor
    /// `plant-a-span1`, with no zones or ticket.
    fn json_of(pdu: Pdu) -> serde_json::Value {
        let ev = OtEvent {
            timestamp: Timestamp::from_nanos(1_795_184_530_330_000_123),
            packet_index: 3,
            flow_id: 0,
            pdu_ordinal: 0,
            flow_ordinal: 0,
            flow: flow(),
            pdu,
        };
        let mut out = Vec::new();
        let ctx = JsonContext {
            sensor: "plant-a-span1",
            ..JsonContext::default()
        };
        ev.write_json(&ctx, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn event_json_has_the_contract_fields() {
        let v = json_of(Pdu {
            direction: Direction::ToServer,
            is_response: false,
            operation: Operation::Write,
            anomalies: Anomalies::empty(),
            native: Native::Modbus(ModbusInfo {
                transaction_id: 7,
                unit_id: 1,
                function_code: 16,
                function: "write_multiple_registers",
                address: Some(100),
                quantity: Some(2),
                values: Some(vec![72, 73]),
                ..ModbusInfo::default()
            }),
        });
        assert_eq!(v["schema"], "otwatch/1");
        assert_eq!(v["event_type"], "ot");
        assert_eq!(v["timestamp"], "2026-11-20T14:22:10.330000Z");
        assert_eq!(v["sensor"], "plant-a-span1");
        assert_eq!(v["flow"]["src_ip"], "10.20.1.5");
        assert_eq!(v["flow"]["dst_port"], 502);
        assert_eq!(v["flow"]["transport"], "tcp");
        assert_eq!(v["direction"], "to_server");
        assert_eq!(v["protocol"], "modbus");
        assert_eq!(v["operation"], "write");
        assert_eq!(v["modbus"]["function_code"], 16);
        assert!(v["modbus"]["exception_code"].is_null());
        assert_eq!(v["modbus"]["values"], serde_json::json!([72, 73]));
        assert!(v.get("anomalies").is_none());
    }

    #[test]
    fn s7comm_plus_function_code_is_null_when_the_pdu_has_none() {
        // The contract's s7comm_plus block holds opcode and function_code: a
        // notification (no function code on the wire) still carries the key.
        let json = |info: S7commPlusInfo| {
            json_of(Pdu {
                direction: Direction::ToClient,
                is_response: true,
                operation: Operation::Read,
                anomalies: Anomalies::empty(),
                native: Native::S7commPlus(info),
            })
        };
        let v = json(S7commPlusInfo {
            protocol_version: 3,
            opcode: 0x33,
            function: "notification",
            protected: true,
            ..S7commPlusInfo::default()
        });
        assert_eq!(v["protocol"], "s7comm_plus");
        let b = &v["s7comm_plus"];
        assert_eq!(b["opcode"], 0x33);
        assert!(b.get("function_code").is_some_and(|f| f.is_null()), "{b}");
        assert!(b.get("session_id").is_none(), "{b}");
        let v = json(S7commPlusInfo {
            protocol_version: 3,
            opcode: 0x31,
            function_code: Some(0x04f2),
            function: "set_variable",
            session_id: Some(0x7000_0e4d),
            protected: true,
        });
        assert_eq!(v["s7comm_plus"]["function_code"], 0x04f2);
    }

    #[test]
    fn anomalies_serialize_by_name() {
        let a = Anomalies::BAD_LENGTH | Anomalies::UNKNOWN_FUNCTION;
        assert_eq!(
            a.names().collect::<Vec<_>>(),
            ["bad_length", "unknown_function"]
        );
    }
}
