//! What the kernel says about a block device (`/sys/dev/block/M:m/queue/*`): rotation,
//! discard granularity and alignment, optimal and maximum transfer. VPD B0 and B1 report
//! these instead of fixed values.

use std::path::{Path, PathBuf};

/// The limits of the device behind a backstore; zero where not known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `queue/rotational`: `Some(false)` for SSDs and memory, `None` when unknown.
    pub rotational: Option<bool>,
    /// `queue/discard_granularity` in bytes (for files: the file system block size).
    pub discard_granularity: u64,
    /// `discard_alignment` of the device or partition, in bytes.
    pub discard_alignment: u64,
    /// `queue/discard_max_bytes`.
    pub discard_max_bytes: u64,
    /// `queue/optimal_io_size` in bytes (e.g. an md stripe).
    pub optimal_io: u64,
    /// `queue/minimum_io_size` in bytes (e.g. an md chunk).
    pub minimum_io: u64,
    /// `queue/max_hw_sectors_kb` in bytes.
    pub max_transfer: u64,
    /// `queue/write_zeroes_max_bytes` > 0: BLKZEROOUT is offloaded to the device.
    pub write_zeroes: bool,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// The sysfs directory of device `rdev` and its `queue` directory (a partition has none:
/// its disk's is used).
fn dirs(rdev: u64) -> Option<(PathBuf, PathBuf)> {
    let dev = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(rdev),
        libc::minor(rdev)
    ));
    let q = dev.join("queue");
    if q.is_dir() {
        return Some((dev, q));
    }
    let parent = dev.canonicalize().ok()?.parent()?.join("queue");
    parent.is_dir().then_some((dev, parent))
}

/// Limits of the block device `rdev`.
pub fn for_device(rdev: u64) -> Limits {
    let Some((dev, q)) = dirs(rdev) else {
        return Limits::default();
    };
    let get = |n: &str| read_u64(&q.join(n)).unwrap_or(0);
    Limits {
        rotational: read_u64(&q.join("rotational")).map(|r| r != 0),
        discard_granularity: get("discard_granularity"),
        discard_alignment: read_u64(&dev.join("discard_alignment")).unwrap_or(0),
        discard_max_bytes: get("discard_max_bytes"),
        optimal_io: get("optimal_io_size"),
        minimum_io: get("minimum_io_size"),
        max_transfer: get("max_hw_sectors_kb") * 1024,
        write_zeroes: get("write_zeroes_max_bytes") > 0,
    }
}

/// Limits for a regular file on the file system of device `st_dev` with block size
/// `blksize`: rotation of the device underneath when there is one (not for tmpfs, NFS,
/// overlay), hole punching at the file system block size.
pub fn for_file(st_dev: u64, blksize: u64) -> Limits {
    let rotational =
        dirs(st_dev).and_then(|(_, q)| read_u64(&q.join("rotational")).map(|r| r != 0));
    Limits {
        rotational,
        discard_granularity: blksize,
        ..Limits::default()
    }
}

/// Limits of memory (ramdisk): never rotating.
pub fn memory() -> Limits {
    Limits {
        rotational: Some(false),
        discard_granularity: 4096,
        ..Limits::default()
    }
}

/// Bytes of RAM on the host (`MemTotal` of `/proc/meminfo`).
pub fn host_memory() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let l = m.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn host_facts() {
        assert!(host_memory().unwrap() > 1 << 20);
        // A device that does not exist has no limits; one that does has a queue.
        assert_eq!(for_device(libc::makedev(4095, 4095)), Limits::default());
        if let Ok(m) = std::fs::metadata("/dev/loop0") {
            let l = for_device(m.rdev());
            assert!(l.rotational.is_some(), "{l:?}");
            assert!(l.max_transfer > 0, "{l:?}");
        }
    }
}
