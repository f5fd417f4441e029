//! The rustiscsi target daemon.
fn main() {}
