//! The driver of one connection's full feature phase: a thin loop around the sans-IO
//! [`Session`] — socket bytes into the [`Framer`], frames into the session, commands and
//! aborts out to the SCSI core, numbered PDUs out to the socket, time and kills in.
//!
//! One task per connection does all of it (reads, writes, timers, and the commands
//! themselves): a read or write ([`scsi::runs_briefly`]) is polled once as soon as the
//! session starts it and, when its backstore served it without waiting (memory, the page
//! cache), answered in the same turn of the loop — no task, no channel, no thread in
//! between. A command that has to wait (a device, the blocking pool, the task set) stays
//! in the connection's own set of futures and is polled when it is woken. Commands that
//! may run long (WRITE SAME, UNMAP, COMPARE AND WRITE, SYNCHRONIZE CACHE...) run in tasks
//! of their own, so they never stall the connection. Backpressure: the loop reads only
//! while the session wants input (its queued output is within bound) and the outbox takes
//! PDUs from the session only as fast as the socket accepts them.
//!
//! Per turn of the loop the costs are kept flat: the kill/shutdown/eviction watch is one
//! future made once (remade only when it fires, polled only when woken), and the timer is re-armed only when the
//! session's next deadline comes earlier than the armed one (an early wake-up is harmless:
//! [`Session::on_timeout`] acts only on what is due).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustc_hash::FxHashMap;
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

/// A command running in the connection's task.
type CommandFuture = Pin<Box<dyn Future<Output = (TaskId, Completion)> + Send>>;

/// What ended a wait of the control future.
enum Control {
    Kill(Option<Kill>),
    Shutdown,
    Evicted,
}

/// Waits for a kill, the daemon's shutdown (when `shutdown_armed`) or the eviction of the
/// slot; hands the receivers back so the next wait can be made from them.
async fn control(
    mut kill: watch::Receiver<Kill>,
    mut shutdown: watch::Receiver<bool>,
    kill_armed: bool,
    shutdown_armed: bool,
    slot: &Slot,
) -> (Control, watch::Receiver<Kill>, watch::Receiver<bool>) {
    let c = tokio::select! {
        biased;
        r = kill.changed(), if kill_armed => Control::Kill(r.ok().map(|()| *kill.borrow())),
        _ = shutdown.wait_for(|s| *s), if shutdown_armed => Control::Shutdown,
        _ = slot.evicted() => Control::Evicted,
    };
    (c, kill, shutdown)
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
    running: FxHashMap<TaskId, Arc<LogicalUnit>>,
    /// Commands that had to wait, polled by the connection's loop.
    inflight: FuturesUnordered<CommandFuture>,
    /// Commands that finished when first polled, not yet handed to the session.
    finished: Vec<(TaskId, Completion)>,
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
        kill,
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
        running: FxHashMap::default(),
        inflight: FuturesUnordered::new(),
        finished: Vec::new(),
        closing: None,
    };
    let mut outbox = Outbox::default();
    let (mut kill_armed, mut shutdown_armed) = (true, true);
    // Polled only when woken (a set of one future): a select! over three watches costs
    // more than a whole command when polled on every turn.
    let mut ctl = FuturesUnordered::new();
    ctl.push(control(
        kill,
        ctx.shutdown.clone(),
        kill_armed,
        shutdown_armed,
        &slot,
    ));
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    loop {
        // Actions, and the commands that finished at once, until nothing is left to do.
        loop {
            while let Some(a) = session.poll_action() {
                d.act(a);
            }
            if d.finished.is_empty() {
                break;
            }
            let now = Instant::now();
            let mut done = std::mem::take(&mut d.finished);
            for (task, c) in done.drain(..) {
                d.done(&mut session, now, task, c);
            }
            d.finished = done;
        }
        if d.closing.is_some() {
            break;
        }
        let now = Instant::now();
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
        if let Some(want) = session.poll_timeout()
            && armed.is_none_or(|a| want < a)
        {
            sleep.as_mut().reset(tokio::time::Instant::from_std(want));
            armed = Some(want);
        }
        let can_read = session.wants_read() && !framer.awaiting_sink();
        let slices = outbox.slices();
        enum Ev {
            Control(Control),
            Done((TaskId, Completion)),
            Event(Event),
            Wrote(std::io::Result<usize>),
            Read(std::io::Result<usize>),
            Timer,
        }
        let ev = tokio::select! {
            biased;
            Some((c, k, s)) = ctl.next() => {
                if matches!(c, Control::Kill(None)) {
                    kill_armed = false; // the session's handle is gone: nobody can kill it
                }
                if matches!(c, Control::Shutdown) {
                    shutdown_armed = false;
                }
                ctl.push(control(k, s, kill_armed, shutdown_armed, &slot));
                Ev::Control(c)
            }
            Some(r) = d.inflight.next(), if !d.inflight.is_empty() => Ev::Done(r),
            Some(e) = rx.recv() => Ev::Event(e),
            r = wr.write_vectored(&slices), if !slices.is_empty() => Ev::Wrote(r),
            r = rd.read(framer.read_buf()), if can_read => Ev::Read(r),
            () = &mut sleep, if armed.is_some() => Ev::Timer,
        };
        drop(slices);
        let now = Instant::now();
        match ev {
            Ev::Control(Control::Kill(None | Some(Kill::No))) => {}
            Ev::Control(Control::Kill(Some(k))) => session.on_kill(now, kill_of(k)),
            Ev::Control(Control::Shutdown) => session.on_kill(
                now,
                session::Kill::AskLogout("the target is stopping".into()),
            ),
            Ev::Control(Control::Evicted) => session.on_kill(
                now,
                session::Kill::Now(
                    "too many discovery sessions (daemon.max_discovery_sessions): the oldest goes"
                        .into(),
                ),
            ),
            Ev::Done((task, c)) => d.done(&mut session, now, task, c),
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
            Ev::Timer => {
                armed = None;
                session.on_timeout(now);
            }
        }
    }
    drop(ctl);
    // Commands still in flight go on in a task of their own (their I/O must end before
    // the teardown below returns; nobody hears their answers).
    let inflight = std::mem::take(&mut d.inflight);
    if !inflight.is_empty() {
        tokio::spawn(async move {
            let mut inflight = inflight;
            while inflight.next().await.is_some() {}
        });
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
        let brief = scsi::runs_briefly(&e.cdb);
        let task = e.task;
        let run = async move {
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
            (task, c)
        };
        if brief {
            // Polled here once: served without waiting, it is answered in this turn. The
            // no-op waker is enough for this first poll: whatever it waits for is polled
            // again (with the loop's waker) by `inflight` before the loop sleeps.
            let mut f: CommandFuture = Box::pin(run);
            match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(r) => self.finished.push(r),
                Poll::Pending => self.inflight.push(f),
            }
        } else {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let (task, c) = run.await;
                let _ = tx.send(Event::Done(task, c));
            });
        }
    }

    /// A command finished.
    fn done(&mut self, session: &mut Session, now: Instant, task: TaskId, c: Completion) {
        self.running.remove(&task);
        let cnt = &self.handle.counters;
        cnt.commands.fetch_add(1, Ordering::Relaxed);
        if !matches!(&c, Completion::Done(r) if r.status == scsi::status::GOOD) {
            cnt.errors.fetch_add(1, Ordering::Relaxed);
        }
        session.on_completion(now, task, c);
    }

    fn event(&mut self, session: &mut Session, now: Instant, e: Event) {
        match e {
            Event::Done(task, c) => self.done(session, now, task, c),
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
                    let dir = SessionDirectory {
                        registry: &self.ctx.registry,
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
