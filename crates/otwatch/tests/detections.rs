//! Detections end to end: every generated rule case (`pcaps/rules/<case>.pcap`, written
//! by `cargo xtask gen-pcaps` with its policy and expected alerts) replayed with its
//! policy raises exactly the expected alerts, in order; the demo capture raises its
//! expected alerts with the embedded demo policy; alert output is byte-identical across
//! runs and `--threads`; every alert carries the contract's fields
//! (`shared/spec/output.md`, "Alert").
//!
//! The expected files are derived from the scenarios and the spec by the generator
//! (`xtask/src/gen/rules.rs`), not from otwatch's output. An expected alert lists the
//! fields the scenario determines; the actual alert must hold each of them with the
//! same value (`null` also matches an absent field) and may hold more.

#![allow(clippy::print_stderr)] // A skip is explained on stderr.
mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use common::*;

/// The rule cases' captures, sorted.
fn cases() -> Vec<PathBuf> {
    let dir = repo().join("pcaps/rules");
    let mut v: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run cargo xtask gen-pcaps)", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    v.sort();
    assert!(v.len() >= 20, "expected the rule cases, found {v:?}");
    v
}

fn sibling(pcap: &Path, suffix: &str) -> PathBuf {
    let stem = pcap.file_stem().unwrap().to_string_lossy();
    pcap.with_file_name(format!("{stem}.{suffix}"))
}

fn jsonl(path: &Path) -> Vec<Value> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// `otwatch replay PCAP [--policy P] --alerts - --format json --threads N [--events -]`:
/// its stdout, asserting success.
fn replay_out(pcap: &Path, policy: Option<&Path>, threads: u32, events: bool) -> String {
    let mut cmd = otwatch();
    cmd.arg("replay").arg(pcap);
    if let Some(p) = policy {
        cmd.arg("--policy").arg(p);
    }
    cmd.args(["--alerts", "-", "--format", "json", "--threads"])
        .arg(threads.to_string());
    if events {
        cmd.args(["--events", "-"]);
    }
    let out = cmd.output().expect("run otwatch");
    assert!(
        out.status.success(),
        "otwatch replay {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn parse(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

fn alerts(objects: &[Value]) -> Vec<Value> {
    objects
        .iter()
        .filter(|v| v["event_type"] == "alert")
        .cloned()
        .collect()
}

fn brief(a: &Value) -> String {
    format!(
        "{} {} {}:{} -> {}:{} ({})",
        a["timestamp"].as_str().unwrap_or("?"),
        a["alert"]["kind"].as_str().unwrap_or("?"),
        a["flow"]["src_ip"],
        a["flow"]["src_port"],
        a["flow"]["dst_ip"],
        a["flow"]["dst_port"],
        a["message"].as_str().unwrap_or(""),
    )
}

/// Compares actual alerts with expected ones, in order; `Err` lists every difference.
fn compare(name: &str, actual: &[Value], expected: &[Value]) -> Result<(), String> {
    let mut problems = Vec::new();
    for i in 0..actual.len().max(expected.len()) {
        match (actual.get(i), expected.get(i)) {
            (Some(a), Some(e)) => {
                if let Err(m) = contains(a, e) {
                    problems.push(format!("  #{i}: {m}\n     actual: {}", brief(a)));
                }
            }
            (Some(a), None) => problems.push(format!("  #{i}: unexpected alert {}", brief(a))),
            (None, Some(e)) => problems.push(format!(
                "  #{i}: missing alert {} {}",
                e["timestamp"], e["alert"]["kind"]
            )),
            (None, None) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}: {} alerts, {} expected\n{}",
            actual.len(),
            expected.len(),
            problems.join("\n")
        ))
    }
}

const SEVERITIES: &[&str] = &["info", "low", "medium", "high", "critical"];

/// The contract's fields of every alert of one run, and ids unique within the run.
fn check_alert_fields(name: &str, alerts: &[Value]) {
    let mut ids = HashSet::new();
    for a in alerts {
        let what = format!("{name}: {}", brief(a));
        assert_eq!(a["schema"], "otwatch/1", "{what}");
        assert_eq!(a["event_type"], "alert", "{what}");
        assert!(
            a["sensor"].as_str().is_some_and(|s| !s.is_empty()),
            "{what}"
        );
        let ts = a["timestamp"].as_str().unwrap_or("");
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes().get(19) == Some(&b'.'),
            "{what}: timestamp {ts:?} is not RFC 3339 UTC with six fractional digits"
        );
        let id = a["alert"]["id"].as_str().unwrap_or("");
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{what}: alert.id {id:?} is not 32 hex digits"
        );
        assert!(ids.insert(id.to_owned()), "{what}: alert.id {id} repeated");
        let sev = a["alert"]["severity"].as_str().unwrap_or("");
        assert!(SEVERITIES.contains(&sev), "{what}: severity {sev:?}");
        let attack = a["alert"]["attack"].as_array();
        assert!(
            attack.is_some_and(|t| !t.is_empty()
                && t.iter()
                    .all(|x| x.as_str().is_some_and(|s| s.starts_with('T')))),
            "{what}: attack {}",
            a["alert"]["attack"]
        );
        assert!(a["alert"]["rule"].as_str().is_some(), "{what}: rule");
        assert!(a["alert"]["repeats"].as_u64().is_some(), "{what}: repeats");
        assert!(
            a["message"].as_str().is_some_and(|m| !m.trim().is_empty()),
            "{what}: message"
        );
        for k in ["src_ip", "dst_ip", "community_id", "src_zone", "dst_zone"] {
            assert!(a["flow"][k].as_str().is_some(), "{what}: flow.{k}");
        }
    }
}

/// "Each event comes before the alerts it triggers" (output.md): a PDU alert follows an
/// event of the same flow, direction and time.
fn check_event_before_alert(name: &str, objects: &[Value]) {
    for (i, a) in objects.iter().enumerate() {
        if a["event_type"] != "alert" || a.get("direction").is_none() {
            continue;
        }
        let found = objects[..i].iter().any(|e| {
            e["event_type"] == "ot"
                && e["timestamp"] == a["timestamp"]
                && e["direction"] == a["direction"]
                && e["flow"]["community_id"] == a["flow"]["community_id"]
        });
        assert!(
            found,
            "{name}: no event before the alert {} that triggers it",
            brief(a)
        );
    }
}

/// Silent cases must stay silent for the right reason: the PDUs that could have
/// alerted were dissected. (case, an operation its events must include).
const SILENT_CASES_SEE: &[(&str, &str)] = &[
    ("download_inside_weekly_window", "program_download"),
    ("setpoint_authorized_in_range", "write"),
    ("setpoint_adjacent_write", "write"),
    ("approved_conduit", "read"),
    ("intra_zone", "read"),
];

#[test]
fn rule_cases_raise_exactly_their_expected_alerts() {
    let mut failures = Vec::new();
    let mut silent = 0;
    for pcap in cases() {
        let name = pcap.file_stem().unwrap().to_string_lossy().into_owned();
        let policy = sibling(&pcap, "policy.toml");
        let expected = jsonl(&sibling(&pcap, "expected-alerts.jsonl"));
        let objects = parse(&replay_out(&pcap, Some(&policy), 2, true));
        let actual = alerts(&objects);
        check_alert_fields(&name, &actual);
        check_event_before_alert(&name, &objects);
        if expected.is_empty() {
            silent += 1;
            let op = SILENT_CASES_SEE
                .iter()
                .find(|(c, _)| *c == name)
                .map(|(_, op)| *op)
                .unwrap_or_else(|| panic!("{name}: silent case missing from SILENT_CASES_SEE"));
            assert!(
                objects
                    .iter()
                    .any(|e| e["event_type"] == "ot" && e["operation"] == op),
                "{name}: no {op} event was dissected, so silence proves nothing"
            );
        }
        if let Err(m) = compare(&name, &actual, &expected) {
            failures.push(m);
        }
    }
    assert_eq!(silent, SILENT_CASES_SEE.len(), "silent cases");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Every detection kind of the contract fires in at least one rule case.
#[test]
fn rule_cases_cover_every_detection() {
    let mut kinds = HashSet::new();
    for pcap in cases() {
        for a in jsonl(&sibling(&pcap, "expected-alerts.jsonl")) {
            kinds.insert(a["alert"]["kind"].as_str().unwrap_or("").to_owned());
        }
    }
    for k in [
        "program_download_outside_window",
        "unauthorized_setpoint_write",
        "setpoint_out_of_range",
        "new_conduit",
        "unauthorized_write",
        "plc_mode_change",
        "device_restart",
        "program_upload",
        "new_asset",
        "protocol_anomaly",
        "credential_unusual_origin",
    ] {
        assert!(kinds.contains(k), "no rule case fires {k}");
    }
}

fn demo() -> PathBuf {
    repo().join("pcaps/demo-plant.pcap")
}

#[test]
fn demo_raises_its_expected_alerts_with_the_embedded_policy() {
    let expected = jsonl(&repo().join("pcaps/demo-plant.expected-alerts.jsonl"));
    let objects = parse(&replay_out(&demo(), None, 2, true));
    let actual = alerts(&objects);
    check_alert_fields("demo-plant", &actual);
    check_event_before_alert("demo-plant", &objects);
    if let Err(m) = compare("demo-plant", &actual, &expected) {
        panic!("\n{m}");
    }
    // The in-window download was seen (and stayed silent): ews-1's first connection.
    assert!(
        objects.iter().any(|e| e["event_type"] == "ot"
            && e["operation"] == "program_download"
            && e["flow"]["src_port"] == 50320),
        "the demo's in-window download was not dissected"
    );
}

#[test]
fn alert_output_is_byte_identical_across_runs_and_threads() {
    let mut inputs: Vec<(PathBuf, Option<PathBuf>)> = vec![(demo(), None)];
    inputs.extend(cases().into_iter().map(|p| {
        let policy = sibling(&p, "policy.toml");
        (p, Some(policy))
    }));
    for (pcap, policy) in &inputs {
        let policy = policy.as_deref();
        let first = replay_out(pcap, policy, 2, false);
        let name = pcap.display();
        if policy.is_none() {
            // The demo: non-empty, and exactly the same on a second run.
            assert!(!first.is_empty(), "{name}: no alerts");
            assert_eq!(first, replay_out(pcap, policy, 2, false), "{name}: rerun");
        }
        for threads in [1, 4] {
            assert_eq!(
                first,
                replay_out(pcap, policy, threads, false),
                "{name}: --threads {threads} differs from --threads 2"
            );
        }
    }
}

/// Without `--events`, the flow workers make events only of the PDUs the rule engine
/// can act on (`Engine::may_act_on`); the alerts must be exactly those of a run that
/// makes an event of every PDU. Checked on the demo, every rule case, and every public
/// capture beside the checkout with the demo policy (its zones cover none of their
/// addresses, so they raise new-conduit and anomaly alerts).
/// policy.md: a window's `ticket` is "copied into alerts and events it covers". In the
/// one-off window case, CHG-4711 covers plc-boiler-1 for ews-1 only: the events of
/// ews-1's download (requests and responses) carry the ticket; ews-2's download in
/// the same window, and the session set-up around them, do not.
#[test]
fn a_windows_ticket_is_in_the_events_it_covers() {
    let pcap = repo().join("pcaps/rules/download_inside_oneoff_window_with_sources.pcap");
    let policy = sibling(&pcap, "policy.toml");
    let events: Vec<Value> = parse(&replay_out(&pcap, Some(&policy), 1, true))
        .into_iter()
        .filter(|v| v["event_type"] == "ot")
        .collect();
    let (mut covered, mut uncovered) = (0, 0);
    for ev in &events {
        // Modbus: the client, the flow's initiator, requests in both directions.
        let requester = &ev["flow"]["src_ip"];
        let download = ev["operation"] == "program_download";
        if download && requester == "10.20.1.5" {
            assert_eq!(ev["ticket"], "CHG-4711", "{ev}");
            covered += 1;
        } else {
            assert!(ev.get("ticket").is_none(), "{ev}");
            uncovered += usize::from(download);
        }
    }
    assert!(
        covered > 0 && uncovered > 0,
        "{covered} covered, {uncovered} not"
    );
}

#[test]
fn alerts_are_the_same_whether_or_not_every_pdu_becomes_an_event() {
    let mut inputs: Vec<(PathBuf, Option<PathBuf>)> = vec![(demo(), None)];
    inputs.extend(cases().into_iter().map(|p| {
        let policy = sibling(&p, "policy.toml");
        (p, Some(policy))
    }));
    let shared = shared_pcaps();
    let mut public: Vec<PathBuf> = walk(&shared)
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "pcap" || x == "pcapng" || x == "cap")
        })
        .collect();
    public.sort();
    if public.is_empty() {
        assert!(!in_ci(), "no public captures in {}", shared.display());
        eprintln!(
            "{}: no captures, only the project's own checked",
            shared.display()
        );
    }
    inputs.extend(public.into_iter().map(|p| (p, None)));
    let (mut compared, mut alerts_seen) = (0, 0);
    for (pcap, policy) in &inputs {
        let policy = policy.as_deref();
        let with_events = replay_out(pcap, policy, 2, true);
        let from_events: Vec<&str> = with_events
            .lines()
            .filter(|l| l.contains(r#""event_type":"alert""#))
            .collect();
        let alone = replay_out(pcap, policy, 2, false);
        let alone: Vec<&str> = alone.lines().collect();
        assert_eq!(
            alone,
            from_events,
            "{}: alerts differ when events are not written",
            pcap.display()
        );
        compared += 1;
        alerts_seen += alone.len();
    }
    // Not a comparison of silences.
    assert!(
        alerts_seen > 100,
        "{compared} inputs, only {alerts_seen} alerts"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
