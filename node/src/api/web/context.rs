//! What every page handler is given, and how a page fails.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::NodeError;
use crate::node::Node;

use super::index::IndexCache;
use super::page;

/// What every page handler gets.
#[derive(Clone)]
pub(super) struct WebState {
    pub(super) node: Node,
    pub(super) index: Arc<IndexCache>,
}

/// A failed page, answered as HTML.
pub(super) enum PageError {
    /// A node operation failed: its class decides the status.
    Node(NodeError),
    /// The page itself failed, e.g. a stored contract that does not export.
    Unprocessable(String),
    /// The URL's query string is not one the page reads.
    BadQuery(String),
}

/// A page's query string; one that does not parse is answered with an HTML page
/// that says what is wrong (axum's own `Query` would answer in plain text).
pub(super) struct PageQuery<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| PageQuery(q))
            .map_err(|e| PageError::BadQuery(e.body_text()))
    }
}

impl From<NodeError> for PageError {
    fn from(e: NodeError) -> Self {
        PageError::Node(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            PageError::Node(e) => (
                StatusCode::from_u16(e.class().http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.to_string(),
            ),
            PageError::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            PageError::BadQuery(m) => (StatusCode::BAD_REQUEST, m),
        };
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::BAD_REQUEST => "This address does not read",
            _ => "Something went wrong",
        };
        page::error_page(status, title, &message)
    }
}
