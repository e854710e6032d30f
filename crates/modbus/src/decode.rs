//! From a framed ADU to the event's `modbus` block, its operation and its anomalies.
//!
//! Pure functions: the request side returns, beside its event, the small
//! [`RequestContext`] that the flow state keeps until the response arrives; the
//! response side takes that context (when pairing found one) to attribute values to
//! addresses and to inherit the request's operation.

use otwatch_event::modbus::{DeviceIdObject, FileRecord, UmasInfo};
use otwatch_event::{Anomalies, ModbusInfo, Operation};

use crate::codes::{DiagnosticSubFunction, FunctionCode, MeiType, UmasFunctionCode};
use crate::parser::{
    be_words, be_words_vec, parse_device_id_object, parse_device_id_request,
    parse_device_id_response, parse_file_read_sub_request, parse_file_read_sub_response,
    parse_file_write_sub_request, parse_request, parse_response, unpack_bits_vec, FileSubRequest,
    ModbusAdu, Request, Response,
};

/// Spec limits (Modbus Application Protocol v1.1b3, section 6).
const MAX_READ_BITS: u16 = 2000;
const MAX_READ_REGISTERS: u16 = 125;
const MAX_WRITE_COILS: u16 = 1968;
const MAX_WRITE_REGISTERS: u16 = 123;
const MAX_RW_WRITE_REGISTERS: u16 = 121;
const MAX_FIFO_COUNT: u16 = 31;
const FILE_REFERENCE_TYPE: u8 = 6;
const COIL_ON: u16 = 0xFF00;
const COIL_OFF: u16 = 0x0000;

/// What a response needs to know about its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestContext {
    pub transaction_id: u16,
    pub unit_id: u8,
    /// The request's function code as on the wire.
    pub function: FunctionCode,
    pub operation: Operation,
    pub address: Option<u16>,
    pub quantity: Option<u16>,
    pub read_address: Option<u16>,
    pub read_quantity: Option<u16>,
    pub sub_function: Option<u16>,
    pub mei_type: Option<u8>,
    /// UMAS session key and function code.
    pub umas: Option<(u8, UmasFunctionCode)>,
}

/// One decoded ADU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Decoded {
    pub info: ModbusInfo,
    pub operation: Operation,
    pub anomalies: Anomalies,
}

/// The operation of a function from what the PDU itself says. `writes` is FC 23's
/// "does it write any register" (unknown on a lone response: then `write`, the
/// conservative answer).
fn operation_of(
    fc: FunctionCode,
    sub_function: Option<u16>,
    mei_type: Option<u8>,
    umas: Option<UmasFunctionCode>,
    writes: Option<bool>,
) -> Operation {
    match fc {
        FunctionCode::READ_COILS
        | FunctionCode::READ_DISCRETE_INPUTS
        | FunctionCode::READ_HOLDING_REGISTERS
        | FunctionCode::READ_INPUT_REGISTERS
        | FunctionCode::READ_FILE_RECORD
        | FunctionCode::READ_FIFO_QUEUE => Operation::Read,
        FunctionCode::WRITE_SINGLE_COIL
        | FunctionCode::WRITE_SINGLE_REGISTER
        | FunctionCode::WRITE_MULTIPLE_COILS
        | FunctionCode::WRITE_MULTIPLE_REGISTERS
        | FunctionCode::WRITE_FILE_RECORD
        | FunctionCode::MASK_WRITE_REGISTER => Operation::Write,
        FunctionCode::READ_WRITE_MULTIPLE_REGISTERS => match writes {
            Some(false) => Operation::Read,
            _ => Operation::Write,
        },
        FunctionCode::DIAGNOSTICS => match sub_function.map(DiagnosticSubFunction) {
            Some(DiagnosticSubFunction::RESTART_COMMUNICATIONS) => Operation::Restart,
            Some(DiagnosticSubFunction::FORCE_LISTEN_ONLY) => Operation::ModeChange,
            _ => Operation::Diagnostic,
        },
        FunctionCode::READ_EXCEPTION_STATUS
        | FunctionCode::GET_COMM_EVENT_COUNTER
        | FunctionCode::GET_COMM_EVENT_LOG => Operation::Diagnostic,
        FunctionCode::REPORT_SERVER_ID => Operation::Identify,
        FunctionCode::ENCAPSULATED_INTERFACE_TRANSPORT => match mei_type.map(MeiType) {
            Some(MeiType::READ_DEVICE_IDENTIFICATION) => Operation::Identify,
            _ => Operation::Other,
        },
        FunctionCode::UMAS => umas.map_or(Operation::Other, UmasFunctionCode::operation),
        _ => Operation::Other,
    }
}

fn flag_if(anomalies: &mut Anomalies, cond: bool, flag: Anomalies) {
    if cond {
        anomalies.insert(flag);
    }
}

fn out_of(range: std::ops::RangeInclusive<u16>, v: u16) -> bool {
    !range.contains(&v)
}

/// The bytes of a byte-counted field that are actually there.
fn counted(data: &[u8], byte_count: usize) -> &[u8] {
    data.get(..byte_count).unwrap_or(data)
}

/// FC 5/6 request or echo: one address, one value (a coil as 0/1, flagged when it is
/// neither 0xFF00 nor 0x0000).
fn write_single(
    info: &mut ModbusInfo,
    fc: FunctionCode,
    address: u16,
    value: u16,
    a: &mut Anomalies,
) {
    info.address = Some(address);
    info.quantity = Some(1);
    let v = if fc == FunctionCode::WRITE_SINGLE_COIL {
        coil_value(value, a)
    } else {
        value
    };
    info.values = Some(vec![v]);
}

fn coil_value(value: u16, anomalies: &mut Anomalies) -> u16 {
    match value {
        COIL_ON => 1,
        COIL_OFF => 0,
        raw => {
            anomalies.insert(Anomalies::OUT_OF_SPEC_VALUE);
            raw
        }
    }
}

type SubRequestParser =
    for<'a> fn(&'a [u8]) -> nom::IResult<&'a [u8], FileSubRequest<'a>, crate::DissectError>;

fn file_records(
    mut data: &[u8],
    parse: SubRequestParser,
    anomalies: &mut Anomalies,
) -> Vec<FileRecord> {
    let mut out = Vec::new();
    // Each sub-request is at least 7 bytes, so the loop ends within data.len() / 7 turns.
    while !data.is_empty() {
        match parse(data) {
            Ok((rest, sub)) => {
                flag_if(
                    anomalies,
                    sub.reference_type != FILE_REFERENCE_TYPE,
                    Anomalies::OUT_OF_SPEC_VALUE,
                );
                out.push(FileRecord {
                    reference_type: sub.reference_type,
                    file_number: sub.file_number,
                    record_number: sub.record_number,
                    record_length: sub.record_length,
                });
                data = rest;
            }
            Err(_) => {
                anomalies.insert(Anomalies::MALFORMED);
                break;
            }
        }
    }
    out
}

fn base_info(adu: &ModbusAdu<'_>, fc: FunctionCode, name: &'static str) -> ModbusInfo {
    ModbusInfo {
        transaction_id: adu.transaction_id,
        unit_id: adu.unit_id,
        function_code: fc.0,
        function: name,
        ..ModbusInfo::default()
    }
}

/// Decodes a request (client -> server) and the context its response will need.
pub(crate) fn decode_request(adu: &ModbusAdu<'_>) -> (Decoded, RequestContext) {
    let fc = adu.function;
    // A request cannot carry the exception bit: such a code is an unknown function.
    let name = if fc.is_exception() {
        "unknown"
    } else {
        fc.name()
    };
    let mut info = base_info(adu, fc, name);
    let mut a = adu.anomalies;
    if name == "unknown" {
        a.insert(Anomalies::UNKNOWN_FUNCTION);
    }
    let mut writes = None;
    let mut umas = None;
    match parse_request(fc, adu.data) {
        Err(_) => a.insert(Anomalies::MALFORMED),
        Ok((rest, req)) => {
            flag_if(&mut a, !rest.is_empty(), Anomalies::BAD_LENGTH);
            match req {
                Request::Read { address, quantity } => {
                    info.address = Some(address);
                    info.quantity = Some(quantity);
                    let max = match fc {
                        FunctionCode::READ_COILS | FunctionCode::READ_DISCRETE_INPUTS => {
                            MAX_READ_BITS
                        }
                        _ => MAX_READ_REGISTERS,
                    };
                    flag_if(
                        &mut a,
                        out_of(1..=max, quantity),
                        Anomalies::OUT_OF_SPEC_VALUE,
                    );
                }
                Request::WriteSingle { address, value } => {
                    write_single(&mut info, fc, address, value, &mut a);
                }
                Request::Empty => {}
                Request::Diagnostics { sub_function, data } => {
                    info.more_mut().sub_function = Some(sub_function);
                    if !data.is_empty() {
                        info.values = Some(be_words_vec(data, usize::MAX));
                    }
                }
                Request::WriteMultiple {
                    address,
                    quantity,
                    byte_count,
                    data,
                } => {
                    info.address = Some(address);
                    info.quantity = Some(quantity);
                    let bc = usize::from(byte_count);
                    let q = usize::from(quantity);
                    flag_if(&mut a, bc != data.len(), Anomalies::BAD_LENGTH);
                    let bytes = counted(data, bc);
                    if fc == FunctionCode::WRITE_MULTIPLE_COILS {
                        flag_if(
                            &mut a,
                            out_of(1..=MAX_WRITE_COILS, quantity),
                            Anomalies::OUT_OF_SPEC_VALUE,
                        );
                        flag_if(&mut a, bc != q.div_ceil(8), Anomalies::BAD_LENGTH);
                        info.values = Some(unpack_bits_vec(bytes, q));
                    } else {
                        flag_if(
                            &mut a,
                            out_of(1..=MAX_WRITE_REGISTERS, quantity),
                            Anomalies::OUT_OF_SPEC_VALUE,
                        );
                        flag_if(&mut a, bc != 2 * q, Anomalies::BAD_LENGTH);
                        info.values = Some(be_words_vec(bytes, q));
                    }
                }
                Request::FileRecords { byte_count, data } => {
                    flag_if(
                        &mut a,
                        usize::from(byte_count) != data.len(),
                        Anomalies::BAD_LENGTH,
                    );
                    let bytes = counted(data, usize::from(byte_count));
                    let (range, parse): (_, SubRequestParser) =
                        if fc == FunctionCode::READ_FILE_RECORD {
                            (0x07..=0xF5, parse_file_read_sub_request)
                        } else {
                            (0x09..=0xFB, parse_file_write_sub_request)
                        };
                    flag_if(
                        &mut a,
                        out_of(range, u16::from(byte_count)),
                        Anomalies::OUT_OF_SPEC_VALUE,
                    );
                    info.more_mut().file_records = Some(file_records(bytes, parse, &mut a));
                }
                Request::MaskWrite {
                    address,
                    and_mask,
                    or_mask,
                } => {
                    info.address = Some(address);
                    info.more_mut().and_mask = Some(and_mask);
                    info.more_mut().or_mask = Some(or_mask);
                }
                Request::ReadWriteMultiple {
                    read_address,
                    read_quantity,
                    write_address,
                    write_quantity,
                    byte_count,
                    data,
                } => {
                    info.more_mut().read_address = Some(read_address);
                    info.more_mut().read_quantity = Some(read_quantity);
                    info.address = Some(write_address);
                    info.quantity = Some(write_quantity);
                    // A write quantity of 0 is how some masters use FC 23 to read only:
                    // it is reported as a read, not flagged.
                    writes = Some(write_quantity != 0);
                    flag_if(
                        &mut a,
                        out_of(1..=MAX_READ_REGISTERS, read_quantity)
                            || write_quantity > MAX_RW_WRITE_REGISTERS,
                        Anomalies::OUT_OF_SPEC_VALUE,
                    );
                    let bc = usize::from(byte_count);
                    let q = usize::from(write_quantity);
                    flag_if(
                        &mut a,
                        bc != data.len() || bc != 2 * q,
                        Anomalies::BAD_LENGTH,
                    );
                    info.values = Some(be_words_vec(counted(data, bc), q));
                }
                Request::ReadFifo { pointer_address } => {
                    info.address = Some(pointer_address);
                }
                Request::Mei { mei_type, data } => {
                    info.more_mut().mei_type = Some(mei_type.0);
                    if mei_type == MeiType::READ_DEVICE_IDENTIFICATION {
                        match parse_device_id_request(data) {
                            Ok((rest, req)) => {
                                flag_if(&mut a, !rest.is_empty(), Anomalies::BAD_LENGTH);
                                flag_if(
                                    &mut a,
                                    !(1..=4).contains(&req.read_device_id_code),
                                    Anomalies::OUT_OF_SPEC_VALUE,
                                );
                            }
                            Err(_) => a.insert(Anomalies::MALFORMED),
                        }
                    }
                }
                Request::Umas {
                    session_key,
                    function,
                    data: _,
                } => {
                    umas = Some((session_key, function));
                    info.more_mut().umas = Some(UmasInfo {
                        session_key,
                        function_code: function.0,
                        function: function.name(),
                        status: None,
                    });
                }
                Request::Unknown { .. } => {}
            }
        }
    }
    let operation = if name == "unknown" {
        Operation::Other
    } else {
        operation_of(
            fc,
            info.more().sub_function,
            info.more().mei_type,
            umas.map(|(_, f)| f),
            writes,
        )
    };
    let ctx = RequestContext {
        transaction_id: adu.transaction_id,
        unit_id: adu.unit_id,
        function: fc,
        operation,
        address: info.address,
        quantity: info.quantity,
        read_address: info.more().read_address,
        read_quantity: info.more().read_quantity,
        sub_function: info.more().sub_function,
        mei_type: info.more().mei_type,
        umas,
    };
    (
        Decoded {
            info,
            operation,
            anomalies: a,
        },
        ctx,
    )
}

/// How pairing went for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pairing<'c> {
    /// The request with the same transaction id and function code.
    Matched(&'c RequestContext),
    /// A request with the same transaction id but another function code: it was
    /// answered, but its fields do not describe this response.
    Mismatched,
    /// No outstanding request has this transaction id.
    Unmatched,
}

/// Register or coil values of a read response, still packed: the caller expands them
/// into `ModbusInfo::values` only if the PDU is wanted (see `PduSink::wants`), as
/// polling reads are most of the traffic and their values are what costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packed<'a> {
    /// The first `count` bits of the octets (FC 1, 2).
    Bits(&'a [u8], usize),
    /// Up to `count` big-endian registers (FC 3, 4, 23).
    Words(&'a [u8], usize),
}

impl Packed<'_> {
    pub fn expand(self) -> Vec<u16> {
        match self {
            Packed::Bits(b, count) => unpack_bits_vec(b, count),
            Packed::Words(b, count) => be_words_vec(b, count),
        }
    }
}

/// Decodes a response (server -> client) given how pairing went; its register or coil
/// values, if any, are returned packed.
pub(crate) fn decode_response<'a>(
    adu: &ModbusAdu<'a>,
    pairing: Pairing<'_>,
) -> (Decoded, Option<Packed<'a>>) {
    let mut packed = None;
    let ctx = match pairing {
        Pairing::Matched(c) => Some(c),
        Pairing::Mismatched | Pairing::Unmatched => None,
    };
    let fc = adu.function.base();
    let mut info = base_info(adu, fc, fc.name());
    let mut a = adu.anomalies;
    if !fc.is_known() {
        a.insert(Anomalies::UNKNOWN_FUNCTION);
    }
    match pairing {
        Pairing::Matched(_) => {}
        Pairing::Mismatched => a.insert(Anomalies::RESPONSE_MISMATCH),
        Pairing::Unmatched => a.insert(Anomalies::UNMATCHED_RESPONSE),
    }
    if let Some(c) = ctx {
        info.address = c.address;
        info.quantity = c.quantity;
        // The less common fields are boxed: only a request that had one makes room.
        let rare = [c.read_address, c.read_quantity, c.sub_function];
        if rare.iter().any(Option::is_some) || c.mei_type.is_some() {
            let more = info.more_mut();
            more.read_address = c.read_address;
            more.read_quantity = c.read_quantity;
            more.sub_function = c.sub_function;
            more.mei_type = c.mei_type;
        }
        flag_if(
            &mut a,
            c.unit_id != adu.unit_id,
            Anomalies::RESPONSE_MISMATCH,
        );
    }
    let umas = ctx.and_then(|c| c.umas);
    // Echoed fields must agree with the request.
    let echo = |a: &mut Anomalies, mine: Option<u16>, theirs: Option<u16>| {
        if ctx.is_some() && mine != theirs {
            a.insert(Anomalies::RESPONSE_MISMATCH);
        }
    };
    match parse_response(adu.function, adu.data) {
        Err(_) => a.insert(Anomalies::MALFORMED),
        Ok((rest, resp)) => {
            flag_if(&mut a, !rest.is_empty(), Anomalies::BAD_LENGTH);
            match resp {
                Response::Exception { code } => {
                    info.exception_code = Some(code.0);
                    flag_if(&mut a, !code.is_known(), Anomalies::UNKNOWN_EXCEPTION);
                    if fc == FunctionCode::UMAS {
                        if let Some((session_key, f)) = umas {
                            info.more_mut().umas = Some(UmasInfo {
                                session_key,
                                function_code: f.0,
                                function: f.name(),
                                status: None,
                            });
                        }
                    }
                }
                Response::ByteCounted { byte_count, data } => {
                    let bc = usize::from(byte_count);
                    flag_if(&mut a, bc != data.len(), Anomalies::BAD_LENGTH);
                    let bytes = counted(data, bc);
                    match fc {
                        FunctionCode::READ_COILS | FunctionCode::READ_DISCRETE_INPUTS => {
                            let q = match ctx.and_then(|c| c.quantity) {
                                Some(q) => {
                                    flag_if(
                                        &mut a,
                                        bc != usize::from(q).div_ceil(8),
                                        Anomalies::RESPONSE_MISMATCH,
                                    );
                                    usize::from(q)
                                }
                                None => bytes.len() * 8,
                            };
                            packed = Some(Packed::Bits(bytes, q));
                        }
                        FunctionCode::REPORT_SERVER_ID => {}
                        _ => {
                            // 3, 4 and 23: registers.
                            flag_if(&mut a, bc % 2 != 0, Anomalies::BAD_LENGTH);
                            let q = if fc == FunctionCode::READ_WRITE_MULTIPLE_REGISTERS {
                                // The values are the *read* registers: they start at
                                // read_address, so address/quantity (the write part)
                                // are not reported here.
                                info.address = None;
                                info.quantity = None;
                                ctx.and_then(|c| c.read_quantity)
                            } else {
                                ctx.and_then(|c| c.quantity)
                            };
                            let q = match q {
                                Some(q) => {
                                    flag_if(
                                        &mut a,
                                        bc != 2 * usize::from(q),
                                        Anomalies::RESPONSE_MISMATCH,
                                    );
                                    usize::from(q)
                                }
                                None => bytes.len() / 2,
                            };
                            packed = Some(Packed::Words(bytes, q));
                        }
                    }
                }
                Response::WriteSingle { address, value } => {
                    echo(&mut a, Some(address), info.address);
                    write_single(&mut info, fc, address, value, &mut a);
                }
                Response::ExceptionStatus { status } => {
                    info.values = Some(vec![u16::from(status)]);
                }
                Response::Diagnostics { sub_function, data } => {
                    echo(&mut a, Some(sub_function), info.more().sub_function);
                    info.more_mut().sub_function = Some(sub_function);
                    if !data.is_empty() {
                        info.values = Some(be_words_vec(data, usize::MAX));
                    }
                }
                Response::CommEventCounter {
                    status,
                    event_count,
                } => {
                    info.values = Some(vec![status, event_count]);
                }
                Response::CommEventLog {
                    byte_count,
                    status,
                    event_count,
                    message_count,
                    events,
                } => {
                    flag_if(
                        &mut a,
                        usize::from(byte_count) != events.len() + 6,
                        Anomalies::BAD_LENGTH,
                    );
                    info.values = Some(vec![status, event_count, message_count]);
                }
                Response::WriteMultiple { address, quantity } => {
                    echo(&mut a, Some(address), info.address);
                    echo(&mut a, Some(quantity), info.quantity);
                    info.address = Some(address);
                    info.quantity = Some(quantity);
                }
                Response::FileRecords { byte_count, data } => {
                    flag_if(
                        &mut a,
                        usize::from(byte_count) != data.len(),
                        Anomalies::BAD_LENGTH,
                    );
                    let bytes = counted(data, usize::from(byte_count));
                    if fc == FunctionCode::WRITE_FILE_RECORD {
                        info.more_mut().file_records =
                            Some(file_records(bytes, parse_file_write_sub_request, &mut a));
                    } else {
                        flag_if(
                            &mut a,
                            out_of(0x07..=0xF5, u16::from(byte_count)),
                            Anomalies::OUT_OF_SPEC_VALUE,
                        );
                        info.values = Some(read_file_values(bytes, &mut a));
                    }
                }
                Response::MaskWrite {
                    address,
                    and_mask,
                    or_mask,
                } => {
                    echo(&mut a, Some(address), info.address);
                    info.address = Some(address);
                    info.more_mut().and_mask = Some(and_mask);
                    info.more_mut().or_mask = Some(or_mask);
                }
                Response::ReadFifo {
                    byte_count,
                    fifo_count,
                    data,
                } => {
                    flag_if(
                        &mut a,
                        usize::from(byte_count) != data.len() + 2
                            || usize::from(fifo_count) * 2 != data.len(),
                        Anomalies::BAD_LENGTH,
                    );
                    flag_if(
                        &mut a,
                        fifo_count > MAX_FIFO_COUNT,
                        Anomalies::OUT_OF_SPEC_VALUE,
                    );
                    info.values = Some(be_words_vec(data, usize::from(fifo_count)));
                }
                Response::Mei { mei_type, data } => {
                    echo(
                        &mut a,
                        Some(u16::from(mei_type.0)),
                        info.more().mei_type.map(u16::from),
                    );
                    info.more_mut().mei_type = Some(mei_type.0);
                    if mei_type == MeiType::READ_DEVICE_IDENTIFICATION {
                        info.more_mut().device_id = Some(device_id_objects(data, &mut a));
                    }
                }
                Response::Umas {
                    session_key,
                    status,
                    data: _,
                } => {
                    flag_if(
                        &mut a,
                        status != UmasFunctionCode::STATUS_OK
                            && status != UmasFunctionCode::STATUS_ERROR,
                        Anomalies::OUT_OF_SPEC_VALUE,
                    );
                    // A lone response does not say which UMAS function it answers.
                    let f = umas.map_or(UmasFunctionCode(0), |(_, f)| f);
                    info.more_mut().umas = Some(UmasInfo {
                        session_key,
                        function_code: f.0,
                        function: f.name(),
                        status: Some(status),
                    });
                }
                Response::Unknown { .. } => {}
            }
        }
    }
    let operation = match ctx {
        Some(c) => c.operation,
        None => operation_of(
            fc,
            info.more().sub_function,
            info.more().mei_type,
            None,
            None,
        ),
    };
    let decoded = Decoded {
        info,
        operation,
        anomalies: a,
    };
    (decoded, packed)
}

/// The record data of a Read File Record response, all sub-responses concatenated.
fn read_file_values(mut data: &[u8], a: &mut Anomalies) -> Vec<u16> {
    let mut values = Vec::new();
    // Each sub-response consumes at least 2 bytes.
    while !data.is_empty() {
        match parse_file_read_sub_response(data) {
            Ok((rest, sub)) => {
                flag_if(
                    a,
                    sub.reference_type != FILE_REFERENCE_TYPE,
                    Anomalies::OUT_OF_SPEC_VALUE,
                );
                flag_if(a, sub.data.len() % 2 != 0, Anomalies::BAD_LENGTH);
                values.extend(be_words(sub.data));
                data = rest;
            }
            Err(_) => {
                a.insert(Anomalies::MALFORMED);
                break;
            }
        }
    }
    values
}

/// The objects of a Read Device Identification response.
fn device_id_objects(data: &[u8], a: &mut Anomalies) -> Vec<DeviceIdObject> {
    let mut objects = Vec::new();
    match parse_device_id_response(data) {
        Err(_) => a.insert(Anomalies::MALFORMED),
        Ok((_, resp)) => {
            let mut rest = resp.objects;
            // At most `number_of_objects` (a u8) turns, each consuming >= 2 bytes.
            for _ in 0..resp.number_of_objects {
                match parse_device_id_object(rest) {
                    Ok((r, (id, value))) => {
                        objects.push(DeviceIdObject {
                            id,
                            value: String::from_utf8_lossy(value).into_owned(),
                        });
                        rest = r;
                    }
                    Err(_) => {
                        a.insert(Anomalies::MALFORMED);
                        break;
                    }
                }
            }
            flag_if(a, !rest.is_empty(), Anomalies::BAD_LENGTH);
        }
    }
    objects
}
