//! The PostgreSQL engine: a connection pool, no process-wide writer lock, so that several
//! server processes can share one database. Every batch runs in one transaction (READ COMMITTED);
//! names are unique by the primary key, creates use `INSERT ... ON CONFLICT DO NOTHING` and
//! read the affected row count, so two writers racing for one name cannot both win. A batch that
//! the database aborts for a serialization failure or a deadlock is retried whole.
//!
//! The SQL stays within what PostgreSQL-compatible distributed engines (CockroachDB, YugabyteDB)
//! accept: no advisory locks outside the migrator, no system columns, row locks only.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use signpost_model::{EntityKind, OwnerRef};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder, Row};

use crate::batch::{Batcher, Lookup};
use crate::crypto::{Cipher, MasterKey};
use crate::feed::postgres::{heartbeat, listen, notify, publish};
use crate::feed::{self, Change, Feed};
use crate::ops::{Dialect, Writer};
use crate::records::*;
use crate::shared::*;
use crate::{Error, Result, Store};

/// Takes a session advisory lock (`pg_advisory_lock`, keyed by the database name) for the whole
/// run, so replicas starting at once apply the migrations one after the other; each migration
/// runs in its own transaction.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How often a batch is retried after the database aborted it (SQLSTATE 40001 or 40P01).
const MAX_RETRIES: u32 = 5;

/// The PostgreSQL engine. Open it with [`PgStore::open`].
pub struct PgStore {
    pool: PgPool,
    cipher: Cipher,
    max_entities: u32,
    /// Single-entity reads, batched ([`crate::batch`]): the reads that arrive while others are
    /// in the database share the next statement, one `unnest` of arrays whatever their number
    /// (a read alone: one probe), both through the hash index `entities_find`.
    reads: Batcher<PgReader>,
    /// The reader's own connections ([`ReadConnections`]), closed with the store's.
    read_conns: Arc<ReadConnections>,
    /// Refreshes the planner's statistics of `entities` after large writes ([`Statistics`]).
    statistics: Arc<Statistics>,
    feed: Arc<Feed>,
    /// The feed's listener and heartbeat tasks, stopped when the store goes.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("max_entities", &self.max_entities)
            .finish_non_exhaustive()
    }
}

/// True for errors after which the database has rolled the transaction back and a retry of the
/// whole batch can succeed: serialization failure and deadlock.
fn is_retryable(e: &Error) -> bool {
    match e {
        Error::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database?...`), runs the migrations
    /// (under the migrator's advisory lock) and unwraps (or creates) the data key with `master`.
    pub async fn open(url: &str, master: &MasterKey, max_entities: u32) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)?.application_name("signpost");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            // While the database is down a request waits this long for a connection, then is
            // answered 503 (an outage, `Error::outage`) rather than hanging.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(opts.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let cipher = Self::data_key(&pool, master).await?;
        let read_conns = Arc::new(ReadConnections::new(&opts));
        let feed = Feed::new();
        let beat = format!("ping:{:016x}", rand::random::<u64>());
        let tasks = vec![
            tokio::spawn(listen(pool.clone(), feed.clone(), beat.clone())).abort_handle(),
            tokio::spawn(heartbeat(opts, feed.clone(), beat)).abort_handle(),
        ];
        let reads = Batcher::new(PgReader {
            conns: read_conns.clone(),
            cipher: cipher.clone(),
        });
        Ok(Self {
            pool,
            cipher,
            max_entities,
            reads,
            read_conns,
            statistics: Arc::default(),
            feed,
            tasks,
        })
    }

    /// Closes the pool's connections (tests drop their database afterwards).
    pub async fn close(&self) {
        for t in &self.tasks {
            t.abort();
        }
        self.pool.close().await;
        self.read_conns.close().await;
    }

    async fn data_key(pool: &PgPool, master: &MasterKey) -> Result<Cipher> {
        // Insert-if-absent, then read back: whoever wins the race defines the key.
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(DATA_KEY)
            .bind(new_wrapped_data_key(master))
            .execute(pool)
            .await?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(DATA_KEY)
            .fetch_one(pool)
            .await?;
        open_data_key(master, &stored)
    }

    fn row_to_entity(
        &self,
        row: &PgRow,
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

    fn row_to_binding(&self, row: &PgRow) -> Result<BindingRecord> {
        let id: String = row.try_get("id")?;
        let secret: Option<Vec<u8>> = row.try_get("secret")?;
        let client_secret = secret
            .map(|blob| decrypt_text(&self.cipher, &blob, &binding_aad(&id)))
            .transpose()?;
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

    /// The writer of batches, with this database's data key. A checked row stays locked until
    /// the batch commits.
    fn writer(&self) -> Writer<'_> {
        Writer {
            cipher: &self.cipher,
            max_entities: self.max_entities,
            dialect: Dialect {
                lock_row: " FOR UPDATE",
            },
        }
    }

    /// Runs the batch in one transaction that also publishes its changes to the other processes
    /// (`pg_notify` delivers them only if, and once, the transaction commits).
    async fn write_once(&self, ops: &[WriteOp], notes: &[String]) -> Result<Vec<WriteOutcome>> {
        let now = now_ms();
        let writer = self.writer();
        let mut tx = self.pool.begin().await?;
        let outcomes = match writer.apply_all(&mut *tx, ops, now).await {
            Ok(outcomes) => outcomes,
            Err(e) => {
                if let Err(rollback) = tx.rollback().await {
                    tracing::error!(error = %rollback, "rollback failed");
                }
                return Err(e);
            }
        };
        for note in notes {
            notify(&mut tx, note).await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

/// Entity rows written since the planner's statistics of `entities` were last refreshed.
const ANALYZE_AFTER_ROWS: u64 = 1000;
/// The shortest time between two refreshes.
const ANALYZE_EVERY_MS: i64 = 10_000;

/// Keeps the planner's statistics of `entities` fresh after large writes. A table that grew by
/// a bulk import has none until autovacuum analyzes it, up to a minute later, and until then the
/// planner may read a name through `entities_modified`, filtering the whole collection (measured:
/// 40 ms instead of 0.05 ms a find at 100,000 destinations, bench/README.md). So once
/// [`ANALYZE_AFTER_ROWS`] entity rows were written, `ANALYZE entities` runs in the background, at
/// most once every [`ANALYZE_EVERY_MS`] and never twice at once.
#[derive(Debug, Default)]
struct Statistics {
    pending: AtomicU64,
    last_ms: AtomicI64,
    running: AtomicBool,
}

impl Statistics {
    fn written(self: &Arc<Self>, pool: &PgPool, ops: &[WriteOp]) {
        let rows = ops
            .iter()
            .filter(|op| matches!(op, WriteOp::PutEntity { .. }))
            .count() as u64;
        if rows == 0 {
            return;
        }
        let pending = self.pending.fetch_add(rows, Ordering::Relaxed) + rows;
        let now = now_ms();
        if pending < ANALYZE_AFTER_ROWS
            || now - self.last_ms.load(Ordering::Relaxed) < ANALYZE_EVERY_MS
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.pending.store(0, Ordering::Relaxed);
        self.last_ms.store(now, Ordering::Relaxed);
        let (me, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::query("ANALYZE entities").execute(&pool).await {
                tracing::warn!(error = %e, "could not refresh the statistics of entities");
            }
            me.running.store(false, Ordering::Release);
        });
    }
}

/// PostgreSQL's reader: every lookup and owner of a batch as rows of arrays, joined to the hash
/// index over the key (`entities_find`). One statement text for any number of lookups (prepared
/// once per connection), each pair an index probe.
pub(crate) struct PgReader {
    conns: Arc<ReadConnections>,
    cipher: Cipher,
}

/// How long opening a reader's connection may take before the read is an outage (503), as a
/// pool's acquire timeout.
const READ_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The batched reads' own connections, one per batch in flight, opened when first needed.
///
/// - Not sqlx's pool: it tests a connection with a round trip to the server (`ping`) when it
///   hands it out and again when it gets it back, so each batch cost three round trips where one
///   carries the answer. Here a connection is dropped after any error and reopened by the next
///   read, and one whose read was abandoned half-way (its answer may still be on the wire) is
///   dropped too.
/// - Their prepared statements keep one generic plan (`plan_cache_mode`). With the arrays as
///   parameters the planner cannot know a batch's size, estimates ten rows, and finds a plan
///   made for each execution's real size cheaper than that generic one, so by default it plans
///   the statement again at every execution. Planning cost more than the index probes
///   themselves: in `pgbench` on a million destinations, batches of eight ran 6,300 statements a
///   second planned each time and 9,500 to 10,600 with the generic plan, which is the same nested
///   loop of index probes.
/// - Named `signpost-reads` in `pg_stat_activity`.
pub(crate) struct ReadConnections {
    opts: PgConnectOptions,
    slots: Vec<tokio::sync::Mutex<ReadSlot>>,
    closed: AtomicBool,
}

#[derive(Default)]
struct ReadSlot {
    conn: Option<PgConnection>,
    /// Set while a statement runs; still set when the slot is next taken, the read was abandoned.
    busy: bool,
}

impl ReadConnections {
    fn new(opts: &PgConnectOptions) -> Self {
        Self {
            opts: opts
                .clone()
                .application_name("signpost-reads")
                .options([("plan_cache_mode", "force_generic_plan")]),
            slots: (0..crate::batch::LEADERS)
                .map(|_| tokio::sync::Mutex::default())
                .collect(),
            closed: AtomicBool::new(false),
        }
    }

    /// A free slot with a connection ready for a statement.
    async fn take(&self) -> Result<tokio::sync::MutexGuard<'_, ReadSlot>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(sqlx::Error::PoolClosed.into());
        }
        let mut slot = match self.slots.iter().find_map(|s| s.try_lock().ok()) {
            Some(slot) => slot,
            None => self.slots[0].lock().await,
        };
        if std::mem::take(&mut slot.busy) {
            slot.conn = None;
        }
        if slot.conn.is_none() {
            let connect = <PgConnection as sqlx::Connection>::connect_with(&self.opts);
            let conn = tokio::time::timeout(READ_CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            slot.conn = Some(conn);
        }
        Ok(slot)
    }

    /// Closes the connections; later reads fail as on a closed pool.
    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &self.slots {
            if let Some(conn) = slot.lock().await.conn.take() {
                let _ = sqlx::Connection::close(conn).await;
            }
        }
    }
}

#[async_trait]
impl crate::batch::Reader for PgReader {
    async fn read(&self, lookups: &[Lookup]) -> Result<Vec<Option<StoredEntity>>> {
        let pairs: usize = lookups.iter().map(|l| l.owners.len()).sum();
        let (mut levels, mut owners, mut kinds, mut names) = (
            Vec::with_capacity(pairs),
            Vec::with_capacity(pairs),
            Vec::with_capacity(pairs),
            Vec::with_capacity(pairs),
        );
        let (mut indexes, mut ranks) = (Vec::with_capacity(pairs), Vec::with_capacity(pairs));
        for (i, l) in lookups.iter().enumerate() {
            for (r, o) in l.owners.iter().enumerate() {
                levels.push(o.level.as_str());
                owners.push(o.id.as_str());
                kinds.push(l.kind.as_str());
                names.push(l.name.as_str());
                indexes.push(i64::try_from(i).unwrap_or(i64::MAX));
                ranks.push(i64::try_from(r).unwrap_or(i64::MAX));
            }
        }
        let mut slot = self.conns.take().await?;
        let ReadSlot { conn: held, busy } = &mut *slot;
        let Some(conn) = held.as_mut() else {
            return Err(sqlx::Error::PoolClosed.into());
        };
        *busy = true;
        let rows = if pairs == 1 {
            // One owner's row, what every read is while reads do not overlap: a plain probe
            // costs PostgreSQL less than the unnest of one-element arrays.
            sqlx::query(PROBE_ONE)
                .bind(levels[0])
                .bind(owners[0])
                .bind(kinds[0])
                .bind(names[0])
                .bind(indexes[0])
                .bind(ranks[0])
                .fetch_all(&mut *conn)
                .await
        } else {
            sqlx::query(PROBE_MANY)
                .bind(&levels)
                .bind(&owners)
                .bind(&kinds)
                .bind(&names)
                .bind(&indexes)
                .bind(&ranks)
                .fetch_all(&mut *conn)
                .await
        };
        *busy = false;
        // A connection that failed once is not trusted again.
        let rows = rows.inspect_err(|_| *held = None)?;
        crate::batch::answers(&self.cipher, lookups, rows)
    }
}

/// A read alone (one owner's row): a probe of the hash index `entities_find` over the whole
/// key (migration 0010), which costs PostgreSQL less than the primary key's B-tree and less than
/// the `unnest` of one-element arrays. The expression must be the index's, as written there.
const PROBE_ONE: &str = "SELECT $5::bigint AS lookup, $6::bigint AS owner_rank, name, body, etag, modified_at, labels \
     FROM entities \
     WHERE (level || '/' || owner_id || '/' || kind || '/' || name) = ($1 || '/' || $2 || '/' || $3 || '/' || $4) \
       AND level = $1 AND owner_id = $2 AND kind = $3 AND name = $4";

/// Reads that arrived together: one `unnest` of arrays joined to `entities_find`, the same text
/// for any number of lookups.
const PROBE_MANY: &str =
    "SELECT q.lookup, q.owner_rank, e.name, e.body, e.etag, e.modified_at, e.labels \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) \
          AS q(level, owner_id, kind, name, lookup, owner_rank) \
     JOIN entities e \
       ON (e.level || '/' || e.owner_id || '/' || e.kind || '/' || e.name) \
          = (q.level || '/' || q.owner_id || '/' || q.kind || '/' || q.name) COLLATE \"C\" \
      AND e.level = q.level COLLATE \"C\" AND e.owner_id = q.owner_id COLLATE \"C\" \
      AND e.kind = q.kind COLLATE \"C\" AND e.name = q.name COLLATE \"C\"";

impl PgStore {
    /// The statements of single-entity reads (a read alone, reads batched), for tests that
    /// check PostgreSQL's plan of them.
    #[doc(hidden)]
    pub const ENTITY_READS: [&'static str; 2] = [PROBE_ONE, PROBE_MANY];
}

crate::ops::impl_statements!(PgConnection, Postgres);

/// Appends the WHERE clause selecting an owner's entities of a kind that pass `filter`.
fn push_entity_filter(
    qb: &mut QueryBuilder<'_, Postgres>,
    owner: &OwnerRef,
    kind: EntityKind,
    filter: &NameFilter,
) {
    qb.push(" WHERE level = ")
        .push_bind(owner.level.as_str())
        .push(" AND owner_id = ")
        .push_bind(owner.id.clone())
        .push(" AND kind = ")
        .push_bind(kind.as_str());
    match filter {
        NameFilter::All => {}
        NameFilter::In(names) => {
            if names.is_empty() {
                qb.push(" AND FALSE");
            } else {
                qb.push(" AND name = ANY(")
                    .push_bind(names.clone())
                    .push(")");
            }
        }
        // Plain comparisons of prefixes and suffixes: no LIKE, so `%` and `_` are not patterns.
        NameFilter::StartsWith(p) => {
            qb.push(" AND left(name, char_length(")
                .push_bind(p.clone())
                .push(")) = ")
                .push_bind(p.clone());
        }
        NameFilter::EndsWith(s) => {
            qb.push(" AND right(name, char_length(")
                .push_bind(s.clone())
                .push(")) = ")
                .push_bind(s.clone());
        }
        NameFilter::ModifiedWithin { minutes, now_ms } => {
            qb.push(" AND modified_at >= ")
                .push_bind(now_ms - i64::from(*minutes) * 60_000);
        }
    }
}

#[async_trait]
impl Store for PgStore {
    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn changes(&self) -> Option<feed::Changes> {
        Some(self.feed.subscribe())
    }

    fn coherent(&self) -> bool {
        self.feed.is_live()
    }

    fn epoch(&self) -> u64 {
        self.feed.epoch()
    }

    async fn get_subaccount(&self, id: &str) -> Result<Option<SubaccountRecord>> {
        let row = sqlx::query("SELECT id, subdomain FROM subaccounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(subaccount_from_row).transpose()
    }

    async fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>> {
        let row = sqlx::query("SELECT * FROM instances WHERE id = $1")
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
            "SELECT instance_id, subaccount_id, created_at FROM subscriptions WHERE instance_id = $1 ORDER BY subaccount_id",
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
            "SELECT instance_id, subaccount_id, created_at FROM subscriptions WHERE instance_id = $1 AND subaccount_id = $2",
        )
        .bind(instance_id)
        .bind(subaccount_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    async fn subaccounts_by_subdomain(&self, subdomain: &str) -> Result<Vec<SubaccountRecord>> {
        let rows =
            sqlx::query("SELECT id, subdomain FROM subaccounts WHERE subdomain = $1 ORDER BY id")
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
        self.binding_where("SELECT * FROM bindings WHERE id = $1", id)
            .await
    }

    async fn get_binding_by_client(&self, client_id: &str) -> Result<Option<BindingRecord>> {
        self.binding_where("SELECT * FROM bindings WHERE client_id = $1", client_id)
            .await
    }

    async fn get_binding_by_certificate(&self, sha256: &str) -> Result<Option<BindingRecord>> {
        self.binding_where(
            "SELECT * FROM bindings WHERE certificate_sha256 = $1",
            sha256,
        )
        .await
    }

    async fn list_bindings(&self, instance_id: &str) -> Result<Vec<BindingRecord>> {
        let rows =
            sqlx::query("SELECT * FROM bindings WHERE instance_id = $1 ORDER BY created_at, id")
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
        if owners.is_empty() {
            return Ok(None);
        }
        let lookup = Lookup {
            owners: owners.to_vec(),
            kind,
            name: name.to_owned(),
        };
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
        let total = if query.count_total && query.filter == NameFilter::All {
            let n: Option<i64> = sqlx::query_scalar(
                "SELECT entity_count FROM entity_owners WHERE level = $1 AND owner_id = $2 AND kind = $3",
            )
            .bind(owner.level.as_str())
            .bind(&owner.id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await?;
            Some(n.unwrap_or(0).max(0) as u64)
        } else if query.count_total {
            let mut qb = QueryBuilder::new("SELECT COUNT(*) FROM entities");
            push_entity_filter(&mut qb, owner, kind, &query.filter);
            let n: i64 = qb.build_query_scalar().fetch_one(&self.pool).await?;
            Some(n as u64)
        } else {
            None
        };
        let mut qb =
            QueryBuilder::new("SELECT name, body, etag, modified_at, labels FROM entities");
        push_entity_filter(&mut qb, owner, kind, &query.filter);
        if let Some(from) = &query.from {
            qb.push(" AND name >= ").push_bind(from.clone());
        }
        qb.push(" ORDER BY name");
        if let Some(limit) = query.limit {
            qb.push(format_args!(" LIMIT {limit}"));
        }
        if query.offset > 0 {
            qb.push(format_args!(" OFFSET {}", query.offset));
        }
        let rows = qb.build().fetch_all(&self.pool).await?;
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
             WHERE level = $1 AND owner_id = $2 AND kind = $3) numbered
             WHERE (rn - 1) % $4 = 0 ORDER BY name",
        )
        .bind(owner.level.as_str())
        .bind(&owner.id)
        .bind(kind.as_str())
        .bind(every)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let notes = feed::payloads(&feed::changes_of(&ops));
        let mut attempt = 0;
        loop {
            match self.write_once(&ops, &notes).await {
                Err(e) if attempt < MAX_RETRIES && is_retryable(&e) => {
                    attempt += 1;
                    let jitter = rand::Rng::gen_range(&mut rand::thread_rng(), 0..20);
                    tracing::debug!(error = %e, attempt, "retrying an aborted batch");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 10 + jitter))
                        .await;
                }
                result => {
                    if result.is_ok() {
                        self.statistics.written(&self.pool, &ops);
                    }
                    return result;
                }
            }
        }
    }

    async fn saml_keys(&self, subaccount_id: &str) -> Result<Vec<SamlKeyRecord>> {
        let rows = sqlx::query("SELECT slot, private_key, certificate, created_at FROM saml_keys WHERE subaccount_id = $1 ORDER BY slot")
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
                Ok(SamlKeyRecord {
                    subaccount_id: subaccount_id.to_owned(),
                    slot,
                    private_key_pem: decrypt_text(
                        &self.cipher,
                        &blob,
                        &saml_aad(subaccount_id, slot),
                    )?,
                    certificate_pem: r.try_get("certificate")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn get_secret(&self, name: &str) -> Result<Option<SecretString>> {
        let blob: Option<Vec<u8>> = sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        blob.map(|b| decrypt_text(&self.cipher, &b, &secret_aad(name)))
            .transpose()
    }

    async fn all_entities(&self, kind: EntityKind) -> Result<Vec<StoredEntity>> {
        let rows = sqlx::query(
            "SELECT level, owner_id, name, body, etag, modified_at, labels FROM entities WHERE kind = $1 ORDER BY level, owner_id, name",
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
        // One statement: the conflicting row is locked while the condition is checked, so of two
        // processes racing for an expired lease exactly one updates it.
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
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
                Ok(SigningKeyRecord {
                    private_key_pem: decrypt_text(&self.cipher, &blob, &key_aad(&kid))?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    kid,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()> {
        let blob = self.cipher.encrypt(
            key.private_key_pem.expose_secret().as_bytes(),
            &key_aad(&key.kid),
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO signing_keys (kid, private_key, public_jwk, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&key.kid)
            .bind(blob)
            .bind(&key.public_jwk)
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        publish(&mut tx, &[Change::SigningKeys]).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(&mut *tx)
            .await?;
        publish(&mut tx, &[Change::SigningKeys]).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        crate::ops::insert_audit(&mut *tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let (before_at, before_id) = query.before.unwrap_or((i64::MAX, i64::MAX));
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events
             WHERE at_ms >= $1 AND (at_ms < $2 OR (at_ms = $2 AND id < $3))
             ORDER BY at_ms DESC, id DESC LIMIT $4"
        ))
        .bind(query.since_ms.unwrap_or(i64::MIN))
        .bind(before_at)
        .bind(before_id)
        .bind(i64::from(query.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM audit_events WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    fn digest(&self, parts: &[&[u8]]) -> String {
        self.cipher.digest(parts)
    }
}
