//! PDUs on their way to the socket: encoded once (header digest, padding, data digest),
//! written with vectored writes. Headers and small data segments are copied into one
//! buffer; large data segments go out from the buffer the backstore read into, with no
//! copy.

use std::io::IoSlice;

use bytes::Bytes;

use crate::iscsi::session::datain::OutPdu;
use crate::iscsi::wire::digest::{crc32c_bytes, data_digest, padding};

/// Data segments up to this size are copied next to their header (larger ones, a 4 KiB
/// read included, go out from their own buffer as an iovec of their own).
const INLINE: usize = 1024;
/// iovecs per write at most.
const MAX_IOV: usize = 64;

#[derive(Debug)]
enum Seg {
    Inline(usize, usize),
    Data(Bytes),
}

/// Encoded PDUs not yet written.
#[derive(Debug, Default)]
pub struct Outbox {
    inline: Vec<u8>,
    segs: Vec<Seg>,
    /// First segment not fully written, and bytes of it written.
    seg: usize,
    off: usize,
    bytes: usize,
}

impl Outbox {
    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.seg >= self.segs.len()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Encodes `p` at the end.
    pub fn push(&mut self, p: &OutPdu, header_digest: bool, data_digest_on: bool) {
        if self.is_empty() {
            self.inline.clear();
            self.segs.clear();
            self.seg = 0;
            self.off = 0;
            self.bytes = 0;
        }
        let start = self.inline.len();
        self.inline.extend_from_slice(&p.bhs.0);
        if header_digest {
            self.inline.extend_from_slice(&crc32c_bytes(&p.bhs.0));
        }
        let n = p.data.len();
        if n > 0 {
            if n <= INLINE {
                self.inline.extend_from_slice(&p.data);
                self.push_inline(start);
            } else {
                self.push_inline(start);
                self.segs.push(Seg::Data(p.data.clone()));
                self.bytes += n;
            }
            let tail = self.inline.len();
            self.inline.extend_from_slice(&[0u8; 3][..padding(n)]);
            if data_digest_on {
                self.inline.extend_from_slice(&data_digest(&p.data));
            }
            self.push_inline(tail);
        } else {
            self.push_inline(start);
        }
    }

    fn push_inline(&mut self, start: usize) {
        let end = self.inline.len();
        if end == start {
            return;
        }
        // Adjacent inline ranges merge into one iovec.
        if let Some(Seg::Inline(_, e)) = self.segs.last_mut()
            && *e == start
        {
            *e = end;
        } else {
            self.segs.push(Seg::Inline(start, end));
        }
        self.bytes += end - start;
    }

    /// The next bytes to write.
    pub fn slices(&self) -> Vec<IoSlice<'_>> {
        let mut v = Vec::with_capacity((self.segs.len() - self.seg).min(MAX_IOV));
        for (i, s) in self.segs[self.seg..].iter().take(MAX_IOV).enumerate() {
            let b: &[u8] = match s {
                Seg::Inline(a, e) => &self.inline[*a..*e],
                Seg::Data(d) => d,
            };
            let b = if i == 0 { &b[self.off..] } else { b };
            v.push(IoSlice::new(b));
        }
        v
    }

    /// `n` bytes were written.
    pub fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 && self.seg < self.segs.len() {
            let len = match &self.segs[self.seg] {
                Seg::Inline(a, e) => e - a,
                Seg::Data(d) => d.len(),
            } - self.off;
            if n >= len {
                n -= len;
                self.seg += 1;
                self.off = 0;
            } else {
                self.off += n;
                n = 0;
            }
        }
        // Release written data buffers early (they may be large).
        if self.is_empty() {
            self.segs.clear();
            self.inline.clear();
            self.seg = 0;
            self.off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::session::datain::Sn;
    use crate::iscsi::wire::{Bhs, Opcode};

    fn flatten(o: &Outbox) -> Vec<u8> {
        o.slices().iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn encodes_and_advances_partial_writes() {
        let mut o = Outbox::default();
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_data_segment_len(3);
        let small = OutPdu {
            bhs: b,
            data: Bytes::from_static(b"abc"),
            sn: Sn::Status,
        };
        let mut b2 = Bhs::new(Opcode::DATA_IN);
        b2.set_data_segment_len(10_000);
        let big = OutPdu {
            bhs: b2,
            data: Bytes::from(vec![7u8; 10_000]),
            sn: Sn::None,
        };
        o.push(&small, true, true);
        o.push(&big, true, true);
        let all = flatten(&o);
        assert_eq!(all.len(), o.len());
        assert_eq!(all.len(), (48 + 4 + 3 + 1 + 4) + (48 + 4 + 10_000 + 4));
        assert_eq!(&all[52..55], b"abc");
        assert_eq!(&all[56..60], &data_digest(b"abc"));
        // Write it out in odd pieces.
        let mut got = Vec::new();
        while !o.is_empty() {
            let chunk: Vec<u8> = flatten(&o).into_iter().take(777).collect();
            got.extend_from_slice(&chunk);
            o.advance(chunk.len());
        }
        assert_eq!(got, all);
        assert_eq!(o.len(), 0);
    }
}
