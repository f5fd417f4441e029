//! The login phase (RFC 7143 §6): security and operational stages as a state machine.
//!
//! Pure: the server decodes a Login Request, calls [`Login::step`], and sends the
//! [`LoginReply`] it gets. Target lookup and access control are asked of a [`LoginPolicy`].

pub mod chap;
pub mod keys;

use std::net::IpAddr;

use self::chap::{ChapOutcome, ChapState};
pub use self::keys::{Offer, Params};
use super::wire::codes::LoginStatus;
use super::wire::text::TextPairs;
use super::wire::{Bhs, Opcode};

/// Login stages (CSG/NSG values).
pub mod stage {
    /// Security negotiation.
    pub const SECURITY: u8 = 0;
    /// Login operational negotiation.
    pub const OPERATIONAL: u8 = 1;
    /// Full feature phase.
    pub const FULL_FEATURE: u8 = 3;
}

/// Who is logging in, to what, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginIdentity {
    /// InitiatorName.
    pub initiator: String,
    /// TargetName (None for discovery sessions).
    pub target: Option<String>,
    /// The initiator's IP address.
    pub peer: IpAddr,
}

/// A CHAP identity and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ChapSecret {
    /// CHAP user name.
    pub user: String,
    /// The secret.
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ChapSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChapSecret")
            .field("user", &self.user)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What authentication a login needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthRequirement {
    /// No authentication.
    None,
    /// CHAP: the initiator must prove `initiator`; with `target`, the target proves itself.
    Chap {
        /// Credentials the initiator must answer with.
        initiator: ChapSecret,
        /// Credentials the target answers a mutual challenge with.
        target: Option<ChapSecret>,
    },
}

/// The decision of the policy for a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Authentication to perform.
    pub auth: AuthRequirement,
    /// Target portal group tag to report.
    pub tpgt: u16,
    /// The target's own negotiation offer, when it differs from the one the login
    /// started with (known once the target is named, before any key is negotiated).
    pub offer: Option<Offer>,
}

/// Target lookup and access control, implemented by the registry.
pub trait LoginPolicy {
    /// Decides whether `who` may log in; `Err` carries the login status to send.
    fn authorize(&self, who: &LoginIdentity) -> Result<Access, LoginStatus>;
    /// Called once per failed authentication (for logging and rate limits).
    fn auth_failed(&self, _who: &LoginIdentity, _why: &str) {}
}

/// The fields of a Login Request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRequest {
    /// Transit bit.
    pub transit: bool,
    /// Continue bit.
    pub cont: bool,
    /// Current stage.
    pub csg: u8,
    /// Next stage.
    pub nsg: u8,
    /// Version-max.
    pub version_max: u8,
    /// Version-min.
    pub version_min: u8,
    /// ISID (6 bytes).
    pub isid: [u8; 6],
    /// TSIH.
    pub tsih: u16,
    /// Initiator task tag.
    pub itt: u32,
    /// Connection ID.
    pub cid: u16,
    /// CmdSN.
    pub cmdsn: u32,
    /// ExpStatSN.
    pub exp_statsn: u32,
}

impl LoginRequest {
    /// Reads the fields from a Login Request header.
    pub fn from_bhs(b: &Bhs) -> Self {
        let f = b.flags();
        Self {
            transit: f & 0x80 != 0,
            cont: f & 0x40 != 0,
            csg: (f >> 2) & 3,
            nsg: f & 3,
            version_max: b.0[2],
            version_min: b.0[3],
            isid: b.0[8..14].try_into().expect("6 bytes"),
            tsih: b.u16_at(14),
            itt: b.itt(),
            cid: b.u16_at(20),
            cmdsn: b.cmdsn(),
            exp_statsn: b.exp_statsn(),
        }
    }
}

/// A Login Response to send; the server fills StatSN, ExpCmdSN and MaxCmdSN (and TSIH at
/// the end of a leading login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginReply {
    /// Header (StatSN/ExpCmdSN/MaxCmdSN still zero).
    pub bhs: Bhs,
    /// Text data segment.
    pub data: Vec<u8>,
}

/// What the login produced for the server.
#[derive(Debug)]
pub enum LoginStep {
    /// Send the reply and wait for the next request.
    Continue(LoginReply),
    /// Send the reply (which moves to full feature phase) and start the session.
    Complete(LoginReply, Box<Negotiated>),
    /// Send the reply (a failure status) and close the connection.
    Fail(LoginReply, String),
}

/// The result of a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Who logged in.
    pub identity: LoginIdentity,
    /// Session type.
    pub discovery: bool,
    /// ISID.
    pub isid: [u8; 6],
    /// TSIH the initiator sent (0 for a new session).
    pub tsih: u16,
    /// Connection ID.
    pub cid: u16,
    /// Target portal group tag.
    pub tpgt: u16,
    /// Negotiated parameters.
    pub params: Params,
    /// CmdSN of the first login request (the session's first ExpCmdSN).
    pub cmdsn: u32,
    /// The CHAP algorithm the initiator authenticated with (None: no authentication).
    pub authenticated: Option<chap::ChapAlgorithm>,
}

/// The login state of one connection.
#[derive(Debug)]
pub struct Login {
    offer: Offer,
    params: Params,
    seen: keys::Seen,
    current: u8,
    first: Option<LoginRequest>,
    identity: Option<LoginIdentity>,
    discovery: bool,
    access: Option<Access>,
    auth_method_done: bool,
    chap: Option<ChapState>,
    authenticated: Option<chap::ChapAlgorithm>,
    partial: Vec<u8>,
    /// A response longer than one login PDU and how much of its text was sent.
    held: Option<(LoginStep, usize)>,
    declared_mrdsl: bool,
    peer: IpAddr,
    random: fn(&mut [u8]),
}

/// The most text one Login Response carries: until the full feature phase the initiator
/// accepts the default MaxRecvDataSegmentLength (RFC 7143 §13.12).
pub const LOGIN_SEGMENT: usize = 8192;

fn os_random(buf: &mut [u8]) {
    // getrandom only fails when the OS has no entropy source at all; then refuse to run
    // CHAP with a predictable challenge.
    getrandom::fill(buf).expect("the OS random source is unavailable");
}

impl Login {
    /// A new login on a connection from `peer`.
    pub fn new(offer: Offer, peer: IpAddr) -> Self {
        Self::with_random(offer, peer, os_random)
    }

    /// As [`Login::new`], with the challenge source injected (tests).
    pub fn with_random(offer: Offer, peer: IpAddr, random: fn(&mut [u8])) -> Self {
        let params = Params::defaults(&offer);
        Self {
            offer,
            params,
            seen: keys::Seen::default(),
            current: stage::SECURITY,
            first: None,
            identity: None,
            discovery: false,
            access: None,
            auth_method_done: false,
            chap: None,
            authenticated: None,
            partial: Vec::new(),
            held: None,
            declared_mrdsl: false,
            peer,
            random,
        }
    }

    /// The identity declared so far (for logs).
    pub fn identity(&self) -> Option<&LoginIdentity> {
        self.identity.as_ref()
    }

    fn reply(
        &self,
        req: &LoginRequest,
        transit: bool,
        nsg: u8,
        status: LoginStatus,
        data: Vec<u8>,
    ) -> LoginReply {
        let mut b = Bhs::new(Opcode::LOGIN_RESPONSE);
        let mut flags = (req.csg & 3) << 2;
        if transit {
            flags |= 0x80 | (nsg & 3);
        }
        b.set_flags(flags);
        b.0[2] = 0; // version-max
        b.0[3] = 0; // version-active
        b.set_data_segment_len(data.len());
        b.0[8..14].copy_from_slice(&req.isid);
        b.set_u16_at(14, req.tsih);
        b.set_itt(req.itt);
        b.0[36] = status.class;
        b.0[37] = status.detail;
        LoginReply { bhs: b, data }
    }

    fn fail(&self, req: &LoginRequest, status: LoginStatus, why: impl Into<String>) -> LoginStep {
        let mut r = self.reply(req, false, 0, status, Vec::new());
        // A failed login response carries the stage bits cleared and no TSIH.
        r.bhs.set_flags(0);
        r.bhs.set_u16_at(14, 0);
        LoginStep::Fail(r, why.into())
    }

    /// Handles one Login Request (header fields and data segment). A response whose text
    /// is longer than [`LOGIN_SEGMENT`] goes out in pieces with the C bit; the initiator
    /// asks for each next piece with an empty Login Request (RFC 7143, Login Response C bit), and
    /// the outcome (stage transition, full feature phase) comes with the last piece.
    pub fn step(&mut self, req: &LoginRequest, data: &[u8], policy: &dyn LoginPolicy) -> LoginStep {
        if let Some((held, from)) = self.held.take() {
            if !data.is_empty() || req.cont {
                return self.fail(
                    req,
                    LoginStatus::INITIATOR_ERROR,
                    "login text sent while the target's response was continued",
                );
            }
            return self.piece(held, from, req.itt);
        }
        let step = self.answer(req, data, policy);
        self.piece(step, 0, req.itt)
    }

    /// The part of `step`'s response text from `from`: all of it (with the step's outcome)
    /// when it fits in one PDU, else one [`LOGIN_SEGMENT`] with C=1 and T=0, the rest held.
    fn piece(&mut self, step: LoginStep, from: usize, itt: u32) -> LoginStep {
        let reply = match &step {
            LoginStep::Continue(r) | LoginStep::Complete(r, _) => r,
            LoginStep::Fail(..) => return step,
        };
        let rest = reply.data.len() - from;
        if rest <= LOGIN_SEGMENT {
            if from == 0 {
                return step;
            }
            let cut = |mut r: LoginReply| {
                r.data.drain(..from);
                r.bhs.set_data_segment_len(r.data.len());
                r.bhs.set_itt(itt);
                r
            };
            return match step {
                LoginStep::Continue(r) => LoginStep::Continue(cut(r)),
                LoginStep::Complete(r, neg) => LoginStep::Complete(cut(r), neg),
                fail => fail,
            };
        }
        let mut part = LoginReply {
            bhs: reply.bhs,
            data: reply.data[from..from + LOGIN_SEGMENT].to_vec(),
        };
        // Continue: CSG kept, T and NSG cleared (a continued response does not transit).
        part.bhs.set_flags((reply.bhs.flags() & 0x0c) | 0x40);
        part.bhs.set_data_segment_len(LOGIN_SEGMENT);
        part.bhs.set_itt(itt);
        self.held = Some((step, from + LOGIN_SEGMENT));
        LoginStep::Continue(part)
    }

    fn answer(&mut self, req: &LoginRequest, data: &[u8], policy: &dyn LoginPolicy) -> LoginStep {
        if req.version_min > 0 {
            return self.fail(
                req,
                LoginStatus::UNSUPPORTED_VERSION,
                "unsupported iSCSI version",
            );
        }
        if let Some(first) = &self.first {
            if first.isid != req.isid || first.cid != req.cid || first.tsih != req.tsih {
                return self.fail(
                    req,
                    LoginStatus::INITIATOR_ERROR,
                    "ISID/TSIH/CID changed during login",
                );
            }
        }
        if self.first.is_none() && req.csg == stage::OPERATIONAL {
            // The initiator may skip the security stage (then no authentication is possible).
            self.current = stage::OPERATIONAL;
        }
        if req.csg != self.current || req.csg == 2 || req.csg == stage::FULL_FEATURE {
            return self.fail(
                req,
                LoginStatus::INITIATOR_ERROR,
                format!("unexpected login stage {}", req.csg),
            );
        }
        if req.transit && (req.nsg <= req.csg || req.nsg == 2) {
            return self.fail(
                req,
                LoginStatus::INITIATOR_ERROR,
                format!("bad transition {} -> {}", req.csg, req.nsg),
            );
        }
        // Text continuation: collect until C=0, answer with empty responses meanwhile.
        self.partial.extend_from_slice(data);
        if req.cont {
            if self.partial.len() > 64 * 1024 {
                return self.fail(req, LoginStatus::OUT_OF_RESOURCES, "login text too long");
            }
            return LoginStep::Continue(self.reply(
                req,
                false,
                0,
                LoginStatus::SUCCESS,
                Vec::new(),
            ));
        }
        let text = std::mem::take(&mut self.partial);
        let pairs = match TextPairs::parse(&text) {
            Ok(p) => p,
            Err(e) => return self.fail(req, LoginStatus::INITIATOR_ERROR, e.to_string()),
        };
        if self.first.is_none() {
            self.first = Some(req.clone());
            if let Err(step) = self.leading(req, &pairs, policy) {
                return step;
            }
        }
        let mut resp = TextPairs::default();

        // Security stage: authentication.
        if req.csg == stage::SECURITY {
            match self.security(req, &pairs, &mut resp, policy) {
                Ok(()) => {}
                Err(step) => return step,
            }
        } else if !self.security_satisfied() {
            let who = self
                .identity
                .clone()
                .expect("identity set by the leading request");
            policy.auth_failed(&who, "initiator skipped the required authentication");
            return self.fail(req, LoginStatus::AUTH_FAILED, "authentication required");
        }

        // Operational keys (accepted in either stage).
        match keys::negotiate(
            &pairs,
            &self.offer,
            &mut self.params,
            &mut self.seen,
            self.discovery,
        ) {
            Ok(r) => resp.0.extend(r.0),
            Err(e) => return self.fail(req, LoginStatus::INITIATOR_ERROR, e.to_string()),
        }
        if req.csg == stage::OPERATIONAL || (req.transit && req.nsg == stage::FULL_FEATURE) {
            self.declare_ours(&mut resp);
        }
        let mut transit = req.transit;
        if req.csg == stage::OPERATIONAL {
            // Where our limits are stricter than the defaults, say so; the login goes on
            // until the initiator has answered.
            let prop = keys::proposals(&self.offer, &mut self.seen, self.discovery);
            if !prop.0.is_empty() {
                resp.0.extend(prop.0);
                transit = false;
            }
            if self.seen.awaiting_answers() {
                transit = false;
            }
        }

        if req.csg == stage::SECURITY && !self.security_satisfied() {
            transit = false;
        }
        let data = resp.encode();
        if transit {
            self.current = req.nsg;
            if req.nsg == stage::FULL_FEATURE {
                keys::finish(&mut self.params);
                let first = self.first.as_ref().expect("first request recorded");
                let neg = Negotiated {
                    identity: self.identity.clone().expect("identity"),
                    discovery: self.discovery,
                    isid: first.isid,
                    tsih: first.tsih,
                    cid: first.cid,
                    tpgt: self.access.as_ref().map(|a| a.tpgt).unwrap_or(1),
                    params: self.params.clone(),
                    cmdsn: first.cmdsn,
                    authenticated: self.authenticated,
                };
                let r = self.reply(req, true, req.nsg, LoginStatus::SUCCESS, data);
                return LoginStep::Complete(r, Box::new(neg));
            }
        }
        LoginStep::Continue(self.reply(req, transit, req.nsg, LoginStatus::SUCCESS, data))
    }

    /// The first request: identity, session type, policy decision.
    fn leading(
        &mut self,
        req: &LoginRequest,
        pairs: &TextPairs,
        policy: &dyn LoginPolicy,
    ) -> Result<(), LoginStep> {
        let Some(initiator) = pairs.get("InitiatorName").filter(|s| !s.is_empty()) else {
            return Err(self.fail(req, LoginStatus::MISSING_PARAMETER, "InitiatorName missing"));
        };
        let session_type = pairs.get("SessionType").unwrap_or("Normal");
        let target = match session_type {
            "Discovery" => None,
            // iSCSI names compare case-insensitively (RFC 3722): keep them lowercase.
            "Normal" => match pairs.get("TargetName") {
                Some(t) if !t.is_empty() => Some(t.to_ascii_lowercase()),
                _ => {
                    return Err(self.fail(
                        req,
                        LoginStatus::MISSING_PARAMETER,
                        "TargetName missing",
                    ));
                }
            },
            other => {
                return Err(self.fail(
                    req,
                    LoginStatus::SESSION_TYPE_UNSUPPORTED,
                    format!("session type {other:?}"),
                ));
            }
        };
        self.discovery = target.is_none();
        let who = LoginIdentity {
            initiator: initiator.to_ascii_lowercase(),
            target,
            peer: self.peer,
        };
        self.identity = Some(who.clone());
        match policy.authorize(&who) {
            Ok(mut access) => {
                if let Some(offer) = access.offer.take() {
                    // Nothing is negotiated yet: the target's offer replaces the default.
                    self.params = Params::defaults(&offer);
                    self.offer = offer;
                }
                self.access = Some(access);
                Ok(())
            }
            Err(status) => Err(self.fail(req, status, "refused by policy")),
        }
    }

    fn required_auth(&self) -> &AuthRequirement {
        &self.access.as_ref().expect("access decided").auth
    }

    fn security_satisfied(&self) -> bool {
        match self.required_auth() {
            AuthRequirement::None => true,
            AuthRequirement::Chap { .. } => self.authenticated.is_some(),
        }
    }

    fn security(
        &mut self,
        req: &LoginRequest,
        pairs: &TextPairs,
        resp: &mut TextPairs,
        policy: &dyn LoginPolicy,
    ) -> Result<(), LoginStep> {
        let who = self.identity.clone().expect("identity");
        if !self.auth_method_done {
            let Some(offered) = pairs.get("AuthMethod") else {
                if self.security_satisfied() {
                    return Ok(());
                }
                policy.auth_failed(&who, "no AuthMethod offered");
                return Err(self.fail(req, LoginStatus::AUTH_FAILED, "authentication required"));
            };
            let want = match self.required_auth() {
                AuthRequirement::None => "None",
                AuthRequirement::Chap { .. } => "CHAP",
            };
            if !offered.split(',').any(|m| m == want) {
                policy.auth_failed(
                    &who,
                    &format!("AuthMethod {offered} offered, {want} required"),
                );
                return Err(self.fail(req, LoginStatus::AUTH_FAILED, "no acceptable AuthMethod"));
            }
            resp.push("AuthMethod", want);
            self.auth_method_done = true;
            if want == "CHAP" {
                self.chap = Some(ChapState::new());
            }
            return Ok(());
        }
        let Some(chap) = self.chap.as_mut() else {
            return Ok(());
        };
        let AuthRequirement::Chap { initiator, target } =
            &self.access.as_ref().expect("access").auth
        else {
            return Ok(());
        };
        match chap.step(pairs, initiator, target.as_ref(), self.random) {
            ChapOutcome::Send(pairs) => {
                resp.0.extend(pairs.0);
                Ok(())
            }
            ChapOutcome::Authenticated(pairs, alg) => {
                resp.0.extend(pairs.0);
                self.authenticated = Some(alg);
                Ok(())
            }
            ChapOutcome::Failed(why) => {
                policy.auth_failed(&who, &why);
                Err(self.fail(req, LoginStatus::AUTH_FAILED, why))
            }
        }
    }

    fn declare_ours(&mut self, resp: &mut TextPairs) {
        if !self.declared_mrdsl && resp.get("MaxRecvDataSegmentLength").is_none() {
            resp.push(
                "MaxRecvDataSegmentLength",
                self.offer.max_recv_data_segment_length.to_string(),
            );
        }
        self.declared_mrdsl = true;
    }
}

#[cfg(test)]
mod tests;
