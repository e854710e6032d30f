//! CRC-16/DNP (IEEE 1815 clause 9.2.1.2): polynomial 0x3D65, reflected input and
//! output, initial value 0, final complement; sent low octet first.
//!
//! Every link header and every 16-octet data block carries one, so this runs over
//! every byte of the protocol: the `crc` crate's slice-by-16 tables take a whole
//! data block per step.

/// CRC-16/DNP from the catalogue (check value 0xEA82 over "123456789").
static DNP: crc::Crc<u16, crc::Table<16>> = crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_DNP);

/// CRC-16/DNP of `data`.
pub fn crc16_dnp(data: &[u8]) -> u16 {
    DNP.checksum(data)
}

/// Whether `block` is followed by its CRC (low octet first) in `crc`.
pub fn crc_matches(block: &[u8], crc: &[u8]) -> bool {
    match crc {
        [lo, hi] => crc16_dnp(block) == u16::from_le_bytes([*lo, *hi]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_the_catalogue() {
        // The CRC catalogue's check value of CRC-16/DNP over "123456789".
        assert_eq!(crc16_dnp(b"123456789"), 0xEA82);
    }

    #[test]
    fn known_link_header() {
        // Start 05 64, LEN 5, CTRL C0 (DIR, PRM, reset link states), DST 1, SRC 1024:
        // the header CRC on the wire is E9 21.
        let header = [0x05, 0x64, 0x05, 0xC0, 0x01, 0x00, 0x00, 0x04];
        assert_eq!(crc16_dnp(&header).to_le_bytes(), [0xE9, 0x21]);
        assert!(crc_matches(&header, &[0xE9, 0x21]));
        assert!(!crc_matches(&header, &[0x21, 0xE9]));
        assert!(!crc_matches(&header, &[0xE9]));
    }

    #[test]
    fn empty_input() {
        assert_eq!(crc16_dnp(&[]), 0xFFFF);
    }
}
