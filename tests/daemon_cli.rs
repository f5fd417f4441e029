//! The real daemon and the real CLI, through the real control socket: every change a
//! targetcli user makes (backstore, target, LUN, ACL, CHAP, saveconfig), then a restart
//! from the saved file reproduces the same `status --json`.

mod support;

const IQN: &str = "iqn.2026-11.org.example:cli";

/// `status --json` without what changes between runs (uptime, host facts).
fn status(daemon: &support::Daemon) -> serde_json::Value {
    let mut v = daemon.status();
    let o = v.as_object_mut().unwrap();
    o.remove("uptime_secs");
    o.remove("host");
    o.remove("revision");
    v
}

#[test]
fn targetcli_workflow_then_saveconfig_and_restart() {
    let mut daemon = support::Daemon::start();
    let d = daemon.dir.path().to_path_buf();
    let config = daemon.config.clone();
    let secret = d.join("client1.secret");
    std::fs::write(&secret, "client1-secret16\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    // The seed workflow: backstore, IQN, LUN, ACL, CHAP, saveconfig.
    let img = d.join("disk0.img");
    daemon.ok(&[
        "backstore",
        "create",
        "disk0",
        "--kind",
        "fileio",
        "--path",
        img.to_str().unwrap(),
        "--size",
        "64M",
    ]);
    daemon.ok(&[
        "backstore",
        "create",
        "ram0",
        "--kind",
        "ramdisk",
        "--size",
        "16M",
    ]);
    daemon.ok(&["target", "create", IQN]);
    daemon.ok(&["lun", "add", IQN, "--backstore", "disk0"]);
    daemon.ok(&["lun", "add", IQN, "--backstore", "ram0"]);
    daemon.ok(&[
        "acl",
        "add",
        IQN,
        "iqn.2026-11.org.example:client1",
        "--map",
        "0",
        "--map",
        "1:1:ro",
    ]);
    daemon.ok(&[
        "auth",
        "set",
        IQN,
        "--initiator",
        "iqn.2026-11.org.example:client1",
        "--user",
        "client1",
        "--password-file",
        secret.to_str().unwrap(),
    ]);
    assert!(img.exists(), "fileio backstore created sparse");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);

    // Invalid changes are refused with the documented exit codes, and change nothing.
    let before = status(&daemon);
    assert_eq!(
        daemon
            .cli(&["lun", "add", IQN, "--backstore", "missing"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        daemon
            .cli(&["target", "create", "not-an-iqn"])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        daemon.cli(&["backstore", "delete", "nope"]).status.code(),
        Some(1)
    );
    assert_eq!(status(&daemon), before);
    assert_eq!(
        support::cli(&d.join("nowhere.sock"), &["status"])
            .status
            .code(),
        Some(3)
    );

    // The tree shows what was made; sessions are empty; dry runs change nothing.
    let tree = daemon.ok(&["status"]);
    assert!(
        tree.contains(IQN) && tree.contains("disk0") && tree.contains("client1"),
        "{tree}"
    );
    assert_eq!(daemon.ok(&["--json", "sessions"]).trim(), "[]");
    daemon.ok(&[
        "--dry-run",
        "acl",
        "remove",
        IQN,
        "iqn.2026-11.org.example:client1",
    ]);
    assert_eq!(status(&daemon), before);
    let stats: serde_json::Value = serde_json::from_str(&daemon.ok(&["--json", "stats"])).unwrap();
    assert_eq!(stats["luns"].as_array().unwrap().len(), 2);

    // saveconfig writes the file atomically; a restart from it gives the same status.
    daemon.ok(&["saveconfig"]);
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains("client1") && !saved.contains("client1-secret16"),
        "no secret in the TOML"
    );
    daemon = daemon.restart(&[]);
    assert_eq!(status(&daemon), before);
    daemon.ok(&["saveconfig"]);
    assert!(
        config.with_file_name("rustiscsi.toml.1").exists(),
        "rotated backup kept"
    );
}

use support::pty::Pty;

/// The seed's targetcli workflow, unchanged in meaning, typed into `rustiscsi shell` on a
/// terminal (a file backstore stands in for the md device): tab completion of paths and
/// command names, then every object it creates is checked in the daemon.
#[test]
fn targetcli_workflow_in_the_interactive_shell() {
    let d = support::Daemon::start();
    let img = d.path("disk0.img");
    let p2 = support::free_port();
    let home = d.path("home");
    let mut sh = Pty::shell(&d.socket, &home);
    // Tab completes paths from the daemon's tree.
    sh.send("cd /back\t");
    sh.expect("backstores/");
    sh.send("fil\t");
    sh.expect("fileio/");
    sh.line("", "/backstores/fileio> ");
    sh.line(
        &format!("create disk0 {} 64M", img.display()),
        "/backstores/fileio> ",
    );
    sh.line("cd /iscsi", "/iscsi> ");
    sh.line(&format!("create {IQN}"), "/iscsi> ");
    sh.line(&format!("cd {IQN}/tpg1"), "tpg1> ");
    sh.line("set attribute authentication=0", "tpg1> ");
    sh.line("cd luns", "luns> ");
    sh.line("create /backstores/fileio/disk0", "luns> ");
    sh.line("cd ../portals", "portals> ");
    sh.line(&format!("create 127.0.0.1 {p2}"), "portals> ");
    sh.line("cd ../acls", "acls> ");
    let ini = "iqn.2005-03.org.open-iscsi:serial";
    sh.line(&format!("create {ini}"), "acls> ");
    sh.line(&format!("cd {ini}"), &format!("{ini}> "));
    sh.line("set auth userid=nasuser", &format!("{ini}> "));
    sh.line("set auth password=client-secret-1", &format!("{ini}> "));
    sh.send("get auth\r");
    sh.expect("userid=nasuser");
    sh.expect(&format!("{ini}> "));
    sh.line("cd /", "/> ");
    sh.send("ls\r");
    sh.expect("o- lun0 [/backstores/fileio/disk0]");
    sh.expect("/> ");
    // Tab completes command names too: `savec` becomes `saveconfig` (which has to run for
    // the file checked below to name the ACL), `ex` becomes `exit`.
    sh.send("savec\t");
    sh.expect("saveconfig");
    sh.line("", "/> ");
    sh.send("ex\t");
    sh.expect("exit");
    sh.send("\r");
    sh.wait_exit();
    assert!(sh.child.wait().unwrap().success());

    // What the daemon runs now.
    let s = d.status();
    let t = &s["targets"][0];
    assert_eq!(t["iqn"], IQN);
    assert_eq!(t["luns"][0]["backstore"], "disk0");
    assert_eq!(t["acls"][0]["initiator"], ini);
    assert_eq!(t["acls"][0]["chap_user"], "nasuser");
    assert!(
        s["portals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["portal"] == format!("127.0.0.1:{p2}") && p["accepting"] == true),
        "{s}"
    );
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);
    let c = d.config();
    let pf = c["targets"][IQN]["acls"][ini]["chap"]["password_file"]
        .as_str()
        .unwrap()
        .to_owned();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&pf).unwrap(), "client-secret-1\n");
    // saveconfig wrote the file; the history kept the commands but not the password.
    let saved = std::fs::read_to_string(&d.config).unwrap();
    assert!(saved.contains(ini) && !saved.contains("client-secret-1"));
    let hist = std::fs::read_to_string(home.join(".rustiscsi_history")).unwrap();
    assert!(hist.contains("create /backstores/fileio/disk0"), "{hist}");
    assert!(!hist.contains("client-secret-1"), "{hist}");
    // A secret-less login is now refused, the CHAP one works, on the portal the shell made.
    let portal = format!("127.0.0.1:{p2}");
    assert!(support::initiator::login(&portal, ini, Some(IQN), 1, None).is_err());
    assert!(
        support::initiator::login(
            &portal,
            ini,
            Some(IQN),
            2,
            Some(("nasuser", "client-secret-1"))
        )
        .is_ok()
    );
}

/// `rustiscsi stats` (table and JSON) counts exactly the I/O a session did.
#[test]
fn stats_count_the_io_that_was_done() {
    let d = support::Daemon::start_with(
        "[backstores.disk0]\nkind = \"ramdisk\"\nsize = \"1M\"\n\
         [backstores.idle]\nkind = \"ramdisk\"\nsize = \"1M\"\n\
         [targets.\"iqn.2026-11.org.example:cli\"]\n\
         luns = [{ lun = 0, backstore = \"disk0\" }, { lun = 1, backstore = \"idle\" }]\n\
         [targets.\"iqn.2026-11.org.example:cli\".acls.\"iqn.2026-11.org.example:raw\"]\n",
        &[],
    );
    let lun = |v: &serde_json::Value, name: &str| -> serde_json::Value {
        v["luns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["backstore"] == name)
            .unwrap_or_else(|| panic!("no {name} in {v}"))
            .clone()
    };
    let v = d.json(&["stats"]);
    assert_eq!(lun(&v, "disk0")["reads"], 0, "{v}");
    assert_eq!(lun(&v, "disk0")["writes"], 0, "{v}");

    let addr = format!("127.0.0.1:{}", d.port).parse().unwrap();
    let mut s =
        support::initiator::Session::login(addr, &support::initiator::LoginOpts::normal(IQN, 1))
            .expect("login");
    // Three 4 KiB writes and two 8 KiB reads on LUN 0, nothing on LUN 1.
    for i in 0..3u32 {
        s.write_ok(0, i * 8, &support::pattern(4096, i));
    }
    for _ in 0..2 {
        assert_eq!(s.read_ok(0, 0, 16).len(), 8192);
    }
    let v = d.json(&["stats"]);
    let l = lun(&v, "disk0");
    assert_eq!(
        (
            &l["writes"],
            &l["write_bytes"],
            &l["reads"],
            &l["read_bytes"]
        ),
        (&3.into(), &12288.into(), &2.into(), &16384.into()),
        "{v}"
    );
    let hist: u64 = l["latency_histogram_us"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[1].as_u64().unwrap())
        .sum();
    assert_eq!(hist, 5, "each command timed once: {v}");
    let idle = lun(&v, "idle");
    assert_eq!((&idle["reads"], &idle["writes"]), (&0.into(), &0.into()));
    let sess = &v["sessions"][0];
    assert_eq!(sess["initiator"], support::initiator::INITIATOR, "{v}");
    assert_eq!(sess["counters"]["write_bytes"], 12288, "{v}");
    assert_eq!(sess["counters"]["read_bytes"], 16384, "{v}");
    assert_eq!(sess["counters"]["commands"], 5, "{v}");

    // The table says the same.
    let out = d.ok(&["stats"]);
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with("disk0"))
        .unwrap_or_else(|| panic!("no disk0 row in\n{out}"))
        .split_whitespace()
        .collect();
    assert_eq!(&row[..5], ["disk0", "2", "3", "16K", "12K"], "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains(support::initiator::INITIATOR)
                && l.contains("16K")
                && l.contains("12K")),
        "{out}"
    );
}
