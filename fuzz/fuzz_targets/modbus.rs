//! Fuzzes the Modbus/TCP dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low nibble picks the outstanding-request
//! bound, bits 4-5 the chunk size unit, bit 7 asks for a gap when a chunk starts with
//! 0xFF. The rest is fed to both directions of one `ModbusFlow` by the shared driver
//! (`common::feed_stream`). Also runs the pure parsers on the whole input. Silent;
//! checks the `on_data` contract.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use otwatch_modbus::{parse_modbus_adu, probe, ModbusConfig, ModbusFlow};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 4096;
/// The longest tail a handler may leave while consuming nothing: one ADU (260 bytes)
/// plus the 7 visible bytes of the next header.
const MAX_STALL_TAIL: usize = 267;

common::dissector!(ModbusFlow, acked_beyond);

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_modbus_adu(data);

    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let config = ModbusConfig {
        max_outstanding: usize::from(control & 0x0F) + 1,
        max_resync_scan: 64,
    };
    let stream = common::Stream {
        unit: common::chunk_unit(control >> 4),
        gap_on_ff: control & 0x80 != 0,
        max_stall_tail: MAX_STALL_TAIL,
        buffer_bound: FLOW_BUFFER_BOUND,
    };
    let mut flow = ModbusFlow::new(&config);
    if common::mid_stream(rest) {
        flow = flow.joined_mid_stream();
    }
    common::feed_stream(&mut flow, rest, &stream, |_| {});
});
