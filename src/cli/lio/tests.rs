//! import-lio on saveconfig.json files of every shape rtslib-fb has written
//! (`tests/fixtures/lio-saveconfig.json`, `tests/fixtures/lio/*.json`).

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
    assert_eq!(acl.mapped_luns.len(), 2);
    assert!(acl.mapped_luns[1].read_only && acl.mapped_luns[1].target_lun.is_none());
    assert_eq!(imp.config.iscsi.queue_depth, 16);
    assert!(
        imp.secrets.is_empty(),
        "null CHAP fields are no credentials"
    );
    assert!(!says(&imp, "tcq_depth"), "tcq_depth equals the TPG's");
    assert!(imp.widening.is_empty(), "{:?}", imp.widening);
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
