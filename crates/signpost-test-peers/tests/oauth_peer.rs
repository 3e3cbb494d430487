//! The OAuth test server itself (`e2e/oauth-server`, oauth2-mock-server behind [`OAuthPeer`]):
//! every grant with right and wrong client credentials, Basic and body authentication, tokens
//! verified against its JWKS, injected failures and delays, and request recording.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use signpost_test_peers::oauth_peer::OAuthPeer;

const CLIENT: &str = "sb-client!b12|app!b3";
const SECRET: &str = "s3cr3t+/:%é x";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const SAML2_BEARER: &str = "urn:ietf:params:oauth:grant-type:saml2-bearer";
const TT_ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const TT_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const CA_JWT: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const CA_SAML: &str = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer";

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `Authorization: Basic` per RFC 6749 §2.3.1 (both parts form-encoded first).
fn basic_rfc(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", form_encode(id), form_encode(secret));
    format!("Basic {}", STANDARD.encode(raw))
}

/// `Authorization: Basic` without the form encoding (what many clients send).
fn basic_raw(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn peer_with_client() -> OAuthPeer {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({
        "clients": [{"id": CLIENT, "secret": SECRET}, {"id": "public-client"}],
        "users": [{"username": "alice", "password": "alice-pw", "claims": {"email": "alice@example.com"}}],
    }))
    .await;
    peer
}

/// POSTs a form to `url` with an optional Authorization header; (status, JSON body).
async fn post_form(url: &str, auth: Option<&str>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).form(form);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Verifies `token` against the peer's JWKS (RS256, iss, exp) and returns its claims.
async fn verify(peer: &OAuthPeer, token: &str) -> Value {
    let jwks: JwkSet = serde_json::from_value(peer.jwks().await).unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_issuer(&[peer.issuer()]);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap()
        .claims
}

fn assert_invalid_client(status: u16, body: &Value) {
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
}

#[tokio::test]
async fn ready_line_jwks_and_user_tokens() {
    let peer = OAuthPeer::start().await;
    assert!(peer.url().starts_with("http://127.0.0.1:"));
    assert_eq!(peer.token_url(), format!("{}/token", peer.url()));
    assert_eq!(peer.jwks_url(), format!("{}/jwks", peer.url()));
    assert_eq!(peer.issuer(), peer.url());

    let jwks = peer.jwks().await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "RSA");
    assert_eq!(keys[0]["alg"], "RS256");
    assert!(keys[0].get("d").is_none(), "private part leaked");

    let token = peer
        .user_token(json!({"sub": "u-1", "user_name": "bob", "email": "bob@example.com"}))
        .await;
    let claims = verify(&peer, &token).await;
    assert_eq!(claims["sub"], "u-1");
    assert_eq!(claims["user_name"], "bob");
    assert_eq!(claims["iss"], peer.issuer());
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);

    // Claims given override the defaults.
    let token = peer.user_token(json!({"exp": 1000, "zid": "t-1"})).await;
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["exp"], 1000);
    assert_eq!(payload["zid"], "t-1");

    // XSUAA's name for the JWKS, and the discovery document of oauth2-mock-server.
    let alias: Value = reqwest::get(format!("{}/token_keys", peer.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alias, jwks);
    let discovery: Value = reqwest::get(format!("{}/.well-known/openid-configuration", peer.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], peer.issuer());
    assert_eq!(discovery["token_endpoint"], peer.token_url().as_str());
}

#[tokio::test]
async fn client_credentials_in_body_and_basic() {
    let peer = peer_with_client().await;
    let url = peer.token_url();

    // In the form body, with a scope.
    let (status, body) = post_form(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("scope", "read write"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none());
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["sub"], CLIENT);
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["grant_type"], "client_credentials");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    // HTTP Basic with form-encoded parts; no scope asked, none echoed.
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("scope").is_none(), "{body}");
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["client_id"], CLIENT);
    assert!(claims.get("scope").is_none());

    // Basic without the RFC's form encoding: '+' and '%' in the secret decode differently.
    let (status, body) = post_form(
        &url,
        Some(&basic_raw(CLIENT, SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(status, &body);

    // Wrong secret, body and Basic.
    let (status, body) = post_form(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT),
            ("client_secret", "nope"),
        ],
    )
    .await;
    assert_invalid_client(status, &body);
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, "nope")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(status, &body);

    // Unknown client, no credentials, a secret missing for a confidential client.
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc("who", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_invalid_client(status, &body);
    let (status, body) = post_form(&url, None, &[("grant_type", "client_credentials")]).await;
    assert_invalid_client(status, &body);
    let (status, body) = post_form(
        &url,
        None,
        &[("grant_type", "client_credentials"), ("client_id", CLIENT)],
    )
    .await;
    assert_invalid_client(status, &body);

    // A client configured without a secret is public: its id alone is enough.
    let (status, body) = post_form(
        &url,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "public-client"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let methods: Vec<Value> = peer
        .requests()
        .await
        .iter()
        .map(|r| json!([r["client_auth"]["method"], r["status"]]))
        .collect();
    assert_eq!(
        methods,
        vec![
            json!(["body", 200]),
            json!(["basic", 200]),
            json!(["basic", 401]),
            json!(["body", 401]),
            json!(["basic", 401]),
            json!(["basic", 401]),
            json!(["none", 401]),
            json!(["body", 401]),
            json!(["body", 200]),
        ]
    );
}

#[tokio::test]
async fn password_grant_checks_the_user() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, SECRET)),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw"),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].as_str().is_some(), "{body}");
    assert_eq!(body["scope"], "openid");
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["user_name"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["grant_type"], "password");

    for (user, password) in [("alice", "wrong"), ("mallory", "alice-pw")] {
        let (status, body) = post_form(
            &url,
            Some(&basic_rfc(CLIENT, SECRET)),
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
            ],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, SECRET)),
        &[("grant_type", "password"), ("username", "alice")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_request");

    // Right user, wrong client: the client is checked first.
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, "nope")),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw"),
        ],
    )
    .await;
    assert_invalid_client(status, &body);
}

#[tokio::test]
async fn refresh_token_grant() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let auth = basic_rfc(CLIENT, SECRET);

    // Without a configured list any non-empty refresh token is accepted.
    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[("grant_type", "refresh_token"), ("refresh_token", "rt-any")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let issued = body["refresh_token"].as_str().unwrap().to_owned();
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["grant_type"], "refresh_token");
    assert_eq!(claims["client_id"], CLIENT);
    assert!(claims.get("scope").is_none());

    let (status, body) = post_form(&url, Some(&auth), &[("grant_type", "refresh_token")]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );

    // A refresh token this server issued for a user keeps that user.
    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice-pw"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let alice_rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &alice_rt),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["refresh_token"], alice_rt.as_str());
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.com");

    // With a list: those and the ones this server issued.
    peer.configure(json!({"refresh_tokens": ["rt-1"]})).await;
    for (rt, want) in [("rt-1", 200), (issued.as_str(), 200), ("rt-any", 400)] {
        let (status, body) = post_form(
            &url,
            Some(&auth),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("scope", "s1"),
            ],
        )
        .await;
        assert_eq!(status, want, "{rt}: {body}");
        if want == 200 {
            assert_eq!(body["scope"], "s1");
        } else {
            assert_eq!(body["error"], "invalid_grant");
        }
    }
}

#[tokio::test]
async fn authorization_code_grant_with_pkce() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let verifier = "v".repeat(43);
    peer.configure(json!({"codes": [
        {"code": "code-1", "redirect_uri": "https://app.example/cb", "code_verifier": verifier, "sub": "carol"},
        {"code": "code-2"},
        {"code": "code-once", "single_use": true},
    ]}))
    .await;
    let auth = basic_rfc(CLIENT, SECRET);

    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[
            ("grant_type", "authorization_code"),
            ("code", "code-1"),
            ("redirect_uri", "https://app.example/cb"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].as_str().is_some());
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "carol");
    assert_eq!(claims["grant_type"], "authorization_code");

    let bad: [(&str, &[(&str, &str)]); 4] = [
        (
            "wrong verifier",
            &[
                ("code", "code-1"),
                ("redirect_uri", "https://app.example/cb"),
                ("code_verifier", "w"),
            ],
        ),
        (
            "no verifier",
            &[
                ("code", "code-1"),
                ("redirect_uri", "https://app.example/cb"),
            ],
        ),
        (
            "wrong redirect",
            &[
                ("code", "code-1"),
                ("redirect_uri", "https://evil.example/cb"),
                ("code_verifier", &verifier),
            ],
        ),
        ("unknown code", &[("code", "code-9")]),
    ];
    for (what, fields) in bad {
        let mut form = vec![("grant_type", "authorization_code")];
        form.extend_from_slice(fields);
        let (status, body) = post_form(&url, Some(&auth), &form).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}");
    }

    // A code without redirect_uri/verifier in its config accepts any, and may be reused.
    for _ in 0..2 {
        let (status, body) = post_form(
            &url,
            Some(&auth),
            &[
                ("grant_type", "authorization_code"),
                ("code", "code-2"),
                ("code_verifier", "anything"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // A single-use code works once.
    let form = [("grant_type", "authorization_code"), ("code", "code-once")];
    assert_eq!(post_form(&url, Some(&auth), &form).await.0, 200);
    assert_eq!(post_form(&url, Some(&auth), &form).await.0, 400);
}

#[tokio::test]
async fn jwt_bearer_grant() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let auth = basic_rfc(CLIENT, SECRET);
    let user = peer
        .user_token(json!({"sub": "u-42", "user_name": "dave", "email": "dave@example.com", "zid": "tenant-1"}))
        .await;

    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &user),
            ("scope", "uaa.user"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].as_str().is_some());
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "u-42");
    assert_eq!(claims["user_name"], "dave");
    assert_eq!(claims["email"], "dave@example.com");
    assert_eq!(claims["zid"], "tenant-1");
    assert_eq!(claims["client_id"], CLIENT);
    assert_eq!(claims["scope"], "uaa.user");
    assert_eq!(claims["grant_type"], JWT_BEARER);
    let rec = peer.requests().await.pop().unwrap();
    assert_eq!(rec["assertion_claims"]["user_name"], "dave");

    // One of its own tokens must verify: a changed signature, an expired one, no JWT at all.
    let parts: Vec<&str> = user.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["sub"] = json!("someone-else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        parts[2]
    );
    let expired = peer
        .user_token(json!({"sub": "u-42", "exp": 1_000_000}))
        .await;
    for (what, assertion) in [
        ("tampered", tampered.as_str()),
        ("expired", expired.as_str()),
        ("no JWT", "not-a-jwt"),
    ] {
        let (status, body) = post_form(
            &url,
            Some(&auth),
            &[("grant_type", JWT_BEARER), ("assertion", assertion)],
        )
        .await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}");
    }
    let (status, body) = post_form(&url, Some(&auth), &[("grant_type", JWT_BEARER)]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );

    // A JWT of another issuer is taken as it is (the caller verified it) and its user copied.
    let foreign = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"other","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"iss":"https://other.example","sub":"ext-1","email":"e@x"}"#),
        URL_SAFE_NO_PAD.encode("sig")
    );
    let (status, body) = post_form(
        &url,
        Some(&auth),
        &[("grant_type", JWT_BEARER), ("assertion", &foreign)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "ext-1");
    assert_eq!(claims["email"], "e@x");

    // The client is still checked.
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, "nope")),
        &[("grant_type", JWT_BEARER), ("assertion", &user)],
    )
    .await;
    assert_invalid_client(status, &body);
}

#[tokio::test]
async fn token_exchange_grant() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let subject = peer
        .user_token(json!({"sub": "u-7", "email": "u7@example.com"}))
        .await;
    let actor = peer.user_token(json!({"sub": "service-a"})).await;

    let (status, body) = post_form(
        &url,
        None,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("subject_token", &subject),
            ("subject_token_type", TT_JWT),
            ("actor_token", &actor),
            ("actor_token_type", TT_ACCESS),
            ("audience", "backend"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], TT_ACCESS);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none());
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], "u-7");
    assert_eq!(claims["email"], "u7@example.com");
    assert_eq!(claims["act"]["sub"], "service-a");
    assert_eq!(claims["grant_type"], TOKEN_EXCHANGE);
    let rec = peer.requests().await.pop().unwrap();
    assert_eq!(rec["form"]["audience"], "backend");
    assert_eq!(rec["form"]["subject_token_type"], TT_JWT);

    // requested_token_type jwt is answered as such; an opaque access token is accepted.
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, SECRET)),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", "opaque-123"),
            ("subject_token_type", TT_ACCESS),
            ("requested_token_type", TT_JWT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], TT_JWT);

    let missing: [&[(&str, &str)]; 3] = [
        &[("subject_token", &subject)],
        &[("subject_token_type", TT_JWT)],
        &[
            ("subject_token", &subject),
            ("subject_token_type", TT_JWT),
            ("actor_token", &actor),
        ],
    ];
    for fields in missing {
        let mut form = vec![("grant_type", TOKEN_EXCHANGE)];
        form.extend_from_slice(fields);
        let (status, body) = post_form(&url, Some(&basic_rfc(CLIENT, SECRET)), &form).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_request");
    }
    let (status, body) = post_form(
        &url,
        Some(&basic_rfc(CLIENT, "nope")),
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", TT_JWT),
        ],
    )
    .await;
    assert_invalid_client(status, &body);
}

#[tokio::test]
async fn saml2_bearer_grant() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let xml = r#"<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a1" Version="2.0"><saml2:Issuer>signpost</saml2:Issuer><saml2:Subject><saml2:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress">erin&amp;co@example.com</saml2:NameID></saml2:Subject></saml2:Assertion>"#;

    for encoded in [STANDARD.encode(xml), URL_SAFE_NO_PAD.encode(xml)] {
        peer.clear_requests().await;
        let (status, body) = post_form(
            &url,
            Some(&basic_rfc(CLIENT, SECRET)),
            &[
                ("grant_type", SAML2_BEARER),
                ("assertion", &encoded),
                ("client_id", CLIENT),
            ],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], "erin&co@example.com");
        assert_eq!(claims["grant_type"], SAML2_BEARER);
        let rec = peer.requests().await.pop().unwrap();
        assert_eq!(rec["saml_assertion_xml"], xml);
        assert_eq!(rec["saml_name_id"], "erin&co@example.com");
    }

    for assertion in [STANDARD.encode("no xml here"), "%%%".to_owned()] {
        let (status, body) = post_form(
            &url,
            Some(&basic_rfc(CLIENT, SECRET)),
            &[("grant_type", SAML2_BEARER), ("assertion", &assertion)],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
}

#[tokio::test]
async fn client_assertion_authentication() {
    let peer = OAuthPeer::start().await;
    peer.configure(json!({"clients": [
        {"id": "jwt-client"},
        {"id": "saml-client", "assertion": "PHNhbWw+Li4uPC9zYW1sPg"},
    ]}))
    .await;
    let url = peer.token_url();
    let assertion = peer
        .user_token(json!({"iss": "jwt-client", "sub": "jwt-client", "aud": peer.token_url()}))
        .await;

    // Client identified by client_id or by the assertion's sub.
    for with_id in [true, false] {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CA_JWT),
            ("client_assertion", assertion.as_str()),
        ];
        if with_id {
            form.push(("client_id", "jwt-client"));
        }
        let (status, body) = post_form(&url, None, &form).await;
        assert_eq!(status, 200, "{body}");
        let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
        assert_eq!(claims["client_id"], "jwt-client");
    }
    let rec = peer.requests().await.pop().unwrap();
    assert_eq!(rec["client_auth"]["method"], "client_assertion");
    assert_eq!(rec["client_auth"]["client_id"], "jwt-client");

    let expired = peer
        .user_token(json!({"sub": "jwt-client", "exp": 1_000_000}))
        .await;
    let cases: [(&str, &str, &str); 4] = [
        ("expired", CA_JWT, &expired),
        ("not a JWT", CA_JWT, "abc"),
        ("bad type", "urn:example:unknown", &assertion),
        ("SAML for a JWT client", CA_SAML, "PHNhbWw+"),
    ];
    for (what, kind, value) in cases {
        let (status, body) = post_form(
            &url,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "jwt-client"),
                ("client_assertion_type", kind),
                ("client_assertion", value),
            ],
        )
        .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}");
    }

    // A client configured with an exact assertion (e.g. SAML) needs exactly that one.
    for (value, want) in [("PHNhbWw+Li4uPC9zYW1sPg", 200), ("PHNhbWw+", 401)] {
        let (status, body) = post_form(
            &url,
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "saml-client"),
                ("client_assertion_type", CA_SAML),
                ("client_assertion", value),
            ],
        )
        .await;
        assert_eq!(status, want, "{body}");
    }
}

#[tokio::test]
async fn injected_failures_delay_and_lifetime() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let auth = basic_rfc(CLIENT, SECRET);
    let form = [("grant_type", "client_credentials")];

    // The next two token requests fail with the raw (malformed) body, then it works again.
    peer.configure(json!({"fail": {"status": 503, "body": "{not json", "count": 2}}))
        .await;
    for _ in 0..2 {
        let res = reqwest::Client::new()
            .post(&url)
            .header("authorization", &auth)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
        assert_eq!(res.text().await.unwrap(), "{not json");
    }
    let (status, _) = post_form(&url, Some(&auth), &form).await;
    assert_eq!(status, 200);
    let recs = peer.requests().await;
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["injected_failure"], true);
    assert_eq!(recs[0]["status"], 503);
    assert_eq!(recs[2]["status"], 200);

    // A failure without body or count: once, 500, an OAuth error body.
    peer.configure(json!({"fail": {"status": 500}})).await;
    let (status, body) = post_form(&url, Some(&auth), &form).await;
    assert_eq!((status, body), (500, json!({"error": "server_error"})));
    assert_eq!(post_form(&url, Some(&auth), &form).await.0, 200);

    // A delay before answering.
    peer.configure(json!({"delay_ms": 600})).await;
    let started = Instant::now();
    assert_eq!(post_form(&url, Some(&auth), &form).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(600));
    // A client that gives up earlier sees a timeout.
    let err = reqwest::Client::new()
        .post(&url)
        .header("authorization", &auth)
        .form(&form)
        .timeout(Duration::from_millis(150))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    peer.configure(json!({"delay_ms": 0})).await;

    // The token lifetime, extra claims and extra response fields.
    peer.configure(json!({
        "token_lifetime": 42,
        "extra_claims": {"zid": "z-1"},
        "extra_response": {"jti": "resp-1"},
    }))
    .await;
    let (status, body) = post_form(&url, Some(&auth), &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 42);
    assert_eq!(body["jti"], "resp-1");
    let claims = verify(&peer, body["access_token"].as_str().unwrap()).await;
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        42
    );
    assert_eq!(claims["zid"], "z-1");

    // Reset drops clients too.
    peer.reset().await;
    let (status, body) = post_form(&url, Some(&auth), &form).await;
    assert_invalid_client(status, &body);
    // Unknown config keys are refused.
    let res = reqwest::Client::new()
        .post(format!("{}/__config", peer.url()))
        .json(&json!({"clientz": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn records_requests_under_any_prefix() {
    let peer = peer_with_client().await;
    for path in ["/tenant-a/token", "/oauth/token", "/tenant-b/oauth/token"] {
        let res = reqwest::Client::new()
            .post(format!("{}{path}?x=1&y=two", peer.url()))
            .header("X-Custom-Header", "Value-1")
            .header("authorization", basic_rfc(CLIENT, SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", "r1"),
                ("resource", "r2"),
                ("extra", "a b+c"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    let recs = peer.requests().await;
    assert_eq!(recs.len(), 3);
    let paths: Vec<&str> = recs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/tenant-a/token", "/oauth/token", "/tenant-b/oauth/token"]
    );
    let r = &recs[0];
    assert_eq!(r["method"], "POST");
    assert_eq!(r["query"], json!({"x": "1", "y": "two"}));
    assert_eq!(r["raw_query"], "x=1&y=two");
    assert_eq!(r["headers"]["x-custom-header"], "Value-1");
    assert_eq!(
        r["headers"]["content-type"],
        "application/x-www-form-urlencoded"
    );
    assert_eq!(r["form"]["grant_type"], "client_credentials");
    assert_eq!(r["form"]["resource"], json!(["r1", "r2"]));
    assert_eq!(r["form"]["extra"], "a b+c");
    assert!(r["raw_body"].as_str().unwrap().contains("extra=a+b%2Bc"));
    assert!(r["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(r["client_auth"]["method"], "basic");
    assert_eq!(r["client_auth"]["client_id"], CLIENT);
    assert_eq!(r["status"], 200);
    assert!(recs[0]["timestamp"].as_u64() <= recs[2]["timestamp"].as_u64());

    peer.clear_requests().await;
    assert!(peer.requests().await.is_empty());

    // Other paths are not token requests and are not recorded.
    let res = reqwest::get(format!("{}/jwks", peer.url())).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(peer.requests().await.is_empty());
}

#[tokio::test]
async fn rejects_malformed_token_requests() {
    let peer = peer_with_client().await;
    let url = peer.token_url();
    let auth = basic_rfc(CLIENT, SECRET);

    let (status, body) = post_form(&url, Some(&auth), &[("grant_type", "magic")]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    let (status, body) = post_form(&url, Some(&auth), &[("scope", "x")]).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );

    let res = reqwest::Client::new()
        .post(&url)
        .header("authorization", &auth)
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");

    let res = reqwest::get(&url).await.unwrap();
    assert_eq!(res.status(), 405);

    // All of them were recorded.
    assert_eq!(peer.requests().await.len(), 4);
}

#[tokio::test]
async fn peers_are_independent_and_stop_on_drop() {
    let a = OAuthPeer::start().await;
    let b = OAuthPeer::start().await;
    assert_ne!(a.url(), b.url());
    assert_ne!(a.jwks().await, b.jwks().await);
    let url = a.url().to_owned();
    drop(a);
    let err = reqwest::Client::new()
        .get(format!("{url}/jwks"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(err.is_err(), "the server still answers after drop");
    assert_eq!(b.jwks().await["keys"].as_array().unwrap().len(), 1);
}
