//! Cross-check against an independent dissector: for every DNP3 capture among the
//! public captures (`../shared/pcaps`, MANIFEST.tsv protocol column: `dnp3`,
//! `dnp3-udp`), otwatch's count of DNP3 application-layer PDUs per function code
//! equals tshark's (`dnp3.al.func`).
//!
//! tshark's counts depend on `tcp.reassemble_out_of_order` (see the captures' README):
//! both settings are run and otwatch is compared with the fuller view. otwatch's
//! reports of bytes that carry no application layer (`garbage`, `link_frame`: bad
//! CRCs, short lengths) have no tshark counterpart and are not counted. Where otwatch
//! is right and tshark is not, `REVIEWED_EXCEPTIONS` gives the exact difference per
//! function code and the reason: the test still fails if the difference changes.

#![allow(clippy::print_stderr)] // A skip is explained on stderr.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;

/// otwatch minus tshark, per function code.
type Delta = &'static [(u8, i64)];

/// (capture, otwatch minus tshark per function code, why).
const REVIEWED_EXCEPTIONS: &[(&str, Delta, &str)] = &[
    (
        "dnp3/icsnpp_dnp3_example.pcap",
        &[(0, -1), (129, 4), (130, 1)],
        "Five multi-frame fragments whose transport sequence number wraps from 63 to 0 \
         (e.g. frames 17-18: FIR seq 63, then FIN seq 0): tshark leaves each \
         'unreassembled', otwatch reassembles them (4 responses, 1 unsolicited \
         response). And tshark's frame 311 (a single FIR/FIN response on port 55355) is \
         glued to frame 210 of another TCP connection with the same link addresses \
         ('Conflicting data in fragment overlap') and shown as a CONFIRM; otwatch sees \
         the response it is.",
    ),
    (
        "dnp3/sv_dnp3-too-long-reassembly-request.pcap",
        &[(1, 1)],
        "Suricata's reassembly-limit test: one READ fragment whose transport segments \
         never end (65 segments, no FIN). tshark shows none; otwatch reports the \
         fragment once, from its first segment's header, when it passes the 8 KiB \
         bound (anomaly bad_length).",
    ),
];

type Counts = BTreeMap<u8, i64>;

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
            "dnp3.al.func",
            "-T",
            "fields",
            "-e",
            "dnp3.al.func",
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
        if ev["protocol"] != "dnp3" {
            continue;
        }
        let function = ev["dnp3"]["function"].as_str().expect("function");
        if function == "garbage" || function == "link_frame" {
            continue;
        }
        let code = ev["dnp3"]["function_code"].as_u64().expect("function_code") as u8;
        *counts.entry(code).or_default() += 1;
    }
    counts
}

#[test]
fn dnp3_pdus_per_function_code_match_tshark() {
    if !cross_check_possible() {
        return;
    }
    let captures = manifest_captures("dnp3");
    assert!(
        captures.len() >= 60,
        "expected the DNP3 captures of the manifest, got {captures:?}"
    );
    let mut failures = Vec::new();
    let mut total = 0;
    let mut codes_seen = BTreeSet::new();
    for name in &captures {
        let pcap = shared_pcaps().join(name);
        let a = tshark_counts(&pcap, true);
        let b = tshark_counts(&pcap, false);
        let mut tshark = fuller(a, b);
        if let Some((_, delta, _)) = REVIEWED_EXCEPTIONS.iter().find(|(c, _, _)| c == name) {
            for (code, d) in *delta {
                *tshark.entry(*code).or_default() += d;
            }
        }
        let ours = otwatch_counts(&pcap);
        codes_seen.extend(ours.iter().filter(|(_, &n)| n > 0).map(|(&code, _)| code));
        // tshark's counts include the reviewed differences.
        total += compare_counts(name, "function ", &ours, &tshark, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
    assert!(total > 1_300, "suspiciously few PDUs compared: {total}");
    // The captures exercise most of the function table (24 codes, requests and
    // responses): a check that the test compares what it should.
    assert!(
        codes_seen.len() >= 24,
        "function codes seen: {codes_seen:?}"
    );
}

/// Operations and roles on a few captures whose content is documented in the
/// manifest: the normalized view the rules consume.
#[test]
fn dnp3_operations_on_documented_captures() {
    if !shared_pcaps().is_dir() {
        assert!(!in_ci(), "../shared/pcaps is missing");
        return;
    }
    let ops = |name: &str| -> Vec<(u64, String, bool, String)> {
        events_of(&shared_pcaps().join(name), &[])
            .iter()
            .filter(|e| e["protocol"] == "dnp3")
            .map(|e| {
                (
                    e["dnp3"]["function_code"].as_u64().unwrap(),
                    e["operation"].as_str().unwrap().to_owned(),
                    e["dnp3"]["from_master"].as_bool().unwrap(),
                    e["direction"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let t = |fc: u64, op: &str, m: bool, d: &str| (fc, op.to_owned(), m, d.to_owned());
    assert_eq!(
        ops("dnp3/iti_select_operate_and_responses.pcap"),
        [
            t(3, "other", true, "to_server"),
            t(129, "other", false, "to_client"),
            t(4, "write", true, "to_server"),
            t(129, "write", false, "to_client"),
        ]
    );
    assert_eq!(
        ops("dnp3/iti_cold_restart_and_response.pcap"),
        [
            t(13, "restart", true, "to_server"),
            t(129, "restart", false, "to_client")
        ]
    );
    assert_eq!(
        ops("dnp3/iti_write_iin_and_response.pcap"),
        [
            t(2, "other", true, "to_server"),
            t(129, "other", false, "to_client")
        ]
    );
    // Over UDP (both ends on port 20000): a WRITE of g80 (clear the restart IIN).
    assert_eq!(
        ops("dnp3/zeek_dnp3_udp_write.pcap"),
        [
            t(2, "other", true, "to_server"),
            t(129, "other", false, "to_client")
        ]
    );
    // A WRITE of a binary output (g10) is a write.
    assert_eq!(
        ops("dnp3/iti_write_binary_output.pcap"),
        [t(2, "write", true, "to_server")]
    );
    // The analog output setpoint: point index and value.
    let ev = events_of(
        &shared_pcaps().join("dnp3/iti_direct_operate_analog_output.pcap"),
        &[],
    );
    let d = &ev[0]["dnp3"];
    assert_eq!(ev[0]["operation"], "write");
    assert_eq!(d["objects"][0]["group"], 41);
    assert!(d["points"][0]["value"].is_number(), "{d}");
    // File transfers carry the file name.
    let ev = events_of(&shared_pcaps().join("dnp3/zeek_dnp3_file_write.pcap"), &[]);
    let open = ev
        .iter()
        .find(|e| e["dnp3"]["function_code"] == 25)
        .expect("OPEN FILE");
    assert_eq!(open["operation"], "file_transfer");
    assert!(open["dnp3"]["file_name"].is_string(), "{open}");
}
