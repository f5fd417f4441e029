//! Defect 4 of issue 8: every wait has a deadline; time is simulated.

use super::harness::*;
use crate::iscsi::session::{CloseReason, Kill, Limits};
use crate::iscsi::wire::{Opcode, RESERVED_TAG};

/// A PDU that starts and does not finish ends the connection at the PDU deadline.
#[test]
fn a_started_pdu_has_a_deadline() {
    let mut h = H::new();
    h.s.on_receiving(h.now);
    h.advance(secs(14));
    assert!(h.closed.is_none());
    h.advance(secs(2));
    assert_eq!(
        h.closed.as_ref().map(|c| &c.0),
        Some(&CloseReason::PduTimeout)
    );
}

/// A complete PDU clears the deadline.
#[test]
fn a_finished_pdu_clears_the_deadline() {
    let mut h = H::new();
    h.s.on_receiving(h.now);
    h.advance(secs(5));
    h.send(nop_out(1, h.cmdsn, true), b"");
    h.advance(secs(12));
    assert!(h.closed.is_none());
}

/// A peer that stops reading: sends that make no progress end the connection.
#[test]
fn sends_that_make_no_progress_time_out() {
    let mut h = H::new();
    h.reading_peer = false;
    h.send(nop_out(1, h.cmdsn, true), b"x");
    assert!(h.s.poll_transmit(h.now).is_some(), "the driver took a PDU");
    h.advance(secs(29));
    assert!(h.closed.is_none());
    h.advance(secs(2));
    assert_eq!(
        h.closed.as_ref().map(|c| &c.0),
        Some(&CloseReason::SendTimeout)
    );
}

/// NOP-In pings after silence; no answer within the timeout ends the connection; an
/// answer (or any PDU) keeps it.
#[test]
fn nop_ping_and_its_timeout() {
    let limits = Limits {
        nop_interval: Some(secs(2)),
        nop_timeout: secs(3),
        ..Limits::default()
    };
    let mut h = H::with(params(), limits);
    h.advance(secs(2));
    let ping = h
        .take(Opcode::NOP_IN)
        .pop()
        .expect("a ping after 2 s of silence");
    assert_eq!(ping.bhs.itt(), RESERVED_TAG);
    let mut answer = nop_out(RESERVED_TAG, h.cmdsn, true);
    answer.set_ttt(ping.bhs.ttt());
    h.send(answer, &[]);
    h.advance(secs(2));
    assert!(
        h.take(Opcode::NOP_IN).len() == 1,
        "pinged again after silence"
    );
    h.advance(secs(3));
    assert_eq!(
        h.closed.as_ref().map(|c| &c.0),
        Some(&CloseReason::NopTimeout)
    );
}

/// Asked to log out (access removed, shutdown), an initiator that does not gets closed.
#[test]
fn ask_logout_then_close() {
    let mut h = H::new();
    h.s.on_kill(h.now, Kill::AskLogout("shutdown".into()));
    h.pump();
    let m = h
        .take(Opcode::ASYNC_MESSAGE)
        .pop()
        .expect("async logout request");
    assert_eq!(m.bhs.0[36], 1);
    h.advance(secs(4));
    assert!(h.closed.is_none());
    h.advance(secs(2));
    assert_eq!(
        h.closed.as_ref().map(|c| &c.0),
        Some(&CloseReason::LogoutTimeout)
    );
}

/// A kill closes at once, in any state (here: in the middle of a write's data).
#[test]
fn kill_interrupts_any_state() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(write10(1, sn, 0, 64, false), &[0u8; 512]);
    h.s.on_receiving(h.now);
    h.s.on_kill(h.now, Kill::Now("reinstated".into()));
    h.pump();
    assert!(matches!(h.closed, Some((CloseReason::Killed(_), false))));
    assert!(h.s.poll_timeout().is_none());
}

/// Logout while a write waits for data that never comes: answered at the logout deadline.
#[test]
fn logout_does_not_wait_forever_for_write_data() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    h.send(write10(1, sn, 0, 64, true), &[]);
    h.send(logout_req(2, h.cmdsn), &[]);
    h.advance(secs(9));
    assert!(h.take(Opcode::LOGOUT_RESPONSE).is_empty());
    h.advance(secs(2));
    assert_eq!(h.take(Opcode::LOGOUT_RESPONSE).len(), 1);
    assert!(h.execs.is_empty(), "the write never ran");
}
