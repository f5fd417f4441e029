//! APTPL: what survives a power loss (a daemon restart) when the last REGISTER set APTPL,
//! and the store that keeps it. The SCSI core decides what to persist and when (before
//! GOOD); where and how it is written (the state dir, atomically) is the store's business.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::state::{Holder, Persistent, Registration, all_registrants, valid_kind};

/// Durable storage for one unit's persistent reservation state.
///
/// Both calls block (they write and fsync); the SCSI core runs them off the async workers,
/// one at a time per unit, and returns GOOD only after they succeed.
pub trait PrStore: Send + Sync + fmt::Debug {
    /// Replaces the stored state with `state`, atomically: after a crash at any point the
    /// store holds either the previous state or this one.
    fn save(&self, state: &PrSnapshot) -> io::Result<()>;
    /// Forgets the stored state (APTPL was cleared), durably.
    fn remove(&self) -> io::Result<()>;
}

/// The persisted form of a unit's registrations and reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrSnapshot {
    /// PRgeneration.
    pub generation: u32,
    /// Registrations, in the order they were made.
    pub registrations: Vec<SavedRegistration>,
    /// The persistent reservation, if any.
    pub reservation: Option<SavedReservation>,
}

/// One persisted registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRegistration {
    /// Initiator port name (`iqn...,i,0x<isid>`), or an iSCSI name for every port of it.
    pub initiator: String,
    /// Target port name (`iqn...,t,0x<tpgt>`).
    pub target: String,
    /// Reservation key, `0x` and 16 hex digits (JSON numbers lose 64-bit precision in
    /// many readers).
    pub key: String,
    /// Registered with ALL_TG_PT.
    #[serde(default)]
    pub all_tg_pt: bool,
}

/// The persisted reservation: which registration holds it, and its type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedReservation {
    /// The holder registration's initiator.
    pub initiator: String,
    /// The holder registration's target port.
    pub target: String,
    /// Reservation type (SPC-4 table 212: 1, 3, 5, 6, 7 or 8).
    #[serde(rename = "type")]
    pub kind: u8,
}

impl From<&Persistent> for PrSnapshot {
    fn from(p: &Persistent) -> Self {
        PrSnapshot {
            generation: p.generation,
            registrations: p
                .regs
                .iter()
                .map(|r| SavedRegistration {
                    initiator: r.initiator.clone(),
                    target: r.target.clone(),
                    key: format!("0x{:016x}", r.key),
                    all_tg_pt: r.all_tg_pt,
                })
                .collect(),
            reservation: p.res.as_ref().map(|h| SavedReservation {
                initiator: h.initiator.clone(),
                target: h.target.clone(),
                kind: h.kind,
            }),
        }
    }
}

impl PrSnapshot {
    /// The state this snapshot describes (APTPL active), or what is inconsistent in it.
    pub(super) fn to_persistent(&self) -> Result<Persistent, String> {
        let mut regs = Vec::with_capacity(self.registrations.len());
        for (i, r) in self.registrations.iter().enumerate() {
            let key = r
                .key
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .filter(|&k| k != 0)
                .ok_or_else(|| format!("registration {i}: bad key {:?}", r.key))?;
            if r.initiator.is_empty() || r.target.is_empty() {
                return Err(format!("registration {i}: empty initiator or target"));
            }
            regs.push(Registration {
                initiator: r.initiator.clone(),
                target: r.target.clone(),
                key,
                all_tg_pt: r.all_tg_pt,
            });
        }
        let mut p = Persistent {
            generation: self.generation,
            regs,
            res: None,
            aptpl: true,
        };
        if let Some(h) = &self.reservation {
            if !valid_kind(h.kind) {
                return Err(format!("reservation type {} is not valid", h.kind));
            }
            p.res = Some(Holder {
                initiator: h.initiator.clone(),
                target: h.target.clone(),
                kind: h.kind,
            });
            let held = if all_registrants(h.kind) {
                !p.regs.is_empty()
            } else {
                p.holder_reg().is_some()
            };
            if !held {
                return Err("the reservation holder is not registered".into());
            }
        }
        Ok(p)
    }
}
