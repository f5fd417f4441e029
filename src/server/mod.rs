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
pub mod metrics;
mod outbox;
pub mod ratelimit;
pub mod sessions;
mod tmf;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    /// Serializes configuration changes (SIGHUP, control socket).
    pub apply_lock: std::sync::Mutex<()>,
    /// Failed authentications per source address.
    pub auth_limiter: ratelimit::AuthLimiter,
}

impl ServerCtx {
    /// A context serving `registry` loaded from `source`, stopped by `shutdown`.
    pub fn with_source(
        registry: Registry,
        shutdown: watch::Receiver<bool>,
        source: Option<std::path::PathBuf>,
    ) -> Arc<Self> {
        let mut ctx = Self::new(registry, shutdown);
        Arc::get_mut(&mut ctx).expect("fresh").source = source;
        ctx
    }

    /// A context serving `registry`, stopped by `shutdown`.
    pub fn new(registry: Registry, shutdown: watch::Receiver<bool>) -> Arc<Self> {
        let d = &registry.config.daemon;
        let admission = admission::Admission::new(
            d.max_login_connections,
            d.max_discovery_sessions,
            d.max_connections,
        );
        let buffers = Arc::new(crate::iscsi::session::budget::BufferPool::new(
            d.buffer_memory.0,
        ));
        Arc::new(Self {
            registry: ArcSwap::from_pointee(registry),
            sessions: sessions::SessionTable::default(),
            shutdown,
            admission,
            buffers,
            started: std::time::Instant::now(),
            source: None,
            apply_lock: std::sync::Mutex::new(()),
            auth_limiter: ratelimit::AuthLimiter::default(),
        })
    }
}

/// Binds every portal of the current configuration.
pub async fn bind(portals: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for p in portals {
        let sock = match p {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        if p.is_ipv6() {
            // `[::]` should not also claim the IPv4 port, so `0.0.0.0` can be listed too.
            let s2 = socket2_only_v6(&sock);
            s2?;
        }
        sock.bind(*p)
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {p}: {e}")))?;
        out.push(sock.listen(1024)?);
    }
    Ok(out)
}

fn socket2_only_v6(sock: &tokio::net::TcpSocket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a valid socket fd with a c_int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Accepts connections on every listener until shutdown, then waits (bounded) for the
/// sessions to drain.
pub async fn run(listeners: Vec<TcpListener>, ctx: Arc<ServerCtx>) {
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let ctx = ctx.clone();
        tasks.spawn(accept_loop(l, ctx));
    }
    let mut shutdown = ctx.shutdown.clone();
    let _ = shutdown.wait_for(|s| *s).await;
    // Listeners stop; connections see the same signal and drain.
    tasks.abort_all();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ctx.admission.open() > 0 {
        if tokio::time::Instant::now() > deadline {
            tracing::warn!("connections still open after 10 s; exiting anyway");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn accept_loop(listener: TcpListener, ctx: Arc<ServerCtx>) {
    let local = listener.local_addr().ok();
    tracing::info!(portal = ?local, "listening");
    let mut backoff = Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                // Never refused here: a full login pool closes its oldest connection.
                let slot = ctx.admission.login();
                let ctx = ctx.clone();
                tokio::spawn(connection::serve(stream, peer, ctx, slot));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
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
