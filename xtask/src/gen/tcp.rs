//! TCP connections and the captures they are recorded into.
//!
//! A [`Conn`] keeps both ends' sequence numbers and IP ids so that scenarios can say
//! "the client sends these bytes" and get a correct segment, or build a segment at any
//! sequence number (retransmission, overlap, reordering) and push it when they like.
//! A [`Capture`] keeps the frames with their timestamps and, for each frame, the PDUs it
//! completes: that is where the expected events come from.

use std::fs;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{bail, Context as _};

use super::expect::{Event, ExpPdu, FlowExp};
use super::modbus::{Adu, Pdu};
use super::wire::{
    build_frame, build_udp_frame, Host, PcapWriter, Segment, ACK, FIN, MSS_1460, PSH, SYN,
};

/// 2026-11-20T10:00:00Z in microseconds since the epoch: every capture starts here.
pub const T0: u64 = 1_795_168_800_000_000;
pub const MS: u64 = 1_000;
pub const SEC: u64 = 1_000_000;

/// Who sends a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// Frames in capture order and the events they complete.
#[derive(Debug, Default)]
pub struct Capture {
    packets: Vec<(u64, Vec<u8>)>,
    events: Vec<Event>,
}

impl Capture {
    pub fn new() -> Self {
        Capture::default()
    }

    /// Appends a frame captured at `ts` (µs), which completes `pdus` (in stream order).
    pub fn push(&mut self, ts: u64, frame: Vec<u8>, flow: &FlowExp, pdus: Vec<Pdu>) {
        self.push_events(
            ts,
            frame,
            flow,
            pdus.into_iter().map(ExpPdu::Modbus).collect(),
        );
    }

    /// Appends a frame captured at `ts` (µs), which completes `pdus` of any protocol.
    pub fn push_events(&mut self, ts: u64, frame: Vec<u8>, flow: &FlowExp, pdus: Vec<ExpPdu>) {
        self.packets.push((ts, frame));
        self.events.extend(pdus.into_iter().map(|pdu| Event {
            ts_micros: ts,
            flow: flow.clone(),
            pdu,
        }));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Interleaves several captures into one timeline by timestamp. Packets of
    /// different captures must not share a timestamp (that would make the order of
    /// their events ambiguous).
    pub fn merge(parts: Vec<Capture>) -> anyhow::Result<Capture> {
        let mut packets = Vec::new();
        let mut events = Vec::new();
        for p in parts {
            packets.extend(p.packets);
            events.extend(p.events);
        }
        // Stable sorts: within one packet, events keep their stream order.
        packets.sort_by_key(|(ts, _)| *ts);
        events.sort_by_key(|e| e.ts_micros);
        let merged = Capture { packets, events };
        merged.check_times()?;
        Ok(merged)
    }

    /// Timestamps strictly increase: the tests map events to frames by time.
    pub fn check_times(&self) -> anyhow::Result<()> {
        for w in self.packets.windows(2) {
            if let [(a, _), (b, _)] = w {
                if b <= a {
                    bail!("packet timestamps not strictly increasing at {b} µs");
                }
            }
        }
        Ok(())
    }

    /// Writes only `<name>.pcap` into `dir` (creating it).
    pub fn write_pcap(&self, dir: &Path, name: &str) -> anyhow::Result<()> {
        self.check_times()
            .with_context(|| format!("capture {name}"))?;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let pcap = dir.join(format!("{name}.pcap"));
        let file =
            fs::File::create(&pcap).with_context(|| format!("creating {}", pcap.display()))?;
        let mut w = PcapWriter::new(BufWriter::new(file))?;
        for (ts, frame) in &self.packets {
            w.write_packet(*ts, frame)?;
        }
        std::io::Write::flush(&mut w.into_inner())?;
        Ok(())
    }

    /// Writes `<name>.pcap` and `<name>.expected.jsonl` into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> anyhow::Result<()> {
        self.check_times()
            .with_context(|| format!("capture {name}"))?;
        self.write_pcap(dir, name)?;
        let mut jsonl = String::new();
        for e in &self.events {
            jsonl.push_str(&e.json_line());
            jsonl.push('\n');
        }
        let exp = dir.join(format!("{name}.expected.jsonl"));
        fs::write(&exp, jsonl).with_context(|| format!("writing {}", exp.display()))?;
        Ok(())
    }
}

/// One TCP connection between a client (Modbus client, S7 PG/HMI) and a server.
#[derive(Debug)]
pub struct Conn {
    client: Host,
    server: Host,
    client_port: u16,
    server_port: u16,
    /// Next sequence number each side will send.
    client_next: u32,
    server_next: u32,
    client_ip_id: u16,
    server_ip_id: u16,
    pub flow: FlowExp,
}

impl Conn {
    /// A connection whose SYN will carry `client_isn` and SYN-ACK `server_isn`.
    pub fn new(
        client: Host,
        client_port: u16,
        server: Host,
        server_port: u16,
        client_isn: u32,
        server_isn: u32,
    ) -> Self {
        let o = client.ip.octets();
        let p = server.ip.octets();
        Conn {
            client,
            server,
            client_port,
            server_port,
            client_next: client_isn,
            server_next: server_isn,
            // Arbitrary but fixed starting IP ids, different per host.
            client_ip_id: u16::from_be_bytes([o[2], o[3]]).wrapping_mul(251),
            server_ip_id: u16::from_be_bytes([p[2], p[3]]).wrapping_mul(97),
            flow: FlowExp::tcp(client.ip, client_port, server.ip, server_port),
        }
    }

    pub fn next_seq(&self, from: Side) -> u32 {
        match from {
            Side::Client => self.client_next,
            Side::Server => self.server_next,
        }
    }

    /// Moves `from`'s next sequence number on by `n` (bytes sent out of band with
    /// [`Conn::frame`]).
    pub fn advance(&mut self, from: Side, n: usize) {
        let n = n as u32;
        match from {
            Side::Client => self.client_next = self.client_next.wrapping_add(n),
            Side::Server => self.server_next = self.server_next.wrapping_add(n),
        }
    }

    /// A frame from `from` at sequence number `seq`, acknowledging everything the other
    /// side has sent. Does not advance sequence numbers.
    pub fn frame(&mut self, from: Side, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sp, dp, ack, window, id) = match from {
            Side::Client => (
                self.client,
                self.server,
                self.client_port,
                self.server_port,
                self.server_next,
                64_240,
                &mut self.client_ip_id,
            ),
            Side::Server => (
                self.server,
                self.client,
                self.server_port,
                self.client_port,
                self.client_next,
                8_192,
                &mut self.server_ip_id,
            ),
        };
        *id = id.wrapping_add(1);
        let syn = flags & SYN != 0;
        let mut out = Vec::with_capacity(64 + payload.len());
        build_frame(
            &Segment {
                src,
                dst,
                src_port: sp,
                dst_port: dp,
                ip_id: *id,
                seq,
                ack: if flags & ACK != 0 { ack } else { 0 },
                flags,
                window,
                options: if syn { &MSS_1460 } else { &[] },
                payload,
            },
            &mut out,
        );
        out
    }

    /// SYN at `t`, SYN-ACK 180 µs later, ACK 350 µs later.
    pub fn handshake(&mut self, cap: &mut Capture, t: u64) {
        let f = self.frame(Side::Client, self.client_next, SYN, &[]);
        self.advance(Side::Client, 1);
        cap.push(t, f, &self.flow, vec![]);
        let f = self.frame(Side::Server, self.server_next, SYN | ACK, &[]);
        self.advance(Side::Server, 1);
        cap.push(t + 180, f, &self.flow, vec![]);
        let f = self.frame(Side::Client, self.client_next, ACK, &[]);
        cap.push(t + 350, f, &self.flow, vec![]);
    }

    /// A PSH/ACK segment with `payload` at `from`'s next sequence number, completing
    /// `pdus`.
    pub fn send(&mut self, cap: &mut Capture, t: u64, from: Side, payload: &[u8], pdus: Vec<Pdu>) {
        let f = self.frame(from, self.next_seq(from), PSH | ACK, payload);
        self.advance(from, payload.len());
        cap.push(t, f, &self.flow, pdus);
    }

    /// A PSH/ACK segment with `payload` at `from`'s next sequence number, completing
    /// `pdus` of any protocol.
    pub fn send_events(
        &mut self,
        cap: &mut Capture,
        t: u64,
        from: Side,
        payload: &[u8],
        pdus: Vec<ExpPdu>,
    ) {
        let f = self.frame(from, self.next_seq(from), PSH | ACK, payload);
        self.advance(from, payload.len());
        cap.push_events(t, f, &self.flow, pdus);
    }

    /// One ADU in one segment.
    pub fn send_adu(&mut self, cap: &mut Capture, t: u64, adu: &Adu) {
        let from = match adu.pdu.dir {
            super::modbus::Dir::ToServer => Side::Client,
            super::modbus::Dir::ToClient => Side::Server,
        };
        self.send(cap, t, from, &adu.bytes, vec![adu.pdu.clone()]);
    }

    /// Request at `t`, response `rtt` µs later.
    pub fn exchange(&mut self, cap: &mut Capture, t: u64, rtt: u64, req: &Adu, rsp: &Adu) {
        self.send_adu(cap, t, req);
        self.send_adu(cap, t + rtt, rsp);
    }

    /// A pure ACK from `from`.
    pub fn ack(&mut self, cap: &mut Capture, t: u64, from: Side) {
        let f = self.frame(from, self.next_seq(from), ACK, &[]);
        cap.push(t, f, &self.flow, vec![]);
    }

    /// Client FIN at `t`, server FIN 200 µs later, client's last ACK 400 µs later.
    pub fn close(&mut self, cap: &mut Capture, t: u64) {
        let f = self.frame(Side::Client, self.client_next, FIN | ACK, &[]);
        self.advance(Side::Client, 1);
        cap.push(t, f, &self.flow, vec![]);
        let f = self.frame(Side::Server, self.server_next, FIN | ACK, &[]);
        self.advance(Side::Server, 1);
        cap.push(t + 200, f, &self.flow, vec![]);
        let f = self.frame(Side::Client, self.client_next, ACK, &[]);
        cap.push(t + 400, f, &self.flow, vec![]);
    }
}

/// One UDP conversation between a client (a DNP3 master) and a server: datagrams in
/// both directions, each side with its own IP ids.
#[derive(Debug)]
pub struct UdpConv {
    client: Host,
    server: Host,
    client_port: u16,
    server_port: u16,
    client_ip_id: u16,
    server_ip_id: u16,
    pub flow: FlowExp,
}

impl UdpConv {
    pub fn new(client: Host, client_port: u16, server: Host, server_port: u16) -> Self {
        let o = client.ip.octets();
        let p = server.ip.octets();
        UdpConv {
            client,
            server,
            client_port,
            server_port,
            client_ip_id: u16::from_be_bytes([o[2], o[3]]).wrapping_mul(251),
            server_ip_id: u16::from_be_bytes([p[2], p[3]]).wrapping_mul(97),
            flow: FlowExp::udp(client.ip, client_port, server.ip, server_port),
        }
    }

    /// One datagram with `payload` from `from` at `t`, completing `pdus`.
    pub fn send_events(
        &mut self,
        cap: &mut Capture,
        t: u64,
        from: Side,
        payload: &[u8],
        pdus: Vec<ExpPdu>,
    ) {
        let (src, dst, ports, id) = match from {
            Side::Client => (
                self.client,
                self.server,
                (self.client_port, self.server_port),
                &mut self.client_ip_id,
            ),
            Side::Server => (
                self.server,
                self.client,
                (self.server_port, self.client_port),
                &mut self.server_ip_id,
            ),
        };
        *id = id.wrapping_add(1);
        let mut f = Vec::with_capacity(64 + payload.len());
        build_udp_frame(src, dst, ports, *id, payload, &mut f);
        cap.push_events(t, f, &self.flow, pdus);
    }
}
