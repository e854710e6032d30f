//! The Kafka sink through broker outages (tansu on loopback): down from the start, killed
//! and restarted mid-stream, paused. Alerts are never lost: every alert reaches the
//! broker at least once (a memory broker forgets its messages when it restarts, so what
//! a consumer read is counted across both lifetimes).

mod kafka_common;

use std::collections::BTreeSet;
use std::time::Duration;

use kafka_common::{alert_json, alert_key, alert_number, assert_all_seen, config, ids, wait_for};
use otwatch_sinks::kafka::{KafkaConfig, KafkaSink};
use otwatch_sinks::testbroker::TestBroker;

#[test]
fn down_from_the_start_everything_is_spooled_then_sent_first_in_order() {
    let Some(mut broker) = TestBroker::start_or_skip(
        "down_from_the_start_everything_is_spooled_then_sent_first_in_order",
    ) else {
        return;
    };
    broker.kill();
    let state = tempfile::tempdir().unwrap();

    // Run 1: no broker at all. Every alert stays in the spool, none is lost.
    let sink = KafkaSink::start(config(&broker, "alerts3", "events3"), state.path()).unwrap();
    for i in 0..300 {
        // One key: one partition, so the topic's order is the send order.
        sink.send_alert("1:same-flow", alert_json(i).as_bytes());
    }
    let c = sink.shutdown();
    assert_eq!(
        (c.spooled, c.delivered, c.dropped_alerts),
        (300, 0, 0),
        "{c:?}"
    );
    assert!(c.spool_bytes > 300 * 100, "{c:?}");

    // Run 2: the broker is up. The spooled alerts go first, in order, then the new ones.
    broker.restart();
    broker.create_topic("alerts3");
    let sink = KafkaSink::start(config(&broker, "alerts3", "events3"), state.path()).unwrap();
    assert_eq!(
        sink.counters().spooled,
        300,
        "the spool survived the restart"
    );
    for i in 300..400 {
        sink.send_alert("1:same-flow", alert_json(i).as_bytes());
    }
    wait_for(&sink, Duration::from_secs(30), "the spool drained", |c| {
        c.spooled == 0 && c.alerts_delivered >= 400
    });
    let c = sink.shutdown();
    assert_eq!((c.spooled, c.dropped_alerts), (0, 0), "{c:?}");

    let got = broker
        .consumer("alerts3")
        .read(400, Duration::from_secs(20));
    let order: Vec<usize> = got.iter().map(alert_number).collect();
    assert_eq!(
        order,
        (0..400).collect::<Vec<_>>(),
        "spooled first, all in order"
    );
    assert!(got
        .iter()
        .all(|m| m.key.as_deref() == Some(&b"1:same-flow"[..])));
}

#[test]
fn broker_killed_mid_stream_and_restarted_loses_nothing() {
    let Some(mut broker) =
        TestBroker::start_or_skip("broker_killed_mid_stream_and_restarted_loses_nothing")
    else {
        return;
    };
    broker.create_topic("alerts4");
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts4", "events4"), state.path()).unwrap();

    // First lifetime: 0..500 delivered; a consumer reads them before the broker dies
    // (a memory broker forgets everything when killed).
    for i in 0..500 {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
    }
    wait_for(
        &sink,
        Duration::from_secs(30),
        "first half delivered",
        |c| c.alerts_delivered >= 500 && c.spooled == 0,
    );
    let before = broker
        .consumer("alerts4")
        .read(500, Duration::from_secs(20));
    let mut seen: BTreeSet<usize> = ids(&before);
    assert_eq!(seen.len(), 500);

    // Killed while the sensor keeps sending: the producer had a connection, sequence
    // numbers and an idempotent producer id; 500..1000 go to the spool meanwhile.
    broker.kill();
    for i in 500..1000 {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
        if i % 100 == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let c = sink.counters();
    assert!(
        c.spooled >= 1,
        "alerts wait in the spool while the broker is down: {c:?}"
    );

    // Second lifetime: empty broker; the topic must be recreated.
    broker.restart();
    broker.create_topic("alerts4");
    let c = wait_for(&sink, Duration::from_secs(60), "the spool drained", |c| {
        c.spooled == 0
    });
    let c2 = sink.shutdown();
    assert_eq!(c2.dropped_alerts, 0, "{c:?}");
    assert!(
        c2.producer_rebuilds >= 1,
        "the restarted broker forgot the producer id: a new producer is needed: {c2:?}"
    );
    let after = broker
        .consumer("alerts4")
        .read_all(Duration::from_secs(2), Duration::from_secs(30));
    seen.extend(ids(&after));
    assert_all_seen(&seen, 1000, "killed and restarted");
}

#[test]
fn broker_paused_and_resumed_loses_nothing() {
    let Some(broker) = TestBroker::start_or_skip("broker_paused_and_resumed_loses_nothing") else {
        return;
    };
    broker.create_topic("alerts5");
    let state = tempfile::tempdir().unwrap();
    let sink = KafkaSink::start(config(&broker, "alerts5", "events5"), state.path()).unwrap();
    for i in 0..300 {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
    }
    wait_for(
        &sink,
        Duration::from_secs(30),
        "first part delivered",
        |c| c.alerts_delivered >= 300,
    );

    // SIGSTOP: connections stay open but nothing answers. The sink must not block and
    // must keep every alert.
    broker.pause();
    let t = std::time::Instant::now();
    for i in 300..800 {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
        sink.send_event("1:ev", b"{\"event_type\":\"ot\"}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "sending blocked on a paused broker"
    );
    std::thread::sleep(Duration::from_secs(3));
    let c = sink.counters();
    assert!(
        c.spooled > 0,
        "nothing can be acknowledged while paused: {c:?}"
    );
    broker.resume();

    wait_for(&sink, Duration::from_secs(60), "the spool drained", |c| {
        c.spooled == 0
    });
    let c = sink.shutdown();
    assert_eq!(c.dropped_alerts, 0, "{c:?}");
    let got = broker
        .consumer("alerts5")
        .read_all(Duration::from_secs(2), Duration::from_secs(30));
    assert_all_seen(&ids(&got), 800, "paused and resumed");
}

#[test]
fn a_full_spool_drops_alerts_and_counts_them() {
    // No broker needed: nothing listens on port 1.
    let state = tempfile::tempdir().unwrap();
    let mut spool = otwatch_sinks::SpoolConfig::new(state.path().join("spool"));
    spool.segment_bytes = 4096;
    spool.max_bytes = 8192;
    let sink = KafkaSink::start_with_spool(KafkaConfig::new("127.0.0.1:1"), spool).unwrap();
    let one = alert_json(0).len() + 8 + 12 + alert_key(0).len();
    let n = 200;
    for i in 0..n {
        sink.send_alert(&alert_key(i), alert_json(i).as_bytes());
    }
    let c = sink.shutdown();
    assert!(c.dropped_alerts > 0, "{c:?}");
    assert_eq!(c.spooled + c.dropped_alerts, n as u64, "{c:?}");
    assert!(c.spooled as usize * one <= 8192, "{c:?}");
}
