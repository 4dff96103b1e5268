//! Token estimates for model prompts, without a vocabulary.
//!
//! Providers count tokens with their own tokenizers (OpenAI's BPE vocabularies,
//! Anthropic's, each open model's), so an estimate made before a call can only be
//! approximate whatever vocabulary it picks. This one imitates how byte-pair encoders
//! split text: it cuts the text into pieces the way their pre-tokenizers do (a letter
//! run with its leading space, a digit run, a punctuation run, a whitespace run, each
//! CJK character) and charges each piece what such encoders typically spend on it.
//! It errs high rather than low: the estimate feeds budget checks.
//!
//! ```
//! use treadle_core::tokens::{estimate, estimate_chat};
//!
//! // "hello", " world", ",", " this", " is", " a", " test", "."
//! assert_eq!(estimate("hello world, this is a test."), 8);
//! assert_eq!(estimate(""), 0);
//! // Each message adds its framing; the reply's priming adds a few more.
//! assert_eq!(estimate_chat(["hi", "hello"]), 1 + 1 + 2 * 4 + 3);
//! ```
//!
//! # Rules
//!
//! - ASCII letters: one token per started 6 letters of a word (common words are one
//!   token, long rare words several). A single space before a word is part of it.
//! - Other letters (accented, Cyrillic, Greek...): one token per started 4 bytes of
//!   UTF-8, as vocabularies hold fewer of their merges.
//! - Digits: one token per started 3 digits (encoders split numbers in groups of 3).
//! - Punctuation and symbols: one token per started 2 characters of a run; a non-ASCII
//!   symbol (emoji) costs one token per started 2 bytes.
//! - CJK ideographs, kana and hangul: one token per character.
//! - Whitespace other than a word's leading space: one token per run, plus one per 8
//!   characters of a long run (indentation).

/// Tokens a chat request adds per message for its role and framing (OpenAI's published
/// rule of thumb for its chat formats).
pub const PER_MESSAGE: u64 = 4;
/// Tokens that prime the reply, once per request.
pub const PER_REQUEST: u64 = 3;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Ascii,
    Letter,
    Digit,
    Space,
    Wide,
    Symbol,
}

fn class(c: char) -> Class {
    if c.is_ascii_alphabetic() {
        Class::Ascii
    } else if c.is_ascii_digit() {
        Class::Digit
    } else if c.is_whitespace() {
        Class::Space
    } else if is_wide(c) {
        Class::Wide
    } else if c.is_alphabetic() || c.is_numeric() {
        Class::Letter
    } else {
        Class::Symbol
    }
}

/// CJK ideographs, kana, hangul and full-width forms: about a token each.
fn is_wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF
        | 0x3040..=0x30FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF
        | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF
        | 0x20000..=0x2FFFF)
}

fn ceil_div(n: u64, d: u64) -> u64 {
    n.div_ceil(d)
}

/// Tokens a run of `chars` characters (`bytes` bytes of UTF-8) of one class costs.
fn cost(kind: Class, chars: u64, bytes: u64) -> u64 {
    match kind {
        Class::Ascii => ceil_div(chars, 6),
        Class::Letter => ceil_div(bytes, 4),
        Class::Digit => ceil_div(chars, 3),
        Class::Wide => chars,
        Class::Symbol if bytes > chars => ceil_div(bytes, 2),
        Class::Symbol => ceil_div(chars, 2),
        Class::Space => 1 + chars / 8,
    }
}

/// The estimated number of tokens in `text`.
#[must_use]
pub fn estimate(text: &str) -> u64 {
    let mut total = 0;
    let mut chars = text.chars().peekable();
    while let Some(first) = chars.next() {
        let mut kind = class(first);
        let (mut n, mut bytes) = (1_u64, first.len_utf8() as u64);
        if first == ' ' {
            // A single space belongs to the word it precedes, as encoders merge it.
            if let Some(&next) = chars.peek() {
                let next_kind = class(next);
                if matches!(next_kind, Class::Ascii | Class::Letter | Class::Digit) {
                    kind = next_kind;
                    (n, bytes) = (0, 0);
                }
            }
        }
        while let Some(&next) = chars.peek() {
            if class(next) != kind || kind == Class::Wide {
                break;
            }
            n += 1;
            bytes += next.len_utf8() as u64;
            chars.next();
        }
        if kind == Class::Wide {
            // Each character of a wide run is its own piece: the run was cut at one.
            total += 1;
            continue;
        }
        total += cost(kind, n.max(1), bytes.max(1));
    }
    total
}

/// The estimated prompt tokens of a chat request whose messages hold `contents`: each
/// content's estimate, [`PER_MESSAGE`] per message and [`PER_REQUEST`] once.
#[must_use]
pub fn estimate_chat<'a, I>(contents: I) -> u64
where
    I: IntoIterator<Item = &'a str>,
{
    contents
        .into_iter()
        .map(|content| estimate(content) + PER_MESSAGE)
        .sum::<u64>()
        + PER_REQUEST
}

#[cfg(test)]
mod tests {
    use super::*;

    // (text, tokens): what the rules above give, next to cl100k_base's count in the
    // comment where it differs, to keep the heuristic honest.
    const CASES: &[(&str, u64)] = &[
        ("", 0),
        ("a", 1),
        ("hello", 1),
        (" hello", 1),
        ("hello world", 2),
        ("hello world, this is a test.", 8),
        ("internationalization", 4), // cl100k: 3
        ("1234567", 3),
        ("3.14159", 4), // "3", ".", "141", "59"
        ("()", 1),
        ("fn main() {}", 5), // cl100k: 4
        ("\n\n", 1),
        ("        x", 3), // cl100k: 2
        ("日本語", 3),
        ("привет", 3), // cl100k: 2
        ("🙂", 2),
    ];

    #[test]
    fn tokens_table() {
        for &(text, want) in CASES {
            assert_eq!(estimate(text), want, "{text:?}");
        }
    }

    #[test]
    fn tokens_grow_with_text() {
        let word = " lorem ipsum dolor sit amet.";
        let one = estimate(word);
        assert_eq!(estimate(&word.repeat(100)), 100 * one);
    }

    #[test]
    fn tokens_roughly_four_characters_each_in_prose() {
        let prose = "The quick brown fox jumps over the lazy dog. It was not amused, and \
                     said so at some length to anyone who would listen that afternoon.";
        let chars = prose.len() as u64;
        let tokens = estimate(prose);
        assert!(
            (chars / 6..=chars / 3).contains(&tokens),
            "{tokens} for {chars}"
        );
    }

    #[test]
    fn tokens_chat_framing() {
        assert_eq!(estimate_chat(std::iter::empty()), PER_REQUEST);
        assert_eq!(estimate_chat(["hello"]), 1 + PER_MESSAGE + PER_REQUEST);
    }

    #[test]
    fn tokens_any_text_is_counted_without_panic() {
        let odd = "\u{0}\u{7f}\u{10FFFF}\u{200B}é\u{301}";
        assert!(estimate(odd) >= 3);
    }
}
