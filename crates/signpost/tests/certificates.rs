//! Certificates on both levels: what is kept and returned, and deletion of certificates that
//! destinations use.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};
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

fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// root → intermediate → leaf, made by openssl; returns the PEMs.
fn chain(dir: &std::path::Path) -> (String, String, String) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "root.key",
        "-out",
        "root.pem",
        "-subj",
        "/CN=Test Root",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:true",
    ]);
    openssl(dir, &a);
    let mut a = vec!["req", "-new"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "int.key",
        "-out",
        "int.csr",
        "-subj",
        "/CN=Test Intermediate",
    ]);
    openssl(dir, &a);
    std::fs::write(dir.join("ca.ext"), "basicConstraints=critical,CA:true\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            "int.pem",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
        ],
    );
    let mut a = vec!["req", "-new"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=leaf.example",
    ]);
    openssl(dir, &a);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "10",
        ],
    );
    let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
    (read("root.pem"), read("int.pem"), read("leaf.pem"))
}

#[tokio::test]
async fn uploads_are_parsed_and_chains_must_be_complete() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-u", "inst-u", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let (root, int, leaf) = chain(dir.path());
    // A gap: leaf and root without the intermediate.
    let gap = pki::b64(format!("{leaf}{root}").as_bytes());
    let (s, v) = status_json(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "gap.pem", "Content": gap}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("CN=Test Intermediate"),
        "{v}"
    );
    // The whole chain is accepted, in any order.
    let full = pki::b64(format!("{root}{leaf}{int}").as_bytes());
    assert_eq!(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "full.pem", "Content": full})
        )
        .await
        .status(),
        201
    );
    let (s, d) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount/full.pem")
            .await,
    )
    .await;
    assert_eq!(s, 200, "{d}");
    assert_eq!(d["name"], "full.pem");
    assert_eq!(d["format"], "PEM");
    assert_eq!(d["origin"], "uploaded");
    assert_eq!(d["locked"], false);
    let chain_subjects: Vec<&str> = d["entries"][0]["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        chain_subjects,
        ["CN=leaf.example", "CN=Test Intermediate", "CN=Test Root"]
    );
    let leaf_d = &d["entries"][0]["chain"][0];
    for field in [
        "issuer",
        "serialNumber",
        "notBefore",
        "notAfter",
        "keyAlgorithm",
        "sha256Fingerprint",
    ] {
        assert!(leaf_d[field].is_string(), "{field} in {leaf_d}");
    }
    assert!(leaf_d["daysLeft"].as_i64().unwrap() <= 10);
    assert_eq!(leaf_d["isCA"], false);
    // A DER certificate (CER/CRT) is detected from its content, whatever the name says.
    openssl(
        dir.path(),
        &[
            "x509", "-in", "root.pem", "-outform", "DER", "-out", "root.der",
        ],
    );
    let der = pki::b64(&std::fs::read(dir.path().join("root.der")).unwrap());
    assert_eq!(
        t.post(
            "/v1/instanceCertificates",
            json!({"Name": "root.pem", "Content": der})
        )
        .await
        .status(),
        201
    );
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/instance/root.pem")
            .await,
    )
    .await;
    assert_eq!(d["format"], "DER");
    // Expiring soon: the 10-day leaf is listed within 30 days, the DER root (30 days) within 30 too, not within 5.
    let (_, list) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount?expiringWithinDays=15")
            .await,
    )
    .await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["full.pem"]);
    let (_, list) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount?expiringWithinDays=5")
            .await,
    )
    .await;
    assert_eq!(list, json!([]));
    let (s, _) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount?expiringWithinDays=soon")
            .await,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = status_json(t.get_abs("/signpost/v1/certificates/galaxy").await).await;
    assert_eq!(s, 404);
    // SAP's publicKeys.
    let (s, keys) = status_json(
        t.get("/v1/subaccountCertificates/full.pem/publicKeys")
            .await,
    )
    .await;
    assert_eq!(s, 200);
    assert!(keys[0]["Content"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert!(keys[0]["SubjectDN"]
        .as_str()
        .unwrap()
        .contains("leaf.example"));
    // Nothing of the refused upload was kept.
    assert_eq!(
        t.get("/v1/subaccountCertificates/gap.pem").await.status(),
        404
    );
}

#[tokio::test]
async fn keystores_with_and_without_passwords() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-k", "inst-k", json!({})).await;
    let p12 = pki::pkcs12(&pki::self_signed("client.example", 60), "right-pass");
    let (s, v) = status_json(
        t.post(
            "/v1/instanceCertificates",
            json!({"Name": "a.p12", "Content": p12, "Password": "wrong-pass"}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["ErrorMessage"].as_str().unwrap().contains("password"),
        "{v}"
    );
    assert!(!v.to_string().contains("wrong-pass"));
    assert_eq!(
        t.post(
            "/v1/instanceCertificates",
            json!({"Name": "locked.p12", "Content": p12})
        )
        .await
        .status(),
        201
    );
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/instance/locked.p12")
            .await,
    )
    .await;
    assert_eq!(d["format"], "PKCS12");
    assert_eq!(d["locked"], true);
    let (s, v) = status_json(
        t.get("/v1/instanceCertificates/locked.p12/publicKeys")
            .await,
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["ErrorMessage"],
        "The keystore is password-protected and public keys cannot be retrieved"
    );
    assert_eq!(
        t.post(
            "/v1/instanceCertificates",
            json!({"Name": "open.p12", "Content": p12, "Password": "right-pass"})
        )
        .await
        .status(),
        201
    );
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/instance/open.p12")
            .await,
    )
    .await;
    assert_eq!(d["locked"], false);
    assert_eq!(d["entries"][0]["kind"], "privateKey");
    assert_eq!(d["entries"][0]["chain"][0]["subject"], "CN=client.example");
    for bad in ["", "AAAA", "JVBERi0xLjQK"] {
        let (s, _) = status_json(
            t.post(
                "/v1/instanceCertificates",
                json!({"Name": "bad.p12", "Content": bad}),
            )
            .await,
        )
        .await;
        assert_eq!(s, 400, "{bad:?}");
    }
}

#[tokio::test]
async fn generated_certificates_come_from_the_ca_and_renew() {
    let app = TestApp::start().await;
    let t = app.tenant("sub-g", "inst-g", json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = app
        .client
        .get(app.url("/signpost/v1/ca.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    let gen = json!({"Name": "gen.pem", "Type": "PEM", "Attributes": {"CN": "client.example", "Validity": {"TimeUnit": "DAYS", "Value": 30}, "AutomaticRenew": true}});
    let (s, v) = status_json(t.post("/v1/subaccountCertificates", gen).await).await;
    assert_eq!(s, 201, "{v}");
    let (_, c) = status_json(t.get("/v1/subaccountCertificates/gen.pem").await).await;
    let pem = String::from_utf8(b64d(c["Content"].as_str().unwrap())).unwrap();
    assert!(
        pem.contains("PRIVATE KEY"),
        "generated PEM carries its key (readable through the API)"
    );
    std::fs::write(dir.path().join("gen.pem"), &pem).unwrap();
    let verified = openssl(dir.path(), &["verify", "-CAfile", "ca.pem", "gen.pem"]);
    assert!(verified.contains("gen.pem: OK"), "{verified}");
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount/gen.pem")
            .await,
    )
    .await;
    assert_eq!(
        (d["origin"].as_str(), d["automaticRenewal"].as_bool()),
        (Some("generated"), Some(true))
    );
    let serial = d["entries"][0]["chain"][0]["serialNumber"]
        .as_str()
        .unwrap()
        .to_owned();
    // PKCS#12 needs a password and is readable with it.
    let (s, _) = status_json(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "g.p12", "Type": "PKCS12", "Attributes": {"CN": "p12.example"}}),
        )
        .await,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = status_json(t.post("/v1/subaccountCertificates", json!({"Name": "g.p12", "Type": "PKCS12", "Attributes": {"CN": "p12.example", "Password": "p12-pass"}})).await).await;
    assert_eq!(s, 201);
    let (_, c) = status_json(t.get("/v1/subaccountCertificates/g.p12").await).await;
    std::fs::write(
        dir.path().join("g.p12"),
        b64d(c["Content"].as_str().unwrap()),
    )
    .unwrap();
    let listed = openssl(
        dir.path(),
        &[
            "pkcs12",
            "-in",
            "g.p12",
            "-passin",
            "pass:p12-pass",
            "-nokeys",
        ],
    );
    assert!(listed.contains("p12.example"));
    // Bad generation requests.
    for (body, what) in [
        (
            json!({"Name": "x.pem", "Attributes": {"CN": "x", "Validity": {"TimeUnit": "YEARS", "Value": 2}}}),
            "year",
        ),
        (
            json!({"Name": "x.pem", "Attributes": {"CN": "x", "Validity": {"TimeUnit": "DAYS", "Value": 0}}}),
            "ay",
        ),
        (
            json!({"Name": "x.pem", "Attributes": {"CN": "x", "Colour": "red"}}),
            "Colour",
        ),
        (
            json!({"Name": "x.p12", "Type": "PKCS12", "Attributes": {"CN": "x", "Password": "p", "CSR": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K"}}),
            "CSR",
        ),
    ] {
        let (s, v) = status_json(t.post("/v1/subaccountCertificates", body.clone()).await).await;
        assert_eq!(s, 400, "{body}");
        assert!(v["ErrorMessage"].as_str().unwrap().contains(what), "{v}");
    }
    // A destination uses the generated certificate.
    let dest = json!({"Name": "uses-gen", "Type": "HTTP", "URL": "https://x", "Authentication": "ClientCertificateAuthentication", "KeyStoreLocation": "gen.pem"});
    assert_eq!(
        t.post("/v1/subaccountDestinations", dest).await.status(),
        201
    );
    let (_, before) = status_json(t.get("/v1/destinations/uses-gen").await).await;
    // Never renewed yet.
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount/gen.pem")
            .await,
    )
    .await;
    assert_eq!(d["lastRenewal"], Value::Null, "{d}");
    // Renewal with an injected clock: nothing is due now; at two thirds of the life it is.
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(app.core.renew_due_certificates(now).await.unwrap(), 0);
    assert_eq!(
        app.core
            .renew_due_certificates(now + time::Duration::days(21))
            .await
            .unwrap(),
        1,
        "only the auto-renewing one"
    );
    let (_, d) = status_json(
        t.get_abs("/signpost/v1/certificates/subaccount/gen.pem")
            .await,
    )
    .await;
    let renewed_serial = d["entries"][0]["chain"][0]["serialNumber"]
        .as_str()
        .unwrap();
    assert_ne!(renewed_serial, serial);
    assert!(
        d["lastRenewal"]
            .as_str()
            .unwrap()
            .starts_with(&(now + time::Duration::days(21)).date().to_string()),
        "{d}"
    );
    assert_eq!(d["entries"][0]["chain"][0]["subject"], "CN=client.example");
    let (_, after) = status_json(t.get("/v1/destinations/uses-gen").await).await;
    assert_ne!(
        before["certificates"][0]["Content"], after["certificates"][0]["Content"],
        "the destination gets the new one at once"
    );
    // The renewed one is not due again right after.
    assert_eq!(
        app.core
            .renew_due_certificates(now + time::Duration::days(21))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn metrics_and_ca_are_served() {
    let app = TestApp::start().await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    // OpenMetrics: a counter's family is named without `_total`, its sample with it; `# EOF` ends.
    assert!(
        text.contains("# TYPE signpost_token_requests counter\n"),
        "{text}"
    );
    assert!(
        text.contains("\nsignpost_token_requests_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE signpost_uploaded_certificates_expiring gauge\nsignpost_uploaded_certificates_expiring 0\n"),
        "{text}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
}
