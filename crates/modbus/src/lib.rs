//! Modbus/TCP dissector for otwatch, including Schneider Electric UMAS (function 90).
//!
//! # Layout
//!
//! * [`parser`]: pure nom parsers. [`parse_modbus_adu`] frames one ADU with
//!   *streaming* parsers (`Incomplete` until the whole ADU is there), then
//!   `take(length)` bounds the body and *complete* parsers read it
//!   ([`parse_request`], [`parse_response`]). Outputs borrow the input.
//! * [`codes`]: open newtypes for function, exception, diagnostic, MEI and UMAS codes.
//!   Undefined values parse and travel on; they are reported, never rejected.
//! * `decode`: turns a framed ADU into the event's `modbus` block
//!   ([`otwatch_event::ModbusInfo`]), its normalized [`otwatch_event::Operation`] and its
//!   [`otwatch_event::Anomalies`]. Out-of-spec but framed ADUs are *kept* with flags
//!   (quantity limits, byte counts, coil values, unknown codes).
//! * [`state`]: [`ModbusFlow`], the per-flow state the flow layer drives.
//!
//! # Guarantees
//!
//! * **No panics on packet data.** `unsafe` is forbidden, and outside tests the crate
//!   denies `unwrap`, `expect`, `panic!` and slice indexing. The fuzz target
//!   (`fuzz/fuzz_targets/modbus.rs`) feeds arbitrary bytes, split arbitrarily, to both
//!   directions of a flow.
//! * **Bounded.** An ADU is at most 260 bytes (MBAP length `2..=254`), so every
//!   value vector is bounded by the ADU (at most 2000 coils or 126 registers); the
//!   bytes a flow asks the caller to keep are at most one ADU plus the next header;
//!   outstanding requests are capped by [`ModbusConfig::max_outstanding`]; a
//!   resynchronisation scan examines at most [`ModbusConfig::max_resync_scan`]
//!   offsets per call. Every loop consumes input on each turn.
//!
//! # Pairing
//!
//! `ToServer` bytes are requests, `ToClient` bytes responses. Each request leaves a
//! small context (function, address, quantity, FC 23 read part, diagnostic
//! sub-function, MEI type, UMAS function) in a per-flow table, oldest first. A response
//! takes the *oldest* outstanding request with its transaction id:
//!
//! * same function code: the response inherits the request's operation and
//!   address/quantity, so read values are attributed (coil values are truncated to the
//!   requested quantity; FC 23 response values are the read registers, starting at
//!   `read_address`, and `address`/`quantity` are left out);
//! * another function code: the request is consumed, the response is flagged
//!   `RESPONSE_MISMATCH` and decoded on its own;
//! * none: the response is flagged `UNMATCHED_RESPONSE` and its operation is derived
//!   from its own function code (FC 23 alone counts as a write, UMAS alone as other).
//!
//! When the table is full, the oldest request is dropped and the new one is flagged
//! `REQUEST_FLOOD`.
//!
//! # Garbage and resynchronisation
//!
//! An MBAP length outside `2..=254` means framing is lost; after a gap
//! ([`ModbusFlow::on_gap`]) framing is not trusted either. The flow then scans for the
//! next offset where a header starts (protocol id 0, length in range, function code
//! not 0) whose ADU is complete, and trusts it when
//!
//! * another such header follows it (two headers in a row: the ADU is then reported
//!   whatever anomalies it has), or
//! * the end of the data or part of a header follows it, and the ADU vouches for
//!   itself: it decodes (as a request or an unpaired response, by direction) without a
//!   malformed, bad-length, unknown-exception, out-of-spec or protocol-id anomaly. One
//!   with an unknown function code, whose body cannot be checked, vouches for itself
//!   only when it is all the data since the framing was lost (a segment of one ADU).
//!
//! Otherwise the scan waits for more bytes. The decoding check matters: the bytes left
//! by a gap often contain a header by chance (a zero address reads as protocol id 0).
//! Each stretch of skipped bytes yields **one** event: operation `other`, function
//! `garbage`, all numeric fields 0, and anomaly `GARBAGE`; after a gap, `RESYNC`
//! instead while the stretch is shorter than an ADU (the rest of one the gap cut, no
//! fault of the device), and `GARBAGE` once it grows longer. The same holds for the
//! first bytes of a flow joined mid-stream ([`ModbusFlow::joined_mid_stream`]), which
//! may be the rest of an ADU the sensor's start cut. The ADU found after it
//! carries no extra flag. A gap followed by bytes that frame cleanly yields no event.
//!
//! After a gap in the requests, a response that finds no request is flagged
//! `UNMATCHED_RESPONSE | RESYNC` (its request was likely lost) until a request sent
//! after the gap is answered, and for no more responses than requests can be
//! outstanding (a gap must not silence unmatched responses for the rest of a flow); so is one that comes in a segment acknowledging request
//! bytes the sensor never saw ([`ModbusFlow::on_unseen_acked`]: a request lost before
//! any later data could show the hole). After a gap in the responses, the requests
//! older than the next one answered are dropped: their answers were in the gap.
//!
//! Outside resynchronisation, a protocol id other than 0 with a sane length is framed
//! and flagged `PROTOCOL_ID`, and undefined function codes are reported as `other`
//! with `UNKNOWN_FUNCTION`.
//!
//! # UMAS
//!
//! UMAS has no public specification; the function table follows the public
//! descriptions cited on [`UmasFunctionCode`]. Requests carry
//! `[session key][UMAS function][data]`, responses `[session key][status 0xFE/0xFD]
//! [data]`; a response's UMAS function is the one of its request (0, `unknown`, when
//! unmatched).
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

pub use codes::{DiagnosticSubFunction, ExceptionCode, FunctionCode, MeiType, UmasFunctionCode};
pub use parser::{parse_modbus_adu, parse_request, parse_response, DissectError, ModbusAdu};
pub use state::{ModbusConfig, ModbusFlow};

use parser::{check_header, FunctionCheck, HeaderCheck};

/// Content detection: does `data` (the first payload bytes of a flow, either
/// direction) look like the start of a Modbus/TCP stream?
///
/// Requires a strict MBAP header: protocol id 0, length `2..=254`, and a function
/// code this dissector knows (public codes and UMAS, with or without the exception
/// bit). When the first ADU is complete and more bytes follow, they must start
/// another plausible header (or be too short to tell).
pub fn probe(data: &[u8]) -> bool {
    match check_header(data, FunctionCheck::Known) {
        HeaderCheck::Yes { len } => match data.get(len..) {
            None | Some([]) => true,
            Some(next) => check_header(next, FunctionCheck::Defined) != HeaderCheck::No,
        },
        HeaderCheck::No | HeaderCheck::NeedMore => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_accepts_modbus_starts() {
        // MBAP: tid 0x0001, pid 0, length 6, unit 0x11; read holding registers 107, 3.
        let req = [
            0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03,
        ];
        assert!(probe(&req));
        // Only the first segment of the ADU: the header alone is enough.
        assert!(probe(&req[..8]));
        // Two ADUs, and an ADU followed by a partial header.
        let mut two = req.to_vec();
        two.extend_from_slice(&req);
        assert!(probe(&two));
        assert!(probe(&two[..15]));
        // Exception response: 0x83, code 2.
        assert!(probe(&[0, 1, 0, 0, 0, 3, 0x11, 0x83, 0x02]));
    }

    #[test]
    fn probe_rejects_other_protocols() {
        // Too short to tell.
        assert!(!probe(&[0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11]));
        // TPKT/COTP (S7comm): 03 00 00 16 ...
        assert!(!probe(&[
            0x03, 0x00, 0x00, 0x16, 0x11, 0xE0, 0x00, 0x00, 0x00, 0x01
        ]));
        // HTTP.
        assert!(!probe(b"GET / HTTP/1.1\r\n"));
        // Protocol id 1.
        assert!(!probe(&[0, 1, 0, 1, 0, 6, 0x11, 3, 0, 0x6B, 0, 3]));
        // Length 255.
        assert!(!probe(&[0, 1, 0, 0, 0, 0xFF, 0x11, 3, 0, 0x6B, 0, 3]));
        // Unknown function code 0x42.
        assert!(!probe(&[0, 1, 0, 0, 0, 6, 0x11, 0x42, 0, 0x6B, 0, 3]));
        // A good ADU followed by junk.
        assert!(!probe(&[
            0, 1, 0, 0, 0, 6, 0x11, 3, 0, 0x6B, 0, 3, 0xde, 0xad, 0xbe, 0xef
        ]));
    }
}
