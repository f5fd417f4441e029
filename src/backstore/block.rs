//! block: a block device; its size and logical block size come from ioctls.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
nix::ioctl_write_ptr_bad!(blkdiscard, nix::request_code_none!(0x12, 119), [u64; 2]);

/// An opened block device with its geometry.
pub(super) struct Device {
    pub file: File,
    pub size: u64,
    pub block_size: u32,
    pub discard: bool,
}

/// Opens the block device at `path` (write-through unless `write_cache`).
pub(super) fn open(path: &Path, write_cache: bool) -> io::Result<Device> {
    let mut flags = libc::O_CLOEXEC;
    if !write_cache {
        flags |= libc::O_DSYNC;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_block_device() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a block device",
        ));
    }
    let size = size(&file)?;
    let mut bs: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid.
    unsafe { blksszget(file.as_raw_fd(), &mut bs) }.map_err(io::Error::from)?;
    let block_size = u32::try_from(bs)
        .ok()
        .filter(|b| b.is_power_of_two() && *b >= 512)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad logical block size"))?;
    let discard = discard_supported(meta.rdev());
    Ok(Device {
        file,
        size,
        block_size,
        discard,
    })
}

/// The device size in bytes (`BLKGETSIZE64`).
pub(super) fn size(file: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
    unsafe { blkgetsize64(file.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    Ok(size)
}

/// Whether the queue advertises discard (`/sys/dev/block/M:m/queue/discard_max_bytes`).
fn discard_supported(rdev: u64) -> bool {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let path = format!("/sys/dev/block/{major}:{minor}/queue/discard_max_bytes");
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0)
}

/// Discards `len` bytes at `offset` (`BLKDISCARD`).
pub(super) fn discard(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let range = [offset, len];
    // SAFETY: BLKDISCARD reads two u64 through the pointer, which is valid.
    unsafe { blkdiscard(file.as_raw_fd(), &range) }.map_err(io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_file_is_not_a_block_device() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let err = open(f.path(), true).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // The ioctls fail cleanly on a non-device.
        assert!(size(f.as_file()).is_err());
        assert!(discard(f.as_file(), 0, 512).is_err());
    }

    #[test]
    fn missing_device() {
        assert!(open(Path::new("/nonexistent/dev/sdz"), false).is_err());
    }
}
