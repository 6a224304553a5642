//! Messages of the node-to-node transfer protocol (`/mesh/transfer/1`) and of the
//! gossip topics. Framing and size caps on the stream live in `node/`; every
//! response kind has a byte limit here.

use serde::{Deserialize, Serialize};

use crate::encoding::{check_format, decode, encode, DecodeError};
use crate::hash::{Hash, ManifestHash};
use crate::id::ProductId;
use crate::manifest::MAX_MANIFEST_BYTES;

/// The format version of transfer frames.
pub const WIRE_FORMAT: u8 = 1;

/// The largest request frame.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// The largest response frame: a maximal manifest plus envelope overhead.
pub const MAX_RESPONSE_BYTES: usize = MAX_MANIFEST_BYTES + 64 * 1024;

/// The most policies in one page (each at most 1 MiB).
pub const MAX_POLICY_PAGE: u16 = 16;

/// The most catalog entries in one page.
pub const MAX_CATALOG_PAGE: u16 = 256;

/// A request from one node to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// The signed manifest with this hash.
    Manifest(ManifestHash),
    /// A chunk of the product named by `manifest`; providers authorize the request
    /// against that product and serve only chunks it contains.
    Chunk {
        /// The product version the chunk belongs to.
        manifest: ManifestHash,
        /// The chunk's hash.
        chunk: Hash,
    },
    /// Signed policies with versions after `after`, oldest first.
    Policies {
        /// The requester's newest version.
        after: u64,
        /// Page size, at most [`MAX_POLICY_PAGE`].
        limit: u16,
    },
    /// A page of the provider's catalog: signed announcements after a cursor.
    Catalog {
        /// Resume after this product version (exclusive), or from the start.
        after: Option<(ProductId, semver::Version)>,
        /// Page size, at most [`MAX_CATALOG_PAGE`].
        limit: u16,
    },
}

/// A response to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Encoded `Signed<Manifest>`.
    Manifest(#[serde(with = "crate::bytes")] Vec<u8>),
    /// Chunk bytes.
    Chunk(#[serde(with = "crate::bytes")] Vec<u8>),
    /// Encoded `Signed<Announcement>`s and whether more pages follow.
    Catalog {
        /// Envelopes, in catalog order.
        entries: Vec<Vec<u8>>,
        /// Whether another page follows.
        more: bool,
    },
    /// Encoded `Signed<Policy>`s, oldest first, and whether more pages follow.
    Policies {
        /// Envelopes.
        entries: Vec<Vec<u8>>,
        /// Whether another page follows.
        more: bool,
    },
    /// The provider does not hold it.
    NotFound,
    /// The provider's policy refuses this requester.
    Denied {
        /// The deciding rule.
        rule: String,
        /// Its human reason.
        reason: String,
    },
    /// Too many requests in flight; retry later or elsewhere.
    Busy,
    /// The request was not understood.
    Invalid(String),
}

#[derive(Serialize, Deserialize)]
struct Frame<T> {
    format: u8,
    body: T,
}

/// Encodes a request frame body.
pub fn encode_request(r: &Request) -> Vec<u8> {
    encode(&Frame {
        format: WIRE_FORMAT,
        body: r,
    })
}

/// Encodes a response frame body.
pub fn encode_response(r: &Response) -> Vec<u8> {
    encode(&Frame {
        format: WIRE_FORMAT,
        body: r,
    })
}

/// Decodes an untrusted request frame body.
pub fn decode_request(bytes: &[u8]) -> Result<Request, DecodeError> {
    let f: Frame<Request> = decode(bytes, MAX_REQUEST_BYTES, "transfer request")?;
    check_format("transfer request", f.format, WIRE_FORMAT)?;
    Ok(f.body)
}

/// Decodes an untrusted response frame body.
pub fn decode_response(bytes: &[u8]) -> Result<Response, DecodeError> {
    let f: Frame<Response> = decode(bytes, MAX_RESPONSE_BYTES, "transfer response")?;
    check_format("transfer response", f.format, WIRE_FORMAT)?;
    Ok(f.body)
}
