//! Shell completions of both commands (clap_complete), named as the shells look them up:
//! `<cmd>.bash`, `_<cmd>` (zsh), `<cmd>.fish`.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// The commands with completions, by binary name.
pub fn commands() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("rustiscsi", rustiscsi::cli::command()),
        ("rustiscsid", rustiscsi::daemon_args::command()),
    ]
}

/// File name of `bin`'s completion for `shell`.
pub fn file_name(shell: Shell, bin: &str) -> String {
    match shell {
        Shell::Zsh => format!("_{bin}"),
        Shell::Fish => format!("{bin}.fish"),
        _ => format!("{bin}.bash"),
    }
}

/// The shells completions are written for.
pub const SHELLS: [Shell; 3] = [Shell::Bash, Shell::Zsh, Shell::Fish];

/// Writes every completion file into `dir`; returns their paths.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (bin, mut cmd) in commands() {
        for shell in SHELLS {
            let mut out = Vec::new();
            if bin == "rustiscsi" {
                // Completes IQNs, backstores and ACLs by asking the running daemon.
                rustiscsi::cli::complete::registration_calling(&shell.to_string(), bin, &mut out)?;
            } else {
                clap_complete::generate(shell, &mut cmd, bin, &mut out);
            }
            written.push(crate::write_file(dir, &file_name(shell, bin), &out)?);
        }
    }
    Ok(written)
}
