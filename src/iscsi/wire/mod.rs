//! PDU wire format: the 48-byte basic header segment, data segments, digests, text keys,
//! and the receive framer.

pub mod bhs;
pub mod codes;
pub mod digest;
pub mod framer;
pub mod text;

pub use bhs::{BHS_LEN, Bhs, DIGEST_LEN, Opcode, RESERVED_TAG};
