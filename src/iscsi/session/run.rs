//! A task's life after it arrived: the memory budget, task attributes, starting in the
//! SCSI core, completion, the answer, and retirement (which frees its window slot).

use super::*;

impl Session {
    pub(super) fn reserve(&mut self, n: u64) -> bool {
        if self.used + n > self.limits.session_buffers {
            return false;
        }
        if !self.pool.try_reserve(n) {
            return false;
        }
        self.used += n;
        true
    }

    pub(super) fn release(&mut self, n: u64) {
        if n > 0 {
            self.used = self.used.saturating_sub(n);
            self.pool.release(n);
        }
    }

    pub(super) fn arm_budget_retry(&mut self, now: Instant) {
        if self.budget_retry.is_none() {
            self.budget_retry = Some(now + Duration::from_millis(2));
        }
    }

    /// How many more commands the window may admit given the session budget: each may
    /// bring unsolicited data up to FirstBurstLength.
    pub(super) fn budget_slots(&self) -> u32 {
        let p = &self.params;
        if !p.immediate_data && p.initial_r2t {
            return u32::MAX;
        }
        let per = u64::from(
            p.first_burst_length
                .min(p.target_mrdsl.max(p.first_burst_length))
                .max(1),
        );
        let free = self.limits.session_buffers.saturating_sub(self.used);
        u32::try_from(free / per).unwrap_or(u32::MAX)
    }

    /// The global budget may have room again (call when the retry timer fires).
    /// Bytes a read reserves: what the initiator expects, but never more than one command
    /// can transfer (the SCSI core reads no more), so an EDTL beyond the budget cannot
    /// wait forever at the head of the queue.
    pub(super) fn read_reservation(&self, expected_in: u32) -> u64 {
        u64::from(expected_in.min(self.limits.max_transfer))
    }

    pub(super) fn grant_budget(&mut self, now: Instant) {
        self.budget_retry = None;
        while let Some(&id) = self.budget_wait.front() {
            let Some(t) = self.tasks.get(&id) else {
                self.budget_wait.pop_front();
                continue;
            };
            let need = match &t.stage {
                Stage::Data(w) => u64::from(w.edtl()),
                Stage::Ready(_) => self.read_reservation(t.expected_in),
                _ => 0,
            };
            if need > 0 && !self.reserve(need) {
                self.arm_budget_retry(now);
                return;
            }
            self.budget_wait.pop_front();
            let t = self.tasks.get_mut(&id).expect("present");
            t.reserved += need;
            match &mut t.stage {
                Stage::Data(w) => {
                    let early = w.early_bytes() as u64;
                    w.install(IoBuf::filled(w.edtl() as usize));
                    // The early data now lives in the reserved buffer.
                    self.used = self.used.saturating_sub(early);
                    self.progress_write(now, id);
                }
                Stage::Ready(_) if t.delivered => {
                    self.ready.insert((t.seq, id));
                }
                _ => {}
            }
        }
    }

    /// Grants budget and starts every task that can start.
    pub(super) fn kick(&mut self, now: Instant) {
        if self.closed {
            return; // a closed session starts nothing
        }
        if !self.budget_wait.is_empty() {
            self.grant_budget(now);
        }
        if self.ready.is_empty() {
            return;
        }
        if self.ordered == 0 {
            // No ORDERED task: every ready task may start, in delivery order.
            while let Some(&(seq, id)) = self.ready.first() {
                if !self.may_start(id) {
                    break;
                }
                self.ready.remove(&(seq, id));
                self.start(now, id);
            }
            return;
        }
        let ready: Vec<(u64, TaskId)> = self.ready.iter().copied().collect();
        for (seq, id) in ready {
            if self.may_start(id) {
                self.ready.remove(&(seq, id));
                self.start(now, id);
            } else if self.ordered == 0 {
                // Only budget holds it back, and the budget queue is in order.
                break;
            }
        }
    }

    /// Task attribute rules (SAM-5 §8): ORDERED waits for every earlier task and holds
    /// back every later one; HEAD OF QUEUE goes first.
    pub(super) fn may_start(&self, id: TaskId) -> bool {
        let Some(t) = self.tasks.get(&id) else {
            return false;
        };
        if t.attr == TaskAttr::HeadOfQueue || self.ordered == 0 {
            return true;
        }
        !self.tasks.values().any(|o| {
            o.delivered
                && o.seq < t.seq
                && matches!(o.stage, Stage::Ready(_) | Stage::Executing | Stage::Data(_))
                && (t.attr == TaskAttr::Ordered || o.attr == TaskAttr::Ordered)
                && o.attr != TaskAttr::HeadOfQueue
        })
    }

    pub(super) fn start(&mut self, now: Instant, id: TaskId) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        if let Some(resp) = t.preset.take() {
            self.answer(id, resp);
            return;
        }
        if t.expected_in > 0 && t.reserved == 0 {
            let expected_in = t.expected_in;
            let need = self.read_reservation(expected_in);
            if self.budget_wait.is_empty() && self.reserve(need) {
                self.tasks.get_mut(&id).expect("present").reserved = need;
            } else {
                self.budget_wait.push_back(id);
                self.arm_budget_retry(now);
                return;
            }
        }
        let t = self.tasks.get_mut(&id).expect("present");
        let data_out = match std::mem::replace(&mut t.stage, Stage::Executing) {
            Stage::Ready(data) => data,
            _ => IoBuf::new(),
        };
        self.actions.push_back(Action::Execute(Exec {
            task: id,
            lun: t.lun,
            cdb: t.cdb.clone(),
            data_out,
            expected_in: t.expected_in,
            received: t.received,
            attr: t.attr,
        }));
    }

    /// A command finished in the SCSI core.
    pub fn on_completion(&mut self, now: Instant, id: TaskId, c: Completion) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        if !matches!(t.stage, Stage::Executing) {
            return;
        }
        // Write data is gone with the command: its budget is free.
        if t.expected_in == 0 {
            let n = std::mem::take(&mut t.reserved);
            self.release(n);
        }
        let t = self.tasks.get(&id).expect("present");
        if t.aborted.is_some() || self.closed {
            self.retire(id);
        } else {
            let resp = match c {
                Completion::Done(r) => r,
                Completion::Aborted => ScsiResponse::status(status::TASK_ABORTED),
            };
            self.answer(id, resp);
        }
        self.kick(now);
    }

    /// Queues a task's answer.
    pub(super) fn answer(&mut self, id: TaskId, resp: ScsiResponse) {
        let shape = self.shape();
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        t.stage = Stage::Answering;
        let a = Answer::new(t.itt, t.lun_raw, t.expected_in, t.edtl, resp, shape);
        self.out_bytes += a.pending_bytes() + crate::iscsi::wire::BHS_LEN;
        self.outq.push_back(Out::Answer(id, Box::new(a)));
    }

    /// Ends a task before it ran, with `resp` (a protocol error, a timeout).
    pub(super) fn answer_now(&mut self, id: TaskId, resp: ScsiResponse) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        let n = std::mem::take(&mut t.reserved);
        if let Some(sn) = t.cmdsn
            && !t.delivered
        {
            self.undelivered.remove(&sn);
        }
        self.ready.remove(&(t.seq, id));
        self.budget_wait.retain(|x| *x != id);
        self.release(n);
        self.answer(id, resp);
    }

    /// Removes a task: its window slot and budget are free again.
    pub(super) fn retire(&mut self, id: TaskId) {
        let Some(t) = self.tasks.remove(&id) else {
            return;
        };
        if self.by_itt.get(&t.itt) == Some(&id) {
            self.by_itt.remove(&t.itt);
        }
        if let Some(sn) = t.cmdsn
            && !t.delivered
            && self.undelivered.get(&sn) == Some(&id)
        {
            self.undelivered.remove(&sn);
        }
        if t.holds_slot {
            self.window.free_slot();
        }
        if t.cmdsn.is_none() {
            self.immediate = self.immediate.saturating_sub(1);
        }
        if t.attr == TaskAttr::Ordered {
            self.ordered = self.ordered.saturating_sub(1);
        }
        if let Stage::Data(w) = &t.stage {
            self.used = self.used.saturating_sub(w.early_bytes() as u64);
        }
        self.ready.remove(&(t.seq, id));
        self.budget_wait.retain(|x| *x != id);
        self.release(t.reserved);
    }
}
