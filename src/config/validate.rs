//! Validation: everything is checked before anything is served, and each error names the
//! file, the line and the key.

// IMPLEMENTATION NOTE (skeleton): contract only; bodies are filled in by the config work.

use std::path::{Path, PathBuf};

use super::Config;

/// A configuration error, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line of the offending key (0 when unknown).
    pub line: usize,
    /// Dotted key path, e.g. `targets."iqn.x:y".luns[0].backstore`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// A configuration that passed every check; the only input the registry accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedConfig {
    /// The checked model.
    pub config: Config,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// Soft problems (logged at start, printed by `--check`).
    pub warnings: Vec<String>,
}

/// Reads and validates a config file.
pub fn load(_path: &Path) -> Result<ValidatedConfig, ConfigError> {
    todo!("config validation")
}

/// Parses and validates TOML text; `origin` names it in errors.
pub fn parse(_text: &str, _origin: &str) -> Result<ValidatedConfig, ConfigError> {
    todo!("config validation")
}

/// The embedded default: a loopback portal and a 1 GiB sparse demo LUN under `state_dir`.
pub fn embedded_default(_state_dir: &Path) -> Config {
    todo!("config validation")
}
