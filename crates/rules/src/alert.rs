//! An alert and its two forms: the JSON object of the contract (`output.md`) and a
//! one-line text for terminals.
//!
//! Alerts are rare next to events, so an alert owns its strings and its evidence is a
//! `serde_json::Value`: clarity over allocation counts.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use otwatch_event::{Direction, FlowJson, FlowMeta, Operation, Timestamp, SCHEMA};
use serde::Serialize;

use crate::model::Severity;

/// What an alert means: the `alert.kind` names of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    ProgramDownloadOutsideWindow,
    UnauthorizedSetpointWrite,
    SetpointOutOfRange,
    NewConduit,
    UnauthorizedWrite,
    PlcModeChange,
    DeviceRestart,
    ProgramUpload,
    NewAsset,
    ProtocolAnomaly,
    CredentialUnusualOrigin,
    InsecureSession,
}

impl AlertKind {
    /// Every kind, in the order the policy spec lists the detections.
    pub const ALL: [AlertKind; 12] = [
        AlertKind::ProgramDownloadOutsideWindow,
        AlertKind::UnauthorizedSetpointWrite,
        AlertKind::SetpointOutOfRange,
        AlertKind::NewConduit,
        AlertKind::UnauthorizedWrite,
        AlertKind::NewAsset,
        AlertKind::CredentialUnusualOrigin,
        AlertKind::InsecureSession,
        AlertKind::PlcModeChange,
        AlertKind::DeviceRestart,
        AlertKind::ProgramUpload,
        AlertKind::ProtocolAnomaly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ProgramDownloadOutsideWindow => "program_download_outside_window",
            AlertKind::UnauthorizedSetpointWrite => "unauthorized_setpoint_write",
            AlertKind::SetpointOutOfRange => "setpoint_out_of_range",
            AlertKind::NewConduit => "new_conduit",
            AlertKind::UnauthorizedWrite => "unauthorized_write",
            AlertKind::PlcModeChange => "plc_mode_change",
            AlertKind::DeviceRestart => "device_restart",
            AlertKind::ProgramUpload => "program_upload",
            AlertKind::NewAsset => "new_asset",
            AlertKind::ProtocolAnomaly => "protocol_anomaly",
            AlertKind::CredentialUnusualOrigin => "credential_unusual_origin",
            AlertKind::InsecureSession => "insecure_session",
        }
    }

    /// The kind of a name as written in rules and policy files.
    pub fn from_name(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A small dense index (for per-kind arrays).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AlertKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The name of a severity as written in JSON, rules and policies.
pub fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// The severity of a name (`info`, `low`, `medium`, `high`, `critical`).
pub fn severity_from_name(name: &str) -> Option<Severity> {
    [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .into_iter()
    .find(|s| severity_name(*s) == name)
}

/// One alert, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The packet that completed the triggering PDU (flow-level alerts: see the kind).
    pub timestamp: Timestamp,
    pub sensor: Arc<str>,
    /// 32 hex digits derived from content (see `engine.rs`): stable across replays and
    /// thread counts.
    pub id: String,
    pub kind: AlertKind,
    pub rule: Arc<str>,
    pub title: Arc<str>,
    pub severity: Severity,
    pub attack: Arc<[String]>,
    /// Identical alerts folded since the previous one of its kind was emitted.
    pub repeats: u64,
    pub flow: Arc<FlowMeta>,
    pub src_zone: Arc<str>,
    pub dst_zone: Arc<str>,
    /// Which way the triggering PDU went (`None` for flow-level alerts).
    pub direction: Option<Direction>,
    /// The triggering PDU's protocol (`modbus`, ...); for a `new_conduit` decided on a
    /// flow that carried no recognised PDU, `tcp/PORT` or `udp/PORT`.
    pub protocol: Option<String>,
    pub operation: Option<Operation>,
    /// The operation's source and target (requesting side and device); for flow-level
    /// alerts the flow's initiator and responder.
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    /// Asset names of `src_ip`/`dst_ip`, `None` when not declared.
    pub src_asset: Option<String>,
    pub dst_asset: Option<String>,
    /// Kind-specific detail: the native block of the triggering PDU, windows
    /// considered, setpoint and values, handshake state, ...
    pub evidence: serde_json::Value,
    /// A sentence an operator understands.
    pub message: String,
}

#[derive(Serialize)]
struct AlertJson<'a> {
    schema: &'static str,
    event_type: &'static str,
    timestamp: Timestamp,
    sensor: &'a str,
    alert: AlertHeadJson<'a>,
    flow: FlowJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<Direction>,
    protocol: Option<&'a str>,
    operation: Option<Operation>,
    src_asset: Option<&'a str>,
    dst_asset: Option<&'a str>,
    evidence: &'a serde_json::Value,
    message: &'a str,
}

#[derive(Serialize)]
struct AlertHeadJson<'a> {
    id: &'a str,
    kind: AlertKind,
    rule: &'a str,
    title: &'a str,
    severity: &'static str,
    attack: &'a [String],
    repeats: u64,
}

impl Alert {
    /// Appends the alert's JSON object (one line, no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let json = AlertJson {
            schema: SCHEMA,
            event_type: "alert",
            timestamp: self.timestamp,
            sensor: &self.sensor,
            alert: AlertHeadJson {
                id: &self.id,
                kind: self.kind,
                rule: &self.rule,
                title: &self.title,
                severity: severity_name(self.severity),
                attack: &self.attack,
                repeats: self.repeats,
            },
            flow: FlowJson::new(&self.flow, Some((&self.src_zone, &self.dst_zone))),
            direction: self.direction,
            protocol: self.protocol.as_deref(),
            operation: self.operation,
            src_asset: self.src_asset.as_deref(),
            dst_asset: self.dst_asset.as_deref(),
            evidence: &self.evidence,
            message: &self.message,
        };
        // Serializing plain structs and a `Value` into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &json);
    }

    /// The Kafka message key: the flow's Community ID.
    pub fn kafka_key(&self) -> &str {
        &self.flow.community_id
    }

    /// `TIMESTAMP SEVERITY KIND src -> dst: message`, for terminals.
    pub fn text_line(&self) -> String {
        let src = self
            .src_asset
            .clone()
            .unwrap_or_else(|| self.src_ip.to_string());
        let dst = self
            .dst_asset
            .clone()
            .unwrap_or_else(|| self.dst_ip.to_string());
        let mut line = format!(
            "{} {} {} {} -> {}: {}",
            self.timestamp,
            severity_name(self.severity).to_ascii_uppercase(),
            self.kind,
            src,
            dst,
            self.message
        );
        if self.repeats > 0 {
            line.push_str(&format!(" (+{} folded repeats)", self.repeats));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otwatch_event::Transport;
    use std::net::Ipv4Addr;

    fn sample() -> Alert {
        let src = IpAddr::V4(Ipv4Addr::new(10, 20, 1, 5));
        let dst = IpAddr::V4(Ipv4Addr::new(10, 30, 1, 10));
        Alert {
            // 2026-11-20T14:22:10.330000Z
            timestamp: Timestamp::from_nanos(1_795_184_530_330_000_123),
            sensor: "plant-a-span1".into(),
            id: "0123456789abcdef0123456789abcdef".into(),
            kind: AlertKind::ProgramDownloadOutsideWindow,
            rule: "OTW-1001".into(),
            title: "PLC program download outside maintenance window".into(),
            severity: Severity::Critical,
            attack: vec!["T0843".to_string()].into(),
            repeats: 0,
            flow: Arc::new(FlowMeta {
                src_ip: src,
                src_port: 49152,
                dst_ip: dst,
                dst_port: 502,
                transport: Transport::Tcp,
                community_id: "1:abc=".into(),
                handshake_seen: true,
            }),
            src_zone: "engineering".into(),
            dst_zone: "cell-1".into(),
            direction: Some(Direction::ToServer),
            protocol: Some("modbus".into()),
            operation: Some(Operation::ProgramDownload),
            src_ip: src,
            dst_ip: dst,
            src_asset: Some("ews-1".into()),
            dst_asset: None,
            evidence: serde_json::json!({"windows_considered": ["weekly-maintenance"]}),
            message: "ews-1 downloaded a program to 10.30.1.10".into(),
        }
    }

    #[test]
    fn json_has_every_contract_field() {
        let mut out = Vec::new();
        sample().write_json(&mut out);
        assert!(!out.contains(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["schema"], "otwatch/1");
        assert_eq!(v["event_type"], "alert");
        assert_eq!(v["timestamp"], "2026-11-20T14:22:10.330000Z");
        assert_eq!(v["sensor"], "plant-a-span1");
        assert_eq!(v["alert"]["id"], "0123456789abcdef0123456789abcdef");
        assert_eq!(v["alert"]["kind"], "program_download_outside_window");
        assert_eq!(v["alert"]["rule"], "OTW-1001");
        assert_eq!(
            v["alert"]["title"],
            "PLC program download outside maintenance window"
        );
        assert_eq!(v["alert"]["severity"], "critical");
        assert_eq!(v["alert"]["attack"], serde_json::json!(["T0843"]));
        assert_eq!(v["alert"]["repeats"], 0);
        assert_eq!(v["flow"]["src_ip"], "10.20.1.5");
        assert_eq!(v["flow"]["dst_port"], 502);
        assert_eq!(v["flow"]["community_id"], "1:abc=");
        assert_eq!(v["flow"]["src_zone"], "engineering");
        assert_eq!(v["flow"]["dst_zone"], "cell-1");
        assert_eq!(v["protocol"], "modbus");
        assert_eq!(v["operation"], "program_download");
        assert_eq!(v["src_asset"], "ews-1");
        // Present and null when the address is not a declared asset.
        assert!(v.get("dst_asset").is_some_and(|d| d.is_null()));
        assert_eq!(
            v["evidence"]["windows_considered"],
            serde_json::json!(["weekly-maintenance"])
        );
        assert_eq!(v["message"], "ews-1 downloaded a program to 10.30.1.10");
    }

    #[test]
    fn text_line_and_kafka_key() {
        let mut a = sample();
        assert_eq!(
            a.text_line(),
            "2026-11-20T14:22:10.330000Z CRITICAL program_download_outside_window \
             ews-1 -> 10.30.1.10: ews-1 downloaded a program to 10.30.1.10"
        );
        a.repeats = 3;
        assert!(a.text_line().ends_with(" (+3 folded repeats)"));
        assert_eq!(a.kafka_key(), "1:abc=");
    }

    #[test]
    fn kind_and_severity_names_round_trip() {
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::from_name(k.as_str()), Some(k));
        }
        assert_eq!(AlertKind::from_name("program_download"), None);
        for s in ["info", "low", "medium", "high", "critical"] {
            assert_eq!(severity_from_name(s).map(severity_name), Some(s));
        }
        assert_eq!(severity_from_name("urgent"), None);
    }
}
