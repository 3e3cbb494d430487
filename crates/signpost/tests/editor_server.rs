//! The server side of the Destinations editor: its files at `/` and `/ui/...` with the
//! security headers, and the platform sign-in (`/signpost/v1/instances`, `.../{id}/token`)
//! with its bad inputs; the 401 has no Basic challenge, so that a browser shows no dialog.
#![allow(clippy::unwrap_used)]

use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{status_json, TestApp, BROKER_PASSWORD, BROKER_USER};

#[tokio::test]
async fn the_editor_is_served_with_a_strict_policy() {
    let app = TestApp::start().await;
    let client = reqwest::Client::new();
    for (path, media) in [
        ("/", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/destinations", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let res = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(media),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        // Revalidation: the ETag answers 304.
        let tag = h["etag"].clone();
        let again = client
            .get(app.url(path))
            .header("If-None-Match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let (status, body) =
        status_json(client.get(app.url("/ui/nope.js")).send().await.unwrap()).await;
    assert_eq!(status, 404);
    assert!(body["ErrorMessage"].is_string());
    // The API's own not-found answer is unchanged.
    let (status, _) = status_json(client.get(app.url("/no/such/path")).send().await.unwrap()).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn broker_credentials_sign_in_to_an_instance() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-editor", "inst-editor", json!({})).await;
    let res = app.provision("inst-bare", "sub-editor", json!({})).await;
    assert_eq!(res.status(), 201);
    let client = reqwest::Client::new();

    // Wrong or missing credentials: a 401 without a challenge (no browser dialog).
    for auth in [None, Some(("broker", "wrong"))] {
        let mut req = client.get(app.url("/signpost/v1/instances"));
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401);
        // A Bearer challenge at most: browsers prompt for Basic ones only.
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(!challenge.unwrap_or_default().starts_with("Basic"));
        let res = client
            .post(app.url("/signpost/v1/instances/inst-editor/token"))
            .basic_auth("broker", Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    // A tenant's token is not the broker's credentials.
    let res = t
        .req_abs(Method::GET, "/signpost/v1/instances")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let (status, list) = status_json(
        client
            .get(app.url("/signpost/v1/instances"))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let of = |id: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|i| i["instanceId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed: {list}"))
    };
    assert_eq!(of("inst-editor")["subaccountId"], "sub-editor");
    assert_eq!(of("inst-editor")["bindings"], 1);
    assert_eq!(of("inst-bare")["bindings"], 0);

    let token_of = |id: &str| {
        client
            .post(app.url(&format!("/signpost/v1/instances/{id}/token")))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .send()
    };
    let (status, body) = status_json(token_of("inst-editor").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    // The token works on the instance's destinations as its service key's does.
    let res = client
        .post(app.url("/destination-configuration/v1/instanceDestinations"))
        .bearer_auth(token)
        .json(&json!({"Name": "made-by-editor", "Type": "HTTP", "URL": "https://example.org", "Authentication": "NoAuthentication", "ProxyType": "Internet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = t.get("/v1/instanceDestinations/made-by-editor").await;
    assert_eq!(res.status(), 200);

    let (status, body) = status_json(token_of("inst-bare").await.unwrap()).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["ErrorMessage"]
        .as_str()
        .unwrap()
        .contains("no service key"));
    let (status, _) = status_json(token_of("no-such-instance").await.unwrap()).await;
    assert_eq!(status, 404);

    // The sign-in is in the audit log, by the broker.
    let (status, events) = status_json(
        app.broker(Method::GET, "/signpost/v1/audit")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "broker"
                && e["action"] == "issue"
                && e["instance"] == "inst-editor"),
        "{events}"
    );
}
