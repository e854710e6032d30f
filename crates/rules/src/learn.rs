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

    pub fn on_flow_end(
        &mut self,
        ts: Timestamp,
        flow: &Arc<FlowMeta>,
        recognised: bool,
        _handshake_completed: bool,
    ) {
        let state = self.flows.remove(flow);
        if recognised || state.is_some_and(|s| s.decided) {
            return;
        }
        let name = match flow.transport {
            Transport::Tcp => format!("tcp/{}", flow.dst_port),
            Transport::Udp => format!("udp/{}", flow.dst_port),
        };
        self.count_flow(ts, flow, name);
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
            let first = protocols
                .values()
                .map(|s| s.first)
                .min()
                .unwrap_or_default();
            writeln!(w)?;
            writeln!(
                w,
                "# {from} -> {to}: {flows} flow{}, {pdus} PDU{}, first seen {first}",
                plural(flows),
                plural(pdus)
            )?;
            for (p, s) in protocols {
                writeln!(
                    w,
                    "#   {p}: {} flow{}, {} PDU{}, first seen {}",
                    s.flows,
                    plural(s.flows),
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
