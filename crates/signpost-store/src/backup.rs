//! Backups of the SQLite engine (`signpost store backup` and `restore`).
//!
//! [`backup`] writes a consistent snapshot of a database that a server may be writing to: SQLite's
//! `VACUUM INTO` copies it inside one read transaction, so in WAL mode the server's writers carry
//! on and the copy holds exactly the transactions committed before it began. [`restore`] checks
//! such a file (SQLite's integrity check, the master key opens its data key, every stored secret
//! decrypts, the migrations apply) before it moves it into place as the database of a data
//! directory that has none. PostgreSQL has `pg_dump` and `pg_restore` (docs/DATABASES.md).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, SqliteConnection};

use crate::copy::Counts;
use crate::{Error, MasterKey, Result, SqliteStore};

/// Writes a consistent snapshot of the SQLite database at `url` to the new file `to` (mode 0600).
/// `to` must not exist; the snapshot is written next to it and renamed into place when complete,
/// so a backup cut short leaves no file that looks whole.
pub async fn backup(url: &str, to: &Path) -> Result<Summary> {
    let db = database_file(url)?;
    if !db.is_file() {
        return Err(Error::Invalid(format!(
            "there is no database at {}",
            db.display()
        )));
    }
    if to.exists() {
        return Err(Error::Invalid(format!(
            "{} exists already; a backup never overwrites a file",
            to.display()
        )));
    }
    let partial = with_suffix(to, ".partial");
    let _ = fs::remove_file(&partial);
    // SQLite accepts an empty file as the target of VACUUM INTO: made here, readable by the
    // owner only.
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| io(&partial, "cannot create", &e))?;
    let written = async {
        let mut conn = connect(db).await?;
        signpost_database(&mut conn, db).await?;
        let target = partial
            .to_str()
            .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", partial.display())))?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        sync(&partial)?;
        fs::rename(&partial, to).map_err(|e| io(to, "cannot write", &e))?;
        sync_dir(to);
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(e);
    }
    summary_of(to).await
}

/// Brings the backup `from` back as the database at `url`, which must not exist yet, after checking
/// that it is whole and that `master` opens it. On any failure nothing is left at `url`.
pub async fn restore(from: &Path, url: &str, master: &MasterKey) -> Result<Counts> {
    let db = database_file(url)?;
    for existing in [db.to_owned(), with_suffix(db, "-wal")] {
        if existing.exists() {
            return Err(Error::Invalid(format!(
                "{} exists; a restore goes into a data directory without a database (move it away first)",
                existing.display()
            )));
        }
    }
    if !from.is_file() {
        return Err(Error::Invalid(format!(
            "there is no backup file at {}",
            from.display()
        )));
    }
    let partial = with_suffix(db, ".restoring");
    remove_database_files(&partial);
    let restored = async {
        copy_private(from, &partial)?;
        let mut conn = connect(&partial).await.map_err(|e| not_a_backup(from, e))?;
        let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| not_a_backup(from, e.into()))?;
        if check.first().map(String::as_str) != Some("ok") {
            return Err(Error::Invalid(format!(
                "the backup {} is damaged: {}",
                from.display(),
                check.join("; ")
            )));
        }
        signpost_database(&mut conn, from).await?;
        conn.close().await?;
        // Opening it as the server does runs the migrations (a backup of an older version is
        // brought up to date), unwraps the data key with `master`, and counting decrypts every
        // secret and entity.
        let store = SqliteStore::open(&path_url(&partial)?, master, u32::MAX).await?;
        let counts = crate::copy::counts(&store).await?;
        // One file that can be moved: the pool's WAL checkpointed and journaling back to a
        // rollback journal (the server turns WAL on again when it opens the database).
        store.close().await;
        drop(store);
        let mut conn = connect(&partial).await?;
        sqlx::query("PRAGMA journal_mode = DELETE")
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        sync(&partial)?;
        fs::rename(&partial, db).map_err(|e| io(db, "cannot write", &e))?;
        sync_dir(db);
        Ok(counts)
    }
    .await;
    if restored.is_err() {
        remove_database_files(&partial);
    }
    restored
}

/// What a backup file holds, counted without the master key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub bytes: u64,
    pub instances: usize,
    pub bindings: usize,
    /// Destinations, fragments and certificates on every level.
    pub entities: usize,
}

async fn summary_of(path: &Path) -> Result<Summary> {
    let mut conn = connect(path).await?;
    let mut rows = Vec::new();
    for table in ["instances", "bindings", "entities"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await?;
        rows.push(usize::try_from(n).unwrap_or_default());
    }
    conn.close().await?;
    Ok(Summary {
        bytes: fs::metadata(path).map(|m| m.len()).unwrap_or_default(),
        instances: rows[0],
        bindings: rows[1],
        entities: rows[2],
    })
}

fn database_file(url: &str) -> Result<&Path> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(Error::Invalid(
            "a PostgreSQL database is backed up and restored with pg_dump and pg_restore (docs/DATABASES.md)"
                .into(),
        ));
    }
    SqliteStore::file_path(url)
        .ok_or_else(|| Error::Invalid(format!("'{url}' names no database file")))
}

fn path_url(path: &Path) -> Result<String> {
    path.to_str()
        .map(|p| format!("sqlite://{p}"))
        .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", path.display())))
}

/// A connection to an existing file (never created), waiting for the server's writer.
async fn connect(path: &Path) -> Result<SqliteConnection> {
    Ok(SqliteConnectOptions::from_str(&path_url(path)?)?
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// Fails unless the database holds Signpost's data key.
async fn signpost_database(conn: &mut SqliteConnection, path: &Path) -> Result<()> {
    let keys: Result<i64, _> =
        sqlx::query_scalar("SELECT COUNT(*) FROM meta WHERE key = 'data_key'")
            .fetch_one(&mut *conn)
            .await;
    match keys {
        Ok(1) => Ok(()),
        _ => Err(Error::Invalid(format!(
            "{} is not a Signpost database",
            path.display()
        ))),
    }
}

fn not_a_backup(path: &Path, e: Error) -> Error {
    match e {
        Error::Database(_) => {
            Error::Invalid(format!("{} is not a SQLite database: {e}", path.display()))
        }
        other => other,
    }
}

fn copy_private(from: &Path, to: &Path) -> Result<()> {
    let mut source = fs::File::open(from).map_err(|e| io(from, "cannot read", &e))?;
    let mut target = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| io(to, "cannot create", &e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| io(to, "cannot write", &e))?;
    target.flush().map_err(|e| io(to, "cannot write", &e))?;
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn remove_database_files(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = fs::remove_file(with_suffix(path, suffix));
    }
}

fn sync(path: &Path) -> Result<()> {
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, "cannot sync", &e))
}

/// The rename is durable once the directory is synced (best effort: some filesystems refuse).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
}

fn io(path: &Path, what: &str, e: &std::io::Error) -> Error {
    Error::Invalid(format!("{what} {}: {e}", path.display()))
}
