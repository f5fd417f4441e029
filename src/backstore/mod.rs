//! Backstores: where a LUN's blocks live.
//!
//! One type serves every kind: each is a file descriptor read and written with positioned
//! I/O (`pread`/`pwrite`), so the kernel, not a lock of ours, orders concurrent access.
//!
//! Where the I/O runs: storage that is memory (the memfd ramdisk, a file on tmpfs or
//! ramfs) is read and written in the calling task — there is nothing to wait for but
//! memory copies. Buffered reads of other files and devices first try `preadv2` with
//! `RWF_NOWAIT`, served in the calling task when the page cache holds the data; what it
//! does not hold is read on tokio's blocking pool. Buffered write-back writes try
//! `pwritev2(RWF_NOWAIT)` the same way where the file system supports it (XFS, btrfs; not
//! ext4, which answers EOPNOTSUPP once and is not asked again). Everything that waits for
//! a device — `O_DIRECT`, `O_DSYNC` write-through, FUA, flushes, discards — runs on the
//! blocking pool.
//! - `fileio`: a regular file, created sparse at the configured size when missing (only
//!   the first time: a file that existed and is gone means its file system is not mounted,
//!   and the backstore waits offline instead of creating an empty one).
//! - `block`: a block device; size (`BLKGETSIZE64`) and logical block size (`BLKSSZGET`)
//!   come from the device, the limits VPD B0/B1 report from sysfs.
//! - `ramdisk`: an anonymous `memfd`; I/O on it never blocks on a disk, so it runs inline.
//!
//! Caching, two settings:
//! - [`CacheMode`]: `direct` (`O_DIRECT`, aligned buffers from [`io_buffer`]; the
//!   default for block devices, so a read never returns data the device does not hold and
//!   md/LVM data is not cached twice) or `buffered` (the page cache; the default for
//!   fileio). In buffered mode a range whose write failed is refused to readers
//!   ([`BackstoreError::PendingWriteError`]) until it is written again, because the page
//!   cache may still hold the data that never reached the storage.
//! - `write_cache`: off (write-through, the default) opens `O_DSYNC`, and discards and
//!   zeroing are followed by `fdatasync` (hole punching and BLKDISCARD are not covered by
//!   `O_DSYNC`), so every GOOD is on stable storage. On: writes are acknowledged from the
//!   page cache or the device's volatile cache; a FUA write is written with `RWF_DSYNC`
//!   (that write only, not the whole file) and SYNCHRONIZE CACHE calls `fdatasync`.
//!
//! Exclusive: files are locked (OFD lock), block devices opened `O_EXCL` ([`claim`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

mod block;
mod claim;
mod error;
#[cfg(test)]
pub(crate) mod faults;
mod file;
pub mod health;
mod memfd;
mod ranges;
pub mod sysfs;

pub use crate::iobuf::{IoBuf, io_buffer};
pub use error::{BackstoreError, Cause, cause_of};
pub use sysfs::Limits;

use ranges::RangeSet;

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

impl CacheMode {
    /// The mode a backstore of `kind` uses when the config does not say: direct for block
    /// devices, buffered for files and memory.
    pub fn default_for(kind: BackstoreKind) -> CacheMode {
        match kind {
            BackstoreKind::Block => CacheMode::Direct,
            BackstoreKind::Fileio | BackstoreKind::Ramdisk => CacheMode::Buffered,
        }
    }
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
    /// Page cache or not (ramdisk: always buffered).
    pub cache: CacheMode,
}

/// How [`Backstore::open`] may treat what it finds.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// A missing fileio file may be created (false once the file is known to have
    /// existed: then it missing means its file system is not mounted).
    pub may_create: bool,
    /// Backstores of this daemon whose claim on the same storage may be taken over (they
    /// are being replaced by this one).
    pub share_with: Vec<String>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            may_create: true,
            share_with: Vec::new(),
        }
    }
}

/// Failed and not-yet-flushed ranges of a buffered backstore.
#[derive(Debug, Default)]
struct Tracking {
    /// Ranges whose last write failed: reads are refused.
    failed: RangeSet,
    /// Write-back mode: ranges written since the last flush began.
    unflushed: RangeSet,
}

/// The largest read or write of a memory backstore (ramdisk, tmpfs) served in the caller's
/// task; a larger one is a long copy, and on the blocking pool it overlaps with the
/// connection's sends (1 MiB sequential reads at qd8: 1.16x the old binary's instead of
/// 0.87x when copied inline). Page-cache attempts with RWF_NOWAIT keep the same limit.
const INLINE_MAX: usize = 128 * 1024;

/// An open backstore. Cheap to share (`Arc`); every method takes `&self`.
#[derive(Debug)]
pub struct Backstore {
    name: String,
    kind: BackstoreKind,
    path: Option<PathBuf>,
    file: Arc<File>,
    block_size: u32,
    /// Size in bytes (re-read by [`Backstore::refresh_size`]).
    size: AtomicU64,
    write_cache: bool,
    cache: CacheMode,
    discard: bool,
    limits: Limits,
    /// (dev, ino) or rdev of what was opened, to notice it vanish or be replaced.
    key: Option<claim::Key>,
    _claim: Option<Arc<claim::Claim>>,
    any_failed: AtomicBool,
    tracking: Mutex<Tracking>,
    /// The storage is memory: every operation runs in the calling task.
    inline: bool,
    /// Buffered reads try `RWF_NOWAIT` first (cleared when the file system refuses it).
    nowait_reads: AtomicBool,
    /// Buffered write-back writes try `RWF_NOWAIT` first (cleared when refused).
    nowait_writes: AtomicBool,
    #[cfg(test)]
    faults: Option<Arc<faults::Faults>>,
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

/// What an opened file or device brings, before it becomes a [`Backstore`].
struct Opened {
    file: File,
    block_size: u32,
    size: u64,
    discard: bool,
    limits: Limits,
    key: Option<claim::Key>,
    claim: Option<Arc<claim::Claim>>,
}

impl Backstore {
    /// Opens (and for fileio/ramdisk, creates) the storage described by `spec`.
    pub fn open(spec: &BackstoreSpec, opts: &OpenOptions) -> Result<Self, BackstoreError> {
        let invalid = |reason: String| BackstoreError::Invalid {
            name: spec.name.clone(),
            reason,
        };
        let cache = if spec.kind == BackstoreKind::Ramdisk {
            CacheMode::Buffered
        } else {
            spec.cache
        };
        let o = match spec.kind {
            BackstoreKind::Ramdisk => {
                check_block_size(spec).map_err(invalid)?;
                let size = spec
                    .size
                    .ok_or_else(|| invalid("size is required".into()))?;
                if let Some(mem) = sysfs::host_memory()
                    && size > mem
                {
                    return Err(invalid(format!(
                        "a ramdisk of {size} bytes does not fit the host's memory ({mem} bytes)"
                    )));
                }
                let file =
                    memfd::create(&spec.name, size).map_err(|source| BackstoreError::Open {
                        name: spec.name.clone(),
                        source,
                    })?;
                Opened {
                    file,
                    block_size: spec.block_size,
                    size,
                    discard: true,
                    limits: sysfs::memory(),
                    key: None,
                    claim: None,
                }
            }
            BackstoreKind::Fileio => {
                check_block_size(spec).map_err(invalid)?;
                let path = spec
                    .path
                    .as_ref()
                    .ok_or_else(|| invalid("path is required".into()))?;
                file::open(spec, path, cache, opts)?
            }
            BackstoreKind::Block => {
                let path = spec
                    .path
                    .as_ref()
                    .ok_or_else(|| invalid("path is required".into()))?;
                block::open(spec, path, cache, opts)?
            }
        };
        if o.size < u64::from(o.block_size) {
            if spec.kind == BackstoreKind::Ramdisk {
                return Err(invalid("size is smaller than one block".into()));
            }
            return Err(BackstoreError::Empty {
                name: spec.name.clone(),
                path: spec.path.clone().unwrap_or_default(),
                size: o.size,
                block_size: o.block_size,
            });
        }
        let inline = spec.kind == BackstoreKind::Ramdisk || is_memory(&o.file);
        let buffered = cache == CacheMode::Buffered && !inline;
        Ok(Backstore {
            inline,
            nowait_reads: AtomicBool::new(buffered),
            nowait_writes: AtomicBool::new(buffered && spec.write_cache),
            name: spec.name.clone(),
            kind: spec.kind,
            #[cfg(test)]
            faults: faults::lookup(spec.path.as_deref()),
            path: spec.path.clone(),
            file: Arc::new(o.file),
            block_size: o.block_size,
            size: AtomicU64::new(o.size),
            write_cache: spec.write_cache,
            cache,
            discard: o.discard,
            limits: o.limits,
            key: o.key,
            _claim: o.claim,
            any_failed: AtomicBool::new(false),
            tracking: Mutex::new(Tracking::default()),
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

    /// Path of the file or device (none for ramdisk).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether writes are cached (acknowledged before stable storage).
    pub fn write_cache(&self) -> bool {
        self.write_cache
    }

    /// Page cache or `O_DIRECT`.
    pub fn cache(&self) -> CacheMode {
        self.cache
    }

    /// What the kernel reports about the device (rotation, discard and transfer limits).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether [`Backstore::discard`] deallocates (punch hole / BLKDISCARD).
    pub fn supports_discard(&self) -> bool {
        self.discard
    }

    /// Whether deallocated blocks read back as zeros: true for files and memory (a punched
    /// hole reads as zeros, durably once synced), false for block devices (BLKDISCARD
    /// promises nothing about the data).
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

    /// Capacity in logical blocks (see `refresh_size`).
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

    /// Whether the file or device is still the one opened: `Err` with the reason when it
    /// vanished (device node gone, device deleted, file deleted or replaced), so that the
    /// unit goes offline instead of serving a dead descriptor or an unlinked file.
    pub fn check_present(&self) -> Result<(), String> {
        let (Some(path), Some(key)) = (&self.path, self.key) else {
            return Ok(());
        };
        let shown = path.display();
        match key {
            claim::Key::Block { rdev } => {
                let sys = format!("/sys/dev/block/{}:{}", libc::major(rdev), libc::minor(rdev));
                if !Path::new(&sys).exists() {
                    return Err(format!("device {shown} was removed"));
                }
            }
            claim::Key::File { .. } => {
                let meta = self.file.metadata().map_err(|e| format!("{shown}: {e}"))?;
                if meta.nlink() == 0 {
                    return Err(format!("{shown} was deleted or replaced"));
                }
            }
        }
        match std::fs::metadata(path) {
            Ok(m) if claim::Key::of(&m) == key => Ok(()),
            Ok(_) => Err(format!("{shown} now refers to a different file or device")),
            Err(e) => Err(format!("{shown}: {e}")),
        }
    }

    /// Whether the storage is memory (ramdisk, a file on tmpfs): I/O runs in the caller.
    pub fn is_memory(&self) -> bool {
        self.inline
    }

    /// Runs `f` on the file: in the calling task for memory, on the blocking pool
    /// otherwise.
    async fn run<T, F>(&self, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> std::io::Result<T> + Send + 'static,
    {
        if self.inline {
            return f(&self.file);
        }
        self.offload(f).await
    }

    /// Whether a transfer of `len` bytes runs in the caller's task (memory, small).
    fn inline_for(&self, len: usize) -> bool {
        self.inline && len <= INLINE_MAX
    }

    /// Runs `f` on the file on the blocking pool.
    async fn offload<T, F>(&self, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&File) -> std::io::Result<T> + Send + 'static,
    {
        let file = Arc::clone(&self.file);
        match tokio::task::spawn_blocking(move || f(&file)).await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Buffered I/O on a file or device: failed and unflushed ranges are tracked. Not for
    /// memory (ramdisk, tmpfs), where the page cache is the storage and a flush cannot fail.
    fn tracks(&self) -> bool {
        #[cfg(test)]
        if self.faults.is_some() {
            // Injected faults stand for a device that fails, even on a tmpfs test dir.
            return self.cache == CacheMode::Buffered && self.kind != BackstoreKind::Ramdisk;
        }
        self.cache == CacheMode::Buffered && !self.inline
    }

    fn tracking(&self) -> std::sync::MutexGuard<'_, Tracking> {
        self.tracking.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the outcome of a write (or discard) of `[offset, offset + len)`.
    fn written(&self, offset: u64, len: u64, ok: bool, durable: bool) {
        if !self.tracks() {
            return;
        }
        let mut t = self.tracking();
        if ok {
            if self.any_failed.load(Ordering::Relaxed) {
                t.failed.remove(offset, len);
                self.any_failed
                    .store(!t.failed.is_empty(), Ordering::Relaxed);
            }
            if self.write_cache && !durable {
                t.unflushed.insert(offset, len);
            }
        } else {
            t.failed.insert(offset, len);
            self.any_failed.store(true, Ordering::Relaxed);
            drop(t);
            // The page cache may hold what never reached the storage: drop what it can
            // (clean pages); the failed range refuses readers until rewritten anyway.
            // SAFETY: advisory syscall on a valid descriptor.
            unsafe {
                libc::posix_fadvise(
                    self.file.as_raw_fd(),
                    offset as libc::off_t,
                    len as libc::off_t,
                    libc::POSIX_FADV_DONTNEED,
                );
            }
        }
    }

    fn refuse_failed(&self, offset: u64, len: u64) -> Result<(), BackstoreError> {
        if !self.any_failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        if self.tracking().failed.overlaps(offset, len) {
            return Err(BackstoreError::PendingWriteError { offset, len });
        }
        Ok(())
    }

    /// Reads `len` bytes at byte `offset` into a new aligned buffer ([`io_buffer`]),
    /// handed out as [`Bytes`] without a copy; bytes past the end of a file read as zeros.
    pub async fn read(&self, offset: u64, len: usize) -> Result<Bytes, BackstoreError> {
        self.refuse_failed(offset, len as u64)?;
        #[cfg(test)]
        if let Some(e) = self.faults.as_ref().and_then(|f| f.read()) {
            return Err(BackstoreError::Read(e));
        }
        let mut buf = io_buffer(len);
        if self.inline_for(len) {
            read_into(&self.file, &mut buf, offset, 0).map_err(BackstoreError::Read)?;
            return Ok(buf.into_bytes());
        }
        if !self.inline && len <= INLINE_MAX && self.nowait_reads.load(Ordering::Relaxed) {
            // What the page cache holds, without waiting; the rest below.
            match read_into(&self.file, &mut buf, offset, libc::RWF_NOWAIT) {
                Ok(()) => return Ok(buf.into_bytes()),
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    self.nowait_reads.store(false, Ordering::Relaxed);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => return Err(BackstoreError::Read(e)),
            }
        }
        self.offload(move |f| {
            read_into(f, &mut buf, offset, 0)?;
            Ok(buf.into_bytes())
        })
        .await
        .map_err(BackstoreError::Read)
    }

    /// Writes `data` at byte `offset`; with `fua`, the data is on stable storage on return
    /// (`RWF_DSYNC` for this write in write-back mode; write-through always is). The
    /// buffer goes to the storage as it is (it is aligned for `O_DIRECT`).
    pub async fn write(
        &self,
        offset: u64,
        data: impl Into<IoBuf>,
        fua: bool,
    ) -> Result<(), BackstoreError> {
        let data: IoBuf = data.into();
        let len = data.len() as u64;
        let dsync = fua && self.write_cache && self.kind != BackstoreKind::Ramdisk;
        let durable = dsync || !self.write_cache;
        #[cfg(test)]
        if let Some(f) = &self.faults
            && let Some(e) = f.write()
        {
            if f.write_lands.load(Ordering::SeqCst) {
                let _ = self.run(move |f| write_all(f, &data, offset, 0)).await;
            }
            self.written(offset, len, false, false);
            return Err(BackstoreError::Write(e));
        }
        #[cfg(test)]
        if let Some(delay) = self.faults.as_ref().map(|f| f.write_delay())
            && !delay.is_zero()
        {
            // A slow device: the write is in flight for `delay` before it lands.
            let _ = self
                .run(move |_| {
                    std::thread::sleep(delay);
                    Ok(())
                })
                .await;
        }
        let flags = if dsync { libc::RWF_DSYNC } else { 0 };
        let mut done = 0;
        if !self.inline
            && !durable
            && data.len() <= INLINE_MAX
            && self.nowait_writes.load(Ordering::Relaxed)
        {
            // Into the page cache without waiting where the file system can; the rest
            // (a page to allocate, a lock to take, writeback throttling) below.
            match write_some(&self.file, &data, offset, libc::RWF_NOWAIT) {
                Ok(n) => done = n,
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    self.nowait_writes.store(false, Ordering::Relaxed);
                }
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                Err(e) => {
                    self.written(offset, len, false, false);
                    return Err(BackstoreError::Write(e));
                }
            }
        }
        let r = if done == data.len() {
            Ok(())
        } else if self.inline_for(data.len()) {
            write_all(&self.file, &data[done..], offset + done as u64, flags)
        } else {
            self.offload(move |f| write_all(f, &data[done..], offset + done as u64, flags))
                .await
        };
        self.written(offset, len, r.is_ok(), durable);
        r.map_err(BackstoreError::Write)
    }

    /// Makes every acknowledged write stable (SYNCHRONIZE CACHE). When it fails, what was
    /// written since the previous flush is treated as failed (buffered mode).
    pub async fn flush(&self) -> Result<(), BackstoreError> {
        if self.kind == BackstoreKind::Ramdisk {
            return Ok(());
        }
        let pending = if self.tracks() && self.write_cache {
            std::mem::take(&mut self.tracking().unflushed)
        } else {
            RangeSet::default()
        };
        let r = self.run(|f| f.sync_data()).await;
        #[cfg(test)]
        let r = match self.faults.as_ref().and_then(|f| f.flush()) {
            Some(e) => Err(e),
            None => r,
        };
        if r.is_err() {
            // Which writeback failed is not known: every range written since the last
            // flush counts as failed.
            for (s, e) in pending.iter() {
                self.written(s, e - s, false, false);
            }
        }
        r.map_err(BackstoreError::Flush)
    }

    /// Deallocates `len` bytes at `offset` (UNMAP); afterwards the range reads as zeros
    /// when [`Backstore::discard_zeroes`] is true. Write-through: durable on return.
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
        let sync = !self.write_cache && kind != BackstoreKind::Ramdisk;
        let r = self
            .run(move |f| {
                match kind {
                    BackstoreKind::Block => block::discard(f, offset, len)?,
                    _ => match file::punch_hole(f, offset, len) {
                        // File systems without hole punching: keep "reads as zeros" by
                        // writing them.
                        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                            file::zero_fill(f, offset, len)?
                        }
                        r => r?,
                    },
                }
                // Neither fallocate nor BLKDISCARD is covered by O_DSYNC.
                if sync { f.sync_data() } else { Ok(()) }
            })
            .await;
        self.written(offset, len, r.is_ok(), sync);
        r.map_err(BackstoreError::Discard)
    }

    /// Writes `len` zero bytes at `offset`: punched holes on files, BLKZEROOUT on block
    /// devices (offloaded to the device where it can), durable on return in write-through.
    pub async fn write_zeroes(&self, offset: u64, len: u64) -> Result<(), BackstoreError> {
        if self.discard && self.discard_zeroes() {
            return self.discard(offset, len).await.map_err(|e| match e {
                BackstoreError::Discard(e) => BackstoreError::Write(e),
                e => e,
            });
        }
        if self.kind == BackstoreKind::Block {
            let sync = !self.write_cache;
            let r = self
                .run(move |f| {
                    block::zeroout(f, offset, len)?;
                    if sync { f.sync_data() } else { Ok(()) }
                })
                .await;
            self.written(offset, len, r.is_ok(), sync);
            return r.map_err(BackstoreError::Write);
        }
        const CHUNK: u64 = 1 << 20;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK);
            self.write(offset + done, IoBuf::zeroed(n as usize), false)
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

fn check_block_size(spec: &BackstoreSpec) -> Result<(), String> {
    if spec.block_size != 512 && spec.block_size != 4096 {
        return Err("block_size must be 512 or 4096".into());
    }
    Ok(())
}

/// Reads into the spare capacity of `buf` from `offset + buf.len()` until it is full
/// (without zero-filling it first: a 1 MiB read would otherwise write every byte twice);
/// bytes past the end of the file read as zeros. `flags` go to `preadv2`: with
/// `RWF_NOWAIT`, what was read stays in `buf` when the rest fails with EAGAIN.
fn read_into(f: &File, buf: &mut IoBuf, offset: u64, flags: libc::c_int) -> std::io::Result<()> {
    loop {
        let (p, n) = buf.spare();
        if n == 0 {
            return Ok(());
        }
        let iov = libc::iovec {
            iov_base: p.cast(),
            iov_len: n,
        };
        // SAFETY: preadv2 writes at most `n` bytes into memory the buffer owns and nothing
        // else references; only the bytes it reports are then marked in use.
        let r = unsafe {
            libc::preadv2(
                f.as_raw_fd(),
                &iov,
                1,
                (offset + buf.len() as u64) as libc::off_t,
                flags,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            buf.zero_fill(); // past the end of the file
            return Ok(());
        }
        // SAFETY: the kernel initialized `r` bytes of the spare capacity.
        unsafe { buf.advance(r as usize) };
    }
}

/// One `pwritev2` of `data` at `offset` with `flags`; the bytes it wrote.
fn write_some(f: &File, data: &[u8], offset: u64, flags: libc::c_int) -> std::io::Result<usize> {
    loop {
        let iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        // SAFETY: one iovec over memory borrowed for the duration of the call.
        let n = unsafe { libc::pwritev2(f.as_raw_fd(), &iov, 1, offset as libc::off_t, flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Writes all of `data` at `offset` with `flags` (`RWF_DSYNC`: durable on return).
fn write_all(f: &File, data: &[u8], offset: u64, flags: libc::c_int) -> std::io::Result<()> {
    let mut done = 0usize;
    while done < data.len() {
        let n = write_some(f, &data[done..], offset + done as u64, flags)?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
        }
        done += n;
    }
    Ok(())
}

/// Whether `file` is a regular file on a file system whose storage is memory (tmpfs,
/// ramfs): its I/O never waits for a device. A device node is never memory, although
/// `/dev` itself is a devtmpfs that `fstatfs` reports as tmpfs: a read of `/dev/md0`
/// waits for the disks and must not run in a connection's task.
fn is_memory(file: &File) -> bool {
    if !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one statfs into the valid pointer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) } != 0 {
        return false;
    }
    /// `RAMFS_MAGIC` of linux/magic.h (not in the libc crate).
    const RAMFS_MAGIC: libc::c_long = 0x8584_58f6;
    matches!(st.f_type, libc::TMPFS_MAGIC | RAMFS_MAGIC)
}

/// Opens `path` with `flags`, as `std` would (read-write, close-on-exec).
/// The error of opening backstore `name` at `path`, with the path in the message (what
/// `status` and the log show).
fn open_error(name: &str, path: &Path) -> impl Fn(std::io::Error) -> BackstoreError {
    let (name, path) = (name.to_string(), path.display().to_string());
    move |e| BackstoreError::Open {
        name: name.clone(),
        source: std::io::Error::new(e.kind(), format!("{path}: {e}")),
    }
}

fn open_rw(path: &Path, flags: libc::c_int, create: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .custom_flags(libc::O_CLOEXEC | flags)
        .open(path)
}

/// `O_DSYNC` for write-through, `O_DIRECT` for direct.
fn open_flags(spec: &BackstoreSpec, cache: CacheMode) -> libc::c_int {
    let mut flags = 0;
    if !spec.write_cache {
        flags |= libc::O_DSYNC;
    }
    if cache == CacheMode::Direct {
        flags |= libc::O_DIRECT;
    }
    flags
}

#[cfg(test)]
mod tests;
