//! The web catalog: the whole mesh's catalog as server-rendered HTML, served by
//! every node from its own replica on the control API's listener.
//!
//! Map: `index` keeps the catalog's product listing cached per catalog generation
//! and answers searches and filters over it; `page` is the layout and the small
//! formatting helpers; `context` what every handler gets and how a page fails; the pages are `home`, `products` (the list), `product` (one
//! product, with `lineage_svg` and `chart` drawing its graph and usage),
//! `governance` (the policy and the domains) and `node_page` (this node, its peers
//! and metrics). Everything is read-only: no page mutates, so no page needs the API
//! token. Nothing is loaded from outside the node (a strict Content-Security-Policy
//! says so to the browser), and no page needs JavaScript.

mod chart;
mod context;
mod governance;
mod home;
mod index;
mod lineage_svg;
mod node_page;
mod page;
mod product;
mod products;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::node::Node;
use context::WebState;
use index::IndexCache;

/// The browser may load styles, images and icons from this node only, run no
/// script, submit forms only here, and show the pages in no frame.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The stylesheet, compiled in.
const STYLE: &str = include_str!("style.css");

/// The icon, compiled in.
const ICON: &str = include_str!("icon.svg");

/// The catalog's routes over `node`.
pub(crate) fn router(node: Node) -> Router {
    let state = WebState {
        node,
        index: Arc::new(IndexCache::default()),
    };
    Router::new()
        .route("/", get(home::page))
        .route("/products", get(products::page))
        .route("/products/{domain}/{name}", get(product::page))
        .route(
            "/products/{domain}/{name}/contract.yaml",
            get(product::contract),
        )
        .route("/domains", get(governance::domains))
        .route("/domains/{domain}", get(governance::domain))
        .route("/governance", get(governance::page))
        .route("/node", get(node_page::page))
        .route("/assets/style.css", get(style))
        .route("/assets/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn(security_headers))
}

/// Adds the Content-Security-Policy and its companions to every answer.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
}

async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        ICON,
    )
}

async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/v1/") {
        // The control API's own unknown routes answer in its JSON form.
        return (
            StatusCode::NOT_FOUND,
            axum::Json(crate::api::types::ApiError {
                error: format!(
                    "no API route {}; see the README's control API section",
                    uri.path()
                ),
                kind: "not_found".into(),
            }),
        )
            .into_response();
    }
    page::error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page here. Start from the catalog's home page or search for a product.",
    )
}
