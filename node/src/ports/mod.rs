//! The node's output ports: the interfaces consumers' own tools speak, each
//! authenticated by the node's consumer tokens (`state/tokens.rs`) and reading
//! as the token's domain, so the rules and grants decide what each may read.
//!
//! Map: [`flight_sql`] is Arrow Flight SQL (gRPC) over the query engine
//! (`ops/query.rs`). [`bind`] is what every port shares: a listener on the
//! configured address, its address written to the node home, TLS if configured.

pub(crate) mod flight_sql;

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;

use crate::home::config::PortConfig;
use crate::home::{write_atomic, HomeError};

/// A bound port: the listener, its address, and its TLS identity (PEM
/// certificate chain and key) if configured.
pub(crate) struct Bound {
    pub(crate) listener: TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) tls: Option<(Vec<u8>, Vec<u8>)>,
}

/// Binds the port `section` configures and writes its address to `addr_file`.
pub(crate) async fn bind(
    section: &str,
    config: &PortConfig,
    addr_file: &Path,
) -> Result<Bound, HomeError> {
    let tls = config.tls_identity(section)?;
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        HomeError::Invalid(format!(
            "cannot bind the [{section}] port on {}: {e}",
            config.listen
        ))
    })?;
    let addr = listener.local_addr().map_err(HomeError::io(addr_file))?;
    write_atomic(addr_file, addr.to_string().as_bytes())?;
    Ok(Bound {
        listener,
        addr,
        tls,
    })
}
