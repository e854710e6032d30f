//! Modbus/TCP ADUs, each built together with the event otwatch must report for it.
//!
//! A request builder returns the bytes and the expected fields; a response builder takes
//! the request it answers, because a response's event carries the request's address and
//! operation (output.md) and because the bytes of a read response depend on the request's
//! quantity. Layouts follow the Modbus Application Protocol Specification V1.1b3
//! (section numbers in the comments); UMAS (function 90) follows the public
//! reverse-engineering write-ups, and only its three header bytes matter to otwatch.

/// Which way a PDU goes, relative to the Modbus client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// The UMAS header of a function-90 PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Umas {
    pub session_key: u8,
    /// The UMAS function code; on a response, the one of its request.
    pub function_code: u8,
    /// Response status (0xFE OK, 0xFD error); `None` on requests.
    pub status: Option<u8>,
}

/// The `direction`, `operation` and `modbus` block of one expected event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub dir: Dir,
    pub operation: &'static str,
    pub transaction_id: u16,
    pub unit_id: u8,
    /// Without the exception bit.
    pub function_code: u8,
    pub exception_code: Option<u8>,
    pub address: Option<u16>,
    pub quantity: Option<u16>,
    pub values: Option<Vec<u16>>,
    pub read_address: Option<u16>,
    pub read_quantity: Option<u16>,
    pub and_mask: Option<u16>,
    pub or_mask: Option<u16>,
    pub sub_function: Option<u16>,
    pub mei_type: Option<u8>,
    pub device_id: Option<Vec<(u8, String)>>,
    pub umas: Option<Umas>,
}

impl Pdu {
    fn new(dir: Dir, operation: &'static str, tid: u16, unit: u8, fc: u8) -> Self {
        Pdu {
            dir,
            operation,
            transaction_id: tid,
            unit_id: unit,
            function_code: fc,
            exception_code: None,
            address: None,
            quantity: None,
            values: None,
            read_address: None,
            read_quantity: None,
            and_mask: None,
            or_mask: None,
            sub_function: None,
            mei_type: None,
            device_id: None,
            umas: None,
        }
    }

    /// The skeleton of the response to `self` (a request): same transaction, unit,
    /// function and operation.
    fn response(&self) -> Self {
        Pdu::new(
            Dir::ToClient,
            self.operation,
            self.transaction_id,
            self.unit_id,
            self.function_code,
        )
    }
}

/// One ADU on the wire and the event it must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adu {
    pub bytes: Vec<u8>,
    pub pdu: Pdu,
}

/// Function codes used here (spec section 6).
pub mod fc {
    pub const READ_COILS: u8 = 1;
    pub const READ_DISCRETE_INPUTS: u8 = 2;
    pub const READ_HOLDING_REGISTERS: u8 = 3;
    pub const READ_INPUT_REGISTERS: u8 = 4;
    pub const WRITE_SINGLE_COIL: u8 = 5;
    pub const WRITE_SINGLE_REGISTER: u8 = 6;
    pub const DIAGNOSTICS: u8 = 8;
    pub const WRITE_MULTIPLE_COILS: u8 = 15;
    pub const WRITE_MULTIPLE_REGISTERS: u8 = 16;
    pub const REPORT_SERVER_ID: u8 = 17;
    pub const MASK_WRITE_REGISTER: u8 = 22;
    pub const READ_WRITE_MULTIPLE_REGISTERS: u8 = 23;
    pub const ENCAPSULATED_INTERFACE: u8 = 43;
    pub const UMAS: u8 = 90;
}

/// UMAS function codes used here.
pub mod umas {
    pub const TAKE_PLC_RESERVATION: u8 = 0x10;
    pub const RELEASE_PLC_RESERVATION: u8 = 0x11;
    /// "Initialize upload": start of a strategy transfer *to* the PLC.
    pub const INITIALIZE_UPLOAD: u8 = 0x30;
    pub const UPLOAD_BLOCK: u8 = 0x31;
    pub const END_STRATEGY_UPLOAD: u8 = 0x32;
    /// "Initialize download": start of a strategy transfer *from* the PLC.
    pub const INITIALIZE_DOWNLOAD: u8 = 0x33;
    pub const DOWNLOAD_BLOCK: u8 = 0x34;
    pub const END_STRATEGY_DOWNLOAD: u8 = 0x35;
    pub const START_PLC: u8 = 0x40;
    pub const STOP_PLC: u8 = 0x41;
    pub const STATUS_OK: u8 = 0xfe;
}

/// MBAP header (transaction, protocol 0, length = unit + PDU) + unit + PDU.
pub fn mbap(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(7 + pdu.len());
    v.extend_from_slice(&tid.to_be_bytes());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    v.push(unit);
    v.extend_from_slice(pdu);
    v
}

/// The normalized operation of a function code that has one meaning whatever its data
/// (output.md, "Operations").
fn operation(function: u8) -> &'static str {
    match function {
        1 | 2 | 3 | 4 | 20 | 24 => "read",
        5 | 6 | 15 | 16 | 21 | 22 | 23 => "write",
        7 | 11 | 12 => "diagnostic",
        17 => "identify",
        _ => "other",
    }
}

fn u16s(words: &[u16]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// Coils packed LSB first, the last byte zero-padded (6.1, 6.11).
fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &on)| b | (u8::from(on) << i))
        })
        .collect()
}

fn bit_values(bits: &[bool]) -> Vec<u16> {
    bits.iter().map(|&b| u16::from(b)).collect()
}

/// FC 1/2 request (6.1, 6.2): address, quantity of bits.
pub fn read_bits(function: u8, tid: u16, unit: u8, address: u16, quantity: u16) -> Adu {
    let mut body = vec![function];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(&quantity.to_be_bytes());
    let mut pdu = Pdu::new(Dir::ToServer, operation(function), tid, unit, function);
    pdu.address = Some(address);
    pdu.quantity = Some(quantity);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 1/2 response: byte count, packed bits. The event's values are the `quantity`
/// requested bits (padding bits of the last byte are not coils).
pub fn read_bits_rsp(req: &Adu, bits: &[bool]) -> Adu {
    let packed = pack_bits(bits);
    let mut body = vec![req.pdu.function_code, packed.len() as u8];
    body.extend_from_slice(&packed);
    let mut pdu = req.pdu.response();
    pdu.address = req.pdu.address;
    pdu.values = Some(bit_values(bits));
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

/// FC 3/4 request (6.3, 6.4): address, quantity of registers.
pub fn read_regs(function: u8, tid: u16, unit: u8, address: u16, quantity: u16) -> Adu {
    read_bits(function, tid, unit, address, quantity)
}

/// FC 3/4 response: byte count, registers.
pub fn read_regs_rsp(req: &Adu, regs: &[u16]) -> Adu {
    let mut body = vec![req.pdu.function_code, (regs.len() * 2) as u8];
    body.extend_from_slice(&u16s(regs));
    let mut pdu = req.pdu.response();
    pdu.address = req.pdu.address;
    pdu.values = Some(regs.to_vec());
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

/// FC 5 request (6.5): address, 0xFF00 (on) or 0x0000 (off). Its response is an echo
/// ([`echo`]).
pub fn write_single_coil(tid: u16, unit: u8, address: u16, on: bool) -> Adu {
    let mut body = vec![fc::WRITE_SINGLE_COIL];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(if on { &[0xff, 0x00] } else { &[0x00, 0x00] });
    let mut pdu = Pdu::new(Dir::ToServer, "write", tid, unit, fc::WRITE_SINGLE_COIL);
    pdu.address = Some(address);
    pdu.values = Some(vec![u16::from(on)]);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 6 request (6.6): address, value. Its response is an echo ([`echo`]).
pub fn write_single_reg(tid: u16, unit: u8, address: u16, value: u16) -> Adu {
    let mut body = vec![fc::WRITE_SINGLE_REGISTER];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(&value.to_be_bytes());
    let mut pdu = Pdu::new(Dir::ToServer, "write", tid, unit, fc::WRITE_SINGLE_REGISTER);
    pdu.address = Some(address);
    pdu.values = Some(vec![value]);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// The normal response of FC 5, 6, 8 (most sub-functions) and 22: the request echoed.
/// The event carries the same fields as the request's.
pub fn echo(req: &Adu) -> Adu {
    let mut pdu = req.pdu.clone();
    pdu.dir = Dir::ToClient;
    Adu {
        bytes: req.bytes.clone(),
        pdu,
    }
}

/// FC 15 request (6.11): address, quantity, byte count, packed coils.
pub fn write_multi_coils(tid: u16, unit: u8, address: u16, bits: &[bool]) -> Adu {
    let packed = pack_bits(bits);
    let mut body = vec![fc::WRITE_MULTIPLE_COILS];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(&(bits.len() as u16).to_be_bytes());
    body.push(packed.len() as u8);
    body.extend_from_slice(&packed);
    let mut pdu = Pdu::new(Dir::ToServer, "write", tid, unit, fc::WRITE_MULTIPLE_COILS);
    pdu.address = Some(address);
    pdu.quantity = Some(bits.len() as u16);
    pdu.values = Some(bit_values(bits));
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 16 request (6.12): address, quantity, byte count, registers.
pub fn write_multi_regs(tid: u16, unit: u8, address: u16, regs: &[u16]) -> Adu {
    let mut body = vec![fc::WRITE_MULTIPLE_REGISTERS];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(&(regs.len() as u16).to_be_bytes());
    body.push((regs.len() * 2) as u8);
    body.extend_from_slice(&u16s(regs));
    let mut pdu = Pdu::new(
        Dir::ToServer,
        "write",
        tid,
        unit,
        fc::WRITE_MULTIPLE_REGISTERS,
    );
    pdu.address = Some(address);
    pdu.quantity = Some(regs.len() as u16);
    pdu.values = Some(regs.to_vec());
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 15/16 response: address and quantity written.
pub fn write_multi_rsp(req: &Adu) -> Adu {
    let p = &req.pdu;
    let mut body = vec![p.function_code];
    body.extend_from_slice(&p.address.unwrap_or(0).to_be_bytes());
    body.extend_from_slice(&p.quantity.unwrap_or(0).to_be_bytes());
    let mut pdu = p.response();
    pdu.address = p.address;
    pdu.quantity = p.quantity;
    Adu {
        bytes: mbap(p.transaction_id, p.unit_id, &body),
        pdu,
    }
}

/// FC 22 request (6.16): address, AND mask, OR mask. Its response is an echo.
pub fn mask_write(tid: u16, unit: u8, address: u16, and_mask: u16, or_mask: u16) -> Adu {
    let mut body = vec![fc::MASK_WRITE_REGISTER];
    body.extend_from_slice(&address.to_be_bytes());
    body.extend_from_slice(&and_mask.to_be_bytes());
    body.extend_from_slice(&or_mask.to_be_bytes());
    let mut pdu = Pdu::new(Dir::ToServer, "write", tid, unit, fc::MASK_WRITE_REGISTER);
    pdu.address = Some(address);
    pdu.and_mask = Some(and_mask);
    pdu.or_mask = Some(or_mask);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 23 request (6.17): read address, read quantity, write address, write quantity,
/// byte count, registers. The event's `address`/`quantity`/`values` are the write half,
/// `read_address`/`read_quantity` the read half.
pub fn read_write_regs(
    tid: u16,
    unit: u8,
    read_address: u16,
    read_quantity: u16,
    write_address: u16,
    regs: &[u16],
) -> Adu {
    let mut body = vec![fc::READ_WRITE_MULTIPLE_REGISTERS];
    body.extend_from_slice(&read_address.to_be_bytes());
    body.extend_from_slice(&read_quantity.to_be_bytes());
    body.extend_from_slice(&write_address.to_be_bytes());
    body.extend_from_slice(&(regs.len() as u16).to_be_bytes());
    body.push((regs.len() * 2) as u8);
    body.extend_from_slice(&u16s(regs));
    let mut pdu = Pdu::new(
        Dir::ToServer,
        "write",
        tid,
        unit,
        fc::READ_WRITE_MULTIPLE_REGISTERS,
    );
    pdu.address = Some(write_address);
    pdu.quantity = Some(regs.len() as u16);
    pdu.values = Some(regs.to_vec());
    pdu.read_address = Some(read_address);
    pdu.read_quantity = Some(read_quantity);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 23 response: byte count, the registers read. The event carries the request's
/// `read_address` and the values read (not the write half's `address`).
pub fn read_write_regs_rsp(req: &Adu, regs: &[u16]) -> Adu {
    let mut body = vec![fc::READ_WRITE_MULTIPLE_REGISTERS, (regs.len() * 2) as u8];
    body.extend_from_slice(&u16s(regs));
    let mut pdu = req.pdu.response();
    pdu.read_address = req.pdu.read_address;
    pdu.values = Some(regs.to_vec());
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

/// Exception response (7): function code | 0x80, exception code. The event carries the
/// request's function code and operation, without address or values.
pub fn exception(req: &Adu, code: u8) -> Adu {
    let body = [req.pdu.function_code | 0x80, code];
    let mut pdu = req.pdu.response();
    pdu.exception_code = Some(code);
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

/// FC 8 request (6.8): sub-function, data. 01 is a restart, 04 (force listen only) a
/// mode change, the others diagnostics.
pub fn diagnostics(tid: u16, unit: u8, sub_function: u16, data: u16) -> Adu {
    let mut body = vec![fc::DIAGNOSTICS];
    body.extend_from_slice(&sub_function.to_be_bytes());
    body.extend_from_slice(&data.to_be_bytes());
    let op = match sub_function {
        1 => "restart",
        4 => "mode_change",
        _ => "diagnostic",
    };
    let mut pdu = Pdu::new(Dir::ToServer, op, tid, unit, fc::DIAGNOSTICS);
    pdu.sub_function = Some(sub_function);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 17 request (6.13): no data.
pub fn report_server_id(tid: u16, unit: u8) -> Adu {
    Adu {
        bytes: mbap(tid, unit, &[fc::REPORT_SERVER_ID]),
        pdu: Pdu::new(Dir::ToServer, "identify", tid, unit, fc::REPORT_SERVER_ID),
    }
}

/// FC 17 response: byte count, server id, run indicator (0xFF on), additional data.
pub fn report_server_id_rsp(req: &Adu, server_id: u8, running: bool, extra: &[u8]) -> Adu {
    let mut body = vec![fc::REPORT_SERVER_ID, (2 + extra.len()) as u8, server_id];
    body.push(if running { 0xff } else { 0x00 });
    body.extend_from_slice(extra);
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu: req.pdu.response(),
    }
}

/// FC 43 / MEI 14 request (6.21): read device id code (1 basic), object id.
pub fn read_device_id(tid: u16, unit: u8, code: u8, object: u8) -> Adu {
    let body = [fc::ENCAPSULATED_INTERFACE, 14, code, object];
    let mut pdu = Pdu::new(
        Dir::ToServer,
        "identify",
        tid,
        unit,
        fc::ENCAPSULATED_INTERFACE,
    );
    pdu.mei_type = Some(14);
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 43 / MEI 14 response: code, conformity level, more follows (0), next object (0),
/// number of objects, then (id, length, value) per object.
pub fn read_device_id_rsp(req: &Adu, code: u8, objects: &[(u8, &str)]) -> Adu {
    let mut body = vec![fc::ENCAPSULATED_INTERFACE, 14, code, 0x01, 0x00, 0x00];
    body.push(objects.len() as u8);
    for (id, value) in objects {
        body.push(*id);
        body.push(value.len() as u8);
        body.extend_from_slice(value.as_bytes());
    }
    let mut pdu = req.pdu.response();
    pdu.mei_type = Some(14);
    pdu.device_id = Some(
        objects
            .iter()
            .map(|(id, v)| (*id, (*v).to_owned()))
            .collect(),
    );
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

/// The operation of a UMAS function (output.md: strategy transfer to the PLC is a
/// program download, start/stop a mode change, reservations a session).
fn umas_operation(function: u8) -> &'static str {
    match function {
        umas::TAKE_PLC_RESERVATION | umas::RELEASE_PLC_RESERVATION => "session",
        0x30..=0x32 => "program_download",
        0x33..=0x35 => "program_upload",
        umas::START_PLC | umas::STOP_PLC => "mode_change",
        _ => "other",
    }
}

/// FC 90 request: session key, UMAS function, data.
pub fn umas_req(tid: u16, unit: u8, session_key: u8, function: u8, data: &[u8]) -> Adu {
    let mut body = vec![fc::UMAS, session_key, function];
    body.extend_from_slice(data);
    let mut pdu = Pdu::new(Dir::ToServer, umas_operation(function), tid, unit, fc::UMAS);
    pdu.umas = Some(Umas {
        session_key,
        function_code: function,
        status: None,
    });
    Adu {
        bytes: mbap(tid, unit, &body),
        pdu,
    }
}

/// FC 90 response: session key, status, data.
pub fn umas_rsp(req: &Adu, status: u8, data: &[u8]) -> Adu {
    let (key, function) = req
        .pdu
        .umas
        .map_or((0, 0), |u| (u.session_key, u.function_code));
    let mut body = vec![fc::UMAS, key, status];
    body.extend_from_slice(data);
    let mut pdu = req.pdu.response();
    pdu.umas = Some(Umas {
        session_key: key,
        function_code: function,
        status: Some(status),
    });
    Adu {
        bytes: mbap(req.pdu.transaction_id, req.pdu.unit_id, &body),
        pdu,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_holding_registers_bytes() {
        let req = read_regs(3, 0x0001, 0x11, 0x006b, 3);
        // Spec 6.3 example, wrapped in MBAP: tid 0001, proto 0000, len 0006, unit 11.
        assert_eq!(
            req.bytes,
            [0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x11, 0x03, 0x00, 0x6b, 0x00, 0x03]
        );
        let rsp = read_regs_rsp(&req, &[0x022b, 0x0000, 0x0064]);
        assert_eq!(
            rsp.bytes,
            [
                0x00, 0x01, 0x00, 0x00, 0x00, 0x09, 0x11, // MBAP, length 9
                0x03, 0x06, // fc, byte count
                0x02, 0x2b, 0x00, 0x00, 0x00, 0x64 // registers
            ]
        );
        assert_eq!(rsp.pdu.address, Some(0x006b));
        assert_eq!(rsp.pdu.values, Some(vec![555, 0, 100]));
        assert_eq!(rsp.pdu.dir, Dir::ToClient);
        assert_eq!(rsp.pdu.operation, "read");
    }

    #[test]
    fn coils_pack_lsb_first() {
        // Spec 6.11 example: coils 20..29 = 1,0,1,1,0,0,1,1, 1,0 -> CD 01.
        let bits = [
            true, false, true, true, false, false, true, true, true, false,
        ];
        let req = write_multi_coils(1, 1, 19, &bits);
        assert_eq!(
            &req.bytes[7..],
            &[0x0f, 0x00, 0x13, 0x00, 0x0a, 0x02, 0xcd, 0x01]
        );
        assert_eq!(req.pdu.values, Some(vec![1, 0, 1, 1, 0, 0, 1, 1, 1, 0]));
    }

    #[test]
    fn exception_sets_the_high_bit_on_the_wire_only() {
        let req = read_regs(3, 9, 1, 9000, 10);
        let rsp = exception(&req, 2);
        assert_eq!(&rsp.bytes[7..], &[0x83, 0x02]);
        assert_eq!(rsp.pdu.function_code, 3);
        assert_eq!(rsp.pdu.exception_code, Some(2));
        assert_eq!(rsp.pdu.address, None);
    }

    #[test]
    fn umas_response_carries_the_request_function() {
        let req = umas_req(5, 0, 0x8c, umas::STOP_PLC, &[0xff, 0x00]);
        let rsp = umas_rsp(&req, umas::STATUS_OK, &[]);
        assert_eq!(&rsp.bytes[7..], &[0x5a, 0x8c, 0xfe]);
        assert_eq!(rsp.pdu.operation, "mode_change");
        assert_eq!(
            rsp.pdu.umas,
            Some(Umas {
                session_key: 0x8c,
                function_code: 0x41,
                status: Some(0xfe)
            })
        );
    }
}
