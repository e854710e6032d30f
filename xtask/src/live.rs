//! `cargo xtask bench --live`: `otwatch live` on a veth pair between two network
//! namespaces (root). Packet-to-alert latency at a low rate, held to its target, and
//! optionally a soak run at a high rate with memory sampled.

use std::fmt::Write as _;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use otwatch_vethlab::{Names, VethLab};

use crate::sys::{cargo, run, say};

/// p99 packet-to-alert latency at a low packet rate.
const TARGET_P99_MS: f64 = 100.0;
/// After warm-up, a soak's anonymous memory may grow by at most this much.
const SOAK_MAX_GROWTH: f64 = 0.10;
/// Where the sensor serves metrics inside its namespace.
const METRICS_PORT: u16 = 9309;

/// The soak's warm-up: the flow table's TCP idle timeout (10 min), after which the
/// flows of earlier loops end as fast as new ones start, plus a minute.
const SOAK_WARMUP_MINUTES: f64 = 11.0;

pub fn live_bench(
    root: &Path,
    soak_minutes: u64,
    soak_packets: u64,
    pps: u64,
) -> anyhow::Result<()> {
    crate::sys::install_deps(&["iproute2", "tcpreplay"])?;
    let dir = root.join("target/bench");
    fs::create_dir_all(&dir)?;
    let report_path = dir.join("latency.json");
    let _ = fs::remove_file(&report_path);
    say("packet-to-alert latency: cargo test --release -p otwatch --test live packet_to_alert_latency_at_a_low_rate");
    run(cargo()
        .args([
            "test",
            "--release",
            "--quiet",
            "-p",
            "otwatch",
            "--test",
            "live",
            "packet_to_alert_latency_at_a_low_rate",
            "--",
            "--exact",
            "--nocapture",
        ])
        .env("OTWATCH_LATENCY_REPORT", &report_path))?;
    let report: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(&report_path)
            .context("the latency test wrote no report (no veth lab here?)")?,
    )?;
    let p99 = report["p99_ms"].as_f64().unwrap_or(f64::MAX);
    let mut out = format!(
        "| packet-to-alert latency (live, veth, ~200 packets/s) | value |\n|---|---|\n\
         | alerts | {} |\n| p50 | {:.2} ms |\n| p99 | {p99:.2} ms |\n| max | {:.2} ms |\n\n\
         - {} p99 < {TARGET_P99_MS} ms\n",
        report["alerts"],
        report["p50_ms"].as_f64().unwrap_or(0.0),
        report["max_ms"].as_f64().unwrap_or(0.0),
        if p99 < TARGET_P99_MS { "PASS" } else { "FAIL" },
    );
    let mut ok = p99 < TARGET_P99_MS;
    if soak_minutes > 0 {
        let (table, flat) = soak(root, &dir, soak_minutes, soak_packets, pps)?;
        out.push('\n');
        out.push_str(&table);
        ok &= flat;
    }
    fs::write(dir.join("live-results.md"), &out)?;
    #[allow(clippy::print_stdout)] // The report is the command's output.
    {
        println!("{out}");
    }
    ensure!(ok, "a live target was missed (see above)");
    Ok(())
}

/// The soak's lab: fixed names, so that a run killed before it could clean up leaves
/// nothing the next run trips over.
const SEND_NS: &str = "otwsoakS";
const SENSOR_NS: &str = "otwsoakR";

fn metric(text: &str, sample: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

fn rss_kb(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replays the benchmark capture into the veth in a loop (`--unique-ip`: every loop
/// new addresses, so new flows; its connections never close, so they end by idle
/// timeout), samples the sensor every 10 s, and says whether its anonymous memory
/// stayed flat after warm-up.
fn soak(
    root: &Path,
    dir: &Path,
    minutes: u64,
    packets: u64,
    pps: u64,
) -> anyhow::Result<(String, bool)> {
    say("cargo build --release -p otwatch");
    run(cargo().args(["build", "--release", "--quiet", "-p", "otwatch"]))?;
    let bin = root.join("target/release/otwatch");
    let pcap = crate::bench::bench_capture(dir, packets, crate::gen::Traffic::Modbus)?;
    let lab = VethLab::new(Names::fixed(SEND_NS, SENSOR_NS))?;
    let state = dir.join("soak-state");
    let _ = fs::remove_dir_all(&state);
    let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, METRICS_PORT));
    let sensor = lab
        .sensor_command(&bin, ["live", "-i", lab.sensor_if(), "--policy"])
        .arg(root.join("rules/demo-plant.toml"))
        .arg("--state-dir")
        .arg(&state)
        .args([
            "--alerts",
            "/dev/null",
            "--threads",
            "1",
            "--metrics",
            &metrics.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting otwatch live")?;
    let sensor = Killed(sensor);
    let pid = sensor.0.id();
    lab.wait_for(
        metrics,
        "otwatch_packets_total",
        Duration::from_secs(10),
        |text| text.contains("otwatch_packets_total"),
    )
    .context("otwatch live did not start")?;
    say(&format!(
        "soak: {minutes} min of {} looped at {pps} packets/s into the veth",
        pcap.display()
    ));
    let pps_s = pps.to_string();
    let sender = lab
        .send_command(&pcap, ["--loop", "0", "--unique-ip", "--pps", &pps_s])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting tcpreplay")?;
    let sender = Killed(sender);
    let mut table = String::from(
        "| minute | packets captured | packets/s | drops kernel | drops queue | flows active | RssAnon MB | VmRSS MB |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut last = (0u64, Instant::now());
    let total = Duration::from_secs(minutes * 60);
    let begin = Instant::now();
    while begin.elapsed() < total {
        thread::sleep(Duration::from_secs(10));
        let text = lab.scrape(metrics);
        let packets = metric(&text, "otwatch_packets_total ");
        let rate = (packets.saturating_sub(last.0)) as f64 / last.1.elapsed().as_secs_f64();
        last = (packets, Instant::now());
        let anon = rss_kb(pid, "RssAnon:");
        let minute = begin.elapsed().as_secs_f64() / 60.0;
        samples.push((minute, anon));
        let _ = writeln!(
            table,
            "| {minute:.1} | {packets} | {rate:.0} | {} | {} | {} | {:.1} | {:.1} |",
            metric(&text, "otwatch_drops_total{cause=\"kernel\"} "),
            metric(&text, "otwatch_drops_total{cause=\"queue\"} "),
            metric(&text, "otwatch_flows_active "),
            anon as f64 / 1024.0,
            rss_kb(pid, "VmRSS:") as f64 / 1024.0,
        );
        say(table.lines().last().unwrap_or_default());
    }
    drop(sender);
    // Memory after warm-up against the rest of the run. Runs shorter than the
    // warm-up plus three minutes (trials) take their first third as warm-up.
    let warmup = if minutes as f64 >= SOAK_WARMUP_MINUTES + 3.0 {
        SOAK_WARMUP_MINUTES
    } else {
        minutes as f64 / 3.0
    };
    let warm = samples
        .iter()
        .filter(|(m, _)| *m >= warmup)
        .map(|(_, kb)| *kb)
        .collect::<Vec<_>>();
    let (first, max) = (
        warm.first().copied().unwrap_or(0),
        warm.iter().copied().max().unwrap_or(0),
    );
    let growth = if first > 0 {
        max as f64 / first as f64 - 1.0
    } else {
        f64::MAX
    };
    let flat = growth <= SOAK_MAX_GROWTH;
    let _ = write!(
        table,
        "\n- {} RssAnon after warm-up: {:.1} MB at {:.1} min, at most {:.1} MB after (+{:.1} %, limit +{:.0} %)\n",
        if flat { "PASS" } else { "FAIL" },
        first as f64 / 1024.0,
        warmup,
        max as f64 / 1024.0,
        growth * 100.0,
        SOAK_MAX_GROWTH * 100.0,
    );
    // A clean stop at the end, as an operator would.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .output();
    drop(sensor);
    drop(lab);
    Ok((table, flat))
}
