//! Doubles written the way Python's `repr(float)` writes them.

use std::io::Write as _;

/// Appends the canonical form of `literal`, a JSON number with a fraction or an
/// exponent, or fails when it overflows a double.
///
/// A literal in fixed notation with at most 15 significant digits, no trailing zero in
/// its fraction (but `d.0`), and at most 3 zeros after the point before the first
/// digit is already what `repr` writes: such a decimal is the shortest that reads back
/// to its double, as two decimals of up to 15 digits never round to the same double.
/// It is copied; anything else is parsed and written again.
pub(super) fn write_number(out: &mut Vec<u8>, literal: &str) -> Option<()> {
    if is_repr(literal) {
        out.extend_from_slice(literal.as_bytes());
        return Some(());
    }
    let value: f64 = literal.parse().ok()?;
    value.is_finite().then(|| write_float(out, value))
}

/// Whether `literal` is already spelled as Python's `repr` spells its value.
fn is_repr(literal: &str) -> bool {
    let unsigned = literal.strip_prefix('-').unwrap_or(literal).as_bytes();
    let Some(point) = unsigned.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (int, frac) = (&unsigned[..point], &unsigned[point + 1..]);
    if frac.iter().any(|b| !b.is_ascii_digit()) || (frac.ends_with(b"0") && frac != b"0") {
        return false;
    }
    if int == b"0" {
        let zeros = frac.iter().take_while(|&&b| b == b'0').count();
        frac.len() - zeros <= 15 && zeros <= 3
    } else {
        int.len() + if frac == b"0" { 0 } else { frac.len() } <= 15
    }
}

/// Appends `value` (finite) as Python's `repr` writes it: the shortest digits that read
/// back to the same double, in fixed notation with at least one fractional digit when
/// the decimal point falls within 16 digits of the first digit and no more than 4 places
/// before it, else as `d.ddde±XX` with at least two exponent digits.
pub(super) fn write_float(out: &mut Vec<u8>, value: f64) {
    if value.is_sign_negative() {
        out.push(b'-');
    }
    if value == 0.0 {
        out.extend_from_slice(b"0.0");
        return;
    }
    let mut shortest = Digits::new(value, None);
    if shortest.len > 1 && short_expansion(value) {
        // `value` may lie exactly halfway between two shortest candidates, where `{:e}`
        // rounds up and Python rounds to even, as exact formatting does.
        let even = Digits::new(value, Some(shortest.len - 1));
        if even.read_back() == Some(value.abs()) {
            shortest = even;
        }
    }
    let (digits, exponent) = (shortest.digits(), shortest.exponent);
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    // Where the decimal point goes, counted in digits from the first one.
    let point = exponent + 1;
    if point <= -4 || point > 16 {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        let magnitude = exponent.unsigned_abs();
        if magnitude < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(magnitude.to_string().as_bytes());
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', point.unsigned_abs() as usize));
        out.extend_from_slice(digits);
    } else if point >= n {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(
            b'0',
            (point - n).unsigned_abs() as usize,
        ));
        out.extend_from_slice(b".0");
    } else {
        let split = point.unsigned_abs() as usize;
        out.extend_from_slice(&digits[..split]);
        out.push(b'.');
        out.extend_from_slice(&digits[split..]);
    }
}

/// The significant digits of a positive double and its decimal exponent, as `{:e}`
/// writes them: `d.ddd × 10^exponent`.
struct Digits {
    digits: [u8; 24],
    len: usize,
    exponent: i32,
}

impl Digits {
    /// The shortest digits that read back to `value`, or with `precision`, the
    /// correctly rounded (ties to even) `precision + 1` digits.
    fn new(value: f64, precision: Option<usize>) -> Self {
        // At most 17 digits (with a precision, at most 18), a point and `e-324`.
        let mut buffer = [0u8; 32];
        let mut free = &mut buffer[..];
        match precision {
            None => write!(free, "{:e}", value.abs()),
            Some(precision) => write!(free, "{:.*e}", precision, value.abs()),
        }
        .unwrap_or_else(|_| unreachable!());
        let written = 32 - free.len();
        let scientific = &buffer[..written];
        let e = scientific
            .iter()
            .position(|&b| b == b'e')
            .unwrap_or(written);
        let exponent = std::str::from_utf8(&scientific[e + 1..])
            .ok()
            .and_then(|exp| exp.parse().ok())
            .unwrap_or_else(|| unreachable!());
        let mut digits = [0u8; 24];
        let mut len = 0;
        for &b in scientific[..e].iter().filter(|&&b| b != b'.') {
            digits[len] = b;
            len += 1;
        }
        Self {
            digits,
            len,
            exponent,
        }
    }

    fn digits(&self) -> &[u8] {
        &self.digits[..self.len]
    }

    /// The double these digits read as.
    fn read_back(&self) -> Option<f64> {
        let mut text = [0u8; 40];
        let mut free = &mut text[..];
        free.write_all(self.digits()).ok()?;
        write!(
            free,
            "e{}",
            self.exponent - i32::try_from(self.len).ok()? + 1
        )
        .ok()?;
        let written = 40 - free.len();
        std::str::from_utf8(&text[..written]).ok()?.parse().ok()
    }
}

/// Whether the exact decimal value of `value` (finite, non-zero) may have at most 18
/// significant digits: only then can it lie exactly halfway between two candidates of
/// up to 17 digits. `false` is certain; `true` may be a false alarm for large values.
fn short_expansion(value: f64) -> bool {
    const LIMIT: u128 = 10u128.pow(18);
    let bits = value.abs().to_bits();
    let biased = i32::try_from(bits >> 52).unwrap_or(0);
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, exponent) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1 << 52), biased - 1075)
    };
    // value = odd × 2^exponent.
    let zeros = mantissa.trailing_zeros();
    let odd = u128::from(mantissa >> zeros);
    let exponent = exponent + i32::try_from(zeros).unwrap_or(0);
    if exponent >= 0 {
        // An integer; below 2^64 count its digits, above assume the worst.
        let Some(mut integer) = odd
            .checked_shl(exponent.unsigned_abs())
            .filter(|i| i >> 64 == 0)
        else {
            return true;
        };
        while integer % 10 == 0 {
            integer /= 10;
        }
        return integer < LIMIT;
    }
    // odd / 2^k = odd × 5^k / 10^k, and odd × 5^k has no trailing zero.
    5u128
        .checked_pow(exponent.unsigned_abs())
        .and_then(|five| five.checked_mul(odd))
        .is_some_and(|digits| digits < LIMIT)
}

#[cfg(test)]
mod tests {
    use super::{is_repr, short_expansion, write_float, write_number};

    fn repr(value: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_python_repr() {
        // Each pair is (value, repr(value)) as CPython prints it.
        for (value, expected) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-5, "2.5e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234567e16, "1.2345678901234568e+16"),
            (123456789.125, "123456789.125"),
            (1e22, "1e+22"),
            (1.5e300, "1.5e+300"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (9007199254740993.0, "9007199254740992.0"),
            (0.30000000000000004, "0.30000000000000004"),
            (1234567890123456.7, "1234567890123456.8"),
            // Exactly halfway between two shortest candidates: Python rounds to even.
            (6e14 + 0.25, "600000000000000.2"),
            (-(6e14 + 0.25), "-600000000000000.2"),
            (5e-324 * 3.0, "1.5e-323"),
        ] {
            assert_eq!(repr(value), expected, "{value:e}");
        }
    }

    #[test]
    fn short_expansions() {
        for yes in [0.5, 0.25, 6e14 + 0.25, 1e17, 123.0, 2f64.powi(70)] {
            assert!(short_expansion(yes), "{yes}");
        }
        for no in [
            0.1,
            1.0 / 3.0,
            5e-324,
            1e-10,
            f64::MIN_POSITIVE,
            2f64.powi(60),
        ] {
            assert!(!short_expansion(no), "{no}");
        }
    }

    #[test]
    fn literals_already_in_repr_form_are_copied() {
        for yes in [
            "1.0",
            "-0.0",
            "0.0",
            "12.5",
            "0.001",
            "0.0001",
            "123456789012345.0",
            "1.23456789012345",
        ] {
            assert!(is_repr(yes), "{yes}");
        }
        for no in [
            "1.50",
            "0.00001",
            "1234567890123456.0",
            "1.234567890123456",
            "1e5",
            "1.0e5",
            "0.000",
        ] {
            assert!(!is_repr(no), "{no}");
        }
        for literal in [
            "1.50",
            "0.00001",
            "1234567890123456.0",
            "1.0e5",
            "0.000",
            "2.5E-3",
            "12.5",
        ] {
            let mut out = Vec::new();
            write_number(&mut out, literal).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                repr(literal.parse().unwrap()),
                "{literal}"
            );
        }
        assert!(write_number(&mut Vec::new(), "1e400").is_none());
    }
}
