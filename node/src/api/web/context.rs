//! What every page handler is given, and how a page fails.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

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
        };
        let title = if status == StatusCode::NOT_FOUND {
            "Not found"
        } else {
            "Something went wrong"
        };
        page::error_page(status, title, &message)
    }
}
