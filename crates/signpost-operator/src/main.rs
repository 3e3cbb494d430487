//! `signpost-operator --config FILE [--namespace NS] [--metrics-listen ADDR]`: the controller of
//! `Destination` resources. Cluster access from `KUBECONFIG` or the in-cluster service account.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use signpost_operator::controller::Bootstrap;
use signpost_operator::Options;

#[derive(Parser)]
#[command(
    name = "signpost-operator",
    version,
    about = "The Kubernetes operator of Destination resources: Services through signpost-proxy, its routes and credentials"
)]
struct Args {
    /// The values file: SAP's transparent-proxy Helm values tree, the same as the proxy's.
    #[arg(long, env = "SIGNPOST_OPERATOR_CONFIG")]
    config: PathBuf,
    /// The operator's (and the proxy's) namespace; default the pod's namespace.
    #[arg(long, env = "SIGNPOST_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// Address of /metrics and /healthz.
    #[arg(
        long,
        default_value = "0.0.0.0:9494",
        env = "SIGNPOST_OPERATOR_METRICS_LISTEN"
    )]
    metrics_listen: SocketAddr,
    /// Labels of the proxy's pods, which the Services made per resource select.
    #[arg(
        long,
        default_value = "app.kubernetes.io/name=signpost,app.kubernetes.io/component=proxy",
        env = "SIGNPOST_OPERATOR_PROXY_SELECTOR"
    )]
    proxy_selector: String,
    /// Base URL of an in-cluster Signpost server: instances without serviceCredentials get a
    /// service key bound over its broker API (SIGNPOST_BROKER_USER, SIGNPOST_BROKER_PASSWORD).
    #[arg(long, env = "SIGNPOST_OPERATOR_BOOTSTRAP_URL")]
    bootstrap_url: Option<String>,
    /// Seconds a Lease holds without renewal.
    #[arg(long, default_value_t = 15, env = "SIGNPOST_OPERATOR_LEASE_SECONDS", value_parser = clap::value_parser!(u64).range(3..=300))]
    lease_seconds: u64,
    /// How often the values file is read again, in milliseconds.
    #[arg(
        long,
        default_value_t = 2000,
        env = "SIGNPOST_OPERATOR_RELOAD_INTERVAL_MS"
    )]
    reload_interval_ms: u64,
    /// `text` or `json` log lines on stderr.
    #[arg(long, default_value = "text", env = "SIGNPOST_LOG_FORMAT")]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("signpost-operator: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    // A configuration that cannot work stops the operator with exit code 2 (as the proxy's).
    let checked = match check(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("signpost-operator: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(start(args, checked)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signpost-operator: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

/// What the flags say, checked before anything connects.
struct Checked {
    proxy_selector: std::collections::BTreeMap<String, String>,
    bootstrap: Option<Bootstrap>,
}

fn check(args: &Args) -> Result<Checked, String> {
    let proxy_selector = signpost_operator::parse_selector(&args.proxy_selector)
        .map_err(|e| format!("--proxy-selector: {e}"))?;
    // Fail fast on an unreadable or malformed values file.
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    signpost_operator::values::Values::parse(&text, &args.config.display().to_string())
        .map_err(|e| e.to_string())?;
    let bootstrap = match &args.bootstrap_url {
        Some(url) => {
            let need = || {
                "--bootstrap-url needs SIGNPOST_BROKER_USER and SIGNPOST_BROKER_PASSWORD".to_owned()
            };
            let user = std::env::var("SIGNPOST_BROKER_USER").map_err(|_| need())?;
            let password = std::env::var("SIGNPOST_BROKER_PASSWORD").map_err(|_| need())?;
            Some(Bootstrap {
                url: url.clone(),
                user,
                password: password.into(),
            })
        }
        None => None,
    };
    Ok(Checked {
        proxy_selector,
        bootstrap,
    })
}

async fn start(args: Args, checked: Checked) -> anyhow::Result<()> {
    let Checked {
        proxy_selector,
        bootstrap,
    } = checked;
    let config = kube::Config::infer().await?;
    let namespace = args
        .namespace
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("signpost-operator-{}", std::process::id()));
    let options = Options {
        config: args.config,
        namespace,
        metrics_listen: args.metrics_listen,
        proxy_selector,
        bootstrap,
        identity,
        lease_duration: Duration::from_secs(args.lease_seconds),
        reload_interval: Duration::from_millis(args.reload_interval_ms.max(100)),
    };
    signpost_operator::run(client, options, signpost_proxy::server::shutdown_signal()).await
}
