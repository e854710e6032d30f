//! Packet timestamps and their RFC 3339 form.
//!
//! Formatting is written by hand rather than through a date-time crate: it runs once
//! per event on the output path, must not allocate, and needs only UTC with exactly
//! six fractional digits (the contract), which is a few lines of civil-calendar
//! arithmetic.

use std::fmt;

use serde::Serialize;

/// A packet time: nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    pub const fn from_secs_micros(secs: i64, micros: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(micros as i64 * 1_000),
        )
    }

    pub const fn as_nanos(self) -> i64 {
        self.0
    }

    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000_000)
    }

    /// The time `nanos` later (saturating).
    pub const fn add_nanos(self, nanos: i64) -> Self {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// RFC 3339 UTC with six fractional digits: `2026-11-20T14:22:10.330000Z`.
    /// Nanoseconds are truncated, never rounded.
    pub fn rfc3339(self) -> Rfc3339 {
        let secs = self.0.div_euclid(1_000_000_000);
        let micros = (self.0.rem_euclid(1_000_000_000) / 1_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let mut buf = *b"0000-00-00T00:00:00.000000Z";
        put_digits(&mut buf[0..4], year.clamp(0, 9999) as u32);
        put_digits(&mut buf[5..7], month);
        put_digits(&mut buf[8..10], day);
        put_digits(&mut buf[11..13], sod / 3600);
        put_digits(&mut buf[14..16], sod / 60 % 60);
        put_digits(&mut buf[17..19], sod % 60);
        put_digits(&mut buf[20..26], micros);
        Rfc3339(buf)
    }
}

/// A formatted timestamp; `as_str` borrows it without allocating.
#[derive(Clone, Copy)]
pub struct Rfc3339([u8; 27]);

impl Rfc3339 {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or("invalid-time")
    }
}

impl fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339().as_str())
    }
}

fn put_digits(out: &mut [u8], mut v: u32) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the era-based algorithm described by H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms").
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_digits_truncating_nanos() {
        // 2026-11-20T14:22:10Z is 1795184530 s after the epoch (date -u -d @1795184530).
        let t = Timestamp::from_nanos(1_795_184_530 * 1_000_000_000 + 330_000_999);
        assert_eq!(t.to_string(), "2026-11-20T14:22:10.330000Z");
    }

    #[test]
    fn epoch_and_leap_days() {
        assert_eq!(
            Timestamp::from_nanos(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        // 2024-02-29T23:59:59.999999Z = 1709251199 s.
        let t = Timestamp::from_secs_micros(1_709_251_199, 999_999);
        assert_eq!(t.to_string(), "2024-02-29T23:59:59.999999Z");
        // 2000-03-01T00:00:00Z = 951868800 s.
        assert_eq!(
            Timestamp::from_secs_micros(951_868_800, 0).to_string(),
            "2000-03-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn before_epoch() {
        // 1969-12-31T23:59:59.500000Z
        assert_eq!(
            Timestamp::from_nanos(-500_000_000).to_string(),
            "1969-12-31T23:59:59.500000Z"
        );
    }
}
