//! `DestinationClient` with X.509 service keys: the broker makes the binding with
//! `{"xsuaa": {"credential-type": "x509"}}`, the client presents the key's certificate over mTLS to
//! Signpost's HTTPS listener (`certurl`, `TestOptions::https`) and trusts that listener's CA
//! through `ClientOptions::extra_roots_pem`.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use signpost_client::{ClientOptions, DestinationClient, Error, FindRequest, ServiceKey, Side};
use signpost_core::{CATALOG_PLAN_ID, CATALOG_SERVICE_ID};
use signpost_test_utils::pki::self_signed;
use signpost_test_utils::{TestApp, TestOptions};

/// Signpost with its HTTPS listener, and an instance with the destination `d`.
async fn start(instance: &str) -> TestApp {
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..Default::default()
    })
    .await;
    let dest = json!({"Name": "d", "Type": "HTTP", "URL": "https://x509.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"});
    let res = app
        .provision(
            instance,
            "sub-x509",
            json!({"init_data": {"instance": {"destinations": [dest]}}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    app
}

/// The credentials of a binding made with `parameters`.
async fn bind(app: &TestApp, instance: &str, binding: &str, parameters: Value) -> Value {
    let res = app
        .broker(
            reqwest::Method::PUT,
            &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
        )
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID, "parameters": parameters}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body["credentials"].clone()
}

/// Client options that trust the HTTPS listener's CA.
fn options(app: &TestApp) -> ClientOptions {
    ClientOptions {
        extra_roots_pem: Some(app.https_ca_pem().unwrap().to_owned()),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn a_generated_x509_key_gets_its_token_over_mtls() {
    let server = start("i-x509").await;
    let credentials = bind(
        &server,
        "i-x509",
        "k",
        json!({"xsuaa": {"credential-type": "x509"}}),
    )
    .await;
    let key = ServiceKey::from_json(&credentials).unwrap();
    assert!(key.is_x509());
    assert!(key.clientsecret.is_none());
    assert_eq!(key.certurl.as_deref(), server.https_base());
    let private = key.key.clone().unwrap();
    let debug = format!("{key:?}");
    assert!(
        !debug.contains(&private) && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );

    let client = DestinationClient::new(key.clone(), options(&server)).unwrap();
    assert!(!format!("{client:?}").contains("PRIVATE KEY"));
    let found = client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(
        found.response.destination_configuration["URL"],
        "https://x509.example"
    );
    client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(client.token_fetches(), 1);

    // Without the listener's CA the TLS handshake fails: the token service is unreachable.
    let e = DestinationClient::new(key.clone(), ClientOptions::default())
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Unreachable {
                side: Side::TokenService,
                timeout: false,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!e.to_string().contains(&private));

    // The secret form with the client id alone is refused (an X.509 binding has no secret).
    let as_secret = ServiceKey {
        credential_type: Some("binding-secret".into()),
        clientsecret: Some("guess".into()),
        ..key
    };
    let e = DestinationClient::new(as_secret, options(&server))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e:?}");
    assert_eq!(e.side(), Some(Side::TokenService));
}

#[tokio::test]
async fn a_self_provided_certificate_needs_its_private_key() {
    let server = start("i-own").await;
    let own = self_signed("my-app", 30);
    let credentials = bind(
        &server,
        "i-own",
        "k-own",
        json!({"xsuaa": {"credential-type": "x509", "x509": {"certificate": own.cert}}}),
    )
    .await;
    let key = ServiceKey::from_json(&credentials).unwrap();
    assert!(key.is_x509());
    assert!(key.key.is_none());
    let e = DestinationClient::new(key.clone(), options(&server)).unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("with_private_key")),
        "{e:?}"
    );

    let client =
        DestinationClient::new(key.clone().with_private_key(own.key), options(&server)).unwrap();
    let found = client.find(&FindRequest::new("d")).await.unwrap();
    assert_eq!(
        found.response.destination_configuration["URL"],
        "https://x509.example"
    );

    // Another certificate than the binding's: the token service says no.
    let stranger = self_signed("stranger", 30);
    let wrong = ServiceKey {
        certificate: Some(stranger.cert),
        ..key
    }
    .with_private_key(stranger.key);
    let e = DestinationClient::new(wrong, options(&server))
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::TokenService { status: 401, .. }),
        "{e:?}"
    );
}
