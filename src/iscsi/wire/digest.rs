//! CRC32C header and data digests (RFC 7143 §13.1, RFC 3385).

/// CRC32C of `data` as the 4 bytes sent on the wire (little-endian, as every
/// implementation in the field sends it).
pub fn crc32c_bytes(data: &[u8]) -> [u8; 4] {
    crc32c::crc32c(data).to_le_bytes()
}

/// CRC32C of a data segment followed by its zero padding to a multiple of 4 bytes.
pub fn data_digest(data: &[u8]) -> [u8; 4] {
    let pad = padding(data.len());
    let crc = crc32c::crc32c(data);
    crc32c::crc32c_append(crc, &[0u8; 3][..pad]).to_le_bytes()
}

/// Bytes of padding after a data segment of `len` bytes.
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3720_vectors() {
        // RFC 3720 appendix B.4: 32 bytes of zeros -> aa 36 91 8a (CRC 0x8a9136aa)
        assert_eq!(crc32c_bytes(&[0u8; 32]), [0xaa, 0x36, 0x91, 0x8a]);
        // 32 bytes of 0xff -> 0x62a8ab43
        assert_eq!(u32::from_le_bytes(crc32c_bytes(&[0xffu8; 32])), 0x62a8_ab43);
        let inc: Vec<u8> = (0u8..32).collect();
        assert_eq!(u32::from_le_bytes(crc32c_bytes(&inc)), 0x46dd_794e);
    }

    #[test]
    fn data_digest_covers_padding() {
        assert_eq!(data_digest(b"abc"), crc32c_bytes(b"abc\0"));
        assert_eq!(data_digest(b"abcd"), crc32c_bytes(b"abcd"));
        assert_eq!(padding(5), 3);
        assert_eq!(padding(8), 0);
    }
}
