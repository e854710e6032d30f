//! `cargo xtask fuzz`: cargo-fuzz targets, with corpora seeded from captures.
//!
//! Seeds are extracted at run time (into the git-ignored `fuzz/corpus/`) from the
//! project's generated captures and, when present, the public captures in
//! `../shared/pcaps`: the TCP payloads that tshark calls Modbus.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::sys::{cargo, have, in_ci, output, run, say};

/// Every fuzz target (the `[[bin]]`s of fuzz/Cargo.toml).
pub const TARGETS: &[&str] = &["modbus", "s7comm", "reassembly", "capture", "opcua", "dnp3"];

/// The short fuzz run of `cargo xtask test` (about 30 s per target).
pub fn smoke(root: &Path) -> anyhow::Result<()> {
    if !nightly_available() {
        let msg = "the nightly toolchain is missing: cargo fuzz needs it (rustup toolchain install nightly)";
        if in_ci() {
            bail!(msg);
        }
        say(&format!("warning: {msg}; fuzz smoke runs skipped"));
        return Ok(());
    }
    run_targets(root, 30, TARGETS)
}

pub fn fuzz(root: &Path, seconds: u64, targets: &[String]) -> anyhow::Result<()> {
    let chosen: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target '{t}' (targets: {})",
                    TARGETS.join(", ")
                );
            }
        }
        targets.iter().map(String::as_str).collect()
    };
    if !nightly_available() {
        bail!("the nightly toolchain is missing: cargo fuzz needs it (rustup toolchain install nightly)");
    }
    run_targets(root, seconds, &chosen)
}

fn nightly_available() -> bool {
    Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if have("cargo-fuzz") {
        return Ok(());
    }
    say("installing cargo-fuzz: cargo install cargo-fuzz --locked");
    run(cargo().args(["install", "cargo-fuzz", "--locked"]))
}

fn run_targets(root: &Path, seconds: u64, targets: &[&str]) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        let seeded = seed(root, target, &corpus)?;
        say(&format!(
            "cargo +nightly fuzz run {target} ({seconds} s, {seeded} seeds in fuzz/corpus/{target})"
        ));
        run(Command::new("cargo")
            .current_dir(&fuzz_dir)
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-print_final_stats=1",
            ]))
        .with_context(|| format!("fuzz target {target} failed: see fuzz/artifacts/{target}"))?;
    }
    Ok(())
}

/// Writes seed inputs for `target` into `corpus`; returns how many it wrote.
fn seed(root: &Path, target: &str, corpus: &Path) -> anyhow::Result<usize> {
    match target {
        "modbus" if have("tshark") => seed_modbus(root, corpus),
        "s7comm" if have("tshark") => seed_s7comm(root, corpus),
        "opcua" if have("tshark") => seed_opcua(root, corpus),
        "dnp3" if have("tshark") => seed_dnp3(root, corpus),
        "capture" => seed_capture(root, corpus),
        _ => Ok(0),
    }
}

/// Whole small capture files, generated and public, as they are.
fn seed_capture(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    const MAX_SEED: u64 = 64 * 1024;
    let mut n = 0;
    let shared = root.join("../shared/pcaps");
    let dirs = [
        root.join("pcaps/modbus"),
        shared.join("modbus"),
        shared.join("dnp3"),
        shared.join("s7comm"),
        shared.join("opcua"),
    ];
    for dir in dirs {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for p in files {
            let small = fs::metadata(&p).is_ok_and(|m| m.is_file() && m.len() <= MAX_SEED);
            let is_capture = p.extension().is_some_and(|x| x == "pcap" || x == "pcapng");
            if small && is_capture {
                fs::copy(&p, corpus.join(format!("seed-{n:05}")))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The TCP payloads that tshark calls Modbus.
fn seed_modbus(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let mut captures: Vec<PathBuf> = Vec::new();
    for dir in [
        root.join("pcaps").join("modbus"),
        root.join("../shared/pcaps/modbus"),
    ] {
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    captures.push(p);
                }
            }
        }
    }
    captures.sort();
    let mut payloads = BTreeSet::new();
    for cap in &captures {
        let text = output(Command::new("tshark").arg("-r").arg(cap).args([
            "-Y",
            "modbus || mbtcp",
            "-T",
            "fields",
            "-e",
            "tcp.payload",
        ]))?;
        for line in text.lines() {
            if let Some(bytes) = from_hex(line.trim()) {
                if !bytes.is_empty() {
                    payloads.insert(bytes);
                }
            }
            if payloads.len() >= 2000 {
                break;
            }
        }
    }
    for (i, p) in payloads.iter().enumerate() {
        fs::write(corpus.join(format!("seed-{i:05}")), p)?;
    }
    Ok(payloads.len())
}

/// The TCP payloads (runs of TPKTs) of the S7 captures that tshark calls COTP:
/// S7comm, S7comm-plus and the connection set-up, generated and public.
fn seed_s7comm(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let shared = root.join("../shared/pcaps");
    let mut captures: Vec<PathBuf> = vec![shared.join("modbus/iti_mb2.pcap")];
    for dir in [root.join("pcaps").join("s7comm"), shared.join("s7comm")] {
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    captures.push(p);
                }
            }
        }
    }
    captures.retain(|p| p.is_file());
    captures.sort();
    let mut payloads = BTreeSet::new();
    for cap in &captures {
        let text = output(Command::new("tshark").arg("-r").arg(cap).args([
            "-Y",
            "cotp",
            "-T",
            "fields",
            "-e",
            "tcp.payload",
        ]))?;
        // At most 400 per capture, so that the big polling captures do not crowd out
        // the download, upload and userdata ones.
        let mut from_this = 0;
        for line in text.lines() {
            if let Some(bytes) = from_hex(line.trim()) {
                if !bytes.is_empty() && payloads.insert(bytes) {
                    from_this += 1;
                }
            }
            if from_this >= 400 || payloads.len() >= 3000 {
                break;
            }
        }
    }
    for (i, p) in payloads.iter().enumerate() {
        // A zero control byte: default bounds, chunking by the payload's own bytes.
        let mut seed = vec![0u8];
        seed.extend_from_slice(p);
        fs::write(corpus.join(format!("seed-{i:05}")), seed)?;
    }
    Ok(payloads.len())
}

/// The TCP payloads of the OPC UA captures that tshark calls OPC UA (the port 12001
/// capture told by `-d`), each behind a control byte of 0 (default bounds).
fn seed_opcua(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let dir = root.join("../shared/pcaps/opcua");
    let mut captures: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    captures.retain(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"));
    captures.sort();
    let mut payloads = BTreeSet::new();
    for cap in &captures {
        let text = output(Command::new("tshark").arg("-r").arg(cap).args([
            "-d",
            "tcp.port==12001,opcua",
            "-Y",
            "opcua",
            "-T",
            "fields",
            "-e",
            "tcp.payload",
        ]))?;
        for line in text.lines() {
            if let Some(bytes) = from_hex(line.trim()) {
                if !bytes.is_empty() {
                    payloads.insert(bytes);
                }
            }
            if payloads.len() >= 3000 {
                break;
            }
        }
    }
    for (i, p) in payloads.iter().enumerate() {
        let mut seed = vec![0u8];
        seed.extend_from_slice(p);
        fs::write(corpus.join(format!("seed-{i:05}")), seed)?;
    }
    Ok(payloads.len())
}

/// The TCP and UDP payloads of the DNP3 captures that tshark calls DNP3, each behind
/// a control byte: 0 (stream framing, default bounds) for TCP, 0x40 (datagram framing)
/// for UDP.
fn seed_dnp3(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let dir = root.join("../shared/pcaps/dnp3");
    let mut captures: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    captures.retain(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"));
    captures.sort();
    let mut seeds = BTreeSet::new();
    for cap in &captures {
        let text = output(Command::new("tshark").arg("-r").arg(cap).args([
            "-Y",
            "dnp3",
            "-T",
            "fields",
            "-e",
            "tcp.payload",
            "-e",
            "udp.payload",
        ]))?;
        // At most 300 per capture, so that the big captures do not crowd out the
        // small ones that hold the rare functions.
        let mut from_this = 0;
        for line in text.lines() {
            let mut cols = line.split('\t');
            let (tcp, udp) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
            let (control, hex) = if tcp.is_empty() {
                (0x40u8, udp)
            } else {
                (0u8, tcp)
            };
            if let Some(bytes) = from_hex(hex.trim()) {
                if !bytes.is_empty() {
                    let mut seed = vec![control];
                    seed.extend_from_slice(&bytes);
                    if seeds.insert(seed) {
                        from_this += 1;
                    }
                }
            }
            if from_this >= 300 || seeds.len() >= 3000 {
                break;
            }
        }
    }
    for (i, s) in seeds.iter().enumerate() {
        fs::write(corpus.join(format!("seed-{i:05}")), s)?;
    }
    Ok(seeds.len())
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s: String = s.chars().filter(|c| *c != ':').collect();
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}
