//! The seed's targetcli workflow (ArchWiki, iSCSI target, targetcli section) typed into
//! `rustiscsi shell` as it is written there: a block backstore (a loop device stands in
//! for the md device), `/iscsi> create` without an IQN, `portals> create` without an
//! address, an ACL, `set auth` both ways, `saveconfig`; then a mutual-CHAP login through
//! the portal the shell made.
//!
//! The default portal is 0.0.0.0:3260, so the test runs in a network namespace of its own
//! (nothing else can hold 3260 there) and needs root, as the loop device does: without
//! root it fails, it does not skip.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::initiator::{BAD_MUTUAL_ANSWER, login, login_mutual};
use support::pty::Pty;

/// A loop device over a file; detached on drop, whatever the test did.
struct Loop(PathBuf);

impl Loop {
    fn attach(file: &Path) -> Loop {
        Loop(PathBuf::from(support::run(
            "losetup",
            &["-f", "--show", file.to_str().unwrap()],
        )))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

/// Moves the calling thread (and what it spawns) into a new network namespace with its
/// loopback up.
fn own_network_namespace() {
    // SAFETY: unshare(2) with CLONE_NEWNET changes only the calling thread's namespace.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        rc,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    support::run("ip", &["link", "set", "lo", "up"]);
}

fn year_month() -> String {
    support::run("date", &["-u", "+%Y-%m"])
}

#[test]
fn seed_workflow_with_generated_iqn_default_portal_block_and_mutual_chap() {
    // Not a silent skip: without root this fails (the Nix sandbox skips it by name).
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (a loop device and a network namespace); run tests/install-deps.sh and cargo test as root"
    );
    // A thread of its own: the namespace is the thread's, and goes with it.
    let t = std::thread::spawn(|| {
        own_network_namespace();
        seed_workflow();
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

fn seed_workflow() {
    // Declared before the daemon, so that on a failure the daemon lets go of the device
    // before it is detached, and the file goes last.
    let store = tempfile::tempdir().unwrap();
    let img = store.path().join("md.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(32 << 20)
        .unwrap();
    let dev = Loop::attach(&img);
    let d = support::Daemon::start();
    let devs = dev.0.to_str().unwrap().to_owned();
    assert!(
        !support::accepts("127.0.0.1:3260"),
        "the namespace is new: nothing on 3260 yet"
    );
    let home = d.path("home");
    let mut sh = Pty::shell(&d.socket, &home);

    // /> cd backstores/block ; create md_block0 /dev/...
    sh.line("cd backstores/block", "/backstores/block> ");
    sh.line(&format!("create md_block0 {devs}"), "/backstores/block> ");
    // cd /iscsi ; create (no IQN: one is made up)
    sh.line("cd /iscsi", "/iscsi> ");
    let ym0 = year_month();
    sh.send("create\r");
    let out = sh.expect_after("/iscsi> ");
    let ym1 = year_month();
    let iqn = out
        .split_whitespace()
        .find(|w| w.starts_with("iqn."))
        .unwrap_or_else(|| panic!("no IQN printed by create:\n{out}"))
        .to_owned();
    assert!(
        out.contains(&format!("created target {iqn}")),
        "the report names the target: {out}"
    );
    // cd <iqn>/tpg1, the IQN completed from the daemon's tree.
    sh.send("cd iqn.\t");
    sh.expect(&format!("{iqn}/"));
    sh.send("tp\t");
    sh.expect("tpg1/");
    sh.line("", "tpg1> ");
    // cd luns ; create /backstores/block/md_block0
    sh.line("cd luns", "luns> ");
    sh.line("create /backstores/block/md_block0", "luns> ");
    // .../luns/lun0> cd ../../portals ; create (no address: the default)
    sh.line("cd lun0", "lun0> ");
    sh.line("cd ../../portals", "portals> ");
    sh.send("create\r");
    let out = sh.expect_after("portals> ");
    assert!(out.contains("added portal 0.0.0.0:3260"), "{out}");
    // ...> cd ../../acls ; create iqn.2005-03.org.open-iscsi:SERIAL
    sh.line("cd 0.0.0.0:3260", "0.0.0.0:3260> ");
    sh.line("cd ../../acls", "acls> ");
    let ini = "iqn.2005-03.org.open-iscsi:serial";
    sh.line(&format!("create {ini}"), "acls> ");
    // The ACL's auth, one key a line as the seed sets it.
    sh.line(&format!("cd {ini}"), &format!("{ini}> "));
    let at = format!("{ini}> ");
    sh.line("set auth userid=nasuser", &at);
    sh.line("set auth password=nas-password-1", &at);
    sh.line("set auth mutual_userid=initiator-side", &at);
    sh.line("set auth mutual_password=mutual-password-2", &at);
    sh.send("get auth\r");
    let out = sh.expect_after(&at);
    assert!(
        out.contains("userid=nasuser") && out.contains("mutual_userid=initiator-side"),
        "{out}"
    );
    // cd / ; saveconfig
    sh.line("cd /", "/> ");
    sh.line("saveconfig", "/> ");
    sh.line("exit", "");
    sh.wait_exit();

    // The generated IQN: valid, of this month, and the one the daemon runs.
    assert!(
        rustiscsi::config::check_iscsi_name(&iqn).is_ok(),
        "{iqn}: {:?}",
        rustiscsi::config::check_iscsi_name(&iqn)
    );
    let (date, rest) = iqn["iqn.".len()..].split_once('.').unwrap();
    assert!(date == ym0 || date == ym1, "{iqn}: dated {date}, now {ym1}");
    let (authority, unique) = rest.split_once(':').expect("iqn.DATE.AUTHORITY:NAME");
    assert!(authority.split('.').count() >= 2, "{iqn}");
    assert!(!unique.is_empty(), "{iqn}");
    let s = d.status();
    let targets = s["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{s}");
    let t = &targets[0];
    assert_eq!(t["iqn"], iqn.as_str(), "printed IQN is the one that runs");
    // The block backstore over the device, its size the device's.
    let b = s["backstores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "md_block0")
        .unwrap_or_else(|| panic!("no md_block0 in {s}"));
    assert_eq!(b["kind"], "block", "{s}");
    assert_eq!(b["path"], devs.as_str(), "{s}");
    assert_eq!(b["size_bytes"], 32 << 20, "{s}");
    assert_eq!(t["luns"][0]["lun"], 0);
    assert_eq!(t["luns"][0]["backstore"], "md_block0");
    // The ACL got the existing LUN mapped, and CHAP both ways.
    let acl = &t["acls"][0];
    assert_eq!(acl["initiator"], ini);
    assert_eq!(acl["mapped_luns"][0]["lun"], 0, "{s}");
    assert_eq!(acl["chap_user"], "nasuser");
    assert_eq!(acl["mutual_chap_user"], "initiator-side");
    // The default portal, really listening.
    assert!(
        s["portals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["portal"] == "0.0.0.0:3260" && p["accepting"] == true),
        "{s}"
    );
    assert!(support::accepts("127.0.0.1:3260"));
    // saveconfig wrote it; the history has no password.
    let saved = std::fs::read_to_string(&d.config).unwrap();
    assert!(
        saved.contains(&iqn) && saved.contains(&devs) && saved.contains("0.0.0.0:3260"),
        "{saved}"
    );
    assert!(!saved.contains("nas-password-1") && !saved.contains("mutual-password-2"));
    let hist = std::fs::read_to_string(home.join(".rustiscsi_history")).unwrap();
    assert!(
        hist.contains("create /backstores/block/md_block0"),
        "{hist}"
    );
    assert!(!hist.contains("password-"), "{hist}");

    // Logins through the portal the shell made.
    let portal = "127.0.0.1:3260";
    let chap = ("nasuser", "nas-password-1");
    assert!(
        login(portal, ini, Some(&iqn), 1, None).is_err(),
        "no CHAP: refused"
    );
    assert!(
        login(portal, ini, Some(&iqn), 2, Some(chap)).is_err(),
        "one-way CHAP where mutual is set: refused"
    );
    assert_eq!(
        login_mutual(
            portal,
            ini,
            &iqn,
            3,
            chap,
            ("initiator-side", "not-the-secret")
        )
        .err(),
        Some(BAD_MUTUAL_ANSWER),
        "the check of the target's answer is a real one"
    );
    let sess = login_mutual(
        portal,
        ini,
        &iqn,
        4,
        chap,
        ("initiator-side", "mutual-password-2"),
    )
    .expect("mutual CHAP login: the target answered our challenge with its secret");
    let v = d.json(&["sessions"]);
    let mine = v
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tsih"] == sess.tsih)
        .unwrap_or_else(|| panic!("no session {} in {v}", sess.tsih));
    assert_eq!(mine["chap_user"], "nasuser", "{v}");
    assert_eq!(mine["mapped_luns"][0]["backstore"], "md_block0", "{v}");
    drop(sess);
}
