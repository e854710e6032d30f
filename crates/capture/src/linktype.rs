//! The link-layer types otwatch decodes, by their tcpdump.org `LINKTYPE_` numbers.

use std::fmt;

/// A link-layer header type a capture may declare (pcap global header, pcapng IDB).
///
/// Only the types the flow decoder understands exist here: a capture of any other type
/// is refused when it is opened, before a packet is read, rather than producing packets
/// nobody can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II / 802.3, possibly 802.1Q tagged.
    Ethernet,
    /// `LINKTYPE_NULL` (0): BSD loopback; a 4-byte address family in the byte order of
    /// the host that *wrote* the capture (the decoder must accept both).
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback; the 4-byte family in network order.
    Loop,
    /// `LINKTYPE_RAW` (101; also `DLT_RAW` 12 and OpenBSD's 14): a bare IPv4 or IPv6
    /// packet, version nibble first.
    RawIp,
    /// `LINKTYPE_IPV4` (228): a bare IPv4 packet.
    Ipv4,
    /// `LINKTYPE_IPV6` (229): a bare IPv6 packet.
    Ipv6,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture v1, 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2, 20-byte header.
    LinuxSll2,
}

impl LinkType {
    /// Every supported type, in `dlt()` order of declaration.
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::Null,
        LinkType::Loop,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
    ];

    /// The link type for a DLT / LINKTYPE number, or `None` when otwatch cannot decode
    /// it. 12 and 14 are the platform `DLT_RAW` values some writers still put in files.
    pub fn from_dlt(dlt: u32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// The canonical `LINKTYPE_` number (what a pcap writer should put in a file).
    pub fn dlt(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Null => 0,
            LinkType::Loop => 108,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
        }
    }

    /// A short lower-case name, stable enough for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::Null => "null",
            LinkType::Loop => "loop",
            LinkType::RawIp => "raw",
            LinkType::Ipv4 => "ipv4",
            LinkType::Ipv6 => "ipv6",
            LinkType::LinuxSll => "linux-sll",
            LinkType::LinuxSll2 => "linux-sll2",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dlt_round_trips_for_every_type() {
        for lt in LinkType::ALL {
            assert_eq!(LinkType::from_dlt(lt.dlt()), Some(lt), "{lt}");
        }
    }

    #[test]
    fn numbers_from_the_tcpdump_registry() {
        // (number, expected) straight from tcpdump.org/linktypes.html.
        let table = [
            (0, Some(LinkType::Null)),
            (1, Some(LinkType::Ethernet)),
            (12, Some(LinkType::RawIp)),
            (14, Some(LinkType::RawIp)),
            (101, Some(LinkType::RawIp)),
            (108, Some(LinkType::Loop)),
            (113, Some(LinkType::LinuxSll)),
            (228, Some(LinkType::Ipv4)),
            (229, Some(LinkType::Ipv6)),
            (276, Some(LinkType::LinuxSll2)),
            (105, None), // 802.11
            (127, None), // radiotap
            (147, None), // USER0
            (u32::MAX, None),
        ];
        for (dlt, want) in table {
            assert_eq!(LinkType::from_dlt(dlt), want, "dlt {dlt}");
        }
        assert_eq!(LinkType::from_dlt(12).map(LinkType::dlt), Some(101));
    }
}
