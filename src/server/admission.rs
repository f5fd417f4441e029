//! Who gets a connection slot: connections still logging in, discovery sessions and
//! normal sessions are counted apart, so idle TCP connections or parked discovery
//! sessions (which need no credentials by default) cannot lock out real logins.
//!
//! - Login phase: at most `max_login_connections`; when full, the *oldest* connection
//!   still logging in is closed to admit the new one. A flood of idle connections only
//!   ever holds the newest slots, and a real initiator's login completes in milliseconds.
//! - Discovery sessions: at most `max_discovery_sessions`, oldest closed to admit a new one.
//! - Normal sessions: at most `max_connections`; beyond, the login is refused (out of
//!   resources) — those are authenticated, and evicting them would let one initiator
//!   throw out another.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// A bounded set of slots where a newcomer evicts the oldest holder.
#[derive(Debug)]
struct Pool {
    max: usize,
    /// Holders, oldest first: (id, eviction signal).
    held: VecDeque<(u64, Arc<Notify>)>,
}

/// The daemon's connection slots.
#[derive(Debug)]
pub struct Admission {
    login: Mutex<Pool>,
    discovery: Mutex<Pool>,
    sessions: Mutex<usize>,
    max_sessions: Mutex<usize>,
    next: AtomicU64,
    /// Connections alive (any phase).
    open: AtomicU64,
}

/// A held slot; dropping it frees the slot. [`Slot::evicted`] completes when a newcomer
/// took the slot over (the connection must close).
#[derive(Debug)]
pub struct Slot {
    admission: Arc<Admission>,
    kind: Kind,
    id: u64,
    evict: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Login,
    Discovery,
    Session,
}

/// Why a slot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the limit of {0} sessions (daemon.max_connections) is reached")]
pub struct Full(pub usize);

impl Admission {
    /// Slots as configured.
    pub fn new(max_login: u32, max_discovery: u32, max_sessions: u32) -> Arc<Self> {
        Arc::new(Admission {
            login: Mutex::new(Pool {
                max: max_login.max(1) as usize,
                held: VecDeque::new(),
            }),
            discovery: Mutex::new(Pool {
                max: max_discovery.max(1) as usize,
                held: VecDeque::new(),
            }),
            sessions: Mutex::new(0),
            max_sessions: Mutex::new(max_sessions.max(1) as usize),
            next: AtomicU64::new(1),
            open: AtomicU64::new(0),
        })
    }

    /// Applies new limits (reload); holders beyond a lowered limit stay until they end.
    pub fn set_limits(&self, max_login: u32, max_discovery: u32, max_sessions: u32) {
        lock(&self.login).max = max_login.max(1) as usize;
        lock(&self.discovery).max = max_discovery.max(1) as usize;
        *lock(&self.max_sessions) = max_sessions.max(1) as usize;
    }

    /// Connections alive now (login phase, discovery and normal sessions).
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Acquire)
    }

    fn pool(&self, kind: Kind) -> &Mutex<Pool> {
        match kind {
            Kind::Login => &self.login,
            _ => &self.discovery,
        }
    }

    /// Puts holder `id` into the pool of `kind`, evicting the oldest holder if full.
    fn enter(&self, kind: Kind, id: u64, evict: &Arc<Notify>) {
        let evicted = {
            let mut p = lock(self.pool(kind));
            let out = if p.held.len() >= p.max {
                p.held.pop_front()
            } else {
                None
            };
            p.held.push_back((id, evict.clone()));
            out
        };
        if let Some((_, n)) = evicted {
            n.notify_one();
        }
    }

    /// A slot for a new TCP connection (login phase); may evict the oldest one.
    pub fn login(self: &Arc<Self>) -> Slot {
        self.open.fetch_add(1, Ordering::AcqRel);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = Arc::new(Notify::new());
        self.enter(Kind::Login, id, &evict);
        Slot {
            admission: self.clone(),
            kind: Kind::Login,
            id,
            evict,
        }
    }
}

impl Slot {
    /// Completes when a newcomer evicted this connection.
    pub async fn evicted(&self) {
        self.evict.notified().await
    }

    fn release(&mut self) {
        match self.kind {
            Kind::Session => *lock(&self.admission.sessions) -= 1,
            k => lock(self.admission.pool(k))
                .held
                .retain(|(id, _)| *id != self.id),
        }
    }

    /// The login succeeded into a discovery session: move to the discovery pool (may
    /// evict the oldest discovery session).
    pub fn into_discovery(mut self) -> Slot {
        self.release();
        self.kind = Kind::Discovery;
        self.evict = Arc::new(Notify::new());
        self.admission.enter(Kind::Discovery, self.id, &self.evict);
        self
    }

    /// The login succeeded into a normal session: take a session slot, or refuse.
    pub fn into_session(mut self) -> Result<Slot, (Slot, Full)> {
        let max = *lock(&self.admission.max_sessions);
        let full = {
            let mut n = lock(&self.admission.sessions);
            let full = *n >= max;
            if !full {
                *n += 1;
            }
            full
        };
        if full {
            return Err((self, Full(max)));
        }
        self.release();
        self.kind = Kind::Session;
        Ok(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_oldest_login_is_evicted_when_full() {
        let a = Admission::new(2, 2, 1);
        let first = a.login();
        let _second = a.login();
        assert_eq!(a.open(), 2);
        let _third = a.login();
        tokio::time::timeout(Duration::from_secs(1), first.evicted())
            .await
            .expect("the oldest login is told to go");
        drop(first);
        assert_eq!(a.open(), 2);
    }

    #[tokio::test]
    async fn sessions_are_counted_apart_and_refused_beyond_the_limit() {
        let a = Admission::new(4, 1, 1);
        let s1 = a.login().into_session().unwrap();
        let (refused, Full(1)) = a.login().into_session().unwrap_err() else {
            panic!()
        };
        drop(refused);
        // A discovery session evicts the older discovery session, never a normal one.
        let d1 = a.login().into_discovery();
        let _d2 = a.login().into_discovery();
        tokio::time::timeout(Duration::from_secs(1), d1.evicted())
            .await
            .unwrap();
        drop(d1);
        assert_eq!(a.open(), 2);
        drop(s1);
        assert!(a.login().into_session().is_ok());
    }
}
