//! Where otwatch's alerts and events go.
//!
//! # Layout
//!
//! * [`jsonl`]: JSON lines to stdout or a file, flushed per line in live mode, with
//!   optional rotation by size ([`JsonlSink`]).
//! * [`spool`]: a bounded, crash-safe, ordered on-disk queue ([`Spool`]) that holds
//!   alerts while Kafka is slow or down, under `--state-dir`. Delivery reports drive
//!   what leaves it ([`Spool::ack_through`]); what is unsent at shutdown is sent at the
//!   next start, before new alerts.
//!
//! # Guarantees
//!
//! * **Never blocks capture, never loses an alert silently.** The spool is bounded in
//!   bytes ([`SpoolConfig::max_bytes`]); when it is full, [`Spool::append`] says so with
//!   [`SpoolError::Full`] and the caller counts a drop, logs it loudly and exits 1
//!   (`shared/spec/cli.md`).
//! * **No panics on what is read back from disk.** A spool file is treated like packet
//!   data: lengths are bounded before use, every record carries a CRC, and a torn or
//!   corrupt record is skipped (with a warning and a counter), never trusted.
//! * **Small errors.** [`SpoolError`] and [`jsonl::SinkError`] are `Copy`, hold no data
//!   read from disk, and name the operation that failed, so they can label a metric; the
//!   underlying OS error and path are logged (`tracing`) where they happen.

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

pub mod jsonl;
pub mod spool;
// kafka: added by the Kafka sink
pub mod kafka;
#[doc(hidden)]
pub mod testbroker;

pub use jsonl::{JsonlConfig, JsonlSink, JsonlTarget};
pub use spool::{RecordId, Spool, SpoolConfig, SpoolError, SpooledRecord};
