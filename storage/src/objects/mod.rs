//! Object storage: S3 and S3-compatible stores (SeaweedFS, MinIO, Ceph), through the
//! `object_store` crate's AWS backend. A [`Bucket`] is one `s3://bucket/prefix`
//! opened with the node's [`ObjectSettings`] and the standard AWS credentials
//! (see [`credentials`]); its errors ([`ObjectError`]) name the endpoint, the bucket
//! and what to do, never a secret.
//!
//! `object_store`'s [`ObjectStore`] trait is the seam: the S3 backend here, its
//! local-file-system and in-memory backends in tests, and a fault-injecting
//! wrapper all implement it, so code above reads and writes objects without
//! knowing which.

mod bucket;
pub mod credentials;
mod error;
mod settings;
mod source;
mod stream;
mod url;

pub use bucket::Bucket;
pub use credentials::{Credentials, Resolved};
pub use error::ObjectError;
pub use object_store;
pub use settings::ObjectSettings;
pub use source::{source_of, ObjectSource};
pub use stream::ObjectStream;
pub use url::ObjectUrl;
