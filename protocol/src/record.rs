//! Why a gossiped record (an announcement, a provider record, an access request or
//! decision) is refused by its own `validate`: the limits that keep records small and
//! well-formed, checked before anything else reads them.

use crate::id::{DomainName, ProductId};

/// The longest libp2p peer id (base58) a record may name, in bytes.
pub const MAX_PEER_ID_LEN: usize = 128;

/// A record's own shape is wrong; the node that receives it drops it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Written in a format this node does not read.
    #[error("unsupported {what} format {format} (this node reads format {supported}); upgrade this node")]
    Format {
        /// The kind of record, e.g. "announcement".
        what: &'static str,
        /// The format the record names.
        format: u8,
        /// The one format this node reads.
        supported: u8,
    },
    /// A list holds too many or too few entries.
    #[error("{what}: {count} listed, {min}..={max} allowed")]
    Count {
        /// What the list holds, e.g. "an announcement's providers".
        what: &'static str,
        /// How many the record lists.
        count: usize,
        /// The fewest allowed.
        min: usize,
        /// The most allowed.
        max: usize,
    },
    /// A text field is empty or longer than its limit.
    #[error("the {what} is {len} bytes, {min}..={max} allowed")]
    Length {
        /// The field, e.g. "provider peer id".
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The shortest allowed.
        min: usize,
        /// The longest allowed.
        max: usize,
    },
    /// Dated further ahead than the allowed clock skew.
    #[error("it is dated {ahead_secs} s in the future (more than the {skew_secs} s of clock skew allowed); check the signer's clock")]
    FutureDated {
        /// How far ahead of this node's clock, in seconds.
        ahead_secs: u64,
        /// The skew allowed, in seconds.
        skew_secs: u64,
    },
    /// A domain asks for, or is granted, access to its own product.
    #[error("domain {domain} owns {product} and needs no access request or grant")]
    OwnProduct {
        /// The consumer domain, which is the owner.
        domain: DomainName,
        /// The product.
        product: ProductId,
    },
    /// A grant whose end is not after its issue time.
    #[error("the grant ends before it was issued")]
    EndsBeforeIssued,
}

/// Checks that a list of `count` entries holds `min..=max`.
pub(crate) fn check_count(
    what: &'static str,
    count: usize,
    min: usize,
    max: usize,
) -> Result<(), RecordError> {
    if count < min || count > max {
        return Err(RecordError::Count {
            what,
            count,
            min,
            max,
        });
    }
    Ok(())
}

/// Checks that a text of `len` bytes is `min..=max` long.
pub(crate) fn check_length(
    what: &'static str,
    len: usize,
    min: usize,
    max: usize,
) -> Result<(), RecordError> {
    if len < min || len > max {
        return Err(RecordError::Length {
            what,
            len,
            min,
            max,
        });
    }
    Ok(())
}
