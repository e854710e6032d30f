//! DNP3 (IEEE 1815) dissector for otwatch: link, transport and application layers,
//! over TCP and UDP.
//!
//! # Layout
//!
//! * [`parser`]: pure nom parsers. [`parse_link_frame`] frames one link frame with a
//!   streaming check (`Incomplete` until the whole frame is there; the header CRC is
//!   checked before its length is trusted); [`LinkFrame::user_data`] checks every
//!   16-octet block CRC. [`parse_app_header`] and [`parse_object_header`] read a
//!   reassembled application fragment (complete parsers).
//! * [`codes`]: open newtypes for function codes and the bit fields of the link
//!   control, transport header, application control and object qualifier.
//! * [`objects`]: object sizes (the walker's map from one header to the next) and the
//!   values decoded for detection and inventory: g12 CROB, g41 analog output block,
//!   g40/g30 analog values, g10/g1 binaries, g50 time, g70 file control, g0 device
//!   attributes.
//! * `decode`: a fragment becomes the event's `dnp3` block
//!   ([`otwatch_event::Dnp3Info`]), its anomalies and its operation.
//! * [`state`]: [`Dnp3Flow`], the per-flow state the flow layer drives: framing and
//!   resynchronisation, transport reassembly, request/response pairing.
//!
//! # Roles and directions
//!
//! The link layer's DIR bit says who sent a frame: set by the master. A PDU from the
//! outstation (DIR clear) is a response (`is_response`), whatever the transport's
//! orientation; `direction` is the flow's (to_server = from the flow's initiator), so
//! the rule engine finds the master as the source of every operation. Responses take
//! the operation of their request: same link address pair, same application
//! sequence number; later fragments of a multi-fragment response inherit it from the
//! first.
//!
//! # Anomalies
//!
//! * A link header whose CRC fails is not a frame: the bytes up to the next header
//!   with a valid CRC are one GARBAGE event (with BAD_CHECKSUM when the stretch began
//!   at a start `05 64`). A frame whose data block CRC fails is one event
//!   (`function: "link_frame"`, BAD_CHECKSUM); its data, and the fragment it belonged
//!   to, are dropped. A header with LEN below 5, a datagram that ends inside a frame,
//!   a user-data frame without a transport header: `link_frame` events with
//!   BAD_LENGTH or MALFORMED. These events carry no application layer
//!   (`function_code` 0; `function` says what they are).
//! * A fragment over [`Dnp3Config::max_fragment`] is reported once from its header
//!   (BAD_LENGTH) and the rest of it ignored.
//! * In a fragment: an unknown function code is UNKNOWN_FUNCTION (its objects are not
//!   read); a header or object that runs past the fragment is BAD_LENGTH; a reserved
//!   qualifier, or an object of unknown size without a size prefix, is MALFORMED.
//!   Parsing stops there; the headers before it are kept. Responses without request
//!   are UNMATCHED_RESPONSE.
//!
//! # Capture loss
//!
//! A sensor on a mirror port loses packets; what its own loss explains is flagged
//! RESYNC rather than charged to the device (the rule engine ignores RESYNC and the
//! UNMATCHED_RESPONSE it explains). The flow layer reports a loss in a TCP stream
//! with [`Dnp3Flow::on_gap`]; a UDP datagram is whole.
//!
//! * **Skipped bytes.** Every link header carries its CRC, so framing needs no trust
//!   to rebuild: after a gap the dissector takes the next header whose CRC holds, as
//!   always. The bytes skipped before it are the rest of a frame the gap cut: up to
//!   291 octets (a frame is at most 292) they are one event like garbage but flagged
//!   RESYNC instead of GARBAGE (a `05 64` left in the frame's data, whose "header" CRC
//!   fails, is no BAD_CHECKSUM either); a longer stretch is GARBAGE as well, once. The
//!   same holds for the first bytes of a flow joined mid-stream
//!   ([`Dnp3Flow::joined_mid_stream`]). Garbage not preceded by a gap is GARBAGE.
//! * **Cut fragments.** A gap may cut a multi-frame fragment in two: the fragments
//!   being reassembled in the gap's direction are dropped, and the frames after the
//!   gap (FIR clear) do not complete them.
//! * **Requests lost.** Requests travel in the direction of the master's frames (link
//!   DIR bit set; usually the flow's initiator, but the roles are learned from the
//!   frames). After a gap there, a response that finds no request is flagged
//!   `UNMATCHED_RESPONSE | RESYNC` until a request sent after the gap is answered
//!   (answers to requests sent before it do not end the loss). So is one delivered in
//!   a segment that acknowledges request bytes the sensor never saw
//!   ([`Dnp3Flow::on_unseen_acked`]), and the first responses of a flow joined
//!   mid-stream. Its operation stays `other`: a RESPONSE's function code and objects
//!   do not tell which request it answers (SELECT and OPERATE echo the same CROB).
//!   The later fragments of a multi-fragment response inherit its first fragment's
//!   verdict, like its operation.
//! * **Responses lost.** After a gap in the outstation's direction, the requests then
//!   outstanding that are older than the next one answered in their association
//!   (same link address pair) are dropped: a master awaits one answer at a time, so
//!   theirs were in the gap. They would otherwise fill the table towards a false
//!   REQUEST_FLOOD and pair with a later response once the 4-bit application
//!   sequence wraps. Requests whose answers are still to come pair as usual. A later
//!   fragment (FIR clear) whose first fragment the gap took is flagged
//!   `UNMATCHED_RESPONSE | RESYNC` until the next first fragment of a response.
//!
//! # Guarantees
//!
//! * **No panics on packet data.** `unsafe` is forbidden, and outside tests the crate
//!   denies `unwrap`, `expect`, `panic!` and slice indexing. The fuzz target
//!   (`fuzz/fuzz_targets/dnp3.rs`) feeds arbitrary bytes, split arbitrarily, to both
//!   directions of a stream flow and to a datagram flow.
//! * **Bounded.** A frame is at most 292 octets, so the bytes a stream flow leaves
//!   unconsumed are at most one frame. Fragments, reassemblies in progress, requests
//!   waiting for a response, points per event and the resynchronisation scan per
//!   call are bounded by [`Dnp3Config`]. Every loop consumes input on each turn; an
//!   object count is checked against the octets present before it is used.
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
pub mod crc;
mod decode;
pub mod objects;
pub mod parser;
pub mod state;

pub use codes::{AppControl, FunctionCode, LinkControl, LinkFunction, Qualifier, TransportHeader};
pub use crc::crc16_dnp;
pub use decode::{request_operation, Link};
pub use parser::{
    build_link_frame, parse_app_header, parse_link_frame, parse_object_header, AppHeader,
    DissectError, LinkFrame, ObjectHeader,
};
pub use state::{Dnp3Config, Dnp3Flow, Framing};

/// The DNP3 well-known port, TCP and UDP.
pub const PORT: u16 = 20000;

/// Content detection: do the first payload bytes of a flow (either direction) start
/// with a DNP3 link header: start octets `05 64`, a valid header CRC and a length of
/// at least 5?
pub fn probe(data: &[u8]) -> bool {
    matches!(parser::check_header(data), Ok(Some(_)))
}

/// Whether the first link frame of `data` comes from the master (its control octet's
/// DIR bit), if `data` starts with a valid link header. Over UDP, where both ends often
/// use port 20000, this tells which end is the flow's client.
pub fn from_master(data: &[u8]) -> Option<bool> {
    const DIR: u8 = 0x80;
    if !probe(data) {
        return None;
    }
    data.get(3).map(|control| control & DIR != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dir_bit_names_the_master() {
        // 05 64 | LEN 05 | CTRL C0 (DIR=1 PRM=1, reset link) | DST 1 | SRC 1024 | CRC
        let master = [0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21];
        assert_eq!(from_master(&master), Some(true));
        assert_eq!(from_master(&master[..9]), None, "header cut short");
        let mut bad_crc = master;
        bad_crc[9] ^= 1;
        assert_eq!(from_master(&bad_crc), None);
        // CTRL 44: DIR=0 (from the outstation), PRM=1, unconfirmed user data.
        let mut outstation = vec![0x05, 0x64, 0x05, 0x44, 0x01, 0x00, 0x00, 0x04];
        let crc = crc16_dnp(&outstation);
        outstation.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(from_master(&outstation), Some(false));
    }

    #[test]
    fn probe_accepts_link_headers() {
        assert!(probe(&[
            0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21
        ]));
        let f = build_link_frame(0xC4, 10, 1, &[0xC0, 0xC0, 0x01, 60, 1, 0x06]);
        assert!(probe(&f));
        assert!(probe(&f[..10]));
    }

    #[test]
    fn probe_rejects_others() {
        // Too short, wrong CRC, wrong start, LEN 4.
        assert!(!probe(&[
            0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9
        ]));
        assert!(!probe(&[
            0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0x21, 0xE9
        ]));
        assert!(!probe(&[
            0x05, 0x65, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21
        ]));
        assert!(!probe(b"GET / HTTP/1.1\r\n"));
        // Modbus/TCP.
        assert!(!probe(&[0, 1, 0, 0, 0, 6, 0x11, 3, 0, 0x6B, 0, 3]));
        let mut h = vec![0x05, 0x64, 0x04, 0xC0, 1, 0, 2, 0];
        h.extend_from_slice(&crc16_dnp(&h).to_le_bytes());
        assert!(!probe(&h));
    }
}
