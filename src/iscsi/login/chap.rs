//! CHAP authentication (RFC 1994 as profiled by RFC 7143 §12.1.3), one-way and mutual,
//! with the hash algorithms of RFC 7143 and later registrations: MD5 (5), SHA-1 (6),
//! SHA-256 (7) and SHA3-256 (8).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use sha3::Sha3_256;
use subtle::ConstantTimeEq;

use super::ChapSecret;
use crate::iscsi::wire::text::TextPairs;

/// A CHAP hash algorithm by its CHAP_A number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChapAlgorithm {
    /// MD5 (5).
    Md5 = 5,
    /// SHA-1 (6).
    Sha1 = 6,
    /// SHA-256 (7).
    Sha256 = 7,
    /// SHA3-256 (8).
    Sha3_256 = 8,
}

impl ChapAlgorithm {
    /// The name used in logs and open-iscsi's `chap_algs`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha3_256 => "SHA3-256",
        }
    }

    /// Preference order: strongest first.
    pub const PREFERENCE: [ChapAlgorithm; 4] =
        [Self::Sha3_256, Self::Sha256, Self::Sha1, Self::Md5];

    /// The algorithm for a CHAP_A value.
    pub fn from_code(code: &str) -> Option<Self> {
        match code.trim() {
            "5" => Some(Self::Md5),
            "6" => Some(Self::Sha1),
            "7" => Some(Self::Sha256),
            "8" => Some(Self::Sha3_256),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sha3_256 => 32,
        }
    }

    /// `H(id || secret || challenge)`.
    pub fn response(self, id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
        fn h<D: Digest>(id: u8, secret: &[u8], challenge: &[u8]) -> Vec<u8> {
            let mut d = D::new();
            d.update([id]);
            d.update(secret);
            d.update(challenge);
            d.finalize().to_vec()
        }
        match self {
            Self::Md5 => h::<Md5>(id, secret, challenge),
            Self::Sha1 => h::<Sha1>(id, secret, challenge),
            Self::Sha256 => h::<Sha256>(id, secret, challenge),
            Self::Sha3_256 => h::<Sha3_256>(id, secret, challenge),
        }
    }
}

/// Decodes a CHAP binary value: `0x` hex or `0b` base64.
pub fn decode_binary(v: &str) -> Option<Vec<u8>> {
    if let Some(h) = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        let h = if h.len() % 2 == 1 {
            format!("0{h}")
        } else {
            h.to_string()
        };
        hex::decode(h).ok()
    } else if let Some(b) = v.strip_prefix("0b").or_else(|| v.strip_prefix("0B")) {
        decode_base64(b)
    } else {
        None
    }
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Encodes bytes as a CHAP `0x` hex value.
pub fn encode_hex(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Where the exchange stands.
#[derive(Debug)]
pub enum ChapState {
    /// Waiting for CHAP_A.
    ExpectAlgorithm,
    /// Challenge sent; waiting for CHAP_N/CHAP_R.
    ExpectResponse {
        /// Chosen algorithm.
        alg: ChapAlgorithm,
        /// Identifier sent.
        id: u8,
        /// Challenge sent.
        challenge: Vec<u8>,
    },
    /// Finished.
    Done,
}

/// What one CHAP step produced.
#[derive(Debug)]
pub enum ChapOutcome {
    /// Keys to send; the exchange continues.
    Send(TextPairs),
    /// The initiator is authenticated with this algorithm (keys: the mutual answer, if any).
    Authenticated(TextPairs, ChapAlgorithm),
    /// Authentication failed (reason for the log, never containing a secret).
    Failed(String),
}

impl Default for ChapState {
    fn default() -> Self {
        Self::new()
    }
}

impl ChapState {
    /// A new exchange, waiting for CHAP_A.
    pub fn new() -> Self {
        ChapState::ExpectAlgorithm
    }

    /// Handles one request's keys.
    pub fn step(
        &mut self,
        req: &TextPairs,
        expect: &ChapSecret,
        mutual: Option<&ChapSecret>,
        random: fn(&mut [u8]),
    ) -> ChapOutcome {
        match std::mem::replace(self, ChapState::Done) {
            ChapState::ExpectAlgorithm => {
                let Some(offered) = req.get("CHAP_A") else {
                    return ChapOutcome::Failed("CHAP_A missing".into());
                };
                let offered: Vec<ChapAlgorithm> = offered
                    .split(',')
                    .filter_map(ChapAlgorithm::from_code)
                    .collect();
                let Some(alg) = ChapAlgorithm::PREFERENCE
                    .into_iter()
                    .find(|a| offered.contains(a))
                else {
                    return ChapOutcome::Failed("no supported CHAP_A offered".into());
                };
                let mut idb = [0u8; 1];
                random(&mut idb);
                let mut challenge = vec![0u8; alg.digest_len().max(16)];
                random(&mut challenge);
                let mut out = TextPairs::default();
                out.push("CHAP_A", (alg as u8).to_string());
                out.push("CHAP_I", idb[0].to_string());
                out.push("CHAP_C", encode_hex(&challenge));
                *self = ChapState::ExpectResponse {
                    alg,
                    id: idb[0],
                    challenge,
                };
                ChapOutcome::Send(out)
            }
            ChapState::ExpectResponse { alg, id, challenge } => {
                let (Some(name), Some(resp)) = (req.get("CHAP_N"), req.get("CHAP_R")) else {
                    return ChapOutcome::Failed("CHAP_N or CHAP_R missing".into());
                };
                let Some(resp) = decode_binary(resp) else {
                    return ChapOutcome::Failed("CHAP_R is not a binary value".into());
                };
                let want = alg.response(id, &expect.secret, &challenge);
                let name_ok = name.as_bytes().ct_eq(expect.user.as_bytes());
                let resp_ok = resp.ct_eq(&want);
                if !bool::from(name_ok & resp_ok) {
                    return ChapOutcome::Failed(format!("wrong CHAP response for user {name:?}"));
                }
                let mut out = TextPairs::default();
                match (req.get("CHAP_I"), req.get("CHAP_C"), mutual) {
                    (None, None, None) => {}
                    (None, None, Some(_)) => {
                        return ChapOutcome::Failed(
                            "mutual CHAP is configured but the initiator did not challenge the target".into(),
                        );
                    }
                    (Some(i), Some(c), Some(m)) => {
                        let Ok(mid) = i.parse::<u8>() else {
                            return ChapOutcome::Failed("bad CHAP_I".into());
                        };
                        let Some(mc) = decode_binary(c) else {
                            return ChapOutcome::Failed("bad CHAP_C".into());
                        };
                        if mc.len() < 16 {
                            return ChapOutcome::Failed(
                                "mutual CHAP challenge shorter than 16 bytes".into(),
                            );
                        }
                        if bool::from(mc.ct_eq(&challenge)) {
                            return ChapOutcome::Failed("reflected CHAP challenge".into());
                        }
                        if bool::from(m.secret.ct_eq(&expect.secret)) {
                            return ChapOutcome::Failed(
                                "mutual CHAP secret equals the initiator's secret".into(),
                            );
                        }
                        out.push("CHAP_N", m.user.clone());
                        out.push("CHAP_R", encode_hex(&alg.response(mid, &m.secret, &mc)));
                    }
                    (Some(_), Some(_), None) => {
                        return ChapOutcome::Failed(
                            "initiator asked for mutual CHAP, none configured".into(),
                        );
                    }
                    _ => return ChapOutcome::Failed("CHAP_I and CHAP_C must come together".into()),
                }
                ChapOutcome::Authenticated(out, alg)
            }
            ChapState::Done => ChapOutcome::Failed("CHAP keys after authentication".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_vectors() {
        // id 1, secret "secret", challenge 00..0f; expected values from Python's hashlib
        let c: Vec<u8> = (0u8..16).collect();
        let cases = [
            (ChapAlgorithm::Md5, "740e86463bda3a4d7017d6e0fba0699d"),
            (
                ChapAlgorithm::Sha1,
                "3890198f5112376188a9742805758384545583a6",
            ),
            (
                ChapAlgorithm::Sha256,
                "28b96c916cf784528bbfaa6ad7e012cab293437604aae8d66a3295b319132cef",
            ),
            (
                ChapAlgorithm::Sha3_256,
                "bdceca071be509f41acf88309bb6d12e51526c23a2d18f22c2bb8ed199c36fd8",
            ),
        ];
        for (alg, want) in cases {
            let got = hex::encode(alg.response(1, b"secret", &c));
            assert_eq!(got.len(), alg.digest_len() * 2);
            assert_eq!(got, want, "{alg:?}");
        }
    }

    #[test]
    fn binary_values() {
        assert_eq!(decode_binary("0x0102ff"), Some(vec![1, 2, 255]));
        assert_eq!(decode_binary("0x102"), Some(vec![1, 2]));
        assert_eq!(decode_binary("0bAQL/"), Some(vec![1, 2, 255]));
        assert_eq!(decode_binary("0102"), None);
        assert_eq!(decode_binary("0xzz"), None);
    }
}
