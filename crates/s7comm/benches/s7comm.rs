//! Parsing throughput of the S7comm dissector on a real polling capture
//! (`../shared/pcaps/s7comm/iti_s7comm_clean.pcap`, ITI/ICS-Security-Tools, CC-BY-4.0):
//! the TPKT frames are extracted once, then timed through the parsers alone and
//! through a flow (framing, COTP, decoding, pairing).
#![allow(clippy::print_stderr)] // The frame count and a skip are explained on stderr.

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use otwatch_event::Direction;
use otwatch_s7comm::parser::{parse_data_item, parse_item_spec};
use otwatch_s7comm::{parse_cotp, parse_s7_pdu, parse_tpkt, CotpPdu, S7Config, S7Flow};

const CAPTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/pcaps/s7comm/iti_s7comm_clean.pcap"
);

/// The TCP payloads of a classic pcap with Ethernet + IPv4 + TCP frames, with the
/// direction (to port 102 = ToServer).
fn tcp_payloads(bytes: &[u8]) -> Vec<(Direction, Vec<u8>)> {
    let le = match bytes.get(..4) {
        Some([0xd4, 0xc3, 0xb2, 0xa1]) => true,
        Some([0xa1, 0xb2, 0xc3, 0xd4]) => false,
        _ => panic!("not a classic pcap"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let incl = u32_at(bytes, off + 8) as usize;
        let frame = &bytes[off + 16..(off + 16 + incl).min(bytes.len())];
        off += 16 + incl;
        // Ethernet (no VLAN) / IPv4 / TCP.
        if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] || frame[23] != 6 {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
        let Some(tcp) = ip.get(ihl..total) else {
            continue;
        };
        if tcp.len() < 20 {
            continue;
        }
        let dst_port = u16::from_be_bytes([tcp[2], tcp[3]]);
        let doff = usize::from(tcp[12] >> 4) * 4;
        let Some(payload) = tcp.get(doff..) else {
            continue;
        };
        if !payload.is_empty() {
            let dir = if dst_port == 102 {
                Direction::ToServer
            } else {
                Direction::ToClient
            };
            out.push((dir, payload.to_vec()));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    if !Path::new(CAPTURE).is_file() {
        eprintln!("{CAPTURE} missing: benchmark skipped");
        return;
    }
    let bytes = std::fs::read(CAPTURE).unwrap();
    let segments = tcp_payloads(&bytes);
    // Whole TPKT frames, in capture order.
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for (_, seg) in &segments {
        let mut rest = &seg[..];
        while let Ok((r, t)) = parse_tpkt(rest, u16::MAX) {
            frames.push(rest[..usize::from(t.length)].to_vec());
            rest = r;
        }
    }
    let total: usize = frames.iter().map(Vec::len).sum();
    eprintln!("{} TPKT frames, {total} bytes", frames.len());

    let mut group = c.benchmark_group("s7comm");
    group.throughput(Throughput::Bytes(total as u64));
    // Parsing alone: TPKT, COTP, S7 header, then the request items of the parameter
    // and the data items, borrowed (no event built).
    group.bench_function("parse_frames", |b| {
        b.iter(|| {
            let mut n = 0u32;
            for f in &frames {
                let Ok((_, t)) = parse_tpkt(black_box(f), u16::MAX) else {
                    continue;
                };
                let Ok(c) = parse_cotp(t.payload) else {
                    continue;
                };
                let CotpPdu::Data { payload, .. } = c.pdu else {
                    continue;
                };
                let Ok(p) = parse_s7_pdu(payload) else {
                    continue;
                };
                n = n.wrapping_add(u32::from(p.header.pdu_ref));
                let mut items = p.param.get(2..).unwrap_or_default();
                while let Ok((r, spec)) = parse_item_spec(items) {
                    n = n.wrapping_add(spec.bit_address);
                    items = r;
                }
                let mut data = p.data;
                while let Ok((r, d)) = parse_data_item(data, false) {
                    n = n.wrapping_add(u32::from(d.return_code));
                    if r.len() == data.len() {
                        break;
                    }
                    data = r;
                }
            }
            n
        })
    });
    // The whole dissector as the flow layer drives it: events with items, pairing.
    let seg_bytes: usize = segments.iter().map(|(_, s)| s.len()).sum();
    group.throughput(Throughput::Bytes(seg_bytes as u64));
    group.bench_function("flow_events", |b| {
        let mut out = Vec::with_capacity(4);
        b.iter(|| {
            let mut flow = S7Flow::new(&S7Config::default());
            for (dir, seg) in &segments {
                flow.on_data(*dir, black_box(seg), &mut out);
                out.clear();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
