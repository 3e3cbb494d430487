//! The way out to targets reached directly (no connectivity proxy, no `HTTP(S)_PROXY`): hyper's
//! keep-alive client over rustls, resolving names through the private-address guard of
//! `signpost-net` on every connection. reqwest stays for the ways out through a proxy, which it
//! speaks; a direct request skips its layers (a URL parsed again per answer, redirect
//! bookkeeping, copied headers), a tenth of the proxy's CPU per request (bench/README.md, proxy).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use secrecy::ExposeSecret;

use crate::body::BoxError;
use crate::egress::Profile;

/// A request's body on the way to the target: the workload's, or none.
pub type RequestBody = http_body_util::Either<Incoming, http_body_util::Empty<Bytes>>;

type Connector = hyper_rustls::HttpsConnector<HttpConnector<Resolver>>;

/// hyper's client for one egress profile.
#[derive(Debug, Clone)]
pub struct DirectClient {
    client: hyper_util::client::legacy::Client<Connector, RequestBody>,
    read_timeout: Duration,
}

/// Why a direct request failed.
#[derive(Debug)]
pub struct SendError {
    /// Connecting (resolving, TCP, TLS) failed.
    pub connect: bool,
    /// Connecting or the answer took too long.
    pub timeout: bool,
    pub source: BoxError,
}

impl DirectClient {
    /// The client for `profile`; `guarded`: private addresses refused.
    pub fn new(profile: &Profile, guarded: bool) -> Result<Self, &'static str> {
        let mut http = HttpConnector::new_with_resolver(Resolver { guarded });
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(profile.connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(profile)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self {
            client,
            read_timeout: profile.read_timeout,
        })
    }

    /// Sends `req`; the answer's head must come within the read timeout, and so must each part
    /// of its body.
    pub async fn send(
        &self,
        req: http::Request<RequestBody>,
    ) -> Result<http::Response<IdleTimeout>, SendError> {
        match tokio::time::timeout(self.read_timeout, self.client.request(req)).await {
            Err(elapsed) => Err(SendError {
                connect: false,
                timeout: true,
                source: Box::new(elapsed),
            }),
            Ok(Err(e)) => Err(SendError {
                connect: e.is_connect(),
                timeout: timed_out(&e),
                source: Box::new(e),
            }),
            Ok(Ok(res)) => {
                let timeout = self.read_timeout;
                Ok(res.map(|body| IdleTimeout {
                    body,
                    timeout,
                    sleep: None,
                }))
            }
        }
    }
}

/// True when an I/O error with kind `TimedOut` is in the chain (a connect timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// The target's body, failing when the target goes quiet for longer than the read timeout. The
/// timer is made only when a part of the body is not there at once (never, for a small answer).
#[derive(Debug)]
pub struct IdleTimeout {
    body: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(sleep) = this.sleep.as_mut() {
                    sleep
                        .as_mut()
                        .reset(tokio::time::Instant::now() + this.timeout);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(
                        "the target sent nothing for longer than its read timeout".into(),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Names resolved by the system, keeping only public addresses when guarded.
#[derive(Debug, Clone, Copy)]
pub struct Resolver {
    guarded: bool,
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guarded = self.guarded;
        Box::pin(async move {
            let addrs = if guarded {
                signpost_net::resolve_public(name.as_str()).await?
            } else {
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect()
            };
            Ok(addrs.into_iter())
        })
    }
}

/// The TLS settings of a profile: the web's roots plus the destination's trust store (or no
/// verification at all, `TrustAll`), and its client certificate.
fn tls_config(profile: &Profile) -> Result<rustls::ClientConfig, &'static str> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|_| "the TLS settings for the target could not be made")?;
    let builder = if profile.trust_all {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAll(provider)))
    } else {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(pem) = &profile.trust_pem {
            let invalid = "the trust store holds no usable certificate (TrustStoreInvalid)";
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.map_err(|_| invalid)?).map_err(|_| invalid)?;
                added += 1;
            }
            if added == 0 {
                return Err(invalid);
            }
        }
        builder.with_root_certificates(roots)
    };
    match &profile.identity_pem {
        Some(pem) => {
            let invalid =
                "the key store cannot be used as a TLS client certificate (KeyStoreInvalid)";
            let pem = pem.expose_secret().as_bytes();
            let chain = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| invalid)?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| invalid)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|_| invalid)
        }
        None => Ok(builder.with_no_client_auth()),
    }
}

/// `TrustAll: true`: any server certificate is accepted (its handshake signature is still
/// checked, so the connection is at least to the holder of that certificate's key).
#[derive(Debug)]
struct TrustAll(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAll {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
