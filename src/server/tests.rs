//! The server over real sockets on 127.0.0.1:0, driven by a scripted initiator that writes
//! raw PDUs.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{ServerCtx, bind, run};
use crate::config;
use crate::iscsi::wire::digest::{crc32c_bytes, data_digest, padding};
use crate::iscsi::wire::text::TextPairs;
use crate::iscsi::wire::{Bhs, Opcode, RESERVED_TAG};
use crate::registry::Registry;

pub(super) const TARGET: &str = "iqn.2026-11.org.example:test";

pub(super) struct Server {
    pub(super) addr: std::net::SocketAddr,
    pub(super) _dir: tempfile::TempDir,
    pub(super) stop: tokio::sync::watch::Sender<bool>,
    pub(super) ctx: Arc<ServerCtx>,
    pub(super) text: String,
}

async fn start(extra: &str) -> Server {
    start_with(extra, "demo_mode = true").await
}

async fn start_with(extra: &str, target_extra: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("chap");
    std::fs::write(&secret, "initiator-secret\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let target_extra = target_extra.replace("SECRET", &secret.display().to_string());
    let text = format!(
        r#"
[daemon]
portals = ["127.0.0.1:3260"]
state_dir = "{}"
login_timeout_secs = 2
{extra}
[iscsi]
header_digest = ["None", "CRC32C"]
data_digest = ["None", "CRC32C"]
first_burst_length = 8192
max_burst_length = 16384
[backstores.ram]
kind = "ramdisk"
size = "16M"
[targets."{TARGET}"]
luns = [{{ lun = 0, backstore = "ram" }}]
{target_extra}
"#,
        dir.path().display()
    );
    start_config(text, dir).await
}

/// A server for the whole configuration `text` (its state dir inside `dir`).
pub(super) async fn start_config(text: String, dir: tempfile::TempDir) -> Server {
    let v = config::parse(&text, "test.toml").unwrap();
    let text_kept = text.clone();
    let reg = Registry::build(&v, None).unwrap();
    let listeners = bind(&["127.0.0.1:0".parse().unwrap()]).await.unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let ctx = ServerCtx::new(reg, rx);
    tokio::spawn(run(listeners, ctx.clone()));
    Server {
        addr,
        _dir: dir,
        stop,
        ctx,
        text: text_kept,
    }
}

/// A minimal initiator: one connection, no error recovery.
pub(super) struct Ini {
    s: TcpStream,
    hd: bool,
    dd: bool,
    pub(super) cmdsn: u32,
    itt: u32,
    statsn: u32,
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut t = TextPairs::default();
    for (k, v) in pairs {
        t.push(*k, *v);
    }
    t.encode()
}

impl Ini {
    pub(super) async fn send(&mut self, bhs: &Bhs, data: &[u8]) {
        let mut b = *bhs;
        b.set_data_segment_len(data.len());
        let mut out = b.0.to_vec();
        if self.hd {
            out.extend_from_slice(&crc32c_bytes(&b.0));
        }
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len()), 0);
        if self.dd && !data.is_empty() {
            out.extend_from_slice(&data_digest(data));
        }
        self.s.write_all(&out).await.unwrap();
    }

    pub(super) async fn recv(&mut self) -> Option<(Bhs, Vec<u8>)> {
        let mut b = Bhs::default();
        tokio::time::timeout(Duration::from_secs(5), self.s.read_exact(&mut b.0))
            .await
            .ok()?
            .ok()?;
        let mut skip = b.total_ahs_len() + if self.hd { 4 } else { 0 };
        let dlen = b.data_segment_len();
        let mut data = vec![0u8; dlen];
        let mut junk = vec![0u8; skip];
        self.s.read_exact(&mut junk).await.ok()?;
        self.s.read_exact(&mut data).await.ok()?;
        skip = padding(dlen) + if self.dd && dlen > 0 { 4 } else { 0 };
        let mut junk = vec![0u8; skip];
        self.s.read_exact(&mut junk).await.ok()?;
        let carries_status = b.opcode() != Opcode::DATA_IN || b.flags() & 1 != 0;
        if carries_status && b.itt() != RESERVED_TAG && b.opcode() != Opcode::R2T {
            self.statsn = b.statsn().wrapping_add(1);
        }
        Some((b, data))
    }

    /// A TCP connection, not logged in yet.
    async fn raw(addr: std::net::SocketAddr) -> Ini {
        Ini {
            s: TcpStream::connect(addr).await.unwrap(),
            hd: false,
            dd: false,
            cmdsn: 1,
            itt: 1,
            statsn: 0,
        }
    }

    pub(super) async fn connect(
        addr: std::net::SocketAddr,
        isid: u8,
        digests: bool,
        mrdsl: u32,
    ) -> Ini {
        let mut ini = Ini::raw(addr).await;
        let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
        b.0[0] |= 0x40;
        b.set_flags(0x80 | 0x01); // T, CSG=0, NSG=1
        b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, isid]);
        b.set_itt(0);
        b.set_cmdsn(1);
        let first = text(&[
            ("InitiatorName", "iqn.2026-11.org.example:ini"),
            ("SessionType", "Normal"),
            ("TargetName", TARGET),
            ("AuthMethod", "None"),
        ]);
        ini.send(&b, &first).await;
        let (r, _) = ini.recv().await.unwrap();
        assert_eq!(r.opcode(), Opcode::LOGIN_RESPONSE);
        assert_eq!((r.0[36], r.0[37]), (0, 0), "login accepted");
        let dg = if digests { "CRC32C" } else { "None" };
        let mrdsl = mrdsl.to_string();
        let op = text(&[
            ("HeaderDigest", dg),
            ("DataDigest", dg),
            ("MaxRecvDataSegmentLength", &mrdsl),
            ("InitialR2T", "No"),
            ("ImmediateData", "Yes"),
            ("MaxBurstLength", "262144"),
            ("FirstBurstLength", "65536"),
        ]);
        b.set_flags(0x80 | 0x04 | 0x03); // T, CSG=1, NSG=3
        ini.send(&b, &op).await;
        let (r, data) = ini.recv().await.unwrap();
        assert_eq!((r.0[36], r.0[37]), (0, 0));
        assert_eq!(r.flags() & 0x83, 0x83, "transit to full feature");
        assert_ne!(r.u16_at(14), 0, "TSIH assigned");
        let t = TextPairs::parse(&data).unwrap();
        assert_eq!(t.get("FirstBurstLength"), Some("8192"));
        ini.hd = digests;
        ini.dd = digests;
        ini
    }

    /// Sends a SCSI command; returns (status, Data-In, sense bytes).
    pub(super) async fn scsi(
        &mut self,
        cdb: &[u8],
        read_len: u32,
        write: &[u8],
    ) -> (u8, Vec<u8>, Vec<u8>) {
        let itt = self.itt;
        self.itt += 1;
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        let mut flags = 0x80u8;
        if read_len > 0 {
            flags |= 0x40;
        }
        if !write.is_empty() {
            flags |= 0x20;
        }
        b.set_flags(flags | 0x01);
        b.set_itt(itt);
        b.set_u32_at(20, read_len.max(write.len() as u32));
        b.set_cmdsn(self.cmdsn);
        b.set_exp_statsn(self.statsn);
        self.cmdsn += 1;
        b.0[32..32 + cdb.len()].copy_from_slice(cdb);
        let imm = write.len().min(8192);
        self.send(&b, &write[..imm]).await;
        let mut data = Vec::new();
        loop {
            let (r, d) = self.recv().await.expect("response");
            match r.opcode() {
                Opcode::R2T => {
                    let (off, len) = (r.buffer_offset() as usize, r.residual() as usize);
                    let mut sent = 0;
                    let mut datasn = 0;
                    while sent < len {
                        let n = (len - sent).min(8192);
                        let mut o = Bhs::new(Opcode::DATA_OUT);
                        o.set_flags(if sent + n == len { 0x80 } else { 0 });
                        o.set_itt(itt);
                        o.set_ttt(r.ttt());
                        o.set_datasn(datasn);
                        o.set_buffer_offset((off + sent) as u32);
                        self.send(&o, &write[off + sent..off + sent + n]).await;
                        sent += n;
                        datasn += 1;
                    }
                }
                Opcode::DATA_IN => {
                    assert_eq!(r.buffer_offset() as usize, data.len());
                    data.extend_from_slice(&d);
                    if r.flags() & 1 != 0 {
                        return (r.0[3], data, Vec::new());
                    }
                }
                Opcode::SCSI_RESPONSE => {
                    let sense = if d.len() > 2 {
                        d[2..].to_vec()
                    } else {
                        Vec::new()
                    };
                    return (r.0[3], data, sense);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn ping(&mut self) -> bool {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.0[0] |= 0x40;
        b.set_flags(0x80);
        b.set_itt(0x7777);
        b.set_ttt(RESERVED_TAG);
        b.set_cmdsn(self.cmdsn);
        self.send(&b, b"ping").await;
        matches!(self.recv().await, Some((r, d)) if r.opcode() == Opcode::NOP_IN && d == b"ping" && r.itt() == 0x7777)
    }
}

pub(super) fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

async fn write_then_read(ini: &mut Ini, lba: u32, blocks: u16, seed: u8) {
    let data: Vec<u8> = (0..blocks as usize * 512)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let (st, _, sense) = ini.scsi(&rw10(0x2a, lba, blocks), 0, &data).await;
    assert_eq!(st, 0, "write status, sense {sense:02x?}");
    let (st, got, _) = ini
        .scsi(&rw10(0x28, lba, blocks), data.len() as u32, &[])
        .await;
    assert_eq!(st, 0);
    assert_eq!(got, data);
}

#[tokio::test]
async fn io_with_r2t_and_split_data_in() {
    let srv = start("").await;
    let mut ini = Ini::connect(srv.addr, 1, false, 4096).await;
    // 1 block: immediate data only; 64 blocks: immediate + R2Ts of 16 KiB bursts;
    // reads come back in 4 KiB Data-In PDUs.
    write_then_read(&mut ini, 0, 1, 1).await;
    write_then_read(&mut ini, 100, 64, 2).await;
    write_then_read(&mut ini, 32767 - 8, 8, 3).await;
    // LBA out of range: CHECK CONDITION, ILLEGAL REQUEST / 21-00
    let (st, _, sense) = ini.scsi(&rw10(0x28, 32768, 1), 512, &[]).await;
    assert_eq!(st, 2);
    assert_eq!((sense[2] & 0xf, sense[12], sense[13]), (5, 0x21, 0));
    // underflow residual: INQUIRY asks for 255, gets fewer
    let (st, inq, _) = ini.scsi(&[0x12, 0, 0, 0, 255, 0], 255, &[]).await;
    assert_eq!(st, 0);
    assert!(inq.len() >= 36 && inq.len() < 255);
    assert!(ini.ping().await);
}

#[tokio::test]
async fn crc32c_digests_both_ways() {
    let srv = start("").await;
    let mut ini = Ini::connect(srv.addr, 2, true, 8192).await;
    write_then_read(&mut ini, 7, 40, 9).await;
    assert!(ini.ping().await);
}

#[tokio::test]
async fn malformed_pdus_only_hurt_their_own_connection() {
    let srv = start("").await;
    let mut good = Ini::connect(srv.addr, 3, false, 8192).await;
    // 1. an unknown opcode gets a Reject, and the connection keeps working
    let mut bad = Ini::connect(srv.addr, 4, false, 8192).await;
    let mut b = Bhs::new(Opcode(0x1c));
    b.set_itt(5);
    bad.send(&b, &[]).await;
    let (r, d) = bad.recv().await.unwrap();
    assert_eq!(r.opcode(), Opcode::REJECT);
    assert_eq!(r.0[2], 0x05, "command not supported");
    assert_eq!(&d[..48], &b.0[..]);
    assert!(bad.ping().await);
    // 2. garbage that claims a huge AHS closes that connection only
    let mut bad2 = Ini::connect(srv.addr, 5, false, 8192).await;
    let mut junk = [0xffu8; 48];
    junk[0] = 0x01;
    bad2.s.write_all(&junk).await.unwrap();
    assert!(bad2.recv().await.is_none(), "connection closed");
    // 3. a header digest error on a digest connection closes it
    let mut bad3 = Ini::connect(srv.addr, 6, true, 8192).await;
    let mut b = Bhs::new(Opcode::NOP_OUT);
    b.0[0] |= 0x40;
    b.set_flags(0x80).set_itt(1).set_ttt(RESERVED_TAG);
    let mut raw = b.0.to_vec();
    raw.extend_from_slice(&[0, 0, 0, 0]);
    bad3.s.write_all(&raw).await.unwrap();
    assert!(bad3.recv().await.is_none());
    // 4. a truncated PDU then EOF
    let mut bad4 = TcpStream::connect(srv.addr).await.unwrap();
    bad4.write_all(&[0x43, 0x87, 0, 0]).await.unwrap();
    drop(bad4);
    // the first session never noticed
    write_then_read(&mut good, 10, 4, 4).await;
    assert!(good.ping().await);
    assert!(bad.ping().await);
}

#[tokio::test]
async fn same_isid_reinstates_the_session() {
    let srv = start("").await;
    let mut first = Ini::connect(srv.addr, 7, false, 8192).await;
    assert!(first.ping().await);
    let mut second = Ini::connect(srv.addr, 7, false, 8192).await;
    assert!(second.ping().await);
    assert!(first.recv().await.is_none(), "old connection closed");
    assert_eq!(srv.ctx.sessions.len(), 1);
}

#[tokio::test]
async fn silent_login_and_dead_initiator_are_dropped() {
    let srv = start("nop_interval_secs = 1\nnop_timeout_secs = 1").await;
    // login timeout (2 s): connect and say nothing
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed by the login timeout");
    // target ping: an initiator that never answers NOP-In is dropped and its session freed
    let mut ini = Ini::connect(srv.addr, 8, false, 8192).await;
    let (r, _) = ini.recv().await.unwrap();
    assert_eq!(r.opcode(), Opcode::NOP_IN);
    assert_eq!(r.itt(), RESERVED_TAG);
    assert_ne!(r.ttt(), RESERVED_TAG);
    assert!(ini.recv().await.is_none(), "dropped after the NOP timeout");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.ctx.sessions.len(), 0);
}

#[tokio::test]
async fn logout_and_shutdown() {
    let srv = start("").await;
    let mut ini = Ini::connect(srv.addr, 9, false, 8192).await;
    let mut b = Bhs::new(Opcode::LOGOUT_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x80);
    b.set_itt(99);
    b.set_cmdsn(ini.cmdsn);
    ini.send(&b, &[]).await;
    let (r, _) = ini.recv().await.unwrap();
    assert_eq!(r.opcode(), Opcode::LOGOUT_RESPONSE);
    assert_eq!(r.0[2], 0);
    assert!(ini.recv().await.is_none());
    // shutdown asks the remaining initiators to log out
    let mut ini = Ini::connect(srv.addr, 10, false, 8192).await;
    srv.stop.send(true).unwrap();
    let (r, _) = ini.recv().await.unwrap();
    assert_eq!(r.opcode(), Opcode::ASYNC_MESSAGE);
    assert_eq!(r.0[36], 1, "logout requested");
}

/// Logs in with CHAP (MD5) using `secret`; returns the final login status.
async fn chap_login(addr: std::net::SocketAddr, secret: &[u8]) -> (u8, u8) {
    use crate::iscsi::login::chap::{ChapAlgorithm, decode_binary, encode_hex};
    let mut ini = Ini::raw(addr).await;
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, 0x42]);
    let first = text(&[
        ("InitiatorName", "iqn.2026-11.org.example:ini"),
        ("SessionType", "Normal"),
        ("TargetName", TARGET),
        ("AuthMethod", "CHAP"),
    ]);
    ini.send(&b, &first).await;
    let (r, _) = ini.recv().await.unwrap();
    if r.0[36] != 0 {
        return (r.0[36], r.0[37]);
    }
    ini.send(&b, &text(&[("CHAP_A", "5")])).await;
    let (_, d) = ini.recv().await.unwrap();
    let t = TextPairs::parse(&d).unwrap();
    let id: u8 = t.get("CHAP_I").unwrap().parse().unwrap();
    let c = decode_binary(t.get("CHAP_C").unwrap()).unwrap();
    let resp = encode_hex(&ChapAlgorithm::Md5.response(id, secret, &c));
    b.set_flags(0x81);
    ini.send(&b, &text(&[("CHAP_N", "client1"), ("CHAP_R", &resp)]))
        .await;
    let (r, _) = ini.recv().await.unwrap();
    (r.0[36], r.0[37])
}

#[tokio::test]
async fn source_networks_are_checked_before_login() {
    let srv = start_with("", "allowed_networks = [\"10.0.0.0/8\"]\ndemo_mode = true").await;
    let mut ini = Ini::raw(srv.addr).await;
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x81);
    let first = text(&[
        ("InitiatorName", "iqn.2026-11.org.example:ini"),
        ("TargetName", TARGET),
    ]);
    ini.send(&b, &first).await;
    let (r, _) = ini.recv().await.unwrap();
    assert_eq!((r.0[36], r.0[37]), (2, 2), "authorization failure");
    let srv = start_with("", "allowed_networks = [\"127.0.0.0/8\"]\ndemo_mode = true").await;
    let mut ok = Ini::connect(srv.addr, 1, false, 8192).await;
    assert!(ok.ping().await);
}

#[tokio::test]
async fn failed_chap_is_rate_limited_per_address() {
    let srv = start_with(
        "auth_failures_per_minute = 2",
        "demo_mode = true\nauth = { chap = { user = \"client1\", password_file = \"SECRET\" } }",
    )
    .await;
    assert_eq!(chap_login(srv.addr, b"initiator-secret").await, (0, 0));
    assert_eq!(chap_login(srv.addr, b"guess-1").await, (2, 1));
    assert_eq!(chap_login(srv.addr, b"guess-2").await, (2, 1));
    // the limit is reached: even the right secret is refused for a while
    assert_eq!(chap_login(srv.addr, b"initiator-secret").await, (2, 1));
}

#[tokio::test]
async fn reload_keeps_untouched_sessions_and_logs_out_removed_ones() {
    let srv = start("").await;
    let mut ini = Ini::connect(srv.addr, 11, false, 8192).await;
    write_then_read(&mut ini, 0, 8, 5).await;
    // Same config again: nothing changes for the session.
    let v = config::parse(&srv.text, "test.toml").unwrap();
    let applied = super::apply::apply(&srv.ctx, &v).unwrap();
    assert!(applied.logged_out.is_empty() && applied.remapped.is_empty());
    assert!(ini.ping().await);
    // The target now admits another initiator only: ours is asked to log out.
    let text = srv.text.replace(
        "demo_mode = true",
        "[targets.\"iqn.2026-11.org.example:test\".acls.\"iqn.2026-11.org.example:other\"]",
    );
    let v = config::parse(&text, "test.toml").unwrap();
    let applied = super::apply::apply(&srv.ctx, &v).unwrap();
    assert_eq!(applied.logged_out.len(), 1);
    let (r, _) = ini.recv().await.unwrap();
    assert_eq!(r.opcode(), Opcode::ASYNC_MESSAGE);
    assert_eq!(r.0[36], 1, "logout requested");
    assert!(ini.recv().await.is_none(), "closed after the grace period");
}
