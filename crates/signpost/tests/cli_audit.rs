//! `signpost audit` against a real server on loopback: the table, `-o json` (the server's
//! JSON), `--since` as a time or an age, `--limit` across pages, and usage errors.
#![allow(clippy::unwrap_used)]

mod cli_common;

use cli_common::Cli;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, TestApp, TestOptions, BROKER_PASSWORD, BROKER_USER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verb_on_the_cli() {
    let app = TestApp::start().await;
    let cli = Cli::new();
    cli.run(&["audit"]).fails(1, "not logged in to a platform");
    cli.run(&[
        "login",
        &app.base,
        "--broker-user",
        BROKER_USER,
        "--broker-password",
        BROKER_PASSWORD,
    ])
    .ok();
    for i in 0..3 {
        assert_eq!(
            app.provision(&format!("cli-{i}"), "cli-sub", json!({}))
                .await
                .status(),
            201
        );
    }

    let out = cli.run(&["audit"]);
    let table = out.ok();
    assert!(table.starts_with("TIME"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let first = table.lines().nth(1).unwrap();
    for cell in [
        "broker",
        "provision",
        "instance",
        "cli-2",
        "cli-sub",
        "success 201",
    ] {
        assert!(first.contains(cell), "{cell} in {first}");
    }

    // -o json is the server's JSON.
    let (_, served) = status_json(
        app.client
            .get(app.url("/signpost/v1/audit"))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let json = cli.run(&["audit", "-o", "json"]).json();
    assert_eq!(json, served);

    // --limit takes the newest; --since a time or an age.
    let two = cli.run(&["audit", "--limit", "2", "-o", "json"]).json();
    assert_eq!(two, Value::Array(served.as_array().unwrap()[..2].to_vec()));
    let since = served[1]["time"].as_str().unwrap();
    let newer = cli.run(&["audit", "--since", since, "-o", "json"]).json();
    assert!(newer.as_array().unwrap().len() >= 2);
    assert!(newer
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["time"].as_str().unwrap() >= since));
    let recent = cli.run(&["audit", "--since", "1h", "-o", "json"]).json();
    assert_eq!(recent, served);
    let none = cli
        .run(&["audit", "--since", "2999-01-01T00:00:00Z", "-o", "json"])
        .json();
    assert_eq!(none, json!([]));

    cli.run(&["audit", "--since", "yesterday"])
        .fails(2, "--since 'yesterday' is neither an RFC 3339 time");
    cli.run(&["audit", "--limit", "0"])
        .fails(2, "--limit must be at least 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verb_follows_pages() {
    let app = TestApp::start_with(TestOptions {
        max_entities: 2000,
        ..TestOptions::default()
    })
    .await;
    // More events than one page of the server (1000): one bulk of 1001 destinations.
    let t = app.tenant("big", "big-i", json!({})).await;
    let items: Vec<Value> = (0..1001)
        .map(|i| json!({"Name": format!("d{i}"), "Type": "HTTP", "URL": "https://example.org", "Authentication": "NoAuthentication"}))
        .collect();
    assert_eq!(
        t.post("/v1/subaccountDestinations", Value::Array(items))
            .await
            .status(),
        201
    );
    let cli = Cli::new();
    cli.run(&[
        "login",
        &app.base,
        "--broker-user",
        BROKER_USER,
        "--broker-password",
        BROKER_PASSWORD,
    ])
    .ok();
    let all = cli.run(&["audit", "--limit", "5000", "-o", "json"]).json();
    // provision, bind, token, and one create per destination.
    assert_eq!(all.as_array().unwrap().len(), 3 + 1001);
    let ids: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats"
    );
}
