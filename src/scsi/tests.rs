//! Raw-CDB tests against ramdisk LUNs: every command goes through [`execute`].

use std::sync::Arc;

use bytes::Bytes;

use super::sense::{Sense, key};
use super::*;
use crate::backstore::{Backstore, BackstoreKind, BackstoreSpec, CacheMode, OpenOptions};

const BLOCKS: u64 = 2048;
const BS: usize = 512;

fn ramdisk(blocks: u64) -> Arc<Backstore> {
    Arc::new(
        Backstore::open(
            &BackstoreSpec {
                name: "ram".into(),
                kind: BackstoreKind::Ramdisk,
                path: None,
                size: Some(blocks * BS as u64),
                block_size: BS as u32,
                write_cache: false,
                cache: CacheMode::Buffered,
            },
            &OpenOptions::default(),
        )
        .unwrap(),
    )
}

fn unit() -> Arc<LogicalUnit> {
    Arc::new(LogicalUnit::new(
        ramdisk(BLOCKS),
        LunIdentity::new("SER123", 0x3000_1234_5678_9abcu64),
    ))
}

/// LUN 0 read-write, LUN 1 read-only view of the same unit.
pub(super) fn nexus_for(u: &Arc<LogicalUnit>, initiator: &str) -> ItNexus {
    ItNexus::new(
        initiator.into(),
        "iqn.2026-11.org.example:tgt,t,0x0001".into(),
        vec![
            MappedLun {
                lun: 1,
                unit: Arc::clone(u),
                read_only: true,
            },
            MappedLun {
                lun: 0,
                unit: Arc::clone(u),
                read_only: false,
            },
        ],
    )
}

fn setup() -> (Arc<LogicalUnit>, ItNexus) {
    let u = unit();
    let n = nexus_for(&u, "iqn.2026-11.org.example:init,i,0x000000000001");
    (u, n)
}

pub(super) async fn run(n: &ItNexus, lun: u64, cdb: &[u8], data_out: Vec<u8>) -> ScsiResponse {
    execute(
        n,
        ScsiCommand {
            lun,
            cdb: Bytes::copy_from_slice(cdb),
            data_out: data_out.into(),
            expected_in: 1 << 20,
        },
    )
    .await
}

pub(super) async fn do_command_in(n: &ItNexus, lun: u64, cdb: &[u8]) -> Bytes {
    let r = run(n, lun, cdb, Vec::new()).await;
    assert_eq!(r.status, status::GOOD, "cdb {cdb:02x?}: {:?}", r.sense);
    r.data_in
}

pub(super) async fn do_command_out(n: &ItNexus, lun: u64, cdb: &[u8], data: Vec<u8>) {
    let r = run(n, lun, cdb, data).await;
    assert_eq!(r.status, status::GOOD, "cdb {cdb:02x?}: {:?}", r.sense);
}

pub(super) async fn do_command_fail(n: &ItNexus, lun: u64, cdb: &[u8], data: Vec<u8>, want: Sense) {
    let r = run(n, lun, cdb, data).await;
    assert_eq!(r.status, status::CHECK_CONDITION, "cdb {cdb:02x?}");
    let s = r.sense.unwrap();
    assert_eq!(
        (s.key, s.asc, s.ascq),
        (want.key, want.asc, want.ascq),
        "cdb {cdb:02x?}"
    );
}

pub(super) fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = op;
    c[2..6].copy_from_slice(&lba.to_be_bytes());
    c[7..9].copy_from_slice(&blocks.to_be_bytes());
    c
}

pub(super) fn rw16(op: u8, lba: u64, blocks: u32) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = op;
    c[2..10].copy_from_slice(&lba.to_be_bytes());
    c[10..14].copy_from_slice(&blocks.to_be_bytes());
    c
}

#[tokio::test]
async fn test_unit_ready_and_unknown_opcode() {
    let (_, n) = setup();
    do_command_in(&n, 0, &[0, 0, 0, 0, 0, 0]).await;
    do_command_fail(&n, 0, &[0xc0, 0, 0, 0, 0, 0], vec![], Sense::INVALID_OPCODE).await;
    do_command_fail(&n, 0, &[], vec![], Sense::INVALID_OPCODE).await;
}

#[tokio::test]
async fn inquiry_standard_and_vpd() {
    let (_, n) = setup();
    let d = do_command_in(&n, 0, &[0x12, 0, 0, 0, 0xff, 0]).await;
    assert_eq!(d[0], 0);
    assert_eq!(d[2], 6);
    assert_eq!(d[3] & 0x1f, 0x12);
    assert_eq!(usize::from(d[4]) + 5, d.len());
    assert_eq!(d[7] & 0x02, 0x02);
    assert_eq!(&d[8..16], b"RUSTISCS");
    assert_eq!(&d[16..32], b"VIRTUAL-DISK    ");
    assert_eq!(&d[32..36], b"0001");
    // Allocation length honoured, including 0.
    assert_eq!(do_command_in(&n, 0, &[0x12, 0, 0, 0, 5, 0]).await.len(), 5);
    assert_eq!(do_command_in(&n, 0, &[0x12, 0, 0, 0, 0, 0]).await.len(), 0);
    // Supported pages.
    let d = do_command_in(&n, 0, &[0x12, 1, 0, 0, 0xff, 0]).await;
    assert_eq!(&d[..4], &[0, 0, 0, 6]);
    assert_eq!(&d[4..], &[0, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
    // Serial.
    let d = do_command_in(&n, 0, &[0x12, 1, 0x80, 0, 0xff, 0]).await;
    assert_eq!(&d[4..], b"SER123");
    // Device identification: NAA first.
    let d = do_command_in(&n, 0, &[0x12, 1, 0x83, 0, 0xff, 0]).await;
    assert_eq!(&d[4..8], &[0x01, 0x03, 0, 8]);
    assert_eq!(&d[8..16], &0x3000_1234_5678_9abcu64.to_be_bytes());
    assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])) + 4, d.len());
    // Block limits, characteristics, provisioning.
    let d = do_command_in(&n, 0, &[0x12, 1, 0xb0, 0, 0xff, 0]).await;
    assert_eq!(d.len(), 64);
    assert_eq!(
        u32::from_be_bytes(d[8..12].try_into().unwrap()),
        crate::scsi::MAX_TRANSFER_BYTES / 512
    );
    assert_eq!(d[5], 128, "maximum COMPARE AND WRITE length");
    let d = do_command_in(&n, 0, &[0x12, 1, 0xb1, 0, 0xff, 0]).await;
    assert_eq!(&d[4..6], &[0, 1]);
    let d = do_command_in(&n, 0, &[0x12, 1, 0xb2, 0, 0xff, 0]).await;
    assert_eq!(d[5] & 0xe0, 0xe0);
    assert_eq!(d[6] & 7, 2);
    // Bad combinations.
    let bad = Sense::INVALID_FIELD_IN_CDB;
    do_command_fail(&n, 0, &[0x12, 0, 0x80, 0, 0xff, 0], vec![], bad).await;
    do_command_fail(&n, 0, &[0x12, 2, 0, 0, 0xff, 0], vec![], bad).await;
    do_command_fail(&n, 0, &[0x12, 1, 0x42, 0, 0xff, 0], vec![], bad).await;
}

#[tokio::test]
async fn unmapped_lun() {
    let (_, n) = setup();
    let d = do_command_in(&n, 7, &[0x12, 0, 0, 0, 0xff, 0]).await;
    assert_eq!(d[0], 0x7f);
    do_command_fail(&n, 7, &[0, 0, 0, 0, 0, 0], vec![], Sense::LUN_NOT_SUPPORTED).await;
    do_command_fail(&n, 7, &rw10(0x28, 0, 1), vec![], Sense::LUN_NOT_SUPPORTED).await;
    let d = do_command_in(&n, 7, &[0x03, 0, 0, 0, 18, 0]).await;
    assert_eq!((d[2], d[12], d[13]), (5, 0x25, 0));
    let d = do_command_in(&n, 7, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(&d[..4], &[0, 0, 0, 16]);
}

#[tokio::test]
async fn report_luns() {
    let (_, n) = setup();
    let d = do_command_in(&n, 0, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(&d[..8], &[0, 0, 0, 16, 0, 0, 0, 0]);
    assert_eq!(&d[8..16], &[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&d[16..24], &[0, 1, 0, 0, 0, 0, 0, 0]);
    let d = do_command_in(&n, 0, &[0xa0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(&d[..4], &[0, 0, 0, 0]);
    let bad = Sense::INVALID_FIELD_IN_CDB;
    do_command_fail(
        &n,
        0,
        &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0],
        vec![],
        bad,
    )
    .await;
    do_command_fail(&n, 0, &[0xa0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0], vec![], bad).await;
    assert_eq!(super::spc::encode_lun(300), [0x41, 0x2c, 0, 0, 0, 0, 0, 0]);
}

#[tokio::test]
async fn read_capacity() {
    let (_, n) = setup();
    let d = do_command_in(&n, 0, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]).await;
    assert_eq!(&d[..], &[0, 0, 0x07, 0xff, 0, 0, 2, 0]);
    let mut c = [0u8; 16];
    c[0] = 0x9e;
    c[1] = 0x10;
    c[13] = 32;
    let d = do_command_in(&n, 0, &c).await;
    assert_eq!(d.len(), 32);
    assert_eq!(u64::from_be_bytes(d[..8].try_into().unwrap()), BLOCKS - 1);
    assert_eq!(d[14] & 0x80, 0x80);
    c[13] = 12;
    assert_eq!(do_command_in(&n, 0, &c).await.len(), 12);
    c[1] = 0x11;
    do_command_fail(&n, 0, &c, vec![], Sense::INVALID_FIELD_IN_CDB).await;
    // PMI = 0 with a non-zero LBA.
    let bad = [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    do_command_fail(&n, 0, &bad, vec![], Sense::INVALID_FIELD_IN_CDB).await;
}

#[tokio::test]
async fn read_write_round_trip() {
    let (_, n) = setup();
    let data: Vec<u8> = (0..4 * BS).map(|i| (i % 251) as u8).collect();
    do_command_out(&n, 0, &rw10(0x2a, 10, 4), data.clone()).await;
    assert_eq!(
        &do_command_in(&n, 0, &rw10(0x28, 10, 4)).await[..],
        &data[..]
    );
    assert_eq!(
        &do_command_in(&n, 0, &rw16(0x88, 10, 4)).await[..],
        &data[..]
    );
    let mut r12 = [0u8; 12];
    r12[0] = 0xa8;
    r12[5] = 10;
    r12[9] = 4;
    assert_eq!(&do_command_in(&n, 0, &r12).await[..], &data[..]);
    assert_eq!(
        &do_command_in(&n, 0, &[0x08, 0, 0, 11, 1, 0]).await[..],
        &data[BS..2 * BS]
    );
    // READ(6) length 0 means 256 blocks.
    assert_eq!(
        do_command_in(&n, 0, &[0x08, 0, 0, 0, 0, 0]).await.len(),
        256 * BS
    );
    // WRITE(16) with FUA, longer data-out is truncated.
    let mut w = rw16(0x8a, 100, 1);
    w[1] = 0x08;
    do_command_out(&n, 0, &w, vec![0x5a; 2 * BS]).await;
    let d = do_command_in(&n, 0, &rw10(0x28, 100, 2)).await;
    assert!(d[..BS].iter().all(|&b| b == 0x5a));
    assert!(d[BS..].iter().all(|&b| b == 0));
    // WRITE(6).
    do_command_out(&n, 0, &[0x0a, 0, 0, 200, 1, 0], vec![3; BS]).await;
    assert_eq!(do_command_in(&n, 0, &rw10(0x28, 200, 1)).await[0], 3);
    // Zero-length transfers.
    assert!(do_command_in(&n, 0, &rw10(0x28, 0, 0)).await.is_empty());
    do_command_out(&n, 0, &rw10(0x2a, 0, 0), vec![]).await;
}

#[tokio::test]
async fn read_write_errors() {
    let (_, n) = setup();
    let oor = Sense::LBA_OUT_OF_RANGE;
    do_command_fail(&n, 0, &rw10(0x28, BLOCKS as u32, 1), vec![], oor).await;
    do_command_fail(&n, 0, &rw10(0x28, BLOCKS as u32 - 1, 2), vec![], oor).await;
    do_command_fail(&n, 0, &rw16(0x88, u64::MAX, 2), vec![], oor).await;
    do_command_fail(&n, 0, &rw10(0x28, BLOCKS as u32 + 1, 0), vec![], oor).await;
    do_command_fail(&n, 0, &rw10(0x2a, BLOCKS as u32, 1), vec![0; BS], oor).await;
    // Read-only mapping.
    let wp = Sense::WRITE_PROTECTED;
    do_command_fail(&n, 1, &rw10(0x2a, 0, 1), vec![0; BS], wp).await;
    assert_eq!(wp.key, key::DATA_PROTECT);
    // Reads through the read-only mapping work.
    do_command_in(&n, 1, &rw10(0x28, 0, 1)).await;
    // Short data-out (EDTL < transfer length): only the blocks that arrived are
    // written, as LIO does and libiscsi's residual tests expect.
    do_command_out(&n, 0, &rw10(0x2a, 0, 2), vec![7; 2 * BS]).await;
    do_command_out(&n, 0, &rw10(0x2a, 0, 2), vec![9; BS]).await;
    let got = do_command_in(&n, 0, &rw10(0x28, 0, 2)).await;
    assert!(got[..BS].iter().all(|&b| b == 9));
    assert!(got[BS..].iter().all(|&b| b == 7));
    do_command_out(&n, 0, &rw10(0x2a, 0, 1), vec![]).await;
    let bad = Sense::INVALID_FIELD_IN_CDB;
    // RDPROTECT / over the maximum transfer length.
    let mut c = rw10(0x28, 0, 1);
    c[1] = 0x20;
    do_command_fail(&n, 0, &c, vec![], bad).await;
    do_command_fail(&n, 0, &rw16(0x88, 0, 1 << 20), vec![], bad).await;
}

#[tokio::test]
async fn verify_and_write_verify() {
    let (_, n) = setup();
    do_command_out(&n, 0, &rw10(0x2e, 5, 2), vec![9; 2 * BS]).await;
    do_command_out(&n, 0, &rw10(0x2f, 5, 2), vec![]).await;
    let mut v = rw10(0x2f, 5, 2);
    v[1] = 0x02;
    do_command_out(&n, 0, &v, vec![9; 2 * BS]).await;
    let mut bad = vec![9; 2 * BS];
    bad[BS + 3] = 0;
    let r = run(&n, 0, &v, bad).await;
    let s = r.sense.unwrap();
    assert_eq!(
        (s.key, s.asc, s.info),
        (key::MISCOMPARE, 0x1d, Some(BS as u32 + 3))
    );
    // BYTCHK=3: one block against each.
    let mut v16 = rw16(0x8f, 5, 2);
    v16[1] = 0x06;
    do_command_out(&n, 0, &v16, vec![9; BS]).await;
    let oor = Sense::LBA_OUT_OF_RANGE;
    do_command_fail(&n, 0, &rw10(0x2f, BLOCKS as u32, 1), vec![], oor).await;
}

#[tokio::test]
async fn sync_cache_and_prefetch() {
    let (_, n) = setup();
    do_command_in(&n, 0, &rw10(0x35, 0, 0)).await;
    do_command_in(&n, 0, &rw16(0x91, 10, 10)).await;
    do_command_in(&n, 0, &rw10(0x34, 10, 10)).await;
    do_command_in(&n, 0, &rw16(0x90, 10, 10)).await;
    let oor = Sense::LBA_OUT_OF_RANGE;
    do_command_fail(&n, 0, &rw10(0x35, BLOCKS as u32 - 1, 2), vec![], oor).await;
    do_command_fail(&n, 0, &rw16(0x90, BLOCKS, 1), vec![], oor).await;
}

#[tokio::test]
async fn request_sense_and_unit_attentions() {
    let u = unit();
    let a = nexus_for(&u, "iqn.a,i,0x1");
    let b = nexus_for(&u, "iqn.b,i,0x2");
    let d = do_command_in(&a, 0, &[0x03, 0, 0, 0, 18, 0]).await;
    assert_eq!((d[0], d[2], d[12]), (0x70, 0, 0));
    // Descriptor format.
    let d = do_command_in(&a, 0, &[0x03, 1, 0, 0, 18, 0]).await;
    assert_eq!(&d[..], &[0x72, 0, 0, 0, 0, 0, 0, 0]);
    // Reset by A: every nexus, A included, gets 29/03 once per LUN.
    a.target_reset();
    do_command_fail(&a, 0, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUN_RESET).await;
    do_command_in(&a, 0, &[0, 0, 0, 0, 0, 0]).await;
    do_command_fail(&b, 1, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUN_RESET).await;
    do_command_fail(&b, 0, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUN_RESET).await;
    assert!(a.lun_reset(0));
    assert!(!a.lun_reset(9));
    do_command_fail(&a, 0, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUN_RESET).await;
    do_command_in(&a, 0, &[0, 0, 0, 0, 0, 0]).await;
    // INQUIRY and REPORT LUNS neither report nor consume it.
    do_command_in(&b, 0, &[0x12, 0, 0, 0, 0xff, 0]).await;
    do_command_fail(&b, 0, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUN_RESET).await;
    do_command_in(&b, 0, &[0, 0, 0, 0, 0, 0]).await;
    // Capacity change: each nexus once; REQUEST SENSE returns and clears it.
    u.capacity_changed();
    let d = do_command_in(&a, 0, &[0x03, 0, 0, 0, 18, 0]).await;
    assert_eq!((d[2], d[12], d[13]), (6, 0x2a, 0x09));
    do_command_in(&a, 0, &[0, 0, 0, 0, 0, 0]).await;
    do_command_fail(&b, 0, &rw10(0x28, 0, 1), vec![], Sense::UA_CAPACITY_CHANGED).await;
    do_command_in(&b, 0, &rw10(0x28, 0, 1)).await;
    // LUN map change.
    b.set_luns(vec![MappedLun {
        lun: 3,
        unit: Arc::clone(&u),
        read_only: false,
    }]);
    assert_eq!(b.luns().len(), 1);
    do_command_fail(&b, 3, &[0, 0, 0, 0, 0, 0], vec![], Sense::UA_LUNS_CHANGED).await;
    do_command_in(&b, 3, &[0, 0, 0, 0, 0, 0]).await;
    // REPORT LUNS clears it too.
    b.set_luns(vec![MappedLun {
        lun: 3,
        unit: Arc::clone(&u),
        read_only: false,
    }]);
    do_command_in(&b, 3, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    do_command_in(&b, 3, &[0, 0, 0, 0, 0, 0]).await;
}

fn mode_sense6(page: u8, pc: u8, dbd: bool) -> [u8; 6] {
    [
        0x1a,
        if dbd { 0x08 } else { 0 },
        (pc << 6) | page,
        0,
        0xff,
        0,
    ]
}

#[tokio::test]
async fn mode_sense_and_select() {
    let (_, n) = setup();
    let d = do_command_in(&n, 0, &mode_sense6(0x3f, 0, false)).await;
    assert_eq!(usize::from(d[0]) + 1, d.len());
    assert_eq!(d[2] & 0x80, 0);
    assert_eq!(d[3], 8);
    assert_eq!(&d[4..12], &[0, 0, 8, 0, 0, 0, 2, 0]);
    assert_eq!(d[12], 0x01);
    // Caching page with DBD: WCE clear (write-through).
    let d = do_command_in(&n, 0, &mode_sense6(0x08, 0, true)).await;
    assert_eq!(d[3], 0);
    assert_eq!(&d[4..6], &[0x08, 0x12]);
    assert_eq!(d[6] & 0x04, 0);
    // WP on the read-only mapping.
    let d = do_command_in(&n, 1, &mode_sense6(0x0a, 0, true)).await;
    assert_eq!(d[2] & 0x80, 0x80);
    // Changeable values are all zero.
    let d = do_command_in(&n, 0, &mode_sense6(0x08, 1, true)).await;
    assert!(d[6..].iter().all(|&b| b == 0));
    // Saved values are not supported; unknown pages are invalid.
    do_command_fail(
        &n,
        0,
        &mode_sense6(0x08, 3, true),
        vec![],
        Sense::SAVING_NOT_SUPPORTED,
    )
    .await;
    do_command_fail(
        &n,
        0,
        &mode_sense6(0x19, 0, true),
        vec![],
        Sense::INVALID_FIELD_IN_CDB,
    )
    .await;
    // MODE SENSE(10) with a long LBA descriptor.
    let d = do_command_in(&n, 0, &[0x5a, 0x10, 0x3f, 0, 0, 0, 0, 0x10, 0, 0]).await;
    assert_eq!(usize::from(u16::from_be_bytes([d[0], d[1]])) + 2, d.len());
    assert_eq!(d[4] & 1, 1);
    assert_eq!(&d[6..8], &[0, 16]);
    // MODE SELECT of the current caching page is accepted, a change is not.
    let cur = do_command_in(&n, 0, &mode_sense6(0x08, 0, true)).await;
    let mut p = vec![0u8, 0, 0, 0];
    p.extend_from_slice(&cur[4..]);
    let len = p.len() as u8;
    do_command_out(&n, 0, &[0x15, 0x10, 0, 0, len, 0], p.clone()).await;
    p[6] |= 0x04;
    do_command_fail(
        &n,
        0,
        &[0x15, 0x10, 0, 0, len, 0],
        p,
        Sense::INVALID_FIELD_IN_PARAM,
    )
    .await;
    do_command_fail(
        &n,
        0,
        &[0x15, 0x11, 0, 0, 0, 0],
        vec![],
        Sense::INVALID_FIELD_IN_CDB,
    )
    .await;
}

#[tokio::test]
async fn misc_commands() {
    let (_, n) = setup();
    do_command_in(&n, 0, &[0x1b, 0, 0, 0, 1, 0]).await;
    do_command_in(&n, 0, &[0x1e, 0, 0, 0, 0, 0]).await;
    do_command_in(&n, 0, &[0x1e, 0, 0, 0, 1, 0]).await;
    let bad = Sense::INVALID_FIELD_IN_CDB;
    do_command_fail(&n, 0, &[0x1e, 0, 0, 0, 2, 0], vec![], bad).await;
    // NACA in the control byte.
    do_command_fail(
        &n,
        0,
        &[0, 0, 0, 0, 0, 4],
        vec![],
        Sense::INVALID_FIELD_IN_CDB,
    )
    .await;
}

#[tokio::test]
async fn unmap_write_same_lba_status() {
    let (_, n) = setup();
    do_command_out(&n, 0, &rw10(0x2a, 0, 64), vec![1; 64 * BS]).await;
    let gls = |lba: u64| {
        let mut c = [0u8; 16];
        c[0] = 0x9e;
        c[1] = 0x12;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[13] = 24;
        c
    };
    let d = do_command_in(&n, 0, &gls(0)).await;
    assert_eq!(d.len(), 24);
    assert_eq!(d[20] & 0x0f, 0);
    assert_eq!(u32::from_be_bytes(d[16..20].try_into().unwrap()), 64);
    // UNMAP blocks 8..24.
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&8u64.to_be_bytes());
    p.extend_from_slice(&16u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    do_command_out(&n, 0, &[0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], p).await;
    let d = do_command_in(&n, 0, &rw10(0x28, 0, 32)).await;
    assert!(d[..8 * BS].iter().all(|&b| b == 1));
    assert!(d[8 * BS..24 * BS].iter().all(|&b| b == 0));
    assert!(d[24 * BS..].iter().all(|&b| b == 1));
    let d = do_command_in(&n, 0, &gls(8)).await;
    assert_eq!(d[20] & 0x0f, 1);
    assert_eq!(u32::from_be_bytes(d[16..20].try_into().unwrap()), 16);
    do_command_fail(&n, 0, &gls(BLOCKS), vec![], Sense::LBA_OUT_OF_RANGE).await;
    // UNMAP out of range / short list / read-only.
    let mut p = vec![0, 22, 0, 16, 0, 0, 0, 0];
    p.extend_from_slice(&(BLOCKS - 1).to_be_bytes());
    p.extend_from_slice(&2u32.to_be_bytes());
    p.extend_from_slice(&[0; 4]);
    let c = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
    do_command_fail(&n, 0, &c, p.clone(), Sense::LBA_OUT_OF_RANGE).await;
    do_command_fail(&n, 1, &c, p, Sense::WRITE_PROTECTED).await;
    let c = [0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0];
    do_command_fail(&n, 0, &c, vec![0; 4], Sense::PARAM_LIST_LENGTH).await;
    do_command_out(&n, 0, &[0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0], vec![]).await;
    // WRITE SAME(10) pattern.
    do_command_out(&n, 0, &rw10(0x41, 100, 300), vec![0xee; BS]).await;
    let d = do_command_in(&n, 0, &rw10(0x28, 99, 302)).await;
    assert!(d[..BS].iter().all(|&b| b == 0));
    assert!(d[BS..301 * BS].iter().all(|&b| b == 0xee));
    assert!(d[301 * BS..].iter().all(|&b| b == 0));
    // WRITE SAME(16) UNMAP + NDOB.
    let mut c = rw16(0x93, 100, 300);
    c[1] = 0x09;
    do_command_out(&n, 0, &c, vec![]).await;
    assert!(
        do_command_in(&n, 0, &rw10(0x28, 100, 300))
            .await
            .iter()
            .all(|&b| b == 0)
    );
    // Zero blocks (WSNZ) and out of range.
    do_command_fail(
        &n,
        0,
        &rw10(0x41, 0, 0),
        vec![0; BS],
        Sense::INVALID_FIELD_IN_CDB,
    )
    .await;
    do_command_fail(
        &n,
        0,
        &rw16(0x93, BLOCKS - 1, 2),
        vec![0; BS],
        Sense::LBA_OUT_OF_RANGE,
    )
    .await;
}

#[tokio::test]
async fn compare_and_write() {
    let (_, n) = setup();
    do_command_out(&n, 0, &rw10(0x2a, 50, 2), vec![4; 2 * BS]).await;
    let caw = |lba: u64, blocks: u8| {
        let mut c = [0u8; 16];
        c[0] = 0x89;
        c[2..10].copy_from_slice(&lba.to_be_bytes());
        c[13] = blocks;
        c
    };
    let mut data = vec![4; 2 * BS];
    data.extend(vec![5; 2 * BS]);
    do_command_out(&n, 0, &caw(50, 2), data.clone()).await;
    assert!(
        do_command_in(&n, 0, &rw10(0x28, 50, 2))
            .await
            .iter()
            .all(|&b| b == 5)
    );
    // Now the medium holds 5s: the compare fails at offset 0.
    let r = run(&n, 0, &caw(50, 2), data).await;
    assert_eq!(r.sense.unwrap(), Sense::MISCOMPARE.with_info(0));
    assert!(
        do_command_in(&n, 0, &rw10(0x28, 50, 2))
            .await
            .iter()
            .all(|&b| b == 5)
    );
    let mut data = vec![5; 2 * BS];
    data[BS + 7] = 1;
    data.extend(vec![6; 2 * BS]);
    let r = run(&n, 0, &caw(50, 2), data).await;
    assert_eq!(r.sense.unwrap().info, Some(BS as u32 + 7));
    // Over the advertised maximum, or 256 blocks wrapped to 0 with Data-Out attached.
    let bad = Sense::INVALID_FIELD_IN_CDB;
    do_command_fail(&n, 0, &caw(0, 129), vec![0; 258 * BS], bad).await;
    do_command_fail(&n, 0, &caw(0, 0), vec![0; 512 * BS], bad).await;
    do_command_fail(
        &n,
        0,
        &caw(BLOCKS, 1),
        vec![0; 2 * BS],
        Sense::LBA_OUT_OF_RANGE,
    )
    .await;
    do_command_out(&n, 0, &caw(0, 0), vec![]).await;
    // Data-Out must be exactly twice the blocks.
    let iu = Sense::INVALID_FIELD_IN_IU;
    do_command_fail(&n, 0, &caw(0, 1), vec![0; 4 * BS], iu).await;
    do_command_fail(&n, 0, &caw(0, 1), vec![0; BS], iu).await;
}

#[tokio::test]
async fn report_supported_opcodes() {
    let (_, n) = setup();
    let all = do_command_in(&n, 0, &[0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]).await;
    let len = u32::from_be_bytes(all[..4].try_into().unwrap()) as usize;
    assert_eq!(len + 4, all.len());
    assert_eq!(len % 8, 0);
    assert_eq!(len / 8, opcodes::TABLE.len());
    // One command: READ(10).
    let d = do_command_in(&n, 0, &[0xa3, 0x0c, 1, 0x28, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(d[1] & 7, 3);
    assert_eq!(&d[2..4], &[0, 10]);
    assert_eq!(d[4], 0x28);
    // Unsupported opcode.
    let d = do_command_in(&n, 0, &[0xa3, 0x0c, 1, 0xc0, 0, 0, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(d[1] & 7, 1);
    // READ CAPACITY(16) with its service action; without one it is invalid.
    let d = do_command_in(&n, 0, &[0xa3, 0x0c, 2, 0x9e, 0, 0x10, 0, 0, 1, 0, 0, 0]).await;
    assert_eq!(d[1] & 7, 3);
    let bad = Sense::INVALID_FIELD_IN_CDB;
    do_command_fail(
        &n,
        0,
        &[0xa3, 0x0c, 1, 0x9e, 0, 0, 0, 0, 1, 0, 0, 0],
        vec![],
        bad,
    )
    .await;
    // With timeouts.
    let all = do_command_in(&n, 0, &[0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]).await;
    assert_eq!(all.len(), 4 + 20 * opcodes::TABLE.len());
}

fn prout(sa: u8, kind: u8, key: u64, sa_key: u64) -> ([u8; 10], Vec<u8>) {
    let mut p = vec![0u8; 24];
    p[..8].copy_from_slice(&key.to_be_bytes());
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    ([0x5f, sa, kind, 0, 0, 0, 0, 0, 24, 0], p)
}

#[tokio::test]
async fn reservations() {
    let u = unit();
    let a = nexus_for(&u, "iqn.a,i,0x1");
    let b = nexus_for(&u, "iqn.b,i,0x2");
    // SPC-2.
    do_command_in(&a, 0, &[0x16, 0, 0, 0, 0, 0]).await;
    let r = run(&b, 0, &rw10(0x28, 0, 1), vec![]).await;
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    do_command_in(&b, 0, &[0x12, 0, 0, 0, 0xff, 0]).await;
    assert_eq!(
        run(&b, 0, &[0x16, 0, 0, 0, 0, 0], vec![]).await.status,
        status::RESERVATION_CONFLICT
    );
    do_command_in(&a, 0, &[0x17, 0, 0, 0, 0, 0]).await;
    do_command_in(&b, 0, &rw10(0x28, 0, 1)).await;
    // Persistent: both register, A reserves Write Exclusive.
    let (c, p) = prout(0, 0, 0, 0xaa);
    do_command_out(&a, 0, &c, p).await;
    let (c, p) = prout(0, 0, 0, 0xbb);
    do_command_out(&b, 0, &c, p).await;
    let (c, p) = prout(1, 1, 0xaa, 0);
    do_command_out(&a, 0, &c, p).await;
    do_command_in(&b, 0, &rw10(0x28, 0, 1)).await;
    let r = run(&b, 0, &rw10(0x2a, 0, 1), vec![0; BS]).await;
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    do_command_out(&a, 0, &rw10(0x2a, 0, 1), vec![0; BS]).await;
    // READ KEYS / READ RESERVATION.
    let d = do_command_in(&b, 0, &[0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
    assert_eq!(&d[4..8], &[0, 0, 0, 16]);
    let d = do_command_in(&b, 0, &[0x5e, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
    assert_eq!(&d[4..8], &[0, 0, 0, 16]);
    assert_eq!(u64::from_be_bytes(d[8..16].try_into().unwrap()), 0xaa);
    assert_eq!(d[21], 1);
    let d = do_command_in(&b, 0, &[0x5e, 2, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
    assert_eq!(&d[..2], &[0, 8]);
    let d = do_command_in(&b, 0, &[0x5e, 3, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
    assert!(d.len() > 8);
    // Bad parameter list length.
    let (mut c, p) = prout(0, 0, 0xaa, 0xab);
    c[8] = 20;
    do_command_fail(&a, 0, &c, p, Sense::PARAM_LIST_LENGTH).await;
    // B preempts A's reservation and registration.
    let (c, p) = prout(4, 3, 0xbb, 0xaa);
    do_command_out(&b, 0, &c, p).await;
    let preempted = Sense::UA_REGISTRATIONS_PREEMPTED;
    do_command_fail(&a, 0, &rw10(0x28, 0, 1), vec![], preempted).await;
    let r = run(&a, 0, &rw10(0x28, 0, 1), vec![]).await;
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    let (c, p) = prout(3, 0, 0xbb, 0);
    do_command_out(&b, 0, &c, p).await;
    do_command_in(&a, 0, &rw10(0x28, 0, 1)).await;
    // Nexus loss releases an SPC-2 reservation.
    let c2 = nexus_for(&u, "iqn.c,i,0x3");
    do_command_in(&c2, 0, &[0x16, 0, 0, 0, 0, 0]).await;
    let r = run(&b, 0, &rw10(0x28, 0, 1), vec![]).await;
    assert_eq!(r.status, status::RESERVATION_CONFLICT);
    drop(c2);
    do_command_in(&b, 0, &rw10(0x28, 0, 1)).await;
    // LUN reset releases it too, and both nexuses see the reset.
    do_command_in(&a, 0, &[0x16, 0, 0, 0, 0, 0]).await;
    assert!(a.lun_reset(0));
    do_command_fail(&a, 0, &rw10(0x28, 0, 1), vec![], Sense::UA_LUN_RESET).await;
    do_command_fail(&b, 0, &rw10(0x28, 0, 1), vec![], Sense::UA_LUN_RESET).await;
    do_command_in(&b, 0, &[0x16, 0, 0, 0, 0, 0]).await;
}

#[tokio::test]
async fn never_panics_on_random_cdbs() {
    let (_, n) = setup();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for opcode in 0..=255u8 {
        for len in 0..32usize {
            for _ in 0..3 {
                let mut cdb: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                if let Some(b) = cdb.first_mut() {
                    *b = opcode;
                }
                // Keep transfers small so the test stays fast.
                let data = vec![0u8; (rnd() % 4096) as usize];
                let lun = rnd() % 3;
                let r = run(&n, lun, &cdb, data).await;
                if r.status == status::CHECK_CONDITION {
                    assert!(r.sense.is_some());
                }
            }
        }
    }
}

#[tokio::test]
async fn fileio_lun_through_execute() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Backstore::open(
            &BackstoreSpec {
                name: "f".into(),
                kind: BackstoreKind::Fileio,
                path: Some(dir.path().join("lun.img")),
                size: Some(4 << 20),
                block_size: 4096,
                write_cache: true,
                cache: CacheMode::Buffered,
            },
            &OpenOptions::default(),
        )
        .unwrap(),
    );
    let u = Arc::new(LogicalUnit::new(
        store,
        LunIdentity::new("F1", 0x3000_0000_0000_0001u64),
    ));
    assert_eq!((u.block_size(), u.num_blocks()), (4096, 1024));
    let n = nexus_for(&u, "iqn.f,i,0x1");
    // Fresh sparse file: unmapped, zeros.
    let mut gls = [0u8; 16];
    gls[0] = 0x9e;
    gls[1] = 0x12;
    gls[13] = 24;
    let d = do_command_in(&n, 0, &gls).await;
    assert_eq!(d[20] & 0x0f, 1);
    let mut w = rw16(0x8a, 3, 2);
    w[1] = 0x08; // FUA with write cache: fdatasync after the write
    do_command_out(&n, 0, &w, vec![0x42; 8192]).await;
    let d = do_command_in(&n, 0, &rw10(0x28, 2, 4)).await;
    assert!(d[..4096].iter().all(|&b| b == 0));
    assert!(d[4096..12288].iter().all(|&b| b == 0x42));
    assert!(d[12288..].iter().all(|&b| b == 0));
    do_command_in(&n, 0, &rw10(0x35, 0, 0)).await;
    // WCE reflects the write cache.
    let d = do_command_in(&n, 0, &mode_sense6(0x08, 0, true)).await;
    assert_eq!(d[6] & 0x04, 0x04);
    // Online grow: capacity UA, then the new size.
    let path = dir.path().join("lun.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    u.backstore().unwrap().refresh_size().unwrap();
    u.capacity_changed();
    let rc10 = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    do_command_fail(&n, 0, &rc10, vec![], Sense::UA_CAPACITY_CHANGED).await;
    let d = do_command_in(&n, 0, &rc10).await;
    assert_eq!(&d[..], &[0, 0, 0x07, 0xff, 0, 0, 0x10, 0]);
}

#[test]
fn execute_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let (_, n) = setup();
    let fut = execute(
        &n,
        ScsiCommand {
            lun: 0,
            cdb: Bytes::from_static(&[0, 0, 0, 0, 0, 0]),
            data_out: Default::default(),
            expected_in: 0,
        },
    );
    assert_send(&fut);
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<ItNexus>();
    assert_sync::<LogicalUnit>();
    assert_sync::<Backstore>();
}

/// libiscsi's prout_reserve_access matrix: (type, registered reads, registered writes,
/// unregistered reads, unregistered writes) for the second initiator.
#[tokio::test]
async fn persistent_reservation_access_matrix() {
    let cases = [
        (1u8, true, false, true, false),
        (3, false, false, false, false),
        (5, true, true, true, false),
        (6, true, true, false, false),
        (7, true, true, true, false),
        (8, true, true, false, false),
    ];
    for (kind, reg_r, reg_w, unreg_r, unreg_w) in cases {
        let u = unit();
        let a = nexus_for(&u, "iqn.a,i,0x1");
        let b = nexus_for(&u, "iqn.b,i,0x2");
        let (c, p) = prout(6, 0, 0, 0xa1);
        do_command_out(&a, 0, &c, p).await;
        let (c, p) = prout(6, 0, 0, 0xb2);
        do_command_out(&b, 0, &c, p).await;
        let (c, p) = prout(1, kind, 0xa1, 0);
        do_command_out(&a, 0, &c, p).await;
        // READ RESERVATION: key 0 for all-registrants types.
        let d = do_command_in(&a, 0, &[0x5e, 1, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
        let key = u64::from_be_bytes(d[8..16].try_into().unwrap());
        assert_eq!(key, if kind >= 7 { 0 } else { 0xa1 }, "type {kind}");
        assert_eq!(d[21] & 0x0f, kind);
        do_command_in(&a, 0, &rw10(0x28, 0, 1)).await;
        do_command_out(&a, 0, &rw10(0x2a, 0, 1), vec![0; BS]).await;
        let ok = |r: ScsiResponse| r.status == status::GOOD;
        let conflict = |r: &ScsiResponse| r.status == status::RESERVATION_CONFLICT;
        let r = run(&b, 0, &rw10(0x28, 0, 1), vec![]).await;
        assert!(
            if reg_r { ok(r) } else { conflict(&r) },
            "type {kind} reg read"
        );
        let r = run(&b, 0, &rw10(0x2a, 0, 1), vec![0; BS]).await;
        assert!(
            if reg_w { ok(r) } else { conflict(&r) },
            "type {kind} reg write"
        );
        // Unregister B.
        let (c, p) = prout(0, 0, 0xb2, 0);
        do_command_out(&b, 0, &c, p).await;
        let r = run(&b, 0, &rw10(0x28, 0, 1), vec![]).await;
        assert!(
            if unreg_r { ok(r) } else { conflict(&r) },
            "type {kind} unreg read"
        );
        let r = run(&b, 0, &rw10(0x2a, 0, 1), vec![0; BS]).await;
        assert!(
            if unreg_w { ok(r) } else { conflict(&r) },
            "type {kind} unreg write"
        );
        // TEST UNIT READY, INQUIRY and READ CAPACITY never conflict.
        do_command_in(&b, 0, &[0, 0, 0, 0, 0, 0]).await;
        do_command_in(&b, 0, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]).await;
        // Release with the right type, then unregister A.
        let (c, p) = prout(2, kind, 0xa1, 0);
        do_command_out(&a, 0, &c, p).await;
        let (c, p) = prout(0, 0, 0xa1, 0);
        do_command_out(&a, 0, &c, p).await;
        let d = do_command_in(&a, 0, &[0x5e, 0, 0, 0, 0, 0, 0, 0x10, 0, 0]).await;
        assert_eq!(&d[4..8], &[0, 0, 0, 0]);
        // PR IN service actions above 3 are invalid.
        do_command_fail(
            &a,
            0,
            &[0x5e, 4, 0, 0, 0, 0, 0, 0x10, 0, 0],
            vec![],
            Sense::INVALID_FIELD_IN_CDB,
        )
        .await;
    }
}

/// Rough per-command cost on a ramdisk: `cargo test --release -- --ignored bench`.
#[tokio::test]
#[ignore]
async fn bench_ramdisk_4k_reads_and_writes() {
    let (_, n) = setup();
    let iters = 200_000u32;
    let t = std::time::Instant::now();
    for i in 0..iters {
        let lba = (i * 8) % (BLOCKS as u32 - 8);
        let r = run(&n, 0, &rw10(0x28, lba, 8), Vec::new()).await;
        assert_eq!(r.data_in.len(), 4096);
    }
    let read = t.elapsed() / iters;
    let t = std::time::Instant::now();
    for i in 0..iters {
        let lba = (i * 8) % (BLOCKS as u32 - 8);
        let r = run(&n, 0, &rw10(0x2a, lba, 8), vec![1; 4096]).await;
        assert_eq!(r.status, status::GOOD);
    }
    let write = t.elapsed() / iters;
    println!("4k read {read:?}/cmd, 4k write {write:?}/cmd");
}
