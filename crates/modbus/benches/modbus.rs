//! Throughput of the Modbus/TCP dissector on a typical polling mix, driven as the flow
//! layer drives it.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use otwatch_event::Direction;
use otwatch_modbus::{ModbusConfig, ModbusFlow};

/// An MBAP header (transaction id, protocol id 0, length, unit id 1) and the PDU.
fn adu(tid: u16, pdu: &[u8]) -> Vec<u8> {
    let mut v = tid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    v.push(1);
    v.extend_from_slice(pdu);
    v
}

/// Request/response pairs: read 10 holding registers, read 16 coils, write 2
/// registers, in rotation.
fn exchanges(n: u16) -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|tid| match tid % 3 {
            0 => {
                let mut resp = vec![0x03, 20];
                resp.extend((0..10u16).flat_map(|r| (r * 100).to_be_bytes()));
                (adu(tid, &[0x03, 0x00, 0x64, 0x00, 0x0A]), adu(tid, &resp))
            }
            1 => (
                adu(tid, &[0x01, 0x00, 0x00, 0x00, 0x10]),
                adu(tid, &[0x01, 0x02, 0xCD, 0x6B]),
            ),
            _ => (
                adu(
                    tid,
                    &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02],
                ),
                adu(tid, &[0x10, 0x00, 0x01, 0x00, 0x02]),
            ),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let pairs = exchanges(3000);
    let bytes: usize = pairs.iter().map(|(q, r)| q.len() + r.len()).sum();
    let mut group = c.benchmark_group("modbus");
    group.throughput(Throughput::Bytes(bytes as u64));

    // One ADU per call, request then response: a poller on a quiet network.
    group.bench_function("one_adu_per_call", |b| {
        let mut out = Vec::with_capacity(2);
        b.iter(|| {
            let mut flow = ModbusFlow::new(&ModbusConfig::default());
            for (q, r) in &pairs {
                flow.on_data(Direction::ToServer, black_box(q), &mut out);
                flow.on_data(Direction::ToClient, black_box(r), &mut out);
                out.clear();
            }
        })
    });

    // 32 pipelined requests per call, then their 32 responses.
    let batches: Vec<(Vec<u8>, Vec<u8>)> = pairs
        .chunks(32)
        .map(|c| {
            (
                c.iter().flat_map(|(q, _)| q.iter().copied()).collect(),
                c.iter().flat_map(|(_, r)| r.iter().copied()).collect(),
            )
        })
        .collect();
    group.bench_function("pipelined_32", |b| {
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            let mut flow = ModbusFlow::new(&ModbusConfig::default());
            for (q, r) in &batches {
                flow.on_data(Direction::ToServer, black_box(q), &mut out);
                flow.on_data(Direction::ToClient, black_box(r), &mut out);
                out.clear();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
