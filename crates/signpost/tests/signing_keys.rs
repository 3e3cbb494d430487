//! Token signing-key rotation against the real binary: the admin endpoints with the broker
//! credentials, tokens of the old key that keep working, the JWKS during a rotation (verified
//! with `jsonwebtoken`), a restart, two replicas on PostgreSQL, and the `signing-key` CLI verbs.
#![allow(clippy::unwrap_used)]

mod cli_common;
mod support;

use cli_common::Cli;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{json, Map, Value};
use signpost_test_utils::pg::PgServer;
use support::{
    find, request_token, token, ServerOptions, ServerProcess, BROKER_PASSWORD, BROKER_USER,
};
use tempfile::TempDir;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The server's default `--token-lifetime`.
const LIFETIME: i64 = 43_199;

async fn server(dir: &TempDir) -> ServerProcess {
    ServerProcess::start(ServerOptions::new(&dir.path().join("data"))).await
}

fn destination() -> Value {
    json!({"init_data": {"instance": {"destinations": [{
        "Name": "hello", "Type": "HTTP", "URL": "https://example.org",
        "Authentication": "NoAuthentication", "ProxyType": "Internet"
    }]}}})
}

fn kid_of(token: &str) -> String {
    decode_header(token).unwrap().kid.unwrap()
}

fn at(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339).unwrap()
}

async fn jwks(server: &ServerProcess) -> JwkSet {
    let res = server
        .client
        .get(server.url("/token_keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Verifies `token`'s signature (and expiry and issuer) with the key of its `kid` in `set`.
fn verify(set: &JwkSet, token: &str, issuer: &str) -> Map<String, Value> {
    let kid = kid_of(token);
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("{kid} is not in the JWKS"));
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_aud = false;
    v.set_issuer(&[issuer]);
    decode::<Map<String, Value>>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap_or_else(|e| panic!("the token of {kid} does not verify: {e}"))
        .claims
}

async fn admin(server: &ServerProcess, method: Method, path: &str) -> (u16, Value) {
    let res = server
        .client
        .request(method, server.url(path))
        .basic_auth(&server.broker_user, Some(&server.broker_password))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_old_tokens_working_and_serves_both_keys() {
    let dir = TempDir::new().unwrap();
    let mut server = server(&dir).await;
    server.provision("i1", "sub-1", destination()).await;
    let key = server.bind("i1", "b1").await;
    let old_token = token(&server.client, &key).await;
    let old_kid = kid_of(&old_token);
    let issuer = server.url("/oauth/token");

    // One active key to begin with, the one that signed.
    let (status, keys) = admin(&server, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(status, 200, "{keys}");
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["kid"], old_kid.as_str());
    assert_eq!(keys[0]["state"], "active");
    at(&keys[0]["createdAt"]);
    assert!(keys[0].get("retiredAt").is_none() && keys[0].get("expiresAt").is_none());

    // Rotate: a new active key; the old one retired, kept for one token lifetime.
    let (status, rotation) = admin(&server, Method::POST, "/signpost/v1/signing-keys/rotate").await;
    assert_eq!(status, 201, "{rotation}");
    let new_kid = rotation["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    let listed = rotation["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["kid"], old_kid.as_str());
    assert_eq!(listed[0]["state"], "retired");
    assert_eq!(listed[1]["kid"], new_kid.as_str());
    assert_eq!(listed[1]["state"], "active");
    assert_eq!(at(&listed[0]["retiredAt"]), at(&listed[1]["createdAt"]));
    assert_eq!(
        (at(&listed[0]["expiresAt"]) - at(&listed[0]["retiredAt"])).whole_seconds(),
        LIFETIME
    );
    assert!(listed[0]["retiredAt"].as_str().unwrap().ends_with('Z'));
    let (_, keys) = admin(&server, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(&keys, &rotation["keys"], "the list shows the same");

    // The token from before the rotation still works; a new one carries the new kid.
    let (status, body) = find(&server.client, &server.base, &old_token, "hello").await;
    assert_eq!(status, 200, "{body}");
    let new_token = token(&server.client, &key).await;
    assert_eq!(kid_of(&new_token), new_kid);
    let (status, body) = find(&server.client, &server.base, &new_token, "hello").await;
    assert_eq!(status, 200, "{body}");

    // The JWKS has both, newest first, and each token verifies against its key.
    let set = jwks(&server).await;
    let kids: Vec<_> = set.keys.iter().map(|k| k.common.key_id.clone()).collect();
    assert_eq!(kids, [Some(new_kid.clone()), Some(old_kid.clone())]);
    assert_eq!(
        verify(&set, &old_token, &issuer)["client_id"],
        key["clientid"]
    );
    assert_eq!(
        verify(&set, &new_token, &issuer)["client_id"],
        key["clientid"]
    );
    // A new service key carries the new key as its verification key.
    let raw: Value = server
        .client
        .get(server.url("/token_keys"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key2 = server.bind("i1", "b2").await;
    assert_eq!(key2["verificationkey"], raw["keys"][0]["value"]);
    assert_ne!(key2["verificationkey"], key["verificationkey"]);

    // After a restart the retired key is still accepted and the new one still signs.
    server.stop().await;
    let server =
        ServerProcess::start(ServerOptions::new(&dir.path().join("data")).port(server.port)).await;
    let (status, _) = find(&server.client, &server.base, &old_token, "hello").await;
    assert_eq!(status, 200);
    assert_eq!(kid_of(&token(&server.client, &key).await), new_kid);
    let (_, keys) = admin(&server, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(&keys, &rotation["keys"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotation_through_one_replica_reaches_the_other() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = TempDir::new().unwrap();
    let on = |name: &str| {
        ServerOptions::new(&tmp.path().join(name))
            .env("SIGNPOST_DATABASE_URL", &db.url)
            .env(
                "SIGNPOST_MASTER_KEY",
                "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            )
            .env("SIGNPOST_PUBLIC_URL", "http://signpost.test")
            .arg("--no-bootstrap")
    };
    let a = ServerProcess::start(on("a")).await;
    let b = ServerProcess::start(on("b")).await;
    a.provision("i1", "sub-1", destination()).await;
    let key = a.bind("i1", "b1").await;
    let token_from = |server: &ServerProcess| {
        let (client, base) = (server.client.clone(), server.base.clone());
        let key = key.clone();
        async move {
            let (status, body) = request_token(&client, &base, &key).await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let old_token = token_from(&a).await;

    let (status, rotation) = admin(&a, Method::POST, "/signpost/v1/signing-keys/rotate").await;
    assert_eq!(status, 201, "{rotation}");
    let new_token = token_from(&a).await;
    assert_eq!(kid_of(&new_token), rotation["kid"].as_str().unwrap());

    // The other replica hears of the rotation through the change feed, before it sees any token
    // of the new key: it publishes both keys and signs with the new one.
    let start = std::time::Instant::now();
    while jwks(&b).await.find(&kid_of(&new_token)).is_none() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the other replica never published the new key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(kid_of(&token_from(&b).await), kid_of(&new_token));
    // It accepts tokens of both keys.
    for t in [&new_token, &old_token] {
        let (status, body) = find(&b.client, &b.base, t, "hello").await;
        assert_eq!(status, 200, "{body}");
    }
    let set = jwks(&b).await;
    assert!(set.find(&kid_of(&old_token)).is_some());
    assert!(set.find(&kid_of(&new_token)).is_some());
    assert_eq!(kid_of(&token_from(&b).await), kid_of(&new_token));
    let (_, listed) = admin(&b, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(listed, rotation["keys"]);
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_keys_need_the_broker_credentials() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir).await;
    server.provision("i1", "sub-1", destination()).await;
    let key = server.bind("i1", "b1").await;
    let tenant_token = token(&server.client, &key).await;

    for (method, path) in [
        (Method::GET, "/signpost/v1/signing-keys"),
        (Method::POST, "/signpost/v1/signing-keys/rotate"),
    ] {
        let attempts = [
            server.client.request(method.clone(), server.url(path)),
            server
                .client
                .request(method.clone(), server.url(path))
                .basic_auth(BROKER_USER, Some("wrong")),
            server
                .client
                .request(method.clone(), server.url(path))
                .basic_auth("someone", Some(BROKER_PASSWORD)),
            server
                .client
                .request(method.clone(), server.url(path))
                .bearer_auth(&tenant_token),
        ];
        for req in attempts {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 401, "{method} {path}");
            assert_eq!(
                res.headers()["content-type"],
                "application/json",
                "{method} {path}"
            );
            assert!(res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic"));
            let body: Value = res.json().await.unwrap();
            assert_eq!(
                body["ErrorMessage"],
                "Broker credentials (HTTP Basic) are missing or wrong"
            );
        }
    }
    // Nothing rotated.
    let (_, keys) = admin(&server, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["kid"], kid_of(&tenant_token).as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_key_verbs_on_the_cli() {
    let dir = TempDir::new().unwrap();
    let server = server(&dir).await;
    let cli = Cli::new();
    cli.run(&["signing-key", "list"])
        .fails(1, "not logged in to a platform");
    cli.run(&[
        "login",
        &server.base,
        "--broker-user",
        BROKER_USER,
        "--broker-password",
        BROKER_PASSWORD,
    ])
    .ok();

    let list = cli.run(&["signing-key", "list"]);
    let table = list.ok();
    assert!(table.starts_with("KID"), "{table}");
    assert!(table.contains("active"), "{table}");
    assert_eq!(table.lines().count(), 2, "{table}");
    let before = cli.run(&["signing-key", "list", "-o", "json"]).json();
    let first = before[0]["kid"].as_str().unwrap().to_owned();

    let out = cli.run(&["signing-key", "rotate", "-o", "json"]);
    let rotation = out.json();
    let second = rotation["kid"].as_str().unwrap().to_owned();
    assert!(out
        .stderr
        .contains(&format!("signing key '{second}' signs from now on")));
    assert_eq!(rotation["keys"][0]["kid"], first.as_str());
    assert_eq!(rotation["keys"][0]["state"], "retired");
    assert_eq!(rotation["keys"][1]["state"], "active");
    // -o json is the server's JSON.
    let (_, served) = admin(&server, Method::GET, "/signpost/v1/signing-keys").await;
    assert_eq!(
        cli.run(&["signing-key", "list", "-o", "json"]).json(),
        served
    );

    let rotated = cli.run(&["signing-key", "rotate"]);
    let table = rotated.ok();
    assert!(table.starts_with("KID"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let yaml = cli.run(&["signing-key", "list", "-o", "yaml"]);
    let text = yaml.ok();
    assert_eq!(text.matches("state: retired").count(), 2, "{text}");
    assert_eq!(text.matches("state: active").count(), 1, "{text}");
    assert!(text.contains(&format!("kid: {first}")), "{text}");
}
