//! Generated test captures (`cargo xtask gen-pcaps`) and the benchmark capture.
//!
//! Every capture under `pcaps/` is written by this module together with
//! `<case>.expected.jsonl`: the events otwatch must report for it, derived from what the
//! generator put on the wire (never from otwatch's output). The output is
//! deterministic, so the committed files are checked by regenerating them (test
//! `committed_captures_are_up_to_date`), and the expected events are checked against
//! tshark, an independent dissector (test `expected_events_agree_with_tshark`).
//!
//! Code map: `wire` (Ethernet/IPv4/TCP frames, pcap files), `tcp` (connections and
//! captures), `modbus` (ADUs with their expected events), `s7` (TPKT/COTP/S7comm PDUs
//! with their expected events), `dnp3` (link frames, transport segments and
//! application fragments with their expected events), `opcua` (UA TCP messages and
//! chunks with their expected events), `expect` (JSON lines, Community ID,
//! timestamps), `scenarios`, `s7_scenarios`, `dnp3_scenarios` and `opcua_scenarios`
//! (one function per capture), `tshark` (test helpers reading captures back), `rules` (captures
//! with a policy and the alerts they must raise, under `pcaps/rules/`, and the demo's
//! expected alerts), `bench` (the large benchmark capture).

use std::path::Path;

mod bench;
mod dnp3;
mod dnp3_scenarios;
mod expect;
mod modbus;
mod opcua;
mod opcua_scenarios;
mod rules;
mod s7;
mod s7_scenarios;
mod scenarios;
mod tcp;
#[cfg(test)]
mod tshark;
mod wire;

pub use bench::Traffic;

/// Writes every generated capture and its expected results into `out_dir` (the repo's
/// `pcaps/`). Deterministic: byte-identical output on every run.
pub fn gen_pcaps(out_dir: &Path) -> anyhow::Result<()> {
    let cases = scenarios::CASES
        .iter()
        .chain(s7_scenarios::CASES)
        .chain(dnp3_scenarios::CASES)
        .chain(opcua_scenarios::CASES);
    for (name, build) in cases {
        let cap = build()?;
        let path = out_dir.join(name);
        let (dir, stem) = match (path.parent(), path.file_name().and_then(|s| s.to_str())) {
            (Some(dir), Some(stem)) => (dir.to_path_buf(), stem.to_owned()),
            _ => anyhow::bail!("bad capture name {name}"),
        };
        cap.write(&dir, &stem)?;
    }
    let rules_dir = out_dir.join("rules");
    for (name, build) in rules::CASES {
        build().write(&rules_dir, name)?;
    }
    let demo_alerts: String = rules::demo_alerts()
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        out_dir.join("demo-plant.expected-alerts.jsonl"),
        demo_alerts,
    )?;
    Ok(())
}

/// Writes a large Modbus-heavy benchmark capture (classic pcap, Ethernet) with at least
/// `packets` packets to `path`: ~50 long-lived client->server connections (handshake at
/// the start, never closed), polling FC3/FC4/FC1 with responses, about 2% writes
/// (FC6/FC16), 60-200 byte frames, timestamps 1 ms apart, deterministic; or the same
/// packets made unrecognisable (see [`Traffic::Unclaimed`]).
pub fn gen_bench_pcap(path: &Path, packets: u64, traffic: Traffic) -> anyhow::Result<()> {
    bench::write_bench(path, packets, traffic)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::Command;

    use serde_json::Value;

    use super::*;

    fn committed_dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../pcaps"))
    }

    /// A fresh directory under the system's temp dir.
    fn temp_dir(tag: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("otwatch-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Every `.pcap` and `.jsonl` below `dir`, relative to it.
    fn generated_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("pcap" | "jsonl" | "toml")
                ) {
                    out.push(p.strip_prefix(dir).unwrap().to_path_buf());
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn committed_captures_are_up_to_date() {
        let tmp = temp_dir("gen-pcaps");
        gen_pcaps(&tmp).unwrap();
        let fresh = generated_files(&tmp);
        // Each scenario: capture and events; each rule case: capture, policy and
        // alerts; and the demo's alerts.
        assert_eq!(
            fresh.len(),
            2 * (scenarios::CASES.len()
                + s7_scenarios::CASES.len()
                + dnp3_scenarios::CASES.len()
                + opcua_scenarios::CASES.len())
                + 3 * rules::CASES.len()
                + 1
        );
        assert_eq!(
            fresh,
            generated_files(&committed_dir()),
            "pcaps/ holds other generated files than gen_pcaps writes: run `cargo xtask gen-pcaps`"
        );
        for rel in &fresh {
            let a = std::fs::read(tmp.join(rel)).unwrap();
            let b = std::fs::read(committed_dir().join(rel)).unwrap();
            assert!(
                a == b,
                "pcaps/{} differs from what the generator writes: run `cargo xtask gen-pcaps`",
                rel.display()
            );
        }
        // And twice in a row gives the same bytes.
        let again = temp_dir("gen-pcaps");
        gen_pcaps(&again).unwrap();
        for rel in &fresh {
            assert_eq!(
                std::fs::read(tmp.join(rel)).unwrap(),
                std::fs::read(again.join(rel)).unwrap(),
                "{}",
                rel.display()
            );
        }
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_dir_all(&again);
    }

    /// The rule cases' captures as tshark sees them: every frame with good IP and TCP
    /// checksums and not malformed (but in `protocol_anomaly`, malformed on purpose);
    /// and each expected alert's timestamp is a frame that can trigger it: a SYN of the
    /// flow for `new_asset`, its FIN or RST for a `new_conduit` decided at the flow's
    /// end (`tcp/PORT`), and for a PDU alert a frame from the flow's client to its
    /// server, in which tshark sees a PDU of the alert's protocol (Modbus, S7comm, a
    /// DNP3 application fragment, an OPC UA message) unless the alert is an anomaly.
    #[test]
    #[allow(clippy::print_stderr)]
    fn rule_captures_agree_with_tshark() {
        if !tshark_on_path() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tshark is required in CI to cross-check the generated captures"
            );
            eprintln!("tshark not on PATH: skipping the cross-check of pcaps/rules");
            return;
        }
        let dir = temp_dir("tshark-rules");
        gen_pcaps(&dir).unwrap();
        for (name, _) in rules::CASES {
            let pcap = dir.join(format!("rules/{name}.pcap"));
            let fields = [
                "frame.time_epoch",
                "_ws.malformed",
                "ip.checksum.status",
                "tcp.checksum.status",
                "ip.src",
                "tcp.srcport",
                "ip.dst",
                "tcp.dstport",
                "tcp.flags.syn",
                "tcp.flags.fin",
                "tcp.flags.reset",
                "modbus.func_code",
                "s7comm.header.rosctr",
                "dnp3.al.func",
                "opcua.transport.type",
                "icmp.checksum.status",
                "icmp.type",
                "icmp.code",
            ];
            let mut args: Vec<String> = [
                "-r",
                pcap.to_str().unwrap(),
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
                "--disable-protocol",
                "http",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-E",
                "occurrence=f",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            for f in fields {
                args.push("-e".into());
                args.push(f.into());
            }
            let out = Command::new("tshark").args(&args).output().unwrap();
            assert!(out.status.success(), "{name}: tshark failed");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let mut frames: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
            for (n, line) in stdout.lines().enumerate() {
                let cols: Vec<&str> = line.split('\t').collect();
                assert_eq!(cols.len(), fields.len(), "{name} frame {}", n + 1);
                let ts = expect::rfc3339_micros(epoch_micros(cols[0]));
                let at = format!("{name} frame {} ({ts})", n + 1);
                if *name != "protocol_anomaly" {
                    assert_eq!(cols[1], "", "{at}: malformed");
                }
                // A TCP segment's checksum, or an ICMP message's.
                let transport_sum = if cols[15].is_empty() {
                    cols[3]
                } else {
                    cols[15]
                };
                assert_eq!((cols[2], transport_sum), ("1", "1"), "{at}: bad checksum");
                let f = fields
                    .iter()
                    .copied()
                    .zip(cols.iter().map(|c| (*c).to_owned()))
                    .collect();
                assert!(frames.insert(ts, f).is_none(), "{at}: two frames, one time");
            }
            let alerts =
                std::fs::read_to_string(dir.join(format!("rules/{name}.expected-alerts.jsonl")))
                    .unwrap();
            for line in alerts.lines() {
                let a: Value = serde_json::from_str(line).unwrap();
                let ts = a["timestamp"].as_str().unwrap();
                let kind = a["alert"]["kind"].as_str().unwrap();
                let at = format!("{name}: {kind} at {ts}");
                let f = frames
                    .get(ts)
                    .unwrap_or_else(|| panic!("{at}: no frame then"));
                let flow = &a["flow"];
                let ends = [
                    (
                        flow["src_ip"].as_str().unwrap(),
                        flow["src_port"].to_string(),
                    ),
                    (
                        flow["dst_ip"].as_str().unwrap(),
                        flow["dst_port"].to_string(),
                    ),
                ];
                let from = (f["ip.src"].as_str(), f["tcp.srcport"].clone());
                let to = (f["ip.dst"].as_str(), f["tcp.dstport"].clone());
                let forward = from == ends[0] && to == ends[1];
                let backward = from == ends[1] && to == ends[0];
                let set = |k: &str| matches!(f[k].as_str(), "1" | "True");
                let protocol = a["protocol"].as_str().unwrap_or("");
                if kind == "new_asset" && flow["transport"] == "icmp" {
                    // ICMP makes no flow: the packet itself, its type and code as ports.
                    let icmp = (
                        f["ip.src"].as_str(),
                        f["icmp.type"].clone(),
                        f["ip.dst"].as_str(),
                        f["icmp.code"].clone(),
                    );
                    assert_eq!(
                        icmp,
                        (ends[0].0, ends[0].1.clone(), ends[1].0, ends[1].1.clone()),
                        "{at}: not the ICMP message"
                    );
                } else if kind == "new_asset" {
                    assert!(forward && set("tcp.flags.syn"), "{at}: not the flow's SYN");
                } else if protocol.starts_with("tcp/") {
                    assert!(
                        (forward || backward) && (set("tcp.flags.fin") || set("tcp.flags.reset")),
                        "{at}: not the flow's FIN or RST"
                    );
                } else {
                    assert_eq!(a["direction"], "to_server", "{at}");
                    assert!(forward, "{at}: not a frame from the flow's client");
                    if kind != "protocol_anomaly" {
                        let field = match protocol {
                            "s7comm" => "s7comm.header.rosctr",
                            "dnp3" => "dnp3.al.func",
                            "opcua" => "opcua.transport.type",
                            _ => "modbus.func_code",
                        };
                        assert_ne!(f[field], "", "{at}: tshark sees no {protocol} PDU");
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// PDUs tshark 4.0 does not show, with the reason; otwatch must still report them.
    const TSHARK_BLIND: &[(&str, &str, &str)] = &[(
        "modbus/split_adu",
        "2026-11-20T10:00:00.401400Z",
        "the request's first segment holds 5 bytes; tshark's Modbus/TCP dissector needs 8 \
         to recognise a PDU start, so it never reassembles it",
    )];

    /// The tshark fields compared, per frame, against the expected events.
    const FIELDS: &[&str] = &[
        "ip.src",
        "tcp.srcport",
        "mbtcp.trans_id",
        "mbtcp.unit_id",
        "modbus.func_code",
        "modbus.exception_code",
        "modbus.reference_num",
        "modbus.read_reference_num",
        "modbus.write_reference_num",
        "modbus.regnum16",
        "modbus.regval_uint16",
        "modbus.bitnum",
        "modbus.bitval",
        "modbus.and_mask",
        "modbus.or_mask",
        "modbus.diagnostic_code",
        "modbus.mei",
        "modbus.object_str_value",
        "modbus.data",
    ];

    /// What tshark must show for the PDUs `evs` completed by one frame; `None` for a
    /// field that is not compared in this frame.
    fn expected_fields(evs: &[&Value]) -> BTreeMap<&'static str, Option<Vec<String>>> {
        let m = |e: &Value, k: &str| e["modbus"][k].clone();
        let num = |e: &Value, k: &str| m(e, k).as_u64();
        let fc = |e: &Value| num(e, "function_code").unwrap_or(0);
        let to_server = |e: &Value| e["direction"] == "to_server";
        let exc = |e: &Value| num(e, "exception_code").is_some();
        let values = |e: &Value| -> Vec<u64> {
            m(e, "values")
                .as_array()
                .map_or(vec![], |v| v.iter().filter_map(Value::as_u64).collect())
        };
        let mut f: BTreeMap<&'static str, Option<Vec<String>>> = BTreeMap::new();
        let mut put = |k: &'static str, v: Vec<String>| {
            f.insert(k, Some(v));
        };
        let all = |g: &dyn Fn(&Value) -> String| evs.iter().map(|e| g(e)).collect::<Vec<_>>();
        // One frame, one sender.
        let e0 = evs[0];
        let (ip, port) = if to_server(e0) {
            (&e0["flow"]["src_ip"], &e0["flow"]["src_port"])
        } else {
            (&e0["flow"]["dst_ip"], &e0["flow"]["dst_port"])
        };
        put("ip.src", vec![ip.as_str().unwrap().to_owned()]);
        put("tcp.srcport", vec![port.to_string()]);
        put(
            "mbtcp.trans_id",
            all(&|e| m(e, "transaction_id").to_string()),
        );
        put("mbtcp.unit_id", all(&|e| m(e, "unit_id").to_string()));
        put("modbus.func_code", all(&|e| fc(e).to_string()));
        let sel = |p: &dyn Fn(&Value) -> bool, g: &dyn Fn(&Value) -> Vec<String>| {
            evs.iter()
                .filter(|e| p(e))
                .flat_map(|e| g(e))
                .collect::<Vec<_>>()
        };
        put(
            "modbus.exception_code",
            sel(&|e| exc(e), &|e| vec![m(e, "exception_code").to_string()]),
        );
        // The reference number where it is on the wire.
        let wire_address = |e: &Value| {
            !exc(e)
                && if to_server(e) {
                    matches!(fc(e), 1..=6 | 15 | 16 | 22)
                } else {
                    matches!(fc(e), 5 | 6 | 15 | 16 | 22)
                }
        };
        put(
            "modbus.reference_num",
            sel(&wire_address, &|e| vec![m(e, "address").to_string()]),
        );
        let rw_req = |e: &Value| fc(e) == 23 && to_server(e);
        put(
            "modbus.read_reference_num",
            sel(&rw_req, &|e| vec![m(e, "read_address").to_string()]),
        );
        put(
            "modbus.write_reference_num",
            sel(&rw_req, &|e| vec![m(e, "address").to_string()]),
        );
        // Registers and bits as tshark numbers them (from the request's address).
        let regs = |e: &Value| {
            !exc(e) && ((matches!(fc(e), 3 | 4) && !to_server(e)) || (fc(e) == 16 && to_server(e)))
        };
        let bits = |e: &Value| !exc(e) && matches!(fc(e), 1 | 2) && !to_server(e);
        let numbered = |e: &Value| -> Vec<String> {
            let a = num(e, "address").unwrap_or(0);
            (0..values(e).len() as u64)
                .map(|i| (a + i).to_string())
                .collect()
        };
        let vals = |e: &Value| values(e).iter().map(u64::to_string).collect();
        // A response whose request was not captured has no address: tshark numbers its
        // registers from 0, otwatch reports none, so do not compare numbers there.
        let addressed = evs
            .iter()
            .all(|e| !(regs(e) || bits(e)) || num(e, "address").is_some());
        let regnum = addressed.then(|| sel(&regs, &numbered));
        put("modbus.regval_uint16", sel(&regs, &vals));
        let bitnum = addressed.then(|| sel(&bits, &numbered));
        put("modbus.bitval", sel(&bits, &vals));
        let hex =
            |k: &'static str| move |e: &Value| vec![format!("0x{:04x}", num(e, k).unwrap_or(0))];
        put("modbus.and_mask", sel(&|e| fc(e) == 22, &hex("and_mask")));
        put("modbus.or_mask", sel(&|e| fc(e) == 22, &hex("or_mask")));
        put(
            "modbus.diagnostic_code",
            sel(&|e| fc(e) == 8, &|e| vec![m(e, "sub_function").to_string()]),
        );
        put(
            "modbus.mei",
            sel(&|e| fc(e) == 43, &|e| vec![m(e, "mei_type").to_string()]),
        );
        put(
            "modbus.object_str_value",
            sel(&|e| fc(e) == 43 && !to_server(e), &|e| {
                m(e, "device_id").as_array().map_or(vec![], |objs| {
                    objs.iter()
                        .map(|o| o["value"].as_str().unwrap_or("").to_owned())
                        .collect()
                })
            }),
        );
        // Raw data bytes: compared where they are the whole story (FC5/FC6 value) or
        // start with the UMAS header (session key, then function or status); a trailing
        // '*' means "starts with".
        let data_known = evs.iter().all(|e| !exc(e) && matches!(fc(e), 5 | 6 | 90));
        let data = data_known.then(|| {
            evs.iter()
                .map(|e| match fc(e) {
                    5 => if values(e) == [1] { "ff00" } else { "0000" }.to_owned(),
                    6 => format!("{:04x}", values(e).first().copied().unwrap_or(0)),
                    _ => {
                        let u = &e["modbus"]["umas"];
                        let second = if to_server(e) {
                            &u["function_code"]
                        } else {
                            &u["status"]
                        };
                        format!(
                            "{:02x}{:02x}*",
                            u["session_key"].as_u64().unwrap_or(0),
                            second.as_u64().unwrap_or(0)
                        )
                    }
                })
                .collect()
        });
        f.insert("modbus.regnum16", regnum);
        f.insert("modbus.bitnum", bitnum);
        f.insert("modbus.data", data);
        f
    }

    fn tshark_on_path() -> bool {
        Command::new("tshark")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// Microseconds since the epoch from tshark's `frame.time_epoch` (`secs.nanos`).
    fn epoch_micros(s: &str) -> u64 {
        let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
        let frac = format!("{frac:0<6}");
        secs.parse::<u64>().unwrap() * 1_000_000 + frac[..6].parse::<u64>().unwrap()
    }

    #[test]
    #[allow(clippy::print_stderr)]
    fn expected_events_agree_with_tshark() {
        if !tshark_on_path() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tshark is required in CI to cross-check the generated captures"
            );
            eprintln!("tshark not on PATH: skipping the cross-check of pcaps/");
            return;
        }
        // Freshly generated files (committed_captures_are_up_to_date ties them to pcaps/).
        let dir = temp_dir("tshark");
        gen_pcaps(&dir).unwrap();
        let mut compared = 0;
        for (name, _) in scenarios::CASES {
            let pcap = dir.join(format!("{name}.pcap"));
            let expected = std::fs::read_to_string(dir.join(format!("{name}.expected.jsonl")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let events: Vec<Value> = expected
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            let mut by_time: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
            for e in &events {
                by_time
                    .entry(e["timestamp"].as_str().unwrap().to_owned())
                    .or_default()
                    .push(e);
            }
            let mut args: Vec<String> = [
                "-r",
                pcap.to_str().unwrap(),
                "-o",
                "tcp.reassemble_out_of_order:TRUE",
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
                // garbage.pcap's garbage is an HTTP request: keep HTTP's heuristics from
                // taking over the Modbus stream.
                "--disable-protocol",
                "http",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-E",
                "occurrence=a",
                "-E",
                "aggregator=|",
                "-e",
                "frame.time_epoch",
                "-e",
                "_ws.malformed",
                "-e",
                "ip.checksum.status",
                "-e",
                "tcp.checksum.status",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            for f in FIELDS {
                args.push("-e".into());
                args.push((*f).into());
            }
            let out = Command::new("tshark").args(&args).output().unwrap();
            assert!(out.status.success(), "{name}: tshark failed");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let mut seen_modbus = 0;
            for (n, line) in stdout.lines().enumerate() {
                let cols: Vec<&str> = line.split('\t').collect();
                assert_eq!(cols.len(), 4 + FIELDS.len(), "{name} frame {}", n + 1);
                let ts = expect::rfc3339_micros(epoch_micros(cols[0]));
                let at = format!("{name} frame {} ({ts})", n + 1);
                assert_eq!(cols[1], "", "{at}: malformed");
                assert_eq!((cols[2], cols[3]), ("1", "1"), "{at}: bad checksum");
                let fields: BTreeMap<&str, &str> = FIELDS
                    .iter()
                    .copied()
                    .zip(cols[4..].iter().copied())
                    .collect();
                let blind = TSHARK_BLIND
                    .iter()
                    .any(|(case, t, _)| case == name && *t == ts);
                let Some(evs) = by_time.remove(&ts) else {
                    assert_eq!(
                        fields["mbtcp.trans_id"], "",
                        "{at}: tshark shows a PDU that is not expected"
                    );
                    continue;
                };
                if blind {
                    assert_eq!(
                        fields["mbtcp.trans_id"], "",
                        "{at}: tshark now sees this PDU: drop it from TSHARK_BLIND"
                    );
                    continue;
                }
                seen_modbus += evs.len();
                for (field, want) in expected_fields(&evs) {
                    let Some(want) = want else { continue };
                    let got: Vec<&str> = match fields[field] {
                        "" => vec![],
                        s => s.split('|').collect(),
                    };
                    let ok = got.len() == want.len()
                        && got
                            .iter()
                            .zip(&want)
                            .all(|(g, w)| match w.strip_suffix('*') {
                                Some(prefix) => g.starts_with(prefix),
                                None => g == w,
                            });
                    assert!(ok, "{at}: {field}: tshark {got:?}, expected {want:?}");
                }
            }
            assert!(
                by_time.is_empty(),
                "{name}: expected events at times with no frame: {:?}",
                by_time.keys().collect::<Vec<_>>()
            );
            assert!(seen_modbus > 0, "{name}: nothing compared");
            compared += seen_modbus;
        }
        assert!(compared > 500, "only {compared} PDUs compared");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The tshark fields compared, per frame, against the expected S7comm events.
    const S7_FIELDS: &[&str] = &[
        "ip.src",
        "tcp.srcport",
        "cotp.type",
        "cotp.src-tsap",
        "cotp.dst-tsap",
        "s7comm.header.rosctr",
        "s7comm.header.pduref",
        "s7comm.header.errcls",
        "s7comm.header.errcod",
        "s7comm.param.func",
        "s7comm.param.userdata.funcgroup",
        "s7comm.param.userdata.subfunc",
        "s7comm.param.item.area",
        "s7comm.param.item.db",
        "s7comm.param.item.address.byte",
        "s7comm.param.item.address.bit",
        "s7comm.param.item.transp_size",
        "s7comm.param.item.length",
        "s7comm.data.returncode",
        "s7comm.resp.data",
        "s7comm.data.blockcontrol.block_type",
        "s7comm.data.blockcontrol.block_number",
        "s7comm.param.pistart.servicename",
        "s7comm.data.userdata.szl_id",
        "s7comm.data.userdata.szl_index",
        "s7comm.szl.xy11.0001.index",
        "s7comm.szl.xy11.0001.anz",
        "s7comm.data.userdata",
    ];

    /// What tshark must show for the frame that carries the S7 PDU of `e` (one PDU per
    /// frame); `None`: not compared. Values as tshark prints them (hex with `0x` for
    /// codes, decimal for numbers, hex digits for data).
    fn s7_expected_fields(e: &Value) -> BTreeMap<&'static str, Option<Vec<String>>> {
        let s = &e["s7comm"];
        let num = |k: &str| s[k].as_u64();
        let hex2 = |v: u64| format!("0x{v:02x}");
        let one = |v: String| Some(vec![v]);
        let none: Option<Vec<String>> = Some(vec![]);
        let rosctr = num("rosctr").unwrap_or(0);
        let func = num("function_code");
        let items: Vec<&Value> = s["items"].as_array().map_or(vec![], |a| a.iter().collect());
        let item_list =
            |k: &str| -> Vec<String> { items.iter().map(|i| i[k].to_string()).collect() };
        let mut f: BTreeMap<&'static str, Option<Vec<String>>> = BTreeMap::new();
        let to_server = e["direction"] == "to_server";
        let (ip, port) = if to_server {
            (&e["flow"]["src_ip"], &e["flow"]["src_port"])
        } else {
            (&e["flow"]["dst_ip"], &e["flow"]["dst_port"])
        };
        f.insert("ip.src", one(ip.as_str().unwrap_or("").to_owned()));
        f.insert("tcp.srcport", one(port.to_string()));
        f.insert("cotp.type", one("0x0f".into()));
        f.insert("s7comm.header.rosctr", one(rosctr.to_string()));
        f.insert("s7comm.header.pduref", one(s["pdu_ref"].to_string()));
        for (field, key) in [
            ("s7comm.header.errcls", "error_class"),
            ("s7comm.header.errcod", "error_code"),
        ] {
            // The header's error fields exist on ack_data only, where the event has
            // them too.
            f.insert(field, Some(num(key).map(hex2).into_iter().collect()));
        }
        f.insert(
            "s7comm.param.func",
            Some(func.map(hex2).into_iter().collect()),
        );
        for (field, key) in [
            ("s7comm.param.userdata.funcgroup", "function_group"),
            ("s7comm.param.userdata.subfunc", "subfunction"),
        ] {
            f.insert(
                field,
                Some(num(key).map(|v| v.to_string()).into_iter().collect()),
            );
        }
        // Any-pointers are on the wire in jobs; ack_data events repeat them from the
        // job, where tshark shows none.
        let job = rosctr == 1;
        let on_wire = |v: Vec<String>| if job { Some(v) } else { none.clone() };
        f.insert(
            "s7comm.param.item.area",
            on_wire(
                items
                    .iter()
                    .map(|i| hex2(i["area"].as_u64().unwrap_or(0)))
                    .collect(),
            ),
        );
        f.insert("s7comm.param.item.db", on_wire(item_list("db")));
        f.insert(
            "s7comm.param.item.address.byte",
            on_wire(item_list("address")),
        );
        f.insert("s7comm.param.item.address.bit", on_wire(item_list("bit")));
        f.insert(
            "s7comm.param.item.transp_size",
            on_wire(item_list("transport_size")),
        );
        f.insert("s7comm.param.item.length", on_wire(item_list("length")));
        // Data items: a write job's carry a reserved 0x00 where ack_data carry the
        // return code; a userdata's data part starts with return code 0xFF.
        let codes: Vec<String> = if rosctr == 7 {
            vec!["0xff".into()]
        } else if job {
            items
                .iter()
                .filter(|i| i.get("data").is_some())
                .map(|_| "0x00".into())
                .collect()
        } else {
            items
                .iter()
                .map(|i| hex2(i["return_code"].as_u64().unwrap_or(0)))
                .collect()
        };
        f.insert("s7comm.data.returncode", Some(codes));
        // The block bytes of download block / upload ack_data are not in the event.
        let block_data = !job && matches!(func, Some(0x1b | 0x1e));
        f.insert(
            "s7comm.resp.data",
            (!block_data).then(|| {
                items
                    .iter()
                    .filter_map(|i| i["data"].as_array())
                    .map(|d| {
                        d.iter()
                            .map(|b| format!("{:02x}", b.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .collect()
            }),
        );
        // Block type and number: a PI _INSE names its block too, which the event
        // reports as its PI service.
        let pi = func == Some(0x28) && job;
        let block = &s["block"];
        let code = match block["block_type"].as_str() {
            Some("OB") => "08",
            Some("DB") => "0A",
            Some("SDB") => "0B",
            Some("FC") => "0C",
            Some("SFC") => "0D",
            Some("FB") => "0E",
            Some("SFB") => "0F",
            _ => "",
        };
        let blk = |v: &str| {
            if v.is_empty() {
                vec![]
            } else {
                vec![v.to_owned()]
            }
        };
        f.insert(
            "s7comm.data.blockcontrol.block_type",
            (!pi).then(|| blk(code)),
        );
        f.insert(
            "s7comm.data.blockcontrol.block_number",
            (!pi).then(|| blk(block["number"].as_str().unwrap_or(""))),
        );
        // PLC stop carries the service name P_PROGRAM too; the event does not.
        let stop = func == Some(0x29) && job;
        f.insert(
            "s7comm.param.pistart.servicename",
            (!stop).then(|| blk(s["pi_service"].as_str().unwrap_or(""))),
        );
        for (field, key) in [
            ("s7comm.data.userdata.szl_id", "szl_id"),
            ("s7comm.data.userdata.szl_index", "szl_index"),
        ] {
            f.insert(
                field,
                Some(num(key).map(|v| format!("0x{v:04x}")).into_iter().collect()),
            );
        }
        f
    }

    /// Every generated S7comm capture as tshark sees it: no malformed frame, good
    /// checksums, the TSAPs of the COTP connection request on every event, and for
    /// every frame that carries an S7 PDU exactly one expected event with the same
    /// sender, ROSCTR, PDU reference, error class and code, function, userdata group
    /// and subfunction, any-pointer items, return codes, data, block, PI service, SZL
    /// id and index, the order number of SZL 0x0011 record 1 (without its padding),
    /// and the credential computed from the password bytes tshark shows.
    #[test]
    #[allow(clippy::print_stderr)]
    fn s7_expected_events_agree_with_tshark() {
        if !tshark_on_path() {
            assert!(
                std::env::var_os("CI").is_none(),
                "tshark is required in CI to cross-check the generated captures"
            );
            eprintln!("tshark not on PATH: skipping the cross-check of pcaps/s7comm");
            return;
        }
        let dir = temp_dir("tshark-s7");
        gen_pcaps(&dir).unwrap();
        let mut compared = 0;
        for (name, _) in s7_scenarios::CASES {
            let pcap = dir.join(format!("{name}.pcap"));
            let expected = std::fs::read_to_string(dir.join(format!("{name}.expected.jsonl")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut by_time: BTreeMap<String, Value> = BTreeMap::new();
            for l in expected.lines() {
                let e: Value = serde_json::from_str(l).unwrap();
                let ts = e["timestamp"].as_str().unwrap().to_owned();
                assert!(
                    by_time.insert(ts, e).is_none(),
                    "{name}: two events, one frame"
                );
            }
            let mut args: Vec<String> = [
                "-r",
                pcap.to_str().unwrap(),
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "tcp.check_checksum:TRUE",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-E",
                "occurrence=a",
                "-E",
                "aggregator=|",
                "-e",
                "frame.time_epoch",
                "-e",
                "_ws.malformed",
                "-e",
                "ip.checksum.status",
                "-e",
                "tcp.checksum.status",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            for f in S7_FIELDS {
                args.push("-e".into());
                args.push((*f).into());
            }
            let out = Command::new("tshark").args(&args).output().unwrap();
            assert!(out.status.success(), "{name}: tshark failed");
            let stdout = String::from_utf8(out.stdout).unwrap();
            let mut tsaps = None;
            let mut seen = 0;
            for (n, line) in stdout.lines().enumerate() {
                let cols: Vec<&str> = line.split('\t').collect();
                assert_eq!(cols.len(), 4 + S7_FIELDS.len(), "{name} frame {}", n + 1);
                let ts = expect::rfc3339_micros(epoch_micros(cols[0]));
                let at = format!("{name} frame {} ({ts})", n + 1);
                assert_eq!(cols[1], "", "{at}: malformed");
                assert_eq!((cols[2], cols[3]), ("1", "1"), "{at}: bad checksum");
                let fields: BTreeMap<&str, &str> = S7_FIELDS
                    .iter()
                    .copied()
                    .zip(cols[4..].iter().copied())
                    .collect();
                if fields["cotp.type"] == "0x0e" {
                    let tsap = |k: &str| {
                        u64::from_str_radix(fields[k].trim_start_matches("0x"), 16).unwrap()
                    };
                    tsaps = Some((tsap("cotp.src-tsap"), tsap("cotp.dst-tsap")));
                }
                let Some(e) = by_time.remove(&ts) else {
                    assert_eq!(
                        fields["s7comm.header.rosctr"], "",
                        "{at}: tshark shows an S7 PDU that is not expected"
                    );
                    continue;
                };
                seen += 1;
                let s = &e["s7comm"];
                let (calling, called) = tsaps.unwrap_or_else(|| panic!("{at}: no COTP CR before"));
                assert_eq!(s["calling_tsap"], calling, "{at}: calling_tsap");
                assert_eq!(s["called_tsap"], called, "{at}: called_tsap");
                for (field, want) in s7_expected_fields(&e) {
                    let Some(want) = want else { continue };
                    let got: Vec<&str> = match fields[field] {
                        "" => vec![],
                        v => v.split('|').collect(),
                    };
                    assert_eq!(got, want, "{at}: {field}");
                }
                if let Some(order) = s["identity"]["order_number"].as_str() {
                    let idx: Vec<&str> = fields["s7comm.szl.xy11.0001.index"].split('|').collect();
                    let anz: Vec<&str> = fields["s7comm.szl.xy11.0001.anz"].split('|').collect();
                    let module = idx.iter().position(|i| *i == "0x0001");
                    let got = module.and_then(|m| anz.get(m)).map(|a| a.trim_end());
                    assert_eq!(got, Some(order), "{at}: order number of record 0x0001");
                }
                if let Some(cred) = s["credential"].as_str() {
                    let digits: Vec<u8> = fields["s7comm.data.userdata"]
                        .bytes()
                        .filter(u8::is_ascii_hexdigit)
                        .collect();
                    let bytes: Vec<u8> = digits
                        .chunks(2)
                        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                        .collect();
                    assert_eq!(bytes.len(), 8, "{at}: password bytes");
                    let hex: String = expect::sha1(&bytes)
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    assert_eq!(cred, format!("s7:{}", &hex[..16]), "{at}: credential");
                } else if s.get("credential").is_some() {
                    // Listed as null: no password bytes on the wire.
                    assert_eq!(fields["s7comm.data.userdata"], "", "{at}: password data");
                }
            }
            assert!(
                by_time.is_empty(),
                "{name}: expected events at times with no frame: {:?}",
                by_time.keys().collect::<Vec<_>>()
            );
            assert!(seen >= 4, "{name}: only {seen} S7 PDUs compared");
            compared += seen;
        }
        assert!(compared >= 50, "only {compared} S7 PDUs compared");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
