//! The service broker and the token service through the real router, real HTTP and a real
//! SQLite file.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_core::{CATALOG_PLAN_ID, CATALOG_SERVICE_ID};
use signpost_test_utils::{provision_body, status_json, TestApp, BROKER_USER};

fn dest(name: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": "https://example.org", "Authentication": "NoAuthentication"})
}

#[tokio::test]
async fn catalog_offers_destination_lite() {
    let app = TestApp::start().await;
    let (status, body) =
        status_json(app.broker(Method::GET, "/v2/catalog").send().await.unwrap()).await;
    assert_eq!(status, 200);
    let service = &body["services"][0];
    assert_eq!(service["name"], "destination");
    assert_eq!(service["id"], CATALOG_SERVICE_ID);
    assert_eq!(service["bindable"], true);
    assert_eq!(service["plans"][0]["name"], "lite");
    assert_eq!(service["plans"][0]["id"], CATALOG_PLAN_ID);
}

#[tokio::test]
async fn broker_needs_credentials_and_version() {
    let app = TestApp::start().await;
    let url = app.url("/v2/catalog");
    let res = app
        .client
        .get(&url)
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "Unauthorized");
    let res = app
        .client
        .get(&url)
        .basic_auth(BROKER_USER, Some("wrong"))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(&url)
        .basic_auth(BROKER_USER, Some(signpost_test_utils::BROKER_PASSWORD))
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 412);
    assert!(body["description"]
        .as_str()
        .unwrap()
        .contains("X-Broker-API-Version"));
    for bad in ["1.0", "3.0", "two", "2"] {
        let res = app
            .client
            .get(&url)
            .basic_auth(BROKER_USER, Some(signpost_test_utils::BROKER_PASSWORD))
            .header("X-Broker-API-Version", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 412, "version {bad}");
    }
}

#[tokio::test]
async fn provision_is_idempotent_and_conflicts_on_difference() {
    let app = TestApp::start().await;
    let params = json!({"init_data": {"instance": {"destinations": [dest("a")]}}});
    assert_eq!(
        app.provision("inst-1", "sub-1", params.clone())
            .await
            .status(),
        201
    );
    assert_eq!(
        app.provision("inst-1", "sub-1", params.clone())
            .await
            .status(),
        200
    );
    let (status, body) = status_json(app.provision("inst-1", "sub-2", params).await).await;
    assert_eq!(status, 409);
    assert!(body["description"].as_str().unwrap().contains("inst-1"));
}

#[tokio::test]
async fn subaccount_falls_back_to_organization_guid() {
    let app = TestApp::start().await;
    let mut body = provision_body("ignored", json!({}));
    body["context"] = json!({"platform": "cloudfoundry"});
    body["organization_guid"] = json!("org-7");
    let res = app
        .broker(Method::PUT, "/v2/service_instances/i7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key = app.bind("i7", "k7").await;
    assert_eq!(key["tenantid"], "org-7");
    assert_eq!(key["identityzone"], "org-7");
}

#[tokio::test]
async fn bad_provisioning_requests() {
    let app = TestApp::start().await;
    let put = |body: Value| {
        app.broker(Method::PUT, "/v2/service_instances/bad-1")
            .json(&body)
            .send()
    };
    // Unknown plan and service.
    let mut b = provision_body("s", json!({}));
    b["plan_id"] = json!("nope");
    let (status, body) = status_json(put(b).await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(body["description"].as_str().unwrap().contains("plan_id"));
    // Bad configuration JSON: the error names the field.
    let cases = [
        (
            json!({"init_data": {"instance": {"existing_destinations_policy": "merge"}}}),
            "init_data.instance.existing_destinations_policy",
        ),
        (
            json!({"init_data": {"instance": {"destinations": [{"Name": "x"}]}}}),
            "init_data.instance.destinations[0]",
        ),
        (
            json!({"init_data": {"subaccount": {"certificates": [{"Name": "c.pem", "Content": "%%%"}]}}}),
            "init_data.subaccount.certificates[0]",
        ),
        (
            json!({"init_data": {"instance": {"destinations": {"Name": "x"}}}}),
            "init_data.instance.destinations",
        ),
        (json!({"init_data": []}), "init_data"),
        (json!({"unknown": 1}), "unknown"),
        (json!("text"), "parameters"),
    ];
    for (params, field) in cases {
        let (status, body) =
            status_json(put(provision_body("s", params.clone())).await.unwrap()).await;
        assert_eq!(status, 400, "{params}");
        let d = body["description"].as_str().unwrap();
        assert!(d.contains(field), "{d} should name {field}");
    }
    // Malformed JSON and a non-object body.
    let res = app
        .broker(Method::PUT, "/v2/service_instances/bad-1")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .broker(Method::PUT, "/v2/service_instances/bad-1")
        .json(&json!([1]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // No subaccount at all.
    let mut b = provision_body("s", json!({}));
    b["context"] = json!({});
    b.as_object_mut().unwrap().remove("organization_guid");
    assert_eq!(put(b).await.unwrap().status(), 400);
    // Nothing was created by any of these.
    assert_eq!(app.bind_status("bad-1", "k").await, 404);
}

trait BindStatus {
    async fn bind_status(&self, instance: &str, binding: &str) -> u16;
}

impl BindStatus for TestApp {
    async fn bind_status(&self, instance: &str, binding: &str) -> u16 {
        self.broker(
            Method::PUT,
            &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
        )
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
    }
}

#[tokio::test]
async fn configuration_is_all_or_nothing_on_both_levels() {
    let app = TestApp::start().await;
    // The subaccount already has "taken".
    let first = app
        .tenant(
            "sub-a",
            "first",
            json!({"init_data": {"subaccount": {"destinations": [dest("taken")]}}}),
        )
        .await;
    // A second instance whose configuration creates things on both levels and then clashes.
    let params = json!({"init_data": {
        "subaccount": {"destinations": [dest("new-sub"), dest("taken")], "certificates": [{"Name": "c.pem", "Content": signpost_test_utils::pki::cert_content("c")}]},
        "instance": {"destinations": [dest("new-inst")]}
    }});
    let (status, body) = status_json(app.provision("second", "sub-a", params.clone()).await).await;
    assert_eq!(status, 409);
    let d = body["description"].as_str().unwrap();
    assert!(d.contains("destination 'taken'"), "{d}");
    assert!(d.contains("init_data.subaccount.destinations[1]"), "{d}");
    // Nothing of it remains: no instance, no subaccount destination, no certificate.
    assert_eq!(app.bind_status("second", "k").await, 404);
    let (_, names) = status_json(first.get("/v1/subaccountDestinations?$select=Name").await).await;
    assert_eq!(names, json!([{"Name": "taken"}]));
    let (_, certs) = status_json(first.get("/v1/subaccountCertificates").await).await;
    assert_eq!(certs, json!([]));

    // With policy ignore the same configuration succeeds and keeps the existing entry.
    let mut ignore = params.clone();
    ignore["init_data"]["subaccount"]["existing_destinations_policy"] = json!("ignore");
    ignore["init_data"]["subaccount"]["destinations"][1]["URL"] = json!("https://changed.example");
    let second = app.tenant("sub-a", "second", ignore).await;
    let (_, taken) = status_json(second.get("/v1/subaccountDestinations/taken").await).await;
    assert_eq!(taken["URL"], "https://example.org");
    let (_, inst) = status_json(second.get("/v1/instanceDestinations/new-inst").await).await;
    assert_eq!(inst["Name"], "new-inst");

    // With policy update (through PATCH) the entry is overwritten.
    let patch = json!({"service_id": CATALOG_SERVICE_ID, "parameters": {"init_data": {"subaccount": {
        "existing_destinations_policy": "update",
        "destinations": [{"Name": "taken", "Type": "HTTP", "URL": "https://updated.example"}]
    }}}});
    let res = app
        .broker(Method::PATCH, "/v2/service_instances/second")
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (_, taken) = status_json(second.get("/v1/subaccountDestinations/taken").await).await;
    assert_eq!(taken["URL"], "https://updated.example");

    // An update that fails part-way changes nothing.
    let patch = json!({"service_id": CATALOG_SERVICE_ID, "parameters": {"init_data": {
        "instance": {"destinations": [dest("from-failed-update")]},
        "subaccount": {"destinations": [dest("taken")]}
    }}});
    let (status, _) = status_json(
        app.broker(Method::PATCH, "/v2/service_instances/second")
            .json(&patch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        second
            .get("/v1/instanceDestinations/from-failed-update")
            .await
            .status(),
        404
    );
    let (_, taken) = status_json(second.get("/v1/subaccountDestinations/taken").await).await;
    assert_eq!(taken["URL"], "https://updated.example");
}

#[tokio::test]
async fn update_of_unknown_instance_is_404() {
    let app = TestApp::start().await;
    let res = app
        .broker(Method::PATCH, "/v2/service_instances/missing")
        .json(&json!({"service_id": CATALOG_SERVICE_ID}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn service_key_has_sap_fields() {
    let app = TestApp::start().await;
    assert_eq!(app.provision("i1", "sub-1", json!({})).await.status(), 201);
    let key = app.bind("i1", "b1").await;
    for field in [
        "clientid",
        "clientsecret",
        "url",
        "uri",
        "uaadomain",
        "identityzone",
        "tenantid",
        "xsappname",
        "instanceid",
        "verificationkey",
    ] {
        assert!(
            key[field].as_str().is_some_and(|s| !s.is_empty()),
            "{field} missing in {key}"
        );
    }
    assert_eq!(key["credential-type"], "binding-secret");
    assert_eq!(key["tenantid"], "sub-1");
    assert_eq!(key["identityzone"], "sub-1-sub");
    assert_eq!(key["instanceid"], "i1");
    assert_eq!(key["url"], app.base);
    assert_eq!(key["uaadomain"], app.addr.to_string());
    assert!(key["verificationkey"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    // The same bind again answers 200 with the same credentials; other parameters are a 409.
    let res = app
        .broker(Method::PUT, "/v2/service_instances/i1/service_bindings/b1")
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID}))
        .send()
        .await
        .unwrap();
    let (status, again) = status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(again["credentials"], key);
    let res = app
        .broker(Method::PUT, "/v2/service_instances/i1/service_bindings/b1")
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID, "parameters": {"a": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // X.509 bindings come with a later release: a clear 422, not a secret binding.
    let res = app
        .broker(Method::PUT, "/v2/service_instances/i1/service_bindings/b2")
        .json(&json!({"service_id": CATALOG_SERVICE_ID, "plan_id": CATALOG_PLAN_ID, "parameters": {"xsuaa": {"credential-type": "x509"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    // Binding an unknown instance.
    assert_eq!(app.bind_status("nope", "b3").await, 404);
}

#[tokio::test]
async fn token_service_issues_xsuaa_style_jwts() {
    let app = TestApp::start().await;
    assert_eq!(app.provision("i1", "sub-1", json!({})).await.status(), 201);
    let key = app.bind("i1", "b1").await;
    let id = key["clientid"].as_str().unwrap();
    let secret = key["clientsecret"].as_str().unwrap();
    // Form body.
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .unwrap();
    let (status, body) = status_json(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["token_type"], "bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(body["scope"], "uaa.resource");
    assert!(body["jti"].is_string());
    let token = body["access_token"].as_str().unwrap();
    // Claims SAP's clients read.
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["zid"], "sub-1");
    assert_eq!(claims["ext_attr"]["zdn"], "sub-1-sub");
    assert_eq!(claims["ext_attr"]["enhancer"], "XSUAA");
    assert_eq!(claims["ext_attr"]["serviceinstanceid"], "i1");
    assert_eq!(claims["cid"], id);
    assert_eq!(claims["client_id"], id);
    assert_eq!(claims["iss"], format!("{}/oauth/token", app.base));
    assert!(claims["exp"].as_u64().unwrap() > claims["iat"].as_u64().unwrap());
    assert_eq!(claims["jti"], body["jti"]);
    // The JWKS has the signing key.
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let (_, jwks) = status_json(app.client.get(app.url("/token_keys")).send().await.unwrap()).await;
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"] && k["kty"] == "RSA"));

    // HTTP Basic works too.
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A wrong secret, an unknown client, no credentials: 401 invalid_client.
    for form in [
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", "wrong"),
        ],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", secret),
        ],
        vec![("grant_type", "client_credentials")],
    ] {
        let (status, body) = status_json(
            app.client
                .post(app.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_client");
    }
    let (status, body) = status_json(
        app.client
            .post(app.url("/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn unbind_and_deprovision_revoke_tokens_at_once() {
    let app = TestApp::start().await;
    let params = json!({"init_data": {"instance": {"destinations": [dest("d")]}}});
    let tenant = app.tenant("sub-1", "i1", params).await;
    assert_eq!(tenant.get("/v1/destinations/d").await.status(), 200);
    // A second key of the same instance.
    let key2 = app.bind("i1", "second-key").await;
    let token2 = app.token(&key2).await;
    let res = app
        .broker(
            Method::DELETE,
            "/v2/service_instances/i1/service_bindings/second-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(app.url("/destination-configuration/v1/destinations/d"))
        .bearer_auth(&token2)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Unbinding again is a 410.
    let res = app
        .broker(
            Method::DELETE,
            "/v2/service_instances/i1/service_bindings/second-key",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    // The first key still works until the instance goes.
    assert_eq!(tenant.get("/v1/destinations/d").await.status(), 200);
    let res = app
        .broker(Method::DELETE, "/v2/service_instances/i1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(tenant.get("/v1/destinations/d").await.status(), 401);
    let res = app
        .broker(Method::DELETE, "/v2/service_instances/i1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    // Provisioning the same id again starts empty: the instance's entities went with it.
    let again = app.tenant("sub-1", "i1", json!({})).await;
    let (_, list) = status_json(again.get("/v1/instanceDestinations").await).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn liveness_and_readiness_answer() {
    let app = TestApp::start().await;
    for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], status, "{path}");
    }
}
