//! Tenant isolation: two subaccounts with two instances each; a caller sees its own instance's
//! entities and its subaccount's, nothing else, and another tenant's entity is a plain 404.
#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use signpost_test_utils::{status_json, Tenant, TestApp};

fn dest(name: &str, url: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": url, "Authentication": "NoAuthentication"})
}

#[tokio::test]
async fn tenants_are_isolated() {
    let app = TestApp::start().await;
    let mut tenants: Vec<(String, String, Tenant)> = Vec::new();
    for sub in ["sub-a", "sub-b"] {
        for inst in ["i1", "i2"] {
            let instance = format!("{sub}-{inst}");
            let t = app.tenant(sub, &instance, json!({})).await;
            tenants.push((sub.to_owned(), instance, t));
        }
    }
    // Each tenant writes one instance-level destination; each subaccount one subaccount-level one.
    for (sub, inst, t) in &tenants {
        let res = t
            .post(
                "/v1/instanceDestinations",
                dest(&format!("own-{inst}"), &format!("https://{inst}.example")),
            )
            .await;
        assert_eq!(res.status(), 201);
        if inst.ends_with("i1") {
            assert_eq!(
                t.post(
                    "/v1/subaccountDestinations",
                    dest(&format!("shared-{sub}"), "https://s.example")
                )
                .await
                .status(),
                201
            );
            // The same name on both subaccounts does not clash.
            assert_eq!(
                t.post(
                    "/v1/subaccountDestinations",
                    dest("same-name", &format!("https://{sub}.example"))
                )
                .await
                .status(),
                201
            );
        }
    }
    for (sub, inst, t) in &tenants {
        let (_, own) = status_json(t.get("/v1/instanceDestinations?$select=Name").await).await;
        assert_eq!(own, json!([{"Name": format!("own-{inst}")}]));
        let (_, shared) = status_json(t.get("/v1/subaccountDestinations?$select=Name").await).await;
        assert_eq!(
            shared,
            json!([{"Name": "same-name"}, {"Name": format!("shared-{sub}")}])
        );
        let (s, v) = status_json(t.get("/v1/destinations/same-name").await).await;
        assert_eq!(s, 200);
        assert_eq!(
            v["destinationConfiguration"]["URL"],
            format!("https://{sub}.example")
        );
        for (other_sub, other_inst, _) in &tenants {
            if other_inst != inst {
                // Another instance's entity: 404 everywhere, with the same text as any missing one.
                let (s, v) =
                    status_json(t.get(&format!("/v1/destinations/own-{other_inst}")).await).await;
                assert_eq!(s, 404);
                assert_eq!(
                    v["ErrorMessage"],
                    "Configuration with the specified name was not found"
                );
                assert_eq!(
                    t.get(&format!("/v1/instanceDestinations/own-{other_inst}"))
                        .await
                        .status(),
                    404
                );
                assert_eq!(
                    t.delete(&format!("/v1/instanceDestinations/own-{other_inst}"))
                        .await
                        .status(),
                    404
                );
                let (s, _) = status_json(
                    t.put(
                        "/v1/instanceDestinations",
                        dest(&format!("own-{other_inst}"), "https://evil.example"),
                    )
                    .await,
                )
                .await;
                assert_eq!(s, 404);
            }
            if other_sub != sub {
                assert_eq!(
                    t.get(&format!("/v1/destinations/shared-{other_sub}"))
                        .await
                        .status(),
                    404
                );
                assert_eq!(
                    t.get(&format!("/v1/subaccountDestinations/shared-{other_sub}"))
                        .await
                        .status(),
                    404
                );
                let (_, v) = status_json(
                    t.delete(&format!(
                        "/v1/subaccountDestinations?$filter=Name in ('shared-{other_sub}')"
                    ))
                    .await,
                )
                .await;
                assert_eq!(v["Count"], 0);
            }
        }
    }
    // Nothing was changed by the attempts on other tenants' entities.
    for (sub, inst, t) in &tenants {
        let (_, v) =
            status_json(t.get(&format!("/v1/instanceDestinations/own-{inst}")).await).await;
        assert_eq!(v["URL"], format!("https://{inst}.example"));
        let (s, _) = status_json(
            t.get(&format!("/v1/subaccountDestinations/shared-{sub}"))
                .await,
        )
        .await;
        assert_eq!(s, 200);
    }
}
