//! `otwatch check`, `otwatch learn` and policy errors on every subcommand
//! (shared/spec/cli.md and policy.md: a policy error never starts a half-configured
//! sensor; exit 2 naming the file, the line and the key).

mod common;

use std::fs;

use common::*;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const BAD_ZONE: &str = "[sensor]\nname = \"s\"\n\n[zones]\ncell = [\"10.30.1.0/24\"]\n\n[[conduits]]\nfrom = \"cell\"\nto = \"nowhere\"\n";

#[test]
fn check_accepts_the_demo_policy_and_summarises_it() {
    let demo = repo().join("rules/demo-plant.toml");
    let out = otwatch()
        .args(["check", "--policy"])
        .arg(&demo)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("plant-a-span1"), "{text}");
    assert!(text.contains("cell-1"), "{text}");
}

#[test]
fn a_policy_error_names_file_line_and_key_and_exits_2_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(&dir, "bad.toml", BAD_ZONE);
    let pcap = repo().join("pcaps/modbus/polling.pcap");
    let pcap = pcap.to_str().unwrap();
    for args in [
        vec!["check", "--policy", &bad],
        vec!["replay", "--policy", &bad, pcap],
        vec!["learn", "--policy", &bad, pcap],
    ] {
        let out = otwatch().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // `to = "nowhere"` is on line 9 of the file.
        assert!(err.contains("bad.toml:9"), "{args:?}: {err}");
        assert!(err.contains("nowhere"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing may be processed");
    }
}

#[test]
fn unknown_key_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "typo.toml",
        "[sensor]\nname = \"s\"\ntimezon = \"UTC\"\n",
    );
    let out = otwatch()
        .args(["check", "--policy", &bad])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("typo.toml:3") && err.contains("timezon"),
        "{err}"
    );
}

#[test]
fn learn_drafts_conduits_that_silence_new_conduit_when_included() {
    let dir = tempfile::tempdir().unwrap();
    // The demo plant's zones and assets, with no conduits at all.
    let zones = "[sensor]\nname = \"s\"\n\n[zones]\nenterprise = [\"10.0.0.0/16\"]\nengineering = [\"10.20.1.0/24\"]\nhmi = [\"10.40.1.0/24\"]\ncell-1 = [\"10.30.1.0/24\"]\n";
    let base = write(&dir, "base.toml", zones);
    let demo = repo().join("pcaps/demo-plant.pcap");
    let demo = demo.to_str().unwrap();

    let alerts_of = |policy: &str| -> Vec<serde_json::Value> {
        let out = otwatch()
            .args(["replay", "--format", "json", "--policy", policy, demo])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let conduits = |alerts: &[serde_json::Value]| {
        alerts
            .iter()
            .filter(|a| a["alert"]["kind"] == "new_conduit")
            .count()
    };
    let before = conduits(&alerts_of(&base));
    assert!(before >= 2, "the demo crosses several zone pairs: {before}");

    let draft = dir.path().join("conduits.toml");
    let out = otwatch()
        .args(["learn", "--policy", &base, "--out"])
        .arg(&draft)
        .arg(demo)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&draft).unwrap();
    assert!(text.contains("[[conduits]]"), "{text}");
    assert!(text.contains("from = \"hmi\""), "{text}");
    assert!(text.contains("to = \"cell-1\""), "{text}");
    assert!(text.contains("modbus"), "{text}");
    assert!(
        text.contains(" packets, "),
        "packet counts in the comments: {text}"
    );

    let with = write(
        &dir,
        "with.toml",
        &format!("include = [\"conduits.toml\"]\n{zones}"),
    );
    assert_eq!(
        conduits(&alerts_of(&with)),
        0,
        "the learned conduits must cover the demo"
    );
}

/// cli.md gives `--policy` a default everywhere but `live` (replay's is the embedded
/// demo policy): `learn` without it drafts with the demo policy's zones, and says so.
#[test]
fn learn_without_a_policy_uses_the_demo_zones() {
    let demo = repo().join("pcaps/demo-plant.pcap");
    let out = otwatch().arg("learn").arg(&demo).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("no --policy"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("from = \"engineering\"\nto = \"cell-1\""),
        "{text}"
    );
}
