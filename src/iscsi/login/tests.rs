//! Login state machine driven by scripted initiators.

use super::*;
use crate::iscsi::login::chap::{ChapAlgorithm, decode_binary, encode_hex};

struct Policy(AuthRequirement);

impl LoginPolicy for Policy {
    fn authorize(&self, who: &LoginIdentity) -> Result<Access, LoginStatus> {
        match who.target.as_deref() {
            None | Some("iqn.2026-11.org.example:t") => Ok(Access {
                auth: self.0.clone(),
                tpgt: 1,
                offer: None,
            }),
            Some(_) => Err(LoginStatus::NOT_FOUND),
        }
    }
}

fn fixed_random(buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = 0x40 + i as u8;
    }
}

fn req(csg: u8, nsg: u8, transit: bool) -> LoginRequest {
    LoginRequest {
        transit,
        cont: false,
        csg,
        nsg,
        version_max: 0,
        version_min: 0,
        isid: [0x80, 0, 0x02, 0x3d, 0, 0],
        tsih: 0,
        itt: 7,
        cid: 0,
        cmdsn: 100,
        exp_statsn: 0,
    }
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut t = TextPairs::default();
    for (k, v) in pairs {
        t.push(*k, *v);
    }
    t.encode()
}

fn login() -> Login {
    Login::with_random(Offer::default(), "127.0.0.1".parse().unwrap(), fixed_random)
}

fn status(r: &LoginReply) -> LoginStatus {
    LoginStatus::new(r.bhs.0[36], r.bhs.0[37])
}

const HELLO: &[(&str, &str)] = &[
    ("InitiatorName", "iqn.2005-03.org.open-iscsi:host"),
    ("SessionType", "Normal"),
    ("TargetName", "iqn.2026-11.org.example:t"),
];

#[test]
fn no_auth_login_reaches_full_feature() {
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let mut first = HELLO.to_vec();
    first.push(("AuthMethod", "None"));
    let LoginStep::Continue(r) = l.step(&req(0, 1, true), &text(&first), &p) else {
        panic!("security stage should continue");
    };
    assert_eq!(status(&r), LoginStatus::SUCCESS);
    assert_eq!(r.bhs.flags(), 0x81, "T=1, CSG=0, NSG=1");
    assert_eq!(
        TextPairs::parse(&r.data).unwrap().get("AuthMethod"),
        Some("None")
    );
    let op = text(&[
        ("HeaderDigest", "CRC32C,None"),
        ("MaxRecvDataSegmentLength", "65536"),
    ]);
    let step = l.step(&req(1, 3, true), &op, &p);
    let LoginStep::Complete(r, neg) = step else {
        panic!("operational stage should complete: {step:?}");
    };
    assert_eq!(r.bhs.flags(), 0x87, "T=1, CSG=1, NSG=3");
    let t = TextPairs::parse(&r.data).unwrap();
    assert_eq!(t.get("HeaderDigest"), Some("CRC32C"));
    assert_eq!(t.get("MaxRecvDataSegmentLength"), Some("262144"));
    assert!(neg.params.header_digest);
    assert_eq!(neg.params.initiator_mrdsl, 65536);
    assert_eq!(neg.cmdsn, 100);
    assert!(!neg.discovery);
}

#[test]
fn unknown_target_and_missing_names() {
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let bad = text(&[
        ("InitiatorName", "iqn.x:y"),
        ("TargetName", "iqn.2026-11.org.example:nope"),
    ]);
    let LoginStep::Fail(r, _) = l.step(&req(0, 1, true), &bad, &p) else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::NOT_FOUND);
    let mut l = login();
    let LoginStep::Fail(r, _) = l.step(&req(0, 1, true), &text(&[("TargetName", "t")]), &p) else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::MISSING_PARAMETER);
    let mut l = login();
    let LoginStep::Fail(r, _) = l.step(
        &req(0, 1, true),
        &text(&[("InitiatorName", "iqn.x:y"), ("SessionType", "Normal")]),
        &p,
    ) else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::MISSING_PARAMETER);
}

#[test]
fn discovery_session_needs_no_target_name() {
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let t = text(&[
        ("InitiatorName", "iqn.x:y"),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]);
    let LoginStep::Continue(_) = l.step(&req(0, 1, true), &t, &p) else {
        panic!()
    };
    let LoginStep::Complete(_, neg) =
        l.step(&req(1, 3, true), &text(&[("MaxBurstLength", "4096")]), &p)
    else {
        panic!()
    };
    assert!(neg.discovery);
}

fn chap_policy(mutual: bool) -> Policy {
    Policy(AuthRequirement::Chap {
        initiator: ChapSecret {
            user: "client1".into(),
            secret: b"initiator-secret".to_vec(),
        },
        target: mutual.then(|| ChapSecret {
            user: "nas".into(),
            secret: b"target-secret-16".to_vec(),
        }),
    })
}

fn chap_exchange(mutual: bool, secret: &[u8], my_challenge: &[u8]) -> (Login, Policy, LoginStep) {
    let p = chap_policy(mutual);
    let mut l = login();
    let mut first = HELLO.to_vec();
    first.push(("AuthMethod", "CHAP,None"));
    let LoginStep::Continue(r) = l.step(&req(0, 1, false), &text(&first), &p) else {
        panic!()
    };
    assert_eq!(
        TextPairs::parse(&r.data).unwrap().get("AuthMethod"),
        Some("CHAP")
    );
    let LoginStep::Continue(r) = l.step(&req(0, 1, false), &text(&[("CHAP_A", "5,7")]), &p) else {
        panic!()
    };
    let t = TextPairs::parse(&r.data).unwrap();
    assert_eq!(t.get("CHAP_A"), Some("7"), "SHA-256 preferred over MD5");
    let id: u8 = t.get("CHAP_I").unwrap().parse().unwrap();
    let c = decode_binary(t.get("CHAP_C").unwrap()).unwrap();
    assert!(c.len() >= 16);
    let resp = encode_hex(&ChapAlgorithm::Sha256.response(id, secret, &c));
    let mut keys = vec![("CHAP_N", "client1".to_string()), ("CHAP_R", resp)];
    if mutual {
        keys.push(("CHAP_I", "9".into()));
        keys.push(("CHAP_C", encode_hex(my_challenge)));
    }
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let step = l.step(&req(0, 1, true), &text(&refs), &p);
    (l, p, step)
}

#[test]
fn chap_one_way() {
    let (mut l, p, step) = chap_exchange(false, b"initiator-secret", &[]);
    let LoginStep::Continue(r) = step else {
        panic!()
    };
    assert_eq!(r.bhs.flags() & 0x80, 0x80, "transit after authentication");
    let LoginStep::Complete(_, neg) = l.step(&req(1, 3, true), &[], &p) else {
        panic!()
    };
    assert_eq!(neg.authenticated, Some(ChapAlgorithm::Sha256));
}

#[test]
fn chap_wrong_secret_fails_with_auth_status() {
    let (_, _, step) = chap_exchange(false, b"wrong", &[]);
    let LoginStep::Fail(r, _) = step else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::AUTH_FAILED);
}

#[test]
fn chap_mutual_answers_and_refuses_reflection() {
    let challenge = [0x11u8; 16];
    let (_, _, step) = chap_exchange(true, b"initiator-secret", &challenge);
    let LoginStep::Continue(r) = step else {
        panic!()
    };
    let t = TextPairs::parse(&r.data).unwrap();
    assert_eq!(t.get("CHAP_N"), Some("nas"));
    let want = ChapAlgorithm::Sha256.response(9, b"target-secret-16", &challenge);
    assert_eq!(decode_binary(t.get("CHAP_R").unwrap()).unwrap(), want);
    // the target's own challenge (fixed_random gives 0x40.. bytes) reflected back
    let mut reflected = vec![0u8; 32];
    fixed_random(&mut reflected);
    let (_, _, step) = chap_exchange(true, b"initiator-secret", &reflected);
    assert!(matches!(step, LoginStep::Fail(..)));
}

#[test]
fn skipping_security_when_chap_required_fails() {
    let p = chap_policy(false);
    let mut l = login();
    let LoginStep::Fail(r, _) = l.step(&req(1, 3, true), &text(HELLO), &p) else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::AUTH_FAILED);
}

#[test]
fn bad_stage_transition_is_initiator_error() {
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let LoginStep::Fail(r, _) = l.step(&req(1, 0, true), &text(HELLO), &p) else {
        panic!()
    };
    assert_eq!(status(&r), LoginStatus::INITIATOR_ERROR);
}

/// Random requests and data segments never panic the login: each step answers or fails.
#[test]
fn random_input_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let p = Policy(chap_policy(true).0);
    let pieces: [&[u8]; 8] = [
        b"InitiatorName=iqn.x:y\0",
        b"TargetName=iqn.2026-11.org.example:t\0",
        b"SessionType=Discovery\0",
        b"AuthMethod=CHAP,None\0",
        b"CHAP_A=5,7\0",
        b"CHAP_N=client1\0CHAP_R=0x00\0",
        b"MaxBurstLength=99999999999\0",
        b"\xff\xfe=\0",
    ];
    for _ in 0..5000 {
        let mut l = login();
        for _ in 0..(next() % 5 + 1) {
            let r = next();
            let mut rq = req((r & 3) as u8, ((r >> 2) & 3) as u8, r & 16 != 0);
            rq.cont = r & 32 != 0;
            rq.version_min = (r >> 8) as u8 % 2;
            let mut data = Vec::new();
            for _ in 0..(r >> 16) % 4 {
                data.extend_from_slice(pieces[(next() % 8) as usize]);
            }
            if r & 64 != 0 {
                data.extend((0..(r >> 24) % 40).map(|i| (next() >> (i % 8)) as u8));
            }
            if matches!(
                l.step(&rq, &data, &p),
                LoginStep::Fail(..) | LoginStep::Complete(..)
            ) {
                break;
            }
        }
    }
}

#[test]
fn a_long_response_goes_out_in_continued_pieces_and_transits_with_the_last() {
    // 3000 unknown keys, sent in one operational-stage request straight to full feature:
    // each answer is `X-k...=NotUnderstood`, far more than one 8192-byte login PDU.
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let mut pairs: Vec<(String, String)> = HELLO
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.extend((0..3000).map(|i| (format!("X-k{i}"), "1".to_string())));
    let mut t = TextPairs::default();
    for (k, v) in &pairs {
        t.push(k.as_str(), v.as_str());
    }
    let mut step = l.step(&req(1, 3, true), &t.encode(), &p);
    let mut text = Vec::new();
    let mut pieces = 0;
    let neg = loop {
        pieces += 1;
        assert!(pieces < 100, "endless continuation");
        match step {
            LoginStep::Continue(r) => {
                assert!(r.data.len() <= LOGIN_SEGMENT, "{} bytes", r.data.len());
                assert_eq!(r.bhs.flags(), 0x44, "C=1, T=0, CSG=1 while continued");
                text.extend_from_slice(&r.data);
                let mut next = req(1, 3, true);
                next.itt = 8 + pieces;
                step = l.step(&next, &[], &p);
            }
            LoginStep::Complete(r, neg) => {
                assert!(r.data.len() <= LOGIN_SEGMENT);
                assert_eq!(r.bhs.flags(), 0x87, "T=1, CSG=1, NSG=3 on the last piece");
                assert_eq!(r.bhs.itt(), 8 + pieces - 1, "answers the request it got");
                text.extend_from_slice(&r.data);
                break neg;
            }
            LoginStep::Fail(_, why) => panic!("login failed: {why}"),
        }
    };
    assert!(pieces > 5, "{pieces} pieces");
    assert!(!neg.discovery);
    let got = TextPairs::parse(&text).unwrap();
    assert_eq!(got.get("X-k0"), Some("NotUnderstood"));
    assert_eq!(
        got.get("X-k2999"),
        Some("NotUnderstood"),
        "nothing lost at the cuts"
    );
}

#[test]
fn text_sent_while_the_response_is_continued_fails_the_login() {
    let p = Policy(AuthRequirement::None);
    let mut l = login();
    let mut t = TextPairs::default();
    for (k, v) in HELLO {
        t.push(*k, *v);
    }
    for i in 0..2000 {
        t.push(format!("X-k{i}").as_str(), "1");
    }
    let LoginStep::Continue(r) = l.step(&req(1, 3, true), &t.encode(), &p) else {
        panic!("a first piece");
    };
    assert_eq!(r.bhs.flags() & 0x40, 0x40);
    let step = l.step(&req(1, 3, true), &text(&[("MaxBurstLength", "65536")]), &p);
    assert!(matches!(step, LoginStep::Fail(..)), "{step:?}");
}
