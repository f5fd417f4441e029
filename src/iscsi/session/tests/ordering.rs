//! Defect 5 (holes in the CmdSN order, RefCmdSN) and defect 8 (task attributes, Text,
//! discovery) of issue 8.

use super::harness::*;
use crate::iscsi::session::TaskAttr;
use crate::iscsi::wire::codes::tmf;
use crate::iscsi::wire::{Opcode, RESERVED_TAG};
use crate::scsi::status;

/// A command rejected for a data digest error is not received: the later in-window
/// commands are held (not dropped), and an ABORT TASK naming the lost CmdSN fills the
/// hole (RFC 7143 §11.5.1), so the held ones run.
#[test]
fn a_hole_holds_later_commands_until_refcmdsn_fills_it() {
    let mut h = H::with(
        crate::iscsi::login::Params {
            data_digest: true,
            ..params()
        },
        Default::default(),
    );
    let lost = h.next_cmdsn();
    h.feed(write10(1, lost, 0, 1, true), &[7u8; 512], false);
    assert_eq!(h.take(Opcode::REJECT)[0].bhs.0[2], 0x02);
    let a = h.next_cmdsn();
    h.send(read10(2, a, 0, 1), &[]);
    let b = h.next_cmdsn();
    h.send(read10(3, b, 0, 1), &[]);
    assert!(
        h.execs.is_empty(),
        "held behind the hole, not run out of order"
    );
    assert_eq!(h.s.task_count(), 2, "held, not dropped");
    // The initiator gives up on the lost command: ABORT TASK with its RefCmdSN.
    h.send(tmf(tmf::ABORT_TASK, 9, h.cmdsn, 0, 1, lost), &[]);
    assert_eq!(h.take(Opcode::TMF_RESPONSE)[0].bhs.0[2], tmf::RESP_COMPLETE);
    assert_eq!(h.execs.len(), 2, "the held commands run");
    assert_eq!(h.s.cmdsn_window().0, b + 1);
}

/// The same hole filled by a retry of the lost command (same CmdSN).
#[test]
fn a_hole_is_filled_by_a_retry() {
    let mut h = H::with(
        crate::iscsi::login::Params {
            data_digest: true,
            ..params()
        },
        Default::default(),
    );
    let lost = h.next_cmdsn();
    h.feed(write10(1, lost, 0, 1, true), &[7u8; 512], false);
    let a = h.next_cmdsn();
    h.send(read10(2, a, 0, 1), &[]);
    assert!(h.execs.is_empty());
    h.send(write10(1, lost, 0, 1, true), &[7u8; 512]);
    let order: Vec<u32> = h.execs.iter().map(|e| e.cdb[0] as u32).collect();
    assert_eq!(order, vec![0x2a, 0x28], "delivered in CmdSN order");
}

/// ABORT TASK of a task that completed: TASK DOES NOT EXIST (what libiscsi and LIO
/// expect); a RefCmdSN outside the window too.
#[test]
fn abort_of_a_finished_task_does_not_exist() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(tur(1, sn), &[]);
    h.complete_next();
    h.send(tmf(tmf::ABORT_TASK, 2, h.cmdsn, 0, 1, sn), &[]);
    assert_eq!(h.take(Opcode::TMF_RESPONSE)[0].bhs.0[2], tmf::RESP_NO_TASK);
}

/// A Reject for a malformed command still counts its CmdSN: no hole, no wedge.
#[test]
fn a_malformed_command_does_not_leave_a_hole() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    // Immediate data on a read: a protocol error.
    h.send(read10(1, sn, 0, 1), &[1u8; 512]);
    assert_eq!(h.take(Opcode::REJECT).len(), 1);
    let sn = h.next_cmdsn();
    h.send(tur(2, sn), &[]);
    assert_eq!(h.execs.len(), 1);
}

/// ORDERED waits for every earlier task and holds back the later ones; HEAD OF QUEUE
/// runs at once.
#[test]
fn task_attributes_are_honoured() {
    let mut h = H::new();
    let a = h.next_cmdsn();
    h.send(read10(1, a, 0, 1), &[]);
    let b = h.next_cmdsn();
    let mut ordered = tur(2, b);
    ordered.set_flags(0x80 | 0x02);
    h.send(ordered, &[]);
    let c = h.next_cmdsn();
    h.send(read10(3, c, 0, 1), &[]);
    let d = h.next_cmdsn();
    let mut head = tur(4, d);
    head.set_flags(0x80 | 0x03);
    h.send(head, &[]);
    let started: Vec<TaskAttr> = h.execs.iter().map(|e| e.attr).collect();
    assert_eq!(started, vec![TaskAttr::Simple, TaskAttr::HeadOfQueue]);
    h.complete_next(); // the first read
    assert_eq!(h.execs.len(), 2, "head of queue, then the ordered one");
    assert_eq!(h.execs[0].attr, TaskAttr::HeadOfQueue);
    assert_eq!(h.execs[1].attr, TaskAttr::Ordered);
    h.execs.pop_front();
    h.complete_next(); // the ordered one
    assert_eq!(h.execs.len(), 1, "the read after it");
    assert_eq!(h.execs[0].cdb[0], 0x28);
    // ACA is refused (no ACA support).
    let e = h.next_cmdsn();
    let mut aca = tur(5, e);
    aca.set_flags(0x80 | 0x04);
    h.send(aca, &[]);
    let r = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(status_of(r.last().unwrap()), status::CHECK_CONDITION);
}

/// A NOP-Out with data is echoed; an empty one too; with digests an empty segment has
/// none (the framer's test covers the bytes; here the session answers both).
#[test]
fn nop_out_echo() {
    let mut h = H::new();
    h.send(nop_out(5, h.cmdsn, true), b"hello");
    h.send(nop_out(6, h.cmdsn, true), b"");
    let r = h.take(Opcode::NOP_IN);
    assert_eq!(r.len(), 2);
    assert_eq!(&r[0].data[..], b"hello");
    assert!(r[1].data.is_empty());
    assert_eq!(r[1].bhs.statsn(), r[0].bhs.statsn() + 1);
}

/// SendTargets in a normal session, a Text request in two PDUs.
#[test]
fn text_requests() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(text_req(1, sn, RESERVED_TAG, true), b"SendTarg");
    let ack = h.take(Opcode::TEXT_RESPONSE).pop().unwrap();
    assert!(ack.data.is_empty() && ack.bhs.ttt() != RESERVED_TAG);
    let sn = h.next_cmdsn();
    h.send(text_req(1, sn, ack.bhs.ttt(), false), b"ets=All\0");
    let r = h.take(Opcode::TEXT_RESPONSE).pop().unwrap();
    assert!(
        r.data
            .starts_with(b"TargetName=iqn.2026-11.org.example:t\0")
    );
    assert_eq!(r.bhs.flags() & 0x80, 0x80);
}

/// Logout waits for running commands, then answers and closes after the flush.
#[test]
fn logout_after_running_commands() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(read10(1, sn, 0, 1), &[]);
    h.send(logout_req(2, h.cmdsn), &[]);
    assert!(h.take(Opcode::LOGOUT_RESPONSE).is_empty());
    h.complete_next();
    let kinds: Vec<Opcode> = h.sent.iter().map(|p| p.op()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|o| **o == Opcode::LOGOUT_RESPONSE)
            .count(),
        1
    );
    let pos_data = kinds.iter().position(|o| *o == Opcode::DATA_IN).unwrap();
    let pos_logout = kinds
        .iter()
        .position(|o| *o == Opcode::LOGOUT_RESPONSE)
        .unwrap();
    assert!(pos_data < pos_logout, "the read's data goes first");
    assert!(matches!(h.closed, Some((_, true))));
}
