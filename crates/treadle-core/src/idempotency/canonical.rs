//! The canonical form of a JSON document (see the [module docs](super)), written in one
//! pass over the input.

use std::borrow::Cow;

use super::float::write_number;
use super::string::write_char;
use super::{MAX_DEPTH, MAX_INT_DIGITS};

/// The canonical form of `body`, or `None` when `body` is not a JSON document the form
/// covers (see the [module docs](super)); such a body is fingerprinted raw.
///
/// ```
/// use treadle_core::idempotency::canonical_json;
///
/// let canonical = canonical_json(b"{\"z\": [1, 2.50, -0], \"a\": \"\\/\"}");
/// assert_eq!(canonical.as_deref(), Some(&b"{\"a\":\"/\",\"z\":[1,2.5,0]}"[..]));
/// assert_eq!(canonical_json(b"{\"a\": NaN}"), None);
/// ```
#[must_use]
pub fn canonical_json(body: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(body).ok()?;
    let mut writer = Writer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        out: Vec::with_capacity(body.len()),
        members: Vec::new(),
        scratch: Vec::new(),
    };
    writer.value(0)?;
    writer.skip_whitespace();
    (writer.pos == writer.bytes.len()).then_some(writer.out)
}

/// The bytes that end a run of plain characters in a string: `"`, `\` and the control
/// characters (which may not appear raw).
const STOP: [bool; 256] = {
    let mut stop = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stop[b] = true;
        b += 1;
    }
    stop[b'"' as usize] = true;
    stop[b'\\' as usize] = true;
    stop
};

/// Reads JSON from `text` and writes its canonical form to `out` as it goes. Arrays and
/// scalars are written in place; an object's members are written in document order and
/// moved into key order afterwards, only when they were not in it already.
struct Writer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<u8>,
    /// The members of the objects being written, innermost last.
    members: Vec<Member<'a>>,
    /// Room to reorder an object's members.
    scratch: Vec<u8>,
}

/// One written object member: its decoded key, and where `"key":value` sits in `out`.
struct Member<'a> {
    key: Cow<'a, str>,
    start: usize,
    end: usize,
}

impl<'a> Writer<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Consumes `byte` after optional whitespace, or fails.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        self.skip_whitespace();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string(false).map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.pos..].starts_with(word).then(|| {
            self.pos += word.len();
            self.out.extend_from_slice(word);
        })
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        self.out.push(b'[');
        self.skip_whitespace();
        if self.peek()? != b']' {
            loop {
                self.value(depth)?;
                self.skip_whitespace();
                match self.peek()? {
                    b',' => self.out.push(b','),
                    b']' => break,
                    _ => return None,
                }
                self.pos += 1;
            }
        }
        self.pos += 1;
        self.out.push(b']');
        Some(())
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.pos += 1;
        let open = self.out.len();
        self.out.push(b'{');
        let base = self.members.len();
        let mut sorted = true;
        self.skip_whitespace();
        if self.peek()? != b'}' {
            loop {
                self.skip_whitespace();
                if self.peek()? != b'"' {
                    return None;
                }
                if self.members.len() > base {
                    self.out.push(b',');
                }
                let start = self.out.len();
                let key = self.string(true)?;
                self.expect(b':')?;
                self.out.push(b':');
                self.value(depth)?;
                if self.members.len() > base {
                    // Out of order, or a duplicate: reorder at the end.
                    sorted &= less(&self.members[self.members.len() - 1].key, &key);
                }
                let end = self.out.len();
                self.members.push(Member { key, start, end });
                self.skip_whitespace();
                match self.peek()? {
                    b',' => self.pos += 1,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.pos += 1;
        if !sorted {
            self.reorder(open + 1, base);
        }
        self.members.truncate(base);
        self.out.push(b'}');
        Some(())
    }

    /// Rewrites the members from `base` on, which start at `out[from]`, in key order;
    /// of equal keys only the last is kept.
    fn reorder(&mut self, from: usize, base: usize) {
        let Self {
            out,
            members,
            scratch,
            ..
        } = self;
        let members = &mut members[base..];
        // Stable: among equal keys the last one stays last.
        members.sort_by(|a, b| a.key.cmp(&b.key));
        scratch.clear();
        scratch.extend_from_slice(&out[from..]);
        out.truncate(from);
        let mut first = true;
        for (i, member) in members.iter().enumerate() {
            if members
                .get(i + 1)
                .is_some_and(|next| next.key == member.key)
            {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&scratch[member.start - from..member.end - from]);
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_digits = match self.peek()? {
            b'0' => {
                self.pos += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            float = true;
        }
        let literal = &self.text[start..self.pos];
        if float {
            write_number(&mut self.out, literal)
        } else if int_digits > MAX_INT_DIGITS {
            None
        } else {
            let literal = if literal == "-0" { "0" } else { literal };
            self.out.extend_from_slice(literal.as_bytes());
            Some(())
        }
    }

    /// Reads the string at the opening quote and writes it canonically; returns it
    /// decoded when `decode` (for keys), else empty.
    fn string(&mut self, decode: bool) -> Option<Cow<'a, str>> {
        self.pos += 1;
        self.out.push(b'"');
        let start = self.pos;
        self.skip_plain();
        match self.peek()? {
            b'"' => {
                let raw = &self.text[start..self.pos];
                self.pos += 1;
                // Unescaped, a JSON string holds nothing the canonical form escapes.
                self.out.extend_from_slice(raw.as_bytes());
                self.out.push(b'"');
                return Some(Cow::Borrowed(if decode { raw } else { "" }));
            }
            b'\\' => {}
            _ => return None,
        }
        let mut decoded = String::new();
        let mut run = start;
        loop {
            self.skip_plain();
            let raw = &self.text[run..self.pos];
            self.out.extend_from_slice(raw.as_bytes());
            if decode {
                decoded.push_str(raw);
            }
            match self.peek()? {
                b'"' => break,
                b'\\' => {
                    self.pos += 1;
                    let ch = self.escape()?;
                    write_char(&mut self.out, ch);
                    if decode {
                        decoded.push(ch);
                    }
                    run = self.pos;
                }
                _ => return None,
            }
        }
        self.pos += 1;
        self.out.push(b'"');
        Some(Cow::Owned(decoded))
    }

    /// Moves to the next byte that ends a run of plain string characters, or the end.
    fn skip_plain(&mut self) {
        self.pos += self.bytes[self.pos..]
            .iter()
            .position(|&b| STOP[usize::from(b)])
            .unwrap_or(self.bytes.len() - self.pos);
    }

    /// Decodes one escape whose backslash is consumed.
    fn escape(&mut self) -> Option<char> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => match self.hex4()? {
                high @ 0xd800..=0xdbff => {
                    if !self.bytes[self.pos..].starts_with(b"\\u") {
                        return None;
                    }
                    self.pos += 2;
                    let low = self.hex4()?;
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return None;
                    }
                    char::from_u32(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))?
                }
                unit => char::from_u32(unit)?,
            },
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut unit = 0;
        for &d in digits {
            unit = unit * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        Some(unit)
    }
}

/// `a < b` by code point (UTF-8 byte order), inline: keys are short, and a call to
/// `memcmp` per member costs more than the comparison.
fn less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(body: &str) -> String {
        String::from_utf8(canonical_json(body.as_bytes()).expect(body)).unwrap()
    }

    #[test]
    fn table() {
        for (body, expected) in [
            ("{}", "{}"),
            (" [ ] ", "[]"),
            ("\"\"", "\"\""),
            ("-0", "0"),
            ("1.0", "1.0"),
            ("1", "1"),
            ("10e-1", "1.0"),
            ("1E+2", "100.0"),
            ("0.10000000000000001", "0.1"),
            ("[1 , {\"b\" : [ ] }, -2.50]", "[1,{\"b\":[]},-2.5]"),
            ("{\"b\":1,\"a\":2,\"b\":3}", "{\"a\":2,\"b\":3}"),
            ("{\"a\":1,\"a\":2}", "{\"a\":2}"),
            (
                "{\"a\":{\"d\":[{\"z\":1,\"y\":2}],\"c\":null}}",
                "{\"a\":{\"c\":null,\"d\":[{\"y\":2,\"z\":1}]}}",
            ),
            (
                "\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\\\/\"",
                "\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\"",
            ),
            ("\"\\u007f\\u2028\\u00E9😀\"", "\"\u{7f}\u{2028}é😀\""),
            ("\"\\ud83d\\ude00\"", "\"😀\""),
            // Keys sort by code point: "Z" < "a" < "é" < "😀"; escapes decode first.
            (
                "{\"😀\":0,\"\\u00e9\":0,\"a\":0,\"Z\":0}",
                "{\"Z\":0,\"a\":0,\"é\":0,\"😀\":0}",
            ),
            (
                "{\"\\n\":1,\"A\":2,\"\\\\\":3}",
                "{\"\\n\":1,\"A\":2,\"\\\\\":3}",
            ),
            (
                "{\"b\":{\"y\":1,\"x\":2},\"a\":{\"d\":1,\"c\":[{\"f\":1,\"e\":2}]}}",
                "{\"a\":{\"c\":[{\"e\":2,\"f\":1}],\"d\":1},\"b\":{\"x\":2,\"y\":1}}",
            ),
        ] {
            assert_eq!(canonical(body), expected, "{body}");
        }
    }

    #[test]
    fn refuses_what_python_refuses_or_the_form_does_not_cover() {
        for bad in [
            "",
            " ",
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "{1:2}",
            "{\"a\" 1}",
            "'a'",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "tru",
            "nul",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "[1]x",
            "\u{feff}1",
            "\u{a0}1",
            "\"\\U0041\"",
            "[",
            "{",
            "{\"a\"",
            "{\"a\":",
            "\"abc",
            "[1,",
            "{\"a\":1 \"b\":2}",
        ] {
            assert_eq!(canonical_json(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(canonical_json(b"\"\xff\""), None);
        assert_eq!(canonical_json(b"\xef\xbb\xbf{}"), None);
    }

    #[test]
    fn depth_and_integer_limits() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(canonical(&nested(MAX_DEPTH)), nested(MAX_DEPTH));
        assert_eq!(canonical_json(nested(MAX_DEPTH + 1).as_bytes()), None);
        assert_eq!(canonical_json(nested(100_000).as_bytes()), None);
        let objects = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
        assert!(canonical_json(objects(MAX_DEPTH).as_bytes()).is_some());
        assert!(canonical_json(objects(MAX_DEPTH + 1).as_bytes()).is_none());
        let digits = "7".repeat(MAX_INT_DIGITS);
        assert_eq!(canonical(&digits), digits);
        assert_eq!(canonical(&format!("-{digits}")), format!("-{digits}"));
        assert!(canonical_json(format!("{digits}7").as_bytes()).is_none());
        assert!(canonical_json(format!("0.{digits}7").as_bytes()).is_some());
        assert!(canonical_json(format!("{digits}7.0").as_bytes()).is_none());
    }
}
