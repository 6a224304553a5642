//! One `s3://bucket/prefix`, opened: the client, and errors that name the
//! endpoint, the bucket and the key used.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};

use super::credentials;
use super::error::ObjectError;
use super::settings::ObjectSettings;
use super::url::ObjectUrl;

/// One `s3://bucket/prefix`, opened.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<AmazonS3>,
    url: ObjectUrl,
    endpoint: String,
    key_id: String,
    source_of_key: String,
}

impl Bucket {
    /// Opens `url` with `settings` and the process's AWS environment. Makes no
    /// request: [`Bucket::check`] does.
    pub fn open(url: &ObjectUrl, settings: &ObjectSettings) -> Result<Self, ObjectError> {
        Self::open_with_env(url, settings, &|k| std::env::var(k).ok())
    }

    /// [`Bucket::open`] with the environment looked up through `env`.
    pub fn open_with_env(
        url: &ObjectUrl,
        settings: &ObjectSettings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ObjectError> {
        let r = credentials::resolve(settings, env)?;
        let endpoint = r
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", r.region));
        let client = ClientOptions::new()
            .with_allow_http(endpoint.starts_with("http://"))
            .with_timeout(Duration::from_secs(settings.timeout_secs.unwrap_or(30)))
            .with_connect_timeout(Duration::from_secs(10));
        let retry = RetryConfig {
            max_retries: settings.retries.unwrap_or(5),
            retry_timeout: Duration::from_secs(120),
            ..RetryConfig::default()
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&r.region)
            .with_access_key_id(&r.credentials.key_id)
            .with_secret_access_key(&r.credentials.secret)
            .with_virtual_hosted_style_request(settings.virtual_hosted_style)
            .with_client_options(client)
            .with_retry(retry);
        if let Some(token) = &r.credentials.token {
            builder = builder.with_token(token);
        }
        if let Some(e) = &r.endpoint {
            builder = builder.with_endpoint(e);
        }
        let store = builder.build().map_err(|e| ObjectError::Store {
            endpoint: endpoint.clone(),
            bucket: url.bucket.clone(),
            detail: e.to_string(),
        })?;
        Ok(Bucket {
            store: Arc::new(store),
            url: url.clone(),
            endpoint,
            key_id: r.credentials.key_id,
            source_of_key: r.credentials.source,
        })
    }

    /// Where this bucket and prefix are.
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    /// The endpoint URL (for messages).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The store, for operations this type does not wrap (multipart uploads).
    pub fn store(&self) -> &Arc<AmazonS3> {
        &self.store
    }

    /// The key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> Result<ObjectPath, ObjectError> {
        self.url.key(rel)
    }

    /// The same bucket and credentials under another prefix.
    pub fn with_prefix(&self, url: ObjectUrl) -> Bucket {
        Bucket {
            url,
            ..self.clone()
        }
    }

    /// One small request (a listing of at most one key) that fails with the
    /// clear error when the store is unreachable, the credentials are refused or
    /// the bucket does not exist.
    pub async fn check(&self) -> Result<(), ObjectError> {
        let prefix = self.key("")?;
        let prefix = (!self.url.prefix.is_empty()).then_some(&prefix);
        self.store
            .list_with_delimiter(prefix)
            .await
            .map(|_| ())
            .map_err(|e| self.error(e, ""))
    }

    /// The object at `key`'s size and ETag, or `None` if there is none.
    pub async fn head(&self, key: &ObjectPath) -> Result<Option<ObjectMeta>, ObjectError> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { source, .. }) if !no_bucket(&*source) => Ok(None),
            Err(e) => Err(self.error(e, key.as_ref())),
        }
    }

    /// Describes a failure of an operation on `key` (empty: the bucket itself).
    pub fn error(&self, e: object_store::Error, key: &str) -> ObjectError {
        let endpoint = self.endpoint.clone();
        let bucket = self.url.bucket.clone();
        let detail = e.to_string();
        let denied = |detail: String| ObjectError::Denied {
            endpoint: self.endpoint.clone(),
            bucket: self.url.bucket.clone(),
            key_id: self.key_id.clone(),
            source_of_key: self.source_of_key.clone(),
            detail,
        };
        match e {
            object_store::Error::NotFound { source, .. } if no_bucket(&*source) => {
                ObjectError::NoBucket { endpoint, bucket }
            }
            object_store::Error::NotFound { .. } => ObjectError::NotFound {
                endpoint,
                bucket,
                key: key.to_string(),
            },
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. } => ObjectError::Conflict {
                endpoint,
                bucket,
                key: key.to_string(),
            },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => denied(detail),
            _ if detail.contains("NoSuchBucket") => ObjectError::NoBucket { endpoint, bucket },
            _ if [
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AccessDenied",
            ]
            .iter()
            .any(|c| detail.contains(c)) =>
            {
                denied(detail)
            }
            _ => ObjectError::Store {
                endpoint,
                bucket,
                detail,
            },
        }
    }
}

fn no_bucket(source: &(dyn std::error::Error + Send + Sync)) -> bool {
    let mut text = source.to_string();
    let mut next = source.source();
    while let Some(s) = next {
        text.push_str(&s.to_string());
        next = s.source();
    }
    text.contains("NoSuchBucket")
}
