//! A throwaway PostgreSQL for tests. With `SIGNPOST_TEST_DATABASE_URL` set (a server CI provides),
//! tests create their databases there; otherwise each [`PgServer`] is its own cluster: `initdb`
//! into a temp dir, `pg_ctl start` on 127.0.0.1 with a free port and the unix socket in the temp
//! dir, trust authentication, no fsync; stopped (`-m immediate`) and removed on drop. As root
//! (PostgreSQL refuses to run as root) the binaries run as the `postgres` user via `runuser`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, Executor, PgConnection};

const URL_VAR: &str = "SIGNPOST_TEST_DATABASE_URL";

#[derive(Debug)]
pub struct PgServer {
    /// URL of the maintenance database (`postgres`) or the one given in `SIGNPOST_TEST_DATABASE_URL`.
    admin_url: String,
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<&'static str>,
    /// `pg_ctl start`'s server options and log file, for a restart on the same port.
    opts: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A database created for one test; `url` connects to it.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    name: String,
    admin_url: String,
}

/// A connection of a test's own to the database, to watch what the servers do.
#[derive(Debug)]
pub struct Watch(PgConnection);

impl Watch {
    /// The `i64` that a one-value query returns (a count).
    pub async fn count(&mut self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&mut self.0)
            .await
            .unwrap()
    }
}

impl TestDb {
    pub async fn watch(&self) -> Watch {
        Watch(PgConnection::connect(&self.url).await.unwrap())
    }

    /// Drops the database (needed on a shared server; a throwaway cluster goes away anyway).
    /// Close the stores' pools first.
    pub async fn drop_db(self) {
        let mut conn = PgConnection::connect(&self.admin_url).await.unwrap();
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}

impl PgServer {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var(URL_VAR) {
            if !url.is_empty() {
                return Self {
                    admin_url: url,
                    cluster: None,
                };
            }
        }
        let bin = bindir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found via `pg_config --bindir` or in \
                 /usr/lib/postgresql/*/bin: install Debian's `postgresql` package \
                 (apt-get install postgresql), or set {URL_VAR} to a server the tests may create \
                 databases on"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            let ok = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown of {} to {user} failed", dir.path().display());
        }
        let data = dir.path().join("data");
        let sock = dir.path();
        run(
            run_as,
            &bin.join("initdb"),
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
        );
        // The free port may be taken between the probe and the start: try a few.
        let log = dir.path().join("server.log");
        let mut attempt = 0;
        let (port, opts) = loop {
            let port = free_port();
            let opts = format!(
                "-F -c fsync=off -c listen_addresses=127.0.0.1 -p {port} -k {}",
                path_str(sock)
            );
            let started = try_run(
                run_as,
                &bin.join("pg_ctl"),
                &[
                    "-D",
                    path_str(&data),
                    "-l",
                    path_str(&log),
                    "-o",
                    &opts,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            );
            match started {
                Ok(()) => break (port, opts),
                Err(_) if attempt < 2 => attempt += 1,
                Err(out) => {
                    let log = std::fs::read_to_string(&log).unwrap_or_default();
                    panic!("pg_ctl start failed: {out}\n--- server log ---\n{log}");
                }
            }
        };
        Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            cluster: Some(Cluster {
                bin,
                data,
                run_as,
                opts,
                log,
                _dir: dir,
            }),
        }
    }

    /// A new, empty database with a random name.
    pub async fn create_db(&self) -> TestDb {
        let name = format!("signpost_test_{:016x}", rand::random::<u64>());
        let mut conn = PgConnection::connect(&self.admin_url).await.unwrap();
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, query) = match self.admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (self.admin_url.as_str(), String::new()),
        };
        // Replace the database part of the URL (after the last `/` following the authority).
        let authority_end = base
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| base[start..].find('/').map(|j| start + j))
            .unwrap_or(base.len());
        let url = format!("{}/{name}{query}", &base[..authority_end]);
        TestDb {
            url,
            name,
            admin_url: self.admin_url.clone(),
        }
    }
}

impl PgServer {
    /// True when this is a cluster the tests started (and so may stop); false for a server
    /// given by the environment.
    pub fn owns_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stops the cluster (fast shutdown: open connections are ended, as in a failover or a
    /// restart for maintenance). Panics for a server given by the environment.
    pub fn stop(&self) {
        let c = self
            .cluster
            .as_ref()
            .expect("only a cluster the tests started can be stopped");
        run(
            c.run_as,
            &c.bin.join("pg_ctl"),
            &["-D", path_str(&c.data), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the stopped cluster again on its port.
    pub fn restart(&self) {
        let c = self
            .cluster
            .as_ref()
            .expect("only a cluster the tests started can be started");
        run(
            c.run_as,
            &c.bin.join("pg_ctl"),
            &[
                "-D",
                path_str(&c.data),
                "-l",
                path_str(&c.log),
                "-o",
                &c.opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(c) = &self.cluster {
            let _ = try_run(
                c.run_as,
                &c.bin.join("pg_ctl"),
                &["-D", path_str(&c.data), "-m", "immediate", "-w", "stop"],
            );
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Where `initdb` and `pg_ctl` are: `pg_config --bindir`, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian installs the server there, off the PATH).
fn bindir() -> Option<PathBuf> {
    let has_server = |p: &Path| p.join("initdb").is_file() && p.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&p) {
            return Some(p);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn command(run_as: Option<&str>, program: &Path, args: &[&str]) -> Command {
    match run_as {
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program).args(args);
            c
        }
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    }
}

fn try_run(run_as: Option<&str>, program: &Path, args: &[&str]) -> Result<(), String> {
    let out = command(run_as, program, args)
        .current_dir("/")
        .output()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} {args:?}: {}\n{}{}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn run(run_as: Option<&str>, program: &Path, args: &[&str]) {
    if let Err(e) = try_run(run_as, program, args) {
        panic!("{e}");
    }
}
