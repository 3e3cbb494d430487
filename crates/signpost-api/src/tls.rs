//! The HTTPS listener of Signpost: rustls (ring) serving the same router as the HTTP listener,
//! asking every client for a certificate (mTLS for X.509 bindings) and putting the one presented
//! into each request as [`PeerCertificate`]. `signpost serve --tls-listen` runs it, and so does
//! the test harness (`signpost-test-utils`, `TestOptions::https`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{ResolvesServerCert, WantsServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{
    self, ConfigBuilder, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use tokio_rustls::TlsAcceptor;

use crate::{Limits, PeerCertificate};

/// How long a client may take for the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks every client for a certificate but requires none, and accepts any: the listener only
/// proves that the client holds the certificate's key (the handshake signature is verified).
/// Whether the certificate means anything is the token service's decision, by fingerprint.
#[derive(Debug)]
pub struct AnyClientCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    /// Verifies handshake signatures with the ring provider's algorithms.
    pub fn new() -> Self {
        Self {
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

impl Default for AnyClientCertificate {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The listener's TLS configuration: the ring provider, rustls' safe default protocol versions,
/// [`AnyClientCertificate`], the server's certificate chain (leaf first) with its key, and ALPN
/// `http/1.1`. An error means the certificate and key do not form a usable pair.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = builder()?.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// As [`server_config`], with the certificate chosen by `resolver` at each handshake: a
/// certificate renewed while the listener runs is served from the next handshake on.
pub fn server_config_with_resolver(
    resolver: Arc<dyn ResolvesServerCert>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = builder()?.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A certificate and key as rustls serves them (for a [`ResolvesServerCert`]); an error when
/// the key is not one the ring provider signs with.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
) -> Result<CertifiedKey, rustls::Error> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)?;
    Ok(CertifiedKey::new(certs, signing))
}

fn builder() -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(AnyClientCertificate::new())))
}

/// Serves `app` over TLS on `listener` until `stop` turns true (or its sender is dropped):
/// HTTP/1.1 with the header-read timeout, a 10 s limit on each handshake, a connection slot of
/// `limits` per connection (shared with the HTTP listener), and the client's certificate, when
/// it presented one, in every request of its connection as [`PeerCertificate`]. Connections
/// already accepted go on after the listener stops.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    app: Router,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    while let Some((tcp, peer, slot)) = crate::listener::accept(&listener, &limits, &mut stop).await
    {
        let acceptor = acceptor.clone();
        let app = app.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            // The presented client certificate goes with every request of this connection.
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| PeerCertificate(Arc::new(c.as_ref().to_vec())));
            let app = tower::ServiceExt::map_request(
                app,
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    if let Some(p) = &client_cert {
                        req.extensions_mut().insert(p.clone());
                    }
                    req
                },
            );
            crate::listener::serve_connection(tls, peer, app, &limits, None).await;
            drop(slot);
        });
    }
}
