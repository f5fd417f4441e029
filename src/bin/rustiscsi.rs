//! The rustiscsi management CLI.
fn main() {}
