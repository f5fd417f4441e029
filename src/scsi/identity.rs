//! What initiators remember a logical unit by: unit serial number (VPD 0x80), NAA designator
//! (VPD 0x83) and the INQUIRY vendor and product strings.

use std::fmt;

/// Vendor identification when none is pinned (8 bytes, INQUIRY and T10 vendor ID).
pub const DEFAULT_VENDOR: &str = "RUSTISCS";
/// Product identification when none is pinned (16 bytes, space padded in INQUIRY).
pub const DEFAULT_PRODUCT: &str = "VIRTUAL-DISK";

/// An NAA designator (SPC-4 7.8.6.6): 8 bytes for NAA types 2 (IEEE Extended), 3 (Locally
/// Assigned) and 5 (IEEE Registered), 16 bytes for type 6 (IEEE Registered Extended, what
/// LIO presents). The type is the top nibble of the first byte.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Naa {
    bytes: [u8; 16],
    len: u8,
}

impl Naa {
    /// The designator from its bytes, if the length fits the NAA type (2, 3, 5: 8 bytes;
    /// 6: 16 bytes).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let ok = matches!(
            (b.len(), b.first().map(|x| x >> 4)),
            (8, Some(2 | 3 | 5)) | (16, Some(6))
        );
        ok.then(|| {
            let mut bytes = [0u8; 16];
            bytes[..b.len()].copy_from_slice(b);
            Naa {
                bytes,
                len: b.len() as u8,
            }
        })
    }

    /// Parses `naa.<hex>` (the config's `wwn` form), `0x<hex>` (the identity file's form) or
    /// bare hex, 16 or 32 digits.
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s
            .strip_prefix("naa.")
            .or_else(|| s.strip_prefix("0x"))
            .unwrap_or(s);
        if hex.len() != 16 && hex.len() != 32 {
            return None;
        }
        Self::from_bytes(&hex::decode(hex).ok()?)
    }

    /// The designator bytes (8 or 16).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The NAA type (top nibble).
    pub fn naa_type(&self) -> u8 {
        self.bytes[0] >> 4
    }
}

impl From<u64> for Naa {
    /// An 8-byte designator (the identity file's historic form); the caller vouches for the
    /// type nibble.
    fn from(v: u64) -> Self {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&v.to_be_bytes());
        Naa { bytes, len: 8 }
    }
}

impl fmt::LowerHex for Naa {
    /// The designator bytes in hex (16 or 32 digits), without prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Display for Naa {
    /// `naa.<hex>`, the form of the config's `wwn` key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "naa.{self:x}")
    }
}

impl fmt::Debug for Naa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Stable identity of a logical unit, kept in the state dir by the registry (pinned values
/// from the config win over stored ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LunIdentity {
    /// Unit serial number (VPD 0x80), printable ASCII.
    pub serial: String,
    /// NAA designator (VPD 0x83).
    pub naa: Naa,
    /// Pinned T10 vendor identification (at most 8 characters); None: [`DEFAULT_VENDOR`].
    pub vendor: Option<String>,
    /// Pinned product identification (at most 16 characters); None: [`DEFAULT_PRODUCT`].
    /// When set, the T10 vendor ID designator takes LIO's layout (vendor, product `:`
    /// serial), so a disk pinned to a LIO identity presents LIO's designator set.
    pub product: Option<String>,
}

fn padded<const N: usize>(s: &str) -> [u8; N] {
    let mut b = [b' '; N];
    for (d, c) in b.iter_mut().zip(s.bytes()) {
        *d = c;
    }
    b
}

/// The 8-byte INQUIRY vendor field for `vendor` ([`DEFAULT_VENDOR`] when None).
pub fn vendor_field(vendor: Option<&str>) -> [u8; 8] {
    padded(vendor.unwrap_or(DEFAULT_VENDOR))
}

/// The 16-byte INQUIRY product field for `product` ([`DEFAULT_PRODUCT`] when None).
pub fn product_field(product: Option<&str>) -> [u8; 16] {
    padded(product.unwrap_or(DEFAULT_PRODUCT))
}

impl LunIdentity {
    /// An identity with the default vendor and product strings.
    pub fn new(serial: impl Into<String>, naa: impl Into<Naa>) -> Self {
        LunIdentity {
            serial: serial.into(),
            naa: naa.into(),
            vendor: None,
            product: None,
        }
    }

    /// The 8-byte vendor field of INQUIRY (space padded).
    pub fn vendor_field(&self) -> [u8; 8] {
        vendor_field(self.vendor.as_deref())
    }

    /// The 16-byte product field of INQUIRY (space padded).
    pub fn product_field(&self) -> [u8; 16] {
        product_field(self.product.as_deref())
    }

    /// The identifier of the T10 vendor ID designator (VPD 0x83, designator type 1): the
    /// vendor field, then the serial; with a pinned product, LIO's layout (vendor field,
    /// `product:serial`, a NUL). At most 255 bytes.
    pub fn t10_vendor_id(&self) -> Vec<u8> {
        let mut d = self.vendor_field().to_vec();
        match &self.product {
            Some(p) => {
                d.extend_from_slice(p.as_bytes());
                d.push(b':');
                d.extend_from_slice(self.serial.as_bytes());
                d.truncate(254);
                d.push(0);
            }
            None => {
                d.extend_from_slice(self.serial.as_bytes());
                d.truncate(255);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_forms() {
        let a = Naa::parse("naa.3000123456789abc").unwrap();
        assert_eq!(a, Naa::from(0x3000_1234_5678_9abc));
        assert_eq!(Naa::parse("0x3000123456789abc"), Some(a));
        assert_eq!(format!("{a:016x}"), "3000123456789abc");
        assert_eq!(a.to_string(), "naa.3000123456789abc");
        let b = Naa::parse("naa.6001405a1b2c3d4e5f60718293a4b5c6").unwrap();
        assert_eq!(b.as_bytes().len(), 16);
        assert_eq!(b.naa_type(), 6);
        // Type and length must agree.
        assert_eq!(Naa::parse("naa.6000000000000001"), None);
        assert_eq!(Naa::parse("naa.30014050000000000000000000000000"), None);
        assert_eq!(Naa::parse("naa.30"), None);
        assert_eq!(Naa::parse("naa.zz00000000000000"), None);
    }

    #[test]
    fn t10_layouts() {
        let mut id = LunIdentity::new("SER1", 0x3000_0000_0000_0001u64);
        assert_eq!(id.t10_vendor_id(), b"RUSTISCSSER1".to_vec());
        assert_eq!(&id.product_field(), b"VIRTUAL-DISK    ");
        id.vendor = Some("LIO-ORG".into());
        id.product = Some("IBLOCK".into());
        assert_eq!(id.t10_vendor_id(), b"LIO-ORG IBLOCK:SER1\0".to_vec());
        assert_eq!(&id.vendor_field(), b"LIO-ORG ");
    }
}
