//! The token cache: keyed by everything that changes a token, entries live until shortly before
//! the token expires, and concurrent finds of one cold key make exactly one token request
//! (single flight through moka's `try_get_with`). Failures are not cached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use crate::flows::TokenReply;

/// Which destination version a cached token belongs to, in clear so it can be dropped when the
/// destination changes; `rest` is a digest of everything else in the key (flow, tenant, user,
/// scope, grant inputs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub level: &'static str,
    pub owner: String,
    pub name: String,
    pub rest: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub reply: TokenReply,
    pub fetched: Instant,
}

impl Cached {
    /// Seconds left of the token's life, counting down with the cache.
    pub fn remaining(&self) -> Option<u64> {
        self.reply
            .expires_in
            .map(|e| e.saturating_sub(self.fetched.elapsed().as_secs()))
    }
}

/// How long before expiry a cached token is dropped: a tenth of its life, at most a minute.
pub(crate) fn margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(Duration::from_secs(60))
}

struct UntilShortlyBeforeExpiry;

impl Expiry<CacheKey, Arc<Cached>> for UntilShortlyBeforeExpiry {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Cached>,
        _created_at: Instant,
    ) -> Option<Duration> {
        // Without expires_in nothing says how long the token lives: do not keep it.
        let lifetime = Duration::from_secs(value.reply.expires_in.unwrap_or(0));
        Some(lifetime.saturating_sub(margin(lifetime)))
    }
}

/// A cache of at most `bytes` of tokens: a token counts its strings, its key's and a fixed part.
pub(crate) fn new_cache(bytes: u64) -> Cache<CacheKey, Arc<Cached>> {
    Cache::builder()
        .max_capacity(bytes.max(1))
        .weigher(|k: &CacheKey, v: &Arc<Cached>| {
            let r = &v.reply;
            let optional = |s: &Option<String>| s.as_ref().map_or(0, String::len);
            let size = k.owner.len()
                + k.name.len()
                + k.rest.len()
                + r.access_token.len()
                + r.token_type.len()
                + optional(&r.refresh_token)
                + optional(&r.scope)
                + optional(&r.issued_token_type)
                + 160;
            u32::try_from(size).unwrap_or(u32::MAX)
        })
        .expire_after(UntilShortlyBeforeExpiry)
        .support_invalidation_closures()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(60));
        assert_eq!(margin(Duration::from_secs(100)), Duration::from_secs(10));
        assert_eq!(margin(Duration::from_secs(0)), Duration::ZERO);
    }
}
