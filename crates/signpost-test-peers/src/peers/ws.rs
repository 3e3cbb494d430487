//! The WebSocket side of [`super::EchoServer`] and a small client for tests.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::echo::describe;

/// The text message that [`super::EchoServer`]'s WebSocket answers with the echo JSON of its
/// upgrade request (`method`, `uri`, `path`, `query`, `headers`, `version`) instead of echoing
/// it: how a test sees the headers (e.g. `Authorization`) that reached the upstream on upgrade.
pub const WS_REQUEST_MESSAGE: &str = "__request__";

/// How long [`ws_roundtrip`] waits for the whole exchange.
const WS_TIMEOUT: Duration = Duration::from_secs(15);

/// Answers an upgrade request with 101 and serves the upgraded connection as an echo.
pub(super) fn accept(mut req: Request<Incoming>) -> Response<super::echo::EchoBody> {
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .unwrap_or_default();
    let protocol = req
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let info = Value::Object(describe(&parts)).to_string();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        // Pings are answered and a close is confirmed by tungstenite itself while reading; the
        // loop ends when the peer's close handshake is done or the connection drops.
        while let Some(Ok(msg)) = ws.next().await {
            let reply = match msg {
                Message::Text(t) if t.as_str() == WS_REQUEST_MESSAGE => Message::text(info.clone()),
                Message::Text(t) => Message::Text(t),
                Message::Binary(b) => Message::Binary(b),
                _ => continue,
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
    });
    let mut res = Response::new(Empty::<Bytes>::new().boxed());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&key).expect("base64 is a header value"),
    );
    if let Some(p) = protocol.and_then(|p| HeaderValue::from_str(&p).ok()) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    res
}

/// Connects over plain TCP to `addr` (`127.0.0.1:<port>`, e.g. the proxy's), upgrades
/// `ws://<host><path>` (so the request carries `Host: <host>`) with the extra `headers`, sends
/// `message` as a text message and returns the first text or binary message that comes back
/// (binary as lossy UTF-8), then closes cleanly. Errors (connect, handshake, e.g. the status
/// when it was not 101, or no answer within 15 s) come back as text.
pub async fn ws_roundtrip(
    addr: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    message: &str,
) -> Result<String, String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let run = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut request = format!("ws://{host}{path}")
            .into_client_request()
            .map_err(|e| format!("ws://{host}{path}: {e}"))?;
        for (name, value) in headers {
            let name = header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("header name {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
            request.headers_mut().append(name, value);
        }
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("WebSocket handshake via {addr} (Host: {host}): {e}"))?;
        ws.send(Message::text(message))
            .await
            .map_err(|e| format!("send: {e}"))?;
        let answer = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break t.as_str().to_owned(),
                Some(Ok(Message::Binary(b))) => break String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("closed before answering: {frame:?}"))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("receive: {e}")),
                None => return Err("connection ended before an answer".into()),
            }
        };
        let _ = ws.close(None).await;
        while let Some(Ok(_)) = ws.next().await {}
        Ok(answer)
    };
    tokio::time::timeout(WS_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| Err(format!("no WebSocket answer within {WS_TIMEOUT:?}")))
}

/// [`ws_roundtrip`] without extra headers; panics with the reason on any failure.
///
/// ```ignore
/// let got = ws_echo_roundtrip(&proxy_addr, "backend.default", "/ws", "hello").await;
/// assert_eq!(got, "hello");
/// ```
pub async fn ws_echo_roundtrip(addr: &str, host: &str, path: &str, message: &str) -> String {
    ws_roundtrip(addr, host, path, &[], message)
        .await
        .unwrap_or_else(|e| panic!("WebSocket round trip failed: {e}"))
}
