//! The plant's policy and the rule engine.
//!
//! * [`model`]: the validated policy (zones, assets, conduits, windows, setpoints, ...).
//! * `policy`: reading it from TOML (`include`, errors naming file, line and key).
//! * `lookup`: zone of an address (most specific prefix), assets by address and name,
//!   conduits, open maintenance windows.
//! * `ruleset`: the shipped rules (`rules/default.toml`: id, title, severity, ATT&CK per
//!   kind) with the policy's `[[overrides]]` applied.
//! * `engine`: detections over normalized events, repeats folding, alert ids.
//! * `alert`: the alert and its JSON.
//! * `learn`: drafting `[[conduits]]` from what captures show.
#![forbid(unsafe_code)]

pub mod alert;
pub mod engine;
pub mod learn;
pub mod lookup;
pub mod model;
pub mod policy;
pub mod ruleset;

pub use alert::Alert;
pub use engine::{Engine, SeenState};
pub use model::*;
pub use policy::{demo, load, parse_str, PolicyError};
