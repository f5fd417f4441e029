//! Operation codes and the static table of supported commands (REPORT SUPPORTED
//! OPERATION CODES reads it; the parser accepts only opcodes listed here).

/// TEST UNIT READY.
pub const TEST_UNIT_READY: u8 = 0x00;
/// REQUEST SENSE.
pub const REQUEST_SENSE: u8 = 0x03;
/// READ(6).
pub const READ_6: u8 = 0x08;
/// WRITE(6).
pub const WRITE_6: u8 = 0x0a;
/// INQUIRY.
pub const INQUIRY: u8 = 0x12;
/// MODE SELECT(6).
pub const MODE_SELECT_6: u8 = 0x15;
/// RESERVE(6).
pub const RESERVE_6: u8 = 0x16;
/// RELEASE(6).
pub const RELEASE_6: u8 = 0x17;
/// MODE SENSE(6).
pub const MODE_SENSE_6: u8 = 0x1a;
/// START STOP UNIT.
pub const START_STOP_UNIT: u8 = 0x1b;
/// PREVENT ALLOW.
pub const PREVENT_ALLOW: u8 = 0x1e;
/// READ CAPACITY(10).
pub const READ_CAPACITY_10: u8 = 0x25;
/// READ(10).
pub const READ_10: u8 = 0x28;
/// WRITE(10).
pub const WRITE_10: u8 = 0x2a;
/// WRITE VERIFY(10).
pub const WRITE_VERIFY_10: u8 = 0x2e;
/// VERIFY(10).
pub const VERIFY_10: u8 = 0x2f;
/// PRE FETCH(10).
pub const PRE_FETCH_10: u8 = 0x34;
/// SYNC CACHE(10).
pub const SYNC_CACHE_10: u8 = 0x35;
/// WRITE SAME(10).
pub const WRITE_SAME_10: u8 = 0x41;
/// UNMAP.
pub const UNMAP: u8 = 0x42;
/// MODE SELECT(10).
pub const MODE_SELECT_10: u8 = 0x55;
/// RESERVE(10).
pub const RESERVE_10: u8 = 0x56;
/// RELEASE(10).
pub const RELEASE_10: u8 = 0x57;
/// MODE SENSE(10).
pub const MODE_SENSE_10: u8 = 0x5a;
/// PR IN.
pub const PR_IN: u8 = 0x5e;
/// PR OUT.
pub const PR_OUT: u8 = 0x5f;
/// READ(16).
pub const READ_16: u8 = 0x88;
/// COMPARE AND WRITE.
pub const COMPARE_AND_WRITE: u8 = 0x89;
/// WRITE(16).
pub const WRITE_16: u8 = 0x8a;
/// WRITE VERIFY(16).
pub const WRITE_VERIFY_16: u8 = 0x8e;
/// VERIFY(16).
pub const VERIFY_16: u8 = 0x8f;
/// PRE FETCH(16).
pub const PRE_FETCH_16: u8 = 0x90;
/// SYNC CACHE(16).
pub const SYNC_CACHE_16: u8 = 0x91;
/// WRITE SAME(16).
pub const WRITE_SAME_16: u8 = 0x93;
/// SERVICE ACTION IN(16).
pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
/// REPORT LUNS.
pub const REPORT_LUNS: u8 = 0xa0;
/// MAINTENANCE IN.
pub const MAINTENANCE_IN: u8 = 0xa3;
/// READ(12).
pub const READ_12: u8 = 0xa8;
/// WRITE(12).
pub const WRITE_12: u8 = 0xaa;
/// WRITE VERIFY(12).
pub const WRITE_VERIFY_12: u8 = 0xae;
/// VERIFY(12).
pub const VERIFY_12: u8 = 0xaf;

/// Service action: READ CAPACITY 16.
pub const SA_READ_CAPACITY_16: u8 = 0x10;
/// Service action: GET LBA STATUS.
pub const SA_GET_LBA_STATUS: u8 = 0x12;
/// Service action: REPORT OPCODES.
pub const SA_REPORT_OPCODES: u8 = 0x0c;

/// One supported command: opcode, service action, and its CDB usage data (whose length
/// is the CDB length; byte 0 is the opcode, a service action byte holds the action).
#[derive(Debug)]
pub struct OpInfo {
    /// Operation code.
    pub opcode: u8,
    /// Service action, for commands that have one.
    pub sa: Option<u8>,
    /// CDB usage bitmap (SPC-4 6.35.3).
    pub usage: &'static [u8],
}

const fn o(opcode: u8, usage: &'static [u8]) -> OpInfo {
    OpInfo {
        opcode,
        sa: None,
        usage,
    }
}
const fn s(opcode: u8, sa: u8, usage: &'static [u8]) -> OpInfo {
    OpInfo {
        opcode,
        sa: Some(sa),
        usage,
    }
}

const F: u8 = 0xff;

/// Every supported command, sorted by opcode then service action.
pub static TABLE: &[OpInfo] = &[
    o(0x00, &[0x00, 0, 0, 0, 0, 0]),
    o(0x03, &[0x03, 0x01, 0, 0, F, 0]),
    o(0x08, &[0x08, 0x1f, F, F, F, 0]),
    o(0x0a, &[0x0a, 0x1f, F, F, F, 0]),
    o(0x12, &[0x12, 0x01, F, F, F, 0]),
    o(0x15, &[0x15, 0x11, 0, 0, F, 0]),
    o(0x16, &[0x16, 0, 0, 0, 0, 0]),
    o(0x17, &[0x17, 0, 0, 0, 0, 0]),
    o(0x1a, &[0x1a, 0x08, F, F, F, 0]),
    o(0x1b, &[0x1b, 0x01, 0, 0x0f, 0xf7, 0]),
    o(0x1e, &[0x1e, 0, 0, 0, 0x03, 0]),
    o(0x25, &[0x25, 0, F, F, F, F, 0, 0, 0x01, 0]),
    o(0x28, &[0x28, 0x1a, F, F, F, F, 0x1f, F, F, 0]),
    o(0x2a, &[0x2a, 0x1a, F, F, F, F, 0x1f, F, F, 0]),
    o(0x2e, &[0x2e, 0x12, F, F, F, F, 0x1f, F, F, 0]),
    o(0x2f, &[0x2f, 0x16, F, F, F, F, 0x1f, F, F, 0]),
    o(0x34, &[0x34, 0x02, F, F, F, F, 0x1f, F, F, 0]),
    o(0x35, &[0x35, 0x02, F, F, F, F, 0x1f, F, F, 0]),
    o(0x41, &[0x41, 0x08, F, F, F, F, 0x1f, F, F, 0]),
    o(0x42, &[0x42, 0, 0, 0, 0, 0, 0x1f, F, F, 0]),
    o(0x55, &[0x55, 0x11, 0, 0, 0, 0, 0, F, F, 0]),
    o(0x56, &[0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    o(0x57, &[0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    o(0x5a, &[0x5a, 0x18, F, F, 0, 0, 0, F, F, 0]),
    s(0x5e, 0, &[0x5e, 0x00, 0, 0, 0, 0, 0, F, F, 0]),
    s(0x5e, 1, &[0x5e, 0x01, 0, 0, 0, 0, 0, F, F, 0]),
    s(0x5e, 2, &[0x5e, 0x02, 0, 0, 0, 0, 0, F, F, 0]),
    s(0x5e, 3, &[0x5e, 0x03, 0, 0, 0, 0, 0, F, F, 0]),
    s(0x5f, 0, &[0x5f, 0x00, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 1, &[0x5f, 0x01, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 2, &[0x5f, 0x02, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 3, &[0x5f, 0x03, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 4, &[0x5f, 0x04, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 5, &[0x5f, 0x05, F, 0, 0, F, F, F, F, 0]),
    s(0x5f, 6, &[0x5f, 0x06, F, 0, 0, F, F, F, F, 0]),
    o(
        0x88,
        &[0x88, 0x1a, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x89,
        &[0x89, 0x1a, F, F, F, F, F, F, F, F, 0, 0, 0, F, 0x1f, 0],
    ),
    o(
        0x8a,
        &[0x8a, 0x1a, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x8e,
        &[0x8e, 0x12, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x8f,
        &[0x8f, 0x16, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x90,
        &[0x90, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x91,
        &[0x91, 0x02, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    o(
        0x93,
        &[0x93, 0x09, F, F, F, F, F, F, F, F, F, F, F, F, 0x1f, 0],
    ),
    s(
        0x9e,
        0x10,
        &[0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, F, F, F, F, 0, 0],
    ),
    s(
        0x9e,
        0x12,
        &[0x9e, 0x12, F, F, F, F, F, F, F, F, F, F, F, F, 0, 0],
    ),
    o(0xa0, &[0xa0, 0, F, 0, 0, 0, F, F, F, F, 0, 0]),
    s(0xa3, 0x0c, &[0xa3, 0x0c, 0x87, F, F, F, F, F, F, F, 0, 0]),
    o(0xa8, &[0xa8, 0x1a, F, F, F, F, F, F, F, F, 0x1f, 0]),
    o(0xaa, &[0xaa, 0x1a, F, F, F, F, F, F, F, F, 0x1f, 0]),
    o(0xae, &[0xae, 0x12, F, F, F, F, F, F, F, F, 0x1f, 0]),
    o(0xaf, &[0xaf, 0x16, F, F, F, F, F, F, F, F, 0x1f, 0]),
];

/// Whether any command with this opcode is supported.
pub fn is_supported_opcode(opcode: u8) -> bool {
    TABLE.iter().any(|e| e.opcode == opcode)
}

/// Whether commands with this opcode carry a service action.
pub fn has_service_action(opcode: u8) -> Option<bool> {
    TABLE
        .iter()
        .find(|e| e.opcode == opcode)
        .map(|e| e.sa.is_some())
}

/// The entry for `opcode` / `sa` (`sa` ignored for commands without service actions).
pub fn find(opcode: u8, sa: Option<u16>) -> Option<&'static OpInfo> {
    TABLE
        .iter()
        .find(|e| e.opcode == opcode && (e.sa.is_none() || e.sa.map(u16::from) == sa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for w in TABLE.windows(2) {
            assert!((w[0].opcode, w[0].sa) < (w[1].opcode, w[1].sa));
        }
        for e in TABLE {
            assert_eq!(e.usage[0], e.opcode);
            assert_eq!(e.usage.len(), crate::scsi::cdb::cdb_len(e.opcode));
            if let Some(sa) = e.sa {
                assert_eq!(e.usage[1] & 0x1f, sa);
            }
        }
    }
}
