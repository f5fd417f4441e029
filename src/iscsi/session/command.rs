//! SCSI commands and their write data: admission into the CmdSN window, protocol
//! checks, the write buffer (granted by the budget), Data-Out placement and R2Ts.

use super::*;

impl Session {
    pub(super) fn scsi_command(
        &mut self,
        now: Instant,
        h: &Header,
        dlen: usize,
    ) -> (Pending, Option<DataSink>) {
        let bhs = &h.bhs;
        let flags = bhs.flags();
        let (fin, read, write) = (flags & 0x80 != 0, flags & 0x40 != 0, flags & 0x20 != 0);
        let edtl = bhs.edtl();
        let dlen32 = dlen as u32;
        let immediate = bhs.immediate();
        let cmdsn = (!immediate).then(|| bhs.cmdsn());
        if let Some(sn) = cmdsn
            && !matches!(self.window.position(sn), Position::Accept { .. })
        {
            tracing::debug!(cmdsn = sn, window = ?self.cmdsn_window(), "SCSI command outside the CmdSN window: dropped");
            return (Pending::Nothing, None);
        }
        let p = &self.params;
        let protocol_error = (dlen > 0 && (!write || !p.immediate_data))
            || dlen32 > edtl
            || dlen32 > p.first_burst_length
            || (!fin && (!write || p.initial_r2t))
            || bhs.itt() == RESERVED_TAG;
        let itt = bhs.itt();
        let refusal = if protocol_error {
            Some(RejectReason::ProtocolError)
        } else if self.by_itt.contains_key(&itt) {
            Some(RejectReason::TaskInProgress)
        } else {
            None
        };
        if let Some(reason) = refusal {
            // The PDU arrived intact: its CmdSN counts as received (no hole).
            self.reject(bhs, reason);
            return (
                Pending::Write {
                    task: TaskId(0),
                    place: Placement {
                        offset: 0,
                        len: 0,
                        ttt: None,
                    },
                    early: true,
                    fin: true,
                    command: Some(cmdsn),
                },
                None,
            );
        }
        if immediate && self.immediate >= self.limits.max_immediate {
            let mut b = Bhs::new(Opcode::SCSI_RESPONSE);
            b.set_flags(0x80);
            b.0[3] = status::TASK_SET_FULL;
            b.set_itt(itt);
            self.queue(OutPdu::status(b, Bytes::new()));
            return (Pending::Nothing, None);
        }
        let mut cdb = Vec::with_capacity(16);
        cdb.extend_from_slice(bhs.cdb());
        // Extended CDB AHS (type 1): the CDB bytes beyond 16.
        if h.ahs.len() >= 4 && h.ahs[2] == 1 {
            let len = (u16::from_be_bytes([h.ahs[0], h.ahs[1]]) as usize).saturating_sub(1);
            cdb.extend_from_slice(&h.ahs[4..(4 + len).min(h.ahs.len())]);
        }
        let attr = match flags & 0x07 {
            2 => TaskAttr::Ordered,
            3 => TaskAttr::HeadOfQueue,
            4 => TaskAttr::Aca,
            _ => TaskAttr::Simple,
        };
        let id = TaskId(self.next_task);
        self.next_task += 1;
        let mut preset = None;
        if attr == TaskAttr::Aca {
            // No ACA condition is ever established (NACA is not supported).
            preset = Some(ScsiResponse::check(Sense::INVALID_FIELD_IN_CDB));
        }
        let mut stage = Stage::Ready(IoBuf::new());
        let mut sink = None;
        let mut early = false;
        let mut reserved = 0;
        if write && edtl > 0 && preset.is_none() {
            if edtl > self.limits.max_transfer {
                tracing::warn!(
                    edtl,
                    "write larger than {} bytes refused",
                    self.limits.max_transfer
                );
                preset = Some(ScsiResponse::check(Sense::INVALID_FIELD_IN_CDB));
            } else {
                let mut w = WriteData::new(edtl, dlen32, fin, &self.params, now);
                if self.budget_wait.is_empty() && self.reserve(u64::from(edtl)) {
                    reserved = u64::from(edtl);
                    w.install(IoBuf::filled(edtl as usize));
                } else {
                    self.budget_wait.push_back(id);
                    self.arm_budget_retry(now);
                }
                if dlen > 0 {
                    sink = Some(match w.lend() {
                        Some(buf) => DataSink::Into { buf, at: 0 },
                        None => {
                            early = true;
                            self.used += dlen as u64;
                            DataSink::Into {
                                buf: IoBuf::filled(dlen),
                                at: 0,
                            }
                        }
                    });
                }
                stage = Stage::Data(w);
            }
        }
        if preset.is_some() && write {
            stage = Stage::Ready(IoBuf::new());
            sink = None;
        }
        if immediate {
            self.immediate += 1;
        }
        if attr == TaskAttr::Ordered {
            self.ordered += 1;
        }
        self.tasks.insert(
            id,
            Task {
                itt,
                cmdsn,
                lun: decode_lun(bhs.lun_raw()),
                lun_raw: bhs.lun_raw(),
                cdb: Bytes::from(cdb),
                attr,
                edtl,
                expected_in: if read { edtl } else { 0 },
                received: now,
                delivered: false,
                seq: 0,
                holds_slot: false,
                stage,
                reserved,
                aborted: None,
                preset,
            },
        );
        self.by_itt.insert(itt, id);
        let pending = Pending::Write {
            task: id,
            place: Placement {
                offset: 0,
                len: if sink.is_some() { dlen32 } else { 0 },
                ttt: None,
            },
            early,
            fin,
            command: Some(cmdsn),
        };
        (pending, sink)
    }

    pub(super) fn data_out(&mut self, bhs: &Bhs, dlen: usize) -> (Pending, Option<DataSink>) {
        let itt = bhs.itt();
        let Some(&id) = self.by_itt.get(&itt) else {
            // Data of a task that was aborted, answered or never existed.
            tracing::debug!(itt, "Data-Out for no task: discarded");
            return (Pending::Nothing, None);
        };
        let t = self.tasks.get_mut(&id).expect("indexed task");
        let Stage::Data(w) = &mut t.stage else {
            tracing::debug!(itt, "Data-Out for a task that has all its data: discarded");
            return (Pending::Nothing, None);
        };
        match w.check(bhs.ttt(), bhs.datasn(), bhs.buffer_offset(), dlen as u32) {
            Err(e) => {
                tracing::debug!(itt, error = %e, "invalid Data-Out: the task ends");
                self.reject(bhs, RejectReason::ProtocolError);
                self.answer_now(id, ScsiResponse::check(DATA_PHASE_ERROR));
                (Pending::Nothing, None)
            }
            Ok(place) => {
                let (sink, early) = match w.lend() {
                    Some(buf) => (
                        DataSink::Into {
                            buf,
                            at: place.offset as usize,
                        },
                        false,
                    ),
                    None => {
                        self.used += dlen as u64;
                        (
                            DataSink::Into {
                                buf: IoBuf::filled(dlen),
                                at: 0,
                            },
                            true,
                        )
                    }
                };
                (
                    Pending::Write {
                        task: id,
                        place,
                        early,
                        fin: bhs.final_bit(),
                        command: None,
                    },
                    Some(sink),
                )
            }
        }
    }

    pub(super) fn write_data(
        &mut self,
        now: Instant,
        (id, place, early, fin, command): (TaskId, Placement, bool, bool, Option<Option<u32>>),
        buf: Option<IoBuf>,
        digest_ok: bool,
        dir: &dyn Directory,
    ) {
        if early && let Some(b) = &buf {
            // Counted when the sink was made; recounted below if kept.
            self.used = self.used.saturating_sub(b.len() as u64);
        }
        if id == TaskId(0) {
            // A refused command PDU: only its CmdSN matters.
            if let Some(Some(sn)) = command
                && digest_ok
            {
                self.receive_cmdsn(now, sn, dir);
            }
            return;
        }
        let Some(t) = self.tasks.get_mut(&id) else {
            return; // ended while its data arrived: drop the data
        };
        if !digest_ok {
            let mut b = Bhs::new(if command.is_some() {
                Opcode::SCSI_COMMAND
            } else {
                Opcode::DATA_OUT
            });
            b.set_itt(t.itt);
            self.reject(&b, RejectReason::DataDigestError);
            if command.is_some() {
                // A command with immediate data is not received (RFC 7143 §7.8): no
                // task, no CmdSN; the initiator retries it or aborts it by RefCmdSN.
                self.retire(id);
            } else {
                self.answer_now(id, ScsiResponse::check(CRC_ERROR));
            }
            return;
        }
        if let Stage::Data(w) = &mut t.stage {
            if let Some(b) = buf {
                if early {
                    if place.len > 0 {
                        self.used += b.len() as u64;
                        w.keep_early(place.offset, b);
                    }
                } else {
                    w.give_back(b);
                }
            }
            // Immediate data was counted when the command's write data was set up.
            if place.len > 0 && command.is_none() {
                w.accept(place, fin, now);
            }
        }
        if let Some(cmdsn) = command {
            match cmdsn {
                Some(sn) => {
                    self.undelivered.insert(sn, id);
                    self.receive_cmdsn(now, sn, dir);
                }
                None => self.deliver_task(id),
            }
        }
        self.progress_write(now, id);
    }

    /// After write data arrived or budget was granted: R2Ts, or the task is ready.
    pub(super) fn progress_write(&mut self, now: Instant, id: TaskId) {
        let Some(t) = self.tasks.get_mut(&id) else {
            return;
        };
        let Stage::Data(w) = &mut t.stage else {
            return;
        };
        // Complete only with its buffer: data that came before the budget granted one is
        // kept aside and moves into the buffer when it is granted.
        if w.complete() && w.has_buffer() {
            t.stage = Stage::Ready(w.take());
            if t.delivered {
                self.ready.insert((t.seq, id));
            }
            return;
        }
        let mut r2ts = Vec::new();
        while let Some(r) = w.next_r2t(&self.params, now, || Self::new_ttt(&mut self.next_ttt)) {
            r2ts.push(r);
        }
        let (itt, lun_raw) = (t.itt, t.lun_raw);
        for r in r2ts {
            let mut b = Bhs::new(Opcode::R2T);
            b.set_flags(0x80);
            b.set_lun_raw(lun_raw);
            b.set_itt(itt);
            b.set_ttt(r.ttt);
            b.set_datasn(r.r2tsn);
            b.set_buffer_offset(r.offset);
            b.set_residual(r.len);
            self.queue(OutPdu {
                bhs: b,
                data: Bytes::new(),
                sn: Sn::Peek,
            });
        }
    }
}
