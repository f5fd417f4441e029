//! Defect 2 of issue 8: task management answers only when the aborted I/O is over.

use super::harness::*;
use crate::iscsi::session::{Action, Completion, TmfScope};
use crate::iscsi::wire::Opcode;
use crate::iscsi::wire::codes::tmf;
use crate::scsi::{ScsiResponse, status};

/// ABORT TASK of a running write: no response until the driver reports the I/O over;
/// the command's own completion afterwards sends nothing.
#[test]
fn abort_task_waits_for_the_running_io() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(write10(7, sn, 0, 8, true), &[1u8; 4096]);
    let exec = h.execs.pop_front().expect("the write runs");
    h.sent.clear();
    h.send(tmf(tmf::ABORT_TASK, 8, h.cmdsn, 0, 7, sn), &[]);
    assert!(
        h.take(Opcode::TMF_RESPONSE).is_empty(),
        "FUNCTION COMPLETE must wait for the running write"
    );
    let Some(Action::Abort {
        tmf: id,
        scope,
        tasks,
        ..
    }) = h.aborts.pop()
    else {
        panic!("no abort action");
    };
    assert_eq!(scope, TmfScope::Task { lun: 0 });
    assert_eq!(tasks, vec![exec.task]);
    // The write finishes (the SCSI core saw the abort too late): no response for it.
    h.complete(exec.task, ScsiResponse::good(Default::default()));
    assert!(h.take(Opcode::SCSI_RESPONSE).is_empty());
    h.s.on_tmf_done(h.now, id, tmf::RESP_COMPLETE);
    h.pump();
    let r = h.take(Opcode::TMF_RESPONSE);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].bhs.0[2], tmf::RESP_COMPLETE);
    assert_eq!(h.s.task_count(), 0);
}

/// ABORT TASK of a write still waiting for its data: it never runs.
#[test]
fn abort_task_of_a_write_collecting_data() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(write10(7, sn, 0, 8, true), &[]);
    assert_eq!(h.take(Opcode::R2T).len(), 1);
    h.send(tmf(tmf::ABORT_TASK, 8, h.cmdsn, 0, 7, sn), &[]);
    let r = h.take(Opcode::TMF_RESPONSE);
    assert_eq!(r[0].bhs.0[2], tmf::RESP_COMPLETE);
    assert!(h.aborts.is_empty(), "nothing in the SCSI core to abort");
    // Its data arrives late: discarded, nothing runs.
    h.send(data_out(7, 1, 0, 0, true), &[1u8; 4096]);
    assert!(h.execs.is_empty());
    assert_eq!(h.s.task_count(), 0);
}

/// LU reset: every task of the session on the LUN, the SCSI core's abort (all nexuses),
/// response only after it; tasks on other LUNs stay.
#[test]
fn lu_reset_reaches_the_scsi_core_and_waits() {
    let mut h = H::new();
    let a = h.next_cmdsn();
    h.send(read10(1, a, 0, 8), &[]);
    let b = h.next_cmdsn();
    h.send(write10(2, b, 0, 8, true), &[]); // collecting data
    let mut other = read10(3, h.next_cmdsn(), 0, 1);
    other.set_lun_raw(crate::iscsi::wire::bhs::encode_lun(1));
    h.send(other, &[]);
    assert_eq!(h.execs.len(), 2);
    h.send(tmf(tmf::LOGICAL_UNIT_RESET, 9, h.cmdsn, 0, 0, 0), &[]);
    let Some(Action::Abort {
        tmf: id,
        scope,
        tasks,
        ..
    }) = h.aborts.pop()
    else {
        panic!("no abort action");
    };
    assert_eq!(scope, TmfScope::LuReset { lun: 0 });
    assert_eq!(tasks.len(), 1, "the running read on LUN 0");
    assert_eq!(h.s.task_count(), 2, "the collecting write is gone");
    assert!(h.take(Opcode::TMF_RESPONSE).is_empty());
    h.s.on_completion(h.now, tasks[0], Completion::Aborted);
    h.s.on_tmf_done(h.now, id, tmf::RESP_COMPLETE);
    h.pump();
    assert_eq!(h.take(Opcode::TMF_RESPONSE).len(), 1);
    assert!(
        h.take(Opcode::SCSI_RESPONSE).is_empty() && h.take(Opcode::DATA_IN).is_empty(),
        "the aborted read sends nothing"
    );
    // LUN 1's read is untouched.
    let e = h.execs.pop_back().unwrap();
    assert_eq!(e.lun, 1);
}

/// A task aborted in the SCSI core by another nexus (LU reset, PREEMPT AND ABORT) gets
/// TASK ABORTED (TAS=1).
#[test]
fn aborted_by_another_nexus_reports_task_aborted() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(read10(1, sn, 0, 8), &[]);
    let e = h.execs.pop_front().unwrap();
    h.s.on_completion(h.now, e.task, Completion::Aborted);
    h.pump();
    let r = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(status_of(&r[0]), status::TASK_ABORTED);
}

/// TARGET COLD RESET: all LUNs, answered, then the connection closes.
#[test]
fn target_cold_reset_answers_then_closes() {
    let mut h = H::new();
    h.send(tmf(tmf::TARGET_COLD_RESET, 9, h.cmdsn, 0, 0, 0), &[]);
    let Some(Action::Abort { tmf: id, scope, .. }) = h.aborts.pop() else {
        panic!("no abort action");
    };
    assert_eq!(scope, TmfScope::TargetReset { cold: true });
    assert!(h.closed.is_none());
    h.s.on_tmf_done(h.now, id, tmf::RESP_COMPLETE);
    h.pump();
    assert_eq!(h.take(Opcode::TMF_RESPONSE).len(), 1);
    assert!(
        matches!(h.closed, Some((_, true))),
        "closed after the response"
    );
}

/// The driver says the LUN does not exist: that is the answer.
#[test]
fn tmf_response_comes_from_the_driver() {
    let mut h = H::new();
    h.send(tmf(tmf::ABORT_TASK_SET, 9, h.cmdsn, 5, 0, 0), &[]);
    let Some(Action::Abort { tmf: id, .. }) = h.aborts.pop() else {
        panic!("no abort action");
    };
    h.s.on_tmf_done(h.now, id, tmf::RESP_NO_LUN);
    h.pump();
    assert_eq!(h.take(Opcode::TMF_RESPONSE)[0].bhs.0[2], tmf::RESP_NO_LUN);
}
