//! The control API's consumer-token routes, all behind the API token: `POST
//! /v1/tokens` (make one; the answer is the only time its secret is shown), `GET
//! /v1/tokens` and `POST /v1/tokens/revoke`. Handlers take the [`Node`] from the
//! server's state (`FromRef`), so this file does not name the server.

use axum::extract::State;
use axum::Json;
use mesh_protocol::DomainName;

use super::types::{TokenCreateBody, TokenCreated, TokenRevokeBody, TokenRevoked, TokenView};
use crate::clock::unix_now_ms;
use crate::error::NodeError;
use crate::node::Node;

/// `POST /v1/tokens`.
pub(super) async fn create(
    State(node): State<Node>,
    Json(body): Json<TokenCreateBody>,
) -> Result<Json<TokenCreated>, NodeError> {
    let domain = DomainName::new(&body.domain)
        .map_err(|e| NodeError::BadRequest(format!("domain {:?}: {e}", body.domain)))?;
    let (token, record) = node
        .token_create(domain, body.expires_ms, body.label)
        .await?;
    Ok(Json(TokenCreated {
        token,
        view: TokenView::new(&record, unix_now_ms()),
    }))
}

/// `GET /v1/tokens`.
pub(super) async fn list(State(node): State<Node>) -> Result<Json<Vec<TokenView>>, NodeError> {
    let now = unix_now_ms();
    Ok(Json(
        node.tokens()
            .await?
            .iter()
            .map(|t| TokenView::new(t, now))
            .collect(),
    ))
}

/// `POST /v1/tokens/revoke`.
pub(super) async fn revoke(
    State(node): State<Node>,
    Json(body): Json<TokenRevokeBody>,
) -> Result<Json<TokenRevoked>, NodeError> {
    let revoked = match body.id {
        Some(id) => Some(TokenView::new(&node.token_revoke(id).await?, unix_now_ms())),
        None if body.purge => None,
        None => {
            return Err(NodeError::BadRequest(
                "name the token to revoke (its id, from `mesh token list`), or purge".into(),
            ))
        }
    };
    let purged = if body.purge {
        node.token_purge().await?
    } else {
        0
    };
    Ok(Json(TokenRevoked { revoked, purged }))
}
