//! Timestamps: milliseconds since the Unix epoch, UTC, formatted as RFC 3339.
//!
//! Hand-written civil-date arithmetic (Howard Hinnant's algorithms) keeps the domain free of a date crate.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A point in time, in milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Timestamp(i64);

impl Timestamp {
    /// The epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(&self) -> i64 {
        self.0
    }

    /// This time plus a (possibly negative) number of milliseconds, saturating.
    pub fn plus_millis(&self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Parses what a user types for `--since`/`--until`, relative to `now`:
    /// RFC 3339 (`2024-05-01T12:00:00Z`, offsets allowed), a date (`2024-05-01`, midnight UTC),
    /// or an age (`30s`, `15m`, `2h`, `7d`, `2w`) meaning that long before `now`.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] that shows the accepted forms.
    pub fn parse_user(s: &str, now: Timestamp) -> Result<Self, ValidationError> {
        let s = s.trim();
        if let Some(age) = parse_age_ms(s) {
            // The earliest time a timestamp can be written as (year 0000); an age reaching further back (or too large
            // to count in milliseconds) is a typo, not a filter.
            const EARLIEST_MS: i64 = -62_167_219_200_000;
            return age.and_then(|age| now.as_millis().checked_sub(age)).filter(|ms| *ms >= EARLIEST_MS).map(Self).ok_or_else(|| {
                ValidationError::new(
                    "time",
                    s,
                    "the age is out of range: it reaches back before the year 0000; use a smaller age or a date",
                )
            });
        }
        Self::parse_rfc3339(s).map_err(|_| {
            ValidationError::new("time", s, "use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or an age (30m, 2h, 7d, 2w)")
        })
    }

    /// Parses RFC 3339 or a bare `YYYY-MM-DD` date.
    ///
    /// # Errors
    /// Returns a [`ValidationError`] when the text is neither.
    pub fn parse_rfc3339(s: &str) -> Result<Self, ValidationError> {
        let bad = || ValidationError::new("timestamp", s, "expected RFC 3339 like 2024-05-01T12:00:00Z");
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Result<i64, ValidationError> {
            let t = s.get(r).ok_or_else(bad)?;
            if t.is_empty() || !t.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            t.parse::<i64>().map_err(|_| bad())
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return Err(bad());
        }
        let mut ms = days_from_civil(y, mo, d) * 86_400_000;
        if b.len() == 10 {
            return Ok(Self(ms));
        }
        if !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || sec > 60 {
            return Err(bad());
        }
        ms += (h * 3600 + mi * 60 + sec) * 1000;
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            let frac = &s[start..i.min(start + 3)];
            let scale = 10i64.pow(3 - frac.len() as u32);
            ms += frac.parse::<i64>().map_err(|_| bad())? * scale;
        }
        match &s[i..] {
            "Z" | "z" => Ok(Self(ms)),
            off if off.len() == 6 && (off.starts_with('+') || off.starts_with('-')) && &off[3..4] == ":" => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let sign = if off.starts_with('+') { 1 } else { -1 };
                Ok(Self(ms - sign * (oh * 3600 + om * 60) * 1000))
            }
            _ => Err(bad()),
        }
    }
}

/// An age like `7d`: `None` when `s` is not of that form, `Some(None)` when it is but does not fit in milliseconds.
fn parse_age_ms(s: &str) -> Option<Option<i64>> {
    let unit = s.chars().last()?;
    let per = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse::<i64>().ok().and_then(|n| n.checked_mul(per)))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let rem = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, mi, s, ms) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

impl From<Timestamp> for String {
    fn from(t: Timestamp) -> Self {
        t.to_string()
    }
}

impl TryFrom<String> for Timestamp {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse_rfc3339(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, "1970-01-01T00:00:00.000Z")]
    #[case(951_782_400_000, "2000-02-29T00:00:00.000Z")]
    #[case(1_714_564_800_123, "2024-05-01T12:00:00.123Z")]
    #[case(-1, "1969-12-31T23:59:59.999Z")]
    fn format_and_parse_round_trip(#[case] ms: i64, #[case] text: &str) {
        assert_eq!(Timestamp::from_millis(ms).to_string(), text);
        assert_eq!(Timestamp::parse_rfc3339(text).unwrap().as_millis(), ms);
    }

    #[rstest]
    #[case("2024-05-01", 1_714_521_600_000)]
    #[case("2024-05-01T12:00:00Z", 1_714_564_800_000)]
    #[case("2024-05-01T14:00:00+02:00", 1_714_564_800_000)]
    #[case("2024-05-01T12:00:00.5Z", 1_714_564_800_500)]
    #[case("1d", 1_000_000_000_000 - 86_400_000)]
    #[case("30m", 1_000_000_000_000 - 1_800_000)]
    fn user_times(#[case] s: &str, #[case] ms: i64) {
        let now = Timestamp::from_millis(1_000_000_000_000);
        assert_eq!(Timestamp::parse_user(s, now).unwrap().as_millis(), ms);
    }

    #[rstest]
    #[case("yesterday")]
    #[case("2024-13-01")]
    #[case("2023-02-29")]
    #[case("2024-05-01T25:00:00Z")]
    #[case("2024-05-01T12:00:00")]
    #[case("-5d")]
    #[case("")]
    #[case("99999999999d")]
    #[case("99999999999999999999999d")]
    #[case("9999999999999w")]
    fn bad_user_times(#[case] s: &str) {
        assert!(Timestamp::parse_user(s, Timestamp::EPOCH).is_err());
    }

    #[test]
    fn an_age_out_of_range_says_so() {
        let e = Timestamp::parse_user("99999999999d", Timestamp::from_millis(1_000_000_000_000)).unwrap_err();
        assert!(e.reason.contains("out of range"), "{e}");
        assert!(Timestamp::parse_user("700000d", Timestamp::from_millis(1_000_000_000_000)).is_ok(), "about 1900 years back");
    }
}
