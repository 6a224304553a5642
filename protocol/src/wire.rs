//! Messages of the node-to-node transfer protocol (`/mesh/transfer/1`) and of the
//! gossip topics. Framing and size caps on the stream live in `node/`; every
//! response kind has a byte limit here.

use serde::{Deserialize, Serialize};

use crate::encoding::{check_format, decode, encode, DecodeError};
use crate::hash::{Hash, ManifestHash};
use crate::id::ProductId;
use crate::manifest::{MAX_CHUNK_LEN, MAX_MANIFEST_BYTES};

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

/// The most signed records (provider records, usage reports) in one page.
pub const MAX_RECORD_PAGE: u16 = 16;

/// The most chunks one [`Request::Chunks`] may name.
pub const MAX_BATCH_CHUNKS: usize = 64;

/// The most chunk bytes one [`Response::Chunks`] carries; a batch over this is refused
/// unless it is a single chunk (a chunk may be up to `MAX_CHUNK_LEN`, the same size).
pub const MAX_BATCH_BYTES: u64 = MAX_CHUNK_LEN as u64;

/// Chunk bytes in a [`Response::Chunks`], carried as one byte string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkData(#[serde(with = "crate::bytes")] pub Vec<u8>);

impl std::fmt::Debug for ChunkData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkData({} bytes)", self.0.len())
    }
}

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
    /// Several chunks of the product named by `manifest` in one exchange (at most
    /// [`MAX_BATCH_CHUNKS`], totalling at most [`MAX_BATCH_BYTES`] unless just one):
    /// the bulk transfer unit, so small chunks (good for dedup) do not each pay for a
    /// stream. Answered [`Response::Chunks`] in the same order, or as a whole
    /// `NotFound` / `Denied` / `Busy` / `Invalid`.
    Chunks {
        /// The product version the chunks belong to.
        manifest: ManifestHash,
        /// The chunks' hashes.
        chunks: Vec<Hash>,
        /// This is the first request of a fetch: providers count usage on it.
        start: bool,
    },
    /// A page of the signed records of one kind the provider holds, in key order
    /// after a cursor (a peer id for per-node records, `domain/name consumer` for
    /// access records): pulled on connect like the catalog, so every node converges
    /// on the same providers, usage totals and access decisions.
    Records {
        /// Which records.
        kind: RecordKind,
        /// Resume after this peer id (exclusive), or from the start.
        after: Option<String>,
        /// Page size, at most [`MAX_RECORD_PAGE`].
        limit: u16,
    },
    /// The provider's catalog digest ([`Response::Digest`]): anti-entropy asks a
    /// peer in turn and pulls its catalog only when the digests differ.
    Digest,
}

/// The kinds of per-node signed records pulled with [`Request::Records`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// `Signed<ProviderRecord>`: which versions a node holds.
    Providers,
    /// `Signed<UsageReport>`: a provider's fetch counts.
    Usage,
    /// `Signed<AccessRequest>`: one per product and consumer domain, by
    /// `domain/name consumer` (see `access::access_key`).
    AccessRequests,
    /// `Signed<AccessDecision>`: one per product and consumer domain, keyed alike.
    AccessDecisions,
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
    /// The chunks of a [`Request::Chunks`], in the order asked.
    Chunks(Vec<ChunkData>),
    /// Encoded signed records of a [`Request::Records`], in peer id order, and
    /// whether more pages follow.
    Records {
        /// Envelopes.
        entries: Vec<Vec<u8>>,
        /// Whether another page follows.
        more: bool,
    },
    /// The set of product versions in the provider's catalog, summarised: how many,
    /// and the XOR of the BLAKE3 hash of each one's catalog key. Two catalogs with
    /// the same versions have the same digest.
    Digest {
        /// Product versions in the catalog.
        versions: u64,
        /// XOR of BLAKE3(`domain/name \0 version`) over them.
        digest: Hash,
    },
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

/// The bytes a [`Response::Chunks`] frame body starts with (format, variant), before
/// its element count. Lets the node stream that hot frame without building it whole;
/// the streamed bytes are exactly [`encode_response`]'s.
pub fn chunks_prefix() -> Vec<u8> {
    let mut empty = encode_response(&Response::Chunks(Vec::new()));
    empty.pop(); // the element count, 0
    empty
}

/// Appends `v` in the canonical integer encoding of frames (bincode's varint: below
/// 251 one byte, else a marker byte 251/252/253 and 2/4/8 little-endian bytes).
pub fn put_varint(v: u64, out: &mut Vec<u8>) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// How many bytes follow a varint's first byte `b` (`None`: not a valid marker).
pub fn varint_tail_len(b: u8) -> Option<usize> {
    match b {
        0..=250 => Some(0),
        251 => Some(2),
        252 => Some(4),
        253 => Some(8),
        _ => None,
    }
}

/// Decodes a varint from its first byte and tail, refusing non-minimal forms.
pub fn get_varint(first: u8, tail: &[u8]) -> Option<u64> {
    let v = match (first, tail.len()) {
        (0..=250, 0) => return Some(u64::from(first)),
        (251, 2) => u64::from(u16::from_le_bytes(tail.try_into().ok()?)),
        (252, 4) => u64::from(u32::from_le_bytes(tail.try_into().ok()?)),
        (253, 8) => u64::from_le_bytes(tail.try_into().ok()?),
        _ => return None,
    };
    let mut canonical = Vec::with_capacity(9);
    put_varint(v, &mut canonical);
    (canonical.len() == tail.len() + 1).then_some(v)
}

/// Decodes an untrusted response frame body.
pub fn decode_response(bytes: &[u8]) -> Result<Response, DecodeError> {
    let f: Frame<Response> = decode(bytes, MAX_RESPONSE_BYTES, "transfer response")?;
    check_format("transfer response", f.format, WIRE_FORMAT)?;
    Ok(f.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_frame_encoding() {
        for v in [
            0u64,
            1,
            250,
            251,
            65_535,
            65_536,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut ours = Vec::new();
            put_varint(v, &mut ours);
            assert_eq!(ours, encode(&v), "{v}");
            let tail = varint_tail_len(ours[0]).unwrap();
            assert_eq!(get_varint(ours[0], &ours[1..1 + tail]), Some(v));
        }
        // A non-minimal form (5 as a u16) is refused.
        assert_eq!(get_varint(251, &[5, 0]), None);
    }

    #[test]
    fn chunks_frames_stream_as_prefix_count_then_length_prefixed_bytes() {
        let data = vec![ChunkData(vec![7; 300]), ChunkData(Vec::new())];
        let mut streamed = chunks_prefix();
        put_varint(data.len() as u64, &mut streamed);
        for d in &data {
            put_varint(d.0.len() as u64, &mut streamed);
            streamed.extend_from_slice(&d.0);
        }
        assert_eq!(streamed, encode_response(&Response::Chunks(data)));
    }
}
