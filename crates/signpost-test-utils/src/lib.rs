//! Test harness of Signpost: [`TestApp`] runs the real router over real HTTP on loopback with a
//! real SQLite file in a temporary directory, and gives tests a broker client and tenants
//! (instance + service key + access token). Dev-dependency only. With [`TestOptions::https`] it
//! also serves the router on an HTTPS/mTLS listener (`certurl` of X.509 bindings), as
//! `signpost serve --tls-listen` does.
//!
//! The same tests run on PostgreSQL (a database of a throwaway cluster, see [`pg`]) when
//! `SIGNPOST_TEST_ENGINE=postgres` is set or when the test binary's name starts with
//! `on_postgres` (`crates/signpost/tests/on_postgres.rs` includes the HTTP suites that way).
//!
//! The real peers ([`pg`], [`nginx`], [`oauth_peer`], [`signxml`], [`pki`], [`slow`], [`kube`],
//! [`peers`]) are `signpost-test-peers`, re-exported here.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

// The real peers live in signpost-test-peers (no dependency on Signpost's crates); they are
// re-exported here for the tests that also run Signpost.
pub use signpost_test_peers::{kube, nginx, npm, oauth_peer, peers, pg, pki, signxml, slow};

pub mod leaks;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Router;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use signpost_api::{AppState, BrokerCredentials};
use signpost_core::{
    CoreConfig, OAuthConfig, Signpost, TrustedIssuer, CATALOG_PLAN_ID, CATALOG_SERVICE_ID,
};
use signpost_store::{CachedStore, MasterKey, PgStore, SqliteStore, Store};
use tempfile::TempDir;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;

pub const BROKER_USER: &str = "test-broker";
pub const BROKER_PASSWORD: &str = "test-broker-password";

/// One running server on `127.0.0.1:<random port>`.
#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub core: Signpost,
    pub client: reqwest::Client,
    dir: Arc<TempDir>,
    master: MasterKey,
    opts: TestOptions,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL server and database when the tests run on PostgreSQL.
    postgres: Option<Arc<(pg::PgServer, pg::TestDb)>>,
    /// The HTTPS listener when [`TestOptions::https`] is set.
    https: Option<Https>,
}

/// The HTTPS listener of a [`TestApp`]: what a restart keeps (address, CA, server certificate,
/// the router slot) and what it replaces (the serving task and its stop signal).
#[derive(Debug)]
struct Https {
    addr: SocketAddr,
    base: String,
    ca_pem: String,
    config: Arc<ServerConfig>,
    /// The router the listener's connections serve. Connections accepted before a restart go on
    /// after it (`signpost_api::tls::serve` does not end them), so they reach the router through
    /// this slot, which the restarted app fills with its own: a kept-alive connection never
    /// talks to the core of a stopped app.
    app: Arc<RwLock<Router>>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Https {
    /// A listener on `127.0.0.1:<random port>` with a fresh CA and a server certificate for
    /// 127.0.0.1 and localhost signed by it; nothing served yet.
    async fn bind() -> (Self, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (ca_pem, config) = https_pki();
        let https = Self {
            addr,
            base: format!("https://{addr}"),
            ca_pem,
            config,
            app: Arc::new(RwLock::new(Router::new())),
            stop: None,
            server: None,
        };
        (https, listener)
    }

    /// Serves `app` on `listener` until [`Https::shutdown`].
    fn serve(
        &mut self,
        listener: tokio::net::TcpListener,
        app: Router,
        limits: Arc<signpost_api::Limits>,
    ) {
        *self.app.write().unwrap() = app;
        let slot = self.app.clone();
        let current = Router::new().fallback_service(tower::service_fn(
            move |req: axum::extract::Request| {
                let app = slot.read().unwrap().clone();
                tower::ServiceExt::oneshot(app, req)
            },
        ));
        let (tx, rx) = tokio::sync::watch::channel(false);
        self.stop = Some(tx);
        self.server = Some(tokio::spawn(signpost_api::tls::serve(
            listener,
            self.config.clone(),
            current,
            limits,
            rx,
        )));
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }
}

/// A fresh test CA (PEM) and the listener's TLS configuration with a server certificate for
/// 127.0.0.1 and localhost issued by that CA.
fn https_pki() -> (String, Arc<ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "signpost-test-utils CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let config = signpost_api::tls::server_config(
        vec![CertificateDer::from(leaf.der().to_vec())],
        PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    )
    .unwrap();
    (ca.pem(), config)
}

/// True when this test process should run its [`TestApp`]s on PostgreSQL.
pub fn on_postgres() -> bool {
    if let Ok(engine) = std::env::var("SIGNPOST_TEST_ENGINE") {
        return engine == "postgres";
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .is_some_and(|n| n.starts_with("on_postgres"))
}

/// Options of a [`TestApp`].
#[derive(Debug, Clone)]
pub struct TestOptions {
    pub max_entities: u32,
    /// Token flows may reach loopback (the real OAuth server of the tests runs there).
    pub allow_private_networks: bool,
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Also serve the router on an HTTPS listener on `127.0.0.1:<random port>` that asks for a
    /// client certificate (mTLS), with a server certificate from a fresh test CA
    /// ([`TestApp::https_ca_pem`]). It is the app's `certurl` and `uaadomain`, so X.509 bindings
    /// (`{"xsuaa": {"credential-type": "x509"}}`) can be made and used.
    pub https: bool,
    /// The server limits (header and request timeouts, connection cap, rate limit) of both
    /// listeners and the router; `signpost serve`'s defaults unless set.
    pub limits: signpost_api::LimitsConfig,
    /// Name the server `localhost` (public URL `http://localhost:<port>`, uaadomain
    /// `localhost:<port>`) instead of `127.0.0.1`: tenant token URLs `<subdomain>.localhost`
    /// are then names (RFC 6761 loopback) where `<subdomain>.127.0.0.1` is not. Not with `https`.
    pub localhost: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            max_entities: 1000,
            allow_private_networks: true,
            trusted_issuers: Vec::new(),
            https: false,
            limits: signpost_api::LimitsConfig::default(),
            localhost: false,
        }
    }
}

impl TestApp {
    pub async fn start() -> Self {
        Self::start_with(TestOptions::default()).await
    }

    pub async fn start_with(opts: TestOptions) -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let postgres = if on_postgres() {
            let server = pg::PgServer::start();
            let db = server.create_db().await;
            Some(Arc::new((server, db)))
        } else {
            None
        };
        Self::boot(dir, MasterKey::generate(), opts, None, None, postgres).await
    }

    /// The engine the app runs on ("sqlite" or "postgres").
    pub fn engine(&self) -> &'static str {
        self.core.engine()
    }

    /// Stops this server and starts a new one on the same data and addresses (a restart); an
    /// HTTPS listener keeps its CA and certificate.
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let dir = self.dir.clone();
        let master = self.master.clone();
        let postgres = self.postgres.take();
        let https = self.https.take();
        Self::boot(
            dir,
            master,
            self.opts.clone(),
            Some(self.addr),
            https,
            postgres,
        )
        .await
    }

    /// `https://127.0.0.1:<port>`, the HTTPS listener, when [`TestOptions::https`] is set.
    pub fn https_base(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.base.as_str())
    }

    /// The HTTPS listener's address, when [`TestOptions::https`] is set.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.as_ref().map(|h| h.addr)
    }

    /// The PEM certificate of the CA that issued the HTTPS listener's certificate (the one to
    /// trust), when [`TestOptions::https`] is set.
    pub fn https_ca_pem(&self) -> Option<&str> {
        self.https.as_ref().map(|h| h.ca_pem.as_str())
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn database_path(&self) -> PathBuf {
        self.dir.path().join("signpost.db")
    }

    async fn boot(
        dir: Arc<TempDir>,
        master: MasterKey,
        opts: TestOptions,
        addr: Option<SocketAddr>,
        https: Option<Https>,
        postgres: Option<Arc<(pg::PgServer, pg::TestDb)>>,
    ) -> Self {
        let store: Arc<dyn Store> = match &postgres {
            Some(pg) => Arc::new(
                PgStore::open(&pg.1.url, &master, opts.max_entities)
                    .await
                    .unwrap(),
            ),
            None => {
                let url = format!("sqlite://{}", dir.path().join("signpost.db").display());
                Arc::new(
                    SqliteStore::open(&url, &master, opts.max_entities)
                        .await
                        .unwrap(),
                )
            }
        };
        let listener =
            tokio::net::TcpListener::bind(addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let base = if opts.localhost {
            format!("http://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        };
        // A restart binds the kept HTTPS address again.
        let https = match (opts.https, https) {
            (false, _) => None,
            (true, None) => Some(Https::bind().await),
            (true, Some(kept)) => {
                let listener = tokio::net::TcpListener::bind(kept.addr).await.unwrap();
                Some((kept, listener))
            }
        };
        let core = Signpost::new(
            Arc::new(CachedStore::new(store)),
            CoreConfig {
                public_url: base.clone(),
                // As `signpost serve`: the HTTPS listener when there is one.
                uaadomain: match &https {
                    Some((h, _)) => h.addr.to_string(),
                    None if opts.localhost => format!("localhost:{}", addr.port()),
                    None => addr.to_string(),
                },
                token_lifetime_secs: 3600,
                oauth: OAuthConfig {
                    allow_private_networks: opts.allow_private_networks,
                    trusted_issuers: opts.trusted_issuers.clone(),
                    ..Default::default()
                },
                cert_url: https.as_ref().map(|(h, _)| h.base.clone()),
                principal_cache_bytes: signpost_core::DEFAULT_PRINCIPAL_CACHE_BYTES,
            },
        )
        .await
        .unwrap();
        // As `signpost serve`: one set of limits for the router and both listeners.
        let limits = Arc::new(signpost_api::Limits::new(opts.limits));
        let app = signpost_api::router(AppState {
            core: core.clone(),
            broker: Arc::new(BrokerCredentials {
                user: BROKER_USER.into(),
                password: SecretString::from(BROKER_PASSWORD.to_owned()),
            }),
            limits: limits.clone(),
        });
        let https = https.map(|(mut h, listener)| {
            h.serve(listener, app.clone(), limits.clone());
            h
        });
        let (tx, rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(signpost_api::listener::serve(listener, app, limits, rx));
        Self {
            base,
            addr,
            core,
            client: reqwest::Client::new(),
            dir,
            master,
            opts,
            stop: Some(tx),
            server: Some(server),
            postgres,
            https,
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        if let Some(h) = &mut self.https {
            h.shutdown().await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A broker request with the right credentials and API version.
    pub fn broker(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .header("X-Broker-API-Version", "2.17")
    }

    /// Provisions `instance` in `subaccount` with the given configuration JSON.
    pub async fn provision(&self, instance: &str, subaccount: &str, parameters: Value) -> Response {
        self.broker(Method::PUT, &format!("/v2/service_instances/{instance}"))
            .json(&provision_body(subaccount, parameters))
            .send()
            .await
            .unwrap()
    }

    /// Binds and returns the service key (`credentials`).
    pub async fn bind(&self, instance: &str, binding: &str) -> Value {
        let res = self
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
            )
            .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "bind failed");
        res.json::<Value>().await.unwrap()["credentials"].clone()
    }

    /// Gets an access token for a service key.
    pub async fn token(&self, key: &Value) -> String {
        let res = self
            .client
            .post(format!("{}/oauth/token", key["url"].as_str().unwrap()))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", key["clientid"].as_str().unwrap()),
                ("client_secret", key["clientsecret"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "token request failed");
        res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Subscribes `subaccount` (subdomain = its id) to the provider's `instance`; asserts 201.
    pub async fn subscribe(&self, instance: &str, subaccount: &str) {
        let res = self
            .broker(
                Method::PUT,
                &format!("/signpost/v1/subscriptions/{instance}/{subaccount}"),
            )
            .json(&json!({"subdomain": subaccount}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "subscribe {subaccount} to {instance}");
    }

    /// `provider` as the subscribed tenant `zid`: the same key, a tenant token (`x-zid`).
    pub async fn tenant_of(&self, provider: &Tenant, zid: &str) -> Tenant {
        let res = self
            .client
            .post(self.url("/oauth/token"))
            .header("x-zid", zid)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", provider.key["clientid"].as_str().unwrap()),
                (
                    "client_secret",
                    provider.key["clientsecret"].as_str().unwrap(),
                ),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "tenant token of {zid}");
        let token = res.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        Tenant {
            token,
            ..provider.clone()
        }
    }

    /// Provisions an instance, binds it and gets a token: a ready tenant.
    pub async fn tenant(&self, subaccount: &str, instance: &str, parameters: Value) -> Tenant {
        let res = self.provision(instance, subaccount, parameters).await;
        assert_eq!(
            res.status(),
            201,
            "provision failed: {}",
            res.text().await.unwrap()
        );
        let key = self.bind(instance, &format!("{instance}-key")).await;
        let token = self.token(&key).await;
        Tenant {
            base: self.base.clone(),
            client: self.client.clone(),
            key,
            token,
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(true);
        }
        if let Some(tx) = self.https.as_mut().and_then(|h| h.stop.take()) {
            let _ = tx.send(true);
        }
        leaks::check_server(
            leaks::ServerData {
                data_dir: self.dir.path(),
                database_url: self.postgres.as_ref().map(|pg| pg.1.url.as_str()),
            },
            Some(&self.master),
            &[],
            &[("the broker password", BROKER_PASSWORD)],
        );
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (closed at once: for a listener the test
/// starts next, or a port that should refuse connections).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// The OSB provisioning body for a subaccount and configuration JSON.
pub fn provision_body(subaccount: &str, parameters: Value) -> Value {
    json!({
        "service_id": CATALOG_SERVICE_ID,
        "plan_id": CATALOG_PLAN_ID,
        "organization_guid": "org-guid",
        "space_guid": "space-guid",
        "context": {"platform": "cloudfoundry", "subaccount_id": subaccount, "subdomain": format!("{subaccount}-sub")},
        "parameters": parameters,
    })
}

/// A caller with a service key and a token.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub base: String,
    pub client: reqwest::Client,
    pub key: Value,
    pub token: String,
}

impl Tenant {
    /// A request to `/destination-configuration{path}` with the bearer token.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(
                method,
                format!("{}/destination-configuration{path}", self.base),
            )
            .bearer_auth(&self.token)
    }

    /// A GET of any path of the server (e.g. `/signpost/v1/...`) with the bearer token.
    /// A request to `path` below the server's root (not below `/destination-configuration`),
    /// with the tenant's token.
    pub fn req_abs(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn get_abs(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.req(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, body: Value) -> Response {
        self.req(Method::PUT, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.req(Method::DELETE, path).send().await.unwrap()
    }
}

/// Status and JSON body of a response (`Value::Null` for an empty body).
pub async fn status_json(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}
