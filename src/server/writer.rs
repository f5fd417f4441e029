//! The connection's writer task: the only place that writes to the socket after login.
//!
//! Every outgoing PDU passes through one channel, so StatSN is assigned in send order and
//! ExpCmdSN/MaxCmdSN are always current. Queued PDUs are written in batches with one
//! `writev`: headers (and small payloads) are copied into one buffer, large payloads go
//! out from the buffer the backstore read into, with no copy.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::framing::put_header;
use crate::iscsi::wire::Bhs;
use crate::iscsi::wire::digest::{data_digest, padding};

/// Payloads up to this size are copied next to their header instead of getting an iovec.
const INLINE_DATA: usize = 4096;
/// PDUs per `writev` batch at most.
const BATCH: usize = 64;

/// How the writer fills the sequence-number fields of a PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sn {
    /// Carries status: gets the next StatSN, which then advances.
    Status,
    /// Carries the next StatSN without consuming it (R2T, target NOP-In).
    Peek,
    /// No StatSN (Data-In without status): the field stays zero.
    NoStatus,
}

/// One PDU to send.
#[derive(Debug)]
pub struct OutPdu {
    /// Header; StatSN, ExpCmdSN and MaxCmdSN are filled in by the writer.
    pub bhs: Bhs,
    /// Data segment.
    pub data: Bytes,
    /// Sequence-number handling.
    pub sn: Sn,
    /// Close the connection after this PDU (logout response, fatal reject).
    pub close_after: bool,
}

impl OutPdu {
    /// A PDU with status semantics.
    pub fn status(bhs: Bhs, data: Bytes) -> Self {
        Self {
            bhs,
            data,
            sn: Sn::Status,
            close_after: false,
        }
    }
}

/// Command sequence state shared by the reader (which advances it) and the writer
/// (which reports it). ExpCmdSN (high half) and the number of commands running (low half)
/// live in one atomic so that MaxCmdSN, computed from both, never moves backwards.
#[derive(Debug)]
pub struct CmdWindow {
    state: AtomicU64,
    /// Queue depth (window size).
    pub depth: u32,
}

impl CmdWindow {
    /// A window starting at `exp_cmdsn`.
    pub fn new(exp_cmdsn: u32, depth: u32) -> Self {
        Self {
            state: AtomicU64::new((exp_cmdsn as u64) << 32),
            depth: depth.max(1),
        }
    }

    /// (ExpCmdSN, MaxCmdSN) as they stand now.
    pub fn current(&self) -> (u32, u32) {
        let s = self.state.load(Ordering::Acquire);
        let exp = (s >> 32) as u32;
        let running = (s as u32).min(self.depth);
        (exp, exp.wrapping_add(self.depth - running).wrapping_sub(1))
    }

    /// ExpCmdSN.
    pub fn exp_cmdsn(&self) -> u32 {
        (self.state.load(Ordering::Acquire) >> 32) as u32
    }

    /// Commands running.
    pub fn running(&self) -> u32 {
        self.state.load(Ordering::Acquire) as u32
    }

    /// A non-immediate command with the expected CmdSN arrived: ExpCmdSN advances, and
    /// with `task` the command also occupies a slot until [`CmdWindow::complete`].
    pub fn advance(&self, task: bool) {
        let add = (1u64 << 32) + task as u64;
        self.state.fetch_add(add, Ordering::AcqRel);
    }

    /// An immediate command occupies a slot without advancing ExpCmdSN.
    pub fn occupy(&self) {
        self.state.fetch_add(1, Ordering::AcqRel);
    }

    /// A command finished (answered or aborted).
    pub fn complete(&self) {
        self.state.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs until the channel closes or a write fails; returns the final StatSN.
pub async fn run<W: AsyncWrite + Unpin>(
    mut wr: W,
    mut rx: mpsc::UnboundedReceiver<OutPdu>,
    window: Arc<CmdWindow>,
    mut statsn: u32,
    header_digest: bool,
    data_digest_on: bool,
) -> std::io::Result<u32> {
    let mut batch: Vec<OutPdu> = Vec::with_capacity(BATCH);
    let mut inline: Vec<u8> = Vec::with_capacity(64 * 1024);
    // (start, end) in `inline` or index into batch data, in send order
    enum Seg {
        Inline(usize, usize),
        Data(usize),
    }
    let mut segs: Vec<Seg> = Vec::with_capacity(BATCH * 3);
    loop {
        let Some(first) = rx.recv().await else {
            let _ = wr.shutdown().await;
            return Ok(statsn);
        };
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        inline.clear();
        segs.clear();
        let mut close = false;
        for (i, p) in batch.iter_mut().enumerate() {
            let (exp, max) = window.current();
            match p.sn {
                Sn::Status => {
                    p.bhs.set_statsn(statsn);
                    statsn = statsn.wrapping_add(1);
                }
                Sn::Peek => {
                    p.bhs.set_statsn(statsn);
                }
                Sn::NoStatus => {}
            }
            p.bhs.set_exp_cmdsn(exp).set_max_cmdsn(max);
            p.bhs.set_data_segment_len(p.data.len());
            let start = inline.len();
            put_header(&mut inline, &p.bhs, header_digest);
            if !p.data.is_empty() {
                let pad = padding(p.data.len());
                if p.data.len() <= INLINE_DATA {
                    inline.extend_from_slice(&p.data);
                    segs.push(Seg::Inline(start, inline.len()));
                } else {
                    segs.push(Seg::Inline(start, inline.len()));
                    segs.push(Seg::Data(i));
                }
                let tstart = inline.len();
                inline.extend_from_slice(&[0u8; 3][..pad]);
                if data_digest_on {
                    inline.extend_from_slice(&data_digest(&p.data));
                }
                segs.push(Seg::Inline(tstart, inline.len()));
            } else {
                segs.push(Seg::Inline(start, inline.len()));
            }
            if p.close_after {
                close = true;
                break;
            }
        }
        {
            let mut slices: Vec<IoSlice<'_>> = segs
                .iter()
                .filter_map(|s| {
                    let b: &[u8] = match s {
                        Seg::Inline(a, b) => &inline[*a..*b],
                        Seg::Data(i) => &batch[*i].data,
                    };
                    (!b.is_empty()).then(|| IoSlice::new(b))
                })
                .collect();
            let mut bufs = &mut slices[..];
            while !bufs.is_empty() {
                let n = wr.write_vectored(bufs).await?;
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut bufs, n);
            }
        }
        batch.clear();
        if close {
            wr.flush().await?;
            let _ = wr.shutdown().await;
            return Ok(statsn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::wire::Opcode;

    #[tokio::test]
    async fn assigns_statsn_and_window() {
        let (tx, rx) = mpsc::unbounded_channel();
        let window = Arc::new(CmdWindow::new(10, 4));
        window.occupy();
        let big = Bytes::from(vec![7u8; 10_000]);
        tx.send(OutPdu::status(
            Bhs::new(Opcode::SCSI_RESPONSE),
            Bytes::new(),
        ))
        .unwrap();
        tx.send(OutPdu {
            bhs: Bhs::new(Opcode::DATA_IN),
            data: big.clone(),
            sn: Sn::NoStatus,
            close_after: false,
        })
        .unwrap();
        tx.send(OutPdu {
            bhs: Bhs::new(Opcode::R2T),
            data: Bytes::from_static(b"abc"),
            sn: Sn::Peek,
            close_after: true,
        })
        .unwrap();
        let mut out = Vec::new();
        let last = run(&mut out, rx, window, 5, false, true).await.unwrap();
        assert_eq!(last, 6);
        let h0 = Bhs(out[..48].try_into().unwrap());
        assert_eq!(h0.statsn(), 5);
        assert_eq!(h0.exp_statsn(), 10, "ExpCmdSN");
        assert_eq!(h0.max_cmdsn(), 12, "10 + 4 - 1 - 1 running");
        let h1 = Bhs(out[48..96].try_into().unwrap());
        assert_eq!(h1.statsn(), 0);
        assert_eq!(h1.data_segment_len(), 10_000);
        assert_eq!(&out[96..10_096], &big[..]);
        let off = 10_096 + 4;
        let h2 = Bhs(out[off..off + 48].try_into().unwrap());
        assert_eq!(h2.statsn(), 6);
        assert_eq!(&out[off + 48..off + 51], b"abc");
        assert_eq!(out.len(), off + 48 + 4 + 4);
    }
}
