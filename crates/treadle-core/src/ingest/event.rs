//! One event: walked once, checked in the documented order, written as a COPY row.

use std::borrow::Cow;

use super::copy::Rows;
use super::scan::{Cursor, Str, Value};
use super::timestamp;
use super::{Options, Parsed, Reason, Rejection, MAX_DEPTH, MAX_EXPONENT, MAX_NUMBER_CHARS};

/// PostgreSQL's `timestamptz` range in Unix microseconds: 4713-11-24 BC to the end of
/// 294276 AD (`MIN_TIMESTAMP` and `END_TIMESTAMP` in its `datatype/timestamp.h`).
const PG_FIRST_US: i128 = -211_813_488_000_000_000 + PG_EPOCH;
const PG_LAST_US: i128 = 9_223_371_331_200_000_000 - 1 + PG_EPOCH;
const PG_EPOCH: i128 = super::copy::PG_EPOCH_US as i128;

/// Attribute sets up to this size are checked for duplicate keys pairwise, which beats
/// hashing; larger ones go through a set.
const PAIRWISE_KEYS: usize = 16;

/// The event's top-level fields, as found.
#[derive(Default)]
struct Fields<'t> {
    kind: Option<Value<'t>>,
    timestamp: Option<Value<'t>>,
    id: Option<Value<'t>>,
    attributes: Attributes,
    /// The first `unknown_field` or `duplicate_key`, in key order.
    problem: Option<Reason>,
}

/// What the event's `attributes` turned out to be.
#[derive(Default, PartialEq, Eq)]
enum Attributes {
    #[default]
    Absent,
    /// An object, its members in [`Events::members`].
    Object,
    /// Anything else.
    Other,
}

/// An event nests deeper than [`MAX_DEPTH`]: the batch (JSON) or line (NDJSON) counts
/// as malformed.
pub(super) struct TooDeep;

/// The batch being checked: the rules, the rows and rejections so far, and scratch
/// space reused from event to event so that a valid event allocates nothing.
pub(super) struct Events<'t, 'o> {
    options: &'o Options<'o>,
    allowed: Option<foldhash::HashSet<&'o str>>,
    rows: Rows,
    accepted: usize,
    rejected: Vec<Rejection>,
    members: Vec<(Str<'t>, Value<'t>)>,
    keys: Vec<Cow<'t, str>>,
    key_set: foldhash::HashSet<Cow<'t, str>>,
    /// Room to decode escaped strings: the type, the id, and one at a time of the rest.
    scratch: [String; 3],
}

impl<'t, 'o> Events<'t, 'o> {
    pub(super) fn new(options: &'o Options<'o>, body_len: usize) -> Self {
        let ids = [
            &options.organization_id,
            &options.agent_id,
            &options.batch_id,
        ];
        Self {
            options,
            allowed: options
                .allowed_types
                .map(|types| types.iter().map(String::as_str).collect()),
            // Rows come out a little longer than the JSON they come from.
            rows: Rows::new(ids, options.received_at_us, body_len + body_len / 4 + 64),
            accepted: 0,
            rejected: Vec::new(),
            members: Vec::new(),
            keys: Vec::new(),
            key_set: foldhash::HashSet::default(),
            scratch: Default::default(),
        }
    }

    pub(super) fn finish(self) -> Parsed {
        Parsed {
            accepted: self.accepted,
            rejected: self.rejected,
            copy_data: self.rows.finish(),
        }
    }

    pub(super) fn reject(&mut self, index: usize, reason: Reason) {
        self.rejected.push(Rejection { index, reason });
    }

    /// Checks the event whose JSON (already validated) is `text`, and writes its row or
    /// records its rejection.
    pub(super) fn event(&mut self, index: usize, text: &'t str) -> Result<(), TooDeep> {
        let fields = self.walk(&mut Cursor::new(text))?;
        match self.check(index, fields) {
            Ok(()) => self.accepted += 1,
            Err(reason) => self.reject(index, reason),
        }
        Ok(())
    }

    /// Finds the top-level fields (and the attributes' members) and measures how deep
    /// the event nests, all in one pass; every value is walked even after a problem, as
    /// depth is checked on the whole event.
    fn walk(&mut self, cursor: &mut Cursor<'t>) -> Result<Fields<'t>, TooDeep> {
        let mut fields = Fields::default();
        self.members.clear();
        if cursor.peek() != b'{' {
            if let Value::Container { depth } = cursor.value() {
                if depth > MAX_DEPTH {
                    return Err(TooDeep);
                }
            }
            fields.problem = Some(Reason::NotAnObject);
            return Ok(fields);
        }
        cursor.enter_object();
        let mut deepest = 0;
        while let Some(key) = cursor.next_key() {
            let mut ignored = None;
            let name = key.decode(&mut self.scratch[0]).unwrap_or_default();
            let slot = match name {
                "type" => &mut fields.kind,
                "timestamp" => &mut fields.timestamp,
                "id" => &mut fields.id,
                "attributes" => {
                    if fields.attributes != Attributes::Absent {
                        fields.problem.get_or_insert(Reason::DuplicateKey);
                    } else if cursor.peek() == b'{' {
                        fields.attributes = Attributes::Object;
                        deepest = deepest.max(1 + self.walk_attributes(cursor));
                        continue;
                    } else {
                        fields.attributes = Attributes::Other;
                    }
                    &mut ignored
                }
                _ => {
                    fields.problem.get_or_insert(Reason::UnknownField);
                    &mut ignored
                }
            };
            if slot.is_some() {
                fields.problem.get_or_insert(Reason::DuplicateKey);
            }
            let value = cursor.value();
            if let Value::Container { depth } = value {
                deepest = deepest.max(depth);
            }
            slot.get_or_insert(value);
        }
        if 1 + deepest > MAX_DEPTH {
            return Err(TooDeep);
        }
        Ok(fields)
    }

    /// Collects the members of the attributes object that is next, returning how
    /// deeply their values nest.
    fn walk_attributes(&mut self, cursor: &mut Cursor<'t>) -> usize {
        cursor.enter_object();
        let mut deepest = 0;
        while let Some(key) = cursor.next_key() {
            let value = cursor.value();
            if let Value::Container { depth } = value {
                deepest = deepest.max(depth);
            }
            self.members.push((key, value));
        }
        deepest
    }

    /// The checks after the structural ones, in order: type, timestamp, id, attributes.
    fn check(&mut self, index: usize, fields: Fields<'t>) -> Result<(), Reason> {
        if let Some(problem) = fields.problem {
            return Err(problem);
        }
        let options = self.options;
        let [kind_buf, id_buf, scratch] = &mut self.scratch;
        let kind = match fields.kind {
            None => return Err(Reason::MissingType),
            Some(Value::Str(s)) => s.decode(kind_buf).filter(|t| is_type(t)),
            Some(_) => None,
        }
        .ok_or(Reason::InvalidType)?;
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(kind) {
                return Err(Reason::TypeNotAllowed);
            }
        }
        let ts = match fields.timestamp {
            None => return Err(Reason::MissingTimestamp),
            Some(Value::Str(s)) => s
                .decode(scratch)
                .and_then(timestamp::rfc3339)
                .map(i128::from),
            Some(Value::Number(literal)) => timestamp::seconds(literal),
            Some(_) => None,
        }
        .ok_or(Reason::InvalidTimestamp)?;
        let ts = check_range(ts, options)?;
        let id = match fields.id {
            None => None,
            Some(Value::Str(s)) => Some(
                s.decode(id_buf)
                    .filter(|t| is_id(t))
                    .ok_or(Reason::InvalidId)?,
            ),
            Some(_) => return Err(Reason::InvalidId),
        };
        match fields.attributes {
            Attributes::Other => return Err(Reason::InvalidAttributes),
            Attributes::Object if self.members.len() > options.max_attributes => {
                return Err(Reason::TooManyAttributes {
                    max_attributes: options.max_attributes,
                })
            }
            Attributes::Absent | Attributes::Object => {}
        }
        // The batch's length is capped at i32::MAX events (see `Options::max_events`).
        let seq = i32::try_from(index).unwrap_or(i32::MAX);
        let mark = self.rows.begin(seq, id, kind, ts);
        let written = write_attributes(
            self.rows.out(),
            &self.members,
            &mut self.keys,
            &mut self.key_set,
            scratch,
            options,
        );
        match written {
            Ok(()) => self.rows.end(mark),
            Err(reason) => {
                self.rows.cancel(mark);
                return Err(reason);
            }
        }
        Ok(())
    }
}

/// `ts` (Unix microseconds) checked against PostgreSQL's range and the options'
/// window, as microseconds since PostgreSQL's epoch (Unix microseconds near its end
/// do not fit an `i64`).
fn check_range(ts: i128, options: &Options<'_>) -> Result<i64, Reason> {
    let received = i128::from(options.received_at_us);
    if !(PG_FIRST_US..=PG_LAST_US).contains(&ts) {
        return Err(Reason::OutsidePostgres);
    }
    if ts < received - i128::from(options.max_age_seconds) * 1_000_000 {
        return Err(Reason::TooOld {
            max_age_seconds: options.max_age_seconds,
        });
    }
    if ts > received + i128::from(options.max_future_seconds) * 1_000_000 {
        return Err(Reason::TooFarAhead {
            max_future_seconds: options.max_future_seconds,
        });
    }
    // PostgreSQL keeps its timestamps in an `i64` since its epoch, so this fits.
    i64::try_from(ts - PG_EPOCH).map_err(|_| Reason::OutsidePostgres)
}

/// Checks the attributes' members in order (key, then duplicate, then value) and
/// appends them as compact JSON, keys in their original order.
fn write_attributes<'t>(
    out: &mut Vec<u8>,
    members: &[(Str<'t>, Value<'t>)],
    keys: &mut Vec<Cow<'t, str>>,
    key_set: &mut foldhash::HashSet<Cow<'t, str>>,
    scratch: &mut String,
    options: &Options<'_>,
) -> Result<(), Reason> {
    keys.clear();
    key_set.clear();
    out.push(b'{');
    for (i, (key, value)) in members.iter().enumerate() {
        let name = match key.escaped {
            false => Some(Cow::Borrowed(key.raw)),
            true => key.decode(scratch).map(|s| Cow::Owned(s.to_owned())),
        }
        .filter(|name| is_key(name, options.max_key_bytes))
        .ok_or(Reason::InvalidAttributeKey {
            max_key_bytes: options.max_key_bytes,
        })?;
        let repeated = if members.len() <= PAIRWISE_KEYS {
            keys.contains(&name)
        } else {
            !key_set.insert(name.clone())
        };
        if repeated {
            return Err(Reason::DuplicateAttribute);
        }
        if i > 0 {
            out.push(b',');
        }
        key.write(&name, out);
        out.push(b':');
        match value {
            Value::Str(s) => {
                let text = s
                    .decode(scratch)
                    .filter(|t| {
                        t.len() <= options.max_value_bytes && !(s.escaped && t.contains('\0'))
                    })
                    .ok_or(Reason::InvalidAttributeString {
                        max_value_bytes: options.max_value_bytes,
                    })?;
                s.write(text, out);
            }
            Value::Number(literal) if is_number(literal) => {
                out.extend_from_slice(literal.as_bytes())
            }
            Value::Number(_) => return Err(Reason::InvalidAttributeNumber),
            Value::Literal(literal) => out.extend_from_slice(literal.as_bytes()),
            Value::Container { .. } => return Err(Reason::NestedAttributeValue),
        }
        if members.len() <= PAIRWISE_KEYS {
            keys.push(name);
        }
    }
    out.push(b'}');
    Ok(())
}

/// `^[a-z0-9][a-z0-9_.-]{0,63}$`.
fn is_type(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (1..=64).contains(&b.len())
        && word(&b[0])
        && b[1..].iter().all(|c| word(c) || b"_.-".contains(c))
}

/// 1-128 bytes of printable ASCII, space excluded.
fn is_id(t: &str) -> bool {
    (1..=128).contains(&t.len()) && t.bytes().all(|c| (0x21..=0x7e).contains(&c))
}

fn is_key(name: &str, max_key_bytes: usize) -> bool {
    (1..=max_key_bytes).contains(&name.len()) && !name.bytes().any(|c| c < 0x20 || c == 0x7f)
}

/// Whether PostgreSQL's `numeric` takes the JSON number `literal`: it refuses an
/// exponent beyond ±1000, and a cap on the length keeps the digits within its range.
fn is_number(literal: &str) -> bool {
    if literal.len() > MAX_NUMBER_CHARS {
        return false;
    }
    let Some(at) = literal.find(['e', 'E']) else {
        return true;
    };
    let digits = literal[at + 1..]
        .trim_start_matches(['+', '-'])
        .trim_start_matches('0');
    digits.len() <= 4 && digits.parse::<u32>().unwrap_or(0) <= MAX_EXPONENT
}
