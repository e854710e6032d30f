//! Fuzzes the DNP3 dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low nibble picks the outstanding and
//! reassembly bounds, bits 4-5 the chunk size unit, bit 6 datagram framing (each chunk
//! a UDP datagram) and a small fragment bound, bit 7 asks for a gap when a chunk starts
//! with 0xFF. The rest is cut into chunks by the shared driver (`common::chunks`) and
//! fed to both directions of one `Dnp3Flow`: whole, as datagrams, or as a stream by
//! `common::feed_stream`. Also runs the pure parsers on the whole input. Silent;
//! checks the `on_data` contract and the flow's bounds.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use otwatch_dnp3::{
    parse_app_header, parse_link_frame, parse_object_header, probe, Dnp3Config, Dnp3Flow, Framing,
};
use otwatch_event::Pdu;

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 4096;
/// The longest tail a stream flow may leave while consuming nothing: one byte short of
/// the longest frame (292 bytes), which it would consume.
const MAX_STALL_TAIL: usize = 291;

common::dissector!(Dnp3Flow);

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_link_frame(data);
    let _ = parse_app_header(data);
    let _ = parse_object_header(data);

    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let datagrams = control & 0x40 != 0;
    let config = Dnp3Config {
        max_outstanding: usize::from(control & 0x0F) + 1,
        max_reassemblies: usize::from(control & 0x03) + 1,
        max_fragment: if datagrams { 300 } else { 8 * 1024 },
        max_resync_scan: 64,
        max_points: 64,
    };
    let unit = common::chunk_unit(control >> 4);

    if datagrams {
        let mut flow = Dnp3Flow::new(&config, Framing::Datagram);
        let mut out: Vec<Pdu> = Vec::new();
        for (dir, chunk) in common::chunks(rest, unit) {
            let n = flow.on_data(dir, chunk, &mut out);
            assert_eq!(n, chunk.len(), "a datagram is consumed whole");
            out.clear();
        }
        flow.on_end(&mut out);
        return;
    }

    let stream = common::Stream {
        unit,
        gap_on_ff: control & 0x80 != 0,
        max_stall_tail: MAX_STALL_TAIL,
        buffer_bound: FLOW_BUFFER_BOUND,
    };
    let mut flow = Dnp3Flow::new(&config, Framing::Stream);
    if common::mid_stream(rest) {
        flow = flow.joined_mid_stream();
    }
    common::feed_stream(&mut flow, rest, &stream, |flow| {
        assert!(flow.outstanding() <= config.max_outstanding);
        assert!(flow.reassembling() <= config.max_reassemblies);
    });
});
