//! Every PERSISTENT RESERVE OUT service action and reservation type, APTPL, SPEC_I_PT,
//! ALL_TG_PT, REGISTER AND MOVE, and what PREEMPT AND ABORT reports.

use super::test_params as params;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use super::out::sa;
use super::*;

const T: &str = "iqn.2026-11.org.example:tgt,t,0x0001";
const T2: &str = "iqn.2026-11.org.example:second,t,0x0001";
const A: &str = "iqn.2005-03.org.open-iscsi:a,i,0x00023d000001";
const A2: &str = "iqn.2005-03.org.open-iscsi:a,i,0x00023d000002";
const B: &str = "iqn.2005-03.org.open-iscsi:b,i,0x00023d000001";
const C: &str = "iqn.2005-03.org.open-iscsi:c,i,0x00023d000001";
const C_DEVICE: &str = "iqn.2005-03.org.open-iscsi:c";

async fn out(r: &Reservations, i: &str, sa: u8, kind: u8, key: u64, sa_key: u64) -> PrOutcome {
    r.pr_out(i, T, sa, 0, kind, &params(key, sa_key, 0)).await
}

async fn good(r: &Reservations, i: &str, sa: u8, kind: u8, key: u64, sa_key: u64) {
    let o = out(r, i, sa, kind, key, sa_key).await;
    assert_eq!(o.result, Ok(Vec::new()), "sa {sa} from {i}");
}

fn is_conflict(o: &PrOutcome) -> bool {
    o.result == Err(conflict())
}

fn sense_of(o: &PrOutcome) -> Option<Sense> {
    match &o.result {
        Err((status::CHECK_CONDITION, s)) => *s,
        _ => None,
    }
}

fn keys(r: &Reservations) -> Vec<u64> {
    let d = r.pr_in(0).unwrap();
    d[8..]
        .chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn generation(r: &Reservations) -> u32 {
    u32::from_be_bytes(r.pr_in(0).unwrap()[..4].try_into().unwrap())
}

/// READ RESERVATION: (key, type) of the reservation.
fn reservation(r: &Reservations) -> Option<(u64, u8)> {
    let d = r.pr_in(1).unwrap();
    (d[7] == 16).then(|| (u64::from_be_bytes(d[8..16].try_into().unwrap()), d[21]))
}

/// READ FULL STATUS descriptors: (key, all_tg_pt, holder, type, rtpi, transport id).
fn full_status(r: &Reservations) -> Vec<(u64, bool, bool, u8, u16, Vec<u8>)> {
    let d = r.pr_in(3).unwrap();
    let len = u32::from_be_bytes(d[4..8].try_into().unwrap()) as usize;
    assert_eq!(len + 8, d.len());
    let mut v = Vec::new();
    let mut p = &d[8..];
    while !p.is_empty() {
        let tid_len = u32::from_be_bytes(p[20..24].try_into().unwrap()) as usize;
        v.push((
            u64::from_be_bytes(p[..8].try_into().unwrap()),
            p[12] & 2 != 0,
            p[12] & 1 != 0,
            p[13] & 0x0f,
            u16::from_be_bytes([p[18], p[19]]),
            p[24..24 + tid_len].to_vec(),
        ));
        p = &p[24 + tid_len..];
    }
    v
}

/// A store that records what it was asked to do and can be told to fail.
#[derive(Debug, Default)]
struct MemStore {
    log: Mutex<Vec<Option<PrSnapshot>>>,
    fail: AtomicBool,
}

impl PrStore for MemStore {
    fn save(&self, state: &PrSnapshot) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("disk full"));
        }
        self.log.lock().unwrap().push(Some(state.clone()));
        Ok(())
    }
    fn remove(&self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("read-only file system"));
        }
        self.log.lock().unwrap().push(None);
        Ok(())
    }
}

#[tokio::test]
async fn register_and_register_ignore() {
    let r = Reservations::default();
    // Unregistered: REGISTER with a key conflicts; key zero to zero does nothing.
    assert!(is_conflict(&out(&r, A, sa::REGISTER, 0, 5, 0xa).await));
    good(&r, A, sa::REGISTER, 0, 0, 0).await;
    assert_eq!((keys(&r), generation(&r)), (vec![], 0));
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER_IGNORE, 0, 0x999, 0xb).await;
    assert_eq!((keys(&r), generation(&r)), (vec![0xa, 0xb], 2));
    // Registered: REGISTER needs the current key, REGISTER AND IGNORE does not.
    assert!(is_conflict(&out(&r, A, sa::REGISTER, 0, 0xb, 0xaa).await));
    good(&r, A, sa::REGISTER, 0, 0xa, 0xaa).await;
    good(&r, B, sa::REGISTER_IGNORE, 0, 0, 0xbb).await;
    assert_eq!((keys(&r), generation(&r)), (vec![0xaa, 0xbb], 4));
    // Unregister.
    good(&r, A, sa::REGISTER, 0, 0xaa, 0).await;
    assert_eq!((keys(&r), generation(&r)), (vec![0xbb], 5));
    // Another port of the same initiator is another I_T nexus.
    assert!(is_conflict(
        &out(&r, A2, sa::RESERVE, kind::WE, 0xbb, 0).await
    ));
}

#[tokio::test]
async fn parameter_list_and_field_checks() {
    let r = Reservations::default();
    for len in [0usize, 8, 23, 25, 32] {
        let mut p = params(0, 1, 0);
        p.resize(len, 0);
        let o = r.pr_out(A, T, sa::REGISTER, 0, 0, &p).await;
        assert_eq!(sense_of(&o), Some(Sense::PARAM_LIST_LENGTH), "length {len}");
    }
    for bad_sa in [8u8, 0x1f] {
        let o = r.pr_out(A, T, bad_sa, 0, 0, &params(0, 1, 0)).await;
        assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_CDB));
    }
    // SPEC_I_PT is only for REGISTER.
    for s in [sa::REGISTER_IGNORE, sa::RESERVE, sa::CLEAR, sa::PREEMPT] {
        let o = r.pr_out(A, T, s, 0, 1, &params(0, 1, 0x08)).await;
        assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_PARAM), "sa {s}");
    }
    // Without a store, APTPL cannot be honoured.
    let o = r
        .pr_out(A, T, sa::REGISTER, 0, 0, &params(0, 1, 0x01))
        .await;
    assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_PARAM));
    assert!(keys(&r).is_empty());
    // APTPL and ALL_TG_PT are ignored by the other service actions.
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    let o = r
        .pr_out(A, T, sa::RESERVE, 0, kind::WE, &params(0xa, 0, 0x05))
        .await;
    assert_eq!(o.result, Ok(Vec::new()));
    // Bad type or scope.
    good(&r, A, sa::RELEASE, kind::WE, 0xa, 0).await;
    for k in [0u8, 2, 4, 9, 15] {
        assert_eq!(
            sense_of(&out(&r, A, sa::RESERVE, k, 0xa, 0).await),
            Some(Sense::INVALID_FIELD_IN_CDB)
        );
    }
    let o = r
        .pr_out(A, T, sa::RESERVE, 1, kind::WE, &params(0xa, 0, 0))
        .await;
    assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_CDB));
    // Unregistered or wrong key: conflict.
    assert!(is_conflict(&out(&r, B, sa::RESERVE, kind::WE, 0, 0).await));
    assert!(is_conflict(&out(&r, A, sa::CLEAR, 0, 0xb, 0).await));
}

#[tokio::test]
async fn reserve_and_release_every_type() {
    for k in [
        kind::WE,
        kind::EA,
        kind::WE_RO,
        kind::EA_RO,
        kind::WE_AR,
        kind::EA_AR,
    ] {
        let r = Reservations::default();
        good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
        good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
        let g = generation(&r);
        good(&r, A, sa::RESERVE, k, 0xa, 0).await;
        good(&r, A, sa::RESERVE, k, 0xa, 0).await; // same type again: no change
        let other = if k == kind::WE { kind::EA } else { kind::WE };
        assert!(is_conflict(&out(&r, A, sa::RESERVE, other, 0xa, 0).await));
        let ar = matches!(k, kind::WE_AR | kind::EA_AR);
        // Under All Registrants, B holds it too.
        let b = out(&r, B, sa::RESERVE, k, 0xb, 0).await;
        assert_eq!(b.result.is_ok(), ar, "type {k}");
        assert_eq!(generation(&r), g, "RESERVE does not count");
        let key = if ar { 0 } else { 0xa };
        assert_eq!(reservation(&r), Some((key, k)));
        // Wrong type from the holder; release from a registrant that is not holder.
        assert_eq!(
            sense_of(&out(&r, A, sa::RELEASE, other, 0xa, 0).await),
            Some(Sense::INVALID_RELEASE)
        );
        if !ar {
            good(&r, B, sa::RELEASE, k, 0xb, 0).await;
            assert_eq!(reservation(&r), Some((key, k)));
        }
        good(&r, A, sa::RELEASE, k, 0xa, 0).await;
        assert_eq!(reservation(&r), None);
        let ua = r.take_ua(B, T, true);
        let told = matches!(k, kind::WE_RO | kind::EA_RO | kind::WE_AR | kind::EA_AR);
        assert_eq!(
            ua,
            told.then_some(Sense::UA_RESERVATIONS_RELEASED),
            "type {k}"
        );
        assert_eq!(r.take_ua(A, T, true), None, "not the releasing nexus");
        // Nothing to release: GOOD.
        good(&r, A, sa::RELEASE, k, 0xa, 0).await;
    }
}

#[tokio::test]
async fn unregistering_the_holder_releases() {
    // Registrants Only: released, others told.
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, A, sa::RESERVE, kind::WE_RO, 0xa, 0).await;
    good(&r, A, sa::REGISTER, 0, 0xa, 0).await;
    assert_eq!(reservation(&r), None);
    assert_eq!(r.take_ua(B, T, true), Some(Sense::UA_RESERVATIONS_RELEASED));
    // All Registrants: stays while a registrant is left.
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, A, sa::RESERVE, kind::EA_AR, 0xa, 0).await;
    good(&r, A, sa::REGISTER, 0, 0xa, 0).await;
    assert_eq!(reservation(&r), Some((0, kind::EA_AR)));
    assert!(r.permits(B, T, Access::Write));
    assert!(!r.permits(A, T, Access::Read));
    good(&r, B, sa::REGISTER, 0, 0xb, 0).await;
    assert_eq!(reservation(&r), None);
    assert!(r.permits(A, T, Access::Write));
}

#[tokio::test]
async fn clear_removes_everything() {
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, C, sa::REGISTER, 0, 0, 0xc).await;
    good(&r, A, sa::RESERVE, kind::EA, 0xa, 0).await;
    let g = generation(&r);
    good(&r, B, sa::CLEAR, 0, 0xb, 0).await;
    assert_eq!(
        (keys(&r), reservation(&r), generation(&r)),
        (vec![], None, g + 1)
    );
    assert_eq!(
        r.take_ua(A, T, true),
        Some(Sense::UA_RESERVATIONS_PREEMPTED)
    );
    assert_eq!(
        r.take_ua(C, T, true),
        Some(Sense::UA_RESERVATIONS_PREEMPTED)
    );
    assert_eq!(r.take_ua(B, T, true), None);
    assert!(r.permits(C, T, Access::Write));
}

#[tokio::test]
async fn preempt_without_reservation_removes_registrations() {
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, C, sa::REGISTER, 0, 0, 0xb).await; // C shares B's key
    assert_eq!(
        sense_of(&out(&r, A, sa::PREEMPT, 0, 0xa, 0).await),
        Some(Sense::INVALID_FIELD_IN_PARAM)
    );
    assert!(is_conflict(&out(&r, A, sa::PREEMPT, 0, 0xa, 0x77).await));
    // TYPE is ignored without a reservation.
    let g = generation(&r);
    good(&r, A, sa::PREEMPT, 0, 0xa, 0xb).await;
    assert_eq!(
        (keys(&r), reservation(&r), generation(&r)),
        (vec![0xa], None, g + 1)
    );
    assert_eq!(
        r.take_ua(B, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(
        r.take_ua(C, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(r.take_ua(A, T, true), None);
}

/// fence_scsi: every node registers and one reserves Write Exclusive – Registrants Only;
/// the survivor preempts (and aborts) the fenced node's key.
#[tokio::test]
async fn preempt_the_holder() {
    let r = Reservations::default();
    good(&r, A, sa::REGISTER_IGNORE, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER_IGNORE, 0, 0, 0xb).await;
    good(&r, C, sa::REGISTER_IGNORE, 0, 0, 0xc).await;
    good(&r, A, sa::RESERVE, kind::WE_RO, 0xa, 0).await;
    assert!(r.permits(C, T, Access::Write));
    // Zero key without an All Registrants reservation.
    assert_eq!(
        sense_of(&out(&r, B, sa::PREEMPT, kind::WE_RO, 0xb, 0).await),
        Some(Sense::INVALID_FIELD_IN_PARAM)
    );
    // A bad type changes nothing.
    assert_eq!(
        sense_of(&out(&r, B, sa::PREEMPT, 2, 0xb, 0xa).await),
        Some(Sense::INVALID_FIELD_IN_CDB)
    );
    assert_eq!(keys(&r), vec![0xa, 0xb, 0xc]);
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::WE_RO, 0xb, 0xa).await;
    assert_eq!(o.result, Ok(Vec::new()));
    assert_eq!(
        o.preempted,
        vec![Preempted {
            initiator_port: A.into(),
            target_port: T.into()
        }]
    );
    assert!(o.preempted[0].matches(A, T));
    assert!(!o.preempted[0].matches(A2, T));
    assert_eq!(keys(&r), vec![0xb, 0xc]);
    assert_eq!(reservation(&r), Some((0xb, kind::WE_RO)));
    // The fenced node's writes conflict; its reads do not (Write Exclusive).
    assert!(!r.permits(A, T, Access::Write));
    assert!(r.permits(A, T, Access::Read));
    assert!(r.permits(C, T, Access::Write));
    assert_eq!(
        r.take_ua(A, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(
        r.take_ua(C, T, true),
        None,
        "same type: no RESERVATIONS RELEASED"
    );
    // Preempting with another type tells the remaining registrants.
    good(&r, C, sa::PREEMPT, kind::EA_RO, 0xc, 0xb).await;
    assert_eq!(reservation(&r), Some((0xc, kind::EA_RO)));
    assert_eq!(
        r.take_ua(B, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    // Self-preempt changes the type and keeps the registration.
    good(&r, A, sa::REGISTER_IGNORE, 0, 0, 0xa).await;
    good(&r, C, sa::PREEMPT, kind::EA, 0xc, 0xc).await;
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xc, 0xa], Some((0xc, kind::EA)))
    );
    assert_eq!(r.take_ua(A, T, true), Some(Sense::UA_RESERVATIONS_RELEASED));
    // A key that is not the holder's only removes registrations.
    good(&r, C, sa::PREEMPT, kind::WE, 0xc, 0xa).await;
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xc], Some((0xc, kind::EA)))
    );
    // PREEMPT (not AND ABORT) reports nobody to abort.
    good(&r, B, sa::REGISTER_IGNORE, 0, 0, 0xb).await;
    let o = out(&r, B, sa::PREEMPT, kind::EA, 0xb, 0xc).await;
    assert_eq!((o.result, o.preempted), (Ok(Vec::new()), vec![]));
}

/// The preempted list: every nexus that lost its registration (two ports sharing the key
/// included) and the holders of the preempted reservation.
#[tokio::test]
async fn preempt_and_abort_reports_every_preempted_nexus() {
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, A2, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, A, sa::RESERVE, kind::WE, 0xa, 0).await;
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::WE, 0xb, 0xa).await;
    let mut got: Vec<&str> = o
        .preempted
        .iter()
        .map(|p| p.initiator_port.as_str())
        .collect();
    got.sort();
    assert_eq!(got, vec![A, A2]);
    // Self-preempt: the issuer held the preempted reservation.
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::EA, 0xb, 0xb).await;
    assert_eq!(o.preempted.len(), 1);
    assert!(o.preempted[0].matches(B, T));
    // All Registrants, zero key: everyone held it.
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, C, sa::REGISTER, 0, 0, 0xc).await;
    good(&r, A, sa::RESERVE, kind::WE_AR, 0xa, 0).await;
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::WE_RO, 0xb, 0).await;
    assert_eq!(o.preempted.len(), 3);
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xb], Some((0xb, kind::WE_RO)))
    );
    assert_eq!(
        r.take_ua(A, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    // All Registrants, non-zero key: removal only.
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    good(&r, A, sa::RESERVE, kind::EA_AR, 0xa, 0).await;
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::WE, 0xb, 0xa).await;
    assert_eq!(o.preempted.len(), 1);
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xb], Some((0, kind::EA_AR)))
    );
}

fn move_params(key: u64, sa_key: u64, flags: u8, rtpi: u16, tid: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[17] = flags;
    p[18..20].copy_from_slice(&rtpi.to_be_bytes());
    p[20..24].copy_from_slice(&(tid.len() as u32).to_be_bytes());
    p.extend_from_slice(tid);
    p
}

#[tokio::test]
async fn register_and_move() {
    let r = Reservations::default();
    r.set_target_ports(vec![(T.into(), 1), (T2.into(), 7)]);
    let mv = |p: Vec<u8>| {
        let r = &r;
        async move { r.pr_out(A, T, sa::REGISTER_AND_MOVE, 0, 0, &p).await }
    };
    let tid_b = transport_id::encode(B);
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    // No reservation yet.
    assert!(is_conflict(&mv(move_params(0xa, 0xb, 0, 1, &tid_b)).await));
    good(&r, A, sa::RESERVE, kind::WE, 0xa, 0).await;
    let inval = Some(Sense::INVALID_FIELD_IN_PARAM);
    assert!(is_conflict(&mv(move_params(0x1, 0xb, 0, 1, &tid_b)).await));
    assert_eq!(
        sense_of(&mv(move_params(0xa, 0, 0, 1, &tid_b)).await),
        inval
    );
    assert_eq!(
        sense_of(&mv(move_params(0xa, 0xb, 0, 9, &tid_b)).await),
        inval
    );
    let tid_self = transport_id::encode(A);
    assert_eq!(
        sense_of(&mv(move_params(0xa, 0xb, 0, 7, &tid_self)).await),
        inval
    );
    let mut short = move_params(0xa, 0xb, 0, 1, &tid_b);
    short.truncate(short.len() - 4);
    assert_eq!(sense_of(&mv(short).await), Some(Sense::PARAM_LIST_LENGTH));
    let mut garbled = move_params(0xa, 0xb, 0, 1, &tid_b);
    garbled[24] = 0x41; // protocol 1
    assert_eq!(sense_of(&mv(garbled).await), inval);
    // Move to B through the second target port, keeping A registered.
    let g = generation(&r);
    assert_eq!(
        mv(move_params(0xa, 0xb, 0, 7, &tid_b)).await.result,
        Ok(vec![])
    );
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xa, 0xb], Some((0xb, kind::WE)))
    );
    assert_eq!(generation(&r), g + 1);
    assert!(r.permits(B, T2, Access::Write));
    assert!(!r.permits(B, T, Access::Write));
    assert!(!r.permits(A, T, Access::Write));
    let fs = full_status(&r);
    assert_eq!((fs[1].0, fs[1].2, fs[1].4), (0xb, true, 7));
    // A is no longer holder: it cannot move it again.
    assert!(is_conflict(
        &mv(move_params(0xa, 0xc, 0, 1, &transport_id::encode(C))).await
    ));
    // B moves it back to A with UNREG.
    let p = move_params(0xb, 0xa1, 0x02, 1, &transport_id::encode(A));
    assert_eq!(
        r.pr_out(B, T2, sa::REGISTER_AND_MOVE, 0, 0, &p)
            .await
            .result,
        Ok(vec![])
    );
    assert_eq!(
        (keys(&r), reservation(&r)),
        (vec![0xa1], Some((0xa1, kind::WE)))
    );
    // All Registrants reservations cannot move.
    good(&r, A, sa::RELEASE, kind::WE, 0xa1, 0).await;
    good(&r, A, sa::RESERVE, kind::WE_AR, 0xa1, 0).await;
    assert!(is_conflict(&mv(move_params(0xa1, 0xb, 0, 1, &tid_b)).await));
}

fn spec_params(sa_key: u64, flags: u8, tids: &[Vec<u8>]) -> Vec<u8> {
    let mut p = params(0, sa_key, 0x08 | flags);
    let list: Vec<u8> = tids.concat();
    p.extend_from_slice(&(list.len() as u32).to_be_bytes());
    p.extend_from_slice(&list);
    p
}

#[tokio::test]
async fn spec_i_pt_registers_the_listed_initiators() {
    let r = Reservations::default();
    // Malformed lists register nobody.
    let mut bad = spec_params(0xa, 0, &[transport_id::encode(B)]);
    bad[24..28].copy_from_slice(&1000u32.to_be_bytes());
    let o = r.pr_out(A, T, sa::REGISTER, 0, 0, &bad).await;
    assert_eq!(sense_of(&o), Some(Sense::PARAM_LIST_LENGTH));
    let mut garbled = transport_id::encode(B);
    garbled[0] = 0x44;
    let o = r
        .pr_out(
            A,
            T,
            sa::REGISTER,
            0,
            0,
            &spec_params(0xa, 0, &[transport_id::encode(C), garbled]),
        )
        .await;
    assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_PARAM));
    assert!(keys(&r).is_empty());
    // B's port and every port of device C.
    let p = spec_params(
        0xa,
        0,
        &[transport_id::encode(B), transport_id::encode(C_DEVICE)],
    );
    assert_eq!(
        r.pr_out(A, T, sa::REGISTER, 0, 0, &p).await.result,
        Ok(vec![])
    );
    assert_eq!(keys(&r), vec![0xa, 0xa, 0xa]);
    let c_other = "iqn.2005-03.org.open-iscsi:c,i,0x00023d0000ff";
    good(&r, c_other, sa::RESERVE, kind::EA, 0xa, 0).await;
    assert!(r.permits(C, T, Access::Write));
    assert!(!r.permits(A, T, Access::Read));
    let fs = full_status(&r);
    assert_eq!(
        fs[2].5[0], 0x05,
        "device registration: TransportID format 00b"
    );
    assert!(fs[2].2);
    // Registered already: INVALID FIELD IN CDB.
    let mut p = spec_params(0xa, 0, &[]);
    p[..8].copy_from_slice(&0xau64.to_be_bytes());
    let o = r.pr_out(A, T, sa::REGISTER, 0, 0, &p).await;
    assert_eq!(sense_of(&o), Some(Sense::INVALID_FIELD_IN_CDB));
    // Preempting device C's key tells each of its ports once, never the issuer.
    good(&r, B, sa::REGISTER, 0, 0xa, 0xb).await;
    good(&r, B, sa::PREEMPT, kind::WE, 0xb, 0xa).await;
    assert_eq!(
        r.take_ua(C, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(r.take_ua(C, T, true), None);
    assert_eq!(
        r.take_ua(c_other, T, true),
        Some(Sense::UA_REGISTRATIONS_PREEMPTED)
    );
    assert_eq!(r.take_ua(B, T, true), None);
}

#[tokio::test]
async fn all_target_ports() {
    let r = Reservations::default();
    r.set_target_ports(vec![(T.into(), 1), (T2.into(), 2)]);
    assert_eq!(r.relative_port_id(T2), 2);
    let o = r
        .pr_out(A, T, sa::REGISTER, 0, 0, &params(0, 0xa, 0x04))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    let fs = full_status(&r);
    assert_eq!(fs.len(), 2);
    assert!(fs.iter().all(|d| d.1 && d.0 == 0xa));
    assert_eq!((fs[0].4, fs[1].4), (1, 2));
    assert_eq!(fs[0].5, transport_id::encode(A));
    // Registered through the other port too; changes and unregistration go together.
    let o = r
        .pr_out(A, T2, sa::RESERVE, 0, kind::EA, &params(0xa, 0, 0))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    let o = r
        .pr_out(A, T2, sa::REGISTER, 0, 0, &params(0xa, 0xaa, 0))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    assert_eq!(keys(&r), vec![0xaa, 0xaa]);
    let o = r
        .pr_out(A, T, sa::REGISTER, 0, 0, &params(0xaa, 0, 0))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    assert_eq!((keys(&r), reservation(&r)), (vec![], None));
}

#[tokio::test]
async fn report_capabilities() {
    let r = Reservations::default();
    let d = r.pr_in(2).unwrap();
    assert_eq!(d, vec![0, 8, 0x1c, 0x80, 0xea, 0x01, 0, 0]);
    let store = Arc::new(MemStore::default());
    r.set_store(Some(store));
    assert_eq!(r.pr_in(2).unwrap()[2..4], [0x1d, 0x80]);
    let o = r
        .pr_out(A, T, sa::REGISTER, 0, 0, &params(0, 0xa, 0x01))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    assert_eq!(r.pr_in(2).unwrap()[2..4], [0x1d, 0x81], "PTPL_A");
    assert_eq!(r.pr_in(9).unwrap_err(), check(Sense::INVALID_FIELD_IN_CDB));
}

#[tokio::test]
async fn aptpl_persists_before_good_and_restores() {
    let r = Reservations::default();
    let store = Arc::new(MemStore::default());
    r.set_store(Some(store.clone()));
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    assert!(
        store.log.lock().unwrap().is_empty(),
        "APTPL off: nothing written"
    );
    let o = r
        .pr_out(A, T, sa::REGISTER, 0, 0, &params(0, 0xa, 0x01))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    good(&r, A, sa::RESERVE, kind::WE_RO, 0xa, 0).await;
    good(&r, A, sa::RESERVE, kind::WE_RO, 0xa, 0).await; // no change, no write
    let log = store.log.lock().unwrap().clone();
    assert_eq!(log.len(), 2);
    let last = log[1].clone().unwrap();
    assert_eq!(last, r.snapshot());
    assert_eq!(last.registrations.len(), 2);
    assert_eq!(last.reservation.as_ref().unwrap().kind, kind::WE_RO);
    // A restart: a new unit restores it all.
    let back = Reservations::default();
    back.restore(&last).unwrap();
    assert_eq!(keys(&back), vec![0xb, 0xa]);
    assert_eq!(reservation(&back), Some((0xa, kind::WE_RO)));
    assert_eq!(generation(&back), generation(&r));
    assert!(back.aptpl_active());
    assert!(!back.permits(C, T, Access::Write));
    assert!(back.permits(B, T, Access::Write));
    // A failed write refuses the command and changes nothing.
    store.fail.store(true, Ordering::SeqCst);
    let o = out(&r, B, sa::PREEMPT_AND_ABORT, kind::WE_RO, 0xb, 0xa).await;
    assert_eq!(sense_of(&o), Some(INTERNAL_TARGET_FAILURE));
    assert!(o.preempted.is_empty());
    assert_eq!(reservation(&r), Some((0xa, kind::WE_RO)));
    assert_eq!(r.snapshot(), last);
    store.fail.store(false, Ordering::SeqCst);
    // APTPL cleared by the next REGISTER: the stored state is removed.
    good(&r, B, sa::REGISTER, 0, 0xb, 0xbb).await;
    assert_eq!(store.log.lock().unwrap().last(), Some(&None));
    assert!(!r.aptpl_active());
    good(&r, B, sa::REGISTER, 0, 0xbb, 0xb).await;
    assert_eq!(store.log.lock().unwrap().len(), 3, "APTPL off stays off");
    // Inconsistent snapshots are refused.
    let mut bad = last.clone();
    bad.registrations.remove(1);
    assert!(Reservations::default().restore(&bad).is_err());
    let mut bad = last.clone();
    bad.registrations[0].key = "0x0000000000000000".into();
    assert!(Reservations::default().restore(&bad).is_err());
}

#[tokio::test]
async fn spc2_and_persistent_reservations_meet() {
    let r = Reservations::default();
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    // Registrations exist: RESERVE/RELEASE conflict for others.
    assert_eq!(r.reserve(B, T), Err(conflict()));
    assert_eq!(r.release(B, T), Err(conflict()));
    good(&r, A, sa::RESERVE, kind::WE_RO, 0xa, 0).await;
    good(&r, B, sa::REGISTER, 0, 0, 0xb).await;
    // The holder, and a registrant under Registrants Only: GOOD, no effect.
    assert_eq!(r.reserve(A, T), Ok(vec![]));
    assert_eq!(r.reserve(B, T), Ok(vec![]));
    assert_eq!(r.release(B, T), Ok(vec![]));
    assert!(r.permits(B, T, Access::Write));
    good(&r, A, sa::CLEAR, 0, 0xa, 0).await;
    // An SPC-2 reservation makes every persistent reservation command conflict.
    r.reserve(A, T).unwrap();
    assert_eq!(r.pr_in(0), Err(conflict()));
    assert!(is_conflict(&out(&r, A, sa::REGISTER, 0, 0, 1).await));
    r.nexus_lost(A, T);
    assert!(r.pr_in(0).is_ok());
}

#[tokio::test]
async fn random_parameter_lists_never_panic() {
    let r = Reservations::default();
    r.set_target_ports(vec![(T.into(), 1), (T2.into(), 2)]);
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    good(&r, A, sa::REGISTER, 0, 0, 0xa).await;
    for _ in 0..5000 {
        let s = (rnd() % 9) as u8;
        let len = match rnd() % 4 {
            0 => 24,
            1 => 28 + (rnd() % 64) as usize,
            _ => (rnd() % 80) as usize,
        };
        let mut p: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
        if len >= 24 && rnd() % 2 == 0 {
            p[..8].copy_from_slice(&0xau64.to_be_bytes());
        }
        if len >= 28 && s == sa::REGISTER_AND_MOVE {
            let l = (len - 24) as u32;
            p[20..24].copy_from_slice(&l.to_be_bytes());
        }
        let i = [A, B, C][(rnd() % 3) as usize];
        let o = r
            .pr_out(i, T, s, (rnd() % 2) as u8, (rnd() % 10) as u8, &p)
            .await;
        if let Err((st, sense)) = &o.result {
            assert!(*st == status::RESERVATION_CONFLICT || sense.is_some());
        }
        let _ = r.pr_in((rnd() % 5) as u8);
    }
}
