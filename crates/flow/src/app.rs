//! The seam between the flow layer and the protocol dissectors.
//!
//! The flow crate does not know any protocol: the binary implements [`HandlerFactory`]
//! (choosing a dissector by port and by content) and [`StreamHandler`] (an enum over
//! the dissectors' per-flow states). Dependencies thus point one way:
//! capture -> flow -> (binary) <- dissectors.

use otwatch_event::{Direction, FlowMeta, PduSink};

/// Per-flow application-layer state: one dissector's view of one flow.
pub trait StreamHandler {
    /// In-order bytes of one direction of a TCP stream (or one UDP datagram).
    ///
    /// Returns how many bytes were consumed. The flow layer keeps the unconsumed tail
    /// (a PDU split across segments) and presents it again, followed by the next
    /// bytes, on the next call. Returning 0 means "need more bytes". A handler must
    /// consume what it cannot frame (garbage) rather than hold it forever: the flow
    /// layer bounds what it buffers and reports a gap when that bound is hit.
    fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize;

    /// Bytes of `dir` were lost (capture gap, or a buffer bound hit): the handler
    /// drops any partial PDU and pending request state that depends on it and
    /// resynchronises on the next bytes.
    fn on_gap(&mut self, dir: Direction, out: &mut dyn PduSink);

    /// The bytes delivered next, in the other direction, come in a segment that
    /// acknowledges bytes of `dir` the sensor did not see (lost by the capture, or
    /// still on their way: a mirror port can deliver the two directions out of step).
    /// Nothing was skipped; this is only the segment's own evidence, for what it
    /// carries (a response whose request was never seen answers one of those bytes).
    fn on_unseen_acked(&mut self, _dir: Direction) {}

    /// The peer has now acknowledged bytes of `dir` beyond any the sensor saw, or saw
    /// acknowledged before (since the last gap): answers among them, should the
    /// capture have lost them, answer requests outstanding now, not requests sent
    /// after. Called before the acknowledging segment's own data (if it has any) and
    /// before its `on_unseen_acked`; a later `on_gap(dir)` may then be declared for
    /// those bytes, once the loss is certain.
    fn on_acked_beyond(&mut self, _dir: Direction) {}

    /// The flow ended (FIN/RST, idle timeout, eviction, or end of input).
    fn on_end(&mut self, _out: &mut dyn PduSink) {}
}

/// Chooses the dissector for a new flow.
pub trait HandlerFactory {
    type Handler: StreamHandler;

    /// Called with the first payload bytes seen on a flow (in direction `dir`).
    /// `None` means "no dissector for this flow": the flow is still tracked (counters,
    /// Community ID) but its payload is skipped without buffering.
    fn classify(&mut self, flow: &FlowMeta, dir: Direction, first: &[u8]) -> Option<Self::Handler>;

    /// For a new UDP flow: whether the sender of its first datagram is the client (the
    /// requesting side), when the payload itself says so — DNP3's link-layer DIR bit
    /// marks frames from the master. `None` leaves it to the ports.
    fn datagram_sender_is_client(&self, _first: &[u8]) -> Option<bool> {
        None
    }
}
