//! The driver the dissector fuzz targets share: it feeds a dissector's flow state the
//! way the flow layer does, from bytes the fuzzer chooses.
//!
//! The input (after the target's control byte) is cut into chunks whose sizes and
//! directions come from the input itself (see [`chunks`]); [`feed_stream`] appends
//! each chunk to its direction's buffer, offers the buffer to the dissector, keeps
//! the unconsumed tail, and checks the `on_data` contract on the way. Each target
//! includes this file with `mod common;`.

use otwatch_event::{Direction, Pdu, PduSink};

/// A dissector's per-flow state, as the flow layer drives it.
pub trait Dissector {
    /// In-order bytes of one direction; returns how many were consumed.
    fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize;
    /// Bytes of `dir` were lost.
    fn on_gap(&mut self, dir: Direction, out: &mut dyn PduSink);
    /// The next bytes of the other direction acknowledge bytes of `dir` not seen.
    fn on_unseen_acked(&mut self, dir: Direction);
    /// The other direction has acknowledged bytes of `dir` beyond any seen (only the
    /// dissectors that bound a loss by it implement this).
    fn on_acked_beyond(&mut self, _dir: Direction) {}
    /// The flow ended.
    fn on_end(&mut self, out: &mut dyn PduSink);
}

/// Implements [`Dissector`] for a flow state type by its inherent methods of the same
/// names (the dissector crates do not depend on the flow crate's `StreamHandler`).
macro_rules! dissector {
    ($flow:ty, acked_beyond) => {
        $crate::common::dissector!($flow, {
            fn on_acked_beyond(&mut self, dir: ::otwatch_event::Direction) {
                <$flow>::on_acked_beyond(self, dir)
            }
        });
    };
    ($flow:ty) => {
        $crate::common::dissector!($flow, {});
    };
    ($flow:ty, { $($extra:tt)* }) => {
        impl $crate::common::Dissector for $flow {
            fn on_data(
                &mut self,
                dir: ::otwatch_event::Direction,
                data: &[u8],
                out: &mut dyn ::otwatch_event::PduSink,
            ) -> usize {
                <$flow>::on_data(self, dir, data, out)
            }
            fn on_gap(
                &mut self,
                dir: ::otwatch_event::Direction,
                out: &mut dyn ::otwatch_event::PduSink,
            ) {
                <$flow>::on_gap(self, dir, out)
            }
            fn on_unseen_acked(&mut self, dir: ::otwatch_event::Direction) {
                <$flow>::on_unseen_acked(self, dir)
            }
            fn on_end(&mut self, out: &mut dyn ::otwatch_event::PduSink) {
                <$flow>::on_end(self, out)
            }
            $($extra)*
        }
    };
}
pub(crate) use dissector;

/// Whether the fuzzed flow was joined mid-stream (its handshake not seen): decided by
/// the input's length, the control byte having no bit left.
pub fn mid_stream(rest: &[u8]) -> bool {
    rest.len() % 2 == 1
}

/// The chunk size unit that two bits of a control byte pick (the low two of `bits`):
/// 1 to 4.
pub fn chunk_unit(bits: u8) -> usize {
    usize::from(bits & 0x03) + 1
}

/// Cuts `input` into chunks. Each chunk is `first * unit + 1` bytes long (1 to
/// 256 * `unit`, cut to what is left), `first` being the chunk's own first byte, and
/// goes to the server when `first` is even, to the client when it is odd.
pub fn chunks(input: &[u8], unit: usize) -> impl Iterator<Item = (Direction, &[u8])> {
    let mut rest = input;
    std::iter::from_fn(move || {
        let &first = rest.first()?;
        let len = (usize::from(first) * unit + 1).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let dir = if first & 1 == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        Some((dir, chunk))
    })
}

/// Takes the PDUs; wants none of them (see [`PduSink::wants`]) while `lean`.
#[derive(Default)]
struct Picky {
    pdus: Vec<Pdu>,
    lean: bool,
}

impl PduSink for Picky {
    fn push(&mut self, pdu: Pdu) {
        self.pdus.push(pdu);
    }

    fn wants(&self, _pdu: &Pdu) -> bool {
        !self.lean
    }
}

/// How [`feed_stream`] drives a flow: from the target's control byte and the
/// dissector's bounds.
pub struct Stream {
    /// The chunk size unit (see [`chunks`]).
    pub unit: usize,
    /// Whether a chunk that starts with 0xFF comes after a gap in its direction.
    pub gap_on_ff: bool,
    /// The longest tail the dissector may leave while consuming nothing.
    pub max_stall_tail: usize,
    /// What the flow layer would buffer per direction before declaring a gap.
    pub buffer_bound: usize,
}

/// Feeds `input`, cut by [`chunks`], to both directions of `flow` as a TCP stream:
/// each direction keeps its unconsumed tail, as the flow layer does, and loses it in
/// a gap (on 0xFF when `stream.gap_on_ff`, and past `stream.buffer_bound`). The sink
/// wants no PDU while a chunk whose first byte has bit 1 set is offered; a chunk whose
/// first byte has bit 2 set comes in a segment that acknowledges bytes of the other
/// direction the sensor did not see (`on_unseen_acked`). After each
/// chunk `check` may assert the flow's own bounds. Ends the flow at the end.
pub fn feed_stream<D: Dissector>(
    flow: &mut D,
    input: &[u8],
    stream: &Stream,
    mut check: impl FnMut(&D),
) {
    let mut out = Picky::default();
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (dir, chunk) in chunks(input, stream.unit) {
        let buf = &mut bufs[dir.index()];
        if stream.gap_on_ff && chunk.first() == Some(&0xFF) {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        buf.extend_from_slice(chunk);
        out.lean = chunk.first().is_some_and(|b| b & 0x02 != 0);
        if chunk.first().is_some_and(|b| b & 0x08 != 0) {
            flow.on_acked_beyond(dir.reverse());
        }
        if chunk.first().is_some_and(|b| b & 0x04 != 0) {
            flow.on_unseen_acked(dir.reverse());
        }
        let n = flow.on_data(dir, buf, &mut out);
        assert!(n <= buf.len(), "consumed more than offered");
        assert!(
            n > 0 || buf.len() <= stream.max_stall_tail,
            "no progress on {} bytes",
            buf.len()
        );
        buf.drain(..n);
        if buf.len() > stream.buffer_bound {
            buf.clear();
            flow.on_gap(dir, &mut out);
        }
        check(flow);
        out.pdus.clear();
    }
    flow.on_end(&mut out);
}
