//! Defect 6 of issue 8: Data-Out counts coverage, not bytes; every invalid Data-Out ends
//! its task; an early F bit or short unsolicited data gets an R2T for the rest.

use proptest::prelude::*;

use super::harness::*;
use crate::iscsi::login::Params;
use crate::iscsi::session::Limits;
use crate::iscsi::wire::{Opcode, RESERVED_TAG};
use crate::scsi::{sense, status};

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Overlapping or repeated offsets never make a GOOD write with a hole.
#[test]
fn overlapping_data_out_ends_the_task() {
    let mut h = H::with(
        Params {
            immediate_data: false,
            initial_r2t: true,
            ..params()
        },
        Limits::default(),
    );
    let sn = h.next_cmdsn();
    h.send(write10(1, sn, 0, 16, true), &[]); // 8 KiB
    let r2t = h.take(Opcode::R2T).pop().unwrap();
    let ttt = r2t.bhs.ttt();
    let d = pattern(8192);
    h.send(data_out(1, ttt, 0, 0, false), &d[..4096]);
    // The same 4 KiB again (offset 0), instead of the second half.
    h.send(data_out(1, ttt, 1, 0, true), &d[..4096]);
    assert!(h.execs.is_empty(), "the write must not run with a hole");
    assert_eq!(h.take(Opcode::REJECT).len(), 1);
    let r = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(status_of(&r[0]), status::CHECK_CONDITION);
    assert_eq!(sense_key(&r[0]), sense::key::ABORTED_COMMAND);
    assert_eq!(h.s.task_count(), 0);
}

/// A wrong DataSN, data past the transfer length, an unknown TTT: the task is concluded
/// (CHECK CONDITION), never left waiting.
#[test]
fn invalid_data_out_concludes_the_task() {
    for case in 0..3 {
        let mut h = H::with(
            Params {
                immediate_data: false,
                initial_r2t: true,
                ..params()
            },
            Limits::default(),
        );
        let sn = h.next_cmdsn();
        h.send(write10(1, sn, 0, 8, true), &[]);
        let ttt = h.take(Opcode::R2T)[0].bhs.ttt();
        match case {
            0 => h.send(data_out(1, ttt, 5, 0, true), &[0u8; 4096]),
            1 => h.send(data_out(1, ttt, 0, 0, true), &[0u8; 8192]),
            _ => h.send(data_out(1, ttt ^ 0x55, 0, 0, true), &[0u8; 4096]),
        }
        let r = h.take(Opcode::SCSI_RESPONSE);
        assert_eq!(r.len(), 1, "case {case}: the task is answered");
        assert_eq!(status_of(&r[0]), status::CHECK_CONDITION);
        assert_eq!(h.s.task_count(), 0, "case {case}");
        assert!(h.execs.is_empty());
    }
}

/// An early F bit on unsolicited data: the target solicits the rest.
#[test]
fn early_f_bit_gets_an_r2t_for_the_rest() {
    let mut h = H::new(); // FirstBurstLength 256 KiB, InitialR2T=No
    let sn = h.next_cmdsn();
    let d = pattern(64 * 1024);
    // 64 KiB write, 4 KiB immediate, F=0 (unsolicited Data-Out may follow) ...
    h.send(write10(1, sn, 0, 128, false), &d[..4096]);
    assert!(
        h.take(Opcode::R2T).is_empty(),
        "unsolicited data may still come"
    );
    // ... 4 KiB unsolicited with F=1: the unsolicited sequence ends at 8 KiB.
    h.send(data_out(1, RESERVED_TAG, 0, 4096, true), &d[4096..8192]);
    let r2t = h.take(Opcode::R2T);
    assert_eq!(r2t.len(), 1);
    assert_eq!(r2t[0].bhs.buffer_offset(), 8192);
    assert_eq!(r2t[0].bhs.residual(), 64 * 1024 - 8192, "desired length");
    h.send(data_out(1, r2t[0].bhs.ttt(), 0, 8192, true), &d[8192..]);
    let e = h.execs.pop_front().expect("complete write runs");
    assert_eq!(e.data_out, d);
}

/// Fewer immediate bytes than FirstBurstLength with F=1: R2T for the rest at once.
#[test]
fn short_immediate_data_gets_an_r2t() {
    let mut h = H::new();
    let sn = h.next_cmdsn();
    let d = pattern(16 * 1024);
    h.send(write10(1, sn, 0, 32, true), &d[..512]);
    let r2t = h.take(Opcode::R2T);
    assert_eq!(r2t[0].bhs.buffer_offset(), 512);
    h.send(data_out(1, r2t[0].bhs.ttt(), 0, 512, true), &d[512..]);
    assert_eq!(h.execs.pop_front().unwrap().data_out, d);
}

/// A solicited burst that ends short (F before its end) is solicited again.
#[test]
fn short_burst_is_solicited_again() {
    let mut h = H::with(
        Params {
            immediate_data: false,
            initial_r2t: true,
            ..params()
        },
        Limits::default(),
    );
    let sn = h.next_cmdsn();
    let d = pattern(8192);
    h.send(write10(1, sn, 0, 16, true), &[]);
    let r = h.take(Opcode::R2T).pop().unwrap();
    h.send(data_out(1, r.bhs.ttt(), 0, 0, true), &d[..1024]);
    let again = h.take(Opcode::R2T).pop().expect("the rest is asked for");
    assert_eq!(again.bhs.buffer_offset(), 1024);
    assert_eq!(again.bhs.residual(), 8192 - 1024);
    assert_eq!(again.bhs.datasn(), 1, "R2TSN advances");
    h.send(data_out(1, again.bhs.ttt(), 0, 1024, true), &d[1024..]);
    assert_eq!(h.execs.pop_front().unwrap().data_out, d);
}

/// A data digest error in a Data-Out: Reject, and the task ends with PROTOCOL SERVICE CRC
/// ERROR; the session goes on.
#[test]
fn data_digest_error_in_data_out() {
    let mut h = H::with(
        Params {
            immediate_data: false,
            initial_r2t: true,
            data_digest: true,
            ..params()
        },
        Limits::default(),
    );
    let sn = h.next_cmdsn();
    h.send(write10(1, sn, 0, 8, true), &[]);
    let ttt = h.take(Opcode::R2T)[0].bhs.ttt();
    h.feed(data_out(1, ttt, 0, 0, true), &[0u8; 4096], false);
    assert_eq!(
        h.take(Opcode::REJECT)[0].bhs.0[2],
        0x02,
        "data digest error"
    );
    let r = h.take(Opcode::SCSI_RESPONSE);
    assert_eq!(asc(&r[0]), (0x47, 0x05));
    assert!(h.closed.is_none());
    let sn = h.next_cmdsn();
    h.send(tur(2, sn), &[]);
    assert_eq!(h.execs.len(), 1, "the session goes on");
}

/// One Data-Out of a write, as an initiator might send it (or break it).
#[derive(Debug, Clone)]
enum Step {
    /// Send the next piece in order.
    Next(u32),
    /// Repeat the previous piece.
    Repeat,
    /// Skip ahead by some bytes.
    Skip(u32),
    /// Wrong DataSN.
    BadSn,
}

proptest! {
    /// Whatever Data-Outs arrive, a write runs only with exactly the bytes the initiator
    /// sent at each offset, every one of them; otherwise it ends with CHECK CONDITION.
    #[test]
    fn a_write_runs_only_when_every_byte_arrived(
        blocks in 1u16..64,
        steps in prop::collection::vec(
            prop_oneof![
                8 => (1u32..6000).prop_map(Step::Next),
                1 => Just(Step::Repeat),
                1 => (1u32..600).prop_map(Step::Skip),
                1 => Just(Step::BadSn),
            ],
            1..40,
        ),
    ) {
        let mut h = H::with(
            Params { immediate_data: false, initial_r2t: true, max_burst_length: 8192, max_outstanding_r2t: 1, ..params() },
            Limits::default(),
        );
        let edtl = u32::from(blocks) * 512;
        let d = pattern(edtl as usize);
        let sn = h.next_cmdsn();
        h.send(write10(1, sn, 0, blocks, true), &[]);
        let mut r2t = h.take(Opcode::R2T).pop();
        let (mut off, mut sn_in_burst, mut last) = (0u32, 0u32, None::<(u32, u32)>);
        let mut broken = false;
        for s in steps {
            let Some(r) = r2t.clone() else { break };
            let (bo, blen, ttt) = (r.bhs.buffer_offset(), r.bhs.residual(), r.bhs.ttt());
            let end = bo + blen;
            let (o, l, dsn) = match s {
                Step::Next(n) => (off, n.min(end - off), sn_in_burst),
                Step::Repeat => match last { Some((o, l)) => (o, l, sn_in_burst), None => continue },
                Step::Skip(n) => { broken = true; (off + n, 1, sn_in_burst) }
                Step::BadSn => { broken = true; (off, 1, sn_in_burst + 7) }
            };
            if matches!(s, Step::Repeat) { broken = true; }
            let o_us = o as usize;
            let piece = if o_us + l as usize <= d.len() { d[o_us..o_us + l as usize].to_vec() } else { vec![0u8; l as usize] };
            let fin = o + l >= end;
            h.send(data_out(1, ttt, dsn, o, fin), &piece);
            if broken { break; }
            last = Some((o, l));
            off = o + l;
            sn_in_burst += 1;
            if off >= end {
                sn_in_burst = 0;
                last = None;
                r2t = h.take(Opcode::R2T).pop();
            }
        }
        if let Some(e) = h.execs.pop_front() {
            prop_assert!(!broken, "a broken transfer ran");
            prop_assert_eq!(e.data_out, d);
        } else if broken {
            let r = h.take(Opcode::SCSI_RESPONSE);
            prop_assert_eq!(r.len(), 1, "a broken transfer is answered");
            prop_assert_eq!(status_of(&r[0]), status::CHECK_CONDITION);
        }
    }
}
