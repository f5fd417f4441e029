//! Failed-authentication rate limit per source address: after `limit` failures within a
//! minute, logins from that address are refused without looking at their credentials
//! until the window has passed, so guessing secrets online is slow.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Failure history per address.
#[derive(Debug, Default)]
pub struct AuthLimiter {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl AuthLimiter {
    /// Whether `ip` has used up its `limit` failures in the window (0 = no limit).
    pub fn blocked(&self, ip: IpAddr, limit: u32, now: Instant) -> bool {
        if limit == 0 {
            return false;
        }
        let mut g = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(q) = g.get_mut(&ip) else {
            return false;
        };
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.is_empty() {
            g.remove(&ip);
            return false;
        }
        q.len() >= limit as usize
    }

    /// Records a failure; returns true when this one reaches the limit (log it once).
    pub fn failed(&self, ip: IpAddr, limit: u32, now: Instant) -> bool {
        let mut g = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound the table: forget the oldest addresses when it grows large.
        if g.len() > 10_000 {
            g.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = g.entry(ip).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        q.push_back(now);
        limit > 0 && q.len() == limit as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_within_the_window() {
        let l = AuthLimiter::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        assert!(!l.failed(ip, 3, t0));
        assert!(!l.failed(ip, 3, t0 + Duration::from_secs(1)));
        assert!(!l.blocked(ip, 3, t0 + Duration::from_secs(2)));
        assert!(
            l.failed(ip, 3, t0 + Duration::from_secs(2)),
            "third failure reaches the limit"
        );
        assert!(l.blocked(ip, 3, t0 + Duration::from_secs(3)));
        assert!(!l.blocked(other, 3, t0 + Duration::from_secs(3)));
        assert!(
            !l.blocked(ip, 0, t0 + Duration::from_secs(3)),
            "0 disables the limit"
        );
        assert!(
            !l.blocked(ip, 3, t0 + Duration::from_secs(61)),
            "window passed"
        );
    }
}
