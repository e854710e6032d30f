//! Reading the policy from TOML. (Being written.)

use std::path::{Path, PathBuf};

use crate::model::Policy;

/// A policy that cannot be used: names the file, the line and the key.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default(), key.as_ref().map(|k| format!(": {k}")).unwrap_or_default())]
pub struct PolicyError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let _ = path;
    Err(PolicyError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        message: "policy loading is not written yet".into(),
    })
}

pub fn parse_str(text: &str, origin: &Path) -> Result<Policy, PolicyError> {
    let _ = text;
    load(origin)
}

pub fn demo() -> Policy {
    unimplemented!("being written")
}
