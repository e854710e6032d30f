//! CRC-16/DNP (IEEE 1815 clause 9.2.1.2): polynomial 0x3D65, reflected input and
//! output, initial value 0, final complement; sent low octet first.
//!
//! Every link header and every 16-octet data block carries one, so this runs over
//! every byte of the protocol: a table of 256 entries, one lookup per byte.

/// The polynomial 0x3D65, bit-reversed for the reflected (LSB-first) algorithm.
const POLY_REFLECTED: u16 = 0xA6BC;

const TABLE: [u16; 256] = build_table();

// Evaluated at compile time: an index out of range would fail the build, not a run.
#[allow(clippy::indexing_slicing)]
const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ POLY_REFLECTED
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// CRC-16/DNP of `data`.
pub fn crc16_dnp(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        let idx = usize::from((crc as u8) ^ b);
        // `idx` < 256: the lookup cannot miss.
        crc = (crc >> 8) ^ TABLE.get(idx).copied().unwrap_or(0);
    }
    !crc
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
