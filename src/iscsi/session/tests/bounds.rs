//! Defect 3 of issue 8: what a peer can make the session hold is bounded.

use std::sync::Arc;

use super::harness::*;
use crate::iscsi::session::Limits;
use crate::iscsi::session::budget::BufferPool;
use crate::iscsi::wire::Opcode;
use crate::scsi::status;

/// A peer that never reads, sending 1 MiB READs: once 4 MiB of answers are queued the
/// driver is told to stop reading, so nothing more arrives.
#[test]
fn a_peer_that_never_reads_stops_the_reader() {
    let mut h = H::new();
    h.reading_peer = false;
    let mut sent = 0;
    while h.s.wants_read() && sent < 1000 {
        let sn = h.next_cmdsn();
        h.send(read10(sent + 1, sn, 0, 2048), &[]);
        sent += 1;
        while !h.execs.is_empty() {
            h.complete_next();
        }
    }
    assert!(
        sent <= 5,
        "the reader stops after about 4 MiB queued: {sent} reads"
    );
    assert!(h.s.queued_bytes() <= 5 << 20);
}

/// The same with an output bound larger than the budget: the reads stop running once the
/// session budget is held by answers nobody takes.
#[test]
fn a_peer_that_never_reads_holds_at_most_the_budget() {
    let limits = Limits {
        session_buffers: 64 << 20,
        max_outbound: 1 << 30,
        ..Limits::default()
    };
    let mut h = H::with(params(), limits);
    h.reading_peer = false;
    for i in 0..120u32 {
        if !h.s.wants_read() {
            break;
        }
        let sn = h.next_cmdsn();
        h.send(read10(i + 1, sn, 0, 2048), &[]); // 1 MiB
        while !h.execs.is_empty() {
            h.complete_next();
        }
    }
    assert!(
        h.s.buffers_used() <= 64 << 20,
        "used {}",
        h.s.buffers_used()
    );
    assert!(
        h.s.task_count() > 64,
        "reads beyond the budget wait instead of running: {} tasks",
        h.s.task_count()
    );
    assert!(h.pool.used() <= 64 << 20);
}

/// A window slot is free when the status is sent, not when it is queued.
#[test]
fn window_slot_frees_when_the_status_is_sent() {
    let limits = Limits {
        queue_depth: 4,
        ..Limits::default()
    };
    let mut h = H::with(params(), limits);
    h.reading_peer = false;
    for _ in 0..4 {
        let sn = h.next_cmdsn();
        h.send(tur(sn, sn), &[]);
    }
    while !h.execs.is_empty() {
        h.complete_next();
    }
    // Nothing was sent yet: the window must still be full.
    let first = h.s.poll_transmit(h.now).unwrap();
    assert_eq!(first.bhs.exp_statsn(), 5, "ExpCmdSN");
    assert_eq!(
        first.bhs.max_cmdsn(),
        5,
        "one status taken: one slot free (max = 5)"
    );
    let mut last = first;
    while let Some(p) = h.s.poll_transmit(h.now) {
        last = p;
    }
    assert_eq!(last.bhs.max_cmdsn(), 8);
}

/// Immediate commands do not lower MaxCmdSN; beyond the immediate limit they get TASK
/// SET FULL instead of holding more.
#[test]
fn immediate_commands_are_counted_apart() {
    let limits = Limits {
        queue_depth: 8,
        max_immediate: 2,
        ..Limits::default()
    };
    let mut h = H::with(params(), limits);
    h.send(nop_out(1, h.cmdsn, true), &[]);
    let max0 = h.last_max_cmdsn();
    for i in 0..3u32 {
        let mut b = read10(10 + i, h.cmdsn, 0, 1);
        b.0[0] |= 0x40; // immediate
        h.send(b, &[]);
    }
    assert_eq!(h.execs.len(), 2);
    let full = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(full.len(), 1);
    assert_eq!(status_of(&full[0]), status::TASK_SET_FULL);
    assert_eq!(
        full[0].bhs.max_cmdsn(),
        max0,
        "MaxCmdSN not lowered by immediates"
    );
}

/// Immediate (or ordinary) 32 MiB WRITEs whose data never comes: buffers are only given
/// within the budget (no R2T for the rest), so memory stays bounded; the stalled writes
/// end after the data timeout.
#[test]
fn writes_whose_data_never_comes_are_bounded() {
    let limits = Limits {
        session_buffers: 128 << 20,
        ..Limits::default()
    };
    let pool = Arc::new(BufferPool::new(1 << 30));
    let mut h = H::with_pool(params(), limits.clone(), pool.clone());
    let mut r2t_itts = std::collections::BTreeSet::new();
    for i in 0..64u32 {
        let sn = h.next_cmdsn();
        let mut cdb = [0u8; 16];
        cdb[0] = 0x8a; // WRITE(16)
        cdb[10..14].copy_from_slice(&65_536u32.to_be_bytes()); // 32 MiB
        let b = cmd(i + 1, sn, &cdb, 0x80 | 0x20 | 0x01, 32 << 20);
        h.send(b, &[]);
        for r in h.take(Opcode::R2T) {
            r2t_itts.insert(r.bhs.itt());
        }
    }
    assert!(h.s.buffers_used() <= 128 << 20);
    assert_eq!(
        r2t_itts.len(),
        4,
        "only the writes with a buffer are solicited"
    );
    assert!(pool.used() <= 128 << 20);
    // The data never comes: the solicited ones end with CHECK CONDITION; then the
    // waiting ones get their buffers in turn.
    h.advance(limits.data_timeout + secs(1));
    let ended = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(ended.len(), 4);
    assert!(
        ended
            .iter()
            .all(|p| status_of(p) == status::CHECK_CONDITION)
    );
    let more: std::collections::BTreeSet<u32> =
        h.take(Opcode::R2T).iter().map(|r| r.bhs.itt()).collect();
    assert_eq!(more.len(), 4, "the next four got buffers");
    assert!(h.s.buffers_used() <= 128 << 20);
}

/// The global pool is shared: when it is exhausted, a session's writes wait for it.
#[test]
fn the_global_pool_is_respected() {
    let pool = Arc::new(BufferPool::new(8 << 20));
    let mut h = H::with_pool(params(), Limits::default(), pool.clone());
    for i in 0..4u32 {
        let sn = h.next_cmdsn();
        h.send(write10(i + 1, sn, 0, 8192, true), &[]); // 4 MiB each
    }
    let itts: std::collections::BTreeSet<u32> =
        h.take(Opcode::R2T).iter().map(|r| r.bhs.itt()).collect();
    assert_eq!(itts.len(), 2);
    assert_eq!(pool.used(), 8 << 20);
}

/// A session that ends gives its reservations back to the daemon-wide pool.
#[test]
fn a_dropped_session_releases_its_budget() {
    let pool = Arc::new(BufferPool::new(1 << 30));
    let mut h = H::with_pool(params(), Limits::default(), pool.clone());
    let sn = h.next_cmdsn();
    h.send(write10(1, sn, 0, 2048, true), &[]);
    let sn = h.next_cmdsn();
    h.send(read10(2, sn, 0, 2048), &[]);
    assert_eq!(pool.used(), 2 << 20);
    drop(h);
    assert_eq!(pool.used(), 0);
}
