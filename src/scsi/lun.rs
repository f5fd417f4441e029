//! Logical units and LUN map entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::pr::Reservations;
use crate::backstore::Backstore;

/// Stable identity of a logical unit, persisted in the state dir by the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunIdentity {
    /// Unit serial number (VPD 0x80), ASCII, at most 32 characters.
    pub serial: String,
    /// NAA locally-assigned identifier (VPD 0x83, NAA type 3): the top nibble is 3.
    pub naa: u64,
}

/// A logical unit: a backstore plus its identity and attributes.
///
/// Unit attentions are generation counters: a LUN reset or a capacity change bumps one,
/// and every nexus that has not seen the new value reports the matching UA once.
#[derive(Debug)]
pub struct LogicalUnit {
    backstore: Arc<Backstore>,
    identity: LunIdentity,
    reset_gen: AtomicU64,
    capacity_gen: AtomicU64,
    /// Commands touching the medium now: aborts wait for them; COMPARE AND WRITE holds
    /// its blocks against overlapping accesses.
    pub(crate) tasks: super::tasks::TaskSet,
    /// SPC-2 and persistent reservations.
    pub(crate) reservations: Reservations,
    /// I/O counters and latency histogram.
    pub metrics: super::metrics::IoMetrics,
}

impl LogicalUnit {
    /// A logical unit over `backstore` with the given stable identity.
    pub fn new(backstore: Arc<Backstore>, identity: LunIdentity) -> Self {
        LogicalUnit {
            backstore,
            identity,
            reset_gen: AtomicU64::new(0),
            capacity_gen: AtomicU64::new(0),
            tasks: Default::default(),
            reservations: Reservations::default(),
            metrics: Default::default(),
        }
    }

    /// The storage behind this unit.
    pub fn backstore(&self) -> &Arc<Backstore> {
        &self.backstore
    }

    /// Serial number and NAA identifier.
    pub fn identity(&self) -> &LunIdentity {
        &self.identity
    }

    /// Logical block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.backstore.block_size()
    }

    /// Capacity in logical blocks.
    pub fn num_blocks(&self) -> u64 {
        self.backstore.num_blocks()
    }

    /// Announces a capacity change (call after [`Backstore::refresh_size`]): every nexus
    /// gets CAPACITY DATA HAS CHANGED once.
    pub fn capacity_changed(&self) {
        self.capacity_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// Current reset generation.
    pub(crate) fn reset_gen(&self) -> u64 {
        self.reset_gen.load(Ordering::Acquire)
    }

    /// Current capacity generation.
    pub(crate) fn capacity_gen(&self) -> u64 {
        self.capacity_gen.load(Ordering::Acquire)
    }

    /// Aborts every task in `scope` that arrived at or before `before`, and waits until
    /// none of them is doing I/O (see [`super::tasks::TaskSet::abort`]).
    pub async fn abort_tasks(
        &self,
        scope: super::tasks::AbortScope,
        before: std::time::Instant,
    ) -> usize {
        self.tasks.abort(scope, before).await
    }

    /// Resets the unit (SPC-2 reservations released) and returns the new reset generation.
    pub fn reset(&self) -> u64 {
        self.reservations.reset();
        self.reset_gen.fetch_add(1, Ordering::AcqRel) + 1
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
