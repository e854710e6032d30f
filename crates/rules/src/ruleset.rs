//! The shipped rules (`rules/default.toml`, built into the binary) and the policy's
//! `[[overrides]]` applied to them.
//!
//! A rule is what the alert says about a detection: id, title, severity, ATT&CK
//! techniques. Detections themselves live in `engine.rs`; a kind has exactly one rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::alert::{severity_from_name, AlertKind};
use crate::model::{OverrideSelector, Policy, Severity};

/// The rules file shipped in the binary.
pub const DEFAULT_RULES: &str = include_str!("../../../rules/default.toml");

/// One rule: how an alert of its kind is labelled, and whether and for whom it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: AlertKind,
    /// `OTW-1001`, ...
    pub id: Arc<str>,
    pub title: Arc<str>,
    pub severity: Severity,
    /// MITRE ATT&CK for ICS technique ids.
    pub attack: Arc<[String]>,
    pub description: String,
    pub enabled: bool,
    /// Source asset names whose operations never raise this rule.
    pub except_sources: Vec<String>,
}

impl Rule {
    /// Whether the rule stays silent for an operation by `source_asset`.
    pub fn excepts(&self, source_asset: Option<&str>) -> bool {
        source_asset.is_some_and(|s| self.except_sources.iter().any(|e| e == s))
    }
}

/// A rules file that does not describe every kind exactly once, well.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    #[error("rules file is not valid TOML or has an unknown key")]
    Syntax,
    #[error("rules file: unknown alert kind")]
    UnknownKind,
    #[error("rules file: {0} has no rule")]
    MissingKind(&'static str),
    #[error("rules file: {0} has an unknown severity")]
    BadSeverity(&'static str),
    #[error("rules file: rule id used twice")]
    DuplicateId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    id: String,
    title: String,
    severity: String,
    attack: Vec<String>,
    description: String,
}

/// One rule per alert kind.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSet {
    /// Indexed by `AlertKind::index`.
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Parses a rules file: one table per kind, every kind present.
    pub fn parse(text: &str) -> Result<RuleSet, RuleSetError> {
        let table: BTreeMap<String, RuleToml> =
            toml::from_str(text).map_err(|_| RuleSetError::Syntax)?;
        if table.keys().any(|k| AlertKind::from_name(k).is_none()) {
            return Err(RuleSetError::UnknownKind);
        }
        let mut kinds = AlertKind::ALL;
        kinds.sort_by_key(|k| k.index());
        let mut rules = Vec::with_capacity(kinds.len());
        for kind in kinds {
            let r = table
                .get(kind.as_str())
                .ok_or(RuleSetError::MissingKind(kind.as_str()))?;
            let severity =
                severity_from_name(&r.severity).ok_or(RuleSetError::BadSeverity(kind.as_str()))?;
            rules.push(Rule {
                kind,
                id: r.id.as_str().into(),
                title: r.title.as_str().into(),
                severity,
                attack: r.attack.clone().into(),
                description: r.description.clone(),
                enabled: true,
                except_sources: Vec::new(),
            });
        }
        let mut ids: Vec<&str> = rules.iter().map(|r| &*r.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(RuleSetError::DuplicateId);
        }
        Ok(RuleSet { rules })
    }

    /// The rules built into the binary.
    pub fn shipped() -> RuleSet {
        // The embedded file is part of the source tree and a test parses it: failing
        // here is a build defect, not an input error.
        #[allow(clippy::expect_used)]
        RuleSet::parse(DEFAULT_RULES).expect("rules/default.toml is valid")
    }

    /// The shipped rules with the policy's `[[overrides]]` applied, in file order (a
    /// later override of the same rule wins for the fields it sets; `except_sources`
    /// accumulate). The policy loader rejects overrides of one rule that set a field to
    /// different values, and overrides naming no known kind or rule id; one of the
    /// latter that reaches this point is ignored with a warning.
    pub fn with_overrides(policy: &Policy) -> RuleSet {
        let mut set = RuleSet::shipped();
        for o in &policy.overrides {
            let rule = match &o.selector {
                OverrideSelector::Kind(k) => AlertKind::from_name(k)
                    .and_then(|kind| set.rules.iter_mut().find(|r| r.kind == kind)),
                OverrideSelector::Rule(id) => set.rules.iter_mut().find(|r| &*r.id == id),
            };
            let Some(rule) = rule else {
                tracing::warn!(selector = ?o.selector, "override matches no rule; ignored");
                continue;
            };
            if let Some(s) = o.severity {
                rule.severity = s;
            }
            if let Some(e) = o.enabled {
                rule.enabled = e;
            }
            for s in &o.except_sources {
                if !rule.except_sources.contains(s) {
                    rule.except_sources.push(s.clone());
                }
            }
        }
        set
    }

    /// The rule of a kind.
    pub fn rule(&self, kind: AlertKind) -> &Rule {
        // `parse` guarantees one rule per kind at the kind's index.
        &self.rules[kind.index()]
    }

    /// The rule with this id (`OTW-1001`).
    pub fn by_id(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// Every rule, in the order the policy spec lists the detections.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        AlertKind::ALL.into_iter().map(|k| self.rule(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_cover_every_kind_with_distinct_ids() {
        let set = RuleSet::parse(DEFAULT_RULES).unwrap();
        assert_eq!(set.iter().count(), AlertKind::ALL.len());
        for kind in AlertKind::ALL {
            let r = set.rule(kind);
            assert_eq!(r.kind, kind);
            assert!(r.id.starts_with("OTW-1"), "{}", r.id);
            assert!(!r.title.is_empty() && !r.description.is_empty());
            assert!(!r.attack.is_empty());
            for t in r.attack.iter() {
                // ATT&CK for ICS technique ids are T08xx.
                assert!(
                    t.len() == 5 && t.starts_with("T08") && t[1..].parse::<u16>().is_ok(),
                    "{t}"
                );
            }
            assert!(r.enabled);
        }
    }

    #[test]
    fn shipped_ids_and_mappings_match_the_spec_examples() {
        let set = RuleSet::shipped();
        let r = set.rule(AlertKind::ProgramDownloadOutsideWindow);
        assert_eq!(&*r.id, "OTW-1001");
        assert_eq!(r.severity, Severity::Critical);
        assert!(r.attack.contains(&"T0843".to_string()));
        // policy.md's override example: kind = "device_restart" or rule = "OTW-1006".
        assert_eq!(&*set.rule(AlertKind::DeviceRestart).id, "OTW-1006");
        assert_eq!(
            set.by_id("OTW-1006").map(|r| r.kind),
            Some(AlertKind::DeviceRestart)
        );
        assert_eq!(&*set.rule(AlertKind::PlcModeChange).attack, ["T0858"]);
        assert_eq!(&*set.rule(AlertKind::ProgramUpload).attack, ["T0845"]);
        assert_eq!(
            &*set.rule(AlertKind::CredentialUnusualOrigin).attack,
            ["T0859"]
        );
    }

    #[test]
    fn bad_rules_files_are_rejected() {
        let one = "[new_asset]\nid = \"OTW-1\"\ntitle = \"t\"\nseverity = \"low\"\nattack = []\ndescription = \"d\"\n";
        assert_eq!(
            RuleSet::parse(one),
            Err(RuleSetError::MissingKind("program_download_outside_window"))
        );
        let unknown = format!("{DEFAULT_RULES}\n[port_scan]\nid = \"OTW-2000\"\ntitle = \"t\"\nseverity = \"low\"\nattack = []\ndescription = \"d\"\n");
        assert_eq!(RuleSet::parse(&unknown), Err(RuleSetError::UnknownKind));
        let sev = DEFAULT_RULES.replacen("severity = \"critical\"", "severity = \"urgent\"", 1);
        assert_eq!(
            RuleSet::parse(&sev),
            Err(RuleSetError::BadSeverity("program_download_outside_window"))
        );
        let dup = DEFAULT_RULES.replacen("OTW-1002", "OTW-1001", 1);
        assert_eq!(RuleSet::parse(&dup), Err(RuleSetError::DuplicateId));
        let key = DEFAULT_RULES.replacen("id = \"OTW-1002\"", "id = \"OTW-1002\"\nweight = 3", 1);
        assert_eq!(RuleSet::parse(&key), Err(RuleSetError::Syntax));
    }
}
