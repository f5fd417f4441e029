//! One TCP connection: socket options, the login phase (bounded by the login timeout,
//! interrupted by shutdown or eviction), registration, then the full feature phase.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

use super::ServerCtx;
use super::admission::Slot;
use super::drive::{self, LoggedIn};
use super::sessions::{NewSession, SessionKey};
use crate::iobuf::IoBuf;
use crate::iscsi::login::{
    Access, Login, LoginIdentity, LoginPolicy, LoginReply, LoginRequest, LoginStep, Negotiated,
};
use crate::iscsi::session::Start;
use crate::iscsi::wire::codes::LoginStatus;
use crate::iscsi::wire::framer::{DataSink, Frame, Framer};
use crate::iscsi::wire::{Bhs, Opcode};
use crate::registry::Registry;
use crate::scsi::ItNexus;

/// Largest login data segment we accept (the RFC default MaxRecvDataSegmentLength).
const LOGIN_MAX_DATA: usize = 8192;

/// The registry's policy behind the per-address limit on failed authentications.
struct Gate<'a> {
    registry: &'a Registry,
    ctx: &'a ServerCtx,
    /// The portal address the connection came in on (which portal group answers).
    local: std::net::SocketAddr,
    limited: std::cell::Cell<bool>,
}

impl LoginPolicy for Gate<'_> {
    fn authorize(&self, who: &LoginIdentity) -> Result<Access, LoginStatus> {
        let limit = self.registry.config.daemon.auth_failures_per_minute;
        if self
            .ctx
            .auth_limiter
            .blocked(who.peer, limit, std::time::Instant::now())
        {
            self.limited.set(true);
            return Err(LoginStatus::AUTH_FAILED);
        }
        self.registry.authorize_at(who, Some(self.local))
    }

    fn auth_failed(&self, who: &LoginIdentity, _why: &str) {
        let limit = self.registry.config.daemon.auth_failures_per_minute;
        if self
            .ctx
            .auth_limiter
            .failed(who.peer, limit, std::time::Instant::now())
        {
            tracing::warn!(
                peer = %who.peer,
                initiator = %who.initiator,
                "{limit} failed authentications from this address within a minute: its logins are refused for a minute"
            );
        }
    }
}

/// TCP keepalive (finds an initiator that vanished without a RST) and the TCP user
/// timeout (unacknowledged data), from the configuration.
fn socket_options(stream: &TcpStream, reg: &Registry) {
    let d = &reg.config.daemon;
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    if d.tcp_keepalive_secs > 0 {
        let ka = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(u64::from(d.tcp_keepalive_secs)))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        let _ = sock.set_tcp_keepalive(&ka);
    }
    let _ = sock.set_tcp_user_timeout(Some(Duration::from_secs(u64::from(
        d.send_timeout_secs.max(1),
    ))));
}

/// Serves one connection to its end.
pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<ServerCtx>, slot: Slot) {
    let registry = ctx.registry.load_full();
    socket_options(&stream, &registry);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let (rd, wr) = stream.into_split();
    let limit = Duration::from_secs(registry.config.daemon.login_timeout_secs.max(1) as u64);
    let mut shutdown = ctx.shutdown.clone();
    let phase = Phase {
        rd,
        wr,
        framer: Framer::new(false, false),
        peer,
        local,
    };
    let outcome = tokio::select! {
        r = tokio::time::timeout(limit, login(phase, &registry, &ctx)) => match r {
            Err(_) => {
                tracing::warn!(%peer, "login not finished within {}s; connection closed", limit.as_secs());
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(%peer, "connection ended during login: {e}");
                return;
            }
            Ok(Ok(x)) => x,
        },
        _ = slot.evicted() => {
            tracing::debug!(%peer, "connection still logging in closed to admit a newer one (daemon.max_login_connections)");
            return;
        }
        _ = shutdown.wait_for(|s| *s) => return,
    };
    drop(registry);
    let Done {
        mut phase,
        neg,
        mut reply,
        statsn,
        req,
    } = outcome;
    let depth = ctx.registry.load().config.iscsi.queue_depth;
    // The slot of its kind: discovery sessions and normal sessions are counted apart.
    let slot = if neg.discovery {
        slot.into_discovery()
    } else {
        match slot.into_session() {
            Ok(s) => s,
            Err((_, full)) => {
                tracing::warn!(%peer, initiator = %neg.identity.initiator, "login refused: {full}");
                let mut r = failure(&req, LoginStatus::OUT_OF_RESOURCES);
                fill(&mut r, statsn, req.cmdsn(), depth);
                let _ = send(&mut phase.wr, &r).await;
                return;
            }
        }
    };
    let target = neg.identity.target.clone().unwrap_or_default();
    let nexus = if neg.discovery {
        None
    } else {
        let registry = ctx.registry.load();
        match registry.lun_map(&target, &neg.identity.initiator) {
            Some(map) => Some(Arc::new(ItNexus::new(
                format!("{},i,0x{}", neg.identity.initiator, hex::encode(neg.isid)),
                crate::scsi::target_port_name(&target, neg.tpgt),
                map,
            ))),
            None => {
                let mut r = failure(&req, LoginStatus::FORBIDDEN);
                fill(&mut r, statsn, req.cmdsn(), depth);
                let _ = send(&mut phase.wr, &r).await;
                return;
            }
        }
    };
    let registered = ctx
        .sessions
        .register(NewSession {
            key: SessionKey {
                initiator: neg.identity.initiator.clone(),
                isid: neg.isid,
                target,
            },
            tsih: neg.tsih,
            peer,
            local,
            discovery: neg.discovery,
            params: neg.params.clone(),
            nexus,
            auth: neg.authenticated.map(|a| a.name()),
            cid: neg.cid,
        })
        .await;
    let (reg, kill) = match registered {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%peer, initiator = %neg.identity.initiator, "login refused: {e}");
            let status = match e {
                super::sessions::RegisterError::Busy => LoginStatus::SERVICE_UNAVAILABLE,
                _ => LoginStatus::SESSION_DOES_NOT_EXIST,
            };
            let mut r = failure(&req, status);
            fill(&mut r, statsn, req.cmdsn(), depth);
            let _ = send(&mut phase.wr, &r).await;
            return;
        }
    };
    reply.bhs.set_u16_at(14, reg.handle.tsih);
    fill(&mut reply, statsn, req.cmdsn(), depth);
    if send(&mut phase.wr, &reply).await.is_err() {
        return;
    }
    tracing::info!(
        %peer,
        initiator = %neg.identity.initiator,
        target = neg.identity.target.as_deref().unwrap_or("(discovery)"),
        tsih = reg.handle.tsih,
        header_digest = neg.params.header_digest,
        data_digest = neg.params.data_digest,
        chap = neg.authenticated.map_or("none", |a| a.name()),
        "login complete"
    );
    phase
        .framer
        .set_digests(neg.params.header_digest, neg.params.data_digest);
    let logged = LoggedIn {
        rd: phase.rd,
        wr: phase.wr,
        framer: phase.framer,
        start: Start {
            params: neg.params.clone(),
            discovery: neg.discovery,
            cid: neg.cid,
            exp_cmdsn: neg.cmdsn,
            statsn: statsn.wrapping_add(1),
        },
        reg,
        kill,
        slot,
    };
    drive::run(logged, peer, local, &ctx).await;
}

/// The connection during login.
struct Phase {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    framer: Framer,
    peer: SocketAddr,
    /// The portal address it came in on (which portal group answers).
    local: SocketAddr,
}

/// A login that succeeded: the final response is sent once the session is registered.
struct Done {
    phase: Phase,
    neg: Negotiated,
    reply: LoginReply,
    statsn: u32,
    /// The final Login Request.
    req: Bhs,
}

fn fill(reply: &mut LoginReply, statsn: u32, cmdsn: u32, depth: u32) {
    reply
        .bhs
        .set_statsn(statsn)
        .set_exp_cmdsn(cmdsn)
        .set_max_cmdsn(cmdsn.wrapping_add(depth.max(1)).wrapping_sub(1));
}

async fn send(wr: &mut OwnedWriteHalf, reply: &LoginReply) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(48 + reply.data.len() + 3);
    let mut bhs = reply.bhs;
    bhs.set_data_segment_len(reply.data.len());
    out.extend_from_slice(&bhs.0);
    out.extend_from_slice(&reply.data);
    out.resize(
        out.len() + crate::iscsi::wire::digest::padding(reply.data.len()),
        0,
    );
    wr.write_all(&out).await
}

/// Why no Login Request could be read.
enum ReadError {
    /// Something other than a Login Request (or one too long): answered, then closed.
    Invalid(Bhs, String),
    /// The stream ended or broke.
    Io(String),
}

/// Reads the next Login Request (header and data). Once a PDU has begun it must be whole
/// within `pdu_limit` (`daemon.pdu_timeout_secs`), as in the full feature phase: a peer
/// trickling bytes does not keep its login slot until the login timeout.
async fn next_request(p: &mut Phase, pdu_limit: Duration) -> Result<(Bhs, Vec<u8>), ReadError> {
    let mut header: Option<Bhs> = None;
    let mut deadline = p.framer.in_pdu().then(|| Instant::now() + pdu_limit);
    loop {
        loop {
            match p.framer.poll().map_err(|e| ReadError::Io(e.to_string()))? {
                Some(Frame::Header(h)) => {
                    let dlen = h.bhs.data_segment_len();
                    if h.bhs.opcode() != Opcode::LOGIN_REQUEST || dlen > LOGIN_MAX_DATA {
                        let why = format!(
                            "invalid PDU during login ({:?}, {dlen} data bytes)",
                            h.bhs.opcode()
                        );
                        return Err(ReadError::Invalid(h.bhs, why));
                    }
                    header = Some(h.bhs);
                    p.framer
                        .set_sink(DataSink::Into {
                            buf: IoBuf::filled(dlen),
                            at: 0,
                        })
                        .map_err(|e| ReadError::Io(e.to_string()))?;
                }
                Some(Frame::Data { buf, .. }) => {
                    let h = header.take().expect("header first");
                    return Ok((h, buf.map(|b| b.to_vec()).unwrap_or_default()));
                }
                None => break,
            }
        }
        let read = p.rd.read(p.framer.read_buf());
        let n = match deadline {
            Some(at) => match tokio::time::timeout_at(at, read).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(ReadError::Io(format!(
                        "login PDU not complete within {}s (daemon.pdu_timeout_secs)",
                        pdu_limit.as_secs()
                    )));
                }
            },
            None => read.await,
        }
        .map_err(|e| ReadError::Io(e.to_string()))?;
        if n == 0 {
            return Err(ReadError::Io("closed".into()));
        }
        p.framer.filled(n);
        deadline.get_or_insert_with(|| Instant::now() + pdu_limit);
    }
}

async fn login(mut p: Phase, registry: &Registry, ctx: &ServerCtx) -> Result<Done, String> {
    let depth = registry.config.iscsi.queue_depth;
    let pdu_limit = Duration::from_secs(u64::from(registry.config.daemon.pdu_timeout_secs.max(1)));
    let mut login = Login::new(registry.offer.clone(), p.peer.ip());
    let gate = Gate {
        registry,
        ctx,
        local: p.local,
        limited: std::cell::Cell::new(false),
    };
    let mut statsn: Option<u32> = None;
    loop {
        let (bhs, data) = match next_request(&mut p, pdu_limit).await {
            Ok(x) => x,
            Err(ReadError::Io(e)) => return Err(e),
            Err(ReadError::Invalid(bad, why)) => {
                tracing::warn!(peer = %p.peer, "{why}");
                let mut r = failure(&bad, LoginStatus::INVALID_DURING_LOGIN);
                fill(&mut r, statsn.unwrap_or(0), bad.cmdsn(), depth);
                let _ = send(&mut p.wr, &r).await;
                return Err(why);
            }
        };
        let req = LoginRequest::from_bhs(&bhs);
        let sn = *statsn.get_or_insert(req.exp_statsn);
        match login.step(&req, &data, &gate) {
            LoginStep::Continue(mut r) => {
                fill(&mut r, sn, req.cmdsn, depth);
                send(&mut p.wr, &r).await.map_err(|e| e.to_string())?;
                statsn = Some(sn.wrapping_add(1));
            }
            LoginStep::Fail(mut r, why) => {
                let who = login.identity();
                let status = LoginStatus::new(r.bhs.0[36], r.bhs.0[37]);
                let initiator = who.map(|w| w.initiator.as_str()).unwrap_or("?");
                let target = who
                    .and_then(|w| w.target.as_deref())
                    .unwrap_or("(discovery)");
                if gate.limited.get() {
                    tracing::debug!(peer = %p.peer, initiator, target, "login refused: too many failed authentications");
                } else {
                    tracing::warn!(
                        peer = %p.peer,
                        initiator,
                        target,
                        status = format_args!("{:02x}{:02x}", status.class, status.detail),
                        "login refused: {} ({why})",
                        status.describe()
                    );
                }
                fill(&mut r, sn, req.cmdsn, depth);
                let _ = send(&mut p.wr, &r).await;
                return Err(format!("login refused: {why}"));
            }
            LoginStep::Complete(r, neg) => {
                return Ok(Done {
                    phase: p,
                    neg: *neg,
                    reply: r,
                    statsn: sn,
                    req: bhs,
                });
            }
        }
    }
}

fn failure(req: &Bhs, status: LoginStatus) -> LoginReply {
    let mut b = Bhs::new(Opcode::LOGIN_RESPONSE);
    b.0[8..14].copy_from_slice(&req.0[8..14]);
    b.set_itt(req.itt());
    b.0[36] = status.class;
    b.0[37] = status.detail;
    LoginReply {
        bhs: b,
        data: Vec::new(),
    }
}
