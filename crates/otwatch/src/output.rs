//! Where events go: JSON lines (the contract) or one readable line per event.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use otwatch_event::{JsonContext, ModbusInfo, Native, OtEvent, S7commInfo};
use otwatch_rules::Alert;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
    /// The Kafka sink (`--kafka-brokers`).
    Kafka,
}

impl Destination {
    /// `-` is stdout, `kafka` the Kafka sink; anything else is a file path (write
    /// `./kafka` for a file of that name).
    pub fn parse(s: &str) -> anyhow::Result<Destination> {
        match s {
            "" => anyhow::bail!("an output destination must be '-', 'kafka' or a file path"),
            "kafka" => Ok(Destination::Kafka),
            "-" => Ok(Destination::Stdout),
            path => Ok(Destination::File(PathBuf::from(path))),
        }
    }

    /// Opens the destination now, so that an unwritable path is reported before the
    /// first packet is processed. A file is truncated (`replay`: the output of this
    /// run) or, with `append`, added to (`live`: a restart must not wipe what an
    /// earlier run wrote).
    pub fn open(&self, append: bool) -> anyhow::Result<Box<dyn Write + Send>> {
        match self {
            Destination::Kafka => anyhow::bail!("kafka is not a stream destination"),
            Destination::Stdout => Ok(Box::new(io::stdout())),
            Destination::File(path) => Ok(Box::new(open_file(path, append)?)),
        }
    }

    /// Whether `self` and `other` are one stream: the same destination, or two
    /// spellings of one file (`out.jsonl` and `./out.jsonl`, a path and the file
    /// stdout is redirected to). Called once `other` is open, so that its file exists.
    /// Two writers on one file would overwrite each other's lines.
    pub fn same_stream(&self, other: &Destination) -> bool {
        self == other
            || match (self.identity(), other.identity()) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
    }

    /// The device and inode behind a stream destination, if it can be told.
    fn identity(&self) -> Option<(u64, u64)> {
        use std::os::fd::AsFd as _;
        use std::os::unix::fs::MetadataExt as _;
        let meta = match self {
            Destination::Kafka => return None,
            Destination::Stdout => {
                let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
                File::from(fd).metadata().ok()?
            }
            Destination::File(path) => std::fs::metadata(path).ok()?,
        };
        Some((meta.dev(), meta.ino()))
    }

    /// The format of this destination when `--format` is not given: text only for
    /// stdout on a terminal, JSON lines everywhere else (a file, a pipe), even when
    /// the other output of the run goes to a terminal.
    pub fn default_format(&self, stdout_is_terminal: bool) -> Format {
        match self {
            Destination::Stdout if stdout_is_terminal => Format::Text,
            _ => Format::Json,
        }
    }
}

fn open_file(path: &std::path::Path, append: bool) -> anyhow::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true).create(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    options
        .open(path)
        .with_context(|| format!("{}: cannot write", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Text,
}

/// Writes events and alerts in order, buffered, as JSON lines or text; `finish`
/// flushes.
pub struct LineWriter {
    out: BufWriter<Box<dyn Write + Send>>,
    /// The file to open again on [`LineWriter::reopen`] (live: after log rotation).
    path: Option<PathBuf>,
    format: Format,
    sensor: String,
    line: Vec<u8>,
    text: String,
}

impl LineWriter {
    pub fn new(out: Box<dyn Write + Send>, format: Format, sensor: String) -> Self {
        LineWriter {
            out: BufWriter::with_capacity(256 * 1024, out),
            path: None,
            format,
            sensor,
            line: Vec::with_capacity(512),
            text: String::with_capacity(256),
        }
    }

    /// Writes one event; `zones` and `ticket` come from the rule engine (see
    /// [`JsonContext`]).
    pub fn write_event(
        &mut self,
        ev: &OtEvent,
        zones: Option<(&str, &str)>,
        ticket: Option<&str>,
    ) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.line.clear();
                let ctx = JsonContext {
                    sensor: &self.sensor,
                    zones,
                    ticket,
                };
                ev.write_json(&ctx, &mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            }
            Format::Text => {
                self.text.clear();
                text_line(ev, &mut self.text);
                self.text.push('\n');
                self.out.write_all(self.text.as_bytes())
            }
        }
    }

    pub fn write_alert(&mut self, alert: &Alert) -> io::Result<()> {
        match self.format {
            Format::Json => {
                self.line.clear();
                alert.write_json(&mut self.line);
                self.line.push(b'\n');
                self.out.write_all(&self.line)
            }
            Format::Text => {
                let mut line = alert.text_line();
                line.push('\n');
                self.out.write_all(line.as_bytes())
            }
        }
    }

    /// Writes one JSON line that is neither an event nor an alert (a stats record);
    /// in text format too, as it is.
    pub fn write_raw_line(&mut self, json: &[u8]) -> io::Result<()> {
        self.out.write_all(json)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Makes [`LineWriter::reopen`] open `path` again (in append mode).
    pub fn reopenable(mut self, path: PathBuf) -> Self {
        self.path = Some(path);
        self
    }

    /// Flushes, then writes on to a newly opened file at the same path: after a log
    /// rotation moved the old one away (SIGHUP in `live`). If it cannot be opened, the
    /// old file stays in use.
    pub fn reopen(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.out.flush()?;
        let file = open_file(path, true)?;
        self.out = BufWriter::with_capacity(256 * 1024, Box::new(file));
        Ok(())
    }
}

/// One line a person can read on a terminal, e.g.
/// `2026-11-20T10:00:01.000000Z modbus write 10.20.1.5:49152 -> 10.30.1.10:502 unit 1 fc 16 addr 100 qty 2 [80, 81]`.
fn text_line(ev: &OtEvent, s: &mut String) {
    let f = &ev.flow;
    let (from, to) = match ev.pdu.direction {
        otwatch_event::Direction::ToServer => ((f.src_ip, f.src_port), (f.dst_ip, f.dst_port)),
        otwatch_event::Direction::ToClient => ((f.dst_ip, f.dst_port), (f.src_ip, f.src_port)),
    };
    let _ = write!(
        s,
        "{} {} {} {}:{} -> {}:{}",
        ev.timestamp,
        ev.protocol(),
        ev.pdu.operation,
        from.0,
        from.1,
        to.0,
        to.1
    );
    match &ev.pdu.native {
        Native::Modbus(m) => modbus_text(m, s),
        Native::S7comm(m) => s7_text(m, s),
        Native::S7commPlus(m) => {
            let _ = write!(s, " opcode 0x{:02x} {}", m.opcode, m.function);
            if m.protected {
                s.push_str(" protected");
            }
        }
        Native::Dnp3(m) => {
            let _ = write!(
                s,
                " {} -> {} fc {} {} seq {}",
                m.link_src, m.link_dst, m.function_code, m.function, m.sequence
            );
        }
        Native::Opcua(m) => {
            let _ = write!(
                s,
                " {} {} {}",
                m.message_type,
                m.security_mode,
                m.service.unwrap_or("")
            );
        }
    }
    for name in ev.pdu.anomalies.names() {
        let _ = write!(s, " !{name}");
    }
}

/// e.g. ` rosctr 1 ref 7 write_var DB10.4.0 x2 (+1 items)`.
fn s7_text(m: &S7commInfo, s: &mut String) {
    let _ = write!(s, " rosctr {} ref {} {}", m.rosctr, m.pdu_ref, m.function);
    if let Some(c) = m.error_class.filter(|c| *c != 0) {
        let _ = write!(s, " error {c:#04x}/{:#04x}", m.error_code.unwrap_or(0));
    }
    if let Some(b) = &m.block {
        let _ = write!(s, " {} {}", b.block_type, b.number);
    }
    if let Some(p) = &m.pi_service {
        let _ = write!(s, " {p}");
    }
    if let Some(id) = m.szl_id {
        let _ = write!(s, " szl {id:#06x}/{:#06x}", m.szl_index.unwrap_or(0));
    }
    if let Some(first) = m.items.as_deref().and_then(<[_]>::first) {
        let db = if first.area_name == "DB" || first.area_name == "DI" {
            first.db.to_string()
        } else {
            String::new()
        };
        let _ = write!(
            s,
            " {}{db}.{}.{} x{}",
            first.area_name, first.address, first.bit, first.length
        );
        let more = m.items.as_ref().map_or(0, |i| i.len() - 1);
        if more > 0 {
            let _ = write!(s, " (+{more} items)");
        }
    }
    if let Some(o) = m.identity.as_ref().and_then(|i| i.order_number.as_deref()) {
        let _ = write!(s, " {o}");
    }
}

fn modbus_text(m: &ModbusInfo, s: &mut String) {
    let _ = write!(
        s,
        " tid {} unit {} fc {} {}",
        m.transaction_id, m.unit_id, m.function_code, m.function
    );
    if let Some(code) = m.exception_code {
        let _ = write!(s, " exception {code}");
    }
    if let Some(a) = m.address {
        let _ = write!(s, " addr {a}");
    }
    if let Some(q) = m.quantity {
        let _ = write!(s, " qty {q}");
    }
    if let Some(v) = &m.values {
        const SHOWN: usize = 16;
        let shown: Vec<String> = v.iter().take(SHOWN).map(u16::to_string).collect();
        let more = if v.len() > SHOWN { ", ..." } else { "" };
        let _ = write!(s, " [{}{more}]", shown.join(", "));
    }
    if let Some(u) = &m.more().umas {
        let _ = write!(s, " umas {:#04x} {}", u.function_code, u.function);
    }
}
