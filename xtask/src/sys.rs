//! Running commands, and installing the system packages the project needs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// Debian packages the tests need: tshark is the independent dissector the
/// cross-checks compare against; libpcap-dev is for live capture; libssl-dev and
/// pkg-config let the bundled librdkafka (the Kafka sink) build with TLS.
pub const TEST_PACKAGES: &[&str] = &[
    "tshark",
    "libpcap-dev",
    "libssl-dev",
    "pkg-config",
    // The live-capture tests: veth pairs in network namespaces, fed by tcpreplay.
    "iproute2",
    "tcpreplay",
];
/// Debian packages the demo needs: building otwatch builds the bundled librdkafka
/// (the Kafka sink) with TLS, and links libpcap (live capture).
pub const DEMO_PACKAGES: &[&str] = &["libpcap-dev", "libssl-dev", "pkg-config"];

#[allow(clippy::print_stderr)] // xtask talks to the developer on stderr.
pub fn say(msg: &str) {
    eprintln!("xtask: {msg}");
}

pub fn repo_root() -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask is not inside the repository")
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `cargo` as invoked us (or from PATH), run at the repository root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    if let Ok(root) = repo_root() {
        cmd.current_dir(root);
    }
    cmd
}

pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed ({status})", display(cmd));
    }
    Ok(())
}

pub fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Is `bin` on PATH?
pub fn have(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(bin).is_file()))
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

/// Installs the missing Debian packages among `packages` (idempotent: installed ones
/// are left alone).
pub fn install_deps(packages: &[&str]) -> anyhow::Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if !have("dpkg-query") || !have("apt-get") {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| *p != "tshark" || !have("tshark"))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        say(&format!(
            "not a Debian system: install these yourself: {}",
            missing.join(" ")
        ));
        return Ok(());
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        say(&format!("system packages present: {}", packages.join(", ")));
        return Ok(());
    }
    let sudo = if is_root() {
        None
    } else if have("sudo") {
        Some("sudo")
    } else {
        bail!(
            "missing system packages ({}) and not root: run `apt-get install {}` as root",
            missing.join(", "),
            missing.join(" ")
        );
    };
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut cmd = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    say("installing system packages: apt-get update");
    apt(&["update", "-qq"])?;
    say(&format!("apt-get install -y {}", missing.join(" ")));
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(missing.iter().copied());
    apt(&args)?;
    Ok(())
}
