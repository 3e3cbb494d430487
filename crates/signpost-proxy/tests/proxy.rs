//! `signpost-proxy` end to end, against real parts on loopback: the Signpost server as the
//! Destination service (real router, real SQLite), the real OAuth server of the token-flow tests,
//! a hyper echo upstream (HTTP/1.1, h2c, WebSocket), a TCP echo server and an HTTP forward proxy
//! standing in for the connectivity proxy. The proxy is the real binary.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use signpost_core::TrustedIssuer;
use signpost_test_utils::oauth_peer::OAuthPeer;
use signpost_test_utils::peers::{ws_echo_roundtrip, EchoServer, ForwardProxy, TcpEcho};
use signpost_test_utils::{Tenant, TestApp, TestOptions};
use support::{free_port, write_secret, Proxy, Raw};

const CLIENT: &str = "dest-client";
const SECRET: &str = "dest-secret-Qw3";

async fn oauth_peer() -> OAuthPeer {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({
        "clients": [{"id": CLIENT, "secret": SECRET}],
        "token_lifetime": 600
    }))
    .await;
    peer
}

/// A Signpost server trusting `peer`'s user tokens, and a tenant with `destinations` on
/// instance level.
async fn signpost(peer: Option<&OAuthPeer>, destinations: Vec<Value>) -> (TestApp, Tenant) {
    let app = TestApp::start_with(TestOptions {
        trusted_issuers: peer
            .map(|p| TrustedIssuer {
                issuer: p.issuer().trim_end_matches('/').to_owned(),
                jwks_uri: p.jwks_url(),
            })
            .into_iter()
            .collect(),
        ..TestOptions::default()
    })
    .await;
    let t = app
        .tenant(
            "sub-proxy",
            "inst-proxy",
            json!({"init_data": {"instance": {"destinations": destinations}}}),
        )
        .await;
    (app, t)
}

fn http_dest(name: &str, url: &str, extra: Value) -> Value {
    let mut d = json!({"Name": name, "Type": "HTTP", "URL": url, "ProxyType": "Internet", "Authentication": "NoAuthentication"});
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

/// The values file with one instance `dest` read from `--credentials-dir`, `routes` (YAML list
/// items) and extra `destinationService` keys.
fn values(routes: &str, service_extra: &str, config_extra: &str) -> String {
    format!(
        "config:\n  integration:\n    destinationService:\n      defaultInstanceName: dest\n{service_extra}      instances:\n        - name: dest\n          serviceCredentials: {{secretName: dest-key, secretKey: key.json}}\n{config_extra}destinations:\n{routes}"
    )
}

fn route(name: &str, destination: &str) -> String {
    format!("  - name: {name}\n    namespace: default\n    spec:\n      destinationRef: {{name: {destination}}}\n")
}

/// A directory with `dest.json` holding the tenant's service key.
fn credentials_dir(t: &Tenant) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dest.json"), t.key.to_string()).unwrap();
    dir
}

async fn start(t: &Tenant, config: &str, extra_args: &[&str]) -> (Proxy, tempfile::TempDir) {
    let creds = credentials_dir(t);
    let dir = creds.path().to_str().unwrap().to_owned();
    let mut args = vec![
        "--credentials-dir",
        dir.as_str(),
        "--allow-private-networks",
    ];
    args.extend_from_slice(extra_args);
    let proxy = Proxy::start(config, &args).await;
    (proxy, creds)
}

fn assert_error_headers(h: &reqwest::header::HeaderMap, origin: &str) {
    assert!(h.contains_key("x-error-message"), "{h:?}");
    assert_eq!(h["x-error-origin"], origin, "{h:?}");
    assert!(h.contains_key("x-internal-error-code"), "{h:?}");
    assert!(h.contains_key("x-request-id"), "{h:?}");
    assert_eq!(h["x-proxy-server"], "Transparent Proxy");
}

#[tokio::test]
async fn static_routes_inject_credentials_and_forward() {
    let echo = EchoServer::start().await;
    let peer = oauth_peer().await;
    let (_app, t) = signpost(
        None,
        vec![
            http_dest(
                "basic-dest",
                &format!("{}/base", echo.url()),
                json!({"Authentication": "BasicAuthentication", "User": "u", "Password": "p-Secret-9",
                       "URL.headers.x-extra": "from-destination", "URL.queries.api-key": "k1"}),
            ),
            http_dest("open-dest", &echo.url(), json!({})),
            http_dest("ftp-dest", "ftp://files.example.com/in", json!({})),
            http_dest(
                "cc-dest",
                &echo.url(),
                json!({"Authentication": "OAuth2ClientCredentials", "clientId": CLIENT, "clientSecret": SECRET,
                       "tokenServiceURL": peer.token_url()}),
            ),
        ],
    )
    .await;
    let lost = "  - name: lost\n    namespace: default\n    spec:\n      destinationRef: {name: basic-dest}\n      destinationServiceInstanceName: nope\n";
    let config = values(
        &(route("basic", "basic-dest")
            + &route("cc", "cc-dest")
            + &route("open", "open-dest")
            + &route("ftp", "ftp-dest")
            + lost),
        "",
        "",
    );
    let (proxy, _creds) = start(&t, &config, &[]).await;

    let (status, v, h) = proxy
        .get_json(
            "basic.default:8080",
            "/items/1?x=y",
            &[
                ("x-request-id", "req-abc-1"),
                ("x-forwarded-for", "10.9.9.9"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/base/items/1");
    assert_eq!(v["query"], "x=y&api-key=k1");
    assert_eq!(v["headers"]["authorization"][0], "Basic dTpwLVNlY3JldC05");
    assert_eq!(v["headers"]["x-extra"][0], "from-destination");
    assert_eq!(v["headers"]["x-forwarded-for"][0], "10.9.9.9, 127.0.0.1");
    assert_eq!(v["headers"]["x-forwarded-host"][0], "basic.default:8080");
    assert_eq!(v["headers"]["x-forwarded-proto"][0], "http");
    assert!(h.get("x-error-message").is_none());

    // Every Host form reaches the same route.
    for host in [
        "basic",
        "basic.default",
        "basic.default.svc",
        "basic.default.svc.cluster.local:80",
    ] {
        let (status, v, _) = proxy.get_json(host, "/", &[]).await;
        assert_eq!(status, 200, "{host}: {v}");
        assert_eq!(v["path"], "/base", "{host}");
    }

    // OAuth2ClientCredentials: the token from the real OAuth server, fetched once for two calls.
    peer.clear_requests().await;
    for _ in 0..2 {
        let (status, v, _) = proxy.get_json("cc.default", "/x", &[]).await;
        assert_eq!(status, 200, "{v}");
        let auth = v["headers"]["authorization"][0].as_str().unwrap();
        assert!(auth.starts_with("Bearer ey"), "{auth}");
    }
    assert_eq!(
        peer.requests().await.len(),
        1,
        "the destination and its token are cached"
    );

    // Keep-alive to the target: many requests, few connections.
    let before = echo.connections();
    for _ in 0..20 {
        let (status, _, _) = proxy.get_json("basic.default", "/", &[]).await;
        assert_eq!(status, 200);
    }
    assert!(echo.connections() - before <= 2, "connections are pooled");

    // Unknown host: 404 with the error headers, the caller's request id among them.
    let (status, _, h) = proxy
        .get_json("nope.default", "/", &[("x-request-id", "req-abc-2")])
        .await;
    assert_eq!(status, 404);
    assert_error_headers(&h, "Transparent Proxy");
    assert_eq!(h["x-request-id"], "req-abc-2");

    // A route naming an instance that is not configured is loaded with the others and
    // answered 502 (PROXY.md §3.5); the log says why at load.
    let (status, _, h) = proxy.get_json("lost.default", "/", &[]).await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Transparent Proxy");
    let message = h["x-error-message"].to_str().unwrap();
    assert!(message.contains("'nope'"), "{message}");
    assert!(
        proxy.log().contains(
            "route 'lost' in namespace 'default': The Destination service instance 'nope'"
        ),
        "{}",
        proxy.log()
    );

    // A destination URL the proxy cannot call: 404 (PROXY.md §3.5).
    let (status, _, h) = proxy.get_json("ftp.default", "/", &[]).await;
    assert_eq!(status, 404);
    assert_error_headers(&h, "Transparent Proxy");
    assert!(
        h["x-error-message"]
            .to_str()
            .unwrap()
            .ends_with("(ConfigurationError-ReferencedDestination-UrlNotSupported)"),
        "{h:?}"
    );

    // The workload's bearer token is for the Destination service, never for the target, also
    // when the destination does not use it; other credentials of the workload pass.
    let (status, v, _) = proxy
        .get_json(
            "open.default",
            "/",
            &[("authorization", "Bearer workload-jwt")],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    let (status, v, _) = proxy
        .get_json(
            "open.default",
            "/",
            &[("authorization", "Basic d29yazpsb2Fk")],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["headers"]["authorization"][0], "Basic d29yazpsb2Fk");

    // Static routes refuse the dynamic headers; duplicated headers are refused.
    for (header, value) in [
        ("X-Destination-Name", "cc-dest"),
        ("X-Fragment-Name", "frag"),
        ("X-Fragment-Optional", "true"),
        ("X-Destination-Level", "subaccount"),
        ("X-Fragment-Level", "instance"),
    ] {
        let (status, _, h) = proxy
            .get_json("basic.default", "/", &[(header, value)])
            .await;
        assert_eq!(status, 400, "{header}");
        assert_error_headers(&h, "Transparent Proxy");
    }
    for (header, shown) in [
        ("authorization", "Authorization"),
        (
            "sap-connectivity-scc-location_id",
            "SAP-Connectivity-SCC-Location_ID",
        ),
        ("x-chain-var-subject", "X-Chain-Var-subject"),
    ] {
        let res = proxy
            .req(Method::GET, "basic.default", "/")
            .header(header, "a")
            .header(header, "b")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{header}");
        assert_eq!(
            res.headers()["x-error-message"],
            format!("The '{shown}' header should be passed only once").as_str()
        );
    }
    let res = proxy
        .req(Method::GET, "basic.default", "/")
        .header("X-Chain-Name", "a")
        .header("X-Chain-Name", "b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers()["x-error-message"],
        "The 'X-Chain-Name' header should be passed only once"
    );

    // Metrics count what happened.
    let metrics = proxy.admin_text("/metrics").await;
    assert!(
        metrics.contains("signpost_proxy_requests_total{route=\"basic.default\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signpost_proxy_destination_cache_total{result=\"hit\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("signpost_proxy_target_latency_seconds_bucket"),
        "{metrics}"
    );
    // SAP's names: four routes with an instance, one (`lost`) without.
    for line in [
        "tp_destination_crs{Available=\"True\"} 4",
        "tp_destination_crs{Available=\"False\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    for name in ["tp_cpu_percent ", "tp_memory_bytes "] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "{name} in {metrics}"
        );
    }

    // No secret in the log.
    let log = proxy.log();
    assert!(log.contains("req-abc-1"), "request ids are logged: {log}");
    for secret in [
        "p-Secret-9",
        "dTpwLVNlY3JldC05",
        SECRET,
        t.key["clientsecret"].as_str().unwrap(),
    ] {
        assert!(!log.contains(secret), "a secret leaked into the log");
    }
}

#[tokio::test]
async fn dynamic_routes_take_the_destination_from_headers() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(
        None,
        vec![
            http_dest("one", &format!("{}/one", echo.url()), json!({})),
            http_dest("two", &format!("{}/two", echo.url()), json!({})),
            http_dest("ftp-one", "ftp://files.example.com/in", json!({})),
        ],
    )
    .await;
    // A fragment on subaccount level, found with its level.
    let res = t
        .post(
            "/v1/subaccountDestinationFragments",
            json!({"FragmentName": "frag", "URL.headers.x-frag": "yes"}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    // A static route may name a fragment too, with its level and without the destination's.
    let framed = "  - name: framed\n    namespace: default\n    spec:\n      destinationRef: {name: one}\n      fragmentRef: {name: frag, level: subaccount}\n";
    let config = values(&(route("gateway", "\"*\"") + framed), "", "");
    let (proxy, _creds) = start(&t, &config, &[]).await;
    let (status, v, _) = proxy
        .get_json("gateway.default", "/p", &[("X-Destination-Name", "two")])
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["path"], "/two/p");
    assert!(
        v["headers"].get("x-destination-name").is_none(),
        "control headers are removed"
    );

    // The subaccount's fragment merged: with both levels; with the fragment's level alone (the
    // destination looked up as without levels); and on the static route.
    let both_levels = [
        ("X-Destination-Name", "one"),
        ("X-Destination-Level", "instance"),
        ("X-Fragment-Name", "frag"),
        ("X-Fragment-Level", "subaccount"),
    ];
    let fragment_level = [
        ("X-Destination-Name", "two"),
        ("X-Fragment-Name", "frag"),
        ("X-Fragment-Level", "subaccount"),
    ];
    for (host, headers, path) in [
        ("gateway.default", &both_levels[..], "/one/p"),
        ("gateway.default", &fragment_level[..], "/two/p"),
        ("framed.default", &[][..], "/one/p"),
    ] {
        let (status, v, _) = proxy.get_json(host, "/p", headers).await;
        assert_eq!(status, 200, "{host} {headers:?}: {v} {}", proxy.log());
        assert_eq!(v["path"], path);
        assert_eq!(v["headers"]["x-frag"][0], "yes");
    }

    // SAP's reasons name the fragment when one was merged into the destination.
    for (fragment, reason) in [
        (
            None,
            "(ConfigurationError-ReferencedDestination-UrlNotSupported)",
        ),
        (
            Some("frag"),
            "(ConfigurationError-ReferencedDestinationWithFragment-UrlNotSupported)",
        ),
    ] {
        let mut headers = vec![("X-Destination-Name", "ftp-one")];
        if let Some(f) = fragment {
            headers.extend([
                ("X-Destination-Level", "instance"),
                ("X-Fragment-Name", f),
                ("X-Fragment-Level", "subaccount"),
            ]);
        }
        let (status, _, h) = proxy.get_json("gateway.default", "/", &headers).await;
        assert_eq!(status, 404, "{fragment:?} {h:?}");
        let message = h["x-error-message"].to_str().unwrap();
        assert!(message.ends_with(reason), "{message}");
    }

    // Missing, bad and unknown names.
    let (status, _, h) = proxy.get_json("gateway.default", "/", &[]).await;
    assert_eq!(status, 400);
    assert_error_headers(&h, "Transparent Proxy");
    let (status, _, _) = proxy
        .get_json(
            "gateway.default",
            "/",
            &[("X-Destination-Name", "bad name!")],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, _) = proxy
        .get_json(
            "gateway.default",
            "/",
            &[
                ("X-Destination-Name", "one"),
                ("X-Destination-Level", "galaxy"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    let (status, _, h) = proxy
        .get_json("gateway.default", "/", &[("X-Destination-Name", "missing")])
        .await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Destination Service");
    assert_eq!(h["x-internal-error-code"], "404");
}

#[tokio::test]
async fn the_workloads_bearer_token_becomes_the_user_token() {
    let echo = EchoServer::start().await;
    let peer = oauth_peer().await;
    let (_app, t) = signpost(
        Some(&peer),
        vec![http_dest(
            "jwtb",
            &echo.url(),
            json!({"Authentication": "OAuth2JWTBearer", "clientId": CLIENT, "clientSecret": SECRET,
                   "tokenServiceURL": peer.token_url()}),
        )],
    )
    .await;
    let config = values(&route("user-api", "jwtb"), "", "");
    let (proxy, _creds) = start(&t, &config, &[]).await;
    let user = peer
        .user_token(json!({"sub": "carol", "user_name": "carol"}))
        .await;
    peer.clear_requests().await;
    let (status, v, _) = proxy
        .get_json(
            "user-api.default",
            "/me",
            &[("Authorization", &format!("Bearer {user}"))],
        )
        .await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    let sent = v["headers"]["authorization"][0].as_str().unwrap();
    assert!(sent.starts_with("Bearer "), "{sent}");
    assert_ne!(
        sent,
        format!("Bearer {user}"),
        "the user's token is exchanged, not forwarded"
    );
    let grant = peer.requests().await.pop().unwrap();
    assert_eq!(
        grant["form"]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(grant["form"]["assertion"], user.as_str());
    assert!(
        !proxy.log().contains(&user),
        "the user token is never logged"
    );

    // Without a user token the flow fails and the proxy says so.
    let (status, _, h) = proxy.get_json("user-api.default", "/me", &[]).await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Destination Service");
}

#[tokio::test]
async fn the_cache_serves_while_the_destination_service_is_down_and_picks_up_changes() {
    let echo = EchoServer::start().await;
    let (app, t) = signpost(
        None,
        vec![
            http_dest("warm", &echo.url(), json!({"URL.headers.x-version": "1"})),
            http_dest("cold", &echo.url(), json!({})),
        ],
    )
    .await;
    let config = values(
        &(route("warm", "warm") + &route("cold", "cold")),
        "      cacheSeconds: 1\n",
        "",
    );
    let (proxy, _creds) = start(&t, &config, &[]).await;
    let (status, v, _) = proxy.get_json("warm.default", "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(v["headers"]["x-version"][0], "1");

    // A change in Signpost is seen after the cache time.
    let res = t
        .put(
            "/v1/instanceDestinations",
            http_dest("warm", &echo.url(), json!({"URL.headers.x-version": "2"})),
        )
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, v, _) = proxy.get_json("warm.default", "/", &[]).await;
    assert_eq!(v["headers"]["x-version"][0], "2");

    // The Destination service goes away: the warm destination is served stale, the cold one is a 502.
    let mut app = app;
    app.shutdown().await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, v, _) = proxy.get_json("warm.default", "/", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["headers"]["x-version"][0], "2");
    let (status, _, h) = proxy.get_json("cold.default", "/", &[]).await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Destination Service");
    let metrics = proxy.admin_text("/metrics").await;
    let stale: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("signpost_proxy_destination_cache_total{result=\"stale\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(stale >= 1, "the stale serve is counted: {metrics}");
}

#[tokio::test]
async fn secrets_single_key_multi_key_and_inline() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(None, vec![http_dest("d", &echo.url(), json!({}))]).await;
    let secrets = tempfile::tempdir().unwrap();
    let key = t.key.clone();
    // Single-key secret in another namespace.
    write_secret(
        secrets.path(),
        "keys",
        "single",
        &[("key.json", &key.to_string())],
    );
    // Multi-key secret as the SAP BTP service operator writes it, in the proxy's namespace.
    let mut keys: Vec<(String, String)> = key
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let props: Vec<Value> = keys
        .iter()
        .map(
            |(k, v)| json!({"name": k, "format": if v.starts_with('{') { "json" } else { "text" }}),
        )
        .collect();
    keys.push(("instance_name".into(), "inst-proxy".into()));
    keys.push((
        ".metadata".into(),
        json!({"metaDataProperties": [{"name": "instance_name", "format": "text"}], "credentialProperties": props}).to_string(),
    ));
    let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    write_secret(secrets.path(), "proxy-ns", "multi", &refs);
    let inline = base64_of(&key.to_string());
    let config = format!(
        "config:\n  integration:\n    destinationService:\n      instances:\n\
         \x20       - name: single\n          serviceCredentials: {{secretName: single, secretKey: key.json, secretNamespace: keys}}\n\
         \x20       - name: multi\n          serviceCredentials: {{secretName: multi}}\n\
         \x20       - name: inline\n          serviceCredentials: {{secretData: {inline}}}\n\
         destinations:\n\
         \x20 - {{name: a, namespace: default, spec: {{destinationRef: {{name: d}}, destinationServiceInstanceName: single}}}}\n\
         \x20 - {{name: b, namespace: default, spec: {{destinationRef: {{name: d}}, destinationServiceInstanceName: multi}}}}\n\
         \x20 - {{name: c, namespace: default, spec: {{destinationRef: {{name: d}}, destinationServiceInstanceName: inline}}}}\n"
    );
    let dir = secrets.path().to_str().unwrap().to_owned();
    let proxy = Proxy::start(
        &config,
        &[
            "--secrets-dir",
            &dir,
            "--namespace",
            "proxy-ns",
            "--allow-private-networks",
        ],
    )
    .await;
    for host in ["a.default", "b.default", "c.default"] {
        let (status, v, _) = proxy.get_json(host, "/", &[]).await;
        assert_eq!(status, 200, "{host}: {v} {}", proxy.log());
    }
    let (ready, v) = proxy.admin_json("/readyz").await;
    assert_eq!(ready, 200);
    assert_eq!(v["instances"]["multi"], "ok", "{v}");

    // A rotated secret (Kubernetes swaps ..data) is picked up; a broken one keeps the last good
    // configuration and /readyz says why.
    write_secret(
        secrets.path(),
        "keys",
        "single",
        &[("key.json", "{not json")],
    );
    let mut ready_status = 200;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ready_status = proxy.admin_json("/readyz").await.0;
        if ready_status == 503 {
            break;
        }
    }
    assert_eq!(ready_status, 503);
    let v: Value = proxy.admin_json("/readyz").await.1;
    assert!(
        v["configuration"]
            .as_str()
            .unwrap()
            .contains("instances[0].serviceCredentials"),
        "{v}"
    );
    let (status, _, _) = proxy.get_json("a.default", "/", &[]).await;
    assert_eq!(status, 200, "the last good configuration stays in use");
    let status: Value = proxy.admin_json("/status").await.1;
    assert_eq!(status["Status"], "warning", "{status}");
    assert!(status["Components"]["sap-transp-proxy-http"]["Status"].is_string());
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn configuration_reloads_add_routes_without_dropping_connections() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(None, vec![http_dest("d", &echo.url(), json!({}))]).await;
    let config = values(&route("first", "d"), "", "");
    let (proxy, _creds) = start(&t, &config, &[]).await;
    let (status, _, _) = proxy.get_json("second.default", "/", &[]).await;
    assert_eq!(status, 404);
    // A slow request in flight while the file changes.
    let slow = {
        let c = proxy.client.clone();
        let url = proxy.url("/slow/1500");
        tokio::spawn(async move {
            c.get(url)
                .header("Host", "first.default")
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = values(&(route("first", "d") + &route("second", "d")), "", "");
    let path = Proxy::config_path(proxy.dir.path());
    std::fs::write(path.with_extension("tmp"), next).unwrap();
    std::fs::rename(path.with_extension("tmp"), &path).unwrap();
    let mut status = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = proxy.get_json("second.default", "/", &[]).await.0;
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200, "{}", proxy.log());
    assert_eq!(slow.await.unwrap(), 200, "the request in flight finished");

    // A bad file keeps the routes.
    std::fs::write(&path, "config: [").unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(proxy.get_json("second.default", "/", &[]).await.0, 200);
    let v: Value = proxy.admin_json("/readyz").await.1;
    assert_ne!(v["configuration"], "loaded", "{v}");
}

#[tokio::test]
async fn bodies_stream_both_ways_with_flat_memory() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(None, vec![http_dest("big", &echo.url(), json!({}))]).await;
    let (proxy, _creds) = start(&t, &values(&route("big", "big"), "", ""), &[]).await;
    let _ = proxy.get_json("big.default", "/", &[]).await;
    let before = proxy.peak_rss_kib();
    const SIZE: u64 = 100_000_000;
    // 100 MB down.
    let res = proxy
        .req(Method::GET, "big.default", &format!("/bytes/{SIZE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut res = res;
    let mut n = 0u64;
    while let Some(chunk) = res.chunk().await.unwrap() {
        n += chunk.len() as u64;
    }
    assert_eq!(n, SIZE);
    // 100 MB up, streamed from a generator, with Expect: 100-continue.
    let stream = futures_stream(SIZE);
    let res = proxy
        .req(Method::POST, "big.default", "/upload")
        .header("Expect", "100-continue")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["body_len"], SIZE);
    let after = proxy.peak_rss_kib();
    println!("proxy peak RSS before {before} KiB, after 2 x 100 MB {after} KiB");
    assert!(
        after < before + 30 * 1024,
        "memory grew from {before} KiB to {after} KiB while streaming"
    );
}

fn futures_stream(size: u64) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunk = 256 * 1024u64;
    let count = size.div_ceil(chunk);
    tokio_stream_iter((0..count).map(move |i| {
        let len = chunk.min(size - i * chunk) as usize;
        Ok(vec![7u8; len])
    }))
}

/// A stream over an iterator (no extra dependency).
fn tokio_stream_iter<I: Iterator + Unpin>(iter: I) -> impl futures_core::Stream<Item = I::Item> {
    struct It<I>(I);
    impl<I: Iterator + Unpin> futures_core::Stream for It<I> {
        type Item = I::Item;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<I::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    It(iter)
}

#[tokio::test]
async fn http2_websockets_and_tcp() {
    let echo = EchoServer::start().await;
    let tcp_echo = TcpEcho::start();
    let tcp_port = free_port();
    let (_app, t) = signpost(
        None,
        vec![
            http_dest("web", &echo.url(), json!({})),
            json!({"Name": "raw", "Type": "TCP", "Address": format!("tcp://{}", tcp_echo.addr), "ProxyType": "Internet", "Authentication": "NoAuthentication"}),
        ],
    )
    .await;
    // A TCP route without `spec.service` listens on SAP's default port.
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", 20004)).is_ok(),
        "this test needs 127.0.0.1:20004 free"
    );
    let routes = route("web", "web")
        + &format!("  - name: raw\n    namespace: default\n    spec:\n      destinationRef: {{name: raw}}\n      service: {{port: {tcp_port}}}\n")
        + &route("raw-default", "raw");
    let (proxy, _creds) = start(&t, &values(&routes, "", ""), &[]).await;

    // HTTP/2 with prior knowledge (curl).
    let url = proxy.url("/h2");
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-H",
            "Host: web.default",
            &url,
        ])
        .output()
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        v["path"],
        "/h2",
        "{} {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );

    // WebSocket upgrade passed through.
    let got = ws_echo_roundtrip(
        &format!("127.0.0.1:{}", proxy.port),
        "web.default",
        "/ws",
        "hello ws",
    )
    .await;
    assert_eq!(got, "hello ws");

    // TCP on its own port, and on 20004 for the route that names none.
    for port in [tcp_port, 20004] {
        let mut answer = String::new();
        for _ in 0..60 {
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                s.write_all(b"ping over tcp").await.unwrap();
                let mut buf = vec![0u8; 13];
                if s.read_exact(&mut buf).await.is_ok() {
                    answer = String::from_utf8_lossy(&buf).into_owned();
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer, "ping over tcp", "port {port}: {}", proxy.log());
    }
}

#[tokio::test]
async fn on_premise_goes_through_the_connectivity_proxy() {
    let echo = EchoServer::start().await;
    let cp = ForwardProxy::start_with_virtual_hosts(&[("erp.internal:44300", echo.addr)]);
    // A name (not a literal) that resolves to this machine: the machine's own host name.
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_owned();
    let host_is_private = tokio::net::lookup_host((host.as_str(), 0))
        .await
        .map(|mut a| a.all(|a| signpost_net::is_private(a.ip())))
        .unwrap_or(false);
    let (_app, t) = signpost(
        None,
        vec![
            http_dest(
                "erp",
                "http://erp.internal:44300/sap",
                json!({"ProxyType": "OnPremise", "CloudConnectorLocationId": "loc-1"}),
            ),
            http_dest(
                "erp-pp",
                "http://erp.internal:44300/pp",
                json!({"ProxyType": "OnPremise", "Authentication": "PrincipalPropagation"}),
            ),
            http_dest("public", &echo.url(), json!({})),
            http_dest("named", &format!("http://{host}:{}", echo.port), json!({})),
        ],
    )
    .await;
    let with_cp = values(
        &(route("erp", "erp") + &route("erp-pp", "erp-pp") + &route("public", "public")),
        "",
        &format!(
            "    connectivityProxy:\n      serviceName: 127.0.0.1\n      http:\n        port: {}\n",
            cp.port
        ),
    );
    let (proxy, _creds) = start(&t, &with_cp, &[]).await;
    let (status, v, _) = proxy.get_json("erp.default", "/odata", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/sap/odata");
    let seen = cp.seen();
    let last = seen.last().unwrap();
    assert_eq!(
        last.header("sap-connectivity-scc-location_id"),
        Some("loc-1")
    );
    // The request's header wins over the destination's property.
    let (status, _, _) = proxy
        .get_json(
            "erp.default",
            "/",
            &[("SAP-Connectivity-SCC-Location_ID", "loc-2")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        cp.seen()
            .last()
            .unwrap()
            .header("sap-connectivity-scc-location_id"),
        Some("loc-2")
    );
    // PrincipalPropagation: the workload's user token goes to the connectivity proxy as
    // `SAP-Connectivity-Authentication`, never as the target's `Authorization`.
    let user = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJjYXJvbCJ9.c2ln";
    let (status, v, _) = proxy
        .get_json(
            "erp-pp.default",
            "/me",
            &[("Authorization", &format!("Bearer {user}"))],
        )
        .await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/pp/me");
    assert!(v["headers"].get("authorization").is_none(), "{v}");
    assert_eq!(
        cp.seen()
            .last()
            .unwrap()
            .header("sap-connectivity-authentication"),
        Some(format!("Bearer {user}").as_str())
    );
    assert!(
        !proxy.log().contains(user),
        "the user token is never logged"
    );
    drop(proxy);

    // The spelling of the same setting: `host` and `httpPort`.
    let with_host = values(
        &(route("erp", "erp") + &route("public", "public")),
        "",
        &format!(
            "    connectivityProxy:\n      host: 127.0.0.1\n      httpPort: {}\n",
            cp.port
        ),
    );
    let (proxy, _creds) = start(&t, &with_host, &[]).await;
    let before = cp.seen().len();
    let (status, v, _) = proxy.get_json("erp.default", "/odata", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/sap/odata");
    assert_eq!(
        cp.seen().len(),
        before + 1,
        "the call went through the connectivity proxy"
    );
    drop(proxy);

    // Without a connectivity proxy: 502, saying so. Without --allow-private-networks a loopback
    // target is refused and the upstream sees nothing.
    let creds = credentials_dir(&t);
    let dir = creds.path().to_str().unwrap().to_owned();
    let proxy = Proxy::start(
        &values(&(route("erp", "erp") + &route("public", "public")), "", ""),
        &["--credentials-dir", &dir],
    )
    .await;
    let (status, _, h) = proxy.get_json("erp.default", "/", &[]).await;
    assert_eq!(status, 502);
    assert!(h["x-error-message"]
        .to_str()
        .unwrap()
        .contains("connectivity proxy"));
    let seen_before = echo.requests();
    let (status, _, h) = proxy.get_json("public.default", "/", &[]).await;
    assert_eq!(status, 502);
    assert!(
        h["x-error-message"]
            .to_str()
            .unwrap()
            .contains("(ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported)"),
        "{h:?}"
    );
    assert_eq!(
        echo.requests(),
        seen_before,
        "the private target saw no request"
    );
    // A name resolving to a private address is refused by the resolver, with the same reason.
    if host_is_private {
        let proxy_routes = values(&route("named", "named"), "", "");
        std::fs::write(Proxy::config_path(proxy.dir.path()), proxy_routes).unwrap();
        let mut status = 404;
        let mut h = reqwest::header::HeaderMap::new();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (status, _, h) = proxy.get_json("named.default", "/", &[]).await;
            if status != 404 {
                break;
            }
        }
        assert_eq!(status, 502, "{}", proxy.log());
        assert!(
            h["x-error-message"]
                .to_str()
                .unwrap()
                .contains("(ConfigurationError-ReferencedDestination-LoopbackUrlNotSupported)"),
            "{h:?}"
        );
        assert_eq!(
            echo.requests(),
            seen_before,
            "the private target saw no request"
        );
    } else {
        println!("{host} does not resolve to private addresses only; the name case is not checked");
    }
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(None, vec![http_dest("d", &echo.url(), json!({}))]).await;
    let (mut proxy, _creds) = start(&t, &values(&route("d", "d"), "", ""), &[]).await;
    assert_eq!(proxy.get_json("d.default", "/", &[]).await.0, 200);
    let c = proxy.client.clone();
    let url = proxy.url("/slow/1500");
    let in_flight = tokio::spawn(async move {
        c.get(url)
            .header("Host", "d.default")
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // New connections are refused while the request in flight finishes.
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", proxy.port))
        .await
        .is_err());
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    let status = proxy
        .wait(Duration::from_secs(10))
        .await
        .expect("the proxy exits after draining");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn client_certificates_and_trust_stores_reach_an_mtls_target() {
    let echo = EchoServer::start().await;
    let (ca, server_cert, server_key, client_p12) =
        signpost_test_utils::pki::mtls_material("p12-pass");
    let nginx =
        signpost_test_utils::nginx::Nginx::mtls_proxy(&echo.url(), &server_cert, &server_key, &ca);
    let url = format!("https://127.0.0.1:{}/api", nginx.port);
    let app = TestApp::start().await;
    let t = app
        .tenant(
            "sub-mtls",
            "inst-mtls",
            json!({"init_data": {"instance": {
                "certificates": [
                    {"Name": "client.p12", "Type": "PKCS12", "Content": client_p12, "Password": "p12-pass"},
                    {"Name": "ca.pem", "Content": signpost_test_utils::pki::b64(ca.as_bytes())}
                ],
                "destinations": [
                    http_dest("mtls", &url, json!({"Authentication": "ClientCertificateAuthentication",
                        "KeyStoreLocation": "client.p12", "KeyStorePassword": "p12-pass", "TrustStoreLocation": "ca.pem"})),
                    http_dest("no-client-cert", &url, json!({"Authentication": "ClientCertificateAuthentication", "TrustStoreLocation": "ca.pem"})),
                    http_dest("no-trust", &url, json!({})),
                    http_dest("trust-all", &url, json!({"Authentication": "ClientCertificateAuthentication",
                        "KeyStoreLocation": "client.p12", "KeyStorePassword": "p12-pass", "TrustAll": "true"})),
                ]
            }}}),
        )
        .await;
    let config = values(
        &(route("mtls", "mtls")
            + &route("no-client-cert", "no-client-cert")
            + &route("no-trust", "no-trust")
            + &route("trust-all", "trust-all")),
        "",
        "",
    );
    let (proxy, _creds) = start(&t, &config, &[]).await;
    let (status, v, _) = proxy.get_json("mtls.default", "/orders", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/api/orders");
    assert_eq!(
        v["headers"]["x-client-verify"][0], "SUCCESS",
        "nginx verified the proxy's client certificate"
    );
    // Without the client certificate nginx refuses, and its answer comes back unchanged.
    let res = proxy
        .req(Method::GET, "no-client-cert.default", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        res.headers().get("x-proxy-server").is_none(),
        "the target's own answer"
    );
    // Without the trust store the proxy does not trust nginx's certificate.
    let (status, _, h) = proxy.get_json("no-trust.default", "/", &[]).await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Transparent Proxy");
    // TrustAll: the certificate is not checked, the client certificate still presented.
    let (status, v, _) = proxy.get_json("trust-all.default", "/x", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["headers"]["x-client-verify"][0], "SUCCESS");
    assert!(
        !proxy.log().contains("p12-pass"),
        "the key store password is never logged"
    );
}

#[tokio::test]
async fn an_x509_service_key_with_its_private_key_in_a_secret_of_its_own() {
    let echo = EchoServer::start().await;
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..TestOptions::default()
    })
    .await;
    let res = app
        .provision(
            "inst-x509",
            "sub-x509",
            json!({"init_data": {"instance": {"destinations": [http_dest("d", &echo.url(), json!({}))]}}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .broker(Method::PUT, "/v2/service_instances/inst-x509/service_bindings/k-x509")
        .json(&json!({"service_id": signpost_core::CATALOG_SERVICE_ID, "plan_id": signpost_core::CATALOG_PLAN_ID,
                      "parameters": {"xsuaa": {"credential-type": "x509"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut key = res.json::<Value>().await.unwrap()["credentials"].clone();
    assert_eq!(key["credential-type"], "x509");
    assert!(key.get("clientsecret").is_none());
    // The private key lives in a secret of its own, as SAP's docs show (`pk.pem`).
    let private_key = key.as_object_mut().unwrap().remove("key").unwrap();
    let secrets = tempfile::tempdir().unwrap();
    write_secret(
        secrets.path(),
        "default",
        "x509-key",
        &[("key.json", &key.to_string())],
    );
    write_secret(
        secrets.path(),
        "default",
        "x509-svc-key-private-key",
        &[("pk.pem", private_key.as_str().unwrap())],
    );
    let ca = app.https_ca_pem().unwrap().replace('\n', "\n      ");
    let config = format!(
        "config:\n  integration:\n    destinationService:\n      instances:\n        - name: x509\n          serviceCredentials:\n            secretName: x509-key\n            secretKey: key.json\n            privateKey:\n              secretName: x509-svc-key-private-key\n              secretInternalKey: pk.pem\n\
         additionalCAs:\n  pem: |\n      {ca}\ndestinations:\n{}",
        route("via-x509", "d")
    );
    let dir = secrets.path().to_str().unwrap().to_owned();
    let proxy = Proxy::start(
        &config,
        &["--secrets-dir", &dir, "--allow-private-networks"],
    )
    .await;
    let (status, v, _) = proxy.get_json("via-x509.default", "/x", &[]).await;
    assert_eq!(status, 200, "{v} {}", proxy.log());
    assert_eq!(v["path"], "/x");
    let (ready, v) = proxy.admin_json("/readyz").await;
    assert_eq!(ready, 200, "{v}");
    assert!(
        !proxy.log().contains("PRIVATE KEY"),
        "the private key is never logged"
    );
}

#[tokio::test]
async fn internet_destinations_honour_http_proxy_and_retries() {
    let echo = EchoServer::start().await;
    let corporate = ForwardProxy::start_with_virtual_hosts(&[("api.example.com:80", echo.addr)]);
    let (_app, t) = signpost(
        None,
        vec![
            http_dest("public", "http://api.example.com/v1", json!({})),
            http_dest("flaky", &format!("{}/status/503", echo.url()), json!({})),
        ],
    )
    .await;
    let config = values(
        &(route("public", "public") + &route("flaky", "flaky")),
        "",
        "  http:\n    retry:\n      maxRetries: 2\n      statusCodes: [503]\n",
    );
    let creds = credentials_dir(&t);
    let dir = creds.path().to_str().unwrap().to_owned();
    // The Destination service itself is on loopback and must not go through the corporate proxy.
    let proxy = Proxy::start_env(
        &config,
        &["--credentials-dir", &dir, "--allow-private-networks"],
        &[
            ("HTTP_PROXY", &corporate.url()),
            ("NO_PROXY", "127.0.0.1,localhost"),
        ],
    )
    .await;
    let (status, v, _) = proxy.get_json("public.default", "/orders", &[]).await;
    assert_eq!(status, 200, "{v} {} {:?}", proxy.log(), corporate.seen());
    assert_eq!(v["path"], "/v1/orders");
    let seen = corporate.seen();
    assert!(
        seen.iter()
            .any(|r| r.target == "http://api.example.com/v1/orders"),
        "the call went through HTTP_PROXY: {seen:?}"
    );

    // A GET answered 503 is tried 1 + maxRetries times; the last answer comes back unchanged.
    let before = echo.requests();
    let res = proxy
        .req(Method::GET, "flaky.default", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["x-upstream"], "echo");
    assert_eq!(echo.requests() - before, 3);
    // A request with a body is never replayed.
    let before = echo.requests();
    let res = proxy
        .req(Method::POST, "flaky.default", "/")
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(echo.requests() - before, 1);
    // The targets NO_PROXY names went direct.
    let direct = echo.addr.to_string();
    assert!(
        !corporate.seen().iter().any(|r| r.target.contains(&direct)),
        "NO_PROXY's targets never reach the corporate proxy: {:?}",
        corporate.seen()
    );
}

/// An `https://` target behind `HTTPS_PROXY`: the proxy tunnels with `CONNECT` through the
/// corporate proxy and still presents the destination's client certificate inside the tunnel.
#[tokio::test]
async fn https_targets_tunnel_through_https_proxy() {
    let echo = EchoServer::start().await;
    let (ca, server_cert, server_key, client_p12) =
        signpost_test_utils::pki::mtls_material("p12-pass");
    let nginx =
        signpost_test_utils::nginx::Nginx::mtls_proxy(&echo.url(), &server_cert, &server_key, &ca);
    let nginx_addr: std::net::SocketAddr = format!("127.0.0.1:{}", nginx.port).parse().unwrap();
    let corporate =
        ForwardProxy::start_with_virtual_hosts(&[("secure.example.com:443", nginx_addr)]);
    let app = TestApp::start().await;
    let t = app
        .tenant(
            "sub-https-proxy",
            "inst-https-proxy",
            json!({"init_data": {"instance": {
                "certificates": [
                    {"Name": "client.p12", "Type": "PKCS12", "Content": client_p12, "Password": "p12-pass"}
                ],
                "destinations": [
                    http_dest("secure", "https://secure.example.com/api", json!({"Authentication": "ClientCertificateAuthentication",
                        "KeyStoreLocation": "client.p12", "KeyStorePassword": "p12-pass", "TrustAll": "true"})),
                ]
            }}}),
        )
        .await;
    let config = values(&route("secure", "secure"), "", "");
    let creds = credentials_dir(&t);
    let dir = creds.path().to_str().unwrap().to_owned();
    let proxy = Proxy::start_env(
        &config,
        &["--credentials-dir", &dir],
        &[
            ("HTTPS_PROXY", &corporate.url()),
            ("NO_PROXY", "127.0.0.1,localhost"),
        ],
    )
    .await;
    let (status, v, _) = proxy.get_json("secure.default", "/orders", &[]).await;
    assert_eq!(status, 200, "{v} {} {:?}", proxy.log(), corporate.seen());
    assert_eq!(v["path"], "/api/orders");
    assert_eq!(v["headers"]["x-client-verify"][0], "SUCCESS");
    let seen = corporate.seen();
    assert!(
        seen.iter()
            .any(|r| r.method == "CONNECT" && r.target == "secure.example.com:443"),
        "the call was tunnelled through HTTPS_PROXY: {seen:?}"
    );
}

/// A target that reads the request and then answers with `reply` (possibly nothing, or only part
/// of a body) and keeps the connection open without sending more.
async fn stalling_target(
    reply: &'static [u8],
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(reply).await;
            open.push(conn);
        }
    });
    (addr, task)
}

/// A listener whose accept queue is full and never drained: the kernel drops further SYNs, so a
/// connection to it is neither refused nor made.
async fn unanswered_listener() -> (std::net::SocketAddr, Vec<tokio::net::TcpStream>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..3 {
        let connecting = tokio::net::TcpStream::connect(addr);
        if let Ok(Ok(c)) = tokio::time::timeout(Duration::from_millis(300), connecting).await {
            queued.push(c);
        }
    }
    // The listener stays open (leaked for the test's life) with its queue full.
    std::mem::forget(listener);
    (addr, queued)
}

#[tokio::test]
async fn slow_targets_time_out() {
    let (silent, _s) = stalling_target(b"").await;
    let (partial, _p) =
        stalling_target(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b").await;
    let (unanswered, _queued) = unanswered_listener().await;
    let (_app, t) = signpost(
        None,
        vec![
            http_dest(
                "unanswered",
                &format!("http://{unanswered}"),
                json!({"URL.connectionTimeoutInSeconds": "1"}),
            ),
            http_dest(
                "silent",
                &format!("http://{silent}"),
                json!({"URL.socketReadTimeoutInSeconds": "1"}),
            ),
            http_dest(
                "partial",
                &format!("http://{partial}"),
                json!({"URL.socketReadTimeoutInSeconds": "1"}),
            ),
        ],
    )
    .await;
    let config = values(
        &(route("silent", "silent")
            + &route("partial", "partial")
            + &route("unanswered", "unanswered")),
        "",
        "",
    );
    let (proxy, _creds) = start(&t, &config, &[]).await;
    // No connection within the destination's connect timeout: 504 after about that long.
    let started = std::time::Instant::now();
    let (status, _, h) = proxy.get_json("unanswered.default", "/", &[]).await;
    let took = started.elapsed();
    assert_eq!(status, 504, "{h:?} {}", proxy.log());
    assert_error_headers(&h, "Transparent Proxy");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "the connect timeout of 1 s was not the one applied: {took:?}"
    );
    // No answer within the destination's read timeout: 504 with the error headers.
    let (status, _, h) = proxy.get_json("silent.default", "/", &[]).await;
    assert_eq!(status, 504, "{}", proxy.log());
    assert_error_headers(&h, "Transparent Proxy");
    assert!(
        h["x-error-message"].to_str().unwrap().contains("timed out"),
        "{h:?}"
    );
    // The head came, then the target went quiet: the body is cut off, not waited for forever.
    let res = proxy
        .req(Method::GET, "partial.default", "/")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = tokio::time::timeout(Duration::from_secs(20), res.bytes())
        .await
        .expect("the proxy ends a stalled body");
    assert!(body.is_err(), "a body cut short is an error: {body:?}");
}

/// `--wait-for-config`: started before the operator wrote its files (the routes and the service
/// keys mounted on Kubernetes), the proxy is alive but not ready and says why, then serves as
/// soon as the files are there. Without the flag it refuses to start.
#[tokio::test]
async fn waits_for_files_another_process_writes() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(
        None,
        vec![http_dest(
            "later",
            &format!("{}/later", echo.url()),
            json!({}),
        )],
    )
    .await;
    let config = values("", "", "");
    let creds = tempfile::tempdir().unwrap();
    let routes = creds.path().join("routes.yaml");
    let dir = creds.path().to_str().unwrap().to_owned();
    let routes_arg = routes.to_str().unwrap().to_owned();
    let args = [
        "--credentials-dir",
        dir.as_str(),
        "--routes",
        routes_arg.as_str(),
        "--allow-private-networks",
    ];

    // Without the flag: exit code 2 and the reason.
    let mut refused = Proxy::start_failing(&config, &args).await;
    let status = refused.wait(Duration::from_secs(10)).await.expect("exits");
    assert_eq!(status.code(), Some(2), "{}", refused.log());
    assert!(refused.log().contains("routes.yaml"), "{}", refused.log());

    let mut with = args.to_vec();
    with.push("--wait-for-config");
    let proxy = Proxy::start(&config, &with).await;
    let (status, body) = proxy.admin_json("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["configuration"]["loaded"], false);
    assert!(
        body["configuration"]["error"]
            .as_str()
            .unwrap()
            .contains("routes.yaml"),
        "{body}"
    );
    // /status keeps SAP's shape while waiting: every component critical.
    let (status, body) = proxy.admin_json("/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["Status"], "critical", "{body}");
    for component in [
        "sap-transp-proxy-http",
        "sap-transp-proxy-tcp",
        "sap-transp-proxy-manager",
    ] {
        assert_eq!(
            body["Components"][component]["Status"], "critical",
            "{body}"
        );
    }
    assert!(
        body["Components"]["sap-transp-proxy-manager"]["Message"]
            .as_str()
            .unwrap()
            .contains("routes.yaml"),
        "{body}"
    );
    // The operator writes the routes, then the service key.
    std::fs::write(
        &routes,
        format!("destinations:\n{}", route("later", "later")),
    )
    .unwrap();
    std::fs::write(creds.path().join("dest.json"), t.key.to_string()).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The data port opens once the configuration is loaded.
    loop {
        if let Ok(res) = proxy.req(Method::GET, "later.default", "/x").send().await {
            let status = res.status();
            let v: Value = res.json().await.unwrap_or(Value::Null);
            if status == 200 {
                assert_eq!(v["path"], "/later/x");
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "{}", proxy.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!proxy
        .log()
        .contains(t.key["clientsecret"].as_str().unwrap()));
}

#[tokio::test]
async fn shared_tenant_mode_resolves_in_the_tenant_the_request_names() {
    let echo = EchoServer::start().await;
    let app = TestApp::start_with(TestOptions {
        localhost: true,
        ..TestOptions::default()
    })
    .await;
    let provider = app.tenant("sub-proxy", "inst-proxy", json!({})).await;
    for tenant in ["customer-a", "customer-b"] {
        app.subscribe("inst-proxy", tenant).await;
        // Each subscriber keeps its own `backend` on its subaccount level.
        let sub = app.tenant_of(&provider, tenant).await;
        let res = sub
            .post(
                "/v1/subaccountDestinations",
                http_dest("backend", &format!("{}/{tenant}", echo.url()), json!({})),
            )
            .await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let config = values(&route("backend", "backend"), "", "  tenantMode: shared\n");
    let (proxy, _creds) = start(&provider, &config, &[]).await;

    // By id (x-zid) and by subdomain (the tenant's token URL, customer-b.localhost).
    let (status, v, _) = proxy
        .get_json("backend.default", "/p", &[("X-Tenant-Id", "customer-a")])
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["path"], "/customer-a/p");
    assert!(v["headers"].get("x-tenant-id").is_none(), "{v}");
    let (status, v, _) = proxy
        .get_json(
            "backend.default",
            "/p",
            &[("X-Tenant-Subdomain", "customer-b")],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["path"], "/customer-b/p");
    assert!(v["headers"].get("x-tenant-subdomain").is_none(), "{v}");
    // Again, from the cache: still each tenant's own.
    let (_, v, _) = proxy
        .get_json("backend.default", "/q", &[("X-Tenant-Id", "customer-a")])
        .await;
    assert_eq!(v["path"], "/customer-a/q");

    // Neither header, or both: 400 with the error headers.
    for headers in [
        vec![],
        vec![
            ("X-Tenant-Id", "customer-a"),
            ("X-Tenant-Subdomain", "customer-a"),
        ],
    ] {
        let (status, _, h) = proxy.get_json("backend.default", "/", &headers).await;
        assert_eq!(status, 400, "{headers:?}");
        assert_error_headers(&h, "Transparent Proxy");
    }
    // A tenant that did not subscribe: 500 from the token service's side.
    for header in ["X-Tenant-Id", "X-Tenant-Subdomain"] {
        let (status, _, h) = proxy
            .get_json("backend.default", "/", &[(header, "nobody")])
            .await;
        assert_eq!(status, 500, "{header}");
        assert_error_headers(&h, "XSUAA");
        assert_eq!(h["x-internal-error-code"], "401");
    }
    // The provider's own tenant has no `backend`: not found in that tenant (502).
    let (status, _, h) = proxy
        .get_json("backend.default", "/", &[("X-Tenant-Id", "sub-proxy")])
        .await;
    assert_eq!(status, 502);
    assert_error_headers(&h, "Destination Service");
    assert!(!proxy
        .log()
        .contains(provider.key["clientsecret"].as_str().unwrap()));
}

/// The common request (HTTP/1.1 without a body or steering headers, to a plain `http://` target)
/// takes the lean path (src/lean.rs); anything else goes to hyper, on a connection of its own or
/// mid-connection. Both must reach the target with the same request and give the workload the
/// same answers, keep-alive and pipelining included.
#[tokio::test]
async fn the_lean_path_and_hyper_send_and_answer_alike() {
    let echo = EchoServer::start().await;
    let (_app, t) = signpost(
        None,
        vec![http_dest(
            "basic-dest",
            &format!("{}/base?fixed=1", echo.url()),
            json!({"Authentication": "BasicAuthentication", "User": "u", "Password": "p-Secret-9",
                   "URL.headers.x-extra": "from-destination", "URL.queries.api-key": "k 1"}),
        ), http_dest("raw-dest", &echo.url(), json!({}))],
    )
    .await;
    let routes = route("basic", "basic-dest") + &route("raw", "raw-dest");
    let (proxy, _creds) = start(&t, &values(&routes, "", ""), &[]).await;
    let get = |extra: &str| {
        format!(
            "GET /items/1?x=y HTTP/1.1\r\nHost: basic.default:8080\r\nAccept: */*\r\nX-Forwarded-For: 10.9.9.9\r\nX-Request-Id: req-lean-1\r\n{extra}\r\n"
        )
        .into_bytes()
    };

    // The lean path, then hyper for the same request (a `Connection` header naming another
    // header sends it there): the target sees the same request.
    let mut lean = Raw::connect(proxy.port).await;
    lean.send(&get("")).await;
    let a = lean.answer(false).await;
    let mut hyper = Raw::connect(proxy.port).await;
    hyper
        .send(&get("Connection: keep-alive, x-hop\r\nX-Hop: 1\r\n"))
        .await;
    let b = hyper.answer(false).await;
    assert_eq!(a.status, 200, "{:?} {}", a, proxy.log());
    assert_eq!(b.status, 200, "{b:?}");
    let (a, b) = (a.json(), b.json());
    for field in ["method", "path", "query", "headers"] {
        assert_eq!(a[field], b[field], "{field}: lean {a} hyper {b}");
    }
    assert_eq!(a["path"], "/base/items/1");
    assert_eq!(a["query"], "fixed=1&x=y&api-key=k+1");
    assert_eq!(a["headers"]["authorization"][0], "Basic dTpwLVNlY3JldC05");
    assert_eq!(a["headers"]["x-extra"][0], "from-destination");
    assert_eq!(a["headers"]["x-forwarded-for"][0], "10.9.9.9, 127.0.0.1");
    assert_eq!(a["headers"]["x-forwarded-host"][0], "basic.default:8080");
    assert!(a["headers"].get("x-hop").is_none() && b["headers"].get("x-hop").is_none());

    // Pipelined on the lean connection: answers in order, HEAD without a body, a chunked
    // answer relayed as chunks, a 204, the proxy's own 404, each leaving the connection usable.
    let mut batch = Vec::new();
    batch.extend_from_slice(b"HEAD /bytes/5000 HTTP/1.1\r\nHost: raw\r\n\r\n");
    batch.extend_from_slice(b"GET /bytes/200000?chunked=1 HTTP/1.1\r\nHost: raw\r\n\r\n");
    batch.extend_from_slice(b"GET /status/204 HTTP/1.1\r\nHost: raw\r\n\r\n");
    batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: nope.default\r\n\r\n");
    batch.extend_from_slice(b"GET /bytes/70000 HTTP/1.1\r\nHost: raw\r\n\r\n");
    lean.send(&batch).await;
    let head = lean.answer(true).await;
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("5000"))
    );
    let chunked = lean.answer(false).await;
    assert_eq!(chunked.status, 200);
    assert_eq!(chunked.header("transfer-encoding"), Some("chunked"));
    assert_eq!(chunked.body.len(), 200_000);
    let pattern: Vec<u8> = (0..200_000u64)
        .map(signpost_test_utils::peers::pattern_byte)
        .collect();
    assert!(
        chunked.body == pattern,
        "the chunked body arrives unchanged"
    );
    let no_content = lean.answer(false).await;
    assert_eq!(
        (no_content.status, no_content.header("x-upstream")),
        (204, Some("echo"))
    );
    let unknown = lean.answer(false).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.header("x-proxy-server"), Some("Transparent Proxy"));
    assert!(unknown.header("x-error-message").is_some());
    let sized = lean.answer(false).await;
    assert_eq!((sized.status, sized.body.len()), (200, 70_000));
    assert!(
        sized.body == pattern[..70_000],
        "the sized body arrives unchanged"
    );

    // A request with a body on the same connection: handed to hyper, which serves the rest.
    lean.send(b"POST /upload HTTP/1.1\r\nHost: raw\r\nContent-Length: 3\r\n\r\nabc")
        .await;
    let post = lean.answer(false).await;
    assert_eq!(post.status, 200, "{post:?}");
    assert_eq!(post.json()["body_len"], 3);
    lean.send(&get("")).await;
    let again = lean.answer(false).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["headers"], a["headers"]);

    // The target's connections are kept: a burst of lean requests opens few.
    let before = echo.connections();
    let mut burst = Raw::connect(proxy.port).await;
    for _ in 0..30 {
        burst.send(&get("")).await;
        assert_eq!(burst.answer(false).await.status, 200);
    }
    assert!(echo.connections() - before <= 2, "connections are pooled");

    // A reload that points the route elsewhere reaches a connection already open on the lean
    // path (which memoises its route and destination between requests).
    let path = Proxy::config_path(proxy.dir.path());
    let next = values(
        &(route("basic", "raw-dest") + &route("raw", "raw-dest")),
        "",
        "",
    );
    std::fs::write(path.with_extension("tmp"), next).unwrap();
    std::fs::rename(path.with_extension("tmp"), &path).unwrap();
    let mut seen = Value::Null;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        burst.send(&get("")).await;
        seen = burst.answer(false).await.json();
        if seen["path"] == "/items/1" {
            break;
        }
    }
    assert_eq!(seen["path"], "/items/1", "{seen} {}", proxy.log());
    assert!(seen["headers"].get("authorization").is_none(), "{seen}");

    // `Connection: close` from the workload: answered (by hyper), then closed.
    let mut closing = Raw::connect(proxy.port).await;
    closing.send(&get("Connection: close\r\n")).await;
    assert_eq!(closing.answer(false).await.status, 200);
    assert!(closing.closed().await);

    let metrics = proxy.admin_text("/metrics").await;
    assert!(
        metrics.contains("signpost_proxy_requests_total{route=\"raw.default\",status=\"204\"}"),
        "{metrics}"
    );
    let log = proxy.log();
    assert!(log.contains("req-lean-1"), "request ids are logged");
    assert!(!log.contains("p-Secret-9") && !log.contains("dTpwLVNlY3JldC05"));
}
