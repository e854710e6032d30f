//! Test support: a real Kafka-compatible broker on loopback, and a consumer that reads a
//! topic back.
//!
//! The broker is [`tansu`](https://crates.io/crates/tansu) 0.6.0 with its in-memory
//! storage engine (installed by `cargo xtask test`, or by hand with
//! `cargo install tansu --version 0.6.0 --locked --features dynostore`). Each
//! [`TestBroker`] listens on a free port of 127.0.0.1 and is killed when dropped.
//! A memory-engine broker forgets its topics and messages when it restarts: tests that
//! restart it recreate their topic and count what they read across both lifetimes.
//!
//! The consumer assigns partitions directly (no consumer group: a group's first join is
//! slow) and reads from the beginning.
//!
//! Never a silent skip: when `tansu` cannot be found, [`TestBroker::start_or_skip`]
//! panics with the install command, unless `OTWATCH_SKIP_KAFKA=1` is set outside CI, in
//! which case it says loudly on stderr that the test was skipped.
//!
//! Panics are the way a test fails, so this module uses them (it is not used by the
//! sensor itself).
#![allow(
    clippy::panic,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::print_stderr,
    missing_docs
)]

use std::collections::HashMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

/// The `tansu` version the tests are written against.
pub const TANSU_VERSION: &str = "0.6.0";

/// Partitions of the topics tests create.
pub const TEST_PARTITIONS: i32 = 3;

/// A `tansu` broker on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct TestBroker {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
    log: PathBuf,
}

/// One message read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Headers as (name, value) pairs, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Received {
    /// The value of the first header named `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Where `tansu` is: `$OTWATCH_TANSU`, then `PATH`, then cargo's bin directory.
pub fn find_tansu() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OTWATCH_TANSU") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
            .map(|home| home.join("bin").join("tansu"))
            .filter(|p| p.is_file())
    })
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("cannot bind a loopback port");
    l.local_addr().expect("loopback address").port()
}

impl TestBroker {
    /// Starts a broker, or (only with `OTWATCH_SKIP_KAFKA=1`, never in CI) returns `None`
    /// after saying loudly that the calling test is skipped. Without `tansu` otherwise:
    /// panics with the install command.
    pub fn start_or_skip(test: &str) -> Option<TestBroker> {
        let Some(bin) = find_tansu() else {
            let msg = format!(
                "the Kafka test `{test}` needs the tansu broker, which is not installed: \
                 run `cargo xtask test` (installs it) or \
                 `cargo install tansu --version {TANSU_VERSION} --locked --features dynostore`, \
                 or set OTWATCH_TANSU to its path"
            );
            if !in_ci() && std::env::var_os("OTWATCH_SKIP_KAFKA").is_some_and(|v| v == "1") {
                eprintln!("SKIPPED (OTWATCH_SKIP_KAFKA=1): {msg}");
                return None;
            }
            panic!("{msg}");
        };
        Some(TestBroker::start_with(bin))
    }

    /// Starts `bin` on a free loopback port and waits until it accepts connections.
    pub fn start_with(bin: PathBuf) -> TestBroker {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "otwatch-test-tansu-{}-{port}.log",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&log);
        let mut broker = TestBroker {
            bin,
            port,
            child: None,
            log,
        };
        broker.spawn();
        broker
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("broker log file");
        let log2 = log.try_clone().expect("broker log file");
        let child = Command::new(&self.bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            // The broker's options can also come from the environment: keep ours.
            .env_remove("STORAGE_ENGINE")
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the tansu broker exited ({status}) before listening on {addr}: {}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the tansu broker did not listen on {addr} within 20 s: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines the broker logged (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with [`TEST_PARTITIONS`] partitions (`tansu topic create`).
    pub fn create_topic(&self, topic: &str) {
        let out = Command::new(&self.bin)
            .args(["topic", "create", topic])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .args(["--partitions", &TEST_PARTITIONS.to_string()])
            .output()
            .unwrap_or_else(|e| panic!("cannot run tansu topic create: {e}"));
        assert!(
            out.status.success(),
            "tansu topic create {topic} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same port (after [`TestBroker::kill`]). A memory
    /// broker comes back empty: recreate the topics.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("broker running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    /// SIGSTOP: the broker keeps its sockets open but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`TestBroker::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// A consumer of every partition of `topic` from the beginning.
    pub fn consumer(&self, topic: &str) -> TestConsumer {
        TestConsumer::new(&self.bootstrap(), topic)
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_ref() {
            // A paused broker must be resumed to die promptly and cleanly.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Reads a topic back, partitions assigned directly, from the beginning.
pub struct TestConsumer {
    consumer: BaseConsumer,
    topic: String,
}

impl std::fmt::Debug for TestConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestConsumer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl TestConsumer {
    pub fn new(bootstrap: &str, topic: &str) -> TestConsumer {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "otwatch-test-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A memory broker that restarted starts its offsets again at 0.
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "50")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()
            .expect("test consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..TEST_PARTITIONS {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition offset");
        }
        consumer.assign(&tpl).expect("assign partitions");
        TestConsumer {
            consumer,
            topic: topic.to_owned(),
        }
    }

    /// Reads until `want` messages were read by this call or `timeout` passed; returns
    /// what was read.
    pub fn read(&self, want: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < deadline {
            // Errors are transient while a broker restarts or a topic is recreated.
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                out.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        out
    }

    /// Reads for `quiet` after the last message (or until `timeout`): everything there is.
    pub fn read_all(&self, quiet: Duration, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut last = Instant::now();
        while Instant::now() < deadline && last.elapsed() < quiet {
            let got = self.read(usize::MAX, Duration::from_millis(100));
            if !got.is_empty() {
                last = Instant::now();
                out.extend(got);
            }
        }
        out
    }
}

/// Counts messages by value (to check "at least once" and find duplicates).
pub fn count_by_value(msgs: &[Received]) -> HashMap<Vec<u8>, usize> {
    let mut m = HashMap::new();
    for r in msgs {
        *m.entry(r.value.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    m
}
