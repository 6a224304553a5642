//! The control API: HTTP/JSON on loopback, the `mesh` CLI's and the testnet's way
//! into a running node.
//!
//! Map: [`types`] are the request and response bodies (shared by both ends),
//! `server` routes them to the [`Node`](crate::Node), and [`client`] is the one
//! typed client the CLI and the testnet use, so route strings and the fold over a
//! fetch's event stream live only here.

pub mod client;
pub(crate) mod server;
pub mod types;

pub use client::{ApiClient, ClientError};
pub use types::*;
