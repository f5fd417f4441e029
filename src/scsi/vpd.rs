//! Vital product data pages (INQUIRY with EVPD=1).

use super::Ctx;
use super::sbc::{
    MAX_CAW_BLOCKS, MAX_UNMAP_DESCRIPTORS, max_transfer_blocks, max_write_same_blocks,
};
use super::spc::{VENDOR, target_port_id};

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
    let store = unit.backstore();
    let body = match code {
        0x00 => PAGES.to_vec(),
        0x80 => unit.identity().serial.as_bytes().to_vec(),
        0x83 => device_identification(ctx),
        0xb0 => {
            let mut b = vec![0u8; 0x3c];
            b[0] = 0x01; // WSNZ
            b[1] = MAX_CAW_BLOCKS as u8; // maximum COMPARE AND WRITE length
            let gran = (4096 / bs).max(1) as u16;
            b[2..4].copy_from_slice(&gran.to_be_bytes());
            b[4..8].copy_from_slice(&max_transfer_blocks(bs).to_be_bytes());
            b[8..12].copy_from_slice(&((1u32 << 20) / bs).to_be_bytes());
            b[12..16].copy_from_slice(&max_transfer_blocks(bs).to_be_bytes());
            if store.supports_discard() {
                b[16..20].copy_from_slice(&u32::MAX.to_be_bytes());
                b[20..24].copy_from_slice(&MAX_UNMAP_DESCRIPTORS.to_be_bytes());
                b[24..28].copy_from_slice(&u32::from(gran).to_be_bytes());
            }
            b[32..40].copy_from_slice(&u64::from(max_write_same_blocks(bs)).to_be_bytes());
            b
        }
        0xb1 => {
            let mut b = vec![0u8; 0x3c];
            b[1] = 0x01; // non-rotating medium
            b
        }
        0xb2 => {
            let mut b = vec![0u8; 4];
            if store.supports_discard() {
                b[1] = 0x80 | 0x40 | 0x20; // LBPU, LBPWS, LBPWS10
                if store.discard_zeroes() {
                    b[1] |= 0x04; // LBPRZ
                }
            }
            b[2] = if store.thin() { 0x02 } else { 0x01 };
            b
        }
        _ => return None,
    };
    Some(page_with(code, body))
}

fn designator(out: &mut Vec<u8>, b0: u8, b1: u8, value: &[u8]) {
    out.extend_from_slice(&[b0, b1, 0, value.len() as u8]);
    out.extend_from_slice(value);
}

fn device_identification(ctx: &Ctx<'_>) -> Vec<u8> {
    let id = ctx.unit().identity();
    let mut d = Vec::with_capacity(128);
    // NAA, binary, associated with the logical unit.
    designator(&mut d, 0x01, 0x03, &id.naa.to_be_bytes());
    // T10 vendor ID: vendor + serial, ASCII.
    let mut t10 = VENDOR.to_vec();
    t10.extend_from_slice(id.serial.as_bytes());
    t10.truncate(252);
    designator(&mut d, 0x02, 0x01, &t10);
    // Relative target port (iSCSI, PIV, target port association).
    let rel = u32::from(target_port_id(ctx.nexus.target_port()));
    designator(&mut d, 0x51, 0x94, &rel.to_be_bytes());
    // SCSI name string of the target port, UTF-8, NUL-terminated, padded to 4.
    let mut name = ctx.nexus.target_port().as_bytes().to_vec();
    name.truncate(250);
    name.push(0);
    while name.len() % 4 != 0 {
        name.push(0);
    }
    designator(&mut d, 0x53, 0x98, &name);
    d
}
