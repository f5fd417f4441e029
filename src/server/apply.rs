//! Applying a new configuration to the running daemon: one path for startup reloads,
//! SIGHUP and the control socket. Build a new registry (reusing unchanged backstores),
//! swap it in, then bring every live session in line: a session whose access is gone is
//! logged out, one whose LUN map changed gets the new map (and a REPORTED LUNS DATA HAS
//! CHANGED unit attention), the rest are untouched.

use std::sync::Arc;

use super::ServerCtx;
use crate::config::ValidatedConfig;
use crate::registry::{Registry, RegistryError};
use crate::scsi::LunMap;

/// What an apply did to the live sessions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sessions logged out because their access was removed (TSIHs).
    pub logged_out: Vec<u16>,
    /// Sessions whose LUN map changed (TSIHs).
    pub remapped: Vec<u16>,
}

fn same_map(a: &LunMap, b: &LunMap) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.lun == y.lun && x.read_only == y.read_only && Arc::ptr_eq(&x.unit, &y.unit)
        })
}

/// Builds and installs the registry for `v`.
pub fn apply(ctx: &ServerCtx, v: &ValidatedConfig) -> Result<Applied, RegistryError> {
    let _one_at_a_time = ctx.apply_lock.lock().unwrap_or_else(|e| e.into_inner());
    let old = ctx.registry.load_full();
    let new = Registry::build(v, Some(&old))?;
    if new.config.daemon.portals != old.config.daemon.portals {
        tracing::warn!("portal changes take effect at the next restart");
    }
    ctx.registry.store(Arc::new(new));
    let reg = ctx.registry.load();
    let d = &reg.config.daemon;
    ctx.admission.set_limits(
        d.max_login_connections,
        d.max_discovery_sessions,
        d.max_connections,
    );
    ctx.buffers.set_limit(d.buffer_memory.0);
    let mut out = Applied::default();
    for s in ctx.sessions.list() {
        let Some(nexus) = &s.nexus else { continue };
        match reg.lun_map(&s.key.target, &s.key.initiator) {
            None => {
                tracing::info!(initiator = %s.key.initiator, target = %s.key.target, tsih = s.tsih, "access removed: logging the session out");
                let _ = s.kill.send(crate::server::sessions::Kill::AccessRemoved);
                out.logged_out.push(s.tsih);
            }
            Some(map) => {
                if !same_map(&nexus.luns(), &map) {
                    tracing::info!(initiator = %s.key.initiator, tsih = s.tsih, "LUN map changed");
                    nexus.set_luns(map);
                    out.remapped.push(s.tsih);
                }
            }
        }
    }
    Ok(out)
}
