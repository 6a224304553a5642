//! The control API: HTTP/JSON on loopback, the `mesh` CLI's and the testnet's way
//! into a running node.
//!
//! Map: [`types`] are the request and response bodies (shared by both ends),
//! `server` routes them to the [`Node`](crate::Node) (`access.rs`,
//! `derive.rs`, `subscriptions.rs` and `tokens.rs` hold the routes of grants,
//! derived products, subscriptions and consumer tokens), and [`client`]
//! is the one typed client the CLI and the testnet use, so route strings and the
//! fold over a fetch's event stream live only here. `web` is the catalog in the browser, served
//! on the same listener (`/`, `/products`, `/domains`, `/governance`, `/node`).

mod access;
pub mod client;
mod derive;
pub(crate) mod server;
mod subscriptions;
mod tokens;
pub mod types;
pub(crate) mod web;

pub use client::{AnswerRows, ApiClient, ClientError};

/// A `domain/name` from a request (a body field or a path), validated.
fn parse_product(text: &str) -> Result<mesh_protocol::ProductId, crate::error::NodeError> {
    text.parse().map_err(crate::error::NodeError::from)
}
pub use types::*;
