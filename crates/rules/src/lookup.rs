//! Lookups over a loaded policy. (Being written.)

/// Lookup structures built at load time.
#[derive(Debug, Clone, Default)]
pub struct Index {}
