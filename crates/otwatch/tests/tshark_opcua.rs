//! Cross-check against an independent dissector: for every OPC UA capture among the
//! public captures (`../shared/pcaps`, MANIFEST.tsv protocol column), otwatch's count
//! of OPC UA messages per (message type, service id) equals tshark's
//! (`opcua.transport.type`, `opcua.servicenodeid.numeric`).
//!
//! tshark's counts depend on `tcp.reassemble_out_of_order` (see the captures' README):
//! both settings are run and otwatch is compared with the fuller view. tshark is told
//! about the non-standard port of the ITI capture (`-d tcp.port==12001,opcua`); otwatch
//! finds it by content. Captures where the counts differ for a reviewed reason are
//! listed in `REVIEWED_EXCEPTIONS`; for those the test still checks that otwatch
//! reports at least as many messages as tshark.

#![allow(clippy::print_stderr)] // A skip is explained on stderr.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// (capture, why the per-service counts differ).
const REVIEWED_EXCEPTIONS: &[(&str, &str)] = &[];

/// (message type, service id).
type Key = (String, Option<u32>);
type Counts = BTreeMap<Key, u64>;

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
            "-d",
            "tcp.port==12001,opcua",
            "-Y",
            "opcua",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-e",
            "opcua.transport.type",
            "-e",
            "opcua.servicenodeid.numeric",
        ])
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark failed on {}", pcap.display());
    let mut counts = Counts::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut cols = line.split('\t');
        let types: Vec<&str> = cols
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
            .collect();
        let mut ids = cols
            .next()
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| t.trim().parse::<u32>().expect("numeric service id"));
        // One service id per message that carries a decodable body, in frame order:
        // HEL, ACK, ERR and RHE carry none (and neither does an encrypted OPN: tshark
        // then lists fewer ids than secure messages, and those messages count as
        // `None`).
        let secure = types
            .iter()
            .filter(|t| matches!(**t, "OPN" | "CLO" | "MSG"))
            .count();
        let id_count = ids.clone().count();
        for t in types {
            let id = if matches!(t, "OPN" | "CLO" | "MSG") && id_count == secure {
                ids.next()
            } else {
                None
            };
            *counts.entry((t.to_owned(), id)).or_default() += 1;
        }
    }
    counts
}

fn otwatch_counts(pcap: &Path) -> Counts {
    let mut counts = Counts::new();
    for ev in events_of(pcap, &["--threads", "2"]) {
        if ev["protocol"] != "opcua" {
            continue;
        }
        // Garbage reports carry no message of their own: tshark has no counterpart.
        let anomalies = ev["anomalies"].as_array().cloned().unwrap_or_default();
        if anomalies.iter().any(|a| a == "garbage") {
            continue;
        }
        let ty = ev["opcua"]["message_type"]
            .as_str()
            .expect("message_type")
            .to_owned();
        let id = ev["opcua"]["service_id"].as_u64().map(|n| n as u32);
        *counts.entry((ty, id)).or_default() += 1;
    }
    counts
}

#[test]
fn opcua_messages_per_service_match_tshark() {
    if !cross_check_possible() {
        return;
    }
    let captures = manifest_captures("opcua");
    assert!(
        captures.len() >= 20,
        "expected the OPC UA captures of the manifest, got {captures:?}"
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
            at_least_tshark(name, "messages", &ours, &tshark, &mut failures);
            continue;
        }
        total += compare_counts(name, "", &ours, &tshark, &mut failures);
    }
    assert!(total > 1_000, "suspiciously few messages compared: {total}");
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
}
