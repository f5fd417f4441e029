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
pub mod datain;
pub mod text;
mod tmf;
pub mod window;
pub mod write;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

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
    pub data_out: Vec<u8>,
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
    Ready(Vec<u8>),
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
    held: HashMap<u32, (Bhs, Vec<u8>)>,
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
            tasks: HashMap::new(),
            by_itt: HashMap::new(),
            undelivered: HashMap::new(),
            held: HashMap::new(),
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
            tmfs: HashMap::new(),
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

    // ----- input --------------------------------------------------------------------

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
                    buf: vec![0u8; dlen],
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
        buf: Option<Vec<u8>>,
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

    fn deliver_pdu(&mut self, now: Instant, bhs: Bhs, data: Vec<u8>, dir: &dyn Directory) {
        match bhs.opcode() {
            Opcode::NOP_OUT => self.nop_out(&bhs, data),
            Opcode::TEXT_REQUEST => self.text_request(&bhs, &data, dir),
            Opcode::TMF_REQUEST => self.tmf(now, &bhs, dir),
            Opcode::LOGOUT_REQUEST => self.logout_request(now, &bhs),
            _ => {}
        }
    }

    // ----- SCSI commands and their data -------------------------------------------------

    fn scsi_command(
        &mut self,
        now: Instant,
        h: &Header,
        dlen: usize,
    ) -> (Pending, Option<DataSink>) {
        let bhs = &h.bhs;
        let flags = bhs.flags();
        let (fin, read, write) = (flags & 0x80 != 0, flags & 0x40 != 0, flags & 0x20 != 0);
        let edtl = bhs.edtl();
        let dlen32 = dlen as u32;
        let immediate = bhs.immediate();
        let cmdsn = (!immediate).then(|| bhs.cmdsn());
        if let Some(sn) = cmdsn
            && !matches!(self.window.position(sn), Position::Accept { .. })
        {
            tracing::debug!(cmdsn = sn, window = ?self.cmdsn_window(), "SCSI command outside the CmdSN window: dropped");
            return (Pending::Nothing, None);
        }
        let p = &self.params;
        let protocol_error = (dlen > 0 && (!write || !p.immediate_data))
            || dlen32 > edtl
            || dlen32 > p.first_burst_length
            || (!fin && (!write || p.initial_r2t))
            || bhs.itt() == RESERVED_TAG;
        let itt = bhs.itt();
        let refusal = if protocol_error {
            Some(RejectReason::ProtocolError)
        } else if self.by_itt.contains_key(&itt) {
            Some(RejectReason::TaskInProgress)
        } else {
            None
        };
        if let Some(reason) = refusal {
            // The PDU arrived intact: its CmdSN counts as received (no hole).
            self.reject(bhs, reason);
            return (
                Pending::Write {
                    task: TaskId(0),
                    place: Placement {
                        offset: 0,
                        len: 0,
                        ttt: None,
                    },
                    early: true,
                    fin: true,
                    command: Some(cmdsn),
                },
                None,
            );
        }
        if immediate && self.immediate >= self.limits.max_immediate {
            let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
            b.set_flags(0x80);
            b.0[3] = status::TASK_SET_FULL;
            b.set_itt(itt);
            self.queue(OutPdu::status(b, Bytes::new()));
            return (Pending::Nothing, None);
        }
        let mut cdb = Vec::with_capacity(16);
        cdb.extend_from_slice(bhs.cdb());
        // Extended CDB AHS (type 1): the CDB bytes beyond 16.
        if h.ahs.len() >= 4 && h.ahs[2] == 1 {
            let len = (u16::from_be_bytes([h.ahs[0], h.ahs[1]]) as usize).saturating_sub(1);
            cdb.extend_from_slice(&h.ahs[4..(4 + len).min(h.ahs.len())]);
        }
        let attr = match flags & 0x07 {
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            _ => TaskAttr::Simple,
        };
        let id = TaskId(self.next_task);
        self.next_task += 1;
        let mut preset = None;
        if attr == TaskAttr::Aca {
            // No ACA condition is ever established (NACA is not supported).
            preset = Some(ScsiResponse::check(Sense::INVALID_FIELD_IN_CDB));
        }
        let mut stage = Stage::Ready(Vec::new());
        let mut sink = None;
        let mut early = false;
        let mut reserved = 0;
        if write && edtl > 0 && preset.is_none() {
            if edtl > self.limits.max_transfer {
                tracing::warn!(
                    edtl,
                    "write larger than {} bytes refused",
                    self.limits.max_transfer
                );
                preset = Some(ScsiResponse::check(Sense::INVALID_FIELD_IN_CDB));
            } else {
                let mut w = WriteData::new(edtl, dlen32, fin, &self.params, now);
                if self.budget_wait.is_empty() && self.reserve(u64::from(edtl)) {
                    reserved = u64::from(edtl);
                    w.install(vec![0u8; edtl as usize]);
                } else {
                    self.budget_wait.push_back(id);
                    self.arm_budget_retry(now);
                }
                if dlen > 0 {
                    sink = Some(match w.lend() {
                        Some(buf) => DataSink::Into { buf, at: 0 },
                        None => {
                            early = true;
                            self.used += dlen as u64;
                            DataSink::Into {
                                buf: vec![0u8; dlen],
                                at: 0,
                            }
                        }
                    });
                }
                stage = Stage::Data(w);
            }
        }
        if preset.is_some() && write {
            stage = Stage::Ready(Vec::new());
            sink = None;
        }
        if immediate {
            self.immediate += 1;
        }
        if attr == TaskAttr::Ordered {
            self.ordered += 1;
        }
        self.tasks.insert(
            id,
            Task {
                itt,
                cmdsn,
                lun: decode_lun(bhs.lun_raw()),
                lun_raw: bhs.lun_raw(),
                cdb: Bytes::from(cdb),
                attr,
                edtl,
                expected_in: if read { edtl } else { 0 },
                received: now,
                delivered: false,
                seq: 0,
                holds_slot: false,
                stage,
                reserved,
                aborted: None,
                preset,
            },
        );
        self.by_itt.insert(itt, id);
        let pending = Pending::Write {
            task: id,
            place: Placement {
                offset: 0,
                len: if sink.is_some() { dlen32 } else { 0 },
                ttt: None,
            },
            early,
            fin,
            command: Some(cmdsn),
        };
        (pending, sink)
    }

    fn data_out(&mut self, bhs: &Bhs, dlen: usize) -> (Pending, Option<DataSink>) {
        let itt = bhs.itt();
        let Some(&id) = self.by_itt.get(&itt) else {
            // Data of a task that was aborted, answered or never existed.
            tracing::debug!(itt, "Data-Out for no task: discarded");
            return (Pending::Nothing, None);
        };
        let t = self.tasks.get_mut(&id).expect("indexed task");
        let Stage::Data(w) = &mut t.stage else {
            tracing::debug!(itt, "Data-Out for a task that has all its data: discarded");
            return (Pending::Nothing, None);
        };
        match w.check(bhs.ttt(), bhs.datasn(), bhs.buffer_offset(), dlen as u32) {
            Err(e) => {
                tracing::debug!(itt, error = %e, "invalid Data-Out: the task ends");
                self.reject(bhs, RejectReason::ProtocolError);
                self.answer_now(id, ScsiResponse::check(DATA_PHASE_ERROR));
                (Pending::Nothing, None)
            }
            Ok(place) => {
                let (sink, early) = match w.lend() {
                    Some(buf) => (
                        DataSink::Into {
                            buf,
                            at: place.offset as usize,
                        },
                        false,
                    ),
                    None => {
                        self.used += dlen as u64;
                        (
                            DataSink::Into {
                                buf: vec![0u8; dlen],
                                at: 0,
                            },
                            true,
                        )
                    }
                };
                (
                    Pending::Write {
                        task: id,
                        place,
                        early,
                        fin: bhs.final_bit(),
                        command: None,
                    },
                    Some(sink),
                )
            }
        }
    }

    fn write_data(
        &mut self,
        now: Instant,
        (id, place, early, fin, command): (TaskId, Placement, bool, bool, Option<Option<u32>>),
        buf: Option<Vec<u8>>,
        digest_ok: bool,
        dir: &dyn Directory,
    ) {
        if early && let Some(b) = &buf {
            // Counted when the sink was made; recounted below if kept.
            self.used = self.used.saturating_sub(b.len() as u64);
        }
        if id == TaskId(0) {
            // A refused command PDU: only its CmdSN matters.
            if let Some(Some(sn)) = command
                && digest_ok
            {
                self.receive_cmdsn(now, sn, dir);
            }
            return;
        }
        let Some(t) = self.tasks.get_mut(&id) else {
            return; // ended while its data arrived: drop the data
        };
        if !digest_ok {
            let mut b = Bhs::new(if command.is_some() {
                Opcode::SCSI_COMMAND
            } else {
                Opcode::DATA_OUT
            });
            b.set_itt(t.itt);
            self.reject(&b, RejectReason::DataDigestError);
            if command.is_some() {
                // A command with immediate data is not received (RFC 7143 §7.8): no
                // task, no CmdSN; the initiator retries it or aborts it by RefCmdSN.
                self.retire(id);
            } else {
                self.answer_now(id, ScsiResponse::check(CRC_ERROR));
            }
            return;
        }
        if let Stage::Data(w) = &mut t.stage {
            if let Some(b) = buf {
                if early {
                    if place.len > 0 {
                        self.used += b.len() as u64;
                        w.keep_early(place.offset, b);
                    }
                } else {
                    w.give_back(b);
                }
            }
            // Immediate data was counted when the command's write data was set up.
            if place.len > 0 && command.is_none() {
                w.accept(place, fin, now);
            }
        }
        if let Some(cmdsn) = command {
            match cmdsn {
                Some(sn) => {
                    self.undelivered.insert(sn, id);
                    self.receive_cmdsn(now, sn, dir);
                }
                None => self.deliver_task(id),
            }
        }
        self.progress_write(now, id);
    }

    /// After write data arrived or budget was granted: R2Ts, or the task is ready.
    fn progress_write(&mut self, now: Instant, id: TaskId) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        let Stage::Data(w) = &mut t.stage else {
            return;
        };
        if w.complete() {
            t.stage = Stage::Ready(w.take());
            if t.delivered {
                self.ready.insert((t.seq, id));
            }
            return;
        }
        let mut r2ts = Vec::new();
        while let Some(r) = w.next_r2t(&self.params, now, || Self::new_ttt(&mut self.next_ttt)) {
            r2ts.push(r);
        }
        let (itt, lun_raw) = (t.itt, t.lun_raw);
        for r in r2ts {
            let mut b = Bhs::new(Opcode::R2T);
            b.set_flags(0x80);
            b.set_lun_raw(lun_raw);
            b.set_itt(itt);
            b.set_ttt(r.ttt);
            b.set_datasn(r.r2tsn);
            b.set_buffer_offset(r.offset);
            b.set_residual(r.len);
            self.queue(OutPdu {
                bhs: b,
                data: Bytes::new(),
                sn: Sn::Peek,
            });
        }
    }

    // ----- budget -------------------------------------------------------------------------

    fn reserve(&mut self, n: u64) -> bool {
        if self.used + n > self.limits.session_buffers {
            return false;
        }
        if !self.pool.try_reserve(n) {
            return false;
        }
        self.used += n;
        true
    }

    fn release(&mut self, n: u64) {
        if n > 0 {
            self.used = self.used.saturating_sub(n);
            self.pool.release(n);
        }
    }

    fn arm_budget_retry(&mut self, now: Instant) {
        if self.budget_retry.is_none() {
            self.budget_retry = Some(now + Duration::from_millis(2));
        }
    }

    /// How many more commands the window may admit given the session budget: each may
    /// bring unsolicited data up to FirstBurstLength.
    fn budget_slots(&self) -> u32 {
        let p = &self.params;
        if !p.immediate_data && p.initial_r2t {
            return u32::MAX;
        }
        let per = u64::from(
            p.first_burst_length
                .min(p.target_mrdsl.max(p.first_burst_length))
                .max(1),
        );
        let free = self.limits.session_buffers.saturating_sub(self.used);
        u32::try_from(free / per).unwrap_or(u32::MAX)
    }

    /// The global budget may have room again (call when the retry timer fires).
    fn grant_budget(&mut self, now: Instant) {
        self.budget_retry = None;
        while let Some(&id) = self.budget_wait.front() {
            let Some(t) = self.tasks.get(&id) else {
                self.budget_wait.pop_front();
                continue;
            };
            let need = match &t.stage {
                Stage::Data(w) => u64::from(w.edtl()),
                Stage::Ready(_) => u64::from(t.expected_in),
                _ => 0,
            };
            if need > 0 && !self.reserve(need) {
                self.arm_budget_retry(now);
                return;
            }
            self.budget_wait.pop_front();
            let t = self.tasks.get_mut(&id).expect("present");
            t.reserved += need;
            match &mut t.stage {
                Stage::Data(w) => {
                    let early = w.early_bytes() as u64;
                    w.install(vec![0u8; w.edtl() as usize]);
                    // The early data now lives in the reserved buffer.
                    self.used = self.used.saturating_sub(early);
                    self.progress_write(now, id);
                }
                Stage::Ready(_) if t.delivered => {
                    self.ready.insert((t.seq, id));
                }
                _ => {}
            }
        }
    }

    // ----- starting, completing, answering ------------------------------------------------

    /// Grants budget and starts every task that can start.
    fn kick(&mut self, now: Instant) {
        if !self.budget_wait.is_empty() {
            self.grant_budget(now);
        }
        if self.ready.is_empty() {
            return;
        }
        let ready: Vec<(u64, TaskId)> = self.ready.iter().copied().collect();
        for (seq, id) in ready {
            if self.may_start(id) {
                self.ready.remove(&(seq, id));
                self.start(now, id);
            } else if self.ordered == 0 {
                // Only budget holds it back, and the budget queue is in order.
                break;
            }
        }
    }

    /// Task attribute rules (SAM-5 §8): ORDERED waits for every earlier task and holds
    /// back every later one; HEAD OF QUEUE goes first.
    fn may_start(&self, id: TaskId) -> bool {
        let Some(t) = self.tasks.get(&id) else {
            return false;
        };
        if t.attr == TaskAttr::HeadOfQueue || self.ordered == 0 {
            return true;
        }
        !self.tasks.values().any(|o| {
            o.delivered
                && o.seq < t.seq
                && matches!(o.stage, Stage::Ready(_) | Stage::Executing | Stage::Data(_))
                && (t.attr == TaskAttr::Ordered || o.attr == TaskAttr::Ordered)
                && o.attr != TaskAttr::HeadOfQueue
        })
    }

    fn start(&mut self, now: Instant, id: TaskId) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        if let Some(resp) = t.preset.take() {
            self.answer(id, resp);
            return;
        }
        if t.expected_in > 0 && t.reserved == 0 {
            let need = u64::from(t.expected_in);
            if self.budget_wait.is_empty() && self.reserve(need) {
                self.tasks.get_mut(&id).expect("present").reserved = need;
            } else {
                self.budget_wait.push_back(id);
                self.arm_budget_retry(now);
                return;
            }
        }
        let t = self.tasks.get_mut(&id).expect("present");
        let data_out = match std::mem::replace(&mut t.stage, Stage::Executing) {
            Stage::Ready(data) => data,
            _ => Vec::new(),
        };
        self.actions.push_back(Action::Execute(Exec {
            task: id,
            lun: t.lun,
            cdb: t.cdb.clone(),
            data_out,
            expected_in: t.expected_in,
            received: t.received,
            attr: t.attr,
        }));
    }

    /// A command finished in the SCSI core.
    pub fn on_completion(&mut self, now: Instant, id: TaskId, c: Completion) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        if !matches!(t.stage, Stage::Executing) {
            return;
        }
        // Write data is gone with the command: its budget is free.
        if t.expected_in == 0 {
            let n = std::mem::take(&mut t.reserved);
            self.release(n);
        }
        let t = self.tasks.get(&id).expect("present");
        if t.aborted.is_some() || self.closed {
            self.retire(id);
        } else {
            let resp = match c {
                Completion::Done(r) => r,
                Completion::Aborted => ScsiResponse::status(status::TASK_ABORTED),
            };
            self.answer(id, resp);
        }
        self.kick(now);
    }

    /// Queues a task's answer.
    fn answer(&mut self, id: TaskId, resp: ScsiResponse) {
        let shape = self.shape();
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        t.stage = Stage::Answering;
        let a = Answer::new(t.itt, t.lun_raw, t.expected_in, t.edtl, resp, shape);
        self.out_bytes += a.pending_bytes() + crate::iscsi::wire::BHS_LEN;
        self.outq.push_back(Out::Answer(id, Box::new(a)));
    }

    /// Ends a task before it ran, with `resp` (a protocol error, a timeout).
    fn answer_now(&mut self, id: TaskId, resp: ScsiResponse) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        let n = std::mem::take(&mut t.reserved);
        if let Some(sn) = t.cmdsn
            && !t.delivered
        {
            self.undelivered.remove(&sn);
        }
        self.ready.remove(&(t.seq, id));
        self.budget_wait.retain(|x| *x != id);
        self.release(n);
        self.answer(id, resp);
    }

    /// Removes a task: its window slot and budget are free again.
    fn retire(&mut self, id: TaskId) {
        let Some(t) = self.tasks.remove(&id) else {
            return;
        };
        if self.by_itt.get(&t.itt) == Some(&id) {
            self.by_itt.remove(&t.itt);
        }
        if let Some(sn) = t.cmdsn
            && !t.delivered
            && self.undelivered.get(&sn) == Some(&id)
        {
            self.undelivered.remove(&sn);
        }
        if t.holds_slot {
            self.window.free_slot();
        }
        if t.cmdsn.is_none() {
            self.immediate = self.immediate.saturating_sub(1);
        }
        if t.attr == TaskAttr::Ordered {
            self.ordered = self.ordered.saturating_sub(1);
        }
        if let Stage::Data(w) = &t.stage {
            self.used = self.used.saturating_sub(w.early_bytes() as u64);
        }
        self.ready.remove(&(t.seq, id));
        self.budget_wait.retain(|x| *x != id);
        self.release(t.reserved);
    }

    // ----- NOP, Text, Logout ----------------------------------------------------------------

    fn nop_out(&mut self, bhs: &Bhs, mut data: Vec<u8>) {
        if bhs.ttt() != RESERVED_TAG || bhs.itt() == RESERVED_TAG {
            // The answer to our ping (any PDU already proved the initiator alive), or a
            // ping that wants no answer.
            return;
        }
        data.truncate(self.params.initiator_mrdsl as usize);
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_flags(0x80);
        b.set_lun_raw(bhs.lun_raw());
        b.set_itt(bhs.itt());
        b.set_ttt(RESERVED_TAG);
        self.queue(OutPdu::status(b, Bytes::from(data)));
    }

    fn text_request(&mut self, bhs: &Bhs, data: &[u8], dir: &dyn Directory) {
        let cont = bhs.flags() & 0x40 != 0;
        let res = self.text.request(
            (bhs.itt(), bhs.ttt(), cont),
            data,
            (self.params.initiator_mrdsl as usize, self.limits.max_text),
            dir,
        );
        match res {
            Err(reason) => self.reject(bhs, reason),
            Ok(r) => {
                let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
                b.set_flags(if r.fin { 0x80 } else { 0 } | if r.cont { 0x40 } else { 0 });
                b.set_lun_raw(bhs.lun_raw());
                b.set_itt(bhs.itt());
                b.set_ttt(r.ttt);
                self.queue(OutPdu::status(b, Bytes::from(r.data)));
            }
        }
    }

    fn logout_request(&mut self, now: Instant, bhs: &Bhs) {
        let reason = bhs.flags() & 0x7f;
        let response = match reason {
            logout::CLOSE_SESSION => logout::RESP_OK,
            logout::CLOSE_CONNECTION if bhs.u16_at(20) == self.cid => logout::RESP_OK,
            logout::CLOSE_CONNECTION => logout::RESP_CID_NOT_FOUND,
            _ => logout::RESP_RECOVERY_UNSUPPORTED,
        };
        if response != logout::RESP_OK {
            self.logout_response(bhs.itt(), response);
            return;
        }
        self.logout = Some(LogoutState {
            itt: bhs.itt(),
            deadline: now + self.limits.logout_timeout,
        });
        self.ask_deadline = None;
        self.check_logout(now);
    }

    fn logout_response(&mut self, itt: u32, response: u8) {
        let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
        b.set_flags(0x80);
        b.0[2] = response;
        b.set_itt(itt);
        self.queue(OutPdu::status(b, Bytes::new()));
    }

    /// Answers a pending logout once no command is left (commands waiting for data get
    /// until the logout deadline; running ones always finish first).
    fn check_logout(&mut self, now: Instant) {
        let Some((itt, deadline)) = self.logout.as_ref().map(|l| (l.itt, l.deadline)) else {
            return;
        };
        if now >= deadline {
            let waiting: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.stage, Stage::Data(_) | Stage::Ready(_)))
                .map(|(id, _)| *id)
                .collect();
            for id in waiting {
                self.retire(id);
            }
        }
        if !self.tasks.is_empty() {
            return;
        }
        self.logout = None;
        self.logout_response(itt, logout::RESP_OK);
        self.outq.push_back(Out::Close(CloseReason::Logout));
    }

    /// The daemon ends the session.
    pub fn on_kill(&mut self, now: Instant, kill: Kill) {
        if self.closed {
            return;
        }
        match kill {
            Kill::Now(why) => self.close(CloseReason::Killed(why), false),
            Kill::AskLogout(why) => {
                if self.logout.is_some() || self.ask_deadline.is_some() {
                    return;
                }
                tracing::debug!("asking the initiator to log out: {why}");
                let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
                b.set_flags(0x80);
                b.set_itt(RESERVED_TAG);
                b.0[36] = async_event::REQUEST_LOGOUT;
                let secs = self.limits.logout_grace.as_secs().clamp(1, 3600) as u16;
                b.set_u16_at(42, secs); // Parameter3: seconds to log out
                self.queue(OutPdu::status(b, Bytes::new()));
                self.ask_deadline = Some(now + self.limits.logout_grace + Duration::from_secs(2));
            }
        }
    }

    // ----- time and output --------------------------------------------------------------------

    /// The earliest time [`Session::on_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        at(self.pdu_deadline);
        at(self.send_since.map(|s| s + self.limits.send_timeout));
        at(self.budget_retry);
        at(self.ask_deadline);
        at(self.logout.as_ref().map(|l| l.deadline));
        if let Some(iv) = self.limits.nop_interval {
            at(Some(match self.ping {
                Some((_, sent)) => sent + self.limits.nop_timeout,
                None => self.last_rx + iv,
            }));
        }
        for task in self.tasks.values() {
            if let Stage::Data(w) = &task.stage
                && w.waiting_for_initiator()
            {
                at(Some(w.last_progress() + self.limits.data_timeout));
            }
        }
        t
    }

    /// Time passed: runs whatever timer is due.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.pdu_deadline.is_some_and(|d| now >= d) {
            return self.close(CloseReason::PduTimeout, false);
        }
        if self
            .send_since
            .is_some_and(|s| now >= s + self.limits.send_timeout)
        {
            return self.close(CloseReason::SendTimeout, false);
        }
        if self.ask_deadline.is_some_and(|d| now >= d) {
            return self.close(CloseReason::LogoutTimeout, false);
        }
        if let Some(iv) = self.limits.nop_interval {
            match self.ping {
                Some((_, sent)) if now >= sent + self.limits.nop_timeout => {
                    return self.close(CloseReason::NopTimeout, false);
                }
                None if now >= self.last_rx + iv => {
                    let ttt = Self::new_ttt(&mut self.next_ttt);
                    let mut b = Bhs::new(Opcode::NOP_IN);
                    b.set_flags(0x80);
                    b.set_itt(RESERVED_TAG);
                    b.set_ttt(ttt);
                    self.queue(OutPdu {
                        bhs: b,
                        data: Bytes::new(),
                        sn: Sn::Peek,
                    });
                    self.ping = Some((ttt, now));
                }
                _ => {}
            }
        }
        let stalled: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                matches!(&t.stage, Stage::Data(w)
                    if w.waiting_for_initiator() && now >= w.last_progress() + self.limits.data_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            tracing::warn!(
                itt = self.tasks[&id].itt,
                "write data stopped arriving: the command ends"
            );
            self.answer_now(id, ScsiResponse::check(DATA_TIMEOUT));
        }
        if self.budget_retry.is_some_and(|r| now >= r) {
            self.grant_budget(now);
        }
        if self.logout.is_some() {
            self.check_logout(now);
        }
        self.kick(now);
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next PDU to send, with its sequence numbers filled in. The driver takes PDUs
    /// only as fast as the socket accepts them; that is what frees window slots and
    /// budget (a command's slot is free once its status is taken here).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<OutPdu> {
        loop {
            let front = self.outq.front_mut()?;
            let (mut pdu, done) = match front {
                Out::Pdu(_) => {
                    let Some(Out::Pdu(p)) = self.outq.pop_front() else {
                        unreachable!()
                    };
                    (p, None)
                }
                Out::Answer(id, a) => {
                    let id = *id;
                    match a.next_pdu() {
                        Some((p, last)) => {
                            if last {
                                self.outq.pop_front();
                            }
                            (p, last.then_some(id))
                        }
                        None => {
                            self.outq.pop_front();
                            continue;
                        }
                    }
                }
                Out::Close(_) => {
                    let Some(Out::Close(reason)) = self.outq.pop_front() else {
                        unreachable!()
                    };
                    self.close(reason, true);
                    return None;
                }
            };
            self.out_bytes = self
                .out_bytes
                .saturating_sub(pdu.data.len() + crate::iscsi::wire::BHS_LEN);
            if let Some(id) = done {
                self.retire(id);
                self.kick(now);
                if self.logout.is_some() {
                    self.check_logout(now);
                }
            }
            match pdu.sn {
                Sn::Status => {
                    pdu.bhs.set_statsn(self.statsn);
                    self.statsn = self.statsn.wrapping_add(1);
                }
                Sn::Peek => {
                    pdu.bhs.set_statsn(self.statsn);
                }
                Sn::None => {}
            }
            let max = self.window.advertise(self.budget_slots());
            pdu.bhs
                .set_exp_cmdsn(self.window.exp_cmdsn())
                .set_max_cmdsn(max);
            pdu.bhs.set_data_segment_len(pdu.data.len());
            if self.send_since.is_none() {
                self.send_since = Some(now);
            }
            return Some(pdu);
        }
    }

    /// The driver wrote to the socket: progress was made; `idle` when nothing it took is
    /// left unsent (the send-stall timer stops).
    pub fn on_sent(&mut self, now: Instant, idle: bool) {
        self.send_since = if idle && self.outq.is_empty() {
            None
        } else {
            Some(now)
        };
    }

    /// The stream broke (header digest error, peer closed, I/O error).
    pub fn on_broken(&mut self, why: String) {
        self.close(CloseReason::Protocol(why), false);
    }
}
