//! The per-packet hot path does not allocate in steady state: in-order segments of a
//! known flow go to the handler straight from the packet, with one hash lookup and no
//! copy. Checked with a counting global allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use otwatch_event::{Direction, FlowMeta, PduSink, Timestamp};
use otwatch_flow::{FlowConfig, FlowTable, HandlerFactory, LinkType, PacketIn, StreamHandler};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Set on the measuring thread only: the test harness's own threads (output
    /// capture, timers) may allocate at any moment, and are not the hot path.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Consumes whole 12-byte records, reports nothing.
#[derive(Debug)]
struct Records;

impl StreamHandler for Records {
    fn on_data(&mut self, _dir: Direction, data: &[u8], _out: &mut dyn PduSink) -> usize {
        data.len() / 12 * 12
    }
    fn on_gap(&mut self, _dir: Direction, _out: &mut dyn PduSink) {}
}

struct Factory;

impl HandlerFactory for Factory {
    type Handler = Records;
    fn classify(&mut self, _: &FlowMeta, _: Direction, _: &[u8]) -> Option<Records> {
        Some(Records)
    }
}

/// Ethernet / IPv4 / TCP with a 12-byte payload, written field by field.
fn frame(from_client: bool, seq: u32, ack: u32) -> Vec<u8> {
    let (src, dst, sport, dport) = if from_client {
        ([10, 0, 0, 1], [10, 0, 0, 2], 40000u16, 502u16)
    } else {
        ([10, 0, 0, 2], [10, 0, 0, 1], 502, 40000)
    };
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00]; // MACs, IPv4
    f.extend_from_slice(&[0x45, 0, 0, 52, 0, 0, 0x40, 0, 64, 6, 0, 0]); // len 52, TCP
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]); // PSH|ACK
    f.extend_from_slice(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 10]); // a Modbus request
    f
}

#[test]
fn in_order_segments_do_not_allocate() {
    let mut table = FlowTable::new(FlowConfig::default(), Factory);
    let mut out = Vec::with_capacity(16);
    let frames: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| {
            let from_client = i % 2 == 0;
            let n = i / 2 * 12;
            if from_client {
                frame(true, 1000 + n, 5000 + n)
            } else {
                frame(false, 5000 + n, 1000 + n + 12)
            }
        })
        .collect();
    let mut feed = |range: std::ops::Range<usize>, out: &mut Vec<_>| {
        for i in range {
            let pkt = PacketIn {
                index: i as u64,
                ts: Timestamp::from_nanos(i as i64 * 1_000_000),
                linktype: LinkType::Ethernet,
                data: &frames[i],
            };
            table.process(&pkt, out);
        }
    };
    // Warm-up: the flow, its handler and the table's storage are created here.
    feed(0..10, &mut out);
    let before = ALLOCS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    feed(10..2000, &mut out);
    COUNTING.with(|c| c.set(false));
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations in steady state");
    assert_eq!(table.stats().flows_created, 1);
    assert_eq!(table.stats().packets, 2000);
}
