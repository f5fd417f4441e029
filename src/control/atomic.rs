//! Replacing a file atomically, keeping rotated backups (`FILE.1` newest .. `FILE.N`).
//!
//! The new content goes to a temporary file in the same directory, is fsynced, and is
//! renamed over the target; then the directory is fsynced. Before that, the current file
//! becomes `FILE.1` (by a hard link, so `FILE` never disappears), `FILE.1` becomes
//! `FILE.2`, and so on; `FILE.N` is dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many backups `saveconfig` keeps.
pub const DEFAULT_BACKUPS: usize = 5;

/// `FILE.n`.
pub fn backup_path(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Writes `contents` to `path` atomically, keeping up to `keep` backups of the previous
/// versions. A new file gets `mode`; a replaced one keeps its permissions. Returns the
/// backups that exist afterwards, newest first.
pub fn write_with_backups(
    path: &Path,
    contents: &[u8],
    keep: usize,
    mode: u32,
) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let existing = match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is a directory", path.display()),
            ));
        }
        Ok(m) => Some(m.permissions().mode() & 0o7777),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };

    // Write the new content first: if this fails, nothing has moved.
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(existing.unwrap_or(mode))
            .open(&tmp)?;
        // The umask may have narrowed the mode: set it exactly.
        f.set_permissions(fs::Permissions::from_mode(existing.unwrap_or(mode)))?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }

    if existing.is_some() && keep > 0 {
        let _ = fs::remove_file(backup_path(path, keep));
        for n in (1..keep).rev() {
            let from = backup_path(path, n);
            if from.exists() {
                fs::rename(&from, backup_path(path, n + 1))?;
            }
        }
        let first = backup_path(path, 1);
        let _ = fs::remove_file(&first);
        if fs::hard_link(path, &first).is_err() {
            fs::copy(path, &first)?;
        }
    }

    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&dir)?.sync_all()?;
    Ok((1..=keep)
        .map(|n| backup_path(path, n))
        .filter(|p| p.exists())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_then_rotates_up_to_keep() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rustiscsi.toml");
        let b = write_with_backups(&f, b"v0", 3, 0o640).unwrap();
        assert!(b.is_empty());
        assert_eq!(fs::read(&f).unwrap(), b"v0");
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        for i in 1..=5 {
            write_with_backups(&f, format!("v{i}").as_bytes(), 3, 0o600).unwrap();
        }
        assert_eq!(fs::read(&f).unwrap(), b"v5");
        assert_eq!(fs::read(backup_path(&f, 1)).unwrap(), b"v4");
        assert_eq!(fs::read(backup_path(&f, 2)).unwrap(), b"v3");
        assert_eq!(fs::read(backup_path(&f, 3)).unwrap(), b"v2");
        assert!(!backup_path(&f, 4).exists());
        // A replaced file keeps its mode.
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    }

    #[test]
    fn backup_is_a_separate_file_from_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        write_with_backups(&f, b"old", 5, 0o644).unwrap();
        let b = write_with_backups(&f, b"new", 5, 0o644).unwrap();
        assert_eq!(b, vec![backup_path(&f, 1)]);
        assert_eq!(fs::read(&b[0]).unwrap(), b"old");
        assert_eq!(fs::read(&f).unwrap(), b"new");
    }

    #[test]
    fn keep_zero_keeps_no_backups_and_errors_leave_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        write_with_backups(&f, b"a", 0, 0o644).unwrap();
        write_with_backups(&f, b"b", 0, 0o644).unwrap();
        assert!(!backup_path(&f, 1).exists());
        let missing = dir.path().join("no/such/dir/c.toml");
        assert!(write_with_backups(&missing, b"x", 5, 0o644).is_err());
        assert!(write_with_backups(dir.path(), b"x", 5, 0o644).is_err());
        assert_eq!(fs::read(&f).unwrap(), b"b");
    }
}
