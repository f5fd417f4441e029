//! rustiscsi.toml(5) (`doc/rustiscsi.toml.5`, hand-written) documents every key of the
//! configuration model, and no key the model does not have.
//!
//! The model's keys come from serialising a configuration in which every field is set (a
//! struct literal without `..Default::default()`, so adding a field to a config struct does
//! not compile until it is added here too, and then this test asks for its documentation).
//! Keys are grouped by table the way the page groups them: user-chosen names (backstores,
//! target and initiator names) become `NAME`, `IQN`, `INITIATOR`; CHAP tables are one table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rustiscsi::backstore::{BackstoreKind, CacheMode};
use rustiscsi::config::{
    AclConfig, AuthConfig, BackstoreConfig, ChapConfig, Config, Daemon, Discovery, IscsiLimits,
    LunConfig, MappedLunConfig, Size, TargetConfig,
};

fn chap(name: &str) -> Option<ChapConfig> {
    Some(ChapConfig {
        user: name.into(),
        password_file: PathBuf::from(format!("/run/secrets/{name}")),
    })
}

/// A configuration with every field of every table set.
fn everything() -> Config {
    let daemon = Daemon {
        portals: vec!["127.0.0.1:3260".parse().unwrap()],
        state_dir: "/var/lib/rustiscsi".into(),
        control_socket: "/run/rustiscsi/control.sock".into(),
        allow_demo_mode_on_network: false,
        max_connections: 1,
        max_login_connections: 1,
        max_discovery_sessions: 1,
        login_timeout_secs: 1,
        pdu_timeout_secs: 1,
        send_timeout_secs: 1,
        tcp_keepalive_secs: 1,
        buffer_memory: Size(1 << 30),
        session_buffer_memory: Size(128 << 20),
        nop_interval_secs: 1,
        nop_timeout_secs: 1,
        auth_failures_per_minute: 1,
        metrics_listen: Some("127.0.0.1:9755".parse().unwrap()),
        managed_by: Some("test".into()),
    };
    let iscsi = IscsiLimits {
        max_recv_data_segment_length: 512,
        max_burst_length: 512,
        first_burst_length: 512,
        max_outstanding_r2t: 1,
        immediate_data: true,
        initial_r2t: false,
        queue_depth: 1,
        header_digest: vec!["None".into()],
        data_digest: vec!["None".into()],
    };
    let backstore = BackstoreConfig {
        kind: BackstoreKind::Fileio,
        path: Some("/srv/a.img".into()),
        size: Some(Size(1 << 20)),
        block_size: 512,
        write_cache: false,
        cache: Some(CacheMode::Buffered),
        serial: Some("S".into()),
        wwn: Some("naa.5000000000000001".into()),
        vendor: Some("V".into()),
        product: Some("P".into()),
    };
    let acl = AclConfig {
        mapped_luns: vec![MappedLunConfig {
            lun: 0,
            target_lun: Some(0),
            read_only: false,
        }],
        chap: chap("c"),
        mutual_chap: chap("m"),
        allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
    };
    let target = TargetConfig {
        tpg: 1,
        enabled: true,
        portal_groups: vec![rustiscsi::config::PortalGroupConfig {
            tag: 1,
            portals: vec!["127.0.0.1:3260".parse().unwrap()],
            enabled: true,
        }],
        demo_mode_read_only: false,
        iscsi: rustiscsi::config::TargetIscsi {
            max_recv_data_segment_length: Some(8192),
            max_burst_length: Some(262_144),
            first_burst_length: Some(65_536),
            max_outstanding_r2t: Some(1),
            immediate_data: Some(true),
            initial_r2t: Some(true),
            header_digest: Some(vec!["None".into()]),
            data_digest: Some(vec!["None".into()]),
        },
        luns: vec![LunConfig {
            lun: Some(0),
            backstore: "a".into(),
        }],
        demo_mode: false,
        auth: AuthConfig {
            chap: chap("t"),
            mutual_chap: chap("tm"),
        },
        allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
        acls: BTreeMap::from([("iqn.2026-11.org.example:c".to_string(), acl)]),
    };
    Config {
        daemon,
        iscsi,
        discovery: Discovery {
            chap: chap("d"),
            mutual_chap: chap("dm"),
        },
        backstores: BTreeMap::from([("a".to_string(), backstore)]),
        targets: BTreeMap::from([("iqn.2026-11.org.example:t".to_string(), target)]),
    }
}

/// The table a key's value opens, named as the page names it.
fn child(table: &str, key: &str) -> String {
    match (table, key) {
        (_, "chap" | "mutual_chap") => "chap".into(),
        (".", k) => k.into(),
        (t, k) => format!("{t}.{k}"),
    }
}

/// Tables whose keys are names chosen by the user, and the placeholder the page uses.
fn map_placeholder(table: &str) -> Option<&'static str> {
    match table {
        "backstores" => Some("NAME"),
        "targets" => Some("IQN"),
        t if t.ends_with(".acls") => Some("INITIATOR"),
        _ => None,
    }
}

fn walk(v: &toml::Value, table: &str, out: &mut BTreeSet<(String, String)>) {
    let Some(t) = v.as_table() else { return };
    for (k, x) in t {
        out.insert((table.to_string(), k.clone()));
        let c = child(table, k);
        match x {
            toml::Value::Table(entries) => match map_placeholder(&c) {
                Some(p) => {
                    for e in entries.values() {
                        walk(e, &format!("{c}.{p}"), out);
                    }
                }
                None => walk(x, &c, out),
            },
            toml::Value::Array(items) => {
                for e in items {
                    walk(e, &c, out);
                }
            }
            _ => {}
        }
    }
}

/// (table, key) pairs the page documents: `.\" table: T` then `.TP` / `.B key`; a
/// `.\" table: -` ends the key lists.
fn documented(page: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let mut table: Option<String> = None;
    let mut after_tp = false;
    for line in page.lines() {
        if let Some(t) = line.strip_prefix(".\\\" table: ") {
            table = Some(t.trim().to_string()).filter(|t| t != "-");
        } else if line == ".TP" {
            after_tp = true;
            continue;
        } else if after_tp && let (Some(t), Some(k)) = (&table, line.strip_prefix(".B ")) {
            out.insert((t.clone(), k.trim().to_string()));
        }
        after_tp = false;
    }
    out
}

#[test]
fn rustiscsi_toml_5_documents_every_key_of_the_model() {
    let value = toml::Value::try_from(everything()).expect("the model serialises");
    let mut model = BTreeSet::new();
    walk(&value, ".", &mut model);
    let page = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("doc/rustiscsi.toml.5"),
    )
    .expect("doc/rustiscsi.toml.5");
    let docs = documented(&page);

    let undocumented: Vec<_> = model.difference(&docs).collect();
    let unknown: Vec<_> = docs.difference(&model).collect();
    assert!(
        undocumented.is_empty(),
        "keys of src/config/mod.rs missing from doc/rustiscsi.toml.5 (table, key): {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "doc/rustiscsi.toml.5 documents keys the model does not have (table, key): {unknown:?}"
    );
    // Sanity: the walk saw the nested tables.
    assert!(model.contains(&(
        "targets.IQN.acls.INITIATOR.mapped_luns".into(),
        "read_only".into()
    )));
    assert!(model.contains(&("chap".into(), "password_file".into())));
}
