//! Frames as a mirror port sees them: Ethernet II / IPv4 / TCP with correct checksums,
//! written into classic pcap files.
//!
//! Written by hand rather than with a packet-building crate so that the generator can
//! put any sequence number on any segment (retransmissions, overlaps, reordering) and
//! so that the benchmark generator can build millions of frames into one reused buffer.

use std::io::{self, Write};
use std::net::Ipv4Addr;

/// pcap link type of Ethernet II frames.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Snap length written in the global header (every frame is shorter).
const SNAPLEN: u32 = 65_535;
/// Ethernet frames shorter than this (without FCS) are padded with zeros, as a switch's
/// mirror port delivers them; the IPv4 total length does not count the padding.
const MIN_FRAME: usize = 60;

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// The TCP option a SYN carries here: maximum segment size 1460.
pub const MSS_1460: [u8; 4] = [2, 4, 0x05, 0xb4];

/// Writes a classic (microsecond, little-endian) pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the 24-byte global header.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic: microseconds
        h.extend_from_slice(&2u16.to_le_bytes()); // version major
        h.extend_from_slice(&4u16.to_le_bytes()); // version minor
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// Writes one record: 16-byte header (seconds, microseconds, captured and original
    /// length) and the frame.
    pub fn write_packet(&mut self, ts_micros: u64, frame: &[u8]) -> io::Result<()> {
        let secs = u32::try_from(ts_micros / 1_000_000)
            .map_err(|_| io::Error::other("timestamp beyond 2106"))?;
        let micros = (ts_micros % 1_000_000) as u32;
        let len = u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too long"))?;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&micros.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// One end of a conversation at layers 2 and 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    /// IP time-to-live of what this host sends (64 for the PLCs' embedded stacks, 128
    /// for the Windows stations).
    pub ttl: u8,
}

impl Host {
    /// A host with a locally administered MAC address derived from its IP address.
    pub fn new(ip: Ipv4Addr, ttl: u8) -> Self {
        let o = ip.octets();
        Host {
            mac: [0x02, 0x00, o[0], o[1], o[2], o[3]],
            ip,
            ttl,
        }
    }
}

/// Everything that varies between two TCP segments.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub src: Host,
    pub dst: Host,
    pub src_port: u16,
    pub dst_port: u16,
    pub ip_id: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// TCP options (a multiple of 4 bytes).
    pub options: &'a [u8],
    pub payload: &'a [u8],
}

/// Appends the Ethernet II header and the IPv4 header (20 bytes, DF, its checksum)
/// of a frame from `src` to `dst` carrying `payload_len` bytes of protocol `proto`.
fn eth_ipv4(src: Host, dst: Host, proto: u8, ip_id: u16, payload_len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&dst.mac);
    out.extend_from_slice(&src.mac);
    out.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = out.len();
    out.push(0x45); // version 4, IHL 5
    out.push(0x00); // DSCP/ECN
    out.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, fragment offset 0
    out.push(src.ttl);
    out.push(proto);
    out.extend_from_slice(&[0, 0]); // checksum, filled below
    out.extend_from_slice(&src.ip.octets());
    out.extend_from_slice(&dst.ip.octets());
    let ip_sum = checksum(&out[ip_start..ip_start + 20], 0);
    out[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum.to_be_bytes());
}

/// Builds the Ethernet/IPv4/TCP frame of `seg` into `out` (cleared first).
pub fn build_frame(seg: &Segment<'_>, out: &mut Vec<u8>) {
    out.clear();
    let tcp_len = 20 + seg.options.len() + seg.payload.len();
    eth_ipv4(seg.src, seg.dst, 6, seg.ip_id, tcp_len, out);
    // TCP
    let tcp_start = out.len();
    out.extend_from_slice(&seg.src_port.to_be_bytes());
    out.extend_from_slice(&seg.dst_port.to_be_bytes());
    out.extend_from_slice(&seg.seq.to_be_bytes());
    out.extend_from_slice(&seg.ack.to_be_bytes());
    let data_offset = ((20 + seg.options.len()) / 4) as u8;
    out.push(data_offset << 4);
    out.push(seg.flags);
    out.extend_from_slice(&seg.window.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // checksum, filled below
    out.extend_from_slice(&[0, 0]); // urgent pointer
    out.extend_from_slice(seg.options);
    out.extend_from_slice(seg.payload);
    // Pseudo-header: source, destination, zero, protocol, TCP length.
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&seg.src.ip.octets());
    pseudo[4..8].copy_from_slice(&seg.dst.ip.octets());
    pseudo[9] = 6;
    pseudo[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
    let tcp_sum = checksum(&out[tcp_start..], sum_words(&pseudo, 0));
    out[tcp_start + 16..tcp_start + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
}

/// Builds the Ethernet/IPv4/ICMP frame of an echo request (type 8) or reply (type 0)
/// from `src` to `dst` into `out` (cleared first), with the ICMP checksum (RFC 792:
/// over the message).
pub fn build_icmp_echo_frame(
    src: Host,
    dst: Host,
    icmp_type: u8,
    (id, seq): (u16, u16),
    ip_id: u16,
    out: &mut Vec<u8>,
) {
    out.clear();
    eth_ipv4(src, dst, 1, ip_id, 8 + 8, out);
    let icmp_start = out.len();
    out.extend_from_slice(&[icmp_type, 0, 0, 0]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(b"otwatch!"); // 8 bytes of echo data
    let sum = checksum(&out[icmp_start..], 0);
    out[icmp_start + 2..icmp_start + 4].copy_from_slice(&sum.to_be_bytes());
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
}

/// Builds the Ethernet/IPv4/UDP frame of one datagram from `src:src_port` to
/// `dst:dst_port` into `out` (cleared first), with the UDP checksum computed (RFC 768:
/// over the pseudo-header, header and data; a zero result is sent as 0xFFFF).
pub fn build_udp_frame(
    src: Host,
    dst: Host,
    (src_port, dst_port): (u16, u16),
    ip_id: u16,
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    let udp_len = (8 + payload.len()) as u16;
    eth_ipv4(src, dst, 17, ip_id, usize::from(udp_len), out);
    let udp_start = out.len();
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&udp_len.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // checksum, filled below
    out.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[0..4].copy_from_slice(&src.ip.octets());
    pseudo[4..8].copy_from_slice(&dst.ip.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let sum = match checksum(&out[udp_start..], sum_words(&pseudo, 0)) {
        0 => 0xffff,
        s => s,
    };
    out[udp_start + 6..udp_start + 8].copy_from_slice(&sum.to_be_bytes());
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
}

/// Adds `data` as big-endian 16-bit words (odd tail padded with zero) to `acc`.
///
/// Sums eight bytes at a time into a wide accumulator (RFC 1071 section 2(B): the
/// one's complement sum is independent of word size once carries are folded back), so
/// the benchmark generator stays fast even in a debug build.
fn sum_words(data: &[u8], acc: u32) -> u32 {
    let mut wide = u64::from(acc);
    let mut octets = data.chunks_exact(8);
    for o in &mut octets {
        let x = u64::from_be_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]);
        wide += (x >> 32) + (x & 0xffff_ffff);
    }
    let rest = octets.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    let x = u64::from_be_bytes(tail);
    wide += (x >> 32) + (x & 0xffff_ffff);
    // Fold 64 -> 32 -> 16 bits, keeping the carries.
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    wide = (wide & 0xffff_ffff) + (wide >> 32);
    wide = (wide & 0xffff) + (wide >> 16);
    wide as u32
}

/// The Internet checksum (RFC 1071) of `data`, starting from the partial sum `acc`.
fn checksum(data: &[u8], acc: u32) -> u16 {
    let mut s = sum_words(data, acc);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (one's
        // complement), so the checksum is 220d.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], 0),
            0x220d
        );
    }

    #[test]
    fn frame_layout_and_checksums_verify() {
        let a = Host::new(Ipv4Addr::new(10, 20, 1, 5), 128);
        let b = Host::new(Ipv4Addr::new(10, 30, 1, 10), 64);
        let payload = [
            0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x03, 0x00, 0x00, 0x00, 0x0a,
        ];
        let mut f = Vec::new();
        build_frame(
            &Segment {
                src: a,
                dst: b,
                src_port: 49152,
                dst_port: 502,
                ip_id: 7,
                seq: 1000,
                ack: 2000,
                flags: PSH | ACK,
                window: 64240,
                options: &[],
                payload: &payload,
            },
            &mut f,
        );
        assert_eq!(f.len(), 14 + 20 + 20 + 12);
        assert_eq!(&f[0..6], &b.mac); // destination MAC first
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(&f[16..18], &52u16.to_be_bytes()); // IP total length
        assert_eq!(&f[26..30], &[10, 20, 1, 5]);
        assert_eq!(&f[34..36], &49152u16.to_be_bytes());
        assert_eq!(f[47], PSH | ACK);
        assert_eq!(&f[54..], &payload);
        // A header with its checksum in place sums to 0xffff (checksum 0).
        assert_eq!(checksum(&f[14..34], 0), 0);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&[10, 20, 1, 5]);
        pseudo[4..8].copy_from_slice(&[10, 30, 1, 10]);
        pseudo[9] = 6;
        pseudo[10..12].copy_from_slice(&32u16.to_be_bytes());
        assert_eq!(checksum(&f[34..], sum_words(&pseudo, 0)), 0);
    }

    #[test]
    fn udp_frame_layout_and_checksum_verify() {
        let a = Host::new(Ipv4Addr::new(10, 20, 1, 5), 128);
        let b = Host::new(Ipv4Addr::new(10, 30, 1, 10), 64);
        let payload = [
            0x05, 0x64, 0x05, 0xc0, 0x0a, 0x00, 0x01, 0x00, 0xaa, 0xbb, 0xcc,
        ];
        let mut f = Vec::new();
        build_udp_frame(a, b, (49810, 20000), 9, &payload, &mut f);
        // 53 octets, padded to 60 (the padding is in no length field).
        assert_eq!(f.len(), 60);
        assert_eq!(&f[16..18], &39u16.to_be_bytes()); // IP total length 20 + 8 + 11
        assert_eq!(f[23], 17); // protocol UDP
        assert_eq!(&f[34..36], &49810u16.to_be_bytes());
        assert_eq!(&f[36..38], &20000u16.to_be_bytes());
        assert_eq!(&f[38..40], &19u16.to_be_bytes()); // UDP length 8 + 11
        assert_eq!(&f[42..53], &payload);
        assert_eq!(&f[53..], &[0; 7]);
        assert_eq!(checksum(&f[14..34], 0), 0);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&[10, 20, 1, 5]);
        pseudo[4..8].copy_from_slice(&[10, 30, 1, 10]);
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(checksum(&f[34..53], sum_words(&pseudo, 0)), 0);
    }

    #[test]
    fn short_frames_are_padded_to_60_bytes() {
        let a = Host::new(Ipv4Addr::new(10, 20, 1, 5), 128);
        let b = Host::new(Ipv4Addr::new(10, 30, 1, 10), 64);
        let mut f = Vec::new();
        build_frame(
            &Segment {
                src: a,
                dst: b,
                src_port: 49152,
                dst_port: 502,
                ip_id: 1,
                seq: 1,
                ack: 1,
                flags: ACK,
                window: 64240,
                options: &[],
                payload: &[],
            },
            &mut f,
        );
        assert_eq!(f.len(), 60);
        assert_eq!(&f[16..18], &40u16.to_be_bytes()); // padding not in the IP length
        assert_eq!(&f[54..], &[0; 6]);
    }

    #[test]
    fn pcap_headers() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1_795_168_800_000_250, &[0xaa; 3]).unwrap();
        let v = w.into_inner();
        assert_eq!(&v[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(&v[20..24], &1u32.to_le_bytes());
        assert_eq!(&v[24..28], &1_795_168_800u32.to_le_bytes());
        assert_eq!(&v[28..32], &250u32.to_le_bytes());
        assert_eq!(&v[32..36], &3u32.to_le_bytes());
        assert_eq!(&v[36..40], &3u32.to_le_bytes());
        assert_eq!(&v[40..], &[0xaa; 3]);
    }
}
