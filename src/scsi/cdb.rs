//! CDB parsing: raw bytes to a [`Command`], or the sense explaining why not. Never panics.

use super::opcodes as op;
use super::sense::Sense;

/// A parsed command with the fields the core acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// TEST UNIT READY.
    TestUnitReady,
    /// REQUEST SENSE; `desc` asks for descriptor format.
    RequestSense {
        /// DESC bit.
        desc: bool,
        /// Allocation length.
        alloc: u32,
    },
    /// INQUIRY.
    Inquiry {
        /// EVPD bit.
        evpd: bool,
        /// Page code.
        page: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// REPORT LUNS.
    ReportLuns {
        /// SELECT REPORT.
        select: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// MODE SENSE (6) or (10).
    ModeSense {
        /// MODE SENSE (10).
        ten: bool,
        /// Disable block descriptors.
        dbd: bool,
        /// Long LBA block descriptor accepted (10 only).
        llbaa: bool,
        /// Page control (0 current, 1 changeable, 2 default, 3 saved).
        pc: u8,
        /// Page code.
        page: u8,
        /// Subpage code.
        subpage: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// MODE SELECT (6) or (10).
    ModeSelect {
        /// MODE SELECT (10).
        ten: bool,
        /// Save pages.
        sp: bool,
        /// Parameter list length.
        len: u32,
    },
    /// START STOP UNIT.
    StartStopUnit,
    /// PREVENT ALLOW MEDIUM REMOVAL.
    PreventAllow {
        /// PREVENT field.
        prevent: u8,
    },
    /// READ CAPACITY (10).
    ReadCapacity10,
    /// READ CAPACITY (16).
    ReadCapacity16 {
        /// Allocation length.
        alloc: u32,
    },
    /// READ (6/10/12/16).
    Read {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// WRITE (6/10/12/16).
    Write {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force unit access.
        fua: bool,
    },
    /// VERIFY (10/12/16).
    Verify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// BYTCHK: 0 medium only, 1 compare, 3 compare one block against each.
        bytchk: u8,
    },
    /// WRITE AND VERIFY (10/12/16).
    WriteAndVerify {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// SYNCHRONIZE CACHE (10/16); `blocks == 0` means to the end of the medium.
    SyncCache {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
    },
    /// PRE-FETCH (10/16).
    PreFetch {
        /// First block.
        lba: u64,
        /// Number of blocks (0 = to the end).
        blocks: u32,
    },
    /// UNMAP.
    Unmap {
        /// Parameter list length.
        len: u32,
    },
    /// WRITE SAME (10/16).
    WriteSame {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// UNMAP bit.
        unmap: bool,
        /// No data-out buffer: write zeros.
        ndob: bool,
    },
    /// COMPARE AND WRITE.
    CompareAndWrite {
        /// First block.
        lba: u64,
        /// Number of blocks.
        blocks: u32,
        /// Force unit access.
        fua: bool,
    },
    /// GET LBA STATUS.
    GetLbaStatus {
        /// Starting block.
        lba: u64,
        /// Allocation length.
        alloc: u32,
    },
    /// REPORT SUPPORTED OPERATION CODES.
    ReportOpcodes {
        /// Return command timeouts descriptors.
        rctd: bool,
        /// REPORTING OPTIONS.
        options: u8,
        /// Requested operation code.
        opcode: u8,
        /// Requested service action.
        sa: u16,
        /// Allocation length.
        alloc: u32,
    },
    /// RESERVE (6/10).
    Reserve,
    /// RELEASE (6/10).
    Release,
    /// PERSISTENT RESERVE IN.
    PrIn {
        /// Service action.
        sa: u8,
        /// Allocation length.
        alloc: u32,
    },
    /// PERSISTENT RESERVE OUT.
    PrOut {
        /// Service action.
        sa: u8,
        /// Scope (high nibble of byte 2).
        scope: u8,
        /// Reservation type (low nibble of byte 2).
        kind: u8,
        /// Parameter list length.
        len: u32,
    },
}

fn be16(b: &[u8], i: usize) -> u32 {
    u32::from(u16::from_be_bytes([b[i], b[i + 1]]))
}
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
fn be64(b: &[u8], i: usize) -> u64 {
    (u64::from(be32(b, i)) << 32) | u64::from(be32(b, i + 4))
}

/// CDB length implied by the group code of `opcode` (0 for variable/vendor groups).
pub fn cdb_len(opcode: u8) -> usize {
    match opcode >> 5 {
        0 => 6,
        1 | 2 => 10,
        4 => 16,
        5 => 12,
        _ => 0,
    }
}

const BAD: Sense = Sense::INVALID_FIELD_IN_CDB;

fn check(cond: bool) -> Result<(), Sense> {
    if cond { Ok(()) } else { Err(BAD) }
}

/// Parses a CDB. Unknown operation codes give INVALID COMMAND OPERATION CODE, bad or
/// unsupported fields INVALID FIELD IN CDB.
pub fn parse(cdb: &[u8]) -> Result<Command, Sense> {
    let Some(&opcode) = cdb.first() else {
        return Err(Sense::INVALID_OPCODE);
    };
    if !op::is_supported_opcode(opcode) {
        return Err(Sense::INVALID_OPCODE);
    }
    let len = cdb_len(opcode);
    if len == 0 || cdb.len() < len {
        return Err(BAD);
    }
    let c = &cdb[..len];
    // NACA and LINK are not supported.
    check(c[len - 1] & 0x05 == 0)?;
    let b1 = c[1];
    let no_protect = || check(b1 >> 5 == 0);
    use Command::*;
    let cmd = match opcode {
        op::TEST_UNIT_READY => TestUnitReady,
        op::REQUEST_SENSE => RequestSense {
            desc: b1 & 1 != 0,
            alloc: u32::from(c[4]),
        },
        op::INQUIRY => {
            // CMDDT is obsolete: refuse it; a page code needs EVPD.
            check(b1 & 0x02 == 0)?;
            let evpd = b1 & 1 != 0;
            check(evpd || c[2] == 0)?;
            Inquiry {
                evpd,
                page: c[2],
                alloc: be16(c, 3),
            }
        }
        op::REPORT_LUNS => ReportLuns {
            select: c[2],
            alloc: be32(c, 6),
        },
        op::MODE_SENSE_6 | op::MODE_SENSE_10 => {
            let ten = opcode == op::MODE_SENSE_10;
            ModeSense {
                ten,
                dbd: b1 & 0x08 != 0,
                llbaa: ten && b1 & 0x10 != 0,
                pc: c[2] >> 6,
                page: c[2] & 0x3f,
                subpage: c[3],
                alloc: if ten { be16(c, 7) } else { u32::from(c[4]) },
            }
        }
        op::MODE_SELECT_6 | op::MODE_SELECT_10 => {
            let ten = opcode == op::MODE_SELECT_10;
            ModeSelect {
                ten,
                sp: b1 & 1 != 0,
                len: if ten { be16(c, 7) } else { u32::from(c[4]) },
            }
        }
        op::START_STOP_UNIT => StartStopUnit,
        op::PREVENT_ALLOW => PreventAllow { prevent: c[4] & 3 },
        op::READ_CAPACITY_10 => {
            // PMI = 0 requires LBA = 0.
            check(c[8] & 1 != 0 || be32(c, 2) == 0)?;
            ReadCapacity10
        }
        op::SERVICE_ACTION_IN_16 => match b1 & 0x1f {
            op::SA_READ_CAPACITY_16 => ReadCapacity16 { alloc: be32(c, 10) },
            op::SA_GET_LBA_STATUS => GetLbaStatus {
                lba: be64(c, 2),
                alloc: be32(c, 10),
            },
            _ => return Err(BAD),
        },
        op::READ_6 | op::WRITE_6 => {
            let lba = (u64::from(b1 & 0x1f) << 16) | u64::from(be16(c, 2));
            let blocks = if c[4] == 0 { 256 } else { u32::from(c[4]) };
            if opcode == op::READ_6 {
                Read { lba, blocks }
            } else {
                Write {
                    lba,
                    blocks,
                    fua: false,
                }
            }
        }
        op::READ_10 | op::READ_12 | op::READ_16 => {
            no_protect()?;
            let (lba, blocks) = lba_len(c);
            Read { lba, blocks }
        }
        op::WRITE_10 | op::WRITE_12 | op::WRITE_16 => {
            no_protect()?;
            let (lba, blocks) = lba_len(c);
            Write {
                lba,
                blocks,
                fua: b1 & 0x08 != 0,
            }
        }
        op::VERIFY_10 | op::VERIFY_12 | op::VERIFY_16 => {
            no_protect()?;
            let bytchk = (b1 >> 1) & 3;
            check(bytchk != 2)?;
            let (lba, blocks) = lba_len(c);
            Verify {
                lba,
                blocks,
                bytchk,
            }
        }
        op::WRITE_VERIFY_10 | op::WRITE_VERIFY_12 | op::WRITE_VERIFY_16 => {
            no_protect()?;
            let (lba, blocks) = lba_len(c);
            WriteAndVerify { lba, blocks }
        }
        op::SYNC_CACHE_10 | op::SYNC_CACHE_16 => {
            let (lba, blocks) = lba_len(c);
            SyncCache { lba, blocks }
        }
        op::PRE_FETCH_10 | op::PRE_FETCH_16 => {
            let (lba, blocks) = lba_len(c);
            PreFetch { lba, blocks }
        }
        op::UNMAP => {
            // ANCHOR is not supported.
            check(b1 & 1 == 0)?;
            Unmap { len: be16(c, 7) }
        }
        op::WRITE_SAME_10 | op::WRITE_SAME_16 => {
            no_protect()?;
            // ANCHOR, PBDATA and LBDATA are not supported.
            check(b1 & 0x16 == 0)?;
            let (lba, blocks) = lba_len(c);
            WriteSame {
                lba,
                blocks,
                unmap: b1 & 0x08 != 0,
                ndob: opcode == op::WRITE_SAME_16 && b1 & 1 != 0,
            }
        }
        op::COMPARE_AND_WRITE => {
            no_protect()?;
            CompareAndWrite {
                lba: be64(c, 2),
                blocks: u32::from(c[13]),
                fua: b1 & 0x08 != 0,
            }
        }
        op::MAINTENANCE_IN => match b1 & 0x1f {
            op::SA_REPORT_OPCODES => ReportOpcodes {
                rctd: c[2] & 0x80 != 0,
                options: c[2] & 0x07,
                opcode: c[3],
                sa: be16(c, 4) as u16,
                alloc: be32(c, 6),
            },
            _ => return Err(BAD),
        },
        op::RESERVE_6 | op::RESERVE_10 => {
            // Third-party and extent reservations are not supported.
            check(b1 & 0x13 == 0)?;
            Reserve
        }
        op::RELEASE_6 | op::RELEASE_10 => {
            check(b1 & 0x13 == 0)?;
            Release
        }
        op::PR_IN => PrIn {
            sa: b1 & 0x1f,
            alloc: be16(c, 7),
        },
        op::PR_OUT => PrOut {
            sa: b1 & 0x1f,
            scope: c[2] >> 4,
            kind: c[2] & 0x0f,
            len: be32(c, 5),
        },
        _ => return Err(Sense::INVALID_OPCODE),
    };
    Ok(cmd)
}

/// LBA and transfer length of a 10-, 12- or 16-byte block command.
fn lba_len(c: &[u8]) -> (u64, u32) {
    match c.len() {
        10 => (u64::from(be32(c, 2)), be16(c, 7)),
        12 => (u64::from(be32(c, 2)), be32(c, 6)),
        _ => (be64(c, 2), be32(c, 10)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_variants() {
        assert_eq!(
            parse(&[0x08, 0x01, 0x02, 0x03, 0, 0]),
            Ok(Command::Read {
                lba: 0x10203,
                blocks: 256
            })
        );
        assert_eq!(
            parse(&[0x28, 0, 0, 0, 1, 0, 0, 0, 8, 0]),
            Ok(Command::Read {
                lba: 256,
                blocks: 8
            })
        );
        let mut c16 = [0u8; 16];
        c16[0] = 0x8a;
        c16[1] = 0x08;
        c16[9] = 5;
        c16[13] = 2;
        assert_eq!(
            parse(&c16),
            Ok(Command::Write {
                lba: 5,
                blocks: 2,
                fua: true
            })
        );
        assert_eq!(parse(&[0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0]), Err(BAD));
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&[]), Err(Sense::INVALID_OPCODE));
        assert_eq!(parse(&[0xff]), Err(Sense::INVALID_OPCODE));
        assert_eq!(parse(&[0x28, 0]), Err(BAD));
        assert_eq!(parse(&[0x00, 0, 0, 0, 0, 0x04]), Err(BAD));
        assert_eq!(parse(&[0x12, 0, 0x80, 0, 0xff, 0]), Err(BAD));
        assert_eq!(parse(&[0x12, 2, 0, 0, 0xff, 0]), Err(BAD));
    }
}
