//! The Kafka-compatible broker the sink's integration tests run against.
//!
//! The tests of `otwatch-sinks` (and the end-to-end Kafka tests of the binary) start
//! their own `tansu` broker on loopback with the in-memory storage engine. `tansu` is a
//! Kafka-compatible broker written in Rust; its memory engine needs the `dynostore`
//! feature. Installing it compiles it from crates.io (about 8 minutes on two cores), so
//! it is installed once into cargo's bin directory and reused.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;

use crate::sys::{cargo, run, say};

/// The exact version the tests are written against.
pub const TANSU_VERSION: &str = "0.6.0";

/// Where the tests look for `tansu`, in order: `$OTWATCH_TANSU`, `PATH`, then cargo's
/// bin directory (`$CARGO_HOME/bin`, `~/.cargo/bin`).
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
        cargo_bin_dir()
            .map(|dir| dir.join("tansu"))
            .filter(|p| p.is_file())
    })
}

fn cargo_bin_dir() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// Is the `tansu` at `bin` the version the tests expect?
fn version_ok(bin: &PathBuf) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(TANSU_VERSION))
}

/// Returns the path of a `tansu` broker binary, installing it first if it is missing:
/// `cargo install tansu --version 0.6.0 --locked --features dynostore`.
pub fn ensure_tansu() -> anyhow::Result<PathBuf> {
    if let Some(bin) = find_tansu() {
        if version_ok(&bin) {
            say(&format!(
                "Kafka test broker present: {} ({TANSU_VERSION})",
                bin.display()
            ));
            return Ok(bin);
        }
        say(&format!(
            "warning: {} is not tansu {TANSU_VERSION}: installing the expected version",
            bin.display()
        ));
    }
    say(&format!(
        "installing the Kafka test broker (about 8 minutes, once): \
         cargo install tansu --version {TANSU_VERSION} --locked --features dynostore"
    ));
    run(cargo().args([
        "install",
        "tansu",
        "--version",
        TANSU_VERSION,
        "--locked",
        "--features",
        "dynostore",
    ]))
    .context("installing the tansu broker the Kafka tests need failed")?;
    find_tansu().context(
        "tansu was installed but is not on PATH nor in cargo's bin directory: \
         set OTWATCH_TANSU to its path",
    )
}
