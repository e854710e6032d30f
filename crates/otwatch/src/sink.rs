//! What receives the merged stream: the rule engine and the outputs (`replay`), or the
//! conduit learner (`learn`).

use std::io;

use otwatch_event::FlowNoteKind;
use otwatch_rules::learn::Learner;
use otwatch_rules::{Alert, Engine};

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
}

/// `replay`: events through the rule engine; events (optionally) and alerts written.
pub struct Detect {
    engine: Engine,
    writers: Vec<LineWriter>,
    /// Index into `writers` of the events' and the alerts' destination (the same when
    /// both go to one stream: then each event comes before the alerts it triggers).
    events_to: Option<usize>,
    alerts_to: Option<usize>,
    alerts: Vec<Alert>,
    events_written: u64,
    alerts_written: u64,
}

impl Detect {
    pub fn new(
        engine: Engine,
        writers: Vec<LineWriter>,
        events_to: Option<usize>,
        alerts_to: Option<usize>,
    ) -> Self {
        Detect {
            engine,
            writers,
            events_to,
            alerts_to,
            alerts: Vec::new(),
            events_written: 0,
            alerts_written: 0,
        }
    }
}

impl Consumer for Detect {
    fn item(&mut self, item: Item<'_>) -> io::Result<()> {
        match item {
            Item::Note(note) => match note.kind {
                FlowNoteKind::Start => {
                    self.engine
                        .on_flow_start(note.timestamp, &note.flow, &mut self.alerts)
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
                if let Some(w) = self.events_to.and_then(|i| self.writers.get_mut(i)) {
                    let zones = self.engine.zones(&ev.flow);
                    w.write_event(ev, Some(zones))?;
                    self.events_written += 1;
                }
                self.engine.on_event(ev, &mut self.alerts);
            }
        }
        for alert in self.alerts.drain(..) {
            if let Some(w) = self.alerts_to.and_then(|i| self.writers.get_mut(i)) {
                w.write_alert(&alert)?;
            }
            self.alerts_written += 1;
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        for w in &mut self.writers {
            w.flush()?;
        }
        Ok(())
    }

    fn add_stats(&self, stats: &mut RunStats) {
        stats.events_written += self.events_written;
        stats.alerts = self
            .engine
            .alerts_by_kind()
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        stats.alerts_written += self.alerts_written;
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
