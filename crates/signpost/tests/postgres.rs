//! The real binary on a real PostgreSQL (a throwaway cluster, or `SIGNPOST_TEST_DATABASE_URL`):
//! the same service, surviving restarts, and two processes on one database seeing each other's
//! writes at once.
#![allow(clippy::unwrap_used)]

mod support;

use reqwest::Method;
use serde_json::json;
use signpost_test_utils::pg::PgServer;
use support::{find, ServerOptions, ServerProcess};

const MASTER: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Replicas share the database, the master key and the public URL (the load balancer's).
fn on(db: &str, data: &std::path::Path) -> ServerOptions {
    ServerOptions::new(data)
        .env("SIGNPOST_DATABASE_URL", db)
        .env("SIGNPOST_MASTER_KEY", MASTER)
        .env("SIGNPOST_PUBLIC_URL", "http://signpost.test")
        .arg("--no-bootstrap")
}

/// A token from one replica's token endpoint (the key's `url` names the load balancer).
async fn token_from(
    client: &reqwest::Client,
    server: &ServerProcess,
    key: &serde_json::Value,
) -> String {
    let (s, v) = support::request_token(client, &server.url(""), key).await;
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_processes_on_one_postgres_database() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let a = ServerProcess::start(on(&db.url, &tmp.path().join("a"))).await;
    let b = ServerProcess::start(on(&db.url, &tmp.path().join("b"))).await;
    let dest = json!({"Name": "pg-basic", "Type": "HTTP", "URL": "https://x", "Authentication": "BasicAuthentication", "User": "u", "Password": "pw"});
    a.provision(
        "i-pg",
        "sub-pg",
        json!({"init_data": {"instance": {"destinations": [dest]}}}),
    )
    .await;
    let key = a.bind("i-pg", "k-pg").await;
    let client = support::http_client();
    // A token issued by one process is accepted by the other (shared signing keys).
    let tok = token_from(&client, &a, &key).await;
    let (s, v) = find(&client, &b.url(""), &tok, "pg-basic").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["authTokens"][0]["value"], "dTpwdw==");
    // A write through one is seen by a find through the other at once.
    let res = client
        .request(
            Method::POST,
            a.url("/destination-configuration/v1/subaccountDestinations"),
        )
        .bearer_auth(&tok)
        .json(&json!({"Name": "written-on-a", "Type": "HTTP", "URL": "https://a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (s, _) = find(&client, &b.url(""), &tok, "written-on-a").await;
    assert_eq!(s, 200);
    let res = client
        .request(
            Method::DELETE,
            b.url("/destination-configuration/v1/subaccountDestinations/written-on-a"),
        )
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (s, _) = find(&client, &a.url(""), &tok, "written-on-a").await;
    assert_eq!(s, 404);
    // Unbinding through one revokes the key on the other.
    let res = b
        .broker(
            Method::DELETE,
            "/v2/service_instances/i-pg/service_bindings/k-pg",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (s, _) = find(&client, &a.url(""), &tok, "pg-basic").await;
    assert_eq!(s, 401);
    drop((a, b));
    db.drop_db().await;
}

#[tokio::test]
async fn migrate_and_restart_on_postgres() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let (status, err) = support::run_to_exit(
        &[
            "migrate",
            "--data-dir",
            &tmp.path().join("m").display().to_string(),
            "--database-url",
            &db.url,
        ],
        &[("SIGNPOST_MASTER_KEY", MASTER)],
    );
    assert!(status.success(), "{err}");
    let mut server = ServerProcess::start(on(&db.url, &tmp.path().join("s"))).await;
    server.provision("i-r", "sub-r", json!({})).await;
    let key = server.bind("i-r", "k-r").await;
    let port = server
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    server.stop().await;
    let server = ServerProcess::start(on(&db.url, &tmp.path().join("s")).port(port)).await;
    let client = support::http_client();
    let tok = token_from(&client, &server, &key).await;
    let (s, _) = find(&client, &server.url(""), &tok, "none").await;
    assert_eq!(s, 404);
    drop(server);
    db.drop_db().await;
}

#[tokio::test]
async fn store_copy_moves_everything_from_sqlite_to_postgres() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("lite");
    let opts = || {
        ServerOptions::new(&data)
            .env("SIGNPOST_MASTER_KEY", MASTER)
            .env("SIGNPOST_PUBLIC_URL", "http://signpost.test")
            .arg("--no-bootstrap")
    };
    let mut lite = ServerProcess::start(opts()).await;
    let dest = json!({"Name": "moved", "Type": "HTTP", "URL": "https://m", "Authentication": "BasicAuthentication", "User": "u", "Password": "moved-secret"});
    let certs =
        json!([{"Name": "c.pem", "Content": signpost_test_utils::pki::cert_content("moved")}]);
    lite.provision(
        "i-move",
        "sub-move",
        json!({"init_data": {"subaccount": {"destinations": [dest], "certificates": certs}}}),
    )
    .await;
    let key = lite.bind("i-move", "k-move").await;
    let client = support::http_client();
    let old_token = token_from(&client, &lite, &key).await;
    lite.stop().await;

    let sqlite_url = format!("sqlite://{}", data.join("signpost.db").display());
    let copy = |to: &str| {
        support::run_to_exit(
            &[
                "store",
                "copy",
                "--from",
                &sqlite_url,
                "--to",
                to,
                "--data-dir",
                &data.display().to_string(),
            ],
            &[("SIGNPOST_MASTER_KEY", MASTER)],
        )
    };
    let (status, err) = copy(&db.url);
    assert!(status.success(), "{err}");
    assert!(err.contains("copied and verified"), "{err}");
    // A second copy into the now non-empty target is refused and changes nothing.
    let (status, err) = copy(&db.url);
    assert!(!status.success());
    assert!(err.contains("not empty"), "{err}");

    let on_pg = ServerProcess::start(on(&db.url, &tmp.path().join("pg"))).await;
    // The old token still verifies (signing keys moved) and the key still gets new ones.
    let (s, v) = find(&client, &on_pg.url(""), &old_token, "moved").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["destinationConfiguration"]["Password"], "moved-secret");
    let fresh = token_from(&client, &on_pg, &key).await;
    let res = client
        .get(on_pg.url("/destination-configuration/v1/subaccountCertificates/c.pem"))
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(on_pg);
    db.drop_db().await;
}
