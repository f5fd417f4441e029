//! LIO targets and their TPGs: which TPG is imported, and what its attributes,
//! parameters, LUNs, ACLs and portals become, without giving anyone more access.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use super::json::{arr, b, i, s, u};
use super::{Cx, Object};
use crate::config::{AclConfig, Config, IscsiLimits, LunConfig, MappedLunConfig, TargetConfig};

/// One imported portal group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub tag: u16,
    pub portals: Vec<SocketAddr>,
    pub enabled: bool,
}

/// One imported target, before its portals are placed.
#[derive(Debug, Clone)]
pub(crate) struct Imported {
    pub name: String,
    pub config: TargetConfig,
    pub groups: Vec<Group>,
    /// `default_cmdsn_depth` of its TPG.
    pub cmdsn_depth: u64,
    /// `(nopin_timeout, nopin_response_timeout)` of its ACLs.
    pub nopin: Vec<(u64, u64)>,
}

/// LIO's TPG attribute defaults (what a TPG without the attribute had).
const TPG_ATTR_DEFAULTS: &[(&str, i64)] = &[
    ("cache_dynamic_acls", 0),
    ("default_erl", 0),
    ("demo_mode_discovery", 1),
    ("login_keys_workaround", 1),
    ("login_timeout", 15),
    ("netif_timeout", 2),
    ("t10_pi", 0),
    ("fabric_prot_type", 0),
    ("tpg_enabled_sendtargets", 1),
];

/// TPG attributes this import carries (handled by name below).
const TPG_ATTR_CARRIED: &[&str] = &[
    "authentication",
    "default_cmdsn_depth",
    "demo_mode_write_protect",
    "generate_node_acls",
    "prod_mode_write_protect",
];

/// LIO's node ACL attribute defaults.
const ACL_ATTR_DEFAULTS: &[(&str, i64)] = &[
    ("dataout_timeout", 3),
    ("dataout_timeout_retries", 5),
    ("default_erl", 0),
    ("random_datain_pdu_offsets", 0),
    ("random_datain_seq_offsets", 0),
    ("random_r2t_offsets", 0),
];

/// LIO's TPG parameter defaults; the carried ones are handled by name.
const PARAM_DEFAULTS: &[(&str, &str)] = &[
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("DefaultTime2Retain", "20"),
    ("DefaultTime2Wait", "2"),
    ("ErrorRecoveryLevel", "0"),
    ("IFMarker", "No"),
    ("MaxConnections", "1"),
    ("MaxXmitDataSegmentLength", "262144"),
    ("OFMarker", "No"),
    ("TargetAlias", "LIO Target"),
    ("InitiatorRecvDataSegmentLength", "262144"),
    ("TargetRecvDataSegmentLength", "8192"),
    ("RDMAExtensions", "No"),
    ("iSERHCA", "No"),
];

/// Parameters that need no report whatever their value (markers are not used).
const PARAM_SILENT: &[&str] = &["IFMarkInt", "OFMarkInt"];

fn content(tpg: &Value) -> usize {
    arr(tpg, "luns").len() + arr(tpg, "node_acls").len() + arr(tpg, "portals").len()
}

fn tag_of(tpg: &Value) -> u16 {
    u(tpg, "tag")
        .and_then(|t| u16::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(1)
}

fn enabled(tpg: &Value) -> bool {
    match tpg.get("enable") {
        None | Some(Value::Null) => true,
        Some(_) => b(tpg, "enable"),
    }
}

/// The part of a TPG that decides access (LUNs, ACLs, attributes, parameters, CHAP):
/// two TPGs with the same can be two portal groups of one target.
fn access_part(tpg: &Value) -> Value {
    let mut v = tpg.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["tag", "portals", "enable"] {
            o.remove(k);
        }
    }
    v
}

/// A portal's address: `ip_address` (IPv6 with or without brackets) and `port`.
pub(crate) fn portal(p: &Value) -> Option<SocketAddr> {
    let ip = s(p, "ip_address").unwrap_or("0.0.0.0");
    let port = u(p, "port")
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or(3260);
    ip.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, port))
}

/// Every iSCSI target of the file.
pub(crate) fn targets(
    root: &Value,
    objects: &BTreeMap<String, Object>,
    cx: &mut Cx,
) -> Vec<Imported> {
    let mut out = Vec::new();
    for t in arr(root, "targets") {
        let wwn = s(t, "wwn").unwrap_or("?");
        let fabric = s(t, "fabric").unwrap_or("iscsi");
        if fabric != "iscsi" {
            cx.warn(format!(
                "target {wwn}: fabric {fabric} is not iSCSI; skipped"
            ));
            continue;
        }
        let iqn = wwn.to_lowercase();
        if iqn != wwn {
            cx.warn(format!(
                "target {wwn}: written in lowercase as {iqn} (iSCSI names compare \
                 case-insensitively)"
            ));
        }
        if let Err(m) = crate::config::check_iscsi_name(&iqn) {
            cx.warn(format!("target {wwn}: {m}; skipped"));
            continue;
        }
        let tpgs = arr(t, "tpgs");
        let Some(primary) = tpgs
            .iter()
            .enumerate()
            .max_by_key(|(n, g)| (content(g), std::cmp::Reverse(*n)))
            .map(|(_, g)| g)
        else {
            cx.warn(format!("target {wwn}: no TPG; skipped"));
            continue;
        };
        let mut groups = vec![Group {
            tag: tag_of(primary),
            portals: Vec::new(),
            enabled: enabled(primary),
        }];
        let mut kept = vec![primary];
        for g in tpgs {
            if std::ptr::eq(g, primary) {
                continue;
            }
            let tag = tag_of(g);
            if content(g) == 0 {
                cx.warn(format!(
                    "target {wwn}: tpg{tag} has no LUNs, ACLs or portals; not imported \
                     (tpg{} is)",
                    groups[0].tag
                ));
            } else if access_part(g) == access_part(primary) && !groups.iter().any(|x| x.tag == tag)
            {
                groups.push(Group {
                    tag,
                    portals: Vec::new(),
                    enabled: enabled(g),
                });
                kept.push(g);
            } else {
                cx.warn(format!(
                    "target {wwn}: tpg{tag} ({} LUNs, {} ACLs, {} portals) has other LUNs, \
                     ACLs or settings than tpg{}; a target serves one set of them here, so \
                     tpg{tag} is not imported and its portals do not serve this target",
                    arr(g, "luns").len(),
                    arr(g, "node_acls").len(),
                    arr(g, "portals").len(),
                    groups[0].tag
                ));
            }
        }
        for (g, tpg) in groups.iter_mut().zip(&kept) {
            for p in arr(tpg, "portals") {
                match portal(p) {
                    Some(a) => {
                        if !g.portals.contains(&a) {
                            g.portals.push(a);
                        }
                    }
                    None => cx.warn(format!(
                        "target {wwn}: portal {} is not an address; skipped",
                        p
                    )),
                }
                if b(p, "iser") || b(p, "offload") {
                    cx.warn(format!(
                        "target {wwn}: iSER/offload on portal {p} is not supported (plain \
                         TCP is served there)"
                    ));
                }
            }
        }
        let (config, cmdsn_depth, nopin) = tpg_config(wwn, &iqn, primary, objects, cx);
        out.push(Imported {
            name: iqn,
            config,
            groups,
            cmdsn_depth,
            nopin,
        });
    }
    out
}

/// Whether LIO asks CHAP of an initiator under this ACL `authentication` attribute
/// (`-1` or absent: the TPG's), the TPG's `authentication` and `AuthMethod`.
fn chap_required(acl_auth: Option<i64>, tpg_auth: bool, method: &str) -> bool {
    let offers = |m: &str| method.split(',').any(|x| x.trim().eq_ignore_ascii_case(m));
    if !offers("CHAP") {
        return false;
    }
    if !offers("None") {
        return true;
    }
    match acl_auth {
        Some(a) if a >= 0 => a != 0,
        _ => tpg_auth,
    }
}

/// The target configuration of the imported TPG, its command window and NOP timeouts.
fn tpg_config(
    wwn: &str,
    iqn: &str,
    tpg: &Value,
    objects: &BTreeMap<String, Object>,
    cx: &mut Cx,
) -> (TargetConfig, u64, Vec<(u64, u64)>) {
    let mut tc = TargetConfig::default();
    let attrs = tpg.get("attributes").cloned().unwrap_or(Value::Null);
    let params = tpg.get("parameters").cloned().unwrap_or(Value::Null);
    // LIO's defaults: CHAP enforced, demo mode write-protected, 64 commands.
    let tpg_auth = i(&attrs, "authentication").is_none_or(|v| v != 0);
    let method = s(&params, "AuthMethod").unwrap_or("CHAP,None").to_owned();
    let demo = b(&attrs, "generate_node_acls");
    let demo_ro = i(&attrs, "demo_mode_write_protect").is_none_or(|v| v != 0);
    let prod_ro = b(&attrs, "prod_mode_write_protect");
    let cmdsn_depth = u(&attrs, "default_cmdsn_depth").unwrap_or(64);
    if let Some(obj) = attrs.as_object() {
        for (k, v) in obj {
            if TPG_ATTR_CARRIED.contains(&k.as_str()) {
                continue;
            }
            match TPG_ATTR_DEFAULTS.iter().find(|(n, _)| n == k) {
                Some((_, d)) if i(&attrs, k) == Some(*d) => {}
                _ => cx.warn(format!(
                    "target {wwn}: TPG attribute {k} = {v} is not carried over"
                )),
            }
        }
    }
    params_of(wwn, &params, &mut tc, cx);

    // LUNs.
    let mut lun_so: BTreeMap<u64, String> = BTreeMap::new();
    let mut read_only_luns = BTreeSet::new();
    for lun in arr(tpg, "luns") {
        let index = u(lun, "index").unwrap_or(0);
        let so = s(lun, "storage_object").unwrap_or("?");
        let Some(obj) = objects.get(so) else {
            cx.warn(format!(
                "target {wwn}: LUN {index} uses {so}, which was not imported; skipped"
            ));
            continue;
        };
        if lun_so.values().any(|n| *n == obj.name) {
            cx.warn(format!(
                "target {wwn}: LUN {index} uses {so} a second time in this TPG; skipped"
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
        // The state of the LUN's ALUA group: LIO refuses I/O in standby (2), unavailable
        // (3) and offline (14); here every LUN is active/optimized.
        let group = s(lun, "alua_tg_pt_gp_name").unwrap_or("default_tg_pt_gp");
        match obj.alua.get(group).copied().unwrap_or(0) {
            0 => {}
            st @ (2 | 3 | 14) => cx.widen(format!(
                "target {wwn}: LUN {index}: its ALUA group {group} of {so} is in state {st} \
                 ({}), so LIO refused reads and writes through it; here the LUN is served \
                 active/optimized",
                match st {
                    2 => "standby",
                    3 => "unavailable",
                    _ => "offline",
                }
            )),
            st => cx.warn(format!(
                "target {wwn}: LUN {index}: ALUA access state {st} of group {group} is not \
                 carried; the LUN is reported active/optimized"
            )),
        }
        if obj.read_only {
            read_only_luns.insert(index);
        }
        lun_so.insert(index, obj.name.clone());
        tc.luns.push(LunConfig {
            lun: Some(index),
            backstore: obj.name.clone(),
        });
    }

    // Demo mode: every initiator, with the TPG's credentials.
    if demo {
        let need = chap_required(None, tpg_auth, &method);
        let (chap, mutual) = cx.pair(tpg, "chap_", iqn, &format!("target {wwn} CHAP"));
        if need && chap.is_none() {
            cx.warn(format!(
                "target {wwn}: demo mode asks CHAP but the TPG has no credentials, so no \
                 initiator could log in under LIO; imported without demo mode (no \
                 initiator can log in)"
            ));
        } else {
            tc.demo_mode = true;
            tc.demo_mode_read_only = demo_ro || !read_only_luns.is_empty();
            if !demo_ro && !read_only_luns.is_empty() {
                cx.warn(format!(
                    "target {wwn}: a read-only storage object is a LUN of this demo-mode \
                     target: every LUN of it is served read-only"
                ));
            }
            if need {
                tc.auth.chap = chap;
                tc.auth.mutual_chap = mutual;
            } else if chap.is_some() {
                cx.forget(&format!("target {wwn} CHAP"));
                cx.warn(format!(
                    "target {wwn}: TPG CHAP credentials were not asked by LIO \
                     (authentication=0 or AuthMethod without CHAP); not imported"
                ));
            }
        }
    } else if s(tpg, "chap_userid").is_some() {
        cx.warn(format!(
            "target {wwn}: TPG CHAP credentials apply only to demo mode in LIO, which is \
             off; not imported"
        ));
    }

    // ACLs.
    let mut nopin = Vec::new();
    let mut by_lower: BTreeMap<String, (String, AclConfig)> = BTreeMap::new();
    for acl in arr(tpg, "node_acls") {
        let Some(raw) = s(acl, "node_wwn") else {
            continue;
        };
        let init = raw.to_lowercase();
        let aattrs = acl.get("attributes").cloned().unwrap_or(Value::Null);
        if let (Some(a), Some(r)) = (
            u(&aattrs, "nopin_timeout"),
            u(&aattrs, "nopin_response_timeout"),
        ) {
            nopin.push((a, r));
        }
        if let Some(obj) = aattrs.as_object() {
            for (k, v) in obj {
                if matches!(
                    k.as_str(),
                    "nopin_timeout" | "nopin_response_timeout" | "authentication"
                ) {
                    continue;
                }
                match ACL_ATTR_DEFAULTS.iter().find(|(n, _)| n == k) {
                    Some((_, d)) if i(&aattrs, k) == Some(*d) => {}
                    _ => cx.warn(format!(
                        "target {wwn}: ACL {raw}: attribute {k} = {v} is not carried over"
                    )),
                }
            }
        }
        for depth_key in ["tcq_depth", "cmdsn_depth", "queue_depth"] {
            if let Some(d) = u(acl, depth_key)
                && d != cmdsn_depth
            {
                cx.warn(format!(
                    "target {wwn}: ACL {raw}: its command window ({depth_key} = {d}) is not \
                     carried; the daemon-wide window applies"
                ));
            }
        }
        if let Some(tag) = s(acl, "tag") {
            cx.warn(format!(
                "target {wwn}: ACL {raw}: ACL group tag {tag:?} is not carried (a label)"
            ));
        }
        let mut maps = Vec::new();
        for m in arr(acl, "mapped_luns") {
            let index = u(m, "index").unwrap_or(0);
            // Before 2012, rtslib wrote no tpg_lun: the mapped LUN had the TPG LUN's number.
            let tl = u(m, "tpg_lun").unwrap_or(index);
            if !lun_so.contains_key(&tl) {
                cx.warn(format!(
                    "target {wwn}: ACL {raw}: mapped LUN {index} points at LUN {tl}, which \
                     was not imported; skipped"
                ));
                continue;
            }
            maps.push(MappedLunConfig {
                lun: index,
                target_lun: (tl != index).then_some(tl),
                read_only: b(m, "write_protect") || prod_ro || read_only_luns.contains(&tl),
            });
        }
        if maps.is_empty() {
            cx.warn(format!(
                "target {wwn}: ACL {raw} maps no LUN (under LIO it sees none); here an ACL \
                 without mappings sees every LUN, so it is not imported"
            ));
            continue;
        }
        let what = format!("target {wwn} ACL {raw} CHAP");
        let need = chap_required(i(&aattrs, "authentication"), tpg_auth, &method);
        let (chap, mutual) = cx.pair(acl, "chap_", &format!("{iqn}.{init}"), &what);
        let mut ac = AclConfig {
            mapped_luns: maps,
            ..AclConfig::default()
        };
        match (need, chap.is_some()) {
            (true, true) => {
                ac.chap = chap;
                ac.mutual_chap = mutual;
            }
            (true, false) => {
                cx.forget(&what);
                cx.warn(format!(
                    "target {wwn}: ACL {raw}: LIO asks CHAP and the ACL has no credentials, \
                     so it could never log in; not imported"
                ));
                continue;
            }
            (false, true) => {
                cx.forget(&what);
                cx.warn(format!(
                    "target {wwn}: ACL {raw}: its CHAP credentials were not asked by LIO \
                     (authentication=0 or AuthMethod=None); not imported, the initiator \
                     logs in without CHAP as before"
                ));
            }
            (false, false) => {}
        }
        if demo && tc.demo_mode {
            // Demo mode and ACLs do not mix here: the ACL's initiator gets demo access.
            let all_demo = ac.chap.is_none()
                && ac.mapped_luns.len() == lun_so.len()
                && ac
                    .mapped_luns
                    .iter()
                    .all(|m| m.target_lun.is_none() && m.read_only == tc.demo_mode_read_only);
            cx.forget(&what);
            if all_demo {
                cx.warn(format!(
                    "target {wwn}: ACL {raw} dropped: demo mode gives it the same access"
                ));
            } else {
                cx.widen(format!(
                    "target {wwn}: ACL {raw} had narrower access (own LUN map or CHAP) than \
                     demo mode, which rustiscsi does not combine with ACLs: its initiator \
                     would get demo-mode access"
                ));
            }
            continue;
        }
        match by_lower.get(&init) {
            Some((first, existing)) => {
                cx.warn(format!(
                    "target {wwn}: ACLs {first} and {raw} are the same initiator name \
                     compared case-insensitively; {first} is kept"
                ));
                if *existing != ac {
                    cx.widen(format!(
                        "target {wwn}: ACLs {first} and {raw} collide and give different \
                         access; keeping {first} may give {raw}'s initiator more than LIO did"
                    ));
                }
                cx.forget(&what);
            }
            None => {
                by_lower.insert(init, (raw.to_owned(), ac));
            }
        }
    }
    for (init, (_, ac)) in by_lower {
        tc.acls.insert(init, ac);
    }
    (tc, cmdsn_depth, nopin)
}

/// TPG parameters: the negotiation keys are carried into the target's `[iscsi]`
/// (where they differ from the daemon's defaults); the others are reported unless LIO's
/// default.
fn params_of(wwn: &str, params: &Value, tc: &mut TargetConfig, cx: &mut Cx) {
    let Some(obj) = params.as_object() else {
        return;
    };
    let ours = IscsiLimits::default();
    let yes = |v: &str| v.eq_ignore_ascii_case("yes");
    let num = |v: &str| v.trim().parse::<u32>().ok();
    let digests = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter_map(|d| match d.to_ascii_uppercase().as_str() {
                "CRC32C" => Some("CRC32C".to_owned()),
                "NONE" => Some("None".to_owned()),
                _ => None,
            })
            .collect()
    };
    for (k, v) in obj {
        let v = v
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        let x = &mut tc.iscsi;
        match k.as_str() {
            "AuthMethod" => {}
            "HeaderDigest" => {
                let d = digests(&v);
                if d != ours.header_digest && !d.is_empty() {
                    x.header_digest = Some(d);
                }
            }
            "DataDigest" => {
                let d = digests(&v);
                if d != ours.data_digest && !d.is_empty() {
                    x.data_digest = Some(d);
                }
            }
            "InitialR2T" => x.initial_r2t = (yes(&v) != ours.initial_r2t).then_some(yes(&v)),
            "ImmediateData" => {
                x.immediate_data = (yes(&v) != ours.immediate_data).then_some(yes(&v));
            }
            "MaxBurstLength" => {
                x.max_burst_length = num(&v).filter(|n| *n != ours.max_burst_length);
            }
            "FirstBurstLength" => {
                x.first_burst_length = num(&v).filter(|n| *n != ours.first_burst_length);
            }
            "MaxRecvDataSegmentLength" => {
                x.max_recv_data_segment_length =
                    num(&v).filter(|n| *n != ours.max_recv_data_segment_length);
            }
            "MaxOutstandingR2T" => {
                x.max_outstanding_r2t = num(&v).filter(|n| *n != ours.max_outstanding_r2t);
            }
            k if PARAM_SILENT.contains(&k) => {}
            k => {
                let default = PARAM_DEFAULTS
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, d)| *d);
                if default != Some(v.as_str()) {
                    cx.warn(format!(
                        "target {wwn}: parameter {k}={v} is not carried over"
                    ));
                }
            }
        }
    }
}

/// Settings that are daemon-wide here but per TPG or ACL in LIO: the command window and
/// the NOP-In timeouts, carried (the smallest, and reported, when targets differ).
pub(crate) fn carry_daemon_wide(cx: &mut Cx, config: &mut Config, targets: &[Imported]) {
    let depths: BTreeSet<u64> = targets.iter().map(|t| t.cmdsn_depth).collect();
    if let Some(&min) = depths.iter().next() {
        config.iscsi.queue_depth = u32::try_from(min).unwrap_or(u32::MAX).clamp(1, 4096);
        if depths.len() > 1 {
            cx.warn(format!(
                "default_cmdsn_depth differs between targets ({depths:?}); the command window \
                 is daemon-wide here: {min} is used"
            ));
        }
    }
    let nop: BTreeSet<(u64, u64)> = targets
        .iter()
        .flat_map(|t| t.nopin.iter().copied())
        .collect();
    // LIO's defaults apply to ACLs that did not say (15 s interval, 30 s response).
    let (interval, timeout) = nop.iter().next().copied().unwrap_or((15, 30));
    config.daemon.nop_interval_secs = u32::try_from(interval).unwrap_or(u32::MAX);
    config.daemon.nop_timeout_secs = u32::try_from(timeout).unwrap_or(u32::MAX).max(1);
    if nop.len() > 1 {
        cx.warn(format!(
            "nopin_timeout / nopin_response_timeout differ between ACLs ({nop:?}); the NOP-In \
             timeouts are daemon-wide here: {interval}/{timeout} s are used"
        ));
    }
}
