//! Fuzzes the DNP3 dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low nibble picks the outstanding and
//! reassembly bounds, bits 4-5 the chunk size unit, bit 6 datagram framing (each chunk
//! a UDP datagram) and a small fragment bound, bit 7 asks for a gap when a chunk starts
//! with 0xFF. The rest is cut into chunks whose sizes come from the input itself and
//! fed alternately (by the parity of each chunk's first byte) to both directions of
//! one `Dnp3Flow`, each direction keeping its unconsumed tail as the flow layer does.
//! Also runs the pure parsers on the whole input. Silent; checks the `on_data`
//! contract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otwatch_dnp3::{
    parse_app_header, parse_link_frame, parse_object_header, probe, Dnp3Config, Dnp3Flow, Framing,
};
use otwatch_event::{Direction, Pdu};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 4096;
/// The longest tail a stream flow may leave while consuming nothing: one frame.
const MAX_STALL_TAIL: usize = 292;

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    let _ = parse_link_frame(data);
    let _ = parse_app_header(data);
    let _ = parse_object_header(data);

    let Some((&control, mut rest)) = data.split_first() else {
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
    let framing = if datagrams {
        Framing::Datagram
    } else {
        Framing::Stream
    };
    let mut flow = Dnp3Flow::new(&config, framing);
    let mut out: Vec<Pdu> = Vec::new();
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let unit = usize::from((control >> 4) & 0x03) + 1;

    while let Some((&first, _)) = rest.split_first() {
        let len = (usize::from(first) * unit + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let dir = if first & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        if datagrams {
            let n = flow.on_data(dir, chunk, &mut out);
            assert_eq!(n, chunk.len(), "a datagram is consumed whole");
            out.clear();
            continue;
        }
        let buf = &mut bufs[dir.index()];
        if control & 0x80 != 0 && first == 0xFF {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        buf.extend_from_slice(chunk);
        let n = flow.on_data(dir, buf, &mut out);
        assert!(n <= buf.len(), "consumed more than offered");
        assert!(
            n > 0 || buf.len() < MAX_STALL_TAIL,
            "no progress on {} bytes",
            buf.len()
        );
        buf.drain(..n);
        if buf.len() > FLOW_BUFFER_BOUND {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        assert!(flow.outstanding() <= config.max_outstanding);
        assert!(flow.reassembling() <= config.max_reassemblies);
        out.clear();
    }
    flow.on_end(&mut out);
});
