//! The real binary on a real PostgreSQL (a throwaway cluster, or `SIGNPOST_TEST_DATABASE_URL`):
//! the same service, surviving restarts, and processes on one database seeing each other's
//! writes through the change feed that keeps their caches in step.
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

/// Finds `name` through `server` until the answer has `status` (and, when given, the first
/// token `value`), for at most five seconds: replicas learn of each other's writes through the
/// database's change feed, within milliseconds.
async fn until_found(
    client: &reqwest::Client,
    server: &ServerProcess,
    tok: &str,
    name: &str,
    status: u16,
    value: Option<&str>,
) {
    let start = std::time::Instant::now();
    loop {
        let (s, v) = find(client, &server.url(""), tok, name).await;
        if s == status && value.is_none_or(|want| v["authTokens"][0]["value"] == want) {
            return;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "{name}: still {s} {v}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
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
    let tok = a.token(&key).await;
    let (s, v) = find(&client, &b.url(""), &tok, "pg-basic").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["authTokens"][0]["value"], "dTpwdw==");
    // b has the destination in its cache now; a changes it, and b follows.
    let res = client
        .request(
            Method::PUT,
            a.url("/destination-configuration/v1/instanceDestinations"),
        )
        .bearer_auth(&tok)
        .json(&json!({"Name": "pg-basic", "Type": "HTTP", "URL": "https://x", "Authentication": "BasicAuthentication", "User": "u", "Password": "new"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    until_found(&client, &b, &tok, "pg-basic", 200, Some("dTpuZXc=")).await;
    // A new destination written through one is found through the other.
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
    until_found(&client, &b, &tok, "written-on-a", 200, None).await;
    let (s, _) = find(&client, &a.url(""), &tok, "written-on-a").await;
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
    until_found(&client, &a, &tok, "written-on-a", 404, None).await;
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
    until_found(&client, &a, &tok, "pg-basic", 401, None).await;
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
    let tok = server.token(&key).await;
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
    let old_token = lite.token(&key).await;
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
    let fresh = on_pg.token(&key).await;
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

/// `PUT /v2/service_instances/{instance}` and its status, without asserting it.
async fn try_provision(
    server: &ServerProcess,
    instance: &str,
    subaccount: &str,
    parameters: serde_json::Value,
) -> u16 {
    let (service_id, plan_id) = server.catalog_ids().await;
    server
        .broker(Method::PUT, &format!("/v2/service_instances/{instance}"))
        .json(&json!({"service_id": service_id, "plan_id": plan_id, "context": {"subaccount_id": subaccount}, "parameters": parameters}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn three_replicas_and_clashing_provisionings() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut replicas = Vec::new();
    for n in 0..3 {
        replicas.push(ServerProcess::start(on(&db.url, &tmp.path().join(format!("r{n}")))).await);
    }
    replicas[0]
        .provision("i-three", "sub-three", json!({}))
        .await;
    let key = replicas[1].bind("i-three", "k-three").await;
    let client = support::http_client();
    let tok = replicas[2].token(&key).await;
    let res = client
        .post(replicas[0].url("/destination-configuration/v1/instanceDestinations"))
        .bearer_auth(&tok)
        .json(&json!({"Name": "everywhere", "Type": "HTTP", "URL": "https://e"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for r in &replicas[1..] {
        until_found(&client, r, &tok, "everywhere", 200, None).await;
    }
    // Two replicas provision at once, both creating the same subaccount destination under the
    // default policy fail: exactly one wins and nothing of the other remains.
    let clash = |tag: &str| {
        json!({"init_data": {
            "subaccount": {"destinations": [{"Name": "clash", "Type": "HTTP", "URL": format!("https://{tag}")}]},
            "instance": {"destinations": (0..50).map(|i| json!({"Name": format!("{tag}-{i}"), "Type": "HTTP"})).collect::<Vec<_>>()}
        }})
    };
    let (a, b) = tokio::join!(
        try_provision(&replicas[1], "i-left", "sub-three", clash("left")),
        try_provision(&replicas[2], "i-right", "sub-three", clash("right")),
    );
    let mut statuses = [a, b];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409], "exactly one wins");
    let winner = if a == 201 { "left" } else { "right" };
    let loser = if a == 201 { "i-right" } else { "i-left" };
    let (service_id, plan_id) = replicas[0].catalog_ids().await;
    let res = replicas[0]
        .broker(
            Method::PUT,
            &format!("/v2/service_instances/{loser}/service_bindings/k"),
        )
        .json(&json!({"service_id": service_id, "plan_id": plan_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "the losing instance does not exist");
    let (s, v) = find(&client, &replicas[0].url(""), &tok, "clash").await;
    assert_eq!(s, 200);
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        format!("https://{winner}")
    );
    drop(replicas);
    db.drop_db().await;
}

#[tokio::test]
async fn a_replica_killed_during_a_large_provisioning_leaves_all_or_nothing() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let victim = ServerProcess::start(on(&db.url, &tmp.path().join("victim"))).await;
    let survivor = ServerProcess::start(on(&db.url, &tmp.path().join("survivor"))).await;
    let big = json!({"init_data": {"instance": {"destinations": (0..1000)
        .map(|i| json!({"Name": format!("d-{i:04}"), "Type": "HTTP", "URL": format!("https://h/{i}"), "Description": "x".repeat(200)}))
        .collect::<Vec<_>>()}}});
    let pid = victim.pid();
    let provisioning = tokio::spawn({
        let (service_id, plan_id) = victim.catalog_ids().await;
        let broker = victim.broker(Method::PUT, "/v2/service_instances/i-big");
        async move {
            broker
                .json(&json!({"service_id": service_id, "plan_id": plan_id, "context": {"subaccount_id": "sub-big"}, "parameters": big}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // Kill it while its transaction is open: a backend of this database with a transaction id
    // (it has written) that is not a change-feed heartbeat.
    let mut watch = db.watch().await;
    let start = std::time::Instant::now();
    loop {
        let writing = watch
            .count(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                 AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL AND query NOT LIKE '%pg_notify%'",
            )
            .await;
        if writing > 0 {
            break;
        }
        assert!(
            !provisioning.is_finished() && start.elapsed() < std::time::Duration::from_secs(10),
            "never saw the provisioning's transaction open"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    let outcome = provisioning.await.unwrap();
    // Whatever the kill interrupted, the database holds the whole instance or nothing of it.
    let (service_id, plan_id) = survivor.catalog_ids().await;
    let res = survivor
        .broker(
            Method::PUT,
            "/v2/service_instances/i-big/service_bindings/k-big",
        )
        .json(&json!({"service_id": service_id, "plan_id": plan_id}))
        .send()
        .await
        .unwrap();
    println!(
        "killed mid-transaction; the instance is {} ({outcome:?})",
        if res.status() == 201 {
            "whole"
        } else {
            "absent"
        }
    );
    match res.status().as_u16() {
        201 => {
            let key = res.json::<serde_json::Value>().await.unwrap()["credentials"].clone();
            let client = support::http_client();
            let tok = survivor.token(&key).await;
            let list: serde_json::Value = client
                .get(
                    survivor.url("/destination-configuration/v1/instanceDestinations?$select=Name"),
                )
                .bearer_auth(&tok)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(
                list.as_array().unwrap().len(),
                1000,
                "the instance came with all of its destinations ({outcome:?})"
            );
        }
        404 => {
            // Nothing was written: provisioning the same id again through the survivor works.
            assert_eq!(
                try_provision(&survivor, "i-big", "sub-big", json!({})).await,
                201,
                "({outcome:?})"
            );
        }
        other => panic!("unexpected bind status {other}"),
    }
    drop((victim, survivor));
    db.drop_db().await;
}

/// Replicas deployed at once on an empty database may all run the first-run bootstrap: they all
/// start, and agree on one default instance and one default service key.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_bootstrapping_one_empty_database_at_once_all_start() {
    let pg = PgServer::start();
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let opts = |n: usize| {
        ServerOptions::new(&tmp.path().join(format!("r{n}")))
            .env("SIGNPOST_DATABASE_URL", &db.url)
            .env("SIGNPOST_MASTER_KEY", MASTER)
            .env("SIGNPOST_PUBLIC_URL", "http://signpost.test")
    };
    let (a, b, c) = tokio::join!(
        ServerProcess::try_start(opts(0)),
        ServerProcess::try_start(opts(1)),
        ServerProcess::try_start(opts(2)),
    );
    let replicas: Vec<ServerProcess> = [a, b, c]
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("a replica did not start: {e:?}")))
        .collect();
    // A replica that found the instance already made writes no key file; those that made (or
    // raced to make) it hold the same key.
    let keys: Vec<serde_json::Value> = (0..3)
        .filter_map(|n| {
            let path = tmp
                .path()
                .join(format!("r{n}"))
                .join("default-service-key.json");
            std::fs::read_to_string(path).ok()
        })
        .map(|text| serde_json::from_str(&text).unwrap())
        .collect();
    println!("{} of 3 replicas bootstrapped", keys.len());
    assert!(!keys.is_empty(), "no replica wrote the default service key");
    assert!(keys.iter().all(|k| k["clientid"] == keys[0]["clientid"]));
    let client = support::http_client();
    let tok = replicas[2].token(&keys[0]).await;
    let (s, _) = find(&client, &replicas[1].url(""), &tok, "nothing-here").await;
    assert_eq!(s, 404, "the token works on another replica");
    drop(replicas);
    db.drop_db().await;
}

/// PostgreSQL stopped and started again under load: while it is down every failure is a 503
/// with a JSON error (never a 500, and the server keeps answering), Signpost recovers by itself
/// once the database is back, and every write it acknowledged is there.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_and_restarted_under_load() {
    let pg = PgServer::start();
    if !pg.owns_cluster() {
        eprintln!(
            "skipped: the PostgreSQL server is given by the environment and is not ours to stop"
        );
        return;
    }
    let db = pg.create_db().await;
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(on(&db.url, &tmp.path().join("a"))).await;
    server.provision("i-outage", "sub-outage", json!({})).await;
    let key = server.bind("i-outage", "k-outage").await;
    let client = support::http_client();
    let tok = server.token(&key).await;
    let url = server.url("/destination-configuration/v1/instanceDestinations");

    // One writer and one reader; every answer is recorded with the phase it was sent in.
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, url, tok, down, stop) = (
            client.clone(),
            url.clone(),
            tok.clone(),
            down.clone(),
            stop.clone(),
        );
        let base = server.url("");
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut answers: Vec<(bool, u16, String)> = Vec::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let name = format!("w-{i:05}");
                i += 1;
                let was_down = down.load(std::sync::atomic::Ordering::SeqCst);
                let res = client
                    .post(&url)
                    .bearer_auth(&tok)
                    .json(&json!({"Name": name, "Type": "HTTP", "URL": "https://x", "Authentication": "BasicAuthentication", "User": "u", "Password": format!("pw-{name}")}))
                    .send()
                    .await
                    .expect("the server keeps answering");
                let status = res.status().as_u16();
                let retry = res.headers().contains_key("retry-after");
                let body = res.text().await.unwrap();
                if status == 201 {
                    acked.push(name.clone());
                } else if status == 503 {
                    assert!(retry, "a 503 says when to retry");
                }
                answers.push((was_down, status, body));
                let (s, v) = find(&client, &base, &tok, &name).await;
                answers.push((was_down, s, v.to_string()));
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            (acked, answers)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    down.store(true, std::sync::atomic::Ordering::SeqCst);
    pg.stop();
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    pg.restart();
    down.store(false, std::sync::atomic::Ordering::SeqCst);
    // Recovery without restarting Signpost: writes are acknowledged again.
    let back = std::time::Instant::now();
    loop {
        let res = client
            .post(&url)
            .bearer_auth(&tok)
            .json(&json!({"Name": format!("probe-{}", back.elapsed().as_millis()), "Type": "HTTP", "URL": "https://x", "Authentication": "NoAuthentication"}))
            .send()
            .await
            .unwrap();
        if res.status() == 201 {
            break;
        }
        assert!(
            back.elapsed() < std::time::Duration::from_secs(30),
            "not recovered: {} {}",
            res.status(),
            res.text().await.unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let recovered = back.elapsed();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acked, answers) = load.await.unwrap();

    for (_, status, body) in &answers {
        assert!(matches!(status, 200 | 201 | 404 | 503), "{status} {body}");
        if *status == 503 {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(
                v["ErrorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("not available"),
                "{body}"
            );
        }
    }
    let unavailable = answers.iter().filter(|(_, s, _)| *s == 503).count();
    assert!(unavailable > 0, "the outage was seen");
    // Nothing acknowledged is lost.
    let res = client.get(&url).bearer_auth(&tok).send().await.unwrap();
    let stored: std::collections::BTreeSet<String> = res
        .json::<Vec<serde_json::Value>>()
        .await
        .unwrap()
        .iter()
        .map(|d| d["Name"].as_str().unwrap().to_owned())
        .collect();
    for name in &acked {
        assert!(stored.contains(name), "{name} was acknowledged and is gone");
    }
    let log = server.stderr();
    assert!(!log.contains("pw-w-"), "no secret in the log");
    eprintln!(
        "PostgreSQL down 8 s under load: {} answers, {unavailable} of them 503, {} writes acknowledged and kept, recovered {} ms after the restart",
        answers.len(),
        acked.len(),
        recovered.as_millis()
    );
}
