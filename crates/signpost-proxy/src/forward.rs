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

use crate::body::{self, ProxyBody};
use crate::egress::{self, Profile};
use crate::error::{Origin, ProxyError};
use crate::resolve::{BearerUse, CallerCredentials, Resolved};
use crate::routing::{self, RouteEntry};
use crate::state::{Shared, Snapshot};

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
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
            shared.metrics.request(&entry.id, res.status().as_u16());
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

fn fail(shared: &Shared, route: &str, request_id: &str, e: ProxyError) -> Response<ProxyBody> {
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

/// The caller's `x-request-id` when it is a sane token, else a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
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
    let client = snapshot.clients.get(&entry.instance).ok_or_else(|| {
        ProxyError::bad_gateway(
            Origin::Proxy,
            format!(
                "The Destination service instance '{}' is not configured",
                entry.instance
            ),
        )
    })?;
    let resolved = shared
        .resolver
        .resolve(
            &entry.instance,
            client,
            &lookup,
            &creds,
            snapshot.config.cache_ttl,
            &shared.metrics,
        )
        .await?;
    let target = Target::of(&resolved, &lookup.name, snapshot, shared, req.headers()).await?;
    if target.on_premise.is_none() {
        shared.egress.check_target(&target.url, &lookup.name)?;
    }

    // The request to the target.
    let mut url = target.url.clone();
    {
        let (path, query) = (req.uri().path(), req.uri().query());
        let base = url.path().trim_end_matches('/').to_owned();
        let joined = if path == "/" && !base.is_empty() {
            base
        } else {
            format!("{base}{path}")
        };
        url.set_path(if joined.is_empty() { "/" } else { &joined });
        let mut q = url.query().unwrap_or("").to_owned();
        if let Some(part) = query.filter(|p| !p.is_empty()) {
            if !q.is_empty() {
                q.push('&');
            }
            q.push_str(part);
        }
        url.set_query(if q.is_empty() { None } else { Some(&q) });
        if !target.queries.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &target.queries {
                pairs.append_pair(k, v);
            }
        }
    }

    let upgrade = is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let original_host = req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let method = req.method().clone();
    let mut headers = outgoing_headers(req.headers(), upgrade);
    if resolved.bearer_use != BearerUse::None {
        headers.remove(header::AUTHORIZATION);
    }
    for token in resolved.cached.found.response.auth_tokens.iter().flatten() {
        if let Some(h) = &token.http_header {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(h.key.as_bytes()),
                HeaderValue::from_str(&h.value),
            ) else {
                return Err(ProxyError::bad_gateway(
                    Origin::DestinationService,
                    format!(
                        "Destination '{}': an auth token's header is not valid HTTP",
                        lookup.name
                    ),
                ));
            };
            headers.insert(name, value);
        }
    }
    if let (Some(_), BearerUse::UserToken, Some(bearer)) =
        (&target.on_premise, resolved.bearer_use, &creds.bearer)
    {
        if target.authentication == "PrincipalPropagation" {
            if let Ok(v) = HeaderValue::from_str(&format!("Bearer {bearer}")) {
                headers.insert("sap-connectivity-authentication", v);
            }
        }
    }
    for (k, v) in &target.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            headers.append(name, value);
        }
    }
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) => format!("{prev}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = original_host {
        headers.insert("x-forwarded-host", h);
    }

    let profile = Profile {
        connect_timeout: target.connect_timeout,
        read_timeout: target.read_timeout,
        identity_pem: target.identity_pem.clone(),
        trust_pem: target.trust_pem.clone(),
        trust_all: target.trust_all,
        on_premise: target.on_premise.clone(),
    };
    let http = shared.egress.client(&profile)?;
    let retry = &snapshot.config.retry;
    let replayable = req.body().is_end_stream() && !upgrade;
    let body = req.into_body();
    let mut body = Some(body);
    let mut attempt = 0u32;
    let res = loop {
        let mut builder = http
            .request(method.clone(), url.clone())
            .headers(headers.clone());
        if let Some(b) = body.take() {
            if !replayable {
                builder = builder.body(reqwest::Body::wrap(b));
            }
        }
        let sent = Instant::now();
        let outcome = builder.send().await;
        shared.metrics.target_latency(sent.elapsed());
        let retryable = match &outcome {
            Ok(r) => retry.status_codes.contains(&r.status().as_u16()),
            Err(e) => e.is_connect() || e.is_timeout(),
        };
        if replayable && retryable && attempt < retry.max_retries {
            attempt += 1;
            tracing::debug!(request_id = %request_id, attempt, "retrying the target");
            continue;
        }
        break outcome.map_err(|e| target_error(&e, &lookup.name))?;
    };

    let status = res.status();
    let mut response_headers = res.headers().clone();
    strip_hop_by_hop(
        &mut response_headers,
        status == StatusCode::SWITCHING_PROTOCOLS,
    );
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(on_upgrade) = on_upgrade else {
            return Err(ProxyError::bad_gateway(
                Origin::Proxy,
                "The target switched protocols without being asked to",
            ));
        };
        let rid = request_id.to_owned();
        tokio::spawn(async move {
            let (client_side, target_side) = match tokio::join!(on_upgrade, res.upgrade()) {
                (Ok(c), Ok(t)) => (c, t),
                _ => {
                    tracing::warn!(request_id = %rid, "the upgrade failed on one side");
                    return;
                }
            };
            let mut client_io = hyper_util::rt::TokioIo::new(client_side);
            let mut target_io = target_side;
            let _ = tokio::io::copy_bidirectional(&mut client_io, &mut target_io).await;
        });
        let mut out = Response::new(body::empty());
        *out.status_mut() = status;
        *out.headers_mut() = response_headers;
        return Ok(out);
    }
    let mut out: Response<ProxyBody> = Response::<reqwest::Body>::from(res).map(body::boxed);
    *out.headers_mut() = response_headers;
    Ok(out)
}

/// What the proxy needs of a resolved destination to call it.
struct Target {
    url: url::Url,
    authentication: String,
    headers: Vec<(String, String)>,
    queries: Vec<(String, String)>,
    connect_timeout: Duration,
    read_timeout: Duration,
    identity_pem: Option<secrecy::SecretString>,
    trust_pem: Option<String>,
    trust_all: bool,
    on_premise: Option<(String, Option<String>)>,
}

impl Target {
    async fn of(
        resolved: &Resolved,
        name: &str,
        snapshot: &Snapshot,
        shared: &Shared,
        request_headers: &HeaderMap,
    ) -> Result<Self, ProxyError> {
        let response = &resolved.cached.found.response;
        let config = &response.destination_configuration;
        for token in response.auth_tokens.iter().flatten() {
            if let Some(error) = &token.error {
                return Err(ProxyError::bad_gateway(
                    Origin::DestinationService,
                    format!("Destination '{name}': the token could not be retrieved: {error}"),
                ));
            }
        }
        let bad = |reason: &str, text: String| {
            ProxyError::bad_gateway(
                Origin::Proxy,
                format!("Destination '{name}' {text} (ConfigurationError-ReferencedDestination-{reason})"),
            )
        };
        let ty = prop(config, "Type").unwrap_or("HTTP");
        if ty != "HTTP" {
            return Err(bad(
                "TypeNotSupported",
                format!("has Type '{ty}'; only HTTP destinations are served on the HTTP port"),
            ));
        }
        let raw_url =
            prop(config, "URL").ok_or_else(|| bad("UrlNotSupported", "has no URL".into()))?;
        let with_scheme = if raw_url.contains("://") {
            raw_url.to_owned()
        } else {
            format!("http://{raw_url}")
        };
        let url = url::Url::parse(&with_scheme)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                bad(
                    "UrlNotSupported",
                    "has a URL that is not http:// or https://".into(),
                )
            })?;
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
                let location = routing::single(request_headers, LOCATION_ID)?
                    .map(str::to_owned)
                    .or_else(|| prop(config, "CloudConnectorLocationId").map(str::to_owned));
                Some((egress::on_premise_url(cp), location))
            }
            other => {
                return Err(bad(
                    "ProxyTypeNotSupported",
                    format!("has ProxyType '{other}'; it must be Internet or OnPremise"),
                ))
            }
        };
        let mut headers = Vec::new();
        let mut queries = Vec::new();
        for (k, v) in config {
            let Some(v) = v.as_str() else { continue };
            if let Some(h) = k.strip_prefix("URL.headers.") {
                headers.push((h.to_owned(), v.to_owned()));
            } else if let Some(q) = k.strip_prefix("URL.queries.") {
                queries.push((q.to_owned(), v.to_owned()));
            }
        }
        let certificates = response.certificates.as_deref().unwrap_or(&[]);
        let (identity_pem, trust_pem) = shared
            .egress
            .tls_material(name, config, certificates)
            .await?;
        Ok(Self {
            url,
            authentication: prop(config, "Authentication")
                .unwrap_or("NoAuthentication")
                .to_owned(),
            headers,
            queries,
            connect_timeout: seconds(config, "URL.connectionTimeoutInSeconds", 5, 300),
            read_timeout: seconds(config, "URL.socketReadTimeoutInSeconds", 30, 43_200),
            identity_pem,
            trust_pem,
            trust_all: prop(config, "TrustAll").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            on_premise,
        })
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

/// The request's headers minus hop-by-hop, `Host`, `Expect` and the proxy's control headers;
/// an upgrade keeps `Connection: upgrade` and `Upgrade`.
fn outgoing_headers(incoming: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut headers = incoming.clone();
    strip_hop_by_hop(&mut headers, upgrade);
    headers.remove(header::HOST);
    headers.remove(header::EXPECT);
    for name in routing::CONTROL_HEADERS {
        headers.remove(*name);
    }
    headers.remove(LOCATION_ID);
    let chain_vars: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-chain-var-"))
        .cloned()
        .collect();
    for k in chain_vars {
        headers.remove(k);
    }
    headers
}

/// Removes hop-by-hop headers and those named by `Connection`; an upgrade keeps
/// `Connection: upgrade` and `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade")
        .collect();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    for name in HOP_BY_HOP.iter().map(|s| s.to_string()).chain(named) {
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
fn target_error(e: &reqwest::Error, destination: &str) -> ProxyError {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain = format!("{chain}: {s}");
        source = s.source();
    }
    if chain.contains("private, loopback or link-local") {
        return egress::loopback_error(destination);
    }
    let (status, what) = if e.is_timeout() {
        (StatusCode::GATEWAY_TIMEOUT, "timed out")
    } else if e.is_connect() {
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
        let out = outgoing_headers(&h, false);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out["accept"], "text/plain");
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Upgrade".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(is_upgrade(&h));
        let out = outgoing_headers(&h, true);
        assert_eq!(out["connection"], "upgrade");
        assert_eq!(out["upgrade"], "websocket");
    }
}
