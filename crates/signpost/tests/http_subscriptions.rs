//! SaaS multitenancy over HTTP: subscriptions (`/signpost/v1/subscriptions`, broker
//! credentials) with their bad inputs, tenant tokens of a provider's binding (`x-zid` and the
//! token URL's subdomain), what a subscriber's token finds (its own levels first, the
//! provider's through the v2 `provider_*` levels), what it may configure, and that an ended
//! subscription takes the subscriber's tokens with it.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, Tenant, TestApp};

const PROVIDER: &str = "provider-sa";
const INSTANCE: &str = "saas-app";

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

async fn subscribe(app: &TestApp, subaccount: &str, body: Value) -> (u16, Value) {
    status_json(
        app.broker(
            Method::PUT,
            &format!("/signpost/v1/subscriptions/{INSTANCE}/{subaccount}"),
        )
        .json(&body)
        .send()
        .await
        .unwrap(),
    )
    .await
}

/// `GET /signpost/v1/subscriptions/{INSTANCE}`: status and body.
async fn subscriptions_of(app: &TestApp) -> (u16, Value) {
    status_json(
        app.broker(
            Method::GET,
            &format!("/signpost/v1/subscriptions/{INSTANCE}"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await
}

/// `POST /oauth/token` with the provider's key, optionally for a tenant (`x-zid`) or at a
/// tenant's host.
async fn tenant_token(
    app: &TestApp,
    key: &Value,
    zid: Option<&str>,
    host: Option<&str>,
) -> (u16, Value) {
    let mut req = app.client.post(app.url("/oauth/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", key["clientid"].as_str().unwrap()),
        ("client_secret", key["clientsecret"].as_str().unwrap()),
    ]);
    if let Some(z) = zid {
        req = req.header("x-zid", z);
    }
    if let Some(h) = host {
        req = req.header("host", h);
    }
    status_json(req.send().await.unwrap()).await
}

fn as_tenant(provider: &Tenant, token: &str) -> Tenant {
    Tenant {
        token: token.to_owned(),
        ..provider.clone()
    }
}

fn dest(name: &str, url: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": url, "Authentication": "NoAuthentication", "ProxyType": "Internet"})
}

#[tokio::test]
async fn subscriptions_are_managed_with_the_broker_credentials() {
    let app = TestApp::start().await;
    app.tenant(PROVIDER, INSTANCE, json!({})).await;

    let (s, v) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["instanceId"], INSTANCE);
    assert_eq!(v["subaccountId"], "customer-a");
    assert_eq!(v["subdomain"], "customer-a");
    assert!(v["createdAt"].as_str().unwrap().ends_with('Z'), "{v}");
    // Again: 200, and the subdomain can change.
    let (s, v) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a2"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["subdomain"], "customer-a2");
    let (s, _) = subscribe(&app, "customer-b", json!({"subdomain": "customer-b"})).await;
    assert_eq!(s, 201);
    let (s, list) = subscriptions_of(&app).await;
    assert_eq!(s, 200);
    let names: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subaccountId"].as_str().unwrap(),
                s["subdomain"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [("customer-a", "customer-a2"), ("customer-b", "customer-b")]
    );

    // Bad inputs: a JSON error each, nothing changed.
    for (sub, body, status, says) in [
        ("customer-c", json!({}), 400, "subdomain is required"),
        (
            "customer-c",
            json!({"subdomain": "Not A Label"}),
            400,
            "subdomain",
        ),
        (
            "customer-c",
            json!({"subdomain": "c", "colour": 1}),
            400,
            "colour",
        ),
        ("bad/id", json!({"subdomain": "c"}), 404, ""),
        ("bad id", json!({"subdomain": "c"}), 400, "subaccount id"),
        (PROVIDER, json!({"subdomain": "p"}), 409, "provider"),
        (
            "customer-c",
            json!({"subdomain": "customer-b"}),
            409,
            "customer-b",
        ),
    ] {
        let (s, v) = subscribe(&app, sub, body.clone()).await;
        assert_eq!(s, status, "{sub} {body}: {v}");
        if !says.is_empty() {
            assert!(
                v["ErrorMessage"].as_str().unwrap().contains(says),
                "{sub} {body}: {v}"
            );
        }
    }
    let res = app
        .client
        .put(app.url(&format!("/signpost/v1/subscriptions/{INSTANCE}/customer-c")))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "without the broker credentials");
    let res = app
        .broker(
            Method::PUT,
            &format!("/signpost/v1/subscriptions/{INSTANCE}/customer-c"),
        )
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (s, _) = status_json(
        app.broker(
            Method::PUT,
            "/signpost/v1/subscriptions/no-such-instance/customer-c",
        )
        .json(&json!({"subdomain": "c"}))
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = status_json(
        app.broker(Method::GET, "/signpost/v1/subscriptions/no-such-instance")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    let (s, after) = subscriptions_of(&app).await;
    assert_eq!((s, &after), (200, &list), "nothing changed");

    // Delete: 200 with what it was; again 404.
    let path = format!("/signpost/v1/subscriptions/{INSTANCE}/customer-b");
    let (s, v) = status_json(app.broker(Method::DELETE, &path).send().await.unwrap()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["subdomain"], "customer-b");
    let (s, v) = status_json(app.broker(Method::DELETE, &path).send().await.unwrap()).await;
    assert_eq!(s, 404, "{v}");
    assert!(v["ErrorMessage"]
        .as_str()
        .unwrap()
        .contains("not subscribed"));

    // Audited with the broker as actor.
    let (_, audit) = status_json(
        app.broker(Method::GET, "/signpost/v1/audit?limit=50")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entityKind"] == "subscription")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"subscribe") && actions.contains(&"unsubscribe"),
        "{audit}"
    );
}

#[tokio::test]
async fn tenant_tokens_and_what_a_subscriber_sees() {
    let app = TestApp::start().await;
    let provider = app.tenant(PROVIDER, INSTANCE, json!({})).await;
    assert_eq!(
        provider
            .post(
                "/v1/instanceDestinations",
                dest("shared", "https://provider-instance.example")
            )
            .await
            .status(),
        201
    );
    assert_eq!(
        provider
            .post(
                "/v1/subaccountDestinations",
                dest("prov-sub", "https://provider-subaccount.example")
            )
            .await
            .status(),
        201
    );
    let key = provider.key.clone();

    // A tenant that did not subscribe gets no token, by x-zid or by host.
    let uaadomain = key["uaadomain"].as_str().unwrap().to_owned();
    let (s, v) = tenant_token(&app, &key, Some("customer-a"), None).await;
    assert_eq!(s, 401, "{v}");
    let (s, _) = tenant_token(&app, &key, None, Some(&format!("customer-a.{uaadomain}"))).await;
    assert_eq!(s, 401);

    let (s, _) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201);
    let (s, _) = subscribe(&app, "customer-b", json!({"subdomain": "customer-b"})).await;
    assert_eq!(s, 201);

    // x-zid and the token URL's subdomain give the same tenant's token.
    let (s, by_zid) = tenant_token(&app, &key, Some("customer-a"), None).await;
    assert_eq!(s, 200, "{by_zid}");
    let (s, by_host) =
        tenant_token(&app, &key, None, Some(&format!("customer-a.{uaadomain}"))).await;
    assert_eq!(s, 200, "{by_host}");
    for answer in [&by_zid, &by_host] {
        let c = claims(answer["access_token"].as_str().unwrap());
        assert_eq!(c["zid"], "customer-a", "{c}");
        assert_eq!(c["ext_attr"]["zdn"], "customer-a", "{c}");
        assert_eq!(c["ext_attr"]["serviceinstanceid"], INSTANCE, "{c}");
    }
    // The provider's own tenant by its subdomain; a host naming another tenant than x-zid,
    // or an unknown subdomain, is refused.
    let (s, own) = tenant_token(
        &app,
        &key,
        None,
        Some(&format!("{PROVIDER}-sub.{uaadomain}")),
    )
    .await;
    assert_eq!(s, 200, "{own}");
    assert_eq!(
        claims(own["access_token"].as_str().unwrap())["zid"],
        PROVIDER
    );
    let (s, _) = tenant_token(
        &app,
        &key,
        Some("customer-b"),
        Some(&format!("customer-a.{uaadomain}")),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = tenant_token(&app, &key, None, Some(&format!("nobody.{uaadomain}"))).await;
    assert_eq!(s, 401);

    let a = as_tenant(&provider, by_zid["access_token"].as_str().unwrap());
    let (_, b_answer) = tenant_token(&app, &key, Some("customer-b"), None).await;
    let b = as_tenant(&provider, b_answer["access_token"].as_str().unwrap());

    // A subscriber's token finds its own levels only: not the provider's destinations.
    assert_eq!(a.get("/v1/destinations/shared").await.status(), 404);
    assert_eq!(a.get("/v1/destinations/prov-sub").await.status(), 404);
    // Its own subaccount level it may configure; the provider and other subscribers do not see it.
    assert_eq!(
        a.post(
            "/v1/subaccountDestinations",
            dest("mine", "https://customer-a.example")
        )
        .await
        .status(),
        201
    );
    let (s, v) = status_json(a.get("/v1/destinations/mine").await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["owner"]["SubaccountId"], "customer-a");
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://customer-a.example"
    );
    assert_eq!(provider.get("/v1/destinations/mine").await.status(), 404);
    assert_eq!(b.get("/v1/destinations/mine").await.status(), 404);
    assert_eq!(b.get("/v1/subaccountDestinations/mine").await.status(), 404);
    let (_, listed) = status_json(provider.get("/v1/subaccountDestinations").await).await;
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["Name"] != "mine"),
        "{listed}"
    );
    // The v2 provider levels reach the provider's destinations for a subscriber's token...
    let (s, v) = status_json(a.get("/v2/destinations/shared@provider_instance").await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://provider-instance.example"
    );
    let (s, v) = status_json(a.get("/v2/destinations/prov-sub@provider_subaccount").await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://provider-subaccount.example"
    );
    let (s, _) = status_json(a.get("/v2/destinations/mine@subaccount").await).await;
    assert_eq!(s, 200);
    // ... and are refused for the provider's own token.
    let (s, _) = status_json(
        provider
            .get("/v2/destinations/shared@provider_instance")
            .await,
    )
    .await;
    assert_eq!(s, 400);
    // The subscription level through the configuration API needs subscriber_access scopes:
    // none are granted, a 403 that says why; nothing is written.
    for (method, path) in [
        (Method::GET, "/v1/instanceDestinations"),
        (Method::GET, "/v1/instanceDestinations/shared"),
        (Method::GET, "/v1/instanceCertificates"),
        (Method::DELETE, "/v1/instanceDestinations/shared"),
    ] {
        let (s, v) = status_json(a.req(method.clone(), path).send().await.unwrap()).await;
        assert_eq!(s, 403, "{method} {path}: {v}");
        assert!(
            v["ErrorMessage"]
                .as_str()
                .unwrap()
                .contains("subscriber_access"),
            "{v}"
        );
    }
    let (s, _) = status_json(
        a.post(
            "/v1/instanceDestinations",
            dest("sneaky", "https://x.example"),
        )
        .await,
    )
    .await;
    assert_eq!(s, 403);
    let (_, inst) = status_json(provider.get("/v1/instanceDestinations").await).await;
    assert_eq!(inst.as_array().unwrap().len(), 1, "{inst}");

    // X-tenant of a Common token flow: a subscriber's token reaches its own tenant only.
    let common = json!({"Name": "common-flow", "Type": "HTTP", "URL": "https://x.example",
        "ProxyType": "Internet", "Authentication": "OAuth2ClientCredentials", "clientId": "c",
        "clientSecret": "s", "tokenServiceURLType": "Common",
        "tokenServiceURL": format!("http://127.0.0.1:{}/{{tenant}}/token", signpost_test_utils::free_port())});
    assert_eq!(
        a.post("/v1/subaccountDestinations", common).await.status(),
        201
    );
    let flow_error = |v: &Value| {
        v["authTokens"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    for (tenant, refused) in [
        ("customer-b", true),
        ("provider-sa-sub", true),
        ("customer-a", false),
    ] {
        let res = a
            .req(Method::GET, "/v1/destinations/common-flow")
            .header("X-tenant", tenant)
            .send()
            .await
            .unwrap();
        let (s, v) = status_json(res).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            flow_error(&v).contains("neither the caller's tenant nor subscribed"),
            refused,
            "{tenant}: {v}"
        );
    }

    // Ending the subscription ends the subscriber's tokens at once.
    let (s, _) = status_json(
        app.broker(
            Method::DELETE,
            &format!("/signpost/v1/subscriptions/{INSTANCE}/customer-a"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(a.get("/v1/destinations/mine").await.status(), 401);
    let (s, _) = tenant_token(&app, &key, Some("customer-a"), None).await;
    assert_eq!(s, 401);
    // The subscriber's own subaccount level is the subaccount's, not the subscription's: kept.
    let (s, _) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201);
    let (_, again) = tenant_token(&app, &key, Some("customer-a"), None).await;
    let a = as_tenant(&provider, again["access_token"].as_str().unwrap());
    assert_eq!(a.get("/v1/destinations/mine").await.status(), 200);
    // The other subscriber and the provider were never affected.
    assert_eq!(
        b.get("/v2/destinations/shared@provider_instance")
            .await
            .status(),
        200
    );
    assert_eq!(provider.get("/v1/destinations/shared").await.status(), 200);
}

/// Binds `binding` to `instance` with bind parameters; the service key.
async fn bind_with(
    app: &TestApp,
    instance: &str,
    binding: &str,
    parameters: Value,
) -> (u16, Value) {
    status_json(
        app.broker(
            Method::PUT,
            &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
        )
        .json(&json!({
            "service_id": signpost_core::CATALOG_SERVICE_ID,
            "plan_id": signpost_core::CATALOG_PLAN_ID,
            "parameters": parameters,
        }))
        .send()
        .await
        .unwrap(),
    )
    .await
}

#[tokio::test]
async fn subscriber_access_opens_the_subscription_level_to_the_scopes_it_names() {
    let app = TestApp::start().await;
    let access = json!({"subscriber_access": {
        "destination": {"read_scopes": ["app.dest.read"], "write_scopes": ["app.dest.write", "app.dest.read"]},
    }});
    let provider = app.tenant(PROVIDER, INSTANCE, access).await;
    for (sub, dom) in [("customer-a", "customer-a"), ("customer-b", "customer-b")] {
        let (s, _) = subscribe(&app, sub, json!({"subdomain": dom})).await;
        assert_eq!(s, 201);
    }
    // Keys whose tokens carry scopes (bind parameter `scopes`); bad ones are refused.
    let (s, full) = bind_with(
        &app,
        INSTANCE,
        "full-key",
        json!({"scopes": ["app.dest.read", "app.dest.write"]}),
    )
    .await;
    assert_eq!(s, 201, "{full}");
    let full = full["credentials"].clone();
    let (_, reader) = bind_with(
        &app,
        INSTANCE,
        "read-key",
        json!({"scopes": ["app.dest.read"]}),
    )
    .await;
    let reader = reader["credentials"].clone();
    for bad in [
        json!({"scopes": "x"}),
        json!({"scopes": ["with space"]}),
        json!({"scopes": [1]}),
    ] {
        let (s, v) = bind_with(&app, INSTANCE, "bad-key", bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }

    let (s, answer) = tenant_token(&app, &full, Some("customer-a"), None).await;
    assert_eq!(s, 200, "{answer}");
    assert!(
        answer["scope"].as_str().unwrap().contains("app.dest.write"),
        "{answer}"
    );
    let a_full = as_tenant(&provider, answer["access_token"].as_str().unwrap());
    let (_, answer) = tenant_token(&app, &reader, Some("customer-a"), None).await;
    let a_read = as_tenant(&provider, answer["access_token"].as_str().unwrap());
    let (_, answer) = tenant_token(&app, &full, Some("customer-b"), None).await;
    let b_full = as_tenant(&provider, answer["access_token"].as_str().unwrap());

    // Write with the write scopes: the subscription level of customer-a.
    let (s, v) = status_json(
        a_full
            .post(
                "/v1/instanceDestinations",
                dest("sub-level", "https://a.subscription.example"),
            )
            .await,
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = status_json(a_read.get("/v1/destinations/sub-level").await).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["owner"]["SubaccountId"], "customer-a");
    assert_eq!(v["owner"]["InstanceId"], INSTANCE);
    let (s, list) = status_json(a_read.get("/v1/instanceDestinations").await).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    // Read scopes only: changing is a 403 naming the missing scope; nothing changed.
    let (s, v) = status_json(a_read.delete("/v1/instanceDestinations/sub-level").await).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("app.dest.write"),
        "{v}"
    );
    assert_eq!(
        a_read
            .get("/v1/instanceDestinations/sub-level")
            .await
            .status(),
        200
    );
    // Certificates are a section of their own, not granted here.
    let (s, v) = status_json(a_full.get("/v1/instanceCertificates").await).await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("subscriber_access.certificate"),
        "{v}"
    );
    // Another subscriber and the provider do not see it.
    assert_eq!(b_full.get("/v1/destinations/sub-level").await.status(), 404);
    let (_, b_list) = status_json(b_full.get("/v1/instanceDestinations").await).await;
    assert_eq!(b_list, json!([]));
    assert_eq!(
        provider.get("/v1/destinations/sub-level").await.status(),
        404
    );
    assert_eq!(
        provider
            .get("/v1/instanceDestinations/sub-level")
            .await
            .status(),
        404
    );

    // An update clears the write scopes (an empty array); reading stays open.
    let res = app
        .broker(Method::PATCH, &format!("/v2/service_instances/{INSTANCE}"))
        .json(&json!({
            "service_id": signpost_core::CATALOG_SERVICE_ID,
            "parameters": {"subscriber_access": {"destination": {"write_scopes": []}}},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (s, v) = status_json(
        a_full
            .post(
                "/v1/instanceDestinations",
                dest("another", "https://x.example"),
            )
            .await,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["ErrorMessage"].as_str().unwrap().contains("grants none"),
        "{v}"
    );
    assert_eq!(
        a_full
            .get("/v1/instanceDestinations/sub-level")
            .await
            .status(),
        200
    );

    // Ending the subscription deletes its subscription level: a new one starts empty.
    let (s, _) = status_json(
        app.broker(
            Method::DELETE,
            &format!("/signpost/v1/subscriptions/{INSTANCE}/customer-a"),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201);
    let (_, answer) = tenant_token(&app, &reader, Some("customer-a"), None).await;
    let a_read = as_tenant(&provider, answer["access_token"].as_str().unwrap());
    let (s, list) = status_json(a_read.get("/v1/instanceDestinations").await).await;
    assert_eq!((s, list), (200, json!([])));
    assert_eq!(a_read.get("/v1/destinations/sub-level").await.status(), 404);
}

#[tokio::test]
async fn the_jwt_bearer_grant_gives_a_token_of_the_users_tenant() {
    use signpost_test_utils::oauth_peer::OAuthPeer;
    let peer = OAuthPeer::start().await;
    let app = TestApp::start_with(signpost_test_utils::TestOptions {
        trusted_issuers: vec![signpost_core::TrustedIssuer {
            issuer: peer.issuer().trim_end_matches('/').to_owned(),
            jwks_uri: peer.jwks_url(),
        }],
        ..signpost_test_utils::TestOptions::default()
    })
    .await;
    let provider = app.tenant(PROVIDER, INSTANCE, json!({})).await;
    let (s, _) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201);
    let key = provider.key.clone();
    let grant = |assertion: Option<String>, zid: Option<&'static str>| {
        let mut form = vec![
            (
                "grant_type".to_owned(),
                signpost_core::JWT_BEARER.to_owned(),
            ),
            (
                "client_id".to_owned(),
                key["clientid"].as_str().unwrap().to_owned(),
            ),
            (
                "client_secret".to_owned(),
                key["clientsecret"].as_str().unwrap().to_owned(),
            ),
        ];
        if let Some(a) = assertion {
            form.push(("assertion".to_owned(), a));
        }
        let mut req = app.client.post(app.url("/oauth/token")).form(&form);
        if let Some(z) = zid {
            req = req.header("x-zid", z);
        }
        async move { status_json(req.send().await.unwrap()).await }
    };

    let alice = peer
        .user_token(json!({"sub": "alice", "user_name": "alice", "email": "alice@customer-a.example", "zid": "customer-a"}))
        .await;
    let (s, answer) = grant(Some(alice.clone()), None).await;
    assert_eq!(s, 200, "{answer}");
    let c = claims(answer["access_token"].as_str().unwrap());
    assert_eq!(c["zid"], "customer-a", "{c}");
    assert_eq!(c["ext_attr"]["zdn"], "customer-a", "{c}");
    assert_eq!(c["user_id"], "alice", "{c}");
    assert_eq!(c["user_name"], "alice", "{c}");
    assert_eq!(c["email"], "alice@customer-a.example", "{c}");
    assert_eq!(c["sub"], "alice", "{c}");
    assert_eq!(c["grant_type"], signpost_core::JWT_BEARER, "{c}");
    // It is a subscriber's token like any other.
    let user = as_tenant(&provider, answer["access_token"].as_str().unwrap());
    let (s, v) = status_json(user.get("/v1/subaccountDestinations").await).await;
    assert_eq!((s, v), (200, json!([])));
    // The same tenant named by x-zid is fine; another is not.
    let (s, _) = grant(Some(alice.clone()), Some("customer-a")).await;
    assert_eq!(s, 200);
    let (s, v) = grant(Some(alice), Some(PROVIDER)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"], "invalid_grant");

    // Bad assertions.
    let (s, v) = grant(None, None).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_request")));
    let (s, v) = grant(Some("not a jwt".into()), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // Signpost's own client token is no user token of a trusted issuer.
    let (s, v) = grant(Some(provider.token.clone()), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    let no_tenant = peer.user_token(json!({"sub": "bob"})).await;
    let (s, v) = grant(Some(no_tenant), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "{v}"
    );
    // A user of a tenant that did not subscribe: refused like a wrong secret.
    let stranger = peer
        .user_token(json!({"sub": "eve", "zid": "not-subscribed"}))
        .await;
    let (s, v) = grant(Some(stranger), None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );
}

#[tokio::test]
async fn a_providers_subdomain_changes_with_its_context() {
    let app = TestApp::start().await;
    let provider = app.tenant(PROVIDER, INSTANCE, json!({})).await;
    let (s, _) = subscribe(&app, "customer-a", json!({"subdomain": "customer-a"})).await;
    assert_eq!(s, 201);
    let patch = |context: Value| {
        app.broker(Method::PATCH, &format!("/v2/service_instances/{INSTANCE}"))
            .json(&json!({"service_id": signpost_core::CATALOG_SERVICE_ID, "context": context}))
            .send()
    };
    // Another subaccount's subdomain: a 409, nothing changed.
    let res = patch(json!({"subdomain": "customer-a"})).await.unwrap();
    assert_eq!(res.status(), 409);
    let key = provider.key.clone();
    let uaadomain = key["uaadomain"].as_str().unwrap().to_owned();
    let (s, _) = tenant_token(
        &app,
        &key,
        None,
        Some(&format!("{PROVIDER}-sub.{uaadomain}")),
    )
    .await;
    assert_eq!(s, 200);
    // A new one: tokens carry it, and the token URL's host follows.
    let res = patch(json!({"subdomain": "provider-renamed"}))
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let (s, answer) = tenant_token(&app, &key, None, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        claims(answer["access_token"].as_str().unwrap())["ext_attr"]["zdn"],
        "provider-renamed"
    );
    let (s, _) = tenant_token(
        &app,
        &key,
        None,
        Some(&format!("provider-renamed.{uaadomain}")),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = tenant_token(
        &app,
        &key,
        None,
        Some(&format!("{PROVIDER}-sub.{uaadomain}")),
    )
    .await;
    assert_eq!(s, 401, "the old subdomain names no tenant any more");
}
