//! The daemon binary and its storage: a second daemon on the same file is refused with a
//! message naming the file and who holds it; `--check` never opens a device or file.

use std::path::Path;
use std::process::{Command, Stdio};

mod support;

fn config(dir: &Path, name: &str, backstore: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "[daemon]\nportals = [\"127.0.0.1:{}\"]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\
             {backstore}\n[targets.\"iqn.2026-11.org.example:{name}\"]\n\
             luns = [{{ lun = 0, backstore = \"disk\" }}]\ndemo_mode = true\n",
            support::free_port(),
            dir.join(format!("state-{name}")).display(),
            dir.join(format!("{name}.sock")).display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn a_second_daemon_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    let bs = format!(
        "[backstores.disk]\nkind = \"fileio\"\npath = \"{}\"\nsize = \"16M\"\n",
        img.display()
    );
    let first_conf = config(dir.path(), "first", &bs);
    let sock = dir.path().join("first.sock");
    let first =
        support::process::Process::start(&support::process::Launch::new(&first_conf, &sock))
            .expect("the first daemon starts");
    // The same file through a symlink, from a second daemon.
    let link = dir.path().join("link.img");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    let bs2 = bs.replace(&img.display().to_string(), &link.display().to_string());
    let second = config(dir.path(), "second", &bs2);
    let out = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
        .arg("--config")
        .arg(&second)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the second daemon must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&link.display().to_string()),
        "names the path: {err}"
    );
    assert!(
        err.contains(&format!("pid {}", first.pid)),
        "names who holds it: {err}"
    );
    // --check reads no device or file: it passes while the file is locked, and for a
    // device that does not exist.
    let check = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
        .arg("--check")
        .arg("--config")
        .arg(&second)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let nodev = config(
        dir.path(),
        "nodev",
        "[backstores.disk]\nkind = \"block\"\npath = \"/dev/disk/by-id/not-there\"\n",
    );
    let check = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
        .arg("--check")
        .arg("--config")
        .arg(&nodev)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    drop(first);
}
