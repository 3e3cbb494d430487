//! `signpost-operator`: the Kubernetes controller of `Destination` resources (SAP's transparent
//! proxy's, PROXY.md §2). For each resource it checks the referenced destination through the
//! Destination service (with the typed `signpost-client`, over HTTP only), sets the `Available`
//! condition with SAP's reasons, makes `http://<name>.<namespace>` reach the proxy, and writes the
//! proxy's routes and service keys into a ConfigMap and a Secret of its own namespace, so that the
//! proxy needs no access to the Kubernetes API. It never touches a database.
#![forbid(unsafe_code)]

pub mod checks;
pub mod controller;
pub mod crd;
pub mod lease;
pub mod metrics;
pub mod values;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use http_body_util::Full;
use hyper::body::Bytes;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, WatchStreamExt as _};
use kube::{Api, Client};

use controller::{Bootstrap, Context};

/// Everything `signpost-operator` is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The values file (the proxy's, SAP's Helm values tree).
    pub config: PathBuf,
    /// The operator's namespace (the proxy's).
    pub namespace: String,
    pub metrics_listen: SocketAddr,
    /// Labels of the proxy's pods, which the Services select.
    pub proxy_selector: BTreeMap<String, String>,
    pub bootstrap: Option<Bootstrap>,
    /// This replica's name in the Lease and in Events.
    pub identity: String,
    pub lease_duration: Duration,
    /// How often the values file is read again.
    pub reload_interval: Duration,
}

/// Parses `key=value,key=value` (a label selector of equalities).
pub fn parse_selector(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not key=value"))?;
        if k.is_empty() {
            return Err(format!("'{part}' has an empty key"));
        }
        labels.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    if labels.is_empty() {
        return Err("the proxy selector is empty".into());
    }
    Ok(labels)
}

/// Serves `/metrics` and `/healthz`, waits for the Lease, then runs the controller until
/// `shutdown` (or until the Lease is lost: then an error, so that the process starts over).
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.metrics_listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");

    let controller = controller::controller(client.clone());
    let reporter = Reporter {
        controller: controller::MANAGER.into(),
        instance: Some(options.identity.clone()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        options.namespace.clone(),
        options.proxy_selector.clone(),
        options.config.clone(),
        options.bootstrap.clone(),
        Recorder::new(client.clone(), reporter),
        controller.store(),
    ));
    tokio::spawn(serve_metrics(listener, ctx.metrics.clone()));

    let lock = lease::LeaseLock::new(
        client.clone(),
        &options.namespace,
        options.identity.clone(),
        options.lease_duration,
    );
    lock.acquire().await;
    ctx.metrics.set_leader(true);
    tracing::info!(identity = lock.identity(), "leading");

    // The values file is read before the first reconcile and every reload interval; a change, or
    // a change of a Secret it names, checks every resource again at once.
    ctx.reread_values().await;
    let (tx, rx) = futures::channel::mpsc::unbounded::<()>();
    {
        let ctx = ctx.clone();
        let tx = tx.clone();
        let every = options.reload_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if ctx.reread_values().await {
                    tracing::info!("values changed: checking every resource");
                    if tx.unbounded_send(()).is_err() {
                        return;
                    }
                }
            }
        });
    }
    {
        let ctx = ctx.clone();
        let secrets: Api<PartialObjectMeta<Secret>> = Api::all(client.clone());
        tokio::spawn(async move {
            // Metadata only: the operator reads a Secret's data when it resolves, not from the
            // watch, and only for the Secrets the values name.
            let stream = watcher(secrets, watcher::Config::default().any_semantic())
                .default_backoff()
                .touched_objects();
            futures::pin_mut!(stream);
            let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
            while let Some(item) = stream.next().await {
                let Ok(meta) = item else { continue };
                let key = (
                    meta.metadata.namespace.clone().unwrap_or_default(),
                    meta.metadata.name.clone().unwrap_or_default(),
                );
                if !ctx.secret_refs().await.contains(&key) {
                    continue;
                }
                let version = meta.metadata.resource_version.clone().unwrap_or_default();
                // The first sight of a referenced Secret (the watch's initial list, or a Secret
                // the values newly name, which resolves them again anyway) is no change.
                let changed = matches!(seen.insert(key.clone(), version.clone()), Some(before) if before != version);
                if changed {
                    tracing::info!(secret = %format!("{}/{}", key.0, key.1), "referenced Secret changed: checking every resource");
                    ctx.invalidate().await;
                    if tx.unbounded_send(()).is_err() {
                        return;
                    }
                }
            }
        });
    }
    // The routes ConfigMap and the credentials Secret exist from the start, so that the proxy
    // finds its files before the first resource is checked.
    ctx.seed_routes().await?;
    ctx.write_routes().await?;
    ctx.prime().await?;
    {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if ctx.store.wait_until_ready().await.is_ok() {
                ctx.set_listed();
            }
        });
    }

    let lost = {
        let lock = lock.clone();
        async move { lock.hold().await }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopper = async move {
        let _ = stop_rx.await;
    };
    let run = controller::run(ctx.clone(), controller, rx, stopper);
    tokio::pin!(run);
    tokio::pin!(shutdown);
    tokio::pin!(lost);
    tokio::select! {
        () = &mut run => Ok(()),
        () = &mut shutdown => {
            let _ = stop_tx.send(());
            run.await;
            Ok(())
        }
        () = &mut lost => {
            ctx.metrics.set_leader(false);
            let _ = stop_tx.send(());
            run.await;
            anyhow::bail!("lost the Lease {}", lease::LEASE_NAME)
        }
    }
}

async fn serve_metrics(listener: tokio::net::TcpListener, metrics: metrics::Metrics) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let metrics = metrics.clone();
                    async move {
                        let (status, body, kind) = match req.uri().path() {
                            "/metrics" => (200, metrics.render(), metrics::CONTENT_TYPE),
                            "/healthz" | "/readyz" => {
                                (200, "{\"status\":\"ok\"}".to_owned(), "application/json")
                            }
                            _ => (
                                404,
                                "{\"error\":\"not found\"}".to_owned(),
                                "application/json",
                            ),
                        };
                        let res = hyper::Response::builder()
                            .status(status)
                            .header("content-type", kind)
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default();
                        Ok::<_, Infallible>(res)
                    }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
