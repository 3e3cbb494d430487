//! `DestinationClient` against the real Signpost server (`TestApp`): v1 and v2 finds with
//! fragments, token caching, renewal and single flight, revalidation with ETags, and which side
//! each failure is reported on.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;
use serde_json::{json, Value};
use signpost_api::{AppState, BrokerCredentials};
use signpost_client::{
    ClientOptions, Clock, DestinationClient, Error, FindRequest, FragmentRef, LookupLevel,
    ServiceKey, Side, TenantClient,
};
use signpost_test_utils::{Tenant, TestApp};

async fn setup(app: &TestApp) -> (Tenant, ServiceKey) {
    let params = json!({"init_data": {
        "subaccount": {"destinations": [
            {"Name": "shared", "Type": "HTTP", "URL": "https://sub.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"},
            {"Name": "basic", "Type": "HTTP", "URL": "https://basic.example", "Authentication": "BasicAuthentication", "ProxyType": "Internet", "User": "alice", "Password": "wonderland"}
        ]},
        "instance": {"destinations": [
            {"Name": "shared", "Type": "HTTP", "URL": "https://instance.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"}
        ]}
    }});
    let t = app.tenant("sub-client", "inst-client", params).await;
    for (path, body) in [
        (
            "/v1/subaccountDestinationFragments",
            json!({"FragmentName": "f-sub", "URL": "https://fragment-sub.example"}),
        ),
        (
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "f-inst", "URL": "https://fragment-inst.example"}),
        ),
    ] {
        assert_eq!(t.post(path, body).await.status(), 201);
    }
    let key = ServiceKey::from_json(&t.key).unwrap();
    (t, key)
}

fn client(key: &ServiceKey) -> DestinationClient {
    DestinationClient::new(key.clone(), ClientOptions::default()).unwrap()
}

/// The same Signpost (same core and data) on another listener that counts token requests.
struct Counted {
    base: String,
    tokens: Arc<AtomicUsize>,
    not_modified: Arc<AtomicUsize>,
}

async fn counted(app: &TestApp) -> Counted {
    let tokens = Arc::new(AtomicUsize::new(0));
    let count = tokens.clone();
    let not_modified = Arc::new(AtomicUsize::new(0));
    let count_304 = not_modified.clone();
    let router = signpost_api::router(AppState {
        core: app.core.clone(),
        broker: Arc::new(BrokerCredentials {
            user: signpost_test_utils::BROKER_USER.into(),
            password: SecretString::from(signpost_test_utils::BROKER_PASSWORD.to_owned()),
        }),
        limits: Default::default(),
    })
    .layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let count = count.clone();
            let count_304 = count_304.clone();
            async move {
                if req.uri().path() == "/oauth/token" {
                    count.fetch_add(1, Ordering::SeqCst);
                }
                let res = next.run(req).await;
                if res.status() == 304 {
                    count_304.fetch_add(1, Ordering::SeqCst);
                }
                res
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Counted {
        base,
        tokens,
        not_modified,
    }
}

/// A clock the test moves forward.
#[derive(Debug, Default)]
struct TestClock(AtomicU64);

impl TestClock {
    fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

fn url_of(config: &serde_json::Map<String, Value>) -> &str {
    config["URL"].as_str().unwrap()
}

#[tokio::test]
async fn v1_find_with_a_client_secret_key() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    assert!(!key.is_x509());
    let c = client(&key);
    let found = c.find(&FindRequest::new("shared")).await.unwrap();
    assert_eq!(
        url_of(&found.response.destination_configuration),
        "https://instance.example"
    );
    let owner = found.response.owner.as_ref().unwrap();
    assert_eq!(owner.instance_id.as_deref(), Some("inst-client"));
    assert!(found.etag.is_some());

    let found = c.find(&FindRequest::new("basic")).await.unwrap();
    let tokens = found.response.auth_tokens.unwrap();
    assert_eq!(tokens[0].token_type, "Basic");
    assert_eq!(
        tokens[0].http_header.as_ref().unwrap().value,
        "Basic YWxpY2U6d29uZGVybGFuZA=="
    );
    assert_eq!(
        found.response.owner.unwrap().subaccount_id.as_deref(),
        Some("sub-client")
    );

    // Fragments, in order; a missing optional fragment leaves the destination as it is.
    let merged = c
        .find(&FindRequest {
            fragments: vec![FragmentRef::new("f-sub")],
            ..FindRequest::new("basic")
        })
        .await
        .unwrap();
    let config = &merged.response.destination_configuration;
    assert_eq!(url_of(config), "https://fragment-sub.example");
    assert_eq!(config["FragmentName"], "f-sub");
    assert_ne!(merged.etag, found.etag);
    let optional = c
        .find(&FindRequest {
            fragments: vec![FragmentRef::new("absent")],
            fragment_optional: Some(true),
            ..FindRequest::new("basic")
        })
        .await
        .unwrap();
    assert_eq!(
        url_of(&optional.response.destination_configuration),
        "https://basic.example"
    );

    // Query parameters reach the server.
    let skipped = c
        .find(&FindRequest {
            skip_credentials: true,
            skip_token_retrieval: true,
            ..FindRequest::new("basic")
        })
        .await
        .unwrap();
    assert!(skipped.response.auth_tokens.is_none());
    assert!(!skipped
        .response
        .destination_configuration
        .contains_key("Password"));
}

#[tokio::test]
async fn v2_find_names_the_level_and_fragment_levels() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    let c = client(&key);
    let at = |level| FindRequest {
        level: Some(level),
        ..FindRequest::new("shared")
    };
    let sub = c.find(&at(LookupLevel::Subaccount)).await.unwrap();
    assert_eq!(
        url_of(&sub.response.destination_configuration),
        "https://sub.example"
    );
    assert!(sub.response.owner.is_none(), "v2 has no top-level owner");
    let inst = c.find(&at(LookupLevel::Instance)).await.unwrap();
    assert_eq!(
        url_of(&inst.response.destination_configuration),
        "https://instance.example"
    );
    // No fallback on v2.
    let e = c
        .find(&FindRequest {
            level: Some(LookupLevel::Instance),
            ..FindRequest::new("basic")
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    // A fragment on another level than the destination, named with its level.
    let merged = c
        .find(&FindRequest {
            fragments: vec!["f-inst@instance".parse().unwrap()],
            ..at(LookupLevel::Subaccount)
        })
        .await
        .unwrap();
    assert_eq!(
        url_of(&merged.response.destination_configuration),
        "https://fragment-inst.example"
    );
    let e = c
        .find(&FindRequest {
            fragments: vec![FragmentRef {
                name: "f-inst".into(),
                level: Some(LookupLevel::Subaccount),
            }],
            ..at(LookupLevel::Subaccount)
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

/// A fragment's level without the destination's: v1 cannot carry it, so the client looks the
/// destination up as v1 does (instance level, then subaccount level) with v2 lookups.
#[tokio::test]
async fn a_fragment_level_alone_keeps_v1_order_for_the_destination() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    let c = client(&key);
    let with_fragment = |name: &str, fragment: &str| FindRequest {
        fragments: vec![fragment.parse().unwrap()],
        ..FindRequest::new(name)
    };
    assert!(with_fragment("basic", "f-inst@instance")
        .levels_in_order()
        .is_some());
    assert!(with_fragment("basic", "f-inst").levels_in_order().is_none());
    // `shared` exists on both levels: the instance's is found first, as v1 finds it.
    let found = c
        .find(&with_fragment("shared", "f-sub@subaccount"))
        .await
        .unwrap();
    let config = &found.response.destination_configuration;
    assert_eq!(url_of(config), "https://fragment-sub.example");
    // `basic` exists on subaccount level only: found there, with the instance's fragment.
    let found = c
        .find(&with_fragment("basic", "f-inst@instance"))
        .await
        .unwrap();
    let config = &found.response.destination_configuration;
    assert_eq!(url_of(config), "https://fragment-inst.example");
    assert_eq!(config["User"], "alice");
    // A fragment missing on the level named is a 404, whichever level has the destination.
    for name in ["shared", "basic"] {
        let e = c
            .find(&with_fragment(name, "f-inst@subaccount"))
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(404), "{name}: {e}");
    }
    // So is a destination on neither level.
    let e = c
        .find(&with_fragment("nowhere", "f-sub@subaccount"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn one_token_for_many_finds_and_renewal_near_expiry() {
    let app = TestApp::start().await;
    let (_, mut key) = setup(&app).await;
    let server = counted(&app).await;
    key.url = server.base.clone();
    key.uri = server.base.clone();
    let clock = Arc::new(TestClock::default());
    let c = DestinationClient::with_clock(key, ClientOptions::default(), clock.clone()).unwrap();
    c.find(&FindRequest::new("shared")).await.unwrap();
    c.find(&FindRequest::new("basic")).await.unwrap();
    c.clone().find(&FindRequest::new("shared")).await.unwrap();
    assert_eq!(server.tokens.load(Ordering::SeqCst), 1);
    assert_eq!(c.token_fetches(), 1);
    let first = c.token().await.unwrap();

    // Signpost's tokens live 3600 s; 3500 s later (more than 60 s left) the token is kept...
    clock.advance(3500);
    assert_eq!(c.token().await.unwrap(), first);
    assert_eq!(server.tokens.load(Ordering::SeqCst), 1);
    // ... and within the last 60 s it is renewed, once.
    clock.advance(50);
    c.find(&FindRequest::new("shared")).await.unwrap();
    let second = c.token().await.unwrap();
    assert_eq!(server.tokens.load(Ordering::SeqCst), 2);
    assert_ne!(second, first);
    c.find(&FindRequest::new("basic")).await.unwrap();
    assert_eq!(server.tokens.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_token_fetch() {
    let app = TestApp::start().await;
    let (_, mut key) = setup(&app).await;
    let server = counted(&app).await;
    key.url = server.base.clone();
    key.uri = server.base.clone();
    let c = client(&key);
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let c = c.clone();
            tokio::spawn(async move {
                let name = if i % 2 == 0 { "shared" } else { "basic" };
                c.find(&FindRequest::new(name)).await.map(drop)
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(server.tokens.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revalidate_keeps_the_cached_answer_on_304() {
    let app = TestApp::start().await;
    let (t, mut key) = setup(&app).await;
    let server = counted(&app).await;
    key.url = server.base.clone();
    key.uri = server.base.clone();
    let c = client(&key);
    let request = FindRequest::new("basic");
    let cached = c.find(&request).await.unwrap();
    let etag = cached.etag.clone().unwrap();
    let again = c.revalidate(&request, &cached).await.unwrap();
    assert_eq!(again.response, cached.response);
    assert_eq!(again.etag.as_deref(), Some(etag.as_str()));
    assert!(again.fetched_at >= cached.fetched_at);
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 1);

    // After a change the server answers 200 with the new destination.
    let res = t
        .put(
            "/v1/subaccountDestinations",
            json!({"Name": "basic", "Type": "HTTP", "URL": "https://changed.example", "Authentication": "BasicAuthentication", "ProxyType": "Internet", "User": "alice", "Password": "wonderland"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let changed = c.revalidate(&request, &cached).await.unwrap();
    assert_eq!(
        url_of(&changed.response.destination_configuration),
        "https://changed.example"
    );
    assert_ne!(changed.etag.as_deref(), Some(etag.as_str()));
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 1);
    // Without an ETag it is a plain find.
    let no_etag = signpost_client::Found {
        etag: None,
        ..changed.clone()
    };
    let plain = c.revalidate(&request, &no_etag).await.unwrap();
    assert_eq!(plain.etag, changed.etag);
    assert_eq!(server.not_modified.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_token_service_401() {
    let app = TestApp::start().await;
    let (_, mut key) = setup(&app).await;
    key.clientsecret = Some("not-the-secret-0815".into());
    let e = client(&key)
        .find(&FindRequest::new("shared"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::TokenService { status: 401, .. }),
        "{e:?}"
    );
    assert_eq!(e.side(), Some(Side::TokenService));
    assert_eq!(e.status(), Some(401));
    assert!(!e.is_timeout());
    let text = format!("{e} {e:?}");
    assert!(!text.contains("not-the-secret-0815"), "{text}");
    // TenantClient::login goes the same way.
    let e = TenantClient::login(&key).await.unwrap_err();
    assert!(
        matches!(e, Error::TokenService { status: 401, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_unknown_destination_is_an_api_404() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    let e = client(&key)
        .find(&FindRequest::new("nope"))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        Error::Api {
            status: 404,
            message: "Configuration with the specified name was not found".into()
        }
    );
    assert_eq!(e.side(), Some(Side::DestinationService));
}

#[tokio::test]
async fn a_closed_port_is_an_unreachable_token_service() {
    let app = TestApp::start().await;
    let (_, mut key) = setup(&app).await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    key.url = format!("http://127.0.0.1:{port}");
    let e = client(&key)
        .find(&FindRequest::new("shared"))
        .await
        .unwrap_err();
    match &e {
        Error::Unreachable {
            side, url, timeout, ..
        } => {
            assert_eq!(*side, Side::TokenService);
            assert_eq!(url, &format!("http://127.0.0.1:{port}"));
            assert!(!timeout);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("token service"), "{e}");
    assert!(!e.to_string().contains(key.clientsecret.as_deref().unwrap()));
}

#[tokio::test]
async fn silent_services_time_out_on_their_side() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    // Accepts connections (the kernel completes the handshake) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let options = ClientOptions {
        read_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };

    let mut token_side = key.clone();
    token_side.url = silent_url.clone();
    let started = std::time::Instant::now();
    let e = DestinationClient::new(token_side, options.clone())
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.side(), Some(Side::TokenService));
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut dest_side = key.clone();
    dest_side.uri = silent_url;
    let c = DestinationClient::new(dest_side, options).unwrap();
    c.token().await.unwrap();
    let e = c.find(&FindRequest::new("shared")).await.unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert_eq!(e.side(), Some(Side::DestinationService));
    drop(silent);
}

#[tokio::test]
async fn tenant_client_finds_the_typed_way() {
    let app = TestApp::start().await;
    let (_, key) = setup(&app).await;
    let tenant = TenantClient::login(&key).await.unwrap();
    let found = tenant
        .find(&FindRequest {
            fragments: vec![FragmentRef::new("f-sub")],
            ..FindRequest::new("basic")
        })
        .await
        .unwrap();
    assert_eq!(
        url_of(&found.response.destination_configuration),
        "https://fragment-sub.example"
    );
    let listed = tenant
        .list(
            signpost_client::Level::Subaccount,
            signpost_client::Kind::Destination,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
}
