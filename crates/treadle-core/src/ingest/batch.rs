//! Splitting a batch into events: a JSON array, or NDJSON lines.
//!
//! serde_json validates the syntax and hands over each event's text (as a borrowed
//! `RawValue`); [`Events`] takes it from there.

use std::fmt;

use serde::de::{self, Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::event::Events;
use super::{IngestError, Reason};

fn is_whitespace(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// A JSON array of events, each checked as soon as serde_json has read it, so the
/// first problem in the text (a syntax error, an event nesting too deep, one event too
/// many) is the one reported.
pub(super) fn json<'t>(
    body: &'t [u8],
    max_events: usize,
    events: &mut Events<'t, '_>,
) -> Result<(), IngestError> {
    let start = body
        .iter()
        .position(|b| !is_whitespace(b))
        .ok_or(IngestError::Empty { ndjson: false })?;
    let text = std::str::from_utf8(body).map_err(|_| IngestError::NotUtf8)?;
    if body[start] != b'[' {
        return Err(IngestError::NotArray { at: start });
    }
    let mut array = Array {
        events,
        max_events,
        seen: 0,
        stop: None,
    };
    let mut de = serde_json::Deserializer::from_str(text);
    match de.deserialize_seq(&mut array) {
        Ok(()) => de.end().map_err(|_| IngestError::TrailingData),
        Err(_) => Err(array
            .stop
            .take()
            .unwrap_or(IngestError::Malformed { event: array.seen })),
    }
}

/// Visits the array's elements; `seen` counts those read whole, so a syntax error is
/// in event `seen` or just after it.
struct Array<'e, 't, 'o> {
    events: &'e mut Events<'t, 'o>,
    max_events: usize,
    seen: usize,
    stop: Option<IngestError>,
}

impl<'t> Visitor<'t> for &mut Array<'_, 't, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'t>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<&'t RawValue>()? {
            let index = self.seen;
            if self.events.event(index, raw.get()).is_err() {
                self.stop = Some(IngestError::Malformed { event: index });
            } else if index >= self.max_events {
                self.stop = Some(IngestError::TooManyEvents {
                    max_events: self.max_events,
                });
            }
            if self.stop.is_some() {
                return Err(de::Error::custom("stop"));
            }
            self.seen += 1;
        }
        Ok(())
    }
}

/// NDJSON: one event per line. Blank lines (nothing but spaces, tabs and a `\r`) are
/// skipped and not counted; a line that is not JSON is rejected as `invalid_json`, and
/// the batch only if no line is JSON.
pub(super) fn ndjson<'t>(
    body: &'t [u8],
    max_events: usize,
    events: &mut Events<'t, '_>,
) -> Result<(), IngestError> {
    let lines = || {
        body.split(|&b| b == b'\n')
            .filter(|line| !line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
    };
    let count = lines().count();
    if count > max_events {
        return Err(IngestError::TooManyEvents { max_events });
    }
    if count == 0 {
        return Err(IngestError::Empty { ndjson: true });
    }
    let mut json_lines = 0;
    for (index, line) in lines().enumerate() {
        let raw = std::str::from_utf8(line)
            .ok()
            .and_then(|text| serde_json::from_str::<&RawValue>(text).ok());
        match raw.map(|raw| events.event(index, raw.get())) {
            Some(Ok(())) => json_lines += 1,
            Some(Err(_)) | None => events.reject(index, Reason::InvalidJson),
        }
    }
    if json_lines == 0 {
        return Err(IngestError::NoJsonLine);
    }
    Ok(())
}
