//! (Being written.)
#[derive(Debug)]
pub struct Engine;
