//! Text requests in the full feature phase (RFC 7143 §11.10, §11.11): SendTargets, a
//! request spread over several PDUs (C bit), an answer spread over several (TTT).

use crate::iscsi::wire::RESERVED_TAG;
use crate::iscsi::wire::codes::RejectReason;
use crate::iscsi::wire::text::TextPairs;

/// What the target serves: the answer to `SendTargets=<value>` (`All`, empty for the
/// session's own target, or a target name), computed by the daemon.
pub trait Directory {
    /// The `TargetName` / `TargetAddress` pairs for `value`.
    fn send_targets(&self, value: &str) -> TextPairs;
}

/// A text exchange in progress.
#[derive(Debug, Default)]
pub struct TextExchange {
    /// ITT of the exchange, and the TTT the initiator must echo to continue it.
    current: Option<(u32, u32)>,
    /// Request text collected so far (C bit).
    request: Vec<u8>,
    /// Answer text not sent yet.
    rest: Vec<u8>,
    next_ttt: u32,
}

/// The Text Response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextReply {
    /// F bit (the answer is complete).
    pub fin: bool,
    /// C bit (the answer continues).
    pub cont: bool,
    /// Target transfer tag (reserved when the exchange is over).
    pub ttt: u32,
    /// The data segment.
    pub data: Vec<u8>,
}

impl TextExchange {
    fn new_ttt(&mut self) -> u32 {
        self.next_ttt = self.next_ttt.wrapping_add(1);
        if self.next_ttt == RESERVED_TAG || self.next_ttt == 0 {
            self.next_ttt = 1;
        }
        self.next_ttt
    }

    /// Handles a Text Request with `itt`, `ttt`, its C bit and data; `max` is the
    /// initiator's MaxRecvDataSegmentLength and `limit` the most request text collected.
    pub fn request(
        &mut self,
        (itt, ttt, cont): (u32, u32, bool),
        data: &[u8],
        (max, limit): (usize, usize),
        dir: &dyn Directory,
    ) -> Result<TextReply, RejectReason> {
        let max = max.max(512);
        if ttt == RESERVED_TAG {
            // A new exchange (any earlier one is abandoned, RFC 7143 §11.10.4).
            self.current = None;
            self.request.clear();
            self.rest.clear();
        } else if self.current != Some((itt, ttt)) {
            return Err(RejectReason::InvalidPduField);
        }
        if !self.rest.is_empty() {
            // The initiator asks for the next part of our answer.
            return Ok(self.part(itt, max));
        }
        if self.request.len() + data.len() > limit {
            self.current = None;
            self.request.clear();
            return Err(RejectReason::ProtocolError);
        }
        self.request.extend_from_slice(data);
        if cont {
            // More request text follows: acknowledge with an empty response.
            let ttt = self.new_ttt();
            self.current = Some((itt, ttt));
            return Ok(TextReply {
                fin: false,
                cont: false,
                ttt,
                data: Vec::new(),
            });
        }
        let text = std::mem::take(&mut self.request);
        let pairs = TextPairs::parse(&text).map_err(|_| RejectReason::ProtocolError)?;
        let mut out = TextPairs::default();
        for (k, v) in &pairs.0 {
            match k.as_str() {
                "SendTargets" => out.0.extend(dir.send_targets(v).0),
                _ => out.push(k.clone(), "NotUnderstood"),
            }
        }
        self.rest = out.encode();
        Ok(self.part(itt, max))
    }

    /// The next part of the answer (all of it if it fits).
    fn part(&mut self, itt: u32, max: usize) -> TextReply {
        if self.rest.len() <= max {
            self.current = None;
            return TextReply {
                fin: true,
                cont: false,
                ttt: RESERVED_TAG,
                data: std::mem::take(&mut self.rest),
            };
        }
        // Split at a pair boundary where possible.
        let cut = self.rest[..max]
            .iter()
            .rposition(|&b| b == 0)
            .map(|p| p + 1)
            .unwrap_or(max);
        let data: Vec<u8> = self.rest.drain(..cut).collect();
        let ttt = self.new_ttt();
        self.current = Some((itt, ttt));
        TextReply {
            fin: false,
            cont: true,
            ttt,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Many;
    impl Directory for Many {
        fn send_targets(&self, _: &str) -> TextPairs {
            let mut t = TextPairs::default();
            for i in 0..100 {
                t.push(
                    "TargetName",
                    format!("iqn.2026-11.org.example:target-{i:03}"),
                );
            }
            t
        }
    }

    #[test]
    fn long_answers_continue() {
        let mut x = TextExchange::default();
        let r = x
            .request(
                (5, RESERVED_TAG, false),
                b"SendTargets=All\0",
                (512, 65536),
                &Many,
            )
            .unwrap();
        assert!(r.cont && !r.fin);
        assert!(r.data.len() <= 512 && r.data.ends_with(&[0]));
        let mut all = r.data;
        let mut ttt = r.ttt;
        loop {
            let r = x
                .request((5, ttt, false), b"", (512, 65536), &Many)
                .unwrap();
            all.extend(r.data);
            if r.fin {
                assert_eq!(r.ttt, RESERVED_TAG);
                break;
            }
            ttt = r.ttt;
        }
        let records = all
            .split(|&b| b == 0)
            .filter(|r| r.starts_with(b"TargetName="))
            .count();
        assert_eq!(records, 100);
    }

    /// Defect 8 of issue 8: a request split over several PDUs (C bit) is collected and
    /// answered once complete.
    #[test]
    fn requests_continue_with_the_c_bit() {
        let mut x = TextExchange::default();
        let r = x
            .request((9, RESERVED_TAG, true), b"SendTar", (8192, 65536), &Many)
            .unwrap();
        assert!(!r.fin && !r.cont && r.data.is_empty() && r.ttt != RESERVED_TAG);
        let r = x
            .request((9, r.ttt, false), b"gets=All\0", (8192, 65536), &Many)
            .unwrap();
        assert!(r.fin);
        assert!(r.data.starts_with(b"TargetName="));
        // A wrong TTT is refused; too much request text too.
        assert_eq!(
            x.request((9, 12345, false), b"", (8192, 65536), &Many),
            Err(RejectReason::InvalidPduField)
        );
        let r = x
            .request((9, RESERVED_TAG, true), &[b'a'; 100], (8192, 150), &Many)
            .unwrap();
        assert_eq!(
            x.request((9, r.ttt, true), &[b'a'; 100], (8192, 150), &Many),
            Err(RejectReason::ProtocolError)
        );
    }
}
