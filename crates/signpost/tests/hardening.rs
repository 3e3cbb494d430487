//! Issue 11 §2, §3 and §6 over HTTP, on SQLite and (through `on_postgres.rs`) PostgreSQL:
//! concurrent first uses of a subaccount's SAML trust key pair end with one stored pair that
//! every caller signed with; a self-provided X.509 binding certificate outside its validity
//! period gets no token.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;
use signpost_core::TrustedIssuer;
use signpost_test_utils::oauth_peer::OAuthPeer;
use signpost_test_utils::{status_json, TestApp, TestOptions};

fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

fn b64_any(text: &str) -> String {
    let e = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        })
        .unwrap();
    String::from_utf8(e).unwrap()
}

/// The base64 DER between `<ds:X509Certificate>` tags.
fn signing_certificate(xml: &str) -> String {
    let start = xml
        .find("<ds:X509Certificate>")
        .unwrap_or_else(|| panic!("{xml}"))
        + "<ds:X509Certificate>".len();
    let end = xml[start..].find("</ds:X509Certificate>").unwrap();
    xml[start..start + end].to_owned()
}

#[tokio::test]
async fn concurrent_first_uses_of_the_saml_key_pair_end_with_one_pair() {
    let peer = OAuthPeer::start().await;
    let app = TestApp::start_with(TestOptions {
        trusted_issuers: vec![TrustedIssuer {
            issuer: peer.issuer().trim_end_matches('/').to_owned(),
            jwks_uri: peer.jwks_url(),
        }],
        ..Default::default()
    })
    .await;
    let dest = json!({"Name": "saml", "Type": "HTTP", "URL": "https://target.example/api",
        "Authentication": "SAMLAssertion", "audience": "https://target.example",
        "authnContextClassRef": "urn:oasis:names:tc:SAML:2.0:ac:classes:X509", "ProxyType": "Internet",
        "includeSigningCertificateInSAMLAssertion": "true"});
    let t = app
        .tenant(
            "sub-race",
            "inst-race",
            json!({"init_data": {"instance": {"destinations": [dest]}}}),
        )
        .await;
    let user = peer
        .user_token(json!({"sub": "u-1", "user_name": "erin", "email": "erin@example.org"}))
        .await;
    // First uses at once: SAML flows that sign, and metadata downloads that publish the pair.
    let spawn = |req: reqwest::RequestBuilder| {
        tokio::spawn(async move { status_json(req.send().await.unwrap()).await })
    };
    let finds: Vec<_> = (0..4)
        .map(|_| {
            spawn(
                t.req(Method::GET, "/v1/destinations/saml")
                    .header("X-user-token", &user),
            )
        })
        .collect();
    let metadata: Vec<_> = (0..6)
        .map(|_| spawn(t.req(Method::GET, "/v1/saml2Metadata")))
        .collect();
    let mut found = Vec::new();
    for h in finds {
        found.push(h.await.unwrap());
    }
    let mut published = Vec::new();
    for h in metadata {
        published.push(h.await.unwrap());
    }
    let (s, v) = status_json(t.get("/v1/saml2Metadata/certificate").await).await;
    assert_eq!(s, 200, "{v}");
    let stored = pem_body(v["certificate"].as_str().unwrap());
    for (s, v) in found {
        assert_eq!(s, 200, "{v}");
        let token = &v["authTokens"][0];
        assert!(token.get("error").is_none(), "{token}");
        let xml = b64_any(token["value"].as_str().unwrap());
        assert_eq!(
            signing_certificate(&xml),
            stored,
            "every assertion is signed with the stored pair"
        );
    }
    for (s, v) in published {
        assert_eq!(s, 200, "{v}");
        let xml = b64_any(v["idpMetadata"].as_str().unwrap());
        assert!(
            xml.contains(&stored),
            "the metadata publishes the stored pair"
        );
    }
}

/// A self-signed client certificate valid from `from` to `until` (years), PEM cert + key.
fn client_identity(cn: &str, from: i32, until: i32) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(from, 1, 1);
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn self_provided_binding_certificates_are_checked_for_validity_at_token_time() {
    let app = TestApp::start_with(TestOptions {
        https: true,
        ..Default::default()
    })
    .await;
    let res = app.provision("inst-x509", "sub-x509", json!({})).await;
    assert!(res.status().is_success(), "{}", res.status());
    let ca = app.https_ca_pem().unwrap().to_owned();
    let base = app.https_base().unwrap().to_owned();
    let cases = [
        ("valid", 2020, 2090, 200, ""),
        (
            "expired",
            2020,
            2021,
            401,
            "expired at 2021-01-01T00:00:00Z",
        ),
        (
            "future",
            2090,
            2091,
            401,
            "not valid yet: it is valid from 2090-01-01T00:00:00Z",
        ),
    ];
    for (name, from, until, want, why) in cases {
        let (cert, key) = client_identity(name, from, until);
        let res = app
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/inst-x509/service_bindings/b-{name}"),
            )
            .json(&json!({"service_id": signpost_core::CATALOG_SERVICE_ID,
                "plan_id": signpost_core::CATALOG_PLAN_ID,
                "parameters": {"xsuaa": {"credential-type": "x509", "x509": {"certificate": cert}}}}))
            .send()
            .await
            .unwrap();
        let (s, body) = status_json(res).await;
        assert_eq!(s, 201, "{name}: {body}");
        let client_id = body["credentials"]["clientid"].as_str().unwrap().to_owned();
        let client = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
            .build()
            .unwrap();
        let res = client
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
            ])
            .send()
            .await
            .unwrap();
        let (s, body) = status_json(res).await;
        assert_eq!(s, want, "{name}: {body}");
        if want == 401 {
            assert_eq!(body["error"], "invalid_client", "{name}: {body}");
            let desc = body["error_description"].as_str().unwrap();
            assert!(desc.contains(why), "{name}: {desc}");
        } else {
            assert!(body["access_token"].is_string(), "{body}");
        }
    }
}
