//! The embedded default configuration and writing a configuration back as TOML.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use super::{BackstoreConfig, Config, Daemon, LunConfig, Size, TargetConfig};
use crate::backstore::BackstoreKind;

/// IQN of the demo target in the embedded default.
pub const DEMO_TARGET: &str = "iqn.2026-11.org.rustiscsi:demo";

/// Name of the demo backstore in the embedded default.
pub const DEMO_BACKSTORE: &str = "demo";

/// Size of the demo LUN (sparse; nothing is allocated until written).
pub const DEMO_SIZE: Size = Size(1 << 30);

/// The embedded default: a loopback portal and a 1 GiB sparse demo LUN under `state_dir`.
///
/// - `daemon.portals = ["127.0.0.1:3260"]`, `daemon.state_dir = state_dir`;
/// - backstore [`DEMO_BACKSTORE`]: fileio at `<state_dir>/demo.img`, 1G;
/// - target [`DEMO_TARGET`] with LUN 0 on it and `demo_mode = true` (any initiator on this
///   host may log in, which is safe only because the portal is loopback).
///
/// It passes validation whenever `state_dir` is absolute.
pub fn embedded_default(state_dir: &Path) -> Config {
    let daemon = Daemon {
        portals: vec![SocketAddr::from(([127, 0, 0, 1], 3260))],
        state_dir: state_dir.to_path_buf(),
        ..Daemon::default()
    };
    let backstores = BTreeMap::from([(
        DEMO_BACKSTORE.to_owned(),
        BackstoreConfig {
            kind: BackstoreKind::Fileio,
            path: Some(state_dir.join("demo.img")),
            size: Some(DEMO_SIZE),
            block_size: 512,
            write_cache: false,
            cache: None,
            serial: None,
            wwn: None,
            vendor: None,
            product: None,
        },
    )]);
    let targets = BTreeMap::from([(
        DEMO_TARGET.to_owned(),
        TargetConfig {
            tpg: 1,
            luns: vec![LunConfig {
                lun: Some(0),
                backstore: DEMO_BACKSTORE.to_owned(),
            }],
            demo_mode: true,
            ..TargetConfig::default()
        },
    )]);
    Config {
        daemon,
        backstores,
        targets,
        ..Config::default()
    }
}

/// Writes `config` as pretty TOML that [`parse`](super::parse) reads back to an equal
/// [`Config`] (used by `saveconfig`). Every setting is written out, defaults included;
/// tables left empty (no discovery CHAP, no ACLs, ...) are omitted.
pub fn to_toml(config: &Config) -> String {
    let full =
        toml::to_string_pretty(config).expect("the configuration model always serializes to TOML");
    let pruned = drop_empty_tables(&full);
    // Belt and braces: keep the pruned text only if it reads back identically.
    match toml::from_str::<Config>(&pruned) {
        Ok(back) if back == *config => pruned,
        _ => full,
    }
}

/// Removes `[header]` lines with no key under them (before the next header or the end).
/// Every such table in the model is optional or a map, so dropping it changes nothing.
fn drop_empty_tables(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let is_header = |l: &str| l.starts_with('[');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if is_header(l) && !l.starts_with("[[") {
            let next = lines[i + 1..].iter().find(|n| !n.trim().is_empty());
            if next.is_none_or(|n| is_header(n)) {
                // Skip the header and the blank lines after it.
                i += 1;
                while i < lines.len() && lines[i].trim().is_empty() {
                    i += 1;
                }
                continue;
            }
        }
        out.push_str(l);
        out.push('\n');
        i += 1;
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
