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

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

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
    conns: Vec<Mutex<Connection>>,
    cipher: Cipher,
    /// The statements over one and two owners (an entity's level; a find's two), made once.
    sql: [String; 2],
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
                Ok(Mutex::new(conn))
            })
            .collect::<std::result::Result<Vec<_>, rusqlite::Error>>()
            .map_err(direct_error)?;
        Ok(Self {
            conns,
            cipher,
            sql: [lookup_sql(1), lookup_sql(2)],
        })
    }

    /// The entity of the first of `lookup`'s owners that has one; `None` (outer) when every
    /// connection is taken.
    pub(crate) fn find(&self, lookup: &Lookup) -> Option<Result<Option<StoredEntity>>> {
        let conn = self.conns.iter().find_map(|c| c.try_lock().ok())?;
        Some(self.read(&conn, lookup))
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
