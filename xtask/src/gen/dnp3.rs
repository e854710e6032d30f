//! DNP3 (IEEE 1815-2012) over TCP and UDP, each application PDU built together with the
//! event otwatch must report for it.
//!
//! Layouts (IEEE 1815-2012 clauses 9, 8 and 4-5 / Annex A):
//!
//! * Link frame: start `05 64`, LEN (the octets after it up to the user data's end,
//!   CRCs not counted: 5 + user data), CTRL, destination and source addresses
//!   (little-endian), a CRC over these 8 header octets; then the user data in blocks of
//!   16 octets (the last one shorter), each followed by its CRC. CRCs are CRC-16/DNP
//!   (polynomial 0x3D65, reflected, initial value 0, result inverted), sent
//!   little-endian. CTRL here is always DIR (set on frames from the master) | PRM |
//!   function 4 (unconfirmed user data): 0xC4 from the master, 0x44 from the outstation.
//! * Transport segment: one header octet FIN (0x80) | FIR (0x40) | sequence (6 bits,
//!   one counter per sender), then at most 249 octets of the application fragment
//!   (a link frame carries at most 250 octets of user data).
//! * Application fragment: application control FIR (0x80) | FIN (0x40) | CON (0x20) |
//!   UNS (0x10) | sequence (4 bits), the function code, on responses the two IIN
//!   octets (IIN1 first), then object headers: group, variation, qualifier (index
//!   prefix code in bits 6-4, range specifier code in bits 3-0) and the range field,
//!   each followed by its objects.
//!
//! A response builder takes the request it answers: its event carries the request's
//! operation and sequence number.

use std::fmt::Write as _;

use super::expect::{json_str, ExpPdu};
use super::modbus::Dir;
use super::tcp::{Capture, Conn, Side, UdpConv};

/// The DNP3 port (TCP and UDP).
pub const PORT: u16 = 20000;

/// Application function codes (IEEE 1815-2012 table 4-1).
pub mod func {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const SELECT: u8 = 3;
    pub const OPERATE: u8 = 4;
    pub const DIRECT_OPERATE: u8 = 5;
    pub const COLD_RESTART: u8 = 13;
    pub const OPEN_FILE: u8 = 25;
    pub const CLOSE_FILE: u8 = 26;
    pub const RESPONSE: u8 = 0x81;
}

/// Qualifier codes (prefix code << 4 | range specifier code).
pub mod qual {
    /// 1-octet start and stop indexes.
    pub const RANGE8: u8 = 0x00;
    /// 2-octet start and stop indexes.
    pub const RANGE16: u8 = 0x01;
    /// No range field: all objects.
    pub const ALL: u8 = 0x06;
    /// 1-octet count.
    pub const COUNT8: u8 = 0x07;
    /// 1-octet count, each object prefixed with a 1-octet index.
    pub const INDEX8: u8 = 0x17;
    /// 2-octet count, each object prefixed with a 2-octet index.
    pub const INDEX16: u8 = 0x28;
    /// Free format: a 1-octet count, each object prefixed with its 2-octet size.
    pub const SIZE16: u8 = 0x5b;
}

/// Internal indications (IIN1 in the high octet).
pub mod iin {
    pub const NONE: u16 = 0x0000;
    /// IIN1.4 NEED_TIME: the outstation asks for a time synchronisation.
    pub const NEED_TIME: u16 = 0x1000;
}

/// Largest application octets per transport segment.
const SEGMENT_DATA: usize = 249;

/// CRC-16/DNP of `data`: polynomial 0x3D65 processed LSB first (reflected: 0xA6BC),
/// initial value 0, final complement.
pub fn crc(data: &[u8]) -> u16 {
    let mut c: u16 = 0;
    for &b in data {
        c ^= u16::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xa6bc
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// One link frame: header with its CRC, user data in 16-octet blocks each followed by
/// its CRC.
pub fn link_frame(ctrl: u8, dst: u16, src: u16, user: &[u8]) -> Vec<u8> {
    let mut v = vec![0x05, 0x64, (5 + user.len()) as u8, ctrl];
    v.extend_from_slice(&dst.to_le_bytes());
    v.extend_from_slice(&src.to_le_bytes());
    let hc = crc(&v);
    v.extend_from_slice(&hc.to_le_bytes());
    for block in user.chunks(16) {
        v.extend_from_slice(block);
        v.extend_from_slice(&crc(block).to_le_bytes());
    }
    v
}

/// One object header of an expected event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjExp {
    pub group: u8,
    pub variation: u8,
    pub qualifier: u8,
    /// Objects the header covers (a range: stop - start + 1; qualifier 0x06: 0).
    pub count: u32,
    /// Range qualifiers only.
    pub start: Option<u32>,
    pub stop: Option<u32>,
}

/// One decoded point of an expected event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointExp {
    pub group: u8,
    pub variation: u8,
    pub index: u32,
    pub value: Option<f64>,
    pub control_code: Option<u8>,
    pub status: Option<u8>,
}

/// The `direction`, `operation`, anomalies and `dnp3` block of one expected event.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnp3Exp {
    pub dir: Dir,
    /// `None`: not listed (the frame's data is not trusted).
    pub operation: Option<&'static str>,
    /// Filled in by [`Session`] from the link layer.
    pub link_src: u16,
    pub link_dst: u16,
    pub from_master: bool,
    /// `false`: a data-block CRC failed; only the link header is listed.
    pub trusted: bool,
    pub anomalies: Vec<&'static str>,
    pub function_code: u8,
    pub sequence: u8,
    pub fir: bool,
    pub fin: bool,
    pub con: bool,
    pub uns: bool,
    /// Responses only; requests list `"iin":null` (must be absent).
    pub iin: Option<u16>,
    pub objects: Vec<ObjExp>,
    pub points: Option<Vec<PointExp>>,
    pub file_name: Option<String>,
    pub file_mode: Option<u16>,
    pub time_ms: Option<u64>,
}

/// `f64` as JSON the way serde_json writes one (`480.0`, `1.2`).
pub fn json_f64(v: f64) -> String {
    format!("{v:?}")
}

fn obj_json(o: &ObjExp) -> String {
    let mut s = format!(
        "{{\"group\":{},\"variation\":{},\"qualifier\":{},\"count\":{}",
        o.group, o.variation, o.qualifier, o.count
    );
    if let (Some(a), Some(b)) = (o.start, o.stop) {
        let _ = write!(s, ",\"start\":{a},\"stop\":{b}");
    }
    s.push('}');
    s
}

fn point_json(p: &PointExp) -> String {
    let mut s = format!(
        "{{\"group\":{},\"variation\":{},\"index\":{}",
        p.group, p.variation, p.index
    );
    if let Some(v) = p.value {
        let _ = write!(s, ",\"value\":{}", json_f64(v));
    }
    if let Some(c) = p.control_code {
        let _ = write!(s, ",\"control_code\":{c}");
    }
    if let Some(st) = p.status {
        let _ = write!(s, ",\"status\":{st}");
    }
    s.push('}');
    s
}

impl Dnp3Exp {
    /// `"dnp3":{...}`, keys in a fixed order.
    pub fn json_block(&self) -> String {
        let mut s = format!(
            "\"dnp3\":{{\"link_src\":{},\"link_dst\":{},\"from_master\":{}",
            self.link_src, self.link_dst, self.from_master
        );
        if !self.trusted {
            s.push('}');
            return s;
        }
        let _ = write!(
            s,
            ",\"function_code\":{},\"sequence\":{},\"fir\":{},\"fin\":{},\"con\":{},\"uns\":{}",
            self.function_code, self.sequence, self.fir, self.fin, self.con, self.uns
        );
        match self.iin {
            Some(i) => {
                let _ = write!(s, ",\"iin\":{i}");
            }
            None => s.push_str(",\"iin\":null"),
        }
        let objs: Vec<String> = self.objects.iter().map(obj_json).collect();
        let _ = write!(s, ",\"objects\":[{}]", objs.join(","));
        if let Some(points) = &self.points {
            let list: Vec<String> = points.iter().map(point_json).collect();
            let _ = write!(s, ",\"points\":[{}]", list.join(","));
        }
        if let Some(f) = &self.file_name {
            let _ = write!(s, ",\"file_name\":{}", json_str(f));
        }
        if let Some(m) = self.file_mode {
            let _ = write!(s, ",\"file_mode\":{m}");
        }
        if let Some(t) = self.time_ms {
            let _ = write!(s, ",\"time_ms\":{t}");
        }
        s.push('}');
        s
    }
}

/// Object headers and their objects, with the headers and points an event lists.
#[derive(Debug, Clone, Default)]
pub struct Body {
    bytes: Vec<u8>,
    objects: Vec<ObjExp>,
    points: Vec<PointExp>,
}

impl Body {
    pub fn new() -> Self {
        Body::default()
    }

    fn header(&mut self, group: u8, variation: u8, qualifier: u8) {
        self.bytes.extend_from_slice(&[group, variation, qualifier]);
    }

    /// Qualifier 0x06: all objects of the group and variation (class reads).
    pub fn all(mut self, group: u8, variation: u8) -> Self {
        self.header(group, variation, qual::ALL);
        self.objects.push(ObjExp {
            group,
            variation,
            qualifier: qual::ALL,
            count: 0,
            start: None,
            stop: None,
        });
        self
    }

    /// A range header (qualifier 0x00 for starts and stops below 256, else 0x01) over
    /// `objects.len()` objects from `start`, each of them `objects[i]`.
    pub fn range(mut self, group: u8, variation: u8, start: u16, objects: &[Vec<u8>]) -> Self {
        let stop = start + objects.len() as u16 - 1;
        let q = if stop < 256 {
            qual::RANGE8
        } else {
            qual::RANGE16
        };
        self.range_with(q, group, variation, start, objects);
        self
    }

    /// A range header with 2-octet start and stop (qualifier 0x01) even for small
    /// indexes, as many outstations send them.
    pub fn range16(mut self, group: u8, variation: u8, start: u16, objects: &[Vec<u8>]) -> Self {
        self.range_with(qual::RANGE16, group, variation, start, objects);
        self
    }

    fn range_with(&mut self, q: u8, group: u8, variation: u8, start: u16, objects: &[Vec<u8>]) {
        let stop = start + objects.len() as u16 - 1;
        self.header(group, variation, q);
        if q == qual::RANGE8 {
            self.bytes.extend_from_slice(&[start as u8, stop as u8]);
        } else {
            self.bytes.extend_from_slice(&start.to_le_bytes());
            self.bytes.extend_from_slice(&stop.to_le_bytes());
        }
        for o in objects {
            self.bytes.extend_from_slice(o);
        }
        self.objects.push(ObjExp {
            group,
            variation,
            qualifier: q,
            count: u32::from(stop - start) + 1,
            start: Some(u32::from(start)),
            stop: Some(u32::from(stop)),
        });
    }

    /// Qualifier 0x07: a 1-octet count, then the objects.
    pub fn count8(mut self, group: u8, variation: u8, objects: &[Vec<u8>]) -> Self {
        self.header(group, variation, qual::COUNT8);
        self.bytes.push(objects.len() as u8);
        for o in objects {
            self.bytes.extend_from_slice(o);
        }
        self.objects.push(ObjExp {
            group,
            variation,
            qualifier: qual::COUNT8,
            count: objects.len() as u32,
            start: None,
            stop: None,
        });
        self
    }

    /// Qualifier 0x17 (1-octet count and index) or 0x28 (2-octet): `(index, object)`.
    pub fn indexed(mut self, q: u8, group: u8, variation: u8, objects: &[(u16, Vec<u8>)]) -> Self {
        self.header(group, variation, q);
        if q == qual::INDEX8 {
            self.bytes.push(objects.len() as u8);
        } else {
            self.bytes
                .extend_from_slice(&(objects.len() as u16).to_le_bytes());
        }
        for (i, o) in objects {
            if q == qual::INDEX8 {
                self.bytes.push(*i as u8);
            } else {
                self.bytes.extend_from_slice(&i.to_le_bytes());
            }
            self.bytes.extend_from_slice(o);
        }
        self.objects.push(ObjExp {
            group,
            variation,
            qualifier: q,
            count: objects.len() as u32,
            start: None,
            stop: None,
        });
        self
    }

    /// Qualifier 0x5B: free format (range code 0xB: a 1-octet count), each object
    /// prefixed with its 2-octet size (prefix code 5).
    pub fn sized(mut self, group: u8, variation: u8, objects: &[Vec<u8>]) -> Self {
        self.header(group, variation, qual::SIZE16);
        self.bytes.push(objects.len() as u8);
        for o in objects {
            self.bytes
                .extend_from_slice(&(o.len() as u16).to_le_bytes());
            self.bytes.extend_from_slice(o);
        }
        self.objects.push(ObjExp {
            group,
            variation,
            qualifier: qual::SIZE16,
            count: objects.len() as u32,
            start: None,
            stop: None,
        });
        self
    }

    /// Adds the points the event lists for the objects just written.
    pub fn points(mut self, points: impl IntoIterator<Item = PointExp>) -> Self {
        self.points.extend(points);
        self
    }
}

/// One application fragment and the event it must produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Apdu {
    pub bytes: Vec<u8>,
    pub exp: Dnp3Exp,
}

/// A request from the master: application control FIR | FIN | `seq`, the function,
/// the objects.
pub fn request(seq: u8, function: u8, operation: &'static str, body: Body) -> Apdu {
    let mut bytes = vec![0xc0 | (seq & 0x0f), function];
    bytes.extend_from_slice(&body.bytes);
    Apdu {
        bytes,
        exp: Dnp3Exp {
            dir: Dir::ToServer,
            operation: Some(operation),
            link_src: 0,
            link_dst: 0,
            from_master: true,
            trusted: true,
            anomalies: Vec::new(),
            function_code: function,
            sequence: seq & 0x0f,
            fir: true,
            fin: true,
            con: false,
            uns: false,
            iin: None,
            objects: body.objects,
            points: (!body.points.is_empty()).then_some(body.points),
            file_name: None,
            file_mode: None,
            time_ms: None,
        },
    }
}

/// The outstation's response (0x81) to `req`: the request's sequence number and
/// operation, the IIN octets, the objects.
pub fn response(req: &Apdu, iin: u16, body: Body) -> Apdu {
    let seq = req.exp.sequence;
    let mut bytes = vec![0xc0 | seq, func::RESPONSE];
    bytes.extend_from_slice(&iin.to_be_bytes());
    bytes.extend_from_slice(&body.bytes);
    Apdu {
        bytes,
        exp: Dnp3Exp {
            dir: Dir::ToClient,
            from_master: false,
            function_code: func::RESPONSE,
            iin: Some(iin),
            objects: body.objects,
            points: (!body.points.is_empty()).then_some(body.points),
            // What the request named (file, time) is not on the response's wire: not
            // listed.
            file_name: None,
            file_mode: None,
            time_ms: None,
            ..req.exp.clone()
        },
    }
}

// ---- requests and responses ---------------------------------------------------------------

/// READ of class 0 (g60v1, all): the static data.
pub fn read_class0(seq: u8) -> Apdu {
    request(seq, func::READ, "read", Body::new().all(60, 1))
}

/// READ of classes 1, 2, 3 and 0 (g60v2-4 and g60v1, all): an integrity poll.
pub fn integrity_poll(seq: u8) -> Apdu {
    let body = Body::new().all(60, 2).all(60, 3).all(60, 4).all(60, 1);
    request(seq, func::READ, "read", body)
}

/// Flags of a point that is online (bit 0); binary inputs carry their state in bit 7.
const ONLINE: u8 = 0x01;

/// g30v2 objects (16-bit analog input with flag: flags, value LE) from index 0, as a
/// 2-octet range; their points.
pub fn g30v2(body: Body, values: &[i16]) -> Body {
    let objs: Vec<Vec<u8>> = values
        .iter()
        .map(|v| {
            let mut o = vec![ONLINE];
            o.extend_from_slice(&v.to_le_bytes());
            o
        })
        .collect();
    let points = values.iter().enumerate().map(|(i, v)| PointExp {
        group: 30,
        variation: 2,
        index: i as u32,
        value: Some(f64::from(*v)),
        control_code: None,
        status: Some(ONLINE),
    });
    body.range16(30, 2, 0, &objs).points(points)
}

/// g1v2 objects (binary input with flags: state in bit 7) from index 0; their points
/// (value 0/1, status the flags octet).
pub fn g1v2(body: Body, states: &[bool]) -> Body {
    let flags: Vec<u8> = states
        .iter()
        .map(|s| ONLINE | if *s { 0x80 } else { 0 })
        .collect();
    let objs: Vec<Vec<u8>> = flags.iter().map(|f| vec![*f]).collect();
    let points = flags.iter().enumerate().map(|(i, f)| PointExp {
        group: 1,
        variation: 2,
        index: i as u32,
        value: Some(f64::from(f >> 7)),
        control_code: None,
        status: Some(*f),
    });
    body.range(1, 2, 0, &objs).points(points)
}

/// The response to a static-data read: `analogs` as g30v2 from index 0, `binaries` as
/// g1v2 from index 0.
pub fn static_response(req: &Apdu, iin: u16, analogs: &[i16], binaries: &[bool]) -> Apdu {
    response(req, iin, g1v2(g30v2(Body::new(), analogs), binaries))
}

/// g41v2 (16-bit analog output block: value LE, control status) at `index` with 1-octet
/// count and index (qualifier 0x17).
fn g41v2(index: u16, value: i16, status: u8) -> Body {
    let mut o = value.to_le_bytes().to_vec();
    o.push(status);
    Body::new()
        .indexed(qual::INDEX8, 41, 2, &[(index, o)])
        .points([PointExp {
            group: 41,
            variation: 2,
            index: u32::from(index),
            value: Some(f64::from(value)),
            control_code: None,
            status: Some(status),
        }])
}

/// DIRECT OPERATE (5) of one analog output (g41v2) at `index` to `value`: a write.
pub fn direct_operate_analog(seq: u8, index: u16, value: i16) -> Apdu {
    request(seq, func::DIRECT_OPERATE, "write", g41v2(index, value, 0))
}

/// SELECT (3) of one analog output (g41v2) at `index` with `value`: alone it changes
/// nothing (`other`).
pub fn select_analog(seq: u8, index: u16, value: i16) -> Apdu {
    request(seq, func::SELECT, "other", g41v2(index, value, 0))
}

/// OPERATE (4) of one analog output (g41v2) at `index` with `value` (after its
/// SELECT): a write.
pub fn operate_analog(seq: u8, index: u16, value: i16) -> Apdu {
    request(seq, func::OPERATE, "write", g41v2(index, value, 0))
}

/// The response to a control request: the request's objects echoed with control
/// status `status` (0 = success).
pub fn control_echo(req: &Apdu, iin: u16) -> Apdu {
    // The objects are echoed octet for octet (status 0 in the requests built here).
    let mut rsp = response(req, iin, Body::new());
    rsp.bytes.extend_from_slice(&req.bytes[2..]);
    rsp.exp.objects = req.exp.objects.clone();
    rsp.exp.points = req.exp.points.clone();
    rsp
}

/// CROB control codes: operation type in bits 0-3 (1 pulse on, 3 latch on, 4 latch
/// off), trip/close in bits 6-7.
pub mod crob {
    pub const LATCH_ON: u8 = 0x03;
}

/// g12v1 (control relay output block: code, count, on-time and off-time in ms LE,
/// status) at `index` with 2-octet count and index (qualifier 0x28).
fn g12v1(index: u16, code: u8) -> Body {
    let mut o = vec![code, 1];
    o.extend_from_slice(&0u32.to_le_bytes());
    o.extend_from_slice(&0u32.to_le_bytes());
    o.push(0);
    Body::new()
        .indexed(qual::INDEX16, 12, 1, &[(index, o)])
        .points([PointExp {
            group: 12,
            variation: 1,
            index: u32::from(index),
            value: None,
            control_code: Some(code),
            status: Some(0),
        }])
}

/// SELECT (3) of the CROB at `index`: alone it changes nothing (`other`).
pub fn select_crob(seq: u8, index: u16, code: u8) -> Apdu {
    request(seq, func::SELECT, "other", g12v1(index, code))
}

/// OPERATE (4) of the CROB at `index` (after its SELECT): a write.
pub fn operate_crob(seq: u8, index: u16, code: u8) -> Apdu {
    request(seq, func::OPERATE, "write", g12v1(index, code))
}

/// COLD RESTART (13): no objects.
pub fn cold_restart(seq: u8) -> Apdu {
    request(seq, func::COLD_RESTART, "restart", Body::new())
}

/// The answer to a restart: g52v2 (time delay fine, ms LE), count 1.
pub fn restart_response(req: &Apdu, delay_ms: u16) -> Apdu {
    let body = Body::new().count8(52, 2, &[delay_ms.to_le_bytes().to_vec()]);
    response(req, iin::NONE, body)
}

/// A response without objects.
pub fn null_response(req: &Apdu, iin: u16) -> Apdu {
    response(req, iin, Body::new())
}

/// WRITE (2) of the time (g50v1: 48-bit milliseconds since 1970 LE), count 1:
/// a time synchronisation, `other`.
pub fn write_time(seq: u8, ms: u64) -> Apdu {
    let t = ms.to_le_bytes()[..6].to_vec();
    let mut r = request(seq, func::WRITE, "other", Body::new().count8(50, 1, &[t]));
    r.exp.time_ms = Some(ms);
    r
}

/// g70 open modes.
pub mod file_mode {
    pub const READ: u16 = 1;
    pub const WRITE: u16 = 2;
}

/// The g70v3 file command object: file name offset (26) and size, creation time
/// (48-bit ms), permissions, authentication key, file size, operational mode,
/// maximum block size, request id, the name.
fn g70v3(name: &str, created_ms: u64, permissions: u16, size: u32, mode: u16) -> Vec<u8> {
    let mut o = 26u16.to_le_bytes().to_vec();
    o.extend_from_slice(&(name.len() as u16).to_le_bytes());
    o.extend_from_slice(&created_ms.to_le_bytes()[..6]);
    o.extend_from_slice(&permissions.to_le_bytes());
    o.extend_from_slice(&0u32.to_le_bytes()); // authentication key
    o.extend_from_slice(&size.to_le_bytes());
    o.extend_from_slice(&mode.to_le_bytes());
    o.extend_from_slice(&1024u16.to_le_bytes()); // maximum block size
    o.extend_from_slice(&1u16.to_le_bytes()); // request id
    o.extend_from_slice(name.as_bytes());
    o
}

/// OPEN FILE (25) of `name` in `mode` (g70v3, qualifier 0x5B): a file transfer.
pub fn open_file(seq: u8, name: &str, mode: u16, size: u32, created_ms: u64) -> Apdu {
    let body = Body::new().sized(70, 3, &[g70v3(name, created_ms, 0o644, size, mode)]);
    let mut r = request(seq, func::OPEN_FILE, "file_transfer", body);
    r.exp.file_name = Some(name.to_owned());
    r.exp.file_mode = Some(mode);
    r
}

/// The g70v4 file command status object: handle, file size, maximum block size,
/// request id, status code (0 = success), no optional text.
fn g70v4(handle: u32, size: u32, max_block: u16) -> Vec<u8> {
    let mut o = handle.to_le_bytes().to_vec();
    o.extend_from_slice(&size.to_le_bytes());
    o.extend_from_slice(&max_block.to_le_bytes());
    o.extend_from_slice(&1u16.to_le_bytes());
    o.push(0);
    o
}

/// The answer to OPEN FILE or CLOSE FILE: g70v4 with `handle`.
pub fn file_status_response(req: &Apdu, handle: u32, size: u32) -> Apdu {
    let body = Body::new().sized(70, 4, &[g70v4(handle, size, 1024)]);
    response(req, iin::NONE, body)
}

/// WRITE (2) of one block of the open file (g70v5 file transport: handle, block
/// number with bit 31 set on the last block, the data): a file transfer.
pub fn write_file_block(seq: u8, handle: u32, block: u32, last: bool, data: &[u8]) -> Apdu {
    let mut o = handle.to_le_bytes().to_vec();
    o.extend_from_slice(&(block | if last { 0x8000_0000 } else { 0 }).to_le_bytes());
    o.extend_from_slice(data);
    request(
        seq,
        func::WRITE,
        "file_transfer",
        Body::new().sized(70, 5, &[o]),
    )
}

/// The answer to a block written: g70v6 file transport status (handle, block number,
/// status 0).
pub fn file_block_response(req: &Apdu, handle: u32, block: u32, last: bool) -> Apdu {
    let mut o = handle.to_le_bytes().to_vec();
    o.extend_from_slice(&(block | if last { 0x8000_0000 } else { 0 }).to_le_bytes());
    o.push(0);
    response(req, iin::NONE, Body::new().sized(70, 6, &[o]))
}

/// CLOSE FILE (26) of `handle` (g70v4 with size 0): a file transfer.
pub fn close_file(seq: u8, handle: u32) -> Apdu {
    let body = Body::new().sized(70, 4, &[g70v4(handle, 0, 0)]);
    request(seq, func::CLOSE_FILE, "file_transfer", body)
}

// ---- link and transport, sessions --------------------------------------------------------

/// Splits `app` into transport segments (header octet + at most 249 octets), with
/// sequence numbers from `*tseq` on.
fn segments(app: &[u8], tseq: &mut u8) -> Vec<Vec<u8>> {
    let chunks: Vec<&[u8]> = app.chunks(SEGMENT_DATA).collect();
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let fin = if i + 1 == n { 0x80 } else { 0 };
            let fir = if i == 0 { 0x40 } else { 0 };
            let mut s = vec![fin | fir | (*tseq & 0x3f)];
            *tseq = tseq.wrapping_add(1) & 0x3f;
            s.extend_from_slice(c);
            s
        })
        .collect()
}

/// What carries link frames (or UA TCP messages): a TCP connection or a UDP
/// conversation.
pub trait Carrier {
    /// `payload` from `from` at `t`, completing `pdus`.
    fn carry(&mut self, cap: &mut Capture, t: u64, from: Side, payload: &[u8], pdus: Vec<ExpPdu>);
}

impl Carrier for Conn {
    fn carry(&mut self, cap: &mut Capture, t: u64, from: Side, payload: &[u8], pdus: Vec<ExpPdu>) {
        self.send_events(cap, t, from, payload, pdus);
    }
}

impl Carrier for UdpConv {
    fn carry(&mut self, cap: &mut Capture, t: u64, from: Side, payload: &[u8], pdus: Vec<ExpPdu>) {
        self.send_events(cap, t, from, payload, pdus);
    }
}

/// A master and an outstation (the master is the client of the TCP connection or UDP
/// conversation that carries them): their link addresses, transport sequence numbers
/// and the master's application sequence number.
#[derive(Debug, Clone)]
pub struct Session {
    pub master: u16,
    pub outstation: u16,
    master_tseq: u8,
    outstation_tseq: u8,
    app_seq: u8,
}

impl Session {
    pub fn new(master: u16, outstation: u16) -> Self {
        Session {
            master,
            outstation,
            master_tseq: 0,
            outstation_tseq: 0,
            app_seq: 0,
        }
    }

    /// The next application sequence number of the master's requests.
    pub fn next_seq(&mut self) -> u8 {
        let s = self.app_seq;
        self.app_seq = (self.app_seq + 1) & 0x0f;
        s
    }

    /// The event of `p` with this session's link addresses.
    pub fn event_of(&self, p: &Apdu) -> Dnp3Exp {
        let from_master = p.exp.dir == Dir::ToServer;
        let mut exp = p.exp.clone();
        (exp.link_src, exp.link_dst) = if from_master {
            (self.master, self.outstation)
        } else {
            (self.outstation, self.master)
        };
        exp.from_master = from_master;
        exp
    }

    /// The link frames of `p` (one per transport segment) and its event with the link
    /// layer's fields.
    fn frames(&mut self, p: &Apdu) -> (Side, Vec<Vec<u8>>, Dnp3Exp) {
        let exp = self.event_of(p);
        let (ctrl, side, tseq) = if exp.from_master {
            (0xc4, Side::Client, &mut self.master_tseq)
        } else {
            (0x44, Side::Server, &mut self.outstation_tseq)
        };
        let frames = segments(&p.bytes, tseq)
            .iter()
            .map(|s| link_frame(ctrl, exp.link_dst, exp.link_src, s))
            .collect();
        (side, frames, exp)
    }

    /// Every link frame of `p` in one TCP segment (or one datagram).
    pub fn send(&mut self, c: &mut dyn Carrier, cap: &mut Capture, t: u64, p: &Apdu) {
        let (side, frames, exp) = self.frames(p);
        c.carry(cap, t, side, &frames.concat(), vec![ExpPdu::Dnp3(exp)]);
    }

    /// Each link frame of `p` in its own segment, `gap` µs apart; the event comes with
    /// the last.
    pub fn send_frames_apart(
        &mut self,
        c: &mut dyn Carrier,
        cap: &mut Capture,
        t: u64,
        gap: u64,
        p: &Apdu,
    ) {
        let (side, frames, exp) = self.frames(p);
        let n = frames.len();
        let mut exp = Some(exp);
        for (i, f) in frames.iter().enumerate() {
            let ev = if i + 1 == n {
                exp.take().map(ExpPdu::Dnp3).into_iter().collect()
            } else {
                vec![]
            };
            c.carry(cap, t + i as u64 * gap, side, f, ev);
        }
    }

    /// The octets of `p`'s frames split in two segments after `at` octets, `gap` µs
    /// apart; the event comes with the second.
    pub fn send_split(
        &mut self,
        c: &mut dyn Carrier,
        cap: &mut Capture,
        (t, gap): (u64, u64),
        at: usize,
        p: &Apdu,
    ) {
        let (side, frames, exp) = self.frames(p);
        let all = frames.concat();
        let (a, b) = all.split_at(at.min(all.len()));
        c.carry(cap, t, side, a, vec![]);
        c.carry(cap, t + gap, side, b, vec![ExpPdu::Dnp3(exp)]);
    }

    /// `p` with the CRC of its first data block inverted: the header is intact (its
    /// link fields are trusted), the data is not; the event lists the link fields and
    /// the anomaly `bad_checksum`.
    pub fn send_bad_crc(&mut self, c: &mut dyn Carrier, cap: &mut Capture, t: u64, p: &Apdu) {
        let (side, mut frames, mut exp) = self.frames(p);
        if let Some(f) = frames.first_mut() {
            let end = (10 + 16 + 2).min(f.len());
            // The first block's CRC is its last two octets.
            for b in &mut f[end - 2..end] {
                *b ^= 0xff;
            }
        }
        exp.trusted = false;
        exp.operation = None;
        exp.anomalies = vec!["bad_checksum"];
        c.carry(cap, t, side, &frames.concat(), vec![ExpPdu::Dnp3(exp)]);
    }

    /// `req` at `t`, `rsp` `rtt` µs later.
    pub fn exchange(
        &mut self,
        c: &mut dyn Carrier,
        cap: &mut Capture,
        (t, rtt): (u64, u64),
        req: &Apdu,
        rsp: &Apdu,
    ) {
        self.send(c, cap, t, req);
        self.send(c, cap, t + rtt, rsp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_dnp_check_value() {
        // The catalogue check value of CRC-16/DNP: CRC of "123456789" = 0xEA82.
        assert_eq!(crc(b"123456789"), 0xea82);
    }

    #[test]
    fn link_frame_of_a_class0_read() {
        let mut s = 0u8;
        let seg = segments(&read_class0(3).bytes, &mut s);
        assert_eq!(seg, [vec![0xc0, 0xc3, 0x01, 60, 1, 0x06]]);
        assert_eq!(s, 1);
        let f = link_frame(0xc4, 10, 1, &seg[0]);
        let hc = crc(&[0x05, 0x64, 0x0b, 0xc4, 0x0a, 0x00, 0x01, 0x00]).to_le_bytes();
        let dc = crc(&seg[0]).to_le_bytes();
        assert_eq!(
            f,
            [
                0x05, 0x64, // start
                0x0b, // LEN: CTRL + DEST + SRC (5) + 6 octets of user data
                0xc4, // DIR | PRM | unconfirmed user data
                0x0a, 0x00, // destination 10
                0x01, 0x00, // source 1
                hc[0], hc[1], // header CRC
                0xc0,  // transport: FIN | FIR, sequence 0
                0xc3,  // application: FIR | FIN, sequence 3
                0x01,  // READ
                60, 1, 0x06, // g60v1 (class 0), all objects
                dc[0], dc[1], // block CRC
            ]
        );
    }

    #[test]
    fn user_data_is_cut_in_16_octet_blocks() {
        let user: Vec<u8> = (0..40).collect();
        let f = link_frame(0x44, 1, 10, &user);
        // Header 10, blocks 16 + 2, 16 + 2, 8 + 2.
        assert_eq!(f.len(), 10 + 18 + 18 + 10);
        assert_eq!(f[2], 45);
        assert_eq!(&f[10..26], &user[..16]);
        assert_eq!(&f[26..28], &crc(&user[..16]).to_le_bytes());
        assert_eq!(&f[46..54], &user[32..]);
        assert_eq!(&f[54..56], &crc(&user[32..]).to_le_bytes());
    }

    #[test]
    fn long_fragments_take_several_transport_segments() {
        let req = read_class0(0);
        let values: Vec<i16> = (0..80).collect();
        let rsp = static_response(&req, iin::NONE, &values, &[true; 8]);
        // 4 + (7 + 240) + (5 + 8) octets.
        assert_eq!(rsp.bytes.len(), 264);
        let mut s = 62u8;
        let seg = segments(&rsp.bytes, &mut s);
        assert_eq!(seg.len(), 2);
        assert_eq!(seg[0].len(), 250);
        assert_eq!(seg[0][0], 0x40 | 62); // FIR, sequence 62
        assert_eq!(seg[1][0], 0x80 | 63); // FIN, sequence 63
        assert_eq!(s, 0); // wraps at 64
        assert_eq!(rsp.exp.objects[0].count, 80);
        assert_eq!(rsp.exp.objects[0].qualifier, qual::RANGE16);
        assert_eq!(rsp.exp.objects[1].qualifier, qual::RANGE8);
        assert_eq!(rsp.exp.points.as_ref().map(Vec::len), Some(88));
    }

    #[test]
    fn direct_operate_g41v2_layout() {
        let r = direct_operate_analog(5, 1, 480);
        assert_eq!(
            r.bytes,
            [
                0xc5, 0x05, // FIR | FIN, sequence 5; DIRECT OPERATE
                41, 2, 0x17, // g41v2, 1-octet count and index
                1,    // count
                1,    // index 1
                0xe0, 0x01, // 480 LE
                0x00, // control status
            ]
        );
        let e = control_echo(&r, iin::NONE);
        assert_eq!(&e.bytes[..4], &[0xc5, 0x81, 0x00, 0x00]);
        assert_eq!(&e.bytes[4..], &r.bytes[2..]);
        assert_eq!(e.exp.operation, Some("write"));
        assert_eq!(e.exp.dir, Dir::ToClient);
    }

    #[test]
    fn crob_and_file_objects() {
        let s = select_crob(1, 3, crob::LATCH_ON);
        assert_eq!(
            &s.bytes[2..],
            &[
                12, 1, 0x28, // g12v1, 2-octet count and index
                1, 0, // count 1
                3, 0, // index 3
                0x03, 1, // latch on, count 1
                0, 0, 0, 0, 0, 0, 0, 0, // on and off time
                0, // status
            ]
        );
        assert_eq!(s.exp.operation, Some("other"));
        let o = open_file(2, "/a", file_mode::WRITE, 7, 0);
        assert_eq!(&o.bytes[2..5], &[70, 3, 0x5b]); // g70v3, free format
        assert_eq!(o.bytes[5], 1); // one object (1-octet count)
        assert_eq!(&o.bytes[6..8], &[28, 0]); // of 26 + 2 octets
        assert_eq!(&o.bytes[8..12], &[26, 0, 2, 0]); // name offset 26, size 2
                                                     // Then creation time (6), permissions (2), authentication key (4), size (4).
        assert_eq!(&o.bytes[8 + 20..8 + 22], &[2, 0]); // mode write
        assert_eq!(&o.bytes[8 + 26..], b"/a");
        let w = write_time(0, 0x0123_4567_89ab);
        assert_eq!(
            &w.bytes[2..],
            &[50, 1, 0x07, 1, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]
        );
    }

    #[test]
    fn event_block_of_a_request() {
        let mut r = direct_operate_analog(5, 1, 480);
        r.exp.link_src = 1;
        r.exp.link_dst = 10;
        assert_eq!(
            r.exp.json_block(),
            "\"dnp3\":{\"link_src\":1,\"link_dst\":10,\"from_master\":true,\"function_code\":5,\
             \"sequence\":5,\"fir\":true,\"fin\":true,\"con\":false,\"uns\":false,\"iin\":null,\
             \"objects\":[{\"group\":41,\"variation\":2,\"qualifier\":23,\"count\":1}],\
             \"points\":[{\"group\":41,\"variation\":2,\"index\":1,\"value\":480.0,\"status\":0}]}"
        );
    }
}
