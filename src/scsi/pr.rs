//! Reservations: SPC-2 RESERVE/RELEASE and SPC-4 persistent reservations (no APTPL).
//!
//! The state lives behind a mutex that the data path takes only while a reservation is
//! held (`active`), so unreserved units cost one atomic load per command.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::sense::Sense;
use super::status;

/// Reservation types (SPC-4 table 180).
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

fn valid_kind(k: u8) -> bool {
    matches!(k, 1 | 3 | 5 | 6 | 7 | 8)
}
fn all_registrants(k: u8) -> bool {
    matches!(k, kind::WE_AR | kind::EA_AR)
}

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

/// An I_T nexus as the reservation code identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nexus {
    initiator: String,
    target: String,
}

#[derive(Debug, Clone)]
struct Registration {
    nexus: Nexus,
    key: u64,
}

#[derive(Debug, Clone)]
struct PersistentReservation {
    holder: Nexus,
    kind: u8,
}

#[derive(Debug, Default)]
struct State {
    /// Unit attentions owed to other nexuses by PREEMPT, CLEAR and RELEASE.
    uas: Vec<(Nexus, Sense)>,
    spc2: Option<Nexus>,
    generation: u32,
    regs: Vec<Registration>,
    res: Option<PersistentReservation>,
}

impl State {
    fn reg(&self, n: &Nexus) -> Option<&Registration> {
        self.regs.iter().find(|r| &r.nexus == n)
    }
    /// Whether `n` holds the persistent reservation (any registrant for AR types).
    fn is_holder(&self, n: &Nexus) -> bool {
        match &self.res {
            Some(r) if all_registrants(r.kind) => self.reg(n).is_some(),
            Some(r) => &r.holder == n,
            None => false,
        }
    }
}

/// The reservation state of one logical unit.
#[derive(Debug, Default)]
pub struct Reservations {
    active: AtomicBool,
    ua_pending: AtomicBool,
    state: Mutex<State>,
}

/// Outcome of a reservation command: data, or a non-GOOD status with optional sense.
pub type PrResult = Result<Vec<u8>, (u8, Option<Sense>)>;

fn conflict() -> (u8, Option<Sense>) {
    (status::RESERVATION_CONFLICT, None)
}
fn check(s: Sense) -> (u8, Option<Sense>) {
    (status::CHECK_CONDITION, Some(s))
}

impl Reservations {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update_active(&self, s: &State) {
        self.active
            .store(s.spc2.is_some() || s.res.is_some(), Ordering::Release);
        self.ua_pending.store(!s.uas.is_empty(), Ordering::Release);
    }

    /// A reservation unit attention owed to `initiator`/`target` (removed when `consume`).
    pub fn take_ua(&self, initiator: &str, target: &str, consume: bool) -> Option<Sense> {
        if !self.ua_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut s = self.lock();
        let i = s
            .uas
            .iter()
            .position(|(n, _)| n.initiator == initiator && n.target == target)?;
        let sense = s.uas[i].1;
        if consume {
            s.uas.remove(i);
            self.update_active(&s);
        }
        Some(sense)
    }

    /// The I_T nexus is gone (logout, connection loss): its SPC-2 reservation ends.
    pub fn nexus_lost(&self, initiator: &str, target: &str) {
        let mut s = self.lock();
        if s.spc2
            .as_ref()
            .is_some_and(|h| h.initiator == initiator && h.target == target)
        {
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
        let me = |n: &Nexus| n.initiator == initiator && n.target == target;
        if let Some(h) = &s.spc2 {
            return me(h) || access == Access::Spc2Allowed;
        }
        let Some(r) = &s.res else { return true };
        let holder = if all_registrants(r.kind) || r.kind == kind::WE_RO || r.kind == kind::EA_RO {
            s.regs.iter().any(|g| me(&g.nexus))
        } else {
            me(&r.holder)
        };
        if holder {
            return true;
        }
        let write_exclusive = matches!(r.kind, kind::WE | kind::WE_RO | kind::WE_AR);
        match access {
            Access::Read => write_exclusive,
            Access::Spc2Allowed => true,
            _ => false,
        }
    }

    /// RESERVE (6/10).
    pub fn reserve(&self, initiator: &str, target: &str) -> PrResult {
        let mut s = self.lock();
        if s.res.is_some() {
            return Err(conflict());
        }
        let me = Nexus {
            initiator: initiator.into(),
            target: target.into(),
        };
        match &s.spc2 {
            Some(h) if h != &me => return Err(conflict()),
            _ => s.spc2 = Some(me),
        }
        self.update_active(&s);
        Ok(Vec::new())
    }

    /// RELEASE (6/10).
    pub fn release(&self, initiator: &str, target: &str) -> PrResult {
        let mut s = self.lock();
        if s.res.is_some() {
            return Err(conflict());
        }
        if s.spc2
            .as_ref()
            .is_some_and(|h| h.initiator == initiator && h.target == target)
        {
            s.spc2 = None;
        }
        self.update_active(&s);
        Ok(Vec::new())
    }

    /// PERSISTENT RESERVE IN.
    pub fn pr_in(&self, sa: u8) -> PrResult {
        let s = self.lock();
        let mut d = Vec::with_capacity(64);
        d.extend_from_slice(&s.generation.to_be_bytes());
        match sa {
            // READ KEYS
            0 => {
                d.extend_from_slice(&((s.regs.len() * 8) as u32).to_be_bytes());
                for r in &s.regs {
                    d.extend_from_slice(&r.key.to_be_bytes());
                }
            }
            // READ RESERVATION
            1 => match &s.res {
                None => d.extend_from_slice(&0u32.to_be_bytes()),
                Some(r) => {
                    d.extend_from_slice(&16u32.to_be_bytes());
                    let key = if all_registrants(r.kind) {
                        0
                    } else {
                        s.reg(&r.holder).map_or(0, |g| g.key)
                    };
                    d.extend_from_slice(&key.to_be_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0, r.kind & 0x0f, 0, 0]);
                }
            },
            // REPORT CAPABILITIES: CRH; TMV; all six types.
            2 => {
                d.clear();
                d.extend_from_slice(&[0, 8, 0x10, 0x80, 0xea, 0x01, 0, 0]);
            }
            // READ FULL STATUS
            3 => {
                d.extend_from_slice(&[0; 4]);
                for r in &s.regs {
                    let holder = s.is_holder(&r.nexus);
                    let tid = transport_id(&r.nexus.initiator);
                    d.extend_from_slice(&r.key.to_be_bytes());
                    d.extend_from_slice(&[0; 4]);
                    d.push(u8::from(holder));
                    d.push(if holder {
                        s.res.as_ref().map_or(0, |x| x.kind)
                    } else {
                        0
                    });
                    d.extend_from_slice(&[0; 4]);
                    d.extend_from_slice(&super::spc::target_port_id(&r.nexus.target).to_be_bytes());
                    d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                    d.extend_from_slice(&tid);
                }
                let len = (d.len() - 8) as u32;
                d[4..8].copy_from_slice(&len.to_be_bytes());
            }
            _ => return Err(check(Sense::INVALID_FIELD_IN_CDB)),
        }
        Ok(d)
    }

    /// PERSISTENT RESERVE OUT with its (already length-checked) 24-byte parameter list.
    pub fn pr_out(
        &self,
        initiator: &str,
        target: &str,
        sa: u8,
        scope: u8,
        kind: u8,
        params: &[u8; 24],
    ) -> PrResult {
        let key = u64::from_be_bytes(params[0..8].try_into().unwrap_or_default());
        let sa_key = u64::from_be_bytes(params[8..16].try_into().unwrap_or_default());
        let flags = params[20];
        // SPEC_I_PT, ALL_TG_PT and APTPL are not supported.
        if flags & 0x0d != 0 {
            return Err(check(Sense::INVALID_FIELD_IN_PARAM));
        }
        let me = Nexus {
            initiator: initiator.into(),
            target: target.into(),
        };
        let mut s = self.lock();
        if s.spc2.as_ref().is_some_and(|h| h != &me) {
            return Err(conflict());
        }
        let registered = s.reg(&me).map(|r| r.key);
        let result = match sa {
            // REGISTER, REGISTER AND IGNORE EXISTING KEY
            0 | 6 => {
                if sa == 0 && registered.unwrap_or(0) != key {
                    return Err(conflict());
                }
                match (registered, sa_key) {
                    (None, 0) => {}
                    (None, k) => {
                        s.regs.push(Registration { nexus: me, key: k });
                        s.generation = s.generation.wrapping_add(1);
                    }
                    (Some(_), 0) => {
                        unregister(&mut s, &me);
                        s.generation = s.generation.wrapping_add(1);
                    }
                    (Some(_), k) => {
                        if let Some(r) = s.regs.iter_mut().find(|r| r.nexus == me) {
                            r.key = k;
                        }
                        s.generation = s.generation.wrapping_add(1);
                    }
                }
                Ok(Vec::new())
            }
            1..=5 => {
                if registered != Some(key) {
                    return Err(conflict());
                }
                match sa {
                    1 => reserve(&mut s, me, scope, kind),
                    2 => release(&mut s, &me, scope, kind),
                    3 => {
                        let others: Vec<Nexus> = s
                            .regs
                            .iter()
                            .map(|r| r.nexus.clone())
                            .filter(|n| n != &me)
                            .collect();
                        queue_uas(&mut s, others, Sense::UA_RESERVATIONS_PREEMPTED);
                        s.regs.clear();
                        s.res = None;
                        s.generation = s.generation.wrapping_add(1);
                        Ok(Vec::new())
                    }
                    _ => preempt(&mut s, me, sa_key, scope, kind),
                }
            }
            _ => Err(check(Sense::INVALID_FIELD_IN_CDB)),
        };
        self.update_active(&s);
        result
    }
}

fn unregister(s: &mut State, me: &Nexus) {
    s.regs.retain(|r| &r.nexus != me);
    let release = match &s.res {
        Some(r) if all_registrants(r.kind) => s.regs.is_empty(),
        Some(r) => &r.holder == me,
        None => false,
    };
    if release {
        s.res = None;
    }
}

fn reserve(s: &mut State, me: Nexus, scope: u8, k: u8) -> PrResult {
    if scope != 0 || !valid_kind(k) {
        return Err(check(Sense::INVALID_FIELD_IN_CDB));
    }
    match &s.res {
        Some(r) if s.is_holder(&me) && r.kind == k => Ok(Vec::new()),
        Some(_) => Err(conflict()),
        None => {
            s.res = Some(PersistentReservation {
                holder: me,
                kind: k,
            });
            Ok(Vec::new())
        }
    }
}

fn release(s: &mut State, me: &Nexus, scope: u8, k: u8) -> PrResult {
    let Some(r) = &s.res else {
        return Ok(Vec::new());
    };
    if !s.is_holder(me) {
        return Ok(Vec::new());
    }
    if scope != 0 || r.kind != k {
        return Err(check(Sense::INVALID_RELEASE));
    }
    if matches!(
        r.kind,
        kind::WE_RO | kind::EA_RO | kind::WE_AR | kind::EA_AR
    ) {
        let others: Vec<Nexus> = s
            .regs
            .iter()
            .map(|g| g.nexus.clone())
            .filter(|n| n != me)
            .collect();
        queue_uas(s, others, Sense::UA_RESERVATIONS_RELEASED);
    }
    s.res = None;
    Ok(Vec::new())
}

fn preempt(s: &mut State, me: Nexus, sa_key: u64, scope: u8, k: u8) -> PrResult {
    let before_regs = s.regs.clone();
    let before = s.regs.len();
    let mut took_over = false;
    match s.res.clone() {
        None => {
            if sa_key == 0 {
                return Err(check(Sense::INVALID_FIELD_IN_PARAM));
            }
            s.regs.retain(|r| r.key != sa_key);
        }
        Some(r) => {
            if scope != 0 || !valid_kind(k) {
                return Err(check(Sense::INVALID_FIELD_IN_CDB));
            }
            let holder_key = s.reg(&r.holder).map(|g| g.key);
            if all_registrants(r.kind) && sa_key == 0 {
                s.regs.retain(|g| g.nexus == me);
                s.res = Some(PersistentReservation {
                    holder: me.clone(),
                    kind: k,
                });
                took_over = true;
            } else if !all_registrants(r.kind) && holder_key == Some(sa_key) {
                s.regs.retain(|g| g.key != sa_key || g.nexus == me);
                s.res = Some(PersistentReservation {
                    holder: me.clone(),
                    kind: k,
                });
                took_over = true;
            } else {
                if sa_key == 0 {
                    return Err(check(Sense::INVALID_FIELD_IN_PARAM));
                }
                s.regs.retain(|g| g.key != sa_key);
                if s.res.as_ref().is_some_and(|x| !all_registrants(x.kind))
                    && s.reg(&r.holder).is_none()
                {
                    s.res = None;
                }
            }
        }
    }
    let removed = before != s.regs.len();
    if !removed && !took_over {
        return Err(conflict());
    }
    let gone: Vec<Nexus> = before_regs
        .into_iter()
        .map(|r| r.nexus)
        .filter(|n| s.reg(n).is_none())
        .collect();
    queue_uas(s, gone, Sense::UA_REGISTRATIONS_PREEMPTED);
    s.generation = s.generation.wrapping_add(1);
    Ok(Vec::new())
}

/// Queues `sense` for each of `to`, replacing an older reservation UA for the same nexus.
fn queue_uas(s: &mut State, to: Vec<Nexus>, sense: Sense) {
    for n in to {
        s.uas.retain(|(m, _)| m != &n);
        s.uas.push((n, sense));
    }
}

/// iSCSI TransportID (SPC-4 7.6.4.6) for an initiator port name: format 01b
/// (`name,i,0x<isid>`) when the ISID is present, else format 00b.
fn transport_id(initiator: &str) -> Vec<u8> {
    let format = if initiator.contains(",i,0x") { 0x40 } else { 0 };
    let mut name = initiator.as_bytes().to_vec();
    name.push(0);
    while name.len() % 4 != 0 || name.len() < 20 {
        name.push(0);
    }
    let mut t = vec![format | 0x05, 0];
    t.extend_from_slice(&(name.len() as u16).to_be_bytes());
    t.extend_from_slice(&name);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(key: u64, sa_key: u64) -> [u8; 24] {
        let mut p = [0u8; 24];
        p[..8].copy_from_slice(&key.to_be_bytes());
        p[8..16].copy_from_slice(&sa_key.to_be_bytes());
        p
    }

    #[test]
    fn register_reserve_conflict_preempt() {
        let r = Reservations::default();
        let (a, b, t) = ("iqn.a,i,0x1", "iqn.b,i,0x2", "iqn.t,t,0x1");
        assert!(r.pr_out(a, t, 0, 0, 0, &params(0, 0xa)).is_ok());
        assert!(r.pr_out(b, t, 0, 0, 0, &params(0, 0xb)).is_ok());
        // Wrong key.
        assert_eq!(
            r.pr_out(a, t, 1, 0, kind::WE, &params(0xb, 0)),
            Err(conflict())
        );
        r.pr_out(a, t, 1, 0, kind::WE, &params(0xa, 0)).unwrap();
        assert!(r.permits(b, t, Access::Read));
        assert!(!r.permits(b, t, Access::Write));
        assert!(r.permits(a, t, Access::Write));
        // Second reserve by the other registrant conflicts.
        assert_eq!(
            r.pr_out(b, t, 1, 0, kind::WE, &params(0xb, 0)),
            Err(conflict())
        );
        // B preempts A.
        r.pr_out(b, t, 4, 0, kind::EA, &params(0xb, 0xa)).unwrap();
        assert!(!r.permits(a, t, Access::Read));
        assert_eq!(r.take_ua(b, t, true), None);
        assert_eq!(
            r.take_ua(a, t, false),
            Some(Sense::UA_REGISTRATIONS_PREEMPTED)
        );
        assert_eq!(
            r.take_ua(a, t, true),
            Some(Sense::UA_REGISTRATIONS_PREEMPTED)
        );
        assert_eq!(r.take_ua(a, t, true), None);
        let keys = r.pr_in(0).unwrap();
        assert_eq!(u32::from_be_bytes(keys[4..8].try_into().unwrap()), 8);
        // Release with the wrong type.
        assert_eq!(
            r.pr_out(b, t, 2, 0, kind::WE, &params(0xb, 0)),
            Err(check(Sense::INVALID_RELEASE))
        );
        r.pr_out(b, t, 2, 0, kind::EA, &params(0xb, 0)).unwrap();
        assert!(r.permits(a, t, Access::Write));
        let full = r.pr_in(3).unwrap();
        assert!(full.len() > 8 + 24);
        r.pr_out(b, t, 3, 0, 0, &params(0xb, 0)).unwrap();
        assert_eq!(r.pr_in(0).unwrap()[4..8], [0, 0, 0, 0]);
    }

    #[test]
    fn spc2() {
        let r = Reservations::default();
        let t = "t";
        r.reserve("a", t).unwrap();
        assert_eq!(r.reserve("b", t), Err(conflict()));
        assert!(!r.permits("b", t, Access::Read));
        assert!(r.permits("b", t, Access::Spc2Allowed));
        r.release("b", t).unwrap();
        assert!(!r.permits("b", t, Access::Write));
        r.nexus_lost("b", t);
        assert!(!r.permits("b", t, Access::Write));
        r.nexus_lost("a", t);
        assert!(r.permits("b", t, Access::Write));
        r.reserve("a", t).unwrap();
        r.reset();
        assert!(r.permits("b", t, Access::Write));
    }
}
