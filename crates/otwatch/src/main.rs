//! `otwatch`: the binary. Argument parsing and wiring only; every stage lives in its
//! own crate (capture -> flow -> dissectors), see docs/ARCHITECTURE.md.

mod dispatch;
mod live;
mod output;
mod pipeline;
mod sink;
mod stats;

use std::io::{IsTerminal, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Capture from a mirror/SPAN interface and report alerts until stopped.
    Live(LiveArgs),
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

    #[command(flatten)]
    out: OutputArgs,

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
struct LiveArgs {
    /// The interface to capture from (a mirror/SPAN port); it is never transmitted on.
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    interface: String,

    /// Policy TOML (required: a live sensor has no default policy). SIGHUP reloads it.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,

    #[command(flatten)]
    out: OutputArgs,

    /// Print a summary to stderr every --stats-interval and at the end.
    #[arg(long)]
    stats: bool,

    /// How often a stats record goes to the alert stream (seconds, or with a unit:
    /// 30s, 5m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    stats_interval: Duration,

    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9300 (GET /metrics).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,

    /// Capture only what this BPF filter (tcpdump syntax) lets through.
    #[arg(long, value_name = "FILTER")]
    bpf: Option<String>,

    /// Bytes kept of each packet.
    #[arg(long, value_name = "BYTES", default_value_t = 65_535,
          value_parser = clap::value_parser!(u32).range(64..=262_144))]
    snaplen: u32,

    /// The kernel's capture buffer, in MiB (bursts wait there).
    #[arg(long = "buffer-size", value_name = "MIB", default_value_t = 128,
          value_parser = clap::value_parser!(u32).range(1..=2047))]
    buffer_mib: u32,
}

/// Where results go, and how many workers make them: shared by replay and live.
#[derive(Debug, clap::Args)]
struct OutputArgs {
    /// Where alerts go: '-' (stdout), a file path, or 'kafka' (needs --kafka-brokers).
    #[arg(long, value_name = "DEST", default_value = "-")]
    alerts: String,

    /// Also write every dissected PDU as an event: '-', a file path, or 'kafka'.
    #[arg(long, value_name = "DEST")]
    events: Option<String>,

    #[command(flatten)]
    kafka: KafkaArgs,

    /// State that survives restarts: the Kafka spool, and (live) the conduits and
    /// assets already reported (default /var/lib/otwatch as root, else
    /// $XDG_STATE_HOME/otwatch).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Flow workers (default: number of cores minus one, at least 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: Option<u16>,

    /// Output format: json (default when not a terminal) or text (default on a terminal),
    /// decided per output: a file is JSON lines even when stdout is a terminal.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
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

    /// Policy TOML whose zones classify the addresses (default: the demo policy built
    /// into the binary, as for replay).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

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

/// `60`, `60s`, `5m`, `1h`: at least one second.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 60, 30s, 5m, 1h)"))?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("'{s}': the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the interval must be at least 1s".into());
    }
    Ok(Duration::from_secs(secs))
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
        Command::Live(args) => live(args),
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
    if args.policy.is_none() {
        tracing::warn!(
            "learn: no --policy given: the demo policy's zones classify the addresses; \
             give your plant's policy to draft its conduits"
        );
    }
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(2, &e),
    };
    let files = match pipeline::open_captures(&args.pcaps) {
        Ok(f) => f,
        Err(pipeline::Error::Input(e) | pipeline::Error::Runtime(e)) => return fail(2, &e),
    };
    let out = match Destination::parse(&args.out).and_then(|d| d.open(false)) {
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
    match pipeline::run(pipeline::Input::Files(files), &opts, &mut consumer) {
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

/// Opens every output before the first packet (exit 2 on failure) and builds the
/// consumer that runs the rule engine and writes. `live` output files are appended to
/// and can be reopened (SIGHUP).
fn open_outputs(
    policy: Arc<Policy>,
    out: &OutputArgs,
    state_dir: &Path,
    live: bool,
) -> anyhow::Result<Detect> {
    let alerts = Destination::parse(&out.alerts)?;
    let events = out.events.as_deref().map(Destination::parse).transpose()?;
    let stdout_is_terminal = std::io::stdout().is_terminal();
    let format_of = |d: &Destination| match out.format {
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Text) => Format::Text,
        None => d.default_format(stdout_is_terminal),
    };
    // One writer per distinct stream destination: events and alerts sent to the same
    // place share a stream, each event before the alerts it triggers.
    let uses_kafka = alerts == Destination::Kafka || events == Some(Destination::Kafka);
    let kafka = if uses_kafka {
        let Some(brokers) = out.kafka.kafka_brokers.clone() else {
            anyhow::bail!("--alerts kafka and --events kafka need --kafka-brokers");
        };
        let config = otwatch_sinks::kafka::KafkaConfig {
            alerts_topic: out.kafka.kafka_topic.clone(),
            events_topic: out.kafka.kafka_events_topic.clone(),
            properties: out.kafka.kafka_config.clone(),
            ..otwatch_sinks::kafka::KafkaConfig::new(brokers)
        };
        let sink = otwatch_sinks::kafka::KafkaSink::start(config, state_dir)
            .map_err(|e| anyhow!("kafka (state dir {}): {e}", state_dir.display()))?;
        Some(sink)
    } else {
        None
    };
    let sensor = policy.sensor.name.clone();
    let mut writers = Vec::new();
    let mut open_stream = |d: &Destination| -> anyhow::Result<Target> {
        if *d == Destination::Kafka {
            return Ok(Target::Kafka);
        }
        let mut w = LineWriter::new(d.open(live)?, format_of(d), sensor.clone());
        if let (true, Destination::File(path)) = (live, d) {
            w = w.reopenable(path.clone());
        }
        writers.push(w);
        Ok(Target::Writer(writers.len() - 1))
    };
    let alerts_to = Some(open_stream(&alerts)?);
    let events_to = match events {
        None => None,
        Some(d) if d.same_stream(&alerts) => alerts_to,
        Some(d) => Some(open_stream(&d)?),
    };
    Ok(Detect::new(
        Engine::new(policy),
        writers,
        kafka,
        events_to,
        alerts_to,
    ))
}

fn threads_of(out: &OutputArgs) -> usize {
    out.threads.map(usize::from).unwrap_or_else(default_threads)
}

fn replay(args: ReplayArgs) -> ExitCode {
    let policy = match load_policy(args.policy.as_deref()) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(2, &e),
    };
    let files = match pipeline::open_captures(&args.pcaps) {
        Ok(f) => f,
        Err(pipeline::Error::Input(e) | pipeline::Error::Runtime(e)) => return fail(2, &e),
    };
    let state_dir = args.out.state_dir.clone().unwrap_or_else(default_state_dir);
    let mut consumer = match open_outputs(policy, &args.out, &state_dir, false) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let opts = RunOptions {
        threads: threads_of(&args.out),
        speed: args.speed,
        decode_only: args.decode_only,
        progress: std::io::stderr().is_terminal(),
    };
    let outcome = pipeline::run(pipeline::Input::Files(files), &opts, &mut consumer);
    finish_run(outcome, args.stats)
}

/// The exit status of a run, after its summary (`--stats`).
fn finish_run(outcome: Result<RunOutcome, pipeline::Error>, print_stats: bool) -> ExitCode {
    match outcome {
        Ok(RunOutcome { stats, clean }) => {
            if print_stats {
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

fn live(args: LiveArgs) -> ExitCode {
    let policy = match load_policy(Some(&args.policy)) {
        Ok(p) => Arc::new(p),
        Err(e) => return fail(2, &e),
    };
    let state_dir = args.out.state_dir.clone().unwrap_or_else(default_state_dir);
    let state = match live::StateFile::new(&state_dir) {
        Ok(s) => s,
        Err(e) => return fail(2, &e),
    };
    let config = otwatch_capture::live::LiveConfig {
        snaplen: args.snaplen,
        buffer_bytes: args.buffer_mib.saturating_mul(1 << 20),
        bpf: args.bpf.clone(),
        ..otwatch_capture::live::LiveConfig::new(args.interface.clone())
    };
    let capture = match otwatch_capture::live::LiveCapture::open(&config) {
        Ok(c) => c,
        Err(e) => return fail(2, &anyhow!("{e}")),
    };
    let metrics = match args.metrics {
        Some(addr) => {
            let figures = Arc::new(Mutex::new(stats::Figures::default()));
            if let Err(e) = live::serve_metrics(addr, Arc::clone(&figures)) {
                return fail(2, &e);
            }
            Some(figures)
        }
        None => None,
    };
    let consumer = match open_outputs(policy, &args.out, &state_dir, true) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    // SIGINT/SIGTERM stop the source; the pipeline then drains and flushes. SIGHUP
    // asks for a policy reload. A second SIGINT/SIGTERM while draining exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let registered =
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))
                .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&stop)));
        if let Err(e) = registered {
            return fail(1, &anyhow!("cannot handle signal {sig}: {e}"));
        }
    }
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload)) {
        return fail(1, &anyhow!("cannot handle SIGHUP: {e}"));
    }
    let counters = Arc::new(pipeline::SourceCounters::default());
    let ops = live::LiveOps::new(
        args.policy.clone(),
        reload,
        args.stats_interval,
        args.stats,
        args.interface.clone(),
        Arc::clone(&counters),
        metrics,
        state,
    );
    let mut consumer = consumer.with_live(ops);
    let opts = RunOptions {
        threads: threads_of(&args.out),
        speed: 0.0,
        decode_only: false,
        progress: false,
    };
    tracing::info!(interface = %args.interface, "capturing");
    let input = pipeline::Input::Live(pipeline::LiveInput {
        capture,
        stop,
        counters: Arc::clone(&counters),
    });
    let outcome = pipeline::run(input, &opts, &mut consumer);
    if args.stats {
        let f = counters.figures();
        #[allow(clippy::print_stderr)] // --stats is a report to stderr by contract.
        {
            eprintln!("captured_packets: {}", f.packets);
            eprintln!("drops.kernel: {}", f.kernel_dropped);
            eprintln!("drops.interface: {}", f.interface_dropped);
            eprintln!("drops.queue: {}", f.queue_dropped_packets);
        }
    }
    finish_run(outcome, args.stats)
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}
