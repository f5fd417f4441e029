//! The witness: an ordinary session on its own target doing verified I/O (write a pattern,
//! read it back, compare) in a loop on a thread, beside every hostile case. It must never
//! fail and never stall: whatever a hostile peer does, other sessions keep working.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::hostile::{Daemon, WITNESS_TARGET};
use super::initiator::{Cmd, LoginOpts, Reply, Session};
use super::{pattern, poll_until, rw10};

/// Blocks per witness write (8 KiB).
const BLOCKS: u16 = 16;
/// The witness cycles over this many slots of its LUN.
const SLOTS: u32 = 64;
/// No single witness operation may take longer than this (a loaded 2-core machine).
pub const MAX_OP: Duration = Duration::from_secs(10);

/// A running witness; see the module doc.
pub struct Witness {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<String>>>,
    max_op: Arc<Mutex<Duration>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// Runs `c`, retrying (a few times) on UNIT ATTENTION as every real initiator does.
fn run(s: &mut Session, c: &Cmd, what: &str) -> Result<Reply, String> {
    for _ in 0..4 {
        let r = s.command(c).map_err(|e| format!("{what}: {e}"))?;
        if r.status == 2 && r.sense_key().0 == 6 {
            continue;
        }
        return Ok(r);
    }
    Err(format!("{what}: unit attention four times in a row"))
}

fn one_round(s: &mut Session, i: u64) -> Result<(), String> {
    let slot = (i % SLOTS as u64) as u32;
    let lba = slot * BLOCKS as u32;
    let data = pattern(BLOCKS as usize * 512, i as u32 ^ 0x5eed);
    let w = rw10(true, lba, BLOCKS);
    let r = run(s, &Cmd::write(0, &w, &data), &format!("witness WRITE {i}"))?;
    if r.status != 0 {
        return Err(format!(
            "witness WRITE {i}: status {:#x} {:02x?}",
            r.status,
            r.sense_key()
        ));
    }
    let rd = rw10(false, lba, BLOCKS);
    let r = run(
        s,
        &Cmd::read(0, &rd, data.len() as u32),
        &format!("witness READ {i}"),
    )?;
    if r.status != 0 {
        return Err(format!(
            "witness READ {i}: status {:#x} {:02x?}",
            r.status,
            r.sense_key()
        ));
    }
    if r.data != data {
        return Err(format!(
            "witness READ {i}: data differs from what was written"
        ));
    }
    Ok(())
}

impl Witness {
    /// Logs in to the witness target (panics if that fails) and starts the loop.
    pub fn start(d: &Daemon) -> Witness {
        let mut s = Session::login(
            d.addr,
            &LoginOpts::normal(WITNESS_TARGET, 0x77).initiator("iqn.2026-11.org.example:witness"),
        )
        .unwrap_or_else(|e| panic!("witness login failed: {e:?}"));
        s.timeout = MAX_OP;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(Mutex::new(None));
        let max_op = Arc::new(Mutex::new(Duration::ZERO));
        let (st, dn, fl, mo) = (stop.clone(), done.clone(), failure.clone(), max_op.clone());
        let handle = std::thread::spawn(move || {
            let mut i = 0u64;
            while !st.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                if let Err(e) = one_round(&mut s, i) {
                    *fl.lock().unwrap() = Some(e);
                    return;
                }
                let took = t0.elapsed();
                {
                    let mut m = mo.lock().unwrap();
                    *m = (*m).max(took);
                }
                i += 1;
                dn.store(i, Ordering::Relaxed);
                // A steady trickle, not a benchmark: the machine is shared.
                std::thread::sleep(Duration::from_millis(5));
            }
            s.logout();
        });
        let w = Witness {
            stop,
            done,
            failure,
            max_op,
            handle: Some(handle),
        };
        w.assert_progress();
        w
    }

    /// Rounds completed.
    pub fn rounds(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    fn check_failure(&self) {
        if let Some(e) = self.failure.lock().unwrap().as_ref() {
            panic!("the witness session failed: {e}");
        }
    }

    /// Waits (bounded) until the witness completes two more rounds: it is not stalled.
    pub fn assert_progress(&self) {
        let start = self.rounds();
        let ok = poll_until(MAX_OP * 3, || {
            self.failure.lock().unwrap().is_some() || self.rounds() >= start + 2
        });
        self.check_failure();
        assert!(
            ok.is_some(),
            "the witness made no progress for {:?} (stalled at round {start})",
            MAX_OP * 3
        );
    }

    /// Stops the witness; panics if it failed, stalled, or an operation took longer than
    /// [`MAX_OP`]. Returns the rounds done.
    pub fn finish(mut self) -> u64 {
        self.assert_progress();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.check_failure();
        let m = *self.max_op.lock().unwrap();
        assert!(m <= MAX_OP, "a witness round took {m:?}");
        self.rounds()
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
