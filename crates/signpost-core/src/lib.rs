//! Signpost's use cases: the service broker (provision with the configuration JSON, bind), the
//! token service for the service's own credentials, tenancy and authorization, the destination
//! configuration API and find destination. Handlers in `signpost-api` call exactly one function
//! here each. Must not depend on axum or any HTTP server code.

mod access;
pub mod audit;
mod body;
mod broker;
mod ca;
mod certificates;
mod check;
mod entities;
mod epoch_map;
mod error;
mod find;
mod labels;
mod saml;
mod subscriptions;
mod tokens;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

pub use access::Access;
pub use audit::AuditPage;
pub use broker::{
    BindOutcome, BrokerError, BrokerErrorKind, BrokerResult, ProvisionOutcome, CATALOG_PLAN_ID,
    CATALOG_SERVICE_ID,
};
pub use check::CheckReport;
pub use entities::{DeleteSummary, ListMode, ListResult, WriteResult};
pub use error::{Error, Result};
pub use find::{FindOptions, FindResult};
pub use signpost_oauth::{
    parse_trusted_issuers, FlowHeaders, OAuthConfig, TrustedIssuer, DEFAULT_TOKEN_CACHE_BYTES,
};
pub use signpost_store::CacheStats;
pub use subscriptions::Subscription;
pub use tokens::{
    KeyState, PlatformInstance, Principal, Rotation, SigningKeyInfo, TokenError, TokenResponse,
    DEFAULT_PRINCIPAL_CACHE_BYTES, JWT_BEARER, UNKNOWN_KID_RELOAD_EVERY,
};

use signpost_oauth::FlowRunner;
use signpost_store::{Change, Store, WriteOp, WriteOutcome};

/// Deployment facts the use cases need: where the service is reached.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Base URL written into service keys as `url` and `uri` (no trailing slash).
    pub public_url: String,
    /// `host[:port]` written as `uaadomain`: the HTTPS listener when there is one.
    pub uaadomain: String,
    /// Lifetime of issued access tokens.
    pub token_lifetime_secs: u64,
    /// The outbound token flows.
    pub oauth: OAuthConfig,
    /// `https://host:port` of the HTTPS listener, written as `certurl` into X.509 service keys.
    pub cert_url: Option<String>,
    /// Bytes of verified bearer tokens kept (`SIGNPOST_CACHE_MB`'s share;
    /// [`DEFAULT_PRINCIPAL_CACHE_BYTES`] unless configured).
    pub principal_cache_bytes: u64,
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
    flows: FlowRunner,
    saml_signers: saml::SignerCache,
    /// Parsed key and trust stores of token flows, per certificate version.
    key_stores: certificates::KeyStoreCache,
    ca: signpost_certs::ca::CertificateAuthority,
}

impl Signpost {
    /// Loads (or on first start creates) the token signing key and returns the service.
    pub async fn new(store: Arc<dyn Store>, config: CoreConfig) -> Result<Self> {
        let keys = tokens::KeyRing::load_or_create(store.as_ref()).await?;
        let flows = FlowRunner::new(config.oauth.clone());
        let ca = ca::load_or_create(store.as_ref()).await?;
        let changes = store.changes();
        let principal_cache_bytes = config.principal_cache_bytes;
        let inner = Arc::new(Inner {
            store,
            config,
            keys,
            principals: tokens::PrincipalCache::weighted(
                principal_cache_bytes,
                tokens::PRINCIPAL_CACHE_TTL,
                tokens::principal_size,
            ),
            flows,
            saml_signers: saml::SignerCache::new(saml::SIGNER_CACHE_MAX, saml::SIGNER_CACHE_TTL),
            key_stores: certificates::KeyStoreCache::new(),
            ca,
        });
        if let Some(changes) = changes {
            tokio::spawn(follow(Arc::downgrade(&inner), changes));
        }
        Ok(Self { inner })
    }

    /// Drops what this process holds in memory of what a change (made by another process on a
    /// shared database) touched.
    async fn apply_change(&self, change: &Change) {
        let inner = &self.inner;
        match change {
            // Outbound tokens are kept per destination, as in `write` above.
            Change::Entity { name, .. } => {
                let destination =
                    change.entity_kind() == Some(signpost_model::EntityKind::Destination);
                if let Some(owner) = change.owner_ref().filter(|_| destination) {
                    let names = HashSet::from([name.clone()]);
                    inner
                        .flows
                        .forget(owner.level.as_str(), &owner.id, Some(&names))
                        .await;
                }
            }
            Change::Owner { .. } => {
                if let Some(owner) = change.owner_ref() {
                    inner
                        .flows
                        .forget(owner.level.as_str(), &owner.id, None)
                        .await;
                }
            }
            Change::Credentials => inner.principals.clear(),
            Change::SamlKeys { subaccount } => inner.saml_signers.remove(subaccount),
            Change::SigningKeys => self.reload_keys().await,
            Change::Everything => {
                inner.principals.clear();
                inner.saml_signers.clear();
                inner.flows.forget_all();
                self.reload_keys().await;
            }
        }
    }

    async fn reload_keys(&self) {
        if let Err(e) = self.reload_signing_keys().await {
            tracing::warn!(error = %e, "signing keys not reloaded");
        }
    }

    /// The built-in CA's certificate (PEM), for servers that should trust what it issues.
    pub fn ca_certificate_pem(&self) -> &str {
        self.inner.ca.certificate_pem()
    }

    /// A TLS server certificate from the built-in CA for `names` (the HTTPS listener's own,
    /// when no `--tls-cert`/`--tls-key` is given); nothing is stored.
    pub fn issue_server_certificate(
        &self,
        names: &[signpost_certs::ca::SubjectAltName],
    ) -> Result<signpost_certs::ca::ServerCertificate> {
        self.inner
            .ca
            .issue_server_certificate(names, time::OffsetDateTime::now_utc())
            .map_err(|e| Error::Internal(e.to_string()))
    }

    /// The figures of every in-process cache: the store's (entities, page anchors), verified
    /// bearer tokens, and the token cache of the outbound flows.
    pub fn cache_stats(&self) -> Vec<CacheStats> {
        let mut all = self.inner.store.cache_stats();
        all.push(self.inner.principals.stats("bearer_tokens"));
        let t = self.inner.flows.token_cache_stats();
        all.push(CacheStats {
            name: "destination_tokens",
            hits: t.hits,
            misses: t.misses,
            bytes: t.bytes,
            capacity_bytes: t.capacity_bytes,
        });
        all
    }

    /// The outbound token flows and their cache.
    pub fn flows(&self) -> &FlowRunner {
        &self.inner.flows
    }

    /// Every write of the use cases goes through here: it also drops the cached tokens of the
    /// destinations it changes.
    pub(crate) async fn write(
        &self,
        ops: Vec<WriteOp>,
    ) -> signpost_store::Result<Vec<WriteOutcome>> {
        // What each owner's written destinations are: their tokens are dropped after the write
        // (`None`: all of the owner's), one walk of the token cache per owner.
        let mut forget: BTreeMap<(&'static str, String), Option<HashSet<String>>> = BTreeMap::new();
        for op in &ops {
            match op {
                WriteOp::PutEntity {
                    owner,
                    kind: signpost_model::EntityKind::Destination,
                    name,
                    ..
                }
                | WriteOp::DeleteEntity {
                    owner,
                    kind: signpost_model::EntityKind::Destination,
                    name,
                } => {
                    if let Some(names) = forget
                        .entry((owner.level.as_str(), owner.id.clone()))
                        .or_insert_with(|| Some(HashSet::new()))
                    {
                        names.insert(name.clone());
                    }
                }
                WriteOp::DeleteInstance { id } => {
                    forget.insert(("instance", id.clone()), None);
                }
                _ => {}
            }
        }
        let result = self.inner.store.write(ops).await;
        for ((level, owner), names) in forget {
            self.inner.flows.forget(level, &owner, names.as_ref()).await;
        }
        result
    }

    /// Readiness: the database answers a read.
    pub async fn database_answers(&self) -> Result<()> {
        // Not logged as a store failure: probes ask every few seconds while it is down.
        self.inner
            .store
            .get_subaccount("")
            .await
            .map(drop)
            .map_err(|_| Error::Internal("the database does not answer".into()))
    }

    /// The database engine's name ("sqlite", "postgres").
    pub fn engine(&self) -> &'static str {
        self.inner.store.engine()
    }

    /// Takes or extends the lease `name` for `holder` (one process of many runs a job).
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        Ok(self
            .inner
            .store
            .try_lease(name, holder, now_ms, ttl_ms)
            .await?)
    }

    /// True while the database holds no service instance (the first run's test).
    pub async fn has_no_instances(&self) -> Result<bool> {
        Ok(self.inner.store.list_instances().await?.is_empty())
    }

    /// Whether the service instance `id` exists.
    pub async fn instance_exists(&self, id: &str) -> Result<bool> {
        Ok(self.inner.store.get_instance(id).await?.is_some())
    }

    /// Whether the binding `id` exists.
    pub async fn binding_exists(&self, id: &str) -> Result<bool> {
        Ok(self.inner.store.get_binding(id).await?.is_some())
    }

    /// The store, for the use cases of this crate only.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The store, for tests that set up data no use case writes (old audit events, say).
    #[doc(hidden)]
    pub fn store_for_tests(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn config(&self) -> &CoreConfig {
        &self.inner.config
    }
}

/// Follows the store's change feed until the service or the feed goes away.
async fn follow(inner: std::sync::Weak<Inner>, mut changes: signpost_store::feed::Changes) {
    while let Some(change) = changes.next().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        Signpost { inner }.apply_change(&change).await;
    }
}

/// RFC 3339 in UTC, as SAP's API writes times.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
