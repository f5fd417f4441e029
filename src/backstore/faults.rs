//! Test-only fault injection (compiled only under `cfg(test)`, so no configuration can
//! reach it): a backstore opened on a registered path fails its reads or writes on demand.
//! `write_lands` makes a failing write reach the page cache first, as a buffered write
//! whose writeback fails does in the kernel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// Faults of one path; 0 = no fault, else the errno to fail with.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub reads: AtomicI32,
    pub writes: AtomicI32,
    pub flushes: AtomicI32,
    pub write_lands: AtomicBool,
    /// Writes take this long (milliseconds) on the blocking pool before they land.
    pub write_delay_ms: std::sync::atomic::AtomicU64,
}

impl Faults {
    fn get(a: &AtomicI32) -> Option<std::io::Error> {
        match a.load(Ordering::SeqCst) {
            0 => None,
            e => Some(std::io::Error::from_raw_os_error(e)),
        }
    }
    pub(crate) fn read(&self) -> Option<std::io::Error> {
        Self::get(&self.reads)
    }
    pub(crate) fn write(&self) -> Option<std::io::Error> {
        Self::get(&self.writes)
    }
    pub(crate) fn flush(&self) -> Option<std::io::Error> {
        Self::get(&self.flushes)
    }
    pub(crate) fn write_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.write_delay_ms.load(Ordering::SeqCst))
    }
}

fn table() -> &'static Mutex<HashMap<PathBuf, Arc<Faults>>> {
    static T: OnceLock<Mutex<HashMap<PathBuf, Arc<Faults>>>> = OnceLock::new();
    T.get_or_init(Default::default)
}

/// The faults of backstores opened on `path` from now on.
pub(crate) fn inject(path: &Path) -> Arc<Faults> {
    table()
        .lock()
        .unwrap()
        .entry(path.to_path_buf())
        .or_default()
        .clone()
}

pub(super) fn lookup(path: Option<&Path>) -> Option<Arc<Faults>> {
    table().lock().unwrap().get(path?).cloned()
}
