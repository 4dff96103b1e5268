//! A cursor over JSON text that serde_json has already validated.
//!
//! serde_json checks the syntax once (and gives each event's span); this cursor then
//! walks the event without checking anything again and without allocating, which is
//! what makes one pass of validation plus one of extraction cheaper than building a
//! tree of borrowed values. Fed text that is not valid JSON it may return nonsense,
//! but it never panics: every index is checked.

/// A JSON string as it appears in the text.
#[derive(Debug, Clone, Copy)]
pub(super) struct Str<'a> {
    /// The characters between the quotes, escapes still escaped.
    pub(super) raw: &'a str,
    /// Whether `raw` holds a backslash, so needs decoding (see [`super::text`]).
    pub(super) escaped: bool,
}

/// One JSON value, containers summarised by how deeply they nest.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Str(Str<'a>),
    /// A number's literal, exactly as written.
    Number(&'a str),
    /// `true`, `false` or `null`, as written.
    Literal(&'a str),
    /// An array or object; `depth` is 1 for `[]` or `{"a":1}`, 2 for `[[]]`, and so on.
    Container {
        depth: usize,
    },
}

pub(super) struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn byte(&self) -> u8 {
        self.text.as_bytes().get(self.pos).copied().unwrap_or(0)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.byte(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    /// The first byte of the next value, after whitespace (0 at the end).
    pub(super) fn peek(&mut self) -> u8 {
        self.skip_whitespace();
        self.byte()
    }

    /// Steps into the object whose `{` is next.
    pub(super) fn enter_object(&mut self) {
        self.skip_whitespace();
        self.pos += 1;
    }

    /// The next key of the object being walked, leaving the cursor on its value; `None`
    /// after its closing `}`.
    pub(super) fn next_key(&mut self) -> Option<Str<'a>> {
        match self.peek() {
            b',' => {
                self.pos += 1;
                self.skip_whitespace();
            }
            b'"' => {}
            _ => {
                self.pos += 1;
                return None;
            }
        }
        let key = self.string();
        self.skip_whitespace();
        self.pos += 1; // the ':'
        Some(key)
    }

    /// The next value; a container is skipped over, measuring its depth on the way.
    pub(super) fn value(&mut self) -> Value<'a> {
        match self.peek() {
            b'"' => Value::Str(self.string()),
            b'{' | b'[' => Value::Container {
                depth: self.skip_container(),
            },
            b't' | b'f' | b'n' => Value::Literal(self.span_while(u8::is_ascii_lowercase)),
            _ => Value::Number(self.span_while(|b| b.is_ascii_digit() || b"+-.eE".contains(b))),
        }
    }

    fn span_while(&mut self, keep: impl Fn(&u8) -> bool) -> &'a str {
        let start = self.pos;
        let len = (self.text.as_bytes().get(start..).unwrap_or_default())
            .iter()
            .take_while(|b| keep(b))
            .count();
        self.pos += len;
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// The string whose opening quote is next.
    fn string(&mut self) -> Str<'a> {
        let start = self.pos + 1;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        let mut end = start;
        while let Some(&b) = bytes.get(end) {
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    end += 2;
                }
                _ => end += 1,
            }
        }
        self.pos = end + 1;
        Str {
            raw: self.text.get(start..end).unwrap_or_default(),
            escaped,
        }
    }

    /// Skips the container whose `[` or `{` is next and returns how deeply it nests.
    fn skip_container(&mut self) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        while self.pos < self.text.len() {
            match self.byte() {
                b'"' => {
                    self.string();
                    continue;
                }
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.pos += 1;
                        break;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        deepest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_an_object() {
        let mut c = Cursor::new(r#" { "a\"b" : [1, {"x": "]"}], "n": -1.5e3 , "t":true,"s":"x"} "#);
        assert_eq!(c.peek(), b'{');
        c.enter_object();
        let key = c.next_key().unwrap();
        assert_eq!((key.raw, key.escaped), ("a\\\"b", true));
        assert!(matches!(c.value(), Value::Container { depth: 2 }));
        assert_eq!(c.next_key().unwrap().raw, "n");
        assert!(matches!(c.value(), Value::Number("-1.5e3")));
        assert_eq!(c.next_key().unwrap().raw, "t");
        assert!(matches!(c.value(), Value::Literal("true")));
        assert_eq!(c.next_key().unwrap().raw, "s");
        assert!(matches!(
            c.value(),
            Value::Str(Str {
                raw: "x",
                escaped: false
            })
        ));
        assert!(c.next_key().is_none());
    }

    #[test]
    fn empty_object() {
        let mut c = Cursor::new("{ }");
        c.enter_object();
        assert!(c.next_key().is_none());
    }
}
