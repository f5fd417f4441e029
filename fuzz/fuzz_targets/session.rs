//! The full feature phase state machine (`iscsi::session::Session`, sans-IO) fed arbitrary
//! sequences of events: PDUs (header + data segment, through `on_header`/`on_data` as the
//! framer hands them over), command completions in any order (or aborted), TMF answers,
//! time steps (time is an argument), output taken as the socket would, kills.
//!
//! Invariants checked on what comes out, not only the absence of panics:
//! StatSN grows by one per status PDU; ExpCmdSN and MaxCmdSN never move back and
//! MaxCmdSN >= ExpCmdSN - 1; no data segment exceeds the initiator's
//! MaxRecvDataSegmentLength; a status goes only to an ITT that sent a command, at most
//! once per command; no Execute follows a Close in the same batch of actions (the driver
//! carries out a whole batch); a write starts with exactly EDTL bytes of data; the
//! daemon-wide buffer pool never exceeds its limit.
//!
//! Like the driver (`server::drive`), the harness stops feeding events once it has seen
//! Close. `SESSION_STRICT_CLOSE=1` keeps feeding them and fails on any Execute after
//! Close: a closed session still starts held commands when a running one completes
//! (`fuzz/reproducers/session-start-after-close`).
//!
//! Input: parameter bytes (see `setup`), then events, each a selector byte and its fields.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rustiscsi::iscsi::login::{Offer, Params};
use rustiscsi::iscsi::session::budget::BufferPool;
use rustiscsi::iscsi::session::datain::{OutPdu, Sn};
use rustiscsi::iscsi::session::text::Directory;
use rustiscsi::iscsi::session::{
    Action, Completion, Kill, Limits, Session, Start, TaskId, TmfId,
};
use rustiscsi::iscsi::wire::framer::{DataSink, Header};
use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi::iscsi::wire::{Bhs, Opcode};
use rustiscsi::scsi::ScsiResponse;
use rustiscsi::scsi::sense::Sense;
use rustiscsi_fuzz::Cursor;

struct Dir;

impl Directory for Dir {
    fn send_targets(&self, value: &str) -> TextPairs {
        let mut t = TextPairs::default();
        if value == "All" || value.is_empty() {
            t.push("TargetName", "iqn.2026-11.org.example:fuzz");
            t.push("TargetAddress", "127.0.0.1:3260,1");
        }
        t
    }
}

fn sn_lt(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// What the checks remember.
#[derive(Default)]
struct Seen {
    statsn: Option<u32>,
    exp: Option<u32>,
    max: Option<u32>,
    /// Commands received minus statuses sent, per ITT.
    open: HashMap<u32, i64>,
    /// EDTL and W bit of the commands received, by CDB.
    by_cdb: HashMap<[u8; 16], Vec<(u32, bool)>>,
    mrdsl: usize,
}

impl Seen {
    fn sent(&mut self, p: &OutPdu) {
        let b = &p.bhs;
        assert_eq!(b.data_segment_len(), p.data.len(), "DataSegmentLength");
        assert!(
            p.data.len() <= self.mrdsl,
            "{:?} data segment of {} bytes, initiator MRDSL {}",
            b.opcode(),
            p.data.len(),
            self.mrdsl
        );
        if p.sn == Sn::Status {
            if let Some(prev) = self.statsn {
                assert_eq!(b.statsn(), prev.wrapping_add(1), "StatSN sequence");
            }
            self.statsn = Some(b.statsn());
        }
        let (exp, max) = (b.exp_statsn(), b.max_cmdsn());
        assert!(!sn_lt(max, exp.wrapping_sub(1)), "MaxCmdSN {max} < ExpCmdSN {exp} - 1");
        if let Some(e) = self.exp {
            assert!(!sn_lt(exp, e), "ExpCmdSN went back from {e} to {exp}");
        }
        if let Some(m) = self.max {
            assert!(!sn_lt(max, m), "MaxCmdSN went back from {m} to {max}");
        }
        self.exp = Some(exp);
        self.max = Some(max);
        let status = b.opcode() == Opcode::SCSI_RESPONSE
            || (b.opcode() == Opcode::DATA_IN && b.flags() & 0x01 != 0);
        if status {
            let n = self.open.entry(b.itt()).or_default();
            *n -= 1;
            assert!(*n >= 0, "a status for ITT {:#x} without a command to answer", b.itt());
        }
    }
}

fn setup(c: &mut Cursor) -> (Start, Limits) {
    let f = c.u8();
    let mut params = Params::defaults(&Offer::default());
    params.immediate_data = f & 1 != 0;
    params.initial_r2t = f & 2 != 0;
    params.first_burst_length = 512 << (c.u8() % 8);
    params.max_burst_length = params.first_burst_length.max(512 << (c.u8() % 10));
    params.initiator_mrdsl = 512 << (c.u8() % 8);
    params.target_mrdsl = 8192;
    params.max_outstanding_r2t = 1 + u32::from(c.u8() % 4);
    let start = Start {
        params,
        discovery: f & 4 != 0,
        cid: 0,
        exp_cmdsn: u32::from_be_bytes(c.array()),
        statsn: u32::from_be_bytes(c.array()),
    };
    let limits = Limits {
        queue_depth: 1 + u32::from(c.u8() % 16),
        max_immediate: 1 + u32::from(c.u8() % 4),
        nop_interval: (f & 8 != 0).then_some(Duration::from_secs(2)),
        nop_timeout: Duration::from_secs(3),
        pdu_timeout: Duration::from_secs(5),
        send_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(10),
        logout_timeout: Duration::from_secs(2),
        logout_grace: Duration::from_secs(1),
        session_buffers: 256 * 1024 << (c.u8() % 4),
        max_outbound: 64 * 1024,
        max_transfer: 1 << 20,
        max_text: 16 * 1024,
    };
    (start, limits)
}

fn strict_close() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("SESSION_STRICT_CLOSE").is_some())
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let (start, limits) = setup(&mut c);
    let mut seen = Seen {
        mrdsl: start.params.initiator_mrdsl.max(512) as usize,
        ..Default::default()
    };
    let pool = Arc::new(BufferPool::new(limits.session_buffers * 2));
    let mut now = Instant::now();
    let mut s = Session::new(start, limits, pool.clone(), now);
    let mut running: Vec<(TaskId, u32)> = Vec::new();
    let mut tmfs: Vec<TmfId> = Vec::new();
    let mut closed = false;
    for _ in 0..96 {
        if c.is_empty() || (closed && !strict_close()) {
            break;
        }
        match c.u8() % 8 {
            0..=2 => {
                let mut b = Bhs(c.array::<48>());
                let len = usize::from(c.u16()) % 9000;
                b.set_data_segment_len(len);
                if b.opcode() == Opcode::SCSI_COMMAND {
                    *seen.open.entry(b.itt()).or_default() += 1;
                    let cdb: [u8; 16] = b.0[32..48].try_into().unwrap();
                    let w = b.flags() & 0x20 != 0;
                    seen.by_cdb.entry(cdb).or_default().push((b.edtl(), w));
                }
                let payload = c.take(len).to_vec();
                let digest_ok = c.u8() != 0xff;
                s.on_receiving(now);
                let sink = s.on_header(now, &Header { bhs: b, ahs: Vec::new() });
                let buf = match sink {
                    DataSink::Discard => None,
                    DataSink::Into { mut buf, at } => {
                        assert!(buf.len() >= at + len, "sink smaller than the segment");
                        buf[at..at + payload.len()].copy_from_slice(&payload);
                        Some(buf)
                    }
                };
                s.on_data(now, buf, digest_ok, &Dir);
            }
            3 if !running.is_empty() => {
                let (id, expected_in) = running.swap_remove(usize::from(c.u8()) % running.len());
                let how = c.u8();
                let done = match how % 4 {
                    0 => Completion::Aborted,
                    1 => Completion::Done(ScsiResponse::check(Sense::new(5, 0x24, 0))),
                    _ => Completion::Done(ScsiResponse::good(Bytes::from(vec![
                        0x5a;
                        (expected_in as usize)
                            .min(usize::from(c.u16()))
                    ]))),
                };
                s.on_completion(now, id, done);
            }
            4 if !tmfs.is_empty() => {
                let id = tmfs.swap_remove(0);
                s.on_tmf_done(now, id, [0u8, 1, 5][usize::from(c.u8() % 3)]);
            }
            5 => {
                now += Duration::from_millis(u64::from(c.u16()) * 4);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.on_timeout(now);
                }
            }
            6 => {
                for _ in 0..=c.u8() % 16 {
                    match s.poll_transmit(now) {
                        Some(p) => seen.sent(&p),
                        None => break,
                    }
                }
                s.on_sent(now, c.u8() & 1 == 0);
            }
            7 => match c.u8() % 3 {
                0 => s.on_kill(now, Kill::Now("fuzz".into())),
                1 => s.on_kill(now, Kill::AskLogout("fuzz".into())),
                _ => s.on_broken("fuzz".into()),
            },
            _ => {}
        }
        while let Some(a) = s.poll_action() {
            match a {
                Action::Execute(e) => {
                    assert!(!closed, "a command started after Close");
                    let cdb: [u8; 16] = e.cdb[..16.min(e.cdb.len())]
                        .iter()
                        .copied()
                        .chain(std::iter::repeat(0))
                        .take(16)
                        .collect::<Vec<_>>()
                        .try_into()
                        .unwrap();
                    if let Some([(edtl, w)]) = seen.by_cdb.get(&cdb).map(|v| v.as_slice()) {
                        let want = if *w { *edtl as usize } else { 0 };
                        assert_eq!(e.data_out.len(), want, "Data-Out handed to the SCSI core");
                    }
                    running.push((e.task, e.expected_in));
                }
                Action::Abort { tmf, .. } => tmfs.push(tmf),
                Action::Close { .. } => closed = true,
            }
        }
        assert!(pool.used() <= pool.limit(), "buffer pool over its limit");
    }
    while let Some(p) = s.poll_transmit(now) {
        seen.sent(&p);
    }
});
