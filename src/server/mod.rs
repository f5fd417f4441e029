//! Sockets and tasks: the only module that does network I/O or spawns.
//!
//! One task per TCP connection runs the login and then reads PDUs; a writer task per
//! connection sends; each SCSI command executes in its own task so a slow backstore
//! never stalls the reader.

pub mod apply;
pub mod backstores;
mod connection;
pub mod control;
pub mod framing;
mod full_feature;
pub mod metrics;
pub mod ratelimit;
pub mod sessions;
mod text;
pub mod writer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

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
    /// Bounds concurrent connections.
    pub connections: Arc<Semaphore>,
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
        let max = registry.config.daemon.max_connections.max(1) as usize;
        Arc::new(Self {
            registry: ArcSwap::from_pointee(registry),
            sessions: sessions::SessionTable::default(),
            shutdown,
            connections: Arc::new(Semaphore::new(max)),
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
    while ctx.connections.available_permits()
        < ctx.registry.load().config.daemon.max_connections.max(1) as usize
    {
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
    // Refusals at the connection limit are logged once per burst, not once per connection.
    let mut refused = 0u64;
    let mut last_warning: Option<tokio::time::Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                    refused += 1;
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            %peer,
                            refused,
                            "connection limit (daemon.max_connections) reached; refusing connections"
                        );
                        last_warning = Some(tokio::time::Instant::now());
                        refused = 0;
                    }
                    drop(stream);
                    continue;
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    connection::serve(stream, peer, ctx).await;
                    drop(permit);
                });
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
