//! Policy files: what council members pass around and sign offline.
//!
//! A JSON document holding the exact signed envelope (hex of its canonical bytes) and,
//! for people, a readable copy of the policy and the list of signers. Only the
//! envelope is trusted; a readable copy that disagrees with it is refused, so an edit
//! by hand can never be mistaken for a signed change.

use std::path::Path;

use mesh_protocol::policy::Council;
use mesh_protocol::{KeyPair, Policy, PublicKey, Signed};
use serde::{Deserialize, Serialize};

use super::error::HomeError;
use super::write::write_atomic;

const KIND: &str = "mesh-signed-policy/v1";

#[derive(Serialize, Deserialize)]
struct PolicyFile {
    kind: String,
    policy: Policy,
    signed_by: Vec<PublicKey>,
    /// For people: the council of the version this one replaces, whose threshold must
    /// also sign. Not trusted: nodes check against the council they hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_council: Option<Council>,
    envelope: String,
}

/// Writes `signed` to `path` (atomically).
pub fn write(path: &Path, signed: &Signed<Policy>) -> Result<(), HomeError> {
    write_with_previous(path, signed, None)
}

/// Writes `signed` with the council of the version it replaces, for signers to see.
pub fn write_with_previous(
    path: &Path,
    signed: &Signed<Policy>,
    previous_council: Option<Council>,
) -> Result<(), HomeError> {
    let policy = signed
        .value()
        .map_err(|e| HomeError::Invalid(format!("policy: {e}")))?;
    let doc = PolicyFile {
        kind: KIND.into(),
        policy,
        signed_by: signed.valid_signers().into_iter().collect(),
        previous_council,
        envelope: hex::encode(signed.to_bytes()),
    };
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| HomeError::Invalid(format!("encoding policy file: {e}")))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// The largest policy file read: the envelope in hex, its readable copy and the
/// previous council, for a policy of at most `MAX_POLICY_BYTES`.
const MAX_FILE_BYTES: u64 = 8 * mesh_protocol::policy::MAX_POLICY_BYTES as u64;

/// The file's text, refused past [`MAX_FILE_BYTES`] without reading further.
fn read_capped(path: &Path) -> Result<String, HomeError> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(HomeError::io(path))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(HomeError::Invalid(format!(
            "{} is larger than any policy file can be ({} MiB); check the path",
            path.display(),
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// Reads a policy file, checking its readable copy against the signed bytes.
pub fn read(path: &Path) -> Result<Signed<Policy>, HomeError> {
    read_with_previous(path).map(|(s, _)| s)
}

/// Reads a policy file and the previous council it carries, if any.
pub fn read_with_previous(path: &Path) -> Result<(Signed<Policy>, Option<Council>), HomeError> {
    let text = read_capped(path)?;
    let bad = |why: String| {
        HomeError::Invalid(format!(
            "{} is not a valid policy file: {why}",
            path.display()
        ))
    };
    let doc: PolicyFile = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if doc.kind != KIND {
        return Err(bad(format!("kind {:?}, expected {KIND:?}", doc.kind)));
    }
    let bytes = hex::decode(doc.envelope.trim()).map_err(|e| bad(format!("envelope: {e}")))?;
    let signed = Signed::<Policy>::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
    let inner = signed.value().map_err(|e| bad(e.to_string()))?;
    if inner != doc.policy {
        return Err(bad(
            "its readable `policy` differs from the signed envelope; policies are changed by drafting a new version, never by editing the file".into(),
        ));
    }
    Ok((signed, doc.previous_council))
}

/// Adds `key`'s signature to the policy file at `path`.
pub fn sign(path: &Path, key: &KeyPair) -> Result<Signed<Policy>, HomeError> {
    let (mut signed, previous) = read_with_previous(path)?;
    signed.add_signature(key);
    write_with_previous(path, &signed, previous)?;
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_protocol::policy::{Council, Settings, POLICY_FORMAT};

    #[test]
    fn round_trip_sign_and_tamper_detection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        let k = KeyPair::generate();
        let policy = Policy {
            format: POLICY_FORMAT,
            version: 1,
            issued_at: 1,
            expires_at: 2,
            council: Council {
                members: [k.public()].into(),
                threshold: 1,
            },
            domains: Default::default(),
            rules: String::new(),
            settings: Settings::default(),
        };
        write(&path, &Signed::unsigned(&policy)).unwrap();
        let signed = sign(&path, &k).unwrap();
        assert!(signed.is_signed_by(&k.public()));
        assert!(read(&path).unwrap().is_signed_by(&k.public()));
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"threshold\": 1", "\"threshold\": 0")).unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("differs from the signed envelope"), "{err}");
    }
}
