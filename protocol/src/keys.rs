//! Ed25519 keys: [`PublicKey`] (hex on screen, raw bytes on the wire) and [`KeyPair`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ed25519 public key: a council member, a domain publisher.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

/// An ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

/// Whether `bytes` are a usable ed25519 public key: a valid point that is not of
/// small order. A small-order ("weak") key, such as the identity point, lets anyone
/// make signatures that verify for it, so it never enters a policy, manifest,
/// announcement or report.
fn check_key(bytes: &[u8; 32]) -> Result<(), KeyError> {
    usable_key(bytes).map(|_| ())
}

/// Usable keys kept decompressed, at most (the cache is emptied when full).
const MAX_CACHED_KEYS: usize = 4096;

/// `bytes` as a usable verifying key (see [`check_key`]). Decompressing a point is
/// about a third of checking a signature, and the same few council and publisher
/// keys sign nearly everything a node checks (a catalog sync of 100,000 entries
/// met each key 100 times, decompressing it three times each), so usable keys are
/// kept decompressed in a small bounded cache.
fn usable_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], VerifyingKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    let lock = || cache.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(key) = lock().get(bytes) {
        return Ok(*key);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
    if key.is_weak() {
        return Err(KeyError::Weak);
    }
    let mut cached = lock();
    if cached.len() >= MAX_CACHED_KEYS {
        cached.clear();
    }
    cached.insert(*bytes, key);
    Ok(key)
}

/// Why bytes are not a usable public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not a point of the curve.
    #[error("not an ed25519 public key")]
    NotAPoint,
    /// A small-order point: anyone can forge signatures for it.
    #[error("a weak (small-order) ed25519 key, for which anyone can forge signatures; generate a new key with `mesh council keygen`")]
    Weak,
}

impl PublicKey {
    /// Checks and wraps raw key bytes: a valid point that is not of small order.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        check_key(&bytes)?;
        Ok(PublicKey(bytes))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 12 hex digits, for human output.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }

    /// Whether `sig` is a valid signature by this key over `message`, verified
    /// strictly (RFC 8032 with canonical `S` and no small-order `R` or key), so a
    /// signature never verifies for more than the message it was made for.
    pub fn verify(&self, message: &[u8], sig: &Signature) -> bool {
        let Ok(key) = usable_key(&self.0) else {
            return false;
        };
        key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}..)", hex::encode(&self.0[..6]))
    }
}

/// Why a string is not a public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid public key {text:?}: {why}")]
pub struct ParseKeyError {
    text: String,
    why: String,
}

impl ParseKeyError {
    fn new(text: &str, why: impl fmt::Display) -> Self {
        ParseKeyError {
            text: text.chars().take(80).collect(),
            why: why.to_string(),
        }
    }
}

impl FromStr for PublicKey {
    type Err = ParseKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| {
            ParseKeyError::new(
                s,
                "expected 64 hex digits as printed by `mesh council keygen` or `mesh init`",
            )
        })?;
        PublicKey::from_bytes(out).map_err(|e| ParseKeyError::new(s, e))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            String::deserialize(d)?
                .parse()
                .map_err(serde::de::Error::custom)
        } else {
            PublicKey::from_bytes(<[u8; 32]>::deserialize(d)?).map_err(serde::de::Error::custom)
        }
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(self.0))
        } else {
            // serde implements arrays only up to 32 elements: a tuple of two halves.
            let (a, b) = self.0.split_at(32);
            let mut lo = [0u8; 32];
            let mut hi = [0u8; 32];
            lo.copy_from_slice(a);
            hi.copy_from_slice(b);
            (lo, hi).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = [0u8; 64];
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        } else {
            let (lo, hi) = <([u8; 32], [u8; 32])>::deserialize(d)?;
            out[..32].copy_from_slice(&lo);
            out[32..].copy_from_slice(&hi);
        }
        Ok(Signature(out))
    }
}

/// An ed25519 signing key with its public half.
pub struct KeyPair {
    signing: SigningKey,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({})", self.public().short())
    }
}

impl KeyPair {
    /// A fresh key from rand's thread generator (a CSPRNG seeded from the
    /// operating system's random source).
    pub fn generate() -> Self {
        KeyPair {
            signing: SigningKey::generate(&mut rand::rng()),
        }
    }

    /// A key from 32 secret bytes (key files, deterministic test keys).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        KeyPair {
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// The 32 secret bytes; handle with care.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.signing.sign(message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_parse() {
        let k = KeyPair::from_secret([7; 32]);
        let sig = k.sign(b"hello");
        assert!(k.public().verify(b"hello", &sig));
        assert!(!k.public().verify(b"hellO", &sig));
        assert_eq!(k.public().to_string().parse::<PublicKey>(), Ok(k.public()));
        assert!("xyz".parse::<PublicKey>().is_err());
    }

    /// The identity point: small order, so `[S]B = R + [k]A` holds for R = identity
    /// and S = 0 whatever the message.
    const IDENTITY: [u8; 32] = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };

    #[test]
    fn a_weak_key_is_refused_wherever_it_enters() {
        let text = hex::encode(IDENTITY);
        let err = text.parse::<PublicKey>().unwrap_err().to_string();
        assert!(err.contains("weak"), "{err}");
        assert_eq!(PublicKey::from_bytes(IDENTITY), Err(KeyError::Weak));
        // The binary form (manifests, announcements, policies on the wire) too.
        let bytes = crate::encode(&(1u8, IDENTITY));
        assert!(crate::decode::<(u8, PublicKey)>(&bytes, 1024, "key").is_err());
        let json = format!("\"{text}\"");
        assert!(serde_json::from_str::<PublicKey>(&json).is_err());
    }

    #[test]
    fn the_identity_signature_forgery_does_not_verify() {
        // R = identity, S = 0: verifies non-strictly for the identity key on any
        // message.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        let weak = PublicKey(IDENTITY);
        assert!(!weak.verify(b"any message", &Signature(forged)));
        assert!(!weak.verify(b"another one", &Signature(forged)));
        // An honest key still verifies its own signatures.
        let k = KeyPair::generate();
        assert!(k.public().verify(b"m", &k.sign(b"m")));
    }

    #[test]
    fn cached_keys_check_exactly_as_fresh_ones_and_the_cache_stays_bounded() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        for _ in 0..2 {
            assert!(a.public().verify(b"m", &a.sign(b"m")));
            assert!(!a.public().verify(b"m", &b.sign(b"m")));
            assert!(!b.public().verify(b"m", &a.sign(b"m")));
            assert_eq!(PublicKey::from_bytes(IDENTITY), Err(KeyError::Weak));
        }
        // More keys than the cache holds: it is emptied, and checks go on.
        for i in 0..(MAX_CACHED_KEYS + 10) {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            PublicKey::from_bytes(*KeyPair::from_secret(seed).public().as_bytes())
                .expect("a usable key");
        }
        assert!(a.public().verify(b"m", &a.sign(b"m")));
        assert!(!a.public().verify(b"m", &b.sign(b"m")));
    }
}
