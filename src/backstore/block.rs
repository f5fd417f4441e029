//! block: a block device; its size and logical block size come from ioctls.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::claim::{self, Key};
use super::{
    BackstoreError, BackstoreSpec, CacheMode, OpenOptions, Opened, open_error, open_flags, open_rw,
    sysfs,
};

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);
nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// Opens the block device at `path` exclusively (`O_EXCL`: refused while it is mounted,
/// part of an md array or a dm table, or open exclusively by another process), unless
/// this backstore already holds it (a reopen).
pub(super) fn open(
    spec: &BackstoreSpec,
    path: &Path,
    cache: CacheMode,
    opts: &OpenOptions,
) -> Result<Opened, BackstoreError> {
    let name = &spec.name;
    let open_err = &open_error(name, path);
    let meta = std::fs::metadata(path).map_err(open_err)?;
    if !meta.file_type().is_block_device() {
        return Err(BackstoreError::Invalid {
            name: name.clone(),
            reason: format!("{} is not a block device", path.display()),
        });
    }
    let key = Key::of(&meta);
    let in_use = |by: String| BackstoreError::InUse {
        name: name.clone(),
        path: path.to_path_buf(),
        by,
    };
    let shared = claim::existing(key, name, &opts.share_with).map_err(|c| in_use(c.to_string()))?;
    let excl = if shared.is_none() { libc::O_EXCL } else { 0 };
    let file = match open_rw(path, open_flags(spec, cache) | excl, false) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            return Err(in_use(format!(
                "it is in use by {}",
                claim::device_holder(meta.rdev())
            )));
        }
        Err(e) => return Err(open_err(e)),
    };
    if Key::of(&file.metadata().map_err(open_err)?) != key {
        return Err(open_err(io::Error::other(format!(
            "{} changed while being opened",
            path.display()
        ))));
    }
    let claim = match shared {
        Some(c) => c,
        None => claim::register(key, name, path, &file).map_err(|c| in_use(c.to_string()))?,
    };
    let size = size(&file).map_err(open_err)?;
    let mut bs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
    unsafe { blksszget(file.as_raw_fd(), &mut bs) }.map_err(|e| open_err(io::Error::from(e)))?;
    let block_size = u32::try_from(bs)
        .ok()
        .filter(|b| b.is_power_of_two() && *b >= 512)
        .ok_or_else(|| {
            open_err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad logical block size",
            ))
        })?;
    let limits = sysfs::for_device(meta.rdev());
    Ok(Opened {
        file,
        block_size,
        size,
        discard: limits.discard_max_bytes > 0,
        limits,
        key: Some(key),
        claim: Some(claim),
    })
}

/// The device size in bytes (`BLKGETSIZE64`).
pub(super) fn size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    Ok(size)
}

/// Discards `len` bytes at `offset` (`BLKDISCARD`).
pub(super) fn discard(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let range = [offset, len];
    // SAFETY: BLKDISCARD reads two u64 through the pointer, which is valid.
    unsafe { blkdiscard(file.as_raw_fd(), &range) }.map_err(io::Error::from)?;
    Ok(())
}

/// Zeroes `len` bytes at `offset` (`BLKZEROOUT`: WRITE ZEROES on the device where it has
/// it, written zero pages otherwise; the page cache of the range is dropped).
pub(super) fn zeroout(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let range = [offset, len];
    // SAFETY: BLKZEROOUT reads two u64 through the pointer, which is valid.
    unsafe { blkzeroout(file.as_raw_fd(), &range) }.map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &Path) -> BackstoreSpec {
        BackstoreSpec {
            name: "blk".into(),
            kind: super::super::BackstoreKind::Block,
            path: Some(path.into()),
            size: None,
            block_size: 512,
            write_cache: true,
            cache: CacheMode::Direct,
        }
    }

    #[test]
    fn regular_file_is_not_a_block_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = open(
            &spec(f.path()),
            f.path(),
            CacheMode::Direct,
            &OpenOptions::default(),
        )
        .err()
        .unwrap();
        assert!(matches!(err, BackstoreError::Invalid { .. }), "{err}");
        // The ioctls fail cleanly on a non-device.
        assert!(size(f.as_file()).is_err());
        assert!(discard(f.as_file(), 0, 512).is_err());
        assert!(zeroout(f.as_file(), 0, 512).is_err());
    }

    #[test]
    fn missing_device_is_transient() {
        let p = Path::new("/nonexistent/dev/sdz");
        let err = open(&spec(p), p, CacheMode::Direct, &OpenOptions::default())
            .err()
            .unwrap();
        assert!(err.is_transient(), "{err}");
    }
}
