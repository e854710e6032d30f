//! Pure nom parsers for ISO-on-TCP (RFC 1006 TPKT, ISO 8073 COTP class 0), S7comm
//! (protocol id 0x32) and the S7comm-plus header (protocol id 0x72).
//!
//! Framing (the TPKT header) is *streaming*: `Incomplete` until the whole TPKT is
//! buffered. Inside it, the length has already bounded the input, so every other
//! parser is *complete*: running out of bytes there is an error, never a request for
//! more.
//!
//! The S7 parsers are lax about redundant length fields (header parameter/data
//! lengths, item counts, data item lengths): they take what the bytes hold, report
//! the disagreement as an anomaly and leave the decision to the caller. They fail only
//! when a fixed field is missing.

use nom::bytes::{complete as bc, streaming as bs};
use nom::error::{ErrorKind, ParseError};
use nom::number::{complete as nc, streaming as ns};
use nom::IResult;
use otwatch_event::Anomalies;

use crate::codes::{Area, DataTransportSize, Rosctr, UserdataGroup};

/// Size of the TPKT header (version, reserved, length).
pub const TPKT_HEADER_LEN: usize = 4;
/// Smallest TPKT length this dissector frames: the header and a class 0 COTP DT
/// header (length indicator, type, number).
pub const MIN_TPKT_LEN: u16 = 7;
/// S7comm protocol id.
pub const S7COMM_PROTOCOL_ID: u8 = 0x32;
/// S7comm-plus protocol id.
pub const S7COMM_PLUS_PROTOCOL_ID: u8 = 0x72;

/// Why a parser failed. Small and `Copy`; it never carries input bytes, so it can be a
/// metric label ([`DissectError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DissectError {
    /// The TPKT version is not 3 or its reserved byte not 0: this is not a TPKT
    /// header, framing is lost.
    #[error("not a TPKT header (version {version}, reserved {reserved})")]
    NotTpkt { version: u8, reserved: u8 },
    /// The TPKT length is outside `7..=max`: framing is lost.
    #[error("TPKT length {length} out of range")]
    BadTpktLength { length: u16 },
    /// The COTP length indicator does not fit the TPKT.
    #[error("COTP length indicator {li} does not fit {available} bytes")]
    BadCotpLength { li: u8, available: usize },
    /// A fixed field is missing (the unit is shorter than its kind requires).
    #[error("truncated S7 unit")]
    Truncated,
    /// Any other nom failure.
    #[error("S7 parse error ({0:?})")]
    Nom(ErrorKind),
}

impl DissectError {
    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DissectError::NotTpkt { .. } => "not_tpkt",
            DissectError::BadTpktLength { .. } => "bad_tpkt_length",
            DissectError::BadCotpLength { .. } => "bad_cotp_length",
            DissectError::Truncated => "truncated",
            DissectError::Nom(_) => "parse",
        }
    }
}

impl<I> ParseError<I> for DissectError {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        // Complete number and `take` parsers report a short input as `Eof`: inside a
        // framed unit that is a truncated field.
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

type PResult<'a, T> = IResult<&'a [u8], T, DissectError>;

/// Maps a complete parser's failure to its error (a complete parser never returns
/// `Incomplete`; if it did, that is a truncation too).
fn complete_err(e: nom::Err<DissectError>) -> DissectError {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => DissectError::Truncated,
    }
}

// ---------------------------------------------------------------------------------
// TPKT (RFC 1006, section 6)

/// One TPKT: `[version 3][reserved 0][length u16, header included][payload]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tpkt<'a> {
    pub length: u16,
    /// The COTP TPDU.
    pub payload: &'a [u8],
}

/// Parses one TPKT from the front of `i`.
///
/// `Incomplete` until the whole TPKT is buffered; `Error(NotTpkt)` or
/// `Error(BadTpktLength)` when the header cannot start a TPKT of at most `max_len`
/// bytes (framing is lost: the caller resynchronises).
pub fn parse_tpkt(i: &[u8], max_len: u16) -> PResult<'_, Tpkt<'_>> {
    let (i, version) = ns::be_u8(i)?;
    let (i, reserved) = ns::be_u8(i)?;
    if version != 3 || reserved != 0 {
        return Err(nom::Err::Error(DissectError::NotTpkt { version, reserved }));
    }
    let (i, length) = ns::be_u16(i)?;
    if length < MIN_TPKT_LEN || length > max_len {
        return Err(nom::Err::Error(DissectError::BadTpktLength { length }));
    }
    let (rest, payload) = bs::take(usize::from(length) - TPKT_HEADER_LEN)(i)?;
    Ok((rest, Tpkt { length, payload }))
}

/// What the TPKT + COTP header at the front of some bytes says, for
/// resynchronisation and content detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// Not a plausible header.
    No,
    /// Too few bytes to decide.
    NeedMore,
    /// A plausible header of a TPKT of `len` bytes (header included).
    Yes { len: usize },
}

/// What the payload of a DT TPDU must be for its header to be believed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DtPayload {
    /// The start of a TSDU ([`tsdu_start`]).
    Starts,
    /// Any bytes: the rest of a TSDU whose start was checked.
    Continues,
}

/// Checks the TPKT and COTP header at the front of `i`: version 3, reserved 0, a
/// length in `7..=max_len`, a COTP length indicator that fits, and a TPDU type among
/// CR, CC, DR, DC, DT (class 0 and 2 use only those, plus ER); a DT's payload must be
/// what `dt` says.
pub(crate) fn check_header(i: &[u8], max_len: u16, dt: DtPayload) -> HeaderCheck {
    match i {
        [v, r, ..] if *v != 3 || *r != 0 => HeaderCheck::No,
        [_, _, hi, lo, rest @ ..] => {
            let length = u16::from_be_bytes([*hi, *lo]);
            if length < MIN_TPKT_LEN || length > max_len {
                return HeaderCheck::No;
            }
            let payload_len = usize::from(length) - TPKT_HEADER_LEN;
            match rest {
                [li, kind, more @ ..] => {
                    let li = usize::from(*li);
                    if li == 0 || li >= payload_len {
                        return HeaderCheck::No;
                    }
                    let ok = match kind & 0xf0 {
                        CotpType::CR | CotpType::CC => li >= 6,
                        CotpType::DR | CotpType::DC | CotpType::ER => li >= 2,
                        CotpType::DT if li >= 2 => match dt {
                            DtPayload::Continues => true,
                            DtPayload::Starts => {
                                let eot = more.first().is_some_and(|b| b & DT_EOT != 0);
                                // `li < payload_len` was checked above.
                                let len = payload_len - 1 - li;
                                // This TPDU's payload only, not the next TPKT's bytes.
                                let seen = more.get(li - 1..).unwrap_or_default();
                                let seen = seen.get(..len).unwrap_or(seen);
                                match tsdu_start(seen, eot, len) {
                                    Some(ok) => ok,
                                    None => return HeaderCheck::NeedMore,
                                }
                            }
                        },
                        _ => false,
                    };
                    if ok {
                        HeaderCheck::Yes {
                            len: usize::from(length),
                        }
                    } else {
                        HeaderCheck::No
                    }
                }
                _ => HeaderCheck::NeedMore,
            }
        }
        _ => HeaderCheck::NeedMore,
    }
}

/// The EOT bit of a DT TPDU's second header octet (ISO 8073 13.7.3: the TSDU ends
/// with this TPDU).
const DT_EOT: u8 = 0x80;

/// Whether `i`, which passed [`check_header`], is a DT TPDU without EOT: the TPKT
/// after it continues its TSDU.
pub(crate) fn leaves_tsdu_open(i: &[u8]) -> bool {
    matches!(i, [_, _, _, _, _, kind, nr, ..] if kind & 0xf0 == CotpType::DT && nr & DT_EOT == 0)
}

/// Does a DT TPDU's payload plausibly start a TSDU? `seen` is what is buffered of it,
/// `len` its length; `eot` says the TSDU ends in this TPDU. `None`: too few bytes
/// buffered to tell.
///
/// After a gap the first TPKT found may be the middle or the end of a fragmented
/// TSDU, whose first octet is any byte of an S7 PDU. A header is therefore believed
/// only when it is consistent with the TSDU:
/// * S7comm: a known ROSCTR, redundancy id 0, and parameter and data lengths that
///   fill the TSDU exactly (EOT) or overrun this fragment (no EOT);
/// * S7comm-plus: a known protocol version (1, 2, 3, 0xfe) and a data length that
///   fills the TSDU, with or without the trailer (EOT), or overruns the fragment;
/// * TLS (S7-1500): version 3.0 to 3.4, and a first record within the TSDU (EOT).
///
/// An empty DT (S7comm-plus keep-alive) starts one.
pub(crate) fn tsdu_start(seen: &[u8], eot: bool, len: usize) -> Option<bool> {
    let first = match seen.first() {
        Some(b) => *b,
        None => return (len == 0).then_some(true),
    };
    // The first `n` octets, once buffered (`None`: not yet); `Some(None)`: the TSDU is
    // shorter than that.
    let head = |n: usize| {
        if len < n {
            Some(None)
        } else {
            seen.get(..n).map(Some)
        }
    };
    let be = |h: &[u8], at: usize| {
        let b = h.get(at..at + 2)?;
        <[u8; 2]>::try_from(b)
            .ok()
            .map(|b| usize::from(u16::from_be_bytes(b)))
    };
    match first {
        S7COMM_PROTOCOL_ID => {
            let header_len = match seen.get(1).map(|r| Rosctr(*r)) {
                Some(Rosctr::JOB | Rosctr::USERDATA) => 10,
                Some(Rosctr::ACK | Rosctr::ACK_DATA) => 12,
                Some(_) => return Some(false),
                None => return if len > 1 { None } else { Some(false) },
            };
            let Some(h) = head(header_len)? else {
                return Some(false);
            };
            let (redundancy, param, data) = (be(h, 2)?, be(h, 6)?, be(h, 8)?);
            let total = header_len + param + data;
            Some(redundancy == 0 && if eot { total == len } else { total > len })
        }
        S7COMM_PLUS_PROTOCOL_ID => {
            // [0x72][version][data length u16], the data, and on a message's last frame
            // the trailer [0x72][version][00 00].
            let Some(h) = head(4)? else {
                return Some(false);
            };
            let frame = 4 + be(h, 2)?;
            let version = matches!(h.get(1), Some(0x01 | 0x02 | 0x03 | 0xfe));
            Some(
                version
                    && if eot {
                        len == frame || len == frame + 4
                    } else {
                        frame + 4 > len
                    },
            )
        }
        t if is_tls_record_type(t) => {
            // The first record: [content type][version 3.x][length u16].
            let Some(h) = head(5)? else {
                return Some(false);
            };
            let record = 5 + be(h, 3)?;
            let version = h.get(1) == Some(&3) && h.get(2).is_some_and(|minor| *minor <= 4);
            Some(version && (!eot || record <= len))
        }
        _ => Some(false),
    }
}

/// TLS record content types (S7-1500 TLS sessions carry TLS inside COTP DT).
pub(crate) fn is_tls_record_type(b: u8) -> bool {
    (0x14..=0x17).contains(&b)
}

// ---------------------------------------------------------------------------------
// COTP (ISO 8073 / X.224, section 13)

/// COTP TPDU type codes (high nibble of the second header byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CotpType;

impl CotpType {
    pub const CR: u8 = 0xe0;
    pub const CC: u8 = 0xd0;
    pub const DR: u8 = 0x80;
    pub const DC: u8 = 0xc0;
    pub const DT: u8 = 0xf0;
    pub const ER: u8 = 0x70;
}

/// COTP parameter codes of CR/CC.
const PARAM_TPDU_SIZE: u8 = 0xc0;
const PARAM_CALLING_TSAP: u8 = 0xc1;
const PARAM_CALLED_TSAP: u8 = 0xc2;

/// A COTP connection request or confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CotpConnect<'a> {
    pub dst_ref: u16,
    pub src_ref: u16,
    pub class_option: u8,
    /// Parameter 0xc1 (calling / source TSAP) as sent: two bytes for S7 (connection
    /// type and rack/slot), a string such as `SIMATIC-ROOT-HMI` for S7comm-plus.
    pub calling_tsap: Option<&'a [u8]>,
    /// Parameter 0xc2 (called / destination TSAP).
    pub called_tsap: Option<&'a [u8]>,
    /// Parameter 0xc0: the TPDU size as a power of two.
    pub tpdu_size: Option<u8>,
}

/// One COTP TPDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CotpPdu<'a> {
    ConnectionRequest(CotpConnect<'a>),
    ConnectionConfirm(CotpConnect<'a>),
    /// Data: `eot` is set on the last TPDU of a TSDU.
    Data {
        eot: bool,
        number: u8,
        payload: &'a [u8],
    },
    DisconnectRequest,
    /// Any other TPDU type (high nibble as on the wire).
    Other {
        tpdu_type: u8,
    },
}

/// A COTP TPDU and what was out of spec in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cotp<'a> {
    pub pdu: CotpPdu<'a>,
    /// `BAD_LENGTH` when a CR/CC parameter overruns the header.
    pub anomalies: Anomalies,
}

/// Parses the COTP TPDU of one TPKT payload (complete).
///
/// `Err(BadCotpLength)` when the length indicator is 0 or does not fit; `Truncated`
/// when a fixed field of the TPDU's kind is missing.
pub fn parse_cotp(i: &[u8]) -> Result<Cotp<'_>, DissectError> {
    let (i, li) = nc::be_u8::<_, DissectError>(i).map_err(complete_err)?;
    if li == 0 || usize::from(li) > i.len() {
        return Err(DissectError::BadCotpLength {
            li,
            available: i.len(),
        });
    }
    let (payload, header) = bc::take::<_, _, DissectError>(li)(i).map_err(complete_err)?;
    let (h, kind) = nc::be_u8::<_, DissectError>(header).map_err(complete_err)?;
    let mut anomalies = Anomalies::empty();
    let pdu = match kind & 0xf0 {
        CotpType::DT => {
            let (_, nr) = nc::be_u8::<_, DissectError>(h).map_err(complete_err)?;
            CotpPdu::Data {
                eot: nr & 0x80 != 0,
                number: nr & 0x7f,
                payload,
            }
        }
        t @ (CotpType::CR | CotpType::CC) => {
            let (h, dst_ref) = nc::be_u16::<_, DissectError>(h).map_err(complete_err)?;
            let (h, src_ref) = nc::be_u16::<_, DissectError>(h).map_err(complete_err)?;
            let (mut h, class_option) = nc::be_u8::<_, DissectError>(h).map_err(complete_err)?;
            let mut c = CotpConnect {
                dst_ref,
                src_ref,
                class_option,
                ..CotpConnect::default()
            };
            // Parameters: [code][length][value]; every turn consumes at least 2 bytes.
            while let [code, len, rest @ ..] = h {
                let Some(value) = rest.get(..usize::from(*len)) else {
                    anomalies |= Anomalies::BAD_LENGTH;
                    break;
                };
                match *code {
                    PARAM_CALLING_TSAP => c.calling_tsap = Some(value),
                    PARAM_CALLED_TSAP => c.called_tsap = Some(value),
                    PARAM_TPDU_SIZE => c.tpdu_size = value.first().copied(),
                    _ => {}
                }
                h = rest.get(usize::from(*len)..).unwrap_or_default();
            }
            if h.len() == 1 {
                anomalies |= Anomalies::BAD_LENGTH;
            }
            if t == CotpType::CR {
                CotpPdu::ConnectionRequest(c)
            } else {
                CotpPdu::ConnectionConfirm(c)
            }
        }
        CotpType::DR => CotpPdu::DisconnectRequest,
        other => CotpPdu::Other { tpdu_type: other },
    };
    Ok(Cotp { pdu, anomalies })
}

// ---------------------------------------------------------------------------------
// S7comm

/// The S7comm header (10 bytes; 12 for ack and ack_data, which add the error class
/// and code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S7Header {
    pub rosctr: Rosctr,
    pub redundancy_id: u16,
    pub pdu_ref: u16,
    pub param_len: u16,
    pub data_len: u16,
    /// Ack / ack_data: (error class, error code).
    pub error: Option<(u8, u8)>,
}

/// One S7comm PDU, framed but not yet interpreted. Borrows the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S7Pdu<'a> {
    pub header: S7Header,
    /// The parameter part (as far as present).
    pub param: &'a [u8],
    /// The data part (as far as present).
    pub data: &'a [u8],
    /// `BAD_LENGTH` when the header lengths disagree with the bytes present.
    pub anomalies: Anomalies,
}

/// Parses one S7comm PDU (a whole COTP TSDU starting with 0x32), complete and lax:
/// parameter and data lengths that overrun the TSDU are clipped and flagged
/// `BAD_LENGTH`, as are bytes left over after them. `Truncated` when the header
/// itself is incomplete.
pub fn parse_s7_pdu(i: &[u8]) -> Result<S7Pdu<'_>, DissectError> {
    fn header(i: &[u8]) -> PResult<'_, S7Header> {
        let (i, _protocol_id) = nc::be_u8(i)?;
        let (i, rosctr) = nc::be_u8(i)?;
        let (i, redundancy_id) = nc::be_u16(i)?;
        let (i, pdu_ref) = nc::be_u16(i)?;
        let (i, param_len) = nc::be_u16(i)?;
        let (i, data_len) = nc::be_u16(i)?;
        let rosctr = Rosctr(rosctr);
        let (i, error) = if rosctr.has_error_field() {
            let (i, class) = nc::be_u8(i)?;
            let (i, code) = nc::be_u8(i)?;
            (i, Some((class, code)))
        } else {
            (i, None)
        };
        Ok((
            i,
            S7Header {
                rosctr,
                redundancy_id,
                pdu_ref,
                param_len,
                data_len,
                error,
            },
        ))
    }
    let (body, header) = header(i).map_err(complete_err)?;
    let mut anomalies = Anomalies::empty();
    let p = usize::from(header.param_len);
    let d = usize::from(header.data_len);
    if p + d != body.len() {
        anomalies |= Anomalies::BAD_LENGTH;
    }
    let param = body.get(..p).unwrap_or(body);
    let after = body.get(p..).unwrap_or_default();
    let data = after.get(..d).unwrap_or(after);
    Ok(S7Pdu {
        header,
        param,
        data,
        anomalies,
    })
}

/// Var spec byte and the any-pointer syntax id.
const VAR_SPEC: u8 = 0x12;
pub const SYNTAX_ID_S7ANY: u8 = 0x10;

/// One request item of read var / write var.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSpec {
    /// 0x10 for the any-pointer; other syntaxes (DB read of S7-400, NCK, symbolic
    /// addressing of the S7-1200, ...) are skipped by their length and have no
    /// address here.
    pub syntax_id: u8,
    pub transport_size: u8,
    pub length: u16,
    pub db: u16,
    pub area: Area,
    /// The any-pointer's 24-bit bit address (byte << 3 | bit).
    pub bit_address: u32,
}

/// Parses one item of a read var / write var parameter: `[0x12][spec length]
/// [syntax id]...`; an any-pointer (syntax 0x10, spec length 10) carries the
/// transport size, count, DB number, area and bit address.
pub fn parse_item_spec(i: &[u8]) -> PResult<'_, ItemSpec> {
    let (i, spec) = nc::be_u8(i)?;
    if spec != VAR_SPEC {
        return Err(nom::Err::Error(DissectError::Nom(ErrorKind::Tag)));
    }
    let (i, len) = nc::be_u8(i)?;
    let (rest, body) = bc::take(len)(i)?;
    let (b, syntax_id) = nc::be_u8(body)?;
    if syntax_id != SYNTAX_ID_S7ANY || len < 10 {
        return Ok((
            rest,
            ItemSpec {
                syntax_id,
                transport_size: 0,
                length: 0,
                db: 0,
                area: Area(0),
                bit_address: 0,
            },
        ));
    }
    let (b, transport_size) = nc::be_u8(b)?;
    let (b, length) = nc::be_u16(b)?;
    let (b, db) = nc::be_u16(b)?;
    let (b, area) = nc::be_u8(b)?;
    let (_, bit_address) = nc::be_u24(b)?;
    Ok((
        rest,
        ItemSpec {
            syntax_id,
            transport_size,
            length,
            db,
            area: Area(area),
            bit_address,
        },
    ))
}

/// One data item (write var request, read var response, userdata data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataItem<'a> {
    pub return_code: u8,
    pub transport_size: DataTransportSize,
    /// The length field as sent (bits or bytes, by transport size).
    pub length: u16,
    pub data: &'a [u8],
    /// The length field promised more bytes than are present (`data` holds those
    /// present).
    pub truncated: bool,
}

/// Parses one data item: `[return code][transport size][length u16][data]`, then a
/// fill byte after an odd-length item that is not the `last` one. Lax: a length that
/// overruns the input yields the bytes present and `truncated`.
pub fn parse_data_item(i: &[u8], last: bool) -> PResult<'_, DataItem<'_>> {
    let (i, return_code) = nc::be_u8(i)?;
    // A failed read item may stop after its return code and transport size.
    let (i, transport_size) = nc::be_u8(i)?;
    let transport_size = DataTransportSize(transport_size);
    let (i, length) = nc::be_u16(i)?;
    let n = transport_size.byte_len(length);
    let truncated = n > i.len();
    let data = i.get(..n).unwrap_or(i);
    let mut rest = i.get(n..).unwrap_or_default();
    if n % 2 == 1 && !last {
        rest = rest.get(1..).unwrap_or_default();
    }
    Ok((
        rest,
        DataItem {
            return_code,
            transport_size,
            length,
            data,
            truncated,
        },
    ))
}

/// The parameter of a userdata PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserdataParam {
    /// 0x11 request, 0x12 response.
    pub method: u8,
    /// High nibble of the type/group byte: 0 push, 4 request, 8 response.
    pub kind: u8,
    pub group: UserdataGroup,
    pub subfunction: u8,
    pub sequence: u8,
    /// Extended parameter (length 8): fragment reference, last-fragment flag (0 when
    /// last) and the 16-bit error code.
    pub data_unit_ref: Option<u8>,
    pub last_data_unit: Option<u8>,
    pub error_code: Option<u16>,
}

/// Parses a userdata parameter: `[00 01 12][length][method][type|group]
/// [subfunction][sequence]` and, when the length is 8, `[data unit ref][last data
/// unit][error code u16]`.
pub fn parse_userdata_param(i: &[u8]) -> PResult<'_, UserdataParam> {
    let (i, _head) = bc::take(3usize)(i)?;
    let (i, len) = nc::be_u8(i)?;
    let (i, method) = nc::be_u8(i)?;
    let (i, type_group) = nc::be_u8(i)?;
    let (i, subfunction) = nc::be_u8(i)?;
    let (i, sequence) = nc::be_u8(i)?;
    let mut p = UserdataParam {
        method,
        kind: type_group >> 4,
        group: UserdataGroup(type_group & 0x0f),
        subfunction,
        sequence,
        data_unit_ref: None,
        last_data_unit: None,
        error_code: None,
    };
    if len >= 8 {
        let (i, dur) = nc::be_u8(i)?;
        let (i, last) = nc::be_u8(i)?;
        let (i, err) = nc::be_u16(i)?;
        p.data_unit_ref = Some(dur);
        p.last_data_unit = Some(last);
        p.error_code = Some(err);
        return Ok((i, p));
    }
    Ok((i, p))
}

// ---------------------------------------------------------------------------------
// S7comm-plus

/// The S7comm-plus frame header: `[0x72][version][data length u16]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlusHeader<'a> {
    pub version: u8,
    pub data_len: u16,
    /// The data part as far as present (the header's length, clipped).
    pub data: &'a [u8],
    /// The frame ends with the trailer `[0x72][version][00 00]` (the last or only
    /// fragment of a message).
    pub has_trailer: bool,
    /// `BAD_LENGTH` when the length disagrees with the TSDU.
    pub anomalies: Anomalies,
}

/// Parses the S7comm-plus header of one COTP TSDU (complete, lax).
pub fn parse_plus_header(i: &[u8]) -> Result<PlusHeader<'_>, DissectError> {
    fn fields(i: &[u8]) -> PResult<'_, (u8, u16)> {
        let (i, _protocol_id) = nc::be_u8(i)?;
        let (i, version) = nc::be_u8(i)?;
        let (i, len) = nc::be_u16(i)?;
        Ok((i, (version, len)))
    }
    let (rest, (version, data_len)) = fields(i).map_err(complete_err)?;
    let n = usize::from(data_len);
    let mut anomalies = Anomalies::empty();
    let data = rest.get(..n).unwrap_or(rest);
    let after = rest.get(n..).unwrap_or_default();
    let has_trailer = match after {
        [] => false,
        [S7COMM_PLUS_PROTOCOL_ID, v, 0, 0] if *v == version => true,
        _ => {
            anomalies |= Anomalies::BAD_LENGTH;
            false
        }
    };
    if n > rest.len() {
        anomalies |= Anomalies::BAD_LENGTH;
    }
    Ok(PlusHeader {
        version,
        data_len,
        data,
        has_trailer,
        anomalies,
    })
}

/// The value of the digest length byte that starts a V3 frame's integrity part, and
/// the digest's length.
pub const PLUS_DIGEST_LEN: u8 = 0x20;

/// The data of a V3 frame (S7-1500 from firmware 1.5) after its integrity part,
/// `[digest length 0x20][32-byte digest]`, which every frame of a V3 message carries
/// first. What follows is laid out as a V1/V2 data part. `None` when the integrity
/// part is not that (another length byte, or fewer than 32 digest bytes).
pub fn plus_v3_payload(data: &[u8]) -> Option<&[u8]> {
    match data.split_first() {
        Some((&PLUS_DIGEST_LEN, rest)) => rest.get(usize::from(PLUS_DIGEST_LEN)..),
        _ => None,
    }
}

/// Can an S7comm-plus frame of `version` with this data part start a message, or does
/// it continue one (a later frame of a message in several frames carries the next
/// bytes of the data, whatever they are)? A message starts with its opcode: a request,
/// response or response2 with the reserved word 0 after it, or a notification; in V3
/// after the integrity digest, which every V3 frame starts with. Keep-alives (no
/// data), system events (0xfe) and unknown versions are single frames: they start one.
///
/// In the public captures every frame that starts a message passes (opcodes 0x31,
/// 0x32 and 0x02 with a reserved word of 0, 0x33, in V3 after the digest), and the
/// later frames of multi-frame messages begin with 0x00, 0x03 or 0xbe.
pub fn plus_message_start(version: u8, data: &[u8]) -> bool {
    fn opcode_first(data: &[u8]) -> bool {
        matches!(data, [0x31 | 0x32 | 0x02, 0, 0, ..] | [0x33, ..])
    }
    match (version, data) {
        (_, []) => true,
        (1 | 2, _) => opcode_first(data),
        (3, _) => plus_v3_payload(data).is_some_and(opcode_first),
        _ => true,
    }
}

/// The readable start of an S7comm-plus data part: `[opcode][reserved u16]
/// [function u16][reserved u16][sequence u16]` and, in requests, `[session id u32]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlusData {
    pub opcode: u8,
    pub function: u16,
    pub sequence: u16,
    pub session_id: Option<u32>,
}

/// Parses the start of a (V1/V2, or V3 after its digest) S7comm-plus data part.
pub fn parse_plus_data(i: &[u8]) -> Result<PlusData, DissectError> {
    fn fields(i: &[u8]) -> PResult<'_, PlusData> {
        let (i, opcode) = nc::be_u8(i)?;
        let (i, _reserved) = nc::be_u16(i)?;
        let (i, function) = nc::be_u16(i)?;
        let (i, _reserved) = nc::be_u16(i)?;
        let (i, sequence) = nc::be_u16(i)?;
        let (i, session_id) = if opcode == 0x31 {
            let (i, s) = nc::be_u32(i)?;
            (i, Some(s))
        } else {
            (i, None)
        };
        Ok((
            i,
            PlusData {
                opcode,
                function,
                sequence,
                session_id,
            },
        ))
    }
    fields(i).map(|(_, d)| d).map_err(complete_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- TPKT + COTP framing ----

    /// A TPKT carrying a COTP DT with EOT and an S7comm setup communication job (the
    /// first PDU of ndpi_s7comm.pcap, frame 3).
    const SETUP_JOB: [u8; 25] = [
        0x03, 0x00, 0x00, 0x19, // TPKT: version 3, reserved, length 25
        0x02, 0xf0, 0x80, // COTP: LI 2, DT, EOT | number 0
        0x32, 0x01, 0x00, 0x00, 0x02, 0x00, // S7: id, job, redundancy 0, pdu ref 0x0200
        0x00, 0x08, 0x00, 0x00, // param length 8, data length 0
        0xf0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xe0, // setup comm, amq 1/1, pdu 480
    ];

    #[test]
    fn tpkt_frames_and_every_strict_prefix_is_incomplete() {
        let (rest, t) = parse_tpkt(&SETUP_JOB, 16384).unwrap();
        assert!(rest.is_empty());
        assert_eq!(t.length, 25);
        assert_eq!(t.payload.len(), 21);
        for n in 0..SETUP_JOB.len() {
            assert!(
                matches!(
                    parse_tpkt(&SETUP_JOB[..n], 16384),
                    Err(nom::Err::Incomplete(_))
                ),
                "prefix {n}"
            );
        }
    }

    #[test]
    fn tpkt_rejects_bad_headers() {
        let mut v = SETUP_JOB;
        v[0] = 4;
        assert!(matches!(
            parse_tpkt(&v, 16384),
            Err(nom::Err::Error(DissectError::NotTpkt { version: 4, .. }))
        ));
        let mut v = SETUP_JOB;
        v[3] = 6; // length 6 < 7
        assert!(matches!(
            parse_tpkt(&v, 16384),
            Err(nom::Err::Error(DissectError::BadTpktLength { length: 6 }))
        ));
        assert!(matches!(
            parse_tpkt(&SETUP_JOB, 24),
            Err(nom::Err::Error(DissectError::BadTpktLength { length: 25 }))
        ));
    }

    #[test]
    fn cotp_dt_and_length_lies() {
        let (_, t) = parse_tpkt(&SETUP_JOB, 16384).unwrap();
        let c = parse_cotp(t.payload).unwrap();
        let CotpPdu::Data {
            eot,
            number,
            payload,
        } = c.pdu
        else {
            panic!("{c:?}")
        };
        assert!(eot);
        assert_eq!(number, 0);
        assert_eq!(payload.first(), Some(&0x32));
        assert_eq!(payload.len(), 18);
        // LI 0 and LI beyond the TPDU.
        assert!(matches!(
            parse_cotp(&[0x00, 0xf0, 0x80]),
            Err(DissectError::BadCotpLength { li: 0, .. })
        ));
        assert!(matches!(
            parse_cotp(&[0x09, 0xf0, 0x80]),
            Err(DissectError::BadCotpLength {
                li: 9,
                available: 2
            })
        ));
        // DT header without its number byte.
        assert_eq!(parse_cotp(&[0x01, 0xf0]), Err(DissectError::Truncated));
    }

    #[test]
    fn cotp_connection_request_tsaps() {
        // ISO 8073 13.3: LI 17, CR (0xe0), dst ref 0, src ref 0x0001, class 0;
        // params c1 (calling TSAP) 2 bytes 0x0100, c2 (called TSAP) 0x0102 (rack 0
        // slot 2), c0 (TPDU size) 0x0a (1024).
        let cr = [
            0x11, 0xe0, 0x00, 0x00, 0x00, 0x01, 0x00, // LI, CR, dst, src, class
            0xc1, 0x02, 0x01, 0x00, // calling TSAP
            0xc2, 0x02, 0x01, 0x02, // called TSAP
            0xc0, 0x01, 0x0a, // TPDU size
        ];
        let c = parse_cotp(&cr).unwrap();
        assert!(c.anomalies.is_empty());
        let CotpPdu::ConnectionRequest(c) = c.pdu else {
            panic!()
        };
        assert_eq!(c.src_ref, 1);
        assert_eq!(c.calling_tsap, Some(&[0x01, 0x00][..]));
        assert_eq!(c.called_tsap, Some(&[0x01, 0x02][..]));
        assert_eq!(c.tpdu_size, Some(0x0a));
        // A parameter whose length overruns the header.
        let mut bad = cr;
        bad[8] = 0x20;
        let c = parse_cotp(&bad).unwrap();
        assert_eq!(c.anomalies, Anomalies::BAD_LENGTH);
        // Every strict prefix of the fixed part is an error, not a panic.
        for n in 0..cr.len() {
            let _ = parse_cotp(&cr[..n]);
        }
    }

    #[test]
    fn header_check() {
        use DtPayload::{Continues, Starts};
        let yes = HeaderCheck::Yes { len: 25 };
        assert_eq!(check_header(&SETUP_JOB, 16384, Starts), yes);
        assert_eq!(
            check_header(&SETUP_JOB[..5], 16384, Starts),
            HeaderCheck::NeedMore
        );
        // The S7 header's lengths are needed to decide.
        assert_eq!(
            check_header(&SETUP_JOB[..15], 16384, Starts),
            HeaderCheck::NeedMore
        );
        let mut v = SETUP_JOB;
        v[7] = 0x99; // DT payload not S7
        assert_eq!(check_header(&v, 16384, Starts), HeaderCheck::No);
        // Unless it continues a TSDU.
        assert_eq!(check_header(&v, 16384, Continues), yes);
        assert_eq!(
            check_header(b"GET / HTTP/1.1", 16384, Starts),
            HeaderCheck::No
        );
    }

    /// After a gap, the first DT may be the middle or the end of a TSDU whose first
    /// octet happens to be 0x32: the S7 header must agree with the TPDU.
    #[test]
    fn a_dt_starts_a_tsdu_only_with_a_consistent_s7_header() {
        let check = |v: &[u8]| check_header(v, 16384, DtPayload::Starts);
        let yes = HeaderCheck::Yes { len: 25 };
        // SETUP_JOB: TPKT 0..4, COTP LI/type/EOT 4..7, S7 id 7, ROSCTR 8, redundancy
        // id 9..11, pdu ref 11..13, parameter length 13..15, data length 15..17; the
        // TSDU is 18 octets, 10 of header and 8 of parameter.
        let with = |at: usize, b: u8| {
            let mut v = SETUP_JOB;
            v[at] = b;
            v
        };
        assert_eq!(check(&with(14, 7)), HeaderCheck::No, "short of the TSDU");
        assert_eq!(check(&with(14, 9)), HeaderCheck::No, "beyond the TSDU");
        assert_eq!(check(&with(16, 1)), HeaderCheck::No, "data beyond the TSDU");
        assert_eq!(check(&with(8, 4)), HeaderCheck::No, "unknown ROSCTR");
        assert_eq!(check(&with(10, 1)), HeaderCheck::No, "redundancy id");
        // Userdata has the job's 10-octet header.
        assert_eq!(check(&with(8, 7)), yes);
        // Ack_data has 12 octets of header (error class and code): the same
        // lengths then overrun the TSDU by two.
        assert_eq!(check(&with(8, 3)), HeaderCheck::No);
        let mut ack = with(8, 3);
        ack[14] = 6;
        assert_eq!(check(&ack), yes);
        // Without EOT the PDU continues in later TPDUs: its lengths must overrun
        // this one.
        let first = with(6, 0x00);
        assert_eq!(check(&first), HeaderCheck::No, "fits, yet no EOT");
        let mut first = with(6, 0x00);
        first[14] = 9;
        assert_eq!(check(&first), yes);
        // A TSDU shorter than an S7 header, and an empty DT (keep-alive).
        let short = [0x03, 0x00, 0x00, 0x0a, 0x02, 0xf0, 0x80, 0x32, 0x01, 0x00];
        assert_eq!(check(&short), HeaderCheck::No);
        let empty = [0x03, 0x00, 0x00, 0x07, 0x02, 0xf0, 0x80];
        assert_eq!(check(&empty), HeaderCheck::Yes { len: 7 });
        // Followed by another TPKT: its bytes are not the empty DT's payload.
        let mut two = empty.to_vec();
        two.extend_from_slice(&SETUP_JOB);
        assert_eq!(check(&two), HeaderCheck::Yes { len: 7 });
    }

    #[test]
    fn an_s7comm_plus_message_starts_with_its_opcode() {
        // Data parts of frames that start messages, as in the public captures: a
        // request (opcode 0x31, reserved 0, function 0x04ca), a response, a
        // response2, a notification (its own layout), a keep-alive, a system event;
        // V3: a request and a notification after the digest
        // (icsnpp_s7comm_plus.pcap frames 7 and 2).
        let v3 = |after: &[u8]| [&[0x20][..], &[0x5a; 32], after].concat();
        let (v3_request, v3_notification) = (
            v3(&[0x31, 0x00, 0x00, 0x04, 0xf2]),
            v3(&[0x33, 0x70, 0x00, 0x0e, 0x51]),
        );
        for (version, data) in [
            (1, &[0x31, 0x00, 0x00, 0x04, 0xca][..]),
            (2, &[0x32, 0x00, 0x00, 0x05, 0x42][..]),
            (2, &[0x02, 0x00, 0x00, 0x04, 0xf2][..]),
            (2, &[0x33, 0x10, 0x00, 0x00, 0x04][..]),
            (3, &v3_request[..]),
            (3, &v3_notification[..]),
            (2, &[][..]),
            (0xfe, &[0x00, 0x01][..]),
        ] {
            assert!(plus_message_start(version, data), "{version} {data:02x?}");
        }
        // Later frames of multi-frame messages in the same captures begin with the
        // next bytes of the data; an opcode without its reserved word is one too. A
        // later V3 frame has its own digest, then the next bytes of the data. A V3
        // frame without a whole integrity part starts nothing.
        let (v3_later, v3_cut) = (v3(&[0x00, 0x04, 0xc0]), v3(&[]));
        for (version, data) in [
            (2, &[0x00, 0x04, 0xc0, 0x00, 0x02][..]),
            (2, &[0x03, 0xa0, 0x68, 0x00, 0x00][..]),
            (2, &[0xbe, 0x52, 0x27][..]),
            (2, &[0x32, 0x01, 0x00, 0x05, 0x42][..]),
            (1, &[0x31][..]),
            (3, &[0x00, 0x20][..]),
            (3, &v3_later[..]),
            (3, &v3_cut[..]),
            (3, &v3_request[..32]),
            (3, &v3_request[1..]),
        ] {
            assert!(!plus_message_start(version, data), "{version} {data:02x?}");
        }
    }

    #[test]
    fn a_v3_payload_follows_a_32_byte_digest() {
        let mut f = vec![0x20];
        f.extend_from_slice(&[0x5a; 32]);
        assert_eq!(plus_v3_payload(&f), Some(&[][..]));
        f.extend_from_slice(&[0x31, 0x00]);
        assert_eq!(plus_v3_payload(&f), Some(&[0x31, 0x00][..]));
        for n in 0..33 {
            assert_eq!(plus_v3_payload(&f[..n]), None, "{n}");
        }
        f[0] = 0x1f;
        assert_eq!(plus_v3_payload(&f), None);
    }

    #[test]
    fn a_dt_starts_an_s7comm_plus_or_tls_tsdu_only_with_a_consistent_header() {
        // A TPKT and class 0 DT around `tsdu`.
        let dt = |eot: bool, tsdu: &[u8]| {
            let mut v = vec![0x03, 0x00];
            v.extend_from_slice(&(tsdu.len() as u16 + 7).to_be_bytes());
            v.extend_from_slice(&[0x02, 0xf0, if eot { 0x80 } else { 0x00 }]);
            v.extend_from_slice(tsdu);
            v
        };
        let check = |eot: bool, tsdu: &[u8]| {
            check_header(&dt(eot, tsdu), 16384, DtPayload::Starts) != HeaderCheck::No
        };
        // S7comm-plus V2, 4 octets of data, with and without the trailer.
        let data = [0x72, 0x02, 0x00, 0x04, 0x31, 0x00, 0x00, 0x04];
        let whole = [data.as_slice(), &[0x72, 0x02, 0x00, 0x00]].concat();
        assert!(check(true, &whole));
        assert!(check(true, &data));
        assert!(!check(true, &whole[..whole.len() - 1]), "cut trailer");
        let mut v5 = whole.clone();
        v5[1] = 0x05;
        assert!(!check(true, &v5), "unknown version");
        // The first fragment of a frame: its length runs past the fragment.
        assert!(check(false, &data[..6]));
        assert!(!check(false, &whole), "fits, yet no EOT");
        // TLS 1.2 application data, a record of 2 octets.
        let tls = [0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb];
        assert!(check(true, &tls));
        assert!(
            !check(true, &[0x17, 0x02, 0x03, 0x00, 0x02, 0xaa, 0xbb]),
            "version 2.x"
        );
        assert!(
            !check(true, &[0x17, 0x03, 0x03, 0x00, 0x10, 0xaa, 0xbb]),
            "record past the TSDU"
        );
        assert!(check(false, &[0x17, 0x03, 0x03, 0x00, 0x10, 0xaa, 0xbb]));
        assert!(!check(true, &tls[..4]), "shorter than a record header");
    }

    #[test]
    fn a_dt_without_eot_leaves_its_tsdu_open() {
        assert!(!leaves_tsdu_open(&SETUP_JOB));
        let mut v = SETUP_JOB;
        v[6] = 0x00;
        assert!(leaves_tsdu_open(&v));
        // Only a DT: a connection request has no EOT bit there.
        v[5] = 0xe0;
        assert!(!leaves_tsdu_open(&v));
        assert!(!leaves_tsdu_open(&SETUP_JOB[..6]));
    }

    // ---- S7comm ----

    #[test]
    fn s7_header_and_lengths() {
        let p = parse_s7_pdu(&SETUP_JOB[7..]).unwrap();
        assert_eq!(p.header.rosctr, Rosctr::JOB);
        assert_eq!(p.header.pdu_ref, 0x0200);
        assert_eq!(p.header.error, None);
        assert_eq!(p.param.len(), 8);
        assert!(p.data.is_empty());
        assert!(p.anomalies.is_empty());
        // Ack_data: 12-byte header with error class/code.
        let ack = [
            0x32, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x81, 0x04, 0xf0,
        ];
        let p = parse_s7_pdu(&ack).unwrap();
        assert_eq!(p.header.error, Some((0x81, 0x04)));
        assert_eq!(p.param, &[0xf0]);
        // Parameter length larger than the PDU: clipped, flagged.
        let mut lie = SETUP_JOB[7..].to_vec();
        lie[7] = 0x40;
        let p = parse_s7_pdu(&lie).unwrap();
        assert_eq!(p.anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(p.param.len(), 8);
        // Every strict prefix of the header is Truncated.
        for n in 0..10 {
            assert_eq!(
                parse_s7_pdu(&SETUP_JOB[7..7 + n]),
                Err(DissectError::Truncated)
            );
        }
        for n in 0..12 {
            assert_eq!(parse_s7_pdu(&ack[..n]), Err(DissectError::Truncated));
        }
    }

    #[test]
    fn any_pointer_item() {
        // [0x12][len 10][syntax 0x10][BYTE 0x02][count 4][DB 1][area 0x84 DB]
        // [address 0x000050: byte 10 bit 0]
        let item = [
            0x12, 0x0a, 0x10, 0x02, 0x00, 0x04, 0x00, 0x01, 0x84, 0x00, 0x00, 0x50,
        ];
        let (rest, s) = parse_item_spec(&item).unwrap();
        assert!(rest.is_empty());
        assert_eq!(s.syntax_id, 0x10);
        assert_eq!((s.transport_size, s.length, s.db), (2, 4, 1));
        assert_eq!(s.area, Area::DATA_BLOCK);
        assert_eq!(s.bit_address, 0x50);
        for n in 0..item.len() {
            assert!(parse_item_spec(&item[..n]).is_err(), "prefix {n}");
        }
        // Another syntax (0xb0, DB read of the S7-400): skipped by its length.
        let other = [0x12, 0x07, 0xb0, 0x01, 0x00, 0x00, 0x01, 0x00, 0x02, 0xff];
        let (rest, s) = parse_item_spec(&other).unwrap();
        assert_eq!(rest, &[0xff]);
        assert_eq!(s.syntax_id, 0xb0);
    }

    #[test]
    fn data_items_pad_and_truncate() {
        // rc 0xff, BYTE/WORD/DWORD, 8 bits, 1 byte 0x2a, fill byte; then rc 0xff, BIT,
        // 1 bit, 0x01 (last: no fill).
        let d = [
            0xff, 0x04, 0x00, 0x08, 0x2a, 0x00, 0xff, 0x03, 0x00, 0x01, 0x01,
        ];
        let (rest, a) = parse_data_item(&d, false).unwrap();
        assert_eq!(
            (a.return_code, a.data, a.truncated),
            (0xff, &[0x2a][..], false)
        );
        let (rest, b) = parse_data_item(rest, true).unwrap();
        assert!(rest.is_empty());
        assert_eq!(b.data, &[0x01]);
        // Length overruns: what is present, flagged.
        let (_, t) = parse_data_item(&[0xff, 0x09, 0x00, 0x10, 0x01], true).unwrap();
        assert!(t.truncated);
        assert_eq!(t.data, &[0x01]);
    }

    #[test]
    fn userdata_param() {
        // SZL read request (ndpi_s7comm.pcap frame 6): head 00 01 12, length 4,
        // method 0x11 request, type 4 / group 4, subfunction 1, sequence 0.
        let (_, p) =
            parse_userdata_param(&[0x00, 0x01, 0x12, 0x04, 0x11, 0x44, 0x01, 0x00]).unwrap();
        assert_eq!((p.kind, p.group, p.subfunction), (4, UserdataGroup(4), 1));
        assert_eq!(p.error_code, None);
        // Response (frame 34): length 8, 0x12, type 8 / group 3, subfunction 3,
        // seq 0, dur 0, last 0, error code 0xd209.
        let r = [
            0x00, 0x01, 0x12, 0x08, 0x12, 0x83, 0x03, 0x00, 0x00, 0x00, 0xd2, 0x09,
        ];
        let (_, p) = parse_userdata_param(&r).unwrap();
        assert_eq!((p.kind, p.group.0, p.subfunction), (8, 3, 3));
        assert_eq!(p.error_code, Some(0xd209));
        for n in 0..8 {
            assert!(parse_userdata_param(&r[..n]).is_err());
        }
    }

    // ---- S7comm-plus ----

    #[test]
    fn plus_header_and_data() {
        // V1 SetMultiVariables response (wswiki_S7-1511_db6w0_HMI.pcap frame 10): 0x72,
        // version 2, length 0x11; opcode 0x32, reserved, function 0x0542, reserved,
        // sequence 2, then 8 bytes; trailer 72 02 00 00.
        let f = [
            0x72, 0x02, 0x00, 0x11, 0x32, 0x00, 0x00, 0x05, 0x42, 0x00, 0x00, 0x00, 0x02, 0x34,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x72, 0x02, 0x00, 0x00,
        ];
        let h = parse_plus_header(&f).unwrap();
        assert_eq!((h.version, h.data_len, h.has_trailer), (2, 0x11, true));
        assert!(h.anomalies.is_empty());
        let d = parse_plus_data(h.data).unwrap();
        assert_eq!((d.opcode, d.function, d.sequence), (0x32, 0x0542, 2));
        assert_eq!(d.session_id, None);
        // A request carries the session id.
        let q = [
            0x31, 0x00, 0x00, 0x05, 0x42, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x03, 0x88,
        ];
        assert_eq!(parse_plus_data(&q).unwrap().session_id, Some(0x388));
        for n in 0..q.len() {
            assert_eq!(parse_plus_data(&q[..n]), Err(DissectError::Truncated));
        }
        for n in 0..4 {
            assert_eq!(parse_plus_header(&f[..n]), Err(DissectError::Truncated));
        }
        // A fragment: no trailer.
        let h = parse_plus_header(&f[..21]).unwrap();
        assert!(!h.has_trailer);
        assert!(h.anomalies.is_empty());
    }
}
