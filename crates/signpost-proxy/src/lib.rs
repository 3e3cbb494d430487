//! `signpost-proxy`: the transparent proxy. Workloads call `http://<name>.<namespace>/path` in
//! plain HTTP; the proxy finds the route of that `Host` (a `Destination` resource's spec, from
//! its configuration file), resolves the destination through a Destination service (Signpost's
//! or SAP's, over HTTP only, with the typed `signpost-client`), injects its credentials and
//! forwards the call, streaming bodies both ways. Configured like SAP's transparent proxy (its
//! Helm values, PROXY.md §4), reloaded on change. Must not depend on the store, the API crate or
//! any database: it is a client of the Destination service and nothing else.
#![forbid(unsafe_code)]

pub mod admin;
pub mod body;
pub mod config;
pub mod direct;
pub mod egress;
pub mod error;
pub mod forward;
pub(crate) mod lean;
pub mod metrics;
pub mod resolve;
pub mod routing;
pub mod secrets;
pub mod server;
pub mod state;
pub mod tcp;
pub mod workers;

/// The lean path's reading of a target's answer, for the fuzz target `proxy_answer` and the
/// bench `answer_head` (which parses into as many header slots for its reference).
#[doc(hidden)]
pub use lean::{read_answer, AnswerSeen, ChunkedEnd, Framing, MAX_HEADERS};

use std::net::SocketAddr;
use std::path::PathBuf;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use state::{Shared, Sources};

/// Everything `signpost-proxy` is started with.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub routes: Option<PathBuf>,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub credentials: config::CredentialSource,
    pub namespace: String,
    pub allow_private_networks: bool,
    /// How often the files are read again.
    pub reload_interval: Duration,
    /// How long requests in flight may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Worker threads of the data plane (at least one).
    pub workers: usize,
    /// When the configuration does not load at start (on Kubernetes: the operator has not yet
    /// written the routes and credentials that are mounted), wait for it instead of exiting:
    /// the admin port answers `/healthz` 200 and `/readyz` 503 with the reason meanwhile.
    pub wait_for_config: bool,
}

/// Loads the configuration (failing fast, unless `wait_for_config`), opens the listeners, serves until SIGTERM or SIGINT
/// (or `stop`), and drains.
pub async fn run(
    options: Options,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let shared = load(&options).await?;
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.listen))?;
    let admin = TcpListener::bind(options.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.admin_listen))?;
    let snapshot = shared.snapshot();
    tracing::info!(
        listen = %listener.local_addr()?,
        admin = %admin.local_addr()?,
        routes = snapshot.routes.routes().len(),
        instances = snapshot.clients.len(),
        "signpost-proxy is serving"
    );
    drop(snapshot);
    shared.watch(options.reload_interval);
    tcp::watch(&shared, options.listen.ip(), Duration::from_secs(30));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            () = server::shutdown_signal() => {},
            () = stop => {},
        }
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin_task = tokio::spawn(server::serve(
        admin,
        server::admin_handler(shared.clone()),
        stopped(stop_rx.clone()),
        Duration::from_secs(1),
        "admin",
        None,
        None,
    ));
    let workers = workers::Workers::start(options.workers)
        .map_err(|e| anyhow::anyhow!("cannot start the proxy's worker threads: {e}"))?;
    server::serve(
        listener,
        server::proxy_handler(shared.clone()),
        stopped(stop_rx),
        options.shutdown_grace,
        "proxy",
        Some(&workers),
        Some(shared.clone()),
    )
    .await;
    // Drained (or the grace period is over): what still runs on the workers ends with them.
    let _ = tokio::task::spawn_blocking(move || workers.stop()).await;
    shared.tcp.close();
    let _ = admin_task.await;
    Ok(())
}

/// The configuration, loaded; with `wait_for_config` tried again every reload interval while a
/// small admin server says why the proxy is not ready.
async fn load(options: &Options) -> anyhow::Result<Arc<Shared>> {
    let attempt = || {
        Shared::load(
            Sources {
                config: options.config.clone(),
                routes: options.routes.clone(),
                credentials: options.credentials.clone(),
                namespace: options.namespace.clone(),
            },
            options.allow_private_networks,
            options.workers.max(1),
        )
    };
    let first = match attempt() {
        Ok(shared) => return Ok(shared),
        Err(e) if !options.wait_for_config => return Err(anyhow::anyhow!("{e}")),
        Err(e) => e.to_string(),
    };
    tracing::warn!("waiting for the configuration: {first}");
    let reason = Arc::new(std::sync::RwLock::new(first));
    let admin = TcpListener::bind(options.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", options.admin_listen))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let waiting = {
        let reason = reason.clone();
        let handler = move |req: hyper::Request<hyper::body::Incoming>, _peer| {
            let reason = reason
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            Box::pin(async move { admin::waiting(req.uri().path(), &reason) })
                as server::ResponseFuture
        };
        tokio::spawn(server::serve(
            admin,
            handler,
            async move {
                let _ = stop_rx.await;
            },
            Duration::from_millis(100),
            "admin",
            None,
            None,
        ))
    };
    let shared = loop {
        tokio::time::sleep(options.reload_interval).await;
        match attempt() {
            Ok(shared) => break shared,
            Err(e) => {
                let text = e.to_string();
                let mut current = reason
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *current != text {
                    tracing::warn!("waiting for the configuration: {text}");
                    *current = text;
                }
            }
        }
    };
    tracing::info!("configuration loaded");
    let _ = stop_tx.send(());
    let _ = waiting.await;
    Ok(shared)
}
