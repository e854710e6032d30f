//! What receives the merged stream: the rule engine and the outputs (`replay`), or the
//! conduit learner (`learn`).

use std::io;

use otwatch_event::{FlowNoteKind, JsonContext, Pdu};
use otwatch_flow::{PduFilter, PduPlace};
use otwatch_rules::learn::Learner;
use otwatch_rules::{Alert, Engine};
use otwatch_sinks::kafka::{KafkaCounters, KafkaSink};

use crate::live::{Due, LiveOps};
use crate::output::LineWriter;
use crate::pipeline::Item;
use crate::stats::RunStats;

/// Consumes events and flow notes in packet order, on the merge thread.
pub trait Consumer {
    fn item(&mut self, item: Item<'_>) -> io::Result<()>;
    /// Flushes outputs; called once, after the last item.
    fn finish(&mut self) -> io::Result<()>;
    /// Adds the consumer's counters to the run's.
    fn add_stats(&self, _stats: &mut RunStats) {}
    /// Called once after the last item and before `finish`, with every worker's final
    /// counters summed (live: the last stats record).
    fn before_finish(&mut self, _totals: &RunStats) -> io::Result<()> {
        Ok(())
    }
    /// Called on the merge thread after each message from a worker and at least every
    /// 200 ms, with each worker's latest counters (live: policy reloads, stats
    /// records, metrics).
    fn housekeeping(&mut self, _workers: &[RunStats]) -> io::Result<()> {
        Ok(())
    }
    /// The PDUs the consumer needs as events, when not all of them (the flow workers
    /// still count every PDU).
    fn pdu_filter(&self) -> Option<PduFilter> {
        None
    }
}

/// The rule engine's PDUs ([`Engine::may_act_on`]): for runs whose events are not
/// written, most PDUs of a polling loop never become events.
fn engine_pdu_filter(pdu: &Pdu, place: PduPlace) -> bool {
    Engine::may_act_on(pdu, place.first_of_flow, place.no_request_before)
}

/// Where events or alerts go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `writers[i]` (the same index for events and alerts when both go to one stream:
    /// then each event comes before the alerts it triggers).
    Writer(usize),
    Kafka,
}

/// `replay`: events through the rule engine; events (optionally) and alerts written.
pub struct Detect {
    engine: Engine,
    sensor: String,
    writers: Vec<LineWriter>,
    kafka: Option<KafkaSink>,
    kafka_counters: Option<KafkaCounters>,
    events_to: Option<Target>,
    alerts_to: Option<Target>,
    alerts: Vec<Alert>,
    json: Vec<u8>,
    events_written: u64,
    alerts_written: u64,
    /// `live`: reloads, stats records, metrics, state; and each alert flushed as it
    /// is written.
    live: Option<LiveOps>,
}

impl Detect {
    pub fn new(
        engine: Engine,
        writers: Vec<LineWriter>,
        kafka: Option<KafkaSink>,
        events_to: Option<Target>,
        alerts_to: Option<Target>,
    ) -> Self {
        Detect {
            sensor: engine.policy().sensor.name.clone(),
            engine,
            writers,
            kafka,
            kafka_counters: None,
            events_to,
            alerts_to,
            alerts: Vec::new(),
            json: Vec::with_capacity(1024),
            events_written: 0,
            alerts_written: 0,
            live: None,
        }
    }

    /// Live mode: restores what an earlier run saw and takes on the housekeeping.
    pub fn with_live(mut self, live: LiveOps) -> Self {
        self.engine.restore_seen(live.state.load());
        self.live = Some(live);
        self
    }

    /// This consumer's counters, as `add_stats` reports them.
    fn own_stats(&self, stats: &mut RunStats) {
        stats.events_written += self.events_written;
        stats.alerts = self
            .engine
            .alerts_by_kind()
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        stats.alerts_written += self.alerts_written;
        stats.kafka = match &self.kafka {
            Some(k) => Some(k.counters()),
            None => self.kafka_counters,
        };
    }

    /// Writes a record that is not an alert (a stats record) where alerts go.
    fn write_record(&mut self, json: &[u8]) -> io::Result<()> {
        match self.alerts_to {
            Some(Target::Writer(i)) => {
                if let Some(w) = self.writers.get_mut(i) {
                    w.write_raw_line(json)?;
                    w.flush()?;
                }
            }
            Some(Target::Kafka) => {
                if let Some(k) = &self.kafka {
                    k.send_alert(&self.sensor, json);
                }
            }
            None => {}
        }
        Ok(())
    }
}

impl Consumer for Detect {
    fn pdu_filter(&self) -> Option<PduFilter> {
        let filter: PduFilter = engine_pdu_filter;
        self.events_to.is_none().then_some(filter)
    }

    fn item(&mut self, item: Item<'_>) -> io::Result<()> {
        match item {
            Item::Note(note) => match note.kind {
                FlowNoteKind::Start => {
                    self.engine
                        .on_flow_start(note.timestamp, &note.flow, &mut self.alerts)
                }
                FlowNoteKind::Packet => {
                    self.engine
                        .on_packet(note.timestamp, &note.flow, &mut self.alerts)
                }
                FlowNoteKind::End {
                    recognised,
                    handshake_completed,
                    ..
                } => self.engine.on_flow_end(
                    note.timestamp,
                    &note.flow,
                    recognised,
                    handshake_completed,
                    &mut self.alerts,
                ),
            },
            Item::Event(ev) => {
                match self.events_to {
                    Some(Target::Writer(i)) => {
                        if let Some(w) = self.writers.get_mut(i) {
                            let (zones, ticket) =
                                (self.engine.zones(&ev.flow), self.engine.ticket_of(ev));
                            w.write_event(ev, Some(zones), ticket)?;
                            self.events_written += 1;
                        }
                    }
                    Some(Target::Kafka) => {
                        if let Some(k) = &self.kafka {
                            self.json.clear();
                            let ctx = JsonContext {
                                sensor: &self.sensor,
                                zones: Some(self.engine.zones(&ev.flow)),
                                ticket: self.engine.ticket_of(ev),
                            };
                            ev.write_json(&ctx, &mut self.json);
                            k.send_event(&ev.flow.community_id, &self.json);
                            self.events_written += 1;
                        }
                    }
                    None => {}
                }
                self.engine.on_event(ev, &mut self.alerts);
            }
        }
        let flush_each = self.live.is_some();
        for alert in self.alerts.drain(..) {
            match self.alerts_to {
                Some(Target::Writer(i)) => {
                    if let Some(w) = self.writers.get_mut(i) {
                        w.write_alert(&alert)?;
                        if flush_each {
                            w.flush()?;
                        }
                    }
                }
                Some(Target::Kafka) => {
                    if let Some(k) = &self.kafka {
                        self.json.clear();
                        alert.write_json(&mut self.json);
                        k.send_alert(alert.kafka_key(), &self.json);
                    }
                }
                None => {}
            }
            self.alerts_written += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        for w in &mut self.writers {
            w.flush()?;
        }
        if let Some(live) = &self.live {
            live.state.save(&self.engine.seen_state());
        }
        // Flush Kafka (bounded by its flush timeout); what is unsent stays spooled
        // under --state-dir for the next start.
        if let Some(k) = self.kafka.take() {
            self.kafka_counters = Some(k.shutdown());
        }
        Ok(())
    }

    fn add_stats(&self, stats: &mut RunStats) {
        self.own_stats(stats);
    }

    fn before_finish(&mut self, totals: &RunStats) -> io::Result<()> {
        let Some(live) = self.live.take() else {
            return Ok(());
        };
        let figures = live.figures(&self.sensor, std::slice::from_ref(totals), |s| {
            self.own_stats(s)
        });
        live.publish(&figures);
        let written = self.write_record(&figures.to_json());
        self.live = Some(live);
        written
    }

    fn housekeeping(&mut self, workers: &[RunStats]) -> io::Result<()> {
        let Some(mut live) = self.live.take() else {
            return Ok(());
        };
        if live.reload_if_asked(&mut self.engine) {
            // A renamed sensor signs events and stats records with its new name (the
            // alerts take it from the engine's policy).
            self.sensor = self.engine.policy().sensor.name.clone();
            // SIGHUP also reopens output files (log rotation).
            for w in &mut self.writers {
                if let Err(e) = w.reopen() {
                    tracing::error!(
                        "cannot reopen an output file, writing on to the old one: {e:#}"
                    );
                }
            }
        }
        let result = match live.due() {
            Due::Nothing => Ok(()),
            Due::Publish => {
                let figures = live.figures(&self.sensor, workers, |s| self.own_stats(s));
                live.publish(&figures);
                Ok(())
            }
            Due::Record => {
                let figures = live.figures(&self.sensor, workers, |s| self.own_stats(s));
                live.publish(&figures);
                if live.print_stats {
                    figures.print_summary();
                }
                live.state.save(&self.engine.seen_state());
                let json = figures.to_json();
                self.write_record(&json)
            }
        };
        // Events written since the last flush reach their file within ~200 ms.
        let flushed = self.writers.iter_mut().try_for_each(LineWriter::flush);
        self.live = Some(live);
        result.and(flushed)
    }
}

/// `learn`: what the captures show, drafted as conduits.
pub struct Learn {
    pub learner: Learner,
}

impl Consumer for Learn {
    fn item(&mut self, item: Item<'_>) -> io::Result<()> {
        match item {
            Item::Note(note) => match note.kind {
                FlowNoteKind::Start => self.learner.on_flow_start(note.timestamp, &note.flow),
                // No flow, no conduit.
                FlowNoteKind::Packet => {}
                FlowNoteKind::End {
                    recognised,
                    handshake_completed,
                    packets,
                    ..
                } => self.learner.on_flow_end(
                    note.timestamp,
                    &note.flow,
                    recognised,
                    handshake_completed,
                    packets,
                ),
            },
            Item::Event(ev) => self.learner.on_event(ev),
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}
