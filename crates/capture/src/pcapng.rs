//! pcapng files: a sequence of blocks, each `type u32, total_length u32, body, total_length
//! u32`, in the byte order of the section header block (SHB) that opened the section.
//!
//! Read here: SHB (0x0a0d0d0a; a new one resets the interfaces and may switch byte
//! order), IDB (1: link type, snaplen, `if_tsresol` option 9, `if_tsoffset` option 14),
//! EPB (6), SPB (3) and the obsolete PB (2). Every other block (name resolution,
//! statistics, decryption secrets, custom, journal…) is skipped by its length.
//!
//! The few fixed headers are parsed by hand rather than with `pcap-parser`'s block
//! parsers: we need to tell "the file ends inside this block" (a capture cut short:
//! exit 0) from "this block header cannot be right" (exit 1) and report the exact byte
//! offset of the block in both cases, which its `Incomplete`/`Error` results do not
//! separate; `pcap-parser` remains the independent cross-check in the tests.

use otwatch_event::Timestamp;

use crate::endian::Endian;
use crate::error::{HeaderProblem, OpenError, ReadError, RecordProblem};
use crate::{LinkType, Packet};

const SHB_TYPE_BYTES: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
/// Type, length, byte-order magic, versions, section length, trailing length.
const MIN_SHB_LEN: u32 = 28;
/// Wireshark's bound on a block; nothing we read can be longer.
const MAX_BLOCK_LEN: u32 = 16 * 1024 * 1024;
/// Interfaces kept per section (each costs a few bytes; the bound stops a hostile file
/// from growing the table without end).
const MAX_INTERFACES: usize = 65_536;

/// Whether `first` starts with a section header block.
pub(crate) fn is_pcapng(first: &[u8]) -> bool {
    first.get(..4) == Some(&SHB_TYPE_BYTES[..])
}

/// The byte order a section header declares through its magic at bytes 8..12.
fn section_endian(block: &[u8]) -> Option<Endian> {
    match block.get(8..12)? {
        [0x4d, 0x3c, 0x2b, 0x1a] => Some(Endian::Little),
        [0x1a, 0x2b, 0x3c, 0x4d] => Some(Endian::Big),
        _ => None,
    }
}

/// Checks the first section header of `data`, which starts with the SHB type.
pub(crate) fn check_first_section(data: &[u8]) -> Result<(), OpenError> {
    let corrupt = |reason| OpenError::Corrupt { reason };
    if data.len() < 12 {
        return Err(corrupt(HeaderProblem::ShortSectionHeader));
    }
    let endian = section_endian(data).ok_or(corrupt(HeaderProblem::ByteOrderMagic))?;
    let len = endian
        .u32(data, 4)
        .ok_or(corrupt(HeaderProblem::ShortSectionHeader))?;
    if len < MIN_SHB_LEN || len % 4 != 0 || len > MAX_BLOCK_LEN {
        return Err(corrupt(HeaderProblem::SectionHeaderLength));
    }
    let Some(block) = data.get(..len as usize) else {
        return Err(corrupt(HeaderProblem::ShortSectionHeader));
    };
    if endian.u32(block, len as usize - 4) != Some(len) {
        return Err(corrupt(HeaderProblem::SectionHeaderLength));
    }
    if endian.u16(block, 12) != Some(1) {
        return Err(corrupt(HeaderProblem::SectionVersion));
    }
    Ok(())
}

/// Timestamp units of an interface (`if_tsresol`): 10^-n or 2^-n seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Pow10(u8),
    Pow2(u8),
}

impl Resolution {
    fn from_option(v: u8) -> Resolution {
        if v & 0x80 == 0 {
            Resolution::Pow10(v)
        } else {
            Resolution::Pow2(v & 0x7f)
        }
    }

    /// Nanoseconds in `units` (truncated; 0 for absurdly fine resolutions).
    fn nanos(self, units: u64) -> i128 {
        let u = i128::from(units);
        match self {
            Resolution::Pow10(6) => u * 1_000,
            Resolution::Pow10(9) => u,
            Resolution::Pow10(p) if p < 9 => u * 10i128.pow(u32::from(9 - p)),
            Resolution::Pow10(p) => 10i128.checked_pow(u32::from(p - 9)).map_or(0, |d| u / d),
            // units < 2^64, so units * 10^9 < 2^94: no overflow; p <= 127.
            Resolution::Pow2(p) => (u * 1_000_000_000) >> p,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    linktype: Option<LinkType>,
    snaplen: u32,
    resolution: Resolution,
    /// `if_tsoffset`: seconds to add to every timestamp.
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, units: u64) -> Timestamp {
        let nanos = self.resolution.nanos(units) + i128::from(self.offset_secs) * 1_000_000_000;
        Timestamp::from_nanos(nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }
}

/// Lends the packets of a pcapng file one by one, across sections.
#[derive(Debug, Clone)]
pub(crate) struct NgReader<'a> {
    data: &'a [u8],
    pos: usize,
    endian: Endian,
    interfaces: Vec<Interface>,
    /// The time of the last packet, given to simple packet blocks (which carry none)
    /// so that the packet clock does not jump back to 1970.
    last_ts: Timestamp,
    /// The first link type met in an IDB that otwatch cannot decode.
    pub(crate) first_unsupported: Option<u32>,
}

impl<'a> NgReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        NgReader {
            data,
            pos: 0,
            endian: Endian::Little,
            interfaces: Vec::new(),
            last_ts: Timestamp::default(),
            first_unsupported: None,
        }
    }

    pub(crate) fn next_packet(&mut self) -> Option<Result<Packet<'a>, ReadError>> {
        loop {
            let start = self.pos;
            let rest = self.data.get(start..)?;
            if rest.is_empty() {
                return None;
            }
            let offset = start as u64;
            let corrupt = |reason| Some(Err(ReadError::Corrupt { offset, reason }));
            let truncated = Some(Err(ReadError::Truncated { offset }));

            let is_shb = is_pcapng(rest);
            if is_shb {
                if rest.len() < 12 {
                    return truncated;
                }
                match section_endian(rest) {
                    Some(e) => self.endian = e,
                    None => return corrupt(RecordProblem::ByteOrderMagic),
                }
            }
            let e = self.endian;
            let (Some(btype), Some(len)) = (e.u32(rest, 0), e.u32(rest, 4)) else {
                return truncated;
            };
            if len < 12 || len % 4 != 0 || (is_shb && len < MIN_SHB_LEN) {
                return corrupt(RecordProblem::BlockLength);
            }
            if len > MAX_BLOCK_LEN {
                return corrupt(RecordProblem::BlockTooLarge);
            }
            let len = len as usize;
            let Some(block) = rest.get(..len) else {
                return truncated;
            };
            if e.u32(block, len - 4) != Some(len as u32) {
                return corrupt(RecordProblem::BlockLengthMismatch);
            }
            let body = block.get(8..len - 4).unwrap_or(&[]);
            // Every block moves on by at least 12 bytes: the loop ends.
            self.pos = start + len;

            match btype {
                _ if is_shb => {
                    if e.u16(body, 4) != Some(1) {
                        return corrupt(RecordProblem::SectionVersion);
                    }
                    self.interfaces.clear();
                }
                IDB => {
                    let Some(iface) = self.interface(body) else {
                        return corrupt(RecordProblem::BlockBody);
                    };
                    if self.interfaces.len() >= MAX_INTERFACES {
                        return corrupt(RecordProblem::TooManyInterfaces);
                    }
                    self.interfaces.push(iface);
                }
                EPB | PB => {
                    // EPB: interface u32. PB: interface u16, drops u16. Then both:
                    // ts_high u32, ts_low u32, captured u32, original u32, data.
                    let iface_id = if btype == EPB {
                        e.u32(body, 0)
                    } else {
                        e.u16(body, 0).map(u32::from)
                    };
                    let (Some(iface_id), Some(hi), Some(lo), Some(caplen), Some(orig_len)) = (
                        iface_id,
                        e.u32(body, 4),
                        e.u32(body, 8),
                        e.u32(body, 12),
                        e.u32(body, 16),
                    ) else {
                        return corrupt(RecordProblem::BlockBody);
                    };
                    let Some(data) = body.get(20..20 + caplen as usize) else {
                        return corrupt(RecordProblem::BlockBody);
                    };
                    let Some(iface) = self.interfaces.get(iface_id as usize) else {
                        return corrupt(RecordProblem::UndefinedInterface);
                    };
                    let Some(linktype) = iface.linktype else {
                        return corrupt(RecordProblem::UnsupportedLinkType);
                    };
                    let ts = iface.timestamp(u64::from(hi) << 32 | u64::from(lo));
                    self.last_ts = ts;
                    return Some(Ok(Packet {
                        ts,
                        linktype,
                        data,
                        orig_len,
                        offset,
                    }));
                }
                SPB => {
                    // original u32, then data padded to 4: the captured length is the
                    // original one cut to the block and to interface 0's snaplen.
                    let Some(orig_len) = e.u32(body, 0) else {
                        return corrupt(RecordProblem::BlockBody);
                    };
                    let Some(iface) = self.interfaces.first() else {
                        return corrupt(RecordProblem::UndefinedInterface);
                    };
                    let Some(linktype) = iface.linktype else {
                        return corrupt(RecordProblem::UnsupportedLinkType);
                    };
                    let room = body.len().saturating_sub(4);
                    let mut caplen = (orig_len as usize).min(room);
                    if iface.snaplen != 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    let data = body.get(4..4 + caplen).unwrap_or(&[]);
                    return Some(Ok(Packet {
                        ts: self.last_ts,
                        linktype,
                        data,
                        orig_len,
                        offset,
                    }));
                }
                _ => {}
            }
        }
    }

    /// An IDB body: link type u16, reserved u16, snaplen u32, options.
    fn interface(&mut self, body: &[u8]) -> Option<Interface> {
        let e = self.endian;
        let dlt = e.u16(body, 0)?;
        let snaplen = e.u32(body, 4)?;
        let linktype = LinkType::from_dlt(u32::from(dlt));
        if linktype.is_none() && self.first_unsupported.is_none() {
            self.first_unsupported = Some(u32::from(dlt));
        }
        let mut iface = Interface {
            linktype,
            snaplen,
            resolution: Resolution::Pow10(6),
            offset_secs: 0,
        };
        // Options: code u16, length u16, value padded to 4. A malformed option list is
        // not worth refusing the packets for: we keep what was read before it.
        let opts = body.get(8..).unwrap_or(&[]);
        let mut at = 0usize;
        while let (Some(code), Some(olen)) = (e.u16(opts, at), e.u16(opts, at + 2)) {
            if code == 0 {
                break;
            }
            let olen = usize::from(olen);
            let Some(val) = opts.get(at + 4..at + 4 + olen) else {
                tracing::debug!("pcapng interface option {code} runs past its block; ignored");
                break;
            };
            match (code, val) {
                (9, [v, ..]) => iface.resolution = Resolution::from_option(*v),
                (14, _) => {
                    if let Some(secs) = e.u64(val, 0) {
                        iface.offset_secs = secs as i64;
                    }
                }
                _ => {}
            }
            at += 4 + olen.div_ceil(4) * 4;
        }
        Some(iface)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::Ng;

    fn all(data: &[u8]) -> (Vec<Packet<'_>>, Option<ReadError>) {
        let mut r = NgReader::new(data);
        let mut out = Vec::new();
        while let Some(item) = r.next_packet() {
            match item {
                Ok(p) => out.push(p),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn minimal_file_annotated() {
        #[rustfmt::skip]
        let file: &[u8] = &[
            // SHB
            0x0a, 0x0d, 0x0d, 0x0a, // block type
            0x1c, 0x00, 0x00, 0x00, // total length 28
            0x4d, 0x3c, 0x2b, 0x1a, // byte-order magic: little-endian
            0x01, 0x00, 0x00, 0x00, // version 1.0
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // section length -1
            0x1c, 0x00, 0x00, 0x00, // total length 28
            // IDB
            0x01, 0x00, 0x00, 0x00, // block type 1
            0x14, 0x00, 0x00, 0x00, // total length 20
            0x01, 0x00,             // link type 1 (Ethernet)
            0x00, 0x00,             // reserved
            0x00, 0x00, 0x04, 0x00, // snaplen 262144
            0x14, 0x00, 0x00, 0x00, // total length 20
            // EPB
            0x06, 0x00, 0x00, 0x00, // block type 6
            0x24, 0x00, 0x00, 0x00, // total length 36
            0x00, 0x00, 0x00, 0x00, // interface 0
            0x00, 0x00, 0x00, 0x00, // timestamp high
            0x40, 0x42, 0x0f, 0x00, // timestamp low: 1_000_000 µs
            0x03, 0x00, 0x00, 0x00, // captured length 3
            0x40, 0x00, 0x00, 0x00, // original length 64
            0xde, 0xad, 0xbe, 0x00, // data + 1 byte of padding
            0x24, 0x00, 0x00, 0x00, // total length 36
        ];
        assert_eq!(check_first_section(file), Ok(()));
        let (pkts, err) = all(file);
        assert_eq!(err, None);
        assert_eq!(pkts.len(), 1);
        let p = pkts[0];
        assert_eq!(p.ts, Timestamp::from_nanos(1_000_000_000));
        assert_eq!(p.data, &[0xde, 0xad, 0xbe]);
        assert_eq!(p.orig_len, 64);
        assert_eq!(p.offset, 48);
        assert_eq!(p.linktype, LinkType::Ethernet);
        // Every strict prefix ending inside a block is truncated at that block.
        for cut in 1..file.len() {
            let (pkts, err) = all(file.get(..cut).unwrap_or(&[]));
            let want_at = if cut < 28 {
                0
            } else if cut < 48 {
                28
            } else {
                48
            };
            if cut == 28 || cut == 48 {
                assert_eq!((pkts.len(), err), (0, None), "cut {cut}");
            } else {
                assert!(pkts.is_empty(), "cut {cut}");
                assert_eq!(
                    err,
                    Some(ReadError::Truncated { offset: want_at }),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn two_interfaces_two_link_types_and_resolutions() {
        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        ng.idb(1, 65535, &[(2, b"eth0"), (9, &[9])]); // ns
        ng.idb(113, 0, &[(9, &[6]), (14, &10i64.to_le_bytes())]); // µs, +10 s
        ng.block(4, &[0; 8]); // name resolution block: skipped
        let a = ng.epb(0, 1_700_000_000_123_456_789, &[1, 2, 3, 4, 5], 5);
        let b = ng.epb(1, 1_700_000_000_123_456, &[6, 7], 60);
        ng.block(5, &[0; 16]); // interface statistics: skipped
        ng.block(0x0000_0bad, &[0; 12]); // custom: skipped
        let (pkts, err) = all(&ng.buf);
        assert_eq!(err, None);
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].ts.as_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(
            (pkts[0].linktype, pkts[0].data, pkts[0].offset),
            (LinkType::Ethernet, &[1u8, 2, 3, 4, 5][..], a as u64)
        );
        assert_eq!(pkts[1].ts.as_nanos(), 1_700_000_010_123_456_000);
        assert_eq!(
            (
                pkts[1].linktype,
                pkts[1].data,
                pkts[1].orig_len,
                pkts[1].offset
            ),
            (LinkType::LinuxSll, &[6u8, 7][..], 60, b as u64)
        );
    }

    #[test]
    fn simple_and_obsolete_packet_blocks() {
        let mut ng = Ng::new();
        ng.shb(Endian::Big);
        ng.idb(101, 4, &[]); // raw IP, snaplen 4
        ng.pb(0, 2_000_000, &[0x45, 0, 0, 20], 20);
        ng.spb(20, &[0x45, 0, 0, 20, 9, 9]); // longer than snaplen: cut to 4
        ng.spb(2, &[0x60, 0, 0xee]); // original 2 < data (padding): cut to 2
        let (pkts, err) = all(&ng.buf);
        assert_eq!(err, None);
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts[0].ts.as_nanos(), 2_000_000_000);
        assert_eq!(pkts[0].data, &[0x45, 0, 0, 20]);
        // SPBs have no time: they keep the previous packet's.
        assert_eq!(pkts[1].ts.as_nanos(), 2_000_000_000);
        assert_eq!(
            (pkts[1].data, pkts[1].orig_len),
            (&[0x45u8, 0, 0, 20][..], 20)
        );
        assert_eq!(pkts[2].data, &[0x60, 0]);
        assert!(pkts.iter().all(|p| p.linktype == LinkType::RawIp));
    }

    #[test]
    fn second_section_in_the_other_byte_order_resets_interfaces() {
        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        ng.idb(1, 0, &[]);
        ng.epb(0, 1, &[1], 1);
        ng.shb(Endian::Big);
        ng.idb(0, 0, &[(9, &[0x80 | 10])]); // null/loopback, 2^-10 s units
        ng.epb(0, 3 * 1024 + 512, &[2], 1);
        let bad = ng.epb(1, 0, &[3], 1); // interface 1 was defined in section 1 only
        let (pkts, err) = all(&ng.buf);
        assert_eq!(pkts.len(), 2);
        assert_eq!(
            (pkts[0].linktype, pkts[0].ts.as_nanos()),
            (LinkType::Ethernet, 1_000)
        );
        assert_eq!(
            (pkts[1].linktype, pkts[1].ts.as_nanos()),
            (LinkType::Null, 3_500_000_000)
        );
        assert_eq!(
            err,
            Some(ReadError::Corrupt {
                offset: bad as u64,
                reason: RecordProblem::UndefinedInterface
            })
        );
    }

    #[test]
    fn resolutions() {
        use Resolution::*;
        let table = [
            (Pow10(0), 5, 5_000_000_000),
            (Pow10(3), 5, 5_000_000),
            (Pow10(6), 5, 5_000),
            (Pow10(9), 5, 5),
            (Pow10(12), 5_000, 5),
            (Pow10(127), u64::MAX, 0),
            (Pow2(0), 2, 2_000_000_000),
            (Pow2(1), 3, 1_500_000_000),
            (Pow2(30), 1 << 30, 1_000_000_000),
            (Pow2(127), u64::MAX, 0),
        ];
        for (r, units, nanos) in table {
            assert_eq!(r.nanos(units), nanos, "{r:?} {units}");
        }
        assert_eq!(Resolution::from_option(0x89), Pow2(9));
        let far = Interface {
            linktype: None,
            snaplen: 0,
            resolution: Pow10(0),
            offset_secs: i64::MAX,
        };
        assert_eq!(far.timestamp(u64::MAX).as_nanos(), i64::MAX);
    }

    #[test]
    fn bad_block_headers_are_corrupt_at_their_offset() {
        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        ng.idb(1, 0, &[]);
        let p1 = ng.epb(0, 0, &[1, 2, 3, 4], 4);
        let p2 = ng.epb(0, 0, &[5, 6, 7, 8], 4);
        ng.epb(0, 0, &[9], 1);
        let good = ng.buf.clone();
        let set = |at: usize, v: u32| {
            let mut f = good.clone();
            f.splice(at..at + 4, v.to_le_bytes());
            f
        };
        let cases = [
            (set(p2 + 4, 10), RecordProblem::BlockLength),
            (set(p2 + 4, 42), RecordProblem::BlockLength),
            (set(p2 + 4, 0x7fff_fff0), RecordProblem::BlockTooLarge),
            (set(p2 + 4, 32), RecordProblem::BlockLengthMismatch),
            (set(p2 + 20, 200), RecordProblem::BlockBody), // captured length past the block
            (set(p2 + 8, 7), RecordProblem::UndefinedInterface),
        ];
        for (file, reason) in cases {
            let (pkts, err) = all(&file);
            assert_eq!(pkts.len(), 1, "{reason:?}");
            assert_eq!(pkts[0].offset, p1 as u64);
            assert_eq!(
                err,
                Some(ReadError::Corrupt {
                    offset: p2 as u64,
                    reason
                })
            );
        }
        // A section header in the middle with a bad byte-order magic.
        let mut file = good.clone();
        let at = file.len();
        file.extend_from_slice(&Ng::new().buf);
        let mut s = Ng::new();
        s.shb(Endian::Big);
        file.extend_from_slice(&s.buf);
        file.splice(at + 8..at + 12, [0, 0, 0, 0]);
        assert_eq!(
            all(&file).1,
            Some(ReadError::Corrupt {
                offset: at as u64,
                reason: RecordProblem::ByteOrderMagic
            })
        );
    }

    #[test]
    fn first_section_header_checks() {
        let mut ng = Ng::new();
        ng.shb(Endian::Big);
        let good = ng.buf;
        assert_eq!(check_first_section(&good), Ok(()));
        let with = |at: usize, b: &[u8]| {
            let mut f = good.clone();
            f.splice(at..at + b.len(), b.iter().copied());
            f
        };
        let c = |reason| Err(OpenError::Corrupt { reason });
        assert_eq!(
            check_first_section(&good[..11]),
            c(HeaderProblem::ShortSectionHeader)
        );
        assert_eq!(
            check_first_section(&good[..27]),
            c(HeaderProblem::ShortSectionHeader)
        );
        assert_eq!(
            check_first_section(&with(8, &[1, 2, 3, 4])),
            c(HeaderProblem::ByteOrderMagic)
        );
        assert_eq!(
            check_first_section(&with(4, &[0, 0, 0, 24])),
            c(HeaderProblem::SectionHeaderLength)
        );
        assert_eq!(
            check_first_section(&with(4, &[0, 0, 0, 30])),
            c(HeaderProblem::SectionHeaderLength)
        );
        assert_eq!(
            check_first_section(&with(24, &[0, 0, 0, 32])),
            c(HeaderProblem::SectionHeaderLength)
        );
        assert_eq!(
            check_first_section(&with(12, &[0, 2])),
            c(HeaderProblem::SectionVersion)
        );
    }

    #[test]
    fn unsupported_interface_is_remembered_and_its_packets_refused() {
        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        ng.idb(1, 0, &[]);
        ng.idb(147, 0, &[]);
        ng.idb(105, 0, &[]);
        ng.epb(0, 0, &[1], 1);
        let bad = ng.epb(1, 0, &[1], 1);
        let mut r = NgReader::new(&ng.buf);
        assert!(matches!(r.next_packet(), Some(Ok(_))));
        assert_eq!(
            r.next_packet(),
            Some(Err(ReadError::Corrupt {
                offset: bad as u64,
                reason: RecordProblem::UnsupportedLinkType
            }))
        );
        assert_eq!(r.first_unsupported, Some(147));
    }
}
