//! Shell completion from the running daemon: target IQNs, backstore names, ACL initiators
//! and targetcli-style paths, asked over the control socket (`RUSTISCSI_SOCKET` or the
//! default) when the shell completes a word.

use std::time::Duration;

use clap_complete::engine::CompletionCandidate;

use crate::config::Config;
use crate::control::api::{Request, Response};
use crate::control::client::{Client, DEFAULT_SOCKET};

fn running() -> Option<Config> {
    let socket = std::env::var_os("RUSTISCSI_SOCKET").unwrap_or_else(|| DEFAULT_SOCKET.into());
    let client = Client::new(socket).with_timeout(Duration::from_secs(2));
    match client.request(Request::GetConfig).ok()? {
        Response::Config { config, .. } => Some(*config),
        _ => None,
    }
}

fn candidates(names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// Target IQNs.
pub fn targets() -> Vec<CompletionCandidate> {
    candidates(running().map_or_else(Vec::new, |c| c.targets.into_keys().collect()))
}

/// Backstore names.
pub fn backstores() -> Vec<CompletionCandidate> {
    candidates(running().map_or_else(Vec::new, |c| c.backstores.into_keys().collect()))
}

/// Initiator IQNs of every ACL.
pub fn initiators() -> Vec<CompletionCandidate> {
    let mut v: Vec<String> = running().map_or_else(Vec::new, |c| {
        c.targets
            .into_values()
            .flat_map(|t| t.acls.into_keys())
            .collect()
    });
    v.sort();
    v.dedup();
    candidates(v)
}

/// Every path of the targetcli-style tree.
pub fn paths() -> Vec<CompletionCandidate> {
    let Some(c) = running() else {
        return Vec::new();
    };
    candidates(super::tree::all_paths(&c))
}

/// Writes the registration script for `shell` (bash, zsh, fish): it calls this binary
/// back with `COMPLETE=<shell>` to complete each word.
pub fn registration(shell: &str, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let bin = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_owned))
        .unwrap_or_else(|| "rustiscsi".into());
    registration_calling(shell, &bin, out)
}

/// The registration script for `shell` that calls `completer` (a path, or `rustiscsi`
/// found on PATH, as an installed script does).
pub fn registration_calling(
    shell: &str,
    completer: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    let shells = clap_complete::env::Shells::builtins();
    let c = shells
        .completer(shell)
        .ok_or_else(|| std::io::Error::other(format!("no completion for {shell}")))?;
    c.write_registration("COMPLETE", "rustiscsi", "rustiscsi", completer, out)
}
