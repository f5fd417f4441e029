//! The running model: backstores opened, targets with their LUN maps and ACLs.
//!
//! A [`Registry`] is an immutable snapshot built from a [`ValidatedConfig`]; a reload builds
//! a new one (reusing the open backstores whose spec did not change, so sessions keep their
//! logical units) and swaps it in whole.

mod identity;
mod policy;
mod seen;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

pub use self::identity::IdentityStore;
use self::seen::SeenFiles;
use crate::backstore::{
    Backstore, BackstoreError, BackstoreKind, BackstoreSpec, CacheMode, OpenOptions,
};
use crate::config::{ChapConfig, Config, ValidatedConfig};
use crate::iscsi::login::{ChapSecret, Offer};
use crate::scsi::{LogicalUnit, LunMap, MappedLun};

/// Why a registry could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A backstore could not be opened.
    #[error(transparent)]
    Backstore(#[from] crate::backstore::BackstoreError),
    /// The state dir is unusable.
    #[error("state dir {path}: {source}")]
    State {
        /// The state dir.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A secret file could not be read or is unusable.
    #[error("secret file {path}: {reason}")]
    Secret {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A CHAP pair of the running model.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// One-way CHAP credentials.
    pub chap: Option<ChapSecret>,
    /// Mutual CHAP credentials.
    pub mutual: Option<ChapSecret>,
}

/// One ACL of a target.
#[derive(Debug, Clone)]
pub struct Acl {
    /// LUNs the initiator sees.
    pub luns: LunMap,
    /// Credentials (falls back to the target's).
    pub auth: Auth,
    /// Allowed source networks (empty = any).
    pub networks: Vec<IpNet>,
}

/// One target.
#[derive(Debug, Clone)]
pub struct Target {
    /// IQN.
    pub name: String,
    /// Target portal group tag.
    pub tpg: u16,
    /// LUNs by target LUN number.
    pub luns: BTreeMap<u64, Arc<LogicalUnit>>,
    /// Any initiator, all LUNs.
    pub demo_mode: bool,
    /// Target-wide default credentials.
    pub auth: Auth,
    /// Allowed source networks (empty = any).
    pub networks: Vec<IpNet>,
    /// ACLs by initiator IQN.
    pub acls: HashMap<String, Acl>,
}

/// A snapshot of everything the daemon serves.
#[derive(Debug)]
pub struct Registry {
    /// The configuration it was built from.
    pub config: Config,
    /// Open backstores with their logical units, by name.
    pub units: BTreeMap<String, (BackstoreSpec, Arc<LogicalUnit>)>,
    /// Targets by IQN.
    pub targets: BTreeMap<String, Target>,
    /// Discovery-session credentials.
    pub discovery: Auth,
    /// Negotiation offer.
    pub offer: Offer,
}

fn read_secret(c: &ChapConfig) -> Result<ChapSecret, RegistryError> {
    let err = |reason: String| RegistryError::Secret {
        path: c.password_file.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(&c.password_file).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            file = %c.password_file.display(),
            "CHAP secret file is readable by group or others; chmod 600 it"
        );
    }
    let raw = std::fs::read(&c.password_file).map_err(|e| err(e.to_string()))?;
    let mut secret = raw.as_slice();
    while let Some((last, rest)) = secret.split_last() {
        if *last == b'\n' || *last == b'\r' {
            secret = rest;
        } else {
            break;
        }
    }
    if secret.is_empty() {
        return Err(err("the secret is empty".into()));
    }
    if !(12..=16).contains(&secret.len()) {
        tracing::warn!(
            file = %c.password_file.display(),
            len = secret.len(),
            "CHAP secrets outside 12..16 bytes are refused by some initiators (MD5 interop)"
        );
    }
    Ok(ChapSecret {
        user: c.user.clone(),
        secret: secret.to_vec(),
    })
}

fn auth(chap: &Option<ChapConfig>, mutual: &Option<ChapConfig>) -> Result<Auth, RegistryError> {
    let a = Auth {
        chap: chap.as_ref().map(read_secret).transpose()?,
        mutual: mutual.as_ref().map(read_secret).transpose()?,
    };
    if let (Some(c), Some(m)) = (&a.chap, &a.mutual) {
        if c.secret == m.secret {
            return Err(RegistryError::Secret {
                path: mutual
                    .as_ref()
                    .map(|m| m.password_file.display().to_string())
                    .unwrap_or_default(),
                reason: "the mutual CHAP secret must differ from the initiator's secret".into(),
            });
        }
    }
    Ok(a)
}

/// Converts the config limits into the negotiation offer.
pub fn offer(c: &Config) -> Offer {
    let l = &c.iscsi;
    let has = |v: &Vec<String>, x: &str| v.iter().any(|d| d.eq_ignore_ascii_case(x));
    Offer {
        max_recv_data_segment_length: l.max_recv_data_segment_length,
        max_burst_length: l.max_burst_length,
        first_burst_length: l.first_burst_length,
        max_outstanding_r2t: l.max_outstanding_r2t,
        immediate_data: l.immediate_data,
        initial_r2t: l.initial_r2t,
        header_crc32c: has(&l.header_digest, "CRC32C"),
        header_none: has(&l.header_digest, "None"),
        data_crc32c: has(&l.data_digest, "CRC32C"),
        data_none: has(&l.data_digest, "None"),
    }
}

impl Registry {
    /// Builds a snapshot, reusing unchanged backstores of `previous`.
    pub fn build(
        v: &ValidatedConfig,
        previous: Option<&Registry>,
    ) -> Result<Registry, RegistryError> {
        let c = &v.config;
        let state_err = |source| RegistryError::State {
            path: c.daemon.state_dir.display().to_string(),
            source,
        };
        let mut ids = IdentityStore::open(&c.daemon.state_dir).map_err(state_err)?;
        let mut seen = SeenFiles::open(&c.daemon.state_dir).map_err(state_err)?;
        // Backstores being removed may hand their claim on a file or device to a new one.
        let retiring: Vec<String> = previous
            .map(|p| {
                p.units
                    .keys()
                    .filter(|n| !c.backstores.contains_key(*n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let mut units = BTreeMap::new();
        let mut created = Vec::new();
        for (name, b) in &c.backstores {
            let spec = BackstoreSpec {
                name: name.clone(),
                kind: b.kind,
                path: b.path.clone(),
                size: b.size.map(|s| s.0),
                block_size: b.block_size,
                write_cache: b.write_cache,
                cache: b.cache.unwrap_or(CacheMode::default_for(b.kind)),
            };
            if let Some((old, unit)) = previous.and_then(|p| p.units.get(name)) {
                if *old == spec {
                    units.insert(name.clone(), (spec, unit.clone()));
                    continue;
                }
                // Only the size changed: grow in place (online resize), same unit, and
                // every initiator gets CAPACITY DATA HAS CHANGED. An offline unit gets
                // the new size when it is opened.
                let resized = BackstoreSpec {
                    size: old.size,
                    ..spec.clone()
                };
                if *old == resized {
                    if spec.size < old.size {
                        tracing::warn!(backstore = %name, "backstores are never shrunk online; keeping the current size");
                    }
                    if let Some(store) = unit.backstore() {
                        let before = store.size();
                        let after = store.grow(spec.size.unwrap_or(0)).map_err(|source| {
                            BackstoreError::Open {
                                name: name.clone(),
                                source,
                            }
                        })?;
                        if after != before {
                            tracing::info!(backstore = %name, before, after, "backstore grown");
                            unit.capacity_changed();
                        }
                    }
                    units.insert(name.clone(), (spec, unit.clone()));
                    continue;
                }
            }
            let opts = open_options(&spec, &seen, &retiring);
            let unit = match Backstore::open(&spec, &opts) {
                Ok(store) => {
                    note_seen(&mut seen, &store);
                    Arc::new(LogicalUnit::new(Arc::new(store), ids.get(name)))
                }
                Err(e) if e.is_transient() => {
                    Arc::new(LogicalUnit::offline(&spec, ids.get(name), e.to_string()))
                }
                Err(e) => return Err(e.into()),
            };
            created.push(name.clone());
            units.insert(name.clone(), (spec, unit));
        }
        ids.save().map_err(state_err)?;

        let mut targets = BTreeMap::new();
        for (iqn, t) in &c.targets {
            let mut luns = BTreeMap::new();
            for (i, l) in t.luns.iter().enumerate() {
                let n = l.lun.unwrap_or(i as u64);
                luns.insert(n, units[&l.backstore].1.clone());
            }
            let mut acls = HashMap::new();
            for (init, a) in &t.acls {
                let map: LunMap = if a.mapped_luns.is_empty() {
                    luns.iter()
                        .map(|(n, u)| MappedLun {
                            lun: *n,
                            unit: u.clone(),
                            read_only: false,
                        })
                        .collect()
                } else {
                    let mut m: LunMap = a
                        .mapped_luns
                        .iter()
                        .filter_map(|ml| {
                            luns.get(&ml.target_lun.unwrap_or(ml.lun))
                                .map(|u| MappedLun {
                                    lun: ml.lun,
                                    unit: u.clone(),
                                    read_only: ml.read_only,
                                })
                        })
                        .collect();
                    m.sort_by_key(|ml| ml.lun);
                    m
                };
                acls.insert(
                    init.clone(),
                    Acl {
                        luns: map,
                        auth: auth(&a.chap, &a.mutual_chap)?,
                        networks: a.allowed_networks.clone(),
                    },
                );
            }
            targets.insert(
                iqn.clone(),
                Target {
                    name: iqn.clone(),
                    tpg: t.tpg,
                    luns,
                    demo_mode: t.demo_mode,
                    auth: auth(&t.auth.chap, &t.auth.mutual_chap)?,
                    networks: t.allowed_networks.clone(),
                    acls,
                },
            );
        }
        for (name, (_, unit)) in &units {
            let exports: Vec<String> = targets
                .values()
                .flat_map(|t: &Target| {
                    t.luns
                        .iter()
                        .filter(|(_, u)| Arc::ptr_eq(u, unit))
                        .map(|(n, _)| format!("{} LUN {n}", t.name))
                })
                .collect();
            if exports.is_empty() {
                tracing::debug!(backstore = %name, "backstore exported by no LUN");
            }
            unit.health.set_exports(exports.join(", "));
            if created.contains(name) {
                unit.health.announce();
            }
        }
        Ok(Registry {
            config: c.clone(),
            units,
            targets,
            discovery: auth(&c.discovery.chap, &c.discovery.mutual_chap)?,
            offer: offer(c),
        })
    }

    /// Re-reads the size of every online backstore (files extended, LVM volumes
    /// lvextended outside the daemon) and announces the units whose capacity changed; a
    /// backstore whose file or device vanished (deleted, replaced, removed) goes offline.
    pub fn refresh_sizes(&self) {
        for (name, (_, unit)) in &self.units {
            let Some(store) = unit.backstore() else {
                continue;
            };
            if let Err(reason) = store.check_present() {
                unit.set_offline_if(&store, &reason);
                continue;
            }
            let before = store.size();
            match store.refresh_size() {
                Ok(after) if after != before => {
                    tracing::info!(backstore = %name, before, after, "backstore size changed");
                    unit.capacity_changed();
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(backstore = %name, error = %e, "cannot read backstore size")
                }
            }
        }
    }

    /// Names of the backstores that are offline now.
    pub fn offline(&self) -> Vec<String> {
        self.units
            .iter()
            .filter(|(_, (_, u))| u.backstore().is_none())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Tries to open the offline backstore `name` again; on success its unit is online
    /// (NOT READY TO READY CHANGE for every initiator). Returns whether it is online.
    pub fn reopen(&self, name: &str) -> bool {
        let Some((spec, unit)) = self.units.get(name) else {
            return false;
        };
        if unit.backstore().is_some() {
            return true;
        }
        let seen = SeenFiles::open(&self.config.daemon.state_dir);
        let opts = match &seen {
            Ok(s) => open_options(spec, s, &[]),
            Err(_) => OpenOptions {
                may_create: false,
                share_with: Vec::new(),
            },
        };
        match Backstore::open(spec, &opts) {
            Ok(store) => {
                if let Ok(mut s) = seen {
                    note_seen(&mut s, &store);
                }
                unit.set_online(Arc::new(store));
                true
            }
            Err(e) => {
                let reason = e.to_string();
                if unit.offline_reason().as_deref() != Some(reason.as_str()) {
                    unit.set_offline(&reason);
                }
                false
            }
        }
    }

    /// The LUN map `initiator` sees on `target` (None when it may not log in).
    pub fn lun_map(&self, target: &str, initiator: &str) -> Option<LunMap> {
        let t = self.targets.get(target)?;
        if let Some(acl) = t.acls.get(initiator) {
            return Some(acl.luns.clone());
        }
        t.demo_mode.then(|| {
            t.luns
                .iter()
                .map(|(n, u)| MappedLun {
                    lun: *n,
                    unit: u.clone(),
                    read_only: false,
                })
                .collect()
        })
    }

    /// Targets `initiator` at `peer` may log in to, with their portal group tags.
    pub fn visible_targets(&self, initiator: &str, peer: IpAddr) -> Vec<(&str, u16)> {
        self.targets
            .values()
            .filter(|t| policy::admits(t, initiator, peer).is_ok())
            .map(|t| (t.name.as_str(), t.tpg))
            .collect()
    }
}

/// How to open `spec`: a fileio file seen before is not created again.
fn open_options(spec: &BackstoreSpec, seen: &SeenFiles, retiring: &[String]) -> OpenOptions {
    let seen_before = spec.kind == BackstoreKind::Fileio
        && spec.path.as_deref().is_some_and(|p| seen.contains(p));
    OpenOptions {
        may_create: !seen_before,
        share_with: retiring.to_vec(),
    }
}

fn note_seen(seen: &mut SeenFiles, store: &Backstore) {
    if store.kind() == BackstoreKind::Fileio
        && let Some(p) = store.path()
        && let Err(e) = seen.add(p)
    {
        tracing::warn!(backstore = %store.name(), error = %e, "cannot record the file in the state dir");
    }
}

/// Creates the parent directory of a path if needed (for sockets and state files).
pub fn ensure_parent(p: &Path) -> std::io::Result<()> {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => std::fs::create_dir_all(d),
        _ => Ok(()),
    }
}
