//! [`ForwardProxy`]: an HTTP forward proxy standing in for SAP's Connectivity Proxy.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use super::{spawn_peer, PeerThread};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// One request as the forward proxy received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `GET`, `CONNECT`, …
    pub method: String,
    /// The request target as sent: `http://host:port/path?query` (absolute form),
    /// `host:port` (CONNECT) or `/path` (origin form, which the proxy refuses with 400).
    pub target: String,
    /// Every header in the order received; names lowercase.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The first value of a header, the name matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct State {
    seen: Mutex<Vec<SeenRequest>>,
    /// `host:port` as requested → where to connect instead (the Cloud Connector's virtual hosts).
    virtual_hosts: HashMap<String, SocketAddr>,
}

/// An HTTP/1.1 forward proxy on `127.0.0.1:<free port>`, stopped on drop:
///
/// - an absolute-form request (`GET http://host:port/path HTTP/1.1`) is forwarded to `host:port`
///   in origin form on a new connection, with the hop-by-hop headers (`Connection` and what it
///   names, `Proxy-Connection`, `Proxy-Authorization`, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`)
///   removed and every other header (`SAP-Connectivity-SCC-Location_ID` included) kept; the
///   answer streams back (502 when the target cannot be reached; only `http://` targets);
/// - `CONNECT host:port` answers 200 and tunnels bytes both ways (502 when unreachable);
/// - an origin-form request answers 400.
///
/// Every request is recorded first ([`Self::seen`]). Like the Cloud Connector, it can map virtual
/// hosts to real addresses ([`Self::start_with_virtual_hosts`]); other hosts are connected to as
/// named. It asks for no `Proxy-Authorization` (it records it when sent).
#[derive(Debug)]
pub struct ForwardProxy {
    pub addr: SocketAddr,
    pub port: u16,
    state: Arc<State>,
    _thread: PeerThread,
}

impl ForwardProxy {
    /// Starts the proxy; it accepts connections when this returns.
    pub fn start() -> ForwardProxy {
        Self::start_with_virtual_hosts(&[])
    }

    /// Like [`Self::start`], with virtual hosts: a request for `http://erp.internal:44300/x` or
    /// `CONNECT erp.internal:44300` goes to the address mapped to `"erp.internal:44300"` (the
    /// port must be written, also 80). The `Host` header is left as the client sent it.
    pub fn start_with_virtual_hosts(map: &[(&str, SocketAddr)]) -> ForwardProxy {
        let state = Arc::new(State {
            seen: Mutex::new(Vec::new()),
            virtual_hosts: map
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), *v))
                .collect(),
        });
        let st = state.clone();
        let (addr, thread) = spawn_peer("forward-proxy", move |listener| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(req, &st).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        ForwardProxy {
            addr,
            port: addr.port(),
            state,
            _thread: thread,
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash: the proxy URL to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.state.seen.lock().expect("seen lock").clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_seen(&self) {
        self.state.seen.lock().expect("seen lock").clear();
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<ProxyBody> {
    let mut res = Response::new(
        Full::new(Bytes::from(msg.into()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    res.headers_mut()
        .insert("x-forward-proxy", HeaderValue::from_static("error"));
    res
}

/// Where to connect for `authority` (default port `default_port`).
fn target_of(state: &State, authority: &Authority, default_port: u16) -> String {
    let key = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    )
    .to_ascii_lowercase();
    match state.virtual_hosts.get(&key) {
        Some(addr) => addr.to_string(),
        None => key,
    }
}

async fn handle(mut req: Request<Incoming>, state: &State) -> Response<ProxyBody> {
    state.seen.lock().expect("seen lock").push(SeenRequest {
        method: req.method().to_string(),
        target: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });

    if req.method() == Method::CONNECT {
        let Some(authority) = req.uri().authority().cloned() else {
            return text(StatusCode::BAD_REQUEST, "CONNECT needs host:port");
        };
        let target = target_of(state, &authority, 443);
        let upstream = match tokio::net::TcpStream::connect(&target).await {
            Ok(s) => s,
            Err(e) => return text(StatusCode::BAD_GATEWAY, format!("connect {target}: {e}")),
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut client = TokioIo::new(upgraded);
                let mut upstream = upstream;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
        return Response::new(Empty::new().map_err(|never| match never {}).boxed());
    }

    let uri = req.uri().clone();
    let Some(authority) = uri.authority().cloned() else {
        return text(
            StatusCode::BAD_REQUEST,
            "not a proxy request: the target must be absolute (http://host:port/path)",
        );
    };
    if uri.scheme_str() != Some("http") {
        return text(
            StatusCode::BAD_REQUEST,
            "only http:// targets are forwarded; use CONNECT for anything else",
        );
    }
    let target = target_of(state, &authority, 80);
    let stream = match tokio::net::TcpStream::connect(&target).await {
        Ok(s) => s,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("connect {target}: {e}")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("{target}: {e}")),
    };
    tokio::spawn(conn);

    let origin_form: Uri = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .expect("a path and query is an origin-form URI");
    *req.uri_mut() = origin_form;
    strip_hop_by_hop(req.headers_mut());
    if !req.headers().contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
            req.headers_mut().insert(header::HOST, v);
        }
    }
    match sender.send_request(req).await {
        Ok(mut res) => {
            strip_hop_by_hop(res.headers_mut());
            res.map(BodyExt::boxed)
        }
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("{target}: {e}")),
    }
}

fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "proxy-connection",
        "proxy-authorization",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        headers.remove(name);
    }
}
