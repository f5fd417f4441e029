//! Load generator for benches/compare-tgt.sh: many sessions at once, idle sessions, and a
//! plain loopback TCP stream for scale. One lean initiator per session (benches/lean),
//! all on one client thread, so the client's cost per command is the same whether it
//! drives one session or a hundred.
//!
//! ```text
//! cargo bench --bench sessions -- read HOST:PORT IQN LUN SESSIONS QD SECONDS [BYTES]
//! cargo bench --bench sessions -- idle HOST:PORT IQN LUN SESSIONS SECONDS
//! cargo bench --bench sessions -- tcp SECONDS [BYTES]
//! ```
//!
//! `read`: SESSIONS sessions each keep QD READ(10)s of BYTES (default 4096) in flight at
//! scattered offsets of the first 256 MiB for SECONDS; prints `iops N mib_s M`.
//! `idle`: logs SESSIONS sessions in, prints `logged_in N`, keeps them open (answering
//! pings) for SECONDS, then exits. `tcp`: one loopback TCP stream (a sender thread writing
//! BYTES-sized buffers, the receiver reading into one) for SECONDS; prints `mib_s M`.

#[path = "lean/mod.rs"]
mod lean;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use lean::{Ini, Op};

const SPAN: u64 = 256 << 20;

fn arg<T: std::str::FromStr>(a: &[String], i: usize, what: &str) -> T {
    a.get(i)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("argument {i}: {what}"))
}

fn main() {
    let a: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    match a.get(1).map(String::as_str) {
        Some("read") => read(&a),
        Some("idle") => idle(&a),
        Some("tcp") => tcp(&a),
        _ => {
            eprintln!(
                "usage: sessions read HOST:PORT IQN LUN SESSIONS QD SECONDS [BYTES]\n       sessions idle HOST:PORT IQN LUN SESSIONS SECONDS\n       sessions tcp SECONDS [BYTES]"
            );
            std::process::exit(2);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn login_all(addr: &str, iqn: &str, lun: u64, n: u32) -> Vec<Ini> {
    let mut v = Vec::with_capacity(n as usize);
    for i in 0..n {
        v.push(Ini::login(addr, iqn, 0x1000 + i, lun).await);
    }
    v
}

fn read(a: &[String]) {
    let (addr, iqn): (String, String) = (arg(a, 2, "HOST:PORT"), arg(a, 3, "IQN"));
    let lun: u64 = arg(a, 4, "LUN");
    let n: u32 = arg(a, 5, "SESSIONS");
    let qd: u32 = arg(a, 6, "QD");
    let secs: u64 = arg(a, 7, "SECONDS");
    let bytes: u32 = a.get(8).map_or(4096, |b| b.parse().expect("BYTES"));
    let (ops, moved, el) = runtime().block_on(async move {
        let mut inis = login_all(&addr, &iqn, lun, n).await;
        // Clear each session's unit attention before the clock starts.
        for i in &mut inis {
            i.run(Op::Read, 4096, 1, 1, SPAN, &[]).await;
        }
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(secs);
        let mut set = tokio::task::JoinSet::new();
        // All on this (current-thread) runtime: one client thread.
        for mut ini in inis {
            ini.set_stride(7919);
            set.spawn(async move {
                ini.run_until(Op::Read, bytes, qd, u64::MAX, SPAN, &[], Some(deadline))
                    .await
            });
        }
        let mut moved = 0u64;
        while let Some(r) = set.join_next().await {
            moved += r.expect("session task");
        }
        let el = t0.elapsed().as_secs_f64();
        (moved / u64::from(bytes), moved, el)
    });
    println!(
        "iops {:.0} mib_s {:.1} sessions {n} qd {qd} bytes {bytes} seconds {el:.2}",
        ops as f64 / el,
        moved as f64 / el / 1048576.0
    );
}

fn idle(a: &[String]) {
    let (addr, iqn): (String, String) = (arg(a, 2, "HOST:PORT"), arg(a, 3, "IQN"));
    let lun: u64 = arg(a, 4, "LUN");
    let n: u32 = arg(a, 5, "SESSIONS");
    let secs: u64 = arg(a, 6, "SECONDS");
    runtime().block_on(async move {
        let mut inis = login_all(&addr, &iqn, lun, n).await;
        for i in &mut inis {
            i.shrink();
        }
        println!("logged_in {}", inis.len());
        std::io::stdout().flush().ok();
        let mut set = tokio::task::JoinSet::new();
        for mut ini in inis {
            set.spawn(async move { ini.idle().await });
        }
        let _ = tokio::time::timeout(Duration::from_secs(secs), async {
            while set.join_next().await.is_some() {}
        })
        .await;
    });
}

fn tcp(a: &[String]) {
    let secs: u64 = arg(a, 2, "SECONDS");
    let bytes: usize = a.get(3).map_or(1 << 20, |b| b.parse().expect("BYTES"));
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        let buf = vec![0x5au8; bytes];
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let (mut r, _) = l.accept().expect("accept");
    let mut buf = vec![0u8; bytes];
    let t0 = Instant::now();
    let mut got = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n as u64,
        }
    }
    let el = t0.elapsed().as_secs_f64();
    sender.join().ok();
    println!("mib_s {:.1} seconds {el:.2}", got as f64 / el / 1048576.0);
}
