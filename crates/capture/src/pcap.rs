//! Classic libpcap files: a 24-byte global header, then 16-byte record headers each
//! followed by the captured bytes.
//!
//! Layout (draft-ietf-opsawg-pcap): magic u32 (0xa1b2c3d4 µs, 0xa1b23c4d ns, in the
//! writer's byte order), version u16.u16, thiszone i32, sigfigs u32, snaplen u32,
//! linktype u32 (low 16 bits; the high bits carry FCS information we do not need).
//! Record: ts_sec u32, ts_frac u32 (µs or ns), incl_len u32, orig_len u32.
//!
//! `thiszone` is ignored, as libpcap and Wireshark ignore it: writers set it to 0 and
//! timestamps are UTC.

use otwatch_event::Timestamp;

use crate::endian::Endian;
use crate::error::{HeaderProblem, OpenError, ReadError, RecordProblem};
use crate::{LinkType, Packet};

pub(crate) const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;
/// libpcap's largest snapshot length for every link type we read; a record may be up
/// to this long even when the header announces a smaller snaplen (lenient, as some
/// writers put a wrong snaplen in the header).
pub(crate) const MAX_STANDARD_CAPLEN: u32 = 262_144;
/// The snapshot length capture tools write by default (or above): a record longer than
/// it was not written by them.
const STANDARD_SNAPLEN: u32 = 65_535;
/// Whatever the header says, no record is believed longer than this.
const MAX_CAPLEN: u32 = 16 * 1024 * 1024;

/// The checked global header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PcapHeader {
    pub(crate) endian: Endian,
    pub(crate) nanos: bool,
    pub(crate) linktype: LinkType,
    pub(crate) snaplen: u32,
}

impl PcapHeader {
    /// Largest believable `incl_len`: `max(snaplen, 256 KiB)`, bounded by 16 MiB.
    fn caplen_limit(&self) -> u32 {
        self.snaplen.clamp(MAX_STANDARD_CAPLEN, MAX_CAPLEN)
    }
}

/// Byte order and precision for a pcap magic number (first four bytes of the file).
pub(crate) fn magic(first: &[u8]) -> Option<(Endian, bool)> {
    match first.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] => Some((Endian::Little, false)),
        [0xa1, 0xb2, 0xc3, 0xd4] => Some((Endian::Big, false)),
        [0x4d, 0x3c, 0xb2, 0xa1] => Some((Endian::Little, true)),
        [0xa1, 0xb2, 0x3c, 0x4d] => Some((Endian::Big, true)),
        _ => None,
    }
}

/// Checks the global header of `data`, which starts with a pcap magic number.
pub(crate) fn parse_header(data: &[u8]) -> Result<PcapHeader, OpenError> {
    let short = OpenError::Corrupt {
        reason: HeaderProblem::ShortPcapHeader,
    };
    let (endian, nanos) = magic(data).ok_or(short)?;
    if data.len() < GLOBAL_HEADER_LEN {
        return Err(short);
    }
    let snaplen = endian.u32(data, 16).ok_or(short)?;
    let dlt = endian.u32(data, 20).ok_or(short)? & 0xffff;
    let linktype = LinkType::from_dlt(dlt).ok_or(OpenError::UnsupportedLinkType { dlt })?;
    Ok(PcapHeader {
        endian,
        nanos,
        linktype,
        snaplen,
    })
}

/// Lends the records of a pcap file one by one.
#[derive(Debug, Clone)]
pub(crate) struct PcapReader<'a> {
    data: &'a [u8],
    pos: usize,
    header: PcapHeader,
}

impl<'a> PcapReader<'a> {
    pub(crate) fn new(data: &'a [u8], header: PcapHeader) -> Self {
        PcapReader {
            data,
            pos: GLOBAL_HEADER_LEN,
            header,
        }
    }

    pub(crate) fn next_packet(&mut self) -> Option<Result<Packet<'a>, ReadError>> {
        let start = self.pos;
        let rest = self.data.get(start..)?;
        if rest.is_empty() {
            return None;
        }
        let offset = start as u64;
        let truncated = Err(ReadError::Truncated { offset });
        let e = self.header.endian;
        let (Some(secs), Some(frac), Some(caplen), Some(orig_len)) = (
            e.u32(rest, 0),
            e.u32(rest, 4),
            e.u32(rest, 8),
            e.u32(rest, 12),
        ) else {
            return Some(truncated);
        };
        if caplen > self.header.caplen_limit() {
            return Some(Err(ReadError::Corrupt {
                offset,
                reason: RecordProblem::CaptureLengthTooLarge,
            }));
        }
        let end = RECORD_HEADER_LEN + caplen as usize;
        let Some(data) = rest.get(RECORD_HEADER_LEN..end) else {
            // A capture cut short loses the end of a record that was whole when
            // written; a length no writer would have written is corruption: longer
            // than on the wire, or above a standard snapshot length (a small one may
            // be a writer's mistake, which libpcap forgives).
            let snaplen = self.header.snaplen;
            if caplen > orig_len || (snaplen >= STANDARD_SNAPLEN && caplen > snaplen) {
                return Some(Err(ReadError::Corrupt {
                    offset,
                    reason: RecordProblem::LengthPastEnd,
                }));
            }
            return Some(truncated);
        };
        self.pos = start + end;
        let frac_nanos = if self.header.nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1_000
        };
        let ts = Timestamp::from_nanos(i64::from(secs) * 1_000_000_000 + frac_nanos);
        Some(Ok(Packet {
            ts,
            linktype: self.header.linktype,
            data,
            orig_len,
            offset,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{pcap_file, PcapRec};

    fn all(data: &[u8]) -> (Vec<Packet<'_>>, Option<ReadError>) {
        let header = match parse_header(data) {
            Ok(h) => h,
            Err(e) => panic!("header refused: {e}"),
        };
        let mut r = PcapReader::new(data, header);
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
    fn header_little_endian_microseconds_annotated() {
        #[rustfmt::skip]
        let file: &[u8] = &[
            0xd4, 0xc3, 0xb2, 0xa1, // magic, little-endian µs
            0x02, 0x00, 0x04, 0x00, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone 0
            0x00, 0x00, 0x00, 0x00, // sigfigs 0
            0xff, 0xff, 0x00, 0x00, // snaplen 65535
            0x01, 0x00, 0x00, 0x00, // linktype 1, Ethernet
            // record 1
            0x10, 0x00, 0x00, 0x00, // ts_sec 16
            0x40, 0x42, 0x0f, 0x00, // ts_usec 0x0f4240 = 1_000_000 (out of range, kept)
            0x02, 0x00, 0x00, 0x00, // incl_len 2
            0x3c, 0x00, 0x00, 0x00, // orig_len 60
            0xaa, 0xbb,             // data
        ];
        let h = parse_header(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            h,
            PcapHeader {
                endian: Endian::Little,
                nanos: false,
                linktype: LinkType::Ethernet,
                snaplen: 65535
            }
        );
        let (pkts, err) = all(file);
        assert_eq!(err, None);
        assert_eq!(pkts.len(), 1);
        // 16 s + 1_000_000 µs: an out-of-range fraction is kept as written (as libpcap does).
        assert_eq!(pkts[0].ts, Timestamp::from_nanos(17_000_000_000));
        assert_eq!(pkts[0].data, &[0xaa, 0xbb]);
        assert_eq!(pkts[0].orig_len, 60);
        assert_eq!(pkts[0].offset, 24);
    }

    #[test]
    fn header_big_endian_nanoseconds_annotated() {
        #[rustfmt::skip]
        let file: &[u8] = &[
            0xa1, 0xb2, 0x3c, 0x4d, // magic, big-endian ns
            0x00, 0x02, 0x00, 0x04, // version 2.4
            0x00, 0x00, 0x00, 0x00, // thiszone
            0x00, 0x00, 0x00, 0x00, // sigfigs
            0x00, 0x04, 0x00, 0x00, // snaplen 262144
            0x10, 0x00, 0x00, 0x71, // FCS bits set (0x1...), linktype 113 Linux SLL
            // record 1
            0x65, 0x00, 0x00, 0x01, // ts_sec 1_694_498_817
            0x00, 0x00, 0x00, 0x07, // ts_nsec 7
            0x00, 0x00, 0x00, 0x01, // incl_len 1
            0x00, 0x00, 0x00, 0x01, // orig_len 1
            0x5a,
        ];
        let h = parse_header(file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.endian, Endian::Big);
        assert!(h.nanos);
        assert_eq!(h.linktype, LinkType::LinuxSll);
        let (pkts, err) = all(file);
        assert_eq!(err, None);
        assert_eq!(pkts[0].ts.as_nanos(), 0x6500_0001_i64 * 1_000_000_000 + 7);
        assert_eq!(pkts[0].linktype, LinkType::LinuxSll);
    }

    #[test]
    fn every_prefix_of_the_header_is_refused() {
        let file = pcap_file(Endian::Little, false, 1, 65535, &[]);
        for cut in 4..GLOBAL_HEADER_LEN {
            assert_eq!(
                parse_header(file.get(..cut).unwrap_or(&[])),
                Err(OpenError::Corrupt {
                    reason: HeaderProblem::ShortPcapHeader
                }),
                "cut {cut}"
            );
        }
        assert!(parse_header(&file).is_ok());
    }

    #[test]
    fn both_orders_and_precisions_give_the_same_packets() {
        let recs = [
            PcapRec {
                secs: 1_700_000_000,
                frac: 123_456,
                data: &[1, 2, 3],
                orig_len: 3,
            },
            PcapRec {
                secs: 1_700_000_001,
                frac: 999_999,
                data: &[],
                orig_len: 0,
            },
            PcapRec {
                secs: 1_700_000_002,
                frac: 5,
                data: &[9; 70],
                orig_len: 1500,
            },
        ];
        for endian in [Endian::Little, Endian::Big] {
            for nanos in [false, true] {
                let file = pcap_file(endian, nanos, 101, 65535, &recs);
                let (pkts, err) = all(&file);
                assert_eq!(err, None);
                assert_eq!(pkts.len(), 3);
                let mut offset = 24u64;
                for (p, r) in pkts.iter().zip(&recs) {
                    let mult = if nanos { 1 } else { 1000 };
                    assert_eq!(
                        p.ts.as_nanos(),
                        i64::from(r.secs) * 1_000_000_000 + i64::from(r.frac) * mult
                    );
                    assert_eq!(p.data, r.data);
                    assert_eq!(p.orig_len, r.orig_len);
                    assert_eq!(p.linktype, LinkType::RawIp);
                    assert_eq!(p.offset, offset);
                    offset += 16 + r.data.len() as u64;
                }
            }
        }
    }

    #[test]
    fn every_cut_inside_the_last_record_is_truncated_at_its_offset() {
        let recs = [
            PcapRec {
                secs: 1,
                frac: 0,
                data: &[0x11; 20],
                orig_len: 20,
            },
            PcapRec {
                secs: 2,
                frac: 0,
                data: &[0x22; 30],
                orig_len: 30,
            },
        ];
        let file = pcap_file(Endian::Big, false, 1, 65535, &recs);
        let last = 24 + 16 + 20;
        assert_eq!(file.len(), last + 16 + 30);
        for cut in last + 1..file.len() {
            let (pkts, err) = all(file.get(..cut).unwrap_or(&[]));
            assert_eq!(pkts.len(), 1, "cut {cut}");
            assert_eq!(pkts[0].data, &[0x11; 20]);
            assert_eq!(
                err,
                Some(ReadError::Truncated {
                    offset: last as u64
                }),
                "cut {cut}"
            );
        }
        // A cut exactly between records is a clean end.
        assert_eq!(
            all(file.get(..last).unwrap_or(&[])),
            (all(&file).0[..1].to_vec(), None)
        );
    }

    #[test]
    fn a_length_no_writer_wrote_running_past_the_end_is_corrupt_not_truncated() {
        let recs = [
            PcapRec {
                secs: 1,
                frac: 0,
                data: &[0x11; 20],
                orig_len: 20,
            },
            PcapRec {
                secs: 2,
                frac: 0,
                data: &[0x22; 30],
                orig_len: 30,
            },
            PcapRec {
                secs: 3,
                frac: 0,
                data: &[0x33; 40],
                orig_len: 40,
            },
        ];
        let second = 24 + 16 + 20;
        // incl_len at +8, orig_len at +12 of the record header (little-endian file).
        for (incl, orig, problem) in [
            // Above the snaplen (65535), within 256 KiB: the rest of the file cannot
            // hold it, and the third record is lost with the file.
            (100_000u32, 100_000u32, Some(RecordProblem::LengthPastEnd)),
            // Within the snaplen but longer than on the wire.
            (1_000, 30, Some(RecordProblem::LengthPastEnd)),
            // Plausible (a capture cut in the middle of a 1000-byte packet).
            (1_000, 1_000, None),
        ] {
            let mut file = pcap_file(Endian::Little, false, 1, 65535, &recs);
            file.splice(
                second + 8..second + 16,
                [incl, orig].map(u32::to_le_bytes).concat(),
            );
            let (pkts, err) = all(&file);
            assert_eq!(pkts.len(), 1, "{incl}/{orig}");
            let expected = match problem {
                Some(reason) => ReadError::Corrupt {
                    offset: second as u64,
                    reason,
                },
                None => ReadError::Truncated {
                    offset: second as u64,
                },
            };
            assert_eq!(err, Some(expected), "{incl}/{orig}");
        }
        // A small snapshot length may be the writer's mistake (libpcap forgives it):
        // a 1000-byte record cut short under snaplen 64 is a capture cut short.
        let mut file = pcap_file(Endian::Little, false, 1, 64, &recs);
        file.splice(
            second + 8..second + 16,
            [1_000u32, 1_000].map(u32::to_le_bytes).concat(),
        );
        assert_eq!(
            all(&file).1,
            Some(ReadError::Truncated {
                offset: second as u64
            })
        );
    }

    #[test]
    fn caplen_beyond_snaplen_and_256k_is_corrupt_but_within_either_is_fine() {
        let big = vec![0u8; 70_000];
        // snaplen 64 but a 70000-byte record: within 256 KiB, accepted.
        let file = pcap_file(
            Endian::Little,
            false,
            1,
            64,
            &[PcapRec {
                secs: 0,
                frac: 0,
                data: &big,
                orig_len: 70_000,
            }],
        );
        let (pkts, err) = all(&file);
        assert_eq!((pkts.len(), err), (1, None));

        let mut file = pcap_file(
            Endian::Little,
            false,
            1,
            65535,
            &[
                PcapRec {
                    secs: 0,
                    frac: 0,
                    data: &[1; 10],
                    orig_len: 10,
                },
                PcapRec {
                    secs: 0,
                    frac: 0,
                    data: &[2; 10],
                    orig_len: 10,
                },
                PcapRec {
                    secs: 0,
                    frac: 0,
                    data: &[3; 10],
                    orig_len: 10,
                },
            ],
        );
        // Second record's incl_len (offset 24 + 26 + 8) := 262145.
        let at = 24 + 26 + 8;
        file.splice(at..at + 4, 262_145u32.to_le_bytes());
        let (pkts, err) = all(&file);
        assert_eq!(pkts.len(), 1);
        assert_eq!(
            err,
            Some(ReadError::Corrupt {
                offset: 50,
                reason: RecordProblem::CaptureLengthTooLarge
            })
        );
        // A huge snaplen does not make a 4 GiB record believable.
        let mut file = pcap_file(
            Endian::Little,
            false,
            1,
            u32::MAX,
            &[PcapRec {
                secs: 0,
                frac: 0,
                data: &[1],
                orig_len: 1,
            }],
        );
        file.splice(32..36, u32::MAX.to_le_bytes());
        assert_eq!(
            all(&file).1,
            Some(ReadError::Corrupt {
                offset: 24,
                reason: RecordProblem::CaptureLengthTooLarge
            })
        );
    }

    #[test]
    fn unsupported_link_type_is_refused_with_its_number() {
        let file = pcap_file(Endian::Big, true, 147, 65535, &[]);
        assert_eq!(
            parse_header(&file),
            Err(OpenError::UnsupportedLinkType { dlt: 147 })
        );
    }
}
