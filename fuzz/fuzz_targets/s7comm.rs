//! Fuzzes the S7comm / S7comm-plus dissector the way the flow layer drives it.
//!
//! The first input byte is a control byte: its low nibble picks the outstanding-job
//! bound, bits 4-5 the chunk size unit, bit 6 a small TSDU bound (so that the
//! reassembly bound is reached), bit 7 asks for a gap when a chunk starts with 0xFF.
//! The rest is cut into chunks whose sizes come from the input itself and fed
//! alternately (by the parity of each chunk's first byte) to both directions of one
//! `S7Flow`, each direction keeping its unconsumed tail as the flow layer does.
//! Silent; checks the `on_data` contract.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otwatch_event::{Direction, Pdu};
use otwatch_s7comm::{parse_cotp, parse_s7_pdu, parse_tpkt, probe, S7Config, S7Flow};

/// What the flow layer would buffer per direction before declaring a gap.
const FLOW_BUFFER_BOUND: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let _ = probe(data);
    if let Ok((_, t)) = parse_tpkt(data, u16::MAX) {
        let _ = parse_cotp(t.payload);
    }
    let _ = parse_s7_pdu(data);

    let Some((&control, mut rest)) = data.split_first() else {
        return;
    };
    let config = S7Config {
        max_outstanding: usize::from(control & 0x0F) + 1,
        max_resync_scan: 64,
        max_tsdu_len: if control & 0x40 != 0 { 64 } else { 65536 },
        ..S7Config::default()
    };
    // The longest tail a handler may leave while consuming nothing: one TPKT.
    let max_stall_tail = usize::from(config.max_tpkt_len);
    let mut flow = S7Flow::new(&config);
    let mut out: Vec<Pdu> = Vec::new();
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let unit = usize::from((control >> 4) & 0x03) + 1;

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
        assert!(flow.outstanding() <= config.max_outstanding);
        out.clear();
    }
    flow.on_end(&mut out);
});
