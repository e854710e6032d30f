//! S7comm and S7comm-plus dissector for otwatch (Siemens S7 over ISO-on-TCP, TCP 102).
//!
//! # Layout
//!
//! * [`parser`]: pure nom parsers. [`parse_tpkt`] frames one TPKT (RFC 1006) with
//!   *streaming* parsers; [`parse_cotp`] (ISO 8073 class 0), [`parse_s7_pdu`] and the
//!   item, data-item, userdata and S7comm-plus parsers are *complete* inside it.
//!   Outputs borrow the input.
//! * [`codes`]: open newtypes for ROSCTR, functions, areas, transport sizes, userdata
//!   groups and subfunctions, S7comm-plus functions. Undefined values parse and travel
//!   on; they are reported, never rejected.
//! * `decode`: turns a framed PDU into the event's `s7comm` / `s7comm_plus` block,
//!   its normalized [`otwatch_event::Operation`] and its [`otwatch_event::Anomalies`].
//! * [`state`]: [`S7Flow`], the per-flow state the flow layer drives: TPKT framing and
//!   resynchronisation, COTP DT reassembly (bounded), the connection's TSAPs, job /
//!   ack_data pairing by pdu_ref, S7comm-plus fragments.
//!
//! # Guarantees
//!
//! * **No panics on packet data.** `unsafe` is forbidden, and outside tests the crate
//!   denies `unwrap`, `expect`, `panic!` and slice indexing. The fuzz target
//!   (`fuzz/fuzz_targets/s7comm.rs`) feeds arbitrary bytes, split arbitrarily, to both
//!   directions of a flow.
//! * **Bounded.** A TPKT is at most [`S7Config::max_tpkt_len`] bytes (the caller keeps
//!   at most one TPKT), a reassembled TSDU at most [`S7Config::max_tsdu_len`],
//!   outstanding jobs at most [`S7Config::max_outstanding`]; a resynchronisation scan
//!   examines at most [`S7Config::max_resync_scan`] offsets per call; item loops are
//!   bounded by the bytes of the PDU (not by the count it claims). Every loop consumes
//!   input on each turn.
//!
//! # Roles and pairing
//!
//! `ToServer` bytes come from the side that opened the connection (PG / HMI),
//! `ToClient` bytes from the PLC; every PDU of the PLC is `is_response`, including the
//! download-block *jobs* it sends during a download. A job leaves its function, items,
//! block and PI service in a per-flow table; an ack / ack_data travelling the other way
//! with the same pdu_ref takes it: the ack_data event carries the job's items with
//! their return codes and the data read. No job: `UNMATCHED_RESPONSE`; a job of
//! another function: `RESPONSE_MISMATCH`.
//!
//! # Garbage and resynchronisation
//!
//! A TPKT header with a version other than 3, a reserved byte other than 0 or a length
//! outside `7..=max_tpkt_len` means framing is lost; after a gap ([`S7Flow::on_gap`])
//! framing is not trusted either, and a partial TSDU of that direction is dropped. The
//! flow then scans for the next offset where a TPKT + COTP header starts (a DT must
//! carry S7comm or S7comm-plus, and the TPKT be followed by the end of the data or
//! another such header). Each stretch of skipped bytes yields one event: operation
//! `other`, anomaly `GARBAGE`, function `garbage`; after a gap, `RESYNC` instead while
//! the stretch is shorter than the longest TPKT framed (`max_tpkt_len`: the rest of one
//! the gap cut, or DT fragments continuing a TSDU whose start was lost, no fault of the
//! device),
//! and `GARBAGE` once it grows longer. The same holds for the first bytes of a flow
//! joined mid-stream ([`S7Flow::joined_mid_stream`]), which may be the rest of a TPKT
//! the sensor's start cut; they are framed as leniently as any first bytes. A gap
//! followed by bytes that frame cleanly yields no event. A COTP header that does not
//! fit its TPKT, or a TSDU over the bound, yields one event with function `cotp` and
//! `BAD_LENGTH`; these events have ROSCTR 0.
//!
//! Jobs travel both ways, so what a gap did to the pairing depends on which jobs
//! travelled in its direction. A gap in direction D lost jobs sent in D: an ack /
//! ack_data coming the other way that finds no job is flagged
//! `UNMATCHED_RESPONSE | RESYNC` until a job sent in D after the gap is answered
//! (answers to jobs sent before it do not end the loss), and for no more answers than
//! jobs can be outstanding: the PLC rarely sends jobs, and a gap in its direction must
//! not silence the PG's unmatched answers for good. So is one that comes in a
//! segment acknowledging bytes of D the sensor never saw ([`S7Flow::on_unseen_acked`]:
//! a job lost before any later data could show the hole). The same gap lost answers to
//! jobs sent the other way: those older than the next one of them answered are dropped
//! (they would fill the table towards a false `REQUEST_FLOOD`, or pair with a later
//! ack_data once pdu_refs wrap); jobs of D, and later jobs whose answers are still to
//! come, stay. Userdata and S7comm-plus are not paired, so a gap changes nothing there
//! beyond framing.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod codes;
mod decode;
pub mod parser;
pub mod state;

pub use codes::{Area, DataTransportSize, Function, PlusFunction, Rosctr, UserdataGroup};
pub use parser::{
    parse_cotp, parse_plus_header, parse_s7_pdu, parse_tpkt, CotpPdu, DissectError, S7Pdu, Tpkt,
};
pub use state::{S7Config, S7Flow};

use parser::{parse_cotp as cotp_of, MIN_TPKT_LEN, S7COMM_PLUS_PROTOCOL_ID, S7COMM_PROTOCOL_ID};

/// Content detection: do `data` (the first payload bytes of a flow, either direction)
/// look like the start of an S7comm or S7comm-plus stream?
///
/// Requires a whole first TPKT (version 3, reserved 0, length in range) whose COTP
/// TPDU is either a connection request / confirm naming a called TSAP (RDP's X.224
/// requests name none), or a DT whose payload starts with 0x32 or 0x72. When more
/// bytes follow, they must start another TPKT.
pub fn probe(data: &[u8]) -> bool {
    let max = S7Config::default().max_tpkt_len;
    let Ok((rest, tpkt)) = parse_tpkt(data, max) else {
        return false;
    };
    if tpkt.length < MIN_TPKT_LEN {
        return false;
    }
    let ok = match cotp_of(tpkt.payload) {
        Ok(c) => match c.pdu {
            CotpPdu::ConnectionRequest(c) | CotpPdu::ConnectionConfirm(c) => {
                c.called_tsap.is_some()
            }
            CotpPdu::Data { payload, .. } => matches!(
                payload.first(),
                Some(&S7COMM_PROTOCOL_ID | &S7COMM_PLUS_PROTOCOL_ID)
            ),
            _ => false,
        },
        Err(_) => false,
    };
    ok && (rest.is_empty() || matches!(rest, [3, 0, ..] | [3]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_accepts_s7_starts() {
        // TPKT length 22, COTP CR (LI 17) with calling TSAP 0x0100, called TSAP 0x0102,
        // TPDU size 1024.
        let cr = [
            0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc1, 0x02, 0x01,
            0x00, 0xc2, 0x02, 0x01, 0x02, 0xc0, 0x01, 0x0a,
        ];
        assert!(probe(&cr));
        // A DT carrying S7comm (setup communication job).
        let dt = [
            0x03, 0x00, 0x00, 0x19, 0x02, 0xf0, 0x80, 0x32, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x08, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xe0,
        ];
        assert!(probe(&dt));
        let mut two = dt.to_vec();
        two.extend_from_slice(&dt[..2]);
        assert!(probe(&two));
    }

    #[test]
    fn probe_rejects_other_protocols() {
        // RDP X.224 connection request: TPKT, CR without TSAPs, "Cookie: mstshash=".
        let mut rdp = vec![0x03, 0x00, 0x00, 0x00, 0x00, 0xe0, 0, 0, 0, 0, 0];
        rdp.extend_from_slice(b"Cookie: mstshash=a\r\n");
        let n = rdp.len();
        rdp[3] = n as u8;
        rdp[4] = (n - 5) as u8;
        assert!(!probe(&rdp));
        // Modbus, HTTP, a TPKT too short to tell.
        assert!(!probe(&[0, 1, 0, 0, 0, 6, 0x11, 3, 0, 0x6B, 0, 3]));
        assert!(!probe(b"GET / HTTP/1.1\r\n"));
        assert!(!probe(&[0x03, 0x00, 0x00, 0x19, 0x02, 0xf0]));
        // A DT of another protocol (MMS session layer).
        assert!(!probe(&[
            0x03, 0x00, 0x00, 0x0b, 0x02, 0xf0, 0x80, 0x0d, 0x01, 0x02, 0x03
        ]));
    }
}
