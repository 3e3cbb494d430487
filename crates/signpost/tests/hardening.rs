//! Issue 11 §2, §3 and §6 over HTTP, on SQLite and (through `on_postgres.rs`) PostgreSQL:
//! concurrent first uses of a subaccount's SAML trust key pair end with one stored pair that
//! every caller signed with; a self-provided X.509 binding certificate outside its validity
//! period gets no token; keystore uploads over the key-derivation limits are a 400 naming the
//! limit, finds keep answering while expensive uploads run, and a token flow's key store is
//! parsed once per certificate version.
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

/// A PKCS#12 of a fresh self-signed EC certificate, encrypted with `iter` PBKDF2 iterations
/// (openssl), as base64.
fn pkcs12_b64(dir: &std::path::Path, name: &str, iter: u64, password: &str) -> String {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI is needed for this test");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (key, cert, p12) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("{name}.p12"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-noenc",
        "-keyout",
        &key,
        "-out",
        &cert,
        "-subj",
        &format!("/CN={name}"),
        "-days",
        "30",
    ]);
    run(&[
        "pkcs12",
        "-export",
        "-in",
        &cert,
        "-inkey",
        &key,
        "-out",
        &p12,
        "-passout",
        &format!("pass:{password}"),
        "-iter",
        &iter.to_string(),
    ]);
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(dir.join(&p12)).unwrap())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn find_latencies(t: &signpost_test_utils::Tenant, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let start = std::time::Instant::now();
        let res = t.get("/v1/destinations/basic").await;
        assert_eq!(res.status(), 200);
        out.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    out.sort_by(|a, b| a.total_cmp(b));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystore_uploads_are_capped_and_finds_keep_answering_while_they_run() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start().await;
    let basic = json!({"Name": "basic", "Type": "HTTP", "URL": "https://api.example",
        "Authentication": "BasicAuthentication", "User": "u", "Password": "p", "ProxyType": "Internet"});
    let t = app
        .tenant(
            "sub-cpu",
            "inst-cpu",
            json!({"init_data": {"instance": {"destinations": [basic]}}}),
        )
        .await;

    // Over the limit: a 400 that names it, and nothing stored.
    // signpost_certs::parse::MAX_PBKDF2_ITERATIONS is 1,000,000.
    let over = 1_000_001;
    let content = pkcs12_b64(dir.path(), "over", over, "pw-over");
    let (s, v) = status_json(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "over.p12", "Type": "PKCS12", "Content": content, "Password": "pw-over"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let msg = v["ErrorMessage"].as_str().unwrap();
    assert!(
        msg.contains("key-derivation") && msg.contains("1000000"),
        "{msg}"
    );
    assert_eq!(
        t.get("/v1/subaccountCertificates/over.p12").await.status(),
        404
    );

    // Expensive but allowed uploads, several at once, while finds run.
    let expensive = pkcs12_b64(dir.path(), "slow", 50_000, "pw-slow");
    let baseline = find_latencies(&t, 40).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let uploads: Vec<_> = (0..4)
        .map(|u| {
            let req = t.req(Method::POST, "/v1/subaccountCertificates");
            let (stop, content) = (stop.clone(), expensive.clone());
            tokio::spawn(async move {
                let mut done = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || done == 0 {
                    let body = json!({"Name": format!("slow-{u}-{done}.p12"), "Type": "PKCS12",
                        "Content": content, "Password": "pw-slow"});
                    let res = req.try_clone().unwrap().json(&body).send().await.unwrap();
                    assert_eq!(res.status(), 201);
                    done += 1;
                }
                done
            })
        })
        .collect();
    // Let the uploads start decrypting.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let loaded = find_latencies(&t, 40).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut uploaded = 0;
    for u in uploads {
        uploaded += u.await.unwrap();
    }
    let (b50, l50) = (percentile(&baseline, 0.5), percentile(&loaded, 0.5));
    let (b99, l99) = (percentile(&baseline, 0.99), percentile(&loaded, 0.99));
    println!(
        "find latency without uploads: p50 {b50:.2} ms, p99 {b99:.2} ms; during {uploaded} uploads of a 50,000-iteration PKCS#12 (4 at a time): p50 {l50:.2} ms, p99 {l99:.2} ms; p50 ratio {:.2}",
        l50 / b50
    );
    assert!(uploaded >= 4);
}

#[tokio::test]
async fn a_token_flow_parses_its_key_store_once_per_certificate_version() {
    let (_ca, _server_cert, _server_key, client_p12) =
        signpost_test_utils::pki::mtls_material("p12-pass");
    let app = TestApp::start().await;
    // A token service that is not there: the flow fails after the key store was read.
    let dest = json!({"Name": "mtls", "Type": "HTTP", "URL": "https://api.example",
        "ProxyType": "Internet", "Authentication": "OAuth2ClientCredentials", "clientId": "c",
        "tokenServiceURL": "http://127.0.0.1:9/token",
        "tokenService.KeyStoreLocation": "client.p12", "tokenService.KeyStorePassword": "p12-pass"});
    let t = app
        .tenant(
            "sub-ks",
            "inst-ks",
            json!({"init_data": {"subaccount": {
                "certificates": [{"Name": "client.p12", "Type": "PKCS12", "Content": client_p12, "Password": "p12-pass"}],
                "destinations": [dest]
            }}}),
        )
        .await;
    let before = app.core.key_store_parses();
    for _ in 0..5 {
        let (s, v) = status_json(t.get("/v1/subaccountDestinations/mtls").await).await;
        assert_eq!(s, 200, "{v}");
        let (s, v) = status_json(t.get("/v1/destinations/mtls").await).await;
        assert_eq!(s, 200, "{v}");
        let e = v["authTokens"][0]["error"].as_str().unwrap_or_default();
        assert!(e.contains("failed"), "{v}");
    }
    assert_eq!(app.core.key_store_parses() - before, 1, "parsed once");
    // A new version of the certificate is parsed again, once.
    let (_, _, _, other_p12) = signpost_test_utils::pki::mtls_material("p12-pass");
    let (s, v) = status_json(
        t.put(
            "/v1/subaccountCertificates",
            json!({"Name": "client.p12", "Type": "PKCS12", "Content": other_p12, "Password": "p12-pass"}),
        )
        .await,
    )
    .await;
    assert!(s == 200 || s == 204, "{s} {v}");
    for _ in 0..3 {
        t.get("/v1/destinations/mtls").await;
    }
    assert_eq!(app.core.key_store_parses() - before, 2, "parsed once more");
}
