//! The control API's access routes: `POST /v1/access/request`, `POST
//! /v1/access/decide` (both need the token) and `GET /v1/access` (filters
//! `product`, `owner`, `consumer`). Handlers take the [`Node`] from the server's
//! state (`FromRef`), so this file does not name the server.

use axum::extract::{Query, State};
use axum::Json;
use mesh_protocol::access::Verdict;
use mesh_protocol::DomainName;

use super::types::{AccessDecideBody, AccessFilter, AccessRequestBody, AccessView};
use crate::error::NodeError;
use crate::node::Node;

/// `POST /v1/access/request`.
pub(super) async fn request(
    State(node): State<Node>,
    Json(body): Json<AccessRequestBody>,
) -> Result<Json<AccessView>, NodeError> {
    let id = super::parse_product(&body.product)?;
    Ok(Json(node.access_request(id, body.reason).await?))
}

/// `POST /v1/access/decide`.
pub(super) async fn decide(
    State(node): State<Node>,
    Json(body): Json<AccessDecideBody>,
) -> Result<Json<AccessView>, NodeError> {
    let id = super::parse_product(&body.product)?;
    let consumer = DomainName::new(&body.consumer)
        .map_err(|e| NodeError::BadRequest(format!("consumer domain {:?}: {e}", body.consumer)))?;
    let verdict = match body.decision.as_str() {
        "grant" => Verdict::Grant {
            until_ms: body.until_ms,
            purpose: body.purpose,
            terms: body.terms,
        },
        "deny" => Verdict::Deny {
            reason: body.reason,
        },
        "revoke" => Verdict::Revoke {
            reason: body.reason,
        },
        other => {
            return Err(NodeError::BadRequest(format!(
                "decision {other:?} is not one of grant, deny, revoke"
            )))
        }
    };
    Ok(Json(node.access_decide(id, consumer, verdict).await?))
}

/// `GET /v1/access`.
pub(super) async fn list(
    State(node): State<Node>,
    Query(filter): Query<AccessFilter>,
) -> Result<Json<Vec<AccessView>>, NodeError> {
    Ok(Json(node.access_list(filter).await?))
}
