//! Listeners: the data plane (HTTP/1.1 with keep-alive and upgrades, HTTP/2 with prior
//! knowledge, on one port) and the admin port, with graceful shutdown: on SIGTERM or SIGINT the
//! listeners close, requests in flight finish (at most the grace period), then the process ends.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::state::Shared;
use crate::workers::Workers;

/// Serves `listener` with `handler` until `stop` resolves, then drains for at most `grace`.
/// With `workers`, each connection is served on the next worker thread (docs in `workers`);
/// without, on the calling runtime. With `lean` (the data plane, on workers), connections start
/// on the lean path (`lean`) and go to hyper with the first request it does not serve.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    stop: impl Future<Output = ()>,
    grace: Duration,
    name: &'static str,
    workers: Option<&Workers>,
    lean: Option<Arc<Shared>>,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<crate::body::ProxyBody>> + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // Tells connections on the lean path that the proxy is stopping (hyper's are told by
    // `graceful`); each holds a `graceful` watcher meanwhile, so that draining waits for them.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = name, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, std::convert::Infallible>(handler(req, peer).await) }
                });
                let watcher = graceful.watcher();
                let Some(workers) = workers else {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    let conn = watcher.watch(conn.into_owned());
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    continue;
                };
                // The socket moves to the worker's reactor: taken out of this one here, put into
                // the worker's there.
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(listener = name, "cannot hand a connection to a worker: {e}");
                        continue;
                    }
                };
                let builder = builder.clone();
                let lean = lean.clone();
                let mut stopping = stopping.clone();
                workers.spawn(move || async move {
                    let stream = match tokio::net::TcpStream::from_std(stream) {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(listener = name, "a worker cannot take a connection: {e}");
                            return;
                        }
                    };
                    let io = match lean {
                        Some(shared) => {
                            match crate::lean::serve(&shared, stream, peer, &mut stopping).await {
                                Some(rest) => rest,
                                None => return,
                            }
                        }
                        None => crate::lean::Replay::new(stream, bytes::Bytes::new()),
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    tracing::info!(listener = name, "draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(listener = name, "all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!(listener = name, "grace period over; closing the remaining connections"),
    }
}

/// A boxed response future of a handler.
pub type ResponseFuture =
    std::pin::Pin<Box<dyn Future<Output = hyper::Response<crate::body::ProxyBody>> + Send>>;

/// The data plane's handler.
pub fn proxy_handler(
    shared: Arc<Shared>,
) -> impl Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> ResponseFuture
       + Clone
       + Send
       + Sync
       + 'static {
    move |req, peer| Box::pin(crate::forward::handle(shared.clone(), req, peer)) as ResponseFuture
}

/// The admin port's handler.
pub fn admin_handler(
    shared: Arc<Shared>,
) -> impl Fn(hyper::Request<hyper::body::Incoming>, SocketAddr) -> ResponseFuture
       + Clone
       + Send
       + Sync
       + 'static {
    move |req, _peer| Box::pin(crate::admin::handle(shared.clone(), req)) as ResponseFuture
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
