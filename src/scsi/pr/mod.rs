//! Reservations: SPC-2 RESERVE/RELEASE and SPC-4 persistent reservations, APTPL included.
//!
//! Layout: `state` holds the registrations, the reservation and the reservation unit
//! attentions; `out` computes what a PERSISTENT RESERVE OUT does (every service action,
//! SPEC_I_PT and ALL_TG_PT included); `report` answers PERSISTENT RESERVE IN;
//! `transport_id` reads and writes iSCSI TransportIDs; `persist` is the APTPL snapshot and
//! the [`PrStore`] it is written to.
//!
//! Locking: the state lives behind a mutex that the data path takes only while a
//! reservation is held (`active`), so unreserved units cost one atomic load per command.
//! PERSISTENT RESERVE OUT commands run one at a time per unit: the next state is computed
//! under the mutex, written to the store when APTPL is active (off the async workers, the
//! mutex released), and only then installed; a failed write leaves the state as it was and
//! answers HARDWARE ERROR, so GOOD always means "in effect and, with APTPL, on disk".
//!
//! Registrations name an I_T nexus by its initiator port (`iqn...,i,0x<isid>`) and target
//! port (`iqn...,t,0x<tpgt>`). A TransportID of format 00b (an iSCSI name without ISID,
//! from SPEC_I_PT or REGISTER AND MOVE) registers every port of that initiator device on
//! the target port, as LIO does. ALL_TG_PT registers the initiator port on each target
//! port of the unit (see [`Reservations::set_target_ports`]); those registrations change
//! key and unregister together.

mod out;
mod persist;
mod report;
mod state;
mod transport_id;

#[cfg(test)]
mod tests;

/// A 24-byte PERSISTENT RESERVE OUT parameter list (tests).
#[cfg(test)]
pub(crate) fn test_params(key: u64, sa_key: u64, flags: u8) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = flags;
    p
}

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub use persist::{PrSnapshot, PrStore, SavedRegistration, SavedReservation};

use super::sense::{Sense, key};
use super::status;
use state::{State, all_registrants, initiator_matches, registrants_only};

/// Reservation types (SPC-4 table 212).
pub mod kind {
    /// Write Exclusive.
    pub const WE: u8 = 1;
    /// Exclusive Access.
    pub const EA: u8 = 3;
    /// Write Exclusive – Registrants Only.
    pub const WE_RO: u8 = 5;
    /// Exclusive Access – Registrants Only.
    pub const EA_RO: u8 = 6;
    /// Write Exclusive – All Registrants.
    pub const WE_AR: u8 = 7;
    /// Exclusive Access – All Registrants.
    pub const EA_AR: u8 = 8;
}

/// ILLEGAL REQUEST / INSUFFICIENT REGISTRATION RESOURCES (55/04).
pub const INSUFFICIENT_REGISTRATION_RESOURCES: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x55, 0x04);
/// HARDWARE ERROR / INTERNAL TARGET FAILURE (44/00): the APTPL state could not be written,
/// so the command did not take effect.
pub const INTERNAL_TARGET_FAILURE: Sense = Sense::new(key::HARDWARE_ERROR, 0x44, 0x00);

/// How a command touches the medium, for reservation conflict checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Never conflicts (INQUIRY, REPORT LUNS, READ CAPACITY, ...).
    Always,
    /// Allowed to non-holders under the Write Exclusive types.
    Read,
    /// Allowed only to holders (or registrants for RO/AR types).
    Write,
    /// Allowed to non-holders of an SPC-2 reservation, else like `Write`.
    Spc2Allowed,
}

/// Outcome of a reservation command: data, or a non-GOOD status with optional sense.
pub type PrResult = Result<Vec<u8>, (u8, Option<Sense>)>;

/// A failed reservation command: status and sense.
type Fail = (u8, Option<Sense>);

fn conflict() -> Fail {
    (status::RESERVATION_CONFLICT, None)
}
fn check(s: Sense) -> Fail {
    (status::CHECK_CONDITION, Some(s))
}

/// An I_T nexus (or, for a registration made from a TransportID without ISID, every port
/// of an initiator device through one target port) whose reservation or registration a
/// PREEMPT AND ABORT preempted: its tasks are to be aborted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preempted {
    /// Initiator port name (`iqn...,i,0x<isid>`), or an iSCSI name for all its ports.
    pub initiator_port: String,
    /// Target port name (`iqn...,t,0x<tpgt>`).
    pub target_port: String,
}

impl Preempted {
    /// Whether the I_T nexus `initiator_port`/`target_port` is one of these.
    pub fn matches(&self, initiator_port: &str, target_port: &str) -> bool {
        self.target_port == target_port && initiator_matches(&self.initiator_port, initiator_port)
    }
}

/// What a PERSISTENT RESERVE OUT did.
#[derive(Debug, PartialEq, Eq)]
pub struct PrOutcome {
    /// Its status.
    pub result: PrResult,
    /// For a successful PREEMPT AND ABORT: the preempted I_T nexuses, whose tasks (all but
    /// the PERSISTENT RESERVE OUT itself) must be aborted before GOOD is sent. Empty for
    /// every other service action.
    pub preempted: Vec<Preempted>,
}

impl PrOutcome {
    fn fail(f: Fail) -> Self {
        PrOutcome {
            result: Err(f),
            preempted: Vec::new(),
        }
    }
}

/// The reservation state of one logical unit.
#[derive(Debug, Default)]
pub struct Reservations {
    active: AtomicBool,
    ua_pending: AtomicBool,
    state: Mutex<State>,
    /// Serializes PERSISTENT RESERVE OUT (compute, persist, install).
    out_lock: tokio::sync::Mutex<()>,
    /// Where APTPL state goes; None: APTPL is not offered (PTPL_C = 0).
    store: Mutex<Option<Arc<dyn PrStore>>>,
}

impl Reservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store(&self) -> Option<Arc<dyn PrStore>> {
        self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update_active(&self, s: &State) {
        self.active
            .store(s.spc2.is_some() || s.pr.res.is_some(), Ordering::Release);
        self.ua_pending.store(s.has_uas(), Ordering::Release);
    }

    /// Attaches the store APTPL state is written to (None: APTPL refused, PTPL_C = 0).
    pub fn set_store(&self, store: Option<Arc<dyn PrStore>>) {
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = store;
    }

    /// Installs persisted registrations and reservation (APTPL active), e.g. at start.
    pub fn restore(&self, snapshot: &PrSnapshot) -> Result<(), String> {
        let p = snapshot.to_persistent()?;
        let mut s = self.lock();
        s.pr = p;
        self.update_active(&s);
        Ok(())
    }

    /// The current registrations and reservation.
    pub fn snapshot(&self) -> PrSnapshot {
        PrSnapshot::from(&self.lock().pr)
    }

    /// Whether APTPL is active (the last registering command set it).
    pub fn aptpl_active(&self) -> bool {
        self.lock().pr.aptpl
    }

    /// The target ports the unit is exported through, with their relative target port
    /// identifiers: ALL_TG_PT registers on each, REGISTER AND MOVE addresses them, VPD 0x83
    /// and READ FULL STATUS report the identifiers. A port missing from the table (or an
    /// empty table) falls back to the portal group tag in its name.
    pub fn set_target_ports(&self, ports: Vec<(String, u16)>) {
        self.lock().ports = ports;
    }

    /// The relative target port identifier of `target_port` for this unit.
    pub fn relative_port_id(&self, target_port: &str) -> u16 {
        self.lock().rtpi(target_port)
    }

    /// A reservation unit attention owed to `initiator`/`target` (removed when `consume`).
    pub fn take_ua(&self, initiator: &str, target: &str, consume: bool) -> Option<Sense> {
        if !self.ua_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.lock();
        let ua = s.take_ua(initiator, target, consume);
        if consume {
            self.update_active(&s);
        }
        ua
    }

    /// The I_T nexus is gone (logout, connection loss): its SPC-2 reservation ends.
    /// Persistent reservations and registrations are not affected.
    pub fn nexus_lost(&self, initiator: &str, target: &str) {
        let mut s = self.lock();
        if s.spc2_is(initiator, target) {
            s.spc2 = None;
            self.update_active(&s);
        }
    }

    /// LUN reset: SPC-2 reservations are released; persistent ones survive.
    pub fn reset(&self) {
        let mut s = self.lock();
        s.spc2 = None;
        self.update_active(&s);
    }

    /// Whether `initiator`/`target` may run a command of class `access` now.
    pub fn permits(&self, initiator: &str, target: &str, access: Access) -> bool {
        if access == Access::Always || !self.active.load(Ordering::Acquire) {
            return true;
        }
        let s = self.lock();
        if s.spc2.is_some() {
            return s.spc2_is(initiator, target) || access == Access::Spc2Allowed;
        }
        let Some(h) = &s.pr.res else { return true };
        let allowed = if all_registrants(h.kind) || registrants_only(h.kind) {
            s.pr.reg(initiator, target).is_some()
        } else {
            s.pr.is_holder(initiator, target)
        };
        if allowed {
            return true;
        }
        let write_exclusive = matches!(h.kind, kind::WE | kind::WE_RO | kind::WE_AR);
        match access {
            Access::Read => write_exclusive,
            Access::Spc2Allowed => true,
            _ => false,
        }
    }

    /// How RESERVE/RELEASE meet persistent reservations (CRH = 1, SPC-4 5.13.3): GOOD
    /// without effect from a holder, or from a registrant under a Registrants Only or All
    /// Registrants reservation (`Some(Ok)`); RESERVATION CONFLICT while any other
    /// registration exists (SPC-2 5.5.1); else None, and SPC-2 rules apply.
    fn spc2_meets_pr(s: &State, initiator: &str, target: &str) -> Option<PrResult> {
        if let Some(r) = s.pr.reg(initiator, target) {
            let shared =
                s.pr.res
                    .as_ref()
                    .is_some_and(|h| registrants_only(h.kind) || all_registrants(h.kind));
            if s.pr.holds(r) || shared {
                return Some(Ok(Vec::new()));
            }
        }
        (!s.pr.regs.is_empty()).then(|| Err(conflict()))
    }

    /// RESERVE (6/10).
    pub fn reserve(&self, initiator: &str, target: &str) -> PrResult {
        let mut s = self.lock();
        if let Some(r) = Self::spc2_meets_pr(&s, initiator, target) {
            return r;
        }
        match &s.spc2 {
            Some(_) if !s.spc2_is(initiator, target) => return Err(conflict()),
            _ => s.spc2 = Some((initiator.into(), target.into())),
        }
        self.update_active(&s);
        Ok(Vec::new())
    }

    /// RELEASE (6/10).
    pub fn release(&self, initiator: &str, target: &str) -> PrResult {
        let mut s = self.lock();
        if let Some(r) = Self::spc2_meets_pr(&s, initiator, target) {
            return r;
        }
        if s.spc2_is(initiator, target) {
            s.spc2 = None;
        }
        self.update_active(&s);
        Ok(Vec::new())
    }

    /// PERSISTENT RESERVE IN service action `sa`. While an SPC-2 reservation is held,
    /// every persistent reservation command conflicts (SPC-2 5.5.1).
    pub fn pr_in(&self, sa: u8) -> PrResult {
        let capable = self.store().is_some();
        let s = self.lock();
        if s.spc2.is_some() {
            return Err(conflict());
        }
        report::pr_in(&s, sa, capable)
    }

    /// PERSISTENT RESERVE OUT from `initiator`/`target` with its parameter list (exactly
    /// PARAMETER LIST LENGTH bytes). With APTPL active the new state is on disk before
    /// this returns GOOD.
    pub async fn pr_out(
        &self,
        initiator: &str,
        target: &str,
        sa: u8,
        scope: u8,
        kind: u8,
        params: &[u8],
    ) -> PrOutcome {
        let _one_at_a_time = self.out_lock.lock().await;
        let store = self.store();
        let (plan, before) = {
            let s = self.lock();
            if s.spc2.is_some() {
                return PrOutcome::fail(conflict());
            }
            let q = out::Request {
                initiator,
                target,
                sa,
                scope,
                kind,
                params,
                aptpl_capable: store.is_some(),
            };
            match out::plan(&s, &q) {
                Ok(p) => (p, s.pr.clone()),
                Err(f) => return PrOutcome::fail(f),
            }
        };
        // APTPL on: the new state is written; APTPL just cleared: the file goes.
        let write = match &store {
            Some(_) if plan.next != before && plan.next.aptpl => {
                Some(Some(PrSnapshot::from(&plan.next)))
            }
            Some(_) if plan.next != before && before.aptpl => Some(None),
            _ => None,
        };
        if let (Some(write), Some(store)) = (write, store) {
            let done = tokio::task::spawn_blocking(move || match write {
                Some(snap) => store.save(&snap),
                None => store.remove(),
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r);
            if let Err(e) = done {
                tracing::error!(error = %e, initiator, "cannot persist the reservation state (APTPL); the command is refused");
                return PrOutcome::fail(check(INTERNAL_TARGET_FAILURE));
            }
        }
        self.install(plan, sa, initiator, target)
    }

    /// Makes a computed PERSISTENT RESERVE OUT take effect.
    fn install(&self, plan: out::Plan, sa: u8, initiator: &str, target: &str) -> PrOutcome {
        let mut s = self.lock();
        s.pr = plan.next;
        for (i, t, sense) in plan.uas {
            s.queue_ua(&i, &t, sense, (initiator, target));
        }
        self.update_active(&s);
        PrOutcome {
            result: Ok(Vec::new()),
            preempted: if sa == out::sa::PREEMPT_AND_ABORT {
                plan.preempted
            } else {
                Vec::new()
            },
        }
    }
}
