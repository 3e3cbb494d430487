//! Slow clients for the tests of the server limits: a request sent a few bytes at a time over a
//! raw connection (plain TCP or TLS), and what the server did meanwhile: cut the connection off,
//! answer, or wait.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

/// What happened to a trickled request.
#[derive(Debug)]
pub struct Trickled {
    /// How many of the pieces were sent before the server closed or answered.
    pub pieces_sent: usize,
    /// The server closed the connection (or reset it) before all pieces were sent.
    pub closed: bool,
    /// Everything the server sent.
    pub received: Vec<u8>,
}

impl Trickled {
    /// The status of the response the server sent, if it sent one.
    pub fn status(&self) -> Option<u16> {
        let text = String::from_utf8_lossy(&self.received);
        text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    /// The response body (after the head), as text.
    pub fn body(&self) -> String {
        let text = String::from_utf8_lossy(&self.received);
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    }
}

/// Sends `start`, then `piece` every `every`, at most `pieces` times, and stops early when the
/// server closes the connection or answers (a response head arrived).
pub async fn trickle<S>(
    stream: S,
    start: &[u8],
    piece: &[u8],
    pieces: usize,
    every: Duration,
) -> Trickled
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let mut reader = tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    let answered = |r: &Arc<Mutex<Vec<u8>>>| r.lock().unwrap().windows(4).any(|w| w == b"\r\n\r\n");
    let mut sent = 0;
    let mut closed = wr.write_all(start).await.is_err();
    while !closed && sent < pieces {
        if reader.is_finished() {
            closed = true;
            break;
        }
        if answered(&received) {
            break;
        }
        tokio::time::sleep(every).await;
        if wr.write_all(piece).await.is_err() || wr.flush().await.is_err() {
            closed = true;
            break;
        }
        sent += 1;
    }
    if answered(&received) {
        // The rest of the response, and the close that follows a response to a request whose
        // body was not read.
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut reader).await;
    }
    closed |= reader.is_finished() && sent < pieces;
    reader.abort();
    let received = received.lock().unwrap().clone();
    Trickled {
        pieces_sent: sent,
        closed,
        received,
    }
}

/// A TLS connection to `addr` trusting the CA in `ca_pem`, for the name 127.0.0.1 (the
/// certificate of `signpost_test_utils::TestApp`'s HTTPS listener).
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap()
}
