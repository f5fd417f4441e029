//! Command-line overrides of `rustiscsid` (`--portal`, `--state-dir`, `--control-socket`):
//! applied at start and again at every reload of the file, whoever asks for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError, ValidatedConfig, validate_all};

/// Settings given on the daemon's command line, which win over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--portal` (repeatable): replaces `daemon.portals` when not empty.
    pub portals: Vec<SocketAddr>,
    /// `--state-dir`: replaces `daemon.state_dir`.
    pub state_dir: Option<PathBuf>,
    /// `--control-socket`: replaces `daemon.control_socket`.
    pub control_socket: Option<PathBuf>,
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Writes the overridden settings into `c`.
    pub fn apply(&self, c: &mut Config) {
        if !self.portals.is_empty() {
            c.daemon.portals = self.portals.clone();
        }
        if let Some(d) = &self.state_dir {
            c.daemon.state_dir = d.clone();
        }
        if let Some(s) = &self.control_socket {
            c.daemon.control_socket = s.clone();
        }
    }

    /// Reads, validates and overrides the configuration file at `path`; every error is
    /// reported, with its line when it comes from the file.
    pub fn load(&self, path: &Path) -> Result<ValidatedConfig, Vec<ConfigError>> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigError {
                file: origin.clone(),
                line: 0,
                key: "<document>".into(),
                message: format!("cannot read the configuration: {e}"),
            }]
        })?;
        let mut v = super::parse_all(&text, &origin)?;
        if !self.is_empty() {
            let mut warnings = v.warnings;
            let mut c = v.config;
            self.apply(&mut c);
            v = validate_all(c, &format!("{origin} with command-line overrides"))?;
            // The file's warnings keep their lines; the overrides may add others.
            for w in std::mem::take(&mut v.warnings) {
                let tail = w.split_once(": ").map_or(w.as_str(), |(_, t)| t);
                if !warnings.iter().any(|f| f.ends_with(tail)) {
                    warnings.push(w);
                }
            }
            v.warnings = warnings;
        }
        v.source = Some(path.to_path_buf());
        Ok(v)
    }
}
