//! `cargo xtask loss-sweep`: what a mirror port's loss does to the alerts.
//!
//! Each data-carrying TCP segment of a capture is dropped in turn (with `--burst K`,
//! it and the K - 1 packets after it, whatever they carry), and what is left is
//! replayed. A loss is reported when the replay raises a `protocol_anomaly` alert
//! for a PDU (its flow, direction and evidence) that the whole capture does not: the
//! sensor's own loss read as a device's fault. Both replays use a policy whose
//! `repeat_interval` is 0, so that every anomalous PDU has its alert, whenever a loss
//! delays it. `crates/otwatch/tests/capture_loss.rs` runs a like check on a few
//! captures in every test run; this command runs it on any capture, pcap or pcapng
//! with one link type, and by default on every capture of `../shared/pcaps`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;
use otwatch_capture::{CaptureFile, LinkType, Packet};
use otwatch_flow::{decode, L4};
use serde_json::Value;

use crate::sys::{cargo, run, say};

/// What one capture's sweep found.
struct Sweep {
    data_segments: usize,
    dropped: usize,
    /// Frame numbers (from 1, as tshark counts) whose loss raised an anomaly, with the
    /// first new anomalous PDU.
    raised: Vec<(usize, String)>,
}

pub fn loss_sweep(
    root: &Path,
    paths: &[PathBuf],
    max: Option<usize>,
    burst: usize,
) -> anyhow::Result<()> {
    crate::sys::install_deps(crate::sys::DEMO_PACKAGES)?;
    say("cargo build --release -p otwatch");
    run(cargo().args(["build", "--release", "--quiet", "-p", "otwatch"]))?;
    let bin = root.join("target/release/otwatch");
    let paths = if paths.is_empty() {
        vec![root.join("../shared/pcaps")]
    } else {
        paths.to_vec()
    };
    let mut captures = Vec::new();
    for p in &paths {
        collect(p, &mut captures)?;
    }
    anyhow::ensure!(!captures.is_empty(), "no capture found in {paths:?}");
    let scratch = root.join("target/loss-sweep");
    fs::create_dir_all(&scratch)?;
    fs::write(scratch.join(POLICY_FILE), POLICY)?;
    let burst = burst.max(1);
    let lost = match burst {
        1 => "one data segment lost at a time".to_owned(),
        n => format!(
            "a data segment and the {} packets after it lost at a time",
            n - 1
        ),
    };
    let (mut dropped, mut raised, mut skipped) = (0, 0, 0);
    for capture in &captures {
        match sweep(&bin, capture, &scratch, max, burst)? {
            Some(s) => {
                say(&format!(
                    "{}: {} data segments, {} losses ({lost}), {} raised a protocol anomaly",
                    capture.display(),
                    s.data_segments,
                    s.dropped,
                    s.raised.len()
                ));
                for (frame, pdu) in &s.raised {
                    let frames = match burst {
                        1 => format!("frame {frame}"),
                        n => format!("frames {frame}-{}", frame + n - 1),
                    };
                    say(&format!("  {frames} lost: {pdu}"));
                }
                dropped += s.dropped;
                raised += s.raised.len();
            }
            None => skipped += 1,
        }
    }
    say(&format!(
        "{} captures ({skipped} skipped), {dropped} losses, {raised} raised a protocol anomaly",
        captures.len()
    ));
    anyhow::ensure!(raised == 0, "{raised} losses raised a protocol anomaly");
    Ok(())
}

/// The capture files under `path` (itself, if it is a file), in name order.
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for e in entries {
        let capture = e
            .extension()
            .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "cap");
        if e.is_dir() {
            collect(&e, out)?;
        } else if capture {
            out.push(e);
        }
    }
    Ok(())
}

/// Sweeps one capture; `None` when it cannot be rewritten as one classic pcap (not a
/// capture, or interfaces of several link types).
fn sweep(
    bin: &Path,
    capture: &Path,
    scratch: &Path,
    max: Option<usize>,
    burst: usize,
) -> anyhow::Result<Option<Sweep>> {
    let Ok(file) = CaptureFile::open(capture) else {
        say(&format!("{}: not a capture, skipped", capture.display()));
        return Ok(None);
    };
    // A capture that ends badly is swept up to where it can be read.
    let packets: Vec<Packet<'_>> = file.packets().map_while(Result::ok).collect();
    let Some(linktype) = packets.first().map(|p| p.linktype) else {
        return Ok(None);
    };
    if packets.iter().any(|p| p.linktype != linktype) {
        say(&format!(
            "{}: interfaces of several link types, skipped",
            capture.display()
        ));
        return Ok(None);
    }
    let data: Vec<usize> = packets
        .iter()
        .enumerate()
        .filter(|(_, p)| carries_data(p))
        .map(|(i, _)| i)
        .collect();
    // At most `max` losses, spread evenly over the capture.
    let picked: Vec<usize> = match max {
        Some(m) if m < data.len() => (0..m)
            .filter_map(|k| data.get(k * data.len() / m))
            .copied()
            .collect(),
        _ => data.clone(),
    };
    let whole = scratch.join("whole.pcap");
    write_pcap(&whole, linktype, packets.iter())?;
    let policy = scratch.join(POLICY_FILE);
    let base = anomalous(bin, &policy, &whole)?;
    let lossy = scratch.join("lossy.pcap");
    let mut raised = Vec::new();
    for &i in &picked {
        let left = packets
            .iter()
            .enumerate()
            .filter(|&(j, _)| !(i..i + burst).contains(&j))
            .map(|(_, p)| p);
        write_pcap(&lossy, linktype, left)?;
        if let Some(first) = anomalous(bin, &policy, &lossy)?.difference(&base).next() {
            raised.push((i + 1, first.clone()));
        }
    }
    Ok(Some(Sweep {
        data_segments: data.len(),
        dropped: picked.len(),
        raised,
    }))
}

fn carries_data(p: &Packet<'_>) -> bool {
    decode(p.linktype, p.data).is_ok_and(|d| matches!(d.l4, L4::Tcp(t) if !t.payload.is_empty()))
}

/// Writes `packets` as a classic pcap with nanosecond timestamps.
fn write_pcap<'a>(
    path: &Path,
    linktype: LinkType,
    packets: impl Iterator<Item = &'a Packet<'a>>,
) -> anyhow::Result<()> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_3c4d_u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&linktype.dlt().to_le_bytes());
    for p in packets {
        let ns = p.ts.as_nanos();
        let secs = u32::try_from(ns.div_euclid(1_000_000_000)).context("timestamp out of range")?;
        let frac = u32::try_from(ns.rem_euclid(1_000_000_000)).context("timestamp out of range")?;
        let caplen = u32::try_from(p.data.len()).context("packet too long")?;
        for field in [secs, frac, caplen, p.orig_len] {
            out.extend_from_slice(&field.to_le_bytes());
        }
        out.extend_from_slice(p.data);
    }
    fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// A policy with no repeat folding: an alert for every anomalous PDU. Written once
/// per sweep, as `POLICY_FILE` beside the scratch captures.
const POLICY: &str = "[sensor]\nname = \"loss-sweep\"\nrepeat_interval = 0\n";
const POLICY_FILE: &str = "policy.toml";

/// The `protocol_anomaly` alerts of a replay, keyed by flow, direction and evidence
/// (the anomalies and the protocol block), not by time: a loss may delay a PDU.
fn anomalous(bin: &Path, policy: &Path, pcap: &Path) -> anyhow::Result<BTreeSet<String>> {
    let out = Command::new(bin)
        .args(["replay", "--format", "json", "--policy"])
        .arg(policy)
        .arg(pcap)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    anyhow::ensure!(
        out.status.code().is_some_and(|c| c <= 1),
        "otwatch replay {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let mut set = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value =
            serde_json::from_str(line).context("otwatch wrote a line that is not JSON")?;
        if v["event_type"] == "alert" && v["alert"]["kind"] == "protocol_anomaly" {
            set.insert(format!(
                "{} {} {}",
                v["flow"]["community_id"], v["direction"], v["evidence"]
            ));
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otwatch_capture::{Packets, Timestamp};

    #[test]
    fn a_written_capture_reads_back_packet_for_packet() {
        let frames: [&[u8]; 3] = [b"\x01\x02\x03", b"", b"\xff\xfe"];
        let packets: Vec<Packet<'_>> = frames
            .iter()
            .enumerate()
            .map(|(i, data)| Packet {
                ts: Timestamp::from_nanos(1_700_000_000_123_456_789 + i as i64),
                linktype: LinkType::RawIp,
                data,
                orig_len: 60,
                offset: 0,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("otwatch-loss-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.pcap");
        // Every packet but the second, as a sweep writes it.
        write_pcap(&path, LinkType::RawIp, packets.iter().step_by(2)).unwrap();
        let bytes = fs::read(&path).unwrap();
        let back: Vec<_> = Packets::from_slice(&bytes)
            .unwrap()
            .map(|p| p.map(|p| (p.ts, p.linktype, p.data.to_vec(), p.orig_len)))
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<_> = packets
            .iter()
            .step_by(2)
            .map(|p| (p.ts, p.linktype, p.data.to_vec(), p.orig_len))
            .collect();
        assert_eq!(back, want);
        fs::remove_dir_all(&dir).unwrap();
    }
}
