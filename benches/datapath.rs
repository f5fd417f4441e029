//! The daemon's data path in one process on one thread, for counting instructions with
//! `valgrind --tool=callgrind` (tests/perf-guard.sh): the real server (accept, login,
//! connection driver, session, SCSI core, backstore, outbox) on a current-thread tokio
//! runtime, and a lean initiator in the same runtime doing COUNT commands at queue depth 1
//! over loopback TCP. Nothing runs on another thread while a command is in flight when
//! the backstore serves it inline (ramdisk, files on tmpfs), so the count repeats exactly;
//! the guard runs two counts and takes the difference, which cancels start-up and login.
//!
//! `cargo bench --bench datapath -- read|write BYTES COUNT [ramdisk|fileio [DIR]]`
//!
//! fileio puts its file in DIR (default /dev/shm). Prints nothing but a summary line.

#[path = "lean/mod.rs"]
mod lean;

use lean::{Ini, Op};
use rustiscsi::config;
use rustiscsi::registry::Registry;
use rustiscsi::server::{self, ServerCtx};

const IQN: &str = "iqn.2026-11.org.rustiscsi:datapath";
/// LUN size, and the span the commands cycle over.
const SIZE: u64 = 64 << 20;
const SPAN: u64 = 16 << 20;

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 4 {
        eprintln!("usage: datapath read|write BYTES COUNT [ramdisk|fileio [DIR]]");
        std::process::exit(2);
    }
    let op = match args[1].as_str() {
        "read" => Op::Read,
        "write" => Op::Write,
        o => panic!("unknown op {o}"),
    };
    let bytes: u32 = args[2].parse().expect("BYTES");
    let count: u64 = args[3].parse().expect("COUNT");
    let kind = args.get(4).map_or("ramdisk", String::as_str);
    let dir = args.get(5).map_or("/dev/shm", String::as_str);
    let state = tempfile::Builder::new()
        .prefix("rustiscsi-datapath.")
        .tempdir_in(dir)
        .expect("state dir");
    let backstore = match kind {
        "ramdisk" => format!("kind = \"ramdisk\"\nsize = \"{SIZE}\""),
        "fileio" => format!(
            "kind = \"fileio\"\npath = \"{}\"\nsize = \"{SIZE}\"",
            state.path().join("lun.img").display()
        ),
        k => panic!("unknown backstore kind {k}"),
    };
    let text = format!(
        r#"
[daemon]
portals = ["127.0.0.1:3260"]
state_dir = "{}"
nop_interval_secs = 0
[backstores.disk]
{backstore}
[targets."{IQN}"]
demo_mode = true
luns = [{{ lun = 0, backstore = "disk" }}]
"#,
        state.path().display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let moved = rt.block_on(async move {
        let v = config::parse(&text, "datapath.toml").expect("config");
        let reg = Registry::build(&v, None).expect("registry");
        let listeners = server::bind(&["127.0.0.1:0".parse().unwrap()])
            .await
            .expect("bind");
        let addr = listeners[0].local_addr().unwrap().to_string();
        let (_stop, rx) = tokio::sync::watch::channel(false);
        let ctx = ServerCtx::new(reg, rx);
        tokio::spawn(server::run(listeners, ctx));
        let mut ini = Ini::login(&addr, IQN, 1, 0).await;
        let data = vec![0x5au8; bytes as usize];
        // The first command answers the unit attention of the new nexus.
        ini.run(Op::Read, 4096, 1, 1, SPAN, &data).await;
        ini.run(op, bytes, 1, count, SPAN, &data).await
    });
    println!(
        "datapath: {count} x {bytes} byte {:?} on {kind}: {moved} bytes",
        op
    );
    drop(state);
    // No orderly shutdown: its timers would add a variable tail to the count.
    std::process::exit(0);
}
