//! The control API's derived-product routes: `POST /v1/derive` and `POST
//! /v1/derive/remove` (both need the token), `GET /v1/derived`. Handlers take
//! the [`Node`] from the server's state (`FromRef`), so this file does not name
//! the server.

use axum::extract::State;
use axum::Json;

use super::types::{DeriveBody, UnderiveBody};
use crate::error::NodeError;
use crate::node::Node;
use crate::state::derived::DerivedProduct;

/// `POST /v1/derive`.
pub(super) async fn derive(
    State(node): State<Node>,
    Json(body): Json<DeriveBody>,
) -> Result<Json<DerivedProduct>, NodeError> {
    match (body.draft, body.product) {
        (Some(draft), None) => Ok(Json(node.derive_register(draft).await?)),
        (None, Some(product)) => {
            let id = super::parse_product(&product)?;
            Ok(Json(node.derive(&id, body.force).await?))
        }
        _ => Err(NodeError::BadRequest(
            "give either the derived product's product.toml (draft) or its id (product)".into(),
        )),
    }
}

/// `POST /v1/derive/remove`.
pub(super) async fn remove(
    State(node): State<Node>,
    Json(body): Json<UnderiveBody>,
) -> Result<Json<DerivedProduct>, NodeError> {
    let id = super::parse_product(&body.product)?;
    Ok(Json(node.underive(id).await?))
}

/// `GET /v1/derived`.
pub(super) async fn list(State(node): State<Node>) -> Result<Json<Vec<DerivedProduct>>, NodeError> {
    Ok(Json(node.derived().await?))
}
