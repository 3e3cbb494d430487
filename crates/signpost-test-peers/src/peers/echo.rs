//! [`EchoServer`]: an HTTP upstream that tells the test what it received.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{spawn_peer, PeerThread};

/// Size of the chunks of `/bytes/<n>`.
pub const BYTES_CHUNK: usize = 64 * 1024;

/// Byte `i` of every `/bytes/<n>` body: `i % 251` (a prime, so chunk boundaries never line up
/// with the pattern).
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

pub(super) type EchoBody = BoxBody<Bytes, Infallible>;

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    connections: AtomicU64,
}

/// An HTTP upstream on `127.0.0.1:<free port>` (HTTP/1.1 with keep-alive and h2c, hyper 1);
/// stopped on drop. Routes, for any method:
///
/// - `/bytes/<n>`: `n` bytes (byte `i` = [`pattern_byte`]`(i)`) streamed in [`BYTES_CHUNK`]
///   chunks with `Content-Length`; with `?chunked=1` without it (chunked on HTTP/1.1);
/// - `/status/<code>`: that status, header `x-upstream: echo`, a small text body;
/// - `/slow/<ms>`: the echo JSON below, after that many milliseconds;
/// - a `GET` with `Upgrade: websocket` (any path): upgraded (101, `Sec-WebSocket-Accept` per
///   RFC 6455, the first offered `Sec-WebSocket-Protocol` chosen), then every text or binary
///   message is sent back; the text message [`super::WS_REQUEST_MESSAGE`] is answered with the
///   echo JSON of the upgrade request instead;
/// - anything else: `200`, `application/json`:
///   `{"method", "uri", "path", "query" (null when none), "headers": {name: [values…]},
///   "body_len", "body_sha256" (hex), "version" ("HTTP/1.1", "HTTP/2.0")}`.
///
/// Every request body is read as it streams in (hashed and counted, never kept whole) before the
/// answer, on every route.
#[derive(Debug)]
pub struct EchoServer {
    pub addr: SocketAddr,
    pub port: u16,
    counters: Arc<Counters>,
    _thread: PeerThread,
}

impl EchoServer {
    /// Starts the server and returns once it accepts connections.
    pub async fn start() -> EchoServer {
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let (addr, thread) = spawn_peer("echo-server", move |listener| serve(listener, c));
        EchoServer {
            addr,
            port: addr.port(),
            counters,
            _thread: thread,
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far (WebSocket upgrades included).
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far: fewer than [`Self::requests`] proves keep-alive reuse.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::SeqCst)
    }
}

async fn serve(listener: tokio::net::TcpListener, counters: Arc<Counters>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or the like: do not spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        let counters = counters.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let counters = counters.clone();
                async move { Ok::<_, Infallible>(handle(req, &counters).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn full(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<EchoBody> {
    let mut res = Response::new(Full::new(body.into()).boxed());
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("content type"),
    );
    res
}

/// The JSON description of a request (without its body figures).
pub(super) fn describe(parts: &http::request::Parts) -> Map<String, Value> {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    let mut m = Map::new();
    m.insert("method".into(), json!(parts.method.as_str()));
    m.insert("uri".into(), json!(parts.uri.to_string()));
    m.insert("path".into(), json!(parts.uri.path()));
    m.insert("query".into(), json!(parts.uri.query()));
    m.insert("headers".into(), Value::Object(headers));
    m.insert("version".into(), json!(format!("{:?}", parts.version)));
    m
}

async fn handle(req: Request<Incoming>, counters: &Counters) -> Response<EchoBody> {
    counters.requests.fetch_add(1, Ordering::SeqCst);
    if is_websocket_upgrade(req.headers()) && req.method() == Method::GET {
        return super::ws::accept(req);
    }
    let (parts, mut body) = req.into_parts();
    let mut hasher = Sha256::new();
    let mut body_len: u64 = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    hasher.update(data);
                    body_len += data.len() as u64;
                }
            }
            Err(e) => {
                return full(
                    StatusCode::BAD_REQUEST,
                    "text/plain",
                    format!("reading the request body failed after {body_len} bytes: {e}"),
                )
            }
        }
    }
    let path = parts.uri.path();
    if let Some(n) = path.strip_prefix("/bytes/") {
        let Ok(n) = n.parse::<u64>() else {
            return full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "/bytes/<n>: n is a number",
            );
        };
        let chunked = parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "chunked=1"));
        let mut res = Response::new(
            PatternBody {
                sent: 0,
                total: n,
                exact: !chunked,
            }
            .boxed(),
        );
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if !chunked {
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        return res;
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let Some(status) = code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        else {
            return full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "/status/<code>: a status code",
            );
        };
        let mut res = full(
            status,
            "text/plain",
            format!("status {}\n", status.as_u16()),
        );
        res.headers_mut()
            .insert("x-upstream", HeaderValue::from_static("echo"));
        return res;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let Ok(ms) = ms.parse::<u64>() else {
            return full(
                StatusCode::BAD_REQUEST,
                "text/plain",
                "/slow/<ms>: a number",
            );
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut m = describe(&parts);
    m.insert("body_len".into(), json!(body_len));
    m.insert("body_sha256".into(), json!(hex::encode(hasher.finalize())));
    full(
        StatusCode::OK,
        "application/json",
        Value::Object(m).to_string(),
    )
}

fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has_token(header::UPGRADE, "websocket") && headers.contains_key(header::SEC_WEBSOCKET_KEY)
}

/// `BYTES_CHUNK + 251` bytes of the pattern from offset 0: every chunk is a slice of it.
fn pattern() -> &'static Bytes {
    static PATTERN: OnceLock<Bytes> = OnceLock::new();
    PATTERN.get_or_init(|| {
        (0..(BYTES_CHUNK + 251) as u64)
            .map(pattern_byte)
            .collect::<Vec<u8>>()
            .into()
    })
}

/// The body of `/bytes/<n>`: produced chunk by chunk as hyper asks for it.
struct PatternBody {
    sent: u64,
    total: u64,
    exact: bool,
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent >= self.total {
            return Poll::Ready(None);
        }
        let n = (self.total - self.sent).min(BYTES_CHUNK as u64) as usize;
        let start = (self.sent % 251) as usize;
        let chunk = pattern().slice(start..start + n);
        self.sent += n as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.exact && self.sent >= self.total
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.total - self.sent)
        } else {
            SizeHint::default()
        }
    }
}
