//! PostgreSQL's binary `COPY` format, for the columns of
//! [`COPY_STATEMENT`](super::COPY_STATEMENT).
//!
//! A stream is the signature, a flags word and an empty header extension, then one
//! tuple per row (a 16-bit field count, then each field as a 32-bit length, -1 for
//! NULL, and its bytes in the type's binary form), then a 16-bit -1.

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
pub(super) const PG_EPOCH_US: i64 = 946_684_800_000_000;

const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const TRAILER: &[u8; 2] = &(-1i16).to_be_bytes();
const FIELDS: u16 = 9;
/// The jsonb binary format: a version byte, then the JSON text.
const JSONB_VERSION: u8 = 1;

/// The COPY stream being written, one row per accepted event.
pub(super) struct Rows {
    out: Vec<u8>,
    /// The field count and the three uuids, the same for every row.
    prefix: [u8; 62],
    /// `received_at`, the same for every row.
    suffix: [u8; 12],
}

impl Rows {
    pub(super) fn new(ids: [&[u8; 16]; 3], received_at_us: i64, capacity: usize) -> Self {
        let mut prefix = [0; 62];
        prefix[..2].copy_from_slice(&FIELDS.to_be_bytes());
        for (i, id) in ids.into_iter().enumerate() {
            let at = 2 + i * 20;
            prefix[at..at + 4].copy_from_slice(&16i32.to_be_bytes());
            prefix[at + 4..at + 20].copy_from_slice(id);
        }
        let mut suffix = [0; 12];
        suffix[..4].copy_from_slice(&8i32.to_be_bytes());
        suffix[4..].copy_from_slice(&(received_at_us.wrapping_sub(PG_EPOCH_US)).to_be_bytes());
        let mut out = Vec::with_capacity(capacity);
        out.extend_from_slice(HEADER);
        Self {
            out,
            prefix,
            suffix,
        }
    }

    /// Starts a row with every column before `attributes` (`ts_pg_us` in microseconds
    /// since PostgreSQL's epoch), then the attributes' length
    /// placeholder and jsonb version; the caller appends the JSON to [`Rows::out`] and
    /// calls [`Rows::end`] (or [`Rows::cancel`]) with the returned mark.
    pub(super) fn begin(&mut self, seq: i32, id: Option<&str>, kind: &str, ts_pg_us: i64) -> Mark {
        let row = self.out.len();
        self.out.extend_from_slice(&self.prefix);
        self.out.extend_from_slice(&4i32.to_be_bytes());
        self.out.extend_from_slice(&seq.to_be_bytes());
        match id {
            Some(id) => self.text(id),
            None => self.out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
        self.text(kind);
        self.out.extend_from_slice(&8i32.to_be_bytes());
        self.out.extend_from_slice(&ts_pg_us.to_be_bytes());
        let attributes = self.out.len();
        self.out.extend_from_slice(&[0, 0, 0, 0, JSONB_VERSION]);
        Mark { row, attributes }
    }

    /// Where the attributes' JSON goes.
    pub(super) fn out(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Closes the row begun at `mark`.
    pub(super) fn end(&mut self, mark: Mark) {
        let len = self.out.len() - mark.attributes - 4;
        // A field is at most 1 GB in PostgreSQL; the body limit keeps rows far below.
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        self.out[mark.attributes..mark.attributes + 4].copy_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(&self.suffix);
    }

    /// Drops the row begun at `mark`.
    pub(super) fn cancel(&mut self, mark: Mark) {
        self.out.truncate(mark.row);
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(TRAILER);
        self.out
    }

    fn text(&mut self, text: &str) {
        // Text fields here are at most 128 bytes (id) or 64 (type).
        let len = i32::try_from(text.len()).unwrap_or(i32::MAX);
        self.out.extend_from_slice(&len.to_be_bytes());
        self.out.extend_from_slice(text.as_bytes());
    }
}

/// Where a row begun by [`Rows::begin`] starts, and its attributes' length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    row: usize,
    attributes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row() {
        let (org, agent, batch) = ([1; 16], [2; 16], [3; 16]);
        let mut rows = Rows::new([&org, &agent, &batch], PG_EPOCH_US + 1, 0);
        let mark = rows.begin(7, None, "a", -1);
        rows.out().extend_from_slice(b"{}");
        rows.end(mark);
        let dropped = rows.begin(8, Some("x"), "b", 0);
        rows.cancel(dropped);
        let data = rows.finish();

        let mut expected = b"PGCOPY\n\xff\r\n\0".to_vec();
        expected.extend([0; 8]);
        expected.extend([0, 9]);
        for id in [org, agent, batch] {
            expected.extend([0, 0, 0, 16]);
            expected.extend(id);
        }
        expected.extend([0, 0, 0, 4, 0, 0, 0, 7]);
        expected.extend([0xff; 4]);
        expected.extend([0, 0, 0, 1, b'a']);
        expected.extend([0, 0, 0, 8]);
        expected.extend((-1i64).to_be_bytes());
        expected.extend([0, 0, 0, 3, 1, b'{', b'}']);
        expected.extend([0, 0, 0, 8]);
        expected.extend(1i64.to_be_bytes());
        expected.extend([0xff, 0xff]);
        assert_eq!(data, expected);
    }
}
