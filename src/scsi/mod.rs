//! The SCSI core (SAM/SPC/SBC), independent of the transport.
//!
//! The iSCSI layer hands a [`ScsiCommand`] (LUN, CDB, write data) and an [`ItNexus`] (who is
//! asking, which LUNs they see) to [`execute`], and gets a [`ScsiResponse`] back: status,
//! sense and Data-In. SCSI conditions are never Rust errors: a bad CDB field or an LBA out
//! of range is a CHECK CONDITION response carrying [`sense::Sense`].
//!
//! Storage is reached only through [`crate::backstore::Backstore`].
//!
//! Layout: [`cdb`] parses CDBs into [`Command`]; `spc`, `vpd` and `mode` answer the
//! device-independent commands, `sbc` the block commands; [`opcodes`] is the table behind
//! REPORT SUPPORTED OPERATION CODES; [`pr`] holds SPC-2 and persistent reservations;
//! `lun` and `nexus` hold [`LogicalUnit`] and [`ItNexus`].
//!
//! Order of checks in [`execute`]: LUN lookup (unmapped: only INQUIRY, REPORT LUNS and
//! REQUEST SENSE are served, everything else is LOGICAL UNIT NOT SUPPORTED), pending unit
//! attention, CDB parsing, reservation conflict, then the command itself.
//!
//! Unit attentions cost no lock: each [`LogicalUnit`] counts resets and capacity changes,
//! each nexus remembers the counts it has reported, and a difference is one UA. Reservation
//! UAs (preempted, released) are queued on the unit behind an atomic "pending" flag.

use bytes::Bytes;

use crate::iobuf::IoBuf;

pub mod cdb;
mod identity;
mod lun;
pub mod metrics;
mod mode;
mod nexus;
pub mod opcodes;
pub mod pr;
mod sbc;
pub use sbc::MAX_TRANSFER_BYTES;
pub mod sense;
mod spc;
pub mod tasks;
mod vpd;

#[cfg(test)]
mod abort_tests;
#[cfg(test)]
mod storage_tests;
#[cfg(test)]
mod tests;

pub use cdb::Command;
pub use identity::{DEFAULT_PRODUCT, DEFAULT_VENDOR, LunIdentity, Naa};
pub use lun::{LogicalUnit, LunMap, MappedLun};
pub use nexus::ItNexus;
pub use spc::target_port_name;

use pr::Access;
use sense::Sense;

/// SCSI status byte values (SAM-5).
pub mod status {
    /// GOOD.
    pub const GOOD: u8 = 0x00;
    /// CHECK CONDITION: sense data follows.
    pub const CHECK_CONDITION: u8 = 0x02;
    /// CONDITION MET.
    pub const CONDITION_MET: u8 = 0x04;
    /// BUSY.
    pub const BUSY: u8 = 0x08;
    /// RESERVATION CONFLICT.
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    /// TASK SET FULL.
    pub const TASK_SET_FULL: u8 = 0x28;
    /// TASK ABORTED.
    pub const TASK_ABORTED: u8 = 0x40;
}

/// One command as the transport delivers it.
#[derive(Debug)]
pub struct ScsiCommand {
    /// LUN as the initiator addresses it (already decoded from the 8-byte SAM LUN field).
    pub lun: u64,
    /// The CDB (16 bytes from the BHS, or longer with an extended-CDB AHS).
    pub cdb: Bytes,
    /// All write data (Data-Out), assembled; empty for commands without Data-Out.
    pub data_out: IoBuf,
    /// Expected Data-In transfer length the initiator gave (EDTL of a read); the transport
    /// truncates the response to it and computes residuals, so the core may return more.
    pub expected_in: u32,
}

/// The result of one command.
#[derive(Debug, Default)]
pub struct ScsiResponse {
    /// SCSI status byte (see [`status`]).
    pub status: u8,
    /// Sense data for CHECK CONDITION, encoded by the transport (fixed format).
    pub sense: Option<sense::Sense>,
    /// Data-In (may exceed `expected_in`; the transport truncates and reports overflow).
    pub data_in: Bytes,
    /// For commands with Data-Out: the bytes the CDB transfers, so the transport can report
    /// residuals against the initiator's expected length. `None` when not applicable.
    pub data_out_len: Option<u32>,
    /// For reads cut to the initiator's expected length: the bytes the CDB asked for
    /// (the transport reports the difference as an overflow residual).
    pub data_in_len: Option<u32>,
}

impl ScsiResponse {
    /// GOOD with `data` as Data-In.
    pub fn good(data: Bytes) -> Self {
        ScsiResponse {
            status: status::GOOD,
            sense: None,
            data_in: data,
            data_out_len: None,
            data_in_len: None,
        }
    }

    /// CHECK CONDITION with `sense`.
    pub fn check(sense: Sense) -> Self {
        ScsiResponse {
            status: status::CHECK_CONDITION,
            sense: Some(sense),
            data_in: Bytes::new(),
            data_out_len: None,
            data_in_len: None,
        }
    }

    /// A bare status (RESERVATION CONFLICT, BUSY, ...) without sense or data.
    pub fn status(status: u8) -> Self {
        ScsiResponse {
            status,
            sense: None,
            data_in: Bytes::new(),
            data_out_len: None,
            data_in_len: None,
        }
    }
}

/// GOOD with `data` truncated to the allocation length `alloc`.
pub(crate) fn reply(mut data: Vec<u8>, alloc: u32) -> ScsiResponse {
    data.truncate(alloc as usize);
    ScsiResponse::good(Bytes::from(data))
}

/// Handler result: a response, or the sense of a CHECK CONDITION.
pub(crate) type CmdResult = Result<ScsiResponse, Sense>;

/// Which task a command is, for the logical unit's task set.
#[derive(Debug, Clone, Copy)]
pub struct TaskMeta {
    /// The session's id of the task.
    pub id: u64,
    /// When the command arrived (an abort covers the tasks that arrived before it).
    pub received: std::time::Instant,
}

/// The command was aborted (by task management, PREEMPT AND ABORT or its session's end):
/// no I/O of it is in progress any more; its own result must not be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

/// Whether the command with this CDB runs briefly when its backstore does not make it
/// wait: a READ or WRITE (bounded by [`MAX_TRANSFER_BYTES`]) or a command answered from
/// memory. The transport may run these in its own task; every other command (WRITE SAME
/// and UNMAP over large ranges, COMPARE AND WRITE, VERIFY, SYNCHRONIZE CACHE,
/// reservations...) may take long and should run apart.
pub fn runs_briefly(cdb: &[u8]) -> bool {
    use opcodes::*;
    match cdb.first().copied() {
        Some(
            READ_6 | READ_10 | READ_12 | READ_16 | WRITE_6 | WRITE_10 | WRITE_12 | WRITE_16
            | TEST_UNIT_READY | INQUIRY | READ_CAPACITY_10 | REPORT_LUNS | MODE_SENSE_6
            | MODE_SENSE_10 | REQUEST_SENSE,
        ) => true,
        Some(SERVICE_ACTION_IN_16) => cdb.get(1).map(|b| b & 0x1f) == Some(SA_READ_CAPACITY_16),
        _ => false,
    }
}

/// Executes one command for `nexus` as a task that just arrived; an aborted command is
/// answered with TASK ABORTED. Never panics on any CDB.
pub async fn execute(nexus: &ItNexus, cmd: ScsiCommand) -> ScsiResponse {
    let meta = TaskMeta {
        id: 0,
        received: std::time::Instant::now(),
    };
    execute_task(nexus, cmd, meta)
        .await
        .unwrap_or_else(|Aborted| ScsiResponse::status(status::TASK_ABORTED))
}

/// Executes one command for `nexus`. Commands that touch the medium run inside the unit's
/// task set, so an abort waits for their I/O, and `Err(Aborted)` says an abort covered
/// this one (before or during its I/O). Never panics on any CDB; never returns another
/// Rust error.
pub async fn execute_task(
    nexus: &ItNexus,
    cmd: ScsiCommand,
    meta: TaskMeta,
) -> Result<ScsiResponse, Aborted> {
    let parsed = cdb::parse(&cmd.cdb);
    let opcode = cmd.cdb.first().copied().unwrap_or(0xff);
    // INQUIRY, REPORT LUNS and REQUEST SENSE neither report nor clear unit attentions
    // (REQUEST SENSE returns and clears it as its data).
    let ua_exempt = matches!(
        opcode,
        opcodes::INQUIRY | opcodes::REPORT_LUNS | opcodes::REQUEST_SENSE
    );
    let Some((mapped, ua)) = nexus.lookup(cmd.lun, !ua_exempt) else {
        return Ok(match (parsed, opcode) {
            (Ok(c), opcodes::INQUIRY | opcodes::REPORT_LUNS | opcodes::REQUEST_SENSE) => {
                spc::unmapped(nexus, c)
            }
            (Err(s), opcodes::INQUIRY | opcodes::REPORT_LUNS | opcodes::REQUEST_SENSE) => {
                ScsiResponse::check(s)
            }
            _ => ScsiResponse::check(Sense::LUN_NOT_SUPPORTED),
        });
    };
    if let (Some(ua), false) = (ua, ua_exempt) {
        return Ok(ScsiResponse::check(ua));
    }
    let command = match parsed {
        Ok(c) => c,
        Err(s) => return Ok(ScsiResponse::check(s)),
    };
    let unit = &mapped.unit;
    let access = access(&command);
    if !unit
        .reservations
        .permits(nexus.initiator_port(), nexus.target_port(), access)
    {
        return Ok(ScsiResponse::status(status::RESERVATION_CONFLICT));
    }
    // Commands that touch the medium get NOT READY while the backstore is offline,
    // before any range check (the capacity is unknown then).
    let store = if needs_medium(&command) {
        match unit.ready() {
            Ok(s) => Some(s),
            Err(s) => return Ok(ScsiResponse::check(s)),
        }
    } else {
        None
    };
    let ctx = Ctx {
        nexus,
        m: &mapped,
        ua,
        store,
        expected_in: cmd.expected_in,
    };
    let data_out_len = data_out_len(&command, unit.block_size());
    let io = match command {
        Command::Read { blocks, .. } => Some((false, blocks)),
        Command::Write { blocks, .. } | Command::WriteAndVerify { blocks, .. } => {
            Some((true, blocks))
        }
        _ => None,
    };
    let started = io.map(|_| std::time::Instant::now());
    let guard = match medium_access(&command) {
        Some(a) => match unit
            .tasks
            .begin(nexus.key(), meta.id, meta.received, a)
            .await
        {
            Some(g) => Some(g),
            None => return Err(Aborted),
        },
        None => None,
    };
    let mut resp = match dispatch(&ctx, command, cmd.data_out).await {
        Ok(r) => r,
        Err(s) => ScsiResponse::check(s),
    };
    if guard.is_some_and(|g| g.aborted()) {
        return Err(Aborted);
    }
    if let (Some((write, blocks)), Some(t0)) = (io, started) {
        let bytes = u64::from(blocks) * u64::from(unit.block_size());
        unit.metrics.record(write, bytes, t0.elapsed());
    }
    resp.data_out_len = data_out_len;
    Ok(resp)
}

/// Bytes of Data-Out the CDB transfers (for the transport's residual count).
fn data_out_len(c: &Command, block_size: u32) -> Option<u32> {
    use Command::*;
    let blocks = |n: u32| Some(n.saturating_mul(block_size));
    match *c {
        Write { blocks: n, .. } | WriteAndVerify { blocks: n, .. } => blocks(n),
        Verify {
            blocks: n, bytchk, ..
        } => match bytchk {
            0 => Some(0),
            3 => Some(block_size),
            _ => blocks(n),
        },
        CompareAndWrite { blocks: n, .. } => blocks(n.saturating_mul(2)),
        WriteSame { ndob, .. } => Some(if ndob { 0 } else { block_size }),
        ModeSelect { len, .. } | Unmap { len } | PrOut { len, .. } => Some(len),
        _ => None,
    }
}

/// How a command touches the medium, for the task set (`None`: it does not).
fn medium_access(c: &Command) -> Option<tasks::Access> {
    use Command::*;
    use tasks::Access;
    let span = |lba: u64, n: u64| (lba, lba.saturating_add(n));
    Some(match *c {
        Read { lba, blocks } => {
            let (a, b) = span(lba, u64::from(blocks));
            Access::Read(a, b)
        }
        Verify { lba, blocks, .. } => {
            let (a, b) = span(lba, u64::from(blocks));
            Access::Read(a, b)
        }
        Write { lba, blocks, .. } | WriteAndVerify { lba, blocks } => {
            let (a, b) = span(lba, u64::from(blocks));
            Access::Write(a, b)
        }
        CompareAndWrite { lba, blocks, .. } => {
            let (a, b) = span(lba, u64::from(blocks));
            Access::CompareAndWrite(a, b)
        }
        WriteSame { lba, blocks, .. } => {
            // 0 blocks: to the end of the medium.
            let n = if blocks == 0 {
                u64::MAX
            } else {
                u64::from(blocks)
            };
            let (a, b) = span(lba, n);
            Access::Write(a, b)
        }
        Unmap { .. } => Access::Write(0, u64::MAX),
        GetLbaStatus { lba, .. } => Access::Read(lba, u64::MAX),
        SyncCache { .. } => Access::Other,
        _ => return None,
    })
}

/// What a command needs to run against one mapped unit.
pub(crate) struct Ctx<'a> {
    /// The asking nexus.
    pub nexus: &'a ItNexus,
    /// The LUN map entry.
    pub m: &'a MappedLun,
    /// Unit attention pending (peeked, for REQUEST SENSE).
    pub ua: Option<Sense>,
    /// The backstore, loaded once for the command when it needs the medium.
    pub store: Option<std::sync::Arc<crate::backstore::Backstore>>,
    /// Data-In the initiator expects (reads read no more).
    pub expected_in: u32,
}

impl Ctx<'_> {
    /// The logical unit.
    pub fn unit(&self) -> &LogicalUnit {
        &self.m.unit
    }
    /// The backstore this command runs against (NOT READY when the unit is offline).
    pub fn store(&self) -> Result<&crate::backstore::Backstore, Sense> {
        self.store.as_deref().ok_or(Sense::NOT_READY)
    }
    /// Fails with WRITE PROTECTED on read-only mappings.
    pub fn writable(&self) -> Result<(), Sense> {
        if self.m.read_only {
            Err(Sense::WRITE_PROTECTED)
        } else {
            Ok(())
        }
    }
}

/// Whether `c` needs the backstore: everything but the commands a unit answers without its
/// medium (identity, reservations, mode pages, sense, start/stop).
fn needs_medium(c: &Command) -> bool {
    use Command::*;
    !matches!(
        c,
        Inquiry { .. }
            | ReportLuns { .. }
            | RequestSense { .. }
            | ReportOpcodes { .. }
            | PrIn { .. }
            | PrOut { .. }
            | Reserve
            | Release
            | ModeSense { .. }
            | ModeSelect { .. }
            | StartStopUnit
            | PreventAllow { .. }
    )
}

fn access(c: &Command) -> Access {
    use Command::*;
    match c {
        TestUnitReady
        | RequestSense { .. }
        | Inquiry { .. }
        | ReportLuns { .. }
        | ReadCapacity10
        | ReadCapacity16 { .. }
        | ReportOpcodes { .. }
        | PrIn { .. }
        | PrOut { .. }
        | Reserve
        | Release => Access::Always,
        PreventAllow { prevent: 0 } => Access::Spc2Allowed,
        Read { .. } | Verify { .. } | ModeSense { .. } | GetLbaStatus { .. } | PreFetch { .. } => {
            Access::Read
        }
        _ => Access::Write,
    }
}

async fn dispatch(ctx: &Ctx<'_>, c: Command, data_out: IoBuf) -> CmdResult {
    use Command::*;
    match c {
        TestUnitReady | StartStopUnit => Ok(ScsiResponse::good(Bytes::new())),
        PreventAllow { prevent } => {
            // Nothing can be removed, so PREVENT/ALLOW is a no-op (libiscsi skips these
            // tests for RMB=0; some initiators send PREVENT to fixed disks anyway). The
            // obsolete values 10b/11b are refused.
            if prevent < 2 {
                Ok(ScsiResponse::good(Bytes::new()))
            } else {
                Err(Sense::INVALID_FIELD_IN_CDB)
            }
        }
        RequestSense { desc, alloc } => Ok(spc::request_sense(ctx, desc, alloc)),
        Inquiry { evpd, page, alloc } => spc::inquiry(ctx, evpd, page, alloc),
        ReportLuns { select, alloc } => spc::report_luns(ctx.nexus, select, alloc),
        ReportOpcodes {
            rctd,
            options,
            opcode,
            sa,
            alloc,
        } => spc::report_opcodes(rctd, options, opcode, sa, alloc),
        ModeSense {
            ten,
            dbd,
            llbaa,
            pc,
            page,
            subpage,
            alloc,
        } => mode::sense(ctx, ten, dbd, llbaa, pc, page, subpage, alloc),
        ModeSelect { ten, sp, len } => mode::select(ctx, ten, sp, len, &data_out),
        Reserve | Release | PrIn { .. } | PrOut { .. } => spc::reservation(ctx, c, &data_out).await,
        ReadCapacity10 => Ok(sbc::read_capacity_10(ctx)),
        ReadCapacity16 { alloc } => Ok(sbc::read_capacity_16(ctx, alloc)),
        Read { lba, blocks } => sbc::read(ctx, lba, blocks).await,
        Write { lba, blocks, fua } => sbc::write(ctx, lba, blocks, fua, data_out).await,
        WriteAndVerify { lba, blocks } => sbc::write(ctx, lba, blocks, false, data_out).await,
        Verify {
            lba,
            blocks,
            bytchk,
        } => sbc::verify(ctx, lba, blocks, bytchk, &data_out).await,
        SyncCache { lba, blocks } => sbc::sync_cache(ctx, lba, blocks).await,
        PreFetch { lba, blocks } => sbc::pre_fetch(ctx, lba, blocks),
        Unmap { len } => sbc::unmap(ctx, len, &data_out).await,
        WriteSame {
            lba,
            blocks,
            unmap,
            ndob,
        } => sbc::write_same(ctx, lba, blocks, unmap, ndob, &data_out).await,
        CompareAndWrite { lba, blocks, fua } => {
            sbc::compare_and_write(ctx, lba, blocks, fua, data_out).await
        }
        GetLbaStatus { lba, alloc } => sbc::get_lba_status(ctx, lba, alloc).await,
    }
}
