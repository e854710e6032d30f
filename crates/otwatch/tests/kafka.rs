//! `--alerts kafka` end to end, against a real Kafka-compatible broker (tansu) on
//! loopback, started by the test (see `otwatch_sinks::testbroker`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use otwatch_sinks::testbroker::{Received, TestBroker};

fn demo() -> String {
    repo()
        .join("pcaps/demo-plant.pcap")
        .to_string_lossy()
        .into_owned()
}

/// The demo's alerts as `--alerts -` writes them: JSON line -> expected Kafka key.
fn alerts_on_stdout() -> BTreeMap<String, String> {
    let out = otwatch()
        .args(["replay", "--format", "json", &demo()])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = v["flow"]["community_id"].as_str().unwrap().to_owned();
            (l.to_owned(), key)
        })
        .collect()
}

fn received(broker: &TestBroker, want: usize) -> BTreeMap<String, String> {
    let consumer = broker.consumer("otwatch.alerts");
    let msgs = consumer.read(want, Duration::from_secs(20));
    msgs.iter()
        .map(|m| {
            assert_eq!(m.header("schema"), Some(&b"otwatch/1"[..]), "schema header");
            (
                String::from_utf8(m.value.clone().unwrap()).unwrap(),
                String::from_utf8(m.key.clone().unwrap()).unwrap(),
            )
        })
        .collect()
}

/// `otwatch replay --alerts kafka --kafka-brokers BROKERS [EXTRA] --state-dir STATE
/// PCAP`, run to its end.
fn replay_to_kafka(
    brokers: &str,
    extra: &[&str],
    state: &std::path::Path,
    pcap: impl AsRef<std::ffi::OsStr>,
) -> std::process::Output {
    otwatch()
        .args(["replay", "--alerts", "kafka", "--kafka-brokers", brokers])
        .args(extra)
        .arg("--state-dir")
        .arg(state)
        .arg(pcap)
        .output()
        .unwrap()
}

#[test]
fn demo_alerts_in_kafka_equal_the_json_lines_ones() {
    let Some(broker) = TestBroker::start_or_skip("demo_alerts_in_kafka_equal_the_json_lines_ones")
    else {
        return;
    };
    broker.create_topic("otwatch.alerts");
    let state = tempfile::tempdir().unwrap();
    let out = replay_to_kafka(&broker.bootstrap(), &[], state.path(), demo());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "alerts went to Kafka, not stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("does not exist"), "{stderr}");
    let expected = alerts_on_stdout();
    assert_eq!(expected.len(), 8);
    assert_eq!(
        received(&broker, expected.len()),
        expected,
        "same JSON, keys = community ids"
    );
}

/// A broker that answers but lacks the alerts topic (this one creates none on first
/// use): the alerts stay in the spool, and the warning names the topic, where
/// librdkafka's delivery error would not.
#[test]
fn a_missing_alerts_topic_is_named() {
    let Some(broker) = TestBroker::start_or_skip("a_missing_alerts_topic_is_named") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let topic = ["--kafka-topic", "not.created"];
    let out = replay_to_kafka(&broker.bootstrap(), &topic, state.path(), demo());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("does not exist") && stderr.contains("not.created"),
        "{stderr}"
    );
}

#[test]
fn unreachable_broker_spools_every_alert_and_the_next_start_sends_them() {
    let state = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let out = replay_to_kafka("127.0.0.1:1", &["--stats"], state.path(), demo());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("unreachable"), "a clear warning: {err}");
    assert!(
        err.contains("remain in the spool"),
        "says what it kept: {err}"
    );
    assert!(err.contains("kafka.spooled: 8\n"), "{err}");

    let Some(broker) = TestBroker::start_or_skip(
        "unreachable_broker_spools_every_alert_and_the_next_start_sends_them",
    ) else {
        return;
    };
    broker.create_topic("otwatch.alerts");
    // A capture without alerts: what reaches the topic is the spool of the first run.
    let quiet = repo().join("pcaps/modbus/polling.pcap");
    let out = replay_to_kafka(&broker.bootstrap(), &["--stats"], state.path(), &quiet);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("kafka.spooled: 0\n"),
        "the spool drained: {err}"
    );
    assert_eq!(received(&broker, 8), alerts_on_stdout());
}

#[test]
fn kafka_destinations_need_brokers() {
    let out = otwatch()
        .args(["replay", "--alerts", "kafka", &demo()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kafka-brokers"));
}

/// Two sensors on one state directory would interleave the spool's records: the
/// second is refused before it reads a packet (exit 2, naming the directory), and the
/// first goes on.
#[test]
fn a_second_run_on_a_state_directory_in_use_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let args = |speed: &str| {
        let mut c = otwatch();
        c.args([
            "replay",
            "--alerts",
            "kafka",
            "--kafka-brokers",
            "127.0.0.1:1",
        ])
        .args(["--speed", speed])
        .arg("--state-dir")
        .arg(state.path())
        .arg(demo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        c
    };
    // At the capture's own pace the demo takes minutes: the first run holds the spool.
    let mut first = args("1").spawn().unwrap();
    let lock = state.path().join("spool/lock");
    let start = std::time::Instant::now();
    while !lock.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lock.exists(), "the first run did not open its spool");
    std::thread::sleep(Duration::from_millis(300));
    let out = args("0")
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(
        err.contains(&*state.path().to_string_lossy()),
        "names the state directory: {err}"
    );
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first run must go on"
    );
    first.kill().unwrap();
    first.wait().unwrap();
}

/// A policy under which every coil write of `iti_plant1_modbustcp.pcap` (85 s of a
/// master writing to 13 slaves) is an `unauthorized_write`, without folding: about
/// two thousand alerts.
fn outage_policy(dir: &std::path::Path) -> String {
    let slaves = [
        "141.81.0.104",
        "141.81.0.143",
        "141.81.0.144",
        "141.81.0.163",
        "141.81.0.164",
        "141.81.0.24",
        "141.81.0.26",
        "141.81.0.44",
        "141.81.0.46",
        "141.81.0.64",
        "141.81.0.66",
        "141.81.0.84",
        "141.81.0.86",
    ];
    let mut s = String::from(
        "[sensor]\nname = \"outage-test\"\nrepeat_interval = 0\n\n[zones]\nplant = [\"141.81.0.0/24\"]\n",
    );
    for (i, ip) in slaves.iter().enumerate() {
        s.push_str(&format!(
            "\n[[assets]]\nname = \"plc-{i}\"\nip = \"{ip}\"\nrole = \"plc\"\n"
        ));
    }
    let p = dir.join("outage.toml");
    std::fs::write(&p, s).unwrap();
    p.to_string_lossy().into_owned()
}

fn ids_of_lines(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["alert"]["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn ids_of(msgs: &[Received]) -> std::collections::BTreeSet<String> {
    ids_of_lines(
        &msgs
            .iter()
            .map(|m| {
                String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned() + "\n"
            })
            .collect::<String>(),
    )
}

/// Replays the outage capture into Kafka at 10x while `during` disturbs the broker
/// (given the replaying otwatch's pid, it returns what a consumer read from the
/// broker's lifetime that ends, if one does), drains the spool with a second start if
/// needed, and checks that the distinct alert ids read equal the JSON-lines run's.
fn every_alert_arrives_despite(
    test: &str,
    during: impl FnOnce(&mut TestBroker, u32) -> Vec<Received>,
) {
    let Some(mut broker) = TestBroker::start_or_skip(test) else {
        return;
    };
    let pcap = shared_pcaps().join("modbus/iti_plant1_modbustcp.pcap");
    if !pcap.exists() {
        assert!(!in_ci(), "../shared/pcaps is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = outage_policy(dir.path());
    let out = otwatch()
        .args(["replay", "--format", "json", "--policy", &policy])
        .arg(&pcap)
        .output()
        .unwrap();
    let expected = ids_of_lines(&String::from_utf8_lossy(&out.stdout));
    assert!(
        expected.len() > 1500,
        "thousands of alerts: {}",
        expected.len()
    );
    broker.create_topic("otwatch.alerts");
    let state = dir.path().join("state");
    let bootstrap = broker.bootstrap();
    let run = |pcap: &std::path::Path, log: &str| {
        let log_file = std::fs::File::create(dir.path().join(log)).unwrap();
        otwatch()
            .args(["replay", "--alerts", "kafka", "--kafka-brokers", &bootstrap])
            .args([
                "--policy",
                &policy,
                "--stats",
                "--speed",
                "10",
                "--state-dir",
            ])
            .arg(&state)
            .arg(pcap)
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap()
    };
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let child = run(&pcap, "first.log");
    let before = during(&mut broker, child.id());
    let status = child.wait_with_output().unwrap().status;
    assert!(status.success(), "{}", log("first.log"));
    // What the run could not deliver before its flush timeout stays in the spool; the
    // next start with the same --state-dir sends it first.
    if !log("first.log").contains("kafka.spooled: 0\n") {
        let quiet = repo().join("pcaps/modbus/polling.pcap");
        let status = run(&quiet, "second.log").wait().unwrap();
        assert!(status.success(), "{}", log("second.log"));
        assert!(
            log("second.log").contains("kafka.spooled: 0\n"),
            "{}",
            log("second.log")
        );
    }
    let after = broker
        .consumer("otwatch.alerts")
        .read_all(Duration::from_secs(3), Duration::from_secs(60));
    let mut got = ids_of(&before);
    got.extend(ids_of(&after));
    let missing = expected.difference(&got).count();
    assert_eq!(
        missing,
        0,
        "{missing} of {} alerts never reached Kafka ({} read before an outage, {} after)",
        expected.len(),
        before.len(),
        after.len()
    );
    assert_eq!(
        got, expected,
        "the distinct alert ids equal the JSON-lines run's"
    );
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn broker_killed_mid_replay_and_restarted_loses_no_alert() {
    // 85 s of capture at 10x: about 8.5 s of replay. After 3 s the broker dies and
    // comes back (empty: the memory engine forgets) 2 s later. A consumer reads up to
    // the outage: otwatch is held (SIGSTOP) while the consumer drains what the broker
    // acknowledged, so that "read before the outage" is exact; what the broker stored
    // but otwatch never saw acknowledged is resent after the restart.
    every_alert_arrives_despite(
        "broker_killed_mid_replay_and_restarted_loses_no_alert",
        |broker, otwatch| {
            let early = broker.consumer("otwatch.alerts");
            let mut first = early.read(usize::MAX, Duration::from_secs(3));
            signal(otwatch, "-STOP");
            first.extend(early.read_all(Duration::from_secs(1), Duration::from_secs(10)));
            // The test's consumer is closed before its broker dies (a librdkafka
            // consumer left polling a broker that restarts empty crashed the test
            // process once).
            drop(early);
            broker.kill();
            signal(otwatch, "-CONT");
            std::thread::sleep(Duration::from_secs(2));
            broker.restart();
            broker.create_topic("otwatch.alerts");
            assert!(
                !first.is_empty(),
                "the outage should cut a replay in flight"
            );
            first
        },
    );
}

#[test]
fn broker_paused_mid_replay_loses_no_alert() {
    every_alert_arrives_despite("broker_paused_mid_replay_loses_no_alert", |broker, _| {
        std::thread::sleep(Duration::from_secs(3));
        broker.pause(); // SIGSTOP
        std::thread::sleep(Duration::from_secs(3));
        broker.resume(); // SIGCONT
        Vec::new()
    });
}

#[test]
fn broker_down_from_the_start_loses_no_alert() {
    every_alert_arrives_despite("broker_down_from_the_start_loses_no_alert", |broker, _| {
        broker.kill();
        std::thread::sleep(Duration::from_secs(4));
        broker.restart();
        broker.create_topic("otwatch.alerts");
        Vec::new()
    });
}
