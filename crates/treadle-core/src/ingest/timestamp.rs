//! Event timestamps: RFC 3339 strings and numbers of seconds, to Unix microseconds.
//!
//! RFC 3339 is parsed by hand rather than with a date crate: the layout is fixed
//! (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`), so the parser is a few dozen lines
//! with no allocation, and its exact rules (which crates differ on: lowercase `t`/`z`,
//! a space separator, `:60`, unlimited fraction digits) are ours to state and to
//! mirror in the Python reference. The property tests in this file check it against
//! an independent formatter.

/// Microseconds since the Unix epoch of an RFC 3339 date-time: `T` or `t` between date
/// and time, `Z`, `z` or `±HH:MM` at the end, any number of fraction digits (truncated
/// to microseconds). Second `60` (a leap second) is read as the first instant of the
/// next minute, as PostgreSQL reads it. Years run from 0000 to 9999.
pub(super) fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || !matches!(b[10], b'T' | b't') || [b[4], b[7], b[13], b[16]] != *b"--::" {
        return None;
    }
    let year = digits(b, 0, 4)?;
    let (month, day) = (digits(b, 5, 2)?, digits(b, 8, 2)?);
    let (hour, minute, second) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0;
    if b[at] == b'.' {
        let count = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if count == 0 {
            return None;
        }
        for i in 0..6 {
            let digit = if i < count {
                i64::from(b[at + 1 + i] - b'0')
            } else {
                0
            };
            micros = micros * 10 + digit;
        }
        at += 1 + count;
    }
    let offset = match b.get(at..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(b, at + 1, 2)?, digits(b, at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    Some(seconds * 1_000_000 + micros)
}

/// Microseconds since the Unix epoch of a JSON number of seconds (any spelling JSON
/// allows), rounded half to even; `None` unless finite. The result may be far outside
/// any sensible range: the caller checks it.
pub(super) fn seconds(literal: &str) -> Option<i128> {
    let seconds: f64 = literal.parse().ok()?;
    // `as` saturates, so an overflowing product lands far out of range, never wraps.
    seconds
        .is_finite()
        .then(|| (seconds * 1e6).round_ties_even() as i128)
}

/// The number `b[at..at + n]` spells in ASCII digits.
fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    b.get(at..at + n)?.iter().try_fold(0, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        for (text, micros) in [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01t00:00:00.000001z", 1),
            ("2000-01-01T00:00:00Z", 946_684_800_000_000),
            ("2024-02-29T12:30:45.1234569+02:00", 1_709_202_645_123_456),
            ("2024-02-29T12:30:45-00:30", 1_709_211_645_000_000),
            ("1969-12-31T23:59:59.5Z", -500_000),
            ("2016-12-31T23:59:60Z", 1_483_228_800_000_000),
            ("0000-01-01T00:00:00Z", -62_167_219_200_000_000),
            ("9999-12-31T23:59:59.999999999Z", 253_402_300_799_999_999),
        ] {
            assert_eq!(rfc3339(text), Some(micros), "{text}");
        }
    }

    #[test]
    fn refuses_what_rfc_3339_does_not_allow() {
        for text in [
            "",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1900-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-00T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:61Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00+01:60",
            "2024-01-01T00:00:00Zjunk",
            "+2024-01-01T00:00:00Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0Z",
            "2024-01-01T00:00:00,5Z",
        ] {
            assert_eq!(rfc3339(text), None, "{text:?}");
        }
    }

    #[test]
    fn numbers_of_seconds() {
        assert_eq!(seconds("1700000000"), Some(1_700_000_000_000_000));
        assert_eq!(seconds("1.000001"), Some(1_000_001));
        assert_eq!(seconds("-1.5e-6"), Some(-2));
        assert_eq!(seconds("0.0000005"), Some(0));
        assert_eq!(seconds("1e400"), None);
        assert_eq!(seconds("1e300"), Some(i128::MAX));
    }

    /// The civil date of a day count (the inverse of `days_from_civil`, written
    /// independently by counting whole years and months).
    fn civil(mut days: i64) -> (i64, i64, i64) {
        let mut year = 1970;
        let year_len = |y: i64| if days_in_month(y, 2) == 29 { 366 } else { 365 };
        while days < 0 {
            year -= 1;
            days += year_len(year);
        }
        while days >= year_len(year) {
            days -= year_len(year);
            year += 1;
        }
        let mut month = 1;
        while days >= days_in_month(year, month) {
            days -= days_in_month(year, month);
            month += 1;
        }
        (year, month, days + 1)
    }

    const FIRST: i64 = -62_167_219_200_000_000; // 0000-01-01T00:00:00Z
    const LAST: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999Z

    proptest! {
        #[test]
        fn formatted_instants_read_back(
            micros in FIRST..=LAST,
            offset in -(23 * 60 + 59)..=(23 * 60 + 59i64),
            extra in "[0-9]{0,5}",
        ) {
            let local = micros + offset * 60_000_000;
            prop_assume!((FIRST..=LAST).contains(&local));
            let (secs, frac) = (local.div_euclid(1_000_000), local.rem_euclid(1_000_000));
            let (y, mo, d) = civil(secs.div_euclid(86_400));
            let tod = secs.rem_euclid(86_400);
            let zone = match offset {
                0 => "Z".to_owned(),
                _ => format!("{}{:02}:{:02}", if offset < 0 { '-' } else { '+' }, offset.abs() / 60, offset.abs() % 60),
            };
            let text = format!(
                "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{extra}{zone}",
                tod / 3600, tod / 60 % 60, tod % 60
            );
            prop_assert_eq!(rfc3339(&text), Some(micros), "{}", text);
        }

        #[test]
        fn any_text_is_read_or_refused(text in "[0-9T:.Zz+-]{0,40}|\\PC{0,40}") {
            let _ = rfc3339(&text);
        }
    }
}
