//! `powercut-fs BACKING MOUNTPOINT`: serves BACKING as `MOUNTPOINT/disk.img` and keeps
//! every write, hole punch and truncation in memory until an `fsync`/`fdatasync` of the
//! file, which applies them to BACKING and syncs it. Killing the process is a power cut:
//! BACKING then holds exactly what was made durable.
//!
//! Test helper for tests/peers/crash-durability.sh: a daemon crash (kill -9) loses nothing
//! the kernel already has, so only this shows whether a target synced before GOOD.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, SystemTime};

use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request, TimeOrNow,
};

const PAGE: u64 = 4096;
const ROOT: u64 = 1;
const DISK: u64 = 2;
const NAME: &str = "disk.img";
const TTL: Duration = Duration::from_secs(0);

struct PowerCut {
    backing: File,
    /// Volatile pages: index -> contents (all PAGE bytes).
    pages: BTreeMap<u64, Vec<u8>>,
    /// Volatile size (durable size is the backing file's).
    size: u64,
}

impl PowerCut {
    fn page(&self, i: u64) -> Vec<u8> {
        if let Some(p) = self.pages.get(&i) {
            return p.clone();
        }
        let mut p = vec![0u8; PAGE as usize];
        let durable = self.backing.metadata().map(|m| m.len()).unwrap_or(0);
        if i * PAGE < durable {
            let _ = self.backing.read_at(&mut p, i * PAGE);
        }
        p
    }

    fn read_bytes(&self, off: u64, len: u64) -> Vec<u8> {
        let end = (off + len).min(self.size);
        let mut out = Vec::new();
        let mut pos = off;
        while pos < end {
            let i = pos / PAGE;
            let p = self.page(i);
            let s = (pos - i * PAGE) as usize;
            let n = ((end - pos) as usize).min(PAGE as usize - s);
            out.extend_from_slice(&p[s..s + n]);
            pos += n as u64;
        }
        out
    }

    fn write_bytes(&mut self, off: u64, data: &[u8]) {
        let mut pos = 0usize;
        while pos < data.len() {
            let at = off + pos as u64;
            let i = at / PAGE;
            let mut p = self.page(i);
            let s = (at - i * PAGE) as usize;
            let n = (data.len() - pos).min(PAGE as usize - s);
            p[s..s + n].copy_from_slice(&data[pos..pos + n]);
            self.pages.insert(i, p);
            pos += n;
        }
        self.size = self.size.max(off + data.len() as u64);
    }

    fn zero(&mut self, off: u64, len: u64) {
        let end = (off + len).min(self.size);
        let mut pos = off;
        while pos < end {
            let i = pos / PAGE;
            let s = pos - i * PAGE;
            let n = (end - pos).min(PAGE - s);
            let mut p = self.page(i);
            p[s as usize..(s + n) as usize].fill(0);
            self.pages.insert(i, p);
            pos += n;
        }
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.backing.set_len(self.size)?;
        for (i, p) in std::mem::take(&mut self.pages) {
            let at = i * PAGE;
            if at < self.size {
                let n = (self.size - at).min(PAGE) as usize;
                self.backing.write_all_at(&p[..n], at)?;
            }
        }
        self.backing.sync_all()
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let now = SystemTime::now();
        let (kind, perm, size, nlink) = if ino == ROOT {
            (FileType::Directory, 0o755, 0, 2)
        } else {
            (FileType::RegularFile, 0o600, self.size, 1)
        };
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        }
    }
}

impl Filesystem for PowerCut {
    fn lookup(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        if parent == ROOT && name == NAME {
            reply.entry(&TTL, &self.attr(DISK), 0);
        } else {
            reply.error(libc::ENOENT);
        }
    }

    fn getattr(&mut self, _r: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match ino {
            ROOT | DISK => reply.attr(&TTL, &self.attr(ino)),
            _ => reply.error(libc::ENOENT),
        }
    }

    fn setattr(
        &mut self,
        _r: &Request<'_>,
        ino: u64,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _a: Option<TimeOrNow>,
        _m: Option<TimeOrNow>,
        _c: Option<SystemTime>,
        _fh: Option<u64>,
        _cr: Option<SystemTime>,
        _ch: Option<SystemTime>,
        _bk: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        if let (DISK, Some(s)) = (ino, size) {
            if s < self.size {
                self.zero(s, self.size - s);
            }
            self.size = s;
        }
        reply.attr(&TTL, &self.attr(ino));
    }

    fn open(&mut self, _r: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        if ino == DISK {
            reply.opened(0, 0);
        } else {
            reply.error(libc::EISDIR);
        }
    }

    fn read(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        _fh: u64,
        off: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        reply.data(&self.read_bytes(off as u64, u64::from(size)));
    }

    fn write(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        _fh: u64,
        off: i64,
        data: &[u8],
        _wf: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        self.write_bytes(off as u64, data);
        reply.written(data.len() as u32);
    }

    fn fsync(&mut self, _r: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        match self.sync() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e.raw_os_error().unwrap_or(libc::EIO)),
        }
    }

    fn fallocate(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        _fh: u64,
        off: i64,
        len: i64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        if mode == punch {
            self.zero(off as u64, len as u64);
            reply.ok();
        } else if mode == 0 {
            self.size = self.size.max((off + len) as u64);
            reply.ok();
        } else {
            reply.error(libc::EOPNOTSUPP);
        }
    }

    fn readdir(
        &mut self,
        _r: &Request<'_>,
        ino: u64,
        _fh: u64,
        off: i64,
        mut reply: ReplyDirectory,
    ) {
        if ino != ROOT {
            reply.error(libc::ENOTDIR);
            return;
        }
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (DISK, FileType::RegularFile, NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(off as usize) {
            if reply.add(*ino, (i + 1) as i64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: powercut-fs BACKING MOUNTPOINT");
        std::process::exit(2);
    }
    let backing = File::options()
        .read(true)
        .write(true)
        .open(&args[1])
        .unwrap_or_else(|e| panic!("{}: {e}", args[1]));
    let size = backing.metadata().expect("stat backing").len();
    let fs = PowerCut {
        backing,
        pages: BTreeMap::new(),
        size,
    };
    let opts = [
        MountOption::FSName("powercut".into()),
        MountOption::AllowOther,
        MountOption::DefaultPermissions,
    ];
    if let Err(e) = fuser::mount2(fs, &args[2], &opts) {
        eprintln!("powercut-fs: mount {}: {e}", args[2]);
        std::process::exit(1);
    }
}
