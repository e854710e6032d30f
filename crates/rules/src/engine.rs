//! The rule engine: detections over normalized events, alert repeats, alert ids.
//!
//! One engine sees every event and flow note of a run (or, when events are not written,
//! the events [`Engine::may_act_on`] keeps, which gives the same alerts), in packet
//! order, on the packet clock: a replay gives the same alerts, in the same order and
//! with the same ids, for any number of flow workers. Detections speak the normalized
//! language (operations, source and target, zones, assets), so every dissector gets
//! them; only setpoint addressing looks into the native block.
//!
//! # Decisions the spec leaves open
//!
//! * **Download sessions.** A download session is the run of `program_download` /
//!   `firmware_update` requests on one flow (so one source and one target) with no gap
//!   of [`DOWNLOAD_SESSION_GAP_SECS`] or more between two of them; the flow's end also
//!   ends it. Only the session's first PDU is checked against the windows: a session
//!   that began inside a window is not cut short by the window closing.
//! * **Joined mid-stream.** On a flow whose TCP handshake was not captured, responses
//!   that arrive before the first request of the flow answer requests sent before the
//!   sensor started listening: their `unmatched_response` flag is not an anomaly.
//! * **Capture loss.** Bytes the sensor lost (a gap in a TCP stream) are not the
//!   device's doing: what a dissector skips to find the next PDU after a gap, and a
//!   response whose request was lost with it, carry `resync`, and neither that flag
//!   nor the `unmatched_response` it explains is an anomaly. Any other flag on the
//!   same PDU still is.
//! * **Roles of a malformed PDU.** `protocol_anomaly` names the PDU's *sender* as
//!   `src_asset` (the host that sent the malformed bytes) and its receiver as
//!   `dst_asset`; every other PDU-level kind names the operation's source and target.
//! * **New assets** ignore multicast, unspecified and subnet-broadcast addresses (the
//!   last address of an IPv4 zone prefix of length 30 or less): they are not devices.
//!
//! # Bounds
//!
//! All state is bounded so that hostile traffic cannot grow it without limit:
//! per-flow state ([`MAX_FLOWS`]; the oldest half is dropped when full, which can at
//! worst start a new download session early or re-decide a conduit that is already
//! in the seen set), seen addresses and conduits ([`MAX_SEEN`], oldest forgotten first:
//! a forgotten one may alert again), credentials seen ([`MAX_SEEN`]), and the repeat
//! table ([`MAX_REPEAT_KEYS`]; expired entries with nothing folded go first since
//! forgetting them changes nothing, then the least recently emitted half, whose folded
//! counts are lost).

use std::borrow::Cow;
use std::collections::VecDeque;

/// The engine runs once per event on the merge thread: its maps hash with foldhash
/// (seeded at random per map) rather than SipHash, which showed up as a tenth of the
/// merge thread's time.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;
use std::hash::Hash;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use otwatch_event::{
    Anomalies, Direction, Dnp3Info, FlowMeta, ModbusInfo, Native, OpcuaInfo, OpcuaValue, Operation,
    OtEvent, Pdu, Protocol, S7commInfo, Timestamp, Transport,
};
use serde_json::{json, Map, Value};

use crate::alert::{Alert, AlertKind};
use crate::model::{
    Asset, ConduitProtocol, Policy, Role, S7Area, Setpoint, SetpointAddress, ValueType, WordOrder,
};
use crate::policy::{conduit_protocol_name, role_name};
use crate::ruleset::RuleSet;

/// A pause in downloads on a flow that ends a download session.
pub const DOWNLOAD_SESSION_GAP_SECS: i64 = 300;
/// Flows whose state the engine keeps at once.
pub const MAX_FLOWS: usize = 1 << 20;
/// Addresses (new_asset), conduits (new_conduit) and credential sources remembered.
pub const MAX_SEEN: usize = 1 << 18;
/// Distinct alerts whose repeats are tracked at once.
pub const MAX_REPEAT_KEYS: usize = 1 << 16;

const NANOS_PER_SEC: i64 = 1_000_000_000;

type FlowKey = (IpAddr, u16, IpAddr, u16, Transport);

fn flow_key(f: &FlowMeta) -> FlowKey {
    (f.src_ip, f.src_port, f.dst_ip, f.dst_port, f.transport)
}

#[derive(Debug, Default)]
struct FlowState {
    /// The flow's conduit was decided (at its first recognised PDU).
    conduit_decided: bool,
    /// A request was seen on the flow (see "Joined mid-stream").
    request_seen: bool,
    /// Time of the last download/firmware request of the current session.
    last_download: Option<Timestamp>,
}

/// Per-flow state, bounded by dropping the oldest half when full.
#[derive(Debug, Default)]
pub(crate) struct FlowTable<S> {
    map: HashMap<FlowKey, (u64, S)>,
    next_seq: u64,
    cap: usize,
}

impl<S: Default> FlowTable<S> {
    pub(crate) fn new(cap: usize) -> Self {
        FlowTable {
            map: HashMap::default(),
            next_seq: 0,
            cap: cap.max(2),
        }
    }

    /// The state of a flow, and whether it was just created.
    pub(crate) fn entry(&mut self, flow: &FlowMeta) -> (&mut S, bool) {
        let key = flow_key(flow);
        let created = !self.map.contains_key(&key);
        if created && self.map.len() >= self.cap {
            let keep_from = self.next_seq.saturating_sub(self.cap as u64 / 2);
            self.map.retain(|_, (seq, _)| *seq >= keep_from);
            tracing::debug!(
                kept = self.map.len(),
                "rule engine flow state full: oldest half dropped"
            );
        }
        let seq = self.next_seq;
        let (_, s) = self.map.entry(key).or_insert_with(|| (seq, S::default()));
        if created {
            self.next_seq += 1;
        }
        (s, created)
    }

    pub(crate) fn remove(&mut self, flow: &FlowMeta) -> Option<S> {
        self.map.remove(&flow_key(flow)).map(|(_, s)| s)
    }
}

/// A set that forgets its oldest members beyond a bound.
#[derive(Debug)]
pub(crate) struct BoundedSet<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Hash + Eq + Clone> BoundedSet<T> {
    pub(crate) fn new(cap: usize) -> Self {
        BoundedSet {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Adds `v`; true if it was not there.
    pub(crate) fn insert(&mut self, v: T) -> bool {
        if self.set.contains(&v) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(v.clone());
        self.order.push_back(v);
        true
    }

    /// Members, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.order.iter()
    }
}

/// What the engine has seen that must outlive the process (`live --state-dir`), so
/// that a restart does not alert again on every conduit and asset it already reported.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SeenState {
    /// (source zone, destination zone, protocol) of conduits reported as new.
    pub conduits: Vec<(String, String, String)>,
    /// Addresses reported as new assets.
    pub assets: Vec<IpAddr>,
    /// (credential, source) pairs reported as unusual.
    pub credentials: Vec<(String, String)>,
    /// Unlisted credentials and the first source each was seen from.
    pub credential_first_source: Vec<(String, String)>,
}

/// What makes two alerts "identical" for repeats: kind (hence rule), source, target,
/// and the target address or node.
type RepeatKey = (AlertKind, String, String, String);

#[derive(Debug)]
struct RepeatEntry {
    last_emitted: Timestamp,
    folded: u64,
}

/// Where an alert comes from, everything but the kind-specific part.
struct Origin<'p> {
    ts: Timestamp,
    flow: &'p Arc<FlowMeta>,
    direction: Option<Direction>,
    protocol: Option<Cow<'static, str>>,
    operation: Option<Operation>,
    src_ip: IpAddr,
    dst_ip: IpAddr,
    src_asset: Option<&'p Asset>,
    dst_asset: Option<&'p Asset>,
    trigger: Trigger,
}

/// What triggered an alert: identifies it in the alert id.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    /// A PDU: its direction and ordinal within the flow and direction.
    Pdu {
        direction: Direction,
        flow_ordinal: u64,
    },
    /// The flow's first packet (its time is the origin's).
    FlowStart,
    /// The flow's end.
    FlowEnd,
}

impl Origin<'_> {
    fn src_name(&self) -> String {
        self.src_asset
            .map_or_else(|| self.src_ip.to_string(), |a| a.name.clone())
    }

    fn dst_name(&self) -> String {
        self.dst_asset
            .map_or_else(|| self.dst_ip.to_string(), |a| a.name.clone())
    }
}

/// The kind-specific part of an alert.
struct Finding {
    kind: AlertKind,
    /// The target address or node (repeats key; also makes ids unique among alerts of
    /// one kind for one PDU, e.g. two setpoints).
    target: String,
    evidence: Map<String, Value>,
    message: String,
}

/// The rule engine. See the module docs.
#[derive(Debug)]
pub struct Engine {
    policy: Arc<Policy>,
    rules: RuleSet,
    sensor: Arc<str>,
    repeat_interval_nanos: i64,
    /// Setpoint indices by the asset holding them.
    setpoints_by_asset: HashMap<String, Vec<usize>>,
    flows: FlowTable<FlowState>,
    seen_conduits: BoundedSet<(String, String, String)>,
    seen_addresses: BoundedSet<IpAddr>,
    /// Unlisted credentials: the first source each was seen from.
    credential_first_source: HashMap<String, String>,
    credential_alerted: BoundedSet<(String, String)>,
    repeats: HashMap<RepeatKey, RepeatEntry>,
    /// `[dnp3] program_files`, compiled.
    program_files: Vec<glob::Pattern>,
    /// Emitted alerts per kind (by `AlertKind::index`).
    counts: [u64; AlertKind::ALL.len()],
    /// Some window has a ticket (see [`Engine::ticket_of`]).
    any_ticket: bool,
}

impl Engine {
    pub fn new(policy: Arc<Policy>) -> Engine {
        let mut setpoints_by_asset: HashMap<String, Vec<usize>> = HashMap::default();
        for (i, sp) in policy.setpoints.iter().enumerate() {
            setpoints_by_asset
                .entry(sp.asset.clone())
                .or_default()
                .push(i);
        }
        Engine {
            rules: RuleSet::with_overrides(&policy),
            sensor: policy.sensor.name.as_str().into(),
            repeat_interval_nanos: i64::try_from(policy.repeat_interval_secs)
                .unwrap_or(i64::MAX)
                .saturating_mul(NANOS_PER_SEC),
            setpoints_by_asset,
            flows: FlowTable::new(MAX_FLOWS),
            seen_conduits: BoundedSet::new(MAX_SEEN),
            seen_addresses: BoundedSet::new(MAX_SEEN),
            credential_first_source: HashMap::default(),
            credential_alerted: BoundedSet::new(MAX_SEEN),
            repeats: HashMap::default(),
            // Validated when the policy was read.
            program_files: policy
                .dnp3
                .program_files
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
            counts: [0; AlertKind::ALL.len()],
            any_ticket: policy.windows.iter().any(|w| w.ticket.is_some()),
            policy,
        }
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Puts `policy` in force from the next event on (a reload): the rules, zones,
    /// windows and setpoints change; what was seen, the repeat counters and the
    /// per-flow state (download sessions) stay.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        let fresh = Engine::new(Arc::clone(&policy));
        self.rules = fresh.rules;
        self.sensor = fresh.sensor;
        self.repeat_interval_nanos = fresh.repeat_interval_nanos;
        self.setpoints_by_asset = fresh.setpoints_by_asset;
        self.program_files = fresh.program_files;
        self.policy = policy;
    }

    /// The PDU's operation under this policy: a DNP3 file written to a path of
    /// `[dnp3] program_files` is a program download, not just a file transfer.
    fn operation_of(&self, pdu: &Pdu) -> Operation {
        let op = pdu.operation;
        if let Native::Opcua(o) = &pdu.native {
            // A method call means what `[[opcua_methods]]` says it means.
            let called = o.nodes.iter().flatten().filter_map(|n| n.method.as_deref());
            return called
                .filter_map(|m| self.policy.opcua_method(m))
                .next()
                .unwrap_or(op);
        }
        if op != Operation::FileTransfer || self.program_files.is_empty() {
            return op;
        }
        let Native::Dnp3(d) = &pdu.native else {
            return op;
        };
        // g70 open modes: 2 write, 3 append; a WRITE (function 2) of g70 writes too.
        const WRITE: u8 = 2;
        let writes = matches!(d.file_mode, Some(2 | 3)) || d.function_code == WRITE;
        let matches = d
            .file_name
            .as_deref()
            .is_some_and(|f| self.program_files.iter().any(|p| p.matches(f)));
        if writes && matches {
            Operation::ProgramDownload
        } else {
            op
        }
    }

    /// What was seen, oldest first, for the state directory.
    pub fn seen_state(&self) -> SeenState {
        let mut first: Vec<(String, String)> = self
            .credential_first_source
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        first.sort();
        SeenState {
            conduits: self.seen_conduits.iter().cloned().collect(),
            assets: self.seen_addresses.iter().copied().collect(),
            credentials: self.credential_alerted.iter().cloned().collect(),
            credential_first_source: first,
        }
    }

    /// Adds what an earlier run saw (before the first event).
    pub fn restore_seen(&mut self, state: SeenState) {
        for c in state.conduits {
            self.seen_conduits.insert(c);
        }
        for a in state.assets {
            self.seen_addresses.insert(a);
        }
        for c in state.credentials {
            self.credential_alerted.insert(c);
        }
        for (k, v) in state.credential_first_source {
            self.credential_first_source.entry(k).or_insert(v);
        }
    }

    /// The rules in force (shipped rules with the policy's overrides).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The zones of the flow's initiator and responder, for the events' flow block.
    pub fn zones(&self, flow: &FlowMeta) -> (&str, &str) {
        (
            self.policy.zone_of(flow.src_ip),
            self.policy.zone_of(flow.dst_ip),
        )
    }

    /// The ticket of the maintenance window that covers an event's operation, for the
    /// event's JSON (policy.md: a window's ticket is "copied into alerts and events it
    /// covers"). A window covers what it covers in alerts: an operation that changes
    /// the device, or a program upload, from a source it covers (the requesting side,
    /// for responses too) towards a target it applies to, at the packet's time.
    pub fn ticket_of(&self, ev: &OtEvent) -> Option<&str> {
        if !self.any_ticket {
            return None;
        }
        let pdu = &ev.pdu;
        let op = self.operation_of(pdu);
        if !changes_device(op) && op != Operation::ProgramUpload {
            return None;
        }
        let src_is_initiator = (pdu.direction == Direction::ToServer) != pdu.is_response;
        let (src_ip, dst_ip) = if src_is_initiator {
            (ev.flow.src_ip, ev.flow.dst_ip)
        } else {
            (ev.flow.dst_ip, ev.flow.src_ip)
        };
        self.policy
            .window_check(
                ev.timestamp,
                self.policy.asset_by_ip(dst_ip).map(|a| a.name.as_str()),
                self.policy.zone_of(dst_ip),
                self.policy.asset_by_ip(src_ip).map(|a| a.name.as_str()),
            )
            .open?
            .ticket
            .as_deref()
    }

    /// Emitted alerts per kind, every kind in the spec's order (for `--stats`).
    pub fn alerts_by_kind(&self) -> Vec<(&'static str, u64)> {
        AlertKind::ALL
            .into_iter()
            .map(|k| (k.as_str(), self.counts[k.index()]))
            .collect()
    }

    /// The first packet of an address pair on an IP protocol that makes no flow (ICMP,
    /// ...): `new_asset` for its addresses, as for a flow's first packet.
    pub fn on_packet(&mut self, ts: Timestamp, packet: &Arc<FlowMeta>, out: &mut Vec<Alert>) {
        self.new_assets(ts, packet, out);
    }

    /// The first packet of a flow: `new_asset` for the addresses it involves.
    pub fn on_flow_start(&mut self, ts: Timestamp, flow: &Arc<FlowMeta>, out: &mut Vec<Alert>) {
        let (_, created) = self.flows.entry(flow);
        if created {
            self.new_assets(ts, flow, out);
        }
    }

    /// A flow ended (or the input ended). Decides `new_conduit` for a flow that never
    /// carried a recognised PDU, as `tcp/PORT` or `udp/PORT` of the responder.
    pub fn on_flow_end(
        &mut self,
        ts: Timestamp,
        flow: &Arc<FlowMeta>,
        recognised: bool,
        handshake_completed: bool,
        out: &mut Vec<Alert>,
    ) {
        let state = self.flows.remove(flow);
        if recognised || state.is_some_and(|s| s.conduit_decided) {
            return;
        }
        let protocol = match flow.transport {
            Transport::Tcp => ConduitProtocol::Tcp(flow.dst_port),
            Transport::Udp => ConduitProtocol::Udp(flow.dst_port),
            // Only TCP and UDP make flows (and conduits).
            Transport::Icmp | Transport::Icmpv6 | Transport::Ip(_) => return,
        };
        let policy = Arc::clone(&self.policy);
        let name = conduit_protocol_name(&protocol);
        let origin = Origin {
            ts,
            flow,
            direction: None,
            protocol: Some(name.clone().into()),
            operation: None,
            src_ip: flow.src_ip,
            dst_ip: flow.dst_ip,
            src_asset: policy.asset_by_ip(flow.src_ip),
            dst_asset: policy.asset_by_ip(flow.dst_ip),
            trigger: Trigger::FlowEnd,
        };
        if let Some(f) = self.new_conduit(&policy, flow, protocol, name, handshake_completed) {
            self.emit(&origin, f, out);
        }
    }

    /// Whether [`Engine::on_event`] could alert on this PDU or change its state for the
    /// PDUs after it; decided in the flow workers, before the event exists, from the
    /// PDU and its place in the flow (`first_of_flow`: no PDU of the flow came before;
    /// `no_request_before`: no request of the flow came before). False only for what
    /// `on_event`'s fast path lets through untouched: a response, or a `read` request
    /// after the flow's first request, that is not the flow's first PDU and carries no
    /// anomaly. OPC UA requests are always kept (a policy's `[[opcua_methods]]` gives a
    /// Call its operation). The one difference a left-out PDU can make: when the
    /// per-flow state is full and a flow's state was dropped, the next PDU the engine
    /// sees re-creates it, which is at most a later one.
    pub fn may_act_on(pdu: &Pdu, first_of_flow: bool, no_request_before: bool) -> bool {
        if first_of_flow || !pdu.anomalies.is_empty() {
            return true;
        }
        if pdu.is_response {
            return false;
        }
        no_request_before
            || pdu.operation != Operation::Read
            || matches!(pdu.native, Native::Opcua(_))
    }

    /// Every dissected PDU, in packet order.
    ///
    /// When nothing else reads the events, the flow workers may leave out the PDUs
    /// for which [`Engine::may_act_on`] is false: this gives the same alerts.
    pub fn on_event(&mut self, ev: &OtEvent, out: &mut Vec<Alert>) {
        let flow = &ev.flow;
        let pdu = &ev.pdu;
        let ts = ev.timestamp;
        let is_request = !pdu.is_response;
        let op = self.operation_of(pdu);
        let is_download =
            is_request && matches!(op, Operation::ProgramDownload | Operation::FirmwareUpdate);

        // The flow's state, in one lookup: every transition this PDU makes.
        let (state, created) = self.flows.entry(flow);
        // The flow's first recognised PDU decides its conduit; skipped bytes (garbage)
        // are no protocol.
        let first_pdu = !state.conduit_decided && !pdu.is_skipped_bytes();
        state.conduit_decided |= first_pdu;
        let mut anomalies = pdu.anomalies;
        if pdu.is_response && !flow.handshake_seen && !state.request_seen {
            // Joined mid-stream: see the module docs.
            anomalies.remove(Anomalies::UNMATCHED_RESPONSE);
        }
        if anomalies.contains(Anomalies::RESYNC) {
            // Explained by capture loss: see the module docs.
            anomalies.remove(Anomalies::RESYNC | Anomalies::UNMATCHED_RESPONSE);
        }
        state.request_seen |= is_request;
        let new_session = is_download
            && state.last_download.is_none_or(|last| {
                ts.as_nanos().saturating_sub(last.as_nanos())
                    >= DOWNLOAD_SESSION_GAP_SECS * NANOS_PER_SEC
            });
        if is_download {
            state.last_download = Some(ts);
        }
        if created {
            // No flow note announced this flow: its first PDU stands in for its start.
            self.new_assets(ts, flow, out);
        }

        // The common case (polling) leaves here: nothing below can fire for it.
        let operation_alerts = is_request
            && (changes_device(op) || matches!(op, Operation::ProgramUpload | Operation::Session));
        if !first_pdu && anomalies.is_empty() && !operation_alerts {
            return;
        }

        let policy = Arc::clone(&self.policy);
        // Source = the requesting side: the sender of a request, the receiver of a
        // response. Target = the other end.
        let src_is_initiator = (pdu.direction == Direction::ToServer) != pdu.is_response;
        let (src_ip, dst_ip) = if src_is_initiator {
            (flow.src_ip, flow.dst_ip)
        } else {
            (flow.dst_ip, flow.src_ip)
        };
        let origin = Origin {
            ts,
            flow,
            direction: Some(pdu.direction),
            protocol: Some(ev.protocol().as_str().into()),
            operation: Some(op),
            src_ip,
            dst_ip,
            src_asset: policy.asset_by_ip(src_ip),
            dst_asset: policy.asset_by_ip(dst_ip),
            trigger: Trigger::Pdu {
                direction: pdu.direction,
                flow_ordinal: ev.flow_ordinal,
            },
        };

        // program_download_outside_window
        if new_session {
            if let Some(f) = download_outside_window(&policy, &origin, &pdu.native) {
                self.emit(&origin, f, out);
            }
        }

        // unauthorized_setpoint_write, setpoint_out_of_range
        if is_request && op == Operation::Write {
            if let Some(target) = origin.dst_asset {
                let findings = self.setpoint_findings(&policy, &origin, target, &pdu.native);
                for f in findings {
                    self.emit(&origin, f, out);
                }
            }
        }

        // new_conduit: decided at the flow's first recognised PDU.
        if first_pdu {
            // Checked as the protocol it is (a conduit may list `s7comm_plus` alone),
            // reported as the conduit's dissector (`s7comm` covers it).
            let name = conduit_dissector_name(ev.protocol());
            let protocol = ConduitProtocol::Dissector(ev.protocol().as_str().to_string());
            if let Some(mut f) = self.new_conduit(
                &policy,
                flow,
                protocol,
                name.to_string(),
                flow.handshake_seen,
            ) {
                f.evidence.insert(
                    origin_protocol_key(&pdu.native).into(),
                    native_block(&pdu.native),
                );
                self.emit(&origin, f, out);
            }
        }

        // unauthorized_write
        if is_request && changes_device(op) {
            if let Some(f) = unauthorized_write(&origin, &pdu.native) {
                self.emit(&origin, f, out);
            }
        }

        // credential_unusual_origin
        if is_request && op == Operation::Session {
            if let Some(user) = credential_of(&pdu.native) {
                if let Some(f) =
                    self.credential_unusual_origin(&policy, &origin, user, Some(&pdu.native))
                {
                    self.emit(&origin, f, out);
                }
            }
        }

        // insecure_session
        if is_request && op == Operation::Session {
            if let Some(f) = insecure_session(&origin, &pdu.native) {
                self.emit(&origin, f, out);
            }
        }

        // plc_mode_change, device_restart, program_upload
        if is_request {
            let kind = match op {
                Operation::ModeChange => Some(AlertKind::PlcModeChange),
                Operation::Restart => Some(AlertKind::DeviceRestart),
                Operation::ProgramUpload => Some(AlertKind::ProgramUpload),
                _ => None,
            };
            if let Some(kind) = kind {
                let f = command_finding(kind, &origin, &pdu.native);
                self.emit(&origin, f, out);
            }
        }

        // protocol_anomaly
        if !anomalies.is_empty() {
            // The sender of the malformed PDU is the alert's source.
            let (sender, receiver) = match pdu.direction {
                Direction::ToServer => (flow.src_ip, flow.dst_ip),
                Direction::ToClient => (flow.dst_ip, flow.src_ip),
            };
            let anomaly_origin = Origin {
                src_ip: sender,
                dst_ip: receiver,
                src_asset: policy.asset_by_ip(sender),
                dst_asset: policy.asset_by_ip(receiver),
                ..origin
            };
            let f = anomaly_finding(&anomaly_origin, pdu.is_response, anomalies, &pdu.native);
            self.emit(&anomaly_origin, f, out);
        }
    }

    /// new_asset for both ends of a new flow.
    fn new_assets(&mut self, ts: Timestamp, flow: &Arc<FlowMeta>, out: &mut Vec<Alert>) {
        let policy = Arc::clone(&self.policy);
        for (ip, peer) in [(flow.src_ip, flow.dst_ip), (flow.dst_ip, flow.src_ip)] {
            if !policy.in_declared_zone(ip)
                || policy.asset_by_ip(ip).is_some()
                || !is_device_address(&policy, ip)
                || !self.seen_addresses.insert(ip)
            {
                continue;
            }
            let zone = policy.zone_of(ip);
            let peer_asset = policy.asset_by_ip(peer);
            let peer_name = peer_asset.map_or_else(|| peer.to_string(), |a| a.name.clone());
            let origin = Origin {
                ts,
                flow,
                direction: None,
                protocol: None,
                operation: None,
                src_ip: flow.src_ip,
                dst_ip: flow.dst_ip,
                src_asset: policy.asset_by_ip(flow.src_ip),
                dst_asset: policy.asset_by_ip(flow.dst_ip),
                trigger: Trigger::FlowStart,
            };
            let mut evidence = Map::new();
            evidence.insert("address".into(), json!(ip.to_string()));
            evidence.insert("zone".into(), json!(zone));
            evidence.insert("peer".into(), json!(peer_name));
            let f = Finding {
                kind: AlertKind::NewAsset,
                target: ip.to_string(),
                evidence,
                message: format!(
                    "{ip} appeared in zone {zone} (talking to {peer_name}) but is not a declared asset"
                ),
            };
            self.emit(&origin, f, out);
        }
    }

    /// new_conduit for a flow whose protocol is now known (`None`: nothing to alert).
    fn new_conduit(
        &mut self,
        policy: &Policy,
        flow: &FlowMeta,
        protocol: ConduitProtocol,
        name: String,
        handshake_completed: bool,
    ) -> Option<Finding> {
        let from = policy.zone_of(flow.src_ip);
        let to = policy.zone_of(flow.dst_ip);
        if from == to || policy.conduit_allows(from, to, &protocol) {
            return None;
        }
        if !self
            .seen_conduits
            .insert((from.to_string(), to.to_string(), name.clone()))
        {
            return None;
        }
        let mut evidence = Map::new();
        evidence.insert("src_zone".into(), json!(from));
        evidence.insert("dst_zone".into(), json!(to));
        evidence.insert("conduit_protocol".into(), json!(name));
        evidence.insert("handshake_completed".into(), json!(handshake_completed));
        let handshake = match (flow.transport, handshake_completed) {
            (Transport::Tcp, true) => " (TCP handshake completed)",
            (Transport::Tcp, false) => " (TCP handshake not completed)",
            _ => "",
        };
        let src = policy
            .asset_by_ip(flow.src_ip)
            .map_or_else(|| flow.src_ip.to_string(), |a| a.name.clone());
        let dst = policy
            .asset_by_ip(flow.dst_ip)
            .map_or_else(|| flow.dst_ip.to_string(), |a| a.name.clone());
        Some(Finding {
            kind: AlertKind::NewConduit,
            target: format!("{from}>{to}:{name}"),
            evidence,
            message: format!(
                "new conduit {from} -> {to} over {name}: {src} connected to {dst}{handshake}; no approved conduit allows it"
            ),
        })
    }

    /// unauthorized_setpoint_write and setpoint_out_of_range for one write request,
    /// setpoint by setpoint.
    fn setpoint_findings(
        &self,
        policy: &Policy,
        origin: &Origin<'_>,
        target: &Asset,
        native: &Native,
    ) -> Vec<Finding> {
        let mut findings = Vec::new();
        let Some(indices) = self.setpoints_by_asset.get(&target.name) else {
            return findings;
        };
        let writes = written(native);
        if writes.is_empty() {
            return findings;
        }
        let source = origin.src_asset.map(|a| a.name.as_str());
        // Repeats of a setpoint's alert are told apart by the address written.
        let address = command_detail(native).1;
        for sp in indices.iter().filter_map(|&i| policy.setpoints.get(i)) {
            let Some(touch) = touch_all(sp, &writes) else {
                continue;
            };
            let authorized = source.is_some_and(|s| sp.writers.iter().any(|w| w == s));
            let mut evidence = Map::new();
            evidence.insert("setpoint".into(), json!(sp.name));
            evidence.insert("addresses".into(), json!(touch.describe));
            evidence.insert("writers".into(), json!(sp.writers));
            evidence.insert(origin_protocol_key(native).into(), native_block(native));
            if !authorized {
                let who = origin.src_name();
                let writers = if sp.writers.is_empty() {
                    "nobody may write it".to_string()
                } else {
                    format!("allowed writers: {}", sp.writers.join(", "))
                };
                findings.push(Finding {
                    kind: AlertKind::UnauthorizedSetpointWrite,
                    target: format!("{} {address}", sp.name),
                    evidence,
                    message: format!(
                        "{who} wrote setpoint \"{}\" on {} ({}); {who} is not one of its writers ({writers})",
                        sp.name, target.name, touch.describe
                    ),
                });
                continue;
            }
            if sp.min.is_none() && sp.max.is_none() {
                continue;
            }
            let bad: Vec<&(u64, f64)> = touch
                .values
                .iter()
                .filter(|(_, v)| out_of_range(*v, sp.min, sp.max))
                .collect();
            if bad.is_empty() {
                continue;
            }
            evidence.insert("type".into(), json!(value_type_name(sp.value_type)));
            evidence.insert("min".into(), json!(sp.min));
            evidence.insert("max".into(), json!(sp.max));
            evidence.insert(
                "values".into(),
                Value::Array(
                    touch
                        .values
                        .iter()
                        .map(|(a, v)| json!({"address": a, "value": number(*v)}))
                        .collect(),
                ),
            );
            evidence.insert(
                "out_of_range".into(),
                Value::Array(
                    bad.iter()
                        .map(|(a, v)| json!({"address": a, "value": number(*v)}))
                        .collect(),
                ),
            );
            let shown: Vec<String> = bad.iter().map(|(_, v)| format_value(*v)).collect();
            findings.push(Finding {
                kind: AlertKind::SetpointOutOfRange,
                target: format!("{} {address}", sp.name),
                evidence,
                message: format!(
                    "{} wrote {} to setpoint \"{}\" on {}; allowed range is [{}, {}]",
                    origin.src_name(),
                    shown.join(", "),
                    sp.name,
                    target.name,
                    sp.min.map_or_else(|| "-inf".to_string(), format_value),
                    sp.max.map_or_else(|| "+inf".to_string(), format_value),
                ),
            });
        }
        // policy.md: every matching kind fires in the order of its list, whatever the
        // order of the setpoints (a stable sort keeps theirs within a kind).
        findings.sort_by_key(|f| f.kind != AlertKind::UnauthorizedSetpointWrite);
        findings
    }

    /// credential_unusual_origin for a credential presented by `origin`'s source.
    fn credential_unusual_origin(
        &mut self,
        policy: &Policy,
        origin: &Origin<'_>,
        user: &str,
        native: Option<&Native>,
    ) -> Option<Finding> {
        let source = origin.src_name();
        let expected: Vec<String> = match policy.credentials.iter().find(|c| c.user == user) {
            Some(c) => {
                let ok = origin
                    .src_asset
                    .is_some_and(|a| c.sources.contains(&a.name));
                if ok {
                    return None;
                }
                c.sources.clone()
            }
            None => {
                if self.credential_first_source.len() >= MAX_SEEN
                    && !self.credential_first_source.contains_key(user)
                {
                    tracing::debug!("credential table full: unlisted credential not tracked");
                    return None;
                }
                let first = self
                    .credential_first_source
                    .entry(user.to_string())
                    .or_insert_with(|| source.clone());
                if *first == source {
                    return None;
                }
                vec![first.clone()]
            }
        };
        if !self
            .credential_alerted
            .insert((user.to_string(), source.clone()))
        {
            return None;
        }
        // The session PDU's native block, as in every PDU alert.
        let mut evidence = native.map(evidence_with_native).unwrap_or_default();
        evidence.insert("credential".into(), json!(user));
        evidence.insert("expected_sources".into(), json!(expected));
        Some(Finding {
            kind: AlertKind::CredentialUnusualOrigin,
            target: user.to_string(),
            evidence,
            message: format!(
                "credential {user} was used from {source} to {}; expected from {}",
                origin.dst_name(),
                expected.join(", ")
            ),
        })
    }

    /// Applies the rule (enabled, except_sources), folds repeats, derives the id, and
    /// pushes the alert.
    fn emit(&mut self, origin: &Origin<'_>, f: Finding, out: &mut Vec<Alert>) {
        let rule = self.rules.rule(f.kind);
        if !rule.enabled || rule.excepts(origin.src_asset.map(|a| a.name.as_str())) {
            return;
        }
        let (rule_id, title, severity, attack) = (
            Arc::clone(&rule.id),
            Arc::clone(&rule.title),
            rule.severity,
            Arc::clone(&rule.attack),
        );
        let key: RepeatKey = (
            f.kind,
            origin.src_name(),
            origin.dst_name(),
            f.target.clone(),
        );
        let ts = origin.ts;
        let repeats = if self.repeat_interval_nanos > 0 {
            match self.repeats.get_mut(&key) {
                Some(e)
                    if ts.as_nanos().saturating_sub(e.last_emitted.as_nanos())
                        < self.repeat_interval_nanos =>
                {
                    e.folded += 1;
                    return;
                }
                Some(e) => {
                    let folded = e.folded;
                    e.last_emitted = ts;
                    e.folded = 0;
                    folded
                }
                None => {
                    self.bound_repeats(ts);
                    self.repeats.insert(
                        key,
                        RepeatEntry {
                            last_emitted: ts,
                            folded: 0,
                        },
                    );
                    0
                }
            }
        } else {
            0
        };

        let kind = f.kind.as_str();
        let mut h = sha1_smol::Sha1::new();
        let mut part = |p: &[u8]| {
            h.update(&(p.len() as u64).to_be_bytes());
            h.update(p);
        };
        part(self.sensor.as_bytes());
        part(kind.as_bytes());
        part(rule_id.as_bytes());
        part(origin.flow.community_id.as_bytes());
        match origin.trigger {
            Trigger::Pdu {
                direction,
                flow_ordinal,
            } => {
                part(direction.as_str().as_bytes());
                part(&flow_ordinal.to_be_bytes());
            }
            Trigger::FlowStart => part(b"flow_start"),
            Trigger::FlowEnd => part(b"flow_end"),
        }
        part(&ts.as_nanos().to_be_bytes());
        part(f.target.as_bytes());
        let mut id = h.digest().to_string();
        id.truncate(32);

        let mut evidence = f.evidence;
        if let Some(w) = self.covering_window(origin, f.kind) {
            evidence.insert("window".into(), json!(w.name));
            evidence.insert("ticket".into(), json!(w.ticket));
        }
        let (src_zone, dst_zone) = (
            self.policy.zone_of(origin.flow.src_ip),
            self.policy.zone_of(origin.flow.dst_ip),
        );
        self.counts[f.kind.index()] += 1;
        out.push(Alert {
            timestamp: ts,
            sensor: Arc::clone(&self.sensor),
            id,
            kind: f.kind,
            rule: rule_id,
            title,
            severity,
            attack,
            repeats,
            flow: Arc::clone(origin.flow),
            src_zone: src_zone.into(),
            dst_zone: dst_zone.into(),
            direction: origin.direction,
            protocol: origin.protocol.as_deref().map(str::to_string),
            operation: origin.operation,
            src_ip: origin.src_ip,
            dst_ip: origin.dst_ip,
            src_asset: origin.src_asset.map(|a| a.name.clone()),
            dst_asset: origin.dst_asset.map(|a| a.name.clone()),
            evidence: Value::Object(evidence),
            message: f.message,
        });
    }

    /// The maintenance window open for an operation alert's source and target, if any:
    /// its name and ticket go into the alert, so that an analyst sees which change an
    /// operation belongs to (a window covers operations; it silences only downloads).
    fn covering_window(
        &self,
        origin: &Origin<'_>,
        kind: AlertKind,
    ) -> Option<&crate::model::Window> {
        if matches!(
            kind,
            AlertKind::NewConduit | AlertKind::NewAsset | AlertKind::ProtocolAnomaly
        ) {
            return None;
        }
        let op = origin.operation?;
        if !changes_device(op) && op != Operation::ProgramUpload {
            return None;
        }
        self.policy
            .window_check(
                origin.ts,
                origin.dst_asset.map(|a| a.name.as_str()),
                self.policy.zone_of(origin.dst_ip),
                origin.src_asset.map(|a| a.name.as_str()),
            )
            .open
    }

    /// Keeps the repeat table under its bound (see the module docs).
    fn bound_repeats(&mut self, now: Timestamp) {
        if self.repeats.len() < MAX_REPEAT_KEYS {
            return;
        }
        let interval = self.repeat_interval_nanos;
        self.repeats.retain(|_, e| {
            e.folded > 0 || now.as_nanos().saturating_sub(e.last_emitted.as_nanos()) < interval
        });
        if self.repeats.len() >= MAX_REPEAT_KEYS {
            let mut times: Vec<i64> = self
                .repeats
                .values()
                .map(|e| e.last_emitted.as_nanos())
                .collect();
            let mid = times.len() / 2;
            let (_, median, _) = times.select_nth_unstable(mid);
            let median = *median;
            self.repeats
                .retain(|_, e| e.last_emitted.as_nanos() > median);
            tracing::debug!(
                kept = self.repeats.len(),
                "repeat table full: oldest half dropped"
            );
        }
    }
}

/// The name a conduit knows a dissector by: `s7comm_plus` is covered by `s7comm`.
fn conduit_dissector_name(p: Protocol) -> &'static str {
    match p {
        Protocol::S7commPlus => Protocol::S7comm.as_str(),
        p => p.as_str(),
    }
}

/// Whether an address can be a device (not multicast, unspecified or a zone prefix's
/// broadcast address).
fn is_device_address(policy: &Policy, ip: IpAddr) -> bool {
    if ip.is_multicast() || ip.is_unspecified() {
        return false;
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return false;
        }
        let broadcast = policy.zones.iter().flat_map(|z| &z.prefixes).any(
            |p| matches!(p, ipnet::IpNet::V4(n) if n.prefix_len() <= 30 && n.broadcast() == v4),
        );
        if broadcast {
            return false;
        }
    }
    true
}

/// Operations that change the device (unauthorized_write).
fn changes_device(op: Operation) -> bool {
    matches!(
        op,
        Operation::Write
            | Operation::ProgramDownload
            | Operation::FirmwareUpdate
            | Operation::FileTransfer
            | Operation::ModeChange
            | Operation::Restart
    )
}

/// The credential a session PDU presents: an S7 password fingerprint
/// (`s7:FINGERPRINT`); OPC UA user names will come the same way.
fn credential_of(native: &Native) -> Option<&str> {
    match native {
        Native::Modbus(_) | Native::S7commPlus(_) | Native::Dnp3(_) => None,
        Native::S7comm(s) => s.credential.as_deref(),
        Native::Opcua(o) => o.user.as_deref(),
    }
}

/// insecure_session: an OPC UA session activated anonymously, or with a user name over
/// a channel without security (policy None), where the name can be read off the wire.
fn insecure_session(origin: &Origin<'_>, native: &Native) -> Option<Finding> {
    let Native::Opcua(o) = native else {
        return None;
    };
    let (src, dst) = (origin.src_name(), origin.dst_name());
    let why = match (o.token_type, o.security_mode) {
        (Some("anonymous"), _) => format!("{src} opened an anonymous OPC UA session on {dst}"),
        (Some("username"), "none") => format!(
            "{src} logged in to {dst} as {} over a channel without security: the user name can be read on the wire",
            o.user.as_deref().unwrap_or("?")
        ),
        _ => return None,
    };
    let mut evidence = evidence_with_native(native);
    evidence.insert("token_type".into(), json!(o.token_type));
    evidence.insert("security_mode".into(), json!(o.security_mode));
    Some(Finding {
        kind: AlertKind::InsecureSession,
        target: format!("{:?} {:?}", o.token_type, o.user),
        evidence,
        message: why,
    })
}

/// The key of the native block in evidence (`modbus`, ...).
fn origin_protocol_key(native: &Native) -> &'static str {
    native.protocol().as_str()
}

/// The triggering PDU's native block as JSON.
fn native_block(native: &Native) -> Value {
    match native {
        Native::Modbus(m) => serde_json::to_value(m).unwrap_or(Value::Null),
        Native::S7comm(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Native::S7commPlus(s) => serde_json::to_value(s).unwrap_or(Value::Null),
        Native::Dnp3(d) => serde_json::to_value(d).unwrap_or(Value::Null),
        Native::Opcua(o) => serde_json::to_value(o).unwrap_or(Value::Null),
    }
}

fn evidence_with_native(native: &Native) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(origin_protocol_key(native).into(), native_block(native));
    m
}

/// The Modbus data table a function code addresses (Modbus Application Protocol
/// V1.1b3, 4.3 and 6), for functions that carry an address.
fn modbus_table(function_code: u8) -> Option<&'static str> {
    match function_code {
        1 | 5 | 15 => Some("coil"),
        2 => Some("discrete input"),
        3 | 6 | 16 | 22 | 23 => Some("holding register"),
        4 => Some("input register"),
        _ => None,
    }
}

/// A short description of the PDU's command for messages, and its target address or
/// node for repeats.
fn command_detail(native: &Native) -> (String, String) {
    match native {
        Native::Modbus(m) => {
            let mut d = format!("modbus function {} {}", m.function_code, m.function);
            if let Some(sf) = m.more().sub_function {
                d.push_str(&format!(" sub-function {sf}"));
            }
            if let Some(u) = &m.more().umas {
                d.push_str(&format!(" UMAS 0x{:02x} {}", u.function_code, u.function));
            }
            if let Some(a) = m.address {
                d.push_str(&format!(" at address {a}"));
            }
            // Repeats are told apart by the address written or read, in its table
            // (FC 6 and FC 16 on register 7 are one target, coil 7 another); a
            // command without an address by what it commands.
            let target = match (modbus_table(m.function_code), m.address) {
                (Some(table), Some(a)) => format!("unit {} {table} {a}", m.unit_id),
                _ => format!(
                    "unit {} fc {} sf {:?} umas {:?}",
                    m.unit_id,
                    m.function_code,
                    m.more().sub_function,
                    m.more().umas.as_ref().map(|u| u.function_code),
                ),
            };
            (d, target)
        }
        Native::S7comm(s) => {
            let mut d = match (s.function_code, s.function_group, s.subfunction) {
                (_, Some(g), Some(sf)) => {
                    format!("s7comm userdata group {g} subfunction {sf} {}", s.function)
                }
                (Some(f), _, _) => format!("s7comm function 0x{f:02x} {}", s.function),
                _ => format!("s7comm {}", s.function),
            };
            if let Some(b) = &s.block {
                d.push_str(&format!(" block {} {}", b.block_type, b.number));
            }
            if let Some(p) = &s.pi_service {
                d.push_str(&format!(" service {p}"));
            }
            let items: Vec<String> = s
                .items
                .iter()
                .flatten()
                .map(|i| format!("{} {} {}.{}", i.area_name, i.db, i.address, i.bit))
                .collect();
            if !items.is_empty() {
                d.push_str(&format!(" at {}", items.join(", ")));
            }
            let target = format!(
                "fn {:?} group {:?} sf {:?} block {:?} pi {:?} items {:?}",
                s.function_code,
                s.function_group,
                s.subfunction,
                s.block.as_ref().map(|b| (&b.block_type, &b.number)),
                s.pi_service,
                items
            );
            (d, target)
        }
        Native::S7commPlus(s) => {
            let d = format!(
                "s7comm-plus opcode 0x{:02x} function {:?} {}",
                s.opcode, s.function_code, s.function
            );
            let target = format!("op {} fn {:?}", s.opcode, s.function_code);
            (d, target)
        }
        Native::Dnp3(n) => {
            let mut d = format!("dnp3 function {} {}", n.function_code, n.function);
            let points: Vec<String> = n
                .points
                .iter()
                .flatten()
                .map(|p| format!("g{}v{} index {}", p.group, p.variation, p.index))
                .collect();
            if !points.is_empty() {
                d.push_str(&format!(" on {}", points.join(", ")));
            }
            if let Some(f) = &n.file_name {
                d.push_str(&format!(" file {f}"));
            }
            let target = format!(
                "dst {} fn {} points {:?} file {:?}",
                n.link_dst, n.function_code, points, n.file_name
            );
            (d, target)
        }
        Native::Opcua(o) => {
            let mut d = format!("opcua {}", o.service.unwrap_or(o.message_type));
            let nodes: Vec<String> = o
                .nodes
                .iter()
                .flatten()
                .map(|n| match &n.method {
                    Some(m) => format!("{} method {m}", n.node_id),
                    None => n.node_id.clone(),
                })
                .collect();
            if !nodes.is_empty() {
                d.push_str(&format!(" on {}", nodes.join(", ")));
            }
            let target = format!("svc {:?} nodes {:?}", o.service_id, nodes);
            (d, target)
        }
    }
}

fn download_outside_window(
    policy: &Policy,
    origin: &Origin<'_>,
    native: &Native,
) -> Option<Finding> {
    let target_zone = policy.zone_of(origin.dst_ip);
    let check = policy.window_check(
        origin.ts,
        origin.dst_asset.map(|a| a.name.as_str()),
        target_zone,
        origin.src_asset.map(|a| a.name.as_str()),
    );
    if check.open.is_some() {
        return None;
    }
    let considered: Vec<String> = check.considered.iter().map(|s| s.to_string()).collect();
    let (src, dst) = (origin.src_name(), origin.dst_name());
    let what = if origin.operation == Some(Operation::FirmwareUpdate) {
        format!("{src} started a firmware update of {dst}")
    } else {
        format!("{src} downloaded a program to {dst}")
    };
    let why = if considered.is_empty() {
        format!("no maintenance window applies to {dst}")
    } else {
        format!(
            "no maintenance window open (considered: {})",
            considered.join(", ")
        )
    };
    let mut evidence = evidence_with_native(native);
    evidence.insert("windows_considered".into(), json!(considered));
    Some(Finding {
        kind: AlertKind::ProgramDownloadOutsideWindow,
        target: "session".into(),
        evidence,
        message: format!("{what}; {why}"),
    })
}

fn unauthorized_write(origin: &Origin<'_>, native: &Native) -> Option<Finding> {
    let target = origin.dst_asset?;
    if !matches!(target.role, Role::Plc | Role::Rtu) {
        return None;
    }
    let source_role = origin.src_asset.map(|a| a.role);
    if matches!(source_role, Some(Role::Engineering | Role::Hmi)) {
        return None;
    }
    let (detail, target_key) = command_detail(native);
    let role = source_role.map_or("undeclared", role_name);
    let op = origin.operation.map_or("other", Operation::as_str);
    let mut evidence = evidence_with_native(native);
    evidence.insert("source_role".into(), json!(source_role.map(role_name)));
    evidence.insert("target_role".into(), json!(role_name(target.role)));
    Some(Finding {
        kind: AlertKind::UnauthorizedWrite,
        target: target_key,
        evidence,
        message: format!(
            "{} ({role}) sent a {op} ({detail}) to {} {}; only engineering stations and HMIs may change it",
            origin.src_name(),
            role_name(target.role),
            target.name
        ),
    })
}

fn command_finding(kind: AlertKind, origin: &Origin<'_>, native: &Native) -> Finding {
    let (detail, target) = command_detail(native);
    let (src, dst) = (origin.src_name(), origin.dst_name());
    let message = match kind {
        AlertKind::PlcModeChange => {
            format!("{src} changed the operating mode of {dst} ({detail})")
        }
        AlertKind::DeviceRestart => format!("{src} sent a restart command to {dst} ({detail})"),
        _ => format!("{src} uploaded the program of {dst} ({detail})"),
    };
    Finding {
        kind,
        target,
        evidence: evidence_with_native(native),
        message,
    }
}

fn anomaly_finding(
    origin: &Origin<'_>,
    is_response: bool,
    anomalies: Anomalies,
    native: &Native,
) -> Finding {
    let names: Vec<&str> = anomalies.names().collect();
    let (detail, target) = command_detail(native);
    let mut evidence = evidence_with_native(native);
    evidence.insert("anomalies".into(), json!(names));
    let proto = native.protocol().as_str();
    let what = if is_response { "response" } else { "request" };
    Finding {
        kind: AlertKind::ProtocolAnomaly,
        target: format!("{} {target}", names.join(",")),
        evidence,
        message: format!(
            "{} sent an out-of-spec {proto} {what} to {} ({detail}): {}",
            origin.src_name(),
            origin.dst_name(),
            names.join(", ")
        ),
    }
}

// ---- setpoints ----------------------------------------------------------------------

/// An address space a setpoint can live in. One variant per kind of protocol table;
/// S7 (area/DB bytes), DNP3 (analog/binary outputs) and OPC UA (nodes) join here once
/// their dissectors report writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Space {
    ModbusHoldingRegisters,
    ModbusCoils,
    /// An S7 memory area, byte-addressed; the DB number for data blocks (else 0).
    S7(S7Area, u16),
    /// DNP3 point indices: analog outputs (g41), binary outputs (g12).
    Dnp3AnalogOutputs,
    Dnp3BinaryOutputs,
    /// One OPC UA node (a hash of its canonical NodeId); its only address is 0.
    OpcuaNode(u64),
}

/// What a write carries, per address of its space.
#[derive(Debug, Clone)]
enum Values<'a> {
    /// One 16-bit word (Modbus register) or bit (coil, 0/1) per address.
    Words(&'a [u16]),
    /// One byte per address (S7), values big-endian.
    Bytes(&'a [u8]),
    /// The value of the one address written (a DNP3 analog output).
    Number(f64),
    /// Every number of the value written to address 0 (an OPC UA scalar or array).
    Numbers(Vec<f64>),
}

/// What a write request writes: where, and the values if the PDU carries them.
#[derive(Debug)]
struct Written<'a> {
    space: Space,
    /// Modbus unit id (the device behind a gateway).
    unit: Option<u8>,
    addresses: RangeInclusive<u64>,
    /// From the first address on. `None`: the PDU changes the addresses without
    /// carrying their new values (Modbus FC 22 mask write, an S7 bit write).
    values: Option<Values<'a>>,
}

/// The addresses a write request writes that a setpoint can name (one per S7 item).
fn written(native: &Native) -> Vec<Written<'_>> {
    match native {
        Native::Modbus(m) => modbus_written(m).into_iter().collect(),
        Native::S7comm(s) => s7_written(s),
        Native::Dnp3(d) => dnp3_written(d),
        Native::Opcua(o) => opcua_written(o),
        Native::S7commPlus(_) => Vec::new(),
    }
}

/// The Value attributes a WriteRequest writes (other attributes change a node's
/// description, not the process value).
fn opcua_written(o: &OpcuaInfo) -> Vec<Written<'static>> {
    const WRITE_REQUEST: u32 = 673;
    const VALUE_ATTRIBUTE: u32 = 13;
    if o.service_id != Some(WRITE_REQUEST) {
        return Vec::new();
    }
    o.nodes
        .iter()
        .flatten()
        .filter(|n| n.attribute_id.is_none_or(|a| a == VALUE_ATTRIBUTE))
        .map(|n| {
            let values = match &n.value {
                Some(OpcuaValue::Number(v)) => Some(Values::Numbers(vec![*v])),
                Some(OpcuaValue::Bool(b)) => Some(Values::Numbers(vec![f64::from(u8::from(*b))])),
                Some(OpcuaValue::Numbers(v)) => Some(Values::Numbers(v.clone())),
                _ => None,
            };
            Written {
                space: Space::OpcuaNode(node_key(&n.node_id)),
                unit: None,
                addresses: 0..=0,
                values,
            }
        })
        .collect()
}

/// A stable key of a NodeId (canonical form, hashed with fixed keys).
fn node_key(node_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    crate::policy::canonical_node_id(node_id).hash(&mut h);
    h.finish()
}

/// The points an OPERATE / DIRECT OPERATE (with or without ack) sets: g41 analog
/// outputs with their values, g12 CROBs (whose effect is not a value). SELECT alone
/// does not write.
fn dnp3_written(d: &Dnp3Info) -> Vec<Written<'_>> {
    const OPERATE: u8 = 4;
    const DIRECT_OPERATE: u8 = 5;
    const DIRECT_OPERATE_NR: u8 = 6;
    if !matches!(
        d.function_code,
        OPERATE | DIRECT_OPERATE | DIRECT_OPERATE_NR
    ) {
        return Vec::new();
    }
    d.points
        .iter()
        .flatten()
        .filter_map(|p| {
            let index = u64::from(p.index);
            let (space, values) = match p.group {
                41 => (Space::Dnp3AnalogOutputs, p.value.map(Values::Number)),
                12 => (Space::Dnp3BinaryOutputs, None),
                _ => return None,
            };
            Some(Written {
                space,
                unit: None,
                addresses: index..=index,
                values,
            })
        })
        .collect()
}

/// The items of an S7 write var job (function 0x05) in the areas a setpoint can name.
fn s7_written(s: &S7commInfo) -> Vec<Written<'_>> {
    const WRITE_VAR: u8 = 0x05;
    if s.rosctr != 1 || s.function_code != Some(WRITE_VAR) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for item in s.items.iter().flatten() {
        let area = match item.area {
            0x84 => S7Area::Db,
            0x83 => S7Area::M,
            0x81 => S7Area::I,
            0x82 => S7Area::Q,
            _ => continue,
        };
        let db = if area == S7Area::Db { item.db } else { 0 };
        let start = u64::from(item.address);
        // Transport sizes (any-pointer): 1 BIT, 2 BYTE, 3 CHAR, 4 WORD, 5 INT,
        // 6 DWORD, 7 DINT, 8 REAL; others are counted in bytes.
        let (bytes, values) = match item.transport_size {
            1 => (1, None),
            size => {
                let element = match size {
                    4 | 5 => 2,
                    6..=8 => 4,
                    _ => 1,
                };
                let declared = u64::from(item.length) * element;
                match item.data.as_deref() {
                    Some(d) if !d.is_empty() => (d.len() as u64, Some(Values::Bytes(d))),
                    _ => (declared, None),
                }
            }
        };
        if bytes == 0 {
            continue;
        }
        out.push(Written {
            space: Space::S7(area, db),
            unit: None,
            addresses: start..=start + bytes - 1,
            values,
        });
    }
    out
}

fn modbus_written(m: &ModbusInfo) -> Option<Written<'_>> {
    if m.exception_code.is_some() {
        return None;
    }
    let address = u64::from(m.address?);
    let values = m.values.as_deref();
    let carried = values.map_or(0, |v| v.len() as u64);
    let (space, count, values) = match m.function_code {
        // write single register / write single coil
        6 => (Space::ModbusHoldingRegisters, 1, values),
        5 => (Space::ModbusCoils, 1, values),
        // write multiple registers / coils; read/write multiple registers (write part)
        16 | 23 => (
            Space::ModbusHoldingRegisters,
            m.quantity.map_or(carried, u64::from),
            values,
        ),
        15 => (
            Space::ModbusCoils,
            m.quantity.map_or(carried, u64::from),
            values,
        ),
        // mask write register: the new value depends on the register's current one
        22 => (Space::ModbusHoldingRegisters, 1, None),
        _ => return None,
    };
    if count == 0 {
        return None;
    }
    Some(Written {
        space,
        unit: Some(m.unit_id),
        addresses: address..=address + count - 1,
        values: values.map(Values::Words),
    })
}

/// The address ranges a setpoint occupies, per space, with the unit it requires.
fn setpoint_ranges(sp: &Setpoint) -> Vec<(Space, Option<u8>, RangeInclusive<u64>)> {
    let mut v = Vec::new();
    if let SetpointAddress::Modbus {
        unit,
        holding_registers,
        coils,
    } = &sp.address
    {
        let widen = |r: &RangeInclusive<u16>| u64::from(*r.start())..=u64::from(*r.end());
        if let Some(r) = holding_registers {
            v.push((Space::ModbusHoldingRegisters, *unit, widen(r)));
        }
        if let Some(r) = coils {
            v.push((Space::ModbusCoils, *unit, widen(r)));
        }
    }
    if let SetpointAddress::Dnp3 {
        analog_outputs,
        binary_outputs,
    } = &sp.address
    {
        let widen = |r: &RangeInclusive<u32>| u64::from(*r.start())..=u64::from(*r.end());
        if let Some(r) = analog_outputs {
            v.push((Space::Dnp3AnalogOutputs, None, widen(r)));
        }
        if let Some(r) = binary_outputs {
            v.push((Space::Dnp3BinaryOutputs, None, widen(r)));
        }
    }
    if let SetpointAddress::Opcua { nodes } = &sp.address {
        for n in nodes {
            v.push((Space::OpcuaNode(node_key(n)), None, 0..=0));
        }
    }
    if let SetpointAddress::S7 { area, db, bytes } = &sp.address {
        let range = u64::from(*bytes.start())..=u64::from(*bytes.end());
        v.push((Space::S7(*area, db.unwrap_or(0)), None, range));
    }
    v
}

/// How a write touches a setpoint.
#[derive(Debug, PartialEq)]
struct Touch {
    /// `holding registers 98-103`: the written addresses that overlap the setpoint.
    describe: String,
    /// Each value of the setpoint that the write sets completely: (first address,
    /// decoded value). Values written only in part, or not carried, are not here.
    values: Vec<(u64, f64)>,
}

/// How the writes of one PDU touch a setpoint (several S7 items may).
fn touch_all(sp: &Setpoint, writes: &[Written<'_>]) -> Option<Touch> {
    let mut all: Option<Touch> = None;
    for w in writes {
        let Some(t) = touch(sp, w) else { continue };
        match &mut all {
            None => all = Some(t),
            Some(a) => {
                a.describe.push_str(", ");
                a.describe.push_str(&t.describe);
                a.values.extend(t.values);
            }
        }
    }
    all
}

fn touch(sp: &Setpoint, w: &Written<'_>) -> Option<Touch> {
    for (space, unit, range) in setpoint_ranges(sp) {
        if space != w.space || unit.is_some_and(|u| Some(u) != w.unit) {
            continue;
        }
        let lo = (*range.start()).max(*w.addresses.start());
        let hi = (*range.end()).min(*w.addresses.end());
        if lo > hi {
            continue;
        }
        let table = match space {
            Space::ModbusHoldingRegisters => "holding registers".to_owned(),
            Space::ModbusCoils => "coils".to_owned(),
            Space::S7(S7Area::Db, db) => format!("DB{db} bytes"),
            Space::S7(area, _) => format!("{} bytes", s7_area_name(area)),
            Space::Dnp3AnalogOutputs => "analog outputs".to_owned(),
            Space::Dnp3BinaryOutputs => "binary outputs".to_owned(),
            Space::OpcuaNode(_) => "node".to_owned(),
        };
        let describe = if lo == hi {
            format!("{table} {lo}")
        } else {
            format!("{table} {lo}-{hi}")
        };
        // Coils are single bits whatever the setpoint's type.
        let (width, vt) = match space {
            Space::ModbusCoils => (1, ValueType::U16),
            Space::ModbusHoldingRegisters => (registers_of(sp.value_type), sp.value_type),
            Space::S7(..) => (2 * registers_of(sp.value_type), sp.value_type),
            // One point per index (one node), its value already a number.
            Space::Dnp3AnalogOutputs | Space::Dnp3BinaryOutputs | Space::OpcuaNode(_) => {
                (1, sp.value_type)
            }
        };
        let mut values = Vec::new();
        if let Some(vals) = &w.values {
            // The setpoint's values start at its first address, `width` words each;
            // visit those that overlap [lo, hi].
            let first = (lo - range.start()) / width;
            let last = (hi - range.start()) / width;
            for k in first..=last {
                let start = range.start() + k * width;
                let end = start + width - 1;
                if end > *range.end() || start < *w.addresses.start() || end > *w.addresses.end() {
                    continue; // partly written: its value is unknown
                }
                let off = usize::try_from(start - w.addresses.start()).ok()?;
                let value = match vals {
                    Values::Words(words) => words
                        .get(off..off + width as usize)
                        .map(|w| decode(w, vt, sp.word_order)),
                    // S7 values are big-endian whatever `word_order` says.
                    Values::Bytes(bytes) => bytes
                        .get(off..off + width as usize)
                        .map(|b| decode_be_bytes(b, vt)),
                    Values::Number(v) => (off == 0).then_some(*v),
                    Values::Numbers(vs) => {
                        // An OPC UA value: every element of an array is checked.
                        values.extend(vs.iter().map(|v| (start, *v)));
                        continue;
                    }
                };
                let Some(value) = value else {
                    continue; // values truncated in the PDU
                };
                values.push((start, value));
            }
        }
        return Some(Touch { describe, values });
    }
    None
}

fn registers_of(t: ValueType) -> u64 {
    match t {
        ValueType::U16 | ValueType::I16 => 1,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 2,
        ValueType::F64 => 4,
    }
}

/// Decodes `words` (exactly `registers_of(t)` of them) as `t`. `word_order` says
/// whether the first register holds the most (`big`) or least (`little`) significant
/// word; bytes within a register are big-endian, as Modbus sends them.
fn decode(words: &[u16], t: ValueType, order: WordOrder) -> f64 {
    let mut bits: u64 = 0;
    let mut push = |w: u16| bits = (bits << 16) | u64::from(w);
    match order {
        WordOrder::Big => words.iter().copied().for_each(&mut push),
        WordOrder::Little => words.iter().rev().copied().for_each(&mut push),
    }
    match t {
        ValueType::U16 => f64::from(bits as u16),
        ValueType::I16 => f64::from(bits as u16 as i16),
        ValueType::U32 => f64::from(bits as u32),
        ValueType::I32 => f64::from(bits as u32 as i32),
        ValueType::F32 => f64::from(f32::from_bits(bits as u32)),
        ValueType::F64 => f64::from_bits(bits),
    }
}

/// Decodes `bytes` (exactly `2 * registers_of(t)` of them, big-endian) as `t`.
fn decode_be_bytes(bytes: &[u8], t: ValueType) -> f64 {
    let words: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    decode(&words, t, WordOrder::Big)
}

fn s7_area_name(area: S7Area) -> &'static str {
    match area {
        S7Area::Db => "DB",
        S7Area::M => "M",
        S7Area::I => "I",
        S7Area::Q => "Q",
    }
}

fn out_of_range(v: f64, min: Option<f64>, max: Option<f64>) -> bool {
    !v.is_finite() || min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m)
}

fn value_type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::U16 => "u16",
        ValueType::I16 => "i16",
        ValueType::U32 => "u32",
        ValueType::I32 => "i32",
        ValueType::F32 => "f32",
        ValueType::F64 => "f64",
    }
}

/// A value as JSON: a number, or `"NaN"`/`"inf"`/`"-inf"` (JSON has no such numbers).
fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else {
        json!(format_value(v))
    }
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::parse_str;
    use otwatch_event::modbus::UmasInfo;
    use otwatch_event::{Pdu, S7commPlusInfo};
    use std::path::Path;

    /// The spec's example plant, with a second PLC, a historian in the enterprise zone
    /// and setpoints of every value shape.
    const POLICY: &str = r#"
[sensor]
name = "plant-a-span1"
timezone = "Europe/Berlin"

[zones]
enterprise  = ["10.0.0.0/16"]
engineering = ["10.20.1.0/24"]
hmi         = ["10.40.1.0/24"]
cell-1      = ["10.30.1.0/24"]

[[assets]]
name = "plc-boiler-1"
ip   = "10.30.1.10"
role = "plc"

[[assets]]
name = "plc-2"
ip   = "10.30.1.11"
role = "plc"

[[assets]]
name = "ews-1"
ip   = "10.20.1.5"
role = "engineering"

[[assets]]
name = "hmi-1"
ip   = "10.40.1.11"
role = "hmi"

[[assets]]
name = "historian-1"
ip   = "10.0.5.20"
role = "historian"

[[conduits]]
from = "engineering"
to   = "cell-1"
protocols = ["s7comm", "modbus"]

[[conduits]]
from = "hmi"
to   = "cell-1"
protocols = ["modbus"]

[[windows]]
name = "weekly-maintenance"
applies_to = ["cell-1"]
weekly = ["Sat 22:00-Sun 06:00"]

[[windows]]
name = "CHG-4711 firmware update"
ticket = "CHG-4711"
applies_to = ["plc-boiler-1"]
sources = ["ews-1"]
start = "2026-11-28T08:00:00Z"
end   = "2026-11-28T12:00:00Z"

[[setpoints]]
name    = "boiler-1 temperature setpoint"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 95.0
modbus = { unit = 1, holding_registers = "100-109" }

[[setpoints]]
name    = "boiler-1 pressure limit"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 10.0
type = "f32"
word_order = "big"
modbus = { unit = 1, holding_registers = "200-201" }

[[setpoints]]
name    = "boiler-1 flow limit"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 10.0
type = "f32"
word_order = "little"
modbus = { holding_registers = "300-301" }

[[setpoints]]
name    = "boiler-1 pumps"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
modbus = { unit = 1, coils = "0-15" }
"#;

    const PLC: &str = "10.30.1.10";
    const PLC2: &str = "10.30.1.11";
    const EWS: &str = "10.20.1.5";
    const HMI: &str = "10.40.1.11";
    const HISTORIAN: &str = "10.0.5.20";

    fn policy_with(extra: &str) -> Arc<Policy> {
        let text = format!("{POLICY}\n{extra}");
        Arc::new(parse_str(&text, Path::new("test-policy.toml")).unwrap())
    }

    fn engine() -> Engine {
        Engine::new(policy_with(""))
    }

    /// RFC 3339 to packet time.
    fn t(s: &str) -> Timestamp {
        let ts: jiff::Timestamp = s.parse().unwrap();
        Timestamp::from_nanos(i64::try_from(ts.as_nanosecond()).unwrap())
    }

    fn secs(ts: Timestamp, s: i64) -> Timestamp {
        ts.add_nanos(s * NANOS_PER_SEC)
    }

    /// Friday 2026-11-20, 15:22 in Berlin: no window open.
    const FRIDAY: &str = "2026-11-20T14:22:10Z";

    fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> Arc<FlowMeta> {
        flow_hs(src, sport, dst, dport, true)
    }

    fn flow_hs(src: &str, sport: u16, dst: &str, dport: u16, hs: bool) -> Arc<FlowMeta> {
        Arc::new(FlowMeta {
            src_ip: src.parse().unwrap(),
            src_port: sport,
            dst_ip: dst.parse().unwrap(),
            dst_port: dport,
            transport: Transport::Tcp,
            community_id: format!("1:{src}:{sport}>{dst}:{dport}"),
            handshake_seen: hs,
        })
    }

    fn mb(
        fc: u8,
        address: Option<u16>,
        quantity: Option<u16>,
        values: Option<Vec<u16>>,
    ) -> ModbusInfo {
        ModbusInfo {
            transaction_id: 1,
            unit_id: 1,
            function_code: fc,
            function: "test",
            address,
            quantity,
            values,
            ..ModbusInfo::default()
        }
    }

    /// A request from the flow's initiator.
    fn req(f: &Arc<FlowMeta>, ts: Timestamp, op: Operation, info: ModbusInfo) -> OtEvent {
        event(
            f,
            ts,
            Direction::ToServer,
            false,
            op,
            Anomalies::empty(),
            info,
        )
    }

    fn event(
        f: &Arc<FlowMeta>,
        ts: Timestamp,
        direction: Direction,
        is_response: bool,
        operation: Operation,
        anomalies: Anomalies,
        info: ModbusInfo,
    ) -> OtEvent {
        OtEvent {
            timestamp: ts,
            packet_index: 0,
            flow_id: 0,
            pdu_ordinal: 0,
            flow_ordinal: u64::from(info.transaction_id),
            flow: Arc::clone(f),
            pdu: Pdu {
                direction,
                is_response,
                operation,
                anomalies,
                native: Native::Modbus(info),
            },
        }
    }

    /// FC 16 over `address..` with `values`.
    fn write_regs(f: &Arc<FlowMeta>, ts: Timestamp, address: u16, values: &[u16]) -> OtEvent {
        let info = mb(
            16,
            Some(address),
            Some(values.len() as u16),
            Some(values.to_vec()),
        );
        req(f, ts, Operation::Write, info)
    }

    fn umas(f: &Arc<FlowMeta>, ts: Timestamp, op: Operation, code: u8, tid: u16) -> OtEvent {
        let mut info = mb(90, None, None, None);
        info.transaction_id = tid;
        info.more_mut().umas = Some(UmasInfo {
            session_key: 0,
            function_code: code,
            function: "test",
            status: None,
        });
        req(f, ts, op, info)
    }

    fn run(e: &mut Engine, evs: &[OtEvent]) -> Vec<Alert> {
        let mut out = Vec::new();
        for ev in evs {
            e.on_event(ev, &mut out);
        }
        out
    }

    fn kinds(alerts: &[Alert]) -> Vec<&'static str> {
        alerts.iter().map(|a| a.kind.as_str()).collect()
    }

    // ---- program_download_outside_window ----

    #[test]
    fn download_outside_window_fires_once_per_session() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let evs = [
            umas(&f, t0, Operation::ProgramDownload, 0x30, 1),
            umas(&f, secs(t0, 1), Operation::ProgramDownload, 0x31, 2),
            // A read between blocks does not end the session.
            req(
                &f,
                secs(t0, 2),
                Operation::Read,
                mb(3, Some(0), Some(1), None),
            ),
            umas(&f, secs(t0, 200), Operation::ProgramDownload, 0x32, 3),
            // 5 minutes without a download PDU: a new session.
            umas(&f, secs(t0, 200 + 300), Operation::ProgramDownload, 0x30, 4),
        ];
        let alerts = run(&mut e, &evs);
        assert_eq!(kinds(&alerts), ["program_download_outside_window"; 2]);
        let a = &alerts[0];
        assert_eq!(a.timestamp, t0);
        assert_eq!(&*a.rule, "OTW-1001");
        assert_eq!(a.severity, crate::model::Severity::Critical);
        assert_eq!(a.src_asset.as_deref(), Some("ews-1"));
        assert_eq!(a.dst_asset.as_deref(), Some("plc-boiler-1"));
        assert_eq!(a.operation, Some(Operation::ProgramDownload));
        assert_eq!(
            a.evidence["windows_considered"],
            json!(["weekly-maintenance", "CHG-4711 firmware update"])
        );
        assert_eq!(a.evidence["modbus"]["function_code"], 90);
        assert_eq!(
            a.message,
            "ews-1 downloaded a program to plc-boiler-1; no maintenance window open \
             (considered: weekly-maintenance, CHG-4711 firmware update)"
        );
        assert_eq!(alerts[1].timestamp, secs(t0, 500));
    }

    #[test]
    fn a_new_flow_starts_a_new_session() {
        let mut e = engine();
        let f1 = flow(EWS, 49152, PLC, 502);
        let f2 = flow(EWS, 49153, PLC, 502);
        let t0 = t(FRIDAY);
        let mut out = Vec::new();
        e.on_event(
            &umas(&f1, t0, Operation::ProgramDownload, 0x30, 1),
            &mut out,
        );
        e.on_flow_end(secs(t0, 1), &f1, true, true, &mut out);
        // Over 60 s later, so repeats do not fold it either.
        e.on_event(
            &umas(&f2, secs(t0, 90), Operation::ProgramDownload, 0x30, 1),
            &mut out,
        );
        assert_eq!(kinds(&out), ["program_download_outside_window"; 2]);
    }

    #[test]
    fn firmware_update_outside_window_fires_and_responses_do_not() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let mut resp = umas(&f, t0, Operation::FirmwareUpdate, 0x30, 1);
        resp.pdu.direction = Direction::ToClient;
        resp.pdu.is_response = true;
        assert!(run(&mut e, &[resp]).is_empty());
        let alerts = run(
            &mut e,
            &[umas(&f, secs(t0, 1), Operation::FirmwareUpdate, 0x30, 2)],
        );
        assert_eq!(kinds(&alerts), ["program_download_outside_window"]);
        assert!(alerts[0]
            .message
            .starts_with("ews-1 started a firmware update of plc-boiler-1"));
    }

    #[test]
    fn download_inside_weekly_window_is_silent() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        // Sunday 2026-11-22 00:30 in Berlin (CET, UTC+1): inside Sat 22:00-Sun 06:00.
        let evs = [umas(
            &f,
            t("2026-11-21T23:30:00Z"),
            Operation::ProgramDownload,
            0x30,
            1,
        )];
        assert!(run(&mut e, &evs).is_empty());
        // Sunday 06:00 local is the window's (exclusive) end: a new flow alerts.
        let f2 = flow(EWS, 49153, PLC, 502);
        let evs = [umas(
            &f2,
            t("2026-11-22T05:00:00Z"),
            Operation::ProgramDownload,
            0x30,
            1,
        )];
        assert_eq!(
            kinds(&run(&mut e, &evs)),
            ["program_download_outside_window"]
        );
    }

    #[test]
    fn one_off_window_covers_only_its_sources_and_expires() {
        let mut e = engine();
        // Saturday 2026-11-28 10:00 in Berlin: only the one-off window is open.
        let at = t("2026-11-28T09:00:00Z");
        let ews = flow(EWS, 49152, PLC, 502);
        assert!(run(
            &mut e,
            &[umas(&ews, at, Operation::FirmwareUpdate, 0x30, 1)]
        )
        .is_empty());
        // hmi-1 is not one of the window's sources.
        let hmi = flow(HMI, 40000, PLC, 502);
        let alerts = run(
            &mut e,
            &[umas(&hmi, at, Operation::ProgramDownload, 0x30, 1)],
        );
        assert_eq!(kinds(&alerts), ["program_download_outside_window"]);
        assert_eq!(alerts[0].src_asset.as_deref(), Some("hmi-1"));
        // At the window's end (exclusive) ews-1 alerts too.
        let ews2 = flow(EWS, 49153, PLC, 502);
        let end = t("2026-11-28T12:00:00Z");
        let alerts = run(
            &mut e,
            &[umas(&ews2, end, Operation::ProgramDownload, 0x30, 1)],
        );
        assert_eq!(kinds(&alerts), ["program_download_outside_window"]);
    }

    #[test]
    fn download_to_a_device_no_window_applies_to_says_so() {
        let mut e = engine();
        // historian-1 is in the enterprise zone: no window applies to it. The
        // engineering station's flow there is also a new conduit.
        let f = flow(EWS, 49152, HISTORIAN, 502);
        let alerts = run(
            &mut e,
            &[umas(&f, t(FRIDAY), Operation::ProgramDownload, 0x30, 1)],
        );
        assert_eq!(
            kinds(&alerts),
            ["program_download_outside_window", "new_conduit"]
        );
        assert!(alerts[0]
            .message
            .ends_with("no maintenance window applies to historian-1"));
        assert_eq!(alerts[0].evidence["windows_considered"], json!([]));
    }

    #[test]
    fn operations_inside_a_window_carry_its_name_and_ticket() {
        let mut e = engine();
        // Inside the one-off window for ews-1: the download is silent, a mode change
        // still alerts and names the change ticket.
        let at = t("2026-11-28T09:00:00Z");
        let f = flow(EWS, 49152, PLC, 502);
        let mut stop = mb(8, None, None, None);
        stop.more_mut().sub_function = Some(4);
        let evs = [
            umas(&f, at, Operation::ProgramDownload, 0x30, 1),
            req(&f, secs(at, 1), Operation::ModeChange, stop),
        ];
        let alerts = run(&mut e, &evs);
        assert_eq!(kinds(&alerts), ["plc_mode_change"]);
        assert_eq!(alerts[0].evidence["window"], "CHG-4711 firmware update");
        assert_eq!(alerts[0].evidence["ticket"], "CHG-4711");
        // Outside any window there is no such evidence.
        let alerts = run(
            &mut e,
            &[umas(&f, t(FRIDAY), Operation::ProgramUpload, 0x33, 2)],
        );
        assert_eq!(kinds(&alerts), ["program_upload"]);
        assert!(alerts[0].evidence.get("window").is_none());
    }

    // ---- setpoints ----

    #[test]
    fn authorized_in_range_write_is_silent() {
        let mut e = engine();
        let f = flow(HMI, 40000, PLC, 502);
        let t0 = t(FRIDAY);
        let evs = [
            req(
                &f,
                t0,
                Operation::Write,
                mb(6, Some(100), Some(1), Some(vec![72])),
            ),
            write_regs(&f, secs(t0, 1), 100, &[0, 95, 12]),
            // 2.5 as f32, big word order: 0x4020_0000.
            write_regs(&f, secs(t0, 2), 200, &[0x4020, 0x0000]),
            // 2.5 as f32, little word order.
            write_regs(&f, secs(t0, 3), 300, &[0x0000, 0x4020]),
            // Mask write: touches, carries no value to check.
            req(
                &f,
                secs(t0, 4),
                Operation::Write,
                mb(22, Some(105), None, None),
            ),
        ];
        assert!(run(&mut e, &evs).is_empty());
    }

    #[test]
    fn write_next_to_a_setpoint_does_not_touch_it() {
        let mut e = engine();
        // ews-1 is not a writer of any setpoint, but may write the PLC otherwise.
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let evs = [
            write_regs(&f, t0, 98, &[1, 2]),           // 98-99
            write_regs(&f, secs(t0, 1), 110, &[1, 2]), // 110-111
            req(
                &f,
                secs(t0, 2),
                Operation::Write,
                mb(6, Some(99), Some(1), Some(vec![1])),
            ),
            req(
                &f,
                secs(t0, 3),
                Operation::Write,
                mb(5, Some(16), Some(1), Some(vec![1])),
            ),
            // Reads of the setpoint are not writes.
            req(
                &f,
                secs(t0, 4),
                Operation::Read,
                mb(3, Some(100), Some(10), None),
            ),
        ];
        assert!(run(&mut e, &evs).is_empty());
    }

    #[test]
    fn range_write_overlapping_a_setpoint_touches_it() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        let alerts = run(
            &mut e,
            &[write_regs(&f, t(FRIDAY), 98, &[1, 2, 3, 4, 5, 6])],
        );
        assert_eq!(kinds(&alerts), ["unauthorized_setpoint_write"]);
        let a = &alerts[0];
        assert_eq!(&*a.rule, "OTW-1002");
        assert_eq!(a.evidence["setpoint"], "boiler-1 temperature setpoint");
        assert_eq!(a.evidence["addresses"], "holding registers 100-103");
        assert_eq!(a.evidence["modbus"]["address"], 98);
        assert_eq!(
            a.message,
            "ews-1 wrote setpoint \"boiler-1 temperature setpoint\" on plc-boiler-1 \
             (holding registers 100-103); ews-1 is not one of its writers (allowed writers: hmi-1)"
        );
    }

    #[test]
    fn unauthorized_setpoint_writes_by_every_write_function() {
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let mut fc23 = mb(23, Some(109), Some(2), Some(vec![1, 2]));
        fc23.more_mut().read_address = Some(0);
        fc23.more_mut().read_quantity = Some(1);
        let cases = [
            (
                "fc6",
                mb(6, Some(109), Some(1), Some(vec![1])),
                "holding registers 109",
            ),
            (
                "fc22",
                mb(22, Some(100), None, None),
                "holding registers 100",
            ),
            ("fc23", fc23, "holding registers 109"),
            ("fc5", mb(5, Some(15), Some(1), Some(vec![1])), "coils 15"),
            (
                "fc15",
                mb(15, Some(14), Some(4), Some(vec![1, 0, 1, 1])),
                "coils 14-15",
            ),
        ];
        for (name, info, touched) in cases {
            let mut e = engine();
            let alerts = run(&mut e, &[req(&f, t0, Operation::Write, info)]);
            assert_eq!(kinds(&alerts), ["unauthorized_setpoint_write"], "{name}");
            assert_eq!(alerts[0].evidence["addresses"], touched, "{name}");
        }
    }

    #[test]
    fn another_unit_or_another_device_does_not_touch() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        let mut info = mb(6, Some(100), Some(1), Some(vec![1]));
        info.unit_id = 2;
        assert!(run(&mut e, &[req(&f, t(FRIDAY), Operation::Write, info)]).is_empty());
        // The flow-limit setpoint names no unit: any unit touches it.
        let mut info = mb(6, Some(300), Some(1), Some(vec![1]));
        info.unit_id = 7;
        let alerts = run(&mut e, &[req(&f, t(FRIDAY), Operation::Write, info)]);
        assert_eq!(kinds(&alerts), ["unauthorized_setpoint_write"]);
        // Same registers on another PLC.
        let f2 = flow(EWS, 49152, PLC2, 502);
        assert!(run(&mut e, &[write_regs(&f2, t(FRIDAY), 100, &[500])]).is_empty());
    }

    #[test]
    fn out_of_range_checks_every_written_value() {
        let mut e = engine();
        let f = flow(HMI, 40000, PLC, 502);
        let alerts = run(
            &mut e,
            &[write_regs(&f, t(FRIDAY), 99, &[7, 50, 96, 95, 1000])],
        );
        assert_eq!(kinds(&alerts), ["setpoint_out_of_range"]);
        let a = &alerts[0];
        assert_eq!(&*a.rule, "OTW-1003");
        assert_eq!(
            a.evidence["out_of_range"],
            json!([{"address": 101, "value": 96.0}, {"address": 103, "value": 1000.0}])
        );
        // Register 99 is not the setpoint's: only 100-103 are values of it.
        assert_eq!(a.evidence["values"].as_array().map(Vec::len), Some(4));
        assert_eq!(a.evidence["min"], json!(0.0));
        assert_eq!(a.evidence["max"], json!(95.0));
        assert_eq!(
            a.message,
            "hmi-1 wrote 96, 1000 to setpoint \"boiler-1 temperature setpoint\" on plc-boiler-1; \
             allowed range is [0, 95]"
        );
    }

    #[test]
    fn f32_setpoints_decode_in_their_word_order() {
        let t0 = t(FRIDAY);
        let f = flow(HMI, 40000, PLC, 502);
        // 12.5 as f32 is 0x4148_0000.
        let cases: [(&str, u16, [u16; 2], Option<f64>); 5] = [
            ("big, out of range", 200, [0x4148, 0x0000], Some(12.5)),
            ("little, out of range", 300, [0x0000, 0x4148], Some(12.5)),
            // The same words in the other order are a tiny positive number: in range.
            ("big, swapped words", 200, [0x0000, 0x4148], None),
            ("little, swapped words", 300, [0x4148, 0x0000], None),
            // -1.0 is 0xBF80_0000: below min.
            ("big, negative", 200, [0xBF80, 0x0000], Some(-1.0)),
        ];
        for (name, addr, words, bad) in cases {
            let mut e = engine();
            let alerts = run(&mut e, &[write_regs(&f, t0, addr, &words)]);
            match bad {
                Some(v) => {
                    assert_eq!(kinds(&alerts), ["setpoint_out_of_range"], "{name}");
                    assert_eq!(
                        alerts[0].evidence["out_of_range"][0]["value"],
                        json!(v),
                        "{name}"
                    );
                    assert_eq!(alerts[0].evidence["type"], "f32");
                }
                None => assert!(alerts.is_empty(), "{name}"),
            }
        }
    }

    #[test]
    fn nan_and_infinity_are_out_of_range() {
        let f = flow(HMI, 40000, PLC, 502);
        // Quiet NaN 0x7FC0_0000, +Inf 0x7F80_0000, -Inf 0xFF80_0000.
        for (words, shown) in [
            ([0x7FC0, 0x0000], "NaN"),
            ([0x7F80, 0x0000], "inf"),
            ([0xFF80, 0x0000], "-inf"),
        ] {
            let mut e = engine();
            let alerts = run(&mut e, &[write_regs(&f, t(FRIDAY), 200, &words)]);
            assert_eq!(kinds(&alerts), ["setpoint_out_of_range"], "{shown}");
            assert_eq!(alerts[0].evidence["out_of_range"][0]["value"], shown);
            let mut json = Vec::new();
            alerts[0].write_json(&mut json);
            assert!(serde_json::from_slice::<Value>(&json).is_ok());
        }
    }

    #[test]
    fn a_partly_written_value_is_not_range_checked() {
        let mut e = engine();
        let f = flow(HMI, 40000, PLC, 502);
        // One register of the f32 at 200-201: its value is unknown.
        let evs = [req(
            &f,
            t(FRIDAY),
            Operation::Write,
            mb(6, Some(201), Some(1), Some(vec![0xFFFF])),
        )];
        assert!(run(&mut e, &evs).is_empty());
        // Values cut short in the PDU are not checked either.
        let evs = [req(
            &f,
            t(FRIDAY),
            Operation::Write,
            mb(16, Some(100), Some(3), Some(vec![1])),
        )];
        assert!(run(&mut e, &evs).is_empty());
    }

    #[test]
    fn decode_value_types() {
        use ValueType::*;
        use WordOrder::*;
        assert_eq!(decode(&[0xFFFF], U16, Big), 65535.0);
        assert_eq!(decode(&[0xFFFF], I16, Big), -1.0);
        assert_eq!(decode(&[0x0001, 0x0002], U32, Big), 65538.0);
        assert_eq!(decode(&[0x0001, 0x0002], U32, Little), 131073.0);
        assert_eq!(decode(&[0xFFFF, 0xFFFE], I32, Big), -2.0);
        assert_eq!(decode(&[0xFFFE, 0xFFFF], I32, Little), -2.0);
        // 1.5 as f64 is 0x3FF8_0000_0000_0000.
        assert_eq!(decode(&[0x3FF8, 0, 0, 0], F64, Big), 1.5);
        assert_eq!(decode(&[0, 0, 0, 0x3FF8], F64, Little), 1.5);
    }

    #[test]
    fn every_matching_kind_fires_in_spec_order() {
        let mut e = engine();
        // historian-1 (enterprise) writes the temperature setpoint out of range: not a
        // writer, a new conduit, and not allowed to write a PLC at all.
        let f = flow(HISTORIAN, 50000, PLC, 502);
        let alerts = run(&mut e, &[write_regs(&f, t(FRIDAY), 100, &[500])]);
        assert_eq!(
            kinds(&alerts),
            [
                "unauthorized_setpoint_write",
                "new_conduit",
                "unauthorized_write"
            ]
        );
        let ids: HashSet<&str> = alerts.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
    }

    // ---- new_conduit ----

    fn hmi_to_cell(protocols: &str) -> Engine {
        let policy = parse_str(
            &format!(
                "[sensor]\nname = \"s\"\n[zones]\nhmi = [\"10.40.1.0/24\"]\n\
                 cell = [\"10.30.1.0/24\"]\n[[assets]]\nname = \"hmi-1\"\nip = \"10.40.1.11\"\n\
                 role = \"hmi\"\n[[assets]]\nname = \"plc-1\"\nip = \"10.30.1.10\"\nrole = \"plc\"\n\
                 [[conduits]]\nfrom = \"hmi\"\nto = \"cell\"\nprotocols = {protocols}\n"
            ),
            Path::new("t.toml"),
        )
        .unwrap();
        Engine::new(Arc::new(policy))
    }

    #[test]
    fn a_pdu_less_flow_is_its_port_even_on_a_dissectors_port() {
        // policy.md: a flow that never carries a recognised PDU is decided as
        // tcp/PORT of the responder; `modbus` does not list tcp/502.
        let f = flow("10.40.1.11", 50502, "10.30.1.10", 502);
        let mut e = hmi_to_cell(r#"["modbus"]"#);
        let mut out = Vec::new();
        e.on_flow_end(Timestamp::from_nanos(1), &f, false, true, &mut out);
        assert_eq!(kinds(&out), ["new_conduit"]);
        assert_eq!(out[0].protocol.as_deref(), Some("tcp/502"));
        assert_eq!(out[0].evidence["conduit_protocol"], "tcp/502");
        // Listed as a port, it is approved.
        let mut e = hmi_to_cell(r#"["modbus", "tcp/502"]"#);
        let mut out = Vec::new();
        e.on_flow_end(Timestamp::from_nanos(1), &f, false, true, &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn skipped_bytes_are_no_recognised_pdu() {
        let f = flow("10.40.1.11", 50502, "10.30.1.10", 502);
        let garbage = event(
            &f,
            t(FRIDAY),
            Direction::ToServer,
            false,
            Operation::Other,
            Anomalies::GARBAGE,
            ModbusInfo {
                function: "garbage",
                ..ModbusInfo::default()
            },
        );
        assert!(garbage.pdu.is_skipped_bytes());
        // Garbage alone: the flow is decided at its end, as its port.
        let mut e = hmi_to_cell(r#"["modbus"]"#);
        let mut out = run(&mut e, std::slice::from_ref(&garbage));
        assert_eq!(kinds(&out), ["protocol_anomaly"]);
        e.on_flow_end(secs(t(FRIDAY), 1), &f, false, true, &mut out);
        assert_eq!(kinds(&out), ["protocol_anomaly", "new_conduit"]);
        assert_eq!(out[1].protocol.as_deref(), Some("tcp/502"));
        // Garbage, then a Modbus read: the read decides, and the path approves it.
        let mut e = hmi_to_cell(r#"["modbus"]"#);
        let read = req(
            &f,
            secs(t(FRIDAY), 1),
            Operation::Read,
            mb(3, Some(0), Some(1), None),
        );
        assert!(!read.pdu.is_skipped_bytes());
        let mut out = run(&mut e, &[garbage, read]);
        assert_eq!(kinds(&out), ["protocol_anomaly"]);
        e.on_flow_end(secs(t(FRIDAY), 2), &f, true, true, &mut out);
        assert_eq!(kinds(&out), ["protocol_anomaly"]);
    }

    #[test]
    fn a_conduit_may_list_s7comm_plus_alone() {
        let f = flow("10.40.1.11", 50102, "10.30.1.10", 102);
        let plus = OtEvent {
            pdu: Pdu {
                direction: Direction::ToServer,
                is_response: false,
                operation: Operation::Read,
                anomalies: Anomalies::empty(),
                native: Native::S7commPlus(S7commPlusInfo::default()),
            },
            ..req(
                &f,
                t(FRIDAY),
                Operation::Read,
                mb(3, Some(0), Some(1), None),
            )
        };
        for listed in [r#"["s7comm_plus"]"#, r#"["s7comm"]"#] {
            let mut e = hmi_to_cell(listed);
            let out = run(&mut e, std::slice::from_ref(&plus));
            assert!(!kinds(&out).contains(&"new_conduit"), "{listed}: {out:?}");
        }
        let mut e = hmi_to_cell(r#"["modbus"]"#);
        let out = run(&mut e, &[plus]);
        let conduits: Vec<_> = out
            .iter()
            .filter(|a| a.kind.as_str() == "new_conduit")
            .collect();
        assert_eq!(conduits.len(), 1, "{out:?}");
        assert_eq!(conduits[0].evidence["conduit_protocol"], "s7comm");
    }

    #[test]
    fn new_conduit_once_per_zone_pair_and_protocol() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let f1 = flow_hs(HISTORIAN, 50000, PLC, 502, false);
        let read = mb(3, Some(0), Some(1), None);
        let alerts = run(&mut e, &[req(&f1, t0, Operation::Read, read.clone())]);
        assert_eq!(kinds(&alerts), ["new_conduit"]);
        let a = &alerts[0];
        assert_eq!(&*a.rule, "OTW-1004");
        assert_eq!(a.timestamp, t0);
        assert_eq!(&*a.src_zone, "enterprise");
        assert_eq!(&*a.dst_zone, "cell-1");
        assert_eq!(a.evidence["conduit_protocol"], "modbus");
        assert_eq!(a.evidence["handshake_completed"], false);
        assert_eq!(
            a.message,
            "new conduit enterprise -> cell-1 over modbus: historian-1 connected to plc-boiler-1 \
             (TCP handshake not completed); no approved conduit allows it"
        );
        // Another flow on the same path and protocol, even to another PLC: silent.
        let f2 = flow(HISTORIAN, 50001, PLC2, 502);
        assert!(run(
            &mut e,
            &[req(&f2, secs(t0, 100), Operation::Read, read.clone())]
        )
        .is_empty());
        // The same path with an unrecognised protocol, decided at the flow's end.
        let f3 = flow(HISTORIAN, 50002, PLC, 80);
        let mut out = Vec::new();
        e.on_flow_start(secs(t0, 200), &f3, &mut out);
        e.on_flow_end(secs(t0, 201), &f3, false, true, &mut out);
        assert_eq!(kinds(&out), ["new_conduit"]);
        assert_eq!(out[0].protocol.as_deref(), Some("tcp/80"));
        assert_eq!(out[0].timestamp, secs(t0, 201));
        assert_eq!(out[0].evidence["handshake_completed"], true);
        assert_eq!(out[0].direction, None);
        // A flow that carried a recognised PDU is not decided again at its end.
        let mut out = Vec::new();
        e.on_flow_end(secs(t0, 300), &f1, true, true, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn approved_conduits_and_traffic_inside_a_zone_are_silent() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let read = mb(3, Some(0), Some(1), None);
        let evs = [
            req(
                &flow(EWS, 49152, PLC, 502),
                t0,
                Operation::Read,
                read.clone(),
            ),
            req(
                &flow(HMI, 40000, PLC2, 502),
                t0,
                Operation::Read,
                read.clone(),
            ),
            req(
                &flow(PLC2, 40001, PLC, 502),
                t0,
                Operation::Read,
                read.clone(),
            ),
        ];
        assert!(run(&mut e, &evs).is_empty());
        let mut out = Vec::new();
        // Inside one zone, unrecognised.
        let f = flow(PLC2, 40002, PLC, 8080);
        e.on_flow_end(t0, &f, false, true, &mut out);
        // Both ends in no zone: one zone ("unknown").
        let f = flow("192.168.9.1", 1000, "192.168.9.2", 8080);
        e.on_flow_end(t0, &f, false, true, &mut out);
        assert!(out.is_empty());
        // hmi -> cell-1 allows modbus only.
        let f = flow(HMI, 40003, PLC, 102);
        e.on_flow_end(t0, &f, false, false, &mut out);
        assert_eq!(kinds(&out), ["new_conduit"]);
        assert_eq!(out[0].evidence["conduit_protocol"], "tcp/102");
    }

    #[test]
    fn s7comm_plus_is_checked_as_s7comm() {
        assert_eq!(conduit_dissector_name(Protocol::S7commPlus), "s7comm");
        assert_eq!(conduit_dissector_name(Protocol::Dnp3), "dnp3");
    }

    // ---- unauthorized_write ----

    #[test]
    fn unauthorized_write_from_roles_that_may_not_write() {
        let t0 = t(FRIDAY);
        let info = || mb(6, Some(5), Some(1), Some(vec![1]));
        // The historian may not write a PLC.
        let mut e = engine();
        let f = flow(HISTORIAN, 50000, PLC, 502);
        let alerts = run(&mut e, &[req(&f, t0, Operation::Write, info())]);
        assert_eq!(kinds(&alerts), ["new_conduit", "unauthorized_write"]);
        let a = &alerts[1];
        assert_eq!(&*a.rule, "OTW-1005");
        assert_eq!(a.evidence["source_role"], "historian");
        assert_eq!(a.evidence["target_role"], "plc");
        // An undeclared host inside cell-1 has no role.
        let f = flow("10.30.1.99", 50000, PLC, 502);
        let alerts = run(&mut e, &[req(&f, t0, Operation::Restart, info())]);
        assert_eq!(
            kinds(&alerts),
            ["new_asset", "unauthorized_write", "device_restart"]
        );
        assert!(alerts[1]
            .message
            .starts_with("10.30.1.99 (undeclared) sent a restart"));
        assert_eq!(alerts[1].evidence["source_role"], Value::Null);
        // Engineering station and HMI may; a write to a non-controller is not this rule.
        let evs = [
            req(&flow(EWS, 49152, PLC, 502), t0, Operation::Write, info()),
            req(&flow(HMI, 40000, PLC, 502), t0, Operation::Write, info()),
            req(&flow(PLC2, 40000, HMI, 502), t0, Operation::Write, info()),
        ];
        let mut e = engine();
        assert_eq!(kinds(&run(&mut e, &evs)), ["new_conduit"]); // cell-1 -> hmi
    }

    // ---- mode change, restart, upload ----

    #[test]
    fn commands_fire_on_requests_only() {
        let mut e = engine();
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let mut listen_only = mb(8, None, None, None);
        listen_only.more_mut().sub_function = Some(4);
        let mut restart = mb(8, None, None, None);
        restart.more_mut().sub_function = Some(1);
        restart.transaction_id = 2;
        let mut resp = req(&f, secs(t0, 3), Operation::ModeChange, listen_only.clone());
        resp.pdu.direction = Direction::ToClient;
        resp.pdu.is_response = true;
        let evs = [
            req(&f, t0, Operation::ModeChange, listen_only),
            req(&f, secs(t0, 1), Operation::Restart, restart),
            umas(&f, secs(t0, 2), Operation::ProgramUpload, 0x33, 3),
            resp,
        ];
        let alerts = run(&mut e, &evs);
        assert_eq!(
            kinds(&alerts),
            ["plc_mode_change", "device_restart", "program_upload"]
        );
        assert_eq!(&*alerts[0].rule, "OTW-1007");
        assert_eq!(&*alerts[1].rule, "OTW-1006");
        assert_eq!(&*alerts[2].rule, "OTW-1008");
        assert_eq!(
            alerts[0].message,
            "ews-1 changed the operating mode of plc-boiler-1 (modbus function 8 test sub-function 4)"
        );
    }

    // ---- new_asset ----

    #[test]
    fn new_asset_once_per_address_in_a_zone() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let mut out = Vec::new();
        let f = flow("10.30.1.77", 40000, PLC, 502);
        e.on_flow_start(t0, &f, &mut out);
        assert_eq!(kinds(&out), ["new_asset"]);
        let a = &out[0];
        assert_eq!(&*a.rule, "OTW-1009");
        assert_eq!(a.timestamp, t0);
        assert_eq!(a.evidence["address"], "10.30.1.77");
        assert_eq!(a.evidence["zone"], "cell-1");
        assert_eq!(a.src_asset, None);
        assert_eq!(a.dst_asset.as_deref(), Some("plc-boiler-1"));
        let mut out = Vec::new();
        // The same address again, declared assets, addresses in no zone, broadcast and
        // multicast: silent.
        e.on_flow_start(secs(t0, 1), &flow("10.30.1.77", 40001, PLC2, 502), &mut out);
        e.on_flow_start(t0, &flow(EWS, 1, PLC, 502), &mut out);
        e.on_flow_start(t0, &flow("192.168.1.1", 1, "8.8.8.8", 53), &mut out);
        e.on_flow_start(t0, &flow(PLC, 1, "10.30.1.255", 2222), &mut out);
        e.on_flow_start(t0, &flow(PLC, 1, "224.0.0.251", 5353), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn what_was_seen_survives_a_restart_and_a_reload() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let mut out = Vec::new();
        e.on_flow_start(t0, &flow("10.30.1.77", 40000, PLC, 502), &mut out);
        let f = flow_hs(HISTORIAN, 50000, PLC, 502, false);
        let read = mb(3, Some(0), Some(1), None);
        out.extend(run(&mut e, &[req(&f, t0, Operation::Read, read.clone())]));
        assert_eq!(kinds(&out), ["new_asset", "new_conduit"]);
        let seen = e.seen_state();
        assert_eq!(
            seen.conduits,
            [("enterprise".into(), "cell-1".into(), "modbus".into())]
        );
        assert_eq!(seen.assets, ["10.30.1.77".parse::<IpAddr>().unwrap()]);
        let json = serde_json::to_string(&seen).unwrap();
        let back: SeenState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, seen);

        // A new process with that state: neither alert again.
        let mut restarted = engine();
        restarted.restore_seen(back);
        let mut out = Vec::new();
        restarted.on_flow_start(secs(t0, 5), &flow("10.30.1.77", 40001, PLC, 502), &mut out);
        let f2 = flow(HISTORIAN, 50001, PLC, 502);
        out.extend(run(
            &mut restarted,
            &[req(&f2, secs(t0, 5), Operation::Read, read.clone())],
        ));
        assert!(out.is_empty(), "{:?}", kinds(&out));

        // A reload puts the new policy in force and keeps what was seen.
        restarted.set_policy(policy_with(
            "[[conduits]]\nfrom = \"enterprise\"\nto = \"cell-1\"\nprotocols = [\"modbus\"]\n",
        ));
        assert_eq!(
            restarted.policy().conduits.len(),
            engine().policy().conduits.len() + 1
        );
        let mut out = Vec::new();
        restarted.on_flow_start(secs(t0, 9), &flow("10.30.1.77", 40002, PLC, 502), &mut out);
        assert!(out.is_empty());
        assert_eq!(restarted.seen_state().conduits.len(), 1);
    }

    #[test]
    fn new_asset_without_a_flow_note_fires_on_the_first_pdu() {
        let mut e = engine();
        let f = flow("10.20.1.200", 40000, PLC, 502);
        let read = mb(3, Some(0), Some(1), None);
        let alerts = run(&mut e, &[req(&f, t(FRIDAY), Operation::Read, read)]);
        assert_eq!(kinds(&alerts), ["new_asset"]);
    }

    // ---- protocol_anomaly ----

    #[test]
    fn protocol_anomalies_and_what_is_not_one() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let f = flow(EWS, 49152, PLC, 502);
        let mut exception = mb(3, None, None, None);
        exception.exception_code = Some(2);
        let evs = [
            // A legal exception response.
            event(
                &f,
                t0,
                Direction::ToClient,
                true,
                Operation::Read,
                Anomalies::empty(),
                exception,
            ),
            // A request with a bad length.
            event(
                &f,
                t0,
                Direction::ToServer,
                false,
                Operation::Write,
                Anomalies::BAD_LENGTH,
                mb(16, Some(0), Some(2), Some(vec![1])),
            ),
        ];
        let alerts = run(&mut e, &evs);
        assert_eq!(kinds(&alerts), ["protocol_anomaly"]);
        let a = &alerts[0];
        assert_eq!(&*a.rule, "OTW-1010");
        assert_eq!(a.evidence["anomalies"], json!(["bad_length"]));
        assert_eq!(a.src_asset.as_deref(), Some("ews-1"));
        // Garbage sent by the PLC names the PLC as the sender.
        let evs = [event(
            &f,
            t0,
            Direction::ToClient,
            true,
            Operation::Other,
            Anomalies::GARBAGE,
            mb(0, None, None, None),
        )];
        let alerts = run(&mut e, &evs);
        assert_eq!(kinds(&alerts), ["protocol_anomaly"]);
        assert_eq!(alerts[0].src_asset.as_deref(), Some("plc-boiler-1"));
        assert_eq!(alerts[0].dst_asset.as_deref(), Some("ews-1"));
    }

    #[test]
    fn what_capture_loss_explains_is_not_an_anomaly() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let f = flow(EWS, 49152, PLC, 502);
        let answer = |anomalies| {
            event(
                &f,
                t0,
                Direction::ToClient,
                true,
                Operation::Read,
                anomalies,
                mb(3, None, None, Some(vec![7])),
            )
        };
        let skipped = event(
            &f,
            t0,
            Direction::ToServer,
            false,
            Operation::Other,
            Anomalies::RESYNC,
            mb(0, None, None, None),
        );
        // A request first, so that the flow is not one joined mid-stream.
        let request = event(
            &f,
            t0,
            Direction::ToServer,
            false,
            Operation::Read,
            Anomalies::empty(),
            mb(3, Some(0), Some(1), None),
        );
        let quiet = [
            request.clone(),
            skipped,
            answer(Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC),
        ];
        assert_eq!(kinds(&run(&mut e, &quiet)), Vec::<&str>::new());
        // Without the loss to explain it, an unmatched answer is one; and loss does
        // not explain a bad length.
        let mut e = engine();
        let loud = [
            request,
            answer(Anomalies::UNMATCHED_RESPONSE),
            answer(Anomalies::BAD_LENGTH | Anomalies::RESYNC),
        ];
        let alerts = run(&mut e, &loud);
        assert_eq!(kinds(&alerts), ["protocol_anomaly", "protocol_anomaly"]);
        assert_eq!(alerts[1].evidence["anomalies"], json!(["bad_length"]));
    }

    #[test]
    fn unmatched_responses_of_a_flow_joined_mid_stream() {
        let mut e = engine();
        let t0 = t(FRIDAY);
        let read = || mb(3, Some(0), Some(1), None);
        let unmatched = |f: &Arc<FlowMeta>, ts| {
            event(
                f,
                ts,
                Direction::ToClient,
                true,
                Operation::Read,
                Anomalies::UNMATCHED_RESPONSE,
                read(),
            )
        };
        // Joined mid-stream: answers to requests the sensor never saw are no anomaly...
        let mid = flow_hs(EWS, 49152, PLC, 502, false);
        assert!(run(&mut e, &[unmatched(&mid, t0), unmatched(&mid, secs(t0, 1))]).is_empty());
        // ... until the first request was seen.
        let alerts = run(
            &mut e,
            &[
                req(&mid, secs(t0, 2), Operation::Read, read()),
                unmatched(&mid, secs(t0, 3)),
            ],
        );
        assert_eq!(kinds(&alerts), ["protocol_anomaly"]);
        assert_eq!(
            alerts[0].evidence["anomalies"],
            json!(["unmatched_response"])
        );
        // With the handshake seen, there is no excuse. (Another client: the same alert
        // from ews-1 would be folded as a repeat.)
        let full = flow(HMI, 49153, PLC, 502);
        assert_eq!(
            kinds(&run(&mut e, &[unmatched(&full, t0)])),
            ["protocol_anomaly"]
        );
    }

    /// What [`Engine::may_act_on`] leaves out changes no alert: polling reads and
    /// answers around writes and a download, and a flow joined mid-stream whose first
    /// request is a read that comes after an answer (that read decides whether a
    /// later unmatched response is an anomaly).
    #[test]
    fn pdus_that_may_act_on_leaves_out_change_no_alert() {
        let t0 = t(FRIDAY);
        let read = || mb(3, Some(0), Some(1), None);
        let answer = |f: &Arc<FlowMeta>, ts, anomalies| {
            event(
                f,
                ts,
                Direction::ToClient,
                true,
                Operation::Read,
                anomalies,
                read(),
            )
        };
        let mid = flow_hs(EWS, 49152, PLC, 502, false);
        let mut evs = vec![
            answer(&mid, t0, Anomalies::UNMATCHED_RESPONSE),
            req(&mid, secs(t0, 1), Operation::Read, read()),
            answer(&mid, secs(t0, 1), Anomalies::empty()),
            req(&mid, secs(t0, 2), Operation::Read, read()),
            answer(&mid, secs(t0, 3), Anomalies::UNMATCHED_RESPONSE),
        ];
        for (i, ev) in story().into_iter().enumerate() {
            let ts = ev.timestamp;
            let f = Arc::clone(&ev.flow);
            evs.push(ev);
            evs.push(req(&f, ts, Operation::Read, read()));
            evs.push(answer(&f, secs(ts, i as i64), Anomalies::empty()));
        }
        // The places the flow table would give, per flow.
        let mut seen: HashMap<*const FlowMeta, bool> = HashMap::default();
        let kept: Vec<OtEvent> = evs
            .iter()
            .filter(|ev| {
                let key = Arc::as_ptr(&ev.flow);
                let first_of_flow = !seen.contains_key(&key);
                let request_seen = seen.entry(key).or_insert(false);
                let no_request_before = !*request_seen;
                *request_seen |= !ev.pdu.is_response;
                Engine::may_act_on(&ev.pdu, first_of_flow, no_request_before)
            })
            .cloned()
            .collect();
        assert!(
            kept.len() < evs.len() / 2,
            "{} of {} kept",
            kept.len(),
            evs.len()
        );
        let all = run(&mut engine(), &evs);
        assert!(kinds(&all).contains(&"protocol_anomaly"));
        assert!(kinds(&all).contains(&"program_download_outside_window"));
        let ids = |a: &[Alert]| a.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&run(&mut engine(), &kept)), ids(&all));
    }

    // ---- credential_unusual_origin ----

    #[test]
    fn credentials_from_unusual_origins() {
        let mut e = Engine::new(policy_with(
            "[[credentials]]\nuser = \"operator1\"\nsources = [\"hmi-1\"]\n",
        ));
        let policy = Arc::clone(e.policy());
        let check = |e: &mut Engine, src: &str, user: &str| {
            let f = flow(src, 40000, PLC, 4840);
            let src_ip: IpAddr = src.parse().unwrap();
            let origin = Origin {
                ts: t(FRIDAY),
                flow: &f,
                direction: Some(Direction::ToServer),
                protocol: Some("opcua".into()),
                operation: Some(Operation::Session),
                src_ip,
                dst_ip: f.dst_ip,
                src_asset: policy.asset_by_ip(src_ip),
                dst_asset: policy.asset_by_ip(f.dst_ip),
                trigger: Trigger::FlowStart,
            };
            e.credential_unusual_origin(&policy, &origin, user, None)
                .map(|f| f.message)
        };
        assert_eq!(check(&mut e, HMI, "operator1"), None);
        assert_eq!(
            check(&mut e, EWS, "operator1").as_deref(),
            Some("credential operator1 was used from ews-1 to plc-boiler-1; expected from hmi-1")
        );
        // One alert per (credential, source).
        assert_eq!(check(&mut e, EWS, "operator1"), None);
        // Unlisted: the first source is the expected one.
        assert_eq!(check(&mut e, EWS, "s7:abcd"), None);
        assert_eq!(check(&mut e, EWS, "s7:abcd"), None);
        assert!(check(&mut e, HMI, "s7:abcd").is_some());
    }

    // ---- S7 ----

    /// An S7 event from the PG side (`is_response` false) of `f`.
    fn s7(f: &Arc<FlowMeta>, ts: Timestamp, op: Operation, info: S7commInfo) -> OtEvent {
        let mut ev = req(f, ts, op, mb(0, None, None, None));
        ev.pdu.native = Native::S7comm(Box::new(info));
        ev
    }

    /// A write var job (0x05) of one item: `area`, DB `db`, byte `address`, transport
    /// size `ts` with `data`.
    fn s7_write(area: u8, db: u16, address: u32, ts: u8, data: &[u8]) -> S7commInfo {
        S7commInfo {
            rosctr: 1,
            pdu_ref: 7,
            function_code: Some(0x05),
            function: "write_var",
            items: Some(vec![otwatch_event::S7Item {
                area,
                area_name: "test",
                db,
                address,
                bit: 0,
                transport_size: ts,
                length: if ts == 1 { 1 } else { data.len() as u16 },
                data: Some(data.to_vec()),
                return_code: None,
            }]),
            ..S7commInfo::default()
        }
    }

    #[test]
    fn s7_setpoints_match_area_db_and_bytes_and_decode_big_endian() {
        let mut e = Engine::new(policy_with(
            r#"
[[setpoints]]
name = "DB10 level"
asset = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 100.0
s7 = { area = "DB", db = 10, bytes = "4-5" }

[[setpoints]]
name = "MD20 ratio"
asset = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 1.0
type = "f32"
s7 = { area = "M", bytes = "20-23" }
"#,
        ));
        let t0 = t(FRIDAY);
        let from_hmi = flow(HMI, 40000, PLC, 102);
        let from_ews = flow(EWS, 40001, PLC, 102);
        let setpoint_kinds = |alerts: &[Alert]| -> Vec<&'static str> {
            kinds(alerts)
                .into_iter()
                .filter(|k| k.contains("setpoint"))
                .collect()
        };
        // DB10.DBW4 = 100 (0x0064) from the writer: in range, silent.
        let ok = s7_write(0x84, 10, 4, 2, &[0x00, 0x64]);
        assert!(
            setpoint_kinds(&run(&mut e, &[s7(&from_hmi, t0, Operation::Write, ok)])).is_empty()
        );
        // 0x0065 = 101 > max: out of range, the value decoded big-endian.
        let high = s7_write(0x84, 10, 4, 2, &[0x00, 0x65]);
        let alerts = run(
            &mut e,
            &[s7(&from_hmi, secs(t0, 1), Operation::Write, high)],
        );
        assert_eq!(setpoint_kinds(&alerts), ["setpoint_out_of_range"]);
        assert_eq!(alerts[0].evidence["addresses"], "DB10 bytes 4-5");
        assert_eq!(alerts[0].evidence["values"][0]["value"], 101.0);
        // The same bytes of another DB, or of M: not this setpoint.
        let other_db = s7_write(0x84, 11, 4, 2, &[0xff, 0xff]);
        let in_m = s7_write(0x83, 0, 4, 2, &[0xff, 0xff]);
        let alerts = run(
            &mut e,
            &[
                s7(&from_hmi, secs(t0, 2), Operation::Write, other_db),
                s7(&from_hmi, secs(t0, 3), Operation::Write, in_m),
            ],
        );
        assert!(setpoint_kinds(&alerts).is_empty());
        // A write from ews-1 (not a writer) overlapping byte 5 only: unauthorized.
        let overlap = s7_write(0x84, 10, 5, 2, &[0x01, 0x02]);
        let alerts = run(
            &mut e,
            &[s7(&from_ews, secs(t0, 4), Operation::Write, overlap)],
        );
        assert_eq!(setpoint_kinds(&alerts), ["unauthorized_setpoint_write"]);
        assert_eq!(alerts[0].evidence["addresses"], "DB10 bytes 5");
        assert_eq!(alerts[0].evidence["s7comm"]["items"][0]["db"], 10);
        // An f32 in M: 1.5 (0x3fc00000) is above max 1.0.
        let ratio = s7_write(0x83, 0, 20, 8, &[0x3f, 0xc0, 0x00, 0x00]);
        let alerts = run(
            &mut e,
            &[s7(&from_hmi, secs(t0, 5), Operation::Write, ratio)],
        );
        assert_eq!(setpoint_kinds(&alerts), ["setpoint_out_of_range"]);
        assert_eq!(alerts[0].evidence["values"][0]["value"], 1.5);
        // A bit write into the setpoint's bytes (after the repeat interval): its value
        // is unknown, only the writer is checked.
        let bit = s7_write(0x84, 10, 4, 1, &[0x01]);
        let alerts = run(
            &mut e,
            &[s7(&from_ews, secs(t0, 100), Operation::Write, bit)],
        );
        assert_eq!(setpoint_kinds(&alerts), ["unauthorized_setpoint_write"]);
        // A read var job is no write.
        let mut read = s7_write(0x84, 10, 4, 2, &[0x00, 0x00]);
        read.function_code = Some(0x04);
        assert!(setpoint_kinds(&run(
            &mut e,
            &[s7(&from_ews, secs(t0, 7), Operation::Read, read)]
        ))
        .is_empty());
    }

    #[test]
    fn s7_password_from_an_unlisted_source_is_an_unusual_origin() {
        let mut e = Engine::new(policy_with(
            r#"
[[credentials]]
user = "s7:0123456789abcdef"
sources = ["ews-1"]
"#,
        ));
        let t0 = t(FRIDAY);
        let session = |f: &Arc<FlowMeta>, s: i64| {
            let info = S7commInfo {
                rosctr: 7,
                function: "password",
                function_group: Some(5),
                subfunction: Some(1),
                credential: Some("s7:0123456789abcdef".into()),
                ..S7commInfo::default()
            };
            s7(f, secs(t0, s), Operation::Session, info)
        };
        let listed = flow(EWS, 40000, PLC, 102);
        let other = flow(HMI, 40001, PLC, 102);
        assert!(!kinds(&run(&mut e, &[session(&listed, 0)])).contains(&"credential_unusual_origin"));
        let alerts = run(&mut e, &[session(&other, 1)]);
        let found: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::CredentialUnusualOrigin)
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence["credential"], "s7:0123456789abcdef");
        assert_eq!(found[0].protocol.as_deref(), Some("s7comm"));
    }

    // ---- DNP3 ----

    /// A DNP3 request from the master side of `f`.
    fn dnp3(f: &Arc<FlowMeta>, ts: Timestamp, op: Operation, info: Dnp3Info) -> OtEvent {
        let mut ev = req(f, ts, op, mb(0, None, None, None));
        ev.pdu.native = Native::Dnp3(Box::new(info));
        ev
    }

    fn dnp3_operate(function_code: u8, group: u8, index: u32, value: Option<f64>) -> Dnp3Info {
        Dnp3Info {
            link_src: 3,
            link_dst: 4,
            from_master: true,
            function_code,
            function: "test",
            points: Some(vec![otwatch_event::Dnp3Point {
                group,
                variation: if group == 41 { 3 } else { 1 },
                index,
                value,
                control_code: (group == 12).then_some(0x41),
                status: None,
            }]),
            ..Dnp3Info::default()
        }
    }

    #[test]
    fn dnp3_operates_on_setpoint_points_are_checked_select_is_not() {
        let mut e = Engine::new(policy_with(
            r#"
[[setpoints]]
name = "feeder 3 voltage setpoint"
asset = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 240.0
type = "f32"
dnp3 = { analog_outputs = "0-3" }

[[setpoints]]
name = "feeder 3 breaker"
asset = "plc-boiler-1"
writers = ["hmi-1"]
dnp3 = { binary_outputs = "7" }
"#,
        ));
        let t0 = t(FRIDAY);
        let from_hmi = flow(HMI, 40000, PLC, 20000);
        let from_ews = flow(EWS, 40001, PLC, 20000);
        let sp = |alerts: &[Alert]| -> Vec<&'static str> {
            kinds(alerts)
                .into_iter()
                .filter(|k| k.contains("setpoint"))
                .collect()
        };
        // DIRECT OPERATE g41 index 2 = 230.5 from the writer: in range.
        let ok = dnp3_operate(5, 41, 2, Some(230.5));
        assert!(sp(&run(&mut e, &[dnp3(&from_hmi, t0, Operation::Write, ok)])).is_empty());
        // 250 > max.
        let high = dnp3_operate(5, 41, 2, Some(250.0));
        let alerts = run(
            &mut e,
            &[dnp3(&from_hmi, secs(t0, 1), Operation::Write, high)],
        );
        assert_eq!(sp(&alerts), ["setpoint_out_of_range"]);
        assert_eq!(alerts[0].evidence["addresses"], "analog outputs 2");
        assert_eq!(alerts[0].evidence["values"][0]["value"], 250.0);
        assert_eq!(alerts[0].evidence["dnp3"]["points"][0]["index"], 2);
        // SELECT alone is not the write; index 4 is not the setpoint's.
        let select = dnp3_operate(3, 41, 2, Some(999.0));
        let other = dnp3_operate(5, 41, 4, Some(999.0));
        let alerts = run(
            &mut e,
            &[
                dnp3(&from_ews, secs(t0, 2), Operation::Other, select),
                dnp3(&from_ews, secs(t0, 3), Operation::Write, other),
            ],
        );
        assert!(sp(&alerts).is_empty());
        // OPERATE from ews-1 (not a writer): unauthorized, on an analog output and on
        // the breaker's CROB.
        let op = dnp3_operate(4, 41, 0, Some(1.0));
        let alerts = run(
            &mut e,
            &[dnp3(&from_ews, secs(t0, 4), Operation::Write, op)],
        );
        assert_eq!(sp(&alerts), ["unauthorized_setpoint_write"]);
        let crob = dnp3_operate(6, 12, 7, None);
        let alerts = run(
            &mut e,
            &[dnp3(&from_ews, secs(t0, 5), Operation::Write, crob)],
        );
        assert_eq!(sp(&alerts), ["unauthorized_setpoint_write"]);
        assert_eq!(alerts[0].evidence["addresses"], "binary outputs 7");
    }

    #[test]
    fn dnp3_files_written_to_program_paths_are_program_downloads() {
        let mut e = Engine::new(policy_with(
            "[dnp3]\nprogram_files = [\"*.bin\", \"/config/*\"]\n",
        ));
        let t0 = t(FRIDAY);
        let f = flow(EWS, 40000, PLC, 20000);
        let file = |name: &str, mode: Option<u16>, fc: u8| Dnp3Info {
            function_code: fc,
            function: "test",
            file_name: Some(name.to_owned()),
            file_mode: mode,
            from_master: true,
            ..Dnp3Info::default()
        };
        let downloads = |e: &mut Engine, info: Dnp3Info, s: i64| {
            let ev = dnp3(&f, secs(t0, s), Operation::FileTransfer, info);
            let alerts = run(e, &[ev]);
            alerts
                .iter()
                .filter(|a| a.kind == AlertKind::ProgramDownloadOutsideWindow)
                .map(|a| a.operation)
                .collect::<Vec<_>>()
        };
        // OPEN (25) for writing a matching path: a program download, outside a window.
        assert_eq!(
            downloads(&mut e, file("/config/logic.cfg", Some(2), 25), 0),
            [Some(Operation::ProgramDownload)]
        );
        // Reading it, or writing a path that matches no pattern: a file transfer only.
        let mut e = Engine::new(Arc::clone(e.policy()));
        assert!(downloads(&mut e, file("/config/logic.cfg", Some(1), 25), 0).is_empty());
        assert!(downloads(&mut e, file("/logs/today.txt", Some(2), 25), 1).is_empty());
        // A WRITE (2) of g70 to firmware.bin.
        assert_eq!(
            downloads(&mut e, file("firmware.bin", None, 2), 2),
            [Some(Operation::ProgramDownload)]
        );
    }

    // ---- OPC UA ----

    /// An OPC UA request from the client side of `f`.
    fn ua(f: &Arc<FlowMeta>, ts: Timestamp, op: Operation, info: OpcuaInfo) -> OtEvent {
        let mut ev = req(f, ts, op, mb(0, None, None, None));
        ev.pdu.native = Native::Opcua(Box::new(info));
        ev
    }

    fn ua_write(node: &str, value: OpcuaValue) -> OpcuaInfo {
        OpcuaInfo {
            message_type: "MSG",
            security_mode: "none",
            service_id: Some(673),
            service: Some("WriteRequest"),
            nodes: Some(vec![otwatch_event::OpcuaNode {
                node_id: node.into(),
                attribute_id: Some(13),
                value: Some(value),
                method: None,
            }]),
            ..OpcuaInfo::default()
        }
    }

    #[test]
    fn opcua_writes_match_setpoint_nodes_in_canonical_form() {
        let mut e = Engine::new(policy_with(
            r#"
[[setpoints]]
name = "line-1 speed"
asset = "plc-boiler-1"
writers = ["hmi-1"]
min = 0.0
max = 1.5
opcua = { nodes = ["ns=2;s=Line1.Speed", "i=5001"] }
"#,
        ));
        let t0 = t(FRIDAY);
        let from_hmi = flow(HMI, 40000, PLC, 4840);
        let from_ews = flow(EWS, 40001, PLC, 4840);
        let sp = |alerts: &[Alert]| -> Vec<&'static str> {
            kinds(alerts)
                .into_iter()
                .filter(|k| k.contains("setpoint"))
                .collect()
        };
        let ok = ua_write("ns=2;s=Line1.Speed", OpcuaValue::Number(1.2));
        assert!(sp(&run(&mut e, &[ua(&from_hmi, t0, Operation::Write, ok)])).is_empty());
        // The same nodes written another way: ns=0 left out, leading zeros.
        let high = ua_write("ns=0;i=05001", OpcuaValue::Numbers(vec![1.0, 2.0]));
        let alerts = run(
            &mut e,
            &[ua(&from_hmi, secs(t0, 1), Operation::Write, high)],
        );
        assert_eq!(sp(&alerts), ["setpoint_out_of_range"]);
        // Every element of the array is a value; 2.0 is the one out of range.
        assert_eq!(
            alerts[0].evidence["values"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(alerts[0].evidence["out_of_range"][0]["value"], 2.0);
        let by_ews = ua_write("ns=02;s=Line1.Speed", OpcuaValue::Number(1.0));
        let alerts = run(
            &mut e,
            &[ua(&from_ews, secs(t0, 2), Operation::Write, by_ews)],
        );
        assert_eq!(sp(&alerts), ["unauthorized_setpoint_write"]);
        // Another node, or a write of another attribute (13 is Value): not the setpoint.
        let other = ua_write("ns=2;s=Line1.Other", OpcuaValue::Number(9.0));
        let mut desc = ua_write("ns=2;s=Line1.Speed", OpcuaValue::Text("x".into()));
        if let Some(n) = desc.nodes.as_mut().and_then(|n| n.first_mut()) {
            n.attribute_id = Some(4); // DisplayName
        }
        let alerts = run(
            &mut e,
            &[
                ua(&from_ews, secs(t0, 3), Operation::Write, other),
                ua(&from_ews, secs(t0, 4), Operation::Write, desc),
            ],
        );
        assert!(sp(&alerts).is_empty());
    }

    #[test]
    fn opcua_sessions_credentials_and_methods() {
        let mut e = Engine::new(policy_with(
            r#"
[[credentials]]
user = "operator1"
sources = ["hmi-1"]

[[opcua_methods]]
node = "ns=2;s=Line1.Plc.Stop"
operation = "mode_change"
"#,
        ));
        let t0 = t(FRIDAY);
        let from_hmi = flow(HMI, 40000, PLC, 4840);
        let from_ews = flow(EWS, 40001, PLC, 4840);
        let session = |token: &'static str, user: Option<&str>, mode: &'static str| OpcuaInfo {
            message_type: "MSG",
            security_mode: mode,
            service_id: Some(467),
            service: Some("ActivateSessionRequest"),
            token_type: Some(token),
            user: user.map(str::to_owned),
            ..OpcuaInfo::default()
        };
        let k = |e: &mut Engine, f: &Arc<FlowMeta>, s: i64, info: OpcuaInfo| {
            let alerts = run(e, &[ua(f, secs(t0, s), Operation::Session, info)]);
            kinds(&alerts)
                .into_iter()
                .filter(|k| *k == "credential_unusual_origin" || *k == "insecure_session")
                .collect::<Vec<_>>()
        };
        // Listed source over a signed channel: silent.
        assert!(k(
            &mut e,
            &from_hmi,
            0,
            session("username", Some("operator1"), "sign")
        )
        .is_empty());
        // From ews-1: the credential's unusual origin.
        assert_eq!(
            k(
                &mut e,
                &from_ews,
                1,
                session("username", Some("operator1"), "sign_and_encrypt")
            ),
            ["credential_unusual_origin"]
        );
        // A user name over a None channel, and an anonymous session: insecure_session.
        assert_eq!(
            k(
                &mut e,
                &from_hmi,
                2,
                session("username", Some("operator1"), "none")
            ),
            ["insecure_session"]
        );
        assert_eq!(
            k(&mut e, &from_ews, 3, session("anonymous", None, "none")),
            ["insecure_session"]
        );
        // A certificate token over an encrypted channel: nothing to say.
        assert!(k(
            &mut e,
            &from_ews,
            4,
            session("x509", None, "sign_and_encrypt")
        )
        .is_empty());

        // A Call of the method the policy names: a mode change.
        let call = OpcuaInfo {
            message_type: "MSG",
            security_mode: "none",
            service_id: Some(712),
            service: Some("CallRequest"),
            nodes: Some(vec![otwatch_event::OpcuaNode {
                node_id: "ns=2;s=Line1.Plc".into(),
                method: Some("ns=2;s=Line1.Plc.Stop".into()),
                ..otwatch_event::OpcuaNode::default()
            }]),
            ..OpcuaInfo::default()
        };
        let alerts = run(
            &mut e,
            &[ua(&from_hmi, secs(t0, 5), Operation::Other, call.clone())],
        );
        let mode: Vec<&Alert> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::PlcModeChange)
            .collect();
        assert_eq!(mode.len(), 1);
        assert_eq!(mode[0].operation, Some(Operation::ModeChange));
        // Another method: an `other` operation, no mode change.
        let mut other = call;
        if let Some(n) = other.nodes.as_mut().and_then(|n| n.first_mut()) {
            n.method = Some("ns=2;s=Line1.Plc.Reset".into());
        }
        let alerts = run(
            &mut e,
            &[ua(&from_hmi, secs(t0, 6), Operation::Other, other)],
        );
        assert!(!kinds(&alerts).contains(&"plc_mode_change"));
    }

    // ---- repeats, overrides, ids ----

    #[test]
    fn repeats_fold_on_packet_time_and_are_counted_on_the_next_alert() {
        let mut e = engine();
        let f = flow(HISTORIAN, 50000, PLC, 502);
        let t0 = t(FRIDAY);
        let w = |s: i64, tid: u16| {
            let mut info = mb(6, Some(5), Some(1), Some(vec![1]));
            info.transaction_id = tid;
            req(&f, secs(t0, s), Operation::Write, info)
        };
        let evs = [w(0, 1), w(10, 2), w(59, 3), w(60, 4), w(61, 5), w(125, 6)];
        let alerts: Vec<Alert> = run(&mut e, &evs)
            .into_iter()
            .filter(|a| a.kind == AlertKind::UnauthorizedWrite)
            .collect();
        let got: Vec<(Timestamp, u64)> = alerts.iter().map(|a| (a.timestamp, a.repeats)).collect();
        // The first at once; 10 s and 59 s folded; at 60 s the interval has passed.
        assert_eq!(got, [(t0, 0), (secs(t0, 60), 2), (secs(t0, 125), 1)]);
        // Another register is another alert.
        let mut info = mb(6, Some(6), Some(1), Some(vec![1]));
        info.transaction_id = 9;
        let alerts = run(&mut e, &[req(&f, secs(t0, 126), Operation::Write, info)]);
        assert_eq!(kinds(&alerts), ["unauthorized_write"]);
        assert_eq!(alerts[0].repeats, 0);
        let by_kind = e.alerts_by_kind();
        assert_eq!(by_kind.len(), AlertKind::ALL.len());
        assert!(by_kind.contains(&("unauthorized_write", 4)));
        assert!(by_kind.contains(&("new_conduit", 1)));
    }

    #[test]
    fn repeats_are_told_apart_by_the_target_address() {
        let mut e = engine();
        let f = flow(HISTORIAN, 50000, PLC, 502);
        let t0 = t(FRIDAY);
        let write = |s: i64, fc: u8, address: u16| {
            req(
                &f,
                secs(t0, s),
                Operation::Write,
                mb(fc, Some(address), Some(1), Some(vec![1])),
            )
        };
        // FC 6 then FC 16 on holding register 5: one target, the second folded. Coil 5
        // is another table: another target.
        let alerts = run(&mut e, &[write(0, 6, 5), write(5, 16, 5), write(6, 5, 5)]);
        let writes: Vec<Timestamp> = alerts
            .iter()
            .filter(|a| a.kind == AlertKind::UnauthorizedWrite)
            .map(|a| a.timestamp)
            .collect();
        assert_eq!(writes, [t0, secs(t0, 6)]);
        // A setpoint (registers 100-109): writes to 100 and to 105 are two targets; 100
        // again within the interval folds.
        let evs = [
            write_regs(&f, secs(t0, 10), 100, &[1]),
            write_regs(&f, secs(t0, 11), 105, &[1]),
            write_regs(&f, secs(t0, 12), 100, &[2]),
        ];
        let setpoint: Vec<Timestamp> = run(&mut e, &evs)
            .iter()
            .filter(|a| a.kind == AlertKind::UnauthorizedSetpointWrite)
            .map(|a| a.timestamp)
            .collect();
        assert_eq!(setpoint, [secs(t0, 10), secs(t0, 11)]);
    }

    #[test]
    fn setpoint_kinds_fire_in_the_spec_order_whatever_the_setpoints_order() {
        // hmi-1 may write "a" (400-401, at most 95), not "b" (402-403): one write over
        // both is out of range for "a" and unauthorized for "b", in that setpoint order.
        let mut e = Engine::new(policy_with(
            r#"
[[setpoints]]
name    = "a"
asset   = "plc-boiler-1"
writers = ["hmi-1"]
max = 95.0
modbus = { unit = 1, holding_registers = "400-401" }

[[setpoints]]
name    = "b"
asset   = "plc-boiler-1"
writers = ["ews-1"]
modbus = { unit = 1, holding_registers = "402-403" }
"#,
        ));
        let f = flow(HMI, 50000, PLC, 502);
        let alerts = run(
            &mut e,
            &[write_regs(&f, t(FRIDAY), 400, &[80, 200, 90, 95])],
        );
        let setpoint: Vec<(&str, &Value)> = alerts
            .iter()
            .filter(|a| {
                matches!(
                    a.kind,
                    AlertKind::UnauthorizedSetpointWrite | AlertKind::SetpointOutOfRange
                )
            })
            .map(|a| (a.kind.as_str(), &a.evidence["setpoint"]))
            .collect();
        assert_eq!(
            setpoint,
            [
                ("unauthorized_setpoint_write", &json!("b")),
                ("setpoint_out_of_range", &json!("a"))
            ]
        );
    }

    #[test]
    fn overrides_disable_retune_and_except_sources() {
        let e = Engine::new(policy_with(
            r#"
[[overrides]]
kind = "device_restart"
enabled = false

[[overrides]]
rule = "OTW-1007"
severity = "low"

[[overrides]]
kind = "unauthorized_setpoint_write"
except_sources = ["ews-1"]
"#,
        ));
        let mut e = e;
        let f = flow(EWS, 49152, PLC, 502);
        let t0 = t(FRIDAY);
        let mut restart = mb(8, None, None, None);
        restart.more_mut().sub_function = Some(1);
        let mut mode = mb(8, None, None, None);
        mode.more_mut().sub_function = Some(4);
        let evs = [
            req(&f, t0, Operation::Restart, restart),
            req(&f, t0, Operation::ModeChange, mode),
            write_regs(&f, t0, 100, &[1]),
        ];
        let alerts = run(&mut e, &evs);
        assert_eq!(kinds(&alerts), ["plc_mode_change"]);
        assert_eq!(alerts[0].severity, crate::model::Severity::Low);
        // hmi-1 is not excepted from anything: the same restart alerts... once enabled.
        assert!(!e.rules().rule(AlertKind::DeviceRestart).enabled);
        // Another source still raises the excepted rule.
        let f = flow(HISTORIAN, 50000, PLC, 502);
        let alerts = run(&mut e, &[write_regs(&f, t0, 100, &[1])]);
        assert!(kinds(&alerts).contains(&"unauthorized_setpoint_write"));
    }

    fn story() -> Vec<OtEvent> {
        let t0 = t(FRIDAY);
        let ews = flow(EWS, 49152, PLC, 502);
        let his = flow(HISTORIAN, 50000, PLC, 502);
        let mut evs = vec![
            umas(&ews, t0, Operation::ProgramDownload, 0x30, 1),
            write_regs(&his, secs(t0, 1), 100, &[500]),
        ];
        for i in 0..5 {
            evs.push(write_regs(&his, secs(t0, 61 * i + 2), 5, &[1]));
        }
        evs
    }

    #[test]
    fn alert_ids_are_stable_and_unique() {
        let a = run(&mut engine(), &story());
        let b = run(&mut engine(), &story());
        assert!(a.len() >= 8, "{}", a.len());
        let ids_a: Vec<&str> = a.iter().map(|x| x.id.as_str()).collect();
        let ids_b: Vec<&str> = b.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids_a, ids_b);
        let unique: HashSet<&str> = ids_a.iter().copied().collect();
        assert_eq!(unique.len(), ids_a.len());
        for id in ids_a {
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
        // A different sensor name gives different ids for the same traffic.
        let other = Arc::new(
            parse_str(
                &POLICY.replace("plant-a-span1", "plant-b"),
                Path::new("p.toml"),
            )
            .unwrap(),
        );
        let c = run(&mut Engine::new(other), &story());
        assert_ne!(a[0].id, c[0].id);
    }

    #[test]
    fn engine_alert_json_carries_zones_and_evidence() {
        let alerts = run(&mut engine(), &story());
        let mut out = Vec::new();
        alerts[0].write_json(&mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["sensor"], "plant-a-span1");
        assert_eq!(v["timestamp"], "2026-11-20T14:22:10.000000Z");
        assert_eq!(v["flow"]["src_zone"], "engineering");
        assert_eq!(v["flow"]["dst_zone"], "cell-1");
        assert_eq!(v["direction"], "to_server");
        assert_eq!(v["protocol"], "modbus");
        assert_eq!(v["alert"]["attack"], json!(["T0843", "T0857"]));
        assert_eq!(v["evidence"]["modbus"]["umas"]["function_code"], 0x30);
        let e = engine();
        assert_eq!(
            e.zones(&flow(HISTORIAN, 1, "192.168.0.1", 2)),
            ("enterprise", "unknown")
        );
    }

    #[test]
    fn bounded_tables_forget_their_oldest() {
        let mut s = BoundedSet::new(2);
        assert!(s.insert(1));
        assert!(s.insert(2));
        assert!(!s.insert(1));
        assert!(s.insert(3)); // forgets 1
        assert!(s.insert(1));
        let mut ft: FlowTable<u8> = FlowTable::new(4);
        for port in 0..10 {
            *ft.entry(&flow(EWS, port, PLC, 502)).0 = 1;
        }
        assert!(ft.map.len() <= 4);
        // The newest is kept.
        assert!(!ft.entry(&flow(EWS, 9, PLC, 502)).1);
    }
}
