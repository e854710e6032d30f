//! The Kafka sink against a real broker (tansu on loopback): what arrives, with which
//! key, header and partition; events best effort.

mod kafka_common;

use std::path::Path;
use std::time::Duration;

use kafka_common::{alert_json, alert_key, alert_number, config, wait_for};
use otwatch_sinks::kafka::KafkaSink;
use otwatch_sinks::testbroker::{TestBroker, TEST_PARTITIONS};

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), written from its definition, to
/// check that `partitioner=murmur2_random` puts a key where a Java producer would.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const SEED: u32 = 0x9747_b28c;
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

fn java_partition(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) % partitions as u32) as i32
}

#[test]
fn murmur2_matches_kafkas_reference_values() {
    // Values from the Java client's own tests (Utils.murmur2 of these ASCII strings).
    assert_eq!(murmur2(b"21") as i32, -973932308);
    assert_eq!(murmur2(b"foobar") as i32, -790332482);
    assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
    assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
        -58897971
    );
    assert_eq!(murmur2(b"abc") as i32, 479470107);
}

#[test]
fn alerts_arrive_with_key_header_json_and_java_partition() {
    let Some(broker) =
        TestBroker::start_or_skip("alerts_arrive_with_key_header_json_and_java_partition")
    else {
        return;
    };
    broker.create_topic("alerts1");
    broker.create_topic("events1");
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts1", "events1"), state.path()).unwrap();
    let n = 200;
    for i in 0..n {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
    }
    wait_for(
        &sink,
        Duration::from_secs(30),
        "200 alerts delivered",
        |c| c.alerts_delivered >= n as u64 && c.spooled == 0,
    );
    let c = sink.shutdown();
    assert_eq!(c.dropped_alerts, 0);
    assert_eq!(c.spooled, 0, "{c:?}");

    let got = broker.consumer("alerts1").read(n, Duration::from_secs(20));
    assert_eq!(got.len(), n, "{}", broker.log_tail());
    let mut last_per_key = std::collections::HashMap::new();
    for m in &got {
        let id = alert_number(m);
        let key = m.key.clone().unwrap();
        assert_eq!(key, alert_key(id).into_bytes(), "key = community id");
        assert_eq!(m.header("schema"), Some(&b"otwatch/1"[..]));
        assert_eq!(
            m.partition,
            java_partition(&key, TEST_PARTITIONS),
            "murmur2 partitioning, as a Java producer would choose"
        );
        // In order per key (one key, one partition).
        if let Some(prev) = last_per_key.insert(key, id) {
            assert!(prev < id, "alert {id} after {prev}");
        }
    }
}

#[test]
fn events_are_delivered_when_up_and_dropped_and_counted_when_down() {
    let Some(mut broker) =
        TestBroker::start_or_skip("events_are_delivered_when_up_and_dropped_and_counted_when_down")
    else {
        return;
    };
    broker.create_topic("alerts2");
    broker.create_topic("events2");
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts2", "events2"), state.path()).unwrap();
    for i in 0..1000 {
        sink.send_event(
            "1:ev",
            format!(r#"{{"event_type":"ot","n":{i}}}"#).as_bytes(),
        );
    }
    wait_for(
        &sink,
        Duration::from_secs(30),
        "1000 events delivered",
        |c| c.delivered >= 1000,
    );
    let c = sink.shutdown();
    assert_eq!(
        (c.delivered, c.dropped_events, c.spooled),
        (1000, 0, 0),
        "{c:?}"
    );
    let got = broker
        .consumer("events2")
        .read(1000, Duration::from_secs(20));
    assert_eq!(got.len(), 1000);
    assert!(got
        .iter()
        .all(|m| m.header("schema") == Some(&b"otwatch/1"[..])));
    assert!(broker
        .consumer("alerts2")
        .read(1, Duration::from_secs(1))
        .is_empty());

    // The broker is gone: events are dropped and counted, never spooled.
    broker.kill();
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts2", "events2"), state.path()).unwrap();
    for i in 0..500 {
        sink.send_event(
            "1:ev",
            format!(r#"{{"event_type":"ot","n":{i}}}"#).as_bytes(),
        );
    }
    let c = sink.shutdown();
    assert_eq!(c.dropped_events, 500, "{c:?}");
    assert_eq!(
        (c.delivered, c.spooled, c.dropped_alerts),
        (0, 0, 0),
        "{c:?}"
    );
    assert!(spool_is_empty(&state.path().join("spool")));
}

fn spool_is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .all(|e| !e.file_name().to_string_lossy().ends_with(".seg"))
        })
        .unwrap_or(true)
}

/// Rough events throughput against the loopback broker (run by hand, preferably with
/// `--release`: `cargo test -p otwatch-sinks --release --test kafka_delivery -- --ignored`).
#[test]
#[ignore = "a measurement, not a check: run by hand"]
#[allow(clippy::print_stderr)] // the measurement is the output
fn events_throughput() {
    let Some(broker) = TestBroker::start_or_skip("events_throughput") else {
        return;
    };
    broker.create_topic("alerts7");
    broker.create_topic("events7");
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts7", "events7"), state.path()).unwrap();
    let ev = br#"{"schema":"otwatch/1","event_type":"ot","timestamp":"2026-11-20T14:22:10.330000Z","sensor":"s","flow":{"src_ip":"10.20.1.5","src_port":49152,"dst_ip":"10.30.1.10","dst_port":502,"transport":"tcp","community_id":"1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="},"direction":"to_server","protocol":"modbus","operation":"read","modbus":{"transaction_id":7,"unit_id":1,"function_code":3,"exception_code":null,"address":100,"quantity":2}}"#;
    let n: u64 = 1_000_000;
    let t = std::time::Instant::now();
    for i in 0..n {
        sink.send_event("1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", ev);
        // Pace the producer side at about 250 000/s so drops measure the sink, not a burst.
        if i % 2500 == 0 {
            while t.elapsed().as_secs_f64() < i as f64 / 250_000.0 {
                std::thread::yield_now();
            }
        }
    }
    let c = wait_for(&sink, Duration::from_secs(60), "events delivered", |c| {
        c.delivered + c.dropped_events >= n
    });
    let secs = t.elapsed().as_secs_f64();
    let c2 = sink.shutdown();
    eprintln!(
        "events: {n} sent in {secs:.2} s: {:.0}/s delivered, dropped {} ({c2:?})",
        c.delivered as f64 / secs,
        c.dropped_events
    );
}
