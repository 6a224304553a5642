//! The port's connections: TLS (tokio-rustls, when configured) and HTTP/1.1
//! (hyper) around the protocol's router, at most [`MAX_CONNECTIONS`] at once,
//! each with a handshake and a header deadline.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::home::HomeError;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 256;

/// A TLS acceptor of the PEM certificate chain and key.
pub(super) fn tls_acceptor(
    cert: &[u8],
    key: &[u8],
) -> Result<tokio_rustls::TlsAcceptor, HomeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |why: String| {
        HomeError::Invalid(format!(
            "[delta_sharing] the TLS certificate or key does not load ({why}); give PEM files: tls_cert the certificate chain, tls_key its private key"
        ))
    };
    // rustls is built with two crypto providers here (ring, aws-lc): name one
    // for the process. An error means one is installed already, which serves.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no certificate in tls_cert".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad(e.to_string()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections (at most [`MAX_CONNECTIONS`] at once), each served by
/// HTTP/1.1 over TLS when configured, until `shutdown`.
pub(super) async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Router,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    warn!("Delta Sharing port: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (tls, app, stop) = (tls.clone(), app.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = TowerToHyperService::new(app);
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            let served = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    let Ok(Ok(stream)) = handshake.await else {
                        return;
                    };
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                }
                None => {
                    let conn = http.serve_connection(TokioIo::new(stream), service);
                    tokio::select! { r = conn => r, _ = stop.cancelled() => Ok(()) }
                }
            };
            if let Err(e) = served {
                tracing::debug!("Delta Sharing connection: {e}");
            }
        });
    }
}
