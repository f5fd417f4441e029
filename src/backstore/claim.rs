//! Exclusive use of a backstore's file or device.
//!
//! A file is locked with an open file description lock (`F_OFD_SETLK`, write, whole file),
//! a block device is opened with `O_EXCL`: a second daemon, or `mount`, `mdadm` and LVM,
//! cannot use it while we do, and we refuse one that they hold. Inside the daemon a table
//! keyed by device and inode (a file reached by two paths, a device by a symlink and its
//! node, is one entry) refuses a second backstore on the same storage, while a backstore
//! reopened under its own name (a reload that changes its cache settings, a device that
//! comes back) shares the claim it already holds.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// What a claim is keyed by: (device, inode) of a file, or the device number of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    /// A regular file.
    File { dev: u64, ino: u64 },
    /// A block device.
    Block { rdev: u64 },
}

impl Key {
    /// The key of what `meta` describes.
    pub(crate) fn of(meta: &std::fs::Metadata) -> Key {
        if meta.file_type().is_block_device() {
            Key::Block { rdev: meta.rdev() }
        } else {
            Key::File {
                dev: meta.dev(),
                ino: meta.ino(),
            }
        }
    }
}

/// A held claim; released when the last backstore using it is dropped.
#[derive(Debug)]
pub(crate) struct Claim {
    key: Key,
    owner: String,
    path: PathBuf,
    /// A duplicate of the descriptor that holds the lock (or was opened `O_EXCL`).
    _fd: File,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
        if t.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            t.remove(&self.key);
        }
    }
}

fn table() -> &'static Mutex<HashMap<Key, Weak<Claim>>> {
    static T: std::sync::OnceLock<Mutex<HashMap<Key, Weak<Claim>>>> = std::sync::OnceLock::new();
    T.get_or_init(Default::default)
}

/// Who already uses the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Conflict {
    /// Another backstore of this daemon.
    Backstore { name: String, path: PathBuf },
    /// Something outside the daemon; what is known about it.
    Outside(String),
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Conflict::Backstore { name, path } => write!(
                f,
                "it is the same storage as backstore {name:?} ({})",
                path.display()
            ),
            Conflict::Outside(who) => write!(f, "it is in use by {who}"),
        }
    }
}

/// The claim a backstore named `name` may share for `key`: its own, or one held by a
/// backstore of `share_with` (a backstore being replaced). `Err` when another backstore of
/// this daemon holds it; `Ok(None)` when nobody here does.
pub(crate) fn existing(
    key: Key,
    name: &str,
    share_with: &[String],
) -> Result<Option<Arc<Claim>>, Conflict> {
    let t = table().lock().unwrap_or_else(|e| e.into_inner());
    match t.get(&key).and_then(Weak::upgrade) {
        None => Ok(None),
        Some(c) if c.owner == name || share_with.iter().any(|s| *s == c.owner) => Ok(Some(c)),
        Some(c) => Err(Conflict::Backstore {
            name: c.owner.clone(),
            path: c.path.clone(),
        }),
    }
}

/// Records a new claim for `file` (already locked or opened `O_EXCL`).
pub(crate) fn register(
    key: Key,
    name: &str,
    path: &Path,
    file: &File,
) -> Result<Arc<Claim>, Conflict> {
    let fd = file
        .try_clone()
        .map_err(|e| Conflict::Outside(format!("nothing known (dup failed: {e})")))?;
    let mut t = table().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = t.get(&key).and_then(Weak::upgrade) {
        return Err(Conflict::Backstore {
            name: c.owner.clone(),
            path: c.path.clone(),
        });
    }
    let c = Arc::new(Claim {
        key,
        owner: name.to_string(),
        path: path.to_path_buf(),
        _fd: fd,
    });
    t.insert(key, Arc::downgrade(&c));
    Ok(c)
}

/// Takes a write lock on the whole of `file` (an OFD lock: owned by this open file
/// description, so it also conflicts with a second open inside this process).
/// `Err(Conflict)` names the holder when the lock is taken.
pub(crate) fn lock_file(file: &File) -> io::Result<Result<(), Conflict>> {
    // SAFETY: an all-zero flock is a valid value; the fields that matter are set below.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl on a valid descriptor with a pointer to a valid flock.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    if rc == 0 {
        return Ok(Ok(()));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => {
            let meta = file.metadata()?;
            Ok(Err(Conflict::Outside(lock_holder(meta.dev(), meta.ino()))))
        }
        _ => Err(e),
    }
}

/// Who holds a lock on the file (dev, ino), from `/proc/*/fdinfo` lock lines.
fn lock_holder(dev: u64, ino: u64) -> String {
    let needle = format!("{:02x}:{:02x}:{ino} ", libc::major(dev), libc::minor(dev));
    let mine = std::process::id();
    for (pid, comm) in processes() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(info) = std::fs::read_to_string(fd.path()) else {
                continue;
            };
            if info
                .lines()
                .any(|l| l.starts_with("lock:") && l.contains("WRITE") && l.contains(&needle))
            {
                return if pid == mine {
                    format!("this daemon (pid {pid}, {comm})")
                } else {
                    format!("pid {pid} ({comm}), which holds a write lock on it")
                };
            }
        }
    }
    "another process holding a write lock on it (not visible from here)".into()
}

fn processes() -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "?".into());
            (pid, comm)
        })
}

/// Who holds the block device `rdev` when an `O_EXCL` open failed with `EBUSY`: a mount,
/// a stacked device (md, dm) or a process that has it open.
pub(crate) fn device_holder(rdev: u64) -> String {
    let (maj, min) = (libc::major(rdev), libc::minor(rdev));
    let majmin = format!("{maj}:{min}");
    if let Ok(m) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in m.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            if f.get(2) == Some(&majmin.as_str())
                && let Some(mp) = f.get(4)
            {
                return format!("a file system mounted at {mp}");
            }
        }
    }
    let holders: Vec<String> = std::fs::read_dir(format!("/sys/dev/block/{majmin}/holders"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !holders.is_empty() {
        return format!("{} (stacked on it)", holders.join(", "));
    }
    let mine = std::process::id();
    let mut users = Vec::new();
    for (pid, comm) in processes() {
        if pid == mine {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let uses = fds.flatten().any(|fd| {
            std::fs::metadata(fd.path())
                .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == rdev)
        });
        if uses {
            users.push(format!("pid {pid} ({comm})"));
        }
    }
    if users.is_empty() {
        "another exclusive user (not visible from here)".into()
    } else {
        format!("{} with the device open", users.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofd_lock_conflicts_across_descriptions_and_names_the_holder() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let a = File::options()
            .read(true)
            .write(true)
            .open(f.path())
            .unwrap();
        assert_eq!(lock_file(&a).unwrap(), Ok(()));
        let b = File::options()
            .read(true)
            .write(true)
            .open(f.path())
            .unwrap();
        match lock_file(&b).unwrap() {
            Err(Conflict::Outside(who)) => {
                assert!(who.contains(&std::process::id().to_string()), "{who}")
            }
            other => panic!("{other:?}"),
        }
        drop(a);
        assert_eq!(
            lock_file(&b).unwrap(),
            Ok(()),
            "released with its descriptor"
        );
    }

    #[test]
    fn table_refuses_other_names_and_shares_with_the_owner() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let key = Key::of(&f.as_file().metadata().unwrap());
        let c = register(key, "a", f.path(), f.as_file()).unwrap();
        assert!(existing(key, "a", &[]).unwrap().is_some());
        assert!(existing(key, "c", &["a".into()]).unwrap().is_some());
        match existing(key, "b", &[]) {
            Err(Conflict::Backstore { name, .. }) => assert_eq!(name, "a"),
            other => panic!("{other:?}"),
        }
        assert!(register(key, "b", f.path(), f.as_file()).is_err());
        drop(c);
        assert!(existing(key, "b", &[]).unwrap().is_none(), "released");
    }
}
