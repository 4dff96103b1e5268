//! Characters written the way Python's `json.dumps(..., ensure_ascii=False)` writes them.

/// Appends `ch` as it appears inside a canonical JSON string: `"`, `\` and the control
/// characters below U+0020 escaped (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, else
/// `\u00XX` in lowercase hex), everything else as UTF-8.
pub(super) fn write_char(out: &mut Vec<u8>, ch: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match ch {
        '"' => b'"',
        '\\' => b'\\',
        '\u{8}' => b'b',
        '\u{c}' => b'f',
        '\n' => b'n',
        '\r' => b'r',
        '\t' => b't',
        '\u{0}'..='\u{1f}' => {
            let byte = ch as u8;
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
            return;
        }
        _ => {
            let mut utf8 = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
            return;
        }
    };
    out.push(b'\\');
    out.push(short);
}

#[cfg(test)]
mod tests {
    use super::write_char;

    #[test]
    fn escapes_like_python() {
        let mut out = Vec::new();
        for ch in [
            '"', '\\', '/', '\u{8}', '\u{c}', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é',
            '😀',
        ] {
            write_char(&mut out, ch);
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7f}é😀"
        );
    }
}
