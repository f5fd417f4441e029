//! A minimal iSCSI initiator for tests: logs in (with or without CHAP MD5, normal or
//! discovery session) and keeps the connection, to be seen by `sessions` and logged out.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use md5::Digest;
use rustiscsi::iscsi::wire::text::TextPairs;
use rustiscsi::iscsi::wire::{Bhs, Opcode};

/// A logged-in session.
pub struct Session {
    pub s: TcpStream,
    pub tsih: u16,
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut t = TextPairs::default();
    for (k, v) in pairs {
        t.push(*k, *v);
    }
    t.encode()
}

fn send(s: &mut TcpStream, b: &Bhs, data: &[u8]) {
    let mut b = *b;
    b.set_data_segment_len(data.len());
    let mut out = b.0.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len() + (4 - data.len() % 4) % 4, 0);
    s.write_all(&out).unwrap();
}

fn recv(s: &mut TcpStream) -> Option<(Bhs, Vec<u8>)> {
    let mut b = Bhs::default();
    s.read_exact(&mut b.0).ok()?;
    let dlen = b.data_segment_len();
    let mut data = vec![0u8; dlen + (4 - dlen % 4) % 4 + b.total_ahs_len()];
    s.read_exact(&mut data).ok()?;
    data.truncate(dlen);
    Some((b, data))
}

/// Logs `initiator` in to `target` (`None`: a discovery session) at `addr`, answering
/// CHAP MD5 with `chap` = (user, secret) when given. Err: the login status.
pub fn login(
    addr: &str,
    initiator: &str,
    target: Option<&str>,
    isid: u8,
    chap: Option<(&str, &str)>,
) -> Result<Session, (u8, u8)> {
    login_with(addr, initiator, target, isid, chap, None)
}

/// What [`login_mutual`] returns when the target's answer to our challenge is missing or
/// wrong (the login itself was accepted).
pub const BAD_MUTUAL_ANSWER: (u8, u8) = (0xfe, 0xfe);

/// [`login`] with CHAP MD5 both ways: after answering the target's challenge, challenges
/// the target and checks that it answers as `mutual` = (user, secret) would. Err
/// [`BAD_MUTUAL_ANSWER`]: the target's CHAP_N or CHAP_R was not that.
pub fn login_mutual(
    addr: &str,
    initiator: &str,
    target: &str,
    isid: u8,
    chap: (&str, &str),
    mutual: (&str, &str),
) -> Result<Session, (u8, u8)> {
    login_with(
        addr,
        initiator,
        Some(target),
        isid,
        Some(chap),
        Some(mutual),
    )
}

fn md5_response(id: u8, secret: &str, challenge: &[u8]) -> String {
    let mut h = md5::Md5::new();
    h.update([id]);
    h.update(secret.as_bytes());
    h.update(challenge);
    format!("0x{}", hex::encode(h.finalize()))
}

fn login_with(
    addr: &str,
    initiator: &str,
    target: Option<&str>,
    isid: u8,
    chap: Option<(&str, &str)>,
    mutual: Option<(&str, &str)>,
) -> Result<Session, (u8, u8)> {
    let mut s = TcpStream::connect(addr).map_err(|_| (0xff, 0xff))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = Bhs::new(Opcode::LOGIN_REQUEST);
    b.0[0] |= 0x40;
    b.0[8..14].copy_from_slice(&[0x80, 0, 0, 0, 0, isid]);
    b.set_cmdsn(1);
    let mut first = vec![("InitiatorName", initiator)];
    match target {
        Some(t) => {
            first.push(("SessionType", "Normal"));
            first.push(("TargetName", t));
        }
        None => first.push(("SessionType", "Discovery")),
    }
    let status = |r: &Bhs| (r.0[36], r.0[37]);
    if let Some((user, secret)) = chap {
        first.push(("AuthMethod", "CHAP"));
        b.set_flags(0x01); // CSG=0, NSG=1, no transit yet
        send(&mut s, &b, &text(&first));
        let (r, _) = recv(&mut s).ok_or((0xff, 0))?;
        if status(&r) != (0, 0) {
            return Err(status(&r));
        }
        send(&mut s, &b, &text(&[("CHAP_A", "5")]));
        let (r, data) = recv(&mut s).ok_or((0xff, 0))?;
        if status(&r) != (0, 0) {
            return Err(status(&r));
        }
        let t = TextPairs::parse(&data).unwrap();
        let id: u8 = t.get("CHAP_I").unwrap().parse().unwrap();
        let c = hex::decode(t.get("CHAP_C").unwrap().trim_start_matches("0x")).unwrap();
        let resp = md5_response(id, secret, &c);
        b.set_flags(0x80 | 0x01);
        // Our challenge to the target (mutual CHAP): 16 bytes, never the target's own.
        let mid = isid.wrapping_add(101);
        let mc: Vec<u8> = (0u8..16)
            .map(|i| i.wrapping_mul(29) ^ isid ^ 0x5a)
            .collect();
        let mc_hex = format!("0x{}", hex::encode(&mc));
        let mid_s = mid.to_string();
        let mut answer = vec![("CHAP_N", user), ("CHAP_R", resp.as_str())];
        if mutual.is_some() {
            answer.push(("CHAP_I", &mid_s));
            answer.push(("CHAP_C", &mc_hex));
        }
        send(&mut s, &b, &text(&answer));
        let (r, data) = recv(&mut s).ok_or((0xff, 0))?;
        if status(&r) != (0, 0) {
            return Err(status(&r));
        }
        if let Some((muser, msecret)) = mutual {
            let t = TextPairs::parse(&data).map_err(|_| BAD_MUTUAL_ANSWER)?;
            let want = md5_response(mid, msecret, &mc);
            let got = t.get("CHAP_R").map(str::to_ascii_lowercase);
            if t.get("CHAP_N") != Some(muser) || got.as_deref() != Some(want.as_str()) {
                return Err(BAD_MUTUAL_ANSWER);
            }
        }
    } else {
        first.push(("AuthMethod", "None"));
        b.set_flags(0x80 | 0x01);
        send(&mut s, &b, &text(&first));
        let (r, _) = recv(&mut s).ok_or((0xff, 0))?;
        if status(&r) != (0, 0) {
            return Err(status(&r));
        }
    }
    b.set_flags(0x80 | 0x04 | 0x03);
    send(
        &mut s,
        &b,
        &text(&[("HeaderDigest", "None"), ("DataDigest", "None")]),
    );
    let (r, _) = recv(&mut s).ok_or((0xff, 0))?;
    if status(&r) != (0, 0) {
        return Err(status(&r));
    }
    Ok(Session {
        tsih: r.u16_at(14),
        s,
    })
}

impl Session {
    /// Waits (up to `secs`) for the target to ask for a logout or close the connection.
    pub fn told_to_leave(&mut self, secs: u64) -> bool {
        self.s
            .set_read_timeout(Some(Duration::from_secs(secs)))
            .unwrap();
        match recv(&mut self.s) {
            None => true,
            Some((b, _)) => b.opcode() == Opcode::ASYNC_MESSAGE,
        }
    }
}
