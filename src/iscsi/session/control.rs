//! NOP-Out, Text, Logout, and the daemon ending a session.

use super::*;

impl Session {
    pub(super) fn nop_out(&mut self, bhs: &Bhs, mut data: IoBuf) {
        if bhs.ttt() != RESERVED_TAG || bhs.itt() == RESERVED_TAG {
            // The answer to our ping (any PDU already proved the initiator alive), or a
            // ping that wants no answer.
            return;
        }
        data.truncate(self.params.initiator_mrdsl as usize);
        let mut b = Bhs::new(Opcode::NOP_IN);
        b.set_flags(0x80);
        b.set_lun_raw(bhs.lun_raw());
        b.set_itt(bhs.itt());
        b.set_ttt(RESERVED_TAG);
        self.queue(OutPdu::status(b, data.into_bytes()));
    }

    pub(super) fn text_request(&mut self, bhs: &Bhs, data: &[u8], dir: &dyn Directory) {
        let cont = bhs.flags() & 0x40 != 0;
        let res = self.text.request(
            (bhs.itt(), bhs.ttt(), cont),
            data,
            (self.params.initiator_mrdsl as usize, self.limits.max_text),
            dir,
        );
        match res {
            Err(reason) => self.reject(bhs, reason),
            Ok(r) => {
                let mut b = Bhs::new(Opcode::TEXT_RESPONSE);
                b.set_flags(if r.fin { 0x80 } else { 0 } | if r.cont { 0x40 } else { 0 });
                b.set_lun_raw(bhs.lun_raw());
                b.set_itt(bhs.itt());
                b.set_ttt(r.ttt);
                self.queue(OutPdu::status(b, Bytes::from(r.data)));
            }
        }
    }

    pub(super) fn logout_request(&mut self, now: Instant, bhs: &Bhs) {
        let reason = bhs.flags() & 0x7f;
        let response = match reason {
            logout::CLOSE_SESSION => logout::RESP_OK,
            logout::CLOSE_CONNECTION if bhs.u16_at(20) == self.cid => logout::RESP_OK,
            logout::CLOSE_CONNECTION => logout::RESP_CID_NOT_FOUND,
            _ => logout::RESP_RECOVERY_UNSUPPORTED,
        };
        if response != logout::RESP_OK {
            self.logout_response(bhs.itt(), response);
            return;
        }
        self.logout = Some(LogoutState {
            itt: bhs.itt(),
            deadline: now + self.limits.logout_timeout,
        });
        self.ask_deadline = None;
        self.check_logout(now);
    }

    pub(super) fn logout_response(&mut self, itt: u32, response: u8) {
        let mut b = Bhs::new(Opcode::LOGOUT_RESPONSE);
        b.set_flags(0x80);
        b.0[2] = response;
        b.set_itt(itt);
        self.queue(OutPdu::status(b, Bytes::new()));
    }

    /// Answers a pending logout once no command is left (commands waiting for data get
    /// until the logout deadline; running ones always finish first).
    pub(super) fn check_logout(&mut self, now: Instant) {
        let Some((itt, deadline)) = self.logout.as_ref().map(|l| (l.itt, l.deadline)) else {
            return;
        };
        if now >= deadline {
            let waiting: Vec<TaskId> = self
                .tasks
                .iter()
                .filter(|(_, t)| matches!(t.stage, Stage::Data(_) | Stage::Ready(_)))
                .map(|(id, _)| *id)
                .collect();
            for id in waiting {
                self.retire(id);
            }
        }
        if !self.tasks.is_empty() {
            return;
        }
        self.logout = None;
        self.logout_response(itt, logout::RESP_OK);
        self.outq.push_back(Out::Close(CloseReason::Logout));
    }

    /// The daemon ends the session.
    pub fn on_kill(&mut self, now: Instant, kill: Kill) {
        if self.closed {
            return;
        }
        match kill {
            Kill::Now(why) => self.close(CloseReason::Killed(why), false),
            Kill::AskLogout(why) => {
                if self.logout.is_some() || self.ask_deadline.is_some() {
                    return;
                }
                tracing::debug!("asking the initiator to log out: {why}");
                let mut b = Bhs::new(Opcode::ASYNC_MESSAGE);
                b.set_flags(0x80);
                b.set_itt(RESERVED_TAG);
                b.0[36] = async_event::REQUEST_LOGOUT;
                let secs = self.limits.logout_grace.as_secs().clamp(1, 3600) as u16;
                b.set_u16_at(42, secs); // Parameter3: seconds to log out
                self.queue(OutPdu::status(b, Bytes::new()));
                self.ask_deadline = Some(now + self.limits.logout_grace + Duration::from_secs(2));
            }
        }
    }
}
