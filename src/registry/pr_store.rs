//! Where APTPL reservation state lives: `<state_dir>/reservations/naa.<hex>.json`, one
//! file per logical unit, written before the PERSISTENT RESERVE OUT that changed it gets
//! GOOD and removed when APTPL is cleared. Writes are crash-safe (a temporary file in the
//! same directory, fsync, rename over the file, fsync of the directory): after a crash the
//! file holds the previous state or the new one, never a mix; a temporary file left behind
//! is never read.
//!
//! **The key is the disk's identity, checked against the backing path.** The file is named
//! by the unit's NAA designator (what initiators know the disk by) and records the
//! backstore's serial, kind and path (and name, for people). It is restored into a unit
//! only when NAA, serial, kind and path all match, so:
//! - a backstore renamed in the config keeps its reservations if it keeps its identity
//!   (pinned `wwn`/`serial`, or an identity entry carried over) and its path;
//! - a backstore whose name now points at another file or device never picks up the
//!   reservations of the disk it replaced (the path differs), nor does a disk given a new
//!   identity (the NAA differs);
//! - a file that does not match is left in place and logged (it matches again if the
//!   change is undone) until the unit writes its own state over it.
//!
//! A file that exists but cannot be read is an error: silently starting without the
//! reservations a cluster relies on for fencing would let a fenced node write again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::RegistryError;
use crate::backstore::{BackstoreKind, BackstoreSpec};
use crate::control::atomic::write_with_backups;
use crate::scsi::LogicalUnit;
use crate::scsi::pr::{PrSnapshot, PrStore};

/// Version of the file layout.
const FORMAT: u32 = 1;

/// Which disk a reservation file belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Owner {
    /// Backstore name when written (informational; not compared).
    backstore: String,
    serial: String,
    naa: String,
    kind: BackstoreKind,
    path: Option<PathBuf>,
}

impl Owner {
    fn same_disk(&self, o: &Owner) -> bool {
        (&self.serial, &self.naa, self.kind, &self.path) == (&o.serial, &o.naa, o.kind, &o.path)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    owner: Owner,
    state: PrSnapshot,
}

/// The APTPL store of one unit.
#[derive(Debug)]
struct FileStore {
    path: PathBuf,
    owner: Owner,
}

impl PrStore for FileStore {
    fn save(&self, state: &PrSnapshot) -> std::io::Result<()> {
        let f = StateFile {
            format: FORMAT,
            owner: self.owner.clone(),
            state: state.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&f).map_err(std::io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        write_with_backups(&self.path, &bytes, 0, 0o600).map(drop)
    }

    fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        match self.path.parent() {
            Some(dir) => std::fs::File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

/// The reservation file of the disk with NAA `naa` under `state_dir`.
fn file_of(state_dir: &Path, naa: &str) -> PathBuf {
    state_dir
        .join("reservations")
        .join(format!("naa.{naa}.json"))
}

/// Gives a new unit its APTPL store and restores what it persisted, if the file there is
/// this disk's.
pub(super) fn attach(
    unit: &LogicalUnit,
    state_dir: &Path,
    name: &str,
    spec: &BackstoreSpec,
) -> Result<(), RegistryError> {
    let id = unit.identity();
    let owner = Owner {
        backstore: name.to_string(),
        serial: id.serial.clone(),
        naa: format!("{:x}", id.naa),
        kind: spec.kind,
        path: spec.path.clone(),
    };
    let path = file_of(state_dir, &owner.naa);
    let err = |reason: String| RegistryError::State {
        path: path.display().to_string(),
        source: std::io::Error::other(format!(
            "{reason}; the persisted reservations of backstore {name} cannot be restored \
             (move the file aside to start without them)"
        )),
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let f: StateFile =
                serde_json::from_slice(&bytes).map_err(|e| err(format!("unreadable: {e}")))?;
            if f.format != FORMAT {
                return Err(err(format!("unknown format {}", f.format)));
            }
            if f.owner.same_disk(&owner) {
                unit.reservations.restore(&f.state).map_err(err)?;
                tracing::info!(
                    backstore = %name,
                    registrations = f.state.registrations.len(),
                    reserved = f.state.reservation.is_some(),
                    "persistent reservations restored (APTPL)"
                );
            } else {
                tracing::warn!(
                    backstore = %name,
                    file = %path.display(),
                    was = ?f.owner,
                    now = ?owner,
                    "persisted reservations belong to another disk (serial, kind or path differ): not restored"
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e.to_string())),
    }
    unit.reservations
        .set_store(Some(Arc::new(FileStore { path, owner })));
    Ok(())
}

#[cfg(test)]
mod tests;
