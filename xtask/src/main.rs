//! `cargo xtask`: otwatch's build system.
//!
//! * `cargo xtask demo`      — replay the shipped demo capture and print what it finds
//! * `cargo xtask test`      — install what tests need, then fmt, clippy and every test
//! * `cargo xtask deps`      — only the installation step
//! * `cargo xtask gen-pcaps` — regenerate the project's own captures under `pcaps/`
//! * `cargo xtask bench`     — end-to-end and decode-only throughput, criterion benches
//! * `cargo xtask fuzz`      — run the cargo-fuzz targets (seeded from captures)
//! * `cargo xtask loss-sweep` — drop each TCP segment of captures in turn: no false alert
//!
//! Every step says what it runs; installs are idempotent.

mod bench;
mod fuzz;
mod gen;
mod kafka;
mod live;
mod loss;
mod sys;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::sys::{cargo, repo_root, run};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "otwatch's build system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay the demo capture (pcaps/demo-plant.pcap) with the demo policy and print the alerts.
    Demo,
    /// Install test dependencies, then fmt check, clippy -D warnings, all tests,
    /// and a short run of every fuzz target.
    Test {
        /// Skip the fuzz smoke runs.
        #[arg(long)]
        no_fuzz: bool,
    },
    /// Install the system packages otwatch's build and tests need (apt).
    Deps,
    /// Regenerate the project's own captures and their expected events under pcaps/.
    GenPcaps,
    /// Benchmarks: end-to-end replay, event output, decode-only pass, criterion.
    Bench {
        /// Packets in the generated benchmark capture.
        #[arg(long, default_value_t = 2_000_000)]
        packets: u64,
        /// Runs per configuration (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Skip the criterion micro-benchmarks.
        #[arg(long)]
        no_criterion: bool,
        /// Instead: events to Kafka (a tansu broker on loopback), paced with
        /// --kafka-speed; `--packets 6800000` makes a run of 30 s or more at 220.
        #[arg(long)]
        kafka: bool,
        /// Replay speed of the Kafka run (220 offers about 220,000 events/s; 0 = as
        /// fast as possible).
        #[arg(long, default_value_t = 220.0)]
        kafka_speed: f64,
        /// Instead: `otwatch live` on a veth pair (root): packet-to-alert latency
        /// (p99 < 100 ms), and with --soak-minutes a soak run with memory sampled.
        #[arg(long)]
        live: bool,
        /// Minutes of the live soak run (0 = none).
        #[arg(long, default_value_t = 0)]
        soak_minutes: u64,
        /// Packets per second tcpreplay offers during the soak run.
        #[arg(long, default_value_t = 200_000)]
        soak_pps: u64,
    },
    /// Drop each data-carrying TCP segment of captures in turn and report the losses
    /// that raise a protocol anomaly the whole capture does not (exit 1 if any).
    LossSweep {
        /// At most this many losses per capture, spread evenly (default: every one).
        #[arg(long)]
        max: Option<usize>,
        /// Packets lost at once: the data segment and the packets after it.
        #[arg(long, default_value_t = 1)]
        burst: usize,
        /// Capture files or directories (default: ../shared/pcaps).
        paths: Vec<PathBuf>,
    },
    /// Run cargo-fuzz targets with a corpus seeded from captures.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Targets to run (default: all).
        targets: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = repo_root()?;
    match cli.command {
        Command::Demo => demo(&root),
        Command::Test { no_fuzz } => test(&root, !no_fuzz),
        Command::Deps => sys::install_deps(sys::TEST_PACKAGES),
        Command::GenPcaps => {
            let out = root.join("pcaps");
            gen::gen_pcaps(&out)?;
            sys::say(&format!(
                "wrote the generated captures to {}",
                out.display()
            ));
            Ok(())
        }
        Command::Bench {
            packets,
            live: true,
            soak_minutes,
            soak_pps,
            ..
        } => live::live_bench(&root, soak_minutes, packets, soak_pps),
        Command::Bench {
            packets,
            kafka: true,
            kafka_speed,
            ..
        } => bench::kafka_bench(&root, packets, kafka_speed),
        Command::Bench {
            packets,
            runs,
            no_criterion,
            kafka: false,
            ..
        } => bench::bench(&root, packets, runs, !no_criterion),
        Command::Fuzz { seconds, targets } => fuzz::fuzz(&root, seconds, &targets),
        Command::LossSweep { max, burst, paths } => loss::loss_sweep(&root, &paths, max, burst),
    }
}

fn demo(root: &std::path::Path) -> anyhow::Result<()> {
    sys::install_deps(sys::DEMO_PACKAGES)?;
    let pcap: PathBuf = root.join("pcaps").join("demo-plant.pcap");
    anyhow::ensure!(
        pcap.exists(),
        "{} is missing: run `cargo xtask gen-pcaps`",
        pcap.display()
    );
    sys::say("building otwatch");
    run(cargo().args(["build", "--quiet", "-p", "otwatch"]))?;
    let bin = root.join("target").join("debug").join("otwatch");
    let shown = pcap.strip_prefix(root).unwrap_or(&pcap);
    sys::say(&format!(
        "otwatch replay {} --stats   (embedded demo policy: rules/demo-plant.toml)",
        shown.display()
    ));
    run(std::process::Command::new(bin)
        .current_dir(root)
        .args(["replay", "--stats"])
        .arg(shown))
    .context("the demo replay failed")
}

fn test(root: &std::path::Path, fuzz_smoke: bool) -> anyhow::Result<()> {
    sys::install_deps(sys::TEST_PACKAGES)?;
    let shared = root.join("..").join("shared").join("pcaps");
    if !shared.is_dir() {
        let msg = format!(
            "{} is missing: the cross-checks against public captures need ../shared beside the checkout",
            shared.display()
        );
        if sys::in_ci() {
            anyhow::bail!(msg);
        }
        sys::say(&format!("warning: {msg}"));
    }
    // The Kafka integration tests start their own broker on loopback.
    let tansu = kafka::ensure_tansu()?;
    sys::say(&format!(
        "Kafka-compatible broker for the tests: {}",
        tansu.display()
    ));
    sys::say("cargo fmt --all -- --check");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    sys::say("cargo clippy --workspace --all-targets -- -D warnings");
    run(cargo().args([
        "clippy",
        "--quiet",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The fuzz smoke runs and the doc tests come first, so that the test runner's
    // summary of every test is the last thing this command prints.
    if fuzz_smoke {
        fuzz::smoke(root)?;
    }
    sys::say("cargo test --workspace --doc");
    run(cargo().args(["test", "--quiet", "--workspace", "--doc"]))?;
    if sys::have("cargo-nextest") {
        sys::say("cargo nextest run --workspace");
        run(cargo().args([
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--failure-output",
            "final",
        ]))?;
    } else {
        sys::say("cargo test --workspace");
        run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    }
    sys::say("all checks passed");
    Ok(())
}
