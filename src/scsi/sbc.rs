//! SBC commands: capacity, READ/WRITE/VERIFY, cache, UNMAP, WRITE SAME, COMPARE AND
//! WRITE, GET LBA STATUS.

use std::time::Instant;

use bytes::Bytes;

use super::sense::Sense;
use super::{CmdResult, Ctx, ScsiResponse, reply, spc};
use crate::backstore::health::{Failure, Op};
use crate::backstore::{BackstoreError, Cause};
use crate::iobuf::IoBuf;

/// Largest READ/WRITE transfer, in bytes (Block Limits MAXIMUM TRANSFER LENGTH).
pub const MAX_TRANSFER_BYTES: u32 = 32 << 20;
/// Largest WRITE SAME, in bytes.
pub const MAX_WRITE_SAME_BYTES: u32 = 1 << 30;
/// Most UNMAP block descriptors per command.
pub const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// Largest COMPARE AND WRITE, in blocks (VPD B0). Below 255 so that an initiator probing
/// max + 1 can express it in the one-byte NUMBER OF LOGICAL BLOCKS field.
pub const MAX_CAW_BLOCKS: u32 = 128;
/// Bytes per write while WRITE SAME fills a range.
const WRITE_SAME_CHUNK: usize = 1 << 20;

/// Maximum transfer length in blocks.
pub fn max_transfer_blocks(bs: u32) -> u32 {
    MAX_TRANSFER_BYTES / bs
}

/// Maximum WRITE SAME length in blocks.
pub fn max_write_same_blocks(bs: u32) -> u32 {
    MAX_WRITE_SAME_BYTES / bs
}

/// Maps a backstore failure of `op` to sense, by cause (the one place this is decided):
/// - medium errors (EIO, a read of a range whose write failed): MEDIUM ERROR, UNRECOVERED
///   READ ERROR (11/00) for reads, WRITE ERROR (0C/00) for writes, flushes and discards;
/// - ENOSPC/EDQUOT: DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT (27/07), what SBC
///   asks of thin storage out of space (no soft threshold is advertised in VPD B2, so the
///   threshold unit attention does not apply);
/// - EROFS: DATA PROTECT, WRITE PROTECTED (27/00);
/// - storage gone (ENODEV, ENXIO, ...): NOT READY (04/00), and the unit goes offline;
/// - anything else: HARDWARE ERROR, INTERNAL TARGET FAILURE (44/00).
pub fn io_sense(op: Op, e: &BackstoreError) -> Sense {
    match e.cause() {
        Cause::Medium if op == Op::Read => Sense::READ_ERROR,
        Cause::Medium => Sense::WRITE_ERROR,
        Cause::NoSpace => Sense::SPACE_ALLOCATION_FAILED,
        Cause::ReadOnly => Sense::WRITE_PROTECTED,
        Cause::Gone => Sense::NOT_READY,
        Cause::Internal => Sense::INTERNAL_TARGET_FAILURE,
    }
}

/// A failed backstore operation of a command at `lba`: counted and logged (rate-limited)
/// by the unit's health; when the storage turns out to be gone, the unit goes offline and
/// the command gets NOT READY. Returns the sense for the command.
fn failed(ctx: &Ctx<'_>, op: Op, lba: u64, e: BackstoreError) -> Sense {
    let unit = ctx.unit();
    unit.health.error(
        Instant::now(),
        Failure {
            op,
            lba,
            lun: ctx.m.lun,
            initiator: ctx.nexus.initiator_port(),
            error: &e,
        },
    );
    let cause = e.cause();
    if let (Cause::Gone | Cause::Medium, Some(store)) = (cause, &ctx.store) {
        let gone = match store.check_present() {
            Err(reason) => Some(reason),
            Ok(()) if cause == Cause::Gone => Some(e.to_string()),
            Ok(()) => None,
        };
        if let Some(reason) = gone {
            unit.set_offline_if(store, &reason);
            return Sense::NOT_READY;
        }
    }
    io_sense(op, &e)
}

/// Checks `lba`..`lba + blocks` against the capacity; returns (byte offset, byte length).
fn range(ctx: &Ctx<'_>, lba: u64, blocks: u64) -> Result<(u64, u64), Sense> {
    let unit = ctx.unit();
    let n = unit.num_blocks();
    match lba.checked_add(blocks) {
        Some(end) if end <= n => {}
        _ => return Err(Sense::LBA_OUT_OF_RANGE),
    }
    let bs = u64::from(unit.block_size());
    Ok((lba * bs, blocks * bs))
}

/// Range check plus the maximum transfer length, for data-moving commands.
fn xfer(ctx: &Ctx<'_>, lba: u64, blocks: u32) -> Result<(u64, usize), Sense> {
    if blocks > max_transfer_blocks(ctx.unit().block_size()) {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    let (off, len) = range(ctx, lba, u64::from(blocks))?;
    Ok((off, len as usize))
}

/// READ CAPACITY (10).
pub fn read_capacity_10(ctx: &Ctx<'_>) -> ScsiResponse {
    let unit = ctx.unit();
    let last = unit.num_blocks().saturating_sub(1);
    let last = u32::try_from(last).unwrap_or(u32::MAX);
    let mut d = Vec::with_capacity(8);
    d.extend_from_slice(&last.to_be_bytes());
    d.extend_from_slice(&unit.block_size().to_be_bytes());
    ScsiResponse::good(Bytes::from(d))
}

/// READ CAPACITY (16).
pub fn read_capacity_16(ctx: &Ctx<'_>, alloc: u32) -> ScsiResponse {
    let unit = ctx.unit();
    let mut d = vec![0u8; 32];
    d[..8].copy_from_slice(&unit.num_blocks().saturating_sub(1).to_be_bytes());
    d[8..12].copy_from_slice(&unit.block_size().to_be_bytes());
    let Ok(store) = ctx.store() else {
        return ScsiResponse::check(Sense::NOT_READY);
    };
    if store.supports_discard() {
        d[14] = 0x80; // LBPME
        if store.discard_zeroes() {
            d[14] |= 0x40; // LBPRZ
        }
    }
    reply(d, alloc)
}

/// READ (6/10/12/16): the backstore buffer is the Data-In, uncopied.
///
/// Reads no more than the initiator expects (rounded up to whole blocks): a READ whose
/// CDB asks for more than its expected data transfer length does not make the target
/// hold the rest; the response says how much the CDB asked for (the overflow residual).
pub async fn read(ctx: &Ctx<'_>, lba: u64, blocks: u32) -> CmdResult {
    let (off, len) = xfer(ctx, lba, blocks)?;
    if len == 0 {
        return Ok(spc::ok());
    }
    let bs = ctx.unit().block_size() as usize;
    let want = (ctx.expected_in as usize).min(len).div_ceil(bs) * bs;
    let data = ctx
        .store()?
        .read(off, want)
        .await
        .map_err(|e| failed(ctx, Op::Read, lba, e))?;
    ctx.unit().health.ok();
    let mut r = ScsiResponse::good(data);
    if want < len {
        r.data_in_len = Some(len as u32);
    }
    Ok(r)
}

/// WRITE (6/10/12/16) and WRITE AND VERIFY: `data` goes to the backstore uncopied.
pub async fn write(ctx: &Ctx<'_>, lba: u64, blocks: u32, fua: bool, mut data: IoBuf) -> CmdResult {
    let (off, len) = xfer(ctx, lba, blocks)?;
    ctx.writable()?;
    if len == 0 {
        return Ok(spc::ok());
    }
    if data.len() < len {
        // Data-Out shorter than the transfer length (EDTL < SPDTL): like LIO, write the
        // whole blocks that did arrive and report GOOD; the transport reports the
        // overflow residual (RFC 7143 §11.4.5.2), which is what libiscsi expects.
        let bs = ctx.unit().block_size() as usize;
        let whole = data.len() / bs * bs;
        if whole == 0 {
            return Ok(spc::ok());
        }
        data.truncate(whole);
    } else {
        data.truncate(len);
    }
    ctx.store()?
        .write(off, data, fua)
        .await
        .map_err(|e| failed(ctx, Op::Write, lba, e))?;
    ctx.unit().health.ok();
    Ok(spc::ok())
}

/// Offset of the first differing byte of `a` and `b` (equal lengths), if any.
fn first_mismatch(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// VERIFY (10/12/16): BYTCHK 0 checks the range; 1 compares the data; 3 compares one
/// block against every block.
pub async fn verify(ctx: &Ctx<'_>, lba: u64, blocks: u32, bytchk: u8, data: &[u8]) -> CmdResult {
    let (off, len) = xfer(ctx, lba, blocks)?;
    if bytchk == 0 || len == 0 {
        return Ok(spc::ok());
    }
    let bs = ctx.unit().block_size() as usize;
    let want = if bytchk == 3 { bs } else { len };
    let Some(expected) = data.get(..want) else {
        return Err(Sense::INVALID_FIELD_IN_IU);
    };
    let medium = ctx
        .store()?
        .read(off, len)
        .await
        .map_err(|e| failed(ctx, Op::Read, lba, e))?;
    let mismatch = if bytchk == 3 {
        medium
            .chunks(bs)
            .enumerate()
            .find_map(|(i, c)| first_mismatch(c, expected).map(|o| i * bs + o))
    } else {
        first_mismatch(&medium, expected)
    };
    match mismatch {
        Some(o) => Err(Sense::MISCOMPARE.with_info(o as u32)),
        None => Ok(spc::ok()),
    }
}

/// SYNCHRONIZE CACHE (10/16); `blocks == 0` covers up to the end of the medium.
pub async fn sync_cache(ctx: &Ctx<'_>, lba: u64, blocks: u32) -> CmdResult {
    range(ctx, lba, u64::from(blocks))?;
    ctx.store()?
        .flush()
        .await
        .map_err(|e| failed(ctx, Op::Flush, lba, e))?;
    Ok(spc::ok())
}

/// PRE-FETCH (10/16): range check only (the page cache does the rest).
pub fn pre_fetch(ctx: &Ctx<'_>, lba: u64, blocks: u32) -> CmdResult {
    range(ctx, lba, u64::from(blocks))?;
    Ok(spc::ok())
}

/// UNMAP: validates every descriptor, then deallocates each range.
pub async fn unmap(ctx: &Ctx<'_>, len: u32, data: &[u8]) -> CmdResult {
    ctx.writable()?;
    let len = len as usize;
    if len == 0 {
        return Ok(spc::ok());
    }
    if len < 8 || data.len() < 8 {
        return Err(Sense::PARAM_LIST_LENGTH);
    }
    let data = &data[..len.min(data.len())];
    let bd_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let descs = &data[8..];
    let descs = &descs[..bd_len.min(descs.len()) / 16 * 16];
    if descs.len() / 16 > MAX_UNMAP_DESCRIPTORS as usize {
        return Err(Sense::INVALID_FIELD_IN_PARAM);
    }
    let mut ranges = Vec::with_capacity(descs.len() / 16);
    for d in descs.chunks_exact(16) {
        let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let n = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        ranges.push(range(ctx, lba, u64::from(n))?);
    }
    let store = ctx.store()?;
    if !store.supports_discard() {
        // Deallocation is advisory: nothing to do.
        return Ok(spc::ok());
    }
    let bs = u64::from(ctx.unit().block_size());
    for (off, len) in ranges {
        store
            .discard(off, len)
            .await
            .map_err(|e| failed(ctx, Op::Discard, off / bs, e))?;
    }
    Ok(spc::ok())
}

/// WRITE SAME (10/16), with UNMAP and NDOB.
pub async fn write_same(
    ctx: &Ctx<'_>,
    lba: u64,
    blocks: u32,
    unmap: bool,
    ndob: bool,
    data: &[u8],
) -> CmdResult {
    let unit = ctx.unit();
    let bs = unit.block_size() as usize;
    // WSNZ: a zero length is not "to the end of the medium".
    if blocks == 0 || blocks > max_write_same_blocks(bs as u32) {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    let (off, len) = range(ctx, lba, u64::from(blocks))?;
    ctx.writable()?;
    let zeros;
    let block: &[u8] = if ndob {
        zeros = vec![0u8; bs];
        &zeros
    } else {
        data.get(..bs).ok_or(Sense::INVALID_FIELD_IN_IU)?
    };
    let store = ctx.store()?;
    let is_zero = block.iter().all(|&b| b == 0);
    if unmap && is_zero && store.supports_discard() && store.discard_zeroes() {
        store
            .discard(off, len)
            .await
            .map_err(|e| failed(ctx, Op::Discard, lba, e))?;
        return Ok(spc::ok());
    }
    if is_zero && store.kind() == crate::backstore::BackstoreKind::Block {
        // BLKZEROOUT: offloaded to the device where it can (WRITE ZEROES).
        store
            .write_zeroes(off, len)
            .await
            .map_err(|e| failed(ctx, Op::Write, lba, e))?;
        return Ok(spc::ok());
    }
    let per_chunk = (WRITE_SAME_CHUNK / bs).max(1) as u64;
    let mut done = 0u64;
    let total = u64::from(blocks);
    while done < total {
        let n = (total - done).min(per_chunk);
        let mut buf = IoBuf::filled(n as usize * bs);
        for chunk in buf.chunks_exact_mut(bs) {
            chunk.copy_from_slice(block);
        }
        store
            .write(off + done * bs as u64, buf, false)
            .await
            .map_err(|e| failed(ctx, Op::Write, lba + done, e))?;
        done += n;
    }
    Ok(spc::ok())
}

/// COMPARE AND WRITE: atomic against other COMPARE AND WRITEs on the unit.
pub async fn compare_and_write(
    ctx: &Ctx<'_>,
    lba: u64,
    blocks: u32,
    fua: bool,
    mut data: IoBuf,
) -> CmdResult {
    // A zero NUMBER OF LOGICAL BLOCKS with Data-Out attached is how a too-large count
    // (256) arrives in the one-byte field: refuse it rather than silently do nothing.
    if blocks > MAX_CAW_BLOCKS || (blocks == 0 && !data.is_empty()) {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    let (off, len) = xfer(ctx, lba, blocks)?;
    ctx.writable()?;
    if len == 0 {
        return Ok(spc::ok());
    }
    if data.len() != 2 * len {
        return Err(Sense::INVALID_FIELD_IN_IU);
    }
    let store = ctx.store()?;
    // Atomic against every overlapping access: the task set holds the blocks.
    let medium = store
        .read(off, len)
        .await
        .map_err(|e| failed(ctx, Op::Read, lba, e))?;
    if let Some(o) = first_mismatch(&medium, &data[..len]) {
        return Err(Sense::MISCOMPARE.with_info(o as u32));
    }
    data.copy_within(len..2 * len, 0);
    data.truncate(len);
    store
        .write(off, data, fua)
        .await
        .map_err(|e| failed(ctx, Op::Write, lba, e))?;
    Ok(spc::ok())
}

/// GET LBA STATUS: one descriptor for the run starting at `lba`.
pub async fn get_lba_status(ctx: &Ctx<'_>, lba: u64, alloc: u32) -> CmdResult {
    let unit = ctx.unit();
    let n = unit.num_blocks();
    if lba >= n {
        return Err(Sense::LBA_OUT_OF_RANGE);
    }
    let bs = u64::from(unit.block_size());
    let max_blocks = (n - lba).min(u64::from(u32::MAX));
    let e = ctx
        .store()?
        .allocation_status(lba * bs, max_blocks * bs)
        .await
        .map_err(|e| failed(ctx, Op::Read, lba, e))?;
    let count = e.len.div_ceil(bs).clamp(1, max_blocks) as u32;
    let mut d = Vec::with_capacity(24);
    d.extend_from_slice(&20u32.to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    d.extend_from_slice(&lba.to_be_bytes());
    d.extend_from_slice(&count.to_be_bytes());
    d.extend_from_slice(&[u8::from(!e.mapped), 0, 0, 0]);
    Ok(reply(d, alloc))
}
