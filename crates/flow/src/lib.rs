//! L2-L4 for otwatch: decode, IP fragment reassembly, the flow table, TCP stream
//! reassembly, and Community ID.
//!
//! A flow worker owns one [`FlowTable`] and feeds it packets ([`PacketIn`]) in capture
//! order. The table decodes each packet ([`decode`]), reassembles IP fragments, finds
//! or creates the packet's flow (keyed by the canonical 5-tuple, oriented
//! initiator -> responder), reassembles TCP, and hands in-order bytes to the flow's
//! [`StreamHandler`], chosen by the [`HandlerFactory`] on the flow's first payload. The
//! [`otwatch_event::Pdu`]s the handler reports come back as [`otwatch_event::OtEvent`]s carrying the
//! flow, the packet index and time, and their ordinals.
//!
//! The source thread shards packets to workers with [`shard_hash`] (the address pair
//! only, so that fragments land with their flow).
//!
//! Untrusted input: no `unsafe`, no `unwrap`/indexing on packet data (denied outside
//! tests), every buffer bounded by [`FlowConfig`]; the `reassembly` fuzz target drives
//! the table with arbitrary segments.
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

pub mod app;
mod community_id;
mod config;
mod decode;
mod defrag;
mod link;
mod stats;
mod table;
mod tcp;
#[cfg(test)]
mod testutil;

pub use app::{HandlerFactory, StreamHandler};
pub use community_id::community_id_v1;
pub use config::FlowConfig;
pub use decode::{
    decode, decode_transport, shard_hash, DecodeError, Decoded, IpFragment, Layer, TcpFlags,
    TcpSegment, UdpDatagram, L4,
};
pub use link::LinkType;
pub use stats::FlowStats;
pub use table::{FlowTable, PduFilter, PduPlace};

use otwatch_event::Timestamp;

/// A packet as the worker sees it.
#[derive(Debug, Clone, Copy)]
pub struct PacketIn<'a> {
    /// Index of the packet over all inputs (0-based): the events' primary order key.
    pub index: u64,
    pub ts: Timestamp,
    pub linktype: LinkType,
    pub data: &'a [u8],
}
