//! What applying a new configuration changes: a pure diff of two [`Config`]s, and which
//! sessions it affects.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::api::{AclRef, LunRef, Plan, Resize, SessionInfo, SessionRef};
use crate::backstore::BackstoreKind;
use crate::config::{AclConfig, BackstoreConfig, ChapConfig, Config, TargetConfig, portals};

/// What the daemon knows at run time that a plan depends on. With the default (nothing
/// known), the plan is a diff of the two configurations.
#[derive(Debug, Clone, Default)]
pub struct Live {
    /// Logged-in sessions.
    pub sessions: Vec<SessionInfo>,
    /// Size in bytes of each open backstore, by name.
    pub sizes: BTreeMap<String, u64>,
    /// The portals listening now (configured ones), and whether each is dual-stack;
    /// `None`: take the old configuration's portals.
    pub listeners: Option<BTreeMap<SocketAddr, bool>>,
    /// Length of the file of each fileio backstore to be opened (`None`: no file yet).
    pub files: BTreeMap<String, Option<u64>>,
}

/// A target's LUNs as `(number, backstore)`, sorted by number (a LUN without a number
/// takes its position in the list, as in validation).
pub fn target_luns(t: &TargetConfig) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = t
        .luns
        .iter()
        .enumerate()
        .map(|(i, l)| (l.lun.unwrap_or(i as u64), l.backstore.clone()))
        .collect();
    v.sort();
    v
}

/// What one initiator sees on a target: LUN number → (backstore, read-only); `None` when
/// it may not log in at all.
pub fn visible_luns(t: &TargetConfig, initiator: &str) -> Option<BTreeMap<u64, (String, bool)>> {
    let luns: BTreeMap<u64, String> = target_luns(t).into_iter().collect();
    let all = || {
        luns.iter()
            .map(|(n, b)| (*n, (b.clone(), false)))
            .collect::<BTreeMap<_, _>>()
    };
    match find_acl(t, initiator) {
        Some(acl) if acl.mapped_luns.is_empty() => Some(all()),
        Some(acl) => Some(
            acl.mapped_luns
                .iter()
                .filter_map(|m| {
                    let b = luns.get(&m.target_lun.unwrap_or(m.lun))?;
                    Some((m.lun, (b.clone(), m.read_only)))
                })
                .collect(),
        ),
        None if t.demo_mode => Some(
            all()
                .into_iter()
                .map(|(n, (b, _))| (n, (b, t.demo_mode_read_only)))
                .collect(),
        ),
        None => None,
    }
}

/// The portal group tag a session that came in at `local` has on `t` (`None`: the
/// target is not reachable there, or that group is disabled).
fn tag_at(c: &Config, t: &TargetConfig, local: SocketAddr) -> Option<u16> {
    if t.portal_groups.is_empty() {
        return t.enabled.then_some(t.tpg);
    }
    let portal = portals::portal_of(&c.daemon.portals, local)?;
    t.groups(&c.daemon.portals)
        .into_iter()
        .find(|(_, ps, _)| ps.contains(&portal))
        .and_then(|(tag, _, enabled)| enabled.then_some(tag))
}

/// Whether a backstore's storage (kind, path, block size) differs.
fn storage_differs(a: &BackstoreConfig, b: &BackstoreConfig) -> bool {
    a.kind != b.kind || a.path != b.path || a.block_size != b.block_size
}

/// The pinned identity keys that differ.
fn identity_changes(a: &BackstoreConfig, b: &BackstoreConfig) -> Vec<&'static str> {
    [
        ("serial", a.serial != b.serial),
        ("wwn", a.wwn != b.wwn),
        ("vendor", a.vendor != b.vendor),
        ("product", a.product != b.product),
    ]
    .into_iter()
    .filter_map(|(k, d)| d.then_some(k))
    .collect()
}

/// Backstores exported by some target.
fn exported(c: &Config) -> BTreeSet<&str> {
    c.targets
        .values()
        .flat_map(|t| t.luns.iter().map(|l| l.backstore.as_str()))
        .collect()
}

fn find_acl<'a>(t: &'a TargetConfig, initiator: &str) -> Option<&'a AclConfig> {
    t.acls.get(initiator).or_else(|| {
        t.acls
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(initiator))
            .map(|(_, a)| a)
    })
}

/// The credentials an initiator logs in with: the ACL's own when it sets any, else the
/// target's.
fn effective_auth<'a>(
    t: &'a TargetConfig,
    initiator: &str,
) -> (Option<&'a ChapConfig>, Option<&'a ChapConfig>) {
    match find_acl(t, initiator) {
        Some(a) if a.chap.is_some() || a.mutual_chap.is_some() => {
            (a.chap.as_ref(), a.mutual_chap.as_ref())
        }
        _ => (t.auth.chap.as_ref(), t.auth.mutual_chap.as_ref()),
    }
}

fn network_allowed(t: &TargetConfig, initiator: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let ok = |nets: &[ipnet::IpNet]| nets.is_empty() || nets.iter().any(|n| n.contains(&ip));
    ok(&t.allowed_networks) && find_acl(t, initiator).is_none_or(|a| ok(&a.allowed_networks))
}

/// Top-level keys of a serializable table whose values differ, as `prefix.key`.
fn changed_keys<T: serde::Serialize>(prefix: &str, old: &T, new: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{prefix}.{k}"))
        .collect()
}

/// Computes what changes from `old` to `new`, and which of `sessions` are logged out or
/// must rescan (a plan from the configurations alone; see [`plan_live`]).
pub fn plan(old: &Config, new: &Config, sessions: &[SessionInfo]) -> Plan {
    plan_live(
        old,
        new,
        &Live {
            sessions: sessions.to_vec(),
            ..Live::default()
        },
    )
}

/// Computes what changes from `old` to `new` given what runs (`live`): the one rule of
/// what a change does, which the daemon then carries out. Pure: touches nothing.
#[allow(clippy::field_reassign_with_default)]
pub fn plan_live(old: &Config, new: &Config, live: &Live) -> Plan {
    let mut p = Plan::default();
    let sessions = &live.sessions;

    // Portals: what listens now against what should. A `[::]` whose dual-stack role
    // changes is closed and bound again.
    let listening: BTreeMap<SocketAddr, bool> = live.listeners.clone().unwrap_or_else(|| {
        old.daemon
            .portals
            .iter()
            .map(|a| (*a, portals::dual_stack(&old.daemon.portals, a)))
            .collect()
    });
    let wanted: BTreeMap<SocketAddr, bool> = new
        .daemon
        .portals
        .iter()
        .map(|a| (*a, portals::dual_stack(&new.daemon.portals, a)))
        .collect();
    p.portals_added = new
        .daemon
        .portals
        .iter()
        .filter(|a| listening.get(a) != wanted.get(a))
        .copied()
        .collect();
    p.portals_removed = listening
        .keys()
        .filter(|a| listening.get(a) != wanted.get(a))
        .copied()
        .collect();
    p.settings_changed = changed_keys("daemon", &old.daemon, &new.daemon)
        .into_iter()
        .filter(|k| k != "daemon.portals")
        .chain(changed_keys("iscsi", &old.iscsi, &new.iscsi))
        .collect();

    // Backstores. A LUN exported before and after is live: its storage and identity
    // change only when forced.
    let (was, will) = (exported(old), exported(new));
    for (name, nb) in &new.backstores {
        let live_lun = was.contains(name.as_str()) && will.contains(name.as_str());
        let opened = match old.backstores.get(name) {
            None => {
                p.backstores_added.push(name.clone());
                true
            }
            Some(ob) => {
                if live_lun && storage_differs(ob, nb) {
                    p.needs_force.push(format!(
                        "backstore {name} is a live LUN: its storage would change \
                         ({}); initiators would see other data under the same disk",
                        describe_storage(ob, nb)
                    ));
                }
                let ids = identity_changes(ob, nb);
                if live_lun && !ids.is_empty() {
                    p.needs_force.push(format!(
                        "backstore {name} is a live LUN: its pinned identity ({}) would \
                         change; initiators and multipath would see another disk",
                        ids.join(", ")
                    ));
                }
                let reopen = storage_differs(ob, nb)
                    || ob.write_cache != nb.write_cache
                    || ob.cache != nb.cache
                    || !ids.is_empty();
                if reopen
                    && live_lun
                    && ob.kind == BackstoreKind::Ramdisk
                    && !storage_differs(ob, nb)
                {
                    p.needs_force.push(format!(
                        "backstore {name} is a live ramdisk LUN: it is opened again for this \
                         change, which loses what it holds"
                    ));
                }
                if reopen {
                    p.backstores_changed.push(name.clone());
                    storage_differs(ob, nb)
                } else {
                    resize(&mut p, name, ob, nb, live);
                    false
                }
            }
        };
        if opened && nb.kind == BackstoreKind::Fileio {
            file_rules(&mut p, name, nb, live);
        }
    }
    p.backstores_removed = old
        .backstores
        .keys()
        .filter(|n| !new.backstores.contains_key(*n))
        .cloned()
        .collect();

    // Targets, LUNs, ACLs.
    let empty = TargetConfig::default();
    for (iqn, nt) in &new.targets {
        let ot = match old.targets.get(iqn) {
            Some(ot) => ot,
            None => {
                p.targets_added.push(iqn.clone());
                &empty
            }
        };
        let existed = old.targets.contains_key(iqn);
        if existed
            && (ot.tpg != nt.tpg
                || ot.enabled != nt.enabled
                || ot.portal_groups != nt.portal_groups
                || ot.demo_mode != nt.demo_mode
                || ot.demo_mode_read_only != nt.demo_mode_read_only
                || ot.auth != nt.auth
                || ot.allowed_networks != nt.allowed_networks
                || ot.iscsi != nt.iscsi)
        {
            p.targets_changed.push(iqn.clone());
        }
        let ol: BTreeSet<(u64, String)> = target_luns(ot).into_iter().collect();
        let nl: BTreeSet<(u64, String)> = target_luns(nt).into_iter().collect();
        let lref = |(lun, backstore): &(u64, String)| LunRef {
            target: iqn.clone(),
            lun: *lun,
            backstore: backstore.clone(),
        };
        p.luns_added.extend(nl.difference(&ol).map(lref));
        p.luns_removed.extend(ol.difference(&nl).map(lref));
        let aref = |initiator: &String| AclRef {
            target: iqn.clone(),
            initiator: initiator.clone(),
        };
        for (init, na) in &nt.acls {
            match ot.acls.get(init) {
                None => p.acls_added.push(aref(init)),
                Some(oa) if oa != na => p.acls_changed.push(aref(init)),
                Some(_) => {}
            }
        }
        p.acls_removed.extend(
            ot.acls
                .keys()
                .filter(|i| !nt.acls.contains_key(*i))
                .map(aref),
        );
    }
    for (iqn, ot) in &old.targets {
        if new.targets.contains_key(iqn) {
            continue;
        }
        p.targets_removed.push(iqn.clone());
        for (lun, backstore) in target_luns(ot) {
            p.luns_removed.push(LunRef {
                target: iqn.clone(),
                lun,
                backstore,
            });
        }
        p.acls_removed.extend(ot.acls.keys().map(|i| AclRef {
            target: iqn.clone(),
            initiator: i.clone(),
        }));
    }
    p.discovery_auth_changed = old.discovery != new.discovery;

    // Sessions.
    let touched: BTreeSet<&str> = p
        .backstores_changed
        .iter()
        .map(String::as_str)
        .chain(p.backstores_resized.iter().map(|r| r.name.as_str()))
        .collect();
    for s in sessions {
        let sref = |reason: String| SessionRef {
            tsih: s.tsih,
            initiator: s.initiator.clone(),
            target: s.target.clone(),
            reason,
        };
        // A session on a portal that closes goes with it.
        if let Some(portal) =
            portals::portal_of(&listening.keys().copied().collect::<Vec<_>>(), s.local)
            && p.portals_removed.contains(&portal)
            && !p.portals_added.contains(&portal)
        {
            p.sessions_logged_out
                .push(sref(format!("portal {portal} is removed")));
            continue;
        }
        let Some(iqn) = s.target.as_ref().filter(|_| !s.discovery) else {
            if p.discovery_auth_changed {
                p.sessions_logged_out
                    .push(sref("discovery CHAP settings changed".into()));
            }
            continue;
        };
        let Some(nt) = new.targets.get(iqn) else {
            p.sessions_logged_out
                .push(sref(format!("target {iqn} is removed")));
            continue;
        };
        let ot = old.targets.get(iqn).unwrap_or(&empty);
        let init = s.initiator.as_str();
        let (otag, ntag) = (tag_at(old, ot, s.local), tag_at(new, nt, s.local));
        let logout = if ntag.is_none() {
            Some(format!(
                "target {iqn} is no longer served at portal {} (disabled or moved)",
                s.local
            ))
        } else if otag != ntag {
            Some(format!(
                "portal group tag changes ({} -> {})",
                otag.map_or("-".into(), |t| t.to_string()),
                ntag.map_or("-".into(), |t| t.to_string())
            ))
        } else if visible_luns(nt, init).is_none() {
            Some(format!("initiator {init} no longer has access to {iqn}"))
        } else if effective_auth(ot, init) != effective_auth(nt, init) {
            Some("CHAP credentials change".to_owned())
        } else if !network_allowed(nt, init, s.peer.ip()) {
            Some(format!(
                "source address {} is no longer allowed",
                s.peer.ip()
            ))
        } else {
            None
        };
        if let Some(reason) = logout {
            p.sessions_logged_out.push(sref(reason));
            continue;
        }
        let nv = visible_luns(nt, init).unwrap_or_default();
        let ov = visible_luns(ot, init).unwrap_or_default();
        if nv != ov {
            p.sessions_rescanned
                .push(sref("its LUN map changes".into()));
        } else if let Some(b) = nv.values().find(|(b, _)| touched.contains(b.as_str())) {
            p.sessions_rescanned
                .push(sref(format!("backstore {} changes", b.0)));
        }
    }
    p
}

fn describe_storage(a: &BackstoreConfig, b: &BackstoreConfig) -> String {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push(format!("kind {:?} -> {:?}", a.kind, b.kind));
    }
    if a.path != b.path {
        let show = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map_or("none".into(), |p| p.display().to_string())
        };
        what.push(format!("path {} -> {}", show(&a.path), show(&b.path)));
    }
    if a.block_size != b.block_size {
        what.push(format!("block size {} -> {}", a.block_size, b.block_size));
    }
    what.join(", ")
}

/// A size-only change of an open backstore: grown when larger than it is now; never
/// shrunk (a smaller size needs force and leaves it as it is).
fn resize(p: &mut Plan, name: &str, ob: &BackstoreConfig, nb: &BackstoreConfig, live: &Live) {
    if ob.size == nb.size || nb.kind == BackstoreKind::Block {
        return;
    }
    let now = live.sizes.get(name).copied().or(ob.size.map(|s| s.0));
    let want = nb.size.map(|s| s.0);
    match (now, want) {
        (Some(n), Some(w)) if w < n => p.needs_force.push(format!(
            "backstore {name}: size {} is below its current {n} bytes; a backstore is never \
             shrunk online, so it stays {n} bytes",
            w
        )),
        (Some(n), Some(w)) if w == n => {}
        (_, None) => {}
        (n, w) => p.backstores_resized.push(Resize {
            name: name.to_owned(),
            old: n,
            new: w,
        }),
    }
}

/// A fileio backstore about to be opened: a missing file is created sparse; an existing
/// one is used as it is, and a `size` that differs from it needs force.
fn file_rules(p: &mut Plan, name: &str, nb: &BackstoreConfig, live: &Live) {
    let Some(fact) = live.files.get(name) else {
        return;
    };
    let path = nb
        .path
        .as_ref()
        .map_or(String::new(), |x| x.display().to_string());
    match (fact, nb.size.map(|s| s.0)) {
        (None, _) => p.files_created.push(name.to_owned()),
        (Some(len), Some(size)) if size > *len => p.needs_force.push(format!(
            "backstore {name}: the file {path} exists with {len} bytes; size {size} would \
             grow it"
        )),
        (Some(len), Some(size)) if size < *len => p.needs_force.push(format!(
            "backstore {name}: the file {path} exists with {len} bytes, more than size \
             {size}; a file is never shrunk, so the LUN would have {len} bytes"
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::api::{SessionCounters, SessionParams};

    const T: &str = "iqn.2026-11.org.example:t";
    const I1: &str = "iqn.2026-11.org.example:i1";
    const I2: &str = "iqn.2026-11.org.example:i2";

    fn base() -> Config {
        let text = format!(
            r#"
[daemon]
portals = ["127.0.0.1:3260"]
[backstores.a]
kind = "ramdisk"
size = "1M"
[backstores.b]
kind = "ramdisk"
size = "1M"
[targets."{T}"]
luns = [{{ backstore = "a" }}, {{ backstore = "b" }}]
[targets."{T}".acls."{I1}"]
[targets."{T}".acls."{I2}"]
mapped_luns = [{{ lun = 0 }}]
"#
        );
        crate::config::parse(&text, "base.toml").unwrap().config
    }

    fn session(tsih: u16, initiator: &str, target: Option<&str>) -> SessionInfo {
        SessionInfo {
            tsih,
            initiator: initiator.into(),
            isid: "00023d000001".into(),
            target: target.map(Into::into),
            peer: "192.0.2.10:50000".parse().unwrap(),
            local: "127.0.0.1:3260".parse().unwrap(),
            discovery: target.is_none(),
            params: SessionParams {
                header_digest: "None".into(),
                data_digest: "None".into(),
                max_burst_length: 262_144,
                first_burst_length: 65_536,
                initiator_mrdsl: 262_144,
                target_mrdsl: 262_144,
                immediate_data: true,
                initial_r2t: false,
                max_outstanding_r2t: 1,
            },
            counters: SessionCounters::default(),
            since_secs: 5,
            tpg: 1,
            auth_method: "None".into(),
            chap_user: None,
            mapped_luns: Vec::new(),
            connections: Vec::new(),
        }
    }

    #[test]
    fn identical_configs_plan_nothing() {
        let c = base();
        let s = [session(1, I1, Some(T)), session(2, "x", None)];
        assert!(plan(&c, &c, &s).is_empty());
    }

    #[test]
    fn adding_a_lun_rescans_initiators_that_see_all_luns() {
        let old = base();
        let mut new = old.clone();
        new.backstores.insert(
            "c".into(),
            crate::config::BackstoreConfig {
                kind: crate::backstore::BackstoreKind::Ramdisk,
                path: None,
                size: Some(crate::config::Size(1 << 20)),
                block_size: 512,
                write_cache: false,
                cache: None,
                serial: None,
                wwn: None,
                vendor: None,
                product: None,
            },
        );
        new.targets
            .get_mut(T)
            .unwrap()
            .luns
            .push(crate::config::LunConfig {
                lun: Some(7),
                backstore: "c".into(),
            });
        let s = [session(1, I1, Some(T)), session(2, I2, Some(T))];
        let p = plan(&old, &new, &s);
        assert_eq!(p.backstores_added, vec!["c".to_string()]);
        assert_eq!(
            p.luns_added,
            vec![LunRef {
                target: T.into(),
                lun: 7,
                backstore: "c".into()
            }]
        );
        assert!(p.sessions_logged_out.is_empty());
        // I1 sees every LUN; I2 only LUN 0.
        assert_eq!(p.sessions_rescanned.len(), 1);
        assert_eq!(p.sessions_rescanned[0].tsih, 1);
    }

    #[test]
    fn removing_an_acl_logs_its_sessions_out() {
        let old = base();
        let mut new = old.clone();
        new.targets.get_mut(T).unwrap().acls.remove(I2);
        let s = [session(1, I1, Some(T)), session(2, I2, Some(T))];
        let p = plan(&old, &new, &s);
        assert_eq!(
            p.acls_removed,
            vec![AclRef {
                target: T.into(),
                initiator: I2.into()
            }]
        );
        assert_eq!(p.sessions_logged_out.len(), 1);
        assert_eq!(p.sessions_logged_out[0].tsih, 2);
        assert!(p.sessions_rescanned.is_empty());
    }

    #[test]
    fn removing_a_target_removes_its_luns_and_acls_and_sessions() {
        let old = base();
        let mut new = old.clone();
        new.targets.clear();
        let p = plan(&old, &new, &[session(3, I1, Some(T))]);
        assert_eq!(p.targets_removed, vec![T.to_string()]);
        assert_eq!(p.luns_removed.len(), 2);
        assert_eq!(p.acls_removed.len(), 2);
        assert_eq!(
            p.sessions_logged_out[0].reason,
            format!("target {T} is removed")
        );
    }

    #[test]
    fn chap_change_logs_out_and_resize_rescans() {
        let old = base();
        let mut new = old.clone();
        new.targets
            .get_mut(T)
            .unwrap()
            .acls
            .get_mut(I1)
            .unwrap()
            .chap = Some(ChapConfig {
            user: "u".into(),
            password_file: "/s/u".into(),
        });
        new.backstores.get_mut("a").unwrap().size = Some(crate::config::Size(2 << 20));
        let s = [session(1, I1, Some(T)), session(2, I2, Some(T))];
        let p = plan(&old, &new, &s);
        assert_eq!(p.acls_changed.len(), 1);
        assert_eq!(p.sessions_logged_out.len(), 1);
        assert_eq!(p.sessions_logged_out[0].tsih, 1);
        assert_eq!(p.backstores_resized[0].new, Some(2 << 20));
        assert_eq!(p.sessions_rescanned.len(), 1);
        assert_eq!(p.sessions_rescanned[0].tsih, 2);
    }

    #[test]
    fn read_only_mapping_rescans_and_networks_log_out() {
        let old = base();
        let mut new = old.clone();
        let t = new.targets.get_mut(T).unwrap();
        t.acls.get_mut(I2).unwrap().mapped_luns[0].read_only = true;
        t.allowed_networks = vec!["10.0.0.0/8".parse().unwrap()];
        let s = [session(1, I1, Some(T)), session(2, I2, Some(T))];
        let p = plan(&old, &new, &s);
        assert_eq!(p.targets_changed, vec![T.to_string()]);
        // Both come from 192.0.2.10, outside 10/8.
        assert_eq!(p.sessions_logged_out.len(), 2);
    }

    #[test]
    fn discovery_and_settings_changes() {
        let old = base();
        let mut new = old.clone();
        new.discovery.chap = Some(ChapConfig {
            user: "d".into(),
            password_file: "/s/d".into(),
        });
        new.iscsi.queue_depth = 64;
        new.daemon.portals.push("127.0.0.2:3260".parse().unwrap());
        let p = plan(&old, &new, &[session(9, I1, None)]);
        assert!(p.discovery_auth_changed);
        assert_eq!(p.settings_changed, vec!["iscsi.queue_depth".to_string()]);
        assert_eq!(p.portals_added.len(), 1);
        assert_eq!(p.sessions_logged_out[0].tsih, 9);
    }

    #[test]
    fn swapping_a_backstore_under_a_lun_is_remove_plus_add() {
        let old = base();
        let mut new = old.clone();
        let t = new.targets.get_mut(T).unwrap();
        t.luns.swap(0, 1);
        let p = plan(&old, &new, &[]);
        assert_eq!(p.luns_added.len(), 2);
        assert_eq!(p.luns_removed.len(), 2);
    }

    #[test]
    fn visible_luns_rules() {
        let c = base();
        let t = &c.targets[T];
        assert_eq!(visible_luns(t, I1).unwrap().len(), 2);
        assert_eq!(visible_luns(t, I2).unwrap().len(), 1);
        assert!(visible_luns(t, "iqn.2026-11.org.example:nobody").is_none());
        assert_eq!(visible_luns(t, &I1.to_uppercase()).unwrap().len(), 2);
    }
}
