//! The identity LIO gives a storage object, derived as the kernel does (see
//! `docs/lio-identity.md`): the unit serial is the storage object's `wwn`, the NAA
//! designator is NAA 6 with the OpenFabrics company ID and the serial's hex digits,
//! vendor `LIO-ORG`, product the backstore driver's name or the object's name.

/// IEEE company ID LIO puts in its NAA 6 designators (OpenFabrics, 00-14-05).
pub const LIO_COMPANY_ID: u32 = 0x001405;

/// The T10 vendor identification LIO reports.
pub const LIO_VENDOR: &str = "LIO-ORG";

/// What an initiator saw of one LIO storage object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LioIdentity {
    /// VPD 0x80 unit serial number.
    pub serial: String,
    /// VPD 0x83 NAA designator, `naa.` + 32 hex digits.
    pub wwn: String,
    /// INQUIRY vendor identification.
    pub vendor: String,
    /// INQUIRY product identification.
    pub product: String,
}

/// The NAA 6 designator LIO builds from `serial` (`spc_gen_naa_6h_vendor_specific`):
/// `6`, the 24-bit company ID, then the first 25 hex digits of the serial (other
/// characters skipped), zero-filled when the serial has fewer.
pub fn naa_from_serial(serial: &str) -> String {
    let mut hex = format!("6{LIO_COMPANY_ID:06x}");
    hex.extend(
        serial
            .chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .take(25),
    );
    while hex.len() < 32 {
        hex.push('0');
    }
    format!("naa.{hex}")
}

/// The product identification: with `emulate_model_alias` the storage object's name
/// (cut to 15 characters, as the kernel does), else the backend's `inquiry_prod`.
pub fn product(plugin: &str, name: &str, model_alias: bool) -> String {
    if model_alias {
        return name.chars().take(15).collect();
    }
    match plugin {
        "block" | "iblock" => "IBLOCK",
        "fileio" => "FILEIO",
        _ => "RAMDISK-MCP",
    }
    .to_owned()
}

/// The identity of a storage object whose unit serial is `serial`.
pub fn lio_identity(plugin: &str, name: &str, serial: &str, model_alias: bool) -> LioIdentity {
    LioIdentity {
        serial: serial.to_owned(),
        wwn: naa_from_serial(serial),
        vendor: LIO_VENDOR.to_owned(),
        product: product(plugin, name, model_alias),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naa_follows_the_kernel() {
        // A uuid4 serial as rtslib-fb writes it: 32 hex digits, the first 25 are used.
        let s = "0b6b5c2d-6e7f-4a1b-9c3d-2e4f6a8b0c1d";
        assert_eq!(naa_from_serial(s), "naa.60014050b6b5c2d6e7f4a1b9c3d2e4f6");
        assert_eq!(naa_from_serial(s).len(), 4 + 32);
        crate::config::check_naa(&naa_from_serial(s)).unwrap();
        // Upper-case digits count; a short serial is zero-filled.
        assert_eq!(
            naa_from_serial("AB-c"),
            format!("naa.6001405abc{}", "0".repeat(22))
        );
    }

    #[test]
    fn product_is_the_driver_or_the_alias() {
        assert_eq!(product("block", "md_block0", false), "IBLOCK");
        assert_eq!(product("fileio", "vm1", false), "FILEIO");
        assert_eq!(product("ramdisk", "r", false), "RAMDISK-MCP");
        assert_eq!(
            product("fileio", "a_very_long_name_indeed", true),
            "a_very_long_nam"
        );
    }
}
