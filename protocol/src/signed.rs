//! `Signed<T>`: canonical bytes of a value plus ed25519 signatures over
//! `domain tag || bytes`, so a signature of one kind never verifies as another.
//!
//! The payload bytes are kept exactly as signed; the value is decoded from them on
//! demand with the kind's byte limit. Hashes of signed values (the [`ManifestHash`])
//! are over the payload only, so adding a signature never renames a value.
//!
//! [`ManifestHash`]: crate::ManifestHash

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::encoding::{check_format, decode, encode, DecodeError};
use crate::keys::{KeyPair, PublicKey, Signature};
use crate::Hash;

/// The format version of a signed envelope.
pub const ENVELOPE_FORMAT: u8 = 1;

/// At most this many signatures are carried by one envelope.
pub const MAX_SIGNATURES: usize = 64;

/// A kind of value that can be signed: names its domain tag and its size limit.
pub trait SignedKind: Serialize + DeserializeOwned {
    /// The domain-separation tag, e.g. `mesh/policy/v1`.
    const TAG: &'static str;
    /// The largest payload accepted for this kind, in bytes.
    const MAX_BYTES: usize;
    /// A short human name for error messages.
    const WHAT: &'static str;
}

/// One signature in an envelope.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Debug)]
pub struct SignatureEntry {
    /// Who signed.
    pub key: PublicKey,
    /// The signature over `TAG || payload`.
    pub sig: Signature,
}

/// A value's canonical bytes and the signatures over them.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Signed<T> {
    format: u8,
    #[serde(with = "crate::bytes")]
    payload: Vec<u8>,
    signatures: Vec<SignatureEntry>,
    #[serde(skip)]
    kind: PhantomData<fn() -> T>,
}

impl<T> Clone for Signed<T> {
    fn clone(&self) -> Self {
        Signed {
            format: self.format,
            payload: self.payload.clone(),
            signatures: self.signatures.clone(),
            kind: PhantomData,
        }
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload && self.signatures == other.signatures
    }
}

impl<T: SignedKind> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("kind", &T::TAG)
            .field("hash", &self.hash())
            .field("signatures", &self.signatures.len())
            .finish()
    }
}

/// The bytes a signature covers: the tag, a separator, then the payload.
fn signing_input(tag: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(tag.len() + 1 + payload.len());
    m.extend_from_slice(tag.as_bytes());
    m.push(0);
    m.extend_from_slice(payload);
    m
}

impl<T: SignedKind> Signed<T> {
    /// Encodes `value` canonically with no signatures yet.
    pub fn unsigned(value: &T) -> Self {
        Signed {
            format: ENVELOPE_FORMAT,
            payload: encode(value),
            signatures: Vec::new(),
            kind: PhantomData,
        }
    }

    /// Encodes `value` and signs it with `key`.
    pub fn sign(value: &T, key: &KeyPair) -> Self {
        let mut s = Self::unsigned(value);
        s.add_signature(key);
        s
    }

    /// Adds `key`'s signature, replacing an earlier one by the same key.
    pub fn add_signature(&mut self, key: &KeyPair) {
        let sig = key.sign(&signing_input(T::TAG, &self.payload));
        let public = key.public();
        self.signatures.retain(|e| e.key != public);
        self.signatures.push(SignatureEntry { key: public, sig });
    }

    /// The canonical bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// BLAKE3 of the payload: names the value independent of its signatures.
    pub fn hash(&self) -> Hash {
        Hash::of(&self.payload)
    }

    /// Every signature entry, valid or not.
    pub fn signatures(&self) -> &[SignatureEntry] {
        &self.signatures
    }

    /// Decodes the value from the payload, within the kind's size limit.
    pub fn value(&self) -> Result<T, DecodeError> {
        decode(&self.payload, T::MAX_BYTES, T::WHAT)
    }

    /// The distinct keys whose signature verifies over this kind's tag and payload.
    /// A key counts once however many signatures it carries.
    pub fn valid_signers(&self) -> BTreeSet<PublicKey> {
        let input = signing_input(T::TAG, &self.payload);
        self.signatures
            .iter()
            .filter(|e| e.key.verify(&input, &e.sig))
            .map(|e| e.key)
            .collect()
    }

    /// Whether `key` has a valid signature on this envelope.
    pub fn is_signed_by(&self, key: &PublicKey) -> bool {
        let input = signing_input(T::TAG, &self.payload);
        self.signatures
            .iter()
            .any(|e| e.key == *key && e.key.verify(&input, &e.sig))
    }

    /// The envelope's canonical bytes, for the wire and the disk.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }

    /// Decodes an envelope from untrusted bytes, checking size and format version.
    /// Signatures are not checked here: ask [`Signed::valid_signers`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let limit = T::MAX_BYTES + 64 + MAX_SIGNATURES * 100;
        let s: Signed<T> = decode(bytes, limit, T::WHAT)?;
        check_format(T::WHAT, s.format, ENVELOPE_FORMAT)?;
        if s.signatures.len() > MAX_SIGNATURES {
            return Err(DecodeError::Malformed {
                what: T::WHAT,
                reason: format!(
                    "{} signatures, at most {MAX_SIGNATURES} allowed",
                    s.signatures.len()
                ),
            });
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct A(u32);
    impl SignedKind for A {
        const TAG: &'static str = "mesh/test-a/v1";
        const MAX_BYTES: usize = 16;
        const WHAT: &'static str = "a";
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct B(u32);
    impl SignedKind for B {
        const TAG: &'static str = "mesh/test-b/v1";
        const MAX_BYTES: usize = 16;
        const WHAT: &'static str = "b";
    }

    #[test]
    fn signature_of_one_kind_never_verifies_as_another() {
        let k = KeyPair::from_secret([1; 32]);
        let a = Signed::sign(&A(5), &k);
        assert!(a.is_signed_by(&k.public()));
        // Same payload bytes, reinterpreted as kind B: the tag differs, so it fails.
        let b: Signed<B> = Signed::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(b.value().unwrap(), B(5));
        assert!(b.valid_signers().is_empty());
    }

    #[test]
    fn key_counts_once_and_tamper_fails() {
        let k = KeyPair::from_secret([1; 32]);
        let mut a = Signed::sign(&A(5), &k);
        let dup = a.signatures[0];
        a.signatures.push(dup);
        assert_eq!(a.valid_signers().len(), 1);
        a.payload[0] ^= 1;
        assert!(a.valid_signers().is_empty());
    }
}
