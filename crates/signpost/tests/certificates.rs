//! Certificates on both levels: what is kept and returned, and deletion of certificates that
//! destinations use.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use signpost_test_utils::{pki, status_json, TestApp};

#[tokio::test]
async fn a_used_certificate_cannot_be_deleted() {
    let app = TestApp::start().await;
    let t = app
        .tenant(
            "sub-c",
            "inst-c",
            json!({"init_data": {
                "subaccount": {
                    "certificates": [{"Name": "client.pem", "Content": pki::cert_content("client")}, {"Name": "free.pem", "Content": pki::cert_content("free")}],
                    "destinations": [{"Name": "mtls", "Type": "HTTP", "URL": "https://x", "Authentication": "ClientCertificateAuthentication", "KeyStoreLocation": "client.pem"}]
                },
                "instance": {
                    "destinations": [{"Name": "inst-mtls", "Type": "HTTP", "URL": "https://y", "Authentication": "OAuth2ClientCredentials", "tokenService.KeyStoreLocation": "client.pem"}]
                }
            }}),
        )
        .await;
    let (s, v) = status_json(t.delete("/v1/subaccountCertificates/client.pem").await).await;
    assert_eq!(s, 409);
    let msg = v["ErrorMessage"].as_str().unwrap();
    assert!(
        msg.contains("'mtls'") && msg.contains("'inst-mtls'"),
        "{msg}"
    );
    let (s, _) = status_json(
        t.delete("/v1/subaccountCertificates?$filter=Name in ('free.pem','client.pem')")
            .await,
    )
    .await;
    assert_eq!(s, 409);
    // Nothing was deleted; an unused one goes.
    assert_eq!(
        t.get("/v1/subaccountCertificates/free.pem").await.status(),
        200
    );
    assert_eq!(
        t.delete("/v1/subaccountCertificates/free.pem")
            .await
            .status(),
        200
    );
    // Once no destination uses it, it can be deleted.
    assert_eq!(
        t.delete("/v1/subaccountDestinations/mtls").await.status(),
        200
    );
    assert_eq!(
        t.delete("/v1/instanceDestinations/inst-mtls")
            .await
            .status(),
        200
    );
    assert_eq!(
        t.delete("/v1/subaccountCertificates/client.pem")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn keystore_passwords_are_kept_but_never_returned() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-p", "inst-p", json!({})).await;
    let content = pki::pkcs12(&pki::self_signed("ks", 30), "store-pass-1");
    let cert =
        json!({"Name": "ks.p12", "Type": "PKCS12", "Content": content, "Password": "store-pass-1"});
    assert_eq!(t.post("/v1/instanceCertificates", cert).await.status(), 201);
    let (_, v) = status_json(t.get("/v1/instanceCertificates/ks.p12").await).await;
    assert_eq!(
        v,
        json!({"Name": "ks.p12", "Type": "PKCS12", "Content": content})
    );
    let (_, v) = status_json(t.get("/v1/instanceCertificates").await).await;
    assert!(!v.to_string().contains("store-pass-1"));
}
