//! Sockets and tasks: the only module that does network I/O or spawns.
//!
//! One task per TCP connection runs the login and then drives the connection's sans-IO
//! session ([`crate::iscsi::session`]): reads, writes and timers in one loop; each SCSI
//! command executes in its own task so a slow backstore never stalls the connection.
//! Connection slots are counted per phase ([`admission`]).

pub mod admission;
pub mod apply;
pub mod backstores;
mod connection;
pub mod control;
mod directory;
mod drive;
pub mod listeners;
pub mod metrics;
mod outbox;
pub mod ratelimit;
pub mod sessions;
mod tmf;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Overrides;
use crate::registry::Registry;

/// State shared by every connection.
#[derive(Debug)]
pub struct ServerCtx {
    /// The current registry snapshot (swapped whole on reload).
    pub registry: ArcSwap<Registry>,
    /// Logged-in sessions.
    pub sessions: sessions::SessionTable,
    /// Becomes true when the daemon stops.
    pub shutdown: watch::Receiver<bool>,
    /// Connection slots: login phase, discovery sessions, normal sessions.
    pub admission: Arc<admission::Admission>,
    /// The daemon-wide budget for command data buffers.
    pub buffers: Arc<crate::iscsi::session::budget::BufferPool>,
    /// When the daemon started.
    pub started: std::time::Instant,
    /// The configuration file (none for the embedded default).
    pub source: Option<std::path::PathBuf>,
    /// The daemon's command-line overrides, applied to every reload of the file.
    pub overrides: Overrides,
    /// The one lock of configuration changes (SIGHUP, reload, CLI edits): held from
    /// reading the running configuration to installing the new one.
    pub(crate) changes: std::sync::Mutex<()>,
    /// Revision of the running configuration: bumped after each change is installed
    /// (read it before the registry; see [`ServerCtx::snapshot`]).
    revision: AtomicU64,
    /// The portal listeners.
    pub listeners: listeners::Listeners,
    /// Failed authentications per source address.
    pub auth_limiter: ratelimit::AuthLimiter,
    me: Weak<ServerCtx>,
    runtime: Option<tokio::runtime::Handle>,
}

impl ServerCtx {
    /// A context serving `registry` loaded from `source`, stopped by `shutdown`.
    pub fn with_source(
        registry: Registry,
        shutdown: watch::Receiver<bool>,
        source: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        Self::with_overrides(registry, shutdown, source, Overrides::default())
    }

    /// A context serving `registry`, stopped by `shutdown`.
    pub fn new(registry: Registry, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        Self::with_overrides(registry, shutdown, None, Overrides::default())
    }

    /// A context serving `registry` loaded from `source` with `overrides`.
    pub fn with_overrides(
        registry: Registry,
        shutdown: watch::Receiver<bool>,
        source: Option<std::path::PathBuf>,
        overrides: Overrides,
    ) -> Arc<Self> {
        let d = &registry.config.daemon;
        let admission = admission::Admission::new(
            d.max_login_connections,
            d.max_discovery_sessions,
            d.max_connections,
        );
        let buffers = Arc::new(crate::iscsi::session::budget::BufferPool::new(
            d.buffer_memory.0,
        ));
        Arc::new_cyclic(|me| Self {
            registry: ArcSwap::from_pointee(registry),
            sessions: sessions::SessionTable::default(),
            shutdown,
            admission,
            buffers,
            started: std::time::Instant::now(),
            source,
            overrides,
            changes: std::sync::Mutex::new(()),
            revision: AtomicU64::new(1),
            listeners: listeners::Listeners::default(),
            auth_limiter: ratelimit::AuthLimiter::default(),
            me: me.clone(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        })
    }

    /// The revision of the running configuration and the registry built from it (an
    /// edit made against this pair is refused once anything else was installed).
    pub fn snapshot(&self) -> (u64, Arc<Registry>) {
        // Revision first: a change stores the registry, then bumps the revision, so a
        // reader never pairs a newer revision with an older registry.
        let rev = self.revision.load(Ordering::Acquire);
        (rev, self.registry.load_full())
    }

    /// The revision of the running configuration.
    pub fn revision(&self) -> u64 {
        self.revision.load(Ordering::Acquire)
    }

    /// Installs `reg` as a new revision (the caller holds [`ServerCtx::changes`]).
    pub(crate) fn install(&self, reg: Registry) -> u64 {
        self.registry.store(Arc::new(reg));
        self.revision.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Starts accepting on a bound portal.
    pub(crate) fn start_listener(
        &self,
        bound: listeners::Bound,
        managed: bool,
    ) -> std::io::Result<()> {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| std::io::Error::other("the server is stopping"))?;
        let _guard = self.runtime.as_ref().map(|h| h.enter());
        self.listeners.start(&me, bound, managed, accept_task)
    }
}

/// Binds every portal (`[::]` dual-stack unless `0.0.0.0` of its port is listed too).
pub async fn bind(portals: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for p in portals {
        let b = listeners::bind(*p, crate::config::portals::dual_stack(portals, p))?;
        out.push(b.into_tokio()?);
    }
    Ok(out)
}

/// Binds and starts the configured portals of the running configuration (at startup).
pub fn listen_configured(ctx: &Arc<ServerCtx>) -> std::io::Result<()> {
    let portals = ctx.registry.load().config.daemon.portals.clone();
    let mut bound = Vec::new();
    for p in &portals {
        bound.push(listeners::bind(
            *p,
            crate::config::portals::dual_stack(&portals, p),
        )?);
    }
    for b in bound {
        ctx.start_listener(b, true)?;
    }
    Ok(())
}

/// Accepts connections until shutdown on `listeners` (handed in, kept apart from the
/// configured portals) and on every listener the context has started, then stops them
/// and waits (bounded) for the sessions to drain.
pub async fn run(listeners: Vec<TcpListener>, ctx: Arc<ServerCtx>) {
    for l in listeners {
        let Ok(addr) = l.local_addr() else { continue };
        if let Ok(b) = listeners::Bound::from_tokio(addr, l) {
            let _ = ctx.start_listener(b, false);
        }
    }
    let mut shutdown = ctx.shutdown.clone();
    let _ = shutdown.wait_for(|s| *s).await;
    // Listeners stop; connections see the same signal and drain.
    let c = ctx.clone();
    let _ = tokio::task::spawn_blocking(move || c.listeners.stop_all()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ctx.admission.open() > 0 {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("connections still open after 10 s; exiting anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn accept_task(
    listener: Arc<TcpListener>,
    state: Arc<listeners::LoopState>,
    ctx: Arc<ServerCtx>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(accept_loop(listener, state, ctx))
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    state: Arc<listeners::LoopState>,
    ctx: Arc<ServerCtx>,
) {
    let local = listener.local_addr().ok();
    tracing::info!(portal = ?local, "listening");
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                state.accepted.fetch_add(1, Ordering::Relaxed);
                *state.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                // Never refused here: a full login pool closes its oldest connection.
                let slot = ctx.admission.login();
                let ctx = ctx.clone();
                tokio::spawn(connection::serve(stream, peer, ctx, slot));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                *state.last_error.lock().unwrap_or_else(|x| x.into_inner()) = Some(e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tmf_tests;
