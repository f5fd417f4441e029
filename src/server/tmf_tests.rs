//! Task management over real sockets against a backstore whose writes are slow (the
//! test-only fault injector): FUNCTION COMPLETE comes only once the aborted write's I/O is
//! over, in the asking session (ABORT TASK) and across sessions (LOGICAL UNIT RESET,
//! SAM-5: every I_T nexus of the unit); the other session's write ends TASK ABORTED.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::tests::{Ini, TARGET, rw10, start_config};
use crate::backstore::faults;
use crate::iscsi::wire::codes::tmf;
use crate::iscsi::wire::{Bhs, Opcode};
use crate::scsi::status;

const DELAY: Duration = Duration::from_millis(600);

async fn slow_server() -> (super::tests::Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("slow.img");
    let f = faults::inject(&img);
    f.write_delay_ms
        .store(DELAY.as_millis() as u64, Ordering::SeqCst);
    let text = format!(
        r#"
[daemon]
portals = ["127.0.0.1:3260"]
state_dir = "{}"
[iscsi]
first_burst_length = 8192
max_burst_length = 16384
[backstores.slow]
kind = "fileio"
path = "{}"
size = "1M"
[targets."{TARGET}"]
luns = [{{ lun = 0, backstore = "slow" }}]
demo_mode = true
"#,
        dir.path().join("state").display(),
        img.display()
    );
    (start_config(text, dir).await, img)
}

/// Sends a WRITE(10) of one block with immediate data, without waiting for its answer.
async fn start_write(ini: &mut Ini, itt: u32) {
    let mut b = Bhs::new(Opcode::SCSI_COMMAND);
    b.set_flags(0x80 | 0x20 | 0x01);
    b.set_itt(itt);
    b.set_u32_at(20, 512);
    b.set_cmdsn(ini.cmdsn);
    ini.cmdsn += 1;
    b.0[32..42].copy_from_slice(&rw10(0x2a, 0, 1));
    ini.send(&b, &[0x5a; 512]).await;
}

async fn send_tmf(ini: &mut Ini, function: u8, itt: u32, rtt: u32, refcmdsn: u32) {
    let mut b = Bhs::new(Opcode::TMF_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x80 | function);
    b.set_itt(itt);
    b.set_ttt(rtt);
    b.set_cmdsn(ini.cmdsn);
    b.set_u32_at(32, refcmdsn);
    ini.send(&b, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_task_answers_after_the_write_is_over() {
    let (srv, _img) = slow_server().await;
    let mut ini = Ini::connect(srv.addr, 1, false, 8192).await;
    let t0 = Instant::now();
    let sn = ini.cmdsn;
    start_write(&mut ini, 0x10).await;
    tokio::time::sleep(Duration::from_millis(100)).await; // the write is on the medium
    send_tmf(&mut ini, tmf::ABORT_TASK, 0x11, 0x10, sn).await;
    let (r, _) = ini.recv().await.expect("TMF response");
    assert_eq!(
        r.opcode(),
        Opcode::TMF_RESPONSE,
        "no answer for the aborted write"
    );
    assert_eq!(r.0[2], tmf::RESP_COMPLETE);
    assert!(
        t0.elapsed() >= DELAY,
        "FUNCTION COMPLETE after {:?}, before the {DELAY:?} write was over",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lu_reset_reaches_other_sessions_and_waits_for_their_io() {
    let (srv, _img) = slow_server().await;
    let mut a = Ini::connect(srv.addr, 1, false, 8192).await;
    let mut b = Ini::connect(srv.addr, 2, false, 8192).await;
    let t0 = Instant::now();
    start_write(&mut a, 0x20).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    send_tmf(&mut b, tmf::LOGICAL_UNIT_RESET, 0x21, 0, 0).await;
    let (r, _) = b.recv().await.expect("TMF response");
    assert_eq!(r.opcode(), Opcode::TMF_RESPONSE);
    assert_eq!(r.0[2], tmf::RESP_COMPLETE);
    assert!(
        t0.elapsed() >= DELAY,
        "LU reset answered after {:?}, while another session's write was on the medium",
        t0.elapsed()
    );
    // The other session's write was aborted by another nexus: TASK ABORTED (TAS=1).
    let (r, _) = a.recv().await.expect("the aborted write's status");
    assert_eq!(r.opcode(), Opcode::SCSI_RESPONSE);
    assert_eq!(r.0[3], status::TASK_ABORTED);
    // And both nexuses see the reset's unit attention on their next command.
    let (st, _, sense) = a.scsi(&[0u8; 6], 0, &[]).await;
    assert_eq!(
        (st, sense[2] & 0xf, sense[12]),
        (status::CHECK_CONDITION, 6, 0x29)
    );
}
