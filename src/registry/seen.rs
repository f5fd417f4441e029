//! The fileio files this daemon has opened (`<state_dir>/fileio-seen.json`): a file that is
//! missing but was seen before is not created again (its file system is probably not
//! mounted yet); the backstore waits offline for it instead of serving an empty disk.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The set of fileio paths seen, under a state dir.
#[derive(Debug)]
pub struct SeenFiles {
    path: PathBuf,
    seen: BTreeSet<PathBuf>,
}

impl SeenFiles {
    /// Reads the set (empty when the file does not exist yet).
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let path = state_dir.join("fileio-seen.json");
        let seen = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        Ok(SeenFiles { path, seen })
    }

    /// Whether `file` was opened before.
    pub fn contains(&self, file: &Path) -> bool {
        self.seen.contains(file)
    }

    /// Records `file` (written at once: temp file, fsync, rename).
    pub fn add(&mut self, file: &Path) -> std::io::Result<()> {
        if !self.seen.insert(file.to_path_buf()) {
            return Ok(());
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.seen).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists() {
        let d = tempfile::tempdir().unwrap();
        let mut s = SeenFiles::open(d.path()).unwrap();
        assert!(!s.contains(Path::new("/a")));
        s.add(Path::new("/a")).unwrap();
        assert!(SeenFiles::open(d.path()).unwrap().contains(Path::new("/a")));
    }
}
