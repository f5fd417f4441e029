//! Hostile peers against the real daemon, part 2: what a peer can make the daemon hold
//! (issue 8, defect 3) and a peer that stops reading (defect 4, send timeout). Memory is
//! read from /proc/PID/status while the hostile peer runs; every case runs beside a
//! witness session doing verified I/O.
//!
//! Bounds: the daemon is started with `buffer_memory = "128M"` and
//! `session_buffer_memory = "64M"` (the smallest the config accepts). Its RSS is measured
//! once it runs with the witness logged in (the baseline); one hostile session may then
//! add at most its session budget (64 MiB) + 32 MiB of slack (read buffers of 256 KiB per
//! connection, writer batches, outbound queue, allocator slack). Address space: the
//! baseline plus 64 MiB plus 512 MiB (malloc arenas of threads that may start). Each
//! hostile loop stops as soon as a limit is crossed, so a failing run does not take the
//! shared machine's memory with it.
//!
//! Observed on the code before the session core (main at 7eb3a12), `cargo test --test
//! hostile_memory -- --ignored`:
//! - `defect3_peer_that_never_reads_1mib_reads_stays_under_the_budget`: RSS 112 MiB
//!   (baseline 12 + 64 + 32 = 108) within a fraction of a second; the loop stops there.
//! - `defect3_peer_that_never_reads_64kib_nop_outs_stays_under_the_budget`: RSS 108 MiB
//!   (limit 108).
//! - `defect3_immediate_32mib_writes_whose_data_never_comes_are_bounded`: address space
//!   884 MiB (limit 147 + 64 + 512 = 723) after ~20 commands.
//! - `defect4_peer_that_stops_reading_is_dropped_after_the_send_timeout`: its session is
//!   still listed 23 s later.
//! - `defect3_255_idle_discovery_sessions_do_not_lock_out_logins` and
//!   `defect3_1000_idle_connections_and_300_discovery_sessions_then_a_normal_login`: "no
//!   normal login within 10 s" (the connection is dropped at max_connections).
//!
//! On the session core (main at 0b256ff, merged here) every case passes: peak RSS +13 MiB
//! (1 MiB READs), +4 MiB (NOP-Out flood), +0 MiB and +130 MiB of address space
//! (immediate WRITEs); the zero-window session is freed 3.0 s after its sends stall; the
//! normal login succeeds in under 4 ms after 1000 idle connections and 300 discovery
//! sessions.
//!
//! Two cases found on the session core by the `session` fuzz target fail there and pass
//! on the old code (regressions of the new core; ignored until the lead fixes them):
//! `write_waiting_for_budget_never_answers_good_without_its_data` (GOOD, old data still on
//! the medium: an acknowledged write lost) and
//! `read_with_an_expected_length_above_the_session_budget_is_answered` (never answered,
//! later READs of the session hang behind it).
//!
//! Passing today: `pusher_keeps_pdus_whole` (the helper's own check).

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::hostile::prelude::*;
use support::initiator::Cmd;

/// The session budget: what one hostile session may hold.
const BUDGET: u64 = 64 << 20;
const RSS_SLACK: u64 = 32 << 20;
const VM_SLACK: u64 = 512 << 20;
/// The memory cases: budgets, and no timeout that would end the hostile connection
/// before the budget is what holds.
const MEM: &str = "buffer_memory = \"128M\"\nsession_buffer_memory = \"64M\"\n\
                   send_timeout_secs = 120\nnop_interval_secs = 0\npdu_timeout_secs = 30";
/// How long each hostile peer pushes.
const PUSH: Duration = Duration::from_secs(5);

/// Writes without blocking and without ever splitting a PDU: bytes that did not fit stay
/// pending and go out first next time.
struct Pusher {
    s: TcpStream,
    pending: Vec<u8>,
    off: usize,
    /// Bytes accepted by the socket.
    pub sent: u64,
    /// Times the socket was full (the daemon stopped reading).
    pub blocked: u64,
}

impl Pusher {
    fn new(s: &Session) -> Pusher {
        let s = s.stream().try_clone().unwrap();
        s.set_nonblocking(true).unwrap();
        Pusher {
            s,
            pending: Vec::new(),
            off: 0,
            sent: 0,
            blocked: 0,
        }
    }

    /// True when everything pending went out (room for more).
    fn flush(&mut self) -> bool {
        while self.off < self.pending.len() {
            match self.s.write(&self.pending[self.off..]) {
                Ok(0) => return false,
                Ok(n) => {
                    self.off += n;
                    self.sent += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.blocked += 1;
                    return false;
                }
                Err(_) => return false, // closed by the daemon: fine for the budget
            }
        }
        self.pending.clear();
        self.off = 0;
        true
    }

    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }
}

/// Runs `next` (which appends one batch of PDUs) for [`PUSH`], at most one batch per
/// `every`, while sampling memory; stops early when a limit is crossed. Returns the peak
/// (RSS, address space) and the pusher.
fn push_for(
    d: &Daemon,
    s: &mut Session,
    every: Duration,
    rss_limit: u64,
    vm_limit: u64,
    mut next: impl FnMut(&mut Session, &mut Pusher),
) -> (u64, u64, Pusher) {
    let sampler = d.sample_memory(rss_limit, vm_limit);
    let mut p = Pusher::new(s);
    let t0 = Instant::now();
    while t0.elapsed() < PUSH && !sampler.exceeded() {
        if p.flush() {
            next(s, &mut p);
        }
        std::thread::sleep(every);
    }
    let (rss, vm) = sampler.finish();
    (rss, vm, p)
}

struct Baseline {
    rss: u64,
    vm: u64,
}

fn baseline(d: &Daemon, w: &Witness) -> Baseline {
    w.assert_progress();
    let b = Baseline {
        rss: d.rss(),
        vm: d.vm_size(),
    };
    eprintln!(
        "baseline: RSS {} MiB, address space {} MiB",
        b.rss >> 20,
        b.vm >> 20
    );
    b
}

fn report(what: &str, b: &Baseline, rss: u64, vm: u64, p: &Pusher) {
    eprintln!(
        "{what}: peak RSS {} MiB (+{} MiB), peak address space {} MiB (+{} MiB); \
         {} MiB pushed, socket full {} times",
        rss >> 20,
        rss.saturating_sub(b.rss) >> 20,
        vm >> 20,
        vm.saturating_sub(b.vm) >> 20,
        p.sent >> 20,
        p.blocked
    );
}

fn assert_rss_returns(d: &Daemon, b: &Baseline, what: &str) {
    let limit = b.rss + RSS_SLACK;
    let ok = poll_until(Duration::from_secs(15), || d.rss() <= limit);
    assert!(
        ok.is_some(),
        "{what}: RSS still {} MiB (baseline {} MiB) 15 s after the peer left",
        d.rss() >> 20,
        b.rss >> 20
    );
}

fn read_cmd(s: &mut Session, i: u64) -> Vec<u8> {
    // READ(10) of 1 MiB somewhere in the 64 MiB LUN.
    let lba = ((i * 2048) % (131_072 - 2048)) as u32;
    let cdb = rw10(false, lba, 2048);
    let b = s.command_header(&Cmd::read(0, &cdb, 1 << 20), true);
    s.encode(&b, &[], &[])
}

/// One budget case: a hostile session logged in with `opts` pushes what `next` makes for
/// [`PUSH`]; the daemon's peak RSS (and with `check_vm` its address space) must stay
/// within the limits, the witness must progress, and the memory must return once the
/// peer has left.
fn budget_case(
    what: &str,
    opts: LoginOpts,
    every: Duration,
    check_vm: bool,
    next: impl FnMut(&mut Session, &mut Pusher),
) {
    let d = Daemon::start(MEM);
    let w = Witness::start(&d);
    let b = baseline(&d, &w);
    let rss_limit = b.rss + BUDGET + RSS_SLACK;
    let vm_limit = if check_vm {
        b.vm + BUDGET + VM_SLACK
    } else {
        u64::MAX
    };
    let mut s = Session::login(d.addr, &opts).unwrap();
    let (rss, vm, p) = push_for(&d, &mut s, every, rss_limit, vm_limit, next);
    report(what, &b, rss, vm, &p);
    w.assert_progress();
    assert!(
        rss <= rss_limit,
        "{what}: RSS reached {} MiB: baseline {} + budget {} + slack {} MiB",
        rss >> 20,
        b.rss >> 20,
        BUDGET >> 20,
        RSS_SLACK >> 20
    );
    assert!(
        vm <= vm_limit,
        "{what}: address space reached {} MiB: baseline {} + budget {} + slack {} MiB",
        vm >> 20,
        b.vm >> 20,
        BUDGET >> 20,
        VM_SLACK >> 20
    );
    // The peer leaves: both handles of its socket (the pusher holds a clone).
    drop(p);
    drop(s);
    assert_rss_returns(&d, &b, what);
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect3_peer_that_never_reads_1mib_reads_stays_under_the_budget() {
    let opts = LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:no-read");
    let mut i = 0u64;
    budget_case(
        "1 MiB READs, never read",
        opts,
        Duration::from_millis(2),
        false,
        |s, p| {
            for _ in 0..16 {
                p.push(&read_cmd(s, i));
                i += 1;
            }
        },
    );
}

#[test]
fn defect3_peer_that_never_reads_64kib_nop_outs_stays_under_the_budget() {
    let opts = LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:nop-flood");
    let payload = pattern(65536, 7);
    budget_case(
        "64 KiB NOP-Outs, never read",
        opts,
        Duration::from_millis(1),
        false,
        |s, p| {
            let h = s.nop_header();
            p.push(&s.encode(&h, &[], &payload));
        },
    );
}

#[test]
fn defect3_immediate_32mib_writes_whose_data_never_comes_are_bounded() {
    let mut opts = LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:imm-writes");
    opts.initial_r2t = Some(true); // the rest would come by R2T, which is never answered
    let imm = pattern(65536, 9);
    let big = vec![0u8; 65535 * 512];
    budget_case(
        "immediate 32 MiB WRITEs without their data",
        opts,
        Duration::from_millis(1),
        true,
        |s, p| {
            assert!(s.immediate_data);
            let cdb = rw10(true, 0, 65535);
            let mut c = Cmd::write(0, &cdb, &big);
            c.immediate = true; // I bit: outside the CmdSN window
            let h = s.command_header(&c, true);
            p.push(&s.encode(&h, &[], &imm));
        },
    );
}

#[test]
fn defect4_peer_that_stops_reading_is_dropped_after_the_send_timeout() {
    // A zero receive window: the daemon's sends make no progress; with send_timeout_secs
    // = 3 the connection, its session and its memory must go.
    let d = Daemon::start(
        "send_timeout_secs = 3\nnop_interval_secs = 0\npdu_timeout_secs = 30\n\
         buffer_memory = \"128M\"\nsession_buffer_memory = \"64M\"",
    );
    let w = Witness::start(&d);
    let b = baseline(&d, &w);
    let fds = d.fds();
    let name = "iqn.2026-11.org.example:zero-window";
    let mut s = Session::login(d.addr, &LoginOpts::normal(TARGET, 1).initiator(name)).unwrap();
    let _ = s.stream().set_nonblocking(false);
    // Ask for 64 MiB that we never read, then go quiet (keeping the socket open).
    let mut p = Pusher::new(&s);
    for i in 0..64 {
        p.push(&read_cmd(&mut s, i));
    }
    let t0 = Instant::now();
    while !p.flush() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // The daemon's sends stall as soon as both socket buffers are full; from then on it
    // has send_timeout_secs (3 s), plus slack for a loaded machine.
    let freed = poll_until(Duration::from_secs(3 + 20), || d.sessions_of(name) == 0);
    eprintln!("zero-window session freed after {freed:?}");
    assert!(
        freed.is_some(),
        "a peer with a zero window still has its session 23 s later"
    );
    assert!(
        poll_until(Duration::from_secs(5), || d.fds() <= fds).is_some(),
        "its connection is still open ({} fds, {} before)",
        d.fds(),
        fds
    );
    w.assert_progress();
    assert_rss_returns(&d, &b, "zero window");
    drop(s);
    w.finish();
    d.assert_healthy();
}

// ---- connection pools: idle connections and discovery sessions cannot lock out logins ----

/// Limits at their defaults (max_connections 256, max_login_connections 64,
/// max_discovery_sessions 32); only the timeouts that would end idle connections on their
/// own are lengthened, so that the pools are what is tested.
const POOLS: &str = "login_timeout_secs = 120\nnop_interval_secs = 0";

fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
        l.rlim_cur = l.rlim_max.min(16384);
        libc::setrlimit(libc::RLIMIT_NOFILE, &l);
    }
}

fn discovery_login(d: &Daemon, n: u32) -> Result<Session, String> {
    Session::login(
        d.addr,
        &LoginOpts::discovery(n).initiator("iqn.2026-11.org.example:discoverer"),
    )
    .map_err(|e| format!("{e:?}"))
}

fn normal_login_promptly(d: &Daemon) {
    let t0 = Instant::now();
    let mut last = String::new();
    while t0.elapsed() < Duration::from_secs(10) {
        match Session::login(
            d.addr,
            &LoginOpts::normal(TARGET, 0x4242).initiator("iqn.2026-11.org.example:latecomer"),
        ) {
            Ok(mut s) => {
                eprintln!("normal login succeeded after {:?}", t0.elapsed());
                s.write_ok(0, 4096, &pattern(4096, 1));
                assert_eq!(s.read_ok(0, 4096, 8), pattern(4096, 1));
                return;
            }
            Err(e) => last = format!("{e:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no normal login within 10 s; last attempt: {last}");
}

#[test]
fn defect3_255_idle_discovery_sessions_do_not_lock_out_logins() {
    raise_fd_limit();
    let d = Daemon::start(POOLS);
    let w = Witness::start(&d);
    let mut idle = Vec::new();
    for n in 0..255 {
        idle.push(discovery_login(&d, n).unwrap_or_else(|e| panic!("discovery login {n}: {e}")));
    }
    normal_login_promptly(&d);
    w.finish();
    d.assert_healthy();
    drop(idle);
}

#[test]
fn defect3_1000_idle_connections_and_300_discovery_sessions_then_a_normal_login() {
    raise_fd_limit();
    let d = Daemon::start(POOLS);
    let w = Witness::start(&d);
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(d.addr).expect("connect"));
    }
    let mut sessions = Vec::new();
    let mut failed = Vec::new();
    for n in 0..300 {
        match discovery_login(&d, n) {
            Ok(s) => sessions.push(s),
            Err(e) => failed.push(format!("{n}: {e}")),
        }
    }
    normal_login_promptly(&d);
    assert!(
        failed.is_empty(),
        "{} of 300 discovery logins failed (the oldest idle ones should make room), first: {}",
        failed.len(),
        failed[0]
    );
    w.finish();
    d.assert_healthy();
    drop(idle);
    drop(sessions);
}

// Keep the helpers honest when a case above is edited.
#[test]
fn pusher_keeps_pdus_whole() {
    let d = Daemon::start(MEM);
    let mut s = Session::login(d.addr, &LoginOpts::normal(TARGET, 3)).unwrap();
    let mut p = Pusher::new(&s);
    let h = s.nop_header();
    let itt = h.itt();
    p.push(&s.encode(&h, &[], b"whole"));
    assert!(p.flush());
    s.stream().set_nonblocking(false).unwrap();
    let r = s
        .recv_matching(Duration::from_secs(10), |p| p.bhs.itt() == itt)
        .unwrap();
    assert_eq!(r.data, b"whole");
}

// ---- found on the session core (main at 0b256ff) by the `session` fuzz target ----

#[test]
fn write_waiting_for_budget_never_answers_good_without_its_data() {
    // Two 32 MiB WRITEs wait for their R2T data: they hold the session budget (64 MiB).
    // A 4 KiB WRITE with all its data immediate then has to wait for budget; whenever it
    // is answered GOOD, its data must be on the medium.
    // (fuzz/reproducers/session-write-without-its-data: the session hands the SCSI core
    // an empty Data-Out once the immediate data covers the transfer, and WRITE(10) of 8
    // blocks with no data answers GOOD: an acknowledged write that never landed.)
    let d = Daemon::start(MEM);
    let w = Witness::start(&d);
    let mut o = LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:budget-hog");
    o.initial_r2t = Some(true);
    let mut s = Session::login(d.addr, &o).unwrap();
    let old = pattern(4096, 60);
    s.write_ok(0, 100, &old);
    let big = vec![0u8; 65535 * 512];
    for i in 0..2u32 {
        let cdb = rw10(true, 1000 + i * 65535, 65535);
        let b = s.command_header(&Cmd::write(0, &cdb, &big), true);
        s.send(&b, &[]).unwrap(); // its data would come by R2T: never sent
    }
    let new = pattern(4096, 61);
    let cdb = rw10(true, 100, 8);
    let b = s.command_header(&Cmd::write(0, &cdb, &new), true);
    let itt = b.itt();
    s.send(&b, &new).unwrap(); // 4096 bytes of immediate data, F=1: nothing else to come
    let answer = s.recv_matching(Duration::from_secs(15), |p| {
        p.bhs.itt() == itt && p.op() == rustiscsi::iscsi::wire::Opcode::SCSI_RESPONSE
    });
    let mut check = Session::login(
        d.addr,
        &LoginOpts::normal(TARGET, 2).initiator("iqn.2026-11.org.example:budget-check"),
    )
    .unwrap();
    let now = check.read_ok(0, 100, 8);
    match answer {
        Ok(p) if p.bhs.0[3] == 0 => {
            assert_eq!(
                now, new,
                "the WRITE was answered GOOD but its data is not there"
            )
        }
        // Refused (BUSY, TASK SET FULL, CHECK CONDITION) or still waiting for budget.
        Ok(_) | Err(RecvError::Timeout) => {}
        Err(e) => panic!("{e}"),
    }
    w.finish();
    d.assert_healthy();
}

#[test]
fn read_with_an_expected_length_above_the_session_budget_is_answered() {
    // EDTL is the initiator's number, not the CDB's: READ(10) of 8 blocks that claims
    // 1 GiB. The target may answer with the 4 KiB and an underflow residual, or refuse;
    // it must answer, and the session must go on.
    let d = Daemon::start(MEM);
    let w = Witness::start(&d);
    let mut s = Session::login(
        d.addr,
        &LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:big-edtl"),
    )
    .unwrap();
    s.timeout = Duration::from_secs(10);
    let cdb = rw10(false, 0, 8);
    let cpu0 = d.cpu_time();
    let r = s.command(&Cmd::read(0, &cdb, 1 << 30));
    let cpu = d.cpu_time() - cpu0;
    assert!(
        r.is_ok(),
        "READ with EDTL 1 GiB: {r:?} (daemon CPU meanwhile {cpu:?})"
    );
    let r = s
        .command(&Cmd::read(0, &cdb, 4096))
        .expect("a normal READ after it");
    assert_eq!(r.status, 0);
    w.finish();
    d.assert_healthy();
}
