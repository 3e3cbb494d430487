//! Signpost's OpenAPI document (issue 11 §8): served at `/openapi.json`, pinned by a snapshot,
//! and checked both ways against the router: every route the router serves (from the one list it
//! is built from, `signpost_api::route_paths`) is in the document with each method it answers,
//! and every operation of the document is served.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use reqwest::Method;
use secrecy::SecretString;
use serde_json::Value;
use signpost_api::{AppState, BrokerCredentials};
use signpost_test_utils::{TestApp, BROKER_PASSWORD, BROKER_USER};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    res.json().await.unwrap()
}

/// `path` with every `{parameter}` filled in.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "probe" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the router's `template` covers the document's `path`: the same segments, where a
/// router parameter stands for a parameter of the document, and `{collection}` for each of the
/// configuration API's collections that the document lists under SAP's names.
fn covers(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(a, b)| match *a {
            "{collection}" => signpost_api::openapi::COLLECTIONS.contains(b),
            a if a.starts_with('{') => b.starts_with('{'),
            a => a == *b,
        })
}

/// The answer of the app to `method` on `path`, with the broker's credentials and version
/// header (so that the broker's guard lets it reach the method router): the status and
/// whether it is the router's own "no such endpoint" or "method not allowed".
async fn probe(app: &TestApp, method: Method, path: &str) -> (u16, bool) {
    let res = app
        .client
        .request(method, app.url(path))
        .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    let routers_own = (status == 405
        && body.contains("This method is not allowed on this endpoint"))
        || (status == 404 && body.contains("No such endpoint"));
    (status, routers_own)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_pinned() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    // SAP's paths that Signpost serves, under SAP's names, and every extension of its own.
    for path in [
        "/destination-configuration/v1/destinations/{name}",
        "/destination-configuration/v2/destinations/{name}",
        "/destination-configuration/v1/subaccountDestinations",
        "/destination-configuration/v1/instanceDestinationFragments/{name}",
        "/destination-configuration/v1/subaccountCertificates/{name}/publicKeys",
        "/destination-configuration/v1/saml2Metadata/rotateCertificate",
        "/signpost/v1/audit",
        "/signpost/v1/signing-keys/rotate",
        "/oauth/token",
        "/v2/service_instances/{instance_id}/service_bindings/{binding_id}",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
    assert!(!paths
        .keys()
        .any(|p| p.contains("{collection}") || p.contains("Destinations/{name}/publicKeys")));
    assert!(doc["components"]["schemas"]["AuditEntry"].is_object());
    assert!(doc["components"]["securitySchemes"]["broker"].is_object());
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_router_is_in_the_document_and_every_operation_is_served() {
    let app = TestApp::start().await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().unwrap();
    let routes = signpost_api::route_paths(&AppState {
        core: app.core.clone(),
        broker: Arc::new(BrokerCredentials {
            user: BROKER_USER.into(),
            password: SecretString::from(BROKER_PASSWORD.to_owned()),
        }),
        limits: Arc::new(signpost_api::Limits::new(
            signpost_api::LimitsConfig::default(),
        )),
    });
    assert!(routes.len() >= 20, "{routes:?}");

    // Router to document: each method a route answers has an operation at a path it covers.
    let mut missing = Vec::new();
    for route in &routes {
        for method in METHODS {
            let (_, routers_own) = probe(&app, method.clone(), &concrete(route)).await;
            if routers_own {
                continue;
            }
            let name = method.as_str().to_ascii_lowercase();
            let documented = paths
                .iter()
                .any(|(path, item)| covers(route, path) && item.get(&name).is_some());
            if !documented {
                missing.push(format!("{method} {route}"));
            }
        }
    }
    assert!(missing.is_empty(), "served but not documented: {missing:?}");

    // Document to router: every operation reaches a handler.
    let mut unserved = Vec::new();
    for (path, item) in paths {
        for (name, _) in item.as_object().unwrap() {
            let Ok(method) = Method::from_bytes(name.to_ascii_uppercase().as_bytes()) else {
                continue;
            };
            if !METHODS.contains(&method) {
                continue;
            }
            let (status, routers_own) = probe(&app, method.clone(), &concrete(path)).await;
            if routers_own {
                unserved.push(format!("{method} {path} ({status})"));
            }
        }
    }
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );
}
