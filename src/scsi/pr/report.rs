//! PERSISTENT RESERVE IN (SPC-4 6.15): READ KEYS, READ RESERVATION, REPORT CAPABILITIES,
//! READ FULL STATUS.

use super::state::State;
use super::{PrResult, check, transport_id};
use crate::scsi::sense::Sense;

/// REPORT CAPABILITIES byte 2: CRH (RESERVE/RELEASE handled as SPC-4 5.13.3 says), SIP_C
/// (SPEC_I_PT), ATP_C (ALL_TG_PT); PTPL_C is added when APTPL can be honoured.
const CAPABILITIES: u8 = 0x10 | 0x08 | 0x04;
/// PTPL_C: persistence through power loss capable.
const PTPL_C: u8 = 0x01;
/// REPORT CAPABILITIES byte 3: TMV (the type mask is valid); PTPL_A is bit 0.
const TMV: u8 = 0x80;
/// The persistent reservation type mask: all six types (WR_EX_AR, EX_AC_RO, WR_EX_RO,
/// EX_AC, WR_EX; then EX_AC_AR).
const TYPE_MASK: [u8; 2] = [0xea, 0x01];

/// The data of PERSISTENT RESERVE IN service action `sa`.
pub(super) fn pr_in(s: &State, sa: u8, aptpl_capable: bool) -> PrResult {
    let pr = &s.pr;
    let mut d = Vec::with_capacity(64);
    d.extend_from_slice(&pr.generation.to_be_bytes());
    match sa {
        // READ KEYS
        0 => {
            d.extend_from_slice(&((pr.regs.len() * 8) as u32).to_be_bytes());
            for r in &pr.regs {
                d.extend_from_slice(&r.key.to_be_bytes());
            }
        }
        // READ RESERVATION
        1 => match &pr.res {
            None => d.extend_from_slice(&0u32.to_be_bytes()),
            Some(h) => {
                d.extend_from_slice(&16u32.to_be_bytes());
                // All Registrants reservations report key zero (SPC-4 5.14.10).
                let key = pr.holder_reg().map_or(0, |r| r.key);
                d.extend_from_slice(&key.to_be_bytes());
                d.extend_from_slice(&[0, 0, 0, 0, 0, h.kind & 0x0f, 0, 0]);
            }
        },
        // REPORT CAPABILITIES
        2 => {
            d.clear();
            let ptpl_c = if aptpl_capable { PTPL_C } else { 0 };
            let ptpl_a = u8::from(aptpl_capable && pr.aptpl);
            d.extend_from_slice(&[0, 8, CAPABILITIES | ptpl_c, TMV | ptpl_a]);
            d.extend_from_slice(&TYPE_MASK);
            d.extend_from_slice(&[0, 0]);
        }
        // READ FULL STATUS
        3 => {
            d.extend_from_slice(&[0; 4]);
            let kind = pr.res.as_ref().map_or(0, |h| h.kind);
            for r in &pr.regs {
                let holder = pr.holds(r);
                let tid = transport_id::encode(&r.initiator);
                d.extend_from_slice(&r.key.to_be_bytes());
                d.extend_from_slice(&[0; 4]);
                d.push(u8::from(r.all_tg_pt) << 1 | u8::from(holder));
                d.push(if holder { kind & 0x0f } else { 0 });
                d.extend_from_slice(&[0; 4]);
                d.extend_from_slice(&s.rtpi(&r.target).to_be_bytes());
                d.extend_from_slice(&(tid.len() as u32).to_be_bytes());
                d.extend_from_slice(&tid);
            }
            let len = (d.len() - 8) as u32;
            d[4..8].copy_from_slice(&len.to_be_bytes());
        }
        _ => return Err(check(Sense::INVALID_FIELD_IN_CDB)),
    }
    Ok(d)
}
