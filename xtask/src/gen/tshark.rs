//! Test helpers: a generated capture as tshark (an independent dissector) sees it,
//! frame by frame, for the cross-checks of the DNP3 and OPC UA captures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::expect::rfc3339_micros;
use super::tcp::Capture;

/// Is tshark on PATH? In CI its absence is a failure, elsewhere a skip.
#[allow(clippy::print_stderr)]
pub fn available(what: &str) -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required in CI to cross-check the generated captures"
        );
        eprintln!("tshark not on PATH: skipping the cross-check of {what}");
    }
    ok
}

/// A fresh directory under the system's temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("otwatch-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One frame: its time (RFC 3339, as in the expected events), its number, and every
/// occurrence of each field asked for (empty: absent).
#[derive(Debug)]
pub struct Frame {
    pub ts: String,
    pub number: usize,
    pub fields: BTreeMap<String, Vec<String>>,
}

impl Frame {
    pub fn all(&self, field: &str) -> Vec<&str> {
        self.fields
            .get(field)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

/// Microseconds since the epoch from tshark's `frame.time_epoch` (`secs.nanos`).
fn epoch_micros(s: &str) -> u64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let frac = format!("{frac:0<6}");
    secs.parse::<u64>().unwrap() * 1_000_000 + frac[..6].parse::<u64>().unwrap()
}

/// Writes `cap` as `<dir>/<name>.pcap` + expected events and reads it back with tshark
/// (`extra` options first): every frame, with `fields`. Asserts that no frame is
/// malformed and that IP and TCP/UDP checksums verify.
pub fn frames(
    cap: &Capture,
    dir: &Path,
    name: &str,
    extra: &[&str],
    fields: &[&str],
) -> (Vec<Frame>, String) {
    let stem = name.replace('/', "_");
    cap.write(dir, &stem).unwrap();
    let pcap = dir.join(format!("{stem}.pcap"));
    let expected = std::fs::read_to_string(dir.join(format!("{stem}.expected.jsonl"))).unwrap();
    let mut args: Vec<String> = [
        "-r",
        pcap.to_str().unwrap(),
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect();
    let head = [
        "frame.time_epoch",
        "_ws.malformed",
        "ip.checksum.status",
        "tcp.checksum.status",
        "udp.checksum.status",
    ];
    for a in [
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
    ] {
        args.push(a.into());
    }
    for f in head.iter().chain(fields) {
        args.push("-e".into());
        args.push((*f).into());
    }
    let out = Command::new("tshark").args(&args).output().unwrap();
    assert!(out.status.success(), "{name}: tshark failed");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut v = Vec::new();
    for (n, line) in stdout.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            cols.len(),
            head.len() + fields.len(),
            "{name} frame {}",
            n + 1
        );
        let ts = rfc3339_micros(epoch_micros(cols[0]));
        let at = format!("{name} frame {} ({ts})", n + 1);
        assert_eq!(cols[1], "", "{at}: malformed");
        assert_eq!(cols[2], "1", "{at}: bad IP checksum");
        assert!(
            matches!((cols[3], cols[4]), ("1", "") | ("", "1")),
            "{at}: bad TCP/UDP checksum"
        );
        let fields = fields
            .iter()
            .zip(&cols[head.len()..])
            .map(|(f, c)| {
                let list = if c.is_empty() {
                    vec![]
                } else {
                    // A null String/ByteString is shown as `<MISSING>`: no value.
                    c.split('|')
                        .filter(|v| *v != "<MISSING>")
                        .map(str::to_owned)
                        .collect()
                };
                ((*f).to_owned(), list)
            })
            .collect();
        v.push(Frame {
            ts,
            number: n + 1,
            fields,
        });
    }
    (v, expected)
}
