//! A bounded, crash-safe, ordered on-disk queue of records (Kafka key + value) awaiting
//! delivery.
//!
//! The Kafka sink appends alerts here when the broker is slow or down, sends them in
//! order when it is back, and acknowledges them as delivery reports arrive
//! ([`Spool::ack_through`]). What is unacknowledged at shutdown stays on disk and is
//! sent at the next start with the same `--state-dir`, before new alerts.
//!
//! # On-disk format
//!
//! The spool is a directory holding *segment* files and one *position* file. All
//! integers are little-endian.
//!
//! * `NNNNNNNNNNNNNNNNNNNN.seg` (20 decimal digits: the id of the segment's first record).
//!   Segments are append-only; records are written in id order, the newest segment is
//!   the only one written to, and a new segment is started when the next record would
//!   take the current one past [`SpoolConfig::segment_bytes`] (a record larger than that
//!   gets a segment of its own). A segment is:
//!
//!   ```text
//!   header   magic "OTWSPL\0\x01" (8 bytes, the last byte is the format version)
//!            first_id u64        id of the first record written to this segment
//!   record*  len      u32        length of the body (12 + key_len + value_len)
//!            crc      u32        CRC-32 (IEEE) of the 4 `len` bytes followed by the body
//!            body     id u64, key_len u32, key [key_len], value [len - 12 - key_len]
//!   ```
//!
//!   A record's body is at most [`MAX_RECORD_BODY`] bytes.
//! * `acked`: the acknowledged position, i.e. the highest id known delivered (every
//!   record up to it is done): magic `OTWACK\0\x01`, id u64, CRC-32 of the 8 id bytes.
//!   It is replaced atomically (write `acked.tmp`, rename).
//!
//! Record ids start at 1 and increase by one per append, across restarts: at open, the
//! next id is one past the highest of the last valid record and the acknowledged
//! position.
//!
//! # Crash safety and recovery
//!
//! Data is `fsync`ed every [`SpoolConfig::fsync_every`] records, at segment rotation,
//! and on [`Spool::sync`] (also done on drop). The position file is renamed into place
//! on every ack and made durable (`fsync` of the file and the directory) before any
//! segment is deleted and on [`Spool::sync`], so a crash can only make the spool
//! *resend* delivered records (Kafka delivery is at least once), never forget pending
//! ones or reuse an id.
//!
//! [`Spool::open`] scans every segment in order, reading one record at a time (memory is
//! bounded by one read buffer, not by a segment). A record is valid when its length is in
//! bounds, its CRC matches and its id is above the previous valid id. After an invalid
//! record the scan looks for the next valid one, byte by byte:
//!
//! * found: the bytes in between are a *corrupt* record, skipped with a warning and
//!   counted ([`Spool::corrupt_records`]);
//! * not found: the segment ends in a *torn* record (the process died mid-write); in the
//!   newest segment it is cut off (`ftruncate`) so that appends continue after the last
//!   valid record.
//!
//! Segments holding nothing unacknowledged are deleted.
//!
//! # Bounds
//!
//! [`SpoolConfig::max_bytes`] bounds the bytes of all segment files (what
//! [`Spool::bytes`] reports). Space is reclaimed a segment at a time: a segment is
//! deleted once every record in it is acknowledged; the segment being written to is
//! deleted, once fully acknowledged, only when it is full (so that a trickle of alerts,
//! each delivered at once, does not create and delete a file per alert): [`Spool::bytes`]
//! may count up to one segment of delivered records. In memory the spool keeps, per segment, a sparse index (one entry every
//! [`INDEX_STRIDE`] records) and the list of id gaps left by corrupt records; reading
//! pending records holds at most the `max` records asked for.
//!
//! One process at a time: [`Spool::open`] takes an exclusive `flock(2)` on
//! `dir/lock` for the spool's life, and a second process that opens the same directory
//! gets [`SpoolError::Locked`] (two writers would interleave records and acknowledge
//! each other's ids). The kernel drops the lock when the process ends, however it ends.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, error, warn};

/// Magic and format version at the start of every segment.
const SEGMENT_MAGIC: [u8; 8] = *b"OTWSPL\0\x01";
/// Magic and format version at the start of the position file.
const ACK_MAGIC: [u8; 8] = *b"OTWACK\0\x01";
/// Segment header: magic + first id.
const SEGMENT_HEADER_LEN: u64 = 16;
/// Record header: len + crc.
const RECORD_HEADER_LEN: u64 = 8;
/// Fixed part of a body: id + key_len.
const BODY_FIXED_LEN: u64 = 12;
/// The smallest possible record (empty key and value).
const MIN_RECORD_LEN: u64 = RECORD_HEADER_LEN + BODY_FIXED_LEN;
/// The largest record body the spool writes or accepts when reading back (16 MiB; an
/// alert is a few KiB).
pub const MAX_RECORD_BODY: u64 = 16 * 1024 * 1024;
/// One in-memory index entry (id, offset) per this many records of a segment.
pub const INDEX_STRIDE: u64 = 64;
const SEGMENT_SUFFIX: &str = ".seg";
const ACK_FILE: &str = "acked";
const ACK_TMP_FILE: &str = "acked.tmp";
const ACK_FILE_LEN: usize = 20;

/// Where the spool lives and how big it may grow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// The spool directory (`<state-dir>/spool` in the binary); created if missing.
    pub dir: PathBuf,
    /// Upper bound of the bytes of all segment files. Default 256 MiB.
    pub max_bytes: u64,
    /// A new segment is started when the next record would take the current one past
    /// this size. Default 8 MiB.
    pub segment_bytes: u64,
    /// Records appended between two `fsync`s of the segment being written. Default 64.
    pub fsync_every: usize,
}

impl SpoolConfig {
    /// Default `max_bytes`: 256 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
    /// Default `segment_bytes`: 8 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
    /// Default `fsync_every`: 64 records.
    pub const DEFAULT_FSYNC_EVERY: usize = 64;

    /// A configuration with the default bounds.
    pub fn new(dir: impl Into<PathBuf>) -> SpoolConfig {
        SpoolConfig {
            dir: dir.into(),
            max_bytes: Self::DEFAULT_MAX_BYTES,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            fsync_every: Self::DEFAULT_FSYNC_EVERY,
        }
    }
}

/// The id of a spooled record: 1, 2, 3, ... in append order, increasing across restarts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(pub u64);

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A record read back from the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledRecord {
    pub id: RecordId,
    /// The Kafka message key.
    pub key: Vec<u8>,
    /// The Kafka message value.
    pub value: Vec<u8>,
}

/// The file operation that failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SpoolOp {
    CreateDir,
    ListDir,
    Open,
    Read,
    Write,
    Sync,
    Truncate,
    Rename,
    Remove,
    Lock,
}

impl fmt::Display for SpoolOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SpoolOp::CreateDir => "create directory",
            SpoolOp::ListDir => "list directory",
            SpoolOp::Open => "open",
            SpoolOp::Read => "read",
            SpoolOp::Write => "write",
            SpoolOp::Sync => "fsync",
            SpoolOp::Truncate => "truncate",
            SpoolOp::Rename => "rename",
            SpoolOp::Remove => "remove",
            SpoolOp::Lock => "lock",
        })
    }
}

/// What can go wrong with the spool. The OS error and the path are logged where the
/// error happens; this value is small enough to count and to label a metric.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// Appending would take the spool past `max_bytes`: the record was not written.
    #[error("spool full: {needed} more bytes needed, {used} of {max} used")]
    Full { needed: u64, used: u64, max: u64 },
    /// A record whose body would exceed [`MAX_RECORD_BODY`].
    #[error("record of {len} bytes is larger than the spool's limit")]
    TooLarge { len: u64 },
    /// `ack_through` with an id that was never appended.
    #[error("acknowledged id {id} was never appended (last id {last})")]
    AckAhead { id: u64, last: u64 },
    /// A configuration value out of range.
    #[error("invalid spool configuration: {0}")]
    InvalidConfig(&'static str),
    /// A file operation failed.
    #[error("spool I/O error: {op}: {kind}")]
    Io { op: SpoolOp, kind: ErrorKind },
    /// Another process holds the spool directory.
    #[error("the spool directory is in use by another process (another otwatch with the same state directory?)")]
    Locked,
}

/// Logs an I/O failure with its path and OS detail, and turns it into a [`SpoolError`].
fn io_error(op: SpoolOp, path: &Path, err: &io::Error) -> SpoolError {
    error!(path = %path.display(), %op, error = %err, "spool I/O error");
    SpoolError::Io {
        op,
        kind: err.kind(),
    }
}

/// One segment file, as known in memory.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    /// The id in the file name.
    name_id: u64,
    /// Bytes of the file (header and records, valid or not).
    len: u64,
    /// The highest valid record id in the segment, if any.
    last_id: Option<u64>,
    /// (id, offset) of the first valid record and of every INDEX_STRIDE-th after it.
    index: Vec<(u64, u64)>,
    /// Valid records since the last index entry.
    since_index: u64,
    /// Offsets where recovery found a corrupt record (to warn only once).
    known_bad: Vec<u64>,
}

impl Segment {
    fn note_record(&mut self, id: u64, offset: u64) {
        if self.since_index == 0 {
            self.index.push((id, offset));
        }
        self.since_index = (self.since_index + 1) % INDEX_STRIDE;
        self.last_id = Some(id);
    }

    /// Offset to start scanning from to find the first record with an id >= `start`,
    /// and the id below which records are invalid there.
    fn seek_point(&self, start: u64) -> (u64, u64) {
        let i = self.index.partition_point(|&(id, _)| id <= start);
        match i.checked_sub(1).and_then(|i| self.index.get(i)) {
            Some(&(id, offset)) => (offset, id.saturating_sub(1)),
            None => match self.index.first() {
                Some(&(id, offset)) => (offset, id.saturating_sub(1)),
                None => (SEGMENT_HEADER_LEN, 0),
            },
        }
    }
}

/// The segment being appended to.
#[derive(Debug)]
struct Writer {
    file: File,
    unsynced: usize,
}

/// A bounded, crash-safe, ordered on-disk queue; see the [module docs](self).
#[derive(Debug)]
pub struct Spool {
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    /// Open when the newest segment can take appends.
    writer: Option<Writer>,
    next_id: u64,
    acked: u64,
    /// The position file was renamed into place but not made durable yet.
    ack_dirty: bool,
    /// Valid records with an id above `acked`.
    pending: u64,
    /// Ids above `acked` and below `next_id` with no valid record (corrupt or lost),
    /// as sorted, disjoint inclusive ranges.
    holes: Vec<(u64, u64)>,
    /// Bytes of all segment files.
    bytes: u64,
    corrupt: Cell<u64>,
    buf: Vec<u8>,
    /// Holds the directory's `flock` while the spool is open.
    _lock: File,
}

/// The file whose `flock` marks a spool directory as taken.
const LOCK_FILE: &str = "lock";

/// Takes the directory's lock without waiting.
fn lock_dir(dir: &Path) -> Result<File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io_error(SpoolOp::Open, &path, &e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(SpoolError::Locked),
        Err(e) => Err(io_error(SpoolOp::Lock, &path, &e.into())),
    }
}

impl Spool {
    /// Opens the spool in `config.dir` (creating the directory) and recovers: scans the
    /// segments in order, cuts a torn last record (crash mid-write), skips corrupt
    /// records with a warning, restores the acknowledged position and deletes segments
    /// holding nothing unacknowledged.
    pub fn open(config: SpoolConfig) -> Result<Spool, SpoolError> {
        if config.segment_bytes < SEGMENT_HEADER_LEN + MIN_RECORD_LEN {
            return Err(SpoolError::InvalidConfig("segment_bytes is too small"));
        }
        if config.max_bytes < config.segment_bytes {
            return Err(SpoolError::InvalidConfig(
                "max_bytes must be at least segment_bytes",
            ));
        }
        if config.fsync_every == 0 {
            return Err(SpoolError::InvalidConfig("fsync_every must be at least 1"));
        }
        let dir = config.dir.clone();
        fs::create_dir_all(&dir).map_err(|e| io_error(SpoolOp::CreateDir, &dir, &e))?;
        // Before anything is read: another process may be writing.
        let lock = lock_dir(&dir)?;
        let tmp = dir.join(ACK_TMP_FILE);
        match fs::remove_file(&tmp) {
            Ok(()) => debug!(path = %tmp.display(), "removed a stale position file"),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(SpoolOp::Remove, &tmp, &e)),
        }
        let acked = read_ack_file(&dir.join(ACK_FILE))?;
        let names = list_segments(&dir)?;

        let mut spool = Spool {
            config,
            segments: VecDeque::new(),
            writer: None,
            next_id: 1,
            acked,
            ack_dirty: false,
            pending: 0,
            holes: Vec::new(),
            bytes: 0,
            corrupt: Cell::new(0),
            buf: Vec::new(),
            _lock: lock,
        };
        let mut prev = 0u64;
        let count = names.len();
        for (i, (name_id, path)) in names.into_iter().enumerate() {
            let newest = i + 1 == count;
            if let Some(seg) = spool.recover_segment(name_id, path, newest, &mut prev)? {
                spool.bytes += seg.len;
                spool.segments.push_back(seg);
            }
        }
        spool.next_id = prev.max(acked).saturating_add(1);

        // Segments with nothing unacknowledged go (a crash between an ack and the
        // deletion, or segments holding only corrupt bytes).
        let acked = spool.acked;
        let mut kept = VecDeque::with_capacity(spool.segments.len());
        for seg in std::mem::take(&mut spool.segments) {
            if seg.last_id.is_some_and(|last| last > acked) {
                kept.push_back(seg);
            } else {
                spool.bytes -= seg.len;
                remove_segment(&seg)?;
            }
        }
        spool.segments = kept;
        if let Some(seg) = spool.segments.back() {
            let file = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(|e| io_error(SpoolOp::Open, &seg.path, &e))?;
            spool.writer = Some(Writer { file, unsynced: 0 });
        }
        if spool.pending > 0 || spool.corrupt.get() > 0 {
            warn!(
                dir = %spool.config.dir.display(),
                pending = spool.pending,
                bytes = spool.bytes,
                corrupt = spool.corrupt.get(),
                "spool recovered records awaiting delivery"
            );
        }
        Ok(spool)
    }

    /// Scans one segment at open. `prev` is the highest valid id so far (updated).
    /// Returns `None` when the file was removed (too short to hold a header).
    fn recover_segment(
        &mut self,
        name_id: u64,
        path: PathBuf,
        newest: bool,
        prev: &mut u64,
    ) -> Result<Option<Segment>, SpoolError> {
        let file = File::open(&path).map_err(|e| io_error(SpoolOp::Open, &path, &e))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_error(SpoolOp::Read, &path, &e))?
            .len();
        let mut seg = Segment {
            path,
            name_id,
            len: file_len,
            last_id: None,
            index: Vec::new(),
            since_index: 0,
            known_bad: Vec::new(),
        };
        if file_len < SEGMENT_HEADER_LEN {
            // Created but its header never made it to disk: nothing to recover.
            warn!(path = %seg.path.display(), "spool segment without a header removed");
            remove_segment(&seg)?;
            return Ok(None);
        }
        let mut scanner = Scanner::new(file, file_len, 0, *prev);
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        scanner
            .read_exact(&mut header)
            .map_err(|e| io_error(SpoolOp::Read, &seg.path, &e))?;
        if header.get(..8) != Some(&SEGMENT_MAGIC[..]) {
            // Keep reading: the records carry their own checks.
            warn!(path = %seg.path.display(), "spool segment with a bad header; reading its records anyway");
            self.corrupt.set(self.corrupt.get() + 1);
        }
        loop {
            let item = scanner
                .next(None)
                .map_err(|e| io_error(SpoolOp::Read, &seg.path, &e))?;
            match item {
                Scan::End => break,
                Scan::Record { id, offset } => {
                    let floor = (*prev).max(self.acked);
                    if id > self.acked {
                        self.pending += 1;
                        if id > floor.saturating_add(1) {
                            self.holes.push((floor + 1, id - 1));
                        }
                    }
                    *prev = id;
                    seg.note_record(id, offset);
                }
                Scan::Corrupt { offset, resumed_at } => {
                    warn!(
                        path = %seg.path.display(),
                        offset,
                        bytes = resumed_at - offset,
                        "corrupt spool record skipped"
                    );
                    self.corrupt.set(self.corrupt.get() + 1);
                    seg.known_bad.push(offset);
                    // Index the record after the damage, so that reads from there on
                    // do not scan through it again.
                    seg.since_index = 0;
                }
                Scan::Torn { offset } => {
                    self.corrupt.set(self.corrupt.get() + 1);
                    if newest {
                        warn!(
                            path = %seg.path.display(),
                            offset,
                            bytes = file_len - offset,
                            "torn record at the end of the spool cut off"
                        );
                        let f = OpenOptions::new()
                            .write(true)
                            .open(&seg.path)
                            .map_err(|e| io_error(SpoolOp::Open, &seg.path, &e))?;
                        f.set_len(offset)
                            .map_err(|e| io_error(SpoolOp::Truncate, &seg.path, &e))?;
                        f.sync_all()
                            .map_err(|e| io_error(SpoolOp::Sync, &seg.path, &e))?;
                        seg.len = offset;
                    } else {
                        warn!(
                            path = %seg.path.display(),
                            offset,
                            bytes = file_len - offset,
                            "corrupt bytes at the end of a spool segment skipped"
                        );
                        seg.known_bad.push(offset);
                    }
                }
            }
        }
        Ok(Some(seg))
    }

    /// Appends one record. `Err(SpoolError::Full)` when it would take the spool past
    /// `max_bytes`: nothing is written, and the caller counts a drop, logs it loudly
    /// and makes the run exit 1.
    pub fn append(&mut self, key: &[u8], value: &[u8]) -> Result<RecordId, SpoolError> {
        let body_len = BODY_FIXED_LEN
            .saturating_add(key.len() as u64)
            .saturating_add(value.len() as u64);
        if body_len > MAX_RECORD_BODY {
            return Err(SpoolError::TooLarge { len: body_len });
        }
        let record_len = RECORD_HEADER_LEN + body_len;
        let max = self.config.max_bytes;
        let (new_segment, active_done, active_len) =
            match (self.writer.is_some(), self.segments.back()) {
                (true, Some(seg)) => (
                    seg.len > SEGMENT_HEADER_LEN
                        && seg.len.saturating_add(record_len) > self.config.segment_bytes,
                    seg.last_id.is_some_and(|last| last <= self.acked),
                    seg.len,
                ),
                _ => (true, false, 0),
            };
        // A fully delivered segment being written to is reclaimed when it is full. (That
        // is also when its space could be needed: it is then the only segment, and
        // max_bytes >= segment_bytes.)
        let needed = record_len + if new_segment { SEGMENT_HEADER_LEN } else { 0 };
        let freed = if new_segment && active_done {
            active_len
        } else {
            0
        };
        let used = self.bytes - freed;
        if used.saturating_add(needed) > max {
            return Err(SpoolError::Full { needed, used, max });
        }
        if new_segment {
            if active_done {
                self.writer = None;
                self.reclaim()?;
            }
            self.start_segment()?;
        }
        let id = self.next_id;

        // Key and value lengths fit in u32: the body is bounded by MAX_RECORD_BODY.
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.extend_from_slice(&(body_len as u32).to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        let mut crc = Crc32::new();
        crc.update(buf.get(..4).unwrap_or_default());
        crc.update(buf.get(8..).unwrap_or_default());
        if let Some(slot) = buf.get_mut(4..8) {
            slot.copy_from_slice(&crc.finish().to_le_bytes());
        }
        let result = self.write_record(&buf);
        self.buf = buf;
        result?;

        let Some(seg) = self.segments.back_mut() else {
            return Err(SpoolError::InvalidConfig("no segment to append to"));
        };
        let offset = seg.len;
        seg.len += record_len;
        seg.note_record(id, offset);
        self.bytes += record_len;
        self.pending += 1;
        self.next_id += 1;
        if let Some(w) = self.writer.as_mut() {
            w.unsynced += 1;
            if w.unsynced >= self.config.fsync_every {
                w.file
                    .sync_data()
                    .map_err(|e| io_error(SpoolOp::Sync, &seg.path, &e))?;
                w.unsynced = 0;
            }
        }
        Ok(RecordId(id))
    }

    /// Writes one framed record to the newest segment; on failure, cuts the segment back
    /// so that a partial record is not left behind.
    fn write_record(&mut self, record: &[u8]) -> Result<(), SpoolError> {
        let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back()) else {
            return Err(SpoolError::InvalidConfig("no segment to append to"));
        };
        if let Err(e) = w.file.write_all(record) {
            let err = io_error(SpoolOp::Write, &seg.path, &e);
            if let Err(e) = w.file.set_len(seg.len) {
                // Recovery will find the torn record and cut it.
                error!(path = %seg.path.display(), error = %e, "cannot undo a partial spool write");
                self.writer = None;
            }
            return Err(err);
        }
        Ok(())
    }

    /// Syncs the current segment and starts a new one named after the next id.
    fn start_segment(&mut self) -> Result<(), SpoolError> {
        if let (Some(w), Some(seg)) = (self.writer.take(), self.segments.back()) {
            if w.unsynced > 0 {
                w.file
                    .sync_data()
                    .map_err(|e| io_error(SpoolOp::Sync, &seg.path, &e))?;
            }
        }
        let path = self.config.dir.join(segment_name(self.next_id));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(SpoolOp::Open, &path, &e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        header[..8].copy_from_slice(&SEGMENT_MAGIC);
        header[8..].copy_from_slice(&self.next_id.to_le_bytes());
        file.write_all(&header)
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error(SpoolOp::Write, &path, &e))?;
        sync_dir(&self.config.dir)?;
        self.bytes += SEGMENT_HEADER_LEN;
        self.segments.push_back(Segment {
            path,
            name_id: self.next_id,
            len: SEGMENT_HEADER_LEN,
            last_id: None,
            index: Vec::new(),
            since_index: 0,
            known_bad: Vec::new(),
        });
        self.writer = Some(Writer { file, unsynced: 0 });
        Ok(())
    }

    /// The oldest records not yet acknowledged, in append order: those with an id above
    /// `after` (all pending ones when `None`), at most `max` of them.
    pub fn pending(
        &self,
        after: Option<RecordId>,
        max: usize,
    ) -> Result<Vec<SpooledRecord>, SpoolError> {
        let start = after.map_or(0, |a| a.0).max(self.acked).saturating_add(1);
        let mut out = Vec::new();
        if max == 0 || start >= self.next_id {
            return Ok(out);
        }
        for seg in &self.segments {
            if out.len() >= max {
                break;
            }
            if seg.last_id.is_none_or(|last| last < start) {
                continue;
            }
            let (offset, floor) = seg.seek_point(start);
            let file = File::open(&seg.path).map_err(|e| io_error(SpoolOp::Open, &seg.path, &e))?;
            let mut scanner = Scanner::new(file, seg.len, offset, floor);
            while out.len() < max {
                let mut body = Vec::new();
                let item = scanner
                    .next(Some(&mut body))
                    .map_err(|e| io_error(SpoolOp::Read, &seg.path, &e))?;
                match item {
                    Scan::End => break,
                    Scan::Record { id, .. } => {
                        if id >= start {
                            out.push(split_body(id, body));
                        }
                    }
                    Scan::Corrupt { offset, .. } | Scan::Torn { offset } => {
                        if !seg.known_bad.contains(&offset) {
                            warn!(path = %seg.path.display(), offset, "corrupt spool record skipped");
                            self.corrupt.set(self.corrupt.get() + 1);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Everything up to and including `id` was delivered: persists the acknowledged
    /// position (so that a restart does not resend them) and deletes the segments that
    /// hold nothing else. Ids at or below the current position are ignored.
    pub fn ack_through(&mut self, id: RecordId) -> Result<(), SpoolError> {
        let id = id.0;
        if id >= self.next_id {
            return Err(SpoolError::AckAhead {
                id,
                last: self.next_id - 1,
            });
        }
        if id <= self.acked {
            return Ok(());
        }
        let mut missing = 0;
        for &(lo, hi) in &self.holes {
            if lo > id {
                break;
            }
            missing += hi.min(id) - lo.max(self.acked + 1) + 1;
        }
        self.pending = self.pending.saturating_sub(id - self.acked - missing);
        self.holes.retain_mut(|(lo, hi)| {
            *lo = (*lo).max(id + 1);
            lo <= hi
        });
        self.acked = id;
        write_ack_file(&self.config.dir, id, false)?;
        self.ack_dirty = true;
        self.reclaim()
    }

    /// Deletes the oldest segments holding nothing unacknowledged, except the one being
    /// written to (reclaimed by `append` when it is full, so that a trickle of alerts,
    /// each delivered at once, does not create and delete a file per alert).
    fn reclaim(&mut self) -> Result<(), SpoolError> {
        let candidates = self.segments.len() - usize::from(self.writer.is_some());
        let acked = self.acked;
        let done = self
            .segments
            .iter()
            .take(candidates)
            .take_while(|seg| seg.last_id.is_none_or(|last| last <= acked))
            .count();
        if done == 0 {
            return Ok(());
        }
        // The position must be durable before the records go, or a crash could bring
        // back an older position with no records above it and reuse ids.
        write_ack_file(&self.config.dir, acked, true)?;
        self.ack_dirty = false;
        for seg in self.segments.drain(..done) {
            self.bytes -= seg.len;
            remove_segment(&seg)?;
        }
        Ok(())
    }

    /// Makes everything appended and acknowledged so far durable (`fsync`).
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back()) {
            if w.unsynced > 0 {
                w.file
                    .sync_data()
                    .map_err(|e| io_error(SpoolOp::Sync, &seg.path, &e))?;
                w.unsynced = 0;
            }
        }
        if self.ack_dirty {
            write_ack_file(&self.config.dir, self.acked, true)?;
            self.ack_dirty = false;
        }
        Ok(())
    }

    /// Records awaiting delivery (appended, not acknowledged).
    pub fn len(&self) -> u64 {
        self.pending
    }

    /// True when no record awaits delivery.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Bytes of the segment files on disk (bounded by `max_bytes`). Delivered records
    /// count until their segment is deleted (see the module docs, *Bounds*).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The acknowledged position: every record up to it was delivered.
    pub fn acked(&self) -> Option<RecordId> {
        (self.acked > 0).then_some(RecordId(self.acked))
    }

    /// The id the next append will get.
    pub fn next_id(&self) -> RecordId {
        RecordId(self.next_id)
    }

    /// Corrupt or torn records skipped since open.
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt.get()
    }

    /// The configuration the spool was opened with.
    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            error!(error = %e, "spool could not be synced on close");
        }
    }
}

/// Splits a verified body (id, key_len, key, value) into a record.
fn split_body(id: u64, mut body: Vec<u8>) -> SpooledRecord {
    let key_len = body
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b: [u8; 4]| u32::from_le_bytes(b) as usize);
    let key_end = (BODY_FIXED_LEN as usize)
        .saturating_add(key_len)
        .min(body.len());
    let value = body.split_off(key_end);
    let key = body
        .get(BODY_FIXED_LEN as usize..)
        .unwrap_or_default()
        .to_vec();
    SpooledRecord {
        id: RecordId(id),
        key,
        value,
    }
}

fn segment_name(first_id: u64) -> String {
    format!("{first_id:020}{SEGMENT_SUFFIX}")
}

/// The segment files of `dir`, sorted by the id in their name. Other files are ignored.
fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, SpoolError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error(SpoolOp::ListDir, dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(SpoolOp::ListDir, dir, &e))?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SEGMENT_SUFFIX))
            .filter(|digits| digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((id, entry.path()));
    }
    out.sort_unstable();
    Ok(out)
}

fn remove_segment(seg: &Segment) -> Result<(), SpoolError> {
    debug!(path = %seg.path.display(), first_id = seg.name_id, "spool segment removed");
    match fs::remove_file(&seg.path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(SpoolOp::Remove, &seg.path, &e)),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(SpoolOp::Sync, dir, &e))
}

/// Reads the acknowledged position; a missing file is position 0, a damaged one too
/// (with a warning: records may be sent again, none is lost).
fn read_ack_file(path: &Path) -> Result<u64, SpoolError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_error(SpoolOp::Read, path, &e)),
    };
    let parsed = (bytes.len() == ACK_FILE_LEN && bytes.get(..8) == Some(&ACK_MAGIC[..]))
        .then(|| {
            let id: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
            let crc: [u8; 4] = bytes.get(16..20)?.try_into().ok()?;
            (crc32(&id) == u32::from_le_bytes(crc)).then_some(u64::from_le_bytes(id))
        })
        .flatten();
    match parsed {
        Some(id) => Ok(id),
        None => {
            warn!(path = %path.display(), "damaged spool position file ignored: records may be sent again");
            Ok(0)
        }
    }
}

/// Replaces the position file atomically; `durable` also `fsync`s it and the directory.
fn write_ack_file(dir: &Path, id: u64, durable: bool) -> Result<(), SpoolError> {
    let mut bytes = [0u8; ACK_FILE_LEN];
    bytes[..8].copy_from_slice(&ACK_MAGIC);
    bytes[8..16].copy_from_slice(&id.to_le_bytes());
    bytes[16..].copy_from_slice(&crc32(&id.to_le_bytes()).to_le_bytes());
    let tmp = dir.join(ACK_TMP_FILE);
    let mut f = File::create(&tmp).map_err(|e| io_error(SpoolOp::Open, &tmp, &e))?;
    f.write_all(&bytes)
        .map_err(|e| io_error(SpoolOp::Write, &tmp, &e))?;
    if durable {
        f.sync_all()
            .map_err(|e| io_error(SpoolOp::Sync, &tmp, &e))?;
    }
    drop(f);
    let path = dir.join(ACK_FILE);
    fs::rename(&tmp, &path).map_err(|e| io_error(SpoolOp::Rename, &path, &e))?;
    if durable {
        sync_dir(dir)?;
    }
    Ok(())
}

/// What the scanner found at its position.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// No more bytes.
    End,
    /// A valid record starting at `offset`.
    Record { id: u64, offset: u64 },
    /// Invalid bytes from `offset`; the next valid record starts at `resumed_at`.
    Corrupt { offset: u64, resumed_at: u64 },
    /// Invalid bytes from `offset` to the end.
    Torn { offset: u64 },
}

/// Reads records one at a time from a segment, checking each, and finds the next valid
/// record after invalid bytes. Memory: the reader's buffer plus one body when asked.
struct Scanner {
    reader: BufReader<File>,
    /// Position of `reader` in the file.
    at: u64,
    /// Where the next record starts.
    pos: u64,
    /// Bytes of the segment that may hold records.
    end: u64,
    /// Valid ids must exceed it.
    prev_id: u64,
    /// A resynchronisation found this record next (valid, starting at `pos`).
    resumed: Option<u64>,
}

/// The result of checking for a record at one offset.
enum Probe {
    Valid { id: u64, len: u64 },
    Invalid,
}

impl Scanner {
    fn new(file: File, end: u64, pos: u64, prev_id: u64) -> Scanner {
        Scanner {
            reader: BufReader::with_capacity(64 * 1024, file),
            at: 0,
            pos,
            end,
            prev_id,
            resumed: None,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.seek_to(self.pos)?;
        self.reader.read_exact(buf)?;
        self.at += buf.len() as u64;
        self.pos = self.at;
        Ok(())
    }

    fn seek_to(&mut self, target: u64) -> io::Result<()> {
        if target != self.at {
            let delta = i64::try_from(target)
                .ok()
                .zip(i64::try_from(self.at).ok())
                .map(|(t, a)| t - a);
            match delta {
                Some(d) => self.reader.seek_relative(d)?,
                None => {
                    self.reader.seek(SeekFrom::Start(target))?;
                }
            }
            self.at = target;
        }
        Ok(())
    }

    /// The next item; with `body`, a valid record's body is left in it.
    fn next(&mut self, mut body: Option<&mut Vec<u8>>) -> io::Result<Scan> {
        if self.pos >= self.end {
            return Ok(Scan::End);
        }
        let offset = self.pos;
        if self.resumed.take().is_none() {
            if let Probe::Valid { id, len } = self.probe(offset, u64::MAX, body.as_deref_mut())? {
                self.prev_id = id;
                self.pos = offset + len;
                return Ok(Scan::Record { id, offset });
            }
            // Look for the next valid record. Ids lost in between are at most one per
            // MIN_RECORD_LEN bytes: a bound that rejects almost every false start early.
            let mut p = offset + 1;
            while p.saturating_add(MIN_RECORD_LEN) <= self.end {
                let max_id = self
                    .prev_id
                    .saturating_add(2 + (p - offset) / MIN_RECORD_LEN);
                if let Probe::Valid { .. } = self.probe(p, max_id, None)? {
                    self.pos = p;
                    self.resumed = Some(p);
                    return Ok(Scan::Corrupt {
                        offset,
                        resumed_at: p,
                    });
                }
                p += 1;
            }
            self.pos = self.end;
            return Ok(Scan::Torn { offset });
        }
        // Read the record found by the resynchronisation again, keeping its body.
        match self.probe(offset, u64::MAX, body)? {
            Probe::Valid { id, len } => {
                self.prev_id = id;
                self.pos = offset + len;
                Ok(Scan::Record { id, offset })
            }
            Probe::Invalid => {
                self.pos = self.end;
                Ok(Scan::Torn { offset })
            }
        }
    }

    /// Checks for a valid record at `p` with an id in `prev_id+1..=max_id`; reads its
    /// body into `body` when given. Never reads past `end`, never allocates more than a
    /// length that fits in the segment.
    fn probe(&mut self, p: u64, max_id: u64, body: Option<&mut Vec<u8>>) -> io::Result<Probe> {
        if p.saturating_add(MIN_RECORD_LEN) > self.end {
            return Ok(Probe::Invalid);
        }
        self.seek_to(p)?;
        let mut head = [0u8; MIN_RECORD_LEN as usize];
        self.reader.read_exact(&mut head)?;
        self.at += MIN_RECORD_LEN;
        let [l0, l1, l2, l3, c0, c1, c2, c3, i0, i1, i2, i3, i4, i5, i6, i7, k0, k1, k2, k3] = head;
        let len = u64::from(u32::from_le_bytes([l0, l1, l2, l3]));
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let id = u64::from_le_bytes([i0, i1, i2, i3, i4, i5, i6, i7]);
        let key_len = u64::from(u32::from_le_bytes([k0, k1, k2, k3]));
        let plausible = (BODY_FIXED_LEN..=MAX_RECORD_BODY).contains(&len)
            && p + RECORD_HEADER_LEN + len <= self.end
            && key_len <= len - BODY_FIXED_LEN
            && id > self.prev_id
            && id <= max_id;
        if !plausible {
            return Ok(Probe::Invalid);
        }
        let mut hasher = Crc32::new();
        hasher.update(&[l0, l1, l2, l3]);
        hasher.update(&[i0, i1, i2, i3, i4, i5, i6, i7, k0, k1, k2, k3]);
        let rest = len - BODY_FIXED_LEN;
        match body {
            Some(body) => {
                // `len` is bounded by the segment's size and MAX_RECORD_BODY.
                body.clear();
                body.extend_from_slice(&[i0, i1, i2, i3, i4, i5, i6, i7, k0, k1, k2, k3]);
                let start = body.len();
                body.resize(start + rest as usize, 0);
                let tail = body.get_mut(start..).unwrap_or_default();
                self.reader.read_exact(tail)?;
                hasher.update(tail);
            }
            None => {
                let mut chunk = [0u8; 4096];
                let mut left = rest;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    let part = chunk.get_mut(..n).unwrap_or_default();
                    self.reader.read_exact(part)?;
                    hasher.update(part);
                    left -= n as u64;
                }
            }
        }
        self.at += rest;
        if hasher.finish() != crc {
            return Ok(Probe::Invalid);
        }
        Ok(Probe::Valid {
            id,
            len: RECORD_HEADER_LEN + len,
        })
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib and PNG compute it.
struct Crc32(u32);

// Evaluated at compile time: an index out of bounds would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(!0)
    }

    fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            let slot = CRC_TABLE.get(((c ^ u32::from(b)) & 0xFF) as usize);
            c = slot.copied().unwrap_or_default() ^ (c >> 8);
        }
        self.0 = c;
    }

    fn finish(&self) -> u32 {
        !self.0
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 20,
            segment_bytes: 4096,
            fsync_every: 4,
        }
    }

    fn value(i: u64) -> Vec<u8> {
        format!("{{\"alert\":{{\"id\":\"a-{i}\"}}}}").into_bytes()
    }

    fn ids(records: &[SpooledRecord]) -> Vec<u64> {
        records.iter().map(|r| r.id.0).collect()
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn crc32_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn record_bytes_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.append(b"k1", b"val").unwrap(), RecordId(1));
        spool.sync().unwrap();
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 1);
        assert!(files[0].ends_with("00000000000000000001.seg"));
        let bytes = fs::read(&files[0]).unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(b"OTWSPL\0\x01"); // magic + version
        expected.extend_from_slice(&1u64.to_le_bytes()); // first_id
        expected.extend_from_slice(&17u32.to_le_bytes()); // len = 12 + 2 + 3
        let mut covered = Vec::new();
        covered.extend_from_slice(&17u32.to_le_bytes());
        covered.extend_from_slice(&1u64.to_le_bytes()); // id
        covered.extend_from_slice(&2u32.to_le_bytes()); // key_len
        covered.extend_from_slice(b"k1val"); // key, value
        expected.extend_from_slice(&crc32(&covered).to_le_bytes()); // crc
        expected.extend_from_slice(&covered[4..]); // body
        assert_eq!(bytes, expected);
        assert_eq!(spool.bytes(), bytes.len() as u64);
    }

    #[test]
    fn append_pending_ack_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert!(spool.is_empty());
        assert!(spool.pending(None, 10).unwrap().is_empty());
        for i in 1..=10 {
            let id = spool
                .append(format!("1:key{i}").as_bytes(), &value(i))
                .unwrap();
            assert_eq!(id, RecordId(i));
        }
        assert_eq!(spool.len(), 10);

        let first = spool.pending(None, 3).unwrap();
        assert_eq!(ids(&first), [1, 2, 3]);
        assert_eq!(first[1].key, b"1:key2");
        assert_eq!(first[1].value, value(2));
        // Paging with `after`, without acknowledging.
        assert_eq!(
            ids(&spool.pending(Some(RecordId(3)), 4).unwrap()),
            [4, 5, 6, 7]
        );
        assert_eq!(
            ids(&spool.pending(Some(RecordId(8)), 100).unwrap()),
            [9, 10]
        );
        assert!(spool.pending(Some(RecordId(10)), 100).unwrap().is_empty());
        assert!(spool.pending(None, 0).unwrap().is_empty());

        spool.ack_through(RecordId(4)).unwrap();
        assert_eq!(spool.len(), 6);
        assert_eq!(spool.acked(), Some(RecordId(4)));
        assert_eq!(ids(&spool.pending(None, 2).unwrap()), [5, 6]);
        // `after` below the acknowledged position does not bring delivered records back.
        assert_eq!(ids(&spool.pending(Some(RecordId(1)), 1).unwrap()), [5]);
        // An older ack is ignored; an ack of a never-appended id is an error.
        spool.ack_through(RecordId(2)).unwrap();
        assert_eq!(spool.len(), 6);
        assert_eq!(
            spool.ack_through(RecordId(11)),
            Err(SpoolError::AckAhead { id: 11, last: 10 })
        );

        spool.ack_through(RecordId(10)).unwrap();
        assert!(spool.is_empty());
        assert!(spool.pending(None, 10).unwrap().is_empty());
        // The segment being written to stays until it is full.
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 1);
        assert_eq!(spool.append(b"k", b"v").unwrap(), RecordId(11));
        assert_eq!(segment_files(dir.path()), files);
        assert_eq!(ids(&spool.pending(None, 10).unwrap()), [11]);
    }

    #[test]
    fn restart_recovers_pending_records_and_ack_position() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(config(dir.path())).unwrap();
            for i in 1..=200 {
                spool.append(b"key", &value(i)).unwrap();
            }
            assert!(segment_files(dir.path()).len() > 2);
            spool.ack_through(RecordId(57)).unwrap();
        }
        let spool = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.acked(), Some(RecordId(57)));
        assert_eq!(spool.len(), 143);
        assert_eq!(spool.corrupt_records(), 0);
        let all = spool.pending(None, 1000).unwrap();
        assert_eq!(ids(&all), (58..=200).collect::<Vec<_>>());
        assert!(all
            .iter()
            .all(|r| r.key == b"key" && r.value == value(r.id.0)));
        // Reads from the middle of a segment go through the sparse index.
        assert_eq!(
            ids(&spool.pending(Some(RecordId(129)), 2).unwrap()),
            [130, 131]
        );
        assert_eq!(spool.next_id(), RecordId(201));
    }

    #[test]
    fn ids_monotonic_across_restarts_even_when_everything_was_delivered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(config(dir.path())).unwrap();
            for i in 1..=5 {
                spool.append(b"k", &value(i)).unwrap();
            }
        }
        {
            let mut spool = Spool::open(config(dir.path())).unwrap();
            assert_eq!(spool.append(b"k", &value(6)).unwrap(), RecordId(6));
            spool.ack_through(RecordId(6)).unwrap();
        }
        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert!(spool.is_empty());
        // Fully delivered segments are deleted at open.
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(spool.bytes(), 0);
        assert_eq!(spool.append(b"k", &value(7)).unwrap(), RecordId(7));
    }

    #[test]
    fn segments_rotate_and_delivered_ones_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        // Each record: 8 + 12 + 1 + 100 = 121 bytes; 33 fit in 4096 - 16.
        for _ in 0..100 {
            spool.append(b"k", &[b'x'; 100]).unwrap();
        }
        let files = segment_files(dir.path());
        assert_eq!(files.len(), 4);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names[1], "00000000000000000034.seg");
        for f in &files {
            assert!(fs::metadata(f).unwrap().len() <= 4096);
        }
        let on_disk: u64 = files.iter().map(|f| fs::metadata(f).unwrap().len()).sum();
        assert_eq!(spool.bytes(), on_disk);

        // Acknowledging inside the second segment deletes only the first.
        spool.ack_through(RecordId(40)).unwrap();
        assert_eq!(segment_files(dir.path()), files[1..]);
        spool.ack_through(RecordId(99)).unwrap();
        assert_eq!(segment_files(dir.path()), files[3..]);
        assert_eq!(spool.len(), 1);
        assert_eq!(ids(&spool.pending(None, 5).unwrap()), [100]);

        // A record larger than a segment gets a segment of its own.
        let big = vec![b'y'; 5000];
        assert_eq!(spool.append(b"k", &big).unwrap(), RecordId(101));
        assert_eq!(spool.append(b"k", b"small").unwrap(), RecordId(102));
        assert_eq!(segment_files(dir.path()).len(), 3);
        let got = spool.pending(Some(RecordId(100)), 5).unwrap();
        assert_eq!(got[0].value, big);
        assert_eq!(got[1].value, b"small");
    }

    #[test]
    fn full_at_max_bytes_then_space_again_after_ack() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpoolConfig {
            max_bytes: 900,
            segment_bytes: 500,
            ..config(dir.path())
        };
        let mut spool = Spool::open(cfg).unwrap();
        // Records of 8 + 12 + 0 + 80 = 100 bytes: 4 per segment (16 + 400 <= 500).
        let v = [b'v'; 80];
        for i in 1..=8 {
            assert_eq!(spool.append(b"", &v).unwrap(), RecordId(i));
        }
        assert_eq!(spool.bytes(), 2 * 416);
        // A third segment would need 116 bytes: 832 + 116 > 900.
        assert_eq!(
            spool.append(b"", &v),
            Err(SpoolError::Full {
                needed: 116,
                used: 832,
                max: 900
            })
        );
        // Nothing was written.
        assert_eq!(spool.len(), 8);
        assert_eq!(spool.next_id(), RecordId(9));
        assert_eq!(segment_files(dir.path()).len(), 2);

        // Delivering the first segment frees it.
        spool.ack_through(RecordId(3)).unwrap();
        assert!(spool.append(b"", &v).is_err());
        spool.ack_through(RecordId(4)).unwrap();
        assert_eq!(spool.bytes(), 416);
        assert_eq!(spool.append(b"", &v).unwrap(), RecordId(9));
        assert_eq!(
            ids(&spool.pending(None, 100).unwrap()),
            (5..=9).collect::<Vec<_>>()
        );
        assert_eq!(spool.bytes(), 416 + 116);

        // Fill up again and deliver everything: the segment being written to stays until
        // it is full.
        for i in 10..=12 {
            assert_eq!(spool.append(b"", &v).unwrap(), RecordId(i));
        }
        assert_eq!(spool.bytes(), 2 * 416);
        assert!(spool.append(b"", &v).is_err());
        spool.ack_through(RecordId(12)).unwrap();
        assert_eq!(spool.bytes(), 416);
        // Rotating away from the delivered segment deletes it.
        assert_eq!(spool.append(b"", &v).unwrap(), RecordId(13));
        assert_eq!(spool.bytes(), 116);
        assert_eq!(segment_files(dir.path()).len(), 1);
        assert_eq!(ids(&spool.pending(None, 100).unwrap()), [13]);

        assert_eq!(
            spool.append(b"", &vec![0; MAX_RECORD_BODY as usize]),
            Err(SpoolError::TooLarge {
                len: MAX_RECORD_BODY + 12
            })
        );
    }

    /// Writes `n` records in one segment, returns the segment and the offset where the
    /// last record starts.
    fn one_segment(dir: &Path, n: u64) -> (PathBuf, u64) {
        let mut spool = Spool::open(config(dir)).unwrap();
        for i in 1..=n {
            spool.append(b"key", &value(i)).unwrap();
        }
        let last_start =
            spool.segments[0].len - (RECORD_HEADER_LEN + 12 + 3 + value(n).len() as u64);
        let files = segment_files(dir);
        assert_eq!(files.len(), 1);
        (files[0].clone(), last_start)
    }

    #[test]
    fn torn_tail_at_every_byte_of_the_last_record() {
        let src = tempfile::tempdir().unwrap();
        let (seg, last_start) = one_segment(src.path(), 5);
        let full = fs::read(&seg).unwrap();
        for cut in last_start..full.len() as u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(seg.file_name().unwrap());
            fs::write(&path, &full[..cut as usize]).unwrap();
            let mut spool = Spool::open(config(dir.path())).unwrap();
            assert_eq!(spool.len(), 4, "cut at {cut}");
            assert_eq!(
                spool.corrupt_records(),
                u64::from(cut > last_start),
                "cut at {cut}"
            );
            assert_eq!(ids(&spool.pending(None, 10).unwrap()), [1, 2, 3, 4]);
            // The torn bytes were cut off: appends continue cleanly after record 4.
            assert_eq!(fs::metadata(&path).unwrap().len(), last_start);
            assert_eq!(spool.append(b"key", b"again").unwrap(), RecordId(5));
            drop(spool);
            let spool = Spool::open(config(dir.path())).unwrap();
            let got = spool.pending(None, 10).unwrap();
            assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
            assert_eq!(got[4].value, b"again");
            assert_eq!(spool.corrupt_records(), 0);
        }
    }

    #[test]
    fn torn_header_of_a_new_segment() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(segment_name(1)), b"OTWSPL").unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert!(spool.is_empty());
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(spool.append(b"k", b"v").unwrap(), RecordId(1));
    }

    #[test]
    fn corrupt_crc_in_the_middle_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, _) = one_segment(dir.path(), 6);
        let mut bytes = fs::read(&seg).unwrap();
        let rec = RECORD_HEADER_LEN + 12 + 3 + value(1).len() as u64;
        // Flip one value byte of record 3.
        let third = (SEGMENT_HEADER_LEN + 2 * rec + rec - 2) as usize;
        bytes[third] ^= 0x20;
        fs::write(&seg, &bytes).unwrap();

        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.corrupt_records(), 1);
        assert_eq!(spool.len(), 5);
        let got = spool.pending(None, 10).unwrap();
        assert_eq!(ids(&got), [1, 2, 4, 5, 6]);
        assert_eq!(got[2].value, value(4));
        // A later read does not count the known corruption again.
        assert_eq!(spool.corrupt_records(), 1);
        // Acknowledging across the hole accounts for the missing record.
        spool.ack_through(RecordId(4)).unwrap();
        assert_eq!(spool.len(), 2);
        assert_eq!(ids(&spool.pending(None, 10).unwrap()), [5, 6]);
        assert_eq!(spool.append(b"k", b"v").unwrap(), RecordId(7));
    }

    #[test]
    fn corrupt_length_in_the_middle_resynchronises() {
        let dir = tempfile::tempdir().unwrap();
        let (seg, _) = one_segment(dir.path(), 6);
        let mut bytes = fs::read(&seg).unwrap();
        let rec = RECORD_HEADER_LEN + 12 + 3 + value(1).len() as u64;
        // Record 2's length says 0xFFFF_FFFF.
        let second = (SEGMENT_HEADER_LEN + rec) as usize;
        bytes[second..second + 4].copy_from_slice(&[0xFF; 4]);
        fs::write(&seg, &bytes).unwrap();
        let spool = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.corrupt_records(), 1);
        assert_eq!(ids(&spool.pending(None, 10).unwrap()), [1, 3, 4, 5, 6]);
        assert_eq!(spool.len(), 5);
    }

    #[test]
    fn garbage_segment_does_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = 0x1234_5678_u32;
        let mut junk = SEGMENT_MAGIC.to_vec();
        junk.extend_from_slice(&1u64.to_le_bytes());
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            junk.push(state as u8);
        }
        fs::write(dir.path().join(segment_name(1)), &junk).unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.corrupt_records(), 1);
        // Nothing valid in it: the segment is gone and the spool works.
        assert!(segment_files(dir.path()).is_empty());
        assert_eq!(spool.append(b"k", b"v").unwrap(), RecordId(1));
    }

    #[test]
    fn corruption_after_open_is_skipped_and_counted_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path())).unwrap();
        for i in 1..=4 {
            spool.append(b"key", &value(i)).unwrap();
        }
        spool.sync().unwrap();
        let seg = segment_files(dir.path()).remove(0);
        let mut bytes = fs::read(&seg).unwrap();
        let rec = RECORD_HEADER_LEN + 12 + 3 + value(1).len() as u64;
        bytes[(SEGMENT_HEADER_LEN + rec + 10) as usize] ^= 0xFF; // record 2's id
        fs::write(&seg, &bytes).unwrap();
        assert_eq!(ids(&spool.pending(None, 10).unwrap()), [1, 3, 4]);
        assert_eq!(spool.corrupt_records(), 1);
        assert_eq!(ids(&spool.pending(Some(RecordId(2)), 10).unwrap()), [3, 4]);
    }

    /// Random appends, partial drains, acks and restarts against a model of the queue.
    #[test]
    fn matches_a_model_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpoolConfig {
            max_bytes: 40_000,
            segment_bytes: 4_000,
            fsync_every: 16,
            ..config(dir.path())
        };
        let mut rng = 0x9E37_79B9_u32;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            rng
        };
        let mut model: VecDeque<(u64, Vec<u8>)> = VecDeque::new();
        let mut last_id = 0;
        let mut fulls = 0;
        let mut spool = Spool::open(cfg.clone()).unwrap();
        for step in 0..1200u32 {
            match next() % 10 {
                0..=5 => {
                    let v = vec![b'a' + (step % 26) as u8; (next() % 300) as usize];
                    match spool.append(&step.to_le_bytes(), &v) {
                        Ok(id) => {
                            assert_eq!(id.0, last_id + 1);
                            last_id = id.0;
                            model.push_back((id.0, v));
                        }
                        Err(SpoolError::Full { .. }) => fulls += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                6..=7 => {
                    let n = (next() % 3) as usize;
                    if let Some(&(id, _)) = model.get(n) {
                        spool.ack_through(RecordId(id)).unwrap();
                        model.drain(..=n);
                    }
                }
                8 => {
                    drop(spool);
                    spool = Spool::open(cfg.clone()).unwrap();
                    assert_eq!(spool.next_id(), RecordId(last_id + 1));
                }
                _ => {
                    let got = spool.pending(None, 5).unwrap();
                    let want: Vec<_> = model.iter().take(5).collect();
                    assert_eq!(got.len(), want.len());
                    for (g, (id, v)) in got.iter().zip(want) {
                        assert_eq!((g.id.0, &g.value), (*id, v));
                    }
                }
            }
            assert_eq!(spool.len(), model.len() as u64, "step {step}");
            assert!(spool.bytes() <= cfg.max_bytes);
            let on_disk: u64 = segment_files(dir.path())
                .iter()
                .map(|f| fs::metadata(f).unwrap().len())
                .sum();
            assert_eq!(spool.bytes(), on_disk, "step {step}");
        }
        assert!(fulls > 0, "the model run should hit the bound");
        assert_eq!(spool.corrupt_records(), 0);
    }

    #[test]
    fn damaged_position_file_means_resend_not_loss() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut spool = Spool::open(config(dir.path())).unwrap();
            for i in 1..=5 {
                spool.append(b"k", &value(i)).unwrap();
            }
            spool.ack_through(RecordId(2)).unwrap();
        }
        let ack = dir.path().join(ACK_FILE);
        let mut bytes = fs::read(&ack).unwrap();
        assert_eq!(bytes.len(), ACK_FILE_LEN);
        bytes[8] ^= 1;
        fs::write(&ack, &bytes).unwrap();
        let spool = Spool::open(config(dir.path())).unwrap();
        assert_eq!(spool.acked(), None);
        assert_eq!(ids(&spool.pending(None, 10).unwrap()), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn unrelated_files_are_ignored_and_bad_config_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("README"), b"hello").unwrap();
        fs::write(dir.path().join("12.seg"), b"not twenty digits").unwrap();
        let spool = Spool::open(config(dir.path())).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.bytes(), 0);
        drop(spool);
        let bad = SpoolConfig {
            fsync_every: 0,
            ..config(dir.path())
        };
        assert!(matches!(
            Spool::open(bad),
            Err(SpoolError::InvalidConfig(_))
        ));
        let bad = SpoolConfig {
            max_bytes: 100,
            ..config(dir.path())
        };
        assert!(matches!(
            Spool::open(bad),
            Err(SpoolError::InvalidConfig(_))
        ));
    }

    #[test]
    fn a_second_process_cannot_open_a_spool_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Spool::open(config(dir.path())).unwrap();
        first.append(b"k", &value(1)).unwrap();
        // flock belongs to the open file: a second opening, as another process would
        // make it, is refused before it reads or writes anything.
        assert!(matches!(
            Spool::open(config(dir.path())),
            Err(SpoolError::Locked)
        ));
        assert_eq!(first.len(), 1);
        drop(first);
        // The lock went with the spool; the record stayed.
        let again = Spool::open(config(dir.path())).unwrap();
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn open_fails_cleanly_on_a_file_in_the_way() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spool");
        fs::write(&file, b"x").unwrap();
        let err = Spool::open(config(&file)).unwrap_err();
        assert!(matches!(
            err,
            SpoolError::Io {
                op: SpoolOp::CreateDir,
                ..
            }
        ));
    }
}
