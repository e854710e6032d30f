//! Link layers: from a captured frame to the network-layer bytes and their EtherType.
//!
//! Written by hand rather than through etherparse because the same walk serves two
//! callers: [`crate::decode`] and [`crate::shard_hash`], which runs on the source
//! thread for every packet and must stop at the IP addresses. Every read is bounds
//! checked (`get`), never indexed.

pub use otwatch_capture::LinkType;

/// EtherType of IPv4.
pub(crate) const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag still sent by some switches.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// How many VLAN tags we walk before giving up (QinQ needs two).
const MAX_VLAN_TAGS: usize = 4;

/// Why a frame yields no network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// The frame ends inside a link-layer header.
    Truncated,
    /// A well-formed frame that carries something else than IPv4/IPv6 (ARP, LLDP, ...).
    NotIp,
}

/// Strips the link layer: returns the EtherType of the payload (IPv4 or IPv6 only) and
/// the payload.
pub(crate) fn network_layer(linktype: LinkType, data: &[u8]) -> Result<(u16, &[u8]), LinkError> {
    let (ethertype, payload) = match linktype {
        LinkType::Ethernet => ethernet(data)?,
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD(2) address length(2) address(8) protocol(2)
            let proto = be16(data, 14).ok_or(LinkError::Truncated)?;
            (proto, data.get(16..).ok_or(LinkError::Truncated)?)
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) address length(1)
            // address(8)
            let proto = be16(data, 0).ok_or(LinkError::Truncated)?;
            (proto, data.get(20..).ok_or(LinkError::Truncated)?)
        }
        LinkType::Null => {
            let family = four(data).ok_or(LinkError::Truncated)?;
            let (le, be) = (u32::from_le_bytes(family), u32::from_be_bytes(family));
            // The writer's byte order is unknown: a family value is small, so exactly one
            // reading of the two is plausible.
            (
                null_family(le)
                    .or_else(|| null_family(be))
                    .ok_or(LinkError::NotIp)?,
                data.get(4..).ok_or(LinkError::Truncated)?,
            )
        }
        LinkType::Loop => {
            let be = u32::from_be_bytes(four(data).ok_or(LinkError::Truncated)?);
            (
                null_family(be).ok_or(LinkError::NotIp)?,
                data.get(4..).ok_or(LinkError::Truncated)?,
            )
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
            let first = *data.first().ok_or(LinkError::Truncated)?;
            match first >> 4 {
                4 => (ETHERTYPE_IPV4, data),
                6 => (ETHERTYPE_IPV6, data),
                _ => return Err(LinkError::NotIp),
            }
        }
    };
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok((ethertype, payload)),
        _ => Err(LinkError::NotIp),
    }
}

/// Ethernet II with up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags.
fn ethernet(data: &[u8]) -> Result<(u16, &[u8]), LinkError> {
    // destination(6) source(6) EtherType(2)
    let mut ethertype = be16(data, 12).ok_or(LinkError::Truncated)?;
    let mut rest = data.get(14..).ok_or(LinkError::Truncated)?;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            return Ok((ethertype, rest));
        }
        // TCI(2) EtherType(2)
        ethertype = be16(rest, 2).ok_or(LinkError::Truncated)?;
        rest = rest.get(4..).ok_or(LinkError::Truncated)?;
    }
    // Deeper tag stacks than any real network uses.
    Err(LinkError::NotIp)
}

/// BSD address families: AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD,
/// OpenBSD), 28 (FreeBSD), 30 (macOS).
fn null_family(family: u32) -> Option<u16> {
    match family {
        2 => Some(ETHERTYPE_IPV4),
        10 | 24 | 28 | 30 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

fn four(data: &[u8]) -> Option<[u8; 4]> {
    data.get(0..4)?.try_into().ok()
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal IPv4 header start: version/IHL 0x45.
    const IP4: [u8; 2] = [0x45, 0x00];

    fn eth(ethertype: [u8; 2], tags: &[[u8; 4]], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, // destination MAC
            0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, // source MAC
        ];
        if let Some(first) = tags.first() {
            // The outer TPID goes in the EtherType slot, each tag carries the next one.
            f.extend_from_slice(&first[..2]);
            for (i, t) in tags.iter().enumerate() {
                f.extend_from_slice(&t[2..]); // TCI
                match tags.get(i + 1) {
                    Some(next) => f.extend_from_slice(&next[..2]),
                    None => f.extend_from_slice(&ethertype),
                }
            }
        } else {
            f.extend_from_slice(&ethertype);
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ethernet_plain_vlan_and_qinq() {
        let plain = eth([0x08, 0x00], &[], &IP4);
        assert_eq!(
            network_layer(LinkType::Ethernet, &plain),
            Ok((ETHERTYPE_IPV4, &IP4[..]))
        );
        // 802.1Q tag: TPID 0x8100, TCI 0x0064 (VLAN 100).
        let q = eth([0x86, 0xdd], &[[0x81, 0x00, 0x00, 0x64]], &IP4);
        assert_eq!(
            network_layer(LinkType::Ethernet, &q),
            Ok((ETHERTYPE_IPV6, &IP4[..]))
        );
        // QinQ: outer 0x88a8 VLAN 10, inner 0x8100 VLAN 20.
        let qq = eth(
            [0x08, 0x00],
            &[[0x88, 0xa8, 0x00, 0x0a], [0x81, 0x00, 0x00, 0x14]],
            &IP4,
        );
        assert_eq!(
            network_layer(LinkType::Ethernet, &qq),
            Ok((ETHERTYPE_IPV4, &IP4[..]))
        );
        // Old-style QinQ outer tag 0x9100.
        let old = eth(
            [0x08, 0x00],
            &[[0x91, 0x00, 0x00, 0x0a], [0x81, 0x00, 0x00, 0x14]],
            &IP4,
        );
        assert_eq!(
            network_layer(LinkType::Ethernet, &old),
            Ok((ETHERTYPE_IPV4, &IP4[..]))
        );
        // Every strict prefix of the QinQ header is truncated.
        for n in 0..22 {
            assert_eq!(
                network_layer(LinkType::Ethernet, &qq[..n]),
                Err(LinkError::Truncated),
                "prefix {n}"
            );
        }
        // ARP is not IP.
        let arp = eth([0x08, 0x06], &[], &[0; 28]);
        assert_eq!(
            network_layer(LinkType::Ethernet, &arp),
            Err(LinkError::NotIp)
        );
        // Five stacked tags: refused rather than walked forever.
        let deep = eth([0x08, 0x00], &[[0x81, 0x00, 0, 1]; 5], &IP4);
        assert_eq!(
            network_layer(LinkType::Ethernet, &deep),
            Err(LinkError::NotIp)
        );
    }

    #[test]
    fn linux_cooked_v1_and_v2() {
        let sll = [
            0x00, 0x00, // packet type: to us
            0x00, 0x01, // ARPHRD_ETHER
            0x00, 0x06, // address length
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00, // address, padded to 8
            0x08, 0x00, // protocol: IPv4
            0x45, 0x00, // payload
        ];
        assert_eq!(
            network_layer(LinkType::LinuxSll, &sll),
            Ok((ETHERTYPE_IPV4, &IP4[..]))
        );
        for n in 0..16 {
            assert_eq!(
                network_layer(LinkType::LinuxSll, &sll[..n]),
                Err(LinkError::Truncated)
            );
        }
        let sll2 = [
            0x86, 0xdd, // protocol: IPv6
            0x00, 0x00, // reserved
            0x00, 0x00, 0x00, 0x02, // interface index
            0x00, 0x01, // ARPHRD_ETHER
            0x04, // packet type: outgoing
            0x06, // address length
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x00, 0x00, // address
            0x60, 0x00, // payload
        ];
        assert_eq!(
            network_layer(LinkType::LinuxSll2, &sll2),
            Ok((ETHERTYPE_IPV6, &[0x60, 0x00][..]))
        );
        for n in 0..20 {
            assert_eq!(
                network_layer(LinkType::LinuxSll2, &sll2[..n]),
                Err(LinkError::Truncated)
            );
        }
    }

    #[test]
    fn null_in_both_byte_orders_and_loop() {
        let cases: [([u8; 4], Result<u16, LinkError>); 8] = [
            ([2, 0, 0, 0], Ok(ETHERTYPE_IPV4)), // AF_INET, little-endian writer
            ([0, 0, 0, 2], Ok(ETHERTYPE_IPV4)), // AF_INET, big-endian writer
            ([10, 0, 0, 0], Ok(ETHERTYPE_IPV6)), // Linux AF_INET6
            ([0, 0, 0, 24], Ok(ETHERTYPE_IPV6)), // NetBSD/OpenBSD
            ([28, 0, 0, 0], Ok(ETHERTYPE_IPV6)), // FreeBSD
            ([0, 0, 0, 30], Ok(ETHERTYPE_IPV6)), // macOS
            ([7, 0, 0, 0], Err(LinkError::NotIp)),
            ([0, 2, 0, 0], Err(LinkError::NotIp)),
        ];
        for (family, want) in cases {
            let mut f = family.to_vec();
            f.extend_from_slice(&IP4);
            assert_eq!(
                network_layer(LinkType::Null, &f).map(|r| r.0),
                want,
                "{family:?}"
            );
        }
        // LOOP is network order only: a little-endian 2 is not AF_INET there.
        let be = [0, 0, 0, 2, 0x45, 0];
        let le = [2, 0, 0, 0, 0x45, 0];
        assert_eq!(
            network_layer(LinkType::Loop, &be).map(|r| r.0),
            Ok(ETHERTYPE_IPV4)
        );
        assert_eq!(network_layer(LinkType::Loop, &le), Err(LinkError::NotIp));
        for n in 0..4 {
            assert_eq!(
                network_layer(LinkType::Null, &be[..n]),
                Err(LinkError::Truncated)
            );
        }
    }

    #[test]
    fn raw_ip_by_version_nibble() {
        assert_eq!(
            network_layer(LinkType::RawIp, &IP4).map(|r| r.0),
            Ok(ETHERTYPE_IPV4)
        );
        assert_eq!(
            network_layer(LinkType::RawIp, &[0x60, 0]).map(|r| r.0),
            Ok(ETHERTYPE_IPV6)
        );
        assert_eq!(
            network_layer(LinkType::Ipv4, &IP4).map(|r| r.0),
            Ok(ETHERTYPE_IPV4)
        );
        assert_eq!(
            network_layer(LinkType::RawIp, &[0x20]),
            Err(LinkError::NotIp)
        );
        assert_eq!(
            network_layer(LinkType::RawIp, &[]),
            Err(LinkError::Truncated)
        );
    }
}
