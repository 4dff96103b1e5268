//! Telemetry ingest: an edge agent's batch of events, decompressed within a size limit,
//! checked event by event, and written as one PostgreSQL binary `COPY` stream.
//!
//! ```
//! use treadle_core::ingest::{parse, Options};
//!
//! let body = br#"[
//!     {"type": "cpu.load", "timestamp": "2026-01-01T00:00:00Z", "attributes": {"core": 1}},
//!     {"type": "Disk", "timestamp": 1767225600}
//! ]"#;
//! let options = Options { received_at_us: 1_767_225_600_000_000, ..Options::default() };
//! let parsed = parse(body, &options)?;
//! assert_eq!(parsed.accepted, 1);
//! assert_eq!((parsed.rejected[0].index, parsed.rejected[0].reason.code()), (1, "invalid_type"));
//! assert!(parsed.copy_data.starts_with(b"PGCOPY\n\xff\r\n\0"));
//! # Ok::<(), treadle_core::ingest::IngestError>(())
//! ```
//!
//! # The batch
//!
//! The body is decoded per its [`Encoding`]; more than `max_bytes` after decoding is
//! `too_large`, found without ever holding more than `max_bytes` (a zstd frame that
//! asks for a larger window than that allows is refused up front). Then it is either a
//! JSON array of events or NDJSON, one event per line (blank lines skipped, `\r\n`
//! allowed). A whole-batch problem is an [`IngestError`]; its checks run in this
//! order: encoding, size, then for JSON emptiness, UTF-8, the opening `[`, and each
//! event in turn (syntax, depth, count), and for NDJSON the count, emptiness, and
//! finally whether any line was JSON at all.
//!
//! Any event (array element or line) nesting deeper than [`MAX_DEPTH`] counts as
//! malformed JSON: the whole batch in JSON mode, the line (`invalid_json`) in NDJSON.
//! The limit makes results independent of a parser's stack (Python's json module
//! recurses).
//!
//! # An event
//!
//! Checked in this order; the first failure is the event's [`Reason`]:
//!
//! 1. a JSON object (`not_an_object`) whose keys, in order, are each one of `type`,
//!    `timestamp`, `attributes`, `id` (`unknown_field`) and appear once
//!    (`duplicate_key`);
//! 2. `type`: a string matching `^[a-z0-9][a-z0-9_.-]{0,63}$` (`invalid_type`), among
//!    the allowed types if there is a list (`type_not_allowed`);
//! 3. `timestamp`: an RFC 3339 date-time with an offset, fraction truncated to
//!    microseconds, or a finite number of seconds since the Unix epoch rounded half to
//!    even to microseconds (`invalid_timestamp`); within PostgreSQL's range and
//!    `[received_at - max_age, received_at + max_future]`, bounds included
//!    (`timestamp_out_of_range`);
//! 4. `id`, if present: a string of 1-128 bytes in 0x21-0x7E (`invalid_id`);
//! 5. `attributes`, if present: an object (`invalid_attributes`) of at most
//!    `max_attributes` members (`too_many_attributes`), then member by member: a key of
//!    1 to `max_key_bytes` UTF-8 bytes without U+0000-U+001F or U+007F
//!    (`invalid_attribute_key`), not seen before in this object (`duplicate_key`), and a
//!    value that is a string of at most `max_value_bytes` without U+0000, a number of
//!    at most [`MAX_NUMBER_CHARS`] with an exponent within ±[`MAX_EXPONENT`], a boolean
//!    or null (`invalid_attribute_value`).
//!
//! Strings are compared and measured decoded; an escaped lone surrogate makes a key or
//! value invalid (no UTF-8 text holds one).
//!
//! # The COPY stream
//!
//! One row per accepted event, in batch order, for [`COPY_STATEMENT`]: the three ids,
//! `seq` (the event's index), `id` or NULL, `type`, `ts`, the attributes as jsonb (compact
//! JSON, keys in their original order, strings escaped as Python's
//! `json.dumps(..., ensure_ascii=False)` escapes them, numbers exactly as sent; `{}`
//! when absent) and `received_at`.

mod batch;
mod copy;
mod decode;
mod error;
mod event;
mod scan;
#[cfg(test)]
mod tests;
mod text;
mod timestamp;

pub use decode::Encoding;
pub use error::{IngestError, Reason, Rejection};

use event::Events;

/// The statement [`Parsed::copy_data`] is for.
pub const COPY_STATEMENT: &str = "COPY telemetry_events (organization_id, agent_id, \
     batch_id, seq, event_id, type, ts, attributes, received_at) FROM STDIN (FORMAT BINARY)";

/// How deeply an event may nest: the event object is one level, its attributes two.
pub const MAX_DEPTH: usize = 32;

/// The longest number literal an attribute may hold.
pub const MAX_NUMBER_CHARS: usize = 100;

/// The largest exponent magnitude an attribute number may have (PostgreSQL's `numeric`
/// refuses larger).
pub const MAX_EXPONENT: u32 = 1000;

/// Events a batch may hold whatever `max_events` says: `seq` is an `int4`.
const MAX_SEQ: usize = i32::MAX as usize;

/// How the batch is laid out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// A JSON array of events.
    #[default]
    Json,
    /// One JSON event per line.
    Ndjson,
}

/// What a batch is checked against and stamped with. `Default` gives the documented
/// limits, zero ids and a `received_at` of the Unix epoch.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    /// JSON array or NDJSON.
    pub format: Format,
    /// The body's `Content-Encoding`.
    pub encoding: Encoding,
    /// The most bytes the body may take once decoded (default 8 MiB).
    pub max_bytes: usize,
    /// The most events a batch may hold (default 10,000; never more than `i32::MAX`).
    pub max_events: usize,
    /// The most members `attributes` may have (default 64).
    pub max_attributes: usize,
    /// The longest attribute key, in UTF-8 bytes (default 128).
    pub max_key_bytes: usize,
    /// The longest attribute string value, in UTF-8 bytes (default 4096).
    pub max_value_bytes: usize,
    /// The types allowed, or `None` for any valid type.
    pub allowed_types: Option<&'a [String]>,
    /// `organization_id` of every row (a UUID's 16 bytes).
    pub organization_id: [u8; 16],
    /// `agent_id` of every row.
    pub agent_id: [u8; 16],
    /// `batch_id` of every row.
    pub batch_id: [u8; 16],
    /// When the server received the batch, in Unix microseconds: `received_at` of every
    /// row, and the time the timestamp window is around. It must be a time PostgreSQL
    /// can store.
    pub received_at_us: i64,
    /// How old an event's timestamp may be (default 7 days).
    pub max_age_seconds: u64,
    /// How far ahead of `received_at` an event's timestamp may be (default 300).
    pub max_future_seconds: u64,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Self {
            format: Format::Json,
            encoding: Encoding::Identity,
            max_bytes: 8 << 20,
            max_events: 10_000,
            max_attributes: 64,
            max_key_bytes: 128,
            max_value_bytes: 4096,
            allowed_types: None,
            organization_id: [0; 16],
            agent_id: [0; 16],
            batch_id: [0; 16],
            received_at_us: 0,
            max_age_seconds: 7 * 86_400,
            max_future_seconds: 300,
        }
    }
}

/// A batch checked: what was accepted (as COPY rows) and what was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// How many events have a row in `copy_data`.
    pub accepted: usize,
    /// The rejected events, in batch order.
    pub rejected: Vec<Rejection>,
    /// A complete binary COPY stream (header, rows, trailer) for [`COPY_STATEMENT`].
    pub copy_data: Vec<u8>,
}

/// Decodes, splits and checks a batch (see the [module docs](self)).
///
/// # Errors
///
/// An [`IngestError`] when the batch as a whole is refused.
pub fn parse(body: &[u8], options: &Options<'_>) -> Result<Parsed, IngestError> {
    let body = decode::decode(body, options.encoding, options.max_bytes)?;
    let max_events = options.max_events.min(MAX_SEQ);
    let mut events = Events::new(options, body.len());
    match options.format {
        Format::Json => batch::json(&body, max_events, &mut events)?,
        Format::Ndjson => batch::ndjson(&body, max_events, &mut events)?,
    }
    Ok(events.finish())
}
