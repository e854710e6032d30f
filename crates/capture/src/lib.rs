//! Packet sources for otwatch.
//!
//! *File replay*: pcap and pcapng files, told apart by their magic number, memory-mapped
//! and lent packet by packet without a copy. *Batching*: packets leave the source in
//! [`Batch`]es for the flow workers; a batch refers into the mapped file (zero-copy) or
//! owns a buffer (live capture).

