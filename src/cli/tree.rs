//! The targetcli-style object tree over a [`Config`]: `/backstores/<kind>/<name>`,
//! `/iscsi/<iqn>/tpg<N>/{luns/lun<N>,acls/<initiator>/mapped_lun<N>,portals/<ip:port>}`.

use std::net::SocketAddr;

use crate::backstore::BackstoreKind;
use crate::config::{Config, TargetConfig};
use crate::control::api::StatusReport;
use crate::control::plan::target_luns;

use super::render;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// `/`.
    Root,
    /// `/backstores`.
    Backstores,
    /// `/backstores/<kind>`.
    Kind(BackstoreKind),
    /// `/backstores/<kind>/<name>`.
    Backstore(BackstoreKind, String),
    /// `/iscsi`.
    Iscsi,
    /// `/iscsi/<iqn>`.
    Target(String),
    /// `/iscsi/<iqn>/tpg<N>`.
    Tpg(String, u16),
    /// `.../luns`.
    Luns(String, u16),
    /// `.../luns/lun<N>`.
    Lun(String, u16, u64),
    /// `.../acls`.
    Acls(String, u16),
    /// `.../acls/<initiator>`.
    Acl(String, u16, String),
    /// `.../acls/<initiator>/mapped_lun<N>`.
    MappedLun(String, u16, String, u64),
    /// `.../portals`.
    Portals(String, u16),
    /// `.../portals/<ip:port>`.
    Portal(String, u16, SocketAddr),
}

/// The name a backstore kind has in paths.
pub fn kind_name(k: BackstoreKind) -> &'static str {
    match k {
        BackstoreKind::Block => "block",
        BackstoreKind::Fileio => "fileio",
        BackstoreKind::Ramdisk => "ramdisk",
    }
}

/// The portal group tags of a target.
pub fn tags(c: &Config, t: &TargetConfig) -> Vec<u16> {
    t.groups(&c.daemon.portals)
        .into_iter()
        .map(|g| g.0)
        .collect()
}

/// The portals of group `tag` of a target.
pub fn group_portals(c: &Config, t: &TargetConfig, tag: u16) -> Vec<SocketAddr> {
    t.groups(&c.daemon.portals)
        .into_iter()
        .find(|g| g.0 == tag)
        .map(|g| g.1)
        .unwrap_or_default()
}

impl Node {
    /// The absolute path of the node.
    pub fn path(&self) -> String {
        let tpg = |t: &str, g: &u16| format!("/iscsi/{t}/tpg{g}");
        match self {
            Node::Root => "/".into(),
            Node::Backstores => "/backstores".into(),
            Node::Kind(k) => format!("/backstores/{}", kind_name(*k)),
            Node::Backstore(k, n) => format!("/backstores/{}/{n}", kind_name(*k)),
            Node::Iscsi => "/iscsi".into(),
            Node::Target(t) => format!("/iscsi/{t}"),
            Node::Tpg(t, g) => tpg(t, g),
            Node::Luns(t, g) => format!("{}/luns", tpg(t, g)),
            Node::Lun(t, g, l) => format!("{}/luns/lun{l}", tpg(t, g)),
            Node::Acls(t, g) => format!("{}/acls", tpg(t, g)),
            Node::Acl(t, g, i) => format!("{}/acls/{i}", tpg(t, g)),
            Node::MappedLun(t, g, i, l) => format!("{}/acls/{i}/mapped_lun{l}", tpg(t, g)),
            Node::Portals(t, g) => format!("{}/portals", tpg(t, g)),
            Node::Portal(t, g, p) => format!("{}/portals/{p}", tpg(t, g)),
        }
    }

    /// The parent node (the root is its own parent).
    pub fn parent(&self) -> Node {
        match self {
            Node::Root | Node::Backstores | Node::Iscsi => Node::Root,
            Node::Kind(_) => Node::Backstores,
            Node::Backstore(k, _) => Node::Kind(*k),
            Node::Target(_) => Node::Iscsi,
            Node::Tpg(t, _) => Node::Target(t.clone()),
            Node::Luns(t, g) | Node::Acls(t, g) | Node::Portals(t, g) => Node::Tpg(t.clone(), *g),
            Node::Lun(t, g, _) => Node::Luns(t.clone(), *g),
            Node::Acl(t, g, _) => Node::Acls(t.clone(), *g),
            Node::MappedLun(t, g, i, _) => Node::Acl(t.clone(), *g, i.clone()),
            Node::Portal(t, g, _) => Node::Portals(t.clone(), *g),
        }
    }

    /// The children that exist in `c`, with their names.
    pub fn children(&self, c: &Config) -> Vec<(String, Node)> {
        let target = |t: &str| c.targets.get(t);
        match self {
            Node::Root => vec![
                ("backstores".into(), Node::Backstores),
                ("iscsi".into(), Node::Iscsi),
            ],
            Node::Backstores => [
                BackstoreKind::Block,
                BackstoreKind::Fileio,
                BackstoreKind::Ramdisk,
            ]
            .into_iter()
            .map(|k| (kind_name(k).to_owned(), Node::Kind(k)))
            .collect(),
            Node::Kind(k) => c
                .backstores
                .iter()
                .filter(|(_, b)| b.kind == *k)
                .map(|(n, _)| (n.clone(), Node::Backstore(*k, n.clone())))
                .collect(),
            Node::Iscsi => c
                .targets
                .keys()
                .map(|t| (t.clone(), Node::Target(t.clone())))
                .collect(),
            Node::Target(t) => target(t).map_or_else(Vec::new, |tc| {
                tags(c, tc)
                    .into_iter()
                    .map(|g| (format!("tpg{g}"), Node::Tpg(t.clone(), g)))
                    .collect()
            }),
            Node::Tpg(t, g) => vec![
                ("acls".into(), Node::Acls(t.clone(), *g)),
                ("luns".into(), Node::Luns(t.clone(), *g)),
                ("portals".into(), Node::Portals(t.clone(), *g)),
            ],
            Node::Luns(t, g) => target(t).map_or_else(Vec::new, |tc| {
                target_luns(tc)
                    .into_iter()
                    .map(|(n, _)| (format!("lun{n}"), Node::Lun(t.clone(), *g, n)))
                    .collect()
            }),
            Node::Acls(t, g) => target(t).map_or_else(Vec::new, |tc| {
                tc.acls
                    .keys()
                    .map(|i| (i.clone(), Node::Acl(t.clone(), *g, i.clone())))
                    .collect()
            }),
            Node::Acl(t, g, i) => target(t).map_or_else(Vec::new, |tc| {
                crate::control::plan::visible_luns(tc, i)
                    .unwrap_or_default()
                    .into_keys()
                    .map(|n| {
                        (
                            format!("mapped_lun{n}"),
                            Node::MappedLun(t.clone(), *g, i.clone(), n),
                        )
                    })
                    .collect()
            }),
            Node::Portals(t, g) => target(t).map_or_else(Vec::new, |tc| {
                group_portals(c, tc, *g)
                    .into_iter()
                    .map(|p| (p.to_string(), Node::Portal(t.clone(), *g, p)))
                    .collect()
            }),
            Node::Backstore(..) | Node::Lun(..) | Node::MappedLun(..) | Node::Portal(..) => {
                Vec::new()
            }
        }
    }

    /// Resolves `path` (absolute, or relative to `self`; `.`, `..` allowed) in `c`.
    pub fn resolve(&self, path: &str, c: &Config) -> Result<Node, String> {
        let mut at = if path.starts_with('/') {
            Node::Root
        } else {
            self.clone()
        };
        for part in path.split('/').filter(|p| !p.is_empty()) {
            at = match part {
                "." => at,
                ".." => at.parent(),
                name => {
                    let kids = at.children(c);
                    let found = kids
                        .iter()
                        .find(|(n, _)| n == name)
                        .or_else(|| kids.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)))
                        .map(|(_, n)| n.clone());
                    match found {
                        Some(n) => n,
                        None => {
                            let names: Vec<&str> = kids.iter().map(|(n, _)| n.as_str()).collect();
                            return Err(format!(
                                "no {name} in {} (there: {})",
                                at.path(),
                                if names.is_empty() {
                                    "nothing".into()
                                } else {
                                    names.join(", ")
                                }
                            ));
                        }
                    }
                }
            };
        }
        Ok(at)
    }
}

/// Every path of the tree of `c` (for completion).
pub fn all_paths(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![Node::Root];
    while let Some(n) = stack.pop() {
        out.push(n.path());
        for (_, k) in n.children(c) {
            stack.push(k);
        }
    }
    out.sort();
    out
}

/// The summary shown after a node's name in `ls`.
fn label(n: &Node, c: &Config, s: Option<&StatusReport>) -> String {
    let count = |k: usize, what: &str| format!("{what}: {k}");
    let name = match n {
        Node::Root => "/".to_owned(),
        other => other
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    let info = match n {
        Node::Root => String::new(),
        Node::Backstores => String::new(),
        Node::Kind(_) => count(n.children(c).len(), "Storage Objects"),
        Node::Backstore(_, b) => {
            let bc = &c.backstores[b];
            let st = s.and_then(|s| s.backstores.iter().find(|x| &x.name == b));
            let size = st
                .and_then(|x| x.size_bytes)
                .or(bc.size.map(|x| x.0))
                .map_or("device size".into(), render::human_bytes);
            let used = c
                .targets
                .iter()
                .flat_map(|(t, tc)| {
                    target_luns(tc)
                        .into_iter()
                        .filter(|(_, x)| x == b)
                        .map(move |(l, _)| format!("{t}/lun{l}"))
                })
                .collect::<Vec<_>>();
            format!(
                "{}{size}, {}, {}",
                bc.path
                    .as_ref()
                    .map_or(String::new(), |p| format!("{} ", p.display())),
                if bc.write_cache {
                    "write-back"
                } else {
                    "write-thru"
                },
                if used.is_empty() {
                    "deactivated".into()
                } else {
                    format!("activated: {}", used.join(" "))
                }
            )
        }
        Node::Iscsi => count(c.targets.len(), "Targets"),
        Node::Target(t) => count(tags(c, &c.targets[t]).len(), "TPGs"),
        Node::Tpg(t, g) => {
            let tc = &c.targets[t];
            let enabled = tc
                .groups(&c.daemon.portals)
                .into_iter()
                .find(|x| x.0 == *g)
                .is_some_and(|x| x.2);
            let auth = if tc.auth.chap.is_some() || tc.acls.values().any(|a| a.chap.is_some()) {
                "auth chap"
            } else {
                "no-auth"
            };
            format!(
                "{}, {auth}{}",
                if enabled { "enabled" } else { "disabled" },
                if tc.demo_mode { ", demo mode" } else { "" }
            )
        }
        Node::Luns(..) => count(n.children(c).len(), "LUNs"),
        Node::Acls(..) => count(n.children(c).len(), "ACLs"),
        Node::Portals(..) => count(n.children(c).len(), "Portals"),
        Node::Lun(t, _, l) => {
            let b = target_luns(&c.targets[t])
                .into_iter()
                .find(|(x, _)| x == l)
                .map(|(_, b)| b)
                .unwrap_or_default();
            let kind = c.backstores.get(&b).map_or("?", |x| kind_name(x.kind));
            format!("/backstores/{kind}/{b}")
        }
        Node::Acl(t, _, i) => {
            let a = &c.targets[t].acls[i];
            let n = crate::control::plan::visible_luns(&c.targets[t], i).map_or(0, |m| m.len());
            format!(
                "Mapped LUNs: {n}{}",
                if a.chap.is_some() { ", auth chap" } else { "" }
            )
        }
        Node::MappedLun(t, _, i, l) => {
            let m = crate::control::plan::visible_luns(&c.targets[t], i).unwrap_or_default();
            match m.get(l) {
                Some((b, ro)) => format!("{b} ({})", if *ro { "ro" } else { "rw" }),
                None => String::new(),
            }
        }
        Node::Portal(_, _, p) => s
            .and_then(|s| s.portals.iter().find(|x| x.portal == *p))
            .map_or("configured".into(), render::portal_label),
    };
    if info.is_empty() {
        name
    } else {
        format!("{name} [{info}]")
    }
}

/// `ls`: the subtree at `n`, `depth` levels deep.
pub fn ls(n: &Node, c: &Config, s: Option<&StatusReport>, depth: usize) -> String {
    fn build(n: &Node, c: &Config, s: Option<&StatusReport>, depth: usize) -> render::Node {
        let mut r = render::Node::new(label(n, c, s));
        if depth > 0 {
            for (_, k) in n.children(c) {
                r = r.child(build(&k, c, s, depth - 1));
            }
        }
        r
    }
    build(n, c, s, depth).render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        crate::config::parse(
            r#"
[daemon]
portals = ["127.0.0.1:3260"]
[backstores.disk0]
kind = "ramdisk"
size = "1M"
[targets."iqn.2026-11.org.example:t"]
luns = [{ backstore = "disk0" }]
[targets."iqn.2026-11.org.example:t".acls."iqn.2026-11.org.example:i"]
"#,
            "t.toml",
        )
        .unwrap()
        .config
    }

    #[test]
    fn paths_resolve_both_ways() {
        let c = cfg();
        let n = Node::Root
            .resolve("/iscsi/iqn.2026-11.org.example:t/tpg1/luns", &c)
            .unwrap();
        assert_eq!(n, Node::Luns("iqn.2026-11.org.example:t".into(), 1));
        assert_eq!(
            n.resolve("../acls", &c).unwrap().path(),
            "/iscsi/iqn.2026-11.org.example:t/tpg1/acls"
        );
        assert_eq!(
            n.resolve("lun0", &c).unwrap(),
            Node::Lun("iqn.2026-11.org.example:t".into(), 1, 0)
        );
        assert!(n.resolve("lun9", &c).unwrap_err().contains("there: lun0"));
        assert_eq!(
            Node::Root
                .resolve("backstores/ramdisk/disk0", &c)
                .unwrap()
                .path(),
            "/backstores/ramdisk/disk0"
        );
        let all = all_paths(&c);
        assert!(
            all.contains(
                &"/iscsi/iqn.2026-11.org.example:t/tpg1/acls/iqn.2026-11.org.example:i/mapped_lun0"
                    .to_string()
            )
        );
        assert!(
            all.contains(
                &"/iscsi/iqn.2026-11.org.example:t/tpg1/portals/127.0.0.1:3260".to_string()
            )
        );
    }

    #[test]
    fn ls_shows_the_tree() {
        let c = cfg();
        let out = ls(&Node::Root, &c, None, 10);
        assert!(
            out.contains("o- disk0 [1M, write-thru, activated: iqn.2026-11.org.example:t/lun0]"),
            "{out}"
        );
        assert!(out.contains("o- lun0 [/backstores/ramdisk/disk0]"), "{out}");
        assert!(out.contains("o- mapped_lun0 [disk0 (rw)]"), "{out}");
    }
}
