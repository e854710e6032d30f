//! Per-flow state: framing per direction, resynchronisation, and request/response
//! pairing by transaction id with a bounded table of outstanding requests.

use otwatch_event::{
    Anomalies, Direction, ModbusInfo, Native, Operation, Outstanding, Pdu, PduSink, Request,
    Skipped,
};

use crate::decode::{decode_request, decode_response, Decoded, Packed, Pairing, RequestContext};
use crate::parser::{
    check_header, parse_modbus_adu, FunctionCheck, HeaderCheck, ModbusAdu, MAX_MBAP_LENGTH,
    MBAP_PREFIX_LEN,
};

/// Bounds of one flow's state. Limits are data, not globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModbusConfig {
    /// Outstanding (unanswered) requests kept per flow for pairing; when full, the
    /// oldest is dropped and the new request is flagged `REQUEST_FLOOD`. At least 1.
    pub max_outstanding: usize,
    /// Candidate offsets examined per `on_data` call while resynchronising; when none
    /// qualifies, that many bytes are consumed as garbage and the call returns. At
    /// least 1.
    pub max_resync_scan: usize,
}

impl Default for ModbusConfig {
    fn default() -> Self {
        ModbusConfig {
            max_outstanding: 64,
            max_resync_scan: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DirState {
    /// Framing is not trusted (start after a gap, or garbage seen): the next ADU must
    /// pass the strict check before it is accepted.
    resync: bool,
    /// Bytes skipped since the last ADU or gap (after a gap, the rest of an ADU it cut
    /// is RESYNC, not GARBAGE).
    skipped: Skipped,
}

/// The longest ADU: what a gap leaves of one is shorter.
const MAX_ADU_LEN: usize = MBAP_PREFIX_LEN + MAX_MBAP_LENGTH as usize;

/// What a resynchronisation scan found.
enum Scan {
    /// A trusted ADU starts this many bytes in.
    Found(usize),
    /// Skip this many bytes, then wait for more data to decide.
    NeedMore(usize),
    /// Nothing within the scan window: skip this many bytes.
    NotFound(usize),
}

/// A Modbus server answers each request when it has served it: none waits queued.
/// Most masters count their transaction ids.
impl Request for RequestContext {
    const NUMBER_BITS: u32 = 16;

    fn number(&self) -> Option<u32> {
        Some(u32::from(self.transaction_id))
    }
}

/// Modbus/TCP state of one flow (both directions).
#[derive(Debug, Clone)]
pub struct ModbusFlow {
    max_resync_scan: usize,
    /// Outstanding requests, and what the capture's losses say about them.
    pending: Outstanding<RequestContext>,
    to_server: DirState,
    to_client: DirState,
}

impl ModbusFlow {
    pub fn new(config: &ModbusConfig) -> Self {
        ModbusFlow {
            max_resync_scan: config.max_resync_scan.max(1),
            pending: Outstanding::new(config.max_outstanding),
            to_server: DirState::default(),
            to_client: DirState::default(),
        }
    }

    fn dir_state(&mut self, dir: Direction) -> &mut DirState {
        match dir {
            Direction::ToServer => &mut self.to_server,
            Direction::ToClient => &mut self.to_client,
        }
    }

    /// The flow's start was not captured (no handshake): its first bytes may be the
    /// rest of an ADU. They are framed as usual, but when they do not frame, what is
    /// skipped before the first ADU, up to an ADU's length, is reported as RESYNC (as
    /// after a gap), not as the device's garbage.
    pub fn joined_mid_stream(mut self) -> Self {
        self.to_server.skipped.joined();
        self.to_client.skipped.joined();
        self
    }

    /// Number of requests waiting for their response.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// In-order bytes of one direction (`ToServer` = requests, `ToClient` =
    /// responses). Emits one [`Pdu`] per ADU (and one per stretch of garbage) and
    /// returns how many bytes were consumed; the unconsumed tail (an ADU split across
    /// segments, or bytes whose framing cannot be decided yet) must be presented again,
    /// followed by the next bytes.
    pub fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let n = self.frame(dir, data, out);
        self.pending.delivered(dir);
        n
    }

    fn frame(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let mut off = 0;
        // Progress: every turn consumes at least one byte or returns.
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            if self.dir_state(dir).resync {
                let nothing_skipped = self.dir_state(dir).skipped.is_empty();
                match self.scan(dir, rest, nothing_skipped) {
                    Scan::Found(skip) => {
                        self.skip_garbage(dir, skip, out);
                        off += skip;
                        let st = self.dir_state(dir);
                        st.resync = false;
                        st.skipped.regained();
                    }
                    Scan::NeedMore(skip) => {
                        self.skip_garbage(dir, skip, out);
                        return off + skip;
                    }
                    Scan::NotFound(skip) => {
                        self.skip_garbage(dir, skip, out);
                        return off + skip;
                    }
                }
                continue;
            }
            match parse_modbus_adu(rest) {
                Ok((after, adu)) => {
                    self.dir_state(dir).skipped.framed();
                    self.handle(dir, &adu, out);
                    off += rest.len() - after.len();
                }
                Err(nom::Err::Incomplete(_)) => break,
                Err(_) => {
                    // The length is out of range: framing is lost (to the bytes, or,
                    // at the start of a flow joined mid-stream, to the join).
                    self.dir_state(dir).resync = true;
                }
            }
        }
        off
    }

    /// Bytes of `dir` were lost: the next bytes are trusted only once a strict header
    /// check succeeds, and what is skipped until then, up to an ADU's length, is
    /// reported as RESYNC (the rest of an ADU the gap cut). After a gap in the
    /// requests, responses that find no request are flagged RESYNC too, until one
    /// pairs again. After a gap in the responses, the requests they answered are
    /// dropped once a later request is answered, so that they neither fill the table
    /// (a false REQUEST_FLOOD) nor pair with a later response once transaction ids
    /// wrap; a late answer to one of them still pairs, for a while.
    pub fn on_gap(&mut self, dir: Direction, _out: &mut dyn PduSink) {
        let st = self.dir_state(dir);
        st.resync = true;
        st.skipped.lost();
        self.pending.on_gap(dir);
    }

    /// The next bytes of the other direction come in a segment that acknowledges
    /// bytes of `dir` the sensor did not see: lost by the capture, or still on their
    /// way. Only the data of the next [`ModbusFlow::on_data`] call of the other
    /// direction is concerned: the acknowledgment is that segment's own evidence, not
    /// a state of the flow.
    ///
    /// * `ToServer` (unseen requests): a response that finds no request is flagged
    ///   RESYNC: it answers one of those bytes.
    /// * `ToClient` (unseen responses): the client received answers the sensor did
    ///   not see, so the table overstates what is outstanding; a request that finds
    ///   it full takes the place of the oldest without being flagged REQUEST_FLOOD.
    pub fn on_unseen_acked(&mut self, dir: Direction) {
        self.pending.on_unseen_acked(dir);
    }

    /// The client has now acknowledged response bytes beyond any seen (`dir` is
    /// `ToClient`): if the capture lost them, the gap declared later holds answers
    /// to the requests outstanding now only, not to those sent after.
    pub fn on_acked_beyond(&mut self, dir: Direction) {
        self.pending.on_acked_beyond(dir);
    }

    /// The flow ended: unanswered requests are forgotten (they were reported when
    /// seen).
    pub fn on_end(&mut self, _out: &mut dyn PduSink) {
        self.pending.clear();
        self.to_server = DirState::default();
        self.to_client = DirState::default();
    }

    /// Looks for the next offset where a trusted ADU starts: a plausible header and a
    /// complete ADU, followed by another header (the strongest evidence: two headers
    /// in a row), or by the end of the data or part of a header when the ADU vouches
    /// for itself. Bytes left by a gap often hold a header by chance (a zero address
    /// reads as protocol id 0), so an ADU vouches for itself only when it decodes as
    /// a well-formed PDU of `dir`; one with an unknown function code, whose body
    /// cannot be checked, only when it is all the data since the gap (a segment of
    /// one ADU). Otherwise the scan waits for what follows.
    fn scan(&self, dir: Direction, rest: &[u8], nothing_skipped: bool) -> Scan {
        let window = rest.len().min(self.max_resync_scan);
        for k in 0..window {
            let Some(candidate) = rest.get(k..) else {
                break;
            };
            let len = match check_header(candidate, FunctionCheck::Defined) {
                HeaderCheck::Yes { len } => len,
                HeaderCheck::NeedMore => return Scan::NeedMore(k),
                HeaderCheck::No => continue,
            };
            let (Some(adu), Some(next)) = (candidate.get(..len), candidate.get(len..)) else {
                return Scan::NeedMore(k);
            };
            let after = (!next.is_empty()).then(|| check_header(next, FunctionCheck::Defined));
            match (after, trust_of(dir, adu)) {
                (Some(HeaderCheck::No), _) => {}
                // Anomalies and all: the ADU is reported with them.
                (Some(HeaderCheck::Yes { .. }), _) => return Scan::Found(k),
                (_, Trust::Clean) => return Scan::Found(k),
                (None, Trust::Corroborated) if k == 0 && nothing_skipped => return Scan::Found(k),
                (_, Trust::Corroborated | Trust::Never) => return Scan::NeedMore(k),
            }
        }
        Scan::NotFound(window)
    }

    /// Consumes `n` unframable bytes. A stretch yields one GARBAGE event at its first
    /// skip; after a gap, one RESYNC event instead, and a GARBAGE event as well once
    /// the stretch grows longer than what a gap can leave of an ADU.
    fn skip_garbage(&mut self, dir: Direction, n: usize, out: &mut dyn PduSink) {
        let Some(anomalies) = self.dir_state(dir).skipped.skip(n, MAX_ADU_LEN) else {
            return;
        };
        out.push(Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation: Operation::Other,
            anomalies,
            native: Native::Modbus(ModbusInfo {
                function: "garbage",
                ..ModbusInfo::default()
            }),
        });
    }

    fn handle(&mut self, dir: Direction, adu: &ModbusAdu<'_>, out: &mut dyn PduSink) {
        let (decoded, packed) = match dir {
            Direction::ToServer => {
                let (mut decoded, ctx) = decode_request(adu);
                let tid = ctx.transaction_id;
                if self.pending.push_reusing(ctx, |c| c.transaction_id == tid) {
                    decoded.anomalies.insert(Anomalies::REQUEST_FLOOD);
                }
                (decoded, None)
            }
            Direction::ToClient => {
                let tid = adu.transaction_id;
                match self.pending.answer(|c| c.transaction_id == tid) {
                    Some(ctx) => {
                        let pairing = if ctx.function == adu.function.base() {
                            Pairing::Matched(&ctx)
                        } else {
                            Pairing::Mismatched
                        };
                        let paired = decode_response(adu, pairing);
                        if paired.0.anomalies.contains(Anomalies::RESPONSE_MISMATCH)
                            && self.pending.mismatch_is_loss()
                        {
                            answer_to_lost_request(adu)
                        } else {
                            paired
                        }
                    }
                    None => {
                        let (mut decoded, packed) = decode_response(adu, Pairing::Unmatched);
                        if self.pending.unmatched_is_loss(false, Some(u32::from(tid))) {
                            decoded.anomalies.insert(Anomalies::RESYNC);
                        }
                        (decoded, packed)
                    }
                }
            }
        };
        let mut pdu = Pdu {
            direction: dir,
            is_response: dir == Direction::ToClient,
            operation: decoded.operation,
            anomalies: decoded.anomalies,
            native: Native::Modbus(decoded.info),
        };
        // The values of a read answer are expanded only for an event.
        if let Some(packed) = packed.filter(|_| out.wants(&pdu)) {
            if let Native::Modbus(info) = &mut pdu.native {
                info.values = Some(packed.expand());
            }
        }
        out.push(pdu);
    }
}

/// An answer that contradicts the request it paired with, when the capture explains
/// it ([`Outstanding::mismatch_is_loss`]): it answers a request the sensor never saw,
/// so it is decoded unpaired and marked as a resynchronisation.
#[cold]
#[inline(never)]
fn answer_to_lost_request<'a>(adu: &ModbusAdu<'a>) -> (Decoded, Option<Packed<'a>>) {
    let (mut decoded, packed) = decode_response(adu, Pairing::Unmatched);
    decoded.anomalies.insert(Anomalies::RESYNC);
    (decoded, packed)
}

/// Anomalies that no well-formed PDU has: a resynchronisation candidate with any of
/// them is not trusted.
const UNTRUSTED: Anomalies = Anomalies::MALFORMED
    .union(Anomalies::BAD_LENGTH)
    .union(Anomalies::UNKNOWN_EXCEPTION)
    .union(Anomalies::OUT_OF_SPEC_VALUE)
    .union(Anomalies::PROTOCOL_ID);

/// How far a resynchronisation candidate can be trusted on its own bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// It decodes without an [`UNTRUSTED`] anomaly.
    Clean,
    /// Its function code is unknown, so its body cannot be checked: only a header
    /// right after it, or nothing before or after it, makes it believable.
    Corroborated,
    Never,
}

/// Decodes `adu` (one whole ADU) as a request or an unpaired response.
fn trust_of(dir: Direction, adu: &[u8]) -> Trust {
    let Ok((_, adu)) = parse_modbus_adu(adu) else {
        return Trust::Never;
    };
    let anomalies = match dir {
        Direction::ToServer => decode_request(&adu).0.anomalies,
        Direction::ToClient => decode_response(&adu, Pairing::Unmatched).0.anomalies,
    };
    if anomalies.intersects(UNTRUSTED) {
        Trust::Never
    } else if anomalies.contains(Anomalies::UNKNOWN_FUNCTION) {
        Trust::Corroborated
    } else {
        Trust::Clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse_modbus_adu;
    use otwatch_event::modbus::{DeviceIdObject, FileRecord, UmasInfo};
    use otwatch_event::testing::drive_stream;
    use Direction::{ToClient, ToServer};

    /// Wraps a PDU in an MBAP header (Modbus Messaging on TCP/IP Implementation Guide
    /// v1.0b, 3.1.3): transaction id (2), protocol id 0 (2), length = 1 + PDU length
    /// (2), unit id (1); then the PDU (function code + data).
    fn adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut v = tid.to_be_bytes().to_vec();
        v.extend_from_slice(&[0x00, 0x00]);
        v.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        v.push(unit);
        v.extend_from_slice(pdu);
        v
    }

    fn flow() -> ModbusFlow {
        ModbusFlow::new(&ModbusConfig::default())
    }

    /// Feeds `bytes` in one call and asserts that all of it is consumed.
    fn feed(f: &mut ModbusFlow, dir: Direction, bytes: &[u8]) -> Vec<Pdu> {
        let mut out = Vec::new();
        let n = f.on_data(dir, bytes, &mut out);
        assert_eq!(n, bytes.len(), "all bytes consumed");
        out
    }

    fn one(f: &mut ModbusFlow, dir: Direction, bytes: &[u8]) -> Pdu {
        let mut v = feed(f, dir, bytes);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    fn info(p: &Pdu) -> &ModbusInfo {
        let Native::Modbus(m) = &p.native else {
            panic!("not a Modbus PDU: {p:?}");
        };
        m
    }

    /// Request then response through a fresh flow.
    fn exchange(req: &[u8], resp: &[u8]) -> (Pdu, Pdu) {
        let mut f = flow();
        let q = one(&mut f, ToServer, &adu(1, 0x11, req));
        let r = one(&mut f, ToClient, &adu(1, 0x11, resp));
        assert_eq!(f.outstanding(), 0);
        (q, r)
    }

    // ---- The examples of the Modbus Application Protocol Specification v1.1b3 ----

    #[test]
    fn fc01_read_coils() {
        let (q, r) = exchange(
            // 6.1: fc 01, starting address 0x0013 (coil 20), quantity 0x0013 (19).
            &[0x01, 0x00, 0x13, 0x00, 0x13],
            // fc 01, byte count 3, coils 27-20 0xCD, 35-28 0x6B, 38-36 0x05.
            &[0x01, 0x03, 0xCD, 0x6B, 0x05],
        );
        for p in [&q, &r] {
            assert_eq!(p.operation, Operation::Read);
            assert!(p.anomalies.is_empty(), "{:?}", p.anomalies);
            let m = info(p);
            assert_eq!((m.function_code, m.function), (1, "read_coils"));
            assert_eq!((m.address, m.quantity), (Some(0x13), Some(19)));
            assert_eq!(m.exception_code, None);
        }
        assert_eq!(info(&q).values, None);
        // LSB first; the 5 high bits of the last byte are padding (19 coils).
        assert_eq!(
            info(&r).values.as_deref(),
            Some(&[1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1][..])
        );
    }

    #[test]
    fn fc02_read_discrete_inputs() {
        let (q, r) = exchange(
            // 6.2: fc 02, address 0x00C4 (input 197), quantity 0x0016 (22).
            &[0x02, 0x00, 0xC4, 0x00, 0x16],
            // fc 02, byte count 3, inputs 0xAC, 0xDB, 0x35.
            &[0x02, 0x03, 0xAC, 0xDB, 0x35],
        );
        assert_eq!(q.operation, Operation::Read);
        assert_eq!(r.operation, Operation::Read);
        assert_eq!(info(&r).function, "read_discrete_inputs");
        assert_eq!((info(&r).address, info(&r).quantity), (Some(196), Some(22)));
        assert_eq!(
            info(&r).values.as_deref(),
            Some(&[0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1][..])
        );
    }

    #[test]
    fn fc03_read_holding_registers() {
        let (q, r) = exchange(
            // 6.3: fc 03, address 0x006B (register 108), quantity 3.
            &[0x03, 0x00, 0x6B, 0x00, 0x03],
            // fc 03, byte count 6, 0x022B, 0x0000, 0x0064.
            &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64],
        );
        assert_eq!(q.operation, Operation::Read);
        assert_eq!(info(&q).function, "read_holding_registers");
        assert_eq!((info(&r).address, info(&r).quantity), (Some(107), Some(3)));
        assert_eq!(info(&r).values.as_deref(), Some(&[555, 0, 100][..]));
        assert!(r.anomalies.is_empty());
    }

    /// Wants only the PDUs that are anomalous or not responses.
    struct Picky(Vec<Pdu>);

    impl PduSink for Picky {
        fn push(&mut self, pdu: Pdu) {
            self.0.push(pdu);
        }
        fn wants(&self, pdu: &Pdu) -> bool {
            !pdu.is_response || !pdu.anomalies.is_empty()
        }
    }

    #[test]
    fn values_of_an_unwanted_answer_are_left_out_and_nothing_else() {
        // 6.3 (FC 3, 3 registers) and 6.1 (FC 1, 19 coils), each answered twice: by
        // the answer of the spec, then by one whose byte count says 4 registers.
        let cases: [(&[u8], &[u8], &[u8]); 2] = [
            (
                &[0x03, 0x00, 0x6B, 0x00, 0x03],
                &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64],
                &[0x03, 0x08, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64, 0x00, 0x01],
            ),
            (
                &[0x01, 0x00, 0x13, 0x00, 0x13],
                &[0x01, 0x03, 0xCD, 0x6B, 0x05],
                &[0x01, 0x04, 0xCD, 0x6B, 0x05, 0x00],
            ),
        ];
        for (request, answer, mismatched) in cases {
            let (mut all, mut picky) = (flow(), flow());
            let mut wanted = Vec::new();
            let mut lean = Picky(Vec::new());
            for (tid, bytes) in [(1, answer), (2, mismatched)] {
                let q = adu(tid, 1, request);
                let r = adu(tid, 1, bytes);
                all.on_data(ToServer, &q, &mut wanted);
                all.on_data(ToClient, &r, &mut wanted);
                picky.on_data(ToServer, &q, &mut lean);
                picky.on_data(ToClient, &r, &mut lean);
            }
            let [_, plain, _, odd] = &mut wanted[..] else {
                panic!("{wanted:?}");
            };
            assert!(info(plain).values.is_some() && plain.anomalies.is_empty());
            assert!(odd.anomalies.contains(Anomalies::RESPONSE_MISMATCH));
            // The answer it did not want lacks its values, and only them; the
            // anomalous one is whole.
            let plain_lean = lean.0.get(1).unwrap();
            assert_eq!(info(plain_lean).values, None);
            let Native::Modbus(m) = &mut plain.native else {
                unreachable!()
            };
            m.values = None;
            assert_eq!(lean.0, wanted);
        }
    }

    #[test]
    fn fc04_read_input_registers() {
        let (q, r) = exchange(
            // 6.4: fc 04, address 0x0008 (register 9), quantity 1.
            &[0x04, 0x00, 0x08, 0x00, 0x01],
            // fc 04, byte count 2, 0x000A.
            &[0x04, 0x02, 0x00, 0x0A],
        );
        assert_eq!(q.operation, Operation::Read);
        assert_eq!(info(&r).values.as_deref(), Some(&[10][..]));
        assert_eq!(info(&r).address, Some(8));
    }

    #[test]
    fn fc05_write_single_coil() {
        // 6.5: fc 05, output address 0x00AC (coil 173), value 0xFF00 (ON); echoed.
        let pdu = [0x05, 0x00, 0xAC, 0xFF, 0x00];
        let (q, r) = exchange(&pdu, &pdu);
        for p in [&q, &r] {
            assert_eq!(p.operation, Operation::Write);
            assert!(p.anomalies.is_empty());
            assert_eq!(info(p).address, Some(172));
            assert_eq!(info(p).quantity, Some(1));
            assert_eq!(info(p).values.as_deref(), Some(&[1][..]));
        }
        // OFF.
        let (q, _) = exchange(
            &[0x05, 0x00, 0xAC, 0x00, 0x00],
            &[0x05, 0x00, 0xAC, 0x00, 0x00],
        );
        assert_eq!(info(&q).values.as_deref(), Some(&[0][..]));
        // Any other value is out of spec; the raw value is reported.
        let (q, _) = exchange(
            &[0x05, 0x00, 0xAC, 0x12, 0x34],
            &[0x05, 0x00, 0xAC, 0x12, 0x34],
        );
        assert_eq!(q.anomalies, Anomalies::OUT_OF_SPEC_VALUE);
        assert_eq!(info(&q).values.as_deref(), Some(&[0x1234][..]));
    }

    #[test]
    fn fc06_write_single_register() {
        // 6.6: fc 06, register address 0x0001 (register 2), value 0x0003; echoed.
        let pdu = [0x06, 0x00, 0x01, 0x00, 0x03];
        let (q, r) = exchange(&pdu, &pdu);
        assert_eq!(q.operation, Operation::Write);
        assert_eq!(r.operation, Operation::Write);
        assert_eq!(info(&q).address, Some(1));
        assert_eq!(info(&q).values.as_deref(), Some(&[3][..]));
        assert!(r.anomalies.is_empty());
    }

    #[test]
    fn fc07_read_exception_status() {
        // 6.7: fc 07; response fc 07, output data 0x6D.
        let (q, r) = exchange(&[0x07], &[0x07, 0x6D]);
        assert_eq!(q.operation, Operation::Diagnostic);
        assert_eq!(r.operation, Operation::Diagnostic);
        assert_eq!(info(&r).values.as_deref(), Some(&[0x6D][..]));
    }

    #[test]
    fn fc08_diagnostics() {
        // 6.8: fc 08, sub-function 0x0000 (return query data), data 0xA537; echoed.
        let pdu = [0x08, 0x00, 0x00, 0xA5, 0x37];
        let (q, r) = exchange(&pdu, &pdu);
        assert_eq!(q.operation, Operation::Diagnostic);
        assert_eq!(info(&q).more().sub_function, Some(0));
        assert_eq!(info(&r).values.as_deref(), Some(&[0xA537][..]));
        // 8/01 restart communications option (data 0x0000 = keep the event log).
        let pdu = [0x08, 0x00, 0x01, 0x00, 0x00];
        let (q, r) = exchange(&pdu, &pdu);
        assert_eq!(q.operation, Operation::Restart);
        assert_eq!(r.operation, Operation::Restart);
        // 8/04 force listen only mode (no response is returned by the device).
        let mut f = flow();
        let q = one(
            &mut f,
            ToServer,
            &adu(1, 1, &[0x08, 0x00, 0x04, 0x00, 0x00]),
        );
        assert_eq!(q.operation, Operation::ModeChange);
        assert_eq!(info(&q).more().sub_function, Some(4));
        // 8/0A clear counters: diagnostic.
        let q = one(
            &mut f,
            ToServer,
            &adu(2, 1, &[0x08, 0x00, 0x0A, 0x00, 0x00]),
        );
        assert_eq!(q.operation, Operation::Diagnostic);
    }

    #[test]
    fn fc11_get_comm_event_counter() {
        // 6.9: fc 0B; response status 0xFFFF, event count 0x0108.
        let (q, r) = exchange(&[0x0B], &[0x0B, 0xFF, 0xFF, 0x01, 0x08]);
        assert_eq!(q.operation, Operation::Diagnostic);
        assert_eq!(info(&r).values.as_deref(), Some(&[0xFFFF, 0x0108][..]));
    }

    #[test]
    fn fc12_get_comm_event_log() {
        // 6.10: fc 0C; response byte count 8, status 0x0000, event count 0x0108,
        // message count 0x0121, events 0x20 0x00.
        let (q, r) = exchange(
            &[0x0C],
            &[0x0C, 0x08, 0x00, 0x00, 0x01, 0x08, 0x01, 0x21, 0x20, 0x00],
        );
        assert_eq!(q.operation, Operation::Diagnostic);
        assert!(r.anomalies.is_empty());
        assert_eq!(info(&r).values.as_deref(), Some(&[0, 0x0108, 0x0121][..]));
    }

    #[test]
    fn fc15_write_multiple_coils() {
        let (q, r) = exchange(
            // 6.11: fc 0F, address 0x0013 (coil 20), quantity 0x000A, byte count 2,
            // outputs 0xCD 0x01.
            &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
            // fc 0F, address 0x0013, quantity 0x000A.
            &[0x0F, 0x00, 0x13, 0x00, 0x0A],
        );
        assert_eq!(q.operation, Operation::Write);
        assert!(q.anomalies.is_empty());
        assert_eq!((info(&q).address, info(&q).quantity), (Some(19), Some(10)));
        assert_eq!(
            info(&q).values.as_deref(),
            Some(&[1, 0, 1, 1, 0, 0, 1, 1, 1, 0][..])
        );
        assert_eq!(r.operation, Operation::Write);
        assert!(r.anomalies.is_empty());
        assert_eq!((info(&r).address, info(&r).quantity), (Some(19), Some(10)));
    }

    #[test]
    fn fc16_write_multiple_registers() {
        let (q, r) = exchange(
            // 6.12: fc 10, address 0x0001, quantity 2, byte count 4, 0x000A, 0x0102.
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02],
            // fc 10, address 0x0001, quantity 2.
            &[0x10, 0x00, 0x01, 0x00, 0x02],
        );
        assert_eq!(q.operation, Operation::Write);
        assert_eq!(info(&q).values.as_deref(), Some(&[10, 258][..]));
        assert!(q.anomalies.is_empty() && r.anomalies.is_empty());
        assert_eq!(info(&r).quantity, Some(2));
    }

    #[test]
    fn fc17_report_server_id() {
        // 6.13: fc 11; response fc 11, byte count 2, server id 0x2A (device
        // specific), run indicator 0xFF (ON).
        let (q, r) = exchange(&[0x11], &[0x11, 0x02, 0x2A, 0xFF]);
        assert_eq!(q.operation, Operation::Identify);
        assert_eq!(r.operation, Operation::Identify);
        assert!(r.anomalies.is_empty());
    }

    #[test]
    fn fc20_read_file_record() {
        let (q, r) = exchange(
            // 6.14: fc 14, byte count 0x0E; sub-request 1: reference type 6, file 4,
            // record 1, length 2; sub-request 2: type 6, file 3, record 9, length 2.
            &[
                0x14, 0x0E, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02, 0x06, 0x00, 0x03, 0x00, 0x09,
                0x00, 0x02,
            ],
            // fc 14, resp data length 0x0C; sub-response 1: length 5, type 6, 0x0DFE,
            // 0x0020; sub-response 2: length 5, type 6, 0x33CD, 0x0040.
            &[
                0x14, 0x0C, 0x05, 0x06, 0x0D, 0xFE, 0x00, 0x20, 0x05, 0x06, 0x33, 0xCD, 0x00, 0x40,
            ],
        );
        assert_eq!(q.operation, Operation::Read);
        assert!(q.anomalies.is_empty());
        assert_eq!(
            info(&q).more().file_records.as_deref(),
            Some(
                &[
                    FileRecord {
                        reference_type: 6,
                        file_number: 4,
                        record_number: 1,
                        record_length: 2
                    },
                    FileRecord {
                        reference_type: 6,
                        file_number: 3,
                        record_number: 9,
                        record_length: 2
                    }
                ][..]
            )
        );
        assert_eq!(r.operation, Operation::Read);
        assert!(r.anomalies.is_empty());
        assert_eq!(
            info(&r).values.as_deref(),
            Some(&[0x0DFE, 0x0020, 0x33CD, 0x0040][..])
        );
    }

    #[test]
    fn fc21_write_file_record() {
        // 6.15: fc 15, request data length 0x0D; sub-request: type 6, file 4,
        // record 7, length 3, data 0x06AF 0x04BE 0x100D. The response echoes it.
        let pdu = [
            0x15, 0x0D, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE, 0x10,
            0x0D,
        ];
        let (q, r) = exchange(&pdu, &pdu);
        let rec = [FileRecord {
            reference_type: 6,
            file_number: 4,
            record_number: 7,
            record_length: 3,
        }];
        for p in [&q, &r] {
            assert_eq!(p.operation, Operation::Write);
            assert!(p.anomalies.is_empty(), "{:?}", p.anomalies);
            assert_eq!(info(p).more().file_records.as_deref(), Some(&rec[..]));
        }
    }

    #[test]
    fn fc22_mask_write_register() {
        // 6.16: fc 16, address 0x0004, AND mask 0x00F2, OR mask 0x0025; echoed.
        let pdu = [0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25];
        let (q, r) = exchange(&pdu, &pdu);
        for p in [&q, &r] {
            assert_eq!(p.operation, Operation::Write);
            assert_eq!(info(p).address, Some(4));
            assert_eq!(info(p).more().and_mask, Some(0xF2));
            assert_eq!(info(p).more().or_mask, Some(0x25));
        }
    }

    #[test]
    fn fc23_read_write_multiple_registers() {
        let (q, r) = exchange(
            // 6.17: fc 17, read address 0x0003, read quantity 6, write address 0x000E,
            // write quantity 3, write byte count 6, 0x00FF 0x00FF 0x00FF.
            &[
                0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF,
                0x00, 0xFF,
            ],
            // fc 17, byte count 0x0C, six read registers.
            &[
                0x17, 0x0C, 0x00, 0xFE, 0x0A, 0xCD, 0x00, 0x01, 0x00, 0x03, 0x00, 0x0D, 0x00, 0xFF,
            ],
        );
        assert_eq!(q.operation, Operation::Write);
        assert!(q.anomalies.is_empty());
        let m = info(&q);
        assert_eq!(
            (m.more().read_address, m.more().read_quantity),
            (Some(3), Some(6))
        );
        assert_eq!((m.address, m.quantity), (Some(14), Some(3)));
        assert_eq!(m.values.as_deref(), Some(&[0xFF, 0xFF, 0xFF][..]));
        assert_eq!(r.operation, Operation::Write);
        assert!(r.anomalies.is_empty());
        let m = info(&r);
        assert_eq!(
            (m.more().read_address, m.more().read_quantity),
            (Some(3), Some(6))
        );
        assert_eq!((m.address, m.quantity), (None, None));
        assert_eq!(
            m.values.as_deref(),
            Some(&[0xFE, 0x0ACD, 0x0001, 0x0003, 0x000D, 0x00FF][..])
        );
    }

    #[test]
    fn fc23_without_write_is_a_read() {
        let (q, r) = exchange(
            // read 0x0003 x1, write 0x000E x0, byte count 0.
            &[0x17, 0x00, 0x03, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x00],
            &[0x17, 0x02, 0x12, 0x34],
        );
        assert_eq!(q.operation, Operation::Read);
        assert!(q.anomalies.is_empty());
        assert_eq!(r.operation, Operation::Read);
        assert_eq!(info(&r).values.as_deref(), Some(&[0x1234][..]));
    }

    #[test]
    fn fc24_read_fifo_queue() {
        let (q, r) = exchange(
            // 6.18: fc 18, FIFO pointer address 0x04DE.
            &[0x18, 0x04, 0xDE],
            // fc 18, byte count 6, FIFO count 2, 0x01B8, 0x1284.
            &[0x18, 0x00, 0x06, 0x00, 0x02, 0x01, 0xB8, 0x12, 0x84],
        );
        assert_eq!(q.operation, Operation::Read);
        assert_eq!(info(&q).address, Some(0x04DE));
        assert!(r.anomalies.is_empty());
        assert_eq!(info(&r).address, Some(0x04DE));
        assert_eq!(info(&r).values.as_deref(), Some(&[0x01B8, 0x1284][..]));
    }

    #[test]
    fn fc43_14_read_device_identification() {
        // 6.21: fc 2B, MEI type 0E, read device id code 01 (basic), object id 00.
        let req = [0x2B, 0x0E, 0x01, 0x00];
        // fc 2B, MEI 0E, code 01, conformity level 01, more follows 00, next object
        // id 00, number of objects 3, then (id, length, value) x3. (The spec's table
        // writes the second length as 0x0D; the string has 15 bytes.)
        let mut resp = vec![0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x03];
        resp.extend_from_slice(&[0x00, 0x16]);
        resp.extend_from_slice(b"Company identification");
        resp.extend_from_slice(&[0x01, 0x0F]);
        resp.extend_from_slice(b"Product code XX");
        resp.extend_from_slice(&[0x02, 0x05]);
        resp.extend_from_slice(b"V2.11");
        let (q, r) = exchange(&req, &resp);
        assert_eq!(q.operation, Operation::Identify);
        assert_eq!(info(&q).more().mei_type, Some(14));
        assert!(q.anomalies.is_empty());
        assert_eq!(r.operation, Operation::Identify);
        assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
        let obj = |id, v: &str| DeviceIdObject {
            id,
            value: v.into(),
        };
        assert_eq!(
            info(&r).more().device_id.as_deref(),
            Some(
                &[
                    obj(0, "Company identification"),
                    obj(1, "Product code XX"),
                    obj(2, "V2.11")
                ][..]
            )
        );
        // One object fewer than announced: malformed, the others are still reported.
        let short = &resp[..resp.len() - 7];
        let (_, r) = exchange(&req, short);
        assert!(r.anomalies.contains(Anomalies::MALFORMED));
        assert_eq!(info(&r).more().device_id.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn fc43_13_canopen_is_other() {
        // MEI type 0D (CANopen general reference), opaque data.
        let (q, r) = exchange(&[0x2B, 0x0D, 0x01, 0x02], &[0x2B, 0x0D, 0x01, 0x02, 0x03]);
        assert_eq!(q.operation, Operation::Other);
        assert_eq!(info(&q).more().mei_type, Some(13));
        assert_eq!(r.operation, Operation::Other);
    }

    /// The table of /shared/spec/output.md, request side.
    #[test]
    fn function_code_to_operation() {
        use Operation::*;
        let table: &[(&[u8], Operation)] = &[
            (&[0x01, 0, 0, 0, 1], Read),
            (&[0x02, 0, 0, 0, 1], Read),
            (&[0x03, 0, 0, 0, 1], Read),
            (&[0x04, 0, 0, 0, 1], Read),
            (&[0x05, 0, 0, 0xFF, 0], Write),
            (&[0x06, 0, 0, 0, 1], Write),
            (&[0x07], Diagnostic),
            (&[0x08, 0, 0x00, 0, 0], Diagnostic),
            (&[0x08, 0, 0x01, 0, 0], Restart),
            (&[0x08, 0, 0x04, 0, 0], ModeChange),
            (&[0x08, 0, 0x0B, 0, 0], Diagnostic),
            (&[0x0B], Diagnostic),
            (&[0x0C], Diagnostic),
            (&[0x0F, 0, 0, 0, 1, 1, 1], Write),
            (&[0x10, 0, 0, 0, 1, 2, 0, 1], Write),
            (&[0x11], Identify),
            (&[0x14, 7, 6, 0, 1, 0, 0, 0, 1], Read),
            (&[0x15, 9, 6, 0, 1, 0, 0, 0, 1, 0, 0], Write),
            (&[0x16, 0, 0, 0xFF, 0xFF, 0, 0], Write),
            (&[0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2, 0, 0], Write),
            (&[0x17, 0, 0, 0, 1, 0, 0, 0, 0, 0], Read),
            (&[0x18, 0, 0], Read),
            (&[0x2B, 0x0E, 1, 0], Identify),
            (&[0x2B, 0x0D], Other),
            (&[0x5A, 0x00, 0x30], ProgramDownload),
            (&[0x5A, 0x00, 0x33], ProgramUpload),
            (&[0x5A, 0x00, 0x41], ModeChange),
            (&[0x42, 1, 2], Other),
            (&[0x81, 0, 0, 0, 1], Other),
        ];
        for (pdu, op) in table {
            let mut f = flow();
            let p = one(&mut f, ToServer, &adu(1, 1, pdu));
            assert_eq!(p.operation, *op, "{pdu:02x?}");
            let unknown = p.anomalies.contains(Anomalies::UNKNOWN_FUNCTION);
            assert_eq!(
                unknown,
                matches!(pdu.first(), Some(0x42 | 0x81)),
                "{pdu:02x?}"
            );
            assert!(
                (p.anomalies - Anomalies::UNKNOWN_FUNCTION).is_empty(),
                "{pdu:02x?}: {:?}",
                p.anomalies
            );
        }
    }

    #[test]
    fn unknown_function_is_other_and_pairs_with_its_exception() {
        let mut f = flow();
        // fc 0x42 (user-defined range 65..72), two data bytes.
        let q = one(&mut f, ToServer, &adu(3, 1, &[0x42, 0x01, 0x02]));
        assert_eq!(q.operation, Operation::Other);
        assert_eq!(q.anomalies, Anomalies::UNKNOWN_FUNCTION);
        assert_eq!(
            (info(&q).function_code, info(&q).function),
            (0x42, "unknown")
        );
        // Exception 0xC2, code 01 illegal function.
        let r = one(&mut f, ToClient, &adu(3, 1, &[0xC2, 0x01]));
        assert_eq!(r.anomalies, Anomalies::UNKNOWN_FUNCTION);
        assert_eq!(info(&r).function_code, 0x42);
        assert_eq!(info(&r).exception_code, Some(1));
    }

    // ---- Exceptions ----

    #[test]
    fn exception_response_carries_the_request() {
        let (q, r) = exchange(
            // 7: fc 01, address 0x04A1, quantity 1 ...
            &[0x01, 0x04, 0xA1, 0x00, 0x01],
            // ... answered by fc 0x81, exception code 02 (illegal data address).
            &[0x81, 0x02],
        );
        assert_eq!(q.operation, Operation::Read);
        assert_eq!(r.operation, Operation::Read);
        assert!(r.anomalies.is_empty());
        let m = info(&r);
        assert_eq!(m.function_code, 1);
        assert_eq!(m.function, "read_coils");
        assert_eq!(m.exception_code, Some(2));
        assert_eq!((m.address, m.quantity), (Some(0x04A1), Some(1)));
        assert_eq!(m.values, None);
    }

    #[test]
    fn exception_codes() {
        for (code, known) in [
            (0x01, true),
            (0x04, true),
            (0x06, true),
            (0x07, false),
            (0x08, true),
            (0x09, false),
            (0x0A, true),
            (0x0B, true),
            (0x0C, false),
            (0xFF, false),
        ] {
            let (_, r) = exchange(&[0x10, 0, 0, 0, 1, 2, 0, 7], &[0x90, code]);
            assert_eq!(info(&r).exception_code, Some(code));
            assert_eq!(info(&r).function_code, 16);
            assert_eq!(r.operation, Operation::Write);
            assert_eq!(
                r.anomalies.contains(Anomalies::UNKNOWN_EXCEPTION),
                !known,
                "{code:#x}"
            );
        }
        // Two bytes after the exception function code: the length is wrong.
        let (_, r) = exchange(&[0x03, 0, 0, 0, 1], &[0x83, 0x02, 0x00]);
        assert_eq!(r.anomalies, Anomalies::BAD_LENGTH);
        // None: malformed, still an event.
        let (_, r) = exchange(&[0x03, 0, 0, 0, 1], &[0x83]);
        assert_eq!(r.anomalies, Anomalies::MALFORMED);
        assert_eq!(info(&r).exception_code, None);
    }

    // ---- Limits of the spec ----

    #[test]
    fn quantity_limits() {
        let cases: &[(&[u8], Anomalies)] = &[
            // Read coils: 1..=2000.
            (&[0x01, 0, 0, 0x07, 0xD0], Anomalies::empty()),
            (&[0x01, 0, 0, 0x07, 0xD1], Anomalies::OUT_OF_SPEC_VALUE),
            (&[0x01, 0, 0, 0, 0], Anomalies::OUT_OF_SPEC_VALUE),
            // Read registers: 1..=125.
            (&[0x03, 0, 0, 0, 0x7D], Anomalies::empty()),
            (&[0x04, 0, 0, 0, 0x7E], Anomalies::OUT_OF_SPEC_VALUE),
            // Write registers: 1..=123, byte count 2 * quantity.
            (
                &[0x10, 0, 0, 0, 0x7C, 0xF8],
                Anomalies::OUT_OF_SPEC_VALUE | Anomalies::BAD_LENGTH,
            ),
            (&[0x10, 0, 0, 0, 2, 4, 0, 1], Anomalies::BAD_LENGTH),
            (&[0x10, 0, 0, 0, 2, 2, 0, 1], Anomalies::BAD_LENGTH),
            // Write coils: byte count = ceil(quantity / 8).
            (&[0x0F, 0, 0, 0, 9, 1, 0xFF], Anomalies::BAD_LENGTH),
            (&[0x0F, 0, 0, 0, 9, 2, 0xFF, 0x01], Anomalies::empty()),
            // Extra bytes after a fixed-size request.
            (&[0x03, 0, 0, 0, 1, 0], Anomalies::BAD_LENGTH),
            // A fixed field missing.
            (&[0x03, 0, 0, 0], Anomalies::MALFORMED),
            // FC 23 write quantity over 121.
            (
                &[0x17, 0, 0, 0, 1, 0, 0, 0, 0x7A, 0],
                Anomalies::OUT_OF_SPEC_VALUE | Anomalies::BAD_LENGTH,
            ),
            // FC 43/14 read device id code 5.
            (&[0x2B, 0x0E, 0x05, 0x00], Anomalies::OUT_OF_SPEC_VALUE),
            // FC 20 reference type 5.
            (
                &[0x14, 7, 5, 0, 1, 0, 0, 0, 1],
                Anomalies::OUT_OF_SPEC_VALUE,
            ),
        ];
        for (pdu, want) in cases {
            let mut f = flow();
            let p = one(&mut f, ToServer, &adu(1, 1, pdu));
            assert_eq!(p.anomalies, *want, "{pdu:02x?}");
        }
    }

    #[test]
    fn response_byte_count_must_fit_the_request() {
        // Read 3 registers, answered with 2.
        let (_, r) = exchange(&[0x03, 0, 0, 0, 3], &[0x03, 4, 0, 1, 0, 2]);
        assert_eq!(r.anomalies, Anomalies::RESPONSE_MISMATCH);
        assert_eq!(info(&r).values.as_deref(), Some(&[1, 2][..]));
        // Byte count disagrees with the bytes present.
        let (_, r) = exchange(&[0x03, 0, 0, 0, 1], &[0x03, 4, 0, 1]);
        assert_eq!(
            r.anomalies,
            Anomalies::BAD_LENGTH | Anomalies::RESPONSE_MISMATCH
        );
        // Coils: 9 requested need 2 bytes.
        let (_, r) = exchange(&[0x01, 0, 0, 0, 9], &[0x01, 1, 0xFF]);
        assert_eq!(r.anomalies, Anomalies::RESPONSE_MISMATCH);
        assert_eq!(info(&r).values.as_ref().map(Vec::len), Some(8));
        // Echo of another address.
        let (_, r) = exchange(&[0x06, 0, 1, 0, 3], &[0x06, 0, 2, 0, 3]);
        assert_eq!(r.anomalies, Anomalies::RESPONSE_MISMATCH);
    }

    // ---- Pairing ----

    #[test]
    fn unmatched_response_stands_alone() {
        let mut f = flow();
        // A read-coils response whose request was not seen: all 16 bits reported.
        let r = one(&mut f, ToClient, &adu(9, 1, &[0x01, 0x02, 0xCD, 0x6B]));
        assert_eq!(r.operation, Operation::Read);
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert_eq!((info(&r).address, info(&r).quantity), (None, None));
        assert_eq!(info(&r).values.as_ref().map(Vec::len), Some(16));
        // Diagnostics response: the sub-function says restart.
        let r = one(
            &mut f,
            ToClient,
            &adu(9, 1, &[0x08, 0x00, 0x01, 0x00, 0x00]),
        );
        assert_eq!(r.operation, Operation::Restart);
        // FC 23 alone: cannot tell whether it wrote, so write.
        let r = one(&mut f, ToClient, &adu(9, 1, &[0x17, 0x02, 0x00, 0x01]));
        assert_eq!(r.operation, Operation::Write);
        // 43/14 alone: identify.
        let r = one(&mut f, ToClient, &adu(9, 1, &[0x2B, 0x0E, 1, 1, 0, 0, 0]));
        assert_eq!(r.operation, Operation::Identify);
    }

    #[test]
    fn pairs_by_transaction_id_out_of_order() {
        let mut f = flow();
        let mut reqs = adu(1, 1, &[0x03, 0x00, 0x0A, 0x00, 0x01]);
        reqs.extend(adu(2, 1, &[0x01, 0x00, 0x14, 0x00, 0x03]));
        assert_eq!(feed(&mut f, ToServer, &reqs).len(), 2);
        assert_eq!(f.outstanding(), 2);
        // Responses in reverse order.
        let r2 = one(&mut f, ToClient, &adu(2, 1, &[0x01, 0x01, 0xFF]));
        assert_eq!((info(&r2).address, info(&r2).quantity), (Some(20), Some(3)));
        assert_eq!(info(&r2).values.as_deref(), Some(&[1, 1, 1][..]));
        let r1 = one(&mut f, ToClient, &adu(1, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(info(&r1).address, Some(10));
        assert!(r1.anomalies.is_empty() && r2.anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);
        // A second response with the same id is unmatched.
        let again = one(&mut f, ToClient, &adu(1, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(again.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn reused_transaction_ids_pair_oldest_first() {
        let mut f = flow();
        one(
            &mut f,
            ToServer,
            &adu(0, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        );
        one(
            &mut f,
            ToServer,
            &adu(0, 1, &[0x03, 0x00, 0x02, 0x00, 0x01]),
        );
        let r = one(&mut f, ToClient, &adu(0, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(info(&r).address, Some(1));
        let r = one(&mut f, ToClient, &adu(0, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(info(&r).address, Some(2));
    }

    #[test]
    fn a_reused_transaction_id_after_a_lost_answer_pairs_with_the_new_request() {
        // A master that uses transaction id 0 for every request, and waits for each
        // answer. The answer to the read of register 1 is lost; the next request's
        // segment acknowledges it. The answer that follows is the new request's: it
        // carries register 2, not a mismatch with the read of register 1.
        let mut f = flow();
        let read = |reg: u8| adu(0, 1, &[0x03, 0x00, reg, 0x00, 0x01]);
        assert!(one(&mut f, ToServer, &read(1)).anomalies.is_empty());
        // Further than any acknowledgment before: both signals, as the flow table
        // gives them.
        f.on_acked_beyond(ToClient);
        f.on_unseen_acked(ToClient);
        assert!(one(&mut f, ToServer, &read(2)).anomalies.is_empty());
        let r = one(&mut f, ToClient, &adu(0, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert!(r.anomalies.is_empty(), "{r:?}");
        assert_eq!(info(&r).address, Some(2));
        assert_eq!(f.outstanding(), 0);
        // The same after a gap in the answers.
        let mut f = flow();
        assert!(one(&mut f, ToServer, &read(1)).anomalies.is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToServer, &read(3)).anomalies.is_empty());
        let r = one(&mut f, ToClient, &adu(0, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(info(&r).address, Some(3));
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn response_to_another_function_is_a_mismatch() {
        let mut f = flow();
        one(
            &mut f,
            ToServer,
            &adu(5, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        );
        let r = one(&mut f, ToClient, &adu(5, 1, &[0x04, 0x02, 0x00, 0x07]));
        assert_eq!(r.anomalies, Anomalies::RESPONSE_MISMATCH);
        assert_eq!(info(&r).address, None);
        assert_eq!(f.outstanding(), 0);
        // Another unit id answering: flagged, still paired.
        one(
            &mut f,
            ToServer,
            &adu(6, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        );
        let r = one(&mut f, ToClient, &adu(6, 2, &[0x03, 0x02, 0x00, 0x07]));
        assert_eq!(r.anomalies, Anomalies::RESPONSE_MISMATCH);
        assert_eq!(info(&r).address, Some(1));
    }

    #[test]
    fn a_request_whose_answer_a_gap_may_have_taken_leaves_no_flood() {
        // Requests 1 and 2 are outstanding when a gap in the answers is declared; the
        // server answers 1 after it (out of order: the gap held the answer to 2).
        // Request 2 then waits for nothing, and when the table is full it is the one
        // dropped, without a flood. The next drop, of a request sent after the gap,
        // is one.
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_outstanding: 3,
            ..ModbusConfig::default()
        });
        let read = |t: u16| adu(t, 1, &[0x03, 0x00, t as u8, 0x00, 0x01]);
        let resp = |t: u16| adu(t, 1, &[0x03, 0x02, 0x00, 0x00]);
        let request = |f: &mut ModbusFlow, t: u16| one(f, ToServer, &read(t)).anomalies;
        assert!(request(&mut f, 1).is_empty());
        assert!(request(&mut f, 2).is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &resp(1)).anomalies.is_empty());
        assert!(request(&mut f, 3).is_empty());
        assert!(request(&mut f, 4).is_empty());
        assert!(request(&mut f, 5).is_empty(), "request 2 made room");
        assert_eq!(
            request(&mut f, 6),
            Anomalies::REQUEST_FLOOD,
            "request 3 did"
        );
        for t in [4, 5, 6] {
            let r = one(&mut f, ToClient, &resp(t));
            assert!(r.anomalies.is_empty(), "{t}: {r:?}");
            assert_eq!(info(&r).address, Some(t));
        }
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn answers_lost_one_by_one_make_no_flood() {
        // 70 reads, each answer of the first 66 lost (more than the 64 requests the
        // table holds). The TCP layer cannot see a hole until an answer arrives: until
        // then each request comes in a segment acknowledging the unseen answers; the
        // first answer seen reveals the gap.
        let mut f = flow();
        let mut out = Vec::new();
        let read = |t: u16| adu(t, 1, &[0x03, 0x00, t as u8, 0x00, 0x01]);
        for t in 0..70u16 {
            if t > 0 && t <= 66 {
                // Each acknowledges one more lost answer than the last.
                f.on_acked_beyond(ToClient);
                f.on_unseen_acked(ToClient);
            }
            out.push(one(&mut f, ToServer, &read(t)));
            if t == 66 {
                f.on_gap(ToClient, &mut Vec::new());
            }
            if t >= 66 {
                out.push(one(&mut f, ToClient, &adu(t, 1, &[0x03, 0x02, 0x00, 0x00])));
            }
        }
        let flagged: Vec<_> = out.iter().filter(|p| !p.anomalies.is_empty()).collect();
        assert!(flagged.is_empty(), "{flagged:?}");
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn request_flood_drops_the_oldest() {
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_outstanding: 2,
            ..ModbusConfig::default()
        });
        let read = |a: u8| [0x03, 0x00, a, 0x00, 0x01];
        assert!(one(&mut f, ToServer, &adu(1, 1, &read(1)))
            .anomalies
            .is_empty());
        assert!(one(&mut f, ToServer, &adu(2, 1, &read(2)))
            .anomalies
            .is_empty());
        let third = one(&mut f, ToServer, &adu(3, 1, &read(3)));
        assert_eq!(third.anomalies, Anomalies::REQUEST_FLOOD);
        assert_eq!(f.outstanding(), 2);
        // Request 1 was dropped: its response is unmatched; 2 and 3 still pair.
        let resp = [0x03, 0x02, 0x00, 0x00];
        let r = one(&mut f, ToClient, &adu(1, 1, &resp));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert_eq!(
            info(&one(&mut f, ToClient, &adu(3, 1, &resp))).address,
            Some(3)
        );
        assert_eq!(
            info(&one(&mut f, ToClient, &adu(2, 1, &resp))).address,
            Some(2)
        );
        // A zero bound is taken as 1.
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_outstanding: 0,
            max_resync_scan: 0,
        });
        one(&mut f, ToServer, &adu(1, 1, &read(1)));
        assert_eq!(f.outstanding(), 1);
        assert_eq!(
            one(&mut f, ToServer, &adu(2, 1, &read(2))).anomalies,
            Anomalies::REQUEST_FLOOD
        );
    }

    #[test]
    fn on_end_forgets_outstanding_requests() {
        let mut f = flow();
        one(
            &mut f,
            ToServer,
            &adu(1, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        );
        let mut out = Vec::new();
        f.on_end(&mut out);
        assert!(out.is_empty());
        assert_eq!(f.outstanding(), 0);
    }

    // ---- UMAS ----

    #[test]
    fn umas_start_plc() {
        let (q, r) = exchange(
            // fc 5A, session key 0x12, UMAS 0x40 start PLC, data 0xFF 0x00.
            &[0x5A, 0x12, 0x40, 0xFF, 0x00],
            // fc 5A, session key 0x12, status 0xFE (OK).
            &[0x5A, 0x12, 0xFE],
        );
        assert_eq!(q.operation, Operation::ModeChange);
        assert!(q.anomalies.is_empty());
        assert_eq!(info(&q).function, "umas");
        assert_eq!(
            info(&q).more().umas,
            Some(UmasInfo {
                session_key: 0x12,
                function_code: 0x40,
                function: "start_plc",
                status: None
            })
        );
        assert_eq!(r.operation, Operation::ModeChange);
        assert!(r.anomalies.is_empty());
        assert_eq!(
            info(&r).more().umas,
            Some(UmasInfo {
                session_key: 0x12,
                function_code: 0x40,
                function: "start_plc",
                status: Some(0xFE)
            })
        );
    }

    #[test]
    fn umas_strategy_transfers() {
        use Operation::*;
        // UMAS "upload" = station -> PLC = program_download, and the reverse.
        for (code, name, op) in [
            (0x30, "initialize_upload", ProgramDownload),
            (0x31, "upload_block", ProgramDownload),
            (0x32, "end_strategy_upload", ProgramDownload),
            (0x33, "initialize_download", ProgramUpload),
            (0x34, "download_block", ProgramUpload),
            (0x35, "end_strategy_download", ProgramUpload),
            (0x41, "stop_plc", ModeChange),
            (0x10, "take_plc_reservation", Session),
            (0x02, "read_id", Identify),
            (0x22, "read_variables", Read),
            (0x23, "write_variables", Write),
        ] {
            // session key 0, UMAS code, a block number 0x0001 (little endian).
            let (q, r) = exchange(&[0x5A, 0x00, code, 0x01, 0x00], &[0x5A, 0x00, 0xFD]);
            assert_eq!(q.operation, op, "{name}");
            assert_eq!(
                info(&q).more().umas.as_ref().map(|u| u.function),
                Some(name)
            );
            assert_eq!(r.operation, op, "{name}");
            assert_eq!(
                info(&r).more().umas.as_ref().map(|u| u.status),
                Some(Some(0xFD))
            );
        }
    }

    #[test]
    fn umas_edge_cases() {
        let mut f = flow();
        // A lone response: the UMAS function is unknown.
        let r = one(&mut f, ToClient, &adu(1, 0, &[0x5A, 0x07, 0xFE, 0x01]));
        assert_eq!(r.operation, Operation::Other);
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert_eq!(
            info(&r).more().umas,
            Some(UmasInfo {
                session_key: 7,
                function_code: 0,
                function: "unknown",
                status: Some(0xFE)
            })
        );
        // Status other than FE/FD.
        let (_, r) = exchange(&[0x5A, 0x00, 0x12], &[0x5A, 0x00, 0x00]);
        assert_eq!(r.anomalies, Anomalies::OUT_OF_SPEC_VALUE);
        // Modbus exception to a UMAS request keeps the request's UMAS function.
        let (_, r) = exchange(&[0x5A, 0x03, 0x41], &[0xDA, 0x01]);
        assert_eq!(r.operation, Operation::ModeChange);
        assert_eq!(info(&r).exception_code, Some(1));
        assert_eq!(
            info(&r).more().umas.as_ref().map(|u| u.function_code),
            Some(0x41)
        );
        // Too short for the UMAS header.
        let (q, _) = exchange(&[0x5A, 0x00], &[0x5A, 0x00, 0xFE]);
        assert_eq!(q.anomalies, Anomalies::MALFORMED);
        assert_eq!(q.operation, Operation::Other);
    }

    // ---- Streaming: splits, several ADUs, garbage, gaps ----

    fn spec_frames() -> Vec<Vec<u8>> {
        vec![
            adu(1, 0x11, &[0x03, 0x00, 0x6B, 0x00, 0x03]),
            adu(2, 0x11, &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01]),
            adu(3, 0x11, &[0x07]),
            adu(4, 0x11, &[0x5A, 0x00, 0x30, 0x01, 0x00]),
        ]
    }

    /// (request PDU, response PDU) of the spec's examples, as in the tests above.
    const SPEC_EXCHANGES: &[(&[u8], &[u8])] = &[
        (
            &[0x01, 0x00, 0x13, 0x00, 0x13],
            &[0x01, 0x03, 0xCD, 0x6B, 0x05],
        ),
        (
            &[0x02, 0x00, 0xC4, 0x00, 0x16],
            &[0x02, 0x03, 0xAC, 0xDB, 0x35],
        ),
        (
            &[0x03, 0x00, 0x6B, 0x00, 0x03],
            &[0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64],
        ),
        (&[0x04, 0x00, 0x08, 0x00, 0x01], &[0x04, 0x02, 0x00, 0x0A]),
        (
            &[0x05, 0x00, 0xAC, 0xFF, 0x00],
            &[0x05, 0x00, 0xAC, 0xFF, 0x00],
        ),
        (
            &[0x06, 0x00, 0x01, 0x00, 0x03],
            &[0x06, 0x00, 0x01, 0x00, 0x03],
        ),
        (&[0x07], &[0x07, 0x6D]),
        (
            &[0x08, 0x00, 0x00, 0xA5, 0x37],
            &[0x08, 0x00, 0x00, 0xA5, 0x37],
        ),
        (&[0x0B], &[0x0B, 0xFF, 0xFF, 0x01, 0x08]),
        (
            &[0x0C],
            &[0x0C, 0x08, 0x00, 0x00, 0x01, 0x08, 0x01, 0x21, 0x20, 0x00],
        ),
        (
            &[0x0F, 0x00, 0x13, 0x00, 0x0A, 0x02, 0xCD, 0x01],
            &[0x0F, 0x00, 0x13, 0x00, 0x0A],
        ),
        (
            &[0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02],
            &[0x10, 0x00, 0x01, 0x00, 0x02],
        ),
        (&[0x11], &[0x11, 0x02, 0x2A, 0xFF]),
        (
            &[
                0x14, 0x0E, 0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02, 0x06, 0x00, 0x03, 0x00, 0x09,
                0x00, 0x02,
            ],
            &[
                0x14, 0x0C, 0x05, 0x06, 0x0D, 0xFE, 0x00, 0x20, 0x05, 0x06, 0x33, 0xCD, 0x00, 0x40,
            ],
        ),
        (
            &[
                0x15, 0x0D, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE, 0x10,
                0x0D,
            ],
            &[
                0x15, 0x0D, 0x06, 0x00, 0x04, 0x00, 0x07, 0x00, 0x03, 0x06, 0xAF, 0x04, 0xBE, 0x10,
                0x0D,
            ],
        ),
        (
            &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25],
            &[0x16, 0x00, 0x04, 0x00, 0xF2, 0x00, 0x25],
        ),
        (
            &[
                0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0x00, 0xFF, 0x00, 0xFF,
                0x00, 0xFF,
            ],
            &[
                0x17, 0x0C, 0x00, 0xFE, 0x0A, 0xCD, 0x00, 0x01, 0x00, 0x03, 0x00, 0x0D, 0x00, 0xFF,
            ],
        ),
        (
            &[0x18, 0x04, 0xDE],
            &[0x18, 0x00, 0x06, 0x00, 0x02, 0x01, 0xB8, 0x12, 0x84],
        ),
        (
            &[0x2B, 0x0E, 0x01, 0x00],
            &[
                0x2B, 0x0E, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x02, b'O', b'K',
            ],
        ),
        (&[0x01, 0x04, 0xA1, 0x00, 0x01], &[0x81, 0x02]),
        (&[0x5A, 0x00, 0x40, 0xFF, 0x00], &[0x5A, 0x00, 0xFE]),
    ];

    #[test]
    fn spec_examples_prefixes_and_cleanliness() {
        for (req, resp) in SPEC_EXCHANGES {
            for (dir, pdu) in [(ToServer, req), (ToClient, resp)] {
                let frame = adu(0x2A, 1, pdu);
                for n in 0..frame.len() {
                    let prefix = frame.get(..n).unwrap();
                    assert!(
                        matches!(parse_modbus_adu(prefix), Err(nom::Err::Incomplete(_))),
                        "{pdu:02x?} prefix {n}"
                    );
                    let mut out = Vec::new();
                    assert_eq!(flow().on_data(dir, prefix, &mut out), 0);
                    assert!(out.is_empty());
                }
            }
            // The whole exchange: paired, no anomaly, values where the function has
            // them.
            let (q, r) = exchange(req, resp);
            assert!(q.anomalies.is_empty(), "{req:02x?}: {:?}", q.anomalies);
            assert!(r.anomalies.is_empty(), "{resp:02x?}: {:?}", r.anomalies);
            assert_eq!(q.operation, r.operation);
        }
    }

    #[test]
    fn every_strict_prefix_waits() {
        for frame in spec_frames() {
            for n in 0..frame.len() {
                let prefix = frame.get(..n).unwrap();
                assert!(
                    matches!(parse_modbus_adu(prefix), Err(nom::Err::Incomplete(_))),
                    "{frame:02x?} prefix {n}"
                );
                let mut f = flow();
                let mut out = Vec::new();
                assert_eq!(f.on_data(ToServer, prefix, &mut out), 0, "prefix {n}");
                assert!(out.is_empty());
            }
        }
    }

    #[test]
    fn adu_split_across_calls() {
        // Feed every ADU one byte at a time, keeping the unconsumed tail as the flow
        // layer does.
        let frames = spec_frames();
        let stream: Vec<u8> = frames.concat();
        let mut f = flow();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for b in &stream {
            buf.push(*b);
            let n = f.on_data(ToServer, &buf, &mut out);
            buf.drain(..n);
        }
        assert!(buf.is_empty());
        let tids: Vec<u16> = out.iter().map(|p| info(p).transaction_id).collect();
        assert_eq!(tids, [1, 2, 3, 4]);
        assert!(out.iter().all(|p| p.anomalies.is_empty()));
        // Split at every point in two calls.
        let frame = frames.get(1).unwrap();
        for cut in 1..frame.len() {
            let mut f = flow();
            let mut out = Vec::new();
            let (a, b) = frame.split_at(cut);
            assert_eq!(f.on_data(ToServer, a, &mut out), 0);
            assert_eq!(f.on_data(ToServer, frame, &mut out), frame.len());
            assert_eq!(out.len(), 1, "cut {cut}");
            assert_eq!(b.len() + cut, frame.len());
        }
    }

    #[test]
    fn several_adus_in_one_call() {
        let frames = spec_frames();
        let mut stream = frames.concat();
        let mut f = flow();
        let out = feed(&mut f, ToServer, &stream);
        assert_eq!(out.len(), 4);
        // With half of a fifth ADU: the four whole ones are consumed, the rest kept.
        let whole = stream.len();
        stream.extend_from_slice(frames.first().unwrap().get(..5).unwrap());
        let mut f = flow();
        let mut out = Vec::new();
        assert_eq!(f.on_data(ToServer, &stream, &mut out), whole);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn protocol_id_other_than_zero_is_kept() {
        let mut bytes = adu(1, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]);
        *bytes.get_mut(2).unwrap() = 0x12; // protocol id 0x1200
        let mut f = flow();
        let p = one(&mut f, ToServer, &bytes);
        assert_eq!(p.anomalies, Anomalies::PROTOCOL_ID);
        assert_eq!(p.operation, Operation::Read);
    }

    fn garbage_count(out: &[Pdu]) -> usize {
        out.iter()
            .filter(|p| p.anomalies.contains(Anomalies::GARBAGE))
            .count()
    }

    /// Stretches skipped after a gap: the same event as garbage, flagged RESYNC.
    fn skipped_after_gap(out: &[Pdu]) -> usize {
        out.iter()
            .filter(|p| p.anomalies == Anomalies::RESYNC && info(p).function == "garbage")
            .count()
    }

    #[test]
    fn garbage_then_resync_gives_one_event() {
        let frames = spec_frames();
        let mut stream = frames.first().unwrap().clone();
        // 40 bytes that never frame (length field 0x4141).
        stream.extend_from_slice(&[0x41; 40]);
        stream.extend_from_slice(&frames.concat());
        let mut f = flow();
        let out = feed(&mut f, ToServer, &stream);
        assert_eq!(out.len(), 6, "{out:?}");
        assert_eq!(garbage_count(&out), 1);
        let g = out.get(1).unwrap();
        assert_eq!(g.operation, Operation::Other);
        assert_eq!(g.anomalies, Anomalies::GARBAGE);
        assert_eq!(info(g).function, "garbage");
        // The ADUs after the stretch are clean.
        assert!(out.iter().skip(2).all(|p| p.anomalies.is_empty()));
    }

    #[test]
    fn garbage_over_several_calls_is_one_stretch() {
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_resync_scan: 16,
            ..ModbusConfig::default()
        });
        let mut out = Vec::new();
        let mut buf = Vec::new();
        // 1000 bytes of 0xFF in 100-byte segments, then two ADUs.
        let mut segments: Vec<Vec<u8>> = vec![vec![0xFF; 100]; 10];
        segments.push(spec_frames().concat());
        for s in segments {
            buf.extend_from_slice(&s);
            // Drive as the flow layer would: call again while progress is made.
            loop {
                let n = f.on_data(ToServer, &buf, &mut out);
                buf.drain(..n);
                if n == 0 || buf.is_empty() {
                    break;
                }
            }
        }
        assert!(buf.is_empty());
        assert_eq!(garbage_count(&out), 1);
        assert_eq!(out.len(), 5);
    }

    #[test]
    fn scan_window_bounds_one_call() {
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_resync_scan: 10,
            ..ModbusConfig::default()
        });
        let mut out = Vec::new();
        let junk = [0xEE; 100];
        // The first call frames nothing, sees a bad length, scans 10 offsets.
        assert_eq!(f.on_data(ToServer, &junk, &mut out), 10);
        assert_eq!(garbage_count(&out), 1);
        assert_eq!(f.on_data(ToServer, &junk, &mut out), 10);
        assert_eq!(garbage_count(&out), 1);
    }

    #[test]
    fn gap_then_mid_adu_resyncs() {
        let frames = spec_frames();
        let mut f = flow();
        let mut out = Vec::new();
        feed(&mut f, ToServer, frames.first().unwrap());
        f.on_gap(ToServer, &mut out);
        assert!(out.is_empty());
        // The tail of an ADU whose head was lost, then two whole ADUs.
        let second = frames.get(1).unwrap();
        let mut after = second.get(5..).unwrap().to_vec();
        after.extend_from_slice(&frames.get(2..).unwrap().concat());
        let out = feed(&mut f, ToServer, &after);
        assert_eq!((skipped_after_gap(&out), garbage_count(&out)), (1, 0));
        let tids: Vec<u16> = out.iter().skip(1).map(|p| info(p).transaction_id).collect();
        assert_eq!(tids, [3, 4]);
    }

    #[test]
    fn gap_then_clean_boundary_is_silent() {
        let frames = spec_frames();
        let mut f = flow();
        let mut out = Vec::new();
        feed(&mut f, ToServer, frames.first().unwrap());
        f.on_gap(ToServer, &mut out);
        let out = feed(&mut f, ToServer, &frames.get(1..).unwrap().concat());
        assert_eq!(out.len(), 3);
        assert_eq!(garbage_count(&out), 0);
    }

    #[test]
    fn after_a_gap_an_incomplete_candidate_waits() {
        let frames = spec_frames();
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        let first = frames.first().unwrap();
        let mut data = first.get(..first.len() - 1).unwrap().to_vec();
        assert_eq!(f.on_data(ToServer, &data, &mut out), 0);
        assert!(out.is_empty());
        data.push(*first.last().unwrap());
        assert_eq!(f.on_data(ToServer, &data, &mut out), first.len());
        assert_eq!(out.len(), 1);
        assert_eq!(garbage_count(&out), 0);
    }

    #[test]
    fn after_a_gap_a_clean_adu_is_trusted_before_the_next_header_is_whole() {
        let frames = spec_frames();
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        // A whole ADU followed by 3 bytes of the next header: the ADU is framed (the
        // next gap could otherwise take it), the 3 bytes wait.
        let first = frames.first().unwrap();
        let mut data = first.clone();
        data.extend_from_slice(frames.get(1).unwrap().get(..3).unwrap());
        assert_eq!(f.on_data(ToServer, &data, &mut out), first.len());
        assert_eq!(out.len(), 1);
        assert_eq!(garbage_count(&out), 0);
    }

    /// Drives `f` as the flow layer does (see `drive_stream`).
    fn drive(f: &mut ModbusFlow, dir: Direction, segments: &[&[u8]]) -> Vec<Pdu> {
        drive_stream(|b, out| f.on_data(dir, b, out), segments).0
    }

    #[test]
    fn a_header_made_by_chance_after_a_gap_is_not_trusted() {
        // Four polls (FC 3, address 0, 10 registers); 2 bytes of the second, its
        // MBAP length, are lost. What is left of it, `01 03 00 00 00 0a`, reads as a
        // header with protocol id 0 and length 10 whose 16 bytes end where the
        // segment ends: a write of a single coil (FC 5, the next transaction id's low
        // byte) with 8 bytes of body where FC 5 has 4.
        let polls: Vec<u8> = (3..=6)
            .flat_map(|tid| adu(tid, 1, &[0x03, 0x00, 0x00, 0x00, 0x0A]))
            .collect();
        let mut f = flow();
        let mut out = drive(&mut f, ToServer, &[polls.get(..16).unwrap()]);
        f.on_gap(ToServer, &mut out);
        out.extend(drive(
            &mut f,
            ToServer,
            &[polls.get(18..34).unwrap(), polls.get(34..).unwrap()],
        ));
        let seen: Vec<(u16, u8)> = out
            .iter()
            .map(|p| (info(p).transaction_id, info(p).function_code))
            .collect();
        assert_eq!(seen, [(3, 3), (0, 0), (5, 3), (6, 3)], "{out:?}");
        assert_eq!((skipped_after_gap(&out), garbage_count(&out)), (1, 0));
        assert!(out
            .iter()
            .all(|p| p.anomalies.difference(Anomalies::RESYNC).is_empty()));
    }

    #[test]
    fn after_a_gap_an_unknown_function_needs_its_data_to_itself_or_a_header_after_it() {
        // FC 0x41 (user-defined): its body cannot be checked.
        let odd = adu(7, 1, &[0x41, 0x01, 0x02]);
        // All the data there is: taken.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        assert_eq!(info(&one(&mut f, ToServer, &odd)).function_code, 0x41);
        // After skipped bytes, alone at the end: it waits for what follows, also when
        // the flow layer offers it again on its own.
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        let mut data = vec![0xEE, 0xEE];
        data.extend_from_slice(&odd);
        out.extend(drive(&mut f, ToServer, &[&data]));
        assert_eq!((out.len(), skipped_after_gap(&out)), (1, 1));
        // A whole header after it: taken.
        let mut rest = odd.clone();
        rest.extend_from_slice(&adu(8, 1, &[0x03, 0x00, 0x00, 0x00, 0x01]));
        assert_eq!(f.on_data(ToServer, &rest, &mut out), rest.len());
        let codes: Vec<u8> = out.iter().map(|p| info(p).function_code).collect();
        assert_eq!(codes, [0, 0x41, 3]);
    }

    #[test]
    fn after_a_gap_an_anomalous_request_followed_by_a_header_is_reported() {
        // A coil written with 0x1234 (neither 0xFF00 nor 0x0000), then a poll.
        let write = adu(5, 1, &[0x05, 0x00, 0x10, 0x12, 0x34]);
        let poll = adu(6, 1, &[0x03, 0x00, 0x00, 0x00, 0x01]);
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        out.extend(drive(&mut f, ToServer, &[&write, &poll]));
        let seen: Vec<(u8, Anomalies)> = out
            .iter()
            .map(|p| (info(p).function_code, p.anomalies))
            .collect();
        assert_eq!(
            seen,
            [(5, Anomalies::OUT_OF_SPEC_VALUE), (3, Anomalies::empty())]
        );
    }

    #[test]
    fn a_gap_explains_no_more_than_an_adu_of_skipped_bytes() {
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        // 20,000 bytes that never frame, in 100-byte segments: the first are taken for
        // the rest of a cut ADU, then the stretch is garbage.
        let junk = vec![0xEE; 100];
        let segments: Vec<&[u8]> = (0..200).map(|_| junk.as_slice()).collect();
        out.extend(drive(&mut f, ToServer, &segments));
        let flags: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(flags, [Anomalies::RESYNC, Anomalies::GARBAGE]);
        // In one piece longer than an ADU: garbage only.
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        out.extend(drive(&mut f, ToServer, &[&[0xEE; 1000]]));
        let flags: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(flags, [Anomalies::GARBAGE]);
        // A short stretch is the rest of a cut ADU only.
        let mut f = flow();
        let mut out = Vec::new();
        f.on_gap(ToServer, &mut out);
        let mut data = vec![0xEE; MAX_ADU_LEN - 1];
        data.extend_from_slice(&adu(6, 1, &[0x03, 0x00, 0x00, 0x00, 0x01]));
        out.extend(drive(&mut f, ToServer, &[&data]));
        let flags: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(flags, [Anomalies::RESYNC, Anomalies::empty()]);
    }

    #[test]
    fn a_response_whose_request_a_gap_took_is_flagged_resync_until_pairing_resumes() {
        let poll = |tid| adu(tid, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]);
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        let mut f = flow();
        one(&mut f, ToServer, &poll(1));
        one(&mut f, ToClient, &answer(1));
        // Request 2 is lost in a gap; its answer finds no request, for that reason.
        f.on_gap(ToServer, &mut Vec::new());
        let r = one(&mut f, ToClient, &answer(2));
        assert_eq!(
            r.anomalies,
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // Pairing resumes; a later unmatched answer has no loss to explain it.
        one(&mut f, ToServer, &poll(3));
        assert!(one(&mut f, ToClient, &answer(3)).anomalies.is_empty());
        let r = one(&mut f, ToClient, &answer(9));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn after_a_gap_in_the_requests_older_answers_do_not_end_the_loss() {
        let poll = |tid| adu(tid, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]);
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        let mut f = flow();
        one(&mut f, ToServer, &poll(1));
        // Request 2 is lost; requests 3 and 4 are seen; the answers come after.
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToServer, &poll(3));
        one(&mut f, ToServer, &poll(4));
        let flags = |f: &mut ModbusFlow, tid| one(f, ToClient, &answer(tid)).anomalies;
        // The answer to request 1, sent before the gap, pairs; request 2's finds
        // none, for the loss.
        assert!(flags(&mut f, 1).is_empty());
        assert_eq!(
            flags(&mut f, 2),
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // Request 3 was sent after the gap: its answer ends the loss.
        assert!(flags(&mut f, 3).is_empty());
        assert_eq!(flags(&mut f, 9), Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_segment_acknowledging_unseen_requests_explains_its_own_unmatched_answers() {
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        let mut f = flow();
        f.on_unseen_acked(ToServer);
        let r = one(&mut f, ToClient, &answer(2));
        assert_eq!(
            r.anomalies,
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // The next segment carries no such evidence.
        let r = one(&mut f, ToClient, &answer(3));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // Unseen responses say nothing about requests.
        f.on_unseen_acked(ToClient);
        let r = one(&mut f, ToClient, &answer(4));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_gap_explains_no_more_unmatched_answers_than_requests_could_wait() {
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        let mut f = ModbusFlow::new(&ModbusConfig {
            max_outstanding: 2,
            ..ModbusConfig::default()
        });
        f.on_gap(ToServer, &mut Vec::new());
        let flags: Vec<Anomalies> = (1..=3)
            .map(|tid| one(&mut f, ToClient, &answer(tid)).anomalies)
            .collect();
        let lost = Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC;
        assert_eq!(flags, [lost, lost, Anomalies::UNMATCHED_RESPONSE]);
    }

    #[test]
    fn requests_whose_answers_a_gap_took_are_forgotten() {
        let poll = |tid| adu(tid, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]);
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        let mut f = flow();
        // Over a long capture, 100 answers are lost, one gap each, between answered
        // polls: no request is left waiting, none is reported as a flood.
        for tid in 0..100 {
            assert!(one(&mut f, ToServer, &poll(tid)).anomalies.is_empty());
            // The next poll goes out before the gap in the answers is known.
            let q = one(&mut f, ToServer, &poll(tid + 1000));
            assert!(q.anomalies.is_empty(), "{q:?}");
            f.on_gap(ToClient, &mut Vec::new());
            // Its answer still pairs, with the request's address.
            let r = one(&mut f, ToClient, &answer(tid + 1000));
            assert!(r.anomalies.is_empty(), "{r:?}");
            assert_eq!(info(&r).address, Some(1));
            assert_eq!(f.outstanding(), 0);
        }
        // Without a gap, a request answered out of order leaves the older waiting.
        one(&mut f, ToServer, &poll(1));
        one(&mut f, ToServer, &poll(2));
        one(&mut f, ToClient, &answer(2));
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn requests_sent_after_a_loss_in_the_answers_wait_for_their_own() {
        let poll = |tid| adu(tid, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]);
        let answer = |tid| adu(tid, 1, &[0x03, 0x02, 0x00, 0x07]);
        // As the flow layer calls: request 1's answer is lost. Requests 2 and 3 come
        // in segments that acknowledge it (the first one further than before), the
        // server answers 3 before 2 (Modbus/TCP allows it), and the gap is declared
        // only when the answer to 3, held behind the hole, is acknowledged.
        let mut f = flow();
        one(&mut f, ToServer, &poll(1));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &poll(2));
        one(&mut f, ToServer, &poll(3));
        f.on_gap(ToClient, &mut Vec::new());
        let r3 = one(&mut f, ToClient, &answer(3));
        assert!(r3.anomalies.is_empty(), "{r3:?}");
        // Only request 1 went with the gap: request 2 is still answered.
        assert_eq!(f.outstanding(), 1);
        let r2 = one(&mut f, ToClient, &answer(2));
        assert!(r2.anomalies.is_empty(), "{r2:?}");
        assert_eq!(info(&r2).address, Some(1));
        assert_eq!(f.outstanding(), 0);

        // A burst: the answers to 1 and 2 are both lost, and the second request's
        // successor acknowledges further. Both requests go with the gap.
        let mut f = flow();
        one(&mut f, ToServer, &poll(1));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &poll(2));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &poll(3));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &answer(3)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);

        // The acknowledged answers came after all (late, not lost): a later gap with
        // no fresh acknowledgment counts every request outstanding.
        let mut f = flow();
        one(&mut f, ToServer, &poll(1));
        f.on_acked_beyond(ToClient);
        one(&mut f, ToServer, &poll(2));
        assert!(one(&mut f, ToClient, &answer(1)).anomalies.is_empty());
        one(&mut f, ToServer, &poll(3));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &answer(3)).anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn a_flow_joined_mid_stream_explains_the_cut_adu_at_its_start_only() {
        let poll = adu(6, 1, &[0x03, 0x00, 0x00, 0x00, 0x01]);
        // The sensor joined in the middle of an ADU: its last 5 bytes (a length of
        // 0xFFFF can frame nothing), then a poll.
        let mut start = vec![0x00, 0x01, 0xFF, 0xFF, 0x00];
        start.extend_from_slice(&poll);
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&start]);
        let flags: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(flags, [Anomalies::RESYNC, Anomalies::empty()]);
        // Later, bytes that do not frame are the device's.
        let mut later = vec![0x00, 0x01, 0xFF, 0xFF, 0x00];
        later.extend_from_slice(&poll);
        let out = drive(&mut f, ToServer, &[&later]);
        let flags: Vec<Anomalies> = out.iter().map(|p| p.anomalies).collect();
        assert_eq!(flags, [Anomalies::GARBAGE, Anomalies::empty()]);
        // A flow whose start was seen: garbage from the first byte.
        let out = drive(&mut flow(), ToServer, &[&start]);
        assert_eq!(out.first().map(|p| p.anomalies), Some(Anomalies::GARBAGE));
    }

    #[test]
    fn gap_in_one_direction_leaves_the_other() {
        let mut f = flow();
        let mut out = Vec::new();
        one(
            &mut f,
            ToServer,
            &adu(1, 1, &[0x03, 0x00, 0x01, 0x00, 0x01]),
        );
        f.on_gap(ToServer, &mut out);
        // Responses still frame (without the strict check) and still pair.
        let r = one(&mut f, ToClient, &adu(1, 1, &[0x03, 0x02, 0x00, 0x07]));
        assert!(r.anomalies.is_empty());
        assert_eq!(info(&r).address, Some(1));
    }
}
