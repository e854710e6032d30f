//! Fuzzes the OPC UA binary dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low bits pick the bounds (inline chunk
//! size, chunks per message, outstanding requests) and the chunk sizes, bit 7 asks for
//! a gap when a chunk starts with 0xFF. The rest is cut into chunks whose sizes come
//! from the input itself and fed alternately (by the parity of each chunk's first
//! byte) to both directions of one `OpcuaFlow`, each direction keeping its unconsumed
//! tail as the flow layer does. Silent; checks the `on_data` contract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otwatch_event::{Direction, Pdu};
use otwatch_opcua::{parse_ua_chunk, probe, OpcuaConfig, OpcuaFlow};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_ua_chunk(data, 1 << 20);

    let Some((&control, mut rest)) = data.split_first() else {
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
    // A handler may hold back at most one inline chunk.
    let max_stall_tail = config.max_inline_chunk.max(64);
    let mut flow = OpcuaFlow::new(&config);
    let mut out: Vec<Pdu> = Vec::new();
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let unit = usize::from((control >> 5) & 0x03) + 1;

    while let Some((&first, _)) = rest.split_first() {
        // Chunk length 1..=256 * unit, taken from the chunk's own first byte.
        let len = (usize::from(first) * unit + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let dir = if first & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        let buf = &mut bufs[dir.index()];
        if control & 0x80 != 0 && first == 0xFF {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        buf.extend_from_slice(chunk);
        let n = flow.on_data(dir, buf, &mut out);
        assert!(n <= buf.len(), "consumed more than offered");
        assert!(
            n > 0 || buf.len() <= max_stall_tail,
            "no progress on {} bytes",
            buf.len()
        );
        buf.drain(..n);
        if buf.len() > FLOW_BUFFER_BOUND {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        out.clear();
    }
    flow.on_end(&mut out);
});
