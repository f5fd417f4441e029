//! One TCP connection: the login phase (bounded by the login timeout), then the full
//! feature phase.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::ServerCtx;
use super::framing::{self, FramingError};
use super::full_feature;
use super::sessions::{NewSession, Registration, SessionKey};
use crate::iscsi::login::{
    Access, Login, LoginIdentity, LoginPolicy, LoginReply, LoginRequest, LoginStep, Negotiated,
};
use crate::iscsi::wire::codes::LoginStatus;
use crate::iscsi::wire::{Bhs, Opcode};
use crate::registry::Registry;
use crate::scsi::ItNexus;

/// Largest login data segment we accept (the RFC default MaxRecvDataSegmentLength).
const LOGIN_MAX_DATA: usize = 8192;
/// Read buffer size: large enough that a whole 256 KiB data segment usually arrives in
/// one read, small enough for thousands of connections.
const READ_BUF: usize = 256 * 1024;

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

/// What the login phase hands to the full feature phase.
pub(super) struct LoggedIn<'a> {
    pub rd: BufReader<OwnedReadHalf>,
    pub wr: OwnedWriteHalf,
    pub neg: Negotiated,
    pub statsn: u32,
    pub reg: Registration<'a>,
    pub kill: tokio::sync::watch::Receiver<super::sessions::Kill>,
}

/// Serves one connection to its end.
pub(super) async fn serve(stream: TcpStream, peer: SocketAddr, ctx: Arc<ServerCtx>) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let (rd, wr) = stream.into_split();
    let rd = BufReader::with_capacity(READ_BUF, rd);
    let registry = ctx.registry.load_full();
    let limit = Duration::from_secs(registry.config.daemon.login_timeout_secs.max(1) as u64);
    let logged = match tokio::time::timeout(limit, login(rd, wr, peer, local, &registry, &ctx))
        .await
    {
        Err(_) => {
            tracing::warn!(%peer, "login not finished within {}s; connection closed", limit.as_secs());
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended during login");
            return;
        }
        Ok(Ok(l)) => l,
    };
    full_feature::run(logged, peer, local, &ctx, &registry).await;
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
    out.extend_from_slice(&reply.bhs.0);
    out.extend_from_slice(&reply.data);
    out.resize(
        out.len() + crate::iscsi::wire::digest::padding(reply.data.len()),
        0,
    );
    wr.write_all(&out).await
}

async fn login<'a>(
    mut rd: BufReader<OwnedReadHalf>,
    mut wr: OwnedWriteHalf,
    peer: SocketAddr,
    local: SocketAddr,
    registry: &Registry,
    ctx: &'a ServerCtx,
) -> Result<LoggedIn<'a>, FramingError> {
    let depth = registry.config.iscsi.queue_depth;
    let mut login = Login::new(registry.offer.clone(), peer.ip());
    let gate = Gate {
        registry,
        ctx,
        local,
        limited: std::cell::Cell::new(false),
    };
    let mut statsn: Option<u32> = None;
    loop {
        let h = framing::read_header(&mut rd, false).await?;
        let dlen = h.bhs.data_segment_len();
        if h.bhs.opcode() != Opcode::LOGIN_REQUEST || dlen > LOGIN_MAX_DATA {
            tracing::warn!(%peer, opcode = ?h.bhs.opcode(), dlen, "invalid PDU during login");
            let mut r = failure(&h.bhs, LoginStatus::INVALID_DURING_LOGIN);
            fill(&mut r, statsn.unwrap_or(0), h.bhs.cmdsn(), depth);
            let _ = send(&mut wr, &r).await;
            return Err(FramingError::Closed);
        }
        let mut data = Vec::with_capacity(dlen);
        framing::read_data(&mut rd, dlen, false, &mut data).await?;
        let req = LoginRequest::from_bhs(&h.bhs);
        let sn = *statsn.get_or_insert(req.exp_statsn);
        match login.step(&req, &data, &gate) {
            LoginStep::Continue(mut r) => {
                fill(&mut r, sn, req.cmdsn, depth);
                send(&mut wr, &r).await?;
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
                    tracing::debug!(%peer, initiator, target, "login refused: too many failed authentications");
                } else {
                    tracing::warn!(
                        %peer,
                        initiator,
                        target,
                        status = format_args!("{:02x}{:02x}", status.class, status.detail),
                        "login refused: {} ({why})",
                        status.describe()
                    );
                }
                fill(&mut r, sn, req.cmdsn, depth);
                let _ = send(&mut wr, &r).await;
                return Err(FramingError::Closed);
            }
            LoginStep::Complete(mut r, neg) => {
                let target = neg.identity.target.clone().unwrap_or_default();
                let nexus = if neg.discovery {
                    None
                } else {
                    match registry.lun_map(&target, &neg.identity.initiator) {
                        Some(map) => Some(Arc::new(ItNexus::new(
                            format!("{},i,0x{}", neg.identity.initiator, hex::encode(neg.isid)),
                            format!("{},t,0x{:04x}", target, neg.tpgt),
                            map,
                        ))),
                        None => {
                            let mut r = failure(&h.bhs, LoginStatus::FORBIDDEN);
                            fill(&mut r, sn, req.cmdsn, depth);
                            let _ = send(&mut wr, &r).await;
                            return Err(FramingError::Closed);
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
                        let mut r = failure(&h.bhs, LoginStatus::SESSION_DOES_NOT_EXIST);
                        fill(&mut r, sn, req.cmdsn, depth);
                        let _ = send(&mut wr, &r).await;
                        return Err(FramingError::Closed);
                    }
                };
                r.bhs.set_u16_at(14, reg.handle.tsih);
                fill(&mut r, sn, req.cmdsn, depth);
                send(&mut wr, &r).await?;
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
                return Ok(LoggedIn {
                    rd,
                    wr,
                    neg: *neg,
                    statsn: sn.wrapping_add(1),
                    reg,
                    kill,
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
