//! The private-address guard on every outbound fetch a tenant can steer (issue 11 §1): token
//! service URLs and `x_user_token.jwks_uri`, written as every literal form of a loopback address
//! and as a name that resolves to one, against a real listener on loopback that must see no
//! connection. With `--allow-private-networks` the same listener is reached, so the refusals are
//! the guard's; bodies of token services and JWKS endpoints are capped at 1 MiB.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, Tenant, TestApp, TestOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback HTTP listener that counts connections and answers each with `body` (200, JSON).
struct Listener {
    port: u16,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start(body: Vec<u8>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        let body = Arc::new(body);
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = s.read(&mut buf).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        Self {
            port,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hosts that reach the listener on 127.0.0.1 when nothing stops them: every literal spelling
/// the URL parser accepts, the unspecified address (Linux connects it to loopback), the
/// IPv4-mapped IPv6 form, and a name that resolves to loopback.
const HOSTS: &[&str] = &[
    "127.0.0.1",
    "2130706433",
    "0177.0.0.1",
    "0x7f.0.0.1",
    "0x7f000001",
    "127.1",
    "0.0.0.0",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "localhost",
];

fn token_dest(name: &str, token_url: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": "https://api.example", "ProxyType": "Internet",
           "Authentication": "OAuth2ClientCredentials", "clientId": "c", "clientSecret": "s",
           "tokenServiceURL": token_url})
}

fn jwks_dest(name: &str, jwks_uri: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": "https://api.example", "ProxyType": "Internet",
           "Authentication": "OAuth2JWTBearer", "clientId": "c", "clientSecret": "s",
           "tokenServiceURL": "https://auth.example/oauth/token", "x_user_token.jwks_uri": jwks_uri})
}

async fn error_of(t: &Tenant, name: &str, user_token: Option<&str>) -> String {
    let mut req = t.req(Method::GET, &format!("/v1/destinations/{name}"));
    if let Some(u) = user_token {
        req = req.header("X-user-token", u);
    }
    let (status, body) = status_json(req.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body["authTokens"][0]["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
        .to_owned()
}

/// A JWT-shaped user token (its signature is never reached: the keys cannot be fetched).
fn user_token(header: Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"iss": "https://idp.example", "sub": "u", "exp": 4_000_000_000u64});
    format!("{}.{}.c2ln", b64(&header), b64(&claims))
}

#[tokio::test]
async fn token_urls_and_jwks_uris_never_reach_private_addresses() {
    let listener = Listener::start(br#"{"keys":[]}"#.to_vec()).await;
    let port = listener.port;
    let mut dests = Vec::new();
    for (i, host) in HOSTS.iter().enumerate() {
        dests.push(token_dest(
            &format!("token-{i}"),
            &format!("http://{host}:{port}/token"),
        ));
        dests.push(jwks_dest(
            &format!("jwks-{i}"),
            &format!("http://{host}:{port}/jwks"),
        ));
    }
    // Inline keys are never fetched, whatever the token's `jku` says.
    let inline = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        json!({"keys": []}).to_string(),
    );
    dests.push(
        json!({"Name": "inline", "Type": "HTTP", "URL": "https://api.example",
        "ProxyType": "Internet", "Authentication": "OAuth2JWTBearer", "clientId": "c",
        "tokenServiceURL": "https://auth.example/oauth/token", "x_user_token.jwks": inline}),
    );
    let app = TestApp::start_with(TestOptions {
        allow_private_networks: false,
        ..Default::default()
    })
    .await;
    let t = app
        .tenant(
            "sub-guard",
            "inst-guard",
            json!({"init_data": {"instance": {"destinations": dests}}}),
        )
        .await;
    let user = user_token(json!({"alg": "RS256", "typ": "JWT"}));
    for (i, host) in HOSTS.iter().enumerate() {
        let e = error_of(&t, &format!("token-{i}"), None).await;
        assert!(e.contains("private address"), "token URL on {host}: {e}");
        let e = error_of(&t, &format!("jwks-{i}"), Some(&user)).await;
        assert!(e.contains("private address"), "jwks_uri on {host}: {e}");
        assert!(e.contains("JWKS"), "{e}");
    }
    let jku = user_token(
        json!({"alg": "RS256", "kid": "k", "jku": format!("http://127.0.0.1:{port}/jwks")}),
    );
    let e = error_of(&t, "inline", Some(&jku)).await;
    assert!(e.contains("user token"), "{e}");
    assert_eq!(listener.connections(), 0, "nothing reached the listener");

    // With --allow-private-networks the same URLs are fetched: the listener was reachable.
    let open = TestApp::start_with(TestOptions::default()).await;
    let t = open
        .tenant(
            "sub-open",
            "inst-open",
            json!({"init_data": {"instance": {"destinations": [
                token_dest("token", &format!("http://127.0.0.1:{port}/token")),
                jwks_dest("jwks", &format!("http://localhost:{port}/jwks")),
            ]}}}),
        )
        .await;
    let e = error_of(&t, "token", None).await;
    assert!(e.contains("access_token"), "{e}");
    let e = error_of(&t, "jwks", Some(&user)).await;
    assert!(e.contains("no key"), "{e}");
    // One token request; the JWKS twice (a token whose key is missing reads the set once more).
    assert_eq!(listener.connections(), 3);
}

#[tokio::test]
async fn token_service_and_jwks_answers_over_one_mib_are_errors() {
    let big = format!(
        "{{\"access_token\":\"{}\",\"keys\":[]}}",
        "x".repeat((1 << 20) + 10)
    );
    let listener = Listener::start(big.into_bytes()).await;
    let port = listener.port;
    let app = TestApp::start_with(TestOptions::default()).await;
    let t = app
        .tenant(
            "sub-big",
            "inst-big",
            json!({"init_data": {"instance": {"destinations": [
                token_dest("token", &format!("http://127.0.0.1:{port}/token")),
                jwks_dest("jwks", &format!("http://127.0.0.1:{port}/jwks")),
            ]}}}),
        )
        .await;
    let e = error_of(&t, "token", None).await;
    assert!(e.contains("larger than 1048576 bytes"), "{e}");
    let user = user_token(json!({"alg": "RS256", "typ": "JWT"}));
    let e = error_of(&t, "jwks", Some(&user)).await;
    assert!(e.contains("larger than 1048576 bytes"), "{e}");
    assert_eq!(listener.connections(), 2);
}
