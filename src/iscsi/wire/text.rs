//! Text segments: `key=value` pairs separated by NUL (RFC 7143 §6.1).

/// Maximum length of a key name (RFC 7143 §6.1).
pub const MAX_KEY_LEN: usize = 63;

/// An ordered list of `key=value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextPairs(pub Vec<(String, String)>);

/// Why a text segment is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// A pair without `=`.
    #[error("text pair without '=': {0:?}")]
    NoEquals(String),
    /// A key longer than 63 bytes or empty.
    #[error("bad key name {0:?}")]
    BadKey(String),
    /// The same key twice in one segment.
    #[error("key {0} sent twice")]
    Duplicate(String),
    /// Not UTF-8.
    #[error("text segment is not UTF-8")]
    NotUtf8,
}

impl TextPairs {
    /// Parses a data segment (trailing NULs and padding allowed). Linear in the number of
    /// pairs (an unauthenticated peer can send thousands in one PDU).
    pub fn parse(data: &[u8]) -> Result<Self, TextError> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for item in data.split(|&b| b == 0) {
            if item.is_empty() {
                continue;
            }
            let s = std::str::from_utf8(item).map_err(|_| TextError::NotUtf8)?;
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| TextError::NoEquals(s.to_string()))?;
            if k.is_empty() || k.len() > MAX_KEY_LEN {
                return Err(TextError::BadKey(k.to_string()));
            }
            if !seen.insert(k) {
                return Err(TextError::Duplicate(k.to_string()));
            }
            out.push((k.to_string(), v.to_string()));
        }
        Ok(TextPairs(out))
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Appends a pair.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.push((key.into(), value.into()));
    }

    /// Encodes as `key=value\0...`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            out.extend_from_slice(k.as_bytes());
            out.push(b'=');
            out.extend_from_slice(v.as_bytes());
            out.push(0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        let raw = b"InitiatorName=iqn.x:y\0SessionType=Normal\0\0\0";
        let p = TextPairs::parse(raw).unwrap();
        assert_eq!(p.get("SessionType"), Some("Normal"));
        assert_eq!(p.encode(), raw[..raw.len() - 2].to_vec());
    }

    /// Defect 7 of issue 8: keys in one segment parse in linear time: four times the keys
    /// take about four times as long, not sixteen (timed as a ratio, so a loaded machine
    /// does not matter; 32000 keys fit in one 256 KiB segment).
    #[test]
    fn many_keys_parse_in_linear_time() {
        let seg = |n: usize| {
            let mut raw = Vec::new();
            for i in 0..n {
                raw.extend_from_slice(format!("X-k{i}=v\0").as_bytes());
            }
            raw
        };
        let time = |raw: &[u8]| {
            (0..3)
                .map(|_| {
                    let t0 = std::time::Instant::now();
                    assert!(TextPairs::parse(raw).is_ok());
                    t0.elapsed()
                })
                .min()
                .unwrap()
        };
        let (small, large) = (seg(8_000), seg(32_000));
        let (ts, tl) = (time(&small), time(&large));
        assert!(
            tl < ts * 9 + std::time::Duration::from_millis(20),
            "8000 keys {ts:?}, 32000 keys {tl:?}: not linear"
        );
    }

    #[test]
    fn rejects_malformed() {
        assert!(matches!(
            TextPairs::parse(b"novalue\0"),
            Err(TextError::NoEquals(_))
        ));
        assert!(matches!(
            TextPairs::parse(b"a=1\0a=2\0"),
            Err(TextError::Duplicate(_))
        ));
        assert!(matches!(
            TextPairs::parse(b"=1\0"),
            Err(TextError::BadKey(_))
        ));
        assert!(matches!(
            TextPairs::parse(&[b'a', b'=', 0xff, 0]),
            Err(TextError::NotUtf8)
        ));
    }
}
