//! The run summary printed by `--stats`.

use otwatch_event::{OtEvent, Protocol};
use otwatch_flow::FlowStats;
use otwatch_sinks::kafka::KafkaCounters;

/// Counters of one run, summed over the workers.
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    pub files: u64,
    pub read_errors: u64,
    pub flow: FlowStats,
    /// PDUs per protocol (indexed by `Protocol as usize`), and those of them that
    /// carried anomalies (parse errors).
    pub pdus: [u64; Protocol::ALL.len()],
    pub anomalous: [u64; Protocol::ALL.len()],
    pub events_written: u64,
    pub alerts_written: u64,
    /// Alerts emitted per kind (repeats folded), in the rules' order.
    pub alerts: Vec<(String, u64)>,
    /// The Kafka sink's final counters, when it was used.
    pub kafka: Option<KafkaCounters>,
    /// Decode-only runs: packets that decoded to IP.
    pub decoded: u64,
}

impl RunStats {
    pub fn count_event(&mut self, ev: &OtEvent) {
        let p = ev.protocol() as usize;
        if let Some(n) = self.pdus.get_mut(p) {
            *n += 1;
        }
        if !ev.pdu.anomalies.is_empty() {
            if let Some(n) = self.anomalous.get_mut(p) {
                *n += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &RunStats) {
        self.files += other.files;
        self.read_errors += other.read_errors;
        self.flow.merge(&other.flow);
        for (a, b) in self.pdus.iter_mut().zip(other.pdus) {
            *a += b;
        }
        for (a, b) in self.anomalous.iter_mut().zip(other.anomalous) {
            *a += b;
        }
        self.events_written += other.events_written;
        self.decoded += other.decoded;
    }

    /// Writes the summary to stderr, one `key: value` line each, so that scripts can
    /// grep it.
    #[allow(clippy::print_stderr)] // --stats is a report to stderr by contract.
    pub fn print_summary(&self) {
        let f = &self.flow;
        let mut lines = vec![
            format!("files: {}", self.files),
            format!("packets: {}", f.packets),
            format!("bytes: {}", f.bytes),
            format!("non_ip_packets: {}", f.non_ip),
            format!("decode_errors: {}", f.decode_errors),
            format!("flows: {}", f.flows_created),
            format!("flows_timed_out: {}", f.flows_timed_out),
            format!("flows_evicted: {}", f.flows_evicted),
            format!(
                "tcp_retransmitted_segments: {}",
                f.tcp_retransmitted_segments
            ),
            format!("tcp_out_of_order_segments: {}", f.tcp_out_of_order_segments),
            format!("tcp_gaps: {}", f.tcp_gaps),
            format!("reassembly_bytes_dropped: {}", f.reassembly_bytes_dropped),
            format!("fragments_reassembled: {}", f.fragments_reassembled),
            format!("fragments_dropped: {}", f.fragments_dropped),
        ];
        if self.decoded > 0 {
            lines.push(format!("decoded_ip_packets: {}", self.decoded));
        }
        for p in Protocol::ALL {
            let n = self.pdus.get(p as usize).copied().unwrap_or(0);
            if n > 0 {
                lines.push(format!("pdus.{}: {n}", p.as_str()));
                let bad = self.anomalous.get(p as usize).copied().unwrap_or(0);
                lines.push(format!("parse_errors.{}: {bad}", p.as_str()));
            }
        }
        lines.push(format!("events_written: {}", self.events_written));
        lines.push(format!("alerts: {}", self.alerts_written));
        for (kind, n) in &self.alerts {
            if *n > 0 {
                lines.push(format!("alerts.{kind}: {n}"));
            }
        }
        if let Some(k) = &self.kafka {
            lines.push(format!("kafka.produced: {}", k.produced));
            lines.push(format!("kafka.delivered: {}", k.delivered));
            lines.push(format!("kafka.failed: {}", k.failed));
            lines.push(format!("kafka.alerts_delivered: {}", k.alerts_delivered));
            lines.push(format!("kafka.spooled: {}", k.spooled));
            lines.push(format!("kafka.spool_bytes: {}", k.spool_bytes));
            lines.push(format!("kafka.dropped_events: {}", k.dropped_events));
            lines.push(format!("kafka.dropped_alerts: {}", k.dropped_alerts));
            lines.push(format!("kafka.producer_rebuilds: {}", k.producer_rebuilds));
        }
        lines.push(format!("read_errors: {}", self.read_errors));
        for l in lines {
            eprintln!("{l}");
        }
    }
}
