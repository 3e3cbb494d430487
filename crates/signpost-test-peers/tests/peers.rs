//! The upstream peers of the proxy's tests (`signpost_test_peers::peers`) and the nginx shapes,
//! each exercised on its own with reqwest, hyper or raw TCP.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use signpost_test_peers::nginx::Nginx;
use signpost_test_peers::peers::{
    pattern_byte, ws_echo_roundtrip, ws_roundtrip, EchoServer, ForwardProxy, TcpEcho,
    WS_REQUEST_MESSAGE,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Reads an HTTP/1.1 response head (up to the blank line) from a raw stream.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(n, 1, "connection closed inside the head: {head:?}");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

async fn refused(addr: std::net::SocketAddr) -> bool {
    TcpStream::connect(addr).await.is_err()
}

#[tokio::test]
async fn echo_describes_the_request() {
    let echo = EchoServer::start().await;
    let client = reqwest::Client::new();
    let body = b"hello, upstream".to_vec();
    let res = client
        .post(format!("{}/some/path?a=1&b=two", echo.url()))
        .header("x-multi", "one")
        .header("x-multi", "two")
        .header("Authorization", "Bearer t")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/some/path");
    assert_eq!(v["uri"], "/some/path?a=1&b=two");
    assert_eq!(v["query"], "a=1&b=two");
    assert_eq!(v["version"], "HTTP/1.1");
    assert_eq!(v["headers"]["x-multi"], serde_json::json!(["one", "two"]));
    assert_eq!(
        v["headers"]["authorization"],
        serde_json::json!(["Bearer t"])
    );
    assert_eq!(
        v["headers"]["host"],
        serde_json::json!([echo.addr.to_string()])
    );
    assert_eq!(v["body_len"], body.len());
    assert_eq!(v["body_sha256"], sha256_hex(&body));

    let v: Value = client
        .get(format!("{}/plain", echo.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["method"], "GET");
    assert_eq!(v["query"], Value::Null);
    assert_eq!(v["body_len"], 0);
    assert_eq!(v["body_sha256"], sha256_hex(b""));
}

#[tokio::test]
async fn echo_counts_requests_and_reuses_connections() {
    let echo = EchoServer::start().await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let res = client.get(echo.url()).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.bytes().await.unwrap();
    }
    assert_eq!(echo.requests(), 5);
    assert_eq!(
        echo.connections(),
        1,
        "keep-alive: one connection for five requests"
    );
    let other = reqwest::Client::new();
    other.get(echo.url()).send().await.unwrap();
    assert_eq!(echo.requests(), 6);
    assert_eq!(echo.connections(), 2);
}

#[tokio::test]
async fn echo_hashes_a_large_upload() {
    let echo = EchoServer::start().await;
    let body: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    let v: Value = reqwest::Client::new()
        .put(format!("{}/upload", echo.url()))
        .body(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["body_len"], body.len());
    assert_eq!(v["body_sha256"], sha256_hex(&body));
}

#[tokio::test]
async fn echo_streams_100_mb() {
    let echo = EchoServer::start().await;
    const N: u64 = 100_000_000;
    let mut res = reqwest::get(format!("{}/bytes/{N}", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-length"], N.to_string().as_str());
    assert_eq!(res.content_length(), Some(N));
    let mut total: u64 = 0;
    let mut chunks = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        // Spot checks: every 4,096th byte of each chunk and its last one.
        for i in (0..chunk.len())
            .step_by(4096)
            .chain(chunk.len().checked_sub(1))
        {
            assert_eq!(
                chunk[i],
                pattern_byte(total + i as u64),
                "byte {}",
                total + i as u64
            );
        }
        total += chunk.len() as u64;
        chunks += 1;
    }
    assert_eq!(total, N);
    assert!(chunks > 1, "streamed in chunks: {chunks}");
}

#[tokio::test]
async fn echo_bytes_exact_and_chunked() {
    let echo = EchoServer::start().await;
    let want: Vec<u8> = (0..200_000u64).map(pattern_byte).collect();
    let res = reqwest::get(format!("{}/bytes/200000", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-length"], "200000");
    assert!(res.headers().get("transfer-encoding").is_none());
    assert_eq!(res.bytes().await.unwrap(), want);

    let res = reqwest::get(format!("{}/bytes/200000?chunked=1", echo.url()))
        .await
        .unwrap();
    assert!(res.headers().get("content-length").is_none());
    assert_eq!(res.headers()["transfer-encoding"], "chunked");
    assert_eq!(res.bytes().await.unwrap(), want);

    let res = reqwest::get(format!("{}/bytes/0", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-length"], "0");
    assert!(res.bytes().await.unwrap().is_empty());

    let res = reqwest::get(format!("{}/bytes/lots", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn echo_status_and_slow() {
    let echo = EchoServer::start().await;
    let res = reqwest::get(format!("{}/status/503", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-upstream"], "echo");
    assert_eq!(res.text().await.unwrap(), "status 503\n");
    let res = reqwest::get(format!("{}/status/204", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["x-upstream"], "echo");
    let res = reqwest::get(format!("{}/status/nope", echo.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    let started = Instant::now();
    let v: Value = reqwest::get(format!("{}/slow/300", echo.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(v["path"], "/slow/300");
}

#[tokio::test]
async fn echo_speaks_h2c() {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let echo = EchoServer::start().await;
    let stream = TcpStream::connect(echo.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for i in 0..3 {
        let req = http::Request::get(format!("{}/h2/{i}", echo.url()))
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let v: Value =
            serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert_eq!(v["version"], "HTTP/2.0");
        assert_eq!(v["path"], format!("/h2/{i}"));
    }
    assert_eq!(echo.connections(), 1);
}

#[tokio::test]
async fn echo_websocket_roundtrip() {
    let echo = EchoServer::start().await;
    let addr = echo.addr.to_string();
    assert_eq!(
        ws_echo_roundtrip(&addr, "backend.default", "/ws", "hello").await,
        "hello"
    );
    let long = "x".repeat(100_000);
    assert_eq!(
        ws_echo_roundtrip(&addr, "backend.default", "ws", &long).await,
        long
    );

    let info = ws_roundtrip(
        &addr,
        "backend.default",
        "/chat?room=1",
        &[("Authorization", "Bearer up")],
        WS_REQUEST_MESSAGE,
    )
    .await
    .unwrap();
    let v: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(v["path"], "/chat");
    assert_eq!(v["query"], "room=1");
    assert_eq!(v["headers"]["host"], serde_json::json!(["backend.default"]));
    assert_eq!(
        v["headers"]["authorization"],
        serde_json::json!(["Bearer up"])
    );
    assert_eq!(echo.requests(), 3);

    // RFC 6455's own example of the accept key, on the wire.
    let mut s = TcpStream::connect(echo.addr).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let head = read_head(&mut s).await.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );
    assert!(head.contains("sec-websocket-protocol: chat\r\n"), "{head}");

    // A refused upgrade is an error, not a hang.
    let plain = TcpEcho::start();
    assert!(ws_roundtrip(&plain.addr.to_string(), "x", "/", &[], "hi")
        .await
        .is_err());
}

#[tokio::test]
async fn tcp_echo_echoes_until_half_close() {
    let echo = TcpEcho::start();
    assert_eq!(echo.url(), format!("tcp://127.0.0.1:{}", echo.port));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 256) as u8).collect();
    let mut s = TcpStream::connect(echo.addr).await.unwrap();
    let (mut r, mut w) = s.split();
    let send = async {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    };
    let mut got = Vec::new();
    let recv = r.read_to_end(&mut got);
    let (_, n) = tokio::join!(send, recv);
    assert_eq!(n.unwrap(), data.len());
    assert_eq!(got, data);
    assert_eq!(echo.connections(), 1);
}

#[tokio::test]
async fn forward_proxy_forwards_absolute_form_and_records_headers() {
    let echo = EchoServer::start().await;
    let proxy = ForwardProxy::start();
    let client = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(proxy.url())
                .unwrap()
                .custom_http_auth(http::HeaderValue::from_static("Bearer proxy-token")),
        )
        .build()
        .unwrap();
    let res = client
        .post(format!("{}/via-proxy?x=1", echo.url()))
        .header("SAP-Connectivity-SCC-Location_ID", "loc-1")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["uri"], "/via-proxy?x=1", "origin form upstream");
    assert_eq!(v["body_len"], 7);
    assert_eq!(
        v["headers"]["sap-connectivity-scc-location_id"],
        serde_json::json!(["loc-1"])
    );
    assert!(v["headers"].get("proxy-authorization").is_none());

    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, format!("{}/via-proxy?x=1", echo.url()));
    assert_eq!(
        seen[0].header("SAP-Connectivity-SCC-Location_ID"),
        Some("loc-1")
    );
    assert_eq!(
        seen[0].header("proxy-authorization"),
        Some("Bearer proxy-token")
    );

    // Streaming through it.
    let res = client
        .get(format!("{}/bytes/3000000", echo.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.content_length(), Some(3_000_000));
    assert_eq!(res.bytes().await.unwrap().len(), 3_000_000);

    // Origin form and unreachable targets.
    let res = reqwest::get(format!("{}/not-proxied", proxy.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let res = client.get(format!("http://{dead}/x")).send().await.unwrap();
    assert_eq!(res.status(), 502);
    proxy.clear_seen();
    assert!(proxy.seen().is_empty());
}

#[tokio::test]
async fn forward_proxy_tunnels_connect() {
    let tcp = TcpEcho::start();
    let proxy = ForwardProxy::start();
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    let req = format!(
        "CONNECT {a} HTTP/1.1\r\nHost: {a}\r\nSAP-Connectivity-SCC-Location_ID: loc-2\r\n\
         Proxy-Authorization: Bearer p\r\n\r\n",
        a = tcp.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    s.write_all(b"through the tunnel").await.unwrap();
    let mut buf = [0u8; 18];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"through the tunnel");

    let seen = proxy.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "CONNECT");
    assert_eq!(seen[0].target, tcp.addr.to_string());
    assert_eq!(
        seen[0].header("sap-connectivity-scc-location_id"),
        Some("loc-2")
    );
    assert_eq!(tcp.connections(), 1);

    // Unreachable CONNECT target: 502.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(format!("CONNECT {dead} HTTP/1.1\r\nHost: {dead}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
}

#[tokio::test]
async fn forward_proxy_maps_virtual_hosts() {
    let echo = EchoServer::start().await;
    let proxy = ForwardProxy::start_with_virtual_hosts(&[("erp.internal:44300", echo.addr)]);
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(proxy.url()).unwrap())
        .build()
        .unwrap();
    let v: Value = client
        .get("http://erp.internal:44300/sap/opu/odata")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/sap/opu/odata");
    assert_eq!(
        v["headers"]["host"],
        serde_json::json!(["erp.internal:44300"])
    );
    assert_eq!(
        proxy.seen()[0].target,
        "http://erp.internal:44300/sap/opu/odata"
    );
}

#[tokio::test]
async fn peers_stop_on_drop() {
    let echo = EchoServer::start().await;
    let tcp = TcpEcho::start();
    let proxy = ForwardProxy::start();
    let addrs = [echo.addr, tcp.addr, proxy.addr];
    // An open keep-alive connection does not keep the echo server alive.
    let client = reqwest::Client::new();
    client.get(echo.url()).send().await.unwrap();
    drop(echo);
    drop(tcp);
    drop(proxy);
    for a in addrs {
        assert!(refused(a).await, "{a} still accepts connections");
    }
    assert!(client
        .get(format!("http://{}", addrs[0]))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn nginx_serves_static_files() {
    let content: Vec<u8> = (0..1024u32).map(|i| b'a' + (i % 26) as u8).collect();
    let nginx = Nginx::static_files(&[("bench.txt", &content), ("sub/data.json", b"{}")]);
    let res = reqwest::get(format!("{}/bench.txt", nginx.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.bytes().await.unwrap(), content);
    let res = reqwest::get(format!("{}/sub/data.json", nginx.url()))
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let res = reqwest::get(format!("{}/missing", nginx.url()))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.txt"), b"from a dir").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let nginx = Nginx::static_dir(dir.path());
    assert_eq!(
        reqwest::get(format!("{}/f.txt", nginx.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "from a dir"
    );
    let addr = nginx.addr();
    drop(nginx);
    assert!(refused(addr).await);
}

#[tokio::test]
async fn nginx_reverse_proxy_adds_the_header_and_keeps_upstream_connections() {
    let echo = EchoServer::start().await;
    let nginx = Nginx::reverse_proxy_with_header(&echo.url(), "Authorization", "Bearer x");
    let client = reqwest::Client::new();
    for i in 0..10 {
        let v: Value = client
            .get(format!("{}/r/{i}?q=1", nginx.url()))
            .header("Authorization", "Basic dTpw")
            .header("Host", "backend.default")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["uri"], format!("/r/{i}?q=1"));
        assert_eq!(
            v["headers"]["authorization"],
            serde_json::json!(["Bearer x"])
        );
        assert_eq!(
            v["headers"]["host"],
            serde_json::json!([echo.addr.to_string()])
        );
        assert_eq!(v["version"], "HTTP/1.1");
    }
    assert_eq!(echo.requests(), 10);
    assert_eq!(echo.connections(), 1, "nginx's keep-alive upstream pool");

    let res = client
        .get(format!("{}/bytes/5000000", nginx.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 5_000_000);
}

#[tokio::test]
async fn nginx_mtls_proxy_demands_a_client_certificate() {
    use base64::Engine as _;

    let echo = EchoServer::start().await;
    let (ca, server_cert, server_key, client_p12) =
        signpost_test_peers::pki::mtls_material("p12-pass");
    let nginx = Nginx::mtls_proxy(&echo.url(), &server_cert, &server_key, &ca);
    assert_eq!(nginx.url(), format!("https://127.0.0.1:{}", nginx.port));

    // The client identity as PEM (certificate and key), through the openssl CLI.
    let dir = tempfile::tempdir().unwrap();
    let p12 = base64::engine::general_purpose::STANDARD
        .decode(client_p12)
        .unwrap();
    std::fs::write(dir.path().join("client.p12"), p12).unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "pkcs12",
            "-in",
            "client.p12",
            "-passin",
            "pass:p12-pass",
            "-nodes",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ca_cert = reqwest::Certificate::from_pem(ca.as_bytes()).unwrap();

    let with_cert = reqwest::Client::builder()
        .add_root_certificate(ca_cert.clone())
        .identity(reqwest::Identity::from_pem(&out.stdout).unwrap())
        .build()
        .unwrap();
    let v: Value = with_cert
        .get(format!("{}/mtls?x=1", nginx.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["uri"], "/mtls?x=1");
    assert_eq!(
        v["headers"]["x-client-verify"],
        serde_json::json!(["SUCCESS"])
    );

    let without = reqwest::Client::builder()
        .add_root_certificate(ca_cert)
        .build()
        .unwrap();
    let res = without.get(nginx.url()).send().await.unwrap();
    assert_eq!(
        res.status(),
        400,
        "nginx refuses a request without a client certificate"
    );
    assert_eq!(echo.requests(), 1);
}
