//! "Check connection": one call to a destination's URL, step by step, each step timed and its
//! failure named plainly. DNS (with the private-address guard on every answer), TCP connect,
//! TLS (protocol and the server certificate's subject, issuer and expiry, also when it is not
//! trusted), then HTTP: `HEAD`, and `GET` when the server refuses `HEAD` (405, 501). No step
//! after a failed one runs. Header values (credentials) never appear in a step.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http_body_util::Empty;
use hyper::body::Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types};

pub use reqwest::Url;

/// What to call and how.
#[derive(Clone)]
pub struct ProbeRequest {
    pub url: Url,
    /// Sent with the call (the destination's tokens and `URL.headers.*`); never reported.
    pub headers: Vec<(String, String)>,
    pub allow_private: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Extra trusted certificates (the destination's trust store), PEM or DER.
    pub extra_roots: Vec<Vec<u8>>,
    /// `TrustAll`: the server certificate is shown but not verified.
    pub trust_all: bool,
}

impl std::fmt::Debug for ProbeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProbeRequest")
            .field("url", &self.url.origin().ascii_serialization())
            .field("headers", &names)
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

/// One step of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub ok: bool,
    /// Milliseconds the step took.
    pub ms: f64,
    #[serde(flatten)]
    pub detail: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Step {
    fn new(step: &'static str, started: Instant) -> Self {
        Self {
            step,
            ok: true,
            ms: (started.elapsed().as_secs_f64() * 1e5).round() / 100.0,
            detail: Map::new(),
            error: None,
        }
    }

    fn failed(mut self, error: impl Into<String>) -> Self {
        self.ok = false;
        self.error = Some(error.into());
        self
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.detail.insert(key.to_owned(), value);
        self
    }
}

/// Runs the steps; the report ends at the first failure.
pub async fn probe(req: &ProbeRequest) -> Vec<Step> {
    let mut steps = Vec::new();
    let Some(host) = req.url.host_str().map(str::to_owned) else {
        steps.push(Step::new("dns", Instant::now()).failed("the URL has no host"));
        return steps;
    };
    let https = req.url.scheme() == "https";
    let port = req
        .url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });

    // DNS, and the guard on every answer.
    let started = Instant::now();
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(
        req.connect_timeout,
        tokio::net::lookup_host((bare.as_str(), port)),
    )
    .await
    {
        Ok(Ok(a)) => a.collect(),
        Ok(Err(e)) => {
            steps.push(Step::new("dns", started).failed(format!("{host} cannot be resolved: {e}")));
            return steps;
        }
        Err(_) => {
            steps.push(Step::new("dns", started).failed(format!("resolving {host} timed out")));
            return steps;
        }
    };
    let step = Step::new("dns", started).with(
        "addresses",
        json!(addrs.iter().map(|a| a.ip().to_string()).collect::<Vec<_>>()),
    );
    if addrs.is_empty() {
        steps.push(step.failed(format!("{host} has no address")));
        return steps;
    }
    if !req.allow_private {
        if let Some(private) = addrs.iter().find(|a| signpost_net::is_private(a.ip())) {
            steps.push(step.failed(format!(
                "refused: {host} is a private address ({}); the server reaches only public addresses unless started with --allow-private-networks",
                private.ip()
            )));
            return steps;
        }
    }
    steps.push(step);

    // TCP.
    let started = Instant::now();
    let mut last_error = String::new();
    let mut stream = None;
    for addr in &addrs {
        match tokio::time::timeout(req.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some((s, *addr));
                break;
            }
            Ok(Err(e)) => last_error = format!("connecting to {addr} failed: {e}"),
            Err(_) => {
                last_error = format!(
                    "connecting to {addr} timed out after {} s",
                    req.connect_timeout.as_secs()
                )
            }
        }
    }
    let Some((tcp, addr)) = stream else {
        steps.push(Step::new("tcp", started).failed(last_error));
        return steps;
    };
    steps.push(Step::new("tcp", started).with("address", json!(addr.to_string())));

    if !https {
        steps.push(http(tcp, req, &host).await);
        return steps;
    }

    // TLS.
    let started = Instant::now();
    let seen = Arc::new(Mutex::new(None::<Vec<u8>>));
    let config = match tls_config(req, seen.clone()) {
        Ok(c) => c,
        Err(e) => {
            steps.push(Step::new("tls", started).failed(e));
            return steps;
        }
    };
    let server_name = match pki_types::ServerName::try_from(bare.clone()) {
        Ok(n) => n,
        Err(_) => {
            steps.push(
                Step::new("tls", started)
                    .failed(format!("'{host}' is not a valid TLS server name")),
            );
            return steps;
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let handshake =
        tokio::time::timeout(req.read_timeout, connector.connect(server_name, tcp)).await;
    let certificate = seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .map(|der| certificate_view(&der));
    let mut step = Step::new("tls", started);
    if let Some(view) = certificate {
        step = step.with("certificate", view);
    }
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            steps.push(step.failed(tls_failure(&e)));
            return steps;
        }
        Err(_) => {
            steps.push(step.failed("the TLS handshake timed out"));
            return steps;
        }
    };
    let protocol = tls
        .get_ref()
        .1
        .protocol_version()
        .map(|v| match v {
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            other => format!("{other:?}"),
        })
        .unwrap_or_default();
    steps.push(
        step.with("protocol", json!(protocol))
            .with("verified", json!(!req.trust_all)),
    );
    steps.push(http(tls, req, &host).await);
    steps
}

/// The rustls client of the check: web PKI roots plus the destination's trust store (or no
/// verification with `TrustAll`), remembering the server's certificate for the report.
fn tls_config(
    req: &ProbeRequest,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for item in &req.extra_roots {
        for der in certificates_of(item) {
            roots.add(der).map_err(|e| {
                format!("the destination's trust store holds an unusable certificate: {e}")
            })?;
        }
    }
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("no trust anchors: {e}"))?;
    let verifier = Arc::new(Recording {
        inner,
        seen,
        trust_all: req.trust_all,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

/// PEM certificates of a trust store entry, or the entry as one DER certificate.
fn certificates_of(bytes: &[u8]) -> Vec<pki_types::CertificateDer<'static>> {
    use pki_types::pem::PemObject as _;
    if bytes.starts_with(b"-----BEGIN") {
        pki_types::CertificateDer::pem_slice_iter(bytes)
            .filter_map(Result::ok)
            .collect()
    } else {
        vec![pki_types::CertificateDer::from(bytes.to_vec())]
    }
}

#[derive(Debug)]
struct Recording {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<Vec<u8>>>>,
    trust_all: bool,
}

impl rustls::client::danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &pki_types::CertificateDer<'_>,
        intermediates: &[pki_types::CertificateDer<'_>],
        server_name: &pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(end_entity.to_vec());
        if self.trust_all {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS failure in plain words; an untrusted certificate says so.
fn tls_failure(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            rustls::CertificateError::UnknownIssuer => {
                "the server's certificate is not trusted: its issuer is not a trusted CA (add it to the destination's trust store)".into()
            }
            rustls::CertificateError::Expired => "the server's certificate has expired".into(),
            rustls::CertificateError::NotValidYet => "the server's certificate is not valid yet".into(),
            rustls::CertificateError::NotValidForName => {
                "the server's certificate is not valid for this host name".into()
            }
            other => format!("the server's certificate is not trusted: {other:?}"),
        },
        Some(other) => format!("the TLS handshake failed: {other}"),
        None => format!("the TLS handshake failed: {e}"),
    }
}

/// Subject, issuer and validity of a DER certificate.
fn certificate_view(der: &[u8]) -> Value {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => {
            let validity = cert.validity();
            let not_after = validity.not_after.timestamp();
            let days_left = (not_after - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400;
            json!({
                "subject": cert.subject().to_string(),
                "issuer": cert.issuer().to_string(),
                "notBefore": rfc3339(validity.not_before.timestamp()),
                "notAfter": rfc3339(not_after),
                "daysLeft": days_left,
            })
        }
        Err(_) => json!({"error": "the server's certificate could not be read"}),
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The HTTP step over an open connection: `HEAD`, then `GET` when `HEAD` is refused.
async fn http<S>(stream: S, req: &ProbeRequest, host: &str) -> Step
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let started = Instant::now();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(io).await {
        Ok(pair) => pair,
        Err(e) => {
            return Step::new("http", started).failed(format!("the HTTP connection failed: {e}"))
        }
    };
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = match req.url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let target = match req.url.query() {
        Some(q) => format!("{}?{q}", req.url.path()),
        None => req.url.path().to_owned(),
    };
    let mut result = None;
    for method in [hyper::Method::HEAD, hyper::Method::GET] {
        let mut builder = hyper::Request::builder()
            .method(method.clone())
            .uri(target.as_str())
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::USER_AGENT, "signpost-check");
        for (k, v) in &req.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = match builder.body(Empty::<Bytes>::new()) {
            Ok(r) => r,
            Err(_) => {
                driver.abort();
                return Step::new("http", started)
                    .failed("a header of the destination is not a valid HTTP header");
            }
        };
        if sender.ready().await.is_err() {
            break;
        }
        let answer = tokio::time::timeout(req.read_timeout, sender.send_request(request)).await;
        match answer {
            Ok(Ok(res)) => {
                let status = res.status().as_u16();
                result = Some((method.clone(), status));
                if method == hyper::Method::HEAD && matches!(status, 405 | 501) {
                    drop(res);
                    continue;
                }
                break;
            }
            Ok(Err(e)) => {
                driver.abort();
                return Step::new("http", started).failed(format!("the HTTP request failed: {e}"));
            }
            Err(_) => {
                driver.abort();
                return Step::new("http", started)
                    .failed(format!("no answer within {} s", req.read_timeout.as_secs()));
            }
        }
    }
    driver.abort();
    match result {
        Some((method, status)) => {
            let step = Step::new("http", started)
                .with("method", json!(method.as_str()))
                .with("status", json!(status));
            if status >= 400 {
                step.failed(format!("the server answered HTTP {status}"))
            } else {
                step
            }
        }
        None => Step::new("http", started).failed("the connection closed before an answer"),
    }
}
