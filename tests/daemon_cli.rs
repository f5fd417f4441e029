//! The real daemon and the real CLI, through the real control socket: every change a
//! targetcli user makes (backstore, target, LUN, ACL, CHAP, saveconfig), then a restart
//! from the saved file reproduces the same `status --json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const IQN: &str = "iqn.2026-11.org.example:cli";

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(config: &Path, socket: &Path) -> Daemon {
    let _ = std::fs::remove_file(socket);
    let child = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !socket.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon(child)
}

fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

fn ok(socket: &Path, args: &[&str]) -> String {
    let o = cli(socket, args);
    assert!(
        o.status.success(),
        "rustiscsi {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// `status --json` without what changes between runs (uptime, host facts).
fn status(socket: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&ok(socket, &["--json", "status"])).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("uptime_secs");
    o.remove("host");
    o.remove("revision");
    v
}

#[test]
fn targetcli_workflow_then_saveconfig_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let socket: PathBuf = d.join("control.sock");
    let config = d.join("rustiscsi.toml");
    let secret = d.join("client1.secret");
    std::fs::write(&secret, "client1-secret16\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::write(
        &config,
        format!(
            "[daemon]\nportals = [\"127.0.0.1:{}\"]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n",
            free_port(),
            d.join("state").display(),
            socket.display()
        ),
    )
    .unwrap();
    let daemon = start(&config, &socket);

    // The seed workflow: backstore, IQN, LUN, ACL, CHAP, saveconfig.
    let img = d.join("disk0.img");
    ok(
        &socket,
        &[
            "backstore",
            "create",
            "disk0",
            "--kind",
            "fileio",
            "--path",
            img.to_str().unwrap(),
            "--size",
            "64M",
        ],
    );
    ok(
        &socket,
        &[
            "backstore",
            "create",
            "ram0",
            "--kind",
            "ramdisk",
            "--size",
            "16M",
        ],
    );
    ok(&socket, &["target", "create", IQN]);
    ok(&socket, &["lun", "add", IQN, "--backstore", "disk0"]);
    ok(&socket, &["lun", "add", IQN, "--backstore", "ram0"]);
    ok(
        &socket,
        &[
            "acl",
            "add",
            IQN,
            "iqn.2026-11.org.example:client1",
            "--map",
            "0",
            "--map",
            "1:1:ro",
        ],
    );
    ok(
        &socket,
        &[
            "auth",
            "set",
            IQN,
            "--initiator",
            "iqn.2026-11.org.example:client1",
            "--user",
            "client1",
            "--password-file",
            secret.to_str().unwrap(),
        ],
    );
    assert!(img.exists(), "fileio backstore created sparse");
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 64 << 20);

    // Invalid changes are refused with the documented exit codes, and change nothing.
    let before = status(&socket);
    assert_eq!(
        cli(&socket, &["lun", "add", IQN, "--backstore", "missing"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        cli(&socket, &["target", "create", "not-an-iqn"])
            .status
            .code(),
        Some(4)
    );
    assert_eq!(
        cli(&socket, &["backstore", "delete", "nope"]).status.code(),
        Some(1)
    );
    assert_eq!(status(&socket), before);
    assert_eq!(
        cli(&d.join("nowhere.sock"), &["status"]).status.code(),
        Some(3)
    );

    // The tree shows what was made; sessions are empty; dry runs change nothing.
    let tree = ok(&socket, &["status"]);
    assert!(
        tree.contains(IQN) && tree.contains("disk0") && tree.contains("client1"),
        "{tree}"
    );
    assert_eq!(ok(&socket, &["--json", "sessions"]).trim(), "[]");
    ok(
        &socket,
        &[
            "--dry-run",
            "acl",
            "remove",
            IQN,
            "iqn.2026-11.org.example:client1",
        ],
    );
    assert_eq!(status(&socket), before);
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&socket, &["--json", "stats"])).unwrap();
    assert_eq!(stats["luns"].as_array().unwrap().len(), 2);

    // saveconfig writes the file atomically; a restart from it gives the same status.
    ok(&socket, &["saveconfig"]);
    let saved = std::fs::read_to_string(&config).unwrap();
    assert!(
        saved.contains("client1") && !saved.contains("client1-secret16"),
        "no secret in the TOML"
    );
    drop(daemon);
    let _daemon = start(&config, &socket);
    assert_eq!(status(&socket), before);
    ok(&socket, &["saveconfig"]);
    assert!(
        config.with_file_name("rustiscsi.toml.1").exists(),
        "rotated backup kept"
    );
}
