//! Fixed-width reads in a file's byte order, never panicking on short input.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endian {
    Little,
    Big,
}

impl Endian {
    /// The `u16` at `at`, or `None` past the end of `b`.
    pub(crate) fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let raw: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(raw),
            Endian::Big => u16::from_be_bytes(raw),
        })
    }

    /// The `u32` at `at`, or `None` past the end of `b`.
    pub(crate) fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(raw),
            Endian::Big => u32::from_be_bytes(raw),
        })
    }

    /// The `u64` at `at`, or `None` past the end of `b`.
    pub(crate) fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let raw: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(raw),
            Endian::Big => u64::from_be_bytes(raw),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_orders_and_refuses_short_input() {
        let b = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        assert_eq!(Endian::Little.u16(&b, 0), Some(0x0201));
        assert_eq!(Endian::Big.u16(&b, 0), Some(0x0102));
        assert_eq!(Endian::Little.u32(&b, 4), Some(0x0807_0605));
        assert_eq!(Endian::Big.u32(&b, 4), Some(0x0506_0708));
        assert_eq!(Endian::Big.u64(&b, 0), Some(0x0102_0304_0506_0708));
        assert_eq!(Endian::Little.u32(&b, 5), None);
        assert_eq!(Endian::Little.u64(&b, 1), None);
        assert_eq!(Endian::Big.u16(&b, usize::MAX), None);
    }
}
