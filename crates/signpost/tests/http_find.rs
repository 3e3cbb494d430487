//! Find destination (v1) and the v2 consume lookup (API.md §2), with snapshots of the wire JSON.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{pki, status_json, Tenant, TestApp};

async fn setup(app: &TestApp) -> Tenant {
    let params = json!({"init_data": {
        "subaccount": {
            "destinations": [
                {"Name": "shared", "Type": "HTTP", "URL": "https://sub.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"},
                {"Name": "basic", "Type": "HTTP", "URL": "https://basic.example", "Authentication": "BasicAuthentication", "ProxyType": "Internet", "User": "alice", "Password": "wonderland"},
                {"Name": "mtls", "Type": "HTTP", "URL": "https://mtls.example", "Authentication": "ClientCertificateAuthentication", "ProxyType": "Internet", "KeyStoreLocation": "client.p12", "KeyStorePassword": "ks-pass", "TrustStoreLocation": "trust.pem"},
                {"Name": "oauth", "Type": "HTTP", "URL": "https://api.example", "Authentication": "OAuth2ClientCredentials", "clientId": "c", "clientSecret": "s", "tokenServiceURL": "http://127.0.0.1:9/oauth/token"}
            ],
            "certificates": [
                {"Name": "client.p12", "Type": "PKCS12", "Content": pki::pkcs12(&pki::self_signed("client", 30), "ks-pass"), "Password": "ks-pass"},
                {"Name": "trust.pem", "Content": pki::cert_content("trust")}
            ]
        },
        "instance": {
            "destinations": [
                {"Name": "shared", "Type": "HTTP", "URL": "https://instance.example", "Authentication": "NoAuthentication", "ProxyType": "Internet"}
            ]
        }
    }});
    app.tenant("sub-find", "inst-find", params).await
}

fn find(t: &Tenant, name: &str) -> reqwest::RequestBuilder {
    t.req(Method::GET, &format!("/v1/destinations/{name}"))
}

#[tokio::test]
async fn instance_level_wins_then_subaccount() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (s, v) = status_json(find(&t, "shared").send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["owner"],
        json!({"SubaccountId": null, "InstanceId": "inst-find"})
    );
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://instance.example"
    );
    assert!(
        v.get("authTokens").is_none(),
        "NoAuthentication has no token"
    );
    let (_, v) = status_json(find(&t, "basic").send().await.unwrap()).await;
    assert_eq!(
        v["owner"],
        json!({"SubaccountId": "sub-find", "InstanceId": null})
    );
    // Removing the instance-level one falls back to the subaccount.
    assert_eq!(
        t.delete("/v1/instanceDestinations/shared").await.status(),
        200
    );
    let (_, v) = status_json(find(&t, "shared").send().await.unwrap()).await;
    assert_eq!(v["destinationConfiguration"]["URL"], "https://sub.example");
    assert_eq!(v["owner"]["SubaccountId"], "sub-find");
}

#[tokio::test]
async fn wire_json_snapshots() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    for name in ["shared", "basic", "mtls", "oauth"] {
        let res = find(&t, name).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        // Certificates are made fresh by openssl in every run.
        insta::assert_json_snapshot!(format!("find_{name}"), v, {".certificates[].Content" => "[certificate]"});
    }
    let (s, v) = status_json(find(&t, "nope").send().await.unwrap()).await;
    assert_eq!(s, 404);
    insta::assert_json_snapshot!("find_not_found", v);
    let (_, v) = status_json(t.get("/v1/subaccountDestinations?$select=Name").await).await;
    insta::assert_json_snapshot!("list_select_name", v);
}

#[tokio::test]
async fn not_found_has_saps_exact_message() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (s, v) = status_json(find(&t, "missing").send().await.unwrap()).await;
    assert_eq!(s, 404);
    assert_eq!(
        v,
        json!({"ErrorMessage": "Configuration with the specified name was not found"})
    );
}

#[tokio::test]
async fn basic_token_and_credential_options() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (_, v) = status_json(find(&t, "basic").send().await.unwrap()).await;
    let token = &v["authTokens"][0];
    assert_eq!(token["type"], "Basic");
    assert_eq!(token["value"], "YWxpY2U6d29uZGVybGFuZA==");
    assert_eq!(
        token["http_header"],
        json!({"key": "Authorization", "value": "Basic YWxpY2U6d29uZGVybGFuZA=="})
    );
    assert_eq!(v["destinationConfiguration"]["Password"], "wonderland");

    let (_, v) = status_json(
        find(&t, "basic?$skipCredentials=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(v["destinationConfiguration"].get("Password").is_none());
    assert_eq!(v["destinationConfiguration"]["User"], "alice");
    assert!(v["authTokens"].is_array());

    let (_, v) = status_json(
        find(&t, "basic?$skipTokenRetrieval=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(v.get("authTokens").is_none());
    assert_eq!(v["destinationConfiguration"]["Password"], "wonderland");
    // As SAP's SDK sends it: `$` percent-encoded.
    let (_, v) = status_json(
        find(&t, "basic?%24skipTokenRetrieval=true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(v.get("authTokens").is_none());
    let (s, _) = status_json(
        find(&t, "basic?$skipTokenRetrieval=maybe")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn client_certificate_destinations_carry_their_certificates() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (_, v) = status_json(find(&t, "mtls").send().await.unwrap()).await;
    assert!(v.get("authTokens").is_none());
    let (_, ks) = status_json(t.get("/v1/subaccountCertificates/client.p12").await).await;
    let (_, trust) = status_json(t.get("/v1/subaccountCertificates/trust.pem").await).await;
    assert_eq!(
        v["certificates"],
        json!([
            {"Name": "client.p12", "Content": ks["Content"], "Type": "CERTIFICATE"},
            {"Name": "trust.pem", "Content": trust["Content"], "Type": "CERTIFICATE"}
        ])
    );
}

#[tokio::test]
async fn failed_flows_are_errors_in_auth_tokens() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    // The token service of "oauth" does not listen: still HTTP 200, with the reason in the token.
    let (s, v) = status_json(find(&t, "oauth").send().await.unwrap()).await;
    assert_eq!(s, 200);
    let token = &v["authTokens"][0];
    assert_eq!(token["type"], "");
    assert_eq!(token["value"], "");
    assert!(
        token["error"]
            .as_str()
            .unwrap()
            .contains("connection failed"),
        "{token}"
    );
    assert!(!v.to_string().contains("Bearer"));
    // An unknown type is named too.
    let odd = json!({"Name": "odd", "Type": "HTTP", "Authentication": "Telepathy"});
    assert_eq!(t.post("/v1/instanceDestinations", odd).await.status(), 201);
    let (_, v) = status_json(find(&t, "odd").send().await.unwrap()).await;
    assert!(v["authTokens"][0]["error"]
        .as_str()
        .unwrap()
        .contains("Telepathy"));
}

#[tokio::test]
async fn fragments_merge_in_order() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    for f in [
        json!({"FragmentName": "f1", "URL": "https://f1.example", "A": "1"}),
        json!({"FragmentName": "f2", "URL": "https://f2.example", "B": "2"}),
    ] {
        assert_eq!(
            t.post("/v1/instanceDestinationFragments", f).await.status(),
            201
        );
    }
    let (s, v) = status_json(
        find(&t, "shared")
            .header("X-fragment-name", "f1, f2")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    let c = &v["destinationConfiguration"];
    assert_eq!(c["URL"], "https://f2.example", "the last fragment wins");
    assert_eq!((c["A"].as_str(), c["B"].as_str()), (Some("1"), Some("2")));
    assert_eq!(c["FragmentName"], "f1,f2");
    assert_eq!(c["Name"], "shared");
    // Stored data is unchanged.
    let (_, stored) = status_json(t.get("/v1/instanceDestinations/shared").await).await;
    assert_eq!(stored["URL"], "https://instance.example");
    // Header names are case-insensitive; a missing fragment is a 404, unless optional.
    let (s, v) = status_json(
        find(&t, "shared")
            .header("X-Fragment-Name", "nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
    assert!(v["ErrorMessage"].as_str().unwrap().contains("'nope'"));
    let (s, v) = status_json(
        find(&t, "shared")
            .header("X-fragment-name", "nope")
            .header("X-fragment-optional", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://instance.example"
    );
    let (s, _) = status_json(
        find(&t, "shared")
            .header("X-fragment-name", "f1,f2")
            .header("X-fragment-optional", "true")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    // v1 fragments live at the destination's level: the subaccount-level "basic" does not see f1.
    let (s, _) = status_json(
        find(&t, "basic")
            .header("X-fragment-name", "f1")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn find_etags() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let res = find(&t, "basic").send().await.unwrap();
    let etag = res.headers()["etag"].to_str().unwrap().to_owned();
    let res = find(&t, "basic")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    let res = find(&t, "basic")
        .header("If-Match", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 412);
    // A fragment changes the ETag.
    assert_eq!(
        t.post(
            "/v1/subaccountDestinationFragments",
            json!({"FragmentName": "g", "X": "1"})
        )
        .await
        .status(),
        201
    );
    let res = find(&t, "basic")
        .header("X-fragment-name", "g")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn user_token_and_tenant_together_are_400() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (s, v) = status_json(
        find(&t, "basic")
            .header("X-user-token", "x")
            .header("X-tenant", "y")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(v["ErrorMessage"].as_str().unwrap().contains("X-tenant"));
}

#[tokio::test]
async fn v2_consume_names_the_level() {
    let app = TestApp::start().await;
    let t = setup(&app).await;
    let (s, v) = status_json(t.get("/v2/destinations/shared@subaccount").await).await;
    assert_eq!(s, 200);
    assert_eq!(v["destinationConfiguration"]["URL"], "https://sub.example");
    assert!(v.get("owner").is_none());
    let (_, v) = status_json(t.get("/v2/destinations/shared@instance").await).await;
    assert_eq!(
        v["destinationConfiguration"]["URL"],
        "https://instance.example"
    );
    let (_, v) = status_json(t.get("/v2/destinations/shared").await).await;
    assert_eq!(
        v["destinationConfiguration"]["URL"], "https://instance.example",
        "default level is instance"
    );
    let (s, v) = status_json(t.get("/v2/destinations/basic@instance").await).await;
    assert_eq!(s, 404, "no fallback on v2");
    assert_eq!(
        v["ErrorMessage"],
        "Configuration with the specified name was not found"
    );
    let (s, _) = status_json(t.get("/v2/destinations/basic@galaxy").await).await;
    assert_eq!(s, 400);
    let (s, _) = status_json(t.get("/v2/destinations/basic@provider_subaccount").await).await;
    assert_eq!(s, 400);
    // Fragments with @level.
    assert_eq!(
        t.post(
            "/v1/instanceDestinationFragments",
            json!({"FragmentName": "fi", "URL": "https://fi.example"})
        )
        .await
        .status(),
        201
    );
    let res = t
        .req(Method::GET, "/v2/destinations/basic@subaccount")
        .header("X-fragment-name", "fi@instance")
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(res).await;
    assert_eq!(s, 200);
    assert_eq!(v["destinationConfiguration"]["URL"], "https://fi.example");
}
