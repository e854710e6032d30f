//! Fuzz target: the pcap/pcapng reader.
//!
//! A capture file is input a user hands us, and it may come from anywhere: the reader
//! must never panic, never loop, and never trust a length beyond the bytes present.
//! The input is read as a whole capture file; every packet is walked to the end.

#![no_main]

use libfuzzer_sys::fuzz_target;
use otwatch_capture::Packets;

fuzz_target!(|data: &[u8]| {
    let Ok(packets) = Packets::from_slice(data) else {
        return;
    };
    let mut last_offset = 0u64;
    for item in packets {
        match item {
            Ok(pkt) => {
                assert!(pkt.offset >= last_offset, "offsets move forward");
                assert!(pkt.data.len() <= data.len());
                last_offset = pkt.offset;
            }
            Err(_) => break,
        }
    }
});
