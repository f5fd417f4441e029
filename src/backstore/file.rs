//! fileio: a regular file, sparse, grown (never shrunk) to the configured size; also the
//! hole-punching and extent queries shared with the memfd ramdisk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::Extent;

/// Opens or creates the file at `path`, grows it to `size` when it is smaller, and
/// returns it with its length. Write-through (`O_DSYNC`) unless `write_cache`.
pub(super) fn open(path: &Path, size: Option<u64>, write_cache: bool) -> io::Result<(File, u64)> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true);
    let mut flags = libc::O_CLOEXEC;
    if !write_cache {
        flags |= libc::O_DSYNC;
    }
    opts.custom_flags(flags);
    let file = opts.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut len = meta.len();
    if let Some(size) = size
        && len < size
    {
        file.set_len(size)?;
        len = size;
    }
    Ok((file, len))
}

/// Deallocates `len` bytes at `offset` without changing the file size.
pub(super) fn punch_hole(f: &File, offset: u64, len: u64) -> io::Result<()> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let len = i64::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall on a valid, owned file descriptor.
    let rc = unsafe {
        libc::fallocate(
            f.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off,
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Writes `len` zero bytes at `offset` in chunks of at most 1 MiB.
pub(super) fn zero_fill(f: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; len.min(CHUNK) as usize];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(CHUNK) as usize;
        f.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

fn seek(f: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = i64::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain syscall on a valid, owned file descriptor; positioned I/O elsewhere
    // never depends on the file offset this moves.
    let rc = unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    if rc >= 0 {
        return Ok(Some(rc as u64));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Whether `offset` is in data or a hole, and the run length (capped at `max_len`).
pub(super) fn extent(f: &File, offset: u64, max_len: u64) -> io::Result<Extent> {
    let (mapped, len) = match seek(f, offset, libc::SEEK_DATA) {
        Ok(None) => (false, max_len),
        Ok(Some(data)) if data > offset => (false, data - offset),
        Ok(Some(_)) => match seek(f, offset, libc::SEEK_HOLE)? {
            Some(hole) if hole > offset => (true, hole - offset),
            _ => (true, max_len),
        },
        // File systems without SEEK_DATA: everything is data.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (true, max_len),
        Err(e) => return Err(e),
    };
    Ok(Extent {
        mapped,
        len: len.min(max_len),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn zero_fill_overwrites() {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&vec![0xffu8; 3 << 20], 0).unwrap();
        zero_fill(&f, 100, (2 << 20) + 5).unwrap();
        let mut buf = vec![0u8; 3 << 20];
        f.read_exact_at(&mut buf, 0).unwrap();
        assert!(buf[..100].iter().all(|&b| b == 0xff));
        assert!(buf[100..100 + (2 << 20) + 5].iter().all(|&b| b == 0));
        assert!(buf[100 + (2 << 20) + 5..].iter().all(|&b| b == 0xff));
    }
}
