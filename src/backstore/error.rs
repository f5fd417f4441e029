//! Backstore errors, and what each OS error means for the storage (its [`Cause`]): the
//! SCSI layer turns a cause into sense data in one function (`scsi::sbc::io_sense`).

use std::path::PathBuf;

/// A failed backstore operation; each I/O variant wraps the OS error as its source.
#[derive(Debug, thiserror::Error)]
pub enum BackstoreError {
    /// Opening the storage failed for a reason that may pass (missing path, device not
    /// assembled, permissions): the backstore stays offline and is retried.
    #[error("cannot open backstore {name}: {source}")]
    Open {
        /// Backstore name.
        name: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The device or file is there but has no room for one block (an md array not
    /// assembled, an unattached loop device): offline, retried.
    #[error("backstore {name}: {path} has {size} bytes, less than one {block_size}-byte block")]
    Empty {
        /// Backstore name.
        name: String,
        /// Its path.
        path: PathBuf,
        /// Size found.
        size: u64,
        /// Block size wanted.
        block_size: u32,
    },
    /// The storage is used by another backstore of this daemon or by something else.
    #[error("backstore {name}: refusing {path}: {by}")]
    InUse {
        /// Backstore name.
        name: String,
        /// Its path.
        path: PathBuf,
        /// Who uses it.
        by: String,
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
    /// A read of bytes whose last write failed (buffered I/O: the page cache may hold
    /// data the storage does not), refused until they are written again.
    #[error("read of bytes {offset}..{end} refused: a write there failed and they were not rewritten since", end = offset + len)]
    PendingWriteError {
        /// First byte of the failed range that the read touches.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

/// What an error says about the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The medium failed (EIO and relatives, a pending write error): MEDIUM ERROR.
    Medium,
    /// No space left (ENOSPC, EDQUOT) on thin storage: SPACE ALLOCATION FAILED.
    NoSpace,
    /// The storage became read-only (EROFS: the file system remounted itself).
    ReadOnly,
    /// The device or file is gone (ENODEV, ENXIO, ESTALE, ...): the unit goes offline.
    Gone,
    /// Anything else: a fault of the target itself.
    Internal,
}

/// The cause behind OS error `errno`.
pub fn cause_of(errno: i32) -> Cause {
    match errno {
        libc::EIO
        | libc::EBADMSG
        | libc::EUCLEAN
        | libc::EILSEQ
        | libc::ENODATA
        | libc::ETIMEDOUT
        | libc::EREMOTEIO => Cause::Medium,
        libc::ENOSPC | libc::EDQUOT => Cause::NoSpace,
        libc::EROFS => Cause::ReadOnly,
        libc::ENODEV
        | libc::ENXIO
        | libc::ESTALE
        | libc::ENOMEDIUM
        | libc::ENOTCONN
        | libc::ESHUTDOWN
        | libc::ENOENT => Cause::Gone,
        _ => Cause::Internal,
    }
}

impl BackstoreError {
    /// The OS error number behind the failure, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            BackstoreError::Open { source, .. }
            | BackstoreError::Read(source)
            | BackstoreError::Write(source)
            | BackstoreError::Flush(source)
            | BackstoreError::Discard(source) => source.raw_os_error(),
            BackstoreError::PendingWriteError { .. } => Some(libc::EIO),
            BackstoreError::Empty { .. } => Some(libc::ENXIO),
            BackstoreError::InUse { .. } => Some(libc::EBUSY),
            BackstoreError::Invalid { .. } => None,
        }
    }

    /// What the failure says about the storage.
    pub fn cause(&self) -> Cause {
        match self {
            BackstoreError::PendingWriteError { .. } => Cause::Medium,
            _ => self.raw_os_error().map_or(Cause::Internal, cause_of),
        }
    }

    /// Whether an open failure may pass by itself (offline and retried) rather than being
    /// a configuration error (refused).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackstoreError::Open { .. } | BackstoreError::Empty { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes() {
        for e in [libc::EIO, libc::EBADMSG, libc::EUCLEAN, libc::ETIMEDOUT] {
            assert_eq!(cause_of(e), Cause::Medium, "{e}");
        }
        assert_eq!(cause_of(libc::ENOSPC), Cause::NoSpace);
        assert_eq!(cause_of(libc::EDQUOT), Cause::NoSpace);
        assert_eq!(cause_of(libc::EROFS), Cause::ReadOnly);
        for e in [libc::ENODEV, libc::ENXIO, libc::ESTALE, libc::ENOTCONN] {
            assert_eq!(cause_of(e), Cause::Gone, "{e}");
        }
        assert_eq!(cause_of(libc::EINVAL), Cause::Internal);
        assert_eq!(
            BackstoreError::PendingWriteError { offset: 0, len: 1 }.cause(),
            Cause::Medium
        );
        assert_eq!(
            BackstoreError::Invalid {
                name: "x".into(),
                reason: "y".into()
            }
            .cause(),
            Cause::Internal
        );
    }
}
