//! libp2p's TLS 1.3 (`/tls/1.0.0`) for TCP connections, dialling with AES-GCM
//! offered first.
//!
//! libp2p-tls offers ChaCha20-Poly1305 first, and a TLS 1.3 server takes the
//! client's order. On a CPU with AES instructions AES-GCM seals a GiB in about a
//! quarter of ChaCha20-Poly1305's time (ring on the project's VM: 0.12-0.13 s
//! against 0.42-0.50 s), and the transport's cipher was 18-28% of each side's CPU in
//! a fetch over Noise (whose libp2p handshake fixes ChaCha20-Poly1305). So a node
//! offers TLS before Noise on TCP, answers inbound TLS with libp2p-tls's own
//! server, and dials with the client config made here: libp2p-tls's certificate
//! (the same resolver), AES-128-GCM, AES-256-GCM, then ChaCha20-Poly1305, and the
//! checks libp2p's TLS specification asks of the responder's certificate (exactly
//! one, self-signed, with a valid libp2p extension; the handshake signed by its
//! key), made by libp2p-tls's `certificate::parse`. As with libp2p-tls, the swarm
//! checks the peer id against the one dialled. A peer that speaks only Noise still
//! gets Noise (multistream-select takes the first protocol both know).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use libp2p::identity::Keypair;
use libp2p::tls::certificate;
use libp2p::tls::{TlsStream, UpgradeError};
use libp2p::PeerId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::aws_lc_rs::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};

/// What either upgrade gives: the peer's id and the encrypted stream.
type Upgraded<C> = BoxFuture<'static, Result<(PeerId, TlsStream<C>), UpgradeError>>;

/// The security upgrade: libp2p-tls inbound, this module's client outbound.
#[derive(Clone)]
pub(crate) struct Tls {
    inbound: libp2p::tls::Config,
    client: Arc<rustls::ClientConfig>,
}

impl Tls {
    /// The upgrade for identity `key` (the signature `SwarmBuilder::with_tcp`
    /// takes).
    pub(crate) fn new(key: &Keypair) -> Result<Self, std::io::Error> {
        let inbound = libp2p::tls::Config::new(key).map_err(std::io::Error::other)?;
        Ok(Tls {
            inbound,
            client: Arc::new(client_config(key)?),
        })
    }
}

/// The dialling side's config: libp2p-tls's certificate and ALPN, AES-GCM first.
fn client_config(key: &Keypair) -> Result<rustls::ClientConfig, std::io::Error> {
    let stock = libp2p::tls::make_client_config(key, None).map_err(std::io::Error::other)?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
    ];
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PeerCertificate))
        .with_client_cert_resolver(stock.client_auth_cert_resolver.clone());
    config.alpn_protocols = stock.alpn_protocols.clone();
    Ok(config)
}

impl UpgradeInfo for Tls {
    type Info = &'static str;
    type InfoIter = std::iter::Once<Self::Info>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once("/tls/1.0.0")
    }
}

impl<C> InboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, TlsStream<C>);
    type Error = UpgradeError;
    type Future = Upgraded<C>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        self.inbound.upgrade_inbound(socket, info)
    }
}

impl<C> OutboundConnectionUpgrade<C> for Tls
where
    C: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Output = (PeerId, TlsStream<C>);
    type Error = UpgradeError;
    type Future = Upgraded<C>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        async move {
            // libp2p's TLS spec: a client sends no Server Name Indication; an
            // unspecified address as the name turns SNI off.
            let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::UNSPECIFIED).into());
            let stream = futures_rustls::TlsConnector::from(self.client)
                .connect(name, socket)
                .await
                .map_err(UpgradeError::ClientUpgrade)?;
            let peer = match stream.get_ref().1.peer_certificates() {
                Some([cert]) => certificate::parse(cert)?.peer_id(),
                _ => {
                    return Err(UpgradeError::ClientUpgrade(std::io::Error::other(
                        "the peer did not present exactly one certificate",
                    )))
                }
            };
            Ok((peer, stream.into()))
        }
        .boxed()
    }
}

/// The responder's certificate, checked as libp2p's TLS specification asks.
#[derive(Debug)]
struct PeerCertificate;

impl ServerCertVerifier for PeerCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !intermediates.is_empty() {
            return Err(rustls::Error::General(
                "libp2p's TLS takes exactly one certificate".into(),
            ));
        }
        // Self-signed, within its validity, with a libp2p extension signed by the
        // host key it names.
        certificate::parse(end_entity).map_err(bad_certificate)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The config offers TLS 1.3 only.
        Err(rustls::Error::General("TLS 1.2 is not offered".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        certificate::parse(cert)
            .map_err(bad_certificate)?
            .verify_signature(dss.scheme, message, dss.signature())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // libp2p-tls's list, in its order: elliptic curves before RSA.
        vec![
            SignatureScheme::ECDSA_NISTP384_SHA384,
            SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureScheme::ED25519,
            SignatureScheme::RSA_PSS_SHA512,
            SignatureScheme::RSA_PSS_SHA384,
            SignatureScheme::RSA_PSS_SHA256,
            SignatureScheme::RSA_PKCS1_SHA512,
            SignatureScheme::RSA_PKCS1_SHA384,
            SignatureScheme::RSA_PKCS1_SHA256,
        ]
    }
}

/// A certificate that is not a valid libp2p one.
fn bad_certificate(e: certificate::ParseError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

    use super::*;
    use tokio_util::compat::TokioAsyncReadCompatExt;

    /// A TCP pair on loopback, as futures streams.
    async fn pair() -> (
        tokio_util::compat::Compat<tokio::net::TcpStream>,
        tokio_util::compat::Compat<tokio::net::TcpStream>,
    ) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
        (a.unwrap().compat(), b.unwrap().0.compat())
    }

    fn suite<C>(s: &TlsStream<C>) -> rustls::CipherSuite {
        let (_, conn) = s.get_ref();
        conn.negotiated_cipher_suite().unwrap().suite()
    }

    /// Dialling with this module's config against libp2p-tls's server: each side
    /// learns the other's peer id, and AES-128-GCM is used; bytes go both ways.
    /// A stock libp2p-tls dialler against the same server still gets its own
    /// first choice, ChaCha20-Poly1305 (so nodes of either kind interoperate).
    #[tokio::test]
    async fn dials_with_aes_and_each_side_learns_the_others_id() {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let (client_key, server_key) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let ours = Tls::new(&client_key).unwrap();
        let stock = libp2p::tls::Config::new(&client_key).unwrap();
        let server = Tls::new(&server_key).unwrap();

        let (a, b) = pair().await;
        let (out, inb) = tokio::join!(
            ours.upgrade_outbound(a, "/tls/1.0.0"),
            server.clone().upgrade_inbound(b, "/tls/1.0.0")
        );
        let ((server_id, mut out), (client_id, mut inb)) = (out.unwrap(), inb.unwrap());
        assert_eq!(server_id, server_key.public().to_peer_id());
        assert_eq!(client_id, client_key.public().to_peer_id());
        assert_eq!(suite(&out), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        assert_eq!(suite(&inb), rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        out.write_all(b"ping").await.unwrap();
        out.flush().await.unwrap();
        let mut got = [0u8; 4];
        inb.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");

        let (a, b) = pair().await;
        let (out, inb) = tokio::join!(
            stock.upgrade_outbound(a, "/tls/1.0.0"),
            server.upgrade_inbound(b, "/tls/1.0.0")
        );
        let ((server_id, out), _) = (out.unwrap(), inb.unwrap());
        assert_eq!(server_id, server_key.public().to_peer_id());
        assert_eq!(
            suite(&out),
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        );
    }

    /// A responder whose certificate is not a libp2p one (a plain self-signed
    /// certificate, no libp2p extension) is refused during the handshake.
    #[tokio::test]
    async fn refuses_a_certificate_without_the_libp2p_extension() {
        let ours = Tls::new(&Keypair::generate_ed25519()).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["peer".into()]).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"libp2p".to_vec()];
        let (a, b) = pair().await;
        let acceptor = futures_rustls::TlsAcceptor::from(Arc::new(config));
        let (out, _) = tokio::join!(ours.upgrade_outbound(a, "/tls/1.0.0"), acceptor.accept(b));
        let Err(UpgradeError::ClientUpgrade(cause)) = &out else {
            panic!("a certificate without the extension must fail the handshake");
        };
        assert!(
            cause.to_string().contains("invalid peer certificate"),
            "{cause}"
        );
    }
}
