//! Community ID v1 flow hashing (<https://github.com/corelight/community-id-spec>), so
//! that otwatch alerts join with Zeek and Suricata logs of the same traffic.

use std::net::IpAddr;

use base64::Engine;

/// Community ID v1 of a TCP/UDP flow, e.g. `1:6MftZfY1T6eAG9jzupWHXhSMYzQ=`.
///
/// `"1:" + base64(SHA-1(seed | addr_lo | addr_hi | proto | 0 | port_lo | port_hi))`,
/// integers in network order, the endpoints ordered so that the smaller (address,
/// port) comes first: the same value for both directions. Mixed address families
/// (impossible on one flow) are hashed in the order given.
pub fn community_id_v1(
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    proto: u8,
    seed: u16,
) -> String {
    hash(
        Endpoint::new(src, src_port),
        Endpoint::new(dst, dst_port),
        proto,
        Ports::Ordered,
        seed,
    )
}

/// Community ID v1 of a packet of an IP protocol other than TCP and UDP.
///
/// ICMP (1) and ICMPv6 (58) hash their type and code in place of ports (`icmp`: the
/// message's first two octets), except that a type with a counterpart (echo and echo
/// reply, neighbour solicitation and advertisement, ...) hashes the counterpart's type
/// as the second "port", so that both messages get one id; a message without a
/// counterpart is one-way and its ends are not reordered. Other protocols hash no
/// ports. The type tables are the specification's (which takes them from Zeek).
pub fn community_id_v1_packet(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    icmp: Option<(u8, u8)>,
    seed: u16,
) -> String {
    let counterpart = |t: u8| match proto {
        1 => ICMP_COUNTERPARTS.iter().find(|p| p.0 == t).map(|p| p.1),
        _ => ICMPV6_COUNTERPARTS.iter().find(|p| p.0 == t).map(|p| p.1),
    };
    match (proto, icmp) {
        (1 | 58, Some((t, code))) => {
            let (second, ports) = match counterpart(t) {
                Some(c) => (c, Ports::Ordered),
                None => (code, Ports::OneWay),
            };
            hash(
                Endpoint::new(src, u16::from(t)),
                Endpoint::new(dst, u16::from(second)),
                proto,
                ports,
                seed,
            )
        }
        _ => hash(
            Endpoint::new(src, 0),
            Endpoint::new(dst, 0),
            proto,
            Ports::None,
            seed,
        ),
    }
}

/// ICMP message types and their counterparts (echo, router, timestamp, information,
/// address mask).
const ICMP_COUNTERPARTS: [(u8, u8); 10] = [
    (8, 0),
    (0, 8),
    (13, 14),
    (14, 13),
    (15, 16),
    (16, 15),
    (10, 9),
    (9, 10),
    (17, 18),
    (18, 17),
];

/// ICMPv6 message types and their counterparts (echo, MLD, router and neighbour
/// discovery, who-are-you, home agent address discovery).
const ICMPV6_COUNTERPARTS: [(u8, u8); 12] = [
    (128, 129),
    (129, 128),
    (130, 131),
    (131, 130),
    (133, 134),
    (134, 133),
    (135, 136),
    (136, 135),
    (139, 140),
    (140, 139),
    (144, 145),
    (145, 144),
];

/// How the ends' ports enter the hash.
enum Ports {
    /// Hashed, the smaller (address, port) end first.
    Ordered,
    /// Hashed as given: a one-way ICMP message.
    OneWay,
    /// Not hashed; the smaller address first.
    None,
}

fn hash(mut a: Endpoint, mut b: Endpoint, proto: u8, ports: Ports, seed: u16) -> String {
    let reorder = match ports {
        Ports::Ordered | Ports::None => (a.addr(), a.port) > (b.addr(), b.port),
        Ports::OneWay => false,
    };
    if reorder {
        std::mem::swap(&mut a, &mut b);
    }
    let mut h = sha1_smol::Sha1::new();
    h.update(&seed.to_be_bytes());
    h.update(a.addr());
    h.update(b.addr());
    h.update(&[proto, 0]);
    if !matches!(ports, Ports::None) {
        h.update(&a.port.to_be_bytes());
        h.update(&b.port.to_be_bytes());
    }
    let digest = h.digest().bytes();
    let mut out = String::with_capacity(30);
    out.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut out);
    out
}

/// An address in network byte order, without allocating.
struct Endpoint {
    bytes: [u8; 16],
    len: usize,
    port: u16,
}

impl Endpoint {
    fn new(ip: IpAddr, port: u16) -> Self {
        let mut bytes = [0u8; 16];
        let len = match ip {
            IpAddr::V4(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            IpAddr::V6(v6) => {
                bytes = v6.octets();
                16
            }
        };
        Endpoint { bytes, len, port }
    }

    fn addr(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Expected values from the reference Python implementation (`pip install
    /// communityid`, 1.5.0), cross-checked with a hashlib one-liner following the spec.
    #[test]
    fn reference_vectors() {
        let cases = [
            (
                ("10.20.1.5", 49152, "10.30.1.10", 502, 6, 0),
                "1:6MftZfY1T6eAG9jzupWHXhSMYzQ=",
            ),
            (
                ("10.30.1.10", 502, "10.20.1.5", 49152, 6, 0),
                "1:6MftZfY1T6eAG9jzupWHXhSMYzQ=",
            ),
            (
                ("192.168.1.10", 20000, "192.168.1.20", 20000, 17, 0),
                "1:BYxA8dMWDSYEb4DyEyUyXU7byt4=",
            ),
            (
                ("fe80::1", 40000, "fe80::2", 4840, 6, 0),
                "1:EyG6zyWTTi0L4KPqMCE7KeZ1GIg=",
            ),
            // Same address both ends: the ports decide the order.
            (
                ("10.0.0.1", 2000, "10.0.0.1", 1000, 6, 0),
                "1:nxwYq30oipX1dGVDLt7tz75Hofc=",
            ),
            (
                ("10.20.1.5", 49152, "10.30.1.10", 502, 6, 1),
                "1:+5pv546N9SPQ16V/LeuduWE03FM=",
            ),
        ];
        for ((s, sp, d, dp, proto, seed), want) in cases {
            assert_eq!(
                community_id_v1(ip(s), sp, ip(d), dp, proto, seed),
                want,
                "{s} {d}"
            );
        }
    }

    /// The specification's ICMP and ICMPv6 vectors (seed 0), from the reference
    /// implementation's tests.
    #[test]
    fn icmp_vectors() {
        let cases = [
            (
                ("192.168.0.89", "192.168.0.1", 1, 8, 0),
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                ("192.168.0.1", "192.168.0.89", 1, 0, 8),
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            // Type 20 has no counterpart: its code is hashed, and the ends stay.
            (
                ("192.168.0.89", "192.168.0.1", 1, 20, 0),
                "1:3o2RFccXzUgjl7zDpqmY7yJi8rI=",
            ),
            (
                ("192.168.0.89", "192.168.0.1", 1, 20, 1),
                "1:tz/fHIDUHs19NkixVVoOZywde+I=",
            ),
            // An echo reply's code is not hashed.
            (
                ("192.168.0.1", "192.168.0.89", 1, 0, 20),
                "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
            ),
            (
                (
                    "fe80::200:86ff:fe05:80da",
                    "fe80::260:97ff:fe07:69ea",
                    58,
                    135,
                    0,
                ),
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                (
                    "fe80::260:97ff:fe07:69ea",
                    "fe80::200:86ff:fe05:80da",
                    58,
                    136,
                    0,
                ),
                "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
            ),
            (
                (
                    "3ffe:507:0:1:260:97ff:fe07:69ea",
                    "3ffe:507:0:1:200:86ff:fe05:80da",
                    58,
                    3,
                    0,
                ),
                "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=",
            ),
            (
                (
                    "3ffe:507:0:1:200:86ff:fe05:80da",
                    "3ffe:507:0:1:260:97ff:fe07:69ea",
                    58,
                    3,
                    0,
                ),
                "1:/OGBt9BN1ofenrmSPWYicpij2Vc=",
            ),
        ];
        for ((s, d, proto, t, code), want) in cases {
            assert_eq!(
                community_id_v1_packet(ip(s), ip(d), proto, Some((t, code)), 0),
                want,
                "{s} {d} {t}/{code}"
            );
        }
        // A protocol without ports (OSPF, 89) hashes none; checked with the reference
        // implementation (`communityid` 1.5.0, `FlowTuple(89, src, dst)`), both ways.
        for (s, d) in [("10.30.1.79", "10.30.1.10"), ("10.30.1.10", "10.30.1.79")] {
            assert_eq!(
                community_id_v1_packet(ip(s), ip(d), 89, None, 0),
                "1:XGYw6Q4AYy7y30WHDRkoSddkWLk="
            );
        }
    }
}
