//! JSON lines to stdout or a file.
//!
//! One object per line, `\n`-terminated. In live mode ([`JsonlConfig::flush_each`]) every
//! line is flushed as soon as it is written, so `tail -f` and log shippers see an alert
//! at once; in replay mode lines are buffered and flushed at the end.
//!
//! A file target can rotate by size ([`JsonlConfig::rotate_bytes`]): before a line
//! that would take the file past the limit, `alerts.jsonl` becomes `alerts.jsonl.1`,
//! `.1` becomes `.2`, and so on; [`JsonlConfig::keep`] rotated files are kept, the
//! oldest is deleted. A line is never split across files (a line longer than the limit
//! gets a file of its own). Without rotation the file is truncated at open (a replay's
//! output is the replay's alone); with rotation an existing non-empty file is rotated
//! away at open instead, so a restart of `live` does not destroy earlier alerts.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use tracing::{debug, error};

/// Buffer size of the writer (lines are written whole to the target when it fills).
const BUFFER_BYTES: usize = 64 * 1024;

/// Where the lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonlTarget {
    Stdout,
    File(PathBuf),
}

/// How a [`JsonlSink`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonlConfig {
    pub target: JsonlTarget,
    /// Flush after every line (live mode). Default false.
    pub flush_each: bool,
    /// Rotate a file target before a line would take it past this many bytes. `None`
    /// (the default): never. Not allowed for stdout.
    pub rotate_bytes: Option<u64>,
    /// Rotated files kept beside the current one (`file.1` .. `file.<keep>`); 0 deletes
    /// the old file at rotation. Default 5.
    pub keep: usize,
}

impl JsonlConfig {
    /// Default `keep`.
    pub const DEFAULT_KEEP: usize = 5;

    /// A configuration for `target`, buffered, without rotation.
    pub fn new(target: JsonlTarget) -> JsonlConfig {
        JsonlConfig {
            target,
            flush_each: false,
            rotate_bytes: None,
            keep: Self::DEFAULT_KEEP,
        }
    }
}

/// The file operation that failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SinkOp {
    Open,
    Write,
    Flush,
    Rotate,
}

impl fmt::Display for SinkOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SinkOp::Open => "open",
            SinkOp::Write => "write",
            SinkOp::Flush => "flush",
            SinkOp::Rotate => "rotate",
        })
    }
}

/// What can go wrong with a JSON-lines sink. The OS error and the path are logged where
/// the error happens.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// A file operation failed (`BrokenPipe` when stdout's reader went away).
    #[error("JSON lines output: {op}: {kind}")]
    Io { op: SinkOp, kind: ErrorKind },
    /// A line with a `\n` inside would break the one-object-per-line framing.
    #[error("a JSON line must not contain a newline")]
    EmbeddedNewline,
    /// A configuration value out of range.
    #[error("invalid JSON lines configuration: {0}")]
    InvalidConfig(&'static str),
}

fn io_error(op: SinkOp, target: &JsonlTarget, err: &io::Error) -> SinkError {
    match target {
        JsonlTarget::Stdout => {
            error!(output = "stdout", %op, error = %err, "JSON lines output failed")
        }
        JsonlTarget::File(path) => {
            error!(path = %path.display(), %op, error = %err, "JSON lines output failed")
        }
    }
    SinkError::Io {
        op,
        kind: err.kind(),
    }
}

/// The open destination.
#[derive(Debug)]
enum Output {
    Stdout(io::Stdout),
    File(File),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(s) => s.write(buf),
            Output::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.write_all(buf),
            Output::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

/// Writes JSON lines; see the [module docs](self).
#[derive(Debug)]
pub struct JsonlSink {
    config: JsonlConfig,
    out: BufWriter<Output>,
    /// Bytes in the current file (for rotation).
    file_bytes: u64,
    /// Bytes written since open, across rotations.
    written: u64,
}

impl JsonlSink {
    /// Opens the target now, so that an unwritable path is reported before the first
    /// packet is processed.
    pub fn open(config: JsonlConfig) -> Result<JsonlSink, SinkError> {
        let output = match (&config.target, config.rotate_bytes) {
            (JsonlTarget::Stdout, Some(_)) => {
                return Err(SinkError::InvalidConfig("stdout cannot rotate"));
            }
            (_, Some(0)) => {
                return Err(SinkError::InvalidConfig("rotate_bytes must be at least 1"));
            }
            (JsonlTarget::Stdout, None) => Output::Stdout(io::stdout()),
            (JsonlTarget::File(path), rotate) => {
                if rotate.is_some() && fs::metadata(path).is_ok_and(|m| m.len() > 0) {
                    shift_files(path, config.keep)
                        .map_err(|e| io_error(SinkOp::Rotate, &config.target, &e))?;
                }
                Output::File(create(path).map_err(|e| io_error(SinkOp::Open, &config.target, &e))?)
            }
        };
        Ok(JsonlSink {
            out: BufWriter::with_capacity(BUFFER_BYTES, output),
            config,
            file_bytes: 0,
            written: 0,
        })
    }

    /// Writes one line; `line` is one JSON object, with or without its final `\n`.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.contains(&b'\n') {
            return Err(SinkError::EmbeddedNewline);
        }
        let size = line.len() as u64 + 1;
        if let Some(limit) = self.config.rotate_bytes {
            if self.file_bytes > 0 && self.file_bytes.saturating_add(size) > limit {
                self.rotate()?;
            }
        }
        self.out
            .write_all(line)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| io_error(SinkOp::Write, &self.config.target, &e))?;
        self.file_bytes += size;
        self.written += size;
        if self.config.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// Pushes buffered lines to the target.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| io_error(SinkOp::Flush, &self.config.target, &e))
    }

    /// Bytes written since open (across rotations), newlines included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The configuration the sink was opened with.
    pub fn config(&self) -> &JsonlConfig {
        &self.config
    }

    fn rotate(&mut self) -> Result<(), SinkError> {
        self.flush()?;
        let JsonlTarget::File(path) = &self.config.target else {
            return Ok(());
        };
        shift_files(path, self.config.keep)
            .and_then(|()| create(path))
            .map(|file| {
                // The old file is closed when its writer is replaced (already flushed).
                self.out = BufWriter::with_capacity(BUFFER_BYTES, Output::File(file));
                self.file_bytes = 0;
                debug!(path = %path.display(), "JSON lines file rotated");
            })
            .map_err(|e| io_error(SinkOp::Rotate, &self.config.target, &e))
    }
}

fn create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

/// `path.<n>` (the suffix is appended to the whole name: `alerts.jsonl.1`).
fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Moves `path` to `path.1` after moving `path.i` to `path.i+1`, deleting what would
/// become `path.<keep+1>`. With `keep == 0`, deletes `path`.
fn shift_files(path: &Path, keep: usize) -> io::Result<()> {
    let remove = |p: &Path| match fs::remove_file(p) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    if keep == 0 {
        return remove(path);
    }
    remove(&numbered(path, keep))?;
    for n in (1..keep).rev() {
        let from = numbered(path, n);
        match fs::rename(&from, numbered(path, n + 1)) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    fs::rename(path, numbered(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_config(path: &Path) -> JsonlConfig {
        JsonlConfig::new(JsonlTarget::File(path.to_path_buf()))
    }

    fn line(i: usize) -> String {
        format!("{{\"schema\":\"otwatch/1\",\"alert\":{{\"id\":\"{i:04}\"}}}}")
    }

    #[test]
    fn lines_intact_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        fs::write(&path, "old contents\n").unwrap();
        let mut sink = JsonlSink::open(file_config(&path)).unwrap();
        // Truncated at open.
        assert_eq!(fs::read(&path).unwrap(), b"");
        sink.write_line(br#"{"a":1}"#).unwrap();
        sink.write_line(b"{\"b\":\"\xc3\xa9\"}\n").unwrap(); // final newline accepted, not doubled
        sink.write_line(b"").unwrap();
        assert_eq!(sink.bytes_written(), 8 + 11 + 1);
        sink.flush().unwrap();
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"b\":\"\xc3\xa9\"}\n\n"
        );

        assert_eq!(
            sink.write_line(b"{\"a\":\n1}"),
            Err(SinkError::EmbeddedNewline)
        );
        assert_eq!(sink.write_line(b"x\n\n"), Err(SinkError::EmbeddedNewline));
        assert_eq!(sink.bytes_written(), 20);
    }

    #[test]
    fn flush_each_is_visible_to_a_reader_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live.jsonl");
        let mut sink = JsonlSink::open(JsonlConfig {
            flush_each: true,
            ..file_config(&live)
        })
        .unwrap();
        sink.write_line(line(1).as_bytes()).unwrap();
        assert_eq!(fs::read_to_string(&live).unwrap(), line(1) + "\n");

        // Without it, a line waits in the buffer until a flush.
        let batch = dir.path().join("batch.jsonl");
        let mut sink = JsonlSink::open(file_config(&batch)).unwrap();
        sink.write_line(line(1).as_bytes()).unwrap();
        assert_eq!(fs::read_to_string(&batch).unwrap(), "");
        drop(sink);
        assert_eq!(fs::read_to_string(&batch).unwrap(), line(1) + "\n");
    }

    #[test]
    fn rotation_keeps_files_and_never_splits_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let one = line(0).len() as u64 + 1; // 46 bytes with its newline
        let mut sink = JsonlSink::open(JsonlConfig {
            rotate_bytes: Some(3 * one + one / 2),
            keep: 2,
            ..file_config(&path)
        })
        .unwrap();
        for i in 0..20 {
            sink.write_line(line(i).as_bytes()).unwrap();
        }
        sink.flush().unwrap();
        assert_eq!(sink.bytes_written(), 20 * one);
        // 20 lines, 3 per file: 0-2, ..., 15-17 rotated away, 18-19 current.
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        let expect =
            |range: std::ops::Range<usize>| -> String { range.map(|i| line(i) + "\n").collect() };
        assert_eq!(read(path.clone()), expect(18..20));
        assert_eq!(read(numbered(&path, 1)), expect(15..18));
        assert_eq!(read(numbered(&path, 2)), expect(12..15));
        assert!(!numbered(&path, 3).exists());
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["alerts.jsonl", "alerts.jsonl.1", "alerts.jsonl.2"]);

        // A line longer than the limit gets a file of its own.
        let long = "x".repeat(400);
        sink.write_line(long.as_bytes()).unwrap();
        sink.write_line(line(99).as_bytes()).unwrap();
        sink.flush().unwrap();
        assert_eq!(read(numbered(&path, 1)), long + "\n");
        assert_eq!(read(path.clone()), line(99) + "\n");
        drop(sink);

        // Reopening rotates the existing file away instead of truncating it.
        let sink = JsonlSink::open(JsonlConfig {
            rotate_bytes: Some(1000),
            keep: 2,
            ..file_config(&path)
        })
        .unwrap();
        drop(sink);
        assert_eq!(read(numbered(&path, 1)), line(99) + "\n");
        assert_eq!(read(path), "");
    }

    #[test]
    fn rotation_with_keep_zero_deletes_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut sink = JsonlSink::open(JsonlConfig {
            rotate_bytes: Some(10),
            keep: 0,
            ..file_config(&path)
        })
        .unwrap();
        sink.write_line(b"first").unwrap();
        sink.write_line(b"second").unwrap();
        drop(sink);
        assert_eq!(fs::read_to_string(&path).unwrap(), "second\n");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_path_is_an_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir").join("alerts.jsonl");
        assert!(matches!(
            JsonlSink::open(file_config(&missing)),
            Err(SinkError::Io {
                op: SinkOp::Open,
                kind: ErrorKind::NotFound
            })
        ));
        // A directory is not a file.
        assert!(matches!(
            JsonlSink::open(file_config(dir.path())),
            Err(SinkError::Io {
                op: SinkOp::Open,
                ..
            })
        ));
    }

    #[test]
    fn bad_configurations() {
        let stdout_rotating = JsonlConfig {
            rotate_bytes: Some(100),
            ..JsonlConfig::new(JsonlTarget::Stdout)
        };
        assert!(matches!(
            JsonlSink::open(stdout_rotating),
            Err(SinkError::InvalidConfig(_))
        ));
        let dir = tempfile::tempdir().unwrap();
        let zero = JsonlConfig {
            rotate_bytes: Some(0),
            ..file_config(&dir.path().join("a"))
        };
        assert!(matches!(
            JsonlSink::open(zero),
            Err(SinkError::InvalidConfig(_))
        ));
        // Stdout opens (nothing is written here: the test harness owns stdout).
        let sink = JsonlSink::open(JsonlConfig::new(JsonlTarget::Stdout)).unwrap();
        assert_eq!(sink.bytes_written(), 0);
    }
}
