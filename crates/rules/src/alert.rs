//! (Being written.)
#[derive(Debug)]
pub struct Alert;
