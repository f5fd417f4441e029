//! Hostile peers against the real daemon, part 4: text keys and CDBs. Quadratic key
//! parsing (issue 8, defect 7); hex numeric values, multi-PDU Text (C bit) and keys the
//! target must propose (defect 8); random CDBs of every opcode. Every case runs beside a
//! witness session doing verified I/O.
//!
//! CPU is the daemon's own user + system time from /proc/PID/stat, so the bound holds on
//! a loaded machine. The test binary is the debug build (~10x slower than release), which
//! the bounds allow for.
//!
//! Observed on the code before the session core (main at 7eb3a12), `cargo test --test
//! hostile_text -- --ignored`:
//! - `defect7_30000_keys_in_one_text_pdu_cost_bounded_cpu`: 5.8-7.3 s of daemon CPU for
//!   one PDU (bound 0.5 s).
//! - `defect7_7000_keys_in_a_continued_login_cost_bounded_cpu`: 0.88-0.91 s before any
//!   authentication.
//! - `defect8_hex_numeric_values_in_login_keys`: MaxBurstLength=0x40000 answered "Reject".
//! - `defect8_multi_pdu_text_request_with_the_c_bit`: the first part is rejected (reason
//!   0x04, protocol error).
//! - `defect8_target_proposes_keys_where_its_config_is_stricter_than_the_rfc_default`: the
//!   target sends no ImmediateData / MaxBurstLength / FirstBurstLength of its own.
//! - `login_responses_never_exceed_the_8192_byte_login_default` (not in issue 8's list,
//!   found here): one login response of 140016 bytes.
//!
//! On the session core (main at 0b256ff, merged here) every case passes except
//! `login_responses_never_exceed_the_8192_byte_login_default` (still one 140016-byte
//! login response), which stays ignored. The 30000-key Text PDU is now refused with a
//! Reject at negligible CPU.
//!
//! Passing today: `random_cdbs_of_every_opcode_always_get_a_scsi_response` (2048 CDBs:
//! 54 GOOD, 1994 CHECK CONDITION, every one answered).

mod support;

use std::time::Duration;

use rustiscsi::iscsi::wire::{Opcode, RESERVED_TAG};
use support::hostile::Setup;
use support::hostile::prelude::*;
use support::initiator::{Cmd, parse_num, parse_text, text_data};

/// Largest CPU time one big unauthenticated text PDU may cost (debug build).
const CPU_PER_PDU: Duration = Duration::from_millis(500);

/// `n` distinct keys `Kxxxx=1` (8 bytes each with the NUL).
fn many_keys(n: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(n as usize * 8);
    for i in 0..n {
        v.extend_from_slice(format!("K{i:04x}=1").as_bytes());
        v.push(0);
    }
    v
}

#[test]
fn defect7_30000_keys_in_one_text_pdu_cost_bounded_cpu() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    // A discovery session: no CHAP by default, so anyone can send this.
    let mut s = Session::login(
        d.addr,
        &LoginOpts::discovery(1).initiator("iqn.2026-11.org.example:keys"),
    )
    .unwrap();
    assert!(s.target_mrdsl >= 240_000, "target MRDSL {}", s.target_mrdsl);
    s.timeout = Duration::from_secs(120);
    let body = many_keys(30_000);
    assert_eq!(body.len(), 240_000);
    for round in 0..3 {
        let cpu0 = d.cpu_time();
        // Every key answered (NotUnderstood), or the PDU refused with a Reject: both are
        // answers; a hang or a dead session is not.
        let answer = match s.text(&body) {
            Ok(keys) => format!("{} keys answered", keys.len()),
            Err(RecvError::Io(e)) if e.to_string().starts_with("Text rejected") => e.to_string(),
            Err(e) => panic!("round {round}: {e}"),
        };
        let cpu = d.cpu_time() - cpu0;
        eprintln!("round {round}: {answer}, daemon CPU {cpu:?}");
        assert_eq!(
            s.ping(b"alive").unwrap(),
            b"alive",
            "round {round}: the session goes on"
        );
        assert!(
            cpu <= CPU_PER_PDU,
            "one 240 kB Text PDU of 30000 keys cost {cpu:?} of daemon CPU (bound {CPU_PER_PDU:?})"
        );
    }
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect7_7000_keys_in_a_continued_login_cost_bounded_cpu() {
    // Login text is capped (64 KiB of continued PDUs): ~8000 keys before any
    // authentication.
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = Session::connect(d.addr).unwrap();
    let mut body = text_data(&[
        ("InitiatorName", "iqn.2026-11.org.example:login-keys"),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    body.extend_from_slice(&many_keys(7_000));
    let cpu0 = d.cpu_time();
    let chunks: Vec<&[u8]> = body.chunks(8192).collect();
    let mut last = None;
    for (i, c) in chunks.iter().enumerate() {
        let mut b = rustiscsi::iscsi::wire::Bhs::new(Opcode::LOGIN_REQUEST);
        b.0[0] |= 0x40;
        let more = i + 1 < chunks.len();
        b.set_flags(if more { 0x40 } else { 0x81 });
        b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 0x33]);
        b.set_itt(1);
        s.send(&b, c).unwrap();
        match s.recv_within(Duration::from_secs(60)) {
            Ok(p) => {
                eprintln!("login response {i}: {} bytes of data", p.data.len());
                last = Some(p)
            }
            Err(e) => panic!("login PDU {i}: {e}"),
        }
    }
    let cpu = d.cpu_time() - cpu0;
    let last = last.unwrap();
    eprintln!(
        "login with 7000 keys: status {:#04x}{:02x}, daemon CPU {cpu:?}",
        last.bhs.0[36], last.bhs.0[37]
    );
    assert!(cpu <= CPU_PER_PDU, "a login of 7000 keys cost {cpu:?}");
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect8_hex_numeric_values_in_login_keys() {
    // RFC 7143 §6.1: a numerical value may be written in hex (0x...).
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let name = "iqn.2026-11.org.example:hex";
    let mut o = LoginOpts::normal(TARGET, 1).initiator(name);
    o.max_burst = None;
    o.first_burst = None;
    o.extra = vec![
        ("MaxBurstLength".into(), "0x40000".into()),
        ("FirstBurstLength".into(), "0x10000".into()),
        ("MaxRecvDataSegmentLength".into(), "0x2000".into()),
    ];
    let mut s = Session::login(d.addr, &o).expect("login with hex values");
    let answer = |k: &str| {
        s.login_keys
            .iter()
            .rev()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (mbl, fbl) = (answer("MaxBurstLength"), answer("FirstBurstLength"));
    assert_eq!(
        parse_num(&mbl),
        Some(0x40000),
        "MaxBurstLength answered {mbl:?}"
    );
    assert_eq!(
        parse_num(&fbl),
        Some(0x10000),
        "FirstBurstLength answered {fbl:?}"
    );
    let info = d
        .sessions()
        .into_iter()
        .find(|i| i.initiator == name)
        .expect("session listed");
    assert_eq!(
        info.params.initiator_mrdsl, 0x2000,
        "MaxRecvDataSegmentLength=0x2000"
    );
    assert_eq!(info.params.max_burst_length, 0x40000);
    let data = pattern(65536, 4);
    s.write_ok(0, 0, &data);
    assert_eq!(s.read_ok(0, 0, 128), data);
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect8_multi_pdu_text_request_with_the_c_bit() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = Session::login(
        d.addr,
        &LoginOpts::discovery(1).initiator("iqn.2026-11.org.example:c-bit"),
    )
    .unwrap();
    let itt = s.itt();
    // "SendTargets=All" split across two Text Requests: C=1 on the first.
    let b = s.text_header(itt, RESERVED_TAG, false, true);
    s.send(&b, b"SendTarg").unwrap();
    let r = s
        .recv_matching(Duration::from_secs(10), |p| {
            p.bhs.itt() == itt || p.op() == Opcode::REJECT
        })
        .expect("an answer to the first part");
    assert_eq!(
        r.op(),
        Opcode::TEXT_RESPONSE,
        "the first part (C bit) was answered with {:?} reason {:#x}",
        r.op(),
        r.bhs.0[2]
    );
    assert_eq!(r.bhs.flags() & 0x80, 0, "F=0 while the request continues");
    assert!(r.data.is_empty(), "an empty response asks for the rest");
    let ttt = r.bhs.ttt();
    assert_ne!(ttt, RESERVED_TAG);
    let b = s.text_header(itt, ttt, true, false);
    s.send(&b, b"ets=All\0").unwrap();
    let mut body = Vec::new();
    loop {
        let r = s
            .recv_matching(Duration::from_secs(10), |p| p.bhs.itt() == itt)
            .expect("the answer to SendTargets");
        body.extend_from_slice(&r.data);
        if r.bhs.flags() & 0x80 != 0 {
            break;
        }
        let b = s.text_header(itt, r.bhs.ttt(), true, false);
        s.send(&b, &[]).unwrap();
    }
    let keys = parse_text(&body);
    assert!(
        keys.iter().any(|(k, v)| k == "TargetName" && v == TARGET),
        "SendTargets=All answered {keys:?}"
    );
    w.finish();
    d.assert_healthy();
}

#[test]
fn defect8_target_proposes_keys_where_its_config_is_stricter_than_the_rfc_default() {
    // The initiator offers none of these keys, so without a proposal from the target it
    // assumes the RFC defaults (ImmediateData=Yes, FirstBurstLength 64 KiB,
    // MaxBurstLength 256 KiB) and sends more than the target accepts.
    let d = Daemon::start_setup(&Setup {
        iscsi: "immediate_data = false\nfirst_burst_length = 16384\nmax_burst_length = 65536"
            .into(),
        ..Default::default()
    });
    let w = Witness::start(&d);
    let mut o = LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:defaults");
    o.immediate_data = None;
    o.first_burst = None;
    o.max_burst = None;
    o.initial_r2t = None;
    let mut s = Session::login(d.addr, &o).expect("login");
    let sent = |k: &str| {
        s.login_keys
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        sent("ImmediateData").as_deref(),
        Some("No"),
        "keys: {:?}",
        s.login_keys
    );
    assert_eq!(
        sent("MaxBurstLength").as_deref(),
        Some("65536"),
        "keys: {:?}",
        s.login_keys
    );
    assert_eq!(
        sent("FirstBurstLength").as_deref(),
        Some("16384"),
        "keys: {:?}",
        s.login_keys
    );
    // What the initiator now believes works.
    let data = pattern(256 * 1024, 6);
    s.write_ok(0, 0, &data);
    assert_eq!(s.read_ok(0, 0, 512), data);
    w.finish();
    d.assert_healthy();
}

#[test]
fn random_cdbs_of_every_opcode_always_get_a_scsi_response() {
    let d = Daemon::start("");
    let w = Witness::start(&d);
    let mut s = Session::login(
        d.addr,
        &LoginOpts::normal(TARGET, 1).initiator("iqn.2026-11.org.example:cdb-fuzz"),
    )
    .unwrap();
    s.timeout = Duration::from_secs(10);
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut statuses = std::collections::BTreeMap::new();
    for op in 0..=255u8 {
        for k in 0..8 {
            let mut cdb = [0u8; 16];
            if k % 2 == 0 {
                rng.fill(&mut cdb);
            } else {
                // Sparse: mostly zeros (valid-looking fields, small lengths), two random
                // bytes inside the group's CDB length, so handlers run, not only checks.
                let len = rustiscsi::scsi::cdb::cdb_len(op).max(6);
                for _ in 0..2 {
                    let at = 1 + (rng.next() as usize) % (len - 2);
                    cdb[at] = rng.next() as u8;
                }
            }
            cdb[0] = op;
            let mut data = vec![0u8; 512 * (1 + (rng.next() % 8) as usize)];
            rng.fill(&mut data);
            // LUN 1 (scratch) mostly, sometimes an unmapped LUN.
            let lun = if rng.next() % 8 == 0 { 7 } else { 1 };
            let c = match rng.next() % 3 {
                0 => Cmd::none(lun, &cdb),
                1 => Cmd::read(lun, &cdb, 4096),
                _ => Cmd::write(lun, &cdb, &data),
            };
            let r = s
                .command(&c)
                .unwrap_or_else(|e| panic!("CDB {cdb:02x?}: no SCSI response ({e})"));
            assert_eq!(
                r.response, 0,
                "CDB {cdb:02x?}: iSCSI response {:#x}",
                r.response
            );
            *statuses.entry(r.status).or_insert(0u32) += 1;
        }
    }
    eprintln!("statuses over 2048 random CDBs: {statuses:?}");
    assert!(s.ping(b"alive").is_ok());
    w.finish();
    d.assert_healthy();
}

#[test]
fn login_responses_never_exceed_the_8192_byte_login_default() {
    // Until MaxRecvDataSegmentLength is negotiated, the initiator accepts 8192 bytes per
    // PDU (RFC 7143 §13.12). A long answer (7000 NotUnderstood keys) must be split with
    // the C bit, or the login refused; never one 140 kB PDU.
    let d = Daemon::start("");
    let mut s = Session::connect(d.addr).unwrap();
    let mut body = text_data(&[
        ("InitiatorName", "iqn.2026-11.org.example:login-size"),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    body.extend_from_slice(&many_keys(7_000));
    let chunks: Vec<Vec<u8>> = body.chunks(8192).map(|c| c.to_vec()).collect();
    let mut sizes = Vec::new();
    let mut i = 0;
    loop {
        let mut b = rustiscsi::iscsi::wire::Bhs::new(Opcode::LOGIN_REQUEST);
        b.0[0] |= 0x40;
        let more = i + 1 < chunks.len();
        b.set_flags(if more { 0x40 } else { 0x81 });
        b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 0x34]);
        b.set_itt(1);
        s.send(&b, chunks.get(i).map_or(&[][..], |c| &c[..]))
            .unwrap();
        let r = s
            .recv_within(Duration::from_secs(60))
            .expect("login response");
        sizes.push(r.data.len());
        i += 1;
        // Continue while we are still sending, or while the target continues (C bit).
        if i >= chunks.len() && r.bhs.flags() & 0x40 == 0 {
            break;
        }
        assert!(i < chunks.len() + 64, "endless continuation");
    }
    assert!(
        sizes.iter().all(|&n| n <= 8192),
        "login response data segments {sizes:?} exceed 8192 bytes"
    );
    d.assert_healthy();
}
