//! Health of a backstore as an admin sees it: healthy, failing (I/O errors), offline (not
//! there: cannot be opened, or vanished). Logs one line per state change, naming the
//! backstore, its device, the LUNs that export it, the first failing LBA and initiator,
//! and in between at most one summary line per [`SUMMARY_EVERY`] with the counts
//! ("1532 more write errors on vm1 in the last 10 s"), never one line per command.
//!
//! Time is a parameter (`now`), so the state machine is tested without sleeping; the
//! daemon calls [`Health::tick`] about once a second.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Shortest time between two summary lines of one backstore.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// A failing backstore is healthy again after this long without an error (and with at
/// least one successful I/O).
pub const RECOVERY_AFTER: Duration = Duration::from_secs(30);

/// The state of a backstore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Serving without errors.
    Healthy,
    /// Serving, but I/O fails.
    Failing,
    /// Not serving: its LUNs answer NOT READY.
    Offline,
}

impl State {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Failing => "failing",
            State::Offline => "offline",
        }
    }
}

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// READ, VERIFY, the read of COMPARE AND WRITE.
    Read = 0,
    /// WRITE, WRITE SAME.
    Write = 1,
    /// SYNCHRONIZE CACHE, FUA.
    Flush = 2,
    /// UNMAP, WRITE SAME with UNMAP.
    Discard = 3,
}

impl Op {
    fn name(self) -> &'static str {
        ["read", "write", "flush", "discard"][self as usize]
    }
}

/// One failed command, as the SCSI layer describes it.
#[derive(Clone, Copy)]
pub struct Failure<'a> {
    /// What failed.
    pub op: Op,
    /// First LBA of the command.
    pub lba: u64,
    /// LUN the initiator addressed.
    pub lun: u64,
    /// Initiator port name.
    pub initiator: &'a str,
    /// The error, for the first line.
    pub error: &'a dyn Display,
}

/// Counters and state of one backstore, as `status`, `stats` and the metrics show them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Current state.
    pub state: Option<State>,
    /// Why it is offline, when it is.
    pub reason: Option<String>,
    /// Failed reads since the daemon started.
    pub read_errors: u64,
    /// Failed writes.
    pub write_errors: u64,
    /// Failed flushes (SYNCHRONIZE CACHE, FUA).
    pub flush_errors: u64,
    /// Failed discards.
    pub discard_errors: u64,
}

#[derive(Debug, Default)]
struct Window {
    counts: [u64; 4],
    lba_min: u64,
    lba_max: u64,
    initiators: Vec<String>,
    more_initiators: bool,
}

impl Window {
    fn add(&mut self, f: &Failure<'_>) {
        if self.counts.iter().all(|&c| c == 0) {
            self.lba_min = f.lba;
            self.lba_max = f.lba;
        }
        self.counts[f.op as usize] += 1;
        self.lba_min = self.lba_min.min(f.lba);
        self.lba_max = self.lba_max.max(f.lba);
        if !self.initiators.iter().any(|i| i == f.initiator) {
            if self.initiators.len() < 3 {
                self.initiators.push(f.initiator.to_string());
            } else {
                self.more_initiators = true;
            }
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn describe(&self, name: &str, secs: u64) -> String {
        let parts: Vec<String> = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                format!(
                    "{c} more {} errors",
                    ["read", "write", "flush", "discard"][i]
                )
            })
            .collect();
        let more = if self.more_initiators { ", ..." } else { "" };
        format!(
            "{} on {name} in the last {secs} s (LBAs {}..{}, initiators {}{more})",
            parts.join(" and "),
            self.lba_min,
            self.lba_max,
            self.initiators.join(", ")
        )
    }
}

#[derive(Debug)]
struct Inner {
    state: State,
    reason: Option<String>,
    since: Instant,
    window: Window,
    window_start: Instant,
    last_error: Instant,
    errors_in_state: u64,
}

/// The health of one backstore (kept by its logical unit, across reopens).
#[derive(Debug)]
pub struct Health {
    name: String,
    device: String,
    exports: Mutex<String>,
    errors: [AtomicU64; 4],
    ok_seen: AtomicBool,
    inner: Mutex<Inner>,
}

impl Health {
    /// Health of backstore `name` on `device` (its path, or "memory"), starting `state`.
    pub fn new(name: &str, device: &str, state: State, reason: Option<String>) -> Self {
        let now = Instant::now();
        Health {
            name: name.to_string(),
            device: device.to_string(),
            exports: Mutex::new(String::new()),
            errors: Default::default(),
            ok_seen: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                state,
                reason,
                since: now,
                window: Window::default(),
                window_start: now,
                last_error: now,
                errors_in_state: 0,
            }),
        }
    }

    /// The backstore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets which target LUNs export the backstore, for log lines (e.g.
    /// `iqn...:vm LUN 0`); the registry sets it on every build.
    pub fn set_exports(&self, exports: String) {
        *self.exports.lock().unwrap_or_else(|e| e.into_inner()) = exports;
    }

    fn exports(&self) -> String {
        let e = self.exports.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_empty() {
            "no LUN".into()
        } else {
            e.clone()
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.inner().state
    }

    /// Records a successful I/O (one relaxed load on the fast path).
    pub fn ok(&self) {
        if !self.ok_seen.load(Ordering::Relaxed) {
            self.ok_seen.store(true, Ordering::Relaxed);
        }
    }

    /// Records a failed command.
    pub fn error(&self, now: Instant, f: Failure<'_>) {
        self.errors[f.op as usize].fetch_add(1, Ordering::Relaxed);
        self.ok_seen.store(false, Ordering::Relaxed);
        let mut g = self.inner();
        g.last_error = now;
        g.errors_in_state += 1;
        match g.state {
            State::Healthy => {
                g.state = State::Failing;
                g.since = now;
                g.errors_in_state = 1;
                g.window = Window::default();
                g.window_start = now;
                tracing::warn!(
                    backstore = %self.name,
                    device = %self.device,
                    luns = %self.exports(),
                    lba = f.lba,
                    initiator = %f.initiator,
                    "backstore {} failing: {} error at LBA {} from {} (LUN {}): {}",
                    self.name,
                    f.op.name(),
                    f.lba,
                    f.initiator,
                    f.lun,
                    f.error
                );
            }
            State::Failing | State::Offline => {
                g.window.add(&f);
                self.maybe_summary(&mut g, now);
            }
        }
    }

    fn maybe_summary(&self, g: &mut Inner, now: Instant) {
        if g.window.total() > 0 && now.duration_since(g.window_start) >= SUMMARY_EVERY {
            self.flush_summary(g, now);
        }
    }

    fn flush_summary(&self, g: &mut Inner, now: Instant) {
        if g.window.total() > 0 {
            let secs = now.duration_since(g.window_start).as_secs().max(1);
            tracing::warn!(
                backstore = %self.name,
                device = %self.device,
                luns = %self.exports(),
                "{}",
                g.window.describe(&self.name, secs)
            );
        }
        g.window = Window::default();
        g.window_start = now;
    }

    /// Logs the offline line of a backstore that starts offline (once its exports are
    /// known).
    pub fn announce(&self) {
        let g = self.inner();
        if g.state == State::Offline {
            tracing::error!(
                backstore = %self.name,
                device = %self.device,
                luns = %self.exports(),
                "backstore {} offline: {}; {} answer NOT READY until it is back (retried with backoff)",
                self.name,
                g.reason.as_deref().unwrap_or("?"),
                self.exports()
            );
        }
    }

    /// The backstore is not there (cannot be opened, vanished): its LUNs answer NOT READY.
    /// Logs once per state change, and again only when the reason changes.
    pub fn offline(&self, now: Instant, reason: &str) {
        let mut g = self.inner();
        let same = g.state == State::Offline && g.reason.as_deref() == Some(reason);
        if same {
            return;
        }
        self.flush_summary(&mut g, now);
        if g.state == State::Offline {
            tracing::warn!(backstore = %self.name, device = %self.device, "backstore {} still offline, now: {reason}", self.name);
        } else {
            tracing::error!(
                backstore = %self.name,
                device = %self.device,
                luns = %self.exports(),
                "backstore {} offline: {reason}; {} answer NOT READY until it is back (retried with backoff)",
                self.name,
                self.exports()
            );
            g.state = State::Offline;
            g.since = now;
            g.errors_in_state = 0;
        }
        g.reason = Some(reason.to_string());
    }

    /// The backstore is open again.
    pub fn online(&self, now: Instant) {
        let mut g = self.inner();
        if g.state != State::Offline {
            return;
        }
        self.flush_summary(&mut g, now);
        tracing::info!(
            backstore = %self.name,
            device = %self.device,
            luns = %self.exports(),
            "backstore {} online (was offline for {} s: {})",
            self.name,
            now.duration_since(g.since).as_secs(),
            g.reason.as_deref().unwrap_or("?")
        );
        g.state = State::Healthy;
        g.reason = None;
        g.since = now;
        g.errors_in_state = 0;
    }

    /// Periodic work: the summary of errors not yet logged, and failing -> healthy after
    /// [`RECOVERY_AFTER`] without errors.
    pub fn tick(&self, now: Instant) {
        let mut g = self.inner();
        self.maybe_summary(&mut g, now);
        if g.state == State::Failing
            && now.duration_since(g.last_error) >= RECOVERY_AFTER
            && self.ok_seen.load(Ordering::Relaxed)
        {
            self.flush_summary(&mut g, now);
            tracing::info!(
                backstore = %self.name,
                device = %self.device,
                luns = %self.exports(),
                "backstore {} healthy again: no errors for {} s ({} errors in {} s of failing)",
                self.name,
                RECOVERY_AFTER.as_secs(),
                g.errors_in_state,
                g.last_error.duration_since(g.since).as_secs()
            );
            g.state = State::Healthy;
            g.since = now;
            g.errors_in_state = 0;
        }
    }

    /// Counters and state now.
    pub fn snapshot(&self) -> HealthSnapshot {
        let g = self.inner();
        let get = |i: usize| self.errors[i].load(Ordering::Relaxed);
        HealthSnapshot {
            state: Some(g.state),
            reason: g.reason.clone(),
            read_errors: get(0),
            write_errors: get(1),
            flush_errors: get(2),
            discard_errors: get(3),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(h: &Health, now: Instant, op: Op, lba: u64) {
        let e = std::io::Error::from_raw_os_error(libc::EIO);
        h.error(
            now,
            Failure {
                op,
                lba,
                lun: 0,
                initiator: "iqn.x:ini,i,0x1",
                error: &e,
            },
        );
    }

    #[test]
    fn burst_is_a_few_state_changes_and_summaries() {
        let h = Health::new("vm1", "/dev/vg/vm1", State::Healthy, None);
        let t0 = Instant::now();
        for i in 0..3000u64 {
            // 3000 errors over 13 s
            fail(&h, t0 + Duration::from_millis(i * 13 / 3), Op::Write, i);
        }
        let s = h.snapshot();
        assert_eq!(s.write_errors, 3000);
        assert_eq!(s.state, Some(State::Failing));
        h.tick(t0 + Duration::from_secs(25));
        h.ok();
        h.tick(t0 + Duration::from_secs(50));
        assert_eq!(h.state(), State::Healthy);
        h.offline(t0 + Duration::from_secs(60), "device gone");
        h.offline(t0 + Duration::from_secs(61), "device gone");
        assert_eq!(h.state(), State::Offline);
        h.online(t0 + Duration::from_secs(70));
        assert_eq!(h.state(), State::Healthy);
    }

    #[test]
    fn summary_text_names_counts_and_backstore() {
        let mut w = Window::default();
        let e = "x";
        for (op, lba) in [(Op::Write, 7), (Op::Write, 3), (Op::Read, 9)] {
            w.add(&Failure {
                op,
                lba,
                lun: 1,
                initiator: "ini",
                error: &e,
            });
        }
        assert_eq!(
            w.describe("vm1", 10),
            "1 more read errors and 2 more write errors on vm1 in the last 10 s (LBAs 3..9, initiators ini)"
        );
    }
}
