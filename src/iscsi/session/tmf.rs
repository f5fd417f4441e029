//! Task management (RFC 7143 §11.5, SAM-5 §7): the session's share.
//!
//! Tasks of this session that have not reached the SCSI core (collecting data, waiting for
//! order or budget) are dropped here at once. Tasks that are running are marked aborted and
//! handed to the driver in an [`Action::Abort`]: the driver aborts them — and, for the
//! functions that reach beyond this nexus, every other nexus's tasks — in the SCSI core's
//! task set, waits until their backstore I/O is over, and only then reports back with
//! [`Session::on_tmf_done`], which queues the TMF response. So FUNCTION COMPLETE is never
//! sent while an aborted command can still touch the medium.

use std::time::Instant;

use bytes::Bytes;

use super::datain::OutPdu;
use super::text::Directory;
use super::window::Position;
use super::{Action, CloseReason, Out, Session, Stage, TaskId, TmfId, TmfScope};
use crate::iscsi::serial::sn_lt;
use crate::iscsi::wire::bhs::decode_lun;
use crate::iscsi::wire::codes::tmf;
use crate::iscsi::wire::{Bhs, Opcode};

/// A TMF waiting for the driver.
#[derive(Debug)]
pub(super) struct PendingTmf {
    itt: u32,
    cold: bool,
}

impl Session {
    /// A task management request, delivered in CmdSN order (or immediate).
    pub(super) fn tmf(&mut self, now: Instant, bhs: &Bhs, dir: &dyn Directory) {
        let function = bhs.flags() & 0x7f;
        let lun = decode_lun(bhs.lun_raw());
        let itt = bhs.itt();
        let id = TmfId(self.next_tmf);
        self.next_tmf += 1;
        let scope = match function {
            tmf::ABORT_TASK => {
                let rtt = bhs.ttt(); // Referenced Task Tag
                let refcmdsn = bhs.u32_at(32);
                return self.abort_task(now, id, itt, rtt, refcmdsn, bhs.cmdsn(), dir);
            }
            tmf::ABORT_TASK_SET => TmfScope::TaskSet { lun },
            tmf::CLEAR_TASK_SET => TmfScope::ClearTaskSet { lun },
            tmf::LOGICAL_UNIT_RESET => TmfScope::LuReset { lun },
            tmf::TARGET_WARM_RESET => TmfScope::TargetReset { cold: false },
            tmf::TARGET_COLD_RESET => TmfScope::TargetReset { cold: true },
            tmf::TASK_REASSIGN => {
                return self.tmf_response(itt, tmf::RESP_REASSIGN_UNSUPPORTED);
            }
            // CLEAR ACA: no ACA condition is ever established.
            _ => return self.tmf_response(itt, tmf::RESP_NOT_SUPPORTED),
        };
        let all_luns = matches!(scope, TmfScope::TargetReset { .. });
        let covered: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| all_luns || t.lun == lun)
            .map(|(id, _)| *id)
            .collect();
        let mut running = Vec::new();
        for tid in covered {
            self.drop_or_mark(tid, id, &mut running);
        }
        self.tmfs.insert(
            id,
            PendingTmf {
                itt,
                cold: matches!(scope, TmfScope::TargetReset { cold: true }),
            },
        );
        self.actions.push_back(Action::Abort {
            tmf: id,
            scope,
            tasks: running,
            received: now,
        });
    }

    /// Drops a task that has not reached the SCSI core; marks a running one (its id goes
    /// to `running`); leaves an answered one alone (its status is on its way).
    fn drop_or_mark(&mut self, task: TaskId, by: TmfId, running: &mut Vec<TaskId>) {
        let Some(t) = self.tasks.get_mut(&task) else {
            return;
        };
        match t.stage {
            Stage::Executing => {
                t.aborted = Some(by);
                running.push(task);
            }
            Stage::Answering => {}
            Stage::Data(_) | Stage::Ready(_) => self.retire(task),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn abort_task(
        &mut self,
        now: Instant,
        id: TmfId,
        itt: u32,
        rtt: u32,
        refcmdsn: u32,
        tmf_cmdsn: u32,
        dir: &dyn Directory,
    ) {
        let Some(&task) = self.by_itt.get(&rtt) else {
            // RFC 7143 §11.5.1: a task never received whose RefCmdSN is in the window and
            // below the TMF's own CmdSN is considered received (the hole is filled, held
            // commands go on) and the abort is complete; otherwise it does not exist.
            let unseen = matches!(self.window.position(refcmdsn), Position::Accept { .. });
            if unseen && sn_lt(refcmdsn, tmf_cmdsn) {
                self.receive_cmdsn(now, refcmdsn, dir);
                return self.tmf_response(itt, tmf::RESP_COMPLETE);
            }
            return self.tmf_response(itt, tmf::RESP_NO_TASK);
        };
        let t = &self.tasks[&task];
        if matches!(t.stage, Stage::Answering) {
            // It completed; its status is queued ahead of this response.
            return self.tmf_response(itt, tmf::RESP_NO_TASK);
        }
        let lun = t.lun;
        let mut running = Vec::new();
        self.drop_or_mark(task, id, &mut running);
        if running.is_empty() {
            return self.tmf_response(itt, tmf::RESP_COMPLETE);
        }
        self.tmfs.insert(id, PendingTmf { itt, cold: false });
        self.actions.push_back(Action::Abort {
            tmf: id,
            scope: TmfScope::Task { lun },
            tasks: running,
            received: now,
        });
    }

    fn tmf_response(&mut self, itt: u32, response: u8) {
        let mut b = Bhs::new(Opcode::TMF_RESPONSE);
        b.set_flags(0x80);
        b.0[2] = response;
        b.set_itt(itt);
        self.queue(OutPdu::status(b, Bytes::new()));
    }

    /// The driver carried out an [`Action::Abort`]: every affected command's I/O is over.
    /// `response` is the TMF response code (FUNCTION COMPLETE, LUN DOES NOT EXIST, ...).
    pub fn on_tmf_done(&mut self, now: Instant, id: TmfId, response: u8) {
        let Some(p) = self.tmfs.remove(&id) else {
            return;
        };
        if self.closed {
            return;
        }
        tracing::debug!(itt = p.itt, response, "task management done");
        self.tmf_response(p.itt, response);
        if p.cold && response == tmf::RESP_COMPLETE {
            // RFC 7143 §11.5.1: after a cold reset the target closes every connection.
            self.outq.push_back(Out::Close(CloseReason::ColdReset));
        }
        self.kick(now);
    }
}
