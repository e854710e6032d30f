//! TCP stream reassembly, one direction at a time.
//!
//! Policy, in the order the code applies it:
//!
//! * Sequence numbers are compared with wrapping (RFC 1982) arithmetic.
//! * A direction starts at its SYN (ISN + 1) or, for flows joined mid-stream, at the
//!   first segment that carries data or a FIN — or at the peer's acknowledgment, when
//!   that segment's bytes were already acknowledged (a keep-alive's single old byte,
//!   a retransmission). Empty ACKs deliver nothing.
//! * In-order bytes go to the application straight from the packet (zero-copy). Only
//!   what the application leaves unconsumed (a PDU split across segments) is copied
//!   into `pending`, and presented again, followed by the next bytes.
//! * Data entirely before `next_seq` is a retransmission: dropped, counted, never
//!   delivered twice. **First copy wins**: a segment overlapping bytes already
//!   delivered or already held out of order is trimmed to the bytes not seen yet, so a
//!   later copy can never rewrite what an earlier one said.
//! * Segments beyond `next_seq` are held (copied) until the hole fills; one that starts
//!   more than the largest possible window (2^30, RFC 7323) beyond it is dropped,
//!   unless the peer acknowledged bytes that far (the capture lost more than a
//!   window: the bytes up to the acknowledgment are a gap).
//! * Before a direction's first data is seen, an acknowledgment of it further than
//!   the first one seen says the sensor missed bytes sent since (reported as any
//!   acknowledgment of unseen bytes is). When its first data then starts at or before
//!   what the peer acknowledged, the bytes since that first acknowledgment are a gap.
//! * A hole that will never fill is a *gap*: `on_gap(dir)`, the unconsumed tail is
//!   dropped, and delivery goes on after the hole. A hole never fills when the peer
//!   acknowledges bytes past it (the sender will not retransmit them), when the flow
//!   ends, or when a buffer bound is hit — except while the peer has acknowledged
//!   exactly up to the hole: it lacks those bytes too and they will be retransmitted,
//!   so a segment that finds no room is dropped instead (up to 4 x the held-segment
//!   bound per hole), and segments sent far ahead (by an injector, say) cannot make
//!   the stream skip its real bytes.
//! * SYN and FIN consume one sequence number; a direction is closed once all its data
//!   up to its FIN was delivered.

use crate::config::FlowConfig;
use crate::decode::TcpFlags;
use crate::stats::FlowStats;
use otwatch_event::{Direction, Timestamp};

/// Where in-order bytes go: the flow's application layer.
pub(crate) trait AppSink {
    /// In-order bytes of `dir`; returns how many were consumed (0 = need more).
    fn data(&mut self, dir: Direction, data: &[u8]) -> usize;
    /// Bytes of `dir` were lost.
    fn gap(&mut self, dir: Direction);
    /// The time of the packets that carried the bytes delivered next, when it is not
    /// the current packet's (`None`: the current packet's again).
    fn set_time(&mut self, ts: Option<Timestamp>);
    /// The bytes delivered next came in a segment that acknowledged bytes of `dir`
    /// (the other direction) the sensor had not seen. The flow table says so for the
    /// current segment; this is for a held one, delivered later.
    fn unseen_acked(&mut self, dir: Direction);
}

/// What a direction's operations need besides its own state.
pub(crate) struct Budget<'a> {
    pub cfg: &'a FlowConfig,
    /// The current packet's time.
    pub now: Timestamp,
    /// Bytes buffered by all flows (see [`TcpDir::reaccount`]).
    pub total: &'a mut usize,
    pub stats: &'a mut FlowStats,
    /// The current segment acknowledges bytes of the other direction the sensor has
    /// not seen: what is held of it keeps that evidence for when it is delivered.
    pub acks_unseen: bool,
}

/// How far before the peer's acknowledgment a mid-stream join may start (a TCP
/// window); an acknowledgment farther ahead is not trusted.
const MAX_ACKED_BACKLOG: u32 = 1 << 20;

/// The largest receive window TCP can advertise (RFC 7323, 2.3): a segment that starts
/// farther than this past the next byte expected is in no window, and is dropped
/// rather than held.
const MAX_WINDOW: u32 = 1 << 30;

/// Segments refused for want of room while the peer awaits a hole, per hole, in
/// multiples of the held segments allowed; past it the hole is given up.
const MAX_REFUSED_PER_HOLE_FACTOR: usize = 4;

/// What an acknowledgment says of bytes the sensor did not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unseen {
    /// Nothing: it acknowledges bytes seen, or a hole it gave up as a gap.
    No,
    /// Bytes not seen, with no known hole to explain them (lost, or late), no further
    /// than an earlier acknowledgment already showed.
    Acked,
    /// ... further than any acknowledgment showed before (since the last gap, and
    /// since the bytes caught up).
    AckedFurther,
}

/// Whose time the PDUs completed by held segments carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Times {
    /// The current packet's: its data reached them.
    Current,
    /// Their own: a gap was declared before them.
    Own,
}

/// A pending buffer larger than this is freed once it empties.
const KEEP_CAPACITY: usize = 4096;

/// A segment held out of order.
#[derive(Debug)]
struct Held {
    seq: u32,
    /// When the segment was seen.
    ts: Timestamp,
    /// Its acknowledgment covered bytes of the other direction the sensor had not
    /// seen (see [`AppSink::unseen_acked`]).
    acks_unseen: bool,
    data: Vec<u8>,
}

/// What holding a segment costs beyond its bytes, as counted against the buffer
/// bounds: its entry in `held`, and the allocator's share of its buffer (a block
/// header and rounding, 16-32 bytes with glibc's malloc). Without it a sender of
/// one-byte segments held some 60 times the memory that was counted.
pub(crate) const HELD_OVERHEAD: usize = std::mem::size_of::<Held>() + 32;

/// Reassembly state of one direction of a TCP flow.
#[derive(Debug, Default)]
pub(crate) struct TcpDir {
    synced: bool,
    /// Sequence number of the next byte expected in order.
    next_seq: u32,
    /// Delivered in order but not consumed by the application; ends at `next_seq`.
    pending: Vec<u8>,
    /// Out-of-order segments: disjoint, sorted, all starting after `next_seq`.
    held: Vec<Held>,
    /// What `held` costs: its bytes plus [`HELD_OVERHEAD`] per segment.
    held_bytes: usize,
    /// Sequence number of the FIN, once seen.
    fin_seq: Option<u32>,
    /// Highest acknowledgment the peer sent for this direction.
    peer_acked: Option<u32>,
    /// The first acknowledgment the peer sent for this direction before any of its
    /// data was seen: where it stood then. One further says it has sent bytes since
    /// that the sensor did not see.
    first_peer_ack: Option<u32>,
    /// The furthest acknowledgment reported as [`Unseen::AckedFurther`], until a gap
    /// or the bytes themselves pass it.
    unseen_acked: Option<u32>,
    /// Sequence number of the SYN, when seen (tells a retransmitted SYN from a new
    /// connection on the same 5-tuple).
    syn_seq: Option<u32>,
    closed: bool,
    /// Bytes of this direction counted in the global total.
    accounted: usize,
    /// Segments refused for want of room while the peer awaited the current hole.
    refused: usize,
}

pub(crate) fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

pub(crate) fn seq_le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// Length as a sequence-space distance (payloads are < 64 KiB).
fn len32(data: &[u8]) -> u32 {
    u32::try_from(data.len()).unwrap_or(u32::MAX)
}

impl TcpDir {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn is_synced(&self) -> bool {
        self.synced
    }

    pub(crate) fn next_seq(&self) -> u32 {
        self.next_seq
    }

    /// Whether a RST sent in this direction with sequence number `seq` can be the
    /// sender's: within a window (`MAX_ACKED_BACKLOG`), before or after, of the next
    /// byte expected here or of the peer's acknowledgment (the receiver's next byte,
    /// which RFC 5961, 3.2, compares with; after a loss the sensor's own position lags
    /// behind it). Endpoints accept a RST only inside their receive window; a sensor
    /// that ended flows on any RST could be made to drop a connection's state by one
    /// forged packet with a random number, which passes this check about once in
    /// 1,000. With neither a byte nor an acknowledgment of this direction known there
    /// is nothing to compare with (a refused connection's RST).
    pub(crate) fn accepts_rst(&self, seq: u32) -> bool {
        let near = |x: u32| {
            seq.wrapping_sub(x) <= MAX_ACKED_BACKLOG || x.wrapping_sub(seq) <= MAX_ACKED_BACKLOG
        };
        match (self.synced, self.peer_acked) {
            (false, None) => true,
            (synced, acked) => (synced && near(self.next_seq)) || acked.is_some_and(near),
        }
    }

    pub(crate) fn syn_seq(&self) -> Option<u32> {
        self.syn_seq
    }

    /// Follows the sequence space without reassembly, for flows whose payload is
    /// skipped: enough to close on FIN and to recognise late retransmissions.
    pub(crate) fn skim(&mut self, seq: u32, flags: TcpFlags, len: usize) {
        let syn = flags.contains(TcpFlags::SYN);
        if syn {
            self.syn_seq.get_or_insert(seq);
        }
        let start = if syn { seq.wrapping_add(1) } else { seq };
        let end = start.wrapping_add(u32::try_from(len).unwrap_or(u32::MAX));
        if !self.synced {
            self.synced = true;
            self.next_seq = start;
        }
        if seq_lt(self.next_seq, end) {
            self.next_seq = end;
        }
        if flags.contains(TcpFlags::FIN) {
            self.closed = true;
        }
    }

    /// A segment sent in this direction (its ACK field is for the other direction:
    /// see [`TcpDir::peer_ack`]).
    pub(crate) fn segment(
        &mut self,
        dir: Direction,
        seq: u32,
        flags: TcpFlags,
        payload: &[u8],
        b: &mut Budget<'_>,
        app: &mut dyn AppSink,
    ) {
        let syn = flags.contains(TcpFlags::SYN);
        let fin = flags.contains(TcpFlags::FIN);
        if syn {
            self.syn_seq.get_or_insert(seq);
        }
        if !self.synced {
            let mut lost_before = false;
            if syn {
                self.next_seq = seq.wrapping_add(1);
            } else if !payload.is_empty() || fin {
                // Joined mid-stream. Bytes the peer already acknowledged were delivered
                // before the capture started: the first segment seen is often a
                // keep-alive (one old byte, at the acknowledged point minus one) or a
                // retransmission, which must not reach the dissector.
                self.next_seq = match self.peer_acked {
                    Some(a) if seq_lt(seq, a) && a.wrapping_sub(seq) <= MAX_ACKED_BACKLOG => a,
                    _ => seq,
                };
                // The peer acknowledged, since it was first seen, every byte up to where
                // this direction's data now starts: the capture lost those bytes (a
                // client's first request, say), a gap before the first data.
                lost_before = match (self.first_peer_ack, self.peer_acked) {
                    (Some(first), Some(acked)) => {
                        seq_lt(first, self.next_seq)
                            && seq_le(self.next_seq, acked)
                            && self.next_seq.wrapping_sub(first) <= MAX_WINDOW
                    }
                    _ => false,
                };
            } else {
                return;
            }
            self.synced = true;
            if lost_before {
                self.skip_to(dir, self.next_seq, b, app);
            }
        }
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        if self.closed {
            if !payload.is_empty() {
                b.stats.tcp_retransmitted_segments += 1;
            }
            return;
        }
        if fin && self.fin_seq.is_none() {
            self.fin_seq = Some(seq.wrapping_add(len32(payload)));
        }
        if !payload.is_empty() {
            self.data(dir, seq, payload, b, app);
        }
        self.check_fin();
        self.reaccount(b.total);
    }

    /// The peer acknowledged up to `ack` (exclusive) of this direction: a hole that
    /// lies before it will never be filled. Returns whether `ack` covers bytes of this
    /// direction not seen, with no known hole to explain them (they are lost, or
    /// late), and whether further than before.
    pub(crate) fn peer_ack(
        &mut self,
        dir: Direction,
        ack: u32,
        b: &mut Budget<'_>,
        app: &mut dyn AppSink,
    ) -> Unseen {
        if self.peer_acked.is_none_or(|a| seq_lt(a, ack)) {
            self.peer_acked = Some(ack);
        }
        if !self.synced {
            return self.ack_before_data(ack);
        }
        if self.closed || seq_le(ack, self.next_seq) {
            return Unseen::No;
        }
        // Where the hole ends: the first byte held, or the FIN.
        let hole_end = match (self.held.first(), self.fin_seq) {
            (Some(h), _) => h.seq,
            (None, Some(f)) if f != self.next_seq => f,
            // No known hole: the acknowledged bytes may still be on their way (a mirror
            // port can reorder the two directions).
            _ if ack.wrapping_sub(self.next_seq) > MAX_WINDOW => return Unseen::No,
            _ => {
                let next = self.next_seq;
                let further = self
                    .unseen_acked
                    .is_none_or(|u| seq_le(u, next) || seq_lt(u, ack));
                if !further {
                    return Unseen::Acked;
                }
                self.unseen_acked = Some(ack);
                return Unseen::AckedFurther;
            }
        };
        let target = if seq_lt(ack, hole_end) { ack } else { hole_end };
        self.skip_to(dir, target, b, app);
        self.drain_held(dir, b, app, Times::Own);
        self.check_fin();
        self.reaccount(b.total);
        Unseen::No
    }

    /// An acknowledgment of this direction before any of its data was seen (a flow
    /// joined mid-stream, or a SYN not seen): one further than the first says the
    /// sensor missed bytes sent since, such as a PLC's first answer.
    fn ack_before_data(&mut self, ack: u32) -> Unseen {
        let Some(first) = self.first_peer_ack else {
            self.first_peer_ack = Some(ack);
            return Unseen::No;
        };
        if !seq_lt(first, ack) || ack.wrapping_sub(first) > MAX_WINDOW {
            return Unseen::No;
        }
        if self.unseen_acked.is_some_and(|u| seq_le(ack, u)) {
            return Unseen::Acked;
        }
        self.unseen_acked = Some(ack);
        Unseen::AckedFurther
    }

    /// The flow ends: every hole becomes a gap and what was held is delivered.
    pub(crate) fn flush(&mut self, dir: Direction, b: &mut Budget<'_>, app: &mut dyn AppSink) {
        while let Some(first) = self.held.first() {
            let target = first.seq;
            self.skip_to(dir, target, b, app);
            self.drain_held(dir, b, app, Times::Own);
        }
        self.reaccount(b.total);
    }

    /// Frees every buffer (the flow ended); sequence state is kept to recognise late
    /// retransmissions.
    pub(crate) fn release(&mut self, total: &mut usize) {
        self.pending = Vec::new();
        self.held = Vec::new();
        self.held_bytes = 0;
        self.reaccount(total);
    }

    /// Brings this direction's share of the global buffered total up to date.
    pub(crate) fn reaccount(&mut self, total: &mut usize) {
        let now = self.pending.capacity() + self.held_bytes;
        *total = total.saturating_sub(self.accounted).saturating_add(now);
        self.accounted = now;
    }

    #[cfg(test)]
    pub(crate) fn buffered(&self) -> (usize, usize) {
        (self.pending.len(), self.held.len())
    }

    fn check_fin(&mut self) {
        if let Some(f) = self.fin_seq {
            if !self.closed && self.next_seq == f {
                self.closed = true;
                self.next_seq = f.wrapping_add(1);
            }
        }
    }

    fn data(
        &mut self,
        dir: Direction,
        seq: u32,
        payload: &[u8],
        b: &mut Budget<'_>,
        app: &mut dyn AppSink,
    ) {
        if seq == self.next_seq && self.held.is_empty() && !payload.is_empty() {
            // The usual case, in order with nothing held: the first round below, alone.
            self.next_seq = seq.wrapping_add(len32(payload));
            self.deliver(dir, payload, b, app);
            return;
        }
        if seq_lt(self.next_seq, seq) && seq.wrapping_sub(self.next_seq) > MAX_WINDOW {
            // In no window of ours. When the peer acknowledged bytes beyond what we
            // saw and this segment lies within a window of that, the capture lost more
            // than a window: the bytes up to the acknowledgment are a gap.
            match self.peer_acked {
                Some(a)
                    if seq_lt(self.next_seq, a)
                        && seq_le(a, seq)
                        && seq.wrapping_sub(a) <= MAX_WINDOW =>
                {
                    self.skip_to(dir, a, b, app);
                    self.drain_held(dir, b, app, Times::Own);
                }
                _ => {
                    b.stats.reassembly_bytes_dropped += payload.len() as u64;
                    return;
                }
            }
        }
        // Each round delivers up to the next held segment, stores, or skips past a held
        // segment: bounded by the held segments.
        let mut delivered = false;
        let mut overlapped = false;
        for _ in 0..2 * self.held.len() + 3 {
            let end = seq.wrapping_add(len32(payload));
            if seq_le(end, self.next_seq) {
                break;
            }
            if seq_le(seq, self.next_seq) {
                let skip = self.next_seq.wrapping_sub(seq) as usize;
                // Bytes before next_seq were delivered already (by another segment, or
                // by this one in an earlier round).
                overlapped |= skip > 0 && !delivered;
                let mut fresh = payload.get(skip..).unwrap_or_default();
                // First copy wins over what is already held out of order, too: deliver
                // up to the held segment, which the next round skips over.
                if let Some(h) = self.held.first() {
                    if seq_lt(h.seq, end) {
                        let keep = h.seq.wrapping_sub(self.next_seq) as usize;
                        fresh = fresh.get(..keep).unwrap_or(fresh);
                        overlapped = true;
                    }
                }
                self.next_seq = self.next_seq.wrapping_add(len32(fresh));
                self.deliver(dir, fresh, b, app);
                self.drain_held(dir, b, app, Times::Current);
                delivered = true;
                continue;
            }
            if self.hold(seq, payload, b) {
                return;
            }
            // No room. When the peer has acknowledged exactly up to the hole, it
            // lacks those bytes too, and they will come again (if the capture alone
            // lost them, its next acknowledgment passes the hole: a gap): this
            // segment is refused rather than the hole given up, so that segments sent
            // ahead (by an injector, say) cannot make the stream skip the real data.
            // Bounded per hole, should the peer's acknowledgments stop being seen.
            if self.peer_acked == Some(self.next_seq)
                && self.refused < MAX_REFUSED_PER_HOLE_FACTOR * b.cfg.max_ooo_segments_per_direction
            {
                self.refused += 1;
                b.stats.reassembly_bytes_dropped += payload.len() as u64;
                return;
            }
            // Nothing says it will: the hole before the earliest data we know of will
            // not be filled within the bounds.
            let target = match self.held.first() {
                Some(h) if seq_lt(h.seq, seq) => h.seq,
                _ => seq,
            };
            self.skip_to(dir, target, b, app);
            self.drain_held(dir, b, app, Times::Own);
        }
        if !delivered {
            b.stats.tcp_retransmitted_segments += 1;
        } else if overlapped {
            b.stats.tcp_overlaps += 1;
        }
    }

    /// Holds the parts of an out-of-order segment not already held. Returns false when
    /// a bound leaves no room for them.
    fn hold(&mut self, seq: u32, payload: &[u8], b: &mut Budget<'_>) -> bool {
        // Offsets relative to next_seq: every held segment is ahead of it.
        let rel = |s: u32| u64::from(s.wrapping_sub(self.next_seq));
        let start = rel(seq);
        let end = start + payload.len() as u64;
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut cur = start;
        for h in &self.held {
            let (a, z) = (rel(h.seq), rel(h.seq) + h.data.len() as u64);
            if z <= cur {
                continue;
            }
            if a >= end {
                break;
            }
            if a > cur {
                pieces.push((cur, a));
            }
            cur = cur.max(z);
        }
        if cur < end {
            pieces.push((cur, end));
        }
        let fresh: u64 = pieces.iter().map(|(a, z)| z - a).sum();
        if fresh == 0 {
            b.stats.tcp_retransmitted_segments += 1;
            return true;
        }
        let fresh = fresh as usize;
        let cost = fresh + pieces.len() * HELD_OVERHEAD;
        let fits = self.held.len() + pieces.len() <= b.cfg.max_ooo_segments_per_direction
            && self.pending.len() + self.held_bytes + cost <= b.cfg.max_buffered_per_direction
            && b.total.saturating_add(cost) <= b.cfg.max_buffered_total;
        if !fits {
            return false;
        }
        if fresh < payload.len() {
            b.stats.tcp_overlaps += 1;
        }
        b.stats.tcp_out_of_order_segments += 1;
        for (a, z) in pieces {
            let data = payload
                .get((a - start) as usize..(z - start) as usize)
                .unwrap_or_default()
                .to_vec();
            let seq = self.next_seq.wrapping_add(a as u32);
            let at = self.held.partition_point(|h| rel(h.seq) < a);
            self.held.insert(
                at,
                Held {
                    seq,
                    ts: b.now,
                    acks_unseen: b.acks_unseen,
                    data,
                },
            );
        }
        self.held_bytes += cost;
        *b.total += cost;
        self.accounted += cost;
        true
    }

    /// Declares the bytes before `target` lost.
    fn skip_to(&mut self, dir: Direction, target: u32, b: &mut Budget<'_>, app: &mut dyn AppSink) {
        self.refused = 0;
        self.unseen_acked = None;
        app.gap(dir);
        b.stats.tcp_gaps += 1;
        b.stats.reassembly_bytes_dropped += self.pending.len() as u64;
        self.clear_pending();
        self.next_seq = target;
    }

    /// Delivers held segments that the in-order data has reached, at the current
    /// packet's time when its data reached them, or at their own after a gap: the
    /// packet that completed a PDU is then the held segment that ends it (or, for a PDU
    /// that begins in bytes delivered before, the later of the two), not the packet
    /// whose acknowledgment or arrival made the sensor give the hole up.
    fn drain_held(
        &mut self,
        dir: Direction,
        b: &mut Budget<'_>,
        app: &mut dyn AppSink,
        times: Times,
    ) {
        // The time of the latest bytes left pending by a held segment.
        let mut carried: Option<Timestamp> = None;
        let mut timed = false;
        while let Some(first) = self.held.first() {
            if seq_lt(self.next_seq, first.seq) {
                break;
            }
            let h = self.held.remove(0);
            self.refused = 0;
            // Given back at once: the next segment of this call may need the room.
            let cost = h.data.len() + HELD_OVERHEAD;
            self.held_bytes = self.held_bytes.saturating_sub(cost);
            self.accounted = self.accounted.saturating_sub(cost);
            *b.total = b.total.saturating_sub(cost);
            let skip = self.next_seq.wrapping_sub(h.seq) as usize;
            let fresh = h.data.get(skip..).unwrap_or_default();
            self.next_seq = self.next_seq.wrapping_add(len32(fresh));
            if h.acks_unseen && !fresh.is_empty() {
                app.unseen_acked(dir.reverse());
            }
            if times == Times::Current {
                self.deliver(dir, fresh, b, app);
                continue;
            }
            let ts = match carried {
                Some(c) if !self.pending.is_empty() => c.max(h.ts),
                _ => h.ts,
            };
            app.set_time(Some(ts));
            timed = true;
            self.deliver(dir, fresh, b, app);
            // The bytes left pending: this segment's alone, or older ones too.
            carried = Some(if self.pending.len() <= fresh.len() {
                h.ts
            } else {
                ts
            });
        }
        if timed {
            app.set_time(None);
        }
    }

    /// Gives in-order bytes to the application; keeps what it leaves (bounded).
    fn deliver(&mut self, dir: Direction, data: &[u8], b: &mut Budget<'_>, app: &mut dyn AppSink) {
        if data.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            // Zero-copy: straight from the packet (or the held segment).
            let used = feed(app, dir, data);
            let rest = data.get(used..).unwrap_or_default();
            if rest.is_empty() {
                return;
            }
            let growth = rest.len().saturating_sub(self.pending.capacity());
            if self.held_bytes + rest.len() > b.cfg.max_buffered_per_direction
                || b.total.saturating_add(growth) > b.cfg.max_buffered_total
            {
                self.overflow(dir, rest.len(), b, app);
            } else {
                self.pending.extend_from_slice(rest);
            }
            return;
        }
        self.pending.extend_from_slice(data);
        let used = feed(app, dir, &self.pending);
        self.pending.drain(..used.min(self.pending.len()));
        let over_dir = self.pending.len() + self.held_bytes > b.cfg.max_buffered_per_direction;
        let counted = self.accounted.saturating_sub(self.held_bytes);
        let growth = self.pending.capacity().saturating_sub(counted);
        let over_total = b.total.saturating_add(growth) > b.cfg.max_buffered_total;
        if over_dir || over_total {
            let n = self.pending.len();
            self.clear_pending();
            self.overflow(dir, n, b, app);
        } else if self.pending.is_empty() && self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        }
    }

    /// The application left more than the bound allows unconsumed: a gap.
    fn overflow(
        &mut self,
        dir: Direction,
        dropped: usize,
        b: &mut Budget<'_>,
        app: &mut dyn AppSink,
    ) {
        app.gap(dir);
        b.stats.tcp_gaps += 1;
        b.stats.reassembly_bytes_dropped += dropped as u64;
    }

    fn clear_pending(&mut self) {
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }
}

/// Offers `data` until the application consumes it all or asks for more.
fn feed(app: &mut dyn AppSink, dir: Direction, data: &[u8]) -> usize {
    let mut off = 0;
    // Each round consumes at least one byte.
    while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
        let n = app.data(dir, rest).min(rest.len());
        if n == 0 {
            break;
        }
        off += n;
    }
    off
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::ToServer as S;

    /// Records what it is given; consumes whole `pdu`-byte records.
    #[derive(Default)]
    struct Rec {
        pdu: usize,
        seen: Vec<u8>,
        pdus: Vec<Vec<u8>>,
        gaps: usize,
        /// The time set for what is delivered (`None`: the current packet's).
        time: Option<Timestamp>,
        /// Each PDU's time.
        times: Vec<Option<Timestamp>>,
        /// The directions told of unseen acknowledgments, with how many bytes had
        /// been seen then.
        unseen_acked: Vec<(Direction, usize)>,
    }

    impl AppSink for Rec {
        fn data(&mut self, _dir: Direction, data: &[u8]) -> usize {
            if data.len() < self.pdu {
                return 0;
            }
            self.times.push(self.time);
            self.pdus.push(data[..self.pdu].to_vec());
            self.seen.extend_from_slice(&data[..self.pdu]);
            self.pdu
        }
        fn gap(&mut self, _dir: Direction) {
            self.gaps += 1;
        }
        fn set_time(&mut self, ts: Option<Timestamp>) {
            self.time = ts;
        }
        fn unseen_acked(&mut self, dir: Direction) {
            self.unseen_acked.push((dir, self.seen.len()));
        }
    }

    struct Rig {
        d: TcpDir,
        cfg: FlowConfig,
        /// The current packet's time.
        now: Timestamp,
        total: usize,
        stats: FlowStats,
        app: Rec,
        /// The segments sent acknowledge unseen bytes of the other direction.
        acks_unseen: bool,
    }

    impl Rig {
        fn new(pdu: usize) -> Self {
            Rig {
                d: TcpDir::default(),
                cfg: FlowConfig::default(),
                now: Timestamp::from_nanos(0),
                total: 0,
                stats: FlowStats::default(),
                app: Rec {
                    pdu,
                    ..Rec::default()
                },
                acks_unseen: false,
            }
        }
        fn seg(&mut self, seq: u32, payload: &[u8]) {
            self.seg_flags(seq, false, false, payload);
        }
        fn seg_flags(&mut self, seq: u32, syn: bool, fin: bool, payload: &[u8]) {
            let mut b = Budget {
                cfg: &self.cfg,
                now: self.now,
                total: &mut self.total,
                stats: &mut self.stats,
                acks_unseen: self.acks_unseen,
            };
            let mut flags = TcpFlags::ACK;
            if syn {
                flags = flags | TcpFlags::SYN;
            }
            if fin {
                flags = flags | TcpFlags::FIN;
            }
            self.d
                .segment(S, seq, flags, payload, &mut b, &mut self.app);
        }
        fn ack(&mut self, ack: u32) -> Unseen {
            let mut b = Budget {
                cfg: &self.cfg,
                now: self.now,
                total: &mut self.total,
                stats: &mut self.stats,
                acks_unseen: false,
            };
            self.d.peer_ack(S, ack, &mut b, &mut self.app)
        }
        fn flush(&mut self) {
            let mut b = Budget {
                cfg: &self.cfg,
                now: self.now,
                total: &mut self.total,
                stats: &mut self.stats,
                acks_unseen: false,
            };
            self.d.flush(S, &mut b, &mut self.app);
        }
    }

    #[test]
    fn midstream_join_skips_what_the_peer_acknowledged() {
        // The peer acknowledged up to 1000 before this direction sent anything we saw;
        // then a keep-alive: one old byte at 999.
        let mut r = Rig::new(1);
        r.ack(1000);
        r.seg(999, b"\0");
        assert_eq!(r.app.seen, b"");
        assert_eq!(r.stats.tcp_retransmitted_segments, 1);
        r.seg(1000, b"a");
        assert_eq!(r.app.seen, b"a");
        // An acknowledgment far away (more than a window) is not trusted.
        let mut r = Rig::new(1);
        r.ack(5_000_000);
        r.seg(10, b"b");
        assert_eq!(r.app.seen, b"b");
    }

    #[test]
    fn sequence_comparisons_wrap() {
        assert!(seq_lt(u32::MAX, 0));
        assert!(seq_lt(u32::MAX - 5, 3));
        assert!(!seq_lt(3, u32::MAX - 5));
        assert!(seq_le(7, 7));
    }

    #[test]
    fn split_pdu_is_kept_and_presented_again() {
        let mut r = Rig::new(4);
        r.seg_flags(99, true, false, b"");
        r.seg(100, b"ab");
        assert_eq!(r.d.buffered(), (2, 0));
        r.seg(102, b"c");
        r.seg(103, b"def");
        assert_eq!(r.app.pdus, [b"abcd".to_vec()]);
        assert_eq!(r.d.buffered(), (2, 0));
        r.seg(106, b"gh");
        assert_eq!(r.app.pdus, [b"abcd".to_vec(), b"efgh".to_vec()]);
        assert_eq!(r.d.buffered(), (0, 0));
        assert_eq!(r.total, r.d.pending.capacity());
    }

    #[test]
    fn overlap_with_held_data_first_copy_wins() {
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        r.seg(3, b"DE"); // held: 3..5
                         // Covers 1..6: bytes 3..5 were held first and win; 5 is new.
        r.seg(1, b"bcxyf");
        assert_eq!(r.app.seen, b"abcDEf");
        assert_eq!(r.stats.tcp_overlaps, 1);
        // A held segment spanning over two held ones keeps only the uncovered parts.
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        r.seg(3, b"D");
        r.seg(6, b"G");
        r.seg(2, b"cxefxh"); // 2..8: held parts 2..3, 4..6, 7..8 are new
        assert_eq!(r.d.buffered(), (0, 5));
        r.seg(1, b"b");
        assert_eq!(r.app.seen, b"abcDefGh");
    }

    #[test]
    fn fin_closes_after_the_hole_fills() {
        let mut r = Rig::new(1);
        r.seg(10, b"a");
        r.seg_flags(12, false, true, b"c"); // held; FIN at 13
        assert!(!r.d.is_closed());
        r.seg(11, b"b");
        assert!(r.d.is_closed());
        assert_eq!(r.d.next_seq(), 14);
        assert_eq!(r.app.seen, b"abc");
    }

    #[test]
    fn hole_before_fin_acked_is_a_gap() {
        let mut r = Rig::new(1);
        r.seg(10, b"a");
        r.seg_flags(15, false, true, b""); // FIN at 15, bytes 11..15 never seen
        r.ack(16);
        assert!(r.d.is_closed());
        assert_eq!(r.app.gaps, 1);
    }

    #[test]
    fn ack_inside_a_hole_skips_only_the_acked_part() {
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        r.seg(10, b"k"); // held
        r.ack(5); // 1..5 lost for good; 5..10 may still come
        assert_eq!(r.app.gaps, 1);
        assert_eq!(r.d.next_seq(), 5);
        r.seg(5, b"fghij");
        assert_eq!(r.app.seen, b"afghijk");
        // An ACK with no hole known does nothing.
        r.ack(100);
        assert_eq!(r.app.gaps, 1);
    }

    #[test]
    fn after_a_gap_held_segments_deliver_at_their_own_time() {
        let t = Timestamp::from_nanos;
        // Two-byte PDUs: `segments` (time in ns, sequence number, bytes), then the
        // peer's acknowledgment at t=9 gives up the hole before 4.
        let gap_after = |segments: &[(i64, u32, &[u8])]| {
            let mut r = Rig::new(2);
            for &(at, seq, bytes) in segments {
                r.now = t(at);
                r.seg(seq, bytes);
            }
            r.now = t(9);
            r.ack(4);
            assert_eq!(r.app.seen, b"abefgh");
            r
        };
        // "cd" lost; "ef" at t=2, "h" at t=4 and "g" at t=3 held. "ef" was whole at
        // t=2; "gh" began at t=3 and ended in a segment of t=4.
        let mut r = gap_after(&[(1, 0, b"ab"), (2, 4, b"ef"), (4, 7, b"h"), (3, 6, b"g")]);
        assert_eq!(r.app.times, [None, Some(t(2)), Some(t(4))]);
        // What comes next is the current packet's again.
        assert_eq!(r.app.time, None);
        r.seg(8, b"ij");
        assert_eq!(r.app.times.last(), Some(&None));
        // Held out of order among themselves: "fg" at t=1, "h" at t=2, "e" at t=5.
        // "ef" ends in bytes of t=1 but began in bytes of t=5; "gh" is of t=1 and 2.
        let r = gap_after(&[(1, 0, b"ab"), (1, 5, b"fg"), (2, 7, b"h"), (5, 4, b"e")]);
        assert_eq!(r.app.times, [None, Some(t(5)), Some(t(2))]);

        // Filled by an in-order segment instead: the segment that filled the hole
        // completed what was held.
        let mut r = Rig::new(2);
        r.now = t(1);
        r.seg(0, b"ab");
        r.now = t(2);
        r.seg(4, b"ef");
        r.now = t(5);
        r.seg(2, b"cd");
        assert_eq!(r.app.seen, b"abcdef");
        assert_eq!(r.app.times, [None, None, None]);

        // A flow that ends with a hole: the held data at its own time.
        let mut r = Rig::new(2);
        r.now = t(1);
        r.seg(0, b"ab");
        r.seg(4, b"ef");
        r.now = t(60);
        r.flush();
        assert_eq!(r.app.seen, b"abef");
        assert_eq!(r.app.times, [None, Some(t(1))]);
    }

    #[test]
    fn acknowledgments_of_unseen_bytes_say_when_they_reach_further() {
        let mut r = Rig::new(1);
        r.seg(0, b"ab");
        assert_eq!(r.ack(2), Unseen::No);
        // 2..5 acknowledged, not seen; then again, then further.
        assert_eq!(r.ack(5), Unseen::AckedFurther);
        assert_eq!(r.ack(5), Unseen::Acked);
        assert_eq!(r.ack(4), Unseen::Acked);
        assert_eq!(r.ack(7), Unseen::AckedFurther);
        // The bytes come after all (late): what is acknowledged next is new again.
        r.seg(2, b"cdefg");
        assert_eq!(r.ack(7), Unseen::No);
        assert_eq!(r.ack(8), Unseen::AckedFurther);
        // A hole with data held after it is a gap at once, and a fresh start.
        r.seg(10, b"k");
        assert_eq!(r.ack(11), Unseen::No);
        assert_eq!(r.app.gaps, 1);
        assert_eq!(r.ack(12), Unseen::AckedFurther);
    }

    #[test]
    fn acknowledgments_before_any_data_say_when_bytes_went_unseen() {
        // A flow joined mid-stream: the client's acknowledgment moves on while the
        // capture shows none of the PLC's bytes (its answer was lost).
        let mut r = Rig::new(1);
        assert_eq!(r.ack(100), Unseen::No, "where the PLC stands");
        assert_eq!(r.ack(100), Unseen::No);
        assert_eq!(r.ack(125), Unseen::AckedFurther);
        assert_eq!(r.ack(125), Unseen::Acked);
        assert_eq!(r.ack(90), Unseen::No, "older");
        assert_eq!(r.ack(130), Unseen::AckedFurther);
        // Its data starts where the peer's acknowledgment is: the bytes before, since
        // the first acknowledgment, are a gap.
        r.seg(130, b"z");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"z"[..], 1));
        assert_eq!(r.stats.tcp_gaps, 1);
        assert_eq!(r.ack(131), Unseen::No);
        // Data beyond what the peer acknowledged: the bytes before may be on their
        // way (or were never sent), so it starts where it comes, as before.
        let mut r = Rig::new(1);
        r.ack(100);
        r.ack(105);
        r.seg(110, b"y");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"y"[..], 0));
        // No acknowledgment moved: nothing lost.
        let mut r = Rig::new(1);
        r.ack(100);
        r.seg(100, b"x");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"x"[..], 0));
        // Further than a window from the first: not trusted.
        let mut r = Rig::new(1);
        r.ack(10);
        assert_eq!(r.ack(10 + MAX_WINDOW + 1), Unseen::No);
    }

    #[test]
    fn a_held_segment_brings_its_own_unseen_acknowledgment_when_delivered() {
        // Byte 1 is lost. The segment after it acknowledged bytes of the other
        // direction the sensor had not seen (it answers a lost request, say); it is
        // held, and delivered only once the peer acknowledges past the hole, after
        // the flow table has told the application of later segments' evidence.
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        r.acks_unseen = true;
        r.seg(2, b"b");
        r.acks_unseen = false;
        r.seg(3, b"c");
        assert!(r.app.unseen_acked.is_empty());
        r.ack(4);
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"abc"[..], 1));
        assert_eq!(
            r.app.unseen_acked,
            [(Direction::ToClient, 1)],
            "before b, only"
        );
        // Filled in order, too.
        let mut r = Rig::new(1);
        r.acks_unseen = true;
        r.seg(0, b"a");
        r.seg(2, b"c");
        r.acks_unseen = false;
        r.seg(1, b"b");
        assert_eq!(r.app.seen, b"abc");
        assert_eq!(r.app.unseen_acked, [(Direction::ToClient, 2)], "before c");
    }

    #[test]
    fn too_many_held_segments_is_a_gap() {
        let mut r = Rig::new(1);
        r.cfg.max_ooo_segments_per_direction = 2;
        r.seg(0, b"a");
        r.seg(2, b"c");
        r.seg(4, b"e");
        assert_eq!(r.d.buffered(), (0, 2));
        r.seg(6, b"g"); // no room: 1..2 given up, c delivered, 3..4 still a hole
        assert_eq!(r.app.gaps, 1);
        assert_eq!(r.app.seen, b"ac");
        assert_eq!(r.d.buffered(), (0, 2));
        r.flush();
        assert_eq!(r.app.gaps, 3);
        assert_eq!(r.app.seen, b"aceg");
        assert_eq!(r.total, 0);
        assert_eq!(r.stats.tcp_gaps, 3);
    }

    #[test]
    fn a_segment_in_no_window_is_dropped() {
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        r.seg(1 + MAX_WINDOW + 1, b"z");
        assert_eq!(r.d.buffered(), (0, 0));
        assert_eq!(r.stats.reassembly_bytes_dropped, 1);
        // Within the largest window: held.
        r.seg(1 + MAX_WINDOW, b"y");
        assert_eq!(r.d.buffered(), (0, 1));
        r.seg(1, b"b");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"ab"[..], 0));
    }

    #[test]
    fn segments_sent_ahead_cannot_make_a_stream_skip_what_its_peer_awaits() {
        let mut r = Rig::new(1);
        r.cfg.max_ooo_segments_per_direction = 2;
        r.seg(0, b"a");
        // The peer acknowledged everything so far: it awaits byte 1.
        r.ack(1);
        // One-byte segments far ahead fill the room, and more come.
        for i in 0..5 {
            r.seg(100_000 + 10 * i, b"x");
        }
        assert_eq!((r.d.buffered(), r.app.gaps), ((0, 2), 0));
        assert_eq!(r.stats.reassembly_bytes_dropped, 3);
        // The real bytes still arrive in order.
        r.seg(1, b"bc");
        r.ack(3);
        r.seg(3, b"d");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"abcd"[..], 0));
        // Refusals are bounded per hole (4 x the held segments allowed, 3 of them
        // used above): then the hole is given up.
        r.ack(4);
        for i in 0..5 {
            r.seg(200_000 + 10 * i, b"x");
        }
        assert_eq!((r.app.gaps, r.stats.reassembly_bytes_dropped), (0, 8));
        r.seg(300_000, b"x");
        assert_eq!(r.app.gaps, 1);
    }

    #[test]
    fn a_peer_whose_acknowledgments_stopped_being_seen_does_not_stall_the_stream() {
        let mut r = Rig::new(1);
        r.cfg.max_ooo_segments_per_direction = 1;
        r.seg(0, b"a");
        // Only the handshake of the other direction was seen: its acknowledgment
        // lags behind the stream.
        r.ack(0);
        r.seg(1, b"b");
        r.seg(3, b"d");
        r.seg(5, b"f"); // no room: the hole at 2 is given up
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"abd"[..], 1));
    }

    #[test]
    fn a_loss_longer_than_a_window_resumes_at_the_peers_acknowledgment() {
        let mut r = Rig::new(1);
        r.seg(0, b"a");
        // The receiver acknowledged bytes more than a window past what was seen.
        let far = 1 + MAX_WINDOW + 100;
        r.ack(far);
        r.seg(far, b"z");
        assert_eq!((r.app.seen.as_slice(), r.app.gaps), (&b"az"[..], 1));
        assert_eq!(r.d.next_seq(), far + 1);
    }

    #[test]
    fn global_budget_applies() {
        let mut r = Rig::new(1);
        r.cfg.max_buffered_total = 4;
        r.total = 2; // another flow holds 2
        r.seg(0, b"a");
        r.seg(2, b"cde"); // 3 bytes would make 5 > 4: skip to 2
        assert_eq!(r.app.gaps, 1);
        assert_eq!(r.app.seen, b"acde");
        assert_eq!(r.total, 2);
    }

    #[test]
    fn held_segments_count_their_overhead_against_the_budget() {
        // A segment held costs at least its entry and a heap block (some 48 bytes on
        // 64-bit glibc): 1 KiB of budget holds no more than 21 one-byte segments.
        let mut r = Rig::new(1);
        r.cfg.max_buffered_total = 1024;
        r.cfg.max_ooo_segments_per_direction = 1000;
        r.seg(0, b"a");
        let mut most = 0;
        for i in 0..100u32 {
            r.seg(2 + 2 * i, b"x");
            most = most.max(r.d.buffered().1);
            assert!(r.total <= 1024);
        }
        assert!(most <= 1024 / 49, "{most} one-byte segments held in 1 KiB");
        assert!(r.app.gaps > 0);
        // Room for ten one-byte segments with their overhead, not for an eleventh.
        let mut r = Rig::new(1);
        r.cfg.max_buffered_total = 10 * (1 + HELD_OVERHEAD);
        r.seg(0, b"a");
        for i in 0..10u8 {
            r.seg(2 + 2 * u32::from(i), &[b'b' + i]);
        }
        assert_eq!((r.d.buffered(), r.app.gaps), ((0, 10), 0));
        assert_eq!(r.total, 10 * (1 + HELD_OVERHEAD));
        r.seg(22, b"z");
        assert_eq!(r.app.gaps, 1);
        r.flush();
        assert_eq!(r.total, 0);
    }

    #[test]
    fn wrap_around_with_held_segment() {
        let mut r = Rig::new(3);
        let isn = u32::MAX - 3;
        r.seg_flags(isn, true, false, b""); // next_seq = MAX - 2
        r.seg(1, b"efg"); // after the wrap, held
        r.seg(u32::MAX - 2, b"abcd"); // MAX-2, MAX-1, MAX, 0
        assert_eq!(r.app.seen, b"abcdefg"[..6]);
        assert_eq!(r.d.next_seq(), 4);
        assert_eq!(r.d.buffered(), (1, 0));
    }
}
