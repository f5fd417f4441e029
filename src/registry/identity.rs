//! Stable LUN identities: each backstore's unit serial, NAA designator and INQUIRY vendor
//! and product strings, kept in `<state_dir>/identities.json` so initiators (udev's
//! `/dev/disk/by-id`, multipath WWIDs, Windows and VMware disk signatures) see the same
//! device after a restart, a reload or an upgrade.
//!
//! - A backstore met for the first time gets a random 16-hex-digit serial and a random NAA
//!   type 3 (Locally Assigned, 8 bytes): this project has no IEEE company ID, so it does
//!   not make up type 5 or 6 designators.
//! - The file also holds 16-byte designators (NAA type 6, IEEE Registered Extended, what
//!   LIO presents) and pinned vendor/product strings; entries written by earlier versions
//!   (`"naa": "0x3…"`, 8 bytes, no vendor/product) read unchanged, so nothing changes
//!   identity under an upgrade. An entry that cannot be read is an error, never silently
//!   replaced.
//! - Values pinned in the config (`serial`, `wwn`, `vendor`, `product`) win over stored
//!   ones, and are written to the store.
//!
//! **Removing a pin keeps the identity.** Because a pinned value is stored, deleting the
//! pin from the config leaves the disk presenting the value it presented last; what
//! initiators see never changes behind their back. Choosing otherwise (falling back to the
//! identity stored before the pin, or to a fresh one) would make the same disk show up as
//! a different one, breaking multipath maps, cluster disk signatures and mounts by-id. To
//! present another identity, pin the new value; to return to generated defaults, remove the
//! backstore's entry from `identities.json` while the daemon is stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::control::atomic::write_with_backups;
use crate::scsi::{LunIdentity, Naa};

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    backstores: BTreeMap<String, StoredIdentity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredIdentity {
    serial: String,
    /// `0x` and 16 or 32 hex digits.
    naa: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    product: Option<String>,
}

/// Identity values the configuration pins for one backstore.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pins<'a> {
    /// Unit serial number.
    pub serial: Option<&'a str>,
    /// NAA designator, `naa.` and 16 or 32 hex digits (the config's `wwn`).
    pub wwn: Option<&'a str>,
    /// INQUIRY vendor.
    pub vendor: Option<&'a str>,
    /// INQUIRY product.
    pub product: Option<&'a str>,
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
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            stored,
            dirty: false,
        })
    }

    /// The identity of `backstore`: pinned values, else stored ones, else created now.
    /// Pinned and created values are recorded (written by [`IdentityStore::save`]).
    pub fn get(&mut self, backstore: &str, pins: &Pins<'_>) -> Result<LunIdentity, String> {
        let what = |field: &str, v: &str| {
            format!(
                "{}: backstore {backstore:?} has an unreadable {field} {v:?}; fix or remove \
                 the entry (removing it gives the disk a new identity)",
                self.path.display()
            )
        };
        let stored = self.stored.backstores.get(backstore).cloned();
        let stored_naa = match &stored {
            Some(s) => Some(Naa::parse(&s.naa).ok_or_else(|| what("NAA", &s.naa))?),
            None => None,
        };
        let naa = match pins.wwn {
            Some(w) => Naa::parse(w).ok_or_else(|| {
                format!("backstore {backstore:?}: wwn {w:?} is not an NAA designator")
            })?,
            None => stored_naa.unwrap_or_else(random_naa),
        };
        let serial = match (pins.serial, &stored) {
            (Some(p), _) => p.to_string(),
            (None, Some(s)) => s.serial.clone(),
            (None, None) => random_serial(),
        };
        let pick = |pin: Option<&str>, old: Option<&Option<String>>| {
            pin.map(str::to_string).or_else(|| old.cloned().flatten())
        };
        let vendor = pick(pins.vendor, stored.as_ref().map(|s| &s.vendor));
        let product = pick(pins.product, stored.as_ref().map(|s| &s.product));
        let entry = StoredIdentity {
            serial: serial.clone(),
            naa: format!("0x{naa:x}"),
            vendor: vendor.clone(),
            product: product.clone(),
        };
        if stored.as_ref() != Some(&entry) {
            self.stored.backstores.insert(backstore.to_string(), entry);
            self.dirty = true;
        }
        Ok(LunIdentity {
            serial,
            naa,
            vendor,
            product,
        })
    }

    /// Writes the store if anything changed (temporary file, fsync, rename, fsync of the
    /// directory).
    pub fn save(&mut self) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.stored).map_err(std::io::Error::other)?;
        write_with_backups(&self.path, &bytes, 0, 0o600)?;
        self.dirty = false;
        Ok(())
    }
}

fn random_bytes() -> [u8; 16] {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r).expect("OS random source");
    r
}

fn random_serial() -> String {
    hex::encode(&random_bytes()[..8])
}

/// A random NAA type 3 (Locally Assigned) designator.
fn random_naa() -> Naa {
    let r = random_bytes();
    let v = u64::from_be_bytes(r[8..16].try_into().expect("8 bytes"));
    Naa::from((0x3u64 << 60) | (v >> 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Pins<'static> = Pins {
        serial: None,
        wwn: None,
        vendor: None,
        product: None,
    };

    #[test]
    fn identities_persist() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = IdentityStore::open(dir.path()).unwrap();
        let a = s.get("disk0", &NONE).unwrap();
        assert_eq!(a.naa.naa_type(), 3);
        assert_eq!(a.naa.as_bytes().len(), 8);
        assert_eq!(a.serial.len(), 16);
        assert_eq!(s.get("disk0", &NONE).unwrap(), a);
        s.save().unwrap();
        let mut s2 = IdentityStore::open(dir.path()).unwrap();
        assert_eq!(s2.get("disk0", &NONE).unwrap(), a);
        assert_ne!(s2.get("disk1", &NONE).unwrap(), a);
    }

    /// A file written by earlier versions (8-byte NAA, no vendor/product) keeps giving the
    /// same identity, and is not even rewritten.
    #[test]
    fn old_files_keep_their_identities() {
        let dir = tempfile::tempdir().unwrap();
        let old =
            r#"{"backstores":{"disk0":{"serial":"0123456789abcdef","naa":"0x3123456789abcdef"}}}"#;
        std::fs::write(dir.path().join("identities.json"), old).unwrap();
        let mut s = IdentityStore::open(dir.path()).unwrap();
        let id = s.get("disk0", &NONE).unwrap();
        assert_eq!(
            id,
            LunIdentity::new("0123456789abcdef", 0x3123_4567_89ab_cdefu64)
        );
        s.save().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("identities.json")).unwrap(),
            old
        );
    }

    #[test]
    fn pins_win_and_outlive_their_removal() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = IdentityStore::open(dir.path()).unwrap();
        let generated = s.get("b", &NONE).unwrap();
        let pins = Pins {
            serial: Some("a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9"),
            wwn: Some("naa.6001405a1b2c3d4e5f647189293a4b5c"),
            vendor: Some("LIO-ORG"),
            product: Some("IBLOCK"),
        };
        let pinned = s.get("b", &pins).unwrap();
        assert_ne!(pinned, generated);
        assert_eq!(pinned.naa.as_bytes().len(), 16);
        assert_eq!(&pinned.vendor_field(), b"LIO-ORG ");
        s.save().unwrap();
        // The pins are removed from the config: the disk keeps presenting them.
        let mut s2 = IdentityStore::open(dir.path()).unwrap();
        assert_eq!(s2.get("b", &NONE).unwrap(), pinned);
        // Pinning only the serial keeps the rest.
        let only = Pins {
            serial: Some("NEW"),
            ..NONE
        };
        let id = s2.get("b", &only).unwrap();
        assert_eq!((id.serial.as_str(), id.naa), ("NEW", pinned.naa));
    }

    #[test]
    fn unreadable_entries_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("identities.json"),
            r#"{"backstores":{"d":{"serial":"x","naa":"0xnothex"}}}"#,
        )
        .unwrap();
        let mut s = IdentityStore::open(dir.path()).unwrap();
        let e = s.get("d", &NONE).unwrap_err();
        assert!(e.contains("unreadable NAA"), "{e}");
        std::fs::write(dir.path().join("identities.json"), "{").unwrap();
        assert!(IdentityStore::open(dir.path()).is_err());
    }
}
