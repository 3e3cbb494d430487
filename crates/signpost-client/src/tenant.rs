//! The tenant client: destinations, fragments and certificates on subaccount and instance level
//! with a service key's token (or one fixed token), find destination, and Signpost's
//! certificate details view. Entities stay `serde_json::Value`s so that callers see exactly the
//! server's JSON.

use std::fmt;

use base64::Engine as _;

use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::{join, json_of, parse_base, read_answer, send};
use crate::{
    admin_http, admin_options, destination, http, AccessToken, ClientOptions, DestinationClient,
    Error, FindRequest, Found, Kind, Level, Result, ServiceKey, Side,
};

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

    /// `GET url`, whose answer must be a JSON array.
    async fn get_array(&self, url: Url) -> Result<Vec<Value>> {
        let (_, bytes) = self.request(Method::GET, url.clone(), None).await?;
        array_of(&url, &bytes)
    }

    /// `GET .../{level}{Kind}`: every entity of the level.
    pub async fn list(&self, level: Level, kind: Kind) -> Result<Vec<Value>> {
        let url = self.config(level, kind, None);
        self.get_array(url).await
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

    /// `GET .../{level}{Kind}/{name}/labels`: the entity's labels, `[{"key", "values"}]`.
    pub async fn labels(&self, level: Level, kind: Kind, name: &str) -> Result<Vec<Value>> {
        self.get_array(self.labels_url(level, kind, name)).await
    }

    /// `PUT .../labels`: all labels (`[{"key", "values"}]`), replacing the entity's; the labels
    /// it has afterwards.
    pub async fn set_labels(
        &self,
        level: Level,
        kind: Kind,
        name: &str,
        labels: &Value,
    ) -> Result<Vec<Value>> {
        self.write_labels(Method::PUT, level, kind, name, labels)
            .await
    }

    /// `PATCH .../labels` with `{"action": "ADD"|"DELETE", "labels": [...]}`; the labels the
    /// entity has afterwards.
    pub async fn patch_labels(
        &self,
        level: Level,
        kind: Kind,
        name: &str,
        patch: &Value,
    ) -> Result<Vec<Value>> {
        self.write_labels(Method::PATCH, level, kind, name, patch)
            .await
    }

    async fn write_labels(
        &self,
        method: Method,
        level: Level,
        kind: Kind,
        name: &str,
        body: &Value,
    ) -> Result<Vec<Value>> {
        let url = self.labels_url(level, kind, name);
        let (_, bytes) = self.request(method, url.clone(), Some(body)).await?;
        array_of(&url, &bytes)
    }

    fn labels_url(&self, level: Level, kind: Kind, name: &str) -> Url {
        let collection = kind.collection(level);
        self.url(&[
            "destination-configuration",
            "v1",
            collection.as_str(),
            name,
            "labels",
        ])
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
        self.get_array(url).await
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

/// The Destination service's answer from `url`, which must be a JSON array.
fn array_of(url: &Url, bytes: &[u8]) -> Result<Vec<Value>> {
    match json_of(Side::DestinationService, url, bytes)? {
        Value::Array(items) => Ok(items),
        _ => Err(Error::Decode {
            side: Side::DestinationService,
            url: http::shown(url),
            reason: "the answer must be a JSON array".into(),
        }),
    }
}
