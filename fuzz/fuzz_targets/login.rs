//! The login state machine (`iscsi::login::Login`) fed arbitrary sequences of Login
//! Request PDUs (header + text), against a policy that asks for no authentication, CHAP,
//! or mutual CHAP. Never a panic; every reply is a Login Response whose text parses;
//! once it completes or fails, the login is over.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use rustiscsi::iscsi::login::{
    Access, AuthRequirement, ChapSecret, Login, LoginIdentity, LoginPolicy, LoginRequest,
    LoginStep, Offer,
};
use rustiscsi::iscsi::wire::codes::LoginStatus;
use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi::iscsi::wire::{Bhs, Opcode};
use rustiscsi_fuzz::Cursor;

struct Policy(u8);

fn secret(user: &str, s: &str) -> ChapSecret {
    ChapSecret {
        user: user.into(),
        secret: s.as_bytes().to_vec(),
    }
}

impl LoginPolicy for Policy {
    fn authorize(&self, who: &LoginIdentity) -> Result<Access, LoginStatus> {
        if who.target.as_deref() == Some("iqn.2026-11.org.example:missing") {
            return Err(LoginStatus::NOT_FOUND);
        }
        let auth = match self.0 % 3 {
            0 => AuthRequirement::None,
            1 => AuthRequirement::Chap {
                initiator: secret("user", "initiator-secret"),
                target: None,
            },
            _ => AuthRequirement::Chap {
                initiator: secret("user", "initiator-secret"),
                target: Some(secret("target", "target-secret-16")),
            },
        };
        // Every other policy names a target whose offer is stricter than the login's
        // first one (the target proposes keys and waits for the answers).
        let offer = (self.0 & 4 != 0).then(|| Offer {
            max_recv_data_segment_length: 8192,
            max_burst_length: 65_536,
            first_burst_length: 8192,
            max_outstanding_r2t: 1,
            immediate_data: false,
            initial_r2t: true,
            header_crc32c: true,
            header_none: false,
            data_crc32c: true,
            data_none: false,
        });
        Ok(Access {
            auth,
            tpgt: 1,
            offer,
        })
    }
}

/// A fixed "random" source: fuzzing must be deterministic.
fn fixed(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8 ^ 0x5a;
    }
}

fuzz_target!(|data: &[u8]| {
    let mut c = Cursor::new(data);
    let policy = Policy(c.u8());
    let mut login = Login::with_random(
        Offer::default(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        fixed,
    );
    for _ in 0..32 {
        if c.is_empty() {
            break;
        }
        // A header from the input (opcode forced), then a text segment of its own length.
        let mut b = Bhs(c.array::<48>());
        b.0[0] = (b.0[0] & 0x40) | Opcode::LOGIN_REQUEST.0;
        let len = usize::from(c.u16()) % 9000;
        let text = c.take(len);
        let req = LoginRequest::from_bhs(&b);
        let reply = match login.step(&req, text, &policy) {
            LoginStep::Continue(r) => Some(r),
            LoginStep::Complete(r, neg) => {
                assert!(neg.params.first_burst_length <= neg.params.max_burst_length);
                assert_eq!(r.bhs.0[36], 0, "a completed login reports success");
                let _ = format!("{neg:?}");
                check(&r.bhs, &r.data);
                None
            }
            LoginStep::Fail(r, why) => {
                assert_ne!(r.bhs.0[36], 0, "a failed login reports a failure: {why}");
                check(&r.bhs, &r.data);
                None
            }
        };
        match reply {
            Some(r) => check(&r.bhs, &r.data),
            None => break,
        }
    }
});

fn check(b: &Bhs, data: &[u8]) {
    assert_eq!(b.opcode(), Opcode::LOGIN_RESPONSE);
    TextPairs::parse(data).expect("the target's login text parses");
}
