//! Data buffers of the I/O path: aligned for `O_DIRECT`, pooled, owned by a [`Bytes`]
//! without a copy.
//!
//! Every buffer that carries command data is an [`IoBuf`]: write data as it arrives from
//! the socket (the session's sinks), the backstore's reads (handed out as Data-In through
//! [`IoBuf::into_bytes`], so nothing is copied between the device and the socket writer).
//! One type for both means a write under `O_DIRECT` goes to the device from the buffer the
//! socket filled, and the protocol layer needs nothing from the storage layer to get it.
//!
//! Buffers come from a process-wide pool of power-of-two size classes (4 KiB to 16 MiB)
//! and go back to it when dropped, so a stream of 1 MiB commands reuses a few resident
//! buffers instead of mapping, faulting in and unmapping fresh memory for each. The pool
//! keeps at most [`POOL_CLASS_BYTES`] idle per class and [`POOL_BYTES`] in all; larger
//! requests and overflow go to and from the allocator directly. [`trim`] (the daemon calls
//! it every few seconds) frees what stayed idle over a whole period, so memory a burst or a
//! peer that left made resident goes back to the system.
//!
//! Contents: a fresh buffer is zeroed once when allocated; a recycled one holds what its
//! last user left (data of this process, never uninitialized memory). [`IoBuf::filled`]
//! hands out such bytes, for sinks that are written in full before they are read (the
//! session executes a write only once Data-Out covered every byte); [`IoBuf::zeroed`]
//! clears them.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// Alignment of every I/O buffer: a page, which satisfies the memory alignment `O_DIRECT`
/// needs on every Linux block device and file system (at most the logical block size).
pub const IO_ALIGN: usize = 4096;
/// Smallest pooled class (log2).
const MIN_CLASS: u32 = 12;
/// Largest pooled class (log2): 16 MiB.
const MAX_CLASS: u32 = 24;
const CLASSES: usize = (MAX_CLASS - MIN_CLASS + 1) as usize;
/// Idle bytes the pool keeps per size class at most.
pub const POOL_CLASS_BYTES: usize = 32 << 20;
/// Idle bytes the pool keeps in all at most.
pub const POOL_BYTES: usize = 64 << 20;
/// Marks a buffer that is not the pool's (too large, or empty).
const UNPOOLED: u8 = u8::MAX;

struct Pool {
    free: [Mutex<Free>; CLASSES],
    idle: AtomicUsize,
}

/// The idle buffers of one class, and the fewest there were since the last [`trim`]
/// (that many were not needed during the whole period).
struct Free {
    bufs: Vec<NonNull<u8>>,
    low: usize,
}

// SAFETY: the pointers are owned, unaliased allocations only handed out under the lock.
unsafe impl Sync for Pool {}
// SAFETY: as above.
unsafe impl Send for Pool {}

static POOL: Pool = Pool {
    free: [const {
        Mutex::new(Free {
            bufs: Vec::new(),
            low: 0,
        })
    }; CLASSES],
    idle: AtomicUsize::new(0),
};

fn class_of(cap: usize) -> Option<u8> {
    let bits = cap
        .max(1)
        .next_power_of_two()
        .trailing_zeros()
        .max(MIN_CLASS);
    (bits <= MAX_CLASS).then(|| (bits - MIN_CLASS) as u8)
}

fn class_size(class: u8) -> usize {
    1 << (u32::from(class) + MIN_CLASS)
}

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, IO_ALIGN).expect("I/O buffer size fits a Layout")
}

fn allocate(size: usize) -> NonNull<u8> {
    let l = layout(size);
    // SAFETY: the layout has a non-zero size (callers never ask for 0).
    let p = unsafe { alloc_zeroed(l) };
    NonNull::new(p).unwrap_or_else(|| std::alloc::handle_alloc_error(l))
}

fn lock(class: u8) -> std::sync::MutexGuard<'static, Free> {
    POOL.free[usize::from(class)]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Frees the buffers no one took since the previous call (each class's low-water mark) and
/// returns how many bytes went back to the allocator. Called periodically, it bounds how
/// long idle memory stays resident to two periods.
pub fn trim() -> usize {
    (0..CLASSES as u8).map(trim_class).sum()
}

fn trim_class(class: u8) -> usize {
    let size = class_size(class);
    let mut free = lock(class);
    let n = free.low.min(free.bufs.len());
    for p in free.bufs.drain(..n) {
        // SAFETY: allocated in `allocate` with the class size, owned by the pool.
        unsafe { dealloc(p.as_ptr(), layout(size)) };
    }
    free.low = free.bufs.len();
    drop(free);
    POOL.idle.fetch_sub(n * size, Ordering::Relaxed);
    n * size
}

/// Bytes held idle by the pool now.
pub fn pool_idle_bytes() -> usize {
    POOL.idle.load(Ordering::Relaxed)
}

/// A heap buffer aligned to [`IO_ALIGN`], with a length (the bytes in use) and a capacity.
pub struct IoBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
    class: u8,
}

// SAFETY: IoBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for IoBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for IoBuf {}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

impl Default for IoBuf {
    fn default() -> Self {
        IoBuf::new()
    }
}

/// An empty buffer with room for `cap` bytes.
pub fn io_buffer(cap: usize) -> IoBuf {
    if cap == 0 {
        return IoBuf::new();
    }
    match class_of(cap) {
        Some(class) => {
            let recycled = {
                let mut free = lock(class);
                let p = free.bufs.pop();
                free.low = free.low.min(free.bufs.len());
                p
            };
            let ptr = match recycled {
                Some(p) => {
                    POOL.idle.fetch_sub(class_size(class), Ordering::Relaxed);
                    p
                }
                None => allocate(class_size(class)),
            };
            IoBuf {
                ptr,
                len: 0,
                cap,
                class,
            }
        }
        None => IoBuf {
            ptr: allocate(cap),
            len: 0,
            cap,
            class: UNPOOLED,
        },
    }
}

impl IoBuf {
    /// An empty buffer that owns no memory.
    pub const fn new() -> IoBuf {
        IoBuf {
            ptr: NonNull::dangling(),
            len: 0,
            cap: 0,
            class: UNPOOLED,
        }
    }

    /// A buffer of `len` bytes whose contents are unspecified (zeros, or what a previous
    /// user of the memory left): for a sink that is written in full before it is read.
    pub fn filled(len: usize) -> IoBuf {
        let mut b = io_buffer(len);
        b.len = len; // every byte of a pooled or fresh allocation is initialized
        b
    }

    /// A buffer of `len` zero bytes.
    pub fn zeroed(len: usize) -> IoBuf {
        let mut b = io_buffer(len);
        b.zero_fill();
        b
    }

    /// An aligned copy of `data`.
    pub fn copy_from(data: &[u8]) -> IoBuf {
        let mut b = io_buffer(data.len());
        // SAFETY: the buffer has room for `data.len()` bytes and does not overlap `data`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), b.ptr.as_ptr(), data.len());
        }
        b.len = data.len();
        b
    }

    /// Length in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Shortens the buffer to `len` bytes (no effect if it is not longer).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Pointer to the first byte past the ones in use, and how many bytes fit there.
    pub fn spare(&mut self) -> (*mut u8, usize) {
        // SAFETY: len <= cap, inside the allocation (or 0 on the dangling pointer).
        (
            unsafe { self.ptr.as_ptr().add(self.len) },
            self.cap - self.len,
        )
    }

    /// Marks `n` more bytes as in use.
    ///
    /// # Safety
    /// The `n` bytes after the current length must have been written.
    pub unsafe fn advance(&mut self, n: usize) {
        debug_assert!(self.len + n <= self.cap);
        self.len += n;
    }

    /// Fills the rest of the capacity with zeros (bytes past the end of a file).
    pub fn zero_fill(&mut self) {
        let (p, n) = self.spare();
        // SAFETY: `n` bytes from `p` are inside the allocation.
        unsafe { std::ptr::write_bytes(p, 0, n) };
        self.len = self.cap;
    }

    /// The buffer as [`Bytes`], without a copy (the memory goes back to the pool when the
    /// last `Bytes` of it is dropped).
    pub fn into_bytes(self) -> Bytes {
        if self.cap == 0 {
            return Bytes::new();
        }
        Bytes::from_owner(self)
    }

    /// Whether the data can be handed to `O_DIRECT` as it is.
    pub fn is_aligned(data: &[u8]) -> bool {
        (data.as_ptr() as usize) % IO_ALIGN == 0
    }
}

impl From<Vec<u8>> for IoBuf {
    /// An aligned copy (for tests and cold paths).
    fn from(v: Vec<u8>) -> IoBuf {
        IoBuf::copy_from(&v)
    }
}

impl From<&[u8]> for IoBuf {
    fn from(v: &[u8]) -> IoBuf {
        IoBuf::copy_from(v)
    }
}

impl std::ops::Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized (and 0 bytes of a dangling pointer
        // make a valid empty slice).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `deref`; the buffer is borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl AsRef<[u8]> for IoBuf {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl PartialEq for IoBuf {
    fn eq(&self, other: &IoBuf) -> bool {
        **self == **other
    }
}

impl Eq for IoBuf {}

impl PartialEq<Vec<u8>> for IoBuf {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}

impl PartialEq<[u8]> for IoBuf {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        if self.cap == 0 {
            return;
        }
        if self.class != UNPOOLED {
            let size = class_size(self.class);
            let kept = POOL.idle.load(Ordering::Relaxed) + size <= POOL_BYTES && {
                let mut free = lock(self.class);
                let room = (free.bufs.len() + 1) * size <= POOL_CLASS_BYTES;
                if room {
                    free.bufs.push(self.ptr);
                }
                room
            };
            if kept {
                POOL.idle.fetch_add(size, Ordering::Relaxed);
                return;
            }
            // SAFETY: allocated in `allocate` with the class size.
            unsafe { dealloc(self.ptr.as_ptr(), layout(size)) };
            return;
        }
        // SAFETY: allocated in `allocate` with exactly `cap` bytes.
        unsafe { dealloc(self.ptr.as_ptr(), layout(self.cap)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zero_copy() {
        let mut b = io_buffer(10000);
        assert!(b.is_empty());
        assert_eq!((b.ptr.as_ptr() as usize) % IO_ALIGN, 0);
        let (p, n) = b.spare();
        assert_eq!(n, 10000);
        // SAFETY: writing 3 bytes into the spare capacity, then advancing over them.
        unsafe {
            std::ptr::copy_nonoverlapping([1u8, 2, 3].as_ptr(), p, 3);
            b.advance(3);
        }
        b.zero_fill();
        assert_eq!(b.len(), 10000);
        let start = b.ptr.as_ptr() as usize;
        let bytes = b.into_bytes();
        assert_eq!(bytes.as_ptr() as usize, start, "no copy");
        assert_eq!(&bytes[..4], &[1, 2, 3, 0]);
        assert!(IoBuf::is_aligned(&bytes));
        let c = IoBuf::copy_from(&[7; 5]);
        assert_eq!(&*c, &[7; 5]);
        assert_eq!(io_buffer(0).capacity(), 0);
        assert!(IoBuf::new().into_bytes().is_empty());
    }

    #[test]
    fn recycled_buffers_come_back_and_zeroed_clears() {
        // A class no other test uses (8 MiB), so nobody takes the buffer in between.
        let n = (8 << 20) - 100;
        let mut a = IoBuf::filled(n);
        a.fill(0xab);
        let p = a.ptr;
        drop(a);
        let b = IoBuf::filled(n);
        assert_eq!(b.ptr, p, "the pool hands the same memory back");
        assert_eq!(b[0], 0xab, "recycled contents are what was left");
        drop(b);
        let z = IoBuf::zeroed(n);
        assert_eq!(z.ptr, p);
        assert!(z.iter().all(|&x| x == 0));
        // Larger than the largest class: not pooled, still aligned.
        let big = IoBuf::zeroed((16 << 20) + 1);
        assert!(IoBuf::is_aligned(&big));
        assert_eq!(big.class, UNPOOLED);
    }

    #[test]
    fn pool_is_bounded() {
        // 64 KiB class: at most POOL_CLASS_BYTES idle, whatever is dropped.
        let bufs: Vec<IoBuf> = (0..(POOL_CLASS_BYTES / 65536) + 50)
            .map(|_| IoBuf::filled(65536))
            .collect();
        drop(bufs);
        assert!(lock(class_of(65536).unwrap()).bufs.len() * 65536 <= POOL_CLASS_BYTES);
        assert!(pool_idle_bytes() <= POOL_BYTES);
    }

    #[test]
    fn trim_frees_what_stayed_idle_for_a_whole_period() {
        // The 4 MiB class, used by no other test.
        let n = (4 << 20) - 100;
        let class = class_of(n).unwrap();
        let bufs: Vec<IoBuf> = (0..4).map(|_| IoBuf::filled(n)).collect();
        drop(bufs);
        assert_eq!(lock(class).bufs.len(), 4, "back in the pool");
        // Taken during the period: only what was never taken is freed.
        trim_class(class);
        let one = IoBuf::filled(n);
        assert_eq!(
            trim_class(class),
            3 * (4 << 20),
            "three stayed idle all period"
        );
        drop(one);
        assert_eq!(trim_class(class), 0, "the one in use was needed");
        assert_eq!(trim_class(class), 4 << 20, "and is freed a period later");
        assert!(lock(class).bufs.is_empty());
    }

    #[test]
    fn classes() {
        assert_eq!(class_of(1), Some(0));
        assert_eq!(class_of(4096), Some(0));
        assert_eq!(class_of(4097), Some(1));
        assert_eq!(class_of(1 << 20), Some(8));
        assert_eq!(class_of(16 << 20), Some(12));
        assert_eq!(class_of((16 << 20) + 1), None);
    }
}
