//! L3/L4 decode: from a captured frame to addresses, ports and the transport payload.
//!
//! The link layer is walked by hand ([`crate::link`]); IP (with IPv4 options and IPv6
//! extension headers), TCP and UDP are sliced by etherparse, which checks every length
//! once and then reads through infallible getters over the borrowed frame. Nothing here
//! allocates: a [`Decoded`] borrows the frame.
//!
//! Checksums are not verified: captures taken on the sending host carry offloaded
//! (unset) checksums, and a sensor must see what the wire saw.

use std::net::IpAddr;

use etherparse::{IpNumber, IpSlice, Ipv6ExtensionSlice, TcpSlice, UdpSlice};

use crate::link::{self, LinkError, LinkType, ETHERTYPE_IPV4, ETHERTYPE_IPV6};

/// The layer at which decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    Link,
    Ip,
    Tcp,
    Udp,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ip => "ip",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a packet could not be decoded. Small and `Copy`: usable as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// A well-formed frame that carries no IP (ARP, LLDP, STP, PROFINET RT, ...).
    #[error("not an IP packet")]
    NotIp,
    /// The packet ends inside a header, or before the length its header announces
    /// (often a capture snap length).
    #[error("truncated {0} header")]
    Truncated(Layer),
    /// A header whose content is invalid (IHL < 5, TCP data offset < 5, ...).
    #[error("malformed {0} header")]
    Malformed(Layer),
}

/// TCP header flags (the low 8 bits of the flags field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);

    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// A TCP segment, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
}

/// A UDP datagram, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

/// One fragment of an IPv4 or IPv6 datagram (reassembled by the flow table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFragment<'a> {
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Offset of this fragment's payload in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow.
    pub more: bool,
    /// Protocol of the datagram's payload.
    pub ip_proto: u8,
    pub payload: &'a [u8],
}

/// What rides on IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4<'a> {
    Tcp(TcpSegment<'a>),
    Udp(UdpDatagram<'a>),
    /// A fragment of a datagram: its transport header may be in another packet.
    Fragment(IpFragment<'a>),
    /// ICMP, SCTP, GRE, ...: counted, not tracked.
    Other {
        ip_proto: u8,
        /// The IP payload (an ICMP message starts with its type and code).
        payload: &'a [u8],
    },
}

/// A decoded packet: IP addresses and the transport layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4<'a>,
}

/// Decodes a captured frame down to the transport payload.
///
/// `Err(NotIp)` for frames that carry no IP; other errors for frames that cannot be
/// decoded. Never panics, whatever the bytes.
pub fn decode(linktype: LinkType, data: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let (_, ip) = link::network_layer(linktype, data).map_err(|e| match e {
        LinkError::Truncated => DecodeError::Truncated(Layer::Link),
        LinkError::NotIp => DecodeError::NotIp,
    })?;
    let ip = IpSlice::from_slice(ip).map_err(|e| match e {
        etherparse::err::ip::SliceError::Len(_) => DecodeError::Truncated(Layer::Ip),
        etherparse::err::ip::SliceError::IpHeaders(_) => DecodeError::Malformed(Layer::Ip),
    })?;
    let payload = ip.payload();
    let ip_proto = payload.ip_number.0;
    let transport = if payload.fragmented {
        L4::Fragment(fragment_of(&ip, ip_proto, payload.payload)?)
    } else {
        decode_transport(ip_proto, payload.payload)?
    };
    Ok(Decoded {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        l4: transport,
    })
}

/// Decodes the transport header of an (unfragmented or reassembled) IP payload.
pub fn decode_transport(ip_proto: u8, payload: &[u8]) -> Result<L4<'_>, DecodeError> {
    match IpNumber(ip_proto) {
        IpNumber::TCP => {
            let tcp = TcpSlice::from_slice(payload).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => {
                    DecodeError::Truncated(Layer::Tcp)
                }
                etherparse::err::tcp::HeaderSliceError::Content(_) => {
                    DecodeError::Malformed(Layer::Tcp)
                }
            })?;
            // Octet 13 of the header holds the flags: CWR ECE URG ACK PSH RST SYN FIN.
            // `TcpFlags` uses the same bits for the six classic ones, kept here.
            let flags = tcp.header_slice().get(13).map_or(0, |b| b & 0x3F);
            Ok(L4::Tcp(TcpSegment {
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: TcpFlags(flags),
                payload: tcp.payload(),
            }))
        }
        IpNumber::UDP => {
            let udp =
                UdpSlice::from_slice(payload).map_err(|_| DecodeError::Truncated(Layer::Udp))?;
            Ok(L4::Udp(UdpDatagram {
                src_port: udp.source_port(),
                dst_port: udp.destination_port(),
                payload: udp.payload(),
            }))
        }
        _ => Ok(L4::Other { ip_proto, payload }),
    }
}

fn fragment_of<'a>(
    ip: &IpSlice<'a>,
    ip_proto: u8,
    payload: &'a [u8],
) -> Result<IpFragment<'a>, DecodeError> {
    match ip {
        IpSlice::Ipv4(v4) => {
            let h = v4.header();
            Ok(IpFragment {
                id: u32::from(h.identification()),
                offset: u32::from(h.fragments_offset().value()) * 8,
                more: h.more_fragments(),
                ip_proto,
                payload,
            })
        }
        IpSlice::Ipv6(v6) => v6
            .extensions()
            .clone()
            .into_iter()
            .find_map(|ext| match ext {
                Ipv6ExtensionSlice::Fragment(f) if f.is_fragmenting_payload() => Some(IpFragment {
                    id: f.identification(),
                    offset: u32::from(f.fragment_offset().value()) * 8,
                    more: f.more_fragments(),
                    ip_proto,
                    payload,
                }),
                _ => None,
            })
            .ok_or(DecodeError::Malformed(Layer::Ip)),
    }
}

/// Symmetric hash of a packet's IP address pair, the same for both directions; 0 for
/// non-IP and undecodable packets.
///
/// Ports are left out on purpose: fragments after the first carry none, and they must
/// land on the worker that owns their flow. Parses only up to the addresses.
pub fn shard_hash(linktype: LinkType, data: &[u8]) -> u64 {
    let Ok((ethertype, ip)) = link::network_layer(linktype, data) else {
        return 0;
    };
    // IPv4: source at 12..16, destination at 16..20. IPv6: 8..24 and 24..40. Read as
    // numbers and ordered, the pair is one word (IPv4) or two (IPv6) to mix: a few
    // instructions per packet on the source thread, which does this for every packet.
    let pair = match ethertype {
        ETHERTYPE_IPV4 => octets::<4>(ip, 12)
            .zip(octets::<4>(ip, 16))
            .map(|(a, b)| (u32::from_be_bytes(a).into(), u32::from_be_bytes(b).into())),
        ETHERTYPE_IPV6 => octets::<16>(ip, 8)
            .zip(octets::<16>(ip, 24))
            .map(|(a, b)| (u128::from_be_bytes(a), u128::from_be_bytes(b))),
        _ => None,
    };
    let Some((a, b)): Option<(u128, u128)> = pair else {
        return 0;
    };
    let (lo, hi) = (a.min(b), a.max(b));
    let x = if ethertype == ETHERTYPE_IPV4 {
        // Two 32-bit addresses fill the word exactly.
        avalanche(fold(lo) << 32 | fold(hi))
    } else {
        avalanche(avalanche(fold(lo)) ^ fold(hi))
    };
    // 0 is reserved for "not IP".
    x.max(1)
}

/// `N` octets of `b` from `at`, if there are that many.
fn octets<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The two halves of `n` in one word.
fn fold(n: u128) -> u64 {
    let [hi, lo] = [(n >> 64) as u64, n as u64];
    hi ^ lo
}

/// splitmix64's finaliser: every input bit moves about half the output bits, so that
/// `hash % workers` balances even when addresses differ only in their last octet.
fn avalanche(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn tcp_over_ethernet_field_by_field() {
        let frame: Vec<u8> = [
            // Ethernet
            &[0x00, 0x0c, 0x29, 0x00, 0x00, 0x01][..], // destination MAC
            &[0x00, 0x0c, 0x29, 0x00, 0x00, 0x02],     // source MAC
            &[0x08, 0x00],                             // EtherType IPv4
            // IPv4
            &[0x45, 0x00], // version 4, IHL 5; DSCP/ECN
            &[0x00, 0x2e], // total length 46 = 20 + 20 + 6
            &[0x12, 0x34], // identification
            &[0x40, 0x00], // DF, offset 0
            &[0x40, 0x06], // TTL 64, protocol TCP
            &[0x00, 0x00], // header checksum (not verified)
            &[10, 0, 0, 1],
            &[10, 0, 0, 2],
            // TCP
            &[0xc0, 0x00],             // source port 49152
            &[0x01, 0xf6],             // destination port 502
            &[0x00, 0x00, 0x03, 0xe8], // sequence number 1000
            &[0x00, 0x00, 0x07, 0xd0], // acknowledgment number 2000
            &[0x50, 0x18],             // data offset 5, flags PSH|ACK
            &[0xff, 0xff],             // window
            &[0x00, 0x00],             // checksum (not verified)
            &[0x00, 0x00],             // urgent pointer
            // payload: a Modbus MBAP start
            &[0x00, 0x07, 0x00, 0x00, 0x00, 0x06],
        ]
        .concat();
        let d = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(d.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(d.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            d.l4,
            L4::Tcp(TcpSegment {
                src_port: 49152,
                dst_port: 502,
                seq: 1000,
                ack: 2000,
                flags: TcpFlags::PSH | TcpFlags::ACK,
                payload: &[0x00, 0x07, 0x00, 0x00, 0x00, 0x06],
            })
        );
        // Every strict prefix fails cleanly (the IP total length covers the payload).
        for n in 0..frame.len() {
            assert!(
                decode(LinkType::Ethernet, &frame[..n]).is_err(),
                "prefix {n}"
            );
        }
        // Ethernet padding after the IP total length is ignored.
        let mut padded = frame.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(decode(LinkType::Ethernet, &padded).unwrap(), d);
    }

    /// RFC 9293 3.1: the flag bits of octet 13, CWR ECE URG ACK PSH RST SYN FIN from the
    /// top; CWR and ECE (RFC 3168) are not kept.
    #[test]
    fn tcp_flags_by_bit() {
        let bits = [
            (0x01, TcpFlags::FIN),
            (0x02, TcpFlags::SYN),
            (0x04, TcpFlags::RST),
            (0x08, TcpFlags::PSH),
            (0x10, TcpFlags::ACK),
            (0x20, TcpFlags::URG),
            (0x40, TcpFlags(0)),
            (0x80, TcpFlags(0)),
        ];
        for (bit, flag) in bits {
            let tcp = tcp_bytes(1, 2, 0, 0, TcpFlags(bit), b"");
            let Ok(L4::Tcp(seg)) = decode_transport(6, &tcp) else {
                panic!("bit {bit:#04x} not decoded");
            };
            assert_eq!(seg.flags, flag, "bit {bit:#04x}");
        }
        let tcp = tcp_bytes(1, 2, 0, 0, TcpFlags(0xD2), b"");
        let Ok(L4::Tcp(seg)) = decode_transport(6, &tcp) else {
            panic!("not decoded");
        };
        assert_eq!(seg.flags, TcpFlags::SYN | TcpFlags::ACK);
    }

    #[test]
    fn every_link_type_reaches_the_same_udp_datagram() {
        let ip = ipv4_udp(
            [192, 168, 1, 10],
            [192, 168, 1, 20],
            20000,
            20000,
            b"\x05\x64",
        );
        for (lt, frame) in [
            (LinkType::Ethernet, ether(0x0800, &ip)),
            (LinkType::Ethernet, vlan(&[0x8100], 0x0800, &ip)),
            (LinkType::Ethernet, vlan(&[0x88a8, 0x8100], 0x0800, &ip)),
            (LinkType::Ethernet, vlan(&[0x9100, 0x8100], 0x0800, &ip)),
            (LinkType::LinuxSll, sll(0x0800, &ip)),
            (LinkType::LinuxSll2, sll2(0x0800, &ip)),
            (LinkType::Null, null_le(2, &ip)),
            (LinkType::Null, null_be(2, &ip)),
            (LinkType::Loop, null_be(2, &ip)),
            (LinkType::RawIp, ip.clone()),
            (LinkType::Ipv4, ip.clone()),
        ] {
            let d = decode(lt, &frame).unwrap_or_else(|e| panic!("{lt:?}: {e}"));
            assert_eq!(d.src, IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)), "{lt:?}");
            assert_eq!(
                d.l4,
                L4::Udp(UdpDatagram {
                    src_port: 20000,
                    dst_port: 20000,
                    payload: b"\x05\x64"
                }),
                "{lt:?}"
            );
        }
    }

    #[test]
    fn ipv6_with_extension_header() {
        let src = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
        let dst = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let tcp = tcp_bytes(40000, 4840, 7, 0, TcpFlags::SYN, b"");
        // Hop-by-hop options header (8 bytes): next header TCP, length 0, PadN.
        let mut payload = vec![6, 0, 1, 4, 0, 0, 0, 0];
        payload.extend_from_slice(&tcp);
        let ip = ipv6_raw(src, dst, 0, &payload);
        for (lt, frame) in [
            (LinkType::Ethernet, ether(0x86dd, &ip)),
            (LinkType::Null, null_le(30, &ip)),
            (LinkType::Null, null_be(24, &ip)),
            (LinkType::Null, null_le(10, &ip)),
            (LinkType::RawIp, ip.clone()),
            (LinkType::Ipv6, ip.clone()),
            (LinkType::LinuxSll2, sll2(0x86dd, &ip)),
        ] {
            let d = decode(lt, &frame).unwrap();
            assert_eq!(d.src, IpAddr::V6(src));
            assert_eq!(d.dst, IpAddr::V6(dst));
            match d.l4 {
                L4::Tcp(t) => {
                    assert_eq!((t.src_port, t.dst_port, t.seq), (40000, 4840, 7));
                    assert!(t.flags.contains(TcpFlags::SYN));
                    assert!(!t.flags.contains(TcpFlags::ACK));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn fragments_are_reported_not_sliced() {
        let frags = ipv4_fragments([10, 0, 0, 1], [10, 0, 0, 2], 0x4242, 17, &[0xab; 40], 16);
        assert_eq!(frags.len(), 3);
        let d = decode(LinkType::RawIp, &frags[1]).unwrap();
        assert_eq!(
            d.l4,
            L4::Fragment(IpFragment {
                id: 0x4242,
                offset: 16,
                more: true,
                ip_proto: 17,
                payload: &[0xab; 16]
            })
        );
        let last = decode(LinkType::RawIp, &frags[2]).unwrap();
        assert!(matches!(
            last.l4,
            L4::Fragment(IpFragment {
                offset: 32,
                more: false,
                ..
            })
        ));
    }

    #[test]
    fn errors_by_cause() {
        let arp = ether(0x0806, &[0; 28]);
        assert_eq!(decode(LinkType::Ethernet, &arp), Err(DecodeError::NotIp));
        assert_eq!(
            decode(LinkType::Ethernet, &[0; 10]),
            Err(DecodeError::Truncated(Layer::Link))
        );
        // IHL 4 (< 5) is malformed.
        let mut bad = ipv4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1, 2, b"x");
        bad[0] = 0x44;
        assert_eq!(
            decode(LinkType::RawIp, &bad),
            Err(DecodeError::Malformed(Layer::Ip))
        );
        // TCP data offset 4 (< 5) is malformed.
        let mut t = tcp_bytes(1, 2, 0, 0, TcpFlags::ACK, b"");
        t[12] = 0x40;
        let ip = ipv4_raw([1, 1, 1, 1], [2, 2, 2, 2], 6, 0, 0, false, &t);
        assert_eq!(
            decode(LinkType::RawIp, &ip),
            Err(DecodeError::Malformed(Layer::Tcp))
        );
        // ICMP is IP, just not tracked.
        let icmp = ipv4_raw([1, 1, 1, 1], [2, 2, 2, 2], 1, 0, 0, false, &[8, 0, 0, 0]);
        assert_eq!(
            decode(LinkType::RawIp, &icmp).unwrap().l4,
            L4::Other {
                ip_proto: 1,
                payload: &[8, 0, 0, 0]
            }
        );
    }

    #[test]
    fn shard_hash_is_symmetric_and_port_blind() {
        let ab = ether(
            0x0800,
            &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], 1000, 502, b"x"),
        );
        let ba = ether(
            0x0800,
            &ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], 502, 1000, b"y"),
        );
        let other_ports = vlan(
            &[0x8100],
            0x0800,
            &ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], 7, 9, b""),
        );
        let h = shard_hash(LinkType::Ethernet, &ab);
        assert_ne!(h, 0);
        assert_eq!(h, shard_hash(LinkType::Ethernet, &ba));
        assert_eq!(h, shard_hash(LinkType::Ethernet, &other_ports));
        let frag = ipv4_fragments([10, 0, 0, 1], [10, 0, 0, 2], 1, 6, &[0; 32], 16);
        assert_eq!(h, shard_hash(LinkType::RawIp, &frag[1]));
        let ac = ether(
            0x0800,
            &ipv4_udp([10, 0, 0, 1], [10, 0, 0, 3], 1000, 502, b"x"),
        );
        assert_ne!(h, shard_hash(LinkType::Ethernet, &ac));
        assert_eq!(shard_hash(LinkType::Ethernet, &ether(0x0806, &[0; 28])), 0);
        assert_eq!(shard_hash(LinkType::Ethernet, &ab[..20]), 0);
        let v6 = ipv6_raw(Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED, 17, &[]);
        let v6_back = ipv6_raw(Ipv6Addr::UNSPECIFIED, Ipv6Addr::LOCALHOST, 6, &[1, 2]);
        assert_ne!(shard_hash(LinkType::RawIp, &v6), 0);
        assert_eq!(
            shard_hash(LinkType::RawIp, &v6),
            shard_hash(LinkType::RawIp, &v6_back)
        );
    }

    /// Plant-like address sets (clients and devices in two subnets, numbered from the
    /// same base; or one host per subnet, all ending in .10) spread evenly over 2 to 4
    /// workers.
    #[test]
    fn shard_hash_balances_host_pairs() {
        type Pair = ([u8; 4], [u8; 4]);
        let per_subnet: fn(u8, u8) -> Pair = |c, s| ([10, 40, c, 10], [10, 30, s, 10]);
        let numbered: fn(u8, u8) -> Pair = |c, s| ([10, 40, 1, c], [10, 30, 2, s]);
        let sets = [
            (20u8, 50u8, numbered),
            (5, 200, numbered),
            (64, 16, numbered),
            (20, 50, per_subnet),
        ];
        for (clients, servers, addrs) in sets {
            for workers in 2..=4u64 {
                let mut per = vec![0usize; workers as usize];
                for c in 0..clients {
                    for s in 0..servers {
                        let (a, b) = addrs(c, s);
                        let ip = ipv4_udp(a, b, 40000, 502, b"");
                        let h = shard_hash(LinkType::RawIp, &ip);
                        per[(h % workers) as usize] += 1;
                    }
                }
                // As balanced as random placement: within four standard deviations
                // of a binomial count.
                let pairs = f64::from(clients) * f64::from(servers);
                let p = 1.0 / workers as f64;
                let (fair, sd) = (pairs * p, (pairs * p * (1.0 - p)).sqrt());
                for n in &per {
                    assert!(
                        (*n as f64 - fair).abs() <= 4.0 * sd,
                        "{clients}x{servers} over {workers}: {per:?}"
                    );
                }
            }
        }
    }
}
