//! What `live` adds around the pipeline it shares with `replay`: policy reloads on
//! SIGHUP, the sensor's own figures (stats records in the alert stream, `--stats`,
//! the Prometheus endpoint), and the state that survives a restart.
//!
//! All of it runs on the merge thread, from [`crate::sink::Consumer::housekeeping`],
//! on the wall clock (housekeeping is the one thing packets do not time).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context as _};
use otwatch_rules::{Engine, SeenState};
use tracing::{error, info, warn};

use crate::pipeline::SourceCounters;
use crate::stats::{Figures, RunStats};

/// How often the metrics endpoint's figures are refreshed.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Live-mode housekeeping, owned by the `Detect` consumer.
pub struct LiveOps {
    pub policy_path: PathBuf,
    /// Set by SIGHUP.
    pub reload: Arc<AtomicBool>,
    pub stats_interval: Duration,
    /// `--stats`: the summary goes to stderr every interval too.
    pub print_stats: bool,
    pub interface: String,
    pub source: Arc<SourceCounters>,
    /// The figures the metrics endpoint serves (when `--metrics` is given).
    pub metrics: Option<Arc<Mutex<Figures>>>,
    pub state: StateFile,
    started: Instant,
    next_record: Instant,
    next_publish: Instant,
    reloads: u64,
    reload_failures: u64,
    last_reload: Option<(f64, f64)>,
}

/// What housekeeping asks of the consumer that owns it.
pub enum Due {
    Nothing,
    /// Publish these figures to the metrics endpoint only.
    Publish,
    /// Write a stats record (and publish).
    Record,
}

impl LiveOps {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        policy_path: PathBuf,
        reload: Arc<AtomicBool>,
        stats_interval: Duration,
        print_stats: bool,
        interface: String,
        source: Arc<SourceCounters>,
        metrics: Option<Arc<Mutex<Figures>>>,
        state: StateFile,
    ) -> Self {
        let now = Instant::now();
        LiveOps {
            policy_path,
            reload,
            stats_interval,
            print_stats,
            interface,
            source,
            metrics,
            state,
            started: now,
            next_record: now + stats_interval,
            next_publish: now,
            reloads: 0,
            reload_failures: 0,
            last_reload: None,
        }
    }

    /// Reloads the policy into `engine` if SIGHUP came (and says whether it came); an
    /// invalid policy is refused and the one in force stays.
    pub fn reload_if_asked(&mut self, engine: &mut Engine) -> bool {
        if !self.reload.swap(false, Ordering::Relaxed) {
            return false;
        }
        let began = Instant::now();
        match otwatch_rules::load(&self.policy_path) {
            Ok(policy) => {
                engine.set_policy(Arc::new(policy));
                self.reloads += 1;
                let took = began.elapsed().as_secs_f64();
                self.last_reload = Some((unix_now(), took));
                info!(
                    "policy reloaded from {} in {:.1} ms",
                    self.policy_path.display(),
                    took * 1e3
                );
            }
            Err(e) => {
                self.reload_failures += 1;
                error!("policy reload refused, the policy in force stays: {e}");
            }
        }
        true
    }

    /// What is due now.
    pub fn due(&mut self) -> Due {
        let now = Instant::now();
        if now >= self.next_record {
            self.next_record = now + self.stats_interval;
            self.next_publish = now + PUBLISH_EVERY;
            return Due::Record;
        }
        if self.metrics.is_some() && now >= self.next_publish {
            self.next_publish = now + PUBLISH_EVERY;
            return Due::Publish;
        }
        Due::Nothing
    }

    /// The figures now: the workers' counters summed, then `add` puts in the
    /// consumer's own (alerts, sinks).
    pub fn figures(
        &self,
        sensor: &str,
        workers: &[RunStats],
        add: impl FnOnce(&mut RunStats),
    ) -> Figures {
        let mut run = RunStats::default();
        for w in workers {
            run.merge(w);
        }
        add(&mut run);
        Figures {
            sensor: sensor.to_owned(),
            interface: self.interface.clone(),
            timestamp: otwatch_event::Timestamp::from_nanos(
                i64::try_from((unix_now() * 1e9) as u128).unwrap_or(i64::MAX),
            ),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            run,
            source: self.source.figures(),
            reloads: self.reloads,
            reload_failures: self.reload_failures,
            last_reload: self.last_reload,
        }
    }

    pub fn publish(&self, figures: &Figures) {
        if let Some(m) = &self.metrics {
            if let Ok(mut slot) = m.lock() {
                *slot = figures.clone();
            }
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// `--state-dir/seen.json`: the conduits and assets already reported, so that a
/// restarted sensor does not report them again. Written whole to a temporary file
/// and renamed, so a crash mid-write leaves the previous version.
///
/// One live sensor per state directory: an exclusive `flock` on `live.lock`, held as
/// long as the `StateFile` lives (two sensors would overwrite each other's file).
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    _lock: fs::File,
}

impl StateFile {
    pub fn new(state_dir: &Path) -> anyhow::Result<StateFile> {
        fs::create_dir_all(state_dir)
            .with_context(|| format!("--state-dir {}: cannot create", state_dir.display()))?;
        let lock_path = state_dir.join("live.lock");
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("{}: cannot open", lock_path.display()))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(anyhow!(
                    "--state-dir {}: in use by another otwatch live",
                    state_dir.display()
                ))
            }
            Err(e) => {
                return Err(anyhow!("{}: cannot lock: {e}", lock_path.display()));
            }
        }
        Ok(StateFile {
            path: state_dir.join("seen.json"),
            _lock: lock,
        })
    }

    /// What an earlier run saw; none if there was no earlier run. A file that cannot
    /// be read is set aside with a warning: the sensor must start anyway.
    pub fn load(&self) -> SeenState {
        let text = match fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return SeenState::default(),
            Err(e) => {
                warn!(
                    "{}: cannot read ({e}); starting without it",
                    self.path.display()
                );
                return SeenState::default();
            }
        };
        match serde_json::from_slice(&text) {
            Ok(s) => s,
            Err(e) => {
                let aside = self.path.with_extension("json.bad");
                warn!(
                    "{}: not a state file ({e}); moved to {} and starting without it",
                    self.path.display(),
                    aside.display()
                );
                let _ = fs::rename(&self.path, aside);
                SeenState::default()
            }
        }
    }

    pub fn save(&self, state: &SeenState) {
        let tmp = self.path.with_extension("json.tmp");
        let written = serde_json::to_vec(state)
            .map_err(io::Error::other)
            .and_then(|bytes| fs::write(&tmp, bytes))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!(
                "{}: cannot save the sensor's state: {e}",
                self.path.display()
            );
        }
    }
}

/// Serves the figures as Prometheus text on `GET /metrics` from its own thread. The
/// endpoint only reads: a slow or hostile scraper costs that thread, never capture.
pub fn serve_metrics(addr: SocketAddr, figures: Arc<Mutex<Figures>>) -> anyhow::Result<()> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow!("--metrics {addr}: cannot listen: {e}"))?;
    thread::Builder::new()
        .name("otwatch-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response =
                    if request.url() == "/metrics" && *request.method() == tiny_http::Method::Get {
                        let text = figures.lock().map(|f| f.prometheus()).unwrap_or_default();
                        let header = tiny_http::Header::from_bytes(
                            &b"Content-Type"[..],
                            &b"text/plain; version=0.0.4; charset=utf-8"[..],
                        );
                        let mut r = tiny_http::Response::from_string(text);
                        if let Ok(h) = header {
                            r.add_header(h);
                        }
                        r
                    } else {
                        tiny_http::Response::from_string("otwatch: see /metrics\n")
                            .with_status_code(404)
                    };
                if let Err(e) = request.respond(response) {
                    warn!("metrics: {e}");
                }
            }
        })
        .context("cannot start the metrics thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_live_sensor_per_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateFile::new(dir.path()).unwrap();
        let err = StateFile::new(dir.path()).unwrap_err().to_string();
        assert!(err.contains("in use by another otwatch live"), "{err}");
        assert!(err.contains(&*dir.path().to_string_lossy()), "{err}");
        first.save(&SeenState::default());
        drop(first);
        // The lock went with the first; what it saved is there.
        let again = StateFile::new(dir.path()).unwrap();
        assert_eq!(again.load(), SeenState::default());
        assert!(dir.path().join("seen.json").exists());
    }
}
