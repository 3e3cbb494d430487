//! The SQLite engine: one file, WAL, a pool of readers and one writer at a time.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use signpost_model::{EntityKind, OwnerRef};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use crate::batch::{Batcher, Lookup};
use crate::crypto::{Cipher, MasterKey};
use crate::direct::DirectReader;
use crate::ops::{Dialect, Writer};
use crate::records::*;
use crate::shared::*;
use crate::{Error, Result, Store};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The embedded engine. Open it with [`SqliteStore::open`].
pub struct SqliteStore {
    pool: SqlitePool,
    cipher: Cipher,
    max_entities: u32,
    /// Single-entity reads on the caller's thread ([`crate::direct`]), for a database file.
    direct: Option<DirectReader>,
    /// Single-entity reads, batched ([`crate::batch`]): an in-memory database's, and any while
    /// every direct connection is taken.
    reads: Batcher<SqliteReader>,
    /// SQLite has one writer; taking this lock first keeps writers from failing with SQLITE_BUSY
    /// when a read transaction would have to be upgraded.
    write_lock: Mutex<()>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("max_entities", &self.max_entities)
            .finish_non_exhaustive()
    }
}

/// A pooled connection in a transaction of [`SqliteStore::transaction`], and whether the
/// transaction ended (committed or rolled back). Dropped before it ended (the write's request was
/// cancelled mid-way: its client went away or it timed out), the connection is closed, which
/// rolls the transaction back, instead of going back to the pool inside it: there it would hold
/// the write lock, every other write would wait for it and fail ("database is locked"), and the
/// next write drawing it would fail to begin.
struct InTransaction {
    conn: sqlx::pool::PoolConnection<sqlx::Sqlite>,
    ended: bool,
}

impl Drop for InTransaction {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.close_on_drop();
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or a plain path), runs
    /// the migrations and unwraps (or creates) the data key with `master`.
    pub async fn open(url: &str, master: &MasterKey, max_entities: u32) -> Result<Self> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{path}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1);
        if Self::file_path(url).is_none() {
            // An in-memory database (sqlx shares it between the pool's connections) lives only
            // while one of them is open: when the pool retired its one connection (idle, or 30
            // minutes old), the next was a new, empty database. Found by the fuzzer: its
            // in-memory store lost its tables after half an hour ("no such table", a 500).
            pool = pool
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(opts).await?;
        MIGRATOR.run(&pool).await?;
        let cipher = Self::data_key(&pool, master).await?;
        let reads = Batcher::new(SqliteReader {
            pool: pool.clone(),
            cipher: cipher.clone(),
        });
        // A URL with options (`?mode=...`) is sqlx's to read: its reads stay with sqlx.
        let direct = Self::file_path(url)
            .filter(|_| !url.contains('?'))
            .and_then(|file| match DirectReader::open(file, cipher.clone()) {
                Ok(direct) => Some(direct),
                Err(e) => {
                    tracing::warn!(error = %e, "finds read SQLite through sqlx's pool: the connections of their own did not open");
                    None
                }
            });
        Ok(Self {
            pool,
            direct,
            cipher,
            max_entities,
            reads,
            write_lock: Mutex::new(()),
        })
    }

    /// Held by every write from its start to its end, for the direct readers' snapshots
    /// ([`DirectReader::writing`]).
    fn writing(&self) -> Option<crate::direct::Writing<'_>> {
        self.direct.as_ref().map(DirectReader::writing)
    }

    /// Closes the pool (its last connection checkpoints the WAL into the main file).
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }

    /// Runs `body` in one write transaction (`BEGIN IMMEDIATE`) on one connection, committed when
    /// it succeeds. When a statement or the `COMMIT` fails (a full disk fails a `COMMIT` and
    /// leaves the transaction open), the transaction is rolled back before the connection goes
    /// back to the pool, and a connection that cannot roll back, or whose write was cancelled
    /// mid-way ([`InTransaction`]), is closed: one left in an open
    /// transaction would keep the write lock from the others and take the next writes on it
    /// into a transaction that is never committed (acknowledged, then lost).
    async fn transaction<T>(
        &self,
        body: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        // Until the transaction is over, however it ends: `DirectReader::writing`.
        let _writing = self.writing();
        let mut tx = InTransaction {
            conn: self.pool.acquire().await?,
            ended: false,
        };
        if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *tx.conn).await {
            // No transaction began: the connection may go back as it is.
            tx.ended = true;
            return Err(e.into());
        }
        let result = match body(&mut tx.conn).await {
            Ok(value) => sqlx::query("COMMIT")
                .execute(&mut *tx.conn)
                .await
                .map(|_| value)
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        if result.is_err() {
            match sqlx::query("ROLLBACK").execute(&mut *tx.conn).await {
                Ok(_) => {}
                // SQLite rolled it back itself (as it does after some errors).
                Err(e) if e.to_string().contains("no transaction is active") => {}
                Err(e) => {
                    tracing::error!(error = %e, "rollback failed; closing the connection");
                    return result;
                }
            }
        }
        tx.ended = true;
        result
    }

    /// Where a plain path URL points, for callers that want to create its directory.
    pub fn file_path(url: &str) -> Option<&Path> {
        let p = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        (!p.is_empty() && !p.starts_with(":memory:")).then(|| Path::new(p))
    }

    async fn data_key(pool: &SqlitePool, master: &MasterKey) -> Result<Cipher> {
        // Insert-if-absent, then read back: whoever wins the race defines the key.
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(DATA_KEY)
            .bind(new_wrapped_data_key(master))
            .execute(pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(DATA_KEY)
            .fetch_one(pool)
            .await?;
        open_data_key(master, &stored)
    }

    fn row_to_entity(
        &self,
        row: &sqlx::sqlite::SqliteRow,
        owner: &OwnerRef,
        kind: EntityKind,
    ) -> Result<StoredEntity> {
        entity_from_row(&self.cipher, row, owner, kind)
    }

    /// The one binding a single-parameter query finds.
    async fn binding_where(&self, sql: &'static str, value: &str) -> Result<Option<BindingRecord>> {
        let row = sqlx::query(sql)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(|r| self.row_to_binding(r)).transpose()
    }

    fn row_to_binding(&self, row: &sqlx::sqlite::SqliteRow) -> Result<BindingRecord> {
        let id: String = row.try_get("id")?;
        let secret: Option<Vec<u8>> = row.try_get("secret")?;
        let client_secret = match secret {
            None => None,
            Some(blob) => {
                let plain = self
                    .cipher
                    .decrypt(&blob, &binding_aad(&id))
                    .ok_or(Error::Decrypt)?;
                Some(SecretString::from(
                    String::from_utf8(plain).map_err(|_| Error::Decrypt)?,
                ))
            }
        };
        Ok(BindingRecord {
            instance_id: row.try_get("instance_id")?,
            client_id: row.try_get("client_id")?,
            client_secret,
            credential_type: row.try_get("credential_type")?,
            request_digest: row.try_get("request_digest")?,
            created_at: row.try_get("created_at")?,
            certificate: row.try_get("certificate")?,
            certificate_sha256: row.try_get("certificate_sha256")?,
            scopes: scopes_from_column(row.try_get("scopes")?),
            id,
        })
    }

    /// The writer of batches, with this database's data key. SQLite's single writer (the write
    /// lock) keeps a checked row as it was, so no row lock is needed.
    fn writer(&self) -> Writer<'_> {
        Writer {
            cipher: &self.cipher,
            max_entities: self.max_entities,
            dialect: Dialect { lock_row: "" },
        }
    }
}

/// SQLite's reader of batches: a `UNION ALL` of one primary-key probe per lookup and owner
/// ([`crate::batch::lookup_sql`]).
pub(crate) struct SqliteReader {
    pool: SqlitePool,
    cipher: Cipher,
}

#[async_trait]
impl crate::batch::Reader for SqliteReader {
    async fn read(&self, lookups: &[Lookup]) -> Result<Vec<Option<StoredEntity>>> {
        let sql = crate::batch::lookup_sql(lookups);
        let mut q = sqlx::query(&sql);
        for [level, owner, kind, name] in crate::batch::lookup_args(lookups) {
            q = q.bind(level).bind(owner).bind(kind).bind(name);
        }
        let rows = q.fetch_all(&self.pool).await?;
        crate::batch::answers(&self.cipher, lookups, rows)
    }
}
crate::ops::impl_statements!(SqliteConnection, sqlx::Sqlite);

/// Appends the WHERE clause of a name filter, with its bind values.
fn filter_sql(filter: &NameFilter, sql: &mut String, binds: &mut Vec<FilterBind>) {
    match filter {
        NameFilter::All => {}
        NameFilter::In(names) => {
            if names.is_empty() {
                sql.push_str(" AND 0");
                return;
            }
            sql.push_str(" AND name IN (");
            for (i, n) in names.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                binds.push(FilterBind::Text(n.clone()));
            }
            sql.push(')');
        }
        NameFilter::StartsWith(p) => {
            sql.push_str(" AND substr(name, 1, length(?)) = ?");
            binds.push(FilterBind::Text(p.clone()));
            binds.push(FilterBind::Text(p.clone()));
        }
        NameFilter::EndsWith(s) => {
            sql.push_str(
                " AND length(name) >= length(?) AND substr(name, length(name) - length(?) + 1) = ?",
            );
            for _ in 0..3 {
                binds.push(FilterBind::Text(s.clone()));
            }
        }
        NameFilter::ModifiedWithin { minutes, now_ms } => {
            sql.push_str(" AND modified_at >= ?");
            binds.push(FilterBind::Int(now_ms - i64::from(*minutes) * 60_000));
        }
    }
}

fn bind_filters<'q>(
    sql: &'q str,
    owner: &'q OwnerRef,
    kind: EntityKind,
    binds: &'q [FilterBind],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    let mut q = sqlx::query(sql)
        .bind(owner.level.as_str())
        .bind(owner.id.as_str())
        .bind(kind.as_str());
    for b in binds {
        q = match b {
            FilterBind::Text(t) => q.bind(t.as_str()),
            FilterBind::Int(i) => q.bind(*i),
        };
    }
    q
}

enum FilterBind {
    Text(String),
    Int(i64),
}

#[async_trait]
impl Store for SqliteStore {
    fn engine(&self) -> &'static str {
        "sqlite"
    }

    async fn get_subaccount(&self, id: &str) -> Result<Option<SubaccountRecord>> {
        let row = sqlx::query("SELECT id, subdomain FROM subaccounts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subaccount_from_row).transpose()
    }

    async fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>> {
        let row = sqlx::query("SELECT * FROM instances WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(instance_from_row).transpose()
    }

    async fn list_subaccounts(&self) -> Result<Vec<SubaccountRecord>> {
        let rows = sqlx::query("SELECT id, subdomain FROM subaccounts ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(subaccount_from_row).collect()
    }

    async fn list_subscriptions(&self, instance_id: &str) -> Result<Vec<SubscriptionRecord>> {
        let rows = sqlx::query(
            "SELECT instance_id, subaccount_id, created_at FROM subscriptions WHERE instance_id = ? ORDER BY subaccount_id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(subscription_from_row).collect()
    }

    async fn get_subscription(
        &self,
        instance_id: &str,
        subaccount_id: &str,
    ) -> Result<Option<SubscriptionRecord>> {
        let row = sqlx::query(
            "SELECT instance_id, subaccount_id, created_at FROM subscriptions WHERE instance_id = ? AND subaccount_id = ?",
        )
        .bind(instance_id)
        .bind(subaccount_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    async fn subaccounts_by_subdomain(&self, subdomain: &str) -> Result<Vec<SubaccountRecord>> {
        let rows =
            sqlx::query("SELECT id, subdomain FROM subaccounts WHERE subdomain = ? ORDER BY id")
                .bind(subdomain)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(subaccount_from_row).collect()
    }

    async fn list_instances(&self) -> Result<Vec<InstanceRecord>> {
        let rows = sqlx::query("SELECT * FROM instances ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(instance_from_row).collect()
    }

    async fn get_binding(&self, id: &str) -> Result<Option<BindingRecord>> {
        self.binding_where("SELECT * FROM bindings WHERE id = ?", id)
            .await
    }

    async fn get_binding_by_client(&self, client_id: &str) -> Result<Option<BindingRecord>> {
        self.binding_where("SELECT * FROM bindings WHERE client_id = ?", client_id)
            .await
    }

    async fn get_binding_by_certificate(&self, sha256: &str) -> Result<Option<BindingRecord>> {
        self.binding_where(
            "SELECT * FROM bindings WHERE certificate_sha256 = ?",
            sha256,
        )
        .await
    }

    async fn list_bindings(&self, instance_id: &str) -> Result<Vec<BindingRecord>> {
        let rows =
            sqlx::query("SELECT * FROM bindings WHERE instance_id = ? ORDER BY created_at, id")
                .bind(instance_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| self.row_to_binding(r)).collect()
    }

    async fn get_entity(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        self.find_entity(std::slice::from_ref(owner), kind, name)
            .await
    }

    async fn find_entity(
        &self,
        owners: &[OwnerRef],
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        let lookup = Lookup {
            owners: owners.to_vec(),
            kind,
            name: name.to_owned(),
        };
        if let Some(found) = self.direct.as_ref().and_then(|d| d.find(&lookup)) {
            return found;
        }
        self.reads.find(lookup).await
    }

    async fn list_entities(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<ListPage> {
        if !query.labels.is_empty() {
            let all = self.list_entities(owner, kind, &unlabelled(query)).await?;
            return Ok(select_labelled(all.items, query));
        }
        let mut where_sql = String::from(" WHERE level = ? AND owner_id = ? AND kind = ?");
        let mut binds = Vec::new();
        filter_sql(&query.filter, &mut where_sql, &mut binds);
        let total = if query.count_total && query.filter == NameFilter::All {
            let n: Option<i64> = sqlx::query_scalar(
                "SELECT entity_count FROM entity_owners WHERE level = ? AND owner_id = ? AND kind = ?",
            )
            .bind(owner.level.as_str())
            .bind(&owner.id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
            Some(n.unwrap_or(0).max(0) as u64)
        } else if query.count_total {
            let sql = format!("SELECT COUNT(*) AS n FROM entities{where_sql}");
            let row = bind_filters(&sql, owner, kind, &binds)
                .fetch_one(&self.pool)
                .await?;
            let n: i64 = row.try_get("n")?;
            Some(n as u64)
        } else {
            None
        };
        if let Some(from) = &query.from {
            where_sql.push_str(" AND name >= ?");
            binds.push(FilterBind::Text(from.clone()));
        }
        let limit = query.limit.map(|l| l as i64).unwrap_or(-1);
        let sql = format!(
            "SELECT name, body, etag, modified_at, labels FROM entities{where_sql} ORDER BY name LIMIT {limit} OFFSET {}",
            query.offset
        );
        let rows = bind_filters(&sql, owner, kind, &binds)
            .fetch_all(&self.pool)
            .await?;
        let items = rows
            .iter()
            .map(|r| self.row_to_entity(r, owner, kind))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage { items, total })
    }

    async fn page_anchors(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        every: u64,
    ) -> Result<Vec<String>> {
        let every = i64::try_from(every.max(1)).unwrap_or(i64::MAX);
        Ok(sqlx::query_scalar(
            "SELECT name FROM (SELECT name, ROW_NUMBER() OVER (ORDER BY name) AS rn FROM entities
             WHERE level = ? AND owner_id = ? AND kind = ?)
             WHERE (rn - 1) % ? = 0 ORDER BY name",
        )
        .bind(owner.level.as_str())
        .bind(&owner.id)
        .bind(kind.as_str())
        .bind(every)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let _guard = self.write_lock.lock().await;
        let now = now_ms();
        let writer = self.writer();
        self.transaction(async |conn| writer.apply_all(conn, &ops, now).await)
            .await
    }

    async fn saml_keys(&self, subaccount_id: &str) -> Result<Vec<SamlKeyRecord>> {
        let rows = sqlx::query("SELECT slot, private_key, certificate, created_at FROM saml_keys WHERE subaccount_id = ? ORDER BY slot")
            .bind(subaccount_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let slot = match r.try_get::<String, _>("slot")?.as_str() {
                    "active" => SamlSlot::Active,
                    _ => SamlSlot::Passive,
                };
                let blob: Vec<u8> = r.try_get("private_key")?;
                let pem = self
                    .cipher
                    .decrypt(&blob, &saml_aad(subaccount_id, slot))
                    .ok_or(Error::Decrypt)?;
                Ok(SamlKeyRecord {
                    subaccount_id: subaccount_id.to_owned(),
                    slot,
                    private_key_pem: SecretString::from(
                        String::from_utf8(pem).map_err(|_| Error::Decrypt)?,
                    ),
                    certificate_pem: r.try_get("certificate")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>> {
        let blob: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        blob.map(|b| {
            let plain = self
                .cipher
                .decrypt(&b, &secret_aad(name))
                .ok_or(Error::Decrypt)?;
            Ok(SecretString::from(
                String::from_utf8(plain).map_err(|_| Error::Decrypt)?,
            ))
        })
        .transpose()
    }

    async fn all_entities(&self, kind: EntityKind) -> Result<Vec<StoredEntity>> {
        let rows = sqlx::query(
            "SELECT level, owner_id, name, body, etag, modified_at, labels FROM entities WHERE kind = ? ORDER BY level, owner_id, name",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let level: String = r.try_get("level")?;
                let level = signpost_model::Level::parse(&level)
                    .ok_or_else(|| Error::Invalid(format!("unknown level {level}")))?;
                let owner = OwnerRef {
                    level,
                    id: r.try_get("owner_id")?,
                };
                self.row_to_entity(r, &owner, kind)
            })
            .collect()
    }

    async fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        let _writing = self.writing();
        let _guard = self.write_lock.lock().await;
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
        )
        .bind(name)
        .bind(holder)
        .bind(now_ms + ttl_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows = sqlx::query("SELECT kid, private_key, public_jwk, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let kid: String = r.try_get("kid")?;
                let blob: Vec<u8> = r.try_get("private_key")?;
                let pem = self
                    .cipher
                    .decrypt(&blob, &key_aad(&kid))
                    .ok_or(Error::Decrypt)?;
                Ok(SigningKeyRecord {
                    private_key_pem: SecretString::from(
                        String::from_utf8(pem).map_err(|_| Error::Decrypt)?,
                    ),
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    kid,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()> {
        let _writing = self.writing();
        let blob = self.cipher.encrypt(
            key.private_key_pem.expose_secret().as_bytes(),
            &key_aad(&key.kid),
        );
        sqlx::query("INSERT INTO signing_keys (kid, private_key, public_jwk, created_at) VALUES (?, ?, ?, ?)")
            .bind(&key.kid)
            .bind(blob)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool> {
        let _writing = self.writing();
        let _guard = self.write_lock.lock().await;
        let r = sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        self.transaction(async |conn| crate::ops::insert_audit(conn, events).await)
            .await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let (before_at, before_id) = query.before.unwrap_or((i64::MAX, i64::MAX));
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events
             WHERE at_ms >= ? AND (at_ms < ? OR (at_ms = ? AND id < ?))
             ORDER BY at_ms DESC, id DESC LIMIT ?"
        ))
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(before_at)
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let _writing = self.writing();
        let _guard = self.write_lock.lock().await;
        let r = sqlx::query("DELETE FROM audit_events WHERE at_ms < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    fn digest(&self, parts: &[&[u8]]) -> String {
        self.cipher.digest(parts)
    }
}
