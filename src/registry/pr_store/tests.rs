//! The APTPL file: written through PERSISTENT RESERVE OUT, restored into a new unit of the
//! same disk only, removed when APTPL is cleared, and an unreadable file is an error.

use crate::scsi::pr::test_params as params;
use std::sync::Arc;

use super::*;
use crate::backstore::Backstore;
use crate::scsi::LunIdentity;

const T: &str = "iqn.2026-11.org.example:tgt,t,0x0001";
const A: &str = "iqn.2005-03.org.open-iscsi:a,i,0x00023d000001";

fn spec(dir: &Path, file: &str) -> BackstoreSpec {
    BackstoreSpec {
        name: "disk0".into(),
        kind: BackstoreKind::Fileio,
        path: Some(dir.join(file)),
        size: Some(1 << 20),
        block_size: 512,
        write_cache: false,
        cache: crate::backstore::CacheMode::Buffered,
    }
}

fn unit(spec: &BackstoreSpec, naa: u64) -> LogicalUnit {
    LogicalUnit::new(
        Arc::new(Backstore::open(spec, &Default::default()).unwrap()),
        LunIdentity::new("SERIAL0", naa),
    )
}

#[tokio::test]
async fn round_trip_through_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = spec(dir.path(), "disk0.img");
    let naa = 0x3000_0000_0000_00aa_u64;
    let u = unit(&s, naa);
    attach(&u, &state, "disk0", &s).unwrap();
    assert_eq!(u.reservations.pr_in(2).unwrap()[2] & 1, 1, "PTPL_C");
    let r = &u.reservations;
    let o = r.pr_out(A, T, 0, 0, 0, &params(0, 0xa, 0x01)).await;
    assert_eq!(o.result, Ok(vec![]));
    let o = r.pr_out(A, T, 1, 0, 5, &params(0xa, 0, 0)).await;
    assert_eq!(o.result, Ok(vec![]));
    let file = state.join("reservations/naa.30000000000000aa.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"type\": 5") && text.contains(A), "{text}");
    // A restart: a new unit of the same disk gets it all back.
    let again = unit(&s, naa);
    attach(&again, &state, "renamed", &s).unwrap();
    assert_eq!(again.reservations.snapshot(), u.reservations.snapshot());
    assert!(again.reservations.aptpl_active());
    assert!(!again.reservations.permits(
        "iqn.x:y,i,0x000000000001",
        T,
        crate::scsi::pr::Access::Write
    ));
    // The same name and identity on another file is another disk: nothing restored.
    let other = spec(dir.path(), "other.img");
    let replaced = unit(&other, naa);
    attach(&replaced, &state, "disk0", &other).unwrap();
    assert!(replaced.reservations.snapshot().registrations.is_empty());
    assert!(file.exists(), "the other disk's file is left alone");
    // Another identity reads another file.
    let fresh = unit(&s, 0x3000_0000_0000_00bb);
    attach(&fresh, &state, "disk0", &s).unwrap();
    assert!(fresh.reservations.snapshot().registrations.is_empty());
    // APTPL cleared: the file goes.
    let o = r.pr_out(A, T, 0, 0, 0, &params(0xa, 0xa2, 0)).await;
    assert_eq!(o.result, Ok(vec![]));
    assert!(!file.exists());
    let after = unit(&s, naa);
    attach(&after, &state, "disk0", &s).unwrap();
    assert!(after.reservations.snapshot().registrations.is_empty());
}

#[test]
fn unreadable_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = spec(dir.path(), "disk0.img");
    let naa = 0x3000_0000_0000_00cc_u64;
    let file = state.join("reservations/naa.30000000000000cc.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    for bad in [
        "{".to_string(),
        r#"{"format":2,"owner":{},"state":{}}"#.to_string(),
    ] {
        std::fs::write(&file, bad).unwrap();
        let e = attach(&unit(&s, naa), &state, "disk0", &s).unwrap_err();
        assert!(e.to_string().contains("naa.30000000000000cc.json"), "{e}");
    }
    // Consistent JSON, inconsistent state (holder not registered).
    let f = StateFile {
        format: FORMAT,
        owner: Owner {
            backstore: "disk0".into(),
            serial: "SERIAL0".into(),
            naa: "30000000000000cc".into(),
            kind: BackstoreKind::Fileio,
            path: s.path.clone(),
        },
        state: PrSnapshot {
            generation: 1,
            registrations: vec![],
            reservation: Some(crate::scsi::pr::SavedReservation {
                initiator: A.into(),
                target: T.into(),
                kind: 1,
            }),
        },
    };
    std::fs::write(&file, serde_json::to_vec(&f).unwrap()).unwrap();
    let e = attach(&unit(&s, naa), &state, "disk0", &s).unwrap_err();
    assert!(e.to_string().contains("not registered"), "{e}");
}

/// A write interrupted by a crash leaves at most a partial temporary file beside the
/// state file: the state file still holds the previous state, which is what comes back.
#[tokio::test]
async fn an_interrupted_write_keeps_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = spec(dir.path(), "disk0.img");
    let naa = 0x3000_0000_0000_00dd_u64;
    let u = unit(&s, naa);
    attach(&u, &state, "disk0", &s).unwrap();
    let r = &u.reservations;
    let o = r.pr_out(A, T, 0, 0, 0, &params(0, 0xa, 0x01)).await;
    assert_eq!(o.result, Ok(vec![]));
    let saved = r.snapshot();
    // What a crash in the middle of the next write leaves behind: the temporary file,
    // half written (the writer names it `.<file>.tmp.<pid>`).
    let reservations = state.join("reservations");
    std::fs::write(
        reservations.join(".naa.30000000000000dd.json.tmp.4242"),
        b"{\"format\": 1, \"owner\": {\"backs",
    )
    .unwrap();
    let back = unit(&s, naa);
    attach(&back, &state, "disk0", &s).unwrap();
    assert_eq!(back.reservations.snapshot(), saved);
    // The next write goes through regardless.
    let o = back
        .reservations
        .pr_out(A, T, 1, 0, 1, &params(0xa, 0, 0))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    let again = unit(&s, naa);
    attach(&again, &state, "disk0", &s).unwrap();
    assert!(again.reservations.snapshot().reservation.is_some());
}
