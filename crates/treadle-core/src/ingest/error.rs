//! What refuses a whole batch ([`IngestError`]) and what rejects one event ([`Reason`]).
//!
//! These live with the ingest module rather than in `crate::error`: each has a stable
//! `code()` and a message that the Python reference
//! (`treadle.services.telemetry_reference`) must reproduce byte for byte, so the two
//! tables are kept next to the rules they describe.

use std::fmt;

use super::MAX_DEPTH;

/// A batch refused as a whole; nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IngestError {
    /// `too_large`: the body, decompressed if it came compressed, is over the limit.
    TooLarge {
        /// The limit, in bytes.
        max_bytes: usize,
        /// Whether the body came compressed.
        decompressed: bool,
    },
    /// `too_large`: a zstd frame asks for a decoding window over the limit.
    WindowTooLarge {
        /// The largest window allowed, in bytes.
        max_window: usize,
    },
    /// `bad_encoding`: the `Content-Encoding` is none of identity, gzip and zstd.
    UnknownEncoding,
    /// `bad_encoding`: the body is not complete, valid gzip data.
    BadGzip,
    /// `bad_encoding`: the body is not complete, valid zstd data.
    BadZstd,
    /// `too_many_events`: more events than the limit.
    TooManyEvents {
        /// The limit.
        max_events: usize,
    },
    /// `not_json`: no events at all (an empty body, or only whitespace or blank lines).
    Empty {
        /// Whether the batch was NDJSON.
        ndjson: bool,
    },
    /// `not_json`: a JSON batch that is not UTF-8.
    NotUtf8,
    /// `not_json`: a JSON batch that does not start with `[`.
    NotArray {
        /// The offset of the first byte after any whitespace.
        at: usize,
    },
    /// `not_json`: a JSON batch whose array is malformed at (or just after) an event, or
    /// whose event nests deeper than [`MAX_DEPTH`].
    Malformed {
        /// The event's index.
        event: usize,
    },
    /// `not_json`: a JSON batch with more than whitespace after the array.
    TrailingData,
    /// `not_json`: an NDJSON batch none of whose lines is JSON.
    NoJsonLine,
}

impl IngestError {
    /// The stable code: `too_large`, `bad_encoding`, `too_many_events` or `not_json`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } | Self::WindowTooLarge { .. } => "too_large",
            Self::UnknownEncoding | Self::BadGzip | Self::BadZstd => "bad_encoding",
            Self::TooManyEvents { .. } => "too_many_events",
            Self::Empty { .. }
            | Self::NotUtf8
            | Self::NotArray { .. }
            | Self::Malformed { .. }
            | Self::TrailingData
            | Self::NoJsonLine => "not_json",
        }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NOT_ARRAY: &str = "the body is not a JSON array of events";
        match self {
            Self::TooLarge {
                max_bytes,
                decompressed,
            } => {
                let once = if *decompressed {
                    " once decompressed"
                } else {
                    ""
                };
                write!(
                    f,
                    "the body is larger than {max_bytes} bytes{once}: send smaller batches"
                )
            }
            Self::WindowTooLarge { max_window } => write!(
                f,
                "the zstd data needs a window larger than {max_window} bytes: compress with a \
                 lower level or a smaller window"
            ),
            Self::UnknownEncoding => {
                f.write_str("unsupported Content-Encoding: send identity, gzip or zstd")
            }
            Self::BadGzip => f.write_str("the body is not valid gzip data"),
            Self::BadZstd => f.write_str("the body is not valid zstd data"),
            Self::TooManyEvents { max_events } => {
                write!(f, "the batch has more than {max_events} events: split it")
            }
            Self::Empty { ndjson: false } => {
                f.write_str("the batch is empty: send a JSON array of events")
            }
            Self::Empty { ndjson: true } => {
                f.write_str("the batch is empty: send one JSON event per line")
            }
            Self::NotUtf8 => write!(f, "{NOT_ARRAY}: it is not UTF-8"),
            Self::NotArray { at } => write!(f, "{NOT_ARRAY}: expected `[` at byte {at}"),
            Self::Malformed { event } => write!(
                f,
                "{NOT_ARRAY}: event {event} is malformed or nests deeper than {MAX_DEPTH} levels"
            ),
            Self::TrailingData => write!(f, "{NOT_ARRAY}: there is data after its closing `]`"),
            Self::NoJsonLine => {
                f.write_str("no line of the body is valid JSON: send one JSON event per line")
            }
        }
    }
}

impl std::error::Error for IngestError {}

/// Why one event was rejected. The checks run in this order and the first that fails
/// names the event's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// `invalid_json`: an NDJSON line that is not JSON, or nests deeper than
    /// [`MAX_DEPTH`].
    InvalidJson,
    /// `not_an_object`: the event is not a JSON object.
    NotAnObject,
    /// `unknown_field`: a top-level key other than `type`, `timestamp`, `attributes`
    /// and `id`.
    UnknownField,
    /// `duplicate_key`: the event has a top-level key twice.
    DuplicateKey,
    /// `invalid_type`: no `type`.
    MissingType,
    /// `invalid_type`: `type` is not a string matching `^[a-z0-9][a-z0-9_.-]{0,63}$`.
    InvalidType,
    /// `type_not_allowed`: a valid `type` not among the allowed ones.
    TypeNotAllowed,
    /// `invalid_timestamp`: no `timestamp`.
    MissingTimestamp,
    /// `invalid_timestamp`: neither an RFC 3339 date-time with an offset nor a finite
    /// number of seconds.
    InvalidTimestamp,
    /// `timestamp_out_of_range`: outside the range of PostgreSQL's `timestamptz`.
    OutsidePostgres,
    /// `timestamp_out_of_range`: older than the received time less the maximum age.
    TooOld {
        /// The maximum age, in seconds.
        max_age_seconds: u64,
    },
    /// `timestamp_out_of_range`: later than the received time plus the allowance.
    TooFarAhead {
        /// The allowance, in seconds.
        max_future_seconds: u64,
    },
    /// `invalid_id`: `id` is not a string of 1-128 bytes in 0x21-0x7E.
    InvalidId,
    /// `invalid_attributes`: `attributes` is not an object.
    InvalidAttributes,
    /// `too_many_attributes`: more keys than the limit (duplicates counted).
    TooManyAttributes {
        /// The limit.
        max_attributes: usize,
    },
    /// `invalid_attribute_key`: a key that is empty, longer than the limit in UTF-8, or
    /// holds a control character (U+0000-U+001F, U+007F) or a lone surrogate escape.
    InvalidAttributeKey {
        /// The limit, in bytes.
        max_key_bytes: usize,
    },
    /// `duplicate_key`: `attributes` has a key twice.
    DuplicateAttribute,
    /// `invalid_attribute_value`: an object or array value.
    NestedAttributeValue,
    /// `invalid_attribute_value`: a string longer than the limit in UTF-8, or holding
    /// U+0000 or a lone surrogate escape.
    InvalidAttributeString {
        /// The limit, in bytes.
        max_value_bytes: usize,
    },
    /// `invalid_attribute_value`: a number PostgreSQL's `numeric` may refuse: longer
    /// than [`MAX_NUMBER_CHARS`](super::MAX_NUMBER_CHARS) or with an exponent beyond
    /// ±[`MAX_EXPONENT`](super::MAX_EXPONENT).
    InvalidAttributeNumber,
}

impl Reason {
    /// The stable code (see each variant).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "not_an_object",
            Self::UnknownField => "unknown_field",
            Self::DuplicateKey | Self::DuplicateAttribute => "duplicate_key",
            Self::MissingType | Self::InvalidType => "invalid_type",
            Self::TypeNotAllowed => "type_not_allowed",
            Self::MissingTimestamp | Self::InvalidTimestamp => "invalid_timestamp",
            Self::OutsidePostgres | Self::TooOld { .. } | Self::TooFarAhead { .. } => {
                "timestamp_out_of_range"
            }
            Self::InvalidId => "invalid_id",
            Self::InvalidAttributes => "invalid_attributes",
            Self::TooManyAttributes { .. } => "too_many_attributes",
            Self::InvalidAttributeKey { .. } => "invalid_attribute_key",
            Self::NestedAttributeValue
            | Self::InvalidAttributeString { .. }
            | Self::InvalidAttributeNumber => "invalid_attribute_value",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::{MAX_EXPONENT, MAX_NUMBER_CHARS};
        match self {
            Self::InvalidJson => write!(
                f,
                "the line is not valid JSON or nests deeper than {MAX_DEPTH} levels"
            ),
            Self::NotAnObject => f.write_str("the event is not a JSON object"),
            Self::UnknownField => {
                f.write_str("unknown field: an event has only type, timestamp, attributes and id")
            }
            Self::DuplicateKey => f.write_str("the event has the same key twice"),
            Self::MissingType => f.write_str("type is missing"),
            Self::InvalidType => f.write_str(
                "type must be a string of 1-64 characters from a-z, 0-9, `_`, `.` and `-`, \
                 starting with a letter or digit",
            ),
            Self::TypeNotAllowed => f.write_str("type is not one of the types allowed here"),
            Self::MissingTimestamp => f.write_str("timestamp is missing"),
            Self::InvalidTimestamp => f.write_str(
                "timestamp must be an RFC 3339 date-time with an offset, such as \
                 2026-01-02T03:04:05.678Z, or a number of seconds since the Unix epoch",
            ),
            Self::OutsidePostgres => {
                f.write_str("timestamp is outside the range PostgreSQL can store")
            }
            Self::TooOld { max_age_seconds } => write!(
                f,
                "timestamp is more than {max_age_seconds} seconds before the server's time"
            ),
            Self::TooFarAhead { max_future_seconds } => write!(
                f,
                "timestamp is more than {max_future_seconds} seconds after the server's time"
            ),
            Self::InvalidId => {
                f.write_str("id must be a string of 1-128 printable ASCII characters, no spaces")
            }
            Self::InvalidAttributes => f.write_str("attributes must be a JSON object"),
            Self::TooManyAttributes { max_attributes } => {
                write!(f, "attributes has more than {max_attributes} keys")
            }
            Self::InvalidAttributeKey { max_key_bytes } => write!(
                f,
                "attribute keys must be 1-{max_key_bytes} bytes of text without control \
                 characters"
            ),
            Self::DuplicateAttribute => f.write_str("attributes has the same key twice"),
            Self::NestedAttributeValue => f.write_str(
                "attribute values must be strings, numbers, booleans or null, not objects or \
                 arrays",
            ),
            Self::InvalidAttributeString { max_value_bytes } => write!(
                f,
                "attribute strings must be at most {max_value_bytes} bytes of text without \
                 U+0000"
            ),
            Self::InvalidAttributeNumber => write!(
                f,
                "attribute numbers must be at most {MAX_NUMBER_CHARS} characters with an \
                 exponent of at most {MAX_EXPONENT}"
            ),
        }
    }
}

/// One rejected event: where it was in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The event's index in the batch (NDJSON: among the non-blank lines).
    pub index: usize,
    /// Why.
    pub reason: Reason,
}
