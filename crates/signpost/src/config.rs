//! The server's configuration: every key a flag and a `SIGNPOST_*` variable (docs/CONFIG.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use signpost_certs::ca::SubjectAltName;

/// The longest audit retention (a hundred years).
const MAX_AUDIT_RETENTION_DAYS: u32 = 36_500;

/// A configuration the server refuses to start with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Clone, Args)]
pub struct StoreArgs {
    /// Directory for the SQLite database, the generated master key and broker credentials.
    #[arg(long, env = "SIGNPOST_DATA_DIR", default_value = "./signpost-data")]
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://<path>` (default `sqlite://<data-dir>/signpost.db`) or
    /// `postgres://user:password@host/db`.
    #[arg(long, env = "SIGNPOST_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Largest number of destinations, fragments or certificates per level and owner.
    #[arg(long, env = "SIGNPOST_MAX_ENTITIES", default_value_t = signpost_model::DEFAULT_MAX_ENTITIES)]
    pub max_entities: u32,
}

/// `signpost store copy`.
#[derive(Clone, Args)]
pub struct CopyArgs {
    /// The source database URL (`sqlite://...` or `postgres://...`).
    #[arg(long)]
    pub from: String,
    /// The target database URL; it must hold no instances or subaccounts yet.
    #[arg(long)]
    pub to: String,
    /// Where the master key file is, when `SIGNPOST_MASTER_KEY` is not set.
    #[arg(long, env = "SIGNPOST_DATA_DIR", default_value = "./signpost-data")]
    pub data_dir: PathBuf,
}

/// `signpost store backup`.
#[derive(Clone, Args)]
pub struct BackupArgs {
    /// The new file to write the snapshot to; it must not exist.
    #[arg(long)]
    pub to: PathBuf,
    /// The data directory of the server whose database is backed up.
    #[arg(long, env = "SIGNPOST_DATA_DIR", default_value = "./signpost-data")]
    pub data_dir: PathBuf,
    /// The SQLite database URL, when it is not `<data-dir>/signpost.db`.
    #[arg(long, env = "SIGNPOST_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// `signpost store restore`.
#[derive(Clone, Args)]
pub struct RestoreArgs {
    /// The backup file written by `signpost store backup`.
    #[arg(long)]
    pub from: PathBuf,
    /// The data directory to restore into; it must hold no database. The master key the backup
    /// was made under comes from `SIGNPOST_MASTER_KEY` or this directory's `master.key`.
    #[arg(long, env = "SIGNPOST_DATA_DIR", default_value = "./signpost-data")]
    pub data_dir: PathBuf,
    /// The SQLite database URL to restore to, when it is not `<data-dir>/signpost.db`.
    #[arg(long, env = "SIGNPOST_DATABASE_URL")]
    pub database_url: Option<String>,
}

/// A database URL without its password (`postgres://user:password@host/db` holds one) or
/// query (`?password=` is possible too): what `Debug` and messages may show.
pub fn redacted_database_url(url: &str) -> String {
    let without_query = url.split('?').next().unwrap_or_default();
    let redacted = match (
        without_query.split_once("://"),
        without_query.rsplit_once('@'),
    ) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://<redacted>@{host}"),
        _ => without_query.to_owned(),
    };
    if without_query.len() < url.len() {
        format!("{redacted}?<redacted>")
    } else {
        redacted
    }
}

impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redacted_database_url),
            )
            .field("max_entities", &self.max_entities)
            .finish()
    }
}

impl std::fmt::Debug for CopyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyArgs")
            .field("from", &redacted_database_url(&self.from))
            .field("to", &redacted_database_url(&self.to))
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl std::fmt::Debug for BackupArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupArgs")
            .field("to", &self.to)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redacted_database_url),
            )
            .finish()
    }
}

impl std::fmt::Debug for RestoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestoreArgs")
            .field("from", &self.from)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redacted_database_url),
            )
            .finish()
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address of the HTTP listener.
    #[arg(long, env = "SIGNPOST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Base URL written into service keys (`url`, `uri`); default `https://<tls-listen>` when the
    /// HTTPS listener runs, else `http://<listen>`.
    #[arg(long, env = "SIGNPOST_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Address of an HTTPS listener serving the same routes. Without --tls-cert/--tls-key its
    /// certificate comes from the built-in CA (written to `<data-dir>/ca.pem`), renewed
    /// automatically.
    #[arg(long, env = "SIGNPOST_TLS_LISTEN")]
    pub tls_listen: Option<String>,
    /// PEM certificate chain of the HTTPS listener (with --tls-key; instead of the built-in CA's).
    #[arg(long, env = "SIGNPOST_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the HTTPS listener.
    #[arg(long, env = "SIGNPOST_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Lifetime of the access tokens of the token service, in seconds.
    #[arg(long, env = "SIGNPOST_TOKEN_LIFETIME", default_value_t = 43_199)]
    pub token_lifetime: u64,
    /// Let token requests reach loopback, link-local and private addresses.
    #[arg(long, env = "SIGNPOST_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_networks: bool,
    /// Identity providers trusted for user tokens: `ISSUER=JWKS_URL` pairs, comma-separated.
    #[arg(long, env = "SIGNPOST_TRUSTED_ISSUERS")]
    pub trusted_issuers: Option<String>,
    /// Seconds between runs of the certificate job (renewal of generated certificates, expiry
    /// report of uploaded ones).
    #[arg(long, env = "SIGNPOST_RENEWAL_INTERVAL", default_value_t = 3600)]
    pub renewal_interval: u64,
    /// Do not create the default subaccount, instance and service key on an empty database.
    #[arg(long, env = "SIGNPOST_NO_BOOTSTRAP", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub no_bootstrap: bool,
    /// Log format: `text` or `json`.
    #[arg(long, env = "SIGNPOST_LOG_FORMAT", default_value = "text")]
    pub log_format: String,
    /// Days the audit log keeps an event; older events are deleted at start and every hour.
    #[arg(long, env = "SIGNPOST_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u32,
    /// Seconds a client may take to send a request's headers, on both listeners; an idle
    /// kept-alive connection is closed after as long.
    #[arg(long, env = "SIGNPOST_HEADER_TIMEOUT_SECONDS", default_value_t = signpost_api::DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout_seconds: u64,
    /// Seconds a request may take, body included (finds are bounded by their token flows' own
    /// timeouts instead); a 503 after that.
    #[arg(long, env = "SIGNPOST_REQUEST_TIMEOUT_SECONDS", default_value_t = signpost_api::DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_seconds: u64,
    /// Connections served at once over both listeners; further ones wait to be accepted.
    #[arg(long, env = "SIGNPOST_MAX_CONNECTIONS", default_value_t = signpost_api::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Mebibytes that the in-process caches hold together (entities, verified bearer tokens,
    /// destinations' tokens, page anchors).
    #[arg(long, env = "SIGNPOST_CACHE_MB", default_value_t = DEFAULT_CACHE_MB)]
    pub cache_mb: u64,
    /// Requests per second per client id on POST /oauth/token and per bearer token on the
    /// destination API (burst twice that); 0 turns the limit off.
    #[arg(long, env = "SIGNPOST_RATE_LIMIT", default_value_t = signpost_api::DEFAULT_RATE_LIMIT)]
    pub rate_limit: u32,
    /// Threads that serve requests (the async runtime's workers), 1 to 1024; default: one per
    /// core the process may use.
    #[arg(long, env = "SIGNPOST_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
}

/// The validated server configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub tls: Option<TlsConfig>,
    pub uaadomain: String,
    pub token_lifetime: u64,
    pub json_logs: bool,
    pub oauth: signpost_core::OAuthConfig,
    /// `https://<uaadomain>` when the HTTPS listener runs: the `certurl` of X.509 service keys.
    pub cert_url: Option<String>,
    pub audit_retention_days: u32,
    pub limits: signpost_api::LimitsConfig,
    pub cache: CacheBudget,
}

/// `SIGNPOST_CACHE_MB` unless set: 64 MiB.
pub const DEFAULT_CACHE_MB: u64 = 64;
/// Most `SIGNPOST_CACHE_MB`: 64 GiB.
const MAX_CACHE_MB: u64 = 65_536;

/// `SIGNPOST_CACHE_MB` shared out, in bytes: half for entities (the find path), three
/// sixteenths each for verified bearer tokens and destinations' tokens, an eighth for page
/// anchors. At 64 MiB: 32, 12, 12 and 8 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    pub entities: u64,
    pub principals: u64,
    pub tokens: u64,
    pub page_anchors: u64,
}

impl CacheBudget {
    pub fn of_mib(mib: u64) -> Self {
        let total = mib.saturating_mul(1024 * 1024);
        let sixteenth = total / 16;
        Self {
            entities: total / 2,
            principals: sixteenth * 3,
            tokens: sixteenth * 3,
            page_anchors: total / 8,
        }
    }

    /// All together.
    pub fn total(&self) -> u64 {
        self.entities + self.principals + self.tokens + self.page_anchors
    }
}

impl Default for CacheBudget {
    fn default() -> Self {
        Self::of_mib(DEFAULT_CACHE_MB)
    }
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    pub certificate: TlsCertificate,
}

/// Where the HTTPS listener's certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsCertificate {
    /// `--tls-cert` and `--tls-key`: PEM files.
    Files { cert: PathBuf, key: PathBuf },
    /// Issued by the built-in CA for these names, renewed before it expires.
    BuiltIn { names: Vec<SubjectAltName> },
}

/// The names a built-in server certificate is valid for: the public URL's host (and its
/// subdomains, for tenant token URLs, when it is a DNS name of two labels or more), the TLS
/// listener's address when it is a specific one, `localhost`, `127.0.0.1` and `::1`.
fn server_names(public_url: &str, listen: SocketAddr) -> Result<Vec<SubjectAltName>, ConfigError> {
    let mut names = Vec::new();
    if let Some(host) = url_host(public_url).map(host_without_port) {
        let name = SubjectAltName::from_host(host)
            .map_err(|e| ConfigError(format!("--public-url '{public_url}': {e}")))?;
        if let SubjectAltName::Dns(dns) = &name {
            if dns.contains('.') {
                names.push(name.clone());
                names.push(SubjectAltName::Dns(format!("*.{dns}")));
            }
        }
        names.push(name);
    }
    if !listen.ip().is_unspecified() {
        names.push(SubjectAltName::Ip(listen.ip()));
    }
    names.extend([
        SubjectAltName::Dns("localhost".into()),
        SubjectAltName::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
        SubjectAltName::Ip(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    let mut unique: Vec<SubjectAltName> = Vec::with_capacity(names.len());
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// `host` of `host[:port]`, an IPv6 literal keeping its brackets.
fn host_without_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || (h.starts_with('[') && h.ends_with(']'))) =>
        {
            h
        }
        _ => host,
    }
}

fn addr(flag: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError(format!(
            "{flag} '{value}' is not an address such as 127.0.0.1:8080"
        ))
    })
}

/// `host[:port]` of a URL (for `uaadomain`).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split('/').next()?;
    (!host.is_empty()).then_some(host)
}

impl ServeArgs {
    pub fn validate(&self) -> Result<ServeConfig, ConfigError> {
        let listen = addr("--listen", &self.listen)?;
        let tls_listen = self
            .tls_listen
            .as_deref()
            .map(|l| addr("--tls-listen", l))
            .transpose()?;
        let public_url = match &self.public_url {
            Some(u) => {
                let u = u.trim_end_matches('/').to_owned();
                if !(u.starts_with("http://") || u.starts_with("https://"))
                    || url_host(&u).is_none()
                {
                    return Err(ConfigError(format!(
                        "--public-url '{u}' must be an http:// or https:// URL"
                    )));
                }
                u
            }
            None => match tls_listen {
                Some(l) if l.ip().is_unspecified() => format!("https://localhost:{}", l.port()),
                Some(l) => format!("https://{l}"),
                None => format!("http://{listen}"),
            },
        };
        let tls = match (tls_listen, &self.tls_cert, &self.tls_key) {
            (None, None, None) => None,
            (Some(listen), Some(cert), Some(key)) => Some(TlsConfig {
                listen,
                certificate: TlsCertificate::Files {
                    cert: cert.clone(),
                    key: key.clone(),
                },
            }),
            (Some(listen), None, None) => Some(TlsConfig {
                listen,
                certificate: TlsCertificate::BuiltIn {
                    names: server_names(&public_url, listen)?,
                },
            }),
            (None, _, _) => {
                return Err(ConfigError(
                    "--tls-cert and --tls-key need --tls-listen, the address of the HTTPS listener"
                        .into(),
                ))
            }
            _ => {
                return Err(ConfigError(
                    "--tls-cert and --tls-key go together: give both, or neither for a certificate from the built-in CA"
                        .into(),
                ))
            }
        };
        let uaadomain = match &tls {
            Some(t) if !t.listen.ip().is_unspecified() => t.listen.to_string(),
            Some(t) => {
                let host = url_host(&public_url).unwrap_or("localhost");
                let host = host
                    .rsplit_once(':')
                    .map(|(h, _)| h)
                    .filter(|h| !h.ends_with(']') || h.starts_with('['))
                    .unwrap_or(host);
                format!("{host}:{}", t.listen.port())
            }
            None => url_host(&public_url).unwrap_or_default().to_owned(),
        };
        if self.token_lifetime < 60 || self.token_lifetime > 7 * 24 * 3600 {
            return Err(ConfigError(
                "--token-lifetime must be from 60 to 604800 seconds".into(),
            ));
        }
        let json_logs = match self.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError(format!(
                    "--log-format '{other}' must be text or json"
                )))
            }
        };
        if self.store.max_entities == 0 {
            return Err(ConfigError(
                "SIGNPOST_MAX_ENTITIES must be at least 1".into(),
            ));
        }
        let trusted_issuers = match &self.trusted_issuers {
            None => Vec::new(),
            Some(t) => signpost_core::parse_trusted_issuers(t)
                .map_err(|e| ConfigError(format!("SIGNPOST_TRUSTED_ISSUERS: {e}")))?,
        };
        if !(1..=MAX_CACHE_MB).contains(&self.cache_mb) {
            return Err(ConfigError(format!(
                "SIGNPOST_CACHE_MB must be from 1 to {MAX_CACHE_MB} mebibytes"
            )));
        }
        let cache = CacheBudget::of_mib(self.cache_mb);
        let oauth = signpost_core::OAuthConfig {
            allow_private_networks: self.allow_private_networks,
            trusted_issuers,
            cache_bytes: cache.tokens,
        };
        if !(1..=MAX_AUDIT_RETENTION_DAYS).contains(&self.audit_retention_days) {
            return Err(ConfigError(format!(
                "SIGNPOST_AUDIT_RETENTION_DAYS must be from 1 to {MAX_AUDIT_RETENTION_DAYS} days"
            )));
        }
        let limits = self.limits()?;
        let cert_url = tls.as_ref().map(|_| format!("https://{uaadomain}"));
        Ok(ServeConfig {
            cert_url,
            listen,
            public_url,
            tls,
            uaadomain,
            token_lifetime: self.token_lifetime,
            json_logs,
            oauth,
            audit_retention_days: self.audit_retention_days,
            limits,
            cache,
        })
    }

    fn limits(&self) -> Result<signpost_api::LimitsConfig, ConfigError> {
        let seconds = |name: &str, value: u64, max: u64| {
            if value == 0 || value > max {
                return Err(ConfigError(format!(
                    "{name} must be from 1 to {max} seconds, not {value}"
                )));
            }
            Ok(std::time::Duration::from_secs(value))
        };
        if self.max_connections == 0 || self.max_connections > 1_000_000 {
            return Err(ConfigError(format!(
                "SIGNPOST_MAX_CONNECTIONS must be from 1 to 1000000, not {}",
                self.max_connections
            )));
        }
        Ok(signpost_api::LimitsConfig {
            header_timeout: seconds(
                "SIGNPOST_HEADER_TIMEOUT_SECONDS",
                self.header_timeout_seconds,
                3600,
            )?,
            request_timeout: seconds(
                "SIGNPOST_REQUEST_TIMEOUT_SECONDS",
                self.request_timeout_seconds,
                86_400,
            )?,
            max_connections: self.max_connections,
            rate_limit: self.rate_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        a: ServeArgs,
    }

    /// The flags as `serve` reads them, before validation.
    fn args(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).map(|t| t.a)
    }

    fn parse(args: &[&str]) -> Result<ServeConfig, ConfigError> {
        self::args(args)
            .map_err(|e| ConfigError(e.to_string()))?
            .validate()
    }

    #[test]
    fn defaults_and_errors() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.uaadomain, "127.0.0.1:8080");
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--tls-cert", "c", "--tls-key", "k"]).is_err());
        assert!(parse(&["--tls-listen", "127.0.0.1:8443", "--tls-cert", "c"]).is_err());
        assert!(parse(&["--tls-listen", "127.0.0.1:8443", "--tls-key", "k"]).is_err());
        assert!(parse(&["--public-url", "ftp://x"]).is_err());
        let c = parse(&[
            "--tls-listen",
            "127.0.0.1:8443",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .unwrap();
        assert_eq!(c.uaadomain, "127.0.0.1:8443");
        let c = parse(&[
            "--public-url",
            "https://dest.example.com/",
            "--tls-listen",
            "0.0.0.0:8443",
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ])
        .unwrap();
        assert_eq!(c.public_url, "https://dest.example.com");
        assert_eq!(c.uaadomain, "dest.example.com:8443");
    }

    #[test]
    fn built_in_certificate_names() {
        let names = |c: &ServeConfig| match &c.tls.as_ref().unwrap().certificate {
            TlsCertificate::BuiltIn { names } => {
                names.iter().map(ToString::to_string).collect::<Vec<_>>()
            }
            TlsCertificate::Files { .. } => panic!("files"),
        };
        let c = parse(&["--tls-listen", "127.0.0.1:8443"]).unwrap();
        assert_eq!(c.public_url, "https://127.0.0.1:8443");
        assert_eq!(c.uaadomain, "127.0.0.1:8443");
        assert_eq!(c.cert_url.as_deref(), Some("https://127.0.0.1:8443"));
        assert_eq!(names(&c), ["IP:127.0.0.1", "DNS:localhost", "IP:::1"]);

        let c = parse(&["--tls-listen", "0.0.0.0:8443"]).unwrap();
        assert_eq!(c.public_url, "https://localhost:8443");
        assert_eq!(names(&c), ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]);

        let c = parse(&[
            "--public-url",
            "https://Dest.Example.com:8443/",
            "--tls-listen",
            "0.0.0.0:8443",
        ])
        .unwrap();
        assert_eq!(
            names(&c),
            [
                "DNS:dest.example.com",
                "DNS:*.dest.example.com",
                "DNS:localhost",
                "IP:127.0.0.1",
                "IP:::1"
            ]
        );
        let c = parse(&[
            "--public-url",
            "https://[::1]:8443",
            "--tls-listen",
            "[::1]:8443",
        ])
        .unwrap();
        assert_eq!(names(&c), ["IP:::1", "DNS:localhost", "IP:127.0.0.1"]);
        // A public URL whose host no certificate can name.
        assert!(parse(&[
            "--public-url",
            "https://bad_host",
            "--tls-listen",
            "127.0.0.1:8443"
        ])
        .is_err());
        // Without the HTTPS listener nothing changes.
        assert_eq!(parse(&[]).unwrap().public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn the_cache_budget_is_shared_out() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.cache, CacheBudget::of_mib(64));
        assert_eq!(c.cache.total(), 64 * 1024 * 1024);
        assert_eq!(c.cache.entities, 32 * 1024 * 1024);
        assert_eq!(c.oauth.cache_bytes, 12 * 1024 * 1024);
        let c = parse(&["--cache-mb", "16"]).unwrap();
        assert_eq!(c.cache.total(), 16 * 1024 * 1024);
        for bad in ["0", "65537", "-1", "lots"] {
            assert!(parse(&["--cache-mb", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn worker_threads_are_one_to_1024_or_one_per_core() {
        let threads = |a: &[&str]| args(a).map(|a| a.worker_threads);
        assert_eq!(threads(&[]).unwrap(), None);
        assert_eq!(threads(&["--worker-threads", "1"]).unwrap(), Some(1));
        assert_eq!(threads(&["--worker-threads", "1024"]).unwrap(), Some(1024));
        for bad in ["0", "1025", "-1", "many"] {
            assert!(threads(&["--worker-threads", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn audit_retention() {
        assert_eq!(parse(&[]).unwrap().audit_retention_days, 90);
        let c = parse(&["--audit-retention-days", "7"]).unwrap();
        assert_eq!(c.audit_retention_days, 7);
        for bad in ["0", "36501", "-1", "x"] {
            assert!(
                parse(&["--audit-retention-days", bad]).is_err(),
                "{bad} is refused"
            );
        }
    }

    #[test]
    fn database_urls_lose_their_passwords() {
        for (url, shown) in [
            (
                "postgres://u:pw-9@db:5432/sp",
                "postgres://<redacted>@db:5432/sp",
            ),
            (
                "postgres://db/sp?password=pw-9",
                "postgres://db/sp?<redacted>",
            ),
            ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ] {
            assert_eq!(redacted_database_url(url), shown);
        }
    }

    #[test]
    fn limits_defaults_flags_and_refusals() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.limits, signpost_api::LimitsConfig::default());
        let c = parse(&[
            "--header-timeout-seconds",
            "3",
            "--request-timeout-seconds",
            "7",
            "--max-connections",
            "9",
            "--rate-limit",
            "0",
        ])
        .unwrap();
        assert_eq!(
            c.limits,
            signpost_api::LimitsConfig {
                header_timeout: std::time::Duration::from_secs(3),
                request_timeout: std::time::Duration::from_secs(7),
                max_connections: 9,
                rate_limit: 0,
            }
        );
        for bad in [
            ["--header-timeout-seconds", "0"],
            ["--request-timeout-seconds", "0"],
            ["--max-connections", "0"],
            ["--rate-limit", "-1"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
    }
}
