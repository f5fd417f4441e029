//! Hostile peers against the real daemon, part 5: task management across sessions
//! (issue 8, defect 2). A LOGICAL UNIT RESET, TARGET WARM RESET or CLEAR TASK SET from
//! one session aborts the tasks of every I_T nexus on the unit (SAM-5; the control mode
//! page says TST=000b, a shared task set), not only its own, and the other nexus learns
//! it: TASK ABORTED status when the page says TAS=1, the unit attention otherwise (and
//! after a reset always). The task of the other session is a WRITE waiting for
//! its solicited data, so no slow backstore is needed. Aborts during backstore I/O are
//! covered by the lead's state-machine and SCSI-core tests.
//!
//! Sequence: B's WRITE gets its R2T; A sends the TMF; B's TEST UNIT READY must report the
//! unit attention; then B sends the WRITE's data, which must be discarded (no GOOD, old
//! data kept).
//!
//! The witness runs on its own target, which a reset of the hostile target must not
//! touch (it retries on unit attention, like any initiator, but an aborted witness task
//! would stall it).
//!
//! Observed on the code before the session core (main at 7eb3a12), `cargo test --test
//! hostile_tmf -- --ignored`:
//! - `defect2_logical_unit_reset_aborts_the_tasks_of_other_sessions`,
//!   `defect2_target_warm_reset_aborts_the_tasks_of_other_sessions`: B gets the unit
//!   attention, but its WRITE, sent after the reset, completes GOOD and lands.
//! - `defect2_target_warm_reset_reaches_lus_the_resetting_session_does_not_see`: no unit
//!   attention for B and its WRITE completes GOOD.
//! - `defect2_clear_task_set_clears_the_tasks_of_other_sessions`: no unit attention, the
//!   WRITE completes GOOD.
//!
//! On the session core (main at 0b256ff, merged here) every case passes (TAS=1: the
//! other session's WRITE ends TASK ABORTED).

mod support;

use std::time::Duration;

use rustiscsi::iscsi::wire::Opcode;
use support::hostile::prelude::*;
use support::initiator::Cmd;

const CLEAR_TASK_SET: u8 = 4;
const LOGICAL_UNIT_RESET: u8 = 5;
const TARGET_WARM_RESET: u8 = 6;

const RESETTER: &str = "iqn.2026-11.org.example:resetter";
const BYSTANDER: &str = "iqn.2026-11.org.example:bystander";

fn session(d: &Daemon, name: &str, n: u32) -> Session {
    let mut o = LoginOpts::normal(TARGET, n).initiator(name);
    o.initial_r2t = Some(true);
    o.immediate_data = Some(false);
    let mut s = Session::login(d.addr, &o).unwrap_or_else(|e| panic!("login {name}: {e:?}"));
    s.timeout = Duration::from_secs(10);
    s
}

fn sense_of(p: &Pdu) -> (u8, u8, u8) {
    let s = p.data.get(2..).unwrap_or(&[]);
    if s.len() >= 14 {
        (s[2] & 0xf, s[12], s[13])
    } else {
        (0, 0, 0)
    }
}

/// The TAS bit of the control mode page (MODE SENSE(6), page 0Ah): with TAS=1 a task
/// aborted by another nexus ends with TASK ABORTED status, with TAS=0 without status.
fn tas(s: &mut Session, lun: u64) -> bool {
    let r = s
        .command(&Cmd::read(lun, &[0x1a, 0x08, 0x0a, 0, 255, 0], 255))
        .expect("MODE SENSE control page");
    assert_eq!(
        r.status,
        0,
        "MODE SENSE control page: {:02x?}",
        r.sense_key()
    );
    let page = &r.data[4 + r.data[3] as usize..];
    assert_eq!(page[0] & 0x3f, 0x0a, "control mode page");
    page[5] & 0x40 != 0
}

/// Session A (the resetter) sends TMF `function`; session B (the bystander) has a WRITE
/// on `lun` waiting for its data. B's WRITE must not complete GOOD when its data comes
/// (with TAS=1 it ends with TASK ABORTED), the data must not land, and B's next command
/// must see a unit attention with `asc` (`ua_with_tas`: also when TAS=1; CLEAR TASK SET
/// owes COMMANDS CLEARED BY ANOTHER INITIATOR only with TAS=0). `acl`: A sees only LUN 0 (B sees every LUN); otherwise demo mode.
fn tmf_reaches_the_other_session(
    function: u8,
    lun: u64,
    asc: u8,
    ua_with_tas: bool,
    acl: bool,
    what: &str,
) {
    let setup = support::hostile::Setup {
        target: if acl {
            format!(
                "[targets.\"{TARGET}\".acls.\"{RESETTER}\"]\nmapped_luns = [{{ lun = 0 }}]\n\
                 [targets.\"{TARGET}\".acls.\"{BYSTANDER}\"]\n"
            )
        } else {
            String::new()
        },
        ..Default::default()
    };
    let d = Daemon::start_setup(&setup);
    let w = Witness::start(&d);
    let mut a = session(&d, RESETTER, 1);
    let mut b = session(&d, BYSTANDER, 2);
    let (old, new) = (pattern(4096, 40), pattern(4096, 41));
    b.write_ok(lun, 400, &old);
    let tas = tas(&mut b, lun);
    // B's WRITE is in the task set, waiting for its data.
    let cdb = rw10(true, 400, 8);
    let itt = b.start_command(&Cmd::write(lun, &cdb, &new)).unwrap();
    let r2t = b
        .recv_matching(Duration::from_secs(10), |p| {
            p.op() == Opcode::R2T && p.bhs.itt() == itt
        })
        .expect("R2T for B's WRITE");
    let resp = a.tmf(function, 0, 0, 0).expect("TMF response");
    assert_eq!(resp, 0, "{what}: FUNCTION COMPLETE");
    // B's next command learns of it: CHECK CONDITION, UNIT ATTENTION.
    let tur = b
        .command(&Cmd::none(lun, &TUR))
        .expect("B's TEST UNIT READY");
    eprintln!(
        "{what}: B's TEST UNIT READY: status {:#x} sense {:02x?}",
        tur.status,
        tur.sense_key()
    );
    // Then B sends the data of the WRITE the TMF aborted: it must be discarded.
    b.send_sequence(itt, r2t.bhs.ttt(), 0, &new).unwrap();
    let write = match b.recv_matching(Duration::from_secs(3), |p| {
        p.op() == Opcode::SCSI_RESPONSE && p.bhs.itt() == itt
    }) {
        Ok(p) => Some((p.bhs.0[3], sense_of(&p))),
        Err(RecvError::Timeout) => None,
        Err(e) => panic!("{what}: session B: {e}"),
    };
    eprintln!("{what}: B's aborted WRITE answered {write:?}");
    assert!(
        !matches!(write, Some((0, _))),
        "{what} from another session did not abort B's WRITE: it completed GOOD"
    );
    if tas {
        assert!(
            matches!(write, Some((0x40, _))),
            "{what}: TAS=1, so B's aborted WRITE ends with TASK ABORTED, not {write:?}"
        );
    }
    if ua_with_tas || !tas {
        assert_eq!(
            (tur.status, tur.sense_key().0, tur.sense_key().1),
            (2, 6, asc),
            "{what} (TAS={}): B's first command after it: UNIT ATTENTION with ASC {asc:#04x}",
            tas as u8
        );
    }
    // B reads the blocks back (the UA is consumed now).
    assert_eq!(
        b.read_ok(lun, 400, 8),
        old,
        "{what}: B's aborted WRITE landed"
    );
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect2_logical_unit_reset_aborts_the_tasks_of_other_sessions() {
    tmf_reaches_the_other_session(
        LOGICAL_UNIT_RESET,
        0,
        0x29,
        true,
        false,
        "LOGICAL UNIT RESET",
    );
}

#[test]
fn defect2_target_warm_reset_aborts_the_tasks_of_other_sessions() {
    tmf_reaches_the_other_session(TARGET_WARM_RESET, 0, 0x29, true, false, "TARGET WARM RESET");
}

#[test]
fn defect2_target_warm_reset_reaches_lus_the_resetting_session_does_not_see() {
    // TARGET WARM RESET resets every LU of the target, not those in the sender's LUN map.
    tmf_reaches_the_other_session(
        TARGET_WARM_RESET,
        1,
        0x29,
        true,
        true,
        "TARGET WARM RESET (ACL)",
    );
}

#[test]
fn defect2_clear_task_set_clears_the_tasks_of_other_sessions() {
    // TST=000b: one task set shared by every I_T nexus; with TAS=0 the other nexus gets
    // COMMANDS CLEARED BY ANOTHER INITIATOR (2Fh/00h), with TAS=1 TASK ABORTED status.
    tmf_reaches_the_other_session(CLEAR_TASK_SET, 0, 0x2f, false, false, "CLEAR TASK SET");
}
