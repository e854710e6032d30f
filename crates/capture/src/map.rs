//! The memory map: the crate's only `unsafe` code.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps `file` read-only.
pub(crate) fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: `Mmap::map` is unsafe because the mapped bytes may change, or vanish (a
    // truncated file makes later reads fault with SIGBUS), if another process writes the
    // file while it is mapped; Rust's `&[u8]` promises they do not. We map read-only and
    // never write. A capture being rewritten under a replay is outside what otwatch
    // supports (see `CaptureFile::open`); if it happens, the parsers still
    // bounds-check every field they read, so changed bytes give wrong packets or a
    // `ReadError`, not memory unsafety in our code; only the shrink case can fault.
    unsafe { Mmap::map(file) }
}
