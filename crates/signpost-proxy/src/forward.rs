//! One HTTP request through the proxy, phase by phase (pingora's hooks): route by `Host`, read
//! the lookup and the caller's credentials from the headers, resolve the destination (cached),
//! check it can be used, build the target request (URL, injected tokens, `URL.headers.*`,
//! `URL.queries.*`, `X-Forwarded-*`, control and hop-by-hop headers removed), send it with the
//! bodies streamed both ways, and pass the answer back unchanged. WebSocket (and any other HTTP/1.1)
//! upgrades are relayed once both sides agreed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use signpost_client::Tenant;

use crate::body::{self, ProxyBody};
use crate::config::TenantMode;
use crate::egress::{self, Profile};
use crate::error::{Origin, ProxyError};
use crate::resolve::{BearerUse, CallerCredentials, Resolved};
use crate::routing::{self, RouteEntry};
use crate::state::{Shared, Snapshot};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

const LOCATION_ID: &str = "sap-connectivity-scc-location_id";
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Serves one request from a workload.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let request_id = request_id(req.headers());
    let snapshot = shared.snapshot();
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let Some(entry) = snapshot.routes.lookup(&host) else {
        let e = ProxyError::new(
            StatusCode::NOT_FOUND,
            Origin::Proxy,
            format!("No Destination resource serves the host '{host}'"),
        );
        return fail(&shared, "-", &request_id, e);
    };
    let started = Instant::now();
    match forward(&shared, &snapshot, entry, req, peer, &request_id).await {
        Ok(res) => {
            entry.counters.count(res.status().as_u16());
            tracing::debug!(
                request_id = %request_id,
                route = %entry.id,
                status = res.status().as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "forwarded"
            );
            res
        }
        Err(e) => fail(&shared, &entry.id, &request_id, e),
    }
}

pub(crate) fn fail(
    shared: &Shared,
    route: &str,
    request_id: &str,
    e: ProxyError,
) -> Response<ProxyBody> {
    shared.metrics.request(route, e.status.as_u16());
    shared.metrics.error(e.origin.label());
    tracing::warn!(
        request_id = %request_id,
        route = %route,
        status = e.status.as_u16(),
        origin = e.origin.header_value(),
        "{}",
        e.message
    );
    e.into_response(request_id)
}

/// The caller's `x-request-id` when it is a sane token, else a new one (`signpost_wire`).
fn request_id(headers: &HeaderMap) -> String {
    signpost_wire::request_id::request_id(
        headers
            .get(signpost_wire::request_id::HEADER)
            .and_then(|v| v.to_str().ok()),
    )
}

fn prop<'a>(config: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    config
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn seconds(config: &Map<String, Value>, key: &str, default: u64, max: u64) -> Duration {
    let secs = prop(config, key)
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| (1..=max).contains(s))
        .unwrap_or(default);
    Duration::from_secs(secs)
}

async fn forward(
    shared: &Arc<Shared>,
    snapshot: &Snapshot,
    entry: &RouteEntry,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    request_id: &str,
) -> Result<Response<ProxyBody>, ProxyError> {
    let lookup = routing::lookup_for(&entry.route, req.headers())?;
    let creds = CallerCredentials::from_headers(req.headers())?;
    let tenant = tenant_of(snapshot.config.tenant_mode, req.headers())?;
    let (resolved, prepared) = prepare(
        shared,
        snapshot,
        entry,
        &lookup,
        &creds,
        tenant.as_ref(),
        request_id,
    )
    .await?;
    // The request's location id wins over the destination's: another egress client then.
    let override_location = match &prepared.profile.on_premise {
        Some((_, location)) => routing::single(req.headers(), LOCATION_ID)?
            .filter(|l| Some(*l) != location.as_deref())
            .map(str::to_owned),
        None => None,
    };
    let http = match override_location {
        Some(location) => {
            let mut profile = prepared.profile.clone();
            if let Some((_, l)) = profile.on_premise.as_mut() {
                *l = Some(location);
            }
            shared.egress.client(&profile)?
        }
        None => prepared.client.clone(),
    };

    // The request to the target.
    let mut url = prepared.url.clone();
    {
        let (path, query) = (req.uri().path(), req.uri().query());
        if path != "/" || prepared.base_path.is_empty() {
            let mut joined = String::with_capacity(prepared.base_path.len() + path.len());
            joined.push_str(&prepared.base_path);
            joined.push_str(path);
            url.set_path(&joined);
        }
        match (
            prepared.base_query.as_deref(),
            query.filter(|q| !q.is_empty()),
        ) {
            (_, None) => {}
            (None, Some(q)) => url.set_query(Some(q)),
            (Some(b), Some(q)) => url.set_query(Some(&format!("{b}&{q}"))),
        }
        if !prepared.queries.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &prepared.queries {
                pairs.append_pair(k, v);
            }
        }
    }

    let upgrade = is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let method = req.method().clone();
    let mut headers = outgoing_headers(req.headers(), upgrade, prepared.set_headers.len() + 4);
    // The workload's `Authorization: Bearer` is for the Destination service (its user token,
    // refresh token or code), never for the target (issue 10 §2.3), whatever the type.
    if resolved.bearer_use != BearerUse::None || creds.bearer.is_some() {
        headers.remove(header::AUTHORIZATION);
    }
    for (name, value) in &prepared.set_headers {
        headers.insert(name.clone(), value.clone());
    }
    if prepared.profile.on_premise.is_some()
        && resolved.bearer_use == BearerUse::UserToken
        && prepared.authentication == "PrincipalPropagation"
    {
        if let Some(v) = creds
            .bearer
            .as_ref()
            .and_then(|b| HeaderValue::from_str(&format!("Bearer {b}")).ok())
        {
            headers.insert("sap-connectivity-authentication", v);
        }
    }
    for (name, value) in &prepared.add_headers {
        headers.append(name.clone(), value.clone());
    }
    let peer_ip = peer.ip().to_string();
    let forwarded_for = match req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {peer_ip}")),
        None => HeaderValue::from_str(&peer_ip),
    };
    if let Ok(v) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    if let Some(h) = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    }) {
        headers.insert(X_FORWARDED_HOST.clone(), h);
    }

    let retry = &snapshot.config.retry;
    let replayable = req.body().is_end_stream() && !upgrade;
    // Only a request that may be sent again keeps a copy of its URL and headers.
    let retries = if replayable { retry.max_retries } else { 0 };
    let mut body = (!replayable).then(|| req.into_body());
    let mut attempt = 0u32;
    let http = http.get();
    let mut target = Some((url, headers));
    let res = loop {
        let (url, headers) = match target.as_ref() {
            Some((u, h)) if attempt < retries => (u.clone(), h.clone()),
            _ => target.take().ok_or_else(|| {
                ProxyError::bad_gateway(Origin::Proxy, "The request to the target was used up")
            })?,
        };
        let sent = Instant::now();
        let outcome = http.send(method.clone(), url, headers, body.take()).await;
        shared.metrics.target_latency(sent.elapsed());
        let retryable = match &outcome {
            Ok(r) => retry.status_codes.contains(&r.status().as_u16()),
            Err(e) => e.connect || e.timeout,
        };
        if retryable && attempt < retries {
            attempt += 1;
            tracing::debug!(request_id = %request_id, attempt, "retrying the target");
            continue;
        }
        break outcome.map_err(|e| target_error(&e, &lookup.name, prepared.reasons))?;
    };

    let mut res = res;
    let status = res.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let mut response_headers = res.headers().clone();
        strip_hop_by_hop(&mut response_headers, true);
        let Some(on_upgrade) = on_upgrade else {
            return Err(ProxyError::bad_gateway(
                Origin::Proxy,
                "The target switched protocols without being asked to",
            ));
        };
        let rid = request_id.to_owned();
        let target_upgrade = hyper::upgrade::on(&mut res);
        tokio::spawn(async move {
            let (client_side, target_side) = match tokio::join!(on_upgrade, target_upgrade) {
                (Ok(c), Ok(t)) => (c, t),
                _ => {
                    tracing::warn!(request_id = %rid, "the upgrade failed on one side");
                    return;
                }
            };
            let mut client_io = hyper_util::rt::TokioIo::new(client_side);
            let mut target_io = hyper_util::rt::TokioIo::new(target_side);
            let _ = tokio::io::copy_bidirectional(&mut client_io, &mut target_io).await;
        });
        let mut out = Response::new(body::empty());
        *out.status_mut() = status;
        *out.headers_mut() = response_headers;
        return Ok(out);
    }
    strip_hop_by_hop(res.headers_mut(), false);
    Ok(res)
}

/// The destination of a request and what the forwarder made of it: resolved (cached) for
/// `lookup` with the caller's credentials, in `tenant` when the proxy serves several.
pub(crate) async fn prepare(
    shared: &Arc<Shared>,
    snapshot: &Snapshot,
    entry: &RouteEntry,
    lookup: &routing::Lookup,
    creds: &CallerCredentials,
    tenant: Option<&Tenant>,
    request_id: &str,
) -> Result<(Resolved, Arc<Prepared>), ProxyError> {
    let client = entry
        .client(&snapshot.clients)
        .map_err(|why| ProxyError::bad_gateway(Origin::Proxy, why))?;
    // Shared tenant mode: the lookup runs in the tenant the request names, with its own token
    // and its own cache entries.
    let tenant_client;
    let (client, scope) = match tenant {
        None => (client, std::borrow::Cow::Borrowed(entry.instance.as_str())),
        Some(t) => {
            tenant_client = client
                .for_tenant(t)
                .map_err(|e| ProxyError::bad_request(e.to_string()))?;
            (
                &tenant_client,
                std::borrow::Cow::Owned(format!("{}\u{1f}{t}", entry.instance)),
            )
        }
    };
    let resolved = shared
        .resolver
        .resolve(
            &scope,
            client,
            lookup,
            creds,
            snapshot.config.cache_ttl,
            &shared.metrics,
        )
        .await
        .map_err(|e| match tenant {
            Some(t) => unknown_tenant(e, t, &entry.instance),
            None => e,
        })?;
    if let Some(reason) = &resolved.stale {
        tracing::warn!(
            request_id = %request_id,
            destination = %lookup.name,
            error = %reason,
            "serving a cached destination: the Destination service failed"
        );
    }
    let prepared = resolved
        .cached
        .prepared
        .get_or_try_init(|| {
            Prepared::of(
                &resolved,
                &lookup.name,
                lookup.fragment.is_some(),
                snapshot,
                shared,
            )
        })
        .await?
        .clone();
    Ok((resolved, prepared))
}

/// What the proxy needs of a resolved destination to call it, made once per cached answer: the
/// parsed URL, the headers to inject, the egress client.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) url: url::Url,
    /// The URL's path without its trailing `/`.
    pub(crate) base_path: String,
    pub(crate) base_query: Option<String>,
    authentication: String,
    /// `authTokens[].http_header`: set, replacing the caller's.
    pub(crate) set_headers: Vec<(HeaderName, HeaderValue)>,
    /// `URL.headers.*`: added.
    pub(crate) add_headers: Vec<(HeaderName, HeaderValue)>,
    /// `URL.queries.*`.
    pub(crate) queries: Vec<(String, String)>,
    pub(crate) profile: Profile,
    pub(crate) client: egress::Clients,
    /// Where the lean path (`lean`) connects: set for a plain `http://` URL without user
    /// information reached directly.
    pub(crate) plain: Option<PlainTarget>,
    /// The prefix of SAP's reasons for errors of this destination: `…-ReferencedDestination`,
    /// or `…-ReferencedDestinationWithFragment` when a fragment was merged into it.
    pub(crate) reasons: &'static str,
}

/// A plain `http://` target: its host (as a name or address literal, without brackets), port,
/// and the `Host` header its requests carry.
#[derive(Debug)]
pub(crate) struct PlainTarget {
    pub host: String,
    pub port: u16,
    pub authority: String,
    /// The key of its idle connections in the lean path's pool: `host:port`.
    pub pool_key: String,
}

impl PlainTarget {
    fn of(url: &url::Url, on_premise: bool) -> Option<Self> {
        if on_premise
            || url.scheme() != "http"
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return None;
        }
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Some(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            pool_key: format!("{host}:{port}"),
            authority,
        })
    }
}

impl Prepared {
    async fn of(
        resolved: &Resolved,
        name: &str,
        with_fragment: bool,
        snapshot: &Snapshot,
        shared: &Shared,
    ) -> Result<Arc<Self>, ProxyError> {
        let reasons = if with_fragment {
            egress::REFERENCED_WITH_FRAGMENT
        } else {
            egress::REFERENCED
        };
        let response = &resolved.cached.found.response;
        let config = &response.destination_configuration;
        let mut set_headers = Vec::new();
        for token in response.auth_tokens.iter().flatten() {
            if let Some(error) = &token.error {
                return Err(ProxyError::bad_gateway(
                    Origin::DestinationService,
                    format!("Destination '{name}': the token could not be retrieved: {error}"),
                ));
            }
            if let Some(h) = &token.http_header {
                let (Ok(header), Ok(value)) = (
                    HeaderName::from_bytes(h.key.as_bytes()),
                    HeaderValue::from_str(&h.value),
                ) else {
                    return Err(ProxyError::bad_gateway(
                        Origin::DestinationService,
                        format!("Destination '{name}': an auth token's header is not valid HTTP"),
                    ));
                };
                set_headers.push((header, value));
            }
        }
        // An unusable destination: SAP's reason; a URL the proxy cannot call is a 404
        // (PROXY.md §3.5: "destination URL problem"), the rest 502s.
        let refuse = |status: StatusCode, reason: &str, text: &str| {
            ProxyError::new(
                status,
                Origin::Proxy,
                format!("Destination '{name}' {text} ({reasons}-{reason})"),
            )
        };
        let bad = |reason: &str, text: String| refuse(StatusCode::BAD_GATEWAY, reason, &text);
        let bad_url = |text: &str| refuse(StatusCode::NOT_FOUND, "UrlNotSupported", text);
        let ty = prop(config, "Type").unwrap_or("HTTP");
        if ty != "HTTP" {
            return Err(bad(
                "TypeNotSupported",
                format!("has Type '{ty}'; only HTTP destinations are served on the HTTP port"),
            ));
        }
        let raw_url = prop(config, "URL")
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| bad_url("has no URL"))?;
        let with_scheme = if raw_url.contains("://") {
            raw_url.to_owned()
        } else {
            format!("http://{raw_url}")
        };
        let url = url::Url::parse(&with_scheme)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| bad_url("has a URL that is not http:// or https://"))?;
        let proxy_type = prop(config, "ProxyType").unwrap_or("Internet");
        let on_premise = match proxy_type {
            "Internet" => None,
            "OnPremise" => {
                let Some(cp) = &snapshot.config.connectivity_proxy else {
                    return Err(ProxyError::bad_gateway(
                        Origin::Proxy,
                        format!("Destination '{name}' is OnPremise, but no connectivity proxy is configured (config.integration.connectivityProxy)"),
                    ));
                };
                let location = prop(config, "CloudConnectorLocationId").map(str::to_owned);
                Some((egress::on_premise_url(cp), location))
            }
            other => {
                return Err(bad(
                    "ProxyTypeNotSupported",
                    format!("has ProxyType '{other}'; it must be Internet or OnPremise"),
                ))
            }
        };
        if on_premise.is_none() {
            shared.egress.check_target(&url, name, reasons)?;
        }
        let mut add_headers = Vec::new();
        let mut queries = Vec::new();
        for (k, v) in config {
            let Some(v) = v.as_str() else { continue };
            if let Some(h) = k.strip_prefix("URL.headers.") {
                if let (Ok(header), Ok(value)) = (
                    HeaderName::from_bytes(h.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    add_headers.push((header, value));
                }
            } else if let Some(q) = k.strip_prefix("URL.queries.") {
                queries.push((q.to_owned(), v.to_owned()));
            }
        }
        let certificates = response.certificates.as_deref().unwrap_or(&[]);
        let (identity_pem, trust_pem) = shared
            .egress
            .tls_material(name, config, certificates)
            .await?;
        let profile = Profile {
            connect_timeout: seconds(config, "URL.connectionTimeoutInSeconds", 5, 300),
            read_timeout: seconds(config, "URL.socketReadTimeoutInSeconds", 30, 43_200),
            identity_pem,
            trust_pem,
            trust_all: prop(config, "TrustAll").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            on_premise,
        };
        let client = shared.egress.client(&profile)?;
        Ok(Arc::new(Self {
            plain: PlainTarget::of(&url, profile.on_premise.is_some()),
            base_path: url.path().trim_end_matches('/').to_owned(),
            base_query: url.query().filter(|q| !q.is_empty()).map(str::to_owned),
            url,
            authentication: prop(config, "Authentication")
                .unwrap_or("NoAuthentication")
                .to_owned(),
            set_headers,
            add_headers,
            queries,
            profile,
            client,
            reasons,
        }))
    }
}

/// The tenant of a request: in shared tenant mode exactly one of `X-Tenant-Subdomain` and
/// `X-Tenant-Id` (PROXY.md §3.2); in dedicated mode neither, so that no request is answered
/// in a tenant the proxy does not serve.
fn tenant_of(mode: TenantMode, headers: &HeaderMap) -> Result<Option<Tenant>, ProxyError> {
    let subdomain = routing::single(headers, "x-tenant-subdomain")?.filter(|s| !s.is_empty());
    let id = routing::single(headers, "x-tenant-id")?.filter(|s| !s.is_empty());
    match (mode, subdomain, id) {
        (TenantMode::Dedicated, None, None) => Ok(None),
        (TenantMode::Dedicated, _, _) => Err(ProxyError::bad_request(
            "The X-Tenant-Subdomain and X-Tenant-Id headers are only used in shared tenant mode (config.tenantMode: shared)",
        )),
        (TenantMode::Shared, Some(_), Some(_)) => Err(ProxyError::bad_request(
            "Send either the X-Tenant-Subdomain or the X-Tenant-Id header, not both",
        )),
        (TenantMode::Shared, None, None) => Err(ProxyError::bad_request(
            "In shared tenant mode every request names its tenant: send the X-Tenant-Subdomain or the X-Tenant-Id header",
        )),
        (TenantMode::Shared, Some(s), None) => Ok(Some(Tenant::Subdomain(s.to_owned()))),
        (TenantMode::Shared, None, Some(i)) => Ok(Some(Tenant::Id(i.to_owned()))),
    }
}

/// A token service that refuses a tenant's token: the tenant is unknown or not subscribed, a
/// 500 from XSUAA's side as PROXY.md §3.5 says.
fn unknown_tenant(e: ProxyError, tenant: &Tenant, instance: &str) -> ProxyError {
    match (e.origin, e.internal_code) {
        (Origin::TokenService, Some(401 | 403)) => ProxyError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Origin::TokenService,
            format!(
                "The tenant with {tenant} was not found or is not subscribed to the Destination service instance '{instance}'"
            ),
        )
        .with_internal_code(e.internal_code.unwrap_or(401)),
        _ => e,
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// The request's headers minus hop-by-hop, `Host`, `Expect`, `X-Forwarded-*` (set anew) and the
/// proxy's control headers; an upgrade keeps `Connection: upgrade` and `Upgrade`. Built afresh
/// (one pass, no removals) with room for `extra` more.
fn outgoing_headers(incoming: &HeaderMap, upgrade: bool, extra: usize) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(incoming.len() + extra);
    let connection_named = connection_named(incoming);
    for (name, value) in incoming {
        let n = name.as_str();
        let drop = HOP_BY_HOP.contains(&n)
            || n == "host"
            || n == "expect"
            || n == LOCATION_ID
            || n == "x-forwarded-for"
            || n == "x-forwarded-proto"
            || n == "x-forwarded-host"
            || routing::CONTROL_HEADERS.contains(&n)
            || n.starts_with("x-chain-var-")
            || connection_named.iter().any(|c| c == n);
        if !drop {
            headers.append(name.clone(), value.clone());
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(v) = incoming.get(header::UPGRADE) {
            headers.insert(header::UPGRADE, v.clone());
        }
    }
    headers
}

/// The header names a `Connection` header lists (hop-by-hop too), lowercase, without the
/// `upgrade`, `keep-alive` and `close` tokens.
fn connection_named(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "keep-alive" && t != "close")
        .collect()
}

/// Removes hop-by-hop headers and those named by `Connection`; an upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    static NAMES: std::sync::OnceLock<Vec<HeaderName>> = std::sync::OnceLock::new();
    let names = NAMES.get_or_init(|| {
        HOP_BY_HOP
            .iter()
            .map(|n| HeaderName::from_static(n))
            .collect()
    });
    let named = connection_named(headers);
    let upgrade_value = upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    for name in names {
        headers.remove(name);
    }
    for name in named {
        headers.remove(name.as_str());
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(v) = upgrade_value {
            headers.insert(header::UPGRADE, v);
        }
    }
}

/// The proxy's answer when the target could not be called.
pub(crate) fn target_error(e: &egress::SendError, destination: &str, reasons: &str) -> ProxyError {
    let mut chain = e.source.to_string();
    let mut source = e.source.source();
    if matches!(
        e.source.downcast_ref::<signpost_net::NotPublic>(),
        Some(signpost_net::NotPublic::Private { .. })
    ) {
        return egress::loopback_error(destination, reasons);
    }
    while let Some(s) = source {
        if matches!(
            s.downcast_ref::<signpost_net::NotPublic>(),
            Some(signpost_net::NotPublic::Private { .. })
        ) {
            return egress::loopback_error(destination, reasons);
        }
        chain = format!("{chain}: {s}");
        source = s.source();
    }
    let (status, what) = if e.timeout {
        (StatusCode::GATEWAY_TIMEOUT, "timed out")
    } else if e.connect {
        (StatusCode::BAD_GATEWAY, "could not be reached")
    } else {
        (StatusCode::BAD_GATEWAY, "failed")
    };
    // The URL is left out: a destination's URL may carry credentials in its query.
    let reason = chain
        .split(": ")
        .last()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    ProxyError::new(
        status,
        Origin::Proxy,
        format!("The target system of destination '{destination}' {what}: {reason}"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hop_by_hop_and_control_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-destination-name", "d".parse().unwrap());
        h.insert("x-chain-var-subject", "s".parse().unwrap());
        h.insert("accept", "text/plain".parse().unwrap());
        h.insert("host", "d.default".parse().unwrap());
        h.insert("expect", "100-continue".parse().unwrap());
        let out = outgoing_headers(&h, false, 0);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["accept"], "text/plain");
    }

    #[test]
    fn the_tenant_headers_fit_the_tenant_mode() {
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            h
        };
        assert_eq!(tenant_of(TenantMode::Dedicated, &with(&[])).unwrap(), None);
        assert_eq!(
            tenant_of(TenantMode::Shared, &with(&[("x-tenant-id", "t1")])).unwrap(),
            Some(Tenant::Id("t1".into()))
        );
        assert_eq!(
            tenant_of(TenantMode::Shared, &with(&[("x-tenant-subdomain", "t1")])).unwrap(),
            Some(Tenant::Subdomain("t1".into()))
        );
        for (mode, headers) in [
            (TenantMode::Dedicated, vec![("x-tenant-id", "t1")]),
            (TenantMode::Shared, vec![]),
            (
                TenantMode::Shared,
                vec![("x-tenant-id", "t1"), ("x-tenant-subdomain", "t1")],
            ),
            (
                TenantMode::Shared,
                vec![("x-tenant-id", "t1"), ("x-tenant-id", "t2")],
            ),
        ] {
            let e = tenant_of(mode, &with(&headers)).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{mode:?} {headers:?}");
        }
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(is_upgrade(&h));
        let out = outgoing_headers(&h, true, 0);
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
    }
}
