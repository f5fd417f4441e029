//! Backstore tests over temporary files and memfds.

use super::*;

fn spec(kind: BackstoreKind, path: Option<PathBuf>, size: Option<u64>) -> BackstoreSpec {
    BackstoreSpec {
        name: "t".into(),
        kind,
        path,
        size,
        block_size: 512,
        write_cache: false,
        cache: CacheMode::Buffered,
    }
}

fn open(s: &BackstoreSpec) -> Result<Backstore, BackstoreError> {
    Backstore::open(s, &OpenOptions::default())
}

#[tokio::test]
async fn ramdisk_read_write_discard() {
    let b = open(&spec(BackstoreKind::Ramdisk, None, Some(1 << 20))).unwrap();
    assert_eq!(b.kind(), BackstoreKind::Ramdisk);
    assert_eq!(b.num_blocks(), 2048);
    assert_eq!(b.block_size(), 512);
    assert!(b.supports_discard());
    assert_eq!(&b.read(0, 512).await.unwrap()[..], &[0u8; 512][..]);
    b.write(4096, vec![0xab; 8192], true).await.unwrap();
    let d = b.read(4096, 8192).await.unwrap();
    assert!(d.iter().all(|&x| x == 0xab));
    let e = b.allocation_status(4096, 1 << 20).await.unwrap();
    assert!(e.mapped);
    b.discard(4096, 4096).await.unwrap();
    let d = b.read(4096, 8192).await.unwrap();
    assert!(d[..4096].iter().all(|&x| x == 0));
    assert!(d[4096..].iter().all(|&x| x == 0xab));
    let e = b.allocation_status(4096, 1 << 20).await.unwrap();
    assert_eq!(
        e,
        Extent {
            mapped: false,
            len: 4096
        }
    );
    b.flush().await.unwrap();
    assert_eq!(b.refresh_size().unwrap(), 1 << 20);
}

#[tokio::test]
async fn fileio_creates_sparse_and_grows_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.img");
    let b = open(&spec(
        BackstoreKind::Fileio,
        Some(path.clone()),
        Some(1 << 20),
    ))
    .unwrap();
    assert_eq!(b.size(), 1 << 20);
    b.write(0, vec![7; 512], false).await.unwrap();
    b.write(512, vec![8; 512], true).await.unwrap();
    b.flush().await.unwrap();
    drop(b);
    // Smaller configured size: no shrink.
    let mut s = spec(BackstoreKind::Fileio, Some(path.clone()), Some(4096));
    s.write_cache = true;
    let b = open(&s).unwrap();
    assert_eq!(b.size(), 1 << 20);
    assert!(b.write_cache());
    let d = b.read(0, 1024).await.unwrap();
    assert!(d[..512].iter().all(|&x| x == 7));
    assert!(d[512..].iter().all(|&x| x == 8));
    b.write(2048, vec![1; 512], true).await.unwrap();
    b.write_zeroes(0, 1024).await.unwrap();
    assert!(b.read(0, 1024).await.unwrap().iter().all(|&x| x == 0));
    // Larger configured size: grow.
    drop(b);
    let b = open(&spec(
        BackstoreKind::Fileio,
        Some(path.clone()),
        Some(2 << 20),
    ))
    .unwrap();
    assert_eq!(b.num_blocks(), 4096);
    // Grow behind our back, then refresh.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3 << 20)
        .unwrap();
    assert_eq!(b.num_blocks(), 4096);
    b.refresh_size().unwrap();
    assert_eq!(b.num_blocks(), 6144);
}

#[tokio::test]
async fn read_past_eof_is_zero_filled() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let b = open(&spec(BackstoreKind::Fileio, Some(path.clone()), Some(4096))).unwrap();
    b.write(0, vec![9; 4096], false).await.unwrap();
    let d = b.read(2048, 4096).await.unwrap();
    assert_eq!(d.len(), 4096);
    assert!(d[..2048].iter().all(|&x| x == 9));
    assert!(d[2048..].iter().all(|&x| x == 0));
}

#[test]
fn invalid_specs() {
    assert!(matches!(
        open(&spec(BackstoreKind::Ramdisk, None, None)),
        Err(BackstoreError::Invalid { .. })
    ));
    assert!(matches!(
        open(&spec(BackstoreKind::Fileio, None, Some(4096))),
        Err(BackstoreError::Invalid { .. })
    ));
    let mut s = spec(BackstoreKind::Ramdisk, None, Some(4096));
    s.block_size = 1000;
    assert!(matches!(open(&s), Err(BackstoreError::Invalid { .. })));
    assert!(matches!(
        open(&spec(BackstoreKind::Ramdisk, None, Some(100))),
        Err(BackstoreError::Invalid { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.img");
    // A missing file without a size to create it with: offline (retried), not created.
    let e = open(&spec(BackstoreKind::Fileio, Some(missing.clone()), None)).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(!missing.exists());
    // A file seen before is not created again.
    let e = Backstore::open(
        &spec(BackstoreKind::Fileio, Some(missing.clone()), Some(4096)),
        &OpenOptions {
            may_create: false,
            share_with: vec![],
        },
    )
    .unwrap_err();
    assert!(
        e.is_transient() && e.to_string().contains("not created again"),
        "{e}"
    );
    assert!(!missing.exists());
    assert!(matches!(
        open(&spec(
            BackstoreKind::Block,
            Some("/nonexistent".into()),
            None
        )),
        Err(BackstoreError::Open { .. })
    ));
    // A ramdisk larger than the host's memory.
    let e = open(&spec(BackstoreKind::Ramdisk, None, Some(1 << 60))).unwrap_err();
    assert!(
        e.to_string().contains("does not fit the host's memory"),
        "{e}"
    );
}

#[tokio::test]
async fn errors_map_to_variants() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let faults = faults::inject(&path);
    let b = open(&spec(BackstoreKind::Fileio, Some(path.clone()), Some(8192))).unwrap();
    faults.writes.store(libc::ENOSPC, Ordering::SeqCst);
    let e = b.write(0, vec![1; 512], false).await.unwrap_err();
    assert!(matches!(e, BackstoreError::Write(_)));
    assert_eq!(e.cause(), Cause::NoSpace);
    faults.writes.store(0, Ordering::SeqCst);
    faults.reads.store(libc::EIO, Ordering::SeqCst);
    let e = b.read(4096, 512).await.unwrap_err();
    assert!(matches!(e, BackstoreError::Read(_)));
    assert_eq!(e.cause(), Cause::Medium);
}

#[tokio::test]
async fn failed_write_is_never_read_back_until_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let faults = faults::inject(&path);
    let b = open(&spec(
        BackstoreKind::Fileio,
        Some(path.clone()),
        Some(1 << 20),
    ))
    .unwrap();
    b.write(0, vec![1; 8192], false).await.unwrap();
    // The write reaches the page cache, then fails, as a buffered write whose writeback
    // fails does.
    faults.write_lands.store(true, Ordering::SeqCst);
    faults.writes.store(libc::EIO, Ordering::SeqCst);
    assert!(b.write(4096, vec![2; 4096], false).await.is_err());
    faults.writes.store(0, Ordering::SeqCst);
    let e = b.read(0, 8192).await.unwrap_err();
    assert!(matches!(e, BackstoreError::PendingWriteError { .. }), "{e}");
    assert_eq!(e.cause(), Cause::Medium);
    // Outside the failed range reads work.
    assert!(b.read(0, 4096).await.unwrap().iter().all(|&x| x == 1));
    // Rewritten in part: still refused where it was not.
    b.write(4096, vec![3; 512], false).await.unwrap();
    assert!(b.read(4096, 512).await.is_ok());
    assert!(b.read(4608, 512).await.is_err());
    b.write(4608, vec![3; 3584], false).await.unwrap();
    assert!(b.read(0, 8192).await.is_ok());
}

#[tokio::test]
async fn one_file_one_backstore() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let link = dir.path().join("link");
    let a = open(&spec(BackstoreKind::Fileio, Some(path.clone()), Some(4096))).unwrap();
    std::fs::hard_link(&path, &link).unwrap();
    let mut other = spec(BackstoreKind::Fileio, Some(link.clone()), None);
    other.name = "other".into();
    let e = open(&other).unwrap_err();
    assert!(!e.is_transient());
    let msg = e.to_string();
    assert!(msg.contains("same storage as backstore \"t\""), "{msg}");
    // The same backstore reopened (a reload changing its cache settings) shares the lock.
    let mut again = spec(BackstoreKind::Fileio, Some(path.clone()), None);
    again.write_cache = true;
    let b = open(&again).unwrap();
    // A backstore being replaced can hand it over.
    let c = Backstore::open(
        &other,
        &OpenOptions {
            may_create: true,
            share_with: vec!["t".into()],
        },
    )
    .unwrap();
    drop((a, b, c));
    // Released: anyone may take it now.
    open(&other).unwrap();
}

#[tokio::test]
async fn direct_io_on_a_file_and_presence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    let mut s = spec(BackstoreKind::Fileio, Some(path.clone()), Some(1 << 20));
    s.block_size = 4096;
    s.cache = CacheMode::Direct;
    let b = match open(&s) {
        Ok(b) => b,
        // A file system without O_DIRECT is refused with a clear error at open.
        Err(e) => {
            assert!(e.to_string().contains("O_DIRECT"), "{e}");
            return;
        }
    };
    assert_eq!(b.cache(), CacheMode::Direct);
    // A Vec is not page aligned: the write copies it into an aligned buffer.
    let data: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    b.write(
        4096,
        data[1..]
            .iter()
            .chain([0u8].iter())
            .copied()
            .collect::<Vec<u8>>(),
        true,
    )
    .await
    .unwrap();
    let r = b.read(4096, 8192).await.unwrap();
    assert!(
        IoBuf::is_aligned(&r),
        "the read buffer is the aligned one, uncopied"
    );
    assert_eq!(&r[..100], &data[1..101]);
    assert_eq!(b.check_present(), Ok(()));
    std::fs::remove_file(&path).unwrap();
    assert!(
        b.check_present()
            .unwrap_err()
            .contains("deleted or replaced")
    );
}

#[tokio::test]
async fn write_back_data_whose_flush_failed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wb");
    let faults = faults::inject(&path);
    let mut s = spec(BackstoreKind::Fileio, Some(path.clone()), Some(1 << 20));
    s.write_cache = true;
    let b = open(&s).unwrap();
    b.write(0, vec![1; 4096], false).await.unwrap();
    b.flush().await.unwrap();
    b.write(8192, vec![2; 4096], false).await.unwrap();
    b.write(65536, vec![3; 512], false).await.unwrap();
    // Which writeback failed is unknown: everything written since the last flush is.
    faults.flushes.store(libc::EIO, Ordering::SeqCst);
    assert!(b.flush().await.is_err());
    faults.flushes.store(0, Ordering::SeqCst);
    assert!(b.read(0, 4096).await.is_ok(), "flushed before: fine");
    assert!(b.read(8192, 4096).await.is_err());
    assert!(b.read(65536, 512).await.is_err());
    // A FUA write is durable on its own: not pending for the next flush.
    b.write(131072, vec![4; 512], true).await.unwrap();
    faults.flushes.store(libc::EIO, Ordering::SeqCst);
    assert!(b.flush().await.is_err());
    assert!(b.read(131072, 512).await.is_ok());
}

/// `/dev` is a devtmpfs, which `fstatfs` reports with tmpfs's magic: a device node there
/// (md, LVM, a loop device) once counted as memory, so its O_DIRECT reads ran in the
/// connection's task, one at a time, stalling every other connection of that worker.
#[test]
fn only_regular_files_on_tmpfs_are_memory() {
    let dev = File::open("/dev/null").unwrap();
    assert!(!super::is_memory(&dev), "a device node is not memory");
    if std::path::Path::new("/dev/shm").is_dir() {
        let f = tempfile::tempfile_in("/dev/shm").unwrap();
        assert!(super::is_memory(&f), "a file on tmpfs is memory");
    }
}
