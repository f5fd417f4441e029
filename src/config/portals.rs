//! Portal rules shared by validation, the listeners and the change plan: which address
//! family a wildcard portal serves, and which portal a connection came in on.

use std::net::{IpAddr, SocketAddr};

/// Whether `portal` listens on IPv4 as well as IPv6: `[::]:P` does (as LIO's `[::0]`
/// portal does) unless `0.0.0.0:P` is also listed, which then takes IPv4.
pub fn dual_stack(portals: &[SocketAddr], portal: &SocketAddr) -> bool {
    match portal.ip() {
        IpAddr::V6(ip) if ip.is_unspecified() => !portals
            .iter()
            .any(|p| p.is_ipv4() && p.ip().is_unspecified() && p.port() == portal.port()),
        _ => false,
    }
}

/// Whether a connection accepted at `local` came in on `portal` (one of `portals`): the
/// same address, or a wildcard of that port and family (both families for a dual-stack
/// `[::]`). IPv4-mapped addresses count as IPv4.
pub fn serves(portals: &[SocketAddr], portal: &SocketAddr, local: SocketAddr) -> bool {
    if portal.port() != local.port() {
        return false;
    }
    let ip = local.ip().to_canonical();
    let pip = portal.ip().to_canonical();
    if pip == ip {
        return true;
    }
    if !pip.is_unspecified() {
        return false;
    }
    match (pip, ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
        (IpAddr::V6(_), IpAddr::V4(_)) => dual_stack(portals, portal),
        (IpAddr::V4(_), IpAddr::V6(_)) => false,
    }
}

/// The portal of `portals` a connection accepted at `local` came in on, if any.
pub fn portal_of(portals: &[SocketAddr], local: SocketAddr) -> Option<SocketAddr> {
    // An exact address wins over a wildcard.
    portals
        .iter()
        .find(|p| p.ip().to_canonical() == local.ip().to_canonical() && p.port() == local.port())
        .or_else(|| portals.iter().find(|p| serves(portals, p, local)))
        .copied()
}

/// Whether two listed portals would claim the same address (binding the second fails):
/// `a` is a specific address and `b` a wildcard covering it.
pub fn overlaps(portals: &[SocketAddr], a: &SocketAddr, b: &SocketAddr) -> bool {
    !a.ip().is_unspecified() && b.ip().is_unspecified() && serves(portals, b, *a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn wildcard_v6_is_dual_stack_unless_v4_wildcard_listed() {
        let only6 = [a("[::]:3260")];
        assert!(dual_stack(&only6, &only6[0]));
        assert!(serves(&only6, &only6[0], a("[::ffff:127.0.0.1]:3260")));
        assert!(serves(&only6, &only6[0], a("127.0.0.1:3260")));
        assert!(serves(&only6, &only6[0], a("[::1]:3260")));
        assert!(!serves(&only6, &only6[0], a("[::1]:3261")));
        let both = [a("0.0.0.0:3260"), a("[::]:3260")];
        assert!(!dual_stack(&both, &both[1]));
        assert!(!serves(&both, &both[1], a("127.0.0.1:3260")));
        assert_eq!(portal_of(&both, a("[::ffff:10.0.0.1]:3260")), Some(both[0]));
        assert_eq!(portal_of(&both, a("[::1]:3260")), Some(both[1]));
        let other_port = [a("0.0.0.0:3261"), a("[::]:3260")];
        assert!(dual_stack(&other_port, &other_port[1]));
    }

    #[test]
    fn exact_address_wins_and_overlap() {
        let ps = [a("127.0.0.1:3260"), a("0.0.0.0:3261")];
        assert_eq!(portal_of(&ps, a("127.0.0.1:3260")), Some(ps[0]));
        assert_eq!(portal_of(&ps, a("127.0.0.2:3260")), None);
        assert_eq!(portal_of(&ps, a("127.0.0.2:3261")), Some(ps[1]));
        let ps = [a("127.0.0.1:3260"), a("[::]:3260")];
        assert!(overlaps(&ps, &ps[0], &ps[1]));
        let ps = [a("127.0.0.1:3260"), a("[::]:3260"), a("0.0.0.0:3260")];
        assert!(!overlaps(&ps, &ps[0], &ps[1]));
        assert!(overlaps(&ps, &ps[0], &ps[2]));
    }
}
