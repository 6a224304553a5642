//! `[object_store]`: how a node reaches object storage.

/// How a node reaches object storage (`[object_store]` in `config.toml`). Every
/// field is optional: credentials always come from the AWS environment variables
/// or profile files, never from here.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSettings {
    /// The endpoint URL of an S3-compatible store (`http://127.0.0.1:8333`);
    /// unset: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
    /// `endpoint_url`, else AWS itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region; unset: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's, else
    /// `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// The profile of `~/.aws/credentials` to use when `AWS_PROFILE` is unset.
    #[serde(default)]
    pub profile: Option<String>,
    /// Address buckets as `bucket.host` instead of `host/bucket` (path style, the
    /// default, which every S3-compatible store accepts).
    #[serde(default)]
    pub virtual_hosted_style: bool,
    /// Seconds one request may take before it is retried (default 30).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Retries of a failed request (503, a reset, a timeout) before the operation
    /// fails (default 5).
    #[serde(default)]
    pub retries: Option<usize>,
}
