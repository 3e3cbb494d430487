//! Signpost's use cases: the service broker (provision with the configuration JSON, bind), the
//! token service for the service's own credentials, tenancy and authorization, the destination
//! configuration API and find destination. Handlers in `signpost-api` call exactly one function
//! here each. Must not depend on axum or any HTTP server code.

mod broker;
mod entities;
mod error;
mod find;
mod tokens;

use std::sync::Arc;

pub use broker::{
    BindOutcome, BrokerError, BrokerResult, ProvisionOutcome, CATALOG_PLAN_ID, CATALOG_SERVICE_ID,
};
pub use entities::{CreateOutcome, DeleteSummary, ListMode, ListResult, UpdateOutcome};
pub use error::{Error, Result};
pub use find::{FindOptions, FindResult};
pub use tokens::{Principal, TokenError, TokenResponse};

use signpost_store::Store;

/// Deployment facts the use cases need: where the service is reached.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Base URL written into service keys as `url` and `uri` (no trailing slash).
    pub public_url: String,
    /// `host[:port]` written as `uaadomain`: the HTTPS listener when there is one.
    pub uaadomain: String,
    /// Lifetime of issued access tokens.
    pub token_lifetime_secs: u64,
}

/// The service: a store plus the in-memory state derived from it (signing keys, caches).
#[derive(Debug, Clone)]
pub struct Signpost {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    config: CoreConfig,
    keys: tokens::KeyRing,
    principals: tokens::PrincipalCache,
}

impl Signpost {
    /// Loads (or on first start creates) the token signing key and returns the service.
    pub async fn new(store: Arc<dyn Store>, config: CoreConfig) -> Result<Self> {
        let keys = tokens::KeyRing::load_or_create(store.as_ref()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                config,
                keys,
                principals: tokens::PrincipalCache::default(),
            }),
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn config(&self) -> &CoreConfig {
        &self.inner.config
    }
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
