//! Aborts that mean it, through the SCSI core: PREEMPT AND ABORT answers GOOD only once
//! the preempted nexus's write in progress is over (issue 9), and that write is reported
//! aborted, not GOOD.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::backstore::{Backstore, BackstoreKind, BackstoreSpec, CacheMode, faults};

const T: &str = "iqn.2026-11.org.example:t,t,0x0001";

fn pr_out(sa: u8, kind: u8, key: u64, sa_key: u64) -> ScsiCommand {
    let mut cdb = vec![0u8; 10];
    cdb[0] = 0x5f;
    cdb[1] = sa;
    cdb[2] = kind;
    cdb[8] = 24;
    ScsiCommand {
        lun: 0,
        cdb: Bytes::from(cdb),
        data_out: pr::test_params(key, sa_key, 0).into(),
        expected_in: 0,
    }
}

fn write10(lba: u32, data: Vec<u8>) -> ScsiCommand {
    let mut cdb = vec![0u8; 10];
    cdb[0] = 0x2a;
    cdb[2..6].copy_from_slice(&lba.to_be_bytes());
    cdb[7..9].copy_from_slice(&((data.len() / 512) as u16).to_be_bytes());
    ScsiCommand {
        lun: 0,
        cdb: Bytes::from(cdb),
        data_out: data.into(),
        expected_in: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preempt_and_abort_waits_for_the_preempted_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let f = faults::inject(&path);
    let store = Backstore::open(
        &BackstoreSpec {
            name: "disk".into(),
            kind: BackstoreKind::Fileio,
            path: Some(path.clone()),
            size: Some(1 << 20),
            block_size: 512,
            write_cache: false,
            cache: CacheMode::Buffered,
        },
        &Default::default(),
    )
    .unwrap();
    let unit = Arc::new(LogicalUnit::new(
        Arc::new(store),
        LunIdentity::new("S", 0x3000_0000_0000_0099_u64),
    ));
    let map = |u: &Arc<LogicalUnit>| {
        vec![MappedLun {
            lun: 0,
            unit: u.clone(),
            read_only: false,
        }]
    };
    let a = Arc::new(ItNexus::new(
        "iqn.2026-11.org.example:a,i,0x000000000001".into(),
        T.into(),
        map(&unit),
    ));
    let b = ItNexus::new(
        "iqn.2026-11.org.example:b,i,0x000000000001".into(),
        T.into(),
        map(&unit),
    );
    // Both register; A reserves WRITE EXCLUSIVE - REGISTRANTS ONLY.
    for (n, key) in [(&*a, 0xa), (&b, 0xb)] {
        assert_eq!(execute(n, pr_out(0, 0, 0, key)).await.status, status::GOOD);
    }
    assert_eq!(execute(&a, pr_out(1, 5, 0xa, 0)).await.status, status::GOOD);
    // A's write takes a while on the medium.
    f.write_delay_ms.store(400, Ordering::SeqCst);
    let a2 = a.clone();
    let write = tokio::spawn(async move {
        let meta = TaskMeta {
            id: 1,
            received: std::time::Instant::now(),
        };
        execute_task(&a2, write10(0, vec![0xaa; 512]), meta).await
    });
    while unit.tasks.is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // B preempts A and aborts its tasks.
    let r = execute(&b, pr_out(5, 5, 0xb, 0xa)).await;
    assert_eq!(r.status, status::GOOD, "{:?}", r.sense);
    // The preempted write's I/O is over when GOOD comes: its data is on the medium (it
    // began before the preemption), and nothing of it can land later.
    let on_disk = std::fs::read(&path).unwrap();
    assert!(
        on_disk[..512].iter().all(|&b| b == 0xaa),
        "GOOD came while the preempted write was still in progress"
    );
    assert_eq!(write.await.unwrap().map(|r| r.status), Err(Aborted));
    // From now on A is fenced (after the unit attention telling it so).
    f.write_delay_ms.store(0, Ordering::SeqCst);
    let r = execute(&a, write10(0, vec![0xa1; 512])).await;
    assert_eq!(r.sense.map(|s| s.key), Some(sense::key::UNIT_ATTENTION));
    let r = execute(&a, write10(0, vec![0xa1; 512])).await;
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
}
