//! `s3://bucket/prefix`: where in object storage a product is read from or
//! delivered to.

use std::fmt;
use std::str::FromStr;

use object_store::path::Path as ObjectPath;

use super::error::ObjectError;

/// A place in an S3-compatible store: a bucket and a key prefix (no leading or
/// trailing `/`; empty for the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ObjectUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, `/`-separated, without leading or trailing `/`.
    pub prefix: String,
}

impl ObjectUrl {
    /// Whether `text` names object storage (`s3://...`) rather than a local path.
    pub fn is_object_url(text: &str) -> bool {
        text.starts_with("s3://")
    }

    /// The key of `rel` (a `/`-separated path) under the prefix.
    pub fn key(&self, rel: &str) -> Result<ObjectPath, ObjectError> {
        let joined = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        ObjectPath::parse(&joined).map_err(|e| ObjectError::Url {
            url: format!("s3://{}/{joined}", self.bucket),
            why: e.to_string(),
        })
    }

    /// The same bucket with `rel` appended to the prefix.
    pub fn join(&self, rel: &str) -> ObjectUrl {
        let rel = rel.trim_matches('/');
        let prefix = match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        };
        ObjectUrl {
            bucket: self.bucket.clone(),
            prefix,
        }
    }
}

impl FromStr for ObjectUrl {
    type Err = ObjectError;

    fn from_str(text: &str) -> Result<Self, ObjectError> {
        let bad = |why: &str| ObjectError::Url {
            url: text.to_string(),
            why: why.to_string(),
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("only s3:// URLs are supported"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket naming rules: 3 to 63 of a-z, 0-9, '.', '-', starting and
        // ending with a letter or digit.
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !valid {
            return Err(bad(
                "a bucket name is 3 to 63 lowercase letters, digits, '.' or '-'",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            ObjectPath::parse(prefix).map_err(|e| bad(&e.to_string()))?;
        }
        Ok(ObjectUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_print_back() {
        let u: ObjectUrl = "s3://sales-lake/products/orders/".parse().expect("url");
        assert_eq!(u.bucket, "sales-lake");
        assert_eq!(u.prefix, "products/orders");
        assert_eq!(u.to_string(), "s3://sales-lake/products/orders");
        assert_eq!(
            u.key("1.0.0/data.csv").expect("key").as_ref(),
            "products/orders/1.0.0/data.csv"
        );
        let bare: ObjectUrl = "s3://lake".parse().expect("url");
        assert_eq!(bare.prefix, "");
        assert_eq!(bare.key("a/b").expect("key").as_ref(), "a/b");
        assert_eq!(bare.join("x/").to_string(), "s3://lake/x");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for bad in [
            "/tmp/x",
            "s3://",
            "s3://UPPER/x",
            "s3://ab",
            "s3://-lake/x",
            "s3://lake/a/../b",
            "gs://lake/x",
        ] {
            let e = bad.parse::<ObjectUrl>().expect_err(bad).to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }
}
