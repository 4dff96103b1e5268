//! `Content-Encoding`: the body decompressed, never past the size limit.

use std::borrow::Cow;
use std::io::{self, Read};
use std::str::FromStr;

use zstd::zstd_safe::zstd_sys::ZSTD_ErrorCode;

use super::IngestError;

/// How the body was sent (its `Content-Encoding`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// As is.
    #[default]
    Identity,
    /// One or more gzip members (RFC 1952), nothing after the last.
    Gzip,
    /// One or more zstd frames (RFC 8878).
    Zstd,
}

impl FromStr for Encoding {
    type Err = IngestError;

    /// `identity`, `gzip` or `zstd`, in any ASCII case (header values are
    /// case-insensitive); anything else is [`IngestError::UnknownEncoding`].
    fn from_str(name: &str) -> Result<Self, IngestError> {
        [
            ("identity", Self::Identity),
            ("gzip", Self::Gzip),
            ("zstd", Self::Zstd),
        ]
        .into_iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, encoding)| encoding)
        .ok_or(IngestError::UnknownEncoding)
    }
}

/// The smallest zstd window log always allowed: 8 MiB, what `zstd` levels 1-19 use for
/// a stream of unknown size, so an agent's ordinary output always decodes even under a
/// small `max_bytes`.
const ZSTD_WINDOW_LOG_FLOOR: u32 = 23;

/// The largest window log zstd itself supports.
const ZSTD_WINDOW_LOG_MAX: u32 = 31;

/// The zstd window log allowed for `max_bytes`: the power of two that covers it, at
/// least [`ZSTD_WINDOW_LOG_FLOOR`]. The window is memory the decoder takes up front, so
/// a frame that declares a huge one is refused before anything is allocated.
pub(super) fn zstd_window_log(max_bytes: usize) -> u32 {
    let covering = usize::BITS - max_bytes.saturating_sub(1).leading_zeros();
    covering.clamp(ZSTD_WINDOW_LOG_FLOOR, ZSTD_WINDOW_LOG_MAX)
}

/// The body decompressed, or `TooLarge` as soon as it would pass `max_bytes`: no more
/// than `max_bytes` of output is ever held, whatever the compressed data claims.
pub(super) fn decode(
    body: &[u8],
    encoding: Encoding,
    max_bytes: usize,
) -> Result<Cow<'_, [u8]>, IngestError> {
    let too_large = |decompressed| IngestError::TooLarge {
        max_bytes,
        decompressed,
    };
    match encoding {
        Encoding::Identity if body.len() > max_bytes => Err(too_large(false)),
        Encoding::Identity => Ok(Cow::Borrowed(body)),
        // A decoder would take nothing at all as an empty stream; it is not gzip/zstd.
        Encoding::Gzip if body.is_empty() => Err(IngestError::BadGzip),
        Encoding::Zstd if body.is_empty() => Err(IngestError::BadZstd),
        Encoding::Gzip => {
            let reader = flate2::bufread::MultiGzDecoder::new(body);
            match read_capped(reader, max_bytes, body.len()) {
                Ok(Some(out)) => Ok(Cow::Owned(out)),
                Ok(None) => Err(too_large(true)),
                Err(_) => Err(IngestError::BadGzip),
            }
        }
        Encoding::Zstd => {
            let log = zstd_window_log(max_bytes);
            let mut reader =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|_| IngestError::BadZstd)?;
            reader
                .window_log_max(log)
                .map_err(|_| IngestError::BadZstd)?;
            match read_capped(reader, max_bytes, body.len()) {
                Ok(Some(out)) => Ok(Cow::Owned(out)),
                Ok(None) => Err(too_large(true)),
                Err(err) if is_window_too_large(&err) => Err(IngestError::WindowTooLarge {
                    max_window: 1 << log,
                }),
                Err(_) => Err(IngestError::BadZstd),
            }
        }
    }
}

fn is_window_too_large(err: &io::Error) -> bool {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<zstd::Error>())
        .is_some_and(|zstd| zstd.is(ZSTD_ErrorCode::ZSTD_error_frameParameter_windowTooLarge))
}

/// Everything `reader` gives, or `None` once that passes `max_bytes`. The buffer grows
/// by doubling but never past `max_bytes`, so a bomb costs at most `max_bytes`.
fn read_capped(
    mut reader: impl Read,
    max_bytes: usize,
    hint: usize,
) -> io::Result<Option<Vec<u8>>> {
    const CHUNK: usize = 64 * 1024;
    let mut out = Vec::with_capacity(hint.saturating_mul(4).max(CHUNK).min(max_bytes));
    let mut chunk = [0; CHUNK];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if n > max_bytes - out.len() {
            return Ok(None);
        }
        if n > out.capacity() - out.len() {
            let grown = out
                .capacity()
                .saturating_mul(2)
                .clamp(out.len() + n, max_bytes);
            out.reserve_exact(grown - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn names() {
        assert_eq!("GZip".parse(), Ok(Encoding::Gzip));
        assert_eq!("identity".parse(), Ok(Encoding::Identity));
        assert_eq!("zstd".parse(), Ok(Encoding::Zstd));
        assert_eq!("br".parse::<Encoding>(), Err(IngestError::UnknownEncoding));
        assert_eq!(
            " gzip".parse::<Encoding>(),
            Err(IngestError::UnknownEncoding)
        );
    }

    #[test]
    fn gzip_members_and_limits() {
        let mut two = gzip(b"hello ");
        two.extend(gzip(b"world"));
        assert_eq!(
            decode(&two, Encoding::Gzip, 11).unwrap(),
            &b"hello world"[..]
        );
        assert_eq!(
            decode(&two, Encoding::Gzip, 10),
            Err(IngestError::TooLarge {
                max_bytes: 10,
                decompressed: true
            })
        );
        assert_eq!(decode(b"", Encoding::Gzip, 10), Err(IngestError::BadGzip));
        let mut trailing = gzip(b"x");
        trailing.push(0);
        assert_eq!(
            decode(&trailing, Encoding::Gzip, 10),
            Err(IngestError::BadGzip)
        );
        let whole = gzip(b"abc");
        assert_eq!(
            decode(&whole[..whole.len() - 1], Encoding::Gzip, 10),
            Err(IngestError::BadGzip)
        );
        assert_eq!(
            decode(b"abc", Encoding::Identity, 2),
            Err(IngestError::TooLarge {
                max_bytes: 2,
                decompressed: false
            })
        );
    }

    #[test]
    fn zstd_frames_windows_and_limits() {
        let mut two = zstd::encode_all(&b"hello "[..], 3).unwrap();
        two.extend(zstd::encode_all(&b"world"[..], 3).unwrap());
        assert_eq!(
            decode(&two, Encoding::Zstd, 11).unwrap(),
            &b"hello world"[..]
        );
        assert_eq!(
            decode(&two, Encoding::Zstd, 10),
            Err(IngestError::TooLarge {
                max_bytes: 10,
                decompressed: true
            })
        );
        assert_eq!(
            decode(&two[..two.len() - 1], Encoding::Zstd, 100),
            Err(IngestError::BadZstd)
        );
        assert_eq!(
            decode(b"not zstd", Encoding::Zstd, 100),
            Err(IngestError::BadZstd)
        );

        // A frame that asks for a 2^27-byte window, compressed without a known size.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        enc.window_log(27).unwrap();
        enc.write_all(b"small").unwrap();
        let big_window = enc.finish().unwrap();
        assert_eq!(
            decode(&big_window, Encoding::Zstd, 1 << 20),
            Err(IngestError::WindowTooLarge {
                max_window: 1 << 23
            })
        );
        assert_eq!(
            decode(&big_window, Encoding::Zstd, 1 << 27).unwrap(),
            &b"small"[..]
        );
    }

    #[test]
    fn window_logs() {
        assert_eq!(zstd_window_log(0), 23);
        assert_eq!(zstd_window_log(8 << 20), 23);
        assert_eq!(zstd_window_log((8 << 20) + 1), 24);
        assert_eq!(zstd_window_log(usize::MAX), 31);
    }
}
