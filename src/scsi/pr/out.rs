//! PERSISTENT RESERVE OUT (SPC-4 6.16, 5.14.7-5.14.11): each service action computes the
//! next state from the current one without touching it, so the caller can persist the
//! result (APTPL) before it takes effect and before GOOD.

use super::state::{
    Holder, MAX_REGISTRATIONS, Persistent, Registration, State, all_registrants,
    initiators_overlap, registrants_only, valid_kind,
};
use super::{Fail, INSUFFICIENT_REGISTRATION_RESOURCES, Preempted, check, conflict, transport_id};
use crate::scsi::sense::Sense;

/// PERSISTENT RESERVE OUT service actions.
pub(super) mod sa {
    /// REGISTER.
    pub const REGISTER: u8 = 0;
    /// RESERVE.
    pub const RESERVE: u8 = 1;
    /// RELEASE.
    pub const RELEASE: u8 = 2;
    /// CLEAR.
    pub const CLEAR: u8 = 3;
    /// PREEMPT.
    pub const PREEMPT: u8 = 4;
    /// PREEMPT AND ABORT.
    pub const PREEMPT_AND_ABORT: u8 = 5;
    /// REGISTER AND IGNORE EXISTING KEY.
    pub const REGISTER_IGNORE: u8 = 6;
    /// REGISTER AND MOVE.
    pub const REGISTER_AND_MOVE: u8 = 7;
}

/// One PERSISTENT RESERVE OUT command.
pub(super) struct Request<'a> {
    /// Initiator port of the I_T nexus.
    pub initiator: &'a str,
    /// Target port of the I_T nexus.
    pub target: &'a str,
    /// Service action.
    pub sa: u8,
    /// SCOPE (CDB byte 2, bits 7-4).
    pub scope: u8,
    /// TYPE (CDB byte 2, bits 3-0).
    pub kind: u8,
    /// The parameter list, exactly PARAMETER LIST LENGTH bytes.
    pub params: &'a [u8],
    /// Whether APTPL can be honoured (a store is attached).
    pub aptpl_capable: bool,
}

/// What a successful command changes.
#[derive(Debug)]
pub(super) struct Plan {
    /// The state after the command.
    pub next: Persistent,
    /// Unit attentions to queue: (initiator pattern, target port, sense); the issuing
    /// nexus is exempted when they are queued.
    pub uas: Vec<(String, String, Sense)>,
    /// I_T nexuses whose reservation or registration was preempted (PREEMPT AND ABORT
    /// aborts their tasks).
    pub preempted: Vec<Preempted>,
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Computes the effect of `q` on the state `s`.
pub(super) fn plan(s: &State, q: &Request<'_>) -> Result<Plan, Fail> {
    if q.sa > sa::REGISTER_AND_MOVE {
        return Err(check(Sense::INVALID_FIELD_IN_CDB));
    }
    let p = q.params;
    if p.len() < 24 {
        return Err(check(Sense::PARAM_LIST_LENGTH));
    }
    let key = be64(&p[0..8]);
    let sa_key = be64(&p[8..16]);
    let mut out = Plan {
        next: s.pr.clone(),
        uas: Vec::new(),
        preempted: Vec::new(),
    };
    if q.sa == sa::REGISTER_AND_MOVE {
        register_and_move(&mut out, s, q, key, sa_key)?;
        return Ok(out);
    }
    let flags = p[20];
    let (spec_i_pt, all_tg_pt, aptpl) = (flags & 0x08 != 0, flags & 0x04 != 0, flags & 0x01 != 0);
    // SPEC_I_PT is valid only for REGISTER (SPC-4 table 223); ALL_TG_PT and APTPL are
    // ignored by the other service actions.
    if spec_i_pt && q.sa != sa::REGISTER {
        return Err(check(Sense::INVALID_FIELD_IN_PARAM));
    }
    if !spec_i_pt && p.len() != 24 {
        return Err(check(Sense::PARAM_LIST_LENGTH));
    }
    if matches!(q.sa, sa::REGISTER | sa::REGISTER_IGNORE) {
        if aptpl && !q.aptpl_capable {
            return Err(check(Sense::INVALID_FIELD_IN_PARAM));
        }
        let spec = if spec_i_pt { Some(p) } else { None };
        if register(&mut out, s, q, key, sa_key, spec, all_tg_pt)? {
            out.next.aptpl = aptpl;
        }
        return Ok(out);
    }
    // RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT: through a registered I_T nexus
    // with its key.
    if s.pr.reg(q.initiator, q.target).map(|r| r.key) != Some(key) {
        return Err(conflict());
    }
    match q.sa {
        sa::RESERVE => reserve(&mut out, q)?,
        sa::RELEASE => release(&mut out, q)?,
        sa::CLEAR => clear(&mut out),
        sa::PREEMPT | sa::PREEMPT_AND_ABORT => preempt(&mut out, q, sa_key)?,
        _ => unreachable!("service actions above 7 are refused first"),
    }
    Ok(out)
}

impl Plan {
    /// Queues `sense` for every registration but the issuer's.
    fn ua_all(&mut self, sense: Sense) {
        for r in &self.next.regs {
            self.uas
                .push((r.initiator.clone(), r.target.clone(), sense));
        }
    }

    /// Removes the registrations `pick` selects and returns them, then drops a
    /// reservation left without holder. Registrations removed by a preempt owe their
    /// nexuses REGISTRATIONS PREEMPTED.
    fn remove(&mut self, pick: impl Fn(&Registration) -> bool) -> Vec<Registration> {
        let (gone, kept): (Vec<_>, Vec<_>) = self.next.regs.drain(..).partition(|r| pick(r));
        self.next.regs = kept;
        self.next.drop_orphaned_reservation();
        gone
    }

    fn preempted_by(&mut self, gone: &[Registration]) {
        for r in gone {
            self.uas.push((
                r.initiator.clone(),
                r.target.clone(),
                Sense::UA_REGISTRATIONS_PREEMPTED,
            ));
            self.note_preempted(&r.initiator, &r.target);
        }
    }

    fn note_preempted(&mut self, initiator: &str, target: &str) {
        let p = Preempted {
            initiator_port: initiator.to_string(),
            target_port: target.to_string(),
        };
        if !self.preempted.contains(&p) {
            self.preempted.push(p);
        }
    }

    fn bump(&mut self) {
        self.next.generation = self.next.generation.wrapping_add(1);
    }
}

fn is_me(r: &Registration, q: &Request<'_>) -> bool {
    r.matches(q.initiator, q.target)
}

/// SCOPE must be LU_SCOPE and TYPE one of the six types.
fn check_type(q: &Request<'_>) -> Result<(), Fail> {
    if q.scope != 0 || !valid_kind(q.kind) {
        return Err(check(Sense::INVALID_FIELD_IN_CDB));
    }
    Ok(())
}

/// The issuer's registration takes a reservation of the command's TYPE.
fn reserve_for_issuer(out: &mut Plan, q: &Request<'_>) -> Result<(), Fail> {
    check_type(q)?;
    let r = out
        .next
        .reg(q.initiator, q.target)
        .ok_or_else(conflict)?
        .clone();
    out.next.res = Some(Holder {
        initiator: r.initiator,
        target: r.target,
        kind: q.kind,
    });
    Ok(())
}

/// REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-4 5.14.7, tables 50 and 51).
/// False when nothing was done (an unregistered nexus registering key zero).
fn register(
    out: &mut Plan,
    s: &State,
    q: &Request<'_>,
    key: u64,
    sa_key: u64,
    spec_i_pt: Option<&[u8]>,
    all_tg_pt: bool,
) -> Result<bool, Fail> {
    let ignore_key = q.sa == sa::REGISTER_IGNORE;
    let Some(mine) = out.next.reg_index(q.initiator, q.target) else {
        if !ignore_key && key != 0 {
            return Err(conflict());
        }
        if sa_key == 0 {
            return Ok(false);
        }
        let ports = if all_tg_pt {
            s.all_ports(q.target)
        } else {
            vec![q.target.to_string()]
        };
        let mut initiators = vec![q.initiator.to_string()];
        if let Some(p) = spec_i_pt {
            initiators.extend(spec_i_pt_list(p)?);
        }
        let mut add: Vec<Registration> = Vec::new();
        for i in &initiators {
            for t in &ports {
                let taken = out
                    .next
                    .regs
                    .iter()
                    .chain(add.iter())
                    .any(|r| &r.target == t && initiators_overlap(&r.initiator, i));
                if !taken {
                    add.push(Registration {
                        initiator: i.clone(),
                        target: t.clone(),
                        key: sa_key,
                        all_tg_pt,
                    });
                }
            }
        }
        if out.next.regs.len() + add.len() > MAX_REGISTRATIONS {
            return Err(check(INSUFFICIENT_REGISTRATION_RESOURCES));
        }
        out.next.regs.extend(add);
        out.bump();
        return Ok(true);
    };
    let current = out.next.regs[mine].clone();
    if !ignore_key && current.key != key {
        return Err(conflict());
    }
    if spec_i_pt.is_some() {
        // SPC-4 table 50: SPEC_I_PT from a registered I_T nexus.
        return Err(check(Sense::INVALID_FIELD_IN_CDB));
    }
    // Registrations made together by ALL_TG_PT change and go together.
    let group = |r: &Registration| {
        r == &current
            || (current.all_tg_pt
                && r.all_tg_pt
                && r.key == current.key
                && r.initiator.eq_ignore_ascii_case(&current.initiator))
    };
    if sa_key != 0 {
        for r in out.next.regs.iter_mut().filter(|r| group(r)) {
            r.key = sa_key;
        }
    } else {
        let held = out.next.res.clone();
        let was_holder = out.next.regs.iter().any(|r| group(r) && out.next.holds(r));
        out.remove(group);
        // Unregistering the holder of a Registrants Only reservation releases it and
        // tells the other registrants (SPC-4 5.14.11.3).
        if let Some(h) = held {
            if was_holder && registrants_only(h.kind) && out.next.res.is_none() {
                out.ua_all(Sense::UA_RESERVATIONS_RELEASED);
            }
        }
    }
    out.bump();
    Ok(true)
}

/// The initiators of a SPEC_I_PT parameter list (bytes 24-27: TRANSPORTID PARAMETER DATA
/// LENGTH, then the TransportIDs).
fn spec_i_pt_list(p: &[u8]) -> Result<Vec<String>, Fail> {
    let len = p
        .get(24..28)
        .map(be32)
        .ok_or_else(|| check(Sense::PARAM_LIST_LENGTH))?;
    if 28 + u64::from(len) != p.len() as u64 {
        return Err(check(Sense::PARAM_LIST_LENGTH));
    }
    transport_id::parse_list(&p[28..], MAX_REGISTRATIONS).map_err(check)
}

/// RESERVE (SPC-4 5.14.9).
fn reserve(out: &mut Plan, q: &Request<'_>) -> Result<(), Fail> {
    check_type(q)?;
    match &out.next.res {
        Some(h) if out.next.is_holder(q.initiator, q.target) && h.kind == q.kind => Ok(()),
        Some(_) => Err(conflict()),
        None => reserve_for_issuer(out, q),
    }
}

/// RELEASE (SPC-4 5.14.11.2).
fn release(out: &mut Plan, q: &Request<'_>) -> Result<(), Fail> {
    let Some(h) = out.next.res.clone() else {
        return Ok(());
    };
    if !out.next.is_holder(q.initiator, q.target) {
        return Ok(());
    }
    if q.scope != 0 || h.kind != q.kind {
        return Err(check(Sense::INVALID_RELEASE));
    }
    out.next.res = None;
    if registrants_only(h.kind) || all_registrants(h.kind) {
        out.ua_all(Sense::UA_RESERVATIONS_RELEASED);
    }
    Ok(())
}

/// CLEAR (SPC-4 5.14.11.6).
fn clear(out: &mut Plan) {
    out.ua_all(Sense::UA_RESERVATIONS_PREEMPTED);
    out.next.regs.clear();
    out.next.res = None;
    out.bump();
}

/// PREEMPT and PREEMPT AND ABORT (SPC-4 5.14.11.4-5.14.11.5, figure 10).
///
/// - No reservation: the registrations with the service action key go (the issuer's too
///   if it has that key); SCOPE and TYPE are ignored. A zero key is INVALID FIELD IN
///   PARAMETER LIST; a key nobody has, RESERVATION CONFLICT.
/// - All Registrants reservation, zero key: every other registration goes and the issuer
///   takes a new reservation of TYPE. A non-zero key only removes registrations.
/// - Other reservation, key of the holder: the holder's reservation is released, every
///   other registration with that key goes, the issuer takes a new reservation of TYPE
///   (preempting itself only changes the type); when the type changed, the remaining
///   registrants are told RESERVATIONS RELEASED. Another non-zero key only removes
///   registrations; a zero key is INVALID FIELD IN PARAMETER LIST.
///
/// Every nexus that lost its registration gets REGISTRATIONS PREEMPTED. The preempted
/// nexuses are those that lost their registration and those that held the preempted
/// reservation (the issuer included when it held it).
fn preempt(out: &mut Plan, q: &Request<'_>, sa_key: u64) -> Result<(), Fail> {
    let remove_key = |out: &mut Plan| -> Result<(), Fail> {
        if sa_key == 0 {
            return Err(check(Sense::INVALID_FIELD_IN_PARAM));
        }
        let gone = out.remove(|r| r.key == sa_key);
        if gone.is_empty() {
            return Err(conflict());
        }
        out.preempted_by(&gone);
        Ok(())
    };
    match out.next.res.clone() {
        None => remove_key(out)?,
        Some(h) if all_registrants(h.kind) => {
            if sa_key != 0 {
                remove_key(out)?;
            } else {
                // Validate before changing anything.
                check_type(q)?;
                let holders: Vec<(String, String)> = out
                    .next
                    .regs
                    .iter()
                    .map(|r| (r.initiator.clone(), r.target.clone()))
                    .collect();
                out.next.res = None;
                let gone = out.remove(|r| !is_me(r, q));
                out.preempted_by(&gone);
                for (i, t) in holders {
                    out.note_preempted(&i, &t);
                }
                reserve_for_issuer(out, q)?;
            }
        }
        Some(h) => {
            let holder = out.next.holder_reg().cloned();
            match holder {
                Some(holder) if sa_key != 0 && holder.key == sa_key => {
                    check_type(q)?;
                    out.next.res = None;
                    let gone = out.remove(|r| r.key == sa_key && !is_me(r, q));
                    out.preempted_by(&gone);
                    out.note_preempted(&holder.initiator, &holder.target);
                    reserve_for_issuer(out, q)?;
                    if h.kind != q.kind {
                        out.ua_all(Sense::UA_RESERVATIONS_RELEASED);
                    }
                }
                _ => remove_key(out)?,
            }
        }
    }
    out.bump();
    Ok(())
}

/// REGISTER AND MOVE (SPC-4 5.14.8): the holder hands its reservation (same type) to the
/// I_T nexus named by a TransportID and a relative target port identifier, which is
/// registered with the service action key; UNREG unregisters the issuer.
fn register_and_move(
    out: &mut Plan,
    s: &State,
    q: &Request<'_>,
    key: u64,
    sa_key: u64,
) -> Result<(), Fail> {
    let p = q.params;
    let (unreg, aptpl) = (p[17] & 0x02 != 0, p[17] & 0x01 != 0);
    let rtpi = u16::from_be_bytes([p[18], p[19]]);
    let tid_len = be32(&p[20..24]);
    if 24 + u64::from(tid_len) != p.len() as u64 {
        return Err(check(Sense::PARAM_LIST_LENGTH));
    }
    if aptpl && !q.aptpl_capable {
        return Err(check(Sense::INVALID_FIELD_IN_PARAM));
    }
    let mine = out
        .next
        .reg(q.initiator, q.target)
        .cloned()
        .filter(|r| r.key == key)
        .ok_or_else(conflict)?;
    if sa_key == 0 {
        return Err(check(Sense::INVALID_FIELD_IN_PARAM));
    }
    let Some(h) = out.next.res.clone() else {
        return Err(conflict());
    };
    if all_registrants(h.kind) || !out.next.holds(&mine) {
        return Err(conflict());
    }
    let (dest, used) = transport_id::parse(&p[24..]).map_err(check)?;
    if used != p.len() - 24 {
        return Err(check(Sense::INVALID_FIELD_IN_PARAM));
    }
    // The destination must be another initiator port than the issuer's.
    if initiators_overlap(&dest, q.initiator) {
        return Err(check(Sense::INVALID_FIELD_IN_PARAM));
    }
    let port = s
        .port_of(rtpi, q.target)
        .ok_or_else(|| check(Sense::INVALID_FIELD_IN_PARAM))?;
    let existing = out.next.reg_index(&dest, &port);
    let overlapping = out
        .next
        .regs
        .iter()
        .any(|r| r.target == port && initiators_overlap(&r.initiator, &dest));
    let holder = match existing {
        Some(i) => {
            out.next.regs[i].key = sa_key;
            out.next.regs[i].clone()
        }
        // A whole-device destination some of whose ports are registered on their own:
        // which registration would hold the reservation is ambiguous.
        None if overlapping => return Err(check(Sense::INVALID_FIELD_IN_PARAM)),
        None => {
            if out.next.regs.len() >= MAX_REGISTRATIONS {
                return Err(check(INSUFFICIENT_REGISTRATION_RESOURCES));
            }
            let r = Registration {
                initiator: dest,
                target: port,
                key: sa_key,
                all_tg_pt: false,
            };
            out.next.regs.push(r.clone());
            r
        }
    };
    out.next.res = Some(Holder {
        initiator: holder.initiator,
        target: holder.target,
        kind: h.kind,
    });
    if unreg {
        out.remove(|r| r == &mine);
    }
    out.next.aptpl = aptpl;
    out.bump();
    Ok(())
}
