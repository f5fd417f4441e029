//! The daemon of the hostile-peer suites (`tests/hostile_*.rs`): a hostile target and a
//! witness target on a free loopback port, with what a test measures from outside: RSS and
//! address space, open descriptors, CPU time, the session list (control socket) and the log.
//! [`prelude`] is what those suites import.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::process::{Launch, Process, StartError};

use rustiscsi::control::api::{Request, Response, SessionInfo};
use rustiscsi::control::client::Client;

/// The target the hostile cases talk to: LUN 0 (64 MiB) and LUN 1 (16 MiB scratch).
pub const TARGET: &str = "iqn.2026-11.org.example:hostile";
/// The witness's own target (its own LU, so resets of [`TARGET`] do not concern it).
pub const WITNESS_TARGET: &str = "iqn.2026-11.org.example:witness";

/// A running daemon; SIGTERM (then SIGKILL) on drop.
pub struct Daemon {
    process: Process,
    /// The portal.
    pub addr: SocketAddr,
    /// The control socket.
    pub socket: PathBuf,
    /// The configuration file it was started with.
    pub config: PathBuf,
    /// Holds the state dir, the config and the log.
    pub dir: tempfile::TempDir,
}

/// What a test puts into the configuration.
#[derive(Default, Clone)]
pub struct Setup {
    /// Extra `[daemon]` lines (limits, timeouts).
    pub daemon: String,
    /// Extra `[iscsi]` lines (negotiation offer); digests are already offered.
    pub iscsi: String,
    /// Extra lines in the hostile target's table (default `demo_mode = true`).
    pub target: String,
    /// The portal address (default 127.0.0.1 and a free port).
    pub portal_ip: Option<std::net::IpAddr>,
}

impl Setup {
    /// Only `[daemon]` lines.
    pub fn daemon(lines: &str) -> Self {
        Setup {
            daemon: lines.into(),
            ..Default::default()
        }
    }
}

impl Daemon {
    /// Starts the daemon with extra `[daemon]` lines.
    pub fn start(daemon_lines: &str) -> Daemon {
        Self::start_setup(&Setup::daemon(daemon_lines))
    }

    /// Starts the daemon with a full [`Setup`]; retries on another port if the one picked
    /// was taken meanwhile by another test.
    pub fn start_setup(s: &Setup) -> Daemon {
        for _ in 0..5 {
            if let Some(d) = Self::try_start(s) {
                return d;
            }
        }
        panic!("rustiscsid did not start (see the logs above)");
    }

    fn try_start(s: &Setup) -> Option<Daemon> {
        let dir = tempfile::tempdir().unwrap();
        let ip = s
            .portal_ip
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let addr = SocketAddr::new(ip, super::free_port());
        let socket = dir.path().join("control.sock");
        let log = dir.path().join("rustiscsid.log");
        let config = dir.path().join("rustiscsi.toml");
        let target_lines = if s.target.is_empty() {
            "demo_mode = true".to_string()
        } else {
            s.target.clone()
        };
        let text = format!(
            r#"[daemon]
portals = ["{addr}"]
state_dir = "{state}"
control_socket = "{sock}"
{daemon}

[iscsi]
header_digest = ["None", "CRC32C"]
data_digest = ["None", "CRC32C"]
{iscsi}

[backstores.wram]
kind = "ramdisk"
size = "16M"

[backstores.ram]
kind = "ramdisk"
size = "64M"

[backstores.scratch]
kind = "ramdisk"
size = "16M"

[targets."{WITNESS_TARGET}"]
luns = [{{ lun = 0, backstore = "wram" }}]
demo_mode = true

[targets."{TARGET}"]
luns = [{{ lun = 0, backstore = "ram" }}, {{ lun = 1, backstore = "scratch" }}]
{target_lines}
"#,
            state = dir.path().join("state").display(),
            sock = socket.display(),
            daemon = s.daemon,
            iscsi = s.iscsi,
        );
        std::fs::write(&config, text).unwrap();
        let launch = Launch {
            rust_log: "info",
            log: Some(&log),
            ready_within: Duration::from_secs(30),
            ..Launch::new(&config, &socket)
        };
        let process = match Process::start(&launch) {
            Ok(p) => p,
            Err(StartError::Exited(log)) => {
                eprintln!("rustiscsid exited at start:\n{log}");
                return None;
            }
        };
        Some(Daemon {
            process,
            addr,
            socket,
            config,
            dir,
        })
    }

    /// Whether the process still runs.
    pub fn alive(&self) -> bool {
        self.process.alive()
    }

    /// Panics (with the log) if the daemon died or logged a panic.
    pub fn assert_healthy(&self) {
        let log = self.log_text();
        assert!(
            self.alive(),
            "rustiscsid is no longer running; its log:\n{log}"
        );
        assert!(
            !log.contains("panicked"),
            "rustiscsid logged a panic:\n{log}"
        );
    }

    /// The daemon's log (its stderr, the tracing output) so far.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// Resident set size in bytes.
    pub fn rss(&self) -> u64 {
        status_bytes(self.pid(), "VmRSS:")
    }

    /// Virtual address space in bytes.
    pub fn vm_size(&self) -> u64 {
        status_bytes(self.pid(), "VmSize:")
    }

    /// Open file descriptors.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// User + system CPU time consumed so far (/proc/PID/stat utime + stime).
    pub fn cpu_time(&self) -> Duration {
        let s = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are fields 14, 15.
        let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_micros(ticks * 1_000_000 / hz)
    }

    /// Sessions as the control socket lists them.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let c = Client::new(&self.socket).with_timeout(Duration::from_secs(20));
        match c.request(Request::Sessions) {
            Ok(Response::Sessions(s)) => s,
            other => panic!("sessions request failed: {other:?}"),
        }
    }

    /// Sessions of initiator `name`.
    pub fn sessions_of(&self, name: &str) -> usize {
        self.sessions()
            .iter()
            .filter(|s| s.initiator == name)
            .count()
    }

    /// Samples RSS and address space every 10 ms on a thread until stopped; reports the
    /// peaks. Crossing `rss_limit` or `vm_limit` (bytes) sets the `exceeded` flag early,
    /// so a hostile loop can stop before the machine suffers for a test that has already
    /// failed.
    pub fn sample_memory(&self, rss_limit: u64, vm_limit: u64) -> MemorySampler {
        let pid = self.pid();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s2, e2) = (stop.clone(), exceeded.clone());
        let h = std::thread::spawn(move || {
            let read = |field: &str| status_bytes(pid, field);
            let (mut rss_peak, mut vm_peak) = (0u64, 0u64);
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                let (r, v) = (read("VmRSS:"), read("VmSize:"));
                rss_peak = rss_peak.max(r);
                vm_peak = vm_peak.max(v);
                if r > rss_limit || v > vm_limit {
                    e2.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (rss_peak, vm_peak)
        });
        MemorySampler {
            stop,
            exceeded,
            handle: Some(h),
        }
    }
}

/// A `/proc/PID/status` size field (`VmRSS:`, `VmSize:`, given in KiB) in bytes; 0 when
/// the process is gone.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// See [`Daemon::sample_memory`].
pub struct MemorySampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    exceeded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl MemorySampler {
    /// A limit was crossed.
    pub fn exceeded(&self) -> bool {
        self.exceeded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops sampling; returns (peak RSS, peak address space) in bytes.
    pub fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Daemon {
    /// Stops the daemon, then shows the end of its log when the test failed or
    /// `HOSTILE_KEEP_LOG` is set.
    fn drop(&mut self) {
        self.process.stop();
        if std::env::var_os("HOSTILE_KEEP_LOG").is_some() || std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of the rustiscsid log ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// What the hostile suites use: `use support::hostile::prelude::*;`.
pub mod prelude {
    pub use super::super::initiator::{Cmd, INITIATOR, LoginOpts, Pdu, RecvError, Reply, Session};
    pub use super::super::witness::Witness;
    pub use super::super::{Rng, TUR, pattern, poll_until, rw10};
    pub use super::{Daemon, TARGET, WITNESS_TARGET};
}
