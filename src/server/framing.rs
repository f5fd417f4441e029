//! Reading PDUs off the socket: the header first (so a bad length is refused before any
//! payload is buffered), then the data segment straight into its destination buffer.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt};

use crate::iscsi::wire::digest::{crc32c_bytes, padding};
use crate::iscsi::wire::{BHS_LEN, Bhs, DIGEST_LEN};

/// Largest AHS we accept (extended CDBs are at most 260 bytes).
pub const MAX_AHS: usize = 1024;

/// A failure that ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FramingError {
    /// The peer closed the connection between PDUs.
    #[error("connection closed")]
    Closed,
    /// Socket error (or close in the middle of a PDU).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// Header digest mismatch: lengths cannot be trusted, the connection must go.
    #[error("header digest error")]
    HeaderDigest,
    /// The AHS is larger than anything valid.
    #[error("AHS of {0} bytes")]
    AhsTooLong(usize),
}

/// A received header with its AHS.
#[derive(Debug)]
pub struct Header {
    /// The BHS.
    pub bhs: Bhs,
    /// Additional header segments (raw).
    pub ahs: Vec<u8>,
}

/// Reads one header (BHS, AHS, header digest). Returns `Closed` on a clean EOF before it.
pub async fn read_header<R: AsyncBufRead + Unpin>(
    rd: &mut R,
    header_digest: bool,
) -> Result<Header, FramingError> {
    if rd.fill_buf().await?.is_empty() {
        return Err(FramingError::Closed);
    }
    let mut bhs = Bhs::default();
    rd.read_exact(&mut bhs.0).await?;
    let ahs_len = bhs.total_ahs_len();
    if ahs_len > MAX_AHS {
        return Err(FramingError::AhsTooLong(ahs_len));
    }
    let mut ahs = vec![0u8; ahs_len];
    if ahs_len > 0 {
        rd.read_exact(&mut ahs).await?;
    }
    if header_digest {
        let mut d = [0u8; DIGEST_LEN];
        rd.read_exact(&mut d).await?;
        let crc = if ahs.is_empty() {
            crc32c_bytes(&bhs.0)
        } else {
            let c = crc32c::crc32c(&bhs.0);
            crc32c::crc32c_append(c, &ahs).to_le_bytes()
        };
        if crc != d {
            return Err(FramingError::HeaderDigest);
        }
    }
    Ok(Header { bhs, ahs })
}

/// Reads a data segment of `len` bytes, appending it to `buf` (no intermediate copy),
/// then its padding and digest. Returns whether the data digest matched (always true
/// without digests).
pub async fn read_data<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: usize,
    data_digest: bool,
    buf: &mut Vec<u8>,
) -> Result<bool, FramingError> {
    let start = buf.len();
    buf.reserve(len);
    let mut limited = rd.take(len as u64);
    while buf.len() - start < len {
        let n = limited.read_buf(buf).await?;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    let rd = limited.into_inner();
    let pad = padding(len);
    let mut tail = [0u8; 3 + DIGEST_LEN];
    let tail_len = pad + if data_digest { DIGEST_LEN } else { 0 };
    if tail_len > 0 {
        rd.read_exact(&mut tail[..tail_len]).await?;
    }
    if data_digest && len > 0 {
        let crc = crc32c::crc32c(&buf[start..]);
        let crc = crc32c::crc32c_append(crc, &tail[..pad]);
        return Ok(crc.to_le_bytes() == tail[pad..pad + DIGEST_LEN]);
    }
    Ok(true)
}

/// Reads and drops a data segment (after a protocol error we still must stay in sync).
pub async fn skip_data<R: AsyncRead + Unpin>(
    rd: &mut R,
    len: usize,
    data_digest: bool,
) -> Result<(), FramingError> {
    let total = len
        + padding(len)
        + if data_digest && len > 0 {
            DIGEST_LEN
        } else {
            0
        };
    let n = tokio::io::copy(&mut rd.take(total as u64), &mut tokio::io::sink()).await?;
    if n < total as u64 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(())
}

/// Serialises a header (+ header digest) into `out`.
pub fn put_header(out: &mut Vec<u8>, bhs: &Bhs, header_digest: bool) {
    out.extend_from_slice(&bhs.0);
    if header_digest {
        out.extend_from_slice(&crc32c_bytes(&bhs.0));
    }
}

/// Size of a header on the wire.
pub fn header_len(header_digest: bool) -> usize {
    BHS_LEN + if header_digest { DIGEST_LEN } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::wire::Opcode;
    use crate::iscsi::wire::digest::data_digest;

    #[tokio::test]
    async fn header_and_data_round_trip_with_digests() {
        let mut b = Bhs::new(Opcode::NOP_OUT);
        b.set_data_segment_len(5).set_itt(9);
        let mut wire = Vec::new();
        put_header(&mut wire, &b, true);
        wire.extend_from_slice(b"hello\0\0\0");
        wire.extend_from_slice(&data_digest(b"hello"));
        let mut rd = tokio::io::BufReader::new(&wire[..]);
        let h = read_header(&mut rd, true).await.unwrap();
        assert_eq!(h.bhs, b);
        let mut buf = Vec::new();
        assert!(read_data(&mut rd, 5, true, &mut buf).await.unwrap());
        assert_eq!(buf, b"hello");
        assert!(matches!(
            read_header(&mut rd, true).await,
            Err(FramingError::Closed)
        ));
    }

    #[tokio::test]
    async fn corrupt_digests_are_detected() {
        let b = Bhs::new(Opcode::NOP_OUT);
        let mut wire = Vec::new();
        put_header(&mut wire, &b, true);
        wire[2] ^= 1;
        let mut rd = tokio::io::BufReader::new(&wire[..]);
        assert!(matches!(
            read_header(&mut rd, true).await,
            Err(FramingError::HeaderDigest)
        ));

        let mut wire = b"abcd".to_vec();
        wire.extend_from_slice(&[0, 0, 0, 0]);
        let mut rd = tokio::io::BufReader::new(&wire[..]);
        let mut buf = Vec::new();
        assert!(!read_data(&mut rd, 4, true, &mut buf).await.unwrap());
    }

    #[tokio::test]
    async fn truncated_pdu_is_an_io_error() {
        let wire = [0u8; 20];
        let mut rd = tokio::io::BufReader::new(&wire[..]);
        assert!(matches!(
            read_header(&mut rd, false).await,
            Err(FramingError::Io(_))
        ));
    }
}
