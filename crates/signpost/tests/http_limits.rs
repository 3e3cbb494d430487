//! Server limits (issue 11 §4) against the real listeners and router on loopback: the
//! header-read timeout on both listeners, the request timeout, the connection cap, the rate
//! limit of the token service and of the destination API, and the throttled reload of the
//! signing keys for tokens with an unknown `kid`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use signpost_api::LimitsConfig;
use signpost_test_utils::oauth_peer::OAuthPeer;
use signpost_test_utils::slow::{tls_connect, trickle};
use signpost_test_utils::{status_json, TestApp, TestOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(f: impl FnOnce(&mut LimitsConfig)) -> TestOptions {
    let mut l = LimitsConfig::default();
    f(&mut l);
    TestOptions {
        limits: l,
        ..Default::default()
    }
}

/// A request head that never ends: one more header line at a time.
const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
const ONE_MORE_HEADER: &[u8] = b"X-Slow: still sending\r\n";
/// 30 s of trickling at most: far beyond the 1 s header timeout of the tests.
const PIECES: usize = 150;
const EVERY: Duration = Duration::from_millis(200);

#[tokio::test]
async fn slow_headers_are_cut_off_on_both_listeners() {
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..limits(|l| l.header_timeout = Duration::from_secs(1))
    })
    .await;
    let plain = TcpStream::connect(app.addr).await.unwrap();
    let cut = trickle(plain, SLOW_HEAD, ONE_MORE_HEADER, PIECES, EVERY).await;
    assert!(
        cut.closed && cut.pieces_sent < PIECES,
        "HTTP: a client sending its headers slowly was not cut off: {cut:?}"
    );
    assert_ne!(cut.status(), Some(200), "{cut:?}");

    let tls = tls_connect(app.https_addr().unwrap(), app.https_ca_pem().unwrap()).await;
    let cut = trickle(tls, SLOW_HEAD, ONE_MORE_HEADER, PIECES, EVERY).await;
    assert!(
        cut.closed && cut.pieces_sent < PIECES,
        "HTTPS: a client sending its headers slowly was not cut off: {cut:?}"
    );
    assert_ne!(cut.status(), Some(200), "{cut:?}");

    // A client that sends its headers at once is served on both, with the same limits.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let tls = tls_connect(app.https_addr().unwrap(), app.https_ca_pem().unwrap()).await;
    let done = trickle(
        tls,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        b"",
        PIECES,
        EVERY,
    )
    .await;
    assert_eq!(done.status(), Some(200), "{done:?}");
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_a_json_503() {
    let app = TestApp::start_with(limits(|l| l.request_timeout = Duration::from_secs(1))).await;
    // The headers arrive at once, the body of 100,000 bytes a byte at a time: the request
    // would take hours.
    let tcp = TcpStream::connect(app.addr).await.unwrap();
    let head = b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\ngrant_type=";
    let res = trickle(tcp, head, b"x", PIECES, EVERY).await;
    assert_eq!(
        res.status(),
        Some(503),
        "the request was not stopped: {res:?}"
    );
    assert!(res.pieces_sent < PIECES);
    let body: Value = serde_json::from_str(&res.body()).unwrap();
    assert!(
        body["ErrorMessage"].as_str().unwrap().contains("1 seconds"),
        "{body}"
    );
    // The server goes on serving.
    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_find_is_bounded_by_its_token_flow_not_by_the_request_timeout() {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({"clients": [{"id": "c", "secret": "s"}], "delay_ms": 2500}))
        .await;
    let app = TestApp::start_with(limits(|l| l.request_timeout = Duration::from_secs(1))).await;
    let dest = json!({
        "Name": "slow-token", "Type": "HTTP", "URL": "https://api.example", "ProxyType": "Internet",
        "Authentication": "OAuth2ClientCredentials", "clientId": "c", "clientSecret": "s",
        "tokenServiceURL": peer.token_url()
    });
    let t = app
        .tenant(
            "sub-lim",
            "inst-lim",
            json!({"init_data": {"instance": {"destinations": [dest]}}}),
        )
        .await;
    // The token service answers after 2.5 s, within the flow's own read timeout (10 s).
    let (s, v) = status_json(t.get("/v1/destinations/slow-token").await).await;
    assert_eq!(s, 200, "{v}");
    assert!(
        !v["authTokens"][0]["value"].as_str().unwrap().is_empty(),
        "{v}"
    );
    // Anything else over the timeout is stopped: a list of the same tenant is quick and passes.
    let (s, _) = status_json(t.get("/v1/instanceDestinations").await).await;
    assert_eq!(s, 200);
}

/// A raw keep-alive connection that has been served one request, so it surely holds a slot.
async fn held_connection(app: &TestApp) -> TcpStream {
    let mut tcp = TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&buf).contains("\"ok\"") {
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed a connection under the cap");
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.starts_with(b"HTTP/1.1 200"));
    tcp
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_ends() {
    let app = TestApp::start_with(limits(|l| {
        l.max_connections = 2;
        l.header_timeout = Duration::from_secs(120);
    }))
    .await;
    let first = held_connection(&app).await;
    let _second = held_connection(&app).await;
    // A third connection is not refused: it waits in the listen backlog, unanswered.
    let client = reqwest::Client::new();
    let url = app.url("/healthz");
    let third = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a connection over the cap was served: {:?}",
        third.await
    );
    // One ends: the waiting one is accepted and answered.
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("the waiting connection was not served after a slot freed")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

async fn metric(app: &TestApp, name: &str) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Sends `req` until a 429 (at most 50 times; with a limit of 1 a second and a burst of 2 the
/// third request within a second is refused) and checks the 429.
async fn until_429(mut send: impl AsyncFnMut() -> reqwest::Response) -> u32 {
    for sent in 1..=50 {
        let res = send().await;
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            let (_, body) = status_json(res).await;
            assert!(
                body["ErrorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("at most 1 a second"),
                "{body}"
            );
            return sent;
        }
        assert_ne!(res.status(), 500);
    }
    panic!("50 requests were never refused with 429");
}

#[tokio::test]
async fn the_token_service_limits_each_client_id() {
    let app = TestApp::start_with(limits(|l| l.rate_limit = 1)).await;
    let t = app.tenant("sub-rl", "inst-rl", json!({})).await;
    let id = t.key["clientid"].as_str().unwrap().to_owned();
    // Guessing secrets for one client id is limited as using it is (form and Basic alike).
    let sent = until_429(async || {
        app.client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", "a-guess"),
            ])
            .send()
            .await
            .unwrap()
    })
    .await;
    assert!(sent >= 2, "refused before the burst was used: {sent}");
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(&id, Some("another-guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert!(
        [401, 429].contains(&res.status().as_u16()),
        "{}",
        res.status()
    );
    // Another client id has its own allowance.
    let other = app.tenant("sub-rl2", "inst-rl2", json!({})).await;
    assert!(!other.token.is_empty());
    assert!(metric(&app, "signpost_rate_limited_total").await >= 1);
}

#[tokio::test]
async fn the_destination_api_limits_each_token() {
    let app = TestApp::start_with(limits(|l| l.rate_limit = 1)).await;
    let t = app.tenant("sub-rl", "inst-rl", json!({})).await;
    let sent = until_429(async || t.get("/v1/subaccountDestinations").await).await;
    assert!(sent >= 2, "refused before the burst was used: {sent}");
    // A made-up token is limited too, before it is checked.
    let fake = "not-a-token";
    let sent = until_429(async || {
        app.client
            .get(app.url("/destination-configuration/v1/subaccountDestinations"))
            .bearer_auth(fake)
            .send()
            .await
            .unwrap()
    })
    .await;
    assert!(sent >= 2);
    // Another token has its own allowance; nothing is limited on the broker API.
    let other = app.tenant("sub-rl2", "inst-rl2", json!({})).await;
    let (s, _) = status_json(other.get("/v1/subaccountDestinations").await).await;
    assert_eq!(s, 200);
    for _ in 0..5 {
        let res = app.broker(Method::GET, "/v2/catalog").send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    assert!(metric(&app, "signpost_rate_limited_total").await >= 2);
}

/// A token with a `kid` Signpost never made (its signature does not matter: the key is looked
/// up first).
fn unknown_kid_token(i: usize) -> String {
    let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": format!("made-up-{i}")})),
        b64(json!({"sub": "nobody"}))
    )
}

#[tokio::test]
async fn a_flood_of_unknown_kids_reads_the_signing_keys_once() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-kid", "inst-kid", json!({})).await;
    let before = metric(&app, "signpost_unknown_kid_reloads_total").await;
    let started = Instant::now();
    let url = app.url("/destination-configuration/v1/subaccountDestinations");
    for round in 0..8 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..50 {
            let req = app
                .client
                .get(&url)
                .bearer_auth(unknown_kid_token(round * 50 + i));
            sends.spawn(async move { req.send().await.unwrap().status() });
        }
        while let Some(status) = sends.join_next().await {
            assert_eq!(status.unwrap(), 401);
        }
    }
    let elapsed = started.elapsed();
    let reloads = metric(&app, "signpost_unknown_kid_reloads_total").await - before;
    // Once per 5 s at most: one for a flood that takes less than that.
    let allowed = 1 + elapsed.as_secs() / signpost_core::UNKNOWN_KID_RELOAD_EVERY.as_secs();
    assert!(
        (1..=allowed).contains(&reloads),
        "400 tokens with unknown kids in {elapsed:?} read the keys {reloads} times"
    );
    // The service is unharmed: a real token still works.
    let (s, _) = status_json(t.get("/v1/subaccountDestinations").await).await;
    assert_eq!(s, 200);
}
