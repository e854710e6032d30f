//! `otwatch replay` end to end: the generated captures against their expected events,
//! determinism across thread counts, and every bad input of the CLI contract.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// The generated per-protocol captures (each with its `.expected.jsonl`), Modbus first.
fn generated() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for protocol in ["modbus", "s7comm", "dnp3", "opcua"] {
        let dir = repo().join("pcaps").join(protocol);
        if protocol != "modbus" && !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask gen-pcaps)", dir.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
            .collect();
        files.sort();
        v.extend(files);
    }
    assert!(
        v.len() >= 15,
        "expected the generated captures, found {v:?}"
    );
    v
}

fn expected_of(pcap: &Path) -> Vec<serde_json::Value> {
    let path = pcap.with_extension("expected.jsonl");
    fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("expected JSON"))
        .collect()
}

fn anomalies(ev: &serde_json::Value) -> Vec<String> {
    ev["anomalies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Anomalies the expected files do not list but the scenario calls for:
/// (capture, event index, anomaly, why).
const EXPECTED_ANOMALIES: &[(&str, usize, &str, &str)] = &[(
    "midstream.pcap",
    0,
    "unmatched_response",
    "the capture starts with a response whose request was never captured",
)];

#[test]
fn generated_captures_give_their_expected_events() {
    let mut failures = Vec::new();
    for pcap in generated() {
        let name = pcap.file_name().unwrap().to_string_lossy().into_owned();
        let expected = expected_of(&pcap);
        let mut actual = events_of(&pcap, &["--threads", "2"]);
        for ev in &actual {
            assert_eq!(ev["schema"], "otwatch/1");
            assert_eq!(ev["event_type"], "ot");
        }
        if name == "garbage.pcap" {
            // The garbage itself is reported as anomalous events; the expected file
            // lists the valid PDUs around it.
            let before = actual.len();
            actual.retain(|ev| {
                !ev["anomalies"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "garbage"))
            });
            assert!(
                actual.len() < before,
                "garbage.pcap: the garbage was not reported"
            );
        }
        if actual.len() != expected.len() {
            failures.push(format!(
                "{name}: {} events, expected {}",
                actual.len(),
                expected.len()
            ));
            continue;
        }
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            if let Err(m) = contains(a, e) {
                failures.push(format!("{name}: event {i}: {m}\n  actual: {a}"));
            }
            let wanted: Vec<String> = EXPECTED_ANOMALIES
                .iter()
                .filter(|(c, at, _, _)| *c == name && *at == i)
                .map(|(_, _, anomaly, _)| (*anomaly).to_owned())
                .chain(anomalies(e))
                .collect();
            if anomalies(a) != wanted {
                failures.push(format!(
                    "{name}: event {i}: anomalies {:?}, expected {wanted:?}",
                    anomalies(a)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn output_is_identical_for_any_thread_count() {
    let mut files: Vec<String> = generated()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    files.push(
        repo()
            .join("pcaps/demo-plant.pcap")
            .to_string_lossy()
            .into_owned(),
    );
    let run = |threads: &str| {
        let mut args = vec!["--events", "-", "--format", "json", "--threads", threads];
        args.extend(files.iter().map(String::as_str));
        let out = replay(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let one = run("1");
    assert!(one.len() > 1000, "too little output to compare");
    assert_eq!(one, run("4"), "--threads 1 and --threads 4 differ");
    assert_eq!(one, run("3"), "--threads 1 and --threads 3 differ");
    assert_eq!(one, run("1"), "two runs differ");
}

#[test]
fn several_files_replay_as_one_timeline() {
    let files = generated();
    let a = &files[0];
    let b = &files[1];
    let both = events_of(a, &[b.to_str().unwrap()]);
    let mut separately = events_of(a, &[]);
    separately.extend(events_of(b, &[]));
    assert_eq!(both.len(), separately.len());
}

// ---- bad input (shared/spec/cli.md, exit status) ----

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A classic pcap global header (little-endian, µs) with the given link type.
fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&linktype.to_le_bytes());
    h
}

/// Byte offsets of each record header of a little-endian classic pcap.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offs = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        offs.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    offs
}

fn polling() -> Vec<u8> {
    let bytes = fs::read(repo().join("pcaps/modbus/polling.pcap")).expect("polling.pcap");
    assert_eq!(
        &bytes[..4],
        &0xa1b2_c3d4u32.to_le_bytes(),
        "polling.pcap is little-endian µs pcap"
    );
    bytes
}

#[test]
fn missing_file_exits_2_naming_it_before_processing() {
    let good = repo().join("pcaps/modbus/polling.pcap");
    let out = replay(&[
        "--events",
        "-",
        good.to_str().unwrap(),
        "/nonexistent/capture.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("/nonexistent/capture.pcap"),
        "{}",
        stderr_of(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "packets were processed before the check"
    );
    assert_eq!(
        stderr_of(&out).lines().count(),
        1,
        "one clear line: {}",
        stderr_of(&out)
    );
}

#[test]
fn non_capture_and_directory_exit_2() {
    let dir = tmp();
    let text = dir.path().join("notes.pcap");
    fs::write(&text, b"this is not a capture file at all\n").unwrap();
    let out = replay(&[text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("notes.pcap"));

    let out = replay(&[dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));

    let empty = dir.path().join("empty.pcap");
    fs::write(&empty, b"").unwrap();
    let out = replay(&[empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
}

#[test]
fn unsupported_link_type_exits_2() {
    let dir = tmp();
    let f = dir.path().join("user0.pcap");
    fs::write(&f, pcap_header(147)).unwrap();
    let out = replay(&[f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("user0.pcap") && err.contains("147"), "{err}");
}

#[test]
fn unwritable_events_path_exits_2() {
    let good = repo().join("pcaps/modbus/polling.pcap");
    let out = replay(&[
        "--events",
        "/nonexistent-dir/events.jsonl",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("/nonexistent-dir/events.jsonl"));
}

/// `--events` and `--alerts` naming one file in two spellings share one stream, as the
/// same spelling does: two writers on one file would overwrite each other's lines.
#[test]
fn one_file_under_two_spellings_is_one_stream() {
    let demo = repo().join("pcaps/demo-plant.pcap");
    let dir = tmp();
    let run = |alerts: &str, events: &str| {
        let out = otwatch()
            .current_dir(dir.path())
            .args([
                "replay", "--format", "json", "--alerts", alerts, "--events", events,
            ])
            .arg(&demo)
            .output()
            .expect("run otwatch");
        assert!(out.status.success(), "{}", stderr_of(&out));
        std::fs::read_to_string(dir.path().join("out.jsonl")).expect("output file")
    };
    let same = run("out.jsonl", "out.jsonl");
    let lines: Vec<serde_json::Value> = same
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let alerts = lines.iter().filter(|v| v["event_type"] == "alert").count();
    assert!(
        alerts > 0 && alerts < lines.len(),
        "events and alerts both written"
    );
    let absolute = dir.path().join("out.jsonl");
    for (alerts, events) in [
        ("out.jsonl", "./out.jsonl"),
        (absolute.to_str().unwrap(), "out.jsonl"),
    ] {
        assert_eq!(
            run(alerts, events),
            same,
            "--alerts {alerts} --events {events}"
        );
    }
}

#[test]
fn capture_ending_mid_record_processes_every_whole_packet_and_exits_0() {
    let bytes = polling();
    let offs = record_offsets(&bytes);
    let last = *offs.last().unwrap();
    let dir = tmp();
    let whole = events_of(&repo().join("pcaps/modbus/polling.pcap"), &[]);
    // Cut inside the last record's header, and inside its data.
    for cut in [last + 7, last + 16 + 3] {
        let f = dir.path().join("cut.pcap");
        fs::write(&f, &bytes[..cut]).unwrap();
        let out = replay(&["--events", "-", "--format", "json", f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let err = stderr_of(&out);
        assert!(
            err.contains("cut.pcap") && err.contains(&format!("offset {last}")),
            "{err}"
        );
        let n = String::from_utf8_lossy(&out.stdout).lines().count();
        // The last packet of polling.pcap is a FIN/ACK without payload: no event lost.
        assert_eq!(n, whole.len(), "every whole packet must be processed");
    }
}

#[test]
fn corrupt_record_header_stops_that_file_reads_the_next_and_exits_1() {
    let mut bytes = polling();
    let offs = record_offsets(&bytes);
    let bad = offs[5];
    bytes[bad + 8..bad + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let dir = tmp();
    let f = dir.path().join("corrupt.pcap");
    fs::write(&f, &bytes).unwrap();
    let good = repo().join("pcaps/modbus/polling.pcap");
    let out = replay(&[
        "--events",
        "-",
        "--format",
        "json",
        f.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("corrupt.pcap") && err.contains(&format!("{bad}")),
        "{err}"
    );
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    let whole = events_of(&good, &[]).len();
    assert!(
        n >= whole,
        "the next file must still be read ({n} events < {whole})"
    );
}

#[test]
fn stats_summarise_the_run() {
    let good = repo().join("pcaps/modbus/polling.pcap");
    let out = replay(&["--stats", good.to_str().unwrap()]);
    assert!(out.status.success());
    let err = stderr_of(&out);
    let packets = fs::read(&good).map(|b| record_offsets(&b).len()).unwrap();
    assert!(err.contains(&format!("packets: {packets}\n")), "{err}");
    assert!(err.contains("flows: 1\n"), "{err}");
    assert!(err.contains("pdus.modbus: "), "{err}");
    // cli.md: PDUs per protocol and alerts per kind, each with its line even at 0.
    for line in [
        "pdus.dnp3: 0\n",
        "parse_errors.opcua: 0\n",
        "alerts.program_download_outside_window: 0\n",
        "alerts.credential_unusual_origin: 0\n",
    ] {
        assert!(err.contains(line), "{line:?} in {err}");
    }
}

#[test]
fn a_reader_that_goes_away_is_not_a_failure() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let demo = repo().join("pcaps/demo-plant.pcap");
    let mut child = otwatch()
        .args(["replay", "--events", "-", "--format", "json"])
        .arg(&demo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run otwatch");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with('{'), "{first}");
    // The reader is dropped here, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

#[test]
fn the_readme_shows_the_demo_as_it_is() {
    let readme = fs::read_to_string(repo().join("README.md")).unwrap();
    let after = readme
        .split_once("then what should wake the SOC:\n\n```\n")
        .expect("the README's demo block")
        .1;
    let shown = after.split_once("```").unwrap().0;
    let out = otwatch()
        .args(["replay", "--format", "text"])
        .arg(repo().join("pcaps/demo-plant.pcap"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        shown,
        String::from_utf8_lossy(&out.stdout),
        "README.md's demo output is stale: paste the output of `otwatch replay pcaps/demo-plant.pcap --format text`"
    );
}

/// `--format` defaults per output (cli.md: json when not a terminal, text on a
/// terminal): in one run, the alerts on a terminal are text while the events written
/// to a file are JSON lines.
#[test]
fn a_file_gets_json_lines_while_the_terminal_gets_text() {
    // `script` runs otwatch on a pseudo-terminal.
    if !have_script() {
        return;
    }
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let dir = tmp();
    let events = dir.path().join("events.jsonl");
    let demo = repo().join("pcaps/demo-plant.pcap");
    let command = [
        env!("CARGO_BIN_EXE_otwatch"),
        "replay",
        "--events",
        events.to_str().unwrap(),
        demo.to_str().unwrap(),
    ]
    .map(quote)
    .join(" ");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let terminal = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
    let text = otwatch()
        .args(["replay", "--format", "text"])
        .arg(&demo)
        .output()
        .unwrap();
    let alerts = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(alerts.lines().count() > 1, "{alerts}");
    for line in alerts.lines() {
        assert!(
            terminal.contains(line),
            "{line:?} not on the terminal:\n{terminal}"
        );
    }
    assert!(
        !terminal.contains("{\""),
        "JSON on the terminal:\n{terminal}"
    );
    let written = fs::read_to_string(&events).unwrap();
    let json: Vec<serde_json::Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(json.len(), events_of(&demo, &[]).len());
    assert!(json.iter().all(|v| v["event_type"] == "ot"));
}

/// A request the capture lost (a mirror port drops packets) is the sensor's loss,
/// not the device's: its answer is reported, flagged, and raises no alert.
#[test]
fn an_answer_whose_request_the_capture_lost_raises_no_anomaly() {
    let bytes = polling();
    let offs = record_offsets(&bytes);
    let record = |i: usize| &bytes[offs[i]..offs.get(i + 1).copied().unwrap_or(bytes.len())];
    // The capture without record `lost`; and reordered: `order` instead of the
    // records from `lost` up to `rest`.
    let lose = |lost: usize, order: [usize; 3], rest: usize| {
        let mut dropped = bytes[..offs[lost]].to_vec();
        dropped.extend_from_slice(&bytes[offs[lost + 1]..]);
        let mut reordered = bytes[..offs[lost]].to_vec();
        for i in order {
            reordered.extend_from_slice(record(i));
        }
        reordered.extend_from_slice(&bytes[offs[rest]..]);
        [dropped, reordered]
    };
    // Record 6 carries the second request (transaction 2, stream bytes 13..25): it is
    // lost. Its answer (record 7) acknowledges those bytes; or, reordered, the third
    // request (record 9) comes first and the answer's acknowledgment declares the
    // hole before it lost: a gap.
    for lossy in lose(6, [9, 7, 8], 10) {
        answer_to_a_lost_request_is_quiet(&lossy, 2);
    }
    // The flow's first request (record 3, transaction 1) is lost: its answer is the
    // first data of the flow, and it comes in a segment that acknowledges the lost
    // bytes, before any dissector was chosen for the flow. Reordered, the second
    // request comes first and is held until that answer declares the hole a gap.
    for lossy in lose(3, [6, 4, 5], 7) {
        answer_to_a_lost_request_is_quiet(&lossy, 1);
    }
}

fn answer_to_a_lost_request_is_quiet(lossy: &[u8], transaction_id: u16) {
    let dir = tmp();
    let f = dir.path().join("lossy.pcap");
    fs::write(&f, lossy).unwrap();
    let objects = objects_of(&f, &[]);
    let events: Vec<_> = objects.iter().filter(|v| v["event_type"] == "ot").collect();
    let whole = events_of(&repo().join("pcaps/modbus/polling.pcap"), &[]);
    assert_eq!(events.len(), whole.len() - 1);
    let answer = events
        .iter()
        .find(|e| e["modbus"]["transaction_id"] == transaction_id && e["direction"] == "to_client")
        .expect("the answer to the lost request");
    assert_eq!(answer["direction"], "to_client");
    assert_eq!(
        answer["anomalies"],
        serde_json::json!(["unmatched_response", "resync"])
    );
    let alerts: Vec<_> = objects
        .iter()
        .filter(|v| v["event_type"] == "alert")
        .map(|a| a["alert"]["kind"].clone())
        .collect();
    assert!(
        !alerts.iter().any(|k| k == "protocol_anomaly"),
        "{alerts:?}"
    );
}
