//! Persistence of Signpost: the [`Store`] trait, whose contract fits both SQLite and PostgreSQL,
//! and its engines on sqlx with migrations: SQLite (the embedded default) and PostgreSQL (for
//! several replicas on one database). Secret material (entity bodies, binding secrets, signing
//! keys) is encrypted at rest with AES-256-GCM under a data key that is itself wrapped by the
//! operator's master key ([`crypto`]).
//!
//! Must not depend on the API or OAuth crates.

pub mod backup;
mod batch;
mod cache;
pub mod copy;
pub mod crypto;
mod direct;
pub mod feed;
mod ops;
mod postgres;
mod records;
mod shared;
mod sqlite;

pub use cache::{CacheStats, CachedStore, HitCounter};
pub use crypto::{Cipher, MasterKey};
pub use feed::Change;
pub use postgres::PgStore;
pub use records::*;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use secrecy::SecretString;
use signpost_model::{EntityKind, OwnerRef};

/// Errors of the store. `index` points into the batch given to [`Store::write`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} '{name}' already exists")]
    Conflict {
        index: usize,
        kind: &'static str,
        name: String,
    },
    #[error("{kind} '{name}' does not exist")]
    NotFound {
        index: usize,
        kind: &'static str,
        name: String,
    },
    /// An [`WriteOp::ExpectEntity`] failed: the entity changed (its ETag is `current`) or is
    /// gone (`None`).
    #[error("{kind} '{name}' has changed")]
    Precondition {
        index: usize,
        kind: &'static str,
        name: String,
        current: Option<String>,
    },
    #[error("the limit of {limit} {kind}s on {level} level is reached")]
    LimitExceeded {
        kind: &'static str,
        level: &'static str,
        limit: u32,
    },
    #[error("the master key does not open this database's data key")]
    WrongMasterKey,
    #[error("stored data could not be decrypted")]
    Decrypt,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A read on the caller's thread ([`direct`](crate::direct)) failed; `outage` when SQLite was busy, locked
    /// or could not read the file.
    #[error("database error: {message}")]
    Direct { message: String, outage: bool },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure that is the database's state, not the request's: worth a 503 or 507 and a retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The database cannot be reached or is not accepting work now (down, restarting,
    /// connections exhausted, locked past the busy timeout).
    Unavailable,
    /// The database has no room for the write (a full disk).
    Full,
}

impl Error {
    /// The outage behind this error, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        if let Error::Direct { outage: true, .. } = self {
            return Some(Outage::Unavailable);
        }
        let Error::Database(e) = self else {
            return None;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Some(Outage::Unavailable),
            sqlx::Error::Database(db) => {
                let code = db.code()?;
                match code.as_ref() {
                    // PostgreSQL: connection exceptions, shutdown and start-up, too many
                    // connections; disk full.
                    c if c.starts_with("08") => Some(Outage::Unavailable),
                    "57P01" | "57P02" | "57P03" | "53300" => Some(Outage::Unavailable),
                    "53100" => Some(Outage::Full),
                    // SQLite's (extended) result codes: SQLITE_FULL, SQLITE_BUSY, SQLITE_LOCKED.
                    c => match c.parse::<i32>().map(|n| n & 0xff) {
                        Ok(13) => Some(Outage::Full),
                        Ok(5 | 6) => Some(Outage::Unavailable),
                        _ => None,
                    },
                }
            }
            _ => None,
        }
    }
}

/// The storage contract. Engines must make [`Store::write`] atomic: every operation of the batch
/// takes effect, or none does.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// The engine's name, for logs ("sqlite", "postgres").
    fn engine(&self) -> &'static str;

    /// The changes written through any process on this database, for in-process caches; `None`
    /// for an engine that one process owns (SQLite), whose caches see every write themselves.
    fn changes(&self) -> Option<feed::Changes> {
        None
    }

    /// True while in-process caches of stored facts can be trusted: always for an engine one
    /// process owns; on a shared database only while the change feed is live ([`feed`]).
    fn coherent(&self) -> bool {
        true
    }

    /// Changes whenever the change feed comes back up after it was down: an in-process cache
    /// that filled under another epoch must drop everything before it is trusted again.
    fn epoch(&self) -> u64 {
        0
    }

    /// The figures of the in-process caches in front of the engine (none for a bare engine).
    fn cache_stats(&self) -> Vec<CacheStats> {
        Vec::new()
    }

    async fn get_subaccount(&self, id: &str) -> Result<Option<SubaccountRecord>>;
    async fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>>;
    async fn get_binding(&self, id: &str) -> Result<Option<BindingRecord>>;
    async fn get_binding_by_client(&self, client_id: &str) -> Result<Option<BindingRecord>>;
    /// The X.509 binding whose leaf certificate has this SHA-256 fingerprint (hex).
    async fn get_binding_by_certificate(&self, sha256: &str) -> Result<Option<BindingRecord>>;
    async fn list_instances(&self) -> Result<Vec<InstanceRecord>>;
    async fn list_subaccounts(&self) -> Result<Vec<SubaccountRecord>>;
    async fn list_bindings(&self, instance_id: &str) -> Result<Vec<BindingRecord>>;
    /// The subscriptions to an instance, by subaccount id.
    async fn list_subscriptions(&self, instance_id: &str) -> Result<Vec<SubscriptionRecord>>;
    async fn get_subscription(
        &self,
        instance_id: &str,
        subaccount_id: &str,
    ) -> Result<Option<SubscriptionRecord>>;
    /// The subaccounts with this subdomain (one, unless two were given the same).
    async fn subaccounts_by_subdomain(&self, subdomain: &str) -> Result<Vec<SubaccountRecord>>;

    async fn get_entity(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>>;
    /// The entity `name` of the first of `owners` that has one (find destination: instance,
    /// then subaccount level). Engines answer it with one read, so that a name missing on the
    /// first level costs no second round trip.
    async fn find_entity(
        &self,
        owners: &[OwnerRef],
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        for owner in owners {
            if let Some(found) = self.get_entity(owner, kind, name).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
    async fn list_entities(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<ListPage>;

    /// Whether `owner` has any entity of `kind` (one probe of the primary key's prefix).
    async fn has_entities(&self, owner: &OwnerRef, kind: EntityKind) -> Result<bool> {
        let first = ListQuery {
            limit: Some(1),
            ..ListQuery::default()
        };
        Ok(!self
            .list_entities(owner, kind, &first)
            .await?
            .items
            .is_empty())
    }

    /// The names at positions 0, `every`, 2·`every`, … of an owner's entities of a kind in name
    /// order: anchors from which a page deep in the collection is read with a small offset.
    async fn page_anchors(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        every: u64,
    ) -> Result<Vec<String>>;

    /// Applies every operation in one transaction; the first failing one aborts the whole batch.
    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>>;

    /// The subaccount's SAML trust key pairs (none, active, or active and passive).
    async fn saml_keys(&self, subaccount_id: &str) -> Result<Vec<SamlKeyRecord>>;

    /// A named server secret (e.g. the built-in CA).
    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>>;

    /// Every entity of a kind across all owners (for background jobs such as renewal).
    async fn all_entities(&self, kind: EntityKind) -> Result<Vec<StoredEntity>>;

    /// Takes or extends the lease `name` for `holder` until `now_ms + ttl_ms`; false when another
    /// holder has it and it has not expired. Lets one process of many run a background job.
    async fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()>;
    /// Deletes the signing key `kid`; false when there was none.
    async fn delete_signing_key(&self, kid: &str) -> Result<bool>;

    /// Appends events to the audit log, in one transaction; their `id` is given by the store.
    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()>;
    /// Audit events newest first (by time, then id): at most `limit`, none older than
    /// `since_ms`, only those after the `before` position.
    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>>;
    /// Deletes the audit events older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64>;

    /// The keyed digest used for ETags and request digests (never a plain hash of secrets).
    fn digest(&self, parts: &[&[u8]]) -> String;
}
