//! Helpers shared by the Kafka integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use otwatch_sinks::kafka::{KafkaConfig, KafkaCounters, KafkaSink};
use otwatch_sinks::testbroker::{Received, TestBroker};

/// Logs of the sink (and librdkafka) in the test output: `RUST_LOG`, default `warn`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub fn config(broker: &TestBroker, alerts: &str, events: &str) -> KafkaConfig {
    init_logs();
    let mut c = KafkaConfig::new(broker.bootstrap());
    c.alerts_topic = alerts.to_owned();
    c.events_topic = events.to_owned();
    c.flush_timeout = Duration::from_secs(5);
    // librdkafka's own debug contexts, e.g. OTWATCH_KAFKA_DEBUG=eos,msg,topic
    // (with RUST_LOG=debug).
    if let Ok(d) = std::env::var("OTWATCH_KAFKA_DEBUG") {
        c.properties.push(("debug".to_owned(), d));
    }
    c
}

pub fn wait_for(
    sink: &KafkaSink,
    timeout: Duration,
    what: &str,
    ok: impl Fn(&KafkaCounters) -> bool,
) -> KafkaCounters {
    let deadline = Instant::now() + timeout;
    loop {
        let c = sink.counters();
        if ok(&c) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An alert object whose `alert.id` is `id-NNNNN`.
pub fn alert_json(i: usize) -> String {
    format!(
        r#"{{"schema":"otwatch/1","event_type":"alert","alert":{{"id":"id-{i:05}","kind":"new_conduit"}},"flow":{{"community_id":"1:key{}"}}}}"#,
        i % 7
    )
}

pub fn alert_key(i: usize) -> String {
    format!("1:key{}", i % 7)
}

/// The `N` of `alert.id` `id-NNNNN` in a message read back.
pub fn alert_number(m: &Received) -> usize {
    let value = String::from_utf8_lossy(m.value.as_deref().unwrap_or_default()).into_owned();
    let n = value
        .split("\"id\":\"id-")
        .nth(1)
        .and_then(|s| s.get(..5))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a test alert: {value}"));
    assert_eq!(
        value,
        alert_json(n),
        "value is the alert JSON, byte for byte"
    );
    n
}

pub fn ids(msgs: &[Received]) -> BTreeSet<usize> {
    msgs.iter().map(alert_number).collect()
}

/// Every alert of `0..n` is in `seen`: the missing ones otherwise.
pub fn assert_all_seen(seen: &BTreeSet<usize>, n: usize, context: &str) {
    let missing: Vec<usize> = (0..n).filter(|i| !seen.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "{context}: {} of {n} alerts never reached the broker: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        seen.iter().all(|&i| i < n),
        "{context}: unknown alerts read back"
    );
}
