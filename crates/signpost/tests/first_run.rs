//! The first-run experience of the real binary: a default instance and service key, and one
//! example to paste; `--no-bootstrap` turns it off.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use support::{find, token, ServerOptions, ServerProcess};

#[tokio::test]
async fn first_start_makes_a_default_service_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(ServerOptions::new(&data)).await;
    let key_path = data.join("default-service-key.json");
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = server.stdout();
    assert!(out.contains(&server.url("")), "{out}");
    // The editor's URL, and the editor answers there.
    let editor = format!("{}/", server.url(""));
    assert!(
        out.contains(&format!("Destinations editor at {editor}")),
        "{out}"
    );
    let page = support::http_client().get(&editor).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    assert!(
        out.contains("default-service-key.json") && out.contains("curl"),
        "{out}"
    );
    let key: Value = serde_json::from_str(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    assert!(
        !out.contains(key["clientsecret"].as_str().unwrap()),
        "the secret stays in the file"
    );
    assert_eq!(key["tenantid"], "default");
    assert_eq!(key["instanceid"], "default");
    let client = support::http_client();
    let tok = token(&client, &key).await;
    let (s, _) = find(&client, &server.url(""), &tok, "nothing-yet").await;
    assert_eq!(s, 404);
    // A restart keeps the key and does not bootstrap again.
    let port = server
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    server.stop().await;
    let before = std::fs::read_to_string(&key_path).unwrap();
    let server = ServerProcess::start(ServerOptions::new(&data).port(port)).await;
    assert_eq!(std::fs::read_to_string(&key_path).unwrap(), before);
    assert!(server.stdout().is_empty(), "{}", server.stdout());
    token(&client, &key).await;
}

#[tokio::test]
async fn no_bootstrap_leaves_an_empty_service() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = ServerProcess::start(ServerOptions::new(&data).arg("--no-bootstrap")).await;
    assert!(!data.join("default-service-key.json").exists());
    assert!(server.stdout().is_empty());
}
