//! Failing and late storage over real sockets: a fault-injecting backstore (test-only, see
//! `backstore::faults`) whose failed write never reads back GOOD and whose burst of
//! failures logs a handful of lines naming it; a backstore that appears late comes online
//! by itself; two backstores on one file are refused.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::tests::{Ini, Server, TARGET, rw10, start_config};
use crate::backstore::faults;
use crate::backstore::health::{RECOVERY_AFTER, SUMMARY_EVERY, State};
use crate::config;
use crate::control::server::ControlBackend;
use crate::registry::Registry;

fn config_text(dir: &std::path::Path, backstores: &str) -> String {
    format!(
        r#"
[daemon]
portals = ["127.0.0.1:3260"]
state_dir = "{}"
[iscsi]
first_burst_length = 8192
max_burst_length = 16384
{backstores}
[targets."{TARGET}"]
luns = [{{ lun = 0, backstore = "vm1" }}]
demo_mode = true
"#,
        dir.join("state").display()
    )
}

async fn server_with(backstores: impl FnOnce(&std::path::Path) -> String) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &backstores(dir.path()));
    start_config(text, dir).await
}

/// Log lines captured from the current thread (the tests run on a current-thread runtime,
/// so the server's tasks log here too).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let c = Captured::default();
    let w = c.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    (c, tracing::subscriber::set_default(sub))
}

fn sense_of(sense: &[u8]) -> (u8, u8, u8) {
    (sense[2] & 0xf, sense[12], sense[13])
}

#[tokio::test]
async fn a_failed_write_never_reads_back_good_and_a_burst_logs_a_few_lines() {
    let (log, _guard) = capture();
    let mut img = None;
    let srv = server_with(|d| {
        let p = d.join("vm1.img");
        img = Some(p.clone());
        format!(
            "[backstores.vm1]\nkind = \"fileio\"\npath = \"{}\"\nsize = \"4M\"\n",
            p.display()
        )
    })
    .await;
    let f = faults::inject(img.as_ref().unwrap());
    // The injector attaches at open: reopen the unit's backstore under it.
    let reg = srv.ctx.registry.load_full();
    let unit = reg.units["vm1"].1.clone();
    let spec = reg.units["vm1"].0.clone();
    let store = crate::backstore::Backstore::open(&spec, &Default::default()).unwrap();
    unit.set_online(Arc::new(store));
    let mut ini = Ini::connect(srv.addr, 1, false, 65536).await;
    let old = vec![0x11u8; 8 * 512];
    let (st, _, _) = ini.scsi(&rw10(0x2a, 0, 8), 0, &old).await;
    assert_eq!(st, 0);

    // The write reaches the page cache and then fails, as in the kernel.
    f.write_lands.store(true, Ordering::SeqCst);
    f.writes.store(libc::EIO, Ordering::SeqCst);
    let new = vec![0x22u8; 8 * 512];
    let (st, _, sense) = ini.scsi(&rw10(0x2a, 0, 8), 0, &new).await;
    assert_eq!(st, 2);
    assert_eq!(
        sense_of(&sense),
        (3, 0x0c, 0x00),
        "MEDIUM ERROR / WRITE ERROR"
    );
    // Reading it back: never GOOD, although the page cache holds the new data.
    for _ in 0..3 {
        let (st, data, sense) = ini.scsi(&rw10(0x28, 0, 8), 8 * 512, &[]).await;
        assert_eq!(
            st,
            2,
            "a failed write read back as GOOD: {:02x?}",
            &data[..4.min(data.len())]
        );
        assert_eq!(sense_of(&sense), (3, 0x11, 0x00), "UNRECOVERED READ ERROR");
    }
    // A burst: 300 more failed writes across the disk.
    for i in 0..300u32 {
        let (st, _, _) = ini.scsi(&rw10(0x2a, 16 + i * 8, 8), 0, &new).await;
        assert_eq!(st, 2);
    }
    // The summary comes when the window closes (the upkeep task ticks every second).
    unit.health.tick(Instant::now() + SUMMARY_EVERY);
    let lines = log.lines();
    let ours: Vec<&String> = lines.iter().filter(|l| l.contains("vm1")).collect();
    assert!(
        (2..=4).contains(&ours.len()),
        "a handful of lines for 304 failures, got {}: {ours:#?}",
        ours.len()
    );
    let first = ours
        .iter()
        .find(|l| l.contains("failing"))
        .expect("state change line");
    assert!(
        first.contains("LBA 0") && first.contains("iqn.2026-11.org.example:ini"),
        "{first}"
    );
    assert!(
        first.contains(&img.as_ref().unwrap().display().to_string()),
        "names the device: {first}"
    );
    assert!(
        first.contains(&format!("{TARGET} LUN 0")),
        "names the LUN: {first}"
    );
    assert!(
        ours.iter().any(|l| l.contains("more write errors on vm1")),
        "summary line: {ours:#?}"
    );
    // Counters for stats and status.
    let st = srv.ctx.stats();
    let l = st.luns.iter().find(|l| l.backstore == "vm1").unwrap();
    assert_eq!(l.write_errors, 301);
    assert_eq!(l.read_errors, 3);
    assert_eq!(l.health, Some(State::Failing));
    let metrics = super::metrics::render(&srv.ctx);
    assert!(
        metrics.contains("rustiscsi_backstore_errors_total{backstore=\"vm1\",op=\"write\"} 301"),
        "{metrics}"
    );
    // Rewritten: readable again, and healthy after a quiet period.
    f.writes.store(0, Ordering::SeqCst);
    let (st, _, _) = ini.scsi(&rw10(0x2a, 0, 8), 0, &new).await;
    assert_eq!(st, 0);
    let (st, data, _) = ini.scsi(&rw10(0x28, 0, 8), 8 * 512, &[]).await;
    assert_eq!((st, data), (0, new));
    unit.health
        .tick(Instant::now() + RECOVERY_AFTER + SUMMARY_EVERY);
    assert_eq!(unit.health.state(), State::Healthy);
}

#[tokio::test]
async fn a_backstore_that_appears_late_comes_online_by_itself() {
    let mut img = None;
    let srv = server_with(|d| {
        let p = d.join("late/vm1.img");
        img = Some(p.clone());
        // No size: the daemon cannot create it; it waits for the file.
        format!(
            "[backstores.vm1]\nkind = \"fileio\"\npath = \"{}\"\n",
            p.display()
        )
    })
    .await;
    let img = img.unwrap();
    let status = srv.ctx.status();
    let b = status.backstores.iter().find(|b| b.name == "vm1").unwrap();
    assert_eq!(b.health, Some(State::Offline));
    assert!(
        b.error.as_deref().unwrap().contains("does not exist"),
        "{b:?}"
    );
    let mut ini = Ini::connect(srv.addr, 2, false, 65536).await;
    let tur = [0u8; 6];
    let (st, _, sense) = ini.scsi(&tur, 0, &[]).await;
    assert_eq!((st, sense_of(&sense)), (2, (2, 0x04, 0x00)), "NOT READY");
    super::backstores::spawn(srv.ctx.clone());
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    std::fs::write(&img, vec![0x5au8; 1 << 20]).unwrap();
    // Within the backoff (1 s doubling to 5 s) it is served; first the unit attention.
    let t0 = Instant::now();
    let mut seen_ua = false;
    loop {
        let (st, _, sense) = ini.scsi(&tur, 0, &[]).await;
        if st == 0 {
            break;
        }
        if sense_of(&sense) == (6, 0x28, 0x00) {
            seen_ua = true;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "still not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_ua, "NOT READY TO READY CHANGE reported");
    let (st, data, _) = ini.scsi(&rw10(0x28, 0, 1), 512, &[]).await;
    assert_eq!(st, 0);
    assert!(data.iter().all(|&b| b == 0x5a));
    let status = srv.ctx.status();
    let b = status.backstores.iter().find(|b| b.name == "vm1").unwrap();
    assert_eq!((b.health, &b.error), (Some(State::Healthy), &None));
}

#[tokio::test]
async fn two_backstores_on_one_file_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("a.img");
    let link = dir.path().join("b.img");
    std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
    std::os::unix::fs::symlink(&img, &link).unwrap();
    let text = config_text(
        dir.path(),
        &format!(
            "[backstores.vm1]\nkind = \"fileio\"\npath = \"{}\"\n[backstores.vm2]\nkind = \"fileio\"\npath = \"{}\"\n",
            img.display(),
            link.display()
        ),
    );
    let v = config::parse(&text, "t.toml").unwrap();
    let e = Registry::build(&v, None).unwrap_err().to_string();
    assert!(e.contains("same storage as backstore"), "{e}");
}
