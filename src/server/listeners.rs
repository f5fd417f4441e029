//! The portal listeners: bound, started, stopped and reported while the daemon runs.
//!
//! Each configured portal has one entry: the socket as the kernel holds it (its bound
//! address, whether it is in the listening state), whether `[::]` also takes IPv4, and
//! whether its accept loop runs. `status` reads these, never the configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

use crate::control::api::PortalStatus;

/// Backlog of each listening socket.
const BACKLOG: i32 = 1024;

/// A socket bound and listening, not yet accepting (see [`Listeners::start`]).
#[derive(Debug)]
pub struct Bound {
    /// The configured portal.
    pub portal: SocketAddr,
    /// `[::]` taking IPv4 too.
    pub dual_stack: bool,
    socket: std::net::TcpListener,
}

/// Binds `portal` and starts listening (`dual_stack`: a `[::]` socket that also takes
/// IPv4, i.e. without `IPV6_V6ONLY`).
pub fn bind(portal: SocketAddr, dual_stack: bool) -> std::io::Result<Bound> {
    let err = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on {portal}: {e}"))
    };
    let sock = Socket::new(
        Domain::for_address(portal),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .map_err(err)?;
    sock.set_reuse_address(true).map_err(err)?;
    if portal.is_ipv6() {
        sock.set_only_v6(!dual_stack).map_err(err)?;
    }
    sock.bind(&portal.into()).map_err(err)?;
    sock.listen(BACKLOG).map_err(err)?;
    sock.set_nonblocking(true).map_err(err)?;
    Ok(Bound {
        portal,
        dual_stack,
        socket: sock.into(),
    })
}

impl Bound {
    /// The socket as a tokio listener (needs a tokio runtime).
    pub fn into_tokio(self) -> std::io::Result<TcpListener> {
        TcpListener::from_std(self.socket)
    }

    /// Wraps a listener bound elsewhere.
    pub fn from_tokio(portal: SocketAddr, l: TcpListener) -> std::io::Result<Self> {
        Ok(Self {
            portal,
            dual_stack: false,
            socket: l.into_std()?,
        })
    }
}

/// What an accept loop reports about itself.
#[derive(Debug, Default)]
pub struct LoopState {
    /// The accept loop runs.
    pub running: AtomicBool,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// The last accept error, if the latest accept failed.
    pub last_error: Mutex<Option<String>>,
}

#[derive(Debug)]
struct Entry {
    listener: Arc<TcpListener>,
    dual_stack: bool,
    /// Bound from the configuration (a listener handed in by a caller is not, and a
    /// configuration change leaves it alone).
    managed: bool,
    state: Arc<LoopState>,
    task: tokio::task::AbortHandle,
}

/// Every listener of the daemon, by configured portal.
#[derive(Debug, Default)]
pub struct Listeners {
    inner: Mutex<BTreeMap<SocketAddr, Entry>>,
}

/// The accept loop a started listener runs (the server's).
pub type AcceptLoop = fn(
    Arc<TcpListener>,
    Arc<LoopState>,
    Arc<super::ServerCtx>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<SocketAddr, Entry>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts accepting on `bound` (needs a tokio runtime).
    pub(super) fn start(
        &self,
        ctx: &Arc<super::ServerCtx>,
        bound: Bound,
        managed: bool,
        run: AcceptLoop,
    ) -> std::io::Result<()> {
        let listener = Arc::new(TcpListener::from_std(bound.socket)?);
        let state = Arc::new(LoopState::default());
        state.running.store(true, Ordering::Release);
        let task = tokio::spawn(run(listener.clone(), state.clone(), ctx.clone())).abort_handle();
        let old = self.lock().insert(
            bound.portal,
            Entry {
                listener,
                dual_stack: bound.dual_stack,
                managed,
                state,
                task,
            },
        );
        if let Some(old) = old {
            old.task.abort();
        }
        Ok(())
    }

    /// Stops the listener of `portal` and waits (bounded) until its socket is closed, so
    /// that nothing connects to it once this returns. Returns whether there was one.
    pub fn stop(&self, portal: &SocketAddr) -> bool {
        let Some(e) = self.lock().remove(portal) else {
            return false;
        };
        e.task.abort();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = e.listener;
        // The aborted task drops its handle on the listener when the runtime drops it.
        while Arc::strong_count(&listener) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        // If the task is still holding it, stop the socket accepting anyway.
        if Arc::strong_count(&listener) > 1 {
            // SAFETY: shutdown on a valid socket fd owned by `listener`.
            unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) };
        }
        true
    }

    /// Stops every listener.
    pub fn stop_all(&self) {
        let portals: Vec<SocketAddr> = self.lock().keys().copied().collect();
        for p in portals {
            self.stop(&p);
        }
    }

    /// The configured portals with a listener, and whether it is dual-stack.
    pub fn managed(&self) -> BTreeMap<SocketAddr, bool> {
        self.lock()
            .iter()
            .filter(|(_, e)| e.managed)
            .map(|(p, e)| (*p, e.dual_stack))
            .collect()
    }

    /// Every listener as the kernel and the accept loop see it.
    pub fn status(&self) -> Vec<PortalStatus> {
        self.lock()
            .iter()
            .map(|(portal, e)| {
                let bound = e.listener.local_addr().ok();
                let listening = so_acceptconn(&*e.listener);
                let running = e.state.running.load(Ordering::Acquire) && !e.task.is_finished();
                let error = e
                    .state
                    .last_error
                    .lock()
                    .unwrap_or_else(|x| x.into_inner())
                    .clone();
                PortalStatus {
                    portal: *portal,
                    bound,
                    dual_stack: e.dual_stack,
                    accepting: listening && running && error.is_none(),
                    accepted: e.state.accepted.load(Ordering::Relaxed),
                    error,
                }
            })
            .collect()
    }
}

/// Whether the socket is in the listening state (`SO_ACCEPTCONN`).
fn so_acceptconn(l: &impl AsRawFd) -> bool {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt on a valid fd with a correctly sized int buffer.
    let rc = unsafe {
        libc::getsockopt(
            l.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    rc == 0 && v != 0
}
