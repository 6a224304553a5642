//! Entry points for the fuzzers in `fuzz/` and for their regression tests: each takes
//! untrusted bytes, decodes them the way the node does, and panics only if an
//! invariant breaks. A decoder may refuse any input; what it accepts must re-encode
//! to a form that decodes to the same value.
//!
//! [`TARGETS`] names every entry point; `fuzz/fuzz_targets/<name>.rs` runs one under
//! libFuzzer, and `node/tests/fuzz_regressions.rs` runs every input kept under
//! `fuzz/regressions/<name>/` through it in the normal test suite.

use mesh_contract::{ManifestDraft, PublishFacts};
use mesh_protocol::encoding::{decode, encode};
use mesh_protocol::usage::UsageReport;
use mesh_protocol::wire::{self, Response};
use mesh_protocol::{Announcement, KeyPair, Manifest, Policy, Signed, SignedKind};
use serde::{de::DeserializeOwned, Serialize};

/// A fuzz target: a name and the function that checks one input.
pub type Target = (&'static str, fn(&[u8]));

/// Every fuzz target, by name.
pub const TARGETS: &[Target] = &[
    ("frame", frame),
    ("wire_request", wire_request),
    ("wire_response", wire_response),
    ("announcement", announcement),
    ("manifest", manifest),
    ("policy", policy),
    ("usage", usage),
    ("manifest_toml", manifest_toml),
    ("odcs_yaml", odcs_yaml),
    ("rules", rules),
    ("policy_change_toml", policy_change_toml),
    ("config_toml", config_toml),
];

/// Looks a target up by name.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// A decoded value re-encodes canonically: decoding the re-encoding gives the same
/// value, and encoding that again gives the same bytes.
fn round_trips<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    value: &T,
    limit: usize,
) {
    let bytes = encode(value);
    let again: T = match decode(&bytes, limit, "round trip") {
        Ok(v) => v,
        Err(e) => panic!("an accepted value does not decode after re-encoding: {e}"),
    };
    assert_eq!(&again, value, "a value changed across re-encoding");
    assert_eq!(encode(&again), bytes, "re-encoding is not stable");
}

/// A signed envelope of kind `T`: decode, check signatures, decode the payload.
fn envelope<T: SignedKind + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(
    data: &[u8],
) -> Option<T> {
    let signed = Signed::<T>::from_bytes(data).ok()?;
    let _ = signed.valid_signers();
    let once = signed.to_bytes();
    match Signed::<T>::from_bytes(&once) {
        Ok(again) => assert_eq!(again.to_bytes(), once, "envelope re-encoding is not stable"),
        Err(e) => panic!("an accepted envelope does not decode after re-encoding: {e}"),
    }
    let value = signed.value().ok()?;
    round_trips(&value, T::MAX_BYTES);
    Some(value)
}

/// A length-prefixed transfer frame as read off a stream, then its body as a
/// request and as a response.
pub fn frame(data: &[u8]) {
    let mut io = futures::io::Cursor::new(data);
    let read = futures::executor::block_on(crate::net::transfer::codec::read_frame(
        &mut io,
        wire::MAX_RESPONSE_BYTES,
    ));
    if let Ok(body) = read {
        assert!(body.len() <= wire::MAX_RESPONSE_BYTES);
        wire_request(&body);
        wire_response(&body);
    }
}

/// A transfer request body.
pub fn wire_request(data: &[u8]) {
    if let Ok(r) = wire::decode_request(data) {
        let bytes = wire::encode_request(&r);
        assert_eq!(wire::decode_request(&bytes).ok(), Some(r));
    }
}

/// A transfer response body, including catalog and policy sync pages, whose
/// entries are decoded as the node decodes them.
pub fn wire_response(data: &[u8]) {
    let Ok(r) = wire::decode_response(data) else {
        return;
    };
    let bytes = wire::encode_response(&r);
    assert_eq!(wire::decode_response(&bytes).ok().as_ref(), Some(&r));
    match r {
        Response::Catalog { entries, .. } => entries.iter().for_each(|e| announcement(e)),
        Response::Policies { entries, .. } => entries.iter().for_each(|e| policy(e)),
        Response::Manifest(m) => manifest(&m),
        _ => {}
    }
}

/// A signed announcement, as gossiped.
pub fn announcement(data: &[u8]) {
    if let Some(a) = envelope::<Announcement>(data) {
        let _ = a.validate();
    }
}

/// A signed manifest, as served.
pub fn manifest(data: &[u8]) {
    if let Some(m) = envelope::<Manifest>(data) {
        let _ = m.validate();
        let _ = mesh_contract::odcs::export(&m);
    }
}

/// A signed policy, as gossiped or synced; its rules are parsed too.
pub fn policy(data: &[u8]) {
    if let Some(p) = envelope::<Policy>(data) {
        let _ = mesh_protocol::rules::Rules::parse(&p.rules);
    }
}

/// A signed usage report, as gossiped.
pub fn usage(data: &[u8]) {
    let _ = envelope::<UsageReport>(data);
}

/// A product description (`product.toml`), turned into a manifest as publish does.
pub fn manifest_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(draft) = toml::from_str::<ManifestDraft>(text) else {
        return;
    };
    let facts = PublishFacts {
        files: Vec::new(),
        created_at: 1,
        publisher: KeyPair::from_secret([7; 32]).public(),
        quality: None,
    };
    if let Ok(m) = draft.into_manifest(facts) {
        let _ = m.validate();
        round_trips(&m, Manifest::MAX_BYTES);
    }
}

/// An Open Data Contract Standard document, imported and exported again.
pub fn odcs_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mesh_contract::odcs::import(text, Some("fuzz"));
}

/// A policy's rules text.
pub fn rules(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mesh_protocol::rules::Rules::parse(text);
    }
}

/// A policy change file, as `mesh policy propose` reads it.
pub fn policy_change_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mesh_protocol::policy_change::PolicyChange::from_toml(text);
    }
}

/// A node's `config.toml`.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = crate::home::config::NodeConfig::from_toml(text) {
            let _ = c.validate();
            let _ = c.listen_addrs();
            let _ = c.bootstrap_addrs();
        }
    }
}
