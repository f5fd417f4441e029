//! Build tasks of rustiscsi (`cargo xtask <task>`, alias in `.cargo/config.toml`):
//!
//! - `man [--out-dir DIR]`: rustiscsid(8) and rustiscsi(8) from the clap definitions
//!   ([`rustiscsi::daemon_args::command`], [`rustiscsi::cli::command`]);
//! - `completions [--out-dir DIR]`: bash, zsh and fish completions of both commands;
//! - `install [--prefix P] [--destdir D] [--sysconfdir E] [--no-build]`: binaries, man pages
//!   (with the hand-written rustiscsi.toml(5) of `doc/`), completions, the systemd unit and
//!   the sysusers.d entry, for Debian-like systems without Nix.

mod completions;
mod install;
mod man;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build tasks of rustiscsi")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Write rustiscsid.8 and rustiscsi.8 (generated from the clap definitions).
    Man {
        /// Output directory.
        #[arg(long, default_value = "target/man")]
        out_dir: PathBuf,
    },
    /// Write bash, zsh and fish completions of rustiscsi and rustiscsid.
    Completions {
        /// Output directory.
        #[arg(long, default_value = "target/completions")]
        out_dir: PathBuf,
    },
    /// Install binaries, man pages, completions, the systemd unit and the sysusers.d entry.
    Install(install::Options),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().task {
        Task::Man { out_dir } => {
            for p in man::write_all(&out_dir)? {
                println!("{}", p.display());
            }
        }
        Task::Completions { out_dir } => {
            for p in completions::write_all(&out_dir)? {
                println!("{}", p.display());
            }
        }
        Task::Install(o) => install::run(&o)?,
    }
    Ok(())
}

/// The repository root (the parent of this crate's directory).
fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in a subdirectory of the repository")
}

/// Writes `bytes` to `dir/name`, creating `dir`; returns the path.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}
