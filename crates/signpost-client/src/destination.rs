//! [`DestinationClient`]: find destinations (v1 and v2) with a service key, the way an
//! application (or Signpost's proxy) consumes the Destination service.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};

use crate::find::{FindRequest, Found};
use crate::http::{self, build_client, parse_base};
use crate::token::{Clock, SystemClock, Tenant, TokenSource};
use crate::{AccessToken, ClientOptions, Error, FindResponse, Result, ServiceKey, Side};

/// A client of the Destination service for one service key: tokens are cached and renewed
/// before expiry (one fetch shared by concurrent callers). Cheap to clone (one `Arc`). `Debug`
/// shows no secret.
#[derive(Clone)]
pub struct DestinationClient {
    inner: Arc<Inner>,
}

struct Inner {
    key: ServiceKey,
    base: Url,
    http: reqwest::Client,
    tokens: TokenSource,
    options: ClientOptions,
    clock: Arc<dyn Clock>,
    /// The clients of this key's tenants, made on first use ([`DestinationClient::for_tenant`]).
    tenants: Mutex<HashMap<Tenant, DestinationClient>>,
}

/// Tenant clients kept per service key before the oldest are dropped.
const MAX_TENANTS: usize = 10_000;

impl fmt::Debug for DestinationClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationClient")
            .field("uri", &self.inner.base.as_str())
            .field("clientid", &self.inner.key.clientid)
            .field("x509", &self.inner.key.is_x509())
            .finish_non_exhaustive()
    }
}

impl DestinationClient {
    /// A client of `key.uri` that gets its tokens with `key` (client secret or X.509).
    pub fn new(key: ServiceKey, options: ClientOptions) -> Result<Self> {
        Self::with_clock(key, options, Arc::new(SystemClock))
    }

    /// Like [`DestinationClient::new`], with the clock that decides when a token is renewed.
    pub fn with_clock(
        key: ServiceKey,
        options: ClientOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let base = parse_base(&key.uri)?;
        let tokens = TokenSource::new(&key, &options, clock.clone(), None)?;
        let http = build_client(&options, None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                key,
                base,
                http,
                tokens,
                options,
                clock,
                tenants: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The client of `tenant` (a subscriber of the key's instance, or its own subaccount): the
    /// same service key, with tenant tokens cached apart. Made once per tenant and kept.
    pub fn for_tenant(&self, tenant: &Tenant) -> Result<DestinationClient> {
        let mut tenants = self
            .inner
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = tenants.get(tenant) {
            return Ok(c.clone());
        }
        let inner = &self.inner;
        let client = DestinationClient {
            inner: Arc::new(Inner {
                key: inner.key.clone(),
                base: inner.base.clone(),
                http: inner.http.clone(),
                tokens: TokenSource::new(
                    &inner.key,
                    &inner.options,
                    inner.clock.clone(),
                    Some(tenant),
                )?,
                options: inner.options.clone(),
                clock: inner.clock.clone(),
                tenants: Mutex::new(HashMap::new()),
            }),
        };
        if tenants.len() >= MAX_TENANTS {
            tenants.clear();
        }
        tenants.insert(tenant.clone(), client.clone());
        Ok(client)
    }

    pub fn service_key(&self) -> &ServiceKey {
        &self.inner.key
    }

    /// The Destination service's base URL (the key's `uri`).
    pub fn base(&self) -> &Url {
        &self.inner.base
    }

    /// How many token requests this client has sent (cache misses).
    pub fn token_fetches(&self) -> u64 {
        self.inner.tokens.fetches()
    }

    /// An access token for the Destination service: the cached one while it is not within
    /// `renew_before` of its expiry, else a new one (concurrent callers share one fetch).
    pub async fn token(&self) -> Result<AccessToken> {
        self.inner.tokens.token().await
    }

    /// Finds a destination (v1, or v2 with `request.level`).
    pub async fn find(&self, request: &FindRequest) -> Result<Found> {
        let token = self.token().await?;
        find_with(&self.inner.http, &self.inner.base, &token, request, None)
            .await
            .map(|(found, _)| found)
    }

    /// Asks again with `If-None-Match: cached.etag`. A 304 gives back `cached` (with
    /// `fetched_at` set to now, since the answer was just confirmed); a 200 gives the new answer.
    /// Without an ETag in `cached` this is a plain [`DestinationClient::find`].
    pub async fn revalidate(&self, request: &FindRequest, cached: &Found) -> Result<Found> {
        let token = self.token().await?;
        let (found, not_modified) = find_with(
            &self.inner.http,
            &self.inner.base,
            &token,
            request,
            cached.etag.as_deref(),
        )
        .await?;
        if not_modified {
            return Ok(Found {
                response: cached.response.clone(),
                etag: found.etag.or_else(|| cached.etag.clone()),
                fetched_at: found.fetched_at,
            });
        }
        Ok(found)
    }
}

/// One find with `token`; `(found, true)` for a 304 (then `found.response` is empty).
///
/// v1 takes no levels, so a find that gives a fragment's level but not the destination's
/// ([`FindRequest::levels_in_order`]) is done as v1 would look the destination up, with v2
/// lookups: at instance level, and at subaccount level when that one answers 404. The
/// fragment's level is explicit, so a missing fragment is a 404 either way.
pub(crate) async fn find_with(
    http_client: &reqwest::Client,
    base: &Url,
    token: &AccessToken,
    request: &FindRequest,
    if_none_match: Option<&str>,
) -> Result<(Found, bool)> {
    let Some([first, then]) = request.levels_in_order() else {
        return find_once(http_client, base, token, request, if_none_match).await;
    };
    let mut leveled = request.clone();
    leveled.level = Some(first);
    match find_once(http_client, base, token, &leveled, if_none_match).await {
        Err(Error::Api { status: 404, .. }) => {
            leveled.level = Some(then);
            find_once(http_client, base, token, &leveled, if_none_match).await
        }
        answer => answer,
    }
}

/// One find call with `token`, as `request` says.
async fn find_once(
    http_client: &reqwest::Client,
    base: &Url,
    token: &AccessToken,
    request: &FindRequest,
    if_none_match: Option<&str>,
) -> Result<(Found, bool)> {
    let url = request.url(base)?;
    let mut headers = request.headers()?;
    if let Some(etag) = if_none_match {
        let v = reqwest::header::HeaderValue::from_str(etag).map_err(|_| {
            Error::Invalid("the cached ETag cannot be sent as If-None-Match".into())
        })?;
        headers.insert(IF_NONE_MATCH, v);
    }
    let req = http_client
        .get(url.clone())
        .bearer_auth(token.secret())
        .headers(headers);
    let res = http::send(req, Side::DestinationService, &url).await?;
    let fetched_at = Instant::now();
    let etag = res
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if res.status() == StatusCode::NOT_MODIFIED {
        if if_none_match.is_none() {
            return Err(Error::Decode {
                side: Side::DestinationService,
                url: http::shown(&url),
                reason: "304 Not Modified without If-None-Match".into(),
            });
        }
        let found = Found {
            response: FindResponse {
                owner: None,
                destination_configuration: serde_json::Map::new(),
                auth_tokens: None,
                certificates: None,
            },
            etag,
            fetched_at,
        };
        return Ok((found, true));
    }
    let (_, _, bytes) = http::read_answer(res, &url).await?;
    let response: FindResponse = serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
        side: Side::DestinationService,
        url: http::shown(&url),
        reason: format!("not a find-destination result: {}", http::decode_reason(&e)),
    })?;
    Ok((
        Found {
            response,
            etag,
            fetched_at,
        },
        false,
    ))
}
