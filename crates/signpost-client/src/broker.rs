//! The service broker's client: the Open Service Broker API 2.17 (catalog, provision, update,
//! deprovision, bind, unbind) and Signpost's platform endpoints (subscriptions, token signing
//! keys, the audit log), authenticated with the platform's HTTP Basic credentials.

use std::fmt;

use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::http::{join, json_of, parse_base, read_answer, send};
use crate::{admin_http, http, AuditEntry, Error, Result, Side, Subscription, BROKER_API_VERSION};

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
