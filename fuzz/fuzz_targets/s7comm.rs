//! Fuzzes the S7comm / S7comm-plus dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low nibble picks the outstanding-job
//! bound, bits 4-5 the chunk size unit, bit 6 a small TSDU bound (so that the
//! reassembly bound is reached), bit 7 asks for a gap when a chunk starts with 0xFF.
//! The rest is fed to both directions of one `S7Flow` by the shared driver
//! (`common::feed_stream`). Also runs the pure parsers on the whole input. Silent;
//! checks the `on_data` contract and the outstanding-job bound.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use otwatch_s7comm::{parse_cotp, parse_s7_pdu, parse_tpkt, probe, S7Config, S7Flow};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 64 * 1024;

common::dissector!(S7Flow, acked_beyond);

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    if let Ok((_, t)) = parse_tpkt(data, u16::MAX) {
        let _ = parse_cotp(t.payload);
    }
    let _ = parse_s7_pdu(data);

    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let config = S7Config {
        max_outstanding: usize::from(control & 0x0F) + 1,
        max_resync_scan: 64,
        max_tsdu_len: if control & 0x40 != 0 { 64 } else { 65536 },
        ..S7Config::default()
    };
    let stream = common::Stream {
        unit: common::chunk_unit(control >> 4),
        gap_on_ff: control & 0x80 != 0,
        // The longest tail a handler may leave while consuming nothing: one TPKT.
        max_stall_tail: usize::from(config.max_tpkt_len),
        buffer_bound: FLOW_BUFFER_BOUND,
    };
    let mut flow = S7Flow::new(&config);
    if common::mid_stream(rest) {
        flow = flow.joined_mid_stream();
    }
    common::feed_stream(&mut flow, rest, &stream, |flow| {
        // The bound holds per direction of the jobs.
        assert!(flow.outstanding() <= 2 * config.max_outstanding);
    });
});
