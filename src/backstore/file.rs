//! fileio: a regular file, sparse, grown (never shrunk) to the configured size; also the
//! hole-punching and extent queries shared with the memfd ramdisk.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::claim::{self, Key};
use super::{
    BackstoreError, BackstoreSpec, CacheMode, Extent, OpenOptions, Opened, open_error, open_flags,
    open_rw, sysfs,
};

/// Opens or creates the file at `path`, locks it, grows it to the configured size when it
/// is smaller. A missing file is created only when `opts.may_create` and a size is set.
pub(super) fn open(
    spec: &BackstoreSpec,
    path: &Path,
    cache: CacheMode,
    opts: &OpenOptions,
) -> Result<Opened, BackstoreError> {
    let name = &spec.name;
    let open_err = &open_error(name, path);
    let exists = match std::fs::metadata(path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(open_err(e)),
    };
    if !exists {
        let why = if !opts.may_create {
            "it existed before, so it is not created again (is its file system mounted?)"
        } else if spec.size.is_none() {
            "no size is configured to create it"
        } else {
            ""
        };
        if !why.is_empty() {
            return Err(BackstoreError::Open {
                name: name.clone(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} does not exist; {why}", path.display()),
                ),
            });
        }
    }
    let file = open_rw(path, open_flags(spec, cache), !exists).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() {
        return Err(BackstoreError::Invalid {
            name: name.clone(),
            reason: format!("{} is not a regular file", path.display()),
        });
    }
    let key = Key::of(&meta);
    let in_use = |c: claim::Conflict| BackstoreError::InUse {
        name: name.clone(),
        path: path.to_path_buf(),
        by: c.to_string(),
    };
    let claim = match claim::existing(key, name, &opts.share_with).map_err(in_use)? {
        Some(c) => c,
        None => {
            claim::lock_file(&file).map_err(open_err)?.map_err(in_use)?;
            claim::register(key, name, path, &file).map_err(in_use)?
        }
    };
    let mut len = meta.len();
    if let Some(size) = spec.size
        && len < size
    {
        file.set_len(size).map_err(open_err)?;
        len = size;
    }
    if cache == CacheMode::Direct {
        probe_direct(&file, spec.block_size).map_err(|e| BackstoreError::Invalid {
            name: name.clone(),
            reason: format!(
                "cache = \"direct\": {} refuses O_DIRECT I/O of {}-byte blocks ({e}); \
                 use cache = \"buffered\" or a larger block_size",
                path.display(),
                spec.block_size
            ),
        })?;
    }
    Ok(Opened {
        file,
        block_size: spec.block_size,
        size: len,
        discard: true,
        limits: sysfs::for_file(meta.dev(), meta.blksize()),
        key: Some(key),
        claim: Some(claim),
    })
}

/// One aligned `O_DIRECT` read of a block: file systems refuse misaligned direct I/O with
/// EINVAL, better learnt at open than on the first command.
fn probe_direct(f: &File, block_size: u32) -> io::Result<()> {
    let mut b = super::io_buffer(block_size as usize);
    super::read_into(f, &mut b, 0, 0)
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
