//! Per-flow state: link framing and resynchronisation, transport reassembly per link
//! address pair and direction, and request/response pairing by application sequence
//! number. Every table has a bound from [`Dnp3Config`]. What a capture gap explains
//! (the rest of a frame it cut, the answer to a request it took) is flagged RESYNC,
//! not charged to the device: see the crate docs ("Capture loss").

use std::collections::VecDeque;

use otwatch_event::{Anomalies, Direction, Dnp3Info, Native, Operation, Pdu, PduSink, Skipped};

use crate::codes::{FunctionCode, TransportHeader};
use crate::decode::{decode_fragment, link_info, request_operation, Decoded, Link};
use crate::parser::{
    check_header, parse_link_frame, DissectError, LinkFrame, HEADER_LEN, MAX_FRAME_LEN,
    MAX_USER_DATA,
};

/// Bounds of one flow's state. Limits are data, not globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnp3Config {
    /// Largest application fragment reassembled from transport segments (octets); a
    /// longer one is reported once (`BAD_LENGTH`) and dropped. At least 249. The
    /// default, 8 KiB, is four times the 2048 octets outstations usually accept.
    pub max_fragment: usize,
    /// Fragments reassembled at once per flow (one per link address pair and
    /// direction); the oldest is dropped beyond. At least 1.
    pub max_reassemblies: usize,
    /// Requests kept for pairing; when full the oldest is dropped and the new one
    /// flagged `REQUEST_FLOOD`. At least 1.
    pub max_outstanding: usize,
    /// Offsets examined per call while looking for the next frame. At least 1.
    pub max_resync_scan: usize,
    /// Points and attributes kept per event.
    pub max_points: usize,
}

impl Default for Dnp3Config {
    fn default() -> Self {
        Dnp3Config {
            max_fragment: 8 * 1024,
            max_reassemblies: 8,
            max_outstanding: 32,
            max_resync_scan: 4096,
            max_points: 1024,
        }
    }
}

/// How the flow layer presents bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// In-order TCP bytes: an incomplete frame waits for more.
    Stream,
    /// One whole UDP datagram per call: an incomplete frame is truncated.
    Datagram,
}

#[derive(Debug, Clone)]
struct Reassembly {
    dir: Direction,
    src: u16,
    dst: u16,
    from_master: bool,
    last_seq: u8,
    buf: Vec<u8>,
    /// Over `max_fragment`: reported, the rest is ignored until the next FIR.
    overflowed: bool,
    stamp: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    master: u16,
    outstation: u16,
    seq: u8,
    operation: Operation,
    /// Sent before a gap in the requests: its answer does not show that pairing
    /// resumed (the answers to the requests the gap took come after it).
    before_request_gap: bool,
    /// Outstanding across a gap in the responses: its answer may have been in the
    /// gap. Dropped once a later request of its association is answered.
    before_answer_gap: bool,
    /// Requests of the flow pushed before this one (see `Dnp3Flow::pushes`).
    pushed: u64,
}

/// A multi-fragment response under way: what its first fragment's pairing gave, for
/// the later fragments (which carry no request to pair with).
#[derive(Debug, Clone, Copy)]
struct Continuing {
    master: u16,
    outstation: u16,
    operation: Operation,
    /// Empty, or UNMATCHED_RESPONSE (with RESYNC when a capture loss explains it).
    anomalies: Anomalies,
}

/// Roles a direction's link frames showed (their DIR bit): its gaps lose requests
/// (the master's) or responses (the outstation's).
const MASTER: u8 = 1;
const OUTSTATION: u8 = 2;

/// Framing state of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct DirState {
    /// Bytes skipped since the last frame, gap or datagram (after a gap, or at the start
    /// of a flow joined mid-stream, the rest of a frame the loss cut is RESYNC, not
    /// GARBAGE).
    skipped: Skipped,
    /// [`MASTER`] and [`OUTSTATION`] bits: whose frames this direction carried.
    roles: u8,
}

/// DNP3 state of one flow (both directions).
#[derive(Debug, Clone)]
pub struct Dnp3Flow {
    config: Dnp3Config,
    framing: Framing,
    reassembly: Vec<Reassembly>,
    pending: VecDeque<Pending>,
    /// Requests pushed so far: a pending request whose sequence number came round again
    /// since (16 pushes) is not waiting any more.
    pushes: u64,
    /// Multi-fragment responses under way: what their first fragment's pairing gave.
    continuing: VecDeque<Continuing>,
    /// Per direction (`Direction::index`).
    dirs: [DirState; 2],
    /// A gap lost requests: this many more responses that find no request are flagged
    /// RESYNC, at most the outstanding bound, and none once a request sent after the
    /// gap is answered.
    lost_requests: usize,
    /// A gap lost responses: a later fragment (FIR clear) whose first fragment is
    /// missing is flagged RESYNC until the next first fragment of a response.
    responses_cut: bool,
    /// The direction whose next `on_data` call comes in a segment acknowledging
    /// request bytes the sensor did not see: a response in it that finds no request
    /// answers one of those bytes.
    answering_unseen: Option<Direction>,
    /// The direction whose next `on_data` call comes in a segment acknowledging
    /// response bytes the sensor did not see: the requests those answered are not
    /// outstanding any more, so a request in it that finds the table full is no flood.
    answered_unseen: Option<Direction>,
    stamp: u64,
}

enum Scan {
    Found(usize),
    NeedMore(usize),
    NotFound(usize),
}

impl Dnp3Flow {
    pub fn new(config: &Dnp3Config, framing: Framing) -> Self {
        let config = Dnp3Config {
            max_fragment: config.max_fragment.max(MAX_USER_DATA),
            max_reassemblies: config.max_reassemblies.max(1),
            max_outstanding: config.max_outstanding.max(1),
            max_resync_scan: config.max_resync_scan.max(1),
            max_points: config.max_points,
        };
        Dnp3Flow {
            config,
            framing,
            reassembly: Vec::new(),
            pending: VecDeque::new(),
            pushes: 0,
            continuing: VecDeque::new(),
            dirs: [DirState::default(); 2],
            lost_requests: 0,
            responses_cut: false,
            answering_unseen: None,
            answered_unseen: None,
            stamp: 0,
        }
    }

    /// The flow's start was not captured (no handshake): its first bytes may be the
    /// rest of a frame, and its first responses may answer requests sent before the
    /// sensor's start, or continue a response that began before it. Framing is as
    /// usual (every header carries its CRC), but what is skipped before the first
    /// frame of a direction, up to a frame's length, is reported as RESYNC (as after a
    /// gap), and responses are treated as after a gap in both directions until
    /// pairing resumes. A datagram is whole: in datagram framing only pairing is
    /// affected.
    pub fn joined_mid_stream(mut self) -> Self {
        for st in &mut self.dirs {
            st.skipped.joined();
        }
        self.lost_requests = self.config.max_outstanding;
        self.responses_cut = true;
        self
    }

    /// Requests waiting for their response.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// Fragments being reassembled.
    pub fn reassembling(&self) -> usize {
        self.reassembly.len()
    }

    /// Bytes of one direction (in-order TCP bytes, or one UDP datagram). Emits one
    /// [`Pdu`] per application fragment and per anomaly of the lower layers, and
    /// returns how many bytes were consumed: the tail of a frame split across
    /// segments is left for the next call. In datagram framing everything is
    /// consumed.
    pub fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let n = self.frame(dir, data, out);
        if self.answering_unseen == Some(dir) {
            self.answering_unseen = None;
        }
        if self.answered_unseen == Some(dir) {
            self.answered_unseen = None;
        }
        n
    }

    fn frame(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        if self.framing == Framing::Datagram {
            // A datagram is whole: it starts a stretch, never after a gap.
            if let Some(st) = self.dirs.get_mut(dir.index()) {
                *st = DirState {
                    roles: st.roles,
                    ..DirState::default()
                };
            }
        }
        let mut off = 0;
        // Progress: every turn consumes at least one byte, or leaves the loop.
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            match parse_link_frame(rest) {
                Ok((after, frame)) => {
                    self.framed(dir, frame.control.dir());
                    self.on_frame(dir, &frame, out);
                    off += rest.len() - after.len();
                }
                Err(nom::Err::Incomplete(_)) => {
                    if self.framing == Framing::Datagram {
                        self.truncated(dir, rest, out);
                        return data.len();
                    }
                    break;
                }
                Err(nom::Err::Error(DissectError::BadLength { .. })) => {
                    // A trusted header (its CRC holds) whose length is below 5.
                    let link = header_link(rest);
                    out.push(pdu(
                        dir,
                        link_info(link, "link_frame"),
                        Operation::Other,
                        Anomalies::BAD_LENGTH,
                    ));
                    self.framed(dir, link.from_master);
                    off += HEADER_LEN.min(rest.len());
                }
                Err(e) => {
                    let bad_crc = matches!(e, nom::Err::Error(DissectError::BadHeaderCrc));
                    let (skip, stop) = match self.scan(rest) {
                        Scan::Found(k) => (k, false),
                        Scan::NeedMore(k) | Scan::NotFound(k) => (k, true),
                    };
                    self.skip(dir, skip, bad_crc, out);
                    off += skip;
                    if stop {
                        if self.framing == Framing::Datagram {
                            return data.len();
                        }
                        break;
                    }
                }
            }
        }
        off
    }

    /// Bytes of `dir` were lost.
    ///
    /// * Fragments being reassembled in that direction are dropped: the gap may have
    ///   cut one in two, and its later frames must not complete it.
    /// * Framing needs no state (every header carries its CRC), but what is skipped
    ///   before the next frame, up to a frame's length, is reported as RESYNC (the rest
    ///   of a frame the gap cut).
    /// * When `dir` carries the master's frames, requests were lost: responses that
    ///   find no request are flagged RESYNC until a request sent after the gap is
    ///   answered.
    /// * When it carries the outstation's, responses were lost: the requests then
    ///   outstanding are dropped once a later request of their association is
    ///   answered (so that they neither fill the table towards a false REQUEST_FLOOD
    ///   nor pair with a later response once the 4-bit sequence wraps), and a later
    ///   fragment whose first fragment the gap took is flagged RESYNC.
    pub fn on_gap(&mut self, dir: Direction, _out: &mut dyn PduSink) {
        self.reassembly.retain(|r| r.dir != dir);
        let roles = self.roles(dir);
        if let Some(st) = self.dirs.get_mut(dir.index()) {
            st.skipped.lost();
        }
        if roles & MASTER != 0 {
            self.lost_requests = self.config.max_outstanding;
            for p in &mut self.pending {
                p.before_request_gap = true;
            }
        }
        if roles & OUTSTATION != 0 {
            self.responses_cut = true;
            for p in &mut self.pending {
                p.before_answer_gap = true;
            }
        }
    }

    /// The next bytes of the other direction come in a segment that acknowledges bytes
    /// of `dir` the sensor did not see: lost by the capture, or still on their way.
    /// When `dir` carries the master's frames, a response in them (until the end of
    /// the next `on_data` call for the other direction) that finds no request is
    /// flagged RESYNC: it answers one of those bytes. When it carries the
    /// outstation's, a request in them that finds the table full is not flagged
    /// REQUEST_FLOOD: those bytes may have answered the requests the table holds.
    /// Only this data: the acknowledgment is the segment's own evidence, not a state
    /// of the flow.
    pub fn on_unseen_acked(&mut self, dir: Direction) {
        let roles = self.roles(dir);
        if roles & MASTER != 0 {
            self.answering_unseen = Some(dir.reverse());
        }
        if roles & OUTSTATION != 0 {
            self.answered_unseen = Some(dir.reverse());
        }
    }

    /// The flow ended: partial fragments and unanswered requests are forgotten.
    pub fn on_end(&mut self, _out: &mut dyn PduSink) {
        self.reassembly.clear();
        self.pending.clear();
        self.continuing.clear();
        self.dirs = [DirState::default(); 2];
        self.lost_requests = 0;
        self.responses_cut = false;
        self.answering_unseen = None;
        self.answered_unseen = None;
    }

    /// Whose frames `dir` carries: what its frames showed, else the usual orientation
    /// (the master is the flow's initiator; over UDP the flow layer makes it so).
    fn roles(&self, dir: Direction) -> u8 {
        match self.dirs.get(dir.index()).map_or(0, |st| st.roles) {
            0 if dir == Direction::ToServer => MASTER,
            0 => OUTSTATION,
            roles => roles,
        }
    }

    /// A trusted header (its CRC holds) from the master or not: framing is back, the
    /// stretch of skipped bytes (if any) is over.
    fn framed(&mut self, dir: Direction, from_master: bool) {
        if let Some(st) = self.dirs.get_mut(dir.index()) {
            st.skipped.framed();
            st.roles |= if from_master { MASTER } else { OUTSTATION };
        }
    }

    /// Looks for the next offset (after the first) where a frame header with a valid
    /// CRC starts.
    fn scan(&self, rest: &[u8]) -> Scan {
        let window = rest.len().min(self.config.max_resync_scan);
        for k in 1..window {
            let Some(candidate) = rest.get(k..) else {
                break;
            };
            if candidate.first() != Some(&0x05) {
                continue;
            }
            match check_header(candidate) {
                Ok(Some(_)) | Err(DissectError::BadLength { .. }) => return Scan::Found(k),
                Ok(None) => return Scan::NeedMore(k),
                Err(_) => {}
            }
        }
        Scan::NotFound(window.max(1))
    }

    /// Consumes `n` unframable bytes. A stretch yields one GARBAGE event at its first
    /// skip (with BAD_CHECKSUM when it starts at a header whose CRC fails); after a
    /// gap, one RESYNC event instead (a `05 64` the gap left in a frame's data is no
    /// fault of the device either), and a GARBAGE event as well once the stretch is as
    /// long as a frame: a gap leaves less of one.
    fn skip(&mut self, dir: Direction, n: usize, bad_crc: bool, out: &mut dyn PduSink) {
        let Some(st) = self.dirs.get_mut(dir.index()) else {
            return;
        };
        let first = st.skipped.is_empty();
        let Some(mut anomalies) = st.skipped.skip(n, MAX_FRAME_LEN) else {
            return;
        };
        if anomalies == Anomalies::GARBAGE && bad_crc && first {
            anomalies |= Anomalies::BAD_CHECKSUM;
        }
        let info = Dnp3Info {
            function: "garbage",
            from_master: dir == Direction::ToServer,
            ..Dnp3Info::default()
        };
        out.push(Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation: Operation::Other,
            anomalies,
            native: Native::Dnp3(Box::new(info)),
        });
    }

    /// The end of a datagram holds part of a frame.
    fn truncated(&mut self, dir: Direction, rest: &[u8], out: &mut dyn PduSink) {
        let link = header_link(rest);
        out.push(pdu(
            dir,
            link_info(link, "link_frame"),
            Operation::Other,
            Anomalies::BAD_LENGTH,
        ));
    }

    fn on_frame(&mut self, dir: Direction, frame: &LinkFrame<'_>, out: &mut dyn PduSink) {
        let link = Link {
            src: frame.source,
            dst: frame.destination,
            from_master: frame.control.dir(),
        };
        let mut buf = [0u8; MAX_USER_DATA];
        let data = match frame.user_data(&mut buf) {
            Ok(d) => d,
            Err(_) => {
                // The data is not trusted, nor the fragment it was part of.
                self.drop_reassembly(dir, link);
                out.push(pdu(
                    dir,
                    link_info(link, "link_frame"),
                    Operation::Other,
                    Anomalies::BAD_CHECKSUM,
                ));
                return;
            }
        };
        if !frame.control.carries_user_data() {
            // Link services (reset, status, ACK): no application content.
            return;
        }
        let Some((&th, payload)) = data.split_first() else {
            out.push(pdu(
                dir,
                link_info(link, "link_frame"),
                Operation::Other,
                Anomalies::MALFORMED,
            ));
            return;
        };
        self.transport(dir, link, TransportHeader(th), payload, out);
    }

    fn find(&self, dir: Direction, link: Link) -> Option<usize> {
        self.reassembly.iter().position(|r| {
            r.dir == dir
                && r.src == link.src
                && r.dst == link.dst
                && r.from_master == link.from_master
        })
    }

    fn drop_reassembly(&mut self, dir: Direction, link: Link) {
        if let Some(k) = self.find(dir, link) {
            self.reassembly.swap_remove(k);
        }
    }

    fn transport(
        &mut self,
        dir: Direction,
        link: Link,
        th: TransportHeader,
        payload: &[u8],
        out: &mut dyn PduSink,
    ) {
        self.stamp += 1;
        let found = self.find(dir, link);
        if th.fir() {
            if th.fin() {
                // A whole fragment in one frame: parsed from the frame's buffer.
                if let Some(k) = found {
                    self.reassembly.swap_remove(k);
                }
                self.application(dir, link, payload, out);
                return;
            }
            let k = match found {
                Some(k) => k,
                None => {
                    if self.reassembly.len() >= self.config.max_reassemblies {
                        if let Some(oldest) = self
                            .reassembly
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, r)| r.stamp)
                            .map(|(k, _)| k)
                        {
                            tracing::debug!(
                                "dnp3: reassembly table full, dropping the oldest fragment"
                            );
                            self.reassembly.swap_remove(oldest);
                        }
                    }
                    self.reassembly.push(Reassembly {
                        dir,
                        src: link.src,
                        dst: link.dst,
                        from_master: link.from_master,
                        last_seq: 0,
                        buf: Vec::new(),
                        overflowed: false,
                        stamp: 0,
                    });
                    self.reassembly.len() - 1
                }
            };
            if let Some(r) = self.reassembly.get_mut(k) {
                r.buf.clear();
                r.buf.extend_from_slice(payload);
                r.last_seq = th.seq();
                r.overflowed = false;
                r.stamp = self.stamp;
            }
            return;
        }
        let Some(k) = found else {
            tracing::debug!("dnp3: transport segment without its first segment, ignored");
            return;
        };
        let max_fragment = self.config.max_fragment;
        let Some(r) = self.reassembly.get_mut(k) else {
            return;
        };
        if th.seq() == r.last_seq {
            // A link-layer retry of the previous segment.
            return;
        }
        if th.seq() != (r.last_seq + 1) & 0x3F {
            tracing::debug!("dnp3: transport sequence broken, fragment dropped");
            self.reassembly.swap_remove(k);
            return;
        }
        r.last_seq = th.seq();
        r.stamp = self.stamp;
        if r.overflowed {
            if th.fin() {
                self.reassembly.swap_remove(k);
            }
            return;
        }
        if r.buf.len() + payload.len() > max_fragment {
            // Reported once, from the fragment's header; its memory is released.
            let head = std::mem::take(&mut r.buf);
            r.overflowed = true;
            let fin = th.fin();
            self.oversized(dir, link, &head, out);
            if fin {
                if let Some(k) = self.find(dir, link) {
                    self.reassembly.swap_remove(k);
                }
            }
            return;
        }
        r.buf.extend_from_slice(payload);
        if th.fin() {
            let r = self.reassembly.swap_remove(k);
            self.application(dir, link, &r.buf, out);
        }
    }

    fn oversized(&mut self, dir: Direction, link: Link, head: &[u8], out: &mut dyn PduSink) {
        let header = head.get(..4.min(head.len())).unwrap_or_default();
        let mut d = decode_fragment(header, link, 0);
        d.info.objects.clear();
        let op = match d.function {
            Some(f) if f.is_response() => Operation::Other,
            Some(f) => request_operation(f, &[]),
            None => Operation::Other,
        };
        out.push(pdu(
            dir,
            d.info,
            op,
            (d.anomalies & Anomalies::UNKNOWN_FUNCTION) | Anomalies::BAD_LENGTH,
        ));
    }

    fn application(&mut self, dir: Direction, link: Link, fragment: &[u8], out: &mut dyn PduSink) {
        let mut d = decode_fragment(fragment, link, self.config.max_points);
        let op = self.pair(dir, link, &mut d);
        out.push(pdu(dir, d.info, op, d.anomalies));
    }

    /// The operation of a fragment: a request's own, and remembered for its
    /// response; a response's from its request (same link pair, same sequence).
    fn pair(&mut self, dir: Direction, link: Link, d: &mut Decoded) -> Operation {
        let Some(function) = d.function.filter(|f| f.is_known()) else {
            return Operation::Other;
        };
        let seq = d.info.sequence;
        match function {
            FunctionCode::RESPONSE | FunctionCode::AUTHENTICATE_RESP => {
                let (outstation, master) = (link.src, link.dst);
                let (operation, anomalies) = if d.info.fir {
                    self.first_fragment(dir, function, master, outstation, seq, d.info.fin)
                } else {
                    self.later_fragment(function, master, outstation, d.info.fin)
                };
                d.anomalies |= anomalies;
                operation
            }
            FunctionCode::UNSOLICITED_RESPONSE => request_operation(function, &d.info.objects),
            _ => {
                let operation = request_operation(function, &d.info.objects);
                if function.expects_response() {
                    let (master, outstation) = (link.src, link.dst);
                    // A master that sends a request again with its number, nothing in
                    // between, retries it: the retry replaces it. One that sent other
                    // requests since pipelines (SELECT 7, OPERATE 8, SELECT 7, ...
                    // before any answer): both wait, and the answers, which come in
                    // order, pair with the oldest of their number. Across a gap in
                    // the requests, what was in between is unknown: both wait.
                    let newest = self
                        .pending
                        .iter()
                        .rposition(|p| p.master == master && p.outstation == outstation);
                    let retried = newest.filter(|&k| {
                        self.pending
                            .get(k)
                            .is_some_and(|p| p.seq == seq && !p.before_request_gap)
                    });
                    if let Some(k) = retried {
                        self.pending.remove(k);
                    }
                    // Nor does one wait whose number the master has used 16 requests
                    // later (the 4-bit sequence came round): it will not be answered,
                    // and must not take the new one's answer.
                    let pushes = self.pushes;
                    self.pending.retain(|p| {
                        !(p.master == master
                            && p.outstation == outstation
                            && p.seq == seq
                            && pushes - p.pushed >= 16)
                    });
                    if self.pending.len() >= self.config.max_outstanding {
                        // Not a flood when the request dropped was outstanding at a
                        // gap in the responses (its answer may have been in it), or
                        // when this request's segment acknowledges responses the
                        // sensor did not see.
                        let answered_in_gap = self
                            .pending
                            .pop_front()
                            .is_some_and(|p| p.before_answer_gap);
                        if !answered_in_gap && self.answered_unseen != Some(dir) {
                            d.anomalies |= Anomalies::REQUEST_FLOOD;
                        }
                    }
                    self.pending.push_back(Pending {
                        master,
                        outstation,
                        seq,
                        operation,
                        before_request_gap: false,
                        before_answer_gap: false,
                        pushed: self.pushes,
                    });
                    self.pushes += 1;
                }
                operation
            }
        }
    }

    /// The first fragment of a response (FIR): pairs with its request, and is
    /// remembered for the later fragments when FIN is clear.
    fn first_fragment(
        &mut self,
        dir: Direction,
        function: FunctionCode,
        master: u16,
        outstation: u16,
        seq: u8,
        fin: bool,
    ) -> (Operation, Anomalies) {
        let k = self
            .pending
            .iter()
            .position(|p| p.master == master && p.outstation == outstation && p.seq == seq);
        // An outstation answers in order: after a gap in the requests, an answer whose
        // number matches a request behind an older one of its association answers a
        // request the gap took (a master that pipelines repeats numbers), not that one.
        let oldest = self
            .pending
            .iter()
            .position(|p| p.master == master && p.outstation == outstation);
        let behind = k.is_some() && k != oldest;
        let paired = if behind && self.lost_requests > 0 {
            None
        } else {
            k.and_then(|k| self.take(k))
        };
        self.responses_cut = false;
        self.continuing
            .retain(|c| !(c.master == master && c.outstation == outstation));
        let (operation, anomalies) = match paired {
            Some(op) => (op, Anomalies::empty()),
            None if function == FunctionCode::AUTHENTICATE_RESP => {
                (Operation::Session, Anomalies::empty())
            }
            // Its request was lost by the capture: in a gap, or in bytes its own
            // segment acknowledges.
            None if self.lost_requests > 0 || self.answering_unseen == Some(dir) => {
                self.lost_requests = self.lost_requests.saturating_sub(1);
                (
                    Operation::Other,
                    Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC,
                )
            }
            None => (Operation::Other, Anomalies::UNMATCHED_RESPONSE),
        };
        // A plain unmatched response needs no entry: its later fragments find none
        // and are unmatched too.
        if !fin && anomalies != Anomalies::UNMATCHED_RESPONSE {
            if self.continuing.len() >= self.config.max_reassemblies {
                self.continuing.pop_front();
            }
            self.continuing.push_back(Continuing {
                master,
                outstation,
                operation,
                anomalies,
            });
        }
        (operation, anomalies)
    }

    /// A later fragment of a response (FIR clear): what its first fragment got.
    fn later_fragment(
        &mut self,
        function: FunctionCode,
        master: u16,
        outstation: u16,
        fin: bool,
    ) -> (Operation, Anomalies) {
        let k = self
            .continuing
            .iter()
            .position(|c| c.master == master && c.outstation == outstation);
        match k.and_then(|k| self.continuing.get(k).map(|c| (k, *c))) {
            Some((k, c)) => {
                if fin {
                    self.continuing.remove(k);
                }
                (c.operation, c.anomalies)
            }
            None if function == FunctionCode::AUTHENTICATE_RESP => {
                (Operation::Session, Anomalies::empty())
            }
            // Its first fragment was lost by the capture.
            None if self.responses_cut => (
                Operation::Other,
                Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC,
            ),
            None => (Operation::Other, Anomalies::UNMATCHED_RESPONSE),
        }
    }

    /// Takes the outstanding request at `k`, answered, and returns its operation.
    /// After a gap in the responses, the older requests of its association that were
    /// outstanding across the gap go too: a master awaits one answer at a time, so
    /// theirs were in the gap. Once a request sent after a gap in the requests is
    /// answered, pairing has resumed.
    fn take(&mut self, k: usize) -> Option<Operation> {
        let mut k = k;
        if k > 0 {
            // Rare: an answer that is not to the oldest request.
            let (master, outstation) = self.pending.get(k).map(|p| (p.master, p.outstation))?;
            let mut j = 0;
            while j < k {
                match self.pending.get(j) {
                    Some(p)
                        if p.before_answer_gap
                            && p.master == master
                            && p.outstation == outstation =>
                    {
                        self.pending.remove(j);
                        k -= 1;
                    }
                    _ => j += 1,
                }
            }
        }
        let p = self.pending.remove(k)?;
        if !p.before_request_gap {
            self.lost_requests = 0;
        }
        Some(p.operation)
    }
}

/// Link facts from a header whose CRC held (or from what is there).
fn header_link(h: &[u8]) -> Link {
    let b = |k: usize| h.get(k).copied().unwrap_or(0);
    Link {
        dst: u16::from_le_bytes([b(4), b(5)]),
        src: u16::from_le_bytes([b(6), b(7)]),
        from_master: b(3) & 0x80 != 0,
    }
}

fn pdu(dir: Direction, info: Dnp3Info, operation: Operation, anomalies: Anomalies) -> Pdu {
    Pdu {
        direction: dir,
        is_response: !info.from_master,
        operation,
        anomalies,
        native: Native::Dnp3(Box::new(info)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::build_link_frame;
    use otwatch_event::testing::drive_stream;
    use Direction::{ToClient, ToServer};

    const MASTER: u16 = 1;
    const OUTSTATION: u16 = 1024;

    /// Link frames carrying `fragment`: unconfirmed user data (CTRL 0xC4 from the
    /// master, 0x44 from the outstation), transport segments of at most 249 octets
    /// with FIR/FIN and sequence numbers from `tseq`.
    fn frames(from_master: bool, fragment: &[u8], tseq: u8) -> Vec<u8> {
        let (ctrl, dst, src) = if from_master {
            (0xC4, OUTSTATION, MASTER)
        } else {
            (0x44, MASTER, OUTSTATION)
        };
        let chunks: Vec<&[u8]> = fragment.chunks(249).collect();
        let n = chunks.len();
        let mut out = Vec::new();
        for (k, c) in chunks.iter().enumerate() {
            let mut th = (tseq + k as u8) & 0x3F;
            if k == 0 {
                th |= 0x40;
            }
            if k + 1 == n {
                th |= 0x80;
            }
            let mut data = vec![th];
            data.extend_from_slice(c);
            out.extend(build_link_frame(ctrl, dst, src, &data));
        }
        out
    }

    fn flow() -> Dnp3Flow {
        Dnp3Flow::new(&Dnp3Config::default(), Framing::Stream)
    }

    fn feed(f: &mut Dnp3Flow, dir: Direction, bytes: &[u8]) -> Vec<Pdu> {
        let mut out = Vec::new();
        let n = f.on_data(dir, bytes, &mut out);
        assert_eq!(n, bytes.len(), "not all consumed");
        out
    }

    fn one(f: &mut Dnp3Flow, dir: Direction, bytes: &[u8]) -> Pdu {
        let mut out = feed(f, dir, bytes);
        assert_eq!(out.len(), 1, "{out:?}");
        out.pop().unwrap()
    }

    fn info(p: &Pdu) -> &Dnp3Info {
        match &p.native {
            Native::Dnp3(d) => d,
            other => panic!("not dnp3: {other:?}"),
        }
    }

    /// SELECT then OPERATE of CROB index 5 (LATCH_ON), with their responses.
    fn crob(fc: u8, seq: u8) -> Vec<u8> {
        vec![
            0xC0 | seq,
            fc,
            12,
            1,
            0x17,
            1,
            5,
            0x03,
            1,
            0x64,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    }
    fn crob_response(seq: u8) -> Vec<u8> {
        let mut r = vec![0xC0 | seq, 0x81, 0x00, 0x00];
        r.extend_from_slice(&crob(0, 0)[2..]);
        r
    }

    #[test]
    fn select_operate_exchange() {
        let mut f = flow();
        let q = one(&mut f, ToServer, &frames(true, &crob(3, 1), 0));
        assert_eq!(
            (q.operation, q.is_response, q.direction),
            (Operation::Other, false, ToServer)
        );
        assert_eq!(info(q_ref(&q)).function, "select");
        let r = one(&mut f, ToClient, &frames(false, &crob_response(1), 0));
        assert_eq!((r.operation, r.is_response), (Operation::Other, true));
        assert!(r.anomalies.is_empty());
        let q = one(&mut f, ToServer, &frames(true, &crob(4, 2), 1));
        assert_eq!(q.operation, Operation::Write);
        let i = info(&q);
        assert_eq!(
            (i.link_src, i.link_dst, i.from_master, i.sequence),
            (MASTER, OUTSTATION, true, 2)
        );
        let p = &i.points.as_ref().unwrap()[0];
        assert_eq!((p.group, p.index, p.control_code), (12, 5, Some(3)));
        let r = one(&mut f, ToClient, &frames(false, &crob_response(2), 1));
        assert_eq!(r.operation, Operation::Write);
        assert!(r.anomalies.is_empty());
        assert_eq!(info(&r).iin, Some(0));
        assert_eq!(f.outstanding(), 0);
    }

    fn q_ref(p: &Pdu) -> &Pdu {
        p
    }

    #[test]
    fn responses_without_request() {
        let mut f = flow();
        let r = one(&mut f, ToClient, &frames(false, &crob_response(7), 0));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert_eq!(r.operation, Operation::Other);
        // Unsolicited: read, no pairing needed. C0|UNS 0x10, seq 0, 0x82, IIN.
        let u = one(
            &mut f,
            ToClient,
            &frames(false, &[0xF0, 0x82, 0x00, 0x00], 1),
        );
        assert_eq!(
            (u.operation, u.anomalies),
            (Operation::Read, Anomalies::empty())
        );
        assert!(info(&u).uns && info(&u).con);
        // A response to another link pair's request does not pair.
        feed(
            &mut f,
            ToServer,
            &frames(true, &[0xC3, 0x01, 60, 1, 0x06], 0),
        );
        let mut other = crob_response(3);
        other.truncate(4);
        let bytes = build_link_frame(0x44, 9, OUTSTATION, &[0xC0, other[0], 0x81, 0, 0]);
        let r = one(&mut f, ToClient, &bytes);
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn multi_frame_fragment_and_multi_fragment_response() {
        // READ, then a response of 600 octets in 3 frames (g30v3, 149 objects), then a
        // second fragment (FIR clear, FIN) of the same response.
        let mut f = flow();
        feed(
            &mut f,
            ToServer,
            &frames(true, &[0xC5, 0x01, 30, 3, 0x06], 0),
        );
        let mut resp = vec![0x85, 0x81, 0x00, 0x00, 30, 3, 0x01, 0, 0, 148, 0];
        for k in 0..149u32 {
            resp.extend_from_slice(&(k * 10).to_le_bytes());
        }
        assert!(resp.len() > 498);
        let bytes = frames(false, &resp, 10);
        // 3 frames: 250 + 250 + 110 data octets (transport headers included), with
        // 16 + 16 + 7 block CRCs.
        assert_eq!(bytes.len(), 3 * 10 + resp.len() + 3 + 2 * (16 + 16 + 7));
        // One byte at a time, as the flow layer keeps the tail.
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for b in &bytes {
            buf.push(*b);
            let n = f.on_data(ToClient, &buf, &mut out);
            buf.drain(..n);
        }
        assert!(buf.is_empty());
        assert_eq!(out.len(), 1, "{out:?}");
        let r = &out[0];
        assert_eq!(
            (r.operation, r.anomalies),
            (Operation::Read, Anomalies::empty())
        );
        let i = info(r);
        assert!(i.fir && !i.fin);
        assert_eq!(i.objects[0].count, 149);
        let pts = i.points.as_ref().unwrap();
        assert_eq!(pts.len(), 149);
        assert_eq!((pts[148].index, pts[148].value), (148, Some(1480.0)));
        // Second fragment: seq 6, FIN only.
        let r = one(
            &mut f,
            ToClient,
            &frames(
                false,
                &[0x46, 0x81, 0, 0, 30, 3, 0x00, 0, 0, 1, 0, 0, 0],
                13,
            ),
        );
        assert_eq!(
            (r.operation, r.anomalies),
            (Operation::Read, Anomalies::empty())
        );
        assert_eq!(f.reassembling(), 0);
    }

    #[test]
    fn several_frames_in_one_call_and_link_services() {
        let mut f = flow();
        let mut bytes = build_link_frame(0xC9, OUTSTATION, MASTER, &[]); // request link status
        bytes.extend(frames(true, &crob(3, 1), 0));
        bytes.extend(build_link_frame(0x0B, MASTER, OUTSTATION, &[])); // link status
        bytes.extend(frames(true, &crob(4, 2), 1));
        let out = feed(&mut f, ToServer, &bytes);
        let fcs: Vec<u8> = out.iter().map(|p| info(p).function_code).collect();
        assert_eq!(fcs, [3, 4]);
        // With half of another frame: the whole ones are consumed, the rest kept.
        let whole = bytes.len();
        bytes.extend_from_slice(&frames(true, &crob(4, 3), 2)[..12]);
        let mut out = Vec::new();
        assert_eq!(flow().on_data(ToServer, &bytes, &mut out), whole);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn every_strict_prefix_waits() {
        let mut resp = vec![0xC1, 0x81, 0, 0, 1, 2, 0x00, 0, 39];
        resp.extend_from_slice(&[0x81; 40]);
        for bytes in [
            frames(true, &crob(5, 1), 0),
            frames(false, &resp, 0),
            build_link_frame(0xC0, OUTSTATION, MASTER, &[]),
        ] {
            for n in 0..bytes.len() {
                let mut out = Vec::new();
                assert_eq!(
                    flow().on_data(ToServer, &bytes[..n], &mut out),
                    0,
                    "prefix {n}"
                );
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn bad_data_crc_drops_the_frame_and_its_fragment() {
        let mut f = flow();
        // g30v4 (16-bit analog, no flags), 16-bit range 0..=299: 600 octets, 3 frames.
        let mut resp = vec![0xC1, 0x81, 0, 0, 30, 4, 0x01, 0, 0, 0x2B, 0x01];
        resp.extend_from_slice(&[0x11; 600]);
        let mut bytes = frames(false, &resp, 0);
        // Corrupt a data octet of the second frame (after its header).
        let second = 292;
        bytes[second + 12] ^= 0x40;
        let out = feed(&mut f, ToClient, &bytes);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].anomalies, Anomalies::BAD_CHECKSUM);
        assert_eq!(info(&out[0]).function, "link_frame");
        assert_eq!(info(&out[0]).link_src, OUTSTATION);
        assert!(out[0].is_response);
        assert_eq!(f.reassembling(), 0);
    }

    #[test]
    fn garbage_and_bad_header_crc_resync() {
        let mut f = flow();
        let good = frames(true, &crob(3, 1), 0);
        let mut bad_header = good.clone();
        bad_header[9] ^= 0xFF;
        let mut bytes = bad_header.clone();
        bytes.extend_from_slice(&[0x05, 0x64, 0x00, 0x05]); // a false start
        bytes.extend_from_slice(&good);
        bytes.extend_from_slice(&good);
        let out = feed(&mut f, ToServer, &bytes);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0].anomalies,
            Anomalies::GARBAGE | Anomalies::BAD_CHECKSUM
        );
        assert_eq!(info(&out[0]).function, "garbage");
        assert!(out[1].anomalies.is_empty() && out[2].anomalies.is_empty());
        // Plain garbage, over several calls: one event.
        let mut f = Dnp3Flow::new(
            &Dnp3Config {
                max_resync_scan: 16,
                ..Dnp3Config::default()
            },
            Framing::Stream,
        );
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for seg in [vec![0xAB; 100], vec![0xCD; 100], good.clone()] {
            buf.extend_from_slice(&seg);
            loop {
                let n = f.on_data(ToServer, &buf, &mut out);
                buf.drain(..n);
                if n == 0 || buf.is_empty() {
                    break;
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);
        assert_eq!(info(&out[1]).function, "select");
    }

    #[test]
    fn header_with_short_length() {
        let mut h = vec![0x05, 0x64, 0x03, 0x44, 1, 0, 0, 4];
        h.extend_from_slice(&crate::crc16_dnp(&h).to_le_bytes());
        h.extend(frames(true, &crob(3, 1), 0));
        let out = feed(&mut flow(), ToServer, &h);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(info(&out[1]).function, "select");
    }

    #[test]
    fn datagrams_truncate() {
        let mut f = Dnp3Flow::new(&Dnp3Config::default(), Framing::Datagram);
        let whole = frames(true, &crob(3, 1), 0);
        let mut out = Vec::new();
        assert_eq!(f.on_data(ToServer, &whole[..20], &mut out), 20);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].anomalies, Anomalies::BAD_LENGTH);
        // A whole datagram after it is clean; trailing junk is one garbage event.
        let mut d = whole.clone();
        d.extend_from_slice(&[1, 2, 3]);
        let mut out = Vec::new();
        assert_eq!(f.on_data(ToServer, &d, &mut out), d.len());
        assert_eq!(out.len(), 2);
        assert!(out[0].anomalies.is_empty());
        assert_eq!(out[1].anomalies, Anomalies::GARBAGE);
    }

    #[test]
    fn oversized_fragment_is_reported_once() {
        let config = Dnp3Config {
            max_fragment: 600,
            ..Dnp3Config::default()
        };
        let mut f = Dnp3Flow::new(&config, Framing::Stream);
        // A WRITE of 2000 octets: 9 segments.
        let mut w = vec![0xC1, 0x02, 110, 200, 0x07, 9];
        w.resize(2000, 0x20);
        let out = feed(&mut f, ToServer, &frames(true, &w, 0));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(info(&out[0]).function, "write");
        assert_eq!(f.reassembling(), 0);
        // An endless fragment (never FIN) stays bounded and reports once.
        let mut out = Vec::new();
        for k in 0..200u8 {
            let th = if k == 0 { 0x40 } else { k & 0x3F };
            let mut data = vec![th];
            if k == 0 {
                data.extend_from_slice(&[0xC1, 0x02]);
            }
            data.resize(250, 0);
            f.on_data(
                ToServer,
                &build_link_frame(0xC4, OUTSTATION, MASTER, &data),
                &mut out,
            );
        }
        assert_eq!(out.len(), 1);
        assert!(f.reassembly.iter().all(|r| r.buf.capacity() <= 1024));
    }

    #[test]
    fn transport_sequence_and_retries() {
        let mut f = flow();
        // g30v4 (16-bit analog, no flags), 16-bit range 0..=299: 600 octets, 3 frames.
        let mut resp = vec![0xC1, 0x81, 0, 0, 30, 4, 0x01, 0, 0, 0x2B, 0x01];
        resp.extend_from_slice(&[0x11; 600]);
        let bytes = frames(false, &resp, 62); // sequence wraps 62, 63, 0
        let first = 292;
        // The first frame twice (a link retry): ignored.
        let mut d = bytes[..first].to_vec();
        d.extend_from_slice(&bytes[..first]);
        d.extend_from_slice(&bytes[first..]);
        let out = feed(&mut f, ToClient, &d);
        assert_eq!(out.len(), 1);
        assert!(out[0].anomalies.contains(Anomalies::UNMATCHED_RESPONSE));
        assert!(!out[0].anomalies.contains(Anomalies::BAD_LENGTH));
        // Skip the second frame: the fragment is dropped silently.
        let mut d = bytes[..first].to_vec();
        d.extend_from_slice(&bytes[2 * first..]);
        assert!(feed(&mut f, ToClient, &d).is_empty());
        // A non-FIR segment alone: ignored.
        assert!(feed(&mut f, ToClient, &bytes[first..]).is_empty());
    }

    #[test]
    fn request_flood_is_bounded() {
        let config = Dnp3Config {
            max_outstanding: 4,
            ..Dnp3Config::default()
        };
        let mut f = Dnp3Flow::new(&config, Framing::Stream);
        let mut flagged = 0;
        for seq in 0..10u8 {
            let p = one(&mut f, ToServer, &frames(true, &crob(3, seq), seq));
            if p.anomalies.contains(Anomalies::REQUEST_FLOOD) {
                flagged += 1;
            }
        }
        assert_eq!(f.outstanding(), 4);
        assert_eq!(flagged, 6);
        // The same sequence number again replaces, it does not flood.
        let p = one(&mut f, ToServer, &frames(true, &crob(3, 9), 10));
        assert!(p.anomalies.is_empty());
    }

    #[test]
    fn requests_whose_answers_the_capture_may_have_lost_leave_no_flood() {
        let config = Dnp3Config {
            max_outstanding: 4,
            ..Dnp3Config::default()
        };
        let request = |f: &mut Dnp3Flow, seq: u8| {
            one(f, ToServer, &frames(true, &crob(3, seq), seq)).anomalies
        };
        // Four requests outstanding at a gap in the responses: dropping each of them
        // to make room is no flood; dropping one sent after the gap is.
        let mut f = Dnp3Flow::new(&config, Framing::Stream);
        for seq in 0..4 {
            assert!(request(&mut f, seq).is_empty());
        }
        f.on_gap(ToClient, &mut Vec::new());
        for seq in 4..8 {
            assert!(request(&mut f, seq).is_empty(), "{seq}");
        }
        assert_eq!(request(&mut f, 8), Anomalies::REQUEST_FLOOD);
        // A request whose segment acknowledges responses the sensor did not see.
        let mut f = Dnp3Flow::new(&config, Framing::Stream);
        for seq in 0..4 {
            assert!(request(&mut f, seq).is_empty());
        }
        f.on_unseen_acked(ToClient);
        assert!(request(&mut f, 4).is_empty());
        // The evidence was that segment's only.
        assert_eq!(request(&mut f, 5), Anomalies::REQUEST_FLOOD);
    }

    #[test]
    fn gap_drops_partial_fragments() {
        let mut f = flow();
        // g30v4 (16-bit analog, no flags), 16-bit range 0..=299: 600 octets, 3 frames.
        let mut resp = vec![0xC1, 0x81, 0, 0, 30, 4, 0x01, 0, 0, 0x2B, 0x01];
        resp.extend_from_slice(&[0x11; 600]);
        let bytes = frames(false, &resp, 0);
        feed(&mut f, ToClient, &bytes[..292]);
        assert_eq!(f.reassembling(), 1);
        f.on_gap(ToClient, &mut Vec::new());
        assert_eq!(f.reassembling(), 0);
        assert!(feed(&mut f, ToClient, &bytes[292..]).is_empty());
        f.on_end(&mut Vec::new());
    }

    #[test]
    fn empty_transport_and_application() {
        let mut f = flow();
        // User data frame whose data is the transport header alone.
        let p = one(
            &mut f,
            ToServer,
            &build_link_frame(0xC4, OUTSTATION, MASTER, &[0xC0]),
        );
        assert_eq!(p.anomalies, Anomalies::BAD_LENGTH);
        // LEN 5 user data frame: no transport header.
        let p = one(
            &mut f,
            ToServer,
            &build_link_frame(0xC4, OUTSTATION, MASTER, &[]),
        );
        assert_eq!(p.anomalies, Anomalies::MALFORMED);
        // Unknown function code.
        let p = one(&mut f, ToServer, &frames(true, &[0xC0, 0x70], 0));
        assert_eq!(
            (p.anomalies, p.operation),
            (Anomalies::UNKNOWN_FUNCTION, Operation::Other)
        );
    }

    // ---- Capture loss: what a gap explains is RESYNC, not the device's ----

    /// READ of class 0: AC (FIR FIN, `seq`), FC 01, g60v1 (class 0 data), qualifier
    /// 06 (all objects).
    fn read(seq: u8) -> Vec<u8> {
        vec![0xC0 | seq, 0x01, 60, 1, 0x06]
    }

    /// Its response: AC (FIR FIN, `seq`), FC 81, IIN 00 00; g30v2 (16-bit analog
    /// input with flag), qualifier 00 (8-bit start-stop) 0..=2, three (flag, value).
    fn read_response(seq: u8) -> Vec<u8> {
        vec![
            0xC0 | seq,
            0x81,
            0x00,
            0x00,
            30,
            2,
            0x00,
            0,
            2,
            0x01,
            0x10,
            0x00,
            0x01,
            0x20,
            0x00,
            0x01,
            0x30,
            0x00,
        ]
    }

    /// A response of 3 frames (first fragment, not final when `fin` is clear): AC
    /// (FIR, FIN when `fin`, `seq`), FC 81, IIN; g30v4 (16-bit analog input, no flag),
    /// qualifier 01 (16-bit start-stop) 0..=299: 600 octets. Its first frame is the
    /// longest there is: 10 header octets, 250 data octets (transport header
    /// included), 16 CRCs.
    fn long_response(seq: u8, fin: bool) -> Vec<u8> {
        let ac = if fin { 0xC0 } else { 0x80 } | seq;
        let mut r = vec![ac, 0x81, 0, 0, 30, 4, 0x01, 0, 0, 0x2B, 0x01];
        r.extend_from_slice(&[0x11; 600]);
        r
    }

    /// Drives `f` as the flow layer does (see `drive_stream`).
    fn drive(f: &mut Dnp3Flow, dir: Direction, segments: &[&[u8]]) -> Vec<Pdu> {
        drive_stream(|b, out| f.on_data(dir, b, out), segments).0
    }

    fn flags(out: &[Pdu]) -> Vec<(&'static str, Anomalies)> {
        out.iter()
            .map(|p| (info(p).function, p.anomalies))
            .collect()
    }

    const UNMATCHED_RESYNC: Anomalies = Anomalies::UNMATCHED_RESPONSE.union(Anomalies::RESYNC);

    #[test]
    fn the_rest_of_a_frame_a_gap_cut_is_resync() {
        // The audit's capture: a response frame split across two segments, the first
        // lost. What is left of it is skipped as RESYNC; the next response is clean.
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(5), 0));
        let lost = frames(false, &read_response(5), 0);
        f.on_gap(ToClient, &mut Vec::new());
        one(&mut f, ToServer, &frames(true, &read(6), 1));
        let next = frames(false, &read_response(6), 1);
        let out = drive(&mut f, ToClient, &[&lost[lost.len() / 2..], &next]);
        assert_eq!(
            flags(&out),
            [
                ("garbage", Anomalies::RESYNC),
                ("response", Anomalies::empty())
            ]
        );
        assert_eq!(out[1].operation, Operation::Read);
        // Without a gap, the same bytes are the device's garbage.
        let mut f = flow();
        let out = drive(&mut f, ToClient, &[&lost[lost.len() / 2..], &next]);
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);

        // The most a gap can leave of a frame: all of the longest one but its first
        // octet (291 octets). Its later frames do not complete the fragment the gap
        // cut; the next response is whole and clean.
        let long = frames(false, &long_response(1, true), 0);
        assert_eq!(&long[..2], &[0x05, 0x64]);
        assert_eq!(long[2], 255, "LEN 255: a frame of 292 octets");
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(1), 0));
        one(&mut f, ToServer, &frames(true, &read(6), 1));
        f.on_gap(ToClient, &mut Vec::new());
        let out = drive(
            &mut f,
            ToClient,
            &[&long[1..MAX_FRAME_LEN], &long[MAX_FRAME_LEN..], &next],
        );
        assert_eq!(
            flags(&out),
            [
                ("garbage", Anomalies::RESYNC),
                ("response", Anomalies::empty())
            ]
        );
        assert_eq!(f.outstanding(), 0);
        assert_eq!(f.reassembling(), 0);

        // A frame cut in its data (after the first frame of its fragment): the
        // partial reassembly is discarded, not completed by the frame after the gap.
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(1), 0));
        assert!(feed(&mut f, ToClient, &long[..MAX_FRAME_LEN]).is_empty());
        assert_eq!(f.reassembling(), 1);
        f.on_gap(ToClient, &mut Vec::new());
        assert_eq!(f.reassembling(), 0);
        let out = drive(
            &mut f,
            ToClient,
            &[
                &long[MAX_FRAME_LEN + 100..2 * MAX_FRAME_LEN],
                &long[2 * MAX_FRAME_LEN..],
            ],
        );
        assert_eq!(flags(&out), [("garbage", Anomalies::RESYNC)]);
        assert_eq!(f.reassembling(), 0);
    }

    #[test]
    fn a_gap_explains_no_more_than_a_frame_of_skipped_bytes() {
        let good = frames(true, &read(1), 0);
        // Octets a frame cannot hold after the gap: 291 are what is left of one.
        for (junk, want) in [
            (291, vec![Anomalies::RESYNC, Anomalies::empty()]),
            (292, vec![Anomalies::GARBAGE, Anomalies::empty()]),
        ] {
            let mut f = flow();
            f.on_gap(ToServer, &mut Vec::new());
            let mut data = vec![0xEE; junk];
            data.extend_from_slice(&good);
            let out = drive(&mut f, ToServer, &[&data]);
            let got: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
            assert_eq!(got, want, "{junk} octets");
        }
        // 20,000 octets in 100-octet segments: the first are taken for the rest of a
        // cut frame, then the stretch is garbage, once.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let junk = [0xEE; 100];
        let segments: Vec<&[u8]> = (0..200).map(|_| &junk[..]).collect();
        let out = drive(&mut f, ToServer, &segments);
        let got: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(got, [Anomalies::RESYNC, Anomalies::GARBAGE]);
        // A `05 64` the gap left in a frame's data, whose "header" CRC fails, is no
        // bad checksum of the device.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let mut data = vec![0x05, 0x64, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11];
        data.extend_from_slice(&good);
        let out = drive(&mut f, ToServer, &[&data]);
        assert_eq!(
            flags(&out),
            [("garbage", Anomalies::RESYNC), ("read", Anomalies::empty())]
        );
        // A gap followed by a whole frame: nothing to report.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        assert_eq!(one(&mut f, ToServer, &good).anomalies, Anomalies::empty());
        // Once a frame is found, later unframable bytes are the device's again.
        let out = drive(&mut f, ToServer, &[&[0xEE; 10], &good]);
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);
    }

    #[test]
    fn a_response_whose_request_a_gap_took_is_flagged_resync_until_pairing_resumes() {
        // The audit's capture: SELECT (seq 7) lost, its response seen, then OPERATE.
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(6), 0));
        one(&mut f, ToClient, &frames(false, &read_response(6), 0));
        f.on_gap(ToServer, &mut Vec::new());
        let r = one(&mut f, ToClient, &frames(false, &crob_response(7), 1));
        assert_eq!(
            (r.anomalies, r.operation),
            (UNMATCHED_RESYNC, Operation::Other)
        );
        // Pairing resumes with the OPERATE; a later unmatched response has no loss
        // to explain it.
        one(&mut f, ToServer, &frames(true, &crob(4, 8), 1));
        let r = one(&mut f, ToClient, &frames(false, &crob_response(8), 2));
        assert_eq!(
            (r.anomalies, r.operation),
            (Anomalies::empty(), Operation::Write)
        );
        let r = one(&mut f, ToClient, &frames(false, &crob_response(9), 3));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);

        // A multi-fragment response to a lost request: its later fragment too.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let first = one(
            &mut f,
            ToClient,
            &frames(false, &long_response(2, false), 0),
        );
        assert_eq!(first.anomalies, UNMATCHED_RESYNC);
        // AC: FIN (not FIR), seq 3; FC 81; IIN; g30v4, qualifier 00, 0..=0, one value.
        let last = [0x43, 0x81, 0, 0, 30, 4, 0x00, 0, 0, 0x01, 0x00];
        let r = one(&mut f, ToClient, &frames(false, &last, 3));
        assert_eq!(r.anomalies, UNMATCHED_RESYNC);
    }

    #[test]
    fn after_a_gap_in_the_requests_older_answers_do_not_end_the_loss() {
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(1), 0));
        // READ seq 2 is lost; 3 and 4 are seen; the answers come after.
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToServer, &frames(true, &read(3), 1));
        one(&mut f, ToServer, &frames(true, &read(4), 2));
        let mut answer =
            |seq: u8| one(&mut f, ToClient, &frames(false, &read_response(seq), seq)).anomalies;
        // The answer to READ 1, sent before the gap, pairs; READ 2's finds none, for
        // the loss; READ 3 was sent after the gap: its answer ends the loss.
        assert_eq!(answer(1), Anomalies::empty());
        assert_eq!(answer(2), UNMATCHED_RESYNC);
        assert_eq!(answer(3), Anomalies::empty());
        assert_eq!(answer(9), Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_gap_loses_the_requests_of_the_direction_the_master_sends_in() {
        // The outstation opened the TCP connection: the master's frames go to_client.
        let mut f = flow();
        one(&mut f, ToClient, &frames(true, &read(1), 0));
        one(&mut f, ToServer, &frames(false, &read_response(1), 0));
        f.on_gap(ToClient, &mut Vec::new());
        let r = one(&mut f, ToServer, &frames(false, &read_response(2), 1));
        assert_eq!(r.anomalies, UNMATCHED_RESYNC);
        // A gap in the outstation's direction says nothing of requests.
        let mut f = flow();
        one(&mut f, ToClient, &frames(true, &read(1), 0));
        one(&mut f, ToServer, &frames(false, &read_response(1), 0));
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToClient, &frames(true, &read(2), 1));
        let r = one(&mut f, ToServer, &frames(false, &read_response(3), 1));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn requests_whose_answers_a_gap_took_are_forgotten() {
        let config = Dnp3Config {
            max_outstanding: 4,
            ..Dnp3Config::default()
        };
        let mut f = Dnp3Flow::new(&config, Framing::Stream);
        // Over a long capture, 100 responses are lost, one gap each: the master
        // retries with the next sequence number. No request is left waiting, none is
        // reported as a flood.
        for k in 0..100u8 {
            let (lost, next) = ((2 * k) & 0x0F, (2 * k + 1) & 0x0F);
            let q = one(&mut f, ToServer, &frames(true, &read(lost), 2 * k));
            assert!(q.anomalies.is_empty(), "{q:?}");
            let q = one(&mut f, ToServer, &frames(true, &read(next), 2 * k + 1));
            assert!(q.anomalies.is_empty(), "{q:?}");
            f.on_gap(ToClient, &mut Vec::new());
            // Its answer still pairs.
            let r = one(&mut f, ToClient, &frames(false, &read_response(next), k));
            assert_eq!(
                (r.anomalies, r.operation),
                (Anomalies::empty(), Operation::Read)
            );
            assert_eq!(f.outstanding(), 0);
        }

        // Nor does one pair with a later response once the 4-bit sequence wraps: an
        // OPERATE (seq 3) whose answer was lost, 16 requests later a READ with seq 3
        // the capture lost too.
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &crob(4, 3), 0));
        one(&mut f, ToServer, &frames(true, &read(4), 1));
        f.on_gap(ToClient, &mut Vec::new());
        one(&mut f, ToClient, &frames(false, &read_response(4), 0));
        for seq in 5..16 {
            one(&mut f, ToServer, &frames(true, &read(seq), seq));
            one(&mut f, ToClient, &frames(false, &read_response(seq), seq));
        }
        f.on_gap(ToServer, &mut Vec::new());
        let r = one(&mut f, ToClient, &frames(false, &read_response(3), 16));
        assert_eq!(
            (r.anomalies, r.operation),
            (UNMATCHED_RESYNC, Operation::Other)
        );

        // Requests whose answers are still to come still pair: another
        // association's, and those of the same one sent after the gap.
        let mut f = flow();
        let to = |outstation: u16, seq: u8| {
            build_link_frame(
                0xC4,
                outstation,
                MASTER,
                &[0xC0, 0xC0 | seq, 0x01, 60, 1, 0x06],
            )
        };
        let from = |outstation: u16, seq: u8| {
            let mut data = vec![0xC0];
            data.extend_from_slice(&read_response(seq));
            build_link_frame(0x44, MASTER, outstation, &data)
        };
        one(&mut f, ToServer, &to(10, 1)); // its answer is lost
        one(&mut f, ToServer, &to(20, 4));
        one(&mut f, ToServer, &to(10, 2));
        f.on_gap(ToClient, &mut Vec::new());
        one(&mut f, ToServer, &to(10, 3));
        assert!(one(&mut f, ToClient, &from(10, 2)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 2);
        assert!(one(&mut f, ToClient, &from(20, 4)).anomalies.is_empty());
        assert!(one(&mut f, ToClient, &from(10, 3)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);
        // Without a gap, a request answered out of order leaves the older waiting.
        one(&mut f, ToServer, &to(10, 5));
        one(&mut f, ToServer, &to(10, 6));
        one(&mut f, ToClient, &from(10, 6));
        assert_eq!(f.outstanding(), 1);
    }

    /// A master that pipelines with repeated sequence numbers (icsnpp_dnp3_example.pcap:
    /// SELECT 7, OPERATE 8, SELECT 7, OPERATE 8, SELECT 7, then the five answers): each
    /// answer pairs with its request, in order.
    #[test]
    fn repeated_sequence_numbers_pair_in_order() {
        let mut f = flow();
        let sent = [(3u8, 7u8), (4, 8), (3, 7), (4, 8), (3, 7)];
        for (k, &(function, seq)) in sent.iter().enumerate() {
            let p = one(
                &mut f,
                ToServer,
                &frames(true, &crob(function, seq), k as u8),
            );
            assert!(p.anomalies.is_empty(), "{p:?}");
        }
        assert_eq!(f.outstanding(), 5);
        for (k, &(function, seq)) in sent.iter().enumerate() {
            let r = one(
                &mut f,
                ToClient,
                &frames(false, &crob_response(seq), k as u8),
            );
            let want = if function == 4 {
                Operation::Write
            } else {
                Operation::Other
            };
            assert_eq!(
                (r.anomalies, r.operation),
                (Anomalies::empty(), want),
                "answer {k}"
            );
        }
        assert_eq!(f.outstanding(), 0);
        // A retry (the number again, nothing sent between) replaces its request.
        one(&mut f, ToServer, &frames(true, &crob(4, 1), 5));
        one(&mut f, ToServer, &frames(true, &crob(4, 1), 6));
        assert_eq!(f.outstanding(), 1);

        // A request never answered does not take the answer of the next one with its
        // number, 16 requests later.
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &crob(3, 7), 0));
        for k in 1..16u8 {
            let seq = (7 + k) & 0x0F;
            one(&mut f, ToServer, &frames(true, &read(seq), k));
            let r = one(&mut f, ToClient, &frames(false, &read_response(seq), k));
            assert!(r.anomalies.is_empty(), "{r:?}");
        }
        assert_eq!(f.outstanding(), 1, "the SELECT still waits");
        one(&mut f, ToServer, &frames(true, &crob(4, 7), 16));
        assert_eq!(f.outstanding(), 1, "its number came round: it went");
        let r = one(&mut f, ToClient, &frames(false, &crob_response(7), 16));
        assert_eq!(
            (r.anomalies, r.operation),
            (Anomalies::empty(), Operation::Write)
        );
    }

    #[test]
    fn a_later_fragment_whose_first_a_gap_took_is_resync() {
        // AC: FIN (not FIR), seq 3; FC 81; IIN; g30v4, qualifier 00, 0..=0, one value.
        let last = [0x43, 0x81, 0, 0, 30, 4, 0x00, 0, 0, 0x01, 0x00];
        let mut f = flow();
        one(&mut f, ToServer, &frames(true, &read(2), 0));
        f.on_gap(ToClient, &mut Vec::new());
        let r = one(&mut f, ToClient, &frames(false, &last, 3));
        assert_eq!(r.anomalies, UNMATCHED_RESYNC);
        // After the next first fragment, a later one without its first is the
        // device's.
        one(&mut f, ToClient, &frames(false, &read_response(2), 4));
        let r = one(&mut f, ToClient, &frames(false, &last, 5));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_segment_acknowledging_unseen_requests_explains_its_own_unmatched_answers() {
        let mut f = flow();
        f.on_unseen_acked(ToServer);
        let r = one(&mut f, ToClient, &frames(false, &crob_response(7), 0));
        assert_eq!(r.anomalies, UNMATCHED_RESYNC);
        // The next segment carries no such evidence.
        let r = one(&mut f, ToClient, &frames(false, &crob_response(8), 1));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // Unseen bytes of the outstation say nothing about requests.
        f.on_unseen_acked(ToClient);
        let r = one(&mut f, ToClient, &frames(false, &crob_response(9), 2));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // The evidence is for the other direction's next bytes only.
        f.on_unseen_acked(ToServer);
        one(&mut f, ToServer, &frames(true, &read(1), 0));
        f.on_data(ToClient, &[], &mut Vec::new());
        let r = one(&mut f, ToClient, &frames(false, &crob_response(10), 3));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_flow_joined_mid_stream_explains_the_cut_frame_at_its_start_only() {
        let good = frames(false, &read_response(4), 0);
        let tail = &frames(false, &read_response(3), 0)[12..];
        let mut start = tail.to_vec();
        start.extend_from_slice(&good);
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToClient, &[&start]);
        // The answer to a request sent before the sensor's start.
        assert_eq!(
            flags(&out),
            [
                ("garbage", Anomalies::RESYNC),
                ("response", UNMATCHED_RESYNC)
            ]
        );
        // Later, bytes that do not frame are the device's.
        let out = drive(&mut f, ToClient, &[&start]);
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);
        // A flow whose start was seen: garbage from the first octet.
        let out = drive(&mut flow(), ToClient, &[&start]);
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);
        // Pairing resumes with the first request answered.
        let mut f = flow().joined_mid_stream();
        one(&mut f, ToServer, &frames(true, &read(5), 0));
        assert!(one(&mut f, ToClient, &good_for(5)).anomalies.is_empty());
        let r = one(&mut f, ToClient, &good_for(6));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    fn good_for(seq: u8) -> Vec<u8> {
        frames(false, &read_response(seq), seq)
    }
}
