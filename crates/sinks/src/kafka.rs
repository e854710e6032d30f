//! The Kafka sink: alerts (lossless, through the spool) and events (best effort) to a
//! Kafka cluster, without ever blocking the caller.
//!
//! Split as config / sink / service (the shape of vector's Kafka sink):
//!
//! * [`KafkaConfig`]: what the command line gives (brokers, topics, `-X` properties,
//!   the shutdown flush timeout), and [`producer_properties`], the librdkafka
//!   properties built from it.
//! * [`KafkaSink`]: the caller's handle. [`KafkaSink::send_alert`] and
//!   [`KafkaSink::send_event`] only push onto bounded channels; they never wait for
//!   Kafka or the network.
//! * the *service*: one thread that owns the producer (a librdkafka `BaseProducer`,
//!   polled by this thread: no async runtime), writes every alert to the spool, sends
//!   the spool in order, and acknowledges spool records as delivery reports arrive.
//!
//! # Alerts: at least once, in order, across outages and restarts
//!
//! The spool (`state_dir/spool`, [`crate::spool`]) is the alerts' write-ahead log: every
//! alert is appended to it before it is handed to the producer, and leaves it only when
//! the broker acknowledged it and every alert before it (`acks=all`, idempotent
//! producer). So an alert is never lost while the sensor runs, when the broker is down,
//! paused or restarted, nor when the sensor stops: what is unacknowledged at shutdown
//! (after [`KafkaConfig::flush_timeout`]) is sent at the next start, before new alerts.
//! When the channel to the service is full, [`KafkaSink::send_alert`] appends to the
//! spool itself (after draining the channel, to keep the order).
//!
//! Delivery is *at least once*: after a failed delivery, a broker outage or a rebuilt
//! producer, the service resends from the oldest unacknowledged alert, so a consumer
//! can see an alert twice and de-duplicates on `alert.id`.
//!
//! When the spool is full ([`crate::SpoolConfig::max_bytes`]) the alert is dropped,
//! counted in [`KafkaCounters::dropped_alerts`] and logged as an error, every time: the
//! binary then exits 1.
//!
//! # Events: best effort
//!
//! Events are high volume and never spooled: they are dropped and counted
//! ([`KafkaCounters::dropped_events`]) when the channel is full, when the broker is
//! known to be down, when too many are already waiting in the producer, or when their
//! delivery fails.
//!
//! # Broker state and errors
//!
//! The service marks the cluster *down* when librdkafka reports that all brokers are
//! down, and probes it (a metadata request) every second until it answers; while it is
//! down, alerts stay in the spool and events are dropped. These errors are handled as
//! listed:
//!
//! * a *fatal* producer error (e.g. the idempotent producer was fenced): the producer
//!   is rebuilt and the spool is resent from the oldest unacknowledged alert;
//! * the cluster answers again after being unreachable, or alerts timed out in the
//!   producer: the same (a broker that restarted without its state, such as a memory
//!   broker, answers UNKNOWN_PRODUCER_ID to the old producer id forever);
//! * an alert that can never be accepted (`MessageSizeTooLarge`, `InvalidRecord`,
//!   `InvalidMessage`, `InvalidMessageSize`): dropped, counted in `dropped_alerts`,
//!   logged as an error (otherwise it would block every alert behind it);
//! * any other delivery failure: retried from the spool after a back-off.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use tracing::{debug, error, info, warn};

use crate::spool::{RecordId, Spool, SpoolConfig, SpoolError};

/// The header every message carries: `schema: otwatch/1`.
pub const SCHEMA_HEADER: (&str, &str) = ("schema", "otwatch/1");
/// Default alerts topic.
pub const DEFAULT_ALERTS_TOPIC: &str = "otwatch.alerts";
/// Default events topic.
pub const DEFAULT_EVENTS_TOPIC: &str = "otwatch.events";
/// Default shutdown flush timeout.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// Alerts waiting in the channel to the service before `send_alert` spools them itself.
const ALERT_CHANNEL: usize = 4096;
/// Events waiting in the channel to the service before `send_event` drops them.
const EVENT_CHANNEL: usize = 65_536;
/// Alerts handed to the producer and not yet reported.
const MAX_ALERTS_IN_FLIGHT: usize = 10_000;
/// Events handed to the producer and not yet reported.
const MAX_EVENTS_IN_FLIGHT: u64 = 200_000;
/// Spool records read per batch.
const SPOOL_BATCH: usize = 1_000;
/// Events taken from the channel per turn of the service loop.
const EVENT_BATCH: usize = 8_192;
/// How long the service waits in `poll` when it has nothing to do.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// How often a cluster marked down is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long a probe (metadata request) may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the first probe at start may take before the cluster is reported down.
const FIRST_PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Back-off before resending after a failed alert delivery (doubles up to the max).
const RETRY_BACKOFF: Duration = Duration::from_millis(250);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// At shutdown with the cluster down, wait at most this long (not the whole flush
/// timeout) for it to come back.
const SHUTDOWN_GRACE_WHEN_DOWN: Duration = Duration::from_secs(1);
/// Spool `fsync` at least this often while alerts arrive.
const SYNC_EVERY: Duration = Duration::from_millis(200);

/// What the command line says about Kafka (`--kafka-brokers`, `--kafka-topic`, `-X`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, e.g. `10.0.0.5:9092,10.0.0.6:9092`.
    pub brokers: String,
    /// Alerts topic (default `otwatch.alerts`).
    #[serde(default = "default_alerts_topic")]
    pub alerts_topic: String,
    /// Events topic (default `otwatch.events`).
    #[serde(default = "default_events_topic")]
    pub events_topic: String,
    /// librdkafka properties (`-X key=value`), applied last: they override the defaults
    /// of [`producer_properties`].
    #[serde(default)]
    pub properties: Vec<(String, String)>,
    /// How long shutdown waits for unacknowledged messages (seconds in serialized form;
    /// default 10 s). What is still unacknowledged stays in the spool.
    #[serde(default = "default_flush_timeout", deserialize_with = "de_seconds")]
    pub flush_timeout: Duration,
}

fn default_alerts_topic() -> String {
    DEFAULT_ALERTS_TOPIC.to_owned()
}

fn default_events_topic() -> String {
    DEFAULT_EVENTS_TOPIC.to_owned()
}

fn default_flush_timeout() -> Duration {
    DEFAULT_FLUSH_TIMEOUT
}

fn de_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = <f64 as serde::Deserialize>::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

impl KafkaConfig {
    /// A configuration with the default topics and flush timeout.
    pub fn new(brokers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            alerts_topic: default_alerts_topic(),
            events_topic: default_events_topic(),
            properties: Vec::new(),
            flush_timeout: DEFAULT_FLUSH_TIMEOUT,
        }
    }
}

/// The librdkafka properties of the producer: otwatch's defaults, then
/// `config.properties` (`-X`), which override them.
///
/// Defaults: idempotent (`enable.idempotence=true`, which implies `acks=all` and
/// in-order retries), `acks=all`, `compression.type=lz4`, `linger.ms=10` (bounded
/// batching delay), batches of up to 10 000 messages / 1 MiB, `partitioner=murmur2_random`
/// (the partitions Java clients choose for a key), a 30 s message timeout (after which
/// an alert is resent from the spool), reconnection backoff of 100 ms to 2 s.
pub fn producer_properties(config: &KafkaConfig) -> Vec<(String, String)> {
    let defaults: [(&str, String); 14] = [
        ("bootstrap.servers", config.brokers.clone()),
        ("client.id", "otwatch".to_owned()),
        ("enable.idempotence", "true".to_owned()),
        ("acks", "all".to_owned()),
        ("compression.type", "lz4".to_owned()),
        ("linger.ms", "10".to_owned()),
        ("batch.num.messages", "10000".to_owned()),
        ("batch.size", "1048576".to_owned()),
        ("queue.buffering.max.messages", "250000".to_owned()),
        ("queue.buffering.max.kbytes", "262144".to_owned()),
        ("partitioner", "murmur2_random".to_owned()),
        ("message.timeout.ms", "30000".to_owned()),
        ("reconnect.backoff.ms", "100".to_owned()),
        ("reconnect.backoff.max.ms", "2000".to_owned()),
    ];
    let mut props: Vec<(String, String)> = defaults
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (k, v) in &config.properties {
        match props.iter_mut().find(|(pk, _)| pk == k) {
            Some(slot) => slot.1 = v.clone(),
            None => props.push((k.clone(), v.clone())),
        }
    }
    props
}

/// Why the Kafka sink could not start. Details (the property, the OS error) are logged
/// where they happen.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSinkError {
    /// librdkafka refused the configuration (an unknown or invalid `-X` property).
    #[error("invalid Kafka producer configuration (see the log for the property)")]
    InvalidConfig,
    /// The spool under the state directory could not be opened.
    #[error("cannot open the Kafka spool: {0}")]
    Spool(#[from] SpoolError),
    /// The sink thread could not be started.
    #[error("cannot start the Kafka sink thread")]
    Thread,
}

/// The sink's counters (a snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaCounters {
    /// Messages (alerts and events) handed to the producer, resends included.
    pub produced: u64,
    /// Messages the broker acknowledged.
    pub delivered: u64,
    /// Deliveries that failed (alerts among them are resent from the spool).
    pub failed: u64,
    /// Of `delivered`, alerts.
    pub alerts_delivered: u64,
    /// Alerts held in the spool now, awaiting acknowledgement.
    pub spooled: u64,
    /// Bytes of the spool files now.
    pub spool_bytes: u64,
    /// Events dropped: channel full, cluster down or slow, delivery failed.
    pub dropped_events: u64,
    /// Alerts lost: the spool was full (or the alert can never be accepted by Kafka).
    /// Any is a runtime failure: the binary exits 1.
    pub dropped_alerts: u64,
    /// Times the producer was rebuilt: after a fatal error, when the cluster came back
    /// after an outage, or after alerts timed out in it.
    pub producer_rebuilds: u64,
}

#[derive(Debug, Default)]
struct Counters {
    produced: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    alerts_delivered: AtomicU64,
    spooled: AtomicU64,
    spool_bytes: AtomicU64,
    dropped_events: AtomicU64,
    dropped_alerts: AtomicU64,
    producer_rebuilds: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> KafkaCounters {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KafkaCounters {
            produced: g(&self.produced),
            delivered: g(&self.delivered),
            failed: g(&self.failed),
            alerts_delivered: g(&self.alerts_delivered),
            spooled: g(&self.spooled),
            spool_bytes: g(&self.spool_bytes),
            dropped_events: g(&self.dropped_events),
            dropped_alerts: g(&self.dropped_alerts),
            producer_rebuilds: g(&self.producer_rebuilds),
        }
    }

    fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    fn note_spool(&self, spool: &Spool) {
        self.spooled.store(spool.len(), Ordering::Relaxed);
        self.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
    }
}

/// One message on its way to the service.
#[derive(Debug)]
struct Outgoing {
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The alerts' side of the sink shared by the caller and the service: the spool and the
/// receiving end of the alert channel, under one lock so that whoever moves alerts from
/// the channel to the spool keeps their order.
#[derive(Debug)]
struct Intake {
    spool: Spool,
    rx: Receiver<Outgoing>,
}

impl Intake {
    /// Moves every alert waiting in the channel to the spool.
    fn drain(&mut self, counters: &Counters) -> usize {
        let mut n = 0;
        while let Ok(a) = self.rx.try_recv() {
            self.append(&a, counters);
            n += 1;
        }
        if n > 0 {
            counters.note_spool(&self.spool);
        }
        n
    }

    fn append(&mut self, a: &Outgoing, counters: &Counters) {
        match self.spool.append(&a.key, &a.value) {
            Ok(_) => {}
            Err(e) => {
                Counters::add(&counters.dropped_alerts, 1);
                error!(
                    error = %e,
                    dropped_alerts = counters.dropped_alerts.load(Ordering::Relaxed),
                    "ALERT LOST: the Kafka spool cannot take it (the run will exit 1)"
                );
            }
        }
    }
}

fn lock(intake: &Mutex<Intake>) -> MutexGuard<'_, Intake> {
    // A panic elsewhere while holding the lock leaves the spool consistent (every
    // operation on it is complete or reported): keep going.
    intake.lock().unwrap_or_else(|p| p.into_inner())
}

/// The caller's handle on the Kafka sink; see the [module docs](self).
#[derive(Debug)]
pub struct KafkaSink {
    alerts: SyncSender<Outgoing>,
    events: SyncSender<Outgoing>,
    intake: Arc<Mutex<Intake>>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    spool_dir: PathBuf,
}

impl KafkaSink {
    /// Starts the sink thread; opens the spool under `state_dir/spool` and first sends
    /// what an earlier run left there, before new alerts. A broker that is unreachable
    /// is not an error here: the sink warns and spools.
    pub fn start(config: KafkaConfig, state_dir: &Path) -> Result<KafkaSink, KafkaSinkError> {
        KafkaSink::start_with_spool(config, SpoolConfig::new(state_dir.join("spool")))
    }

    /// [`KafkaSink::start`] with an explicit spool configuration (its bounds).
    pub fn start_with_spool(
        config: KafkaConfig,
        spool: SpoolConfig,
    ) -> Result<KafkaSink, KafkaSinkError> {
        let spool_dir = spool.dir.clone();
        let spool = Spool::open(spool)?;
        let counters = Arc::new(Counters::default());
        counters.note_spool(&spool);
        if !spool.is_empty() {
            info!(
                alerts = spool.len(),
                spool = %spool_dir.display(),
                "alerts left in the Kafka spool by an earlier run are sent first"
            );
        }
        // Fail now, not in the thread, on a property librdkafka refuses.
        let producer = build_producer(&config)?;
        let (alerts, alert_rx) = mpsc::sync_channel(ALERT_CHANNEL);
        let (events, event_rx) = mpsc::sync_channel(EVENT_CHANNEL);
        let intake = Arc::new(Mutex::new(Intake {
            spool,
            rx: alert_rx,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let service = Service {
            config,
            producer,
            intake: Arc::clone(&intake),
            events: event_rx,
            counters: Arc::clone(&counters),
            stop: Arc::clone(&stop),
            inflight: VecDeque::new(),
            cursor: None,
            events_in_flight: 0,
            resend: false,
            retry_at: None,
            backoff: RETRY_BACKOFF,
            down: false,
            down_since: None,
            next_probe: Instant::now(),
            last_sync: Instant::now(),
            unsynced: false,
            used: false,
            rebuild_wanted: None,
        };
        let thread = std::thread::Builder::new()
            .name("kafka-sink".to_owned())
            .spawn(move || service.run())
            .map_err(|e| {
                error!(error = %e, "cannot spawn the Kafka sink thread");
                KafkaSinkError::Thread
            })?;
        Ok(KafkaSink {
            alerts,
            events,
            intake,
            counters,
            stop,
            thread: Some(thread),
            spool_dir,
        })
    }

    /// An alert: `key` = the flow's community id (or the sensor name), `json` = the alert
    /// object. Never waits for Kafka: the alert goes to a bounded channel, or, when that
    /// is full, straight to the spool.
    pub fn send_alert(&self, key: &str, json: &[u8]) {
        let msg = Outgoing {
            key: key.as_bytes().to_vec(),
            value: json.to_vec(),
        };
        match self.alerts.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg) | TrySendError::Disconnected(msg)) => {
                let mut intake = lock(&self.intake);
                intake.drain(&self.counters);
                intake.append(&msg, &self.counters);
                self.counters.note_spool(&intake.spool);
            }
        }
    }

    /// An event: best effort; dropped and counted when the channel is full (Kafka slow)
    /// or Kafka is down. Never spooled.
    pub fn send_event(&self, key: &str, json: &[u8]) {
        let msg = Outgoing {
            key: key.as_bytes().to_vec(),
            value: json.to_vec(),
        };
        if self.events.try_send(msg).is_err() {
            Counters::add(&self.counters.dropped_events, 1);
        }
    }

    /// The counters now.
    pub fn counters(&self) -> KafkaCounters {
        self.counters.snapshot()
    }

    /// Flushes with the configured flush timeout; what is unsent stays in the spool for
    /// the next start. Returns the final counters.
    pub fn shutdown(mut self) -> KafkaCounters {
        self.stop_thread();
        let c = self.counters.snapshot();
        if c.spooled > 0 {
            warn!(
                alerts = c.spooled,
                bytes = c.spool_bytes,
                spool = %self.spool_dir.display(),
                "alerts not delivered to Kafka remain in the spool: they are sent at the next \
                 start with the same --state-dir"
            );
        }
        c
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                error!("the Kafka sink thread panicked");
            }
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// A delivery report, as the service needs it.
#[derive(Debug, Clone, Copy)]
struct Report {
    opaque: usize,
    error: Option<RDKafkaErrorCode>,
}

/// librdkafka's callbacks: collect delivery reports, notice fatal errors and a cluster
/// that is down, and forward librdkafka's log to `tracing`.
#[derive(Debug, Default)]
struct SinkContext {
    reports: Mutex<Vec<Report>>,
    fatal: AtomicBool,
    all_down: AtomicBool,
}

impl SinkContext {
    fn take_reports(&self) -> Vec<Report> {
        std::mem::take(&mut *self.reports.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ClientContext for SinkContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => error!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Warning => warn!(target: "librdkafka", "{fac}: {msg}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(target: "librdkafka", "{fac}: {msg}")
            }
            RDKafkaLogLevel::Debug => debug!(target: "librdkafka", "{fac}: {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::Fatal) => {
                error!(%reason, "Kafka producer: fatal error");
                self.fatal.store(true, Ordering::Release);
            }
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.all_down.store(true, Ordering::Release);
            }
            // Connection failures are retried by librdkafka; the service reports the
            // cluster's state when all brokers are down.
            Some(RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::Resolve) => {
                debug!(%reason, "Kafka broker connection failed");
            }
            _ => warn!(%error, %reason, "Kafka producer error"),
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let error = match result {
            Ok(_) => None,
            Err((e, _)) => Some(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        };
        self.reports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Report { opaque, error });
    }
}

type SinkProducer = BaseProducer<SinkContext>;

/// Delivery opaque of an event (alerts carry their spool id, always far below).
const EVENT_OPAQUE: usize = usize::MAX;

fn build_producer(config: &KafkaConfig) -> Result<SinkProducer, KafkaSinkError> {
    let mut cc = ClientConfig::new();
    for (k, v) in producer_properties(config) {
        cc.set(k, v);
    }
    cc.create_with_context(SinkContext::default()).map_err(|e| {
        error!(error = %e, "the Kafka producer configuration was refused");
        KafkaSinkError::InvalidConfig
    })
}

fn headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(1).insert(Header {
        key: SCHEMA_HEADER.0,
        value: Some(SCHEMA_HEADER.1),
    })
}

/// Where an alert handed to the producer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Delivered,
    Failed,
}

/// Alert delivery errors that no retry can fix.
fn never_accepted(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord
    )
}

/// The sink thread.
struct Service {
    config: KafkaConfig,
    producer: SinkProducer,
    intake: Arc<Mutex<Intake>>,
    events: Receiver<Outgoing>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    /// Alerts handed to the producer, in send (= id) order, with their status.
    inflight: VecDeque<(RecordId, Status)>,
    /// The last spool id handed to the producer (`None`: from the acknowledged position).
    cursor: Option<RecordId>,
    events_in_flight: u64,
    /// An alert delivery failed: once nothing is in flight, resend from the oldest
    /// unacknowledged alert.
    resend: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    down: bool,
    down_since: Option<Instant>,
    next_probe: Instant,
    last_sync: Instant,
    unsynced: bool,
    /// The producer has been given messages since it was built.
    used: bool,
    /// The producer is to be replaced at the next turn of the loop.
    rebuild_wanted: Option<Rebuild>,
}

/// Why the producer is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rebuild {
    /// librdkafka raised a fatal error (e.g. the idempotent producer was fenced).
    Fatal,
    /// The cluster answers again after being unreachable: a broker that restarted may
    /// have forgotten this producer's id and sequence numbers (it then answers
    /// UNKNOWN_PRODUCER_ID forever); a new producer gets a new id.
    Reconnected,
    /// Alerts timed out in the producer: start afresh rather than retry with the same
    /// idempotence state.
    TimedOut,
}

impl Service {
    fn run(mut self) {
        self.first_probe();
        while !self.stop.load(Ordering::Acquire) {
            let mut busy = self.intake_alerts();
            busy |= self.send_events();
            busy |= self.send_alerts();
            self.producer
                .poll(if busy { Duration::ZERO } else { IDLE_POLL });
            self.handle_reports();
            self.housekeeping();
        }
        self.finish();
    }

    /// Is the cluster reachable? Warn clearly when it is not (alerts are spooled).
    fn first_probe(&mut self) {
        match self
            .producer
            .client()
            .fetch_metadata(None, FIRST_PROBE_TIMEOUT)
        {
            Ok(metadata) => {
                info!(brokers = %self.config.brokers, "connected to Kafka");
                let known = |name: &str| {
                    metadata
                        .topics()
                        .iter()
                        .any(|t| t.name() == name && t.error().is_none())
                };
                if !known(&self.config.alerts_topic) {
                    // Without it, the alerts wait in the spool and the only sign would
                    // be a delivery error that does not name the topic.
                    warn!(
                        topic = %self.config.alerts_topic,
                        "the alerts topic does not exist on the cluster (yet): unless the \
                         cluster creates topics on first use, alerts wait in the spool \
                         until it is created"
                    );
                }
            }
            Err(e) => {
                warn!(
                    brokers = %self.config.brokers,
                    error = %e,
                    "Kafka is unreachable: alerts are kept in the spool until it answers, \
                     events are dropped"
                );
                self.mark_down();
            }
        }
    }

    fn mark_down(&mut self) {
        if !self.down {
            self.down = true;
            self.down_since = Some(Instant::now());
            self.next_probe = Instant::now() + PROBE_EVERY;
        }
    }

    fn mark_up(&mut self) {
        if self.down {
            let secs = self.down_since.map_or(0.0, |t| t.elapsed().as_secs_f64());
            info!(
                brokers = %self.config.brokers,
                down_for_s = format!("{secs:.1}"),
                "Kafka is reachable again: sending the spooled alerts"
            );
            self.down = false;
            self.down_since = None;
        }
    }

    /// Channel → spool. Returns whether there was anything.
    fn intake_alerts(&mut self) -> bool {
        let n = lock(&self.intake).drain(&self.counters);
        if n > 0 {
            self.unsynced = true;
        }
        n > 0
    }

    fn send_events(&mut self) -> bool {
        let mut n = 0;
        while n < EVENT_BATCH {
            let ev = match self.events.try_recv() {
                Ok(ev) => ev,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            };
            n += 1;
            if self.down || self.events_in_flight >= MAX_EVENTS_IN_FLIGHT {
                Counters::add(&self.counters.dropped_events, 1);
                continue;
            }
            let record = BaseRecord::with_opaque_to(&self.config.events_topic, EVENT_OPAQUE)
                .key(&ev.key[..])
                .payload(&ev.value[..])
                .headers(headers());
            match self.producer.send(record) {
                Ok(()) => {
                    self.used = true;
                    self.events_in_flight += 1;
                    Counters::add(&self.counters.produced, 1);
                }
                Err((e, _)) => {
                    Counters::add(&self.counters.dropped_events, 1);
                    debug!(error = %e, "event not queued");
                }
            }
        }
        n > 0
    }

    /// Spool → producer, in order, while the cluster is up and no resend is pending.
    fn send_alerts(&mut self) -> bool {
        if self.down || self.resend || self.retry_at.is_some_and(|t| Instant::now() < t) {
            return false;
        }
        self.retry_at = None;
        let room = MAX_ALERTS_IN_FLIGHT.saturating_sub(self.inflight.len());
        if room == 0 {
            return false;
        }
        let batch = {
            let intake = lock(&self.intake);
            match intake.spool.pending(self.cursor, room.min(SPOOL_BATCH)) {
                Ok(b) => b,
                Err(e) => {
                    error!(error = %e, "cannot read the Kafka spool");
                    self.retry_at = Some(Instant::now() + RETRY_BACKOFF_MAX);
                    return false;
                }
            }
        };
        let mut sent = 0;
        for rec in &batch {
            let Ok(opaque) = usize::try_from(rec.id.0) else {
                break;
            };
            let record = BaseRecord::with_opaque_to(&self.config.alerts_topic, opaque)
                .key(&rec.key[..])
                .payload(&rec.value[..])
                .headers(headers());
            match self.producer.send(record) {
                Ok(()) => {
                    self.used = true;
                    self.inflight.push_back((rec.id, Status::Pending));
                    self.cursor = Some(rec.id);
                    Counters::add(&self.counters.produced, 1);
                    sent += 1;
                }
                Err((e, _)) => {
                    // Queue full: the rest waits in the spool.
                    debug!(error = %e, "alert not queued, retrying later");
                    self.retry_at = Some(Instant::now() + IDLE_POLL);
                    break;
                }
            }
        }
        sent > 0
    }

    fn handle_reports(&mut self) {
        let reports = self.producer.context().take_reports();
        self.apply_reports(&reports);
        if self
            .producer
            .context()
            .all_down
            .swap(false, Ordering::AcqRel)
            && !self.down
        {
            warn!(
                brokers = %self.config.brokers,
                "all Kafka brokers are down: alerts are kept in the spool until they are \
                 back, events are dropped"
            );
            self.mark_down();
        }
    }

    fn apply_reports(&mut self, reports: &[Report]) {
        if reports.is_empty() {
            return;
        }
        let mut any_ok = false;
        for r in reports {
            if r.opaque == EVENT_OPAQUE {
                self.events_in_flight = self.events_in_flight.saturating_sub(1);
                match r.error {
                    None => {
                        any_ok = true;
                        Counters::add(&self.counters.delivered, 1);
                    }
                    Some(_) => {
                        Counters::add(&self.counters.failed, 1);
                        Counters::add(&self.counters.dropped_events, 1);
                    }
                }
                continue;
            }
            let id = RecordId(r.opaque as u64);
            let Ok(i) = self.inflight.binary_search_by_key(&id, |&(id, _)| id) else {
                continue;
            };
            let Some(slot) = self.inflight.get_mut(i) else {
                continue;
            };
            match r.error {
                None => {
                    any_ok = true;
                    slot.1 = Status::Delivered;
                    Counters::add(&self.counters.delivered, 1);
                    Counters::add(&self.counters.alerts_delivered, 1);
                }
                Some(code) if never_accepted(code) => {
                    // Counts as done so that the alerts behind it can go.
                    slot.1 = Status::Delivered;
                    Counters::add(&self.counters.failed, 1);
                    Counters::add(&self.counters.dropped_alerts, 1);
                    error!(
                        spool_id = id.0,
                        error = %code,
                        "ALERT LOST: Kafka will never accept it (the run will exit 1)"
                    );
                }
                Some(code) => {
                    slot.1 = Status::Failed;
                    Counters::add(&self.counters.failed, 1);
                    if code == RDKafkaErrorCode::MessageTimedOut {
                        self.rebuild_wanted.get_or_insert(Rebuild::TimedOut);
                    }
                    if !self.resend {
                        warn!(error = %code, "alert delivery failed: resending from the spool");
                    }
                    self.resend = true;
                }
            }
        }
        if any_ok {
            self.mark_up();
            self.backoff = RETRY_BACKOFF;
        }
        self.ack_delivered();
    }

    /// Acknowledges in the spool the delivered alerts at the front of the in-flight
    /// queue (every alert up to them is delivered).
    fn ack_delivered(&mut self) {
        let mut through = None;
        while let Some(&(id, Status::Delivered)) = self.inflight.front() {
            through = Some(id);
            self.inflight.pop_front();
        }
        if let Some(id) = through {
            let mut intake = lock(&self.intake);
            if let Err(e) = intake.spool.ack_through(id) {
                error!(error = %e, "cannot record Kafka deliveries in the spool");
            }
            self.counters.note_spool(&intake.spool);
        }
        if self.resend && self.inflight.iter().all(|&(_, s)| s != Status::Pending) {
            // Everything sent has an outcome: resend from the oldest unacknowledged.
            self.inflight.clear();
            self.cursor = None;
            self.resend = false;
            self.retry_at = Some(Instant::now() + self.backoff);
            self.backoff = (self.backoff * 2).min(RETRY_BACKOFF_MAX);
        }
    }

    fn housekeeping(&mut self) {
        if self.producer.context().fatal.load(Ordering::Acquire) {
            self.rebuild(Rebuild::Fatal);
        } else if let Some(why) = self.rebuild_wanted.take() {
            self.rebuild(why);
        }
        if self.down && Instant::now() >= self.next_probe {
            self.next_probe = Instant::now() + PROBE_EVERY;
            if self
                .producer
                .client()
                .fetch_metadata(None, PROBE_TIMEOUT)
                .is_ok()
            {
                self.mark_up();
                if self.used {
                    self.rebuild(Rebuild::Reconnected);
                }
            }
        }
        if self.unsynced && self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync_spool();
        }
    }

    fn sync_spool(&mut self) {
        let mut intake = lock(&self.intake);
        if let Err(e) = intake.spool.sync() {
            error!(error = %e, "cannot fsync the Kafka spool");
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    /// After a fatal error: a new producer, and the spool resent from the oldest
    /// unacknowledged alert.
    fn rebuild(&mut self, why: Rebuild) {
        match why {
            Rebuild::Fatal => {
                let reason = self
                    .producer
                    .client()
                    .fatal_error()
                    .map(|(code, reason)| format!("{code}: {reason}"))
                    .unwrap_or_default();
                error!(
                    %reason,
                    "Kafka producer failed for good: rebuilding it and resending the spool"
                );
            }
            Rebuild::Reconnected => info!(
                "Kafka is back: starting a new producer (a restarted broker may have forgotten \
                 the old one's idempotence state) and resending the spool"
            ),
            Rebuild::TimedOut => warn!(
                "alerts timed out in the Kafka producer: rebuilding it and resending the spool"
            ),
        }
        self.rebuild_wanted = None;
        self.used = false;
        let new = match build_producer(&self.config) {
            Ok(p) => p,
            Err(e) => {
                error!(error = %e, "cannot rebuild the Kafka producer");
                return;
            }
        };
        let old = std::mem::replace(&mut self.producer, new);
        let old_context = Arc::clone(old.context());
        // Dropping purges what it still holds; those reports are failures.
        drop(old);
        let lost_events = self.events_in_flight;
        for r in old_context.take_reports() {
            if r.opaque != EVENT_OPAQUE {
                if r.error.is_none() {
                    Counters::add(&self.counters.delivered, 1);
                    Counters::add(&self.counters.alerts_delivered, 1);
                    if let Ok(i) = self
                        .inflight
                        .binary_search_by_key(&RecordId(r.opaque as u64), |&(id, _)| id)
                    {
                        if let Some(slot) = self.inflight.get_mut(i) {
                            slot.1 = Status::Delivered;
                        }
                    }
                } else {
                    Counters::add(&self.counters.failed, 1);
                }
            }
        }
        Counters::add(&self.counters.dropped_events, lost_events);
        self.events_in_flight = 0;
        // Acknowledge what the old producer delivered, then resend the rest.
        self.ack_delivered();
        self.inflight.clear();
        self.cursor = None;
        self.resend = false;
        self.retry_at = Some(Instant::now() + RETRY_BACKOFF);
        Counters::add(&self.counters.producer_rebuilds, 1);
    }

    /// Shutdown: take in what is queued, send and wait for acknowledgements until the
    /// flush timeout (shorter when the cluster is down), leave the rest in the spool.
    fn finish(mut self) {
        let timeout = if self.down {
            self.config.flush_timeout.min(SHUTDOWN_GRACE_WHEN_DOWN)
        } else {
            self.config.flush_timeout
        };
        let deadline = Instant::now() + timeout;
        self.intake_alerts();
        while self.send_events() {}
        loop {
            self.intake_alerts();
            self.send_alerts();
            self.producer.poll(IDLE_POLL);
            self.handle_reports();
            self.housekeeping();
            let spool_empty = lock(&self.intake).spool.is_empty();
            if spool_empty && self.events_in_flight == 0 {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        // Whatever is still in flight fails now and stays in the spool.
        let reports = {
            let context = Arc::clone(self.producer.context());
            self.producer
                .purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
            // Collects the reports of what was purged.
            let _ = self.producer.flush(Duration::from_millis(500));
            context.take_reports()
        };
        self.apply_reports(&reports);
        let intake = lock(&self.intake);
        self.counters.note_spool(&intake.spool);
        drop(intake);
        self.sync_spool();
        Counters::add(&self.counters.dropped_events, self.events_in_flight);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_x_overrides_defaults_and_adds_properties() {
        let mut c = KafkaConfig::new("10.0.0.1:9092");
        c.properties = vec![
            ("compression.type".into(), "zstd".into()),
            ("security.protocol".into(), "SASL_SSL".into()),
        ];
        let props = producer_properties(&c);
        let get = |k: &str| {
            props
                .iter()
                .filter(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("compression.type"), ["zstd"]);
        assert_eq!(get("security.protocol"), ["SASL_SSL"]);
        assert_eq!(get("bootstrap.servers"), ["10.0.0.1:9092"]);
        assert_eq!(get("enable.idempotence"), ["true"]);
        assert_eq!(get("acks"), ["all"]);
        assert_eq!(get("partitioner"), ["murmur2_random"]);
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_fields() {
        let c: KafkaConfig = serde_json::from_str(r#"{"brokers":"b:9092"}"#).unwrap();
        assert_eq!(c, KafkaConfig::new("b:9092"));
        let c: KafkaConfig =
            serde_json::from_str(r#"{"brokers":"b:9092","flush_timeout":2.5}"#).unwrap();
        assert_eq!(c.flush_timeout, Duration::from_millis(2500));
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"brokers":"b","topic":"x"}"#).is_err());
    }

    #[test]
    fn an_unknown_property_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = KafkaConfig::new("127.0.0.1:1");
        c.properties = vec![("no.such.property".into(), "1".into())];
        assert_eq!(
            KafkaSink::start(c, dir.path()).err(),
            Some(KafkaSinkError::InvalidConfig)
        );
    }
}
