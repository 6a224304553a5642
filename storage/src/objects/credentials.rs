//! Where a node's object storage credentials, region and endpoint come from, in the
//! order the AWS tools use: the standard environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`),
//! then the profile (`AWS_PROFILE`, else the configured one, else `default`) of the
//! shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
//! `~/.aws/credentials`) and config file (`AWS_CONFIG_FILE`, else
//! `~/.aws/config`). The node's own `[object_store]` settings win over both for
//! the endpoint and region.
//!
//! The secret is kept out of every `Debug` and error message.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::ObjectError;
use super::settings::ObjectSettings;

/// The longest profile file read (they are a few lines).
const MAX_PROFILE_FILE: u64 = 1 << 20;

/// An access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (shown in messages: it names the key, it is not secret).
    pub key_id: String,
    /// The secret access key.
    pub secret: String,
    /// A session token, for temporary credentials.
    pub token: Option<String>,
    /// Where they came from: `environment` or `profile NAME (FILE)`.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("key_id", &self.key_id)
            .field("secret", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("source", &self.source)
            .finish()
    }
}

/// Everything needed to talk to a store.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The endpoint URL (`None`: AWS itself).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// The credentials.
    pub credentials: Credentials,
}

/// Resolves settings, environment (`env` looks a variable up) and profile files.
pub(crate) fn resolve(
    settings: &ObjectSettings,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, ObjectError> {
    let var = |k: &str| env(k).filter(|v| !v.is_empty());
    let profile_name = var("AWS_PROFILE")
        .or_else(|| settings.profile.clone())
        .unwrap_or_else(|| "default".to_string());
    let home = var("HOME").map(PathBuf::from);
    let aws_file = |k: &str, name: &str| {
        var(k)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
    };
    let creds_file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
    let config_file = aws_file("AWS_CONFIG_FILE", "config");
    let from_creds = section(creds_file.as_deref(), &profile_name)?;
    let config_section = if profile_name == "default" {
        "default".to_string()
    } else {
        format!("profile {profile_name}")
    };
    let from_config = section(config_file.as_deref(), &config_section)?;
    let endpoint = settings
        .endpoint
        .clone()
        .or_else(|| var("AWS_ENDPOINT_URL_S3"))
        .or_else(|| var("AWS_ENDPOINT_URL"))
        .or_else(|| from_config.get("endpoint_url").cloned());
    let region = settings
        .region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .or_else(|| from_config.get("region").cloned())
        .unwrap_or_else(|| "us-east-1".to_string());
    let credentials = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        (Some(key_id), Some(secret)) => Credentials {
            key_id,
            secret,
            token: var("AWS_SESSION_TOKEN"),
            source: "environment".to_string(),
        },
        _ => profile_credentials(&profile_name, &from_creds, creds_file.as_deref())
            .or_else(|| profile_credentials(&profile_name, &from_config, config_file.as_deref()))
            .ok_or_else(|| ObjectError::NoCredentials {
                endpoint: endpoint.clone().unwrap_or_else(|| "AWS S3".to_string()),
                profile: profile_name.clone(),
            })?,
    };
    Ok(Resolved {
        endpoint,
        region,
        credentials,
    })
}

fn profile_credentials(
    name: &str,
    keys: &BTreeMap<String, String>,
    file: Option<&Path>,
) -> Option<Credentials> {
    Some(Credentials {
        key_id: keys.get("aws_access_key_id")?.clone(),
        secret: keys.get("aws_secret_access_key")?.clone(),
        token: keys.get("aws_session_token").cloned(),
        source: format!(
            "profile {name} ({})",
            file.map(|f| f.display().to_string()).unwrap_or_default()
        ),
    })
}

/// The `key = value` pairs of section `[name]` of an INI-style AWS file; empty when
/// the file or section is absent. Nested values (indented lines under a key with no
/// value, as `s3 =`) are skipped.
fn section(file: Option<&Path>, name: &str) -> Result<BTreeMap<String, String>, ObjectError> {
    let Some(file) = file else {
        return Ok(BTreeMap::new());
    };
    let text = match read_small(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(ObjectError::Profile {
                path: file.to_owned(),
                why: e.to_string(),
            })
        }
    };
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = head.trim() == name;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    Ok(out)
}

fn read_small(file: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(file)?
        .take(MAX_PROFILE_FILE)
        .read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_environment_wins_and_the_secret_is_never_shown() {
        let env = env_of(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t-env".into()),
            ("AWS_ENDPOINT_URL", "http://127.0.0.9:8333".into()),
            ("AWS_DEFAULT_REGION", "eu-west-3".into()),
        ]);
        let r = resolve(&ObjectSettings::default(), &env).expect("resolved");
        assert_eq!(r.credentials.key_id, "AKIDENV");
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.9:8333"));
        assert_eq!(r.region, "eu-west-3");
        let shown = format!("{r:?}");
        assert!(!shown.contains("s3cr3t-env"), "{shown}");
    }

    #[test]
    fn a_named_profile_is_read_from_the_shared_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let creds = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &creds,
            "[default]\naws_access_key_id = AKIDDEF\naws_secret_access_key = d\n\n\
             [lake]\n# the lake's key\naws_access_key_id = AKIDLAKE\naws_secret_access_key = l\n",
        )
        .expect("write");
        std::fs::write(
            &config,
            "[profile lake]\nregion = ap-south-1\nendpoint_url = http://127.0.0.7:9000\ns3 =\n  addressing_style = path\n",
        )
        .expect("write");
        let env = env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            ("AWS_PROFILE", "lake".into()),
        ]);
        let r = resolve(&ObjectSettings::default(), &env).expect("resolved");
        assert_eq!(r.credentials.key_id, "AKIDLAKE");
        assert_eq!(r.credentials.secret, "l");
        assert!(r.credentials.source.contains("profile lake"));
        assert_eq!(r.region, "ap-south-1");
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.7:9000"));
        // The node's settings win over the profile's endpoint.
        let settings = ObjectSettings {
            endpoint: Some("http://127.0.0.8:1".into()),
            ..ObjectSettings::default()
        };
        let r = resolve(&settings, &env).expect("resolved");
        assert_eq!(r.endpoint.as_deref(), Some("http://127.0.0.8:1"));
    }

    #[test]
    fn no_credentials_says_where_to_put_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let env = env_of(&[("HOME", dir.path().display().to_string())]);
        let e = resolve(&ObjectSettings::default(), &env)
            .expect_err("no credentials")
            .to_string();
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
        assert!(e.contains("profile default"), "{e}");
    }
}
