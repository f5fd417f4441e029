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
