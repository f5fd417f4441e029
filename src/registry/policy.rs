//! Login policy: which initiator may log in to which target, and how it authenticates.

use std::net::{IpAddr, SocketAddr};

use super::{Auth, Registry, Target};
use crate::iscsi::login::{Access, AuthRequirement, LoginIdentity, LoginPolicy};
use crate::iscsi::wire::codes::LoginStatus;

fn in_networks(nets: &[ipnet::IpNet], peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    nets.is_empty() || nets.iter().any(|n| n.contains(&peer))
}

/// Checks the ACL and source networks; returns the credentials that apply.
pub(super) fn admits<'a>(
    t: &'a Target,
    initiator: &str,
    peer: IpAddr,
) -> Result<&'a Auth, LoginStatus> {
    if !in_networks(&t.networks, peer) {
        return Err(LoginStatus::FORBIDDEN);
    }
    if let Some(acl) = t.acls.get(initiator) {
        if !in_networks(&acl.networks, peer) {
            return Err(LoginStatus::FORBIDDEN);
        }
        if acl.auth.chap.is_some() {
            return Ok(&acl.auth);
        }
        return Ok(&t.auth);
    }
    if t.demo_mode {
        return Ok(&t.auth);
    }
    Err(LoginStatus::FORBIDDEN)
}

fn requirement(a: &Auth) -> AuthRequirement {
    match &a.chap {
        None => AuthRequirement::None,
        Some(c) => AuthRequirement::Chap {
            initiator: c.clone(),
            target: a.mutual.clone(),
        },
    }
}

impl Registry {
    /// Decides a login from `who` on a connection accepted at `local` (`None`: the
    /// portal is not checked and the first portal group answers): the target must be
    /// reachable through that portal, its portal group enabled, the initiator admitted.
    pub fn authorize_at(
        &self,
        who: &LoginIdentity,
        local: Option<SocketAddr>,
    ) -> Result<Access, LoginStatus> {
        let Some(target) = &who.target else {
            return Ok(Access {
                auth: requirement(&self.discovery),
                tpgt: 1,
                offer: None,
            });
        };
        let t = self.targets.get(target).ok_or(LoginStatus::NOT_FOUND)?;
        let group = match local {
            Some(l) => self.group_at(t, l).ok_or(LoginStatus::NOT_FOUND)?,
            None => t.groups.first().ok_or(LoginStatus::NOT_FOUND)?,
        };
        if !group.enabled {
            return Err(LoginStatus::SERVICE_UNAVAILABLE);
        }
        let auth = admits(t, &who.initiator, who.peer)?;
        Ok(Access {
            auth: requirement(auth),
            tpgt: group.tag,
            offer: t.offer.clone(),
        })
    }
}

impl LoginPolicy for Registry {
    fn authorize(&self, who: &LoginIdentity) -> Result<Access, LoginStatus> {
        self.authorize_at(who, None)
    }
}
