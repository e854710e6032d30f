//! OPC UA binary dissector for otwatch: UA TCP (Part 6, 7.1), UA Secure Conversation
//! (Part 6, 6.7) and the OPC UA Binary encoding of the Part 4 services.
//!
//! # Layout
//!
//! * [`parser`]: pure nom parsers. [`parse_ua_chunk`] frames one chunk with
//!   *streaming* parsers (`Incomplete` until the whole chunk is there); the message
//!   bodies, security headers and built-in types (NodeId in its six encodings,
//!   ExpandedNodeId, Variant, DataValue, ExtensionObject, DiagnosticInfo) are read
//!   with *complete* parsers. Outputs borrow the input.
//! * [`codes`]: open newtypes for message types, chunk types and service ids (every
//!   standard request/response binary-encoding NodeId, with its name and normalized
//!   operation), identity token types, security policies.
//! * `decode`: the service bodies events carry: Write (nodes, attributes, values),
//!   Call (object and method), AddNodes/DeleteNodes/AddReferences/DeleteReferences
//!   (node ids), CreateSession (the client's application description),
//!   ActivateSession (identity token type and user name), OpenSecureChannel (token id).
//! * [`state`]: [`OpcuaFlow`], the per-flow state the flow layer drives through the
//!   binary's dispatch (`on_data`, `on_gap`, `on_unseen_acked`, `on_acked_beyond`,
//!   `on_end`).
//!
//! # Events
//!
//! One event per *message*: HEL, ACK, ERR, RHE, and each OPN, CLO or MSG message once
//! its final chunk (`F`) or its abort chunk (`A`) is in; intermediate chunks (`C`) are
//! reassembled. Requests are `ToServer` from the client; `is_response` is true for
//! what the server sends (ACK, ERR, RHE, responses and ServiceFaults).
//!
//! Operations: services map as in [`ServiceId::operation`] (Write, AddNodes,
//! DeleteNodes, AddReferences, DeleteReferences, HistoryUpdate: `write`; Read, Browse,
//! BrowseNext, TranslateBrowsePaths, RegisterNodes, queries, subscriptions, monitored
//! items, Publish, Republish, HistoryRead: `read`; Create/Activate/CloseSession and
//! Open/CloseSecureChannel: `session`; GetEndpoints, FindServers, RegisterServer:
//! `identify`; Call and Cancel: `other` — the rule engine maps called methods with
//! `[[opcua_methods]]`). HEL, ACK and RHE are `session` (they open a connection); ERR,
//! abort chunks, encrypted bodies and unknown services are `other`. A response takes
//! the operation of its request, paired by request handle.
//!
//! # Security mode
//!
//! An OPN carries the channel's security policy in clear. Policy `#None`: the mode is
//! `none` and every body is decoded. Any other policy: the OPN itself is
//! asymmetrically encrypted (`encrypted: true`), and the mode is learnt from the first
//! symmetric (MSG/CLO) message: a body that starts with the type NodeId of a standard
//! service is plaintext, so the channel is `sign` (bodies decoded, the trailing
//! signature stripped when chunks are joined); otherwise `sign_and_encrypt` (bodies
//! reported `encrypted: true`, never as errors). Until then the mode is `unknown`; on a
//! flow joined after its OPN, readable bodies are decoded and unreadable ones reported
//! as encrypted with mode `unknown`.
//!
//! # Guarantees
//!
//! * **No panics on packet data.** `unsafe` is forbidden, and outside tests the crate
//!   denies `unwrap`, `expect`, `panic!` and slice indexing. The fuzz target
//!   (`fuzz/fuzz_targets/opcua.rs`) feeds arbitrary bytes, split arbitrarily, to both
//!   directions of a flow.
//! * **Bounded** by [`OpcuaConfig`]: the chunk size accepted as framed; the part of a
//!   chunk decoded in one piece (larger chunks are decoded from their start and the
//!   rest is skipped as it arrives, so the flow layer never buffers more than that);
//!   chunks per message and body bytes kept per message; outstanding requests (when
//!   full, the oldest is dropped and the new request flagged `REQUEST_FLOOD`); nodes
//!   reported per message; offsets scanned per call while resynchronising; nesting of
//!   Variants, DataValues and DiagnosticInfos ([`parser::MAX_DEPTH`]). Every count read
//!   from the wire is checked against the bytes present before it drives a loop.
//!
//! # Bad input
//!
//! A header with a known message type and a size out of range is reported (operation
//! `other`, `BAD_LENGTH`); a header that is not UA TCP at all starts a stretch of
//! garbage, reported once (`GARBAGE`). Framing is then regained by a scan for a legal
//! header (a secure chunk must carry this flow's channel id, once known) followed by
//! the end of the data or another legal header; after a gap the same scan runs.
//! Bodies that do not decode are reported with `MALFORMED` and the fields read so far;
//! unknown services with `UNKNOWN_FUNCTION`; responses with no request
//! `UNMATCHED_RESPONSE`, with the wrong service `RESPONSE_MISMATCH`; messages past the
//! chunk bound `OUT_OF_SPEC_VALUE`.
//!
//! # Capture loss
//!
//! What the sensor's own loss of bytes explains is flagged `RESYNC`, not blamed on the
//! device:
//!
//! * **Skipped bytes.** After a gap ([`OpcuaFlow::on_gap`]) the stretch skipped before
//!   the next chunk yields one event (message type `garbage`) flagged `RESYNC` while it
//!   is shorter than the largest chunk accepted ([`OpcuaConfig::max_chunk_size`]: the
//!   rest of a chunk the gap cut), and a `GARBAGE` event as well once it grows longer.
//!   The same holds for the first bytes of a flow joined mid-stream
//!   ([`OpcuaFlow::joined_mid_stream`]), whose framing is otherwise as lenient as
//!   before. Garbage not preceded by a gap stays `GARBAGE`.
//! * **Chunks without their start.** A gap drops the message being reassembled, and
//!   the chunks that follow it may continue a message whose first chunks it took:
//!   until a message starts, MSG/CLO chunks (C or F) whose body does not start with
//!   the type NodeId of a standard service are discarded up to the message's final
//!   chunk (at most the chunks of a message), part of the same `RESYNC` stretch,
//!   rather than joined into a message that never was (`MALFORMED`,
//!   `UNKNOWN_FUNCTION`). Encrypted bodies are never decoded and are not concerned.
//! * **Lost requests.** After a gap in the client's bytes, a response that finds no
//!   request is flagged `UNMATCHED_RESPONSE | RESYNC` until a request sent after the
//!   gap is answered; so is one delivered in a segment that acknowledges request
//!   bytes the sensor never saw ([`OpcuaFlow::on_unseen_acked`]), that segment's only.
//! * **Lost responses.** After a gap in the server's bytes, the requests outstanding
//!   at the gap that are older than the next one answered are dropped (their answers
//!   were in the gap), so they neither fill the table towards a false
//!   `REQUEST_FLOOD` nor pair with a later response. Publish requests wait at the
//!   server by design (Part 4, 5.13.5) and are answered in their own order: they go
//!   only when a later Publish is answered, and a Read answered after them leaves
//!   them waiting. Requests delivered in a segment that acknowledges response bytes
//!   the sensor never saw do not count as a flood when they find the table full (the
//!   client has those answers); the oldest request that is not a Publish makes room.
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

pub use codes::{ChunkType, MessageType, ServiceId, ServiceKind};
pub use parser::{parse_ua_chunk, parse_ua_header, DissectError, NodeId, UaChunk, UaHeader};
pub use state::{OpcuaConfig, OpcuaFlow};

/// The IANA port of OPC UA binary (opc.tcp).
pub const OPCUA_PORT: u16 = 4840;

/// Content detection: do the first payload bytes of a flow look like the start of UA
/// TCP? A Hello (`HELF` and a size from 32 to 4128: the fixed fields and an endpoint
/// URL of at most 4096 bytes, Part 6, 7.1.2.3), or an OpenSecureChannel (`OPNF`, a
/// size of at least 32, and a security policy URI of the OPC Foundation).
pub fn probe(data: &[u8]) -> bool {
    let size = |d: &[u8]| parser::le_u32_at(d, 4);
    match data.get(..4) {
        Some(b"HELF") => size(data).is_some_and(|s| (32..=4128).contains(&s)),
        Some(b"OPNF") => {
            let policy = codes::SECURITY_POLICY_PREFIX.as_bytes();
            size(data).is_some_and(|s| s >= 32)
                && data.get(16..16 + policy.len()).is_some_and(|p| p == policy)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_accepts_hello_and_open() {
        // HEL: "HELF", size 57, version 0, buffers 65536 x2, max message 0, max
        // chunks 0, endpoint URL "opc.tcp://plc:4840" (18 bytes)... only the header
        // is needed.
        assert!(probe(b"HELF\x39\x00\x00\x00\x00\x00\x00\x00"));
        assert!(!probe(b"HELF\x1F\x00\x00\x00")); // size 31: below the minimum
        assert!(!probe(b"HELF\x21\x10\x00\x00")); // size 4129
        assert!(!probe(b"HELF\x39\x00")); // too short to tell
        let mut opn = b"OPNF\x84\x00\x00\x00\x00\x00\x00\x00".to_vec();
        opn.extend_from_slice(&47i32.to_le_bytes());
        opn.extend_from_slice(b"http://opcfoundation.org/UA/SecurityPolicy#None");
        assert!(probe(&opn));
        assert!(!probe(&opn[..40]));
        assert!(!probe(b"GET / HTTP/1.1\r\n"));
        assert!(!probe(&[0, 1, 0, 0, 0, 6, 0x11, 3, 0, 0x6B, 0, 3]));
    }
}
