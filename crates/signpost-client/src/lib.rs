//! `signpost-client`: a typed async HTTP client of Signpost's public API. [`BrokerClient`] speaks
//! the Open Service Broker API 2.17 (catalog, provision, update, deprovision, bind, unbind) and
//! Signpost's platform endpoints (token signing keys) with the platform's HTTP Basic credentials; [`TenantClient`] gets a token with a [`ServiceKey`] (client
//! credentials) and then manages destinations, fragments and certificates on subaccount and instance
//! level, finds destinations and reads Signpost's certificate details view. Entities stay
//! `serde_json::Value`s so that callers see exactly the server's JSON. Every failure is an
//! [`Error`] that carries the server's own message (`ErrorMessage`, OSB `description` or OAuth
//! `error_description`). This crate is only a client: it holds no server code.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The OSB API version this client sends.
pub const BROKER_API_VERSION: &str = "2.17";

/// What can go wrong talking to Signpost.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error status; `message` is its own sentence.
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server's answer was not what the API promises.
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    /// A URL or argument the client cannot use.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The HTTP status of a server error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Entity level of the configuration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Subaccount,
    Instance,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Subaccount => "subaccount",
            Level::Instance => "instance",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Entity kind of the configuration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Destination,
    Fragment,
    Certificate,
}

impl Kind {
    /// The collection's path segment on `level`, e.g. `subaccountDestinations`.
    pub fn collection(self, level: Level) -> String {
        let kind = match self {
            Kind::Destination => "Destinations",
            Kind::Fragment => "DestinationFragments",
            Kind::Certificate => "Certificates",
        };
        format!("{}{kind}", level.as_str())
    }

    /// A human name, e.g. `destination`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Destination => "destination",
            Kind::Fragment => "fragment",
            Kind::Certificate => "certificate",
        }
    }
}

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot build the HTTP client: {e}")))
}

fn parse_base(base: &str) -> Result<Url> {
    let url = Url::parse(base.trim_end_matches('/'))
        .map_err(|e| Error::Invalid(format!("'{base}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(Error::Invalid(format!(
            "'{base}' is not an http:// or https:// URL"
        )));
    }
    Ok(url)
}

/// `base` with `segments` appended, each percent-encoded as one path segment.
fn join(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        path.extend(segments);
    }
    url
}

/// Sends and turns transport failures into [`Error::Unreachable`].
async fn send(req: RequestBuilder, url: &Url) -> Result<Response> {
    req.send().await.map_err(|e| {
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            reason = format!("{reason}: {s}");
            source = s.source();
        }
        Error::Unreachable {
            url: format!(
                "{}://{}",
                url.scheme(),
                url.host_str()
                    .map_or_else(String::new, |h| match url.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_owned(),
                    })
            ),
            reason,
        }
    })
}

/// The body of a successful answer, or the server's error message.
async fn read_answer(res: Response) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
    let status = res.status();
    let headers = res.headers().clone();
    let url = res.url().to_string();
    let bytes = res
        .bytes()
        .await
        .map_err(|e| Error::Decode {
            url,
            reason: e.to_string(),
        })?
        .to_vec();
    if status.is_success() || status == StatusCode::MULTI_STATUS {
        return Ok((status, headers, bytes));
    }
    Err(Error::Api {
        status: status.as_u16(),
        message: error_message(status, &bytes),
    })
}

/// The server's sentence from an error body: `ErrorMessage`, OSB `description`, OAuth
/// `error_description`, else the status' reason.
pub fn error_message(status: StatusCode, bytes: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        for key in ["ErrorMessage", "description", "error_description", "error"] {
            if let Some(s) = v.get(key).and_then(Value::as_str) {
                if !s.is_empty() {
                    return s.to_owned();
                }
            }
        }
    }
    let text = String::from_utf8_lossy(bytes).trim().to_owned();
    if !text.is_empty() && text.len() < 300 && !text.starts_with('{') {
        return text;
    }
    status
        .canonical_reason()
        .unwrap_or("request failed")
        .to_owned()
}

fn json_of(url: &Url, bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode {
        url: url.to_string(),
        reason: format!("the body is not JSON: {e}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Broker

/// A client of the service broker (`/v2`), authenticated with the platform's HTTP Basic
/// credentials.
#[derive(Clone)]
pub struct BrokerClient {
    http: reqwest::Client,
    base: Url,
    user: String,
    password: String,
}

impl fmt::Debug for BrokerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerClient")
            .field("base", &self.base.as_str())
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The ids of the first service and its first plan in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogIds {
    pub service_id: String,
    pub plan_id: String,
}

/// Where to provision an instance.
#[derive(Debug, Clone, Default)]
pub struct ProvisionContext {
    /// `context.subaccount_id`; the broker's default when `None`.
    pub subaccount_id: Option<String>,
    /// `context.subdomain`.
    pub subdomain: Option<String>,
}

/// A token signing key as `GET /signpost/v1/signing-keys` lists it (public facts only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    pub kid: String,
    /// `active` (signs), `retired` (verifies until `expiresAt`) or `expired` (neither; deleted at
    /// the next rotation).
    pub state: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The answer of `POST /signpost/v1/signing-keys/rotate`: the new key's id and every key kept.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Rotation {
    pub kid: String,
    pub keys: Vec<SigningKey>,
}

impl BrokerClient {
    /// A client of the broker at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, user: &str, password: &str) -> Result<Self> {
        Ok(Self {
            http: http_client()?,
            base: parse_base(base)?,
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        self.base.as_str()
    }

    async fn call(&self, method: Method, segments: &[&str], body: Option<&Value>) -> Result<Value> {
        self.call_query(method, segments, &[], body).await
    }

    async fn call_query(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut url = join(&self.base, segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self
            .http
            .request(method, url.clone())
            .basic_auth(&self.user, Some(&self.password))
            .header("X-Broker-API-Version", BROKER_API_VERSION);
        if let Some(b) = body {
            req = req.json(b);
        }
        let (_, _, bytes) = read_answer(send(req, &url).await?).await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        json_of(&url, &bytes)
    }

    /// `GET /v2/catalog`.
    pub async fn catalog(&self) -> Result<Value> {
        self.call(Method::GET, &["v2", "catalog"], None).await
    }

    /// The first service's id and its first plan's id.
    pub async fn catalog_ids(&self) -> Result<CatalogIds> {
        let catalog = self.catalog().await?;
        let service = &catalog["services"][0];
        match (service["id"].as_str(), service["plans"][0]["id"].as_str()) {
            (Some(s), Some(p)) => Ok(CatalogIds {
                service_id: s.to_owned(),
                plan_id: p.to_owned(),
            }),
            _ => Err(Error::Decode {
                url: join(&self.base, &["v2", "catalog"]).to_string(),
                reason: "the catalog names no service with a plan".into(),
            }),
        }
    }

    /// `PUT /v2/service_instances/{id}`; true when created, false when it existed identically.
    pub async fn provision(
        &self,
        id: &str,
        context: &ProvisionContext,
        parameters: Option<&Value>,
    ) -> Result<bool> {
        let ids = self.catalog_ids().await?;
        let mut ctx = Map::new();
        ctx.insert("platform".into(), json!("signpost-cli"));
        if let Some(s) = &context.subaccount_id {
            ctx.insert("subaccount_id".into(), json!(s));
        }
        if let Some(s) = &context.subdomain {
            ctx.insert("subdomain".into(), json!(s));
        }
        let mut body = json!({
            "service_id": ids.service_id,
            "plan_id": ids.plan_id,
            "context": ctx,
        });
        if let Some(p) = parameters {
            body["parameters"] = p.clone();
        }
        let url = join(&self.base, &["v2", "service_instances", id]);
        let req = self
            .http
            .put(url.clone())
            .basic_auth(&self.user, Some(&self.password))
            .header("X-Broker-API-Version", BROKER_API_VERSION)
            .json(&body);
        let (status, _, _) = read_answer(send(req, &url).await?).await?;
        Ok(status == StatusCode::CREATED)
    }

    /// `PATCH /v2/service_instances/{id}` with a configuration JSON.
    pub async fn update(&self, id: &str, parameters: Option<&Value>) -> Result<()> {
        let ids = self.catalog_ids().await?;
        let mut body = json!({"service_id": ids.service_id, "plan_id": ids.plan_id});
        if let Some(p) = parameters {
            body["parameters"] = p.clone();
        }
        self.call(Method::PATCH, &["v2", "service_instances", id], Some(&body))
            .await
            .map(drop)
    }

    /// `DELETE /v2/service_instances/{id}`; a missing instance is an [`Error::Api`] with 410.
    pub async fn deprovision(&self, id: &str) -> Result<()> {
        let ids = self.catalog_ids().await?;
        self.call_query(
            Method::DELETE,
            &["v2", "service_instances", id],
            &[
                ("service_id", ids.service_id.as_str()),
                ("plan_id", ids.plan_id.as_str()),
            ],
            None,
        )
        .await
        .map_err(|e| gone_as(e, format!("instance '{id}' does not exist")))
        .map(drop)
    }

    /// `PUT /v2/service_instances/{instance}/service_bindings/{binding}`: the service key
    /// (`credentials`) exactly as the broker returned it.
    pub async fn bind(
        &self,
        instance: &str,
        binding: &str,
        parameters: Option<&Value>,
    ) -> Result<Value> {
        let ids = self.catalog_ids().await?;
        let mut body = json!({"service_id": ids.service_id, "plan_id": ids.plan_id});
        if let Some(p) = parameters {
            body["parameters"] = p.clone();
        }
        let answer = self
            .call(
                Method::PUT,
                &[
                    "v2",
                    "service_instances",
                    instance,
                    "service_bindings",
                    binding,
                ],
                Some(&body),
            )
            .await?;
        match answer.get("credentials") {
            Some(c) if c.is_object() => Ok(c.clone()),
            _ => Err(Error::Decode {
                url: self.base.to_string(),
                reason: "the bind answer has no credentials".into(),
            }),
        }
    }

    /// `DELETE /v2/service_instances/{instance}/service_bindings/{binding}`.
    pub async fn unbind(&self, instance: &str, binding: &str) -> Result<()> {
        let ids = self.catalog_ids().await?;
        self.call_query(
            Method::DELETE,
            &[
                "v2",
                "service_instances",
                instance,
                "service_bindings",
                binding,
            ],
            &[
                ("service_id", ids.service_id.as_str()),
                ("plan_id", ids.plan_id.as_str()),
            ],
            None,
        )
        .await
        .map_err(|e| {
            gone_as(
                e,
                format!("service key '{binding}' of instance '{instance}' does not exist"),
            )
        })
        .map(drop)
    }
}

// Signpost's platform endpoints, with the broker credentials (no OSB version header).
impl BrokerClient {
    async fn platform<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<T> {
        let url = join(&self.base, segments);
        let req = self
            .http
            .request(method, url.clone())
            .basic_auth(&self.user, Some(&self.password));
        let (_, _, bytes) = read_answer(send(req, &url).await?).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            url: url.to_string(),
            reason: e.to_string(),
        })
    }

    /// `GET /signpost/v1/signing-keys`: the token signing keys, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>> {
        self.platform(Method::GET, &["signpost", "v1", "signing-keys"])
            .await
    }

    /// `POST /signpost/v1/signing-keys/rotate`: a new key signs from now on; the previous one
    /// keeps verifying for one token lifetime.
    pub async fn rotate_signing_key(&self) -> Result<Rotation> {
        self.platform(Method::POST, &["signpost", "v1", "signing-keys", "rotate"])
            .await
    }
}

fn gone_as(e: Error, message: String) -> Error {
    match e {
        Error::Api { status: 410, .. } => Error::Api {
            status: 410,
            message,
        },
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// Service key and token

/// The fields of a service key (a binding's `credentials`) the client needs. The whole JSON is
/// kept in `raw`.
#[derive(Clone, Deserialize, Serialize)]
pub struct ServiceKey {
    pub clientid: String,
    #[serde(default)]
    pub clientsecret: Option<String>,
    /// The token service's base URL (`<url>/oauth/token`).
    pub url: String,
    /// The destination service's base URL.
    pub uri: String,
    #[serde(skip)]
    pub raw: Value,
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceKey")
            .field("clientid", &self.clientid)
            .field("clientsecret", &"<redacted>")
            .field("url", &self.url)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl ServiceKey {
    /// Reads a service key from its JSON: the key itself, or a bind answer / `cf service-key`
    /// style object with the key under `credentials`.
    pub fn from_json(value: &Value) -> Result<Self> {
        let inner = match value.get("credentials") {
            Some(c) if c.is_object() => c,
            _ => value,
        };
        let mut key: ServiceKey = serde_json::from_value(inner.clone()).map_err(|e| {
            Error::Invalid(format!(
                "not a service key (it needs clientid, clientsecret, url and uri): {e}"
            ))
        })?;
        key.raw = inner.clone();
        Ok(key)
    }
}

/// An access token from the token service.
#[derive(Clone)]
pub struct AccessToken(String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    pub fn secret(&self) -> &str {
        &self.0
    }
}

/// `POST <key.url>/oauth/token` with the client credentials of `key`.
pub async fn client_credentials_token(key: &ServiceKey) -> Result<AccessToken> {
    let secret = key.clientsecret.as_deref().ok_or_else(|| {
        Error::Invalid("the service key has no clientsecret (X.509 keys are not supported)".into())
    })?;
    let http = http_client()?;
    let url = join(&parse_base(&key.url)?, &["oauth", "token"]);
    let req = http.post(url.clone()).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", key.clientid.as_str()),
        ("client_secret", secret),
    ]);
    let (_, _, bytes) = read_answer(send(req, &url).await?).await?;
    let value = json_of(&url, &bytes)?;
    value["access_token"]
        .as_str()
        .map(|t| AccessToken(t.to_owned()))
        .ok_or_else(|| Error::Decode {
            url: url.to_string(),
            reason: "no access_token in the answer".into(),
        })
}

// ---------------------------------------------------------------------------------------------
// Tenant API

/// One item of a bulk (array) POST or PUT answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct BulkItem {
    pub name: String,
    pub status: u16,
    #[serde(default)]
    pub cause: Option<String>,
}

/// Options of a find.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// `X-fragment-name`, in order.
    pub fragments: Vec<String>,
    /// `X-user-token`.
    pub user_token: Option<String>,
}

/// Validity of a generated certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidityUnit {
    Days,
    Months,
    Years,
}

impl ValidityUnit {
    fn as_str(self) -> &'static str {
        match self {
            ValidityUnit::Days => "DAYS",
            ValidityUnit::Months => "MONTHS",
            ValidityUnit::Years => "YEARS",
        }
    }
}

/// A certificate generation request (a POST with `Attributes`).
#[derive(Clone)]
pub struct GenerateRequest {
    pub name: String,
    /// `PEM`, `PKCS12` or `JKS`.
    pub file_type: String,
    pub common_name: String,
    pub validity: (u32, ValidityUnit),
    pub automatic_renew: bool,
    pub password: Option<String>,
}

impl fmt::Debug for GenerateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerateRequest")
            .field("name", &self.name)
            .field("file_type", &self.file_type)
            .field("common_name", &self.common_name)
            .field("validity", &self.validity)
            .field("automatic_renew", &self.automatic_renew)
            .finish_non_exhaustive()
    }
}

impl GenerateRequest {
    /// The request body.
    pub fn to_json(&self) -> Value {
        let mut attributes = json!({
            "CN": self.common_name,
            "Validity": {"TimeUnit": self.validity.1.as_str(), "Value": self.validity.0},
            "AutomaticRenew": self.automatic_renew,
        });
        if let Some(p) = &self.password {
            attributes["Password"] = json!(p);
        }
        json!({"Name": self.name, "Type": self.file_type, "Attributes": attributes})
    }
}

/// A client of the destination configuration API and find destination, with a token of one
/// service key.
#[derive(Clone)]
pub struct TenantClient {
    http: reqwest::Client,
    base: Url,
    token: AccessToken,
}

impl fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl TenantClient {
    /// Gets a token with `key`'s client credentials and targets `key.uri`.
    pub async fn login(key: &ServiceKey) -> Result<Self> {
        let token = client_credentials_token(key).await?;
        Self::with_token(&key.uri, token.0)
    }

    /// A client of the API at `base` with a bearer token.
    pub fn with_token(base: &str, token: String) -> Result<Self> {
        Ok(Self {
            http: http_client()?,
            base: parse_base(base)?,
            token: AccessToken(token),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        join(&self.base, segments)
    }

    async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Vec<u8>)> {
        let mut req = self
            .http
            .request(method, url.clone())
            .bearer_auth(self.token.secret());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, _, bytes) = read_answer(send(req, &url).await?).await?;
        Ok((status, bytes))
    }

    fn config(&self, level: Level, kind: Kind, name: Option<&str>) -> Url {
        let collection = kind.collection(level);
        let mut segments = vec!["destination-configuration", "v1", collection.as_str()];
        if let Some(n) = name {
            segments.push(n);
        }
        self.url(&segments)
    }

    /// `GET .../{level}{Kind}`: every entity of the level.
    pub async fn list(&self, level: Level, kind: Kind) -> Result<Vec<Value>> {
        let url = self.config(level, kind, None);
        let (_, bytes) = self.request(Method::GET, url.clone(), None, &[]).await?;
        match json_of(&url, &bytes)? {
            Value::Array(items) => Ok(items),
            _ => Err(Error::Decode {
                url: url.to_string(),
                reason: "a list must be a JSON array".into(),
            }),
        }
    }

    /// `GET .../{level}{Kind}/{name}`: the entity exactly as the server sent it.
    pub async fn get(&self, level: Level, kind: Kind, name: &str) -> Result<Value> {
        let url = self.config(level, kind, Some(name));
        let (_, bytes) = self.request(Method::GET, url.clone(), None, &[]).await?;
        json_of(&url, &bytes)
    }

    /// `POST .../{level}{Kind}` of one object (`Ok(None)`) or an array (`Ok(Some(items))`, one per
    /// element, whether or not all succeeded).
    pub async fn create(
        &self,
        level: Level,
        kind: Kind,
        body: &Value,
    ) -> Result<Option<Vec<BulkItem>>> {
        self.write(Method::POST, level, kind, body).await
    }

    /// `PUT .../{level}{Kind}` of one object or an array; like [`TenantClient::create`].
    pub async fn update(
        &self,
        level: Level,
        kind: Kind,
        body: &Value,
    ) -> Result<Option<Vec<BulkItem>>> {
        self.write(Method::PUT, level, kind, body).await
    }

    async fn write(
        &self,
        method: Method,
        level: Level,
        kind: Kind,
        body: &Value,
    ) -> Result<Option<Vec<BulkItem>>> {
        let url = self.config(level, kind, None);
        let (_, bytes) = self.request(method, url.clone(), Some(body), &[]).await?;
        if !body.is_array() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Decode {
                url: url.to_string(),
                reason: format!("the bulk answer is not a list of items: {e}"),
            })
    }

    /// `DELETE .../{level}{Kind}/{name}`.
    pub async fn delete(&self, level: Level, kind: Kind, name: &str) -> Result<()> {
        let url = self.config(level, kind, Some(name));
        self.request(Method::DELETE, url, None, &[]).await.map(drop)
    }

    /// `GET /destination-configuration/v1/destinations/{name}`: the find answer exactly as sent.
    pub async fn find(&self, name: &str, options: &FindOptions) -> Result<Value> {
        let url = self.url(&["destination-configuration", "v1", "destinations", name]);
        let fragments = options.fragments.join(",");
        let mut headers = Vec::new();
        if !options.fragments.is_empty() {
            headers.push(("X-fragment-name", fragments.as_str()));
        }
        if let Some(t) = &options.user_token {
            headers.push(("X-user-token", t.as_str()));
        }
        let (_, bytes) = self
            .request(Method::GET, url.clone(), None, &headers)
            .await?;
        json_of(&url, &bytes)
    }

    /// `GET /signpost/v1/certificates/{level}/{name}`: the details view.
    pub async fn certificate_details(&self, level: Level, name: &str) -> Result<Value> {
        let url = self.url(&["signpost", "v1", "certificates", level.as_str(), name]);
        let (_, bytes) = self.request(Method::GET, url.clone(), None, &[]).await?;
        json_of(&url, &bytes)
    }

    /// `GET /signpost/v1/certificates/{level}[?expiringWithinDays=N]`: the details of every
    /// certificate of the level.
    pub async fn list_certificate_details(
        &self,
        level: Level,
        expiring_within_days: Option<u32>,
    ) -> Result<Vec<Value>> {
        let mut url = self.url(&["signpost", "v1", "certificates", level.as_str()]);
        if let Some(d) = expiring_within_days {
            url.query_pairs_mut()
                .append_pair("expiringWithinDays", &d.to_string());
        }
        let (_, bytes) = self.request(Method::GET, url.clone(), None, &[]).await?;
        match json_of(&url, &bytes)? {
            Value::Array(items) => Ok(items),
            _ => Err(Error::Decode {
                url: url.to_string(),
                reason: "a list must be a JSON array".into(),
            }),
        }
    }

    /// Uploads a certificate or keystore file (`POST` of `{Name, Type, Content, Password?}`).
    pub async fn upload_certificate(
        &self,
        level: Level,
        name: &str,
        file_type: Option<&str>,
        content: &[u8],
        password: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({
            "Name": name,
            "Content": base64::engine::general_purpose::STANDARD.encode(content),
        });
        if let Some(t) = file_type {
            body["Type"] = json!(t);
        }
        if let Some(p) = password {
            body["Password"] = json!(p);
        }
        self.create(level, Kind::Certificate, &body).await.map(drop)
    }

    /// Generates a certificate with Signpost's CA (`POST` with `Attributes`).
    pub async fn generate_certificate(
        &self,
        level: Level,
        request: &GenerateRequest,
    ) -> Result<()> {
        self.create(level, Kind::Certificate, &request.to_json())
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collections_and_paths() {
        assert_eq!(
            Kind::Fragment.collection(Level::Instance),
            "instanceDestinationFragments"
        );
        let base = parse_base("http://h:1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            join(&base, &["a", "b c/d"]).as_str(),
            "http://h:1/a/b%20c%2Fd"
        );
        assert!(parse_base("ftp://x").is_err());
    }

    #[test]
    fn error_messages_come_from_the_body() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(error_message(s, br#"{"ErrorMessage":"bad"}"#), "bad");
        assert_eq!(
            error_message(s, br#"{"error":"BadRequest","description":"osb"}"#),
            "osb"
        );
        assert_eq!(error_message(s, b""), "Bad Request");
    }

    #[test]
    fn service_keys_read_nested_credentials() {
        let v =
            json!({"credentials": {"clientid": "c", "clientsecret": "s", "url": "u", "uri": "i"}});
        let key = ServiceKey::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.clientid, "c");
        assert!(!format!("{key:?}").contains("\"s\""));
        assert!(ServiceKey::from_json(&json!({"x": 1})).is_err());
    }
}
