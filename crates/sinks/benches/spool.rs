//! Throughput of the spool: appending alerts (with the default fsync batching) and
//! draining them as the Kafka sink does (read a batch, acknowledge it).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use otwatch_sinks::{RecordId, Spool, SpoolConfig};

/// A typical alert: a community id key and a JSON value of about 600 bytes.
fn alert(i: u64) -> (Vec<u8>, Vec<u8>) {
    let key = format!("1:{:028}=", i % 97).into_bytes();
    let value = format!(
        "{{\"schema\":\"otwatch/1\",\"event_type\":\"alert\",\"timestamp\":\"2026-11-20T14:22:10.330000Z\",\
         \"alert\":{{\"id\":\"{i:016x}\",\"kind\":\"unauthorized_write\",\"severity\":\"high\",\
         \"message\":\"write to a critical setpoint from a host that is not allowed to write it\"}},\
         \"flow\":{{\"src_ip\":\"10.20.1.5\",\"src_port\":49152,\"dst_ip\":\"10.30.1.10\",\"dst_port\":502,\
         \"transport\":\"tcp\",\"community_id\":\"1:{:028}=\",\"src_zone\":\"engineering\",\"dst_zone\":\"cell-1\"}},\
         \"protocol\":\"modbus\",\"operation\":\"write\",\"modbus\":{{\"transaction_id\":7,\"unit_id\":1,\
         \"function_code\":16,\"address\":100,\"quantity\":2,\"values\":[72,73]}}}}",
        i % 97
    )
    .into_bytes();
    (key, value)
}

const N: u64 = 2_000;

fn bench(c: &mut Criterion) {
    let alerts: Vec<_> = (0..N).map(alert).collect();
    let bytes: u64 = alerts.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let mut group = c.benchmark_group("spool");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);

    group.bench_function("append", |b| {
        b.iter_batched(
            || tempfile::tempdir().expect("tempdir"),
            |dir| {
                let mut spool = Spool::open(SpoolConfig::new(dir.path())).expect("open");
                for (k, v) in &alerts {
                    spool.append(k, v).expect("append");
                }
                spool.sync().expect("sync");
                dir
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("drain", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let mut spool = Spool::open(SpoolConfig::new(dir.path())).expect("open");
                for (k, v) in &alerts {
                    spool.append(k, v).expect("append");
                }
                (dir, spool)
            },
            |(dir, mut spool)| {
                let mut after: Option<RecordId> = None;
                loop {
                    let batch = spool.pending(after, 256).expect("pending");
                    let Some(last) = batch.last() else { break };
                    after = Some(last.id);
                    spool.ack_through(last.id).expect("ack");
                }
                assert!(spool.is_empty());
                (dir, spool)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
