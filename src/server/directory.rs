//! SendTargets (RFC 7143 §12.3, Appendix C) answered from the registry: which targets an
//! initiator may see, at the portals of its portal groups (a wildcard portal, and a target
//! with one implicit group, at the address the connection came in on).

use std::net::SocketAddr;

use arc_swap::ArcSwap;

use crate::iscsi::session::text::Directory;
use crate::iscsi::wire::text::TextPairs;
use crate::registry::Registry;

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

/// What one session may discover (the registry is read only when a SendTargets asks).
pub(super) struct SessionDirectory<'a> {
    pub registry: &'a ArcSwap<Registry>,
    pub initiator: &'a str,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub discovery: bool,
    /// The session's target (empty for discovery sessions).
    pub target: &'a str,
}

impl Directory for SessionDirectory<'_> {
    /// `value` is `All` (every visible target; a normal session only its own), empty (the
    /// session's target) or a target name.
    fn send_targets(&self, value: &str) -> TextPairs {
        let mut out = TextPairs::default();
        let registry = self.registry.load();
        for (name, portals) in registry.visible_targets(self.initiator, self.peer.ip(), self.local)
        {
            let wanted = match value {
                "All" => self.discovery || name == self.target,
                "" => name == self.target,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
