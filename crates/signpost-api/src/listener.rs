//! The HTTP listener of Signpost, and what it shares with the HTTPS one ([`crate::tls`]): one
//! connection slot per connection ([`Limits::connection_slot`], taken before `accept`, so
//! connections over the cap wait in the listen backlog until one ends), and HTTP/1.1 with the
//! header-read timeout ([`crate::LimitsConfig::header_timeout`]).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::task::JoinSet;

use crate::Limits;

/// Serves `app` on `listener` until `stop` turns true (or its sender is dropped); then stops
/// accepting, lets every connection finish the request it is on, and returns when all have
/// ended.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    while let Some((tcp, peer, slot)) = accept(&listener, &limits, &mut stop).await {
        while connections.try_join_next().is_some() {}
        let app = app.clone();
        let limits = limits.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            serve_connection(tcp, peer, app, &limits, Some(stop)).await;
            drop(slot);
        });
    }
    while connections.join_next().await.is_some() {}
}

/// The next connection with its slot, or `None` once `stop` turned true. Waits for a slot
/// first: while the cap is reached nothing is accepted.
pub(crate) async fn accept(
    listener: &TcpListener,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        slot = limits.connection_slot() => slot?,
        () = stopped(stop) => return None,
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => return Some((tcp, peer, slot)),
                Err(e) => accept_error(e).await,
            },
            () = stopped(stop) => return None,
        }
    }
}

/// Returns once `stop` is true or its sender is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// As hyper's and axum's servers: a connection that went away before it was accepted is
/// nothing; anything else (e.g. out of file descriptors) is logged and waited out.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection with HTTP/1.1 and the header-read timeout. With `stop`, the connection
/// is shut down gracefully (after the request it is on) when `stop` turns true.
pub(crate) async fn serve_connection<I, S>(
    io: I,
    peer: SocketAddr,
    service: S,
    limits: &Limits,
    stop: Option<watch::Receiver<bool>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.config().header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let result = match stop {
        None => conn.await,
        Some(mut stop) => tokio::select! {
            r = conn.as_mut() => r,
            () = stopped(&mut stop) => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        },
    };
    if let Err(e) = result {
        // A client that was too slow with its headers, or went away mid-request.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
