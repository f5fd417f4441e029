//! The daemon's one change path: SIGHUP, `rustiscsi reload` and every CLI edit come here.
//!
//! Under one lock: check the revision the change was made against, validate, look at
//! what runs (sessions, open backstores, listeners, the files to be opened), compute the
//! plan ([`plan_live`]: the one rule of what a change does), refuse what the rules refuse
//! unless forced, and then carry the plan out: bind new portals, build and install the new
//! registry, close removed portals, log out and remap sessions. The report lists what was
//! done, each item once it was done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use super::ServerCtx;
use super::listeners;
use crate::backstore::BackstoreKind;
use crate::config::{self, Config, ConfigError, ValidatedConfig};
use crate::control::api::{ChangeReport, ControlError, ErrorCode, Plan, SessionRef};
use crate::control::plan::{Live, plan_live};
use crate::control::server::{APPLY_ORIGIN, ChangeRequest, ChangeSource};
use crate::registry::Registry;
use crate::scsi::LunMap;

/// What an apply did to the live sessions (TSIHs), for callers that only need that.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sessions logged out.
    pub logged_out: Vec<u16>,
    /// Sessions told to rescan (LUN map or capacity changed).
    pub remapped: Vec<u16>,
}

fn same_map(a: &LunMap, b: &LunMap) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.lun == y.lun && x.read_only == y.read_only && Arc::ptr_eq(&x.unit, &y.unit)
        })
}

/// Installs `v` (no revision check, no force): what tests and simple callers use.
pub fn apply(ctx: &ServerCtx, v: &ValidatedConfig) -> Result<Applied, ControlError> {
    let r = change(
        ctx,
        ChangeRequest {
            source: ChangeSource::Config {
                config: v.config.clone(),
                base_revision: None,
            },
            dry_run: false,
            force: false,
        },
    )?;
    Ok(Applied {
        logged_out: r.plan.sessions_logged_out.iter().map(|s| s.tsih).collect(),
        remapped: r.plan.sessions_rescanned.iter().map(|s| s.tsih).collect(),
    })
}

fn invalid(errs: Vec<ConfigError>) -> ControlError {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    ControlError::invalid(lines.join("\n"))
}

/// Carries out one change (blocking: opens files, binds sockets; run it on a blocking
/// thread). Changes are serialised; see the module documentation.
pub fn change(ctx: &ServerCtx, req: ChangeRequest) -> Result<ChangeReport, ControlError> {
    let _one_at_a_time = ctx.changes.lock().unwrap_or_else(|e| e.into_inner());
    let (revision, running) = ctx.snapshot();
    let v = match req.source {
        ChangeSource::Config {
            config,
            base_revision,
        } => {
            if let Some(b) = base_revision
                && b != revision
            {
                return Err(ControlError::new(
                    ErrorCode::Conflict,
                    format!(
                        "the configuration changed while this change was being made (made \
                         against revision {b}, revision {revision} runs now); nothing was \
                         changed: run the command again"
                    ),
                ));
            }
            config::validate_all(config, APPLY_ORIGIN).map_err(invalid)?
        }
        ChangeSource::Reload => {
            let path = ctx.source.clone().ok_or_else(|| {
                ControlError::refused(
                    "the daemon runs the embedded default configuration; there is no file \
                     to reload (start rustiscsid with --config FILE)",
                )
            })?;
            ctx.overrides.load(&path).map_err(invalid)?
        }
    };
    let mut warnings = new_warnings(&running.config, &v.warnings);
    let live = live(ctx, &running, &v.config, &mut warnings)?;
    let plan = plan_live(&running.config, &v.config, &live);
    if !plan.needs_force.is_empty() && !req.force && !req.dry_run {
        return Err(ControlError::refused(format!(
            "refused (pass --force to do it anyway):\n  {}",
            plan.needs_force.join("\n  ")
        )));
    }
    // What would be bound is bound now (and, on a dry run, closed again): a portal that
    // cannot be bound refuses the change before anything is changed.
    let fresh: Vec<_> = plan
        .portals_added
        .iter()
        .filter(|p| !plan.portals_removed.contains(p))
        .copied()
        .collect();
    let mut bound = Vec::new();
    for p in &fresh {
        let dual = config::portals::dual_stack(&v.config.daemon.portals, p);
        match listeners::bind(*p, dual) {
            Ok(b) => bound.push(b),
            Err(e) => {
                return Err(ControlError::refused(format!(
                    "the daemon cannot carry out this change: {e}"
                )));
            }
        }
    }
    let unsaved_now = |c: &Config| unsaved(ctx, c);
    if req.dry_run {
        drop(bound);
        return Ok(ChangeReport {
            dry_run: true,
            revision,
            unsaved: unsaved_now(&running.config),
            plan,
            warnings,
            failed: Vec::new(),
        });
    }
    if v.config == running.config {
        return Ok(ChangeReport {
            dry_run: false,
            revision,
            unsaved: unsaved_now(&running.config),
            plan: Plan::default(),
            warnings,
            failed: Vec::new(),
        });
    }
    let sizes_before = live.sizes;
    let new = Registry::build(&v, Some(&running)).map_err(|e| {
        ControlError::new(ErrorCode::Internal, format!("the change was not made: {e}"))
    })?;
    for w in &new.warnings {
        if !warnings.contains(w) {
            warnings.push(w.clone());
        }
    }
    let revision = ctx.install(new);
    let reg = ctx.registry.load_full();
    let d = &reg.config.daemon;
    ctx.admission.set_limits(
        d.max_login_connections,
        d.max_discovery_sessions,
        d.max_connections,
    );
    ctx.buffers.set_limit(d.buffer_memory.0);
    let mut done = plan.clone();
    let mut failed = Vec::new();

    // Portals: close the removed ones (sessions on them are logged out below), start the
    // new ones, bind again those whose dual-stack role changed.
    for p in &plan.portals_removed {
        ctx.listeners.stop(p);
    }
    for b in bound {
        let p = b.portal;
        if let Err(e) = ctx.start_listener(b, true) {
            failed.push(format!("portal {p}: {e}"));
            done.portals_added.retain(|x| *x != p);
        }
    }
    for p in plan
        .portals_added
        .iter()
        .filter(|p| plan.portals_removed.contains(p))
    {
        let dual = config::portals::dual_stack(&v.config.daemon.portals, p);
        if let Err(e) = listeners::bind(*p, dual).and_then(|b| ctx.start_listener(b, true)) {
            failed.push(format!("portal {p}: closed but not bound again: {e}"));
            done.portals_added.retain(|x| x != p);
        }
    }

    // Backstores whose size the plan changes: report the size reached.
    done.backstores_resized.retain_mut(|r| {
        let after = reg
            .units
            .get(&r.name)
            .and_then(|(_, u)| u.backstore().map(|b| b.size()));
        if after.is_some() && after != sizes_before.get(&r.name).copied() {
            r.new = after;
            true
        } else {
            failed.push(format!("backstore {}: the size did not change", r.name));
            false
        }
    });
    done.files_created.retain(|name| {
        v.config.backstores[name]
            .path
            .as_deref()
            .is_some_and(Path::exists)
    });

    // Sessions: log out exactly those the plan names; bring the others' LUN maps in line.
    let out: BTreeSet<u16> = plan.sessions_logged_out.iter().map(|s| s.tsih).collect();
    let mut killed = BTreeSet::new();
    let mut rescanned: BTreeMap<u16, SessionRef> = BTreeMap::new();
    let grown: BTreeSet<&str> = done
        .backstores_resized
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    for s in ctx.sessions.list() {
        if out.contains(&s.tsih) {
            tracing::info!(initiator = %s.key.initiator, target = %s.key.target, tsih = s.tsih, "logging the session out");
            let _ = s.kill.send(crate::server::sessions::Kill::AccessRemoved);
            killed.insert(s.tsih);
            continue;
        }
        let Some(nexus) = &s.nexus else { continue };
        let sref = |reason: &str| SessionRef {
            tsih: s.tsih,
            initiator: s.key.initiator.clone(),
            target: Some(s.key.target.clone()),
            reason: reason.to_owned(),
        };
        match reg.lun_map(&s.key.target, &s.key.initiator) {
            None => {
                // Not in the plan (it logged in meanwhile?): its access is gone all the same.
                let _ = s.kill.send(crate::server::sessions::Kill::AccessRemoved);
                killed.insert(s.tsih);
                done.sessions_logged_out
                    .push(sref("its access was removed"));
            }
            Some(map) => {
                let old = nexus.luns();
                if !same_map(&old, &map) {
                    nexus.set_luns(map);
                    rescanned.insert(s.tsih, sref("its LUN map changes"));
                } else if old.iter().any(|m| grown.contains(m.unit.backstore_name())) {
                    rescanned.insert(s.tsih, sref("a backstore it sees was resized"));
                }
            }
        }
    }
    done.sessions_logged_out
        .retain(|s| killed.contains(&s.tsih));
    // Keep the plan's reasons for what happened as planned; add what happened besides.
    done.sessions_rescanned
        .retain(|s| rescanned.contains_key(&s.tsih));
    for (tsih, r) in rescanned {
        if !done.sessions_rescanned.iter().any(|s| s.tsih == tsih) {
            done.sessions_rescanned.push(r);
        }
    }
    tracing::info!(
        revision,
        logged_out = ?killed,
        "configuration changed"
    );
    Ok(ChangeReport {
        dry_run: false,
        revision,
        unsaved: unsaved_now(&reg.config),
        plan: done,
        warnings,
        failed,
    })
}

/// Validation warnings of the new configuration that the running one does not have.
fn new_warnings(running: &Config, new: &[String]) -> Vec<String> {
    let tail = |w: &str| {
        // Compare without the `file:line: ` part.
        match w.split_once(": ") {
            Some((head, rest)) if head.contains(':') || head.starts_with('<') => rest.to_owned(),
            _ => w.to_owned(),
        }
    };
    let before: Vec<String> = config::validate_all(running.clone(), APPLY_ORIGIN)
        .map(|v| v.warnings.iter().map(|w| tail(w)).collect())
        .unwrap_or_default();
    new.iter()
        .filter(|w| !before.contains(&tail(w)))
        .cloned()
        .collect()
}

/// Whether `c` differs from the daemon's file (with the overrides), `None` without a file.
fn unsaved(ctx: &ServerCtx, c: &Config) -> Option<bool> {
    let path = ctx.source.as_ref()?;
    Some(ctx.overrides.load(path).map_or(true, |v| v.config != *c))
}

/// What runs, as the plan needs it; checks that the files, devices and secrets the new
/// configuration names can be used (the same checks the real change makes, without
/// creating anything).
fn live(
    ctx: &ServerCtx,
    running: &Registry,
    new: &Config,
    warnings: &mut Vec<String>,
) -> Result<Live, ControlError> {
    let sessions = super::control::session_infos(ctx, running);
    let sizes = running
        .units
        .iter()
        .filter_map(|(n, (_, u))| u.backstore().map(|b| (n.clone(), b.size())))
        .collect();
    let managed = ctx.listeners.managed();
    let mut problems = Vec::new();
    let mut files = BTreeMap::new();
    for (name, b) in &new.backstores {
        let reopened = match running.config.backstores.get(name) {
            None => true,
            Some(o) => o.kind != b.kind || o.path != b.path || o.block_size != b.block_size,
        };
        if !reopened {
            continue;
        }
        match probe(b) {
            Ok(fact) => {
                if b.kind == BackstoreKind::Fileio {
                    files.insert(name.clone(), fact);
                }
            }
            Err(why) => problems.push(format!("backstore {name}: {why}")),
        }
    }
    let mut secret_warnings = Vec::new();
    let mut check = |c: &Option<config::ChapConfig>, m: &Option<config::ChapConfig>| {
        if let Err(e) = crate::registry::auth(c, m, &mut secret_warnings) {
            problems.push(e.to_string());
        }
    };
    check(&new.discovery.chap, &new.discovery.mutual_chap);
    for t in new.targets.values() {
        check(&t.auth.chap, &t.auth.mutual_chap);
        for a in t.acls.values() {
            check(&a.chap, &a.mutual_chap);
        }
    }
    for w in secret_warnings {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(ControlError::refused(format!(
            "the daemon cannot carry out this change:\n  {}",
            problems.join("\n  ")
        )));
    }
    Ok(Live {
        sessions,
        sizes,
        listeners: (!managed.is_empty()).then_some(managed),
        files,
    })
}

/// Whether the storage of `b` can be opened as the registry will open it, without
/// creating anything; for fileio, the length of the file (`None`: it will be created).
fn probe(b: &config::BackstoreConfig) -> Result<Option<u64>, String> {
    use std::os::unix::fs::FileTypeExt;
    let Some(path) = &b.path else {
        return Ok(None);
    };
    let rw = |p: &Path| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .map(drop)
            .map_err(|e| format!("cannot open {} for reading and writing: {e}", p.display()))
    };
    match (b.kind, std::fs::metadata(path)) {
        (BackstoreKind::Ramdisk, _) => Ok(None),
        (BackstoreKind::Block, Ok(m)) if m.file_type().is_block_device() => rw(path).map(|()| None),
        (BackstoreKind::Block, Ok(_)) => Err(format!("{} is not a block device", path.display())),
        (BackstoreKind::Block, Err(e)) => Err(format!("{}: {e}", path.display())),
        (BackstoreKind::Fileio, Ok(m)) if m.is_file() => rw(path).map(|()| Some(m.len())),
        (BackstoreKind::Fileio, Ok(_)) => Err(format!("{} is not a regular file", path.display())),
        (BackstoreKind::Fileio, Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            if b.size.is_none() {
                return Err(format!(
                    "{} does not exist and no size is given to create it",
                    path.display()
                ));
            }
            let dir = path.parent().unwrap_or(Path::new("/"));
            let usable = std::fs::metadata(dir).is_ok_and(|m| m.is_dir())
                && nix::unistd::access(
                    dir,
                    nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
                )
                .is_ok();
            if usable {
                Ok(None)
            } else {
                Err(format!(
                    "cannot create {}: {} is not a writable directory",
                    path.display(),
                    dir.display()
                ))
            }
        }
        (BackstoreKind::Fileio, Err(e)) => Err(format!("{}: {e}", path.display())),
    }
}
