//! What every node signs and verifies on the wire: hashes, identifiers, keys, the
//! canonical encoding, signed envelopes, product manifests, announcements, the
//! governance policy chain and its rules, and the wire messages nodes exchange.
//! The authoring side of products (drafts, ODCS, quality) is `mesh-contract`.
//!
//! Nothing here does I/O or knows about tokio or libp2p: `storage/` persists these
//! types, `node/` moves them over the network, and both rely on this crate for the
//! one canonical byte form ([`encoding`]) and for every signature check ([`signed`]).
//! Every decoder of untrusted bytes takes a byte limit.

#![deny(missing_docs)]

pub mod access;
pub mod announcement;
mod bytes;
pub mod chain;
pub mod duration;
pub mod encoding;
pub mod hash;
pub mod id;
pub mod keys;
pub mod manifest;
pub mod policy;
pub mod policy_change;
pub mod provider;
pub mod record;
pub mod rules;
pub mod signed;
pub mod usage;
pub mod wire;

pub use announcement::Announcement;
pub use chain::PolicyChain;
pub use encoding::{decode, encode, DecodeError};
pub use hash::{Hash, ManifestHash};
pub use id::{DomainName, ProductId, ProductRef};
pub use keys::{KeyPair, PublicKey};
pub use manifest::Manifest;
pub use policy::{Policy, PolicyError};
pub use record::RecordError;
pub use signed::{Signed, SignedKind};
