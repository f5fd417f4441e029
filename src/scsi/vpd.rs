//! Vital product data pages (INQUIRY with EVPD=1).

use super::Ctx;
use super::sbc::{
    MAX_CAW_BLOCKS, MAX_UNMAP_DESCRIPTORS, max_transfer_blocks, max_write_same_blocks,
};
use super::spc::target_device_name;

/// The supported VPD pages, in ascending order.
pub const PAGES: [u8; 6] = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

fn page_with(code: u8, body: Vec<u8>) -> Vec<u8> {
    let mut d = Vec::with_capacity(4 + body.len());
    d.extend_from_slice(&[0x00, code]);
    d.extend_from_slice(&(body.len() as u16).to_be_bytes());
    d.extend_from_slice(&body);
    d
}

/// VPD page `code`, or None when it is not supported.
pub fn page(ctx: &Ctx<'_>, code: u8) -> Option<Vec<u8>> {
    let unit = ctx.unit();
    let bs = unit.block_size();
    // Offline: the limits and provisioning of the device are not known; report none.
    let store = unit.backstore();
    let limits = store.as_ref().map(|s| *s.limits()).unwrap_or_default();
    let discard = store.as_ref().is_some_and(|s| s.supports_discard());
    let body = match code {
        0x00 => PAGES.to_vec(),
        0x80 => unit.identity().serial.as_bytes().to_vec(),
        0x83 => device_identification(ctx),
        0xb0 => block_limits(bs, &limits, discard),
        0xb1 => {
            let mut b = vec![0u8; 0x3c];
            // MEDIUM ROTATION RATE: 1 = non-rotating; 0 = not reported (a rotating device
            // whose speed we do not know, or no device to ask).
            if limits.rotational == Some(false) {
                b[1] = 0x01;
            }
            b
        }
        0xb2 => {
            let mut b = vec![0u8; 4];
            if let Some(store) = store.as_ref().filter(|s| s.supports_discard()) {
                b[1] = 0x80 | 0x40 | 0x20; // LBPU, LBPWS, LBPWS10
                if store.discard_zeroes() {
                    b[1] |= 0x04; // LBPRZ
                }
            }
            b[2] = if store.as_ref().is_some_and(|s| s.thin()) {
                0x02
            } else {
                0x01
            };
            b
        }
        _ => return None,
    };
    Some(page_with(code, body))
}

/// Bytes to blocks of `bs`, at least 1 when `bytes` is non-zero, saturating at u32::MAX.
fn blocks(bytes: u64, bs: u32) -> u32 {
    if bytes == 0 {
        return 0;
    }
    u32::try_from((bytes / u64::from(bs)).max(1)).unwrap_or(u32::MAX)
}

/// Block Limits (B0), from what the device reports where it does: the largest transfer
/// is ours capped by the device's `max_hw_sectors_kb`, the optimal one its
/// `optimal_io_size` (an md stripe) with `minimum_io_size` as granularity, the unmap
/// granularity and alignment its discard granularity and alignment.
fn block_limits(bs: u32, l: &crate::backstore::Limits, discard: bool) -> Vec<u8> {
    let mut b = vec![0u8; 0x3c];
    b[0] = 0x01; // WSNZ
    b[1] = MAX_CAW_BLOCKS as u8; // maximum COMPARE AND WRITE length
    let ours = max_transfer_blocks(bs);
    let max = match blocks(l.max_transfer, bs) {
        0 => ours,
        dev => dev.min(ours),
    };
    let opt_gran = match blocks(l.minimum_io, bs) {
        0 => (4096 / bs).max(1),
        g => g,
    };
    b[2..4].copy_from_slice(&(opt_gran.min(u32::from(u16::MAX)) as u16).to_be_bytes());
    b[4..8].copy_from_slice(&max.to_be_bytes());
    let opt = match blocks(l.optimal_io, bs) {
        0 => ((1u32 << 20) / bs).min(max),
        o => o.min(max),
    };
    b[8..12].copy_from_slice(&opt.to_be_bytes());
    b[12..16].copy_from_slice(&max.to_be_bytes()); // maximum prefetch length
    if discard {
        let max_unmap = match blocks(l.discard_max_bytes, bs) {
            0 => u32::MAX,
            n => n,
        };
        b[16..20].copy_from_slice(&max_unmap.to_be_bytes());
        b[20..24].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
        let gran = match blocks(l.discard_granularity, bs) {
            0 => (4096 / bs).max(1),
            g => g,
        };
        b[24..28].copy_from_slice(&gran.to_be_bytes());
        let align = blocks(l.discard_alignment, bs);
        if align != 0 && align < gran {
            b[28..32].copy_from_slice(&(0x8000_0000 | align).to_be_bytes()); // UGAVALID
        }
    }
    b[32..40].copy_from_slice(&u64::from(max_write_same_blocks(bs)).to_be_bytes());
    b
}

fn designator(out: &mut Vec<u8>, b0: u8, b1: u8, value: &[u8]) {
    out.extend_from_slice(&[b0, b1, 0, value.len() as u8]);
    out.extend_from_slice(value);
}

/// SCSI name string designator (UTF-8, NUL-terminated, padded to a multiple of 4).
fn name_string(out: &mut Vec<u8>, b1: u8, name: &str) {
    let mut v = name.as_bytes().to_vec();
    v.truncate(251);
    v.push(0);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    designator(out, 0x53, b1, &v);
}

/// Device Identification (SPC-4 7.8.6), the designators LIO presents where they apply to
/// us: the unit's NAA (8 or 16 bytes) and T10 vendor ID, then for the port the command came
/// through its relative target port identifier and SCSI name string, and the target
/// device's SCSI name string. (LIO's target port group and LU group designators belong to
/// ALUA, which this target does not offer.)
fn device_identification(ctx: &Ctx<'_>) -> Vec<u8> {
    let unit = ctx.unit();
    let id = unit.identity();
    let port = ctx.nexus.target_port();
    let mut d = Vec::with_capacity(160);
    // NAA, binary, associated with the logical unit.
    designator(&mut d, 0x01, 0x03, id.naa.as_bytes());
    // T10 vendor ID, ASCII, logical unit.
    designator(&mut d, 0x02, 0x01, &id.t10_vendor_id());
    // Relative target port: iSCSI, binary, PIV, target port association.
    let rel = u32::from(unit.reservations.relative_port_id(port));
    designator(&mut d, 0x51, 0x94, &rel.to_be_bytes());
    // SCSI name strings: iSCSI, UTF-8, PIV; the target port, then the target device.
    name_string(&mut d, 0x98, port);
    name_string(&mut d, 0xa8, target_device_name(port));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backstore::Limits;
    use crate::backstore::{Backstore, BackstoreKind, BackstoreSpec};
    use crate::scsi::{ItNexus, LogicalUnit, LunIdentity, MappedLun, Naa, ScsiCommand, execute};
    use bytes::Bytes;
    use std::sync::Arc;

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn block_limits_follow_the_device() {
        let l = Limits {
            rotational: Some(true),
            discard_granularity: 64 << 10,
            discard_alignment: 8 << 10,
            discard_max_bytes: 1 << 30,
            optimal_io: 512 << 10,
            minimum_io: 64 << 10,
            max_transfer: 1 << 20,
            write_zeroes: true,
        };
        let b = block_limits(512, &l, true);
        assert_eq!(u16::from_be_bytes([b[2], b[3]]), 128, "optimal granularity");
        assert_eq!(be32(&b, 4), 2048, "max transfer: the device's 1 MiB");
        assert_eq!(be32(&b, 8), 1024, "optimal transfer: the stripe");
        assert_eq!(be32(&b, 16), 1 << 21, "max unmap LBA count");
        assert_eq!(be32(&b, 24), 128, "unmap granularity");
        assert_eq!(be32(&b, 28), 0x8000_0010, "UGAVALID + alignment 16 blocks");
        let none = block_limits(4096, &Limits::default(), false);
        assert_eq!(be32(&none, 4), max_transfer_blocks(4096));
        assert_eq!(be32(&none, 8), 256);
        assert_eq!(be32(&none, 16), 0, "no unmap");
    }

    const PORT: &str = "iqn.2026-11.org.example:tgt,t,0x0001";

    async fn inquiry(n: &ItNexus, cdb: [u8; 6]) -> Bytes {
        let r = execute(
            n,
            ScsiCommand {
                lun: 0,
                cdb: Bytes::copy_from_slice(&cdb),
                data_out: Default::default(),
                expected_in: 4096,
            },
        )
        .await;
        assert_eq!(r.status, 0, "{:?}", r.sense);
        r.data_in
    }

    /// (designator byte 0, byte 1, identifier) of a Device Identification page.
    fn designators(d: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
        let mut v = Vec::new();
        let mut p = &d[4..];
        while p.len() >= 4 {
            let len = usize::from(p[3]);
            v.push((p[0], p[1], p[4..4 + len].to_vec()));
            p = &p[4 + len..];
        }
        v
    }

    #[tokio::test]
    async fn pinned_identity_in_inquiry_and_vpd() {
        let store = Backstore::open(
            &BackstoreSpec {
                name: "r".into(),
                kind: BackstoreKind::Ramdisk,
                path: None,
                size: Some(1 << 20),
                block_size: 512,
                write_cache: false,
                cache: crate::backstore::CacheMode::Buffered,
            },
            &Default::default(),
        )
        .unwrap();
        let mut id = LunIdentity::new(
            "a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9",
            Naa::parse("naa.6001405a1b2c3d4e5f647189293a4b5c").unwrap(),
        );
        id.vendor = Some("LIO-ORG".into());
        id.product = Some("IBLOCK".into());
        let unit = Arc::new(LogicalUnit::new(Arc::new(store), id));
        unit.reservations.set_target_ports(vec![(PORT.into(), 2)]);
        let n = ItNexus::new(
            "iqn.x:i,i,0x000000000001".into(),
            PORT.into(),
            vec![MappedLun {
                lun: 0,
                unit,
                read_only: false,
            }],
        );
        let std = inquiry(&n, [0x12, 0, 0, 0, 0xff, 0]).await;
        assert_eq!(&std[8..16], b"LIO-ORG ");
        assert_eq!(&std[16..32], b"IBLOCK          ");
        let serial = inquiry(&n, [0x12, 1, 0x80, 0, 0xff, 0]).await;
        assert_eq!(&serial[4..], b"a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9");
        let d = inquiry(&n, [0x12, 1, 0x83, 0, 0xff, 0]).await;
        assert_eq!(usize::from(u16::from_be_bytes([d[2], d[3]])) + 4, d.len());
        let ds = designators(&d);
        assert_eq!(ds.len(), 5);
        assert_eq!((ds[0].0, ds[0].1), (0x01, 0x03));
        assert_eq!(hex::encode(&ds[0].2), "6001405a1b2c3d4e5f647189293a4b5c");
        assert_eq!((ds[1].0, ds[1].1), (0x02, 0x01));
        assert_eq!(
            ds[1].2,
            b"LIO-ORG IBLOCK:a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9\0"
        );
        assert_eq!(
            (ds[2].0, ds[2].1, &ds[2].2[..]),
            (0x51, 0x94, &[0, 0, 0, 2][..])
        );
        assert_eq!((ds[3].0, ds[3].1), (0x53, 0x98));
        assert!(ds[3].2.starts_with(PORT.as_bytes()) && ds[3].2.len() % 4 == 0);
        assert_eq!((ds[4].0, ds[4].1), (0x53, 0xa8));
        assert_eq!(&ds[4].2[..28], b"iqn.2026-11.org.example:tgt\0");
    }
}
