//! Object sizes and value decoding (IEEE 1815-2012 clause 11, the object library).
//!
//! The walker must know how many octets each object takes to find the next header:
//! [`object_size`] gives it for every group/variation this crate knows. Objects whose
//! size is not known can still be skipped when the qualifier carries a size prefix;
//! otherwise the rest of the fragment cannot be framed and parsing stops.

use otwatch_event::{Dnp3Attribute, Dnp3Point};

/// How many octets one object of a group/variation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectSize {
    /// Packed: this many bits per object, the header's objects padded to an octet.
    Bits(u8),
    /// This many octets per object.
    Fixed(u16),
    /// Octet strings (g110-g113): the variation is the size.
    Variation,
    /// Device attributes (g0): a data type octet, a length octet, the value.
    Attribute,
    /// Only framable with a size prefix (free format: g70, g85-g88, g90, g120...).
    SizePrefixed,
}

/// The size of one object, `None` when the object is not in this crate's library.
pub fn object_size(group: u8, variation: u8) -> Option<ObjectSize> {
    use ObjectSize::*;
    let fixed = |n| Some(Fixed(n));
    match (group, variation) {
        (0, _) => Some(Attribute),
        (1, 1) => Some(Bits(1)),
        (1, 2) => fixed(1),
        (2, 1) | (4, 1) | (11, 1) | (13, 1) => fixed(1),
        (2, 2) | (4, 2) | (11, 2) | (13, 2) => fixed(7),
        (2, 3) | (4, 3) => fixed(3),
        (3, 1) => Some(Bits(2)),
        (3, 2) => fixed(1),
        (10, 1) => Some(Bits(1)),
        (10, 2) => fixed(1),
        (12, 1) | (12, 2) => fixed(11),
        (12, 3) => Some(Bits(1)),
        (20, 1) | (20, 3) => fixed(5),
        (20, 2) | (20, 4) => fixed(3),
        (20, 5) | (20, 7) => fixed(4),
        (20, 6) | (20, 8) => fixed(2),
        (21, 1) | (21, 3) => fixed(5),
        (21, 2) | (21, 4) => fixed(3),
        (21, 5) | (21, 7) => fixed(11),
        (21, 6) | (21, 8) => fixed(9),
        (21, 9) | (21, 11) => fixed(4),
        (21, 10) | (21, 12) => fixed(2),
        (22 | 23, 1) | (22 | 23, 3) => fixed(5),
        (22 | 23, 2) | (22 | 23, 4) => fixed(3),
        (22 | 23, 5) | (22 | 23, 7) => fixed(11),
        (22 | 23, 6) | (22 | 23, 8) => fixed(9),
        (30, 1) | (30, 5) => fixed(5),
        (30, 2) => fixed(3),
        (30, 3) => fixed(4),
        (30, 4) => fixed(2),
        (30, 6) => fixed(9),
        (31, 1) | (31, 7) => fixed(5),
        (31, 2) => fixed(3),
        (31, 3) => fixed(11),
        (31, 4) | (31, 8) => fixed(9),
        (31, 5) => fixed(4),
        (31, 6) => fixed(2),
        (32 | 33 | 42 | 43, 1) | (32 | 33 | 42 | 43, 5) => fixed(5),
        (32 | 33 | 42 | 43, 2) => fixed(3),
        (32 | 33 | 42 | 43, 3) | (32 | 33 | 42 | 43, 7) => fixed(11),
        (32 | 33 | 42 | 43, 4) | (32 | 33 | 42 | 43, 6) => fixed(9),
        (32 | 33 | 42 | 43, 8) => fixed(15),
        (34, 1) => fixed(2),
        (34, 2) | (34, 3) => fixed(4),
        (40 | 41, 1) | (40 | 41, 3) => fixed(5),
        (40 | 41, 2) => fixed(3),
        (40 | 41, 4) => fixed(9),
        (50, 1) | (50, 3) => fixed(6),
        (50, 2) => fixed(10),
        (50, 4) => fixed(11),
        (51, 1) | (51, 2) => fixed(6),
        (52, 1) | (52, 2) => fixed(2),
        (60, 1..=4) => fixed(0),
        (70, _) | (82, _) | (83, _) | (85..=88, _) | (90, _) | (91, _) => Some(SizePrefixed),
        (80, 1) => Some(Bits(1)),
        (101, 1) => fixed(2),
        (101, 2) => fixed(4),
        (101, 3) => fixed(8),
        (102, 1) => fixed(1),
        (110..=113, _) => Some(Variation),
        (120, 3) => fixed(6),
        (120, 4) => fixed(2),
        (120, _) => Some(SizePrefixed),
        (121, 1) | (122, 1) => fixed(7),
        (122, 2) => fixed(13),
        _ => None,
    }
}

/// Whether the group/variation is one whose values become [`Dnp3Point`]s.
pub fn is_point_object(group: u8, variation: u8) -> bool {
    matches!(
        (group, variation),
        (1, 1 | 2) | (10, 1 | 2) | (12, 1 | 2) | (30, 1..=6) | (40, 1..=4) | (41, 1..=4)
    )
}

fn le<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at + N)?.try_into().ok()
}
fn i32_at(d: &[u8], at: usize) -> Option<f64> {
    le::<4>(d, at).map(|b| f64::from(i32::from_le_bytes(b)))
}
fn i16_at(d: &[u8], at: usize) -> Option<f64> {
    le::<2>(d, at).map(|b| f64::from(i16::from_le_bytes(b)))
}
fn f32_at(d: &[u8], at: usize) -> Option<f64> {
    le::<4>(d, at).map(|b| f64::from(f32::from_le_bytes(b)))
}
fn f64_at(d: &[u8], at: usize) -> Option<f64> {
    le::<8>(d, at).map(f64::from_le_bytes)
}

/// Decodes one fixed-size object of a point group (`data` is exactly the object).
///
/// g12 CROB/PCB: control code, count, on/off times, status; g41: value then status;
/// g40 and flagged g30: flags then value; g1v2/g10v2: flags, the state in bit 7.
#[inline]
pub fn decode_point(group: u8, variation: u8, index: u32, data: &[u8]) -> Option<Dnp3Point> {
    let first = data.first().copied();
    let p = |value: Option<f64>, status: Option<u8>| Dnp3Point {
        group,
        variation,
        index,
        value,
        control_code: None,
        status,
    };
    Some(match (group, variation) {
        (12, 1 | 2) => Dnp3Point {
            control_code: first,
            status: data.get(10).copied(),
            ..p(None, None)
        },
        (41, 1) => p(Some(i32_at(data, 0)?), data.get(4).copied()),
        (41, 2) => p(Some(i16_at(data, 0)?), data.get(2).copied()),
        (41, 3) => p(Some(f32_at(data, 0)?), data.get(4).copied()),
        (41, 4) => p(Some(f64_at(data, 0)?), data.get(8).copied()),
        (40, 1) | (30, 1) => p(Some(i32_at(data, 1)?), first),
        (40, 2) | (30, 2) => p(Some(i16_at(data, 1)?), first),
        (40, 3) | (30, 5) => p(Some(f32_at(data, 1)?), first),
        (40, 4) | (30, 6) => p(Some(f64_at(data, 1)?), first),
        (30, 3) => p(Some(i32_at(data, 0)?), None),
        (30, 4) => p(Some(i16_at(data, 0)?), None),
        (1, 2) | (10, 2) => {
            let flags = first?;
            p(Some(f64::from(flags >> 7)), Some(flags))
        }
        _ => return None,
    })
}

/// A packed binary (g1v1, g10v1): the state of object `k` of a header.
pub fn packed_point(
    group: u8,
    variation: u8,
    index: u32,
    bits: &[u8],
    k: usize,
) -> Option<Dnp3Point> {
    let byte = bits.get(k / 8)?;
    Some(Dnp3Point {
        group,
        variation,
        index,
        value: Some(f64::from((byte >> (k % 8)) & 1)),
        control_code: None,
        status: None,
    })
}

/// The 48-bit DNP3 time (milliseconds since 1970-01-01 UTC) at the front of `data`.
pub fn time48(data: &[u8]) -> Option<u64> {
    let b = le::<6>(data, 0)?;
    let mut v = [0u8; 8];
    v.get_mut(..6)?.copy_from_slice(&b);
    Some(u64::from_le_bytes(v))
}

/// What a g70 object says about the file it names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileInfo {
    pub name: Option<String>,
    pub mode: Option<u16>,
}

/// Decodes a g70 object (the octets after its size prefix).
///
/// v3 file command: name offset, name size, creation time, permissions,
/// authentication key, file size, operational mode, maximum block size, request id,
/// name. v7 file descriptor: name offset, name size, file type, file size, creation
/// time, permissions, request id, name. v8 file specification string: the name
/// itself. The name offsets count from the object's first octet.
pub fn decode_file_object(variation: u8, data: &[u8]) -> FileInfo {
    let u16_at = |at| le::<2>(data, at).map(u16::from_le_bytes);
    let name_at = |fixed: usize| -> Option<String> {
        let off = usize::from(u16_at(0)?);
        let len = usize::from(u16_at(2)?);
        let start = if off >= fixed { off } else { fixed };
        let name = data.get(start..start.checked_add(len)?)?;
        Some(String::from_utf8_lossy(name).into_owned())
    };
    match variation {
        3 => FileInfo {
            name: name_at(26),
            mode: u16_at(20),
        },
        7 => FileInfo {
            name: name_at(20),
            mode: None,
        },
        8 => FileInfo {
            name: Some(String::from_utf8_lossy(data).into_owned()),
            mode: None,
        },
        _ => FileInfo::default(),
    }
}

/// Decodes a g0 device attribute (data type, length, value); returns the attribute
/// and the octets it took.
///
/// Data types (clause 11.9.1): 1 visible string, 2 unsigned, 3 signed, 4 float,
/// 5 octet string, 6 bit string, 254/255 attribute lists; the last three are shown in
/// hex.
pub fn decode_attribute(variation: u8, data: &[u8]) -> Option<(Dnp3Attribute, usize)> {
    let (&kind, rest) = data.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let value = rest.get(..usize::from(len))?;
    let text = match (kind, value.len()) {
        (1, _) => String::from_utf8_lossy(value).into_owned(),
        (2, 1..=8) => {
            let mut b = [0u8; 8];
            b.get_mut(..value.len())?.copy_from_slice(value);
            u64::from_le_bytes(b).to_string()
        }
        (3, 1..=8) => {
            let mut b = [0u8; 8];
            b.get_mut(..value.len())?.copy_from_slice(value);
            let shift = 64 - 8 * value.len() as u32;
            ((i64::from_le_bytes(b) << shift) >> shift).to_string()
        }
        (4, 4) => f32_at(value, 0)?.to_string(),
        (4, 8) => f64_at(value, 0)?.to_string(),
        _ => value.iter().map(|b| format!("{b:02x}")).collect(),
    };
    Some((
        Dnp3Attribute {
            variation,
            value: text,
        },
        2 + value.len(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_common_objects() {
        assert_eq!(object_size(1, 1), Some(ObjectSize::Bits(1)));
        assert_eq!(object_size(3, 1), Some(ObjectSize::Bits(2)));
        assert_eq!(object_size(12, 1), Some(ObjectSize::Fixed(11)));
        assert_eq!(object_size(30, 6), Some(ObjectSize::Fixed(9)));
        assert_eq!(object_size(32, 8), Some(ObjectSize::Fixed(15)));
        assert_eq!(object_size(41, 2), Some(ObjectSize::Fixed(3)));
        assert_eq!(object_size(50, 1), Some(ObjectSize::Fixed(6)));
        assert_eq!(object_size(60, 2), Some(ObjectSize::Fixed(0)));
        assert_eq!(object_size(70, 3), Some(ObjectSize::SizePrefixed));
        assert_eq!(object_size(110, 7), Some(ObjectSize::Variation));
        assert_eq!(object_size(200, 1), None);
        assert_eq!(object_size(41, 5), None);
    }

    #[test]
    fn crob_and_analog_outputs() {
        // g12v1: LATCH_ON (0x03), count 1, on 100 ms, off 0, status 0.
        let crob = [0x03, 0x01, 0x64, 0, 0, 0, 0, 0, 0, 0, 0x00];
        let p = decode_point(12, 1, 7, &crob).unwrap();
        assert_eq!(
            (p.index, p.control_code, p.status, p.value),
            (7, Some(3), Some(0), None)
        );
        // g41v1: -2 as i32, status 0.
        let p = decode_point(41, 1, 3, &[0xFE, 0xFF, 0xFF, 0xFF, 0x00]).unwrap();
        assert_eq!(p.value, Some(-2.0));
        // g41v2: 1000 as i16, status 4 (not supported).
        let p = decode_point(41, 2, 0, &[0xE8, 0x03, 0x04]).unwrap();
        assert_eq!((p.value, p.status), (Some(1000.0), Some(4)));
        // g41v3: 12.5f32.
        let mut v = 12.5f32.to_le_bytes().to_vec();
        v.push(0);
        assert_eq!(decode_point(41, 3, 0, &v).unwrap().value, Some(12.5));
        // g41v4: -0.25f64.
        let mut v = (-0.25f64).to_le_bytes().to_vec();
        v.push(0);
        assert_eq!(decode_point(41, 4, 0, &v).unwrap().value, Some(-0.25));
    }

    #[test]
    fn analog_and_binary_inputs() {
        // g30v1: flags 0x01 (online), value 0x00000102.
        let p = decode_point(30, 1, 0, &[0x01, 0x02, 0x01, 0, 0]).unwrap();
        assert_eq!((p.value, p.status), (Some(258.0), Some(1)));
        assert_eq!(
            decode_point(30, 4, 0, &[0xFF, 0xFF]).unwrap().value,
            Some(-1.0)
        );
        let mut v = vec![0x01];
        v.extend_from_slice(&1.5f32.to_le_bytes());
        assert_eq!(decode_point(30, 5, 0, &v).unwrap().value, Some(1.5));
        assert_eq!(
            decode_point(40, 2, 0, &[0x01, 0x10, 0x00]).unwrap().value,
            Some(16.0)
        );
        // g10v2: flags 0x81 = online, state on.
        let p = decode_point(10, 2, 0, &[0x81]).unwrap();
        assert_eq!((p.value, p.status), (Some(1.0), Some(0x81)));
        // Packed g1v1: 0b0000_0101 -> points 0 and 2 on.
        let states: Vec<f64> = (0..4)
            .filter_map(|k| packed_point(1, 1, k as u32, &[0x05], k)?.value)
            .collect();
        assert_eq!(states, [1.0, 0.0, 1.0, 0.0]);
        // Short data: nothing.
        assert_eq!(decode_point(30, 1, 0, &[0x01, 0x02]), None);
        assert_eq!(decode_point(60, 1, 0, &[]), None);
    }

    #[test]
    fn time_and_files() {
        // 2023-01-01T00:00:00Z = 1_672_531_200_000 ms.
        let t = 1_672_531_200_000u64.to_le_bytes();
        assert_eq!(time48(&t[..6]), Some(1_672_531_200_000));
        assert_eq!(time48(&t[..5]), None);
        // g70v3 open for write (mode 2) of "/cfg.bin".
        let name = b"/cfg.bin";
        let mut o = Vec::new();
        o.extend_from_slice(&26u16.to_le_bytes()); // name offset
        o.extend_from_slice(&(name.len() as u16).to_le_bytes()); // name size
        o.extend_from_slice(&[0; 6]); // creation time
        o.extend_from_slice(&0x01FFu16.to_le_bytes()); // permissions
        o.extend_from_slice(&0u32.to_le_bytes()); // authentication key
        o.extend_from_slice(&1024u32.to_le_bytes()); // file size
        o.extend_from_slice(&2u16.to_le_bytes()); // operational mode: write
        o.extend_from_slice(&1024u16.to_le_bytes()); // maximum block size
        o.extend_from_slice(&7u16.to_le_bytes()); // request id
        o.extend_from_slice(name);
        let f = decode_file_object(3, &o);
        assert_eq!(f.name.as_deref(), Some("/cfg.bin"));
        assert_eq!(f.mode, Some(2));
        // A name size that lies: no name, no panic.
        o[2] = 200;
        assert_eq!(decode_file_object(3, &o).name, None);
        assert_eq!(
            decode_file_object(8, b"a.bin").name.as_deref(),
            Some("a.bin")
        );
        assert_eq!(decode_file_object(3, &[1]), FileInfo::default());
    }

    #[test]
    fn attributes() {
        // Visible string "RTU-7".
        let (a, n) = decode_attribute(250, &[1, 5, b'R', b'T', b'U', b'-', b'7', 0xEE]).unwrap();
        assert_eq!((a.variation, a.value.as_str(), n), (250, "RTU-7", 7));
        assert_eq!(
            decode_attribute(242, &[2, 2, 0x34, 0x12]).unwrap().0.value,
            "4660"
        );
        assert_eq!(decode_attribute(1, &[3, 1, 0xFF]).unwrap().0.value, "-1");
        assert_eq!(
            decode_attribute(1, &[5, 2, 0xAB, 0x01]).unwrap().0.value,
            "ab01"
        );
        assert_eq!(decode_attribute(1, &[1, 9, b'x']), None);
        assert_eq!(decode_attribute(1, &[1]), None);
    }
}
