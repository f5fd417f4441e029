//! A lean asynchronous iSCSI initiator for the benchmarks (`datapath`, `sessions`):
//! login without authentication, READ(10)/WRITE(10) kept in flight at a queue depth,
//! R2T answered, NOP-In pings answered. No digests, no error recovery: a protocol
//! surprise panics (a benchmark must not report figures from a broken exchange).

#![allow(dead_code)] // each bench uses part of it

use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi::iscsi::wire::{Bhs, Opcode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Initiator name the benchmarks log in with.
pub const INITIATOR: &str = "iqn.2026-11.org.rustiscsi:bench";

/// One logged-in connection.
pub struct Ini {
    s: TcpStream,
    cmdsn: u32,
    itt: u32,
    exp_statsn: u32,
    /// Target's MaxRecvDataSegmentLength (the largest Data-Out we may send).
    target_mrdsl: usize,
    /// Immediate data we may send with a command (FirstBurstLength and MRDSL).
    first_burst: usize,
    lun: u64,
    /// Step between the slots of consecutive commands (1: sequential; a prime: scattered).
    stride: u64,
    scratch: Vec<u8>,
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// READ(10).
    Read,
    /// WRITE(10).
    Write,
}

async fn send(s: &mut TcpStream, b: &Bhs, data: &[u8]) {
    let mut b = *b;
    b.set_data_segment_len(data.len());
    let pad = data.len().div_ceil(4) * 4 - data.len();
    if data.len() <= 8192 {
        let mut out = Vec::with_capacity(48 + data.len() + pad);
        out.extend_from_slice(&b.0);
        out.extend_from_slice(data);
        out.resize(out.len() + pad, 0);
        s.write_all(&out).await.expect("send");
    } else {
        s.write_all(&b.0).await.expect("send");
        s.write_all(data).await.expect("send");
        s.write_all(&[0u8; 3][..pad]).await.expect("send");
    }
}

impl Ini {
    /// Connects to `addr` and logs in to `iqn` (session identifier from `isid`), using
    /// LUN `lun` for I/O.
    pub async fn login(addr: &str, iqn: &str, isid: u32, lun: u64) -> Ini {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.set_nodelay(true).ok();
        let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
        b.0[0] |= 0x40;
        b.set_flags(0x80 | 0x04 | 0x03); // straight to full feature phase, no authentication
        b.0[8..10].copy_from_slice(&[0x80, 0x00]);
        b.0[10..14].copy_from_slice(&isid.to_be_bytes());
        b.set_itt(0);
        b.set_cmdsn(1);
        let mut t = TextPairs::default();
        for (k, v) in [
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", iqn),
            ("HeaderDigest", "None"),
            ("DataDigest", "None"),
            ("MaxRecvDataSegmentLength", "262144"),
            ("FirstBurstLength", "262144"),
            ("MaxBurstLength", "1048576"),
            ("ImmediateData", "Yes"),
            ("InitialR2T", "No"),
            ("MaxOutstandingR2T", "1"),
        ] {
            t.push(k, v);
        }
        send(&mut s, &b, &t.encode()).await;
        let mut answers = TextPairs::default();
        let mut scratch = vec![0u8; 1 << 20];
        // Some targets (tgt) answer with declarations of their own first and transit only
        // on the next exchange.
        for _ in 0..4 {
            let (r, len) = recv(&mut s, &mut scratch).await;
            assert_eq!((r.0[36], r.0[37]), (0, 0), "login refused");
            if let Ok(p) = TextPairs::parse(&scratch[..len]) {
                answers.0.extend(p.0);
            }
            if r.flags() & 0x83 == 0x83 {
                let num = |k: &str, d: usize| {
                    answers
                        .get(k)
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(d)
                };
                let target_mrdsl = num("MaxRecvDataSegmentLength", 8192);
                let immediate = answers.get("ImmediateData") != Some("No");
                let first_burst = if immediate {
                    num("FirstBurstLength", 65536).min(target_mrdsl)
                } else {
                    0
                };
                return Ini {
                    s,
                    cmdsn: 1,
                    itt: 0,
                    exp_statsn: r.statsn().wrapping_add(1),
                    target_mrdsl,
                    first_burst,
                    lun,
                    stride: 1,
                    scratch,
                };
            }
            b.set_u16_at(14, r.u16_at(14));
            b.set_flags(0x80 | 0x04 | 0x03);
            send(&mut s, &b, &[]).await;
        }
        panic!("the target did not move to the full feature phase");
    }

    fn command(&mut self, op: Op, lba: u32, blocks: u16, bytes: u32) -> Bhs {
        self.itt = self.itt.wrapping_add(1);
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_flags(
            0x80 | match op {
                Op::Read => 0x40,
                Op::Write => 0x20,
            } | 0x01,
        );
        b.set_lun_raw(rustiscsi::iscsi::wire::bhs::encode_lun(self.lun));
        b.set_itt(self.itt);
        b.set_u32_at(20, bytes);
        b.set_cmdsn(self.cmdsn);
        b.set_exp_statsn(self.exp_statsn);
        self.cmdsn = self.cmdsn.wrapping_add(1);
        b.0[32] = match op {
            Op::Read => 0x28,
            Op::Write => 0x2a,
        };
        b.0[34..38].copy_from_slice(&lba.to_be_bytes());
        b.0[39..41].copy_from_slice(&blocks.to_be_bytes());
        b
    }

    /// Runs `count` commands of `bytes` each (512-byte blocks) at queue depth `qd`, at
    /// consecutive offsets wrapping within the first `span` bytes; `data` is what writes
    /// send. Returns the bytes moved.
    pub async fn run(
        &mut self,
        op: Op,
        bytes: u32,
        qd: u32,
        count: u64,
        span: u64,
        data: &[u8],
    ) -> u64 {
        self.run_until(op, bytes, qd, count, span, data, None).await
    }

    /// Like [`Ini::run`], but stops issuing at `deadline` (when given).
    #[allow(clippy::too_many_arguments)]
    pub async fn run_until(
        &mut self,
        op: Op,
        bytes: u32,
        qd: u32,
        count: u64,
        span: u64,
        data: &[u8],
        deadline: Option<std::time::Instant>,
    ) -> u64 {
        let blocks = (bytes / 512) as u16;
        let slots = (span / u64::from(bytes)).max(1);
        let (mut issued, mut done, mut moved) = (0u64, 0u64, 0u64);
        // ITT -> offset in `data` is not needed: every write sends the same data.
        while done < count {
            let more = deadline.is_none_or(|d| std::time::Instant::now() < d);
            while more && issued < count && issued - done < u64::from(qd) {
                let slot = issued.wrapping_mul(self.stride) % slots;
                let lba = (slot * u64::from(bytes) / 512) as u32;
                let b = self.command(op, lba, blocks, bytes);
                let imm = if op == Op::Write {
                    &data[..(bytes as usize).min(self.first_burst)]
                } else {
                    &[][..]
                };
                send(&mut self.s, &b, imm).await;
                issued += 1;
            }
            if issued == done {
                break; // deadline passed with nothing in flight
            }
            let (r, len) = recv(&mut self.s, &mut self.scratch).await;
            match r.opcode() {
                Opcode::DATA_IN => {
                    moved += len as u64;
                    if r.flags() & 0x01 != 0 {
                        assert_eq!(r.0[3], 0, "status of a read");
                        self.exp_statsn = r.statsn().wrapping_add(1);
                        done += 1;
                    }
                }
                Opcode::SCSI_RESPONSE => {
                    self.exp_statsn = r.statsn().wrapping_add(1);
                    if op == Op::Write && r.0[3] == 0 {
                        moved += u64::from(bytes);
                    }
                    // A CHECK CONDITION (a unit attention at first) just ends that command.
                    done += 1;
                }
                Opcode::R2T => {
                    let (itt, ttt) = (r.itt(), r.ttt());
                    let (off, want) = (r.buffer_offset() as usize, r.residual() as usize);
                    let mut sent = 0;
                    let mut datasn = 0;
                    while sent < want {
                        let n = (want - sent).min(self.target_mrdsl);
                        let mut d = Bhs::new(Opcode::DATA_OUT);
                        d.set_flags(if sent + n == want { 0x80 } else { 0 });
                        d.set_lun_raw(rustiscsi::iscsi::wire::bhs::encode_lun(self.lun));
                        d.set_itt(itt);
                        d.set_ttt(ttt);
                        d.set_exp_statsn(self.exp_statsn);
                        d.set_datasn(datasn);
                        d.set_buffer_offset((off + sent) as u32);
                        let at = off + sent;
                        send(&mut self.s, &d, &data[at..at + n]).await;
                        sent += n;
                        datasn += 1;
                    }
                }
                Opcode::NOP_IN => self.pong(&r).await,
                _ => {}
            }
        }
        moved
    }

    /// Waits for anything the target sends (an idle session), answering pings; returns
    /// when the connection closes.
    pub async fn idle(&mut self) {
        loop {
            let mut b = Bhs::default();
            if self.s.read_exact(&mut b.0).await.is_err() {
                return;
            }
            let len = b.data_segment_len().div_ceil(4) * 4;
            if self.s.read_exact(&mut self.scratch[..len]).await.is_err() {
                return;
            }
            if b.opcode() == Opcode::NOP_IN {
                self.pong(&b).await;
            }
        }
    }

    /// Answers a target's ping (a NOP-In with a target transfer tag).
    async fn pong(&mut self, ping: &Bhs) {
        if ping.ttt() == 0xffff_ffff {
            return;
        }
        let mut n = Bhs::new(Opcode::NOP_OUT);
        n.0[0] |= 0x40;
        n.set_flags(0x80);
        n.set_itt(0xffff_ffff);
        n.set_ttt(ping.ttt());
        n.set_cmdsn(self.cmdsn);
        n.set_exp_statsn(self.exp_statsn);
        send(&mut self.s, &n, &[]).await;
    }

    /// Visits the slots of the span `stride` apart (a prime scatters them).
    pub fn set_stride(&mut self, stride: u64) {
        self.stride = stride.max(1);
    }

    /// Shrinks the receive buffer (idle sessions in the memory benchmark).
    pub fn shrink(&mut self) {
        self.scratch = vec![0u8; 8192];
    }
}

/// Receives one PDU: its header and the data segment (into `buf`, padding included).
async fn recv(s: &mut TcpStream, buf: &mut Vec<u8>) -> (Bhs, usize) {
    let mut b = Bhs::default();
    s.read_exact(&mut b.0).await.expect("header");
    let ahs = b.total_ahs_len();
    let len = b.data_segment_len();
    let padded = ahs + len.div_ceil(4) * 4;
    if buf.len() < padded {
        buf.resize(padded, 0);
    }
    s.read_exact(&mut buf[..padded]).await.expect("data");
    if ahs > 0 {
        buf.copy_within(ahs..ahs + len, 0);
    }
    (b, len)
}
