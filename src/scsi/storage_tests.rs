//! The unit and its storage: errno → sense (one case per mapping), offline units answering
//! NOT READY, the way back online with its unit attentions, a vanished backstore taken
//! offline by the command that finds it gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::sense::Sense;
use super::tests::{do_command_fail, do_command_in, nexus_for, run, rw10};
use super::*;
use crate::backstore::health::{Op, State};
use crate::backstore::{
    Backstore, BackstoreError, BackstoreKind, BackstoreSpec, CacheMode, OpenOptions, faults,
};

fn id() -> LunIdentity {
    LunIdentity::new("S1", 0x3000_0000_0000_0042_u64)
}

fn file_spec(path: &std::path::Path) -> BackstoreSpec {
    BackstoreSpec {
        name: "vm1".into(),
        kind: BackstoreKind::Fileio,
        path: Some(path.into()),
        size: Some(1 << 20),
        block_size: 512,
        write_cache: false,
        cache: CacheMode::Buffered,
    }
}

fn os(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

#[test]
fn each_errno_maps_to_its_sense() {
    use sbc::io_sense;
    let cases: [(BackstoreError, Op, Sense); 12] = [
        (
            BackstoreError::Read(os(libc::EIO)),
            Op::Read,
            Sense::READ_ERROR,
        ),
        (
            BackstoreError::Write(os(libc::EIO)),
            Op::Write,
            Sense::WRITE_ERROR,
        ),
        (
            BackstoreError::Flush(os(libc::EIO)),
            Op::Flush,
            Sense::WRITE_ERROR,
        ),
        (
            BackstoreError::Discard(os(libc::EIO)),
            Op::Discard,
            Sense::WRITE_ERROR,
        ),
        (
            BackstoreError::Read(os(libc::EBADMSG)),
            Op::Read,
            Sense::READ_ERROR,
        ),
        (
            BackstoreError::Write(os(libc::ENOSPC)),
            Op::Write,
            Sense::SPACE_ALLOCATION_FAILED,
        ),
        (
            BackstoreError::Write(os(libc::EDQUOT)),
            Op::Write,
            Sense::SPACE_ALLOCATION_FAILED,
        ),
        (
            BackstoreError::Write(os(libc::EROFS)),
            Op::Write,
            Sense::WRITE_PROTECTED,
        ),
        (
            BackstoreError::Read(os(libc::ENODEV)),
            Op::Read,
            Sense::NOT_READY,
        ),
        (
            BackstoreError::Write(os(libc::ENXIO)),
            Op::Write,
            Sense::NOT_READY,
        ),
        (
            BackstoreError::PendingWriteError {
                offset: 0,
                len: 512,
            },
            Op::Read,
            Sense::READ_ERROR,
        ),
        (
            BackstoreError::Read(os(libc::EINVAL)),
            Op::Read,
            Sense::INTERNAL_TARGET_FAILURE,
        ),
    ];
    for (e, op, want) in cases {
        assert_eq!(io_sense(op, &e), want, "{e}");
    }
}

#[tokio::test]
async fn offline_unit_is_not_ready_then_comes_back_with_unit_attentions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.img");
    let spec = file_spec(&path);
    let u = Arc::new(LogicalUnit::offline(&spec, id(), "not there yet".into()));
    let n = nexus_for(&u, "iqn.x:ini,i,0x1");
    let tur = [0u8; 6];
    do_command_fail(&n, 0, &tur, vec![], Sense::NOT_READY).await;
    // NOT READY comes before any range check: the capacity is not known.
    do_command_fail(&n, 0, &rw10(0x28, 5000, 1), vec![], Sense::NOT_READY).await;
    do_command_fail(&n, 0, &rw10(0x2a, 0, 1), vec![0; 512], Sense::NOT_READY).await;
    do_command_fail(
        &n,
        0,
        &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![],
        Sense::NOT_READY,
    )
    .await;
    // Identity, mode pages and sense are served without the medium.
    let inq = do_command_in(&n, 0, &[0x12, 0, 0, 0, 96, 0]).await;
    assert_eq!(inq[0], 0x00);
    let serial = do_command_in(&n, 0, &[0x12, 1, 0x80, 0, 96, 0]).await;
    assert_eq!(&serial[4..], b"S1");
    do_command_in(&n, 0, &[0x1a, 0, 0x3f, 0, 255, 0]).await;
    let rs = do_command_in(&n, 0, &[0x03, 0, 0, 0, 18, 0]).await;
    assert_eq!((rs[2] & 0xf, rs[12], rs[13]), (2, 0x04, 0x00));
    assert_eq!(u.health.state(), State::Offline);

    // The file appears; the unit goes online.
    let store = Backstore::open(&spec, &OpenOptions::default()).unwrap();
    u.set_online(Arc::new(store));
    assert_eq!(u.health.state(), State::Healthy);
    // SPC: NOT READY TO READY CHANGE, then CAPACITY DATA HAS CHANGED, then ready.
    do_command_fail(&n, 0, &tur, vec![], Sense::UA_NOT_READY_TO_READY).await;
    do_command_fail(&n, 0, &tur, vec![], Sense::UA_CAPACITY_CHANGED).await;
    do_command_in(&n, 0, &tur).await;
    let cap = do_command_in(&n, 0, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]).await;
    assert_eq!(u32::from_be_bytes(cap[..4].try_into().unwrap()), 2047);
    // A nexus made after the unit came online has nothing to report.
    let n2 = nexus_for(&u, "iqn.x:other,i,0x2");
    do_command_in(&n2, 0, &tur).await;
}

#[tokio::test]
async fn a_vanished_backstore_takes_its_unit_offline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gone.img");
    let faults = faults::inject(&path);
    let spec = file_spec(&path);
    let store = Arc::new(Backstore::open(&spec, &OpenOptions::default()).unwrap());
    let u = Arc::new(LogicalUnit::new(store, id()));
    let n = nexus_for(&u, "iqn.x:ini,i,0x1");
    do_command_in(&n, 0, &rw10(0x28, 0, 1)).await;
    // EIO while the file is still there: MEDIUM ERROR, the unit stays (failing).
    faults.reads.store(libc::EIO, Ordering::SeqCst);
    do_command_fail(&n, 0, &rw10(0x28, 0, 1), vec![], Sense::READ_ERROR).await;
    assert_eq!(u.health.state(), State::Failing);
    assert!(u.backstore().is_some());
    // The file is deleted under it: the next failure finds it gone, NOT READY from then on.
    std::fs::remove_file(&path).unwrap();
    do_command_fail(&n, 0, &rw10(0x28, 0, 1), vec![], Sense::NOT_READY).await;
    assert_eq!(u.health.state(), State::Offline);
    assert!(u.offline_reason().unwrap().contains("deleted"));
    faults.reads.store(0, Ordering::SeqCst);
    let r = run(&n, 0, &[0u8; 6], vec![]).await;
    assert_eq!(r.sense, Some(Sense::NOT_READY));
    assert_eq!(u.health.snapshot().read_errors, 2);
}

#[tokio::test]
async fn enxio_takes_the_unit_offline_even_if_the_path_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("enxio.img");
    let faults = faults::inject(&path);
    let spec = file_spec(&path);
    let store = Arc::new(Backstore::open(&spec, &OpenOptions::default()).unwrap());
    let u = Arc::new(LogicalUnit::new(store, id()));
    let n = nexus_for(&u, "iqn.x:ini,i,0x1");
    faults.writes.store(libc::ENXIO, Ordering::SeqCst);
    do_command_fail(&n, 0, &rw10(0x2a, 0, 1), vec![1; 512], Sense::NOT_READY).await;
    assert!(u.backstore().is_none());
}
