//! The I_T nexus: initiator and target port names, the LUN map, and unit attentions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;

use super::lun::{LogicalUnit, LunMap, MappedLun};
use super::sense::Sense;
use super::tasks::NexusKey;

/// Source of nexus ids (unique for the life of the process).
static NEXT_NEXUS: AtomicU64 = AtomicU64::new(1);

/// What this nexus last saw of one unit's generation counters.
#[derive(Debug)]
struct Seen {
    unit: Arc<LogicalUnit>,
    reset: AtomicU64,
    capacity: AtomicU64,
    ready: AtomicU64,
}

impl Seen {
    fn current(unit: &Arc<LogicalUnit>) -> Self {
        Seen {
            unit: Arc::clone(unit),
            reset: AtomicU64::new(unit.reset_gen()),
            capacity: AtomicU64::new(unit.capacity_gen()),
            ready: AtomicU64::new(unit.ready_gen()),
        }
    }
}

/// The LUN map with per-unit UA bookkeeping, swapped as a whole.
#[derive(Debug)]
struct View {
    map: Arc<LunMap>,
    seen: Vec<Seen>,
}

/// Per I_T nexus state: who the initiator is, its LUN map (replaceable while the session
/// runs), and its pending unit attentions.
#[derive(Debug)]
pub struct ItNexus {
    key: Arc<NexusKey>,
    view: ArcSwap<View>,
    luns_changed: AtomicBool,
}

fn sorted(mut luns: LunMap) -> LunMap {
    luns.sort_by_key(|m| m.lun);
    luns.dedup_by_key(|m| m.lun);
    luns
}

impl ItNexus {
    /// A nexus for `initiator_port` (e.g. `iqn...,i,0x<isid>`) on `target_port`
    /// (e.g. `iqn...,t,0x0001`) seeing `luns`.
    pub fn new(initiator_port: String, target_port: String, luns: LunMap) -> Self {
        let luns = sorted(luns);
        let seen = luns.iter().map(|m| Seen::current(&m.unit)).collect();
        ItNexus {
            key: Arc::new(NexusKey {
                id: NEXT_NEXUS.fetch_add(1, Ordering::Relaxed),
                initiator_port,
                target_port,
            }),
            view: ArcSwap::from_pointee(View {
                map: Arc::new(luns),
                seen,
            }),
            luns_changed: AtomicBool::new(false),
        }
    }

    /// The initiator port name.
    pub fn initiator_port(&self) -> &str {
        &self.key.initiator_port
    }

    /// The target port name.
    pub fn target_port(&self) -> &str {
        &self.key.target_port
    }

    /// The nexus's identity in task sets (its id and port names).
    pub fn key(&self) -> &Arc<NexusKey> {
        &self.key
    }

    /// The nexus's id (unique for the life of the process).
    pub fn id(&self) -> u64 {
        self.key.id
    }

    /// The current LUN map (sorted by LUN).
    pub fn luns(&self) -> Arc<LunMap> {
        Arc::clone(&self.view.load().map)
    }

    /// Replaces the LUN map and queues REPORTED LUNS DATA HAS CHANGED for this nexus.
    /// Units that stay mapped keep their unit-attention state.
    pub fn set_luns(&self, luns: LunMap) {
        let luns = sorted(luns);
        let old = self.view.load();
        let seen = luns
            .iter()
            .map(
                |m| match old.seen.iter().find(|s| Arc::ptr_eq(&s.unit, &m.unit)) {
                    Some(s) => Seen {
                        unit: Arc::clone(&m.unit),
                        reset: AtomicU64::new(s.reset.load(Ordering::Acquire)),
                        capacity: AtomicU64::new(s.capacity.load(Ordering::Acquire)),
                        ready: AtomicU64::new(s.ready.load(Ordering::Acquire)),
                    },
                    None => Seen::current(&m.unit),
                },
            )
            .collect();
        self.view.store(Arc::new(View {
            map: Arc::new(luns),
            seen,
        }));
        self.luns_changed.store(true, Ordering::Release);
    }

    /// Resets logical unit `lun` (LOGICAL UNIT RESET task management function): releases
    /// its SPC-2 reservation and gives every I_T nexus, this one included (SAM-5 §6.3.3,
    /// what libiscsi's multipath test checks), a BUS DEVICE RESET FUNCTION OCCURRED unit
    /// attention. Returns false when `lun` is not mapped.
    pub fn lun_reset(&self, lun: u64) -> bool {
        let view = self.view.load();
        let Some(i) = find(&view.map, lun) else {
            return false;
        };
        view.seen[i].unit.reset();
        true
    }

    /// Resets every logical unit this nexus sees (TARGET WARM/COLD RESET as seen through
    /// this nexus): like [`ItNexus::lun_reset`] for each mapped LUN.
    pub fn target_reset(&self) {
        let view = self.view.load();
        for (i, seen) in view.seen.iter().enumerate() {
            // A unit mapped at several LUNs is reset once.
            if !view.seen[..i]
                .iter()
                .any(|s| Arc::ptr_eq(&s.unit, &seen.unit))
            {
                seen.unit.reset();
            }
        }
    }

    /// Looks up `lun`: the entry and the unit attention pending for it (consumed when
    /// `consume`).
    pub(crate) fn lookup(&self, lun: u64, consume: bool) -> Option<(MappedLun, Option<Sense>)> {
        let view = self.view.load();
        let i = find(&view.map, lun)?;
        let seen = &view.seen[i];
        let unit = &seen.unit;
        let ua = take(&seen.reset, unit.reset_gen(), consume)
            .then_some(Sense::UA_LUN_RESET)
            .or_else(|| {
                take(&seen.ready, unit.ready_gen(), consume).then_some(Sense::UA_NOT_READY_TO_READY)
            })
            .or_else(|| {
                take(&seen.capacity, unit.capacity_gen(), consume)
                    .then_some(Sense::UA_CAPACITY_CHANGED)
            })
            .or_else(|| {
                unit.reservations
                    .take_ua(&self.key.initiator_port, &self.key.target_port, consume)
            })
            .or_else(|| self.take_luns_changed(consume));
        Some((view.map[i].clone(), ua))
    }

    /// Consumes (or peeks at) REPORTED LUNS DATA HAS CHANGED.
    pub(crate) fn take_luns_changed(&self, consume: bool) -> Option<Sense> {
        let pending = if consume {
            self.luns_changed.swap(false, Ordering::AcqRel)
        } else {
            self.luns_changed.load(Ordering::Acquire)
        };
        pending.then_some(Sense::UA_LUNS_CHANGED)
    }
}

impl Drop for ItNexus {
    /// I_T nexus loss: SPC-2 reservations held through this nexus are released.
    fn drop(&mut self) {
        for s in &self.view.load().seen {
            s.unit
                .reservations
                .nexus_lost(&self.key.initiator_port, &self.key.target_port);
        }
    }
}

fn find(map: &LunMap, lun: u64) -> Option<usize> {
    map.binary_search_by_key(&lun, |m| m.lun).ok()
}

/// True when `seen` differs from `current`; with `consume`, records `current` (once).
fn take(seen: &AtomicU64, current: u64, consume: bool) -> bool {
    let s = seen.load(Ordering::Acquire);
    if s == current {
        return false;
    }
    !consume
        || seen
            .compare_exchange(s, current, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
}
