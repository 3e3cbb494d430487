//! HTTPS out of the box (issue 18 §2): `signpost serve --tls-listen ADDR` without
//! `--tls-cert`/`--tls-key` serves a certificate of the built-in CA for `127.0.0.1`,
//! `localhost` and the public URL's host, writes the CA to `<data-dir>/ca.pem` and serves it at
//! `/signpost/v1/ca.pem`, says how to trust it, and writes https URLs into service keys. Checked
//! with reqwest trusting only that CA and with the real `openssl` CLI.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::process::{Command, Stdio};

use serde_json::Value;
use support::{find, request_token, run_to_exit, ServerOptions, ServerProcess};

/// A client that trusts only the PEM `ca` (no system roots), resolving `localhost` and
/// `dest.example.test` to 127.0.0.1.
fn trusting(ca: &str, port: u16) -> reqwest::Client {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .resolve("dest.example.test", addr)
        .resolve("tenant-a.dest.example.test", addr)
        .build()
        .unwrap()
}

/// The subjectAltName and validity lines `openssl x509` prints for the certificate that
/// `openssl s_client` is served on `port` (SNI `name`), and whether `openssl verify`-style
/// checking against `ca_file` passed (`Verify return code: 0`).
fn openssl_view(port: u16, name: &str, ca_file: &std::path::Path) -> (String, bool) {
    let connect = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", name, "-verify_hostname", name, "-CAfile"])
        .arg(ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("the openssl CLI is needed: {e}"));
    let text = String::from_utf8_lossy(&connect.stdout).into_owned();
    let verified = text.contains("Verify return code: 0 (ok)");
    let begin = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let end = text.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----".len();
    let mut x509 = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
            "-dates",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(x509.stdin.as_mut().unwrap(), &text.as_bytes()[begin..end]).unwrap();
    let out = x509.wait_with_output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned(), verified)
}

#[tokio::test]
async fn tls_listen_alone_serves_a_certificate_of_the_built_in_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(ServerOptions::new(&data).builtin_tls()).await;
    let tls_port = server.tls_port.unwrap();
    let tls_base = server.tls_base();

    // The CA is in the data directory, and served (unauthenticated) on both listeners.
    let ca = fs::read_to_string(server.ca_file()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let served = server
        .client
        .get(server.url("/signpost/v1/ca.pem"))
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(
        served.headers()["content-type"].to_str().unwrap(),
        "application/x-pem-file"
    );
    assert_eq!(served.text().await.unwrap(), ca);

    // The first-run message says how to trust it.
    let stdout = server.stdout();
    for hint in [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
        "--cacert",
    ] {
        assert!(
            stdout.contains(hint),
            "the first-run message should name {hint}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&server.ca_file().display().to_string()),
        "{stdout}"
    );
    assert!(
        server.stderr().contains("built-in CA"),
        "the start log should say where the certificate comes from:\n{}",
        server.stderr()
    );

    // The default service key carries https URLs (the HTTPS listener: no --public-url given).
    let key: Value =
        serde_json::from_str(&fs::read_to_string(data.join("default-service-key.json")).unwrap())
            .unwrap();
    assert_eq!(key["url"], tls_base, "{key}");
    assert_eq!(key["uri"], tls_base, "{key}");

    // A client that trusts only the CA gets a token and lists destinations over HTTPS, by
    // address and by the name localhost.
    let https = trusting(&ca, tls_port);
    let (status, body) = request_token(&https, &tls_base, &key).await;
    assert_eq!(status, 200, "token over HTTPS: {body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    for base in [tls_base.clone(), format!("https://localhost:{tls_port}")] {
        let res = https
            .get(format!(
                "{base}/destination-configuration/v1/subaccountDestinations"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{base}");
    }
    let (status, _) = find(&https, &tls_base, &token, "nothing-here").await;
    assert_eq!(status, 404);
    // A name the certificate is not for is refused by the client.
    let err = https
        .get(format!("https://dest.example.test:{tls_port}/healthz"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");

    // The CLI trusts the CA through SSL_CERT_FILE, as other tools do; without it, it refuses.
    let key_file = data.join("default-service-key.json");
    let key_arg = key_file.to_str().unwrap();
    let ca_arg = server.ca_file().display().to_string();
    let (status, stderr) = run_to_exit(
        &["dest", "list", "--service-key", key_arg, "-o", "json"],
        &[("SSL_CERT_FILE", ca_arg.as_str())],
    );
    assert!(status.success(), "the CLI with SSL_CERT_FILE: {stderr}");
    let (status, stderr) = run_to_exit(&["dest", "list", "--service-key", key_arg], &[]);
    assert!(!status.success(), "the CLI trusted an unknown CA: {stderr}");
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "refused for another reason than the certificate: {stderr}"
    );

    // openssl agrees: a serverAuth certificate for the names, valid for 90 days, chained to the CA.
    let (view, verified) = openssl_view(tls_port, "localhost", &server.ca_file());
    assert!(
        verified,
        "openssl could not verify the chain and name:\n{view}"
    );
    for expect in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "TLS Web Server Authentication",
    ] {
        assert!(view.contains(expect), "{expect} missing:\n{view}");
    }
    assert!(server.stop().await.success(), "{}", server.stderr());

    // A restart keeps the CA (it lives in the database) and issues a new server certificate.
    let mut server = ServerProcess::start(ServerOptions::new(&data).builtin_tls()).await;
    assert_eq!(fs::read_to_string(server.ca_file()).unwrap(), ca);
    let https = trusting(&ca, server.tls_port.unwrap());
    let (status, body) = request_token(&https, &server.tls_base(), &key).await;
    // The key names the old port; the service accepts it on the new one.
    assert_eq!(status, 200, "{body}");
    assert!(server.stop().await.success(), "{}", server.stderr());
}

#[tokio::test]
async fn the_public_url_names_the_certificate_and_the_service_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tls_port = support::free_port();
    let public = format!("https://dest.example.test:{tls_port}");
    let mut server = ServerProcess::start(
        ServerOptions::new(&data)
            .arg("--tls-listen")
            .arg(format!("127.0.0.1:{tls_port}"))
            .arg("--public-url")
            .arg(&public),
    )
    .await;
    let key: Value =
        serde_json::from_str(&fs::read_to_string(data.join("default-service-key.json")).unwrap())
            .unwrap();
    assert_eq!(key["url"], public, "{key}");
    assert_eq!(key["uri"], public, "{key}");
    let ca = fs::read_to_string(server.ca_file()).unwrap();
    let https = trusting(&ca, tls_port);
    // The public name and its subdomains (tenant token URLs), localhost and 127.0.0.1.
    for base in [
        public.clone(),
        format!("https://tenant-a.dest.example.test:{tls_port}"),
        format!("https://localhost:{tls_port}"),
        format!("https://127.0.0.1:{tls_port}"),
    ] {
        let res = https.get(format!("{base}/healthz")).send().await;
        assert_eq!(res.map(|r| r.status().as_u16()).ok(), Some(200), "{base}");
    }
    let (status, body) = request_token(&https, &public, &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(server.stop().await.success(), "{}", server.stderr());
}

#[test]
fn half_a_certificate_pair_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let tls = format!("127.0.0.1:{}", support::free_port());
    for (args, says) in [
        (
            vec!["--tls-listen", tls.as_str(), "--tls-cert", "c.pem"],
            "go together",
        ),
        (
            vec!["--tls-listen", tls.as_str(), "--tls-key", "k.pem"],
            "go together",
        ),
        (
            vec!["--tls-cert", "c.pem", "--tls-key", "k.pem"],
            "need --tls-listen",
        ),
    ] {
        let mut all = vec!["serve", "--listen", "127.0.0.1:0", "--data-dir", data];
        all.extend(args.iter().copied());
        let (status, stderr) = run_to_exit(&all, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(
        !std::path::Path::new(data).join("ca.pem").exists(),
        "nothing is written before the configuration is valid"
    );
}
