//! Carrying out task management in the SCSI core, for every nexus it reaches (SAM-5 §7):
//! the session has already dropped its own tasks that had not started; here the running
//! ones — of this nexus, or of every nexus of the logical unit or target — are aborted
//! and waited for, resets raise their unit attentions, and a cold reset ends every
//! session of the target. The TMF response goes out only after this returns.

use std::sync::Arc;
use std::time::Instant;

use super::ServerCtx;
use super::sessions::Kill;
use crate::iscsi::session::{TaskId, TmfScope};
use crate::iscsi::wire::codes::tmf;
use crate::scsi::tasks::AbortScope;
use crate::scsi::{ItNexus, LogicalUnit};

/// What an abort needs to know about the session that asked.
pub(super) struct Asker {
    pub nexus: Arc<ItNexus>,
    pub target: String,
    pub tsih: u16,
}

fn unit_at(nexus: &ItNexus, lun: u64) -> Option<Arc<LogicalUnit>> {
    let map = nexus.luns();
    map.binary_search_by_key(&lun, |m| m.lun)
        .ok()
        .map(|i| map[i].unit.clone())
}

/// Carries out `scope` for tasks that arrived before `received`; `running` are the
/// asking session's running tasks it covers, with their units. Returns the TMF response.
pub(super) async fn carry_out(
    ctx: &ServerCtx,
    who: &Asker,
    scope: TmfScope,
    running: Vec<(TaskId, Arc<LogicalUnit>)>,
    received: Instant,
) -> u8 {
    let id = who.nexus.id();
    match scope {
        TmfScope::Task { .. } => {
            for (task, unit) in running {
                unit.abort_tasks(
                    AbortScope::Task {
                        nexus: id,
                        task: task.0,
                    },
                    received,
                )
                .await;
            }
            tmf::RESP_COMPLETE
        }
        TmfScope::TaskSet { lun } => match unit_at(&who.nexus, lun) {
            None => tmf::RESP_NO_LUN,
            Some(u) => {
                u.abort_tasks(AbortScope::Nexus(id), received).await;
                tmf::RESP_COMPLETE
            }
        },
        TmfScope::ClearTaskSet { lun } | TmfScope::LuReset { lun } => {
            let Some(u) = unit_at(&who.nexus, lun) else {
                return tmf::RESP_NO_LUN;
            };
            let n = u.abort_tasks(AbortScope::All, received).await;
            if matches!(scope, TmfScope::LuReset { .. }) {
                // Every I_T nexus of the unit gets the reset's unit attention.
                u.reset();
            }
            tracing::info!(lun, aborted = n, ?scope, "task management carried out");
            tmf::RESP_COMPLETE
        }
        TmfScope::TargetReset { cold } => {
            let reg = ctx.registry.load_full();
            let mut units: Vec<Arc<LogicalUnit>> = reg
                .targets
                .get(&who.target)
                .map(|t| t.luns.values().cloned().collect())
                .unwrap_or_default();
            units.dedup_by(|a, b| Arc::ptr_eq(a, b));
            let mut n = 0;
            for u in &units {
                n += u.abort_tasks(AbortScope::All, received).await;
                u.reset();
            }
            if cold {
                // RFC 7143 §11.5.1: a cold reset closes every session of the target; the
                // asking one closes itself once its response is sent.
                for s in ctx.sessions.list() {
                    if s.key.target == who.target && s.tsih != who.tsih {
                        let _ = s.kill.send(Kill::Reset);
                    }
                }
            }
            tracing::info!(target = %who.target, cold, units = units.len(), aborted = n, "target reset");
            tmf::RESP_COMPLETE
        }
    }
}

/// Session teardown: every running task of the nexus is aborted and waited for, so no
/// I/O of a session outlives it (a reinstating login waits for this).
pub(super) async fn drain(nexus_id: u64, running: Vec<(TaskId, Arc<LogicalUnit>)>, now: Instant) {
    for (task, unit) in running {
        unit.abort_tasks(
            AbortScope::Task {
                nexus: nexus_id,
                task: task.0,
            },
            now,
        )
        .await;
    }
}
