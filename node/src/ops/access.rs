//! Asking for and deciding access: signs a request (as the consumer domain) or a
//! decision (as the owning domain) with this node's publisher key, keeps it through
//! the same checks a peer's copy passes, and gossips it.

use std::sync::Arc;

use mesh_protocol::access::{AccessDecision, AccessRequest, Verdict, ACCESS_FORMAT};
use mesh_protocol::{DomainName, KeyPair, ProductId, Signed};

use crate::clock::unix_now_ms;
use crate::error::NodeError;
use crate::net::NetworkHandle;
use crate::state::access::{AccessBook, AccessFilter, AccessView};
use crate::state::catalog::Catalog;
use crate::state::OfferError;
use crate::task::blocking;

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
    fn key(&self) -> Result<Arc<KeyPair>, NodeError> {
        self.key.clone().ok_or_else(|| {
            NodeError::BadRequest(format!(
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
    ) -> Result<AccessView, NodeError> {
        let key = self.key()?;
        if product.domain() == &self.domain {
            return Err(NodeError::BadRequest(format!(
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
    ) -> Result<AccessView, NodeError> {
        let key = self.key()?;
        if product.domain() != &self.domain {
            return Err(NodeError::BadRequest(format!(
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
        decision
            .validate(decision.issued_at_ms)
            .map_err(NodeError::BadRequest)?;
        let envelope = Signed::sign(&decision, &key).to_bytes();
        let book = self.book.clone();
        let bytes = envelope.clone();
        blocking(move || book.accept_decision(&bytes).map_err(offer_error)).await?;
        self.net.gossip_access(true, envelope).await?;
        self.view(product, consumer).await
    }

    /// Every pair the filter selects, pending requests first.
    pub(crate) async fn list(&self, filter: AccessFilter) -> Result<Vec<AccessView>, NodeError> {
        let book = self.book.clone();
        blocking(move || Ok(book.list(&filter)?)).await
    }

    async fn view(
        &self,
        product: ProductId,
        consumer: DomainName,
    ) -> Result<AccessView, NodeError> {
        let filter = AccessFilter {
            product: Some(product.to_string()),
            consumer: Some(consumer.to_string()),
            ..AccessFilter::default()
        };
        self.list(filter).await?.into_iter().next().ok_or_else(|| {
            NodeError::NotFound(format!("no access record of {consumer} on {product}"))
        })
    }

    /// Refuses a product the catalog does not list (a typo would otherwise sign a
    /// request nobody will answer).
    async fn known(&self, product: &ProductId) -> Result<(), NodeError> {
        let catalog = self.catalog.clone();
        let id = product.clone();
        let found = blocking(move || Ok::<_, NodeError>(catalog.get(&id, None)?.is_some())).await?;
        if found {
            Ok(())
        } else {
            Err(NodeError::NotFound(format!(
                "{product} is not in this node's catalog; `mesh products` lists what the mesh offers"
            )))
        }
    }
}

fn offer_error(e: OfferError) -> NodeError {
    match e {
        OfferError::Invalid(e) => NodeError::BadRequest(e.to_string()),
        OfferError::OverLimit(e) => NodeError::BadRequest(e),
        OfferError::Store(e) => NodeError::State(e),
    }
}
