//! Issue 11 §2, §3 and §6 over HTTP, on SQLite and (through `on_postgres.rs`) PostgreSQL:
//! concurrent first uses of a subaccount's SAML trust key pair end with one stored pair that
//! every caller signed with.
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
