//! The driver of one connection's full feature phase: a thin loop around the sans-IO
//! [`Session`] — socket bytes into the [`Framer`], frames into the session, commands and
//! aborts out to the SCSI core, numbered PDUs out to the socket, time and kills in.
//!
//! One task per connection does all of it (reads, writes, timers); each command runs in
//! its own task so a slow backstore never stalls the connection. Backpressure: the loop
//! reads only while the session wants input (its queued output is within bound) and the
//! outbox takes PDUs from the session only as fast as the socket accepts them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};

use super::ServerCtx;
use super::admission::Slot;
use super::directory::SessionDirectory;
use super::outbox::Outbox;
use super::sessions::{Kill, Registration, SessionHandle};
use super::tmf::{self, Asker};
use crate::iscsi::session::{
    self, Action, CloseReason, Completion, Exec, Limits, Session, Start, TaskId, TmfId,
};
use crate::iscsi::wire::Opcode;
use crate::iscsi::wire::framer::{Frame, Framer};
use crate::registry::Registry;
use crate::scsi::{self, ItNexus, LogicalUnit, ScsiCommand, TaskMeta};

/// Output taken from the session per write at most (bytes).
const OUTBOX_BATCH: usize = 1 << 20;
/// Queued output above which the session stops the reader.
const MAX_OUTBOUND: usize = 4 << 20;

/// What the login phase hands over.
pub(super) struct LoggedIn<'a> {
    pub rd: OwnedReadHalf,
    pub wr: OwnedWriteHalf,
    pub framer: Framer,
    pub start: Start,
    pub reg: Registration<'a>,
    pub kill: watch::Receiver<Kill>,
    pub slot: Slot,
}

enum Event {
    Done(TaskId, Completion),
    TmfDone(TmfId, u8),
}

/// The session limits from the configuration.
pub(super) fn limits(reg: &Registry) -> Limits {
    let d = &reg.config.daemon;
    Limits {
        queue_depth: reg.config.iscsi.queue_depth,
        nop_interval: (d.nop_interval_secs > 0)
            .then(|| Duration::from_secs(u64::from(d.nop_interval_secs))),
        nop_timeout: Duration::from_secs(u64::from(d.nop_timeout_secs.max(1))),
        pdu_timeout: Duration::from_secs(u64::from(d.pdu_timeout_secs.max(1))),
        send_timeout: Duration::from_secs(u64::from(d.send_timeout_secs.max(1))),
        session_buffers: d.session_buffer_memory.0,
        max_outbound: MAX_OUTBOUND,
        ..Limits::default()
    }
}

struct Driver {
    ctx: Arc<ServerCtx>,
    handle: Arc<SessionHandle>,
    nexus: Option<Arc<ItNexus>>,
    peer: SocketAddr,
    local: SocketAddr,
    tx: mpsc::UnboundedSender<Event>,
    /// Commands in the SCSI core, with their unit (for aborts and teardown).
    running: HashMap<TaskId, Arc<LogicalUnit>>,
    closing: Option<(CloseReason, bool)>,
}

/// Runs the full feature phase until the connection ends, then drains its commands.
pub(super) async fn run(
    l: LoggedIn<'_>,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: &Arc<ServerCtx>,
) {
    let LoggedIn {
        mut rd,
        mut wr,
        mut framer,
        start,
        reg,
        mut kill,
        slot,
    } = l;
    let registry = ctx.registry.load_full();
    let (hd, dd) = (start.params.header_digest, start.params.data_digest);
    let mut session = Session::new(
        start,
        limits(&registry),
        ctx.buffers.clone(),
        Instant::now(),
    );
    drop(registry);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut d = Driver {
        ctx: ctx.clone(),
        handle: reg.handle.clone(),
        nexus: reg.handle.nexus.clone(),
        peer,
        local,
        tx,
        running: HashMap::new(),
        closing: None,
    };
    let mut outbox = Outbox::default();
    let mut shutdown = ctx.shutdown.clone();
    let mut shutdown_seen = false;
    loop {
        let now = Instant::now();
        if !shutdown_seen && *shutdown.borrow() {
            shutdown_seen = true;
            session.on_kill(
                now,
                session::Kill::AskLogout("the target is stopping".into()),
            );
        }
        while let Some(a) = session.poll_action() {
            d.act(a);
        }
        if d.closing.is_some() {
            break;
        }
        if outbox.is_empty() {
            while outbox.len() < OUTBOX_BATCH {
                let Some(p) = session.poll_transmit(now) else {
                    break;
                };
                if p.bhs.opcode() == Opcode::DATA_IN {
                    SessionHandle::count(&d.handle.counters.read_bytes, p.data.len() as u64);
                }
                outbox.push(&p, hd, dd);
            }
            if session.is_closed() {
                continue; // the Close action is waiting
            }
        }
        if framer.in_pdu() {
            session.on_receiving(now);
        }
        let deadline = session.poll_timeout().map(tokio::time::Instant::from_std);
        let can_read = session.wants_read() && !framer.awaiting_sink();
        let slices = outbox.slices();
        enum Ev {
            Kill(Option<Kill>),
            Shutdown,
            Evicted,
            Event(Event),
            Wrote(std::io::Result<usize>),
            Read(std::io::Result<usize>),
            Timer,
        }
        let ev = tokio::select! {
            biased;
            r = kill.changed() => Ev::Kill(r.ok().map(|()| *kill.borrow())),
            _ = shutdown.wait_for(|s| *s), if !shutdown_seen => Ev::Shutdown,
            _ = slot.evicted() => Ev::Evicted,
            Some(e) = rx.recv() => Ev::Event(e),
            r = wr.write_vectored(&slices), if !slices.is_empty() => Ev::Wrote(r),
            r = rd.read(framer.read_buf()), if can_read => Ev::Read(r),
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => Ev::Timer,
        };
        drop(slices);
        let now = Instant::now();
        match ev {
            Ev::Kill(None | Some(Kill::No)) => {}
            Ev::Kill(Some(k)) => session.on_kill(now, kill_of(k)),
            Ev::Shutdown => {}
            Ev::Evicted => session.on_kill(
                now,
                session::Kill::Now(
                    "too many discovery sessions (daemon.max_discovery_sessions): the oldest goes"
                        .into(),
                ),
            ),
            Ev::Event(e) => {
                d.event(&mut session, now, e);
                while let Ok(e) = rx.try_recv() {
                    d.event(&mut session, now, e);
                }
            }
            Ev::Wrote(Ok(0)) => session.on_broken("the connection does not take data".into()),
            Ev::Wrote(Ok(n)) => {
                outbox.advance(n);
                session.on_sent(now, outbox.is_empty());
            }
            Ev::Wrote(Err(e)) => session.on_broken(format!("send: {e}")),
            Ev::Read(Ok(0)) => session.on_broken("the initiator closed the connection".into()),
            Ev::Read(Ok(n)) => {
                framer.filled(n);
                d.frames(&mut session, &mut framer, now);
            }
            Ev::Read(Err(e)) => session.on_broken(format!("receive: {e}")),
            Ev::Timer => session.on_timeout(now),
        }
    }
    let (reason, flush) = d.closing.take().expect("closed");
    if flush {
        let send_timeout = Duration::from_secs(u64::from(
            ctx.registry.load().config.daemon.send_timeout_secs.max(1),
        ));
        let _ = tokio::time::timeout(send_timeout, async {
            while !outbox.is_empty() {
                let n = wr.write_vectored(&outbox.slices()).await?;
                if n == 0 {
                    break;
                }
                outbox.advance(n);
            }
            wr.flush().await
        })
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
    drop((rd, wr));
    let key = &d.handle.key;
    match &reason {
        CloseReason::Logout => {
            tracing::info!(peer = %peer, initiator = %key.initiator, tsih = d.handle.tsih, "session ended: {reason}")
        }
        _ => {
            tracing::info!(peer = %peer, initiator = %key.initiator, tsih = d.handle.tsih, "connection closed: {reason}")
        }
    }
    // No I/O of this session outlives it: a reinstating login waits for this.
    if let Some(n) = &d.nexus {
        let running: Vec<_> = d.running.drain().collect();
        tmf::drain(n.id(), running, Instant::now()).await;
    }
    drop(session);
    drop(slot);
    drop(reg);
}

fn kill_of(k: Kill) -> session::Kill {
    match k {
        Kill::No => session::Kill::AskLogout("asked to end".into()),
        Kill::Reinstated => {
            session::Kill::Now("reinstated by a new login of the same initiator and ISID".into())
        }
        Kill::AccessRemoved => session::Kill::AskLogout("its access was removed".into()),
        Kill::Reset => session::Kill::Now("target cold reset by another session".into()),
    }
}

impl Driver {
    fn act(&mut self, a: Action) {
        match a {
            Action::Execute(e) => self.execute(e),
            Action::Abort {
                tmf: id,
                scope,
                tasks,
                received,
            } => {
                let Some(nexus) = self.nexus.clone() else {
                    return;
                };
                let running: Vec<_> = tasks
                    .iter()
                    .filter_map(|t| self.running.get(t).map(|u| (*t, u.clone())))
                    .collect();
                let who = Asker {
                    nexus,
                    target: self.handle.key.target.clone(),
                    tsih: self.handle.tsih,
                };
                let tx = self.tx.clone();
                let ctx = self.ctx.clone();
                tokio::spawn(async move {
                    let code = tmf::carry_out(&ctx, &who, scope, running, received).await;
                    let _ = tx.send(Event::TmfDone(id, code));
                });
            }
            Action::Close { reason, flush } => self.closing = Some((reason, flush)),
        }
    }

    fn execute(&mut self, e: Exec) {
        let Some(nexus) = self.nexus.clone() else {
            return;
        };
        let c = &self.handle.counters;
        SessionHandle::count(&c.write_bytes, e.data_out.len() as u64);
        if let Some(unit) = {
            let map = nexus.luns();
            map.binary_search_by_key(&e.lun, |m| m.lun)
                .ok()
                .map(|i| map[i].unit.clone())
        } {
            self.running.insert(e.task, unit);
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let cmd = ScsiCommand {
                lun: e.lun,
                cdb: e.cdb,
                data_out: e.data_out,
                expected_in: e.expected_in,
            };
            let meta = TaskMeta {
                id: e.task.0,
                received: e.received,
            };
            let c = match scsi::execute_task(&nexus, cmd, meta).await {
                Ok(r) => Completion::Done(r),
                Err(scsi::Aborted) => Completion::Aborted,
            };
            let _ = tx.send(Event::Done(e.task, c));
        });
    }

    fn event(&mut self, session: &mut Session, now: Instant, e: Event) {
        match e {
            Event::Done(task, c) => {
                self.running.remove(&task);
                let cnt = &self.handle.counters;
                cnt.commands.fetch_add(1, Ordering::Relaxed);
                if !matches!(&c, Completion::Done(r) if r.status == scsi::status::GOOD) {
                    cnt.errors.fetch_add(1, Ordering::Relaxed);
                }
                session.on_completion(now, task, c);
            }
            Event::TmfDone(id, code) => session.on_tmf_done(now, id, code),
        }
    }

    /// Hands every complete frame to the session.
    fn frames(&mut self, session: &mut Session, framer: &mut Framer, now: Instant) {
        loop {
            match framer.poll() {
                Ok(Some(Frame::Header(h))) => {
                    let sink = session.on_header(now, &h);
                    if let Err(e) = framer.set_sink(sink) {
                        session.on_broken(e.to_string());
                        return;
                    }
                }
                Ok(Some(Frame::Data { buf, digest_ok })) => {
                    let reg = self.ctx.registry.load();
                    let dir = SessionDirectory {
                        registry: &reg,
                        initiator: &self.handle.key.initiator,
                        peer: self.peer,
                        local: self.local,
                        discovery: self.handle.discovery,
                        target: &self.handle.key.target,
                    };
                    session.on_data(now, buf, digest_ok, &dir);
                }
                Ok(None) => return,
                Err(e) => {
                    session.on_broken(e.to_string());
                    return;
                }
            }
        }
    }
}
