//! The rustiscsi management CLI (see [`rustiscsi::cli`]).
fn main() -> std::process::ExitCode {
    rustiscsi::cli::run()
}
