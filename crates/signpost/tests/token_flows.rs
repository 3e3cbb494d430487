//! Every OAuth flow of find destination against a real, independent OAuth2 server
//! (`oauth2-mock-server` from the npm registry, with the harness's extension grants), started on
//! loopback. Tokens that come back are verified against that server's JWKS.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{json, Map, Value};
use signpost_core::TrustedIssuer;
use signpost_test_utils::oauth_peer::OAuthPeer;
use signpost_test_utils::{status_json, Tenant, TestApp, TestOptions};

const CLIENT: &str = "dest-client";
const SECRET: &str = "dest-secret-Qw3";

async fn peer() -> OAuthPeer {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({
        "clients": [{"id": CLIENT, "secret": SECRET}],
        "users": [{"username": "alice", "password": "alice-pw-9"}],
        "codes": [{"code": "code-1", "redirect_uri": "https://app.example/cb", "code_verifier": "verifier-1"}],
        "token_lifetime": 600
    }))
    .await;
    peer
}

async fn app_for(peer: &OAuthPeer) -> TestApp {
    TestApp::start_with(TestOptions {
        trusted_issuers: vec![TrustedIssuer {
            issuer: peer.issuer().trim_end_matches('/').to_owned(),
            jwks_uri: peer.jwks_url(),
        }],
        ..Default::default()
    })
    .await
}

fn oauth_dest(name: &str, auth: &str, peer: &OAuthPeer, extra: Value) -> Value {
    let mut d = json!({
        "Name": name, "Type": "HTTP", "URL": "https://api.example", "ProxyType": "Internet",
        "Authentication": auth, "clientId": CLIENT, "clientSecret": SECRET, "tokenServiceURL": peer.token_url()
    });
    for (k, v) in extra.as_object().unwrap() {
        d[k] = v.clone();
    }
    d
}

async fn tenant_with(app: &TestApp, dests: Vec<Value>) -> Tenant {
    app.tenant(
        "sub-flows",
        "inst-flows",
        json!({"init_data": {"instance": {"destinations": dests}}}),
    )
    .await
}

async fn find(t: &Tenant, name: &str, headers: &[(&str, &str)]) -> Value {
    let mut req = t.req(Method::GET, &format!("/v1/destinations/{name}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (status, body) = status_json(req.send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Verifies a token against the OAuth server's JWKS and returns its claims.
async fn verified_claims(peer: &OAuthPeer, token: &str) -> Map<String, Value> {
    let jwks: JwkSet = serde_json::from_value(peer.jwks().await).unwrap();
    let header = decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the token's key is in the server's JWKS");
    let mut v = Validation::new(header.alg);
    v.validate_aud = false;
    v.set_issuer(&[peer.issuer()]);
    decode::<Map<String, Value>>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

fn token_of(v: &Value) -> &Value {
    &v["authTokens"][0]
}

fn ok_token(v: &Value) -> String {
    let t = token_of(v);
    assert!(t.get("error").is_none(), "flow failed: {t}");
    assert_eq!(t["type"], "Bearer");
    let value = t["value"].as_str().unwrap().to_owned();
    assert_eq!(t["http_header"]["value"], format!("Bearer {value}"));
    value
}

fn error_of(v: &Value) -> String {
    let t = token_of(v);
    assert_eq!(
        (t["type"].as_str(), t["value"].as_str()),
        (Some(""), Some("")),
        "{t}"
    );
    t["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {t}"))
        .to_owned()
}

#[tokio::test]
async fn client_credentials_against_a_real_server() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let t = tenant_with(&app, vec![
        oauth_dest("cc", "OAuth2ClientCredentials", &peer, json!({"scope": "read write"})),
        oauth_dest("cc-basic", "OAuth2ClientCredentials", &peer, json!({"tokenService.addClientCredentialsInBody": "false"})),
        oauth_dest("cc-extras", "OAuth2ClientCredentials", &peer, json!({
            "tokenServiceURL.headers.X-Custom": "h1", "tokenServiceURL.queries.resource": "q1", "tokenService.body.audience": "b1"
        })),
    ])
    .await;
    let v = find(&t, "cc", &[]).await;
    let token = ok_token(&v);
    let claims = verified_claims(&peer, &token).await;
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(token_of(&v)["http_header"]["key"], "Authorization");
    let expires: u64 = token_of(&v)["expires_in"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(expires > 500 && expires <= 600, "{expires}");
    let reqs = peer.requests().await;
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0]["form"]["grant_type"], "client_credentials");
    assert_eq!(reqs[0]["form"]["client_secret"], SECRET);
    assert_eq!(reqs[0]["form"]["scope"], "read write");

    let v = find(&t, "cc-basic", &[]).await;
    ok_token(&v);
    let reqs = peer.requests().await;
    let last = reqs.last().unwrap();
    assert!(last["form"].get("client_secret").is_none());
    assert!(last["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("Basic "));

    let v = find(&t, "cc-extras", &[]).await;
    ok_token(&v);
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(last["headers"]["x-custom"], "h1");
    assert_eq!(last["query"]["resource"], "q1");
    assert_eq!(last["form"]["audience"], "b1");
}

#[tokio::test]
async fn the_cache_serves_until_the_destination_changes() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let t = tenant_with(
        &app,
        vec![oauth_dest(
            "cached",
            "OAuth2ClientCredentials",
            &peer,
            json!({}),
        )],
    )
    .await;
    let first = ok_token(&find(&t, "cached", &[]).await);
    let second = ok_token(&find(&t, "cached", &[]).await);
    assert_eq!(first, second);
    assert_eq!(
        peer.requests().await.len(),
        1,
        "the second find was served from the cache"
    );
    // $skipTokenRetrieval does not touch the token service.
    let v = find(&t, "cached?$skipTokenRetrieval=true", &[]).await;
    assert!(v.get("authTokens").is_none());
    // A changed destination drops its tokens.
    let changed = oauth_dest(
        "cached",
        "OAuth2ClientCredentials",
        &peer,
        json!({"scope": "other"}),
    );
    assert_eq!(
        t.put("/v1/instanceDestinations", changed).await.status(),
        200
    );
    let third = ok_token(&find(&t, "cached", &[]).await);
    assert_ne!(first, third);
    assert_eq!(peer.requests().await.len(), 2);
}

#[tokio::test]
async fn concurrent_cold_finds_make_one_token_request() {
    let peer = peer().await;
    // A slow token service makes the finds overlap.
    peer.configure(json!({"delay_ms": 300})).await;
    let app = app_for(&peer).await;
    let t = tenant_with(
        &app,
        vec![oauth_dest(
            "sf",
            "OAuth2ClientCredentials",
            &peer,
            json!({}),
        )],
    )
    .await;
    let finds = (0..50).map(|_| {
        let t = t.clone();
        tokio::spawn(async move { find(&t, "sf", &[]).await })
    });
    let mut values = HashSet::new();
    for f in finds {
        values.insert(ok_token(&f.await.unwrap()));
    }
    assert_eq!(values.len(), 1, "every find got the same token");
    assert_eq!(peer.requests().await.len(), 1, "exactly one token request");
}

#[tokio::test]
async fn password_refresh_code_and_exchange_grants() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let t = tenant_with(
        &app,
        vec![
            oauth_dest(
                "pw",
                "OAuth2Password",
                &peer,
                json!({"User": "alice", "Password": "alice-pw-9"}),
            ),
            oauth_dest(
                "pw-bad",
                "OAuth2Password",
                &peer,
                json!({"User": "alice", "Password": "wrong-password"}),
            ),
            oauth_dest("refresh", "OAuth2RefreshToken", &peer, json!({})),
            oauth_dest("code", "OAuth2AuthorizationCode", &peer, json!({})),
            oauth_dest("exchange", "OAuth2TokenExchange", &peer, json!({})),
        ],
    )
    .await;
    let v = find(&t, "pw", &[]).await;
    ok_token(&v);
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(last["form"]["grant_type"], "password");
    assert_eq!(last["form"]["username"], "alice");
    let e = error_of(&find(&t, "pw-bad", &[]).await);
    assert!(e.contains("HTTP 400") || e.contains("HTTP 401"), "{e}");
    assert!(!e.contains("wrong-password"));

    // Refresh token: needs the header; the server issued the refresh token earlier.
    let e = error_of(&find(&t, "refresh", &[]).await);
    assert!(e.contains("X-refresh-token"), "{e}");
    let refresh = token_of(&find(&t, "pw", &[]).await)["refresh_token"]
        .as_str()
        .map(str::to_owned);
    let refresh = match refresh {
        Some(r) => r,
        None => {
            // The password grant of this server may not issue one: take it from a direct request.
            let res: Value = reqwest::Client::new()
                .post(peer.token_url())
                .form(&[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "alice-pw-9"),
                    ("client_id", CLIENT),
                    ("client_secret", SECRET),
                ])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            res["refresh_token"]
                .as_str()
                .expect("the server issues refresh tokens")
                .to_owned()
        }
    };
    let v = find(&t, "refresh", &[("X-refresh-token", &refresh)]).await;
    ok_token(&v);
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(last["form"]["grant_type"], "refresh_token");
    assert_eq!(last["form"]["refresh_token"], refresh.as_str());

    // Authorization code with redirect URI and PKCE verifier.
    let e = error_of(&find(&t, "code", &[]).await);
    assert!(e.contains("X-code"), "{e}");
    let v = find(
        &t,
        "code",
        &[
            ("X-code", "code-1"),
            ("X-redirect-uri", "https://app.example/cb"),
            ("X-code-verifier", "verifier-1"),
        ],
    )
    .await;
    let token = ok_token(&v);
    verified_claims(&peer, &token).await;
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(last["form"]["code_verifier"], "verifier-1");
    let e = error_of(&find(&t, "code", &[("X-code", "no-such-code")]).await);
    assert!(e.contains("HTTP 400"), "{e}");

    // RFC 8693 token exchange.
    let subject = peer.user_token(json!({"sub": "bob"})).await;
    let e = error_of(&find(&t, "exchange", &[("X-subject-token", &subject)]).await);
    assert!(e.contains("X-subject-token-type"), "{e}");
    let v = find(
        &t,
        "exchange",
        &[
            ("X-subject-token", &subject),
            (
                "X-subject-token-type",
                "urn:ietf:params:oauth:token-type:jwt",
            ),
        ],
    )
    .await;
    let token = ok_token(&v);
    assert!(token_of(&v)["issued_token_type"].is_string(), "{v}");
    verified_claims(&peer, &token).await;
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(
        last["form"]["grant_type"],
        "urn:ietf:params:oauth:grant-type:token-exchange"
    );
    assert_eq!(last["form"]["subject_token"], subject.as_str());
}

#[tokio::test]
async fn user_flows_verify_the_user_token_first() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let t = tenant_with(
        &app,
        vec![
            oauth_dest("jwtb", "OAuth2JWTBearer", &peer, json!({})),
            oauth_dest("ute", "OAuth2UserTokenExchange", &peer, json!({})),
        ],
    )
    .await;
    let user = peer
        .user_token(json!({"sub": "carol", "user_name": "carol", "email": "carol@example.org"}))
        .await;
    for name in ["jwtb", "ute"] {
        let v = find(&t, name, &[("X-user-token", &user)]).await;
        let token = ok_token(&v);
        let claims = verified_claims(&peer, &token).await;
        assert_eq!(claims["sub"], "carol", "the issued token is the user's");
        let last = peer.requests().await.pop().unwrap();
        assert_eq!(
            last["form"]["grant_type"],
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        );
        assert_eq!(last["form"]["assertion"], user.as_str());
    }
    let sent = peer.requests().await.len();
    // No user token, an expired one, a forged one, one of an untrusted issuer: refused before any
    // token request.
    let e = error_of(&find(&t, "jwtb", &[]).await);
    assert!(e.contains("X-user-token"), "{e}");
    let expired = peer
        .user_token(json!({"sub": "carol", "exp": 1_000_000_000}))
        .await;
    let e = error_of(&find(&t, "jwtb", &[("X-user-token", &expired)]).await);
    assert!(e.contains("expired"), "{e}");
    let mut forged = user.clone();
    let tail = forged.pop().unwrap();
    forged.push(if tail == 'A' { 'B' } else { 'A' });
    let e = error_of(&find(&t, "jwtb", &[("X-user-token", &forged)]).await);
    assert!(e.contains("signature") || e.contains("verified"), "{e}");
    let other = OAuthPeer::start().await;
    let stranger = other.user_token(json!({"sub": "mallory"})).await;
    let e = error_of(&find(&t, "jwtb", &[("X-user-token", &stranger)]).await);
    assert!(e.contains("not trusted"), "{e}");
    assert_eq!(
        peer.requests().await.len(),
        sent,
        "no token request for a refused user token"
    );
    // The destination's own x_user_token.jwks_uri trusts the other issuer for that destination.
    let d = oauth_dest(
        "jwtb-own",
        "OAuth2JWTBearer",
        &other,
        json!({"x_user_token.jwks_uri": other.jwks_url()}),
    );
    other
        .configure(json!({"clients": [{"id": CLIENT, "secret": SECRET}]}))
        .await;
    assert_eq!(t.post("/v1/instanceDestinations", d).await.status(), 201);
    let v = find(&t, "jwtb-own", &[("X-user-token", &stranger)]).await;
    let token = ok_token(&v);
    verified_claims(&other, &token).await;
}

#[tokio::test]
async fn technical_user_propagation_uses_its_own_header() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let t = tenant_with(&app, vec![
        oauth_dest("tup", "OAuth2TechnicalUserPropagation", &peer, json!({"ProxyType": "OnPremise"})),
        oauth_dest("tup-internet", "OAuth2TechnicalUserPropagation", &peer, json!({})),
        json!({"Name": "pp", "Type": "HTTP", "URL": "http://backend:80", "Authentication": "PrincipalPropagation", "ProxyType": "OnPremise"}),
        json!({"Name": "pp-internet", "Type": "HTTP", "URL": "http://backend:80", "Authentication": "PrincipalPropagation"}),
    ])
    .await;
    let v = find(&t, "tup", &[]).await;
    let t0 = token_of(&v);
    assert_eq!(
        t0["http_header"]["key"],
        "SAP-Connectivity-Technical-Authentication"
    );
    assert!(t0["http_header"]["value"]
        .as_str()
        .unwrap()
        .starts_with("Bearer "));
    let e = error_of(&find(&t, "tup-internet", &[]).await);
    assert!(e.contains("OnPremise"), "{e}");
    assert!(find(&t, "pp", &[]).await.get("authTokens").is_none());
    assert!(error_of(&find(&t, "pp-internet", &[]).await).contains("OnPremise"));
}

#[tokio::test]
async fn tenant_urls_and_client_assertions() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let common = format!("{}/{{tenant}}/token", peer.url());
    let t = tenant_with(
        &app,
        vec![
            oauth_dest(
                "common",
                "OAuth2ClientCredentials",
                &peer,
                json!({"tokenServiceURL": common, "tokenServiceURLType": "Common"}),
            ),
            oauth_dest("dedicated", "OAuth2ClientCredentials", &peer, json!({})),
            oauth_dest(
                "asserted",
                "OAuth2ClientCredentials",
                &peer,
                json!({"clientSecret": "", "clientAssertion.destinationName": "assertion-source"}),
            ),
            oauth_dest(
                "assertion-source",
                "OAuth2ClientCredentials",
                &peer,
                json!({}),
            ),
        ],
    )
    .await;
    // X-tenant names the caller's tenant or a subscriber of its instance: not yet subscribed,
    // the flow does not run and says why.
    let before = peer.requests().await.len();
    let e = error_of(&find(&t, "common", &[("X-tenant", "tenant-one")]).await);
    assert!(
        e.contains("neither the caller's tenant nor subscribed"),
        "{e}"
    );
    assert_eq!(
        peer.requests().await.len(),
        before,
        "no token request was sent"
    );
    let res = app
        .broker(
            Method::PUT,
            "/signpost/v1/subscriptions/inst-flows/tenant-one-sa",
        )
        .json(&json!({"subdomain": "tenant-one"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    ok_token(&find(&t, "common", &[("X-tenant", "tenant-one")]).await);
    assert_eq!(
        peer.requests().await.pop().unwrap()["path"],
        "/tenant-one/token"
    );
    // The caller's own subdomain is always allowed.
    ok_token(&find(&t, "common", &[("X-tenant", "sub-flows-sub")]).await);
    // Without X-tenant the caller's own subdomain is used.
    ok_token(&find(&t, "common", &[]).await);
    assert_eq!(
        peer.requests().await.pop().unwrap()["path"],
        "/sub-flows-sub/token"
    );
    let e = error_of(&find(&t, "dedicated", &[("X-tenant", "tenant-one")]).await);
    assert!(e.contains("X-tenant"), "{e}");
    // X-client-assertion replaces the secret.
    let assertion = peer
        .user_token(json!({"sub": CLIENT, "aud": peer.token_url()}))
        .await;
    ok_token(
        &find(
            &t,
            "dedicated",
            &[
                ("X-client-assertion", &assertion),
                (
                    "X-client-assertion-type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
            ],
        )
        .await,
    );
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(last["form"]["client_assertion"], assertion.as_str());
    assert!(last["form"].get("client_secret").is_none());
    // clientAssertion.destinationName: another destination's token is the assertion.
    let v = find(&t, "asserted", &[]).await;
    ok_token(&v);
    let reqs = peer.requests().await;
    let last = reqs.last().unwrap();
    let source_token = reqs[reqs.len() - 2]["status"].clone();
    assert_eq!(source_token, 200);
    assert!(
        last["form"]["client_assertion"]
            .as_str()
            .unwrap()
            .split('.')
            .count()
            == 3
    );
    let (s, _) = status_json(
        t.req(Method::GET, "/v1/destinations/dedicated")
            .header("X-client-assertion", "a")
            .header("X-client-assertion-destination-name", "assertion-source")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn failures_are_errors_in_auth_tokens() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let down = "http://127.0.0.1:9/token";
    let t = tenant_with(
        &app,
        vec![
            oauth_dest(
                "wrong-secret",
                "OAuth2ClientCredentials",
                &peer,
                json!({"clientSecret": "not-the-secret"}),
            ),
            oauth_dest(
                "down",
                "OAuth2ClientCredentials",
                &peer,
                json!({"tokenServiceURL": down}),
            ),
            oauth_dest(
                "slow",
                "OAuth2ClientCredentials",
                &peer,
                json!({"tokenServiceURL.SocketReadTimeoutInSeconds": "1"}),
            ),
            oauth_dest("flaky", "OAuth2ClientCredentials", &peer, json!({})),
            oauth_dest(
                "no-url",
                "OAuth2ClientCredentials",
                &peer,
                json!({"tokenServiceURL": ""}),
            ),
        ],
    )
    .await;
    let e = error_of(&find(&t, "wrong-secret", &[]).await);
    assert!(
        e.contains("HTTP 401") && e.contains("invalid_client"),
        "{e}"
    );
    assert!(!e.contains("not-the-secret"));
    let e = error_of(&find(&t, "down", &[]).await);
    assert!(e.contains("connection failed"), "{e}");
    peer.configure(json!({"delay_ms": 2500})).await;
    // While a find waits on the slow token service, the server answers others.
    let slow_done = std::sync::atomic::AtomicBool::new(false);
    let (slow, meanwhile) = tokio::join!(
        async {
            let v = find(&t, "slow", &[]).await;
            slow_done.store(true, std::sync::atomic::Ordering::SeqCst);
            v
        },
        async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            let res = app.client.get(app.url("/healthz")).send().await.unwrap();
            (
                res.status().as_u16(),
                slow_done.load(std::sync::atomic::Ordering::SeqCst),
            )
        }
    );
    assert_eq!(
        meanwhile,
        (200, false),
        "answered while the slow find waited"
    );
    let e = error_of(&slow);
    assert!(e.contains("timed out"), "{e}");
    peer.configure(json!({"delay_ms": 0, "fail": {"status": 503, "body": "{\"error\":\"temporarily_unavailable\",\"error_description\":\"try later\"}", "count": 1}})).await;
    let e = error_of(&find(&t, "flaky", &[]).await);
    assert!(
        e.contains("HTTP 503") && e.contains("temporarily_unavailable") && e.contains("try later"),
        "{e}"
    );
    peer.configure(json!({"fail": {"status": 200, "body": "{not json", "count": 1}}))
        .await;
    let e = error_of(&find(&t, "flaky", &[]).await);
    assert!(e.contains("not JSON"), "{e}");
    peer.configure(
        json!({"fail": {"status": 200, "body": "{\"token_type\":\"bearer\"}", "count": 1}}),
    )
    .await;
    let e = error_of(&find(&t, "flaky", &[]).await);
    assert!(e.contains("access_token"), "{e}");
    // Failures are not cached: the next find succeeds.
    ok_token(&find(&t, "flaky", &[]).await);
    let e = error_of(&find(&t, "no-url", &[]).await);
    assert!(e.contains("tokenServiceURL"), "{e}");
}

#[tokio::test]
async fn private_token_services_are_refused_unless_allowed() {
    let peer = peer().await;
    let app = TestApp::start_with(TestOptions {
        allow_private_networks: false,
        ..Default::default()
    })
    .await;
    let t = tenant_with(
        &app,
        vec![oauth_dest(
            "loop",
            "OAuth2ClientCredentials",
            &peer,
            json!({}),
        )],
    )
    .await;
    let e = error_of(&find(&t, "loop", &[]).await);
    assert!(e.contains("private address"), "{e}");
    assert!(
        peer.requests().await.is_empty(),
        "nothing reached the loopback server"
    );
}

fn b64_any(text: &str) -> String {
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        })
        .unwrap();
    String::from_utf8(e).unwrap()
}

#[tokio::test]
async fn saml_bearer_assertions_are_signed_for_the_verified_user() {
    let peer = peer().await;
    let app = app_for(&peer).await;
    let saml_props = json!({
        "clientKey": CLIENT, "audience": "https://sp.example/audience", "authnContextClassRef": "urn:oasis:names:tc:SAML:2.0:ac:classes:PreviousSession",
        "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress", "userIdSource": "email",
        "nameQualifier": "signpost-test"
    });
    let t = tenant_with(&app, vec![
        oauth_dest("samlb", "OAuth2SAMLBearerAssertion", &peer, saml_props.clone()),
        oauth_dest("samlb-client", "OAuth2SAMLBearerAssertion", &peer, json!({"clientKey": CLIENT, "audience": "a", "authnContextClassRef": "c", "SAMLAssertionProvider": "ClientProvided"})),
        json!({"Name": "saml-only", "Type": "HTTP", "URL": "https://target.example/api", "Authentication": "SAMLAssertion",
               "audience": "https://target.example", "authnContextClassRef": "urn:oasis:names:tc:SAML:2.0:ac:classes:X509", "ProxyType": "Internet"}),
    ])
    .await;
    let user = peer
        .user_token(json!({"sub": "u-1", "user_name": "dave", "email": "dave@example.org", "given_name": "Dave & <Co>"}))
        .await;
    let v = find(&t, "samlb", &[("X-user-token", &user)]).await;
    let token = ok_token(&v);
    let claims = verified_claims(&peer, &token).await;
    assert_eq!(
        claims["sub"], "dave@example.org",
        "the OAuth server took the NameID from the assertion"
    );
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(
        last["form"]["grant_type"],
        "urn:ietf:params:oauth:grant-type:saml2-bearer"
    );
    let xml = b64_any(last["form"]["assertion"].as_str().unwrap());
    // The subaccount's trust certificate, as SAP's endpoint serves it.
    let (s, cert) = status_json(t.get("/v1/saml2Metadata/certificate").await).await;
    assert_eq!(s, 200);
    let cert = cert["certificate"].as_str().unwrap().to_owned();
    let expect = json!({
        "audience": "https://sp.example/audience",
        "recipient": peer.token_url(),
        "name_id": "dave@example.org",
        "name_id_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "name_qualifier": "signpost-test",
        "issuer": format!("{}/saml2/sub-flows", app.base),
    });
    let verdict = signpost_test_utils::signxml::verify(&xml, &cert, &expect);
    verdict.assert_ok();
    // Another key's certificate does not verify it.
    let (_, other) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/certificate/passive")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let verdict =
        signpost_test_utils::signxml::verify(&xml, other["certificate"].as_str().unwrap(), &expect);
    assert_eq!(verdict.code, 1, "{}", verdict.out);

    // No verified user, no assertion: refused before any token request.
    let sent = peer.requests().await.len();
    let e = error_of(&find(&t, "samlb", &[]).await);
    assert!(e.contains("X-user-token"), "{e}");
    let other_peer = OAuthPeer::start().await;
    let stranger = other_peer
        .user_token(json!({"sub": "mallory", "email": "m@example.org"}))
        .await;
    let e = error_of(&find(&t, "samlb", &[("X-user-token", &stranger)]).await);
    assert!(e.contains("not trusted"), "{e}");
    assert_eq!(peer.requests().await.len(), sent);

    // ClientProvided takes X-samlAssertion as it is.
    let e = error_of(&find(&t, "samlb-client", &[]).await);
    assert!(e.contains("X-samlAssertion"), "{e}");
    let provided = last["form"]["assertion"].as_str().unwrap().to_owned();
    ok_token(&find(&t, "samlb-client", &[("X-samlAssertion", &provided)]).await);
    assert_eq!(
        peer.requests().await.pop().unwrap()["form"]["assertion"],
        provided.as_str()
    );

    // SAMLAssertion returns the signed assertion itself.
    let v = find(&t, "saml-only", &[("X-user-token", &user)]).await;
    let tok = token_of(&v);
    assert_eq!(tok["type"], "SAML2.0");
    assert_eq!(tok["http_header"]["key"], "Authorization");
    assert_eq!(
        tok["http_header"]["value"],
        format!("SAML2.0 {}", tok["value"].as_str().unwrap())
    );
    let xml = b64_any(tok["value"].as_str().unwrap());
    let expect = json!({"audience": "https://target.example", "recipient": "https://target.example/api", "name_id": "dave"});
    signpost_test_utils::signxml::verify(&xml, &cert, &expect).assert_ok();
}

#[tokio::test]
async fn saml_trust_certificates_rotate() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-saml", "inst-saml", json!({})).await;
    let (s, v) = status_json(t.get("/v1/saml2Metadata/certificate").await).await;
    assert_eq!(s, 404);
    assert_eq!(
        v["ErrorMessage"],
        "Keypair for subaccount - sub-saml does not exist"
    );
    let (s, v) = status_json(t.get("/v1/saml2Metadata/certificate/passive").await).await;
    assert_eq!(s, 404);
    assert!(v["ErrorMessage"].as_str().unwrap().contains("sub-saml"));
    let (s, v) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/certificate")
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, v["ErrorMessage"].as_str()),
        (400, Some("Request body should be empty!"))
    );
    let (s, v) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/certificate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let active = v["certificate"].as_str().unwrap().to_owned();
    assert!(active.starts_with("-----BEGIN CERTIFICATE-----"));
    let (_, v) = status_json(t.get("/v1/saml2Metadata/certificate").await).await;
    assert_eq!(v["certificate"], active.as_str());
    let (s, _) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/rotateCertificate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404, "no passive pair to rotate to");
    let (_, v) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/certificate/passive")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let passive = v["certificate"].as_str().unwrap().to_owned();
    // The metadata carries both during the rotation.
    let (s, v) = status_json(t.get("/v1/saml2Metadata").await).await;
    assert_eq!(s, 200);
    let xml = b64_any(v["idpMetadata"].as_str().unwrap());
    let body = |pem: &str| {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    assert!(xml.contains(&body(&active)) && xml.contains(&body(&passive)));
    let (s, v) = status_json(
        t.req(Method::POST, "/v1/saml2Metadata/rotateCertificate")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["activeCertificate"].as_str(),
            v["passiveCertificate"].as_str()
        ),
        (Some(passive.as_str()), Some(active.as_str()))
    );
    let (_, v) = status_json(t.get("/v1/saml2Metadata/certificate").await).await;
    assert_eq!(v["certificate"], passive.as_str());
    let (s, v) = status_json(t.delete("/v1/saml2Metadata/certificate/passive").await).await;
    assert_eq!((s, v), (200, json!({"Count": 1})));
    assert_eq!(
        t.delete("/v1/saml2Metadata/certificate/passive")
            .await
            .status(),
        404
    );
    // Another subaccount has its own pair.
    let other = app.tenant("sub-other", "inst-other", json!({})).await;
    assert_eq!(
        other.get("/v1/saml2Metadata/certificate").await.status(),
        404
    );
}

#[tokio::test]
async fn mtls_token_flows_present_the_key_store() {
    let peer = peer().await;
    let (ca, server_cert, server_key, client_p12) =
        signpost_test_utils::pki::mtls_material("p12-pass");
    let nginx =
        signpost_test_utils::nginx::Nginx::mtls_proxy(peer.url(), &server_cert, &server_key, &ca);
    let url = format!("https://127.0.0.1:{}/token", nginx.port);
    let app = app_for(&peer).await;
    let mtls = json!({"tokenServiceURL": url, "tokenService.KeyStoreLocation": "client.p12", "tokenService.KeyStorePassword": "p12-pass", "TrustStoreLocation": "ca.pem"});
    let t = app
        .tenant(
            "sub-mtls",
            "inst-mtls",
            json!({"init_data": {"subaccount": {
                "certificates": [
                    {"Name": "client.p12", "Type": "PKCS12", "Content": client_p12, "Password": "p12-pass"},
                    {"Name": "ca.pem", "Content": signpost_test_utils::pki::b64(ca.as_bytes())}
                ],
                "destinations": [
                    oauth_dest("mtls", "OAuth2ClientCredentials", &peer, mtls.clone()),
                    oauth_dest("no-client-cert", "OAuth2ClientCredentials", &peer, json!({"tokenServiceURL": url, "TrustStoreLocation": "ca.pem"})),
                    oauth_dest("no-trust", "OAuth2ClientCredentials", &peer, json!({"tokenServiceURL": url, "tokenService.KeyStoreLocation": "client.p12", "tokenService.KeyStorePassword": "p12-pass"})),
                    oauth_dest("wrong-store-pass", "OAuth2ClientCredentials", &peer, json!({"tokenServiceURL": url, "tokenService.KeyStoreLocation": "client.p12", "tokenService.KeyStorePassword": "nope", "TrustStoreLocation": "ca.pem"})),
                ]
            }}}),
        )
        .await;
    let v = find(&t, "mtls", &[]).await;
    let token = ok_token(&v);
    verified_claims(&peer, &token).await;
    let last = peer.requests().await.pop().unwrap();
    assert_eq!(
        last["headers"]["x-client-verify"], "SUCCESS",
        "nginx verified Signpost's client certificate"
    );
    // Without the key store nginx refuses the request; without the trust store Signpost refuses nginx.
    let e = error_of(&find(&t, "no-client-cert", &[]).await);
    assert!(e.contains("HTTP 400"), "{e}");
    let e = error_of(&find(&t, "no-trust", &[]).await);
    assert!(e.contains("failed"), "{e}");
    let e = error_of(&find(&t, "wrong-store-pass", &[]).await);
    assert!(e.contains("key store") && !e.contains("nope"), "{e}");
    // With $skipTokenRetrieval the token service key store is handed out instead.
    let v = find(&t, "mtls?$skipTokenRetrieval=true", &[]).await;
    assert_eq!(v["certificates"][0]["Name"], "client.p12");
}
