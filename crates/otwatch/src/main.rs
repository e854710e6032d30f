//! `otwatch`: the binary. Argument parsing and wiring only; every stage lives in its
//! own crate (capture -> flow -> dissectors), see docs/ARCHITECTURE.md.

mod dispatch;
mod output;
mod pipeline;
mod sink;
mod stats;

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use clap::{Parser, Subcommand, ValueEnum};
use otwatch_rules::{Engine, Policy};

use crate::output::{Destination, Format, LineWriter};
use crate::pipeline::{RunOptions, RunOutcome};
use crate::sink::{Detect, Learn, Target};

/// Passive, process-aware network sensor for industrial (OT) networks.
#[derive(Debug, Parser)]
#[command(name = "otwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay pcap/pcapng files (in order, as one timeline) and report alerts.
    Replay(ReplayArgs),
    /// Draft [[conduits]] from what the captures show.
    Learn(LearnArgs),
    /// Validate a policy and print a summary.
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Capture files (pcap or pcapng, recognised by their magic number).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,

    /// Policy TOML (default: the demo policy built into the binary).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Where alerts go: '-' (stdout), a file path, or 'kafka' (needs --kafka-brokers).
    #[arg(long, value_name = "DEST", default_value = "-")]
    alerts: String,

    /// Also write every dissected PDU as an event: '-', a file path, or 'kafka'.
    #[arg(long, value_name = "DEST")]
    events: Option<String>,

    #[command(flatten)]
    kafka: KafkaArgs,

    /// State that survives restarts: the Kafka spool (default /var/lib/otwatch as
    /// root, else $XDG_STATE_HOME/otwatch).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Flow workers (default: number of cores minus one, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,

    /// Output format: json (default when not a terminal) or text (default on a terminal).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,

    /// Print a summary to stderr at the end.
    #[arg(long)]
    stats: bool,

    /// 0 = as fast as possible (default); 1 = the capture's own timing; X = X times faster.
    #[arg(long, default_value_t = 0.0, value_name = "X", value_parser = parse_speed)]
    speed: f64,

    /// Benchmarking aid: read and decode L2-L4 only (no flow table, reassembly or
    /// dissection), then print the summary.
    #[arg(long, hide = true)]
    decode_only: bool,
}

#[derive(Debug, clap::Args)]
struct KafkaArgs {
    /// Kafka bootstrap servers, e.g. 127.0.0.1:9092 (for --alerts/--events kafka).
    #[arg(long, value_name = "LIST")]
    kafka_brokers: Option<String>,

    /// Kafka topic for alerts.
    #[arg(long, value_name = "T", default_value = otwatch_sinks::kafka::DEFAULT_ALERTS_TOPIC)]
    kafka_topic: String,

    /// Kafka topic for events (--events kafka).
    #[arg(long, value_name = "T", default_value = otwatch_sinks::kafka::DEFAULT_EVENTS_TOPIC)]
    kafka_events_topic: String,

    /// Any librdkafka property (security.protocol, sasl.*, ssl.*, ...), repeatable.
    #[arg(short = 'X', long = "kafka-config", value_name = "K=V", value_parser = parse_property)]
    kafka_config: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

/// `--state-dir`'s default: /var/lib/otwatch as root, else $XDG_STATE_HOME/otwatch
/// (~/.local/state/otwatch).
fn default_state_dir() -> PathBuf {
    // The effective uid, from /proc (no libc call, no unsafe): "Uid: real effective ...".
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    });
    if root {
        return PathBuf::from("/var/lib/otwatch");
    }
    match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("otwatch"),
        None => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/state/otwatch"))
            .unwrap_or_else(|| PathBuf::from("otwatch-state")),
    }
}

#[derive(Debug, clap::Args)]
struct LearnArgs {
    /// Capture files (pcap or pcapng).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,

    /// Policy TOML whose zones classify the addresses.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    /// Where the drafted conduits go: '-' (stdout, the default) or a file path.
    #[arg(long, value_name = "FILE", default_value = "-")]
    out: String,

    /// Flow workers (default: number of cores minus one, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// Policy TOML to validate.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Json,
    Text,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("'{s}' must be a number >= 0"))
    }
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Learn(args) => learn(args),
        Command::Check(args) => check(&args.policy),
    }
}

/// The policy of `--policy`, or the embedded demo policy.
fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        Some(p) => otwatch_rules::load(p).map_err(|e| anyhow!("{e}")),
        None => Ok(otwatch_rules::demo()),
    }
}

fn check(path: &Path) -> ExitCode {
    match otwatch_rules::load(path) {
        Ok(policy) => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}: ok", path.display());
            let _ = write!(out, "{}", policy.summary());
            ExitCode::SUCCESS
        }
        Err(e) => fail(2, &anyhow!("{e}")),
    }
}

fn learn(args: LearnArgs) -> ExitCode {
    let policy = match load_policy(Some(&args.policy)) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(2, &e),
    };
    let files = match pipeline::open_captures(&args.pcaps) {
        Ok(f) => f,
        Err(pipeline::Error::Input(e) | pipeline::Error::Runtime(e)) => return fail(2, &e),
    };
    let out = match Destination::parse(&args.out).and_then(|d| d.open()) {
        Ok(o) => o,
        Err(e) => return fail(2, &e),
    };
    let opts = RunOptions {
        threads: args
            .threads
            .map(usize::from)
            .unwrap_or_else(default_threads),
        speed: 0.0,
        decode_only: false,
        progress: std::io::stderr().is_terminal(),
    };
    let mut consumer = Learn {
        learner: otwatch_rules::learn::Learner::new(policy),
    };
    match pipeline::run(files, &opts, &mut consumer) {
        Ok(RunOutcome { clean, .. }) => {
            let mut out = std::io::BufWriter::new(out);
            let written = consumer
                .learner
                .write_conduits_toml(&mut out)
                .and_then(|()| out.flush());
            if let Err(e) = written {
                return fail(1, &anyhow!("{}: {e}", args.out));
            }
            let unzoned = consumer.learner.unzoned_addresses();
            if !unzoned.is_empty() {
                tracing::warn!(
                    "{} addresses are in no zone of the policy (listed in the draft)",
                    unzoned.len()
                );
            }
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(pipeline::Error::Input(e)) => fail(2, &e),
        Err(pipeline::Error::Runtime(e)) => fail(1, &e),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OTWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .init();
}

/// Prints a fatal error in the one-line form users see and returns the exit status.
fn fail(code: u8, err: &anyhow::Error) -> ExitCode {
    #[allow(clippy::print_stderr)] // The user-facing error line, not a log.
    {
        eprintln!("otwatch: {err:#}");
    }
    ExitCode::from(code)
}

fn replay(args: ReplayArgs) -> ExitCode {
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(default_threads);
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(2, &e),
    };
    let files = match pipeline::open_captures(&args.pcaps) {
        Ok(f) => f,
        Err(pipeline::Error::Input(e) | pipeline::Error::Runtime(e)) => return fail(2, &e),
    };
    let alerts = match Destination::parse(&args.alerts) {
        Ok(d) => d,
        Err(e) => return fail(2, &e),
    };
    let events = match args.events.as_deref().map(Destination::parse).transpose() {
        Ok(d) => d,
        Err(e) => return fail(2, &e),
    };
    let to_terminal = [Some(&alerts), events.as_ref()]
        .into_iter()
        .flatten()
        .any(|d| *d == Destination::Stdout && std::io::stdout().is_terminal());
    let format = match args.format {
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Text) => Format::Text,
        None if to_terminal => Format::Text,
        None => Format::Json,
    };
    // One writer per distinct stream destination: events and alerts sent to the same
    // place share a stream, each event before the alerts it triggers.
    let uses_kafka = alerts == Destination::Kafka || events == Some(Destination::Kafka);
    let kafka = if uses_kafka {
        let Some(brokers) = args.kafka.kafka_brokers.clone() else {
            return fail(
                2,
                &anyhow!("--alerts kafka and --events kafka need --kafka-brokers"),
            );
        };
        let config = otwatch_sinks::kafka::KafkaConfig {
            alerts_topic: args.kafka.kafka_topic.clone(),
            events_topic: args.kafka.kafka_events_topic.clone(),
            properties: args.kafka.kafka_config.clone(),
            ..otwatch_sinks::kafka::KafkaConfig::new(brokers)
        };
        let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
        match otwatch_sinks::kafka::KafkaSink::start(config, &state_dir) {
            Ok(k) => Some(k),
            Err(e) => {
                return fail(
                    2,
                    &anyhow!("kafka (state dir {}): {e}", state_dir.display()),
                )
            }
        }
    } else {
        None
    };
    let sensor = policy.sensor.name.clone();
    let mut writers = Vec::new();
    let mut open_stream = |d: &Destination| -> anyhow::Result<Target> {
        if *d == Destination::Kafka {
            return Ok(Target::Kafka);
        }
        writers.push(LineWriter::new(d.open()?, format, sensor.clone()));
        Ok(Target::Writer(writers.len() - 1))
    };
    let alerts_to = match open_stream(&alerts) {
        Ok(t) => Some(t),
        Err(e) => return fail(2, &e),
    };
    let events_to = match events {
        None => None,
        Some(d) if d == alerts => alerts_to,
        Some(d) => match open_stream(&d) {
            Ok(t) => Some(t),
            Err(e) => return fail(2, &e),
        },
    };
    let mut consumer = Detect::new(Engine::new(policy), writers, kafka, events_to, alerts_to);
    let opts = RunOptions {
        threads,
        speed: args.speed,
        decode_only: args.decode_only,
        progress: std::io::stderr().is_terminal(),
    };
    match pipeline::run(files, &opts, &mut consumer) {
        Ok(RunOutcome { stats, clean }) => {
            if args.stats {
                stats.print_summary();
            }
            let dropped = stats.kafka.map_or(0, |k| k.dropped_alerts);
            if dropped > 0 {
                return fail(
                    1,
                    &anyhow!("{dropped} alerts were dropped: the Kafka spool was full"),
                );
            }
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(pipeline::Error::Input(e)) => fail(2, &e),
        Err(pipeline::Error::Runtime(e)) => fail(1, &e),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}
