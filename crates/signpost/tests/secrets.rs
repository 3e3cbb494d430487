//! Secrets never appear in logs, in `Debug` output or in plaintext in the SQLite files, and
//! everything survives a restart.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use signpost_test_utils::{status_json, TestApp, BROKER_PASSWORD, BROKER_USER};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const SECRETS: &[&str] = &[
    "pw-Zq8w1-basic",
    "cs-Lr4k9-client-secret",
    "tsp-Mx2v7-token-service",
    "ksp-Pn5j3-keystore",
    "custom-Yt6h2-secret",
];

#[tokio::test]
async fn secrets_stay_out_of_logs_debug_and_disk() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let app = TestApp::start().await;
    // A real certificate with its private key: the key's text must not appear anywhere.
    let pem = signpost_test_utils::pki::self_signed("secret-holder", 30);
    let key_body: String = pem
        .key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let cert_b64 = signpost_test_utils::pki::b64(format!("{}{}", pem.cert, pem.key).as_bytes());
    let params = json!({"init_data": {
        "instance": {"destinations": [{
            "Name": "secretive", "Type": "HTTP", "URL": "https://s.example", "Authentication": "BasicAuthentication",
            "User": "bob", "Password": SECRETS[0], "clientSecret": SECRETS[1], "tokenServicePassword": SECRETS[2],
            "KeyStorePassword": SECRETS[3], "myCustomSecret": SECRETS[4]
        }]},
        "subaccount": {"certificates": [{"Name": "key.pem", "Content": cert_b64}]}
    }});
    let t = app.tenant("sub-s", "inst-s", params).await;
    let (s, v) = status_json(t.get("/v1/destinations/secretive").await).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["destinationConfiguration"]["Password"], SECRETS[0],
        "the API itself returns secrets to their owner"
    );
    // Error paths too: a failing provision that carries secrets, a bad token request.
    let bad = json!({"init_data": {"instance": {"destinations": [{"Name": "x", "Password": SECRETS[0]}]}}});
    assert_eq!(app.provision("inst-bad", "sub-s", bad).await.status(), 400);
    let client_secret = t.key["clientsecret"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .client
        .get(app.url("/v2/catalog"))
        .basic_auth("x", Some(BROKER_PASSWORD))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A signing-key rotation: the new private key goes to the store encrypted and nowhere else.
    let res = app
        .client
        .post(app.url("/signpost/v1/signing-keys/rotate"))
        .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // The logs.
    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("instance provisioned"),
        "the capture works: {logs}"
    );
    let mut must_not_appear: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    must_not_appear.extend([
        cert_b64.clone(),
        key_body.clone(),
        client_secret.clone(),
        t.token.clone(),
        BROKER_PASSWORD.to_owned(),
    ]);
    for s in &must_not_appear {
        assert!(!logs.contains(s.as_str()), "a secret is in the logs");
    }
    assert!(logs.contains("token signing key rotated"));
    assert!(
        !logs.contains("PRIVATE KEY"),
        "a private key is in the logs"
    );

    // Debug output of the core types.
    let debug = format!("{:?} {:?}", app.core, t.key);
    for s in SECRETS {
        assert!(!debug.contains(s));
    }

    // The SQLite files (database, WAL, shared memory) hold no secret in plaintext.
    let mut disk = Vec::new();
    for entry in std::fs::read_dir(app.data_dir()).unwrap() {
        disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(
        disk.windows(b"secretive".len()).any(|w| w == b"secretive"),
        "names are stored in clear (the check can see text)"
    );
    let private_key_marker = b"BEGIN RSA PRIVATE KEY";
    assert!(
        !disk
            .windows(private_key_marker.len())
            .any(|w| w == private_key_marker),
        "signing key in plaintext"
    );
    for s in must_not_appear.iter().filter(|s| *s != &t.token) {
        assert!(
            !disk.windows(s.len()).any(|w| w == s.as_bytes()),
            "a secret is stored in plaintext"
        );
    }
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let app = TestApp::start().await;
    let params = json!({"init_data": {"instance": {"destinations": [{
        "Name": "kept", "Type": "HTTP", "URL": "https://k.example", "Authentication": "BasicAuthentication", "User": "u", "Password": "p"
    }]}}});
    let t = app.tenant("sub-r", "inst-r", params).await;
    let content = signpost_test_utils::pki::cert_content("kept-over-restart");
    assert_eq!(
        t.post(
            "/v1/subaccountCertificates",
            json!({"Name": "c.pem", "Content": content})
        )
        .await
        .status(),
        201
    );
    let key = t.key.clone();
    let old_token = t.token.clone();
    let app = app.restart().await;
    // The old token is still valid (same signing key), and the key still gets new tokens.
    let res = app
        .client
        .get(app.url("/destination-configuration/v1/destinations/kept"))
        .bearer_auth(&old_token)
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(res).await;
    assert_eq!(s, 200);
    assert_eq!(v["authTokens"][0]["value"], "dTpw");
    let token = app.token(&key).await;
    let res = app
        .client
        .get(app.url("/destination-configuration/v1/subaccountCertificates/c.pem"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (s, v) = status_json(res).await;
    assert_eq!((s, v["Content"].as_str()), (200, Some(content.as_str())));
}

/// `Debug` of the types that carry secrets between the layers (issue 11 §5): the find result,
/// a token flow's context, the store's write operations, the broker's requests, request bodies,
/// and the command line's arguments. Each is formatted holding a marker secret, which must not
/// appear, not even as the list of its bytes.
#[test]
fn debug_of_find_results_flows_writes_and_arguments_hides_secrets() {
    use clap::Parser;
    use secrecy::SecretString;
    use serde_json::{Map, Value};

    const MARK: &str = "mark-Kq7z4-secret";
    let as_bytes = format!("{:?}", MARK.as_bytes());
    let as_bytes = as_bytes.trim_start_matches('[').trim_end_matches(']');
    let check = |what: &str, shown: String| {
        assert!(!shown.contains(MARK), "{what} shows the secret: {shown}");
        assert!(
            !shown.contains(as_bytes),
            "{what} shows the secret's bytes: {shown}"
        );
    };
    let destination: Map<String, Value> = serde_json::from_value(json!({
        "Name": "d", "Type": "HTTP", "URL": "https://d.example", "User": "bob",
        "Password": MARK, "clientSecret": MARK, "tokenServicePassword": MARK,
        "KeyStorePassword": MARK
    }))
    .unwrap();

    // The find result: the configuration, the tokens and the certificates.
    let find = signpost_wire::FindResponse {
        owner: None,
        destination_configuration: destination.clone(),
        auth_tokens: Some(vec![signpost_wire::AuthToken::with_header(
            "Bearer",
            MARK.to_owned(),
            "Authorization",
        )]),
        certificates: Some(vec![signpost_wire::CertificateItem {
            name: "c.p12".into(),
            content: MARK.into(),
            cert_type: "CERTIFICATE".into(),
        }]),
    };
    let shown = format!("{find:?}");
    assert!(shown.contains("bob"), "the check can see values: {shown}");
    check("FindResponse", shown);

    // A token flow's context: the merged destination, the caller's headers, a client assertion
    // and the mTLS identity.
    let headers = signpost_oauth::FlowHeaders {
        user_token: Some(MARK.into()),
        refresh_token: Some(MARK.into()),
        subject_token: Some(MARK.into()),
        client_assertion: Some(MARK.into()),
        ..Default::default()
    };
    let ctx = signpost_oauth::FlowContext {
        destination: &destination,
        headers: &headers,
        subdomain: "sub",
        level: "instance",
        owner: "inst",
        name: "d",
        etag: "e1",
        saml: None,
        client_assertion: Some((
            MARK.to_owned(),
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
        )),
        tls: signpost_oauth::TlsSettings {
            identity_pem: Some(SecretString::from(MARK)),
            trust_pem: None,
        },
    };
    check("FlowContext", format!("{ctx:?}"));

    // The store's write operations: an entity's body, a binding's secret, a server secret.
    let ops = vec![
        signpost_store::WriteOp::PutEntity {
            owner: signpost_model::OwnerRef::instance("inst"),
            kind: signpost_model::EntityKind::Destination,
            name: "d".into(),
            body: serde_json::to_vec(&destination).unwrap(),
            mode: signpost_store::PutMode::Upsert,
        },
        signpost_store::WriteOp::CreateBinding(signpost_store::BindingRecord {
            id: "b".into(),
            instance_id: "inst".into(),
            client_id: "c".into(),
            client_secret: Some(SecretString::from(MARK)),
            certificate: None,
            certificate_sha256: None,
            credential_type: "binding-secret".into(),
            request_digest: "x".into(),
            created_at: 0,
            scopes: Vec::new(),
        }),
        signpost_store::WriteOp::PutSecret {
            name: "n".into(),
            value: SecretString::from(MARK),
            if_absent: true,
        },
    ];
    check("WriteOp", format!("{ops:?}"));

    // The broker's requests (the configuration JSON) and a create body.
    let provision: signpost_wire::ProvisionRequest = serde_json::from_value(json!({
        "service_id": "s", "plan_id": "p",
        "parameters": {"init_data": {"instance": {
            "destinations": [destination.clone()],
            "certificates": [{"Name": "k.p12", "Content": MARK, "Password": MARK}]
        }}}
    }))
    .unwrap();
    check("ProvisionRequest", format!("{provision:?}"));
    let body = signpost_wire::split_body(
        serde_json::to_string(&json!([destination]))
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    check("BodyShape", format!("{body:?}"));

    // The command line: passwords, tokens and database URLs given as arguments.
    let argv: &[&[&str]] = &[
        &[
            "login",
            "http://127.0.0.1:8080",
            "--broker-user",
            "u",
            "--broker-password",
            MARK,
        ],
        &["cert", "upload", "client.p12", "--password", MARK],
        &[
            "cert",
            "generate",
            "c.p12",
            "--cn",
            "c",
            "--type",
            "p12",
            "--password",
            MARK,
        ],
        &["dest", "find", "d", "--user-token", MARK],
        &[
            "serve",
            "--database-url",
            &format!("postgres://u:{MARK}@db/sp"),
        ],
        &[
            "migrate",
            "--database-url",
            &format!("postgres://db/sp?password={MARK}"),
        ],
        &[
            "store",
            "copy",
            "--from",
            &format!("postgres://u:{MARK}@a/sp"),
            "--to",
            &format!("postgres://u:{MARK}@b/sp"),
        ],
    ];
    for args in argv {
        let cli =
            signpost::Cli::try_parse_from(std::iter::once("signpost").chain(args.iter().copied()))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        check(
            &format!("the arguments {:?}", args[..2].to_vec()),
            format!("{cli:?}"),
        );
    }
}
