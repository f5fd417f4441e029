//! `import-lio`: converts targetcli's `saveconfig.json` (every shape rtslib-fb has
//! written since 2011) into a [`Config`], and says everything it did not carry.
//!
//! - Identity: each storage object keeps the unit serial, NAA designator, vendor and
//!   product LIO presented ([`identity`]), pinned with `serial`/`wwn`/`vendor`/`product`.
//! - TPGs: empty TPGs never win over the one with LUNs, ACLs and portals; TPGs with the
//!   same LUNs and ACLs become portal groups of one target; any other TPG is reported.
//! - Access is never widened silently: CHAP stays required where LIO required it
//!   (`authentication`, `AuthMethod`, the per-ACL `authentication` attribute), a disabled
//!   TPG stays disabled, write protection stays, and what would give initiators more than
//!   LIO did (demo mode reachable from the network included) is listed in
//!   [`Import::widening`], which stops the import unless allowed.
//! - Secrets: LIO keeps CHAP passwords in the JSON in clear; each goes to its own file
//!   (mode 0600), referenced by `password_file`. A directory is needed only when a secret
//!   is carried over.

pub mod identity;
mod json;
mod tpg;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backstore::BackstoreKind;
use crate::config::{BackstoreConfig, ChapConfig, Config, PortalGroupConfig, Size};
use json::{arr, b, i, s, u};

/// A CHAP secret to be written to `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Where it goes (under the secrets directory).
    pub path: PathBuf,
    /// The secret itself.
    pub value: String,
    /// What it is for, for the report.
    pub what: String,
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Import {
    /// The configuration.
    pub config: Config,
    /// Secrets to write (see [`write_secrets`]).
    pub secrets: Vec<Secret>,
    /// What could not be carried over (or was carried differently), one sentence each.
    pub warnings: Vec<String>,
    /// What would give initiators more access than LIO did, one sentence each (the import
    /// stops on these unless allowed).
    pub widening: Vec<String>,
}

/// What `import-lio` tells: everything not carried, everything that widens access.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Not carried over (or carried differently), one sentence each.
    pub not_carried: Vec<String>,
    /// Access that would be wider than under LIO.
    pub widening: Vec<String>,
    /// Warnings of the resulting configuration.
    pub warnings: Vec<String>,
    /// Secret files to be written: what, where.
    pub secrets: Vec<(String, PathBuf)>,
}

impl Report {
    /// The report of an import whose configuration validated with `warnings`.
    pub fn new(imp: &Import, warnings: &[String]) -> Self {
        Self {
            not_carried: imp.warnings.clone(),
            widening: imp.widening.clone(),
            warnings: warnings.to_vec(),
            secrets: imp
                .secrets
                .iter()
                .map(|s| (s.what.clone(), s.path.clone()))
                .collect(),
        }
    }

    /// As text, one line per item.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for w in &self.not_carried {
            out.push_str(&format!("not carried: {w}\n"));
        }
        for w in &self.widening {
            out.push_str(&format!("WIDENS ACCESS: {w}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for (what, p) in &self.secrets {
            out.push_str(&format!("secret: {what} -> {} (mode 0600)\n", p.display()));
        }
        if self.not_carried.is_empty() && self.widening.is_empty() {
            out.push_str("everything was carried over\n");
        }
        out
    }
}

/// Storage-object attributes whose non-default values change behaviour we do not offer.
const SO_ATTR_DEFAULTS: &[(&str, i64)] = &[
    ("emulate_3pc", 1),
    ("emulate_caw", 1),
    ("emulate_dpo", 1),
    ("emulate_fua_read", 1),
    ("emulate_fua_write", 1),
    ("emulate_pr", 1),
    ("emulate_rest_reord", 0),
    ("emulate_tas", 1),
    ("emulate_tpu", 0),
    ("emulate_tpws", 0),
    ("emulate_ua_intlck_ctrl", 0),
    ("enforce_pr_isids", 1),
    ("force_pr_aptpl", 0),
    ("pi_prot_type", 0),
    ("unmap_zeroes_data", 0),
];

/// Attributes that describe the device rather than configure it (not reported).
const SO_ATTR_DESCRIPTIVE: &[&str] = &[
    "block_size",
    "emulate_model_alias",
    "emulate_write_cache",
    "hw_block_size",
    "hw_max_sectors",
    "hw_pi_prot_type",
    "hw_queue_depth",
    "is_nonrot",
    "max_unmap_block_desc_count",
    "max_unmap_lba_count",
    "max_write_same_len",
    "optimal_sectors",
    "queue_depth",
    "unmap_granularity",
    "unmap_granularity_alignment",
    "alua_support",
    "pgr_support",
    "submit_type",
    "complete_type",
];

pub(crate) fn file_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The conversion's state: what it carried, what it reports.
pub(crate) struct Cx<'a> {
    secrets_dir: Option<&'a Path>,
    secrets: Vec<Secret>,
    warnings: Vec<String>,
    widening: Vec<String>,
}

impl Cx<'_> {
    pub(crate) fn warn(&mut self, m: impl Into<String>) {
        self.warnings.push(m.into());
    }

    pub(crate) fn widen(&mut self, m: impl Into<String>) {
        self.widening.push(m.into());
    }

    /// A CHAP pair from `obj` fields `{prefix}userid` / `{prefix}password`; the secret
    /// is queued for writing under `file`.
    fn chap(&mut self, obj: &Value, prefix: &str, file: &str, what: &str) -> Option<ChapConfig> {
        let user = s(obj, &format!("{prefix}userid"))?;
        let Some(password) = s(obj, &format!("{prefix}password")) else {
            self.warn(format!(
                "{what}: user {user:?} has no password; not imported"
            ));
            return None;
        };
        let dir = self.secrets_dir.unwrap_or(Path::new("/"));
        let path = dir.join(file_part(file));
        if !(12..=16).contains(&password.len()) {
            self.warn(format!(
                "{what}: the secret is {} bytes; 12 to 16 bytes is what every initiator \
                 accepts (Microsoft's needs it)",
                password.len()
            ));
        }
        self.secrets.push(Secret {
            path: path.clone(),
            value: password.to_owned(),
            what: what.to_owned(),
        });
        Some(ChapConfig {
            user: user.to_owned(),
            password_file: path,
        })
    }

    /// One-way and mutual CHAP of `obj` (keys `{prefix}userid`, `{prefix}mutual_userid`).
    pub(crate) fn pair(
        &mut self,
        obj: &Value,
        prefix: &str,
        file: &str,
        what: &str,
    ) -> (Option<ChapConfig>, Option<ChapConfig>) {
        let chap = self.chap(obj, prefix, &format!("{file}.chap"), what);
        let mutual = self.chap(
            obj,
            &format!("{prefix}mutual_"),
            &format!("{file}.mutual_chap"),
            &format!("{what} (mutual)"),
        );
        if mutual.is_some() && chap.is_none() {
            self.forget(&format!("{what} (mutual)"));
            self.warn(format!(
                "{what}: mutual CHAP without one-way CHAP; mutual dropped"
            ));
            return (None, None);
        }
        (chap, mutual)
    }

    /// Drops the queued secrets of `what` (credentials that are not carried after all).
    pub(crate) fn forget(&mut self, what: &str) {
        self.secrets.retain(|x| !x.what.starts_with(what));
    }
}

/// Converts the text of a `saveconfig.json`. `secrets_dir` must be absolute; it is
/// required when a CHAP secret is carried over.
pub fn convert(json: &str, secrets_dir: Option<&Path>) -> Result<Import, String> {
    let root: Value =
        serde_json::from_str(json).map_err(|e| format!("not a saveconfig.json: {e}"))?;
    if !root.is_object() {
        return Err("not a saveconfig.json: the top level is not an object".into());
    }
    if let Some(d) = secrets_dir
        && !d.is_absolute()
    {
        return Err(format!("--secrets-dir {} must be absolute", d.display()));
    }
    let mut cx = Cx {
        secrets_dir,
        secrets: Vec::new(),
        warnings: Vec::new(),
        widening: Vec::new(),
    };
    let mut config = Config::default();
    config.daemon.portals.clear();

    let objects = storage_objects(&root, &mut cx, &mut config);
    let targets = tpg::targets(&root, &objects, &mut cx);
    place_portals(&mut cx, &mut config, targets);
    discovery(&root, &mut cx, &mut config);

    // Demo-mode targets reachable from the network on their own portals (the same rule
    // as the validator's).
    let demo: Vec<String> = config
        .targets
        .iter()
        .filter(|(_, t)| t.demo_mode && !t.network_portals(&config.daemon.portals).is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    if !demo.is_empty() {
        config.daemon.allow_demo_mode_on_network = true;
        cx.widen(format!(
            "demo mode (generate_node_acls=1) on a network portal for {}: any initiator \
             that reaches the portal can log in, as under LIO; rustiscsi asks for \
             daemon.allow_demo_mode_on_network = true to do that",
            demo.join(", ")
        ));
    }
    if config.daemon.portals.is_empty() {
        config.daemon.portals = crate::config::Daemon::default().portals;
        if !config.targets.is_empty() {
            cx.warn(
                "no portal in the file: the default portal 127.0.0.1:3260 is used (add \
                 the storage network's address)",
            );
        }
    }
    if !cx.secrets.is_empty() && secrets_dir.is_none() {
        return Err(format!(
            "the configuration carries {} CHAP secret(s); pass --secrets-dir DIR (absolute) \
             to write each to its own file (mode 0600), referenced by password_file",
            cx.secrets.len()
        ));
    }
    Ok(Import {
        config,
        secrets: cx.secrets,
        warnings: cx.warnings,
        widening: cx.widening,
    })
}

/// One imported storage object.
#[derive(Debug, Clone)]
pub(crate) struct Object {
    /// Our backstore name.
    pub name: String,
    /// LIO opened it read-only (`readonly` of a block object).
    pub read_only: bool,
    /// Its ALUA target port groups (`alua_tpgs`, since 2017): name → `alua_access_state`.
    pub alua: BTreeMap<String, i64>,
}

/// Storage objects, from the flat `storage_objects` list or (before 2012) `backstores`
/// with nested `storage_objects`; returns `/backstores/<plugin>/<name>` → object.
fn storage_objects(root: &Value, cx: &mut Cx, config: &mut Config) -> BTreeMap<String, Object> {
    let mut list: Vec<(String, Value)> = arr(root, "storage_objects")
        .iter()
        .map(|so| (s(so, "plugin").unwrap_or("?").to_owned(), so.clone()))
        .collect();
    for bs in arr(root, "backstores") {
        let plugin = s(bs, "plugin").unwrap_or("?");
        for so in arr(bs, "storage_objects") {
            list.push((plugin.to_owned(), so.clone()));
        }
    }
    let mut out = BTreeMap::new();
    for (plugin, so) in &list {
        let plugin = plugin.as_str();
        let Some(name) = s(so, "name") else {
            cx.warn(format!("a {plugin} storage object has no name; skipped"));
            continue;
        };
        let kind = match plugin {
            "block" | "iblock" => BackstoreKind::Block,
            "fileio" => BackstoreKind::Fileio,
            "ramdisk" | "rd_mcp" | "rd_dr" => BackstoreKind::Ramdisk,
            other => {
                let handler = s(so, "config")
                    .map(|c| format!(" (handler config {c:?})"))
                    .unwrap_or_default();
                cx.warn(format!(
                    "storage object {other}/{name}{handler}: the {other} backstore is not \
                     supported; skipped (LUNs on it are dropped)"
                ));
                continue;
            }
        };
        let mut ours = name.to_owned();
        if config.backstores.contains_key(&ours) {
            ours = format!("{plugin}_{name}");
            cx.warn(format!(
                "storage object {plugin}/{name}: another backstore is named {name}; \
                 imported as {ours}"
            ));
        }
        if let Err(m) = crate::config::names::check_backstore_name(&ours) {
            let fixed = file_part(&ours);
            cx.warn(format!(
                "storage object {plugin}/{name}: {m}; imported as {fixed}"
            ));
            ours = fixed;
        }
        let attrs = so.get("attributes").cloned().unwrap_or(Value::Null);
        let mut block_size = u(&attrs, "block_size").map_or(512, |v| v as u32);
        if kind == BackstoreKind::Block {
            block_size = 512; // the device's own is used
        } else if block_size != 512 && block_size != 4096 {
            cx.warn(format!(
                "storage object {plugin}/{name}: block_size {block_size} is not supported \
                 (512 or 4096); using 512, which changes the disk's geometry"
            ));
            block_size = 512;
        }
        // `buffered_mode` is what fileio objects wrote before `write_back` (2011-12 to
        // 2012-08, rtslib-fb 2.1.fb1 to fb19): the same setting under its old name.
        let write_cache = match (so.get("write_back"), so.get("buffered_mode")) {
            (Some(v), _) => v.as_bool().unwrap_or_else(|| b(so, "write_back")),
            (None, Some(v)) => v.as_bool().unwrap_or_else(|| b(so, "buffered_mode")),
            (None, None) => b(&attrs, "emulate_write_cache"),
        };
        let size = match kind {
            BackstoreKind::Block => None,
            _ => u(so, "size").filter(|&n| n > 0).map(Size),
        };
        let path = match kind {
            BackstoreKind::Ramdisk => None,
            _ => s(so, "dev").map(PathBuf::from),
        };
        let read_only = b(so, "readonly");
        if b(so, "nullio") {
            cx.warn(format!(
                "storage object {plugin}/{name}: a nullio ramdisk (discards writes, reads \
                 zeros) becomes a real ramdisk"
            ));
        }
        if b(so, "aio") {
            cx.warn(format!(
                "storage object {plugin}/{name}: aio=true is not carried (rustiscsid does \
                 its own I/O scheduling)"
            ));
        }
        if let Some(obj) = attrs.as_object() {
            for (k, v) in obj {
                if SO_ATTR_DESCRIPTIVE.contains(&k.as_str()) {
                    continue;
                }
                match SO_ATTR_DEFAULTS.iter().find(|(n, _)| n == k) {
                    Some((_, def)) if i(&attrs, k) == Some(*def) => {}
                    _ => cx.warn(format!(
                        "storage object {plugin}/{name}: attribute {k} = {v} is not carried over"
                    )),
                }
            }
        }
        let mut alua = BTreeMap::new();
        for g in arr(so, "alua_tpgs") {
            let gname = s(g, "name").unwrap_or("?");
            alua.insert(gname.to_owned(), i(g, "alua_access_state").unwrap_or(0));
            if gname != "default_tg_pt_gp" {
                cx.warn(format!(
                    "storage object {plugin}/{name}: ALUA group {gname} is not supported; skipped"
                ));
            }
        }
        // The identity LIO presented, pinned.
        let (serial, wwn, vendor, product) = match s(so, "wwn") {
            Some(serial) => {
                let id = identity::lio_identity(
                    plugin,
                    name,
                    serial,
                    i(&attrs, "emulate_model_alias") == Some(1),
                );
                (
                    Some(id.serial),
                    Some(id.wwn),
                    Some(id.vendor),
                    Some(id.product),
                )
            }
            None => {
                cx.warn(format!(
                    "storage object {plugin}/{name}: the file holds no unit serial (wwn); \
                     the disk gets a new identity (initiators and multipath see a new disk)"
                ));
                (None, None, None, None)
            }
        };
        out.insert(
            format!("/backstores/{plugin}/{name}"),
            Object {
                name: ours.clone(),
                read_only,
                alua: alua.clone(),
            },
        );
        // rtslib names the plugin of ramdisks "ramdisk" in paths whatever the backstore.
        if plugin == "rd_mcp" {
            out.insert(
                format!("/backstores/ramdisk/{name}"),
                Object {
                    name: ours.clone(),
                    read_only,
                    alua,
                },
            );
        }
        config.backstores.insert(
            ours,
            BackstoreConfig {
                kind,
                path,
                size,
                block_size,
                write_cache,
                cache: None,
                serial,
                wwn,
                vendor,
                product,
            },
        );
    }
    out
}

/// Daemon portals from every kept portal group; a specific address covered by a wildcard
/// of its port cannot be bound beside it here, so it is folded into the wildcard (which
/// makes its target reachable on more addresses: reported as widening).
fn place_portals(cx: &mut Cx, config: &mut Config, targets: Vec<tpg::Imported>) {
    tpg::carry_daemon_wide(cx, config, &targets);
    let all: BTreeSet<SocketAddr> = targets
        .iter()
        .flat_map(|t| t.groups.iter().flat_map(|g| g.portals.iter().copied()))
        .collect();
    let all: Vec<SocketAddr> = all.into_iter().collect();
    let mut fold: BTreeMap<SocketAddr, SocketAddr> = BTreeMap::new();
    for a in &all {
        if let Some(w) = all
            .iter()
            .find(|w| crate::config::portals::overlaps(&all, a, w))
        {
            fold.insert(*a, *w);
        }
    }
    let listed: Vec<SocketAddr> = all
        .iter()
        .filter(|a| !fold.contains_key(a))
        .copied()
        .collect();
    config.daemon.portals = listed.clone();
    for mut t in targets {
        for g in &mut t.groups {
            let mut ps: Vec<SocketAddr> = Vec::new();
            for p in &g.portals {
                let q = match fold.get(p) {
                    Some(w) => {
                        cx.widen(format!(
                            "target {}: portal {p} is covered by the wildcard portal {w} of \
                             another target; here both listen on {w}, so this target is \
                             reachable on every address of port {}",
                            t.name,
                            w.port()
                        ));
                        *w
                    }
                    None => *p,
                };
                if !ps.contains(&q) {
                    ps.push(q);
                }
            }
            g.portals = ps;
        }
        // One group on every portal: the implicit group (tpg = tag); else explicit.
        let single = t.groups.len() == 1 && {
            let mut a = t.groups[0].portals.clone();
            a.sort();
            a == listed
        };
        if single {
            t.config.tpg = t.groups[0].tag;
            t.config.enabled = t.groups[0].enabled;
        } else if t.groups.iter().any(|g| !g.portals.is_empty()) {
            t.config.portal_groups = t
                .groups
                .iter()
                .filter(|g| !g.portals.is_empty())
                .map(|g| PortalGroupConfig {
                    tag: g.tag,
                    portals: g.portals.clone(),
                    enabled: g.enabled,
                })
                .collect();
        } else {
            // No portal at all: LIO served it nowhere; keep it unreachable.
            t.config.tpg = t.groups.first().map_or(1, |g| g.tag);
            t.config.enabled = false;
            cx.warn(format!(
                "target {}: no portal in LIO, so no initiator could reach it; imported \
                 disabled (enabled = false)",
                t.name
            ));
        }
        config.targets.insert(t.name.clone(), t.config);
    }
}

/// Discovery CHAP: `fabric_modules[name=iscsi]` (rtslib-fb), or `discovery_auth`.
fn discovery(root: &Value, cx: &mut Cx, config: &mut Config) {
    let fm = arr(root, "fabric_modules")
        .iter()
        .find(|f| s(f, "name") == Some("iscsi"))
        .cloned();
    let disc = match (fm, root.get("discovery_auth")) {
        (Some(f), _) => Some((b(&f, "discovery_enable_auth"), f, "discovery_")),
        (None, Some(d)) => Some((b(d, "enable"), d.clone(), "")),
        _ => None,
    };
    for f in arr(root, "fabric_modules") {
        if let Some(n) = s(f, "name")
            && n != "iscsi"
        {
            cx.warn(format!("fabric module {n}: not iSCSI; skipped"));
        }
    }
    if let Some((enabled, obj, prefix)) = disc {
        let has = s(&obj, &format!("{prefix}userid")).is_some();
        if enabled {
            let (chap, mutual) = cx.pair(&obj, prefix, "discovery", "discovery CHAP");
            if chap.is_none() {
                cx.widen(
                    "discovery authentication is enabled in LIO without usable credentials \
                     (no discovery session could log in); here discovery would be open",
                );
            }
            config.discovery.chap = chap;
            config.discovery.mutual_chap = mutual;
        } else if has {
            cx.warn("discovery CHAP credentials are set but disabled in LIO; not imported");
        }
    }
}

/// Writes each secret to its file (mode 0600; the directory is created with mode 0700).
/// An existing file with other content is not overwritten.
pub fn write_secrets(secrets: &[Secret]) -> io::Result<()> {
    for sec in secrets {
        if let Some(dir) = sec.path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let content = format!("{}\n", sec.value);
        match std::fs::read(&sec.path) {
            Ok(existing) if existing == content.as_bytes() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists with another secret; not overwriting it",
                        sec.path.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&sec.path)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
