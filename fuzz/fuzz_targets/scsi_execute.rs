//! `scsi::execute` against a fresh ramdisk LUN (and a read-only view of it), fed
//! arbitrary sequences of commands: LUN, CDB, write data, expected Data-In length. The
//! futures are driven by a minimal executor (a ramdisk never waits). Never a panic; a
//! CHECK CONDITION always carries sense; GOOD never carries sense.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rustiscsi::backstore::{Backstore, BackstoreKind, BackstoreSpec, CacheMode, OpenOptions};
use rustiscsi::scsi::{self, ItNexus, LogicalUnit, LunIdentity, MappedLun, ScsiCommand};
use rustiscsi_fuzz::Cursor;

/// One current-thread runtime for all inputs (with its blocking pool).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn nexus(c: &mut Cursor) -> ItNexus {
    let bs = if c.u8() & 1 == 0 { 512 } else { 4096 };
    let backstore = Backstore::open(
        &BackstoreSpec {
            name: "fuzz".into(),
            kind: BackstoreKind::Ramdisk,
            path: None,
            size: Some(256 * 1024),
            block_size: bs,
            write_cache: c.u8() & 1 != 0,
            cache: CacheMode::Buffered,
        },
        &OpenOptions::default(),
    )
    .expect("ramdisk");
    let unit = Arc::new(LogicalUnit::new(
        Arc::new(backstore),
        LunIdentity::new("FUZZ0001", 0x3000_0000_0000_0001u64),
    ));
    ItNexus::new(
        "iqn.2026-11.org.example:fuzz,i,0x800000000001".into(),
        "iqn.2026-11.org.example:tgt,t,0x0001".into(),
        vec![
            MappedLun {
                lun: 0,
                unit: unit.clone(),
                read_only: false,
            },
            MappedLun {
                lun: 1,
                unit,
                read_only: true,
            },
        ],
    )
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let n = nexus(&mut c);
    for _ in 0..16 {
        if c.is_empty() {
            break;
        }
        let lun = u64::from(c.u8() % 3); // 2 is unmapped
        let cdb_len = [6usize, 10, 12, 16, 32][usize::from(c.u8() % 5)];
        let cdb = Bytes::copy_from_slice(c.take(cdb_len));
        let out_len = usize::from(c.u16()) % 20_000;
        let data_out = c.take(out_len).to_vec();
        let expected_in = u32::from(c.u16()) * 4;
        // A tokio runtime as in the daemon: memory transfers above 128 KiB go to the
        // blocking pool (backstore::INLINE_MAX), which the no-op executor cannot run.
        let r = runtime().block_on(scsi::execute(
            &n,
            ScsiCommand {
                lun,
                cdb,
                data_out: data_out.into(),
                expected_in,
            },
        ));
        if r.status == scsi::status::CHECK_CONDITION {
            assert!(r.sense.is_some(), "CHECK CONDITION without sense");
        }
        if r.status == scsi::status::GOOD {
            assert!(r.sense.is_none(), "GOOD with sense");
        }
    }
});
