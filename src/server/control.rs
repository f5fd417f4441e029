//! The daemon side of the control API: status, sessions, stats and apply, answered from
//! the running registry and session table.

use std::path::PathBuf;
use std::sync::Arc;

use super::ServerCtx;
use super::apply;
use crate::config::{Config, ValidatedConfig};
use crate::control::api::{
    ControlError, ErrorCode, HostInfo, LunStats, Plan, SessionCounters, SessionInfo, SessionParams,
    SessionStats, Stats, StatusReport,
};
use crate::control::plan::plan;
use crate::control::server::{BoxFuture, ControlBackend};
use crate::server::sessions::SessionHandle;

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

fn session_info(h: &SessionHandle) -> SessionInfo {
    let p = &h.params;
    SessionInfo {
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

impl ControlBackend for ServerCtx {
    fn status(&self) -> StatusReport {
        let reg = self.registry.load();
        let mut r = StatusReport::from_config(&reg.config, self.source.clone());
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
        self.sessions
            .list()
            .iter()
            .map(|h| session_info(h))
            .collect()
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

    fn config(&self) -> (Config, Option<PathBuf>) {
        (self.registry.load().config.clone(), self.source.clone())
    }

    fn apply(
        &self,
        new: ValidatedConfig,
        dry_run: bool,
    ) -> BoxFuture<'_, Result<Plan, ControlError>> {
        Box::pin(async move {
            let running = self.registry.load_full();
            let p = plan(&running.config, &new.config, &self.sessions());
            if !dry_run {
                apply::apply(self, &new)
                    .map_err(|e| ControlError::new(ErrorCode::Internal, e.to_string()))?;
            }
            Ok(p)
        })
    }
}

/// The context as a control backend.
pub fn backend(ctx: &Arc<ServerCtx>) -> Arc<dyn ControlBackend> {
    ctx.clone()
}
