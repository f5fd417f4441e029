//! MODE SENSE / MODE SELECT: read-write error recovery (0x01), caching (0x08) and
//! control (0x0A) pages. Nothing is changeable; MODE SELECT accepts pages equal to the
//! current values.

use super::sense::Sense;
use super::{CmdResult, Ctx, reply, spc};

/// Page control: current values.
const PC_CURRENT: u8 = 0;
/// Page control: changeable mask.
const PC_CHANGEABLE: u8 = 1;
/// Page control: saved values.
const PC_SAVED: u8 = 3;

/// Supported page codes, in the order "all pages" reports them.
const PAGES: [u8; 3] = [0x01, 0x08, 0x0a];

/// One mode page (current or default values), or its changeable mask.
fn page(ctx: &Ctx<'_>, code: u8, pc: u8) -> Option<Vec<u8>> {
    let mut p = match code {
        0x01 => vec![0x01, 0x0a, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0], // AWRE
        0x08 => {
            let mut p = vec![0u8; 20];
            p[0] = 0x08;
            p[1] = 0x12;
            if ctx.unit().write_cache() {
                p[2] = 0x04; // WCE
            }
            p
        }
        // Control: QAM unrestricted; TAS: a task aborted by another I_T nexus ends with
        // TASK ABORTED status (what the task set reports); busy timeout unlimited.
        0x0a => vec![0x0a, 0x0a, 0, 0x10, 0, 0x40, 0, 0, 0xff, 0xff, 0, 0],
        _ => return None,
    };
    if pc == PC_CHANGEABLE {
        p[2..].fill(0);
    }
    Some(p)
}

/// MODE SENSE (6) and (10).
#[allow(clippy::too_many_arguments)]
pub fn sense(
    ctx: &Ctx<'_>,
    ten: bool,
    dbd: bool,
    llbaa: bool,
    pc: u8,
    code: u8,
    subpage: u8,
    alloc: u32,
) -> CmdResult {
    if pc == PC_SAVED {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let mut pages = Vec::with_capacity(64);
    match (code, subpage) {
        (0x3f, 0x00 | 0xff) => {
            for c in PAGES {
                pages.extend(page(ctx, c, pc).unwrap_or_default());
            }
        }
        (c, 0) => pages = page(ctx, c, pc).ok_or(Sense::INVALID_FIELD_IN_CDB)?,
        _ => return Err(Sense::INVALID_FIELD_IN_CDB),
    }
    let unit = ctx.unit();
    let blocks = unit.num_blocks();
    let bs = unit.block_size();
    let bd: Vec<u8> = match (dbd, ten && llbaa) {
        (true, _) => Vec::new(),
        (false, true) => {
            let mut b = vec![0u8; 16];
            b[..8].copy_from_slice(&blocks.to_be_bytes());
            b[12..16].copy_from_slice(&bs.to_be_bytes());
            b
        }
        (false, false) => {
            let mut b = vec![0u8; 8];
            let n = u32::try_from(blocks).unwrap_or(u32::MAX);
            b[..4].copy_from_slice(&n.to_be_bytes());
            b[5..8].copy_from_slice(&bs.to_be_bytes()[1..]);
            b
        }
    };
    // Device-specific parameter: WP for read-only mappings, DPOFUA.
    let dsp = 0x10 | if ctx.m.read_only { 0x80 } else { 0 };
    let mut d = Vec::with_capacity(8 + bd.len() + pages.len());
    if ten {
        let len = (6 + bd.len() + pages.len()) as u16;
        d.extend_from_slice(&len.to_be_bytes());
        d.extend_from_slice(&[0, dsp, u8::from(bd.len() == 16), 0]);
        d.extend_from_slice(&(bd.len() as u16).to_be_bytes());
    } else {
        let len = (3 + bd.len() + pages.len()).min(255) as u8;
        d.extend_from_slice(&[len, 0, dsp, bd.len() as u8]);
    }
    d.extend_from_slice(&bd);
    d.extend_from_slice(&pages);
    Ok(reply(d, alloc))
}

/// MODE SELECT (6) and (10): accepts block descriptors matching the geometry and pages
/// equal to the current values; anything else is INVALID FIELD IN PARAMETER LIST.
pub fn select(ctx: &Ctx<'_>, ten: bool, sp: bool, len: u32, data: &[u8]) -> CmdResult {
    if sp {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    let len = len as usize;
    if len == 0 {
        return Ok(spc::ok());
    }
    let hdr = if ten { 8 } else { 4 };
    if len < hdr || data.len() < len {
        return Err(Sense::PARAM_LIST_LENGTH);
    }
    let data = &data[..len];
    let bd_len = if ten {
        usize::from(u16::from_be_bytes([data[6], data[7]]))
    } else {
        usize::from(data[3])
    };
    let Some(bd) = data.get(hdr..hdr + bd_len) else {
        return Err(Sense::PARAM_LIST_LENGTH);
    };
    let bs = ctx.unit().block_size();
    for chunk in bd.chunks(if bd_len == 16 { 16 } else { 8 }) {
        let got = match chunk.len() {
            8 => u32::from_be_bytes([0, chunk[5], chunk[6], chunk[7]]),
            16 => u32::from_be_bytes([chunk[12], chunk[13], chunk[14], chunk[15]]),
            _ => return Err(Sense::PARAM_LIST_LENGTH),
        };
        if got != bs && got != 0 {
            return Err(Sense::INVALID_FIELD_IN_PARAM);
        }
    }
    let mut rest = &data[hdr + bd_len..];
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err(Sense::PARAM_LIST_LENGTH);
        }
        let code = rest[0] & 0x3f;
        if rest[0] & 0x40 != 0 {
            // Subpage format: no such pages here.
            return Err(Sense::INVALID_FIELD_IN_PARAM);
        }
        let plen = 2 + usize::from(rest[1]);
        let Some(p) = rest.get(..plen) else {
            return Err(Sense::PARAM_LIST_LENGTH);
        };
        let cur = page(ctx, code, PC_CURRENT).ok_or(Sense::INVALID_FIELD_IN_PARAM)?;
        if p.len() != cur.len() || p[1..] != cur[1..] {
            return Err(Sense::INVALID_FIELD_IN_PARAM);
        }
        rest = &rest[plen..];
    }
    Ok(spc::ok())
}
