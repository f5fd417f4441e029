//! Shared by the hostile-peer suites (`tests/hostile_*.rs`): the real daemon as a child
//! process with its resource use read from /proc ([`daemon`]), a raw iSCSI initiator that
//! can send anything ([`initiator`]), and the witness session doing verified I/O beside
//! every hostile case ([`witness`]).
//!
//! Each test file includes this with `mod common;`; not every file uses every helper.
#![allow(dead_code, unused_imports)]

pub mod daemon;
pub mod initiator;
pub mod witness;

use std::time::{Duration, Instant};

pub use daemon::{Daemon, INITIATOR, TARGET, WITNESS_TARGET};
pub use initiator::{Cmd, LoginOpts, Pdu, RecvError, Reply, Session};
pub use witness::Witness;

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
