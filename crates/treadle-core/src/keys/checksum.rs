//! CRC-32 (IEEE) and fixed-width base62, the pieces of an API key's checksum.

/// The base62 digits, in value order.
pub(crate) const BASE62: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Base62 digits needed for any `u32`: 62^6 > 2^32.
pub(crate) const CHECKSUM_LEN: usize = 6;

const TABLE: [u32; 256] = table();

const fn table() -> [u32; 256] {
    let mut table = [0_u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
}

/// CRC-32/ISO-HDLC (zlib's `crc32`). It catches every change confined to 32 consecutive
/// bits, so every single-character change in a key.
pub(crate) fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0_u32;
    for byte in parts.iter().flat_map(|part| part.iter()) {
        crc = TABLE[((crc ^ u32::from(*byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `value` as exactly [`CHECKSUM_LEN`] base62 digits, most significant first.
pub(crate) fn encode(mut value: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [BASE62[0]; CHECKSUM_LEN];
    for digit in out.iter_mut().rev() {
        *digit = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// The value of [`CHECKSUM_LEN`] base62 digits, if they are digits and fit a `u32`.
pub(crate) fn decode(digits: &[u8]) -> Option<u32> {
    if digits.len() != CHECKSUM_LEN {
        return None;
    }
    let mut value = 0_u64;
    for &c in digits {
        value = value * 62 + u64::from(digit(c)?);
    }
    u32::try_from(value).ok()
}

/// The value of one base62 digit.
pub(crate) const fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
    }

    #[test]
    fn base62_round_trips_at_the_edges() {
        for value in [0, 1, 61, 62, 0xCBF4_3926, u32::MAX] {
            assert_eq!(decode(&encode(value)), Some(value));
        }
        assert_eq!(&encode(0), b"000000");
        assert_eq!(&encode(61), b"00000z");
        assert_eq!(decode(b"zzzzzz"), None);
        assert_eq!(decode(b"00000_"), None);
        assert_eq!(decode(b"00000"), None);
        for (at, &c) in BASE62.iter().enumerate() {
            assert_eq!(digit(c), Some(at as u8));
        }
    }
}
