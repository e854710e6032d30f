//! Lookups over a loaded policy: the zone of an address, assets by address and name,
//! conduits, maintenance windows, setpoints of an asset.
//!
//! The engine asks these questions for every event, so the answers come from an index
//! built once when the policy is loaded, never from a scan of the policy's lists:
//!
//! * **Zones**: one hash map per prefix length that occurs in the policy (masked
//!   network -> zone), tried longest first. A policy uses a handful of distinct prefix
//!   lengths, so a lookup is a few hash probes whatever the number of prefixes. Two zones
//!   cannot hold the same prefix (the loader refuses it), so "most specific prefix
//!   wins" is exact.
//! * Assets by address and by name, conduits by (from, to), windows by the zone or asset
//!   they apply to, setpoints by asset: hash maps of indices into the policy's lists.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.30.1.10`) are looked up as the IPv4 address.
//!
//! Weekly windows are wall-clock spans in the sensor's time zone: the local weekday and
//! time of the packet decide. On the day clocks go forward, a span that begins in the
//! skipped hour opens when the clock jumps past its start (a span lying wholly in it does
//! not open); on the day they go back, the repeated hour is inside the span both times.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::tz::TimeZone;
use jiff::Timestamp as JiffTimestamp;
use otwatch_event::Operation;

use crate::model::{
    Asset, ConduitProtocol, Credential, Policy, Setpoint, Target, WeeklySpan, Window,
    WindowSchedule, Zone, UNKNOWN_ZONE,
};

/// Minutes in a week.
const WEEK_MINUTES: u32 = 7 * 1440;

/// Lookup structures built at load time.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// (prefix length, masked IPv4 network -> zone index), longest prefix first.
    v4: Vec<(u8, HashMap<u32, usize>)>,
    /// The same for IPv6.
    v6: Vec<(u8, HashMap<u128, usize>)>,
    zone_by_name: HashMap<String, usize>,
    asset_by_ip: HashMap<IpAddr, usize>,
    asset_by_name: HashMap<String, usize>,
    /// from zone -> to zone -> conduit indices.
    conduits: HashMap<String, HashMap<String, Vec<usize>>>,
    windows_by_asset: HashMap<String, Vec<usize>>,
    windows_by_zone: HashMap<String, Vec<usize>>,
    setpoints_by_asset: HashMap<String, Vec<usize>>,
    credential_by_user: HashMap<String, usize>,
    opcua_method_by_node: HashMap<String, usize>,
}

fn mask_v4(addr: u32, len: u8) -> u32 {
    addr & u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0)
}

fn mask_v6(addr: u128, len: u8) -> u128 {
    addr & u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0)
}

/// Builds the index of a policy whose names have been checked by the loader.
pub(crate) fn build(policy: &Policy) -> Index {
    let mut ix = Index::default();
    let mut v4: HashMap<u8, HashMap<u32, usize>> = HashMap::new();
    let mut v6: HashMap<u8, HashMap<u128, usize>> = HashMap::new();
    for (zi, zone) in policy.zones.iter().enumerate() {
        ix.zone_by_name.insert(zone.name.clone(), zi);
        for net in &zone.prefixes {
            let len = net.prefix_len();
            match net.network() {
                IpAddr::V4(a) => {
                    v4.entry(len)
                        .or_default()
                        .insert(mask_v4(u32::from(a), len), zi);
                }
                IpAddr::V6(a) => {
                    v6.entry(len)
                        .or_default()
                        .insert(mask_v6(u128::from(a), len), zi);
                }
            }
        }
    }
    ix.v4 = v4.into_iter().collect();
    ix.v4.sort_by_key(|e| std::cmp::Reverse(e.0));
    ix.v6 = v6.into_iter().collect();
    ix.v6.sort_by_key(|e| std::cmp::Reverse(e.0));

    for (i, a) in policy.assets.iter().enumerate() {
        ix.asset_by_ip.insert(a.ip.to_canonical(), i);
        ix.asset_by_name.insert(a.name.clone(), i);
    }
    for (i, c) in policy.conduits.iter().enumerate() {
        ix.conduits
            .entry(c.from.clone())
            .or_default()
            .entry(c.to.clone())
            .or_default()
            .push(i);
    }
    for (i, w) in policy.windows.iter().enumerate() {
        for t in &w.applies_to {
            let map = match t {
                Target::Zone(_) => &mut ix.windows_by_zone,
                Target::Asset(_) => &mut ix.windows_by_asset,
            };
            let (Target::Zone(name) | Target::Asset(name)) = t;
            let list = map.entry(name.clone()).or_default();
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }
    for (i, s) in policy.setpoints.iter().enumerate() {
        ix.setpoints_by_asset
            .entry(s.asset.clone())
            .or_default()
            .push(i);
    }
    for (i, c) in policy.credentials.iter().enumerate() {
        ix.credential_by_user.insert(c.user.clone(), i);
    }
    for (i, m) in policy.opcua_methods.iter().enumerate() {
        ix.opcua_method_by_node
            .insert(crate::policy::canonical_node_id(&m.node), i);
    }
    ix
}

/// The windows that apply to an operation's target, and the one that lets it through.
#[derive(Debug, Clone)]
pub struct WindowCheck<'a> {
    /// The first window (in policy order) that applies to the target, is open at the
    /// packet's time and covers the source.
    pub open: Option<&'a Window>,
    /// Names of the windows that apply to the target (by asset name or by its zone),
    /// in policy order, open or not: the alert's evidence.
    pub considered: Vec<&'a str>,
}

impl Policy {
    fn zone_index(&self, ip: IpAddr) -> Option<usize> {
        match ip.to_canonical() {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                self.index
                    .v4
                    .iter()
                    .find_map(|(len, map)| map.get(&mask_v4(a, *len)).copied())
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                self.index
                    .v6
                    .iter()
                    .find_map(|(len, map)| map.get(&mask_v6(a, *len)).copied())
            }
        }
    }

    /// The zone of an address: the zone of the most specific prefix holding it,
    /// [`UNKNOWN_ZONE`] when none does.
    pub fn zone_of(&self, ip: IpAddr) -> &str {
        self.zone_index(ip)
            .and_then(|i| self.zones.get(i))
            .map_or(UNKNOWN_ZONE, |z| z.name.as_str())
    }

    /// Whether the address lies in one of the policy's zones.
    pub fn in_declared_zone(&self, ip: IpAddr) -> bool {
        self.zone_index(ip).is_some()
    }

    /// A zone by name (`unknown` is no declared zone: `None`).
    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.index
            .zone_by_name
            .get(name)
            .and_then(|&i| self.zones.get(i))
    }

    /// The asset declared at this address.
    pub fn asset_by_ip(&self, ip: IpAddr) -> Option<&Asset> {
        self.index
            .asset_by_ip
            .get(&ip.to_canonical())
            .and_then(|&i| self.assets.get(i))
    }

    /// An asset by name.
    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.index
            .asset_by_name
            .get(name)
            .and_then(|&i| self.assets.get(i))
    }

    /// Whether `[[conduits]]` approve a flow initiated in `from_zone` towards
    /// `to_zone` carrying `protocol`. A conduit without `protocols` allows any; `s7comm`
    /// allows `s7comm_plus` too. Traffic inside one zone is never a conduit: always
    /// allowed.
    pub fn conduit_allows(
        &self,
        from_zone: &str,
        to_zone: &str,
        protocol: &ConduitProtocol,
    ) -> bool {
        if from_zone == to_zone {
            return true;
        }
        let Some(list) = self
            .index
            .conduits
            .get(from_zone)
            .and_then(|to| to.get(to_zone))
        else {
            return false;
        };
        list.iter()
            .filter_map(|&i| self.conduits.get(i))
            .any(|c| match &c.protocols {
                None => true,
                Some(ps) => ps.iter().any(|p| protocol_covers(p, protocol)),
            })
    }

    /// The maintenance windows of an operation's target, and whether one of them is
    /// open at `ts` for `source_asset`.
    ///
    /// A window applies when it names the target asset or the target's zone; it lets
    /// the operation through when it is open at `ts` (local time of the sensor's time
    /// zone for weekly spans) and, if it lists `sources`, the source is one of them (an
    /// undeclared source is covered only by windows without `sources`).
    pub fn window_check(
        &self,
        ts: otwatch_event::Timestamp,
        target_asset: Option<&str>,
        target_zone: &str,
        source_asset: Option<&str>,
    ) -> WindowCheck<'_> {
        let by_asset = target_asset
            .and_then(|a| self.index.windows_by_asset.get(a))
            .map_or(&[][..], |v| v.as_slice());
        let by_zone = self
            .index
            .windows_by_zone
            .get(target_zone)
            .map_or(&[][..], |v| v.as_slice());
        let mut indices: Vec<usize> = by_asset.iter().chain(by_zone).copied().collect();
        indices.sort_unstable();
        indices.dedup();
        let applying: Vec<&Window> = indices
            .into_iter()
            .filter_map(|i| self.windows.get(i))
            .collect();
        // A packet time beyond jiff's range (year ±9999) opens no window.
        let now = JiffTimestamp::from_nanosecond(i128::from(ts.as_nanos())).ok();
        let open = now.and_then(|now| {
            applying
                .iter()
                .copied()
                .find(|w| w.covers_source(source_asset) && w.is_open_at(now, &self.sensor.timezone))
        });
        WindowCheck {
            open,
            considered: applying.iter().map(|w| w.name.as_str()).collect(),
        }
    }

    /// The setpoints held by an asset, in policy order.
    pub fn setpoints_of<'a>(&'a self, asset: &str) -> impl Iterator<Item = &'a Setpoint> + 'a {
        self.index
            .setpoints_by_asset
            .get(asset)
            .map_or(&[][..], |v| v.as_slice())
            .iter()
            .filter_map(|&i| self.setpoints.get(i))
    }

    /// The `[[credentials]]` entry of a user name (or `s7:FINGERPRINT`).
    pub fn credential(&self, user: &str) -> Option<&Credential> {
        self.index
            .credential_by_user
            .get(user)
            .and_then(|&i| self.credentials.get(i))
    }

    /// What calling this OPC UA method means, per `[[opcua_methods]]` (NodeIds
    /// compared in canonical form).
    pub fn opcua_method(&self, node: &str) -> Option<Operation> {
        self.index
            .opcua_method_by_node
            .get(&crate::policy::canonical_node_id(node))
            .and_then(|&i| self.opcua_methods.get(i))
            .map(|m| m.operation)
    }
}

/// Whether a conduit's listed protocol admits a flow's protocol.
fn protocol_covers(listed: &ConduitProtocol, seen: &ConduitProtocol) -> bool {
    match (listed, seen) {
        (ConduitProtocol::Dissector(l), ConduitProtocol::Dissector(s)) => {
            l == s || (l == "s7comm" && s == "s7comm_plus")
        }
        _ => listed == seen,
    }
}

impl WeeklySpan {
    /// Whether a minute of the week (0 = Monday 00:00) lies in `[start, end)`, wrapping
    /// past the week's end when `end < start`.
    pub fn contains(&self, minute_of_week: u32) -> bool {
        let m = minute_of_week % WEEK_MINUTES;
        if self.start_minute < self.end_minute {
            self.start_minute <= m && m < self.end_minute
        } else {
            m >= self.start_minute || m < self.end_minute
        }
    }
}

/// The local minute of the week (0 = Monday 00:00) of an instant.
fn minute_of_week(ts: JiffTimestamp, tz: &TimeZone) -> u32 {
    let dt = tz.to_datetime(ts);
    let day = u32::try_from(dt.weekday().to_monday_zero_offset()).unwrap_or(0);
    let hour = u32::try_from(dt.hour()).unwrap_or(0);
    let minute = u32::try_from(dt.minute()).unwrap_or(0);
    day * 1440 + hour * 60 + minute
}

impl Window {
    /// Whether the window is open at `ts`: for weekly spans, the local weekday and time
    /// in `tz` lie in a span (`[start, end)`); for a one-off window, `start <= ts < end`.
    pub fn is_open_at(&self, ts: JiffTimestamp, tz: &TimeZone) -> bool {
        match &self.schedule {
            WindowSchedule::Weekly(spans) => {
                let m = minute_of_week(ts, tz);
                spans.iter().any(|s| s.contains(m))
            }
            WindowSchedule::OneOff { start, end } => *start <= ts && ts < *end,
        }
    }

    /// Whether the window covers an operation from this source asset: any source when
    /// the window lists no `sources`, else only those listed.
    pub fn covers_source(&self, source_asset: Option<&str>) -> bool {
        match &self.sources {
            None => true,
            Some(list) => source_asset.is_some_and(|s| list.iter().any(|x| x == s)),
        }
    }

    /// Whether the window applies to a target asset (by name) or zone.
    pub fn applies_to_target(&self, target_asset: Option<&str>, target_zone: &str) -> bool {
        self.applies_to.iter().any(|t| match t {
            Target::Asset(a) => Some(a.as_str()) == target_asset,
            Target::Zone(z) => z == target_zone,
        })
    }

    /// The first instant after `now` at which the window is open (`now` itself if it is
    /// open), or `None` when it never opens again (an expired one-off window). Weekly
    /// windows are searched minute by minute over the next week and a day, which is
    /// cheap enough for `otwatch check` and exact across clock changes.
    pub fn next_opening(&self, now: JiffTimestamp, tz: &TimeZone) -> Option<JiffTimestamp> {
        match &self.schedule {
            WindowSchedule::OneOff { start, end } => {
                if now >= *end {
                    None
                } else {
                    Some(if now < *start { *start } else { now })
                }
            }
            WindowSchedule::Weekly(_) => {
                if self.is_open_at(now, tz) {
                    return Some(now);
                }
                // Step to the next whole minute, then minute by minute.
                let secs = now.as_second();
                let first = secs - secs.rem_euclid(60) + 60;
                (0..i64::from(WEEK_MINUTES + 1440))
                    .filter_map(|k| JiffTimestamp::from_second(first + 60 * k).ok())
                    .find(|t| self.is_open_at(*t, tz))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::str::FromStr;

    fn policy(extra: &str) -> Policy {
        let text = format!(
            "[sensor]\nname = \"s\"\ntimezone = \"Europe/Berlin\"\n\
             [zones]\n\
             plant = [\"10.0.0.0/8\", \"fd00::/16\"]\n\
             cell-1 = [\"10.30.1.0/24\", \"fd00:30::/64\"]\n\
             boiler = [\"10.30.1.8/29\"]\n\
             host = [\"10.30.1.10/32\", \"fd00:30::10/128\"]\n\
             [[assets]]\nname = \"plc-1\"\nip = \"10.30.1.10\"\nrole = \"plc\"\n\
             [[assets]]\nname = \"plc-2\"\nip = \"10.30.1.20\"\nrole = \"plc\"\n\
             [[assets]]\nname = \"ews-1\"\nip = \"10.20.1.5\"\nrole = \"engineering\"\n\
             [[assets]]\nname = \"hmi-1\"\nip = \"fd00:40::11\"\nrole = \"hmi\"\n\
             {extra}"
        );
        crate::parse_str(&text, Path::new("t.toml")).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ts(s: &str) -> JiffTimestamp {
        JiffTimestamp::from_str(s).unwrap()
    }

    fn ev(s: &str) -> otwatch_event::Timestamp {
        otwatch_event::Timestamp::from_nanos(ts(s).as_nanosecond() as i64)
    }

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    fn weekly(spans: &[&str]) -> Window {
        Window {
            name: "w".into(),
            ticket: None,
            applies_to: vec![],
            sources: None,
            schedule: WindowSchedule::Weekly(
                spans
                    .iter()
                    .map(|s| crate::policy::parse_weekly_span(s).unwrap())
                    .collect(),
            ),
        }
    }

    /// Asserts the window's state at each UTC instant.
    #[track_caller]
    fn assert_open(w: &Window, tz: &TimeZone, cases: &[(&str, bool)]) {
        for (t, open) in cases {
            assert_eq!(w.is_open_at(ts(t), tz), *open, "at {t}");
        }
    }

    #[test]
    fn most_specific_prefix_wins_v4() {
        let p = policy("");
        assert_eq!(p.zone_of(ip("10.30.1.10")), "host"); // /32
        assert_eq!(p.zone_of(ip("10.30.1.9")), "boiler"); // /29: .8-.15
        assert_eq!(p.zone_of(ip("10.30.1.15")), "boiler");
        assert_eq!(p.zone_of(ip("10.30.1.16")), "cell-1"); // /24
        assert_eq!(p.zone_of(ip("10.30.1.7")), "cell-1");
        assert_eq!(p.zone_of(ip("10.30.2.1")), "plant"); // /8
        assert_eq!(p.zone_of(ip("11.0.0.1")), UNKNOWN_ZONE);
        assert_eq!(p.zone_of(ip("192.168.1.1")), "unknown");
        assert!(p.in_declared_zone(ip("10.255.255.255")));
        assert!(!p.in_declared_zone(ip("9.255.255.255")));
        // An IPv4-mapped IPv6 address is its IPv4 address.
        assert_eq!(p.zone_of(ip("::ffff:10.30.1.10")), "host");
        assert_eq!(p.zone("cell-1").map(|z| z.prefixes.len()), Some(2));
        assert!(p.zone("unknown").is_none());
    }

    #[test]
    fn most_specific_prefix_wins_v6() {
        let p = policy("");
        assert_eq!(p.zone_of(ip("fd00:30::10")), "host"); // /128
        assert_eq!(p.zone_of(ip("fd00:30::11")), "cell-1"); // /64
        assert_eq!(p.zone_of(ip("fd00:30:0:0:ffff:ffff:ffff:ffff")), "cell-1");
        assert_eq!(p.zone_of(ip("fd00:30:0:1::1")), "plant"); // /16
        assert_eq!(p.zone_of(ip("fd01::1")), UNKNOWN_ZONE);
        assert_eq!(p.zone_of(ip("::1")), UNKNOWN_ZONE);
    }

    #[test]
    fn default_route_zone_catches_everything_else() {
        let p = crate::parse_str(
            "[sensor]\nname = \"s\"\n[zones]\nany = [\"0.0.0.0/0\", \"::/0\"]\nlan = [\"192.168.0.0/16\"]\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(p.zone_of(ip("192.168.3.4")), "lan");
        assert_eq!(p.zone_of(ip("8.8.8.8")), "any");
        assert_eq!(p.zone_of(ip("2001:db8::1")), "any");
    }

    #[test]
    fn assets_by_ip_and_name() {
        let p = policy("");
        assert_eq!(
            p.asset_by_ip(ip("10.30.1.10")).map(|a| a.name.as_str()),
            Some("plc-1")
        );
        assert_eq!(
            p.asset_by_ip(ip("fd00:40::11")).map(|a| a.name.as_str()),
            Some("hmi-1")
        );
        assert_eq!(
            p.asset_by_ip(ip("::ffff:10.20.1.5"))
                .map(|a| a.name.as_str()),
            Some("ews-1")
        );
        assert!(p.asset_by_ip(ip("10.30.1.11")).is_none());
        assert_eq!(p.asset("plc-2").map(|a| a.ip), Some(ip("10.30.1.20")));
        assert!(p.asset("plc-3").is_none());
    }

    #[test]
    fn conduits() {
        let p = policy(
            "[[conduits]]\nfrom = \"plant\"\nto = \"cell-1\"\nprotocols = [\"s7comm\", \"tcp/8080\"]\n\
             [[conduits]]\nfrom = \"plant\"\nto = \"cell-1\"\nprotocols = [\"dnp3\"]\n\
             [[conduits]]\nfrom = \"unknown\"\nto = \"plant\"\n",
        );
        let d = |s: &str| ConduitProtocol::Dissector(s.into());
        assert!(p.conduit_allows("plant", "cell-1", &d("s7comm")));
        assert!(p.conduit_allows("plant", "cell-1", &d("s7comm_plus")));
        assert!(p.conduit_allows("plant", "cell-1", &d("dnp3"))); // second entry
        assert!(p.conduit_allows("plant", "cell-1", &ConduitProtocol::Tcp(8080)));
        assert!(!p.conduit_allows("plant", "cell-1", &ConduitProtocol::Udp(8080)));
        assert!(!p.conduit_allows("plant", "cell-1", &d("modbus")));
        assert!(!p.conduit_allows("plant", "cell-1", &ConduitProtocol::Tcp(502)));
        // Direction matters: who initiates.
        assert!(!p.conduit_allows("cell-1", "plant", &d("s7comm")));
        // No protocols: any.
        assert!(p.conduit_allows("unknown", "plant", &d("opcua")));
        assert!(p.conduit_allows("unknown", "plant", &ConduitProtocol::Udp(161)));
        // s7comm_plus listed does not admit classic s7comm.
        let p2 = policy(
            "[[conduits]]\nfrom = \"plant\"\nto = \"cell-1\"\nprotocols = [\"s7comm_plus\"]\n",
        );
        assert!(!p2.conduit_allows("plant", "cell-1", &d("s7comm")));
        // Inside one zone: never a conduit.
        assert!(p.conduit_allows("boiler", "boiler", &d("modbus")));
    }

    /// Europe/Berlin, Sunday 2026-03-29: at 01:00Z clocks go from 02:00 CET (+01:00) to
    /// 03:00 CEST (+02:00); local 02:00-02:59 does not exist.
    /// "Sun 01:30-Sun 03:30" opens at local 01:30 CET = 00:30Z and closes at local 03:30
    /// CEST = 01:30Z: one hour of real time instead of two.
    #[test]
    fn weekly_window_across_spring_forward_berlin() {
        let w = weekly(&["Sun 01:30-Sun 03:30"]);
        assert_open(
            &w,
            &berlin(),
            &[
                ("2026-03-29T00:29:59Z", false), // 01:29:59 CET
                ("2026-03-29T00:30:00Z", true),  // 01:30 CET
                ("2026-03-29T00:59:59Z", true),  // 01:59:59 CET
                ("2026-03-29T01:00:00Z", true),  // 03:00 CEST (jumped)
                ("2026-03-29T01:29:59Z", true),  // 03:29:59 CEST
                ("2026-03-29T01:30:00Z", false), // 03:30 CEST: end, exclusive
                ("2026-03-29T02:00:00Z", false), // 04:00 CEST
            ],
        );
        // The Sunday before (winter time all day): local 01:30-03:30 CET = 00:30Z-02:30Z.
        assert_open(
            &w,
            &berlin(),
            &[
                ("2026-03-22T00:30:00Z", true),
                ("2026-03-22T02:29:00Z", true),
                ("2026-03-22T02:30:00Z", false),
            ],
        );
        // A span lying wholly in the skipped hour never opens that day.
        let gap = weekly(&["Sun 02:10-Sun 02:50"]);
        for t in [
            "2026-03-29T00:59:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T01:10:00Z",
            "2026-03-29T01:30:00Z",
        ] {
            assert!(!gap.is_open_at(ts(t), &berlin()), "{t}");
        }
        // ... but does on an ordinary Sunday (02:10 CET = 01:10Z).
        assert!(gap.is_open_at(ts("2026-03-22T01:10:00Z"), &berlin()));
    }

    /// Europe/Berlin, Sunday 2026-10-25: at 01:00Z clocks go from 03:00 CEST (+02:00)
    /// back to 02:00 CET (+01:00); local 02:00-02:59 happens twice.
    /// "Sun 01:30-Sun 03:30" opens at local 01:30 CEST = 2026-10-24T23:30Z and closes at
    /// local 03:30 CET = 02:30Z: three hours of real time, open through both 02:xx.
    #[test]
    fn weekly_window_across_fall_back_berlin() {
        let w = weekly(&["Sun 01:30-Sun 03:30"]);
        assert_open(
            &w,
            &berlin(),
            &[
                ("2026-10-24T23:29:59Z", false), // Sun 01:29:59 CEST
                ("2026-10-24T23:30:00Z", true),  // Sun 01:30 CEST
                ("2026-10-25T00:30:00Z", true),  // 02:30 CEST (first pass)
                ("2026-10-25T00:59:59Z", true),  // 02:59:59 CEST
                ("2026-10-25T01:00:00Z", true),  // 02:00 CET (second pass)
                ("2026-10-25T01:30:00Z", true),  // 02:30 CET
                ("2026-10-25T02:29:59Z", true),  // 03:29:59 CET
                ("2026-10-25T02:30:00Z", false), // 03:30 CET: end
            ],
        );
        // A span inside the repeated hour is open during both passes.
        let rep = weekly(&["Sun 02:15-Sun 02:45"]);
        assert_open(
            &rep,
            &berlin(),
            &[
                ("2026-10-25T00:14:00Z", false), // 02:14 CEST
                ("2026-10-25T00:20:00Z", true),  // 02:20 CEST
                ("2026-10-25T00:50:00Z", false), // 02:50 CEST
                ("2026-10-25T01:20:00Z", true),  // 02:20 CET
                ("2026-10-25T01:45:00Z", false), // 02:45 CET
            ],
        );
    }

    /// A weekday window follows local time: Mon 08:00-17:00 Berlin is 07:00Z-16:00Z in
    /// winter and 06:00Z-15:00Z in summer.
    #[test]
    fn weekly_window_follows_the_offset_change() {
        let w = weekly(&["Mon 08:00-Mon 17:00"]);
        assert_open(
            &w,
            &berlin(),
            &[
                ("2026-03-23T06:30:00Z", false), // Mon 07:30 CET
                ("2026-03-23T07:00:00Z", true),  // Mon 08:00 CET
                ("2026-03-23T15:59:00Z", true),  // Mon 16:59 CET
                ("2026-03-23T16:00:00Z", false), // Mon 17:00 CET
                ("2026-03-30T06:30:00Z", true),  // Mon 08:30 CEST
                ("2026-03-30T06:00:00Z", true),  // Mon 08:00 CEST
                ("2026-03-30T05:59:00Z", false), // Mon 07:59 CEST
                ("2026-03-30T15:00:00Z", false), // Mon 17:00 CEST
                ("2026-10-26T06:30:00Z", false), // Mon 07:30 CET again
                ("2026-10-26T07:00:00Z", true),
            ],
        );
    }

    /// America/New_York 2026: clocks go forward on Sunday 2026-03-08 at 07:00Z (02:00
    /// EST -> 03:00 EDT) and back on Sunday 2026-11-01 at 06:00Z (02:00 EDT -> 01:00
    /// EST). "Sun 01:00-Sun 04:00" local:
    /// * 03-08: opens 01:00 EST = 06:00Z, closes 04:00 EDT = 08:00Z (2 h real time);
    /// * 11-01: opens 01:00 EDT = 05:00Z, closes 04:00 EST = 09:00Z (4 h real time).
    #[test]
    fn weekly_window_across_us_dst_changes() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let w = weekly(&["Sun 01:00-Sun 04:00"]);
        assert_open(
            &w,
            &ny,
            &[
                ("2026-03-08T05:59:59Z", false), // 00:59:59 EST
                ("2026-03-08T06:00:00Z", true),  // 01:00 EST
                ("2026-03-08T06:59:59Z", true),  // 01:59:59 EST
                ("2026-03-08T07:00:00Z", true),  // 03:00 EDT
                ("2026-03-08T07:59:59Z", true),  // 03:59:59 EDT
                ("2026-03-08T08:00:00Z", false), // 04:00 EDT
                ("2026-11-01T04:59:59Z", false), // 00:59:59 EDT
                ("2026-11-01T05:00:00Z", true),  // 01:00 EDT
                ("2026-11-01T06:30:00Z", true),  // 01:30 EST (repeated hour)
                ("2026-11-01T08:59:59Z", true),  // 03:59:59 EST
                ("2026-11-01T09:00:00Z", false), // 04:00 EST
            ],
        );
    }

    /// "Sun 22:00-Mon 06:00" wraps past the week's end (UTC here, so instants are local).
    /// 2026-11-22 is a Sunday.
    #[test]
    fn weekly_window_wrapping_sunday_to_monday() {
        let w = weekly(&["Sun 22:00-Mon 06:00"]);
        let utc = TimeZone::UTC;
        assert_open(
            &w,
            &utc,
            &[
                ("2026-11-22T21:59:59Z", false), // Sun 21:59:59
                ("2026-11-22T22:00:00Z", true),  // Sun 22:00
                ("2026-11-22T23:59:59Z", true),
                ("2026-11-23T00:00:00Z", true), // Mon 00:00
                ("2026-11-23T05:59:59Z", true),
                ("2026-11-23T06:00:00Z", false), // Mon 06:00: end
                ("2026-11-25T23:00:00Z", false), // Wed
                ("2026-11-21T23:00:00Z", false), // Sat
            ],
        );
        // In Berlin (CET, +01:00): Sun 22:00 local = 21:00Z, Mon 06:00 local = 05:00Z.
        assert_open(
            &w,
            &berlin(),
            &[
                ("2026-11-22T20:59:00Z", false),
                ("2026-11-22T21:00:00Z", true),
                ("2026-11-23T04:59:00Z", true),
                ("2026-11-23T05:00:00Z", false),
            ],
        );
        // Several spans; a whole-week span; an end at 24:00.
        let multi = weekly(&["Sat 00:00-Sat 24:00", "Wed 12:00-Wed 13:00"]);
        assert_open(
            &multi,
            &utc,
            &[
                ("2026-11-21T00:00:00Z", true),  // Sat 00:00
                ("2026-11-21T23:59:59Z", true),  // Sat 23:59:59
                ("2026-11-22T00:00:00Z", false), // Sun 00:00
                ("2026-11-25T12:30:00Z", true),  // Wed 12:30
                ("2026-11-25T13:00:00Z", false),
            ],
        );
        let always = weekly(&["Mon 00:00-Sun 24:00"]);
        for t in [
            "2026-11-23T00:00:00Z",
            "2026-11-22T23:59:59Z",
            "2026-11-25T12:00:00Z",
        ] {
            assert!(always.is_open_at(ts(t), &utc), "{t}");
        }
    }

    #[test]
    fn weekly_span_contains() {
        let s = WeeklySpan {
            start_minute: 9960,
            end_minute: 360,
        };
        assert!(s.contains(9960) && s.contains(10_079) && s.contains(0) && s.contains(359));
        assert!(!s.contains(360) && !s.contains(9959) && !s.contains(5000));
        let s = WeeklySpan {
            start_minute: 100,
            end_minute: 200,
        };
        assert!(s.contains(100) && s.contains(199) && !s.contains(200) && !s.contains(99));
        // Minutes wrap modulo a week.
        assert!(s.contains(10_080 + 150));
    }

    /// A one-off window is `[start, end)` and expires by itself.
    #[test]
    fn one_off_window_expiry() {
        let p = policy(
            "[[windows]]\nname = \"CHG-4711\"\nticket = \"CHG-4711\"\napplies_to = [\"plc-1\"]\n\
             start = \"2026-11-28T08:00:00Z\"\nend = \"2026-11-28T12:00:00Z\"\n",
        );
        let w = &p.windows[0];
        let tz = &p.sensor.timezone;
        assert_open(
            w,
            tz,
            &[
                ("2026-11-28T07:59:59.999999999Z", false),
                ("2026-11-28T08:00:00Z", true),
                ("2026-11-28T11:59:59.999999999Z", true),
                ("2026-11-28T12:00:00Z", false), // end, exactly: closed
                ("2026-11-28T12:00:00.000000001Z", false),
                ("2026-12-05T09:00:00Z", false), // a week later: not recurring
            ],
        );
        assert_eq!(
            w.next_opening(ts("2026-11-27T00:00:00Z"), tz),
            Some(ts("2026-11-28T08:00:00Z"))
        );
        assert_eq!(
            w.next_opening(ts("2026-11-28T09:00:00Z"), tz),
            Some(ts("2026-11-28T09:00:00Z"))
        );
        assert_eq!(w.next_opening(ts("2026-11-28T12:00:00Z"), tz), None);
        // Through window_check, with packet timestamps (nanoseconds).
        let at = |s: &str| {
            p.window_check(ev(s), Some("plc-1"), "host", Some("ews-1"))
                .open
                .map(|w| w.name.as_str())
        };
        assert_eq!(at("2026-11-28T11:59:59Z"), Some("CHG-4711"));
        assert_eq!(at("2026-11-28T12:00:00Z"), None);
        assert_eq!(at("2026-11-29T12:00:00Z"), None);
    }

    #[test]
    fn window_check_targets_sources_and_order() {
        let p = policy(
            "[[windows]]\nname = \"cell weekly\"\napplies_to = [\"cell-1\"]\nweekly = [\"Sat 22:00-Sun 06:00\"]\n\
             [[windows]]\nname = \"plc-1 change\"\napplies_to = [\"plc-1\", \"host\"]\nsources = [\"ews-1\"]\n\
             start = \"2026-11-20T09:00:00Z\"\nend = \"2026-11-20T10:00:00Z\"\n\
             [[windows]]\nname = \"plant all week\"\napplies_to = [\"plant\"]\nweekly = [\"Mon 00:00-Sun 24:00\"]\n",
        );
        // Friday 2026-11-20 09:30Z: the change window is open for ews-1 only.
        let t = ev("2026-11-20T09:30:00Z");
        let c = p.window_check(t, Some("plc-1"), "host", Some("ews-1"));
        assert_eq!(c.open.map(|w| w.name.as_str()), Some("plc-1 change"));
        // Applies by asset and by zone, listed once.
        assert_eq!(c.considered, ["plc-1 change"]);
        let c = p.window_check(t, Some("plc-1"), "host", Some("hmi-1"));
        assert!(c.open.is_none(), "hmi-1 is not in the window's sources");
        assert_eq!(c.considered, ["plc-1 change"]);
        // An undeclared source is covered only by windows without `sources`.
        assert!(p
            .window_check(t, Some("plc-1"), "host", None)
            .open
            .is_none());
        // plc-2 is in cell-1: only the weekly window applies, closed on Friday.
        let c = p.window_check(t, Some("plc-2"), "cell-1", Some("ews-1"));
        assert!(c.open.is_none());
        assert_eq!(c.considered, ["cell weekly"]);
        // Saturday 23:30 Berlin = 22:30Z: open for anyone, even undeclared sources.
        let c = p.window_check(ev("2026-11-21T22:30:00Z"), Some("plc-2"), "cell-1", None);
        assert_eq!(c.open.map(|w| w.name.as_str()), Some("cell weekly"));
        // Zones are matched by the target's zone name only (no prefix nesting):
        // "plant" applies to targets whose zone *is* plant.
        let c = p.window_check(t, None, "plant", None);
        assert_eq!(c.open.map(|w| w.name.as_str()), Some("plant all week"));
        let c = p.window_check(t, None, "unknown", None);
        assert!(c.open.is_none() && c.considered.is_empty());
        assert!(p.windows[1].applies_to_target(Some("plc-1"), "x"));
        assert!(p.windows[1].applies_to_target(None, "host"));
        assert!(!p.windows[1].applies_to_target(Some("plc-2"), "cell-1"));
        // The extremes of packet time (years 1677 and 2262) are handled.
        for n in [i64::MIN, i64::MAX] {
            let c = p.window_check(otwatch_event::Timestamp::from_nanos(n), None, "plant", None);
            assert_eq!(c.open.map(|w| w.name.as_str()), Some("plant all week"));
        }
    }

    #[test]
    fn next_opening_of_weekly_windows() {
        let w = weekly(&["Sat 22:00-Sun 06:00"]);
        let tz = berlin();
        // Friday 2026-11-20 10:05Z -> Saturday 22:00 CET = 21:00Z.
        assert_eq!(
            w.next_opening(ts("2026-11-20T10:05:30Z"), &tz),
            Some(ts("2026-11-21T21:00:00Z"))
        );
        // Open now: now.
        assert_eq!(
            w.next_opening(ts("2026-11-21T22:00:00Z"), &tz),
            Some(ts("2026-11-21T22:00:00Z"))
        );
    }

    #[test]
    fn setpoints_credentials_methods() {
        let p = policy(
            "[[setpoints]]\nname = \"a\"\nasset = \"plc-1\"\nmodbus = { holding_registers = \"100\" }\n\
             [[setpoints]]\nname = \"b\"\nasset = \"plc-2\"\nmodbus = { coils = \"0-7\" }\n\
             [[setpoints]]\nname = \"c\"\nasset = \"plc-1\"\nwriters = [\"ews-1\"]\ns7 = { area = \"M\", bytes = \"10-13\" }\n\
             [[credentials]]\nuser = \"operator1\"\nsources = [\"hmi-1\"]\n\
             [[opcua_methods]]\nnode = \"ns=2;s=Line1.Plc.Stop\"\noperation = \"mode_change\"\n",
        );
        let names: Vec<&str> = p.setpoints_of("plc-1").map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(p.setpoints_of("plc-2").count(), 1);
        assert_eq!(p.setpoints_of("ews-1").count(), 0);
        assert_eq!(
            p.credential("operator1").map(|c| c.sources.clone()),
            Some(vec!["hmi-1".to_string()])
        );
        assert!(p.credential("operator2").is_none());
        assert_eq!(
            p.opcua_method("ns=2;s=Line1.Plc.Stop"),
            Some(Operation::ModeChange)
        );
        assert_eq!(p.opcua_method("ns=2;s=Line1.Plc.Start"), None);
    }

    /// 100 zones, 1,000 prefixes of mixed lengths: lookups go through a few hash maps.
    #[test]
    fn many_prefixes_lookup() {
        let mut text = String::from("[sensor]\nname = \"s\"\n[zones]\n");
        for z in 0..100u32 {
            let list: Vec<String> = (0..10u32)
                .map(|k| format!("\"10.{z}.{}.0/{}\"", k * 16, 20 + (k % 5)))
                .collect();
            text.push_str(&format!("z{z} = [{}]\n", list.join(", ")));
        }
        let p = crate::parse_str(&text, Path::new("t.toml")).unwrap();
        assert!(p.index.v4.len() <= 5);
        assert_eq!(p.zone_of(ip("10.42.16.1")), "z42"); // 10.42.16.0/21
        assert_eq!(p.zone_of(ip("10.99.144.200")), "z99"); // 10.99.144.0/24 (k=9)
        assert_eq!(p.zone_of(ip("10.99.145.1")), UNKNOWN_ZONE);
    }
}
