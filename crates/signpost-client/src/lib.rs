//! `signpost-client`: a typed async HTTP client of Signpost's public API (and of SAP's
//! Destination service, which speaks the same contract, API.md).
//!
//! - [`DestinationClient`] is what an application (or Signpost's proxy) uses: with a
//!   [`ServiceKey`] (client secret or X.509) it gets tokens (cached, renewed before expiry, one
//!   fetch shared by concurrent callers) and finds destinations ([`FindRequest`]: v1 or v2
//!   `@level`, fragments, every `X-*` header), revalidating with `If-None-Match`.
//! - [`BrokerClient`] speaks the Open Service Broker API 2.17 (catalog, provision, update,
//!   deprovision, bind, unbind) and Signpost's platform endpoints (token signing keys) with the
//!   platform's HTTP Basic credentials.
//! - [`TenantClient`] manages destinations, fragments and certificates on subaccount and
//!   instance level with a service key's token, finds destinations and reads Signpost's
//!   certificate details view. Entities stay `serde_json::Value`s so that callers see exactly the
//!   server's JSON.
//!
//! Every failure is an [`Error`] that says which side failed (token service or Destination
//! service) and carries the server's own message (`ErrorMessage`, OSB `description` or OAuth
//! `error_description`); no error or `Debug` output contains a secret. This crate is only a
//! client: it holds no server code.

mod destination;
mod error;
mod find;
mod http;
mod key;
mod token;

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub use destination::DestinationClient;
pub use error::{Error, Result, Side};
pub use find::{FindRequest, Found, FragmentRef, LookupLevel};
pub use http::{error_message, ClientOptions};
pub use key::{AccessToken, ServiceKey};
pub use signpost_wire::{
    AuditEntry, AuthToken, CertificateItem, FindResponse, HttpHeader, Owner, Subscription,
};
pub use token::{Clock, SystemClock, Tenant};

use http::{join, json_of, parse_base, read_answer, send};

/// The OSB API version this client sends.
pub const BROKER_API_VERSION: &str = "2.17";

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

/// Options of the broker and tenant clients: long reads (bulk imports), default trust.
fn admin_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(120),
        ..ClientOptions::default()
    }
}

fn admin_http() -> Result<reqwest::Client> {
    http::build_client(&admin_options(), None)
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
            http: admin_http()?,
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
        let (_, _, bytes) =
            read_answer(send(req, Side::DestinationService, &url).await?, &url).await?;
        if bytes.is_empty() {
            return Ok(Value::Object(Map::new()));
        }
        json_of(Side::DestinationService, &url, &bytes)
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
                side: Side::DestinationService,
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
        let (status, _, _) =
            read_answer(send(req, Side::DestinationService, &url).await?, &url).await?;
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
                side: Side::DestinationService,
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
        self.platform_with(method, segments, None).await
    }

    /// A platform request with an optional JSON body; the answer decoded.
    async fn platform_with<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<T> {
        let url = join(&self.base, segments);
        let mut req = self
            .http
            .request(method, url.clone())
            .basic_auth(&self.user, Some(&self.password));
        if let Some(body) = body {
            req = req.json(body);
        }
        let (_, _, bytes) =
            read_answer(send(req, Side::DestinationService, &url).await?, &url).await?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
            side: Side::DestinationService,
            url: http::shown(&url),
            reason: http::decode_reason(&e),
        })
    }

    /// `PUT /signpost/v1/subscriptions/{instance}/{subaccount}`: subscribes the subaccount to
    /// the provider's instance with its subdomain.
    pub async fn subscribe(
        &self,
        instance: &str,
        subaccount: &str,
        subdomain: &str,
    ) -> Result<Subscription> {
        let body = serde_json::json!({ "subdomain": subdomain });
        self.platform_with(
            Method::PUT,
            &["signpost", "v1", "subscriptions", instance, subaccount],
            Some(&body),
        )
        .await
    }

    /// `DELETE /signpost/v1/subscriptions/{instance}/{subaccount}`: ends the subscription with
    /// its subscription-level entities; the subscription as it was.
    pub async fn unsubscribe(&self, instance: &str, subaccount: &str) -> Result<Subscription> {
        self.platform(
            Method::DELETE,
            &["signpost", "v1", "subscriptions", instance, subaccount],
        )
        .await
    }

    /// `GET /signpost/v1/subscriptions/{instance}`: the instance's subscriptions.
    pub async fn subscriptions(&self, instance: &str) -> Result<Vec<Subscription>> {
        self.platform(Method::GET, &["signpost", "v1", "subscriptions", instance])
            .await
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

    /// `GET /signpost/v1/audit`: up to `limit` audit events newest first, none older than
    /// `since` (RFC 3339), following the `Link: rel="next"` pages.
    pub async fn audit(&self, since: Option<&str>, limit: usize) -> Result<Vec<AuditEntry>> {
        const PAGE: usize = 1000;
        let mut events = Vec::new();
        let mut cursor: Option<String> = None;
        while events.len() < limit {
            let mut url = join(&self.base, &["signpost", "v1", "audit"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("limit", &(limit - events.len()).min(PAGE).to_string());
                if let Some(s) = since {
                    q.append_pair("since", s);
                }
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
            }
            let req = self
                .http
                .get(url.clone())
                .basic_auth(&self.user, Some(&self.password));
            let (_, headers, bytes) =
                read_answer(send(req, Side::DestinationService, &url).await?, &url).await?;
            let page: Vec<AuditEntry> =
                serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
                    side: Side::DestinationService,
                    url: http::shown(&url),
                    reason: http::decode_reason(&e),
                })?;
            events.extend(page);
            cursor = headers
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_cursor);
            if cursor.is_none() {
                break;
            }
        }
        Ok(events)
    }
}

/// The `cursor` of a `Link: <...?cursor=C...>; rel="next"` header.
fn next_cursor(link: &str) -> Option<String> {
    let next = link.split(',').find(|l| l.contains("rel=\"next\""))?;
    let target = next.split_once('<')?.1.split_once('>')?.0;
    let url = Url::parse("http://server/").ok()?.join(target).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "cursor")
        .map(|(_, v)| v.into_owned())
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
// Token (one-shot)

/// One token for `key` (client secret or X.509), without caching: `POST <url>/oauth/token`, or
/// `<certurl>/oauth/token` over mTLS. Prefer [`DestinationClient::token`], which caches.
pub async fn client_credentials_token(key: &ServiceKey) -> Result<AccessToken> {
    DestinationClient::new(key.clone(), ClientOptions::default())?
        .token()
        .await
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

/// A client of the destination configuration API and find destination, with the tokens of one
/// service key (cached and renewed like [`DestinationClient`]'s) or with one fixed token.
#[derive(Clone)]
pub struct TenantClient {
    http: reqwest::Client,
    base: Url,
    auth: Auth,
}

#[derive(Clone)]
enum Auth {
    Fixed(AccessToken),
    Key(DestinationClient),
}

impl fmt::Debug for TenantClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl TenantClient {
    /// Gets a token with `key` (client secret or X.509) and targets `key.uri`.
    pub async fn login(key: &ServiceKey) -> Result<Self> {
        Self::login_with(key, admin_options()).await
    }

    /// Like [`TenantClient::login`] with explicit timeouts and trusted CAs.
    pub async fn login_with(key: &ServiceKey, options: ClientOptions) -> Result<Self> {
        let http = http::build_client(&options, None)?;
        let client = DestinationClient::new(key.clone(), options)?;
        client.token().await?;
        Ok(Self {
            http,
            base: client.base().clone(),
            auth: Auth::Key(client),
        })
    }

    /// A client of the API at `base` with a bearer token.
    pub fn with_token(base: &str, token: String) -> Result<Self> {
        Ok(Self {
            http: admin_http()?,
            base: parse_base(base)?,
            auth: Auth::Fixed(AccessToken::new(token)),
        })
    }

    async fn token(&self) -> Result<AccessToken> {
        match &self.auth {
            Auth::Fixed(t) => Ok(t.clone()),
            Auth::Key(c) => c.token().await,
        }
    }

    fn url(&self, segments: &[&str]) -> Url {
        join(&self.base, segments)
    }

    async fn request(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Vec<u8>)> {
        let token = self.token().await?;
        let mut req = self
            .http
            .request(method, url.clone())
            .bearer_auth(token.secret());
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, _, bytes) =
            read_answer(send(req, Side::DestinationService, &url).await?, &url).await?;
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
        let (_, bytes) = self.request(Method::GET, url.clone(), None).await?;
        match json_of(Side::DestinationService, &url, &bytes)? {
            Value::Array(items) => Ok(items),
            _ => Err(Error::Decode {
                side: Side::DestinationService,
                url: http::shown(&url),
                reason: "a list must be a JSON array".into(),
            }),
        }
    }

    /// `GET .../{level}{Kind}/{name}`: the entity exactly as the server sent it.
    pub async fn get(&self, level: Level, kind: Kind, name: &str) -> Result<Value> {
        let url = self.config(level, kind, Some(name));
        let (_, bytes) = self.request(Method::GET, url.clone(), None).await?;
        json_of(Side::DestinationService, &url, &bytes)
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
        let (_, bytes) = self.request(method, url.clone(), Some(body)).await?;
        if !body.is_array() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Decode {
                side: Side::DestinationService,
                url: http::shown(&url),
                reason: format!(
                    "the bulk answer is not a list of items: {}",
                    http::decode_reason(&e)
                ),
            })
    }

    /// `DELETE .../{level}{Kind}/{name}`.
    pub async fn delete(&self, level: Level, kind: Kind, name: &str) -> Result<()> {
        let url = self.config(level, kind, Some(name));
        self.request(Method::DELETE, url, None).await.map(drop)
    }

    /// Finds a destination (v1, or v2 with `request.level`), like [`DestinationClient::find`].
    pub async fn find(&self, request: &FindRequest) -> Result<Found> {
        let token = self.token().await?;
        destination::find_with(&self.http, &self.base, &token, request, None)
            .await
            .map(|(found, _)| found)
    }

    /// `POST /signpost/v1/destinations/{level}/{name}/check`: check connection, the report of
    /// each step (token, DNS, TCP, TLS, HTTP).
    pub async fn check_destination(&self, level: Level, name: &str) -> Result<Value> {
        let url = self.url(&[
            "signpost",
            "v1",
            "destinations",
            level.as_str(),
            name,
            "check",
        ]);
        let (_, bytes) = self.request(Method::POST, url.clone(), None).await?;
        json_of(Side::DestinationService, &url, &bytes)
    }

    /// `GET /signpost/v1/certificates/{level}/{name}`: the details view.
    pub async fn certificate_details(&self, level: Level, name: &str) -> Result<Value> {
        let url = self.url(&["signpost", "v1", "certificates", level.as_str(), name]);
        let (_, bytes) = self.request(Method::GET, url.clone(), None).await?;
        json_of(Side::DestinationService, &url, &bytes)
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
        let (_, bytes) = self.request(Method::GET, url.clone(), None).await?;
        match json_of(Side::DestinationService, &url, &bytes)? {
            Value::Array(items) => Ok(items),
            _ => Err(Error::Decode {
                side: Side::DestinationService,
                url: http::shown(&url),
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
    #![allow(clippy::unwrap_used)]
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

    #[test]
    fn x509_keys() {
        let v = json!({
            "clientid": "c", "url": "https://uaa", "uri": "https://dest",
            "credential-type": "x509", "certurl": "https://cert.uaa",
            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "key": "-----BEGIN PRIVATE KEY-----\nsecret-key-body\n-----END PRIVATE KEY-----\n",
            "uaadomain": "uaa"
        });
        let key = ServiceKey::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert!(key.is_x509());
        assert_eq!(key.token_base(), "https://cert.uaa");
        assert_eq!(key.raw["uaadomain"], "uaa");
        let debug = format!("{key:?}");
        assert!(!debug.contains("secret-key-body"), "{debug}");
        assert!(debug.contains("cert.uaa"));
        // No certurl: the token service is `url`.
        let mut no_certurl = key.clone();
        no_certurl.certurl = None;
        assert_eq!(no_certurl.token_base(), "https://uaa");
        // A certificate without credential-type and without secret is X.509 too.
        let mut implicit = key.clone();
        implicit.credential_type = None;
        assert!(implicit.is_x509());
        // Self-provided certificate: the key comes separately.
        let mut own = key.clone();
        own.key = None;
        let own = own.with_private_key("PEM".into());
        assert_eq!(own.key.as_deref(), Some("PEM"));
        // Client-secret keys.
        let secret = ServiceKey::from_json(&json!({
            "clientid": "c", "clientsecret": "very-secret", "url": "u", "uri": "i",
            "credential-type": "binding-secret"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!secret.is_x509());
        assert_eq!(secret.token_base(), "u");
        assert!(!format!("{secret:?}").contains("very-secret"));
    }

    #[test]
    fn error_sides_statuses_and_timeouts() {
        let api = Error::Api {
            status: 404,
            message: "Not Found".into(),
        };
        assert_eq!(api.side(), Some(Side::DestinationService));
        assert_eq!(api.status(), Some(404));
        assert_eq!(api.to_string(), "Not Found (HTTP 404)");
        let token = Error::TokenService {
            status: 401,
            message: "Bad client credentials".into(),
        };
        assert_eq!(token.side(), Some(Side::TokenService));
        assert_eq!(token.status(), Some(401));
        assert_eq!(
            token.to_string(),
            "Bad client credentials (HTTP 401 from the token service)"
        );
        let slow = Error::Unreachable {
            side: Side::DestinationService,
            url: "https://dest".into(),
            reason: "operation timed out".into(),
            timeout: true,
        };
        assert!(slow.is_timeout());
        assert_eq!(slow.status(), None);
        assert_eq!(
            slow.to_string(),
            "https://dest did not answer in time: operation timed out"
        );
        let refused = Error::Unreachable {
            side: Side::TokenService,
            url: "http://127.0.0.1:9".into(),
            reason: "connection refused".into(),
            timeout: false,
        };
        assert!(!refused.is_timeout());
        assert_eq!(
            refused.to_string(),
            "cannot reach the token service at http://127.0.0.1:9: connection refused"
        );
        let decode = Error::Decode {
            side: Side::TokenService,
            url: "https://uaa/oauth/token".into(),
            reason: "no access_token in the answer".into(),
        };
        assert_eq!(decode.side(), Some(Side::TokenService));
        assert_eq!(Error::Invalid("x".into()).side(), None);
        assert_eq!(Side::TokenService.to_string(), "token service");
        assert_eq!(Side::DestinationService.to_string(), "Destination service");
    }

    #[test]
    fn decode_reasons_never_quote_the_body() {
        let e = serde_json::from_str::<FindResponse>(
            r#"{"destinationConfiguration": {}, "authTokens": [{"type": 1, "value": "secret-token"}]}"#,
        )
        .unwrap_err();
        assert!(!http::decode_reason(&e).contains("secret"));
        let e = serde_json::from_str::<FindResponse>(r#"{"owner": null}"#).unwrap_err();
        assert!(
            http::decode_reason(&e).contains("destinationConfiguration"),
            "{}",
            http::decode_reason(&e)
        );
    }

    #[test]
    fn client_debug_shows_no_secret() {
        let key = ServiceKey::from_json(&json!({
            "clientid": "c", "clientsecret": "very-secret", "url": "http://uaa", "uri": "http://dest"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let client =
            DestinationClient::new(key, ClientOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{client:?}");
        assert!(
            debug.contains("http://dest") && !debug.contains("very-secret"),
            "{debug}"
        );
        assert_eq!(client.service_key().clientid, "c");
        let options = ClientOptions::default();
        assert_eq!(options.connect_timeout, Duration::from_secs(5));
        assert_eq!(options.read_timeout, Duration::from_secs(10));
        assert_eq!(options.renew_before, Duration::from_secs(60));
        assert!(options.extra_roots_pem.is_none());
        let bad_roots = ClientOptions {
            extra_roots_pem: Some("not pem".into()),
            ..ClientOptions::default()
        };
        assert!(matches!(
            DestinationClient::new(client.service_key().clone(), bad_roots),
            Err(Error::Invalid(_))
        ));
    }
}
