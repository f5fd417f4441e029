//! `rustiscsid` as a child process: started on a configuration file, ready once its control
//! socket accepts, stopped with SIGTERM on drop (SIGKILL if it has not exited 15 s later).
//! Every test that runs the daemon starts it through [`Process::start`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a test wants the daemon started.
pub struct Launch<'a> {
    /// The configuration file.
    pub config: &'a Path,
    /// The control socket the configuration names (readiness is its first accept).
    pub socket: &'a Path,
    /// More command-line arguments.
    pub args: &'a [&'a str],
    /// `RUST_LOG`.
    pub rust_log: &'a str,
    /// Where stderr (the tracing output) goes; None: nowhere.
    pub log: Option<&'a Path>,
    /// How long it may take to open its control socket.
    pub ready_within: Duration,
}

impl<'a> Launch<'a> {
    /// Defaults: no extra arguments, `RUST_LOG=warn`, stderr dropped, 20 s to start.
    pub fn new(config: &'a Path, socket: &'a Path) -> Self {
        Launch {
            config,
            socket,
            args: &[],
            rust_log: "warn",
            log: None,
            ready_within: Duration::from_secs(20),
        }
    }
}

/// Why the daemon did not come up.
#[derive(Debug)]
pub enum StartError {
    /// It exited first (with its log, when there is one).
    Exited(String),
}

/// A running daemon; see the module doc.
pub struct Process {
    child: Mutex<Child>,
    /// Its pid.
    pub pid: u32,
    /// Its stderr, when it was sent to a file.
    pub log: Option<PathBuf>,
}

impl Process {
    /// Starts the daemon and waits until its control socket accepts. Panics if that takes
    /// longer than `ready_within` (with the log).
    pub fn start(l: &Launch) -> Result<Process, StartError> {
        let _ = std::fs::remove_file(l.socket);
        let stderr = match l.log {
            Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
            None => Stdio::null(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_rustiscsid"))
            .arg("--config")
            .arg(l.config)
            .args(l.args)
            .env("RUST_LOG", l.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn rustiscsid");
        let p = Process {
            pid: child.id(),
            child: Mutex::new(child),
            log: l.log.map(Path::to_path_buf),
        };
        let t0 = Instant::now();
        while std::os::unix::net::UnixStream::connect(l.socket).is_err() {
            if !p.alive() {
                return Err(StartError::Exited(p.log_text()));
            }
            assert!(
                t0.elapsed() < l.ready_within,
                "rustiscsid did not open its control socket in {:?}:\n{}",
                l.ready_within,
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(p)
    }

    /// Whether the process still runs.
    pub fn alive(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// The log so far (empty without a log file).
    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL if it has not exited 15 s later; nothing if it already exited.
    pub fn stop(&self) {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        let mut c = self.child.lock().unwrap();
        if !matches!(c.try_wait(), Ok(None)) {
            return;
        }
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while matches!(c.try_wait(), Ok(None)) {
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                let _ = c.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}
