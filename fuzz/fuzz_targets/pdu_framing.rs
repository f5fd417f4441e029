//! PDU framing as the server reads it off the socket: header (BHS, AHS, header digest),
//! then the data segment (padding, data digest) or, past MaxRecvDataSegmentLength, a
//! skip. Arbitrary bytes must give a clean error, never a panic, and every accessor of
//! a header that parsed must work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustiscsi::iscsi::wire::Bhs;
use rustiscsi::iscsi::wire::bhs::{decode_lun, encode_lun};
use rustiscsi::server::framing::{put_header, read_data, read_header, skip_data};
use rustiscsi_fuzz::block_on;

fn touch(b: &Bhs) {
    let _ = (b.opcode(), b.immediate(), b.flags(), b.final_bit(), b.total_ahs_len());
    let _ = (b.itt(), b.ttt(), b.cmdsn(), b.exp_statsn(), b.max_cmdsn(), b.datasn());
    let _ = (b.buffer_offset(), b.residual(), b.edtl(), b.statsn(), b.cdb().len());
    let _ = format!("{b:?}");
    let lun = decode_lun(b.lun_raw());
    if lun < 16384 {
        assert_eq!(decode_lun(encode_lun(lun)), lun);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, rest)) = data.split_first() else {
        return;
    };
    let (hd, dd) = (cfg & 1 != 0, cfg & 2 != 0);
    // The server's own MaxRecvDataSegmentLength (512 B .. 64 KiB here).
    let mrdsl = 512usize << ((cfg >> 4) & 7);
    let mut rd = tokio::io::BufReader::new(rest);
    block_on(async {
        for _ in 0..64 {
            let Ok(h) = read_header(&mut rd, hd).await else {
                break;
            };
            assert_eq!(h.ahs.len(), h.bhs.total_ahs_len());
            touch(&h.bhs);
            // What put_header writes, read_header reads back.
            let mut plain = h.bhs;
            plain.0[4] = 0;
            let mut wire = Vec::new();
            put_header(&mut wire, &plain, hd);
            let mut again = tokio::io::BufReader::new(&wire[..]);
            let back = read_header(&mut again, hd).await.expect("own header reads back");
            assert_eq!(back.bhs, plain);
            let dlen = h.bhs.data_segment_len();
            if dlen > mrdsl {
                if skip_data(&mut rd, dlen, dd).await.is_err() {
                    break;
                }
            } else {
                let mut buf = Vec::new();
                match read_data(&mut rd, dlen, dd, &mut buf).await {
                    Ok(_) => assert_eq!(buf.len(), dlen),
                    Err(_) => break,
                }
            }
        }
    });
});
