//! Pure parsers: the link frame (streaming: `Incomplete` until the whole frame is
//! there), the transport header, the application header and object headers
//! (complete: they read a reassembled fragment).

use nom::error::{ErrorKind, ParseError};
use nom::number::complete::{le_u16, le_u32, u8 as le_u8};
use nom::IResult;

use crate::codes::{AppControl, FunctionCode, LinkControl, Prefix, Qualifier, RangeSpec};
use crate::crc::{crc16_dnp, crc_matches};

/// The start octets of every link frame.
pub const START: [u8; 2] = [0x05, 0x64];
/// Start, length, control, destination, source and the header CRC.
pub const HEADER_LEN: usize = 10;
/// User data of one frame: LEN is at most 255 and counts the 5 header octets.
pub const MAX_USER_DATA: usize = 250;
/// The longest frame: 10 header octets, 250 data octets, 16 block CRCs.
pub const MAX_FRAME_LEN: usize = 292;
/// Data octets per CRC block.
const BLOCK: usize = 16;

/// Why a parse failed. Small and `Copy`: no input bytes inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DissectError {
    /// The bytes do not start with 0x05 0x64: framing is lost.
    #[error("no DNP3 link start octets")]
    BadStart,
    /// The link header CRC does not match: its length is not trusted, framing is lost.
    #[error("DNP3 link header CRC mismatch")]
    BadHeaderCrc,
    /// A link header with a valid CRC and a length below 5.
    #[error("DNP3 link length {length} below 5")]
    BadLength { length: u8 },
    /// A field of the application fragment is missing.
    #[error("DNP3 application fragment truncated")]
    Truncated,
    /// A reserved qualifier (prefix code 7, range codes 0xA, 0xC-0xF, bit 7 set).
    #[error("DNP3 reserved object qualifier 0x{0:02x}")]
    BadQualifier(u8),
    /// A range whose stop index is below its start index.
    #[error("DNP3 object range stop below start")]
    BadRange,
    /// Any other nom failure.
    #[error("DNP3 parse error ({0:?})")]
    Nom(ErrorKind),
}

impl DissectError {
    /// A stable label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DissectError::BadStart => "bad_start",
            DissectError::BadHeaderCrc => "bad_header_crc",
            DissectError::BadLength { .. } => "bad_length",
            DissectError::Truncated => "truncated",
            DissectError::BadQualifier(_) => "bad_qualifier",
            DissectError::BadRange => "bad_range",
            DissectError::Nom(_) => "parse",
        }
    }
}

impl<I> ParseError<I> for DissectError {
    fn from_error_kind(_input: I, kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Eof => DissectError::Truncated,
            k => DissectError::Nom(k),
        }
    }
    fn append(_input: I, _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

/// One link frame, its data blocks still interleaved with their CRCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFrame<'a> {
    /// LEN: octets from the control field to the end of the user data, CRCs excluded.
    pub length: u8,
    pub control: LinkControl,
    pub destination: u16,
    pub source: u16,
    /// The data blocks, each followed by its CRC (empty when LEN is 5).
    pub blocks: &'a [u8],
}

/// The frame's size on the wire for a header LEN (at least 5).
pub fn frame_len(length: u8) -> usize {
    let data = usize::from(length).saturating_sub(5);
    HEADER_LEN + data + 2 * data.div_ceil(BLOCK)
}

/// Checks the header at the front of `i`: `Ok(Some(len))` with the frame's size,
/// `Ok(None)` when fewer than 10 octets are there and those agree with a header.
pub fn check_header(i: &[u8]) -> Result<Option<usize>, DissectError> {
    match i {
        [a, ..] if *a != 0x05 => Err(DissectError::BadStart),
        [_, b, ..] if *b != 0x64 => Err(DissectError::BadStart),
        _ => match i.get(..HEADER_LEN) {
            None => Ok(None),
            Some(h) => {
                let (body, crc) = h.split_at(8);
                if !crc_matches(body, crc) {
                    return Err(DissectError::BadHeaderCrc);
                }
                let length = body.get(2).copied().unwrap_or(0);
                if length < 5 {
                    return Err(DissectError::BadLength { length });
                }
                Ok(Some(frame_len(length)))
            }
        },
    }
}

/// Frames one link frame from the front of `i`.
///
/// `Incomplete` while the bytes present agree with a frame and do not complete it;
/// `Error` when framing is lost (`BadStart`, `BadHeaderCrc`) or the header's length
/// is below 5 (`BadLength`: the 10 header octets are a frame of their own). Block
/// CRCs are checked by [`LinkFrame::user_data`].
pub fn parse_link_frame(i: &[u8]) -> IResult<&[u8], LinkFrame<'_>, DissectError> {
    let total = match check_header(i) {
        Ok(Some(total)) => total,
        Ok(None) => return Err(nom::Err::Incomplete(nom::Needed::new(HEADER_LEN - i.len()))),
        Err(e) => return Err(nom::Err::Error(e)),
    };
    if i.len() < total {
        return Err(nom::Err::Incomplete(nom::Needed::new(total - i.len())));
    }
    let (frame, rest) = i.split_at(total);
    let (header, blocks) = frame.split_at(HEADER_LEN);
    let field = |k: usize| header.get(k).copied().unwrap_or(0);
    Ok((
        rest,
        LinkFrame {
            length: field(2),
            control: LinkControl(field(3)),
            destination: u16::from_le_bytes([field(4), field(5)]),
            source: u16::from_le_bytes([field(6), field(7)]),
            blocks,
        },
    ))
}

/// A data block CRC did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DNP3 link data block CRC mismatch")]
pub struct BadCrc;

impl LinkFrame<'_> {
    /// Number of user data octets (LEN - 5).
    pub fn user_data_len(&self) -> usize {
        usize::from(self.length).saturating_sub(5)
    }

    /// Checks every block CRC and copies the user data into `buf`.
    pub fn user_data<'b>(&self, buf: &'b mut [u8; MAX_USER_DATA]) -> Result<&'b [u8], BadCrc> {
        let mut n = 0;
        for chunk in self.blocks.chunks(BLOCK + 2) {
            let (data, crc) = chunk.split_at(chunk.len().saturating_sub(2));
            if !crc_matches(data, crc) {
                return Err(BadCrc);
            }
            let dst = buf.get_mut(n..n + data.len()).ok_or(BadCrc)?;
            dst.copy_from_slice(data);
            n += data.len();
        }
        buf.get(..n).ok_or(BadCrc)
    }
}

/// Builds a link frame around `user_data` (at most 250 octets), with its CRCs: for
/// tests, benches and fuzz seeds.
pub fn build_link_frame(control: u8, destination: u16, source: u16, user_data: &[u8]) -> Vec<u8> {
    let data = user_data.get(..MAX_USER_DATA).unwrap_or(user_data);
    let mut v = Vec::with_capacity(frame_len(data.len() as u8 + 5));
    v.extend_from_slice(&START);
    v.push(data.len() as u8 + 5);
    v.push(control);
    v.extend_from_slice(&destination.to_le_bytes());
    v.extend_from_slice(&source.to_le_bytes());
    let crc = crc16_dnp(&v);
    v.extend_from_slice(&crc.to_le_bytes());
    for block in data.chunks(BLOCK) {
        v.extend_from_slice(block);
        v.extend_from_slice(&crc16_dnp(block).to_le_bytes());
    }
    v
}

/// The application header: control, function, and IIN on responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppHeader {
    pub control: AppControl,
    pub function: FunctionCode,
    /// IIN1 in the high octet; present on response function codes.
    pub iin: Option<u16>,
}

/// Reads the application header at the front of a fragment (complete input).
pub fn parse_app_header(i: &[u8]) -> IResult<&[u8], AppHeader, DissectError> {
    let (i, control) = le_u8(i)?;
    let (i, function) = le_u8(i)?;
    let function = FunctionCode(function);
    let (i, iin) = if function.is_response() {
        let (i, iin1) = le_u8(i)?;
        let (i, iin2) = le_u8(i)?;
        (i, Some(u16::from_be_bytes([iin1, iin2])))
    } else {
        (i, None)
    };
    Ok((
        i,
        AppHeader {
            control: AppControl(control),
            function,
            iin,
        },
    ))
}

/// One object header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectHeader {
    pub group: u8,
    pub variation: u8,
    pub qualifier: Qualifier,
    pub prefix: Prefix,
    /// Objects that follow (0 for "all objects").
    pub count: u64,
    /// Start and stop indexes of a range qualifier.
    pub range: Option<(u32, u32)>,
}

fn uint(width: u8) -> impl Fn(&[u8]) -> IResult<&[u8], u32, DissectError> {
    move |i| match width {
        1 => le_u8(i).map(|(i, v)| (i, u32::from(v))),
        2 => le_u16(i).map(|(i, v)| (i, u32::from(v))),
        _ => le_u32(i),
    }
}

/// Reads an object header: group, variation, qualifier and range field.
pub fn parse_object_header(i: &[u8]) -> IResult<&[u8], ObjectHeader, DissectError> {
    let (i, group) = le_u8(i)?;
    let (i, variation) = le_u8(i)?;
    let (i, q) = le_u8(i)?;
    let qualifier = Qualifier(q);
    let bad = || nom::Err::Error(DissectError::BadQualifier(q));
    let prefix = qualifier.prefix().ok_or_else(bad)?;
    let range = qualifier.range().ok_or_else(bad)?;
    let (i, count, range) = match range {
        RangeSpec::StartStop(w) => {
            let (i, start) = uint(w)(i)?;
            let (i, stop) = uint(w)(i)?;
            if stop < start {
                return Err(nom::Err::Error(DissectError::BadRange));
            }
            (i, u64::from(stop - start) + 1, Some((start, stop)))
        }
        RangeSpec::All => (i, 0, None),
        RangeSpec::Count(w) => {
            let (i, n) = uint(w)(i)?;
            (i, u64::from(n), None)
        }
        RangeSpec::FreeFormat => {
            let (i, n) = le_u8(i)?;
            (i, u64::from(n), None)
        }
    };
    // Free format with an index-coded prefix: the sizes are 1, 2, 4 octets as well.
    let prefix = match (range, prefix) {
        (None, Prefix::Index(w)) if matches!(qualifier.range(), Some(RangeSpec::FreeFormat)) => {
            Prefix::Size(w)
        }
        _ => prefix,
    };
    Ok((
        i,
        ObjectHeader {
            group,
            variation,
            qualifier,
            prefix,
            count,
            range,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request-link-status frame from the master 1 to the outstation 1024... as
    /// IEEE 1815 examples spell it: 05 64 05 C9 01 00 00 04 + CRC.
    fn link_status_request() -> Vec<u8> {
        build_link_frame(0xC9, 1, 1024, &[])
    }

    #[test]
    fn header_only_frame() {
        // 05 64 | LEN 05 | CTRL C0 | DST 0001 | SRC 0400 | CRC E9 21
        let f = [0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04, 0xE9, 0x21];
        let (rest, frame) = parse_link_frame(&f).unwrap();
        assert!(rest.is_empty());
        assert_eq!(frame.length, 5);
        assert!(frame.control.dir() && frame.control.prm());
        assert_eq!(frame.destination, 1);
        assert_eq!(frame.source, 1024);
        assert!(frame.blocks.is_empty());
        assert_eq!(build_link_frame(0xC0, 1, 1024, &[]), f);
        let mut buf = [0; MAX_USER_DATA];
        assert_eq!(frame.user_data(&mut buf), Ok(&[][..]));
        assert_eq!(link_status_request().len(), 10);
    }

    #[test]
    fn frame_sizes() {
        assert_eq!(frame_len(5), 10);
        assert_eq!(frame_len(6), 13); // 1 data octet + CRC
        assert_eq!(frame_len(21), 28); // one full block
        assert_eq!(frame_len(22), 31); // a 17th octet opens a second block
        assert_eq!(frame_len(255), MAX_FRAME_LEN);
    }

    #[test]
    fn user_data_across_blocks() {
        let data: Vec<u8> = (0..40).collect();
        let f = build_link_frame(0xC4, 10, 1, &data);
        assert_eq!(f.len(), 10 + 40 + 2 * 3);
        let (rest, frame) = parse_link_frame(&f).unwrap();
        assert!(rest.is_empty());
        assert_eq!(frame.length, 45);
        let mut buf = [0; MAX_USER_DATA];
        assert_eq!(frame.user_data(&mut buf).unwrap(), &data[..]);
        // Flip a data octet of the second block: that block's CRC fails.
        let mut bad = f.clone();
        bad[10 + 18 + 3] ^= 1;
        let (_, frame) = parse_link_frame(&bad).unwrap();
        assert_eq!(frame.user_data(&mut buf), Err(BadCrc));
        // Maximum size.
        let max: Vec<u8> = (0..250).map(|x| x as u8).collect();
        let f = build_link_frame(0x44, 1, 2, &max);
        assert_eq!(f.len(), MAX_FRAME_LEN);
        let (_, frame) = parse_link_frame(&f).unwrap();
        assert_eq!(frame.user_data(&mut buf).unwrap(), &max[..]);
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        let data: Vec<u8> = (0..37).collect();
        for f in [
            build_link_frame(0xC0, 1, 1024, &[]),
            build_link_frame(0xC4, 10, 1, &data),
        ] {
            for n in 0..f.len() {
                assert!(
                    matches!(parse_link_frame(&f[..n]), Err(nom::Err::Incomplete(_))),
                    "prefix {n}"
                );
            }
            assert!(parse_link_frame(&f).is_ok());
        }
    }

    #[test]
    fn framing_errors() {
        let e = |b: &[u8]| match parse_link_frame(b) {
            Err(nom::Err::Error(e)) => Some(e),
            _ => None,
        };
        assert_eq!(e(&[0x06]), Some(DissectError::BadStart));
        assert_eq!(e(&[0x05, 0x65]), Some(DissectError::BadStart));
        let mut f = build_link_frame(0xC4, 10, 1, &[0xC0, 0xC1, 0x01]);
        f[8] ^= 0xFF;
        assert_eq!(e(&f), Some(DissectError::BadHeaderCrc));
        // LEN 4 with a valid CRC.
        let mut h = vec![0x05, 0x64, 0x04, 0xC0, 1, 0, 2, 0];
        h.extend_from_slice(&crc16_dnp(&h).to_le_bytes());
        assert_eq!(e(&h), Some(DissectError::BadLength { length: 4 }));
    }

    #[test]
    fn app_header() {
        // Response: control C3 (FIR FIN seq 3), function 0x81, IIN1 0x90, IIN2 0x04.
        let (rest, h) = parse_app_header(&[0xC3, 0x81, 0x90, 0x04, 0xAA]).unwrap();
        assert_eq!(rest, &[0xAA]);
        assert_eq!(h.function, FunctionCode::RESPONSE);
        assert_eq!(h.control.seq(), 3);
        assert_eq!(h.iin, Some(0x9004));
        // Request: no IIN.
        let (_, h) = parse_app_header(&[0xC0, 0x01]).unwrap();
        assert_eq!(h.iin, None);
        // A response without IIN, and an empty fragment.
        assert!(parse_app_header(&[0xC0, 0x81, 0x00]).is_err());
        assert!(parse_app_header(&[0xC0]).is_err());
    }

    #[test]
    fn object_headers() {
        let h = |b: &[u8]| parse_object_header(b).map(|(r, h)| (r.len(), h));
        // g60v1 all objects (class 0 poll).
        let (_, o) = h(&[60, 1, 0x06]).unwrap();
        assert_eq!((o.group, o.variation, o.count, o.range), (60, 1, 0, None));
        // g1v2, 8-bit start 0 stop 7.
        let (_, o) = h(&[1, 2, 0x00, 0, 7]).unwrap();
        assert_eq!((o.count, o.range), (8, Some((0, 7))));
        // 16-bit start/stop, 32-bit start/stop.
        let (_, o) = h(&[30, 1, 0x01, 0x00, 0x01, 0xFF, 0x01]).unwrap();
        assert_eq!((o.count, o.range), (256, Some((256, 511))));
        let (_, o) = h(&[30, 1, 0x02, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(o.count, 1 << 32);
        // Count with 1-octet index prefix (g12v1 CROB, qualifier 0x17), 2-octet count
        // with 2-octet index prefix (0x28), 4-octet count (0x39).
        let (_, o) = h(&[12, 1, 0x17, 1]).unwrap();
        assert_eq!((o.prefix, o.count), (Prefix::Index(1), 1));
        let (_, o) = h(&[41, 2, 0x28, 2, 0]).unwrap();
        assert_eq!((o.prefix, o.count), (Prefix::Index(2), 2));
        let (_, o) = h(&[41, 1, 0x39, 3, 0, 0, 0]).unwrap();
        assert_eq!((o.prefix, o.count), (Prefix::Index(4), 3));
        // Free format (g70v3, 0x5B): 1-octet count, 2-octet size prefix.
        let (_, o) = h(&[70, 3, 0x5B, 1]).unwrap();
        assert_eq!((o.prefix, o.count), (Prefix::Size(2), 1));
        // Virtual addresses (code 3): like start/stop.
        let (_, o) = h(&[1, 1, 0x03, 2, 4]).unwrap();
        assert_eq!(o.count, 3);
        // Errors.
        assert_eq!(
            parse_object_header(&[1, 1, 0x0A]).unwrap_err(),
            nom::Err::Error(DissectError::BadQualifier(0x0A))
        );
        assert_eq!(
            parse_object_header(&[1, 1, 0x00, 7, 2]).unwrap_err(),
            nom::Err::Error(DissectError::BadRange)
        );
        assert_eq!(
            parse_object_header(&[1, 1, 0x01, 7]).unwrap_err(),
            nom::Err::Error(DissectError::Truncated)
        );
        assert!(parse_object_header(&[1, 1]).is_err());
    }
}
