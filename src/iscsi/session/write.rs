//! Write data assembly for one command: immediate data, unsolicited Data-Out, R2T bursts.
//!
//! Coverage, not a byte count: the data arrives in sequences (the unsolicited one, then one
//! per R2T), and within a sequence every Data-Out must start exactly where the previous one
//! ended (DataPDUInOrder=Yes, which the target always negotiates), with the next DataSN,
//! inside the sequence. The sequences cover disjoint ranges, so "every byte arrived" is
//! "the covered total equals the transfer length": an overlap, a duplicate or a gap cannot
//! be counted as data.
//!
//! R2Ts are issued in increasing offset order, only once the unsolicited sequence is over
//! (its F bit, or FirstBurstLength reached), so an initiator that sent less unsolicited data
//! than it could (an early F bit) is asked for the rest instead of being waited for.

use std::time::Instant;

use crate::iobuf::IoBuf;
use crate::iscsi::login::Params;

/// Why a Data-Out does not fit its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataOutError {
    /// Unsolicited data the command may not carry (its unsolicited sequence is over).
    #[error("unsolicited Data-Out after the unsolicited sequence ended")]
    Unsolicited,
    /// A target transfer tag no outstanding R2T of this command has.
    #[error("unknown target transfer tag {0:#x}")]
    UnknownTtt(u32),
    /// A DataSN other than the next one of its sequence.
    #[error("DataSN {got}, expected {expected}")]
    DataSn {
        /// The next DataSN of the sequence.
        expected: u32,
        /// What came.
        got: u32,
    },
    /// A buffer offset other than where the sequence continues.
    #[error("buffer offset {got}, expected {expected}")]
    Offset {
        /// Where the sequence continues.
        expected: u32,
        /// What came.
        got: u32,
    },
    /// Data past the end of its sequence (or of the transfer).
    #[error("data past the end of its sequence ({end} > {limit})")]
    Overrun {
        /// End of the data that came.
        end: u64,
        /// End of the sequence.
        limit: u32,
    },
}

/// One outstanding R2T.
#[derive(Debug, Clone)]
struct Burst {
    ttt: u32,
    /// Where the next byte of the burst goes (absolute offset).
    cursor: u32,
    end: u32,
    datasn: u32,
}

/// An R2T to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct R2t {
    /// Target transfer tag.
    pub ttt: u32,
    /// R2TSN.
    pub r2tsn: u32,
    /// Buffer offset.
    pub offset: u32,
    /// Desired data transfer length.
    pub len: u32,
}

/// The write data of one command.
#[derive(Debug)]
pub struct WriteData {
    edtl: u32,
    /// The whole buffer, once the memory budget granted it.
    buf: Option<IoBuf>,
    /// Unsolicited data that came before the buffer existed: (offset, bytes).
    early: Vec<(u32, IoBuf)>,
    /// End of the unsolicited range while the unsolicited sequence is open.
    unsol_end: u32,
    unsol_open: bool,
    /// Where unsolicited data continues (and, once closed, where it ended).
    unsol_cursor: u32,
    unsol_datasn: u32,
    /// The next offset to solicit with an R2T.
    solicit: u32,
    bursts: Vec<Burst>,
    /// Rests of bursts that ended short, solicited before anything new (by offset).
    resolicit: Vec<(u32, u32)>,
    r2tsn: u32,
    covered: u32,
    last_progress: Instant,
}

/// Where an accepted Data-Out's data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Offset in the command's buffer.
    pub offset: u32,
    /// Length.
    pub len: u32,
    /// Which sequence: `None` for unsolicited, `Some(ttt)` for an R2T burst.
    pub ttt: Option<u32>,
}

impl WriteData {
    /// The data of a write of `edtl` bytes whose command carried `immediate` bytes, with
    /// the F bit `fin` (no unsolicited Data-Out follows).
    pub fn new(edtl: u32, immediate: u32, fin: bool, params: &Params, now: Instant) -> Self {
        let unsol_end = if fin {
            immediate
        } else {
            params.first_burst_length.min(edtl).max(immediate)
        };
        let mut w = WriteData {
            edtl,
            buf: None,
            early: Vec::new(),
            unsol_end,
            unsol_open: !fin && immediate < unsol_end,
            unsol_cursor: immediate,
            unsol_datasn: 0,
            solicit: immediate,
            bursts: Vec::new(),
            resolicit: Vec::new(),
            r2tsn: 0,
            covered: immediate,
            last_progress: now,
        };
        if !w.unsol_open {
            w.solicit = w.unsol_cursor;
        }
        w
    }

    /// The transfer length.
    pub fn edtl(&self) -> u32 {
        self.edtl
    }

    /// Whether every byte has arrived.
    pub fn complete(&self) -> bool {
        self.covered >= self.edtl
    }

    /// Whether the buffer exists (the budget was granted).
    pub fn has_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Bytes received before the buffer existed.
    pub fn early_bytes(&self) -> usize {
        self.early.iter().map(|(_, v)| v.len()).sum()
    }

    /// Installs the full buffer (`edtl` long; its contents do not matter: the command
    /// runs only once Data-Out covered every byte) and moves early data into it.
    pub fn install(&mut self, mut buf: IoBuf) {
        debug_assert_eq!(buf.len(), self.edtl as usize);
        for (off, data) in self.early.drain(..) {
            let o = off as usize;
            buf[o..o + data.len()].copy_from_slice(&data);
        }
        self.buf = Some(buf);
    }

    /// Lends the buffer out (to be filled by the receiver); `None` before [`install`].
    ///
    /// [`install`]: WriteData::install
    pub fn lend(&mut self) -> Option<IoBuf> {
        self.buf.take()
    }

    /// Takes back a lent buffer.
    pub fn give_back(&mut self, buf: IoBuf) {
        self.buf = Some(buf);
    }

    /// Keeps data that came before the buffer existed.
    pub fn keep_early(&mut self, offset: u32, data: IoBuf) {
        self.early.push((offset, data));
    }

    /// Takes the assembled data (once [`WriteData::complete`]).
    pub fn take(&mut self) -> IoBuf {
        self.buf.take().unwrap_or_default()
    }

    /// When data last made progress (an accepted Data-Out or an R2T sent).
    pub fn last_progress(&self) -> Instant {
        self.last_progress
    }

    /// Whether the command waits for data the initiator has been asked for (or may send
    /// unasked), as opposed to waiting for the target to solicit it.
    pub fn waiting_for_initiator(&self) -> bool {
        !self.complete() && (self.unsol_open || !self.bursts.is_empty())
    }

    /// Checks a Data-Out (TTT, DataSN, buffer offset, length) against the command.
    pub fn check(
        &self,
        ttt: u32,
        datasn: u32,
        offset: u32,
        len: u32,
    ) -> Result<Placement, DataOutError> {
        let end = u64::from(offset) + u64::from(len);
        let (cursor, limit, next_sn, which) = if ttt == crate::iscsi::wire::RESERVED_TAG {
            if !self.unsol_open {
                return Err(DataOutError::Unsolicited);
            }
            (self.unsol_cursor, self.unsol_end, self.unsol_datasn, None)
        } else {
            let b = self
                .bursts
                .iter()
                .find(|b| b.ttt == ttt)
                .ok_or(DataOutError::UnknownTtt(ttt))?;
            (b.cursor, b.end, b.datasn, Some(ttt))
        };
        if datasn != next_sn {
            return Err(DataOutError::DataSn {
                expected: next_sn,
                got: datasn,
            });
        }
        if offset != cursor {
            return Err(DataOutError::Offset {
                expected: cursor,
                got: offset,
            });
        }
        if end > u64::from(limit) {
            return Err(DataOutError::Overrun { end, limit });
        }
        Ok(Placement {
            offset,
            len,
            ttt: which,
        })
    }

    /// Records an accepted Data-Out (after its data arrived intact); `fin` is its F bit.
    pub fn accept(&mut self, p: Placement, fin: bool, now: Instant) {
        self.covered += p.len;
        self.last_progress = now;
        match p.ttt {
            None => {
                self.unsol_cursor += p.len;
                self.unsol_datasn += 1;
                if fin || self.unsol_cursor >= self.unsol_end {
                    self.unsol_open = false;
                    self.solicit = self.unsol_cursor;
                }
            }
            Some(ttt) => {
                let Some(i) = self.bursts.iter().position(|b| b.ttt == ttt) else {
                    return;
                };
                let b = &mut self.bursts[i];
                b.cursor += p.len;
                b.datasn += 1;
                if b.cursor >= b.end {
                    self.bursts.remove(i);
                } else if fin {
                    // The burst ended short: solicit its rest again.
                    let rest = (b.cursor, b.end);
                    self.bursts.remove(i);
                    self.resolicit(rest);
                }
            }
        }
    }

    /// Puts the rest of a short burst back, to be solicited before anything new.
    fn resolicit(&mut self, rest: (u32, u32)) {
        let at = self.resolicit.partition_point(|r| r.0 < rest.0);
        self.resolicit.insert(at, rest);
    }

    /// The next R2T to send, if one may be sent now (buffer present, the unsolicited
    /// sequence over, fewer than MaxOutstandingR2T outstanding). `ttt` allocates a tag.
    pub fn next_r2t(
        &mut self,
        params: &Params,
        now: Instant,
        ttt: impl FnOnce() -> u32,
    ) -> Option<R2t> {
        if self.buf.is_none()
            || self.unsol_open
            || self.bursts.len() >= params.max_outstanding_r2t.max(1) as usize
        {
            return None;
        }
        let again = (!self.resolicit.is_empty()).then(|| self.resolicit.remove(0));
        let (offset, end) = match again {
            Some(r) => r,
            None if self.solicit < self.edtl => {
                let len = params
                    .max_burst_length
                    .max(512)
                    .min(self.edtl - self.solicit);
                let r = (self.solicit, self.solicit + len);
                self.solicit += len;
                r
            }
            None => return None,
        };
        let ttt = ttt();
        let r2t = R2t {
            ttt,
            r2tsn: self.r2tsn,
            offset,
            len: end - offset,
        };
        self.r2tsn += 1;
        self.bursts.push(Burst {
            ttt,
            cursor: offset,
            end,
            datasn: 0,
        });
        self.last_progress = now;
        Some(r2t)
    }
}
