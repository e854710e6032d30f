//! Pure nom parsers for Modbus/TCP (Modbus Application Protocol v1.1b3 and the
//! Modbus Messaging on TCP/IP Implementation Guide v1.0b).
//!
//! Framing (the MBAP header) is *streaming*: `Incomplete` until the whole ADU is
//! buffered. Inside the ADU, `take(length)` has already bounded the input, so the body
//! parsers are *complete*: running out of bytes there is an error (`Error`), never a
//! request for more.
//!
//! The body parsers are lax about the redundant byte-count fields: they return the
//! count as read *and* the bytes actually present, and leave the comparison to the
//! caller (which flags `BAD_LENGTH` and still reports what it can). They fail only
//! when a fixed field is missing.

use std::fmt;

use nom::bytes::{complete as bc, streaming as bs};
use nom::error::{ErrorKind, ParseError};
use nom::number::{complete as nc, streaming as ns};
use nom::IResult;
use otwatch_event::Anomalies;

use crate::codes::{ExceptionCode, FunctionCode, MeiType, UmasFunctionCode};

/// Size of the MBAP header up to and including the length field.
pub const MBAP_PREFIX_LEN: usize = 6;
/// Smallest legal MBAP length: unit id + function code.
pub const MIN_MBAP_LENGTH: u16 = 2;
/// Largest legal MBAP length: unit id + the 253-byte PDU of the serial line limit.
pub const MAX_MBAP_LENGTH: u16 = 254;

/// Why a parser failed. Small and `Copy`; it never carries input bytes, so it can be a
/// metric label ([`DissectError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DissectError {
    /// The MBAP length is outside `2..=254`: framing is lost and the caller must
    /// resynchronise.
    BadLength { length: u16 },
    /// A fixed field of the body is missing (the body is shorter than its function
    /// requires).
    Truncated,
    /// Any other nom failure.
    Nom(ErrorKind),
}

impl DissectError {
    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DissectError::BadLength { .. } => "bad_length",
            DissectError::Truncated => "truncated",
            DissectError::Nom(_) => "parse",
        }
    }
}

impl fmt::Display for DissectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DissectError::BadLength { length } => {
                write!(f, "MBAP length {length} outside 2..=254")
            }
            DissectError::Truncated => f.write_str("Modbus PDU shorter than its function requires"),
            DissectError::Nom(kind) => write!(f, "Modbus parse error ({kind:?})"),
        }
    }
}

impl std::error::Error for DissectError {}

impl<I> ParseError<I> for DissectError {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        // Complete number and `take` parsers report a short input as `Eof`: inside a
        // framed ADU that is a truncated body.
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

/// One Modbus/TCP ADU, framed but not yet interpreted. Borrows the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModbusAdu<'a> {
    pub transaction_id: u16,
    pub protocol_id: u16,
    /// The MBAP length field (unit id + PDU).
    pub length: u16,
    pub unit_id: u8,
    /// The function code as on the wire (exception bit included).
    pub function: FunctionCode,
    /// The PDU after the function code.
    pub data: &'a [u8],
    /// Framing anomalies (`PROTOCOL_ID`).
    pub anomalies: Anomalies,
}

/// Parses one Modbus/TCP ADU from the front of `i`.
///
/// `Incomplete` until the whole ADU is buffered; `Error(BadLength)` when the MBAP
/// length is out of range (framing is lost: the caller resynchronises). A protocol id
/// other than 0 with a sane length is framed and flagged `PROTOCOL_ID`.
pub fn parse_modbus_adu(i: &[u8]) -> IResult<&[u8], ModbusAdu<'_>, DissectError> {
    let (i, transaction_id) = ns::be_u16(i)?;
    let (i, protocol_id) = ns::be_u16(i)?;
    let (i, length) = ns::be_u16(i)?;
    if !(MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH).contains(&length) {
        return Err(nom::Err::Error(DissectError::BadLength { length }));
    }
    let (rest, body) = bs::take(length)(i)?;
    // Complete inside the body: `length >= 2` guarantees both bytes.
    let (body, unit_id) = nc::be_u8(body)?;
    let (data, function) = nc::be_u8(body)?;
    let mut anomalies = Anomalies::empty();
    if protocol_id != 0 {
        anomalies |= Anomalies::PROTOCOL_ID;
    }
    Ok((
        rest,
        ModbusAdu {
            transaction_id,
            protocol_id,
            length,
            unit_id,
            function: FunctionCode(function),
            data,
            anomalies,
        },
    ))
}

/// What the MBAP header at the front of some bytes says, for resynchronisation and
/// content detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCheck {
    /// Not a plausible header.
    No,
    /// Too few bytes to decide.
    NeedMore,
    /// A plausible header of an ADU of `len` bytes (header included).
    Yes { len: usize },
}

/// How much a header check demands of the function code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FunctionCheck {
    /// Any code but 0 and a bare 0x80 (resynchronisation: undefined and user codes do
    /// occur on real networks; the following-header test carries the weight).
    Defined,
    /// A code this dissector knows, with or without the exception bit (content
    /// detection on a first packet, where nothing else corroborates).
    Known,
}

/// Checks the MBAP header at the front of `i`: protocol id 0, length in range, and a
/// function code as `functions` demands.
pub(crate) fn check_header(i: &[u8], functions: FunctionCheck) -> HeaderCheck {
    match i {
        [_, _, 0, 0, len_hi, len_lo, _, function, ..] => {
            let length = u16::from_be_bytes([*len_hi, *len_lo]);
            let fc = FunctionCode(*function);
            let function_ok = match functions {
                FunctionCheck::Defined => fc.base().0 != 0,
                FunctionCheck::Known => fc.is_known(),
            };
            if (MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH).contains(&length) && function_ok {
                HeaderCheck::Yes {
                    len: MBAP_PREFIX_LEN + usize::from(length),
                }
            } else {
                HeaderCheck::No
            }
        }
        [_, _, a, b, ..] if (*a, *b) != (0, 0) => HeaderCheck::No,
        [_, _, _, _, len_hi, len_lo, ..]
            if !(MIN_MBAP_LENGTH..=MAX_MBAP_LENGTH)
                .contains(&u16::from_be_bytes([*len_hi, *len_lo])) =>
        {
            HeaderCheck::No
        }
        _ => HeaderCheck::NeedMore,
    }
}

/// The body of a request PDU (after the function code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// 1 read coils, 2 read discrete inputs, 3 read holding registers, 4 read input
    /// registers.
    Read { address: u16, quantity: u16 },
    /// 5 write single coil, 6 write single register.
    WriteSingle { address: u16, value: u16 },
    /// 7, 11, 12, 17: no data.
    Empty,
    /// 8 diagnostics.
    Diagnostics { sub_function: u16, data: &'a [u8] },
    /// 15 write multiple coils (`data`: packed bits), 16 write multiple registers
    /// (`data`: big-endian words).
    WriteMultiple {
        address: u16,
        quantity: u16,
        byte_count: u8,
        data: &'a [u8],
    },
    /// 20 read file record (`data`: 7-byte sub-requests), 21 write file record
    /// (`data`: sub-requests with their record data). The 21 response echoes this.
    FileRecords { byte_count: u8, data: &'a [u8] },
    /// 22 mask write register (the response echoes it).
    MaskWrite {
        address: u16,
        and_mask: u16,
        or_mask: u16,
    },
    /// 23 read/write multiple registers.
    ReadWriteMultiple {
        read_address: u16,
        read_quantity: u16,
        write_address: u16,
        write_quantity: u16,
        byte_count: u8,
        data: &'a [u8],
    },
    /// 24 read FIFO queue.
    ReadFifo { pointer_address: u16 },
    /// 43 encapsulated interface transport.
    Mei { mei_type: MeiType, data: &'a [u8] },
    /// 90 UMAS.
    Umas {
        session_key: u8,
        function: UmasFunctionCode,
        data: &'a [u8],
    },
    /// Any other function: the data, uninterpreted.
    Unknown { data: &'a [u8] },
}

/// The body of a response PDU (after the function code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// Function code with the exception bit: one exception code byte.
    Exception { code: ExceptionCode },
    /// 1, 2 (`data`: packed bits), 3, 4, 23 (`data`: big-endian words), 17 (`data`:
    /// server id, run indicator, additional data).
    ByteCounted { byte_count: u8, data: &'a [u8] },
    /// 5, 6: echo of the request.
    WriteSingle { address: u16, value: u16 },
    /// 7 read exception status.
    ExceptionStatus { status: u8 },
    /// 8 diagnostics (echo or result).
    Diagnostics { sub_function: u16, data: &'a [u8] },
    /// 11 get comm event counter.
    CommEventCounter { status: u16, event_count: u16 },
    /// 12 get comm event log.
    CommEventLog {
        byte_count: u8,
        status: u16,
        event_count: u16,
        message_count: u16,
        events: &'a [u8],
    },
    /// 15, 16: address and quantity written.
    WriteMultiple { address: u16, quantity: u16 },
    /// 20 read file record (`data`: sub-responses), 21 write file record (echo of the
    /// request's sub-requests).
    FileRecords { byte_count: u8, data: &'a [u8] },
    /// 22 mask write register (echo).
    MaskWrite {
        address: u16,
        and_mask: u16,
        or_mask: u16,
    },
    /// 24 read FIFO queue.
    ReadFifo {
        byte_count: u16,
        fifo_count: u16,
        data: &'a [u8],
    },
    /// 43 encapsulated interface transport.
    Mei { mei_type: MeiType, data: &'a [u8] },
    /// 90 UMAS: status 0xFE (OK) / 0xFD (error) in place of the function code.
    Umas {
        session_key: u8,
        status: u8,
        data: &'a [u8],
    },
    /// Any other function.
    Unknown { data: &'a [u8] },
}

fn address_and_u16(i: &[u8]) -> PResult<'_, (u16, u16)> {
    let (i, a) = nc::be_u16(i)?;
    let (i, b) = nc::be_u16(i)?;
    Ok((i, (a, b)))
}

/// Parses a request body for wire function code `function` (a request with the
/// exception bit set is `Unknown`).
///
/// Returns the unparsed remainder: for fixed-size bodies a non-empty remainder means
/// the MBAP length is longer than the function needs.
pub fn parse_request(function: FunctionCode, data: &[u8]) -> PResult<'_, Request<'_>> {
    match function {
        FunctionCode::READ_COILS
        | FunctionCode::READ_DISCRETE_INPUTS
        | FunctionCode::READ_HOLDING_REGISTERS
        | FunctionCode::READ_INPUT_REGISTERS => {
            let (i, (address, quantity)) = address_and_u16(data)?;
            Ok((i, Request::Read { address, quantity }))
        }
        FunctionCode::WRITE_SINGLE_COIL | FunctionCode::WRITE_SINGLE_REGISTER => {
            let (i, (address, value)) = address_and_u16(data)?;
            Ok((i, Request::WriteSingle { address, value }))
        }
        FunctionCode::READ_EXCEPTION_STATUS
        | FunctionCode::GET_COMM_EVENT_COUNTER
        | FunctionCode::GET_COMM_EVENT_LOG
        | FunctionCode::REPORT_SERVER_ID => Ok((data, Request::Empty)),
        FunctionCode::DIAGNOSTICS => {
            let (data, sub_function) = nc::be_u16(data)?;
            Ok((&[], Request::Diagnostics { sub_function, data }))
        }
        FunctionCode::WRITE_MULTIPLE_COILS | FunctionCode::WRITE_MULTIPLE_REGISTERS => {
            let (i, (address, quantity)) = address_and_u16(data)?;
            let (data, byte_count) = nc::be_u8(i)?;
            Ok((
                &[],
                Request::WriteMultiple {
                    address,
                    quantity,
                    byte_count,
                    data,
                },
            ))
        }
        FunctionCode::READ_FILE_RECORD | FunctionCode::WRITE_FILE_RECORD => {
            let (data, byte_count) = nc::be_u8(data)?;
            Ok((&[], Request::FileRecords { byte_count, data }))
        }
        FunctionCode::MASK_WRITE_REGISTER => {
            parse_mask_write(data).map(|(i, (address, and_mask, or_mask))| {
                (
                    i,
                    Request::MaskWrite {
                        address,
                        and_mask,
                        or_mask,
                    },
                )
            })
        }
        FunctionCode::READ_WRITE_MULTIPLE_REGISTERS => {
            let (i, (read_address, read_quantity)) = address_and_u16(data)?;
            let (i, (write_address, write_quantity)) = address_and_u16(i)?;
            let (data, byte_count) = nc::be_u8(i)?;
            Ok((
                &[],
                Request::ReadWriteMultiple {
                    read_address,
                    read_quantity,
                    write_address,
                    write_quantity,
                    byte_count,
                    data,
                },
            ))
        }
        FunctionCode::READ_FIFO_QUEUE => {
            let (i, pointer_address) = nc::be_u16(data)?;
            Ok((i, Request::ReadFifo { pointer_address }))
        }
        FunctionCode::ENCAPSULATED_INTERFACE_TRANSPORT => {
            let (data, mei_type) = nc::be_u8(data)?;
            Ok((
                &[],
                Request::Mei {
                    mei_type: MeiType(mei_type),
                    data,
                },
            ))
        }
        FunctionCode::UMAS => {
            let (i, session_key) = nc::be_u8(data)?;
            let (data, function) = nc::be_u8(i)?;
            Ok((
                &[],
                Request::Umas {
                    session_key,
                    function: UmasFunctionCode(function),
                    data,
                },
            ))
        }
        _ => Ok((&[], Request::Unknown { data })),
    }
}

fn parse_mask_write(i: &[u8]) -> PResult<'_, (u16, u16, u16)> {
    let (i, address) = nc::be_u16(i)?;
    let (i, and_mask) = nc::be_u16(i)?;
    let (i, or_mask) = nc::be_u16(i)?;
    Ok((i, (address, and_mask, or_mask)))
}

/// Parses a response body for wire function code `function`: an exception response
/// when its exception bit is set, else the base function's response.
pub fn parse_response(function: FunctionCode, data: &[u8]) -> PResult<'_, Response<'_>> {
    if function.is_exception() {
        let (i, code) = nc::be_u8(data)?;
        return Ok((
            i,
            Response::Exception {
                code: ExceptionCode(code),
            },
        ));
    }
    match function {
        FunctionCode::READ_COILS
        | FunctionCode::READ_DISCRETE_INPUTS
        | FunctionCode::READ_HOLDING_REGISTERS
        | FunctionCode::READ_INPUT_REGISTERS
        | FunctionCode::READ_WRITE_MULTIPLE_REGISTERS
        | FunctionCode::REPORT_SERVER_ID => {
            let (data, byte_count) = nc::be_u8(data)?;
            Ok((&[], Response::ByteCounted { byte_count, data }))
        }
        FunctionCode::WRITE_SINGLE_COIL | FunctionCode::WRITE_SINGLE_REGISTER => {
            let (i, (address, value)) = address_and_u16(data)?;
            Ok((i, Response::WriteSingle { address, value }))
        }
        FunctionCode::READ_EXCEPTION_STATUS => {
            let (i, status) = nc::be_u8(data)?;
            Ok((i, Response::ExceptionStatus { status }))
        }
        FunctionCode::DIAGNOSTICS => {
            let (data, sub_function) = nc::be_u16(data)?;
            Ok((&[], Response::Diagnostics { sub_function, data }))
        }
        FunctionCode::GET_COMM_EVENT_COUNTER => {
            let (i, (status, event_count)) = address_and_u16(data)?;
            Ok((
                i,
                Response::CommEventCounter {
                    status,
                    event_count,
                },
            ))
        }
        FunctionCode::GET_COMM_EVENT_LOG => {
            let (i, byte_count) = nc::be_u8(data)?;
            let (i, (status, event_count)) = address_and_u16(i)?;
            let (events, message_count) = nc::be_u16(i)?;
            Ok((
                &[],
                Response::CommEventLog {
                    byte_count,
                    status,
                    event_count,
                    message_count,
                    events,
                },
            ))
        }
        FunctionCode::WRITE_MULTIPLE_COILS | FunctionCode::WRITE_MULTIPLE_REGISTERS => {
            let (i, (address, quantity)) = address_and_u16(data)?;
            Ok((i, Response::WriteMultiple { address, quantity }))
        }
        FunctionCode::READ_FILE_RECORD | FunctionCode::WRITE_FILE_RECORD => {
            let (data, byte_count) = nc::be_u8(data)?;
            Ok((&[], Response::FileRecords { byte_count, data }))
        }
        FunctionCode::MASK_WRITE_REGISTER => {
            parse_mask_write(data).map(|(i, (address, and_mask, or_mask))| {
                (
                    i,
                    Response::MaskWrite {
                        address,
                        and_mask,
                        or_mask,
                    },
                )
            })
        }
        FunctionCode::READ_FIFO_QUEUE => {
            let (i, byte_count) = nc::be_u16(data)?;
            let (data, fifo_count) = nc::be_u16(i)?;
            Ok((
                &[],
                Response::ReadFifo {
                    byte_count,
                    fifo_count,
                    data,
                },
            ))
        }
        FunctionCode::ENCAPSULATED_INTERFACE_TRANSPORT => {
            let (data, mei_type) = nc::be_u8(data)?;
            Ok((
                &[],
                Response::Mei {
                    mei_type: MeiType(mei_type),
                    data,
                },
            ))
        }
        FunctionCode::UMAS => {
            let (i, session_key) = nc::be_u8(data)?;
            let (data, status) = nc::be_u8(i)?;
            Ok((
                &[],
                Response::Umas {
                    session_key,
                    status,
                    data,
                },
            ))
        }
        _ => Ok((&[], Response::Unknown { data })),
    }
}

/// One sub-request of Read File Record (20), or the header of one sub-request of
/// Write File Record (21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSubRequest<'a> {
    pub reference_type: u8,
    pub file_number: u16,
    pub record_number: u16,
    pub record_length: u16,
    /// FC 21: the record data (`record_length` words, or fewer when truncated). Empty
    /// for FC 20.
    pub data: &'a [u8],
}

/// Parses one 7-byte Read File Record sub-request.
pub fn parse_file_read_sub_request(i: &[u8]) -> PResult<'_, FileSubRequest<'_>> {
    let (i, reference_type) = nc::be_u8(i)?;
    let (i, (file_number, record_number)) = address_and_u16(i)?;
    let (i, record_length) = nc::be_u16(i)?;
    Ok((
        i,
        FileSubRequest {
            reference_type,
            file_number,
            record_number,
            record_length,
            data: &[],
        },
    ))
}

/// Parses one Write File Record sub-request (header and `record_length` words of
/// data). `Error(Truncated)` when the data is shorter than announced.
pub fn parse_file_write_sub_request(i: &[u8]) -> PResult<'_, FileSubRequest<'_>> {
    let (i, mut sub) = parse_file_read_sub_request(i)?;
    let (i, data) = bc::take(usize::from(sub.record_length) * 2)(i)?;
    sub.data = data;
    Ok((i, sub))
}

/// One sub-response of Read File Record: reference type and record data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSubResponse<'a> {
    /// The sub-response length byte (reference type + data).
    pub length: u8,
    pub reference_type: u8,
    pub data: &'a [u8],
}

/// Parses one Read File Record sub-response.
pub fn parse_file_read_sub_response(i: &[u8]) -> PResult<'_, FileSubResponse<'_>> {
    let (i, length) = nc::be_u8(i)?;
    let (i, reference_type) = nc::be_u8(i)?;
    let (i, data) = bc::take(usize::from(length.saturating_sub(1)))(i)?;
    Ok((
        i,
        FileSubResponse {
            length,
            reference_type,
            data,
        },
    ))
}

/// Read Device Identification (43/14) request fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceIdRequest {
    pub read_device_id_code: u8,
    pub object_id: u8,
}

/// Parses the 43/14 request data (after the MEI type).
pub fn parse_device_id_request(i: &[u8]) -> PResult<'_, DeviceIdRequest> {
    let (i, read_device_id_code) = nc::be_u8(i)?;
    let (i, object_id) = nc::be_u8(i)?;
    Ok((
        i,
        DeviceIdRequest {
            read_device_id_code,
            object_id,
        },
    ))
}

/// Read Device Identification (43/14) response header; `objects` holds the object
/// list, read with [`parse_device_id_object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceIdResponse<'a> {
    pub read_device_id_code: u8,
    pub conformity_level: u8,
    pub more_follows: u8,
    pub next_object_id: u8,
    pub number_of_objects: u8,
    pub objects: &'a [u8],
}

/// Parses the 43/14 response data (after the MEI type).
pub fn parse_device_id_response(i: &[u8]) -> PResult<'_, DeviceIdResponse<'_>> {
    let (i, read_device_id_code) = nc::be_u8(i)?;
    let (i, conformity_level) = nc::be_u8(i)?;
    let (i, more_follows) = nc::be_u8(i)?;
    let (i, next_object_id) = nc::be_u8(i)?;
    let (objects, number_of_objects) = nc::be_u8(i)?;
    Ok((
        &[],
        DeviceIdResponse {
            read_device_id_code,
            conformity_level,
            more_follows,
            next_object_id,
            number_of_objects,
            objects,
        },
    ))
}

/// Parses one device identification object: id, length, value.
pub fn parse_device_id_object(i: &[u8]) -> PResult<'_, (u8, &[u8])> {
    let (i, id) = nc::be_u8(i)?;
    let (i, len) = nc::be_u8(i)?;
    let (i, value) = bc::take(len)(i)?;
    Ok((i, (id, value)))
}

/// Big-endian 16-bit words of `b` (a trailing odd byte is ignored).
pub fn be_words(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    // `map` over `chunks_exact` keeps the exact length known to `collect`/`extend`
    // (a `filter_map` would make them push one word at a time).
    b.chunks_exact(2).map(|c| match c {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    })
}

/// The first `count` bits of `packed`, LSB of the first byte first (the Modbus
/// packing of coils and discrete inputs), as 0/1.
pub fn unpack_bits(packed: &[u8], count: usize) -> impl Iterator<Item = u16> + '_ {
    // A range of exactly the bits there are, as above: no per-bit capacity check.
    let n = packed.len().saturating_mul(8).min(count);
    (0..n).map(move |k| {
        packed
            .get(k / 8)
            .map_or(0, |b| u16::from((b >> (k % 8)) & 1))
    })
}

/// At most `limit` big-endian words of `b`, collected with their exact capacity (an
/// event's values are allocated once, never regrown).
pub fn be_words_vec(b: &[u8], limit: usize) -> Vec<u16> {
    let mut v = Vec::with_capacity((b.len() / 2).min(limit));
    v.extend(be_words(b).take(limit));
    v
}

/// The first `count` bits of `packed` as 0/1, collected with their exact capacity.
pub fn unpack_bits_vec(packed: &[u8], count: usize) -> Vec<u16> {
    // Written eight values per octet into a zeroed vector: no per-bit bounds or
    // capacity check (coil reads are a large share of polling).
    let mut v = vec![0u16; packed.len().saturating_mul(8).min(count)];
    for (chunk, byte) in v.chunks_mut(8).zip(packed) {
        for (bit, x) in chunk.iter_mut().enumerate() {
            *x = u16::from((byte >> bit) & 1);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec 6.3 example request wrapped in MBAP:
    /// `00 01` transaction, `00 00` protocol, `00 06` length, `11` unit,
    /// `03` read holding registers, `00 6B` address 107, `00 03` quantity 3.
    const READ_HOLDING: [u8; 12] = [
        0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6B, 0x00, 0x03,
    ];

    #[test]
    fn frames_an_adu() {
        let (rest, adu) = parse_modbus_adu(&READ_HOLDING).unwrap();
        assert!(rest.is_empty());
        assert_eq!(adu.transaction_id, 1);
        assert_eq!(adu.protocol_id, 0);
        assert_eq!(adu.length, 6);
        assert_eq!(adu.unit_id, 0x11);
        assert_eq!(adu.function, FunctionCode::READ_HOLDING_REGISTERS);
        assert_eq!(adu.data, &[0x00, 0x6B, 0x00, 0x03]);
        assert!(adu.anomalies.is_empty());
        let (rest, req) = parse_request(adu.function, adu.data).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            req,
            Request::Read {
                address: 107,
                quantity: 3
            }
        );
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for n in 0..READ_HOLDING.len() {
            let r = parse_modbus_adu(&READ_HOLDING[..n]);
            assert!(
                matches!(r, Err(nom::Err::Incomplete(_))),
                "prefix {n}: {r:?}"
            );
        }
    }

    #[test]
    fn leaves_the_next_adu() {
        let mut two = READ_HOLDING.to_vec();
        two.extend_from_slice(&READ_HOLDING);
        let (rest, _) = parse_modbus_adu(&two).unwrap();
        assert_eq!(rest, &READ_HOLDING);
    }

    #[test]
    fn bad_lengths_are_errors() {
        for length in [0u16, 1, 255, 0xFFFF] {
            let [hi, lo] = length.to_be_bytes();
            let adu = [0, 1, 0, 0, hi, lo, 1, 3, 0, 0, 0, 1];
            assert_eq!(
                parse_modbus_adu(&adu),
                Err(nom::Err::Error(DissectError::BadLength { length }))
            );
        }
    }

    #[test]
    fn protocol_id_is_flagged_not_rejected() {
        let mut adu = READ_HOLDING;
        adu[3] = 0x01; // protocol id 0x0001
        let (_, adu) = parse_modbus_adu(&adu).unwrap();
        assert_eq!(adu.protocol_id, 1);
        assert_eq!(adu.anomalies, Anomalies::PROTOCOL_ID);
    }

    #[test]
    fn short_fixed_fields_are_truncated_errors() {
        // Read coils with only the address.
        assert_eq!(
            parse_request(FunctionCode::READ_COILS, &[0x00, 0x13]),
            Err(nom::Err::Error(DissectError::Truncated))
        );
        // Exception response with no code byte.
        assert_eq!(
            parse_response(FunctionCode(0x81), &[]),
            Err(nom::Err::Error(DissectError::Truncated))
        );
    }

    #[test]
    fn exception_response() {
        // Spec 7: 81 02 = exception to read coils, illegal data address.
        let (rest, r) = parse_response(FunctionCode(0x81), &[0x02]).unwrap();
        assert!(rest.is_empty());
        assert_eq!(
            r,
            Response::Exception {
                code: ExceptionCode::ILLEGAL_DATA_ADDRESS
            }
        );
    }

    #[test]
    fn header_checks() {
        use FunctionCheck::{Defined, Known};
        assert_eq!(
            check_header(&READ_HOLDING, Known),
            HeaderCheck::Yes { len: 12 }
        );
        assert_eq!(
            check_header(&READ_HOLDING[..7], Known),
            HeaderCheck::NeedMore
        );
        // Protocol id not 0, or a bad length: rejected as soon as visible.
        assert_eq!(check_header(&[0, 1, 0, 1], Defined), HeaderCheck::No);
        assert_eq!(check_header(&[0, 1, 0, 0, 0, 0], Defined), HeaderCheck::No);
        assert_eq!(check_header(&[0, 1, 0, 0, 1, 0], Defined), HeaderCheck::No);
        // Undefined function code 0x42: fine for resync, not for content detection.
        let fc42 = [0, 1, 0, 0, 0, 2, 1, 0x42];
        assert_eq!(check_header(&fc42, Known), HeaderCheck::No);
        assert_eq!(check_header(&fc42, Defined), HeaderCheck::Yes { len: 8 });
        // Function code 0 is never plausible.
        assert_eq!(
            check_header(&[0, 1, 0, 0, 0, 2, 1, 0], Defined),
            HeaderCheck::No
        );
        assert_eq!(
            check_header(&[0, 1, 0, 0, 0, 2, 1, 0x80], Defined),
            HeaderCheck::No
        );
    }

    #[test]
    fn bits_and_words() {
        // Spec 6.1 response byte 0xCD = coils 27..20 = 1100 1101, LSB first.
        assert_eq!(
            unpack_bits(&[0xCD], 8).collect::<Vec<_>>(),
            [1, 0, 1, 1, 0, 0, 1, 1]
        );
        assert_eq!(unpack_bits(&[0xCD, 0x01], 10).count(), 10);
        assert_eq!(unpack_bits(&[0xCD], 20).count(), 8);
        assert_eq!(
            be_words(&[0x02, 0x2B, 0x00, 0x00, 0x01]).collect::<Vec<_>>(),
            [0x022B, 0]
        );
    }
}
