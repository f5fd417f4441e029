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

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

mod block;
mod file;
mod memfd;

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

/// How a backstore's I/O reaches its file or device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheMode {
    /// `O_DIRECT`: reads and writes bypass the host's page cache.
    Direct,
    /// Through the page cache.
    Buffered,
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
    name: String,
    kind: BackstoreKind,
    file: Arc<File>,
    block_size: u32,
    /// Size in bytes (re-read by [`Backstore::refresh_size`]).
    size: AtomicU64,
    write_cache: bool,
    discard: bool,
}

/// Whether a byte range of a backstore holds data or is deallocated (see
/// [`Backstore::allocation_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// True when the range is mapped (holds data), false when it is a hole.
    pub mapped: bool,
    /// Length in bytes of the run starting at the queried offset.
    pub len: u64,
}

impl Backstore {
    /// Opens (and for fileio/ramdisk, creates) the storage described by `spec`.
    pub fn open(spec: &BackstoreSpec) -> Result<Self, BackstoreError> {
        let invalid = |reason: &str| BackstoreError::Invalid {
            name: spec.name.clone(),
            reason: reason.to_string(),
        };
        let open_err = |source| BackstoreError::Open {
            name: spec.name.clone(),
            source,
        };
        let (file, block_size, size, discard) = match spec.kind {
            BackstoreKind::Fileio | BackstoreKind::Ramdisk => {
                if spec.block_size != 512 && spec.block_size != 4096 {
                    return Err(invalid("block_size must be 512 or 4096"));
                }
                let (file, size) = if spec.kind == BackstoreKind::Fileio {
                    let path = spec
                        .path
                        .as_ref()
                        .ok_or_else(|| invalid("path is required"))?;
                    if spec.size.is_none() && !path.exists() {
                        return Err(invalid("size is required to create the file"));
                    }
                    file::open(path, spec.size, spec.write_cache).map_err(open_err)?
                } else {
                    let size = spec.size.ok_or_else(|| invalid("size is required"))?;
                    (memfd::create(&spec.name, size).map_err(open_err)?, size)
                };
                (file, spec.block_size, size, true)
            }
            BackstoreKind::Block => {
                let path = spec
                    .path
                    .as_ref()
                    .ok_or_else(|| invalid("path is required"))?;
                let dev = block::open(path, spec.write_cache).map_err(open_err)?;
                (dev.file, dev.block_size, dev.size, dev.discard)
            }
        };
        if size < u64::from(block_size) {
            return Err(invalid("size is smaller than one block"));
        }
        Ok(Backstore {
            name: spec.name.clone(),
            kind: spec.kind,
            file: Arc::new(file),
            block_size,
            size: AtomicU64::new(size),
            write_cache: spec.write_cache,
            discard,
        })
    }

    /// Name of the backstore in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which kind of storage this is.
    pub fn kind(&self) -> BackstoreKind {
        self.kind
    }

    /// Whether writes are cached (acknowledged before stable storage).
    pub fn write_cache(&self) -> bool {
        self.write_cache
    }

    /// Whether [`Backstore::discard`] deallocates (punch hole / BLKDISCARD).
    pub fn supports_discard(&self) -> bool {
        self.discard
    }

    /// Whether deallocated blocks read back as zeros (true for files and memory).
    pub fn discard_zeroes(&self) -> bool {
        self.kind != BackstoreKind::Block
    }

    /// Whether the storage is thin-provisioned (sparse file or memory).
    pub fn thin(&self) -> bool {
        self.kind != BackstoreKind::Block
    }

    /// Logical block size in bytes.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Size in bytes, as of the last open or [`Backstore::refresh_size`].
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Capacity in logical blocks (re-read on each call is not required; see `refresh_size`).
    pub fn num_blocks(&self) -> u64 {
        self.size() / u64::from(self.block_size)
    }

    /// Grows a fileio or ramdisk backstore to `size` bytes (never shrinks; block devices
    /// are resized outside, e.g. by `lvextend`) and returns the size now in effect.
    pub fn grow(&self, size: u64) -> std::io::Result<u64> {
        if self.kind != BackstoreKind::Block && self.file.metadata()?.len() < size {
            self.file.set_len(size)?;
        }
        self.refresh_size()
    }

    /// Re-reads the size of the file or device (after an online resize) and returns it.
    pub fn refresh_size(&self) -> std::io::Result<u64> {
        let size = match self.kind {
            BackstoreKind::Block => block::size(&self.file)?,
            BackstoreKind::Fileio | BackstoreKind::Ramdisk => self.file.metadata()?.len(),
        };
        self.size.store(size, Ordering::Relaxed);
        Ok(size)
    }

    /// Runs `f` on the file: inline for ramdisk, on the blocking pool otherwise.
    async fn run<T, F>(&self, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> std::io::Result<T> + Send + 'static,
    {
        if self.kind == BackstoreKind::Ramdisk {
            return f(&self.file);
        }
        let file = Arc::clone(&self.file);
        match tokio::task::spawn_blocking(move || f(&file)).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Reads `len` bytes at byte `offset` into a new buffer.
    ///
    /// The buffer is allocated once and handed out as [`Bytes`] without a copy; bytes past
    /// the end of the file read as zeros.
    pub async fn read(&self, offset: u64, len: usize) -> Result<Bytes, BackstoreError> {
        self.run(move |f| {
            let mut buf = Vec::with_capacity(len);
            read_uninit(f, &mut buf, len, offset)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(BackstoreError::Read)
    }

    /// Writes `data` at byte `offset`; with `fua`, the data is on stable storage on return.
    pub async fn write(&self, offset: u64, data: Vec<u8>, fua: bool) -> Result<(), BackstoreError> {
        let sync = fua && self.write_cache && self.kind != BackstoreKind::Ramdisk;
        self.run(move |f| {
            f.write_all_at(&data, offset)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        })
        .await
        .map_err(BackstoreError::Write)
    }

    /// Makes every acknowledged write stable (SYNCHRONIZE CACHE).
    pub async fn flush(&self) -> Result<(), BackstoreError> {
        if self.kind == BackstoreKind::Ramdisk {
            return Ok(());
        }
        self.run(|f| f.sync_data())
            .await
            .map_err(BackstoreError::Flush)
    }

    /// Deallocates `len` bytes at `offset` (UNMAP); afterwards the range reads as zeros
    /// when [`Backstore::discard_zeroes`] is true.
    pub async fn discard(&self, offset: u64, len: u64) -> Result<(), BackstoreError> {
        if len == 0 {
            return Ok(());
        }
        if !self.discard {
            return Err(BackstoreError::Discard(std::io::Error::from_raw_os_error(
                libc::EOPNOTSUPP,
            )));
        }
        let kind = self.kind;
        self.run(move |f| match kind {
            BackstoreKind::Block => block::discard(f, offset, len),
            _ => match file::punch_hole(f, offset, len) {
                // File systems without hole punching: keep "reads as zeros" by writing them.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    file::zero_fill(f, offset, len)
                }
                r => r,
            },
        })
        .await
        .map_err(BackstoreError::Discard)
    }

    /// Writes `len` zero bytes at `offset`, deallocating where the storage allows it.
    pub async fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), BackstoreError> {
        if self.discard && self.discard_zeroes() {
            return self.discard(offset, len).await.map_err(|e| match e {
                BackstoreError::Discard(e) => BackstoreError::Write(e),
                e => e,
            });
        }
        const CHUNK: u64 = 1 << 20;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            self.write(offset + done, vec![0u8; n as usize], false)
                .await?;
            done += n;
        }
        Ok(())
    }

    /// Whether the bytes at `offset` are mapped or a hole, and how long that run is (at
    /// most `max_len`). Block devices always report mapped.
    pub async fn allocation_status(
        &self,
        offset: u64,
        max_len: u64,
    ) -> Result<Extent, BackstoreError> {
        if self.kind == BackstoreKind::Block {
            return Ok(Extent {
                mapped: true,
                len: max_len,
            });
        }
        self.run(move |f| file::extent(f, offset, max_len))
            .await
            .map_err(BackstoreError::Read)
    }
}

/// Reads `len` bytes at `offset` into the spare capacity of the empty `buf` without
/// zero-filling it first (a 1 MiB read would otherwise write every byte twice); bytes past
/// the end of the file read as zeros.
fn read_uninit(f: &File, buf: &mut Vec<u8>, len: usize, offset: u64) -> std::io::Result<()> {
    debug_assert!(buf.is_empty() && buf.capacity() >= len);
    let mut done = 0usize;
    while done < len {
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        // SAFETY: pread writes at most `spare.len()` bytes into memory we own and that
        // nothing else references; only the bytes it reports are then marked initialized.
        let n = unsafe {
            libc::pread(
                f.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        // SAFETY: the kernel initialized the first `n` bytes of the spare capacity.
        unsafe { buf.set_len(buf.len() + n as usize) };
        done += n as usize;
    }
    buf.resize(len, 0); // past the end of the file
    Ok(())
}

impl BackstoreError {
    /// The OS error number behind a read/write/flush/discard failure, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            BackstoreError::Open { source, .. }
            | BackstoreError::Read(source)
            | BackstoreError::Write(source)
            | BackstoreError::Flush(source)
            | BackstoreError::Discard(source) => source.raw_os_error(),
            BackstoreError::Invalid { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests;
