//! Throughput of the DNP3 dissector (link CRCs, transport reassembly, application
//! parsing) over the TCP payload of a real capture, driven as the flow layer drives
//! it: each direction's segments in order, the unconsumed tail kept.
//!
//! The capture is CISA's `icsnpp_dnp3_example.pcap` from the shared public captures
//! (beside the checkout); the bench is skipped when it is absent.
#![allow(clippy::print_stderr)] // The input's size and PDU count are reported.

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use otwatch_dnp3::{Dnp3Config, Dnp3Flow, Framing};
use otwatch_event::Direction;

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/pcaps/dnp3/icsnpp_dnp3_example.pcap"
);

/// One TCP connection: its segments, in capture order, with their direction.
type Conn = Vec<(Direction, Vec<u8>)>;

fn u16be(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32be(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The TCP payloads to or from port 20000 of a little-endian classic pcap with an
/// Ethernet link type (IPv4, no options beyond IHL), grouped by connection;
/// retransmitted segments (sequence number already seen) are left out.
fn connections(pcap: &[u8]) -> Vec<Conn> {
    let mut conns: BTreeMap<(u32, u16, u32, u16), Conn> = BTreeMap::new();
    let mut next_seq: BTreeMap<(u32, u16, u32, u16), u32> = BTreeMap::new();
    let mut off = 24;
    while let Some(rec) = pcap.get(off..off + 16) {
        let incl = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        let Some(frame) = pcap.get(off + 16..off + 16 + incl) else {
            break;
        };
        off += 16 + incl;
        let mut l3 = 14;
        if u16be(frame, 12) == Some(0x8100) {
            l3 += 4;
        }
        let Some(ip) = frame.get(l3..) else { continue };
        if ip.first().map(|b| b >> 4) != Some(4) || ip.get(9) != Some(&6) {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        let total = usize::from(u16be(ip, 2).unwrap_or(0));
        let (Some(src), Some(dst)) = (u32be(ip, 12), u32be(ip, 16)) else {
            continue;
        };
        let Some(tcp) = ip.get(ihl..total.min(ip.len())) else {
            continue;
        };
        let (sp, dp, seq) = (
            u16be(tcp, 0).unwrap(),
            u16be(tcp, 2).unwrap(),
            u32be(tcp, 4).unwrap(),
        );
        let doff = usize::from(tcp[12] >> 4) * 4;
        let payload = &tcp[doff.min(tcp.len())..];
        if payload.is_empty() || (sp != 20000 && dp != 20000) {
            continue;
        }
        let key = (src, sp, dst, dp);
        let expected = next_seq.entry(key).or_insert(seq);
        if seq != *expected {
            continue;
        }
        *expected = seq.wrapping_add(payload.len() as u32);
        let (conn, dir) = if dp == 20000 {
            ((src, sp, dst, dp), Direction::ToServer)
        } else {
            ((dst, dp, src, sp), Direction::ToClient)
        };
        conns.entry(conn).or_default().push((dir, payload.to_vec()));
    }
    conns.into_values().collect()
}

/// Runs every connection through a fresh flow; returns the PDUs emitted.
fn run(conns: &[Conn], config: &Dnp3Config) -> usize {
    let mut pdus = 0;
    let mut out = Vec::with_capacity(8);
    for conn in conns {
        let mut flow = Dnp3Flow::new(config, Framing::Stream);
        let mut tails: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        for (dir, seg) in conn {
            let tail = &mut tails[dir.index()];
            if tail.is_empty() {
                let n = flow.on_data(*dir, black_box(seg), &mut out);
                tail.extend_from_slice(&seg[n..]);
            } else {
                tail.extend_from_slice(seg);
                let n = flow.on_data(*dir, black_box(tail), &mut out);
                tail.drain(..n);
            }
            pdus += out.len();
            out.clear();
        }
    }
    pdus
}

fn bench(c: &mut Criterion) {
    let Ok(pcap) = std::fs::read(Path::new(CAPTURE)) else {
        eprintln!("{CAPTURE} not found: bench skipped");
        return;
    };
    let conns = connections(&pcap);
    let bytes: usize = conns.iter().flatten().map(|(_, s)| s.len()).sum();
    let config = Dnp3Config::default();
    let pdus = run(&conns, &config);
    eprintln!(
        "dnp3 bench input: {} connections, {} payload bytes, {} PDUs",
        conns.len(),
        bytes,
        pdus
    );
    let mut group = c.benchmark_group("dnp3");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("icsnpp_dnp3_example", |b| b.iter(|| run(&conns, &config)));
    // Framing, CRCs, reassembly and every object header, without building points (the
    // capture's responses carry 19,352 of them: most of the work above).
    let no_points = Dnp3Config {
        max_points: 0,
        ..Dnp3Config::default()
    };
    group.bench_function("icsnpp_dnp3_example_no_points", |b| {
        b.iter(|| run(&conns, &no_points))
    });
    group.finish();
    // The same work, counted per PDU.
    let mut group = c.benchmark_group("dnp3_per_pdu");
    group.throughput(Throughput::Elements(pdus as u64));
    group.bench_function("icsnpp_dnp3_example", |b| b.iter(|| run(&conns, &config)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
