//! The suite-wide leak scan. Every server the tests start ([`crate::TestApp`] and the real
//! `signpost serve` processes of `crates/signpost/tests/support`) is scanned when it is dropped:
//! every secret it holds is read back from its database (decrypted with its master key: the
//! secret properties of destinations and fragments, certificates' contents, service keys' client
//! secrets, the signing, SAML and CA private keys) and, with the master key and the broker
//! password, searched for in its log and in the raw bytes of every file of its data directory
//! (the database, its WAL) except the files that hold credentials by design (`master.key`,
//! `broker-credentials.json`, `*service-key.json`). A server on PostgreSQL is read back over SQL
//! and its cluster's files (every database's heap and TOAST files, the WAL) are searched after a
//! `CHECKPOINT` has written them out. A secret found fails the test that dropped the
//! server, naming the file and the secret's origin, never the secret itself.
//!
//! With `SIGNPOST_LEAK_REPORT=FILE` each scan appends one line (`<secrets> <files> <bytes>`) to
//! FILE; `e2e/test` sums them up after the suite.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use secrecy::ExposeSecret;
use serde_json::Value;
use signpost_model::{is_secret_property, EntityKind};
use signpost_store::{MasterKey, PgStore, SqliteStore, Store};

/// Secrets shorter than this are not searched for: they could match by chance (column names,
/// ciphertext). The tests' secrets are longer.
pub const MIN_SECRET_LEN: usize = 8;

/// Files in a data directory that hold credentials on purpose (0600, for the operator).
const CREDENTIAL_FILES: &[&str] = &["master.key", "broker-credentials.json"];

/// What one scan looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scanned {
    pub secrets: usize,
    pub files: usize,
    pub bytes: u64,
}

/// Secrets by where they came from (`destination 'x' property 'Password'`), for the report.
#[derive(Debug, Default)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    pub fn add(&mut self, origin: impl Into<String>, secret: &str) {
        let origin = origin.into();
        // A private key is also searched for as its PEM block alone (a secret may hold a
        // certificate beside it, which is public) and as JSON writes that block (`\n`). Not line
        // by line: the lines of an RSA key hold its public modulus, which JWKS publish.
        for block in pem_private_key_blocks(secret) {
            for form in [block.to_owned(), block.replace('\n', "\\n")] {
                self.0
                    .entry(form)
                    .or_insert_with(|| format!("{origin} (its private key)"));
            }
        }
        if secret.len() >= MIN_SECRET_LEN {
            self.0.insert(secret.to_owned(), origin);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `PRIVATE KEY` blocks of a PEM text, markers included.
fn pem_private_key_blocks(pem: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from = &rest[start..];
        let Some(end) = from.find("-----END ") else {
            break;
        };
        let Some(close) = from[end + 9..].find("-----") else {
            break;
        };
        let block = &from[..end + 9 + close + 5];
        if block
            .lines()
            .next()
            .is_some_and(|l| l.contains("PRIVATE KEY"))
        {
            blocks.push(block);
        }
        rest = &from[block.len()..];
    }
    blocks
}

/// Every secret the store at `db` holds, read from a copy of its files (the server's own
/// files are not opened: opening a database runs its migrations and checkpoints its WAL).
pub fn secrets_in_database(db: &Path, master: &MasterKey) -> Result<Secrets, String> {
    let copy = tempfile::TempDir::new().map_err(|e| e.to_string())?;
    let target = copy.path().join("scan.db");
    fs::copy(db, &target).map_err(|e| format!("copying {}: {e}", db.display()))?;
    for suffix in ["-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", db.display()));
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", target.display()));
            fs::copy(&from, to).map_err(|e| format!("copying {}: {e}", from.display()))?;
        }
    }
    let master = master.clone();
    let url = format!("sqlite://{}", target.display());
    on_own_runtime(async move {
        let store = SqliteStore::open(&url, &master, u32::MAX)
            .await
            .map_err(|e| format!("opening a copy of the database: {e}"))?;
        collect(&store).await.map_err(|e| e.to_string())
    })
}

/// Every secret the PostgreSQL database at `url` holds, and the data directory of its cluster
/// (when the server says where it is and it can be read here). Its dirty pages are written out
/// first (`CHECKPOINT`), so that the cluster's files hold what the server wrote.
pub fn secrets_in_postgres(
    url: &str,
    master: &MasterKey,
) -> Result<(Secrets, Option<PathBuf>), String> {
    let master = master.clone();
    let url = url.to_owned();
    on_own_runtime(async move {
        use sqlx::{Connection, Executor};
        let store = PgStore::open(&url, &master, u32::MAX)
            .await
            .map_err(|e| format!("opening the database: {e}"))?;
        let secrets = collect(&store).await.map_err(|e| e.to_string())?;
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .map_err(|e| format!("connecting: {e}"))?;
        // Both need a superuser (or pg_checkpoint / pg_read_all_settings): a shared server of
        // CI's may refuse, and then only the logs are scanned.
        let _ = conn.execute("CHECKPOINT").await;
        let dir: Option<String> = sqlx::query_scalar("SHOW data_directory")
            .fetch_one(&mut conn)
            .await
            .ok();
        let dir = dir
            .map(PathBuf::from)
            .filter(|d| d.join("PG_VERSION").is_file());
        Ok((secrets, dir))
    })
}

/// Runs `work` to its end on a runtime of its own, in a thread of its own: the caller may be
/// inside a runtime (a Drop in an async test).
fn on_own_runtime<T, F>(work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(work)
    })
    .join()
    .map_err(|_| "the scan's thread panicked".to_owned())?
}

async fn collect(store: &dyn Store) -> signpost_store::Result<Secrets> {
    let mut secrets = Secrets::default();
    for kind in [EntityKind::Destination, EntityKind::Fragment] {
        for e in store.all_entities(kind).await? {
            let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&e.body) else {
                continue;
            };
            for (key, value) in &body {
                if let (true, Some(text)) = (is_secret_property(key), value.as_str()) {
                    secrets.add(
                        format!("{} '{}' property '{key}'", kind.as_str(), e.name),
                        text,
                    );
                }
            }
        }
    }
    for e in store.all_entities(EntityKind::Certificate).await? {
        if let Ok(body) = serde_json::from_slice::<Value>(&e.body) {
            if let Some(content) = body.get("Content").and_then(Value::as_str) {
                secrets.add(format!("certificate '{}' content", e.name), content);
            }
        }
    }
    for instance in store.list_instances().await? {
        for b in store.list_bindings(&instance.id).await? {
            if let Some(secret) = &b.client_secret {
                secrets.add(
                    format!("service key '{}' client secret", b.id),
                    secret.expose_secret(),
                );
            }
        }
    }
    for k in store.signing_keys().await? {
        secrets.add(
            format!("signing key '{}'", k.kid),
            k.private_key_pem.expose_secret(),
        );
    }
    for s in store.list_subaccounts().await? {
        for k in store.saml_keys(&s.id).await? {
            secrets.add(
                format!("SAML key of '{}'", s.id),
                k.private_key_pem.expose_secret(),
            );
        }
    }
    if let Some(ca) = store.get_secret("signpost-ca").await? {
        secrets.add("the built-in CA", ca.expose_secret());
    }
    Ok(secrets)
}

/// Searches `files` and every file under `dirs` (but the credential files) for `secrets`.
pub fn scan(dirs: &[&Path], files: &[PathBuf], secrets: &Secrets) -> Result<Scanned, String> {
    let mut paths: Vec<PathBuf> = files.iter().filter(|p| p.is_file()).cloned().collect();
    for dir in dirs {
        walk(dir, &mut paths);
    }
    let mut scanned = Scanned {
        secrets: secrets.len(),
        ..Scanned::default()
    };
    let mut found = Vec::new();
    let origins: Vec<&String> = secrets.0.values().collect();
    // One pass over each file for all the secrets.
    let matcher = AhoCorasick::new(secrets.0.keys()).map_err(|e| e.to_string())?;
    for path in &paths {
        let Ok(bytes) = fs::read(path) else { continue };
        scanned.files += 1;
        scanned.bytes += bytes.len() as u64;
        let mut seen = std::collections::BTreeSet::new();
        for m in matcher.find_overlapping_iter(&bytes) {
            if seen.insert(m.pattern().as_usize()) {
                found.push(format!(
                    "{} in {}",
                    origins[m.pattern().as_usize()],
                    path.display()
                ));
            }
        }
    }
    report(scanned);
    if found.is_empty() {
        Ok(scanned)
    } else {
        Err(format!("secrets found in plain text: {}", found.join("; ")))
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            walk(&path, out);
        } else if !CREDENTIAL_FILES.contains(&name.as_str()) && !name.ends_with("service-key.json")
        {
            out.push(path);
        }
    }
}

fn report(scanned: Scanned) {
    let Some(file) = std::env::var_os("SIGNPOST_LEAK_REPORT") else {
        return;
    };
    if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(file) {
        let _ = writeln!(f, "{} {} {}", scanned.secrets, scanned.files, scanned.bytes);
    }
}

/// Where a server under scan keeps its data: always its data directory (the SQLite database, or
/// only the key files beside a PostgreSQL database), and the URL of its PostgreSQL database.
#[derive(Debug, Clone, Copy)]
pub struct ServerData<'a> {
    pub data_dir: &'a Path,
    pub database_url: Option<&'a str>,
}

/// The scan of one server's data (its data directory; on PostgreSQL also its cluster's files) and
/// logs, with the secrets it was given besides those in its database (its master key, its broker
/// password). Panics with the findings, unless the thread is already panicking (a failing test's
/// own message comes first).
pub fn check_server(
    data: ServerData<'_>,
    master: Option<&MasterKey>,
    logs: &[PathBuf],
    given: &[(&str, &str)],
) {
    if std::thread::panicking() {
        return;
    }
    let db = data.data_dir.join("signpost.db");
    let read = match (master, data.database_url) {
        (Some(master), Some(url)) => Some(secrets_in_postgres(url, master)),
        (Some(master), None) if db.exists() => {
            Some(secrets_in_database(&db, master).map(|s| (s, None)))
        }
        _ => None,
    };
    let (mut secrets, cluster) = match read {
        Some(Ok(read)) => read,
        Some(Err(e)) => {
            let db = match data.database_url {
                Some(_) => "the PostgreSQL database".to_owned(),
                None => db.display().to_string(),
            };
            eprintln!("leak scan: {db} not read ({e}); its logs are scanned");
            (Secrets::default(), None)
        }
        None => (Secrets::default(), None),
    };
    if let Some(master) = master {
        secrets.add("the master key", &master.to_base64());
    }
    for (origin, secret) in given {
        secrets.add(*origin, secret);
    }
    let mut dirs = vec![data.data_dir];
    dirs.extend(cluster.as_deref());
    if let Err(found) = scan(&dirs, logs, &secrets) {
        panic!(
            "leak scan of the server on {}: {found}",
            data.data_dir.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_secret_and_names_its_origin_not_the_secret() {
        let dir = tempfile::TempDir::new().unwrap();
        fs::write(dir.path().join("log"), b"... token pw-Zq8w1-basic ...").unwrap();
        fs::write(dir.path().join("master.key"), b"pw-Zq8w1-basic").unwrap();
        let mut secrets = Secrets::default();
        secrets.add("destination 'x' property 'Password'", "pw-Zq8w1-basic");
        secrets.add("too short to search", "pw");
        assert_eq!(secrets.len(), 1);
        let err = scan(&[dir.path()], &[], &secrets).unwrap_err();
        assert!(err.contains("destination 'x' property 'Password'"), "{err}");
        assert!(err.contains("/log"), "{err}");
        assert!(
            !err.contains("master.key"),
            "credential files are skipped: {err}"
        );
        assert!(
            !err.contains("Zq8w1"),
            "the report never holds the secret: {err}"
        );
        fs::remove_file(dir.path().join("log")).unwrap();
        assert_eq!(scan(&[dir.path()], &[], &secrets).unwrap().files, 0);
    }

    #[test]
    fn private_keys_are_searched_for_alone_and_json_escaped() {
        let pem = signpost_test_peers::pki::self_signed("leaky", 1);
        let mut secrets = Secrets::default();
        secrets.add("a key", &format!("{}{}", pem.cert, pem.key));
        let dir = tempfile::TempDir::new().unwrap();
        // The certificate alone is public.
        fs::write(dir.path().join("log"), &pem.cert).unwrap();
        assert!(scan(&[dir.path()], &[], &secrets).is_ok());
        let escaped = serde_json::to_string(&pem.key).unwrap();
        fs::write(dir.path().join("log"), format!("{{\"key\":{escaped}}}")).unwrap();
        let err = scan(&[dir.path()], &[], &secrets).unwrap_err();
        assert!(err.contains("a key (its private key)"), "{err}");
    }

    /// The PostgreSQL side: the secrets are read back over SQL, the cluster's files are found and
    /// searched; the encrypted key is not found, a copy of it in plain text is.
    #[test]
    fn finds_a_secret_in_a_postgresql_cluster() {
        use sqlx::{Connection, Executor};
        let pg = crate::pg::PgServer::start();
        if !pg.owns_cluster() {
            return; // a shared server's files may not be readable here
        }
        let master = MasterKey::generate();
        let pem = signpost_test_peers::pki::self_signed("leaky-pg", 1);
        let (url, pg) = on_own_runtime({
            let master = master.clone();
            let key = pem.key.clone();
            async move {
                let db = pg.create_db().await;
                let store = PgStore::open(&db.url, &master, u32::MAX).await.unwrap();
                store
                    .insert_signing_key(signpost_store::SigningKeyRecord {
                        kid: "k1".into(),
                        private_key_pem: key.into(),
                        public_jwk: "{}".into(),
                        created_at: 0,
                    })
                    .await
                    .unwrap();
                Ok((db.url.clone(), pg))
            }
        })
        .unwrap();
        let (secrets, cluster) = secrets_in_postgres(&url, &master).unwrap();
        let cluster = cluster.expect("the cluster's data directory");
        assert!(cluster.join("base").is_dir(), "{}", cluster.display());
        let clean = scan(&[cluster.as_path()], &[], &secrets).unwrap();
        assert!(clean.files > 100, "{clean:?}");

        let key = pem.key.clone();
        on_own_runtime(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            conn.execute("CREATE TABLE copied (t text)").await.unwrap();
            sqlx::query("INSERT INTO copied VALUES ($1)")
                .bind(key)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.execute("CHECKPOINT").await.unwrap();
            Ok(())
        })
        .unwrap();
        let err = scan(&[cluster.as_path()], &[], &secrets).unwrap_err();
        assert!(err.contains("signing key 'k1'"), "{err}");
        assert!(err.contains(&*cluster.to_string_lossy()), "{err}");
        drop(pg);
    }
}
