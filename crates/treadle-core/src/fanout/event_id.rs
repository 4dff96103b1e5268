//! [`EventId`]: a Redis stream entry id, ordered as numbers.

use std::fmt;
use std::str::FromStr;

use crate::error::FanoutError;

/// A Redis stream entry id, `<ms>-<seq>`: milliseconds since the UNIX epoch and a
/// sequence number within that millisecond.
///
/// Ids compare as the pair of numbers, so `9-0 < 10-0` although `"9-0" > "10-0"` as
/// text. Parsing is strict: both parts are required, as plain ASCII digits.
///
/// ```
/// use treadle_core::fanout::EventId;
///
/// let a: EventId = "1700000000000-9".parse()?;
/// let b = EventId::parse("1700000000000-10")?;
/// assert!(a < b);
/// assert_eq!(b.to_string(), "1700000000000-10");
/// assert!(EventId::parse("1700000000000").is_err());
/// # Ok::<(), treadle_core::FanoutError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId {
    /// Milliseconds since the UNIX epoch.
    pub ms: u64,
    /// The sequence number within `ms`.
    pub seq: u64,
}

impl EventId {
    /// `0-0`, below every id Redis hands out.
    pub const ZERO: Self = Self { ms: 0, seq: 0 };

    /// The id `<ms>-<seq>`.
    #[must_use]
    pub const fn new(ms: u64, seq: u64) -> Self {
        Self { ms, seq }
    }

    /// Parses `<ms>-<seq>`.
    ///
    /// # Errors
    ///
    /// [`FanoutError::InvalidEventId`] unless `text` is two unsigned 64-bit decimal
    /// numbers joined by `-`.
    pub fn parse(text: &str) -> Result<Self, FanoutError> {
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u64>().ok()
        };
        text.split_once('-')
            .and_then(|(ms, seq)| Some(Self::new(number(ms)?, number(seq)?)))
            .ok_or_else(|| FanoutError::InvalidEventId { id: text.into() })
    }
}

impl FromStr for EventId {
    type Err = FanoutError;

    fn from_str(text: &str) -> Result<Self, FanoutError> {
        Self::parse(text)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::EventId;

    #[test]
    fn parses_strictly() {
        assert_eq!(EventId::parse("0-0"), Ok(EventId::ZERO));
        assert_eq!(EventId::parse("007-01"), Ok(EventId::new(7, 1)));
        let max = format!("{}-{}", u64::MAX, u64::MAX);
        assert_eq!(EventId::parse(&max), Ok(EventId::new(u64::MAX, u64::MAX)));
        for bad in [
            "",
            "-",
            "1",
            "1-",
            "-1",
            "1-2-3",
            "+1-0",
            "1-+0",
            " 1-0",
            "1-0 ",
            "a-0",
            "18446744073709551616-0",
            "1_0-0",
            "١-0",
        ] {
            assert!(EventId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn orders_as_numbers() {
        let ids = ["10-0", "9-5", "9-10", "10-1", "9-9"];
        let mut parsed: Vec<EventId> = ids.iter().map(|i| i.parse().unwrap()).collect();
        parsed.sort();
        let text: Vec<String> = parsed.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["9-5", "9-9", "9-10", "10-0", "10-1"]);
    }
}
