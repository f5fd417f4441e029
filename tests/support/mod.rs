//! Shared by the integration tests that run the real binaries: the daemon as a child
//! process ([`process`]), a daemon in a temp dir driven through the CLI ([`Daemon`]), the
//! hostile suites' daemon with its measurements ([`hostile`]), one raw iSCSI initiator for
//! every test that talks iSCSI ([`initiator`]), the witness session ([`witness`]) and a pty
//! for the interactive shell ([`pty`]).
//!
//! Each test file includes this with `mod support;`; not every file uses every helper.
#![allow(dead_code, unused_imports)]

pub mod hostile;
pub mod initiator;
pub mod process;
pub mod pty;
pub mod witness;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use process::{Launch, Process};

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
    pub process: Process,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub port: u16,
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
        let process = Process::start(&Launch {
            args,
            ..Launch::new(&config, &socket)
        })
        .unwrap_or_else(|e| panic!("daemon did not start: {e:?}"));
        Daemon {
            process,
            dir,
            socket,
            config,
            port,
        }
    }

    /// Stops the daemon and starts it again on the same configuration file (which the test
    /// may have changed, or `saveconfig` rewritten).
    pub fn restart(self, args: &[&str]) -> Daemon {
        let Daemon {
            process,
            dir,
            socket,
            config,
            port,
        } = self;
        drop(process);
        Self::spawn(dir, config, socket, port, args)
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

/// Runs `prog args`, which must succeed; its standard output, trimmed.
pub fn run(prog: &str, args: &[&str]) -> String {
    let o = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!("{prog}: {e} (tests/install-deps.sh installs what the tests run)")
    });
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
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

/// Polls `f` every 20 ms until it returns true or `limit` passes; returns how long it took
/// (None: it never became true). Tests wait with this, never with a bare sleep.
pub fn poll_until(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if f() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A deterministic byte pattern for verified I/O (`seed` tells writes apart).
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// READ(10) / WRITE(10) CDBs.
pub fn rw10(write: bool, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = if write { 0x2a } else { 0x28 };
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

/// TEST UNIT READY.
pub const TUR: [u8; 6] = [0; 6];

/// A small xorshift generator (fixed seeds keep random cases reproducible).
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}
