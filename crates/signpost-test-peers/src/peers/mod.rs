//! Real upstream peers for the proxy's tests, each on `127.0.0.1:<free port>`:
//!
//! - [`EchoServer`]: hyper 1 (HTTP/1.1 with keep-alive, and h2c), answers every request with a
//!   JSON description of what it received (the body hashed as it streams in), plus
//!   `/bytes/<n>`, `/status/<code>`, `/slow/<ms>` and a WebSocket echo;
//! - [`TcpEcho`]: a plain TCP echo (for `Type: TCP` destinations);
//! - [`ForwardProxy`]: an HTTP forward proxy standing in for SAP's Connectivity Proxy
//!   (absolute-form requests forwarded, `CONNECT` tunnelled), recording what it was sent;
//! - [`ws_echo_roundtrip`] / [`ws_roundtrip`]: a WebSocket client that connects to one address
//!   with another `Host` header (the proxy's), sends one message and returns the answer.
//!
//! Every peer runs on a thread of its own with a current-thread tokio runtime, so it serves
//! whatever the test's runtime is doing (and from tests without one). Dropping it stops it:
//! the listener is closed and every open connection dropped before `drop` returns.
//!
//! ```ignore
//! let echo = EchoServer::start().await;
//! let body: Value = reqwest::get(format!("{}/x?a=1", echo.url())).await?.json().await?;
//! assert_eq!(body["query"], "a=1");
//! assert_eq!(echo.connections(), 1);
//! ```

mod echo;
mod forward_proxy;
mod tcp_echo;
mod ws;

use std::future::Future;
use std::net::SocketAddr;

pub use echo::{pattern_byte, EchoServer, BYTES_CHUNK};
pub use forward_proxy::{ForwardProxy, SeenRequest};
pub use tcp_echo::TcpEcho;
pub use ws::{ws_echo_roundtrip, ws_roundtrip, WS_REQUEST_MESSAGE};

/// A peer's thread: its runtime runs `serve` until the peer is dropped.
#[derive(Debug)]
struct PeerThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Binds `127.0.0.1:0` and runs `serve(listener)` on a new thread with its own current-thread
/// runtime, until the returned handle is dropped. Dropping the runtime at the end of the thread
/// drops every task `serve` spawned, so open connections are closed too.
fn spawn_peer<F, Fut>(name: &str, serve: F) -> (SocketAddr, PeerThread)
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("local addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("{name}-{}", addr.port()))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("peer runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).expect("tokio listener");
                tokio::select! {
                    () = serve(listener) => {}
                    _ = rx => {}
                }
            });
            // `rt` is dropped here: every connection task goes with it.
        })
        .expect("spawn peer thread");
    (
        addr,
        PeerThread {
            stop: Some(tx),
            thread: Some(thread),
        },
    )
}

impl Drop for PeerThread {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
