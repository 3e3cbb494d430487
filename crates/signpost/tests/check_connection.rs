//! Check connection (`POST /signpost/v1/destinations/{level}/{name}/check`) against real
//! listeners on loopback: a trusted HTTPS server (the app's own HTTPS listener, its CA in the
//! destination's trust store), the same server untrusted, a closed port, a private address
//! refused by the guard, a failing token flow; and the bad inputs.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use signpost_test_utils::{free_port, status_json, Tenant, TestApp, TestOptions};

fn http_dest(name: &str, url: &str) -> Value {
    json!({"Name": name, "Type": "HTTP", "URL": url, "ProxyType": "Internet", "Authentication": "NoAuthentication"})
}

async fn check(t: &Tenant, level: &str, name: &str) -> (u16, Value) {
    let res = t
        .req_abs(
            Method::POST,
            &format!("/signpost/v1/destinations/{level}/{name}/check"),
        )
        .send()
        .await
        .unwrap();
    status_json(res).await
}

fn step<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name}: {report}"))
}

#[tokio::test]
async fn each_step_is_reported_and_each_failure_named() {
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..TestOptions::default()
    })
    .await;
    let t = app.tenant("sub-check", "inst-check", json!({})).await;
    let https = app.https_base().unwrap().to_owned();
    let ca = app.https_ca_pem().unwrap().to_owned();
    let content = base64::engine::general_purpose::STANDARD.encode(&ca);
    let res = t
        .post(
            "/v1/subaccountCertificates",
            json!({"Name": "ca.pem", "Type": "CERTIFICATE", "Content": content}),
        )
        .await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let mut trusted = http_dest("trusted", &format!("{https}/healthz"));
    trusted["TrustStoreLocation"] = json!("ca.pem");
    let closed = format!("http://127.0.0.1:{}/x", free_port());
    let mut failing_token = http_dest("token-fails", &format!("{https}/healthz"));
    failing_token["Authentication"] = json!("OAuth2ClientCredentials");
    failing_token["clientId"] = json!("c");
    failing_token["clientSecret"] = json!("do-not-print-me");
    failing_token["tokenServiceURL"] = json!(format!("http://127.0.0.1:{}/token", free_port()));
    for d in [
        trusted,
        http_dest("untrusted", &format!("{https}/healthz")),
        http_dest("closed", &closed),
        failing_token,
        json!({"Name": "rfc", "Type": "RFC", "ProxyType": "Internet", "Authentication": "NoAuthentication"}),
    ] {
        let res = t.post("/v1/subaccountDestinations", d).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }

    // Trusted: every step passes; TLS shows the protocol and the server certificate.
    let (status, r) = check(&t, "subaccount", "trusted").await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let names: Vec<&str> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["token", "dns", "tcp", "tls", "http"]);
    let tls = step(&r, "tls");
    assert!(
        tls["protocol"].as_str().unwrap().starts_with("TLSv1."),
        "{tls}"
    );
    assert!(
        tls["certificate"]["issuer"]
            .as_str()
            .unwrap()
            .contains("CN="),
        "{tls}"
    );
    assert!(
        tls["certificate"]["daysLeft"].as_i64().unwrap() > 0,
        "{tls}"
    );
    assert_eq!(step(&r, "http")["status"], 200, "{r}");
    assert_eq!(step(&r, "dns")["addresses"][0], "127.0.0.1");
    assert_eq!(r["target"], https.trim_end_matches('/'));

    // Untrusted: the TLS step fails and says so, with the certificate it saw; no HTTP step.
    let (_, r) = check(&t, "subaccount", "untrusted").await;
    assert_eq!(r["ok"], false, "{r}");
    let tls = step(&r, "tls");
    assert_eq!(tls["ok"], false);
    assert!(
        tls["error"].as_str().unwrap().contains("not trusted"),
        "{tls}"
    );
    assert!(tls["certificate"]["subject"].is_string(), "{tls}");
    assert!(r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["step"] != "http"));

    // A closed port: TCP fails, named.
    let (_, r) = check(&t, "subaccount", "closed").await;
    let tcp = step(&r, "tcp");
    assert_eq!(tcp["ok"], false);
    assert!(tcp["error"].as_str().unwrap().contains("refused"), "{tcp}");

    // The token flow's failure is a step of its own; the secret is nowhere in the report.
    let (_, r) = check(&t, "subaccount", "token-fails").await;
    assert_eq!(r["ok"], false);
    let token = step(&r, "token");
    assert_eq!(token["ok"], false, "{r}");
    assert_eq!(token["authentication"], "OAuth2ClientCredentials");
    assert!(!r.to_string().contains("do-not-print-me"));

    // Bad inputs.
    let (status, body) = check(&t, "subaccount", "rfc").await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["ErrorMessage"].as_str().unwrap().contains("HTTP"),
        "{body}"
    );
    assert_eq!(check(&t, "subaccount", "ghost").await.0, 404);
    assert_eq!(
        check(&t, "instance", "trusted").await.0,
        404,
        "another level"
    );
    assert_eq!(check(&t, "planet", "trusted").await.0, 404);
    let res = app
        .client
        .post(app.url("/signpost/v1/destinations/subaccount/trusted/check"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn private_addresses_are_refused_by_the_guard() {
    let app = TestApp::start_with(TestOptions {
        allow_private_networks: false,
        ..TestOptions::default()
    })
    .await;
    let t = app.tenant("sub-guard", "inst-guard", json!({})).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let res = t
        .post(
            "/v1/instanceDestinations",
            http_dest("inside", &format!("http://127.0.0.1:{port}/")),
        )
        .await;
    assert_eq!(res.status(), 201);
    let (status, r) = check(&t, "instance", "inside").await;
    assert_eq!(status, 200);
    assert_eq!(r["ok"], false);
    let dns = step(&r, "dns");
    assert!(dns["error"].as_str().unwrap().contains("private"), "{dns}");
    assert!(r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["step"] != "tcp"));
    // The listener saw no connection.
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the guard let a connection through"
    );
}
