//! ramdisk: an anonymous memory file (`memfd_create`), sized with `ftruncate`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;

/// Creates a memfd named after the backstore, `size` bytes long, all zeros.
pub(super) fn create(name: &str, size: u64) -> io::Result<File> {
    let cname = CString::new(format!("rustiscsi:{}", name.replace('\0', "")))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `cname` is a valid NUL-terminated string; the returned fd is owned below.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(size)?;
    Ok(file)
}
