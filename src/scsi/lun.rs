//! Logical units and LUN map entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::identity::LunIdentity;
use super::pr::Reservations;
use crate::backstore::Backstore;

/// A logical unit: a backstore plus its identity and attributes.
///
/// Unit attentions are generation counters: a LUN reset or a capacity change bumps one,
/// and every nexus that has not seen the new value reports the matching UA once.
///
/// What lasts (identity, reservations, unit-attention generations) belongs to the unit;
/// the open backstore can be replaced under it (`replace_backstore`), so a
/// reload that reopens the same disk keeps the unit and what initiators know of it.
#[derive(Debug)]
pub struct LogicalUnit {
    backstore: ArcSwap<Backstore>,
    identity: LunIdentity,
    reset_gen: AtomicU64,
    capacity_gen: AtomicU64,
    /// Serializes COMPARE AND WRITE on this unit.
    pub(crate) caw_lock: tokio::sync::Mutex<()>,
    /// SPC-2 and persistent reservations.
    pub(crate) reservations: Reservations,
    /// I/O counters and latency histogram.
    pub metrics: super::metrics::IoMetrics,
}

impl LogicalUnit {
    /// A logical unit over `backstore` with the given stable identity.
    pub fn new(backstore: Arc<Backstore>, identity: LunIdentity) -> Self {
        LogicalUnit {
            backstore: ArcSwap::new(backstore),
            identity,
            reset_gen: AtomicU64::new(0),
            capacity_gen: AtomicU64::new(0),
            caw_lock: tokio::sync::Mutex::new(()),
            reservations: Reservations::default(),
            metrics: Default::default(),
        }
    }

    /// The storage behind this unit.
    pub fn backstore(&self) -> Arc<Backstore> {
        self.backstore.load_full()
    }

    /// Puts `store` (the same disk reopened, e.g. with another cache mode) under this unit;
    /// commands already running finish on the previous one.
    pub(crate) fn replace_backstore(&self, store: Arc<Backstore>) {
        self.backstore.store(store);
    }

    /// Serial number and NAA identifier.
    pub fn identity(&self) -> &LunIdentity {
        &self.identity
    }

    /// Logical block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.backstore.load().block_size()
    }

    /// Capacity in logical blocks.
    pub fn num_blocks(&self) -> u64 {
        self.backstore.load().num_blocks()
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

    /// Resets the unit (SPC-2 reservations released) and returns the new reset generation.
    pub(crate) fn reset(&self) -> u64 {
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
