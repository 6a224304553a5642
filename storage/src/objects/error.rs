//! Object storage failures.

/// Object storage failures, each naming where and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// Not a usable `s3://` URL.
    #[error("{url} is not a usable object storage URL: {why}; write s3://BUCKET/PREFIX")]
    Url {
        /// The text given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// No credentials anywhere.
    #[error("no credentials for {endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the node's environment, or put them under profile {profile} of ~/.aws/credentials (AWS_PROFILE names another profile)")]
    NoCredentials {
        /// The endpoint.
        endpoint: String,
        /// The profile looked for.
        profile: String,
    },
    /// A profile file could not be read.
    #[error("cannot read the AWS profile file {path}: {why}")]
    Profile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        why: String,
    },
    /// The store refused the credentials.
    #[error("{endpoint} refused access to bucket {bucket} with access key {key_id} ({source_of_key}): {detail}; check the key and secret, and that the key may use this bucket")]
    Denied {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The access key id used.
        key_id: String,
        /// Where the key came from.
        source_of_key: String,
        /// The store's answer.
        detail: String,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist at {endpoint}; create it (for example `aws s3 mb s3://{bucket}`) or name another")]
    NoBucket {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
    },
    /// An object is not there.
    #[error("s3://{bucket}/{key} does not exist at {endpoint}")]
    NotFound {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// A conditional write lost: someone else changed the object first.
    #[error("s3://{bucket}/{key} at {endpoint} was changed by someone else meanwhile; nothing was overwritten: run again")]
    Conflict {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// Anything else the store or the network said.
    #[error("object storage at {endpoint} (bucket {bucket}): {detail}")]
    Store {
        /// The endpoint.
        endpoint: String,
        /// The bucket.
        bucket: String,
        /// What failed.
        detail: String,
    },
}
