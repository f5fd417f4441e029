//! Byte sizes written as `"100G"`, `"512M"`, `"1T"` (binary units) or a plain integer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            None => (t, 1u64),
            Some((i, _)) => {
                let unit = t[i..].trim().trim_end_matches("iB").trim_end_matches('B');
                let m = match unit.to_ascii_uppercase().as_str() {
                    "" => 1,
                    "K" => 1 << 10,
                    "M" => 1 << 20,
                    "G" => 1 << 30,
                    "T" => 1 << 40,
                    "P" => 1 << 50,
                    _ => return Err(format!("unknown size unit in {s:?} (use K, M, G, T)")),
                };
                (&t[..i], m)
            }
        };
        let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
        n.checked_mul(mult)
            .map(Size)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, m) in [
            ("T", 1u64 << 40),
            ("G", 1 << 30),
            ("M", 1 << 20),
            ("K", 1 << 10),
        ] {
            if self.0 >= m && self.0 % m == 0 {
                return write!(f, "{}{unit}", self.0 / m);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!("1G".parse::<Size>().unwrap(), Size(1 << 30));
        assert_eq!("512M".parse::<Size>().unwrap(), Size(512 << 20));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert_eq!("2GiB".parse::<Size>().unwrap(), Size(2 << 30));
        assert!("12X".parse::<Size>().is_err());
        assert!("G".parse::<Size>().is_err());
    }

    #[test]
    fn displays_largest_exact_unit() {
        assert_eq!(Size(1 << 30).to_string(), "1G");
        assert_eq!(Size(1536 << 20).to_string(), "1536M");
        assert_eq!(Size(1000).to_string(), "1000");
    }
}
