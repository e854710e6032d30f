//! S7comm PDUs over ISO-on-TCP (TPKT, RFC 1006, + COTP, ISO 8073 class 0), each built
//! together with the event otwatch must report for it.
//!
//! Layouts: TPKT is version 3, a reserved byte and the length of the whole packet. COTP
//! connection request / confirm carry the source reference and the calling (0xC1) and
//! called (0xC2) TSAP parameters; data TPDUs are `02 F0 80` (length 2, DT, EOT). The
//! S7comm header is protocol id 0x32, ROSCTR, two reserved bytes, the PDU reference and
//! the parameter and data lengths, plus error class and code on ack (2) and ack_data
//! (3). Variable items are any-pointers (syntax id 0x10): transport size, count, DB
//! number, area, and a 24-bit address `byte << 3 | bit`. Block functions name their
//! block in a 9-byte file name `_` + block type (two ASCII characters, `0A` = DB) + five
//! ASCII digits + the destination file system (`P` passive, `A` active). PI services
//! carry their name (`_INSE`, `P_PROGRAM`) after a parameter block. Userdata carries a
//! parameter head `00 01 12`, a method (0x11 request, 0x12 response), the type (4
//! request, 8 response) and function group in one byte, and the subfunction.
//!
//! A response builder takes the job it answers: its event carries the job's operation
//! and, for read/write var, the job's items with their return codes.

use std::fmt::Write as _;

use super::expect::{json_str, sha1, ExpPdu};
use super::modbus::Dir;
use super::tcp::{Capture, Conn, Side};

/// The ISO-on-TCP port of an S7 PLC.
pub const PORT: u16 = 102;

/// ROSCTR values (header byte 1).
pub mod rosctr {
    pub const JOB: u8 = 0x01;
    pub const ACK_DATA: u8 = 0x03;
    pub const USERDATA: u8 = 0x07;
}

/// Parameter function codes of jobs and ack_data.
pub mod func {
    pub const READ_VAR: u8 = 0x04;
    pub const WRITE_VAR: u8 = 0x05;
    pub const REQUEST_DOWNLOAD: u8 = 0x1a;
    pub const DOWNLOAD_BLOCK: u8 = 0x1b;
    pub const DOWNLOAD_ENDED: u8 = 0x1c;
    pub const START_UPLOAD: u8 = 0x1d;
    pub const UPLOAD: u8 = 0x1e;
    pub const END_UPLOAD: u8 = 0x1f;
    pub const PI_SERVICE: u8 = 0x28;
    pub const PLC_STOP: u8 = 0x29;
    pub const SETUP_COMMUNICATION: u8 = 0xf0;
}

/// Memory areas of an any-pointer.
pub mod area {
    pub const I: u8 = 0x81;
    pub const Q: u8 = 0x82;
    pub const M: u8 = 0x83;
    pub const DB: u8 = 0x84;
}

/// Transport sizes of an any-pointer (the unit of its count).
pub mod size {
    pub const BIT: u8 = 0x01;
    pub const BYTE: u8 = 0x02;
    pub const WORD: u8 = 0x04;
    pub const DWORD: u8 = 0x06;
}

/// Transport sizes of a data item (read var ack_data, write var job).
mod data_size {
    /// Length in bits, one bit per byte.
    pub const BIT: u8 = 0x03;
    /// BYTE/WORD/DWORD: length in bits.
    pub const BYTES: u8 = 0x04;
    /// Octet string: length in bytes.
    pub const OCTETS: u8 = 0x09;
}

/// Item return codes.
pub mod ret {
    pub const SUCCESS: u8 = 0xff;
    pub const OBJECT_DOES_NOT_EXIST: u8 = 0x0a;
}

/// Userdata function groups and subfunctions used here.
pub mod ud {
    pub const GROUP_CPU: u8 = 4;
    pub const GROUP_SECURITY: u8 = 5;
    pub const SZL_READ: u8 = 1;
    pub const PASSWORD: u8 = 1;
    pub const CLEAR_PASSWORD: u8 = 2;
}

/// One variable of a read/write var job (an any-pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub area: u8,
    /// DB number (0 outside DB).
    pub db: u16,
    pub byte: u32,
    pub bit: u8,
    pub transport_size: u8,
    pub count: u16,
}

impl Item {
    /// `count` elements of `transport_size` from DB`db`.DBB`byte`.
    pub fn db(db: u16, byte: u32, transport_size: u8, count: u16) -> Self {
        Item {
            area: area::DB,
            db,
            byte,
            bit: 0,
            transport_size,
            count,
        }
    }

    /// `count` elements of `transport_size` from byte `byte` of `area` (not DB).
    pub fn at(area: u8, byte: u32, transport_size: u8, count: u16) -> Self {
        Item {
            area,
            db: 0,
            byte,
            bit: 0,
            transport_size,
            count,
        }
    }

    /// One bit `byte.bit` of `area` (DB number `db`, 0 outside DB).
    pub fn bit(area: u8, db: u16, byte: u32, bit: u8) -> Self {
        Item {
            area,
            db,
            byte,
            bit,
            transport_size: size::BIT,
            count: 1,
        }
    }

    /// The area's name as otwatch reports it.
    fn area_name(&self) -> &'static str {
        match self.area {
            area::I => "I",
            area::Q => "Q",
            area::M => "M",
            area::DB => "DB",
            _ => "unknown",
        }
    }

    /// The 12-byte variable specification: 0x12, length 10, syntax id 0x10 (S7ANY),
    /// transport size, count, DB number, area, address (byte << 3 | bit, 24 bits).
    fn any_pointer(&self) -> [u8; 12] {
        let addr = (self.byte << 3) | u32::from(self.bit & 7);
        let [c0, c1] = self.count.to_be_bytes();
        let [d0, d1] = self.db.to_be_bytes();
        let [_, a0, a1, a2] = addr.to_be_bytes();
        [
            0x12,
            0x0a,
            0x10,
            self.transport_size,
            c0,
            c1,
            d0,
            d1,
            self.area,
            a0,
            a1,
            a2,
        ]
    }
}

/// A program block as named in a block function's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The two ASCII characters of the type: `08` OB, `0A` DB, `0B` SDB, `0C` FC,
    /// `0D` SFC, `0E` FB, `0F` SFB.
    pub code: [u8; 2],
    pub number: u16,
}

impl Block {
    pub fn db(number: u16) -> Self {
        Block {
            code: *b"0A",
            number,
        }
    }

    /// The type's name as otwatch reports it.
    fn type_name(&self) -> &'static str {
        match &self.code {
            b"08" => "OB",
            b"0A" => "DB",
            b"0B" => "SDB",
            b"0C" => "FC",
            b"0D" => "SFC",
            b"0E" => "FB",
            b"0F" => "SFB",
            _ => "unknown",
        }
    }

    /// Five ASCII digits, as on the wire.
    fn number_str(&self) -> String {
        format!("{:05}", self.number)
    }

    /// Type, number and file system: the 8 bytes a PI `_INSE` names a block by.
    fn name8(&self, filesystem: u8) -> Vec<u8> {
        let mut v = self.code.to_vec();
        v.extend_from_slice(self.number_str().as_bytes());
        v.push(filesystem);
        v
    }

    /// The file name of block functions, with its length byte: `09 _0A00001P`.
    fn filename(&self, filesystem: u8) -> Vec<u8> {
        let mut v = vec![9, b'_'];
        v.extend_from_slice(&self.name8(filesystem));
        v
    }
}

/// One item of an expected event: the any-pointer's fields, the data written (write
/// var job) or read (read var ack_data), the return code (ack_data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemExp {
    pub item: Item,
    pub data: Option<Vec<u8>>,
    pub return_code: Option<u8>,
}

/// The `direction`, `operation` and `s7comm` block of one expected event. `None`
/// fields are not listed (not compared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S7Exp {
    pub dir: Dir,
    pub operation: &'static str,
    pub rosctr: u8,
    pub pdu_ref: u16,
    pub function_code: Option<u8>,
    pub function_group: Option<u8>,
    pub subfunction: Option<u8>,
    pub error_class: Option<u8>,
    pub error_code: Option<u8>,
    pub items: Option<Vec<ItemExp>>,
    pub block: Option<Block>,
    pub pi_service: Option<String>,
    pub szl_id: Option<u16>,
    pub szl_index: Option<u16>,
    pub order_number: Option<String>,
    /// `Some(None)`: listed as `null` (the event must not carry one).
    pub credential: Option<Option<String>>,
    /// From the flow's COTP connection request; filled in by [`Session::send`].
    pub calling_tsap: u16,
    pub called_tsap: u16,
}

impl S7Exp {
    fn new(dir: Dir, operation: &'static str, rosctr: u8, pdu_ref: u16) -> Self {
        S7Exp {
            dir,
            operation,
            rosctr,
            pdu_ref,
            function_code: None,
            function_group: None,
            subfunction: None,
            error_class: None,
            error_code: None,
            items: None,
            block: None,
            pi_service: None,
            szl_id: None,
            szl_index: None,
            order_number: None,
            credential: None,
            calling_tsap: 0,
            called_tsap: 0,
        }
    }

    /// `"s7comm":{...}`, keys in a fixed order.
    pub fn json_block(&self) -> String {
        let mut s = format!(
            "\"s7comm\":{{\"rosctr\":{},\"pdu_ref\":{}",
            self.rosctr, self.pdu_ref
        );
        let bytes = [
            ("function_code", self.function_code),
            ("function_group", self.function_group),
            ("subfunction", self.subfunction),
            ("error_class", self.error_class),
            ("error_code", self.error_code),
        ];
        for (k, v) in bytes {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        if let Some(items) = &self.items {
            let list: Vec<String> = items.iter().map(item_json).collect();
            let _ = write!(s, ",\"items\":[{}]", list.join(","));
        }
        if let Some(b) = &self.block {
            let _ = write!(
                s,
                ",\"block\":{{\"block_type\":{},\"number\":{}}}",
                json_str(b.type_name()),
                json_str(&b.number_str())
            );
        }
        if let Some(p) = &self.pi_service {
            let _ = write!(s, ",\"pi_service\":{}", json_str(p));
        }
        for (k, v) in [("szl_id", self.szl_id), ("szl_index", self.szl_index)] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{k}\":{v}");
            }
        }
        if let Some(o) = &self.order_number {
            let _ = write!(s, ",\"identity\":{{\"order_number\":{}}}", json_str(o));
        }
        match &self.credential {
            Some(Some(c)) => {
                let _ = write!(s, ",\"credential\":{}", json_str(c));
            }
            Some(None) => s.push_str(",\"credential\":null"),
            None => {}
        }
        let _ = write!(
            s,
            ",\"calling_tsap\":{},\"called_tsap\":{}}}",
            self.calling_tsap, self.called_tsap
        );
        s
    }
}

/// An item as the event lists it: every field of otwatch's item, since arrays are
/// compared whole.
fn item_json(i: &ItemExp) -> String {
    let it = &i.item;
    let mut s = format!(
        "{{\"area\":{},\"area_name\":\"{}\",\"db\":{},\"address\":{},\"bit\":{},\
         \"transport_size\":{},\"length\":{}",
        it.area,
        it.area_name(),
        it.db,
        it.byte,
        it.bit,
        it.transport_size,
        it.count
    );
    if let Some(d) = &i.data {
        let list: Vec<String> = d.iter().map(u8::to_string).collect();
        let _ = write!(s, ",\"data\":[{}]", list.join(","));
    }
    if let Some(r) = i.return_code {
        let _ = write!(s, ",\"return_code\":{r}");
    }
    s.push('}');
    s
}

/// One S7comm PDU (from the protocol id on) and the event it must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S7Pdu {
    pub bytes: Vec<u8>,
    pub exp: S7Exp,
}

/// The S7comm header and the parameter and data parts. `error` (class, code) only on
/// ack_data.
fn pdu(rosctr: u8, pdu_ref: u16, param: &[u8], data: &[u8], error: Option<(u8, u8)>) -> Vec<u8> {
    let mut v = vec![0x32, rosctr, 0x00, 0x00];
    v.extend_from_slice(&pdu_ref.to_be_bytes());
    v.extend_from_slice(&(param.len() as u16).to_be_bytes());
    v.extend_from_slice(&(data.len() as u16).to_be_bytes());
    if let Some((class, code)) = error {
        v.push(class);
        v.push(code);
    }
    v.extend_from_slice(param);
    v.extend_from_slice(data);
    v
}

/// A job whose parameter starts with its function code.
fn job(dir: Dir, operation: &'static str, pdu_ref: u16, param: &[u8], data: &[u8]) -> S7Pdu {
    let mut exp = S7Exp::new(dir, operation, rosctr::JOB, pdu_ref);
    exp.function_code = param.first().copied();
    S7Pdu {
        bytes: pdu(rosctr::JOB, pdu_ref, param, data, None),
        exp,
    }
}

/// The ack_data answering `req` (the other direction, the job's operation, function
/// and PDU reference), with header error class and code `error`.
fn ack_data(req: &S7Pdu, param: &[u8], data: &[u8], error: (u8, u8)) -> S7Pdu {
    let dir = match req.exp.dir {
        Dir::ToServer => Dir::ToClient,
        Dir::ToClient => Dir::ToServer,
    };
    let mut exp = S7Exp::new(dir, req.exp.operation, rosctr::ACK_DATA, req.exp.pdu_ref);
    exp.function_code = param.first().copied();
    exp.error_class = Some(error.0);
    exp.error_code = Some(error.1);
    S7Pdu {
        bytes: pdu(rosctr::ACK_DATA, req.exp.pdu_ref, param, data, Some(error)),
        exp,
    }
}

const NO_ERROR: (u8, u8) = (0, 0);

// ---- jobs and their ack_data ------------------------------------------------------------

/// Setup communication (0xF0): reserved, max parallel jobs calling and called, PDU
/// length. Not in output.md's table: by its meaning (negotiating sizes, no identity
/// presented) `other`.
pub fn setup_communication(pdu_ref: u16, pdu_length: u16) -> S7Pdu {
    let mut p = vec![func::SETUP_COMMUNICATION, 0x00, 0x00, 0x01, 0x00, 0x01];
    p.extend_from_slice(&pdu_length.to_be_bytes());
    job(Dir::ToServer, "other", pdu_ref, &p, &[])
}

/// The PLC's answer to setup communication, granting `pdu_length`.
pub fn setup_communication_ack(req: &S7Pdu, pdu_length: u16) -> S7Pdu {
    let mut p = vec![func::SETUP_COMMUNICATION, 0x00, 0x00, 0x01, 0x00, 0x01];
    p.extend_from_slice(&pdu_length.to_be_bytes());
    ack_data(req, &p, &[], NO_ERROR)
}

/// Read var (0x04): item count and any-pointers; no data.
pub fn read_var(pdu_ref: u16, items: &[Item]) -> S7Pdu {
    let mut p = vec![func::READ_VAR, items.len() as u8];
    for i in items {
        p.extend_from_slice(&i.any_pointer());
    }
    let mut r = job(Dir::ToServer, "read", pdu_ref, &p, &[]);
    r.exp.items = Some(
        items
            .iter()
            .map(|&item| ItemExp {
                item,
                data: None,
                return_code: None,
            })
            .collect(),
    );
    r
}

/// The data part of one item: return code, transport size, length (bits for bits and
/// bytes, bytes for octet strings), the bytes, and a fill byte after an odd length
/// unless it is the last item.
fn data_item(out: &mut Vec<u8>, return_code: u8, item: &Item, bytes: &[u8], last: bool) {
    let (tsize, len) = match item.transport_size {
        size::BIT => (data_size::BIT, bytes.len()),
        _ => (data_size::BYTES, bytes.len() * 8),
    };
    out.push(return_code);
    out.push(tsize);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(bytes);
    if bytes.len() % 2 == 1 && !last {
        out.push(0x00);
    }
}

/// The answer to a read var job: per item, `Ok(bytes read)` (return code 0xFF) or
/// `Err(return code)` (no data).
pub fn read_var_ack(req: &S7Pdu, results: &[Result<Vec<u8>, u8>]) -> S7Pdu {
    let items = req.exp.items.clone().unwrap_or_default();
    let mut data = Vec::new();
    let mut exp_items = Vec::new();
    for (n, (it, res)) in items.iter().zip(results).enumerate() {
        let last = n + 1 == results.len();
        match res {
            Ok(bytes) => {
                data_item(&mut data, ret::SUCCESS, &it.item, bytes, last);
                exp_items.push(ItemExp {
                    item: it.item,
                    data: Some(bytes.clone()),
                    return_code: Some(ret::SUCCESS),
                });
            }
            Err(code) => {
                // An error item is the return code and three zero bytes.
                data.extend_from_slice(&[*code, 0x00, 0x00, 0x00]);
                exp_items.push(ItemExp {
                    item: it.item,
                    data: None,
                    return_code: Some(*code),
                });
            }
        }
    }
    let mut r = ack_data(req, &[func::READ_VAR, results.len() as u8], &data, NO_ERROR);
    r.exp.items = Some(exp_items);
    r
}

/// Write var (0x05): item count and any-pointers, then each item's data (reserved
/// byte 0, transport size, length, bytes, fill byte).
pub fn write_var(pdu_ref: u16, items: &[(Item, Vec<u8>)]) -> S7Pdu {
    let mut p = vec![func::WRITE_VAR, items.len() as u8];
    let mut data = Vec::new();
    for (n, (item, bytes)) in items.iter().enumerate() {
        p.extend_from_slice(&item.any_pointer());
        data_item(&mut data, 0x00, item, bytes, n + 1 == items.len());
    }
    let mut r = job(Dir::ToServer, "write", pdu_ref, &p, &data);
    r.exp.items = Some(
        items
            .iter()
            .map(|(item, bytes)| ItemExp {
                item: *item,
                data: Some(bytes.clone()),
                return_code: None,
            })
            .collect(),
    );
    r
}

/// The answer to a write var job: one return code per item.
pub fn write_var_ack(req: &S7Pdu, codes: &[u8]) -> S7Pdu {
    let items = req.exp.items.clone().unwrap_or_default();
    let mut r = ack_data(req, &[func::WRITE_VAR, codes.len() as u8], codes, NO_ERROR);
    r.exp.items = Some(
        items
            .iter()
            .zip(codes)
            .map(|(it, &code)| ItemExp {
                item: it.item,
                data: None,
                return_code: Some(code),
            })
            .collect(),
    );
    r
}

/// Request download (0x1A), from the PG: function status, two and four unknown bytes,
/// the file name (passive file system), and part 2: its length, an ASCII `1`, the load
/// memory length and the MC7 code length as six ASCII digits each.
pub fn request_download(pdu_ref: u16, block: Block, load_len: u32, mc7_len: u32) -> S7Pdu {
    let mut p = vec![
        func::REQUEST_DOWNLOAD,
        0x00,
        0x01,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
    ];
    p.extend_from_slice(&block.filename(b'P'));
    let part2 = format!("1{load_len:06}{mc7_len:06}");
    p.push(part2.len() as u8);
    p.extend_from_slice(part2.as_bytes());
    let mut r = job(Dir::ToServer, "program_download", pdu_ref, &p, &[]);
    r.exp.block = Some(block);
    r
}

/// The PLC's ack_data to request download, download ended, PI service, PLC stop, end
/// upload: the function code alone.
pub fn plain_ack(req: &S7Pdu) -> S7Pdu {
    let f = req.exp.function_code.unwrap_or(0);
    ack_data(req, &[f], &[], NO_ERROR)
}

/// An ack_data refusing `req` with header error class and code.
pub fn error_ack(req: &S7Pdu, class: u8, code: u8) -> S7Pdu {
    let f = req.exp.function_code.unwrap_or(0);
    ack_data(req, &[f], &[], (class, code))
}

/// Download block (0x1B): a job *from the PLC* asking the PG for the next part of the
/// block: function status, two and four unknown bytes, the file name.
pub fn download_block(pdu_ref: u16, block: Block) -> S7Pdu {
    let mut p = vec![
        func::DOWNLOAD_BLOCK,
        0x00,
        0x01,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
    ];
    p.extend_from_slice(&block.filename(b'P'));
    let mut r = job(Dir::ToClient, "program_download", pdu_ref, &p, &[]);
    r.exp.block = Some(block);
    r
}

/// The PG's ack_data to a download block or upload job: function status (0x01 more
/// data follows), then data: length, two unknown bytes (0x00 0xFB), the bytes.
pub fn block_data_ack(req: &S7Pdu, more: bool, bytes: &[u8]) -> S7Pdu {
    let f = req.exp.function_code.unwrap_or(0);
    let mut data = Vec::with_capacity(4 + bytes.len());
    data.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    data.extend_from_slice(&[0x00, 0xfb]);
    data.extend_from_slice(bytes);
    ack_data(req, &[f, u8::from(more)], &data, NO_ERROR)
}

/// Download ended (0x1C), from the PLC: function status, error code 0, four unknown
/// bytes, the file name.
pub fn download_ended(pdu_ref: u16, block: Block) -> S7Pdu {
    let mut p = vec![
        func::DOWNLOAD_ENDED,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
        0x00,
    ];
    p.extend_from_slice(&block.filename(b'P'));
    let mut r = job(Dir::ToClient, "program_download", pdu_ref, &p, &[]);
    r.exp.block = Some(block);
    r
}

/// Start upload (0x1D), from the PG: function status, two unknown bytes, upload id 0,
/// the file name (active file system).
pub fn start_upload(pdu_ref: u16, block: Block) -> S7Pdu {
    let mut p = vec![func::START_UPLOAD, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00];
    p.extend_from_slice(&block.filename(b'A'));
    let mut r = job(Dir::ToServer, "program_upload", pdu_ref, &p, &[]);
    r.exp.block = Some(block);
    r
}

/// The PLC's answer to start upload: function status, two unknown bytes, the upload
/// id, and the block's length as a counted ASCII string.
pub fn start_upload_ack(req: &S7Pdu, upload_id: u32, length: u32) -> S7Pdu {
    let mut p = vec![func::START_UPLOAD, 0x00, 0x01, 0x00];
    p.extend_from_slice(&upload_id.to_be_bytes());
    let len = format!("{length:07}");
    p.push(len.len() as u8);
    p.extend_from_slice(len.as_bytes());
    ack_data(req, &p, &[], NO_ERROR)
}

/// Upload (0x1E), from the PG: function status, two unknown bytes, the upload id.
pub fn upload(pdu_ref: u16, upload_id: u32) -> S7Pdu {
    let mut p = vec![func::UPLOAD, 0x00, 0x00, 0x00];
    p.extend_from_slice(&upload_id.to_be_bytes());
    job(Dir::ToServer, "program_upload", pdu_ref, &p, &[])
}

/// End upload (0x1F), from the PG: function status, error code 0, the upload id.
pub fn end_upload(pdu_ref: u16, upload_id: u32) -> S7Pdu {
    let mut p = vec![func::END_UPLOAD, 0x00, 0x00, 0x00];
    p.extend_from_slice(&upload_id.to_be_bytes());
    job(Dir::ToServer, "program_upload", pdu_ref, &p, &[])
}

/// PI service (0x28): seven unknown bytes, the parameter block (its length, then for
/// `_INSE`/`_DELE` a block count, a zero byte and 8 bytes per block; empty for
/// `P_PROGRAM`), the service name (its length, then ASCII).
pub fn pi_service(pdu_ref: u16, service: &str, blocks: &[Block]) -> S7Pdu {
    let mut p = vec![func::PI_SERVICE, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xfd];
    let mut pb = Vec::new();
    if !blocks.is_empty() {
        pb.push(blocks.len() as u8);
        pb.push(0x00);
        for b in blocks {
            pb.extend_from_slice(&b.name8(b'P'));
        }
    }
    p.extend_from_slice(&(pb.len() as u16).to_be_bytes());
    p.extend_from_slice(&pb);
    p.push(service.len() as u8);
    p.extend_from_slice(service.as_bytes());
    let operation = match service {
        "_INSE" | "_DELE" => "program_download",
        "P_PROGRAM" => "mode_change",
        _ => "other",
    };
    let mut r = job(Dir::ToServer, operation, pdu_ref, &p, &[]);
    r.exp.pi_service = Some(service.to_owned());
    r
}

/// PLC stop (0x29): five unknown bytes, then the service name `P_PROGRAM` with its
/// length.
pub fn plc_stop(pdu_ref: u16) -> S7Pdu {
    let mut p = vec![func::PLC_STOP, 0x00, 0x00, 0x00, 0x00, 0x00, 9];
    p.extend_from_slice(b"P_PROGRAM");
    job(Dir::ToServer, "mode_change", pdu_ref, &p, &[])
}

// ---- userdata ---------------------------------------------------------------------------

/// A userdata request: parameter head 00 01 12, length 4, method 0x11, type 4 (request)
/// with `group`, `subfunction`, sequence number 0; data: return code 0xFF, transport
/// size 0x09 (octet string), length, `payload`.
fn ud_request(
    pdu_ref: u16,
    operation: &'static str,
    group: u8,
    subfunction: u8,
    payload: &[u8],
) -> S7Pdu {
    let p = [
        0x00,
        0x01,
        0x12,
        0x04,
        0x11,
        0x40 | group,
        subfunction,
        0x00,
    ];
    let mut data = vec![ret::SUCCESS, data_size::OCTETS];
    data.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    data.extend_from_slice(payload);
    let mut exp = S7Exp::new(Dir::ToServer, operation, rosctr::USERDATA, pdu_ref);
    exp.function_group = Some(group);
    exp.subfunction = Some(subfunction);
    S7Pdu {
        bytes: pdu(rosctr::USERDATA, pdu_ref, &p, &data, None),
        exp,
    }
}

/// The PLC's userdata response to `req`: parameter length 8, method 0x12, type 8
/// (response), the request's group and subfunction, sequence number `seq`, data unit
/// reference 0, last data unit (0x00 = yes), error code 0; data as in the request.
fn ud_response(req: &S7Pdu, seq: u8, payload: &[u8]) -> S7Pdu {
    let group = req.exp.function_group.unwrap_or(0);
    let subfunction = req.exp.subfunction.unwrap_or(0);
    let p = [
        0x00,
        0x01,
        0x12,
        0x08,
        0x12,
        0x80 | group,
        subfunction,
        seq,
        0x00,
        0x00,
        0x00,
        0x00,
    ];
    let mut data = vec![ret::SUCCESS, data_size::OCTETS];
    data.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    data.extend_from_slice(payload);
    let mut exp = S7Exp::new(
        Dir::ToClient,
        req.exp.operation,
        rosctr::USERDATA,
        req.exp.pdu_ref,
    );
    exp.function_group = Some(group);
    exp.subfunction = Some(subfunction);
    S7Pdu {
        bytes: pdu(rosctr::USERDATA, req.exp.pdu_ref, &p, &data, None),
        exp,
    }
}

/// Read SZL (CPU functions, subfunction 1): SZL id and index.
pub fn szl_read(pdu_ref: u16, id: u16, index: u16) -> S7Pdu {
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&index.to_be_bytes());
    let mut r = ud_request(pdu_ref, "identify", ud::GROUP_CPU, ud::SZL_READ, &payload);
    r.exp.szl_id = Some(id);
    r.exp.szl_index = Some(index);
    r
}

/// One record of SZL 0x0011 (module identification): index, order number (20
/// characters, space-padded), module type id, version of the module, release of the
/// PG description file.
#[derive(Debug, Clone, Copy)]
pub struct ModuleId {
    pub index: u16,
    pub order_number: &'static str,
    pub bg_type: u16,
    pub version: u16,
    pub release: u16,
}

/// The answer to an SZL 0x0011 read: SZL id and index, record length 28, record count,
/// the records. The event's order number is the one of record 0x0001 (the module),
/// without its padding.
pub fn szl_0011_rsp(req: &S7Pdu, records: &[ModuleId]) -> S7Pdu {
    let id = req.exp.szl_id.unwrap_or(0x0011);
    let index = req.exp.szl_index.unwrap_or(0);
    let mut payload = id.to_be_bytes().to_vec();
    payload.extend_from_slice(&index.to_be_bytes());
    payload.extend_from_slice(&28u16.to_be_bytes());
    payload.extend_from_slice(&(records.len() as u16).to_be_bytes());
    for r in records {
        payload.extend_from_slice(&r.index.to_be_bytes());
        let mut mlfb = [b' '; 20];
        for (d, s) in mlfb.iter_mut().zip(r.order_number.bytes()) {
            *d = s;
        }
        payload.extend_from_slice(&mlfb);
        payload.extend_from_slice(&r.bg_type.to_be_bytes());
        payload.extend_from_slice(&r.version.to_be_bytes());
        payload.extend_from_slice(&r.release.to_be_bytes());
    }
    let mut rsp = ud_response(req, 1, &payload);
    rsp.exp.szl_id = Some(id);
    rsp.exp.szl_index = Some(index);
    rsp.exp.order_number = records
        .iter()
        .find(|r| r.index == 0x0001)
        .map(|r| r.order_number.trim_end().to_owned());
    rsp
}

/// The 8 password bytes a PG sends: the password padded with spaces to 8 characters,
/// each byte XORed with 0x55, from the third on also with the byte sent two places
/// earlier.
pub fn encode_password(password: &str) -> [u8; 8] {
    let mut p = [b' '; 8];
    for (d, s) in p.iter_mut().zip(password.bytes()) {
        *d = s;
    }
    let mut out = [0u8; 8];
    for i in 0..8 {
        out[i] = p[i] ^ 0x55 ^ if i >= 2 { out[i - 2] } else { 0 };
    }
    out
}

/// `s7:` + the first 16 hex digits of SHA-1 of the password bytes as sent.
pub fn credential(sent: &[u8]) -> String {
    let digest = sha1(sent);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("s7:{}", &hex[..16])
}

/// Security, PLC password (group 5, subfunction 1) with the encoded password.
pub fn password(pdu_ref: u16, password: &str) -> S7Pdu {
    let sent = encode_password(password);
    let mut r = ud_request(pdu_ref, "session", ud::GROUP_SECURITY, ud::PASSWORD, &sent);
    r.exp.credential = Some(Some(credential(&sent)));
    r
}

/// Security, clear password (group 5, subfunction 2): no data, no credential.
pub fn clear_password(pdu_ref: u16) -> S7Pdu {
    let mut r = ud_request(
        pdu_ref,
        "session",
        ud::GROUP_SECURITY,
        ud::CLEAR_PASSWORD,
        &[],
    );
    r.exp.credential = Some(None);
    r
}

/// The PLC's answer to a security request: no data.
pub fn security_rsp(req: &S7Pdu) -> S7Pdu {
    ud_response(req, 0, &[])
}

// ---- framing and sessions -----------------------------------------------------------------

/// TPKT (RFC 1006): version 3, reserved 0, the length of the whole packet.
fn tpkt(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x03, 0x00];
    v.extend_from_slice(&((payload.len() + 4) as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A COTP connection request (0xE0) or confirm (0xD0): length indicator, code,
/// destination and source references, class 0, then TPDU size 1024 (0xC0), calling
/// (0xC1) and called (0xC2) TSAPs.
fn cotp_connect(code: u8, dst_ref: u16, src_ref: u16, calling: u16, called: u16) -> Vec<u8> {
    let mut v = vec![17, code];
    v.extend_from_slice(&dst_ref.to_be_bytes());
    v.extend_from_slice(&src_ref.to_be_bytes());
    v.push(0x00);
    v.extend_from_slice(&[0xc0, 0x01, 0x0a]);
    v.extend_from_slice(&[0xc1, 0x02]);
    v.extend_from_slice(&calling.to_be_bytes());
    v.extend_from_slice(&[0xc2, 0x02]);
    v.extend_from_slice(&called.to_be_bytes());
    v
}

/// The COTP data TPDU header: length 2, DT (0xF0), EOT with TPDU number 0.
const COTP_DT: [u8; 3] = [0x02, 0xf0, 0x80];

/// The ISO transport connection of one TCP connection: its TSAPs (the PG's calling
/// TSAP, e.g. 0x0100 for a PG, 0x0200 for an OP; the called TSAP names rack and slot,
/// 0x0102 = rack 0, slot 2) and the PDU references the PG uses.
#[derive(Debug, Clone)]
pub struct Session {
    pub calling_tsap: u16,
    pub called_tsap: u16,
    next_ref: u16,
}

impl Session {
    pub fn new(calling_tsap: u16, called_tsap: u16, first_ref: u16) -> Self {
        Session {
            calling_tsap,
            called_tsap,
            next_ref: first_ref,
        }
    }

    /// The next PDU reference of the PG's jobs.
    pub fn next_ref(&mut self) -> u16 {
        let r = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1);
        r
    }

    /// COTP connection request from the client at `t`, confirm 1 ms later.
    pub fn connect(&self, conn: &mut Conn, cap: &mut Capture, t: u64) {
        let cr = cotp_connect(0xe0, 0x0000, 0x0001, self.calling_tsap, self.called_tsap);
        conn.send_events(cap, t, Side::Client, &tpkt(&cr), vec![]);
        let cc = cotp_connect(0xd0, 0x0001, 0x4431, self.calling_tsap, self.called_tsap);
        conn.send_events(cap, t + 1_000, Side::Server, &tpkt(&cc), vec![]);
    }

    /// One PDU in one segment (TPKT + COTP DT), from the side its direction says.
    pub fn send(&self, conn: &mut Conn, cap: &mut Capture, t: u64, p: &S7Pdu) {
        let side = match p.exp.dir {
            Dir::ToServer => Side::Client,
            Dir::ToClient => Side::Server,
        };
        let mut payload = COTP_DT.to_vec();
        payload.extend_from_slice(&p.bytes);
        let mut exp = p.exp.clone();
        exp.calling_tsap = self.calling_tsap;
        exp.called_tsap = self.called_tsap;
        conn.send_events(cap, t, side, &tpkt(&payload), vec![ExpPdu::S7(exp)]);
    }

    /// `req` at `t`, `rsp` `rtt` µs later.
    pub fn exchange(
        &self,
        conn: &mut Conn,
        cap: &mut Capture,
        t: u64,
        rtt: u64,
        req: &S7Pdu,
        rsp: &S7Pdu,
    ) {
        self.send(conn, cap, t, req);
        self.send(conn, cap, t + rtt, rsp);
    }

    /// Setup communication at `t` (PDU length 480 asked, 240 granted 2 ms later).
    pub fn setup(&mut self, conn: &mut Conn, cap: &mut Capture, t: u64) {
        let req = setup_communication(self.next_ref(), 480);
        let rsp = setup_communication_ack(&req, 240);
        self.exchange(conn, cap, t, 2_000, &req, &rsp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cotp_connection_request_layout() {
        let cr = tpkt(&cotp_connect(0xe0, 0, 1, 0x0100, 0x0102));
        assert_eq!(
            cr,
            [
                0x03, 0x00, 0x00, 0x16, // TPKT v3, length 22
                0x11, 0xe0, // LI 17, CR
                0x00, 0x00, 0x00, 0x01, // dst ref 0, src ref 1
                0x00, // class 0
                0xc0, 0x01, 0x0a, // TPDU size 1024
                0xc1, 0x02, 0x01, 0x00, // calling TSAP 0x0100
                0xc2, 0x02, 0x01, 0x02, // called TSAP 0x0102 (rack 0, slot 2)
            ]
        );
        // The length indicator counts every byte after itself.
        assert_eq!(usize::from(cr[4]), cr.len() - 5);
    }

    #[test]
    fn write_var_of_a_db_word() {
        let w = write_var(
            0x0105,
            &[(Item::db(10, 4, size::WORD, 1), vec![0x00, 0x50])],
        );
        assert_eq!(
            w.bytes,
            [
                0x32, 0x01, 0x00, 0x00, // S7comm, job, reserved
                0x01, 0x05, // PDU reference
                0x00, 0x0e, 0x00, 0x06, // parameter 14 bytes, data 6 bytes
                0x05, 0x01, // write var, 1 item
                0x12, 0x0a, 0x10, // variable specification, length 10, S7ANY
                0x04, 0x00, 0x01, // WORD, count 1
                0x00, 0x0a, 0x84, // DB 10, area DB
                0x00, 0x00, 0x20, // address 4.0 = 4 << 3
                0x00, 0x04, 0x00, 0x10, // reserved, BYTE/WORD/DWORD, 16 bits
                0x00, 0x50, // the value 80
            ]
        );
        let ack = write_var_ack(&w, &[ret::SUCCESS]);
        assert_eq!(
            ack.bytes,
            [
                0x32, 0x03, 0x00, 0x00, 0x01, 0x05, // ack_data, same PDU reference
                0x00, 0x02, 0x00, 0x01, 0x00, 0x00, // param 2, data 1, no error
                0x05, 0x01, 0xff, // write var, 1 item, success
            ]
        );
        assert_eq!(ack.exp.dir, Dir::ToClient);
        assert_eq!(ack.exp.operation, "write");
        let items = ack.exp.items.as_deref().unwrap_or_default();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].return_code, Some(0xff));
        assert_eq!(items[0].data, None);
    }

    #[test]
    fn read_var_ack_pads_odd_items_but_the_last() {
        let r = read_var(
            7,
            &[Item::bit(area::M, 0, 10, 3), Item::db(10, 0, size::BYTE, 3)],
        );
        // Address of M10.3: 10 << 3 | 3 = 0x53.
        assert_eq!(&r.bytes[10..12], &[0x04, 0x02]);
        assert_eq!(&r.bytes[12 + 9..12 + 12], &[0x00, 0x00, 0x53]);
        let a = read_var_ack(&r, &[Ok(vec![1]), Ok(vec![7, 8, 9])]);
        assert_eq!(
            &a.bytes[12..],
            &[
                0x04, 0x02, // read var, 2 items
                0xff, 0x03, 0x00, 0x01, 0x01, 0x00, // bit item, 1 bit, fill byte
                0xff, 0x04, 0x00, 0x18, 7, 8, 9, // 3 bytes = 24 bits, last: no fill
            ]
        );
        assert_eq!(&a.bytes[8..10], &[0x00, 0x0d]); // data length 6 + 7
    }

    #[test]
    fn request_download_names_db1_in_its_file_name() {
        let r = request_download(3, Block::db(1), 256, 40);
        let p = &r.bytes[10..];
        assert_eq!(p.len(), 32);
        assert_eq!(&r.bytes[6..8], &[0x00, 0x20]); // parameter length 32
        assert_eq!(p[0], 0x1a);
        assert_eq!(p[8], 9);
        assert_eq!(&p[9..18], b"_0A00001P");
        assert_eq!(p[18], 13);
        assert_eq!(&p[19..], b"1000256000040");
    }

    #[test]
    fn pi_inse_layout() {
        let r = pi_service(4, "_INSE", &[Block::db(1)]);
        let p = &r.bytes[10..];
        assert_eq!(&p[..8], &[0x28, 0, 0, 0, 0, 0, 0, 0xfd]);
        assert_eq!(&p[8..10], &[0x00, 0x0a]); // parameter block of 10 bytes
        assert_eq!(&p[10..12], &[0x01, 0x00]); // one block
        assert_eq!(&p[12..20], b"0A00001P");
        assert_eq!(p[20], 5);
        assert_eq!(&p[21..], b"_INSE");
        assert_eq!(r.exp.operation, "program_download");
        assert_eq!(pi_service(5, "P_PROGRAM", &[]).exp.operation, "mode_change");
    }

    #[test]
    fn password_encoding_and_credential() {
        // "a" padded: 'a' ^ 0x55 = 0x34; ' ' ^ 0x55 = 0x75; then each ' ' (0x20) is
        // XORed with 0x55 and the byte two places back.
        let e = encode_password("a");
        assert_eq!(e[0], 0x34);
        assert_eq!(e[1], 0x75);
        assert_eq!(e[2], 0x20 ^ 0x55 ^ 0x34);
        assert_eq!(e[3], 0x20 ^ 0x55 ^ 0x75);
        // SHA-1("abc") = a9993e364706816a...: the first 16 hex digits.
        assert_eq!(credential(b"abc"), "s7:a9993e364706816a");
        let p = password(9, "a");
        assert_eq!(
            &p.bytes[10..18],
            &[0x00, 0x01, 0x12, 0x04, 0x11, 0x45, 0x01, 0x00]
        );
        assert_eq!(&p.bytes[18..22], &[0xff, 0x09, 0x00, 0x08]);
        assert_eq!(&p.bytes[22..], &e);
    }

    #[test]
    fn szl_response_lengths_agree() {
        let q = szl_read(2, 0x0011, 0x0000);
        assert_eq!(
            &q.bytes[18..],
            &[0xff, 0x09, 0x00, 0x04, 0x00, 0x11, 0x00, 0x00]
        );
        let r = szl_0011_rsp(
            &q,
            &[ModuleId {
                index: 1,
                order_number: "6ES7 315-2EH14-0AB0",
                bg_type: 0,
                version: 1,
                release: 1,
            }],
        );
        // Header 10, parameter 12, data 4 + 8 + 28.
        assert_eq!(r.bytes.len(), 10 + 12 + 40);
        assert_eq!(&r.bytes[8..10], &40u16.to_be_bytes());
        assert_eq!(&r.bytes[24..26], &36u16.to_be_bytes());
        assert_eq!(r.exp.order_number.as_deref(), Some("6ES7 315-2EH14-0AB0"));
        assert_eq!(r.exp.function_group, Some(4));
        assert_eq!(r.exp.dir, Dir::ToClient);
    }

    #[test]
    fn event_block_lists_items_whole() {
        let mut w = write_var(1, &[(Item::db(10, 4, size::WORD, 1), vec![0, 80])]);
        w.exp.calling_tsap = 0x0100;
        w.exp.called_tsap = 0x0102;
        assert_eq!(
            w.exp.json_block(),
            "\"s7comm\":{\"rosctr\":1,\"pdu_ref\":1,\"function_code\":5,\"items\":[\
             {\"area\":132,\"area_name\":\"DB\",\"db\":10,\"address\":4,\"bit\":0,\
             \"transport_size\":4,\"length\":1,\"data\":[0,80]}],\
             \"calling_tsap\":256,\"called_tsap\":258}"
        );
    }
}
