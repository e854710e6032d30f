//! `cargo xtask fuzz`: cargo-fuzz targets, with corpora seeded from captures.
//!
//! Seeds are extracted at run time (into the git-ignored `fuzz/corpus/`) from the
//! project's generated captures and, when present, the public captures in
//! `../shared/pcaps`: the payloads that tshark calls Modbus, COTP (S7), OPC UA or
//! DNP3, and for the capture target the small capture files themselves.

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
        for p in captures_in(&dir) {
            if fs::metadata(&p).is_ok_and(|m| m.len() <= MAX_SEED) {
                fs::copy(&p, corpus.join(format!("seed-{n:05}")))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// The TCP payloads that tshark calls Modbus, as they are (the Modbus target reads
/// its control byte from the payload's first byte).
fn seed_modbus(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let spec = TsharkSeeds {
        dirs: vec![
            root.join("pcaps/modbus"),
            root.join("../shared/pcaps/modbus"),
        ],
        files: Vec::new(),
        decode_as: None,
        filter: "modbus || mbtcp",
        fields: &[("tcp.payload", &[])],
        per_capture: usize::MAX,
        total: 2000,
    };
    seed_from_tshark(&spec, corpus)
}

/// The TCP payloads (runs of TPKTs) of the S7 captures that tshark calls COTP:
/// S7comm, S7comm-plus and the connection set-up, generated and public; each behind a
/// control byte of 0 (default bounds, chunking by the payload's own bytes). At most
/// 400 per capture, so that the big polling captures do not crowd out the download,
/// upload and userdata ones.
fn seed_s7comm(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let spec = TsharkSeeds {
        dirs: vec![
            root.join("pcaps/s7comm"),
            root.join("../shared/pcaps/s7comm"),
        ],
        files: vec![root.join("../shared/pcaps/modbus/iti_mb2.pcap")],
        decode_as: None,
        filter: "cotp",
        fields: &[("tcp.payload", &[0])],
        per_capture: 400,
        total: 3000,
    };
    seed_from_tshark(&spec, corpus)
}

/// The TCP payloads of the OPC UA captures that tshark calls OPC UA (the port 12001
/// capture told by `-d`), each behind a control byte of 0 (default bounds).
fn seed_opcua(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let spec = TsharkSeeds {
        dirs: vec![root.join("../shared/pcaps/opcua")],
        files: Vec::new(),
        decode_as: Some("tcp.port==12001,opcua"),
        filter: "opcua",
        fields: &[("tcp.payload", &[0])],
        per_capture: usize::MAX,
        total: 3000,
    };
    seed_from_tshark(&spec, corpus)
}

/// The TCP and UDP payloads of the DNP3 captures that tshark calls DNP3, each behind
/// a control byte: 0 (stream framing, default bounds) for TCP, 0x40 (datagram framing)
/// for UDP. At most 300 per capture, so that the big captures do not crowd out the
/// small ones that hold the rare functions.
fn seed_dnp3(root: &Path, corpus: &Path) -> anyhow::Result<usize> {
    let spec = TsharkSeeds {
        dirs: vec![root.join("../shared/pcaps/dnp3")],
        files: Vec::new(),
        decode_as: None,
        filter: "dnp3",
        fields: &[("tcp.payload", &[0]), ("udp.payload", &[0x40])],
        per_capture: 300,
        total: 3000,
    };
    seed_from_tshark(&spec, corpus)
}

/// One target's seeds: payloads that tshark extracts from captures.
struct TsharkSeeds {
    /// Every `.pcap`/`.pcapng` file in these folders (a missing folder is skipped)...
    dirs: Vec<PathBuf>,
    /// ...and these files, when they exist.
    files: Vec<PathBuf>,
    /// A tshark `-d` (decode-as) rule, for a protocol on a port tshark does not know.
    decode_as: Option<&'static str>,
    /// The tshark display filter that picks the packets.
    filter: &'static str,
    /// The payload fields, each with the bytes put in front of its payloads (the
    /// target's control byte); a packet's seed is its first non-empty field.
    fields: &'static [(&'static str, &'static [u8])],
    /// How many new seeds one capture may add at most.
    per_capture: usize,
    /// How many seeds in all: extraction stops once there are this many.
    total: usize,
}

/// Runs tshark over the captures of `spec` and writes the distinct seeds, in byte
/// order, as `seed-NNNNN` into `corpus`; returns how many it wrote.
fn seed_from_tshark(spec: &TsharkSeeds, corpus: &Path) -> anyhow::Result<usize> {
    let mut captures: Vec<PathBuf> = spec.dirs.iter().flat_map(|d| captures_in(d)).collect();
    captures.extend(spec.files.iter().filter(|p| p.is_file()).cloned());
    captures.sort();
    let mut seeds = BTreeSet::new();
    for cap in &captures {
        let mut tshark = Command::new("tshark");
        tshark.arg("-r").arg(cap);
        if let Some(rule) = spec.decode_as {
            tshark.args(["-d", rule]);
        }
        tshark.args(["-Y", spec.filter, "-T", "fields"]);
        for (field, _) in spec.fields {
            tshark.args(["-e", field]);
        }
        let text = output(&mut tshark)?;
        let mut from_this = 0;
        for line in text.lines() {
            let picked = line
                .split('\t')
                .zip(spec.fields)
                .find(|(hex, _)| !hex.is_empty());
            if let Some((hex, (_, control))) = picked {
                if let Some(bytes) = from_hex(hex.trim()).filter(|b| !b.is_empty()) {
                    let mut seed = control.to_vec();
                    seed.extend_from_slice(&bytes);
                    if seeds.insert(seed) {
                        from_this += 1;
                    }
                }
            }
            if from_this >= spec.per_capture || seeds.len() >= spec.total {
                break;
            }
        }
    }
    for (i, s) in seeds.iter().enumerate() {
        fs::write(corpus.join(format!("seed-{i:05}")), s)?;
    }
    Ok(seeds.len())
}

/// The capture files (`.pcap`, `.pcapng`) of `dir`, sorted; none if it is missing.
fn captures_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|p| p.is_file() && p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"));
    files.sort();
    files
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
