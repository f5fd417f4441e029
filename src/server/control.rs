//! The daemon side of the control API: status, sessions, stats and apply, answered from
//! the running registry and session table.

use std::path::PathBuf;
use std::sync::Arc;

use super::ServerCtx;
use super::apply;
use crate::config::Config;
use crate::control::api::{
    ChangeReport, ConnectionInfo, ControlError, HostInfo, LunStats, Response, SessionCounters,
    SessionInfo, SessionLun, SessionParams, SessionRef, SessionStats, Stats, StatusReport,
};
use crate::control::server::{ChangeRequest, ControlBackend};
use crate::registry::Registry;
use crate::server::sessions::{Kill, SessionHandle};

fn digest(on: bool) -> String {
    if on { "CRC32C" } else { "None" }.to_string()
}

fn counters(h: &SessionHandle) -> SessionCounters {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &h.counters;
    SessionCounters {
        commands: c.commands.load(Relaxed),
        read_bytes: c.read_bytes.load(Relaxed),
        write_bytes: c.write_bytes.load(Relaxed),
        errors: c.errors.load(Relaxed),
    }
}

fn session_info(h: &SessionHandle, reg: &Registry) -> SessionInfo {
    let p = &h.params;
    let mapped_luns = h.nexus.as_ref().map_or_else(Vec::new, |n| {
        n.luns()
            .iter()
            .map(|m| SessionLun {
                lun: m.lun,
                backstore: m.unit.backstore_name().to_owned(),
                read_only: m.read_only,
            })
            .collect()
    });
    // The CHAP user the registry asks this initiator for (a change of it logs the
    // session out, so it is the one it logged in with).
    let chap_user = h.auth.and_then(|_| {
        let a = if h.discovery {
            &reg.discovery
        } else {
            let t = reg.targets.get(&h.key.target)?;
            match t.acls.get(&h.key.initiator) {
                Some(acl) if acl.auth.chap.is_some() => &acl.auth,
                _ => &t.auth,
            }
        };
        a.chap.as_ref().map(|c| c.user.clone())
    });
    let tpg = h.nexus.as_ref().map_or(0, |n| {
        n.target_port()
            .rsplit_once(",t,0x")
            .and_then(|(_, t)| u16::from_str_radix(t, 16).ok())
            .unwrap_or(0)
    });
    SessionInfo {
        tpg,
        auth_method: match h.auth {
            Some(alg) => format!("CHAP ({alg})"),
            None => "None".into(),
        },
        chap_user,
        mapped_luns,
        connections: vec![ConnectionInfo {
            cid: h.cid,
            peer: h.peer,
            local: h.local,
        }],
        tsih: h.tsih,
        initiator: h.key.initiator.clone(),
        isid: hex::encode(h.key.isid),
        target: (!h.discovery).then(|| h.key.target.clone()),
        peer: h.peer,
        local: h.local,
        discovery: h.discovery,
        params: SessionParams {
            header_digest: digest(p.header_digest),
            data_digest: digest(p.data_digest),
            max_burst_length: p.max_burst_length,
            first_burst_length: p.first_burst_length,
            initiator_mrdsl: p.initiator_mrdsl,
            target_mrdsl: p.target_mrdsl,
            immediate_data: p.immediate_data,
            initial_r2t: p.initial_r2t,
            max_outstanding_r2t: p.max_outstanding_r2t,
        },
        counters: counters(h),
        since_secs: h.since.elapsed().as_secs(),
    }
}

/// Every session as the control API shows it.
pub(crate) fn session_infos(ctx: &ServerCtx, reg: &Registry) -> Vec<SessionInfo> {
    ctx.sessions
        .list()
        .iter()
        .map(|h| session_info(h, reg))
        .collect()
}

impl ControlBackend for ServerCtx {
    fn status(&self) -> StatusReport {
        let (revision, reg) = self.snapshot();
        let mut r = StatusReport::from_config(&reg.config, self.source.clone());
        r.revision = revision;
        r.portals = self.listeners.status();
        r.uptime_secs = self.started.elapsed().as_secs();
        r.host = HostInfo::collect();
        for b in &mut r.backstores {
            if let Some((_, unit)) = reg.units.get(&b.name) {
                if let Some(store) = unit.backstore() {
                    b.size_bytes = Some(store.size());
                }
                let h = unit.health.snapshot();
                b.health = h.state;
                b.error = h.reason;
                b.io_errors = h.read_errors + h.write_errors + h.flush_errors + h.discard_errors;
                b.block_size = unit.block_size();
                b.serial = Some(unit.identity().serial.clone());
                b.naa = Some(format!("{:016x}", unit.identity().naa));
            }
        }
        let sessions = self.sessions.list();
        for t in &mut r.targets {
            t.sessions = sessions
                .iter()
                .filter(|s| !s.discovery && s.key.target == t.iqn)
                .count() as u32;
        }
        r
    }

    fn sessions(&self) -> Vec<SessionInfo> {
        session_infos(self, &self.registry.load())
    }

    fn stats(&self) -> Stats {
        let reg = self.registry.load();
        let luns = reg
            .units
            .iter()
            .map(|(name, (_, unit))| {
                let s = unit.metrics.snapshot();
                let h = unit.health.snapshot();
                LunStats {
                    health: h.state,
                    read_errors: h.read_errors,
                    write_errors: h.write_errors,
                    flush_errors: h.flush_errors,
                    discard_errors: h.discard_errors,
                    backstore: name.clone(),
                    reads: s.reads,
                    writes: s.writes,
                    read_bytes: s.read_bytes,
                    write_bytes: s.write_bytes,
                    latency_histogram_us: s.latency_us,
                }
            })
            .collect();
        let sessions = self
            .sessions
            .list()
            .iter()
            .map(|h| SessionStats {
                tsih: h.tsih,
                initiator: h.key.initiator.clone(),
                target: (!h.discovery).then(|| h.key.target.clone()),
                counters: counters(h),
            })
            .collect();
        Stats { luns, sessions }
    }

    fn config(&self) -> (Config, Option<PathBuf>, u64) {
        let (rev, reg) = self.snapshot();
        (reg.config.clone(), self.source.clone(), rev)
    }

    fn change(&self, req: ChangeRequest) -> Result<ChangeReport, ControlError> {
        apply::change(self, req)
    }

    fn save(&self, path: Option<PathBuf>) -> Result<Response, ControlError> {
        let _no_change_meanwhile = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let config = self.registry.load().config.clone();
        crate::control::server::save_config(&config, self.source.as_deref(), path.as_deref())
    }

    fn logout(&self, tsih: u16) -> Result<SessionRef, ControlError> {
        let s = self
            .sessions
            .get(tsih)
            .ok_or_else(|| ControlError::not_found(format!("no session {tsih}")))?;
        tracing::info!(tsih, initiator = %s.key.initiator, "logout asked through the control socket");
        let _ = s.kill.send(Kill::AccessRemoved);
        Ok(SessionRef {
            tsih,
            initiator: s.key.initiator.clone(),
            target: (!s.discovery).then(|| s.key.target.clone()),
            reason: "logout asked by the administrator".into(),
        })
    }
}

/// The context as a control backend.
pub fn backend(ctx: &Arc<ServerCtx>) -> Arc<dyn ControlBackend> {
    ctx.clone()
}
