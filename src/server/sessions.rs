//! The table of logged-in sessions: TSIH allocation, reinstatement by ISID, and what the
//! management side lists and acts on.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::iscsi::login::Params;
use crate::scsi::ItNexus;

/// What identifies a session for reinstatement (RFC 7143 §6.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// InitiatorName.
    pub initiator: String,
    /// ISID.
    pub isid: [u8; 6],
    /// TargetName (empty for discovery).
    pub target: String,
}

/// Why a session is told to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// Not told to end.
    No,
    /// A new login with the same ISID replaces it: close at once.
    Reinstated,
    /// Its access was removed: ask the initiator to log out, then close.
    AccessRemoved,
    /// A TARGET COLD RESET from another session of the target: close at once.
    Reset,
}

/// Per-session counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// SCSI commands executed.
    pub commands: AtomicU64,
    /// Bytes sent as Data-In.
    pub read_bytes: AtomicU64,
    /// Bytes received as Data-Out / immediate data.
    pub write_bytes: AtomicU64,
    /// Commands that ended in CHECK CONDITION or another non-GOOD status.
    pub errors: AtomicU64,
}

/// A logged-in session as others see it.
#[derive(Debug)]
pub struct SessionHandle {
    /// TSIH.
    pub tsih: u16,
    /// Identity.
    pub key: SessionKey,
    /// Initiator address.
    pub peer: SocketAddr,
    /// Portal address the connection came in on.
    pub local: SocketAddr,
    /// Discovery session.
    pub discovery: bool,
    /// Negotiated parameters.
    pub params: Params,
    /// Counters.
    pub counters: Counters,
    /// When the login completed.
    pub since: Instant,
    /// The session's I_T nexus (normal sessions).
    pub nexus: Option<Arc<ItNexus>>,
    /// The CHAP algorithm the initiator authenticated with (`None`: no authentication).
    pub auth: Option<&'static str>,
    /// Connection ID of its connection.
    pub cid: u16,
    /// Tells the session to end (reinstatement, access removed).
    pub kill: watch::Sender<Kill>,
}

/// All sessions.
#[derive(Debug, Default)]
pub struct SessionTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_tsih: u16,
    by_tsih: HashMap<u16, Arc<SessionHandle>>,
}

/// Removes the session from the table when the connection ends.
#[derive(Debug)]
pub struct Registration<'a> {
    table: &'a SessionTable,
    /// The session.
    pub handle: Arc<SessionHandle>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut g = self.table.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.by_tsih
            .get(&self.handle.tsih)
            .is_some_and(|h| Arc::ptr_eq(h, &self.handle))
        {
            g.by_tsih.remove(&self.handle.tsih);
        }
    }
}

/// What the caller supplies to register a session.
#[derive(Debug)]
pub struct NewSession {
    /// Identity.
    pub key: SessionKey,
    /// TSIH the initiator sent (0 = new session).
    pub tsih: u16,
    /// Initiator address.
    pub peer: SocketAddr,
    /// Portal address.
    pub local: SocketAddr,
    /// Discovery session.
    pub discovery: bool,
    /// Negotiated parameters.
    pub params: Params,
    /// Nexus of a normal session.
    pub nexus: Option<Arc<ItNexus>>,
    /// The CHAP algorithm used at login (`None`: no authentication).
    pub auth: Option<&'static str>,
    /// Connection ID.
    pub cid: u16,
}

/// Why a session could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A non-zero TSIH that names no session of this initiator.
    #[error("session does not exist")]
    NoSuchSession,
    /// The session being reinstated still has I/O in progress after the wait.
    #[error("the session being replaced still has I/O in progress")]
    Busy,
}

/// How long a reinstating login waits for the old session's I/O to end.
pub const REINSTATE_WAIT: Duration = Duration::from_secs(30);

impl SessionTable {
    /// Registers a session after a successful login. An existing session with the same
    /// initiator, ISID and target is told to end first (session reinstatement), and the
    /// new one is registered only once the old one is gone — its teardown waits for its
    /// I/O, so no command of the old session runs beside the new one; after
    /// [`REINSTATE_WAIT`] the login is refused instead. A non-zero TSIH keeps its number
    /// (connection reinstatement at ERL 0).
    pub async fn register(
        &self,
        s: NewSession,
    ) -> Result<(Registration<'_>, watch::Receiver<Kill>), RegisterError> {
        let old: Vec<Arc<SessionHandle>> = {
            let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if s.tsih != 0 && !g.by_tsih.get(&s.tsih).is_some_and(|h| h.key == s.key) {
                return Err(RegisterError::NoSuchSession);
            }
            g.by_tsih
                .values()
                .filter(|h| h.key == s.key)
                .cloned()
                .collect()
        };
        for h in &old {
            tracing::info!(initiator = %h.key.initiator, tsih = h.tsih, "reinstating session");
            let _ = h.kill.send(Kill::Reinstated);
        }
        // Wait for the old sessions to end and drop out of the table.
        let deadline = Instant::now() + REINSTATE_WAIT;
        loop {
            let gone = {
                let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                old.iter()
                    .all(|h| !g.by_tsih.values().any(|x| Arc::ptr_eq(x, h)))
            };
            if gone {
                break;
            }
            if Instant::now() >= deadline {
                return Err(RegisterError::Busy);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (kill, kill_rx) = watch::channel(Kill::No);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let tsih = if s.tsih != 0 {
            s.tsih
        } else {
            loop {
                g.next_tsih = g.next_tsih.wrapping_add(1);
                if g.next_tsih != 0 && !g.by_tsih.contains_key(&g.next_tsih) {
                    break g.next_tsih;
                }
            }
        };
        let handle = Arc::new(SessionHandle {
            tsih,
            key: s.key,
            peer: s.peer,
            local: s.local,
            discovery: s.discovery,
            params: s.params,
            counters: Counters::default(),
            since: Instant::now(),
            nexus: s.nexus,
            auth: s.auth,
            cid: s.cid,
            kill,
        });
        g.by_tsih.insert(tsih, handle.clone());
        Ok((
            Registration {
                table: self,
                handle,
            },
            kill_rx,
        ))
    }

    /// The session `tsih`.
    pub fn get(&self, tsih: u16) -> Option<Arc<SessionHandle>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.by_tsih.get(&tsih).cloned()
    }

    /// Every session, by TSIH.
    pub fn list(&self) -> Vec<Arc<SessionHandle>> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = g.by_tsih.values().cloned().collect();
        v.sort_by_key(|h| h.tsih);
        v
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_tsih
            .len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SessionHandle {
    /// Adds to a counter.
    pub fn count(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::login::{Offer, Params};

    fn new(isid: u8, tsih: u16) -> NewSession {
        NewSession {
            key: SessionKey {
                initiator: "iqn.x:i".into(),
                isid: [isid, 0, 0, 0, 0, 1],
                target: "iqn.x:t".into(),
            },
            tsih,
            peer: "127.0.0.1:5000".parse().unwrap(),
            local: "127.0.0.1:3260".parse().unwrap(),
            discovery: false,
            params: Params::defaults(&Offer::default()),
            nexus: None,
            auth: None,
            cid: 0,
        }
    }

    #[tokio::test]
    async fn reinstatement_kills_the_old_session() {
        let t = SessionTable::default();
        let (r1, mut k1) = t.register(new(1, 0)).await.unwrap();
        let tsih1 = r1.handle.tsih;
        assert_ne!(tsih1, 0);
        let (r2, _k2) = t.register(new(2, 0)).await.unwrap();
        assert_ne!(r2.handle.tsih, tsih1);
        assert_eq!(t.len(), 2);
        let fut = t.register(new(1, 0));
        let waiter = async {
            k1.changed().await.unwrap();
            assert_eq!(*k1.borrow(), Kill::Reinstated);
            drop(r1);
        };
        let (res, ()) = tokio::join!(fut, waiter);
        let (r3, _) = res.unwrap();
        assert_eq!(t.len(), 2);
        assert_ne!(r3.handle.tsih, 0);
        assert_eq!(
            t.register(new(9, 999)).await.unwrap_err(),
            RegisterError::NoSuchSession
        );
    }
}
