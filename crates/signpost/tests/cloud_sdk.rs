//! End to end with SAP's own, unmodified client: `@sap-cloud-sdk/connectivity` (pinned in
//! `e2e/cloud-sdk/package.json`) runs `e2e/cloud-sdk/resolve.mjs` against the real binary, over
//! HTTP and over HTTPS. Needs Node.js 20+ and npm; `npm ci` runs once if `node_modules` is
//! missing.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use support::{self_signed_cert, ServerOptions, ServerProcess};

const SUB_NOAUTH: &str = "sdk-sub-noauth";
const INST_BASIC: &str = "sdk-inst-basic";
const MISSING: &str = "sdk-does-not-exist";
const BASIC_USER: &str = "sdk-user";
const BASIC_PASSWORD: &str = "sdk:pässword";

fn e2e_dir() -> PathBuf {
    support::workspace_root().join("e2e").join("cloud-sdk")
}

/// Fails (does not skip) when a tool is missing.
fn require(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "`{tool}` is needed for the SAP Cloud SDK end-to-end test ({e}); install Node.js 20+ \
             and npm, or leave this test out with `--skip cloud_sdk`"
        ),
    }
}

/// Makes sure `e2e/cloud-sdk/node_modules` holds the SDK: `npm ci` under a lock file, so test
/// processes running in parallel install once.
fn ensure_node_modules() {
    require("node");
    let dir = e2e_dir();
    let installed = || {
        dir.join("node_modules/@sap-cloud-sdk/connectivity/package.json")
            .exists()
    };
    if installed() {
        return;
    }
    require("npm");
    let lock = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cloud-sdk-npm-ci.lock");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                assert!(
                    Instant::now() < deadline,
                    "waited too long for another `npm ci`; remove {} if it is stale",
                    lock.display()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot create {}: {e}", lock.display()),
        }
    }
    let result = if installed() {
        Ok(())
    } else {
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())
            .and_then(|out| {
                if out.status.success() {
                    Ok(())
                } else {
                    Err(format!(
                        "{}\n{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ))
                }
            })
    };
    let _ = fs::remove_file(&lock);
    if let Err(e) = result {
        panic!("`npm ci` in {} failed: {e}", dir.display());
    }
    assert!(
        installed(),
        "`npm ci` did not install @sap-cloud-sdk/connectivity"
    );
}

fn configuration() -> Value {
    json!({
        "init_data": {
            "subaccount": {
                "destinations": [{
                    "Name": SUB_NOAUTH,
                    "Type": "HTTP",
                    "URL": "https://noauth.example.com/path",
                    "Authentication": "NoAuthentication",
                    "ProxyType": "Internet",
                    "Description": "subaccount level, no authentication",
                }]
            },
            "instance": {
                "destinations": [{
                    "Name": INST_BASIC,
                    "Type": "HTTP",
                    "URL": "https://basic.example.com/api",
                    "Authentication": "BasicAuthentication",
                    "ProxyType": "Internet",
                    "User": BASIC_USER,
                    "Password": BASIC_PASSWORD,
                }]
            }
        }
    })
}

/// Runs `node resolve.mjs` with a service key; returns its stdout JSON (exit code 0 required).
fn resolve(key: &Value, work: &Path, ca: Option<&Path>) -> Value {
    let key_file = work.join("service-key.json");
    fs::write(&key_file, serde_json::to_vec_pretty(key).unwrap()).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg("resolve.mjs")
        .current_dir(e2e_dir())
        .env("SIGNPOST_SERVICE_KEY", &key_file)
        .env(
            "SIGNPOST_DESTINATIONS",
            format!("{SUB_NOAUTH},{INST_BASIC},{MISSING}"),
        )
        .env_remove("SAP_CLOUD_SDK_LOG_LEVEL")
        .env_remove("VCAP_SERVICES")
        .env_remove("destinations")
        .stdin(Stdio::null());
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    match ca {
        Some(ca) => cmd.env("NODE_EXTRA_CA_CERTS", ca),
        None => cmd.env_remove("NODE_EXTRA_CA_CERTS"),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "resolve.mjs exited with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("resolve.mjs stdout is not JSON ({e}):\n{stdout}\nstderr:\n{stderr}")
    })
}

fn assert_resolved(result: &Value) {
    assert_eq!(result["errors"], json!([]), "{result:#}");
    let dests = &result["destinations"];

    let noauth = &dests[SUB_NOAUTH];
    assert_eq!(noauth["name"], SUB_NOAUTH, "{result:#}");
    assert_eq!(
        noauth["url"], "https://noauth.example.com/path",
        "{result:#}"
    );
    assert_eq!(noauth["authentication"], "NoAuthentication", "{result:#}");
    assert!(
        noauth["targetHeaders"].get("authorization").is_none(),
        "no authorization header for NoAuthentication: {result:#}"
    );

    let basic = &dests[INST_BASIC];
    assert_eq!(basic["name"], INST_BASIC, "{result:#}");
    assert_eq!(basic["url"], "https://basic.example.com/api", "{result:#}");
    assert_eq!(basic["authentication"], "BasicAuthentication", "{result:#}");
    assert_eq!(basic["username"], BASIC_USER, "{result:#}");
    assert_eq!(basic["password"], BASIC_PASSWORD, "{result:#}");
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
    );
    assert_eq!(
        basic["targetHeaders"]["authorization"], expected,
        "{result:#}"
    );

    // A missing name is "no destination", not an error.
    assert!(
        dests.get(MISSING).is_some_and(Value::is_null),
        "{MISSING} should resolve to null: {result:#}"
    );

    // The list call sees both levels: instance destinations first, then subaccount ones.
    let all = result["all"].as_array().unwrap();
    let names: Vec<&str> = all.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, [INST_BASIC, SUB_NOAUTH], "{result:#}");
    assert_eq!(
        all[0]["authentication"], "BasicAuthentication",
        "{result:#}"
    );
    assert_eq!(all[1]["authentication"], "NoAuthentication", "{result:#}");
    assert_eq!(
        all[1]["url"], "https://noauth.example.com/path",
        "{result:#}"
    );
}

#[tokio::test]
async fn sap_cloud_sdk_resolves_destinations_over_http() {
    ensure_node_modules();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(ServerOptions::new(&tmp.path().join("data"))).await;
    server
        .provision("sdk-instance", "sdk-subaccount", configuration())
        .await;
    let key = server.bind("sdk-instance", "sdk-key").await;
    assert_eq!(key["url"], server.base, "{key}");

    let result = resolve(&key, tmp.path(), None);
    assert_resolved(&result);
    assert!(server.stop().await.success(), "{}", server.stderr());
}

#[tokio::test]
async fn sap_cloud_sdk_resolves_destinations_over_https() {
    ensure_node_modules();
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key_pem) = self_signed_cert(tmp.path());
    let mut server =
        ServerProcess::start(ServerOptions::new(&tmp.path().join("data")).tls(&cert, &key_pem))
            .await;
    server
        .provision("sdk-instance", "sdk-subaccount", configuration())
        .await;
    let mut key = server.bind("sdk-instance", "sdk-key").await;
    // Point the client at the HTTPS listener only.
    key["url"] = json!(server.tls_base());
    key["uri"] = json!(server.tls_base());
    assert_eq!(
        key["uaadomain"],
        format!("127.0.0.1:{}", server.tls_port.unwrap()),
        "{key}"
    );

    let result = resolve(&key, tmp.path(), Some(&cert));
    assert_resolved(&result);
    assert!(server.stop().await.success(), "{}", server.stderr());
}
