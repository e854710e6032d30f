//! Turns one reassembled application fragment into the event's `dnp3` block, its
//! anomalies and (for requests) its normalized operation.

use otwatch_event::{Anomalies, Dnp3Info, Dnp3Object, Operation};

use crate::codes::{FunctionCode, Prefix};
use crate::objects::{
    decode_attribute, decode_file_object, decode_point, is_point_object, object_size, packed_point,
    time48, ObjectSize,
};
use crate::parser::{parse_app_header, parse_object_header, DissectError, ObjectHeader};

/// Link-layer facts of the frame(s) that carried a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub src: u16,
    pub dst: u16,
    /// The DIR bit.
    pub from_master: bool,
}

/// A decoded fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub info: Dnp3Info,
    pub anomalies: Anomalies,
    /// `None` when the fragment is too short to hold a function code.
    pub function: Option<FunctionCode>,
}

/// An event block with only the link layer known.
pub fn link_info(link: Link, function: &'static str) -> Dnp3Info {
    Dnp3Info {
        link_src: link.src,
        link_dst: link.dst,
        from_master: link.from_master,
        function,
        ..Dnp3Info::default()
    }
}

/// Whether the objects of a request with this function carry data after their
/// headers (objects with a size prefix always do). READ, freezes, restarts,
/// application and unsolicited controls, ASSIGN CLASS, delay/time functions and
/// CONFIRM send headers only; FREEZE AT TIME sends a g50 time among headers.
fn carries_data(function: FunctionCode, group: u8) -> bool {
    match function.0 {
        2..=6 | 25..=33 | 129..=131 => true,
        11 | 12 => group == 50,
        _ => false,
    }
}

/// Decodes a fragment; `max_points` bounds the points and attributes kept.
pub fn decode_fragment(fragment: &[u8], link: Link, max_points: usize) -> Decoded {
    let mut info = link_info(link, "unknown");
    let (body, header) = match parse_app_header(fragment) {
        Ok(ok) => ok,
        Err(_) => {
            // Shorter than its header: keep what is there.
            let function = fragment.get(1).copied().map(FunctionCode);
            if let Some(&control) = fragment.first() {
                fill_control(&mut info, control);
            }
            if let Some(f) = function {
                info.function_code = f.0;
                info.function = f.name();
            }
            return Decoded {
                info,
                anomalies: Anomalies::BAD_LENGTH,
                function,
            };
        }
    };
    fill_control(&mut info, header.control.0);
    info.function_code = header.function.0;
    info.function = header.function.name();
    info.iin = header.iin;
    let mut anomalies = Anomalies::empty();
    if !header.function.is_known() {
        anomalies |= Anomalies::UNKNOWN_FUNCTION;
    } else {
        anomalies |= walk_objects(header.function, body, max_points, &mut info);
    }
    Decoded {
        info,
        anomalies,
        function: Some(header.function),
    }
}

fn fill_control(info: &mut Dnp3Info, control: u8) {
    let c = crate::codes::AppControl(control);
    info.sequence = c.seq();
    info.fir = c.fir();
    info.fin = c.fin();
    info.con = c.con();
    info.uns = c.uns();
}

/// Reads every object header and its objects. Stops at the first header it cannot
/// frame: a reserved qualifier or truncated header (`MALFORMED`), objects larger than
/// the fragment (`BAD_LENGTH`), an object of unknown size without a size prefix
/// (`MALFORMED`). Every turn consumes at least the 3 octets of a header.
fn walk_objects(
    function: FunctionCode,
    mut i: &[u8],
    max_points: usize,
    info: &mut Dnp3Info,
) -> Anomalies {
    let mut budget = max_points;
    while !i.is_empty() {
        let (rest, h) = match parse_object_header(i) {
            Ok(ok) => ok,
            Err(nom::Err::Error(DissectError::Truncated)) => {
                return Anomalies::MALFORMED | Anomalies::BAD_LENGTH
            }
            Err(_) => return Anomalies::MALFORMED,
        };
        info.objects.push(Dnp3Object {
            group: h.group,
            variation: h.variation,
            qualifier: h.qualifier.0,
            count: u32::try_from(h.count).unwrap_or(u32::MAX),
            start: h.range.map(|r| r.0),
            stop: h.range.map(|r| r.1),
        });
        i = rest;
        let with_data = matches!(h.prefix, Prefix::Size(_)) || carries_data(function, h.group);
        if !with_data || h.count == 0 {
            continue;
        }
        match objects(&h, i, &mut budget, info) {
            Ok(rest) => i = rest,
            Err(a) => return a,
        }
    }
    Anomalies::empty()
}

fn take_uint(i: &[u8], width: u8) -> Option<(u32, &[u8])> {
    let w = usize::from(width);
    let (v, rest) = (i.get(..w)?, i.get(w..)?);
    let mut b = [0u8; 4];
    b.get_mut(..w)?.copy_from_slice(v);
    Some((u32::from_le_bytes(b), rest))
}

/// The index of object `k` of a header without index prefix.
fn implied_index(h: &ObjectHeader, k: u64) -> u32 {
    let start = h.range.map_or(0, |r| u64::from(r.0));
    u32::try_from(start + k).unwrap_or(u32::MAX)
}

/// Consumes the objects of one header, keeping values of interest; returns the rest
/// of the fragment.
fn objects<'a>(
    h: &ObjectHeader,
    i: &'a [u8],
    budget: &mut usize,
    info: &mut Dnp3Info,
) -> Result<&'a [u8], Anomalies> {
    let index_width = match h.prefix {
        Prefix::Size(w) => return sized_objects(h, w, i, budget, info),
        Prefix::Index(w) => w,
        Prefix::None => 0,
    };
    let size = object_size(h.group, h.variation).ok_or(Anomalies::MALFORMED)?;
    let per = match size {
        ObjectSize::Bits(bits) => {
            if index_width != 0 {
                return Err(Anomalies::MALFORMED);
            }
            let octets = (h.count * u64::from(bits)).div_ceil(8);
            let octets = usize::try_from(octets).map_err(|_| Anomalies::BAD_LENGTH)?;
            let (bits_data, rest) = (
                i.get(..octets).ok_or(Anomalies::BAD_LENGTH)?,
                i.get(octets..).ok_or(Anomalies::BAD_LENGTH)?,
            );
            let n = usize::try_from(h.count).unwrap_or(usize::MAX).min(*budget);
            if is_point_object(h.group, h.variation) && n > 0 {
                let points = info.points.get_or_insert_with(Vec::new);
                points.reserve(n);
                let before = points.len();
                points.extend((0..n).filter_map(|k| {
                    packed_point(
                        h.group,
                        h.variation,
                        implied_index(h, k as u64),
                        bits_data,
                        k,
                    )
                }));
                *budget -= points.len() - before;
            }
            return Ok(rest);
        }
        ObjectSize::Fixed(n) => usize::from(n),
        ObjectSize::Variation => usize::from(h.variation),
        ObjectSize::Attribute => return attributes(h, index_width, i, budget, info),
        ObjectSize::SizePrefixed => return Err(Anomalies::MALFORMED),
    };
    let per = per + usize::from(index_width);
    let total = u64::try_from(per)
        .ok()
        .and_then(|p| p.checked_mul(h.count))
        .and_then(|t| usize::try_from(t).ok())
        .ok_or(Anomalies::BAD_LENGTH)?;
    let (data, rest) = (
        i.get(..total).ok_or(Anomalies::BAD_LENGTH)?,
        i.get(total..).ok_or(Anomalies::BAD_LENGTH)?,
    );
    if per == 0 {
        return Ok(rest);
    }
    if h.group == 50 {
        for obj in data.chunks_exact(per) {
            let value = obj.get(usize::from(index_width)..).unwrap_or_default();
            info.time_ms = time48(value).or(info.time_ms);
        }
        return Ok(rest);
    }
    if !is_point_object(h.group, h.variation) || *budget == 0 {
        return Ok(rest);
    }
    // Points are most of a response's work: the vector is taken once per header.
    let points = info.points.get_or_insert_with(Vec::new);
    points.reserve((data.len() / per).min(*budget));
    // `per` > 0 and `total` <= the fragment: at most one turn per object octet.
    for (k, obj) in data.chunks_exact(per).enumerate() {
        if *budget == 0 {
            break;
        }
        let (index, value) = if index_width == 0 {
            (implied_index(h, k as u64), obj)
        } else {
            take_uint(obj, index_width).ok_or(Anomalies::BAD_LENGTH)?
        };
        if let Some(p) = decode_point(h.group, h.variation, index, value) {
            *budget -= 1;
            points.push(p);
        }
    }
    Ok(rest)
}

/// Objects each preceded by their size (free format and size prefixes): skipped
/// whatever their group; g70 file objects are decoded.
fn sized_objects<'a>(
    h: &ObjectHeader,
    width: u8,
    mut i: &'a [u8],
    budget: &mut usize,
    info: &mut Dnp3Info,
) -> Result<&'a [u8], Anomalies> {
    // Each object takes at least its prefix: a count beyond that is a lie.
    if h.count > (i.len() / usize::from(width.max(1))) as u64 {
        return Err(Anomalies::BAD_LENGTH);
    }
    for _ in 0..h.count {
        let (size, rest) = take_uint(i, width).ok_or(Anomalies::BAD_LENGTH)?;
        let size = usize::try_from(size).map_err(|_| Anomalies::BAD_LENGTH)?;
        let data = rest.get(..size).ok_or(Anomalies::BAD_LENGTH)?;
        i = rest.get(size..).ok_or(Anomalies::BAD_LENGTH)?;
        match h.group {
            70 => {
                let f = decode_file_object(h.variation, data);
                if f.name.is_some() {
                    info.file_name = f.name;
                }
                if f.mode.is_some() {
                    info.file_mode = f.mode;
                }
            }
            0 if *budget > 0 => {
                if let Some((a, _)) = decode_attribute(h.variation, data) {
                    *budget -= 1;
                    info.attributes.get_or_insert_with(Vec::new).push(a);
                }
            }
            _ => {}
        }
    }
    Ok(i)
}

/// g0 device attributes: each object describes its own length.
fn attributes<'a>(
    h: &ObjectHeader,
    index_width: u8,
    mut i: &'a [u8],
    budget: &mut usize,
    info: &mut Dnp3Info,
) -> Result<&'a [u8], Anomalies> {
    // Each attribute takes at least 2 octets (type and length).
    if h.count > (i.len() / 2) as u64 {
        return Err(Anomalies::BAD_LENGTH);
    }
    for _ in 0..h.count {
        if index_width != 0 {
            i = take_uint(i, index_width).ok_or(Anomalies::BAD_LENGTH)?.1;
        }
        let (a, used) = decode_attribute(h.variation, i).ok_or(Anomalies::BAD_LENGTH)?;
        i = i.get(used..).ok_or(Anomalies::BAD_LENGTH)?;
        if *budget > 0 {
            *budget -= 1;
            info.attributes.get_or_insert_with(Vec::new).push(a);
        }
    }
    Ok(i)
}

/// The operation of a request (or of an unsolicited response), from its function
/// and objects (output.md, Operations table).
pub fn request_operation(function: FunctionCode, objects: &[Dnp3Object]) -> Operation {
    let any = |groups: &[u8]| objects.iter().any(|o| groups.contains(&o.group));
    match function.0 {
        1 => Operation::Read,
        2 => {
            if any(&[70]) {
                Operation::FileTransfer
            } else if !objects.is_empty() && objects.iter().all(|o| matches!(o.group, 50 | 80)) {
                // Time synchronisation and clearing IIN bits change no process value.
                Operation::Other
            } else {
                Operation::Write
            }
        }
        4..=6 if any(&[12, 41]) => Operation::Write,
        13 | 14 => Operation::Restart,
        15..=18 => Operation::ModeChange,
        25..=30 => Operation::FileTransfer,
        // Activating configuration files changes how the outstation runs.
        31 => Operation::ModeChange,
        32 | 33 | 131 => Operation::Session,
        // Unsolicited responses report values: the master reads them.
        130 => Operation::Read,
        _ => Operation::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: Link = Link {
        src: 1,
        dst: 1024,
        from_master: true,
    };
    const OUTSTATION: Link = Link {
        src: 1024,
        dst: 1,
        from_master: false,
    };

    fn dec(fragment: &[u8], link: Link) -> Decoded {
        decode_fragment(fragment, link, 64)
    }

    #[test]
    fn class_poll() {
        // C0 (FIR FIN seq 0) READ; g60v2 06, g60v3 06, g60v4 06, g60v1 06.
        let d = dec(
            &[
                0xC0, 0x01, 60, 2, 0x06, 60, 3, 0x06, 60, 4, 0x06, 60, 1, 0x06,
            ],
            MASTER,
        );
        assert!(d.anomalies.is_empty());
        assert_eq!(d.info.function, "read");
        assert_eq!(d.info.objects.len(), 4);
        assert_eq!(d.info.objects[3].group, 60);
        assert_eq!(d.info.iin, None);
        assert_eq!(
            request_operation(d.function.unwrap(), &d.info.objects),
            Operation::Read
        );
    }

    #[test]
    fn response_with_values() {
        // C1 response seq 1, IIN 0x80 0x00 (device restart);
        // g1v2 qualifier 00 start 0 stop 1: flags 0x81, 0x01;
        // g30v2 qualifier 01 start 5 stop 5: flags 01, value 0x0102;
        // g10v1 qualifier 00 0..=9: packed 0b0000_0010, 0b10;
        // g40v1 qualifier 17 count 1: index 3, flags 01, value 7.
        let f = [
            0xC1, 0x81, 0x80, 0x00, //
            1, 2, 0x00, 0, 1, 0x81, 0x01, //
            30, 2, 0x01, 5, 0, 5, 0, 0x01, 0x02, 0x01, //
            10, 1, 0x00, 0, 9, 0x02, 0x02, //
            40, 1, 0x17, 1, 3, 0x01, 7, 0, 0, 0,
        ];
        let d = dec(&f, OUTSTATION);
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        assert_eq!(d.info.iin, Some(0x8000));
        assert_eq!(d.info.objects.len(), 4);
        assert_eq!(d.info.objects[1].start, Some(5));
        assert_eq!(d.info.objects[2].count, 10);
        let pts: Vec<(u8, u32, Option<f64>)> = d
            .info
            .points
            .unwrap()
            .iter()
            .map(|p| (p.group, p.index, p.value))
            .collect();
        let mut want = vec![(1, 0, Some(1.0)), (1, 1, Some(0.0)), (30, 5, Some(258.0))];
        want.extend((0..10).map(|k| (10u8, k, Some(if k == 1 || k == 9 { 1.0 } else { 0.0 }))));
        want.push((40, 3, Some(7.0)));
        assert_eq!(pts, want);
    }

    #[test]
    fn direct_operate_crob_and_setpoint() {
        // C2 DIRECT OPERATE: g12v1 17 count 1 index 5: LATCH_ON, count 1, 0, 0, 0;
        // g41v2 28 count 1 index 0x0102: value 500, status 0.
        let f = [
            0xC2, 0x05, //
            12, 1, 0x17, 1, 5, 0x03, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
            41, 2, 0x28, 1, 0, 0x02, 0x01, 0xF4, 0x01, 0,
        ];
        let d = dec(&f, MASTER);
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        let pts = d.info.points.clone().unwrap();
        assert_eq!(pts.len(), 2);
        assert_eq!(
            (pts[0].group, pts[0].index, pts[0].control_code),
            (12, 5, Some(3))
        );
        assert_eq!(
            (pts[1].group, pts[1].index, pts[1].value),
            (41, 0x0102, Some(500.0))
        );
        assert_eq!(
            request_operation(FunctionCode(5), &d.info.objects),
            Operation::Write
        );
        assert_eq!(
            request_operation(FunctionCode(3), &d.info.objects),
            Operation::Other
        );
    }

    #[test]
    fn writes_by_object() {
        // WRITE g50v1 07 count 1: time; -> other.
        let t = 1_700_000_000_123u64.to_le_bytes();
        let mut f = vec![0xC3, 0x02, 50, 1, 0x07, 1];
        f.extend_from_slice(&t[..6]);
        let d = dec(&f, MASTER);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.info.time_ms, Some(1_700_000_000_123));
        assert_eq!(
            request_operation(FunctionCode::WRITE, &d.info.objects),
            Operation::Other
        );
        // WRITE g80v1 00 start 7 stop 7: 0x00 (clear restart) -> other.
        let d = dec(&[0xC4, 0x02, 80, 1, 0x00, 7, 7, 0x00], MASTER);
        assert!(d.anomalies.is_empty());
        assert_eq!(
            request_operation(FunctionCode::WRITE, &d.info.objects),
            Operation::Other
        );
        // WRITE g34v1 (deadband) 17 count 1 index 0 value 10 -> write.
        let d = dec(&[0xC5, 0x02, 34, 1, 0x17, 1, 0, 10, 0], MASTER);
        assert!(d.anomalies.is_empty());
        assert_eq!(
            request_operation(FunctionCode::WRITE, &d.info.objects),
            Operation::Write
        );
    }

    #[test]
    fn file_open_and_unknown_objects() {
        // OPEN FILE g70v3 5B count 1 size 34: "/cfg.bin", mode 2 (write).
        let name = b"/cfg.bin";
        let mut o = Vec::new();
        o.extend_from_slice(&26u16.to_le_bytes());
        o.extend_from_slice(&(name.len() as u16).to_le_bytes());
        o.extend_from_slice(&[0; 6]);
        o.extend_from_slice(&[0; 2]);
        o.extend_from_slice(&[0; 4]);
        o.extend_from_slice(&100u32.to_le_bytes());
        o.extend_from_slice(&2u16.to_le_bytes());
        o.extend_from_slice(&512u16.to_le_bytes());
        o.extend_from_slice(&1u16.to_le_bytes());
        o.extend_from_slice(name);
        let mut f = vec![0xC6, 25, 70, 3, 0x5B, 1];
        f.extend_from_slice(&(o.len() as u16).to_le_bytes());
        f.extend_from_slice(&o);
        // An unknown group 200 with a size prefix is skipped: 200v1 5B count 1 size 2.
        f.extend_from_slice(&[200, 1, 0x5B, 1, 2, 0, 0xAA, 0xBB]);
        let d = dec(&f, MASTER);
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        assert_eq!(d.info.file_name.as_deref(), Some("/cfg.bin"));
        assert_eq!(d.info.file_mode, Some(2));
        assert_eq!(d.info.objects.len(), 2);
        assert_eq!(
            request_operation(FunctionCode::OPEN_FILE, &d.info.objects),
            Operation::FileTransfer
        );
        // The same unknown group without size prefix: parsing stops.
        let d = dec(&[0xC0, 0x02, 200, 1, 0x17, 1, 0, 0xAA], MASTER);
        assert_eq!(d.anomalies, Anomalies::MALFORMED);
        assert_eq!(d.info.objects.len(), 1);
    }

    #[test]
    fn device_attributes() {
        // Response: g0v250 (product name) 00 start 0 stop 0: VSTR "RTU".
        let f = [0xC0, 0x81, 0, 0, 0, 250, 0x00, 0, 0, 1, 3, b'R', b'T', b'U'];
        let d = dec(&f, OUTSTATION);
        assert!(d.anomalies.is_empty(), "{:?}", d.anomalies);
        let a = d.info.attributes.unwrap();
        assert_eq!((a[0].variation, a[0].value.as_str()), (250, "RTU"));
    }

    #[test]
    fn bad_input() {
        // Empty and one-octet fragments.
        assert_eq!(dec(&[], MASTER).anomalies, Anomalies::BAD_LENGTH);
        let d = dec(&[0xC0], MASTER);
        assert_eq!((d.anomalies, d.function), (Anomalies::BAD_LENGTH, None));
        // Response without IIN.
        let d = dec(&[0xC0, 0x81, 0x00], OUTSTATION);
        assert_eq!(d.anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(d.info.function, "response");
        // Unknown function.
        let d = dec(&[0xC0, 0x50, 1, 2, 3], MASTER);
        assert_eq!(d.anomalies, Anomalies::UNKNOWN_FUNCTION);
        assert!(d.info.objects.is_empty());
        // Object count larger than the fragment: g30v1 07 count 200, one object.
        let d = dec(
            &[0xC0, 0x81, 0, 0, 30, 1, 0x07, 200, 1, 0, 0, 0, 0],
            OUTSTATION,
        );
        assert_eq!(d.anomalies, Anomalies::BAD_LENGTH);
        // A huge range of packed bits: counted, not trusted.
        let d = dec(
            &[
                0xC0, 0x81, 0, 0, 1, 1, 0x02, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
            ],
            OUTSTATION,
        );
        assert_eq!(d.anomalies, Anomalies::BAD_LENGTH);
        assert_eq!(d.info.objects[0].count, u32::MAX);
        // Free format count larger than the fragment.
        let d = dec(&[0xC0, 0x02, 70, 3, 0x5B, 9, 1, 0], MASTER);
        assert_eq!(d.anomalies, Anomalies::BAD_LENGTH);
        // Truncated object header; reserved qualifier; stop below start.
        assert!(dec(&[0xC0, 0x01, 60], MASTER)
            .anomalies
            .contains(Anomalies::MALFORMED));
        assert_eq!(
            dec(&[0xC0, 0x01, 60, 1, 0x0C], MASTER).anomalies,
            Anomalies::MALFORMED
        );
        assert_eq!(
            dec(&[0xC0, 0x01, 1, 0, 0x00, 5, 1], MASTER).anomalies,
            Anomalies::MALFORMED
        );
        // Packed bits with an index prefix cannot be framed.
        assert_eq!(
            dec(&[0xC0, 0x02, 10, 1, 0x17, 1, 0, 1], MASTER).anomalies,
            Anomalies::MALFORMED
        );
    }

    #[test]
    fn points_are_bounded() {
        // 1000 packed binary inputs; only 5 kept.
        let mut f = vec![0xC0, 0x81, 0, 0, 1, 1, 0x01, 0, 0, 0xE7, 0x03];
        f.extend_from_slice(&[0xFF; 125]);
        let d = decode_fragment(&f, OUTSTATION, 5);
        assert!(d.anomalies.is_empty());
        assert_eq!(d.info.points.unwrap().len(), 5);
        assert_eq!(d.info.objects[0].count, 1000);
    }

    #[test]
    fn operations_of_every_function() {
        use Operation::*;
        let none: &[Dnp3Object] = &[];
        let crob = [Dnp3Object {
            group: 12,
            variation: 1,
            ..Dnp3Object::default()
        }];
        let table: &[(u8, &[Dnp3Object], Operation)] = &[
            (0, none, Other),
            (1, none, Read),
            (2, none, Write),
            (3, &crob, Other),
            (4, &crob, Write),
            (5, &crob, Write),
            (6, &crob, Write),
            (4, none, Other),
            (7, none, Other),
            (13, none, Restart),
            (14, none, Restart),
            (15, none, ModeChange),
            (16, none, ModeChange),
            (17, none, ModeChange),
            (18, none, ModeChange),
            (20, none, Other),
            (21, none, Other),
            (22, none, Other),
            (23, none, Other),
            (24, none, Other),
            (25, none, FileTransfer),
            (30, none, FileTransfer),
            (31, none, ModeChange),
            (32, none, Session),
            (130, none, Read),
            (0x50, none, Other),
        ];
        for (code, objects, op) in table {
            assert_eq!(
                request_operation(FunctionCode(*code), objects),
                *op,
                "{code}"
            );
        }
    }
}
