//! End to end with SAP's own, unmodified client: `@sap-cloud-sdk/connectivity` and
//! `@sap-cloud-sdk/http-client` (pinned in `e2e/cloud-sdk/package.json`) run
//! `e2e/cloud-sdk/resolve.mjs` and `e2e/cloud-sdk/execute.mjs` against the real binary: the
//! service-token flow over HTTP and over HTTPS, and OAuth flows against a real OAuth2 server
//! (`e2e/oauth-server`) with `executeHttpRequest` reaching a loopback target. Needs Node.js 20+
//! and npm; `npm ci` runs once if `node_modules` is missing.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Map, Value};
use signpost_test_utils::oauth_peer::OAuthPeer;
use support::{self_signed_cert, ServerOptions, ServerProcess};

const SUB_NOAUTH: &str = "sdk-sub-noauth";
const INST_BASIC: &str = "sdk-inst-basic";
const MISSING: &str = "sdk-does-not-exist";
const BASIC_USER: &str = "sdk-user";
const BASIC_PASSWORD: &str = "sdk:pässword";

fn e2e_dir() -> PathBuf {
    signpost_test_utils::npm::e2e_dir("cloud-sdk")
}

/// Makes sure `e2e/cloud-sdk/node_modules` holds the SDK versions that its package.json pins.
fn ensure_node_modules() {
    signpost_test_utils::npm::ensure_installed(
        &e2e_dir(),
        "the SAP Cloud SDK end-to-end test (leave it out with `--skip cloud_sdk`)",
    );
}

fn configuration() -> Value {
    json!({
        "init_data": {
            "subaccount": {
                "destinations": [{
                    "Name": SUB_NOAUTH,
                    "Type": "HTTP",
                    "URL": "https://noauth.example.com/path",
                    "Authentication": "NoAuthentication",
                    "ProxyType": "Internet",
                    "Description": "subaccount level, no authentication",
                }]
            },
            "instance": {
                "destinations": [{
                    "Name": INST_BASIC,
                    "Type": "HTTP",
                    "URL": "https://basic.example.com/api",
                    "Authentication": "BasicAuthentication",
                    "ProxyType": "Internet",
                    "User": BASIC_USER,
                    "Password": BASIC_PASSWORD,
                }]
            }
        }
    })
}

/// Runs `node <script>` in `e2e/cloud-sdk` with a service key and extra environment; returns its
/// stdout JSON and whether it exited with 0. Proxies are switched off, as the tests' targets and
/// token services are on loopback.
fn run_script(script: &str, key: &Value, work: &Path, env: &[(&str, &str)]) -> (Value, bool) {
    let key_file = work.join("service-key.json");
    fs::write(&key_file, serde_json::to_vec_pretty(key).unwrap()).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .current_dir(e2e_dir())
        .env("SIGNPOST_SERVICE_KEY", &key_file)
        .env_remove("SIGNPOST_DESTINATIONS")
        .env_remove("SIGNPOST_CALLS")
        .env_remove("SIGNPOST_BINDING_NAME")
        .env_remove("SAP_CLOUD_SDK_LOG_LEVEL")
        .env_remove("VCAP_SERVICES")
        .env_remove("destinations")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .stdin(Stdio::null());
    support::without_proxies(&mut cmd);
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{script} exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{script} stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    if !out.status.success() {
        eprintln!("{script} stderr:\n{stderr}");
    }
    (json, out.status.success())
}

/// Runs `node resolve.mjs` with a service key; returns its stdout JSON (exit code 0 required).
fn resolve(key: &Value, work: &Path, ca: Option<&Path>) -> Value {
    let names = format!("{SUB_NOAUTH},{INST_BASIC},{MISSING}");
    let mut env = vec![("SIGNPOST_DESTINATIONS", names.as_str())];
    if let Some(ca) = ca {
        env.push(("NODE_EXTRA_CA_CERTS", ca.to_str().unwrap()));
    }
    let (result, ok) = run_script("resolve.mjs", key, work, &env);
    assert!(ok, "resolve.mjs reported errors: {result:#}");
    result
}

/// Runs `node execute.mjs` with a service key and a list of calls (see the script's header);
/// returns its stdout JSON. Errors of single calls are in the result, not a panic. `ca` is the
/// certificate of Signpost's HTTPS listener. Runs on the blocking pool, so servers of this test's
/// runtime (the [`Target`]) keep answering meanwhile.
async fn execute(key: &Value, work: &Path, ca: Option<&Path>, calls: Value) -> Value {
    let key = key.clone();
    let work = work.to_owned();
    let ca = ca.map(|p| p.to_str().unwrap().to_owned());
    tokio::task::spawn_blocking(move || {
        let calls = calls.to_string();
        let mut env = vec![("SIGNPOST_CALLS", calls.as_str())];
        if let Some(ca) = &ca {
            env.push(("NODE_EXTRA_CA_CERTS", ca));
        }
        run_script("execute.mjs", &key, &work, &env).0
    })
    .await
    .unwrap()
}

fn assert_resolved(result: &Value) {
    assert_eq!(result["errors"], json!([]), "{result:#}");
    let dests = &result["destinations"];

    let noauth = &dests[SUB_NOAUTH];
    assert_eq!(noauth["name"], SUB_NOAUTH, "{result:#}");
    assert_eq!(
        noauth["url"], "https://noauth.example.com/path",
        "{result:#}"
    );
    assert_eq!(noauth["authentication"], "NoAuthentication", "{result:#}");
    assert!(
        noauth["targetHeaders"].get("authorization").is_none(),
        "no authorization header for NoAuthentication: {result:#}"
    );

    let basic = &dests[INST_BASIC];
    assert_eq!(basic["name"], INST_BASIC, "{result:#}");
    assert_eq!(basic["url"], "https://basic.example.com/api", "{result:#}");
    assert_eq!(basic["authentication"], "BasicAuthentication", "{result:#}");
    assert_eq!(basic["username"], BASIC_USER, "{result:#}");
    assert_eq!(basic["password"], BASIC_PASSWORD, "{result:#}");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
    );
    assert_eq!(
        basic["targetHeaders"]["authorization"], expected,
        "{result:#}"
    );

    // A missing name is "no destination", not an error.
    assert!(
        dests.get(MISSING).is_some_and(Value::is_null),
        "{MISSING} should resolve to null: {result:#}"
    );

    // The list call sees both levels: instance destinations first, then subaccount ones.
    let all = result["all"].as_array().unwrap();
    let names: Vec<&str> = all.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, [INST_BASIC, SUB_NOAUTH], "{result:#}");
    assert_eq!(
        all[0]["authentication"], "BasicAuthentication",
        "{result:#}"
    );
    assert_eq!(all[1]["authentication"], "NoAuthentication", "{result:#}");
    assert_eq!(
        all[1]["url"], "https://noauth.example.com/path",
        "{result:#}"
    );
}

#[tokio::test]
async fn sap_cloud_sdk_resolves_destinations_over_http() {
    ensure_node_modules();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(ServerOptions::new(&tmp.path().join("data"))).await;
    server
        .provision("sdk-instance", "sdk-subaccount", configuration())
        .await;
    let key = server.bind("sdk-instance", "sdk-key").await;
    assert_eq!(key["url"], server.base, "{key}");

    let result = resolve(&key, tmp.path(), None);
    assert_resolved(&result);
    assert!(server.stop().await.success(), "{}", server.stderr());
}

#[tokio::test]
async fn sap_cloud_sdk_resolves_destinations_over_https() {
    ensure_node_modules();
    let tmp = tempfile::tempdir().unwrap();
    // `--tls-listen` alone: the built-in CA's certificate, which Node trusts through
    // NODE_EXTRA_CA_CERTS=<data-dir>/ca.pem; the key names the HTTPS listener (issue 18).
    let mut server =
        ServerProcess::start(ServerOptions::new(&tmp.path().join("data")).builtin_tls()).await;
    server
        .provision("sdk-instance", "sdk-subaccount", configuration())
        .await;
    let key = server.bind("sdk-instance", "sdk-key").await;
    assert_eq!(key["url"], server.tls_base(), "{key}");
    assert_eq!(key["uri"], server.tls_base(), "{key}");
    assert_eq!(
        key["uaadomain"],
        format!("127.0.0.1:{}", server.tls_port.unwrap()),
        "{key}"
    );

    let result = resolve(&key, tmp.path(), Some(&server.ca_file()));
    assert_resolved(&result);
    // An explicit certificate still wins over the built-in one.
    let (cert, key_pem) = self_signed_cert(tmp.path());
    let mut explicit =
        ServerProcess::start(ServerOptions::new(&tmp.path().join("data2")).tls(&cert, &key_pem))
            .await;
    explicit
        .provision("sdk-instance", "sdk-subaccount", configuration())
        .await;
    let key = explicit.bind("sdk-instance", "sdk-key").await;
    let result = resolve(&key, tmp.path(), Some(&cert));
    assert_resolved(&result);
    assert!(
        !explicit.ca_file().exists(),
        "with --tls-cert/--tls-key no ca.pem is written"
    );
    assert!(explicit.stop().await.success(), "{}", explicit.stderr());
    assert!(server.stop().await.success(), "{}", server.stderr());
}

// ---------------------------------------------------------------------------------------------
// OAuth flows against a real OAuth2 server, and requests to a target

const OAUTH_CLIENT: &str = "sdk-oauth-client";
const OAUTH_SECRET: &str = "sdk-oauth-secret-7Hq";
const CC_DEST: &str = "sdk-oauth-cc";
const JWT_BEARER_DEST: &str = "sdk-jwt-bearer";
const JWT_BEARER_IDP_DEST: &str = "sdk-jwt-bearer-idp";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// One request a [`Target`] received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
}

/// A tiny HTTP server on loopback in the role of a destination's target system: it records every
/// request and answers 200 with `{"path": <path and query>}`. Stops on drop.
struct Target {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Target {
    async fn start() -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app =
            axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
                let record = record.clone();
                async move {
                    let authorization = headers
                        .get("authorization")
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                    let path = uri
                        .path_and_query()
                        .map_or_else(|| uri.path().to_owned(), ToString::to_string);
                    record.lock().unwrap().push(Seen {
                        method: method.to_string(),
                        path: path.clone(),
                        authorization,
                    });
                    axum::Json(json!({ "path": path }))
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Target { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The OAuth2 server with one client, the one the destinations use.
async fn oauth_peer() -> OAuthPeer {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({
        "clients": [{"id": OAUTH_CLIENT, "secret": OAUTH_SECRET}],
        "token_lifetime": 600
    }))
    .await;
    peer
}

/// An OAuth destination whose token service is `peer`, with `extra` properties on top.
fn oauth_destination(name: &str, auth: &str, url: &str, peer: &OAuthPeer, extra: Value) -> Value {
    let mut d = json!({
        "Name": name,
        "Type": "HTTP",
        "URL": url,
        "ProxyType": "Internet",
        "Authentication": auth,
        "clientId": OAUTH_CLIENT,
        "clientSecret": OAUTH_SECRET,
        "tokenServiceURL": peer.token_url(),
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

/// A Signpost that may call the OAuth server on loopback, with `destinations` at instance level
/// of one instance; returns the server and a service key of that instance. With `tls` it also
/// listens on HTTPS with the built-in CA's certificate (the key names that listener) and the
/// third value is the CA to trust.
async fn signpost_with(
    work: &Path,
    destinations: Vec<Value>,
    extra_env: &[(&str, String)],
    tls: bool,
) -> (ServerProcess, Value, Option<PathBuf>) {
    let mut opts =
        ServerOptions::new(&work.join("data")).env("SIGNPOST_ALLOW_PRIVATE_NETWORKS", "true");
    for (k, v) in extra_env {
        opts = opts.env(k, v.clone());
    }
    if tls {
        opts = opts.builtin_tls();
    }
    let server = ServerProcess::start(opts).await;
    let ca = tls.then(|| server.ca_file());
    server
        .provision(
            "sdk-instance",
            "sdk-subaccount",
            json!({"init_data": {"instance": {"destinations": destinations}}}),
        )
        .await;
    let key = server.bind("sdk-instance", "sdk-key").await;
    (server, key, ca)
}

/// Verifies a token against the OAuth server's JWKS (signature, `exp`, `iss`) and returns its
/// claims.
async fn verified_claims(peer: &OAuthPeer, token: &str) -> Map<String, Value> {
    let jwks: JwkSet = serde_json::from_value(peer.jwks().await).unwrap();
    let header = decode_header(token).unwrap_or_else(|e| panic!("not a JWT ({e}): {token}"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("the token names its key"))
        .expect("the token's key is in the OAuth server's JWKS");
    let mut validation = Validation::new(header.alg);
    validation.validate_aud = false;
    validation.set_issuer(&[peer.issuer()]);
    decode::<Map<String, Value>>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap_or_else(|e| panic!("the token does not verify ({e}): {token}"))
        .claims
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: Option<&str>) -> &str {
    value
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_else(|| panic!("not a Bearer authorization: {value:?}"))
}

/// The token requests the OAuth server got with this grant type.
async fn grants(peer: &OAuthPeer, grant_type: &str) -> Vec<Value> {
    peer.requests()
        .await
        .into_iter()
        .filter(|r| r["form"]["grant_type"] == grant_type)
        .collect()
}

/// `OAuth2ClientCredentials`: Signpost runs the flow against the real OAuth server, and the SDK's
/// `executeHttpRequest` carries the token it issued to the target.
#[tokio::test]
async fn sap_cloud_sdk_executes_a_request_with_a_client_credentials_token() {
    ensure_node_modules();
    let peer = oauth_peer().await;
    let target = Target::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = oauth_destination(
        CC_DEST,
        "OAuth2ClientCredentials",
        &format!("{}/api", target.url),
        &peer,
        json!({}),
    );
    let (mut server, key, _) = signpost_with(tmp.path(), vec![dest], &[], false).await;

    let result = execute(
        &key,
        tmp.path(),
        None,
        json!([{
            "call": "executeHttpRequest",
            "destinationName": CC_DEST,
            "request": {"method": "get", "url": "/orders"}
        }]),
    )
    .await;
    assert_eq!(result["errors"], json!([]), "{result:#}");
    let response = &result["results"][0]["response"];
    assert_eq!(response["status"], 200, "{result:#}");
    assert_eq!(response["data"]["path"], "/api/orders", "{result:#}");

    // The target got exactly the SDK's request, with the OAuth server's token.
    let seen = target.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, "GET", "{seen:?}");
    assert_eq!(seen[0].path, "/api/orders", "{seen:?}");
    let token = bearer(seen[0].authorization.as_deref());
    let claims = verified_claims(&peer, token).await;
    assert_eq!(claims["client_id"], OAUTH_CLIENT, "{claims:?}");
    assert_eq!(claims["grant_type"], "client_credentials", "{claims:?}");

    // Signpost fetched it once, with the destination's client credentials in the form body.
    let requests = grants(&peer, "client_credentials").await;
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(requests[0]["status"], 200, "{requests:#?}");
    assert_eq!(
        requests[0]["client_auth"],
        json!({"method": "body", "client_id": OAUTH_CLIENT}),
        "{requests:#?}"
    );
    assert!(server.stop().await.success(), "{}", server.stderr());
}

/// `OAuth2JWTBearer` on behalf of a user: the SDK sends the user's JWT as `X-user-token` beside its
/// service token, Signpost verifies it and runs the jwt-bearer grant with it at the real OAuth
/// server, and the SDK gets, and sends to the target, a token for that user. Two kinds of user
/// token reach this path in the SDK (`getAuthTokenForOAuth2UserBasedTokenExchanges`):
///
/// - an XSUAA token (`ext_attr.enhancer: "XSUAA"`) of another tenant than the binding's: Signpost
///   verifies it through `SIGNPOST_TRUSTED_ISSUERS`;
/// - a token that is not an XSUAA token: the SDK refuses it unless the destination has
///   `x_user_token.jwks` or `x_user_token.jwks_uri`, and Signpost verifies it with that JWKS.
///
/// (An XSUAA user token of the binding's own tenant takes another path: the SDK first exchanges
/// it at Signpost's token service with the jwt-bearer grant, which Signpost does not offer.)
#[tokio::test]
async fn sap_cloud_sdk_sends_the_user_token_for_jwt_bearer() {
    ensure_node_modules();
    let peer = oauth_peer().await;
    let target = Target::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("{}/api", target.url);
    let destinations = vec![
        oauth_destination(JWT_BEARER_DEST, "OAuth2JWTBearer", &url, &peer, json!({})),
        oauth_destination(
            JWT_BEARER_IDP_DEST,
            "OAuth2JWTBearer",
            &url,
            &peer,
            json!({"x_user_token.jwks_uri": peer.jwks_url()}),
        ),
    ];
    let trusted = format!("{}={}", peer.issuer(), peer.jwks_url());
    // With a user token that names a tenant (`zid`), the SDK also asks
    // `https://<uaadomain>/oauth/token` (https hard-coded) for a service token of that tenant:
    // give it the HTTPS listener to ask.
    let (mut server, key, ca) = signpost_with(
        tmp.path(),
        destinations,
        &[("SIGNPOST_TRUSTED_ISSUERS", trusted)],
        true,
    )
    .await;

    // An XSUAA user of another tenant than the binding's (`sdk-subaccount`), signed by the OAuth
    // server. The SDK reads `zid`, `ext_attr.enhancer` and `user_id`.
    let tenant_user = peer
        .user_token(json!({
            "sub": "bob-guid",
            "user_id": "bob-guid",
            "user_name": "bob",
            "origin": "sap.default",
            "email": "bob@tenant-b.example",
            "zid": "sdk-tenant-b",
            "ext_attr": {"enhancer": "XSUAA", "zdn": "tenant-b"}
        }))
        .await;
    // A plain identity-provider user: no XSUAA enhancer, no tenant.
    let idp_user = peer
        .user_token(json!({
            "sub": "carol-sub",
            "user_uuid": "carol-uuid",
            "email": "carol@idp.example"
        }))
        .await;

    // The destinations are the provider's: `alwaysProvider` keeps the SDK from searching tenant
    // B's own account first. The IdP token names no tenant, so the SDK looks only at the
    // provider anyway (default strategy).
    let result = execute(
        &key,
        tmp.path(),
        ca.as_deref(),
        json!([
            {"call": "getDestination", "destinationName": JWT_BEARER_DEST,
             "jwt": tenant_user, "selectionStrategy": "alwaysProvider"},
            {"call": "executeHttpRequest", "destinationName": JWT_BEARER_DEST,
             "jwt": tenant_user, "selectionStrategy": "alwaysProvider",
             "request": {"method": "get", "url": "/me"}},
            {"call": "getDestination", "destinationName": JWT_BEARER_IDP_DEST, "jwt": idp_user},
        ]),
    )
    .await;
    assert_eq!(result["errors"], json!([]), "{result:#}");
    let results = result["results"].as_array().unwrap();

    // What getDestination returned: the OAuth server's token for the user, as the first
    // authTokens entry, and the header the SDK would send to the target.
    for (i, sub) in [(0, "bob-guid"), (2, "carol-sub")] {
        let destination = &results[i]["destination"];
        assert_eq!(
            destination["authentication"], "OAuth2JWTBearer",
            "{result:#}"
        );
        let auth = &destination["authTokens"][0];
        assert!(auth["error"].is_null(), "{result:#}");
        let value = auth["http_header"]["value"].as_str().unwrap();
        assert_eq!(auth["http_header"]["key"], "Authorization", "{result:#}");
        assert_eq!(
            destination["targetHeaders"]["authorization"], value,
            "{result:#}"
        );
        let claims = verified_claims(&peer, bearer(Some(value))).await;
        assert_eq!(claims["sub"], sub, "{claims:?}");
        assert_eq!(claims["client_id"], OAUTH_CLIENT, "{claims:?}");
        assert_eq!(claims["grant_type"], GRANT_JWT_BEARER, "{claims:?}");
    }

    // executeHttpRequest carried a token for Bob to the target.
    assert_eq!(results[1]["response"]["status"], 200, "{result:#}");
    let seen = target.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/api/me", "{seen:?}");
    let claims = verified_claims(&peer, bearer(seen[0].authorization.as_deref())).await;
    assert_eq!(claims["sub"], "bob-guid", "{claims:?}");
    assert_eq!(claims["user_id"], "bob-guid", "{claims:?}");

    // The OAuth server saw only jwt-bearer grants, each asserting exactly the user token the
    // SDK was given (so it reached Signpost unchanged), with the destination's client.
    let requests = peer.requests().await;
    assert!(
        requests
            .iter()
            .all(|r| r["form"]["grant_type"] == GRANT_JWT_BEARER),
        "{requests:#?}"
    );
    for user in [&tenant_user, &idp_user] {
        assert!(
            requests.iter().any(|r| r["form"]["assertion"] == **user),
            "no jwt-bearer request asserted {user}: {requests:#?}"
        );
    }
    for r in &requests {
        let assertion = r["form"]["assertion"].as_str().unwrap();
        assert!(
            assertion == tenant_user || assertion == idp_user,
            "{requests:#?}"
        );
        assert_eq!(r["status"], 200, "{requests:#?}");
        assert_eq!(
            r["client_auth"],
            json!({"method": "body", "client_id": OAUTH_CLIENT}),
            "{requests:#?}"
        );
    }
    assert!(server.stop().await.success(), "{}", server.stderr());
}

fn plain_destination(name: &str, url: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": url, "ProxyType": "Internet", "Authentication": "NoAuthentication"})
}

/// Multitenancy with SAP's client: a subscriber's user (an XSUAA token of tenant `customer-a`,
/// subscribed to the provider's instance) and the SDK's default `subscriberFirst`. The SDK asks
/// Signpost's HTTPS listener for a service token of the user's tenant (`x-zid`), finds the
/// subscriber's own destination first and falls back to the provider's; `alwaysProvider` and
/// `alwaysSubscriber` (the SDK's "only subscriber") do what their names say.
#[tokio::test]
async fn sap_cloud_sdk_resolves_a_subscribers_destinations_first() {
    ensure_node_modules();
    let peer = oauth_peer().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, key, ca) = signpost_with(
        tmp.path(),
        vec![
            plain_destination("sdk-mt-shared", "https://provider-shared.example"),
            plain_destination("sdk-mt-provider-only", "https://provider-only.example"),
        ],
        &[],
        true,
    )
    .await;
    let res = server
        .broker(
            Method::PUT,
            "/signpost/v1/subscriptions/sdk-instance/customer-a",
        )
        .json(&json!({"subdomain": "customer-a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // The subscriber's own `sdk-mt-shared`, on its subaccount level, with a token of its tenant.
    let client = support::http_client();
    let tenant_token = client
        .post(server.url("/oauth/token"))
        .header("x-zid", "customer-a")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", key["clientid"].as_str().unwrap()),
            ("client_secret", key["clientsecret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = client
        .post(server.url("/destination-configuration/v1/subaccountDestinations"))
        .bearer_auth(&tenant_token)
        .json(&plain_destination(
            "sdk-mt-shared",
            "https://customer-a-shared.example",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let alice = peer
        .user_token(json!({
            "sub": "alice-guid",
            "user_id": "alice-guid",
            "user_name": "alice",
            "zid": "customer-a",
            "ext_attr": {"enhancer": "XSUAA", "zdn": "customer-a"}
        }))
        .await;
    let result = execute(
        &key,
        tmp.path(),
        ca.as_deref(),
        json!([
            {"call": "getDestination", "destinationName": "sdk-mt-shared", "jwt": alice},
            {"call": "getDestination", "destinationName": "sdk-mt-provider-only", "jwt": alice},
            {"call": "getDestination", "destinationName": "sdk-mt-shared", "jwt": alice,
             "selectionStrategy": "alwaysProvider"},
            {"call": "getDestination", "destinationName": "sdk-mt-provider-only", "jwt": alice,
             "selectionStrategy": "alwaysSubscriber"},
            {"call": "getDestination", "destinationName": "sdk-mt-shared", "jwt": alice,
             "selectionStrategy": "alwaysSubscriber"},
        ]),
    )
    .await;
    assert_eq!(result["errors"], json!([]), "{result:#}");
    let url = |i: usize| result["results"][i]["destination"]["url"].clone();
    assert_eq!(url(0), "https://customer-a-shared.example", "{result:#}");
    assert_eq!(url(1), "https://provider-only.example", "{result:#}");
    assert_eq!(url(2), "https://provider-shared.example", "{result:#}");
    assert_eq!(
        result["results"][3]["destination"],
        Value::Null,
        "{result:#}"
    );
    assert_eq!(url(4), "https://customer-a-shared.example", "{result:#}");

    // The SDK's tenant token requests were the subscriber's: audited in its tenant.
    let (_, audit) = signpost_test_utils::status_json(
        server
            .broker(Method::GET, "/signpost/v1/audit?limit=200")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let tenant_tokens = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entityKind"] == "token" && e["subaccount"] == "customer-a")
        .count();
    assert!(tenant_tokens >= 2, "{audit:#}");
    assert!(server.stop().await.success(), "{}", server.stderr());
}
