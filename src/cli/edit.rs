//! Edits of a [`Config`] copy, one per CLI mutation. Each checks what it can name
//! precisely (missing or duplicate objects); the whole result is then validated with
//! [`config::validate`](crate::config::validate) before it is sent.

use std::path::PathBuf;

use crate::backstore::BackstoreKind;
use crate::config::{
    AclConfig, AuthConfig, BackstoreConfig, ChapConfig, Config, LunConfig, MappedLunConfig, Size,
    TargetConfig,
};
use crate::control::api::ControlError;
use crate::control::plan::target_luns;

/// Which CHAP settings `auth set` / `auth clear` change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthScope {
    /// Discovery sessions.
    Discovery,
    /// A target's defaults.
    Target(String),
    /// One ACL of a target.
    Acl {
        /// Target IQN.
        target: String,
        /// Initiator IQN.
        initiator: String,
    },
}

fn target_mut<'a>(c: &'a mut Config, iqn: &str) -> Result<&'a mut TargetConfig, ControlError> {
    let known: Vec<String> = c.targets.keys().cloned().collect();
    c.targets.get_mut(iqn).ok_or_else(|| {
        ControlError::not_found(format!(
            "no target {iqn} (targets: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })
}

/// Gives every LUN of `t` its explicit number, so removing one does not renumber others.
fn pin_lun_numbers(t: &mut TargetConfig) {
    for (i, l) in t.luns.iter_mut().enumerate() {
        l.lun.get_or_insert(i as u64);
    }
}

/// `backstore create`.
pub fn backstore_create(
    c: &mut Config,
    name: &str,
    kind: BackstoreKind,
    path: Option<PathBuf>,
    size: Option<Size>,
    block_size: u32,
    write_cache: bool,
) -> Result<String, ControlError> {
    if c.backstores.contains_key(name) {
        return Err(ControlError::exists(format!(
            "backstore {name} already exists"
        )));
    }
    c.backstores.insert(
        name.to_owned(),
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
    Ok(format!("created backstore {name}"))
}

/// `backstore delete`: refused while a LUN uses it.
pub fn backstore_delete(c: &mut Config, name: &str) -> Result<String, ControlError> {
    if !c.backstores.contains_key(name) {
        return Err(ControlError::not_found(format!("no backstore {name}")));
    }
    for (iqn, t) in &c.targets {
        if let Some((lun, _)) = target_luns(t).into_iter().find(|(_, b)| b == name) {
            return Err(ControlError::refused(format!(
                "backstore {name} is LUN {lun} of target {iqn}; remove the LUN first \
                 (rustiscsi lun remove {iqn} {lun})"
            )));
        }
    }
    c.backstores.remove(name);
    Ok(format!("deleted backstore {name}"))
}

/// `backstore resize`: a larger size for a fileio or ramdisk backstore.
pub fn backstore_resize(c: &mut Config, name: &str, size: Size) -> Result<String, ControlError> {
    let b = c
        .backstores
        .get_mut(name)
        .ok_or_else(|| ControlError::not_found(format!("no backstore {name}")))?;
    if b.kind == BackstoreKind::Block {
        return Err(ControlError::refused(format!(
            "backstore {name} is a block device: grow the device (lvextend, mdadm --grow) and \
             the LUN follows it"
        )));
    }
    if b.size.is_some_and(|old| size < old) {
        return Err(ControlError::refused(format!(
            "backstore {name} cannot shrink online (now {}, asked {size})",
            b.size.map(|s| s.to_string()).unwrap_or_default()
        )));
    }
    b.size = Some(size);
    Ok(format!("resized backstore {name} to {size}"))
}

/// `target create`: TPG 1, no LUNs, no ACLs.
pub fn target_create(c: &mut Config, iqn: &str) -> Result<String, ControlError> {
    if c.targets.contains_key(iqn) {
        return Err(ControlError::exists(format!("target {iqn} already exists")));
    }
    c.targets.insert(
        iqn.to_owned(),
        TargetConfig {
            tpg: 1,
            ..TargetConfig::default()
        },
    );
    Ok(format!("created target {iqn} (tpg 1)"))
}

/// `target delete` (its backstores stay).
pub fn target_delete(c: &mut Config, iqn: &str) -> Result<String, ControlError> {
    target_mut(c, iqn)?;
    c.targets.remove(iqn);
    Ok(format!("deleted target {iqn}"))
}

/// `lun add`: the lowest free number unless `lun` is given. Returns the LUN number in
/// the message.
pub fn lun_add(
    c: &mut Config,
    iqn: &str,
    backstore: &str,
    lun: Option<u64>,
) -> Result<String, ControlError> {
    // The target first: a typo'd IQN is "no target", whatever the backstore does.
    target_mut(c, iqn)?;
    if !c.backstores.contains_key(backstore) {
        return Err(ControlError::not_found(format!(
            "no backstore {backstore} (create it with rustiscsi backstore create)"
        )));
    }
    let t = target_mut(c, iqn)?;
    if let Some((n, _)) = target_luns(t).into_iter().find(|(_, b)| b == backstore) {
        return Err(ControlError::exists(format!(
            "backstore {backstore} is already LUN {n} of target {iqn}"
        )));
    }
    pin_lun_numbers(t);
    let used: Vec<u64> = target_luns(t).into_iter().map(|(n, _)| n).collect();
    let n = match lun {
        Some(n) if used.contains(&n) => {
            return Err(ControlError::exists(format!(
                "target {iqn} already has LUN {n}"
            )));
        }
        Some(n) => n,
        None => (0..).find(|n| !used.contains(n)).unwrap_or(0),
    };
    t.luns.push(LunConfig {
        lun: Some(n),
        backstore: backstore.to_owned(),
    });
    t.luns.sort_by_key(|l| l.lun);
    Ok(format!("added LUN {n} ({backstore}) to {iqn}"))
}

/// `lun remove`: also drops the ACL mappings of that LUN, refusing when that would leave
/// an ACL with no mapping (an empty list means "every LUN").
pub fn lun_remove(c: &mut Config, iqn: &str, lun: u64) -> Result<String, ControlError> {
    let t = target_mut(c, iqn)?;
    pin_lun_numbers(t);
    let Some(pos) = t.luns.iter().position(|l| l.lun == Some(lun)) else {
        return Err(ControlError::not_found(format!(
            "target {iqn} has no LUN {lun}"
        )));
    };
    let mut unmapped = Vec::new();
    for (init, acl) in t.acls.iter_mut() {
        if acl.mapped_luns.is_empty() {
            continue;
        }
        let before = acl.mapped_luns.len();
        let kept: Vec<MappedLunConfig> = acl
            .mapped_luns
            .iter()
            .filter(|m| m.target_lun.unwrap_or(m.lun) != lun)
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err(ControlError::refused(format!(
                "ACL {init} maps only LUN {lun}; without it the ACL would see every LUN. \
                 Remove the ACL first (rustiscsi acl remove {iqn} {init}) or map another LUN"
            )));
        }
        if kept.len() != before {
            unmapped.push(init.clone());
            acl.mapped_luns = kept;
        }
    }
    let removed = t.luns.remove(pos);
    let mut msg = format!("removed LUN {lun} ({}) from {iqn}", removed.backstore);
    if !unmapped.is_empty() {
        msg.push_str(&format!("; unmapped from ACLs {}", unmapped.join(", ")));
    }
    Ok(msg)
}

/// A `--map` argument: `LUN[:TARGET_LUN][:ro|:rw]`.
pub fn parse_map(s: &str) -> Result<MappedLunConfig, String> {
    let mut parts: Vec<&str> = s.split(':').collect();
    let mut read_only = false;
    if let Some(last) = parts.last() {
        match last.to_ascii_lowercase().as_str() {
            "ro" => {
                read_only = true;
                parts.pop();
            }
            "rw" => {
                parts.pop();
            }
            _ => {}
        }
    }
    let num = |p: &str| {
        p.parse::<u64>()
            .map_err(|_| format!("{s:?}: {p:?} is not a LUN number (use LUN[:TARGET_LUN][:ro])"))
    };
    match parts.as_slice() {
        [lun] => Ok(MappedLunConfig {
            lun: num(lun)?,
            target_lun: None,
            read_only,
        }),
        [lun, tl] => Ok(MappedLunConfig {
            lun: num(lun)?,
            target_lun: Some(num(tl)?),
            read_only,
        }),
        _ => Err(format!("{s:?}: use LUN[:TARGET_LUN][:ro]")),
    }
}

/// `acl add`: with no mappings the initiator sees every LUN of the target.
pub fn acl_add(
    c: &mut Config,
    iqn: &str,
    initiator: &str,
    maps: Vec<MappedLunConfig>,
) -> Result<String, ControlError> {
    let t = target_mut(c, iqn)?;
    if t.acls.contains_key(initiator) {
        return Err(ControlError::exists(format!(
            "target {iqn} already has an ACL for {initiator}"
        )));
    }
    let what = if maps.is_empty() {
        "every LUN".to_owned()
    } else {
        let l: Vec<String> = maps
            .iter()
            .map(|m| {
                let tl = m.target_lun.map_or(String::new(), |t| format!("->{t}"));
                let ro = if m.read_only { " ro" } else { "" };
                format!("{}{tl}{ro}", m.lun)
            })
            .collect();
        format!("LUNs {}", l.join(", "))
    };
    t.acls.insert(
        initiator.to_owned(),
        AclConfig {
            mapped_luns: maps,
            ..AclConfig::default()
        },
    );
    Ok(format!("added ACL {initiator} to {iqn} ({what})"))
}

/// The target of an existing ACL.
fn acl_target<'a>(
    c: &'a mut Config,
    iqn: &str,
    initiator: &str,
) -> Result<&'a mut TargetConfig, ControlError> {
    let t = target_mut(c, iqn)?;
    if !t.acls.contains_key(initiator) {
        return Err(ControlError::not_found(format!(
            "target {iqn} has no ACL for {initiator}"
        )));
    }
    Ok(t)
}

/// An ACL's mappings made explicit (an empty list means every LUN of the target).
fn explicit_maps(t: &TargetConfig, initiator: &str) -> Vec<MappedLunConfig> {
    match t.acls.get(initiator) {
        Some(a) if a.mapped_luns.is_empty() => target_luns(t)
            .into_iter()
            .map(|(n, _)| MappedLunConfig {
                lun: n,
                target_lun: None,
                read_only: false,
            })
            .collect(),
        Some(a) => a.mapped_luns.clone(),
        None => Vec::new(),
    }
}

/// Adds or changes the mapping of `lun` in an ACL: `target_lun` (for a new mapping) and
/// `read_only`. An ACL that saw every LUN keeps seeing them, now listed one by one.
pub fn map_set(
    c: &mut Config,
    iqn: &str,
    initiator: &str,
    lun: u64,
    target_lun: Option<u64>,
    read_only: Option<bool>,
) -> Result<String, ControlError> {
    let t = acl_target(c, iqn, initiator)?;
    let mut maps = explicit_maps(t, initiator);
    match maps.iter_mut().find(|m| m.lun == lun) {
        Some(m) => {
            if let Some(tl) = target_lun
                && m.target_lun.unwrap_or(m.lun) != tl
            {
                return Err(ControlError::exists(format!(
                    "ACL {initiator} already maps LUN {lun} (to target LUN {})",
                    m.target_lun.unwrap_or(m.lun)
                )));
            }
            if let Some(ro) = read_only {
                m.read_only = ro;
            }
        }
        None => {
            let tl = target_lun.unwrap_or(lun);
            if !target_luns(t).iter().any(|(n, _)| *n == tl) {
                return Err(ControlError::not_found(format!(
                    "target {iqn} has no LUN {tl}"
                )));
            }
            maps.push(MappedLunConfig {
                lun,
                target_lun: (tl != lun).then_some(tl),
                read_only: read_only.unwrap_or(false),
            });
            maps.sort_by_key(|m| m.lun);
        }
    }
    t.acls.get_mut(initiator).expect("checked").mapped_luns = maps;
    Ok(format!("mapped LUN {lun} of ACL {initiator} on {iqn}"))
}

/// Removes the mapping of `lun` from an ACL (not its last one: an empty list would mean
/// every LUN).
pub fn map_remove(
    c: &mut Config,
    iqn: &str,
    initiator: &str,
    lun: u64,
) -> Result<String, ControlError> {
    let t = acl_target(c, iqn, initiator)?;
    let mut maps = explicit_maps(t, initiator);
    let before = maps.len();
    maps.retain(|m| m.lun != lun);
    if maps.len() == before {
        return Err(ControlError::not_found(format!(
            "ACL {initiator} has no mapped LUN {lun}"
        )));
    }
    if maps.is_empty() {
        return Err(ControlError::refused(format!(
            "LUN {lun} is the last mapping of ACL {initiator}; without it the ACL would see \
             every LUN. Delete the ACL instead"
        )));
    }
    t.acls.get_mut(initiator).expect("checked").mapped_luns = maps;
    Ok(format!("unmapped LUN {lun} from ACL {initiator} on {iqn}"))
}

/// Adds a portal: to `daemon.portals` and, when the target has portal groups, to group
/// `tag`.
pub fn portal_add(
    c: &mut Config,
    iqn: &str,
    tag: u16,
    portal: std::net::SocketAddr,
) -> Result<String, ControlError> {
    let t = target_mut(c, iqn)?;
    let mut msg = format!("added portal {portal}");
    if t.portal_groups.is_empty() {
        msg.push_str(" (every target without portal groups is reachable on it)");
    } else {
        let g = t
            .portal_groups
            .iter_mut()
            .find(|g| g.tag == tag)
            .ok_or_else(|| ControlError::not_found(format!("target {iqn} has no tpg{tag}")))?;
        if g.portals.contains(&portal) {
            return Err(ControlError::exists(format!(
                "tpg{tag} already has {portal}"
            )));
        }
        g.portals.push(portal);
    }
    if c.daemon.portals.contains(&portal) {
        if c.targets[iqn].portal_groups.is_empty() {
            return Err(ControlError::exists(format!(
                "portal {portal} already exists"
            )));
        }
    } else {
        c.daemon.portals.push(portal);
    }
    Ok(msg)
}

/// Removes a portal from group `tag` (and from `daemon.portals` when no group uses it).
pub fn portal_remove(
    c: &mut Config,
    iqn: &str,
    tag: u16,
    portal: std::net::SocketAddr,
) -> Result<String, ControlError> {
    let t = target_mut(c, iqn)?;
    if !t.portal_groups.is_empty() {
        let g = t
            .portal_groups
            .iter_mut()
            .find(|g| g.tag == tag)
            .ok_or_else(|| ControlError::not_found(format!("target {iqn} has no tpg{tag}")))?;
        let before = g.portals.len();
        g.portals.retain(|p| *p != portal);
        if g.portals.len() == before {
            return Err(ControlError::not_found(format!(
                "tpg{tag} has no portal {portal}"
            )));
        }
    }
    let still_used = c
        .targets
        .values()
        .any(|t| t.portal_groups.iter().any(|g| g.portals.contains(&portal)));
    if !c.daemon.portals.contains(&portal) {
        return Err(ControlError::not_found(format!("no portal {portal}")));
    }
    if !still_used {
        c.daemon.portals.retain(|p| *p != portal);
    }
    Ok(format!("removed portal {portal}"))
}

/// `acl remove`.
pub fn acl_remove(c: &mut Config, iqn: &str, initiator: &str) -> Result<String, ControlError> {
    let t = target_mut(c, iqn)?;
    if t.acls.remove(initiator).is_none() {
        return Err(ControlError::not_found(format!(
            "target {iqn} has no ACL for {initiator}"
        )));
    }
    Ok(format!("removed ACL {initiator} from {iqn}"))
}

fn auth_slot<'a>(
    c: &'a mut Config,
    scope: &AuthScope,
) -> Result<(&'a mut Option<ChapConfig>, &'a mut Option<ChapConfig>), ControlError> {
    match scope {
        AuthScope::Discovery => Ok((&mut c.discovery.chap, &mut c.discovery.mutual_chap)),
        AuthScope::Target(iqn) => {
            let AuthConfig { chap, mutual_chap } = &mut target_mut(c, iqn)?.auth;
            Ok((chap, mutual_chap))
        }
        AuthScope::Acl { target, initiator } => {
            let t = target_mut(c, target)?;
            let acl = t.acls.get_mut(initiator).ok_or_else(|| {
                ControlError::not_found(format!("target {target} has no ACL for {initiator}"))
            })?;
            Ok((&mut acl.chap, &mut acl.mutual_chap))
        }
    }
}

fn scope_name(scope: &AuthScope) -> String {
    match scope {
        AuthScope::Discovery => "discovery".into(),
        AuthScope::Target(t) => format!("target {t}"),
        AuthScope::Acl { target, initiator } => format!("ACL {initiator} of {target}"),
    }
}

/// `auth set`: replaces both directions (one-way CHAP when `mutual` is `None`).
pub fn auth_set(
    c: &mut Config,
    scope: &AuthScope,
    chap: ChapConfig,
    mutual: Option<ChapConfig>,
) -> Result<String, ControlError> {
    let (slot, mslot) = auth_slot(c, scope)?;
    let kind = if mutual.is_some() {
        "mutual CHAP"
    } else {
        "CHAP"
    };
    *slot = Some(chap);
    *mslot = mutual;
    Ok(format!("set {kind} on {}", scope_name(scope)))
}

/// `auth clear`.
pub fn auth_clear(c: &mut Config, scope: &AuthScope) -> Result<String, ControlError> {
    let (slot, mslot) = auth_slot(c, scope)?;
    *slot = None;
    *mslot = None;
    Ok(format!("cleared CHAP on {}", scope_name(scope)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::api::ErrorCode;

    const T: &str = "iqn.2026-11.org.example:t";
    const I: &str = "iqn.2026-11.org.example:i";

    fn cfg() -> Config {
        let mut c = Config::default();
        for n in ["a", "b"] {
            backstore_create(
                &mut c,
                n,
                BackstoreKind::Ramdisk,
                None,
                Some(Size(1 << 20)),
                512,
                false,
            )
            .unwrap();
        }
        target_create(&mut c, T).unwrap();
        c
    }

    #[test]
    fn resize_grows_only() {
        let mut c = cfg();
        backstore_resize(&mut c, "a", Size(2 << 20)).unwrap();
        assert_eq!(c.backstores["a"].size, Some(Size(2 << 20)));
        let e = backstore_resize(&mut c, "a", Size(1 << 20)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Refused);
        let e = backstore_resize(&mut c, "zz", Size(1 << 20)).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
    }

    #[test]
    fn full_workflow_validates() {
        let mut c = cfg();
        lun_add(&mut c, T, "a", None).unwrap();
        lun_add(&mut c, T, "b", None).unwrap();
        acl_add(
            &mut c,
            T,
            I,
            vec![parse_map("0").unwrap(), parse_map("1:ro").unwrap()],
        )
        .unwrap();
        let chap = ChapConfig {
            user: "u".into(),
            password_file: "/s/u".into(),
        };
        let m = ChapConfig {
            user: "m".into(),
            password_file: "/s/m".into(),
        };
        let scope = AuthScope::Acl {
            target: T.into(),
            initiator: I.into(),
        };
        auth_set(&mut c, &scope, chap, Some(m)).unwrap();
        crate::config::validate(c.clone(), "t").unwrap();
        assert_eq!(
            target_luns(&c.targets[T]),
            vec![(0, "a".into()), (1, "b".into())]
        );
        auth_clear(&mut c, &scope).unwrap();
        assert!(c.targets[T].acls[I].chap.is_none());
    }

    #[test]
    fn errors_name_the_problem() {
        let mut c = cfg();
        let e = backstore_create(&mut c, "a", BackstoreKind::Ramdisk, None, None, 512, false);
        assert_eq!(e.unwrap_err().code, ErrorCode::Exists);
        assert_eq!(
            lun_add(&mut c, T, "zz", None).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            lun_add(&mut c, "iqn.2026-11.org.example:none", "a", None)
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        lun_add(&mut c, T, "a", Some(3)).unwrap();
        assert_eq!(
            lun_add(&mut c, T, "b", Some(3)).unwrap_err().code,
            ErrorCode::Exists
        );
        assert_eq!(
            lun_add(&mut c, T, "a", None).unwrap_err().code,
            ErrorCode::Exists
        );
        let e = backstore_delete(&mut c, "a").unwrap_err();
        assert_eq!(e.code, ErrorCode::Refused);
        assert!(e.message.contains("lun remove"), "{}", e.message);
        assert_eq!(
            lun_remove(&mut c, T, 9).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            acl_remove(&mut c, T, I).unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            target_create(&mut c, T).unwrap_err().code,
            ErrorCode::Exists
        );
    }

    #[test]
    fn lun_remove_keeps_numbers_and_unmaps() {
        let mut c = cfg();
        // Positional LUNs: removing LUN 0 must not renumber "b".
        c.targets.get_mut(T).unwrap().luns = vec![
            LunConfig {
                lun: None,
                backstore: "a".into(),
            },
            LunConfig {
                lun: None,
                backstore: "b".into(),
            },
        ];
        acl_add(
            &mut c,
            T,
            I,
            vec![parse_map("0").unwrap(), parse_map("1").unwrap()],
        )
        .unwrap();
        let msg = lun_remove(&mut c, T, 0).unwrap();
        assert!(msg.contains("unmapped from ACLs"), "{msg}");
        assert_eq!(target_luns(&c.targets[T]), vec![(1, "b".into())]);
        assert_eq!(c.targets[T].acls[I].mapped_luns.len(), 1);
        // Last mapping: refused.
        let e = lun_remove(&mut c, T, 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::Refused);
        crate::config::validate(c, "t").unwrap();
    }

    #[test]
    fn map_syntax() {
        let m = parse_map("2:5:ro").unwrap();
        assert_eq!((m.lun, m.target_lun, m.read_only), (2, Some(5), true));
        let m = parse_map("1:rw").unwrap();
        assert_eq!((m.lun, m.target_lun, m.read_only), (1, None, false));
        assert!(parse_map("x").is_err());
        assert!(parse_map("1:2:3").is_err());
    }

    #[test]
    fn delete_target_and_backstore() {
        let mut c = cfg();
        lun_add(&mut c, T, "a", None).unwrap();
        target_delete(&mut c, T).unwrap();
        backstore_delete(&mut c, "a").unwrap();
        assert!(c.targets.is_empty());
        assert_eq!(c.backstores.len(), 1);
    }
}
