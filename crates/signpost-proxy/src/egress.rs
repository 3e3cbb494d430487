//! The way out to target systems: keep-alive clients per egress profile (timeouts, client
//! certificate, trust store, connectivity proxy), made on first use and kept: hyper's own
//! (`direct`) for targets reached directly, reqwest for those behind a proxy. `ProxyType:
//! Internet` goes direct (honouring `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`), with private target
//! addresses refused unless `--allow-private-networks` (checked on literals here and on every DNS
//! answer by the resolver of `signpost-net`); `ProxyType: OnPremise` goes through the
//! connectivity proxy with `SAP-Connectivity-SCC-Location_ID`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use signpost_client::CertificateItem;

use crate::body::{self, ProxyBody};
use crate::config::ConnectivityProxy;
use crate::direct::DirectClient;
pub use crate::direct::SendError;
use crate::error::{Origin, ProxyError};

/// A destination's TLS material: the client identity (chain and key, PEM) and the extra trusted
/// certificates (PEM).
pub type TlsMaterial = (Option<SecretString>, Option<String>);

/// Most clients kept; each holds its own connection pool.
const MAX_CLIENTS: usize = 256;

/// How the proxy reaches one target.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Client certificate chain and key (PEM) for `ClientCertificateAuthentication`.
    pub identity_pem: Option<SecretString>,
    /// Extra trusted certificates (PEM) from `TrustStoreLocation`.
    pub trust_pem: Option<String>,
    pub trust_all: bool,
    /// `http://host:port` of the connectivity proxy, with the location id, for `OnPremise`.
    pub on_premise: Option<(String, Option<String>)>,
}

impl Profile {
    fn key(&self, guarded: bool) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.connect_timeout.as_millis().to_le_bytes());
        h.update(self.read_timeout.as_millis().to_le_bytes());
        for part in [
            self.identity_pem.as_ref().map(|s| s.expose_secret()),
            self.trust_pem.as_deref(),
            self.on_premise.as_ref().map(|(u, _)| u.as_str()),
            self.on_premise.as_ref().and_then(|(_, l)| l.as_deref()),
        ] {
            let s = part.unwrap_or("\u{0}");
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        h.update([u8::from(self.trust_all), u8::from(guarded)]);
        h.finalize().into()
    }
}

/// The clients of one profile, one per worker (each with its own keep-alive pool, whose
/// connections live on that worker's thread).
#[derive(Debug, Clone)]
pub struct Clients(Arc<[Sender]>);

impl Clients {
    /// The calling worker's client.
    pub fn get(&self) -> &Sender {
        &self.0[crate::workers::current() % self.0.len()]
    }
}

/// How the requests of one profile go out.
#[derive(Debug, Clone)]
pub enum Sender {
    /// Straight to the target: hyper's client (`direct`).
    Direct(Box<DirectClient>),
    /// Through a proxy (the connectivity proxy, `HTTP(S)_PROXY`): reqwest, which speaks to them.
    Proxied(reqwest::Client),
}

impl Sender {
    /// Sends one request; `body` is the workload's (none for a request without one).
    pub async fn send(
        &self,
        method: http::Method,
        url: url::Url,
        headers: http::HeaderMap,
        body: Option<hyper::body::Incoming>,
    ) -> Result<http::Response<ProxyBody>, SendError> {
        match self {
            Sender::Direct(client) => {
                let uri = url.as_str().parse::<http::Uri>().map_err(|e| SendError {
                    connect: false,
                    timeout: false,
                    source: Box::new(e),
                })?;
                let body = match body {
                    Some(b) => http_body_util::Either::Left(b),
                    None => http_body_util::Either::Right(http_body_util::Empty::new()),
                };
                let mut req = http::Request::new(body);
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
                Ok(client.send(req).await?.map(body::boxed))
            }
            Sender::Proxied(client) => {
                let mut req = reqwest::Request::new(method, url);
                *req.headers_mut() = headers;
                *req.body_mut() = body.map(reqwest::Body::wrap);
                let res = client.execute(req).await.map_err(|e| SendError {
                    connect: e.is_connect(),
                    timeout: e.is_timeout(),
                    source: Box::new(e),
                })?;
                Ok(http::Response::<reqwest::Body>::from(res).map(body::boxed))
            }
        }
    }
}

/// The clients of one proxy process.
#[derive(Debug, Default)]
pub struct Egress {
    allow_private: bool,
    /// Clients made per profile: the data plane's worker count.
    workers: usize,
    clients: Mutex<HashMap<[u8; 32], Clients>>,
    /// Parsed keystores by digest of content and password: PKCS#12 key derivation is slow.
    identities: Mutex<HashMap<[u8; 32], Result<TlsMaterial, String>>>,
}

impl Egress {
    pub fn new(allow_private: bool, workers: usize) -> Self {
        Self {
            allow_private,
            workers: workers.max(1),
            ..Self::default()
        }
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The clients for `profile`.
    pub fn client(&self, profile: &Profile) -> Result<Clients, ProxyError> {
        let guarded = !self.allow_private && profile.on_premise.is_none();
        let key = profile.key(guarded);
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(c);
        }
        let client = Clients(
            (0..self.workers.max(1))
                .map(|_| build(profile, guarded))
                .collect::<Result<Arc<[_]>, _>>()?,
        );
        if let Ok(mut m) = self.clients.lock() {
            if m.len() >= MAX_CLIENTS {
                m.clear();
            }
            m.insert(key, client.clone());
        }
        Ok(client)
    }

    /// The client certificate and trust store a destination names, from the find answer's
    /// `certificates`, parsed once per content.
    pub async fn tls_material(
        &self,
        name: &str,
        config: &Map<String, Value>,
        certificates: &[CertificateItem],
    ) -> Result<TlsMaterial, ProxyError> {
        let prop = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let client_cert = config.get("Authentication").and_then(Value::as_str)
            == Some("ClientCertificateAuthentication");
        let keystore = if client_cert {
            prop("KeyStoreLocation")
        } else {
            None
        };
        let truststore = prop("TrustStoreLocation");
        if keystore.is_none() && truststore.is_none() {
            return Ok((None, None));
        }
        let find = |store: &str| {
            certificates
                .iter()
                .find(|c| c.name == store)
                .ok_or_else(|| {
                    ProxyError::bad_gateway(
                        Origin::Proxy,
                        format!("Destination '{name}': the certificate '{store}' is missing from the Destination service's answer"),
                    )
                })
        };
        let ks = keystore
            .as_deref()
            .map(find)
            .transpose()?
            .map(|c| (c.content.clone(), prop("KeyStorePassword")));
        // A Destination service may leave the trust store out of the answer for types other
        // than ClientCertificateAuthentication; then the system's roots decide.
        let ts = truststore
            .as_deref()
            .and_then(|store| certificates.iter().find(|c| c.name == store))
            .map(|c| (c.content.clone(), prop("TrustStorePassword")));
        let mut h = Sha256::new();
        for (content, password) in ks.iter().chain(ts.iter()) {
            h.update(content.as_bytes());
            h.update([0]);
            h.update(password.as_deref().unwrap_or("").as_bytes());
            h.update([0]);
        }
        h.update([u8::from(ks.is_some()), u8::from(ts.is_some())]);
        let key: [u8; 32] = h.finalize().into();
        if let Some(done) = self
            .identities
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return done.map_err(|m| ProxyError::bad_gateway(Origin::Proxy, m));
        }
        let dest = name.to_owned();
        let parsed = tokio::task::spawn_blocking(move || parse_material(&dest, ks, ts))
            .await
            .unwrap_or_else(|_| Err("the key store could not be read".to_owned()));
        if let Ok(mut m) = self.identities.lock() {
            if m.len() >= MAX_CLIENTS {
                m.clear();
            }
            m.insert(key, parsed.clone());
        }
        parsed.map_err(|m| ProxyError::bad_gateway(Origin::Proxy, m))
    }

    /// Refuses a target whose host is a private address literal (names are checked by the
    /// resolver on every connection).
    pub fn check_target(
        &self,
        url: &url::Url,
        destination: &str,
        reasons: &str,
    ) -> Result<(), ProxyError> {
        if self.allow_private {
            return Ok(());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
            }
            _ => None,
        };
        match ip {
            Some(ip) if signpost_net::is_private(ip) => Err(loopback_error(destination, reasons)),
            _ => Ok(()),
        }
    }
}

/// The prefix of SAP's reasons for an unusable destination (PROXY.md §2.2's conditions).
pub const REFERENCED: &str = "ConfigurationError-ReferencedDestination";
/// The same when a fragment was merged into the destination.
pub const REFERENCED_WITH_FRAGMENT: &str = "ConfigurationError-ReferencedDestinationWithFragment";

/// The error for a target on a loopback or private address (SAP's `LoopbackUrlNotSupported`,
/// after `reasons`: [`REFERENCED`] or [`REFERENCED_WITH_FRAGMENT`]).
pub fn loopback_error(destination: &str, reasons: &str) -> ProxyError {
    ProxyError::bad_gateway(
        Origin::Proxy,
        format!("Destination '{destination}': loopback and private network URLs are not supported ({reasons}-LoopbackUrlNotSupported)"),
    )
}

fn parse_material(
    name: &str,
    keystore: Option<(String, Option<String>)>,
    truststore: Option<(String, Option<String>)>,
) -> Result<TlsMaterial, String> {
    let decode = |content: &str, what: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .map_err(|_| format!("Destination '{name}': the {what} is not base64"))
    };
    let identity = match keystore {
        Some((content, password)) => {
            let bytes = decode(&content, "key store")?;
            let store = signpost_certs::parse::parse(&bytes, password.as_deref()).map_err(|e| {
                format!("Destination '{name}': the key store cannot be read (KeyStoreInvalid): {e}")
            })?;
            let (certs, key) = signpost_certs::parse::client_identity_pem(&store).ok_or_else(|| {
                format!("Destination '{name}': the key store holds no private key with its certificate (KeyStoreInvalid)")
            })?;
            Some(SecretString::from(format!(
                "{certs}{}",
                key.expose_secret()
            )))
        }
        None => None,
    };
    let trust = match truststore {
        Some((content, password)) => {
            let bytes = decode(&content, "trust store")?;
            let store = signpost_certs::parse::parse(&bytes, password.as_deref()).map_err(|e| {
                format!(
                    "Destination '{name}': the trust store cannot be read (TrustStoreInvalid): {e}"
                )
            })?;
            Some(store.certificates().map(|c| c.to_pem()).collect())
        }
        None => None,
    };
    Ok((identity, trust))
}

fn build(profile: &Profile, guarded: bool) -> Result<Sender, ProxyError> {
    let fail = |what: &str| ProxyError::bad_gateway(Origin::Proxy, what.to_owned());
    if profile.on_premise.is_none() && !env_proxy_set() {
        return DirectClient::new(profile, guarded)
            .map(|c| Sender::Direct(Box::new(c)))
            .map_err(fail);
    }
    let mut b = reqwest::Client::builder()
        .connect_timeout(profile.connect_timeout)
        .read_timeout(profile.read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .http1_only();
    // Behind a corporate proxy (HTTPS_PROXY/HTTP_PROXY), that proxy resolves the target's name
    // and usually sits on a private address itself: the resolver would refuse it. Literal
    // addresses are still checked (`Egress::check_target`).
    if guarded && !env_proxy_set() {
        b = b.dns_resolver(Arc::new(signpost_net::PublicOnly));
    }
    if let Some((proxy_url, location)) = &profile.on_premise {
        let mut proxy = reqwest::Proxy::all(proxy_url.as_str())
            .map_err(|_| fail("the connectivity proxy's address is not a URL"))?;
        if let Some(loc) = location {
            let mut headers = http::HeaderMap::new();
            let value = http::HeaderValue::from_str(loc)
                .map_err(|_| fail("the Cloud Connector location id is not a valid header value"))?;
            headers.insert("SAP-Connectivity-SCC-Location_ID", value);
            proxy = proxy.headers(headers);
        }
        b = b.proxy(proxy);
    }
    if let Some(pem) = &profile.identity_pem {
        let identity =
            reqwest::Identity::from_pem(pem.expose_secret().as_bytes()).map_err(|_| {
                fail("the key store cannot be used as a TLS client certificate (KeyStoreInvalid)")
            })?;
        b = b.identity(identity);
    }
    if let Some(pem) = &profile.trust_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|_| fail("the trust store holds no usable certificate (TrustStoreInvalid)"))?;
        for root in roots {
            b = b.add_root_certificate(root);
        }
    }
    if profile.trust_all {
        b = b.danger_accept_invalid_certs(true);
    }
    b.build()
        .map(Sender::Proxied)
        .map_err(|_| fail("the HTTP client for the target could not be built"))
}

/// True when the environment names a proxy for outbound HTTP (which reqwest then uses).
fn env_proxy_set() -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
}

/// The connectivity proxy's URL for `OnPremise` destinations.
pub fn on_premise_url(proxy: &ConnectivityProxy) -> String {
    format!("http://{}:{}", proxy.host, proxy.http_port)
}
