//! Backstores: where a LUN's blocks live.
//!
//! One type serves every kind: each is a file descriptor read and written with positioned
//! I/O (`pread`/`pwrite`), so the kernel, not a lock of ours, orders concurrent access.
//! - `fileio`: a regular file, created sparse at the configured size when missing.
//! - `block`: a block device; size (`BLKGETSIZE64`) and logical block size (`BLKSSZGET`)
//!   come from the device.
//! - `ramdisk`: an anonymous `memfd`; I/O on it never blocks on a disk, so it runs inline.
//!
//! Write-through by default (`O_DSYNC`); with `write_cache = true` writes land in the page
//! cache and FUA / SYNCHRONIZE CACHE call `fdatasync`.

// IMPLEMENTATION NOTE (skeleton): the public API below is the contract the SCSI layer and
// the registry build against. Bodies are filled in by the backstore implementation.

use std::path::PathBuf;

use bytes::Bytes;

/// Which kind of storage a backstore is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackstoreKind {
    /// A block device (md array, LVM volume, disk).
    Block,
    /// A regular file, sparse.
    Fileio,
    /// Memory only; contents are lost when the daemon stops.
    Ramdisk,
}

/// Everything needed to open a backstore (built by the registry from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackstoreSpec {
    /// Name of the backstore in the config, for messages.
    pub name: String,
    /// Kind of storage.
    pub kind: BackstoreKind,
    /// Path of the file or device (not used for ramdisk).
    pub path: Option<PathBuf>,
    /// Size in bytes: required for ramdisk; for fileio the size a missing file is created
    /// with (and grown to, never shrunk); ignored for block.
    pub size: Option<u64>,
    /// Logical block size for fileio and ramdisk (512 or 4096); block devices report theirs.
    pub block_size: u32,
    /// Write-back caching (acknowledge before stable storage; flush on FUA/SYNC CACHE).
    pub write_cache: bool,
}

/// A failed backstore operation; each variant wraps the OS error as its source.
#[derive(Debug, thiserror::Error)]
pub enum BackstoreError {
    /// Opening or creating the storage failed.
    #[error("cannot open backstore {name}: {source}")]
    Open {
        /// Backstore name.
        name: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The spec is not usable (missing path or size, bad block size, ...).
    #[error("backstore {name}: {reason}")]
    Invalid {
        /// Backstore name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A read failed.
    #[error("read failed: {0}")]
    Read(#[source] std::io::Error),
    /// A write failed.
    #[error("write failed: {0}")]
    Write(#[source] std::io::Error),
    /// A flush (fdatasync) failed.
    #[error("flush failed: {0}")]
    Flush(#[source] std::io::Error),
    /// Deallocation (UNMAP / punch hole / BLKDISCARD) failed.
    #[error("discard failed: {0}")]
    Discard(#[source] std::io::Error),
}

/// An open backstore. Cheap to share (`Arc`); every method takes `&self`.
#[derive(Debug)]
pub struct Backstore {
    _private: (),
}

impl Backstore {
    /// Opens (and for fileio/ramdisk, creates) the storage described by `spec`.
    pub fn open(_spec: &BackstoreSpec) -> Result<Self, BackstoreError> {
        todo!("backstore implementation")
    }
    /// Logical block size in bytes.
    pub fn block_size(&self) -> u32 {
        todo!()
    }
    /// Capacity in logical blocks (re-read on each call is not required; see `refresh_size`).
    pub fn num_blocks(&self) -> u64 {
        todo!()
    }
    /// Reads `len` bytes at byte `offset` into a new buffer.
    pub async fn read(&self, _offset: u64, _len: usize) -> Result<Bytes, BackstoreError> {
        todo!()
    }
    /// Writes `data` at byte `offset`; with `fua`, the data is on stable storage on return.
    pub async fn write(
        &self,
        _offset: u64,
        _data: Vec<u8>,
        _fua: bool,
    ) -> Result<(), BackstoreError> {
        todo!()
    }
    /// Makes every acknowledged write stable (SYNCHRONIZE CACHE).
    pub async fn flush(&self) -> Result<(), BackstoreError> {
        todo!()
    }
}
