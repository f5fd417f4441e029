//! The 48-byte Basic Header Segment (RFC 7143 §11.2) and opcodes.

use std::fmt;

/// Size of the basic header segment.
pub const BHS_LEN: usize = 48;
/// Size of a CRC32C digest.
pub const DIGEST_LEN: usize = 4;
/// The reserved tag value (`0xffffffff`).
pub const RESERVED_TAG: u32 = 0xffff_ffff;

/// A PDU opcode (the low six bits of byte 0). Unknown values survive as themselves.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(pub u8);

impl Opcode {
    /// NOP-Out (initiator).
    pub const NOP_OUT: Opcode = Opcode(0x00);
    /// SCSI Command.
    pub const SCSI_COMMAND: Opcode = Opcode(0x01);
    /// Task Management Function Request.
    pub const TMF_REQUEST: Opcode = Opcode(0x02);
    /// Login Request.
    pub const LOGIN_REQUEST: Opcode = Opcode(0x03);
    /// Text Request.
    pub const TEXT_REQUEST: Opcode = Opcode(0x04);
    /// SCSI Data-Out.
    pub const DATA_OUT: Opcode = Opcode(0x05);
    /// Logout Request.
    pub const LOGOUT_REQUEST: Opcode = Opcode(0x06);
    /// SNACK Request.
    pub const SNACK_REQUEST: Opcode = Opcode(0x10);
    /// NOP-In (target).
    pub const NOP_IN: Opcode = Opcode(0x20);
    /// SCSI Response.
    pub const SCSI_RESPONSE: Opcode = Opcode(0x21);
    /// Task Management Function Response.
    pub const TMF_RESPONSE: Opcode = Opcode(0x22);
    /// Login Response.
    pub const LOGIN_RESPONSE: Opcode = Opcode(0x23);
    /// Text Response.
    pub const TEXT_RESPONSE: Opcode = Opcode(0x24);
    /// SCSI Data-In.
    pub const DATA_IN: Opcode = Opcode(0x25);
    /// Logout Response.
    pub const LOGOUT_RESPONSE: Opcode = Opcode(0x26);
    /// Ready To Transfer.
    pub const R2T: Opcode = Opcode(0x31);
    /// Asynchronous Message.
    pub const ASYNC_MESSAGE: Opcode = Opcode(0x32);
    /// Reject.
    pub const REJECT: Opcode = Opcode(0x3f);
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Opcode::NOP_OUT => "NOP-Out",
            Opcode::SCSI_COMMAND => "SCSI-Command",
            Opcode::TMF_REQUEST => "TMF-Request",
            Opcode::LOGIN_REQUEST => "Login-Request",
            Opcode::TEXT_REQUEST => "Text-Request",
            Opcode::DATA_OUT => "Data-Out",
            Opcode::LOGOUT_REQUEST => "Logout-Request",
            Opcode::SNACK_REQUEST => "SNACK",
            Opcode::NOP_IN => "NOP-In",
            Opcode::SCSI_RESPONSE => "SCSI-Response",
            Opcode::TMF_RESPONSE => "TMF-Response",
            Opcode::LOGIN_RESPONSE => "Login-Response",
            Opcode::TEXT_RESPONSE => "Text-Response",
            Opcode::DATA_IN => "Data-In",
            Opcode::LOGOUT_RESPONSE => "Logout-Response",
            Opcode::R2T => "R2T",
            Opcode::ASYNC_MESSAGE => "Async-Message",
            Opcode::REJECT => "Reject",
            _ => return write!(f, "Opcode({:#04x})", self.0),
        };
        f.write_str(name)
    }
}

/// A basic header segment with typed accessors. Field names follow RFC 7143; where a field
/// sits at the same offset in several PDUs one accessor serves them all.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Bhs(pub [u8; BHS_LEN]);

impl Default for Bhs {
    fn default() -> Self {
        Bhs([0; BHS_LEN])
    }
}

impl fmt::Debug for Bhs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bhs")
            .field("opcode", &self.opcode())
            .field("flags", &format_args!("{:#04x}", self.flags()))
            .field("itt", &format_args!("{:#x}", self.itt()))
            .field("dlen", &self.data_segment_len())
            .finish()
    }
}

macro_rules! u32_field {
    ($get:ident, $set:ident, $off:expr, $doc:expr) => {
        #[doc = concat!("Reads ", $doc, " (bytes ", stringify!($off), "..+4).")]
        pub fn $get(&self) -> u32 {
            self.u32_at($off)
        }
        #[doc = concat!("Sets ", $doc, ".")]
        pub fn $set(&mut self, v: u32) -> &mut Self {
            self.set_u32_at($off, v);
            self
        }
    };
}

impl Bhs {
    /// A header with `opcode` and every other byte zero.
    pub fn new(opcode: Opcode) -> Self {
        let mut b = Bhs::default();
        b.0[0] = opcode.0;
        b
    }
    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        Opcode(self.0[0] & 0x3f)
    }
    /// The immediate-delivery bit (I) of a request.
    pub fn immediate(&self) -> bool {
        self.0[0] & 0x40 != 0
    }
    /// Byte 1: the final bit and opcode-specific flags.
    pub fn flags(&self) -> u8 {
        self.0[1]
    }
    /// Sets byte 1.
    pub fn set_flags(&mut self, f: u8) -> &mut Self {
        self.0[1] = f;
        self
    }
    /// The final (F) bit.
    pub fn final_bit(&self) -> bool {
        self.0[1] & 0x80 != 0
    }
    /// TotalAHSLength in bytes.
    pub fn total_ahs_len(&self) -> usize {
        self.0[4] as usize * 4
    }
    /// DataSegmentLength in bytes (without padding).
    pub fn data_segment_len(&self) -> usize {
        (self.0[5] as usize) << 16 | (self.0[6] as usize) << 8 | self.0[7] as usize
    }
    /// Sets DataSegmentLength (must be below 2^24).
    pub fn set_data_segment_len(&mut self, len: usize) -> &mut Self {
        debug_assert!(len < 1 << 24);
        self.0[5] = (len >> 16) as u8;
        self.0[6] = (len >> 8) as u8;
        self.0[7] = len as u8;
        self
    }
    /// Bytes 8..16 as the raw 8-byte LUN field.
    pub fn lun_raw(&self) -> u64 {
        u64::from_be_bytes(self.0[8..16].try_into().expect("8 bytes"))
    }
    /// Sets bytes 8..16.
    pub fn set_lun_raw(&mut self, lun: u64) -> &mut Self {
        self.0[8..16].copy_from_slice(&lun.to_be_bytes());
        self
    }
    /// Reads a big-endian u32 at `off`.
    pub fn u32_at(&self, off: usize) -> u32 {
        u32::from_be_bytes(self.0[off..off + 4].try_into().expect("4 bytes"))
    }
    /// Writes a big-endian u32 at `off`.
    pub fn set_u32_at(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }
    /// Reads a big-endian u16 at `off`.
    pub fn u16_at(&self, off: usize) -> u16 {
        u16::from_be_bytes([self.0[off], self.0[off + 1]])
    }
    /// Writes a big-endian u16 at `off`.
    pub fn set_u16_at(&mut self, off: usize, v: u16) {
        self.0[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }

    u32_field!(itt, set_itt, 16, "the Initiator Task Tag");
    u32_field!(
        ttt,
        set_ttt,
        20,
        "the Target Transfer Tag (also RTT of a TMF request, EDTL of a SCSI command)"
    );
    u32_field!(
        cmdsn,
        set_cmdsn,
        24,
        "CmdSN of a request / StatSN of a response"
    );
    u32_field!(
        exp_statsn,
        set_exp_statsn,
        28,
        "ExpStatSN of a request / ExpCmdSN of a response"
    );
    u32_field!(
        max_cmdsn,
        set_max_cmdsn,
        32,
        "MaxCmdSN of a response (RefCmdSN of a TMF request)"
    );
    u32_field!(datasn, set_datasn, 36, "DataSN / R2TSN / ExpDataSN");
    u32_field!(buffer_offset, set_buffer_offset, 40, "Buffer Offset");
    u32_field!(
        residual,
        set_residual,
        44,
        "Residual Count / Desired Data Transfer Length"
    );

    /// Expected Data Transfer Length of a SCSI Command.
    pub fn edtl(&self) -> u32 {
        self.u32_at(20)
    }
    /// StatSN of a response (same offset as a request's CmdSN).
    pub fn statsn(&self) -> u32 {
        self.u32_at(24)
    }
    /// Sets StatSN of a response.
    pub fn set_statsn(&mut self, v: u32) -> &mut Self {
        self.set_u32_at(24, v);
        self
    }
    /// Sets ExpCmdSN of a response.
    pub fn set_exp_cmdsn(&mut self, v: u32) -> &mut Self {
        self.set_u32_at(28, v);
        self
    }
    /// The CDB bytes 32..48 of a SCSI Command.
    pub fn cdb(&self) -> &[u8] {
        &self.0[32..48]
    }
}

/// Decodes the 8-byte SAM LUN field (peripheral and flat addressing) into a LUN number.
pub fn decode_lun(raw: u64) -> u64 {
    let b = raw.to_be_bytes();
    match b[0] >> 6 {
        // peripheral device addressing: bus 0 only
        0b00 => b[1] as u64,
        // flat space addressing
        0b01 => (((b[0] & 0x3f) as u64) << 8) | b[1] as u64,
        // other methods are passed through as an unmapped number
        _ => u64::MAX,
    }
}

/// Encodes a LUN number below 16384 into the 8-byte SAM field (peripheral below 256, flat above).
pub fn encode_lun(lun: u64) -> u64 {
    let mut b = [0u8; 8];
    if lun < 256 {
        b[1] = lun as u8;
    } else {
        b[0] = 0x40 | ((lun >> 8) as u8 & 0x3f);
        b[1] = lun as u8;
    }
    u64::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_segment_len_round_trips() {
        let mut b = Bhs::new(Opcode::DATA_IN);
        b.set_data_segment_len(0x12_3456);
        assert_eq!(b.data_segment_len(), 0x12_3456);
        assert_eq!(&b.0[5..8], &[0x12, 0x34, 0x56]);
    }

    #[test]
    fn lun_encoding_covers_both_methods() {
        for lun in [0u64, 1, 255, 256, 1000, 16383] {
            assert_eq!(decode_lun(encode_lun(lun)), lun);
        }
        assert_eq!(encode_lun(3), 0x0003_0000_0000_0000);
        assert_eq!(encode_lun(300), 0x412c_0000_0000_0000);
    }

    #[test]
    fn opcode_keeps_unknown_values() {
        let b = Bhs([0x5a; BHS_LEN]);
        assert_eq!(b.opcode(), Opcode(0x1a));
        assert!(b.immediate());
        assert_eq!(format!("{:?}", Opcode(0x1a)), "Opcode(0x1a)");
    }
}
