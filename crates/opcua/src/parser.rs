//! Pure nom parsers for OPC UA binary (Part 6: 7.1 UA TCP, 6.7 UA Secure Conversation,
//! 5.2 OPC UA Binary encoding).
//!
//! Framing (the 8-byte UA TCP header) is *streaming*: [`parse_ua_chunk`] is
//! `Incomplete` until the whole chunk is buffered. Inside a chunk the length is known,
//! so every other parser is *complete*: running out of bytes is an error
//! ([`DissectError::Truncated`]), never a request for more. Outputs borrow the input.
//!
//! Attacker-controlled counts are checked against the bytes present before any loop
//! or allocation (every element of an array takes at least one byte), and nested
//! structures (Variant in Variant, DataValue, DiagnosticInfo) are bounded by
//! [`MAX_DEPTH`].

use std::fmt;

use nom::bytes::complete as bc;
use nom::error::{ErrorKind, ParseError};
use nom::number::{complete as nc, streaming as ns};
use nom::IResult;
use otwatch_event::OpcuaValue;

use crate::codes::{ChunkType, MessageType};

/// The UA TCP message header: type (3), chunk type (1), size (4, little-endian,
/// header included).
pub const HEADER_LEN: usize = 8;
/// Nesting bound of recursive encodings (Variant, DataValue, DiagnosticInfo).
pub const MAX_DEPTH: u8 = 16;

/// Why a parser failed. Small and `Copy`, no input bytes inside: usable as a metric
/// label ([`DissectError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DissectError {
    /// The message type is not one UA TCP defines: framing is lost.
    #[error("unknown UA TCP message type")]
    BadMessageType,
    /// The chunk type is not F, C or A, or not legal for the message type.
    #[error("bad UA TCP chunk type")]
    BadChunkType,
    /// The message size is below the type's minimum or above the configured maximum.
    #[error("UA TCP message size {size} out of range")]
    BadSize { size: u32 },
    /// A field runs past the end of its chunk.
    #[error("OPC UA field truncated")]
    Truncated,
    /// A length or count that no well-formed encoding has (below -1, or larger than
    /// the bytes present).
    #[error("OPC UA length out of range")]
    BadLength,
    /// An encoding byte with a value the binary encoding does not define.
    #[error("OPC UA encoding byte not defined")]
    BadEncoding,
    /// Structures nested deeper than [`MAX_DEPTH`].
    #[error("OPC UA structures nested too deep")]
    TooDeep,
    /// Any other nom failure.
    #[error("OPC UA parse error ({0:?})")]
    Nom(ErrorKind),
}

impl DissectError {
    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DissectError::BadMessageType => "bad_message_type",
            DissectError::BadChunkType => "bad_chunk_type",
            DissectError::BadSize { .. } => "bad_size",
            DissectError::Truncated => "truncated",
            DissectError::BadLength => "bad_length",
            DissectError::BadEncoding => "bad_encoding",
            DissectError::TooDeep => "too_deep",
            DissectError::Nom(_) => "parse",
        }
    }
}

impl<I> ParseError<I> for DissectError {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        // Complete number and `take` parsers report a short input as `Eof`: inside a
        // framed chunk that is a truncated field.
        if kind == ErrorKind::Eof {
            DissectError::Truncated
        } else {
            DissectError::Nom(kind)
        }
    }

    fn append(_input: I, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

pub type PResult<'a, T> = IResult<&'a [u8], T, DissectError>;

fn fail<T>(e: DissectError) -> Result<T, nom::Err<DissectError>> {
    Err(nom::Err::Error(e))
}

// ---------------------------------------------------------------------------------
// UA TCP (Part 6, 7.1)
// ---------------------------------------------------------------------------------

/// The 8-byte message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaHeader {
    pub message_type: MessageType,
    pub chunk_type: ChunkType,
    /// The whole chunk, header included.
    pub size: u32,
}

/// Reads the 8-byte header without judging it (streaming).
pub fn parse_ua_header(i: &[u8]) -> PResult<'_, UaHeader> {
    let (i, t0) = ns::u8(i)?;
    let (i, t1) = ns::u8(i)?;
    let (i, t2) = ns::u8(i)?;
    let (i, chunk) = ns::u8(i)?;
    let (i, size) = ns::le_u32(i)?;
    Ok((
        i,
        UaHeader {
            message_type: MessageType([t0, t1, t2]),
            chunk_type: ChunkType(chunk),
            size,
        },
    ))
}

/// Checks a header: a defined message type, a chunk type legal for it, and a size
/// within `min_size..=max_size`.
pub fn check_ua_header(h: &UaHeader, max_size: u32) -> Result<(), DissectError> {
    if h.message_type.name().is_none() {
        return Err(DissectError::BadMessageType);
    }
    if !h.chunk_type.is_legal_for(h.message_type) {
        return Err(DissectError::BadChunkType);
    }
    if h.size < h.message_type.min_size() || h.size > max_size {
        return Err(DissectError::BadSize { size: h.size });
    }
    Ok(())
}

/// One UA TCP chunk, framed: the header and the bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaChunk<'a> {
    pub header: UaHeader,
    /// The `size - 8` bytes after the header.
    pub body: &'a [u8],
}

/// Parses one UA TCP chunk from the front of `i`.
///
/// `Incomplete` until the whole chunk is buffered; `Error` when the header is not a
/// UA TCP header or its size is out of range (framing is lost: the caller
/// resynchronises).
pub fn parse_ua_chunk(i: &[u8], max_size: u32) -> PResult<'_, UaChunk<'_>> {
    let (rest, header) = parse_ua_header(i)?;
    if let Err(e) = check_ua_header(&header, max_size) {
        return fail(e);
    }
    let body_len = header.size.saturating_sub(HEADER_LEN as u32);
    let (rest, body) = nom::bytes::streaming::take(body_len)(rest)?;
    Ok((rest, UaChunk { header, body }))
}

/// HEL (Part 6, 7.1.2.3) and ACK (7.1.2.4) share their first five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    pub protocol_version: u32,
    pub receive_buffer_size: u32,
    pub send_buffer_size: u32,
    pub max_message_size: u32,
    pub max_chunk_count: u32,
    /// HEL only (`None` for ACK, or a null string).
    pub endpoint_url: Option<&'a [u8]>,
}

fn buffer_sizes(i: &[u8]) -> PResult<'_, [u32; 5]> {
    let (i, a) = nc::le_u32(i)?;
    let (i, b) = nc::le_u32(i)?;
    let (i, c) = nc::le_u32(i)?;
    let (i, d) = nc::le_u32(i)?;
    let (i, e) = nc::le_u32(i)?;
    Ok((i, [a, b, c, d, e]))
}

/// The body of a HEL message.
pub fn parse_hello(i: &[u8]) -> PResult<'_, Hello<'_>> {
    let (i, [v, r, s, m, c]) = buffer_sizes(i)?;
    let (i, endpoint_url) = ua_string(i)?;
    Ok((
        i,
        Hello {
            protocol_version: v,
            receive_buffer_size: r,
            send_buffer_size: s,
            max_message_size: m,
            max_chunk_count: c,
            endpoint_url,
        },
    ))
}

/// The body of an ACK message.
pub fn parse_acknowledge(i: &[u8]) -> PResult<'_, Hello<'_>> {
    let (i, [v, r, s, m, c]) = buffer_sizes(i)?;
    Ok((
        i,
        Hello {
            protocol_version: v,
            receive_buffer_size: r,
            send_buffer_size: s,
            max_message_size: m,
            max_chunk_count: c,
            endpoint_url: None,
        },
    ))
}

/// The body of an ERR message (7.1.2.5) or of an abort chunk (6.7.3): a status code
/// and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UaError<'a> {
    pub error: u32,
    pub reason: Option<&'a [u8]>,
}

pub fn parse_error(i: &[u8]) -> PResult<'_, UaError<'_>> {
    let (i, error) = nc::le_u32(i)?;
    let (i, reason) = ua_string(i)?;
    Ok((i, UaError { error, reason }))
}

/// The body of an RHE message (7.1.2.6).
pub fn parse_reverse_hello(i: &[u8]) -> PResult<'_, ReverseHello<'_>> {
    let (i, server_uri) = ua_string(i)?;
    let (i, endpoint_url) = ua_string(i)?;
    Ok((
        i,
        ReverseHello {
            server_uri,
            endpoint_url,
        },
    ))
}

/// RHE fields: the server's application URI and the endpoint URL to connect with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReverseHello<'a> {
    pub server_uri: Option<&'a [u8]>,
    pub endpoint_url: Option<&'a [u8]>,
}

/// The little-endian u32 at `off`, if the bytes are there.
pub fn le_u32_at(d: &[u8], off: usize) -> Option<u32> {
    let b: [u8; 4] = d.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

// ---------------------------------------------------------------------------------
// Secure conversation (Part 6, 6.7.2)
// ---------------------------------------------------------------------------------

/// The asymmetric algorithm security header of an OPN chunk (6.7.2.3), with the secure
/// channel id that precedes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsymmetricHeader<'a> {
    pub secure_channel_id: u32,
    pub security_policy_uri: Option<&'a [u8]>,
    /// DER: one certificate or a chain (the sender's first).
    pub sender_certificate: Option<&'a [u8]>,
    /// SHA-1 of the receiver's certificate (20 bytes when present).
    pub receiver_certificate_thumbprint: Option<&'a [u8]>,
}

pub fn parse_asymmetric_header(i: &[u8]) -> PResult<'_, AsymmetricHeader<'_>> {
    let (i, secure_channel_id) = nc::le_u32(i)?;
    let (i, security_policy_uri) = ua_string(i)?;
    let (i, sender_certificate) = ua_string(i)?;
    let (i, receiver_certificate_thumbprint) = ua_string(i)?;
    Ok((
        i,
        AsymmetricHeader {
            secure_channel_id,
            security_policy_uri,
            sender_certificate,
            receiver_certificate_thumbprint,
        },
    ))
}

/// The secure channel id and symmetric algorithm security header (a token id) of a
/// MSG or CLO chunk (6.7.2.4).
pub fn parse_symmetric_header(i: &[u8]) -> PResult<'_, (u32, u32)> {
    let (i, secure_channel_id) = nc::le_u32(i)?;
    let (i, token_id) = nc::le_u32(i)?;
    Ok((i, (secure_channel_id, token_id)))
}

/// The sequence header (6.7.2.5): sequence number, request id.
pub fn parse_sequence_header(i: &[u8]) -> PResult<'_, (u32, u32)> {
    let (i, seq) = nc::le_u32(i)?;
    let (i, request_id) = nc::le_u32(i)?;
    Ok((i, (seq, request_id)))
}

// ---------------------------------------------------------------------------------
// Binary encoding (Part 6, 5.2)
// ---------------------------------------------------------------------------------

/// Checks an Int32 length or count against the bytes left, with each element taking
/// at least `min_elem` bytes: `None` for -1 (null).
fn checked_count(
    i: &[u8],
    n: i32,
    min_elem: usize,
) -> Result<Option<usize>, nom::Err<DissectError>> {
    match n {
        -1 => Ok(None),
        n if n < -1 => fail(DissectError::BadLength),
        n => {
            let n = usize::try_from(n).map_err(|_| nom::Err::Error(DissectError::BadLength))?;
            if n.saturating_mul(min_elem) > i.len() {
                return fail(DissectError::BadLength);
            }
            Ok(Some(n))
        }
    }
}

/// String and ByteString (5.2.2.4, 5.2.2.7): Int32 length, -1 for null.
pub fn ua_string(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    let (i, n) = nc::le_i32(i)?;
    match checked_count(i, n, 1)? {
        None => Ok((i, None)),
        Some(n) => {
            let (i, s) = bc::take(n)(i)?;
            Ok((i, Some(s)))
        }
    }
}

/// An array's Int32 length (5.2.5), -1 (null) read as 0, checked against the bytes
/// left with elements of at least `min_elem` bytes.
pub fn array_len(i: &[u8], min_elem: usize) -> PResult<'_, usize> {
    let (i, n) = nc::le_i32(i)?;
    Ok((i, checked_count(i, n, min_elem)?.unwrap_or(0)))
}

/// The identifier of a NodeId (5.2.2.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier<'a> {
    Numeric(u32),
    String(&'a [u8]),
    Guid([u8; 16]),
    Opaque(&'a [u8]),
    /// A null String or ByteString identifier.
    Null,
}

/// A NodeId: namespace index and identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeId<'a> {
    pub namespace: u16,
    pub identifier: Identifier<'a>,
}

impl NodeId<'_> {
    /// The numeric identifier of a namespace-0 NodeId (how service ids are encoded).
    pub fn ns0_numeric(&self) -> Option<u32> {
        match (self.namespace, self.identifier) {
            (0, Identifier::Numeric(n)) => Some(n),
            _ => None,
        }
    }
}

/// The canonical string form (Part 6, 5.3.1.10): `i=2253` in namespace 0,
/// `ns=2;s=Line1.Speed`, `ns=1;g=<lowercase guid>`, `ns=1;b=<base64>`.
impl fmt::Display for NodeId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace != 0 {
            write!(f, "ns={};", self.namespace)?;
        }
        match self.identifier {
            Identifier::Numeric(n) => write!(f, "i={n}"),
            Identifier::String(s) => write!(f, "s={}", String::from_utf8_lossy(s)),
            Identifier::Null => f.write_str("s="),
            Identifier::Guid(g) => {
                let d1 = u32::from_le_bytes([g[0], g[1], g[2], g[3]]);
                let d2 = u16::from_le_bytes([g[4], g[5]]);
                let d3 = u16::from_le_bytes([g[6], g[7]]);
                write!(f, "g={d1:08x}-{d2:04x}-{d3:04x}-{:02x}{:02x}-", g[8], g[9])?;
                for b in &g[10..] {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Identifier::Opaque(b) => {
                f.write_str("b=")?;
                base64(b, f)
            }
        }
    }
}

/// Standard base64 with padding (RFC 4648, 4).
fn base64(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use fmt::Write;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = |k: usize| u32::from(chunk.get(k).copied().unwrap_or(0));
        let v = b(0) << 16 | b(1) << 8 | b(2);
        // A chunk of n bytes gives n + 1 symbols, then padding to 4.
        for k in 0..4 {
            let c = if k <= chunk.len() {
                let sextet = (v >> (18 - 6 * k)) & 63;
                ALPHABET
                    .get(sextet as usize)
                    .map_or('=', |&c| char::from(c))
            } else {
                '='
            };
            f.write_char(c)?;
        }
    }
    Ok(())
}

/// The NodeId encoding byte's low bits (5.2.2.9, table 7); the high two bits are the
/// ExpandedNodeId flags.
fn node_id_body(i: &[u8], encoding: u8) -> PResult<'_, NodeId<'_>> {
    match encoding & 0x3F {
        0x00 => {
            let (i, id) = nc::u8(i)?;
            Ok((
                i,
                NodeId {
                    namespace: 0,
                    identifier: Identifier::Numeric(u32::from(id)),
                },
            ))
        }
        0x01 => {
            let (i, ns) = nc::u8(i)?;
            let (i, id) = nc::le_u16(i)?;
            Ok((
                i,
                NodeId {
                    namespace: u16::from(ns),
                    identifier: Identifier::Numeric(u32::from(id)),
                },
            ))
        }
        0x02 => {
            let (i, namespace) = nc::le_u16(i)?;
            let (i, id) = nc::le_u32(i)?;
            Ok((
                i,
                NodeId {
                    namespace,
                    identifier: Identifier::Numeric(id),
                },
            ))
        }
        0x03 | 0x05 => {
            let (i, namespace) = nc::le_u16(i)?;
            let (i, s) = ua_string(i)?;
            let identifier = match (encoding & 0x3F, s) {
                (_, None) => Identifier::Null,
                (0x03, Some(s)) => Identifier::String(s),
                (_, Some(b)) => Identifier::Opaque(b),
            };
            Ok((
                i,
                NodeId {
                    namespace,
                    identifier,
                },
            ))
        }
        0x04 => {
            let (i, namespace) = nc::le_u16(i)?;
            let (i, g) = bc::take(16usize)(i)?;
            let mut guid = [0u8; 16];
            guid.copy_from_slice(g);
            Ok((
                i,
                NodeId {
                    namespace,
                    identifier: Identifier::Guid(guid),
                },
            ))
        }
        _ => fail(DissectError::BadEncoding),
    }
}

/// NodeId (5.2.2.9): the ExpandedNodeId flags must be clear.
pub fn node_id(i: &[u8]) -> PResult<'_, NodeId<'_>> {
    let (i, encoding) = nc::u8(i)?;
    if encoding & 0xC0 != 0 {
        return fail(DissectError::BadEncoding);
    }
    node_id_body(i, encoding)
}

/// ExpandedNodeId (5.2.2.10): a NodeId, then a namespace URI (flag 0x80) and a server
/// index (flag 0x40).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpandedNodeId<'a> {
    pub node_id: NodeId<'a>,
    pub namespace_uri: Option<&'a [u8]>,
    pub server_index: u32,
}

/// `svr=1;nsu=urn:x;s=Id` (Part 6, 5.3.1.11), the plain NodeId form when local.
impl fmt::Display for ExpandedNodeId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.server_index != 0 {
            write!(f, "svr={};", self.server_index)?;
        }
        match self.namespace_uri {
            Some(uri) => {
                let local = NodeId {
                    namespace: 0,
                    ..self.node_id
                };
                write!(f, "nsu={};{local}", String::from_utf8_lossy(uri))
            }
            None => self.node_id.fmt(f),
        }
    }
}

pub fn expanded_node_id(i: &[u8]) -> PResult<'_, ExpandedNodeId<'_>> {
    let (i, encoding) = nc::u8(i)?;
    let (i, node_id) = node_id_body(i, encoding)?;
    let (i, namespace_uri) = if encoding & 0x80 != 0 {
        ua_string(i)?
    } else {
        (i, None)
    };
    let (i, server_index) = if encoding & 0x40 != 0 {
        nc::le_u32(i)?
    } else {
        (i, 0)
    };
    Ok((
        i,
        ExpandedNodeId {
            node_id,
            namespace_uri,
            server_index,
        },
    ))
}

/// QualifiedName (5.2.2.13): namespace index and name.
pub fn qualified_name(i: &[u8]) -> PResult<'_, (u16, Option<&[u8]>)> {
    let (i, ns) = nc::le_u16(i)?;
    let (i, name) = ua_string(i)?;
    Ok((i, (ns, name)))
}

/// LocalizedText (5.2.2.14): a mask, then the locale (0x01) and the text (0x02).
pub fn localized_text(i: &[u8]) -> PResult<'_, Option<&[u8]>> {
    let (i, mask) = nc::u8(i)?;
    let (i, _locale) = if mask & 0x01 != 0 {
        ua_string(i)?
    } else {
        (i, None)
    };
    let (i, text) = if mask & 0x02 != 0 {
        ua_string(i)?
    } else {
        (i, None)
    };
    Ok((i, text))
}

/// ExtensionObject (5.2.2.15): the encoding's NodeId, then no body (0x00), a
/// ByteString body (0x01) or an XmlElement body (0x02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionObject<'a> {
    pub type_id: NodeId<'a>,
    pub encoding: u8,
    pub body: Option<&'a [u8]>,
}

pub fn extension_object(i: &[u8]) -> PResult<'_, ExtensionObject<'_>> {
    let (i, type_id) = node_id(i)?;
    let (i, encoding) = nc::u8(i)?;
    let (i, body) = match encoding {
        0x00 => (i, None),
        0x01 | 0x02 => ua_string(i)?,
        _ => return fail(DissectError::BadEncoding),
    };
    Ok((
        i,
        ExtensionObject {
            type_id,
            encoding,
            body,
        },
    ))
}

/// DiagnosticInfo (5.2.2.12), skipped: a mask, then the fields it announces, the last
/// one a nested DiagnosticInfo.
pub fn skip_diagnostic_info(i: &[u8], depth: u8) -> PResult<'_, ()> {
    if depth >= MAX_DEPTH {
        return fail(DissectError::TooDeep);
    }
    let (mut i, mask) = nc::u8(i)?;
    // SymbolicId, NamespaceUri, LocalizedText, Locale: Int32 each.
    for bit in [0x01, 0x02, 0x04, 0x08] {
        if mask & bit != 0 {
            i = nc::le_i32(i)?.0;
        }
    }
    if mask & 0x10 != 0 {
        i = ua_string(i)?.0;
    }
    if mask & 0x20 != 0 {
        i = nc::le_u32(i)?.0;
    }
    if mask & 0x40 != 0 {
        i = skip_diagnostic_info(i, depth + 1)?.0;
    }
    Ok((i, ()))
}

/// A decoded Variant, as far as events need it.
#[derive(Debug, Clone, PartialEq)]
pub enum VariantValue {
    /// A scalar or array of a numeric, boolean or string type.
    Value(OpcuaValue),
    /// Null, or a type events do not carry (skipped).
    Other,
}

/// Built-in type ids (5.1.2) whose values events carry, and their fixed sizes.
fn fixed_size(type_id: u8) -> Option<usize> {
    Some(match type_id {
        1..=3 => 1,           // Boolean, SByte, Byte
        4 | 5 => 2,           // Int16, UInt16
        6 | 7 | 10 | 19 => 4, // Int32, UInt32, Float, StatusCode
        8 | 9 | 11 | 13 => 8, // Int64, UInt64, Double, DateTime
        14 => 16,             // Guid
        _ => return None,
    })
}

/// One scalar element of a numeric type as f64.
fn number(type_id: u8, i: &[u8]) -> PResult<'_, Option<f64>> {
    use nom::combinator::map;
    use nom::Parser;
    match type_id {
        2 => map(nc::le_i8, f64::from).parse(i),
        3 => map(nc::u8, f64::from).parse(i),
        4 => map(nc::le_i16, f64::from).parse(i),
        5 => map(nc::le_u16, f64::from).parse(i),
        6 => map(nc::le_i32, f64::from).parse(i),
        7 => map(nc::le_u32, f64::from).parse(i),
        // 64-bit integers: the nearest f64 (exact up to 2^53).
        8 => map(nc::le_i64, |v| v as f64).parse(i),
        9 => map(nc::le_u64, |v| v as f64).parse(i),
        10 => map(nc::le_f32, f64::from).parse(i),
        11 => nc::le_f64(i),
        _ => return Ok((i, None)),
    }
    .map(|(i, v)| (i, Some(v)))
}

/// Skips (or, for kept types, reads) one element of built-in type `type_id`.
fn element(i: &[u8], type_id: u8, depth: u8) -> PResult<'_, Element<'_>> {
    match type_id {
        1 => {
            let (i, b) = nc::u8(i)?;
            Ok((i, Element::Bool(b != 0)))
        }
        2..=11 => {
            let (i, n) = number(type_id, i)?;
            Ok((i, n.map_or(Element::Skipped, Element::Number)))
        }
        12 => {
            let (i, s) = ua_string(i)?;
            Ok((i, Element::Text(s)))
        }
        t if fixed_size(t).is_some() => {
            let n = fixed_size(t).unwrap_or(0);
            let (i, _) = bc::take(n)(i)?;
            Ok((i, Element::Skipped))
        }
        15 | 16 => Ok((ua_string(i)?.0, Element::Skipped)), // ByteString, XmlElement
        17 => Ok((node_id(i)?.0, Element::Skipped)),
        18 => Ok((expanded_node_id(i)?.0, Element::Skipped)),
        20 => Ok((qualified_name(i)?.0, Element::Skipped)),
        21 => Ok((localized_text(i)?.0, Element::Skipped)),
        22 => Ok((extension_object(i)?.0, Element::Skipped)),
        23 => Ok((data_value(i, depth + 1)?.0, Element::Skipped)),
        24 => Ok((variant(i, depth + 1)?.0, Element::Skipped)),
        25 => Ok((skip_diagnostic_info(i, depth + 1)?.0, Element::Skipped)),
        _ => fail(DissectError::BadEncoding),
    }
}

enum Element<'a> {
    Bool(bool),
    Number(f64),
    Text(Option<&'a [u8]>),
    Skipped,
}

fn text(s: Option<&[u8]>) -> String {
    s.map(|s| String::from_utf8_lossy(s).into_owned())
        .unwrap_or_default()
}

/// Variant (5.2.2.16): an encoding byte (type id in bits 0-5, array dimensions 0x40,
/// array 0x80), the value or an Int32 count and the elements, then the dimensions.
pub fn variant(i: &[u8], depth: u8) -> PResult<'_, VariantValue> {
    if depth >= MAX_DEPTH {
        return fail(DissectError::TooDeep);
    }
    let (i, mask) = nc::u8(i)?;
    let type_id = mask & 0x3F;
    if type_id == 0 {
        return Ok((i, VariantValue::Other));
    }
    if type_id > 25 {
        return fail(DissectError::BadEncoding);
    }
    if mask & 0x80 == 0 {
        let (i, e) = element(i, type_id, depth)?;
        let v = match e {
            Element::Bool(b) => VariantValue::Value(OpcuaValue::Bool(b)),
            Element::Number(n) => VariantValue::Value(OpcuaValue::Number(n)),
            Element::Text(s) => VariantValue::Value(OpcuaValue::Text(text(s))),
            Element::Skipped => VariantValue::Other,
        };
        return Ok((i, v));
    }
    let (mut i, n) = array_len(i, fixed_size(type_id).unwrap_or(1))?;
    let mut numbers = Vec::new();
    let mut texts = Vec::new();
    let mut other = false;
    // Each turn consumes at least one byte; `n` is bounded by the bytes present.
    for _ in 0..n {
        let (rest, e) = element(i, type_id, depth)?;
        i = rest;
        match e {
            Element::Bool(b) => numbers.push(f64::from(u8::from(b))),
            Element::Number(v) => numbers.push(v),
            Element::Text(s) => texts.push(text(s)),
            Element::Skipped => other = true,
        }
    }
    if mask & 0x40 != 0 {
        let (rest, dims) = array_len(i, 4)?;
        let (rest, _) = bc::take(dims.saturating_mul(4))(rest)?;
        i = rest;
    }
    let v = if other {
        VariantValue::Other
    } else if type_id == 12 {
        VariantValue::Value(OpcuaValue::Texts(texts))
    } else {
        VariantValue::Value(OpcuaValue::Numbers(numbers))
    };
    Ok((i, v))
}

/// DataValue (5.2.2.17): a mask, then Value (0x01), StatusCode (0x02), SourceTimestamp
/// (0x04), SourcePicoseconds (0x10), ServerTimestamp (0x08), ServerPicoseconds (0x20),
/// in that order.
pub fn data_value(i: &[u8], depth: u8) -> PResult<'_, VariantValue> {
    if depth >= MAX_DEPTH {
        return fail(DissectError::TooDeep);
    }
    let (i, mask) = nc::u8(i)?;
    let (i, value) = if mask & 0x01 != 0 {
        variant(i, depth + 1)?
    } else {
        (i, VariantValue::Other)
    };
    let mut i = i;
    for (bit, len) in [(0x02, 4usize), (0x04, 8), (0x10, 2), (0x08, 8), (0x20, 2)] {
        if mask & bit != 0 {
            i = bc::take(len)(i)?.0;
        }
    }
    Ok((i, value))
}

/// The fields of a RequestHeader (Part 4, 7.28) that events use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    pub request_handle: u32,
}

/// RequestHeader: AuthenticationToken, Timestamp, RequestHandle, ReturnDiagnostics,
/// AuditEntryId, TimeoutHint, AdditionalHeader.
pub fn request_header(i: &[u8]) -> PResult<'_, RequestHeader> {
    let (i, _token) = node_id(i)?;
    let (i, _timestamp) = nc::le_i64(i)?;
    let (i, request_handle) = nc::le_u32(i)?;
    let (i, _diagnostics) = nc::le_u32(i)?;
    let (i, _audit) = ua_string(i)?;
    let (i, _timeout) = nc::le_u32(i)?;
    let (i, _additional) = extension_object(i)?;
    Ok((i, RequestHeader { request_handle }))
}

/// The leading fields of a ResponseHeader (Part 4, 7.29): Timestamp, RequestHandle,
/// ServiceResult. The rest (diagnostics, string table, additional header) is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHeader {
    pub request_handle: u32,
    pub service_result: u32,
}

pub fn response_header_start(i: &[u8]) -> PResult<'_, ResponseHeader> {
    let (i, _timestamp) = nc::le_i64(i)?;
    let (i, request_handle) = nc::le_u32(i)?;
    let (i, service_result) = nc::le_u32(i)?;
    Ok((
        i,
        ResponseHeader {
            request_handle,
            service_result,
        },
    ))
}

/// The rest of a ResponseHeader after [`response_header_start`]: ServiceDiagnostics,
/// StringTable, AdditionalHeader.
pub fn response_header_rest(i: &[u8]) -> PResult<'_, ()> {
    let (i, _) = skip_diagnostic_info(i, 0)?;
    let (mut i, n) = array_len(i, 4)?;
    for _ in 0..n {
        i = ua_string(i)?.0;
    }
    let (i, _) = extension_object(i)?;
    Ok((i, ()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_chunk_framing() {
        // "HELF", size 0x20 = 32: header + 20 bytes of sizes + an empty URL (len 0).
        let mut hel = b"HELF".to_vec();
        hel.extend_from_slice(&32u32.to_le_bytes());
        hel.extend_from_slice(&[0u8; 20]);
        hel.extend_from_slice(&0i32.to_le_bytes());
        let (rest, c) = parse_ua_chunk(&hel, 1 << 20).unwrap();
        assert!(rest.is_empty());
        assert_eq!(c.header.message_type, MessageType::HELLO);
        assert_eq!(c.body.len(), 24);
        for k in 0..hel.len() {
            assert!(
                matches!(
                    parse_ua_chunk(&hel[..k], 1 << 20),
                    Err(nom::Err::Incomplete(_))
                ),
                "prefix {k}"
            );
        }
        // Size below the HEL minimum, above the maximum, bad type, bad chunk type.
        let mut small = hel.clone();
        small[4] = 31;
        assert_eq!(
            parse_ua_chunk(&small, 1 << 20),
            Err(nom::Err::Error(DissectError::BadSize { size: 31 }))
        );
        assert_eq!(
            parse_ua_chunk(&hel, 31),
            Err(nom::Err::Error(DissectError::BadSize { size: 32 }))
        );
        let mut bad = hel.clone();
        bad[0] = b'X';
        assert_eq!(
            parse_ua_chunk(&bad, 1 << 20),
            Err(nom::Err::Error(DissectError::BadMessageType))
        );
        let mut bad = hel.clone();
        bad[3] = b'C'; // a HEL cannot be chunked
        assert_eq!(
            parse_ua_chunk(&bad, 1 << 20),
            Err(nom::Err::Error(DissectError::BadChunkType))
        );
    }

    #[test]
    fn strings_and_lengths() {
        assert_eq!(ua_string(&[0xFF, 0xFF, 0xFF, 0xFF]), Ok((&[][..], None)));
        assert_eq!(
            ua_string(&[2, 0, 0, 0, b'h', b'i', 9]),
            Ok((&[9u8][..], Some(&b"hi"[..])))
        );
        // Length -2, and a length past the end.
        assert_eq!(
            ua_string(&[0xFE, 0xFF, 0xFF, 0xFF]),
            Err(nom::Err::Error(DissectError::BadLength))
        );
        assert_eq!(
            ua_string(&[3, 0, 0, 0, b'h']),
            Err(nom::Err::Error(DissectError::BadLength))
        );
        assert_eq!(
            ua_string(&[3, 0, 0]),
            Err(nom::Err::Error(DissectError::Truncated))
        );
        // An array of 2^31-1 elements in 4 bytes.
        assert_eq!(
            array_len(&[0xFF, 0xFF, 0xFF, 0x7F], 1),
            Err(nom::Err::Error(DissectError::BadLength))
        );
    }

    #[test]
    fn node_ids_in_every_encoding() {
        let cases: &[(&[u8], &str)] = &[
            // Two-byte: 0x00, id 0x55.
            (&[0x00, 0x55], "i=85"),
            // Four-byte: 0x01, ns 3, id 1001 LE.
            (&[0x01, 0x03, 0xE9, 0x03], "ns=3;i=1001"),
            // Numeric: 0x02, ns 0, id 2253 LE (u32).
            (&[0x02, 0x00, 0x00, 0xCD, 0x08, 0x00, 0x00], "i=2253"),
            // String: 0x03, ns 2, "Line1.Speed".
            (
                &[
                    0x03, 0x02, 0x00, 11, 0, 0, 0, b'L', b'i', b'n', b'e', b'1', b'.', b'S', b'p',
                    b'e', b'e', b'd',
                ],
                "ns=2;s=Line1.Speed",
            ),
            // Guid: 0x04, ns 1, {72962B91-FA75-4AE6-8D28-B404DC7DAF63} (Part 6, 5.1.3:
            // Data1-3 little-endian, Data4 as bytes).
            (
                &[
                    0x04, 0x01, 0x00, 0x91, 0x2B, 0x96, 0x72, 0x75, 0xFA, 0xE6, 0x4A, 0x8D, 0x28,
                    0xB4, 0x04, 0xDC, 0x7D, 0xAF, 0x63,
                ],
                "ns=1;g=72962b91-fa75-4ae6-8d28-b404dc7daf63",
            ),
            // ByteString: 0x05, ns 1, 0x01 0x02 0x03 0xFF.
            (
                &[0x05, 0x01, 0x00, 4, 0, 0, 0, 1, 2, 3, 0xFF],
                "ns=1;b=AQID/w==",
            ),
        ];
        for (bytes, want) in cases {
            let (rest, n) = node_id(bytes).unwrap();
            assert!(rest.is_empty());
            assert_eq!(n.to_string(), *want);
            for k in 0..bytes.len() {
                assert!(node_id(&bytes[..k]).is_err(), "prefix {k} of {want}");
            }
        }
        assert_eq!(
            node_id(&[0x06, 0]),
            Err(nom::Err::Error(DissectError::BadEncoding))
        );
        // ExpandedNodeId with a namespace URI and a server index.
        let e = [
            0xC1, 0x00, 0x10, 0x00, 5, 0, 0, 0, b'u', b'r', b'n', b':', b'x', 2, 0, 0, 0,
        ];
        let (rest, x) = expanded_node_id(&e).unwrap();
        assert!(rest.is_empty());
        assert_eq!(x.to_string(), "svr=2;nsu=urn:x;i=16");
    }

    #[test]
    fn variants() {
        // Double 1.5.
        let mut d = vec![11];
        d.extend_from_slice(&1.5f64.to_le_bytes());
        assert_eq!(
            variant(&d, 0).unwrap().1,
            VariantValue::Value(OpcuaValue::Number(1.5))
        );
        // Boolean true; Int16 -2; String "ab"; null.
        assert_eq!(
            variant(&[1, 1], 0).unwrap().1,
            VariantValue::Value(OpcuaValue::Bool(true))
        );
        assert_eq!(
            variant(&[4, 0xFE, 0xFF], 0).unwrap().1,
            VariantValue::Value(OpcuaValue::Number(-2.0))
        );
        assert_eq!(
            variant(&[12, 2, 0, 0, 0, b'a', b'b'], 0).unwrap().1,
            VariantValue::Value(OpcuaValue::Text("ab".into()))
        );
        assert_eq!(variant(&[0], 0).unwrap().1, VariantValue::Other);
        // Array (0x80) of 2 UInt16 (5): 7, 9; with dimensions (0x40): [2].
        let a = [0xC5, 2, 0, 0, 0, 7, 0, 9, 0, 1, 0, 0, 0, 2, 0, 0, 0];
        let (rest, v) = variant(&a, 0).unwrap();
        assert!(rest.is_empty());
        assert_eq!(v, VariantValue::Value(OpcuaValue::Numbers(vec![7.0, 9.0])));
        // Array of Strings.
        let s = [0x8C, 2, 0, 0, 0, 1, 0, 0, 0, b'x', 0xFF, 0xFF, 0xFF, 0xFF];
        assert_eq!(
            variant(&s, 0).unwrap().1,
            VariantValue::Value(OpcuaValue::Texts(vec!["x".into(), String::new()]))
        );
        // A LocalizedText scalar is skipped, not kept.
        assert_eq!(
            variant(&[21, 0x02, 1, 0, 0, 0, b'z'], 0),
            Ok((&[][..], VariantValue::Other))
        );
        // Type 26 is not defined; a count past the end; nesting past the bound.
        assert_eq!(
            variant(&[26], 0),
            Err(nom::Err::Error(DissectError::BadEncoding))
        );
        assert_eq!(
            variant(&[0x8B, 9, 0, 0, 0, 0], 0),
            Err(nom::Err::Error(DissectError::BadLength))
        );
        let deep = vec![24u8; 64];
        assert_eq!(
            variant(&deep, 0),
            Err(nom::Err::Error(DissectError::TooDeep))
        );
        for k in 0..d.len() {
            assert!(variant(&d[..k], 0).is_err());
        }
    }

    #[test]
    fn data_values_and_diagnostics() {
        // Mask 0x0D: value (Int32 5), source timestamp, server timestamp.
        let mut dv = vec![0x0D, 6, 5, 0, 0, 0];
        dv.extend_from_slice(&[0u8; 16]);
        dv.push(0xAA);
        let (rest, v) = data_value(&dv, 0).unwrap();
        assert_eq!(rest, &[0xAA]);
        assert_eq!(v, VariantValue::Value(OpcuaValue::Number(5.0)));
        // DiagnosticInfo: mask 0x60 (inner status code, inner diagnostic info), then
        // the inner one with mask 0x01 (symbolic id).
        let di = [0x60, 0, 0, 0x80, 0x80, 0x01, 7, 0, 0, 0];
        assert_eq!(skip_diagnostic_info(&di, 0), Ok((&[][..], ())));
        let mut chain = vec![0x40u8; 40];
        chain.push(0);
        assert_eq!(
            skip_diagnostic_info(&chain, 0),
            Err(nom::Err::Error(DissectError::TooDeep))
        );
    }
}
