//! A child on a pseudo-terminal, for the tests of the interactive shell.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child on a pseudo-terminal: what it prints is collected, lines are typed into it.
pub struct Pty {
    master: std::fs::File,
    pub child: Child,
    seen: String,
}

impl Pty {
    /// `rustiscsi --socket SOCKET shell` on a pty, with its history under `home`, at its
    /// first prompt.
    pub fn shell(socket: &std::path::Path, home: &std::path::Path) -> Pty {
        std::fs::create_dir_all(home).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rustiscsi"));
        cmd.arg("--socket")
            .arg(socket)
            .arg("shell")
            .env("HOME", home)
            .env("TERM", "xterm");
        let mut sh = Pty::spawn(&mut cmd);
        sh.expect("/> ");
        sh
    }

    pub fn spawn(cmd: &mut Command) -> Pty {
        use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = pty.slave.into_raw_fd();
        // SAFETY: each Stdio takes its own duplicate of the slave fd.
        let io = || unsafe {
            std::process::Stdio::from_raw_fd(
                nix::unistd::dup(std::os::fd::BorrowedFd::borrow_raw(slave))
                    .unwrap()
                    .into_raw_fd(),
            )
        };
        let child = cmd.stdin(io()).stdout(io()).stderr(io()).spawn().unwrap();
        let _ = nix::unistd::close(slave);
        let master: std::fs::File = pty.master.into();
        let fd = master.as_raw_fd();
        let flags = nix::fcntl::fcntl(&master, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        let _ = fd;
        nix::fcntl::fcntl(
            &master,
            nix::fcntl::FcntlArg::F_SETFL(
                nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK,
            ),
        )
        .unwrap();
        Pty {
            master,
            child,
            seen: String::new(),
        }
    }

    /// Reads until `want` shows up (generous bound for a loaded machine).
    pub fn expect(&mut self, want: &str) {
        self.expect_after(want);
    }

    /// [`Pty::expect`], returning what the child printed before `want`.
    pub fn expect_after(&mut self, want: &str) -> String {
        use std::io::Read;
        let t0 = Instant::now();
        loop {
            let mut buf = [0u8; 4096];
            match self.master.read(&mut buf) {
                Ok(n) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
            if self.seen.contains(want) {
                // Keep only what follows, for the next expectation.
                let found = self.seen.find(want).unwrap();
                let before = self.seen[..found].to_owned();
                self.seen = self.seen[found + want.len()..].to_owned();
                return before;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "no {want:?} from the shell; it printed:\n{}",
                self.seen
            );
        }
    }

    pub fn send(&mut self, s: &str) {
        use std::io::Write;
        self.master.write_all(s.as_bytes()).unwrap();
    }

    /// Types a command line and waits for the next prompt.
    pub fn line(&mut self, l: &str, prompt: &str) {
        self.send(&format!("{l}\r"));
        self.expect(prompt);
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait_exit(&mut self) {
        let t0 = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(20), "shell did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
