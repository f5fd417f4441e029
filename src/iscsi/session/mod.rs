//! The full feature phase of one connection (RFC 7143, ErrorRecoveryLevel 0), sans-IO.
//!
//! In the spirit of quinn-proto: no sockets, no tasks, no clock reads — time is an
//! argument. The driver (`server::connection`) feeds events in and carries actions out:
//!
//! ```text
//!  Framer ── Header ──► on_header ──► DataSink (where the data segment goes)
//!         ── Data ────► on_data          │
//!  driver ── completions, TMF done, ───► on_completion / on_tmf_done / on_kill /
//!            kills, time, send progress    on_timeout / on_sent
//!                                          │
//!  driver ◄── poll_action: Execute(command), Abort(scope), Close(reason)
//!  socket ◄── poll_transmit: the next PDU, numbered (StatSN, ExpCmdSN, MaxCmdSN)
//!             poll_timeout: when to call on_timeout next
//! ```
//!
//! What lives here: the CmdSN window and in-order delivery ([`window`]), task states,
//! write data assembly with coverage tracking and R2T ([`write`]), Data-In segmentation
//! with status collapse ([`datain`]), task management (the session's part; aborts of
//! running commands are carried out, and waited for, by the driver through the SCSI
//! core's task set), NOP pings, Text/SendTargets ([`text`]), Logout, the memory budget
//! ([`budget`]) and every timer: the PDU deadline, NOP, send stall, data stall, logout.
//!
//! Resources a peer can make the session hold are bounded: tasks by the window (and a few
//! immediate ones), buffers by the budget, queued output by `max_outbound` (the driver
//! stops reading while it is exceeded), and each wait by a timer.

pub mod budget;
mod command;
mod control;
pub mod datain;
mod output;
mod run;
pub mod text;
mod tmf;
pub mod window;
pub mod write;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::FxHashMap as HashMap;

use self::budget::BufferPool;
use self::datain::{Answer, OutPdu, Shape, Sn};
use self::text::{Directory, TextExchange};
use self::window::{Position, Window};
use self::write::{Placement, WriteData};
use super::login::Params;
use super::wire::bhs::decode_lun;
use super::wire::codes::{RejectReason, async_event, logout};
use super::wire::framer::{DataSink, Header};
use super::wire::{Bhs, Opcode, RESERVED_TAG};
use crate::iobuf::IoBuf;
use crate::scsi::sense::Sense;
use crate::scsi::{ScsiResponse, status};

/// A task's identity for the life of the session (ITTs may be reused by the initiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

/// A task management request in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TmfId(pub u64);

/// The limits a session runs under (from the configuration).
#[derive(Debug, Clone)]
pub struct Limits {
    /// The CmdSN window (commands outstanding).
    pub queue_depth: u32,
    /// Immediate SCSI commands outstanding at once (beyond: TASK SET FULL).
    pub max_immediate: u32,
    /// Silence after which the target pings (NOP-In); `None`: never.
    pub nop_interval: Option<Duration>,
    /// Time the initiator has to answer a ping.
    pub nop_timeout: Duration,
    /// Once a PDU has started to arrive, all of it must within this time.
    pub pdu_timeout: Duration,
    /// Sending that makes no progress for this long ends the connection.
    pub send_timeout: Duration,
    /// A write whose data makes no progress for this long is ended with CHECK CONDITION.
    pub data_timeout: Duration,
    /// After a Logout Request, running commands get this long to finish before the ones
    /// still waiting for data are dropped.
    pub logout_timeout: Duration,
    /// After the target asked for a logout (Async Message), the initiator gets this long.
    pub logout_grace: Duration,
    /// The session's buffer budget in bytes.
    pub session_buffers: u64,
    /// Bytes of queued output above which the driver stops reading.
    pub max_outbound: usize,
    /// Largest write (EDTL) accepted.
    pub max_transfer: u32,
    /// Most request text collected over continued Text Requests.
    pub max_text: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_depth: 128,
            max_immediate: 8,
            nop_interval: Some(Duration::from_secs(10)),
            nop_timeout: Duration::from_secs(15),
            pdu_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(30),
            data_timeout: Duration::from_secs(60),
            logout_timeout: Duration::from_secs(10),
            logout_grace: Duration::from_secs(3),
            session_buffers: 128 << 20,
            max_outbound: 4 << 20,
            max_transfer: crate::scsi::MAX_TRANSFER_BYTES,
            max_text: 64 * 1024,
        }
    }
}

/// What the login handed over.
#[derive(Debug, Clone)]
pub struct Start {
    /// Negotiated parameters.
    pub params: Params,
    /// A discovery session (only Text, NOP-Out and Logout are served).
    pub discovery: bool,
    /// This connection's CID.
    pub cid: u16,
    /// The first ExpCmdSN (the CmdSN of the leading login request).
    pub exp_cmdsn: u32,
    /// The next StatSN.
    pub statsn: u32,
}

/// SAM task attributes (the ATTR field of the SCSI Command PDU).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskAttr {
    /// SIMPLE (also untagged): may run in any order with other simple tasks.
    Simple,
    /// ORDERED: runs after every earlier task, before every later one.
    Ordered,
    /// HEAD OF QUEUE: runs at once.
    HeadOfQueue,
    /// ACA: not supported (no ACA conditions are established).
    Aca,
}

/// A command ready for the SCSI core.
#[derive(Debug)]
pub struct Exec {
    /// The task.
    pub task: TaskId,
    /// LUN (decoded).
    pub lun: u64,
    /// The CDB (with an extended-CDB AHS appended).
    pub cdb: Bytes,
    /// All write data.
    pub data_out: IoBuf,
    /// Data-In the initiator expects (0 for non-reads).
    pub expected_in: u32,
    /// When the command arrived (an abort covers the tasks that arrived before it).
    pub received: Instant,
    /// Task attribute.
    pub attr: TaskAttr,
}

/// Which tasks a task management function affects beyond the session's own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TmfScope {
    /// ABORT TASK of one running task of this session.
    Task {
        /// LUN of the task.
        lun: u64,
    },
    /// ABORT TASK SET: this session's tasks on the LUN.
    TaskSet {
        /// LUN.
        lun: u64,
    },
    /// CLEAR TASK SET: every nexus's tasks on the LUN (shared task set).
    ClearTaskSet {
        /// LUN.
        lun: u64,
    },
    /// LOGICAL UNIT RESET: every nexus's tasks on the LUN, and the unit's reset.
    LuReset {
        /// LUN.
        lun: u64,
    },
    /// TARGET WARM or COLD RESET: every logical unit of the target, every nexus; a cold
    /// reset also closes every session of the target.
    TargetReset {
        /// Cold reset.
        cold: bool,
    },
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    /// Execute a command; answer with [`Session::on_completion`].
    Execute(Exec),
    /// Abort in the SCSI core every task in `scope` that arrived before `received`
    /// (`tasks` are this session's running ones), wait until their backstore I/O is over,
    /// apply the reset if any, then answer with [`Session::on_tmf_done`].
    Abort {
        /// The TMF to answer.
        tmf: TmfId,
        /// What it affects.
        scope: TmfScope,
        /// This session's running tasks it covers.
        tasks: Vec<TaskId>,
        /// When the TMF arrived.
        received: Instant,
    },
    /// Close the connection: after the queued output is sent when `flush`.
    Close {
        /// Why.
        reason: CloseReason,
        /// Send what is queued first (a Logout Response).
        flush: bool,
    },
}

/// Why a connection closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The initiator logged out.
    Logout,
    /// The initiator did not answer a NOP-In ping in time.
    NopTimeout,
    /// A PDU started and did not finish within the PDU deadline.
    PduTimeout,
    /// Sending made no progress within the send timeout (the peer stopped reading).
    SendTimeout,
    /// The initiator did not log out in time after being asked to.
    LogoutTimeout,
    /// A TARGET COLD RESET was answered.
    ColdReset,
    /// The daemon ended the session (reinstatement, shutdown, administration).
    Killed(String),
    /// The stream cannot be trusted (header digest, framing).
    Protocol(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Logout => f.write_str("logged out"),
            CloseReason::NopTimeout => f.write_str("initiator did not answer a NOP-In ping"),
            CloseReason::PduTimeout => f.write_str("a PDU did not arrive within the PDU deadline"),
            CloseReason::SendTimeout => f.write_str("the initiator stopped reading (send timeout)"),
            CloseReason::LogoutTimeout => {
                f.write_str("initiator did not log out after the target asked it to")
            }
            CloseReason::ColdReset => f.write_str("target cold reset"),
            CloseReason::Killed(why) => write!(f, "ended by the target: {why}"),
            CloseReason::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// How a command ended in the SCSI core.
#[derive(Debug)]
pub enum Completion {
    /// It ran: its response.
    Done(ScsiResponse),
    /// It was aborted (by this session's TMF, or by another nexus: then the initiator
    /// gets TASK ABORTED).
    Aborted,
}

/// How the daemon ends a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kill {
    /// Close now (reinstatement, cold reset of the target, forced).
    Now(String),
    /// Ask the initiator to log out (Async Message), close if it does not in time.
    AskLogout(String),
}

#[derive(Debug)]
enum Stage {
    /// Write data being collected (or waiting for the budget to give it a buffer).
    Data(WriteData),
    /// Everything present (the write data, if any); waits for delivery, order and
    /// (reads) budget.
    Ready(IoBuf),
    /// In the SCSI core.
    Executing,
    /// Its answer is queued.
    Answering,
}

#[derive(Debug)]
struct Task {
    itt: u32,
    /// `None` for an immediate command.
    cmdsn: Option<u32>,
    lun: u64,
    lun_raw: u64,
    cdb: Bytes,
    attr: TaskAttr,
    edtl: u32,
    expected_in: u32,
    received: Instant,
    delivered: bool,
    /// Delivery order (for ORDERED).
    seq: u64,
    holds_slot: bool,
    stage: Stage,
    /// Budget bytes held.
    reserved: u64,
    /// Aborted by this session's TMF: no answer.
    aborted: Option<TmfId>,
    /// Answer decided without the SCSI core (e.g. a write too large).
    preset: Option<ScsiResponse>,
}

/// What to do with the data segment of the header just seen.
#[derive(Debug)]
enum Pending {
    Nothing,
    /// Immediate data or a Data-Out of a write.
    Write {
        task: TaskId,
        place: Placement,
        early: bool,
        fin: bool,
        /// The command PDU itself (immediate data): its CmdSN is received once its data
        /// arrived intact.
        command: Option<Option<u32>>,
    },
    /// A non-task PDU whose data we need (NOP-Out, Text, TMF, Logout).
    Pdu(Bhs),
}

enum Out {
    Pdu(OutPdu),
    Answer(TaskId, Box<Answer>),
    /// Close once everything before this was sent.
    Close(CloseReason),
}

#[derive(Debug)]
struct LogoutState {
    itt: u32,
    deadline: Instant,
}

/// One connection's full feature phase.
pub struct Session {
    params: Params,
    limits: Limits,
    discovery: bool,
    cid: u16,
    window: Window,
    statsn: u32,
    pool: Arc<BufferPool>,
    /// Session budget in use (reservations plus unsolicited data kept without one).
    used: u64,
    tasks: HashMap<TaskId, Task>,
    by_itt: HashMap<u32, TaskId>,
    /// Tasks received ahead of ExpCmdSN, by CmdSN.
    undelivered: HashMap<u32, TaskId>,
    /// Non-task PDUs received ahead of ExpCmdSN, by CmdSN.
    held: HashMap<u32, (Bhs, IoBuf)>,
    /// Delivered tasks ready to start, by delivery order.
    ready: BTreeSet<(u64, TaskId)>,
    /// Tasks waiting for budget, in arrival order.
    budget_wait: VecDeque<TaskId>,
    budget_retry: Option<Instant>,
    next_task: u64,
    next_seq: u64,
    next_ttt: u32,
    next_tmf: u64,
    immediate: u32,
    ordered: u32,
    pending: Option<Pending>,
    text: TextExchange,
    outq: VecDeque<Out>,
    out_bytes: usize,
    actions: VecDeque<Action>,
    tmfs: HashMap<TmfId, tmf::PendingTmf>,
    last_rx: Instant,
    ping: Option<(u32, Instant)>,
    pdu_deadline: Option<Instant>,
    send_since: Option<Instant>,
    logout: Option<LogoutState>,
    ask_deadline: Option<Instant>,
    closed: bool,
}

impl Drop for Session {
    /// The session's reservations go back to the daemon-wide pool.
    fn drop(&mut self) {
        let held: u64 = self.tasks.values().map(|t| t.reserved).sum();
        if held > 0 {
            self.pool.release(held);
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cid", &self.cid)
            .field("exp_cmdsn", &self.window.exp_cmdsn())
            .field("tasks", &self.tasks.len())
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Sense for a Data-Out that does not fit its command (ERL 0: the task ends).
const DATA_PHASE_ERROR: Sense = Sense::new(0x0b, 0x4b, 0x00);
/// Sense for data lost to a digest error (RFC 7143 §7.8: PROTOCOL SERVICE CRC ERROR).
const CRC_ERROR: Sense = Sense::new(0x0b, 0x47, 0x05);
/// Sense for write data that stopped arriving.
const DATA_TIMEOUT: Sense = Sense::new(0x0b, 0x4b, 0x00);

impl Session {
    /// A session starting its full feature phase at `now`.
    pub fn new(start: Start, limits: Limits, pool: Arc<BufferPool>, now: Instant) -> Self {
        Session {
            window: Window::new(start.exp_cmdsn, limits.queue_depth),
            params: start.params,
            discovery: start.discovery,
            cid: start.cid,
            statsn: start.statsn,
            limits,
            pool,
            used: 0,
            tasks: HashMap::default(),
            by_itt: HashMap::default(),
            undelivered: HashMap::default(),
            held: HashMap::default(),
            ready: BTreeSet::new(),
            budget_wait: VecDeque::new(),
            budget_retry: None,
            next_task: 1,
            next_seq: 0,
            next_ttt: 0,
            next_tmf: 1,
            immediate: 0,
            ordered: 0,
            pending: None,
            text: TextExchange::default(),
            outq: VecDeque::new(),
            out_bytes: 0,
            actions: VecDeque::new(),
            tmfs: HashMap::default(),
            last_rx: now,
            ping: None,
            pdu_deadline: None,
            send_since: None,
            logout: None,
            ask_deadline: None,
            closed: false,
        }
    }

    /// The negotiated parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Whether the session has ended (no more input is taken).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the driver should read from the socket: not while queued output exceeds
    /// its bound (the peer must read first) or once closed.
    pub fn wants_read(&self) -> bool {
        !self.closed && self.out_bytes < self.limits.max_outbound
    }

    /// Tasks alive (any stage).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Session budget bytes in use.
    pub fn buffers_used(&self) -> u64 {
        self.used
    }

    /// Bytes of output queued and not yet taken by [`Session::poll_transmit`].
    pub fn queued_bytes(&self) -> usize {
        self.out_bytes
    }

    /// ExpCmdSN and the MaxCmdSN last advertised.
    pub fn cmdsn_window(&self) -> (u32, u32) {
        (self.window.exp_cmdsn(), self.window.max_cmdsn())
    }

    fn new_ttt(next: &mut u32) -> u32 {
        *next = next.wrapping_add(1);
        if *next == RESERVED_TAG || *next == 0 {
            *next = 1;
        }
        *next
    }

    fn shape(&self) -> Shape {
        Shape {
            segment: self.params.initiator_mrdsl as usize,
            burst: self.params.max_burst_length as usize,
        }
    }

    fn queue(&mut self, pdu: OutPdu) {
        self.out_bytes += pdu.data.len() + crate::iscsi::wire::BHS_LEN;
        self.outq.push_back(Out::Pdu(pdu));
    }

    fn reject(&mut self, bad: &Bhs, reason: RejectReason) {
        let mut b = Bhs::new(Opcode::REJECT);
        b.set_flags(0x80);
        b.0[2] = reason as u8;
        b.set_itt(RESERVED_TAG);
        self.queue(OutPdu::status(b, Bytes::copy_from_slice(&bad.0)));
    }

    fn close(&mut self, reason: CloseReason, flush: bool) {
        if !self.closed {
            self.closed = true;
            self.actions.push_back(Action::Close { reason, flush });
        }
    }

    /// The driver saw the first bytes of a PDU (the PDU deadline starts, if not already).
    pub fn on_receiving(&mut self, now: Instant) {
        if self.pdu_deadline.is_none() {
            self.pdu_deadline = Some(now + self.limits.pdu_timeout);
        }
    }

    /// A PDU header arrived; returns where its data segment goes.
    pub fn on_header(&mut self, now: Instant, h: &Header) -> DataSink {
        if self.closed {
            self.pending = Some(Pending::Nothing);
            return DataSink::Discard;
        }
        self.last_rx = now;
        self.ping = None;
        let bhs = &h.bhs;
        let dlen = bhs.data_segment_len();
        let (pending, sink) = self.header(now, h, dlen);
        self.pending = Some(pending);
        sink.unwrap_or(DataSink::Discard)
    }

    fn header(&mut self, now: Instant, h: &Header, dlen: usize) -> (Pending, Option<DataSink>) {
        let bhs = &h.bhs;
        if dlen > self.params.target_mrdsl as usize {
            self.reject(bhs, RejectReason::ProtocolError);
            return (Pending::Nothing, None);
        }
        let op = bhs.opcode();
        let normal_only = matches!(
            op,
            Opcode::SCSI_COMMAND | Opcode::DATA_OUT | Opcode::TMF_REQUEST
        );
        if self.discovery && normal_only {
            self.reject(bhs, RejectReason::ProtocolError);
            return (Pending::Nothing, None);
        }
        match op {
            Opcode::SCSI_COMMAND => self.scsi_command(now, h, dlen),
            Opcode::DATA_OUT => self.data_out(bhs, dlen),
            Opcode::NOP_OUT
            | Opcode::TEXT_REQUEST
            | Opcode::TMF_REQUEST
            | Opcode::LOGOUT_REQUEST => {
                if op == Opcode::NOP_OUT && bhs.itt() == RESERVED_TAG && !bhs.immediate() {
                    self.reject(bhs, RejectReason::ProtocolError);
                    return (Pending::Nothing, None);
                }
                if !bhs.immediate()
                    && !matches!(self.window.position(bhs.cmdsn()), Position::Accept { .. })
                {
                    tracing::debug!(opcode = ?op, cmdsn = bhs.cmdsn(), window = ?self.cmdsn_window(), "CmdSN outside the window: dropped");
                    return (Pending::Nothing, None);
                }
                let sink = (dlen > 0).then(|| DataSink::Into {
                    buf: IoBuf::filled(dlen),
                    at: 0,
                });
                (Pending::Pdu(*bhs), sink)
            }
            Opcode::SNACK_REQUEST | Opcode::LOGIN_REQUEST => {
                self.reject(bhs, RejectReason::ProtocolError);
                (Pending::Nothing, None)
            }
            _ => {
                self.reject(bhs, RejectReason::CommandNotSupported);
                (Pending::Nothing, None)
            }
        }
    }

    /// The data segment of the last header arrived (`buf` is the sink's buffer, handed
    /// back; `digest_ok` whether its data digest matched).
    pub fn on_data(
        &mut self,
        now: Instant,
        buf: Option<IoBuf>,
        digest_ok: bool,
        dir: &dyn Directory,
    ) {
        self.pdu_deadline = None;
        let Some(pending) = self.pending.take() else {
            debug_assert!(false, "on_data without on_header");
            return;
        };
        if self.closed {
            return;
        }
        match pending {
            Pending::Nothing => {}
            Pending::Write {
                task,
                place,
                early,
                fin,
                command,
            } => self.write_data(now, (task, place, early, fin, command), buf, digest_ok, dir),
            Pending::Pdu(bhs) => {
                if !digest_ok {
                    // Not received: the initiator may retry it with the same CmdSN.
                    self.reject(&bhs, RejectReason::DataDigestError);
                    return;
                }
                let data = buf.unwrap_or_default();
                if bhs.immediate() {
                    self.deliver_pdu(now, bhs, data, dir);
                } else {
                    let sn = bhs.cmdsn();
                    if !matches!(self.window.position(sn), Position::Accept { .. }) {
                        return;
                    }
                    self.held.insert(sn, (bhs, data));
                    self.receive_cmdsn(now, sn, dir);
                }
            }
        }
        self.kick(now);
    }

    /// Marks `cmdsn` received and delivers what became deliverable, in order.
    fn receive_cmdsn(&mut self, now: Instant, cmdsn: u32, dir: &dyn Directory) {
        let d = self.window.receive(cmdsn);
        for i in 0..d.count {
            let sn = d.first.wrapping_add(i);
            if let Some(id) = self.undelivered.remove(&sn) {
                self.deliver_task(id);
            } else if let Some((bhs, data)) = self.held.remove(&sn) {
                self.deliver_pdu(now, bhs, data, dir);
            }
        }
    }

    fn deliver_task(&mut self, id: TaskId) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        t.delivered = true;
        t.seq = self.next_seq;
        self.next_seq += 1;
        if t.cmdsn.is_some() {
            t.holds_slot = true;
            self.window.take_slot();
        }
        if matches!(t.stage, Stage::Ready(_)) {
            self.ready.insert((t.seq, id));
        }
    }

    fn deliver_pdu(&mut self, now: Instant, bhs: Bhs, data: IoBuf, dir: &dyn Directory) {
        match bhs.opcode() {
            Opcode::NOP_OUT => self.nop_out(&bhs, data),
            Opcode::TEXT_REQUEST => self.text_request(&bhs, &data, dir),
            Opcode::TMF_REQUEST => self.tmf(now, &bhs, dir),
            Opcode::LOGOUT_REQUEST => self.logout_request(now, &bhs),
            _ => {}
        }
    }
}
