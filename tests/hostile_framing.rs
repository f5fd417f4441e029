//! Hostile peers against the real daemon, part 1: framing. Data digests on empty data
//! segments (issue 8, defect 1), deadlines once a PDU has started (defect 4), garbage, huge
//! lengths, bad digests, slowloris. Every case runs beside a witness session doing
//! verified I/O on another target of the same daemon.
//!
//! Observed on the code before the session core (main at 7eb3a12), `cargo test --test
//! hostile_framing -- --ignored`:
//! - `defect1_empty_nop_out_with_data_digest_keeps_the_stream_in_sync`: the empty ping is
//!   never answered (Timeout): the daemon waits for a 4-byte digest that is not sent.
//! - `defect1_answers_to_target_pings_with_data_digest_keep_the_stream_in_sync`: Timeout
//!   after the first answered NOP-In (the stream is out of sync).
//! - `defect1_empty_text_with_data_digest_keeps_the_stream_in_sync`: Timeout.
//! - `defect1_write_without_immediate_data_with_data_digest`: the WRITE times out.
//! - `defect4_truncated_header_*`, `defect4_partial_pdu_*`,
//!   `defect4_sixteen_mib_data_segment_length_then_silence`,
//!   `defect4_huge_ahs_announced_then_silence`, `defect4_garbage_after_login_*`,
//!   `defect4_random_garbage_after_login_*`: "connection still open after 12s".
//! - `defect4_slowloris_login_one_byte_per_second`: still open after 12 s (13 bytes sent).
//! - `defect4_slowloris_in_full_feature_phase_one_byte_per_second`: still open after 12 s.
//!
//! On the session core (main at 0b256ff, merged here) every case passes except
//! `defect4_slowloris_login_one_byte_per_second` (still open after 12 s: the login phase is
//! bounded by `login_timeout_secs`, not by the PDU deadline), which stays ignored until
//! the lead decides which bound applies during login.
//!
//! Passing today and kept as guards: `raw_initiator_and_witness_work`,
//! `sixteen_mib_data_segment_delivered_whole_is_not_buffered`,
//! `huge_ahs_delivered_whole_is_refused_or_closed`,
//! `bad_header_digest_closes_only_that_connection`,
//! `bad_data_digest_never_lands_and_the_session_stays_usable_or_closes`.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use rustiscsi::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use support::hostile::prelude::*;
use support::initiator::Damage;

/// `[daemon]` lines of the deadline cases: a short PDU deadline, a login timeout long
/// enough that it cannot be what closes a connection, no target pings.
const DEADLINES: &str = "pdu_timeout_secs = 2\nlogin_timeout_secs = 60\nnop_interval_secs = 0";
/// The PDU deadline plus slack for a loaded machine: a stalled connection must be closed
/// (and its session freed) within this.
const DEADLINE_BOUND: Duration = Duration::from_secs(2 + 10);

fn hostile_login(d: &Daemon, name: &str, n: u32, digests: bool) -> Session {
    let mut o = LoginOpts::normal(TARGET, n).initiator(name);
    if digests {
        o = o.digests();
    }
    Session::login(d.addr, &o).unwrap_or_else(|e| panic!("login of {name}: {e:?}"))
}

/// The connection of `s` is closed within `bound` and `name` has no session left, and the
/// daemon's descriptors are back to `fds_before`.
fn assert_freed(d: &Daemon, s: &mut Session, name: &str, fds_before: usize, bound: Duration) {
    let t0 = Instant::now();
    assert!(
        s.closed_within(bound),
        "{name}: connection still open after {bound:?}"
    );
    let left = bound.saturating_sub(t0.elapsed()) + Duration::from_secs(2);
    assert!(
        poll_until(left, || d.sessions_of(name) == 0).is_some(),
        "{name}: session still listed after the connection closed"
    );
    assert!(
        poll_until(Duration::from_secs(5), || d.fds() <= fds_before).is_some(),
        "{name}: daemon holds {} descriptors, {} before",
        d.fds(),
        fds_before
    );
    eprintln!("{name}: freed after {:?}", t0.elapsed());
}

#[test]
fn raw_initiator_and_witness_work() {
    // The harness itself: plain I/O with immediate, unsolicited and solicited data, with
    // and without digests, beside the witness.
    let d = Daemon::start("");
    let w = Witness::start(&d);
    for (n, digests) in [(1, false), (2, true)] {
        let mut s = hostile_login(&d, "iqn.2026-11.org.example:plain", n, digests);
        assert_eq!(s.dd, digests);
        let big = pattern(512 * 1024, n);
        s.write_ok(0, 1000, &big);
        assert_eq!(s.read_ok(0, 1000, 1024), big);
        assert_eq!(s.ping(b"hello").unwrap(), b"hello");
        assert!(s.logout());
    }
    w.finish();
    d.assert_healthy();
}

// ---- defect 1: a data digest only follows a non-empty data segment ----

#[test]
fn defect1_empty_nop_out_with_data_digest_keeps_the_stream_in_sync() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = hostile_login(&d, "iqn.2026-11.org.example:d1-nop", 1, true);
    assert!(s.hd && s.dd);
    s.timeout = Duration::from_secs(5);
    for i in 0..3 {
        let echoed = s
            .ping(&[])
            .unwrap_or_else(|e| panic!("empty ping {i}: {e}"));
        assert!(echoed.is_empty());
        assert_eq!(
            s.ping(b"sync").unwrap(),
            b"sync",
            "ping after empty ping {i}"
        );
    }
    s.write_ok(0, 0, &pattern(4096, 1));
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect1_answers_to_target_pings_with_data_digest_keep_the_stream_in_sync() {
    // open-iscsi's noop_out_interval answers: empty NOP-Outs echoing the target's TTT.
    let d = Daemon::start("nop_interval_secs = 1\nnop_timeout_secs = 5");
    let w = Witness::start(&d);
    let name = "iqn.2026-11.org.example:d1-pings";
    let mut s = hostile_login(&d, name, 1, true);
    let mut pings = 0;
    let t0 = Instant::now();
    while pings < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "only {pings} target pings in 30 s"
        );
        // recv_matching answers pings itself; count them.
        match s.recv_matching(Duration::from_secs(5), |p| {
            p.op() == Opcode::NOP_IN && p.bhs.itt() == RESERVED_TAG
        }) {
            Ok(_) => pings += 1,
            Err(e) => panic!("after {pings} answered pings: {e}"),
        }
    }
    s.timeout = Duration::from_secs(5);
    assert_eq!(s.ping(b"still in sync").unwrap(), b"still in sync");
    s.write_ok(0, 8, &pattern(8192, 2));
    assert_eq!(s.read_ok(0, 8, 16), pattern(8192, 2));
    assert_eq!(d.sessions_of(name), 1, "no reconnect needed");
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect1_empty_text_with_data_digest_keeps_the_stream_in_sync() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = hostile_login(&d, "iqn.2026-11.org.example:d1-text", 1, true);
    s.timeout = Duration::from_secs(5);
    let itt = s.itt();
    let b = s.text_header(itt, RESERVED_TAG, true, false);
    s.send(&b, &[]).unwrap();
    // A Text Response or a Reject: either way the next PDU must be read in sync.
    let r = s
        .recv_matching(Duration::from_secs(5), |p| {
            p.bhs.itt() == itt || p.op() == Opcode::REJECT
        })
        .expect("an answer to the empty Text Request");
    assert!(
        matches!(r.op(), Opcode::TEXT_RESPONSE | Opcode::REJECT),
        "{:?}",
        r.op()
    );
    assert_eq!(s.ping(b"sync").unwrap(), b"sync");
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect1_write_without_immediate_data_with_data_digest() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut o = LoginOpts::normal(TARGET, 1)
        .initiator("iqn.2026-11.org.example:d1-write")
        .digests();
    o.immediate_data = Some(false);
    o.initial_r2t = Some(true);
    let mut s = Session::login(d.addr, &o).unwrap();
    assert!(!s.immediate_data && s.initial_r2t);
    s.timeout = Duration::from_secs(5);
    let data = pattern(16384, 3);
    s.write_ok(0, 64, &data);
    assert_eq!(s.read_ok(0, 64, 32), data);
    w.finish();
    d.assert_healthy();
}

// ---- defect 4: every started PDU has a deadline ----

fn stalled_after(bytes: impl FnOnce(&Session) -> Vec<u8>, name: &str) {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let fds = d.fds();
    let mut s = hostile_login(&d, name, 1, false);
    let raw = bytes(&s);
    s.send_raw(&raw).unwrap();
    assert_freed(&d, &mut s, name, fds, DEADLINE_BOUND);
    w.finish();
    d.assert_healthy();
}

fn nop_with_len(s: &Session, dsl: usize) -> Vec<u8> {
    let mut b = Bhs::new(Opcode::NOP_OUT);
    b.0[0] |= 0x40;
    b.set_flags(0x80)
        .set_itt(7)
        .set_ttt(RESERVED_TAG)
        .set_cmdsn(s.cmdsn);
    b.set_data_segment_len(dsl);
    s.encode_with(
        &b,
        &[],
        &[],
        Damage {
            keep_dsl: true,
            ..Default::default()
        },
    )
}

#[test]
fn defect4_truncated_header_is_closed_within_the_pdu_deadline() {
    stalled_after(
        |s| nop_with_len(s, 0)[..20].to_vec(),
        "iqn.2026-11.org.example:d4-trunc",
    );
}

#[test]
fn defect4_partial_pdu_is_closed_within_the_pdu_deadline() {
    stalled_after(
        |s| {
            let mut v = nop_with_len(s, 4096);
            v.extend_from_slice(&[0xab; 100]);
            v
        },
        "iqn.2026-11.org.example:d4-partial",
    );
}

#[test]
fn defect4_sixteen_mib_data_segment_length_then_silence() {
    stalled_after(
        |s| {
            let mut v = nop_with_len(s, 0xff_ffff);
            v.extend_from_slice(&[0x11; 1024]);
            v
        },
        "iqn.2026-11.org.example:d4-16m",
    );
}

#[test]
fn defect4_huge_ahs_announced_then_silence() {
    stalled_after(
        |s| {
            let mut v = nop_with_len(s, 0);
            v[4] = 255; // TotalAHSLength: 1020 bytes that never come
            v
        },
        "iqn.2026-11.org.example:d4-ahs",
    );
}

#[test]
fn defect4_garbage_after_login_is_closed_within_the_pdu_deadline() {
    // A header-sized lump of garbage: unknown opcode, a 5.9 MB data segment that never
    // comes.
    stalled_after(|_| vec![0x5a; 48], "iqn.2026-11.org.example:d4-garbage");
}

#[test]
fn defect4_random_garbage_after_login_is_closed_within_the_pdu_deadline() {
    stalled_after(
        |_| {
            let mut v = vec![0u8; 4096];
            Rng(0x1234_5678_9abc_def1).fill(&mut v);
            v
        },
        "iqn.2026-11.org.example:d4-random",
    );
}

/// Sends `bytes` one per second from a thread until the write fails or `stop` is set.
fn trickle(
    mut stream: std::net::TcpStream,
    bytes: Vec<u8>,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<usize>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let h = std::thread::spawn(move || {
        let mut sent = 0;
        for b in bytes {
            if st.load(std::sync::atomic::Ordering::Relaxed) || stream.write_all(&[b]).is_err() {
                break;
            }
            sent += 1;
            for _ in 0..10 {
                if st.load(std::sync::atomic::Ordering::Relaxed) {
                    return sent;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        sent
    });
    (stop, h)
}

#[test]
fn defect4_slowloris_login_one_byte_per_second() {
    // The PDU deadline (2 s) applies during login too: the login timeout (60 s here) is
    // not what bounds a trickling peer.
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let fds = d.fds();
    let mut s = Session::connect(d.addr).unwrap();
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x81);
    b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 9]);
    let data = support::initiator::text_data(&[
        ("InitiatorName", "iqn.2026-11.org.example:slowloris"),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    let raw = s.encode(&b, &[], &data);
    let (stop, h) = trickle(s.stream().try_clone().unwrap(), raw);
    let t0 = Instant::now();
    let closed = s.closed_within(DEADLINE_BOUND);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = h.join().unwrap();
    assert!(
        closed,
        "a login trickling 1 byte/s is still open after {:?} ({sent} bytes sent)",
        t0.elapsed()
    );
    assert!(poll_until(Duration::from_secs(5), || d.fds() <= fds).is_some());
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect4_slowloris_in_full_feature_phase_one_byte_per_second() {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let fds = d.fds();
    let name = "iqn.2026-11.org.example:d4-slow";
    let mut s = hostile_login(&d, name, 1, false);
    let mut raw = nop_with_len(&s, 0);
    // a ping with data, 1 byte/s: 48 + 64 bytes at least a minute
    raw[5..8].copy_from_slice(&[0, 0, 64]);
    raw.extend_from_slice(&[0x42; 64]);
    let (stop, h) = trickle(s.stream().try_clone().unwrap(), raw);
    let t0 = Instant::now();
    let closed = s.closed_within(DEADLINE_BOUND);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    h.join().unwrap();
    assert!(
        closed,
        "a PDU trickling 1 byte/s is still open after {:?}",
        t0.elapsed()
    );
    assert!(poll_until(Duration::from_secs(5), || d.sessions_of(name) == 0).is_some());
    assert!(poll_until(Duration::from_secs(5), || d.fds() <= fds).is_some());
    w.finish();
    d.assert_healthy();
}

// ---- huge lengths delivered in full, bad digests: refused, nothing buffered ----

#[test]
fn sixteen_mib_data_segment_delivered_whole_is_not_buffered() {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let rss0 = d.rss();
    let mut s = hostile_login(&d, "iqn.2026-11.org.example:big-dsl", 1, false);
    let mut raw = nop_with_len(&s, 0xff_ffff);
    raw.resize(48 + 0xff_ffff + 1, 0x33); // data + 1 byte of padding
    let mut ping = s.nop_header();
    ping.set_itt(0xbeef);
    raw.extend_from_slice(&s.encode(&ping, &[], b"after"));
    let mut tx = s.stream().try_clone().unwrap();
    let h = std::thread::spawn(move || tx.write_all(&raw).is_ok());
    // Either a Reject and the session goes on (the ping comes back), or the connection
    // is closed; never a hang, never 16 MiB buffered.
    let got = s.recv_matching(Duration::from_secs(30), |p| {
        p.op() == Opcode::NOP_IN && p.bhs.itt() == 0xbeef
    });
    match got {
        Ok(p) => assert_eq!(p.data, b"after"),
        Err(RecvError::Closed) => {}
        Err(e) => panic!("neither an answer nor a close: {e}"),
    }
    let _ = h.join();
    let grown = d.rss().saturating_sub(rss0);
    assert!(grown < 32 << 20, "RSS grew by {} MiB", grown >> 20);
    w.finish();
    d.assert_healthy();
}

#[test]
fn huge_ahs_delivered_whole_is_refused_or_closed() {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let mut s = hostile_login(&d, "iqn.2026-11.org.example:big-ahs", 1, false);
    let b = s.nop_header();
    let itt = b.itt();
    let ahs = vec![0x77u8; 1020];
    let raw = s.encode(&b, &ahs, b"ahs");
    s.send_raw(&raw).unwrap();
    let mut ping = s.nop_header();
    ping.set_itt(0xbeef);
    let raw = s.encode(&ping, &[], b"after");
    let _ = s.send_raw(&raw);
    match s.recv_matching(Duration::from_secs(10), |p| {
        p.op() == Opcode::NOP_IN && p.bhs.itt() == 0xbeef
    }) {
        Ok(p) => assert_eq!(p.data, b"after"),
        Err(RecvError::Closed) => {}
        Err(e) => panic!("neither an answer nor a close after a 1020-byte AHS (itt {itt:#x}): {e}"),
    }
    w.finish();
    d.assert_healthy();
}

#[test]
fn bad_header_digest_closes_only_that_connection() {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let fds = d.fds();
    let name = "iqn.2026-11.org.example:bad-hd";
    let mut s = hostile_login(&d, name, 1, true);
    let b = s.nop_header();
    let raw = s.encode_with(
        &b,
        &[],
        b"x",
        Damage {
            header_digest: true,
            ..Default::default()
        },
    );
    s.send_raw(&raw).unwrap();
    assert_freed(&d, &mut s, name, fds, Duration::from_secs(10));
    w.finish();
    d.assert_healthy();
}

#[test]
fn bad_data_digest_never_lands_and_the_session_stays_usable_or_closes() {
    let d = Daemon::start(DEADLINES);
    let w = Witness::start(&d);
    let name = "iqn.2026-11.org.example:bad-dd";
    let mut s = hostile_login(&d, name, 1, true);
    let old = pattern(4096, 10);
    s.write_ok(1, 200, &old);
    // A NOP-Out with a bad data digest: Reject (data digest error) or close.
    let b = s.nop_header();
    let raw = s.encode_with(
        &b,
        &[],
        b"bad",
        Damage {
            data_digest: true,
            ..Default::default()
        },
    );
    s.send_raw(&raw).unwrap();
    let open = match s.ping(b"after") {
        Ok(d) => {
            assert_eq!(d, b"after");
            true
        }
        Err(RecvError::Closed) => false,
        Err(e) => panic!("after a bad data digest: {e}"),
    };
    // A WRITE whose immediate data has a bad digest must not land.
    if open {
        let new = pattern(4096, 11);
        let cdb = rw10(true, 200, 8);
        let c = Cmd::write(1, &cdb, &new);
        let b = s.command_header(&c, true);
        let itt = b.itt();
        let raw = s.encode_with(
            &b,
            &[],
            &new,
            Damage {
                data_digest: true,
                ..Default::default()
            },
        );
        s.send_raw(&raw).unwrap();
        match s.recv_matching(Duration::from_secs(10), |p| {
            p.bhs.itt() == itt || p.op() == Opcode::REJECT
        }) {
            Ok(p) if p.op() == Opcode::SCSI_RESPONSE => {
                assert_ne!(p.bhs.0[3], 0, "WRITE with a bad data digest answered GOOD")
            }
            Ok(p) if p.op() == Opcode::R2T => {
                panic!("the target solicited data for a command whose PDU it should discard")
            }
            Ok(_) | Err(RecvError::Closed) | Err(RecvError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut check = hostile_login(&d, "iqn.2026-11.org.example:bad-dd-check", 2, false);
    assert_eq!(
        check.read_ok(1, 200, 8),
        old,
        "data with a bad digest landed"
    );
    w.finish();
    d.assert_healthy();
}
