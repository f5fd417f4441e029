//! Drives the real `rustiscsi` binary against `control::server::serve` with a fake backend.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use rustiscsi::config::{self, Config};
use rustiscsi::control::api::{
    ChangeReport, ConnectionInfo, ControlError, ErrorCode, LunStats, Response, SessionCounters,
    SessionInfo, SessionLun, SessionParams, SessionRef, SessionStats, Stats, StatusReport,
};
use rustiscsi::control::server::{ChangeRequest, ChangeSource, ControlBackend, save_config, serve};
use tokio::sync::watch;

const T: &str = "iqn.2026-11.org.example.nas:storage";
const I: &str = "iqn.2005-03.org.open-iscsi:client1";

struct Fake {
    config: Mutex<(Config, u64)>,
    file: Option<PathBuf>,
}

fn session() -> SessionInfo {
    SessionInfo {
        tsih: 7,
        initiator: I.into(),
        isid: "00023d000001".into(),
        target: Some(T.into()),
        peer: "127.0.0.1:51000".parse().unwrap(),
        local: "127.0.0.1:3260".parse().unwrap(),
        discovery: false,
        params: SessionParams {
            header_digest: "CRC32C".into(),
            data_digest: "None".into(),
            max_burst_length: 1 << 20,
            first_burst_length: 256 << 10,
            initiator_mrdsl: 256 << 10,
            target_mrdsl: 256 << 10,
            immediate_data: true,
            initial_r2t: false,
            max_outstanding_r2t: 1,
        },
        counters: SessionCounters {
            commands: 1234,
            read_bytes: 5 << 20,
            write_bytes: 3 << 20,
            errors: 1,
        },
        since_secs: 3700,
        tpg: 1,
        auth_method: "CHAP (SHA3-256)".into(),
        chap_user: Some("client1".into()),
        mapped_luns: vec![SessionLun {
            lun: 0,
            backstore: "vm1".into(),
            read_only: false,
        }],
        connections: vec![ConnectionInfo {
            cid: 0,
            peer: "127.0.0.1:51000".parse().unwrap(),
            local: "127.0.0.1:3260".parse().unwrap(),
        }],
    }
}

impl ControlBackend for Fake {
    fn status(&self) -> StatusReport {
        let mut s = StatusReport::from_config(&self.config.lock().unwrap().0, self.file.clone());
        s.uptime_secs = 90;
        s
    }
    fn sessions(&self) -> Vec<SessionInfo> {
        vec![session()]
    }
    fn stats(&self) -> Stats {
        Stats {
            luns: vec![LunStats {
                backstore: "vm1".into(),
                reads: 10,
                writes: 5,
                read_bytes: 40960,
                write_bytes: 20480,
                latency_histogram_us: vec![(100, 8), (1000, 6), (u64::MAX, 1)],
                ..Default::default()
            }],
            sessions: vec![SessionStats {
                tsih: 7,
                initiator: I.into(),
                target: Some(T.into()),
                counters: session().counters,
            }],
        }
    }
    fn config(&self) -> (Config, Option<PathBuf>, u64) {
        let g = self.config.lock().unwrap();
        (g.0.clone(), self.file.clone(), g.1)
    }
    /// A stand-in for the daemon's change path: revision check, validation, plan.
    fn change(&self, req: ChangeRequest) -> Result<ChangeReport, ControlError> {
        let mut cur = self.config.lock().unwrap();
        let new = match req.source {
            ChangeSource::Config {
                config,
                base_revision,
            } => {
                if base_revision.is_some_and(|b| b != cur.1) {
                    return Err(ControlError::new(ErrorCode::Conflict, "stale"));
                }
                config
            }
            ChangeSource::Reload => {
                config::load(self.file.as_ref().unwrap())
                    .map_err(|e| ControlError::invalid(e.to_string()))?
                    .config
            }
        };
        let v = config::validate_all(new, "<control request>")
            .map_err(|e| ControlError::invalid(format!("{e:?}")))?;
        let plan = rustiscsi::control::plan(&cur.0, &v.config, &[session()]);
        if !req.dry_run {
            cur.0 = v.config;
            cur.1 += 1;
        }
        Ok(ChangeReport {
            dry_run: req.dry_run,
            revision: cur.1,
            plan,
            warnings: Vec::new(),
            failed: Vec::new(),
            unsaved: Some(true),
        })
    }
    fn save(&self, path: Option<PathBuf>) -> Result<Response, ControlError> {
        let c = self.config.lock().unwrap().0.clone();
        save_config(&c, self.file.as_deref(), path.as_deref())
    }
    fn logout(&self, tsih: u16) -> Result<SessionRef, ControlError> {
        if tsih != 7 {
            return Err(ControlError::not_found(format!("no session {tsih}")));
        }
        Ok(SessionRef {
            tsih,
            initiator: I.into(),
            target: Some(T.into()),
            reason: "asked".into(),
        })
    }
}

const BASE: &str = r#"
[daemon]
portals = ["127.0.0.1:3260"]
state_dir = "/var/lib/rustiscsi"

[backstores.vm1]
kind = "fileio"
path = "/srv/iscsi/vm1.img"
size = "1G"

[targets."iqn.2026-11.org.example.nas:storage"]
luns = [{ lun = 0, backstore = "vm1" }]

[targets."iqn.2026-11.org.example.nas:storage".acls."iqn.2005-03.org.open-iscsi:client1"]
"#;

struct Daemon {
    dir: tempfile::TempDir,
    sock: PathBuf,
    file: PathBuf,
    backend: Arc<Fake>,
    stop: watch::Sender<bool>,
    rt: tokio::runtime::Runtime,
}

impl Daemon {
    fn start(managed_by: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rustiscsi.toml");
        let mut text = BASE.to_owned();
        if let Some(m) = managed_by {
            text = text.replace("[daemon]\n", &format!("[daemon]\nmanaged_by = \"{m}\"\n"));
        }
        std::fs::write(&file, &text).unwrap();
        let cfg = config::load(&file).unwrap().config;
        let backend = Arc::new(Fake {
            config: Mutex::new((cfg, 1)),
            file: Some(file.clone()),
        });
        let sock = dir.path().join("run/control.sock");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (stop, rx) = watch::channel(false);
        let b: Arc<dyn ControlBackend> = backend.clone();
        let s = sock.clone();
        rt.spawn(async move { serve(&s, b, rx).await.unwrap() });
        for _ in 0..200 {
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Self {
            dir,
            sock,
            file,
            backend,
            stop,
            rt,
        }
    }

    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
            .arg("--socket")
            .arg(&self.sock)
            .args(args)
            .output()
            .unwrap()
    }

    fn raw(&self, line: &[u8]) -> serde_json::Value {
        let mut s = UnixStream::connect(&self.sock).unwrap();
        s.write_all(line).unwrap();
        let mut r = BufReader::new(s);
        let mut answer = String::new();
        r.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap()
    }

    fn config(&self) -> Config {
        self.backend.config.lock().unwrap().0.clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = &self.rt;
    }
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn read_commands_human_and_json() {
    let d = Daemon::start(None);
    let out = ok(&d.cli(&["status"]));
    assert!(out.contains("o- /"), "{out}");
    assert!(out.contains("lun0 -> vm1"), "{out}");
    assert!(out.contains(I), "{out}");
    assert!(out.contains("127.0.0.1:3260"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.cli(&["status", "--json"]))).unwrap();
    assert_eq!(v["targets"][0]["iqn"], T);
    assert_eq!(v["uptime_secs"], 90);

    let out = ok(&d.cli(&["sessions"]));
    assert!(
        out.contains("TSIH") && out.contains(I) && out.contains("CRC32C/None"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&d.cli(&["--json", "sessions"]))).unwrap();
    assert_eq!(v[0]["tsih"], 7);

    let out = ok(&d.cli(&["stats"]));
    assert!(out.contains("vm1") && out.contains("P99"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.cli(&["stats", "--json"]))).unwrap();
    assert_eq!(v["luns"][0]["reads"], 10);

    let out = ok(&d.cli(&["config"]));
    assert_eq!(config::parse(&out, "x").unwrap().config, d.config());
}

#[test]
fn targetcli_workflow_applies_through_the_socket() {
    let d = Daemon::start(None);
    let secret = d.dir.path().join("client2.secret");
    std::fs::write(&secret, "averysecret12\n").unwrap();
    let mutual = d.dir.path().join("nas.secret");
    std::fs::write(&mutual, "anothersecret3\n").unwrap();
    let t2 = "iqn.2026-11.org.example.nas:backup";
    let i2 = "iqn.2005-03.org.open-iscsi:client2";

    let out = ok(&d.cli(&[
        "backstore",
        "create",
        "rd",
        "--kind",
        "ramdisk",
        "--size",
        "64M",
    ]));
    assert!(out.contains("+ backstore rd"), "{out}");
    ok(&d.cli(&["target", "create", t2]));
    let out = ok(&d.cli(&["lun", "add", t2, "--backstore", "rd"]));
    assert!(out.contains(&format!("+ lun {t2}/0 -> rd")), "{out}");
    ok(&d.cli(&["acl", "add", t2, i2, "--map", "0:ro"]));
    let s = secret.to_str().unwrap();
    let m = mutual.to_str().unwrap();
    ok(&d.cli(&[
        "auth",
        "set",
        t2,
        "--initiator",
        i2,
        "--user",
        "client2",
        "--password-file",
        s,
        "--mutual-user",
        "nas",
        "--mutual-password-file",
        m,
    ]));
    ok(&d.cli(&[
        "auth",
        "set",
        "--discovery",
        "--user",
        "disc",
        "--password-file",
        s,
    ]));
    let c = d.config();
    let acl = &c.targets[t2].acls[i2];
    assert!(acl.mapped_luns[0].read_only);
    assert_eq!(acl.chap.as_ref().unwrap().user, "client2");
    assert_eq!(acl.mutual_chap.as_ref().unwrap().password_file, mutual);
    assert_eq!(c.discovery.chap.as_ref().unwrap().user, "disc");

    // Dry run changes nothing.
    let out = ok(&d.cli(&["--dry-run", "acl", "remove", t2, i2]));
    assert!(
        out.contains("would change:") && out.contains("- acl"),
        "{out}"
    );
    assert!(d.config().targets[t2].acls.contains_key(i2));

    // Removing the ACL of the logged-in session logs it out (JSON plan).
    let out = ok(&d.cli(&["--json", "acl", "remove", T, I]));
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(p["plan"]["sessions_logged_out"][0]["tsih"], 7);

    ok(&d.cli(&["auth", "clear", "--discovery"]));
    ok(&d.cli(&["auth", "clear", t2, "--initiator", i2]));
    // The ACL's only LUN cannot go while the ACL stays (it would then see every LUN).
    assert_eq!(code(&d.cli(&["lun", "remove", t2, "0"])), 1);
    ok(&d.cli(&["acl", "remove", t2, i2]));
    ok(&d.cli(&["lun", "remove", t2, "0"]));
    ok(&d.cli(&["backstore", "delete", "rd"]));
    ok(&d.cli(&["target", "delete", t2]));
    let c = d.config();
    assert!(!c.targets.contains_key(t2) && !c.backstores.contains_key("rd"));
    assert!(c.discovery.chap.is_none());
}

#[test]
fn failures_have_documented_exit_codes() {
    let d = Daemon::start(None);
    // 1: not found / exists / refused.
    let o = d.cli(&["backstore", "delete", "nope"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("no backstore nope"));
    assert_eq!(code(&d.cli(&["target", "create", T])), 1);
    let o = d.cli(&["backstore", "delete", "vm1"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("lun remove"), "{}", stderr(&o));
    // 2: usage.
    assert_eq!(code(&d.cli(&["lun", "add"])), 2);
    assert_eq!(code(&d.cli(&["acl", "add", T, I, "--map", "x"])), 2);
    assert_eq!(code(&d.cli(&["frobnicate"])), 2);
    // 4: validation.
    let o = d.cli(&["target", "create", "iqn.bad"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let o = d.cli(&[
        "backstore",
        "create",
        "x",
        "--kind",
        "fileio",
        "--size",
        "1G",
    ]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    assert!(stderr(&o).contains("needs path"), "{}", stderr(&o));
    // 3: no daemon.
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["--socket", "/nonexistent/control.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 3);
    assert!(stderr(&o).contains("cannot reach rustiscsid at /nonexistent/control.sock"));
}

#[test]
fn saveconfig_reload_and_plan() {
    let d = Daemon::start(None);
    ok(&d.cli(&[
        "backstore",
        "create",
        "rd",
        "--kind",
        "ramdisk",
        "--size",
        "64M",
    ]));
    let out = ok(&d.cli(&["saveconfig"]));
    assert!(out.contains("saved"), "{out}");
    let saved = config::load(&d.file).unwrap().config;
    assert_eq!(saved, d.config());
    assert!(Path::new(&format!("{}.1", d.file.display())).exists());

    // Export elsewhere, as JSON.
    let other = d.dir.path().join("export.toml");
    let v: serde_json::Value = serde_json::from_str(&ok(&d.cli(&[
        "--json",
        "saveconfig",
        other.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(v["path"], other.to_str().unwrap());

    // Edit the file, plan it, reload --dry-run, reload.
    std::fs::write(&d.file, BASE).unwrap();
    let out = ok(&d.cli(&["plan", d.file.to_str().unwrap()]));
    assert!(out.contains("- backstore rd"), "{out}");
    let out = ok(&d.cli(&["reload", "--dry-run"]));
    assert!(out.contains("would change:"), "{out}");
    assert!(d.config().backstores.contains_key("rd"));
    ok(&d.cli(&["reload"]));
    assert!(!d.config().backstores.contains_key("rd"));
    let out = ok(&d.cli(&["reload"]));
    assert!(out.contains("no changes"), "{out}");

    // A broken file: exit 4 with file:line.
    let bad = d.dir.path().join("bad.toml");
    std::fs::write(&bad, "[daemon]\nportals = [\"nope\"]\n").unwrap();
    let o = d.cli(&["plan", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
    assert!(stderr(&o).contains("bad.toml:2"), "{}", stderr(&o));
    std::fs::write(&d.file, "[daemon]\nbogus = 1\n").unwrap();
    assert_eq!(code(&d.cli(&["reload"])), 4);
}

#[test]
fn saveconfig_refuses_when_managed_by_nixos() {
    let d = Daemon::start(Some("services.rustiscsi"));
    let before = std::fs::read_to_string(&d.file).unwrap();
    let o = d.cli(&["saveconfig"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("managed by NixOS option services.rustiscsi; change it there"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&d.file).unwrap(), before);
}

#[test]
fn raw_socket_errors() {
    let d = Daemon::start(None);
    let v = d.raw(b"{not json\n");
    assert_eq!(v["error"]["code"], "invalid");
    let v = d.raw(b"{\"version\":99,\"request\":\"status\"}\n");
    assert_eq!(v["error"]["code"], "version_mismatch");
    let v = d.raw(b"{\"version\":2,\"request\":\"explode\"}\n");
    assert_eq!(v["error"]["code"], "invalid");
    // An Apply with an invalid config is refused by the daemon itself.
    let mut cfg = serde_json::to_value(d.config()).unwrap();
    cfg["targets"][T]["luns"][0]["backstore"] = "missing".into();
    let line = serde_json::json!({"version":2,"request":{"apply":{"config":cfg,"dry_run":false}}});
    let v = d.raw(format!("{line}\n").as_bytes());
    assert_eq!(v["error"]["code"], "invalid");
    assert!(v["error"]["message"].as_str().unwrap().contains("missing"));
    // Several requests on one connection.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    s.write_all(
        b"{\"version\":2,\"request\":\"sessions\"}\n{\"version\":2,\"request\":\"stats\"}\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    for kind in ["sessions", "stats"] {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["ok"]["kind"], kind);
    }
    // Oversized request: answered Invalid, connection closed.
    let mut s = UnixStream::connect(&d.sock).unwrap();
    let big = vec![b' '; (1 << 20) + 10];
    let _ = s.write_all(&big);
    let mut r = BufReader::new(s);
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    let v: serde_json::Value = serde_json::from_str(&l).unwrap();
    assert_eq!(v["error"]["code"], "invalid");
    // The server survived all of it.
    ok(&d.cli(&["status"]));
}

#[test]
fn import_lio_and_completions() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lio-saveconfig.json"
    );
    let out = dir.path().join("imported.toml");
    let secrets = dir.path().join("secrets");
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["import-lio", fixture, "-o"])
        .arg(&out)
        .arg("--secrets-dir")
        .arg(&secrets)
        .output()
        .unwrap();
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("not carried:") && err.contains("pscsi"),
        "{err}"
    );
    assert!(err.contains("secret:"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("client1secret99"));
    let v = config::load(&out).unwrap();
    assert!(v.config.backstores.contains_key("md_block0"));
    assert_eq!(std::fs::read_dir(&secrets).unwrap().count(), 3);

    // Without --secrets-dir: usage error, nothing written.
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["import-lio", fixture])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--secrets-dir"));

    // No secret carried: no --secrets-dir needed.
    let fx = |n: &str| format!("{}/tests/fixtures/lio/{n}", env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["import-lio", &fx("no-secrets.json")])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // What widens access stops the import (nothing written) unless allowed.
    let wide = dir.path().join("wide.toml");
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["import-lio", &fx("widening.json"), "-o"])
        .arg(&wide)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("WIDENS ACCESS") && stderr(&o).contains("--allow-widening"));
    assert!(!wide.exists());
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args(["import-lio", &fx("widening.json"), "--allow-widening", "-o"])
        .arg(&wide)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        config::load(&wide)
            .unwrap()
            .config
            .daemon
            .allow_demo_mode_on_network
    );
    // --json: the report as JSON.
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .args([
            "--json",
            "import-lio",
            &fx("2017-alua.json"),
            "--secrets-dir",
        ])
        .arg(dir.path().join("s2"))
        .arg("-o")
        .arg(dir.path().join("a.toml"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert!(
        v["not_carried"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("nullio"))
    );

    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(ok(&o).contains("rustiscsi"));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_rustiscsi"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(ok(&o).contains("Exit codes:"));
}
