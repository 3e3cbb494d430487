//! The `signpost-proxy` binary: parses the command line, sets up logging and runs the proxy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Small allocations on every request: mimalloc's thread-local free lists serve them faster than
/// glibc's malloc (bench/README.md, `proxy`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use signpost_proxy::config::CredentialSource;

/// The transparent proxy of Signpost: plain HTTP from workloads in, the destination's URL with
/// its credentials out. Configured with SAP's transparent proxy Helm values.
#[derive(Debug, Parser)]
#[command(name = "signpost-proxy", version)]
struct Cli {
    /// The configuration file: SAP's Helm values tree (`config.integration.destinationService...`)
    /// plus a top-level `destinations:` list of routes.
    #[arg(long, env = "SIGNPOST_PROXY_CONFIG")]
    config: PathBuf,
    /// A second file of routes (`destinations:`), as the operator writes it; both lists are served.
    #[arg(long, env = "SIGNPOST_PROXY_ROUTES")]
    routes: Option<PathBuf>,
    /// Where workloads' HTTP requests arrive.
    #[arg(long, default_value = "127.0.0.1:8080", env = "SIGNPOST_PROXY_LISTEN")]
    listen: SocketAddr,
    /// The admin port: /healthz, /readyz, /metrics, /status.
    #[arg(
        long,
        default_value = "127.0.0.1:9494",
        env = "SIGNPOST_PROXY_ADMIN_LISTEN"
    )]
    admin_listen: SocketAddr,
    /// Secrets as Kubernetes mounts them: secret N of namespace NS in <DIR>/<NS>/<N>/, one file per key.
    #[arg(
        long,
        conflicts_with = "credentials_dir",
        env = "SIGNPOST_PROXY_SECRETS_DIR"
    )]
    secrets_dir: Option<PathBuf>,
    /// Ready-made service keys: <DIR>/<instance name>.json (written by the operator).
    #[arg(long, env = "SIGNPOST_PROXY_CREDENTIALS_DIR")]
    credentials_dir: Option<PathBuf>,
    /// The proxy's own namespace: secrets without secretNamespace are read from it.
    #[arg(long, default_value = "default", env = "SIGNPOST_PROXY_NAMESPACE")]
    namespace: String,
    /// Let destinations reach loopback, private and link-local addresses.
    #[arg(long, env = "SIGNPOST_ALLOW_PRIVATE_NETWORKS")]
    allow_private_networks: bool,
    /// How often the configuration file and the secrets are read again, in milliseconds.
    #[arg(
        long,
        default_value_t = 1000,
        env = "SIGNPOST_PROXY_RELOAD_INTERVAL_MS"
    )]
    reload_interval_ms: u64,
    /// How long requests in flight may take to finish after SIGTERM, in seconds.
    #[arg(
        long,
        default_value_t = 20,
        env = "SIGNPOST_PROXY_SHUTDOWN_GRACE_SECONDS"
    )]
    shutdown_grace_seconds: u64,
    /// Worker threads of the data plane, each with its own event loop and target connections
    /// (default: one per core).
    #[arg(long, env = "SIGNPOST_PROXY_WORKERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    /// When the configuration does not load at start, wait for it (the admin port answers
    /// /readyz 503 with the reason) instead of exiting: for files that another process writes,
    /// such as the operator's routes and credentials mounted on Kubernetes.
    #[arg(long, env = "SIGNPOST_PROXY_WAIT_FOR_CONFIG")]
    wait_for_config: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", env = "SIGNPOST_LOG_FORMAT")]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if cli.log_format == "json" {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let credentials = match (&cli.secrets_dir, &cli.credentials_dir) {
        (Some(dir), _) => CredentialSource::SecretsDir {
            dir: dir.clone(),
            namespace: cli.namespace.clone(),
        },
        (None, Some(dir)) => CredentialSource::CredentialsDir(dir.clone()),
        (None, None) => CredentialSource::None,
    };
    let options = signpost_proxy::Options {
        config: cli.config,
        routes: cli.routes,
        listen: cli.listen,
        admin_listen: cli.admin_listen,
        credentials,
        namespace: cli.namespace,
        allow_private_networks: cli.allow_private_networks,
        reload_interval: Duration::from_millis(cli.reload_interval_ms.max(100)),
        shutdown_grace: Duration::from_secs(cli.shutdown_grace_seconds),
        workers: cli
            .workers
            .map_or_else(signpost_proxy::workers::default_count, usize::from),
        wait_for_config: cli.wait_for_config,
    };
    // The control plane (accept loop, admin port, reloads, TCP routes); requests run on the
    // workers' own runtimes.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("signpost-proxy: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(signpost_proxy::run(options, std::future::pending())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signpost-proxy: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
