//! `get`/`set` of attributes and parameters, with targetcli's names (and ours): what each
//! object of the tree has, read from and written to a [`Config`] copy.

use crate::config::{Config, IscsiLimits, Size, TargetIscsi};
use crate::control::api::ControlError;

/// The object a `get`/`set` applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/iscsi`: daemon-wide negotiation and discovery.
    Iscsi,
    /// A backstore.
    Backstore(String),
    /// A target (its TPG).
    Target(String),
    /// An ACL of a target.
    Acl(String, String),
    /// A mapped LUN of an ACL.
    MappedLun(String, String, u64),
}

/// Settings shown by `get`: `(group, [(key, value)])`.
pub type Groups = Vec<(&'static str, Vec<(String, String)>)>;

fn yes(v: bool) -> String {
    if v { "1".into() } else { "0".into() }
}

fn bool_of(key: &str, v: &str) -> Result<bool, ControlError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Ok(true),
        "0" | "no" | "false" | "off" => Ok(false),
        _ => Err(ControlError::invalid(format!(
            "{key}={v}: use 1/0, yes/no or true/false"
        ))),
    }
}

fn num(key: &str, v: &str) -> Result<u32, ControlError> {
    v.parse()
        .map_err(|_| ControlError::invalid(format!("{key}={v}: not a number")))
}

fn digests(key: &str, v: &str) -> Result<Vec<String>, ControlError> {
    let list: Vec<String> = v
        .split(',')
        .map(|d| match d.trim().to_ascii_lowercase().as_str() {
            "crc32c" => Ok("CRC32C".to_owned()),
            "none" => Ok("None".to_owned()),
            other => Err(ControlError::invalid(format!(
                "{key}: unknown digest {other:?} (CRC32C, None)"
            ))),
        })
        .collect::<Result<_, _>>()?;
    Ok(list)
}

fn target<'a>(
    c: &'a mut Config,
    t: &str,
) -> Result<&'a mut crate::config::TargetConfig, ControlError> {
    c.targets
        .get_mut(t)
        .ok_or_else(|| ControlError::not_found(format!("no target {t}")))
}

/// The negotiation parameters, as `(targetcli name, value)`.
fn params(l: &IscsiLimits) -> Vec<(String, String)> {
    let yn = |b: bool| if b { "Yes" } else { "No" }.to_owned();
    vec![
        ("DataDigest".into(), l.data_digest.join(",")),
        ("FirstBurstLength".into(), l.first_burst_length.to_string()),
        ("HeaderDigest".into(), l.header_digest.join(",")),
        ("ImmediateData".into(), yn(l.immediate_data)),
        ("InitialR2T".into(), yn(l.initial_r2t)),
        ("MaxBurstLength".into(), l.max_burst_length.to_string()),
        (
            "MaxOutstandingR2T".into(),
            l.max_outstanding_r2t.to_string(),
        ),
        (
            "MaxRecvDataSegmentLength".into(),
            l.max_recv_data_segment_length.to_string(),
        ),
    ]
}

/// Sets one negotiation parameter in a target's table.
fn set_param(p: &mut TargetIscsi, key: &str, v: &str) -> Result<(), ControlError> {
    match key.to_ascii_lowercase().as_str() {
        "datadigest" | "data_digest" => p.data_digest = Some(digests(key, v)?),
        "headerdigest" | "header_digest" => p.header_digest = Some(digests(key, v)?),
        "firstburstlength" | "first_burst_length" => p.first_burst_length = Some(num(key, v)?),
        "maxburstlength" | "max_burst_length" => p.max_burst_length = Some(num(key, v)?),
        "maxoutstandingr2t" | "max_outstanding_r2t" => {
            p.max_outstanding_r2t = Some(num(key, v)?);
        }
        "maxrecvdatasegmentlength" | "max_recv_data_segment_length" => {
            p.max_recv_data_segment_length = Some(num(key, v)?);
        }
        "immediatedata" | "immediate_data" => p.immediate_data = Some(bool_of(key, v)?),
        "initialr2t" | "initial_r2t" => p.initial_r2t = Some(bool_of(key, v)?),
        _ => {
            return Err(ControlError::not_found(format!(
                "no parameter {key} (HeaderDigest, DataDigest, MaxBurstLength, \
                 FirstBurstLength, MaxRecvDataSegmentLength, MaxOutstandingR2T, \
                 ImmediateData, InitialR2T)"
            )));
        }
    }
    Ok(())
}

fn networks(v: &str) -> Result<Vec<ipnet::IpNet>, ControlError> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| ControlError::invalid(format!("{s:?} is not a network (CIDR)")))
        })
        .collect()
}

fn show_networks(n: &[ipnet::IpNet]) -> String {
    if n.is_empty() {
        "any".into()
    } else {
        n.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What `get` shows for `scope`.
pub fn get(c: &Config, scope: &Scope) -> Result<Groups, String> {
    let auth = |chap: &Option<crate::config::ChapConfig>, m: &Option<crate::config::ChapConfig>| {
        let mut v = vec![
            (
                "userid".into(),
                chap.as_ref().map_or(String::new(), |x| x.user.clone()),
            ),
            (
                "password_file".into(),
                chap.as_ref()
                    .map_or(String::new(), |x| x.password_file.display().to_string()),
            ),
            (
                "mutual_userid".into(),
                m.as_ref().map_or(String::new(), |x| x.user.clone()),
            ),
            (
                "mutual_password_file".into(),
                m.as_ref()
                    .map_or(String::new(), |x| x.password_file.display().to_string()),
            ),
        ];
        v.push((
            "password".into(),
            "(kept in password_file, never shown)".into(),
        ));
        v
    };
    Ok(match scope {
        Scope::Iscsi => vec![
            ("parameter", {
                let mut p = params(&c.iscsi);
                p.push((
                    "default_cmdsn_depth".into(),
                    c.iscsi.queue_depth.to_string(),
                ));
                p
            }),
            ("discovery_auth", {
                let mut a = auth(&c.discovery.chap, &c.discovery.mutual_chap);
                a.insert(0, ("enable".into(), yes(c.discovery.chap.is_some())));
                a
            }),
        ],
        Scope::Backstore(n) => {
            let b = c.backstores.get(n).ok_or(format!("no backstore {n}"))?;
            vec![(
                "attribute",
                vec![
                    ("block_size".into(), b.block_size.to_string()),
                    (
                        "cache".into(),
                        b.cache
                            .map_or("default".into(), |m| format!("{m:?}").to_lowercase()),
                    ),
                    ("emulate_write_cache".into(), yes(b.write_cache)),
                    ("product".into(), b.product.clone().unwrap_or_default()),
                    ("serial".into(), b.serial.clone().unwrap_or_default()),
                    (
                        "size".into(),
                        b.size.map_or("device size".into(), |s| s.to_string()),
                    ),
                    ("vendor".into(), b.vendor.clone().unwrap_or_default()),
                    ("wwn".into(), b.wwn.clone().unwrap_or_default()),
                ],
            )]
        }
        Scope::Target(t) => {
            let tc = c.targets.get(t).ok_or(format!("no target {t}"))?;
            let has_chap = tc.auth.chap.is_some() || tc.acls.values().any(|a| a.chap.is_some());
            vec![
                (
                    "attribute",
                    vec![
                        (
                            "allowed_networks".into(),
                            show_networks(&tc.allowed_networks),
                        ),
                        ("authentication".into(), yes(has_chap)),
                        (
                            "default_cmdsn_depth".into(),
                            format!("{} (daemon-wide: set it on /iscsi)", c.iscsi.queue_depth),
                        ),
                        (
                            "demo_mode_write_protect".into(),
                            yes(tc.demo_mode_read_only),
                        ),
                        ("enable".into(), yes(tc.enabled)),
                        ("generate_node_acls".into(), yes(tc.demo_mode)),
                    ],
                ),
                ("parameter", params(&tc.iscsi.over(&c.iscsi))),
                ("auth", auth(&tc.auth.chap, &tc.auth.mutual_chap)),
            ]
        }
        Scope::Acl(t, i) => {
            let a = c
                .targets
                .get(t)
                .and_then(|tc| tc.acls.get(i))
                .ok_or(format!("no ACL {i} on {t}"))?;
            vec![
                (
                    "attribute",
                    vec![(
                        "allowed_networks".into(),
                        show_networks(&a.allowed_networks),
                    )],
                ),
                ("auth", auth(&a.chap, &a.mutual_chap)),
            ]
        }
        Scope::MappedLun(t, i, l) => {
            let tc = c.targets.get(t).ok_or(format!("no target {t}"))?;
            let m = crate::control::plan::visible_luns(tc, i).unwrap_or_default();
            let (b, ro) = m.get(l).ok_or(format!("no mapped LUN {l}"))?;
            vec![(
                "attribute",
                vec![
                    ("tpg_lun".into(), b.clone()),
                    ("write_protect".into(), yes(*ro)),
                ],
            )]
        }
    })
}

/// Sets `key` of `group` to `value` on `scope`; returns what was set.
pub fn set(
    c: &mut Config,
    scope: &Scope,
    group: &str,
    key: &str,
    value: &str,
) -> Result<String, ControlError> {
    let done = format!("{key}={value}");
    match (scope, group) {
        (Scope::Iscsi, "parameter") => {
            if key.eq_ignore_ascii_case("default_cmdsn_depth") || key == "queue_depth" {
                c.iscsi.queue_depth = num(key, value)?;
            } else {
                let mut p = TargetIscsi::default();
                set_param(&mut p, key, value)?;
                c.iscsi = p.over(&c.iscsi);
            }
        }
        (Scope::Backstore(n), "attribute") => {
            let b = c
                .backstores
                .get_mut(n)
                .ok_or_else(|| ControlError::not_found(format!("no backstore {n}")))?;
            let text = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            match key {
                "emulate_write_cache" | "write_cache" => b.write_cache = bool_of(key, value)?,
                "block_size" => b.block_size = num(key, value)?,
                "serial" | "unit_serial" => b.serial = text(value),
                "wwn" => b.wwn = text(value),
                "vendor" | "vendor_id" => b.vendor = text(value),
                "product" | "product_id" => b.product = text(value),
                "size" => {
                    let s: Size = value.parse().map_err(ControlError::invalid)?;
                    return super::edit::backstore_resize(c, n, s);
                }
                "cache" => {
                    b.cache = match value {
                        "direct" => Some(crate::backstore::CacheMode::Direct),
                        "buffered" => Some(crate::backstore::CacheMode::Buffered),
                        "default" | "" => None,
                        _ => {
                            return Err(ControlError::invalid(
                                "cache: direct, buffered or default",
                            ));
                        }
                    }
                }
                _ => {
                    return Err(ControlError::not_found(format!(
                        "backstore {n} has no attribute {key}"
                    )));
                }
            }
        }
        (Scope::Target(t), "attribute") => {
            let tc = target(c, t)?;
            match key {
                "generate_node_acls" | "demo_mode" => tc.demo_mode = bool_of(key, value)?,
                "demo_mode_write_protect" | "demo_mode_read_only" => {
                    tc.demo_mode_read_only = bool_of(key, value)?;
                }
                "enable" | "enabled" => tc.enabled = bool_of(key, value)?,
                "allowed_networks" => tc.allowed_networks = networks(value)?,
                "authentication" => {
                    let want = bool_of(key, value)?;
                    let has = tc.auth.chap.is_some() || tc.acls.values().any(|a| a.chap.is_some());
                    return match (want, has) {
                        (false, false) => Ok("authentication=0: no CHAP credentials are set, \
                                              so none is asked (unchanged)"
                            .into()),
                        (true, true) => Ok("authentication=1: CHAP is required (unchanged)".into()),
                        (false, true) => Err(ControlError::refused(
                            "CHAP is asked because credentials are set (on the target or an \
                             ACL); remove them with `auth clear` to stop asking for it",
                        )),
                        (true, false) => Err(ControlError::refused(
                            "CHAP is asked once credentials are set: `set auth userid=... \
                             password=...` on the TPG or an ACL",
                        )),
                    };
                }
                "default_cmdsn_depth" => {
                    return Err(ControlError::refused(
                        "the command window is daemon-wide here: `/iscsi set parameter \
                         default_cmdsn_depth=N`",
                    ));
                }
                _ => {
                    return Err(ControlError::not_found(format!(
                        "target {t} has no attribute {key}"
                    )));
                }
            }
        }
        (Scope::Target(t), "parameter") => {
            let tc = target(c, t)?;
            set_param(&mut tc.iscsi, key, value)?;
        }
        (Scope::Acl(t, i), "attribute") => {
            let tc = target(c, t)?;
            let a = tc
                .acls
                .get_mut(i)
                .ok_or_else(|| ControlError::not_found(format!("no ACL {i} on {t}")))?;
            match key {
                "allowed_networks" => a.allowed_networks = networks(value)?,
                _ => {
                    return Err(ControlError::not_found(format!(
                        "ACL {i} has no attribute {key}"
                    )));
                }
            }
        }
        (Scope::MappedLun(t, i, l), "attribute") if key == "write_protect" => {
            let ro = bool_of(key, value)?;
            super::edit::map_set(c, t, i, *l, None, Some(ro))?;
        }
        (_, g) => {
            return Err(ControlError::not_found(format!(
                "no group {g} here (attribute, parameter, auth; discovery_auth on /iscsi)"
            )));
        }
    }
    Ok(format!("set {group} {done}"))
}
