//! `--alerts kafka` end to end, against a real Kafka-compatible broker (tansu) on
//! loopback, started by the test (see `otwatch_sinks::testbroker`).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use otwatch_sinks::testbroker::TestBroker;

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

#[test]
fn demo_alerts_in_kafka_equal_the_json_lines_ones() {
    let Some(broker) = TestBroker::start_or_skip("demo_alerts_in_kafka_equal_the_json_lines_ones")
    else {
        return;
    };
    broker.create_topic("otwatch.alerts");
    let state = tempfile::tempdir().unwrap();
    let out = otwatch()
        .args([
            "replay",
            "--alerts",
            "kafka",
            "--kafka-brokers",
            &broker.bootstrap(),
        ])
        .arg("--state-dir")
        .arg(state.path())
        .arg(demo())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "alerts went to Kafka, not stdout");
    let expected = alerts_on_stdout();
    assert_eq!(expected.len(), 8);
    assert_eq!(
        received(&broker, expected.len()),
        expected,
        "same JSON, keys = community ids"
    );
}

#[test]
fn unreachable_broker_spools_every_alert_and_the_next_start_sends_them() {
    let state = tempfile::tempdir().unwrap();
    // Nothing listens on port 1.
    let out = otwatch()
        .args([
            "replay",
            "--alerts",
            "kafka",
            "--kafka-brokers",
            "127.0.0.1:1",
            "--stats",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .arg(demo())
        .output()
        .unwrap();
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
    let out = otwatch()
        .args([
            "replay",
            "--alerts",
            "kafka",
            "--kafka-brokers",
            &broker.bootstrap(),
            "--stats",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .arg(&quiet)
        .output()
        .unwrap();
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
