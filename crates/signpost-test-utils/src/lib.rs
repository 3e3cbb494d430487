//! Test harness of Signpost: [`TestApp`] runs the real router over real HTTP on loopback with a
//! real SQLite file in a temporary directory, and gives tests a broker client and tenants
//! (instance + service key + access token). Dev-dependency only.
//!
//! The same tests run on PostgreSQL (a database of a throwaway cluster, see [`pg`]) when
//! `SIGNPOST_TEST_ENGINE=postgres` is set or when the test binary's name starts with
//! `on_postgres` (`crates/signpost/tests/on_postgres.rs` includes the HTTP suites that way).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

pub mod nginx;
pub mod oauth_peer;
pub mod peers;
pub mod pg;
pub mod pki;
pub mod signxml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use secrecy::SecretString;
use serde_json::{json, Value};
use signpost_api::{AppState, BrokerCredentials};
use signpost_core::{
    CoreConfig, OAuthConfig, Signpost, TrustedIssuer, CATALOG_PLAN_ID, CATALOG_SERVICE_ID,
};
use signpost_store::{CachedStore, MasterKey, PgStore, SqliteStore, Store};
use tempfile::TempDir;

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
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL server and database when the tests run on PostgreSQL.
    postgres: Option<Arc<(pg::PgServer, pg::TestDb)>>,
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
}

impl Default for TestOptions {
    fn default() -> Self {
        Self {
            max_entities: 1000,
            allow_private_networks: true,
            trusted_issuers: Vec::new(),
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
        Self::boot(dir, MasterKey::generate(), opts, None, postgres).await
    }

    /// The engine the app runs on ("sqlite" or "postgres").
    pub fn engine(&self) -> &'static str {
        self.core.store().engine()
    }

    /// Stops this server and starts a new one on the same data and address (a restart).
    pub async fn restart(mut self) -> Self {
        self.shutdown().await;
        let dir = self.dir.clone();
        let master = self.master.clone();
        let postgres = self.postgres.take();
        Self::boot(dir, master, self.opts.clone(), Some(self.addr), postgres).await
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
        let base = format!("http://{addr}");
        let core = Signpost::new(
            Arc::new(CachedStore::new(store)),
            CoreConfig {
                public_url: base.clone(),
                uaadomain: addr.to_string(),
                token_lifetime_secs: 3600,
                oauth: OAuthConfig {
                    allow_private_networks: opts.allow_private_networks,
                    trusted_issuers: opts.trusted_issuers.clone(),
                    ..Default::default()
                },
                cert_url: None,
            },
        )
        .await
        .unwrap();
        let app = signpost_api::router(AppState {
            core: core.clone(),
            broker: Arc::new(BrokerCredentials {
                user: BROKER_USER.into(),
                password: SecretString::from(BROKER_PASSWORD.to_owned()),
            }),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
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
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
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
            let _ = tx.send(());
        }
    }
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
