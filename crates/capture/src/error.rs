//! What can go wrong with a capture file, in words a user can act on.
//!
//! Messages never name the file: the caller prefixes it (`otwatch: <path>: <error>`).

use std::fmt;
use std::io;

/// A capture that cannot be used at all; found by [`CaptureFile::open`] before any
/// packet is processed (the binary exits 2).
///
/// [`CaptureFile::open`]: crate::CaptureFile::open
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no such file")]
    NotFound,
    #[error("{}", UnreadableMsg(*.0))]
    Unreadable(io::ErrorKind),
    #[error("the file is empty")]
    Empty,
    #[error(
        "not a pcap or pcapng capture: the file starts with {0}, which is no capture magic number"
    )]
    NotACapture(FirstBytes),
    #[error(
        "unsupported link type {dlt}: otwatch reads Ethernet, Linux cooked (v1, v2), null/loopback and raw IP captures"
    )]
    UnsupportedLinkType { dlt: u32 },
    #[error("corrupt capture header: {reason}")]
    Corrupt { reason: HeaderProblem },
}

struct UnreadableMsg(io::ErrorKind);

impl fmt::Display for UnreadableMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            io::ErrorKind::IsADirectory => f.write_str("is a directory, not a capture file"),
            io::ErrorKind::PermissionDenied => f.write_str("cannot be read: permission denied"),
            kind => write!(f, "cannot be read: {kind}"),
        }
    }
}

/// The first (up to four) bytes of a file that is not a capture, shown as hex so the
/// user can recognise what they passed (`1f 8b ..` is gzip, `25 50 44 46` a PDF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstBytes {
    bytes: [u8; 4],
    len: u8,
}

impl FirstBytes {
    pub(crate) fn of(data: &[u8]) -> Self {
        let mut bytes = [0u8; 4];
        let len = data.len().min(4);
        for (dst, src) in bytes.iter_mut().zip(data) {
            *dst = *src;
        }
        FirstBytes {
            bytes,
            len: len as u8,
        }
    }

    /// The bytes themselves.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl fmt::Display for FirstBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a file header (pcap global header, first pcapng section header) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Fewer than the 24 bytes of a pcap global header.
    ShortPcapHeader,
    /// The file ends inside the first pcapng section header block.
    ShortSectionHeader,
    /// The section header's byte-order magic is neither 0x1a2b3c4d nor its swap.
    ByteOrderMagic,
    /// The section header's length is below 28, not a multiple of 4, or disagrees with
    /// its trailing copy.
    SectionHeaderLength,
    /// A pcapng major version other than 1.
    SectionVersion,
}

impl HeaderProblem {
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderProblem::ShortPcapHeader => "the file ends inside the 24-byte pcap header",
            HeaderProblem::ShortSectionHeader => "the file ends inside the pcapng section header",
            HeaderProblem::ByteOrderMagic => "the pcapng byte-order magic is not 0x1a2b3c4d",
            HeaderProblem::SectionHeaderLength => {
                "the pcapng section header has an impossible length"
            }
            HeaderProblem::SectionVersion => "the pcapng major version is not 1",
        }
    }
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem met while reading packets; the iterator yields it once, then ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The file ends in the middle of the record that starts at `offset`: every whole
    /// packet before it was returned. Usual for a capture cut short (exit 0, a warning).
    #[error("the capture ends in the middle of the record at byte offset {offset}")]
    Truncated { offset: u64 },
    /// The record at `offset` has a header that cannot be right; nothing after it can be
    /// trusted (that file stops; exit 1 at the end).
    #[error("corrupt record at byte offset {offset}: {reason}")]
    Corrupt { offset: u64, reason: RecordProblem },
}

impl ReadError {
    /// Byte offset of the record concerned.
    pub fn offset(&self) -> u64 {
        match *self {
            ReadError::Truncated { offset } | ReadError::Corrupt { offset, .. } => offset,
        }
    }
}

/// Why a record or block header was judged corrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProblem {
    /// pcap: captured length above both the snapshot length and 256 KiB (the largest
    /// packet libpcap writes for these link types).
    CaptureLengthTooLarge,
    /// pcap: a record that runs past the end of the file although its captured length
    /// is above its own wire length, or above a snapshot length of 65535 or more: a
    /// corrupt length rather than a capture cut short (whose last record is only
    /// missing bytes).
    LengthPastEnd,
    /// pcapng: block total length below 12 or not a multiple of 4.
    BlockLength,
    /// pcapng: block total length above the 16 MiB bound.
    BlockTooLarge,
    /// pcapng: the trailing copy of the block length differs from the leading one.
    BlockLengthMismatch,
    /// pcapng: a block too short for its own fixed fields, or whose packet data runs
    /// past its end.
    BlockBody,
    /// pcapng: a section header with a byte-order magic that is not 0x1a2b3c4d.
    ByteOrderMagic,
    /// pcapng: a section header with a major version other than 1.
    SectionVersion,
    /// pcapng: a packet names an interface no IDB of its section described.
    UndefinedInterface,
    /// pcapng: more interfaces in one section than the reader keeps.
    TooManyInterfaces,
    /// pcapng: a packet on an interface whose link type is not supported (only when
    /// the file changed after it was opened and checked).
    UnsupportedLinkType,
}

impl RecordProblem {
    /// Short, stable text (usable as a metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordProblem::CaptureLengthTooLarge => {
                "captured length larger than any packet the file may hold"
            }
            RecordProblem::LengthPastEnd => {
                "captured length above the snapshot length or the wire length, running past the end of the file"
            }
            RecordProblem::BlockLength => "pcapng block length below 12 or not a multiple of 4",
            RecordProblem::BlockTooLarge => "pcapng block longer than 16 MiB",
            RecordProblem::BlockLengthMismatch => {
                "pcapng block length differs from its trailing copy"
            }
            RecordProblem::BlockBody => "pcapng block too short for its fields",
            RecordProblem::ByteOrderMagic => "pcapng section header with a bad byte-order magic",
            RecordProblem::SectionVersion => {
                "pcapng section header with a major version other than 1"
            }
            RecordProblem::UndefinedInterface => {
                "packet on an interface the section never described"
            }
            RecordProblem::TooManyInterfaces => "too many interfaces in one pcapng section",
            RecordProblem::UnsupportedLinkType => {
                "packet on an interface of an unsupported link type"
            }
        }
    }
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_what_to_fix() {
        let cases: [(OpenError, &str); 6] = [
            (OpenError::NotFound, "no such file"),
            (
                OpenError::Unreadable(io::ErrorKind::IsADirectory),
                "is a directory, not a capture file",
            ),
            (OpenError::Empty, "the file is empty"),
            (
                OpenError::NotACapture(FirstBytes::of(b"%PDF-1.4")),
                "not a pcap or pcapng capture: the file starts with 25 50 44 46, which is no capture magic number",
            ),
            (
                OpenError::UnsupportedLinkType { dlt: 147 },
                "unsupported link type 147: otwatch reads Ethernet, Linux cooked (v1, v2), null/loopback and raw IP captures",
            ),
            (
                OpenError::Corrupt { reason: HeaderProblem::ShortPcapHeader },
                "corrupt capture header: the file ends inside the 24-byte pcap header",
            ),
        ];
        for (err, want) in cases {
            assert_eq!(err.to_string(), want);
        }
        let e = ReadError::Truncated { offset: 1234 };
        assert_eq!(
            e.to_string(),
            "the capture ends in the middle of the record at byte offset 1234"
        );
        let e = ReadError::Corrupt {
            offset: 40,
            reason: RecordProblem::CaptureLengthTooLarge,
        };
        assert_eq!(
            e.to_string(),
            "corrupt record at byte offset 40: captured length larger than any packet the file may hold"
        );
        assert_eq!(e.offset(), 40);
    }

    #[test]
    fn first_bytes_of_a_short_file() {
        assert_eq!(FirstBytes::of(&[0xab, 0x01]).to_string(), "ab 01");
        assert_eq!(FirstBytes::of(&[]).as_slice(), &[] as &[u8]);
    }
}
