//! Receiving PDUs, sans-IO: bytes in, headers and data segments out.
//!
//! The caller reads from its socket into [`Framer::read_buf`] and reports the count with
//! [`Framer::filled`], then takes what is complete with [`Framer::poll`]. Each PDU comes
//! out in two steps (SPDK's header/payload split): first its [`Header`] (BHS, AHS, header
//! digest checked), so the receiver decides where the data segment goes before any of it
//! is buffered, then — once the receiver has named a [`DataSink`] with
//! [`Framer::set_sink`] — its data, written straight into the sink's buffer (a command's
//! write buffer, usually), with the padding and data digest checked.
//!
//! Small PDUs are read in bulk: the framer reads ahead into a small buffer and parses
//! several headers from one read. Once a data segment's bytes are no longer in that buffer,
//! [`Framer::read_buf`] hands out the sink itself, so a large Data-Out lands in its
//! command's buffer with no copy. A data segment of length 0 has no digest (RFC 7143
//! §11.1: the digest covers a data segment; there is none).

use super::bhs::{BHS_LEN, Bhs, DIGEST_LEN};
use super::digest::padding;
use crate::iobuf::IoBuf;

/// Bytes read ahead of the current position (headers and small data segments).
pub const READ_AHEAD: usize = 16 * 1024;

/// A received header: the BHS and its additional header segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The basic header segment.
    pub bhs: Bhs,
    /// Additional header segments, raw (empty for almost every PDU).
    pub ahs: Vec<u8>,
}

/// Where a data segment goes, chosen by the receiver once it has seen the header.
#[derive(Debug)]
pub enum DataSink {
    /// Read and drop the segment (a rejected PDU: the stream must stay in sync).
    Discard,
    /// Write the segment into `buf[at..at + len]` (`buf` is handed back afterwards).
    Into {
        /// The destination; `buf.len() >= at + len`, where `len` is the segment length.
        buf: IoBuf,
        /// Offset of the segment's first byte in `buf`.
        at: usize,
    },
}

/// A complete item of the incoming stream.
#[derive(Debug)]
pub enum Frame {
    /// A PDU's header; its data segment follows once [`Framer::set_sink`] is called.
    Header(Header),
    /// The data segment of the last header (also for a length of 0).
    Data {
        /// The sink's buffer, handed back (`None` for [`DataSink::Discard`]).
        buf: Option<IoBuf>,
        /// Whether the data digest matched (always true without data digests).
        digest_ok: bool,
    },
}

/// A failure that ends the connection: the stream cannot be trusted beyond it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The header digest did not match: the lengths in it cannot be trusted.
    #[error("header digest error")]
    HeaderDigest,
    /// [`Framer::set_sink`] was given a buffer too small for the segment.
    #[error("data sink of {have} bytes for a segment of {need}")]
    SinkTooSmall {
        /// Bytes the sink can hold from its offset.
        have: usize,
        /// Segment length.
        need: usize,
    },
}

#[derive(Debug)]
enum State {
    /// Waiting for (the rest of) a header.
    Header,
    /// A header was returned; waiting for [`Framer::set_sink`].
    AwaitSink { len: usize },
    /// Receiving a data segment.
    Data {
        sink: Option<(IoBuf, usize)>,
        len: usize,
        done: usize,
        crc: u32,
    },
}

/// The receive side of one connection.
#[derive(Debug)]
pub struct Framer {
    header_digest: bool,
    data_digest: bool,
    ahead: Box<[u8]>,
    /// Valid bytes are `ahead[start..end]`.
    start: usize,
    end: usize,
    state: State,
}

impl Framer {
    /// A framer for a connection with the given digests.
    pub fn new(header_digest: bool, data_digest: bool) -> Self {
        Framer {
            header_digest,
            data_digest,
            ahead: vec![0u8; READ_AHEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            state: State::Header,
        }
    }

    /// Switches digests on or off (at the end of the login, for the full feature phase).
    pub fn set_digests(&mut self, header_digest: bool, data_digest: bool) {
        self.header_digest = header_digest;
        self.data_digest = data_digest;
    }

    /// Whether part of a PDU has arrived and the rest has not (the receiver runs a
    /// deadline while this is true).
    pub fn in_pdu(&self) -> bool {
        !matches!(self.state, State::Header) || self.end > self.start
    }

    /// Whether the framer waits for [`Framer::set_sink`] (reading must pause).
    pub fn awaiting_sink(&self) -> bool {
        matches!(self.state, State::AwaitSink { .. })
    }

    /// The buffer the next socket read should fill: the sink itself while a data segment
    /// is being received and no read-ahead bytes are left, else the read-ahead buffer.
    /// Empty while a sink is awaited.
    pub fn read_buf(&mut self) -> &mut [u8] {
        let direct = self.start == self.end
            && matches!(&self.state, State::Data { sink: Some(_), len, done, .. } if done < len);
        if direct {
            let State::Data {
                sink: Some((buf, at)),
                len,
                done,
                ..
            } = &mut self.state
            else {
                unreachable!("checked above")
            };
            let from = *at + *done;
            return &mut buf[from..from + (*len - *done)];
        }
        if matches!(self.state, State::AwaitSink { .. }) {
            return &mut [];
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.ahead.len() {
            self.ahead.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.ahead[self.end..]
    }

    /// Records that the last read put `n` bytes into [`Framer::read_buf`].
    pub fn filled(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if let State::Data {
            sink: Some((buf, at)),
            len,
            done,
            crc,
        } = &mut self.state
            && self.start == self.end
            && *done < *len
        {
            if self.data_digest {
                let from = *at + *done;
                *crc = crc32c::crc32c_append(*crc, &buf[from..from + n]);
            }
            *done += n;
            return;
        }
        self.end += n;
    }

    /// The sink for the data segment of the header just returned.
    pub fn set_sink(&mut self, sink: DataSink) -> Result<(), FramingError> {
        let State::AwaitSink { len } = self.state else {
            debug_assert!(false, "set_sink without a pending header");
            return Ok(());
        };
        let sink = match sink {
            DataSink::Discard => None,
            DataSink::Into { buf, at } => {
                let have = buf.len().saturating_sub(at);
                if have < len {
                    return Err(FramingError::SinkTooSmall { have, need: len });
                }
                Some((buf, at))
            }
        };
        self.state = State::Data {
            sink,
            len,
            done: 0,
            crc: 0,
        };
        Ok(())
    }

    /// The next complete header or data segment, if the bytes for it have arrived.
    pub fn poll(&mut self) -> Result<Option<Frame>, FramingError> {
        match &mut self.state {
            State::AwaitSink { .. } => Ok(None),
            State::Header => self.header(),
            State::Data {
                sink,
                len,
                done,
                crc,
            } => {
                // Data still in the read-ahead buffer goes to the sink first.
                let avail = self.end - self.start;
                let take = avail.min(*len - *done);
                if take > 0 {
                    let chunk = &self.ahead[self.start..self.start + take];
                    if let Some((buf, at)) = sink {
                        let from = *at + *done;
                        buf[from..from + take].copy_from_slice(chunk);
                    }
                    if self.data_digest {
                        *crc = crc32c::crc32c_append(*crc, chunk);
                    }
                    *done += take;
                    self.start += take;
                }
                if *done < *len {
                    return Ok(None);
                }
                let pad = padding(*len);
                let digest = if self.data_digest && *len > 0 {
                    DIGEST_LEN
                } else {
                    0
                };
                if self.end - self.start < pad + digest {
                    return Ok(None);
                }
                let tail = &self.ahead[self.start..self.start + pad + digest];
                let digest_ok = digest == 0 || {
                    let c = crc32c::crc32c_append(*crc, &tail[..pad]);
                    c.to_le_bytes() == tail[pad..pad + DIGEST_LEN]
                };
                self.start += pad + digest;
                let buf = sink.take().map(|(b, _)| b);
                self.state = State::Header;
                Ok(Some(Frame::Data { buf, digest_ok }))
            }
        }
    }

    fn header(&mut self) -> Result<Option<Frame>, FramingError> {
        let avail = self.end - self.start;
        if avail < BHS_LEN {
            return Ok(None);
        }
        let mut bhs = Bhs::default();
        bhs.0
            .copy_from_slice(&self.ahead[self.start..self.start + BHS_LEN]);
        let ahs_len = bhs.total_ahs_len();
        let digest = if self.header_digest { DIGEST_LEN } else { 0 };
        let total = BHS_LEN + ahs_len + digest;
        if avail < total {
            return Ok(None);
        }
        let h = &self.ahead[self.start..self.start + total];
        if self.header_digest {
            let crc = crc32c::crc32c(&h[..BHS_LEN + ahs_len]).to_le_bytes();
            if crc != h[BHS_LEN + ahs_len..] {
                return Err(FramingError::HeaderDigest);
            }
        }
        let ahs = h[BHS_LEN..BHS_LEN + ahs_len].to_vec();
        self.start += total;
        self.state = State::AwaitSink {
            len: bhs.data_segment_len(),
        };
        Ok(Some(Frame::Header(Header { bhs, ahs })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::wire::Opcode;
    use crate::iscsi::wire::digest::{crc32c_bytes, data_digest};

    fn pdu(op: Opcode, data: &[u8], hd: bool, dd: bool) -> Vec<u8> {
        let mut b = Bhs::new(op);
        b.set_data_segment_len(data.len()).set_itt(7);
        let mut w = b.0.to_vec();
        if hd {
            w.extend_from_slice(&crc32c_bytes(&b.0));
        }
        w.extend_from_slice(data);
        w.resize(w.len() + padding(data.len()), 0);
        if dd && !data.is_empty() {
            w.extend_from_slice(&data_digest(data));
        }
        w
    }

    /// Feeds `wire` in reads of at most `chunk` bytes; sinks every segment into a
    /// buffer with 3 bytes of offset. Returns (headers, segments, digest results).
    fn run(wire: &[u8], chunk: usize, hd: bool, dd: bool) -> Vec<(Bhs, Vec<u8>, bool)> {
        let mut f = Framer::new(hd, dd);
        let mut pos = 0;
        let mut out = Vec::new();
        let mut cur: Option<Bhs> = None;
        loop {
            while let Some(frame) = f.poll().unwrap() {
                match frame {
                    Frame::Header(h) => {
                        let len = h.bhs.data_segment_len();
                        cur = Some(h.bhs);
                        f.set_sink(DataSink::Into {
                            buf: vec![0xee; len + 3].into(),
                            at: 3,
                        })
                        .unwrap();
                    }
                    Frame::Data { buf, digest_ok } => {
                        let buf = buf.unwrap();
                        out.push((cur.take().unwrap(), buf[3..].to_vec(), digest_ok));
                    }
                }
            }
            if pos == wire.len() {
                break;
            }
            let dst = f.read_buf();
            let n = dst.len().min(chunk).min(wire.len() - pos);
            dst[..n].copy_from_slice(&wire[pos..pos + n]);
            f.filled(n);
            pos += n;
        }
        assert!(!f.in_pdu(), "stream ended inside a PDU");
        out
    }

    #[test]
    fn headers_and_segments_in_any_read_sizes() {
        for (hd, dd) in [(false, false), (true, true), (true, false), (false, true)] {
            let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
            let mut wire = pdu(Opcode::NOP_OUT, b"", hd, dd);
            wire.extend(pdu(Opcode::DATA_OUT, &big, hd, dd));
            wire.extend(pdu(Opcode::TEXT_REQUEST, b"SendTargets=All\0", hd, dd));
            wire.extend(pdu(Opcode::NOP_OUT, b"x", hd, dd));
            for chunk in [1, 3, 47, 48, 52, 4096, 1 << 20] {
                let got = run(&wire, chunk, hd, dd);
                assert_eq!(got.len(), 4, "chunk {chunk}");
                assert_eq!(got[0].1, b"");
                assert_eq!(got[1].1, big);
                assert_eq!(got[2].1, b"SendTargets=All\0");
                assert_eq!(got[3].1, b"x");
                assert!(got.iter().all(|g| g.2), "digests ok");
            }
        }
    }

    /// Defect 1 of issue 8: an empty data segment has no data digest, so with
    /// DataDigest=CRC32C an empty NOP-Out must not swallow the next PDU's first 4 bytes.
    #[test]
    fn empty_segment_has_no_data_digest() {
        let mut wire = pdu(Opcode::NOP_OUT, b"", false, true);
        wire.extend(pdu(Opcode::NOP_OUT, b"ping", false, true));
        let got = run(&wire, 1 << 20, false, true);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, b"ping");
        assert!(got[1].2);
    }

    #[test]
    fn bad_digests() {
        let mut wire = pdu(Opcode::NOP_OUT, b"abcd", true, true);
        let n = wire.len();
        wire[n - 1] ^= 1;
        let got = run(&wire, 9, true, true);
        assert!(!got[0].2, "data digest mismatch reported");

        let mut wire = pdu(Opcode::NOP_OUT, b"", true, false);
        wire[50] ^= 1;
        let mut f = Framer::new(true, false);
        f.read_buf()[..wire.len()].copy_from_slice(&wire);
        f.filled(wire.len());
        assert_eq!(f.poll().unwrap_err(), FramingError::HeaderDigest);
    }

    #[test]
    fn discard_and_sink_checks() {
        let wire = pdu(Opcode::NOP_OUT, &[5u8; 10_000], false, false);
        let mut f = Framer::new(false, false);
        let mut pos = 0;
        let mut frames = 0;
        while pos < wire.len() || frames < 2 {
            match f.poll().unwrap() {
                Some(Frame::Header(_)) => {
                    assert!(f.awaiting_sink());
                    assert!(f.read_buf().is_empty(), "no reads while a sink is awaited");
                    assert!(matches!(
                        f.set_sink(DataSink::Into {
                            buf: IoBuf::zeroed(10),
                            at: 0
                        }),
                        Err(FramingError::SinkTooSmall { .. })
                    ));
                    f.set_sink(DataSink::Discard).unwrap();
                    frames += 1;
                }
                Some(Frame::Data { buf, digest_ok }) => {
                    assert!(buf.is_none() && digest_ok);
                    frames += 1;
                }
                None => {
                    let dst = f.read_buf();
                    let n = dst.len().min(wire.len() - pos).min(700);
                    dst[..n].copy_from_slice(&wire[pos..pos + n]);
                    f.filled(n);
                    pos += n;
                }
            }
        }
        assert!(!f.in_pdu());
    }

    #[test]
    fn large_segments_are_read_into_the_sink() {
        // After the read-ahead bytes are used up, read_buf is the sink itself.
        let big = vec![9u8; 200_000];
        let wire = pdu(Opcode::DATA_OUT, &big, false, false);
        let mut f = Framer::new(false, false);
        let first = 1000;
        f.read_buf()[..first].copy_from_slice(&wire[..first]);
        f.filled(first);
        assert!(matches!(f.poll().unwrap(), Some(Frame::Header(_))));
        f.set_sink(DataSink::Into {
            buf: IoBuf::zeroed(big.len()),
            at: 0,
        })
        .unwrap();
        assert!(f.poll().unwrap().is_none());
        let dst = f.read_buf();
        assert_eq!(
            dst.len(),
            big.len() - (first - BHS_LEN),
            "the rest of the sink"
        );
        let n = dst.len();
        dst.copy_from_slice(&wire[first..first + n]);
        f.filled(n);
        match f.poll().unwrap() {
            Some(Frame::Data { buf, .. }) => assert_eq!(&*buf.unwrap(), &big[..]),
            other => panic!("{other:?}"),
        }
    }
}
