//! Single-entity reads of a SQLite file on the calling thread. sqlx runs every SQLite statement
//! on a worker thread of its own connection and hands the rows back through channels: for a point
//! read of one row that is two or more thread switches, which cost more than the read (a profile
//! of random finds across a million destinations: about a fifth of the CPU in the scheduler's
//! wake-ups). These reads take a connection of a small set kept open beside sqlx's pool (a
//! read-only view of the same file: in WAL mode a reader sees every committed write and never
//! waits for a writer) and run one prepared statement per owner, in the caller's thread. A read
//! of pages the operating system holds in memory takes microseconds; a read from a cold disk
//! blocks the calling worker thread for the disk's latency, as a read of a file does.
//!
//! When every connection is busy (more callers at once than [`CONNECTIONS`]), the caller gets
//! `None` and goes the batched way ([`crate::batch`]).
//!
//! While the store is not writing, each connection keeps its read transaction open from one read
//! to the next: beginning and ending one costs SQLite two `fcntl` locks and an `fstat` of the
//! file, a sixth of a random find across a million destinations (a profile: 8.7 % of the
//! server's samples against 12 % for reading the pages themselves). Two rules keep that safe:
//!
//! - **No snapshot hides a write.** Every write of the store is framed by
//!   [`DirectReader::writing`]: idle connections end their transactions before and after it,
//!   a busy one begins anew at its next read (its snapshot began before the write ended), and for
//!   [`QUIET_AFTER_WRITE`] after it every read is a transaction of its own. So a read that begins
//!   after a write has returned sees it. A snapshot is also never kept longer than
//!   [`MAX_SNAPSHOT_AGE`] (the bound for writes by another process on the same file, which the
//!   store's caches do not follow either).
//! - **No snapshot holds the WAL back.** SQLite copies the WAL into the file only as far as the
//!   oldest open snapshot and starts it over only when no snapshot reads from it. Snapshots kept
//!   while writes come starve that for good: the WAL grew to 18-38 MB instead of 4.3 MB with
//!   finds running beside writes (`sqlite_wal_starts_over_while_finds_run` in the store's tests),
//!   even when they were ended around each write. So while writes come (and for
//!   [`QUIET_AFTER_WRITE`] after the last) reads keep nothing, as before; snapshots are kept only
//!   in quiet spells, when there is nothing to checkpoint.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::batch::{best_rows, Lookup};
use crate::crypto::Cipher;
use crate::records::StoredEntity;
use crate::shared::EntityColumns;
use crate::{Error, Result};

/// Connections kept for these reads: more than the runtime's worker threads on small machines.
const CONNECTIONS: usize = 4;
/// SQLite's page cache per connection, in KiB (its default: 2 MiB).
const CACHE_KIB: i64 = 2048;
/// Longest a connection reads from one snapshot.
const MAX_SNAPSHOT_AGE: Duration = Duration::from_secs(1);
/// How long after a write the connections keep no snapshot past a read.
const QUIET_AFTER_WRITE: Duration = Duration::from_millis(200);

/// The statement of a lookup over `owners` owners: every owner's row in one statement (one read
/// transaction, one round of SQLite's file locks), each a full-key probe of the primary key.
fn lookup_sql(owners: usize) -> String {
    let mut sql = String::from(
        "SELECT level, owner_id, name, body, etag, modified_at, labels FROM entities \
         WHERE kind = ?1 AND name = ?2 AND (",
    );
    for i in 0..owners {
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!(
            "(level = ?{} AND owner_id = ?{})",
            3 + 2 * i,
            4 + 2 * i
        ));
    }
    sql.push(')');
    sql
}

pub(crate) struct DirectReader {
    conns: Vec<Mutex<ReadConnection>>,
    cipher: Cipher,
    /// The statements over one and two owners (an entity's level; a find's two), made once.
    sql: [String; 2],
    /// How many writes are under way ([`DirectReader::writing`]).
    writing: AtomicUsize,
    /// When the last write ended, in microseconds since `opened`: a snapshot begun before is
    /// stale.
    last_write_us: AtomicU64,
    opened: Instant,
}

/// A connection and the read transaction it keeps open, if any.
struct ReadConnection {
    conn: Connection,
    /// When its transaction began, in microseconds since [`DirectReader::opened`].
    snapshot: Option<u64>,
}

/// Whether a snapshot begun at `began` may serve a read at `now`, the last write having ended at
/// `last_write` (all in microseconds since the reader opened): only if it began after that write
/// and less than [`MAX_SNAPSHOT_AGE`] ago.
fn keeps(began: u64, last_write: u64, now: u64) -> bool {
    let max_age = u64::try_from(MAX_SNAPSHOT_AGE.as_micros()).unwrap_or(u64::MAX);
    began > last_write && now.saturating_sub(began) < max_age
}

impl ReadConnection {
    /// Ends the open read transaction, if there is one.
    fn end(&mut self) {
        if self.snapshot.take().is_some() && !self.conn.is_autocommit() {
            // A read transaction ends without fail; should it not, ROLLBACK ends any.
            if self.conn.execute_batch("COMMIT").is_err() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }

    /// Makes sure a transaction is open on a snapshot that [`keeps`] allows at `now`.
    fn begin(&mut self, now: u64, last_write: u64) -> Result<()> {
        if let Some(began) = self.snapshot {
            if keeps(began, last_write, now) {
                return Ok(());
            }
            self.end();
        }
        // Deferred: the snapshot is taken by the first read after it, later than `now`.
        self.conn.execute_batch("BEGIN").map_err(direct_error)?;
        self.snapshot = Some(now);
        Ok(())
    }
}

impl std::fmt::Debug for DirectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectReader")
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl DirectReader {
    /// Opens the connections to the database file at `path` (it exists: sqlx's pool made it).
    pub(crate) fn open(path: &Path, cipher: Cipher) -> Result<Self> {
        let conns = (0..CONNECTIONS)
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(Duration::from_secs(10))?;
                // Reads only, whatever a bug might try.
                conn.pragma_update(None, "query_only", true)?;
                conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
                Ok(Mutex::new(ReadConnection {
                    conn,
                    snapshot: None,
                }))
            })
            .collect::<std::result::Result<Vec<_>, rusqlite::Error>>()
            .map_err(direct_error)?;
        Ok(Self {
            conns,
            cipher,
            sql: [lookup_sql(1), lookup_sql(2)],
            writing: AtomicUsize::new(0),
            last_write_us: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }

    /// The entity of the first of `lookup`'s owners that has one; `None` (outer) when every
    /// connection is taken.
    pub(crate) fn find(&self, lookup: &Lookup) -> Option<Result<Option<StoredEntity>>> {
        let mut conn = self.conns.iter().find_map(|c| c.try_lock().ok())?;
        if self.writes_lately() {
            // While the store writes, or wrote a moment ago, each read is a transaction of its
            // own (see `writing`).
            conn.end();
            return Some(self.read(&conn.conn, lookup));
        }
        let (now, last_write) = (self.now_us(), self.last_write_us.load(Ordering::Acquire));
        let read = conn
            .begin(now, last_write)
            .and_then(|()| self.read(&conn.conn, lookup));
        if read.is_err() {
            // Whatever went wrong, the next read begins on a fresh transaction.
            conn.end();
        }
        Some(read)
    }

    /// Called by the store as any write begins, held until it is over (committed, rolled back or
    /// cancelled): the idle connections' snapshots end now, reads keep none until
    /// [`QUIET_AFTER_WRITE`] after it, and when it is over no read begins on a snapshot older
    /// than it (see the module's text).
    pub(crate) fn writing(&self) -> Writing<'_> {
        self.writing.fetch_add(1, Ordering::AcqRel);
        self.release_idle();
        Writing(self)
    }

    /// True while a write transaction runs and for [`QUIET_AFTER_WRITE`] after the last one.
    fn writes_lately(&self) -> bool {
        if self.writing.load(Ordering::Acquire) > 0 {
            return true;
        }
        let last = Duration::from_micros(self.last_write_us.load(Ordering::Acquire));
        // Before the first write `last` is zero: quiet from `opened + QUIET_AFTER_WRITE` on.
        self.opened.elapsed() < last + QUIET_AFTER_WRITE
    }

    /// Microseconds since the reader opened.
    fn now_us(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Ends the snapshots of the connections nobody is reading on. A busy connection's snapshot
    /// began before the write ended, so [`keeps`] ends it at its next read.
    fn release_idle(&self) {
        for conn in &self.conns {
            if let Ok(mut conn) = conn.try_lock() {
                conn.end();
            }
        }
    }

    fn read(&self, conn: &Connection, lookup: &Lookup) -> Result<Option<StoredEntity>> {
        if lookup.owners.is_empty() {
            return Ok(None);
        }
        let n = lookup.owners.len();
        let made;
        let sql = match self.sql.get(n - 1) {
            Some(sql) => sql,
            None => {
                made = lookup_sql(n);
                &made
            }
        };
        let mut stmt = conn.prepare_cached(sql).map_err(direct_error)?;
        let mut args: Vec<&str> = vec![lookup.kind.as_str(), lookup.name.as_str()];
        for owner in &lookup.owners {
            args.extend([owner.level.as_str(), owner.id.as_str()]);
        }
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| {
                let (level, owner): (String, String) = (r.get(0)?, r.get(1)?);
                let columns = EntityColumns {
                    name: r.get(2)?,
                    body: r.get(3)?,
                    etag: r.get(4)?,
                    modified_at: r.get(5)?,
                    labels: r.get(6)?,
                };
                Ok((level, owner, columns))
            })
            .map_err(direct_error)?;
        // Each row with its owner's rank; the row of the first owner that has one wins.
        let mut keyed = Vec::new();
        for row in rows {
            let (level, owner, columns) = row.map_err(direct_error)?;
            let rank = lookup
                .owners
                .iter()
                .position(|o| o.level.as_str() == level && o.id == owner);
            if let Some(rank) = rank.and_then(|r| i64::try_from(r).ok()) {
                keyed.push((0, rank, columns));
            }
        }
        best_rows(std::slice::from_ref(lookup), keyed)
            .pop()
            .flatten()
            .map(|(rank, columns)| columns.decrypt(&self.cipher, &lookup.owners[rank], lookup.kind))
            .transpose()
    }
}

/// A write under way ([`DirectReader::writing`]); dropped when it is over.
pub(crate) struct Writing<'a>(&'a DirectReader);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let reader = self.0;
        // Before `writing` falls: a read that finds no write under way finds this one's end.
        reader
            .last_write_us
            .fetch_max(reader.now_us(), Ordering::AcqRel);
        reader.writing.fetch_sub(1, Ordering::AcqRel);
        reader.release_idle();
    }
}

/// rusqlite's errors in the store's terms: busy, locked and unreadable are outages (503), as
/// sqlx's are.
fn direct_error(e: rusqlite::Error) -> Error {
    let outage = matches!(
        e.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::SystemIoFailure
                | rusqlite::ErrorCode::CannotOpen
        )
    );
    Error::Direct {
        message: e.to_string(),
        outage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_serves_only_after_the_last_write_and_for_a_second() {
        let second = 1_000_000;
        // Begun after the last write ended: kept while young.
        assert!(keeps(500, 400, 600));
        assert!(keeps(500, 400, 500 + second - 1));
        assert!(!keeps(500, 400, 500 + second));
        // Begun before the last write ended (a connection busy while it ran), or in the same
        // microsecond: never kept.
        assert!(!keeps(500, 700, 800));
        assert!(!keeps(500, 500, 600));
    }
}
