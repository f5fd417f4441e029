//! A command's answer on the wire: Data-In PDUs cut to the initiator's
//! MaxRecvDataSegmentLength and MaxBurstLength, the status collapsed into the last one when
//! there is no sense, otherwise a SCSI Response; residuals (RFC 7143 §11.4.5, §11.7).
//!
//! The PDUs are produced one at a time as the connection can send them, so a 32 MiB read
//! is 128 headers made on demand, not a queue of 128 PDUs.

use bytes::Bytes;

use crate::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use crate::scsi::{ScsiResponse, status};

/// How the sender fills a PDU's StatSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sn {
    /// Carries status: takes the next StatSN, which then advances.
    Status,
    /// Carries the next StatSN without taking it (R2T, target NOP-In, Data-In without
    /// status may leave it zero).
    Peek,
    /// Leaves StatSN zero (Data-In without status).
    None,
}

/// One PDU ready to be numbered and sent.
#[derive(Debug, Clone)]
pub struct OutPdu {
    /// The header; StatSN, ExpCmdSN, MaxCmdSN and the data segment length are filled in
    /// when it is sent.
    pub bhs: Bhs,
    /// The data segment.
    pub data: Bytes,
    /// StatSN handling.
    pub sn: Sn,
}

impl OutPdu {
    /// A PDU that carries status.
    pub fn status(bhs: Bhs, data: Bytes) -> Self {
        OutPdu {
            bhs,
            data,
            sn: Sn::Status,
        }
    }
}

/// The negotiated limits that shape a response.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// The initiator's MaxRecvDataSegmentLength.
    pub segment: usize,
    /// MaxBurstLength (a Data-In sequence ends, F bit, at each multiple).
    pub burst: usize,
}

/// The remaining PDUs of one command's answer.
#[derive(Debug)]
pub struct Answer {
    itt: u32,
    lun_raw: u64,
    data: Bytes,
    off: usize,
    datasn: u32,
    shape: Shape,
    status: u8,
    res_flags: u8,
    residual: u32,
    sense: Option<Bytes>,
    /// Status goes in the last Data-In.
    collapse: bool,
    done: bool,
}

impl Answer {
    /// The answer to a command with initiator task tag `itt` whose initiator expects
    /// `expected_in` bytes of Data-In and `edtl` bytes of transfer in all.
    pub fn new(
        itt: u32,
        lun_raw: u64,
        expected_in: u32,
        edtl: u32,
        resp: ScsiResponse,
        shape: Shape,
    ) -> Self {
        let mut data = resp.data_in;
        let (mut res_flags, mut residual) = (0u8, 0u32);
        if data.len() > expected_in as usize {
            res_flags = 0x04; // O: overflow
            residual = (data.len() - expected_in as usize) as u32;
            data.truncate(expected_in as usize);
        } else if (data.len() as u32) < expected_in {
            res_flags = 0x02; // U: underflow
            residual = expected_in - data.len() as u32;
        }
        if let Some(wanted) = resp.data_in_len {
            // The CDB asked for more than the initiator expected: overflow of the rest.
            if wanted > expected_in {
                res_flags = 0x04;
                residual = wanted - expected_in;
            }
        }
        if expected_in == 0
            && let Some(needed) = resp.data_out_len
        {
            // A write: residual against the data the command actually transferred.
            if needed < edtl {
                res_flags = 0x02;
                residual = edtl - needed;
            } else if needed > edtl {
                res_flags = 0x04;
                residual = needed - edtl;
            }
        }
        let sense = resp.sense.map(|s| {
            let fixed = s.to_fixed();
            let mut v = Vec::with_capacity(2 + fixed.len());
            v.extend_from_slice(&(fixed.len() as u16).to_be_bytes());
            v.extend_from_slice(&fixed);
            Bytes::from(v)
        });
        let collapse = sense.is_none() && resp.status == status::GOOD && !data.is_empty();
        Answer {
            itt,
            lun_raw,
            data,
            off: 0,
            datasn: 0,
            shape: Shape {
                segment: shape.segment.max(512),
                burst: shape.burst.max(512),
            },
            status: resp.status,
            res_flags,
            residual,
            sense,
            collapse,
            done: false,
        }
    }

    /// Bytes of Data-In still to send.
    pub fn pending_bytes(&self) -> usize {
        self.data.len() - self.off
    }

    /// The next PDU and whether it is the last (the one carrying status).
    pub fn next_pdu(&mut self) -> Option<(OutPdu, bool)> {
        if self.done {
            return None;
        }
        let total = self.data.len();
        if self.off < total {
            let burst_end = (self.off / self.shape.burst + 1) * self.shape.burst;
            let len = self
                .shape
                .segment
                .min(total - self.off)
                .min(burst_end - self.off);
            let last = self.off + len == total;
            let mut b = Bhs::new(Opcode::DATA_IN);
            let mut flags = 0u8;
            if last || self.off + len == burst_end {
                flags |= 0x80;
            }
            let mut sn = Sn::None;
            if last && self.collapse {
                flags |= 0x01 | self.res_flags;
                b.0[3] = self.status;
                b.set_residual(self.residual);
                sn = Sn::Status;
            }
            b.set_flags(flags);
            b.set_lun_raw(self.lun_raw);
            b.set_itt(self.itt);
            b.set_ttt(RESERVED_TAG);
            b.set_datasn(self.datasn);
            b.set_buffer_offset(self.off as u32);
            self.datasn += 1;
            let data = self.data.slice(self.off..self.off + len);
            self.off += len;
            let fin = last && self.collapse;
            self.done = fin;
            return Some((OutPdu { bhs: b, data, sn }, fin));
        }
        let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
        b.set_flags(0x80 | self.res_flags);
        b.0[2] = 0; // command completed at target
        b.0[3] = self.status;
        b.set_itt(self.itt);
        b.set_datasn(self.datasn); // ExpDataSN
        b.set_residual(self.residual);
        self.done = true;
        Some((
            OutPdu::status(b, self.sense.take().unwrap_or_default()),
            true,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(mut a: Answer) -> Vec<(OutPdu, bool)> {
        std::iter::from_fn(|| a.next_pdu()).collect()
    }

    #[test]
    fn read_is_split_and_status_collapsed() {
        let resp = ScsiResponse::good(Bytes::from(vec![1u8; 10_000]));
        let pdus = all(Answer::new(
            5,
            0,
            10_000,
            10_000,
            resp,
            Shape {
                segment: 4096,
                burst: 8192,
            },
        ));
        assert_eq!(pdus.len(), 3);
        let lens: Vec<usize> = pdus.iter().map(|p| p.0.data.len()).collect();
        assert_eq!(lens, [4096, 4096, 1808]);
        assert_eq!(
            pdus[1].0.bhs.flags() & 0x80,
            0x80,
            "F at the burst boundary"
        );
        assert_eq!(pdus[2].0.bhs.flags() & 0x81, 0x81, "F and S on the last");
        assert!(pdus[2].1 && !pdus[1].1);
        assert_eq!(pdus[2].0.sn, Sn::Status);
        assert_eq!(pdus[0].0.sn, Sn::None);
        assert_eq!(pdus[2].0.bhs.datasn(), 2);
    }

    #[test]
    fn underflow_and_sense() {
        let resp = ScsiResponse::good(Bytes::from(vec![1u8; 100]));
        let pdus = all(Answer::new(
            1,
            0,
            512,
            512,
            resp,
            Shape {
                segment: 8192,
                burst: 8192,
            },
        ));
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].0.bhs.flags() & 0x02, 0x02, "U");
        assert_eq!(pdus[0].0.bhs.residual(), 412);

        let resp = ScsiResponse::check(crate::scsi::sense::Sense::INVALID_FIELD_IN_CDB);
        let pdus = all(Answer::new(
            1,
            0,
            0,
            0,
            resp,
            Shape {
                segment: 8192,
                burst: 8192,
            },
        ));
        assert_eq!(pdus.len(), 1);
        assert_eq!(pdus[0].0.bhs.opcode(), Opcode::SCSI_RESPONSE);
        assert_eq!(pdus[0].0.bhs.0[3], status::CHECK_CONDITION);
        assert!(pdus[0].0.data.len() > 2);
    }

    #[test]
    fn read_cut_to_expected_reports_the_cdb_length() {
        // The SCSI core read only what the initiator expected and says how much the CDB
        // asked for: overflow residual of the difference.
        let mut resp = ScsiResponse::good(Bytes::from(vec![0u8; 512]));
        resp.data_in_len = Some(4096);
        let pdus = all(Answer::new(
            1,
            0,
            512,
            512,
            resp,
            Shape {
                segment: 8192,
                burst: 8192,
            },
        ));
        assert_eq!(pdus[0].0.bhs.flags() & 0x04, 0x04, "O");
        assert_eq!(pdus[0].0.bhs.residual(), 3584);
        // With an expected length of 0, nothing is read: all of it is overflow.
        let mut resp = ScsiResponse::good(Bytes::new());
        resp.data_in_len = Some(512);
        let pdus = all(Answer::new(
            1,
            0,
            0,
            0,
            resp,
            Shape {
                segment: 8192,
                burst: 8192,
            },
        ));
        assert_eq!(pdus[0].0.bhs.opcode(), Opcode::SCSI_RESPONSE);
        assert_eq!(pdus[0].0.bhs.flags() & 0x04, 0x04, "O");
        assert_eq!(pdus[0].0.bhs.residual(), 512);
    }
}
