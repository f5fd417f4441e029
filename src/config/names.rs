//! Name rules: iSCSI node names (RFC 3720 §3.2.6, RFC 7143 §4.2.7) and backstore names.

/// Longest iSCSI name, in bytes of UTF-8 (RFC 7143 §4.2.7.1).
pub const MAX_ISCSI_NAME_LEN: usize = 223;

/// Checks an iSCSI node name (target or initiator) and says what is wrong with it.
///
/// Accepted forms, all lowercase (iSCSI names are case-insensitive and compared in their
/// normalized, lowercase form, so the configuration must hold that form):
/// - `iqn.YYYY-MM.reversed.domain[:anything]`, e.g. `iqn.2026-11.org.example.nas:storage`;
/// - `eui.` followed by 16 hex digits;
/// - `naa.` followed by 16 or 32 hex digits.
///
/// Only `a-z`, `0-9`, `-`, `.` and `:` are allowed (plus non-ASCII letters and digits that
/// have no uppercase form); every other ASCII punctuation and all whitespace is refused.
/// The whole name is at most [`MAX_ISCSI_NAME_LEN`] bytes.
pub fn check_iscsi_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an iSCSI name cannot be empty".into());
    }
    if name.len() > MAX_ISCSI_NAME_LEN {
        return Err(format!(
            "iSCSI name is {} bytes long; the limit is {MAX_ISCSI_NAME_LEN}",
            name.len()
        ));
    }
    if name.chars().any(char::is_uppercase) {
        return Err(format!(
            "iSCSI names must be lowercase (they are compared case-insensitively); write {:?}",
            name.to_lowercase()
        ));
    }
    if let Some(c) = name.chars().find(|&c| !name_char_ok(c)) {
        return Err(format!(
            "character {c:?} is not allowed in an iSCSI name (use a-z, 0-9, '-', '.', ':')"
        ));
    }
    if let Some(rest) = name.strip_prefix("iqn.") {
        check_iqn(rest)
    } else if let Some(hex) = name.strip_prefix("eui.") {
        if hex.len() == 16 && is_hex(hex) {
            Ok(())
        } else {
            Err("an eui. name is \"eui.\" followed by exactly 16 hex digits".into())
        }
    } else if let Some(hex) = name.strip_prefix("naa.") {
        if (hex.len() == 16 || hex.len() == 32) && is_hex(hex) {
            Ok(())
        } else {
            Err("a naa. name is \"naa.\" followed by 16 or 32 hex digits".into())
        }
    } else {
        Err("an iSCSI name starts with \"iqn.\", \"eui.\" or \"naa.\" \
             (e.g. iqn.2026-11.org.example:storage)"
            .into())
    }
}

/// The part after `iqn.`: `YYYY-MM.reversed.domain[:anything]`.
fn check_iqn(rest: &str) -> Result<(), String> {
    const FORM: &str = "an iqn. name is iqn.YYYY-MM.reversed.domain[:anything], \
                        e.g. iqn.2026-11.org.example:storage";
    let b = rest.as_bytes();
    let date_ok = b.len() >= 7
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit);
    if !date_ok {
        return Err(format!("missing the YYYY-MM date: {FORM}"));
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    if month > 19 {
        return Err(format!("month {month:02} in the date is not 01..12"));
    }
    let Some(after) = rest[7..].strip_prefix('.') else {
        return Err(format!(
            "the date must be followed by '.' and a domain: {FORM}"
        ));
    };
    let domain = after.split(':').next().unwrap_or_default();
    if domain.is_empty() {
        return Err(format!("missing the reversed domain name: {FORM}"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(format!("empty label in the domain {domain:?}"));
        }
        if !label
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            return Err(format!(
                "domain label {label:?} may only hold a-z, 0-9 and '-'"
            ));
        }
    }
    Ok(())
}

/// What is wrong with a name that [`check_iscsi_name`] accepts because LIO (rtslib-fb's
/// `iqn\.[0-9]{4}-[0-1][0-9]\.` pattern) accepts it, although RFC 3720 does not: a month
/// of 00 or 13..19. `None` for a name without such a flaw.
pub fn iscsi_name_warning(name: &str) -> Option<String> {
    let rest = name.strip_prefix("iqn.")?;
    let b = rest.as_bytes();
    if b.len() < 7 || !b[5].is_ascii_digit() || !b[6].is_ascii_digit() {
        return None;
    }
    let month = (b[5] - b'0') * 10 + (b[6] - b'0');
    (!(1..=12).contains(&month)).then(|| {
        format!(
            "month {month:02} in the date is not 01..12 (RFC 3720); accepted because LIO \
             accepts it, but initiators may refuse the name"
        )
    })
}

fn name_char_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':')
    } else {
        c.is_alphanumeric() && !c.is_uppercase()
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// Checks a backstore name: non-empty, only `A-Z a-z 0-9 _ . -`.
pub fn check_backstore_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a backstore name cannot be empty".into());
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "character {c:?} is not allowed in a backstore name (use A-Z, a-z, 0-9, '_', '.', '-')"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for n in [
            "iqn.2026-11.org.example.nas:storage",
            "iqn.2005-03.org.open-iscsi:0123456789ab",
            "iqn.1991-05.com.microsoft:host.corp.example",
            "iqn.2004-10.com.ubuntu:01:ab12cd34ef",
            "iqn.2026-01.org.example",
            "eui.02004567a425678d",
            "naa.52004567ba64678d",
            "naa.62004567ba64678d0123456789abcdef",
        ] {
            assert_eq!(check_iscsi_name(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        for (n, why) in [
            ("", "empty"),
            ("iqn.2026-11.org.Example:t", "lowercase"),
            ("IQN.2026-11.org.example:t", "lowercase"),
            ("iqn.26-11.org.example:t", "YYYY-MM"),
            ("iqn.2026-20.org.example:t", "month 20"),
            ("iqn.2026-99.org.example:t", "month 99"),
            ("iqn.2026-11:t", "followed by '.'"),
            ("iqn.2026-11.:t", "reversed domain"),
            ("iqn.2026-11.org..example:t", "empty label"),
            ("iqn.2026-11.org.example:my disk", "' '"),
            ("iqn.2026-11.org.exa_mple:t", "'_'"),
            ("eui.02004567a425678", "16 hex"),
            ("eui.02004567a425678g", "16 hex"),
            ("naa.0123456789abcdef01", "16 or 32"),
            ("target1", "starts with"),
        ] {
            let e = check_iscsi_name(n).expect_err(n);
            assert!(e.contains(why), "{n}: {e}");
        }
        let long = format!("iqn.2026-11.org.example:{}", "x".repeat(200));
        assert!(check_iscsi_name(&long).unwrap_err().contains("223"));
        let max = format!("iqn.2026-11.org.example:{}", "x".repeat(223 - 24));
        assert_eq!(max.len(), 223);
        assert_eq!(check_iscsi_name(&max), Ok(()));
    }

    #[test]
    fn lio_accepted_months_warn() {
        for n in ["iqn.2026-00.org.example:t", "iqn.2003-17.org.example:t"] {
            assert_eq!(check_iscsi_name(n), Ok(()), "{n}");
            assert!(
                iscsi_name_warning(n).unwrap().contains("LIO accepts it"),
                "{n}"
            );
        }
        assert_eq!(iscsi_name_warning("iqn.2026-11.org.example:t"), None);
        assert_eq!(iscsi_name_warning("eui.02004567a425678d"), None);
    }

    #[test]
    fn backstore_names() {
        assert_eq!(check_backstore_name("vm1_disk-0.img"), Ok(()));
        assert!(check_backstore_name("").is_err());
        assert!(check_backstore_name("a b").is_err());
        assert!(check_backstore_name("a/b").is_err());
    }
}
