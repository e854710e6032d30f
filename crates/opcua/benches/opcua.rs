//! Throughput of the OPC UA dissector on the TCP payload of a real capture
//! (`../shared/pcaps/opcua/icsnpp_open62541_read_service_test_data.pcap`: a session,
//! then 86 Read requests and responses over many data types), driven as the flow layer
//! drives it: segment by segment, each direction keeping its unconsumed tail.
//!
//! Reports MB/s (criterion's `Throughput::Bytes`) and, on stderr, ns per message.
#![allow(clippy::print_stderr, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Instant;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use otwatch_event::Direction;
use otwatch_opcua::{OpcuaConfig, OpcuaFlow, OPCUA_PORT};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/pcaps/opcua/icsnpp_open62541_read_service_test_data.pcap"
);

/// One TCP segment's payload: its flow (by client port), direction, bytes.
type Segment = (usize, Direction, Vec<u8>);

/// The TCP payloads of a classic little-endian pcap with the BSD loopback link type
/// (a 4-byte address family, then IPv4 or IPv6). Enough for this one capture.
fn segments(pcap: &[u8]) -> Vec<Segment> {
    let u32_at = |o: usize| u32::from_le_bytes(pcap[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(
        &pcap[..4],
        &[0xD4, 0xC3, 0xB2, 0xA1],
        "little-endian classic pcap"
    );
    assert_eq!(u32_at(20), 0, "link type null (BSD loopback)");
    let mut flows: HashMap<u16, usize> = HashMap::new();
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= pcap.len() {
        let caplen = u32_at(off + 8);
        let frame = &pcap[off + 16..off + 16 + caplen];
        off += 16 + caplen;
        let ip = &frame[4..];
        let (proto, l4) = match ip[0] >> 4 {
            4 => (ip[9], &ip[usize::from(ip[0] & 0x0F) * 4..]),
            6 => (ip[6], &ip[40..]),
            _ => continue,
        };
        if proto != 6 {
            continue;
        }
        let sport = u16::from_be_bytes([l4[0], l4[1]]);
        let dport = u16::from_be_bytes([l4[2], l4[3]]);
        let payload = &l4[usize::from(l4[12] >> 4) * 4..];
        if payload.is_empty() {
            continue;
        }
        let (client, dir) = if dport == OPCUA_PORT {
            (sport, Direction::ToServer)
        } else {
            (dport, Direction::ToClient)
        };
        let n = flows.len();
        let flow = *flows.entry(client).or_insert(n);
        out.push((flow, dir, payload.to_vec()));
    }
    out
}

/// Feeds every segment; returns the number of messages (events).
fn run(segs: &[Segment], flows: usize) -> usize {
    let config = OpcuaConfig::default();
    let mut state: Vec<(OpcuaFlow, [Vec<u8>; 2])> = (0..flows)
        .map(|_| (OpcuaFlow::new(&config), [Vec::new(), Vec::new()]))
        .collect();
    let mut out = Vec::with_capacity(16);
    let mut events = 0;
    for (flow, dir, payload) in segs {
        let (f, bufs) = &mut state[*flow];
        let buf = &mut bufs[dir.index()];
        if buf.is_empty() {
            // In-order data straight from the segment, as the flow layer does.
            let n = f.on_data(*dir, black_box(payload), &mut out);
            buf.extend_from_slice(&payload[n..]);
        } else {
            buf.extend_from_slice(payload);
            let n = f.on_data(*dir, black_box(buf), &mut out);
            buf.drain(..n);
        }
        events += out.len();
        out.clear();
    }
    events
}

fn bench(c: &mut Criterion) {
    let Ok(pcap) = std::fs::read(CAPTURE) else {
        eprintln!("{CAPTURE} missing: bench skipped");
        return;
    };
    let segs = segments(&pcap);
    let flows = segs.iter().map(|s| s.0 + 1).max().unwrap_or(0);
    let bytes: usize = segs.iter().map(|s| s.2.len()).sum();
    let messages = run(&segs, flows);
    assert!(messages > 170, "{messages} messages");

    // ns per message, from a fixed number of passes.
    let passes = 2000;
    let t = Instant::now();
    for _ in 0..passes {
        black_box(run(&segs, flows));
    }
    let ns = t.elapsed().as_nanos() as f64 / (passes * messages) as f64;
    eprintln!(
        "opcua: {bytes} payload bytes, {messages} messages, {} segments: {ns:.0} ns/message, {:.0} MB/s",
        segs.len(),
        bytes as f64 / ns / messages as f64 * 1e3
    );

    let mut group = c.benchmark_group("opcua");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("read_service_capture", |b| b.iter(|| run(&segs, flows)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
