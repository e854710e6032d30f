//! Learning mode: drafting `[[conduits]]` from what captures show.
//!
//! `otwatch learn` runs the captures through a [`Learner`] instead of the engine and
//! writes the zone-to-zone paths it saw, with the protocols of each, as `[[conduits]]`
//! for an engineer to review and include (staged enforcement: learn, review, enforce).
//! A flow's protocol is decided the way `new_conduit` decides it: the dissector of its
//! first recognised PDU (`s7comm_plus` as `s7comm`), else `tcp/PORT` or `udp/PORT` of
//! the responder when it ends. Traffic inside one zone is not a conduit and is skipped.
//! Paths that involve an address in no zone are written commented out: the right fix
//! is usually a zone for those addresses, which are listed too.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

use otwatch_event::{FlowMeta, OtEvent, Protocol, Timestamp, Transport};

use crate::engine::{FlowTable, MAX_FLOWS, MAX_SEEN};
use crate::model::{Policy, UNKNOWN_ZONE};

#[derive(Debug, Default)]
struct LearnFlow {
    /// The protocol was decided (first recognised PDU).
    decided: bool,
    /// The path and protocol the flow was counted under.
    counted: Option<(String, String, String)>,
}

/// What was seen of one protocol on one path.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first: Timestamp,
    flows: u64,
    packets: u64,
    pdus: u64,
}

/// Collects conduits and unzoned addresses. See the module docs.
#[derive(Debug)]
pub struct Learner {
    policy: Arc<Policy>,
    flows: FlowTable<LearnFlow>,
    /// (from zone, to zone) -> protocol -> counts.
    paths: BTreeMap<(String, String), BTreeMap<String, Seen>>,
    unzoned: BTreeSet<IpAddr>,
    /// Sightings of unzoned addresses not kept because of the bound.
    unzoned_dropped: u64,
}

impl Learner {
    pub fn new(policy: Arc<Policy>) -> Learner {
        Learner {
            policy,
            flows: FlowTable::new(MAX_FLOWS),
            paths: BTreeMap::new(),
            unzoned: BTreeSet::new(),
            unzoned_dropped: 0,
        }
    }

    pub fn on_flow_start(&mut self, _ts: Timestamp, flow: &Arc<FlowMeta>) {
        self.flows.entry(flow);
        self.note_addresses(flow);
    }

    pub fn on_event(&mut self, ev: &OtEvent) {
        let flow = &ev.flow;
        let (state, created) = self.flows.entry(flow);
        let decide = !state.decided;
        state.decided = true;
        if created {
            self.note_addresses(flow);
        }
        if decide {
            let name = match ev.protocol() {
                Protocol::S7commPlus => Protocol::S7comm.as_str(),
                p => p.as_str(),
            };
            let key = self.count_flow(ev.timestamp, flow, name.to_string());
            self.flows.entry(flow).0.counted = key;
        }
        let (state, _) = self.flows.entry(flow);
        if let Some((from, to, proto)) = &state.counted {
            if let Some(seen) = self
                .paths
                .get_mut(&(from.clone(), to.clone()))
                .and_then(|p| p.get_mut(proto))
            {
                seen.pdus += 1;
            }
        }
    }

    /// A flow ended with `packets` packets (both directions): they are added to the
    /// path and protocol the flow was counted under.
    pub fn on_flow_end(
        &mut self,
        ts: Timestamp,
        flow: &Arc<FlowMeta>,
        recognised: bool,
        _handshake_completed: bool,
        packets: u64,
    ) {
        let state = self.flows.remove(flow);
        let counted = match state {
            Some(s) if recognised || s.decided => s.counted,
            _ if recognised => None,
            _ => {
                let name = match flow.transport {
                    Transport::Tcp => format!("tcp/{}", flow.dst_port),
                    Transport::Udp => format!("udp/{}", flow.dst_port),
                    // Only TCP and UDP make flows (and conduits).
                    Transport::Icmp | Transport::Icmpv6 | Transport::Ip(_) => return,
                };
                self.count_flow(ts, flow, name)
            }
        };
        if let Some((from, to, protocol)) = counted {
            if let Some(seen) = self
                .paths
                .get_mut(&(from, to))
                .and_then(|p| p.get_mut(&protocol))
            {
                seen.packets += packets;
            }
        }
    }

    /// Counts a flow under its path and protocol; `None` inside one zone.
    fn count_flow(
        &mut self,
        ts: Timestamp,
        flow: &FlowMeta,
        protocol: String,
    ) -> Option<(String, String, String)> {
        let from = self.policy.zone_of(flow.src_ip).to_string();
        let to = self.policy.zone_of(flow.dst_ip).to_string();
        if from == to {
            return None;
        }
        let seen = self
            .paths
            .entry((from.clone(), to.clone()))
            .or_default()
            .entry(protocol.clone())
            .or_insert(Seen {
                first: ts,
                flows: 0,
                packets: 0,
                pdus: 0,
            });
        seen.flows += 1;
        seen.first = seen.first.min(ts);
        Some((from, to, protocol))
    }

    fn note_addresses(&mut self, flow: &FlowMeta) {
        for ip in [flow.src_ip, flow.dst_ip] {
            if self.policy.in_declared_zone(ip) || self.unzoned.contains(&ip) {
                continue;
            }
            if self.unzoned.len() >= MAX_SEEN {
                self.unzoned_dropped += 1;
            } else {
                self.unzoned.insert(ip);
            }
        }
    }

    /// Addresses seen that lie in no declared zone, sorted.
    pub fn unzoned_addresses(&self) -> Vec<IpAddr> {
        self.unzoned.iter().copied().collect()
    }

    /// Writes the drafted conduits as TOML: one `[[conduits]]` per zone pair with the
    /// protocols seen, comments with first-seen times and counts, then the addresses in
    /// no zone as a comment block.
    pub fn write_conduits_toml(&self, w: &mut impl Write) -> io::Result<()> {
        writeln!(
            w,
            "# Conduits drafted by `otwatch learn` from the traffic it saw."
        )?;
        writeln!(
            w,
            "# Review every entry before including this file in the policy: it approves"
        )?;
        writeln!(
            w,
            "# whatever the captures contained, including what should not be there."
        )?;
        if self.paths.is_empty() {
            writeln!(w, "\n# No traffic between two different zones was seen.")?;
        }
        for ((from, to), protocols) in &self.paths {
            let flows: u64 = protocols.values().map(|s| s.flows).sum();
            let pdus: u64 = protocols.values().map(|s| s.pdus).sum();
            let packets: u64 = protocols.values().map(|s| s.packets).sum();
            let first = protocols
                .values()
                .map(|s| s.first)
                .min()
                .unwrap_or_default();
            writeln!(w)?;
            writeln!(
                w,
                "# {from} -> {to}: {flows} flow{}, {packets} packet{}, {pdus} PDU{}, first seen {first}",
                plural(flows),
                plural(packets),
                plural(pdus)
            )?;
            for (p, s) in protocols {
                writeln!(
                    w,
                    "#   {p}: {} flow{}, {} packet{}, {} PDU{}, first seen {}",
                    s.flows,
                    plural(s.flows),
                    s.packets,
                    plural(s.packets),
                    s.pdus,
                    plural(s.pdus),
                    s.first
                )?;
            }
            let names: Vec<String> = protocols.keys().map(|p| quote(p)).collect();
            // Paths from or to addresses in no zone are left for the engineer to decide.
            let c = if from == UNKNOWN_ZONE || to == UNKNOWN_ZONE {
                writeln!(
                    w,
                    "# Involves addresses in no zone: define a zone for them rather than approve \"{UNKNOWN_ZONE}\"."
                )?;
                "# "
            } else {
                ""
            };
            writeln!(w, "{c}[[conduits]]")?;
            writeln!(w, "{c}from = {}", quote(from))?;
            writeln!(w, "{c}to = {}", quote(to))?;
            writeln!(w, "{c}protocols = [{}]", names.join(", "))?;
        }
        if !self.unzoned.is_empty() {
            writeln!(w)?;
            writeln!(w, "# Addresses in no zone ({}):", self.unzoned.len())?;
            for ip in &self.unzoned {
                writeln!(w, "#   {ip}")?;
            }
            if self.unzoned_dropped > 0 {
                writeln!(
                    w,
                    "#   ... and more: the list is full ({MAX_SEEN} addresses)"
                )?;
            }
        }
        Ok(())
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;
    use crate::policy::parse_str;
    use otwatch_event::{Anomalies, Direction, ModbusInfo, Native, Operation, Pdu};
    use std::path::Path;

    const POLICY: &str = r#"
[sensor]
name = "plant-a-span1"
timezone = "Europe/Berlin"

[zones]
enterprise  = ["10.0.0.0/16"]
engineering = ["10.20.1.0/24"]
cell-1      = ["10.30.1.0/24"]

[[assets]]
name = "plc-boiler-1"
ip   = "10.30.1.10"
role = "plc"
"#;

    fn policy(extra: &str) -> Arc<Policy> {
        Arc::new(parse_str(&format!("{POLICY}\n{extra}"), Path::new("p.toml")).unwrap())
    }

    fn flow(src: &str, sport: u16, dst: &str, dport: u16, transport: Transport) -> Arc<FlowMeta> {
        Arc::new(FlowMeta {
            src_ip: src.parse().unwrap(),
            src_port: sport,
            dst_ip: dst.parse().unwrap(),
            dst_port: dport,
            transport,
            community_id: format!("1:{src}:{sport}"),
            handshake_seen: true,
        })
    }

    fn read(f: &Arc<FlowMeta>, secs: i64) -> OtEvent {
        OtEvent {
            timestamp: Timestamp::from_secs_micros(secs, 0),
            packet_index: 0,
            flow_id: 0,
            pdu_ordinal: 0,
            flow_ordinal: 0,
            flow: Arc::clone(f),
            pdu: Pdu {
                direction: Direction::ToServer,
                is_response: false,
                operation: Operation::Read,
                anomalies: Anomalies::empty(),
                native: Native::Modbus(ModbusInfo {
                    function_code: 3,
                    function: "read_holding_registers",
                    ..ModbusInfo::default()
                }),
            },
        }
    }

    /// 2026-11-20T14:22:10Z.
    const T0: i64 = 1_795_184_530;

    /// What the captures "show": modbus from engineering and the enterprise zone to
    /// the cell, a web port, SNMP from an address in no zone, traffic inside the cell.
    fn feed(l: &mut impl FnMut(Step<'_>)) {
        let tcp = Transport::Tcp;
        let ews = flow("10.20.1.5", 49152, "10.30.1.10", 502, tcp);
        let his1 = flow("10.0.5.20", 50000, "10.30.1.10", 502, tcp);
        let his2 = flow("10.0.5.20", 50001, "10.30.1.11", 502, tcp);
        let web = flow("10.0.5.20", 50002, "10.30.1.10", 80, tcp);
        let snmp = flow("192.168.7.7", 40000, "10.30.1.10", 161, Transport::Udp);
        let cell = flow("10.30.1.11", 40000, "10.30.1.10", 502, tcp);
        for (i, f) in [&ews, &his1, &his2, &web, &snmp, &cell]
            .into_iter()
            .enumerate()
        {
            l(Step::Start(T0 + i as i64, f));
        }
        l(Step::Event(read(&ews, T0 + 10)));
        l(Step::Event(read(&ews, T0 + 11)));
        l(Step::Event(read(&his2, T0 + 12)));
        l(Step::Event(read(&his1, T0 + 13)));
        l(Step::Event(read(&his1, T0 + 14)));
        l(Step::Event(read(&his1, T0 + 15)));
        l(Step::Event(read(&cell, T0 + 16)));
        l(Step::End(T0 + 20, &ews, true));
        l(Step::End(T0 + 21, &his1, true));
        l(Step::End(T0 + 22, &his2, true));
        l(Step::End(T0 + 23, &web, false));
        l(Step::End(T0 + 24, &snmp, false));
        l(Step::End(T0 + 25, &cell, true));
    }

    enum Step<'a> {
        Start(i64, &'a Arc<FlowMeta>),
        Event(OtEvent),
        End(i64, &'a Arc<FlowMeta>, bool),
    }

    fn learn(policy: Arc<Policy>) -> Learner {
        let mut l = Learner::new(policy);
        feed(&mut |s| match s {
            Step::Start(t, f) => l.on_flow_start(Timestamp::from_secs_micros(t, 0), f),
            Step::Event(ev) => l.on_event(&ev),
            Step::End(t, f, r) => l.on_flow_end(Timestamp::from_secs_micros(t, 0), f, r, true, 3),
        });
        l
    }

    #[test]
    fn drafts_one_conduit_per_zone_pair_with_counts() {
        let l = learn(policy(""));
        let mut out = Vec::new();
        l.write_conduits_toml(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let expected = r#"# Conduits drafted by `otwatch learn` from the traffic it saw.
# Review every entry before including this file in the policy: it approves
# whatever the captures contained, including what should not be there.

# engineering -> cell-1: 1 flow, 3 packets, 2 PDUs, first seen 2026-11-20T14:22:20.000000Z
#   modbus: 1 flow, 3 packets, 2 PDUs, first seen 2026-11-20T14:22:20.000000Z
[[conduits]]
from = "engineering"
to = "cell-1"
protocols = ["modbus"]

# enterprise -> cell-1: 3 flows, 9 packets, 4 PDUs, first seen 2026-11-20T14:22:22.000000Z
#   modbus: 2 flows, 6 packets, 4 PDUs, first seen 2026-11-20T14:22:22.000000Z
#   tcp/80: 1 flow, 3 packets, 0 PDUs, first seen 2026-11-20T14:22:33.000000Z
[[conduits]]
from = "enterprise"
to = "cell-1"
protocols = ["modbus", "tcp/80"]

# unknown -> cell-1: 1 flow, 3 packets, 0 PDUs, first seen 2026-11-20T14:22:34.000000Z
#   udp/161: 1 flow, 3 packets, 0 PDUs, first seen 2026-11-20T14:22:34.000000Z
# Involves addresses in no zone: define a zone for them rather than approve "unknown".
# [[conduits]]
# from = "unknown"
# to = "cell-1"
# protocols = ["udp/161"]

# Addresses in no zone (1):
#   192.168.7.7
"#;
        assert_eq!(text, expected);
        assert_eq!(
            l.unzoned_addresses(),
            ["192.168.7.7".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn the_draft_included_in_the_policy_silences_new_conduit() {
        let mut draft = Vec::new();
        learn(policy("")).write_conduits_toml(&mut draft).unwrap();
        let draft = String::from_utf8(draft).unwrap();
        // Before: the engine alerts on the paths the draft approves.
        let run = |p: Arc<Policy>| {
            let mut e = Engine::new(p);
            let mut alerts = Vec::new();
            feed(&mut |s| match s {
                Step::Start(t, f) => {
                    e.on_flow_start(Timestamp::from_secs_micros(t, 0), f, &mut alerts)
                }
                Step::Event(ev) => e.on_event(&ev, &mut alerts),
                Step::End(t, f, r) => {
                    e.on_flow_end(Timestamp::from_secs_micros(t, 0), f, r, true, &mut alerts)
                }
            });
            alerts
                .iter()
                .filter(|a| a.kind == crate::alert::AlertKind::NewConduit)
                .map(|a| {
                    a.evidence["conduit_protocol"]
                        .as_str()
                        .unwrap_or("")
                        .to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(policy("")), ["modbus", "modbus", "tcp/80", "udp/161"]);
        // After: only the commented-out path from addresses in no zone remains.
        assert_eq!(run(policy(&draft)), ["udp/161"]);
    }

    #[test]
    fn nothing_between_zones_says_so() {
        let l = Learner::new(policy(""));
        let mut out = Vec::new();
        l.write_conduits_toml(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("# No traffic between two different zones was seen.\n"));
        assert!(parse_str(&format!("{POLICY}\n{text}"), Path::new("p.toml")).is_ok());
    }
}
