//! Server limits (docs/SECURITY.md, issue 11 §4): what one client can hold or demand of the
//! server. The listeners ([`crate::listener`], [`crate::tls`]) apply the header-read timeout and
//! the cap on concurrent connections; the router applies the request timeout; the token service
//! and the bearer-token extractor apply the rate limit.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::ApiError;

/// Default of `SIGNPOST_HEADER_TIMEOUT_SECONDS`.
pub const DEFAULT_HEADER_TIMEOUT_SECS: u64 = 10;
/// Default of `SIGNPOST_REQUEST_TIMEOUT_SECONDS`.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
/// Default of `SIGNPOST_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default of `SIGNPOST_RATE_LIMIT` (requests per second per client id or token; burst twice
/// that). Far above what one token reaches on the project's machines (the find benchmark's
/// ceiling, nginx serving a static file, is about 40 k requests/s there), so that benchmarks
/// and busy clients are never refused by default; operators set what fits their tenants.
pub const DEFAULT_RATE_LIMIT: u32 = 100_000;

/// At most this many clients and tokens are tracked by the rate limiter at once.
const MAX_TRACKED: usize = 100_000;

/// The limits as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// How long a client may take to send a request's headers; an idle kept-alive connection is
    /// closed after this too (slowloris).
    pub header_timeout: Duration,
    /// How long a request may take, body included, except finds (their token flows are bounded
    /// by their own timeouts).
    pub request_timeout: Duration,
    /// Connections served at once over all listeners; further ones wait to be accepted.
    pub max_connections: usize,
    /// Requests per second per client id on `POST /oauth/token` and per bearer token on the
    /// destination API, with a burst of twice that; 0 turns the rate limit off.
    pub rate_limit: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(DEFAULT_HEADER_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

/// The limits at run time: the configuration, the connection slots shared by the listeners and
/// the rate limiter's buckets. One per server, shared behind an `Arc`.
#[derive(Debug)]
pub struct Limits {
    config: LimitsConfig,
    connections: Arc<Semaphore>,
    rate: Option<RateLimiter>,
    limited: AtomicU64,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(LimitsConfig::default())
    }
}

/// What a rate limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    /// The client id of a token request (as claimed, before it is checked).
    Client,
    /// The bearer token of a destination API request (before it is verified).
    Bearer,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        let slots = config.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            config,
            connections: Arc::new(Semaphore::new(slots)),
            rate: (config.rate_limit > 0).then(|| RateLimiter::new(config.rate_limit)),
            limited: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// A connection slot: waits while `max_connections` connections are being served. The slot
    /// is given back when the permit is dropped (the connection ended).
    pub async fn connection_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.connections.clone().acquire_owned().await.ok()
    }

    /// Requests refused with 429 since the start (`signpost_rate_limited_total`).
    pub fn rate_limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Counts a token request of `client_id`; a 429 when the client is over the limit.
    pub fn check_client(&self, client_id: &str) -> Result<(), ApiError> {
        self.check(Scope::Client, client_id)
    }

    /// Counts a request with `token`; a 429 when the token is over the limit.
    pub fn check_bearer(&self, token: &str) -> Result<(), ApiError> {
        self.check(Scope::Bearer, token)
    }

    fn check(&self, scope: Scope, key: &str) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.take(scope, key, Instant::now()).map_err(|wait| {
            self.limited.fetch_add(1, Ordering::Relaxed);
            let what = match scope {
                Scope::Client => "this client id",
                Scope::Bearer => "this token",
            };
            ApiError::too_many_requests(
                format!(
                    "Too many requests for {what}: at most {} a second; try again later",
                    self.config.rate_limit
                ),
                wait,
            )
        })
    }
}

/// Token buckets keyed by a keyed hash of scope and key (SipHash with a per-process random key,
/// so that nobody can aim at a bucket other than their own). Memory is bounded: at
/// [`MAX_TRACKED`] buckets the full ones (worth as much as none) are dropped, and if that frees
/// too little, all are.
#[derive(Debug)]
struct RateLimiter {
    per_second: f64,
    burst: f64,
    hasher: RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    fn new(per_second: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
            hasher: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token, or says how long until one is there.
    fn take(&self, scope: Scope, key: &str, now: Instant) -> Result<(), Duration> {
        let id = self.hasher.hash_one((scope, key));
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&id) {
            self.sweep(&mut buckets, now);
        }
        let bucket = buckets.entry(id).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }

    /// Tokens in `b` at `now`.
    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        (b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * self.per_second)
            .min(self.burst)
    }

    /// Drops the full buckets; if half the room is still taken, keeps only the quarter that is
    /// the emptiest (the clients closest to their limit stay limited).
    fn sweep(&self, buckets: &mut HashMap<u64, Bucket>, now: Instant) {
        buckets.retain(|_, b| self.level(b, now) < self.burst);
        if buckets.len() >= MAX_TRACKED / 2 {
            let mut levels: Vec<(f64, u64)> = buckets
                .iter()
                .map(|(id, b)| (self.level(b, now), *id))
                .collect();
            levels.sort_by(|a, b| a.0.total_cmp(&b.0));
            let keep: std::collections::HashSet<u64> = levels
                .iter()
                .take(MAX_TRACKED / 4)
                .map(|(_, id)| *id)
                .collect();
            buckets.retain(|id, _| keep.contains(id));
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Whether a request is a find (v1 or v2): its token flows are bounded by their own timeouts
/// (`tokenServiceURL.ConnectionTimeoutInSeconds`, `...SocketReadTimeoutInSeconds`), so the
/// request timeout does not cut it short.
fn is_find(req: &Request) -> bool {
    let path = req.uri().path();
    req.method() == Method::GET
        && [
            "/destination-configuration/v1/destinations/",
            "/destination-configuration/v2/destinations/",
        ]
        .iter()
        .any(|p| path.starts_with(p))
}

/// The request timeout: a request that is not answered within `request_timeout` (reading its
/// body included) gets a 503 and its work is dropped.
pub(crate) async fn request_timeout(
    State(limits): State<Arc<Limits>>,
    req: Request,
    next: Next,
) -> Response {
    if is_find(&req) {
        return next.run(req).await;
    }
    let limit = limits.config.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "The request took longer than {} seconds and was stopped",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_of_twice_the_rate_then_refills() {
        let r = RateLimiter::new(2);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(r.take(Scope::Bearer, "a", t0).is_ok());
        }
        let wait = r.take(Scope::Bearer, "a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Another key and another scope have their own buckets.
        assert!(r.take(Scope::Bearer, "b", t0).is_ok());
        assert!(r.take(Scope::Client, "a", t0).is_ok());
        // Half a second later one request is allowed again, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert!(r.take(Scope::Bearer, "a", t1).is_ok());
        assert!(r.take(Scope::Bearer, "a", t1).is_err());
        // The bucket never holds more than the burst.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..4 {
            assert!(r.take(Scope::Bearer, "a", t2).is_ok());
        }
        assert!(r.take(Scope::Bearer, "a", t2).is_err());
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let r = RateLimiter::new(1);
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED + 5_000) {
            let _ = r.take(Scope::Client, &format!("client-{i}"), t0);
        }
        assert!(r.tracked() <= MAX_TRACKED, "{}", r.tracked());
        // Full buckets are dropped first: the keys seen a while ago go, a busy one stays.
        let r = RateLimiter::new(1);
        for _ in 0..2 {
            r.take(Scope::Client, "busy", t0).unwrap();
        }
        let later = t0 + Duration::from_millis(100);
        for i in 0..MAX_TRACKED {
            let _ = r.take(Scope::Client, &format!("c-{i}"), t0);
        }
        assert!(r.take(Scope::Client, "busy", later).is_err());
    }

    #[test]
    fn off_means_off() {
        let l = Limits::new(LimitsConfig {
            rate_limit: 0,
            ..Default::default()
        });
        for _ in 0..10_000 {
            l.check_bearer("t").unwrap();
        }
        assert_eq!(l.rate_limited(), 0);
    }
}
