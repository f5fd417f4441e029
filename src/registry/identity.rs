//! Stable LUN identities: each backstore's unit serial and NAA identifier are created once
//! and kept in `<state_dir>/identities.json`, so initiators (and multipath) see the same
//! device after a restart or a config change.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::scsi::LunIdentity;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    backstores: BTreeMap<String, StoredIdentity>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredIdentity {
    serial: String,
    naa: String,
}

/// The identity file of a state dir.
#[derive(Debug)]
pub struct IdentityStore {
    path: PathBuf,
    stored: Stored,
    dirty: bool,
}

impl IdentityStore {
    /// Opens (or starts) the store under `state_dir`, creating the directory.
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(state_dir)?;
        let path = state_dir.join("identities.json");
        let stored = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            stored,
            dirty: false,
        })
    }

    /// The identity of `backstore`, created on first use.
    pub fn get(&mut self, backstore: &str) -> LunIdentity {
        if let Some(id) = self.stored.backstores.get(backstore) {
            if let Ok(naa) = u64::from_str_radix(id.naa.trim_start_matches("0x"), 16) {
                return LunIdentity {
                    serial: id.serial.clone(),
                    naa,
                };
            }
        }
        let mut r = [0u8; 16];
        getrandom::fill(&mut r).expect("OS random source");
        let serial = hex::encode(&r[..8]);
        let naa = (0x3u64 << 60) | (u64::from_be_bytes(r[8..16].try_into().expect("8 bytes")) >> 4);
        self.stored.backstores.insert(
            backstore.to_string(),
            StoredIdentity {
                serial: serial.clone(),
                naa: format!("0x{naa:016x}"),
            },
        );
        self.dirty = true;
        LunIdentity { serial, naa }
    }

    /// Writes the store if anything was created (temp file, fsync, rename).
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.stored).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = IdentityStore::open(dir.path()).unwrap();
        let a = s.get("disk0");
        assert_eq!(a.naa >> 60, 3);
        assert_eq!(a.serial.len(), 16);
        assert_eq!(s.get("disk0"), a);
        s.save().unwrap();
        let mut s2 = IdentityStore::open(dir.path()).unwrap();
        assert_eq!(s2.get("disk0"), a);
        assert_ne!(s2.get("disk1"), a);
    }
}
