//! The replay pipeline: one source thread, N flow workers, and the merge that puts
//! events back into packet order.
//!
//! ```text
//! source ──Batch (sharded by address pair)──▶ worker 0..N ──Events + watermark──▶ merge ──▶ sinks
//! ```
//!
//! Architecture invariant: the merge releases an event only when no worker can still
//! produce an earlier one, so the output is byte-identical for any `--threads`. Each
//! worker reports a watermark with every batch (`Batch::upto`: every packet with a
//! smaller index has been routed, so the worker has seen all of its share of them);
//! the source sends empty heartbeat batches to idle workers so that their watermarks
//! move too and the merge never holds more than a few batches of events.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::anyhow;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use otwatch_capture::live::LiveCapture;
use otwatch_capture::{Batch, BatchConfig, Batcher, CaptureFile, ReadError, Recycler};
use otwatch_event::{FlowNote, OtEvent, Timestamp};
use otwatch_flow::{FlowConfig, FlowTable, PacketIn, PduFilter};
use tracing::warn;

use crate::dispatch::AppFactory;
use crate::sink::Consumer;
use crate::stats::RunStats;

/// How many packets the source reads between heartbeats to idle workers.
const HEARTBEAT_EVERY: u64 = 4096;
/// Batches queued per worker before the source waits (back-pressure).
const WORKER_QUEUE: usize = 64;
/// Event messages queued per worker before the worker waits for the merge.
const MERGE_QUEUE: usize = 16;

/// What the source reads.
#[derive(Debug)]
pub enum Input {
    /// Capture files, in order, as one timeline.
    Files(Vec<CaptureFile>),
    Live(LiveInput),
}

/// A live interface and what the source shares with the rest of the sensor.
#[derive(Debug)]
pub struct LiveInput {
    pub capture: LiveCapture,
    /// Set by SIGINT/SIGTERM: the source stops reading and the pipeline drains.
    pub stop: Arc<AtomicBool>,
    pub counters: Arc<SourceCounters>,
}

/// The live source's counters, read by the merge thread for metrics and stats records.
#[derive(Debug, Default)]
pub struct SourceCounters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    /// From the capture (libpcap): passed the filter, dropped by the kernel for want
    /// of buffer, dropped by the interface or its driver.
    pub kernel_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub interface_dropped: AtomicU64,
    /// Dropped by the source because the workers' queues were full.
    pub queue_dropped_packets: AtomicU64,
    pub queue_dropped_batches: AtomicU64,
}

/// A copy of [`SourceCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SourceFigures {
    pub packets: u64,
    pub bytes: u64,
    pub kernel_received: u64,
    pub kernel_dropped: u64,
    pub interface_dropped: u64,
    pub queue_dropped_packets: u64,
    pub queue_dropped_batches: u64,
}

impl SourceCounters {
    pub fn figures(&self) -> SourceFigures {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SourceFigures {
            packets: get(&self.packets),
            bytes: get(&self.bytes),
            kernel_received: get(&self.kernel_received),
            kernel_dropped: get(&self.kernel_dropped),
            interface_dropped: get(&self.interface_dropped),
            queue_dropped_packets: get(&self.queue_dropped_packets),
            queue_dropped_batches: get(&self.queue_dropped_batches),
        }
    }
}

/// How to run the pipeline.
#[derive(Debug)]
pub struct RunOptions {
    pub threads: usize,
    pub speed: f64,
    pub decode_only: bool,
    pub progress: bool,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub stats: RunStats,
    /// False when a file had a corrupt record (exit status 1).
    pub clean: bool,
}

/// `Input` errors are found before the first packet (exit 2); `Runtime` after (exit 1).
#[derive(Debug)]
pub enum Error {
    Input(anyhow::Error),
    Runtime(anyhow::Error),
}

/// Messages from the merge's point of view; event vectors go back to their worker
/// through `spent` once written, so the steady state allocates no vectors.
enum WorkerMsg {
    /// Events and flow notes, each in order, and the worker's watermark: it will
    /// send nothing further with a packet index below `upto`.
    Events {
        worker: usize,
        events: Vec<OtEvent>,
        notes: Vec<FlowNote>,
        upto: u64,
    },
    /// The worker's counters so far (live: once per clock tick).
    Stats { worker: usize, stats: Box<RunStats> },
    /// The worker has ended every flow and sent its last event.
    Done { worker: usize, stats: Box<RunStats> },
}

/// Opens and checks every capture file before anything is processed.
pub fn open_captures(paths: &[PathBuf]) -> Result<Vec<CaptureFile>, Error> {
    paths
        .iter()
        .map(|path| {
            CaptureFile::open(path).map_err(|e| Error::Input(anyhow!("{}: {e}", path.display())))
        })
        .collect()
}

/// Runs the input through the source, the workers and the merge, handing the merged
/// stream to `consumer` on this thread.
pub fn run(
    input: Input,
    opts: &RunOptions,
    consumer: &mut dyn Consumer,
) -> Result<RunOutcome, Error> {
    let live = matches!(input, Input::Live(_));
    // A live sensor whose output fails for good stops rather than run on blind.
    let stop_on_error = match &input {
        Input::Live(l) => Some(Arc::clone(&l.stop)),
        Input::Files(_) => None,
    };
    let threads = opts.threads.max(1);
    // Bounded: when writing is slower than dissection, workers wait, and so does the
    // source. The merge never waits on a full channel (it only ever receives), so
    // this cannot deadlock.
    let (merge_tx, merge_rx) = crossbeam_channel::bounded::<WorkerMsg>(MERGE_QUEUE * threads);
    let mut spent_txs = Vec::with_capacity(threads);
    let mut batch_txs = Vec::with_capacity(threads);
    let mut batch_rxs = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(WORKER_QUEUE);
        batch_txs.push(tx);
        batch_rxs.push(rx);
    }
    let config = BatchConfig {
        // Live: never make the kernel's ring wait for a worker; drop and count.
        drop_when_full: live,
        ..BatchConfig::default()
    };
    let (batcher, recycler) = Batcher::new(batch_txs, config);

    let mut workers = Vec::with_capacity(threads);
    for (id, rx) in batch_rxs.into_iter().enumerate() {
        let tx = merge_tx.clone();
        let recycler = recycler.clone();
        let (spent_tx, spent_rx) = crossbeam_channel::unbounded::<Vec<OtEvent>>();
        spent_txs.push(spent_tx);
        let mode = WorkerMode {
            decode_only: opts.decode_only,
            filter: consumer.pdu_filter(),
            report_stats: live,
            workers: threads,
        };
        let handle = thread::Builder::new()
            .name(format!("otwatch-worker-{id}"))
            .spawn(move || worker_loop(id, rx, tx, recycler, spent_rx, mode))
            .map_err(|e| Error::Runtime(anyhow!("cannot start a worker thread: {e}")))?;
        workers.push(handle);
    }
    drop(merge_tx);
    drop(recycler);

    let speed = opts.speed;
    let progress = opts.progress;
    let source = thread::Builder::new()
        .name("otwatch-source".into())
        .spawn(move || match input {
            Input::Files(files) => source_loop(files, batcher, speed, progress),
            Input::Live(live) => live_source_loop(live, batcher),
        })
        .map_err(|e| Error::Runtime(anyhow!("cannot start the source thread: {e}")))?;

    let merged = merge_loop(merge_rx, spent_txs, threads, consumer, stop_on_error);

    let source_report = source
        .join()
        .map_err(|_| Error::Runtime(anyhow!("the source thread panicked")))?;
    for w in workers {
        w.join()
            .map_err(|_| Error::Runtime(anyhow!("a worker thread panicked")))?;
    }
    let mut stats = merged.map_err(Error::Runtime)?;
    stats.files = source_report.files;
    stats.read_errors = source_report.read_errors;
    Ok(RunOutcome {
        stats,
        clean: source_report.clean,
    })
}

struct SourceReport {
    files: u64,
    read_errors: u64,
    clean: bool,
}

/// Reads every file in order as one timeline and routes packets to the workers.
fn source_loop(
    files: Vec<CaptureFile>,
    mut batcher: Batcher,
    speed: f64,
    progress: bool,
) -> SourceReport {
    let mut report = SourceReport {
        files: files.len() as u64,
        read_errors: 0,
        clean: true,
    };
    let total_bytes: u64 = files.iter().map(|f| f.len()).sum();
    let bar = progress.then(|| progress_bar(total_bytes));
    let mut done_bytes = 0u64;
    let mut index: u64 = 0;
    let mut pacer = Pacer::new(speed);
    let mut clock = PacketClock::default();
    let workers = batcher.workers();

    'files: for file in &files {
        for item in file.packets() {
            let pkt = match item {
                Ok(pkt) => pkt,
                Err(ReadError::Truncated { offset }) => {
                    warn!(
                        "{}: the capture ends in the middle of a record at byte offset {offset}; every whole packet before it was processed",
                        file.path().display()
                    );
                    report.read_errors += 1;
                    break;
                }
                Err(e) => {
                    warn!(
                        "{}: {e}; the rest of this file is skipped",
                        file.path().display()
                    );
                    report.read_errors += 1;
                    report.clean = false;
                    break;
                }
            };
            if let Some(wait) = pacer.wait_for(pkt.ts) {
                // Hand every routed packet to the workers before sleeping, so that a
                // paced replay delivers events as the capture's own timing would.
                if batcher.flush_all().is_err() {
                    break 'files;
                }
                thread::sleep(wait);
            }
            if clock.tick_due(pkt.ts) {
                if batcher.tick(index, pkt.ts).is_err() {
                    break 'files;
                }
                index += 1;
            }
            // One worker takes every packet: no need to read the addresses.
            let shard = if workers > 1 {
                (otwatch_flow::shard_hash(pkt.linktype, pkt.data) % workers as u64) as usize
            } else {
                0
            };
            if batcher
                .push_mapped(shard, file.bytes(), &pkt, index)
                .is_err()
            {
                break 'files;
            }
            index += 1;
            if index % HEARTBEAT_EVERY == 0 {
                if batcher.heartbeat().is_err() {
                    break 'files;
                }
                if let Some(bar) = &bar {
                    bar.set_position(done_bytes + pkt.offset);
                }
            }
        }
        done_bytes += file.len();
    }
    let _ = batcher.flush_all();
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    report
}

/// How often the live source ticks the flow tables' clock and reads the capture's
/// counters (wall time: packets may be rare).
const LIVE_TICK: Duration = Duration::from_secs(1);
/// How long a stopping live source goes on reading what the kernel holds.
const STOP_DRAIN: Duration = Duration::from_secs(1);
/// How often, at most, the live source looks at the wall clock while packets flow
/// (packet time), to flush batches that have waited.
const LIVE_FLUSH_CHECK_NANOS: i64 = 1_000_000;

/// Reads the interface until `stop` is set, routing packets to the workers; flushes
/// batches within milliseconds on a quiet network and ticks the clock every second.
fn live_source_loop(mut live: LiveInput, mut batcher: Batcher) -> SourceReport {
    let mut report = SourceReport {
        files: 0,
        read_errors: 0,
        clean: true,
    };
    let workers = batcher.workers() as u64;
    let linktype = live.capture.linktype();
    // Counted here and published with each tick: no shared write per packet.
    let mut captured = Captured::default();
    let mut index: u64 = 0;
    let mut last_ts = Timestamp::default();
    let mut last_check = i64::MIN;
    let mut last_tick = Instant::now();
    // After a stop, what the kernel already holds is still read (for at most
    // STOP_DRAIN): a packet captured before the signal is not lost.
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && live.stop.load(Ordering::Relaxed) {
            drain_until = Some(Instant::now() + STOP_DRAIN);
        }
        if drain_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let quiet = match live.capture.next_packet() {
            Ok(Some(pkt)) => {
                let shard = (otwatch_flow::shard_hash(linktype, pkt.data) % workers) as usize;
                captured.packets += 1;
                captured.bytes += pkt.data.len() as u64;
                last_ts = last_ts.max(pkt.ts);
                let ts_nanos = pkt.ts.as_nanos();
                if batcher
                    .push_captured(shard, pkt.ts, linktype, pkt.orig_len, pkt.data, index)
                    .is_err()
                {
                    break;
                }
                index += 1;
                // Packets carry the time they were captured: a cheap clock that tells
                // when it is worth reading the real one.
                let check = ts_nanos.saturating_sub(last_check) >= LIVE_FLUSH_CHECK_NANOS;
                if check {
                    last_check = ts_nanos;
                }
                check
            }
            Ok(None) if drain_until.is_some() => break,
            Ok(None) => true,
            Err(e) => {
                tracing::error!("{e}");
                report.read_errors += 1;
                report.clean = false;
                break;
            }
        };
        if !quiet {
            continue;
        }
        let now = Instant::now();
        if batcher.flush_stale(now).is_err() {
            break;
        }
        if now.saturating_duration_since(last_tick) >= LIVE_TICK {
            last_tick = now;
            let ts = wall_clock().max(last_ts);
            if batcher.tick(index, ts).is_err() {
                break;
            }
            index += 1;
            publish_live_counters(&mut live, &batcher, captured);
        }
    }
    let _ = batcher.flush_all();
    publish_live_counters(&mut live, &batcher, captured);
    report
}

/// What the live source has read so far.
#[derive(Debug, Default, Clone, Copy)]
struct Captured {
    packets: u64,
    bytes: u64,
}

fn publish_live_counters(live: &mut LiveInput, batcher: &Batcher, captured: Captured) {
    let c = &live.counters;
    c.packets.store(captured.packets, Ordering::Relaxed);
    c.bytes.store(captured.bytes, Ordering::Relaxed);
    match live.capture.stats() {
        Ok(k) => {
            c.kernel_received.store(k.received, Ordering::Relaxed);
            c.kernel_dropped.store(k.dropped, Ordering::Relaxed);
            c.interface_dropped.store(k.if_dropped, Ordering::Relaxed);
        }
        Err(e) => tracing::warn!("{e}"),
    }
    let d = batcher.dropped();
    c.queue_dropped_packets.store(d.packets, Ordering::Relaxed);
    c.queue_dropped_batches.store(d.batches, Ordering::Relaxed);
}

/// The wall clock as a packet timestamp (live housekeeping only).
fn wall_clock() -> Timestamp {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    Timestamp::from_nanos(nanos)
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// How often the flow tables' clock ticks (ending idle flows), in packet time.
const TICK_EVERY_NANOS: i64 = 1_000_000_000;

/// Decides when the source sends a tick, from packet time alone, so that ticks fall
/// at the same places in the packet sequence whatever the number of workers.
#[derive(Debug, Default)]
struct PacketClock {
    last: Option<i64>,
}

impl PacketClock {
    fn tick_due(&mut self, ts: Timestamp) -> bool {
        let now = ts.as_nanos();
        match self.last {
            None => {
                self.last = Some(now);
                false
            }
            Some(last) if now.saturating_sub(last) >= TICK_EVERY_NANOS => {
                self.last = Some(now);
                true
            }
            Some(_) => false,
        }
    }
}

/// Replays at the capture's own pace times `speed` (0 = as fast as possible).
struct Pacer {
    speed: f64,
    start: Option<(Instant, Timestamp)>,
}

impl Pacer {
    fn new(speed: f64) -> Self {
        Pacer { speed, start: None }
    }

    /// How long to sleep before releasing a packet captured at `ts`.
    fn wait_for(&mut self, ts: Timestamp) -> Option<Duration> {
        if self.speed <= 0.0 {
            return None;
        }
        let (wall0, ts0) = *self.start.get_or_insert((Instant::now(), ts));
        let capture_nanos = ts.as_nanos().saturating_sub(ts0.as_nanos()).max(0) as f64;
        let due = Duration::from_secs_f64(capture_nanos / self.speed / 1e9);
        due.checked_sub(wall0.elapsed()).filter(|d| !d.is_zero())
    }
}

/// What a worker does besides dissecting.
#[derive(Debug, Clone, Copy)]
struct WorkerMode {
    /// Decode L2-L4 and count, nothing more (`--decode-only`).
    decode_only: bool,
    /// The PDUs that become events (the consumer's [`Consumer::pdu_filter`]).
    filter: Option<PduFilter>,
    /// Send the counters with every clock tick (live).
    report_stats: bool,
    /// Flow workers of the run: each gets its share of the flow table's bounds.
    workers: usize,
}

fn worker_loop(
    id: usize,
    rx: Receiver<Batch>,
    tx: Sender<WorkerMsg>,
    recycler: Recycler,
    spent: Receiver<Vec<OtEvent>>,
    mode: WorkerMode,
) {
    let mut stats = RunStats::default();
    let mut table = (!mode.decode_only).then(|| {
        let mut t = FlowTable::new(flow_config(mode.workers), AppFactory::default());
        t.set_pdu_filter(mode.filter);
        t
    });
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for batch in rx {
        match table.as_mut() {
            Some(table) => {
                for (bp, data) in batch.iter() {
                    let pkt = PacketIn {
                        index: bp.index,
                        ts: bp.ts,
                        linktype: bp.linktype,
                        data,
                    };
                    table.process(&pkt, &mut out);
                }
            }
            None => {
                for (bp, data) in batch.iter() {
                    stats.flow.packets += 1;
                    stats.flow.bytes += data.len() as u64;
                    if otwatch_flow::decode(bp.linktype, data).is_ok() {
                        stats.decoded += 1;
                    }
                }
            }
        }
        let ticked = batch.tick.is_some();
        if let (Some(tick), Some(table)) = (batch.tick, table.as_mut()) {
            table.tick(tick.index, tick.ts, &mut out);
        }
        let upto = batch.upto;
        recycler.recycle(batch);
        if let Some(table) = table.as_mut() {
            table.take_notes(&mut notes);
        }
        // Spent vectors come back full: dropping the events here, in the thread that
        // allocated them, keeps frees local (no cross-thread free, no shared refcount
        // traffic on the flows' Arcs).
        let mut fresh = spent.try_recv().unwrap_or_default();
        fresh.clear();
        let events = std::mem::replace(&mut out, fresh);
        let msg = WorkerMsg::Events {
            worker: id,
            events,
            notes: std::mem::take(&mut notes),
            upto,
        };
        if tx.send(msg).is_err() {
            return;
        }
        if ticked && mode.report_stats {
            let mut snapshot = stats.clone();
            if let Some(table) = table.as_ref() {
                snapshot.set_flow(table.stats());
            }
            let msg = WorkerMsg::Stats {
                worker: id,
                stats: Box::new(snapshot),
            };
            if tx.send(msg).is_err() {
                return;
            }
        }
    }
    if let Some(mut table) = table {
        table.finish(&mut out);
        table.take_notes(&mut notes);
        stats.set_flow(table.stats());
    }
    let _ = tx.send(WorkerMsg::Events {
        worker: id,
        events: out,
        notes,
        upto: u64::MAX,
    });
    let _ = tx.send(WorkerMsg::Done {
        worker: id,
        stats: Box::new(stats),
    });
}

/// How long the merge waits for a worker before giving the consumer its housekeeping.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(200);

/// Puts the workers' streams back into packet order and hands them to `consumer`.
fn merge_loop(
    rx: Receiver<WorkerMsg>,
    spent: Vec<Sender<Vec<OtEvent>>>,
    workers: usize,
    consumer: &mut dyn Consumer,
    stop_on_error: Option<Arc<AtomicBool>>,
) -> anyhow::Result<RunStats> {
    let mut merge = Merge::new(spent);
    let mut error: Option<std::io::Error> = None;
    // The consumer's first error is kept; after it, items are no longer handed on.
    fn deliver(consumer: &mut dyn Consumer, error: &mut Option<std::io::Error>, item: Item<'_>) {
        if error.is_none() {
            if let Err(e) = consumer.item(item) {
                *error = Some(e);
            }
        }
    }
    let mut stats = RunStats::default();
    // The latest counters of each worker (live), for the consumer's housekeeping.
    let mut latest = vec![RunStats::default(); workers];
    loop {
        let msg = match rx.recv_timeout(HOUSEKEEPING_EVERY) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Some(WorkerMsg::Events {
                worker,
                events,
                notes,
                upto,
            }) => {
                merge.push(worker, events, notes, upto);
                merge.drain_ready(&mut |item| deliver(consumer, &mut error, item));
            }
            Some(WorkerMsg::Stats { worker, stats: s }) => {
                if let Some(l) = latest.get_mut(worker) {
                    *l = *s;
                }
            }
            Some(WorkerMsg::Done { worker, stats: s }) => {
                merge.done(worker);
                stats.merge(&s);
                merge.drain_ready(&mut |item| deliver(consumer, &mut error, item));
            }
            None => {}
        }
        if error.is_none() {
            if let Err(e) = consumer.housekeeping(&latest) {
                error = Some(e);
            }
        }
        if let (Some(e), Some(stop)) = (&error, &stop_on_error) {
            if !stop.swap(true, Ordering::Relaxed) {
                tracing::error!("writing output failed: {e}; stopping");
            }
        }
    }
    // Every worker has hung up: whatever is left is complete.
    merge.drain_all(&mut |item| deliver(consumer, &mut error, item));
    if error.is_none() {
        error = consumer.before_finish(&stats).err();
    }
    if error.is_none() {
        error = consumer.finish().err();
    }
    consumer.add_stats(&mut stats);
    match error {
        // A reader that went away (`otwatch replay ... | head`) is not a failure.
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(stats),
        Some(e) => Err(anyhow!("writing output failed: {e}")),
        None => Ok(stats),
    }
}

/// What the merge hands on, in order.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Event(&'a OtEvent),
    Note(&'a FlowNote),
}

type OrderKey = (u64, u64, u8, u32);

/// One message of a worker: its events and its flow notes, each read in place from
/// its cursor on.
struct Chunk {
    events: Vec<OtEvent>,
    next_event: usize,
    notes: Vec<FlowNote>,
    next_note: usize,
}

impl Chunk {
    /// The chunk's next item and its order key.
    fn head(&self) -> Option<(OrderKey, Item<'_>)> {
        let ev = self
            .events
            .get(self.next_event)
            .map(|e| (e.order_key(), Item::Event(e)));
        let note = self
            .notes
            .get(self.next_note)
            .map(|n| (n.order_key(), Item::Note(n)));
        match (ev, note) {
            (Some(e), Some(n)) => Some(if n.0 < e.0 { n } else { e }),
            (e, n) => e.or(n),
        }
    }

    /// Steps past the head; true when the chunk is used up.
    fn advance(&mut self) -> bool {
        let ev = self.events.get(self.next_event).map(OtEvent::order_key);
        let note = self.notes.get(self.next_note).map(FlowNote::order_key);
        match (ev, note) {
            (Some(e), Some(n)) if n < e => self.next_note += 1,
            (Some(_), _) => self.next_event += 1,
            (None, Some(_)) => self.next_note += 1,
            (None, None) => {}
        }
        self.next_event >= self.events.len() && self.next_note >= self.notes.len()
    }
}

/// K-way merge of per-worker ordered streams with watermarks. Items are read in place
/// (never moved); a written event vector goes back to its worker for reuse.
struct Merge {
    queues: Vec<VecDeque<Chunk>>,
    upto: Vec<u64>,
    done: Vec<bool>,
    spent: Vec<Sender<Vec<OtEvent>>>,
}

impl Merge {
    fn new(spent: Vec<Sender<Vec<OtEvent>>>) -> Self {
        let workers = spent.len();
        Merge {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            upto: vec![0; workers],
            done: vec![false; workers],
            spent,
        }
    }

    fn push(&mut self, worker: usize, events: Vec<OtEvent>, notes: Vec<FlowNote>, upto: u64) {
        if let Some(u) = self.upto.get_mut(worker) {
            *u = (*u).max(upto);
        }
        if events.is_empty() && notes.is_empty() {
            self.recycle(worker, events);
        } else if let Some(q) = self.queues.get_mut(worker) {
            q.push_back(Chunk {
                events,
                next_event: 0,
                notes,
                next_note: 0,
            });
        }
    }

    fn done(&mut self, worker: usize) {
        if let Some(d) = self.done.get_mut(worker) {
            *d = true;
        }
    }

    /// Returns a written vector to its worker, events and all: the worker drops them.
    fn recycle(&self, worker: usize, events: Vec<OtEvent>) {
        if let Some(tx) = self.spent.get(worker) {
            // A worker that has finished no longer listens: the vector is dropped.
            let _ = tx.send(events);
        }
    }

    fn head_key(&self, worker: usize) -> Option<OrderKey> {
        self.queues.get(worker)?.front()?.head().map(|(k, _)| k)
    }

    /// The worker whose head item comes first, and that item's key.
    fn min_head(&self) -> Option<(usize, OrderKey)> {
        (0..self.queues.len())
            .filter_map(|w| self.head_key(w).map(|k| (w, k)))
            .min_by_key(|(_, key)| *key)
    }

    /// Can no worker other than `w` still send an item before packet `packet`?
    fn is_safe(&self, w: usize, packet: u64) -> bool {
        (0..self.queues.len()).all(|v| {
            v == w
                || self.done[v]
                || self.head_key(v).is_some()
                // Worker v has sent everything below its watermark, `packet`
                // included (a tick's index is shared by every worker).
                || (packet != u64::MAX && self.upto[v] > packet)
        })
    }

    fn emit_head(&mut self, w: usize, emit: &mut impl FnMut(Item<'_>)) {
        let Some(q) = self.queues.get_mut(w) else {
            return;
        };
        let Some(chunk) = q.front_mut() else {
            return;
        };
        if let Some((_, item)) = chunk.head() {
            emit(item);
        }
        if chunk.advance() {
            if let Some(chunk) = q.pop_front() {
                self.recycle(w, chunk.events);
            }
        }
    }

    /// Hands every item that is safe to release, in order, to `emit`.
    fn drain_ready(&mut self, emit: &mut impl FnMut(Item<'_>)) {
        while let Some((w, key)) = self.min_head() {
            if !self.is_safe(w, key.0) {
                break;
            }
            self.emit_head(w, emit);
        }
    }

    /// Hands every remaining item, in order, to `emit` (all workers are done).
    fn drain_all(&mut self, emit: &mut impl FnMut(Item<'_>)) {
        while let Some((w, _)) = self.min_head() {
            self.emit_head(w, emit);
        }
    }
}

/// The flow table of one of `workers` workers. Idle flows end on the source's clock
/// ticks (and lazily, by their own next packet) rather than by a per-packet sweep,
/// whose timing would depend on how packets are spread over workers and would break
/// the byte-identical output across `--threads`.
///
/// The bounds of `FlowConfig` are the sensor's, shared among the workers so that
/// `--threads` does not multiply the memory flows may take: each worker gets twice its
/// even share (flows do not fall evenly on workers, and a worker that hits its bound
/// before the sensor would hit the whole one makes the output depend on
/// `--threads`), at least a floor that keeps a worker useful (a 64 KiB datagram in
/// reassembly), at most the whole.
fn flow_config(workers: usize) -> FlowConfig {
    let whole = FlowConfig::default();
    let workers = workers.max(1);
    let share = |n: usize, floor: usize| (2 * n).div_ceil(workers).max(floor).min(n);
    FlowConfig {
        sweep_per_packet: 0,
        max_flows: share(whole.max_flows, 4096),
        max_buffered_total: share(whole.max_buffered_total, 4 << 20),
        max_fragmented_datagrams: share(whole.max_fragmented_datagrams, 64),
        max_fragment_bytes_total: share(whole.max_fragment_bytes_total, 1 << 20),
        ..whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_share_the_flow_bounds() {
        let whole = FlowConfig::default();
        assert_eq!(flow_config(1), flow_config_of_one());
        for workers in [2, 3, 7, 256] {
            let c = flow_config(workers);
            for (name, part, all, floor) in [
                ("max_flows", c.max_flows, whole.max_flows, 4096),
                (
                    "max_buffered_total",
                    c.max_buffered_total,
                    whole.max_buffered_total,
                    4 << 20,
                ),
                (
                    "max_fragmented_datagrams",
                    c.max_fragmented_datagrams,
                    whole.max_fragmented_datagrams,
                    64,
                ),
                (
                    "max_fragment_bytes_total",
                    c.max_fragment_bytes_total,
                    whole.max_fragment_bytes_total,
                    1 << 20,
                ),
            ] {
                // Never more than the whole, never less than the floor; together at
                // least the whole, and no more than twice it beyond the floors.
                assert!(part <= all, "{name} x {workers}");
                assert!(part >= floor.min(all), "{name} x {workers}");
                assert!(part * workers >= all, "{name} x {workers}");
                assert!(
                    part * workers <= 2 * all + workers * floor,
                    "{name} x {workers}"
                );
            }
            // A worker can always reassemble the largest IP datagram.
            assert!(c.max_fragment_bytes_total >= 65_535);
            assert_eq!(
                c.max_buffered_per_direction,
                whole.max_buffered_per_direction
            );
        }
    }

    /// One worker has the whole of every bound.
    fn flow_config_of_one() -> FlowConfig {
        FlowConfig {
            sweep_per_packet: 0,
            ..FlowConfig::default()
        }
    }
}
