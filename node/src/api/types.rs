//! The bodies of the control API's requests and responses. Types produced by the
//! node's parts are re-exported here, so an API user needs only this module.

use std::path::PathBuf;

use mesh_protocol::{Manifest, Policy, Signed};
use serde::{Deserialize, Serialize};

pub use crate::net::{PeerInfo, ReachabilityView};
pub use crate::node::NodeStatus;
pub use crate::ops::deliver::report::DeliveryReport;
pub use crate::ops::fetch::{FetchEvent, FetchOutcome};
pub use crate::ops::publish::{CheckReport, PublishOptions, Published};
pub use crate::ops::submit::Submitted;
pub use crate::ops::subscribe::{SubscriberView, SubscriptionView};
pub use crate::state::access::{AccessFilter, AccessView, DecisionView};
pub use crate::state::catalog::{CatalogEntry, Filter, ProviderStatus};
pub use crate::state::gc::GcReport;
pub use crate::state::governance::Violation;
pub use crate::state::subscriptions::Materialized;
pub use crate::state::usage::ProductUsage;
pub use crate::state::verify::VerifyReport;
pub use mesh_contract::health::{Health, Lineage, LineageNode, LineagePin, SlaState};

/// `POST /v1/publish`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PublishRequest {
    /// A file or directory on the node's machine.
    pub path: PathBuf,
    /// The `product.toml` text.
    pub manifest: String,
    /// Serve the files in place instead of copying them into the store.
    #[serde(default)]
    pub in_place: bool,
}

/// `POST /v1/fetch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FetchRequest {
    /// `domain/name[@version]`.
    pub product: String,
    /// Where to write the files, if anywhere.
    pub out: Option<PathBuf>,
    /// Replace files already at the product's paths even if they differ.
    #[serde(default)]
    pub force: bool,
    /// Keep the product only in the written files (see `FetchOptions::in_place`).
    #[serde(default)]
    pub in_place: bool,
    /// Deliver the files into object storage instead (`s3://bucket/prefix`):
    /// `prefix/VERSION/...`, then `prefix/current`.
    #[serde(default)]
    pub to_objects: Option<String>,
}

/// `POST /v1/query`: SQL over the products it names; the answer is an Arrow IPC
/// stream (`application/vnd.apache.arrow.stream`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryRequest {
    /// The query.
    pub sql: String,
}

/// `GET /v1/products/{domain}/{name}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ShowResponse {
    /// The catalog entry.
    pub entry: CatalogEntry,
    /// The manifest, when this node or a provider could supply it.
    pub manifest: Option<Manifest>,
    /// Why the manifest is absent.
    pub manifest_error: Option<String>,
}

/// `POST /v1/policy`: a signed policy to submit.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubmitRequest {
    /// Hex of the encoded `Signed<Policy>` envelope.
    pub envelope: String,
}

/// `POST /v1/policy/check`: a manifest to check.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The `product.toml` text.
    pub manifest: String,
}

/// One version of the node's policy chain.
#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyView {
    /// The policy.
    pub policy: Policy,
    /// BLAKE3 of its canonical bytes.
    pub hash: String,
    /// Keys with a valid signature on it.
    pub signers: Vec<String>,
    /// Hex of the encoded signed envelope (to write a policy file from).
    pub envelope: String,
    /// Whether it is expired now.
    pub expired: bool,
}

impl PolicyView {
    /// The view of `signed` (which decodes to `policy`) at `now`.
    pub fn new(signed: &Signed<Policy>, policy: Policy, now: u64) -> Self {
        PolicyView {
            expired: policy.expires_at <= now,
            policy,
            hash: signed.hash().to_string(),
            signers: signed
                .valid_signers()
                .iter()
                .map(|k| k.to_string())
                .collect(),
            envelope: hex::encode(signed.to_bytes()),
        }
    }
}

/// An error body.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    /// What went wrong and what to do.
    pub error: String,
    /// A stable machine-readable kind (see `ErrorClass::kind`).
    pub kind: String,
}

/// `POST /v1/peers`: a peer to keep connected to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPeerRequest {
    /// Its multiaddr, ending in `/p2p/<peer id>`.
    pub addr: String,
}

/// `POST /v1/verify`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct VerifyRequest {
    /// Only check and clean up; do not fetch the damaged products again.
    #[serde(default)]
    pub no_repair: bool,
}

/// `POST /v1/gc`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct GcRequest {
    /// Complete versions to keep per product (default: `keep_versions` in config).
    pub keep: Option<usize>,
    /// Report without deleting.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /v1/access/request`: this node's domain asks for access to a product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessRequestBody {
    /// `domain/name`.
    pub product: String,
    /// Why the domain needs the data (shown to the owner).
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/access/decide`: the owning domain grants, denies or revokes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessDecideBody {
    /// `domain/name`, owned by this node's domain.
    pub product: String,
    /// The consumer domain decided on.
    pub consumer: String,
    /// `grant`, `deny` or `revoke`.
    pub decision: String,
    /// A grant's end, Unix milliseconds (none: until revoked).
    #[serde(default)]
    pub until_ms: Option<u64>,
    /// A grant's purpose.
    #[serde(default)]
    pub purpose: String,
    /// A grant's terms.
    #[serde(default)]
    pub terms: String,
    /// A denial's or revocation's reason.
    #[serde(default)]
    pub reason: String,
}

/// `POST /v1/subscriptions`: follow a product into a directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeBody {
    /// `domain/name`.
    pub product: String,
    /// The directory, absolute, on the node's machine.
    pub out: PathBuf,
    /// Versions to keep materialized (default 2).
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// Pass over versions the policy flags (published in warn mode with broken
    /// data or failed rules, or breaking a rule): `current` stays on the newest
    /// unflagged one.
    #[serde(default)]
    pub skip_flagged: bool,
}

fn default_keep() -> usize {
    2
}

/// `POST /v1/subscriptions/remove`: stop following a product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnsubscribeBody {
    /// `domain/name`.
    pub product: String,
}

/// `POST /v1/tokens`: make a consumer token for an output port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreateBody {
    /// The consumer domain the token reads as.
    pub domain: String,
    /// When it stops working (Unix ms).
    pub expires_ms: u64,
    /// What it is for.
    #[serde(default)]
    pub label: Option<String>,
}

/// A consumer token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenView {
    /// Its id, the start of the token.
    pub id: String,
    /// The consumer domain it reads as.
    pub domain: String,
    /// What it is for.
    pub label: Option<String>,
    /// When it was made (Unix ms).
    pub created_ms: u64,
    /// When it stops working (Unix ms).
    pub expires_ms: u64,
    /// When it was revoked (Unix ms).
    pub revoked_ms: Option<u64>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
}

impl TokenView {
    /// The view of `t` at `now_ms`.
    pub fn new(t: &crate::state::tokens::ConsumerToken, now_ms: u64) -> Self {
        TokenView {
            id: t.id.clone(),
            domain: t.domain.to_string(),
            label: t.label.clone(),
            created_ms: t.created_ms,
            expires_ms: t.expires_ms,
            revoked_ms: t.revoked_ms,
            state: t.state(now_ms).into(),
        }
    }
}

/// `POST /v1/tokens`'s answer: the token, shown this once, and its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The secret to give the consumer (`Authorization: Bearer <token>`).
    pub token: String,
    /// The record, as `mesh token list` shows it.
    pub view: TokenView,
}

/// `POST /v1/tokens/revoke`: revoke one token, or purge the dead ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRevokeBody {
    /// The token's id (`mesh token list`).
    #[serde(default)]
    pub id: Option<String>,
    /// Remove every revoked or expired token instead.
    #[serde(default)]
    pub purge: bool,
}

/// `POST /v1/tokens/revoke`'s answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRevoked {
    /// The revoked token, when one was named.
    pub revoked: Option<TokenView>,
    /// How many dead tokens a purge removed.
    pub purged: usize,
}

/// `POST /v1/derive`: register a derived product and compute it (`draft`), or
/// compute a registered one again (`product`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeriveBody {
    /// A `product.toml` with its `[derive]` query inline.
    #[serde(default)]
    pub draft: Option<String>,
    /// `domain/name` of a derived product this node computes.
    #[serde(default)]
    pub product: Option<String>,
    /// Compute even if its inputs did not change (a new version still needs new bytes).
    #[serde(default)]
    pub force: bool,
}

/// `POST /v1/derive/remove`: stop computing a derived product.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnderiveBody {
    /// `domain/name`.
    pub product: String,
}
