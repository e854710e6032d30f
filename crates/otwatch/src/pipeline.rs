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
use std::thread;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use crossbeam_channel::{Receiver, Sender};
use otwatch_capture::{Batch, BatchConfig, Batcher, CaptureFile, ReadError, Recycler};
use otwatch_event::{OtEvent, Timestamp};
use otwatch_flow::{FlowConfig, FlowTable, PacketIn};
use tracing::warn;

use crate::dispatch::AppFactory;
use crate::output::{Destination, EventWriter, Format};
use crate::stats::RunStats;

/// How many packets the source reads between heartbeats to idle workers.
const HEARTBEAT_EVERY: u64 = 4096;
/// Batches queued per worker before the source waits (back-pressure).
const WORKER_QUEUE: usize = 64;

#[derive(Debug)]
pub struct ReplayOptions {
    pub pcaps: Vec<PathBuf>,
    pub events: Option<Destination>,
    pub format: Format,
    pub threads: usize,
    pub speed: f64,
    pub decode_only: bool,
    pub progress: bool,
    pub sensor: String,
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

enum WorkerMsg {
    /// Events in order, and the worker's watermark: it will send no further event
    /// with a packet index below `upto`.
    Events {
        worker: usize,
        events: Vec<OtEvent>,
        upto: u64,
    },
    /// The worker has ended every flow and sent its last event.
    Done { worker: usize, stats: Box<RunStats> },
}

pub fn replay(opts: ReplayOptions) -> Result<RunOutcome, Error> {
    // Every file is checked before the first packet is processed.
    let mut files = Vec::with_capacity(opts.pcaps.len());
    for path in &opts.pcaps {
        let file = CaptureFile::open(path)
            .map_err(|e| Error::Input(anyhow!("{}: {e}", path.display())))?;
        files.push(file);
    }
    let writer = match &opts.events {
        Some(dest) => {
            let out = dest.open().map_err(Error::Input)?;
            Some(EventWriter::new(out, opts.format, opts.sensor.clone()))
        }
        None => None,
    };

    let threads = opts.threads.max(1);
    let (merge_tx, merge_rx) = crossbeam_channel::unbounded::<WorkerMsg>();
    let mut batch_txs = Vec::with_capacity(threads);
    let mut batch_rxs = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(WORKER_QUEUE);
        batch_txs.push(tx);
        batch_rxs.push(rx);
    }
    let (batcher, recycler) = Batcher::new(batch_txs, BatchConfig::default());

    let mut workers = Vec::with_capacity(threads);
    for (id, rx) in batch_rxs.into_iter().enumerate() {
        let tx = merge_tx.clone();
        let recycler = recycler.clone();
        let decode_only = opts.decode_only;
        let handle = thread::Builder::new()
            .name(format!("otwatch-worker-{id}"))
            .spawn(move || worker_loop(id, rx, tx, recycler, decode_only))
            .map_err(|e| Error::Runtime(anyhow!("cannot start a worker thread: {e}")))?;
        workers.push(handle);
    }
    drop(merge_tx);
    drop(recycler);

    let speed = opts.speed;
    let progress = opts.progress;
    let source = thread::Builder::new()
        .name("otwatch-source".into())
        .spawn(move || source_loop(files, batcher, speed, progress))
        .map_err(|e| Error::Runtime(anyhow!("cannot start the source thread: {e}")))?;

    let merged = merge_loop(merge_rx, threads, writer);

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
            let shard =
                (otwatch_flow::shard_hash(pkt.linktype, pkt.data) % workers as u64) as usize;
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

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
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

fn worker_loop(
    id: usize,
    rx: Receiver<Batch>,
    tx: Sender<WorkerMsg>,
    recycler: Recycler,
    decode_only: bool,
) {
    let mut stats = RunStats::default();
    if decode_only {
        for batch in rx {
            for (bp, data) in batch.iter() {
                stats.flow.packets += 1;
                stats.flow.bytes += data.len() as u64;
                if otwatch_flow::decode(bp.linktype, data).is_ok() {
                    stats.decoded += 1;
                }
            }
            let upto = batch.upto;
            recycler.recycle(batch);
            let _ = tx.send(WorkerMsg::Events {
                worker: id,
                events: Vec::new(),
                upto,
            });
        }
        let _ = tx.send(WorkerMsg::Done {
            worker: id,
            stats: Box::new(stats),
        });
        return;
    }

    let mut table = FlowTable::new(FlowConfig::default(), AppFactory::default());
    let mut out = Vec::new();
    for batch in rx {
        for (bp, data) in batch.iter() {
            let pkt = PacketIn {
                index: bp.index,
                ts: bp.ts,
                linktype: bp.linktype,
                data,
            };
            table.process(&pkt, &mut out);
        }
        let upto = batch.upto;
        recycler.recycle(batch);
        if out.is_empty() && upto == 0 {
            continue;
        }
        for ev in &out {
            stats.count_event(ev);
        }
        let events = std::mem::take(&mut out);
        if tx
            .send(WorkerMsg::Events {
                worker: id,
                events,
                upto,
            })
            .is_err()
        {
            return;
        }
    }
    table.finish(&mut out);
    for ev in &out {
        stats.count_event(ev);
    }
    stats.flow = table.stats().clone();
    let _ = tx.send(WorkerMsg::Events {
        worker: id,
        events: out,
        upto: u64::MAX,
    });
    let _ = tx.send(WorkerMsg::Done {
        worker: id,
        stats: Box::new(stats),
    });
}

/// Puts the workers' event streams back into packet order and writes them.
fn merge_loop(
    rx: Receiver<WorkerMsg>,
    workers: usize,
    mut writer: Option<EventWriter>,
) -> anyhow::Result<RunStats> {
    let mut merge = Merge::new(workers);
    let mut stats = RunStats::default();
    let mut write_error: Option<std::io::Error> = None;
    let mut emit = |ev: OtEvent, stats: &mut RunStats| {
        if let (Some(w), None) = (writer.as_mut(), write_error.as_ref()) {
            match w.write(&ev) {
                Ok(()) => stats.events_written += 1,
                Err(e) => write_error = Some(e),
            }
        }
    };
    for msg in rx {
        match msg {
            WorkerMsg::Events {
                worker,
                events,
                upto,
            } => merge.push(worker, events, upto),
            WorkerMsg::Done { worker, stats: s } => {
                merge.done(worker);
                stats.merge(&s);
            }
        }
        while let Some(ev) = merge.pop_ready() {
            emit(ev, &mut stats);
        }
    }
    // Every worker has hung up: whatever is left is complete.
    while let Some(ev) = merge.pop_any() {
        emit(ev, &mut stats);
    }
    if let Some(e) = write_error {
        return Err(anyhow!("writing events failed: {e}"));
    }
    if let Some(w) = writer {
        w.finish()
            .map_err(|e| anyhow!("writing events failed: {e}"))?;
    }
    Ok(stats)
}

/// K-way merge of per-worker ordered event streams with watermarks.
struct Merge {
    queues: Vec<VecDeque<OtEvent>>,
    upto: Vec<u64>,
    done: Vec<bool>,
}

impl Merge {
    fn new(workers: usize) -> Self {
        Merge {
            queues: (0..workers).map(|_| VecDeque::new()).collect(),
            upto: vec![0; workers],
            done: vec![false; workers],
        }
    }

    fn push(&mut self, worker: usize, events: Vec<OtEvent>, upto: u64) {
        if let Some(q) = self.queues.get_mut(worker) {
            q.extend(events);
        }
        if let Some(u) = self.upto.get_mut(worker) {
            *u = (*u).max(upto);
        }
    }

    fn done(&mut self, worker: usize) {
        if let Some(d) = self.done.get_mut(worker) {
            *d = true;
        }
    }

    /// The worker whose head event comes first, and that event's key.
    fn min_head(&self) -> Option<(usize, (u64, u64, u32))> {
        self.queues
            .iter()
            .enumerate()
            .filter_map(|(w, q)| q.front().map(|ev| (w, ev.order_key())))
            .min_by_key(|(_, key)| *key)
    }

    /// The next event, if no worker can still send an earlier one.
    fn pop_ready(&mut self) -> Option<OtEvent> {
        let (w, key) = self.min_head()?;
        let packet = key.0;
        let safe = (0..self.queues.len()).all(|v| {
            v == w
                || self.done[v]
                || !self.queues[v].is_empty()
                // Worker v routes none of packet `packet` (each packet has one owner),
                // and has sent everything below its watermark.
                || (packet != u64::MAX && self.upto[v] >= packet)
        });
        if safe {
            self.queues[w].pop_front()
        } else {
            None
        }
    }

    fn pop_any(&mut self) -> Option<OtEvent> {
        let (w, _) = self.min_head()?;
        self.queues[w].pop_front()
    }
}
