//! The running model: backstores opened, targets with their LUN maps and ACLs.
//!
//! A [`Registry`] is an immutable snapshot built from a [`ValidatedConfig`]; a reload builds
//! a new one (reusing the open backstores whose spec did not change, so sessions keep their
//! logical units) and swaps it in whole.

mod identity;
mod policy;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

pub use self::identity::IdentityStore;
use crate::backstore::{Backstore, BackstoreSpec};
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

/// One target portal group of a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalGroup {
    /// Target portal group tag.
    pub tag: u16,
    /// Its portals (entries of `daemon.portals`).
    pub portals: Vec<SocketAddr>,
    /// Whether it accepts logins.
    pub enabled: bool,
}

/// One target.
#[derive(Debug, Clone)]
pub struct Target {
    /// IQN.
    pub name: String,
    /// Tag of the first portal group (what a login that names no portal gets).
    pub tpg: u16,
    /// Portal groups (one, on every daemon portal, unless configured).
    pub groups: Vec<PortalGroup>,
    /// The groups are configured (`portal_groups`), so a login's portal picks one; else
    /// the one group answers on every portal.
    pub explicit_groups: bool,
    /// Demo mode serves every LUN read-only.
    pub demo_read_only: bool,
    /// This target's negotiation offer, when it differs from the daemon's.
    pub offer: Option<Offer>,
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
    /// What building it noticed that the admin should hear about (a secret file readable
    /// by others, a secret of an unusual length), one sentence each.
    pub warnings: Vec<String>,
}

/// Reads a CHAP secret, noting in `warnings` what the admin should fix.
pub fn read_secret(
    c: &ChapConfig,
    warnings: &mut Vec<String>,
) -> Result<ChapSecret, RegistryError> {
    let err = |reason: String| RegistryError::Secret {
        path: c.password_file.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(&c.password_file).map_err(|e| err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        let w = format!(
            "CHAP secret file {} is readable by group or others; chmod 600 it",
            c.password_file.display()
        );
        if !warnings.contains(&w) {
            warnings.push(w);
        }
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
        let w = format!(
            "CHAP secret in {} is {} bytes; secrets outside 12..16 bytes are refused by \
             some initiators (MD5 interop)",
            c.password_file.display(),
            secret.len()
        );
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    Ok(ChapSecret {
        user: c.user.clone(),
        secret: secret.to_vec(),
    })
}

/// Reads the CHAP pair of discovery, a target or an ACL.
pub fn auth(
    chap: &Option<ChapConfig>,
    mutual: &Option<ChapConfig>,
    warnings: &mut Vec<String>,
) -> Result<Auth, RegistryError> {
    let a = Auth {
        chap: chap
            .as_ref()
            .map(|c| read_secret(c, warnings))
            .transpose()?,
        mutual: mutual
            .as_ref()
            .map(|c| read_secret(c, warnings))
            .transpose()?,
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
    offer_of(&c.iscsi)
}

/// Converts negotiation limits into an offer.
pub fn offer_of(l: &crate::config::IscsiLimits) -> Offer {
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
        let mut warnings = Vec::new();
        let state_err = |source| RegistryError::State {
            path: c.daemon.state_dir.display().to_string(),
            source,
        };
        let mut ids = IdentityStore::open(&c.daemon.state_dir).map_err(state_err)?;
        let mut units = BTreeMap::new();
        for (name, b) in &c.backstores {
            let spec = BackstoreSpec {
                name: name.clone(),
                kind: b.kind,
                path: b.path.clone(),
                size: b.size.map(|s| s.0),
                block_size: b.block_size,
                write_cache: b.write_cache,
            };
            if let Some((old, unit)) = previous.and_then(|p| p.units.get(name)) {
                if *old == spec {
                    units.insert(name.clone(), (spec, unit.clone()));
                    continue;
                }
                // Only the size changed: grow in place (online resize), same unit, and
                // every initiator gets CAPACITY DATA HAS CHANGED.
                let resized = BackstoreSpec {
                    size: old.size,
                    ..spec.clone()
                };
                if *old == resized {
                    if spec.size < old.size {
                        tracing::warn!(backstore = %name, "backstores are never shrunk online; keeping the current size");
                    }
                    let store = unit.backstore();
                    let before = store.size();
                    let after = store.grow(spec.size.unwrap_or(0)).map_err(|source| {
                        crate::backstore::BackstoreError::Open {
                            name: name.clone(),
                            source,
                        }
                    })?;
                    if after != before {
                        tracing::info!(backstore = %name, before, after, "backstore grown");
                        unit.capacity_changed();
                    }
                    units.insert(name.clone(), (spec, unit.clone()));
                    continue;
                }
            }
            let store = Arc::new(Backstore::open(&spec)?);
            let unit = Arc::new(LogicalUnit::new(store, ids.get(name)));
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
                        auth: auth(&a.chap, &a.mutual_chap, &mut warnings)?,
                        networks: a.allowed_networks.clone(),
                    },
                );
            }
            let groups: Vec<PortalGroup> = t
                .groups(&c.daemon.portals)
                .into_iter()
                .map(|(tag, portals, enabled)| PortalGroup {
                    tag,
                    portals,
                    enabled,
                })
                .collect();
            targets.insert(
                iqn.clone(),
                Target {
                    name: iqn.clone(),
                    tpg: groups.first().map_or(t.tpg, |g| g.tag),
                    groups,
                    explicit_groups: !t.portal_groups.is_empty(),
                    demo_read_only: t.demo_mode_read_only,
                    offer: (!t.iscsi.is_empty()).then(|| offer_of(&t.iscsi.over(&c.iscsi))),
                    luns,
                    demo_mode: t.demo_mode,
                    auth: auth(&t.auth.chap, &t.auth.mutual_chap, &mut warnings)?,
                    networks: t.allowed_networks.clone(),
                    acls,
                },
            );
        }
        let discovery = auth(&c.discovery.chap, &c.discovery.mutual_chap, &mut warnings)?;
        Ok(Registry {
            config: c.clone(),
            units,
            targets,
            discovery,
            offer: offer(c),
            warnings,
        })
    }

    /// Re-reads the size of every backstore (files extended, LVM volumes lvextended
    /// outside the daemon) and announces the units whose capacity changed.
    pub fn refresh_sizes(&self) {
        for (name, (_, unit)) in &self.units {
            let store = unit.backstore();
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
                    read_only: t.demo_read_only,
                })
                .collect()
        })
    }

    /// The portal group of `target` a connection accepted at `local` belongs to.
    pub fn group_at<'t>(&self, target: &'t Target, local: SocketAddr) -> Option<&'t PortalGroup> {
        if !target.explicit_groups {
            return target.groups.first();
        }
        let portals = &self.config.daemon.portals;
        let portal = crate::config::portals::portal_of(portals, local)?;
        target.groups.iter().find(|g| g.portals.contains(&portal))
    }

    /// Targets `initiator` at `peer` may log in to, with the portals to report for each
    /// (`(portal, tag)`; a wildcard portal is reported as `local`, the address the
    /// connection came in on). Disabled targets and groups are left out.
    pub fn visible_targets(
        &self,
        initiator: &str,
        peer: IpAddr,
        local: SocketAddr,
    ) -> Vec<(&str, Vec<(SocketAddr, u16)>)> {
        let daemon = &self.config.daemon.portals;
        self.targets
            .values()
            .filter(|t| policy::admits(t, initiator, peer).is_ok())
            .filter_map(|t| {
                let mut at = Vec::new();
                for g in t.groups.iter().filter(|g| g.enabled) {
                    if !t.explicit_groups {
                        // The one implicit group: where this connection came in.
                        at.push((local, g.tag));
                        continue;
                    }
                    for p in &g.portals {
                        let addr = if p.ip().is_unspecified() {
                            crate::config::portals::serves(daemon, p, local).then_some(local)
                        } else {
                            Some(*p)
                        };
                        if let Some(a) = addr.filter(|a| !at.iter().any(|(x, _)| x == a)) {
                            at.push((a, g.tag));
                        }
                    }
                }
                (!at.is_empty()).then_some((t.name.as_str(), at))
            })
            .collect()
    }
}

/// Creates the parent directory of a path if needed (for sockets and state files).
pub fn ensure_parent(p: &Path) -> std::io::Result<()> {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => std::fs::create_dir_all(d),
        _ => Ok(()),
    }
}
