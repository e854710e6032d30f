//! `otwatch`: the binary. Argument parsing and wiring only; every stage lives in its
//! own crate (capture -> flow -> dissectors), see docs/ARCHITECTURE.md.

mod dispatch;
mod output;
mod pipeline;
mod stats;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::output::{Destination, Format};
use crate::pipeline::{ReplayOptions, RunOutcome};

/// Passive, process-aware network sensor for industrial (OT) networks.
#[derive(Debug, Parser)]
#[command(name = "otwatch", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay pcap/pcapng files (in order, as one timeline).
    Replay(ReplayArgs),
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// Capture files (pcap or pcapng, recognised by their magic number).
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<PathBuf>,

    /// Also write every dissected PDU as an event: '-' (stdout) or a file path.
    #[arg(long, value_name = "DEST")]
    events: Option<String>,

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
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("OTWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
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
    let events = match args.events.as_deref().map(Destination::parse).transpose() {
        Ok(d) => d,
        Err(e) => return fail(2, &e),
    };
    let format = match args.format {
        Some(FormatArg::Json) => Format::Json,
        Some(FormatArg::Text) => Format::Text,
        None => match &events {
            Some(Destination::Stdout) if std::io::stdout().is_terminal() => Format::Text,
            _ => Format::Json,
        },
    };
    let opts = ReplayOptions {
        pcaps: args.pcaps,
        events,
        format,
        threads,
        speed: args.speed,
        decode_only: args.decode_only,
        progress: std::io::stderr().is_terminal(),
        sensor: "otwatch".to_owned(),
    };
    match pipeline::replay(opts) {
        Ok(RunOutcome { stats, clean }) => {
            if args.stats {
                stats.print_summary();
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
