//! End to end with SAP's own client for Python: the SAP Cloud SDK for Python (`sap-cloud-sdk`,
//! pinned in `e2e/python-sdk/requirements.txt`, in the virtual environment
//! `e2e/python-sdk/.venv` that `e2e/test` makes) runs `e2e/python-sdk/scenario.py` against a
//! server started with `--tls-listen` alone (issue 18): the service key in the SDK's own
//! environment variables, the built-in CA trusted through `SSL_CERT_FILE`/`REQUESTS_CA_BUNDLE`.
//! It reads a destination, drives the label calls on a destination, a fragment and a
//! certificate, and lists each kind filtered by label. Without the CA trusted it must refuse
//! the server, which proves that it checked the certificate.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::{workspace_root, ServerOptions, ServerProcess};

const DEST: &str = "py-dest";
const FRAGMENT: &str = "py-fragment";
const CERT: &str = "py-cert.pem";

fn sdk_dir() -> PathBuf {
    workspace_root().join("e2e/python-sdk")
}

/// The venv's Python with the pinned `sap-cloud-sdk`; a missing or other version fails the test
/// with what to run (it is never skipped).
fn python() -> PathBuf {
    let python = sdk_dir().join(".venv/bin/python");
    let requirements = std::fs::read_to_string(sdk_dir().join("requirements.txt")).unwrap();
    let pinned = requirements
        .lines()
        .find_map(|l| l.strip_prefix("sap-cloud-sdk=="))
        .expect("requirements.txt pins sap-cloud-sdk")
        .trim()
        .to_owned();
    let version = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('sap-cloud-sdk'))",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(
        version,
        pinned,
        "sap-cloud-sdk {pinned} is not in {}: run e2e/test, which makes that virtual environment \
         (or: python3 -m venv e2e/python-sdk/.venv && e2e/python-sdk/.venv/bin/pip install -r \
         e2e/python-sdk/requirements.txt)",
        python.display()
    );
    python
}

/// Runs the scenario with the service key in `CLOUD_SDK_CFG_DESTINATION_DEFAULT_*` and `ca`
/// (when given) as the trusted roots; its JSON and whether it exited with 0.
fn scenario(key: &Value, ca: Option<&Path>) -> (Value, bool) {
    let mut cmd = Command::new(python());
    cmd.arg("scenario.py")
        .current_dir(sdk_dir())
        .env("SIGNPOST_SDK_DESTINATION", DEST)
        .env("SIGNPOST_SDK_FRAGMENT", FRAGMENT)
        .env("SIGNPOST_SDK_CERTIFICATE", CERT)
        .env_remove("SERVICE_BINDING_ROOT")
        .env_remove("SSL_CERT_FILE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("APPFND_CONHOS_TRANSP_PROXY")
        .stdin(Stdio::null());
    support::without_proxies(&mut cmd).env("NO_PROXY", "*");
    for field in ["clientid", "clientsecret", "url", "uri", "identityzone"] {
        let value = key[field]
            .as_str()
            .unwrap_or_else(|| panic!("the key has no {field}: {key}"));
        cmd.env(
            format!("CLOUD_SDK_CFG_DESTINATION_DEFAULT_{}", field.to_uppercase()),
            value,
        );
    }
    if let Some(ca) = ca {
        cmd.env("SSL_CERT_FILE", ca).env("REQUESTS_CA_BUNDLE", ca);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "scenario.py printed no JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.success())
}

#[tokio::test(flavor = "multi_thread")]
async fn sap_cloud_sdk_for_python_reads_destinations_and_labels_over_the_built_in_https() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server =
        ServerProcess::start(ServerOptions::new(&tmp.path().join("data")).builtin_tls()).await;
    let cert = json!({"Name": CERT, "Type": "PEM", "Content": signpost_test_utils::pki::cert_content("python-sdk")});
    let other_cert = json!({"Name": "py-other.pem", "Type": "PEM", "Content": signpost_test_utils::pki::cert_content("python-sdk-2")});
    server
        .provision(
            "py-instance",
            "py-subaccount",
            json!({"init_data": {"subaccount": {
                "destinations": [
                    {"Name": DEST, "Type": "HTTP", "URL": "https://backend.example.org/api", "Authentication": "NoAuthentication", "ProxyType": "Internet"},
                    {"Name": "py-other", "Type": "HTTP", "URL": "https://other.example.org", "Authentication": "NoAuthentication", "ProxyType": "Internet"}
                ],
                "certificates": [cert, other_cert]
            }}}),
        )
        .await;
    let key = server.bind("py-instance", "py-key").await;
    let https = support::https_client(&server.ca_file());
    let token = support::token(&https, &key).await;
    for name in [FRAGMENT, "py-other-fragment"] {
        let res = https
            .post(format!(
                "{}/destination-configuration/v1/subaccountDestinationFragments",
                server.tls_base()
            ))
            .bearer_auth(&token)
            .json(&json!({"FragmentName": name, "URL": "https://fragment.example.org"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // With --tls-listen alone the key carries the HTTPS listener's URLs: the SDK accepts no other.
    assert_eq!(key["url"], server.tls_base(), "{key}");
    assert_eq!(key["uri"], server.tls_base(), "{key}");

    // Without the CA trusted the SDK refuses the server: it does check the certificate.
    let (result, ok) = scenario(&key, None);
    assert!(!ok, "the SDK trusted an unknown CA: {result:#}");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("CERTIFICATE_VERIFY_FAILED") || error.contains("certificate verify failed"),
        "{result:#}"
    );

    let (result, ok) = scenario(&key, Some(&server.ca_file()));
    assert!(ok, "scenario.py failed: {result:#}");
    assert_eq!(
        result["read"],
        json!({"name": DEST, "url": "https://backend.example.org/api", "authentication": "NoAuthentication"})
    );
    assert_eq!(
        result["consumed"],
        json!({"name": DEST, "url": "https://backend.example.org/api"})
    );
    assert_eq!(result["missing"], true);
    for kind in ["destination", "fragment", "certificate"] {
        let steps = &result[kind];
        assert_eq!(
            steps["after_update"],
            json!([{"key": "env", "values": ["prod", "eu"]}, {"key": "team", "values": ["payments"]}]),
            "{kind}: {result:#}"
        );
        assert_eq!(
            steps["after_add"],
            json!([{"key": "env", "values": ["prod", "eu", "us"]}, {"key": "team", "values": ["payments"]}, {"key": "tier", "values": ["gold"]}]),
            "{kind}: {result:#}"
        );
        assert_eq!(
            steps["after_delete"],
            json!([{"key": "env", "values": ["prod", "us"]}, {"key": "team", "values": ["payments"]}]),
            "{kind}: {result:#}"
        );
    }
    // Listed by label: only the labelled entity of each kind.
    assert_eq!(
        result["filtered"],
        json!({"destinations": [DEST], "fragments": [FRAGMENT], "certificates": [CERT]}),
        "{result:#}"
    );
    // What the SDK wrote is what the server holds.
    let res = https
        .get(format!(
            "{}/destination-configuration/v1/subaccountCertificates/{CERT}/labels",
            server.tls_base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!([{"key": "env", "values": ["prod", "us"]}, {"key": "team", "values": ["payments"]}])
    );
    assert!(server.stop().await.success(), "{}", server.stderr());
}
