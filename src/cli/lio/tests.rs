//! import-lio on saveconfig.json files of every shape rtslib-fb has written
//! (`tests/fixtures/lio-saveconfig.json`, `tests/fixtures/lio/*.json`), hand-written
//! from the fields each rtslib-fb release's `dump()` methods wrote:
//!
//! - `2011-first-save`: 2.1.fb1/fb2 (2011-12): no `fabric_modules`, `enable`,
//!   `parameters` or `tpg_lun`; all four `chap_*` of an ACL, empty when unset; ACL
//!   `tcq_depth`; fileio `buffered_mode`; ramdisks as `rd_mcp`; pscsi without `dev`.
//! - `2012-parameters`: fb3 to fb19 (2012): `fabric_modules` (written only when discovery
//!   auth is on), `tpg_lun`, `chap_*` only when set, `parameters`, `enable`, block
//!   `readonly` and `write_back`.
//! - `2013-tpg-auth`: fb37 to fb50 (2013-07 to 2014): TPG-level `chap_*`, ACL `tag`
//!   (fb26), portal `iser` (fb33), pscsi with `dev` and without `wwn` (fb28).
//! - `2014-tcmu-level`: fb51 to fb57: `user` storage objects with `config` and `level`.
//! - `2017-alua`, `lio-saveconfig`: fb59 to fb67: LUN and mapped LUN `alias` (fb59),
//!   portal `offload` (fb61), `alua_tpgs` and `alua_tg_pt_gp_name` (fb62), `nullio`.
//! - `2018-tcmu-control`: fb68 on: `user` with `hw_max_sectors` and `control`, string
//!   attribute values, fileio `aio`, ALUA access states, other fabrics' targets.
//! - `2025-modern`: 2.2.x: block `exclusive` (2.2.4).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::config::validate;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

const SECRETS: &str = "/etc/rustiscsi/secrets";

fn import(name: &str) -> Import {
    let imp = convert(&fixture(name), Some(Path::new(SECRETS))).unwrap();
    if let Err(e) = validate(imp.config.clone(), "import") {
        panic!("{name} does not validate: {e}");
    }
    imp
}

fn says(imp: &Import, needle: &str) -> bool {
    imp.warnings.iter().any(|w| w.contains(needle))
}

#[test]
fn identity_is_what_lio_presented() {
    let imp = import("lio-saveconfig.json");
    let b = &imp.config.backstores["md_block0"];
    assert_eq!(
        b.serial.as_deref(),
        Some("0b6b5c2d-6e7f-4a1b-9c3d-2e4f6a8b0c1d")
    );
    assert_eq!(
        b.wwn.as_deref(),
        Some("naa.60014050b6b5c2d6e7f4a1b9c3d2e4f6")
    );
    assert_eq!(b.vendor.as_deref(), Some("LIO-ORG"));
    // emulate_model_alias = 1: the object's name.
    assert_eq!(b.product.as_deref(), Some("md_block0"));
    // No model alias: the driver's name.
    assert_eq!(
        imp.config.backstores["vm1"].product.as_deref(),
        Some("FILEIO")
    );
    assert_eq!(
        imp.config.backstores["scratch"].product.as_deref(),
        Some("RAMDISK-MCP")
    );
    let old = import("lio/2011-first-save.json");
    assert_eq!(
        old.config.backstores["disk1"].product.as_deref(),
        Some("IBLOCK")
    );
    let alias = import("lio/2017-alua.json");
    assert_eq!(
        alias.config.backstores["shared_disk_with_a_long_name"]
            .product
            .as_deref(),
        Some("shared_disk_wit")
    );
}

#[test]
fn the_current_fixture_converts() {
    let imp = import("lio-saveconfig.json");
    let c = &imp.config;
    assert_eq!(c.backstores["vm1"].size, Some(Size(100 << 30)));
    assert!(c.backstores["vm1"].write_cache);
    assert!(!c.backstores.contains_key("tape0"), "pscsi is skipped");
    let t = &c.targets["iqn.2003-01.org.linux-iscsi.nas.x8664:sn.4f2c8e9a1b3d"];
    assert_eq!(t.luns.len(), 2);
    let acl = &t.acls["iqn.2005-03.org.open-iscsi:client1"];
    assert_eq!(acl.chap.as_ref().unwrap().user, "client1");
    assert_eq!(acl.mutual_chap.as_ref().unwrap().user, "nas");
    assert!(acl.mapped_luns.iter().any(|m| m.lun == 1 && m.read_only));
    assert_eq!(c.discovery.chap.as_ref().unwrap().user, "discover");
    assert_eq!(c.daemon.portals, vec!["0.0.0.0:3260".parse().unwrap()]);
    assert_eq!(imp.secrets.len(), 3, "{:?}", imp.secrets);
    // Per-target negotiation: LIO's CRC32C preference and 8 KiB segments.
    assert_eq!(
        t.iscsi.header_digest.as_deref(),
        Some(&["CRC32C".to_owned(), "None".to_owned()][..])
    );
    assert_eq!(t.iscsi.max_recv_data_segment_length, Some(8192));
    assert_eq!(c.iscsi.queue_depth, 64);
    assert_eq!(
        (c.daemon.nop_interval_secs, c.daemon.nop_timeout_secs),
        (15, 30)
    );
    let toml = crate::config::to_toml(c);
    for s in &imp.secrets {
        assert!(!toml.contains(&s.value), "secret leaked into the TOML");
    }
    for expected in ["pscsi", "tpg2", "ALUA", "MaxConnections=4", "loopback"] {
        assert!(
            says(&imp, expected),
            "no report of {expected}:\n{:#?}",
            imp.warnings
        );
    }
    assert!(!says(&imp, "IFMarkInt") && !says(&imp, "OFMarkInt"));
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn the_2011_shape_without_tpg_lun_or_parameters() {
    let imp = import("lio/2011-first-save.json");
    let t = &imp.config.targets["iqn.2003-01.org.linux-iscsi.oldnas.x8664:sn.0123456789ab"];
    let acl = &t.acls["iqn.1994-05.com.redhat:oldclient"];
    // No tpg_lun: the mapped LUN had the TPG LUN's number; write_protect kept.
    assert!(acl.mapped_luns[1].read_only && acl.mapped_luns[1].target_lun.is_none());
    assert_eq!(imp.config.iscsi.queue_depth, 16);
    assert!(
        imp.secrets.is_empty(),
        "empty CHAP fields (rtslib-fb wrote all four until 2.1.fb8) are no credentials"
    );
    assert!(!says(&imp, "tcq_depth"), "tcq_depth equals the TPG's");
    // Identity of every kind of object of the first shape, rd_mcp included.
    let b = &imp.config.backstores;
    assert_eq!(
        b["rd1"].wwn.as_deref(),
        Some(identity::naa_from_serial("a0b1c2d3-e4f5-4a6b-9c8d-7e6f5a4b3c2d").as_str())
    );
    assert_eq!(
        b["vm0"].serial.as_deref(),
        Some("b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e")
    );
    // buffered_mode: the fileio write-back setting before write_back (2.1.fb20).
    assert!(b["vm0"].write_cache);
    assert!(!b["disk1"].write_cache);
    // pscsi is not carried: reported, its LUN and the mapping to it dropped.
    assert!(!b.contains_key("tape"));
    assert!(says(&imp, "pscsi/tape"));
    assert!(says(&imp, "LUN 3 uses /backstores/pscsi/tape"));
    assert_eq!(t.luns.len(), 3);
    assert_eq!(acl.mapped_luns.len(), 3);
    assert!(
        t.enabled,
        "no `enable` before 2.1.fb13: the TPG was enabled"
    );
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn tpg_chap_acl_tags_iser_and_pscsi_without_wwn_of_2013() {
    let imp = import("lio/2013-tpg-auth.json");
    let c = &imp.config;
    // TPG-level CHAP (2.1.fb37) of a demo-mode TPG with authentication=1: kept.
    let d = &c.targets["iqn.2003-01.org.linux-iscsi.san13.x8664:sn.demo0001"];
    assert!(d.demo_mode && !d.demo_mode_read_only);
    assert_eq!(d.auth.chap.as_ref().unwrap().user, "labuser");
    assert_eq!(d.auth.mutual_chap.as_ref().unwrap().user, "labtarget");
    // The demo-mode target listens on 127.0.0.1 only (its own portal group), so demo
    // mode is not on the network although the other target is: nothing widened, no
    // switch set, and the result validates.
    assert_eq!(
        d.network_portals(&c.daemon.portals),
        Vec::<std::net::SocketAddr>::new()
    );
    assert!(!c.daemon.allow_demo_mode_on_network);
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
    crate::config::validate(c.clone(), "import").expect("the import validates");
    // Mutual discovery CHAP.
    assert_eq!(c.discovery.chap.as_ref().unwrap().user, "finder");
    assert_eq!(c.discovery.mutual_chap.as_ref().unwrap().user, "storage13");
    assert_eq!(imp.secrets.len(), 4, "{:?}", imp.secrets);
    // ACL tags (2.1.fb26) are a label: reported, the ACLs kept as they were.
    let l = &c.targets["iqn.2003-01.org.linux-iscsi.san13.x8664:sn.lab00001"];
    assert!(says(&imp, "ACL group tag \"hypervisors\""));
    assert_eq!(l.acls.len(), 2);
    // The read-only block object stays read-only through every mapping.
    for acl in l.acls.values() {
        assert!(acl.mapped_luns.iter().all(|m| m.read_only == (m.lun == 1)));
    }
    // pscsi without wwn (2.1.fb28): reported and its LUN dropped, hv02's mapping too.
    assert!(says(&imp, "pscsi/changer"));
    assert_eq!(l.luns.len(), 2);
    assert_eq!(l.acls["iqn.1994-05.com.redhat:hv02"].mapped_luns.len(), 2);
    // iser (2.1.fb33): LIO kept TCP on the portal beside iSER; reported.
    assert!(says(&imp, "iSER/offload"));
    assert_eq!(
        c.backstores["lab"].wwn.as_deref(),
        Some(identity::naa_from_serial("e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7").as_str())
    );
    assert_eq!(
        c.backstores["swap"].serial.as_deref(),
        Some("a3b4c5d6-e7f8-4091-a2b3-c4d5e6f7a8b9")
    );
    assert!(says(&imp, "cache_dynamic_acls"));
}

#[test]
fn user_backstores_of_2014_are_reported() {
    let imp = import("lio/2014-tcmu-level.json");
    let c = &imp.config;
    assert!(!c.backstores.contains_key("tcmu0"));
    assert!(
        says(
            &imp,
            "user/tcmu0 (handler config \"file//srv/tcmu/cephproxy.raw\")"
        ),
        "{:#?}",
        imp.warnings
    );
    let t = &c.targets["iqn.2003-01.org.linux-iscsi.tcmu14.x8664:sn.5e5e5e5e5e5e"];
    assert_eq!(t.luns.len(), 1);
    let acl = &t.acls["iqn.1991-05.com.microsoft:fs14"];
    assert_eq!(acl.mapped_luns.len(), 1);
    assert!(acl.mapped_luns[0].read_only, "write_protect kept");
    assert!(says(&imp, "mapped LUN 0 points at LUN 0"));
    assert_eq!(
        c.backstores["local"].serial.as_deref(),
        Some("c5d6e7f8-a9b0-41c2-83d4-e5f6a7b8c9d0")
    );
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn user_control_alua_states_offload_and_other_fabrics_of_2018() {
    let imp = convert(&fixture("lio/2018-tcmu-control.json"), None).unwrap();
    validate(imp.config.clone(), "import").unwrap();
    let c = &imp.config;
    assert!(says(
        &imp,
        "user/vmstore (handler config \"rbd/rbd/vmstore\")"
    ));
    let db = &c.backstores["db"];
    assert_eq!(
        db.serial.as_deref(),
        Some("e7f8a9b0-c1d2-43e4-85f6-a7b8c9d0e1f2")
    );
    assert_eq!(
        db.wwn.as_deref(),
        Some(identity::naa_from_serial("e7f8a9b0-c1d2-43e4-85f6-a7b8c9d0e1f2").as_str())
    );
    assert_eq!(db.product.as_deref(), Some("db"));
    assert!(says(&imp, "aio=true"));
    assert!(says(&imp, "ALUA group site_b is not supported"));
    // Active/non-optimized in the default group: reported, I/O was allowed.
    assert!(says(&imp, "ALUA access state 1 of group default_tg_pt_gp"));
    // Standby: LIO refused I/O through that target's LUN; served here, so it widens.
    let w = imp.widening.join("\n");
    assert!(
        w.contains("ALUA group site_b of /backstores/fileio/db is in state 2 (standby)"),
        "{w}"
    );
    assert_eq!(imp.widening.len(), 1, "{w}");
    // cxgbit offload on a portal (2.1.fb61): TCP stays; reported.
    assert!(says(&imp, "iSER/offload on portal"));
    // Other fabrics: reported, not served.
    assert!(says(&imp, "fabric qla2xxx is not iSCSI"));
    assert!(says(&imp, "fabric vhost is not iSCSI"));
    assert_eq!(c.targets.len(), 2);
}

#[test]
fn access_is_kept_as_lio_enforced_it() {
    let imp = import("lio/2012-parameters.json");
    let c = &imp.config;
    let ro = &c.targets["iqn.2012-06.org.example.nas:ro"];
    // authentication=1: the ACL with credentials keeps CHAP; the one without could never
    // log in under LIO and is not imported.
    assert_eq!(
        ro.acls["iqn.1994-05.com.redhat:client-a"]
            .chap
            .as_ref()
            .unwrap()
            .user,
        "client-a"
    );
    assert!(!ro.acls.contains_key("iqn.1994-05.com.redhat:nocreds"));
    assert!(says(&imp, "could never log in"));
    // A read-only block object: its mappings are read-only.
    assert!(ro.acls["iqn.1994-05.com.redhat:client-a"].mapped_luns[0].read_only);
    // prod_mode_write_protect and a disabled TPG.
    let p = &c.targets["iqn.2012-06.org.example.nas:prodro"];
    assert!(p.acls["iqn.1994-05.com.redhat:client-b"].mapped_luns[0].read_only);
    assert!(!p.enabled, "a disabled TPG stays disabled");
    // authentication=0: credentials LIO never asked are not imported (and not written).
    assert!(p.acls["iqn.1994-05.com.redhat:client-b"].chap.is_none());
    assert!(imp.secrets.iter().all(|s| !s.what.contains("client-b")));
    assert_eq!(c.discovery.chap.as_ref().unwrap().user, "disc");
    assert!(!says(&imp, "IFMarkInt"));
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn tpgs_names_and_parameters_of_2017() {
    let imp = import("lio/2017-alua.json");
    let c = &imp.config;
    // The empty tpg1 does not win over tpg2, which has the LUNs, ACLs and portal.
    let z = &c.targets["iqn.2017-00.org.example.nas:month-zero"];
    assert_eq!(z.luns.len(), 2);
    assert!(says(&imp, "tpg1 has no LUNs"));
    assert_eq!(z.portal_groups.len(), 1);
    assert_eq!(z.portal_groups[0].tag, 2);
    assert_eq!(
        z.portal_groups[0].portals,
        vec!["[::]:3260".parse().unwrap()]
    );
    // Per-ACL authentication=1 keeps CHAP although the TPG's is 0.
    let acl = &z.acls["iqn.1994-05.com.redhat:mixedcase"];
    assert_eq!(acl.chap.as_ref().unwrap().user, "mixed");
    // Names that collide case-insensitively are reported (same access: no widening).
    assert!(says(&imp, "case-insensitively"));
    // Parameters carried per target.
    let x = &z.iscsi;
    assert_eq!(x.header_digest.as_deref(), Some(&["CRC32C".to_owned()][..]));
    assert_eq!(x.data_digest.as_deref(), Some(&["CRC32C".to_owned()][..]));
    let merged = x.over(&c.iscsi);
    assert!(!merged.initial_r2t && !merged.immediate_data);
    assert_eq!(x.max_burst_length, Some(524_288));
    assert_eq!(x.first_burst_length, Some(131_072));
    assert_eq!(x.max_outstanding_r2t, Some(4));
    assert_eq!(c.iscsi.queue_depth, 32);
    assert_eq!(
        (c.daemon.nop_interval_secs, c.daemon.nop_timeout_secs),
        (20, 40)
    );
    // Two TPGs with the same LUNs and ACLs: two portal groups, the disabled one kept so.
    let s = &c.targets["iqn.2017-17.org.example.nas:month-seventeen"];
    let tags: Vec<(u16, bool)> = s.portal_groups.iter().map(|g| (g.tag, g.enabled)).collect();
    assert_eq!(tags, vec![(1, true), (2, false)]);
    // One backstore behind two targets.
    assert_eq!(s.luns[0].backstore, z.luns[0].backstore);
    // [::0] serves IPv4 too: it becomes the dual-stack [::].
    assert!(c.daemon.portals.contains(&"[::]:3260".parse().unwrap()));
    assert!(says(&imp, "nullio"));
    // Month 00 and 17: accepted, with a warning of the configuration.
    let v = validate(c.clone(), "import").unwrap();
    assert_eq!(
        v.warnings
            .iter()
            .filter(|w| w.contains("LIO accepts it"))
            .count(),
        2,
        "{:#?}",
        v.warnings
    );
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn modern_shape_demo_mode_and_chap_only() {
    let imp = import("lio/2025-modern.json");
    let c = &imp.config;
    let d = &c.targets["iqn.2025-01.org.example.lab:demo"];
    assert!(
        d.demo_mode && d.demo_mode_read_only,
        "demo_mode_write_protect kept"
    );
    assert!(!c.daemon.allow_demo_mode_on_network, "loopback only");
    let md = &c.targets["iqn.2025-01.org.example.lab:md"];
    let acl = &md.acls["iqn.2025-01.org.example.lab:host1"];
    assert_eq!(acl.mutual_chap.as_ref().unwrap().user, "target");
    assert!(says(&imp, "aio=true"));
    assert!(says(&imp, "cache_dynamic_acls"));
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
}

#[test]
fn widening_is_listed() {
    let imp = convert(&fixture("lio/widening.json"), None).unwrap();
    let w = imp.widening.join("\n");
    for needle in [
        "demo mode (generate_node_acls=1) on a network portal",
        "narrower access",
        "collide and give different access",
        "discovery authentication is enabled in LIO without usable credentials",
    ] {
        assert!(w.contains(needle), "no {needle:?} in:\n{w}");
    }
}

#[test]
fn secrets_dir_only_when_a_secret_is_carried() {
    // Credentials that LIO never asked for are not carried: no directory needed.
    let imp = convert(&fixture("lio/no-secrets.json"), None).unwrap();
    assert!(imp.secrets.is_empty());
    assert!(says(&imp, "were not asked by LIO"));
    let e = convert(&fixture("lio-saveconfig.json"), None).unwrap_err();
    assert!(e.contains("--secrets-dir"), "{e}");
    assert!(convert(&fixture("lio-saveconfig.json"), Some(Path::new("rel"))).is_err());
    assert!(convert("[1]", None).is_err());
    assert!(convert("nope", None).is_err());
}

#[test]
fn writes_secret_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("secrets");
    let imp = convert(&fixture("lio-saveconfig.json"), Some(&sd)).unwrap();
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
    write_secrets(&imp.secrets).unwrap();
    std::fs::write(&imp.secrets[0].path, "other\n").unwrap();
    assert!(write_secrets(&imp.secrets).is_err());
}
