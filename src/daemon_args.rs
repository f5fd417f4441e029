//! Command line of the `rustiscsid` daemon, in the library so that tools (the man page
//! generator in `xtask`) can read the same clap definition the daemon parses.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{CommandFactory, Parser};

/// A userspace iSCSI target.
#[derive(Debug, Parser)]
#[command(name = "rustiscsid", version, about)]
pub struct Args {
    /// Configuration file (TOML). Without it, the embedded demo default is served.
    #[arg(short, long, env = "RUSTISCSI_CONFIG")]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit (reads no secret files and no devices).
    #[arg(long)]
    pub check: bool,
    /// Override `daemon.state_dir`.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Override `daemon.portals` (repeatable), e.g. `127.0.0.1:3260`.
    #[arg(long = "portal")]
    pub portals: Vec<SocketAddr>,
    /// Override `daemon.control_socket`.
    #[arg(long)]
    pub control_socket: Option<PathBuf>,
    /// Log filter (tracing `EnvFilter` syntax; `RUST_LOG` also works).
    #[arg(long, default_value = "info")]
    pub log: String,
}

/// The daemon's clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Args::command()
}
