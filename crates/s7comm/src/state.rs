//! Per-flow state: TPKT framing per direction, resynchronisation, COTP DT reassembly,
//! the TSAPs of the connection, job / ack_data pairing by pdu_ref with a bounded table
//! of outstanding jobs, what a capture gap explains, and S7comm-plus fragment tracking.

use otwatch_event::{
    Anomalies, Direction, Native, Operation, Outstanding, Pdu, PduSink, Request, S7commInfo,
    S7commPlusInfo, Skipped,
};

use crate::codes::Rosctr;
use crate::decode::{
    decode_ack, decode_job, decode_plus, decode_userdata, Decoded, JobContext, Pairing,
    UserdataState,
};
use crate::parser::{
    check_header, is_tls_record_type, leaves_tsdu_open, parse_cotp, parse_plus_header,
    parse_s7_pdu, parse_tpkt, plus_message_start, tsdu_start, CotpConnect, CotpPdu, DtPayload,
    HeaderCheck, S7COMM_PLUS_PROTOCOL_ID, S7COMM_PROTOCOL_ID,
};

/// Bounds of one flow's state. Limits are data, not globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S7Config {
    /// Largest TPKT framed (header included); a longer length means framing is lost.
    /// The default is twice the largest TPDU class 0 negotiates (8192).
    pub max_tpkt_len: u16,
    /// Largest TSDU reassembled from COTP DT fragments; a longer one is reported
    /// (`BAD_LENGTH`) and skipped up to its last fragment.
    pub max_tsdu_len: usize,
    /// Outstanding (unanswered) jobs kept per flow and direction for pairing (the PLC
    /// sends jobs too, during a download); when full, the oldest of that direction is
    /// dropped and the new job is flagged `REQUEST_FLOOD`. At least 1.
    pub max_outstanding: usize,
    /// Candidate offsets examined per `on_data` call while resynchronising. At least 1.
    pub max_resync_scan: usize,
}

impl Default for S7Config {
    fn default() -> Self {
        S7Config {
            max_tpkt_len: 16384,
            max_tsdu_len: 65536,
            max_outstanding: 64,
            max_resync_scan: 4096,
        }
    }
}

/// A PLC answers each job when it has served it: none waits queued. Clients count
/// their PDU references.
impl Request for JobContext {
    const NUMBER_BITS: u32 = 16;

    fn number(&self) -> Option<u32> {
        Some(u32::from(self.pdu_ref))
    }
}

/// The state of one direction of travel: its framing and TSDU reassembly.
#[derive(Debug, Clone, Default)]
struct DirState {
    /// Framing is not trusted (after a gap, or garbage seen).
    resync: bool,
    /// Bytes skipped since the last TPKT or gap (after a gap, or at the start of a flow
    /// joined mid-stream, the rest of a TPKT the loss cut is RESYNC, not GARBAGE).
    skipped: Skipped,
    /// DT fragments of the current TSDU (EOT not yet seen).
    tsdu: Vec<u8>,
    /// The current TSDU overran `max_tsdu_len`: skip up to its EOT.
    tsdu_overflow: bool,
    /// The flow was joined mid-stream, or bytes were lost, and no TSDU of this
    /// direction was complete since: the first may be the rest of one whose start was
    /// not captured, even when the join or the gap fell on a TPKT boundary (on a flow
    /// of another protocol, resynchronisation does not check DT payloads).
    unsure_start: bool,
    /// An S7comm-plus message without its trailer was seen: the next frames up to the
    /// one with a trailer continue it.
    plus_fragment: bool,
}

/// What a resynchronisation scan found.
enum Scan {
    Found(usize),
    NeedMore(usize),
    NotFound(usize),
}

/// S7comm / S7comm-plus state of one flow (both directions).
///
/// `ToServer` bytes come from the side that opened the connection (the PG, HMI or
/// SCADA), `ToClient` bytes from the PLC. Every PDU the PLC sends is `is_response`,
/// including the download-block jobs it sends during a download.
#[derive(Debug, Clone)]
pub struct S7Flow {
    config: S7Config,
    /// Outstanding jobs by the direction they travelled (the PLC sends jobs too,
    /// during a download), and what the capture's losses say about them.
    jobs: [Outstanding<JobContext>; 2],
    calling_tsap: Option<u16>,
    called_tsap: Option<u16>,
    /// The TSAPs came from a connection request (a confirm does not override them).
    tsaps_from_cr: bool,
    userdata: UserdataState,
    /// A TSDU of another protocol (MMS, ICCP: ISO-on-TCP serves several on port 102)
    /// was seen: resynchronisation accepts a DT whatever its payload.
    foreign: bool,
    dirs: [DirState; 2],
}

impl S7Flow {
    pub fn new(config: &S7Config) -> Self {
        let mut config = config.clone();
        config.max_outstanding = config.max_outstanding.max(1);
        config.max_resync_scan = config.max_resync_scan.max(1);
        config.max_tpkt_len = config.max_tpkt_len.max(crate::parser::MIN_TPKT_LEN);
        S7Flow {
            jobs: [
                Outstanding::new(config.max_outstanding),
                Outstanding::new(config.max_outstanding),
            ],
            config,
            calling_tsap: None,
            called_tsap: None,
            tsaps_from_cr: false,
            userdata: UserdataState::default(),
            foreign: false,
            dirs: [DirState::default(), DirState::default()],
        }
    }

    /// The flow's start was not captured (no handshake): the first bytes of each
    /// direction may be the rest of a TPKT. They are framed as usual, but when they do
    /// not frame, what is skipped before the first TPKT, up to a TPKT's length, is
    /// reported as RESYNC (as after a gap), not as the device's garbage.
    pub fn joined_mid_stream(mut self) -> Self {
        for st in &mut self.dirs {
            st.skipped.joined();
            st.unsure_start = true;
        }
        self
    }

    /// Number of jobs waiting for their answer.
    pub fn outstanding(&self) -> usize {
        self.jobs.iter().map(Outstanding::len).sum()
    }

    /// The TSAPs of the connection (calling, called), when two-byte TSAPs were seen.
    pub fn tsaps(&self) -> (Option<u16>, Option<u16>) {
        (self.calling_tsap, self.called_tsap)
    }

    /// The jobs sent in `dir`.
    fn jobs(&mut self, dir: Direction) -> &mut Outstanding<JobContext> {
        match dir {
            Direction::ToServer => &mut self.jobs[0],
            Direction::ToClient => &mut self.jobs[1],
        }
    }

    /// Bytes of `dir` carry the jobs sent in `dir` and the answers to the other side's
    /// jobs: `event` (a loss hook of [`Outstanding`]) reaches the table of the first as
    /// about requests (`ToServer`), the table of the second as about answers
    /// (`ToClient`).
    fn both_tables(
        &mut self,
        dir: Direction,
        event: impl Fn(&mut Outstanding<JobContext>, Direction),
    ) {
        event(self.jobs(dir), Direction::ToServer);
        event(self.jobs(dir.reverse()), Direction::ToClient);
    }

    fn dir_state(&mut self, dir: Direction) -> &mut DirState {
        match dir {
            Direction::ToServer => &mut self.dirs[0],
            Direction::ToClient => &mut self.dirs[1],
        }
    }

    /// In-order bytes of one direction. Emits one [`Pdu`] per S7comm PDU or
    /// S7comm-plus message (and one per stretch of garbage or per transport error)
    /// and returns how many bytes were consumed; the unconsumed tail (a TPKT split
    /// across segments) must be presented again, followed by the next bytes.
    pub fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let n = self.frame(dir, data, out);
        self.both_tables(dir, Outstanding::delivered);
        n
    }

    fn frame(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let mut off = 0;
        // Progress: every turn consumes at least one byte, or returns.
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            if self.dir_state(dir).resync {
                match self.scan(rest) {
                    Scan::Found(skip) => {
                        self.skip_garbage(dir, skip, out);
                        off += skip;
                        let st = self.dir_state(dir);
                        st.resync = false;
                        st.skipped.regained();
                    }
                    Scan::NeedMore(skip) | Scan::NotFound(skip) => {
                        self.skip_garbage(dir, skip, out);
                        return off + skip;
                    }
                }
                continue;
            }
            match parse_tpkt(rest, self.config.max_tpkt_len) {
                Ok((after, tpkt)) => {
                    self.dir_state(dir).skipped.framed();
                    self.handle_tpdu(dir, tpkt.payload, out);
                    off += rest.len() - after.len();
                }
                Err(nom::Err::Incomplete(_)) => break,
                Err(_) => {
                    // Framing is lost (to the bytes, or, at the start of a flow joined
                    // mid-stream, to the join).
                    tracing::debug!("s7comm: TPKT framing lost, resynchronising");
                    let st = self.dir_state(dir);
                    st.resync = true;
                    st.tsdu.clear();
                    st.tsdu_overflow = false;
                }
            }
        }
        off
    }

    /// Bytes of `dir` were lost: partial TSDUs are dropped and the next bytes are
    /// trusted only once a strict header check succeeds; what is skipped until then, up
    /// to a TPKT's length, is reported as RESYNC (the rest of a TPKT the gap cut).
    ///
    /// Jobs travel both ways (the PLC sends the download-block jobs), so the gap lost
    /// jobs sent in `dir` and answers to jobs sent the other way. Answers (in the other
    /// direction) that find no job are flagged RESYNC too, until a job of `dir` sent
    /// after the gap is answered. The jobs of the other direction whose answers were
    /// lost are dropped once a later one of them is answered, so that they neither
    /// fill the table (a false REQUEST_FLOOD) nor pair with a later answer once pdu_refs
    /// wrap; those whose answers are still to come stay.
    pub fn on_gap(&mut self, dir: Direction, _out: &mut dyn PduSink) {
        let st = self.dir_state(dir);
        st.resync = true;
        st.skipped.lost();
        st.tsdu.clear();
        st.tsdu_overflow = false;
        st.plus_fragment = false;
        st.unsure_start = true;
        self.both_tables(dir, Outstanding::on_gap);
    }

    /// The next bytes of the other direction come in a segment that acknowledges bytes
    /// of `dir` the sensor did not see: lost by the capture, or still on their way. An
    /// answer among them (the data of the next [`S7Flow::on_data`] call for the other
    /// direction) that finds no job is flagged RESYNC: it answers a job of those bytes.
    /// A job among them that finds the table full takes the place of the oldest
    /// without being flagged REQUEST_FLOOD: the unseen bytes may have answered jobs
    /// the table still holds. Only this data: the acknowledgment is the segment's own
    /// evidence, not a state of the flow.
    pub fn on_unseen_acked(&mut self, dir: Direction) {
        self.both_tables(dir, Outstanding::on_unseen_acked);
    }

    /// The other side has now acknowledged bytes of `dir` beyond any seen: if the
    /// capture lost them, the gap declared later holds answers to the jobs of the
    /// other direction sent before now only.
    pub fn on_acked_beyond(&mut self, dir: Direction) {
        self.both_tables(dir, Outstanding::on_acked_beyond);
    }

    /// The flow ended: unanswered jobs are forgotten (they were reported when seen).
    pub fn on_end(&mut self, _out: &mut dyn PduSink) {
        for jobs in &mut self.jobs {
            jobs.clear();
        }
        self.foreign = false;
        self.dirs = [DirState::default(), DirState::default()];
    }

    fn scan(&self, rest: &[u8]) -> Scan {
        let window = rest.len().min(self.config.max_resync_scan);
        for k in 0..window {
            let Some(candidate) = rest.get(k..) else {
                break;
            };
            match check_stream_start(candidate, self.config.max_tpkt_len, self.foreign) {
                HeaderCheck::Yes { .. } => return Scan::Found(k),
                HeaderCheck::NeedMore => return Scan::NeedMore(k),
                HeaderCheck::No => {}
            }
        }
        Scan::NotFound(window)
    }

    /// Consumes `n` unframable bytes. A stretch yields one GARBAGE event at its first
    /// skip; after a gap, one RESYNC event instead, and a GARBAGE event as well once
    /// the stretch grows as long as a TPKT can be (more than a gap can leave of one).
    fn skip_garbage(&mut self, dir: Direction, n: usize, out: &mut dyn PduSink) {
        let longest = usize::from(self.config.max_tpkt_len);
        let Some(anomalies) = self.dir_state(dir).skipped.skip(n, longest) else {
            return;
        };
        let pdu = self.transport_pdu(dir, "garbage", anomalies);
        out.push(pdu);
    }

    /// An event for what is not an S7 PDU but must be reported (garbage, a broken
    /// COTP header, an oversized TSDU): S7comm native block with ROSCTR 0.
    fn transport_pdu(&self, dir: Direction, function: &'static str, anomalies: Anomalies) -> Pdu {
        Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation: Operation::Other,
            anomalies,
            native: Native::S7comm(Box::new(S7commInfo {
                function,
                calling_tsap: self.calling_tsap,
                called_tsap: self.called_tsap,
                ..S7commInfo::default()
            })),
        }
    }

    fn set_tsaps(&mut self, c: &CotpConnect<'_>, from_cr: bool) {
        if self.tsaps_from_cr && !from_cr {
            return;
        }
        let two = |t: Option<&[u8]>| match t {
            Some([a, b]) => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        };
        self.calling_tsap = two(c.calling_tsap);
        self.called_tsap = two(c.called_tsap);
        self.tsaps_from_cr = from_cr;
    }

    fn handle_tpdu(&mut self, dir: Direction, tpdu: &[u8], out: &mut dyn PduSink) {
        let cotp = match parse_cotp(tpdu) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = e.as_str(), "s7comm: bad COTP header");
                let flag = match e {
                    crate::DissectError::BadCotpLength { .. } => Anomalies::BAD_LENGTH,
                    _ => Anomalies::MALFORMED,
                };
                let pdu = self.transport_pdu(dir, "cotp", flag);
                out.push(pdu);
                return;
            }
        };
        if !cotp.anomalies.is_empty() {
            let pdu = self.transport_pdu(dir, "cotp", cotp.anomalies);
            out.push(pdu);
        }
        match cotp.pdu {
            CotpPdu::ConnectionRequest(c) => {
                self.set_tsaps(&c, true);
                for st in &mut self.dirs {
                    st.tsdu.clear();
                    st.tsdu_overflow = false;
                    st.plus_fragment = false;
                    st.unsure_start = false;
                }
            }
            CotpPdu::ConnectionConfirm(c) => self.set_tsaps(&c, false),
            CotpPdu::Data { eot, payload, .. } => self.handle_dt(dir, eot, payload, out),
            CotpPdu::DisconnectRequest | CotpPdu::Other { .. } => {}
        }
    }

    fn handle_dt(&mut self, dir: Direction, eot: bool, payload: &[u8], out: &mut dyn PduSink) {
        let max = self.config.max_tsdu_len;
        let st = self.dir_state(dir);
        if st.tsdu_overflow {
            if eot {
                st.tsdu_overflow = false;
            }
            return;
        }
        if st.tsdu.len() + payload.len() > max {
            st.tsdu.clear();
            st.tsdu_overflow = !eot;
            let pdu = self.transport_pdu(dir, "cotp", Anomalies::BAD_LENGTH);
            out.push(pdu);
            return;
        }
        if !eot {
            st.tsdu.extend_from_slice(payload);
            return;
        }
        if st.tsdu.is_empty() {
            // The common case: one DT per TSDU, parsed in place.
            self.handle_tsdu(dir, payload, out);
        } else {
            let mut buf = std::mem::take(&mut st.tsdu);
            buf.extend_from_slice(payload);
            self.handle_tsdu(dir, &buf, out);
            buf.clear();
            // Keep the allocation for the next fragmented TSDU.
            self.dir_state(dir).tsdu = buf;
        }
    }

    fn handle_tsdu(&mut self, dir: Direction, tsdu: &[u8], out: &mut dyn PduSink) {
        // The first TSDU after a join or a gap is taken for an S7comm, S7comm-plus or
        // TLS start only if its header agrees with it, as in `check_stream_start`:
        // else it is the rest of one whose start was not captured.
        let s7_like = |b: &u8| {
            matches!(*b, S7COMM_PROTOCOL_ID | S7COMM_PLUS_PROTOCOL_ID) || is_tls_record_type(*b)
        };
        let unsure = std::mem::take(&mut self.dir_state(dir).unsure_start);
        if unsure
            && tsdu.first().is_some_and(s7_like)
            && tsdu_start(tsdu, true, tsdu.len()) == Some(false)
        {
            let pdu = self.transport_pdu(dir, "garbage", Anomalies::RESYNC);
            out.push(pdu);
            return;
        }
        match tsdu {
            [] => {}
            [S7COMM_PROTOCOL_ID, ..] => self.handle_s7(dir, tsdu, out),
            [S7COMM_PLUS_PROTOCOL_ID, ..] => self.handle_plus(dir, tsdu, unsure, out),
            [t, 3, ..] if is_tls_record_type(*t) => self.handle_plus(dir, tsdu, unsure, out),
            _ => {
                tracing::trace!("s7comm: COTP payload of another protocol");
                self.foreign = true;
            }
        }
    }

    fn handle_s7(&mut self, dir: Direction, tsdu: &[u8], out: &mut dyn PduSink) {
        let decoded = match parse_s7_pdu(tsdu) {
            Ok(pdu) => match pdu.header.rosctr {
                Rosctr::JOB => {
                    let (mut d, ctx) = decode_job(&pdu);
                    let pdu_ref = ctx.pdu_ref;
                    if self.jobs(dir).push_reusing(ctx, |c| c.pdu_ref == pdu_ref) {
                        d.anomalies |= Anomalies::REQUEST_FLOOD;
                    }
                    d
                }
                Rosctr::ACK | Rosctr::ACK_DATA => {
                    let jobs = self.jobs(dir.reverse());
                    let pdu_ref = pdu.header.pdu_ref;
                    let own = pdu.param.first().copied();
                    match jobs.answer(|ctx| ctx.pdu_ref == pdu_ref) {
                        Some(ctx) => {
                            let pairing = if own.is_none_or(|f| f == ctx.function.0) {
                                Pairing::Matched(&ctx)
                            } else {
                                Pairing::Mismatched
                            };
                            let d = decode_ack(&pdu, pairing);
                            if d.anomalies.contains(Anomalies::RESPONSE_MISMATCH)
                                && jobs.mismatch_is_loss()
                            {
                                // It answers a job the capture lost, which reused the
                                // reference.
                                let mut d = decode_ack(&pdu, Pairing::Unmatched);
                                d.anomalies |= Anomalies::RESYNC;
                                d
                            } else {
                                d
                            }
                        }
                        None => {
                            let mut d = decode_ack(&pdu, Pairing::Unmatched);
                            // Its job was likely lost by the capture.
                            if jobs.unmatched_is_loss(false, Some(u32::from(pdu_ref))) {
                                d.anomalies |= Anomalies::RESYNC;
                            }
                            d
                        }
                    }
                }
                Rosctr::USERDATA => decode_userdata(&pdu, &mut self.userdata),
                Rosctr(other) => Decoded {
                    info: S7commInfo {
                        rosctr: other,
                        pdu_ref: pdu.header.pdu_ref,
                        function: "unknown",
                        ..S7commInfo::default()
                    },
                    operation: Operation::Other,
                    anomalies: pdu.anomalies | Anomalies::UNKNOWN_FUNCTION,
                },
            },
            Err(_) => Decoded {
                info: S7commInfo {
                    rosctr: tsdu.get(1).copied().unwrap_or(0),
                    function: "unknown",
                    ..S7commInfo::default()
                },
                operation: Operation::Other,
                anomalies: Anomalies::BAD_LENGTH | Anomalies::MALFORMED,
            },
        };
        let Decoded {
            mut info,
            operation,
            anomalies,
        } = decoded;
        info.calling_tsap = self.calling_tsap;
        info.called_tsap = self.called_tsap;
        out.push(Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation,
            anomalies,
            native: Native::S7comm(Box::new(info)),
        });
    }

    /// `unsure`: the first TSDU of the direction after a join or a gap (see
    /// [`DirState::unsure_start`]).
    fn handle_plus(&mut self, dir: Direction, tsdu: &[u8], unsure: bool, out: &mut dyn PduSink) {
        if tsdu.first() == Some(&S7COMM_PLUS_PROTOCOL_ID) {
            let header = parse_plus_header(tsdu).ok();
            let st = self.dir_state(dir);
            if let Some(h) = header.filter(|h| unsure && !plus_message_start(h.version, h.data)) {
                // A later frame of a message whose first frame was not captured: the
                // frames up to its trailer are the rest of it.
                st.plus_fragment = !h.has_trailer && h.anomalies.is_empty();
                let pdu = self.transport_pdu(dir, "garbage", Anomalies::RESYNC);
                out.push(pdu);
                return;
            }
            if st.plus_fragment {
                // A continuation of the message already reported.
                if header.is_none_or(|h| h.has_trailer || !h.anomalies.is_empty()) {
                    st.plus_fragment = false;
                }
                return;
            }
            st.plus_fragment = header.is_some_and(|h| {
                !h.has_trailer && h.anomalies.is_empty() && h.data_len > 0 && h.version != 0xfe
            });
        }
        let (info, operation, anomalies): (S7commPlusInfo, Operation, Anomalies) =
            decode_plus(tsdu);
        out.push(Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation,
            anomalies,
            native: Native::S7commPlus(info),
        });
    }
}

/// What the TPKT after the one at the front of `i` must carry: the rest of the TSDU
/// when that one leaves it open, else the start of one.
fn follower(i: &[u8]) -> DtPayload {
    if leaves_tsdu_open(i) {
        DtPayload::Continues
    } else {
        DtPayload::Starts
    }
}

/// Does `i` plausibly start a run of TPKTs (the resynchronisation test): a header whose
/// TPKT is complete and followed by the end of `i` or by another header. A DT must
/// start its TSDU (a fragment that continues one lost to a gap is skipped), with an
/// S7comm header whose lengths agree with the TPKT; the fragments after it continue
/// it. On a flow that carried another protocol (`foreign`), a DT may carry anything.
pub(crate) fn check_stream_start(i: &[u8], max_len: u16, foreign: bool) -> HeaderCheck {
    // A flow of another protocol: its payloads are not S7's to check.
    let any = |dt: DtPayload| if foreign { DtPayload::Continues } else { dt };
    match check_header(i, max_len, any(DtPayload::Starts)) {
        HeaderCheck::Yes { len } => match i.get(len..) {
            None => HeaderCheck::NeedMore,
            Some([]) => HeaderCheck::Yes { len },
            Some(next) => match check_header(next, max_len, any(follower(i))) {
                HeaderCheck::No => HeaderCheck::No,
                HeaderCheck::NeedMore => HeaderCheck::NeedMore,
                HeaderCheck::Yes { .. } => HeaderCheck::Yes { len },
            },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otwatch_event::testing::drive_stream;
    use otwatch_event::S7Item;
    use Direction::{ToClient, ToServer};

    /// Wraps a TSDU in TPKT (RFC 1006: version 3, reserved 0, length) and a class 0
    /// COTP DT (ISO 8073: LI 2, type 0xf0, EOT | number 0).
    fn dt(tsdu: &[u8]) -> Vec<u8> {
        dt_frag(tsdu, true)
    }

    fn dt_frag(tsdu: &[u8], eot: bool) -> Vec<u8> {
        let mut v = vec![0x03, 0x00];
        v.extend_from_slice(&(tsdu.len() as u16 + 7).to_be_bytes());
        v.extend_from_slice(&[0x02, 0xf0, if eot { 0x80 } else { 0x00 }]);
        v.extend_from_slice(tsdu);
        v
    }

    /// An S7comm PDU: protocol id 0x32, ROSCTR, redundancy id 0, pdu_ref, parameter
    /// and data lengths, error class/code for ack / ack_data, parameter, data.
    fn s7(rosctr: u8, pdu_ref: u16, param: &[u8], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0x32, rosctr, 0x00, 0x00];
        v.extend_from_slice(&pdu_ref.to_be_bytes());
        v.extend_from_slice(&(param.len() as u16).to_be_bytes());
        v.extend_from_slice(&(data.len() as u16).to_be_bytes());
        if rosctr == 2 || rosctr == 3 {
            v.extend_from_slice(&[0x00, 0x00]);
        }
        v.extend_from_slice(param);
        v.extend_from_slice(data);
        v
    }

    /// An any-pointer item: [0x12][10][0x10][transport size][count u16][DB u16][area]
    /// [bit address u24].
    fn item(ts: u8, count: u16, db: u16, area: u8, byte: u32, bit: u32) -> Vec<u8> {
        let mut v = vec![0x12, 0x0a, 0x10, ts];
        v.extend_from_slice(&count.to_be_bytes());
        v.extend_from_slice(&db.to_be_bytes());
        v.push(area);
        v.extend_from_slice(&((byte << 3) | bit).to_be_bytes()[1..]);
        v
    }

    /// The TSDU of a write var job (0x05, 1 item: M12.0 BYTE x n) whose data item is
    /// return code 0, BYTE/WORD, n x 8 bits, `values`: 10 octets of header, 14 of
    /// parameter, then the data.
    fn write_tsdu(pdu_ref: u16, values: &[u8]) -> Vec<u8> {
        let n = values.len() as u16;
        let mut param = vec![0x05, 0x01];
        param.extend(item(0x02, n, 0, 0x83, 12, 0));
        let mut data = vec![0x00, 0x04];
        data.extend_from_slice(&(n * 8).to_be_bytes());
        data.extend_from_slice(values);
        s7(1, pdu_ref, &param, &data)
    }

    fn flow() -> S7Flow {
        S7Flow::new(&S7Config::default())
    }

    fn feed(f: &mut S7Flow, dir: Direction, bytes: &[u8]) -> Vec<Pdu> {
        let mut out = Vec::new();
        let n = f.on_data(dir, bytes, &mut out);
        assert_eq!(n, bytes.len(), "all bytes consumed");
        out
    }

    fn one(f: &mut S7Flow, dir: Direction, bytes: &[u8]) -> Pdu {
        let mut v = feed(f, dir, bytes);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    fn info(p: &Pdu) -> &S7commInfo {
        let Native::S7comm(s) = &p.native else {
            panic!("not S7comm: {p:?}")
        };
        s
    }

    /// Connection request with two-byte TSAPs: LI 17, CR, dst ref 0, src ref 1, class
    /// 0, c1 calling 0x0100 (PG), c2 called 0x0102 (rack 0 slot 2), c0 TPDU size 1024.
    const CR: [u8; 22] = [
        0x03, 0x00, 0x00, 0x16, 0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, 0xc1, 0x02, 0x01, 0x00,
        0xc2, 0x02, 0x01, 0x02, 0xc0, 0x01, 0x0a,
    ];

    #[test]
    fn read_var_pairs_items_return_codes_and_data() {
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &CR).is_empty());
        // Read var (0x04), 2 items: DB1.DBB10 BYTE x3, M5.2 BIT x1.
        let mut param = vec![0x04, 0x02];
        param.extend(item(0x02, 3, 1, 0x84, 10, 0));
        param.extend(item(0x01, 1, 0, 0x83, 5, 2));
        let q = one(&mut f, ToServer, &dt(&s7(1, 0x0100, &param, &[])));
        assert_eq!(q.operation, Operation::Read);
        assert!(!q.is_response);
        assert!(q.anomalies.is_empty(), "{:?}", q.anomalies);
        let i = info(&q);
        assert_eq!(
            (i.rosctr, i.function_code, i.function),
            (1, Some(4), "read_var")
        );
        assert_eq!(
            (i.calling_tsap, i.called_tsap),
            (Some(0x0100), Some(0x0102))
        );
        let items = i.items.as_ref().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            S7Item {
                area: 0x84,
                area_name: "DB",
                db: 1,
                address: 10,
                bit: 0,
                transport_size: 2,
                length: 3,
                data: None,
                return_code: None,
            }
        );
        assert_eq!(
            (items[1].area_name, items[1].address, items[1].bit),
            ("M", 5, 2)
        );
        // Ack_data: [0x04][2]; data: rc 0xff, BYTE/WORD (0x04), 24 bits, 3 bytes, fill
        // byte; rc 0xff, BIT (0x03), 1 bit, 0x01.
        let data = [
            0xff, 0x04, 0x00, 0x18, 0x0a, 0x0b, 0x0c, 0x00, 0xff, 0x03, 0x00, 0x01, 0x01,
        ];
        let r = one(&mut f, ToClient, &dt(&s7(3, 0x0100, &[0x04, 0x02], &data)));
        assert!(r.is_response);
        assert_eq!(r.operation, Operation::Read);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        let items = info(&r).items.as_ref().unwrap();
        assert_eq!(items[0].return_code, Some(0xff));
        assert_eq!(items[0].data.as_deref(), Some(&[0x0a, 0x0b, 0x0c][..]));
        assert_eq!(items[0].address, 10);
        assert_eq!(items[1].data.as_deref(), Some(&[0x01][..]));
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn write_var_carries_the_written_data_and_return_codes() {
        let mut f = flow();
        // Write var (0x05), 1 item DB10.DBW4 WORD x1; data: rc 0, BYTE/WORD, 16 bits,
        // 0x0042.
        let mut param = vec![0x05, 0x01];
        param.extend(item(0x04, 1, 10, 0x84, 4, 0));
        let data = [0x00, 0x04, 0x00, 0x10, 0x00, 0x42];
        let q = one(&mut f, ToServer, &dt(&s7(1, 7, &param, &data)));
        assert_eq!(q.operation, Operation::Write);
        let it = &info(&q).items.as_ref().unwrap()[0];
        assert_eq!((it.db, it.address, it.transport_size), (10, 4, 4));
        assert_eq!(it.data.as_deref(), Some(&[0x00, 0x42][..]));
        // Ack_data: [0x05][1]; data: return code 0x0a (object does not exist).
        let r = one(&mut f, ToClient, &dt(&s7(3, 7, &[0x05, 0x01], &[0x0a])));
        assert_eq!(r.operation, Operation::Write);
        let it = &info(&r).items.as_ref().unwrap()[0];
        assert_eq!(
            (it.db, it.return_code, it.data.as_deref()),
            (10, Some(0x0a), None)
        );
    }

    #[test]
    fn download_session_is_program_download_and_plc_jobs_are_responses() {
        let mut f = flow();
        // Request download (0x1a): [func][status][u16][u32][name len 9]"_0A00001P".
        let mut name = vec![0x09];
        name.extend_from_slice(b"_0A00001P");
        let mut req = vec![0x1a, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00];
        req.extend_from_slice(&name);
        let q = one(&mut f, ToServer, &dt(&s7(1, 1, &req, &[])));
        assert_eq!(
            (q.operation, q.is_response),
            (Operation::ProgramDownload, false)
        );
        let b = info(&q).block.as_ref().unwrap();
        assert_eq!((b.block_type.as_str(), b.number.as_str()), ("DB", "00001"));
        let r = one(&mut f, ToClient, &dt(&s7(3, 1, &[0x1a], &[])));
        assert_eq!(
            (r.operation, r.is_response),
            (Operation::ProgramDownload, true)
        );
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        // The PLC asks for the block (download block job 0x1b), the PG answers.
        let mut blk = vec![0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
        blk.extend_from_slice(&name);
        let j = one(&mut f, ToClient, &dt(&s7(1, 0x0100, &blk, &[])));
        assert_eq!(
            (j.operation, j.is_response),
            (Operation::ProgramDownload, true)
        );
        let a = one(
            &mut f,
            ToServer,
            &dt(&s7(3, 0x0100, &[0x1b, 0x00], &[0x00, 0x00])),
        );
        assert_eq!(
            (a.operation, a.is_response),
            (Operation::ProgramDownload, false)
        );
        assert!(a.anomalies.is_empty(), "{:?}", a.anomalies);
        assert_eq!(info(&a).block, info(&j).block);
        // PLC stop (0x29): [func][5 unknown][len 9]"P_PROGRAM".
        let mut stop = vec![0x29, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09];
        stop.extend_from_slice(b"P_PROGRAM");
        let s = one(&mut f, ToServer, &dt(&s7(1, 2, &stop, &[])));
        assert_eq!(s.operation, Operation::ModeChange);
        assert_eq!(info(&s).pi_service.as_deref(), Some("P_PROGRAM"));
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn upload_is_program_upload() {
        let mut f = flow();
        let mut p = vec![0x1d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09];
        p.extend_from_slice(b"_0800001A");
        let q = one(&mut f, ToServer, &dt(&s7(1, 3, &p, &[])));
        assert_eq!(q.operation, Operation::ProgramUpload);
        assert_eq!(info(&q).block.as_ref().unwrap().block_type, "OB");
        // Upload (0x1e): [func][status][u16][upload id u32].
        let u = one(
            &mut f,
            ToServer,
            &dt(&s7(1, 4, &[0x1e, 0, 0, 0, 0, 0, 0, 7], &[])),
        );
        assert_eq!(u.operation, Operation::ProgramUpload);
        let r = one(
            &mut f,
            ToClient,
            &dt(&s7(3, 4, &[0x1e, 0x00], &[0x00, 0x00])),
        );
        assert_eq!(r.operation, Operation::ProgramUpload);
    }

    #[test]
    fn userdata_szl_read_and_password() {
        let mut f = flow();
        // SZL read request: param 00 01 12 | len 4 | 0x11 | 0x44 (request, group 4) |
        // sub 1 | seq 0; data: rc 0xff, octet string (0x09), length 4, SZL 0x0011 idx 0.
        let param = [0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00];
        let data = [0xff, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x00];
        let q = one(&mut f, ToServer, &dt(&s7(7, 5, &param, &data)));
        assert_eq!(q.operation, Operation::Identify);
        let i = info(&q);
        assert_eq!(
            (i.function_group, i.subfunction, i.function),
            (Some(4), Some(1), "szl_read")
        );
        assert_eq!((i.szl_id, i.szl_index), (Some(0x0011), Some(0)));
        // Password: group 5 sub 1, data: rc 0xff, 0x09, length 8, 8 password bytes as
        // sent (scrambled by the PG).
        let param = [0x00, 0x01, 0x12, 0x04, 0x11, 0x45, 0x01, 0x00];
        let pw = [0x64, 0x31, 0x53, 0x67, 0x02, 0x22, 0x77, 0x55];
        let mut data = vec![0xff, 0x09, 0x00, 0x08];
        data.extend_from_slice(&pw);
        let p = one(&mut f, ToServer, &dt(&s7(7, 6, &param, &data)));
        assert_eq!(p.operation, Operation::Session);
        let expected = sha1_smol::Sha1::from(pw).digest().to_string();
        assert_eq!(
            info(&p).credential.as_deref(),
            Some(format!("s7:{}", &expected[..16]).as_str())
        );
        assert_eq!(info(&p).function, "plc_password");
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let mut param = vec![0x04, 0x01];
        param.extend(item(0x02, 3, 1, 0x84, 10, 0));
        let frame = dt(&s7(1, 9, &param, &[]));
        for n in 0..frame.len() {
            let mut f = flow();
            let mut out = Vec::new();
            assert_eq!(f.on_data(ToServer, &frame[..n], &mut out), 0, "prefix {n}");
            assert!(out.is_empty(), "prefix {n}: {out:?}");
        }
    }

    #[test]
    fn dt_fragments_are_reassembled_and_bounded() {
        let mut param = vec![0x04, 0x01];
        param.extend(item(0x02, 3, 1, 0x84, 10, 0));
        let tsdu = s7(1, 9, &param, &[]);
        let (a, b) = tsdu.split_at(5);
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &dt_frag(a, false)).is_empty());
        let p = one(&mut f, ToServer, &dt(b));
        assert_eq!(info(&p).function, "read_var");
        assert!(p.anomalies.is_empty());
        // Over the bound: one BAD_LENGTH report, the rest of the TSDU skipped.
        let mut f = S7Flow::new(&S7Config {
            max_tsdu_len: 30,
            ..S7Config::default()
        });
        let big = [0x32u8; 20];
        assert!(feed(&mut f, ToServer, &dt_frag(&big, false)).is_empty());
        let e = one(&mut f, ToServer, &dt_frag(&big, false));
        assert_eq!(
            (info(&e).function, e.anomalies),
            ("cotp", Anomalies::BAD_LENGTH)
        );
        assert!(feed(&mut f, ToServer, &dt(&big)).is_empty());
        // The next TSDU is framed normally.
        let p = one(&mut f, ToServer, &dt(&tsdu));
        assert_eq!(info(&p).function, "read_var");
    }

    #[test]
    fn bad_input_is_flagged_not_fatal() {
        let mut f = flow();
        // Item count 5, one item present.
        let mut param = vec![0x04, 0x05];
        param.extend(item(0x02, 3, 1, 0x84, 10, 0));
        let p = one(&mut f, ToServer, &dt(&s7(1, 1, &param, &[])));
        assert!(
            p.anomalies.contains(Anomalies::BAD_LENGTH),
            "{:?}",
            p.anomalies
        );
        assert_eq!(info(&p).items.as_ref().unwrap().len(), 1);
        // Unknown function 0x42.
        let p = one(&mut f, ToServer, &dt(&s7(1, 2, &[0x42], &[])));
        assert_eq!(p.anomalies, Anomalies::UNKNOWN_FUNCTION);
        assert_eq!(p.operation, Operation::Other);
        // Ack_data nobody asked for.
        let p = one(&mut f, ToClient, &dt(&s7(3, 99, &[0x04, 0x00], &[])));
        assert!(p.anomalies.contains(Anomalies::UNMATCHED_RESPONSE));
        // Header parameter length larger than the PDU.
        let mut lie = s7(1, 3, &[0xf0, 0, 0, 1, 0, 1, 1, 0xe0], &[]);
        lie[7] = 0x40;
        let p = one(&mut f, ToServer, &dt(&lie));
        assert!(p.anomalies.contains(Anomalies::BAD_LENGTH));
        // S7 header cut short.
        let p = one(&mut f, ToServer, &dt(&[0x32, 0x01, 0x00]));
        assert!(p.anomalies.contains(Anomalies::MALFORMED));
        // Unknown ROSCTR 5.
        let p = one(&mut f, ToServer, &dt(&s7(5, 1, &[], &[])));
        assert_eq!(p.anomalies, Anomalies::UNKNOWN_FUNCTION);
        // COTP length indicator beyond the TPKT.
        let p = one(
            &mut f,
            ToServer,
            &[0x03, 0x00, 0x00, 0x08, 0x09, 0xf0, 0x80, 0x32],
        );
        assert_eq!(
            (info(&p).function, p.anomalies),
            ("cotp", Anomalies::BAD_LENGTH)
        );
        assert_eq!(info(&p).rosctr, 0);
    }

    #[test]
    fn garbage_is_one_event_then_resync() {
        let mut f = flow();
        let good = dt(&s7(1, 1, &[0xf0, 0, 0, 1, 0, 1, 1, 0xe0], &[]));
        let mut bytes = vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0x01];
        bytes.extend_from_slice(&good);
        bytes.extend_from_slice(&good);
        let v = feed(&mut f, ToServer, &bytes);
        assert_eq!(v.len(), 3, "{v:?}");
        assert_eq!(
            (info(&v[0]).function, v[0].anomalies),
            ("garbage", Anomalies::GARBAGE)
        );
        assert_eq!(info(&v[1]).function, "setup_communication");
        assert!(v[1].anomalies.is_empty());
        // After a gap, a stream that frames cleanly yields no garbage event.
        f.on_gap(ToServer, &mut Vec::new());
        let v = feed(&mut f, ToServer, &good);
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn outstanding_jobs_are_bounded() {
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 2,
            ..S7Config::default()
        });
        for r in 0..2 {
            let p = one(&mut f, ToServer, &dt(&s7(1, r, &[0x04, 0x00], &[])));
            assert!(p.anomalies.is_empty());
        }
        let p = one(&mut f, ToServer, &dt(&s7(1, 9, &[0x04, 0x00], &[])));
        assert_eq!(p.anomalies, Anomalies::REQUEST_FLOOD);
        assert_eq!(f.outstanding(), 2);
    }

    #[test]
    fn s7comm_plus_messages_and_fragments() {
        let mut f = flow();
        // CreateObject request to the session container: 0x72 v1 len, opcode 0x31,
        // reserved, function 0x04ca, reserved, sequence 1, session 0x120, transport
        // flags 0x36; trailer 72 01 00 00.
        let body = [
            0x31, 0x00, 0x00, 0x04, 0xca, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x20, 0x36,
        ];
        let mut msg = vec![0x72, 0x01, 0x00, body.len() as u8];
        msg.extend_from_slice(&body);
        msg.extend_from_slice(&[0x72, 0x01, 0x00, 0x00]);
        let p = one(&mut f, ToServer, &dt(&msg));
        let Native::S7commPlus(i) = &p.native else {
            panic!()
        };
        assert_eq!((i.protocol_version, i.opcode), (1, 0x31));
        assert_eq!(
            (i.function_code, i.function),
            (Some(0x04ca), "create_object")
        );
        assert_eq!((i.session_id, i.protected), (Some(0x120), false));
        assert_eq!(p.operation, Operation::Session);
        // A SetVariable message in two frames: the first has no trailer, the second
        // (its own header, the trailer) continues it: one event.
        let body = [
            0x31, 0x00, 0x00, 0x04, 0xf2, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x03, 0x88,
        ];
        let mut first = vec![0x72, 0x02, 0x00, body.len() as u8];
        first.extend_from_slice(&body);
        let p = one(&mut f, ToServer, &dt(&first));
        assert_eq!(p.operation, Operation::Write);
        let cont = [0x72, 0x02, 0x00, 0x02, 0xaa, 0xbb, 0x72, 0x02, 0x00, 0x00];
        assert!(feed(&mut f, ToServer, &dt(&cont)).is_empty());
        // The next message is reported again.
        assert_eq!(feed(&mut f, ToServer, &dt(&msg)).len(), 1);
        // TLS inside COTP: protected.
        let p = one(&mut f, ToClient, &dt(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]));
        let Native::S7commPlus(i) = &p.native else {
            panic!()
        };
        assert!(i.protected);
        assert_eq!(p.operation, Operation::Other);
    }

    #[test]
    fn other_cotp_payloads_are_ignored() {
        let mut f = flow();
        // MMS over ISO-on-TCP starts with session-layer bytes, not 0x32/0x72.
        assert!(feed(&mut f, ToServer, &dt(&[0x0d, 0x01, 0x02, 0x03])).is_empty());
        // Empty DT (S7comm-plus keep-alive acknowledgement).
        assert!(feed(&mut f, ToServer, &dt(&[])).is_empty());
    }

    #[test]
    fn after_a_gap_a_flow_of_another_protocol_frames_again() {
        // MMS over ISO-on-TCP on port 102 (a session-layer SPDU first): 30 DTs of
        // 1000 octets, more than the longest TPKT, after a gap.
        let mms = dt(&[[0x01, 0x00, 0x01, 0x00].as_slice(), &[0x61; 996]].concat());
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &mms).is_empty());
        f.on_gap(ToServer, &mut Vec::new());
        let segments: Vec<&[u8]> = (0..30).map(|_| mms.as_slice()).collect();
        let out = drive(&mut f, ToServer, &segments);
        assert!(out.is_empty(), "{:?}", flags(&out));
        // A flow that carried none takes them for garbage after a gap, as before.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &segments);
        assert_eq!(flags(&out), [RESYNC_SKIP, GARBAGE]);
    }

    // ---- Capture loss: what a gap explains ----

    /// Read var job (0x04), 1 item: DB1.DBB10, BYTE x1.
    fn read_job(pdu_ref: u16) -> Vec<u8> {
        let mut param = vec![0x04, 0x01];
        param.extend(item(0x02, 1, 1, 0x84, 10, 0));
        dt(&s7(1, pdu_ref, &param, &[]))
    }

    /// Its ack_data: param [0x04][1 item]; data: rc 0xff, BYTE/WORD (0x04), 8 bits,
    /// 0x2a.
    fn read_answer(pdu_ref: u16) -> Vec<u8> {
        dt(&s7(
            3,
            pdu_ref,
            &[0x04, 0x01],
            &[0xff, 0x04, 0x00, 0x08, 0x2a],
        ))
    }

    /// Download block job (0x1b) of the PLC for DB 00001: [func][status][u16][u32]
    /// [name len 9]"_0A00001P".
    fn download_block_job(pdu_ref: u16) -> Vec<u8> {
        let mut p = vec![0x1b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09];
        p.extend_from_slice(b"_0A00001P");
        dt(&s7(1, pdu_ref, &p, &[]))
    }

    /// The PG's ack_data to it: [0x1b][more data 0]; data: length 0, unknown 0x00fb.
    fn download_block_answer(pdu_ref: u16) -> Vec<u8> {
        dt(&s7(3, pdu_ref, &[0x1b, 0x00], &[0x00, 0x00, 0x00, 0xfb]))
    }

    /// Drives `f` as the flow layer does (see `drive_stream`).
    fn drive(f: &mut S7Flow, dir: Direction, segments: &[&[u8]]) -> Vec<Pdu> {
        drive_stream(|b, out| f.on_data(dir, b, out), segments).0
    }

    fn flags(out: &[Pdu]) -> Vec<(&'static str, Anomalies)> {
        out.iter()
            .map(|p| (info(p).function, p.anomalies))
            .collect()
    }

    const RESYNC_SKIP: (&str, Anomalies) = ("garbage", Anomalies::RESYNC);
    const GARBAGE: (&str, Anomalies) = ("garbage", Anomalies::GARBAGE);
    const READ: (&str, Anomalies) = ("read_var", Anomalies::empty());
    const UNMATCHED_LOST: Anomalies = Anomalies::UNMATCHED_RESPONSE.union(Anomalies::RESYNC);

    #[test]
    fn after_a_gap_the_rest_of_a_cut_tpkt_is_resync_not_garbage() {
        let mut f = flow();
        one(&mut f, ToServer, &read_job(1));
        f.on_gap(ToServer, &mut Vec::new());
        // The gap took the first 9 bytes of job 2 (TPKT, COTP DT, S7 header start):
        // the rest, then jobs 3 and 4 whole.
        let mut after = read_job(2).get(9..).unwrap().to_vec();
        after.extend(read_job(3));
        after.extend(read_job(4));
        let out = feed(&mut f, ToServer, &after);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ, READ]);
        let refs: Vec<u16> = out.iter().skip(1).map(|p| info(p).pdu_ref).collect();
        assert_eq!(refs, [3, 4]);
        // The same bytes without a gap are the device's garbage.
        let out = feed(&mut flow(), ToServer, &after);
        assert_eq!(flags(&out), [GARBAGE, READ, READ]);
    }

    #[test]
    fn after_a_gap_a_dt_continuing_a_lost_fragment_is_resync() {
        // A write var job sent as two DT fragments; the first is lost. The second is
        // a whole TPKT whose TSDU starts inside the item: it is skipped.
        let tsdu = write_tsdu(7, &[0x3f, 0x8c, 0xcc, 0xcd]);
        let (_, second) = tsdu.split_at(24);
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(second), &read_job(8)]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
        // Its answer finds no job, for the loss.
        let w = one(&mut f, ToClient, &dt(&s7(3, 7, &[0x05, 0x01], &[0xff])));
        assert_eq!(w.anomalies, UNMATCHED_LOST);
    }

    #[test]
    fn after_a_gap_a_fragment_that_starts_like_a_job_is_not_one() {
        // A write var job whose values read like the header of a job, sent as two DT
        // fragments cut there, the first lost.
        let tsdu = write_tsdu(7, &LOOKS_LIKE_A_JOB);
        let (_, second) = tsdu.split_at(tsdu.len() - LOOKS_LIKE_A_JOB.len());
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(second), &read_job(8)]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
    }

    /// 16 values of a write that read like the header of a job with 2 octets of
    /// parameter (S7 id, ROSCTR 1, redundancy 0, pdu_ref 7, parameter length 2, data
    /// length 0) and its parameter: 12 octets, not the 16 there are.
    const LOOKS_LIKE_A_JOB: [u8; 16] = [
        0x32, 0x01, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0x00, 0x00, 0xf0, 0x00, 0x00, 0x01, 0x00,
        0x01,
    ];

    #[test]
    fn after_a_gap_a_fragment_that_starts_like_s7comm_plus_is_not_it() {
        // A write job whose values begin like an S7comm-plus frame of an unknown
        // version, cut there into two fragments, the first lost.
        let values = [0x72, 0x09, 0x00, 0x04, 0x31, 0x00, 0x00, 0x04];
        let tsdu = write_tsdu(7, &values);
        let (_, second) = tsdu.split_at(tsdu.len() - values.len());
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(second), &read_job(8)]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
        // Joined mid-stream on that TPKT: the first TSDU is checked the same way.
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&dt(second), &read_job(8)]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
    }

    #[test]
    fn s7comm_plus_v3_frames_are_read_after_their_digest() {
        // V3: each frame is [72 03 len][20, 32-byte digest][data], the last with the
        // trailer 72 03 00 00. A SetVariable request (layout of
        // icsnpp_s7comm_plus.pcap frame 7: sequence 0x831a, session 0x70000e4d) in
        // two frames, each with its digest, then the same request whole.
        let v3 = |data: &[u8], trailer: bool| {
            let mut v = vec![0x72, 0x03];
            v.extend_from_slice(&(33 + data.len() as u16).to_be_bytes());
            v.push(0x20);
            v.extend_from_slice(&[0x5a; 32]);
            v.extend_from_slice(data);
            if trailer {
                v.extend_from_slice(&[0x72, 0x03, 0x00, 0x00]);
            }
            v
        };
        let request = [
            0x31, 0x00, 0x00, 0x04, 0xf2, 0x00, 0x00, 0x83, 0x1a, 0x70, 0x00, 0x0e, 0x4d, 0x74,
        ];
        let (first, later) = (v3(&request, false), v3(&[0x00, 0x04, 0xc0], true));
        let whole = v3(&request, true);
        let plus = |out: &[Pdu]| -> Vec<(Option<u16>, &str, Operation, Anomalies)> {
            out.iter()
                .map(|p| match &p.native {
                    Native::S7commPlus(i) => {
                        assert!(i.protected);
                        (i.function_code, i.function, p.operation, p.anomalies)
                    }
                    Native::S7comm(i) => (None, i.function, p.operation, p.anomalies),
                    _ => (None, "?", p.operation, p.anomalies),
                })
                .collect()
        };
        let set = (
            Some(0x04f2),
            "set_variable",
            Operation::Write,
            Anomalies::empty(),
        );
        let out = drive(
            &mut flow(),
            ToServer,
            &[&dt(&first), &dt(&later), &dt(&whole)],
        );
        assert_eq!(plus(&out), [set, set]);
        // After a gap that took the first frame, the later one (a digest, then bytes
        // that are no opcode) is skipped as the rest of a lost message.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(&later), &dt(&whole)]);
        let skip = (None, "garbage", Operation::Other, Anomalies::RESYNC);
        assert_eq!(plus(&out), [skip, set]);
        // A whole message first after a gap is read as usual.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        assert_eq!(plus(&drive(&mut f, ToServer, &[&dt(&whole)])), [set]);
    }

    #[test]
    fn after_a_gap_the_later_frames_of_an_s7comm_plus_message_are_not_one() {
        // A SetVariable request in three frames: the gap took the first (opcode,
        // function); the second has no trailer, the third has it. Then a whole
        // CreateObject request.
        let middle = [0x72, 0x02, 0x00, 0x04, 0x00, 0x04, 0xc0, 0x00];
        let last = [0x72, 0x02, 0x00, 0x02, 0x03, 0xa0, 0x72, 0x02, 0x00, 0x00];
        let body = [
            0x31, 0x00, 0x00, 0x04, 0xca, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x20, 0x36,
        ];
        let mut whole = vec![0x72, 0x02, 0x00, body.len() as u8];
        whole.extend_from_slice(&body);
        whole.extend_from_slice(&[0x72, 0x02, 0x00, 0x00]);
        let create = ("create_object", Anomalies::empty());
        let functions = |out: &[Pdu]| -> Vec<(&str, Anomalies)> {
            out.iter()
                .map(|p| match &p.native {
                    Native::S7commPlus(i) => (i.function, p.anomalies),
                    Native::S7comm(i) => (i.function, p.anomalies),
                    _ => ("?", p.anomalies),
                })
                .collect()
        };
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(&middle), &dt(&last), &dt(&whole)]);
        assert_eq!(functions(&out), [RESYNC_SKIP, create]);
        // The last frame alone after the gap: the same.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&dt(&last), &dt(&whole)]);
        assert_eq!(functions(&out), [RESYNC_SKIP, create]);
        // Joined mid-stream there.
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&dt(&middle), &dt(&last), &dt(&whole)]);
        assert_eq!(functions(&out), [RESYNC_SKIP, create]);
        // A whole message first after a gap is read as usual.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        assert_eq!(
            functions(&drive(&mut f, ToServer, &[&dt(&whole)])),
            [create]
        );
        // Without a loss the same bytes are the device's: an unknown opcode.
        let out = drive(&mut flow(), ToServer, &[&dt(&middle)]);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].anomalies.contains(Anomalies::UNKNOWN_FUNCTION),
            "{out:?}"
        );
    }

    #[test]
    fn joined_mid_stream_a_fragment_that_starts_like_a_job_is_not_one() {
        // The join falls on the TPKT of the fragment that ends such a write: a whole
        // TPKT, framed as usual, whose TSDU is the rest of one not captured.
        let tsdu = write_tsdu(7, &LOOKS_LIKE_A_JOB);
        let (_, second) = tsdu.split_at(tsdu.len() - LOOKS_LIKE_A_JOB.len());
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&dt(second), &read_job(8)]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
        // The first TSDU of a direction only: a whole job first is read as such, and
        // the answers' direction has its own first TSDU.
        let mut f = flow().joined_mid_stream();
        assert_eq!(flags(&drive(&mut f, ToServer, &[&read_job(8)])), [READ]);
        let a = one(&mut f, ToClient, &read_answer(8));
        assert!(a.anomalies.is_empty(), "{a:?}");
        // Without the join the same bytes are the device's: decoded, lengths flagged.
        let out = drive(&mut flow(), ToServer, &[&dt(second)]);
        assert_eq!(out.len(), 1);
        assert!(out[0].anomalies.contains(Anomalies::BAD_LENGTH), "{out:?}");
    }

    #[test]
    fn after_a_gap_an_empty_dt_is_a_tpkt_like_any_other() {
        // An S7comm-plus keep-alive (a DT with no payload) before or after a job.
        let empty = dt(&[]);
        for segment in [
            [read_job(1), empty.clone(), read_job(2)].concat(),
            [empty.clone(), read_job(2)].concat(),
        ] {
            let mut f = flow();
            f.on_gap(ToServer, &mut Vec::new());
            let out = drive(&mut f, ToServer, &[&segment]);
            let reads = if segment.starts_with(&empty) { 1 } else { 2 };
            assert_eq!(flags(&out), vec![READ; reads]);
        }
    }

    #[test]
    fn after_a_gap_a_fragmented_job_is_read_whole() {
        // A write var job in two fragments, both seen, in one segment: the first
        // starts the run of TPKTs, and the second, whose first octet is data,
        // continues it.
        let tsdu = write_tsdu(7, &[0x3f, 0x8c, 0xcc, 0xcd]);
        let (first, second) = tsdu.split_at(24);
        let mut segment = dt_frag(first, false);
        segment.extend(dt(second));
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&segment]);
        assert_eq!(flags(&out), [("write_var", Anomalies::empty())]);
    }

    #[test]
    fn a_gap_explains_no_more_than_a_tpkt_of_skipped_bytes() {
        let junk = vec![0xEE; 1000];
        // 70,000 bytes that never frame, in 1000-byte segments: the first are taken
        // for the rest of a cut TPKT, then the stretch is garbage.
        let mut f = flow();
        f.on_gap(ToClient, &mut Vec::new());
        let segments: Vec<&[u8]> = (0..70).map(|_| junk.as_slice()).collect();
        let out = drive(&mut f, ToClient, &segments);
        assert_eq!(flags(&out), [RESYNC_SKIP, GARBAGE]);
        // In one piece longer than a TPKT: garbage only.
        let mut f = S7Flow::new(&S7Config {
            max_resync_scan: 100_000,
            ..S7Config::default()
        });
        f.on_gap(ToClient, &mut Vec::new());
        let out = drive(&mut f, ToClient, &[&[0xEE; 70_000]]);
        assert_eq!(flags(&out), [GARBAGE]);
        // One byte less than the longest TPKT framed: the rest of a cut one only.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let mut data = vec![0xEE; usize::from(S7Config::default().max_tpkt_len) - 1];
        data.extend(read_job(5));
        let out = drive(&mut f, ToServer, &[&data]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
    }

    #[test]
    fn an_answer_whose_job_a_gap_took_is_flagged_resync_until_pairing_resumes() {
        let mut f = flow();
        one(&mut f, ToServer, &read_job(1));
        assert!(one(&mut f, ToClient, &read_answer(1)).anomalies.is_empty());
        // Job 2 is lost in a gap; its ack_data finds no job, for that reason.
        f.on_gap(ToServer, &mut Vec::new());
        let r = one(&mut f, ToClient, &read_answer(2));
        assert_eq!(r.anomalies, UNMATCHED_LOST);
        // Pairing resumes; a later unmatched answer has no loss to explain it.
        one(&mut f, ToServer, &read_job(3));
        assert!(one(&mut f, ToClient, &read_answer(3)).anomalies.is_empty());
        let r = one(&mut f, ToClient, &read_answer(9));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_plc_job_lost_in_a_gap_explains_the_pg_answer_only() {
        let mut f = flow();
        // During a download the PLC sends download-block jobs; one is lost in a gap
        // of the PLC's direction, and the PG's ack_data finds no job.
        f.on_gap(ToClient, &mut Vec::new());
        let a = one(&mut f, ToServer, &download_block_answer(0x0100));
        assert_eq!(
            (info(&a).function, a.anomalies),
            ("download_block", UNMATCHED_LOST)
        );
        // The gap in the PLC's direction lost no job of the PG: an ack_data of the PLC
        // without a job is still unexplained.
        let r = one(&mut f, ToClient, &read_answer(4));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // A later PLC job answered ends the loss.
        one(&mut f, ToClient, &download_block_job(0x0200));
        assert!(one(&mut f, ToServer, &download_block_answer(0x0200))
            .anomalies
            .is_empty());
        let a = one(&mut f, ToServer, &download_block_answer(0x0300));
        assert_eq!(a.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_gap_in_the_plcs_jobs_explains_no_more_answers_than_jobs_could_wait() {
        // The PLC rarely sends jobs: its gap must not silence the PG's unmatched
        // answers for good, only as many as jobs could have been outstanding.
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 2,
            ..S7Config::default()
        });
        f.on_gap(ToClient, &mut Vec::new());
        let flags: Vec<Anomalies> = [0x0100, 0x0200, 0x0300]
            .into_iter()
            .map(|r| one(&mut f, ToServer, &download_block_answer(r)).anomalies)
            .collect();
        assert_eq!(
            flags,
            [
                UNMATCHED_LOST,
                UNMATCHED_LOST,
                Anomalies::UNMATCHED_RESPONSE
            ]
        );
    }

    #[test]
    fn after_a_gap_in_the_jobs_older_answers_do_not_end_the_loss() {
        let mut f = flow();
        one(&mut f, ToServer, &read_job(1));
        // Job 2 is lost; jobs 3 and 4 are seen; the answers come after.
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToServer, &read_job(3));
        one(&mut f, ToServer, &read_job(4));
        let answer = |f: &mut S7Flow, r| one(f, ToClient, &read_answer(r)).anomalies;
        // The answer to job 1, sent before the gap, pairs; job 2's finds none, for
        // the loss.
        assert!(answer(&mut f, 1).is_empty());
        assert_eq!(answer(&mut f, 2), UNMATCHED_LOST);
        // Job 3 was sent after the gap: its answer ends the loss.
        assert!(answer(&mut f, 3).is_empty());
        assert_eq!(answer(&mut f, 9), Anomalies::UNMATCHED_RESPONSE);
        assert!(answer(&mut f, 4).is_empty());
    }

    #[test]
    fn jobs_whose_answers_a_gap_took_are_forgotten() {
        let mut f = flow();
        // Over a long session, 100 ack_data are lost, one gap each, between answered
        // jobs: no job is left waiting, none is reported as a flood.
        for r in 0..100 {
            assert!(one(&mut f, ToServer, &read_job(r)).anomalies.is_empty());
            // The next job goes out before the gap in the answers is known.
            let q = one(&mut f, ToServer, &read_job(r + 1000));
            assert!(q.anomalies.is_empty(), "{q:?}");
            f.on_gap(ToClient, &mut Vec::new());
            // Its answer still pairs, with the job's item.
            let a = one(&mut f, ToClient, &read_answer(r + 1000));
            assert!(a.anomalies.is_empty(), "{a:?}");
            let items = info(&a).items.as_ref().unwrap();
            assert_eq!((items[0].db, items[0].address), (1, 10));
            assert_eq!(f.outstanding(), 0);
        }
        // Without a gap, a job answered out of order leaves the older waiting.
        one(&mut f, ToServer, &read_job(1));
        one(&mut f, ToServer, &read_job(2));
        one(&mut f, ToClient, &read_answer(2));
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn a_gap_in_the_answers_keeps_the_jobs_of_the_other_side() {
        let mut f = flow();
        // The PLC's download-block job waits for the PG's answer; the PG's jobs 1 and
        // 2 wait for the PLC's. A gap in the PLC's direction takes the answer to 1.
        one(&mut f, ToClient, &download_block_job(0x0100));
        one(&mut f, ToServer, &read_job(1));
        one(&mut f, ToServer, &read_job(2));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &read_answer(2)).anomalies.is_empty());
        // Job 1 is gone, the PLC's job is not: the PG's answer still pairs.
        assert_eq!(f.outstanding(), 1);
        let a = one(&mut f, ToServer, &download_block_answer(0x0100));
        assert!(a.anomalies.is_empty(), "{a:?}");
        assert_eq!(info(&a).block.as_ref().unwrap().number, "00001");
        // Job 1 may still be answered, late (parallel jobs answered out of order):
        // once.
        let r = one(&mut f, ToClient, &read_answer(1));
        assert!(r.anomalies.is_empty(), "{r:?}");
        let r = one(&mut f, ToClient, &read_answer(1));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn jobs_sent_after_a_loss_in_the_answers_wait_for_their_own() {
        // As the flow layer calls: the answer to job 1 is lost. Jobs 2 and 3 come in
        // segments that acknowledge it (the first further than before), the PLC
        // answers them out of order (parallel jobs), and the gap is declared only
        // when the answer to 3, held behind the hole, is acknowledged.
        let mut f = flow();
        one(&mut f, ToServer, &read_job(1));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &read_job(2));
        one(&mut f, ToServer, &read_job(3));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &read_answer(3)).anomalies.is_empty());
        // Job 1 went with the gap, job 2 did not.
        assert_eq!(f.outstanding(), 1);
        let a = one(&mut f, ToClient, &read_answer(2));
        assert!(a.anomalies.is_empty(), "{a:?}");
        assert_eq!(f.outstanding(), 0);

        // A burst: the answers to 1 and 2 are both lost, acknowledged in turn.
        let mut f = flow();
        one(&mut f, ToServer, &read_job(1));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &read_job(2));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &read_job(3));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &read_answer(3)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn answers_lost_one_by_one_make_no_flood() {
        // 70 read jobs, each answer of the first 66 lost (more than the 64 jobs the
        // table holds). The TCP layer cannot see a hole until an answer arrives: until
        // then each job comes in a segment acknowledging the unseen answers; the first
        // answer seen reveals the gap.
        let mut f = flow();
        let mut out = Vec::new();
        for r in 0..70u16 {
            if r > 0 && r <= 66 {
                // Each acknowledges one more lost answer than the last.
                f.on_acked_beyond(ToClient);
                f.on_unseen_acked(ToClient);
            }
            out.push(one(&mut f, ToServer, &read_job(r)));
            if r == 66 {
                f.on_gap(ToClient, &mut Vec::new());
            }
            if r >= 66 {
                out.push(one(&mut f, ToClient, &read_answer(r)));
            }
        }
        let flagged: Vec<_> = out.iter().filter(|p| !p.anomalies.is_empty()).collect();
        assert!(flagged.is_empty(), "{flagged:?}");
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn a_job_whose_answer_a_gap_may_have_taken_leaves_no_flood() {
        // Jobs 1 and 2 are outstanding when a gap in the answers is declared; the
        // PLC answers 1 after it (parallel jobs, out of order: the gap held the
        // answer to 2). Job 2 then waits for nothing, and when the table is full it
        // is the one dropped, without a flood. The next drop, of a job sent after the
        // gap, is one.
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 3,
            ..S7Config::default()
        });
        let job = |f: &mut S7Flow, r: u16| one(f, ToServer, &read_job(r)).anomalies;
        assert!(job(&mut f, 1).is_empty());
        assert!(job(&mut f, 2).is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &read_answer(1)).anomalies.is_empty());
        assert!(job(&mut f, 3).is_empty());
        assert!(job(&mut f, 4).is_empty());
        assert!(job(&mut f, 5).is_empty(), "job 2 made room");
        assert_eq!(job(&mut f, 6), Anomalies::REQUEST_FLOOD, "job 3 did");
        for r in [4, 5, 6] {
            let a = one(&mut f, ToClient, &read_answer(r));
            assert!(a.anomalies.is_empty(), "{r}: {a:?}");
        }
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn any_answer_after_an_unseen_acknowledgment_makes_the_next_gap_count_every_job() {
        // The PG acknowledges PLC bytes the sensor has not seen; then an answer comes
        // (one that pairs with nothing): the acknowledged bytes were late, not lost.
        // A gap in the answers declared after job 1 was sent may have taken its
        // answer, so the room job 1 takes is no flood. As for Modbus and OPC UA; the
        // S7 code before the shared table only took an answer that paired for proof.
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 1,
            ..S7Config::default()
        });
        f.on_acked_beyond(ToClient);
        let a = one(&mut f, ToClient, &read_answer(4));
        assert_eq!(a.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert!(one(&mut f, ToServer, &read_job(1)).anomalies.is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToServer, &read_job(7)).anomalies.is_empty());
        // Without that answer, the gap holds answers to the jobs outstanding at the
        // acknowledgment only: none, so dropping job 1 is a flood.
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 1,
            ..S7Config::default()
        });
        f.on_acked_beyond(ToClient);
        assert!(one(&mut f, ToServer, &read_job(1)).anomalies.is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        let j = one(&mut f, ToServer, &read_job(7));
        assert_eq!(j.anomalies, Anomalies::REQUEST_FLOOD);
    }

    #[test]
    fn the_bound_on_outstanding_jobs_holds_for_each_direction() {
        // During a download the PLC sends jobs too: they neither take the room of
        // its client's jobs nor pair with the client's answers.
        let mut f = S7Flow::new(&S7Config {
            max_outstanding: 2,
            ..S7Config::default()
        });
        let job = |f: &mut S7Flow, dir, r: u16| one(f, dir, &read_job(r)).anomalies;
        assert!(job(&mut f, ToServer, 1).is_empty());
        assert!(job(&mut f, ToClient, 2).is_empty());
        assert!(job(&mut f, ToClient, 3).is_empty());
        assert!(job(&mut f, ToServer, 4).is_empty());
        assert_eq!(f.outstanding(), 4);
        assert_eq!(job(&mut f, ToClient, 5), Anomalies::REQUEST_FLOOD);
        // The PLC's answer 1 pairs with the client's job 1; the client's answer 1
        // would find none, since the PLC's job 1 was never sent.
        assert!(one(&mut f, ToClient, &read_answer(1)).anomalies.is_empty());
        let a = one(&mut f, ToServer, &read_answer(1));
        assert_eq!(a.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert!(one(&mut f, ToServer, &read_answer(3)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 2);
    }

    #[test]
    fn a_segment_acknowledging_unseen_jobs_explains_its_own_unmatched_answers() {
        let mut f = flow();
        f.on_unseen_acked(ToServer);
        // Two answers in the segment: both explained.
        let mut two = read_answer(2);
        two.extend(read_answer(3));
        let out = feed(&mut f, ToClient, &two);
        assert_eq!(flags(&out), [("read_var", UNMATCHED_LOST); 2]);
        // The next segment carries no such evidence.
        let r = one(&mut f, ToClient, &read_answer(4));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // Unseen bytes of the PLC explain the PG's answers, not the PLC's.
        f.on_unseen_acked(ToClient);
        let r = one(&mut f, ToClient, &read_answer(5));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        f.on_unseen_acked(ToClient);
        let a = one(&mut f, ToServer, &download_block_answer(0x0100));
        assert_eq!(a.anomalies, UNMATCHED_LOST);
    }

    #[test]
    fn a_flow_joined_mid_stream_explains_the_cut_tpkt_at_its_start_only() {
        // The sensor joined in the middle of a TPKT: its last 12 bytes, then a job.
        let mut start = read_job(1).get(19..).unwrap().to_vec();
        start.extend(read_job(2));
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&start]);
        assert_eq!(flags(&out), [RESYNC_SKIP, READ]);
        // Later, bytes that do not frame are the device's.
        let out = drive(&mut f, ToServer, &[&start]);
        assert_eq!(flags(&out), [GARBAGE, READ]);
        // The other direction's start is explained too.
        let mut answers = read_answer(1).get(5..).unwrap().to_vec();
        answers.extend(read_answer(7));
        let out = drive(&mut f, ToClient, &[&answers]);
        assert_eq!(
            flags(&out),
            [RESYNC_SKIP, ("read_var", Anomalies::UNMATCHED_RESPONSE)]
        );
        // A flow whose start was seen: garbage from the first byte.
        let out = drive(&mut flow(), ToServer, &[&start]);
        assert_eq!(flags(&out), [GARBAGE, READ]);
        // Framing is as lenient as ever for a first TPKT, whole or split, followed by
        // part of the next header.
        let mut job = read_job(3);
        job.extend_from_slice(&[0x03, 0x00]);
        let mut f = flow().joined_mid_stream();
        let mut out = Vec::new();
        assert_eq!(f.on_data(ToServer, job.get(..10).unwrap(), &mut out), 0);
        assert_eq!(f.on_data(ToServer, &job, &mut out), job.len() - 2);
        assert_eq!(flags(&out), [READ]);
    }
}
