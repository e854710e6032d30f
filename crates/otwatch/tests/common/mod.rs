//! Shared helpers of the binary's integration tests.
#![allow(clippy::print_stderr)] // Tests explain a skip on stderr.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn otwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_otwatch"))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The public captures beside the checkout (`../shared/pcaps`).
pub fn shared_pcaps() -> PathBuf {
    repo().join("../shared/pcaps")
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Runs `otwatch replay ARGS` and returns its output; events go to stdout as JSON.
pub fn replay(args: &[&str]) -> Output {
    otwatch()
        .arg("replay")
        .args(args)
        .output()
        .expect("run otwatch")
}

/// Replays `pcap` and returns the events (`event_type` "ot") as JSON values, asserting
/// success.
pub fn events_of(pcap: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    objects_of(pcap, extra)
        .into_iter()
        .filter(|v| v["event_type"] == "ot")
        .collect()
}

/// Replays `pcap` and returns every object written to stdout (events and alerts).
pub fn objects_of(pcap: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = otwatch()
        .arg("replay")
        .args(["--events", "-", "--format", "json"])
        .args(extra)
        .arg(pcap)
        .output()
        .expect("run otwatch");
    assert!(
        out.status.success(),
        "otwatch replay {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Is every field of `expected` present in `actual` with the same value (recursively
/// for objects; arrays and scalars compare whole)?
pub fn contains(actual: &serde_json::Value, expected: &serde_json::Value) -> Result<(), String> {
    match (actual, expected) {
        (serde_json::Value::Object(a), serde_json::Value::Object(e)) => {
            for (k, ev) in e {
                match a.get(k) {
                    Some(av) => contains(av, ev).map_err(|m| format!("{k}.{m}"))?,
                    None if ev.is_null() => {}
                    None => return Err(format!("{k}: missing (expected {ev})")),
                }
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(format!(" expected {expected}, got {actual}")),
    }
}

/// Is tshark on PATH? In CI its absence is a failure, elsewhere a skip.
pub fn have_tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            !in_ci(),
            "tshark is required in CI (cargo xtask deps installs it)"
        );
        eprintln!("tshark not found: cross-check skipped (cargo xtask deps installs it)");
    }
    ok
}

/// Is `script` (util-linux, part of every Debian) on PATH? In CI its absence is a
/// failure, elsewhere a skip.
pub fn have_script() -> bool {
    let ok = Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!in_ci(), "script (util-linux) is required in CI");
        eprintln!("script not found: output on a terminal not tested");
    }
    ok
}

/// The public captures whose MANIFEST.tsv protocol column names `protocol` (the
/// column's words, split at anything not alphanumeric: `modbus+s7comm+enip`,
/// `s7comm-plus`, `dnp3-udp`).
pub fn manifest_captures(protocol: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(shared_pcaps().join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let protocols = cols.get(1)?;
            protocols
                .split(|c: char| !c.is_ascii_alphanumeric())
                .any(|p| p == protocol)
                .then(|| cols[0].to_owned())
        })
        .collect()
}

/// Can the tshark cross-checks run (../shared/pcaps and tshark present)? Under CI
/// they must; elsewhere a skip says why.
pub fn cross_check_possible() -> bool {
    have_shared_pcaps() && have_tshark()
}

/// Are the public captures (`../shared/pcaps`) beside the checkout? Under CI they
/// must be; elsewhere a skip says why.
pub fn have_shared_pcaps() -> bool {
    let ok = shared_pcaps().is_dir();
    if !ok {
        assert!(!in_ci(), "../shared/pcaps is missing");
        eprintln!("../shared/pcaps missing: skipped");
    }
    ok
}

/// Of tshark's two views of a capture (with and without out-of-order reassembly),
/// the one that saw more.
pub fn fuller<K: Ord, V: Ord + Default + for<'a> std::iter::Sum<&'a V>>(
    a: std::collections::BTreeMap<K, V>,
    b: std::collections::BTreeMap<K, V>,
) -> std::collections::BTreeMap<K, V> {
    if b.values().sum::<V>() > a.values().sum::<V>() {
        b
    } else {
        a
    }
}

/// Compares otwatch's and tshark's counts per key for one capture: a line per
/// difference goes to `failures` (`{name}: {label}{key:?}: otwatch N, tshark M`).
/// Returns otwatch's total.
pub fn compare_counts<K, V>(
    name: &str,
    label: &str,
    ours: &std::collections::BTreeMap<K, V>,
    tshark: &std::collections::BTreeMap<K, V>,
    failures: &mut Vec<String>,
) -> V
where
    K: Ord + std::fmt::Debug,
    V: Copy + Default + PartialEq + std::fmt::Display + std::ops::AddAssign,
{
    let keys: std::collections::BTreeSet<&K> = tshark.keys().chain(ours.keys()).collect();
    let mut total = V::default();
    for key in keys {
        let o = ours.get(key).copied().unwrap_or_default();
        let t = tshark.get(key).copied().unwrap_or_default();
        total += o;
        if o != t {
            failures.push(format!("{name}: {label}{key:?}: otwatch {o}, tshark {t}"));
        }
    }
    total
}

/// A reviewed exception: otwatch must find at least as many `unit` in all as tshark.
pub fn at_least_tshark<K>(
    name: &str,
    unit: &str,
    ours: &std::collections::BTreeMap<K, u64>,
    tshark: &std::collections::BTreeMap<K, u64>,
    failures: &mut Vec<String>,
) {
    let (o, t) = (ours.values().sum::<u64>(), tshark.values().sum::<u64>());
    if o < t {
        failures.push(format!(
            "{name} (reviewed exception): otwatch {o} {unit} < tshark {t}"
        ));
    }
}
