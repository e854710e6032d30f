//! Loading a large policy: 10,000 assets, 1,000 setpoints, 100 zones (target: it must load
//! in under a second), and the per-event lookups the engine makes against it.
//!
//! Run: `cargo bench -p otwatch-rules --bench policy_load`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use otwatch_rules::policy::scaled_demo_text;
use otwatch_rules::{parse_str, ConduitProtocol};

fn load(c: &mut Criterion) {
    let text = scaled_demo_text(100, 10_000, 1_000);
    let mut g = c.benchmark_group("policy_load");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("parse_str/10k_assets_1k_setpoints_100_zones", |b| {
        b.iter(|| parse_str(black_box(&text), Path::new("bench.toml")))
    });
    g.finish();
}

fn lookups(c: &mut Criterion) {
    let policy = parse_str(
        &scaled_demo_text(100, 10_000, 1_000),
        Path::new("bench.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // A mix of declared assets, undeclared addresses in zones, and addresses in none.
    let ips: Vec<IpAddr> = (0..1024u32)
        .map(|i| match i % 4 {
            0 => IpAddr::V4(Ipv4Addr::new(10, 30, 1, 10)),
            1 => IpAddr::V4(Ipv4Addr::from(0x0A80_0000 + (i % 100) * 4096 + 1 + i % 90)),
            2 => IpAddr::V4(Ipv4Addr::new(10, 0, 5, (i % 250) as u8)),
            _ => IpAddr::V4(Ipv4Addr::new(192, 168, 0, (i % 250) as u8)),
        })
        .collect();
    let modbus = ConduitProtocol::Dissector("modbus".into());
    let mut g = c.benchmark_group("policy_lookup");
    g.throughput(Throughput::Elements(ips.len() as u64));
    g.bench_function("zone_of+asset_by_ip+conduit_allows", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for ip in &ips {
                let zone = policy.zone_of(black_box(*ip));
                n += usize::from(policy.asset_by_ip(*ip).is_some());
                n += usize::from(policy.conduit_allows(zone, "cell-1", &modbus));
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, load, lookups);
criterion_main!(benches);
