//! SPC commands: INQUIRY, REQUEST SENSE, REPORT LUNS, REPORT SUPPORTED OPERATION CODES,
//! and the reservation commands.

use bytes::Bytes;

use super::cdb::Command;
use super::identity::{LunIdentity, product_field, vendor_field};
use super::nexus::ItNexus;
use super::opcodes;
use super::sense::Sense;
use super::{CmdResult, Ctx, ScsiResponse, reply, status, vpd};

/// Product revision level (4 bytes).
pub const REVISION: &[u8; 4] = b"0001";

/// Standard INQUIRY data; `byte0` is the peripheral qualifier and device type; vendor and
/// product come from the unit's identity (the defaults for an unmapped LUN).
fn standard_inquiry(byte0: u8, id: Option<&LunIdentity>) -> Vec<u8> {
    let mut d = vec![0u8; 66];
    d[0] = byte0;
    d[2] = 0x06; // SPC-4
    d[3] = 0x12; // HiSup, response data format 2
    d[4] = (d.len() - 5) as u8;
    d[7] = 0x02; // CmdQue
    let (vendor, product) = match id {
        Some(id) => (id.vendor_field(), id.product_field()),
        None => (vendor_field(None), product_field(None)),
    };
    d[8..16].copy_from_slice(&vendor);
    d[16..32].copy_from_slice(&product);
    d[32..36].copy_from_slice(REVISION);
    // Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3.
    for (i, v) in [0x00a0u16, 0x0960, 0x0460, 0x04c0].iter().enumerate() {
        d[58 + 2 * i..60 + 2 * i].copy_from_slice(&v.to_be_bytes());
    }
    d
}

/// INQUIRY, REPORT LUNS and REQUEST SENSE addressed to a LUN that is not mapped.
pub fn unmapped(nexus: &ItNexus, c: Command) -> ScsiResponse {
    match c {
        Command::Inquiry {
            evpd: false, alloc, ..
        } => reply(standard_inquiry(0x7f, None), alloc),
        Command::Inquiry { .. } => ScsiResponse::check(Sense::LUN_NOT_SUPPORTED),
        Command::ReportLuns { select, alloc } => {
            report_luns(nexus, select, alloc).unwrap_or_else(ScsiResponse::check)
        }
        Command::RequestSense { desc, alloc } => sense_data(Sense::LUN_NOT_SUPPORTED, desc, alloc),
        _ => ScsiResponse::check(Sense::LUN_NOT_SUPPORTED),
    }
}

fn sense_data(s: Sense, desc: bool, alloc: u32) -> ScsiResponse {
    let d = if desc {
        s.to_descriptor()
    } else {
        s.to_fixed().to_vec()
    };
    reply(d, alloc)
}

/// REQUEST SENSE: the pending unit attention (cleared), else NO SENSE.
pub fn request_sense(ctx: &Ctx<'_>, desc: bool, alloc: u32) -> ScsiResponse {
    let ua = match ctx.ua {
        Some(_) => ctx.nexus.lookup(ctx.m.lun, true).and_then(|(_, ua)| ua),
        None => None,
    };
    // No unit attention: the current condition (NOT READY while offline), else NO SENSE.
    let current = match ctx.unit().offline_reason() {
        Some(_) => Sense::NOT_READY,
        None => Sense::NO_SENSE,
    };
    sense_data(ua.unwrap_or(current), desc, alloc)
}

/// INQUIRY (standard data or a VPD page).
pub fn inquiry(ctx: &Ctx<'_>, evpd: bool, page: u8, alloc: u32) -> CmdResult {
    if !evpd {
        return Ok(reply(
            standard_inquiry(0x00, Some(ctx.unit().identity())),
            alloc,
        ));
    }
    let d = vpd::page(ctx, page).ok_or(Sense::INVALID_FIELD_IN_CDB)?;
    Ok(reply(d, alloc))
}

/// SAM-5 single-level LUN encoding: peripheral addressing below 256, flat up to 16383.
pub fn encode_lun(lun: u64) -> [u8; 8] {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else if lun < 0x4000 {
        b[0] = 0x40 | (lun >> 8) as u8;
        b[1] = lun as u8;
    } else {
        b = lun.to_be_bytes();
    }
    b
}

/// REPORT LUNS (select report 0, 1 or 2); clears REPORTED LUNS DATA HAS CHANGED.
pub fn report_luns(nexus: &ItNexus, select: u8, alloc: u32) -> CmdResult {
    if alloc < 16 || select > 2 {
        return Err(Sense::INVALID_FIELD_IN_CDB);
    }
    let luns = nexus.luns();
    let list: &[_] = if select == 1 { &[] } else { &luns[..] };
    let mut d = Vec::with_capacity(8 + 8 * list.len());
    d.extend_from_slice(&((list.len() * 8) as u32).to_be_bytes());
    d.extend_from_slice(&[0; 4]);
    for m in list {
        d.extend_from_slice(&encode_lun(m.lun));
    }
    nexus.take_luns_changed(true);
    Ok(reply(d, alloc))
}

const TIMEOUTS: [u8; 12] = [0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

/// REPORT SUPPORTED OPERATION CODES from the static table.
pub fn report_opcodes(rctd: bool, options: u8, opcode: u8, sa: u16, alloc: u32) -> CmdResult {
    let one = |e: Option<&opcodes::OpInfo>| {
        let mut d = vec![0u8, 0, 0, 0];
        match e {
            Some(e) => {
                d[1] = 0x03 | if rctd { 0x80 } else { 0 };
                d[2..4].copy_from_slice(&(e.usage.len() as u16).to_be_bytes());
                d.extend_from_slice(e.usage);
                if rctd {
                    d.extend_from_slice(&TIMEOUTS);
                }
            }
            None => d[1] = 0x01,
        }
        d
    };
    let d = match options {
        0 => {
            let mut d = vec![0u8; 4];
            for e in opcodes::TABLE {
                d.push(e.opcode);
                d.push(0);
                d.extend_from_slice(&u16::from(e.sa.unwrap_or(0)).to_be_bytes());
                d.push(0);
                d.push(u8::from(e.sa.is_some()) | if rctd { 0x02 } else { 0 });
                d.extend_from_slice(&(e.usage.len() as u16).to_be_bytes());
                if rctd {
                    d.extend_from_slice(&TIMEOUTS);
                }
            }
            let len = (d.len() - 4) as u32;
            d[..4].copy_from_slice(&len.to_be_bytes());
            d
        }
        1 => {
            if opcodes::has_service_action(opcode) == Some(true) {
                return Err(Sense::INVALID_FIELD_IN_CDB);
            }
            one(opcodes::find(opcode, None))
        }
        2 => {
            if opcodes::has_service_action(opcode) == Some(false) {
                return Err(Sense::INVALID_FIELD_IN_CDB);
            }
            one(opcodes::find(opcode, Some(sa)).filter(|e| e.sa.is_some()))
        }
        3 => {
            let sa = (opcodes::has_service_action(opcode) == Some(true)).then_some(sa);
            one(opcodes::find(opcode, sa))
        }
        _ => return Err(Sense::INVALID_FIELD_IN_CDB),
    };
    Ok(reply(d, alloc))
}

/// RESERVE, RELEASE, PERSISTENT RESERVE IN and OUT.
pub async fn reservation(ctx: &Ctx<'_>, c: Command, data_out: &[u8]) -> CmdResult {
    let r = &ctx.unit().reservations;
    let (i, t) = (ctx.nexus.initiator_port(), ctx.nexus.target_port());
    let (result, alloc) = match c {
        Command::Reserve => (r.reserve(i, t), 0),
        Command::Release => (r.release(i, t), 0),
        Command::PrIn { sa, alloc } => (r.pr_in(sa), alloc),
        Command::PrOut {
            sa,
            scope,
            kind,
            len,
        } => {
            let Some(params) = data_out.get(..len as usize) else {
                return Err(Sense::PARAM_LIST_LENGTH);
            };
            let outcome = r.pr_out(i, t, sa, scope, kind, params).await;
            if !outcome.preempted.is_empty() {
                // PREEMPT AND ABORT (SPC-4 5.14.11.5): every task of the preempted I_T
                // nexuses that arrived before now is aborted through the unit's task set,
                // and GOOD goes out only once their I/O is over, so none of their writes
                // lands after it (this PERSISTENT RESERVE OUT touches no medium: it is not
                // in the set). The new reservation is already in effect, so what they send
                // from now on gets RESERVATION CONFLICT.
                let n = ctx
                    .unit()
                    .abort_tasks(
                        super::tasks::AbortScope::Preempted(outcome.preempted.clone()),
                        std::time::Instant::now(),
                    )
                    .await;
                tracing::info!(
                    initiator = i,
                    preempted = ?outcome.preempted,
                    aborted = n,
                    "PREEMPT AND ABORT: the preempted nexuses' tasks are aborted"
                );
            }
            (outcome.result, 0)
        }
        _ => return Err(Sense::INVALID_OPCODE),
    };
    match result {
        Ok(d) => Ok(reply(d, alloc)),
        Err((status::CHECK_CONDITION, Some(s))) => Err(s),
        Err((st, _)) => Ok(ScsiResponse::status(st)),
    }
}

/// The target portal group tag from a `iqn...,t,0x0001` port name (1 when absent).
pub fn target_port_id(target_port: &str) -> u16 {
    target_port
        .rsplit_once(",t,0x")
        .and_then(|(_, h)| u16::from_str_radix(h, 16).ok())
        .unwrap_or(1)
}

/// The SCSI target port name of portal group `tpgt` of target `iqn` (RFC 7143 §4.2.7:
/// `iqn...,t,0x<tpgt in 4 hex digits>`), as I_T nexuses and registrations name it.
pub fn target_port_name(iqn: &str, tpgt: u16) -> String {
    format!("{iqn},t,0x{tpgt:04x}")
}

/// The target device name (the iSCSI name) in a target port name.
pub fn target_device_name(target_port: &str) -> &str {
    target_port
        .rsplit_once(",t,0x")
        .map_or(target_port, |(n, _)| n)
}

/// Empty GOOD response.
pub fn ok() -> ScsiResponse {
    ScsiResponse::good(Bytes::new())
}
