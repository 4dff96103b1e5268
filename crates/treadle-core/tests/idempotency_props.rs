//! Property tests of the request fingerprint: layout (key order, whitespace, escapes,
//! number spelling) never counts, every value does, and the canonical form is a fixed
//! point that reads back to the same document.

use proptest::prelude::*;
use treadle_core::idempotency::{canonical_json, fingerprint};

/// A JSON document with unique keys per object.
#[derive(Debug, Clone)]
enum Doc {
    Null,
    Bool(bool),
    /// Exact digits, so integers beyond 64 bits are covered.
    Int(String),
    Float(f64),
    Str(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,6}",
        "[\\x00-\\x7f]{0,8}",
        "[\u{0}-\u{ff}\u{2028}\u{e9}\u{fffd}\u{1f600}\"\\\\/]{0,8}",
        any::<String>(),
    ]
}

fn doc() -> impl Strategy<Value = Doc> {
    let leaf = prop_oneof![
        Just(Doc::Null),
        any::<bool>().prop_map(Doc::Bool),
        any::<i64>().prop_map(|i| Doc::Int(i.to_string())),
        ("-?[1-9][0-9]{18,40}").prop_map(Doc::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Doc::Float),
        (-1e6..1e6f64).prop_map(Doc::Float),
        text().prop_map(Doc::Str),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Doc::Array),
            proptest::collection::btree_map(text(), inner, 0..6)
                .prop_map(|members| Doc::Object(members.into_iter().collect())),
        ]
    })
}

/// A tiny deterministic generator for layout choices.
struct Choices(u64);

impl Choices {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn space(&mut self, out: &mut String) {
        for _ in 0..self.next(3) {
            out.push([' ', '\t', '\n', '\r'][self.next(4) as usize]);
        }
    }
}

/// Writes `doc` as valid JSON with layout picked by `c`: whitespace, member order,
/// escapes and the spelling of floats vary; the document does not.
fn render(doc: &Doc, c: &mut Choices, out: &mut String) {
    c.space(out);
    match doc {
        Doc::Null => out.push_str("null"),
        Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Doc::Int(digits) => out.push_str(if digits == "0" && c.next(2) == 0 {
            "-0"
        } else {
            digits
        }),
        Doc::Float(f) => match c.next(4) {
            0 => out.push_str(&format!("{f:?}")),
            1 => out.push_str(&format!("{f:e}")),
            2 => out.push_str(&format!("{f:E}")),
            _ => out.push_str(&format!("{f:.17e}")),
        },
        Doc::Str(s) => render_string(s, c, out),
        Doc::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(item, c, out);
                c.space(out);
            }
            c.space(out);
            out.push(']');
        }
        Doc::Object(members) => {
            let mut order: Vec<usize> = (0..members.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, c.next(i as u64 + 1) as usize);
            }
            out.push('{');
            for (n, &i) in order.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                c.space(out);
                render_string(&members[i].0, c, out);
                c.space(out);
                out.push(':');
                render(&members[i].1, c, out);
                c.space(out);
            }
            c.space(out);
            out.push('}');
        }
    }
}

fn render_string(s: &str, c: &mut Choices, out: &mut String) {
    out.push('"');
    for ch in s.chars() {
        let must = ch == '"' || ch == '\\' || u32::from(ch) < 0x20;
        if must || c.next(4) == 0 {
            match (ch, c.next(2)) {
                ('"', 0) => out.push_str("\\\""),
                ('\\', 0) => out.push_str("\\\\"),
                ('/', 0) => out.push_str("\\/"),
                ('\n', 0) => out.push_str("\\n"),
                ('\t', 0) => out.push_str("\\t"),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in ch.encode_utf16(&mut units) {
                        if c.next(2) == 0 {
                            out.push_str(&format!("\\u{unit:04x}"));
                        } else {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                }
            }
        } else {
            out.push(ch);
        }
    }
    out.push('"');
}

fn rendered(doc: &Doc, seed: u64) -> String {
    let mut out = String::new();
    render(doc, &mut Choices(seed | 1), &mut out);
    out
}

/// The number of leaves: scalars and empty containers.
fn leaves(doc: &Doc) -> usize {
    match doc {
        Doc::Array(items) if !items.is_empty() => items.iter().map(leaves).sum(),
        Doc::Object(members) if !members.is_empty() => members.iter().map(|(_, v)| leaves(v)).sum(),
        _ => 1,
    }
}

/// Changes leaf number `pick` to a different value; returns whether it got there.
fn mutate(doc: &mut Doc, pick: &mut usize) -> bool {
    match doc {
        Doc::Array(items) if !items.is_empty() => items.iter_mut().any(|item| mutate(item, pick)),
        Doc::Object(members) if !members.is_empty() => {
            members.iter_mut().any(|(_, value)| mutate(value, pick))
        }
        leaf => {
            if *pick > 0 {
                *pick -= 1;
                return false;
            }
            *leaf = match leaf {
                Doc::Null => Doc::Bool(false),
                Doc::Bool(b) => Doc::Bool(!*b),
                Doc::Int(digits) if digits == "0" => Doc::Float(0.0),
                Doc::Int(digits) => Doc::Int(format!("{digits}0")),
                Doc::Float(f) if *f == 0.0 => Doc::Float(f64::MIN_POSITIVE),
                // The next double towards zero: the smallest possible change.
                Doc::Float(f) => Doc::Float(f64::from_bits(f.to_bits() - 1)),
                Doc::Str(s) => Doc::Str(format!("{s}\u{0}")),
                Doc::Array(_) => Doc::Array(vec![Doc::Null]),
                Doc::Object(_) => Doc::Object(vec![(String::new(), Doc::Null)]),
            };
            true
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn layout_does_not_count(doc in doc(), a in any::<u64>(), b in any::<u64>()) {
        let (left, right) = (rendered(&doc, a), rendered(&doc, b));
        prop_assert!(canonical_json(left.as_bytes()).is_some(), "{}", left);
        prop_assert_eq!(canonical_json(left.as_bytes()), canonical_json(right.as_bytes()));
        prop_assert_eq!(
            fingerprint("POST", "/v1/jobs", left.as_bytes(), None),
            fingerprint("POST", "/v1/jobs", right.as_bytes(), Some("application/json; charset=utf-8"))
        );
    }

    #[test]
    fn every_value_counts(doc in doc(), pick in any::<usize>(), a in any::<u64>(), b in any::<u64>()) {
        let mut changed = doc.clone();
        let mut pick = pick % leaves(&doc);
        prop_assert!(mutate(&mut changed, &mut pick));
        let (before, after) = (rendered(&doc, a), rendered(&changed, b));
        prop_assert_ne!(
            fingerprint("POST", "/v1/jobs", before.as_bytes(), None),
            fingerprint("POST", "/v1/jobs", after.as_bytes(), None),
            "{} vs {}", before, after
        );
    }

    #[test]
    fn canonical_is_a_fixed_point(doc in doc(), seed in any::<u64>()) {
        let canonical = canonical_json(rendered(&doc, seed).as_bytes()).unwrap();
        prop_assert_eq!(canonical_json(&canonical), Some(canonical.clone()));
        // serde_json reads it back as the same document (numbers aside, it is strict JSON).
        let text = String::from_utf8(canonical).unwrap();
        prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_ok(), "{}", text);
    }

    #[test]
    fn raw_bodies_hash_as_given(body in proptest::collection::vec(any::<u8>(), 0..64), flip in any::<prop::sample::Index>()) {
        prop_assume!(!body.is_empty());
        let mut other = body.clone();
        let at = flip.index(other.len());
        other[at] ^= 1;
        prop_assert_ne!(
            fingerprint("PUT", "/a", &body, Some("application/octet-stream")),
            fingerprint("PUT", "/a", &other, Some("application/octet-stream"))
        );
    }
}
