//! Time and output: the timers, the actions for the driver, numbered PDUs for the socket.

use super::*;

impl Session {
    /// The earliest time [`Session::on_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut at = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        at(self.pdu_deadline);
        at(self.send_since.map(|s| s + self.limits.send_timeout));
        at(self.budget_retry);
        at(self.ask_deadline);
        at(self.logout.as_ref().map(|l| l.deadline));
        if let Some(iv) = self.limits.nop_interval {
            at(Some(match self.ping {
                Some((_, sent)) => sent + self.limits.nop_timeout,
                None => self.last_rx + iv,
            }));
        }
        for task in self.tasks.values() {
            if let Stage::Data(w) = &task.stage
                && w.waiting_for_initiator()
            {
                at(Some(w.last_progress() + self.limits.data_timeout));
            }
        }
        t
    }

    /// Time passed: runs whatever timer is due.
    pub fn on_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.pdu_deadline.is_some_and(|d| now >= d) {
            return self.close(CloseReason::PduTimeout, false);
        }
        if self
            .send_since
            .is_some_and(|s| now >= s + self.limits.send_timeout)
        {
            return self.close(CloseReason::SendTimeout, false);
        }
        if self.ask_deadline.is_some_and(|d| now >= d) {
            return self.close(CloseReason::LogoutTimeout, false);
        }
        if let Some(iv) = self.limits.nop_interval {
            match self.ping {
                Some((_, sent)) if now >= sent + self.limits.nop_timeout => {
                    return self.close(CloseReason::NopTimeout, false);
                }
                None if now >= self.last_rx + iv => {
                    let ttt = Self::new_ttt(&mut self.next_ttt);
                    let mut b = Bhs::new(Opcode::NOP_IN);
                    b.set_flags(0x80);
                    b.set_itt(RESERVED_TAG);
                    b.set_ttt(ttt);
                    self.queue(OutPdu {
                        bhs: b,
                        data: Bytes::new(),
                        sn: Sn::Peek,
                    });
                    self.ping = Some((ttt, now));
                }
                _ => {}
            }
        }
        let stalled: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| {
                matches!(&t.stage, Stage::Data(w)
                    if w.waiting_for_initiator() && now >= w.last_progress() + self.limits.data_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            tracing::warn!(
                itt = self.tasks[&id].itt,
                "write data stopped arriving: the command ends"
            );
            self.answer_now(id, ScsiResponse::check(DATA_TIMEOUT));
        }
        if self.budget_retry.is_some_and(|r| now >= r) {
            self.grant_budget(now);
        }
        if self.logout.is_some() {
            self.check_logout(now);
        }
        self.kick(now);
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next PDU to send, with its sequence numbers filled in. The driver takes PDUs
    /// only as fast as the socket accepts them; that is what frees window slots and
    /// budget (a command's slot is free once its status is taken here).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<OutPdu> {
        loop {
            let front = self.outq.front_mut()?;
            let (mut pdu, done) = match front {
                Out::Pdu(_) => {
                    let Some(Out::Pdu(p)) = self.outq.pop_front() else {
                        unreachable!()
                    };
                    (p, None)
                }
                Out::Answer(id, a) => {
                    let id = *id;
                    match a.next_pdu() {
                        Some((p, last)) => {
                            if last {
                                self.outq.pop_front();
                            }
                            (p, last.then_some(id))
                        }
                        None => {
                            self.outq.pop_front();
                            continue;
                        }
                    }
                }
                Out::Close(_) => {
                    let Some(Out::Close(reason)) = self.outq.pop_front() else {
                        unreachable!()
                    };
                    self.close(reason, true);
                    return None;
                }
            };
            self.out_bytes = self
                .out_bytes
                .saturating_sub(pdu.data.len() + crate::iscsi::wire::BHS_LEN);
            if let Some(id) = done {
                self.retire(id);
                self.kick(now);
                if self.logout.is_some() {
                    self.check_logout(now);
                }
            }
            match pdu.sn {
                Sn::Status => {
                    pdu.bhs.set_statsn(self.statsn);
                    self.statsn = self.statsn.wrapping_add(1);
                }
                Sn::Peek => {
                    pdu.bhs.set_statsn(self.statsn);
                }
                Sn::None => {}
            }
            let max = self.window.advertise(self.budget_slots());
            pdu.bhs
                .set_exp_cmdsn(self.window.exp_cmdsn())
                .set_max_cmdsn(max);
            pdu.bhs.set_data_segment_len(pdu.data.len());
            if self.send_since.is_none() {
                self.send_since = Some(now);
            }
            return Some(pdu);
        }
    }

    /// The driver wrote to the socket: progress was made; `idle` when nothing it took is
    /// left unsent (the send-stall timer stops).
    pub fn on_sent(&mut self, now: Instant, idle: bool) {
        self.send_since = if idle && self.outq.is_empty() {
            None
        } else {
            Some(now)
        };
    }

    /// The stream broke (header digest error, peer closed, I/O error).
    pub fn on_broken(&mut self, why: String) {
        self.close(CloseReason::Protocol(why), false);
    }
}
