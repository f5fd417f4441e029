//! Sense data: key, additional sense code and qualifier, encoded in fixed format.

/// A sense key with its ASC/ASCQ and optional INFORMATION field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    /// Sense key (SPC-4 table 27).
    pub key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// INFORMATION field (VALID bit set when present).
    pub info: Option<u32>,
}

impl Sense {
    /// Fixed-format sense data (response code 0x70), 18 bytes.
    pub fn to_fixed(&self) -> [u8; 18] {
        let mut b = [0u8; 18];
        b[0] = 0x70;
        if let Some(info) = self.info {
            b[0] |= 0x80;
            b[3..7].copy_from_slice(&info.to_be_bytes());
        }
        b[2] = self.key & 0x0f;
        b[7] = 10;
        b[12] = self.asc;
        b[13] = self.ascq;
        b
    }
}

/// Sense keys (SPC-4 table 27).
pub mod key {
    /// NO SENSE.
    pub const NO_SENSE: u8 = 0x00;
    /// NOT READY.
    pub const NOT_READY: u8 = 0x02;
    /// MEDIUM ERROR.
    pub const MEDIUM_ERROR: u8 = 0x03;
    /// HARDWARE ERROR.
    pub const HARDWARE_ERROR: u8 = 0x04;
    /// ILLEGAL REQUEST.
    pub const ILLEGAL_REQUEST: u8 = 0x05;
    /// UNIT ATTENTION.
    pub const UNIT_ATTENTION: u8 = 0x06;
    /// DATA PROTECT.
    pub const DATA_PROTECT: u8 = 0x07;
    /// ABORTED COMMAND.
    pub const ABORTED_COMMAND: u8 = 0x0b;
    /// MISCOMPARE.
    pub const MISCOMPARE: u8 = 0x0e;
}

impl Sense {
    /// A sense without INFORMATION.
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Self {
        Sense {
            key,
            asc,
            ascq,
            info: None,
        }
    }

    /// The same sense with the INFORMATION field set.
    pub const fn with_info(mut self, info: u32) -> Self {
        self.info = Some(info);
        self
    }

    /// NO SENSE / NO ADDITIONAL SENSE INFORMATION.
    pub const NO_SENSE: Sense = Sense::new(key::NO_SENSE, 0x00, 0x00);
    /// ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE (20/00).
    pub const INVALID_OPCODE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x20, 0x00);
    /// ILLEGAL REQUEST / LOGICAL BLOCK ADDRESS OUT OF RANGE (21/00).
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x21, 0x00);
    /// ILLEGAL REQUEST / INVALID FIELD IN CDB (24/00).
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x24, 0x00);
    /// ILLEGAL REQUEST / LOGICAL UNIT NOT SUPPORTED (25/00).
    pub const LUN_NOT_SUPPORTED: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x25, 0x00);
    /// ILLEGAL REQUEST / INVALID FIELD IN PARAMETER LIST (26/00).
    pub const INVALID_FIELD_IN_PARAM: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x00);
    /// ILLEGAL REQUEST / INVALID RELEASE OF PERSISTENT RESERVATION (26/04).
    pub const INVALID_RELEASE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x04);
    /// ILLEGAL REQUEST / INVALID FIELD IN COMMAND INFORMATION UNIT (0E/03): the Data-Out
    /// buffer does not match what the CDB asks for.
    pub const INVALID_FIELD_IN_IU: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x0e, 0x03);
    /// ILLEGAL REQUEST / PARAMETER LIST LENGTH ERROR (1A/00).
    pub const PARAM_LIST_LENGTH: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x1a, 0x00);
    /// ILLEGAL REQUEST / SAVING PARAMETERS NOT SUPPORTED (39/00).
    pub const SAVING_NOT_SUPPORTED: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x39, 0x00);
    /// DATA PROTECT / WRITE PROTECTED (27/00).
    pub const WRITE_PROTECTED: Sense = Sense::new(key::DATA_PROTECT, 0x27, 0x00);
    /// DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (27/07).
    pub const SPACE_ALLOCATION_FAILED: Sense = Sense::new(key::DATA_PROTECT, 0x27, 0x07);
    /// NOT READY / LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE (04/00): the backstore is
    /// offline. Not 04/01 (becoming ready), on which Linux retries every command for
    /// minutes, a hang; not 04/03 (manual intervention required), since it comes back by
    /// itself; 04/12 (offline) is not defined for direct-access devices.
    pub const NOT_READY: Sense = Sense::new(key::NOT_READY, 0x04, 0x00);
    /// HARDWARE ERROR / INTERNAL TARGET FAILURE (44/00): an error that says nothing about
    /// the medium (a fault of the target itself).
    pub const INTERNAL_TARGET_FAILURE: Sense = Sense::new(key::HARDWARE_ERROR, 0x44, 0x00);
    /// MEDIUM ERROR / UNRECOVERED READ ERROR (11/00).
    pub const READ_ERROR: Sense = Sense::new(key::MEDIUM_ERROR, 0x11, 0x00);
    /// MEDIUM ERROR / WRITE ERROR (0C/00).
    pub const WRITE_ERROR: Sense = Sense::new(key::MEDIUM_ERROR, 0x0c, 0x00);
    /// MISCOMPARE / MISCOMPARE DURING VERIFY OPERATION (1D/00).
    pub const MISCOMPARE: Sense = Sense::new(key::MISCOMPARE, 0x1d, 0x00);
    /// UNIT ATTENTION / POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00).
    pub const UA_POWER_ON_RESET: Sense = Sense::new(key::UNIT_ATTENTION, 0x29, 0x00);
    /// UNIT ATTENTION / BUS DEVICE RESET FUNCTION OCCURRED (29/03).
    pub const UA_LUN_RESET: Sense = Sense::new(key::UNIT_ATTENTION, 0x29, 0x03);
    /// UNIT ATTENTION / NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED (28/00): the
    /// backstore came back online.
    pub const UA_NOT_READY_TO_READY: Sense = Sense::new(key::UNIT_ATTENTION, 0x28, 0x00);
    /// UNIT ATTENTION / CAPACITY DATA HAS CHANGED (2A/09).
    pub const UA_CAPACITY_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2a, 0x09);
    /// UNIT ATTENTION / REPORTED LUNS DATA HAS CHANGED (3F/0E).
    pub const UA_LUNS_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x3f, 0x0e);
    /// UNIT ATTENTION / REGISTRATIONS PREEMPTED (2A/05).
    pub const UA_REGISTRATIONS_PREEMPTED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2a, 0x05);
    /// UNIT ATTENTION / RESERVATIONS PREEMPTED (2A/03).
    pub const UA_RESERVATIONS_PREEMPTED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2a, 0x03);
    /// UNIT ATTENTION / RESERVATIONS RELEASED (2A/04).
    pub const UA_RESERVATIONS_RELEASED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2a, 0x04);

    /// Descriptor-format sense data (response code 0x72), with an information descriptor
    /// when INFORMATION is present.
    pub fn to_descriptor(&self) -> Vec<u8> {
        let mut b = vec![0x72, self.key & 0x0f, self.asc, self.ascq, 0, 0, 0, 0];
        if let Some(info) = self.info {
            b.extend_from_slice(&[0x00, 0x0a, 0x80, 0x00]);
            b.extend_from_slice(&u64::from(info).to_be_bytes());
        }
        b[7] = (b.len() - 8) as u8;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format() {
        let f = Sense::MISCOMPARE.with_info(0x1234).to_fixed();
        assert_eq!(f[0], 0xf0);
        assert_eq!(f[2], 0x0e);
        assert_eq!(&f[3..7], &[0, 0, 0x12, 0x34]);
        assert_eq!(f[7], 10);
        assert_eq!((f[12], f[13]), (0x1d, 0));
        let f = Sense::INVALID_OPCODE.to_fixed();
        assert_eq!(f[0], 0x70);
    }

    #[test]
    fn descriptor_format() {
        assert_eq!(
            Sense::INVALID_FIELD_IN_CDB.to_descriptor(),
            vec![0x72, 5, 0x24, 0, 0, 0, 0, 0]
        );
        let d = Sense::MISCOMPARE.with_info(7).to_descriptor();
        assert_eq!(d.len(), 20);
        assert_eq!(d[7], 12);
        assert_eq!(&d[8..12], &[0, 0x0a, 0x80, 0]);
        assert_eq!(d[19], 7);
    }
}
