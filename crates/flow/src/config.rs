//! Every limit of the flow layer, as one config struct (no globals).

use std::time::Duration;

use otwatch_event::Transport;

/// Limits and timeouts of a [`crate::FlowTable`]. Times are *packet* times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowConfig {
    /// Flows tracked at once; beyond it the least recently seen flow is evicted.
    pub max_flows: usize,
    /// A TCP flow idle this long ends (OT sessions are long-lived but chatty).
    pub tcp_idle_timeout: Duration,
    /// A UDP flow idle this long ends.
    pub udp_idle_timeout: Duration,
    /// A TCP flow closed by FIN/RST is remembered this long, so that its last ACKs and
    /// retransmissions do not start a new flow (and yield their PDUs again). Default
    /// 240 s, TIME-WAIT's 2 MSL (RFC 9293, 3.4.2): retransmissions back off to
    /// minutes. A full table evicts closed flows first.
    pub tcp_closed_timeout: Duration,
    /// Bytes buffered per direction of a TCP flow (the unconsumed tail of a PDU split
    /// across segments plus out-of-order segments). Hitting it is a gap.
    pub max_buffered_per_direction: usize,
    /// Bytes buffered by all flows together (buffer capacity is counted). Hitting it is
    /// a gap for the direction that needed more.
    pub max_buffered_total: usize,
    /// Out-of-order segments held per direction.
    pub max_ooo_segments_per_direction: usize,
    /// IP datagrams being reassembled at once; beyond it the oldest is dropped.
    pub max_fragmented_datagrams: usize,
    /// Fragments accepted for one datagram; beyond it the datagram is dropped.
    pub max_fragments_per_datagram: usize,
    /// Bytes held by all datagrams being reassembled.
    pub max_fragment_bytes_total: usize,
    /// A datagram not complete this long after its first fragment is dropped.
    pub fragment_timeout: Duration,
    /// Idle flows examined per packet by the periodic sweep (per transport); 0 turns
    /// the sweep off (flows then end only lazily, by eviction, or at the end of input).
    pub sweep_per_packet: usize,
    /// Server ports of the OT protocols: when the handshake was not seen, the side on
    /// one of these is the responder.
    pub well_known_ports: Vec<(Transport, u16)>,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            max_flows: 262_144,
            tcp_idle_timeout: Duration::from_secs(600),
            udp_idle_timeout: Duration::from_secs(60),
            tcp_closed_timeout: Duration::from_secs(240),
            max_buffered_per_direction: 64 * 1024,
            max_buffered_total: 64 * 1024 * 1024,
            max_ooo_segments_per_direction: 64,
            max_fragmented_datagrams: 1024,
            max_fragments_per_datagram: 64,
            max_fragment_bytes_total: 8 * 1024 * 1024,
            fragment_timeout: Duration::from_secs(30),
            sweep_per_packet: 2,
            well_known_ports: vec![
                (Transport::Tcp, 502),   // Modbus/TCP
                (Transport::Tcp, 102),   // ISO-TSAP: S7comm
                (Transport::Tcp, 20000), // DNP3
                (Transport::Udp, 20000), // DNP3
                (Transport::Tcp, 4840),  // OPC UA binary
            ],
        }
    }
}

impl FlowConfig {
    pub(crate) fn is_well_known(&self, transport: Transport, port: u16) -> bool {
        self.well_known_ports.contains(&(transport, port))
    }
}

/// A `Duration` as nanoseconds of packet time (saturating).
pub(crate) fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}
