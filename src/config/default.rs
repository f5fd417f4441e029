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
/// [`Config`] (used by `saveconfig`). Every setting is written out, defaults included.
pub fn to_toml(config: &Config) -> String {
    toml::to_string_pretty(config).expect("the configuration model always serializes to TOML")
}
