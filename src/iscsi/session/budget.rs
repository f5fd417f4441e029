//! Memory budgets for command data buffers.
//!
//! Every buffer a peer can make the target hold — write data being collected, read data
//! waiting to be sent — is reserved first: from the session's own budget and from the
//! daemon-wide [`BufferPool`]. A command that cannot get its bytes waits (in arrival
//! order, so a large command is not starved by small ones); nothing fails. Unsolicited
//! data, which the initiator may send without asking, is bounded by the CmdSN window
//! instead: the window only opens as far as the session budget covers it.

use std::sync::atomic::{AtomicU64, Ordering};

/// The daemon-wide budget, shared by every session (lock-free).
#[derive(Debug)]
pub struct BufferPool {
    limit: AtomicU64,
    used: AtomicU64,
}

impl BufferPool {
    /// A pool of `limit` bytes.
    pub fn new(limit: u64) -> Self {
        BufferPool {
            limit: AtomicU64::new(limit),
            used: AtomicU64::new(0),
        }
    }

    /// Takes `n` bytes if they are free.
    pub fn try_reserve(&self, n: u64) -> bool {
        let limit = self.limit.load(Ordering::Acquire);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= limit)
            })
            .is_ok()
    }

    /// Changes the pool's size (reload); reservations beyond a smaller size stay until
    /// they are released.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
    }

    /// Gives back `n` bytes taken with [`BufferPool::try_reserve`].
    pub fn release(&self, n: u64) {
        let prev = self.used.fetch_sub(n, Ordering::AcqRel);
        debug_assert!(prev >= n, "released more than reserved");
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// The pool's size.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_and_release() {
        let p = BufferPool::new(100);
        assert!(p.try_reserve(60));
        assert!(!p.try_reserve(50));
        assert!(p.try_reserve(40));
        assert_eq!(p.used(), 100);
        p.release(60);
        assert!(p.try_reserve(50));
        assert_eq!(p.used(), 90);
    }
}
