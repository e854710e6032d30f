//! Per-flow state: link framing and resynchronisation, transport reassembly per link
//! address pair and direction, and request/response pairing by application sequence
//! number. Every table has a bound from [`Dnp3Config`].

use std::collections::VecDeque;

use otwatch_event::{Anomalies, Direction, Dnp3Info, Native, Operation, Pdu, PduSink};

use crate::codes::{FunctionCode, TransportHeader};
use crate::decode::{decode_fragment, link_info, request_operation, Decoded, Link};
use crate::parser::{
    check_header, parse_link_frame, DissectError, LinkFrame, HEADER_LEN, MAX_USER_DATA,
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
}

/// DNP3 state of one flow (both directions).
#[derive(Debug, Clone)]
pub struct Dnp3Flow {
    config: Dnp3Config,
    framing: Framing,
    reassembly: Vec<Reassembly>,
    pending: VecDeque<Pending>,
    /// Multi-fragment responses under way: the operation their first fragment took.
    continuing: VecDeque<Pending>,
    /// Per direction: the GARBAGE event of the current stretch was emitted.
    in_garbage: [bool; 2],
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
            continuing: VecDeque::new(),
            in_garbage: [false; 2],
            stamp: 0,
        }
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
        if self.framing == Framing::Datagram {
            self.set_garbage(dir, false);
        }
        let mut off = 0;
        // Progress: every turn consumes at least one byte, or leaves the loop.
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            match parse_link_frame(rest) {
                Ok((after, frame)) => {
                    self.set_garbage(dir, false);
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
                    self.set_garbage(dir, false);
                    off += HEADER_LEN.min(rest.len());
                }
                Err(e) => {
                    let bad_crc = matches!(e, nom::Err::Error(DissectError::BadHeaderCrc));
                    let (skip, stop) = match self.scan(rest) {
                        Scan::Found(k) => (k, false),
                        Scan::NeedMore(k) | Scan::NotFound(k) => (k, true),
                    };
                    self.garbage(dir, bad_crc, out);
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

    /// Bytes of `dir` were lost: fragments being reassembled in that direction are
    /// dropped. Framing needs no state (every header carries its CRC), and requests
    /// stay outstanding (the flood bound ages them out).
    pub fn on_gap(&mut self, dir: Direction, _out: &mut dyn PduSink) {
        self.reassembly.retain(|r| r.dir != dir);
        self.set_garbage(dir, false);
    }

    /// The flow ended: partial fragments and unanswered requests are forgotten.
    pub fn on_end(&mut self, _out: &mut dyn PduSink) {
        self.reassembly.clear();
        self.pending.clear();
        self.continuing.clear();
        self.in_garbage = [false; 2];
    }

    fn set_garbage(&mut self, dir: Direction, v: bool) {
        if let Some(g) = self.in_garbage.get_mut(dir.index()) {
            *g = v;
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

    /// One GARBAGE event per stretch of unframable bytes (with BAD_CHECKSUM when the
    /// stretch starts at a header whose CRC fails).
    fn garbage(&mut self, dir: Direction, bad_crc: bool, out: &mut dyn PduSink) {
        if self.in_garbage.get(dir.index()).copied().unwrap_or(false) {
            return;
        }
        self.set_garbage(dir, true);
        let mut anomalies = Anomalies::GARBAGE;
        if bad_crc {
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
        let op = self.pair(link, &mut d);
        out.push(pdu(dir, d.info, op, d.anomalies));
    }

    /// The operation of a fragment: a request's own, and remembered for its
    /// response; a response's from its request (same link pair, same sequence).
    fn pair(&mut self, link: Link, d: &mut Decoded) -> Operation {
        let Some(function) = d.function.filter(|f| f.is_known()) else {
            return Operation::Other;
        };
        let seq = d.info.sequence;
        match function {
            FunctionCode::RESPONSE | FunctionCode::AUTHENTICATE_RESP => {
                let (outstation, master) = (link.src, link.dst);
                let op = if d.info.fir {
                    let op = self
                        .pending
                        .iter()
                        .position(|p| {
                            p.master == master && p.outstation == outstation && p.seq == seq
                        })
                        .and_then(|k| self.pending.remove(k))
                        .map(|p| p.operation);
                    self.continuing
                        .retain(|c| !(c.master == master && c.outstation == outstation));
                    if let (Some(operation), false) = (op, d.info.fin) {
                        if self.continuing.len() >= self.config.max_reassemblies {
                            self.continuing.pop_front();
                        }
                        self.continuing.push_back(Pending {
                            master,
                            outstation,
                            seq,
                            operation,
                        });
                    }
                    op
                } else {
                    let k = self
                        .continuing
                        .iter()
                        .position(|c| c.master == master && c.outstation == outstation);
                    let op = k.and_then(|k| self.continuing.get(k)).map(|c| c.operation);
                    if let (Some(k), true) = (k, d.info.fin) {
                        self.continuing.remove(k);
                    }
                    op
                };
                match op {
                    Some(op) => op,
                    None if function == FunctionCode::AUTHENTICATE_RESP => Operation::Session,
                    None => {
                        d.anomalies |= Anomalies::UNMATCHED_RESPONSE;
                        Operation::Other
                    }
                }
            }
            FunctionCode::UNSOLICITED_RESPONSE => request_operation(function, &d.info.objects),
            _ => {
                let operation = request_operation(function, &d.info.objects);
                if function.expects_response() {
                    let (master, outstation) = (link.src, link.dst);
                    self.pending.retain(|p| {
                        !(p.master == master && p.outstation == outstation && p.seq == seq)
                    });
                    if self.pending.len() >= self.config.max_outstanding {
                        self.pending.pop_front();
                        d.anomalies |= Anomalies::REQUEST_FLOOD;
                    }
                    self.pending.push_back(Pending {
                        master,
                        outstation,
                        seq,
                        operation,
                    });
                }
                operation
            }
        }
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
}
