//! The run summary printed by `--stats`.

use std::fmt::Write as _;

use otwatch_event::{Protocol, Timestamp};
use serde_json::json;

use crate::pipeline::SourceFigures;
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
    /// A worker's flow table counters, PDU counts per protocol included.
    pub fn set_flow(&mut self, flow: &FlowStats) {
        self.flow = flow.clone();
        self.pdus = flow.pdus_by_protocol;
        self.anomalous = flow.anomalous_by_protocol;
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
            format!("tcp_rst_ignored: {}", f.tcp_rst_ignored),
            format!("reassembly_bytes_dropped: {}", f.reassembly_bytes_dropped),
            format!("fragments_reassembled: {}", f.fragments_reassembled),
            format!("fragments_dropped: {}", f.fragments_dropped),
        ];
        if self.decoded > 0 {
            lines.push(format!("decoded_ip_packets: {}", self.decoded));
        }
        // Every protocol and every alert kind, zeros included: a script finds its
        // line whatever the capture held.
        for p in Protocol::ALL {
            let n = self.pdus.get(p as usize).copied().unwrap_or(0);
            lines.push(format!("pdus.{}: {n}", p.as_str()));
            let bad = self.anomalous.get(p as usize).copied().unwrap_or(0);
            lines.push(format!("parse_errors.{}: {bad}", p.as_str()));
        }
        lines.push(format!("events_written: {}", self.events_written));
        lines.push(format!("alerts: {}", self.alerts_written));
        for (kind, n) in &self.alerts {
            lines.push(format!("alerts.{kind}: {n}"));
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

/// The sensor's figures at one moment (`live`): what the stats records, `--stats`
/// and the metrics endpoint report.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub sensor: String,
    pub interface: String,
    /// Wall time of the snapshot.
    pub timestamp: Timestamp,
    pub uptime_secs: f64,
    /// Summed over the workers, with the consumer's counters (alerts, sinks).
    pub run: RunStats,
    pub source: SourceFigures,
    pub reloads: u64,
    pub reload_failures: u64,
    /// Unix time of the last successful reload, and how long loading it took.
    pub last_reload: Option<(f64, f64)>,
}

impl Figures {
    /// The `"event_type": "stats"` record (shared/spec/output.md).
    pub fn to_json(&self) -> Vec<u8> {
        let r = &self.run;
        let f = &r.flow;
        let per_protocol = |counts: &[u64]| {
            let mut m = serde_json::Map::new();
            for p in Protocol::ALL {
                m.insert(
                    p.as_str().to_owned(),
                    counts.get(p as usize).copied().unwrap_or(0).into(),
                );
            }
            serde_json::Value::Object(m)
        };
        let alerts: serde_json::Map<String, serde_json::Value> = r
            .alerts
            .iter()
            .map(|(k, n)| (k.clone(), (*n).into()))
            .collect();
        let kafka = r.kafka.map(|k| {
            json!({
                "produced": k.produced,
                "delivered": k.delivered,
                "failed": k.failed,
                "alerts_delivered": k.alerts_delivered,
                "spooled": k.spooled,
                "spool_bytes": k.spool_bytes,
                "dropped_events": k.dropped_events,
                "dropped_alerts": k.dropped_alerts,
            })
        });
        let s = &self.source;
        // A struct, not `json!`, so the envelope's keys come first, as in events and
        // alerts.
        #[derive(serde::Serialize)]
        struct Record<'a> {
            schema: &'static str,
            event_type: &'static str,
            timestamp: Timestamp,
            sensor: &'a str,
            interface: &'a str,
            uptime_seconds: f64,
            packets: u64,
            bytes: u64,
            drops: serde_json::Value,
            flows: serde_json::Value,
            decode_errors: u64,
            reassembly: serde_json::Value,
            pdus: serde_json::Value,
            parse_errors: serde_json::Value,
            alerts: serde_json::Map<String, serde_json::Value>,
            sinks: serde_json::Value,
            policy: serde_json::Value,
        }
        let record = Record {
            schema: otwatch_event::SCHEMA,
            event_type: "stats",
            timestamp: self.timestamp,
            sensor: &self.sensor,
            interface: &self.interface,
            uptime_seconds: (self.uptime_secs * 1000.0).round() / 1000.0,
            packets: s.packets,
            bytes: s.bytes,
            drops: json!({
                "kernel": s.kernel_dropped,
                "interface": s.interface_dropped,
                "queue": s.queue_dropped_packets,
            }),
            flows: json!({
                "active": f.flows_active,
                "created": f.flows_created,
                "timed_out": f.flows_timed_out,
                "evicted": f.flows_evicted,
            }),
            decode_errors: f.decode_errors,
            reassembly: json!({
                "gaps": f.tcp_gaps,
                "bytes_dropped": f.reassembly_bytes_dropped,
                "out_of_order_segments": f.tcp_out_of_order_segments,
                "retransmitted_segments": f.tcp_retransmitted_segments,
                "rst_ignored": f.tcp_rst_ignored,
            }),
            pdus: per_protocol(&r.pdus),
            parse_errors: per_protocol(&r.anomalous),
            alerts,
            sinks: json!({
                "alerts_written": r.alerts_written,
                "events_written": r.events_written,
                "kafka": kafka,
            }),
            policy: json!({
                "reloads": self.reloads,
                "reload_failures": self.reload_failures,
            }),
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    /// `--stats` in `live`: the run's summary with the capture's own lines first.
    #[allow(clippy::print_stderr)] // --stats is a report to stderr by contract.
    pub fn print_summary(&self) {
        let s = &self.source;
        eprintln!("interface: {}", self.interface);
        eprintln!("uptime_seconds: {:.0}", self.uptime_secs);
        eprintln!("captured_packets: {}", s.packets);
        eprintln!("captured_bytes: {}", s.bytes);
        eprintln!("drops.kernel: {}", s.kernel_dropped);
        eprintln!("drops.interface: {}", s.interface_dropped);
        eprintln!("drops.queue: {}", s.queue_dropped_packets);
        eprintln!("policy_reloads: {}", self.reloads);
        eprintln!("policy_reload_failures: {}", self.reload_failures);
        self.run.print_summary();
    }

    /// Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let r = &self.run;
        let f = &r.flow;
        let s = &self.source;
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP otwatch_{name} {help}");
            let _ = writeln!(out, "# TYPE otwatch_{name} {kind}");
            for (labels, v) in samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "otwatch_{name} {v}");
                } else {
                    let _ = writeln!(out, "otwatch_{name}{{{labels}}} {v}");
                }
            }
        };
        metric(
            "packets_total",
            "counter",
            "Packets captured.",
            &[("", s.packets)],
        );
        metric(
            "bytes_total",
            "counter",
            "Bytes captured.",
            &[("", s.bytes)],
        );
        metric(
            "drops_total",
            "counter",
            "Packets lost, by cause: kernel (capture buffer full), interface (NIC or driver), queue (workers behind).",
            &[
                ("cause=\"kernel\"", s.kernel_dropped),
                ("cause=\"interface\"", s.interface_dropped),
                ("cause=\"queue\"", s.queue_dropped_packets),
            ],
        );
        metric(
            "flows_active",
            "gauge",
            "Flows in the flow tables.",
            &[("", f.flows_active)],
        );
        metric(
            "flows_total",
            "counter",
            "Flows seen.",
            &[("", f.flows_created)],
        );
        metric(
            "flows_ended_total",
            "counter",
            "Flows ended early, by cause: timeout (idle), evicted (table full).",
            &[
                ("cause=\"timeout\"", f.flows_timed_out),
                ("cause=\"evicted\"", f.flows_evicted),
            ],
        );
        metric(
            "reassembly_bytes_dropped_total",
            "counter",
            "Stream bytes the TCP reassembly could not hold (buffer bounds, evictions).",
            &[("", f.reassembly_bytes_dropped)],
        );
        metric(
            "tcp_gaps_total",
            "counter",
            "Holes in TCP streams (data never captured).",
            &[("", f.tcp_gaps)],
        );
        metric(
            "tcp_rst_ignored_total",
            "counter",
            "TCP resets ignored: their sequence number is in no window of their sender's.",
            &[("", f.tcp_rst_ignored)],
        );
        metric(
            "decode_errors_total",
            "counter",
            "Packets that did not decode (L2-L4).",
            &[("", f.decode_errors)],
        );
        let labels: Vec<String> = Protocol::ALL
            .iter()
            .map(|p| format!("protocol=\"{}\"", p.as_str()))
            .collect();
        let by_protocol = |counts: &[u64]| -> Vec<(&str, u64)> {
            Protocol::ALL
                .iter()
                .zip(&labels)
                .map(|(p, l)| (l.as_str(), counts.get(*p as usize).copied().unwrap_or(0)))
                .collect()
        };
        metric(
            "pdus_total",
            "counter",
            "PDUs dissected, per protocol.",
            &by_protocol(&r.pdus),
        );
        metric(
            "parse_errors_total",
            "counter",
            "PDUs that were malformed or not understood, per protocol.",
            &by_protocol(&r.anomalous),
        );
        let kinds: Vec<(String, u64)> = r
            .alerts
            .iter()
            .map(|(k, n)| (format!("kind=\"{k}\""), *n))
            .collect();
        let kinds: Vec<(&str, u64)> = kinds.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "alerts_total",
            "counter",
            "Alerts emitted (repeats folded), per kind.",
            &kinds,
        );
        metric(
            "alerts_written_total",
            "counter",
            "Alerts handed to the alert sink.",
            &[("", r.alerts_written)],
        );
        metric(
            "events_written_total",
            "counter",
            "Events handed to the event sink.",
            &[("", r.events_written)],
        );
        if let Some(k) = &r.kafka {
            metric(
                "kafka_messages_total",
                "counter",
                "Kafka messages by outcome.",
                &[
                    ("outcome=\"produced\"", k.produced),
                    ("outcome=\"delivered\"", k.delivered),
                    ("outcome=\"failed\"", k.failed),
                ],
            );
            metric(
                "kafka_spooled_alerts",
                "gauge",
                "Alerts in the spool awaiting the broker.",
                &[("", k.spooled)],
            );
            metric(
                "kafka_spool_bytes",
                "gauge",
                "Bytes of the spool files.",
                &[("", k.spool_bytes)],
            );
            metric(
                "kafka_dropped_total",
                "counter",
                "Kafka messages dropped, by kind.",
                &[
                    ("kind=\"event\"", k.dropped_events),
                    ("kind=\"alert\"", k.dropped_alerts),
                ],
            );
        }
        metric(
            "policy_reloads_total",
            "counter",
            "Policy reloads (SIGHUP) put in force.",
            &[("", self.reloads)],
        );
        metric(
            "policy_reload_failures_total",
            "counter",
            "Policy reloads refused (the previous policy stayed).",
            &[("", self.reload_failures)],
        );
        if let Some((at, took)) = self.last_reload {
            let _ = writeln!(out, "# HELP otwatch_policy_last_reload_timestamp_seconds Unix time of the last policy reload.");
            let _ = writeln!(
                out,
                "# TYPE otwatch_policy_last_reload_timestamp_seconds gauge"
            );
            let _ = writeln!(out, "otwatch_policy_last_reload_timestamp_seconds {at:.3}");
            let _ = writeln!(out, "# HELP otwatch_policy_reload_duration_seconds How long the last policy reload took.");
            let _ = writeln!(out, "# TYPE otwatch_policy_reload_duration_seconds gauge");
            let _ = writeln!(out, "otwatch_policy_reload_duration_seconds {took:.6}");
        }
        let _ = writeln!(
            out,
            "# HELP otwatch_uptime_seconds Seconds since the sensor started."
        );
        let _ = writeln!(out, "# TYPE otwatch_uptime_seconds gauge");
        let _ = writeln!(out, "otwatch_uptime_seconds {:.3}", self.uptime_secs);
        out
    }
}
