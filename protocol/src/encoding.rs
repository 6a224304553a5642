//! The one canonical encoding: bincode 2.0.1 with a fixed configuration, behind our own
//! functions so the format could be swapped.
//!
//! Every decode takes a byte limit, rejects trailing bytes and never lets a length
//! prefix allocate more than the input could hold. Callers pass the limit that fits the
//! message: a gossip announcement is small, a manifest of a large product is not.

use serde::{de::DeserializeOwned, Serialize};

/// The hard ceiling on any decoded value, whatever limit a caller asks for.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<MAX_DECODE_BYTES>()
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the caller allows for this kind of message.
    #[error("{what}: {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was being decoded.
        what: &'static str,
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("{what}: malformed encoding: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's explanation.
        reason: String,
    },
    /// A valid value was followed by extra bytes, so the input is not canonical.
    #[error("{what}: {extra} trailing bytes after the value")]
    TrailingBytes {
        /// What was being decoded.
        what: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// The value carries a format version this build does not understand.
    #[error("{what}: unsupported format version {found} (this build reads version {expected}); upgrade mesh")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        found: u8,
        /// The version expected.
        expected: u8,
    },
}

/// Encodes a value in the canonical form.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Encoding into a Vec only fails for values serde cannot represent (e.g. maps with
    // unknown length), which none of our types are; an empty result then fails decode.
    bincode::serde::encode_to_vec(value, config()).unwrap_or_default()
}

/// Decodes a value from untrusted bytes, refusing inputs over `limit` bytes.
pub fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
    what: &'static str,
) -> Result<T, DecodeError> {
    if bytes.len() > limit.min(MAX_DECODE_BYTES) {
        return Err(DecodeError::TooLarge {
            what,
            len: bytes.len(),
            limit,
        });
    }
    // bincode's limit counts claimed lengths against the ceiling before allocating;
    // the input-length check above bounds what a claim could legitimately need.
    let (value, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| {
            DecodeError::Malformed {
                what,
                reason: e.to_string(),
            }
        })?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes {
            what,
            extra: bytes.len() - used,
        });
    }
    Ok(value)
}

/// Checks a format version byte carried inside a value.
pub fn check_format(what: &'static str, found: u8, expected: u8) -> Result<(), DecodeError> {
    if found == expected {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            what,
            found,
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_trailing_and_oversized() {
        let mut b = encode(&(1u32, "x".to_string()));
        assert!(decode::<(u32, String)>(&b, 100, "t").is_ok());
        b.push(0);
        assert!(matches!(
            decode::<(u32, String)>(&b, 100, "t"),
            Err(DecodeError::TrailingBytes { .. })
        ));
        assert!(matches!(
            decode::<(u32, String)>(&b, 2, "t"),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming u64::MAX elements: varint 0xFF + 8 bytes.
        let bomb = [0xFFu8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(decode::<Vec<u8>>(&bomb, 1024, "bomb").is_err());
        assert!(decode::<Vec<String>>(&bomb, 1024, "bomb").is_err());
    }
}
