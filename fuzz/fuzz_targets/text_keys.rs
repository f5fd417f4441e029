//! Text segments and operational key negotiation (RFC 7143 §6, §13): parsing, encoding,
//! `keys::negotiate` against varied offers, and CHAP's binary value decoding. Parse and
//! encode round-trip; numbers read the same in decimal and hex; the target's proposals
//! parse; negotiation never panics and stays within the offer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustiscsi::iscsi::login::chap::decode_binary;
use rustiscsi::iscsi::login::keys::{self, Offer, Params};
use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi_fuzz::Cursor;

fn offer(c: &mut Cursor) -> Offer {
    let f = c.u8();
    let n = |c: &mut Cursor| 512u32.max(u32::from(c.u16()) << (c.u8() & 7));
    Offer {
        max_recv_data_segment_length: n(c),
        max_burst_length: n(c),
        first_burst_length: n(c),
        max_outstanding_r2t: u32::from(c.u8()).max(1),
        immediate_data: f & 1 != 0,
        initial_r2t: f & 2 != 0,
        header_crc32c: f & 4 != 0,
        header_none: f & 8 != 0 || f & 4 == 0,
        data_crc32c: f & 16 != 0,
        data_none: f & 32 != 0 || f & 16 == 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let o = offer(&mut c);
    let discovery = c.u8() & 1 != 0;
    let body = c.take(usize::MAX);
    let Ok(pairs) = TextPairs::parse(body) else {
        return;
    };
    // encode/parse round trip
    let again = TextPairs::parse(&pairs.encode()).expect("own encoding parses");
    assert_eq!(again, pairs);
    for (_, v) in &pairs.0 {
        let _ = decode_binary(v);
        // Numbers: decimal or 0x hex (RFC 7143 §6.1), the same value either way.
        if let Some(n) = keys::parse_number(v) {
            assert_eq!(keys::parse_number(&n.to_string()), Some(n));
            assert_eq!(keys::parse_number(&format!("0x{n:x}")), Some(n));
        }
    }
    let mut params = Params::defaults(&o);
    let mut seen = keys::Seen::default();
    // The target's own proposals (keys where its offer is stricter than the RFC default)
    // parse, and the initiator's text is then negotiated against them.
    let proposed = keys::proposals(&o, &mut seen, discovery);
    TextPairs::parse(&proposed.encode()).expect("proposals parse");
    if let Ok(resp) = keys::negotiate(&pairs, &o, &mut params, &mut seen, discovery) {
        let _ = TextPairs::parse(&resp.encode()).expect("answers parse");
        keys::finish(&mut params);
        assert!(params.first_burst_length <= params.max_burst_length);
        assert!(params.max_burst_length <= o.max_burst_length.max(262_144));
        // A second round repeats keys: refused, not a panic.
        let _ = keys::negotiate(&pairs, &o, &mut params, &mut seen, discovery);
    }
});
