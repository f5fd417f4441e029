//! `import-lio`: converts targetcli's `saveconfig.json` (rtslib-fb format) into a
//! [`Config`].
//!
//! What maps: `storage_objects` of plugin `block`, `fileio`, `ramdisk` (name, `dev`, `size`,
//! `write_back`, `attributes.block_size`); `targets` of fabric `iscsi`, their first TPG
//! (tag, LUNs, node ACLs with mapped LUNs and CHAP, portals, `generate_node_acls` as demo
//! mode, TPG-level CHAP), and the iSCSI fabric module's discovery CHAP (`fabric_modules`,
//! or a top-level `discovery_auth` object).
//!
//! Secrets: LIO keeps CHAP passwords in the JSON in clear. They never go into the TOML:
//! each is returned as a [`Secret`] to be written to its own file (mode 0600) and the
//! config references it with `password_file`.
//!
//! Everything else is reported as a warning: other plugins (pscsi, user:*), other fabrics,
//! extra TPGs, ALUA groups, attributes and parameters that differ from LIO's defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::backstore::BackstoreKind;
use crate::config::{
    AclConfig, BackstoreConfig, ChapConfig, Config, LunConfig, MappedLunConfig, Size, TargetConfig,
};

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
    /// What could not be carried over, one sentence each.
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

/// LIO's TPG parameter defaults; other values are reported.
const LIO_PARAM_DEFAULTS: &[(&str, &str)] = &[
    ("AuthMethod", "CHAP,None"),
    ("DataDigest", "CRC32C,None"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("DefaultTime2Retain", "20"),
    ("DefaultTime2Wait", "2"),
    ("ErrorRecoveryLevel", "0"),
    ("FirstBurstLength", "65536"),
    ("HeaderDigest", "CRC32C,None"),
    ("IFMarkInt", "2048~65535"),
    ("IFMarker", "No"),
    ("ImmediateData", "Yes"),
    ("InitialR2T", "Yes"),
    ("MaxBurstLength", "262144"),
    ("MaxConnections", "1"),
    ("MaxOutstandingR2T", "1"),
    ("MaxRecvDataSegmentLength", "8192"),
    ("MaxXmitDataSegmentLength", "262144"),
    ("OFMarkInt", "2048~65535"),
    ("OFMarker", "No"),
    ("TargetAlias", "LIO Target"),
];

/// Storage-object attributes whose non-default values change behaviour we do not offer.
const LIO_SO_ATTR_DEFAULTS: &[(&str, i64)] = &[
    ("emulate_3pc", 1),
    ("emulate_caw", 1),
    ("emulate_dpo", 1),
    ("emulate_fua_read", 1),
    ("emulate_fua_write", 1),
    ("emulate_model_alias", 1),
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

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn u(v: &Value, k: &str) -> Option<u64> {
    v.get(k).and_then(|x| {
        x.as_u64()
            .or_else(|| x.as_str().and_then(|s| s.trim().parse().ok()))
            .or_else(|| x.as_bool().map(u64::from))
    })
}

fn b(v: &Value, k: &str) -> bool {
    u(v, k).unwrap_or(0) != 0
}

fn arr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn file_part(name: &str) -> String {
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

struct Ctx<'a> {
    secrets_dir: Option<&'a Path>,
    secrets: Vec<Secret>,
    warnings: Vec<String>,
    missing_dir: bool,
}

impl Ctx<'_> {
    fn warn(&mut self, m: impl Into<String>) {
        self.warnings.push(m.into());
    }

    /// A CHAP pair from `obj` fields `{prefix}userid` / `{prefix}password`.
    fn chap(&mut self, obj: &Value, prefix: &str, file: &str, what: &str) -> Option<ChapConfig> {
        let user = s(obj, &format!("{prefix}userid"))?;
        let Some(password) = s(obj, &format!("{prefix}password")) else {
            self.warn(format!(
                "{what}: user {user:?} has no password; not imported"
            ));
            return None;
        };
        let Some(dir) = self.secrets_dir else {
            self.missing_dir = true;
            return None;
        };
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

    fn pair(
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
            self.warn(format!(
                "{what}: mutual CHAP without one-way CHAP; mutual dropped"
            ));
            return (None, None);
        }
        (chap, mutual)
    }
}

/// Converts the text of a `saveconfig.json`. `secrets_dir` must be absolute; it is
/// required when the file holds CHAP credentials.
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
    let mut cx = Ctx {
        secrets_dir,
        secrets: Vec::new(),
        warnings: Vec::new(),
        missing_dir: false,
    };
    let mut config = Config::default();

    // Storage objects: "/backstores/<plugin>/<name>" -> our name.
    let mut so_names: BTreeMap<String, String> = BTreeMap::new();
    for so in arr(&root, "storage_objects") {
        let plugin = s(so, "plugin").unwrap_or("?");
        let Some(name) = s(so, "name") else {
            cx.warn(format!("a {plugin} storage object has no name; skipped"));
            continue;
        };
        let kind = match plugin {
            "block" | "iblock" => BackstoreKind::Block,
            "fileio" => BackstoreKind::Fileio,
            "ramdisk" | "rd_mcp" => BackstoreKind::Ramdisk,
            other => {
                cx.warn(format!(
                    "storage object {other}/{name}: the {other} backstore is not supported; \
                     skipped (LUNs on it are dropped)"
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
                 (512 or 4096); using 512"
            ));
            block_size = 512;
        }
        let write_cache = so
            .get("write_back")
            .map(|v| v.as_bool().unwrap_or(false))
            .unwrap_or_else(|| b(&attrs, "emulate_write_cache"));
        let size = match kind {
            BackstoreKind::Block => None,
            _ => u(so, "size").filter(|&n| n > 0).map(Size),
        };
        let path = match kind {
            BackstoreKind::Ramdisk => None,
            _ => s(so, "dev").map(PathBuf::from),
        };
        if b(so, "readonly") {
            cx.warn(format!(
                "storage object {plugin}/{name}: readonly is not carried over; map its LUN \
                 read-only in the ACLs instead (acl add ... --map N:ro)"
            ));
        }
        if b(so, "nullio") {
            cx.warn(format!(
                "storage object {plugin}/{name}: nullio ramdisk becomes a real ramdisk"
            ));
        }
        for (k, def) in LIO_SO_ATTR_DEFAULTS {
            if let Some(v) = u(&attrs, k)
                && v as i64 != *def
            {
                cx.warn(format!(
                    "storage object {plugin}/{name}: attribute {k} = {v} is not carried over"
                ));
            }
        }
        for g in arr(so, "alua_tpgs") {
            let gname = s(g, "name").unwrap_or("?");
            if gname != "default_tg_pt_gp" {
                cx.warn(format!(
                    "storage object {plugin}/{name}: ALUA group {gname} is not supported; skipped"
                ));
            }
        }
        so_names.insert(format!("/backstores/{plugin}/{name}"), ours.clone());
        config.backstores.insert(
            ours,
            BackstoreConfig {
                kind,
                path,
                size,
                block_size,
                write_cache,
                cache: None,
                serial: None,
                wwn: None,
                vendor: None,
                product: None,
            },
        );
    }

    // Targets.
    let mut portals: BTreeSet<SocketAddr> = BTreeSet::new();
    let mut used_backstores: BTreeMap<String, String> = BTreeMap::new();
    let mut digests: Option<(String, String)> = None;
    for t in arr(&root, "targets") {
        let wwn = s(t, "wwn").unwrap_or("?");
        let fabric = s(t, "fabric").unwrap_or("?");
        if fabric != "iscsi" {
            cx.warn(format!(
                "target {wwn}: fabric {fabric} is not iSCSI; skipped"
            ));
            continue;
        }
        let iqn = wwn.to_lowercase();
        let tpgs = arr(t, "tpgs");
        let Some(tpg) = tpgs
            .iter()
            .find(|g| g.get("enable").and_then(Value::as_bool).unwrap_or(true))
            .or_else(|| tpgs.first())
        else {
            cx.warn(format!("target {wwn}: no TPG; skipped"));
            continue;
        };
        let tag = u(tpg, "tag").unwrap_or(1);
        for other in tpgs {
            let otag = u(other, "tag").unwrap_or(0);
            if otag != tag {
                cx.warn(format!(
                    "target {wwn}: only one portal group per target is supported; tpg{otag} \
                     is skipped (tpg{tag} imported)"
                ));
            }
        }
        let mut tc = TargetConfig {
            tpg: u16::try_from(tag).unwrap_or(1).max(1),
            ..TargetConfig::default()
        };
        let attrs = tpg.get("attributes").cloned().unwrap_or(Value::Null);
        let auth_on = b(&attrs, "authentication");
        tc.demo_mode = b(&attrs, "generate_node_acls");
        if tc.demo_mode && u(&attrs, "demo_mode_write_protect").unwrap_or(1) != 0 {
            cx.warn(format!(
                "target {wwn}: LIO demo mode was write-protected (demo_mode_write_protect=1); \
                 rustiscsi demo mode is read-write"
            ));
        }

        for lun in arr(tpg, "luns") {
            let index = u(lun, "index").unwrap_or(0);
            let so = s(lun, "storage_object").unwrap_or("?");
            let Some(name) = so_names.get(so) else {
                cx.warn(format!(
                    "target {wwn}: LUN {index} uses {so}, which was not imported; skipped"
                ));
                continue;
            };
            if let Some(owner) = used_backstores.get(name) {
                cx.warn(format!(
                    "target {wwn}: LUN {index} uses {so}, already a LUN of {owner}; \
                     a backstore belongs to one LUN here; skipped"
                ));
                continue;
            }
            if let Some(g) = s(lun, "alua_tg_pt_gp_name")
                && g != "default_tg_pt_gp"
            {
                cx.warn(format!(
                    "target {wwn}: LUN {index}: ALUA group {g} is not supported"
                ));
            }
            used_backstores.insert(name.clone(), format!("target {iqn}"));
            tc.luns.push(LunConfig {
                lun: Some(index),
                backstore: name.clone(),
            });
        }
        let lun_numbers: BTreeSet<u64> = tc.luns.iter().filter_map(|l| l.lun).collect();

        let (chap, mutual) = cx.pair(tpg, "chap_", &iqn, &format!("target {wwn} CHAP"));
        if auth_on {
            tc.auth.chap = chap;
            tc.auth.mutual_chap = mutual;
        } else if chap.is_some() {
            cx.secrets
                .retain(|x| !x.what.starts_with(&format!("target {wwn} CHAP")));
            cx.warn(format!(
                "target {wwn}: TPG CHAP credentials were not enforced by LIO \
                 (authentication=0); not imported"
            ));
        }

        for acl in arr(tpg, "node_acls") {
            let Some(init) = s(acl, "node_wwn") else {
                continue;
            };
            let init = init.to_lowercase();
            if tc.demo_mode {
                cx.warn(format!(
                    "target {wwn}: ACL {init} dropped: the target is in demo mode \
                     (generate_node_acls=1), which rustiscsi does not combine with ACLs"
                ));
                continue;
            }
            let mut maps = Vec::new();
            for m in arr(acl, "mapped_luns") {
                let index = u(m, "index").unwrap_or(0);
                let tl = u(m, "tpg_lun").unwrap_or(index);
                if !lun_numbers.contains(&tl) {
                    cx.warn(format!(
                        "target {wwn}: ACL {init}: mapped LUN {index} points at LUN {tl}, \
                         which was not imported; skipped"
                    ));
                    continue;
                }
                maps.push(MappedLunConfig {
                    lun: index,
                    target_lun: (tl != index).then_some(tl),
                    read_only: b(m, "write_protect"),
                });
            }
            if maps.is_empty() {
                cx.warn(format!(
                    "target {wwn}: ACL {init} maps no LUN; here an ACL without mappings sees \
                     every LUN, so it is skipped"
                ));
                continue;
            }
            let what = format!("target {wwn} ACL {init} CHAP");
            let (chap, mutual) = cx.pair(acl, "chap_", &format!("{iqn}.{init}"), &what);
            let mut ac = AclConfig {
                mapped_luns: maps,
                ..AclConfig::default()
            };
            if auth_on {
                ac.chap = chap;
                ac.mutual_chap = mutual;
            } else if chap.is_some() {
                cx.secrets.retain(|x| !x.what.starts_with(&what));
                cx.warn(format!(
                    "target {wwn}: ACL {init}: CHAP credentials were not enforced by LIO \
                     (authentication=0); not imported"
                ));
            }
            tc.acls.insert(init, ac);
        }
        if auth_on && tc.auth.chap.is_none() && tc.acls.values().any(|a| a.chap.is_none()) {
            cx.warn(format!(
                "target {wwn}: authentication=1 but some ACLs have no CHAP credentials; \
                 they log in without CHAP here"
            ));
        }

        for p in arr(tpg, "portals") {
            let ip = s(p, "ip_address").unwrap_or("0.0.0.0");
            let port = u(p, "port").unwrap_or(3260) as u16;
            match ip
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => {
                    portals.insert(SocketAddr::new(ip, port));
                }
                Err(_) => cx.warn(format!(
                    "target {wwn}: portal {ip}:{port} is not an address"
                )),
            }
            if b(p, "iser") || b(p, "offload") {
                cx.warn(format!(
                    "target {wwn}: iSER/offload on portal {ip}:{port} is not supported"
                ));
            }
        }

        let params = tpg.get("parameters").cloned().unwrap_or(Value::Null);
        if let Some(obj) = params.as_object() {
            for (k, v) in obj {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                let default = LIO_PARAM_DEFAULTS
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, d)| *d);
                match k.as_str() {
                    "HeaderDigest" | "DataDigest" => {}
                    "TargetAlias" => {}
                    "AuthMethod" if v.contains("CHAP") => {}
                    _ if default == Some(v.as_str()) => {}
                    _ => cx.warn(format!(
                        "target {wwn}: parameter {k}={v} is not carried over (rustiscsi \
                         negotiates the daemon-wide [iscsi] limits)"
                    )),
                }
            }
            let hd = obj.get("HeaderDigest").and_then(Value::as_str);
            let dd = obj.get("DataDigest").and_then(Value::as_str);
            if let (Some(h), Some(d)) = (hd, dd) {
                match &digests {
                    None => digests = Some((h.to_owned(), d.to_owned())),
                    Some((h0, d0)) if h0 != h || d0 != d => cx.warn(format!(
                        "target {wwn}: digests {h}/{d} differ from another target's; the \
                         daemon-wide setting follows the first target"
                    )),
                    Some(_) => {}
                }
            }
        }
        config.targets.insert(iqn, tc);
    }

    if let Some((h, d)) = digests {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| *x == "None" || *x == "CRC32C")
                .map(str::to_owned)
                .collect()
        };
        let (hl, dl) = (list(&h), list(&d));
        // LIO offers "CRC32C,None": keep our default preference unless digests are forced.
        if hl == ["CRC32C"] {
            config.iscsi.header_digest = hl;
        }
        if dl == ["CRC32C"] {
            config.iscsi.data_digest = dl;
        }
    }

    // Portals: daemon-wide here.
    if !portals.is_empty() {
        let wild: Vec<SocketAddr> = portals
            .iter()
            .filter(|p| p.ip().is_unspecified())
            .copied()
            .collect();
        let list: Vec<SocketAddr> = portals
            .iter()
            .filter(|p| {
                p.ip().is_unspecified()
                    || !wild
                        .iter()
                        .any(|w| w.port() == p.port() && w.is_ipv4() == p.is_ipv4())
            })
            .copied()
            .collect();
        if list.len() != portals.len() {
            cx.warn("portals on specific addresses are covered by a wildcard portal; dropped");
        }
        if config.targets.len() > 1 {
            cx.warn(format!(
                "portals are daemon-wide in rustiscsi: every target is reachable on {}",
                list.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        config.daemon.portals = list;
    }
    let loopback = config
        .daemon
        .portals
        .iter()
        .all(|a| crate::config::is_loopback(a.ip()));
    if !loopback && config.targets.values().any(|t| t.demo_mode) {
        config.daemon.allow_demo_mode_on_network = true;
        cx.warn(
            "a target was in demo mode (generate_node_acls=1) on a network portal: \
             daemon.allow_demo_mode_on_network = true was set to keep it reachable; any \
             initiator can read and write its LUNs",
        );
    }

    // Discovery CHAP: fabric_modules[name=iscsi] (rtslib-fb), or discovery_auth.
    let fm = arr(&root, "fabric_modules")
        .iter()
        .find(|f| s(f, "name") == Some("iscsi"))
        .cloned();
    let disc = match (fm, root.get("discovery_auth")) {
        (Some(f), _) => Some((b(&f, "discovery_enable_auth"), f, "discovery_")),
        (None, Some(d)) => Some((b(d, "enable"), d.clone(), "")),
        _ => None,
    };
    for f in arr(&root, "fabric_modules") {
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
            config.discovery.chap = chap;
            config.discovery.mutual_chap = mutual;
        } else if has {
            cx.warn("discovery CHAP credentials are set but disabled in LIO; not imported");
        }
    }

    if cx.missing_dir {
        return Err(
            "the configuration holds CHAP secrets; pass --secrets-dir DIR (absolute) to \
             write each to its own file (mode 0600), referenced by password_file"
                .into(),
        );
    }
    Ok(Import {
        config,
        secrets: cx.secrets,
        warnings: cx.warnings,
        widening: Vec::new(),
    })
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
mod tests {
    use super::*;

    fn fixture() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lio-saveconfig.json"
        ))
        .unwrap()
    }

    #[test]
    fn fixture_converts_and_validates() {
        let imp = convert(&fixture(), Some(Path::new("/etc/rustiscsi/secrets"))).unwrap();
        let c = &imp.config;
        let v = crate::config::validate(c.clone(), "import").unwrap();
        assert!(v.config.backstores.contains_key("md_block0"));
        assert_eq!(c.backstores["vm1"].kind, BackstoreKind::Fileio);
        assert_eq!(c.backstores["vm1"].size, Some(Size(100 << 30)));
        assert!(c.backstores["vm1"].write_cache);
        assert_eq!(c.backstores["scratch"].kind, BackstoreKind::Ramdisk);
        assert!(!c.backstores.contains_key("tape0"), "pscsi is skipped");
        let t = &c.targets["iqn.2003-01.org.linux-iscsi.nas.x8664:sn.4f2c8e9a1b3d"];
        assert_eq!(t.luns.len(), 2);
        let acl = &t.acls["iqn.2005-03.org.open-iscsi:client1"];
        assert_eq!(acl.chap.as_ref().unwrap().user, "client1");
        assert_eq!(
            acl.chap.as_ref().unwrap().password_file,
            Path::new("/etc/rustiscsi/secrets").join(
                "iqn.2003-01.org.linux-iscsi.nas.x8664_sn.4f2c8e9a1b3d.iqn.2005-03.org.open-iscsi_client1.chap"
            )
        );
        assert_eq!(acl.mutual_chap.as_ref().unwrap().user, "nas");
        assert!(acl.mapped_luns.iter().any(|m| m.lun == 1 && m.read_only));
        assert_eq!(c.discovery.chap.as_ref().unwrap().user, "discover");
        assert_eq!(c.daemon.portals, vec!["0.0.0.0:3260".parse().unwrap()]);
        // Secrets: ACL chap + mutual, discovery chap.
        assert_eq!(imp.secrets.len(), 3, "{:?}", imp.secrets);
        let toml = crate::config::to_toml(c);
        for s in &imp.secrets {
            assert!(!toml.contains(&s.value), "secret leaked into the TOML");
        }
        let w = imp.warnings.join("\n");
        for expected in [
            "pscsi",
            "loopback",
            "tpg2",
            "ALUA",
            "emulate_tpu",
            "MaxConnections",
        ] {
            assert!(w.contains(expected), "no warning about {expected}:\n{w}");
        }
    }

    #[test]
    fn secrets_need_a_directory() {
        let e = convert(&fixture(), None).unwrap_err();
        assert!(e.contains("--secrets-dir"), "{e}");
        assert!(convert(&fixture(), Some(Path::new("rel"))).is_err());
        assert!(convert("[1]", None).is_err());
        assert!(convert("nope", None).is_err());
    }

    #[test]
    fn demo_mode_and_empty_acls() {
        let json = r#"{"storage_objects":[{"plugin":"ramdisk","name":"r","size":1048576,
            "attributes":{"block_size":512}}],
          "targets":[{"fabric":"iscsi","wwn":"iqn.2026-11.org.example:demo","tpgs":[{"tag":1,
            "attributes":{"authentication":0,"generate_node_acls":1,"demo_mode_write_protect":0},
            "luns":[{"index":0,"storage_object":"/backstores/ramdisk/r"}],
            "node_acls":[{"node_wwn":"iqn.2026-11.org.example:x","mapped_luns":[]}],
            "portals":[{"ip_address":"192.0.2.1","port":3260}]}]}]}"#;
        let imp = convert(json, None).unwrap();
        let t = &imp.config.targets["iqn.2026-11.org.example:demo"];
        assert!(t.demo_mode && t.acls.is_empty());
        assert!(imp.config.daemon.allow_demo_mode_on_network);
        crate::config::validate(imp.config, "x").unwrap();
    }

    #[test]
    fn acl_without_mapped_luns_is_skipped() {
        let json = r#"{"storage_objects":[],"targets":[{"fabric":"iscsi",
          "wwn":"iqn.2026-11.org.example:t","tpgs":[{"tag":1,"attributes":{"authentication":0},
          "luns":[],"node_acls":[{"node_wwn":"iqn.2026-11.org.example:x","mapped_luns":[]}],
          "portals":[]}]}]}"#;
        let imp = convert(json, None).unwrap();
        assert!(
            imp.config.targets["iqn.2026-11.org.example:t"]
                .acls
                .is_empty()
        );
        assert!(imp.warnings.iter().any(|w| w.contains("maps no LUN")));
    }

    #[test]
    fn writes_secret_files_0600() {
        let dir = tempfile::tempdir().unwrap();
        let sd = dir.path().join("secrets");
        let imp = convert(&fixture(), Some(&sd)).unwrap();
        write_secrets(&imp.secrets).unwrap();
        for s in &imp.secrets {
            let m = std::fs::metadata(&s.path).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
            assert_eq!(
                std::fs::read_to_string(&s.path).unwrap().trim_end(),
                s.value
            );
        }
        assert_eq!(
            std::fs::metadata(&sd).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // Idempotent; refuses to clobber another secret.
        write_secrets(&imp.secrets).unwrap();
        std::fs::write(&imp.secrets[0].path, "other\n").unwrap();
        assert!(write_secrets(&imp.secrets).is_err());
    }
}
