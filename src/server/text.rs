//! Text requests in the full feature phase: SendTargets (RFC 7143 §12.3, Appendix C),
//! with continuation when the answer exceeds the initiator's MaxRecvDataSegmentLength.

use std::net::SocketAddr;

use crate::iscsi::wire::codes::RejectReason;
use crate::iscsi::wire::text::TextPairs;
use crate::iscsi::wire::{Bhs, RESERVED_TAG};
use crate::registry::Registry;

/// A pending continued response.
#[derive(Debug, Default)]
pub struct TextState {
    pending: Option<(u32, u32, Vec<u8>)>, // (itt, ttt, rest)
    next_ttt: u32,
}

/// Formats a portal as a TargetAddress value.
pub fn target_address(addr: SocketAddr, tpgt: u16) -> String {
    match addr {
        SocketAddr::V4(a) => format!("{}:{},{}", a.ip(), a.port(), tpgt),
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => format!("{}:{},{}", v4, a.port(), tpgt),
            None => format!("[{}]:{},{}", a.ip(), a.port(), tpgt),
        },
    }
}

/// The SendTargets answer. `value` is `All` (discovery sessions), empty (this session's
/// target) or a target name. Each target is reported at its portals (a wildcard portal, and
/// a target with one implicit portal group, at the address the connection came in on).
pub fn send_targets<'a>(
    reg: &'a Registry,
    initiator: &str,
    peer: SocketAddr,
    local: SocketAddr,
    discovery: bool,
    session_target: &str,
) -> impl Fn(&str) -> TextPairs + 'a {
    let initiator = initiator.to_string();
    let session_target = session_target.to_string();
    move |value: &str| {
        let mut out = TextPairs::default();
        for (name, portals) in reg.visible_targets(&initiator, peer.ip(), local) {
            let wanted = match value {
                "All" => discovery || name == session_target,
                "" => name == session_target,
                v => v == name,
            };
            if wanted {
                out.push("TargetName", name);
                for (addr, tpgt) in portals {
                    out.push("TargetAddress", target_address(addr, tpgt));
                }
            }
        }
        out
    }
}

impl TextState {
    /// Answers a Text Request: returns (flags, TTT, data) of the response.
    pub fn respond<F, G>(
        &mut self,
        req: &Bhs,
        data: &[u8],
        max: usize,
        make: G,
    ) -> Result<(u8, u32, Vec<u8>), RejectReason>
    where
        G: FnOnce() -> F,
        F: Fn(&str) -> TextPairs,
    {
        let max = max.max(512);
        let body = if req.ttt() != RESERVED_TAG {
            // Continuation of an earlier answer.
            match self.pending.take() {
                Some((itt, ttt, rest)) if itt == req.itt() && ttt == req.ttt() => rest,
                _ => return Err(RejectReason::InvalidPduField),
            }
        } else {
            self.pending = None;
            let pairs = TextPairs::parse(data).map_err(|_| RejectReason::ProtocolError)?;
            let mut out = TextPairs::default();
            let lookup = make();
            for (k, v) in &pairs.0 {
                if k == "SendTargets" {
                    out.0.extend(lookup(v).0);
                } else {
                    out.push(k.clone(), "NotUnderstood");
                }
            }
            out.encode()
        };
        if body.len() <= max {
            return Ok((0x80, RESERVED_TAG, body));
        }
        // Split at a pair boundary where possible.
        let cut = body[..max]
            .iter()
            .rposition(|&b| b == 0)
            .map(|p| p + 1)
            .unwrap_or(max);
        let rest = body[cut..].to_vec();
        self.next_ttt = self.next_ttt.wrapping_add(1).max(1);
        let ttt = self.next_ttt;
        self.pending = Some((req.itt(), ttt, rest));
        Ok((0x40, ttt, body[..cut].to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iscsi::wire::Opcode;

    #[test]
    fn addresses() {
        assert_eq!(
            target_address("10.0.0.1:3260".parse().unwrap(), 1),
            "10.0.0.1:3260,1"
        );
        assert_eq!(
            target_address("[fe80::1]:3260".parse().unwrap(), 2),
            "[fe80::1]:3260,2"
        );
        assert_eq!(
            target_address("[::ffff:10.1.2.3]:3260".parse().unwrap(), 1),
            "10.1.2.3:3260,1"
        );
    }

    #[test]
    fn long_answers_continue() {
        let mut st = TextState::default();
        let mut req = Bhs::new(Opcode::TEXT_REQUEST);
        req.set_itt(5).set_ttt(RESERVED_TAG);
        let many = |_: &str| {
            let mut t = TextPairs::default();
            for i in 0..100 {
                t.push(
                    "TargetName",
                    format!("iqn.2026-11.org.example:target-{i:03}"),
                );
            }
            t
        };
        let (flags, ttt, first) = st
            .respond(&req, b"SendTargets=All\0", 512, || many)
            .unwrap();
        assert_eq!(flags, 0x40);
        assert!(first.len() <= 512 && first.ends_with(&[0]));
        let mut all = first;
        let mut next = ttt;
        loop {
            req.set_ttt(next);
            let (flags, ttt, more) = st.respond(&req, b"", 512, || many).unwrap();
            all.extend(more);
            if flags == 0x80 {
                assert_eq!(ttt, RESERVED_TAG);
                break;
            }
            next = ttt;
        }
        // TargetName repeats in a SendTargets answer: count the records.
        let records = all
            .split(|&b| b == 0)
            .filter(|r| r.starts_with(b"TargetName="))
            .count();
        assert_eq!(records, 100);
    }
}
