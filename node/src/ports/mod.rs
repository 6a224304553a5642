//! The node's output ports: the interfaces consumers' own tools speak, each
//! authenticated by the node's consumer tokens (`state/tokens.rs`) and reading
//! as the token's domain, so the rules and grants decide what each may read.
//!
//! Map: [`flight_sql`] is Arrow Flight SQL (gRPC) over the query engine
//! (`ops/query.rs`); [`delta_sharing`] is the Delta Sharing protocol (HTTP)
//! over the products as tables of Parquet files (`ops/share.rs`). [`bind`] is what every port shares: a listener on the
//! configured address and its TLS identity, if configured.

pub(crate) mod delta_sharing;
pub(crate) mod flight_sql;

use std::net::SocketAddr;
use tokio::net::TcpListener;

use crate::home::config::{PortConfig, TlsPem};
use crate::home::HomeError;

/// A bound port: the listener, its address, and its TLS identity (PEM
/// certificate chain and key) if configured.
pub(crate) struct Bound {
    pub(crate) listener: TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<TlsPem>,
}

/// Binds the port `section` configures (its address is for the caller to write
/// to the home once the port serves).
pub(crate) async fn bind(section: &str, config: &PortConfig) -> Result<Bound, HomeError> {
    let tls = config.tls_identity(section)?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        HomeError::Invalid(format!(
            "cannot bind the [{section}] port on {}: {e}",
            config.listen
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| HomeError::Invalid(format!("the [{section}] port's address: {e}")))?;
    Ok(Bound {
        listener,
        addr,
        tls,
    })
}
