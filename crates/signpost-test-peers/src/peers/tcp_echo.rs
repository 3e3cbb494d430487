//! [`TcpEcho`]: a plain TCP echo server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::{spawn_peer, PeerThread};

/// A TCP server on `127.0.0.1:<free port>` that writes back every byte it reads, until the
/// client shuts down its side (then it closes its own). Stopped on drop.
#[derive(Debug)]
pub struct TcpEcho {
    pub addr: SocketAddr,
    pub port: u16,
    connections: Arc<AtomicU64>,
    _thread: PeerThread,
}

impl TcpEcho {
    /// Starts the server; it accepts connections when this returns.
    pub fn start() -> TcpEcho {
        let connections = Arc::new(AtomicU64::new(0));
        let c = connections.clone();
        let (addr, thread) = spawn_peer("tcp-echo", move |listener| async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        TcpEcho {
            addr,
            port: addr.port(),
            connections,
            _thread: thread,
        }
    }

    /// `tcp://127.0.0.1:<port>` (the bare `host:port` is `addr.to_string()`).
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}
