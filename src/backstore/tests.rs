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
    }
}

#[tokio::test]
async fn ramdisk_read_write_discard() {
    let b = Backstore::open(&spec(BackstoreKind::Ramdisk, None, Some(1 << 20))).unwrap();
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
    let b = Backstore::open(&spec(
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
    let b = Backstore::open(&s).unwrap();
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
    let b = Backstore::open(&spec(
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
    let b = Backstore::open(&spec(BackstoreKind::Fileio, Some(path.clone()), Some(4096))).unwrap();
    b.write(0, vec![9; 4096], false).await.unwrap();
    let d = b.read(2048, 4096).await.unwrap();
    assert_eq!(d.len(), 4096);
    assert!(d[..2048].iter().all(|&x| x == 9));
    assert!(d[2048..].iter().all(|&x| x == 0));
}

#[test]
fn invalid_specs() {
    assert!(matches!(
        Backstore::open(&spec(BackstoreKind::Ramdisk, None, None)),
        Err(BackstoreError::Invalid { .. })
    ));
    assert!(matches!(
        Backstore::open(&spec(BackstoreKind::Fileio, None, Some(4096))),
        Err(BackstoreError::Invalid { .. })
    ));
    let mut s = spec(BackstoreKind::Ramdisk, None, Some(4096));
    s.block_size = 1000;
    assert!(matches!(
        Backstore::open(&s),
        Err(BackstoreError::Invalid { .. })
    ));
    assert!(matches!(
        Backstore::open(&spec(BackstoreKind::Ramdisk, None, Some(100))),
        Err(BackstoreError::Invalid { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.img");
    assert!(matches!(
        Backstore::open(&spec(BackstoreKind::Fileio, Some(missing.clone()), None)),
        Err(BackstoreError::Invalid { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        Backstore::open(&spec(
            BackstoreKind::Block,
            Some("/nonexistent".into()),
            None
        )),
        Err(BackstoreError::Open { .. })
    ));
}

#[tokio::test]
async fn errors_map_to_variants() {
    // A read-only fd makes writes fail with EBADF.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d");
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    let b = Backstore {
        name: "ro".into(),
        kind: BackstoreKind::Fileio,
        file: Arc::new(File::open(&path).unwrap()),
        block_size: 512,
        size: AtomicU64::new(4096),
        write_cache: true,
        discard: true,
    };
    let e = b.write(0, vec![1; 512], false).await.unwrap_err();
    assert!(matches!(e, BackstoreError::Write(_)));
    assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    assert!(matches!(
        b.discard(0, 512).await,
        Err(BackstoreError::Discard(_))
    ));
}
