//! Per-flow state: UA TCP framing per direction with resynchronisation, chunk
//! reassembly, the secure channel's security mode, and request/response pairing by
//! request handle with a bounded table of outstanding requests. What a capture gap
//! explains is flagged `RESYNC` (see the crate docs, "Capture loss").

use otwatch_event::{
    Anomalies, Direction, Native, OpcuaInfo, Operation, Outstanding, Pdu, PduSink, Request, Skipped,
};

use crate::codes::{is_policy_none, symmetric_signature_len, MessageType, ServiceId, ServiceKind};
use crate::decode::{decode_service, looks_plaintext};
use crate::parser::{
    check_ua_header, parse_acknowledge, parse_asymmetric_header, parse_error, parse_hello,
    parse_reverse_hello, parse_sequence_header, parse_symmetric_header, parse_ua_header,
    DissectError, UaHeader, HEADER_LEN,
};

/// Bounds of one flow's state. Limits are data, not globals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpcuaConfig {
    /// Largest chunk size accepted as framed (header included); a larger size is a
    /// size lie: framing is lost. UA TCP buffers are at least 8192 bytes and commonly
    /// 64 KiB.
    pub max_chunk_size: u32,
    /// Chunks up to this size are decoded whole. A larger chunk is decoded from its
    /// first `max_inline_chunk` bytes and the rest is skipped as it arrives, so that
    /// the flow layer never has to buffer a whole large chunk. At least 64.
    pub max_inline_chunk: usize,
    /// Chunks of one message (C...C F); beyond it the message is reported, flagged
    /// `OUT_OF_SPEC_VALUE`, and its remaining chunks are dropped. At least 1.
    pub max_chunks_per_message: usize,
    /// Body bytes of one message kept for decoding; beyond it the body is cut (the
    /// fields in the kept prefix are still reported).
    pub max_message_bytes: usize,
    /// Outstanding requests kept for pairing; when full, the oldest is dropped and the
    /// new request is flagged `REQUEST_FLOOD` (not when the answer to the one dropped
    /// may have been lost by the capture). Clients keep several Publish requests
    /// queued. At least 1.
    pub max_outstanding: usize,
    /// Nodes reported per message (Write, Call, AddNodes, ...).
    pub max_nodes: usize,
    /// Candidate offsets examined per `on_data` call while resynchronising. At least 1.
    pub max_resync_scan: usize,
}

impl Default for OpcuaConfig {
    fn default() -> Self {
        OpcuaConfig {
            max_chunk_size: 16 * 1024 * 1024,
            max_inline_chunk: 32 * 1024,
            max_chunks_per_message: 64,
            max_message_bytes: 256 * 1024,
            max_outstanding: 128,
            max_nodes: 256,
            max_resync_scan: 4096,
        }
    }
}

/// A message being reassembled from its chunks (one per direction).
#[derive(Debug, Clone)]
struct Partial {
    message_type: MessageType,
    request_id: u32,
    chunks: usize,
    /// The bodies after the sequence header (signatures stripped), up to the bound.
    body: Vec<u8>,
    /// Bytes were left out (an oversized chunk or the message bound).
    cut: bool,
    /// The message was already reported (chunk bound hit): drop the rest silently.
    reported: bool,
}

#[derive(Debug, Clone, Default)]
struct DirState {
    /// Framing is not trusted (garbage seen or a gap): the next chunk must pass the
    /// strict check before it is accepted.
    resync: bool,
    /// Unframable bytes skipped since the last accepted chunk or the gap (after a gap,
    /// or at the start of a flow joined mid-stream, the rest of a chunk the loss cut is
    /// RESYNC, not GARBAGE).
    skipped: Skipped,
    /// A gap may have taken the first chunks of the message whose chunks come next:
    /// chunks that do not start a message are discarded up to the message's final
    /// chunk, not reassembled into a message that never was.
    lost_start: bool,
    /// Chunks discarded so far for `lost_start` (bounded by the chunks of a message).
    discarded: usize,
    /// Bytes of an oversized chunk still to skip.
    skip: u64,
    partial: Option<Partial>,
}

/// The secure channel as this flow has seen it.
#[derive(Debug, Clone, Default)]
struct Channel {
    /// The security policy of the last OPN (`None` until one is seen).
    policy: Option<String>,
    /// `none`, `sign`, `sign_and_encrypt`, `unknown`.
    mode: &'static str,
    /// Length of the symmetric signature trailing each signed chunk.
    signature_len: usize,
    id: Option<u32>,
    /// The largest chunk in each direction (indexed by `Direction::index`), as the
    /// Acknowledge negotiated it (Part 6, 7.1.2.4: its sender's ReceiveBufferSize
    /// bounds the chunks towards it, its SendBufferSize the chunks from it); `None`
    /// before one is seen.
    chunk_limits: Option<[u32; 2]>,
}

impl Channel {
    fn mode(&self) -> &'static str {
        if self.mode.is_empty() {
            "unknown"
        } else {
            self.mode
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    handle: u32,
    service: ServiceId,
    operation: Operation,
}

/// What a resynchronisation scan found.
enum Scan {
    Found(usize),
    NeedMore(usize),
    NotFound(usize),
}

/// What a header check says about a candidate chunk start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderCheck {
    No,
    NeedMore,
    Yes,
}

/// OPC UA binary state of one flow (both directions).
#[derive(Debug, Clone)]
pub struct OpcuaFlow {
    config: OpcuaConfig,
    /// Outstanding requests, and what the capture's losses say about them.
    pending: Outstanding<Pending>,
    channel: Channel,
    to_server: DirState,
    to_client: DirState,
}

impl OpcuaFlow {
    pub fn new(config: &OpcuaConfig) -> Self {
        let mut config = config.clone();
        config.max_inline_chunk = config.max_inline_chunk.max(64);
        config.max_chunks_per_message = config.max_chunks_per_message.max(1);
        config.max_outstanding = config.max_outstanding.max(1);
        config.max_resync_scan = config.max_resync_scan.max(1);
        OpcuaFlow {
            pending: Outstanding::new(config.max_outstanding),
            config,
            channel: Channel::default(),
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
    /// rest of a chunk. They are framed as usual, but when they do not frame, what is
    /// skipped before the first chunk, up to the largest chunk, is reported as RESYNC
    /// (as after a gap), not as the device's garbage.
    pub fn joined_mid_stream(mut self) -> Self {
        self.to_server.skipped.joined();
        self.to_client.skipped.joined();
        self
    }

    /// Number of requests waiting for their response.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// The channel's security mode as known so far.
    pub fn security_mode(&self) -> &'static str {
        self.channel.mode()
    }

    /// In-order bytes of one direction (`ToServer` from the client). Emits one [`Pdu`]
    /// per message (and one per stretch of garbage) and returns how many bytes were
    /// consumed; the unconsumed tail must be presented again with the next bytes.
    pub fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let n = self.frame(dir, data, out);
        self.pending.delivered(dir);
        n
    }

    fn frame(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let mut off = 0;
        // Progress: every turn consumes at least one byte or returns.
        while let Some(rest) = data.get(off..).filter(|r| !r.is_empty()) {
            let st = self.dir_state(dir);
            if st.skip > 0 {
                let n = rest
                    .len()
                    .min(usize::try_from(st.skip).unwrap_or(usize::MAX));
                st.skip -= n as u64;
                off += n;
                continue;
            }
            if st.resync {
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
            let header = match parse_ua_header(rest) {
                Ok((_, h)) => h,
                Err(_) => break, // fewer than 8 bytes
            };
            if let Err(e) = check_ua_header(&header, self.config.max_chunk_size) {
                self.bad_header(dir, &header, e, out);
                self.dir_state(dir).resync = true;
                continue;
            }
            let size = header.size as usize;
            // An oversized chunk is decoded from its start; the rest is skipped as it
            // comes.
            let taken = size.min(self.config.max_inline_chunk);
            let Some(chunk) = rest.get(HEADER_LEN..taken) else {
                break; // Incomplete
            };
            let cut = taken < size;
            if !(self.dir_state(dir).lost_start && self.continues_lost(dir, &header, chunk, out)) {
                self.dir_state(dir).skipped.framed();
                self.handle_chunk(dir, &header, chunk, cut, out);
            }
            if cut {
                self.dir_state(dir).skip = (size - taken) as u64;
            }
            off += taken;
        }
        off
    }

    /// Bytes of `dir` were lost. A message being reassembled is dropped; the next
    /// bytes are trusted only once a strict header check succeeds, and what is skipped
    /// until then, up to the largest chunk, is reported as RESYNC (the rest of a chunk
    /// the gap cut). Chunks that continue a message whose first chunks the gap took
    /// are discarded up to its final chunk (reported as the same RESYNC stretch).
    ///
    /// After a gap in the requests, responses that find no request are flagged RESYNC
    /// too, until a request sent after the gap is answered. After a gap in the
    /// responses, the requests older than the next one answered are dropped (their
    /// answers were in the gap), Publish requests only by an answered Publish: the
    /// server queues those, so older ones may still be answered after newer Reads.
    pub fn on_gap(&mut self, dir: Direction, _out: &mut dyn PduSink) {
        let st = self.dir_state(dir);
        *st = DirState {
            resync: true,
            lost_start: true,
            ..DirState::default()
        };
        st.skipped.lost();
        self.pending.on_gap(dir);
    }

    /// The next bytes of the other direction come in a segment that acknowledges
    /// bytes of `dir` the sensor never saw (lost by the capture, or still on their
    /// way). Only the data delivered next, up to the end of the next `on_data` call of
    /// the other direction, is concerned: the acknowledgment is that segment's own
    /// evidence, not a state of the flow.
    ///
    /// * `ToServer` (unseen requests): a response among that data that finds no
    ///   request is flagged `UNMATCHED_RESPONSE | RESYNC`: it answers one of those.
    /// * `ToClient` (unseen responses): the client received answers the sensor did
    ///   not see, so the outstanding table overstates what is outstanding; a request
    ///   among that data that finds the table full takes the place of the oldest
    ///   without being flagged `REQUEST_FLOOD`.
    pub fn on_unseen_acked(&mut self, dir: Direction) {
        self.pending.on_unseen_acked(dir);
    }

    /// The client has now acknowledged response bytes beyond any seen (`dir` is
    /// `ToClient`): if the capture lost them, the gap declared later holds answers
    /// to the requests outstanding now only, not to those sent after.
    pub fn on_acked_beyond(&mut self, dir: Direction) {
        self.pending.on_acked_beyond(dir);
    }

    /// The flow ended: partial messages and unanswered requests are forgotten.
    pub fn on_end(&mut self, _out: &mut dyn PduSink) {
        self.pending.clear();
        self.to_server = DirState::default();
        self.to_client = DirState::default();
    }

    /// After a gap: does this chunk continue a message whose first chunks the gap
    /// took? A MSG or CLO chunk (C or F) whose body does not start with the type
    /// NodeId of a standard service does, on a channel whose bodies are readable
    /// (encrypted bodies are never decoded, so a message joined from the wrong chunks
    /// cannot read as malformed there). Such chunks are discarded up to the message's
    /// final chunk, or the chunk bound; any other chunk starts a message and ends the
    /// search. The first discarded chunk is reported as part of the RESYNC stretch.
    fn continues_lost(
        &mut self,
        dir: Direction,
        h: &UaHeader,
        chunk: &[u8],
        out: &mut dyn PduSink,
    ) -> bool {
        let symmetric = h.message_type.is_secure() && h.message_type != MessageType::OPEN;
        // Channel id and token id (8), sequence number and request id (8).
        let orphan = symmetric
            && matches!(h.chunk_type.0, b'C' | b'F')
            && self.channel.mode() != "sign_and_encrypt"
            && !chunk.get(16..).is_some_and(looks_plaintext);
        let max_chunks = self.config.max_chunks_per_message;
        let st = self.dir_state(dir);
        if !orphan {
            st.lost_start = false;
            st.discarded = 0;
            return false;
        }
        st.discarded += 1;
        if h.chunk_type.0 == b'F' || st.discarded >= max_chunks {
            st.lost_start = false;
            st.discarded = 0;
        }
        if let Some(anomalies) = st.skipped.discarded() {
            self.skipped_event(dir, anomalies, out);
        }
        true
    }

    fn scan(&self, rest: &[u8]) -> Scan {
        let window = rest.len().min(self.config.max_resync_scan);
        for k in 0..window {
            let Some(candidate) = rest.get(k..) else {
                break;
            };
            match self.check_stream_start(candidate) {
                HeaderCheck::Yes => return Scan::Found(k),
                HeaderCheck::NeedMore => return Scan::NeedMore(k),
                HeaderCheck::No => {}
            }
        }
        Scan::NotFound(window)
    }

    /// The resynchronisation test: a legal header (a secure chunk on this flow's
    /// channel, when it is known) whose chunk is complete and followed by the end of
    /// the data or another legal header.
    fn check_stream_start(&self, i: &[u8]) -> HeaderCheck {
        let header = match parse_ua_header(i) {
            Ok((_, h)) => h,
            Err(_) => return HeaderCheck::NeedMore,
        };
        if check_ua_header(&header, self.config.max_chunk_size).is_err() {
            return HeaderCheck::No;
        }
        let mut same_channel = false;
        if header.message_type.is_secure() {
            let Some(id) = crate::parser::le_u32_at(i, 8) else {
                return HeaderCheck::NeedMore;
            };
            match self.channel.id {
                Some(known) if id != known && id != 0 => return HeaderCheck::No,
                Some(_) => same_channel = true,
                None => {}
            }
        }
        let size = header.size as usize;
        match i.get(size..) {
            Some([]) => HeaderCheck::Yes,
            Some(next) => match parse_ua_header(next) {
                Ok((_, h)) if check_ua_header(&h, self.config.max_chunk_size).is_ok() => {
                    HeaderCheck::Yes
                }
                Ok(_) => HeaderCheck::No,
                Err(_) => HeaderCheck::Yes,
            },
            None if same_channel || size > self.config.max_inline_chunk => HeaderCheck::Yes,
            None => HeaderCheck::NeedMore,
        }
    }

    /// Consumes `n` unframable bytes. A stretch yields one GARBAGE event at its first
    /// skip; after a gap, one RESYNC event instead, and a GARBAGE event as well once
    /// the stretch reaches the largest chunk of its direction (more than a gap can
    /// leave of one): the size the Acknowledge negotiated, at least the 8192 octets
    /// every peer must accept, else the largest chunk accepted.
    fn skip_garbage(&mut self, dir: Direction, n: usize, out: &mut dyn PduSink) {
        const MIN_BUFFER_SIZE: u32 = 8192;
        let negotiated = self
            .channel
            .chunk_limits
            .and_then(|limits| limits.get(dir.index()).copied())
            .map(|n| n.max(MIN_BUFFER_SIZE));
        let longest = negotiated.map_or(self.config.max_chunk_size, |n| {
            n.min(self.config.max_chunk_size)
        }) as usize;
        let Some(anomalies) = self.dir_state(dir).skipped.skip(n, longest) else {
            return;
        };
        self.skipped_event(dir, anomalies, out);
    }

    /// The event of a stretch of skipped bytes.
    fn skipped_event(&self, dir: Direction, anomalies: Anomalies, out: &mut dyn PduSink) {
        let info = OpcuaInfo {
            message_type: "garbage",
            security_mode: self.channel.mode(),
            ..OpcuaInfo::default()
        };
        out.push(pdu(
            dir,
            dir == Direction::ToClient,
            Operation::Other,
            anomalies,
            info,
        ));
    }

    /// A header that cannot be framed. A known message type with an impossible size
    /// is reported (a size lie); anything else is garbage, reported by the scan.
    fn bad_header(&mut self, dir: Direction, h: &UaHeader, e: DissectError, out: &mut dyn PduSink) {
        tracing::debug!(error = e.as_str(), "OPC UA framing lost");
        let (Some(name), DissectError::BadSize { .. }) = (h.message_type.name(), e) else {
            return;
        };
        let st = self.dir_state(dir);
        // The stretch after it is part of this report.
        st.skipped.reported();
        st.partial = None;
        let info = OpcuaInfo {
            message_type: name,
            security_mode: self.channel.mode(),
            ..OpcuaInfo::default()
        };
        out.push(pdu(
            dir,
            dir == Direction::ToClient,
            Operation::Other,
            Anomalies::BAD_LENGTH,
            info,
        ));
    }

    fn handle_chunk(
        &mut self,
        dir: Direction,
        h: &UaHeader,
        body: &[u8],
        cut: bool,
        out: &mut dyn PduSink,
    ) {
        let mut info = OpcuaInfo {
            message_type: h.message_type.name().unwrap_or("unknown"),
            ..OpcuaInfo::default()
        };
        let by_dir = dir == Direction::ToClient;
        let ok = |r: Result<(), DissectError>| match r {
            Ok(()) => Anomalies::empty(),
            Err(DissectError::Truncated) if cut => Anomalies::empty(),
            Err(_) => Anomalies::MALFORMED,
        };
        match h.message_type {
            MessageType::HELLO => {
                let r = parse_hello(body).map(|(_, hel)| {
                    info.endpoint_url = text(hel.endpoint_url);
                    info.receive_buffer_size = Some(hel.receive_buffer_size);
                    info.send_buffer_size = Some(hel.send_buffer_size);
                    info.max_message_size = Some(hel.max_message_size);
                    info.max_chunk_count = Some(hel.max_chunk_count);
                });
                let a = ok(r.map_err(nom_err));
                self.emit(dir, false, Operation::Session, a, info, out);
            }
            MessageType::ACKNOWLEDGE => {
                let r = parse_acknowledge(body).map(|(_, ack)| {
                    // Keyed by the direction the Acknowledge travelled, so that a flow
                    // whose client listens (reverse connect) gets them the right way.
                    let mut limits = [0; 2];
                    if let Some(l) = limits.get_mut(dir.reverse().index()) {
                        *l = ack.receive_buffer_size;
                    }
                    if let Some(l) = limits.get_mut(dir.index()) {
                        *l = ack.send_buffer_size;
                    }
                    self.channel.chunk_limits = Some(limits);
                    info.receive_buffer_size = Some(ack.receive_buffer_size);
                    info.send_buffer_size = Some(ack.send_buffer_size);
                    info.max_message_size = Some(ack.max_message_size);
                    info.max_chunk_count = Some(ack.max_chunk_count);
                });
                let a = ok(r.map_err(nom_err));
                self.emit(dir, true, Operation::Session, a, info, out);
            }
            MessageType::ERROR => {
                let r = parse_error(body).map(|(_, e)| info.status_code = Some(e.error));
                let a = ok(r.map_err(nom_err));
                self.emit(dir, true, Operation::Other, a, info, out);
            }
            MessageType::REVERSE_HELLO => {
                let r = parse_reverse_hello(body)
                    .map(|(_, rhe)| info.endpoint_url = text(rhe.endpoint_url));
                let a = ok(r.map_err(nom_err));
                self.emit(dir, true, Operation::Session, a, info, out);
            }
            MessageType::OPEN => {
                let Ok((rest, asym)) = parse_asymmetric_header(body) else {
                    let a = ok(Err(DissectError::Truncated));
                    self.emit(
                        dir,
                        by_dir,
                        Operation::Session,
                        a | Anomalies::MALFORMED,
                        info,
                        out,
                    );
                    return;
                };
                info.secure_channel_id = Some(asym.secure_channel_id);
                let policy = text(asym.security_policy_uri).unwrap_or_default();
                info.sender_certificate_thumbprint = asym.sender_certificate.map(thumbprint);
                info.receiver_certificate_thumbprint = asym
                    .receiver_certificate_thumbprint
                    .filter(|t| !t.is_empty())
                    .map(hex);
                if asym.secure_channel_id != 0 {
                    self.channel.id = Some(asym.secure_channel_id);
                }
                let none = is_policy_none(&policy);
                if self.channel.policy.as_deref() != Some(policy.as_str()) {
                    // A new channel (or a new policy): the mode is learnt again.
                    self.channel.mode = if none { "none" } else { "unknown" };
                    self.channel.signature_len = symmetric_signature_len(&policy);
                    self.channel.policy = Some(policy.clone());
                }
                info.security_policy = Some(policy);
                info.security_mode = self.channel.mode();
                if none {
                    self.secure_chunk(dir, h, rest, cut, info, out);
                } else {
                    // Asymmetrically encrypted from the sequence header on.
                    info.encrypted = true;
                    self.emit(
                        dir,
                        by_dir,
                        Operation::Session,
                        Anomalies::empty(),
                        info,
                        out,
                    );
                }
            }
            _ => {
                // MSG, CLO: secure channel id and token id, then the sequence header.
                let Ok((rest, (channel, token))) = parse_symmetric_header(body) else {
                    info.security_mode = self.channel.mode();
                    self.emit(
                        dir,
                        by_dir,
                        Operation::Other,
                        ok(Err(DissectError::Truncated)) | Anomalies::MALFORMED,
                        info,
                        out,
                    );
                    return;
                };
                info.secure_channel_id = Some(channel);
                info.token_id = Some(token);
                if self.channel.id.is_none() && channel != 0 {
                    self.channel.id = Some(channel);
                }
                if self.channel.mode() == "unknown" && h.chunk_type.0 != b'A' {
                    let continuing = self.dir_state(dir).partial.is_some();
                    let plain = rest.get(8..).is_some_and(looks_plaintext);
                    if self.channel.policy.is_some() && !continuing {
                        self.channel.mode = if plain { "sign" } else { "sign_and_encrypt" };
                    } else if !plain && !continuing {
                        // No OPN seen (joined mid-stream): an unreadable body is taken
                        // as encrypted, not as an error.
                        info.security_mode = "unknown";
                        info.encrypted = true;
                        self.emit(dir, by_dir, Operation::Other, Anomalies::empty(), info, out);
                        return;
                    }
                }
                info.security_mode = self.channel.mode();
                if self.channel.mode() == "sign_and_encrypt" {
                    info.encrypted = true;
                    if h.chunk_type.0 == b'C' {
                        return; // one event per message, at its last chunk
                    }
                    self.emit(dir, by_dir, Operation::Other, Anomalies::empty(), info, out);
                    return;
                }
                self.secure_chunk(dir, h, rest, cut, info, out);
            }
        }
    }

    /// The plaintext part of an OPN, CLO or MSG chunk, from the sequence header on:
    /// reassembles C...F and decodes the message at its final chunk.
    fn secure_chunk(
        &mut self,
        dir: Direction,
        h: &UaHeader,
        rest: &[u8],
        cut: bool,
        mut info: OpcuaInfo,
        out: &mut dyn PduSink,
    ) {
        let by_dir = dir == Direction::ToClient;
        let Ok((payload, (_seq, request_id))) = parse_sequence_header(rest) else {
            let a = if cut {
                Anomalies::empty()
            } else {
                Anomalies::MALFORMED
            };
            self.emit(dir, by_dir, Operation::Other, a, info, out);
            return;
        };
        // Signed chunks end with the signature; it is not part of the body.
        let sig = if self.channel.mode() == "sign" && !cut {
            self.channel.signature_len
        } else {
            0
        };
        let payload = payload
            .get(..payload.len().saturating_sub(sig))
            .unwrap_or_default();
        let max_chunks = self.config.max_chunks_per_message;
        let max_bytes = self.config.max_message_bytes;
        let st = self.dir_state(dir);
        let mut anomalies = Anomalies::empty();
        // A chunk of another message while one is being reassembled: the earlier one
        // never completes (reported, flagged).
        if let Some(p) = &st.partial {
            if p.message_type != h.message_type || p.request_id != request_id {
                let stale = st.partial.take();
                if let Some(p) = stale.filter(|p| !p.reported) {
                    let mut old = info.clone();
                    old.message_type = p.message_type.name().unwrap_or("unknown");
                    self.finish(
                        dir,
                        p.body.as_slice(),
                        p.cut,
                        &mut old,
                        Anomalies::MALFORMED,
                        out,
                    );
                }
            }
        }
        let st = self.dir_state(dir);
        match h.chunk_type.0 {
            b'C' => {
                let p = st.partial.get_or_insert_with(|| Partial {
                    message_type: h.message_type,
                    request_id,
                    chunks: 0,
                    body: Vec::new(),
                    cut: false,
                    reported: false,
                });
                p.chunks += 1;
                if p.reported {
                    return;
                }
                append(p, payload, cut, max_bytes);
                if p.chunks >= max_chunks {
                    // Past the bound: report what is there and drop the rest.
                    p.reported = true;
                    let body = std::mem::take(&mut p.body);
                    let cut = true;
                    self.finish(
                        dir,
                        &body,
                        cut,
                        &mut info,
                        Anomalies::OUT_OF_SPEC_VALUE,
                        out,
                    );
                }
            }
            b'A' => {
                // Abort (Part 6, 6.7.3): the body is an error and a reason.
                st.partial = None;
                if let Ok((_, e)) = parse_error(payload) {
                    info.status_code = Some(e.error);
                } else {
                    anomalies |= Anomalies::MALFORMED;
                }
                self.emit(dir, by_dir, Operation::Other, anomalies, info, out);
            }
            _ => match st.partial.take() {
                Some(mut p) => {
                    if p.reported {
                        return;
                    }
                    append(&mut p, payload, cut, max_bytes);
                    self.finish(dir, &p.body, p.cut, &mut info, anomalies, out);
                }
                None => self.finish(dir, payload, cut, &mut info, anomalies, out),
            },
        }
    }

    /// Decodes a whole (or cut) message body, pairs it, and emits its event.
    fn finish(
        &mut self,
        dir: Direction,
        body: &[u8],
        cut: bool,
        info: &mut OpcuaInfo,
        mut anomalies: Anomalies,
        out: &mut dyn PduSink,
    ) {
        let by_dir = dir == Direction::ToClient;
        let outcome = match decode_service(body, info, self.config.max_nodes) {
            Ok(o) => Some(o),
            Err((o, e)) => {
                if !(cut && e == DissectError::Truncated) {
                    anomalies |= Anomalies::MALFORMED;
                }
                o
            }
        };
        let Some(o) = outcome else {
            self.emit(
                dir,
                by_dir,
                Operation::Other,
                anomalies,
                std::mem::take(info),
                out,
            );
            return;
        };
        let (is_response, operation) = match o.kind {
            None => {
                anomalies |= Anomalies::UNKNOWN_FUNCTION;
                (by_dir, Operation::Other)
            }
            Some(ServiceKind::Request) => {
                let operation = o.id.operation().unwrap_or(Operation::Other);
                if let Some(handle) = info.request_handle {
                    let request = Pending {
                        handle,
                        service: o.id,
                        operation,
                    };
                    if self.pending.push_reusing(request, |p| p.handle == handle) {
                        anomalies |= Anomalies::REQUEST_FLOOD;
                    }
                }
                (false, operation)
            }
            Some(kind) => {
                let own = o.id.operation().unwrap_or(Operation::Other);
                let handle = info.request_handle;
                let found = self.pending.answer(|p| Some(p.handle) == handle);
                let operation = match found {
                    Some(req) => {
                        let expected = req.service.response_of();
                        if kind != ServiceKind::Response || expected == Some(o.id) {
                            req.operation
                        } else if self.pending.mismatch_is_loss() {
                            // It answers a request the capture lost, which reused the
                            // handle.
                            anomalies |= Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC;
                            own
                        } else {
                            anomalies |= Anomalies::RESPONSE_MISMATCH;
                            req.operation
                        }
                    }
                    None => {
                        // A ServiceFault or a response with a request handle never seen:
                        // after a loss of requests, likely the answer to a lost one.
                        if info.request_handle.is_some() {
                            anomalies |= Anomalies::UNMATCHED_RESPONSE;
                            // A lost Publish request is answered late: its lane.
                            let lost = match o.id {
                                ServiceId::PUBLISH_RESPONSE => {
                                    self.pending.unmatched_is_loss(true, handle)
                                }
                                ServiceId::SERVICE_FAULT => {
                                    self.pending.unmatched_is_loss(false, handle)
                                        || self.pending.unmatched_is_loss(true, handle)
                                }
                                _ => self.pending.unmatched_is_loss(false, handle),
                            };
                            if lost {
                                anomalies |= Anomalies::RESYNC;
                            }
                        }
                        own
                    }
                };
                (true, operation)
            }
        };
        self.emit(
            dir,
            is_response,
            operation,
            anomalies,
            std::mem::take(info),
            out,
        );
    }

    fn emit(
        &self,
        dir: Direction,
        is_response: bool,
        operation: Operation,
        anomalies: Anomalies,
        mut info: OpcuaInfo,
        out: &mut dyn PduSink,
    ) {
        if info.security_mode.is_empty() {
            info.security_mode = self.channel.mode();
        }
        out.push(pdu(dir, is_response, operation, anomalies, info));
    }
}

/// The server queues Publish requests and answers each when it has a notification
/// to send: a full table drops a Publish last, and a lost Read answer says nothing
/// about them.
/// Clients count their request handles, over every kind of request.
impl Request for Pending {
    fn queued(&self) -> bool {
        self.service == ServiceId::PUBLISH_REQUEST
    }

    fn number(&self) -> Option<u32> {
        Some(self.handle)
    }
}

fn append(p: &mut Partial, payload: &[u8], cut: bool, max_bytes: usize) {
    let room = max_bytes.saturating_sub(p.body.len());
    let take = payload.len().min(room);
    p.body
        .extend_from_slice(payload.get(..take).unwrap_or_default());
    p.cut |= cut || take < payload.len();
}

fn pdu(
    dir: Direction,
    is_response: bool,
    operation: Operation,
    anomalies: Anomalies,
    info: OpcuaInfo,
) -> Pdu {
    Pdu {
        direction: dir,
        is_response,
        operation,
        anomalies,
        native: Native::Opcua(Box::new(info)),
    }
}

fn nom_err(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => DissectError::Truncated,
    }
}

fn text(s: Option<&[u8]>) -> Option<String> {
    s.map(|s| String::from_utf8_lossy(s).into_owned())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The SHA-1 thumbprint (hex) of the sender's certificate: of the first DER element
/// when the field holds a chain (Part 6, 6.7.2.3), of the whole field otherwise.
fn thumbprint(der: &[u8]) -> String {
    let first = der_element_len(der)
        .and_then(|n| der.get(..n))
        .unwrap_or(der);
    hex(&sha1_smol::Sha1::from(first).digest().bytes())
}

/// The length of the DER element at the front of `der` (tag, length, contents), when
/// it is a SEQUENCE with a definite length that fits.
fn der_element_len(der: &[u8]) -> Option<usize> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = rest.get(..n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        (len, 2 + n)
    };
    let total = header + len;
    (total <= der.len()).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::tests::{
        request_header_bytes, response_header_bytes, type_id, ua_str, write_request,
    };
    use otwatch_event::testing::drive_stream;
    use otwatch_event::OpcuaValue;
    use Direction::{ToClient, ToServer};

    const NONE: &[u8] = b"http://opcfoundation.org/UA/SecurityPolicy#None";
    const B256: &[u8] = b"http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

    /// A UA TCP chunk (Part 6, 7.1.2.2): message type (3), chunk type (1), size
    /// (u32 LE, header included), then the body.
    fn chunk(ty: &[u8; 3], chunk_type: u8, body: &[u8]) -> Vec<u8> {
        let mut v = ty.to_vec();
        v.push(chunk_type);
        v.extend_from_slice(&(body.len() as u32 + 8).to_le_bytes());
        v.extend_from_slice(body);
        v
    }

    /// HEL (7.1.2.3): version 0, receive/send buffers 65536, max message 0 (no
    /// limit), max chunks 0, endpoint URL.
    fn hel(url: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [0u32, 65536, 65536, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend(ua_str(url));
        chunk(b"HEL", b'F', &b)
    }

    /// ACK (7.1.2.4): version 0, receive/send buffers 8192, max message 4 MiB, 16
    /// chunks.
    fn ack() -> Vec<u8> {
        let mut b = Vec::new();
        for v in [0u32, 8192, 8192, 4 << 20, 16] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        chunk(b"ACK", b'F', &b)
    }

    /// OPN (6.7.2): secure channel id, asymmetric security header (policy URI, sender
    /// certificate, receiver thumbprint), sequence header (number, request id), body.
    fn opn(
        channel: u32,
        policy: &[u8],
        cert: Option<&[u8]>,
        thumb: Option<&[u8]>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut b = channel.to_le_bytes().to_vec();
        b.extend(ua_str(policy));
        let opt = |v: Option<&[u8]>| {
            v.map(ua_str)
                .unwrap_or_else(|| (-1i32).to_le_bytes().to_vec())
        };
        b.extend(opt(cert));
        b.extend(opt(thumb));
        b.extend_from_slice(&1u32.to_le_bytes()); // sequence number
        b.extend_from_slice(&1u32.to_le_bytes()); // request id
        b.extend_from_slice(body);
        chunk(b"OPN", b'F', &b)
    }

    /// OpenSecureChannelRequest (Part 4, 5.5.2): header, ClientProtocolVersion 0,
    /// RequestType 0 (issue), SecurityMode 1 (None), ClientNonce null,
    /// RequestedLifetime 600000.
    fn opn_request_body(handle: u32) -> Vec<u8> {
        let mut v = type_id(446);
        v.extend(request_header_bytes(handle));
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&(-1i32).to_le_bytes());
        v.extend_from_slice(&600_000u32.to_le_bytes());
        v
    }

    /// OpenSecureChannelResponse: header, ServerProtocolVersion 0, SecurityToken
    /// (ChannelId, TokenId, CreatedAt, RevisedLifetime), ServerNonce null.
    fn opn_response_body(handle: u32, channel: u32, token: u32) -> Vec<u8> {
        let mut v = type_id(449);
        v.extend(response_header_bytes(handle, 0));
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&channel.to_le_bytes());
        v.extend_from_slice(&token.to_le_bytes());
        v.extend_from_slice(&0i64.to_le_bytes());
        v.extend_from_slice(&600_000u32.to_le_bytes());
        v.extend_from_slice(&(-1i32).to_le_bytes());
        v
    }

    /// MSG or CLO (6.7.2): secure channel id, token id, sequence header, body.
    fn sym(ty: &[u8; 3], chunk_type: u8, channel: u32, request_id: u32, body: &[u8]) -> Vec<u8> {
        let mut b = channel.to_le_bytes().to_vec();
        b.extend_from_slice(&7u32.to_le_bytes()); // token id
        b.extend_from_slice(&request_id.to_le_bytes()); // sequence number
        b.extend_from_slice(&request_id.to_le_bytes()); // request id
        b.extend_from_slice(body);
        chunk(ty, chunk_type, &b)
    }

    fn msg(request_id: u32, body: &[u8]) -> Vec<u8> {
        sym(b"MSG", b'F', 5, request_id, body)
    }

    fn write_response(handle: u32) -> Vec<u8> {
        let mut v = type_id(676);
        v.extend(response_header_bytes(handle, 0));
        v.extend_from_slice(&1i32.to_le_bytes()); // Results: [Good]
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&(-1i32).to_le_bytes()); // DiagnosticInfos: null
        v
    }

    fn flow() -> OpcuaFlow {
        OpcuaFlow::new(&OpcuaConfig::default())
    }

    fn feed(f: &mut OpcuaFlow, dir: Direction, bytes: &[u8]) -> Vec<Pdu> {
        let mut out = Vec::new();
        let n = f.on_data(dir, bytes, &mut out);
        assert_eq!(n, bytes.len(), "all bytes consumed");
        out
    }

    fn one(f: &mut OpcuaFlow, dir: Direction, bytes: &[u8]) -> Pdu {
        let mut v = feed(f, dir, bytes);
        assert_eq!(v.len(), 1, "{v:?}");
        v.remove(0)
    }

    fn info(p: &Pdu) -> &OpcuaInfo {
        let Native::Opcua(o) = &p.native else {
            panic!("not OPC UA: {p:?}");
        };
        o
    }

    /// HEL/ACK, OPN None, a Write and its response, CLO.
    #[test]
    fn session_over_policy_none() {
        let mut f = flow();
        let h = one(&mut f, ToServer, &hel(b"opc.tcp://plc-1:4840"));
        assert_eq!((h.operation, h.is_response), (Operation::Session, false));
        let hi = info(&h);
        assert_eq!(hi.message_type, "HEL");
        assert_eq!(hi.endpoint_url.as_deref(), Some("opc.tcp://plc-1:4840"));
        assert_eq!(hi.receive_buffer_size, Some(65536));
        assert_eq!(hi.security_mode, "unknown");
        let a = one(&mut f, ToClient, &ack());
        assert!(a.is_response);
        assert_eq!(info(&a).max_chunk_count, Some(16));

        let q = one(
            &mut f,
            ToServer,
            &opn(0, NONE, None, None, &opn_request_body(1)),
        );
        let qi = info(&q);
        assert_eq!((qi.message_type, qi.security_mode), ("OPN", "none"));
        assert_eq!(
            qi.security_policy.as_deref(),
            std::str::from_utf8(NONE).ok()
        );
        assert_eq!(
            (qi.service_id, qi.service),
            (Some(446), Some("OpenSecureChannelRequest"))
        );
        assert_eq!(q.operation, Operation::Session);
        assert!(!qi.encrypted);
        let r = one(
            &mut f,
            ToClient,
            &opn(5, NONE, None, None, &opn_response_body(1, 5, 9)),
        );
        let ri = info(&r);
        assert_eq!(
            (ri.service_id, ri.token_id, ri.secure_channel_id),
            (Some(449), Some(9), Some(5))
        );
        assert!(r.is_response && r.anomalies.is_empty(), "{r:?}");

        let w = one(&mut f, ToServer, &msg(2, &write_request(11)));
        assert_eq!((w.operation, w.is_response), (Operation::Write, false));
        let wi = info(&w);
        assert_eq!((wi.message_type, wi.security_mode), ("MSG", "none"));
        assert_eq!(wi.token_id, Some(7));
        assert_eq!(wi.request_handle, Some(11));
        let nodes = wi.nodes.as_deref().unwrap_or_default();
        assert_eq!(nodes[0].node_id, "ns=2;s=Line1.Speed");
        assert_eq!(nodes[0].value, Some(OpcuaValue::Number(42.5)));
        assert_eq!(f.outstanding(), 1);
        let wr = one(&mut f, ToClient, &msg(2, &write_response(11)));
        assert_eq!((wr.operation, wr.is_response), (Operation::Write, true));
        assert_eq!(info(&wr).status_code, Some(0));
        assert!(wr.anomalies.is_empty());
        assert_eq!(f.outstanding(), 0);

        let mut clo = type_id(452);
        clo.extend(request_header_bytes(12));
        let c = one(&mut f, ToServer, &sym(b"CLO", b'F', 5, 3, &clo));
        assert_eq!(info(&c).message_type, "CLO");
        assert_eq!(info(&c).service, Some("CloseSecureChannelRequest"));
        assert_eq!(c.operation, Operation::Session);
    }

    /// Every strict prefix of a message is "need more" (nothing consumed, no event);
    /// fed byte by byte as the flow layer would, the events are the same.
    #[test]
    fn strict_prefixes_are_incomplete() {
        let mut stream = hel(b"opc.tcp://x");
        stream.extend(opn(0, NONE, None, None, &opn_request_body(1)));
        stream.extend(msg(2, &write_request(3)));
        for frame in [hel(b"opc.tcp://x"), msg(2, &write_request(3))] {
            for k in 0..frame.len() {
                let mut f = flow();
                let mut out = Vec::new();
                assert_eq!(f.on_data(ToServer, &frame[..k], &mut out), 0, "prefix {k}");
                assert!(out.is_empty());
            }
        }
        let whole = feed(&mut flow(), ToServer, &stream);
        let mut f = flow();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        for b in &stream {
            buf.push(*b);
            let n = f.on_data(ToServer, &buf, &mut out);
            buf.drain(..n);
        }
        assert!(buf.is_empty());
        assert_eq!(out, whole);
        assert_eq!(whole.len(), 3);
    }

    /// A Write split into C, C, F chunks is one event; C then A is an abort event.
    #[test]
    fn chunks_are_reassembled_and_aborted() {
        let body = write_request(4);
        let (a, rest) = body.split_at(10);
        let (b, c) = rest.split_at(30);
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, a)).is_empty());
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, b)).is_empty());
        let w = one(&mut f, ToServer, &sym(b"MSG", b'F', 5, 8, c));
        assert!(w.anomalies.is_empty(), "{w:?}");
        assert_eq!(info(&w).nodes.as_ref().map(Vec::len), Some(2));
        assert_eq!(w.operation, Operation::Write);

        // Abort (6.7.3): Error 0x80820000 (BadRequestTooLarge), reason "too big".
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 9, a)).is_empty());
        let mut abort = 0x8082_0000u32.to_le_bytes().to_vec();
        abort.extend(ua_str(b"too big"));
        let x = one(&mut f, ToServer, &sym(b"MSG", b'A', 5, 9, &abort));
        assert_eq!(info(&x).status_code, Some(0x8082_0000));
        assert_eq!(info(&x).service_id, None);
        assert_eq!(x.operation, Operation::Other);
        // Nothing is left over: the next F chunk stands alone.
        let w = one(&mut f, ToServer, &msg(10, &write_request(5)));
        assert!(w.anomalies.is_empty());
    }

    #[test]
    fn chunk_count_is_bounded() {
        let cfg = OpcuaConfig {
            max_chunks_per_message: 2,
            ..OpcuaConfig::default()
        };
        let mut f = OpcuaFlow::new(&cfg);
        let body = write_request(4);
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, &body[..20])).is_empty());
        let p = one(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, &body[20..]));
        assert_eq!(p.anomalies, Anomalies::OUT_OF_SPEC_VALUE);
        assert_eq!(info(&p).service_id, Some(673));
        // The rest of the message is dropped without another event.
        for _ in 0..100 {
            assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, &[0u8; 64])).is_empty());
        }
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'F', 5, 8, &[0u8; 4])).is_empty());
        let w = one(&mut f, ToServer, &msg(10, &write_request(5)));
        assert!(w.anomalies.is_empty());
    }

    /// Basic256Sha256: the OPN is encrypted; a plaintext MSG makes the channel `sign`
    /// (its 32-byte signature is ignored), an unreadable one `sign_and_encrypt`.
    #[test]
    fn security_modes_of_secured_channels() {
        // Not DER: the thumbprint is of the whole field; SHA-1("abc") (FIPS 180-2
        // appendix A.1).
        let mut f = flow();
        let opn_bytes = opn(0, B256, Some(b"abc"), Some(&[0xAB; 20]), &[0x5A; 64]);
        let o = one(&mut f, ToServer, &opn_bytes);
        let oi = info(&o);
        assert!(oi.encrypted);
        assert_eq!(oi.security_mode, "unknown");
        assert_eq!(oi.service_id, None);
        assert_eq!(
            oi.sender_certificate_thumbprint.as_deref(),
            Some("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            oi.receiver_certificate_thumbprint.as_deref(),
            Some("ab".repeat(20).as_str())
        );
        assert!(o.anomalies.is_empty());
        let mut signed = write_request(1);
        signed.extend_from_slice(&[0xEE; 32]);
        let w = one(&mut f, ToServer, &msg(2, &signed));
        assert_eq!(info(&w).security_mode, "sign");
        assert!(!info(&w).encrypted);
        assert_eq!(w.operation, Operation::Write);
        assert_eq!(f.security_mode(), "sign");

        let mut f = flow();
        one(&mut f, ToServer, &opn(0, B256, None, None, &[0x5A; 64]));
        let e = one(&mut f, ToServer, &msg(2, &[0x9C; 80]));
        assert_eq!(info(&e).security_mode, "sign_and_encrypt");
        assert!(info(&e).encrypted);
        assert!(e.anomalies.is_empty());
        // Even bytes that happen to read as a service stay encrypted on this channel.
        let e = one(&mut f, ToClient, &msg(2, &write_response(1)));
        assert!(info(&e).encrypted);
    }

    #[test]
    fn certificate_chain_thumbprint_is_of_the_first() {
        // DER SEQUENCE of 3 bytes "abc" (30 03 61 62 63), then a second one.
        let first = [0x30, 0x03, b'a', b'b', b'c'];
        let mut chain = first.to_vec();
        chain.extend_from_slice(&[0x30, 0x01, 0x00]);
        assert_eq!(thumbprint(&chain), thumbprint(&first));
        assert_ne!(thumbprint(&chain), thumbprint(b"abc"));
        // Long-form length: 30 81 02 xx xx.
        assert_eq!(der_element_len(&[0x30, 0x81, 0x02, 1, 2, 9]), Some(5));
        assert_eq!(der_element_len(&[0x30, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(der_element_len(&[0x30, 0x05, 1]), None);
    }

    #[test]
    fn joined_mid_stream() {
        let mut f = flow();
        // Readable: decoded, mode unknown; the response's request was never seen.
        let w = one(&mut f, ToServer, &msg(2, &write_request(1)));
        assert_eq!(info(&w).security_mode, "unknown");
        assert_eq!(w.operation, Operation::Write);
        let r = one(&mut f, ToClient, &msg(3, &write_response(77)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        assert_eq!(r.operation, Operation::Write);
        // Unreadable: encrypted, no anomaly.
        let e = one(&mut f, ToServer, &msg(4, &[0x9C; 40]));
        assert!(info(&e).encrypted);
        assert!(e.anomalies.is_empty());
    }

    #[test]
    fn bad_input_is_reported_and_framing_regained() {
        // Garbage, then a HEL: one GARBAGE event, then the HEL.
        let mut f = flow();
        let mut bytes = b"\x01\x02garbage bytes!".to_vec();
        bytes.extend(hel(b"opc.tcp://x"));
        let out = feed(&mut f, ToServer, &bytes);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].anomalies, Anomalies::GARBAGE);
        assert_eq!(info(&out[1]).message_type, "HEL");

        // A size lie: MSG of 0xFFFFFFFF bytes. Reported, then resynchronised on the
        // next legal message.
        let mut f = flow();
        let mut bytes = b"MSGF\xFF\xFF\xFF\xFF".to_vec();
        bytes.extend_from_slice(&[0u8; 12]);
        bytes.extend(msg(2, &write_request(1)));
        let out = feed(&mut f, ToServer, &bytes);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(info(&out[0]).message_type, "MSG");
        assert_eq!(out[1].operation, Operation::Write);

        // A HEL whose URL length runs past the chunk: malformed.
        let mut h = hel(b"opc.tcp://x");
        let url_len = 8 + 20;
        h[url_len] = 100;
        let p = one(&mut flow(), ToServer, &h);
        assert_eq!(p.anomalies, Anomalies::MALFORMED);

        // A truncated Write (its node list cut short): malformed, service kept.
        let body = write_request(1);
        let p = one(&mut flow(), ToServer, &msg(2, &body[..body.len() - 3]));
        assert_eq!(p.anomalies, Anomalies::MALFORMED);
        assert_eq!(info(&p).service_id, Some(673));

        // An unknown service on a channel without security (on a flow joined after
        // its OPN it would read as encrypted).
        let mut f = flow();
        one(
            &mut f,
            ToServer,
            &opn(0, NONE, None, None, &opn_request_body(1)),
        );
        let mut unknown = type_id(999);
        unknown.extend(request_header_bytes(1));
        let p = one(&mut f, ToServer, &msg(2, &unknown));
        assert_eq!(p.anomalies, Anomalies::UNKNOWN_FUNCTION);
        assert_eq!(p.operation, Operation::Other);
        assert!(!info(&p).encrypted);

        // A response of another service than its request.
        let mut f = flow();
        one(&mut f, ToServer, &msg(2, &write_request(1)));
        let mut read_resp = type_id(634);
        read_resp.extend(response_header_bytes(1, 0));
        let p = one(&mut f, ToClient, &msg(2, &read_resp));
        assert_eq!(p.anomalies, Anomalies::RESPONSE_MISMATCH);
        assert_eq!(p.operation, Operation::Write);

        // A gap: the partial message is dropped, framing is found again; the bytes
        // skipped are the gap's (RESYNC), not the device's.
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &sym(b"MSG", b'C', 5, 8, &body[..20])).is_empty());
        f.on_gap(ToServer, &mut Vec::new());
        let mut bytes = body[30..].to_vec();
        bytes.extend(msg(9, &write_request(2)));
        let out = feed(&mut f, ToServer, &bytes);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].anomalies, Anomalies::RESYNC);
        assert_eq!(info(&out[1]).request_handle, Some(2));
    }

    #[test]
    fn outstanding_requests_are_bounded() {
        let cfg = OpcuaConfig {
            max_outstanding: 2,
            ..OpcuaConfig::default()
        };
        let mut f = OpcuaFlow::new(&cfg);
        for h in 0..2 {
            assert!(one(&mut f, ToServer, &msg(h, &write_request(h)))
                .anomalies
                .is_empty());
        }
        let p = one(&mut f, ToServer, &msg(2, &write_request(2)));
        assert_eq!(p.anomalies, Anomalies::REQUEST_FLOOD);
        assert_eq!(f.outstanding(), 2);
    }

    /// A chunk larger than the inline bound is decoded from its start and skipped, a
    /// piece at a time, without the caller buffering it.
    #[test]
    fn oversized_chunks_are_streamed() {
        let cfg = OpcuaConfig {
            max_inline_chunk: 256,
            ..OpcuaConfig::default()
        };
        let mut f = OpcuaFlow::new(&cfg);
        let mut body = write_request(1);
        body.extend_from_slice(&[0u8; 1000]);
        let mut bytes = msg(2, &body);
        bytes.extend(msg(3, &write_request(2)));
        let mut out = Vec::new();
        let mut consumed = 0;
        let mut buf: Vec<u8> = Vec::new();
        for piece in bytes.chunks(100) {
            buf.extend_from_slice(piece);
            let n = f.on_data(ToServer, &buf, &mut out);
            consumed += n;
            buf.drain(..n);
            // At most one inline chunk is ever held back.
            assert!(buf.len() <= 256 + 100);
        }
        assert!(buf.is_empty());
        assert_eq!(consumed, bytes.len());
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].anomalies.is_empty());
        assert_eq!(info(&out[0]).nodes.as_ref().map(Vec::len), Some(2));
        assert_eq!(info(&out[1]).request_handle, Some(2));
    }
    /// Drives `f` as the flow layer does (see `drive_stream`); every byte is consumed.
    fn drive(f: &mut OpcuaFlow, dir: Direction, segments: &[&[u8]]) -> Vec<Pdu> {
        let (out, left) = drive_stream(|b, out| f.on_data(dir, b, out), segments);
        assert!(left.is_empty(), "{} bytes left", left.len());
        out
    }

    fn flags(out: &[Pdu]) -> Vec<Anomalies> {
        out.iter().map(|p| p.anomalies).collect()
    }

    /// PublishRequest (Part 4, 5.13.5.2): RequestHeader, SubscriptionAcknowledgements
    /// (null array).
    fn publish_request(handle: u32) -> Vec<u8> {
        let mut v = type_id(826);
        v.extend(request_header_bytes(handle));
        v.extend_from_slice(&(-1i32).to_le_bytes());
        v
    }

    /// PublishResponse: the ResponseHeader is all the pairing reads.
    fn publish_response(handle: u32) -> Vec<u8> {
        let mut v = type_id(829);
        v.extend(response_header_bytes(handle, 0));
        v
    }

    /// A Write (request id 8) in three MSG chunks, C C F (Part 6, 6.7.2.2): each
    /// carries the same request id and a part of the body.
    fn three_chunks() -> [Vec<u8>; 3] {
        let body = write_request(4);
        [
            sym(b"MSG", b'C', 5, 8, &body[..10]),
            sym(b"MSG", b'C', 5, 8, &body[10..40]),
            sym(b"MSG", b'F', 5, 8, &body[40..]),
        ]
    }

    #[test]
    fn after_a_gap_the_rest_of_a_cut_chunk_is_resync() {
        // The first segment of a Write's chunk is lost: its last 40 bytes come, then
        // a whole Write.
        let cut = msg(2, &write_request(1));
        let mut bytes = cut[cut.len() - 40..].to_vec();
        bytes.extend(msg(3, &write_request(2)));
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&bytes]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
        assert_eq!(info(&out[0]).message_type, "garbage");
        assert_eq!(info(&out[1]).request_handle, Some(2));
        // The same bytes without a gap are the device's garbage.
        let out = drive(&mut flow(), ToServer, &[&bytes]);
        assert_eq!(flags(&out), [Anomalies::GARBAGE, Anomalies::empty()]);
        // A gap at a chunk boundary: nothing to report.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&msg(3, &write_request(2))]);
        assert_eq!(flags(&out), [Anomalies::empty()]);
    }

    #[test]
    fn a_gap_explains_no_more_than_the_largest_chunk_of_skipped_bytes() {
        let cfg = OpcuaConfig {
            max_chunk_size: 1024,
            ..OpcuaConfig::default()
        };
        // 3000 bytes that never frame, in 100-byte segments: the first are taken for
        // the rest of a cut chunk, then the stretch is garbage.
        let junk = [0xEE; 100];
        let write = msg(3, &write_request(2));
        let mut segments: Vec<&[u8]> = (0..30).map(|_| &junk[..]).collect();
        segments.push(&write);
        let mut f = OpcuaFlow::new(&cfg);
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &segments);
        assert_eq!(
            flags(&out),
            [Anomalies::RESYNC, Anomalies::GARBAGE, Anomalies::empty()]
        );
        // In one piece longer than a chunk: garbage only.
        let mut f = OpcuaFlow::new(&cfg);
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&[0xEE; 3000], &write]);
        assert_eq!(flags(&out), [Anomalies::GARBAGE, Anomalies::empty()]);
        // Shorter than the largest chunk: the rest of a cut chunk only.
        let mut bytes = vec![0xEE; 1023];
        bytes.extend(msg(3, &write_request(2)));
        let mut f = OpcuaFlow::new(&cfg);
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&bytes]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
    }

    #[test]
    fn a_gap_explains_no_more_skipped_bytes_than_the_negotiated_chunk() {
        // 9000 bytes that never frame, in 100-byte segments.
        let junk = [0xEE; 100];
        let write = msg(3, &write_request(2));
        let answer = msg(3, &write_response(2));
        let gap_then_junk = |f: &mut OpcuaFlow, dir: Direction, then: &[u8]| {
            let mut segments: Vec<&[u8]> = (0..90).map(|_| &junk[..]).collect();
            segments.push(then);
            f.on_gap(dir, &mut Vec::new());
            flags(&drive(f, dir, &segments))
        };
        let explained = [Anomalies::RESYNC, Anomalies::empty()];
        let too_long = [Anomalies::RESYNC, Anomalies::GARBAGE, Anomalies::empty()];
        // Before an Acknowledge, a chunk may be as large as the configured bound.
        let mut f = OpcuaFlow::new(&OpcuaConfig::default());
        assert_eq!(gap_then_junk(&mut f, ToServer, &write), explained);
        // An Acknowledge whose sender receives chunks of up to 8192 octets and sends
        // chunks of up to 65536: no lost chunk to it leaves 9000, one from it may.
        let ack = |receive: u32, send: u32| {
            let mut b = Vec::new();
            for v in [0u32, receive, send, 4 << 20, 16] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            chunk(b"ACK", b'F', &b)
        };
        let negotiated = |ack_dir: Direction| {
            let mut f = OpcuaFlow::new(&OpcuaConfig::default());
            drive(&mut f, ack_dir.reverse(), &[&hel(b"opc.tcp://plc:4840")]);
            drive(&mut f, ack_dir, &[&ack(8192, 65536)]);
            f
        };
        let mut f = negotiated(ToClient);
        assert_eq!(gap_then_junk(&mut f, ToServer, &write), too_long);
        let mut f = negotiated(ToClient);
        drive(&mut f, ToServer, &[&write]);
        assert_eq!(gap_then_junk(&mut f, ToClient, &answer), explained);
        // The same Acknowledge the other way (a client that listens, reverse
        // connect, taken for the server): the bounds follow the message.
        let mut f = negotiated(ToServer);
        drive(&mut f, ToServer, &[&write]);
        assert_eq!(gap_then_junk(&mut f, ToClient, &answer), too_long);
        let mut f = negotiated(ToServer);
        assert_eq!(gap_then_junk(&mut f, ToServer, &write), explained);
    }

    #[test]
    fn after_a_gap_a_message_whose_first_chunks_were_lost_is_discarded() {
        // A channel with policy None: bodies are decoded.
        let flow = || {
            let mut f = flow();
            one(
                &mut f,
                ToServer,
                &opn(0, NONE, None, None, &opn_request_body(1)),
            );
            one(
                &mut f,
                ToClient,
                &opn(5, NONE, None, None, &opn_response_body(1, 5, 9)),
            );
            f
        };
        let [c1, c2, c3] = three_chunks();
        let next = msg(10, &write_request(5));
        let clean_write = |out: &[Pdu]| {
            let w = out.last().filter(|p| p.anomalies.is_empty());
            w.and_then(|p| info(p).request_handle) == Some(5)
        };
        // Chunk 1 lost: chunks 2 and 3 are not a message.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&c2, &c3, &next]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
        assert!(clean_write(&out), "{out:?}");
        // Chunk 2 lost: chunk 1 is dropped at the gap, chunk 3 is not a message.
        let mut f = flow();
        assert!(feed(&mut f, ToServer, &c1).is_empty());
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&c3, &next]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
        assert!(clean_write(&out), "{out:?}");
        // The first segment of chunk 1 lost: its rest is skipped, chunks 2 and 3 are
        // discarded, one event for the stretch.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let rest = &c1[c1.len() - 6..];
        let out = drive(&mut f, ToServer, &[rest, &c2, &c3, &next]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
        assert!(clean_write(&out), "{out:?}");
        // A whole message of three chunks after a gap is reassembled as usual.
        let mut f = flow();
        f.on_gap(ToServer, &mut Vec::new());
        let out = drive(&mut f, ToServer, &[&c1, &c2, &c3]);
        assert_eq!(flags(&out), [Anomalies::empty()]);
        assert_eq!(info(&out[0]).nodes.as_ref().map(Vec::len), Some(2));
        // Without a gap, chunks without their start are the device's: reported as
        // what they decode to.
        let out = drive(&mut flow(), ToServer, &[&c2, &c3]);
        assert_eq!(flags(&out), [Anomalies::UNKNOWN_FUNCTION]);
    }

    #[test]
    fn a_response_whose_request_a_gap_took_is_flagged_resync_until_pairing_resumes() {
        let mut f = flow();
        one(&mut f, ToServer, &msg(1, &write_request(1)));
        one(&mut f, ToClient, &msg(1, &write_response(1)));
        // Request 2 is lost in a gap; its answer finds no request, for that reason.
        f.on_gap(ToServer, &mut Vec::new());
        let r = one(&mut f, ToClient, &msg(2, &write_response(2)));
        assert_eq!(
            r.anomalies,
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // Pairing resumes; a later unmatched answer has no loss to explain it.
        one(&mut f, ToServer, &msg(3, &write_request(3)));
        assert!(one(&mut f, ToClient, &msg(3, &write_response(3)))
            .anomalies
            .is_empty());
        let r = one(&mut f, ToClient, &msg(9, &write_response(9)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn after_a_gap_in_the_requests_older_answers_do_not_end_the_loss() {
        let mut f = flow();
        one(&mut f, ToServer, &msg(1, &write_request(1)));
        // Request 2 is lost; requests 3 and 4 are seen; the answers come after.
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToServer, &msg(3, &write_request(3)));
        one(&mut f, ToServer, &msg(4, &write_request(4)));
        let answer = |f: &mut OpcuaFlow, h| one(f, ToClient, &msg(h, &write_response(h))).anomalies;
        // The answer to request 1, sent before the gap, pairs; request 2's finds
        // none, for the loss.
        assert!(answer(&mut f, 1).is_empty());
        assert_eq!(
            answer(&mut f, 2),
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // Request 3 was sent after the gap: its answer ends the loss.
        assert!(answer(&mut f, 3).is_empty());
        assert_eq!(answer(&mut f, 9), Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_prompt_answer_does_not_end_the_loss_of_a_publish_request() {
        // Publish 2 is lost in a gap in the requests, with Publish 1 waiting at the
        // server. A Write sent after the gap is answered at once: pairing of Writes
        // has resumed, but the server still owes Publish answers, so the unmatched
        // answer to Publish 2 that comes later is still the capture's loss.
        let mut f = flow();
        one(&mut f, ToServer, &msg(1, &publish_request(1)));
        f.on_gap(ToServer, &mut Vec::new());
        one(&mut f, ToServer, &msg(3, &write_request(3)));
        assert!(one(&mut f, ToClient, &msg(3, &write_response(3)))
            .anomalies
            .is_empty());
        let r = one(&mut f, ToClient, &msg(1, &publish_response(1)));
        assert!(r.anomalies.is_empty(), "{r:?}");
        let r = one(&mut f, ToClient, &msg(2, &publish_response(2)));
        assert_eq!(
            r.anomalies,
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // An unmatched Write answer has no loss left to explain it.
        let r = one(&mut f, ToClient, &msg(9, &write_response(9)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // Once a Publish sent after the gap is answered, Publish pairing has resumed.
        one(&mut f, ToServer, &msg(4, &publish_request(4)));
        assert!(one(&mut f, ToClient, &msg(4, &publish_response(4)))
            .anomalies
            .is_empty());
        let r = one(&mut f, ToClient, &msg(5, &publish_response(5)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn requests_whose_answers_a_gap_took_are_forgotten() {
        let mut f = flow();
        // Three Publish requests wait at the server throughout.
        for h in 1..=3 {
            one(&mut f, ToServer, &msg(h, &publish_request(h)));
        }
        // Over a long capture, 200 answers are lost (more than the table holds), one
        // gap each, between answered Writes: no request is left waiting for them, none
        // is reported as a flood.
        for h in 100..300 {
            assert!(one(&mut f, ToServer, &msg(h, &write_request(h)))
                .anomalies
                .is_empty());
            // The next request goes out before the gap in the answers is known.
            let q = one(&mut f, ToServer, &msg(h, &write_request(h + 1000)));
            assert!(q.anomalies.is_empty(), "{q:?}");
            f.on_gap(ToClient, &mut Vec::new());
            // Its answer still pairs, with the request's operation.
            let r = one(&mut f, ToClient, &msg(h, &write_response(h + 1000)));
            assert!(r.anomalies.is_empty(), "{r:?}");
            assert_eq!(r.operation, Operation::Write);
            assert_eq!(f.outstanding(), 3);
        }
        // The Publish requests, older than every answered Write, still pair.
        for h in 1..=3 {
            let r = one(&mut f, ToClient, &msg(h, &publish_response(h)));
            assert!(r.anomalies.is_empty(), "{r:?}");
        }
        assert_eq!(f.outstanding(), 0);
        // A lost Publish answer: the older Publish goes once a newer one is answered.
        one(&mut f, ToServer, &msg(4, &publish_request(4)));
        one(&mut f, ToServer, &msg(5, &publish_request(5)));
        f.on_gap(ToClient, &mut Vec::new());
        assert!(one(&mut f, ToClient, &msg(5, &publish_response(5)))
            .anomalies
            .is_empty());
        assert_eq!(f.outstanding(), 0);
        // Without a gap, a request answered out of order leaves the older waiting.
        one(&mut f, ToServer, &msg(6, &write_request(6)));
        one(&mut f, ToServer, &msg(7, &write_request(7)));
        one(&mut f, ToClient, &msg(7, &write_response(7)));
        assert_eq!(f.outstanding(), 1);
    }

    #[test]
    fn a_segment_acknowledging_unseen_requests_explains_its_own_unmatched_answers() {
        let mut f = flow();
        f.on_unseen_acked(ToServer);
        let r = one(&mut f, ToClient, &msg(2, &write_response(2)));
        assert_eq!(
            r.anomalies,
            Anomalies::UNMATCHED_RESPONSE | Anomalies::RESYNC
        );
        // The next segment carries no such evidence.
        let r = one(&mut f, ToClient, &msg(3, &write_response(3)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
        // Unseen responses say nothing about the requests of answers.
        f.on_unseen_acked(ToClient);
        let r = one(&mut f, ToClient, &msg(4, &write_response(4)));
        assert_eq!(r.anomalies, Anomalies::UNMATCHED_RESPONSE);
    }

    #[test]
    fn a_segment_acknowledging_unseen_answers_is_no_flood() {
        let cfg = OpcuaConfig {
            max_outstanding: 2,
            ..OpcuaConfig::default()
        };
        let mut f = OpcuaFlow::new(&cfg);
        // A Publish waits at the server; a Write's answer is lost, unseen.
        one(&mut f, ToServer, &msg(1, &publish_request(1)));
        one(&mut f, ToServer, &msg(2, &write_request(2)));
        // The next request's segment acknowledges answers the sensor did not see:
        // the full table is no flood, and the Write, not the Publish, makes room.
        f.on_unseen_acked(ToClient);
        let q = one(&mut f, ToServer, &msg(3, &write_request(3)));
        assert!(q.anomalies.is_empty(), "{q:?}");
        assert!(one(&mut f, ToClient, &msg(1, &publish_response(1)))
            .anomalies
            .is_empty());
        // Only that segment's requests: later, a full table is a flood again.
        one(&mut f, ToServer, &msg(4, &write_request(4)));
        let q = one(&mut f, ToServer, &msg(5, &write_request(5)));
        assert_eq!(q.anomalies, Anomalies::REQUEST_FLOOD);
        // Unseen requests say nothing about the table.
        f.on_unseen_acked(ToServer);
        let q = one(&mut f, ToServer, &msg(6, &write_request(6)));
        assert_eq!(q.anomalies, Anomalies::REQUEST_FLOOD);
    }

    #[test]
    fn a_flow_joined_mid_stream_explains_the_cut_chunk_at_its_start_only() {
        // The sensor joined in the middle of a Write: its last 40 bytes, then a Write.
        let cut = msg(2, &write_request(1));
        let mut start = cut[cut.len() - 40..].to_vec();
        start.extend(msg(3, &write_request(2)));
        let mut f = flow().joined_mid_stream();
        let out = drive(&mut f, ToServer, &[&start]);
        assert_eq!(flags(&out), [Anomalies::RESYNC, Anomalies::empty()]);
        // Later, bytes that do not frame are the device's.
        let out = drive(&mut f, ToServer, &[&start]);
        assert_eq!(flags(&out), [Anomalies::GARBAGE, Anomalies::empty()]);
        // A flow whose start was seen: garbage from the first byte.
        let out = drive(&mut flow(), ToServer, &[&start]);
        assert_eq!(flags(&out), [Anomalies::GARBAGE, Anomalies::empty()]);
        // The first chunk frames as leniently as before: a MSG with no OPN seen.
        let mut f = flow().joined_mid_stream();
        let w = one(&mut f, ToServer, &msg(2, &write_request(1)));
        assert!(w.anomalies.is_empty());
        assert_eq!(w.operation, Operation::Write);
    }
    #[test]
    fn a_request_whose_answer_a_gap_may_have_taken_leaves_no_flood() {
        // Writes 1 and 2 are outstanding when a gap in the answers is declared; the
        // server answers 1 after it (out of order: the gap held the answer to 2).
        // Write 2 then waits for nothing, and when the table is full it is the one
        // evicted, without a flood. The next eviction, of a request sent after the
        // gap, is one.
        let mut f = OpcuaFlow::new(&OpcuaConfig {
            max_outstanding: 3,
            ..OpcuaConfig::default()
        });
        let mut write = |h: u32| one(&mut f, ToServer, &msg(h, &write_request(h))).anomalies;
        assert!(write(1).is_empty());
        assert!(write(2).is_empty());
        f.on_gap(ToClient, &mut Vec::new());
        let r = one(&mut f, ToClient, &msg(1, &write_response(1)));
        assert!(r.anomalies.is_empty(), "{r:?}");
        let mut write = |h: u32| one(&mut f, ToServer, &msg(h, &write_request(h))).anomalies;
        assert!(write(3).is_empty());
        assert!(write(4).is_empty());
        assert!(write(5).is_empty(), "write 2 made room");
        assert_eq!(write(6), Anomalies::REQUEST_FLOOD, "write 3 did");
        // Write 2 is gone; 4, 5 and 6 still pair.
        for h in [4, 5, 6] {
            let r = one(&mut f, ToClient, &msg(h, &write_response(h)));
            assert!(r.anomalies.is_empty(), "{h}: {r:?}");
        }
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn answers_lost_one_by_one_make_no_flood() {
        // 140 Writes, each answer of the first 135 lost (more than the 128 requests the
        // table holds). The TCP layer cannot see a hole until an answer arrives: until
        // then each request comes in a segment acknowledging the unseen answers; the
        // first answer seen reveals the gap.
        let mut f = flow();
        let mut out = Vec::new();
        for h in 0..140 {
            if h > 0 && h <= 135 {
                // Each acknowledges one more lost answer than the last.
                f.on_acked_beyond(ToClient);
                f.on_unseen_acked(ToClient);
            }
            out.push(one(&mut f, ToServer, &msg(h, &write_request(h))));
            if h == 135 {
                f.on_gap(ToClient, &mut Vec::new());
            }
            if h >= 135 {
                out.push(one(&mut f, ToClient, &msg(h, &write_response(h))));
            }
        }
        assert!(out.iter().all(|p| p.anomalies.is_empty()), "{out:?}");
        assert_eq!(f.outstanding(), 0);
    }

    #[test]
    fn requests_sent_after_a_loss_in_the_answers_wait_for_their_own() {
        // As the flow layer calls: the answer to Write 1 is lost; Writes 2 and 3 come
        // in segments that acknowledge it (the first further than before); the
        // server answers 3 before 2, and the gap is declared only when the answer to
        // 3, held behind the hole, is acknowledged.
        let mut f = flow();
        let mut out = vec![one(&mut f, ToServer, &msg(1, &write_request(1)))];
        f.on_acked_beyond(ToClient);
        out.push(one(&mut f, ToServer, &msg(2, &write_request(2))));
        out.push(one(&mut f, ToServer, &msg(3, &write_request(3))));
        f.on_gap(ToClient, &mut Vec::new());
        out.push(one(&mut f, ToClient, &msg(3, &write_response(3))));
        // Write 1 went with the gap, Write 2 did not.
        assert_eq!(f.outstanding(), 1);
        out.push(one(&mut f, ToClient, &msg(2, &write_response(2))));
        assert!(out.iter().all(|p| p.anomalies.is_empty()), "{out:?}");
        assert_eq!(f.outstanding(), 0);
    }
}
