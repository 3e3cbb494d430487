//! Finding destinations for requests: the find-destination cache (default 2 minutes, SAP's
//! `cache-093f280`), with each answer's `authTokens` honoured until their `expires_in`, refreshed
//! single-flight per key, and served stale while the Destination service fails. The workload's
//! `Authorization: Bearer` becomes the header its destination's type consumes (PROXY.md §3.2), so
//! the proxy learns each destination's `Authentication` once (a find with `$skipTokenRetrieval`)
//! and remembers it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, StatusCode};
use sha2::{Digest, Sha256};
use signpost_client::{DestinationClient, Error as ClientError, FindRequest, Found, Side};

use crate::error::{Origin, ProxyError};
use crate::metrics::Metrics;
use crate::routing::{single, Lookup};

/// Most answers kept; beyond it, expired ones go first, then everything older than half the TTL.
const MAX_ENTRIES: usize = 20_000;
/// A token is not used in its last seconds: it could expire on the way to the target.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);

/// What the workload sent that a token flow may consume (PROXY.md §3.2).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CallerCredentials {
    /// `Authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// `X-Token-Service-Tenant`.
    pub token_service_tenant: Option<String>,
    pub subject_token_type: Option<String>,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub client_assertion: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_assertion_destination_name: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

impl std::fmt::Debug for CallerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerCredentials")
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .field("token_service_tenant", &self.token_service_tenant)
            .finish_non_exhaustive()
    }
}

impl CallerCredentials {
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ProxyError> {
        if !crate::routing::steered(headers) {
            return Ok(Self::default());
        }
        let own = |name: &str| single(headers, name).map(|v| v.map(str::to_owned));
        let bearer = match single(headers, "authorization")? {
            Some(v) if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") => {
                Some(v[7..].trim().to_owned())
            }
            _ => None,
        };
        let creds = Self {
            bearer,
            token_service_tenant: own("x-token-service-tenant")?,
            subject_token_type: own("x-subject-token-type")?,
            actor_token: own("x-actor-token")?,
            actor_token_type: own("x-actor-token-type")?,
            client_assertion: own("x-client-assertion")?,
            client_assertion_type: own("x-client-assertion-type")?,
            client_assertion_destination_name: own("x-client-assertion-destination-name")?,
            redirect_uri: own("x-redirect-uri")?,
            code_verifier: own("x-code-verifier")?,
        };
        if creds.actor_token.is_some() != creds.actor_token_type.is_some() {
            return Err(ProxyError::bad_request(
                "The 'X-Actor-Token' and 'X-Actor-Token-Type' headers must be passed together",
            ));
        }
        if (creds.client_assertion.is_some() || creds.client_assertion_type.is_some())
            && creds.client_assertion_destination_name.is_some()
        {
            return Err(ProxyError::bad_request(
                "The 'X-Client-Assertion' headers cannot be combined with 'X-Client-Assertion-Destination-Name'",
            ));
        }
        Ok(creds)
    }
}

/// How a destination's `Authentication` uses the workload's bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerUse {
    /// Not at all (`NoAuthentication`, `BasicAuthentication`, client credentials, ...).
    None,
    /// As the user token (`X-user-token`).
    UserToken,
    /// As the refresh token (`X-refresh-token`).
    RefreshToken,
    /// As the authorization code (`X-code`).
    Code,
    /// As the subject token of a token exchange (`X-subject-token`).
    SubjectToken,
}

impl BearerUse {
    pub fn of(authentication: &str) -> Self {
        match authentication {
            "PrincipalPropagation"
            | "OAuth2UserTokenExchange"
            | "OAuth2JWTBearer"
            | "OAuth2SAMLBearerAssertion"
            | "SAMLAssertion"
            | "SAPAssertionSSO" => BearerUse::UserToken,
            "OAuth2RefreshToken" => BearerUse::RefreshToken,
            "OAuth2AuthorizationCode" => BearerUse::Code,
            "OAuth2TokenExchange" => BearerUse::SubjectToken,
            _ => BearerUse::None,
        }
    }
}

/// The find request for `lookup` with what the caller sent, for a destination whose bearer use is
/// `bearer_use`.
pub fn find_request(
    lookup: &Lookup,
    creds: &CallerCredentials,
    bearer_use: BearerUse,
) -> FindRequest {
    let mut req = FindRequest {
        name: lookup.name.clone(),
        level: lookup.level,
        fragments: lookup.fragment.iter().cloned().collect(),
        fragment_optional: lookup.fragment_optional,
        chain_name: lookup.chain_name.clone(),
        chain_vars: lookup.chain_vars.clone(),
        tenant: creds.token_service_tenant.clone(),
        client_assertion: creds.client_assertion.clone(),
        client_assertion_type: creds.client_assertion_type.clone(),
        client_assertion_destination_name: creds.client_assertion_destination_name.clone(),
        ..FindRequest::default()
    };
    let bearer = creds.bearer.clone();
    match bearer_use {
        BearerUse::None => {}
        BearerUse::UserToken => req.user_token = bearer,
        BearerUse::RefreshToken => req.refresh_token = bearer,
        BearerUse::Code => {
            req.code = bearer;
            req.redirect_uri = creds.redirect_uri.clone();
            req.code_verifier = creds.code_verifier.clone();
        }
        BearerUse::SubjectToken => {
            req.subject_token = bearer;
            req.subject_token_type = creds.subject_token_type.clone();
            req.actor_token = creds.actor_token.clone();
            req.actor_token_type = creds.actor_token_type.clone();
        }
    }
    req
}

/// A cached answer.
#[derive(Debug)]
pub struct Cached {
    pub found: Found,
    pub at: Instant,
    /// What the forwarder made of it (URL, headers, egress client), made on first use.
    pub prepared: tokio::sync::OnceCell<Arc<crate::forward::Prepared>>,
}

impl Cached {
    /// The destination's `Authentication`.
    pub fn authentication(&self) -> Option<&str> {
        self.found
            .response
            .destination_configuration
            .get("Authentication")
            .and_then(|v| v.as_str())
    }

    /// Usable without asking again: younger than `ttl`, and every token still valid.
    pub(crate) fn fresh(&self, ttl: Duration, now: Instant) -> bool {
        now.duration_since(self.at) < ttl && self.tokens_valid(now)
    }

    fn tokens_valid(&self, now: Instant) -> bool {
        let age = now.duration_since(self.at);
        self.found.response.auth_tokens.iter().flatten().all(|t| {
            match t.expires_in.as_deref().map(str::parse::<u64>) {
                Some(Ok(secs)) => age + TOKEN_MARGIN < Duration::from_secs(secs),
                _ => true,
            }
        })
    }

    /// True when a token flow failed (such answers are not cached).
    fn has_token_error(&self) -> bool {
        self.found
            .response
            .auth_tokens
            .iter()
            .flatten()
            .any(|t| t.error.is_some())
    }
}

/// The answer for one request.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub cached: Arc<Cached>,
    /// Served from the cache after the Destination service failed: why it failed (the caller logs
    /// it with its request id).
    pub stale: Option<String>,
    /// How the workload's bearer token was used.
    pub bearer_use: BearerUse,
}

impl Resolved {
    fn new(cached: Arc<Cached>, stale: Option<String>) -> Self {
        Self {
            cached,
            stale,
            bearer_use: BearerUse::None,
        }
    }
}

type Key = [u8; 32];

/// The find-destination cache of one proxy process (shared by every instance; keys include the
/// instance's name).
#[derive(Debug, Default)]
pub struct Resolver {
    entries: RwLock<HashMap<Key, Arc<Cached>>>,
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
    /// (instance, lookup) → `Authentication` of the destination.
    hints: RwLock<HashMap<(String, Lookup), String>>,
}

fn key_of(instance: &str, req: &FindRequest) -> Key {
    let mut h = Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(instance);
    put(&req.name);
    put(req.level.map_or("", |l| l.as_str()));
    for f in &req.fragments {
        put(&f.name);
        put(f.level.map_or("", |l| l.as_str()));
    }
    put(match req.fragment_optional {
        Some(true) => "t",
        Some(false) => "f",
        None => "",
    });
    for v in [
        &req.user_token,
        &req.tenant,
        &req.refresh_token,
        &req.code,
        &req.redirect_uri,
        &req.code_verifier,
        &req.subject_token,
        &req.subject_token_type,
        &req.actor_token,
        &req.actor_token_type,
        &req.saml_assertion,
        &req.client_assertion,
        &req.client_assertion_type,
        &req.client_assertion_destination_name,
        &req.chain_name,
    ] {
        put(v.as_deref().unwrap_or("\u{0}"));
    }
    for (k, v) in &req.chain_vars {
        put(k);
        put(v);
    }
    put(if req.skip_token_retrieval { "s" } else { "" });
    h.finalize().into()
}

impl Resolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets every answer (after a configuration change of an instance).
    pub fn clear(&self) {
        if let Ok(mut e) = self.entries.write() {
            e.clear();
        }
        if let Ok(mut h) = self.hints.write() {
            h.clear();
        }
    }

    /// The destination for `lookup` on `instance`.
    pub async fn resolve(
        &self,
        instance: &str,
        client: &DestinationClient,
        lookup: &Lookup,
        creds: &CallerCredentials,
        ttl: Duration,
        metrics: &Metrics,
    ) -> Result<Resolved, ProxyError> {
        let bearer_use = if creds.bearer.is_some() {
            self.bearer_use(instance, client, lookup, ttl, metrics)
                .await?
        } else {
            BearerUse::None
        };
        let req = find_request(lookup, creds, bearer_use);
        let mut resolved = self
            .cached_find(instance, client, &req, ttl, metrics)
            .await?;
        resolved.bearer_use = bearer_use;
        // What the destination's type is matters only to callers with a bearer token; keep the
        // hint fresh for them (it may have changed with the destination).
        if creds.bearer.is_some() {
            if let Some(auth) = resolved.cached.authentication() {
                self.remember(instance, lookup, auth);
            }
        }
        Ok(resolved)
    }

    fn remember(&self, instance: &str, lookup: &Lookup, authentication: &str) {
        let known = self
            .hints
            .read()
            .ok()
            .and_then(|h| h.get(&(instance.to_owned(), lookup.clone())).cloned());
        if known.as_deref() != Some(authentication) {
            if let Ok(mut h) = self.hints.write() {
                if h.len() >= MAX_ENTRIES {
                    h.clear();
                }
                h.insert(
                    (instance.to_owned(), lookup.clone()),
                    authentication.to_owned(),
                );
            }
        }
    }

    /// The destination's configuration without running its token flow or reading its secrets
    /// (`$skipTokenRetrieval`, `$skipCredentials`): enough to learn its type.
    pub async fn probe(
        &self,
        instance: &str,
        client: &DestinationClient,
        lookup: &Lookup,
        ttl: Duration,
        metrics: &Metrics,
    ) -> Result<Resolved, ProxyError> {
        let mut probe = find_request(lookup, &CallerCredentials::default(), BearerUse::None);
        probe.skip_token_retrieval = true;
        probe.skip_credentials = true;
        self.cached_find(instance, client, &probe, ttl, metrics)
            .await
    }

    /// How the destination uses a bearer token; learnt with one find without token retrieval.
    async fn bearer_use(
        &self,
        instance: &str,
        client: &DestinationClient,
        lookup: &Lookup,
        ttl: Duration,
        metrics: &Metrics,
    ) -> Result<BearerUse, ProxyError> {
        let known = self
            .hints
            .read()
            .ok()
            .and_then(|h| h.get(&(instance.to_owned(), lookup.clone())).cloned());
        if let Some(auth) = known {
            return Ok(BearerUse::of(&auth));
        }
        let resolved = self.probe(instance, client, lookup, ttl, metrics).await?;
        let auth = resolved
            .cached
            .authentication()
            .unwrap_or("NoAuthentication")
            .to_owned();
        self.remember(instance, lookup, &auth);
        Ok(BearerUse::of(&auth))
    }

    async fn cached_find(
        &self,
        instance: &str,
        client: &DestinationClient,
        req: &FindRequest,
        ttl: Duration,
        metrics: &Metrics,
    ) -> Result<Resolved, ProxyError> {
        let key = key_of(instance, req);
        if let Some(hit) = self.fresh(&key, ttl) {
            Metrics::inc(&metrics.cache_hits);
            return Ok(Resolved::new(hit, None));
        }
        let flight = {
            let mut flights = self
                .flights
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.entry(key).or_default().clone()
        };
        let guard = flight.lock().await;
        // Someone else may have refreshed it while this one waited.
        if let Some(hit) = self.fresh(&key, ttl) {
            Metrics::inc(&metrics.cache_hits);
            return Ok(Resolved::new(hit, None));
        }
        Metrics::inc(&metrics.cache_misses);
        let outcome = client.find(req).await;
        drop(guard);
        if let Ok(mut flights) = self.flights.lock() {
            if Arc::strong_count(&flight) <= 2 {
                flights.remove(&key);
            }
        }
        match outcome {
            Ok(found) => {
                let cached = Arc::new(Cached {
                    found,
                    at: Instant::now(),
                    prepared: tokio::sync::OnceCell::new(),
                });
                if !cached.has_token_error() {
                    self.store(key, cached.clone(), ttl);
                }
                Ok(Resolved::new(cached, None))
            }
            Err(e) => {
                let serve_stale = !matches!(e, ClientError::Api { status, .. } if status < 500);
                if serve_stale {
                    if let Some(old) = self.entries.read().ok().and_then(|m| m.get(&key).cloned()) {
                        Metrics::inc(&metrics.cache_stale);
                        return Ok(Resolved::new(old, Some(e.to_string())));
                    }
                }
                Err(proxy_error(&req.name, &e))
            }
        }
    }

    fn fresh(&self, key: &Key, ttl: Duration) -> Option<Arc<Cached>> {
        let entries = self.entries.read().ok()?;
        let hit = entries.get(key)?;
        hit.fresh(ttl, Instant::now()).then(|| hit.clone())
    }

    fn store(&self, key: Key, cached: Arc<Cached>, ttl: Duration) {
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            let now = Instant::now();
            entries.retain(|_, c| c.fresh(ttl, now));
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, c| now.duration_since(c.at) < ttl / 2);
            }
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, cached);
    }
}

/// The proxy's answer when finding a destination failed.
pub fn proxy_error(name: &str, e: &ClientError) -> ProxyError {
    match e {
        ClientError::Api {
            status: 404,
            message,
        } => ProxyError::bad_gateway(
            Origin::DestinationService,
            format!("Destination '{name}' could not be found: {message}"),
        )
        .with_internal_code(404),
        ClientError::Api { status, message } if *status == 400 || *status == 422 => {
            ProxyError::new(
                StatusCode::BAD_REQUEST,
                Origin::DestinationService,
                format!("The Destination service refused the lookup of '{name}': {message}"),
            )
            .with_internal_code(*status)
        }
        ClientError::Api { status, message } => ProxyError::bad_gateway(
            Origin::DestinationService,
            format!("The Destination service failed to find '{name}': {message}"),
        )
        .with_internal_code(*status),
        ClientError::TokenService { status, message } => ProxyError::bad_gateway(
            Origin::TokenService,
            format!("No token for the Destination service instance: {message}"),
        )
        .with_internal_code(*status),
        other => {
            let origin = match other.side() {
                Some(Side::TokenService) => Origin::TokenService,
                _ => Origin::DestinationService,
            };
            let status = if other.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            ProxyError::new(status, origin, other.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_uses() {
        assert_eq!(BearerUse::of("OAuth2JWTBearer"), BearerUse::UserToken);
        assert_eq!(BearerUse::of("OAuth2RefreshToken"), BearerUse::RefreshToken);
        assert_eq!(BearerUse::of("OAuth2AuthorizationCode"), BearerUse::Code);
        assert_eq!(BearerUse::of("OAuth2ClientCredentials"), BearerUse::None);
    }

    #[test]
    fn credentials_never_print() {
        let c = CallerCredentials {
            bearer: Some("secret-jwt".into()),
            ..CallerCredentials::default()
        };
        assert!(!format!("{c:?}").contains("secret-jwt"));
    }
}
