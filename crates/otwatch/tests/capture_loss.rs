//! A mirror port drops packets, and what the sensor loses must not read as the
//! devices' fault. Each data-carrying TCP segment of public captures of every
//! protocol (`../shared/pcaps`) is dropped in turn; the replay of what is left must
//! hold no PDU with an anomaly that raises a `protocol_anomaly` alert unless the
//! whole capture holds the same PDU with the same anomalies.

mod common;

use std::collections::BTreeSet;
use std::fs;

use common::*;
use otwatch_capture::{CaptureFile, Format};
use otwatch_flow::{decode, L4};

/// Classic pcap captures, chosen for what a loss does to them: one request per
/// connection (`zeek_modbusSmall`), one transaction id or request handle for every
/// request (`sv_modbus`, `iti_opc-ua-ap-method`), queued Publish requests
/// (`icsnpp_opcua_with-gap`), multi-frame S7comm-plus messages (`S7-1200-Uploading`),
/// a block download, DNP3 polling.
const CAPTURES: &[&str] = &[
    "modbus/sv_modbus.pcap",
    "modbus/zeek_modbusSmall.pcap",
    "s7comm/wswiki_S7-1200-Uploading-OB1-TIAV12.pcap",
    "s7comm/wswiki_s7comm_downloading_block_db1.pcap",
    "opcua/iti_opc-ua-ap-method-wireshark-freeze.pcap",
    "opcua/icsnpp_opcua_with-gap.pcap",
    "dnp3/dbond_dnp3_test_data_part1.pcap",
];

#[test]
fn losing_any_one_segment_raises_no_protocol_anomaly() {
    if !have_shared_pcaps() {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let lossy = dir.path().join("lossy.pcap");
    let mut failures = Vec::new();
    let mut dropped = 0;
    for name in CAPTURES {
        let capture = read(name);
        let whole = anomalous_events(&capture.path);
        let data: Vec<_> = capture.records.iter().filter(|r| r.data).collect();
        assert!(data.len() >= 10, "{name}: {} data segments", data.len());
        for r in data {
            let new = new_anomalies(&whole, &capture.bytes, (r.start, r.end), &lossy);
            if !new.is_empty() {
                failures.push(format!("{name}, record at {} dropped: {new:?}", r.start));
            }
            dropped += 1;
        }
    }
    assert!(
        dropped > 300,
        "suspiciously few segments dropped: {dropped}"
    );
    assert!(
        failures.is_empty(),
        "{} of {dropped} losses raised a protocol_anomaly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Losses in captures too long to drop every segment of here, each of which raised a
/// false alert once: the first and last frame lost (as tshark counts them, from 1).
const SINGLE_LOSSES: &[(&str, (usize, usize), &str)] = &[
    (
        "modbus/iti_modbus_test.pcap",
        (1883, 1883),
        "request 17413, whose answer a gateway sends after that of 17414",
    ),
    (
        "modbus/iti_modbus_test.pcap",
        (47, 47),
        "the answer to 503; the master then sends three requests with id 504, \
         each of which waits for its answer",
    ),
    (
        "modbus/iti_modbus_test.pcap",
        (1810, 1810),
        "the answer to 17389; the gateway answers 17391 before 17390",
    ),
    (
        "modbus/iti_plant1_modbustcp.pcap",
        (2, 2),
        "the first request the capture would have shown of a connection it joined: \
         the server acknowledges it, and answers it after the next request",
    ),
    (
        "modbus/iti_mb2.pcap",
        (86, 86),
        "an S7 PLC's first answer (setup, PDU reference 1) after the capture joined \
         the connection: the client's next job with reference 1 paired with the setup",
    ),
    (
        "s7comm/ndpi_s7comm.pcap",
        (41, 42),
        "the PLC's download-block job, and the PG's segment before it: the PG's \
         answer, held behind that hole, acknowledged the job the sensor never saw",
    ),
    (
        "dnp3/icsnpp_dnp3_example.pcap",
        (6, 7),
        "the end of a response and the next request: the answer to that request, held \
         behind the hole, acknowledged it, and spans two segments",
    ),
    (
        "modbus/sv_modbus.pcap",
        (55, 57),
        "an answer, its acknowledgment and the next request of a master that uses \
         transaction id 1 for every request: the next answer (FC 3) paired with the \
         request before (FC 1)",
    ),
    (
        "opcua/iti_opc-ua-ap-method-wireshark-freeze.pcap",
        (20, 22),
        "the last segment of an answer, its acknowledgment and the next request of a \
         client that uses request handle 1 for every request: the next answer \
         (CreateSession) paired with the request before (GetEndpoints)",
    ),
];

#[test]
fn single_losses_in_long_captures_raise_no_protocol_anomaly() {
    if !have_shared_pcaps() {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let lossy = dir.path().join("lossy.pcap");
    for &(name, (first, last), what) in SINGLE_LOSSES {
        let capture = read(name);
        let (Some(from), Some(to)) = (
            capture.records.get(first - 1),
            capture.records.get(last - 1),
        ) else {
            panic!("{name}: no frames {first}-{last}");
        };
        assert!(from.data, "{name}: frame {first} carries no TCP payload");
        let (path, bytes) = (&capture.path, &capture.bytes);
        let new = new_anomalies(&anomalous_events(path), bytes, (from.start, to.end), &lossy);
        assert!(
            new.is_empty(),
            "{name}, frames {first}-{last} ({what}) lost: {new:?}"
        );
    }
}

/// A public classic pcap capture, read by the capture crate.
struct Capture {
    path: std::path::PathBuf,
    bytes: Vec<u8>,
    records: Vec<Record>,
}

/// A record of a classic pcap file.
struct Record {
    /// Its byte range in the file, header included.
    start: usize,
    end: usize,
    /// It carries TCP payload.
    data: bool,
}

fn read(name: &str) -> Capture {
    let path = shared_pcaps().join(name);
    let file = CaptureFile::open(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(file.format(), Format::Pcap, "{name}: not a classic pcap");
    let records = file
        .packets()
        .map(|p| {
            let p = p.unwrap_or_else(|e| panic!("{name}: {e}"));
            let start = usize::try_from(p.offset).expect("offset");
            Record {
                start,
                // The 16-byte record header, then the captured bytes.
                end: start + 16 + p.data.len(),
                data: decode(p.linktype, p.data)
                    .is_ok_and(|d| matches!(d.l4, L4::Tcp(t) if !t.payload.is_empty())),
            }
        })
        .collect();
    let bytes = file.bytes().to_vec();
    Capture {
        path,
        bytes,
        records,
    }
}

/// Writes `bytes` without the record at `start..end` to `lossy`, replays it, and
/// returns the anomalous events that `whole` (the whole capture's) does not hold.
fn new_anomalies(
    whole: &BTreeSet<String>,
    bytes: &[u8],
    (start, end): (usize, usize),
    lossy: &std::path::Path,
) -> Vec<String> {
    let mut cut = bytes[..start].to_vec();
    cut.extend_from_slice(&bytes[end..]);
    fs::write(lossy, &cut).expect("write the lossy capture");
    anomalous_events(lossy).difference(whole).cloned().collect()
}

/// The events of a replay whose anomalies raise a `protocol_anomaly` alert: without
/// `resync` and the `unmatched_response` it explains, as the rule engine reads them
/// (`crates/rules/src/engine.rs`, "Capture loss"). Events, not alerts: the engine
/// reports a repeated anomaly between the same hosts once, so a loss on one
/// connection may move the report of a device's real anomaly to another PDU.
fn anomalous_events(pcap: &std::path::Path) -> BTreeSet<String> {
    events_of(pcap, &[])
        .into_iter()
        .filter_map(|v| {
            let mut flags: Vec<&str> = v["anomalies"]
                .as_array()?
                .iter()
                .filter_map(|a| a.as_str())
                .collect();
            if flags.contains(&"resync") {
                flags.retain(|&a| a != "resync" && a != "unmatched_response");
            }
            if flags.is_empty() {
                return None;
            }
            let protocol = v["protocol"].as_str()?;
            Some(format!(
                "{} {} {flags:?} {}",
                v["flow"]["community_id"], v["direction"], v[protocol]
            ))
        })
        .collect()
}
