//! The one canonical encoding: bincode 2.0.1 with a fixed configuration, behind our own
//! functions so the format could be swapped.
//!
//! Every decode takes a byte limit, rejects trailing bytes, and lets a length prefix
//! allocate at most 32 times the input's length (see `decode_tiered`). Callers pass the limit that fits the
//! message: a gossip announcement is small, a manifest of a large product is not.

use serde::{de::DeserializeOwned, Serialize};

/// The hard ceiling on any decoded value, whatever limit a caller asks for.
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

fn base() -> bincode::config::Configuration<bincode::config::LittleEndian, bincode::config::Varint>
{
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
}

/// Decodes with bincode's allocation limit set to `N` bytes. bincode counts against
/// the limit every string and byte-string length it is about to allocate (one byte
/// per byte) and every integer it decodes (its in-memory size, at most 8 bytes for
/// as little as one byte on the wire); sequences and maps grow as elements decode
/// and are not preallocated. So a legitimate input of `n` bytes claims at most `8n`.
fn decode_limited<T: DeserializeOwned, const N: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(bytes, base().with_limit::<N>())
}

/// Decodes with the smallest allocation limit, in steps of four from 4 KiB to
/// [`MAX_DECODE_BYTES`], that covers `8n` for an input of `n` bytes: a length
/// prefix in a short input can make the decoder allocate at most 32 times the
/// input's length (and 4 KiB for the shortest), never the full ceiling.
fn decode_tiered<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes.len().saturating_mul(8) {
        n if n <= 4 * KIB => decode_limited::<T, { 4 * KIB }>(bytes),
        n if n <= 16 * KIB => decode_limited::<T, { 16 * KIB }>(bytes),
        n if n <= 64 * KIB => decode_limited::<T, { 64 * KIB }>(bytes),
        n if n <= 256 * KIB => decode_limited::<T, { 256 * KIB }>(bytes),
        n if n <= MIB => decode_limited::<T, MIB>(bytes),
        n if n <= 4 * MIB => decode_limited::<T, { 4 * MIB }>(bytes),
        n if n <= 16 * MIB => decode_limited::<T, { 16 * MIB }>(bytes),
        _ => decode_limited::<T, MAX_DECODE_BYTES>(bytes),
    }
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
    bincode::serde::encode_to_vec(value, base()).unwrap_or_default()
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
    let (value, used) = decode_tiered::<T>(bytes).map_err(|e| DecodeError::Malformed {
        what,
        reason: e.to_string(),
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

    #[test]
    fn a_short_input_cannot_claim_a_large_allocation() {
        // A string claiming 60 MiB in a 9-byte input: refused by the 4 KiB tier's
        // limit before anything is allocated, not by running out of input after.
        let mut bomb = vec![0xFCu8];
        bomb.extend_from_slice(&(60u32 << 20).to_le_bytes());
        bomb.extend_from_slice(b"abcd");
        let err = decode::<String>(&bomb, MAX_DECODE_BYTES, "bomb")
            .unwrap_err()
            .to_string();
        assert!(err.contains("LimitExceeded"), "{err}");
        // A large legitimate value still decodes: its length picks a larger tier.
        let big = "x".repeat(2 << 20);
        let bytes = encode(&big);
        assert_eq!(
            decode::<String>(&bytes, MAX_DECODE_BYTES, "big").unwrap(),
            big
        );
    }
}
