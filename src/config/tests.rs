//! One small test per rule: each asserts the line and key path of the error.

use std::path::Path;

use super::*;

const T: &str = "iqn.2026-11.org.example:t";

/// Parses `text`, expects an error at `line` / `key` whose message contains `needle`.
#[track_caller]
fn assert_err(text: &str, line: usize, key: &str, needle: &str) {
    let e = parse(text, "test.toml").expect_err("expected an error");
    assert_eq!(e.file, "test.toml", "{e}");
    assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
    assert!(e.message.contains(needle), "{e:?} lacks {needle:?}");
}

/// Parses `text`, expects success and a warning containing `line: key: ` and `needle`.
#[track_caller]
fn assert_warn(text: &str, line: usize, key: &str, needle: &str) {
    let v = parse(text, "test.toml").unwrap_or_else(|e| panic!("unexpected error: {e}"));
    let prefix = format!("test.toml:{line}: {key}: ");
    assert!(
        v.warnings
            .iter()
            .any(|w| w.starts_with(&prefix) && w.contains(needle)),
        "no warning {prefix}…{needle} in {:#?}",
        v.warnings
    );
}

#[track_caller]
fn assert_ok(text: &str) -> ValidatedConfig {
    parse(text, "test.toml").unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

// ----- syntax and serde errors -------------------------------------------------------

#[test]
fn syntax_error_names_line() {
    let e = parse(
        "[daemon]\nportals = [\"127.0.0.1:3260\"\nmax_connections = 3\n",
        "f",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.key.starts_with("daemon.portals"), "{e}");
}

#[test]
fn unknown_key() {
    assert_err(
        "[daemon]\nstate_dir = \"/var/lib/x\"\nportal = [\"127.0.0.1:3260\"]\n",
        3,
        "daemon.portal",
        "unknown field `portal`",
    );
}

#[test]
fn unknown_key_in_inline_lun() {
    let text = format!(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1M\"\n\n[targets.\"{T}\"]\nluns = [\n  {{ lun = 0, backstore = \"a\", readonly = true }},\n]\n"
    );
    assert_err(
        &text,
        7,
        &format!("targets.\"{T}\".luns[0].readonly"),
        "unknown field `readonly`",
    );
}

#[test]
fn unknown_top_level_table() {
    assert_err("\n[deamon]\n", 2, "deamon", "unknown field `deamon`");
}

#[test]
fn wrong_type() {
    assert_err(
        "[daemon]\nmax_connections = \"many\"\n",
        2,
        "daemon.max_connections",
        "invalid type",
    );
}

#[test]
fn missing_field() {
    let text = format!("[targets.\"{T}\"]\nluns = [\n  {{ lun = 0 }},\n]\n");
    assert_err(
        &text,
        3,
        &format!("targets.\"{T}\".luns[0].backstore"),
        "missing field `backstore`",
    );
}

#[test]
fn bad_backstore_kind() {
    assert_err(
        "[backstores.a]\nkind = \"nbd\"\n",
        2,
        "backstores.a.kind",
        "unknown variant `nbd`",
    );
}

#[test]
fn bad_size() {
    assert_err(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1Q\"\n",
        3,
        "backstores.a.size",
        "unknown size unit",
    );
}

#[test]
fn bad_portal_syntax() {
    assert_err(
        "[daemon]\nportals = [\n  \"127.0.0.1:3260\",\n  \"nas:3260\",\n]\n",
        4,
        "daemon.portals[1]",
        "IP:port",
    );
}

// ----- daemon --------------------------------------------------------------------------

#[test]
fn portals_required() {
    assert_err(
        "[daemon]\nportals = []\n",
        2,
        "daemon.portals",
        "at least one portal",
    );
}

#[test]
fn portals_unique() {
    assert_err(
        "[daemon]\nportals = [\n  \"127.0.0.1:3260\",\n  \"127.0.0.1:3260\",\n]\n",
        4,
        "daemon.portals[1]",
        "listed twice",
    );
}

#[test]
fn portal_overlapping_wildcard() {
    assert_err(
        "[daemon]\nportals = [\"0.0.0.0:3260\", \"192.168.1.2:3260\"]\n",
        2,
        "daemon.portals[1]",
        "overlaps the wildcard",
    );
    // Another port or another family is fine.
    assert_ok("[daemon]\nportals = [\"0.0.0.0:3260\", \"192.168.1.2:3261\", \"[::1]:3260\"]\n");
}

#[test]
fn portal_port_zero() {
    assert_err(
        "[daemon]\nportals = [\"127.0.0.1:0\"]\n",
        2,
        "daemon.portals[0]",
        "port 0",
    );
}

#[test]
fn state_dir_absolute() {
    assert_err(
        "[daemon]\n\nstate_dir = \"var/lib/rustiscsi\"\n",
        3,
        "daemon.state_dir",
        "absolute",
    );
}

#[test]
fn control_socket_absolute() {
    assert_err(
        "[daemon]\ncontrol_socket = \"control.sock\"\n",
        2,
        "daemon.control_socket",
        "absolute",
    );
}

#[test]
fn max_connections_at_least_one() {
    assert_err(
        "[daemon]\nmax_connections = 0\n",
        2,
        "daemon.max_connections",
        "at least 1",
    );
}

#[test]
fn login_timeout_at_least_one() {
    assert_err(
        "[daemon]\nlogin_timeout_secs = 0\n",
        2,
        "daemon.login_timeout_secs",
        "at least 1",
    );
}

#[test]
fn nop_timeout_needed_with_interval() {
    assert_err(
        "[daemon]\nnop_timeout_secs = 0\n",
        2,
        "daemon.nop_timeout_secs",
        "nop_interval_secs",
    );
    assert_ok("[daemon]\nnop_interval_secs = 0\nnop_timeout_secs = 0\n");
}

#[test]
fn metrics_not_on_a_portal() {
    assert_err(
        "[daemon]\nportals = [\"127.0.0.1:3260\"]\nmetrics_listen = \"127.0.0.1:3260\"\n",
        3,
        "daemon.metrics_listen",
        "also an iSCSI portal",
    );
}

// ----- iscsi limits --------------------------------------------------------------------

#[test]
fn max_recv_data_segment_length_range() {
    assert_err(
        "[iscsi]\nmax_recv_data_segment_length = 511\n",
        2,
        "iscsi.max_recv_data_segment_length",
        "512..=16777215",
    );
    assert_err(
        "[iscsi]\nmax_recv_data_segment_length = 16777216\n",
        2,
        "iscsi.max_recv_data_segment_length",
        "512..=16777215",
    );
    assert_ok("[iscsi]\nmax_recv_data_segment_length = 16777215\n");
}

#[test]
fn burst_length_ranges() {
    assert_err(
        "[iscsi]\nmax_burst_length = 100\nfirst_burst_length = 100\n",
        2,
        "iscsi.max_burst_length",
        "512..=16777215",
    );
    assert_err(
        "[iscsi]\n\nfirst_burst_length = 16777216\nmax_burst_length = 16777215\n",
        3,
        "iscsi.first_burst_length",
        "512..=16777215",
    );
}

#[test]
fn first_burst_not_above_max_burst() {
    assert_err(
        "[iscsi]\nmax_burst_length = 65536\nfirst_burst_length = 131072\n",
        3,
        "iscsi.first_burst_length",
        "must not exceed max_burst_length",
    );
}

#[test]
fn max_outstanding_r2t_range() {
    assert_err(
        "[iscsi]\nmax_outstanding_r2t = 0\n",
        2,
        "iscsi.max_outstanding_r2t",
        "1..=65535",
    );
    assert_err(
        "[iscsi]\nmax_outstanding_r2t = 65536\n",
        2,
        "iscsi.max_outstanding_r2t",
        "1..=65535",
    );
}

#[test]
fn queue_depth_range() {
    assert_err(
        "[iscsi]\nqueue_depth = 0\n",
        2,
        "iscsi.queue_depth",
        "1..=4096",
    );
    assert_err(
        "[iscsi]\nqueue_depth = 4097\n",
        2,
        "iscsi.queue_depth",
        "1..=4096",
    );
}

#[test]
fn digest_lists() {
    assert_err(
        "[iscsi]\nheader_digest = []\n",
        2,
        "iscsi.header_digest",
        "at least one",
    );
    assert_err(
        "[iscsi]\ndata_digest = [\n  \"None\",\n  \"crc32c\",\n]\n",
        4,
        "iscsi.data_digest[1]",
        "unknown digest",
    );
    assert_err(
        "[iscsi]\ndata_digest = [\"None\", \"None\"]\n",
        2,
        "iscsi.data_digest[1]",
        "listed twice",
    );
}

// ----- CHAP ----------------------------------------------------------------------------

#[test]
fn discovery_mutual_requires_chap() {
    assert_err(
        "[discovery]\nmutual_chap = { user = \"nas\", password_file = \"/run/s\" }\n",
        2,
        "discovery.mutual_chap",
        "needs chap",
    );
}

#[test]
fn target_auth_mutual_requires_chap() {
    let text = format!(
        "[targets.\"{T}\"]\ndemo_mode = true\n[targets.\"{T}\".auth]\nmutual_chap = {{ user = \"nas\", password_file = \"/run/s\" }}\n"
    );
    assert_err(
        &text,
        4,
        &format!("targets.\"{T}\".auth.mutual_chap"),
        "needs chap",
    );
}

#[test]
fn acl_mutual_requires_chap() {
    let text = format!(
        "[targets.\"{T}\".acls.\"iqn.2026-11.org.example:i\"]\nmutual_chap = {{ user = \"nas\", password_file = \"/run/s\" }}\n"
    );
    assert_err(
        &text,
        2,
        &format!("targets.\"{T}\".acls.\"iqn.2026-11.org.example:i\".mutual_chap"),
        "needs chap",
    );
}

#[test]
fn mutual_chap_same_secret() {
    assert_err(
        "[discovery]\nchap = { user = \"a\", password_file = \"/run/s\" }\n\
         mutual_chap = { user = \"a\", password_file = \"/run/s\" }\n",
        3,
        "discovery.mutual_chap.password_file",
        "different secrets",
    );
    assert_ok(
        "[discovery]\nchap = { user = \"a\", password_file = \"/run/s\" }\n\
         mutual_chap = { user = \"a\", password_file = \"/run/m\" }\n",
    );
}

#[test]
fn chap_user_non_empty() {
    assert_err(
        "[discovery.chap]\nuser = \"\"\npassword_file = \"/run/s\"\n",
        2,
        "discovery.chap.user",
        "cannot be empty",
    );
}

#[test]
fn chap_password_file_absolute() {
    assert_err(
        "[discovery.chap]\nuser = \"u\"\npassword_file = \"secret.txt\"\n",
        3,
        "discovery.chap.password_file",
        "absolute",
    );
}

#[test]
fn parse_reads_no_secret_file() {
    // The secret does not exist: parsing must not care (Nix build time).
    assert_ok(
        "[discovery.chap]\nuser = \"u\"\npassword_file = \"/nonexistent/rustiscsi/secret\"\n",
    );
}

// ----- backstores ----------------------------------------------------------------------

#[test]
fn backstore_name_chars() {
    let text = "[backstores.\"vm 1\"]\nkind = \"ramdisk\"\nsize = \"1M\"\n";
    assert_err(
        text,
        1,
        "backstores.\"vm 1\"",
        "not allowed in a backstore name",
    );
    assert_err(
        "[backstores.\"\"]\nkind = \"ramdisk\"\nsize = \"1M\"\n",
        1,
        "backstores.\"\"",
        "cannot be empty",
    );
}

#[test]
fn block_needs_path() {
    assert_err(
        "\n[backstores.a]\nkind = \"block\"\n",
        2,
        "backstores.a",
        "needs path",
    );
}

#[test]
fn fileio_needs_path() {
    assert_err(
        "[backstores.a]\nkind = \"fileio\"\nsize = \"1G\"\n",
        1,
        "backstores.a",
        "needs path",
    );
}

#[test]
fn backstore_path_absolute() {
    assert_err(
        "[backstores.a]\nkind = \"fileio\"\npath = \"a.img\"\n",
        3,
        "backstores.a.path",
        "absolute",
    );
}

#[test]
fn ramdisk_forbids_path() {
    assert_err(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1G\"\npath = \"/x\"\n",
        4,
        "backstores.a.path",
        "no path",
    );
}

#[test]
fn ramdisk_needs_size() {
    assert_err(
        "[backstores.r]\nkind = \"ramdisk\"\n",
        1,
        "backstores.r",
        "needs size",
    );
}

#[test]
fn fileio_size_optional() {
    assert_ok("[backstores.a]\nkind = \"fileio\"\npath = \"/srv/a.img\"\n");
}

#[test]
fn size_not_zero_and_multiple_of_block() {
    assert_err(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = 0\n",
        3,
        "backstores.a.size",
        "greater than 0",
    );
    assert_err(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1000\"\n",
        3,
        "backstores.a.size",
        "multiple of block_size",
    );
}

#[test]
fn block_size_warns() {
    assert_warn(
        "[backstores.a]\nkind = \"block\"\npath = \"/dev/sdb\"\nsize = \"1G\"\n",
        4,
        "backstores.a.size",
        "ignored",
    );
    assert_warn(
        "[backstores.a]\nkind = \"block\"\npath = \"/dev/sdb\"\nblock_size = 512\n",
        4,
        "backstores.a.block_size",
        "device's own",
    );
}

#[test]
fn block_size_512_or_4096() {
    assert_err(
        "[backstores.a]\nkind = \"fileio\"\npath = \"/a\"\nblock_size = 1024\n",
        4,
        "backstores.a.block_size",
        "512 or 4096",
    );
    assert_ok("[backstores.a]\nkind = \"fileio\"\npath = \"/a\"\nblock_size = 4096\n");
}

#[test]
fn backstore_paths_unique() {
    assert_err(
        "[backstores.a]\nkind = \"block\"\npath = \"/dev/sdb\"\n\
         [backstores.b]\nkind = \"block\"\npath = \"/dev/sdb\"\n",
        6,
        "backstores.b.path",
        "also the path of backstore \"a\"",
    );
}

#[test]
fn unused_backstore_warns() {
    assert_warn(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1M\"\n",
        1,
        "backstores.a",
        "not used",
    );
}

// ----- targets and LUNs ----------------------------------------------------------------

const RAM: &str = "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1M\"\n\
                   [backstores.b]\nkind = \"ramdisk\"\nsize = \"1M\"\n";

#[test]
fn target_name_valid() {
    assert_err(
        "[targets.\"iqn.2026-11.org.Example:T\"]\ndemo_mode = true\n",
        1,
        "targets.\"iqn.2026-11.org.Example:T\"",
        "lowercase",
    );
    assert_err(
        "[targets.mytarget]\ndemo_mode = true\n",
        1,
        "targets.mytarget",
        "starts with \"iqn.\"",
    );
}

#[test]
fn tpg_at_least_one() {
    let text = format!("[targets.\"{T}\"]\ndemo_mode = true\ntpg = 0\n");
    assert_err(&text, 3, &format!("targets.\"{T}\".tpg"), "at least 1");
}

#[test]
fn lun_references_existing_backstore() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [\n  {{ backstore = \"a\" }},\n  {{ backstore = \"c\" }},\n]\n"
    );
    assert_err(
        &text,
        11,
        &format!("targets.\"{T}\".luns[1].backstore"),
        "no backstore named \"c\" (defined: a, b)",
    );
}

#[test]
fn lun_numbers_unique_explicit() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [\n  {{ lun = 3, backstore = \"a\" }},\n  {{ lun = 3, backstore = \"b\" }},\n]\n"
    );
    assert_err(
        &text,
        11,
        &format!("targets.\"{T}\".luns[1].lun"),
        "LUN 3 is already used by luns[0]",
    );
}

#[test]
fn lun_numbers_unique_defaulted() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [\n  {{ lun = 1, backstore = \"a\" }},\n  {{ backstore = \"b\" }},\n]\n"
    );
    assert_err(
        &text,
        11,
        &format!("targets.\"{T}\".luns[1]"),
        "defaulted from its position",
    );
}

#[test]
fn lun_number_limit() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [{{ lun = 16384, backstore = \"a\" }}]\n"
    );
    assert_err(
        &text,
        9,
        &format!("targets.\"{T}\".luns[0].lun"),
        "not below 16384",
    );
}

#[test]
fn backstore_used_twice_in_one_target() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [\n  {{ backstore = \"a\" }},\n  {{ backstore = \"a\" }},\n]\n"
    );
    let e = parse(&text, "test.toml").unwrap_err();
    assert_eq!(e.line, 11, "{e}");
    assert_eq!(e.key, format!("targets.\"{T}\".luns[1].backstore"));
    assert!(e.message.contains("already a LUN of target"), "{e}");
    assert!(e.message.contains("(line 10)"), "{e}");
    assert!(e.message.contains("exports a backstore once"), "{e}");
}

/// Several targets may export one backstore (they share its logical unit), as LIO allows.
#[test]
fn backstore_exported_by_two_targets() {
    // One logical unit behind two targets (LIO allows it; multipath sees one disk).
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\nluns = [{{ backstore = \"a\" }}]\n\
         [targets.\"iqn.2026-11.org.example:u\"]\ndemo_mode = true\nluns = [{{ backstore = \"a\" }}]\n"
    );
    assert_ok(&text);
}

#[test]
fn every_mistake_is_reported_in_file_order() {
    // A wrong name late in the file used to hide a semantic error before it.
    let text = format!(
        "[backstores.a]\nkind = \"ramdisk\"\nsize = \"1M\"\n\
         [targets.\"{T}\"]\nluns = [{{ backstore = \"missing\" }}]\ndemo_mode = true\n\
         [backstores.b]\nkind = \"ramdisk\"\nsise = \"1M\"\nblock_size = \"big\"\n"
    );
    let errs = parse_all(&text, "test.toml").unwrap_err();
    let got: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (5, format!("targets.\"{T}\".luns[0].backstore").as_str()),
            (9, "backstores.b.sise"),
            (10, "backstores.b.block_size"),
        ],
        "{errs:#?}"
    );
    // The first one is also what `parse` returns.
    assert_eq!(parse(&text, "test.toml").unwrap_err().line, 5);
}

#[test]
fn in_memory_errors_have_no_fake_location() {
    let mut c = Config::default();
    c.daemon.portals.clear();
    let e = validate(c, "<edited configuration>").unwrap_err();
    assert_eq!(
        e.to_string(),
        "daemon.portals: at least one portal is needed"
    );
    let e = ConfigError {
        file: "/etc/x.toml".into(),
        line: 0,
        key: "<document>".into(),
        message: "cannot read".into(),
    };
    assert_eq!(e.to_string(), "/etc/x.toml: <document>: cannot read");
}

#[test]
fn target_without_luns_warns() {
    let text = format!("[targets.\"{T}\"]\ndemo_mode = true\n");
    assert_warn(&text, 1, &format!("targets.\"{T}\".luns"), "has no LUNs");
}

// ----- ACLs ----------------------------------------------------------------------------

fn acl_target(acl_body: &str) -> String {
    format!(
        "{RAM}[targets.\"{T}\"]\nluns = [\n  {{ lun = 0, backstore = \"a\" }},\n  {{ lun = 1, backstore = \"b\" }},\n]\n\
         [targets.\"{T}\".acls.\"iqn.2026-11.org.example:i\"]\n{acl_body}"
    )
}

const ACL: &str = "targets.\"iqn.2026-11.org.example:t\".acls.\"iqn.2026-11.org.example:i\"";

#[test]
fn acl_example_is_valid() {
    let v = assert_ok(&acl_target(
        "mapped_luns = [{ lun = 0, target_lun = 1, read_only = true }]\n",
    ));
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn acl_initiator_name_valid() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\n[targets.\"{T}\".acls.client1]\n"
    );
    assert_err(
        &text,
        9,
        &format!("targets.\"{T}\".acls.client1"),
        "initiator name",
    );
}

#[test]
fn mapped_lun_unique() {
    assert_err(
        &acl_target("mapped_luns = [\n  { lun = 0 },\n  { lun = 0, target_lun = 1 },\n]\n"),
        15,
        &format!("{ACL}.mapped_luns[1].lun"),
        "mapped twice",
    );
}

#[test]
fn mapped_lun_target_exists() {
    assert_err(
        &acl_target("mapped_luns = [\n  { lun = 0, target_lun = 7 },\n]\n"),
        14,
        &format!("{ACL}.mapped_luns[0].target_lun"),
        "has no LUN 7",
    );
}

#[test]
fn mapped_lun_target_defaults_to_lun() {
    assert_err(
        &acl_target("mapped_luns = [\n  { lun = 5 },\n]\n"),
        14,
        &format!("{ACL}.mapped_luns[0]"),
        "defaults to lun",
    );
}

#[test]
fn mapped_lun_limit() {
    assert_err(
        &acl_target("mapped_luns = [\n  { lun = 20000, target_lun = 0 },\n]\n"),
        14,
        &format!("{ACL}.mapped_luns[0].lun"),
        "not below 16384",
    );
}

// ----- access / security rules ---------------------------------------------------------

#[test]
fn demo_mode_on_network_is_an_error() {
    for portal in ["0.0.0.0:3260", "[::]:3260", "192.168.1.10:3260"] {
        let text = format!(
            "[daemon]\nportals = [\"{portal}\"]\n{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\ndemo_mode = true\n"
        );
        assert_err(
            &text,
            11,
            &format!("targets.\"{T}\".demo_mode"),
            "allow_demo_mode_on_network",
        );
    }
}

/// A demo target whose own portal groups are all on loopback is not on the network, even
/// when the daemon has a network portal for other targets; one group on the network is.
#[test]
fn demo_mode_counts_the_target_portals() {
    let base = "[daemon]\nportals = [\"127.0.0.1:3260\", \"192.0.2.1:3260\"]\n";
    let demo = format!(
        "{base}{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\ndemo_mode = true\n\
         [[targets.\"{T}\".portal_groups]]\ntag = 1\nportals = [\"127.0.0.1:3260\"]\n"
    );
    let v = assert_ok(&demo);
    assert!(
        v.warnings.iter().all(|w| !w.contains("demo_mode")),
        "{:?}",
        v.warnings
    );
    let exposed = demo.replace(
        "portals = [\"127.0.0.1:3260\"]\n",
        "portals = [\"127.0.0.1:3260\", \"192.0.2.1:3260\"]\n",
    );
    let errs = parse_all(&exposed, "t").unwrap_err();
    assert!(
        errs.iter().any(|e| e.message.contains("192.0.2.1:3260")
            && e.message.contains("allow_demo_mode_on_network")),
        "{errs:?}"
    );
}

#[test]
fn demo_mode_on_network_allowed_warns() {
    let text = format!(
        "[daemon]\nportals = [\"0.0.0.0:3260\"]\nallow_demo_mode_on_network = true\n{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\ndemo_mode = true\n"
    );
    assert_warn(
        &text,
        12,
        &format!("targets.\"{T}\".demo_mode"),
        "reachable from the network",
    );
}

#[test]
fn demo_mode_on_loopback_is_fine() {
    let text = format!(
        "[daemon]\nportals = [\"127.0.0.1:3260\", \"[::1]:3260\"]\n{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}, {{ backstore = \"b\" }}]\ndemo_mode = true\n"
    );
    let v = assert_ok(&text);
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
}

#[test]
fn demo_mode_with_acls_is_ambiguous() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\ndemo_mode = true\n[targets.\"{T}\".acls.\"iqn.2026-11.org.example:i\"]\n"
    );
    assert_err(&text, 9, &format!("targets.\"{T}\".demo_mode"), "ambiguous");
}

#[test]
fn no_acls_no_demo_warns() {
    let text = format!("{RAM}[targets.\"{T}\"]\nluns = [{{ backstore = \"a\" }}]\n");
    assert_warn(
        &text,
        7,
        &format!("targets.\"{T}\""),
        "no initiator can log in",
    );
}

#[test]
fn errors_are_sorted_and_all_reported() {
    let errs = parse_all(
        "[iscsi]\nqueue_depth = 0\n[daemon]\nmax_connections = 0\nportals = []\n",
        "f",
    )
    .unwrap_err();
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 4, 5]);
    assert_eq!(
        errs[0].to_string(),
        "f:2: iscsi.queue_depth: queue_depth = 0 is outside 1..=4096"
    );
}

// ----- in-memory validation, default, round trip, examples ------------------------------

#[test]
fn validate_in_memory_has_no_lines() {
    let mut c = embedded_default(Path::new("/var/lib/rustiscsi"));
    c.daemon.max_connections = 0;
    let e = validate(c, EMBEDDED_ORIGIN).unwrap_err();
    assert_eq!(e.line, 0);
    assert_eq!(e.key, "daemon.max_connections");
    assert_eq!(e.file, "<embedded default>");
}

#[test]
fn embedded_default_is_valid() {
    let c = embedded_default(Path::new("/var/lib/rustiscsi"));
    assert_eq!(c.daemon.portals, ["127.0.0.1:3260".parse().unwrap()]);
    let t = &c.targets[DEMO_TARGET];
    assert!(t.demo_mode);
    assert_eq!(t.luns[0].lun, Some(0));
    let b = &c.backstores[&t.luns[0].backstore];
    assert_eq!(
        b.path.as_deref(),
        Some(Path::new("/var/lib/rustiscsi/demo.img"))
    );
    assert_eq!(b.size, Some(Size(1 << 30)));
    let v = validate(c, EMBEDDED_ORIGIN).unwrap();
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    check_iscsi_name(DEMO_TARGET).unwrap();
}

#[test]
fn to_toml_round_trips() {
    for c in [
        embedded_default(Path::new("/srv/state")),
        parse(
            &std::fs::read_to_string(examples_dir().join("nas.toml")).unwrap(),
            "nas",
        )
        .unwrap()
        .config,
    ] {
        let text = to_toml(&c);
        let back = parse(&text, "round-trip").unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.config, c, "{text}");
        assert!(!text.contains("[discovery]\n\n"), "{text}");
    }
}

#[test]
fn to_toml_keeps_nonempty_tables() {
    let mut c = embedded_default(Path::new("/srv/state"));
    c.targets.get_mut(DEMO_TARGET).unwrap().demo_mode = false;
    c.targets
        .get_mut(DEMO_TARGET)
        .unwrap()
        .acls
        .insert("iqn.2026-11.org.example:i".into(), AclConfig::default());
    let text = to_toml(&c);
    assert_eq!(parse(&text, "x").unwrap().config, c, "{text}");
}

fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
fn every_example_loads() {
    let mut n = 0;
    for entry in std::fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let v = load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v.source.as_deref(), Some(path.as_path()));
            assert!(
                v.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                v.warnings
            );
            n += 1;
        }
    }
    assert!(n >= 2);
}

#[test]
fn minimal_example_is_the_embedded_default() {
    let v = load(&examples_dir().join("minimal.toml")).unwrap();
    assert_eq!(v.config, embedded_default(Path::new("/var/lib/rustiscsi")));
}

#[test]
fn nas_example_content() {
    let c = load(&examples_dir().join("nas.toml")).unwrap().config;
    assert_eq!(c.daemon.portals, ["0.0.0.0:3260".parse().unwrap()]);
    assert!(c.discovery.chap.is_some() && c.discovery.mutual_chap.is_some());
    let t = &c.targets["iqn.2026-11.org.example.nas:storage"];
    assert_eq!(t.acls.len(), 2);
    assert!(t.acls.values().all(|a| a.chap.is_some()));
    assert!(
        t.acls
            .values()
            .flat_map(|a| &a.mapped_luns)
            .any(|m| m.read_only)
    );
    assert_eq!(
        c.backstores["raid"].path.as_deref(),
        Some(Path::new("/dev/md/nas-iscsi"))
    );
}

#[test]
fn load_missing_file() {
    let e = load(Path::new("/nonexistent/rustiscsi.toml")).unwrap_err();
    assert_eq!(e.file, "/nonexistent/rustiscsi.toml");
    assert_eq!(e.line, 0);
    assert!(e.message.contains("cannot read"));
}

#[test]
fn load_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[daemon]\n\nmax_connections = 0\n").unwrap();
    let e = load(&path).unwrap_err();
    assert_eq!(e.file, path.display().to_string());
    assert_eq!(e.line, 3);
}

#[test]
fn array_of_tables_lines() {
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\n\n[[targets.\"{T}\".luns]]\nbackstore = \"a\"\n\n[[targets.\"{T}\".luns]]\nlun = 0\nbackstore = \"b\"\n"
    );
    assert_err(
        &text,
        14,
        &format!("targets.\"{T}\".luns[1].lun"),
        "already used by luns[0]",
    );
    let text = format!(
        "{RAM}[targets.\"{T}\"]\ndemo_mode = true\n\n[[targets.\"{T}\".luns]]\nbackstore = \"a\"\n\n[[targets.\"{T}\".luns]]\nbackstore = \"a\"\n"
    );
    assert_err(
        &text,
        14,
        &format!("targets.\"{T}\".luns[1].backstore"),
        "(line 11)",
    );
}

// ----- session limits and pinned identity ---------------------------------------------

#[test]
fn session_limits_have_bounds() {
    assert_err(
        "[daemon]\npdu_timeout_secs = 0\n",
        2,
        "daemon.pdu_timeout_secs",
        "at least 1",
    );
    assert_err(
        "[daemon]\nsession_buffer_memory = \"1M\"\n",
        2,
        "daemon.session_buffer_memory",
        "below 64M",
    );
    assert_err(
        "[daemon]\nbuffer_memory = \"100M\"\nsession_buffer_memory = \"200M\"\n",
        2,
        "daemon.buffer_memory",
        "smaller than session_buffer_memory",
    );
    let v = assert_ok("[daemon]\nbuffer_memory = \"2G\"\ntcp_keepalive_secs = 0\n");
    assert_eq!(v.config.daemon.buffer_memory, Size(2 << 30));
    assert_eq!(v.config.daemon.max_login_connections, 64);
}

#[test]
fn pinned_identities_are_unique() {
    let b = |name: &str, path: &str, extra: &str| {
        format!("[backstores.{name}]\nkind = \"block\"\npath = \"{path}\"\n{extra}\n")
    };
    let w = "wwn = \"naa.6001405a1b2c3d4e5f647189293a4b5c\"";
    let text = b("a", "/dev/sdb", w)
        + &b(
            "b",
            "/dev/sdc",
            &w.to_uppercase().replace("WWN = \"NAA", "wwn = \"naa"),
        );
    assert_err(
        &text,
        8,
        "backstores.b.wwn",
        "also pinned by backstore \"a\"",
    );
    let text = b("a", "/dev/sdb", "serial = \"S1\"") + &b("b", "/dev/sdc", "serial = \"S1\"");
    assert_err(&text, 8, "backstores.b.serial", "same identity");
    assert_ok(&(b("a", "/dev/sdb", "serial = \"S1\"") + &b("b", "/dev/sdc", "serial = \"S2\"")));
}

#[test]
fn pinned_identity_is_checked_for_form() {
    let b =
        |extra: &str| format!("[backstores.b]\nkind = \"block\"\npath = \"/dev/sdb\"\n{extra}\n");
    let v = assert_ok(&b(
        "serial = \"a1b2c3d4-0001\"\nwwn = \"naa.6001405a1b2c3d4e5f60718293a4b5c6\"\n\
         vendor = \"LIO-ORG\"\nproduct = \"IBLOCK\"\ncache = \"buffered\"",
    ));
    let bs = &v.config.backstores["b"];
    assert_eq!(bs.cache, Some(crate::backstore::CacheMode::Buffered));
    assert_eq!(bs.vendor.as_deref(), Some("LIO-ORG"));
    assert_ok(&b("wwn = \"naa.3000000000000001\""));
    assert_err(&b("wwn = \"naa.60014\""), 4, "backstores.b.wwn", "16 or 32");
    assert_err(
        &b("wwn = \"naa.6000000000000001\""),
        4,
        "backstores.b.wwn",
        "NAA type 6",
    );
    assert_err(&b("wwn = \"eui.0011\""), 4, "backstores.b.wwn", "naa.");
    assert_err(
        &b("vendor = \"TOO-LONG-X\""),
        4,
        "backstores.b.vendor",
        "1 to 8",
    );
    assert_err(
        &b("serial = \"tab\\there\""),
        4,
        "backstores.b.serial",
        "printable",
    );
    assert_err(
        "[backstores.r]\nkind = \"ramdisk\"\nsize = \"1M\"\ncache = \"direct\"\n",
        4,
        "backstores.r.cache",
        "ramdisk",
    );
}

#[test]
fn dual_stack_wildcard_overlaps_a_specific_ipv4_portal() {
    assert_err(
        "[daemon]\nportals = [\"127.0.0.1:3260\", \"[::]:3260\"]\n",
        2,
        "daemon.portals[0]",
        "IPv4 included",
    );
    // With 0.0.0.0 listed too, [::] is IPv6-only and the v4 one overlaps 0.0.0.0 instead.
    assert_err(
        "[daemon]\nportals = [\"0.0.0.0:3260\", \"[::]:3260\", \"127.0.0.1:3260\"]\n",
        2,
        "daemon.portals[2]",
        "overlaps the wildcard portal 0.0.0.0:3260",
    );
    assert_ok("[daemon]\nportals = [\"0.0.0.0:3260\", \"[::]:3260\"]\n");
}

#[test]
fn portal_groups_shape() {
    let base = "[daemon]\nportals = [\"192.0.2.1:3260\", \"198.51.100.1:3260\"]\n";
    let ok = format!(
        "{base}[targets.\"{T}\"]\ndemo_mode = false\n\
         [[targets.\"{T}\".portal_groups]]\ntag = 1\nportals = [\"192.0.2.1:3260\"]\n\
         [[targets.\"{T}\".portal_groups]]\ntag = 2\nportals = [\"198.51.100.1:3260\"]\nenabled = false\n"
    );
    let v = assert_ok(&ok);
    let t = &v.config.targets[T];
    let g = t.groups(&v.config.daemon.portals);
    assert_eq!(g.len(), 2);
    assert_eq!((g[1].0, g[1].2), (2, false));
    // Old configs: one implicit group tagged tpg on every daemon portal.
    let old = format!("{base}[targets.\"{T}\"]\ntpg = 3\n");
    let v = assert_ok(&old);
    let g = v.config.targets[T].groups(&v.config.daemon.portals);
    assert_eq!(g, vec![(3, v.config.daemon.portals.clone(), true)]);
    let dup = ok.replace("tag = 2", "tag = 1");
    assert!(
        parse_all(&dup, "t")
            .unwrap_err()
            .iter()
            .any(|e| e.message.contains("tag 1 is also"))
    );
    let stray = ok.replace(
        "portals = [\"198.51.100.1:3260\"]",
        "portals = [\"203.0.113.1:3260\"]",
    );
    assert!(
        parse_all(&stray, "t")
            .unwrap_err()
            .iter()
            .any(|e| e.message.contains("not in daemon.portals"))
    );
    let twice = ok.replace(
        "portals = [\"198.51.100.1:3260\"]",
        "portals = [\"192.0.2.1:3260\"]",
    );
    assert!(
        parse_all(&twice, "t")
            .unwrap_err()
            .iter()
            .any(|e| e.message.contains("also in portal group"))
    );
}
