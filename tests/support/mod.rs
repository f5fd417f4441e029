//! Shared by the tests that run the real daemon and CLI: a daemon in a temp dir, the CLI,
//! and a minimal iSCSI initiator that logs in and stays.
#![allow(dead_code)]

pub mod initiator;
pub mod pty;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const IQN: &str = "iqn.2026-11.org.example:cli";
pub const INI: &str = "iqn.2026-11.org.example:client1";

/// A free TCP port on loopback (picked by the kernel).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running rustiscsid with its own temp dir.
pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The `[daemon]` table of a test daemon in `dir` on `port`.
pub fn daemon_toml(dir: &Path, port: u16) -> String {
    format!(
        "[daemon]\nportals = [\"127.0.0.1:{port}\"]\nstate_dir = \"{}\"\ncontrol_socket = \"{}\"\n\
         nop_interval_secs = 0\n",
        dir.join("state").display(),
        dir.join("control.sock").display()
    )
}

impl Daemon {
    /// Starts a daemon on `body` (TOML after the `[daemon]` table) with `args`.
    pub fn start_with(body: &str, args: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("rustiscsi.toml");
        std::fs::write(&config, format!("{}{body}", daemon_toml(dir.path(), port))).unwrap();
        let socket = dir.path().join("control.sock");
        Self::spawn(dir, config, socket, port, args)
    }

    /// Starts a daemon on an empty configuration.
    pub fn start() -> Daemon {
        Self::start_with("", &[])
    }

    fn spawn(
        dir: tempfile::TempDir,
        config: PathBuf,
        socket: PathBuf,
        port: u16,
        args: &[&str],
    ) -> Daemon {
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "daemon did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            dir,
            socket,
            config,
            port,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.socket, args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "rustiscsi {args:?} failed ({:?}): {}{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).unwrap()
    }

    pub fn status(&self) -> serde_json::Value {
        self.json(&["status"])
    }

    pub fn config(&self) -> serde_json::Value {
        self.json(&["config"])["config"].clone()
    }

    /// The TSIHs of the sessions, waiting (bounded) until `pred` holds.
    pub fn sessions_until(&self, pred: impl Fn(&[u64]) -> bool) -> Vec<u64> {
        let t0 = Instant::now();
        loop {
            let v = self.json(&["sessions"]);
            let t: Vec<u64> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["tsih"].as_u64().unwrap())
                .collect();
            if pred(&t) || t0.elapsed() > Duration::from_secs(20) {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn cli(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a configuration (as `rustiscsi --json config` shows it) as TOML.
pub fn write_config(path: &Path, c: &serde_json::Value) {
    let cfg: rustiscsi::config::Config = serde_json::from_value(c.clone()).unwrap();
    std::fs::write(path, rustiscsi::config::to_toml(&cfg)).unwrap();
}

/// Whether something accepts TCP connections at `addr` now.
pub fn accepts(addr: &str) -> bool {
    std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok()
}

/// A secret file (mode 0600 unless `mode`).
pub fn secret(dir: &Path, name: &str, value: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}
