//! Asking for and deciding access: signs a request (as the consumer domain) or a
//! decision (as the owning domain) with this node's publisher key, keeps it through
//! the same checks a peer's copy passes, and gossips it.

use std::sync::Arc;

use mesh_protocol::access::{AccessDecision, AccessRequest, Verdict, ACCESS_FORMAT};
use mesh_protocol::{DomainName, KeyPair, ProductId, RecordError, Signed};

use crate::clock::unix_now_ms;
use crate::error::NodeError;
use crate::net::{NetError, NetworkHandle};
use crate::state::access::{AccessBook, AccessFilter, AccessView};
use crate::state::catalog::Catalog;
use crate::state::{OfferError, StateError};
use crate::task::{blocking, TaskError};

/// Why an access request or decision was not made.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The request cannot be acted on as asked (no publisher key here, a product
    /// of another domain, a decision the checks refuse); the message says why.
    #[error("{0}")]
    Refused(String),
    /// The product, or the access record, is not known here.
    #[error("{0}")]
    NotFound(String),
    /// The decision as asked breaks the record's own limits (a text too long, a
    /// grant that ends before it starts).
    #[error(transparent)]
    Malformed(#[from] RecordError),
    /// This node's own state failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The network loop failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// A background task failed.
    #[error(transparent)]
    Task(#[from] TaskError),
}

impl From<AccessError> for NodeError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Refused(m) => NodeError::BadRequest(m),
            AccessError::NotFound(m) => NodeError::NotFound(m),
            AccessError::Malformed(e) => NodeError::BadRequest(e.to_string()),
            AccessError::State(e) => NodeError::State(e),
            AccessError::Net(e) => NodeError::Net(e),
            AccessError::Task(e) => NodeError::Task(e),
        }
    }
}

/// What access work needs from the node.
#[derive(Debug, Clone)]
pub(crate) struct AccessDesk {
    pub(crate) book: AccessBook,
    pub(crate) catalog: Catalog,
    pub(crate) net: NetworkHandle,
    /// This node's domain.
    pub(crate) domain: DomainName,
    /// Its publisher key, when the home holds it.
    pub(crate) key: Option<Arc<KeyPair>>,
}

impl AccessDesk {
    fn key(&self) -> Result<Arc<KeyPair>, AccessError> {
        self.key.clone().ok_or_else(|| {
            AccessError::Refused(format!(
                "this node has no publisher key of domain {} (keys/{}.key in its home); requests and grants are signed with it",
                self.domain, self.domain
            ))
        })
    }

    /// Asks the owner of `product` for access for this node's domain.
    pub(crate) async fn request(
        &self,
        product: ProductId,
        reason: String,
    ) -> Result<AccessView, AccessError> {
        let key = self.key()?;
        if product.domain() == &self.domain {
            return Err(AccessError::Refused(format!(
                "{product} belongs to this node's own domain {}; its owner reads it without asking",
                self.domain
            )));
        }
        self.known(&product).await?;
        let request = AccessRequest {
            format: ACCESS_FORMAT,
            product: product.clone(),
            consumer: self.domain.clone(),
            reason,
            issued_at_ms: unix_now_ms(),
            publisher: key.public(),
        };
        let envelope = Signed::sign(&request, &key).to_bytes();
        let book = self.book.clone();
        let bytes = envelope.clone();
        blocking(move || book.accept_request(&bytes).map_err(offer_error)).await?;
        self.net.gossip_access(false, envelope).await?;
        self.view(product, self.domain.clone()).await
    }

    /// Decides on `consumer`'s access to `product`, which this node's domain owns.
    pub(crate) async fn decide(
        &self,
        product: ProductId,
        consumer: DomainName,
        verdict: Verdict,
    ) -> Result<AccessView, AccessError> {
        let key = self.key()?;
        if product.domain() != &self.domain {
            return Err(AccessError::Refused(format!(
                "{product} belongs to domain {}, not to this node's domain {}: only its owner grants, denies or revokes access",
                product.domain(),
                self.domain
            )));
        }
        self.known(&product).await?;
        let decision = AccessDecision {
            format: ACCESS_FORMAT,
            product: product.clone(),
            consumer: consumer.clone(),
            verdict,
            issued_at_ms: unix_now_ms(),
            publisher: key.public(),
        };
        decision.validate(decision.issued_at_ms)?;
        let envelope = Signed::sign(&decision, &key).to_bytes();
        let book = self.book.clone();
        let bytes = envelope.clone();
        blocking(move || book.accept_decision(&bytes).map_err(offer_error)).await?;
        self.net.gossip_access(true, envelope).await?;
        self.view(product, consumer).await
    }

    /// Every pair the filter selects, pending requests first.
    pub(crate) async fn list(&self, filter: AccessFilter) -> Result<Vec<AccessView>, AccessError> {
        let book = self.book.clone();
        blocking(move || Ok(book.list(&filter)?)).await
    }

    async fn view(
        &self,
        product: ProductId,
        consumer: DomainName,
    ) -> Result<AccessView, AccessError> {
        let filter = AccessFilter {
            product: Some(product.to_string()),
            consumer: Some(consumer.to_string()),
            ..AccessFilter::default()
        };
        self.list(filter).await?.into_iter().next().ok_or_else(|| {
            AccessError::NotFound(format!("no access record of {consumer} on {product}"))
        })
    }

    /// Refuses a product the catalog does not list (a typo would otherwise sign a
    /// request nobody will answer).
    async fn known(&self, product: &ProductId) -> Result<(), AccessError> {
        let catalog = self.catalog.clone();
        let id = product.clone();
        let found =
            blocking(move || Ok::<_, AccessError>(catalog.get(&id, None)?.is_some())).await?;
        if found {
            Ok(())
        } else {
            Err(AccessError::NotFound(format!(
                "{product} is not in this node's catalog; `mesh products` lists what the mesh offers"
            )))
        }
    }
}

fn offer_error(e: OfferError) -> AccessError {
    match e {
        OfferError::Invalid(e) => AccessError::Refused(e.to_string()),
        OfferError::OverLimit(e) => AccessError::Refused(e),
        OfferError::Store(e) => AccessError::State(e),
    }
}
