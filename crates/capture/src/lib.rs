//! Packet sources for otwatch.
//!
//! *File replay*: pcap and pcapng files, told apart by their magic number, memory-mapped
//! and lent packet by packet without a copy ([`CaptureFile`], [`Packets`]).
//! *Live capture* (feature `live`): an interface through libpcap ([`live::LiveCapture`]).
//! *Batching*: packets leave the source in [`Batch`]es for the flow workers; a batch
//! refers into the mapped file (zero-copy) or owns a buffer (live capture); spent
//! batches come back through a [`Recycler`] so the steady state allocates nothing.
//!
//! Architecture invariant: everything about a file that can make it unusable (missing,
//! unreadable, not a capture, a link type we cannot decode) is found by
//! [`CaptureFile::open`], before any packet is processed; what the iterator may still
//! meet is a file cut short ([`ReadError::Truncated`]) or a record header that cannot be
//! right ([`ReadError::Corrupt`]), each reported once with its byte offset.
//!
//! No panic on any input: every field is read through bounds-checked accessors, every
//! length is checked against the bytes that remain before it is used. The one `unsafe`
//! call, the memory map, lives in the `map` module with its justification.
//!
//! ```no_run
//! use std::path::Path;
//! use otwatch_capture::{CaptureFile, ReadError};
//!
//! let cap = CaptureFile::open(Path::new("plant.pcapng"))?; // exit 2 on error
//! for item in cap.packets() {
//!     match item {
//!         Ok(pkt) => { /* pkt.ts, pkt.linktype, pkt.data (borrowed from the map) */ }
//!         Err(ReadError::Truncated { offset }) => { /* warn, exit 0 */ }
//!         Err(e @ ReadError::Corrupt { .. }) => { /* warn, next file, exit 1 */ }
//!     }
//! }
//! # Ok::<(), otwatch_capture::OpenError>(())
//! ```

#![deny(unsafe_code)]

pub mod batch;
mod endian;
mod error;
mod linktype;
#[cfg(feature = "live")]
pub mod live;
mod map;
mod pcap;
mod pcapng;
#[cfg(test)]
mod testdata;

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use memmap2::Mmap;
pub use otwatch_event::Timestamp;

pub use crate::batch::{
    Batch, BatchConfig, BatchPacket, Batcher, Disconnected, Dropped, Recycler, Tick,
};
pub use crate::error::{FirstBytes, HeaderProblem, OpenError, ReadError, RecordProblem};
pub use crate::linktype::LinkType;

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Classic libpcap (µs or ns timestamps, either byte order).
    Pcap,
    /// pcapng (any number of sections and interfaces).
    PcapNg,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::PcapNg => "pcapng",
        }
    }
}

/// One packet, borrowed from the capture's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Capture time (nanoseconds since the epoch, UTC).
    pub ts: Timestamp,
    pub linktype: LinkType,
    /// The captured bytes (possibly fewer than `orig_len`).
    pub data: &'a [u8],
    /// The length of the packet on the wire.
    pub orig_len: u32,
    /// Byte offset of the packet's record (pcap) or block (pcapng) in the file.
    pub offset: u64,
}

/// How a checked capture is to be read.
#[derive(Debug, Clone, Copy)]
enum Layout {
    Pcap(pcap::PcapHeader),
    PcapNg,
}

impl Layout {
    fn format(self) -> Format {
        match self {
            Layout::Pcap(_) => Format::Pcap,
            Layout::PcapNg => Format::PcapNg,
        }
    }
}

/// Recognises and checks a capture held in `data`: magic number, file header, and (for
/// pcapng) the link type of every interface of every section, found by walking the
/// blocks up to the end of the file or the first damaged block (damage is the
/// iterator's to report, with its offset, once the packets before it are processed).
fn inspect(data: &[u8]) -> Result<Layout, OpenError> {
    if data.is_empty() {
        return Err(OpenError::Empty);
    }
    if pcap::magic(data).is_some() {
        return pcap::parse_header(data).map(Layout::Pcap);
    }
    if pcapng::is_pcapng(data) {
        pcapng::check_first_section(data)?;
        let mut walk = pcapng::NgReader::new(data);
        while let Some(Ok(_)) = walk.next_packet() {}
        if let Some(dlt) = walk.first_unsupported {
            return Err(OpenError::UnsupportedLinkType { dlt });
        }
        return Ok(Layout::PcapNg);
    }
    Err(OpenError::NotACapture(FirstBytes::of(data)))
}

/// One capture file, opened, mapped and checked.
#[derive(Debug)]
pub struct CaptureFile {
    path: PathBuf,
    map: Arc<Mmap>,
    layout: Layout,
}

impl CaptureFile {
    /// Opens and checks the whole file before any packet is processed: it exists, is
    /// readable, is not empty, starts with a pcap magic (either byte order,
    /// µs 0xa1b2c3d4 or ns 0xa1b23c4d) or a pcapng section header, and every link type
    /// it declares (pcap header; every IDB of a pcapng file) is one otwatch decodes.
    ///
    /// A pcapng file is walked block by block to find its interfaces (headers only;
    /// packet bytes are not touched, though the pages are brought in).
    ///
    /// A regular file is memory-mapped: it must not be rewritten or shortened while it
    /// is open (a shortened file makes the process fault when it reads the missing
    /// pages). A pipe or device is read whole into anonymous memory.
    pub fn open(path: &Path) -> Result<CaptureFile, OpenError> {
        let io_error = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => OpenError::NotFound,
            kind => OpenError::Unreadable(kind),
        };
        let meta = std::fs::metadata(path).map_err(io_error)?;
        if meta.is_dir() {
            return Err(OpenError::Unreadable(io::ErrorKind::IsADirectory));
        }
        let mut file = File::open(path).map_err(io_error)?;
        let map = if meta.is_file() {
            if file.metadata().map_err(io_error)?.len() == 0 {
                return Err(OpenError::Empty);
            }
            map::map_file(&file).map_err(io_error)?
        } else {
            // A pipe or device (`otwatch replay <(zcat x.pcap.gz)`) cannot be mapped:
            // read it whole, now, as every input is checked before the first packet.
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io_error)?;
            if bytes.is_empty() {
                return Err(OpenError::Empty);
            }
            let mut anon = memmap2::MmapMut::map_anon(bytes.len()).map_err(io_error)?;
            anon.copy_from_slice(&bytes);
            anon.make_read_only().map_err(io_error)?
        };
        let layout = inspect(&map)?;
        Ok(CaptureFile {
            path: path.to_path_buf(),
            map: Arc::new(map),
            layout,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> Format {
        self.layout.format()
    }

    /// Size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Always false: an empty file is refused by [`CaptureFile::open`].
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The mapped bytes, to share with batches (zero-copy).
    pub fn bytes(&self) -> &Arc<Mmap> {
        &self.map
    }

    /// The file's packets, in file order.
    pub fn packets(&self) -> Packets<'_> {
        Packets::with_layout(&self.map, self.layout)
    }
}

#[derive(Debug, Clone)]
enum Reader<'a> {
    Pcap(pcap::PcapReader<'a>),
    PcapNg(Box<pcapng::NgReader<'a>>),
    Done,
}

/// Iterator over a capture's packets, lending slices of its bytes (no copy, no
/// per-packet allocation). After an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Packets<'a> {
    reader: Reader<'a>,
}

impl<'a> Packets<'a> {
    /// Checks a capture held in memory exactly as [`CaptureFile::open`] checks a file,
    /// and iterates over its packets (for tests, fuzzing, and captures read from a
    /// pipe).
    pub fn from_slice(data: &'a [u8]) -> Result<Packets<'a>, OpenError> {
        inspect(data).map(|layout| Packets::with_layout(data, layout))
    }

    fn with_layout(data: &'a [u8], layout: Layout) -> Packets<'a> {
        let reader = match layout {
            Layout::Pcap(h) => Reader::Pcap(pcap::PcapReader::new(data, h)),
            Layout::PcapNg => Reader::PcapNg(Box::new(pcapng::NgReader::new(data))),
        };
        Packets { reader }
    }
}

impl<'a> Iterator for Packets<'a> {
    type Item = Result<Packet<'a>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = match &mut self.reader {
            Reader::Pcap(r) => r.next_packet(),
            Reader::PcapNg(r) => r.next_packet(),
            Reader::Done => None,
        };
        if !matches!(item, Some(Ok(_))) {
            self.reader = Reader::Done;
        }
        item
    }
}

impl std::iter::FusedIterator for Packets<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endian::Endian;
    use crate::testdata::{pcap_file, Ng, PcapRec};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A file in the system's temporary directory, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn with(bytes: &[u8]) -> TempFile {
            static N: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "otwatch-capture-{}-{}.cap",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, bytes)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn open(bytes: &[u8]) -> Result<CaptureFile, OpenError> {
        let f = TempFile::with(bytes);
        CaptureFile::open(&f.0)
    }

    fn sample_pcap() -> Vec<u8> {
        pcap_file(
            Endian::Little,
            false,
            1,
            65535,
            &[
                PcapRec {
                    secs: 1_600_000_000,
                    frac: 1,
                    data: &[0xaa; 60],
                    orig_len: 60,
                },
                PcapRec {
                    secs: 1_600_000_001,
                    frac: 2,
                    data: &[0xbb; 42],
                    orig_len: 1514,
                },
                PcapRec {
                    secs: 1_600_000_002,
                    frac: 3,
                    data: &[0xcc; 54],
                    orig_len: 54,
                },
            ],
        )
    }

    /// Two sections (little- then big-endian), two interfaces of different link types
    /// and resolutions, an SPB, skipped blocks.
    fn sample_pcapng() -> Vec<u8> {
        let mut ng = Ng::new();
        ng.shb(Endian::Little);
        ng.idb(1, 0, &[(9, &[9])]);
        ng.idb(276, 0, &[(9, &[6])]);
        ng.epb(0, 1_600_000_000_000_000_001, &[0xaa; 60], 60);
        ng.epb(1, 1_600_000_000_000_002, &[0xbb; 41], 41);
        ng.block(5, &[0; 16]);
        ng.shb(Endian::Big);
        ng.idb(228, 0, &[]);
        ng.epb(0, 1_600_000_000_000_003, &[0x45; 21], 21);
        ng.spb(20, &[0x45; 20]);
        ng.buf
    }

    fn collect(p: Packets<'_>) -> (Vec<Packet<'_>>, Option<ReadError>) {
        let mut out = Vec::new();
        for item in p {
            match item {
                Ok(pkt) => out.push(pkt),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[test]
    fn opens_and_reads_a_pcap_file() {
        let bytes = sample_pcap();
        let f = TempFile::with(&bytes);
        let cap = CaptureFile::open(&f.0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cap.format(), Format::Pcap);
        assert_eq!(cap.len(), bytes.len() as u64);
        assert_eq!(cap.path(), f.0.as_path());
        assert_eq!(&cap.bytes()[..], &bytes[..]);
        let (pkts, err) = collect(cap.packets());
        assert_eq!(err, None);
        let got: Vec<_> = pkts
            .iter()
            .map(|p| (p.ts.as_nanos(), p.data.len(), p.orig_len, p.offset))
            .collect();
        assert_eq!(
            got,
            [
                (1_600_000_000_000_001_000, 60, 60, 24),
                (1_600_000_001_000_002_000, 42, 1514, 100),
                (1_600_000_002_000_003_000, 54, 54, 158),
            ]
        );
        // The packets are slices of the map itself: no copy.
        let map = cap.bytes().as_ptr_range();
        assert!(pkts.iter().all(|p| map.contains(&p.data.as_ptr())));
    }

    #[test]
    fn opens_and_reads_a_pcapng_file_with_two_sections() {
        let bytes = sample_pcapng();
        let cap = open(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cap.format(), Format::PcapNg);
        let (pkts, err) = collect(cap.packets());
        assert_eq!(err, None);
        let got: Vec<_> = pkts
            .iter()
            .map(|p| (p.ts.as_nanos(), p.linktype, p.data.len()))
            .collect();
        assert_eq!(
            got,
            [
                (1_600_000_000_000_000_001, LinkType::Ethernet, 60),
                (1_600_000_000_000_002_000, LinkType::LinuxSll2, 41),
                (1_600_000_000_000_003_000, LinkType::Ipv4, 21),
                (1_600_000_000_000_003_000, LinkType::Ipv4, 20),
            ]
        );
    }

    #[test]
    fn open_errors() {
        let missing =
            std::env::temp_dir().join(format!("otwatch-capture-missing-{}", std::process::id()));
        assert_eq!(CaptureFile::open(&missing).err(), Some(OpenError::NotFound));
        assert_eq!(
            CaptureFile::open(&std::env::temp_dir()).err(),
            Some(OpenError::Unreadable(io::ErrorKind::IsADirectory))
        );
        assert_eq!(open(&[]).err(), Some(OpenError::Empty));
        let e = open(b"%PDF-1.7\n").err();
        assert_eq!(e, Some(OpenError::NotACapture(FirstBytes::of(b"%PDF"))));
        assert_eq!(
            open(&[0xd4, 0xc3]).err(),
            Some(OpenError::NotACapture(FirstBytes::of(&[0xd4, 0xc3])))
        );
        // gzip-compressed capture: say what it is by its first bytes.
        assert_eq!(
            open(&[0x1f, 0x8b, 8, 0, 0, 0]).err().map(|e| e.to_string()),
            Some("not a pcap or pcapng capture: the file starts with 1f 8b 08 00, which is no capture magic number".into())
        );
        let mut user0 = sample_pcap();
        user0.splice(20..24, 147u32.to_le_bytes());
        assert_eq!(
            open(&user0).err(),
            Some(OpenError::UnsupportedLinkType { dlt: 147 })
        );
        let short = sample_pcap();
        assert_eq!(
            open(&short[..23]).err(),
            Some(OpenError::Corrupt {
                reason: HeaderProblem::ShortPcapHeader
            })
        );
        assert_eq!(
            open(&sample_pcapng()[..20]).err(),
            Some(OpenError::Corrupt {
                reason: HeaderProblem::ShortSectionHeader
            })
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_read_whole() {
        // The null device is no regular file: it is read (nothing) instead of mapped.
        assert_eq!(
            CaptureFile::open(Path::new("/dev/null")).err(),
            Some(OpenError::Empty)
        );
    }

    /// `otwatch replay <(zcat x.pcap.gz)`: the path names a pipe.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_pipe_is_read_whole() {
        use std::os::fd::AsRawFd;
        use std::process::{Command, Stdio};
        let bytes = sample_pcapng();
        let f = TempFile::with(&bytes);
        let mut child = Command::new("cat")
            .arg(&f.0)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cat: {e}"));
        let Some(out) = child.stdout.take() else {
            panic!("no pipe")
        };
        let pipe = PathBuf::from(format!("/dev/fd/{}", out.as_raw_fd()));
        assert!(
            !std::fs::metadata(&pipe)
                .map(|m| m.is_file())
                .unwrap_or(true),
            "a pipe"
        );
        let cap = CaptureFile::open(&pipe).unwrap_or_else(|e| panic!("{e}"));
        let _ = child.wait();
        assert_eq!(&cap.bytes()[..], &bytes[..]);
        assert_eq!(collect(cap.packets()).0.len(), 4);
    }

    #[test]
    fn pcapng_interfaces_are_all_checked_at_open() {
        // An unsupported interface in the second section, after packets: refused.
        let mut bytes = sample_pcapng();
        let mut more = Ng::new();
        more.shb(Endian::Little);
        more.idb(1, 0, &[]);
        more.idb(147, 0, &[]);
        bytes.extend_from_slice(&more.buf);
        assert_eq!(
            open(&bytes).err(),
            Some(OpenError::UnsupportedLinkType { dlt: 147 })
        );
        assert!(matches!(
            Packets::from_slice(&bytes),
            Err(OpenError::UnsupportedLinkType { dlt: 147 })
        ));

        // Behind a damaged block it cannot be seen: the file opens, and the iterator
        // reports the damage with its offset (exit 1), after the packets before it.
        let mut bytes = sample_pcapng();
        let damaged = bytes.len();
        let mut tail = Ng::new();
        tail.shb(Endian::Little);
        tail.idb(147, 0, &[]);
        bytes.extend_from_slice(&tail.buf);
        bytes.splice(damaged + 4..damaged + 8, 13u32.to_le_bytes()); // SHB length 13
        let cap = open(&bytes).unwrap_or_else(|e| panic!("{e}"));
        let (pkts, err) = collect(cap.packets());
        assert_eq!(pkts.len(), 4);
        assert_eq!(
            err,
            Some(ReadError::Corrupt {
                offset: damaged as u64,
                reason: RecordProblem::BlockLength
            })
        );
    }

    #[test]
    fn every_cut_inside_the_last_record_is_truncated_with_its_offset() {
        // (capture, offset of its last record): pcap 24 + (16 + 60) + (16 + 42); the
        // pcapng's last block is the 36-byte SPB (12 + 4 + 20) at the end.
        let pcapng = sample_pcapng();
        let spb = pcapng.len() - 36;
        for (bytes, last_off) in [(sample_pcap(), 158usize), (pcapng, spb)] {
            let (all, err) = collect(Packets::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(err, None);
            assert_eq!(all.last().map(|p| p.offset), Some(last_off as u64));
            for cut in last_off + 1..bytes.len() {
                let f = TempFile::with(&bytes[..cut]);
                let cap = CaptureFile::open(&f.0).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
                let (pkts, err) = collect(cap.packets());
                assert_eq!(pkts, all[..all.len() - 1].to_vec(), "cut {cut}");
                assert_eq!(
                    err,
                    Some(ReadError::Truncated {
                        offset: last_off as u64
                    }),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn the_iterator_ends_after_an_error() {
        let mut bytes = sample_pcap();
        bytes.splice(100 + 8..100 + 12, 1_000_000u32.to_le_bytes());
        let mut it = Packets::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(it.next(), Some(Ok(_))));
        assert_eq!(
            it.next(),
            Some(Err(ReadError::Corrupt {
                offset: 100,
                reason: RecordProblem::CaptureLengthTooLarge
            }))
        );
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    /// xorshift64*: a deterministic generator, enough to shake the parsers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn damaged_captures_never_panic() {
        let seeds = [sample_pcap(), sample_pcapng(), {
            let mut b = pcap_file(
                Endian::Big,
                true,
                113,
                0,
                &[PcapRec {
                    secs: 7,
                    frac: 8,
                    data: &[1; 16],
                    orig_len: 16,
                }],
            );
            b.extend_from_slice(&sample_pcap()[24..]);
            b
        }];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut outcomes = [0usize; 3]; // open refused, clean end, read error
        for round in 0..6000 {
            let mut bytes = seeds[round % seeds.len()].clone();
            for _ in 0..=rng.below(4) {
                match rng.below(4) {
                    0 => {
                        let at = rng.below(bytes.len());
                        if let Some(b) = bytes.get_mut(at) {
                            *b ^= 1 << rng.below(8);
                        }
                    }
                    1 => {
                        let at = rng.below(bytes.len());
                        if let Some(b) = bytes.get_mut(at) {
                            *b = [0, 0xff, 0x7f, 0x80][rng.below(4)];
                        }
                    }
                    2 => bytes.truncate(rng.below(bytes.len() + 1)),
                    _ => {
                        let at = rng.below(bytes.len());
                        let n = rng.below(9);
                        bytes.splice(at..at, std::iter::repeat_n(rng.next() as u8, n));
                    }
                }
            }
            match Packets::from_slice(&bytes) {
                Err(_) => outcomes[0] += 1,
                Ok(pkts) => {
                    let range = bytes.as_ptr_range();
                    let mut last_offset = None;
                    let mut ended = None;
                    for item in pkts {
                        match item {
                            Ok(p) => {
                                assert!(p.data.is_empty() || range.contains(&p.data.as_ptr()));
                                assert!(last_offset < Some(p.offset), "offsets move forward");
                                last_offset = Some(p.offset);
                            }
                            Err(e) => {
                                assert!(e.offset() < bytes.len() as u64);
                                ended = Some(e);
                            }
                        }
                    }
                    outcomes[if ended.is_some() { 2 } else { 1 }] += 1;
                }
            }
        }
        // The mutations reached all three outcomes (the test shakes the readers, not
        // just the magic check).
        assert!(outcomes.iter().all(|&n| n > 100), "{outcomes:?}");
    }
}
