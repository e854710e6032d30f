//! A small packet builder for tests: every header written field by field.
#![allow(clippy::too_many_arguments)]

use std::net::Ipv6Addr;

use crate::decode::TcpFlags;

/// Ethernet II: destination, source, EtherType.
pub fn ether(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    vlan(&[], ethertype, payload)
}

/// Ethernet II with VLAN tags; `tpids` outermost first, VLAN ids 100, 101, ...
pub fn vlan(tpids: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x0c, 0x29, 0x00, 0x00, 0x01, // destination MAC
        0x00, 0x0c, 0x29, 0x00, 0x00, 0x02, // source MAC
    ];
    for (i, tpid) in tpids.iter().enumerate() {
        f.extend_from_slice(&tpid.to_be_bytes()); // TPID
        f.extend_from_slice(&(100 + i as u16).to_be_bytes()); // TCI: PCP 0, VID
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v1 (16-byte header).
pub fn sll(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x00, // packet type: unicast to us
        0x00, 0x01, // ARPHRD_ETHER
        0x00, 0x06, // link-layer address length
        0x00, 0x0c, 0x29, 0x00, 0x00, 0x02, 0x00, 0x00, // address, padded to 8
    ];
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Linux cooked capture v2 (20-byte header).
pub fn sll2(protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = protocol.to_be_bytes().to_vec();
    f.extend_from_slice(&[
        0x00, 0x00, // reserved
        0x00, 0x00, 0x00, 0x03, // interface index
        0x00, 0x01, // ARPHRD_ETHER
        0x00, // packet type
        0x06, // address length
        0x00, 0x0c, 0x29, 0x00, 0x00, 0x02, 0x00, 0x00, // address
    ]);
    f.extend_from_slice(payload);
    f
}

/// BSD loopback header written by a little-endian host.
pub fn null_le(family: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = family.to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// BSD loopback header written by a big-endian host (and LINKTYPE_LOOP).
pub fn null_be(family: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = family.to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// IPv4 header (no options) + payload. `frag_offset` in bytes (a multiple of 8).
pub fn ipv4_raw(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    frag_offset: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = 20 + payload.len() as u16;
    let flags_off = (u16::from(more) << 13) | (frag_offset / 8);
    let mut f = vec![0x45, 0x00]; // version 4, IHL 5; DSCP/ECN
    f.extend_from_slice(&total.to_be_bytes()); // total length
    f.extend_from_slice(&id.to_be_bytes()); // identification
    f.extend_from_slice(&flags_off.to_be_bytes()); // flags (MF), fragment offset / 8
    f.extend_from_slice(&[64, proto]); // TTL, protocol
    f.extend_from_slice(&[0, 0]); // header checksum (not verified)
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(payload);
    f
}

/// IPv6 header + payload (which may start with extension headers).
pub fn ipv6_raw(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x60, 0x00, 0x00, 0x00]; // version 6, traffic class, flow label
    f.extend_from_slice(&(payload.len() as u16).to_be_bytes()); // payload length
    f.extend_from_slice(&[next_header, 64]); // next header, hop limit
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(payload);
    f
}

/// UDP header + payload (checksum 0 = none).
pub fn udp_bytes(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = sport.to_be_bytes().to_vec();
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes()); // length
    f.extend_from_slice(&[0, 0]); // checksum
    f.extend_from_slice(payload);
    f
}

/// TCP header without options + payload.
pub fn tcp_bytes(
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = sport.to_be_bytes().to_vec();
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&ack.to_be_bytes());
    f.extend_from_slice(&[0x50, flags.0]); // data offset 5 words; flags
    f.extend_from_slice(&[0xff, 0xff]); // window
    f.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    f.extend_from_slice(payload);
    f
}

pub fn ipv4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4_raw(src, dst, 17, 0, 0, false, &udp_bytes(sport, dport, payload))
}

pub fn ipv4_tcp(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: TcpFlags,
    payload: &[u8],
) -> Vec<u8> {
    ipv4_raw(
        src,
        dst,
        6,
        0,
        0,
        false,
        &tcp_bytes(sport, dport, seq, ack, flags, payload),
    )
}

/// Splits an IP payload into IPv4 fragments of `size` bytes (a multiple of 8).
pub fn ipv4_fragments(
    src: [u8; 4],
    dst: [u8; 4],
    id: u16,
    proto: u8,
    payload: &[u8],
    size: usize,
) -> Vec<Vec<u8>> {
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, chunk)| {
            let offset = (i * size) as u16;
            let more = (i + 1) * size < payload.len();
            ipv4_raw(src, dst, proto, id, offset, more, chunk)
        })
        .collect()
}
