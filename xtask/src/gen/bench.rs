//! The benchmark capture: many packets of Modbus polling, generated rather than stored.
//!
//! 50 long-lived connections (5 SCADA clients x 10 PLCs), handshakes first and never
//! closed, then request/response traffic: FC3/FC4/FC1 reads with about 2% writes
//! (FC6/FC16), frames of 60..=200 bytes, one packet per millisecond. A fixed-seed PRNG
//! makes the file byte-identical on every run; one frame buffer and one payload buffer
//! are reused, so the cost per packet is building ~100 bytes and one buffered write.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::Context as _;

use super::tcp::{MS, T0};
use super::wire::{build_frame, Host, PcapWriter, Segment, ACK, MSS_1460, PSH, SYN};

const CONNS: usize = 50;
const CLIENTS: usize = 5;

/// SplitMix64: tiny, fast, and the same on every platform.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `lo..=hi` for traffic shaping.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the server owes its client.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// FC 1, 3 or 4 with the requested quantity.
    Read { function: u8, quantity: u16 },
    /// FC 6: the response echoes address and value.
    WriteSingle { address: u16, value: u16 },
    /// FC 16: the response repeats address and quantity.
    WriteMulti { address: u16, quantity: u16 },
}

#[derive(Debug)]
struct BenchConn {
    client: Host,
    server: Host,
    client_port: u16,
    client_next: u32,
    server_next: u32,
    client_ip_id: u16,
    server_ip_id: u16,
    tid: u16,
    pending: Option<Pending>,
    server_port: u16,
}

/// What the benchmark capture carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    /// Modbus/TCP on port 502.
    Modbus,
    /// The same packets with the servers on port 5020 and the first four octets of
    /// every payload (MBAP transaction and protocol ids) set to 0xFF, so that neither
    /// a port nor a content probe gives the flows a dissector: the reference for what
    /// the flow layer costs alone.
    Unclaimed,
}

impl BenchConn {
    /// Builds a segment from the client (`to_server`) or the server into `frame`, and
    /// advances that side's sequence number by the payload length (and by one for SYN).
    fn segment(&mut self, to_server: bool, flags: u8, payload: &[u8], frame: &mut Vec<u8>) {
        let syn = flags & SYN != 0;
        let seg = if to_server {
            self.client_ip_id = self.client_ip_id.wrapping_add(1);
            Segment {
                src: self.client,
                dst: self.server,
                src_port: self.client_port,
                dst_port: self.server_port,
                ip_id: self.client_ip_id,
                seq: self.client_next,
                ack: if flags & ACK != 0 {
                    self.server_next
                } else {
                    0
                },
                flags,
                window: 64_240,
                options: if syn { &MSS_1460 } else { &[] },
                payload,
            }
        } else {
            self.server_ip_id = self.server_ip_id.wrapping_add(1);
            Segment {
                src: self.server,
                dst: self.client,
                src_port: self.server_port,
                dst_port: self.client_port,
                ip_id: self.server_ip_id,
                seq: self.server_next,
                ack: self.client_next,
                flags,
                window: 8_192,
                options: if syn { &MSS_1460 } else { &[] },
                payload,
            }
        };
        build_frame(&seg, frame);
        let adv = payload.len() as u32 + u32::from(syn);
        if to_server {
            self.client_next = self.client_next.wrapping_add(adv);
        } else {
            self.server_next = self.server_next.wrapping_add(adv);
        }
    }
}

/// Appends an MBAP header for a PDU of `pdu_len` bytes (unit 1).
fn put_mbap(out: &mut Vec<u8>, tid: u16, pdu_len: usize) {
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&((pdu_len + 1) as u16).to_be_bytes());
    out.push(1);
}

/// Builds the next request of `c` into `p` and records what it is owed.
fn request(c: &mut BenchConn, rng: &mut Rng, p: &mut Vec<u8>) {
    p.clear();
    c.tid = c.tid.wrapping_add(1);
    let roll = rng.range(0, 999);
    let address = rng.range(0, 999) as u16;
    let pending = if roll < 10 {
        let value = rng.next() as u16;
        put_mbap(p, c.tid, 5);
        p.push(6);
        p.extend_from_slice(&address.to_be_bytes());
        p.extend_from_slice(&value.to_be_bytes());
        Pending::WriteSingle { address, value }
    } else if roll < 20 {
        let quantity = rng.range(1, 20) as u16;
        put_mbap(p, c.tid, 6 + 2 * usize::from(quantity));
        p.push(16);
        p.extend_from_slice(&address.to_be_bytes());
        p.extend_from_slice(&quantity.to_be_bytes());
        p.push((quantity * 2) as u8);
        for _ in 0..quantity {
            p.extend_from_slice(&(rng.next() as u16).to_be_bytes());
        }
        Pending::WriteMulti { address, quantity }
    } else {
        let (function, quantity) = if roll < 510 {
            (3, rng.range(1, 60) as u16)
        } else if roll < 810 {
            (4, rng.range(1, 40) as u16)
        } else {
            (1, rng.range(1, 400) as u16)
        };
        put_mbap(p, c.tid, 5);
        p.push(function);
        p.extend_from_slice(&address.to_be_bytes());
        p.extend_from_slice(&quantity.to_be_bytes());
        Pending::Read { function, quantity }
    };
    c.pending = Some(pending);
}

/// Builds the response to `pending` into `p`.
fn response(tid: u16, pending: Pending, rng: &mut Rng, p: &mut Vec<u8>) {
    p.clear();
    match pending {
        Pending::Read { function, quantity } => {
            let bytes = if function == 1 {
                usize::from(quantity).div_ceil(8)
            } else {
                2 * usize::from(quantity)
            };
            put_mbap(p, tid, 2 + bytes);
            p.push(function);
            p.push(bytes as u8);
            // Eight bytes per PRNG call: this loop is most of the generator's work.
            let mut left = bytes;
            while left > 0 {
                let chunk = rng.next().to_le_bytes();
                let n = left.min(8);
                p.extend_from_slice(&chunk[..n]);
                left -= n;
            }
        }
        Pending::WriteSingle { address, value } => {
            put_mbap(p, tid, 5);
            p.push(6);
            p.extend_from_slice(&address.to_be_bytes());
            p.extend_from_slice(&value.to_be_bytes());
        }
        Pending::WriteMulti { address, quantity } => {
            put_mbap(p, tid, 5);
            p.push(16);
            p.extend_from_slice(&address.to_be_bytes());
            p.extend_from_slice(&quantity.to_be_bytes());
        }
    }
}

/// Writes the benchmark capture: handshakes, then traffic until at least `packets`
/// packets are written.
pub fn write_bench(path: &Path, packets: u64, traffic: Traffic) -> anyhow::Result<()> {
    let server_port = match traffic {
        Traffic::Modbus => 502,
        Traffic::Unclaimed => 5020,
    };
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = PcapWriter::new(BufWriter::with_capacity(1 << 20, file))?;
    let mut rng = Rng(0x6f74_7761_7463_6821);
    let mut conns: Vec<BenchConn> = (0..CONNS)
        .map(|i| BenchConn {
            client: Host::new(Ipv4Addr::new(10, 40, 1, 11 + (i % CLIENTS) as u8), 128),
            server: Host::new(Ipv4Addr::new(10, 30, 1, 10 + (i / CLIENTS) as u8), 64),
            client_port: 50_000 + i as u16,
            client_next: rng.next() as u32,
            server_next: rng.next() as u32,
            client_ip_id: rng.next() as u16,
            server_ip_id: rng.next() as u16,
            tid: rng.next() as u16,
            pending: None,
            server_port,
        })
        .collect();
    let mut frame = Vec::with_capacity(256);
    let mut payload = Vec::with_capacity(256);
    let mut written = 0u64;
    let mut emit = |w: &mut PcapWriter<_>, frame: &[u8]| -> std::io::Result<u64> {
        w.write_packet(T0 + written * MS, frame)?;
        written += 1;
        Ok(written)
    };
    let mut total = 0;
    for c in &mut conns {
        c.segment(true, SYN, &[], &mut frame);
        emit(&mut w, &frame)?;
        c.segment(false, SYN | ACK, &[], &mut frame);
        emit(&mut w, &frame)?;
        c.segment(true, ACK, &[], &mut frame);
        total = emit(&mut w, &frame)?;
    }
    while total < packets {
        let i = (rng.next() % CONNS as u64) as usize;
        let Some(c) = conns.get_mut(i) else { continue };
        let to_server = match c.pending.take() {
            Some(pending) => {
                response(c.tid, pending, &mut rng, &mut payload);
                false
            }
            None => {
                request(c, &mut rng, &mut payload);
                true
            }
        };
        if traffic == Traffic::Unclaimed {
            for b in payload.iter_mut().take(4) {
                *b = 0xFF;
            }
        }
        c.segment(to_server, PSH | ACK, &payload, &mut frame);
        total = emit(&mut w, &frame)?;
    }
    w.into_inner()
        .flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frame lengths and timestamps of a classic pcap file.
    fn records(file: &[u8]) -> Vec<(u32, u32, usize)> {
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= file.len() {
            let u = |o: usize| u32::from_le_bytes(file[o..o + 4].try_into().unwrap());
            let len = u(at + 8) as usize;
            out.push((u(at), u(at + 4), len));
            at += 16 + len;
        }
        assert_eq!(at, file.len(), "no trailing bytes");
        out
    }

    #[test]
    fn bench_capture_shape_and_determinism() {
        let dir = std::env::temp_dir().join(format!("otwatch-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
        write_bench(&a, 5_000, Traffic::Modbus).unwrap();
        write_bench(&b, 5_000, Traffic::Modbus).unwrap();
        let fa = std::fs::read(&a).unwrap();
        assert_eq!(fa, std::fs::read(&b).unwrap(), "deterministic");
        let recs = records(&fa);
        assert_eq!(recs.len(), 5_000);
        for (n, (s, us, len)) in recs.iter().enumerate() {
            let t = u64::from(*s) * 1_000_000 + u64::from(*us);
            assert_eq!(t, T0 + n as u64 * MS, "1 ms apart");
            assert!((60..=200).contains(len), "frame {n} is {len} bytes");
        }
        // Fewer packets than the handshakes take: the handshakes are still whole.
        write_bench(&b, 10, Traffic::Modbus).unwrap();
        assert_eq!(records(&std::fs::read(&b).unwrap()).len(), 3 * CONNS);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
