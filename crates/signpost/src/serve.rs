//! `signpost serve` and `signpost migrate`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rand::RngCore;
use secrecy::SecretString;
use signpost_api::{AppState, BrokerCredentials};
use signpost_core::{CoreConfig, Signpost};
use signpost_store::{CachedStore, MasterKey, PgStore, SqliteStore, Store};
use tokio::net::TcpListener;

use crate::config::{CacheBudget, ConfigError, ServeArgs, StoreArgs, TlsCertificate};
use crate::tls::BuiltInCertificate;

const MASTER_KEY_FILE: &str = "master.key";
const BROKER_FILE: &str = "broker-credentials.json";

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Creates the data directory (0700) if needed.
fn data_dir(path: &Path) -> Result<()> {
    if !path.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .with_context(|| format!("cannot create the data directory {}", path.display()))?;
    }
    Ok(())
}

/// Writes a new file readable by the owner only; fails if it exists.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn read_private(path: &Path) -> Result<String> {
    let meta = fs::metadata(path)?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(file = %path.display(), "secret file is readable by group or others; chmod 600 it");
    }
    Ok(fs::read_to_string(path)?)
}

/// `SIGNPOST_MASTER_KEY`, else the key file in the data dir (generated on first start).
fn master_key(dir: &Path) -> Result<MasterKey> {
    if let Ok(text) = std::env::var("SIGNPOST_MASTER_KEY") {
        return MasterKey::parse(&text)
            .map_err(|e| ConfigError(format!("SIGNPOST_MASTER_KEY: {e}")).into());
    }
    let path = dir.join(MASTER_KEY_FILE);
    if path.exists() {
        let text = read_private(&path)?;
        return MasterKey::parse(&text)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())).into());
    }
    let key = MasterKey::generate();
    write_private(&path, &key.to_base64())?;
    tracing::info!(file = %path.display(), "generated a new master key; back it up: without it the secrets in the database cannot be read");
    Ok(key)
}

/// `SIGNPOST_BROKER_USER`/`SIGNPOST_BROKER_PASSWORD`, else the credentials file (generated).
fn broker_credentials(dir: &Path) -> Result<BrokerCredentials> {
    let user = std::env::var("SIGNPOST_BROKER_USER")
        .ok()
        .filter(|s| !s.is_empty());
    let password = std::env::var("SIGNPOST_BROKER_PASSWORD")
        .ok()
        .filter(|s| !s.is_empty());
    match (user, password) {
        (Some(user), Some(password)) => {
            return Ok(BrokerCredentials {
                user,
                password: SecretString::from(password),
            })
        }
        (None, None) => {}
        _ => return Err(ConfigError(
            "SIGNPOST_BROKER_USER and SIGNPOST_BROKER_PASSWORD go together: set both or neither"
                .into(),
        )
        .into()),
    }
    let path = dir.join(BROKER_FILE);
    if !path.exists() {
        let mut pw = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut pw);
        let body = serde_json::json!({"user": "broker", "password": hex::encode(pw)});
        write_private(&path, &serde_json::to_string_pretty(&body)?)?;
        tracing::info!(file = %path.display(), "generated broker credentials");
    } else {
        tracing::info!(file = %path.display(), "broker credentials");
    }
    let v: serde_json::Value = serde_json::from_str(&read_private(&path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    match (v["user"].as_str(), v["password"].as_str()) {
        (Some(u), Some(p)) => Ok(BrokerCredentials {
            user: u.into(),
            password: SecretString::from(p.to_owned()),
        }),
        _ => Err(ConfigError(format!(
            "{} must hold \"user\" and \"password\"",
            path.display()
        ))
        .into()),
    }
}

fn database_url(args: &StoreArgs) -> Result<String> {
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", args.data_dir.join("signpost.db").display()));
    if !(url.starts_with("sqlite:") || is_postgres(&url)) {
        return Err(ConfigError(format!(
            "database URL '{}' must start with sqlite:// or postgres://",
            crate::config::redacted_database_url(&url)
        ))
        .into());
    }
    Ok(url)
}

/// Variables whose values are only read later, checked up front.
fn check_secret_env() -> Result<()> {
    if let Ok(text) = std::env::var("SIGNPOST_MASTER_KEY") {
        MasterKey::parse(&text).map_err(|e| ConfigError(format!("SIGNPOST_MASTER_KEY: {e}")))?;
    }
    let user = std::env::var_os("SIGNPOST_BROKER_USER").filter(|s| !s.is_empty());
    let password = std::env::var_os("SIGNPOST_BROKER_PASSWORD").filter(|s| !s.is_empty());
    if user.is_some() != password.is_some() {
        return Err(ConfigError(
            "SIGNPOST_BROKER_USER and SIGNPOST_BROKER_PASSWORD go together: set both or neither"
                .into(),
        )
        .into());
    }
    Ok(())
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

async fn open_store(args: &StoreArgs) -> Result<Arc<dyn Store>> {
    open_store_with(args, &CacheBudget::default()).await
}

/// The store of `args` behind the read-through cache with `cache`'s budgets.
async fn open_store_with(args: &StoreArgs, cache: &CacheBudget) -> Result<Arc<dyn Store>> {
    data_dir(&args.data_dir)?;
    let url = database_url(args)?;
    if is_postgres(&url) {
        let master = master_key(&args.data_dir)?;
        let store = PgStore::open(&url, &master, args.max_entities)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the PostgreSQL database: {e}"))?;
        // The cache follows the database's change feed (LISTEN/NOTIFY) and is bypassed while
        // that feed is not known to work, so other replicas' writes are seen within a second.
        return Ok(Arc::new(CachedStore::with_budget(
            Arc::new(store),
            cache.entities,
            cache.page_anchors,
        )));
    }
    if let Some(path) = SqliteStore::file_path(&url) {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            data_dir(parent)?;
        }
        // Created 0600 here so that SQLite's WAL and shared-memory files inherit that mode.
        if !path.exists() {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot create the database file {}", path.display()))?;
        }
    }
    let master = master_key(&args.data_dir)?;
    let store = SqliteStore::open(&url, &master, args.max_entities)
        .await
        .with_context(|| format!("cannot open the database {url}"))?;
    Ok(Arc::new(CachedStore::with_budget(
        Arc::new(store),
        cache.entities,
        cache.page_anchors,
    )))
}

/// `signpost store copy --from URL --to URL`: everything, keys and encrypted secrets included,
/// re-encrypted under the target's data key (both opened with the same master key), then the
/// counts of both compared.
pub async fn copy(args: crate::config::CopyArgs) -> Result<()> {
    init_tracing(false);
    let open = |url: &str| StoreArgs {
        data_dir: args.data_dir.clone(),
        database_url: Some(url.to_owned()),
        max_entities: u32::MAX,
    };
    let from = open_store(&open(&args.from)).await?;
    let to = open_store(&open(&args.to)).await?;
    let copied = signpost_store::copy::copy_all(from.as_ref(), to.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("copy failed, nothing was written to the target: {e}"))?;
    let target = signpost_store::copy::counts(to.as_ref()).await?;
    if target != copied {
        anyhow::bail!("the counts differ after the copy: source {copied:?}, target {target:?}");
    }
    tracing::info!(
        ?copied,
        from = from.engine(),
        to = to.engine(),
        "copied and verified"
    );
    Ok(())
}

/// `signpost store backup --to FILE`: a consistent snapshot of the SQLite database, taken while
/// the server may be writing (signpost_store::backup).
pub async fn backup(args: crate::config::BackupArgs) -> Result<()> {
    init_tracing(false);
    let url = database_url(&StoreArgs {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        max_entities: u32::MAX,
    })?;
    let summary = signpost_store::backup::backup(&url, &args.to)
        .await
        .map_err(|e| anyhow::anyhow!("backup failed: {e}"))?;
    tracing::info!(
        file = %args.to.display(),
        bytes = summary.bytes,
        instances = summary.instances,
        bindings = summary.bindings,
        entities = summary.entities,
        "backup written; the master key is not in it"
    );
    Ok(())
}

/// `signpost store restore --from FILE`: the backup checked and moved into place as the database
/// of a data directory without one, under the master key it was made with (never a new one).
pub async fn restore(args: crate::config::RestoreArgs) -> Result<()> {
    init_tracing(false);
    check_secret_env()?;
    let store_args = StoreArgs {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone(),
        max_entities: u32::MAX,
    };
    let url = database_url(&store_args)?;
    let key_file = args.data_dir.join(MASTER_KEY_FILE);
    if std::env::var_os("SIGNPOST_MASTER_KEY").is_none() && !key_file.exists() {
        return Err(ConfigError(format!(
            "restore needs the master key the backup was made under: set SIGNPOST_MASTER_KEY or put its master.key into {}",
            args.data_dir.display()
        ))
        .into());
    }
    data_dir(&args.data_dir)?;
    let master = master_key(&args.data_dir)?;
    let restored = signpost_store::backup::restore(&args.from, &url, &master)
        .await
        .map_err(|e| anyhow::anyhow!("restore failed, nothing was written: {e}"))?;
    tracing::info!(?restored, database = %crate::config::redacted_database_url(&url), "restored and verified");
    Ok(())
}

pub async fn migrate(args: StoreArgs) -> Result<()> {
    init_tracing(false);
    let store = open_store(&args).await?;
    tracing::info!(engine = store.engine(), "database schema is up to date");
    Ok(())
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let cfg = args.validate()?;
    // Everything that can be checked without side effects is checked before any file is made.
    database_url(&args.store)?;
    let tls_from_files = match cfg.tls.as_ref().map(|t| &t.certificate) {
        Some(TlsCertificate::Files { cert, key }) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };
    check_secret_env()?;
    init_tracing(cfg.json_logs);
    data_dir(&args.store.data_dir)?;
    let broker = broker_credentials(&args.store.data_dir)?;
    let store = open_store_with(&args.store, &cfg.cache).await?;
    let core = Signpost::new(
        store.clone(),
        CoreConfig {
            public_url: cfg.public_url.clone(),
            uaadomain: cfg.uaadomain.clone(),
            token_lifetime_secs: cfg.token_lifetime,
            oauth: cfg.oauth.clone(),
            cert_url: cfg.cert_url.clone(),
            principal_cache_bytes: cfg.cache.principals,
        },
    )
    .await
    .context("cannot load the token signing key")?;
    // The HTTPS listener's certificate: the files', or one from the built-in CA, whose
    // certificate goes to `<data-dir>/ca.pem` for clients to trust.
    let built_in = match cfg.tls.as_ref().map(|t| &t.certificate) {
        Some(TlsCertificate::BuiltIn { names }) => {
            let cert = BuiltInCertificate::new(core.clone(), names.clone())
                .context("cannot issue the HTTPS listener's certificate")?;
            let ca_file = write_ca_file(&args.store.data_dir, core.ca_certificate_pem())?;
            Some((cert, ca_file))
        }
        _ => None,
    };
    let tls = match &built_in {
        Some((cert, _)) => Some(cert.server_config()?),
        None => tls_from_files,
    };
    let first_run = if args.no_bootstrap {
        None
    } else {
        bootstrap(&core, &args.store.data_dir).await?
    };
    let jobs_core = core.clone();
    let limits = Arc::new(signpost_api::Limits::new(cfg.limits));
    let app = signpost_api::router(AppState {
        core,
        broker: Arc::new(broker),
        limits: limits.clone(),
    });

    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let tls_listener = match &cfg.tls {
        Some(t) => Some(
            TcpListener::bind(t.listen)
                .await
                .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", t.listen)))?,
        ),
        None => None,
    };
    let local = listener.local_addr()?;
    let tls_local = tls_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    tracing::info!(
        url = %format!("http://{local}"),
        https = %tls_local.map(|a| format!("https://{a}")).unwrap_or_else(|| "off".into()),
        public_url = %cfg.public_url,
        engine = store.engine(),
        data_dir = %args.store.data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        "signpost listening on http://{local}"
    );

    let ca_file = built_in.as_ref().map(|(_, f)| f.clone());
    if let Some(ca_file) = &ca_file {
        let (serial, not_after) = built_in.as_ref().map(|(c, _)| c.current()).unzip();
        tracing::info!(
            ca = %ca_file.display(),
            serial = serial.as_deref().unwrap_or_default(),
            not_after = %not_after.map(|t| t.to_string()).unwrap_or_default(),
            "HTTPS with a certificate from the built-in CA; clients trust {}: SSL_CERT_FILE or REQUESTS_CA_BUNDLE for Python, NODE_EXTRA_CA_CERTS for Node.js, curl --cacert",
            ca_file.display()
        );
    }
    if let Some(key_path) = first_run {
        print_first_run(&cfg.public_url, &key_path, ca_file.as_deref());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let (Some(l), Some(tls)) = (tls_listener, tls) {
        tokio::spawn(signpost_api::tls::serve(
            l,
            tls,
            app.clone(),
            limits.clone(),
            stop_rx.clone(),
        ));
    }
    if let Some((cert, _)) = built_in {
        tokio::spawn(server_certificate_renewal(cert, stop_rx.clone()));
    }
    tokio::spawn(audit_retention(
        jobs_core.clone(),
        cfg.audit_retention_days,
        stop_rx.clone(),
    ));
    tokio::spawn(certificate_jobs(
        jobs_core,
        args.renewal_interval,
        stop_rx.clone(),
    ));
    let server = tokio::spawn(signpost_api::listener::serve(
        listener,
        app,
        limits,
        stop_rx.clone(),
    ));
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
}

/// How often the HTTPS listener's built-in certificate is checked for renewal.
const SERVER_CERTIFICATE_CHECK: std::time::Duration = std::time::Duration::from_secs(3600);

/// Every hour: renews the HTTPS listener's built-in certificate once it is due (30 days before
/// its end); a failure is logged and tried again the next hour.
async fn server_certificate_renewal(
    cert: Arc<BuiltInCertificate>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SERVER_CERTIFICATE_CHECK) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = cert.renew_if_due(time::OffsetDateTime::now_utc()) {
            tracing::warn!(error = %e, "the HTTPS listener's certificate could not be renewed; trying again in an hour");
        }
    }
}

/// Writes the built-in CA's certificate to `<data-dir>/ca.pem` (replaced whole, readable by
/// all: it is public) and returns the path.
fn write_ca_file(data_dir: &Path, pem: &str) -> Result<std::path::PathBuf> {
    let path = data_dir.join("ca.pem");
    let tmp = data_dir.join(".ca.pem.tmp");
    fs::write(&tmp, pem)
        .and_then(|()| fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)))
        .and_then(|()| fs::rename(&tmp, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Every `interval` seconds: renew due generated certificates (on whichever process holds the
/// lease, so several processes on one database renew once) and report uploaded certificates
/// that expire within 30 days.
async fn certificate_jobs(
    core: Signpost,
    interval: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let holder = uuid_like();
    let period = std::time::Duration::from_secs(interval.max(1));
    loop {
        let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
        let lease_ms = i64::try_from(period.as_millis())
            .unwrap_or(i64::MAX / 4)
            .saturating_mul(2);
        match core
            .take_lease("certificate-renewal", &holder, now_ms, lease_ms)
            .await
        {
            Ok(true) => {
                match core
                    .renew_due_certificates(time::OffsetDateTime::now_utc())
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(renewed = n, "renewed generated certificates"),
                    Err(e) => tracing::warn!(error = %e, "certificate renewal failed"),
                }
                match core.expiring_uploaded_certificates(30).await {
                    Ok(list) => {
                        signpost_api::metrics::set_expiring_uploaded(list.len());
                        for (owner, name, days) in list {
                            tracing::warn!(level = %owner.level, owner = %owner.id, certificate = %name, days_left = days,
                                "uploaded certificate expires soon; upload a new one (uploaded certificates cannot be renewed)");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "checking certificate expiry failed"),
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not take the renewal lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// How often the audit log is pruned.
const AUDIT_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// At start and every hour: deletes the audit events older than the retention (every process
/// may; a delete of what another one deleted is harmless).
async fn audit_retention(core: Signpost, days: u32, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match core.prune_audit(days).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, retention_days = days, "pruned the audit log"),
            Err(e) => tracing::warn!(error = %e, "pruning the audit log failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(AUDIT_PRUNE_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A per-process id for the renewal lease.
fn uuid_like() -> String {
    let mut b = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{}-{}", std::process::id(), hex::encode(b))
}

const DEFAULT_SUBACCOUNT: &str = "default";
const DEFAULT_INSTANCE: &str = "default";
const DEFAULT_KEY_FILE: &str = "default-service-key.json";

/// First run: on a database without instances, makes a default subaccount, instance and service
/// key, and writes the key to `<data-dir>/default-service-key.json` (0600). Returns its path.
async fn bootstrap(core: &Signpost, data_dir: &Path) -> Result<Option<std::path::PathBuf>> {
    if !core.has_no_instances().await? {
        return Ok(None);
    }
    let raw = serde_json::json!({
        "service_id": signpost_core::CATALOG_SERVICE_ID,
        "plan_id": signpost_core::CATALOG_PLAN_ID,
        "context": {"platform": "signpost", "subaccount_id": DEFAULT_SUBACCOUNT, "subdomain": DEFAULT_SUBACCOUNT},
    });
    let req = serde_json::from_value(raw.clone())?;
    if let Err(e) = core.provision(DEFAULT_INSTANCE, req, &raw).await {
        // Replicas started at once on an empty database race for it: one wins and writes the
        // key; the others start without.
        if core.instance_exists(DEFAULT_INSTANCE).await? {
            tracing::info!("first run: another replica is creating the default instance");
            return Ok(None);
        }
        return Err(anyhow::anyhow!("bootstrap: {e}"));
    }
    let bind_raw = serde_json::json!({"service_id": signpost_core::CATALOG_SERVICE_ID, "plan_id": signpost_core::CATALOG_PLAN_ID});
    let bind = core
        .bind(
            DEFAULT_INSTANCE,
            "default-key",
            serde_json::from_value(bind_raw.clone())?,
            &bind_raw,
        )
        .await;
    let bind = match bind {
        Ok(bind) => bind,
        Err(_) if core.binding_exists("default-key").await? => {
            tracing::info!("first run: another replica is creating the default service key");
            return Ok(None);
        }
        Err(e) => return Err(anyhow::anyhow!("bootstrap: {e}")),
    };
    let path = data_dir.join(DEFAULT_KEY_FILE);
    if path.exists() {
        fs::remove_file(&path)?;
    }
    write_private(&path, &serde_json::to_string_pretty(&bind.credentials)?)?;
    tracing::info!(file = %path.display(), instance = DEFAULT_INSTANCE, subaccount = DEFAULT_SUBACCOUNT, "first run: created the default instance and its service key");
    Ok(Some(path))
}

/// What a newcomer sees on the first start: where things are and one example to paste.
#[allow(clippy::print_stdout)]
fn print_first_run(url: &str, key: &Path, ca: Option<&Path>) {
    let key = key.display();
    // With the built-in CA, Python's urllib trusts it through SSL_CERT_FILE, curl with --cacert.
    let (trust, cacert) = match ca {
        Some(ca) => (
            format!(
                "
The HTTPS listener's certificate is issued by Signpost's own CA, written to {ca}
(also served at {url}/signpost/v1/ca.pem). Trust it in clients:
  Python (requests, the SAP Cloud SDK):  export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}
  Node.js (the SAP Cloud SDK):           export NODE_EXTRA_CA_CERTS={ca}
  the signpost CLI:                      export SSL_CERT_FILE={ca}
  curl:                                  curl --cacert {ca} ...
",
                ca = ca.display()
            ),
            format!(" --cacert {}", ca.display()),
        ),
        None => (String::new(), String::new()),
    };
    let python_env = match ca {
        Some(ca) => format!("SSL_CERT_FILE={} ", ca.display()),
        None => String::new(),
    };
    println!(
        "Signpost is running at {url}
A default instance and its service key were created: {key}
{trust}
Open the Destinations editor at {url}/ and sign in with that service key (paste or drop the file).

Or create and find a destination (copy and paste):

  TOKEN=$({python_env}python3 -c 'import json,urllib.request,urllib.parse;k=json.load(open(\"{key}\"));print(json.load(urllib.request.urlopen(k[\"url\"]+\"/oauth/token\",urllib.parse.urlencode({{\"grant_type\":\"client_credentials\",\"client_id\":k[\"clientid\"],\"client_secret\":k[\"clientsecret\"]}}).encode()))[\"access_token\"])')
  curl{cacert} -s -X POST {url}/destination-configuration/v1/subaccountDestinations -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"Name\":\"hello\",\"Type\":\"HTTP\",\"URL\":\"https://example.org\",\"Authentication\":\"NoAuthentication\"}}'
  curl{cacert} -s {url}/destination-configuration/v1/destinations/hello -H \"Authorization: Bearer $TOKEN\"
"
    );
}
