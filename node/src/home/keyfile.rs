//! Key files: ed25519 secret keys as small JSON documents, created with mode 0600 and
//! never overwritten.

use std::fs;
use std::path::Path;

use mesh_protocol::{KeyPair, PublicKey};
use serde::{Deserialize, Serialize};

use super::error::HomeError;
use super::write::write_private;

const KEY_KIND: &str = "mesh-ed25519-secret-key/v1";

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kind: String,
    public: PublicKey,
    secret: String,
}

/// Writes a key file for `key`.
pub fn write_key(path: &Path, key: &KeyPair) -> Result<(), HomeError> {
    let doc = KeyFile {
        kind: KEY_KIND.into(),
        public: key.public(),
        secret: hex::encode(key.secret_bytes()),
    };
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| HomeError::Invalid(format!("encoding key file: {e}")))?;
    write_private(path, format!("{text}\n").as_bytes())
}

/// Reads a key file, checking that its public half matches its secret.
pub fn read_key(path: &Path) -> Result<KeyPair, HomeError> {
    let text = fs::read_to_string(path).map_err(HomeError::io(path))?;
    let bad = |why: &str| {
        HomeError::Invalid(format!(
            "{} is not a mesh key file ({why}); create one with `mesh council keygen --out FILE`",
            path.display()
        ))
    };
    let doc: KeyFile = serde_json::from_str(&text).map_err(|e| bad(&e.to_string()))?;
    if doc.kind != KEY_KIND {
        return Err(bad(&format!("kind {:?}", doc.kind)));
    }
    let mut secret = [0u8; 32];
    hex::decode_to_slice(doc.secret.trim(), &mut secret)
        .map_err(|_| bad("secret is not 64 hex digits"))?;
    let key = KeyPair::from_secret(secret);
    if key.public() != doc.public {
        return Err(bad("public key does not match the secret"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn key_file_round_trip_mode_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let k = KeyPair::generate();
        write_key(&path, &k).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_key(&path).unwrap().public(), k.public());
        assert!(write_key(&path, &KeyPair::generate()).is_err());
        fs::write(dir.path().join("bad.key"), "{}").unwrap();
        let err = read_key(&dir.path().join("bad.key"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a mesh key file"), "{err}");
    }
}
