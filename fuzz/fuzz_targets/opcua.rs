//! Fuzzes the OPC UA binary dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low bits pick the bounds (inline chunk
//! size, chunks per message, outstanding requests), bits 5-6 the chunk size unit, bit
//! 7 asks for a gap when a chunk starts with 0xFF. The rest is fed to both directions
//! of one `OpcuaFlow` by the shared driver (`common::feed_stream`). Also runs the pure
//! parser on the whole input. Silent; checks the `on_data` contract.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use otwatch_opcua::{parse_ua_chunk, probe, OpcuaConfig, OpcuaFlow};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 64 * 1024;

common::dissector!(OpcuaFlow, acked_beyond);

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_ua_chunk(data, 1 << 20);

    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let config = OpcuaConfig {
        max_inline_chunk: 64 << (control & 0x07),
        max_chunks_per_message: usize::from((control >> 3) & 0x03) + 1,
        max_message_bytes: 4096,
        max_outstanding: usize::from(control & 0x0F) + 1,
        max_nodes: 16,
        max_resync_scan: 64,
        ..OpcuaConfig::default()
    };
    let stream = common::Stream {
        unit: common::chunk_unit(control >> 5),
        gap_on_ff: control & 0x80 != 0,
        // A handler may hold back at most one inline chunk.
        max_stall_tail: config.max_inline_chunk.max(64),
        buffer_bound: FLOW_BUFFER_BOUND,
    };
    let mut flow = OpcuaFlow::new(&config);
    if common::mid_stream(rest) {
        flow = flow.joined_mid_stream();
    }
    common::feed_stream(&mut flow, rest, &stream, |_| {});
});
