//! PDU wire format: the 48-byte basic header segment, data segments, digests, text keys.

pub mod bhs;
pub mod codes;
pub mod digest;
pub mod text;

pub use bhs::{BHS_LEN, Bhs, DIGEST_LEN, Opcode, RESERVED_TAG};
