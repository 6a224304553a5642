//! The control API's subscription routes: `POST /v1/subscriptions` and `POST
//! /v1/subscriptions/remove` (both need the token), `GET /v1/subscriptions` and
//! `GET /v1/subscribers/{domain}/{name}`. Handlers take the [`Node`] from the
//! server's state (`FromRef`), so this file does not name the server.

use axum::extract::{Path, State};
use axum::Json;

use super::types::{SubscribeBody, SubscriberView, SubscriptionView, UnsubscribeBody};
use crate::error::NodeError;
use crate::node::Node;

/// `POST /v1/subscriptions`.
pub(super) async fn subscribe(
    State(node): State<Node>,
    Json(body): Json<SubscribeBody>,
) -> Result<Json<SubscriptionView>, NodeError> {
    let id = super::parse_product(&body.product)?;
    Ok(Json(
        node.subscribe(id, body.out, body.keep, body.skip_flagged)
            .await?,
    ))
}

/// `POST /v1/subscriptions/remove`.
pub(super) async fn unsubscribe(
    State(node): State<Node>,
    Json(body): Json<UnsubscribeBody>,
) -> Result<Json<SubscriptionView>, NodeError> {
    let id = super::parse_product(&body.product)?;
    Ok(Json(node.unsubscribe(id).await?))
}

/// `GET /v1/subscriptions`.
pub(super) async fn list(
    State(node): State<Node>,
) -> Result<Json<Vec<SubscriptionView>>, NodeError> {
    Ok(Json(node.subscriptions().await?))
}

/// `GET /v1/subscribers/{domain}/{name}`.
pub(super) async fn subscribers(
    State(node): State<Node>,
    Path((domain, name)): Path<(String, String)>,
) -> Result<Json<Vec<SubscriberView>>, NodeError> {
    let id = super::parse_product(&format!("{domain}/{name}"))?;
    Ok(Json(node.subscribers(id).await?))
}
