//! Hostile peers against the real daemon, part 3: sequencing. The CmdSN window after a
//! Reject, RefCmdSN of ABORT TASK and immediate commands (issue 8, defect 5); Data-Out
//! coverage, wrong DataSN, data past the end, unknown TTT, early F bit and short
//! unsolicited bursts (defect 6). A task is always concluded (a response or the
//! connection closed), a session never wedges, and a write never answers GOOD with a
//! hole. Every case runs beside a witness session doing verified I/O.
//!
//! Observed on the code before the session core (main at 7eb3a12), `cargo test --test
//! hostile_sequence -- --ignored`:
//! - `defect5_commands_after_a_reject_are_held_not_dropped`: CmdSN n+1 never answered.
//! - `defect5_abort_task_for_a_cmdsn_never_received_fills_the_hole`: ABORT TASK answers
//!   TASK DOES NOT EXIST (1), the held command is never run.
//! - `defect5_an_immediate_command_does_not_shrink_the_window`: the 8th WRITE of the
//!   advertised window is dropped (Timeout).
//! - `defect6_duplicate_data_out_offsets_*`, `defect6_overlapping_data_out_*`: GOOD, but
//!   the blocks hold other data (a hole).
//! - `defect6_wrong_datasn_*`, `defect6_data_past_the_transfer_length_*`,
//!   `defect6_unknown_ttt_*`: a Reject, then the task is gone without a response (ABORT
//!   TASK: TASK DOES NOT EXIST).
//! - `defect6_early_f_bit_in_a_solicited_burst_is_not_a_hang`: neither answered nor
//!   rejected: the initiator waits forever.
//! - `defect6_fewer_unsolicited_bytes_than_first_burst_length_*`: only R2T [64K, 128K)
//!   comes, never one for [16K, 64K); the WRITE never completes.
//!
//! On the session core (main at 0b256ff, merged here) every case passes.

mod support;

use std::time::{Duration, Instant};

use rustiscsi::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use support::hostile::prelude::*;
use support::initiator::Cmd;

const ABORT_TASK: u8 = 1;

fn session(d: &Daemon, name: &str, n: u32, initial_r2t: bool, immediate: bool) -> Session {
    let mut o = LoginOpts::normal(TARGET, n).initiator(name);
    o.initial_r2t = Some(initial_r2t);
    o.immediate_data = Some(immediate);
    let mut s = Session::login(d.addr, &o).unwrap_or_else(|e| panic!("login {name}: {e:?}"));
    s.timeout = Duration::from_secs(10);
    s
}

/// A TUR header with an explicit CmdSN (the session's counter is not touched).
fn tur_at(s: &mut Session, cmdsn: u32, fin: bool) -> Bhs {
    let saved = s.cmdsn;
    s.cmdsn = cmdsn;
    let b = s.command_header(&Cmd::none(0, &TUR), fin);
    s.cmdsn = saved;
    b
}

fn wait_status(s: &mut Session, itt: u32, what: &str) -> u8 {
    match s.recv_matching(Duration::from_secs(10), |p| {
        p.op() == Opcode::SCSI_RESPONSE && p.bhs.itt() == itt
    }) {
        Ok(p) => p.bhs.0[3],
        Err(e) => panic!("{what}: no response ({e})"),
    }
}

// ---- defect 5 ----

#[test]
fn defect5_commands_after_a_reject_are_held_not_dropped() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = session(&d, "iqn.2026-11.org.example:d5-reject", 1, false, true);
    let n = s.cmdsn;
    // CmdSN n: a TUR without the F bit and without write data is a protocol error.
    let bad = tur_at(&mut s, n, false);
    s.send(&bad, &[]).unwrap();
    // n+1, n+2 are in the window and above ExpCmdSN: the target must hold them.
    let a = tur_at(&mut s, n.wrapping_add(1), true);
    let b = tur_at(&mut s, n.wrapping_add(2), true);
    s.send(&a, &[]).unwrap();
    s.send(&b, &[]).unwrap();
    let r = s
        .recv_matching(Duration::from_secs(10), |p| p.op() == Opcode::REJECT)
        .expect("a Reject for the malformed command");
    assert_eq!(Bhs(r.data[..48].try_into().unwrap()).itt(), bad.itt());
    // The initiator retries CmdSN n with a valid command.
    let retry = tur_at(&mut s, n, true);
    s.send(&retry, &[]).unwrap();
    assert_eq!(
        wait_status(&mut s, a.itt(), "CmdSN n+1 after the Reject"),
        0
    );
    assert_eq!(
        wait_status(&mut s, b.itt(), "CmdSN n+2 after the Reject"),
        0
    );
    // Whatever the target did with the retry, the session goes on at n+3.
    s.cmdsn = n.wrapping_add(3);
    let r = s
        .command(&Cmd::none(0, &TUR))
        .expect("CmdSN n+3: the session wedged");
    assert_eq!(r.status, 0);
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect5_abort_task_for_a_cmdsn_never_received_fills_the_hole() {
    // RFC 7143 §11.5.1: an ABORT TASK whose task does not exist but whose RefCmdSN is in
    // the window and below the TMF's own CmdSN: the target considers that CmdSN received
    // and answers FUNCTION COMPLETE.
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = session(&d, "iqn.2026-11.org.example:d5-refcmdsn", 1, false, true);
    let n = s.cmdsn;
    // CmdSN n is "lost" (never sent); n+1 is held behind the hole.
    let held = tur_at(&mut s, n.wrapping_add(1), true);
    s.send(&held, &[]).unwrap();
    s.cmdsn = n.wrapping_add(2);
    let resp = s.tmf(ABORT_TASK, 0, 0xdead, n).expect("TMF response");
    assert_eq!(
        resp, 0,
        "ABORT TASK with RefCmdSN of a lost command: FUNCTION COMPLETE"
    );
    assert_eq!(
        wait_status(&mut s, held.itt(), "the command held behind the hole"),
        0
    );
    let r = s.command(&Cmd::none(0, &TUR)).expect("the session wedged");
    assert_eq!(r.status, 0);
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect5_an_immediate_command_does_not_shrink_the_window() {
    // The initiator keeps the highest MaxCmdSN it saw (RFC 7143 §4.2.2.1), so the target
    // must accept every CmdSN up to it even while an immediate command is outstanding.
    let d = Daemon::start_setup(&support::hostile::Setup {
        iscsi: "queue_depth = 8".into(),
        ..Default::default()
    });
    let w = Witness::start(&d);
    let mut s = session(&d, "iqn.2026-11.org.example:d5-immediate", 1, true, false);
    let data = pattern(4096, 5);
    let cdb = rw10(true, 512, 8);
    // One immediate WRITE, left waiting for its data.
    let mut c = Cmd::write(0, &cdb, &data);
    c.immediate = true;
    let imm = s.start_command(&c).unwrap();
    let imm_r2t = s
        .recv_matching(Duration::from_secs(10), |p| {
            p.op() == Opcode::R2T && p.bhs.itt() == imm
        })
        .expect("R2T of the immediate WRITE");
    // Then WRITEs filling the window the initiator was given.
    let mut itts = Vec::new();
    while support::initiator::sn_lt(s.cmdsn, s.max_cmdsn.wrapping_add(1)) {
        let lba = 1024 + 8 * itts.len() as u32;
        let cdb = rw10(true, lba, 8);
        itts.push((s.start_command(&Cmd::write(0, &cdb, &data)).unwrap(), lba));
    }
    assert_eq!(itts.len(), 8, "a window of queue_depth commands");
    for (i, (itt, _)) in itts.iter().enumerate() {
        let r = s
            .finish_command(*itt, &data)
            .unwrap_or_else(|e| panic!("WRITE {i} of 8 in the window: {e}"));
        assert_eq!(r.status, 0, "WRITE {i}");
    }
    // Now the immediate WRITE's data, for the R2T it got at the start.
    s.send_sequence(imm, imm_r2t.bhs.ttt(), 0, &data).unwrap();
    let r = s.finish_command(imm, &data).expect("the immediate WRITE");
    assert!(
        r.status == 0 || r.status == 0x08 || r.status == 0x28,
        "immediate WRITE status {:#x}",
        r.status
    );
    for (_, lba) in itts {
        assert_eq!(s.read_ok(0, lba, 8), data);
    }
    w.finish();
    d.assert_healthy();
}

// ---- defect 6 ----

/// How a task ended.
#[derive(Debug)]
enum Outcome {
    /// SCSI Response with this status.
    Status(u8),
    /// The target closed the connection.
    Closed,
    /// Neither within the limit.
    Nothing,
}

/// Waits for task `itt` to conclude, serving any R2T correctly from `data` and counting
/// Rejects. Returns the outcome, the Rejects seen and the R2Ts served.
fn conclude(
    s: &mut Session,
    itt: u32,
    data: &[u8],
    limit: Duration,
) -> (Outcome, usize, Vec<(u32, u32)>) {
    let deadline = Instant::now() + limit;
    let (mut rejects, mut r2ts) = (0, Vec::new());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match s.recv_matching(left, |p| p.bhs.itt() == itt || p.op() == Opcode::REJECT) {
            Ok(p) if p.op() == Opcode::REJECT => rejects += 1,
            Ok(p) if p.op() == Opcode::R2T => {
                let (off, len) = (p.bhs.buffer_offset(), p.bhs.residual());
                r2ts.push((off, len));
                let end = (off as usize + len as usize).min(data.len());
                let start = (off as usize).min(end);
                if s.send_sequence(itt, p.bhs.ttt(), off, &data[start..end])
                    .is_err()
                {
                    return (Outcome::Closed, rejects, r2ts);
                }
            }
            Ok(p) if p.op() == Opcode::SCSI_RESPONSE => {
                return (Outcome::Status(p.bhs.0[3]), rejects, r2ts);
            }
            Ok(_) => {}
            Err(RecvError::Closed) => return (Outcome::Closed, rejects, r2ts),
            Err(RecvError::Timeout) => return (Outcome::Nothing, rejects, r2ts),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Starts an 8 KiB WRITE at `lba` (no immediate data, InitialR2T=Yes) and returns its ITT
/// and the R2T's TTT.
fn write_waiting_for_r2t(s: &mut Session, lba: u32, data: &[u8]) -> (u32, u32) {
    let cdb = rw10(true, lba, (data.len() / 512) as u16);
    let itt = s.start_command(&Cmd::write(0, &cdb, data)).unwrap();
    let r = s
        .recv_matching(Duration::from_secs(10), |p| {
            p.op() == Opcode::R2T && p.bhs.itt() == itt
        })
        .expect("R2T");
    assert_eq!(
        (r.bhs.buffer_offset(), r.bhs.residual()),
        (0, data.len() as u32)
    );
    (itt, r.bhs.ttt())
}

/// Sends `bad` Data-Outs for a fresh 8 KiB WRITE over old data, then checks the task is
/// concluded and never GOOD with data that differs from what was meant.
fn data_out_case(name: &str, bad: impl FnOnce(&mut Session, u32, u32, &[u8])) {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = session(&d, name, 1, true, false);
    let (old, new) = (pattern(8192, 20), pattern(8192, 21));
    s.write_ok(0, 300, &old);
    let (itt, ttt) = write_waiting_for_r2t(&mut s, 300, &new);
    bad(&mut s, itt, ttt, &new);
    let (mut outcome, rejects, r2ts) = conclude(&mut s, itt, &new, Duration::from_secs(5));
    eprintln!("{name}: {outcome:?} after {rejects} Rejects, R2Ts {r2ts:?}");
    if matches!(outcome, Outcome::Nothing) {
        assert!(
            rejects > 0,
            "{name}: the task was neither answered nor rejected: the initiator waits forever"
        );
        // Rejected but not concluded: the task must still exist (RFC 7143 §11.17.1: a
        // Reject does not end a task), so an ABORT TASK finds it.
        let resp = s.tmf(ABORT_TASK, 0, itt, 0).expect("ABORT TASK answered");
        assert_eq!(
            resp, 0,
            "{name}: after the Reject the task is gone without a response (ABORT TASK: {resp})"
        );
        outcome = match conclude(&mut s, itt, &new, Duration::from_secs(2)).0 {
            Outcome::Status(0) => panic!("{name}: GOOD after the task was aborted"),
            o => o,
        };
    }
    let mut check = session(&d, "iqn.2026-11.org.example:d6-check", 2, true, false);
    let now = check.read_ok(0, 300, 16);
    if let Outcome::Status(0) = outcome {
        assert_eq!(
            now, new,
            "{name}: GOOD, but the blocks hold other data (a hole)"
        );
    }
    if !matches!(outcome, Outcome::Closed) {
        assert!(s.ping(b"alive").is_ok(), "{name}: the session wedged");
    }
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect6_duplicate_data_out_offsets_never_give_good_with_a_hole() {
    data_out_case("iqn.2026-11.org.example:d6-dup", |s, itt, ttt, new| {
        s.data_out(itt, ttt, 0, 0, &new[..4096], false).unwrap();
        s.data_out(itt, ttt, 1, 0, &new[..4096], true).unwrap();
    });
}

#[test]
fn defect6_overlapping_data_out_never_gives_good_with_a_hole() {
    data_out_case("iqn.2026-11.org.example:d6-overlap", |s, itt, ttt, new| {
        s.data_out(itt, ttt, 0, 0, &new[..4096], false).unwrap();
        s.data_out(itt, ttt, 1, 2048, &new[2048..6144], true)
            .unwrap();
    });
}

#[test]
fn defect6_wrong_datasn_concludes_the_task() {
    data_out_case("iqn.2026-11.org.example:d6-datasn", |s, itt, ttt, new| {
        s.data_out(itt, ttt, 5, 0, new, true).unwrap();
    });
}

#[test]
fn defect6_data_past_the_transfer_length_concludes_the_task() {
    data_out_case("iqn.2026-11.org.example:d6-past", |s, itt, ttt, new| {
        let mut more = new.to_vec();
        more.extend_from_slice(&[0xee; 4096]);
        s.data_out(itt, ttt, 0, 4096, &more[4096..], true).unwrap();
    });
}

#[test]
fn defect6_unknown_ttt_concludes_the_task() {
    data_out_case("iqn.2026-11.org.example:d6-ttt", |s, itt, ttt, new| {
        s.data_out(itt, ttt ^ 0x00ab_cd00, 0, 0, new, true).unwrap();
    });
}

#[test]
fn defect6_early_f_bit_in_a_solicited_burst_is_not_a_hang() {
    // Half the burst, F=1: the target solicits the rest (R2T) or ends the task with an
    // error; it never waits forever.
    data_out_case("iqn.2026-11.org.example:d6-early-f", |s, itt, ttt, new| {
        s.data_out(itt, ttt, 0, 0, &new[..4096], true).unwrap();
    });
}

#[test]
fn defect6_fewer_unsolicited_bytes_than_first_burst_length_get_an_r2t_for_the_rest() {
    // InitialR2T=No, FirstBurstLength 64 KiB: the initiator ends its unsolicited burst
    // (F=1) after 16 KiB; the target must solicit everything from 16 KiB on.
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = session(&d, "iqn.2026-11.org.example:d6-short", 1, false, false);
    assert!(
        !s.initial_r2t && s.first_burst >= 65536,
        "negotiated {}",
        s.first_burst
    );
    let data = pattern(128 * 1024, 30);
    let cdb = rw10(true, 2048, 256);
    let c = Cmd::write(0, &cdb, &data);
    let b = s.command_header(&c, false); // F=0: unsolicited Data-Out follows
    let itt = b.itt();
    s.send(&b, &[]).unwrap();
    s.data_out(itt, RESERVED_TAG, 0, 0, &data[..16384], true)
        .unwrap();
    let (outcome, rejects, r2ts) = conclude(&mut s, itt, &data, Duration::from_secs(10));
    eprintln!("short unsolicited burst: {outcome:?}, {rejects} Rejects, R2Ts {r2ts:?}");
    assert!(
        matches!(outcome, Outcome::Status(0)),
        "the WRITE did not complete: {outcome:?} (R2Ts {r2ts:?})"
    );
    let mut covered: Vec<(u32, u32)> = r2ts.iter().map(|&(o, l)| (o, o + l)).collect();
    covered.sort();
    let mut at = 16384;
    for (a, b) in covered {
        if a <= at {
            at = at.max(b);
        }
    }
    assert!(
        at >= data.len() as u32,
        "R2Ts {r2ts:?} leave a gap after 16 KiB"
    );
    assert_eq!(s.read_ok(0, 2048, 256), data);
    w.finish();
    d.assert_healthy();
}
