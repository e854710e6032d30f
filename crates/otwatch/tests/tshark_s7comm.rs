//! Cross-check against an independent dissector: for every S7 capture among the public
//! captures (`../shared/pcaps`, MANIFEST.tsv protocol column), otwatch's count of
//! S7comm PDUs per (ROSCTR, function) — (ROSCTR, group, subfunction) for userdata —
//! equals tshark's.
//!
//! tshark's counts depend on `tcp.reassemble_out_of_order` (see the captures' README):
//! both settings are run and otwatch is compared with the fuller view. Captures where
//! the counts differ for a reviewed reason are listed in `REVIEWED_EXCEPTIONS`; for
//! those the test still checks that otwatch reports at least as many PDUs as tshark.
//!
//! tshark has no S7comm-plus dissector: for S7comm-plus the test counts the COTP DT
//! TPDUs whose payload starts with 0x72 (one per frame of a message, a message split
//! over several frames counting several times) and checks that otwatch reports at
//! least 90 % and at most 100 % of that many S7comm-plus messages (fragmented messages
//! are one event; on these captures 0 to 4 % of the frames are continuations).
//!
//! For S7comm-plus functions the independent view is CISA ICSNPP's Zeek plugin: its
//! baseline `s7comm_plus.log` for icsnpp_s7comm_plus.pcap (V3, integrity-protected
//! frames) lists every message with its direction, opcode and function code, and
//! otwatch's events must list the same, in the same order.

#![allow(clippy::print_stderr)] // A skip is explained on stderr.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// (capture, why the per-function counts differ).
const REVIEWED_EXCEPTIONS: &[(&str, &str)] = &[];

/// (ROSCTR, function or group, subfunction).
type Key = (u8, Option<u8>, Option<u8>);
type Counts = BTreeMap<Key, u64>;

fn num(s: &str) -> Option<u8> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x") {
        u8::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn tshark_fields(pcap: &Path, reassemble_ooo: bool, filter: &str, fields: &[&str]) -> String {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args([
        "-o",
        &format!(
            "tcp.reassemble_out_of_order:{}",
            if reassemble_ooo { "TRUE" } else { "FALSE" }
        ),
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(out.status.success(), "tshark failed on {}", pcap.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// tshark's S7comm PDUs. A frame may carry several PDUs: each field is then a list,
/// and the function list holds the functions of the non-userdata PDUs in order, the
/// group and subfunction lists those of the userdata PDUs.
fn tshark_counts(pcap: &Path, reassemble_ooo: bool) -> Counts {
    let text = tshark_fields(
        pcap,
        reassemble_ooo,
        "s7comm",
        &[
            "s7comm.header.rosctr",
            "s7comm.param.func",
            "s7comm.param.userdata.funcgroup",
            "s7comm.param.userdata.subfunc",
        ],
    );
    let mut counts = Counts::new();
    for line in text.lines() {
        let cols: Vec<Vec<&str>> = line
            .split('\t')
            .map(|c| c.split(',').filter(|v| !v.is_empty()).collect())
            .collect();
        let col = |k: usize| cols.get(k).cloned().unwrap_or_default();
        let (rosctrs, funcs, groups, subs) = (col(0), col(1), col(2), col(3));
        let (mut f, mut u) = (funcs.iter(), groups.iter().zip(subs.iter()));
        for r in rosctrs {
            let r = num(r).expect("numeric ROSCTR");
            let key = if r == 7 {
                let (g, s) = u.next().map_or((None, None), |(g, s)| (num(g), num(s)));
                (r, g, s)
            } else if r == 2 {
                // An ack has no parameter.
                (r, None, None)
            } else {
                (r, f.next().and_then(|v| num(v)), None)
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    counts
}

/// Frames whose COTP payload is S7comm-plus (or TLS inside COTP), per tshark.
fn tshark_plus_frames(pcap: &Path) -> u64 {
    let text = tshark_fields(
        pcap,
        false,
        "cotp.type == 0x0f && tcp.port == 102",
        &["tcp.payload"],
    );
    let mut n = 0;
    for line in text.lines() {
        let hex: String = line.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
            .collect();
        // Walk the TPKTs of the segment: 03 00 len, COTP LI, ...
        let mut off = 0;
        while let (Some(&3), Some(hi), Some(lo)) =
            (bytes.get(off), bytes.get(off + 2), bytes.get(off + 3))
        {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            let li = bytes.get(off + 4).copied().map(usize::from).unwrap_or(0);
            let first = bytes.get(off + 5 + li).copied();
            if len >= 7 && bytes.get(off + 5) == Some(&0xf0) && first == Some(0x72) {
                n += 1;
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
    n
}

struct Ours {
    s7: Counts,
    plus: u64,
}

fn otwatch_counts(pcap: &Path) -> Ours {
    let mut s7 = Counts::new();
    let mut plus = 0;
    for ev in events_of(pcap, &["--threads", "2"]) {
        match ev["protocol"].as_str() {
            Some("s7comm") => {
                let b = &ev["s7comm"];
                // Transport reports (garbage, broken COTP) carry no S7 PDU.
                if b["rosctr"] == 0 {
                    continue;
                }
                let r = b["rosctr"].as_u64().expect("rosctr") as u8;
                let byte = |k: &str| b[k].as_u64().map(|v| v as u8);
                let key = match r {
                    7 => (r, byte("function_group"), byte("subfunction")),
                    2 => (r, None, None),
                    _ => (r, byte("function_code"), None),
                };
                *s7.entry(key).or_default() += 1;
            }
            Some("s7comm_plus") => plus += 1,
            _ => {}
        }
    }
    Ours { s7, plus }
}

#[test]
fn s7comm_pdus_per_function_match_tshark() {
    if !cross_check_possible() {
        return;
    }
    let captures = manifest_captures("s7comm");
    assert!(
        captures.len() >= 15,
        "expected the S7 captures of the manifest, got {captures:?}"
    );
    let mut failures = Vec::new();
    let (mut total, mut total_plus) = (0u64, 0u64);
    for name in &captures {
        let pcap = shared_pcaps().join(name);
        let a = tshark_counts(&pcap, true);
        let b = tshark_counts(&pcap, false);
        let tshark = fuller(a, b);
        let ours = otwatch_counts(&pcap);
        let plus_frames = tshark_plus_frames(&pcap);
        eprintln!(
            "{name}: s7comm otwatch {} tshark {}; s7comm-plus otwatch {} (0x72 frames {plus_frames})",
            ours.s7.values().sum::<u64>(),
            tshark.values().sum::<u64>(),
            ours.plus
        );
        total_plus += ours.plus;
        if ours.plus > plus_frames || ours.plus * 10 < plus_frames * 9 {
            failures.push(format!(
                "{name}: s7comm-plus: otwatch {} messages for {plus_frames} frames",
                ours.plus
            ));
        }
        if REVIEWED_EXCEPTIONS.iter().any(|(c, _)| c == name) {
            at_least_tshark(name, "PDUs", &ours.s7, &tshark, &mut failures);
            continue;
        }
        total += compare_counts(name, "", &ours.s7, &tshark, &mut failures);
    }
    assert!(
        total > 15_000,
        "suspiciously few S7comm PDUs compared: {total}"
    );
    assert!(
        total_plus > 1_000,
        "suspiciously few S7comm-plus messages: {total_plus}"
    );
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
}

/// The ICSNPP Zeek baseline of icsnpp_s7comm_plus.pcap: one line per S7comm-plus
/// message, `(to_server, opcode, function code)`; the function code is `-` in the log
/// (null in the event) where the message has none (notifications).
fn icsnpp_plus_messages(log: &str) -> Vec<(bool, u64, Option<u64>)> {
    let fields: Vec<&str> = log
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .expect("#fields header")
        .split('\t')
        .collect();
    let col = |name: &str| {
        fields
            .iter()
            .position(|f| *f == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let (orig, opcode, function) = (col("is_orig"), col("opcode"), col("function_code"));
    let hex = |v: &str| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
    log.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split('\t').collect();
            (
                v[orig] == "T",
                hex(v[opcode]).expect("hex opcode"),
                hex(v[function]),
            )
        })
        .collect()
}

#[test]
fn s7comm_plus_v3_functions_match_icsnpp_zeek() {
    if !have_shared_pcaps() {
        return;
    }
    let dir = shared_pcaps().join("s7comm");
    let log = std::fs::read_to_string(
        dir.join("oracles/icsnpp_s7comm_plus/icsnpp-btest/s7comm_plus.log"),
    )
    .expect("the ICSNPP s7comm_plus baseline");
    let expected = icsnpp_plus_messages(&log);
    assert_eq!(expected.len(), 121, "baseline lines");
    let events = events_of(&dir.join("icsnpp_s7comm_plus.pcap"), &["--threads", "2"]);
    let ours: Vec<(bool, u64, Option<u64>)> = events
        .iter()
        .filter(|e| e["protocol"] == "s7comm_plus")
        .map(|e| {
            let b = &e["s7comm_plus"];
            assert_eq!(b["protected"], true, "{e}");
            let f = b.get("function_code").unwrap_or_else(|| panic!("{e}"));
            (
                e["direction"] == "to_server",
                b["opcode"].as_u64().expect("opcode"),
                f.as_u64(),
            )
        })
        .collect();
    assert_eq!(ours, expected);
    // SetVariable (0x04f2) requests are writes.
    let writes = events
        .iter()
        .filter(|e| e["s7comm_plus"]["function_code"] == 0x04f2)
        .inspect(|e| assert_eq!(e["operation"], "write", "{e}"))
        .count();
    assert_eq!(writes, 26);
}
