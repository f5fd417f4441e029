//! Per logical unit I/O counters and a latency histogram: relaxed atomics only, so the
//! data path pays a few uncontended increments per command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds; the last bucket is open.
pub const BUCKETS_US: [u64; 15] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    1_000_000,
];

/// Counters of one logical unit.
#[derive(Debug, Default)]
pub struct IoMetrics {
    reads: AtomicU64,
    writes: AtomicU64,
    read_bytes: AtomicU64,
    write_bytes: AtomicU64,
    hist: [AtomicU64; BUCKETS_US.len() + 1],
    latency_sum_us: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoSnapshot {
    /// Read commands.
    pub reads: u64,
    /// Write commands.
    pub writes: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// `(bucket upper bound in µs, count)`, the last bound `u64::MAX`.
    pub latency_us: Vec<(u64, u64)>,
    /// Sum of all latencies, in µs.
    pub latency_sum_us: u64,
}

impl IoMetrics {
    /// Records one read or write of `bytes` that took `elapsed`.
    pub fn record(&self, write: bool, bytes: u64, elapsed: Duration) {
        let (n, b) = if write {
            (&self.writes, &self.write_bytes)
        } else {
            (&self.reads, &self.read_bytes)
        };
        n.fetch_add(1, Ordering::Relaxed);
        b.fetch_add(bytes, Ordering::Relaxed);
        let us = elapsed.as_micros().min(u64::MAX as u128) as u64;
        let i = BUCKETS_US
            .iter()
            .position(|&ub| us <= ub)
            .unwrap_or(BUCKETS_US.len());
        self.hist[i].fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> IoSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoSnapshot {
            reads: get(&self.reads),
            writes: get(&self.writes),
            read_bytes: get(&self.read_bytes),
            write_bytes: get(&self.write_bytes),
            latency_us: BUCKETS_US
                .iter()
                .copied()
                .chain([u64::MAX])
                .zip(self.hist.iter().map(get))
                .collect(),
            latency_sum_us: get(&self.latency_sum_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets() {
        let m = IoMetrics::default();
        m.record(false, 4096, Duration::from_micros(7));
        m.record(true, 512, Duration::from_micros(300));
        m.record(true, 512, Duration::from_secs(5));
        let s = m.snapshot();
        assert_eq!(
            (s.reads, s.writes, s.read_bytes, s.write_bytes),
            (1, 2, 4096, 1024)
        );
        assert_eq!(s.latency_us[0], (10, 1));
        assert_eq!(s.latency_us[5], (500, 1));
        assert_eq!(*s.latency_us.last().unwrap(), (u64::MAX, 1));
        assert_eq!(s.latency_us.iter().map(|b| b.1).sum::<u64>(), 3);
    }
}
