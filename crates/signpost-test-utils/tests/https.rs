//! `TestOptions::https`: the HTTPS listener of `TestApp` serves the router with a certificate of
//! its own test CA, is the app's `certurl`, and survives a restart on the same address and CA.
#![allow(clippy::unwrap_used)]

use signpost_test_utils::{TestApp, TestOptions};

fn trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn healthz(client: &reqwest::Client, base: &str) -> u16 {
    client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn https_serves_the_router_and_survives_a_restart() {
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..Default::default()
    })
    .await;
    let base = app.https_base().unwrap().to_owned();
    let ca = app.https_ca_pem().unwrap().to_owned();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    assert_eq!(app.core.config().cert_url.as_deref(), Some(base.as_str()));

    let client = trusting(&ca);
    assert_eq!(healthz(&client, &base).await, 200);
    // The certificate names localhost too.
    let local = base.replace("127.0.0.1", "localhost");
    assert_eq!(healthz(&client, &local).await, 200);
    // Without the CA the handshake fails.
    assert!(reqwest::get(format!("{base}/healthz")).await.is_err());
    // The plain HTTP listener is still there.
    assert_eq!(healthz(&app.client, &app.base).await, 200);

    let http = app.base.clone();
    let app = app.restart().await;
    assert_eq!(app.base, http);
    assert_eq!(app.https_base(), Some(base.as_str()));
    assert_eq!(app.https_ca_pem(), Some(ca.as_str()));
    // A kept-alive connection and a new one both reach the restarted app.
    assert_eq!(healthz(&client, &base).await, 200);
    assert_eq!(healthz(&trusting(&ca), &base).await, 200);
}

#[tokio::test]
async fn without_https_there_is_no_listener_nor_certurl() {
    let app = TestApp::start().await;
    assert!(app.https_base().is_none());
    assert!(app.https_ca_pem().is_none());
    assert!(app.core.config().cert_url.is_none());
}
