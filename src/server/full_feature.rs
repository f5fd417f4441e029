//! The full feature phase of one connection (RFC 7143 §4.2, ERL 0): the reader loop,
//! CmdSN window, write data assembly (immediate, unsolicited, R2T), command dispatch,
//! Data-In with status collapse, NOP, task management, text and logout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::ServerCtx;
use super::connection::LoggedIn;
use super::framing::{self, FramingError, Header};
use super::sessions::{Kill, SessionHandle};
use super::text::TextState;
use super::writer::{self, CmdWindow, OutPdu, Sn};
use crate::iscsi::login::Params;
use crate::iscsi::serial::sn_lt;
use crate::iscsi::wire::bhs::decode_lun;
use crate::iscsi::wire::codes::{RejectReason, async_event, logout, tmf};
use crate::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use crate::registry::Registry;
use crate::scsi::{self, ItNexus, ScsiCommand, ScsiResponse};

/// Largest write a single command may carry (VPD B0 advertises less).
const MAX_EDTL: u32 = crate::scsi::MAX_TRANSFER_BYTES;

/// Write data being collected for one command.
struct WriteTask {
    lun: u64,
    lun_raw: u64,
    cdb: Bytes,
    edtl: u32,
    buf: Vec<u8>,
    received: u32,
    unsolicited_end: u32,
    unsolicited_datasn: u32,
    next_r2t_offset: u32,
    r2tsn: u32,
    bursts: Vec<Burst>,
}

/// One R2T's solicited burst.
struct Burst {
    ttt: u32,
    offset: u32,
    len: u32,
    received: u32,
    datasn: u32,
}

/// A command executing in its own task.
struct Running {
    lun: u64,
    abort: AbortHandle,
}

type RunningMap = Arc<Mutex<HashMap<u32, Running>>>;

/// Why the reader stops.
enum Stop {
    /// Connection error or peer gone.
    Gone(String),
    /// Orderly end (logout, reinstatement, shutdown).
    Done,
}

impl From<FramingError> for Stop {
    fn from(e: FramingError) -> Self {
        Stop::Gone(e.to_string())
    }
}

struct Conn<'a> {
    ctx: &'a ServerCtx,
    registry: &'a Registry,
    session: Arc<SessionHandle>,
    nexus: Option<Arc<ItNexus>>,
    params: Params,
    window: Arc<CmdWindow>,
    tx: mpsc::UnboundedSender<OutPdu>,
    writes: HashMap<u32, WriteTask>,
    running: RunningMap,
    next_ttt: u32,
    ping: Option<(u32, Instant)>,
    text: TextState,
    local: SocketAddr,
    peer: SocketAddr,
    cid: u16,
}

/// Runs the full feature phase until the connection ends, then drains its commands.
pub(super) async fn run(
    l: LoggedIn<'_>,
    peer: SocketAddr,
    local: SocketAddr,
    ctx: &ServerCtx,
    registry: &Registry,
) {
    let LoggedIn {
        mut rd,
        wr,
        neg,
        statsn,
        reg,
        mut kill,
    } = l;
    let window = Arc::new(CmdWindow::new(neg.cmdsn, registry.config.iscsi.queue_depth));
    let (tx, rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer::run(
        wr,
        rx,
        window.clone(),
        statsn,
        neg.params.header_digest,
        neg.params.data_digest,
    ));
    let mut conn = Conn {
        ctx,
        registry,
        session: reg.handle.clone(),
        nexus: reg.handle.nexus.clone(),
        params: neg.params.clone(),
        window: window.clone(),
        tx,
        writes: HashMap::new(),
        running: Arc::new(Mutex::new(HashMap::new())),
        next_ttt: 1,
        ping: None,
        text: TextState::default(),
        local,
        peer,
        cid: neg.cid,
    };
    let stop = conn.read_loop(&mut rd, &mut kill).await;
    match &stop {
        Stop::Gone(why) => {
            tracing::info!(%peer, initiator = %reg.handle.key.initiator, tsih = reg.handle.tsih, "connection closed: {why}")
        }
        Stop::Done => {
            tracing::info!(%peer, initiator = %reg.handle.key.initiator, tsih = reg.handle.tsih, "session ended")
        }
    }
    // Pending write data will never arrive; running commands finish (bounded) so that
    // acknowledged writes are complete before the session disappears.
    for _ in conn.writes.drain() {
        window.complete();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while window.running() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(conn);
    let _ = writer.await;
    drop(reg);
}

impl Conn<'_> {
    fn send(&self, pdu: OutPdu) {
        let _ = self.tx.send(pdu);
    }

    fn reject(&self, bad: &Bhs, reason: RejectReason) {
        tracing::debug!(peer = %self.peer, opcode = ?bad.opcode(), ?reason, "reject");
        let mut b = Bhs::new(Opcode::REJECT);
        b.set_flags(0x80);
        b.0[2] = reason as u8;
        b.set_itt(RESERVED_TAG);
        self.send(OutPdu::status(b, Bytes::copy_from_slice(&bad.0)));
    }

    fn new_ttt(&mut self) -> u32 {
        let t = self.next_ttt;
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG {
            self.next_ttt = 1;
        }
        t
    }

    /// Accepts a non-immediate request only with the expected CmdSN (one connection per
    /// session, so TCP delivers them in order); others are out of the window: dropped.
    fn check_cmdsn(&self, bhs: &Bhs, task: bool) -> bool {
        if bhs.immediate() {
            if task {
                self.window.occupy();
            }
            return true;
        }
        let (exp, max) = self.window.current();
        if bhs.cmdsn() == exp && !sn_lt(max, exp) {
            self.window.advance(task);
            true
        } else {
            tracing::debug!(peer = %self.peer, cmdsn = bhs.cmdsn(), exp, max, "CmdSN outside the window: dropped");
            false
        }
    }

    async fn read_loop(
        &mut self,
        rd: &mut BufReader<OwnedReadHalf>,
        kill: &mut tokio::sync::watch::Receiver<Kill>,
    ) -> Stop {
        let d = &self.registry.config.daemon;
        let nop_interval = Duration::from_secs(d.nop_interval_secs as u64);
        let nop_timeout = Duration::from_secs(d.nop_timeout_secs.max(1) as u64);
        let mut shutdown = self.ctx.shutdown.clone();
        let mut closing: Option<Instant> = None;
        loop {
            let idle = if nop_interval.is_zero() {
                Duration::from_secs(3600)
            } else {
                match self.ping {
                    Some((_, sent)) => {
                        (sent + nop_timeout).saturating_duration_since(Instant::now())
                    }
                    None => nop_interval,
                }
            };
            let wait = closing.map(|c| c.saturating_duration_since(Instant::now()));
            let idle = wait.map_or(idle, |w| w.min(idle));
            enum Ev {
                Data,
                Eof,
                Idle,
                Kill,
                Shutdown,
                Err(std::io::Error),
            }
            let ev = tokio::select! {
                biased;
                k = kill.wait_for(|k| *k != Kill::No), if closing.is_none() || *kill.borrow() == Kill::No => {
                    match k.map(|k| *k) {
                        Ok(Kill::AccessRemoved) => Ev::Shutdown,
                        _ => Ev::Kill,
                    }
                }
                _ = shutdown.wait_for(|s| *s), if closing.is_none() => Ev::Shutdown,
                r = tokio::time::timeout(idle, rd.fill_buf()) => match r {
                    Err(_) => Ev::Idle,
                    Ok(Ok([])) => Ev::Eof,
                    Ok(Ok(_)) => Ev::Data,
                    Ok(Err(e)) => Ev::Err(e),
                },
            };
            match ev {
                Ev::Data => {
                    let h = match framing::read_header(rd, self.params.header_digest).await {
                        Ok(h) => h,
                        Err(e) => return e.into(),
                    };
                    self.ping = None;
                    match self.handle(h, rd).await {
                        Ok(true) => {}
                        Ok(false) => return Stop::Done,
                        Err(s) => return s,
                    }
                }
                Ev::Eof => return Stop::Gone("initiator closed the connection".into()),
                Ev::Err(e) => return Stop::Gone(e.to_string()),
                Ev::Kill => return Stop::Done,
                Ev::Shutdown => {
                    // Ask the initiator to log out; give it a moment, then close.
                    let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
                    b.set_flags(0x80);
                    b.set_itt(RESERVED_TAG);
                    b.0[36] = async_event::REQUEST_LOGOUT;
                    b.set_u16_at(42, 3); // Parameter3: seconds to log out
                    self.send(OutPdu::status(b, Bytes::new()));
                    closing = Some(Instant::now() + Duration::from_secs(3));
                }
                Ev::Idle => {
                    if closing.is_some_and(|c| Instant::now() >= c) {
                        return Stop::Done;
                    }
                    if nop_interval.is_zero() {
                        continue;
                    }
                    match self.ping {
                        Some((_, sent)) if sent.elapsed() >= nop_timeout => {
                            return Stop::Gone(format!(
                                "initiator did not answer a NOP-In within {}s",
                                nop_timeout.as_secs()
                            ));
                        }
                        Some(_) => {}
                        None => {
                            let ttt = self.new_ttt();
                            let mut b = Bhs::new(Opcode::NOP_IN);
                            b.set_flags(0x80);
                            b.set_itt(RESERVED_TAG);
                            b.set_ttt(ttt);
                            self.send(OutPdu {
                                bhs: b,
                                data: Bytes::new(),
                                sn: Sn::Peek,
                                close_after: false,
                            });
                            self.ping = Some((ttt, Instant::now()));
                        }
                    }
                }
            }
        }
    }

    /// Handles one PDU. `Ok(false)` ends the session in order.
    async fn handle(&mut self, h: Header, rd: &mut BufReader<OwnedReadHalf>) -> Result<bool, Stop> {
        let bhs = h.bhs;
        let dlen = bhs.data_segment_len();
        let dd = self.params.data_digest;
        if dlen > self.params.target_mrdsl as usize {
            framing::skip_data(rd, dlen, dd).await?;
            self.reject(&bhs, RejectReason::ProtocolError);
            return Ok(true);
        }
        let discovery = self.nexus.is_none();
        match bhs.opcode() {
            Opcode::SCSI_COMMAND if !discovery => self.scsi_command(&h, rd).await?,
            Opcode::DATA_OUT if !discovery => self.data_out(&bhs, rd).await?,
            Opcode::NOP_OUT => {
                let mut data = Vec::new();
                if !framing::read_data(rd, dlen, dd, &mut data).await? {
                    self.reject(&bhs, RejectReason::DataDigestError);
                    return Ok(true);
                }
                self.nop_out(&bhs, data);
            }
            Opcode::TEXT_REQUEST => {
                let mut data = Vec::new();
                if !framing::read_data(rd, dlen, dd, &mut data).await? {
                    self.reject(&bhs, RejectReason::DataDigestError);
                    return Ok(true);
                }
                if self.check_cmdsn(&bhs, false) {
                    self.text_request(&bhs, &data);
                }
            }
            Opcode::TMF_REQUEST if !discovery => {
                framing::skip_data(rd, dlen, dd).await?;
                if self.check_cmdsn(&bhs, false) {
                    return Ok(self.task_management(&bhs));
                }
            }
            Opcode::LOGOUT_REQUEST => {
                framing::skip_data(rd, dlen, dd).await?;
                if self.check_cmdsn(&bhs, false) {
                    return Ok(self.logout(&bhs).await);
                }
            }
            Opcode::SNACK_REQUEST | Opcode::LOGIN_REQUEST => {
                framing::skip_data(rd, dlen, dd).await?;
                self.reject(&bhs, RejectReason::ProtocolError);
            }
            Opcode::SCSI_COMMAND | Opcode::DATA_OUT | Opcode::TMF_REQUEST => {
                framing::skip_data(rd, dlen, dd).await?;
                self.reject(&bhs, RejectReason::ProtocolError);
            }
            _ => {
                framing::skip_data(rd, dlen, dd).await?;
                self.reject(&bhs, RejectReason::CommandNotSupported);
            }
        }
        Ok(true)
    }

    fn nop_out(&mut self, bhs: &Bhs, mut data: Vec<u8>) {
        if bhs.itt() == RESERVED_TAG && !bhs.immediate() {
            self.reject(bhs, RejectReason::ProtocolError);
            return;
        }
        if !self.check_cmdsn(bhs, false) {
            return;
        }
        if bhs.ttt() != RESERVED_TAG {
            // The answer to our ping.
            return;
        }
        if bhs.itt() == RESERVED_TAG {
            return;
        }
        data.truncate(self.params.initiator_mrdsl as usize);
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_flags(0x80);
        b.set_lun_raw(bhs.lun_raw());
        b.set_itt(bhs.itt());
        b.set_ttt(RESERVED_TAG);
        self.send(OutPdu::status(b, Bytes::from(data)));
    }

    async fn scsi_command(
        &mut self,
        h: &Header,
        rd: &mut BufReader<OwnedReadHalf>,
    ) -> Result<(), Stop> {
        let bhs = &h.bhs;
        let flags = bhs.flags();
        let (fin, read, write) = (flags & 0x80 != 0, flags & 0x40 != 0, flags & 0x20 != 0);
        let edtl = bhs.edtl();
        let dlen = bhs.data_segment_len() as u32;
        let dd = self.params.data_digest;
        let protocol_error = (dlen > 0 && (!write || !self.params.immediate_data))
            || dlen > edtl
            || dlen > self.params.first_burst_length
            || (!fin && (!write || self.params.initial_r2t));
        if protocol_error {
            framing::skip_data(rd, dlen as usize, dd).await?;
            self.reject(bhs, RejectReason::ProtocolError);
            return Ok(());
        }
        let itt = bhs.itt();
        let running = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&itt);
        if running || self.writes.contains_key(&itt) {
            framing::skip_data(rd, dlen as usize, dd).await?;
            self.reject(bhs, RejectReason::TaskInProgress);
            return Ok(());
        }
        if !self.check_cmdsn(bhs, true) {
            framing::skip_data(rd, dlen as usize, dd).await?;
            return Ok(());
        }
        let mut cdb = Vec::with_capacity(16);
        cdb.extend_from_slice(bhs.cdb());
        // Extended CDB AHS (type 1): the CDB bytes beyond 16.
        if h.ahs.len() >= 4 && h.ahs[2] == 1 {
            let len = (u16::from_be_bytes([h.ahs[0], h.ahs[1]]) as usize).saturating_sub(1);
            cdb.extend_from_slice(&h.ahs[4..(4 + len).min(h.ahs.len())]);
        }
        let cdb = Bytes::from(cdb);
        let lun_raw = bhs.lun_raw();
        let lun = decode_lun(lun_raw);
        if !write || edtl == 0 {
            framing::skip_data(rd, dlen as usize, dd).await?;
            self.dispatch(
                itt,
                lun,
                lun_raw,
                cdb,
                Vec::new(),
                if read { edtl } else { 0 },
                edtl,
            );
            return Ok(());
        }
        if edtl > MAX_EDTL {
            framing::skip_data(rd, dlen as usize, dd).await?;
            tracing::warn!(peer = %self.peer, edtl, "write larger than {MAX_EDTL} bytes refused");
            let resp = ScsiResponse {
                status: scsi::status::CHECK_CONDITION,
                sense: Some(scsi::sense::Sense {
                    key: 0x05,
                    asc: 0x24,
                    ascq: 0,
                    info: None,
                }),
                ..Default::default()
            };
            self.window.complete();
            send_response(
                &self.tx,
                &self.session,
                &self.params,
                itt,
                lun_raw,
                0,
                edtl,
                resp,
            );
            return Ok(());
        }
        let mut buf = Vec::with_capacity(edtl as usize);
        if !framing::read_data(rd, dlen as usize, dd, &mut buf).await? {
            self.window.complete();
            self.reject(bhs, RejectReason::DataDigestError);
            return Ok(());
        }
        SessionHandle::count(&self.session.counters.write_bytes, dlen as u64);
        let unsolicited_end = if fin {
            dlen
        } else {
            self.params.first_burst_length.min(edtl)
        };
        let task = WriteTask {
            lun,
            lun_raw,
            cdb,
            edtl,
            buf,
            received: dlen,
            unsolicited_end,
            unsolicited_datasn: 0,
            next_r2t_offset: unsolicited_end,
            r2tsn: 0,
            bursts: Vec::new(),
        };
        if task.received >= edtl {
            self.dispatch(itt, lun, lun_raw, task.cdb, task.buf, 0, edtl);
            return Ok(());
        }
        self.writes.insert(itt, task);
        self.issue_r2ts(itt);
        Ok(())
    }

    fn issue_r2ts(&mut self, itt: u32) {
        let max_r2t = self.params.max_outstanding_r2t.max(1) as usize;
        let burst = self.params.max_burst_length;
        loop {
            let ttt = self.next_ttt;
            let Some(t) = self.writes.get_mut(&itt) else {
                return;
            };
            if t.bursts.len() >= max_r2t || t.next_r2t_offset >= t.edtl {
                return;
            }
            let offset = t.next_r2t_offset;
            let len = burst.min(t.edtl - offset);
            let mut b = Bhs::new(Opcode::R2T);
            b.set_flags(0x80);
            b.set_lun_raw(t.lun_raw);
            b.set_itt(itt);
            b.set_ttt(ttt);
            b.set_datasn(t.r2tsn);
            b.set_buffer_offset(offset);
            b.set_residual(len);
            t.r2tsn += 1;
            t.next_r2t_offset += len;
            t.bursts.push(Burst {
                ttt,
                offset,
                len,
                received: 0,
                datasn: 0,
            });
            self.new_ttt();
            self.send(OutPdu {
                bhs: b,
                data: Bytes::new(),
                sn: Sn::Peek,
                close_after: false,
            });
        }
    }

    async fn data_out(&mut self, bhs: &Bhs, rd: &mut BufReader<OwnedReadHalf>) -> Result<(), Stop> {
        let dlen = bhs.data_segment_len() as u32;
        let dd = self.params.data_digest;
        let itt = bhs.itt();
        let ttt = bhs.ttt();
        let offset = bhs.buffer_offset();
        let Some(t) = self.writes.get_mut(&itt) else {
            // Data for a task that was aborted or never existed: discard silently.
            framing::skip_data(rd, dlen as usize, dd).await?;
            return Ok(());
        };
        let end = offset as u64 + dlen as u64;
        let valid = if ttt == RESERVED_TAG {
            end <= t.unsolicited_end as u64 && bhs.datasn() == t.unsolicited_datasn
        } else {
            t.bursts.iter().any(|b| {
                b.ttt == ttt
                    && offset >= b.offset
                    && end <= (b.offset + b.len) as u64
                    && bhs.datasn() == b.datasn
            })
        };
        if !valid {
            // A Data-Out outside its burst or with a wrong DataSN: reject it and fail the
            // command (the initiator fails the task on the Reject); the session goes on.
            framing::skip_data(rd, dlen as usize, dd).await?;
            tracing::debug!(peer = %self.peer, itt, ttt, datasn = bhs.datasn(), offset, "invalid Data-Out");
            self.writes.remove(&itt);
            self.window.complete();
            self.reject(bhs, RejectReason::ProtocolError);
            return Ok(());
        }
        // DataPDUInOrder=Yes: data normally arrives exactly at the end of the buffer.
        let ok = if offset as usize == t.buf.len() {
            framing::read_data(rd, dlen as usize, dd, &mut t.buf).await?
        } else {
            let mut tmp = Vec::with_capacity(dlen as usize);
            let ok = framing::read_data(rd, dlen as usize, dd, &mut tmp).await?;
            if t.buf.len() < end as usize {
                t.buf.resize(end as usize, 0);
            }
            t.buf[offset as usize..end as usize].copy_from_slice(&tmp);
            ok
        };
        if !ok {
            self.reject(bhs, RejectReason::DataDigestError);
            return Err(Stop::Gone("data digest error in Data-Out".into()));
        }
        SessionHandle::count(&self.session.counters.write_bytes, dlen as u64);
        t.received += dlen;
        let fin = bhs.final_bit();
        if ttt == RESERVED_TAG {
            t.unsolicited_datasn += 1;
        } else if let Some(i) = t.bursts.iter().position(|b| b.ttt == ttt) {
            let b = &mut t.bursts[i];
            b.received += dlen;
            b.datasn += 1;
            if fin || b.received >= b.len {
                t.bursts.swap_remove(i);
            }
        }
        if t.received >= t.edtl {
            let t = self.writes.remove(&itt).expect("present");
            self.dispatch(itt, t.lun, t.lun_raw, t.cdb, t.buf, 0, t.edtl);
        } else {
            self.issue_r2ts(itt);
        }
        Ok(())
    }

    /// Executes a command in its own task and queues its response.
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &self,
        itt: u32,
        lun: u64,
        lun_raw: u64,
        cdb: Bytes,
        data_out: Vec<u8>,
        expected_in: u32,
        edtl: u32,
    ) {
        let nexus = self.nexus.clone().expect("normal session");
        let tx = self.tx.clone();
        let session = self.session.clone();
        let params = self.params.clone();
        let window = self.window.clone();
        let running = self.running.clone();
        let mut map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let task = tokio::spawn(async move {
            let resp = scsi::execute(
                &nexus,
                ScsiCommand {
                    lun,
                    cdb,
                    data_out,
                    expected_in,
                },
            )
            .await;
            let mine = running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&itt)
                .is_some();
            if !mine {
                return; // aborted by task management: no response
            }
            window.complete();
            send_response(
                &tx,
                &session,
                &params,
                itt,
                lun_raw,
                expected_in,
                edtl,
                resp,
            );
        });
        map.insert(
            itt,
            Running {
                lun,
                abort: task.abort_handle(),
            },
        );
    }

    fn abort_where(&mut self, pred: impl Fn(u32, u64) -> bool) -> usize {
        let mut n = 0;
        let itts: Vec<u32> = self
            .writes
            .iter()
            .filter(|(i, t)| pred(**i, t.lun))
            .map(|(i, _)| *i)
            .collect();
        for i in itts {
            self.writes.remove(&i);
            self.window.complete();
            n += 1;
        }
        let mut map = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let itts: Vec<u32> = map
            .iter()
            .filter(|(i, r)| pred(**i, r.lun))
            .map(|(i, _)| *i)
            .collect();
        for i in itts {
            if let Some(r) = map.remove(&i) {
                r.abort.abort();
                self.window.complete();
                n += 1;
            }
        }
        n
    }

    fn task_management(&mut self, bhs: &Bhs) -> bool {
        let function = bhs.flags() & 0x7f;
        let lun = decode_lun(bhs.lun_raw());
        let nexus = self.nexus.clone().expect("normal session");
        let lun_exists = nexus.luns().iter().any(|m| m.lun == lun);
        let mut close = false;
        let response = match function {
            tmf::ABORT_TASK => {
                let rtt = bhs.ttt();
                // A task that already completed no longer exists (what libiscsi and
                // LIO expect); the RFC's "function complete" for a never-received
                // RefCmdSN cannot happen on a single in-order connection.
                if self.abort_where(|itt, _| itt == rtt) > 0 {
                    tmf::RESP_COMPLETE
                } else {
                    tmf::RESP_NO_TASK
                }
            }
            tmf::ABORT_TASK_SET | tmf::CLEAR_TASK_SET => {
                self.abort_where(|_, l| l == lun);
                tmf::RESP_COMPLETE
            }
            tmf::LOGICAL_UNIT_RESET if !lun_exists => tmf::RESP_NO_LUN,
            tmf::LOGICAL_UNIT_RESET => {
                self.abort_where(|_, l| l == lun);
                nexus.lun_reset(lun);
                tmf::RESP_COMPLETE
            }
            tmf::TARGET_WARM_RESET | tmf::TARGET_COLD_RESET => {
                self.abort_where(|_, _| true);
                nexus.target_reset();
                close = function == tmf::TARGET_COLD_RESET;
                tmf::RESP_COMPLETE
            }
            tmf::TASK_REASSIGN => tmf::RESP_REASSIGN_UNSUPPORTED,
            _ => tmf::RESP_NOT_SUPPORTED,
        };
        tracing::info!(peer = %self.peer, function, lun, response, "task management");
        let mut b = Bhs::new(Opcode::TMF_RESPONSE);
        b.set_flags(0x80);
        b.0[2] = response;
        b.set_itt(bhs.itt());
        self.send(OutPdu {
            bhs: b,
            data: Bytes::new(),
            sn: Sn::Status,
            close_after: close,
        });
        !close
    }

    fn text_request(&mut self, bhs: &Bhs, data: &[u8]) {
        let target = self.session.key.target.clone();
        let discovery = self.nexus.is_none();
        let pieces = self
            .text
            .respond(bhs, data, self.params.initiator_mrdsl as usize, || {
                super::text::send_targets(
                    self.registry,
                    &self.session.key.initiator,
                    self.peer,
                    self.local,
                    discovery,
                    &target,
                )
            });
        let (flags, ttt, body) = match pieces {
            Ok(x) => x,
            Err(reason) => {
                self.reject(bhs, reason);
                return;
            }
        };
        let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
        b.set_flags(flags);
        b.set_lun_raw(bhs.lun_raw());
        b.set_itt(bhs.itt());
        b.set_ttt(ttt);
        self.send(OutPdu::status(b, Bytes::from(body)));
    }

    async fn logout(&mut self, bhs: &Bhs) -> bool {
        let reason = bhs.flags() & 0x7f;
        let response = match reason {
            logout::CLOSE_SESSION => logout::RESP_OK,
            logout::CLOSE_CONNECTION if bhs.u16_at(20) == self.cid => logout::RESP_OK,
            logout::CLOSE_CONNECTION => logout::RESP_CID_NOT_FOUND,
            _ => logout::RESP_RECOVERY_UNSUPPORTED,
        };
        if response == logout::RESP_OK {
            // Commands already received complete before the session goes.
            let deadline = Instant::now() + Duration::from_secs(10);
            for _ in self.writes.drain() {
                self.window.complete();
            }
            while self.window.running() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
        b.set_flags(0x80);
        b.0[2] = response;
        b.set_itt(bhs.itt());
        let close = response == logout::RESP_OK;
        self.send(OutPdu {
            bhs: b,
            data: Bytes::new(),
            sn: Sn::Status,
            close_after: close,
        });
        !close
    }
}

/// Turns a SCSI response into Data-In PDUs (status collapsed into the last one when
/// possible) and/or a SCSI Response, and queues them.
#[allow(clippy::too_many_arguments)]
fn send_response(
    tx: &mpsc::UnboundedSender<OutPdu>,
    session: &SessionHandle,
    params: &Params,
    itt: u32,
    lun_raw: u64,
    expected_in: u32,
    edtl: u32,
    resp: ScsiResponse,
) {
    let c = &session.counters;
    c.commands.fetch_add(1, Ordering::Relaxed);
    if resp.status != scsi::status::GOOD {
        c.errors.fetch_add(1, Ordering::Relaxed);
    }
    let mut data = resp.data_in;
    // Residuals (RFC 7143 §11.4.5): against the expected Data-In length.
    let (mut res_flags, mut residual) = (0u8, 0u32);
    if data.len() > expected_in as usize {
        res_flags = 0x04; // O: overflow
        residual = (data.len() - expected_in as usize) as u32;
        data.truncate(expected_in as usize);
    } else if (data.len() as u32) < expected_in {
        res_flags = 0x02; // U: underflow
        residual = expected_in - data.len() as u32;
    }
    if expected_in == 0 && resp.data_out_len.is_some() {
        // A write: residual against the data the command actually transferred.
        let needed = resp.data_out_len.unwrap_or(edtl);
        if needed < edtl {
            res_flags = 0x02;
            residual = edtl - needed;
        } else if needed > edtl {
            res_flags = 0x04;
            residual = needed - edtl;
        }
    }
    let collapse = resp.sense.is_none() && resp.status == scsi::status::GOOD;
    let mut datasn = 0u32;
    if !data.is_empty() {
        SessionHandle::count(&c.read_bytes, data.len() as u64);
        let seg = params.initiator_mrdsl.max(512) as usize;
        let burst = params.max_burst_length.max(512) as usize;
        let total = data.len();
        let mut off = 0usize;
        while off < total {
            let burst_end = ((off / burst) + 1) * burst;
            let len = seg.min(total - off).min(burst_end - off);
            let last = off + len == total;
            let mut b = Bhs::new(Opcode::DATA_IN);
            let mut flags = 0u8;
            if last || off + len == burst_end {
                flags |= 0x80;
            }
            let mut sn = Sn::NoStatus;
            if last && collapse {
                flags |= 0x01 | res_flags;
                b.0[3] = resp.status;
                b.set_residual(residual);
                sn = Sn::Status;
            }
            b.set_flags(flags);
            b.set_lun_raw(lun_raw);
            b.set_itt(itt);
            b.set_ttt(RESERVED_TAG);
            b.set_datasn(datasn);
            b.set_buffer_offset(off as u32);
            datasn += 1;
            let _ = tx.send(OutPdu {
                bhs: b,
                data: data.slice(off..off + len),
                sn,
                close_after: false,
            });
            off += len;
        }
        if collapse {
            return;
        }
    }
    let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
    b.set_flags(0x80 | res_flags);
    b.0[2] = 0; // command completed at target
    b.0[3] = resp.status;
    b.set_itt(itt);
    b.set_datasn(datasn);
    b.set_residual(residual);
    let body = match resp.sense {
        Some(s) => {
            let fixed = s.to_fixed();
            let mut v = Vec::with_capacity(2 + fixed.len());
            v.extend_from_slice(&(fixed.len() as u16).to_be_bytes());
            v.extend_from_slice(&fixed);
            Bytes::from(v)
        }
        None => Bytes::new(),
    };
    let _ = tx.send(OutPdu::status(b, body));
}
