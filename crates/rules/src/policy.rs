//! Reading the policy from TOML (`shared/spec/policy.md` is the contract; `docs/policy.md`
//! the operator's guide).
//!
//! Loading runs in three stages, so that every error can name the file, the line and
//! the key it is about:
//!
//! 1. **Per file**: the TOML is parsed into a spanned document (`toml::de::DeTable`),
//!    walked by hand so that an unknown key, a wrong type or a bad value (CIDR, address,
//!    time, range) is reported at its own line. Names are kept with their location.
//! 2. **Merge**: `include = [...]` files are read depth first (paths relative to the
//!    including file; a cycle is an error, a file reached twice is read once); lists
//!    concatenate and `[zones]` tables merge. A name defined twice is an error naming
//!    both places.
//! 3. **Resolve**: every zone and asset name is checked, and the lookup index is built.
//!
//! A policy with any error is rejected as a whole: a sensor never starts half
//! configured.
//!
//! Key paths in errors: `sensor.timezone`, `zones.cell-1`, `assets[3].ip` (the third
//! `[[assets]]` entry *of that file*, counted from 1), `setpoints[1].modbus.unit`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::IpNet;
use jiff::tz::TimeZone;
use jiff::Timestamp as JiffTimestamp;
use otwatch_event::Operation;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::alert::{severity_from_name, severity_name, AlertKind};
use crate::model::{
    Asset, Conduit, ConduitProtocol, Credential, Dnp3Hints, OpcuaMethod, Override,
    OverrideSelector, Policy, Role, S7Area, Sensor, Setpoint, SetpointAddress, Target, ValueType,
    WeeklySpan, Window, WindowSchedule, WordOrder, Zone, UNKNOWN_ZONE,
};

/// A policy that cannot be used: names the file, the line and the key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!(": {k}")).unwrap_or_default())]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

/// The demo plant's policy, built into the binary (`rules/demo-plant.toml`).
pub const DEMO_POLICY_TOML: &str = include_str!("../../../rules/demo-plant.toml");

/// How the demo policy names itself in messages and in `Policy::sources`.
pub const DEMO_POLICY_ORIGIN: &str = "rules/demo-plant.toml";

/// `[sensor] repeat_interval` when absent, in seconds of packet time.
pub const DEFAULT_REPEAT_INTERVAL_SECS: u64 = 60;
/// The sensor's name when the policy gives none (`[sensor] name`): a fixed word, not
/// the host's name, so that a replay's alert ids do not depend on the machine.
pub const DEFAULT_SENSOR_NAME: &str = "otwatch";

/// The largest `repeat_interval` accepted (one day).
pub const MAX_REPEAT_INTERVAL_SECS: u64 = 86_400;

/// Includes nest at most this deep (the main file is depth 0).
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// At most this many files make up one policy.
pub const MAX_POLICY_FILES: usize = 64;

/// A policy file larger than this is refused (a policy of 10,000 assets is ~1 MiB).
pub const MAX_POLICY_FILE_BYTES: u64 = 64 << 20;

/// The dissector names a conduit may list (`s7comm` also covers `s7comm_plus`).
pub const CONDUIT_DISSECTORS: [&str; 5] = ["modbus", "s7comm", "s7comm_plus", "dnp3", "opcua"];

/// Reads a policy file and the files it includes.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = read_policy_file(path).map_err(|message| PolicyError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        message,
    })?;
    parse_str(&text, path)
}

/// Parses a policy from text. `origin` names it in messages, and includes are read
/// relative to its directory.
pub fn parse_str(text: &str, origin: &Path) -> Result<Policy, PolicyError> {
    let mut loader = Loader::default();
    let canonical = std::fs::canonicalize(origin).unwrap_or_else(|_| origin.to_path_buf());
    loader.read_file(text, origin, canonical, &mut Vec::new())?;
    loader.finish()
}

/// The embedded demo policy (`rules/demo-plant.toml`).
pub fn demo() -> Policy {
    // The file is part of the source tree and `demo_policy_loads` parses it: failing
    // here is a build defect, not an input error.
    #[allow(clippy::expect_used)]
    parse_str(DEMO_POLICY_TOML, Path::new(DEMO_POLICY_ORIGIN))
        .expect("rules/demo-plant.toml is a valid policy (tested by demo_policy_loads)")
}

/// The demo policy grown with `zones` extra zones, `assets` extra assets and `setpoints`
/// extra setpoints, for benchmarks: the demo's own hosts keep their zones and assets,
/// so a replay of the demo capture raises the same alerts.
///
/// Extra zone `z` is `10.128.0.0/20` shifted by `z` /20 blocks (`10.128.0.0/9` holds
/// 2048 of them); extra assets are spread over the extra zones (or over
/// `10.128.0.0/9` when there are none); extra setpoints sit on extra assets, on holding
/// registers from 1000, written by the next extra asset. Extra conduits join each extra
/// zone to the next one, and a weekly window applies to each extra zone.
pub fn scaled_demo_text(zones: usize, assets: usize, setpoints: usize) -> String {
    const BASE: u32 = 0x0A80_0000; // 10.128.0.0
    let zones = zones.min(2048);
    let mut s = String::with_capacity(DEMO_POLICY_TOML.len() + 160 * (zones + assets + setpoints));
    // A TOML table cannot be reopened: the extra zones go right below `[zones]`.
    let (head, tail) = DEMO_POLICY_TOML
        .split_once("\n[zones]\n")
        .unwrap_or((DEMO_POLICY_TOML, ""));
    s.push_str(head);
    s.push_str("\n[zones]\n");
    for z in 0..zones {
        let net = std::net::Ipv4Addr::from(BASE + (z as u32) * 4096);
        let _ = writeln!(s, "bench-zone-{z} = [\"{net}/20\"]");
    }
    s.push_str(tail);
    s.push_str("\n# ---- generated for benchmarks ----\n");
    let asset_ip = |i: usize| -> std::net::Ipv4Addr {
        let raw = if zones == 0 {
            BASE + 1 + i as u32
        } else {
            BASE + ((i % zones) as u32) * 4096 + 1 + (i / zones) as u32
        };
        std::net::Ipv4Addr::from(raw)
    };
    for i in 0..assets {
        let role = ["plc", "hmi", "engineering", "rtu", "historian"][i % 5];
        let _ = write!(
            s,
            "\n[[assets]]\nname = \"bench-asset-{i}\"\nip = \"{}\"\nrole = \"{role}\"\n",
            asset_ip(i)
        );
    }
    for z in 0..zones {
        let _ = write!(
            s,
            "\n[[conduits]]\nfrom = \"bench-zone-{z}\"\nto = \"bench-zone-{}\"\nprotocols = [\"modbus\", \"tcp/8080\"]\n",
            (z + 1) % zones
        );
        let _ = write!(
            s,
            "\n[[windows]]\nname = \"bench-window-{z}\"\napplies_to = [\"bench-zone-{z}\"]\nweekly = [\"Sat 22:00-Sun 06:00\", \"Wed 12:00-Wed 13:00\"]\n"
        );
    }
    if assets > 0 {
        for j in 0..setpoints {
            let a = j % assets;
            let first = 1000 + (j / assets) * 10;
            let _ = write!(
                s,
                "\n[[setpoints]]\nname = \"bench-setpoint-{j}\"\nasset = \"bench-asset-{a}\"\nwriters = [\"bench-asset-{}\"]\nmin = 0.0\nmax = 100.0\nmodbus = {{ unit = 1, holding_registers = \"{first}-{}\" }}\n",
                (a + 1) % assets,
                first + 1
            );
        }
    }
    s
}

fn read_policy_file(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the policy: {e}"))?;
    if meta.len() > MAX_POLICY_FILE_BYTES {
        return Err(format!(
            "policy file is {} bytes, more than the {MAX_POLICY_FILE_BYTES} accepted",
            meta.len()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read the policy: {e}"))
}

/// The key written at `span` of `text`, for an error message: without the quotes of a
/// quoted key that has no escapes, at most 80 characters. `None` when the span does not
/// lie in the text or holds no key.
fn key_written_at(text: &str, span: &Range<usize>) -> Option<String> {
    let raw = text.get(span.clone())?.trim();
    let unquoted = ['"', '\'']
        .into_iter()
        .find_map(|q| raw.strip_prefix(q)?.strip_suffix(q))
        .filter(|k| !k.is_empty() && !k.contains('\\'))
        .unwrap_or(raw);
    let key: String = unquoted.chars().take(80).collect();
    (!key.is_empty()).then_some(key)
}

// ---------------------------------------------------------------------------------
// Locations

/// Where something was written: an index into `Loader::files` and a 1-based line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    file: usize,
    line: usize,
}

/// A value with the place and key path it was written at.
#[derive(Debug, Clone)]
struct At<T> {
    v: T,
    loc: Loc,
    key: String,
}

/// One file being read: its name in messages and its line starts.
struct Cx<'a> {
    file: usize,
    path: &'a Path,
    line_starts: Vec<usize>,
}

impl<'a> Cx<'a> {
    fn new(file: usize, path: &'a Path, text: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        Cx {
            file,
            path,
            line_starts,
        }
    }

    fn line(&self, offset: usize) -> usize {
        // The number of line starts at or before `offset` is the 1-based line.
        self.line_starts.partition_point(|&s| s <= offset).max(1)
    }

    fn loc(&self, span: &Range<usize>) -> Loc {
        Loc {
            file: self.file,
            line: self.line(span.start),
        }
    }

    fn err(&self, span: &Range<usize>, key: &str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.path.to_path_buf(),
            line: Some(self.line(span.start)),
            key: (!key.is_empty()).then(|| key.to_string()),
            message: message.into(),
        }
    }

    fn at<T>(&self, v: T, span: &Range<usize>, key: String) -> At<T> {
        At {
            v,
            loc: self.loc(span),
            key,
        }
    }
}

type Val<'i> = Spanned<DeValue<'i>>;
type Res<T> = Result<T, PolicyError>;

fn join_key(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn as_string(cx: &Cx<'_>, v: &Val<'_>, key: &str) -> Res<String> {
    match v.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        other => Err(cx.err(
            &v.span(),
            key,
            format!("expected a string, found {}", type_name(other)),
        )),
    }
}

fn as_int(cx: &Cx<'_>, v: &Val<'_>, key: &str) -> Res<i64> {
    match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map_err(|_| cx.err(&v.span(), key, "integer out of range")),
        other => Err(cx.err(
            &v.span(),
            key,
            format!("expected an integer, found {}", type_name(other)),
        )),
    }
}

/// A table being read: checks its keys and hands out its fields with key paths.
struct Tbl<'a, 'i> {
    cx: &'a Cx<'a>,
    t: &'a DeTable<'i>,
    span: Range<usize>,
    prefix: String,
}

impl<'a, 'i> Tbl<'a, 'i> {
    fn new(cx: &'a Cx<'a>, v: &'a Val<'i>, prefix: String) -> Res<Self> {
        match v.get_ref() {
            DeValue::Table(t) => Ok(Tbl {
                cx,
                t,
                span: v.span(),
                prefix,
            }),
            other => Err(cx.err(
                &v.span(),
                &prefix,
                format!("expected a table, found {}", type_name(other)),
            )),
        }
    }

    fn key(&self, field: &str) -> String {
        join_key(&self.prefix, field)
    }

    /// Every key must be one of `allowed`.
    fn allow(&self, allowed: &[&str]) -> Res<()> {
        for (k, _) in self.t.iter() {
            let name: &str = k.get_ref();
            if !allowed.contains(&name) {
                let hint = if name == "include" && !self.prefix.is_empty() {
                    "; `include` must come before the first [table] of the file"
                } else {
                    ""
                };
                return Err(self.cx.err(
                    &k.span(),
                    &self.key(name),
                    format!(
                        "unknown key (expected one of: {}){hint}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn get(&self, field: &str) -> Option<&'a Val<'i>> {
        self.t.get(field)
    }

    fn missing(&self, field: &str) -> PolicyError {
        self.cx
            .err(&self.span, &self.key(field), "missing required key")
    }

    fn str(&self, field: &str) -> Res<Option<At<String>>> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let key = self.key(field);
        let s = as_string(self.cx, v, &key)?;
        Ok(Some(self.cx.at(s, &v.span(), key)))
    }

    fn req_str(&self, field: &str) -> Res<At<String>> {
        self.str(field)?.ok_or_else(|| self.missing(field))
    }

    /// A required, non-empty name.
    fn name(&self, field: &str) -> Res<At<String>> {
        let n = self.req_str(field)?;
        if n.v.trim().is_empty() {
            return Err(self.err_at(field, "must not be empty"));
        }
        Ok(n)
    }

    /// An error at a field's value (or at the table when the field is absent).
    fn err_at(&self, field: &str, message: impl Into<String>) -> PolicyError {
        let span = self.get(field).map_or(self.span.clone(), |v| v.span());
        self.cx.err(&span, &self.key(field), message)
    }

    /// An array of strings, each with its own location.
    fn strs(&self, field: &str) -> Res<Option<Vec<At<String>>>> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let key = self.key(field);
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.cx.err(
                &v.span(),
                &key,
                format!(
                    "expected an array of strings, found {}",
                    type_name(v.get_ref())
                ),
            ));
        };
        items
            .iter()
            .map(|item| {
                let s = as_string(self.cx, item, &key)?;
                Ok(self.cx.at(s, &item.span(), key.clone()))
            })
            .collect::<Res<Vec<_>>>()
            .map(Some)
    }

    fn bool(&self, field: &str) -> Res<Option<bool>> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        match v.get_ref() {
            DeValue::Boolean(b) => Ok(Some(*b)),
            other => Err(self.cx.err(
                &v.span(),
                &self.key(field),
                format!("expected true or false, found {}", type_name(other)),
            )),
        }
    }

    /// A finite number (integer or float).
    fn number(&self, field: &str) -> Res<Option<f64>> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let key = self.key(field);
        let x = match v.get_ref() {
            DeValue::Integer(_) => as_int(self.cx, v, &key)? as f64,
            DeValue::Float(f) => f.as_str().parse::<f64>().unwrap_or(f64::NAN),
            other => {
                return Err(self.cx.err(
                    &v.span(),
                    &key,
                    format!("expected a number, found {}", type_name(other)),
                ))
            }
        };
        if !x.is_finite() {
            return Err(self.cx.err(&v.span(), &key, "must be a finite number"));
        }
        Ok(Some(x))
    }

    fn int(&self, field: &str) -> Res<Option<i64>> {
        self.get(field)
            .map(|v| as_int(self.cx, v, &self.key(field)))
            .transpose()
    }

    fn sub(&self, field: &str) -> Res<Option<Tbl<'a, 'i>>> {
        self.get(field)
            .map(|v| Tbl::new(self.cx, v, self.key(field)))
            .transpose()
    }

    /// The tables of an array of tables (`[[assets]]`), keyed `field[n]` from 1.
    fn tables(&self, field: &str) -> Res<Vec<Tbl<'a, 'i>>> {
        let Some(v) = self.get(field) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(items) = v.get_ref() else {
            return Err(self.cx.err(
                &v.span(),
                &self.key(field),
                format!(
                    "expected an array of tables ([[{field}]]), found {}",
                    type_name(v.get_ref())
                ),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(n, item)| Tbl::new(self.cx, item, format!("{}[{}]", self.key(field), n + 1)))
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// Stage 1: one file

/// What one file says, values checked, names not yet resolved.
#[derive(Default)]
struct Raw {
    sensor: Option<(RawSensor, Loc)>,
    zones: Vec<RawZone>,
    assets: Vec<RawAsset>,
    conduits: Vec<RawConduit>,
    windows: Vec<RawWindow>,
    setpoints: Vec<RawSetpoint>,
    credentials: Vec<RawCredential>,
    overrides: Vec<RawOverride>,
    dnp3_program_files: Vec<String>,
    opcua_methods: Vec<RawOpcuaMethod>,
}

struct RawSensor {
    name: String,
    timezone_name: String,
    timezone: TimeZone,
    repeat_interval_secs: u64,
}

/// What a policy without `[sensor]` gets: every key's default.
impl Default for RawSensor {
    fn default() -> Self {
        RawSensor {
            name: DEFAULT_SENSOR_NAME.to_string(),
            timezone_name: "UTC".to_string(),
            timezone: TimeZone::UTC,
            repeat_interval_secs: DEFAULT_REPEAT_INTERVAL_SECS,
        }
    }
}

struct RawZone {
    name: At<String>,
    prefixes: Vec<At<IpNet>>,
}

struct RawAsset {
    name: At<String>,
    ip: At<std::net::IpAddr>,
    role: Role,
}

struct RawConduit {
    from: At<String>,
    to: At<String>,
    protocols: Option<Vec<ConduitProtocol>>,
}

struct RawWindow {
    name: At<String>,
    ticket: Option<String>,
    applies_to: Vec<At<String>>,
    sources: Option<Vec<At<String>>>,
    schedule: WindowSchedule,
}

struct RawSetpoint {
    name: At<String>,
    asset: At<String>,
    writers: Vec<At<String>>,
    min: Option<f64>,
    max: Option<f64>,
    value_type: ValueType,
    word_order: WordOrder,
    address: SetpointAddress,
}

struct RawCredential {
    user: At<String>,
    sources: Vec<At<String>>,
}

struct RawOverride {
    selector: At<OverrideSelector>,
    severity: Option<At<crate::model::Severity>>,
    enabled: Option<At<bool>>,
    except_sources: Vec<At<String>>,
}

struct RawOpcuaMethod {
    node: At<String>,
    operation: At<Operation>,
}

const TOP_KEYS: &[&str] = &[
    "include",
    "sensor",
    "zones",
    "assets",
    "conduits",
    "windows",
    "setpoints",
    "credentials",
    "overrides",
    "dnp3",
    "opcua_methods",
];

/// Reads one parsed document into `raw`; returns its includes.
fn read_document(cx: &Cx<'_>, doc: &Val<'_>, raw: &mut Raw) -> Res<Vec<At<String>>> {
    let top = Tbl::new(cx, doc, String::new())?;
    top.allow(TOP_KEYS)?;

    let includes = match top.get("include") {
        None => Vec::new(),
        // A single file may be given as a string.
        Some(v) if matches!(v.get_ref(), DeValue::String(_)) => {
            vec![cx.at(as_string(cx, v, "include")?, &v.span(), "include".into())]
        }
        Some(_) => top.strs("include")?.unwrap_or_default(),
    };

    if let Some(t) = top.sub("sensor")? {
        raw.sensor = Some((read_sensor(&t)?, cx.loc(&t.span)));
    }
    if let Some(t) = top.sub("zones")? {
        read_zones(&t, raw)?;
    }
    for t in top.tables("assets")? {
        raw.assets.push(read_asset(&t)?);
    }
    for t in top.tables("conduits")? {
        raw.conduits.push(read_conduit(&t)?);
    }
    for t in top.tables("windows")? {
        raw.windows.push(read_window(&t)?);
    }
    for t in top.tables("setpoints")? {
        raw.setpoints.push(read_setpoint(&t)?);
    }
    for t in top.tables("credentials")? {
        t.allow(&["user", "sources"])?;
        raw.credentials.push(RawCredential {
            user: t.name("user")?,
            sources: t.strs("sources")?.unwrap_or_default(),
        });
    }
    for t in top.tables("overrides")? {
        raw.overrides.push(read_override(&t)?);
    }
    if let Some(t) = top.sub("dnp3")? {
        t.allow(&["program_files"])?;
        for p in t.strs("program_files")?.unwrap_or_default() {
            if p.v.is_empty() {
                return Err(cx.err(&t.span, &p.key, "empty pattern"));
            }
            if let Err(e) = glob::Pattern::new(&p.v) {
                return Err(cx.err(
                    &t.span,
                    &p.key,
                    format!("`{}` is not a glob pattern: {}", p.v, e.msg),
                ));
            }
            raw.dnp3_program_files.push(p.v);
        }
    }
    for t in top.tables("opcua_methods")? {
        t.allow(&["node", "operation"])?;
        let node = t.name("node")?;
        if !is_node_id(&node.v) {
            return Err(t.err_at(
                "node",
                format!(
                    "`{}` is not an OPC UA NodeId (e.g. \"ns=2;s=Line1.Plc.Stop\", \"i=2253\")",
                    node.v
                ),
            ));
        }
        let op = t.req_str("operation")?;
        let operation = match op.v.as_str() {
            "mode_change" => Operation::ModeChange,
            "restart" => Operation::Restart,
            "program_download" => Operation::ProgramDownload,
            "firmware_update" => Operation::FirmwareUpdate,
            other => {
                return Err(t.err_at(
                    "operation",
                    format!("unknown operation `{other}` (expected one of: mode_change, restart, program_download, firmware_update)"),
                ))
            }
        };
        raw.opcua_methods.push(RawOpcuaMethod {
            node,
            operation: At {
                v: operation,
                loc: op.loc,
                key: op.key,
            },
        });
    }
    Ok(includes)
}

fn read_sensor(t: &Tbl<'_, '_>) -> Res<RawSensor> {
    t.allow(&["name", "timezone", "repeat_interval"])?;
    let name = match t.get("name") {
        Some(_) => t.name("name")?.v,
        None => DEFAULT_SENSOR_NAME.to_string(),
    };
    let timezone_name = t
        .str("timezone")?
        .map_or_else(|| "UTC".to_string(), |s| s.v);
    let timezone = TimeZone::get(&timezone_name).map_err(|_| {
        t.err_at(
            "timezone",
            format!("unknown time zone `{timezone_name}` (an IANA name such as \"Europe/Berlin\" or \"UTC\")"),
        )
    })?;
    let repeat_interval_secs = match t.get("repeat_interval") {
        None => DEFAULT_REPEAT_INTERVAL_SECS,
        Some(v) => {
            let key = t.key("repeat_interval");
            let secs = match v.get_ref() {
                DeValue::Integer(_) => u64::try_from(as_int(t.cx, v, &key)?).ok(),
                DeValue::String(s) => parse_duration_secs(s),
                _ => None,
            };
            match secs {
                Some(s) if s <= MAX_REPEAT_INTERVAL_SECS => s,
                _ => {
                    return Err(t.cx.err(
                        &v.span(),
                        &key,
                        format!("expected seconds (60) or a duration (\"60s\", \"5m\", \"1h\") of at most {MAX_REPEAT_INTERVAL_SECS} s"),
                    ))
                }
            }
        }
    };
    Ok(RawSensor {
        name,
        timezone_name,
        timezone,
        repeat_interval_secs,
    })
}

/// `"90s"`, `"5m"`, `"1h"`, or plain digits (seconds).
fn parse_duration_secs(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let mult = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn read_zones(t: &Tbl<'_, '_>, raw: &mut Raw) -> Res<()> {
    // `DeTable` is ordered by name; keep the file's order instead.
    let mut entries: Vec<_> = t.t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (k, v) in entries {
        let name: &str = k.get_ref();
        let key = t.key(name);
        if name == UNKNOWN_ZONE {
            return Err(t.cx.err(
                &k.span(),
                &key,
                "the zone `unknown` is reserved for addresses in no zone and cannot be defined",
            ));
        }
        if name.trim().is_empty() {
            return Err(t.cx.err(&k.span(), &key, "a zone name must not be empty"));
        }
        let DeValue::Array(items) = v.get_ref() else {
            return Err(t.cx.err(
                &v.span(),
                &key,
                format!(
                    "expected an array of CIDRs (\"10.30.1.0/24\"), found {}",
                    type_name(v.get_ref())
                ),
            ));
        };
        let mut prefixes = Vec::with_capacity(items.len());
        for item in items.iter() {
            let s = as_string(t.cx, item, &key)?;
            let net = parse_cidr(&s).map_err(|m| t.cx.err(&item.span(), &key, m))?;
            prefixes.push(t.cx.at(net, &item.span(), key.clone()));
        }
        raw.zones.push(RawZone {
            name: t.cx.at(name.to_string(), &k.span(), key),
            prefixes,
        });
    }
    Ok(())
}

/// A CIDR (`10.30.1.0/24`, `fd00:30::/64`) or a single address (a host prefix).
/// Host bits must be zero: `10.30.1.7/24` is refused rather than guessed at.
fn parse_cidr(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    let net = match IpNet::from_str(s) {
        Ok(n) => n,
        Err(_) => match std::net::IpAddr::from_str(s) {
            Ok(ip) => IpNet::from(ip.to_canonical()),
            Err(_) => {
                return Err(format!(
                    "`{s}` is not a CIDR (expected e.g. \"10.30.1.0/24\" or \"fd00:30::/64\")"
                ))
            }
        },
    };
    if net.network() != net.addr() {
        return Err(format!(
            "`{s}` has host bits set (did you mean \"{}\"?)",
            net.trunc()
        ));
    }
    Ok(net)
}

fn read_asset(t: &Tbl<'_, '_>) -> Res<RawAsset> {
    t.allow(&["name", "ip", "role"])?;
    let name = t.name("name")?;
    let ip_s = t.req_str("ip")?;
    let ip = std::net::IpAddr::from_str(ip_s.v.trim()).map_err(|_| {
        t.err_at(
            "ip",
            format!(
                "`{}` is not an IP address (one address, no prefix length)",
                ip_s.v
            ),
        )
    })?;
    let role = match t.str("role")? {
        None => Role::Other,
        Some(r) => parse_role(&r.v).ok_or_else(|| {
            t.err_at(
                "role",
                format!("unknown role `{}` (expected one of: plc, rtu, hmi, engineering, historian, gateway, server, other)", r.v),
            )
        })?,
    };
    Ok(RawAsset {
        name,
        ip: At {
            v: ip.to_canonical(),
            loc: ip_s.loc,
            key: ip_s.key,
        },
        role,
    })
}

fn parse_role(s: &str) -> Option<Role> {
    Some(match s {
        "plc" => Role::Plc,
        "rtu" => Role::Rtu,
        "hmi" => Role::Hmi,
        "engineering" => Role::Engineering,
        "historian" => Role::Historian,
        "gateway" => Role::Gateway,
        "server" => Role::Server,
        "other" => Role::Other,
        _ => return None,
    })
}

/// The name of a role as written in policy files.
pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Plc => "plc",
        Role::Rtu => "rtu",
        Role::Hmi => "hmi",
        Role::Engineering => "engineering",
        Role::Historian => "historian",
        Role::Gateway => "gateway",
        Role::Server => "server",
        Role::Other => "other",
    }
}

fn read_conduit(t: &Tbl<'_, '_>) -> Res<RawConduit> {
    t.allow(&["from", "to", "protocols"])?;
    let from = t.name("from")?;
    let to = t.name("to")?;
    let protocols = match t.strs("protocols")? {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(t.err_at(
                "protocols",
                "empty list: omit `protocols` to allow any protocol",
            ))
        }
        Some(list) => Some(
            list.iter()
                .map(|p| {
                    parse_conduit_protocol(&p.v).ok_or_else(|| PolicyError {
                        file: t.cx.path.to_path_buf(),
                        line: Some(p.loc.line),
                        key: Some(p.key.clone()),
                        message: format!(
                            "unknown protocol `{}` (expected one of: {}, or \"tcp/PORT\" / \"udp/PORT\")",
                            p.v,
                            CONDUIT_DISSECTORS.join(", ")
                        ),
                    })
                })
                .collect::<Res<Vec<_>>>()?,
        ),
    };
    Ok(RawConduit {
        from,
        to,
        protocols,
    })
}

/// `modbus`, `s7comm`, `s7comm_plus`, `dnp3`, `opcua`, `tcp/PORT`, `udp/PORT`
/// (ports 1-65535).
pub fn parse_conduit_protocol(s: &str) -> Option<ConduitProtocol> {
    let s = s.trim().to_ascii_lowercase();
    if CONDUIT_DISSECTORS.contains(&s.as_str()) {
        return Some(ConduitProtocol::Dissector(s));
    }
    let (transport, port) = s.split_once('/')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    match transport {
        "tcp" => Some(ConduitProtocol::Tcp(port)),
        "udp" => Some(ConduitProtocol::Udp(port)),
        _ => None,
    }
}

fn read_window(t: &Tbl<'_, '_>) -> Res<RawWindow> {
    t.allow(&[
        "name",
        "ticket",
        "applies_to",
        "sources",
        "weekly",
        "start",
        "end",
    ])?;
    let name = t.name("name")?;
    let ticket = t.str("ticket")?.map(|s| s.v);
    let applies_to = t
        .strs("applies_to")?
        .ok_or_else(|| t.missing("applies_to"))?;
    if applies_to.is_empty() {
        return Err(t.err_at(
            "applies_to",
            "empty list: name the zones and/or assets the window opens",
        ));
    }
    let sources = t.strs("sources")?;
    if sources.as_ref().is_some_and(|s| s.is_empty()) {
        return Err(t.err_at(
            "sources",
            "empty list: omit `sources` to cover every source",
        ));
    }
    let weekly = t.get("weekly");
    let (start, end) = (t.get("start"), t.get("end"));
    let schedule = match (weekly, start, end) {
        (Some(_), None, None) => {
            let spans = t.strs("weekly")?.unwrap_or_default();
            if spans.is_empty() {
                return Err(t.err_at(
                    "weekly",
                    "empty list: give at least one \"Ddd HH:MM-Ddd HH:MM\" span",
                ));
            }
            let mut out = Vec::with_capacity(spans.len());
            for s in &spans {
                out.push(parse_weekly_span(&s.v).map_err(|m| PolicyError {
                    file: t.cx.path.to_path_buf(),
                    line: Some(s.loc.line),
                    key: Some(s.key.clone()),
                    message: m,
                })?);
            }
            WindowSchedule::Weekly(out)
        }
        (None, Some(sv), Some(ev)) => {
            let start = parse_instant(t.cx, sv, &t.key("start"))?;
            let end = parse_instant(t.cx, ev, &t.key("end"))?;
            if end <= start {
                return Err(t.err_at("end", format!("end {end} is not after start {start}")));
            }
            WindowSchedule::OneOff { start, end }
        }
        (None, Some(_), None) => return Err(t.missing("end")),
        (None, None, Some(_)) => return Err(t.missing("start")),
        (None, None, None) => {
            return Err(t.cx.err(
                &t.span,
                &t.key("weekly"),
                "a window needs either `weekly` spans or a one-off `start` and `end`",
            ))
        }
        (Some(_), _, _) => {
            return Err(t.err_at(
                "weekly",
                "a window is either weekly or one-off (`start`/`end`), not both",
            ))
        }
    };
    Ok(RawWindow {
        name,
        ticket,
        applies_to,
        sources,
        schedule,
    })
}

/// The form `start` and `end` take, for error messages.
const RFC3339_FORM: &str = "expected YYYY-MM-DDTHH:MM:SS, optionally .fraction, then Z or \
     +HH:MM/-HH:MM, e.g. \"2026-11-28T08:00:00Z\" or \"2026-11-28T09:00:00+01:00\"";

/// An RFC 3339 instant, as a string or a TOML offset date-time. A time without an
/// offset is refused: it would silently depend on a time zone.
fn parse_instant(cx: &Cx<'_>, v: &Val<'_>, key: &str) -> Res<JiffTimestamp> {
    let text = match v.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        other => {
            return Err(cx.err(
                &v.span(),
                key,
                format!(
                    "expected an RFC 3339 time (\"2026-11-28T08:00:00Z\"), found {}",
                    type_name(other)
                ),
            ))
        }
    };
    let bad = || {
        cx.err(
            &v.span(),
            key,
            format!("`{text}` is not an RFC 3339 time with an offset ({RFC3339_FORM})"),
        )
    };
    let text = text.trim();
    if !is_rfc3339_date_time(text) {
        return Err(bad());
    }
    // The shape is right; jiff checks that the date exists (no 31 November).
    JiffTimestamp::from_str(text).map_err(|_| bad())
}

/// Whether `s` is an RFC 3339 date-time (section 5.6): `full-date "T" full-time`, i.e.
/// `YYYY-MM-DD`, `T`, `HH:MM:SS`, an optional `.` and digits, then `Z` or `+HH:MM` /
/// `-HH:MM` (`T` and `Z` in either case). Checked by hand because jiff's parser, which
/// then reads the value, also takes ISO 8601 and Temporal forms RFC 3339 excludes:
/// reduced precision (`2026-11-28T08Z`), the basic format (`20261128T080000Z`),
/// offsets without a colon (`+0100`), a space or a comma for `T` and `.`, six-digit
/// years, bracketed time-zone names. Field ranges are checked as RFC 3339 states them
/// (a second may be 60); whether the date exists is left to jiff.
fn is_rfc3339_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    // `len` digits at `at`, as a number in `range`.
    let num = |at: usize, len: usize, range: RangeInclusive<u32>| {
        b.get(at..at + len).is_some_and(|d| {
            d.iter().all(u8::is_ascii_digit)
                && range.contains(&d.iter().fold(0u32, |n, &c| n * 10 + u32::from(c - b'0')))
        })
    };
    let lit = |at: usize, allowed: &[u8]| b.get(at).is_some_and(|c| allowed.contains(c));
    let date = num(0, 4, 0..=9999)
        && lit(4, b"-")
        && num(5, 2, 1..=12)
        && lit(7, b"-")
        && num(8, 2, 1..=31);
    let time = lit(10, b"Tt")
        && num(11, 2, 0..=23)
        && lit(13, b":")
        && num(14, 2, 0..=59)
        && lit(16, b":")
        && num(17, 2, 0..=60);
    if !(date && time) {
        return false;
    }
    let mut at = 19;
    if lit(at, b".") {
        let digits = b
            .get(at + 1..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count());
        if digits == 0 {
            return false;
        }
        at += 1 + digits;
    }
    match b.get(at..) {
        Some([b'Z' | b'z']) => true,
        Some([b'+' | b'-', _, _, b':', _, _]) => num(at + 1, 2, 0..=23) && num(at + 4, 2, 0..=59),
        _ => false,
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `"Sat 22:00-Sun 06:00"`: minutes since Monday 00:00 local time. Days are the
/// three-letter English names (any case); times `HH:MM` (two digits each, as the
/// contract writes them: `2:00` is refused) from 00:00 to 23:59, and 24:00
/// as an end (`"Sat 00:00-Sat 24:00"` is all of Saturday). The end is exclusive and may
/// lie before the start (the span wraps past Sunday into Monday). Start and end may not
/// be equal: `"Mon 00:00-Sun 24:00"` is the whole week.
pub fn parse_weekly_span(s: &str) -> Result<WeeklySpan, String> {
    let form = "expected \"Ddd HH:MM-Ddd HH:MM\" (e.g. \"Sat 22:00-Sun 06:00\")";
    let Some((a, b)) = s.split_once('-') else {
        return Err(format!("`{s}`: {form}"));
    };
    let point = |p: &str, is_end: bool| -> Result<u32, String> {
        let mut parts = p.split_whitespace();
        let (Some(day), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("`{s}`: {form}"));
        };
        let day_ix = DAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(day))
            .ok_or_else(|| {
                format!("`{s}`: unknown day `{day}` (Mon, Tue, Wed, Thu, Fri, Sat, Sun)")
            })?;
        let bad_time = || {
            format!("`{s}`: bad time `{time}` (expected HH:MM, two digits each, from 00:00 to 23:59; 24:00 only as an end)")
        };
        let (h, m) = time.split_once(':').ok_or_else(bad_time)?;
        let two_digits = |x: &str| x.len() == 2 && x.bytes().all(|c| c.is_ascii_digit());
        if !two_digits(h) || !two_digits(m) {
            return Err(bad_time());
        }
        let (h, m): (u32, u32) = (
            h.parse().map_err(|_| bad_time())?,
            m.parse().map_err(|_| bad_time())?,
        );
        let ok = m < 60 && (h < 24 || (is_end && h == 24 && m == 0));
        if !ok {
            return Err(bad_time());
        }
        Ok(day_ix as u32 * 1440 + h * 60 + m)
    };
    let start = point(a, false)?;
    // "Ddd 24:00" is the next day's 00:00; "Sun 24:00" stays 10080 so that
    // "Mon 00:00-Sun 24:00" is the whole week (the end is exclusive).
    let end = point(b, true)?;
    if start == end {
        return Err(format!(
            "`{s}`: start and end are the same time; the whole week is \"Mon 00:00-Sun 24:00\""
        ));
    }
    Ok(WeeklySpan {
        start_minute: start,
        end_minute: end,
    })
}

fn read_setpoint(t: &Tbl<'_, '_>) -> Res<RawSetpoint> {
    t.allow(&[
        "name",
        "asset",
        "writers",
        "min",
        "max",
        "type",
        "word_order",
        "modbus",
        "s7",
        "dnp3",
        "opcua",
    ])?;
    let name = t.name("name")?;
    let asset = t.name("asset")?;
    let writers = t.strs("writers")?.unwrap_or_default();
    let min = t.number("min")?;
    let max = t.number("max")?;
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(t.err_at("min", format!("min {lo} is greater than max {hi}")));
        }
    }
    let value_type = match t.str("type")? {
        None => ValueType::U16,
        Some(s) => match s.v.as_str() {
            "u16" => ValueType::U16,
            "i16" => ValueType::I16,
            "u32" => ValueType::U32,
            "i32" => ValueType::I32,
            "f32" => ValueType::F32,
            "f64" => ValueType::F64,
            other => {
                return Err(t.err_at(
                    "type",
                    format!(
                        "unknown type `{other}` (expected one of: u16, i16, u32, i32, f32, f64)"
                    ),
                ))
            }
        },
    };
    let word_order = match t.str("word_order")? {
        None => WordOrder::Big,
        Some(s) => match s.v.as_str() {
            "big" => WordOrder::Big,
            "little" => WordOrder::Little,
            other => {
                return Err(t.err_at(
                    "word_order",
                    format!("unknown word order `{other}` (expected big or little)"),
                ))
            }
        },
    };
    let blocks: Vec<&str> = ["modbus", "s7", "dnp3", "opcua"]
        .into_iter()
        .filter(|b| t.get(b).is_some())
        .collect();
    let address = match blocks.as_slice() {
        [] => {
            return Err(t.cx.err(
                &t.span,
                &t.key("modbus"),
                "a setpoint needs exactly one address block: modbus, s7, dnp3 or opcua",
            ))
        }
        [one] => read_address(t, one)?,
        [_, second, ..] => {
            return Err(t.err_at(
                second,
                format!(
                    "a setpoint has exactly one address block, found {}",
                    blocks.join(" and ")
                ),
            ))
        }
    };
    Ok(RawSetpoint {
        name,
        asset,
        writers,
        min,
        max,
        value_type,
        word_order,
        address,
    })
}

/// `"100-109"`, `"5"`, or an integer: an inclusive range of `T`.
fn read_range<T>(b: &Tbl<'_, '_>, field: &str) -> Res<Option<RangeInclusive<T>>>
where
    T: FromStr + TryFrom<i64> + PartialOrd + Copy + std::fmt::Display,
{
    let Some(v) = b.get(field) else {
        return Ok(None);
    };
    let key = b.key(field);
    let bad = |what: &str| {
        b.cx.err(
            &v.span(),
            &key,
            format!("`{what}` is not an address range (expected \"100-109\" or \"5\", inclusive, 0-based)"),
        )
    };
    let range = match v.get_ref() {
        DeValue::Integer(_) => {
            let n = as_int(b.cx, v, &key)?;
            let x = T::try_from(n).map_err(|_| bad(&n.to_string()))?;
            x..=x
        }
        DeValue::String(s) => {
            let (lo, hi) = s.split_once('-').unwrap_or((s, s));
            let (lo, hi) = (lo.trim(), hi.trim());
            let num = |x: &str| {
                if x.is_empty() || !x.bytes().all(|c| c.is_ascii_digit()) {
                    None
                } else {
                    x.parse::<T>().ok()
                }
            };
            let (Some(lo), Some(hi)) = (num(lo), num(hi)) else {
                return Err(bad(s));
            };
            if lo > hi {
                return Err(b
                    .cx
                    .err(&v.span(), &key, format!("range `{s}` starts after it ends")));
            }
            lo..=hi
        }
        other => {
            return Err(b.cx.err(
                &v.span(),
                &key,
                format!(
                    "expected an address range (\"100-109\"), found {}",
                    type_name(other)
                ),
            ))
        }
    };
    Ok(Some(range))
}

fn read_address(t: &Tbl<'_, '_>, block: &str) -> Res<SetpointAddress> {
    let Some(b) = t.sub(block)? else {
        return Err(t.missing(block));
    };
    match block {
        "modbus" => {
            b.allow(&["unit", "holding_registers", "coils"])?;
            let unit = match b.int("unit")? {
                None => None,
                Some(u) => Some(
                    u8::try_from(u).map_err(|_| b.err_at("unit", "a Modbus unit id is 0-255"))?,
                ),
            };
            let holding_registers = read_range::<u16>(&b, "holding_registers")?;
            let coils = read_range::<u16>(&b, "coils")?;
            if holding_registers.is_none() && coils.is_none() {
                return Err(b.missing("holding_registers"));
            }
            Ok(SetpointAddress::Modbus {
                unit,
                holding_registers,
                coils,
            })
        }
        "s7" => {
            b.allow(&["area", "db", "bytes"])?;
            let area_s = b.req_str("area")?;
            let area = match area_s.v.to_ascii_uppercase().as_str() {
                "DB" => S7Area::Db,
                "M" => S7Area::M,
                "I" => S7Area::I,
                "Q" => S7Area::Q,
                _ => {
                    return Err(b.err_at(
                        "area",
                        format!(
                            "unknown S7 area `{}` (expected one of: DB, M, I, Q)",
                            area_s.v
                        ),
                    ))
                }
            };
            let db = match b.int("db")? {
                None => None,
                Some(n) => {
                    Some(u16::try_from(n).map_err(|_| b.err_at("db", "a DB number is 0-65535"))?)
                }
            };
            match (area, db) {
                (S7Area::Db, None) => return Err(b.missing("db")),
                (S7Area::M | S7Area::I | S7Area::Q, Some(_)) => {
                    return Err(b.err_at("db", "`db` applies only to area DB"))
                }
                _ => {}
            }
            let bytes = read_range::<u32>(&b, "bytes")?.ok_or_else(|| b.missing("bytes"))?;
            Ok(SetpointAddress::S7 { area, db, bytes })
        }
        "dnp3" => {
            b.allow(&["analog_outputs", "binary_outputs"])?;
            let analog_outputs = read_range::<u32>(&b, "analog_outputs")?;
            let binary_outputs = read_range::<u32>(&b, "binary_outputs")?;
            if analog_outputs.is_none() && binary_outputs.is_none() {
                return Err(b.missing("analog_outputs"));
            }
            Ok(SetpointAddress::Dnp3 {
                analog_outputs,
                binary_outputs,
            })
        }
        _ => {
            b.allow(&["nodes"])?;
            let nodes = b.strs("nodes")?.ok_or_else(|| b.missing("nodes"))?;
            if nodes.is_empty() {
                return Err(b.err_at("nodes", "empty list: name at least one NodeId"));
            }
            for n in &nodes {
                if !is_node_id(&n.v) {
                    return Err(PolicyError {
                        file: t.cx.path.to_path_buf(),
                        line: Some(n.loc.line),
                        key: Some(n.key.clone()),
                        message: format!("`{}` is not an OPC UA NodeId (e.g. \"ns=2;s=Boiler1.SetPoint\", \"i=2253\")", n.v),
                    });
                }
            }
            Ok(SetpointAddress::Opcua {
                nodes: nodes.into_iter().map(|n| n.v).collect(),
            })
        }
    }
}

/// A NodeId's string form made comparable: namespace 0 left out, numbers without
/// leading zeros, GUIDs in lower case (`ns=0;i=0042` and `i=42` are one node).
/// Namespace URIs (`nsu=`) stay as written: without the server's namespace array they
/// cannot be mapped to an index.
pub fn canonical_node_id(s: &str) -> String {
    let (ns, rest) = match s.strip_prefix("ns=").and_then(|r| r.split_once(';')) {
        Some((ns, rest)) => match ns.parse::<u16>() {
            Ok(0) => (None, rest),
            Ok(n) => (Some(n.to_string()), rest),
            Err(_) => return s.to_owned(),
        },
        None => (None, s),
    };
    let id = if let Some(i) = rest.strip_prefix("i=") {
        match i.parse::<u32>() {
            Ok(n) => format!("i={n}"),
            Err(_) => rest.to_owned(),
        }
    } else if let Some(g) = rest.strip_prefix("g=") {
        format!("g={}", g.to_ascii_lowercase())
    } else {
        rest.to_owned()
    };
    match ns {
        Some(n) => format!("ns={n};{id}"),
        None => id,
    }
}

/// The string form of an OPC UA NodeId (Part 6, 5.3.1.10): an optional `ns=<u16>;` or
/// `nsu=<uri>;`, then `i=<u32>`, `s=<string>`, `g=<guid>` or `b=<base64>`.
pub fn is_node_id(s: &str) -> bool {
    let rest = if let Some(r) = s.strip_prefix("ns=") {
        match r.split_once(';') {
            Some((ns, rest)) if ns.parse::<u16>().is_ok() => rest,
            _ => return false,
        }
    } else if let Some(r) = s.strip_prefix("nsu=") {
        match r.split_once(';') {
            Some((uri, rest)) if !uri.is_empty() => rest,
            _ => return false,
        }
    } else {
        s
    };
    if let Some(i) = rest.strip_prefix("i=") {
        i.parse::<u32>().is_ok()
    } else if let Some(g) = rest.strip_prefix("g=") {
        let groups: Vec<&str> = g.split('-').collect();
        groups.iter().map(|x| x.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|x| x.bytes().all(|c| c.is_ascii_hexdigit()))
    } else if let Some(v) = rest.strip_prefix("s=").or_else(|| rest.strip_prefix("b=")) {
        !v.is_empty()
    } else {
        false
    }
}

fn read_override(t: &Tbl<'_, '_>) -> Res<RawOverride> {
    t.allow(&["kind", "rule", "severity", "enabled", "except_sources"])?;
    let selector = match (t.str("kind")?, t.str("rule")?) {
        (Some(k), None) => {
            if AlertKind::from_name(&k.v).is_none() {
                let kinds: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                return Err(t.err_at(
                    "kind",
                    format!(
                        "unknown alert kind `{}` (expected one of: {})",
                        k.v,
                        kinds.join(", ")
                    ),
                ));
            }
            At {
                v: OverrideSelector::Kind(k.v),
                loc: k.loc,
                key: k.key,
            }
        }
        (None, Some(r)) => {
            if crate::ruleset::RuleSet::shipped().by_id(&r.v).is_none() {
                return Err(t.err_at(
                    "rule",
                    format!("unknown rule id `{}` (see rules/default.toml)", r.v),
                ));
            }
            At {
                v: OverrideSelector::Rule(r.v),
                loc: r.loc,
                key: r.key,
            }
        }
        (Some(_), Some(_)) => {
            return Err(t.err_at(
                "rule",
                "an override selects by `kind` or by `rule`, not both",
            ))
        }
        (None, None) => {
            return Err(t.cx.err(
                &t.span,
                &t.key("kind"),
                "an override needs `kind` or `rule`",
            ))
        }
    };
    let severity = match t.str("severity")? {
        None => None,
        Some(s) => Some(At {
            v: severity_from_name(&s.v).ok_or_else(|| {
                t.err_at(
                    "severity",
                    format!(
                        "unknown severity `{}` (expected one of: info, low, medium, high, critical)",
                        s.v
                    ),
                )
            })?,
            loc: s.loc,
            key: s.key,
        }),
    };
    let enabled = match (t.bool("enabled")?, t.get("enabled")) {
        (Some(b), Some(v)) => Some(t.cx.at(b, &v.span(), t.key("enabled"))),
        _ => None,
    };
    Ok(RawOverride {
        selector,
        severity,
        enabled,
        except_sources: t.strs("except_sources")?.unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------
// Stage 2 and 3: includes, merge, resolve

#[derive(Default)]
struct Loader {
    /// Files as named in messages, in reading order.
    files: Vec<PathBuf>,
    /// Canonical paths read so far (a file reached twice is read once).
    seen: HashSet<PathBuf>,
    raw: Raw,
}

impl Loader {
    fn err_at(&self, loc: Loc, key: &str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            file: self.files.get(loc.file).cloned().unwrap_or_default(),
            line: Some(loc.line),
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    fn place(&self, loc: Loc) -> String {
        format!(
            "{}:{}",
            self.files
                .get(loc.file)
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            loc.line
        )
    }

    /// Reads one file's text and, depth first, the files it includes. `stack` holds
    /// the canonical paths of the including files (cycle detection).
    fn read_file(
        &mut self,
        text: &str,
        path: &Path,
        canonical: PathBuf,
        stack: &mut Vec<PathBuf>,
    ) -> Res<()> {
        let idx = self.files.len();
        self.files.push(path.to_path_buf());
        self.seen.insert(canonical.clone());
        let cx = Cx::new(idx, path, text);
        let doc = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let mut err = cx.err(&span, "", format!("invalid TOML: {}", e.message()));
            // The parser's message for a key (or [table]) written twice does not say
            // which; its span points at the second occurrence.
            if e.message().contains("duplicate key") {
                err.key = key_written_at(text, &span);
            }
            err
        })?;
        let doc = Spanned::new(doc.span(), DeValue::Table(doc.into_inner()));
        let mut file_raw = Raw::default();
        let includes = read_document(&cx, &doc, &mut file_raw)?;
        self.merge(file_raw)?;

        stack.push(canonical);
        for inc in includes {
            let rel = Path::new(&inc.v);
            let target = match path.parent() {
                Some(dir) if rel.is_relative() => dir.join(rel),
                _ => rel.to_path_buf(),
            };
            let canon = std::fs::canonicalize(&target).map_err(|e| {
                self.err_at(
                    inc.loc,
                    &inc.key,
                    format!("cannot read `{}`: {e}", target.display()),
                )
            })?;
            if stack.contains(&canon) {
                let chain: Vec<String> = stack
                    .iter()
                    .chain(std::iter::once(&canon))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(self.err_at(
                    inc.loc,
                    &inc.key,
                    format!("include cycle: {}", chain.join(" -> ")),
                ));
            }
            if self.seen.contains(&canon) {
                tracing::debug!(file = %target.display(), "policy file already included; read once");
                continue;
            }
            if stack.len() > MAX_INCLUDE_DEPTH {
                return Err(self.err_at(
                    inc.loc,
                    &inc.key,
                    format!("includes nest deeper than {MAX_INCLUDE_DEPTH} levels"),
                ));
            }
            if self.files.len() >= MAX_POLICY_FILES {
                return Err(self.err_at(
                    inc.loc,
                    &inc.key,
                    format!("a policy is made of at most {MAX_POLICY_FILES} files"),
                ));
            }
            let text = read_policy_file(&target).map_err(|m| {
                self.err_at(inc.loc, &inc.key, format!("`{}`: {m}", target.display()))
            })?;
            self.read_file(&text, &target, canon, stack)?;
        }
        stack.pop();
        Ok(())
    }

    /// Appends one file's definitions: lists concatenate, zone tables merge; `[sensor]`
    /// may be written once across all files.
    fn merge(&mut self, other: Raw) -> Res<()> {
        if let Some((sensor, loc)) = other.sensor {
            if let Some((_, first)) = &self.raw.sensor {
                return Err(self.err_at(
                    loc,
                    "sensor",
                    format!(
                        "[sensor] is defined twice (first at {})",
                        self.place(*first)
                    ),
                ));
            }
            self.raw.sensor = Some((sensor, loc));
        }
        let r = &mut self.raw;
        r.zones.extend(other.zones);
        r.assets.extend(other.assets);
        r.conduits.extend(other.conduits);
        r.windows.extend(other.windows);
        r.setpoints.extend(other.setpoints);
        r.credentials.extend(other.credentials);
        r.overrides.extend(other.overrides);
        r.dnp3_program_files.extend(other.dnp3_program_files);
        r.opcua_methods.extend(other.opcua_methods);
        Ok(())
    }

    /// Fails on the second of two equal names.
    fn unique<'n>(
        &self,
        what: &str,
        names: impl Iterator<Item = &'n At<String>>,
    ) -> Res<HashMap<&'n str, Loc>> {
        let mut seen: HashMap<&str, Loc> = HashMap::new();
        for n in names {
            if let Some(first) = seen.insert(&n.v, n.loc) {
                return Err(self.err_at(
                    n.loc,
                    &n.key,
                    format!(
                        "{what} `{}` is defined twice (first at {})",
                        n.v,
                        self.place(first)
                    ),
                ));
            }
        }
        Ok(seen)
    }

    /// Overrides of one rule combine (`RuleSet::with_overrides`), whether they select it
    /// by kind or by rule id: each sets what it names, and `except_sources` add up. Two
    /// that set `severity` or `enabled` to different values contradict each other, and
    /// which one was meant cannot be told: an error at the second, naming the first.
    fn overrides_agree(&self) -> Res<()> {
        let rules = crate::ruleset::RuleSet::shipped();
        // Per rule, the first override setting each setting.
        type Firsts<'o> = (Option<&'o At<crate::model::Severity>>, Option<&'o At<bool>>);
        let mut firsts: HashMap<AlertKind, Firsts<'_>> = HashMap::new();
        for o in &self.raw.overrides {
            let kind = match &o.selector.v {
                OverrideSelector::Kind(k) => AlertKind::from_name(k),
                OverrideSelector::Rule(id) => rules.by_id(id).map(|r| r.kind),
            };
            // `read_override` accepts only selectors of shipped rules.
            let Some(kind) = kind else {
                return Err(self.err_at(o.selector.loc, &o.selector.key, "selects no rule"));
            };
            let rule = rules.rule(kind);
            let contradiction = |first: Loc, second: Loc, key: &str, was: String, is: String| {
                self.err_at(
                    second,
                    key,
                    format!(
                        "contradicts the override at {}, which also selects rule {} ({}): that one sets {was}, this one {is}",
                        self.place(first),
                        rule.id,
                        kind.as_str()
                    ),
                )
            };
            let (severity, enabled) = firsts.entry(kind).or_default();
            if let Some(new) = &o.severity {
                match severity {
                    Some(first) if first.v != new.v => {
                        return Err(contradiction(
                            first.loc,
                            new.loc,
                            &new.key,
                            format!("severity \"{}\"", severity_name(first.v)),
                            format!("severity \"{}\"", severity_name(new.v)),
                        ))
                    }
                    Some(_) => {}
                    None => *severity = Some(new),
                }
            }
            if let Some(new) = &o.enabled {
                match enabled {
                    Some(first) if first.v != new.v => {
                        return Err(contradiction(
                            first.loc,
                            new.loc,
                            &new.key,
                            format!("enabled = {}", first.v),
                            format!("enabled = {}", new.v),
                        ))
                    }
                    Some(_) => {}
                    None => *enabled = Some(new),
                }
            }
        }
        Ok(())
    }

    /// One entry per OPC UA method node, compared in canonical form (`ns=02;s=X` is
    /// `ns=2;s=X`, as the engine looks methods up): the same operation twice is a
    /// duplicate, a different one a contradiction.
    fn opcua_methods_unique(&self) -> Res<()> {
        let mut seen: HashMap<String, &RawOpcuaMethod> = HashMap::new();
        for m in &self.raw.opcua_methods {
            let canon = canonical_node_id(&m.node.v);
            if let Some(first) = seen.get(&canon) {
                let place = self.place(first.node.loc);
                return Err(if first.operation.v == m.operation.v {
                    let written = if first.node.v == m.node.v {
                        String::new()
                    } else {
                        format!(", as `{}`", first.node.v)
                    };
                    self.err_at(
                        m.node.loc,
                        &m.node.key,
                        format!(
                            "OPC UA method `{}` is defined twice (first at {place}{written})",
                            m.node.v
                        ),
                    )
                } else {
                    self.err_at(
                        m.operation.loc,
                        &m.operation.key,
                        format!(
                            "OPC UA method `{}`: node {canon} is already {} ({place}); it cannot also be {}",
                            m.node.v, first.operation.v, m.operation.v
                        ),
                    )
                });
            }
            seen.insert(canon, m);
        }
        Ok(())
    }

    fn finish(self) -> Res<Policy> {
        let raw = &self.raw;
        let default_sensor;
        let sensor = match &raw.sensor {
            Some((sensor, _)) => sensor,
            None => {
                default_sensor = RawSensor::default();
                &default_sensor
            }
        };

        let zones = self.unique("zone", raw.zones.iter().map(|z| &z.name))?;
        let mut prefixes: HashMap<IpNet, (&str, Loc)> = HashMap::new();
        for z in &raw.zones {
            for p in &z.prefixes {
                if let Some((other, first)) = prefixes.insert(p.v, (&z.name.v, p.loc)) {
                    return Err(self.err_at(
                        p.loc,
                        &p.key,
                        format!("prefix {} is already in zone `{other}` ({}): a prefix belongs to one zone", p.v, self.place(first)),
                    ));
                }
            }
        }
        let assets = self.unique("asset", raw.assets.iter().map(|a| &a.name))?;
        let mut ips: HashMap<std::net::IpAddr, &At<String>> = HashMap::new();
        for a in &raw.assets {
            if let Some(first) = ips.insert(a.ip.v, &a.name) {
                return Err(self.err_at(
                    a.ip.loc,
                    &a.ip.key,
                    format!(
                        "address {} is already asset `{}` ({})",
                        a.ip.v,
                        first.v,
                        self.place(first.loc)
                    ),
                ));
            }
        }
        let zone_ok = |n: &At<String>| -> Res<()> {
            if n.v == UNKNOWN_ZONE || zones.contains_key(n.v.as_str()) {
                Ok(())
            } else {
                Err(self.err_at(n.loc, &n.key, format!("unknown zone `{}`", n.v)))
            }
        };
        let asset_ok = |n: &At<String>| -> Res<()> {
            if assets.contains_key(n.v.as_str()) {
                Ok(())
            } else {
                Err(self.err_at(n.loc, &n.key, format!("unknown asset `{}`", n.v)))
            }
        };
        let assets_ok = |list: &[At<String>]| list.iter().try_for_each(asset_ok);

        for c in &raw.conduits {
            zone_ok(&c.from)?;
            zone_ok(&c.to)?;
        }
        self.unique("window", raw.windows.iter().map(|w| &w.name))?;
        let mut windows = Vec::with_capacity(raw.windows.len());
        for w in &raw.windows {
            let mut applies_to = Vec::with_capacity(w.applies_to.len());
            for n in &w.applies_to {
                let is_zone = n.v == UNKNOWN_ZONE || zones.contains_key(n.v.as_str());
                let is_asset = assets.contains_key(n.v.as_str());
                applies_to.push(match (is_zone, is_asset) {
                    (true, false) => Target::Zone(n.v.clone()),
                    (false, true) => Target::Asset(n.v.clone()),
                    (true, true) => {
                        return Err(self.err_at(
                            n.loc,
                            &n.key,
                            format!("`{}` is both a zone and an asset: rename one of them", n.v),
                        ))
                    }
                    (false, false) => {
                        return Err(self.err_at(
                            n.loc,
                            &n.key,
                            format!("`{}` is neither a zone nor an asset", n.v),
                        ))
                    }
                });
            }
            if let Some(s) = &w.sources {
                assets_ok(s)?;
            }
            windows.push(Window {
                name: w.name.v.clone(),
                ticket: w.ticket.clone(),
                applies_to,
                sources: w
                    .sources
                    .as_ref()
                    .map(|s| s.iter().map(|n| n.v.clone()).collect()),
                schedule: w.schedule.clone(),
            });
        }
        self.unique("setpoint", raw.setpoints.iter().map(|s| &s.name))?;
        for s in &raw.setpoints {
            asset_ok(&s.asset)?;
            assets_ok(&s.writers)?;
        }
        self.unique("credential", raw.credentials.iter().map(|c| &c.user))?;
        for c in &raw.credentials {
            assets_ok(&c.sources)?;
        }
        self.overrides_agree()?;
        for o in &raw.overrides {
            assets_ok(&o.except_sources)?;
        }
        self.opcua_methods_unique()?;

        let names = |list: &[At<String>]| list.iter().map(|n| n.v.clone()).collect::<Vec<_>>();
        let mut policy = Policy {
            sensor: Sensor {
                name: sensor.name.clone(),
                timezone_name: sensor.timezone_name.clone(),
                timezone: sensor.timezone.clone(),
            },
            zones: raw
                .zones
                .iter()
                .map(|z| Zone {
                    name: z.name.v.clone(),
                    prefixes: z.prefixes.iter().map(|p| p.v).collect(),
                })
                .collect(),
            assets: raw
                .assets
                .iter()
                .map(|a| Asset {
                    name: a.name.v.clone(),
                    ip: a.ip.v,
                    role: a.role,
                })
                .collect(),
            conduits: raw
                .conduits
                .iter()
                .map(|c| Conduit {
                    from: c.from.v.clone(),
                    to: c.to.v.clone(),
                    protocols: c.protocols.clone(),
                })
                .collect(),
            windows,
            setpoints: raw
                .setpoints
                .iter()
                .map(|s| Setpoint {
                    name: s.name.v.clone(),
                    asset: s.asset.v.clone(),
                    writers: names(&s.writers),
                    min: s.min,
                    max: s.max,
                    value_type: s.value_type,
                    word_order: s.word_order,
                    address: s.address.clone(),
                })
                .collect(),
            credentials: raw
                .credentials
                .iter()
                .map(|c| Credential {
                    user: c.user.v.clone(),
                    sources: names(&c.sources),
                })
                .collect(),
            overrides: raw
                .overrides
                .iter()
                .map(|o| Override {
                    selector: o.selector.v.clone(),
                    severity: o.severity.as_ref().map(|s| s.v),
                    enabled: o.enabled.as_ref().map(|e| e.v),
                    except_sources: names(&o.except_sources),
                })
                .collect(),
            dnp3: Dnp3Hints {
                program_files: raw.dnp3_program_files.clone(),
            },
            opcua_methods: raw
                .opcua_methods
                .iter()
                .map(|m| OpcuaMethod {
                    node: m.node.v.clone(),
                    operation: m.operation.v,
                })
                .collect(),
            repeat_interval_secs: sensor.repeat_interval_secs,
            sources: self.files.clone(),
            index: crate::lookup::Index::default(),
        };
        policy.index = crate::lookup::build(&policy);
        for a in &policy.assets {
            if !policy.in_declared_zone(a.ip) {
                tracing::debug!(asset = %a.name, ip = %a.ip, "asset address lies in no zone");
            }
        }
        Ok(policy)
    }
}

// ---------------------------------------------------------------------------------
// Summary

impl Policy {
    /// What `otwatch check` prints: the sensor, the counts, every zone with its prefixes,
    /// every window with its state now (open, next opening, expired), the files read.
    pub fn summary(&self) -> String {
        self.summary_at(JiffTimestamp::now())
    }

    /// [`Policy::summary`] as of `now` (deterministic, for tests).
    pub fn summary_at(&self, now: JiffTimestamp) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "policy OK: sensor `{}`, time zone {}, repeat interval {} s",
            self.sensor.name, self.sensor.timezone_name, self.repeat_interval_secs
        );
        let _ = writeln!(
            s,
            "{} zones, {} assets, {} conduits, {} windows, {} setpoints, {} credentials, {} overrides, {} OPC UA methods, {} DNP3 program-file patterns",
            self.zones.len(),
            self.assets.len(),
            self.conduits.len(),
            self.windows.len(),
            self.setpoints.len(),
            self.credentials.len(),
            self.overrides.len(),
            self.opcua_methods.len(),
            self.dnp3.program_files.len()
        );
        for z in &self.zones {
            let prefixes: Vec<String> = z.prefixes.iter().map(|p| p.to_string()).collect();
            let _ = writeln!(s, "zone {}: {}", z.name, prefixes.join(", "));
        }
        let outside = self
            .assets
            .iter()
            .filter(|a| !self.in_declared_zone(a.ip))
            .count();
        if outside > 0 {
            let _ = writeln!(s, "{outside} assets lie in no zone (zone `unknown`)");
        }
        for c in &self.conduits {
            let protocols = match &c.protocols {
                None => "any protocol".to_string(),
                Some(list) => list
                    .iter()
                    .map(conduit_protocol_name)
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let _ = writeln!(s, "conduit {} -> {}: {protocols}", c.from, c.to);
        }
        for w in &self.windows {
            let targets: Vec<&str> = w
                .applies_to
                .iter()
                .map(|t| match t {
                    Target::Zone(n) | Target::Asset(n) => n.as_str(),
                })
                .collect();
            let when = match &w.schedule {
                WindowSchedule::Weekly(spans) => {
                    let spans: Vec<String> = spans.iter().map(|sp| sp.to_string()).collect();
                    format!(
                        "weekly {} ({})",
                        spans.join(", "),
                        self.sensor.timezone_name
                    )
                }
                WindowSchedule::OneOff { start, end } => format!("{start} to {end}"),
            };
            let state = if w.is_open_at(now, &self.sensor.timezone) {
                "open now".to_string()
            } else {
                match w.next_opening(now, &self.sensor.timezone) {
                    Some(t) => format!("next opens {t}"),
                    None => "expired".to_string(),
                }
            };
            let _ = writeln!(
                s,
                "window {}: {when}; applies to {}{}; {state}",
                w.name,
                targets.join(", "),
                w.sources
                    .as_ref()
                    .map(|src| format!("; sources {}", src.join(", ")))
                    .unwrap_or_default()
            );
        }
        let files: Vec<String> = self
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let _ = writeln!(s, "files read: {}", files.join(", "));
        s
    }
}

/// `modbus`, `tcp/8080`, ... as written in policy files.
pub fn conduit_protocol_name(p: &ConduitProtocol) -> String {
    match p {
        ConduitProtocol::Dissector(d) => d.clone(),
        ConduitProtocol::Tcp(port) => format!("tcp/{port}"),
        ConduitProtocol::Udp(port) => format!("udp/{port}"),
    }
}

impl std::fmt::Display for WeeklySpan {
    /// `Sat 22:00-Sun 06:00` (an end at the week's end prints as `Sun 24:00`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let point = |m: u32, end: bool| {
            let (day, rest) = if end && m % 1440 == 0 && m > 0 {
                ((m / 1440) as usize - 1, 1440)
            } else {
                ((m / 1440) as usize % 7, m % 1440)
            };
            let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
                .get(day)
                .copied()
                .unwrap_or("Mon");
            format!("{day} {:02}:{:02}", rest / 60, rest % 60)
        };
        write!(
            f,
            "{}-{}",
            point(self.start_minute, false),
            point(self.end_minute, true)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    const FILE: &str = "plant.toml";

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        parse_str(text, Path::new(FILE))
    }

    const SENSOR: &str = "[sensor]\nname = \"s1\"\n";

    /// A valid base (lines 1-16) to which error cases append; the line numbers of
    /// appended text start at 17.
    const BASE: &str = "\
[sensor]
name = \"plant-a-span1\"
timezone = \"Europe/Berlin\"

[zones]
engineering = [\"10.20.1.0/24\"]
cell-1 = [\"10.30.1.0/24\"]

[[assets]]
name = \"plc-boiler-1\"
ip = \"10.30.1.10\"
role = \"plc\"
[[assets]]
name = \"ews-1\"
ip = \"10.20.1.5\"
role = \"engineering\"
";

    /// Asserts an error names FILE, `line` and a key containing `key`, and that its
    /// message contains `needle`.
    #[track_caller]
    fn assert_err(text: &str, line: usize, key: &str, needle: &str) {
        let e = match parse(text) {
            Ok(_) => panic!("policy accepted, expected an error at line {line} key {key}"),
            Err(e) => e,
        };
        assert_eq!(e.file, Path::new(FILE), "{e}");
        assert_eq!(e.line, Some(line), "{e}");
        assert_eq!(e.key.as_deref(), Some(key), "{e}");
        assert!(e.message.contains(needle), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{FILE}:{line}: {key}: ")),
            "{shown}"
        );
    }

    #[test]
    fn demo_policy_loads() {
        let p = parse_str(DEMO_POLICY_TOML, Path::new(DEMO_POLICY_ORIGIN)).unwrap();
        assert_eq!(p.sensor.name, "plant-a-span1");
        assert_eq!(p.sensor.timezone_name, "Europe/Berlin");
        let names: Vec<&str> = p.zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["enterprise", "engineering", "hmi", "cell-1"]);
        assert_eq!(p.zone_of("10.30.1.10".parse().unwrap()), "cell-1");
        assert_eq!(p.zone_of("10.0.5.99".parse().unwrap()), "enterprise");
        let plc = p.asset_by_ip("10.30.1.10".parse().unwrap()).unwrap();
        assert_eq!((plc.name.as_str(), plc.role), ("plc-boiler-1", Role::Plc));
        assert!(p.asset_by_ip("10.0.5.99".parse().unwrap()).is_none());
        let sp: Vec<&Setpoint> = p.setpoints_of("plc-boiler-1").collect();
        assert_eq!(sp.len(), 1);
        assert_eq!(sp[0].name, "boiler-1 temperature setpoint");
        assert_eq!(sp[0].writers, ["ews-1", "hmi-1"]);
        assert_eq!((sp[0].min, sp[0].max), (Some(0.0), Some(95.0)));
        assert_eq!(
            sp[0].address,
            SetpointAddress::Modbus {
                unit: Some(1),
                holding_registers: Some(100..=100),
                coils: None
            }
        );
        let modbus = ConduitProtocol::Dissector("modbus".into());
        assert!(p.conduit_allows("hmi", "cell-1", &modbus));
        assert!(p.conduit_allows("engineering", "cell-1", &modbus));
        assert!(!p.conduit_allows("enterprise", "cell-1", &modbus));
        assert_eq!(p.sources, [PathBuf::from(DEMO_POLICY_ORIGIN)]);
        assert_eq!(demo().assets.len(), p.assets.len());
    }

    /// The demo capture's story (pcaps/README.md) against the demo policy: the UMAS
    /// download at 2026-11-20T10:03:10Z is outside every window; hmi-1 and ews-1 may
    /// write the setpoint; 10.0.5.99 is in `enterprise` and no asset.
    #[test]
    fn demo_policy_matches_the_demo_story() {
        let p = demo();
        let at = |s: &str| {
            otwatch_event::Timestamp::from_nanos(
                JiffTimestamp::from_str(s).unwrap().as_nanosecond() as i64,
            )
        };
        let check = p.window_check(
            at("2026-11-20T10:03:10.25Z"),
            Some("plc-boiler-1"),
            "cell-1",
            Some("ews-1"),
        );
        assert!(check.open.is_none());
        assert!(!check.considered.is_empty());
        // The weekly window: Saturday 2026-11-21 23:00 Berlin = 22:00Z.
        let check = p.window_check(
            at("2026-11-21T22:00:00Z"),
            Some("plc-boiler-1"),
            "cell-1",
            Some("ews-1"),
        );
        assert!(check.open.is_some());
    }

    #[test]
    fn full_contract_example_parses() {
        // The example of shared/spec/policy.md with every block.
        let text = format!(
            "{BASE}
[[assets]]
name = \"hmi-1\"
ip = \"10.40.1.11\"
role = \"hmi\"

[[conduits]]
from = \"engineering\"
to   = \"cell-1\"
protocols = [\"s7comm\", \"modbus\", \"tcp/8080\", \"udp/161\"]

[[conduits]]
from = \"unknown\"
to = \"engineering\"

[[windows]]
name = \"weekly-maintenance\"
applies_to = [\"cell-1\"]
weekly = [\"Sat 22:00-Sun 06:00\"]

[[windows]]
name = \"CHG-4711 firmware update\"
ticket = \"CHG-4711\"
applies_to = [\"plc-boiler-1\"]
sources = [\"ews-1\"]
start = \"2026-11-28T08:00:00Z\"
end   = 2026-11-28T12:00:00Z

[[setpoints]]
name    = \"boiler-1 temperature setpoint\"
asset   = \"plc-boiler-1\"
writers = [\"ews-1\", \"hmi-1\"]
min = 0.0
max = 95
type = \"f32\"
word_order = \"little\"
modbus = {{ unit = 1, holding_registers = \"100-109\", coils = 7 }}

[[setpoints]]
name = \"s7\"
asset = \"plc-boiler-1\"
s7 = {{ area = \"DB\", db = 10, bytes = \"0-19\" }}

[[setpoints]]
name = \"dnp3\"
asset = \"plc-boiler-1\"
dnp3 = {{ analog_outputs = \"0-3\", binary_outputs = \"5\" }}

[[setpoints]]
name = \"opcua\"
asset = \"plc-boiler-1\"
opcua = {{ nodes = [\"ns=2;s=Boiler1.SetPoint\", \"i=2253\"] }}

[[credentials]]
user = \"operator1\"
sources = [\"hmi-1\"]

[[overrides]]
kind = \"device_restart\"
severity = \"low\"
enabled = true
except_sources = [\"ews-1\"]

[[overrides]]
rule = \"OTW-1001\"
enabled = false

[dnp3]
program_files = [\"*.bin\", \"/config/*\"]

[[opcua_methods]]
node = \"ns=2;s=Line1.Plc.Stop\"
operation = \"mode_change\"
"
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.repeat_interval_secs, 60);
        assert_eq!(p.conduits.len(), 2);
        assert_eq!(
            p.conduits[0].protocols,
            Some(vec![
                ConduitProtocol::Dissector("s7comm".into()),
                ConduitProtocol::Dissector("modbus".into()),
                ConduitProtocol::Tcp(8080),
                ConduitProtocol::Udp(161),
            ])
        );
        assert_eq!(p.conduits[1].protocols, None);
        assert_eq!(p.windows.len(), 2);
        assert_eq!(p.windows[0].applies_to, [Target::Zone("cell-1".into())]);
        assert_eq!(
            p.windows[1].applies_to,
            [Target::Asset("plc-boiler-1".into())]
        );
        assert_eq!(p.windows[1].ticket.as_deref(), Some("CHG-4711"));
        assert_eq!(p.windows[1].sources, Some(vec!["ews-1".to_string()]));
        match &p.windows[1].schedule {
            WindowSchedule::OneOff { start, end } => {
                assert_eq!(start.to_string(), "2026-11-28T08:00:00Z");
                assert_eq!(end.as_second() - start.as_second(), 4 * 3600);
            }
            other => panic!("{other:?}"),
        }
        let sp = &p.setpoints[0];
        assert_eq!(
            (sp.value_type, sp.word_order),
            (ValueType::F32, WordOrder::Little)
        );
        assert_eq!(sp.max, Some(95.0));
        assert_eq!(
            sp.address,
            SetpointAddress::Modbus {
                unit: Some(1),
                holding_registers: Some(100..=109),
                coils: Some(7..=7)
            }
        );
        assert_eq!(
            p.setpoints[1].address,
            SetpointAddress::S7 {
                area: S7Area::Db,
                db: Some(10),
                bytes: 0..=19
            }
        );
        assert_eq!(p.setpoints[1].value_type, ValueType::U16);
        assert_eq!(
            p.setpoints[2].address,
            SetpointAddress::Dnp3 {
                analog_outputs: Some(0..=3),
                binary_outputs: Some(5..=5)
            }
        );
        assert_eq!(
            p.setpoints[3].address,
            SetpointAddress::Opcua {
                nodes: vec!["ns=2;s=Boiler1.SetPoint".into(), "i=2253".into()]
            }
        );
        assert_eq!(p.credentials[0].sources, ["hmi-1"]);
        assert_eq!(
            p.overrides[0].selector,
            OverrideSelector::Kind("device_restart".into())
        );
        assert_eq!(p.overrides[0].severity, Some(crate::model::Severity::Low));
        assert_eq!(p.overrides[0].except_sources, ["ews-1"]);
        assert_eq!(
            p.overrides[1].selector,
            OverrideSelector::Rule("OTW-1001".into())
        );
        assert_eq!(p.overrides[1].enabled, Some(false));
        assert_eq!(p.dnp3.program_files, ["*.bin", "/config/*"]);
        assert_eq!(p.opcua_methods[0].operation, Operation::ModeChange);
        assert_eq!(
            p.opcua_method("ns=2;s=Line1.Plc.Stop"),
            Some(Operation::ModeChange)
        );
        assert_eq!(p.credential("operator1").map(|c| c.sources.len()), Some(1));
    }

    #[test]
    fn defaults() {
        let p = parse(SENSOR).unwrap();
        assert_eq!(p.sensor.timezone_name, "UTC");
        assert_eq!(p.repeat_interval_secs, DEFAULT_REPEAT_INTERVAL_SECS);
        assert!(p.zones.is_empty() && p.assets.is_empty());
        let p =
            parse("[sensor]\nname = \"s\"\n[[assets]]\nname = \"a\"\nip = \"::ffff:10.1.2.3\"\n")
                .unwrap();
        // Role defaults to `other`; a v4-mapped v6 address is stored as IPv4.
        assert_eq!(p.assets[0].role, Role::Other);
        assert_eq!(p.assets[0].ip, "10.1.2.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn repeat_interval_forms() {
        for (v, secs) in [
            ("90", 90),
            ("\"60s\"", 60),
            ("\"5m\"", 300),
            ("\"1h\"", 3600),
            ("0", 0),
        ] {
            let p = parse(&format!("[sensor]\nname = \"s\"\nrepeat_interval = {v}\n")).unwrap();
            assert_eq!(p.repeat_interval_secs, secs, "{v}");
        }
        for v in ["-1", "\"5 parsecs\"", "\"2d\"", "86401", "true"] {
            assert_err(
                &format!("[sensor]\nname = \"s\"\nrepeat_interval = {v}\n"),
                3,
                "sensor.repeat_interval",
                "duration",
            );
        }
    }

    #[test]
    fn toml_syntax_error_names_the_line() {
        let e = parse("[sensor]\nname = \"s\"\ntimezone = \n").unwrap_err();
        assert_eq!(
            (e.file.as_path(), e.line, e.key.as_deref()),
            (Path::new(FILE), Some(3), None)
        );
        assert!(e.message.starts_with("invalid TOML"), "{e}");
        assert!(
            e.to_string().starts_with("plant.toml:3: invalid TOML"),
            "{e}"
        );
        // A key written twice is a TOML error.
        let e = parse("[sensor]\nname = \"s\"\nname = \"t\"\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
    }

    /// A key written twice in one table is a TOML error; it names the key as written,
    /// at the line of its second occurrence.
    #[test]
    fn duplicate_toml_key_names_the_key() {
        let zones = "\
[sensor]
name = \"s1\"

[zones]
engineering = [\"10.20.1.0/24\"]
cell-1      = [\"10.30.1.0/24\"]
hmi         = [\"10.40.1.0/24\"]
cell-1      = [\"10.30.2.0/24\"]
";
        let e = parse(zones).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(8), Some("cell-1")), "{e}");
        assert!(e.message.contains("duplicate key"), "{e}");
        assert!(
            e.to_string()
                .starts_with("plant.toml:8: cell-1: invalid TOML: duplicate key"),
            "{e}"
        );
        let sensor = "[sensor]\nname = \"plant-a-span1\"\ntimezone = \"UTC\"\nname = \"plant-b\"\n";
        let e = parse(sensor).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("name")), "{e}");
        // A quoted key is named without its quotes; a table header written twice
        // names the table.
        let e = parse("[zones]\n\"cell-1\" = []\n\"cell-1\" = []\n[sensor]\nname = \"s\"\n")
            .unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("cell-1")), "{e}");
        let e = parse("[sensor]\nname = \"s\"\n\n[sensor]\ntimezone = \"UTC\"\n").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(4), Some("sensor")), "{e}");
        // The key is taken from the text only where the span lies in it.
        let text = "[a]\n\"\u{e9}t\u{e9}\" = 1\n";
        assert_eq!(
            key_written_at(text, &(4..11)).as_deref(),
            Some("\u{e9}t\u{e9}")
        );
        assert_eq!(key_written_at(text, &(5..6)), None);
        assert_eq!(key_written_at(text, &(4..400)), None);
        let reversed = Range { start: 9, end: 4 };
        assert_eq!(key_written_at(text, &reversed), None);
        assert_eq!(key_written_at("\"\" = 1", &(0..2)).as_deref(), Some("\"\""));
        assert_eq!(
            key_written_at("\"a\\tb\" = 1", &(0..6)).as_deref(),
            Some("\"a\\tb\"")
        );
    }

    #[test]
    fn unknown_keys_everywhere() {
        assert_err(&format!("colour = 1\n{SENSOR}"), 1, "colour", "unknown key");
        // A key below a table header belongs to that table.
        assert_err(
            &format!("{SENSOR}include = [\"x.toml\"]\n"),
            3,
            "sensor.include",
            "must come before the first [table]",
        );
        assert_err(
            "[sensor]\nname = \"s\"\nzone = \"x\"\n",
            3,
            "sensor.zone",
            "expected one of: name, timezone, repeat_interval",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"x\"\nip = \"10.0.0.1\"\nmac = \"aa\"\n"),
            20,
            "assets[3].mac",
            "unknown key",
        );
        assert_err(
            &format!("{BASE}[[conduits]]\nfrom = \"engineering\"\nto = \"cell-1\"\nport = 502\n"),
            20,
            "conduits[1].port",
            "unknown key",
        );
        assert_err(&format!("{BASE}[[windows]]\nname = \"w\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\nzone = \"x\"\n"), 21, "windows[1].zone", "unknown key");
        assert_err(&format!("{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\nmodbus = {{ unit = 1, registers = \"1\" }}\n"), 20, "setpoints[1].modbus.registers", "unknown key");
        assert_err(&format!("{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\nunits = \"degC\"\nmodbus = {{ coils = \"1\" }}\n"), 20, "setpoints[1].units", "unknown key");
        assert_err(
            &format!("{BASE}[[credentials]]\nuser = \"u\"\npassword = \"x\"\n"),
            19,
            "credentials[1].password",
            "unknown key",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"new_asset\"\nlevel = \"low\"\n"),
            19,
            "overrides[1].level",
            "unknown key",
        );
        assert_err(
            &format!("{BASE}[dnp3]\nprogram_file = [\"*.bin\"]\n"),
            18,
            "dnp3.program_file",
            "unknown key",
        );
        assert_err(
            &format!("{BASE}[[opcua_methods]]\nnode = \"i=1\"\noperation = \"restart\"\nwhy = 1\n"),
            20,
            "opcua_methods[1].why",
            "unknown key",
        );
    }

    /// policy.md marks no key of `[sensor]` as required: a policy of zones and conduits
    /// alone is complete, with the defaults.
    #[test]
    fn sensor_defaults() {
        for text in [
            "[zones]\na = [\"10.0.0.0/8\"]\n",
            "[sensor]\ntimezone = \"UTC\"\n[zones]\na = [\"10.0.0.0/8\"]\n",
        ] {
            let p = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.sensor.name, DEFAULT_SENSOR_NAME);
            assert_eq!(p.sensor.timezone_name, "UTC");
            assert_eq!(p.repeat_interval_secs, DEFAULT_REPEAT_INTERVAL_SECS);
        }
    }

    #[test]
    fn sensor_errors() {
        assert_err(
            "[sensor]\nname = \"\"\n",
            2,
            "sensor.name",
            "must not be empty",
        );
        assert_err(
            "[sensor]\nname = 7\n",
            2,
            "sensor.name",
            "expected a string, found an integer",
        );
        assert_err(
            "[sensor]\nname = \"s\"\ntimezone = \"Europe/Berlln\"\n",
            3,
            "sensor.timezone",
            "unknown time zone `Europe/Berlln`",
        );
        assert_err("sensor = 3\n", 1, "sensor", "expected a table");
    }

    #[test]
    fn zone_errors() {
        assert_err(
            &format!("{SENSOR}[zones]\nunknown = [\"10.0.0.0/8\"]\n"),
            4,
            "zones.unknown",
            "reserved",
        );
        assert_err(
            &format!("{SENSOR}[zones]\na = [\"10.0.0.0/33\"]\n"),
            4,
            "zones.a",
            "not a CIDR",
        );
        assert_err(
            &format!("{SENSOR}[zones]\na = [\"10.0.0/8\"]\n"),
            4,
            "zones.a",
            "not a CIDR",
        );
        assert_err(
            &format!("{SENSOR}[zones]\na = [\"10.30.1.7/24\"]\n"),
            4,
            "zones.a",
            "did you mean \"10.30.1.0/24\"",
        );
        assert_err(
            &format!("{SENSOR}[zones]\na = \"10.0.0.0/8\"\n"),
            4,
            "zones.a",
            "expected an array",
        );
        assert_err(
            &format!(
                "{SENSOR}[zones]\na = [\"10.0.0.0/8\"]\nb = [\"10.1.0.0/16\",\n  \"10.0.0.0/8\"]\n"
            ),
            6,
            "zones.b",
            "already in zone `a` (plant.toml:4)",
        );
        // Single addresses are host prefixes; IPv6 works.
        let p = parse(&format!(
            "{SENSOR}[zones]\na = [\"10.0.0.7\", \"fd00:30::/64\"]\n"
        ))
        .unwrap();
        assert_eq!(p.zones[0].prefixes[0].to_string(), "10.0.0.7/32");
        assert_eq!(p.zones[0].prefixes[1].to_string(), "fd00:30::/64");
    }

    #[test]
    fn asset_errors() {
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"x\"\nip = \"10.0.0.0/24\"\n"),
            19,
            "assets[3].ip",
            "not an IP address",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"x\"\nip = \"10.0.0.256\"\n"),
            19,
            "assets[3].ip",
            "not an IP address",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"x\"\nip = \"10.0.0.1\"\nrole = \"robot\"\n"),
            20,
            "assets[3].role",
            "unknown role `robot`",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"x\"\n"),
            17,
            "assets[3].ip",
            "missing required key",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"ews-1\"\nip = \"10.20.1.6\"\n"),
            18,
            "assets[3].name",
            "asset `ews-1` is defined twice (first at plant.toml:14)",
        );
        assert_err(
            &format!("{BASE}[[assets]]\nname = \"ews-2\"\nip = \"10.20.1.5\"\n"),
            19,
            "assets[3].ip",
            "already asset `ews-1` (plant.toml:14)",
        );
    }

    #[test]
    fn conduit_errors() {
        let c = |body: &str| format!("{BASE}[[conduits]]\n{body}");
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-2\"\n"),
            19,
            "conduits[1].to",
            "unknown zone `cell-2`",
        );
        assert_err(
            &c("from = \"plc-boiler-1\"\nto = \"cell-1\"\n"),
            18,
            "conduits[1].from",
            "unknown zone `plc-boiler-1`",
        );
        assert_err(
            &c("from = \"engineering\"\n"),
            17,
            "conduits[1].to",
            "missing required key",
        );
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-1\"\nprotocols = [\"modbus\", \"http\"]\n"),
            20,
            "conduits[1].protocols",
            "unknown protocol `http`",
        );
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-1\"\nprotocols = [\"tcp/0\"]\n"),
            20,
            "conduits[1].protocols",
            "unknown protocol `tcp/0`",
        );
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-1\"\nprotocols = [\"tcp/70000\"]\n"),
            20,
            "conduits[1].protocols",
            "unknown protocol",
        );
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-1\"\nprotocols = [\"sctp/1\"]\n"),
            20,
            "conduits[1].protocols",
            "unknown protocol",
        );
        assert_err(
            &c("from = \"engineering\"\nto = \"cell-1\"\nprotocols = []\n"),
            20,
            "conduits[1].protocols",
            "omit `protocols`",
        );
    }

    #[test]
    fn window_errors() {
        let w = |body: &str| format!("{BASE}[[windows]]\nname = \"w\"\n{body}");
        let weekly = |span: &str| {
            w(&format!(
                "applies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\",\n \"{span}\"]\n"
            ))
        };
        for (span, needle) in [
            ("Sat 22:00", "expected \"Ddd HH:MM-Ddd HH:MM\""),
            ("Sonday 22:00-Mon 06:00", "unknown day `Sonday`"),
            ("Sat 24:00-Sun 06:00", "bad time `24:00`"),
            ("Sat 22:60-Sun 06:00", "bad time `22:60`"),
            ("Sat 2200-Sun 06:00", "bad time `2200`"),
            ("Sat 22:00-Sun 24:01", "bad time `24:01`"),
            ("Sat 22:00-Sat 22:00", "same time"),
            ("Sat 24:00-Sun 00:00", "bad time"),
            ("Fri 00:00-Thu 24:00", "same time"),
        ] {
            // The second span, on its own line.
            assert_err(&weekly(span), 21, "windows[1].weekly", needle);
        }
        assert_err(
            &w("applies_to = [\"cell-1\", \"cell-9\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n"),
            19,
            "windows[1].applies_to",
            "neither a zone nor an asset",
        );
        assert_err(
            &w("applies_to = []\nweekly = [\"Sat 22:00-Sun 06:00\"]\n"),
            19,
            "windows[1].applies_to",
            "empty list",
        );
        assert_err(
            &w("weekly = [\"Sat 22:00-Sun 06:00\"]\n"),
            17,
            "windows[1].applies_to",
            "missing required key",
        );
        assert_err(&w("applies_to = [\"cell-1\"]\nsources = [\"ews-9\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n"), 20, "windows[1].sources", "unknown asset `ews-9`");
        assert_err(
            &w("applies_to = [\"cell-1\"]\nsources = []\nweekly = [\"Sat 22:00-Sun 06:00\"]\n"),
            20,
            "windows[1].sources",
            "empty list",
        );
        assert_err(
            &w("applies_to = [\"cell-1\"]\n"),
            17,
            "windows[1].weekly",
            "either `weekly`",
        );
        assert_err(
            &w("applies_to = [\"cell-1\"]\nweekly = []\n"),
            20,
            "windows[1].weekly",
            "empty list",
        );
        assert_err(
            &w("applies_to = [\"cell-1\"]\nstart = \"2026-11-28T08:00:00Z\"\n"),
            17,
            "windows[1].end",
            "missing required key",
        );
        assert_err(&w("applies_to = [\"cell-1\"]\nstart = \"2026-11-28T08:00:00\"\nend = \"2026-11-28T09:00:00Z\"\n"), 20, "windows[1].start", "with an offset");
        assert_err(&w("applies_to = [\"cell-1\"]\nstart = \"2026-11-28T08:00:00Z\"\nend = \"2026-11-31T09:00:00Z\"\n"), 21, "windows[1].end", "not an RFC 3339");
        assert_err(&w("applies_to = [\"cell-1\"]\nstart = \"2026-11-28T08:00:00Z\"\nend = \"2026-11-28T09:00:00+01:00\"\n"), 21, "windows[1].end", "is not after start");
        assert_err(&w("applies_to = [\"cell-1\"]\nstart = 2026-11-28T08:00:00\nend = \"2026-11-28T09:00:00Z\"\n"), 20, "windows[1].start", "with an offset");
        assert_err(&w("applies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\nstart = \"2026-11-28T08:00:00Z\"\nend = \"2026-11-28T09:00:00Z\"\n"), 20, "windows[1].weekly", "not both");
        assert_err(
            &format!("{BASE}[[windows]]\nname = \"w\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n[[windows]]\nname = \"w\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n"),
            22,
            "windows[2].name",
            "window `w` is defined twice (first at plant.toml:18)",
        );
        // A name that is both a zone and an asset is ambiguous in applies_to.
        let amb = format!("{BASE}[[assets]]\nname = \"cell-1\"\nip = \"10.30.1.11\"\n[[windows]]\nname = \"w\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n");
        assert_err(
            &amb,
            22,
            "windows[1].applies_to",
            "both a zone and an asset",
        );
    }

    /// `start` and `end` are RFC 3339 date-times: ISO 8601 forms it excludes (reduced
    /// precision, basic format, offsets without a colon, ...) are refused.
    #[test]
    fn one_off_times_are_rfc3339_only() {
        let window = |start: &str| {
            format!(
                "{BASE}[[windows]]\nname = \"CHG-4711\"\napplies_to = [\"plc-boiler-1\"]\nstart = {start}\nend   = \"2026-11-28T12:00:00Z\"\n"
            )
        };
        for bad in [
            "\"2026-11-28T08Z\"",
            "\"20261128T080000Z\"",
            "\"2026-11-28T08:00:00+0100\"",
            "\"2026-11-28T08:00Z\"",
            "\"2026-11-28 08:00:00Z\"",
            "\"2026-11-28T8:00:00Z\"",
            "\"2026-11-28T08:00:00,5Z\"",
            "\"2026-11-28T08:00:00.Z\"",
            "\"2026-11-28T08:00:00+01\"",
            "\"2026-11-28T08:00:00+24:00\"",
            "\"+002026-11-28T08:00:00Z\"",
            "\"2026-11-28T08:00:00+01:00[Europe/Berlin]\"",
            "\"2026-W48-6T08:00:00Z\"",
            "\"2026-11-28T08:00:00Z \\u00e9\"",
            // A TOML date-time without seconds (TOML 1.1) is no RFC 3339 time either.
            "2026-11-28T08:00Z",
        ] {
            assert_err(
                &window(bad),
                20,
                "windows[1].start",
                "expected YYYY-MM-DDTHH:MM:SS",
            );
        }
        for (good, utc) in [
            ("\"2026-11-28T08:00:00Z\"", "2026-11-28T08:00:00Z"),
            ("\"2026-11-28t08:00:00z\"", "2026-11-28T08:00:00Z"),
            ("\"2026-11-28T09:00:00.5+01:00\"", "2026-11-28T08:00:00.5Z"),
            ("\"2026-11-28T03:00:00-05:00\"", "2026-11-28T08:00:00Z"),
            ("\"2026-11-28T08:00:00-00:00\"", "2026-11-28T08:00:00Z"),
            ("2026-11-28 08:00:00Z", "2026-11-28T08:00:00Z"),
            ("2026-11-28T09:00:00.25+01:00", "2026-11-28T08:00:00.25Z"),
        ] {
            let p = parse(&window(good)).unwrap_or_else(|e| panic!("{good}: {e}"));
            match &p.windows[0].schedule {
                WindowSchedule::OneOff { start, .. } => assert_eq!(start.to_string(), utc),
                other => panic!("{other:?}"),
            }
        }
        for s in [
            "",
            "2",
            "2026-11-28T08:00:00",
            "2026-11-28T08:00:00.",
            "2026-11-28T08:00:00+01:0\u{e9}",
        ] {
            assert!(!is_rfc3339_date_time(s), "{s}");
        }
        // A second may be 60 (jiff reads it as 59); 31 November does not exist.
        assert!(is_rfc3339_date_time("2026-12-31T23:59:60Z"));
        assert_err(
            &window("\"2026-11-31T08:00:00Z\""),
            20,
            "windows[1].start",
            "not an RFC 3339 time",
        );
    }

    /// Weekly spans are "Ddd HH:MM-Ddd HH:MM": hours and minutes have two digits.
    #[test]
    fn weekly_times_have_two_digit_hours() {
        let text = format!(
            "{BASE}[[windows]]\nname = \"weekly-maintenance\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 2:00-Sun 6:00\"]\n"
        );
        assert_err(
            &text,
            20,
            "windows[1].weekly",
            "`Sat 2:00-Sun 6:00`: bad time `2:00` (expected HH:MM, two digits each",
        );
        for (span, time) in [
            ("Mon 8:05-Mon 17:00", "8:05"),
            ("Mon 08:05-Mon 7:00", "7:00"),
            ("Mon 08:5-Mon 17:00", "08:5"),
            ("Mon 008:05-Mon 17:00", "008:05"),
        ] {
            assert_eq!(
                parse_weekly_span(span).map_err(|e| e.contains(&format!("bad time `{time}`"))),
                Err(true),
                "{span}"
            );
        }
    }

    #[test]
    fn weekly_span_forms() {
        let m = |s: &str| parse_weekly_span(s).map(|w| (w.start_minute, w.end_minute));
        assert_eq!(
            m("Sat 22:00-Sun 06:00"),
            Ok((5 * 1440 + 22 * 60, 6 * 1440 + 6 * 60))
        );
        assert_eq!(m("sun 22:00 - MON 06:00"), Ok((6 * 1440 + 22 * 60, 6 * 60)));
        assert_eq!(m("Mon 00:00-Sun 24:00"), Ok((0, 10_080)));
        // Sat 24:00 is Sunday 00:00.
        assert_eq!(m("Sat 00:00-Sat 24:00"), Ok((5 * 1440, 6 * 1440)));
        assert_eq!(m("Mon 08:05-Mon 17:00"), Ok((8 * 60 + 5, 17 * 60)));
        for s in [
            "Sat 22:00-Sun 06:00",
            "Mon 00:00-Sun 24:00",
            "Sun 22:00-Mon 06:00",
            "Sat 00:00-Sat 24:00",
        ] {
            let w = parse_weekly_span(s).unwrap();
            assert_eq!(parse_weekly_span(&w.to_string()), Ok(w), "{s} -> {w}");
        }
        assert_eq!(
            parse_weekly_span("Sat 00:00-Sat 24:00")
                .unwrap()
                .to_string(),
            "Sat 00:00-Sat 24:00"
        );
    }

    #[test]
    fn setpoint_errors() {
        let s = |body: &str| {
            format!("{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\n{body}")
        };
        assert_err(
            &s(""),
            17,
            "setpoints[1].modbus",
            "exactly one address block",
        );
        assert_err(
            &s("modbus = { holding_registers = \"1\" }\ns7 = { area = \"M\", bytes = \"0\" }\n"),
            21,
            "setpoints[1].s7",
            "found modbus and s7",
        );
        assert_err(
            &s("modbus = { holding_registers = \"100-\" }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "not an address range",
        );
        assert_err(
            &s("modbus = { holding_registers = \"a-b\" }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "not an address range",
        );
        assert_err(
            &s("modbus = { holding_registers = \"109-100\" }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "starts after it ends",
        );
        assert_err(
            &s("modbus = { holding_registers = \"0-65536\" }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "not an address range",
        );
        assert_err(
            &s("modbus = { holding_registers = -1 }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "not an address range",
        );
        assert_err(
            &s("modbus = { unit = 256, coils = \"1\" }\n"),
            20,
            "setpoints[1].modbus.unit",
            "0-255",
        );
        assert_err(
            &s("modbus = { unit = 1 }\n"),
            20,
            "setpoints[1].modbus.holding_registers",
            "missing required key",
        );
        assert_err(
            &s("s7 = { area = \"X\", bytes = \"0\" }\n"),
            20,
            "setpoints[1].s7.area",
            "unknown S7 area",
        );
        assert_err(
            &s("s7 = { area = \"DB\", bytes = \"0\" }\n"),
            20,
            "setpoints[1].s7.db",
            "missing required key",
        );
        assert_err(
            &s("s7 = { area = \"M\", db = 1, bytes = \"0\" }\n"),
            20,
            "setpoints[1].s7.db",
            "only to area DB",
        );
        assert_err(
            &s("s7 = { area = \"M\" }\n"),
            20,
            "setpoints[1].s7.bytes",
            "missing required key",
        );
        assert_err(
            &s("dnp3 = {}\n"),
            20,
            "setpoints[1].dnp3.analog_outputs",
            "missing required key",
        );
        assert_err(
            &s("opcua = { nodes = [] }\n"),
            20,
            "setpoints[1].opcua.nodes",
            "empty list",
        );
        assert_err(
            &s("opcua = { nodes = [\"Boiler1.SetPoint\"] }\n"),
            20,
            "setpoints[1].opcua.nodes",
            "not an OPC UA NodeId",
        );
        assert_err(
            &s("modbus = \"hr 100\"\n"),
            20,
            "setpoints[1].modbus",
            "expected a table",
        );
        assert_err(
            &s("min = 10\nmax = 5\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].min",
            "greater than max",
        );
        assert_err(
            &s("max = nan\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].max",
            "finite",
        );
        assert_err(
            &s("max = \"95\"\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].max",
            "expected a number",
        );
        assert_err(
            &s("type = \"float\"\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].type",
            "unknown type `float`",
        );
        assert_err(
            &s("word_order = \"middle\"\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].word_order",
            "unknown word order",
        );
        assert_err(
            &s("writers = [\"ews-1\", \"eve\"]\nmodbus = { coils = 1 }\n"),
            20,
            "setpoints[1].writers",
            "unknown asset `eve`",
        );
        assert_err(
            &format!(
                "{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-9\"\nmodbus = {{ coils = 1 }}\n"
            ),
            19,
            "setpoints[1].asset",
            "unknown asset `plc-9`",
        );
        assert_err(
            &format!("{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\nmodbus = {{ coils = 1 }}\n[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\nmodbus = {{ coils = 2 }}\n"),
            22,
            "setpoints[2].name",
            "setpoint `sp` is defined twice",
        );
        // Address blocks may also be written as sub-tables.
        let p = parse(&format!("{BASE}[[setpoints]]\nname = \"sp\"\nasset = \"plc-boiler-1\"\n[setpoints.modbus]\nholding_registers = \"7 - 9\"\n")).unwrap();
        assert_eq!(
            p.setpoints[0].address,
            SetpointAddress::Modbus {
                unit: None,
                holding_registers: Some(7..=9),
                coils: None
            }
        );
    }

    #[test]
    fn credential_override_and_method_errors() {
        assert_err(
            &format!("{BASE}[[credentials]]\nuser = \"u\"\nsources = [\"nobody\"]\n"),
            19,
            "credentials[1].sources",
            "unknown asset `nobody`",
        );
        assert_err(
            &format!("{BASE}[[credentials]]\nuser = \"u\"\n[[credentials]]\nuser = \"u\"\n"),
            20,
            "credentials[2].user",
            "credential `u` is defined twice",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nseverity = \"low\"\n"),
            17,
            "overrides[1].kind",
            "needs `kind` or `rule`",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"new_asset\"\nrule = \"OTW-1001\"\n"),
            19,
            "overrides[1].rule",
            "not both",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"port_scan\"\n"),
            18,
            "overrides[1].kind",
            "unknown alert kind `port_scan`",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nrule = \"OTW-9999\"\n"),
            18,
            "overrides[1].rule",
            "unknown rule id",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"new_asset\"\nseverity = \"urgent\"\n"),
            19,
            "overrides[1].severity",
            "unknown severity",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"new_asset\"\nenabled = \"no\"\n"),
            19,
            "overrides[1].enabled",
            "expected true or false",
        );
        assert_err(
            &format!("{BASE}[[overrides]]\nkind = \"new_asset\"\nexcept_sources = [\"x\"]\n"),
            19,
            "overrides[1].except_sources",
            "unknown asset `x`",
        );
        assert_err(
            &format!("{BASE}[[opcua_methods]]\nnode = \"ns=2;s=Stop\"\noperation = \"write\"\n"),
            19,
            "opcua_methods[1].operation",
            "unknown operation `write`",
        );
        assert_err(
            &format!("{BASE}[[opcua_methods]]\nnode = \"Stop\"\noperation = \"restart\"\n"),
            18,
            "opcua_methods[1].node",
            "not an OPC UA NodeId",
        );
        assert_err(&format!("{BASE}[[opcua_methods]]\nnode = \"i=5\"\noperation = \"restart\"\n[[opcua_methods]]\nnode = \"i=5\"\noperation = \"restart\"\n"), 21, "opcua_methods[2].node", "defined twice");
        assert_err(
            &format!("{BASE}[dnp3]\nprogram_files = [\"\"]\n"),
            17,
            "dnp3.program_files",
            "empty pattern",
        );
        assert_err(
            &format!("{BASE}[dnp3]\nprogram_files = [\"/cfg/[a\"]\n"),
            17,
            "dnp3.program_files",
            "is not a glob pattern",
        );
    }

    /// Overrides of one rule combine; selecting it by kind or by rule id is the same.
    /// Two that set one setting to different values contradict each other.
    #[test]
    fn overrides_of_one_rule_must_not_contradict() {
        let both = |first: &str, second: &str| {
            format!("{BASE}[[overrides]]\n{first}\n[[overrides]]\n{second}\n")
        };
        // Lines: 17 [[overrides]], 18-19 the first, 20 [[overrides]], 21-22 the second.
        assert_err(
            &both(
                "kind = \"device_restart\"\nseverity = \"low\"",
                "rule = \"OTW-1006\"\nseverity = \"critical\"",
            ),
            22,
            "overrides[2].severity",
            "contradicts the override at plant.toml:19",
        );
        assert_err(
            &both(
                "rule = \"OTW-1006\"\nenabled = false",
                "kind = \"device_restart\"\nenabled = true",
            ),
            22,
            "overrides[2].enabled",
            "rule OTW-1006 (device_restart): that one sets enabled = false, this one enabled = true",
        );
        assert_err(
            &both(
                "kind = \"new_asset\"\nseverity = \"info\"",
                "kind = \"new_asset\"\nseverity = \"high\"",
            ),
            22,
            "overrides[2].severity",
            "that one sets severity \"info\", this one severity \"high\"",
        );
        // Agreeing, or setting different settings, is fine; except_sources add up.
        let p = parse(&format!(
            "{BASE}[[assets]]\nname = \"hmi-1\"\nip = \"10.40.1.11\"\nrole = \"hmi\"\n\
             [[overrides]]\nkind = \"device_restart\"\nseverity = \"low\"\nexcept_sources = [\"ews-1\"]\n\
             [[overrides]]\nrule = \"OTW-1006\"\nseverity = \"low\"\nenabled = false\nexcept_sources = [\"hmi-1\", \"ews-1\"]\n\
             [[overrides]]\nkind = \"device_restart\"\n"
        ))
        .unwrap();
        assert_eq!(p.overrides.len(), 3);
        let rules = crate::ruleset::RuleSet::with_overrides(&p);
        let r = rules.rule(AlertKind::DeviceRestart);
        assert_eq!(
            (r.severity, r.enabled, r.except_sources.as_slice()),
            (
                crate::model::Severity::Low,
                false,
                ["ews-1".to_string(), "hmi-1".to_string()].as_slice()
            )
        );
    }

    /// OPC UA methods are one node however its NodeId is written: the same node twice
    /// is a duplicate, or a contradiction when the operations differ.
    #[test]
    fn opcua_methods_compare_canonical_node_ids() {
        let both = |first: &str, second: &str| {
            format!("{BASE}[[opcua_methods]]\n{first}\n[[opcua_methods]]\n{second}\n")
        };
        // Lines: 17 [[opcua_methods]], 18-19 the first, 20 [[opcua_methods]], 21-22 the second.
        assert_err(
            &both(
                "node = \"ns=2;s=Line1.Plc.Stop\"\noperation = \"mode_change\"",
                "node = \"ns=02;s=Line1.Plc.Stop\"\noperation = \"restart\"",
            ),
            22,
            "opcua_methods[2].operation",
            "node ns=2;s=Line1.Plc.Stop is already mode_change (plant.toml:18); it cannot also be restart",
        );
        assert_err(
            &both(
                "node = \"i=2253\"\noperation = \"restart\"",
                "node = \"ns=0;i=02253\"\noperation = \"restart\"",
            ),
            21,
            "opcua_methods[2].node",
            "OPC UA method `ns=0;i=02253` is defined twice (first at plant.toml:18, as `i=2253`)",
        );
        // Different nodes are different methods.
        let p = parse(&both(
            "node = \"ns=2;s=Line1.Plc.Stop\"\noperation = \"mode_change\"",
            "node = \"ns=3;s=Line1.Plc.Stop\"\noperation = \"restart\"",
        ))
        .unwrap();
        assert_eq!(
            p.opcua_method("ns=03;s=Line1.Plc.Stop"),
            Some(Operation::Restart)
        );
    }

    #[test]
    fn node_ids() {
        for ok in [
            "i=2253",
            "ns=2;s=Boiler1.SetPoint",
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            "ns=3;b=M/RbKBsRVkePCePcx24oRA==",
            "nsu=http://x/;s=a",
        ] {
            assert!(is_node_id(ok), "{ok}");
        }
        for bad in [
            "",
            "2253",
            "i=x",
            "ns=x;i=1",
            "ns=2;",
            "s=",
            "ns=70000;i=1",
            "g=1234",
            "nsu=;i=1",
        ] {
            assert!(!is_node_id(bad), "{bad}");
        }
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("otwatch-policy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        dir
    }

    #[test]
    fn includes_merge_and_name_both_places() {
        let dir = tempdir("inc");
        let main = dir.join("main.toml");
        std::fs::write(
            &main,
            "include = [\"sub/zones.toml\", \"sub/assets.toml\"]\n[sensor]\nname = \"s\"\n[zones]\na = [\"10.1.0.0/16\"]\n",
        )
        .unwrap();
        // zones.toml includes assets.toml too: read once, not twice.
        std::fs::write(
            dir.join("sub/zones.toml"),
            "include = [\"assets.toml\"]\n[zones]\nb = [\"10.2.0.0/16\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("sub/assets.toml"),
            "[[assets]]\nname = \"x\"\nip = \"10.2.0.5\"\n[[conduits]]\nfrom = \"a\"\nto = \"b\"\n",
        )
        .unwrap();
        let p = load(&main).unwrap();
        assert_eq!(
            p.zones.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(p.assets.len(), 1);
        assert_eq!(p.zone_of("10.2.0.5".parse().unwrap()), "b");
        assert_eq!(
            p.sources,
            [
                main.clone(),
                dir.join("sub/zones.toml"),
                dir.join("sub/assets.toml")
            ]
        );
        let summary = p.summary_at(JiffTimestamp::from_second(0).unwrap());
        assert!(summary.contains("zones.toml"), "{summary}");

        // A duplicate across files names both.
        std::fs::write(
            dir.join("sub/zones.toml"),
            "[zones]\na = [\"10.3.0.0/16\"]\n",
        )
        .unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!(e.file, dir.join("sub/zones.toml"));
        assert_eq!((e.line, e.key.as_deref()), (Some(2), Some("zones.a")));
        assert!(
            e.message
                .contains(&format!("first at {}:5", main.display())),
            "{e}"
        );

        // [sensor] in two files.
        std::fs::write(dir.join("sub/zones.toml"), "[sensor]\nname = \"t\"\n").unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("sensor")));
        assert!(e.message.contains("defined twice"), "{e}");

        // Errors inside an included file name that file.
        std::fs::write(
            dir.join("sub/zones.toml"),
            "[zones]\nb = [\"10.2.0.0/99\"]\n",
        )
        .unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!(
            (e.file.clone(), e.line),
            (dir.join("sub/zones.toml"), Some(2))
        );

        // A missing include names the including file and line.
        std::fs::write(
            &main,
            "\ninclude = [\"nope.toml\"]\n[sensor]\nname = \"s\"\n",
        )
        .unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!(
            (e.file.clone(), e.line, e.key.as_deref()),
            (main.clone(), Some(2), Some("include"))
        );
        assert!(e.message.contains("nope.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn include_cycle_is_an_error() {
        let dir = tempdir("cycle");
        let main = dir.join("main.toml");
        std::fs::write(
            &main,
            "include = [\"sub/a.toml\"]\n[sensor]\nname = \"s\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("sub/a.toml"), "include = [\"b.toml\"]\n").unwrap();
        std::fs::write(dir.join("sub/b.toml"), "\ninclude = [\"../main.toml\"]\n").unwrap();
        let e = load(&main).unwrap_err();
        assert_eq!(
            (e.file.clone(), e.line, e.key.as_deref()),
            (dir.join("sub/b.toml"), Some(2), Some("include"))
        );
        assert!(e.message.starts_with("include cycle: "), "{e}");
        assert!(e.message.ends_with("main.toml"), "{e}");
        // A file including itself.
        std::fs::write(&main, "include = \"main.toml\"\n[sensor]\nname = \"s\"\n").unwrap();
        let e = load(&main).unwrap_err();
        assert!(e.message.starts_with("include cycle"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file() {
        let e = load(Path::new("/nonexistent/otwatch/policy.toml")).unwrap_err();
        assert_eq!(e.line, None);
        assert!(e.message.contains("cannot read"), "{e}");
    }

    #[test]
    fn summary_lists_counts_zones_and_window_states() {
        let p = demo();
        // Friday 2026-11-20 10:00Z: the weekly window opens on Saturday 22:00 Berlin.
        let s = p.summary_at(JiffTimestamp::from_str("2026-11-20T10:05:00Z").unwrap());
        assert!(s.starts_with("policy OK: sensor `plant-a-span1`, time zone Europe/Berlin, repeat interval 60 s\n"), "{s}");
        assert!(s.contains("4 zones, 3 assets, 2 conduits"), "{s}");
        assert!(s.contains("zone cell-1: 10.30.1.0/24\n"), "{s}");
        assert!(
            s.contains("conduit engineering -> cell-1: modbus, s7comm\n"),
            "{s}"
        );
        assert!(
            s.contains("weekly Sat 22:00-Sun 06:00 (Europe/Berlin)"),
            "{s}"
        );
        assert!(s.contains("next opens 2026-11-21T21:00:00Z"), "{s}");
        assert!(s.contains("expired"), "{s}");
        assert!(s.ends_with("files read: rules/demo-plant.toml\n"), "{s}");
    }

    /// 10,000 assets, 1,000 setpoints, 100 zones load (the bench times it).
    #[test]
    fn large_policy_loads() {
        let text = scaled_demo_text(100, 10_000, 1_000);
        let p = parse(&text).unwrap();
        assert_eq!(p.zones.len(), 104);
        assert_eq!(p.assets.len(), 10_003);
        assert_eq!(p.setpoints.len(), 1_001);
        // Every generated asset is found by address, in its own zone.
        for (i, a) in p.assets.iter().enumerate().skip(3).step_by(97) {
            assert_eq!(
                p.asset_by_ip(a.ip).map(|x| x.name.as_str()),
                Some(a.name.as_str())
            );
            assert_eq!(p.zone_of(a.ip), format!("bench-zone-{}", (i - 3) % 100));
        }
        // The demo's hosts keep their zones.
        assert_eq!(p.zone_of("10.0.5.99".parse().unwrap()), "enterprise");
        assert_eq!(p.zone_of("10.30.1.10".parse().unwrap()), "cell-1");
    }
}
