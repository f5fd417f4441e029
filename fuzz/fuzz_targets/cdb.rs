//! CDB parsing (`scsi::cdb::parse`): any bytes give a command or a sense, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustiscsi::scsi::cdb;

fuzz_target!(|data: &[u8]| {
    let r = cdb::parse(data);
    if let Some(&op) = data.first() {
        let n = cdb::cdb_len(op);
        if r.is_ok() {
            assert!(n > 0 && data.len() >= n, "a CDB shorter than its group parsed");
            // Only the first `n` bytes matter.
            assert_eq!(cdb::parse(&data[..n]), r);
        }
    }
    let _ = format!("{r:?}");
});
