//! Counters of the flow layer.

use otwatch_event::Protocol;

/// Counters of one [`crate::FlowTable`]; [`FlowStats::merge`] sums the workers'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Packets given to `process`.
    pub packets: u64,
    /// Their captured bytes.
    pub bytes: u64,
    /// Frames that carry no IP (ARP, LLDP, ...).
    pub non_ip: u64,
    /// Frames that could not be decoded (all causes).
    pub decode_errors: u64,
    /// ... of which the frame ended inside a header or before an announced length.
    pub decode_truncated: u64,
    /// ... of which a header's content was invalid.
    pub decode_malformed: u64,
    /// IP packets that are neither TCP nor UDP (ICMP, ...).
    pub other_ip: u64,
    pub flows_created: u64,
    /// Flows in the table and not ended.
    pub flows_active: u64,
    /// Flows ended, whatever the cause (FIN/RST, timeout, eviction, end of input).
    pub flows_ended: u64,
    /// ... of which by idle timeout.
    pub flows_timed_out: u64,
    /// ... of which evicted because the table was full.
    pub flows_evicted: u64,
    /// Segments whose data had all been seen already (dropped, never redelivered).
    pub tcp_retransmitted_segments: u64,
    /// Segments that arrived ahead of a hole and were held.
    pub tcp_out_of_order_segments: u64,
    /// Segments that partially overlapped data already seen (trimmed: first copy wins).
    pub tcp_overlaps: u64,
    /// Holes skipped (`on_gap` calls): lost bytes or a buffer bound.
    pub tcp_gaps: u64,
    /// RST segments ignored: their sequence number is outside any window of their
    /// sender's (forged, or from another connection).
    pub tcp_rst_ignored: u64,
    /// Bytes dropped because a buffer bound was hit.
    pub reassembly_bytes_dropped: u64,
    /// IP datagrams reassembled from fragments.
    pub fragments_reassembled: u64,
    /// Fragments dropped (bounds, timeout, conflicting or malformed fragments).
    pub fragments_dropped: u64,
    /// PDUs produced by the handlers, whether or not a PDU filter made them events.
    pub pdus: u64,
    /// ... per protocol (indexed by `Protocol as usize`), and those of them that
    /// carried anomalies (parse errors).
    pub pdus_by_protocol: [u64; Protocol::ALL.len()],
    pub anomalous_by_protocol: [u64; Protocol::ALL.len()],
    /// ... of which a PDU filter kept from becoming events
    /// ([`crate::FlowTable::set_pdu_filter`]).
    pub pdus_filtered: u64,
}

impl FlowStats {
    /// Adds `other`'s counters to these.
    pub fn merge(&mut self, other: &FlowStats) {
        let FlowStats {
            packets,
            bytes,
            non_ip,
            decode_errors,
            decode_truncated,
            decode_malformed,
            other_ip,
            flows_created,
            flows_active,
            flows_ended,
            flows_timed_out,
            flows_evicted,
            tcp_retransmitted_segments,
            tcp_out_of_order_segments,
            tcp_overlaps,
            tcp_gaps,
            tcp_rst_ignored,
            reassembly_bytes_dropped,
            fragments_reassembled,
            fragments_dropped,
            pdus,
            pdus_by_protocol,
            anomalous_by_protocol,
            pdus_filtered,
        } = other;
        self.packets += packets;
        self.bytes += bytes;
        self.non_ip += non_ip;
        self.decode_errors += decode_errors;
        self.decode_truncated += decode_truncated;
        self.decode_malformed += decode_malformed;
        self.other_ip += other_ip;
        self.flows_created += flows_created;
        self.flows_active += flows_active;
        self.flows_ended += flows_ended;
        self.flows_timed_out += flows_timed_out;
        self.flows_evicted += flows_evicted;
        self.tcp_retransmitted_segments += tcp_retransmitted_segments;
        self.tcp_out_of_order_segments += tcp_out_of_order_segments;
        self.tcp_overlaps += tcp_overlaps;
        self.tcp_gaps += tcp_gaps;
        self.tcp_rst_ignored += tcp_rst_ignored;
        self.reassembly_bytes_dropped += reassembly_bytes_dropped;
        self.fragments_reassembled += fragments_reassembled;
        self.fragments_dropped += fragments_dropped;
        self.pdus += pdus;
        for (a, b) in self.pdus_by_protocol.iter_mut().zip(pdus_by_protocol) {
            *a += b;
        }
        for (a, b) in self
            .anomalous_by_protocol
            .iter_mut()
            .zip(anomalous_by_protocol)
        {
            *a += b;
        }
        self.pdus_filtered += pdus_filtered;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_every_field() {
        let mut a = FlowStats {
            packets: 1,
            pdus: 2,
            tcp_gaps: 3,
            pdus_by_protocol: [2, 0, 0, 0, 0],
            anomalous_by_protocol: [0, 1, 0, 0, 0],
            pdus_filtered: 1,
            ..FlowStats::default()
        };
        let b = FlowStats {
            packets: 10,
            pdus: 20,
            flows_evicted: 5,
            pdus_by_protocol: [10, 0, 0, 10, 0],
            anomalous_by_protocol: [0, 2, 0, 0, 0],
            pdus_filtered: 7,
            ..FlowStats::default()
        };
        a.merge(&b);
        assert_eq!(
            a,
            FlowStats {
                packets: 11,
                pdus: 22,
                tcp_gaps: 3,
                flows_evicted: 5,
                pdus_by_protocol: [12, 0, 0, 10, 0],
                anomalous_by_protocol: [0, 3, 0, 0, 0],
                pdus_filtered: 8,
                ..FlowStats::default()
            }
        );
    }
}
