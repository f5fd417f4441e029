//! The change path of the real daemon through the real CLI: concurrency, plan == what was
//! done (checked against the sessions a real initiator holds), the change rules, live
//! portals, overrides on reload, and the reports (warnings, notes, errors).

mod support;

use std::collections::BTreeSet;

use support::initiator::login;
use support::{Daemon, INI, IQN, accepts, code, free_port, secret, stderr, stdout};

const RAM: &str = "[backstores.disk0]\nkind = \"ramdisk\"\nsize = \"1M\"\n";

fn target_body(extra: &str) -> String {
    format!(
        "{RAM}[targets.\"{IQN}\"]\nluns = [{{ lun = 0, backstore = \"disk0\" }}]\n{extra}\
         [targets.\"{IQN}\".acls.\"{INI}\"]\n"
    )
}

#[test]
fn parallel_changes_are_applied_or_refused_never_lost() {
    let d = Daemon::start_with(&target_body(""), &[]);
    // 20 edits at once: 14 backstore creates and 6 ACL adds.
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let sock = d.socket.clone();
            std::thread::spawn(move || {
                let args: Vec<String> = if i % 3 == 2 {
                    vec![
                        "acl".into(),
                        "add".into(),
                        IQN.into(),
                        format!("iqn.2026-11.org.example:race{i}"),
                    ]
                } else {
                    [
                        "backstore",
                        "create",
                        &format!("b{i}"),
                        "--kind",
                        "ramdisk",
                        "--size",
                        "1M",
                    ]
                    .map(String::from)
                    .to_vec()
                };
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                (i, support::cli(&sock, &a))
            })
        })
        .collect();
    let mut applied = BTreeSet::new();
    let mut refused = 0;
    for h in handles {
        let (i, o) = h.join().unwrap();
        match code(&o) {
            0 => {
                applied.insert(i);
            }
            5 => {
                refused += 1;
                assert!(stderr(&o).contains("nothing was changed"), "{}", stderr(&o));
            }
            c => panic!("change {i} exited {c}: {}", stderr(&o)),
        }
    }
    assert!(!applied.is_empty());
    let c = d.config();
    for i in 0..20 {
        let present = if i % 3 == 2 {
            c["targets"][IQN]["acls"]
                .get(format!("iqn.2026-11.org.example:race{i}"))
                .is_some()
        } else {
            c["backstores"].get(format!("b{i}")).is_some()
        };
        assert_eq!(
            present,
            applied.contains(&i),
            "change {i}: reported {}, present {present}",
            if applied.contains(&i) {
                "applied"
            } else {
                "refused"
            }
        );
    }
    assert_eq!(applied.len() + refused, 20);

    // With --retry, an edit that lost the race is made again on the new revision.
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let sock = d.socket.clone();
            std::thread::spawn(move || {
                let name = format!("r{i}");
                support::cli(
                    &sock,
                    &[
                        "--retry",
                        "40",
                        "backstore",
                        "create",
                        &name,
                        "--kind",
                        "ramdisk",
                        "--size",
                        "1M",
                    ],
                )
            })
        })
        .collect();
    for h in handles {
        let o = h.join().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    let c = d.config();
    assert!((0..8).all(|i| c["backstores"].get(format!("r{i}")).is_some()));
}

/// Runs a change twice (dry run, then for real) and checks that the report of what was
/// done equals the prediction, and that the sessions it names were really logged out and
/// the others were not.
fn plan_then_do(d: &Daemon, args: &[&str]) -> serde_json::Value {
    let mut dry = vec!["--dry-run"];
    dry.extend_from_slice(args);
    let predicted = d.json(&dry);
    assert_eq!(predicted["dry_run"], true);
    let before = d.json(&["sessions"]);
    let done = d.json(args);
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        predicted["plan"], done["plan"],
        "plan differs from what was done for {args:?}"
    );
    let out: BTreeSet<u64> = done["plan"]["sessions_logged_out"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tsih"].as_u64().unwrap())
        .collect();
    let all: BTreeSet<u64> = before
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tsih"].as_u64().unwrap())
        .collect();
    let left = d.sessions_until(|t| t.iter().all(|x| !out.contains(x)));
    let left: BTreeSet<u64> = left.into_iter().collect();
    assert_eq!(
        left,
        all.difference(&out).copied().collect(),
        "sessions after {args:?}"
    );
    done
}

#[test]
fn each_change_kind_does_what_its_plan_says() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let portal = format!("127.0.0.1:{}", d.port);
    let s1 = secret(d.dir.path(), "s1", "client1-secret16", 0o600);
    let s2 = secret(d.dir.path(), "s2", "discovery-secret", 0o600);
    let mut sessions = Vec::new();
    let relogin = |sessions: &mut Vec<_>, isid: u8, chap: Option<(&str, &str)>| {
        let s = login(&portal, INI, Some(IQN), isid, chap).expect("login");
        sessions.push(s);
    };

    // A new backstore: nothing happens to the session.
    relogin(&mut sessions, 1, None);
    let r = plan_then_do(
        &d,
        &[
            "backstore",
            "create",
            "b1",
            "--kind",
            "ramdisk",
            "--size",
            "1M",
        ],
    );
    assert_eq!(r["plan"]["backstores_added"][0], "b1");
    // A new LUN: the session is told to rescan.
    let r = plan_then_do(&d, &["lun", "add", IQN, "--backstore", "b1"]);
    assert_eq!(r["plan"]["sessions_rescanned"].as_array().unwrap().len(), 1);
    // Grown backstore: rescan, and the size reached is reported.
    let r = plan_then_do(&d, &["backstore", "resize", "b1", "--size", "2M"]);
    assert_eq!(r["plan"]["backstores_resized"][0]["new"], 2 << 20);
    // CHAP of the ACL changes: the session is logged out (it used to stay).
    let r = plan_then_do(
        &d,
        &[
            "auth",
            "set",
            IQN,
            "--initiator",
            INI,
            "--user",
            "client1",
            "--password-file",
            s1.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r["plan"]["sessions_logged_out"].as_array().unwrap().len(),
        1
    );
    relogin(&mut sessions, 2, Some(("client1", "client1-secret16")));
    // Allowed networks that leave the session out: logged out.
    let r = plan_then_do(
        &d,
        &[
            "set",
            &format!("/iscsi/{IQN}/tpg1"),
            "attribute",
            "allowed_networks=10.0.0.0/8",
        ],
    );
    assert_eq!(
        r["plan"]["sessions_logged_out"].as_array().unwrap().len(),
        1
    );
    plan_then_do(
        &d,
        &[
            "set",
            &format!("/iscsi/{IQN}/tpg1"),
            "attribute",
            "allowed_networks=",
        ],
    );
    // Discovery CHAP: the discovery session is logged out, the normal one stays.
    relogin(&mut sessions, 3, Some(("client1", "client1-secret16")));
    sessions.push(login(&portal, INI, None, 4, None).expect("discovery login"));
    let r = plan_then_do(
        &d,
        &[
            "auth",
            "set",
            "--discovery",
            "--user",
            "disc",
            "--password-file",
            s2.to_str().unwrap(),
        ],
    );
    assert_eq!(
        r["plan"]["sessions_logged_out"].as_array().unwrap().len(),
        1
    );
    // The portal group tag changes (a whole configuration restored): logged out.
    let mut c = d.config();
    c["targets"][IQN]["tpg"] = 2.into();
    let file = d.path("tag2.toml");
    support::write_config(&file, &c);
    let r = plan_then_do(&d, &["restoreconfig", file.to_str().unwrap()]);
    assert!(
        r["plan"]["sessions_logged_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("tag"),
        "{r}"
    );
    // A LUN removed: rescan; the ACL removed: logged out.
    relogin(&mut sessions, 5, Some(("client1", "client1-secret16")));
    let r = plan_then_do(&d, &["lun", "remove", IQN, "1"]);
    assert_eq!(r["plan"]["luns_removed"][0]["lun"], 1);
    let r = plan_then_do(&d, &["acl", "remove", IQN, INI]);
    assert_eq!(
        r["plan"]["sessions_logged_out"].as_array().unwrap().len(),
        1
    );
    // A portal added, then the one the session came in on removed: logged out with it.
    d.ok(&["acl", "add", IQN, INI]);
    relogin(&mut sessions, 6, None);
    let p2 = free_port();
    let r = plan_then_do(
        &d,
        &[
            "shell",
            &format!("/iscsi/{IQN}/tpg2/portals"),
            "create",
            "127.0.0.1",
            &p2.to_string(),
        ],
    );
    assert_eq!(r["plan"]["portals_added"][0], format!("127.0.0.1:{p2}"));
    assert!(accepts(&format!("127.0.0.1:{p2}")));
    let r = plan_then_do(
        &d,
        &[
            "shell",
            &format!("/iscsi/{IQN}/tpg2/portals"),
            "delete",
            "127.0.0.1",
            &d.port.to_string(),
        ],
    );
    assert_eq!(r["plan"]["portals_removed"][0], portal);
    assert!(
        r["plan"]["sessions_logged_out"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("portal")
    );
    assert!(!accepts(&portal), "a removed portal stops listening");
    // A target and an ACL added, an ACL's map changed, a backstore reopened (write cache),
    // a daemon-wide setting, a backstore removed: nothing for the session but what its plan says.
    let p2s = format!("127.0.0.1:{p2}");
    sessions.push(login(&p2s, INI, Some(IQN), 8, None).expect("login on the new portal"));
    plan_then_do(&d, &["target", "create", "iqn.2026-11.org.example:other"]);
    plan_then_do(
        &d,
        &[
            "acl",
            "add",
            IQN,
            "iqn.2026-11.org.example:second",
            "--map",
            "0",
        ],
    );
    let r = plan_then_do(
        &d,
        &[
            "set",
            &format!("/iscsi/{IQN}/tpg2/acls/{INI}/mapped_lun0"),
            "attribute",
            "write_protect=1",
        ],
    );
    assert_eq!(
        r["plan"]["sessions_rescanned"].as_array().unwrap().len(),
        1,
        "{r}"
    );
    let wc = [
        "set",
        "/backstores/ramdisk/disk0",
        "attribute",
        "emulate_write_cache=1",
    ];
    let o = d.cli(&wc);
    assert_eq!(
        code(&o),
        1,
        "reopening a live ramdisk needs --force: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("loses what it holds"), "{}", stderr(&o));
    let mut forced = vec!["--force"];
    forced.extend(wc);
    let r = plan_then_do(&d, &forced);
    assert_eq!(r["plan"]["backstores_changed"][0], "disk0");
    let r = plan_then_do(
        &d,
        &["set", "/iscsi", "parameter", "default_cmdsn_depth=64"],
    );
    assert_eq!(r["plan"]["settings_changed"][0], "iscsi.queue_depth");
    d.ok(&[
        "backstore",
        "create",
        "spare",
        "--kind",
        "ramdisk",
        "--size",
        "1M",
    ]);
    let r = plan_then_do(&d, &["backstore", "delete", "spare"]);
    assert_eq!(r["plan"]["backstores_removed"][0], "spare");
    // Target removed.
    sessions.push(login(&p2s, INI, Some(IQN), 7, None).expect("login on the new portal"));
    let r = plan_then_do(&d, &["target", "delete", IQN]);
    assert_eq!(r["plan"]["targets_removed"][0], IQN);
    drop(sessions);
}

#[test]
fn portals_are_live_and_status_shows_the_sockets() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let p2 = free_port();
    d.ok(&[
        "shell",
        &format!("/iscsi/{IQN}/tpg1/portals"),
        "create",
        "[::]",
        &p2.to_string(),
    ]);
    let st = d.status();
    let l = st["portals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["portal"] == format!("[::]:{p2}"))
        .cloned()
        .expect("the new listener is in status");
    assert_eq!(l["accepting"], true, "{l}");
    assert_eq!(l["dual_stack"], true, "{l}");
    // [::] serves IPv4 as LIO's [::0] does.
    assert!(accepts(&format!("127.0.0.1:{p2}")));
    assert!(accepts(&format!("[::1]:{p2}")));
    let ss = login(&format!("127.0.0.1:{p2}"), INI, Some(IQN), 1, None);
    assert!(ss.is_ok(), "login through the new portal");
    // Removed: nothing listens, status no longer lists it.
    d.ok(&[
        "shell",
        &format!("/iscsi/{IQN}/tpg1/portals"),
        "delete",
        &format!("[::]:{p2}"),
    ]);
    assert!(!accepts(&format!("127.0.0.1:{p2}")));
    assert!(
        d.status()["portals"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["portal"] != format!("[::]:{p2}"))
    );
    // A portal that cannot be bound is refused, by the dry run too, and nothing changes.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bp = busy.local_addr().unwrap().port().to_string();
    for dry in [true, false] {
        let mut a = vec!["shell", "/iscsi"];
        if dry {
            a.insert(0, "--dry-run");
        }
        let path = format!("/iscsi/{IQN}/tpg1/portals");
        let mut args: Vec<&str> = if dry { vec!["--dry-run"] } else { vec![] };
        args.extend(["shell", &path, "create", "127.0.0.1", &bp]);
        let o = d.cli(&args);
        assert_eq!(code(&o), 1, "dry run {dry}: {}", stderr(&o));
        assert!(stderr(&o).contains("cannot listen"), "{}", stderr(&o));
    }
    assert_eq!(d.status()["portals"].as_array().unwrap().len(), 1);
}

#[test]
fn reload_keeps_the_command_line_overrides() {
    let p2 = free_port();
    let portal = format!("127.0.0.1:{p2}");
    let d = Daemon::start_with(&target_body(""), &["--portal", &portal]);
    let seen = |d: &Daemon| -> Vec<String> {
        d.status()["portals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["portal"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(seen(&d), vec![portal.clone()]);
    let r = d.json(&["reload"]);
    assert!(
        r["plan"]["portals_removed"].as_array().unwrap().is_empty(),
        "{r}"
    );
    assert_eq!(seen(&d), vec![portal.clone()]);
    // SIGHUP takes the same path.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.process.pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(seen(&d), vec![portal.clone()]);
    assert!(accepts(&portal));
}

#[test]
fn dry_runs_make_the_checks_of_the_change() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let bad = d.path("missing-dir/x.img");
    for dry in [true, false] {
        let mut a: Vec<&str> = if dry { vec!["--dry-run"] } else { vec![] };
        a.extend([
            "backstore",
            "create",
            "x",
            "--kind",
            "fileio",
            "--path",
            bad.to_str().unwrap(),
            "--size",
            "1M",
        ]);
        let o = d.cli(&a);
        assert_eq!(code(&o), 1, "dry run {dry}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not a writable directory"),
            "{}",
            stderr(&o)
        );
    }
    // The same through reload --dry-run.
    let text = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!(
            "{text}[backstores.x]\nkind = \"fileio\"\npath = \"{}\"\nsize = \"1M\"\n",
            bad.display()
        ),
    )
    .unwrap();
    for dry in [true, false] {
        let o = d.cli(if dry {
            &["--dry-run", "reload"]
        } else {
            &["reload"]
        });
        assert_eq!(code(&o), 1, "dry run {dry}: {}", stderr(&o));
    }
}

#[test]
fn reports_tell_what_happened() {
    let d = Daemon::start_with(&target_body(""), &[]);
    // A secret readable by others: the warning reaches the CLI.
    let s = secret(d.dir.path(), "open", "client1-secret16", 0o644);
    let o = d.cli(&[
        "auth",
        "set",
        IQN,
        "--initiator",
        INI,
        "--user",
        "u",
        "--password-file",
        s.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("readable by group or others"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not saved yet"), "{}", stderr(&o));
    // Back to what the file says: no "not saved" note.
    let o = d.cli(&["auth", "clear", IQN, "--initiator", INI]);
    assert_eq!(code(&o), 0);
    assert!(!stderr(&o).contains("not saved yet"), "{}", stderr(&o));
    // Errors of an edit name the key, not a fake file:0.
    let o = d.cli(&["target", "create", "not-an-iqn"]);
    assert_eq!(code(&o), 4);
    assert!(
        !stderr(&o).contains(":0:") && stderr(&o).contains("targets.not-an-iqn"),
        "{}",
        stderr(&o)
    );
    // With --json, errors are JSON too.
    let o = d.cli(&["--json", "backstore", "delete", "nope"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("a JSON error");
    assert_eq!(v["error"]["code"], "not_found");
    assert_eq!(v["error"]["exit_code"], 1);
    let o = d.cli(&["--json", "lun", "add"]);
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("a JSON usage error");
    assert_eq!(v["error"]["code"], "usage");
    // A file with two mistakes: both, in file order.
    std::fs::write(
        &d.config,
        format!(
            "{}[backstores.a]\nkind = \"ramdisk\"\nsize = \"1M\"\n[targets.\"{IQN}\"]\n\
             luns = [{{ backstore = \"missing\" }}]\n[backstores.b]\nkind = \"ramdisk\"\nsise = \"1M\"\n",
            support::daemon_toml(d.dir.path(), d.port)
        ),
    )
    .unwrap();
    let o = d.cli(&["reload"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let e = stderr(&o);
    let (a, b) = (e.find("missing").unwrap(), e.find("sise").unwrap());
    assert!(a < b, "both errors, the first first: {e}");
}

#[test]
fn lun_add_checks_the_target_first_and_fileio_sizes_are_honest() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let o = d.cli(&[
        "lun",
        "add",
        "iqn.2026-11.org.example:typo",
        "--backstore",
        "disk0",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no target iqn.2026-11.org.example:typo"),
        "{}",
        stderr(&o)
    );
    let f = d.path("existing.img");
    std::fs::write(&f, vec![0u8; 1 << 20]).unwrap();
    let create = |size: &str, force: bool| {
        let mut a: Vec<&str> = if force { vec!["--force"] } else { vec![] };
        a.extend([
            "backstore",
            "create",
            "e",
            "--kind",
            "fileio",
            "--path",
            f.to_str().unwrap(),
            "--size",
            size,
        ]);
        d.cli(&a)
    };
    // Larger: would grow the file; refused unless forced.
    let o = create("2M", false);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("--force") && stderr(&o).contains("would grow"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20);
    // Smaller: would be ignored; refused, and the dry run says so.
    let o = create("512K", false);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("never shrunk"), "{}", stderr(&o));
    let o = d.cli(&[
        "--dry-run",
        "backstore",
        "create",
        "e",
        "--kind",
        "fileio",
        "--path",
        f.to_str().unwrap(),
        "--size",
        "512K",
    ]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("needs --force"), "{}", stdout(&o));
    // Forced: grown, and the report says it was forced.
    let o = create("2M", true);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("forced"), "{}", stdout(&o));
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 2 << 20);
}

#[test]
fn live_luns_keep_their_storage_and_identity_unless_forced() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let mut c = d.config();
    c["backstores"]["disk0"]["block_size"] = 4096.into();
    c["backstores"]["disk0"]["serial"] = "NEWSERIAL".into();
    let file = d.path("changed.toml");
    support::write_config(&file, &c);
    let o = d.cli(&["--dry-run", "restoreconfig", file.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    assert!(
        out.contains("needs --force") && out.contains("block size 512 -> 4096"),
        "{out}"
    );
    assert!(out.contains("pinned identity (serial)"), "{out}");
    let o = d.cli(&["restoreconfig", file.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(d.config()["backstores"]["disk0"]["block_size"], 512);
    d.ok(&["--force", "restoreconfig", file.to_str().unwrap()]);
    assert_eq!(d.config()["backstores"]["disk0"]["block_size"], 4096);
}

#[test]
fn sessions_detail_and_logout() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let s = secret(d.dir.path(), "s", "client1-secret16", 0o600);
    d.ok(&[
        "auth",
        "set",
        IQN,
        "--initiator",
        INI,
        "--user",
        "client1",
        "--password-file",
        s.to_str().unwrap(),
    ]);
    let portal = format!("127.0.0.1:{}", d.port);
    let mut sess = login(
        &portal,
        INI,
        Some(IQN),
        9,
        Some(("client1", "client1-secret16")),
    )
    .unwrap();
    let out = d.ok(&["sessions", "--detail"]);
    for want in [
        "auth: CHAP (MD5), user client1",
        "mapped LUNs: lun0 -> disk0",
        "connection cid 0",
        "digests: header None, data None",
        "counters:",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    let v = d.json(&["sessions"]);
    assert_eq!(v[0]["auth_method"], "CHAP (MD5)");
    let tsih = sess.tsih.to_string();
    let o = d.cli(&["session", "logout", "999"]);
    assert_eq!(code(&o), 1);
    d.ok(&["session", "logout", &tsih]);
    assert!(sess.told_to_leave(10), "the initiator was asked to log out");
    assert!(d.sessions_until(|t| t.is_empty()).is_empty());
}

#[test]
fn clearconfig_asks_and_restoreconfig_brings_it_back() {
    let d = Daemon::start_with(&target_body(""), &[]);
    d.ok(&["saveconfig", d.path("saved.toml").to_str().unwrap()]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["--socket", d.socket.to_str().unwrap(), "clearconfig"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1);
    assert_eq!(d.config()["targets"].as_object().unwrap().len(), 1);
    d.ok(&["clearconfig", "--yes"]);
    assert!(
        d.config()["targets"]
            .as_object()
            .is_none_or(|t| t.is_empty())
    );
    d.ok(&["restoreconfig", d.path("saved.toml").to_str().unwrap()]);
    assert_eq!(d.config()["targets"].as_object().unwrap().len(), 1);
}

#[test]
fn get_set_and_ls_non_interactive() {
    let d = Daemon::start_with(&target_body(""), &[]);
    let tpg = format!("/iscsi/{IQN}/tpg1");
    let out = d.ok(&["ls", &format!("/iscsi/{IQN}")]);
    assert!(
        out.contains("o- tpg1") && out.contains("o- lun0 [/backstores/ramdisk/disk0]"),
        "{out}"
    );
    d.ok(&[
        "set",
        &tpg,
        "parameter",
        "HeaderDigest=CRC32C",
        "MaxBurstLength=524288",
    ]);
    let out = d.ok(&["get", &tpg, "parameter", "HeaderDigest", "MaxBurstLength"]);
    assert!(
        out.contains("HeaderDigest=CRC32C") && out.contains("MaxBurstLength=524288"),
        "{out}"
    );
    let c = d.config();
    assert_eq!(c["targets"][IQN]["iscsi"]["header_digest"][0], "CRC32C");
    d.ok(&[
        "--force",
        "set",
        "/backstores/ramdisk/disk0",
        "attribute",
        "emulate_write_cache=1",
    ]);
    assert_eq!(d.config()["backstores"]["disk0"]["write_cache"], true);
    d.ok(&[
        "set",
        &format!("{tpg}/acls/{INI}/mapped_lun0"),
        "attribute",
        "write_protect=1",
    ]);
    assert_eq!(
        d.config()["targets"][IQN]["acls"][INI]["mapped_luns"][0]["read_only"],
        true
    );
    // authentication=0 with no credentials is what runs already; with credentials, refused.
    d.ok(&["set", &tpg, "attribute", "authentication=0"]);
    d.ok(&["set", "/iscsi", "parameter", "default_cmdsn_depth=64"]);
    assert_eq!(d.config()["iscsi"]["queue_depth"], 64);
    let o = d.cli(&["set", &tpg, "attribute", "default_cmdsn_depth=64"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("daemon-wide"), "{}", stderr(&o));
}

#[test]
fn completions_come_from_the_daemon() {
    let d = Daemon::start_with(&target_body(""), &[]);
    for shell in ["bash", "zsh", "fish"] {
        let o = d.cli(&["completions", shell]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("COMPLETE"), "{shell}: {}", stdout(&o));
    }
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .env("COMPLETE", "fish")
        .env("RUSTISCSI_SOCKET", &d.socket)
        .args(["--", "rustiscsi", "lun", "add", ""])
        .output()
        .unwrap();
    assert!(stdout(&o).contains(IQN), "{}{}", stdout(&o), stderr(&o));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .env("COMPLETE", "fish")
        .env("RUSTISCSI_SOCKET", &d.socket)
        .args(["--", "rustiscsi", "acl", "remove", IQN, ""])
        .output()
        .unwrap();
    assert!(stdout(&o).contains(INI), "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn portal_groups_answer_on_their_own_portals() {
    let p2 = free_port();
    let d = Daemon::start_with("", &[]);
    let p1 = d.port;
    let text = format!(
        "{}{RAM}[targets.\"{IQN}\"]\nluns = [{{ lun = 0, backstore = \"disk0\" }}]\n\
         [[targets.\"{IQN}\".portal_groups]]\ntag = 7\nportals = [\"127.0.0.1:{p2}\"]\n\
         [targets.\"{IQN}\".acls.\"{INI}\"]\n",
        support::daemon_toml(d.dir.path(), p1).replace(
            &format!("portals = [\"127.0.0.1:{p1}\"]"),
            &format!("portals = [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]")
        )
    );
    let f = d.path("groups.toml");
    std::fs::write(&f, text).unwrap();
    d.ok(&["restoreconfig", f.to_str().unwrap()]);
    // Not on the portal of its group: target not found there.
    let e = login(&format!("127.0.0.1:{p1}"), INI, Some(IQN), 1, None).err();
    assert_eq!(e, Some((2, 3)));
    let s = login(&format!("127.0.0.1:{p2}"), INI, Some(IQN), 2, None).expect("login on tpg 7");
    let v = d.json(&["sessions"]);
    assert_eq!(v[0]["tpg"], 7, "{v}");
    drop(s);
    // The group disabled: logins are refused, as LIO does for a disabled TPG.
    let c = d.config();
    let mut c2 = c.clone();
    c2["targets"][IQN]["portal_groups"][0]["enabled"] = false.into();
    support::write_config(&f, &c2);
    d.ok(&["restoreconfig", f.to_str().unwrap()]);
    let e = login(&format!("127.0.0.1:{p2}"), INI, Some(IQN), 3, None).err();
    assert_eq!(e, Some((3, 1)));
}

#[test]
fn acl_add_with_chap_is_one_change_and_its_report_is_true() {
    let d = Daemon::start_with(
        &format!("{RAM}[targets.\"{IQN}\"]\nluns = [{{ lun = 0, backstore = \"disk0\" }}]\n"),
        &[],
    );
    let portal = format!("127.0.0.1:{}", d.port);
    let s = secret(d.dir.path(), "c1", "client1-secret16", 0o600);
    let sp = s.to_str().unwrap();
    let add = |extra: &[&str], ini: &str, file: &str| {
        let mut a: Vec<&str> = extra.to_vec();
        a.extend([
            "acl",
            "add",
            IQN,
            ini,
            "--chap-user",
            "client1",
            "--chap-password-file",
            file,
        ]);
        d.cli(&a)
    };
    let rev = |d: &Daemon| d.status()["revision"].as_u64().unwrap();
    let r0 = rev(&d);

    // The prediction: one ACL added, nothing else (no second step changing it).
    let o = add(&["--json", "--dry-run"], INI, sp);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let p: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["dry_run"], true);
    assert_eq!(p["plan"]["acls_added"][0]["initiator"], INI, "{p}");
    assert_eq!(p["plan"]["acls_added"].as_array().unwrap().len(), 1);
    assert!(
        p["plan"]["acls_changed"].as_array().unwrap().is_empty(),
        "{p}"
    );
    assert_eq!(rev(&d), r0, "a dry run changes nothing");

    // For real: the report names both halves and the one revision it made.
    let o = add(&[], INI, sp);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "added ACL {INI} to {IQN} (every LUN); set CHAP on ACL {INI} of {IQN}"
        )),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains(&format!("revision {}", r0 + 1)),
        "{}",
        stdout(&o)
    );
    assert_eq!(rev(&d), r0 + 1, "one change, one revision");
    // What the daemon runs is what was reported.
    let st = d.status();
    let acl = &st["targets"][0]["acls"][0];
    assert_eq!(acl["initiator"], INI, "{st}");
    assert_eq!(acl["chap_user"], "client1", "{st}");
    assert_eq!(acl["mapped_luns"][0]["lun"], 0, "{st}");
    let c = d.config();
    let chap = &c["targets"][IQN]["acls"][INI]["chap"];
    assert_eq!(chap["user"], "client1");
    assert_eq!(chap["password_file"], sp);
    // CHAP is asked from the first login on: without it (or with a wrong secret) refused.
    assert!(login(&portal, INI, Some(IQN), 1, None).is_err());
    assert!(
        login(
            &portal,
            INI,
            Some(IQN),
            2,
            Some(("client1", "wrong-secret-xyz"))
        )
        .is_err()
    );
    login(
        &portal,
        INI,
        Some(IQN),
        3,
        Some(("client1", "client1-secret16")),
    )
    .expect("CHAP login with the credentials given to acl add");

    // Failures change nothing and say why, with a non-zero exit.
    let before = d.config();
    let other = "iqn.2026-11.org.example:second";
    let missing = d.path("no-such.secret");
    let o = add(&[], other, missing.to_str().unwrap());
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(missing.to_str().unwrap()),
        "the message names the file: {}",
        stderr(&o)
    );
    // A secret file that is a directory cannot be read either.
    let o = add(&[], other, d.dir.path().to_str().unwrap());
    assert_ne!(code(&o), 0, "{}", stderr(&o));
    // The ACL exists already: refused before anything else, its CHAP kept.
    let s2 = secret(d.dir.path(), "c2", "another-secret-77", 0o600);
    let o = d.cli(&[
        "acl",
        "add",
        IQN,
        INI,
        "--chap-user",
        "intruder",
        "--chap-password-file",
        s2.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("target {IQN} already has an ACL for {INI}")),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        d.config(),
        before,
        "no failed acl add changed the configuration"
    );
    assert_eq!(rev(&d), r0 + 1, "no failed acl add made a revision");
    assert!(d.config()["targets"][IQN]["acls"].get(other).is_none());
    login(
        &portal,
        INI,
        Some(IQN),
        4,
        Some(("client1", "client1-secret16")),
    )
    .expect("the first credentials still work");
}

#[test]
fn demo_mode_set_as_a_target_attribute() {
    let d = Daemon::start_with(
        &format!("{RAM}[targets.\"{IQN}\"]\nluns = [{{ lun = 0, backstore = \"disk0\" }}]\n"),
        &[],
    );
    let portal = format!("127.0.0.1:{}", d.port);
    let tpg = format!("/iscsi/{IQN}/tpg1");
    let stranger = "iqn.2026-11.org.example:stranger";
    assert!(
        login(&portal, stranger, Some(IQN), 1, None).is_err(),
        "no ACL, no demo mode: refused"
    );
    assert!(
        d.ok(&["get", &tpg, "attribute", "generate_node_acls"])
            .contains("generate_node_acls=0")
    );
    // targetcli's name, through `rustiscsi set`.
    let r = d.json(&["set", &tpg, "attribute", "generate_node_acls=1"]);
    assert_eq!(r["plan"]["targets_changed"][0], IQN, "{r}");
    assert_eq!(d.config()["targets"][IQN]["demo_mode"], true);
    assert!(
        d.ok(&["get", &tpg, "attribute", "generate_node_acls"])
            .contains("generate_node_acls=1")
    );
    let s = login(&portal, stranger, Some(IQN), 2, None).expect("demo mode admits any initiator");
    let v = d.json(&["sessions"]);
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tsih"] == s.tsih)
        .unwrap();
    assert_eq!(mine["initiator"], stranger);
    assert_eq!(mine["mapped_luns"][0]["backstore"], "disk0", "{v}");
    assert_eq!(mine["mapped_luns"][0]["read_only"], false, "{v}");
    drop(s);
    // Write-protected demo mode: new demo sessions see the LUN read-only.
    d.ok(&["set", &tpg, "attribute", "demo_mode_write_protect=1"]);
    let s = login(&portal, stranger, Some(IQN), 3, None).expect("demo login");
    let v = d.json(&["sessions"]);
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tsih"] == s.tsih)
        .unwrap();
    assert_eq!(mine["mapped_luns"][0]["read_only"], true, "{v}");
    // Demo mode and ACLs together are refused here (which one would decide?), clearly.
    let o = d.cli(&["acl", "add", IQN, INI]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("demo_mode = true with ACLs"),
        "{}",
        stderr(&o)
    );
    // Our name for it, through the shell's verbs: off again, the demo session is logged
    // out and a new one refused.
    let r = d.json(&["shell", &tpg, "set", "attribute", "demo_mode=0"]);
    assert!(
        r["plan"]["sessions_logged_out"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["tsih"] == s.tsih),
        "{r}"
    );
    assert_eq!(d.config()["targets"][IQN]["demo_mode"], false);
    assert!(login(&portal, stranger, Some(IQN), 4, None).is_err());
}
