//! Tenant isolation across every endpoint a token reaches: subscriber A's destinations,
//! fragments and certificates on its subaccount and subscription level, tried with another
//! subscriber's token, with the provider's and with the token of a tenant that unsubscribed.
//! Nothing is seen (the same 404 as a missing entity, lists without them), nothing is changed
//! (every ETag as before), and the unsubscribed tenant's token is a 401 everywhere.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{pki, status_json, Tenant, TestApp};

const INSTANCE: &str = "iso-app";

/// A's entities, by collection: (collection, name).
const OWNED: [(&str, &str); 6] = [
    ("subaccountDestinations", "a-dest"),
    ("instanceDestinations", "a-sub-dest"),
    ("subaccountDestinationFragments", "a-frag"),
    ("instanceDestinationFragments", "a-sub-frag"),
    ("subaccountCertificates", "a-cert.pem"),
    ("instanceCertificates", "a-sub-cert.pem"),
];

fn body_of(collection: &str, name: &str) -> Value {
    if collection.ends_with("Destinations") {
        json!({"Name": name, "Type": "HTTP", "URL": "https://a.example/secret-path", "Authentication": "BasicAuthentication",
            "ProxyType": "Internet", "User": "a", "Password": "a-password-never-shown"})
    } else if collection.ends_with("Fragments") {
        json!({"FragmentName": name, "URL.headers.x-a": "a"})
    } else {
        json!({"Name": name, "Content": pki::cert_content("a.example")})
    }
}

/// Everything A owns as A reads it: ETags by path.
async fn etags(a: &Tenant) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (collection, name) in OWNED {
        let path = format!("/v1/{collection}/{name}");
        let res = a.get(&path).await;
        assert_eq!(res.status(), 200, "{path}");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        out.push((path, etag));
    }
    out
}

/// Every request another tenant could make about A's entities; each must be a 404 (or, for
/// lists and bulk answers, hold none of A's names).
async fn probe(who: &str, t: &Tenant) {
    for (collection, name) in OWNED {
        let one = format!("/v1/{collection}/{name}");
        for (method, path, body) in [
            (Method::GET, one.clone(), None),
            (Method::DELETE, one.clone(), None),
            (
                Method::PUT,
                format!("/v1/{collection}"),
                Some(body_of(collection, name)),
            ),
        ] {
            let mut req = t.req(method.clone(), &path);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let (s, v) = status_json(req.send().await.unwrap()).await;
            assert_eq!(s, 404, "{who}: {method} {path}: {v}");
        }
        if collection.ends_with("Certificates") {
            let (s, _) = status_json(t.get(&format!("{one}/publicKeys")).await).await;
            assert_eq!(s, 404, "{who}: publicKeys of {name}");
            let level = if collection.starts_with("instance") {
                "instance"
            } else {
                "subaccount"
            };
            let (s, _) = status_json(
                t.get_abs(&format!("/signpost/v1/certificates/{level}/{name}"))
                    .await,
            )
            .await;
            assert_eq!(s, 404, "{who}: details of {name}");
        }
        // Lists show none of A's names; a bulk delete of them deletes nothing.
        let (s, list) = status_json(t.get(&format!("/v1/{collection}")).await).await;
        assert_eq!(s, 200, "{who}: list {collection}");
        assert!(
            !list.to_string().contains(name),
            "{who}: {collection}: {list}"
        );
        let filter = format!("Name in ('{name}')");
        let res = t
            .req(Method::DELETE, &format!("/v1/{collection}"))
            .query(&[("$filter", filter.as_str())])
            .send()
            .await
            .unwrap();
        let (s, v) = status_json(res).await;
        assert_eq!(s, 200, "{who}: bulk delete {collection}: {v}");
        assert_eq!(v["Count"], 0, "{who}: bulk delete {collection}: {v}");
        assert_eq!(v["Summary"][0]["status"], "NOT_FOUND", "{who}: {v}");
    }
    // Find and consume, on every level, and check connection.
    for path in [
        "/v1/destinations/a-dest".to_owned(),
        "/v1/destinations/a-sub-dest".to_owned(),
        "/v2/destinations/a-dest@subaccount".to_owned(),
        "/v2/destinations/a-sub-dest@instance".to_owned(),
    ] {
        let (s, v) = status_json(t.get(&path).await).await;
        assert_eq!(s, 404, "{who}: {path}: {v}");
        assert_eq!(
            v["ErrorMessage"], "Configuration with the specified name was not found",
            "{who}: {path}"
        );
    }
    // A fragment of A's named by a destination of the caller's own: not found.
    for (level, name) in [("subaccount", "a-dest"), ("instance", "a-sub-dest")] {
        let (s, _) = status_json(
            t.req_abs(
                Method::POST,
                &format!("/signpost/v1/destinations/{level}/{name}/check"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(s, 404, "{who}: check {level}/{name}");
    }
}

#[tokio::test]
async fn no_tenant_sees_or_changes_another_tenants_entities() {
    let app = TestApp::start().await;
    let all = json!({"subscriber_access": {
        "destination": {"read_scopes": ["iso.read"], "write_scopes": ["iso.write"]},
        "certificate": {"read_scopes": ["iso.read"], "write_scopes": ["iso.write"]},
    }});
    let res = app.provision(INSTANCE, "iso-provider", all).await;
    assert_eq!(res.status(), 201);
    let res = app
        .broker(
            Method::PUT,
            &format!("/v2/service_instances/{INSTANCE}/service_bindings/iso-key"),
        )
        .json(&json!({"service_id": signpost_core::CATALOG_SERVICE_ID, "plan_id": signpost_core::CATALOG_PLAN_ID,
            "parameters": {"scopes": ["iso.read", "iso.write"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let key = res.json::<Value>().await.unwrap()["credentials"].clone();
    let provider = Tenant {
        base: app.url(""),
        client: app.client.clone(),
        token: app.token(&key).await,
        key,
    };
    for s in ["tenant-a", "tenant-b", "tenant-c"] {
        app.subscribe(INSTANCE, s).await;
    }
    let a = app.tenant_of(&provider, "tenant-a").await;
    let b = app.tenant_of(&provider, "tenant-b").await;
    let c = app.tenant_of(&provider, "tenant-c").await;
    for (collection, name) in OWNED {
        let res = a
            .post(&format!("/v1/{collection}"), body_of(collection, name))
            .await;
        assert_eq!(
            res.status(),
            201,
            "{collection}: {}",
            res.text().await.unwrap()
        );
    }
    let before = etags(&a).await;
    let (_, saml_a) = status_json(a.get("/v1/saml2Metadata").await).await;

    // tenant-c unsubscribes: its token is dead everywhere.
    let res = app
        .broker(
            Method::DELETE,
            &format!("/signpost/v1/subscriptions/{INSTANCE}/tenant-c"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for path in [
        "/v1/subaccountDestinations",
        "/v1/instanceDestinations",
        "/v1/destinations/a-dest",
        "/v1/saml2Metadata",
    ] {
        assert_eq!(c.get(path).await.status(), 401, "tenant-c: {path}");
    }

    probe("tenant-b", &b).await;
    probe("the provider", &provider).await;

    // SAML: each tenant has its own key pairs; another's renewal leaves A's alone.
    let (s, saml_b) = status_json(b.get("/v1/saml2Metadata").await).await;
    assert_eq!(s, 200);
    assert_ne!(saml_a, saml_b, "tenant-b sees its own SAML metadata");
    let res = b
        .req(Method::POST, "/v1/saml2Metadata/certificate")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (_, saml_a_after) = status_json(a.get("/v1/saml2Metadata").await).await;
    assert_eq!(saml_a, saml_a_after);

    // Nothing of A's changed, and no answer to another tenant held A's secret.
    assert_eq!(etags(&a).await, before);
    let (_, mine) = status_json(a.get("/v1/subaccountDestinations/a-dest").await).await;
    assert_eq!(mine["Password"], "a-password-never-shown");
}
