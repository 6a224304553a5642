//! The file links of a Delta Sharing answer: short-lived (`link_ttl_secs`, an
//! hour by default), signed, never a path.
//!
//! A link names the product version, its manifest hash, the consumer token it
//! was made for and its expiry, sealed with a key of this process (keyed
//! BLAKE3), so it cannot be forged or altered and dies with a restart. The
//! node checks the seal, the expiry, that the token is still live and that the
//! token's domain may still read the version, then serves the file, whole or a
//! byte range (`Range: bytes=…`, as Parquet readers ask).

use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::protocol::Refusal;

/// The longest sealed link accepted (hex of the JSON, the seal).
const MAX_LINK: usize = 4096;

/// What a link opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Link {
    /// The product id.
    pub(super) p: String,
    /// The product version.
    pub(super) v: String,
    /// The version's manifest hash.
    pub(super) h: String,
    /// The consumer token's id.
    pub(super) t: String,
    /// When the link stops working (Unix ms).
    pub(super) e: u64,
}

/// Seals `link` with `key`: hex of its JSON, `-`, hex of the keyed hash.
pub(super) fn seal(key: &[u8; 32], link: &Link) -> String {
    let body = serde_json::to_vec(link).unwrap_or_default();
    let mac = blake3::keyed_hash(key, &body);
    format!("{}-{}", hex::encode(&body), mac.to_hex())
}

/// The link `text` seals, if `key` sealed it and it has not expired at `now_ms`.
pub(super) fn open(key: &[u8; 32], text: &str, now_ms: u64) -> Result<Link, Refusal> {
    let forged = || {
        Refusal::forbidden(
            "this file link was not made by this node process (it restarted, or the link was altered): list the table's files again",
        )
    };
    if text.len() > MAX_LINK {
        return Err(forged());
    }
    let (body, mac) = text.split_once('-').ok_or_else(forged)?;
    let body = hex::decode(body).map_err(|_| forged())?;
    let mac = blake3::Hash::from_hex(mac).map_err(|_| forged())?;
    // blake3::Hash compares in constant time.
    if blake3::keyed_hash(key, &body) != mac {
        return Err(forged());
    }
    let link: Link = serde_json::from_slice(&body).map_err(|_| forged())?;
    if now_ms >= link.e {
        return Err(Refusal::forbidden(
            "this file link has expired: list the table's files again for fresh links",
        ));
    }
    Ok(link)
}

/// The byte range a `Range` header asks of a file of `size` bytes (inclusive
/// ends): `None` for the whole file (no header, or several ranges, which the
/// whole answers too), `Err` when it lies outside the file.
fn range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (from, to) = spec.split_once('-').ok_or(())?;
    let (from, to) = (from.trim(), to.trim());
    let (start, end) = match (from.is_empty(), to.is_empty()) {
        // The last `to` bytes.
        (true, false) => {
            let n: u64 = to.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (false, _) => {
            let start: u64 = from.parse().map_err(|_| ())?;
            let end = if to.is_empty() {
                size.saturating_sub(1)
            } else {
                to.parse::<u64>()
                    .map_err(|_| ())?
                    .min(size.saturating_sub(1))
            };
            (start, end)
        }
        (true, true) => return Err(()),
    };
    if size == 0 || start >= size || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// The file at `path` (`size` bytes), whole or the range `headers` ask for,
/// streamed.
pub(super) async fn serve(path: &Path, size: u64, headers: &HeaderMap) -> Response {
    let parquet = HeaderValue::from_static("application/vnd.apache.parquet");
    let span = match range(headers, size) {
        Ok(span) => span,
        Err(()) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (start, end) = span.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            return Refusal::missing(format!(
                "the file is gone ({e}): list the table's files again"
            ))
            .into_response()
        }
    };
    if start > 0 {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
            return Refusal::missing(format!("reading the file: {e}")).into_response();
        }
    }
    let body = Body::from_stream(ReaderStream::new(file.take(len)));
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, parquet);
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if span.is_some() {
        *r.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            r.headers_mut().insert(header::CONTENT_RANGE, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(e: u64) -> Link {
        Link {
            p: "sales/orders".into(),
            v: "1.0.0".into(),
            h: "ab".into(),
            t: "0123456789ab".into(),
            e,
        }
    }

    #[test]
    fn a_link_opens_only_sealed_unaltered_and_in_time() {
        let key = [7u8; 32];
        let text = seal(&key, &link(2000));
        assert_eq!(open(&key, &text, 1000).unwrap(), link(2000));
        assert!(open(&key, &text, 2000)
            .unwrap_err()
            .message
            .contains("expired"));
        assert!(open(&[8u8; 32], &text, 1000).is_err(), "another key");
        let (body, mac) = text.split_once('-').unwrap();
        let mut forged = hex::decode(body).unwrap();
        let at = forged.len() - 2;
        forged[at] = b'9'; // a later expiry
        let altered = format!("{}-{mac}", hex::encode(forged));
        assert!(open(&key, &altered, 1000).is_err(), "altered");
        assert!(open(&key, "zz", 1000).is_err());
    }

    #[test]
    fn ranges_are_read_as_http_says() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(range(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range(&with("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(range(&with("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(range(&with("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(range(&with("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(range(&with("bytes=100-"), 100), Err(()));
        assert_eq!(range(&with("bytes=9-3"), 100), Err(()));
        assert_eq!(range(&with("bytes=x-3"), 100), Err(()));
    }
}
