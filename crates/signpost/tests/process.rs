//! The real `signpost` binary as a process: configuration refusals, generated secrets, logs,
//! SIGTERM, restarts on the same data directory, and the HTTPS listener.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use support::{
    find, free_port, https_client, request_token, run_to_exit, self_signed_cert, token,
    ServerOptions, ServerProcess, BROKER_PASSWORD, BROKER_USER,
};

const BROKER_ENV: [(&str, &str); 2] = [
    ("SIGNPOST_BROKER_USER", BROKER_USER),
    ("SIGNPOST_BROKER_PASSWORD", BROKER_PASSWORD),
];

/// `signpost serve --data-dir <dir> <extra>` must exit with 2 and one stderr line that names
/// the problem (`expect`).
fn assert_refused(dir: &Path, extra: &[&str], env: &[(&str, &str)], expect: &str) {
    let dir = dir.display().to_string();
    let mut args = vec!["serve", "--data-dir", dir.as_str()];
    args.extend_from_slice(extra);
    let (status, stderr) = run_to_exit(&args, env);
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?} with {env:?}: expected exit code 2, got {status}; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} with {env:?}: expected one stderr line, got:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("signpost: error: ") && lines[0].contains(expect),
        "{args:?} with {env:?}: the reason should mention {expect:?}: {}",
        lines[0]
    );
}

fn listen_arg() -> String {
    format!("127.0.0.1:{}", free_port())
}

#[test]
fn a_listen_address_that_is_not_an_address_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    assert_refused(
        tmp.path(),
        &["--listen", "nope"],
        &BROKER_ENV,
        "--listen 'nope'",
    );
}

/// `--tls-listen` alone takes its certificate from the built-in CA (tests/builtin_https.rs);
/// half of a certificate pair is refused.
#[test]
fn a_tls_cert_without_its_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = listen_arg();
    let tls = listen_arg();
    assert_refused(
        tmp.path(),
        &[
            "--listen",
            &listen,
            "--tls-listen",
            &tls,
            "--tls-cert",
            "cert.pem",
        ],
        &BROKER_ENV,
        "--tls-key",
    );
}

#[test]
fn a_short_master_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = listen_arg();
    let env = [
        BROKER_ENV[0],
        BROKER_ENV[1],
        ("SIGNPOST_MASTER_KEY", "short"),
    ];
    assert_refused(
        tmp.path(),
        &["--listen", &listen],
        &env,
        "SIGNPOST_MASTER_KEY",
    );
    assert!(
        !tmp.path().join("master.key").exists(),
        "no key file may be written when SIGNPOST_MASTER_KEY is set"
    );
}

#[test]
fn a_broker_user_without_password_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = listen_arg();
    assert_refused(
        tmp.path(),
        &["--listen", &listen],
        &[("SIGNPOST_BROKER_USER", "someone")],
        "SIGNPOST_BROKER_PASSWORD",
    );
    assert!(
        !tmp.path().join("broker-credentials.json").exists(),
        "half-set broker variables must not fall back to generated credentials"
    );
}

#[test]
fn an_unknown_database_scheme_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let listen = listen_arg();
    assert_refused(
        tmp.path(),
        &[
            "--listen",
            &listen,
            "--database-url",
            "mysql://signpost:hunter2@localhost/signpost",
        ],
        &BROKER_ENV,
        "must start with sqlite:// or postgres://",
    );
}

#[test]
fn an_unreadable_tls_cert_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, key) = self_signed_cert(tmp.path());
    let key = key.display().to_string();
    let missing = tmp.path().join("no-such-cert.pem").display().to_string();
    let garbage = tmp.path().join("garbage.pem");
    fs::write(&garbage, "this is not PEM\n").unwrap();
    let garbage = garbage.display().to_string();
    let master = hex_key(1);
    let env = [
        BROKER_ENV[0],
        BROKER_ENV[1],
        ("SIGNPOST_MASTER_KEY", master.as_str()),
    ];
    for cert in [&missing, &garbage] {
        let data = tmp.path().join("data");
        let listen = listen_arg();
        let tls = listen_arg();
        assert_refused(
            &data,
            &[
                "--listen",
                &listen,
                "--tls-listen",
                &tls,
                "--tls-cert",
                cert,
                "--tls-key",
                &key,
            ],
            &env,
            &format!("--tls-cert {cert}"),
        );
    }
}

/// A valid master key (64 hex digits) made of one repeated byte.
fn hex_key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn first_start_generates_private_broker_credentials_and_master_key() {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory that does not exist yet.
    let data = tmp.path().join("fresh").join("data");
    let mut server = ServerProcess::start(ServerOptions::new(&data).without_broker_env()).await;

    let creds_file = data.join("broker-credentials.json");
    let key_file = data.join("master.key");
    assert_eq!(mode(&creds_file), 0o600, "broker-credentials.json mode");
    assert_eq!(mode(&key_file), 0o600, "master.key mode");
    assert_eq!(mode(&data.join("signpost.db")), 0o600, "signpost.db mode");
    assert_eq!(mode(&data), 0o700, "data directory mode");
    let creds: Value = serde_json::from_str(&fs::read_to_string(&creds_file).unwrap()).unwrap();
    assert!(!creds["user"].as_str().unwrap().is_empty());
    assert!(creds["password"].as_str().unwrap().len() >= 32);

    let stderr = server.stderr();
    assert!(
        stderr.contains(&creds_file.display().to_string()),
        "the log should name {}:\n{stderr}",
        creds_file.display()
    );
    assert!(
        stderr.contains(&key_file.display().to_string()),
        "the log should name {}:\n{stderr}",
        key_file.display()
    );
    assert!(
        !stderr.contains(creds["password"].as_str().unwrap()),
        "the broker password must not be logged:\n{stderr}"
    );

    // The generated credentials (read from the file by the helper) work ...
    let res = server
        .broker(Method::GET, "/v2/catalog")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let catalog: Value = res.json().await.unwrap();
    assert!(catalog["services"][0]["id"].is_string(), "{catalog}");
    // ... and others do not.
    let res = server
        .client
        .get(server.url("/v2/catalog"))
        .basic_auth(creds["user"].as_str().unwrap(), Some("wrong"))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    assert!(server.stop().await.success(), "{}", server.stderr());

    // A second start reuses both files.
    let key_before = fs::read_to_string(&key_file).unwrap();
    let mut server = ServerProcess::start(ServerOptions::new(&data).without_broker_env()).await;
    assert_eq!(fs::read_to_string(&key_file).unwrap(), key_before);
    assert_eq!(
        server.broker_password,
        creds["password"].as_str().unwrap(),
        "the credentials file must not be regenerated"
    );
    let res = server
        .broker(Method::GET, "/v2/catalog")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(server.stop().await.success(), "{}", server.stderr());
}

#[tokio::test]
async fn startup_logs_the_listening_line_and_sigterm_stops_with_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(ServerOptions::new(tmp.path())).await;
    let expected = format!("listening on http://127.0.0.1:{}", server.port);
    let stderr = server.stderr();
    let hits = stderr.lines().filter(|l| l.contains(&expected)).count();
    assert_eq!(hits, 1, "expected one line with {expected:?}:\n{stderr}");

    let status = server.stop().await;
    let stderr = server.stderr();
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM; stderr:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.contains("stopped")),
        "the log should say it stopped:\n{stderr}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(
        ServerOptions::new(tmp.path())
            .arg("--log-format")
            .arg("json"),
    )
    .await;
    assert!(server.stop().await.success());
    let stderr = server.stderr();
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let port = server.port.to_string();
    assert!(
        lines.iter().any(|l| l.to_string().contains(&port)),
        "a JSON line should name the port:\n{stderr}"
    );
}

fn basic_config() -> Value {
    json!({
        "init_data": {
            "instance": {
                "destinations": [{
                    "Name": "restart-basic",
                    "Type": "HTTP",
                    "URL": "https://basic.example.com/api",
                    "Authentication": "BasicAuthentication",
                    "ProxyType": "Internet",
                    "User": "alice",
                    "Password": "pa:ss-w0rd",
                }]
            }
        }
    })
}

fn assert_basic_destination(status: u16, body: &Value) {
    assert_eq!(status, 200, "{body}");
    let config = &body["destinationConfiguration"];
    assert_eq!(config["Name"], "restart-basic", "{body}");
    assert_eq!(config["User"], "alice", "{body}");
    assert_eq!(config["Password"], "pa:ss-w0rd", "{body}");
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:pa:ss-w0rd");
    assert_eq!(
        body["authTokens"][0]["http_header"]["value"],
        format!("Basic {basic}"),
        "{body}"
    );
}

#[tokio::test]
async fn a_restart_keeps_service_keys_tokens_and_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(ServerOptions::new(&data)).await;
    server
        .provision("inst-restart", "sub-restart", basic_config())
        .await;
    let key = server.bind("inst-restart", "key-restart").await;
    let access = token(&server.client, &key).await;
    let (status, body) = find(&server.client, &server.base, &access, "restart-basic").await;
    assert_basic_destination(status, &body);
    assert!(server.stop().await.success(), "{}", server.stderr());

    // Same data directory and port (the service key names it; the tokens' issuer too); the
    // master key file is read, not regenerated.
    let port = server.port;
    let mut server = ServerProcess::start(ServerOptions::new(&data).port(port)).await;
    let fresh = token(&server.client, &key).await;
    let (status, body) = find(&server.client, &server.base, &fresh, "restart-basic").await;
    assert_basic_destination(status, &body);
    // A token issued before the restart is still good (the signing key is persisted).
    let (status, body) = find(&server.client, &server.base, &access, "restart-basic").await;
    assert_basic_destination(status, &body);
    assert!(server.stop().await.success(), "{}", server.stderr());

    // A different master key cannot open this database: refused, one line, names the key.
    let dir = data.display().to_string();
    let listen = listen_arg();
    let wrong = hex_key(0xab);
    let env = [
        BROKER_ENV[0],
        BROKER_ENV[1],
        ("SIGNPOST_MASTER_KEY", wrong.as_str()),
    ];
    let (status, stderr) = run_to_exit(&["serve", "--listen", &listen, "--data-dir", &dir], &env);
    assert!(!status.success(), "a wrong master key must be refused");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line:\n{stderr}");
    assert!(
        lines[0].starts_with("signpost: error: ") && lines[0].contains("master key"),
        "the reason should mention the master key: {}",
        lines[0]
    );
}

#[tokio::test]
async fn the_https_listener_serves_token_and_find() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key_pem) = self_signed_cert(tmp.path());
    let data = tmp.path().join("data");
    let mut server = ServerProcess::start(ServerOptions::new(&data).tls(&cert, &key_pem)).await;
    let tls_port = server.tls_port.unwrap();
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!("https://127.0.0.1:{tls_port}")),
        "the startup log should name the HTTPS listener:\n{stderr}"
    );

    server
        .provision("inst-tls", "sub-tls", basic_config())
        .await;
    let key = server.bind("inst-tls", "key-tls").await;
    assert_eq!(key["uaadomain"], format!("127.0.0.1:{tls_port}"), "{key}");

    let https = https_client(&cert);
    let (status, body) = request_token(&https, &server.tls_base(), &key).await;
    assert_eq!(status, 200, "token over HTTPS: {body}");
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert!(body["expires_in"].as_u64().unwrap() > 0, "{body}");

    let (status, body) = find(&https, &server.tls_base(), &access, "restart-basic").await;
    assert_basic_destination(status, &body);
    // The same token works on the HTTP listener: one token service, two listeners.
    let (status, body) = find(&server.client, &server.base, &access, "restart-basic").await;
    assert_basic_destination(status, &body);
    let (status, _) = find(&https, &server.tls_base(), "not-a-token", "restart-basic").await;
    assert_eq!(status, 401);

    assert!(server.stop().await.success(), "{}", server.stderr());
}

/// The server limits come from `SIGNPOST_*` variables, and bad values are refused (issue 11 §4).
#[tokio::test]
async fn server_limits_come_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("SIGNPOST_HEADER_TIMEOUT_SECONDS", "0"),
        ("SIGNPOST_REQUEST_TIMEOUT_SECONDS", "0"),
        ("SIGNPOST_MAX_CONNECTIONS", "0"),
    ] {
        let listen = listen_arg();
        let mut env = BROKER_ENV.to_vec();
        env.push((key, value));
        assert_refused(tmp.path(), &["--listen", &listen], &env, key);
    }
    let mut server = ServerProcess::start(
        ServerOptions::new(tmp.path())
            .env("SIGNPOST_HEADER_TIMEOUT_SECONDS", "1")
            .env("SIGNPOST_RATE_LIMIT", "1"),
    )
    .await;
    // A client sending its headers a line at a time is cut off.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let cut = signpost_test_utils::slow::trickle(
        tcp,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"X-Slow: yes\r\n",
        150,
        std::time::Duration::from_millis(200),
    )
    .await;
    assert!(cut.closed && cut.pieces_sent < 150, "{cut:?}");
    // One bearer token at a rate of more than 1 a second is refused with 429.
    let mut limited = None;
    for _ in 0..50 {
        let res = server
            .client
            .get(format!(
                "{}/destination-configuration/v1/subaccountDestinations",
                server.base
            ))
            .bearer_auth("one-made-up-token")
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status(), 401);
    }
    let res = limited.expect("never limited");
    assert!(res.headers().contains_key("retry-after"));
    assert!(server.stop().await.success(), "{}", server.stderr());
}

/// SIGTERM lets a request whose body is still arriving finish (the graceful shutdown waits for
/// the request a connection is on) before the process exits with 0.
#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tmp = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(ServerOptions::new(tmp.path())).await;

    // A provisioning request whose body is half sent when SIGTERM arrives.
    let body = server
        .provision_body("sa-drain", json!({}))
        .await
        .to_string();
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", server.broker_user, server.broker_password));
    let head = format!(
        "PUT /v2/service_instances/in-flight HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Basic {basic}\r\nX-Broker-API-Version: 2.17\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    tcp.write_all(format!("{head}{first}").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let finish = async {
        // SIGTERM is on its way (the other half of the join): the rest comes a little later.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        tcp.write_all(rest.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    };
    let (status, answer) = tokio::join!(server.stop(), finish);
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight must be answered: {answer}\n{}",
        server.stderr()
    );
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}
