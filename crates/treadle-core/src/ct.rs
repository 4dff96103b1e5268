//! Constant-time comparison.

use subtle::ConstantTimeEq as _;

/// Whether `a == b`, taking time independent of where they differ.
///
/// The lengths are not secret: slices of different lengths compare unequal at once.
///
/// ```
/// assert!(treadle_core::constant_time_eq(b"tag", b"tag"));
/// assert!(!treadle_core::constant_time_eq(b"tag", b"taG"));
/// ```
#[must_use]
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares_contents_and_lengths() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
