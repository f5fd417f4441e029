//! Logical units and LUN map entries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::identity::LunIdentity;
use super::pr::Reservations;
use super::sense::Sense;
use crate::backstore::health::{Health, State};
use crate::backstore::{Backstore, BackstoreSpec};

/// The storage slot of a logical unit: the open backstore, or why there is none.
#[derive(Debug)]
pub enum Medium {
    /// Serving from this backstore.
    Online(Arc<Backstore>),
    /// No backstore (cannot be opened yet, or vanished): the unit answers NOT READY.
    Offline {
        /// Why, for `status` and the log.
        reason: String,
    },
}

/// A logical unit: its identity, reservations, unit attentions and counters, and a slot
/// holding its backstore ([`Medium`]). The unit exists while the backstore is offline, so
/// initiators keep their nexus, reservations and LUN numbers, and it comes back (with a
/// unit attention) when the backstore does.
///
/// Unit attentions are generation counters: a LUN reset, a capacity change or a not-ready
/// to ready transition bumps one, and every nexus that has not seen the new value reports
/// the matching UA once.
#[derive(Debug)]
pub struct LogicalUnit {
    medium: ArcSwap<Medium>,
    /// Geometry as last known (kept while offline, for MODE SENSE and VPD).
    block_size: AtomicU32,
    write_cache: AtomicBool,
    last_blocks: AtomicU64,
    identity: LunIdentity,
    reset_gen: AtomicU64,
    capacity_gen: AtomicU64,
    ready_gen: AtomicU64,
    /// Commands touching the medium now: aborts wait for them; COMPARE AND WRITE holds
    /// its blocks against overlapping accesses.
    pub(crate) tasks: super::tasks::TaskSet,
    /// SPC-2 and persistent reservations.
    pub(crate) reservations: Reservations,
    /// I/O counters and latency histogram.
    pub metrics: super::metrics::IoMetrics,
    /// Health state and error counters of the backstore behind the unit.
    pub health: Health,
}

impl LogicalUnit {
    /// A logical unit over `backstore` with the given stable identity.
    pub fn new(backstore: Arc<Backstore>, identity: LunIdentity) -> Self {
        let device = backstore
            .path()
            .map_or("memory".to_string(), |p| p.display().to_string());
        let health = Health::new(backstore.name(), &device, State::Healthy, None);
        Self::with(
            Medium::Online(backstore.clone()),
            backstore.block_size(),
            backstore.write_cache(),
            backstore.num_blocks(),
            identity,
            health,
        )
    }

    /// A logical unit whose backstore (`spec`) is not open: NOT READY until
    /// [`LogicalUnit::set_online`]. Nothing is logged here (see [`Health::announce`]).
    pub fn offline(spec: &BackstoreSpec, identity: LunIdentity, reason: String) -> Self {
        let device = spec
            .path
            .as_ref()
            .map_or("memory".to_string(), |p| p.display().to_string());
        let health = Health::new(&spec.name, &device, State::Offline, Some(reason.clone()));
        Self::with(
            Medium::Offline { reason },
            spec.block_size,
            spec.write_cache,
            0,
            identity,
            health,
        )
    }

    fn with(
        medium: Medium,
        block_size: u32,
        write_cache: bool,
        blocks: u64,
        identity: LunIdentity,
        health: Health,
    ) -> Self {
        LogicalUnit {
            medium: ArcSwap::from_pointee(medium),
            block_size: AtomicU32::new(block_size),
            write_cache: AtomicBool::new(write_cache),
            last_blocks: AtomicU64::new(blocks),
            identity,
            reset_gen: AtomicU64::new(0),
            capacity_gen: AtomicU64::new(0),
            ready_gen: AtomicU64::new(0),
            tasks: Default::default(),
            reservations: Reservations::default(),
            metrics: Default::default(),
            health,
        }
    }

    /// The storage behind this unit, when online.
    pub fn backstore(&self) -> Option<Arc<Backstore>> {
        match &**self.medium.load() {
            Medium::Online(b) => Some(b.clone()),
            Medium::Offline { .. } => None,
        }
    }

    /// The backstore, or NOT READY when the unit is offline.
    pub fn ready(&self) -> Result<Arc<Backstore>, Sense> {
        self.backstore().ok_or(Sense::NOT_READY)
    }

    /// Why the unit is offline, when it is.
    pub fn offline_reason(&self) -> Option<String> {
        match &**self.medium.load() {
            Medium::Online(_) => None,
            Medium::Offline { reason } => Some(reason.clone()),
        }
    }

    /// Puts `backstore` in the slot (it came back, or was reopened with new settings).
    /// Coming from offline raises NOT READY TO READY CHANGE on every nexus; a different
    /// capacity or block size raises CAPACITY DATA HAS CHANGED.
    pub fn set_online(&self, backstore: Arc<Backstore>) {
        let was_offline = matches!(**self.medium.load(), Medium::Offline { .. });
        let bs = backstore.block_size();
        let blocks = backstore.num_blocks();
        self.write_cache
            .store(backstore.write_cache(), Ordering::Release);
        let changed = self.block_size.swap(bs, Ordering::AcqRel) != bs
            || self.last_blocks.swap(blocks, Ordering::AcqRel) != blocks;
        self.medium.store(Arc::new(Medium::Online(backstore)));
        if was_offline {
            self.ready_gen.fetch_add(1, Ordering::AcqRel);
            self.health.online(Instant::now());
        }
        if changed {
            self.capacity_gen.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Takes the backstore out of the slot: from now on the unit answers NOT READY.
    /// Commands already running keep their reference and finish.
    pub fn set_offline(&self, reason: &str) {
        self.medium.store(Arc::new(Medium::Offline {
            reason: reason.to_string(),
        }));
        self.health.offline(Instant::now(), reason);
    }

    /// Like [`LogicalUnit::set_offline`], only while `store` is still the one in the slot
    /// (a command that saw the old backstore fail must not take a reopened one offline).
    pub fn set_offline_if(&self, store: &Arc<Backstore>, reason: &str) -> bool {
        let cur = self.medium.load();
        if !matches!(&**cur, Medium::Online(b) if Arc::ptr_eq(b, store)) {
            return false;
        }
        let new = Arc::new(Medium::Offline {
            reason: reason.to_string(),
        });
        let prev = self.medium.compare_and_swap(&*cur, new);
        if Arc::ptr_eq(&prev, &cur) {
            self.health.offline(Instant::now(), reason);
            true
        } else {
            false
        }
    }

    /// The name of the backstore behind the unit (also while it is offline).
    pub fn backstore_name(&self) -> &str {
        self.health.name()
    }

    /// Serial number and NAA identifier.
    pub fn identity(&self) -> &LunIdentity {
        &self.identity
    }

    /// Logical block size in bytes (as last known while offline).
    pub fn block_size(&self) -> u32 {
        match &**self.medium.load() {
            Medium::Online(b) => b.block_size(),
            Medium::Offline { .. } => self.block_size.load(Ordering::Acquire),
        }
    }

    /// Whether writes are cached (WCE of the caching mode page), as last known.
    pub fn write_cache(&self) -> bool {
        self.backstore()
            .map_or(self.write_cache.load(Ordering::Acquire), |b| {
                b.write_cache()
            })
    }

    /// Capacity in logical blocks (0 while offline).
    pub fn num_blocks(&self) -> u64 {
        self.backstore().map_or(0, |b| b.num_blocks())
    }

    /// Announces a capacity change (call after [`Backstore::refresh_size`]): every nexus
    /// gets CAPACITY DATA HAS CHANGED once.
    pub fn capacity_changed(&self) {
        if let Some(b) = self.backstore() {
            self.last_blocks.store(b.num_blocks(), Ordering::Release);
        }
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

    /// Current not-ready-to-ready generation.
    pub(crate) fn ready_gen(&self) -> u64 {
        self.ready_gen.load(Ordering::Acquire)
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
