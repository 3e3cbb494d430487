//! Crashes in the middle of writes, against real server processes on SQLite: the server is
//! SIGKILLed while a large provisioning (one configuration JSON, all or nothing) or an array POST
//! is being written, then started again on the same data directory.
//! - provisioning: afterwards the instance exists with everything its configuration holds, or
//!   does not exist and left nothing behind (provisioning it again succeeds);
//! - an array POST is handled item by item (SAP's 207 semantics): afterwards the stored items are a
//!   prefix of the array, each one whole (its secret decrypts).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use support::{http_client, ServerOptions, ServerProcess};
use tempfile::TempDir;

const API: &str = "/destination-configuration/v1";
/// Destinations per level in the large configuration, and items in the array.
const LARGE: usize = 1000;
/// When to kill an array POST, from the moment it is sent: spread so that some land before the
/// first item is written, most while items are written.
const DELAYS_MS: [u64; 8] = [0, 5, 15, 30, 60, 120, 250, 500];
/// When to kill a provisioning, as shares of the time one takes uninterrupted: before its
/// one write, around it, and after it.
const KILL_AT: [f64; 7] = [0.0, 0.25, 0.5, 0.8, 0.9, 0.97, 1.5];

fn destination(prefix: &str, i: usize) -> Value {
    json!({
        "Name": format!("{prefix}-{i:05}"),
        "Type": "HTTP",
        "URL": format!("https://host-{i}.example.org"),
        "Authentication": "BasicAuthentication",
        "ProxyType": "Internet",
        "User": "user",
        "Password": format!("pw-{prefix}-{i}"),
    })
}

/// Room for every round's items on one level.
fn options(data: &std::path::Path) -> ServerOptions {
    ServerOptions::new(data)
        .arg("--max-entities")
        .arg((LARGE * (DELAYS_MS.len() + 1)).to_string())
}

fn expected(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

async fn password(server: &ServerProcess, token: &str, path: &str, name: &str) -> Value {
    let res = http_client()
        .get(server.url(&format!("{API}/{path}/{name}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["Password"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_a_large_provisioning_leaves_all_or_nothing() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let config = json!({"init_data": {
        "subaccount": {"destinations": (0..LARGE).map(|i| destination("s", i)).collect::<Vec<_>>()},
        "instance": {"destinations": (0..LARGE).map(|i| destination("i", i)).collect::<Vec<_>>()},
    }});
    // How long one such provisioning takes here: the kills are spread over it and past it.
    let took = {
        let server = ServerProcess::start(options(&data)).await;
        let started = std::time::Instant::now();
        server
            .provision("calibration", "sub-calibration", config.clone())
            .await;
        started.elapsed()
    };
    let mut outcomes = Vec::new();
    for (n, share) in KILL_AT.iter().enumerate() {
        let delay = took.mul_f64(*share);
        let (instance, subaccount) = (format!("inst-{n}"), format!("sub-{n}"));
        let config = config.clone();
        let mut server = ServerProcess::start(options(&data)).await;
        let body = server.provision_body(&subaccount, config.clone()).await;
        let request = server
            .broker(Method::PUT, &format!("/v2/service_instances/{instance}"))
            .json(&body)
            .send();
        let sent = tokio::spawn(request);
        tokio::time::sleep(delay).await;
        server.kill();
        let answered = sent.await.unwrap().map(|r| r.status().as_u16()).ok();
        drop(server);

        let server = ServerProcess::start(options(&data)).await;
        let (bound, body) = server.try_bind(&instance, &format!("key-{n}")).await;
        let outcome = if bound == 201 {
            // All of it: both levels whole, secrets readable.
            let key = body["credentials"].clone();
            let token = server.token(&key).await;
            assert_eq!(
                server
                    .destination_names(&token, "instanceDestinations")
                    .await,
                expected("i", LARGE)
            );
            assert_eq!(
                server
                    .destination_names(&token, "subaccountDestinations")
                    .await,
                expected("s", LARGE)
            );
            let last = format!("i-{:05}", LARGE - 1);
            assert_eq!(
                password(&server, &token, "instanceDestinations", &last).await,
                format!("pw-i-{}", LARGE - 1)
            );
            "all"
        } else {
            // Nothing: the instance is unknown, the subaccount holds no destination, and
            // provisioning again works.
            assert_eq!(bound, 404, "{body}");
            assert_ne!(
                answered,
                Some(201),
                "a 201 was answered but the instance is gone"
            );
            server
                .provision(&format!("probe-{n}"), &subaccount, json!({}))
                .await;
            let key = server
                .bind(&format!("probe-{n}"), &format!("probe-key-{n}"))
                .await;
            let token = server.token(&key).await;
            assert_eq!(
                server
                    .destination_names(&token, "subaccountDestinations")
                    .await,
                Vec::<String>::new()
            );
            server.provision(&instance, &subaccount, config).await;
            "nothing"
        };
        outcomes.push(format!("{} ms: {outcome}", delay.as_millis()));
    }
    eprintln!(
        "SIGKILL during provisioning of 2 x {LARGE} destinations ({} ms uninterrupted): {outcomes:?}",
        took.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_an_array_post_leaves_a_prefix_of_whole_items() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(options(&data)).await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key").await;
    drop(server);
    let mut outcomes = Vec::new();
    for (n, delay) in DELAYS_MS.iter().enumerate() {
        let prefix = format!("a{n}");
        let mut server = ServerProcess::start(options(&data)).await;
        let token = server.token(&key).await;
        let items: Vec<Value> = (0..LARGE).map(|i| destination(&prefix, i)).collect();
        let request = http_client()
            .post(server.url(&format!("{API}/instanceDestinations")))
            .bearer_auth(&token)
            .json(&items)
            .send();
        let sent = tokio::spawn(request);
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        server.kill();
        let answered = sent.await.unwrap().map(|r| r.status().as_u16()).ok();
        drop(server);

        let server = ServerProcess::start(options(&data)).await;
        let token = server.token(&key).await;
        let stored: Vec<String> = server
            .destination_names(&token, "instanceDestinations")
            .await
            .into_iter()
            .filter(|name| name.starts_with(&format!("{prefix}-")))
            .collect();
        let held = stored.len();
        assert_eq!(stored, expected(&prefix, held), "not a prefix");
        if answered == Some(201) {
            assert_eq!(held, LARGE, "a 201 was answered for fewer items");
        }
        if held > 0 {
            let last = format!("{prefix}-{:05}", held - 1);
            assert_eq!(
                password(&server, &token, "instanceDestinations", &last).await,
                format!("pw-{prefix}-{}", held - 1)
            );
        }
        outcomes.push(format!("{delay} ms: {held} of {LARGE}"));
    }
    eprintln!("SIGKILL during an array POST of {LARGE} destinations: {outcomes:?}");
}
