//! The operational key table (RFC 7143 §13) and negotiation by each key's rule.

use super::super::wire::text::TextPairs;

/// How a key's result is computed from the offer and the target's own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A list: the responder picks the first offered value it supports.
    List,
    /// Boolean: result is offered AND ours.
    BoolAnd,
    /// Boolean: result is offered OR ours.
    BoolOr,
    /// Number: result is min(offered, ours); offers outside `lo..=hi` are rejected.
    Min(u32, u32),
    /// Number: result is max(offered, ours).
    Max(u32, u32),
    /// Declarative: each side states its own value; no result.
    Declarative(u32, u32),
}

/// Who may send a key and when.
#[derive(Debug, Clone, Copy)]
pub struct KeyDef {
    /// Key name.
    pub name: &'static str,
    /// Negotiation rule.
    pub rule: Rule,
    /// Meaningful in a discovery session (otherwise answered `Irrelevant`).
    pub in_discovery: bool,
}

const fn key(name: &'static str, rule: Rule, in_discovery: bool) -> KeyDef {
    KeyDef {
        name,
        rule,
        in_discovery,
    }
}

const MAX24: u32 = 16_777_215;

/// Operational keys the target negotiates. Security keys (AuthMethod, CHAP_*) and
/// declarations (InitiatorName, TargetName, SessionType, aliases) are handled by the login.
pub const KEYS: &[KeyDef] = &[
    key("HeaderDigest", Rule::List, true),
    key("DataDigest", Rule::List, true),
    key("MaxConnections", Rule::Min(1, 65535), false),
    key("InitialR2T", Rule::BoolOr, false),
    key("ImmediateData", Rule::BoolAnd, false),
    key(
        "MaxRecvDataSegmentLength",
        Rule::Declarative(512, MAX24),
        true,
    ),
    key("MaxBurstLength", Rule::Min(512, MAX24), false),
    key("FirstBurstLength", Rule::Min(512, MAX24), false),
    key("DefaultTime2Wait", Rule::Max(0, 3600), true),
    key("DefaultTime2Retain", Rule::Min(0, 3600), true),
    key("MaxOutstandingR2T", Rule::Min(1, 65535), false),
    key("DataPDUInOrder", Rule::BoolOr, false),
    key("DataSequenceInOrder", Rule::BoolOr, false),
    key("ErrorRecoveryLevel", Rule::Min(0, 2), true),
    key("IFMarker", Rule::BoolAnd, true),
    key("OFMarker", Rule::BoolAnd, true),
    key("iSCSIProtocolLevel", Rule::Min(0, 31), true),
];

/// Keys of RFC 3720 that RFC 7143 made obsolete; answered `Irrelevant`.
const OBSOLETE: &[&str] = &["OFMarkInt", "IFMarkInt"];

/// What the target offers (from the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The MaxRecvDataSegmentLength the target declares.
    pub max_recv_data_segment_length: u32,
    /// Upper bound for MaxBurstLength.
    pub max_burst_length: u32,
    /// Upper bound for FirstBurstLength.
    pub first_burst_length: u32,
    /// Upper bound for MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// ImmediateData the target allows.
    pub immediate_data: bool,
    /// Whether the target insists on InitialR2T=Yes.
    pub initial_r2t: bool,
    /// Accept CRC32C header digests.
    pub header_crc32c: bool,
    /// Accept no header digest.
    pub header_none: bool,
    /// Accept CRC32C data digests.
    pub data_crc32c: bool,
    /// Accept no data digest.
    pub data_none: bool,
}

impl Default for Offer {
    fn default() -> Self {
        Self {
            max_recv_data_segment_length: 262_144,
            max_burst_length: 1_048_576,
            first_burst_length: 262_144,
            max_outstanding_r2t: 8,
            immediate_data: true,
            initial_r2t: false,
            header_crc32c: true,
            header_none: true,
            data_crc32c: true,
            data_none: true,
        }
    }
}

/// The negotiated session and connection parameters (RFC 7143 defaults until changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// CRC32C header digests on this connection.
    pub header_digest: bool,
    /// CRC32C data digests on this connection.
    pub data_digest: bool,
    /// Largest data segment the initiator accepts (our Data-In / text responses).
    pub initiator_mrdsl: u32,
    /// Largest data segment the target accepts (their Data-Out / immediate data).
    pub target_mrdsl: u32,
    /// MaxConnections.
    pub max_connections: u32,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// ImmediateData.
    pub immediate_data: bool,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// DefaultTime2Wait.
    pub default_time2wait: u32,
    /// DefaultTime2Retain.
    pub default_time2retain: u32,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// DataPDUInOrder.
    pub data_pdu_in_order: bool,
    /// DataSequenceInOrder.
    pub data_sequence_in_order: bool,
    /// ErrorRecoveryLevel.
    pub error_recovery_level: u32,
}

impl Params {
    /// RFC 7143 defaults, with the target's declared MaxRecvDataSegmentLength.
    pub fn defaults(offer: &Offer) -> Self {
        Self {
            header_digest: false,
            data_digest: false,
            initiator_mrdsl: 8192,
            target_mrdsl: offer.max_recv_data_segment_length,
            max_connections: 1,
            initial_r2t: true,
            immediate_data: true,
            max_burst_length: 262_144,
            first_burst_length: 65_536,
            default_time2wait: 2,
            default_time2retain: 20,
            max_outstanding_r2t: 1,
            data_pdu_in_order: true,
            data_sequence_in_order: true,
            error_recovery_level: 0,
        }
    }
}

/// A negotiation failure that ends the login.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The same key was offered twice during one login.
    #[error("key {0} negotiated twice")]
    Repeated(String),
    /// The initiator's answer to a key the target proposed is not acceptable.
    #[error("the initiator's answer to {0} is not acceptable")]
    Refused(String),
}

/// Keys the target must propose itself because its configuration is stricter than the
/// RFC 7143 default the initiator would otherwise assume (a key neither side sends takes
/// its default): lower burst lengths, no immediate data, a digest that cannot be None.
/// Returns them (marking them proposed) unless already negotiated.
pub fn proposals(offer: &Offer, seen: &mut Seen, discovery: bool) -> TextPairs {
    let mut out = TextPairs::default();
    let mut propose = |k: &str, v: String| {
        if !seen.offered.contains(k) && !seen.proposed.contains(k) {
            seen.proposed.insert(k.to_string());
            out.push(k, v);
        }
    };
    if !offer.header_none {
        propose("HeaderDigest", "CRC32C".into());
    }
    if !offer.data_none {
        propose("DataDigest", "CRC32C".into());
    }
    if !discovery {
        if offer.max_burst_length < 262_144 {
            propose("MaxBurstLength", offer.max_burst_length.to_string());
        }
        if offer.first_burst_length < 65_536 {
            propose("FirstBurstLength", offer.first_burst_length.to_string());
        }
        if !offer.immediate_data {
            propose("ImmediateData", "No".into());
        }
    }
    out
}

/// A numerical value (RFC 7143 §6.1): decimal, or hexadecimal with `0x` / `0X`.
pub fn parse_number(v: &str) -> Option<u32> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) if !hex.is_empty() => u32::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None => v.parse().ok(),
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "Yes" => Some(true),
        "No" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "Yes" } else { "No" }
}

/// Keys negotiated so far in one login: offered by the initiator, or proposed by the
/// target (and then answered).
#[derive(Debug, Default, Clone)]
pub struct Seen {
    offered: std::collections::HashSet<String>,
    proposed: std::collections::HashSet<String>,
}

impl Seen {
    /// Whether keys the target proposed are still unanswered.
    pub fn awaiting_answers(&self) -> bool {
        !self.proposed.is_empty()
    }
}

/// Answers the operational keys in `req`, updating `params`. `seen` collects keys already
/// negotiated in this login; `discovery` marks a discovery session. A key the target
/// proposed (see [`proposals`]) comes back as the initiator's answer: it is applied by the
/// same rule and not answered again.
pub fn negotiate(
    req: &TextPairs,
    offer: &Offer,
    params: &mut Params,
    seen: &mut Seen,
    discovery: bool,
) -> Result<TextPairs, NegotiationError> {
    let mut resp = TextPairs::default();
    for (k, v) in &req.0 {
        if is_login_declaration(k) || k.starts_with("CHAP_") || k == "AuthMethod" {
            continue;
        }
        if seen.proposed.remove(k.as_str()) {
            if let Some(def) = KEYS.iter().find(|d| d.name == k)
                && answer_key(def, v, offer, params) == "Reject"
            {
                return Err(NegotiationError::Refused(k.clone()));
            }
            seen.offered.insert(k.clone());
            continue;
        }
        if !seen.offered.insert(k.clone()) {
            return Err(NegotiationError::Repeated(k.clone()));
        }
        if OBSOLETE.contains(&k.as_str()) {
            resp.push(k.clone(), "Irrelevant");
            continue;
        }
        let Some(def) = KEYS.iter().find(|d| d.name == k) else {
            resp.push(k.clone(), "NotUnderstood");
            continue;
        };
        if discovery && !def.in_discovery {
            resp.push(k.clone(), "Irrelevant");
            continue;
        }
        let answer = answer_key(def, v, offer, params);
        resp.push(k.clone(), answer);
    }
    Ok(resp)
}

/// Keys that declare identity during login and get no answer.
pub fn is_login_declaration(k: &str) -> bool {
    matches!(
        k,
        "InitiatorName" | "InitiatorAlias" | "TargetName" | "SessionType" | "TargetPortalGroupTag"
    )
}

fn answer_key(def: &KeyDef, v: &str, offer: &Offer, p: &mut Params) -> String {
    match def.rule {
        Rule::List => {
            let (crc, none) = if def.name == "HeaderDigest" {
                (offer.header_crc32c, offer.header_none)
            } else {
                (offer.data_crc32c, offer.data_none)
            };
            let pick = v
                .split(',')
                .find(|d| (*d == "CRC32C" && crc) || (*d == "None" && none));
            match pick {
                Some(d) => {
                    let on = d == "CRC32C";
                    if def.name == "HeaderDigest" {
                        p.header_digest = on;
                    } else {
                        p.data_digest = on;
                    }
                    d.to_string()
                }
                None => "Reject".into(),
            }
        }
        Rule::BoolAnd | Rule::BoolOr => {
            let Some(offered) = parse_bool(v) else {
                return "Reject".into();
            };
            let (ours, slot): (bool, Option<&mut bool>) = match def.name {
                "InitialR2T" => (offer.initial_r2t, Some(&mut p.initial_r2t)),
                "ImmediateData" => (offer.immediate_data, Some(&mut p.immediate_data)),
                // ERL 0 target: in-order data and sequences are what we implement.
                "DataPDUInOrder" => (true, Some(&mut p.data_pdu_in_order)),
                "DataSequenceInOrder" => (true, Some(&mut p.data_sequence_in_order)),
                // markers are not supported
                _ => (false, None),
            };
            let result = if def.rule == Rule::BoolAnd {
                offered && ours
            } else {
                offered || ours
            };
            if let Some(s) = slot {
                *s = result;
            }
            yes_no(result).into()
        }
        Rule::Min(lo, hi) | Rule::Max(lo, hi) | Rule::Declarative(lo, hi) => {
            let Some(n) = parse_number(v).filter(|n| (lo..=hi).contains(n)) else {
                return "Reject".into();
            };
            let ours = match def.name {
                "MaxConnections" => 1,
                "MaxBurstLength" => offer.max_burst_length,
                "FirstBurstLength" => offer.first_burst_length,
                "DefaultTime2Wait" => 2,
                "DefaultTime2Retain" => 20,
                "MaxOutstandingR2T" => offer.max_outstanding_r2t,
                "ErrorRecoveryLevel" => 0,
                "iSCSIProtocolLevel" => 1,
                _ => n,
            };
            let result = match def.rule {
                Rule::Min(..) => n.min(ours),
                Rule::Max(..) => n.max(ours),
                _ => n,
            };
            match def.name {
                "MaxRecvDataSegmentLength" => {
                    p.initiator_mrdsl = n;
                    return offer.max_recv_data_segment_length.to_string();
                }
                "MaxConnections" => p.max_connections = result,
                "MaxBurstLength" => p.max_burst_length = result,
                "FirstBurstLength" => p.first_burst_length = result,
                "DefaultTime2Wait" => p.default_time2wait = result,
                "DefaultTime2Retain" => p.default_time2retain = result,
                "MaxOutstandingR2T" => p.max_outstanding_r2t = result,
                "ErrorRecoveryLevel" => p.error_recovery_level = result,
                _ => {}
            }
            result.to_string()
        }
    }
}

/// Final consistency once negotiation ends: FirstBurstLength never exceeds MaxBurstLength.
pub fn finish(p: &mut Params) {
    if p.first_burst_length > p.max_burst_length {
        p.first_burst_length = p.max_burst_length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pairs: &[(&str, &str)], offer: &Offer, discovery: bool) -> (TextPairs, Params) {
        let mut req = TextPairs::default();
        for (k, v) in pairs {
            req.push(*k, *v);
        }
        let mut p = Params::defaults(offer);
        let mut seen = Seen::default();
        let r = negotiate(&req, offer, &mut p, &mut seen, discovery).unwrap();
        (r, p)
    }

    #[test]
    fn open_iscsi_offer() {
        let offer = Offer::default();
        let (r, p) = run(
            &[
                ("HeaderDigest", "None"),
                ("DataDigest", "None"),
                ("MaxRecvDataSegmentLength", "262144"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxOutstandingR2T", "1"),
                ("IFMarker", "No"),
                ("OFMarker", "No"),
                ("ErrorRecoveryLevel", "0"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "0"),
                ("MaxConnections", "1"),
            ],
            &offer,
            false,
        );
        assert_eq!(r.get("MaxBurstLength"), Some("1048576"));
        assert_eq!(r.get("InitialR2T"), Some("No"));
        assert_eq!(r.get("ImmediateData"), Some("Yes"));
        assert_eq!(r.get("MaxRecvDataSegmentLength"), Some("262144"));
        assert_eq!(r.get("IFMarker"), Some("No"));
        assert_eq!(r.get("DefaultTime2Retain"), Some("0"));
        assert_eq!(p.max_burst_length, 1_048_576);
        assert_eq!(p.initiator_mrdsl, 262_144);
        assert!(!p.initial_r2t);
    }

    #[test]
    fn boolean_rules() {
        let offer = Offer {
            initial_r2t: true,
            immediate_data: false,
            ..Offer::default()
        };
        let (r, p) = run(
            &[("InitialR2T", "No"), ("ImmediateData", "Yes")],
            &offer,
            false,
        );
        assert_eq!(r.get("InitialR2T"), Some("Yes"));
        assert_eq!(r.get("ImmediateData"), Some("No"));
        assert!(p.initial_r2t && !p.immediate_data);
    }

    #[test]
    fn digests_pick_first_supported() {
        let offer = Offer {
            header_none: false,
            ..Offer::default()
        };
        let (r, p) = run(
            &[
                ("HeaderDigest", "None,CRC32C"),
                ("DataDigest", "CRC32C,None"),
            ],
            &offer,
            false,
        );
        assert_eq!(r.get("HeaderDigest"), Some("CRC32C"));
        assert_eq!(r.get("DataDigest"), Some("CRC32C"));
        assert!(p.header_digest && p.data_digest);
        let (r, _) = run(&[("HeaderDigest", "None")], &offer, false);
        assert_eq!(r.get("HeaderDigest"), Some("Reject"));
    }

    #[test]
    fn bad_values_unknown_and_irrelevant_keys() {
        let offer = Offer::default();
        let (r, p) = run(
            &[
                ("MaxBurstLength", "100"),
                ("X-com.example.Foo", "1"),
                ("InitialR2T", "maybe"),
            ],
            &offer,
            false,
        );
        assert_eq!(r.get("MaxBurstLength"), Some("Reject"));
        assert_eq!(r.get("X-com.example.Foo"), Some("NotUnderstood"));
        assert_eq!(r.get("InitialR2T"), Some("Reject"));
        assert_eq!(p.max_burst_length, 262_144);
        let (r, _) = run(
            &[("MaxBurstLength", "4096"), ("OFMarkInt", "1")],
            &offer,
            true,
        );
        assert_eq!(r.get("MaxBurstLength"), Some("Irrelevant"));
        assert_eq!(r.get("OFMarkInt"), Some("Irrelevant"));
    }

    #[test]
    fn repeated_key_is_an_error() {
        let offer = Offer::default();
        let mut p = Params::defaults(&offer);
        let mut seen = Seen::default();
        let mut req = TextPairs::default();
        req.push("MaxBurstLength", "4096");
        negotiate(&req, &offer, &mut p, &mut seen, false).unwrap();
        assert!(negotiate(&req, &offer, &mut p, &mut seen, false).is_err());
    }

    /// Defect 8 of issue 8: hexadecimal numerical values are accepted.
    #[test]
    fn hex_numbers() {
        let offer = Offer::default();
        let (r, p) = run(
            &[
                ("MaxRecvDataSegmentLength", "0x10000"),
                ("MaxBurstLength", "0X2000"),
            ],
            &offer,
            false,
        );
        assert_eq!(p.initiator_mrdsl, 65536);
        assert_eq!(r.get("MaxBurstLength"), Some("8192"));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("0xfffffffff"), None);
    }

    /// Defect 8 of issue 8: where the target is stricter than the RFC default, it proposes
    /// the key itself; the initiator's answer is applied, not answered again.
    #[test]
    fn stricter_limits_are_proposed() {
        let offer = Offer {
            max_burst_length: 131_072,
            first_burst_length: 32_768,
            immediate_data: false,
            data_none: false,
            ..Offer::default()
        };
        let mut seen = Seen::default();
        let mut p = Params::defaults(&offer);
        let mut req = TextPairs::default();
        req.push("MaxBurstLength", "262144");
        negotiate(&req, &offer, &mut p, &mut seen, false).unwrap();
        let prop = proposals(&offer, &mut seen, false);
        assert_eq!(prop.get("MaxBurstLength"), None, "already negotiated");
        assert_eq!(prop.get("FirstBurstLength"), Some("32768"));
        assert_eq!(prop.get("ImmediateData"), Some("No"));
        assert_eq!(prop.get("DataDigest"), Some("CRC32C"));
        assert!(
            proposals(&offer, &mut seen, false).0.is_empty(),
            "proposed once"
        );
        let mut answers = TextPairs::default();
        answers.push("FirstBurstLength", "32768");
        answers.push("ImmediateData", "No");
        answers.push("DataDigest", "CRC32C");
        let r = negotiate(&answers, &offer, &mut p, &mut seen, false).unwrap();
        assert!(r.0.is_empty(), "answers are not answered: {r:?}");
        assert_eq!(p.first_burst_length, 32_768);
        assert!(!p.immediate_data && p.data_digest);
        // An initiator that refuses a required digest fails the login.
        let mut seen = Seen::default();
        proposals(&offer, &mut seen, true);
        let mut refuse = TextPairs::default();
        refuse.push("DataDigest", "None");
        assert!(
            negotiate(
                &refuse,
                &offer,
                &mut Params::defaults(&offer),
                &mut seen,
                true
            )
            .is_err()
        );
    }

    #[test]
    fn first_burst_capped_by_max_burst() {
        let offer = Offer::default();
        let (_, mut p) = run(
            &[("MaxBurstLength", "8192"), ("FirstBurstLength", "65536")],
            &offer,
            false,
        );
        finish(&mut p);
        assert_eq!(p.first_burst_length, 8192);
    }
}
