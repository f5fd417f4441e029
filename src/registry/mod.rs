//! The running model: backstores opened, targets with their LUN maps and ACLs.
//!
//! A [`Registry`] is an immutable snapshot built from a [`ValidatedConfig`]; a reload builds
//! a new one and swaps it in whole. A backstore that stays the same disk (same name, kind,
//! path and identity) keeps its [`LogicalUnit`] across the reload, so sessions keep their
//! LUNs and the unit keeps its reservations, registrations and unit attentions; only its
//! open backstore is replaced when the spec changed otherwise (write cache, block size),
//! or the file grown when only the size did.
//!
//! One backstore may be exported by several targets (never twice by one): the targets then
//! share its logical unit and reservations, each through its own target port with its own
//! relative target port identifier.

mod identity;
mod policy;
mod pr_store;
mod seen;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;

pub use self::identity::{IdentityStore, Pins};
use self::seen::SeenFiles;
use crate::backstore::{
    Backstore, BackstoreError, BackstoreKind, BackstoreSpec, CacheMode, OpenOptions,
};
use crate::config::{BackstoreConfig, ChapConfig, Config, ValidatedConfig};
use crate::iscsi::login::{ChapSecret, Offer};
use crate::scsi::{LogicalUnit, LunMap, MappedLun, target_port_name};

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
    /// Relative target port identifier of each portal group's target port (by tag),
    /// unique among all target ports (the group's tag when that is free; kept across
    /// reloads).
    pub rtpis: BTreeMap<u16, u16>,
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

fn spec_of(name: &str, b: &BackstoreConfig) -> BackstoreSpec {
    BackstoreSpec {
        name: name.to_string(),
        kind: b.kind,
        path: b.path.clone(),
        size: b.size.map(|s| s.0),
        block_size: b.block_size,
        write_cache: b.write_cache,
        cache: b.cache.unwrap_or(CacheMode::default_for(b.kind)),
    }
}

fn pins_of(b: &BackstoreConfig) -> Pins<'_> {
    Pins {
        serial: b.serial.as_deref(),
        wwn: b.wwn.as_deref(),
        vendor: b.vendor.as_deref(),
        product: b.product.as_deref(),
    }
}

/// Whether `new` still describes the disk `old` opened: same kind and path (for a ramdisk,
/// whose contents are the disk, everything but the size).
fn same_disk(old: &BackstoreSpec, new: &BackstoreSpec) -> bool {
    if old.kind != new.kind || old.path != new.path {
        return false;
    }
    old.kind != BackstoreKind::Ramdisk
        || BackstoreSpec {
            size: old.size,
            ..new.clone()
        } == *old
}

/// What a reload does to the backstore of a unit it keeps.
enum Reopen {
    /// Nothing (the same spec, or only grown in place).
    Keep,
    /// Put this freshly opened backstore under the unit once the whole registry is built.
    Online(Arc<Backstore>),
    /// The new spec cannot be opened now (the device is away): the unit goes offline
    /// with this reason, and comes back by itself when it can be opened.
    Offline(String),
}

/// What a reload does to a unit it keeps: nothing, grow the file in place (only the size
/// changed), or a reopened backstore (sharing the claim on the file or device that the
/// unit's current one holds under the same name).
fn reopen(
    name: &str,
    old: &BackstoreSpec,
    spec: &BackstoreSpec,
    unit: &LogicalUnit,
    opts: &OpenOptions,
) -> Result<Reopen, RegistryError> {
    if old == spec {
        return Ok(Reopen::Keep);
    }
    let resized = BackstoreSpec {
        size: old.size,
        ..spec.clone()
    };
    if *old != resized {
        return match Backstore::open(spec, opts) {
            Ok(store) => Ok(Reopen::Online(Arc::new(store))),
            Err(e) if e.is_transient() => Ok(Reopen::Offline(e.to_string())),
            Err(e) => Err(e.into()),
        };
    }
    // Only the size changed: grow in place (online resize), and every initiator gets
    // CAPACITY DATA HAS CHANGED. An offline unit gets the new size when it is opened.
    if spec.size < old.size {
        tracing::warn!(backstore = %name, "backstores are never shrunk online; keeping the current size");
    }
    if let Some(store) = unit.backstore() {
        let before = store.size();
        let after = store
            .grow(spec.size.unwrap_or(0))
            .map_err(|source| BackstoreError::Open {
                name: name.to_string(),
                source,
            })?;
        if after != before {
            tracing::info!(backstore = %name, before, after, "backstore grown");
            unit.capacity_changed();
        }
    }
    Ok(Reopen::Keep)
}

/// Relative target port identifiers, one per target port (a target's portal group),
/// unique: what the running registry gave a port stays; a new port gets its portal group
/// tag if free, else the lowest free identifier (0 is reserved).
fn assign_rtpis(c: &Config, previous: Option<&Registry>) -> BTreeMap<(String, u16), u16> {
    let ports: Vec<(String, u16)> = c
        .targets
        .iter()
        .flat_map(|(iqn, t)| {
            t.groups(&c.daemon.portals)
                .into_iter()
                .map(move |(tag, _, _)| (iqn.clone(), tag))
        })
        .collect();
    let mut taken = BTreeSet::new();
    let mut out = BTreeMap::new();
    if let Some(p) = previous {
        for (iqn, tag) in &ports {
            if let Some(&id) = p.targets.get(iqn).and_then(|t| t.rtpis.get(tag))
                && taken.insert(id)
            {
                out.insert((iqn.clone(), *tag), id);
            }
        }
    }
    for (iqn, tag) in ports {
        if out.contains_key(&(iqn.clone(), tag)) {
            continue;
        }
        let id = if tag != 0 && !taken.contains(&tag) {
            tag
        } else {
            (1..=u16::MAX).find(|i| !taken.contains(i)).unwrap_or(0)
        };
        taken.insert(id);
        out.insert((iqn, tag), id);
    }
    out
}

impl Registry {
    /// Builds a snapshot, keeping the logical units of `previous` that are the same disk.
    /// Nothing shared with `previous` changes unless the whole build succeeds (except a
    /// file grown for a new size). A backstore that cannot be opened for a reason that may
    /// pass (the device is not there yet) gives an offline unit instead of an error.
    pub fn build(
        v: &ValidatedConfig,
        previous: Option<&Registry>,
    ) -> Result<Registry, RegistryError> {
        let c = &v.config;
        let state_dir = &c.daemon.state_dir;
        let mut warnings = Vec::new();
        let state_err = |source| RegistryError::State {
            path: state_dir.display().to_string(),
            source,
        };
        let mut ids = IdentityStore::open(state_dir).map_err(state_err)?;
        let mut seen_files = SeenFiles::open(state_dir).map_err(state_err)?;
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
        let mut swaps = Vec::new();
        let mut created = Vec::new();
        let mut seen: HashMap<crate::scsi::Naa, &str> = HashMap::new();
        for (name, b) in &c.backstores {
            let spec = spec_of(name, b);
            let identity = ids
                .get(name, &pins_of(b))
                .map_err(|e| state_err(std::io::Error::other(e)))?;
            // A pin may equal another backstore's stored identity: never serve two disks
            // as one (multipath would merge them; their APTPL files would mix).
            if let Some(other) = seen.insert(identity.naa, name) {
                return Err(state_err(std::io::Error::other(format!(
                    "backstores {other} and {name} would both present {}; pin another wwn",
                    identity.naa
                ))));
            }
            let opts = open_options(&spec, &seen_files, &retiring);
            if let Some((old, unit)) = previous.and_then(|p| p.units.get(name)) {
                if same_disk(old, &spec) && *unit.identity() == identity {
                    match reopen(name, old, &spec, unit, &opts)? {
                        Reopen::Keep => {}
                        r => swaps.push((name, unit.clone(), r)),
                    }
                    units.insert(name.clone(), (spec, unit.clone()));
                    continue;
                }
            }
            let unit = match Backstore::open(&spec, &opts) {
                Ok(store) => {
                    note_seen(&mut seen_files, &store);
                    Arc::new(LogicalUnit::new(Arc::new(store), identity))
                }
                Err(e) if e.is_transient() => {
                    Arc::new(LogicalUnit::offline(&spec, identity, e.to_string()))
                }
                Err(e) => return Err(e.into()),
            };
            pr_store::attach(&unit, state_dir, name, &spec)?;
            created.push(name.clone());
            units.insert(name.clone(), (spec, unit));
        }

        let rtpis = assign_rtpis(c, previous);
        let mut ports: HashMap<&str, Vec<(String, u16)>> = HashMap::new();
        let mut targets = BTreeMap::new();
        for (iqn, t) in &c.targets {
            // The target's ports: one per portal group, each with its identifier.
            let tags: Vec<(u16, u16)> = t
                .groups(&c.daemon.portals)
                .into_iter()
                .map(|(tag, _, _)| (tag, rtpis.get(&(iqn.clone(), tag)).copied().unwrap_or(tag)))
                .collect();
            let mut luns = BTreeMap::new();
            for (i, l) in t.luns.iter().enumerate() {
                let n = l.lun.unwrap_or(i as u64);
                luns.insert(n, units[&l.backstore].1.clone());
                let e = ports.entry(l.backstore.as_str()).or_default();
                for (tag, rtpi) in &tags {
                    e.push((target_port_name(iqn, *tag), *rtpi));
                }
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
                    rtpis: tags.iter().map(|(tag, rtpi)| (*tag, *rtpi)).collect(),
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
        ids.save().map_err(state_err)?;

        // Everything that can fail has: now the units shared with the running registry
        // change (a reopened backstore raises its own unit attentions: ready again,
        // capacity changed).
        for (name, unit, r) in swaps {
            match r {
                Reopen::Online(store) => {
                    note_seen(&mut seen_files, &store);
                    unit.set_online(store);
                    tracing::info!(backstore = %name, "backstore reopened; the logical unit, its reservations and unit attentions are kept");
                }
                Reopen::Offline(reason) => unit.set_offline(&reason),
                Reopen::Keep => {}
            }
        }
        for (name, (_, unit)) in &units {
            unit.reservations
                .set_target_ports(ports.remove(name.as_str()).unwrap_or_default());
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
            discovery,
            offer: offer(c),
            warnings,
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

#[cfg(test)]
mod tests;
