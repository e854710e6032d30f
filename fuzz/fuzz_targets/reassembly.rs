//! Fuzzes the flow table and TCP reassembly with arbitrary segment sequences.
//!
//! Input layout: 4 control bytes, then records.
//!
//! * control[0..4]: how many bytes the handler consumes per call, in turn (0 = "need
//!   more", so partial PDUs pile up against the buffer bound).
//! * each record: `kind` (bit 0 direction, bit 1 SYN, bit 2 FIN, bit 3 RST, bit 4 ACK,
//!   bit 5 second client port, bit 6 time jump of 100 s and a clock tick, bit 7 send
//!   as two IPv4 fragments), `seq` (u16 LE, offset from the direction's ISN, which
//!   sits just below 2^32 so that streams wrap), `ack` (u8, x 64, offset from the
//!   peer's ISN), `len` (payload length, cut to what is left).
//!
//! Small limits make every bound reachable. Silent; asserts the table's accounting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otwatch_event::{
    Anomalies, Direction, FlowMeta, ModbusInfo, Native, Operation, Pdu, PduSink, Timestamp,
};
use otwatch_flow::{FlowConfig, FlowTable, HandlerFactory, LinkType, PacketIn, StreamHandler};

const ISN: [u32; 2] = [0xffff_ff00, 0x7fff_fff0];

struct Eat {
    pattern: [u8; 4],
    turn: usize,
}

impl StreamHandler for Eat {
    fn on_data(&mut self, dir: Direction, data: &[u8], out: &mut dyn PduSink) -> usize {
        let want = usize::from(self.pattern[self.turn % 4]);
        self.turn = self.turn.wrapping_add(1);
        let n = want.min(data.len());
        if n > 0 {
            out.push(Pdu {
                direction: dir,
                is_response: false,
                operation: Operation::Other,
                anomalies: Anomalies::empty(),
                native: Native::Modbus(ModbusInfo::default()),
            });
        }
        n
    }
    fn on_gap(&mut self, _dir: Direction, _out: &mut dyn PduSink) {}
}

struct Factory {
    pattern: [u8; 4],
}

impl HandlerFactory for Factory {
    type Handler = Eat;
    fn classify(&mut self, _flow: &FlowMeta, _dir: Direction, first: &[u8]) -> Option<Eat> {
        // Some flows get no handler at all.
        (first.first() != Some(&0xee)).then_some(Eat {
            pattern: self.pattern,
            turn: 0,
        })
    }
}

/// An IPv4 header (no options) in front of `payload`.
fn ipv4(src: [u8; 4], dst: [u8; 4], id: u16, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&(20 + payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, 6, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

fuzz_target!(|data: &[u8]| {
    let Some((pattern, mut rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let config = FlowConfig {
        max_flows: 2,
        max_buffered_per_direction: 512,
        max_buffered_total: 2048,
        max_ooo_segments_per_direction: 4,
        max_fragmented_datagrams: 2,
        max_fragments_per_datagram: 4,
        ..FlowConfig::default()
    };
    let mut table = FlowTable::new(config, Factory { pattern: *pattern });
    let mut events = Vec::new();
    let mut now: i64 = 1_000_000_000_000;
    let mut index = 0u64;
    while let Some((head, tail)) = rest.split_first_chunk::<5>() {
        let [kind, seq_lo, seq_hi, ack, len] = *head;
        let len = usize::from(len).min(tail.len());
        let (payload, tail) = tail.split_at(len);
        rest = tail;

        let dir = usize::from(kind & 1);
        let client_port: u16 = if kind & 0x20 != 0 { 40001 } else { 40000 };
        let (src, dst, sport, dport) = match dir {
            0 => ([10, 0, 0, 1], [10, 0, 0, 2], client_port, 502),
            _ => ([10, 0, 0, 2], [10, 0, 0, 1], 502, client_port),
        };
        let seq = ISN[dir].wrapping_add(u32::from(u16::from_le_bytes([seq_lo, seq_hi])));
        let ack = ISN[1 - dir].wrapping_add(u32::from(ack) * 64);
        let flags = ((kind >> 1) & 0x01) << 1 // SYN
            | ((kind >> 2) & 0x01) // FIN
            | ((kind >> 3) & 0x01) << 2 // RST
            | ((kind >> 4) & 0x01) << 4; // ACK
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);

        if kind & 0x40 != 0 {
            now += 100_000_000_000;
            // A clock tick at the new time, as the packet source sends them: it ends
            // the flows idle past their timeout (and their buffers with them).
            table.tick(index, Timestamp::from_nanos(now), &mut events);
            index += 1;
        }
        now += 1_000;
        let packets = if kind & 0x80 != 0 && tcp.len() > 16 {
            // Two fragments: 16 bytes, then the rest (reversed when the seq is odd).
            let id = u16::from_le_bytes([seq_lo, seq_hi]);
            let a = ipv4(src, dst, id, 0x2000, &tcp[..16]);
            let b = ipv4(src, dst, id, 2, &tcp[16..]);
            if seq_lo & 1 == 0 {
                vec![a, b]
            } else {
                vec![b, a]
            }
        } else {
            vec![ipv4(src, dst, 0, 0, &tcp)]
        };
        for p in &packets {
            let pkt = PacketIn {
                index,
                ts: Timestamp::from_nanos(now),
                linktype: LinkType::RawIp,
                data: p,
            };
            table.process(&pkt, &mut events);
            index += 1;
        }
        assert!(table.buffered_bytes() <= 2048 + 2 * 512 + 2 * 65_536);
        events.clear();
    }
    table.finish(&mut events);
    assert_eq!(table.buffered_bytes(), 0);
    assert!(table.is_empty());
    let s = table.stats();
    assert_eq!(s.flows_created, s.flows_ended);
    assert_eq!(s.flows_active, 0);
});
