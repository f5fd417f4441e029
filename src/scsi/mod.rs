//! The SCSI core (SAM/SPC/SBC), independent of the transport.
//!
//! The iSCSI layer hands a [`ScsiCommand`] (LUN, CDB, write data) and an [`ItNexus`] (who is
//! asking, which LUNs they see) to [`execute`], and gets a [`ScsiResponse`] back: status,
//! sense and Data-In. SCSI conditions are never Rust errors: a bad CDB field or an LBA out
//! of range is a CHECK CONDITION response carrying [`sense::Sense`].
//!
//! Storage is reached only through [`crate::backstore::Backstore`].

// IMPLEMENTATION NOTE (skeleton): the public API below is the contract the iSCSI layer and
// the registry build against.

use std::sync::Arc;

use bytes::Bytes;

use crate::backstore::Backstore;

pub mod sense;

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
    pub data_out: Vec<u8>,
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
}

/// Stable identity of a logical unit, persisted in the state dir by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunIdentity {
    /// Unit serial number (VPD 0x80), ASCII, at most 32 characters.
    pub serial: String,
    /// NAA locally-assigned identifier (VPD 0x83, NAA type 3): the top nibble is 3.
    pub naa: u64,
}

/// A logical unit: a backstore plus its identity and attributes.
#[derive(Debug)]
pub struct LogicalUnit {
    _private: (),
}

impl LogicalUnit {
    /// A logical unit over `backstore` with the given stable identity.
    pub fn new(_backstore: Arc<Backstore>, _identity: LunIdentity) -> Self {
        todo!("scsi implementation")
    }
}

/// One entry of the LUN map an I_T nexus sees.
#[derive(Debug, Clone)]
pub struct MappedLun {
    /// The LUN number the initiator uses.
    pub lun: u64,
    /// The logical unit behind it.
    pub unit: Arc<LogicalUnit>,
    /// Writes are refused with DATA PROTECT / WRITE PROTECTED; MODE SENSE sets WP.
    pub read_only: bool,
}

/// The LUNs one initiator sees on one target, sorted by `lun`.
pub type LunMap = Vec<MappedLun>;

/// Per I_T nexus state: who the initiator is, its LUN map (replaceable while the session
/// runs), and its pending unit attentions.
#[derive(Debug)]
pub struct ItNexus {
    _private: (),
}

impl ItNexus {
    /// A nexus for `initiator_port` (e.g. `iqn...,i,0x<isid>`) on `target_port`
    /// (e.g. `iqn...,t,0x0001`) seeing `luns`.
    pub fn new(_initiator_port: String, _target_port: String, _luns: LunMap) -> Self {
        todo!("scsi implementation")
    }
}

impl ItNexus {
    /// The current LUN map.
    pub fn luns(&self) -> Arc<LunMap> {
        todo!("scsi implementation")
    }
    /// Replaces the LUN map (queues REPORTED LUNS DATA HAS CHANGED).
    pub fn set_luns(&self, _map: LunMap) {
        todo!("scsi implementation")
    }
    /// LOGICAL UNIT RESET of `lun` by this nexus.
    pub fn lun_reset(&self, _lun: u64) {
        todo!("scsi implementation")
    }
}

/// Executes one command for `nexus`. Never panics on any CDB; never returns a Rust error.
pub async fn execute(_nexus: &ItNexus, _cmd: ScsiCommand) -> ScsiResponse {
    todo!("scsi implementation")
}
