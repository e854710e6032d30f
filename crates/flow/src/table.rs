//! The flow table: flows keyed by their canonical 5-tuple, their orientation, their
//! application handler, and the events their PDUs become.
//!
//! Flows live in a slab (`Vec` of slots plus a free list) indexed by one `HashMap`
//! lookup per packet, and are threaded on intrusive least-recently-seen lists (one per
//! kind of timeout: active TCP, UDP, closed TCP), so that the idle sweep and eviction
//! look only at list tails: O(1) per packet, no allocation.
//!
//! # Architecture invariants
//!
//! * Time is packet time: timeouts never read the wall clock.
//! * Every buffer is bounded by [`FlowConfig`]; hitting a bound is counted, never a
//!   panic and never unbounded growth.
//! * A flow's events are emitted in the order its PDUs complete; `process` leaves the
//!   events of one packet sorted by `(flow_id, pdu_ordinal)`.

use std::collections::{HashMap, HashSet};

/// The flow map's hasher: foldhash is several times faster than SipHash on small keys
/// and still seeded per table at random, so flow keys chosen by an attacker cannot be
/// aimed at one bucket from outside.
type FlowHasher = foldhash::fast::RandomState;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use otwatch_event::{
    Direction, FlowMeta, FlowNote, FlowNoteKind, OtEvent, Pdu, PduSink, Timestamp, Transport,
};

use crate::app::{HandlerFactory, StreamHandler};
use crate::community_id::{community_id_v1, community_id_v1_packet};
use crate::config::{nanos, FlowConfig};
use crate::decode::{decode, decode_transport, DecodeError, TcpFlags, TcpSegment, L4};
use crate::defrag::Defragmenter;
use crate::stats::FlowStats;
use crate::tcp::{seq_lt, AppSink, Budget, TcpDir, Unseen};
use crate::PacketIn;

const NIL: u32 = u32::MAX;

/// The LRU lists: one per timeout.
const LIST_TCP: usize = 0;
const LIST_UDP: usize = 1;
const LIST_CLOSED: usize = 2;

/// A flow's 5-tuple with the smaller (address, port) first: the same for both
/// directions.
///
/// Addresses are held as 128-bit numbers (an IPv4 address in the low 32 bits, `v6`
/// telling the two kinds apart): the key is looked up for every packet, and hashing
/// two `u128` and one `u64` is a few instructions where `IpAddr` is hashed variant
/// and octets one write at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    lo: u128,
    hi: u128,
    lo_port: u16,
    hi_port: u16,
    v6: bool,
    /// UDP, or else TCP: only they make flows. A `bool` rather than the
    /// [`Transport`], whose other variants would make every probe's comparison and
    /// hash longer.
    udp: bool,
}

impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u128(self.lo);
        state.write_u128(self.hi);
        let transport = u64::from(self.udp);
        state.write_u64(
            u64::from(self.lo_port) << 32
                | u64::from(self.hi_port) << 16
                | u64::from(self.v6) << 8
                | transport,
        );
    }
}

/// An address as a number, and whether it is IPv6.
fn addr_bits(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(a) => (u128::from(u32::from(a)), false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

impl FlowKey {
    /// The key, and whether the packet was sent by the `lo` end.
    fn of(src: (IpAddr, u16), dst: (IpAddr, u16), transport: Transport) -> (FlowKey, bool) {
        let ((s, s6), (d, d6)) = (addr_bits(src.0), addr_bits(dst.0));
        // Both ends of one IP header are of one kind (the kind comes first only to
        // make the order total).
        let from_lo = (s6, s, src.1) <= (d6, d, dst.1);
        let ((lo, lo_port), (hi, hi_port)) = if from_lo {
            ((s, src.1), (d, dst.1))
        } else {
            ((d, dst.1), (s, src.1))
        };
        let key = FlowKey {
            lo,
            hi,
            lo_port,
            hi_port,
            v6: s6 || d6,
            udp: transport == Transport::Udp,
        };
        (key, from_lo)
    }

    fn transport(&self) -> Transport {
        if self.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        }
    }

    /// The `lo` end (`true`) or the `hi` end, as address and port.
    fn end(&self, lo: bool) -> (IpAddr, u16) {
        let (bits, port) = if lo {
            (self.lo, self.lo_port)
        } else {
            (self.hi, self.hi_port)
        };
        let ip = if self.v6 {
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            // An IPv4 key holds 32-bit numbers: the conversion cannot fail.
            IpAddr::V4(Ipv4Addr::from(u32::try_from(bits).unwrap_or_default()))
        };
        (ip, port)
    }
}

/// The application layer of a flow.
#[derive(Debug)]
enum App<H> {
    /// No payload seen yet. `lost`: per direction (`Direction::index`), whether a gap
    /// lost bytes before (the data after a lost first segment); the handler the flow
    /// gets hears of it before its first bytes.
    Unclassified {
        lost: [bool; 2],
    },
    /// No dissector (or the flow ended): payload is skipped.
    Skip,
    Active(H),
}

/// What a flow needs to turn PDUs into events.
#[derive(Debug)]
struct Emit {
    meta: Arc<FlowMeta>,
    flow_id: u64,
    /// PDUs per direction so far (`flow_ordinal`).
    ordinals: [u64; 2],
    /// The packet of the last event, and how many events it completed on this flow.
    packet: u64,
    in_packet: u32,
    /// A request of this flow has been handed to the PDU filter.
    request_seen: bool,
    /// A PDU was recognised on this flow: one that is not a stretch of skipped bytes
    /// ([`Pdu::is_skipped_bytes`]).
    recognised: bool,
}

/// Where a PDU stands in its flow, for a [`PduFilter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduPlace {
    /// No recognised PDU of the flow, in either direction, came before this one
    /// (events of skipped bytes do not count: see [`Pdu::is_skipped_bytes`]).
    pub first_of_flow: bool,
    /// No request of the flow came before this one.
    pub no_request_before: bool,
}

/// Decides whether a PDU becomes an event. A PDU turned away is still counted (per
/// protocol, anomalous or not, and as filtered), and keeps its place: the events
/// that are made carry the ordinals they would carry without a filter.
///
/// The dissectors ask it too, before a PDU is complete (see [`PduSink::wants`]), and
/// leave out of the PDUs it turns away what only an event shows: so it must decide
/// from `is_response`, `operation`, `anomalies`, the protocol and the place alone,
/// never from values or direction.
pub type PduFilter = fn(&Pdu, PduPlace) -> bool;

/// PDU counters of one `Out`, added to the table's [`FlowStats`] when it is done.
#[derive(Debug, Default, Clone, Copy)]
struct PduTally {
    /// All PDUs: a packet with none (a bare ACK, a handshake) leaves the stats alone.
    pdus: u64,
    by_protocol: [u64; otwatch_event::Protocol::ALL.len()],
    anomalous: [u64; otwatch_event::Protocol::ALL.len()],
    filtered: u64,
}

impl PduTally {
    fn add_to(&self, stats: &mut FlowStats) {
        if self.pdus == 0 {
            return;
        }
        stats.pdus += self.pdus;
        for (s, n) in stats.pdus_by_protocol.iter_mut().zip(self.by_protocol) {
            *s += n;
        }
        for (s, n) in stats.anomalous_by_protocol.iter_mut().zip(self.anomalous) {
            *s += n;
        }
        stats.pdus_filtered += self.filtered;
    }
}

#[derive(Debug)]
struct Flow<H> {
    key: FlowKey,
    /// Packets per direction (indexed by `Direction::index()`) and payload bytes, for
    /// the flow's end note.
    packets: [u64; 2],
    bytes: u64,
    /// The initiator is the `lo` end of the key.
    client_is_lo: bool,
    last_seen: i64,
    ended: bool,
    app: App<H>,
    emit: Emit,
    /// Per direction, indexed by `Direction::index()`; unused for UDP.
    tcp: [TcpDir; 2],
    list: usize,
    prev: u32,
    next: u32,
}

impl<H> Flow<H> {
    fn dir(&self, from_lo: bool) -> Direction {
        if from_lo == self.client_is_lo {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }
}

/// The packet being processed: where its events go.
struct Out<'a> {
    /// The current packet's time.
    ts: Timestamp,
    /// The time of the packet that completed the PDUs delivered now, when it is not
    /// the current one (segments held out of order, delivered after a gap).
    pdu_ts: Option<Timestamp>,
    index: u64,
    events: &'a mut Vec<OtEvent>,
    filter: Option<PduFilter>,
    tally: PduTally,
}

/// One flow's PDUs on their way out of its handler: each becomes an event (or is
/// counted and filtered) as it is pushed.
struct Emitter<'e, 'o> {
    emit: &'e mut Emit,
    out: &'e mut Out<'o>,
}

impl Emitter<'_, '_> {
    fn place(&self) -> PduPlace {
        PduPlace {
            first_of_flow: !self.emit.recognised,
            no_request_before: !self.emit.request_seen,
        }
    }
}

impl PduSink for Emitter<'_, '_> {
    fn wants(&self, pdu: &Pdu) -> bool {
        self.out.filter.is_none_or(|keep| keep(pdu, self.place()))
    }

    fn push(&mut self, pdu: Pdu) {
        let place = self.place();
        let (emit, out) = (&mut *self.emit, &mut *self.out);
        if emit.packet != out.index {
            emit.packet = out.index;
            emit.in_packet = 0;
        }
        emit.request_seen |= !pdu.is_response;
        if !emit.recognised {
            emit.recognised = !pdu.is_skipped_bytes();
        }
        let ordinal = emit.ordinals.get_mut(pdu.direction.index());
        let flow_ordinal = ordinal.map_or(0, |o| {
            *o += 1;
            *o - 1
        });
        let pdu_ordinal = emit.in_packet;
        emit.in_packet = emit.in_packet.saturating_add(1);
        let protocol = pdu.protocol() as usize;
        out.tally.pdus += 1;
        if let Some(n) = out.tally.by_protocol.get_mut(protocol) {
            *n += 1;
        }
        if !pdu.anomalies.is_empty() {
            if let Some(n) = out.tally.anomalous.get_mut(protocol) {
                *n += 1;
            }
        }
        if out.filter.is_some_and(|keep| !keep(&pdu, place)) {
            out.tally.filtered += 1;
            return;
        }
        out.events.push(OtEvent {
            timestamp: out.pdu_ts.unwrap_or(out.ts),
            packet_index: out.index,
            flow_id: emit.flow_id,
            pdu_ordinal,
            flow_ordinal,
            flow: Arc::clone(&emit.meta),
            pdu,
        });
    }
}

/// The application side of one flow, as the TCP reassembly sees it.
struct Sink<'a, 'o, F: HandlerFactory> {
    app: &'a mut App<F::Handler>,
    factory: &'a mut F,
    emit: &'a mut Emit,
    out: &'a mut Out<'o>,
    /// What the packet being handled acknowledged, for a handler its own data creates.
    acked: Acked,
}

/// The acknowledgment signals of one packet (see [`StreamHandler::on_acked_beyond`]
/// and [`StreamHandler::on_unseen_acked`]), kept while the flow has no handler yet: a
/// flow's first data often comes in the very segment that acknowledges bytes the
/// capture lost (a lost first request, and its answer).
#[derive(Debug, Default, Clone, Copy)]
struct Acked {
    beyond: Option<Direction>,
    unseen: Option<Direction>,
}

impl<'o, F: HandlerFactory> Sink<'_, 'o, F> {
    /// The handler, if the flow has one, and where its PDUs go.
    fn handler(&mut self) -> Option<(&mut F::Handler, Emitter<'_, 'o>)> {
        match self.app {
            App::Active(h) => Some((
                h,
                Emitter {
                    emit: self.emit,
                    out: self.out,
                },
            )),
            App::Unclassified { .. } | App::Skip => None,
        }
    }
}

impl<F: HandlerFactory> AppSink for Sink<'_, '_, F> {
    fn data(&mut self, dir: Direction, data: &[u8]) -> usize {
        if let App::Unclassified { lost } = *self.app {
            *self.app = match self.factory.classify(&self.emit.meta, dir, data) {
                Some(h) => App::Active(h),
                None => App::Skip,
            };
            // The new handler hears what the capture lost before its first bytes.
            let acked = std::mem::take(&mut self.acked);
            if let Some((h, mut pdus)) = self.handler() {
                for lost_dir in [Direction::ToServer, Direction::ToClient] {
                    if lost.get(lost_dir.index()).copied().unwrap_or(false) {
                        h.on_gap(lost_dir, &mut pdus);
                    }
                }
                if let Some(d) = acked.beyond {
                    h.on_acked_beyond(d);
                }
                if let Some(d) = acked.unseen {
                    h.on_unseen_acked(d);
                }
            }
        }
        match self.handler() {
            Some((h, mut pdus)) => h.on_data(dir, data, &mut pdus).min(data.len()),
            None => data.len(),
        }
    }

    fn gap(&mut self, dir: Direction) {
        if let App::Unclassified { lost } = self.app {
            if let Some(l) = lost.get_mut(dir.index()) {
                *l = true;
            }
        }
        if let Some((h, mut pdus)) = self.handler() {
            h.on_gap(dir, &mut pdus);
        }
    }

    fn set_time(&mut self, ts: Option<Timestamp>) {
        self.out.pdu_ts = ts;
    }

    /// See [`StreamHandler::on_unseen_acked`].
    fn unseen_acked(&mut self, dir: Direction) {
        match self.handler() {
            Some((h, _)) => h.on_unseen_acked(dir),
            None => self.acked.unseen = Some(dir),
        }
    }
}

impl<F: HandlerFactory> Sink<'_, '_, F> {
    /// See [`StreamHandler::on_acked_beyond`].
    fn acked_beyond(&mut self, dir: Direction) {
        match self.handler() {
            Some((h, _)) => h.on_acked_beyond(dir),
            None => self.acked.beyond = Some(dir),
        }
    }
}

/// Why a flow ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// FIN from both sides, or RST: the entry stays to absorb late packets.
    Closed,
    TimedOut,
    Evicted,
    /// End of input.
    Finished,
}

/// Flows of one worker.
pub struct FlowTable<F: HandlerFactory> {
    flows: Flows<F::Handler>,
    env: Env<F>,
    defrag: Defragmenter,
    pdu_filter: Option<PduFilter>,
    /// Address pairs and protocols of packets that make no flow (ICMP, ...) already
    /// noted: the first packet of each is noted for `new_asset`, not every ping.
    /// Forgotten all at once when [`MAX_UNFLOWED`] are held (the rule engine
    /// remembers the addresses it reported).
    unflowed: HashSet<(IpAddr, IpAddr, u8), FlowHasher>,
}

/// Bound of [`FlowTable::unflowed`].
const MAX_UNFLOWED: usize = 4096;

/// The flows: a slab indexed by the map, with a free list and the recency lists.
struct Flows<H> {
    map: HashMap<FlowKey, u32, FlowHasher>,
    slots: Vec<Option<Flow<H>>>,
    free: Vec<u32>,
    /// (head = most recently seen, tail) per list.
    lists: [(u32, u32); 3],
}

impl<H> Flows<H> {
    fn get_mut(&mut self, idx: u32) -> Option<&mut Flow<H>> {
        link_of(&mut self.slots, idx)
    }
}

/// What a flow's end reaches besides the flow: the handler factory, the settings,
/// the counters and the bytes buffered by every flow.
struct Env<F> {
    factory: F,
    config: FlowConfig,
    stats: FlowStats,
    buffered_total: usize,
    /// Flow starts and ends not yet taken by `take_notes`.
    notes: Vec<FlowNote>,
}

impl<F: HandlerFactory> std::fmt::Debug for FlowTable<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowTable")
            .field("flows", &self.flows.map.len())
            .field("buffered_total", &self.env.buffered_total)
            .field("stats", &self.env.stats)
            .finish_non_exhaustive()
    }
}

impl<F: HandlerFactory> FlowTable<F> {
    pub fn new(config: FlowConfig, factory: F) -> Self {
        FlowTable {
            flows: Flows {
                map: HashMap::default(),
                slots: Vec::new(),
                free: Vec::new(),
                lists: [(NIL, NIL); 3],
            },
            env: Env {
                factory,
                config,
                stats: FlowStats::default(),
                buffered_total: 0,
                notes: Vec::new(),
            },
            defrag: Defragmenter::default(),
            pdu_filter: None,
            unflowed: HashSet::default(),
        }
    }

    /// A packet of an IP protocol that makes no flow: a [`FlowNoteKind::Packet`] note
    /// for its address pair and protocol, the first time. ICMP's type and code stand
    /// for its ports, as in Zeek and Community ID.
    #[inline(never)]
    fn note_packet(&mut self, src: IpAddr, dst: IpAddr, ip_proto: u8, payload: &[u8], o: &Out<'_>) {
        let pair = if src <= dst { (src, dst) } else { (dst, src) };
        if self.unflowed.len() >= MAX_UNFLOWED {
            self.unflowed.clear();
        }
        if !self.unflowed.insert((pair.0, pair.1, ip_proto)) {
            return;
        }
        let transport = Transport::of_ip_proto(ip_proto);
        let icmp = match (transport, payload) {
            (Transport::Icmp | Transport::Icmpv6, [t, code, ..]) => Some((*t, *code)),
            _ => None,
        };
        let (src_port, dst_port) = icmp.map_or((0, 0), |(t, code)| (u16::from(t), u16::from(code)));
        let meta = FlowMeta {
            src_ip: src,
            src_port,
            dst_ip: dst,
            dst_port,
            transport,
            community_id: community_id_v1_packet(src, dst, ip_proto, icmp, 0),
            handshake_seen: false,
        };
        self.env.notes.push(FlowNote {
            timestamp: o.ts,
            packet_index: o.index,
            flow_id: o.index,
            flow: Arc::new(meta),
            kind: FlowNoteKind::Packet,
        });
    }

    /// Moves the flow starts and ends noted since the last call to `into`, in order
    /// (see [`FlowNote::order_key`]).
    pub fn take_notes(&mut self, into: &mut Vec<FlowNote>) {
        into.append(&mut self.env.notes);
    }

    /// Makes events only of the PDUs `filter` keeps (all of them with `None`, the
    /// default). For consumers that need only some events: PDUs are still counted.
    pub fn set_pdu_filter(&mut self, filter: Option<PduFilter>) {
        self.pdu_filter = filter;
    }

    pub fn stats(&self) -> &FlowStats {
        &self.env.stats
    }

    pub fn factory_mut(&mut self) -> &mut F {
        &mut self.env.factory
    }

    pub fn config(&self) -> &FlowConfig {
        &self.env.config
    }

    /// Bytes buffered by TCP reassembly right now (capacity of the buffers).
    pub fn buffered_bytes(&self) -> usize {
        self.env.buffered_total
    }

    /// Flows in the table, ended ones still absorbing late packets included.
    pub fn len(&self) -> usize {
        self.flows.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.map.is_empty()
    }

    /// Decodes and processes one packet; pushes the OtEvents it completes to `out`, in
    /// order.
    pub fn process(&mut self, pkt: &PacketIn<'_>, out: &mut Vec<OtEvent>) {
        self.env.stats.packets += 1;
        self.env.stats.bytes += pkt.data.len() as u64;
        let start = out.len();
        let decoded = match decode(pkt.linktype, pkt.data) {
            Ok(d) => d,
            Err(e) => {
                self.count_error(e);
                return;
            }
        };
        let mut o = Out {
            ts: pkt.ts,
            pdu_ts: None,
            index: pkt.index,
            events: out,
            filter: self.pdu_filter,
            tally: PduTally::default(),
        };
        let limit = self.env.config.sweep_per_packet;
        Self::sweep(&mut self.flows, &mut self.env, &mut o, limit);
        match decoded.l4 {
            L4::Fragment(frag) => {
                let done = self.defrag.add(
                    &self.env.config,
                    pkt.ts,
                    decoded.src,
                    decoded.dst,
                    &frag,
                    &mut self.env.stats,
                );
                if let Some(buf) = done {
                    match decode_transport(frag.ip_proto, &buf) {
                        Ok(l4) => self.transport(decoded.src, decoded.dst, l4, &mut o),
                        Err(e) => self.count_error(e),
                    }
                    self.defrag.recycle(buf);
                }
            }
            l4 => self.transport(decoded.src, decoded.dst, l4, &mut o),
        }
        o.tally.add_to(&mut self.env.stats);
        if let Some(events) = out.get_mut(start..) {
            // Unique keys: an unstable sort is deterministic and does not allocate.
            events.sort_unstable_by_key(|e| (e.flow_id, e.pdu_ordinal));
        }
    }

    /// A clock tick: ends every flow idle past its timeout at `ts`, as if just before
    /// packet `index`. Its events and notes carry `index` and `ts`.
    ///
    /// The packet source sends the same ticks, at the same places in the packet
    /// sequence, to every worker, so which flows a tick ends does not depend on how
    /// flows are spread over workers (`replay` stays byte-identical for any
    /// `--threads`); in `live` the ticks also come while the network is quiet, so idle
    /// flows end on time.
    pub fn tick(&mut self, index: u64, ts: Timestamp, out: &mut Vec<OtEvent>) {
        let start = out.len();
        let mut o = Out {
            ts,
            pdu_ts: None,
            index,
            events: out,
            filter: self.pdu_filter,
            tally: PduTally::default(),
        };
        Self::sweep(&mut self.flows, &mut self.env, &mut o, usize::MAX);
        let tally = o.tally;
        tally.add_to(&mut self.env.stats);
        self.defrag
            .expire(&self.env.config, ts.as_nanos(), &mut self.env.stats);
        if let Some(events) = out.get_mut(start..) {
            events.sort_unstable_by_key(|e| (e.flow_id, e.pdu_ordinal));
        }
    }

    /// End of input: ends every flow (handler.on_end), in flow_id order, events with
    /// packet_index = u64::MAX.
    pub fn finish(&mut self, out: &mut Vec<OtEvent>) {
        let mut order: Vec<(u64, u32)> = self
            .flows
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|f| (f.emit.flow_id, i as u32)))
            .collect();
        order.sort_unstable();
        for (_, idx) in order {
            let ts = self
                .slot(idx)
                .map_or(Timestamp::default(), |f| Timestamp::from_nanos(f.last_seen));
            let mut o = Out {
                ts,
                pdu_ts: None,
                index: u64::MAX,
                events: out,
                filter: self.pdu_filter,
                tally: PduTally::default(),
            };
            Self::remove(&mut self.flows, &mut self.env, &mut o, idx, End::Finished);
            let tally = o.tally;
            tally.add_to(&mut self.env.stats);
        }
    }

    fn count_error(&mut self, e: DecodeError) {
        match e {
            DecodeError::NotIp => self.env.stats.non_ip += 1,
            DecodeError::Truncated(_) => {
                self.env.stats.decode_errors += 1;
                self.env.stats.decode_truncated += 1;
            }
            DecodeError::Malformed(_) => {
                self.env.stats.decode_errors += 1;
                self.env.stats.decode_malformed += 1;
            }
        }
    }

    fn slot(&self, idx: u32) -> Option<&Flow<F::Handler>> {
        self.flows.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn transport(&mut self, src: IpAddr, dst: IpAddr, l4: L4<'_>, o: &mut Out<'_>) {
        let now = o.ts.as_nanos();
        match l4 {
            L4::Tcp(seg) => {
                let (key, from_lo) =
                    FlowKey::of((src, seg.src_port), (dst, seg.dst_port), Transport::Tcp);
                // A lone RST does not make a flow.
                let create = !seg.flags.contains(TcpFlags::RST) || !seg.payload.is_empty();
                if let Some(idx) = self.lookup(key, from_lo, Some(&seg), None, create, o) {
                    self.tcp(idx, from_lo, &seg, now, o);
                }
            }
            L4::Udp(udp) => {
                let (key, from_lo) =
                    FlowKey::of((src, udp.src_port), (dst, udp.dst_port), Transport::Udp);
                let datagram = Some(udp.payload);
                let Some(idx) = self.lookup(key, from_lo, None, datagram, true, o) else {
                    return;
                };
                self.count(idx, from_lo, udp.payload.len());
                self.touch(idx, now);
                let Some(flow) = self.flows.get_mut(idx) else {
                    return;
                };
                if udp.payload.is_empty() {
                    return;
                }
                let dir = flow.dir(from_lo);
                // A datagram goes whole; whatever the handler leaves is lost (no
                // buffering for UDP).
                let mut sink = Sink::<F> {
                    app: &mut flow.app,
                    factory: &mut self.env.factory,
                    emit: &mut flow.emit,
                    out: o,
                    acked: Acked::default(),
                };
                sink.data(dir, udp.payload);
            }
            L4::Other { ip_proto, payload } => {
                self.env.stats.other_ip += 1;
                self.note_packet(src, dst, ip_proto, payload, o);
            }
            // Fragments were reassembled by the caller.
            L4::Fragment(_) => {}
        }
    }

    /// Finds the packet's flow, or makes one: one hash lookup for a packet of a known
    /// flow. Ends the old flow first when it idled past its timeout, or when a packet
    /// shows that a closed flow's 5-tuple is in use again.
    fn lookup(
        &mut self,
        key: FlowKey,
        from_lo: bool,
        seg: Option<&TcpSegment<'_>>,
        datagram: Option<&[u8]>,
        create: bool,
        o: &mut Out<'_>,
    ) -> Option<u32> {
        let now = o.ts.as_nanos();
        if let Some(&idx) = self.flows.map.get(&key) {
            let end = match self.slot(idx) {
                None => None,
                Some(f) if now.saturating_sub(f.last_seen) > self.timeout(f) => {
                    Some(if f.ended { End::Closed } else { End::TimedOut })
                }
                Some(f) => seg.and_then(|s| starts_anew(f, from_lo, s)),
            };
            match end {
                None => return Some(idx),
                Some(why) => Self::remove(&mut self.flows, &mut self.env, o, idx, why),
            }
        }
        create.then(|| self.create(key, from_lo, seg, datagram, o))
    }

    fn timeout(&self, f: &Flow<F::Handler>) -> i64 {
        nanos(match (f.ended, f.key.transport()) {
            (true, _) => self.env.config.tcp_closed_timeout,
            (false, Transport::Tcp) => self.env.config.tcp_idle_timeout,
            // Only TCP and UDP make flows.
            (false, _) => self.env.config.udp_idle_timeout,
        })
    }

    fn create(
        &mut self,
        key: FlowKey,
        from_lo: bool,
        seg: Option<&TcpSegment<'_>>,
        datagram: Option<&[u8]>,
        o: &mut Out<'_>,
    ) -> u32 {
        if self.flows.map.len() >= self.env.config.max_flows.max(1) {
            self.evict(o);
        }
        let (sender, receiver) = (key.end(from_lo), key.end(!from_lo));
        let syn = seg.is_some_and(|s| s.flags.contains(TcpFlags::SYN));
        let ack = seg.is_some_and(|s| s.flags.contains(TcpFlags::ACK));
        // A datagram protocol that names its roles (DNP3's DIR bit) decides first.
        let hinted = datagram.and_then(|d| self.env.factory.datagram_sender_is_client(d));
        let (sender_is_client, handshake_seen) = match (syn, ack, hinted) {
            (true, false, _) => (true, true),
            (true, true, _) => (false, true),
            (_, _, Some(client)) => (client, false),
            _ => (
                self.sender_is_client(key.transport(), sender.1, receiver.1),
                false,
            ),
        };
        let (client, server) = if sender_is_client {
            (sender, receiver)
        } else {
            (receiver, sender)
        };
        let meta = FlowMeta {
            src_ip: client.0,
            src_port: client.1,
            dst_ip: server.0,
            dst_port: server.1,
            transport: key.transport(),
            community_id: community_id_v1(
                client.0,
                client.1,
                server.0,
                server.1,
                key.transport().ip_proto(),
                0,
            ),
            handshake_seen,
        };
        tracing::trace!(flow_id = o.index, ?meta, "new flow");
        let meta = Arc::new(meta);
        let list = match key.transport() {
            Transport::Tcp => LIST_TCP,
            _ => LIST_UDP,
        };
        self.env.notes.push(FlowNote {
            timestamp: o.ts,
            packet_index: o.index,
            flow_id: o.index,
            flow: Arc::clone(&meta),
            kind: FlowNoteKind::Start,
        });
        let flow = Flow {
            key,
            packets: [0; 2],
            bytes: 0,
            client_is_lo: sender_is_client == from_lo,
            last_seen: o.ts.as_nanos(),
            ended: false,
            app: App::Unclassified { lost: [false; 2] },
            emit: Emit {
                meta,
                flow_id: o.index,
                ordinals: [0; 2],
                packet: u64::MAX,
                in_packet: 0,
                request_seen: false,
                recognised: false,
            },
            tcp: [TcpDir::default(), TcpDir::default()],
            list,
            prev: NIL,
            next: NIL,
        };
        let idx = match self.flows.free.pop() {
            Some(i) => {
                if let Some(s) = self.flows.slots.get_mut(i as usize) {
                    *s = Some(flow);
                }
                i
            }
            None => {
                self.flows.slots.push(Some(flow));
                (self.flows.slots.len() - 1) as u32
            }
        };
        self.flows.map.insert(key, idx);
        push_front(&mut self.flows.slots, &mut self.flows.lists, idx);
        self.env.stats.flows_created += 1;
        self.env.stats.flows_active += 1;
        idx
    }

    /// No handshake seen: the responder is the side on a well-known port; if both or
    /// neither are, the lower port; equal ports, the sender is taken as the client.
    fn sender_is_client(&self, t: Transport, sender_port: u16, receiver_port: u16) -> bool {
        let s = self.env.config.is_well_known(t, sender_port);
        let r = self.env.config.is_well_known(t, receiver_port);
        match (s, r) {
            (false, true) => true,
            (true, false) => false,
            _ => receiver_port <= sender_port,
        }
    }

    fn count(&mut self, idx: u32, from_lo: bool, payload: usize) {
        if let Some(f) = self.flows.get_mut(idx) {
            let dir = f.dir(from_lo).index();
            if let Some(p) = f.packets.get_mut(dir) {
                *p += 1;
            }
            f.bytes += payload as u64;
        }
    }

    fn touch(&mut self, idx: u32, now: i64) {
        if let Some(f) = self.flows.get_mut(idx) {
            f.last_seen = f.last_seen.max(now);
        }
        unlink(&mut self.flows.slots, &mut self.flows.lists, idx);
        push_front(&mut self.flows.slots, &mut self.flows.lists, idx);
    }

    fn tcp(&mut self, idx: u32, from_lo: bool, seg: &TcpSegment<'_>, now: i64, o: &mut Out<'_>) {
        let rst = seg.flags.contains(TcpFlags::RST);
        let forged = rst
            && self.slot(idx).is_some_and(|f| {
                let sender = f.tcp.get(f.dir(from_lo).index());
                !f.ended && sender.is_some_and(|d| !d.accepts_rst(seg.seq))
            });
        if forged {
            // Not the sender's: the endpoints drop it, data and all, and so does the
            // flow (it neither counts nor keeps the flow from idling out).
            self.env.stats.tcp_rst_ignored += 1;
            return;
        }
        self.count(idx, from_lo, seg.payload.len());
        self.touch(idx, now);
        let Some(flow) = self.flows.get_mut(idx) else {
            return;
        };
        let dir = flow.dir(from_lo);
        if flow.ended {
            // Late ACKs and retransmissions of a closed flow.
            if !seg.payload.is_empty() {
                self.env.stats.tcp_retransmitted_segments += 1;
            }
            return;
        }
        let mut b = Budget {
            cfg: &self.env.config,
            now: o.ts,
            total: &mut self.env.buffered_total,
            stats: &mut self.env.stats,
            acks_unseen: false,
        };
        let [d0, d1] = &mut flow.tcp;
        let (this, other) = match dir {
            Direction::ToServer => (d0, d1),
            Direction::ToClient => (d1, d0),
        };
        let mut sink = Sink::<F> {
            app: &mut flow.app,
            factory: &mut self.env.factory,
            emit: &mut flow.emit,
            out: o,
            acked: Acked::default(),
        };
        if matches!(sink.app, App::Skip) {
            // No dissector: no reassembly, only where the stream is and when it ends.
            this.skim(seg.seq, seg.flags, seg.payload.len());
        } else if !rst {
            let unseen = if seg.flags.contains(TcpFlags::ACK) {
                other.peer_ack(dir.reverse(), seg.ack, &mut b, &mut sink)
            } else {
                Unseen::No
            };
            if unseen == Unseen::AckedFurther {
                sink.acked_beyond(dir.reverse());
            }
            if unseen != Unseen::No && !seg.payload.is_empty() {
                sink.unseen_acked(dir.reverse());
                b.acks_unseen = true;
            }
            this.segment(dir, seg.seq, seg.flags, seg.payload, &mut b, &mut sink);
        }
        let closed = rst || (this.is_closed() && other.is_closed());
        if closed {
            Self::end(flow, &mut self.env, o, End::Closed);
            unlink(&mut self.flows.slots, &mut self.flows.lists, idx);
            if let Some(f) = self.flows.get_mut(idx) {
                f.list = LIST_CLOSED;
            }
            push_front(&mut self.flows.slots, &mut self.flows.lists, idx);
        }
    }

    /// Ends a flow: every hole becomes a gap, held data is delivered, the handler's
    /// `on_end` runs, buffers are freed.
    fn end(flow: &mut Flow<F::Handler>, env: &mut Env<F>, o: &mut Out<'_>, why: End) {
        let Env {
            factory,
            config,
            stats,
            buffered_total: total,
            notes,
        } = env;
        if flow.ended {
            return;
        }
        flow.ended = true;
        stats.flows_active = stats.flows_active.saturating_sub(1);
        stats.flows_ended += 1;
        match why {
            End::TimedOut => stats.flows_timed_out += 1,
            End::Evicted => stats.flows_evicted += 1,
            End::Closed | End::Finished => {}
        }
        let mut b = Budget {
            cfg: config,
            now: o.ts,
            total,
            stats,
            acks_unseen: false,
        };
        let [d0, d1] = &mut flow.tcp;
        let mut sink = Sink::<F> {
            app: &mut flow.app,
            factory,
            emit: &mut flow.emit,
            out: o,
            acked: Acked::default(),
        };
        if !matches!(sink.app, App::Skip) {
            d0.flush(Direction::ToServer, &mut b, &mut sink);
            d1.flush(Direction::ToClient, &mut b, &mut sink);
        }
        if let Some((h, mut pdus)) = sink.handler() {
            h.on_end(&mut pdus);
        }
        *sink.app = App::Skip;
        d0.release(b.total);
        d1.release(b.total);
        let [to_server, to_client] = flow.packets;
        let meta = &flow.emit.meta;
        notes.push(FlowNote {
            timestamp: o.ts,
            packet_index: o.index,
            flow_id: flow.emit.flow_id,
            flow: Arc::clone(meta),
            kind: FlowNoteKind::End {
                recognised: flow.emit.recognised,
                // SYN (and SYN-ACK) opened the flow, the responder answered, and the
                // initiator sent again (its ACK).
                handshake_completed: meta.transport == Transport::Tcp
                    && meta.handshake_seen
                    && to_client > 0
                    && to_server > 1,
                packets: to_server + to_client,
                bytes: flow.bytes,
            },
        });
    }

    /// Ends (if needed) and forgets a flow.
    fn remove(
        flows: &mut Flows<F::Handler>,
        env: &mut Env<F>,
        o: &mut Out<'_>,
        idx: u32,
        why: End,
    ) {
        unlink(&mut flows.slots, &mut flows.lists, idx);
        let Some(mut flow) = flows.slots.get_mut(idx as usize).and_then(Option::take) else {
            return;
        };
        Self::end(&mut flow, env, o, why);
        flows.map.remove(&flow.key);
        flows.free.push(idx);
    }

    /// Ends flows idle past their timeout, looking at no more than `limit` list tails
    /// per list.
    fn sweep(flows: &mut Flows<F::Handler>, env: &mut Env<F>, o: &mut Out<'_>, limit: usize) {
        let now = o.ts.as_nanos();
        for (list, timeout) in [
            (LIST_TCP, env.config.tcp_idle_timeout),
            (LIST_UDP, env.config.udp_idle_timeout),
            (LIST_CLOSED, env.config.tcp_closed_timeout),
        ] {
            let timeout = nanos(timeout);
            for _ in 0..limit {
                let tail = flows.lists.get(list).map_or(NIL, |l| l.1);
                let expired = flows
                    .slots
                    .get(tail as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|f| now.saturating_sub(f.last_seen) > timeout);
                if !expired {
                    break;
                }
                let why = if list == LIST_CLOSED {
                    End::Closed
                } else {
                    End::TimedOut
                };
                Self::remove(flows, env, o, tail, why);
            }
        }
    }

    /// Makes room: the closed flow seen least recently, else the active one.
    fn evict(&mut self, o: &mut Out<'_>) {
        let tail = |l: usize| self.flows.lists.get(l).map_or(NIL, |x| x.1);
        let seen = |i: u32| self.slot(i).map(|f| f.last_seen);
        let victim = if tail(LIST_CLOSED) != NIL {
            tail(LIST_CLOSED)
        } else {
            match (seen(tail(LIST_TCP)), seen(tail(LIST_UDP))) {
                (Some(t), Some(u)) if u < t => tail(LIST_UDP),
                (Some(_), _) => tail(LIST_TCP),
                _ => tail(LIST_UDP),
            }
        };
        if victim == NIL {
            return;
        }
        tracing::debug!(
            victim,
            "flow table full: evicting the least recently seen flow"
        );
        Self::remove(&mut self.flows, &mut self.env, o, victim, End::Evicted);
    }
}

/// Whether a TCP segment shows that its flow is a new connection on the same 5-tuple:
/// a SYN with another ISN, or new data after the flow closed.
fn starts_anew<H>(f: &Flow<H>, from_lo: bool, seg: &TcpSegment<'_>) -> Option<End> {
    let d = f.tcp.get(f.dir(from_lo).index())?;
    let syn_only = seg.flags.contains(TcpFlags::SYN) && !seg.flags.contains(TcpFlags::ACK);
    if syn_only && d.is_synced() && d.syn_seq() != Some(seg.seq) {
        return Some(End::Closed);
    }
    if f.ended && !seg.payload.is_empty() {
        let end = seg.seq.wrapping_add(seg.payload.len() as u32);
        if !d.is_synced() || seq_lt(d.next_seq(), end) {
            return Some(End::Closed);
        }
    }
    None
}

fn link_of<H>(slots: &mut [Option<Flow<H>>], idx: u32) -> Option<&mut Flow<H>> {
    slots.get_mut(idx as usize).and_then(Option::as_mut)
}

/// Puts a flow at the head (most recent) of its list.
fn push_front<H>(slots: &mut [Option<Flow<H>>], lists: &mut [(u32, u32); 3], idx: u32) {
    let Some(f) = link_of(slots, idx) else { return };
    let list = f.list;
    let Some(l) = lists.get_mut(list) else { return };
    let old_head = l.0;
    f.prev = NIL;
    f.next = old_head;
    l.0 = idx;
    if l.1 == NIL {
        l.1 = idx;
    }
    if let Some(h) = link_of(slots, old_head) {
        h.prev = idx;
    }
}

/// Takes a flow out of its list.
fn unlink<H>(slots: &mut [Option<Flow<H>>], lists: &mut [(u32, u32); 3], idx: u32) {
    let Some(f) = link_of(slots, idx) else { return };
    let (prev, next, list) = (f.prev, f.next, f.list);
    f.prev = NIL;
    f.next = NIL;
    let Some(l) = lists.get_mut(list) else { return };
    if l.0 == idx {
        l.0 = next;
    }
    if l.1 == idx {
        l.1 = prev;
    }
    if let Some(p) = link_of(slots, prev) {
        p.next = next;
    }
    if let Some(n) = link_of(slots, next) {
        n.prev = prev;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::LinkType;
    use otwatch_event::{Anomalies, ModbusInfo, Native, Operation, Protocol};
    use Direction::{ToClient as C, ToServer as S};

    /// Consumes fixed-size `pdu`-byte records; reports each as a PDU whose `values`
    /// are its bytes, and gaps and ends as PDUs named "gap" and "end".
    #[derive(Debug)]
    struct Rec {
        pdu: usize,
        /// Consume at most this many bytes of a UDP datagram (tests "loses the rest").
        take: Option<usize>,
        /// Consume every whole record in one call, asking the sink before each push
        /// whether it is wanted (the answers go to `ASKED`).
        ask: bool,
    }

    static ASKED: std::sync::Mutex<Vec<bool>> = std::sync::Mutex::new(Vec::new());
    /// The directions of the `on_acked_beyond` calls, in order.
    static BEYOND: std::sync::Mutex<Vec<Direction>> = std::sync::Mutex::new(Vec::new());

    fn marker(dir: Direction, function: &'static str, bytes: &[u8]) -> Pdu {
        Pdu {
            direction: dir,
            // The server's records are answers.
            is_response: dir == C,
            operation: Operation::Other,
            anomalies: Anomalies::empty(),
            native: Native::Modbus(ModbusInfo {
                function,
                values: Some(bytes.iter().map(|&b| u16::from(b)).collect()),
                ..ModbusInfo::default()
            }),
        }
    }

    impl StreamHandler for Rec {
        fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
            if let Some(n) = self.take {
                let n = n.min(data.len());
                out.push(marker(dir, "pdu", &data[..n]));
                return n;
            }
            if self.ask {
                let records = data.chunks_exact(self.pdu);
                for r in records {
                    let p = marker(dir, "pdu", r);
                    ASKED.lock().unwrap().push(out.wants(&p));
                    out.push(p);
                }
                return data.len() - data.len() % self.pdu;
            }
            // Consumes one record per call: the flow layer must call again.
            if data.len() < self.pdu {
                return 0;
            }
            out.push(marker(dir, "pdu", &data[..self.pdu]));
            self.pdu
        }
        fn on_gap(&mut self, dir: Direction, out: &mut dyn PduSink) {
            out.push(marker(dir, "gap", b""));
        }
        fn on_acked_beyond(&mut self, dir: Direction) {
            BEYOND.lock().unwrap().push(dir);
        }
        fn on_end(&mut self, out: &mut dyn PduSink) {
            out.push(marker(S, "end", b""));
        }
    }

    #[derive(Debug, Default)]
    struct Factory {
        pdu: usize,
        take: Option<usize>,
        ask: bool,
        /// Flows to this server port get no handler.
        skip_port: Option<u16>,
        classified: Vec<(Direction, Vec<u8>)>,
        /// Datagrams starting with b"M" come from the client, b"O" from the server
        /// (as DNP3's DIR bit tells master from outstation).
        roles_in_datagrams: bool,
    }

    impl HandlerFactory for Factory {
        type Handler = Rec;
        fn classify(&mut self, flow: &FlowMeta, dir: Direction, first: &[u8]) -> Option<Rec> {
            self.classified.push((dir, first.to_vec()));
            if Some(flow.dst_port) == self.skip_port {
                return None;
            }
            Some(Rec {
                pdu: self.pdu,
                take: self.take,
                ask: self.ask,
            })
        }
        fn datagram_sender_is_client(&self, first: &[u8]) -> Option<bool> {
            match first.first() {
                Some(b'M') if self.roles_in_datagrams => Some(true),
                Some(b'O') if self.roles_in_datagrams => Some(false),
                _ => None,
            }
        }
    }

    const CLI: [u8; 4] = [10, 0, 0, 1];
    const SRV: [u8; 4] = [10, 0, 0, 2];

    struct Rig {
        t: FlowTable<Factory>,
        index: u64,
        /// Packet time, seconds.
        now: f64,
        cport: u16,
        sport: u16,
    }

    /// What an event says, in short: (packet, flow, pdu ordinal, flow ordinal,
    /// direction, function, bytes).
    type Ev = (u64, u64, u32, u64, Direction, &'static str, Vec<u8>);

    fn short(e: &OtEvent) -> Ev {
        let Native::Modbus(m) = &e.pdu.native else {
            panic!("the test handler makes Modbus PDUs only");
        };
        let bytes = m
            .values
            .as_ref()
            .map_or(vec![], |v| v.iter().map(|&x| x as u8).collect());
        (
            e.packet_index,
            e.flow_id,
            e.pdu_ordinal,
            e.flow_ordinal,
            e.pdu.direction,
            m.function,
            bytes,
        )
    }

    impl Rig {
        fn new(pdu: usize) -> Self {
            Self::with(FlowConfig::default(), pdu)
        }
        fn with(cfg: FlowConfig, pdu: usize) -> Self {
            Rig {
                t: FlowTable::new(
                    cfg,
                    Factory {
                        pdu,
                        ..Factory::default()
                    },
                ),
                index: 0,
                now: 1_000.0,
                cport: 40000,
                sport: 502,
            }
        }
        fn frame(&mut self, lt: LinkType, data: &[u8]) -> Vec<OtEvent> {
            let mut out = Vec::new();
            let pkt = PacketIn {
                index: self.index,
                ts: Timestamp::from_nanos((self.now * 1e9) as i64),
                linktype: lt,
                data,
            };
            self.t.process(&pkt, &mut out);
            self.index += 1;
            out
        }
        /// A TCP segment from the client (`to_server`) or the server.
        fn tcp(
            &mut self,
            dir: Direction,
            seq: u32,
            ack: u32,
            flags: TcpFlags,
            payload: &[u8],
        ) -> Vec<Ev> {
            let (src, dst, sp, dp) = match dir {
                S => (CLI, SRV, self.cport, self.sport),
                C => (SRV, CLI, self.sport, self.cport),
            };
            let ip = ipv4_tcp(src, dst, sp, dp, seq, ack, flags, payload);
            let frame = ether(0x0800, &ip);
            self.frame(LinkType::Ethernet, &frame)
                .iter()
                .map(short)
                .collect()
        }
        fn data(&mut self, dir: Direction, seq: u32, payload: &[u8]) -> Vec<Ev> {
            self.tcp(dir, seq, 0, TcpFlags::PSH, payload)
        }
        fn handshake(&mut self, cisn: u32, sisn: u32) {
            assert!(self.tcp(S, cisn, 0, TcpFlags::SYN, b"").is_empty());
            assert!(self
                .tcp(
                    C,
                    sisn,
                    cisn.wrapping_add(1),
                    TcpFlags::SYN | TcpFlags::ACK,
                    b""
                )
                .is_empty());
            assert!(self
                .tcp(
                    S,
                    cisn.wrapping_add(1),
                    sisn.wrapping_add(1),
                    TcpFlags::ACK,
                    b""
                )
                .is_empty());
        }
        fn finish(&mut self) -> Vec<Ev> {
            let mut out = Vec::new();
            self.t.finish(&mut out);
            out.iter().map(short).collect()
        }
        fn stats(&self) -> FlowStats {
            self.t.stats().clone()
        }
    }

    fn pdu(packet: u64, pdu_ord: u32, flow_ord: u64, dir: Direction, bytes: &[u8]) -> Ev {
        (packet, 0, pdu_ord, flow_ord, dir, "pdu", bytes.to_vec())
    }

    /// A packet of a protocol that makes no flow (ICMP) is noted once per address pair
    /// and protocol, for `new_asset`: the echo request, not its reply or the next ping.
    #[test]
    fn unflowed_packets_are_noted_once_per_pair() {
        let mut r = Rig::new(4);
        let echo = |r: &mut Rig, src, dst, icmp_type: u8| {
            let ip = ipv4_raw(src, dst, 1, 7, 0, false, &[icmp_type, 0, 0, 0, 0, 1, 0, 1]);
            assert!(r.frame(LinkType::Ethernet, &ether(0x0800, &ip)).is_empty());
        };
        echo(&mut r, CLI, SRV, 8);
        echo(&mut r, SRV, CLI, 0);
        echo(&mut r, CLI, SRV, 8);
        let ospf = ipv4_raw(SRV, [224, 0, 0, 5], 89, 8, 0, false, &[2, 1]);
        r.frame(LinkType::Ethernet, &ether(0x0800, &ospf));
        let mut notes = Vec::new();
        r.t.take_notes(&mut notes);
        let seen: Vec<_> = notes
            .iter()
            .map(|n| {
                let f = &n.flow;
                (
                    n.kind,
                    n.packet_index,
                    f.src_ip.to_string(),
                    f.src_port,
                    f.dst_port,
                    f.transport,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    FlowNoteKind::Packet,
                    0,
                    "10.0.0.1".into(),
                    8,
                    0,
                    Transport::Icmp
                ),
                (
                    FlowNoteKind::Packet,
                    3,
                    "10.0.0.2".into(),
                    0,
                    0,
                    Transport::Ip(89)
                ),
            ]
        );
        assert_eq!(r.stats().other_ip, 4);
        assert_eq!(r.stats().flows_created, 0);
    }

    #[test]
    fn in_order_pdus_with_handshake() {
        let mut r = Rig::new(4);
        r.handshake(1000, 5000);
        assert_eq!(r.data(S, 1001, b"req1"), [pdu(3, 0, 0, S, b"req1")]);
        assert_eq!(r.data(C, 5001, b"rsp1"), [pdu(4, 0, 0, C, b"rsp1")]);
        assert_eq!(r.data(S, 1005, b"req2"), [pdu(5, 0, 1, S, b"req2")]);
        // The flow's metadata: oriented by the SYN, Community ID of the 5-tuple.
        let mut out = Vec::new();
        let ip = ipv4_tcp(CLI, SRV, 40000, 502, 1009, 0, TcpFlags::PSH, b"abcd");
        r.t.process(
            &PacketIn {
                index: 6,
                ts: Timestamp::from_nanos(0),
                linktype: LinkType::RawIp,
                data: &ip,
            },
            &mut out,
        );
        let m = &out[0].flow;
        assert_eq!((m.src_ip, m.src_port), (IpAddr::from(CLI), 40000));
        assert_eq!((m.dst_ip, m.dst_port), (IpAddr::from(SRV), 502));
        assert!(m.handshake_seen);
        assert_eq!(m.transport, Transport::Tcp);
        // python3 -c "import communityid as c; print(c.CommunityID().calc(
        //   c.FlowTuple.make_tcp('10.0.0.1','10.0.0.2',40000,502)))"
        assert_eq!(m.community_id, "1:/+JBy2Q1zp1KkEWqSPgaxJf5R90=");
        // The handler was chosen on the first payload, in its direction.
        assert_eq!(r.t.factory_mut().classified, [(S, b"req1".to_vec())]);
        let s = r.stats();
        assert_eq!(
            (s.flows_created, s.flows_active, s.pdus, s.packets),
            (1, 1, 4, 7)
        );
    }

    /// Keeps the records that start with `k`, noting where each record stood.
    fn keep_k(pdu: &Pdu, place: PduPlace) -> bool {
        let Native::Modbus(m) = &pdu.native else {
            return true;
        };
        let first = m.values.as_ref().and_then(|v| v.first().copied());
        PLACES
            .lock()
            .unwrap()
            .push((pdu.direction, first.unwrap_or(0) as u8, place));
        first == Some(u16::from(b'k'))
    }
    static PLACES: std::sync::Mutex<Vec<(Direction, u8, PduPlace)>> =
        std::sync::Mutex::new(Vec::new());

    #[test]
    fn a_pdu_filter_keeps_ordinals_and_counts_what_it_turns_away() {
        let mut r = Rig::new(4);
        r.t.set_pdu_filter(Some(keep_k));
        r.handshake(1000, 5000);
        // An answer first (a flow joined late would show one), then a request, then
        // two records in one segment of which only the second is kept.
        assert_eq!(r.data(C, 5001, b"rsp0"), []);
        assert_eq!(r.data(S, 1001, b"req1"), []);
        assert_eq!(r.data(C, 5005, b"rsp1kee2"), [pdu(5, 1, 2, C, b"kee2")]);
        assert_eq!(r.data(S, 1005, b"kreq"), [pdu(6, 0, 1, S, b"kreq")]);
        let place = |first_of_flow, no_request_before| PduPlace {
            first_of_flow,
            no_request_before,
        };
        assert_eq!(
            *PLACES.lock().unwrap(),
            [
                (C, b'r', place(true, true)),
                (S, b'r', place(false, true)),
                (C, b'r', place(false, false)),
                (C, b'k', place(false, false)),
                (S, b'k', place(false, false)),
            ]
        );
        let s = r.stats();
        assert_eq!((s.pdus, s.pdus_filtered), (5, 3));
        assert_eq!(s.pdus_by_protocol[Protocol::Modbus as usize], 5);
        assert_eq!(s.anomalous_by_protocol, [0; Protocol::ALL.len()]);
    }

    #[test]
    fn flow_keys_are_the_same_both_ways_and_give_back_their_ends() {
        let ends: [((IpAddr, u16), (IpAddr, u16)); 3] = [
            (
                ("10.0.0.2".parse().unwrap(), 502),
                ("10.0.0.1".parse().unwrap(), 40000),
            ),
            (
                ("2001:db8::2".parse().unwrap(), 20000),
                ("2001:db8::1".parse().unwrap(), 20000),
            ),
            (
                ("10.0.0.1".parse().unwrap(), 502),
                ("10.0.0.1".parse().unwrap(), 501),
            ),
        ];
        for (a, b) in ends {
            let (k, a_is_lo) = FlowKey::of(a, b, Transport::Tcp);
            let (k2, b_is_lo) = FlowKey::of(b, a, Transport::Tcp);
            assert_eq!((k, a_is_lo), (k2, !b_is_lo));
            // lo is the smaller (address, port), as IpAddr orders them.
            assert_eq!(a_is_lo, a <= b);
            assert_eq!(k.end(a_is_lo), a);
            assert_eq!(k.end(!a_is_lo), b);
            let (udp, _) = FlowKey::of(a, b, Transport::Udp);
            assert_ne!(udp, k);
        }
        // The same number as an IPv4 and as an IPv6 address: two flows.
        let v4 = ("0.0.0.1".parse().unwrap(), 1);
        let v6 = ("::1".parse().unwrap(), 1);
        let four = FlowKey::of(v4, v4, Transport::Udp).0;
        let six = FlowKey::of(v6, v6, Transport::Udp).0;
        assert_ne!(four, six);
        use std::hash::BuildHasher;
        let hasher = FlowHasher::default();
        assert_ne!(hasher.hash_one(four), hasher.hash_one(six));
    }

    fn first_or_request(pdu: &Pdu, place: PduPlace) -> bool {
        place.first_of_flow || !pdu.is_response
    }

    #[test]
    fn a_handler_asking_before_each_pdu_gets_the_filters_answer() {
        let mut r = Rig::new(4);
        r.t.factory_mut().ask = true;
        r.t.set_pdu_filter(Some(first_or_request));
        r.handshake(1000, 5000);
        // Several PDUs per call: each is asked about in the place it will take.
        assert_eq!(r.data(C, 5001, b"rsp0rsp1"), [pdu(3, 0, 0, C, b"rsp0")]);
        assert_eq!(
            r.data(S, 1001, b"req1req2"),
            [pdu(4, 0, 0, S, b"req1"), pdu(4, 1, 1, S, b"req2")]
        );
        assert_eq!(r.data(C, 5009, b"rsp2"), []);
        assert_eq!(*ASKED.lock().unwrap(), [true, false, true, true, false]);
        assert_eq!(r.stats().pdus_filtered, 2);
    }

    #[test]
    fn retransmitted_syn_is_not_a_new_connection() {
        let mut r = Rig::new(2);
        r.handshake(70, 0);
        assert_eq!(r.data(S, 71, b"ab").len(), 1);
        assert!(r.tcp(S, 70, 0, TcpFlags::SYN, b"").is_empty());
        assert_eq!(r.data(S, 73, b"cd"), [pdu(5, 0, 1, S, b"cd")]);
        // A SYN with another ISN is: the old flow ends, a new one starts.
        assert_eq!(
            r.tcp(S, 900, 0, TcpFlags::SYN, b""),
            [(6, 0, 0, 2, S, "end", vec![])]
        );
        assert_eq!(r.stats().flows_created, 2);
    }

    #[test]
    fn pdu_split_across_three_segments() {
        let mut r = Rig::new(6);
        r.handshake(0, 0);
        assert!(r.data(S, 1, b"ab").is_empty());
        assert!(r.data(S, 3, b"cd").is_empty());
        assert_eq!(r.data(S, 5, b"efgh"), [pdu(5, 0, 0, S, b"abcdef")]);
        assert_eq!(r.data(S, 9, b"ijkl"), [pdu(6, 0, 1, S, b"ghijkl")]);
    }

    #[test]
    fn two_pdus_in_one_segment() {
        let mut r = Rig::new(3);
        r.handshake(0, 0);
        assert_eq!(
            r.data(S, 1, b"abcdefg"),
            [pdu(3, 0, 0, S, b"abc"), pdu(3, 1, 1, S, b"def")]
        );
        assert_eq!(r.data(S, 8, b"hi"), [pdu(4, 0, 2, S, b"ghi")]);
    }

    #[test]
    fn retransmissions_never_yield_a_second_pdu() {
        let mut r = Rig::new(4);
        r.handshake(0, 0);
        assert_eq!(r.data(S, 1, b"abcd").len(), 1);
        // Exact retransmission.
        assert!(r.data(S, 1, b"abcd").is_empty());
        assert_eq!(r.stats().tcp_retransmitted_segments, 1);
        // Partial overlap: old bytes (rewritten!) are trimmed, the new ones delivered.
        assert_eq!(r.data(S, 3, b"XYefgh"), [pdu(5, 0, 1, S, b"efgh")]);
        assert_eq!(r.stats().tcp_overlaps, 1);
        // Retransmission of a PDU that was split: still one PDU.
        assert!(r.data(S, 9, b"ij").is_empty());
        assert!(r.data(S, 9, b"ij").is_empty());
        assert_eq!(r.data(S, 11, b"kl"), [pdu(8, 0, 2, S, b"ijkl")]);
    }

    #[test]
    fn out_of_order_pair() {
        let mut r = Rig::new(4);
        r.handshake(100, 0);
        assert!(r.data(S, 105, b"efgh").is_empty());
        assert_eq!(r.stats().tcp_out_of_order_segments, 1);
        assert_eq!(
            r.data(S, 101, b"abcd"),
            [pdu(4, 0, 0, S, b"abcd"), pdu(4, 1, 1, S, b"efgh")]
        );
        assert_eq!(r.t.buffered_bytes(), 0);
    }

    #[test]
    fn hole_acked_by_the_peer_is_a_gap() {
        let mut r = Rig::new(4);
        r.handshake(0, 0);
        assert_eq!(r.data(S, 1, b"ab").len(), 0); // a partial PDU, lost with the hole
                                                  // 3..7 never captured; 7..11 held.
        assert!(r.data(S, 7, b"wxyz").is_empty());
        // The server acknowledges up to 11: the hole will never fill.
        let ev = r.tcp(C, 1, 11, TcpFlags::ACK, b"");
        assert_eq!(
            ev,
            // Gap and end markers are PDUs of the test handler: they count in the
            // flow ordinal like any other.
            [(5, 0, 0, 0, S, "gap", vec![]), pdu(5, 1, 1, S, b"wxyz")]
        );
        let s = r.stats();
        assert_eq!((s.tcp_gaps, s.reassembly_bytes_dropped), (1, 2));
        assert_eq!(r.data(S, 11, b"1234"), [pdu(6, 0, 2, S, b"1234")]);
    }

    #[test]
    fn the_handler_hears_when_the_peer_acknowledges_further_unseen_bytes() {
        let beyond = || BEYOND.lock().unwrap().len();
        let mut r = Rig::new(4);
        r.handshake(0, 1000);
        assert_eq!(r.data(S, 1, b"req1"), [pdu(3, 0, 0, S, b"req1")]);
        // The answer (1001..1005) is lost. The next request acknowledges it: the
        // handler hears before the request's data.
        let ev = r.tcp(S, 5, 1005, TcpFlags::PSH | TcpFlags::ACK, b"req2");
        assert_eq!(ev, [pdu(4, 0, 1, S, b"req2")]);
        assert_eq!(*BEYOND.lock().unwrap(), [C]);
        // The same acknowledgment again: nothing new.
        r.tcp(S, 9, 1005, TcpFlags::PSH | TcpFlags::ACK, b"req3");
        assert_eq!(beyond(), 1);
        // Further, in a segment without data: heard too.
        assert!(r.tcp(S, 13, 1009, TcpFlags::ACK, b"").is_empty());
        assert_eq!(beyond(), 2);
        // The answer to req3 (1009..1013) arrives, held behind the hole; the next
        // acknowledgment declares the gap (no new "beyond": the hole is known).
        assert!(r
            .tcp(C, 1009, 13, TcpFlags::PSH | TcpFlags::ACK, b"ans3")
            .is_empty());
        let ev = r.tcp(S, 13, 1013, TcpFlags::ACK, b"");
        assert_eq!(
            ev,
            [(8, 0, 0, 0, C, "gap", vec![]), pdu(8, 1, 1, C, b"ans3")]
        );
        assert_eq!(beyond(), 2);
    }

    #[test]
    fn a_pdu_held_behind_a_lost_hole_keeps_the_time_of_its_packet() {
        let mut r = Rig::new(4);
        r.handshake(0, 0);
        assert!(r.data(S, 1, b"ab").is_empty());
        // 3..7 never captured; "wxyz" seen at t = 1001 s and held.
        r.now = 1_001.0;
        assert!(r.data(S, 7, b"wxyz").is_empty());
        // The server's acknowledgment at t = 1007 s gives the hole up.
        r.now = 1_007.0;
        let ack = ether(
            0x0800,
            &ipv4_tcp(SRV, CLI, 502, 40000, 1, 11, TcpFlags::ACK, b""),
        );
        let out = r.frame(LinkType::Ethernet, &ack);
        let got: Vec<(&str, Timestamp, u64)> = out
            .iter()
            .map(|e| (short(e).5, e.timestamp, e.packet_index))
            .collect();
        let at = |secs: i64| Timestamp::from_nanos(secs * 1_000_000_000);
        // The gap at the acknowledgment's time; the PDU completed by the packet of
        // t = 1001 s, though released by the acknowledgment (packet 5).
        assert_eq!(got, [("gap", at(1_007), 5), ("pdu", at(1_001), 5)]);
        // What follows in order, at its own packet's time again.
        r.now = 1_008.0;
        let next = ether(
            0x0800,
            &ipv4_tcp(CLI, SRV, 40000, 502, 11, 1, TcpFlags::PSH, b"1234"),
        );
        let out = r.frame(LinkType::Ethernet, &next);
        assert_eq!(out.first().map(|e| e.timestamp), Some(at(1_008)));
    }

    #[test]
    fn midstream_join_oriented_by_well_known_port() {
        let mut r = Rig::new(2);
        // First packet seen: the server (port 502) answering; no handshake.
        let ev = r.data(C, 7_000_000, b"r1");
        assert_eq!(ev, [pdu(0, 0, 0, C, b"r1")]);
        let mut out = Vec::new();
        r.t.finish(&mut out);
        let m = &out[0].flow;
        assert_eq!((m.src_port, m.dst_port), (40000, 502));
        assert!(!m.handshake_seen);
    }

    #[test]
    fn midstream_join_oriented_by_lower_port() {
        for (cport, sport) in [(40000, 3000), (1000, 502)] {
            // Neither well known (3000 < 40000 serves) / both... 1000 is not well known
            // but 502 is: 502 serves even though it is lower than 1000 anyway.
            let mut r = Rig::new(2);
            r.cport = cport;
            r.sport = sport;
            assert_eq!(r.data(S, 1, b"q1"), [pdu(0, 0, 0, S, b"q1")]);
        }
        // Both well known: the lower port serves.
        let mut r = Rig::new(2);
        r.cport = 20000;
        r.sport = 502;
        assert_eq!(r.data(C, 1, b"r1"), [pdu(0, 0, 0, C, b"r1")]);
        // Neither well known, packet from the lower port: it is the server's.
        let mut r = Rig::new(2);
        r.cport = 50000;
        r.sport = 8080;
        assert_eq!(r.data(C, 1, b"r1"), [pdu(0, 0, 0, C, b"r1")]);
    }

    #[test]
    fn syn_and_syn_ack_orient_the_flow() {
        // A SYN from port 502 to 40000: the SYN decides, not the port.
        let mut r = Rig::new(2);
        r.cport = 502;
        r.sport = 40000;
        r.handshake(0, 0);
        assert_eq!(r.data(S, 1, b"q1"), [pdu(3, 0, 0, S, b"q1")]);
        // First packet seen is the SYN-ACK (SYN lost): its receiver is the client.
        let mut r = Rig::new(2);
        r.cport = 502;
        r.sport = 40000;
        assert!(r
            .tcp(C, 50, 1, TcpFlags::SYN | TcpFlags::ACK, b"")
            .is_empty());
        assert_eq!(r.data(S, 1, b"q1"), [pdu(1, 0, 0, S, b"q1")]);
        assert_eq!(r.data(C, 51, b"r1"), [pdu(2, 0, 0, C, b"r1")]);
        let mut out = Vec::new();
        r.t.finish(&mut out);
        assert!(out[0].flow.handshake_seen);
        assert_eq!(out[0].flow.src_port, 502);
    }

    #[test]
    fn sequence_wraps_at_2_pow_32() {
        let mut r = Rig::new(4);
        r.handshake(u32::MAX - 2, 0); // first data byte at u32::MAX - 1
        assert_eq!(r.data(S, u32::MAX - 1, b"ab").len(), 0);
        assert_eq!(r.data(S, 0, b"cdef"), [pdu(4, 0, 0, S, b"abcd")]);
        // Out of order across the wrap, and a retransmission from before it.
        assert!(r.data(S, 6, b"ijkl").is_empty());
        assert_eq!(
            r.data(S, 4, b"gh"),
            [pdu(6, 0, 1, S, b"efgh"), pdu(6, 1, 2, S, b"ijkl")]
        );
        assert!(r.data(S, u32::MAX - 1, b"ab").is_empty());
        assert_eq!(r.stats().tcp_retransmitted_segments, 1);
    }

    #[test]
    fn fin_from_both_sides_ends_the_flow_after_its_data() {
        let mut r = Rig::new(2);
        r.handshake(0, 0);
        // The FIN comes before the last data segment (reordered).
        assert!(r
            .tcp(S, 3, 1, TcpFlags::FIN | TcpFlags::ACK, b"cd")
            .is_empty());
        assert_eq!(
            r.data(S, 1, b"ab"),
            [pdu(4, 0, 0, S, b"ab"), pdu(4, 1, 1, S, b"cd")]
        );
        assert!(r
            .tcp(C, 1, 6, TcpFlags::FIN | TcpFlags::ACK, b"")
            .iter()
            .any(|e| e.5 == "end"));
        let s = r.stats();
        assert_eq!((s.flows_ended, s.flows_active), (1, 0));
        // The last ACK and a late retransmission are absorbed by the closed flow.
        assert!(r.tcp(S, 6, 2, TcpFlags::ACK, b"").is_empty());
        assert!(r.tcp(S, 3, 2, TcpFlags::ACK, b"cd").is_empty());
        // Retransmissions back off to minutes (RFC 6298): one 200 s later is
        // still absorbed, within TIME-WAIT's 2 MSL (RFC 9293: 4 minutes).
        r.now += 200.0;
        assert!(r.tcp(S, 3, 2, TcpFlags::ACK, b"cd").is_empty());
        assert_eq!(r.stats().flows_created, 1);
        // A new connection on the same 5-tuple is a new flow.
        r.handshake(9000, 0);
        assert_eq!(
            r.data(S, 9001, b"zz"),
            [(12, 9, 0, 0, S, "pdu", b"zz".to_vec())]
        );
        assert_eq!(r.stats().flows_created, 2);
        assert!(r.finish().iter().all(|e| e.1 == 9));
    }

    #[test]
    fn rst_ends_the_flow_and_flushes_held_data() {
        let mut r = Rig::new(2);
        r.handshake(0, 0);
        assert_eq!(r.data(S, 1, b"ab").len(), 1);
        assert!(r.data(S, 5, b"ef").is_empty());
        let ev = r.tcp(C, 1, 0, TcpFlags::RST, b"");
        assert_eq!(
            ev,
            [
                (5, 0, 0, 1, S, "gap", vec![]),
                pdu(5, 1, 2, S, b"ef"),
                (5, 0, 2, 3, S, "end", vec![])
            ]
        );
        assert_eq!(r.t.buffered_bytes(), 0);
        // A lone RST makes no flow.
        r.cport = 1234;
        assert!(r.tcp(S, 1, 0, TcpFlags::RST, b"").is_empty());
        assert_eq!(r.stats().flows_created, 1);
    }

    #[test]
    fn a_rst_outside_its_senders_window_is_ignored() {
        let mut r = Rig::new(2);
        r.handshake(0, 1000);
        assert_eq!(r.data(S, 1, b"ab").len(), 1);
        // Forged: a sequence number far from the server's next byte (1001), with
        // data. Neither ends the flow nor reaches the dissector.
        let far = 1001u32.wrapping_add(0x4000_0000);
        assert!(r.tcp(C, far, 3, TcpFlags::RST, b"xy").is_empty());
        assert!(r
            .tcp(C, 1001u32.wrapping_sub(0x20_0000), 3, TcpFlags::RST, b"")
            .is_empty());
        assert_eq!(r.stats().tcp_rst_ignored, 2);
        assert_eq!(r.stats().flows_ended, 0);
        // The connection goes on in the same flow.
        assert_eq!(r.data(S, 3, b"cd"), [pdu(6, 0, 1, S, b"cd")]);
        // The server's own RST, a little past what was seen of it, ends the flow.
        let ev = r.tcp(C, 1001 + 100, 5, TcpFlags::RST, b"");
        assert_eq!(ev, [(7, 0, 0, 2, S, "end", vec![])]);
        assert_eq!(r.stats().flows_ended, 1);

        // After a loss of more than the window, the sensor's position lags: a RST at
        // the peer's acknowledgment (RFC 5961's reference) is the sender's.
        let mut r = Rig::new(2);
        r.handshake(0, 1000);
        assert_eq!(r.data(C, 1001, b"ab").len(), 1);
        let lost = 1003u32 + (2 << 20);
        assert!(r.tcp(S, 1, lost, TcpFlags::ACK, b"").is_empty());
        r.tcp(C, lost, 1, TcpFlags::RST | TcpFlags::ACK, b"");
        assert_eq!((r.stats().tcp_rst_ignored, r.stats().flows_ended), (0, 1));

        // Forged RSTs do not keep a flow from idling out.
        let mut r = Rig::new(2);
        let idle = FlowConfig::default().tcp_idle_timeout.as_secs_f64();
        r.handshake(0, 1000);
        r.now += idle - 1.0;
        r.tcp(C, 1001 + 0x4000_0000, 1, TcpFlags::RST, b"");
        r.now += 2.0;
        r.data(S, 1, b"ab");
        assert_eq!(r.stats().flows_timed_out, 1);
    }

    #[test]
    fn per_direction_bound_is_a_gap() {
        let cfg = FlowConfig {
            max_buffered_per_direction: 8,
            ..FlowConfig::default()
        };
        // PDUs of 10 bytes can never be buffered within 8.
        let mut r = Rig::with(cfg.clone(), 10);
        r.handshake(0, 0);
        assert!(r.data(S, 1, b"12345").is_empty());
        assert_eq!(r.data(S, 6, b"6789"), [(4, 0, 0, 0, S, "gap", vec![])]);
        assert_eq!(r.stats().reassembly_bytes_dropped, 9);
        // Out-of-order data over the bound (a held segment costs its overhead too),
        // and only this direction is seen: the hole is given up.
        let cfg = FlowConfig {
            max_buffered_per_direction: 8 + crate::tcp::HELD_OVERHEAD,
            ..cfg
        };
        let mut r = Rig::with(cfg.clone(), 2);
        assert_eq!(r.data(S, 1, b"ab").len(), 1);
        assert!(r.data(S, 5, b"efgh").is_empty());
        assert_eq!(
            r.data(S, 9, b"ijklm"),
            [
                (2, 0, 0, 1, S, "gap", vec![]),
                pdu(2, 1, 2, S, b"ef"),
                pdu(2, 2, 3, S, b"gh"),
                pdu(2, 3, 4, S, b"ij"),
                pdu(2, 4, 5, S, b"kl"),
            ]
        );
        assert_eq!(r.t.slot(0).unwrap().tcp[0].buffered(), (1, 0));
        // The same where the peer is seen awaiting the hole (it acknowledged up to
        // it): the hole will be retransmitted, the segment that does not fit is
        // refused.
        let mut r = Rig::with(cfg, 2);
        r.handshake(0, 0);
        assert_eq!(r.data(S, 1, b"ab").len(), 1);
        assert!(r.tcp(C, 1, 3, TcpFlags::ACK, b"").is_empty());
        assert!(r.data(S, 5, b"efgh").is_empty());
        assert!(r.data(S, 9, b"ijklm").is_empty());
        assert_eq!(r.stats().reassembly_bytes_dropped, 5);
        assert_eq!(
            r.data(S, 3, b"cd"),
            [
                pdu(7, 0, 1, S, b"cd"),
                pdu(7, 1, 2, S, b"ef"),
                pdu(7, 2, 3, S, b"gh")
            ]
        );
    }

    #[test]
    fn max_flows_evicts_the_least_recently_seen() {
        let cfg = FlowConfig {
            max_flows: 2,
            ..FlowConfig::default()
        };
        let mut r = Rig::with(cfg, 2);
        for port in [1001, 1002] {
            r.cport = port;
            assert_eq!(r.data(S, 1, b"aa").len(), 1);
        }
        // Flow 1001 is touched again: 1002 is now the least recently seen.
        r.cport = 1001;
        assert_eq!(r.data(S, 3, b"bb").len(), 1);
        r.cport = 1003;
        let ev = r.data(S, 1, b"cc");
        // The victim's end comes first (its flow_id, 1, is lower than the new one's).
        assert_eq!(
            ev,
            [
                (3, 1, 0, 1, S, "end", vec![]),
                (3, 3, 0, 0, S, "pdu", b"cc".to_vec())
            ]
        );
        let s = r.stats();
        assert_eq!((s.flows_evicted, s.flows_ended, s.flows_active), (1, 1, 2));
        assert_eq!(r.t.len(), 2);
    }

    #[test]
    fn tick_ends_every_idle_flow_and_nothing_else() {
        let cfg = FlowConfig {
            sweep_per_packet: 0,
            ..FlowConfig::default()
        };
        let mut r = Rig::with(cfg, 2);
        for port in [1001, 1002, 1003] {
            r.cport = port;
            assert_eq!(r.data(S, 1, b"aa").len(), 1);
        }
        // Flow 1003 speaks again 300 s later; 1001 and 1002 stay quiet.
        r.now += 300.0;
        assert_eq!(r.data(S, 3, b"bb").len(), 1);
        r.t.take_notes(&mut Vec::new());
        let tick = |r: &mut Rig, secs: f64| {
            let mut out = Vec::new();
            let ts = Timestamp::from_nanos((secs * 1e9) as i64);
            r.t.tick(r.index, ts, &mut out);
            let mut notes = Vec::new();
            r.t.take_notes(&mut notes);
            (out.iter().map(short).collect::<Vec<_>>(), notes)
        };
        // 600 s after the first packets is not yet past the TCP idle timeout.
        let (ev, notes) = tick(&mut r, 1_600.0);
        assert!(ev.is_empty() && notes.is_empty(), "{notes:?}");
        // 601 s after: the two quiet flows end (the test handler says "end"), in
        // flow_id order, as if just before the next packet; 1003 lives on.
        let (ev, notes) = tick(&mut r, 1_601.0);
        assert_eq!(
            ev,
            [
                (4, 0, 0, 1, S, "end", vec![]),
                (4, 1, 0, 1, S, "end", vec![])
            ]
        );
        let ended: Vec<_> = notes
            .iter()
            .map(|n| {
                (
                    n.packet_index,
                    n.flow_id,
                    n.timestamp.as_nanos(),
                    n.flow.src_port,
                )
            })
            .collect();
        assert_eq!(
            ended,
            [
                (4, 0, 1_601_000_000_000, 1001),
                (4, 1, 1_601_000_000_000, 1002)
            ]
        );
        assert_eq!(r.stats().flows_timed_out, 2);
        assert_eq!(r.t.len(), 1);
        // Flow 1003 ends at its own timeout.
        let (_, notes) = tick(&mut r, 1_901.0);
        assert_eq!(notes.len(), 1);
        assert_eq!(r.t.len(), 0);
    }

    #[test]
    fn idle_timeout_lazy_and_swept() {
        let mut r = Rig::new(2);
        assert_eq!(r.data(S, 1, b"aa").len(), 1);
        // 601 s later the same flow speaks again: the old flow ends, a new one starts.
        r.now += 601.0;
        assert_eq!(
            r.data(S, 3, b"bb"),
            [
                (1, 0, 0, 1, S, "end", vec![]),
                (1, 1, 0, 0, S, "pdu", b"bb".to_vec())
            ]
        );
        assert_eq!(r.stats().flows_timed_out, 1);
        // The sweep ends an idle flow when another flow's packet comes.
        r.now += 700.0;
        r.cport = 5555;
        assert_eq!(
            r.data(S, 1, b"cc"),
            [
                (2, 1, 0, 1, S, "end", vec![]),
                (2, 2, 0, 0, S, "pdu", b"cc".to_vec())
            ]
        );
        assert_eq!(r.stats().flows_timed_out, 2);
        assert_eq!(r.t.len(), 1);
        // UDP times out after 60 s.
        let udp = ipv4_udp(CLI, SRV, 20000, 20000, b"dd");
        assert_eq!(r.frame(LinkType::RawIp, &udp).len(), 1);
        r.now += 61.0;
        let udp2 = ipv4_udp(CLI, [10, 0, 0, 9], 20000, 20000, b"ee");
        let ev: Vec<Ev> = r.frame(LinkType::RawIp, &udp2).iter().map(short).collect();
        assert_eq!(ev[0].5, "end");
        assert_eq!(r.stats().flows_timed_out, 3);
    }

    #[test]
    fn udp_datagrams_are_given_whole_without_buffering() {
        let mut r = Rig::new(0);
        r.t.factory_mut().take = Some(3);
        let d = ipv4_udp(CLI, SRV, 50000, 20000, b"abcdef");
        let ev: Vec<Ev> = r.frame(LinkType::RawIp, &d).iter().map(short).collect();
        // The handler took 3 bytes; the rest is lost, not presented again.
        assert_eq!(ev, [pdu(0, 0, 0, S, b"abc")]);
        let back = ipv4_udp(SRV, CLI, 20000, 50000, b"xyz");
        let ev: Vec<Ev> = r.frame(LinkType::RawIp, &back).iter().map(short).collect();
        assert_eq!(ev, [pdu(1, 0, 0, C, b"xyz")]);
        assert_eq!(r.t.buffered_bytes(), 0);
        let mut out = Vec::new();
        r.t.finish(&mut out);
        assert_eq!(out[0].flow.transport, Transport::Udp);
        assert_eq!(out[0].flow.dst_port, 20000);
    }

    #[test]
    fn a_datagram_that_names_its_sender_orients_a_udp_flow() {
        let mut r = Rig::new(0);
        r.t.factory_mut().take = Some(1);
        r.t.factory_mut().roles_in_datagrams = true;
        // Both ends on port 20000 (ports cannot decide); the server speaks first.
        let unsolicited = ipv4_udp(SRV, CLI, 20000, 20000, b"O1");
        let ev = r.frame(LinkType::RawIp, &unsolicited);
        assert_eq!(ev.len(), 1);
        // The flow's src is the client all the same, and the datagram went to it.
        let f = &ev[0].flow;
        assert_eq!((f.src_ip, f.dst_ip), (IpAddr::from(CLI), IpAddr::from(SRV)));
        assert_eq!(ev[0].pdu.direction, C);
        // Without the hint, the first sender is taken as the client.
        let mut r = Rig::new(0);
        r.t.factory_mut().take = Some(1);
        let ev = r.frame(LinkType::RawIp, &unsolicited);
        assert_eq!(ev[0].flow.src_ip, IpAddr::from(SRV));
    }

    #[test]
    fn no_handler_means_no_buffering() {
        let mut r = Rig::new(4);
        r.t.factory_mut().skip_port = Some(502);
        r.handshake(0, 0);
        assert!(r.data(S, 1, b"ab").is_empty());
        assert!(r.data(S, 9, b"cd").is_empty());
        assert_eq!(r.t.buffered_bytes(), 0);
        assert_eq!(r.t.factory_mut().classified.len(), 1);
        assert!(r.tcp(S, 11, 0, TcpFlags::FIN, b"").is_empty());
        assert!(r.tcp(C, 1, 0, TcpFlags::FIN, b"").is_empty());
        assert_eq!(r.stats().flows_ended, 1);
        // The sequence space was followed: a late retransmission is not a new flow.
        assert!(r.data(S, 9, b"cd").is_empty());
        assert_eq!(r.stats().flows_created, 1);
        assert_eq!(r.t.factory_mut().classified.len(), 1);
    }

    #[test]
    fn finish_ends_flows_in_flow_id_order() {
        let mut r = Rig::new(4);
        for port in [3000, 2000, 1000] {
            r.cport = port;
            assert!(r.data(S, 1, b"ab").is_empty());
        }
        r.cport = 3000;
        assert!(r.data(S, 3, b"c").is_empty());
        let ev = r.finish();
        let ids: Vec<_> = ev.iter().map(|e| (e.0, e.1, e.5)).collect();
        assert_eq!(
            ids,
            [
                (u64::MAX, 0, "end"),
                (u64::MAX, 1, "end"),
                (u64::MAX, 2, "end")
            ]
        );
        assert_eq!(r.t.len(), 0);
        assert_eq!(r.stats().flows_ended, 3);
    }

    #[test]
    fn fragmented_udp_is_reassembled_into_its_flow() {
        let mut r = Rig::new(0);
        r.t.factory_mut().take = Some(100);
        let udp = udp_bytes(50000, 20000, &[7u8; 40]);
        let mut frags = ipv4_fragments(CLI, SRV, 0x99, 17, &udp, 16);
        frags.reverse();
        let mut all = Vec::new();
        for f in &frags {
            all.extend(r.frame(LinkType::RawIp, f).iter().map(short));
        }
        assert_eq!(all, [(2, 2, 0, 0, S, "pdu", vec![7u8; 40])]);
        assert_eq!(r.stats().fragments_reassembled, 1);
    }

    #[test]
    fn fragmented_ipv6_is_reassembled_too() {
        use std::net::Ipv6Addr;
        let mut r = Rig::new(0);
        r.t.factory_mut().take = Some(100);
        let (a, b) = (
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        let udp = udp_bytes(50000, 20000, &[9u8; 24]); // 32 bytes
        let frag = |offset: u16, more: bool, part: &[u8]| {
            // Fragment header: next header UDP, reserved, offset/8 << 3 | M, identification.
            let mut p = vec![17, 0];
            p.extend_from_slice(&((offset / 8) << 3 | u16::from(more)).to_be_bytes());
            p.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
            p.extend_from_slice(part);
            ipv6_raw(a, b, 44, &p)
        };
        assert!(r
            .frame(LinkType::RawIp, &frag(16, false, &udp[16..]))
            .is_empty());
        let ev: Vec<Ev> = r
            .frame(LinkType::RawIp, &frag(0, true, &udp[..16]))
            .iter()
            .map(short)
            .collect();
        assert_eq!(ev, [(1, 1, 0, 0, S, "pdu", vec![9u8; 24])]);
        assert_eq!(r.stats().fragments_reassembled, 1);
    }

    #[test]
    fn undecodable_frames_are_counted() {
        let mut r = Rig::new(4);
        assert!(r
            .frame(LinkType::Ethernet, &ether(0x0806, &[0; 28]))
            .is_empty());
        assert!(r.frame(LinkType::Ethernet, &[0; 5]).is_empty());
        let mut bad = ipv4_udp(CLI, SRV, 1, 2, b"x");
        bad[0] = 0x43;
        assert!(r.frame(LinkType::RawIp, &bad).is_empty());
        let icmp = ipv4_raw(CLI, SRV, 1, 0, 0, false, &[8, 0, 0, 0]);
        assert!(r.frame(LinkType::RawIp, &icmp).is_empty());
        let s = r.stats();
        assert_eq!(
            (
                s.non_ip,
                s.decode_errors,
                s.decode_truncated,
                s.decode_malformed,
                s.other_ip
            ),
            (1, 2, 1, 1, 1)
        );
        assert_eq!(s.flows_created, 0);
    }
}
