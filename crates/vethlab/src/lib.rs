//! A lab for `otwatch live` on a real interface: two network namespaces joined by a
//! veth pair. tcpreplay sends a capture into one end (the *send* side) and the sensor
//! captures on the other (the *sensor* side), so packets cross a real kernel path,
//! with kernel timestamps and socket buffers, yet touch no interface of the host.
//!
//! Both namespaces have IPv6 turned off (no router solicitations or duplicate address
//! detection on the wire under test) and their loopback up, so a sensor can serve its
//! metrics on 127.0.0.1 inside its namespace; [`VethLab::scrape`] reads them from
//! there with bash's `/dev/tcp`, without an HTTP client. Dropping the lab deletes both
//! namespaces, and with them the veth pair.
//!
//! Building a lab needs root (or `CAP_NET_ADMIN` and `CAP_SYS_ADMIN` for `ip netns`),
//! `ip` (iproute2), `tcpreplay` and `bash`. Whether to skip or fail where a lab cannot
//! be built is the caller's policy: [`VethLab::new`] only says why.
//!
//! Used by otwatch's live integration tests (a lab of its own per test, under
//! [`Names::unique`]) and by `cargo xtask bench --live` (fixed names, [`Names::fixed`]).
#![forbid(unsafe_code)]

use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The longest name an interface can have (`IFNAMSIZ` less the terminating NUL).
pub const MAX_NAME_LEN: usize = 15;

/// How often [`VethLab::wait_for`] scrapes.
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

/// Why a lab could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A name that cannot name both a namespace and an interface.
    #[error("`{name}` cannot name a namespace and its veth end (1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . _ -)")]
    BadName { name: String },
    /// Both sides under one name.
    #[error("the send and sensor sides are both named `{name}`")]
    SameName { name: String },
    /// A program the lab needs could not be started.
    #[error("{program} is not installed")]
    Missing { program: &'static str },
    /// A command could not be started or failed: the command, and its stderr (or why
    /// it could not be started).
    #[error("{command}: {stderr}")]
    Failed { command: String, stderr: String },
    /// What [`VethLab::wait_for`] waited for did not show in time.
    #[error("no `{what}` after {within:?}; last scrape:\n{last}")]
    Timeout {
        what: String,
        within: Duration,
        last: String,
    },
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// The names of a lab: each side's namespace and its veth end share one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    send: String,
    sensor: String,
    /// Delete namespaces of these names before building (fixed names only).
    replace_leftovers: bool,
}

impl Names {
    /// Names of their own for each call: `otws<tag>` (send) and `otwr<tag>` (sensor),
    /// the tag made of the process id and a counter with a dash between them (so that
    /// pid 12 with counter 34 and pid 123 with counter 4 differ), so that tests
    /// running in parallel, in one process or in several, each have a lab.
    pub fn unique() -> Names {
        let tag = format!(
            "{}-{}",
            std::process::id() % 100_000,
            UNIQUE.fetch_add(1, Ordering::Relaxed) % 100_000
        );
        Names {
            send: format!("otws{tag}"),
            sensor: format!("otwr{tag}"),
            replace_leftovers: false,
        }
    }

    /// Fixed names, for one lab at a time. Namespaces of these names left by an
    /// earlier run that was killed before it could clean up are deleted first.
    pub fn fixed(send: &str, sensor: &str) -> Names {
        Names {
            send: send.to_owned(),
            sensor: sensor.to_owned(),
            replace_leftovers: true,
        }
    }

    /// The send side's namespace and veth end.
    pub fn send(&self) -> &str {
        &self.send
    }

    /// The sensor side's namespace and veth end.
    pub fn sensor(&self) -> &str {
        &self.sensor
    }

    fn check(&self) -> Result<(), LabError> {
        for name in [&self.send, &self.sensor] {
            let fits = (1..=MAX_NAME_LEN).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !fits {
                return Err(LabError::BadName { name: name.clone() });
            }
        }
        if self.send == self.sensor {
            return Err(LabError::SameName {
                name: self.send.clone(),
            });
        }
        Ok(())
    }
}

/// Two network namespaces joined by a veth pair, both ends up; deleted on drop.
#[derive(Debug)]
pub struct VethLab {
    names: Names,
    /// Which namespaces (send, sensor) this lab made, and so deletes.
    made: [bool; 2],
}

impl VethLab {
    /// Builds the lab: the two namespaces (IPv6 off, loopback up), then the veth pair
    /// between them, both ends up. If a step fails, the namespaces this call made are
    /// deleted (never one it did not make, such as another lab's).
    pub fn new(names: Names) -> Result<VethLab, LabError> {
        names.check()?;
        if Command::new("tcpreplay").arg("-V").output().is_err() {
            return Err(LabError::Missing {
                program: "tcpreplay",
            });
        }
        if names.replace_leftovers {
            for ns in [&names.send, &names.sensor] {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
        // From here, if a step fails, the drop deletes the namespaces made so far.
        let mut lab = VethLab {
            names,
            made: [false; 2],
        };
        let VethLab { names, made } = &mut lab;
        for (ns, made) in [&names.send, &names.sensor].into_iter().zip(made) {
            run(Command::new("ip").args(["netns", "add", ns]))?;
            *made = true;
            run(Command::new("ip").args([
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]))?;
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]))?;
        }
        let (send, sensor) = (lab.send_ns(), lab.sensor_ns());
        run(Command::new("ip").args([
            "link",
            "add",
            lab.send_if(),
            "netns",
            send,
            "type",
            "veth",
            "peer",
            "name",
            lab.sensor_if(),
            "netns",
            sensor,
        ]))?;
        run(Command::new("ip").args(["-n", send, "link", "set", lab.send_if(), "up"]))?;
        run(Command::new("ip").args(["-n", sensor, "link", "set", lab.sensor_if(), "up"]))?;
        Ok(lab)
    }

    /// The namespace tcpreplay sends from.
    pub fn send_ns(&self) -> &str {
        &self.names.send
    }

    /// The send side's veth end (in [`Self::send_ns`]).
    pub fn send_if(&self) -> &str {
        &self.names.send
    }

    /// The namespace the sensor runs in.
    pub fn sensor_ns(&self) -> &str {
        &self.names.sensor
    }

    /// The sensor side's veth end (in [`Self::sensor_ns`]): what the sensor captures on.
    pub fn sensor_if(&self) -> &str {
        &self.names.sensor
    }

    /// `program ARGS` inside the sensor's namespace (for a sensor:
    /// `live -i <sensor_if> ...`). The caller sets stdio and spawns it.
    pub fn sensor_command<I, S>(&self, program: &Path, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.sensor_ns()])
            .arg(program)
            .args(args);
        cmd
    }

    /// `tcpreplay -q -i <send_if> ARGS PCAP` inside the send namespace; `args` are its
    /// pacing and looping options (none: the capture's own pace).
    pub fn send_command<I, S>(&self, pcap: &Path, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.send_ns(),
            "tcpreplay",
            "-q",
            "-i",
            self.send_if(),
        ])
        .args(args)
        .arg(pcap);
        cmd
    }

    /// Sends `pcap` into the wire with [`Self::send_command`] and waits until
    /// tcpreplay is done.
    pub fn send<I, S>(&self, pcap: &Path, args: I) -> Result<(), LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(&mut self.send_command(pcap, args))
    }

    /// The answer of the metrics endpoint at `addr` inside the sensor's namespace
    /// (status line and headers included), or "" if nothing answers (yet).
    pub fn scrape(&self, addr: SocketAddr) -> String {
        Command::new("ip")
            .args(["netns", "exec", self.sensor_ns(), "bash", "-c"])
            .arg(scrape_script(addr))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Scrapes `addr` until `ready` holds for the text, then returns that text;
    /// [`LabError::Timeout`] (naming `what`, with the last text) after `within`.
    pub fn wait_for(
        &self,
        addr: SocketAddr,
        what: &str,
        within: Duration,
        mut ready: impl FnMut(&str) -> bool,
    ) -> Result<String, LabError> {
        let start = Instant::now();
        loop {
            let text = self.scrape(addr);
            if ready(&text) {
                return Ok(text);
            }
            if start.elapsed() >= within {
                return Err(LabError::Timeout {
                    what: what.to_owned(),
                    within,
                    last: text,
                });
            }
            thread::sleep(SCRAPE_EVERY);
        }
    }

    /// Waits until the endpoint at `addr` reports `sample`, a whole line such as
    /// `otwatch_packets_total 560`; returns the text that did.
    pub fn wait_for_metric(
        &self,
        addr: SocketAddr,
        sample: &str,
        within: Duration,
    ) -> Result<String, LabError> {
        self.wait_for(addr, sample, within, |text| {
            text.lines().any(|l| l == sample)
        })
    }
}

impl Drop for VethLab {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for (ns, made) in [self.send_ns(), self.sensor_ns()]
            .into_iter()
            .zip(self.made)
        {
            if made {
                let _ = Command::new("ip").args(["netns", "del", ns]).output();
            }
        }
    }
}

/// A bash script that sends `GET /metrics` to `addr` and prints the answer.
fn scrape_script(addr: SocketAddr) -> String {
    format!(
        "exec 3<>/dev/tcp/{}/{} && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3",
        addr.ip(),
        addr.port()
    )
}

/// Runs `cmd` to its end; [`LabError::Failed`] with its stderr unless it succeeds.
fn run(cmd: &mut Command) -> Result<(), LabError> {
    tracing::debug!(command = ?cmd, "veth lab");
    let command = format!("{cmd:?}");
    let failed = |stderr: String| LabError::Failed {
        command: command.clone(),
        stderr,
    };
    let out = cmd.output().map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::fs;
    use std::mem::ManuallyDrop;
    use std::net::{Ipv4Addr, SocketAddrV4};

    const LOCAL_9300: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9300));

    /// A lab value that was never built and deletes nothing when it goes.
    fn unbuilt(send: &str, sensor: &str) -> ManuallyDrop<VethLab> {
        ManuallyDrop::new(VethLab {
            names: Names::fixed(send, sensor),
            made: [false; 2],
        })
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn unique_names_differ_and_fit_an_interface_name() {
        let all: Vec<Names> = (0..1000).map(|_| Names::unique()).collect();
        let mut seen = HashSet::new();
        for names in &all {
            assert!(names.check().is_ok(), "{names:?}");
            assert!(names.send().starts_with("otws"), "{names:?}");
            assert!(names.sensor().starts_with("otwr"), "{names:?}");
            // The same tag on both sides.
            assert_eq!(names.send().get(4..), names.sensor().get(4..));
            assert!(!names.replace_leftovers);
            assert!(seen.insert(names.send().to_owned()), "{names:?} twice");
        }
        assert!(Names::fixed("otwsoakS", "otwsoakR").replace_leftovers);
    }

    #[test]
    fn names_that_cannot_name_an_interface_are_refused_before_any_command() {
        // Each of these is refused by `check`, which `new` runs before anything else:
        // no namespace of these names is ever asked for.
        for (send, sensor, bad) in [
            ("", "otwr1", ""),
            ("otws1", "sixteen-bytes-xx", "sixteen-bytes-xx"),
            ("otws/1", "otwr1", "otws/1"),
            ("otws 1", "otwr1", "otws 1"),
            ("otws1", "otwr\u{e9}", "otwr\u{e9}"),
        ] {
            match VethLab::new(Names::fixed(send, sensor)) {
                Err(LabError::BadName { name }) => assert_eq!(name, bad),
                other => panic!("{send:?}/{sensor:?}: {other:?}"),
            }
        }
        match VethLab::new(Names::fixed("otwsame", "otwsame")) {
            Err(LabError::SameName { name }) => assert_eq!(name, "otwsame"),
            other => panic!("{other:?}"),
        }
        // Fifteen bytes are allowed.
        assert!(Names::fixed("fifteen-bytes-x", "otwr1").check().is_ok());
    }

    #[test]
    fn the_sensor_runs_inside_its_namespace() {
        let lab = unbuilt("otwsA", "otwrA");
        let cmd = lab.sensor_command(Path::new("/bin/otwatch"), ["live", "-i", lab.sensor_if()]);
        assert_eq!(cmd.get_program(), "ip");
        assert_eq!(
            args(&cmd),
            [
                "netns",
                "exec",
                "otwrA",
                "/bin/otwatch",
                "live",
                "-i",
                "otwrA"
            ]
        );
    }

    #[test]
    fn tcpreplay_sends_from_the_other_namespace_options_before_the_capture() {
        let lab = unbuilt("otwsA", "otwrA");
        let cmd = lab.send_command(Path::new("x.pcap"), ["--pps", "2000"]);
        assert_eq!(cmd.get_program(), "ip");
        assert_eq!(
            args(&cmd),
            [
                "netns",
                "exec",
                "otwsA",
                "tcpreplay",
                "-q",
                "-i",
                "otwsA",
                "--pps",
                "2000",
                "x.pcap"
            ]
        );
        let cmd = lab.send_command(Path::new("x.pcap"), [""; 0]);
        assert_eq!(args(&cmd).last().map(String::as_str), Some("x.pcap"));
        assert_eq!(args(&cmd).len(), 8);
    }

    #[test]
    fn the_scrape_is_one_http_request_over_dev_tcp() {
        assert_eq!(
            scrape_script(LOCAL_9300),
            "exec 3<>/dev/tcp/127.0.0.1/9300 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
        );
    }

    #[test]
    fn a_failed_command_names_itself_and_its_stderr() {
        let err = run(Command::new("ip").args(["link", "show", "otw-nosuch0"]))
            .err()
            .map(|e| e.to_string());
        let err = err.expect("no such interface");
        assert!(
            err.starts_with("\"ip\" \"link\" \"show\" \"otw-nosuch0\": "),
            "{err}"
        );
        assert!(err.contains("otw-nosuch0\" does not exist"), "{err}");
        let err = run(&mut Command::new("otw-no-such-program"))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("\"otw-no-such-program\": ")),
            "{err:?}"
        );
    }

    /// Can this process build namespaces? (root; `ip` and tcpreplay present)
    fn lab_possible() -> bool {
        let root = fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            })
            .unwrap_or(false);
        let have = |p: &str| Command::new(p).arg("-V").output().is_ok();
        root && have("ip") && have("tcpreplay")
    }

    fn in_ns(ns: &str, argv: &[&str]) -> String {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    }

    fn namespaces() -> String {
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    fn listed(list: &str, ns: &str) -> bool {
        list.lines()
            .any(|l| l.split_whitespace().next() == Some(ns))
    }

    /// A classic little-endian pcap of `n` broadcast Ethernet frames of 60 bytes.
    fn broadcast_frames(n: u32) -> Vec<u8> {
        let mut pcap = Vec::new();
        pcap.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes()); // magic: µs, little-endian
        pcap.extend_from_slice(&2u16.to_le_bytes()); // version major
        pcap.extend_from_slice(&4u16.to_le_bytes()); // version minor
        pcap.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        pcap.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        pcap.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
        pcap.extend_from_slice(&1u32.to_le_bytes()); // linktype: Ethernet
        for i in 0..n {
            pcap.extend_from_slice(&1_700_000_000u32.to_le_bytes()); // ts seconds
            pcap.extend_from_slice(&(i * 1000).to_le_bytes()); // ts µs: 1 ms apart
            pcap.extend_from_slice(&60u32.to_le_bytes()); // captured length
            pcap.extend_from_slice(&60u32.to_le_bytes()); // original length
            pcap.extend_from_slice(&[0xff; 6]); // destination: broadcast
            pcap.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]); // source: locally administered
            pcap.extend_from_slice(&[0x88, 0xb5]); // EtherType: local experimental 1
            pcap.extend_from_slice(&[0; 46]); // payload to the 60-byte minimum
        }
        pcap
    }

    fn rx_packets(lab: &VethLab) -> u64 {
        let path = format!("/sys/class/net/{}/statistics/rx_packets", lab.sensor_if());
        in_ns(lab.sensor_ns(), &["cat", &path]).parse().unwrap_or(0)
    }

    #[test]
    fn a_lab_carries_frames_from_one_namespace_to_the_other_and_goes_on_drop() {
        if !lab_possible() {
            return;
        }
        let lab = VethLab::new(Names::unique()).expect("build a lab");
        let (send, sensor) = (lab.send_ns().to_owned(), lab.sensor_ns().to_owned());
        let list = namespaces();
        assert!(listed(&list, &send) && listed(&list, &sensor), "{list}");
        for ns in [&send, &sensor] {
            assert_eq!(
                in_ns(ns, &["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]),
                "1"
            );
            assert!(
                in_ns(ns, &["ip", "link", "show", "lo"]).contains(",UP"),
                "lo in {ns}"
            );
        }
        let sensor_link = in_ns(&sensor, &["ip", "link", "show", lab.sensor_if()]);
        assert!(
            sensor_link.contains("state UP") && sensor_link.contains("@if"),
            "{sensor_link}"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let pcap = dir.path().join("three.pcap");
        fs::write(&pcap, broadcast_frames(3)).expect("write pcap");
        let before = rx_packets(&lab);
        lab.send(&pcap, ["--topspeed"]).expect("tcpreplay");
        let start = Instant::now();
        while rx_packets(&lab) < before + 3 && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(rx_packets(&lab), before + 3);

        // A capture tcpreplay cannot read: its complaint comes back.
        let bad = dir.path().join("bad.pcap");
        fs::write(&bad, b"not a pcap").expect("write");
        match lab.send(&bad, [""; 0]) {
            Err(LabError::Failed { command, stderr }) => {
                assert!(command.contains("\"tcpreplay\""), "{command}");
                assert!(!stderr.is_empty());
            }
            other => panic!("{other:?}"),
        }

        // Nothing listens: an empty scrape, and a wait that gives up naming its goal.
        assert_eq!(lab.scrape(LOCAL_9300), "");
        let start = Instant::now();
        match lab.wait_for_metric(LOCAL_9300, "up 1", Duration::from_millis(300)) {
            Err(LabError::Timeout { what, within, last }) => {
                assert_eq!(what, "up 1");
                assert_eq!(within, Duration::from_millis(300));
                assert_eq!(last, "");
            }
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(300));

        drop(lab);
        let list = namespaces();
        assert!(!listed(&list, &send) && !listed(&list, &sensor), "{list}");
    }

    #[test]
    fn a_scrape_reads_what_a_server_in_the_sensor_namespace_answers() {
        if !lab_possible() || Command::new("python3").arg("-V").output().is_err() {
            return;
        }
        let lab = VethLab::new(Names::unique()).expect("build a lab");
        // One answer, then the server exits.
        let server = "import socket\n\
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
            s.bind(('127.0.0.1', 9300)); s.listen(1)\n\
            c, _ = s.accept(); c.recv(1024)\n\
            c.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\notwatch_packets_total 7\\n'); c.close()\n";
        let mut child = lab
            .sensor_command(Path::new("python3"), ["-c", server])
            .spawn()
            .expect("start the server");
        let text = lab.wait_for_metric(
            LOCAL_9300,
            "otwatch_packets_total 7",
            Duration::from_secs(10),
        );
        let _ = child.kill();
        let _ = child.wait();
        let text = text.expect("the server's answer");
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        // Not reachable from outside the namespace.
        let outside = Command::new("bash")
            .args(["-c", &scrape_script(LOCAL_9300)])
            .stderr(Stdio::null())
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        assert!(!String::from_utf8_lossy(&outside).contains("otwatch_packets_total 7"));
    }

    #[test]
    fn fixed_names_replace_what_an_earlier_run_left() {
        if !lab_possible() {
            return;
        }
        let tag = std::process::id() % 100_000;
        let (send, sensor) = (format!("otwfS{tag}"), format!("otwfR{tag}"));
        // A leftover: the sensor side's namespace of an earlier run.
        run(Command::new("ip").args(["netns", "add", &sensor])).expect("leftover");
        let lab = VethLab::new(Names::fixed(&send, &sensor)).expect("build over leftovers");
        assert!(in_ns(&sensor, &["ip", "link", "show", &sensor]).contains("state UP"));
        // Names that replace nothing: building over a namespace in use fails, naming
        // it, and deletes only what that attempt made, not the lab in use.
        let other = format!("otwfX{tag}");
        let taken = Names {
            replace_leftovers: false,
            ..Names::fixed(&other, &send)
        };
        match VethLab::new(taken) {
            Err(LabError::Failed { command, stderr }) => {
                assert!(
                    command.contains(&format!("\"add\" \"{send}\"")),
                    "{command}"
                );
                assert!(stderr.contains("exists"), "{stderr}");
            }
            other => panic!("{other:?}"),
        }
        let list = namespaces();
        assert!(listed(&list, &send) && listed(&list, &sensor), "{list}");
        assert!(!listed(&list, &other), "{list}");
        drop(lab);
        let list = namespaces();
        assert!(!listed(&list, &send) && !listed(&list, &sensor), "{list}");
    }
}
