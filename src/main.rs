//! The `aion` binary.
fn main() {}
