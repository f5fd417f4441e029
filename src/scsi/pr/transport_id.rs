//! iSCSI TransportIDs (SPC-4 7.6.4.6): byte 0 holds the FORMAT CODE (bits 7-6) and the
//! PROTOCOL IDENTIFIER (5, iSCSI); bytes 2-3 the ADDITIONAL LENGTH (a multiple of 4); then
//! a NUL-terminated, NUL-padded UTF-8 string: the iSCSI name (format 00b, an initiator
//! device) or `name,i,0x<ISID>` (format 01b, one initiator port).
//!
//! Parsing never trusts a length: every field is bounds-checked and a malformed TransportID
//! is INVALID FIELD IN PARAMETER LIST.

use super::state::ISID_SEP;
use crate::scsi::sense::Sense;

/// PROTOCOL IDENTIFIER of iSCSI (SPC-4 table 444).
const PROTO_ISCSI: u8 = 0x05;
/// Longest iSCSI name (RFC 7143 §4.2.7.1).
const MAX_NAME: usize = 223;

/// The TransportID of an initiator pattern: format 01b for a port name with an ISID,
/// format 00b for a bare iSCSI name. The string is padded to a multiple of 4 bytes and at
/// least 20, as SPC-4 asks.
pub(super) fn encode(initiator: &str) -> Vec<u8> {
    let format = if initiator.contains(ISID_SEP) {
        0x40
    } else {
        0
    };
    let mut name = initiator.as_bytes().to_vec();
    name.push(0);
    while name.len() % 4 != 0 || name.len() < 20 {
        name.push(0);
    }
    let mut t = vec![format | PROTO_ISCSI, 0];
    t.extend_from_slice(&(name.len() as u16).to_be_bytes());
    t.extend_from_slice(&name);
    t
}

fn bad() -> Sense {
    Sense::INVALID_FIELD_IN_PARAM
}

/// Parses the TransportID at the start of `b`: the initiator pattern it names (lowercase,
/// `name,i,0x<isid>` or `name`) and the bytes it takes.
pub(super) fn parse(b: &[u8]) -> Result<(String, usize), Sense> {
    let head = b.get(..4).ok_or_else(bad)?;
    if head[0] & 0x0f != PROTO_ISCSI {
        return Err(bad());
    }
    let format = head[0] >> 6;
    let add_len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if add_len == 0 || add_len % 4 != 0 {
        return Err(bad());
    }
    let total = 4 + add_len;
    let field = b.get(4..total).ok_or_else(bad)?;
    let end = field.iter().position(|&c| c == 0).ok_or_else(bad)?;
    let text = std::str::from_utf8(&field[..end]).map_err(|_| bad())?;
    let pattern = match format {
        0 => {
            check_name(text)?;
            text.to_ascii_lowercase()
        }
        1 => {
            let (name, isid) = split_port(text)?;
            format!(
                "{}{ISID_SEP}{}",
                name.to_ascii_lowercase(),
                isid.to_ascii_lowercase()
            )
        }
        _ => return Err(bad()),
    };
    Ok((pattern, total))
}

/// The name and ISID of `name,i,0x<12 hex digits>` (the separator in any case).
fn split_port(text: &str) -> Result<(&str, &str), Sense> {
    let at = text.to_ascii_lowercase().find(ISID_SEP).ok_or_else(bad)?;
    let (name, rest) = (&text[..at], &text[at + ISID_SEP.len()..]);
    check_name(name)?;
    if rest.len() != 12 || !rest.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((name, rest))
}

/// An iSCSI name as far as a reservation needs: non-empty, at most 223 bytes, printable,
/// no comma (the port name separator).
fn check_name(name: &str) -> Result<(), Sense> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == ',');
    if ok { Ok(()) } else { Err(bad()) }
}

/// Parses a list of TransportIDs filling `b` exactly (SPEC_I_PT).
pub(super) fn parse_list(mut b: &[u8], max: usize) -> Result<Vec<String>, Sense> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if out.len() >= max {
            return Err(crate::scsi::pr::INSUFFICIENT_REGISTRATION_RESOURCES);
        }
        let (p, used) = parse(b)?;
        out.push(p);
        b = &b[used..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_formats() {
        let port = "iqn.2005-03.org.open-iscsi:a,i,0x00023d000001";
        let t = encode(port);
        assert_eq!(t[0], 0x45);
        assert_eq!(t.len() % 4, 0);
        assert_eq!(parse(&t).unwrap(), (port.to_string(), t.len()));
        let dev = encode("iqn.2005-03.org.open-iscsi:a");
        assert_eq!(dev[0], 0x05);
        assert_eq!(dev.len(), 36);
        assert_eq!(parse(&dev).unwrap().0, "iqn.2005-03.org.open-iscsi:a");
        // Case is normalized.
        let mut up = encode("IQN.X:Y,I,0X00023D000001");
        up[0] = 0x45;
        assert_eq!(parse(&up).unwrap().0, "iqn.x:y,i,0x00023d000001");
        // A list.
        let mut l = t.clone();
        l.extend_from_slice(&dev);
        assert_eq!(parse_list(&l, 8).unwrap().len(), 2);
        assert_eq!(
            parse_list(&l, 1),
            Err(crate::scsi::pr::INSUFFICIENT_REGISTRATION_RESOURCES)
        );
    }

    #[test]
    fn malformed_transport_ids_are_refused() {
        let good = encode("iqn.a,i,0x000000000001");
        let mut cases: Vec<Vec<u8>> =
            vec![vec![], vec![0x45, 0, 0], good[..good.len() - 1].to_vec()];
        let mut fc = good.clone();
        fc[0] = 0x46; // protocol 6 (SAS), not iSCSI
        cases.push(fc);
        let mut f2 = good.clone();
        f2[0] = 0x85; // format 10b
        cases.push(f2);
        let mut odd = good.clone();
        odd[3] = 3; // not a multiple of 4
        cases.push(odd);
        let mut huge = good.clone();
        huge[2] = 0xff; // longer than the buffer
        cases.push(huge);
        let mut no_nul = vec![0x05, 0, 0, 4];
        no_nul.extend_from_slice(b"abcd");
        cases.push(no_nul);
        let mut empty = vec![0x05, 0, 0, 4];
        empty.extend_from_slice(&[0; 4]);
        cases.push(empty);
        for bad_port in [
            "iqn.a,i,0x0001",
            "iqn.a,i,0x00000000000g",
            ",i,0x000000000001",
            "iqn.a",
        ] {
            let mut t = encode(bad_port);
            t[0] = 0x45; // claim format 01b
            cases.push(t);
        }
        let mut comma = encode("iqn.a,b");
        comma[0] = 0x05;
        cases.push(comma);
        for c in cases {
            assert_eq!(parse(&c), Err(Sense::INVALID_FIELD_IN_PARAM), "{c:02x?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut b: Vec<u8> = (0..len).map(|i| (seed >> (i % 56)) as u8).collect();
            if let Some(x) = b.first_mut() {
                *x = (*x & 0xc0) | 0x05;
            }
            let _ = parse_list(&b, 16);
        }
    }
}
