//! Cross-check against an independent dissector: for every Modbus capture among the
//! public captures (`../shared/pcaps`, MANIFEST.tsv protocol column), otwatch's count
//! of Modbus PDUs per function code equals tshark's.
//!
//! tshark's counts depend on `tcp.reassemble_out_of_order` (see the captures' README):
//! both settings are run and otwatch is compared with the fuller view. Captures where
//! otwatch is right and tshark is not are listed in `REVIEWED_EXCEPTIONS` with the
//! reason; for those the test still checks that otwatch reports at least as many PDUs
//! as tshark's fuller view.

#![allow(clippy::print_stderr)] // A skip is explained on stderr.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// (capture, why the per-function counts differ).
const REVIEWED_EXCEPTIONS: &[(&str, &str)] = &[(
    "modbus/zeek_modbus_fuzz-72.pcap",
    "Zeek's fuzzing test: sequence numbers, IP lengths and MBAP fields are mutated \
     (tshark: 'Previous segment(s) not captured' on most frames, 'IPv4 total length \
     exceeds packet length'). tshark dissects each segment on its own; otwatch follows \
     the stream by sequence number, so it frames some segments differently (and \
     reports the unframable stretches as garbage). tshark finds 17 PDUs with \
     out-of-order reassembly off and 1 with it on; otwatch frames more, none of them \
     a crash. A capture of deliberately broken bytes has no right answer to match.",
)];

type Counts = BTreeMap<u8, u64>;

fn tshark_counts(pcap: &Path, reassemble_ooo: bool) -> Counts {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-o",
            &format!(
                "tcp.reassemble_out_of_order:{}",
                if reassemble_ooo { "TRUE" } else { "FALSE" }
            ),
            "-Y",
            "modbus",
            "-T",
            "fields",
            "-e",
            "modbus.func_code",
        ])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed on {}", pcap.display());
    let mut counts = Counts::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        for code in line.split(',').filter(|c| !c.is_empty()) {
            let code: u8 = code.trim().parse().expect("numeric function code");
            *counts.entry(code).or_default() += 1;
        }
    }
    counts
}

fn otwatch_counts(pcap: &Path) -> Counts {
    let mut counts = Counts::new();
    for ev in events_of(pcap, &["--threads", "2"]) {
        if ev["protocol"] != "modbus" {
            continue;
        }
        // Reports of skipped bytes (garbage, or the rest of an ADU a capture gap cut)
        // carry no PDU of their own: tshark has no counterpart.
        if ev["modbus"]["function"] == "garbage" {
            continue;
        }
        let code = ev["modbus"]["function_code"]
            .as_u64()
            .expect("function_code") as u8;
        *counts.entry(code).or_default() += 1;
    }
    counts
}

#[test]
fn modbus_pdus_per_function_code_match_tshark() {
    if !cross_check_possible() {
        return;
    }
    let captures = manifest_captures("modbus");
    assert!(
        captures.len() >= 10,
        "expected the Modbus captures of the manifest, got {captures:?}"
    );
    let mut failures = Vec::new();
    let mut total = 0u64;
    for name in &captures {
        let pcap = shared_pcaps().join(name);
        let a = tshark_counts(&pcap, true);
        let b = tshark_counts(&pcap, false);
        let tshark = fuller(a, b);
        let ours = otwatch_counts(&pcap);
        if REVIEWED_EXCEPTIONS.iter().any(|(c, _)| c == name) {
            at_least_tshark(name, "PDUs", &ours, &tshark, &mut failures);
            continue;
        }
        total += compare_counts(name, "function ", &ours, &tshark, &mut failures);
    }
    assert!(total > 20_000, "suspiciously few PDUs compared: {total}");
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
}
