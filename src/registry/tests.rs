//! What a reload keeps (the logical unit of the same disk, with its reservations and unit
//! attentions), shared backstores, relative target port identifiers, pinned identities and
//! APTPL across a restart.

use crate::scsi::pr::test_params as params;
use std::path::Path;
use std::sync::Arc;

use super::Registry;
use crate::config;
use crate::scsi::pr::Access;

const T1: &str = "iqn.2026-11.org.example:one";
const T2: &str = "iqn.2026-11.org.example:two";
const A: &str = "iqn.2005-03.org.open-iscsi:a,i,0x00023d000001";
const B: &str = "iqn.2005-03.org.open-iscsi:b,i,0x00023d000001";

fn port(iqn: &str) -> String {
    crate::scsi::target_port_name(iqn, 1)
}

/// A config with fileio `disk0` (`extra` lines in its table) exported by the targets named.
fn config(dir: &Path, extra: &str, targets: &[&str]) -> config::ValidatedConfig {
    let mut text = format!(
        "[daemon]\nportals = [\"127.0.0.1:3260\"]\nstate_dir = \"{d}/state\"\n\
         [backstores.disk0]\nkind = \"fileio\"\npath = \"{d}/disk0.img\"\nsize = \"1M\"\n{extra}\n",
        d = dir.display()
    );
    for t in targets {
        text.push_str(&format!(
            "[targets.\"{t}\"]\ndemo_mode = true\nluns = [{{ lun = 0, backstore = \"disk0\" }}]\n"
        ));
    }
    config::parse(&text, "test.toml").unwrap()
}

async fn register_and_reserve(reg: &Registry, aptpl: bool) {
    let r = &reg.units["disk0"].1.reservations;
    let p1 = port(T1);
    let o = r
        .pr_out(A, &p1, 0, 0, 0, &params(0, 0xa, u8::from(aptpl)))
        .await;
    assert_eq!(o.result, Ok(vec![]));
    let o = r.pr_out(A, &p1, 1, 0, 5, &params(0xa, 0, 0)).await;
    assert_eq!(o.result, Ok(vec![]));
}

#[tokio::test]
async fn a_reload_that_keeps_the_path_keeps_the_unit() {
    let dir = tempfile::tempdir().unwrap();
    let one = Registry::build(&config(dir.path(), "", &[T1]), None).unwrap();
    register_and_reserve(&one, false).await;
    let unit = one.units["disk0"].1.clone();
    let before = unit.backstore().unwrap();
    unit.capacity_changed(); // a unit attention not yet reported
    let gen_before = unit.capacity_gen();
    // write_cache toggled: the backstore is reopened under the same unit.
    let two =
        Registry::build(&config(dir.path(), "write_cache = true", &[T1]), Some(&one)).unwrap();
    let kept = &two.units["disk0"].1;
    assert!(Arc::ptr_eq(kept, &unit));
    assert!(!Arc::ptr_eq(&kept.backstore().unwrap(), &before));
    assert!(kept.backstore().unwrap().write_cache());
    assert_eq!(kept.capacity_gen(), gen_before);
    assert!(!kept.reservations.permits(B, &port(T1), Access::Write));
    assert_eq!(kept.reservations.snapshot().registrations.len(), 1);
    // A new path is another disk: a new unit without the reservation.
    let text = config(dir.path(), "", &[T1]);
    let mut moved = text.clone();
    let b = moved.config.backstores.get_mut("disk0").unwrap();
    b.path = Some(dir.path().join("elsewhere.img"));
    let three = Registry::build(&moved, Some(&two)).unwrap();
    let fresh = &three.units["disk0"].1;
    assert!(!Arc::ptr_eq(fresh, &unit));
    assert!(fresh.reservations.permits(B, &port(T1), Access::Write));
}

#[tokio::test]
async fn a_failed_reload_changes_no_kept_unit() {
    let dir = tempfile::tempdir().unwrap();
    let one = Registry::build(&config(dir.path(), "", &[T1]), None).unwrap();
    let unit = one.units["disk0"].1.clone();
    let before = unit.backstore().unwrap();
    let mut v = config(dir.path(), "write_cache = true", &[T1]);
    v.config.targets.get_mut(T1).unwrap().auth.chap = Some(crate::config::ChapConfig {
        user: "u".into(),
        password_file: dir.path().join("missing-secret"),
    });
    assert!(Registry::build(&v, Some(&one)).is_err());
    assert!(Arc::ptr_eq(&unit.backstore().unwrap(), &before));
    assert!(!unit.backstore().unwrap().write_cache());
}

#[tokio::test]
async fn targets_sharing_a_backstore_share_its_unit() {
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::build(&config(dir.path(), "", &[T1, T2]), None).unwrap();
    let (u1, u2) = (&reg.targets[T1].luns[&0], &reg.targets[T2].luns[&0]);
    assert!(Arc::ptr_eq(u1, u2));
    // Both have portal group tag 1; their relative target port identifiers differ.
    assert_eq!(
        (reg.targets[T1].rtpis[&1], reg.targets[T2].rtpis[&1]),
        (1, 2)
    );
    let r = &u1.reservations;
    assert_eq!(
        (r.relative_port_id(&port(T1)), r.relative_port_id(&port(T2))),
        (1, 2)
    );
    // A reservation taken through one target fences the other target's initiators.
    register_and_reserve(&reg, false).await;
    assert!(!r.permits(B, &port(T2), Access::Write));
    assert!(r.permits(A, &port(T1), Access::Write));
    assert!(!r.permits(A, &port(T2), Access::Write), "another I_T nexus");
    // Identifiers stay put when a target sorting first is added.
    let t0 = "iqn.2026-11.org.example:aaa";
    let more = Registry::build(&config(dir.path(), "", &[t0, T1, T2]), Some(&reg)).unwrap();
    assert_eq!(
        (
            more.targets[T1].rtpis[&1],
            more.targets[T2].rtpis[&1],
            more.targets[t0].rtpis[&1]
        ),
        (1, 2, 3)
    );
}

#[test]
fn pinned_identity_takes_effect_and_stays() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Registry::build(&config(dir.path(), "", &[T1]), None).unwrap();
    let generated = plain.units["disk0"].1.identity().clone();
    let pins = "serial = \"a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9\"\n\
                wwn = \"naa.6001405a1b2c3d4e5f647189293a4b5c\"\n\
                vendor = \"LIO-ORG\"\nproduct = \"IBLOCK\"";
    let pinned = Registry::build(&config(dir.path(), pins, &[T1]), Some(&plain)).unwrap();
    let unit = &pinned.units["disk0"].1;
    let id = unit.identity();
    assert_ne!(*id, generated);
    assert!(
        !Arc::ptr_eq(unit, &plain.units["disk0"].1),
        "a new identity is a new unit"
    );
    assert_eq!(id.serial, "a1b2c3d4-e5f6-4718-9293-a4b5c6d7e8f9");
    assert_eq!(id.naa.to_string(), "naa.6001405a1b2c3d4e5f647189293a4b5c");
    assert_eq!(
        (id.vendor.as_deref(), id.product.as_deref()),
        (Some("LIO-ORG"), Some("IBLOCK"))
    );
    let stored = std::fs::read_to_string(dir.path().join("state/identities.json")).unwrap();
    assert!(
        stored.contains("0x6001405a1b2c3d4e5f647189293a4b5c"),
        "{stored}"
    );
    // The pins leave the config: the disk keeps presenting them (and keeps its unit).
    let unpinned = Registry::build(&config(dir.path(), "", &[T1]), Some(&pinned)).unwrap();
    assert!(Arc::ptr_eq(&unpinned.units["disk0"].1, unit));
    // And after a restart too.
    let restarted = Registry::build(&config(dir.path(), "", &[T1]), None).unwrap();
    assert_eq!(restarted.units["disk0"].1.identity(), id);
}

#[tokio::test]
async fn aptpl_reservations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let v = config(dir.path(), "", &[T1]);
    let first = Registry::build(&v, None).unwrap();
    register_and_reserve(&first, true).await;
    let saved = first.units["disk0"].1.reservations.snapshot();
    drop(first);
    let second = Registry::build(&v, None).unwrap();
    let r = &second.units["disk0"].1.reservations;
    assert_eq!(r.snapshot(), saved);
    assert!(r.aptpl_active());
    assert!(!r.permits(B, &port(T1), Access::Write));
    // Without APTPL a restart forgets them.
    let dir = tempfile::tempdir().unwrap();
    let v = config(dir.path(), "", &[T1]);
    let first = Registry::build(&v, None).unwrap();
    register_and_reserve(&first, false).await;
    drop(first);
    let second = Registry::build(&v, None).unwrap();
    assert!(
        second.units["disk0"]
            .1
            .reservations
            .permits(B, &port(T1), Access::Write)
    );
}

#[test]
fn two_disks_never_share_an_identity() {
    let dir = tempfile::tempdir().unwrap();
    let one = Registry::build(&config(dir.path(), "", &[T1]), None).unwrap();
    let naa = one.units["disk0"].1.identity().naa.to_string();
    // A second backstore pinned to disk0's stored (generated) designator.
    let mut v = config(dir.path(), "", &[T1]);
    let mut b = v.config.backstores["disk0"].clone();
    b.path = Some(dir.path().join("disk1.img"));
    b.wwn = Some(naa.clone());
    v.config.backstores.insert("disk1".into(), b);
    let e = Registry::build(&v, Some(&one)).unwrap_err();
    assert!(e.to_string().contains(&naa), "{e}");
}
