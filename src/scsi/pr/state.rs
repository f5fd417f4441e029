//! The reservation state of one logical unit: registrations, the persistent reservation,
//! the SPC-2 reservation, queued reservation unit attentions and the unit's target ports.

use super::kind;
use crate::scsi::sense::Sense;

/// Separator between an iSCSI name and the ISID in an initiator port name (RFC 7143 §4.2.7,
/// SPC-4 7.6.4.6).
pub(super) const ISID_SEP: &str = ",i,0x";

/// Most registrations one unit holds (SPEC_I_PT and ALL_TG_PT can add many at once); past
/// it, INSUFFICIENT REGISTRATION RESOURCES.
pub(super) const MAX_REGISTRATIONS: usize = 1024;

/// Most reservation unit attentions queued on one unit; the oldest goes first.
const MAX_PENDING_UAS: usize = 4096;

/// Whether `pattern` (an initiator port name `name,i,0x<isid>`, or an iSCSI name alone,
/// which stands for every port of that initiator device) covers the initiator port
/// `port`. iSCSI names compare without regard to case.
pub(super) fn initiator_matches(pattern: &str, port: &str) -> bool {
    if pattern.eq_ignore_ascii_case(port) {
        return true;
    }
    !pattern.contains(ISID_SEP)
        && port
            .split_once(ISID_SEP)
            .is_some_and(|(name, _)| name.eq_ignore_ascii_case(pattern))
}

/// Whether two initiator patterns can name the same port.
pub(super) fn initiators_overlap(a: &str, b: &str) -> bool {
    initiator_matches(a, b) || initiator_matches(b, a)
}

/// Whether `k` is one of the six persistent reservation types.
pub(super) fn valid_kind(k: u8) -> bool {
    matches!(k, 1 | 3 | 5 | 6 | 7 | 8)
}

/// All Registrants types: every registered I_T nexus holds the reservation.
pub(super) fn all_registrants(k: u8) -> bool {
    matches!(k, kind::WE_AR | kind::EA_AR)
}

/// Registrants Only types (release and unregister owe the other registrants a UA).
pub(super) fn registrants_only(k: u8) -> bool {
    matches!(k, kind::WE_RO | kind::EA_RO)
}

/// One registration: an I_T nexus (or every port of an initiator device on one target port)
/// and its reservation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Registration {
    /// Initiator port name, or iSCSI name alone (TransportID format 00b).
    pub initiator: String,
    /// Target port name (`iqn...,t,0x0001`).
    pub target: String,
    /// Reservation key (never zero).
    pub key: u64,
    /// Made by a REGISTER with ALL_TG_PT set (one registration per target port; they
    /// change and go together).
    pub all_tg_pt: bool,
}

impl Registration {
    /// Whether this registration is the one of the I_T nexus `initiator`/`target`.
    pub fn matches(&self, initiator: &str, target: &str) -> bool {
        self.target == target && initiator_matches(&self.initiator, initiator)
    }
}

/// The persistent reservation: the registration holding it and its type (scope is always
/// LU_SCOPE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    /// The holder registration's initiator pattern.
    pub initiator: String,
    /// The holder registration's target port.
    pub target: String,
    /// Reservation type ([`kind`]).
    pub kind: u8,
}

/// What APTPL makes survive a power loss: registrations, the reservation, the generation,
/// and whether APTPL is active.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Persistent {
    /// PRgeneration.
    pub generation: u32,
    /// Registrations in the order they were made.
    pub regs: Vec<Registration>,
    /// The persistent reservation.
    pub res: Option<Holder>,
    /// The APTPL bit of the last REGISTER, REGISTER AND IGNORE EXISTING KEY or REGISTER
    /// AND MOVE that succeeded.
    pub aptpl: bool,
}

impl Persistent {
    /// The registration of an I_T nexus: an exact one first, else one for the whole
    /// initiator device.
    pub fn reg_index(&self, initiator: &str, target: &str) -> Option<usize> {
        self.regs
            .iter()
            .position(|r| r.target == target && r.initiator.eq_ignore_ascii_case(initiator))
            .or_else(|| self.regs.iter().position(|r| r.matches(initiator, target)))
    }

    /// The registration of an I_T nexus.
    pub fn reg(&self, initiator: &str, target: &str) -> Option<&Registration> {
        self.reg_index(initiator, target).map(|i| &self.regs[i])
    }

    /// Whether registration `r` holds the reservation.
    pub fn holds(&self, r: &Registration) -> bool {
        match &self.res {
            Some(h) if all_registrants(h.kind) => true,
            Some(h) => h.target == r.target && h.initiator.eq_ignore_ascii_case(&r.initiator),
            None => false,
        }
    }

    /// Whether the I_T nexus holds the reservation.
    pub fn is_holder(&self, initiator: &str, target: &str) -> bool {
        self.reg(initiator, target).is_some_and(|r| self.holds(r))
    }

    /// The registration holding a reservation that is not of an All Registrants type.
    pub fn holder_reg(&self) -> Option<&Registration> {
        let h = self.res.as_ref().filter(|h| !all_registrants(h.kind))?;
        self.regs
            .iter()
            .find(|r| r.target == h.target && r.initiator.eq_ignore_ascii_case(&h.initiator))
    }

    /// Drops a reservation nobody can hold any more (its holder unregistered, or the last
    /// registrant of an All Registrants reservation gone).
    pub fn drop_orphaned_reservation(&mut self) {
        let orphaned = match &self.res {
            Some(h) if all_registrants(h.kind) => self.regs.is_empty(),
            Some(_) => self.holder_reg().is_none(),
            None => false,
        };
        if orphaned {
            self.res = None;
        }
    }
}

/// A reservation unit attention owed to the nexuses a registration covers.
#[derive(Debug, Clone)]
pub(super) struct PendingUa {
    initiator: String,
    target: String,
    sense: Sense,
    /// Ports of a whole-device pattern that have already reported it.
    seen: Vec<String>,
}

/// The state behind the unit's mutex.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Registrations and reservation.
    pub pr: Persistent,
    /// The SPC-2 reservation holder (initiator port, target port).
    pub spc2: Option<(String, String)>,
    /// Reservation unit attentions (PREEMPT, CLEAR, RELEASE, unregistering).
    uas: Vec<PendingUa>,
    /// Target ports this unit is exported through, with their relative target port
    /// identifiers (set by whoever builds the LUN maps).
    pub ports: Vec<(String, u16)>,
}

impl State {
    /// Whether the SPC-2 reservation is held through `initiator`/`target`.
    pub fn spc2_is(&self, initiator: &str, target: &str) -> bool {
        self.spc2
            .as_ref()
            .is_some_and(|(i, t)| i == initiator && t == target)
    }

    /// Queues `sense` for the nexuses of `initiator`/`target` (a registration's pattern),
    /// replacing an older reservation UA for the same pattern. `except` (the nexus whose
    /// command caused it) does not get it.
    pub fn queue_ua(&mut self, initiator: &str, target: &str, sense: Sense, except: (&str, &str)) {
        let exact = initiator.contains(ISID_SEP);
        if exact && target == except.1 && initiator.eq_ignore_ascii_case(except.0) {
            return;
        }
        let mut seen = Vec::new();
        if target == except.1 && initiator_matches(initiator, except.0) {
            seen.push(except.0.to_string());
        }
        self.uas
            .retain(|u| !(u.target == target && u.initiator.eq_ignore_ascii_case(initiator)));
        if self.uas.len() >= MAX_PENDING_UAS {
            self.uas.remove(0);
        }
        self.uas.push(PendingUa {
            initiator: initiator.to_string(),
            target: target.to_string(),
            sense,
            seen,
        });
    }

    /// The reservation UA owed to the nexus, consumed when `consume`.
    pub fn take_ua(&mut self, initiator: &str, target: &str, consume: bool) -> Option<Sense> {
        let i = self.uas.iter().position(|u| {
            u.target == target
                && initiator_matches(&u.initiator, initiator)
                && !u.seen.iter().any(|s| s.eq_ignore_ascii_case(initiator))
        })?;
        let sense = self.uas[i].sense;
        if consume {
            let u = &mut self.uas[i];
            if u.initiator.contains(ISID_SEP) || u.seen.len() >= 64 {
                self.uas.remove(i);
            } else {
                u.seen.push(initiator.to_string());
            }
        }
        Some(sense)
    }

    /// Whether any reservation UA is queued.
    pub fn has_uas(&self) -> bool {
        !self.uas.is_empty()
    }

    /// The relative target port identifier of `target_port`: from the port table, else
    /// the target portal group tag in its name.
    pub fn rtpi(&self, target_port: &str) -> u16 {
        self.ports
            .iter()
            .find(|(p, _)| p == target_port)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| crate::scsi::spc::target_port_id(target_port))
    }

    /// The target port with relative target port identifier `rtpi`.
    pub fn port_of(&self, rtpi: u16, receiving: &str) -> Option<String> {
        if self.ports.is_empty() {
            return (self.rtpi(receiving) == rtpi).then(|| receiving.to_string());
        }
        self.ports
            .iter()
            .find(|(_, id)| *id == rtpi)
            .map(|(p, _)| p.clone())
    }

    /// Every target port of the unit (the receiving one included).
    pub fn all_ports(&self, receiving: &str) -> Vec<String> {
        let mut v: Vec<String> = self.ports.iter().map(|(p, _)| p.clone()).collect();
        if !v.iter().any(|p| p == receiving) {
            v.push(receiving.to_string());
        }
        v
    }
}
