//! A lean iSCSI read client for measuring a target's 1 MiB read throughput, so that the
//! figure is not bounded by a general-purpose initiator library.
//!
//! `cargo bench --bench wire_read -- HOST:PORT IQN [QUEUE_DEPTH] [SECONDS] [BLOCKS_PER_READ] [LUN]`
//!
//! It logs in without authentication (demo mode or an ACL for
//! `iqn.2026-11.org.rustiscsi:wire-read`), declares MaxRecvDataSegmentLength 262144,
//! keeps QUEUE_DEPTH READ(10) commands of BLOCKS_PER_READ (default 2048 x 512 = 1 MiB) in
//! flight over LUN (default 0; tgt's disk is LUN 1) and prints MiB/s. Data is received into
//! one reused buffer.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi::iscsi::wire::{Bhs, Opcode};

fn send(s: &mut TcpStream, b: &Bhs, data: &[u8]) {
    let mut b = *b;
    b.set_data_segment_len(data.len());
    let mut out = b.0.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(4) * 4, 0);
    s.write_all(&out).expect("send");
}

fn recv(s: &mut TcpStream, buf: &mut [u8]) -> (Bhs, usize) {
    let mut b = Bhs::default();
    s.read_exact(&mut b.0).expect("header");
    let len = b.data_segment_len();
    let padded = len.div_ceil(4) * 4;
    s.read_exact(&mut buf[..padded]).expect("data");
    (b, len)
}

fn login(s: &mut TcpStream, iqn: &str, buf: &mut [u8]) {
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.set_flags(0x80 | 0x04 | 0x03); // straight to full feature phase, no authentication
    b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0x77, 0, 1]);
    b.set_cmdsn(1);
    let mut t = TextPairs::default();
    for (k, v) in [
        ("InitiatorName", "iqn.2026-11.org.rustiscsi:wire-read"),
        ("SessionType", "Normal"),
        ("TargetName", iqn),
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("MaxRecvDataSegmentLength", "262144"),
        ("MaxBurstLength", "16776192"),
        ("ImmediateData", "Yes"),
        ("InitialR2T", "No"),
    ] {
        t.push(k, v);
    }
    send(s, &b, &t.encode());
    // Some targets (tgt) answer with declarations of their own first and transit only on
    // the next exchange.
    for _ in 0..4 {
        let (r, _) = recv(s, buf);
        assert_eq!((r.0[36], r.0[37]), (0, 0), "login refused");
        if r.flags() & 0x83 == 0x83 {
            return;
        }
        b.set_u16_at(14, r.u16_at(14));
        send(s, &b, &[]);
    }
    panic!("the target did not move to the full feature phase");
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 3 {
        eprintln!("usage: wire_read HOST:PORT IQN [QUEUE_DEPTH] [SECONDS] [BLOCKS_PER_READ] [LUN]");
        std::process::exit(2);
    }
    let qd: u32 = args.get(3).map_or(4, |a| a.parse().expect("queue depth"));
    let secs: u64 = args.get(4).map_or(5, |a| a.parse().expect("seconds"));
    let blocks: u32 = args.get(5).map_or(2048, |a| a.parse().expect("blocks"));
    let lun: u64 = args.get(6).map_or(0, |a| a.parse().expect("lun"));
    let mut s = TcpStream::connect(&args[1]).expect("connect");
    s.set_nodelay(true).ok();
    let mut buf = vec![0u8; 16 << 20];
    login(&mut s, &args[2], &mut buf);
    let xfer = blocks * 512;
    let span_blocks = (256u32 << 20) / 512; // read within the first 256 MiB
    let mut issued = 0u32;
    let issue = |s: &mut TcpStream, n: u32| {
        let mut b = Bhs::new(Opcode::SCSI_COMMAND);
        b.set_flags(0x80 | 0x40 | 0x01);
        b.set_lun_raw(rustiscsi::iscsi::wire::bhs::encode_lun(lun));
        b.set_itt(n + 1);
        b.set_u32_at(20, xfer);
        b.set_cmdsn(n + 1);
        b.0[32] = 0x28;
        b.0[34..38].copy_from_slice(&((n * blocks) % span_blocks).to_be_bytes());
        b.0[39..41].copy_from_slice(&(blocks as u16).to_be_bytes());
        send(s, &b, &[]);
    };
    for _ in 0..qd {
        issue(&mut s, issued);
        issued += 1;
    }
    let (t0, end) = (Instant::now(), Instant::now() + Duration::from_secs(secs));
    let (mut bytes, mut done) = (0u64, 0u32);
    while done < issued {
        let (r, len) = recv(&mut s, &mut buf);
        match r.opcode() {
            Opcode::DATA_IN => {
                bytes += len as u64;
                if r.flags() & 0x01 != 0 {
                    assert_eq!(r.0[3], 0, "status");
                    done += 1;
                    if Instant::now() < end {
                        issue(&mut s, issued);
                        issued += 1;
                    }
                }
            }
            // Targets without status collapse (tgt) answer with a separate SCSI Response;
            // a CHECK CONDITION (a unit attention at first) just ends that command.
            Opcode::SCSI_RESPONSE => {
                done += 1;
                if Instant::now() < end {
                    issue(&mut s, issued);
                    issued += 1;
                }
            }
            _ => {}
        }
    }
    let el = t0.elapsed().as_secs_f64();
    println!(
        "wire_read: {} x {} KiB reads at qd {qd} in {el:.2} s: {:.0} MiB/s",
        done,
        xfer / 1024,
        bytes as f64 / el / (1 << 20) as f64
    );
}
