//! OPC UA binary over UA TCP (OPC 10000-6), each message built together with the event
//! otwatch must report for it.
//!
//! Layouts (Part 6): every UA TCP message starts with a message type (3 ASCII octets:
//! `HEL`, `ACK`, `OPN`, `MSG`, `CLO`), a chunk type (`F` final, `C` intermediate) and the
//! message size (u32, the whole chunk). HEL carries the protocol version, receive and
//! send buffer sizes, maximum message size and chunk count and the endpoint URL; ACK the
//! same without the URL (7.1.2). OPN carries the secure channel id and the asymmetric
//! security header (security policy URI, sender certificate, receiver certificate
//! thumbprint); MSG and CLO the secure channel id and the symmetric security header
//! (token id) (6.7.2). Then the sequence header (sequence number, request id) and the
//! body: the service's binary-encoding NodeId and its fields (5.2). All integers are
//! little-endian; Strings and ByteStrings are an i32 length (-1: null) and the octets;
//! NodeIds use the two-octet (0x00), four-octet (0x01), numeric (0x02) or string (0x03)
//! encodings.
//!
//! With a security policy other than None, OPN bodies are encrypted; in mode
//! SignAndEncrypt so are MSG and CLO bodies (from the sequence header on), in mode Sign
//! they are readable and followed by a signature. The generator writes opaque
//! pseudo-random octets where a real peer's ciphertext would be.

use std::fmt::Write as _;

use super::dnp3::{json_f64, Carrier};
use super::expect::{json_str, sha1, ExpPdu};
use super::modbus::Dir;
use super::tcp::{Capture, Side};

/// The OPC UA TCP port.
pub const PORT: u16 = 4840;

pub const POLICY_NONE: &str = "http://opcfoundation.org/UA/SecurityPolicy#None";
pub const POLICY_BASIC256SHA256: &str = "http://opcfoundation.org/UA/SecurityPolicy#Basic256Sha256";

/// Binary-encoding NodeIds (namespace 0) of the services used here; a response is its
/// request + 3.
pub mod svc {
    pub const OPEN_SECURE_CHANNEL: u32 = 446;
    pub const CLOSE_SECURE_CHANNEL: u32 = 452;
    pub const CREATE_SESSION: u32 = 461;
    pub const ACTIVATE_SESSION: u32 = 467;
    pub const CLOSE_SESSION: u32 = 473;
    pub const READ: u32 = 631;
    pub const WRITE: u32 = 673;
    pub const CALL: u32 = 712;
    /// Identity tokens (ExtensionObject type ids).
    pub const ANONYMOUS_IDENTITY_TOKEN: u32 = 321;
    pub const USER_NAME_IDENTITY_TOKEN: u32 = 324;
}

/// The Value attribute.
pub const VALUE_ATTRIBUTE: u32 = 13;

/// A NodeId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeId {
    Numeric(u16, u32),
    String(u16, String),
}

impl NodeId {
    /// `ns=<ns>;s=<name>`.
    pub fn s(ns: u16, name: &str) -> Self {
        NodeId::String(ns, name.to_owned())
    }

    /// The binary encoding, the most compact that fits (Part 6, 5.2.2.9).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            NodeId::Numeric(0, id) if *id < 256 => out.extend_from_slice(&[0x00, *id as u8]),
            NodeId::Numeric(ns, id) if *ns < 256 && *id < 65536 => {
                out.extend_from_slice(&[0x01, *ns as u8]);
                out.extend_from_slice(&(*id as u16).to_le_bytes());
            }
            NodeId::Numeric(ns, id) => {
                out.push(0x02);
                out.extend_from_slice(&ns.to_le_bytes());
                out.extend_from_slice(&id.to_le_bytes());
            }
            NodeId::String(ns, s) => {
                out.push(0x03);
                out.extend_from_slice(&ns.to_le_bytes());
                string(out, Some(s));
            }
        }
    }

    /// The canonical string form (namespace 0 left out).
    pub fn canonical(&self) -> String {
        let (ns, id) = match self {
            NodeId::Numeric(ns, id) => (*ns, format!("i={id}")),
            NodeId::String(ns, s) => (*ns, format!("s={s}")),
        };
        if ns == 0 {
            id
        } else {
            format!("ns={ns};{id}")
        }
    }
}

/// A String (or a ByteString): i32 length, -1 for null, then the octets.
fn bytes(out: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => {
            out.extend_from_slice(&(b.len() as i32).to_le_bytes());
            out.extend_from_slice(b);
        }
        None => out.extend_from_slice(&(-1i32).to_le_bytes()),
    }
}

fn string(out: &mut Vec<u8>, v: Option<&str>) {
    bytes(out, v.map(str::as_bytes));
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A UA DateTime: 100 ns ticks since 1601-01-01 UTC, from µs since 1970.
pub fn date_time(unix_micros: u64) -> i64 {
    (unix_micros * 10 + 116_444_736_000_000_000) as i64
}

/// A written value (a Variant of a numeric or boolean built-in type).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Double(f64),
    Boolean(bool),
}

impl Value {
    /// Variant: the built-in type id (1 Boolean, 11 Double), then the value.
    fn variant(&self, out: &mut Vec<u8>) {
        match self {
            Value::Boolean(b) => out.extend_from_slice(&[1, u8::from(*b)]),
            Value::Double(d) => {
                out.push(11);
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
    }

    fn json(&self) -> String {
        match self {
            Value::Boolean(b) => b.to_string(),
            Value::Double(d) => json_f64(*d),
        }
    }
}

/// One node of an expected event.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeExp {
    pub node_id: String,
    pub attribute_id: Option<u32>,
    pub value: Option<Value>,
    pub method: Option<String>,
}

/// The `direction`, `operation` and `opcua` block of one expected event. `None`
/// fields are not listed (not compared) unless said otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct UaExp {
    pub dir: Dir,
    pub operation: Option<&'static str>,
    pub message_type: &'static str,
    pub security_mode: Option<&'static str>,
    pub encrypted: bool,
    pub secure_channel_id: Option<u32>,
    pub token_id: Option<u32>,
    pub security_policy: Option<&'static str>,
    pub sender_certificate_thumbprint: Option<String>,
    pub receiver_certificate_thumbprint: Option<String>,
    pub endpoint_url: Option<String>,
    /// HEL/ACK: receive and send buffer sizes, max message size, max chunk count.
    pub limits: Option<[u32; 4]>,
    pub status_code: Option<u32>,
    pub request_handle: Option<u32>,
    /// `Some(None)`: listed as `null` (an encrypted body: no service decoded).
    pub service_id: Option<Option<u32>>,
    pub nodes: Option<Vec<NodeExp>>,
    pub token_type: Option<&'static str>,
    /// `Some(None)`: listed as `null` (an anonymous session presents no user).
    pub user: Option<Option<String>>,
    /// CreateSession: application URI, product URI, application name.
    pub application: Option<[String; 3]>,
}

impl UaExp {
    fn new(dir: Dir, message_type: &'static str) -> Self {
        UaExp {
            dir,
            operation: None,
            message_type,
            security_mode: None,
            encrypted: false,
            secure_channel_id: None,
            token_id: None,
            security_policy: None,
            sender_certificate_thumbprint: None,
            receiver_certificate_thumbprint: None,
            endpoint_url: None,
            limits: None,
            status_code: None,
            request_handle: None,
            service_id: None,
            nodes: None,
            token_type: None,
            user: None,
            application: None,
        }
    }

    /// `"opcua":{...}`, keys in a fixed order.
    pub fn json_block(&self) -> String {
        let mut s = format!("\"opcua\":{{\"message_type\":\"{}\"", self.message_type);
        if let Some(m) = self.security_mode {
            let _ = write!(s, ",\"security_mode\":\"{m}\"");
        }
        let _ = write!(s, ",\"encrypted\":{}", self.encrypted);
        for (k, v) in [
            ("secure_channel_id", self.secure_channel_id),
            ("token_id", self.token_id),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        if let Some(p) = self.security_policy {
            let _ = write!(s, ",\"security_policy\":{}", json_str(p));
        }
        for (k, v) in [
            (
                "sender_certificate_thumbprint",
                &self.sender_certificate_thumbprint,
            ),
            (
                "receiver_certificate_thumbprint",
                &self.receiver_certificate_thumbprint,
            ),
            ("endpoint_url", &self.endpoint_url),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{}", json_str(v));
            }
        }
        if let Some([r, sb, m, c]) = self.limits {
            let _ = write!(
                s,
                ",\"receive_buffer_size\":{r},\"send_buffer_size\":{sb},\
                 \"max_message_size\":{m},\"max_chunk_count\":{c}"
            );
        }
        for (k, v) in [
            ("status_code", self.status_code),
            ("request_handle", self.request_handle),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        match self.service_id {
            Some(Some(id)) => {
                let _ = write!(s, ",\"service_id\":{id}");
            }
            Some(None) => s.push_str(",\"service_id\":null"),
            None => {}
        }
        if let Some(nodes) = &self.nodes {
            let list: Vec<String> = nodes.iter().map(node_json).collect();
            let _ = write!(s, ",\"nodes\":[{}]", list.join(","));
        }
        if let Some(t) = self.token_type {
            let _ = write!(s, ",\"token_type\":\"{t}\"");
        }
        match &self.user {
            Some(Some(u)) => {
                let _ = write!(s, ",\"user\":{}", json_str(u));
            }
            Some(None) => s.push_str(",\"user\":null"),
            None => {}
        }
        if let Some([uri, product, name]) = &self.application {
            let _ = write!(
                s,
                ",\"application\":{{\"application_uri\":{},\"product_uri\":{},\
                 \"application_name\":{}}}",
                json_str(uri),
                json_str(product),
                json_str(name)
            );
        }
        s.push('}');
        s
    }
}

fn node_json(n: &NodeExp) -> String {
    let mut s = format!("{{\"node_id\":{}", json_str(&n.node_id));
    if let Some(a) = n.attribute_id {
        let _ = write!(s, ",\"attribute_id\":{a}");
    }
    if let Some(v) = &n.value {
        let _ = write!(s, ",\"value\":{}", v.json());
    }
    if let Some(m) = &n.method {
        let _ = write!(s, ",\"method\":{}", json_str(m));
    }
    s.push('}');
    s
}

/// One UA TCP message (all its chunks) and the event it must produce.
#[derive(Debug, Clone, PartialEq)]
pub struct UaMsg {
    /// The chunks, each a complete UA TCP chunk with its header.
    pub chunks: Vec<Vec<u8>>,
    pub exp: UaExp,
}

/// A chunk: message type, chunk type, size, the rest.
fn chunk(message_type: &[u8; 3], chunk_type: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = message_type.to_vec();
    v.push(chunk_type);
    u32le(&mut v, (8 + rest.len()) as u32);
    v.extend_from_slice(rest);
    v
}

/// Deterministic pseudo-random octets (a 32-bit xorshift seeded by `seed`): where a
/// real peer sends ciphertext, a nonce or a certificate.
pub fn opaque(seed: u32, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// HEL from the client.
pub fn hello(endpoint: &str, limits: [u32; 4]) -> UaMsg {
    let mut r = Vec::new();
    u32le(&mut r, 0); // protocol version
    for l in limits {
        u32le(&mut r, l);
    }
    string(&mut r, Some(endpoint));
    let mut exp = UaExp::new(Dir::ToServer, "HEL");
    exp.endpoint_url = Some(endpoint.to_owned());
    exp.limits = Some(limits);
    UaMsg {
        chunks: vec![chunk(b"HEL", b'F', &r)],
        exp,
    }
}

/// ACK from the server.
pub fn acknowledge(limits: [u32; 4]) -> UaMsg {
    let mut r = Vec::new();
    u32le(&mut r, 0);
    for l in limits {
        u32le(&mut r, l);
    }
    let mut exp = UaExp::new(Dir::ToClient, "ACK");
    exp.limits = Some(limits);
    UaMsg {
        chunks: vec![chunk(b"ACK", b'F', &r)],
        exp,
    }
}

/// The security of a secure channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    None,
    Sign,
    SignAndEncrypt,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Sign => "sign",
            Mode::SignAndEncrypt => "sign_and_encrypt",
        }
    }

    /// MessageSecurityMode enumeration value.
    fn wire(self) -> u32 {
        match self {
            Mode::None => 1,
            Mode::Sign => 2,
            Mode::SignAndEncrypt => 3,
        }
    }
}

/// Length of a Basic256Sha256 symmetric signature (HMAC-SHA256).
const SIGNATURE_LEN: usize = 32;

/// A secure channel and the session over it, as both ends keep them: ids, sequence
/// numbers, request ids and handles, the session's authentication token.
#[derive(Debug, Clone)]
pub struct Channel {
    pub mode: Mode,
    pub channel_id: u32,
    pub token_id: u32,
    /// The certificates of client and server (non-None policies).
    client_cert: Vec<u8>,
    server_cert: Vec<u8>,
    client_seq: u32,
    server_seq: u32,
    next_request_id: u32,
    next_handle: u32,
    auth_token: NodeId,
    /// Pseudo-random seed for the opaque parts.
    seed: u32,
    /// Packet time of the current message (for UA timestamps).
    pub now: u64,
}

/// A request as built, before it is framed: its body and its event.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Vec<u8>,
    pub request_id: u32,
    pub exp: UaExp,
}

impl Channel {
    /// A channel with security `mode` (policy None for `Mode::None`, Basic256Sha256
    /// otherwise), server-assigned id `channel_id` and token `token_id`.
    pub fn new(mode: Mode, channel_id: u32, token_id: u32, seed: u32) -> Self {
        let secure = mode != Mode::None;
        Channel {
            mode,
            channel_id,
            token_id,
            client_cert: if secure {
                certificate(seed ^ 0x1111, "urn:otwatch-lab:client")
            } else {
                vec![]
            },
            server_cert: if secure {
                certificate(seed ^ 0x2222, "urn:plc-boiler-1:server")
            } else {
                vec![]
            },
            client_seq: 51,
            server_seq: 71,
            next_request_id: 1,
            next_handle: 1,
            auth_token: NodeId::Numeric(0, 0),
            seed,
            now: 0,
        }
    }

    fn policy(&self) -> &'static str {
        if self.mode == Mode::None {
            POLICY_NONE
        } else {
            POLICY_BASIC256SHA256
        }
    }

    fn next_seed(&mut self) -> u32 {
        self.seed = self
            .seed
            .wrapping_mul(0x0001_0dcd)
            .wrapping_add(0x3c6e_f35f);
        self.seed
    }

    /// A RequestHeader (Part 4, 7.32): authentication token, timestamp, request
    /// handle, return diagnostics 0, no audit entry id, timeout hint 10 s, no
    /// additional header.
    fn request_header(&mut self, out: &mut Vec<u8>) -> u32 {
        let handle = self.next_handle;
        self.next_handle += 1;
        self.auth_token.encode(out);
        out.extend_from_slice(&date_time(self.now).to_le_bytes());
        u32le(out, handle);
        u32le(out, 0);
        string(out, None);
        u32le(out, 10_000);
        out.extend_from_slice(&[0x00, 0x00, 0x00]);
        handle
    }

    /// A request of service `service` with fields `fields` (after the header).
    pub fn request(&mut self, service: u32, operation: &'static str, fields: &[u8]) -> Request {
        let mut body = Vec::new();
        NodeId::Numeric(0, service).encode(&mut body);
        let handle = self.request_header(&mut body);
        body.extend_from_slice(fields);
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let mut exp = UaExp::new(Dir::ToServer, "MSG");
        exp.operation = Some(operation);
        exp.request_handle = Some(handle);
        exp.service_id = Some(Some(service));
        Request {
            body,
            request_id,
            exp,
        }
    }

    /// The response to `req` (service id + 3): ResponseHeader (timestamp, the request
    /// handle, service result Good, no diagnostics, empty string table, no additional
    /// header), then `fields`.
    pub fn response(&mut self, req: &Request, fields: &[u8]) -> Request {
        let service = req.exp.service_id.flatten().unwrap_or(0) + 3;
        let mut body = Vec::new();
        NodeId::Numeric(0, service).encode(&mut body);
        body.extend_from_slice(&date_time(self.now).to_le_bytes());
        u32le(&mut body, req.exp.request_handle.unwrap_or(0));
        u32le(&mut body, 0); // Good
        body.push(0x00); // no diagnostic info
        u32le(&mut body, 0); // string table: empty
        body.extend_from_slice(&[0x00, 0x00, 0x00]);
        body.extend_from_slice(fields);
        let mut exp = req.exp.clone();
        exp.dir = Dir::ToClient;
        exp.service_id = Some(Some(service));
        exp.status_code = Some(0);
        // What the request named is not on the response's wire.
        exp.nodes = None;
        exp.token_type = None;
        exp.user = None;
        exp.application = None;
        Request {
            body,
            request_id: req.request_id,
            exp,
        }
    }

    /// Frames a MSG (or CLO) body into chunks of at most `max_body` body octets:
    /// secure channel id, token id, then per chunk its sequence header and its part of
    /// the body (with a signature after it in mode Sign; all opaque in SignAndEncrypt).
    pub fn frame(&mut self, message_type: &[u8; 3], r: &Request, max_body: usize) -> UaMsg {
        let from_client = r.exp.dir == Dir::ToServer;
        let parts: Vec<&[u8]> = r.body.chunks(max_body.max(1)).collect();
        let n = parts.len();
        let mut chunks = Vec::with_capacity(n);
        for (i, part) in parts.iter().enumerate() {
            let seq = if from_client {
                &mut self.client_seq
            } else {
                &mut self.server_seq
            };
            let s = *seq;
            *seq += 1;
            let mut rest = Vec::new();
            u32le(&mut rest, self.channel_id);
            u32le(&mut rest, self.token_id);
            let mut plain = Vec::new();
            u32le(&mut plain, s);
            u32le(&mut plain, r.request_id);
            plain.extend_from_slice(part);
            match self.mode {
                Mode::None => rest.extend_from_slice(&plain),
                Mode::Sign => {
                    rest.extend_from_slice(&plain);
                    let sig = opaque(self.next_seed(), SIGNATURE_LEN);
                    rest.extend_from_slice(&sig);
                }
                Mode::SignAndEncrypt => {
                    // Ciphertext: the plaintext, padding and signature, in AES blocks
                    // of 16 octets. The octet where a NodeId's encoding would be is
                    // not a valid encoding, as random ciphertext mostly is not.
                    let len = (plain.len() + 1 + SIGNATURE_LEN).div_ceil(16) * 16;
                    let mut c = opaque(self.next_seed(), len);
                    if let Some(b) = c.get_mut(8) {
                        *b = 0xa7;
                    }
                    rest.extend_from_slice(&c);
                }
            }
            let ct = if i + 1 == n { b'F' } else { b'C' };
            chunks.push(chunk(message_type, ct, &rest));
        }
        let mut exp = r.exp.clone();
        exp.message_type = if message_type == b"CLO" { "CLO" } else { "MSG" };
        exp.security_mode = Some(self.mode.name());
        exp.secure_channel_id = Some(self.channel_id);
        exp.token_id = Some(self.token_id);
        if self.mode == Mode::SignAndEncrypt {
            exp = UaExp {
                dir: exp.dir,
                encrypted: true,
                secure_channel_id: exp.secure_channel_id,
                token_id: exp.token_id,
                security_mode: exp.security_mode,
                service_id: Some(None),
                ..UaExp::new(exp.dir, exp.message_type)
            };
        }
        UaMsg { chunks, exp }
    }

    /// OPN request (OpenSecureChannelRequest: protocol version 0, issue, the mode, a
    /// nonce, lifetime 1 h) and the server's answer (the channel id and token). With a
    /// policy other than None both bodies are ciphertext.
    pub fn open(&mut self) -> (UaMsg, UaMsg) {
        let secure = self.mode != Mode::None;
        // The request.
        let mut f = Vec::new();
        u32le(&mut f, 0);
        u32le(&mut f, 0); // issue
        u32le(&mut f, self.mode.wire());
        let nonce = if secure {
            Some(opaque(self.next_seed(), 32))
        } else {
            None
        };
        bytes(&mut f, nonce.as_deref());
        u32le(&mut f, 3_600_000);
        let req = self.request(svc::OPEN_SECURE_CHANNEL, "other", &f);
        let q = self.frame_open(&req, true);
        // The answer.
        let mut f = Vec::new();
        u32le(&mut f, 0);
        u32le(&mut f, self.channel_id);
        u32le(&mut f, self.token_id);
        f.extend_from_slice(&date_time(self.now).to_le_bytes());
        u32le(&mut f, 3_600_000);
        let nonce = if secure {
            Some(opaque(self.next_seed(), 32))
        } else {
            None
        };
        bytes(&mut f, nonce.as_deref());
        let rsp = self.response(&req, &f);
        let a = self.frame_open(&rsp, false);
        (q, a)
    }

    /// An OPN chunk: secure channel id (0 from the client, which has none yet), the
    /// asymmetric security header, the sequence header and the body (ciphertext with a
    /// signature when the policy is not None).
    fn frame_open(&mut self, r: &Request, from_client: bool) -> UaMsg {
        let secure = self.mode != Mode::None;
        let id = if from_client { 0 } else { self.channel_id };
        let (own, other) = if from_client {
            (&self.client_cert, &self.server_cert)
        } else {
            (&self.server_cert, &self.client_cert)
        };
        let own_cert = own.clone();
        let thumb = sha1(other);
        let mut rest = Vec::new();
        u32le(&mut rest, id);
        string(&mut rest, Some(self.policy()));
        bytes(&mut rest, secure.then_some(own_cert.as_slice()));
        bytes(&mut rest, secure.then_some(&thumb[..]));
        let seq = if from_client {
            &mut self.client_seq
        } else {
            &mut self.server_seq
        };
        let mut plain = Vec::new();
        u32le(&mut plain, *seq);
        *seq += 1;
        u32le(&mut plain, r.request_id);
        plain.extend_from_slice(&r.body);
        let mut exp = UaExp::new(r.exp.dir, "OPN");
        exp.security_policy = Some(self.policy());
        exp.secure_channel_id = Some(id);
        if secure {
            // RSA-2048 blocks of 256 octets: plaintext, padding and a 256-octet
            // signature, encrypted.
            let len = (plain.len() + 256).div_ceil(214) * 256;
            let mut c = opaque(self.next_seed(), len);
            if let Some(b) = c.get_mut(8) {
                *b = 0xa7;
            }
            rest.extend_from_slice(&c);
            exp.encrypted = true;
            exp.service_id = Some(None);
            exp.sender_certificate_thumbprint = Some(hex(&sha1(&own_cert)));
            exp.receiver_certificate_thumbprint = Some(hex(&thumb));
        } else {
            rest.extend_from_slice(&plain);
            exp.security_mode = Some("none");
            exp.request_handle = r.exp.request_handle;
            exp.service_id = r.exp.service_id;
            exp.status_code = r.exp.status_code;
        }
        UaMsg {
            chunks: vec![chunk(b"OPN", b'F', &rest)],
            exp,
        }
    }

    /// CreateSessionRequest: the client's application description (URI, product URI,
    /// name, type client), no server URI, the endpoint URL, a session name, a nonce,
    /// the client certificate, 60 s timeout, no message size limit.
    pub fn create_session(&mut self, endpoint: &str, app: &[&str; 3]) -> Request {
        let mut f = Vec::new();
        string(&mut f, Some(app[0]));
        string(&mut f, Some(app[1]));
        f.push(0x02); // LocalizedText: text only
        string(&mut f, Some(app[2]));
        u32le(&mut f, 1); // ApplicationType client
        string(&mut f, None); // gateway server URI
        string(&mut f, None); // discovery profile URI
        f.extend_from_slice(&(-1i32).to_le_bytes()); // discovery URLs
        string(&mut f, None); // server URI
        string(&mut f, Some(endpoint));
        string(&mut f, Some("otwatch-lab session"));
        let nonce = opaque(self.next_seed(), 32);
        bytes(&mut f, Some(&nonce));
        let cert = self.client_cert.clone();
        bytes(&mut f, (!cert.is_empty()).then_some(cert.as_slice()));
        f.extend_from_slice(&60_000f64.to_le_bytes());
        u32le(&mut f, 0);
        let mut r = self.request(svc::CREATE_SESSION, "session", &f);
        r.exp.application = Some(app.map(str::to_owned));
        r
    }

    /// CreateSessionResponse: session id and authentication token (numeric, ns 1),
    /// revised timeout, a nonce, the server certificate, no endpoints, no software
    /// certificates, an empty signature, no size limit. Later requests carry the token.
    pub fn create_session_rsp(&mut self, req: &Request) -> Request {
        let session = NodeId::Numeric(1, 0x0001_0000 + self.channel_id);
        let token = NodeId::Numeric(1, 0x00ab_0000 + self.channel_id);
        let mut f = Vec::new();
        session.encode(&mut f);
        token.encode(&mut f);
        f.extend_from_slice(&60_000f64.to_le_bytes());
        let nonce = opaque(self.next_seed(), 32);
        bytes(&mut f, Some(&nonce));
        let cert = self.server_cert.clone();
        bytes(&mut f, (!cert.is_empty()).then_some(cert.as_slice()));
        f.extend_from_slice(&0i32.to_le_bytes()); // endpoints
        f.extend_from_slice(&0i32.to_le_bytes()); // software certificates
        string(&mut f, None); // signature algorithm
        bytes(&mut f, None); // signature
        u32le(&mut f, 0);
        self.auth_token = token;
        self.response(req, &f)
    }

    /// ActivateSessionRequest: an empty client signature, no software certificates,
    /// locale `en`, the identity token (an ExtensionObject: type id, binary body), an
    /// empty token signature.
    pub fn activate_session(&mut self, user: Option<(&str, &[u8])>) -> Request {
        let mut f = Vec::new();
        string(&mut f, None);
        bytes(&mut f, None);
        f.extend_from_slice(&0i32.to_le_bytes());
        f.extend_from_slice(&1i32.to_le_bytes());
        string(&mut f, Some("en"));
        let mut token = Vec::new();
        let type_id = match user {
            None => {
                string(&mut token, Some("anonymous"));
                svc::ANONYMOUS_IDENTITY_TOKEN
            }
            Some((name, password)) => {
                string(&mut token, Some("username_basic256sha256"));
                string(&mut token, Some(name));
                bytes(&mut token, Some(password));
                string(
                    &mut token,
                    Some("http://www.w3.org/2001/04/xmlenc#rsa-oaep"),
                );
                svc::USER_NAME_IDENTITY_TOKEN
            }
        };
        NodeId::Numeric(0, type_id).encode(&mut f);
        f.push(0x01); // binary body
        bytes(&mut f, Some(&token));
        string(&mut f, None);
        bytes(&mut f, None);
        let mut r = self.request(svc::ACTIVATE_SESSION, "session", &f);
        match user {
            None => {
                r.exp.token_type = Some("anonymous");
                r.exp.user = Some(None);
            }
            Some((name, _)) => {
                r.exp.token_type = Some("username");
                r.exp.user = Some(Some(name.to_owned()));
            }
        }
        r
    }

    /// ActivateSessionResponse: a nonce, no results, no diagnostics.
    pub fn activate_session_rsp(&mut self, req: &Request) -> Request {
        let mut f = Vec::new();
        let nonce = opaque(self.next_seed(), 32);
        bytes(&mut f, Some(&nonce));
        f.extend_from_slice(&0i32.to_le_bytes());
        f.extend_from_slice(&0i32.to_le_bytes());
        self.response(req, &f)
    }

    /// ReadRequest of the Value attribute of `nodes`: max age 0, timestamps both.
    pub fn read(&mut self, nodes: &[NodeId]) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&0f64.to_le_bytes());
        u32le(&mut f, 2); // both
        f.extend_from_slice(&(nodes.len() as i32).to_le_bytes());
        for n in nodes {
            n.encode(&mut f);
            u32le(&mut f, VALUE_ATTRIBUTE);
            string(&mut f, None); // index range
            f.extend_from_slice(&0u16.to_le_bytes()); // data encoding: null name
            string(&mut f, None);
        }
        self.request(svc::READ, "read", &f)
    }

    /// ReadResponse: one DataValue (value only) per value, no diagnostics.
    pub fn read_rsp(&mut self, req: &Request, values: &[Value]) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&(values.len() as i32).to_le_bytes());
        for v in values {
            f.push(0x01); // DataValue: value present
            v.variant(&mut f);
        }
        f.extend_from_slice(&0i32.to_le_bytes());
        self.response(req, &f)
    }

    /// WriteRequest of the Value attribute of each node (a DataValue with the value
    /// only).
    pub fn write(&mut self, nodes: &[(NodeId, Value)]) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&(nodes.len() as i32).to_le_bytes());
        for (n, v) in nodes {
            n.encode(&mut f);
            u32le(&mut f, VALUE_ATTRIBUTE);
            string(&mut f, None);
            f.push(0x01);
            v.variant(&mut f);
        }
        let mut r = self.request(svc::WRITE, "write", &f);
        r.exp.nodes = Some(
            nodes
                .iter()
                .map(|(n, v)| NodeExp {
                    node_id: n.canonical(),
                    attribute_id: Some(VALUE_ATTRIBUTE),
                    value: Some(*v),
                    method: None,
                })
                .collect(),
        );
        r
    }

    /// WriteResponse / a response with one Good status code per item and no
    /// diagnostics.
    pub fn results_rsp(&mut self, req: &Request, n: usize) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&(n as i32).to_le_bytes());
        for _ in 0..n {
            u32le(&mut f, 0);
        }
        f.extend_from_slice(&0i32.to_le_bytes());
        self.response(req, &f)
    }

    /// CallRequest of one method on one object, without input arguments.
    pub fn call(&mut self, object: &NodeId, method: &NodeId) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&1i32.to_le_bytes());
        object.encode(&mut f);
        method.encode(&mut f);
        f.extend_from_slice(&0i32.to_le_bytes());
        let mut r = self.request(svc::CALL, "other", &f);
        r.exp.nodes = Some(vec![NodeExp {
            node_id: object.canonical(),
            attribute_id: None,
            value: None,
            method: Some(method.canonical()),
        }]);
        r
    }

    /// CallResponse: one result (Good, no argument results, no outputs).
    pub fn call_rsp(&mut self, req: &Request) -> Request {
        let mut f = Vec::new();
        f.extend_from_slice(&1i32.to_le_bytes());
        u32le(&mut f, 0);
        f.extend_from_slice(&0i32.to_le_bytes());
        f.extend_from_slice(&0i32.to_le_bytes());
        f.extend_from_slice(&0i32.to_le_bytes());
        f.extend_from_slice(&0i32.to_le_bytes());
        self.response(req, &f)
    }

    /// CloseSessionRequest (delete subscriptions) and its response.
    pub fn close_session(&mut self) -> Request {
        self.request(svc::CLOSE_SESSION, "session", &[0x01])
    }

    /// CloseSecureChannelRequest: a request header only, sent as CLO; no answer.
    pub fn close_channel(&mut self) -> Request {
        let mut r = self.request(svc::CLOSE_SECURE_CHANNEL, "other", &[]);
        r.exp.operation = None;
        r
    }

    /// Sends `m` from its side, each chunk in its own segment `gap` µs apart; the event
    /// comes with the final chunk.
    pub fn send(c: &mut dyn Carrier, cap: &mut Capture, t: u64, gap: u64, m: &UaMsg) {
        let side = match m.exp.dir {
            Dir::ToServer => Side::Client,
            Dir::ToClient => Side::Server,
        };
        let n = m.chunks.len();
        for (i, ch) in m.chunks.iter().enumerate() {
            let ev = if i + 1 == n {
                vec![ExpPdu::Opcua(m.exp.clone())]
            } else {
                vec![]
            };
            c.carry(cap, t + i as u64 * gap, side, ch, ev);
        }
    }
}

/// A plausible DER-looking certificate: SEQUENCE header, the subject URI, filler.
fn certificate(seed: u32, uri: &str) -> Vec<u8> {
    let mut body = uri.as_bytes().to_vec();
    body.extend_from_slice(&opaque(seed, 900 - uri.len()));
    let mut v = vec![0x30, 0x82];
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(&body);
    v
}

/// Lower-case hex digits.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_encodings_and_canonical_forms() {
        let enc = |n: &NodeId| {
            let mut v = Vec::new();
            n.encode(&mut v);
            v
        };
        // Two-octet: encoding 0x00, id 85.
        assert_eq!(enc(&NodeId::Numeric(0, 85)), [0x00, 85]);
        // Four-octet: 0x01, namespace 0, 673 = 0x02A1 LE.
        assert_eq!(enc(&NodeId::Numeric(0, 673)), [0x01, 0x00, 0xa1, 0x02]);
        // Numeric: 0x02, namespace u16, id u32.
        assert_eq!(
            enc(&NodeId::Numeric(3, 70_000)),
            [0x02, 0x03, 0x00, 0x70, 0x11, 0x01, 0x00]
        );
        // String: 0x03, namespace 2, length 4, "Abc1".
        assert_eq!(
            enc(&NodeId::s(2, "Abc1")),
            [0x03, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, b'A', b'b', b'c', b'1']
        );
        assert_eq!(NodeId::Numeric(0, 2253).canonical(), "i=2253");
        assert_eq!(
            NodeId::s(2, "Line1.Speed").canonical(),
            "ns=2;s=Line1.Speed"
        );
    }

    #[test]
    fn hello_layout() {
        let h = hello("opc.tcp://a", [65536, 65536, 0, 0]);
        assert_eq!(
            h.chunks[0],
            [
                b'H', b'E', b'L', b'F', // message type, final
                43, 0, 0, 0, // message size 8 + 20 + 4 + 11
                0, 0, 0, 0, // protocol version 0
                0, 0, 1, 0, // receive buffer 65536
                0, 0, 1, 0, // send buffer 65536
                0, 0, 0, 0, // max message size: no limit
                0, 0, 0, 0, // max chunk count: no limit
                11, 0, 0, 0, // endpoint URL length
                b'o', b'p', b'c', b'.', b't', b'c', b'p', b':', b'/', b'/', b'a',
            ]
        );
    }

    #[test]
    fn write_request_of_a_double() {
        let mut ch = Channel::new(Mode::None, 7, 1, 99);
        ch.now = 0;
        let w = ch.write(&[(NodeId::s(2, "X"), Value::Double(1.5))]);
        // Type id 673 (four-octet), then the request header.
        assert_eq!(&w.body[..4], &[0x01, 0x00, 0xa1, 0x02]);
        // Authentication token (null, two-octet), timestamp (8), handle 1, return
        // diagnostics 0, null audit id, timeout hint 10000, null additional header.
        assert_eq!(&w.body[4..6], &[0x00, 0x00]);
        assert_eq!(&w.body[6..14], &116_444_736_000_000_000i64.to_le_bytes());
        assert_eq!(&w.body[14..18], &[1, 0, 0, 0]);
        assert_eq!(&w.body[18..22], &[0, 0, 0, 0]);
        assert_eq!(&w.body[22..26], &[0xff; 4]);
        assert_eq!(&w.body[26..30], &10_000u32.to_le_bytes());
        assert_eq!(&w.body[30..33], &[0, 0, 0]);
        let mut nodes = vec![1, 0, 0, 0]; // one WriteValue
        nodes.extend_from_slice(&[0x03, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, b'X']);
        nodes.extend_from_slice(&[13, 0, 0, 0]); // Value attribute
        nodes.extend_from_slice(&[0xff; 4]); // no index range
        nodes.extend_from_slice(&[0x01, 11]); // DataValue with a value; Double
        nodes.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(&w.body[33..], &nodes[..]);
        let m = ch.frame(b"MSG", &w, 8192);
        let c = &m.chunks[0];
        assert_eq!(&c[..4], b"MSGF");
        assert_eq!(
            u32::from_le_bytes([c[4], c[5], c[6], c[7]]) as usize,
            c.len()
        );
        assert_eq!(&c[8..16], &[7, 0, 0, 0, 1, 0, 0, 0]); // channel 7, token 1
        assert_eq!(&c[16..20], &51u32.to_le_bytes()); // sequence number
        assert_eq!(&c[20..24], &w.request_id.to_le_bytes());
        assert_eq!(&c[24..], &w.body[..]);
    }

    #[test]
    fn chunks_split_the_body_and_count_sequence_numbers() {
        let mut ch = Channel::new(Mode::None, 7, 1, 99);
        let w = ch.write(&[(NodeId::s(2, "Line1.Speed"), Value::Double(1.2))]);
        let m = ch.frame(b"MSG", &w, 30);
        assert_eq!(m.chunks.len(), w.body.len().div_ceil(30));
        let types: Vec<u8> = m.chunks.iter().map(|c| c[3]).collect();
        assert_eq!(types.last(), Some(&b'F'));
        assert!(types[..types.len() - 1].iter().all(|t| *t == b'C'));
        let body: Vec<u8> = m.chunks.iter().flat_map(|c| c[24..].to_vec()).collect();
        assert_eq!(body, w.body);
        assert_eq!(&m.chunks[1][16..20], &52u32.to_le_bytes());
    }

    #[test]
    fn encrypted_messages_hide_the_service() {
        let mut ch = Channel::new(Mode::SignAndEncrypt, 9, 2, 5);
        let (q, a) = ch.open();
        assert!(q.exp.encrypted && a.exp.encrypted);
        assert_eq!(q.exp.security_policy, Some(POLICY_BASIC256SHA256));
        assert_eq!(q.exp.secure_channel_id, Some(0));
        assert_eq!(a.exp.secure_channel_id, Some(9));
        // The client's thumbprint of the server certificate is the server's own.
        assert_eq!(
            q.exp.receiver_certificate_thumbprint,
            a.exp.sender_certificate_thumbprint
        );
        let r = ch.read(&[NodeId::Numeric(0, 2258)]);
        let m = ch.frame(b"MSG", &r, 8192);
        assert_eq!(m.exp.service_id, Some(None));
        assert_eq!(m.exp.security_mode, Some("sign_and_encrypt"));
        assert!(m.exp.encrypted);
        // Header 8, channel and token 8, then AES blocks; the plaintext is nowhere.
        assert_eq!((m.chunks[0].len() - 16) % 16, 0);
        assert!(!m.chunks[0].windows(r.body.len()).any(|w| w == r.body));
    }
}
