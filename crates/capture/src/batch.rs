//! Batches: how packets cross from the source thread to the flow workers.
//!
//! The source routes each packet to the worker that owns its address pair (the shard,
//! computed by the flow crate) and appends it to that worker's pending [`Batch`]. A
//! batch is sent when it is full, when [`Batcher::flush_stale`] finds it older than the
//! flush timeout (live capture: an alert must not wait for a batch to fill), or on
//! [`Batcher::flush_all`]. A replayed batch points into the memory-mapped file (one
//! `Arc` clone per batch, no copy); a live batch owns a copy of its packets.
//!
//! Every batch carries a watermark, [`Batch::upto`]: every packet with a smaller index
//! had been routed when the batch was sent, so the worker has now received its whole
//! share of them. The merge behind the workers uses it to release events in packet
//! order; [`Batcher::heartbeat`] moves the watermark of workers that get no traffic.
//!
//! Workers hand spent batches to a [`Recycler`]; the batcher reuses them, so the steady
//! state allocates nothing per packet or per batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use memmap2::Mmap;
use otwatch_event::Timestamp;

use crate::{LinkType, Packet};

/// Batching limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Packets per batch before it is sent (default 1024).
    pub max_packets: usize,
    /// Bytes copied into an owned (live) batch before it is sent (default 1 MiB); a
    /// single larger packet still goes, alone.
    pub max_bytes: usize,
    /// Age after which [`Batcher::flush_stale`] sends a batch (default 5 ms).
    pub flush_timeout: Duration,
    /// Spent batches kept for reuse (default 1024); more are freed.
    pub pool: usize,
    /// Live capture: when a worker's queue is full, drop the batch (counted in
    /// [`Batcher::dropped`]) instead of waiting, so that the source keeps draining the
    /// kernel's ring. Replay waits (default false): a file can always be read later.
    pub drop_when_full: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_packets: 1024,
            max_bytes: 1 << 20,
            flush_timeout: Duration::from_millis(5),
            pool: 1024,
            drop_when_full: false,
        }
    }
}

/// One packet of a batch: its metadata and where its bytes are in the batch's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPacket {
    /// Index of the packet over all inputs of the run (0-based, in read order).
    pub index: u64,
    pub ts: Timestamp,
    pub linktype: LinkType,
    /// The length of the packet on the wire.
    pub orig_len: u32,
    start: usize,
    len: usize,
}

/// A clock tick: every worker receives it, after its packets with a smaller index and
/// before those with a greater one. It takes up a packet index of its own (no packet
/// has it), so what workers produce on a tick has a place in the packet order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub index: u64,
    pub ts: Timestamp,
}

/// Packets on their way to one worker, with the buffer they live in.
#[derive(Debug, Default)]
pub struct Batch {
    pub packets: Vec<BatchPacket>,
    /// Watermark: every packet with an index below `upto` had been routed when this
    /// batch was sent, so the receiving worker has seen all of its share of them.
    pub upto: u64,
    /// A tick that comes after this batch's packets.
    pub tick: Option<Tick>,
    /// The mapped file the packets point into (replay), or `None` (owned bytes).
    map: Option<Arc<Mmap>>,
    owned: Vec<u8>,
}

impl Batch {
    fn buffer(&self) -> &[u8] {
        match &self.map {
            Some(map) => map,
            None => &self.owned,
        }
    }

    /// The bytes of `p`, a packet of this batch (empty if it is not).
    pub fn data(&self, p: &BatchPacket) -> &[u8] {
        self.buffer()
            .get(p.start..p.start.saturating_add(p.len))
            .unwrap_or(&[])
    }

    /// Packets with their bytes, in routing order.
    pub fn iter(&self) -> impl Iterator<Item = (&BatchPacket, &[u8])> + '_ {
        let buf = self.buffer();
        self.packets.iter().map(move |p| {
            (
                p,
                buf.get(p.start..p.start.saturating_add(p.len))
                    .unwrap_or(&[]),
            )
        })
    }

    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Index of the last packet.
    pub fn last_index(&self) -> Option<u64> {
        self.packets.last().map(|p| p.index)
    }

    /// Empties the batch, keeping its allocations, and lets go of the mapped file.
    fn reset(&mut self) {
        self.packets.clear();
        self.owned.clear();
        self.map = None;
        self.upto = 0;
        self.tick = None;
    }

    /// True if nothing was ever allocated (a heartbeat): not worth recycling.
    fn unallocated(&self) -> bool {
        self.packets.capacity() == 0 && self.owned.capacity() == 0
    }
}

/// A worker has hung up: the batch for it was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow worker {worker} has stopped")]
pub struct Disconnected {
    pub worker: usize,
}

/// Given to the workers to hand back spent batches. Never blocks: when the pool is full
/// (or the batcher gone) the batch is simply freed.
#[derive(Debug, Clone)]
pub struct Recycler {
    tx: Sender<Batch>,
    max_owned: usize,
}

impl Recycler {
    pub fn recycle(&self, mut batch: Batch) {
        if batch.unallocated() {
            return;
        }
        batch.reset();
        // A buffer swollen by one jumbo packet is not kept.
        if batch.owned.capacity() > self.max_owned {
            batch.owned = Vec::new();
        }
        match self.tx.try_send(batch) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    pending: Option<Batch>,
    /// When the first packet of `pending` was added.
    opened: Option<Instant>,
    /// The watermark of the last batch sent to this worker.
    sent_upto: u64,
    /// `drop_when_full`: a tick whose batch was dropped, with that batch's watermark.
    /// It goes to the worker, alone, before anything newer (a newer tick replaces it),
    /// so that a worker that fell behind still ends its idle flows on time.
    held_tick: Option<(Tick, u64)>,
}

/// Routes packets to per-worker batches (see the module docs).
#[derive(Debug)]
pub struct Batcher {
    workers: Vec<Sender<Batch>>,
    shards: Vec<Shard>,
    spare: Receiver<Batch>,
    config: BatchConfig,
    /// One past the highest packet index routed so far.
    next_index: u64,
    last_heartbeat: Option<Instant>,
    dropped: Dropped,
}

/// What a batcher in `drop_when_full` mode dropped because a worker's queue was full.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub batches: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl Batcher {
    /// A batcher over one channel per worker, and the recycler for the workers.
    pub fn new(workers: Vec<Sender<Batch>>, config: BatchConfig) -> (Batcher, Recycler) {
        let config = BatchConfig {
            max_packets: config.max_packets.max(1),
            max_bytes: config.max_bytes.max(1),
            pool: config.pool.max(1),
            ..config
        };
        let (tx, spare) = crossbeam_channel::bounded(config.pool);
        let shards = workers.iter().map(|_| Shard::default()).collect();
        let recycler = Recycler {
            tx,
            max_owned: config.max_bytes.saturating_mul(4),
        };
        let batcher = Batcher {
            workers,
            shards,
            spare,
            config,
            next_index: 0,
            last_heartbeat: None,
            dropped: Dropped::default(),
        };
        (batcher, recycler)
    }

    /// Number of workers (shards).
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// One past the highest packet index routed so far.
    pub fn routed(&self) -> u64 {
        self.next_index
    }

    /// What was dropped because a worker could not keep up (`drop_when_full`).
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// Sends every pending batch, each followed by a tick at `ts` taking up packet
    /// index `index` (which no packet may use), to every worker.
    pub fn tick(&mut self, index: u64, ts: Timestamp) -> Result<(), Disconnected> {
        self.next_index = self.next_index.max(index.saturating_add(1));
        for s in 0..self.shards.len() {
            self.send_tick(s, Some(Tick { index, ts }))?;
        }
        Ok(())
    }

    /// Adds a packet lent by a capture mapped as `map` (no copy). `shard` is taken
    /// modulo the number of workers. A pending batch pointing into another file is sent
    /// first, so a batch never mixes two files. A packet whose bytes are not inside
    /// `map` is copied instead.
    pub fn push_mapped(
        &mut self,
        shard: usize,
        map: &Arc<Mmap>,
        pkt: &Packet<'_>,
        index: u64,
    ) -> Result<(), Disconnected> {
        let base = map.as_ptr() as usize;
        let start = (pkt.data.as_ptr() as usize).wrapping_sub(base);
        if start > map.len() || pkt.data.len() > map.len() - start {
            return self.push_captured(shard, pkt.ts, pkt.linktype, pkt.orig_len, pkt.data, index);
        }
        let Some(s) = self.shard_index(shard) else {
            return Ok(());
        };
        let mixes = self
            .shards
            .get(s)
            .and_then(|sh| sh.pending.as_ref())
            .is_some_and(|b| !b.is_empty() && !b.map.as_ref().is_some_and(|m| Arc::ptr_eq(m, map)));
        if mixes {
            self.send(s)?;
        }
        let meta = BatchPacket {
            index,
            ts: pkt.ts,
            linktype: pkt.linktype,
            orig_len: pkt.orig_len,
            start,
            len: pkt.data.len(),
        };
        let Some(batch) = self.pending(s) else {
            return Ok(());
        };
        if batch.is_empty() {
            batch.map = Some(Arc::clone(map));
        }
        batch.packets.push(meta);
        self.after_push(s, index)
    }

    /// Adds a whole packet by copying its bytes (live capture, whose buffers the capture
    /// library reuses); its original length is its captured length. See
    /// [`Batcher::push_captured`].
    pub fn push_owned(
        &mut self,
        shard: usize,
        ts: Timestamp,
        linktype: LinkType,
        data: &[u8],
        index: u64,
    ) -> Result<(), Disconnected> {
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.push_captured(shard, ts, linktype, orig_len, data, index)
    }

    /// Adds a packet, possibly cut by the snapshot length, by copying its bytes. A
    /// pending batch pointing into a mapped file is sent first, and so is one that
    /// `data` would take past `max_bytes`.
    pub fn push_captured(
        &mut self,
        shard: usize,
        ts: Timestamp,
        linktype: LinkType,
        orig_len: u32,
        data: &[u8],
        index: u64,
    ) -> Result<(), Disconnected> {
        let Some(s) = self.shard_index(shard) else {
            return Ok(());
        };
        let max_bytes = self.config.max_bytes;
        let must_send = self
            .shards
            .get(s)
            .and_then(|sh| sh.pending.as_ref())
            .is_some_and(|b| {
                !b.is_empty()
                    && (b.map.is_some() || b.owned.len().saturating_add(data.len()) > max_bytes)
            });
        if must_send {
            self.send(s)?;
        }
        let Some(batch) = self.pending(s) else {
            return Ok(());
        };
        batch.map = None;
        let start = batch.owned.len();
        batch.owned.extend_from_slice(data);
        batch.packets.push(BatchPacket {
            index,
            ts,
            linktype,
            orig_len,
            start,
            len: data.len(),
        });
        self.after_push(s, index)
    }

    /// Sends every batch that has waited `flush_timeout` or more at `now`; and, at most
    /// once per `flush_timeout`, an empty batch to each idle worker whose watermark is
    /// behind, so the merge is never held up by a worker without traffic.
    pub fn flush_stale(&mut self, now: Instant) -> Result<(), Disconnected> {
        let timeout = self.config.flush_timeout;
        for s in 0..self.shards.len() {
            let stale = self
                .shards
                .get(s)
                .and_then(|sh| sh.opened)
                .is_some_and(|t| now.saturating_duration_since(t) >= timeout);
            if stale {
                self.send(s)?;
            }
        }
        let due = self
            .last_heartbeat
            .is_none_or(|t| now.saturating_duration_since(t) >= timeout);
        if due {
            self.last_heartbeat = Some(now);
            for s in 0..self.shards.len() {
                let idle_behind = self
                    .shards
                    .get(s)
                    .is_some_and(|sh| sh.opened.is_none() && sh.sent_upto < self.next_index);
                if idle_behind {
                    self.send(s)?;
                }
            }
        }
        Ok(())
    }

    /// Sends every pending batch, and an empty one to each worker whose watermark is
    /// behind: afterwards every worker has received everything routed so far and knows
    /// it.
    pub fn flush_all(&mut self) -> Result<(), Disconnected> {
        for s in 0..self.shards.len() {
            let behind = self
                .shards
                .get(s)
                .is_some_and(|sh| sh.opened.is_some() || sh.sent_upto < self.next_index);
            if behind {
                self.send(s)?;
            }
        }
        Ok(())
    }

    /// Brings every worker's watermark up to date (the same as [`Batcher::flush_all`]);
    /// the source calls it every few thousand packets so that a worker that rarely gets
    /// a packet neither sits on a part-filled batch nor holds up the merge.
    pub fn heartbeat(&mut self) -> Result<(), Disconnected> {
        self.flush_all()
    }

    fn shard_index(&self, shard: usize) -> Option<usize> {
        shard.checked_rem(self.shards.len())
    }

    /// The pending batch of shard `s`, taken from the spares (or made) if it has none.
    fn pending(&mut self, s: usize) -> Option<&mut Batch> {
        let max_packets = self.config.max_packets;
        let spare = &self.spare;
        let shard = self.shards.get_mut(s)?;
        Some(shard.pending.get_or_insert_with(|| {
            spare.try_recv().unwrap_or_else(|_| Batch {
                packets: Vec::with_capacity(max_packets),
                ..Batch::default()
            })
        }))
    }

    fn after_push(&mut self, s: usize, index: u64) -> Result<(), Disconnected> {
        self.next_index = self.next_index.max(index.saturating_add(1));
        let max_packets = self.config.max_packets;
        let Some(shard) = self.shards.get_mut(s) else {
            return Ok(());
        };
        if shard.opened.is_none() {
            shard.opened = Some(Instant::now());
        }
        let full = shard
            .pending
            .as_ref()
            .is_some_and(|b| b.len() >= max_packets);
        if full {
            self.send(s)?;
        }
        Ok(())
    }

    /// Sends shard `s`'s pending batch (or an empty one) with the current watermark.
    fn send(&mut self, s: usize) -> Result<(), Disconnected> {
        self.send_tick(s, None)
    }

    fn send_tick(&mut self, s: usize, tick: Option<Tick>) -> Result<(), Disconnected> {
        let upto = self.next_index;
        let (Some(shard), Some(tx)) = (self.shards.get_mut(s), self.workers.get(s)) else {
            return Ok(());
        };
        let mut batch = shard.pending.take().unwrap_or_default();
        shard.opened = None;
        batch.upto = upto;
        batch.tick = tick;
        if !self.config.drop_when_full {
            shard.sent_upto = upto;
            return tx.send(batch).map_err(|_| Disconnected { worker: s });
        }
        if let Some((held, held_upto)) = shard.held_tick {
            // Unallocated: a tick-only batch is not worth recycling.
            let alone = Batch {
                upto: held_upto,
                tick: Some(held),
                ..Batch::default()
            };
            match tx.try_send(alone) {
                Ok(()) => shard.held_tick = None,
                Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => return Err(Disconnected { worker: s }),
            }
        }
        // Nothing newer may overtake a held tick.
        let sent = if shard.held_tick.is_none() {
            tx.try_send(batch)
        } else {
            Err(TrySendError::Full(batch))
        };
        match sent {
            Ok(()) => {
                shard.sent_upto = upto;
                Ok(())
            }
            Err(TrySendError::Full(mut batch)) => {
                // The worker is behind: these packets are lost, and counted. Its
                // watermark catches up with its next batch; a tick waits for room.
                if let Some(t) = batch.tick {
                    shard.held_tick = Some((t, upto));
                }
                self.dropped.batches += 1;
                self.dropped.packets += batch.packets.len() as u64;
                self.dropped.bytes += batch.packets.iter().map(|p| p.len as u64).sum::<u64>();
                batch.reset();
                shard.pending = Some(batch);
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(Disconnected { worker: s }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::Receiver;

    fn ts(i: u64) -> Timestamp {
        Timestamp::from_nanos(1_000 * i as i64)
    }

    fn setup(workers: usize, config: BatchConfig) -> (Batcher, Recycler, Vec<Receiver<Batch>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| crossbeam_channel::unbounded()).unzip();
        let (b, r) = Batcher::new(txs, config);
        (b, r, rxs)
    }

    fn cfg(max_packets: usize) -> BatchConfig {
        BatchConfig {
            max_packets,
            flush_timeout: Duration::from_secs(3600),
            ..BatchConfig::default()
        }
    }

    /// A read-only anonymous map holding `bytes` (stands in for a mapped file).
    fn map_of(bytes: &[u8]) -> Arc<Mmap> {
        let mut m = memmap2::MmapMut::map_anon(bytes.len()).unwrap_or_else(|e| panic!("{e}"));
        m.copy_from_slice(bytes);
        Arc::new(m.make_read_only().unwrap_or_else(|e| panic!("{e}")))
    }

    fn pkt(map: &Mmap, range: std::ops::Range<usize>, t: u64) -> Packet<'_> {
        let data = map.get(range).unwrap_or(&[]);
        Packet {
            ts: ts(t),
            linktype: LinkType::Ethernet,
            data,
            orig_len: data.len() as u32,
            offset: 0,
        }
    }

    #[test]
    fn packets_reach_their_worker_in_order_with_watermarks() {
        let (mut b, _r, rxs) = setup(3, cfg(4));
        for i in 0..20u64 {
            let shard = [0, 1, 0, 2, 0][(i % 5) as usize];
            b.push_owned(shard, ts(i), LinkType::RawIp, &[i as u8], i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        for (w, rx) in rxs.iter().enumerate() {
            let mut seen = Vec::new();
            let mut last_upto = 0;
            for batch in rx.try_iter() {
                assert!(batch.len() <= 4);
                assert!(batch.upto >= last_upto, "watermarks never go back");
                last_upto = batch.upto;
                for (p, data) in batch.iter() {
                    assert!(p.index < batch.upto);
                    assert_eq!(data, &[p.index as u8]);
                    assert_eq!(p.ts, ts(p.index));
                    seen.push(p.index);
                }
            }
            let want: Vec<u64> = (0..20)
                .filter(|i| [0, 1, 0, 2, 0][(i % 5) as usize] == w)
                .collect();
            assert_eq!(seen, want, "worker {w}");
            assert_eq!(last_upto, 20, "worker {w} knows everything was routed");
        }
    }

    #[test]
    fn a_full_batch_goes_at_once() {
        let (mut b, _r, rxs) = setup(2, cfg(3));
        for i in 0..2 {
            b.push_owned(1, ts(i), LinkType::Ethernet, &[1], i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(rxs[1].try_recv().is_err(), "not full yet");
        b.push_owned(1, ts(2), LinkType::Ethernet, &[1], 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let batch = rxs[1].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (batch.len(), batch.last_index(), batch.upto),
            (3, Some(2), 3)
        );
        assert!(
            rxs[0].try_recv().is_err(),
            "the idle worker got nothing yet"
        );
        // Shard numbers beyond the worker count wrap.
        b.push_owned(5, ts(3), LinkType::Ethernet, &[1], 3)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rxs[1].try_recv().map(|b| b.last_index()).ok(),
            Some(Some(3))
        );
        // Worker 0 never had a packet, but learns that 4 were routed.
        let hb = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((hb.len(), hb.upto), (0, 4));
        // Nothing more to say: a second flush sends nothing.
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        assert!(rxs[0].try_recv().is_err() && rxs[1].try_recv().is_err());
    }

    #[test]
    fn owned_batches_are_bounded_in_bytes() {
        let config = BatchConfig {
            max_bytes: 100,
            ..cfg(256)
        };
        let (mut b, _r, rxs) = setup(1, config);
        for i in 0..3 {
            b.push_owned(0, ts(i), LinkType::Ethernet, &[i as u8; 40], i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // 40 + 40 fit, the third would make 120: the first two went.
        let first = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.len(), 2);
        // A packet larger than max_bytes still travels, alone.
        b.push_owned(0, ts(3), LinkType::Ethernet, &[7; 500], 3)
            .unwrap_or_else(|e| panic!("{e}"));
        // The original length: the captured one for push_owned, as told for push_captured.
        b.push_captured(0, ts(4), LinkType::Ethernet, 1514, &[8; 64], 4)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        let rest: Vec<Batch> = rxs[0].try_iter().collect();
        let lens = |b: &Batch| {
            b.iter()
                .map(|(p, d)| (d.len(), p.orig_len))
                .collect::<Vec<_>>()
        };
        let rest: Vec<_> = rest.iter().map(lens).collect();
        assert_eq!(rest, [vec![(40, 40)], vec![(500, 500)], vec![(64, 1514)]]);
        assert_eq!(lens(&first), [(40, 40), (40, 40)]);
    }

    #[test]
    fn stale_batches_and_idle_workers_are_flushed_by_time() {
        let (mut b, _r, rxs) = setup(2, cfg(256));
        let t0 = Instant::now();
        b.push_owned(0, ts(0), LinkType::Ethernet, &[1], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_stale(t0).unwrap_or_else(|e| panic!("{e}"));
        assert!(rxs[0].try_recv().is_err(), "younger than the timeout");
        // Idle worker 1 lags (1 packet routed) and is told at once: heartbeats are due.
        assert_eq!(
            rxs[1].try_recv().map(|b| (b.len(), b.upto)).ok(),
            Some((0, 1))
        );
        let later = t0 + Duration::from_secs(7200);
        b.flush_stale(later).unwrap_or_else(|e| panic!("{e}"));
        let batch = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((batch.len(), batch.upto), (1, 1));
        assert!(rxs[1].try_recv().is_err(), "worker 1 is up to date");
        // Heartbeats are rate-limited by the flush timeout.
        b.push_owned(0, ts(1), LinkType::Ethernet, &[1], 1)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_stale(later + Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rxs[1].try_recv().is_err());
        b.flush_stale(later + Duration::from_secs(3600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rxs[1].try_recv().map(|b| b.upto).ok(), Some(2));
        assert_eq!(rxs[0].try_recv().map(|b| b.upto).ok(), Some(2));
    }

    #[test]
    fn the_default_timeout_is_5ms() {
        let (mut b, _r, rxs) = setup(1, BatchConfig::default());
        b.push_owned(0, ts(0), LinkType::Ethernet, &[1], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_stale(Instant::now() + Duration::from_millis(5))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rxs[0].try_recv().map(|b| b.len()).ok(), Some(1));
    }

    #[test]
    fn mapped_packets_are_not_copied_and_files_are_not_mixed() {
        let (mut b, r, rxs) = setup(1, cfg(256));
        let one = map_of(&[10, 11, 12, 13, 14, 15]);
        let two = map_of(&[20, 21, 22]);
        b.push_mapped(0, &one, &pkt(&one, 0..2, 0), 0)
            .unwrap_or_else(|e| panic!("{e}"));
        b.push_mapped(0, &one, &pkt(&one, 3..6, 1), 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Arc::strong_count(&one), 2, "one clone for the whole batch");
        b.push_mapped(0, &two, &pkt(&two, 1..3, 2), 2)
            .unwrap_or_else(|e| panic!("{e}"));
        let first = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<_> = first.iter().map(|(p, d)| (p.index, d.to_vec())).collect();
        assert_eq!(got, [(0, vec![10, 11]), (1, vec![13, 14, 15])]);
        let (_, d) = first.iter().next().unwrap_or_else(|| panic!("empty"));
        assert_eq!(
            d.as_ptr(),
            one.as_ptr(),
            "the batch lends the map's own bytes"
        );
        assert_eq!(first.upto, 2, "sent before packet 2 was added");
        // A packet that is not in the map it is said to come from is copied.
        let elsewhere = [99u8, 98];
        let stray = Packet {
            ts: ts(3),
            linktype: LinkType::Ethernet,
            data: &elsewhere,
            orig_len: 2,
            offset: 0,
        };
        b.push_mapped(0, &two, &stray, 3)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        let second = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            second.iter().map(|(_, d)| d.to_vec()).collect::<Vec<_>>(),
            [vec![21, 22]]
        );
        let third = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            third.iter().map(|(_, d)| d.to_vec()).collect::<Vec<_>>(),
            [vec![99, 98]]
        );
        // Recycling lets go of the file.
        r.recycle(first);
        r.recycle(second);
        assert_eq!((Arc::strong_count(&one), Arc::strong_count(&two)), (1, 1));
    }

    #[test]
    fn spent_batches_are_reused() {
        let (mut b, r, rxs) = setup(1, cfg(2));
        b.push_owned(0, ts(0), LinkType::Ethernet, &[1, 2, 3], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        b.push_owned(0, ts(1), LinkType::Ethernet, &[4, 5, 6], 1)
            .unwrap_or_else(|e| panic!("{e}"));
        let spent = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        let (pkts_ptr, bytes_ptr) = (spent.packets.as_ptr(), spent.owned.as_ptr());
        r.recycle(spent);
        for i in 2..4 {
            b.push_owned(0, ts(i), LinkType::Ethernet, &[i as u8], i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let again = rxs[0].try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (again.packets.as_ptr(), again.owned.as_ptr()),
            (pkts_ptr, bytes_ptr),
            "same buffers"
        );
        assert_eq!(
            again
                .iter()
                .map(|(p, d)| (p.index, d.to_vec()))
                .collect::<Vec<_>>(),
            [(2, vec![2]), (3, vec![3])]
        );
        // Heartbeats own nothing and are not pooled.
        r.recycle(Batch::default());
        assert!(b.spare.is_empty());
        // A full pool frees the surplus instead of blocking the worker.
        let (_b, r, _rxs) = setup(1, BatchConfig { pool: 1, ..cfg(2) });
        for _ in 0..3 {
            r.recycle(Batch {
                packets: Vec::with_capacity(2),
                ..Batch::default()
            });
        }
    }

    #[test]
    fn a_stopped_worker_is_reported() {
        let (mut b, _r, mut rxs) = setup(2, cfg(1));
        drop(rxs.remove(1));
        b.push_owned(0, ts(0), LinkType::Ethernet, &[1], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            b.push_owned(1, ts(1), LinkType::Ethernet, &[1], 1),
            Err(Disconnected { worker: 1 })
        );
        assert_eq!(b.workers(), 2);
        // No worker at all: packets have nowhere to go, and nothing panics.
        let (mut none, _r, _rxs) = setup(0, cfg(1));
        assert_eq!(
            none.push_owned(3, ts(0), LinkType::Ethernet, &[1], 0),
            Ok(())
        );
        assert_eq!(none.flush_all(), Ok(()));
    }

    #[test]
    fn a_tick_follows_each_workers_packets_and_takes_up_an_index() {
        let (mut b, _r, rxs) = setup(2, cfg(8));
        b.push_owned(0, ts(0), LinkType::RawIp, &[0], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        b.tick(1, ts(5)).unwrap_or_else(|e| panic!("{e}"));
        b.push_owned(1, ts(6), LinkType::RawIp, &[2], 2)
            .unwrap_or_else(|e| panic!("{e}"));
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        let tick = Some(Tick {
            index: 1,
            ts: ts(5),
        });
        // Per worker, per batch: (packet indices, watermark, tick).
        type Sent = Vec<(Vec<u64>, u64, Option<Tick>)>;
        let got: Vec<Sent> = rxs
            .iter()
            .map(|rx| {
                rx.try_iter()
                    .map(|b| (b.packets.iter().map(|p| p.index).collect(), b.upto, b.tick))
                    .collect()
            })
            .collect();
        assert_eq!(
            got,
            [
                vec![(vec![0], 2, tick), (vec![], 3, None)],
                vec![(vec![], 2, tick), (vec![2], 3, None)],
            ]
        );
    }

    #[test]
    fn a_tick_dropped_with_its_batch_goes_alone_before_anything_newer() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let config = BatchConfig {
            drop_when_full: true,
            ..cfg(8)
        };
        let (mut b, _r) = Batcher::new(vec![tx], config);
        let push = |b: &mut Batcher, i: u64| {
            b.push_owned(0, ts(i), LinkType::RawIp, &[1], i)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let tick = |index: u64| {
            Some(Tick {
                index,
                ts: ts(index),
            })
        };
        // Packet 0 and tick 1 fill the queue; packet 2 and tick 3 are dropped.
        push(&mut b, 0);
        b.tick(1, ts(1)).unwrap_or_else(|e| panic!("{e}"));
        push(&mut b, 2);
        b.tick(3, ts(3)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.dropped().packets, 1);
        let got = |rx: &Receiver<Batch>| {
            rx.try_recv().map(|b| {
                let indices: Vec<u64> = b.packets.iter().map(|p| p.index).collect();
                (indices, b.upto, b.tick)
            })
        };
        assert_eq!(got(&rx), Ok((vec![0], 2, tick(1))));
        // Room for one: the held tick takes it, alone, with the watermark it had; the
        // newer packet 4 may not overtake it and is dropped.
        push(&mut b, 4);
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got(&rx), Ok((vec![], 4, tick(3))));
        assert_eq!(b.dropped().packets, 2);
        // Then batches flow again.
        push(&mut b, 5);
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got(&rx), Ok((vec![5], 6, None)));
    }

    #[test]
    fn a_full_queue_drops_whole_batches_when_asked_and_counts_them() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let config = BatchConfig {
            drop_when_full: true,
            ..cfg(2)
        };
        let (mut b, _r) = Batcher::new(vec![tx], config);
        for i in 0..6u64 {
            b.push_owned(0, ts(i), LinkType::RawIp, &[1, 2, 3], i)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // The first batch fits the queue; the next two are dropped without blocking.
        assert_eq!(
            b.dropped(),
            Dropped {
                batches: 2,
                packets: 4,
                bytes: 12
            }
        );
        let first = rx.try_recv().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            first.packets.iter().map(|p| p.index).collect::<Vec<_>>(),
            [0, 1]
        );
        // Room again: the watermark catches up with the next batch sent.
        b.flush_all().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rx.try_recv().map(|b| b.upto), Ok(6));
    }
}
