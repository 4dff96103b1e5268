//! JSON string escapes: decoding what the agent sent, writing what PostgreSQL gets.

use super::scan::Str;

impl<'a> Str<'a> {
    /// The string's characters: `raw` itself when it has no escape, else decoded into
    /// `scratch`. `None` for an escape of a lone UTF-16 surrogate, which no UTF-8 text
    /// (and so no PostgreSQL text) can hold.
    pub(super) fn decode<'s>(&self, scratch: &'s mut String) -> Option<&'s str>
    where
        'a: 's,
    {
        if !self.escaped {
            return Some(self.raw);
        }
        scratch.clear();
        let mut rest = self.raw;
        while let Some(at) = rest.find('\\') {
            scratch.push_str(&rest[..at]);
            let escape = rest.get(at + 1..)?;
            let (ch, len) = match escape.as_bytes().first()? {
                b'u' => {
                    let high = hex4(escape.get(1..5)?)?;
                    match high {
                        0xD800..=0xDBFF => {
                            let low = escape.get(5..7).filter(|s| *s == "\\u");
                            let low = hex4(low.and(escape.get(7..11))?)?;
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return None;
                            }
                            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                            (char::from_u32(code)?, 11)
                        }
                        _ => (char::from_u32(high)?, 5),
                    }
                }
                b'b' => ('\u{8}', 1),
                b'f' => ('\u{c}', 1),
                b'n' => ('\n', 1),
                b'r' => ('\r', 1),
                b't' => ('\t', 1),
                &other => (char::from(other), 1),
            };
            scratch.push(ch);
            rest = escape.get(len..)?;
        }
        scratch.push_str(rest);
        Some(scratch)
    }

    /// Appends the string as Python's `json.dumps(s, ensure_ascii=False)` writes it. A
    /// string without escapes is already in that form (JSON forbids raw `"`, `\` and
    /// control characters), so it is copied.
    pub(super) fn write(&self, decoded: &str, out: &mut Vec<u8>) {
        out.push(b'"');
        if self.escaped {
            write_escaped(decoded, out);
        } else {
            out.extend_from_slice(self.raw.as_bytes());
        }
        out.push(b'"');
    }
}

fn hex4(digits: &str) -> Option<u32> {
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Appends `s` escaped the way Python's `json.dumps(..., ensure_ascii=False)` escapes:
/// `"`, `\` and the control characters below U+0020 (`\b`, `\f`, `\n`, `\r`, `\t`, else
/// `\u00XX` in lowercase hex); everything else as UTF-8.
fn write_escaped(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut plain = 0;
    for (at, byte) in s.bytes().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        out.extend_from_slice(&s.as_bytes()[plain..at]);
        out.push(b'\\');
        out.push(short);
        if short == b'u' {
            out.extend_from_slice(&[
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 15)],
            ]);
        }
        plain = at + 1;
    }
    out.extend_from_slice(&s.as_bytes()[plain..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(raw: &str) -> Option<String> {
        let s = Str {
            raw,
            escaped: raw.contains('\\'),
        };
        s.decode(&mut String::new()).map(str::to_owned)
    }

    #[test]
    fn decodes_escapes() {
        assert_eq!(decode("plain é").as_deref(), Some("plain é"));
        assert_eq!(
            decode(r#"a\"\\\/\b\f\n\r\t\u00e9\u0000\ud83d\ude00z"#).as_deref(),
            Some("a\"\\/\u{8}\u{c}\n\r\t\u{e9}\u{0}😀z")
        );
        for lone in [
            r"\ud800",
            r"\udc00",
            r"\ud800x",
            r"\ud800\u0041",
            r"\ud83d\ud83d",
        ] {
            assert_eq!(decode(lone), None, "{lone}");
        }
    }

    #[test]
    fn escapes_like_python() {
        let mut out = Vec::new();
        write_escaped(
            "\"\\/\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}é\u{2028}😀",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é\u{2028}😀"
        );
    }
}
