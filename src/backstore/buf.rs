//! I/O buffers aligned for `O_DIRECT`, owned by a [`Bytes`] without a copy.
//!
//! Every backstore read lands in an [`IoBuf`] from [`io_buffer`], the one allocation
//! function (the pooled buffers of the data path can replace it), and the buffer becomes
//! the Data-In as [`Bytes`] through [`Bytes::from_owner`]: no copy between the device and
//! the socket writer.

use std::alloc::{Layout, alloc, dealloc};
use std::ptr::NonNull;

use bytes::Bytes;

/// Alignment of every I/O buffer: a page, which satisfies the memory alignment `O_DIRECT`
/// needs on every Linux block device and file system (at most the logical block size).
pub const IO_ALIGN: usize = 4096;

/// A heap buffer aligned to [`IO_ALIGN`], with a length (initialized bytes) and a capacity.
pub struct IoBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: IoBuf owns its allocation exclusively, like a Vec<u8>.
unsafe impl Send for IoBuf {}
// SAFETY: shared access only reads the initialized bytes.
unsafe impl Sync for IoBuf {}

impl std::fmt::Debug for IoBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

fn layout(cap: usize) -> Layout {
    Layout::from_size_align(cap.max(IO_ALIGN), IO_ALIGN).expect("I/O buffer size fits a Layout")
}

/// An empty, aligned buffer with room for `cap` bytes (uninitialized).
pub fn io_buffer(cap: usize) -> IoBuf {
    let l = layout(cap);
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { alloc(l) };
    let Some(ptr) = NonNull::new(p) else {
        std::alloc::handle_alloc_error(l)
    };
    IoBuf { ptr, len: 0, cap }
}

impl IoBuf {
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

    /// Initialized length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is initialized.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Pointer to the first byte past the initialized ones, and how many bytes fit there.
    pub(crate) fn spare(&mut self) -> (*mut u8, usize) {
        // SAFETY: len <= cap, inside the allocation.
        (
            unsafe { self.ptr.as_ptr().add(self.len) },
            self.cap - self.len,
        )
    }

    /// Marks `n` more bytes as initialized.
    ///
    /// # Safety
    /// The `n` bytes after the current length must have been written.
    pub(crate) unsafe fn advance(&mut self, n: usize) {
        debug_assert!(self.len + n <= self.cap);
        self.len += n;
    }

    /// Fills the rest of the capacity with zeros (bytes past the end of a file).
    pub(crate) fn zero_fill(&mut self) {
        let (p, n) = self.spare();
        // SAFETY: `n` bytes from `p` are inside the allocation.
        unsafe { std::ptr::write_bytes(p, 0, n) };
        self.len = self.cap;
    }

    /// The buffer as [`Bytes`], without a copy.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for IoBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for IoBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `io_buffer` with this very layout.
        unsafe { dealloc(self.ptr.as_ptr(), layout(self.cap)) };
    }
}

/// Whether `data` can be handed to `O_DIRECT` as it is.
pub(crate) fn is_aligned(data: &[u8]) -> bool {
    (data.as_ptr() as usize) % IO_ALIGN == 0
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
        assert!(is_aligned(&bytes));
        let c = IoBuf::copy_from(&[7; 5]);
        assert_eq!(c.as_ref(), &[7; 5]);
        assert_eq!(io_buffer(0).capacity(), 0);
    }
}
