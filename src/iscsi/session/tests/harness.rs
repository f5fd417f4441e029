//! The test initiator and driver.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::super::budget::BufferPool;
use super::super::text::Directory;
use super::super::{Action, CloseReason, Completion, Exec, Limits, Session, Start, TaskId};
use crate::iscsi::login::{Offer, Params};
use crate::iscsi::wire::framer::{DataSink, Header};
use crate::iscsi::wire::text::TextPairs;
use crate::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use crate::scsi::ScsiResponse;

pub struct Dir;
impl Directory for Dir {
    fn send_targets(&self, _: &str) -> TextPairs {
        let mut t = TextPairs::default();
        t.push("TargetName", "iqn.2026-11.org.example:t");
        t.push("TargetAddress", "127.0.0.1:3260,1");
        t
    }
}

/// A PDU the session sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub bhs: Bhs,
    pub data: Bytes,
}

impl Sent {
    pub fn op(&self) -> Opcode {
        self.bhs.opcode()
    }
}

pub struct H {
    pub s: Session,
    pub now: Instant,
    pub sent: Vec<Sent>,
    pub execs: VecDeque<Exec>,
    pub aborts: Vec<Action>,
    pub closed: Option<(CloseReason, bool)>,
    pub pool: Arc<BufferPool>,
    /// The driver takes what the session sends (false: a peer that never reads).
    pub reading_peer: bool,
    pub cmdsn: u32,
}

pub fn params() -> Params {
    let mut p = Params::defaults(&Offer::default());
    p.initiator_mrdsl = 262_144;
    p.target_mrdsl = 262_144;
    p.max_burst_length = 1 << 20;
    p.first_burst_length = 262_144;
    p.initial_r2t = false;
    p.immediate_data = true;
    p.max_outstanding_r2t = 2;
    p
}

impl H {
    pub fn new() -> H {
        Self::with(params(), Limits::default())
    }

    pub fn with(params: Params, limits: Limits) -> H {
        Self::with_pool(params, limits, Arc::new(BufferPool::new(1 << 30)))
    }

    pub fn with_pool(params: Params, limits: Limits, pool: Arc<BufferPool>) -> H {
        let now = Instant::now();
        let s = Session::new(
            Start {
                params,
                discovery: false,
                cid: 1,
                exp_cmdsn: 1,
                statsn: 100,
            },
            limits,
            pool.clone(),
            now,
        );
        H {
            s,
            now,
            sent: Vec::new(),
            execs: VecDeque::new(),
            aborts: Vec::new(),
            closed: None,
            pool,
            reading_peer: true,
            cmdsn: 1,
        }
    }

    /// The next CmdSN the initiator would use (and advance).
    pub fn next_cmdsn(&mut self) -> u32 {
        let c = self.cmdsn;
        self.cmdsn = self.cmdsn.wrapping_add(1);
        c
    }

    /// Feeds one PDU (header + data, digest as given) and pumps.
    pub fn feed(&mut self, bhs: Bhs, data: &[u8], digest_ok: bool) {
        let mut bhs = bhs;
        bhs.set_data_segment_len(data.len());
        let sink = self.s.on_header(
            self.now,
            &Header {
                bhs,
                ahs: Vec::new(),
            },
        );
        let buf = match sink {
            DataSink::Discard => None,
            DataSink::Into { mut buf, at } => {
                buf[at..at + data.len()].copy_from_slice(data);
                Some(buf)
            }
        };
        self.s.on_data(self.now, buf, digest_ok, &Dir);
        self.pump();
    }

    pub fn send(&mut self, bhs: Bhs, data: &[u8]) {
        self.feed(bhs, data, true)
    }

    /// Collects actions and (for a reading peer) everything the session sends.
    pub fn pump(&mut self) {
        loop {
            let mut progress = false;
            while let Some(a) = self.s.poll_action() {
                progress = true;
                match a {
                    Action::Execute(e) => self.execs.push_back(e),
                    Action::Close { reason, flush } => self.closed = Some((reason, flush)),
                    a @ Action::Abort { .. } => self.aborts.push(a),
                }
            }
            if self.reading_peer {
                while let Some(p) = self.s.poll_transmit(self.now) {
                    progress = true;
                    self.sent.push(Sent {
                        bhs: p.bhs,
                        data: p.data,
                    });
                }
                self.s.on_sent(self.now, true);
            }
            if !progress {
                break;
            }
        }
    }

    /// Moves time on, runs due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        if self.s.poll_timeout().is_some_and(|t| t <= self.now) {
            self.s.on_timeout(self.now);
        }
        self.pump();
    }

    pub fn complete(&mut self, task: TaskId, resp: ScsiResponse) {
        self.s.on_completion(self.now, task, Completion::Done(resp));
        self.pump();
    }

    /// Completes the oldest executing command with GOOD (reads get `len` bytes of 0xab).
    pub fn complete_next(&mut self) -> Exec {
        let e = self.execs.pop_front().expect("an executing command");
        let data = vec![0xabu8; e.expected_in as usize];
        self.s.on_completion(
            self.now,
            e.task,
            Completion::Done(ScsiResponse::good(Bytes::from(data))),
        );
        self.pump();
        e
    }

    /// Sent PDUs with `op`, taken out of the record.
    pub fn take(&mut self, op: Opcode) -> Vec<Sent> {
        let (hit, rest): (Vec<Sent>, Vec<Sent>) = std::mem::take(&mut self.sent)
            .into_iter()
            .partition(|p| p.op() == op);
        self.sent = rest;
        hit
    }

    pub fn last_max_cmdsn(&self) -> u32 {
        self.sent.last().expect("something sent").bhs.max_cmdsn()
    }
}

/// A SCSI Command PDU.
pub fn cmd(itt: u32, cmdsn: u32, cdb: &[u8], flags: u8, edtl: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::SCSI_COMMAND);
    b.set_flags(flags);
    b.set_itt(itt);
    b.set_u32_at(20, edtl);
    b.set_u32_at(24, cmdsn);
    b.0[32..32 + cdb.len()].copy_from_slice(cdb);
    b
}

/// READ(10) of `blocks` 512-byte blocks.
pub fn read10(itt: u32, cmdsn: u32, lba: u32, blocks: u16) -> Bhs {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x28;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    cmd(
        itt,
        cmdsn,
        &cdb,
        0x80 | 0x40 | 0x01,
        u32::from(blocks) * 512,
    )
}

/// WRITE(10) of `blocks` blocks; `fin` is the F bit (no unsolicited Data-Out follows).
pub fn write10(itt: u32, cmdsn: u32, lba: u32, blocks: u16, fin: bool) -> Bhs {
    let mut cdb = [0u8; 10];
    cdb[0] = 0x2a;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&blocks.to_be_bytes());
    let f = if fin { 0x80 } else { 0 };
    cmd(itt, cmdsn, &cdb, f | 0x20 | 0x01, u32::from(blocks) * 512)
}

/// TEST UNIT READY.
pub fn tur(itt: u32, cmdsn: u32) -> Bhs {
    cmd(itt, cmdsn, &[0u8; 6], 0x81, 0)
}

pub fn data_out(itt: u32, ttt: u32, datasn: u32, offset: u32, fin: bool) -> Bhs {
    let mut b = Bhs::new(Opcode::DATA_OUT);
    b.set_flags(if fin { 0x80 } else { 0 });
    b.set_itt(itt);
    b.set_ttt(ttt);
    b.set_datasn(datasn);
    b.set_buffer_offset(offset);
    b
}

pub fn nop_out(itt: u32, cmdsn: u32, immediate: bool) -> Bhs {
    let mut b = Bhs::new(Opcode::NOP_OUT);
    b.set_flags(0x80);
    if immediate {
        b.0[0] |= 0x40;
    }
    b.set_itt(itt);
    b.set_ttt(RESERVED_TAG);
    b.set_u32_at(24, cmdsn);
    b
}

pub fn tmf(function: u8, itt: u32, cmdsn: u32, lun: u64, rtt: u32, refcmdsn: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::TMF_REQUEST);
    b.0[0] |= 0x40; // immediate
    b.set_flags(0x80 | function);
    b.set_lun_raw(crate::iscsi::wire::bhs::encode_lun(lun));
    b.set_itt(itt);
    b.set_ttt(rtt);
    b.set_u32_at(24, cmdsn);
    b.set_u32_at(32, refcmdsn);
    b
}

pub fn logout_req(itt: u32, cmdsn: u32) -> Bhs {
    let mut b = Bhs::new(Opcode::LOGOUT_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x80);
    b.set_itt(itt);
    b.set_u16_at(20, 1);
    b.set_u32_at(24, cmdsn);
    b
}

pub fn text_req(itt: u32, cmdsn: u32, ttt: u32, cont: bool) -> Bhs {
    let mut b = Bhs::new(Opcode::TEXT_REQUEST);
    b.set_flags(if cont { 0x40 } else { 0x80 });
    b.set_itt(itt);
    b.set_ttt(ttt);
    b.set_u32_at(24, cmdsn);
    b
}

/// The status byte of a SCSI Response or a status-carrying Data-In.
pub fn status_of(p: &Sent) -> u8 {
    p.bhs.0[3]
}

/// The sense key of a SCSI Response with sense data.
pub fn sense_key(p: &Sent) -> u8 {
    assert!(p.data.len() >= 4, "no sense data in {p:?}");
    p.data[4] & 0x0f
}

/// (ASC, ASCQ) of a SCSI Response with sense data.
pub fn asc(p: &Sent) -> (u8, u8) {
    (p.data[2 + 12], p.data[2 + 13])
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
