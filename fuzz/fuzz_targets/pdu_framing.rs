//! PDU framing as the daemon receives it (`iscsi::wire::framer::Framer`, sans-IO): the
//! input's bytes arrive in reads of sizes the input picks; each header gets a sink (its
//! buffer, or discard past MaxRecvDataSegmentLength). A plain reference parser of the
//! same bytes must give the same headers, data segments and digest verdicts, and fail at
//! the same header digest, however the bytes were cut into reads. Never a panic.
//!
//! Input: a config byte (bit 0 header digest, bit 1 data digest, bits 4-6
//! MaxRecvDataSegmentLength = 512 << n), two bytes seeding the read sizes, then the wire.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustiscsi::iscsi::wire::Bhs;
use rustiscsi::iscsi::wire::bhs::{decode_lun, encode_lun};
use rustiscsi::iscsi::wire::framer::{DataSink, Frame, Framer};
use rustiscsi_fuzz::Cursor;

#[derive(Debug, PartialEq)]
enum Item {
    Header(Bhs, Vec<u8>),
    /// The segment (None when discarded) and whether its digest matched.
    Data(Option<Vec<u8>>, bool),
    HeaderDigestError,
}

fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// The straightforward parse of a whole stream; stops at the first incomplete PDU.
/// Returns the items and whether the stream ended inside a PDU.
fn reference(w: &[u8], hd: bool, dd: bool, mrdsl: usize) -> (Vec<Item>, bool) {
    let mut out = Vec::new();
    let mut p = 0;
    while p < w.len() {
        let Some(h) = w.get(p..p + 48) else {
            return (out, true);
        };
        let bhs = Bhs(h.try_into().unwrap());
        let ahs = bhs.total_ahs_len();
        let hlen = 48 + ahs + if hd { 4 } else { 0 };
        let Some(hdr) = w.get(p..p + hlen) else {
            return (out, true);
        };
        if hd && crc32c::crc32c(&hdr[..48 + ahs]).to_le_bytes() != hdr[48 + ahs..] {
            out.push(Item::HeaderDigestError);
            return (out, false);
        }
        out.push(Item::Header(bhs, hdr[48..48 + ahs].to_vec()));
        p += hlen;
        let len = bhs.data_segment_len();
        let dig = if dd && len > 0 { 4 } else { 0 };
        let Some(seg) = w.get(p..p + len + pad(len) + dig) else {
            return (out, true);
        };
        let ok = dig == 0
            || crc32c::crc32c(&seg[..len + pad(len)]).to_le_bytes() == seg[len + pad(len)..];
        let kept = (len <= mrdsl).then(|| seg[..len].to_vec());
        out.push(Item::Data(kept, ok));
        p += seg.len();
    }
    (out, false)
}

fn touch(b: &Bhs) {
    let _ = (b.opcode(), b.immediate(), b.flags(), b.final_bit(), b.itt(), b.ttt());
    let _ = (b.cmdsn(), b.exp_statsn(), b.max_cmdsn(), b.datasn(), b.buffer_offset());
    let _ = (b.residual(), b.edtl(), b.statsn(), b.cdb().len(), format!("{b:?}"));
    let lun = decode_lun(b.lun_raw());
    if lun < 16384 {
        assert_eq!(decode_lun(encode_lun(lun)), lun);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let cfg = c.u8();
    let (hd, dd) = (cfg & 1 != 0, cfg & 2 != 0);
    let mrdsl = 512usize << ((cfg >> 4) & 7);
    let mut rng = u32::from(c.u16()) | 1;
    let wire = c.take(usize::MAX);
    let (want, partial) = reference(wire, hd, dd, mrdsl);

    let mut f = Framer::new(hd, dd);
    let mut got = Vec::new();
    let mut pos = 0;
    'feed: loop {
        loop {
            match f.poll() {
                Ok(Some(Frame::Header(h))) => {
                    touch(&h.bhs);
                    let len = h.bhs.data_segment_len();
                    let sink = if len > mrdsl {
                        DataSink::Discard
                    } else {
                        DataSink::Into {
                            buf: vec![0xee; len + 3].into(),
                            at: 3,
                        }
                    };
                    f.set_sink(sink).expect("a sink of the segment's size");
                    got.push(Item::Header(h.bhs, h.ahs));
                }
                Ok(Some(Frame::Data { buf, digest_ok })) => {
                    got.push(Item::Data(buf.map(|b| b[3..].to_vec()), digest_ok));
                }
                Ok(None) => break,
                Err(_) => {
                    got.push(Item::HeaderDigestError);
                    break 'feed;
                }
            }
        }
        if pos == wire.len() {
            break;
        }
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let want_n = if rng % 8 == 0 { usize::MAX } else { 1 + (rng % 700) as usize };
        let buf = f.read_buf();
        assert!(!buf.is_empty(), "no room to read into while no sink is awaited");
        let n = want_n.min(buf.len()).min(wire.len() - pos);
        buf[..n].copy_from_slice(&wire[pos..pos + n]);
        f.filled(n);
        pos += n;
    }
    assert_eq!(got, want, "the framer and the reference parse disagree");
    if !matches!(want.last(), Some(Item::HeaderDigestError)) {
        assert_eq!(f.in_pdu(), partial, "in_pdu after the whole stream");
    }
});
