//! The Destinations editor end to end: the real binary, started as the README says (first run,
//! default service key), with an HTTPS listener whose certificate comes from a test CA made by
//! openssl; `e2e/editor/editor.test.mjs` drives Debian's chromium through playwright-core
//! (pinned in `e2e/editor/package.json`) over every view: sign-in by key file and by broker
//! credentials, create/edit/clone/delete, a field error, a 412 from a concurrent change, check
//! connection (trusted, untrusted, closed port), certificates (PEM chain, PKCS#12 with password,
//! generate, details, delete, 409 in use), fragments, import and export, keyboard, 390 px, dark,
//! and the token's renewal (the page's clock brought forward).
//! Afterwards the server's log must hold none of the secrets the browser handled.
//!
//! Screenshots of each view go to `e2e/editor/test-output/`; with
//! `SIGNPOST_EDITOR_DOCS_IMAGES=1` the main ones are copied to `docs/images/` as well.
//! Needs Node.js 20+, npm and chromium (`CHROMIUM` names another binary); `e2e/test` installs them.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use signpost_test_utils::{npm, pki};
use support::{free_port, ServerOptions, ServerProcess};

const P12_PASSWORD: &str = "editor-p12-password";
/// The views whose screenshots the README shows.
const DOCS_IMAGES: [&str; 5] = [
    "destinations",
    "edit-destination",
    "check-connection",
    "certificates",
    "certificate-details",
];

fn chromium() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&bin).exists(),
        "{bin} not found: the editor's browser test needs Debian's chromium \
         (apt-get install chromium, or CHROMIUM=<binary>); e2e/test installs it"
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_editor_in_a_real_browser() {
    let browser = chromium();
    let dir = npm::e2e_dir("editor");
    npm::ensure_installed(&dir, "the editor's browser test");

    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let (ca, server_cert, server_key, p12) = pki::mtls_material(P12_PASSWORD);
    fs::write(work.join("server.pem"), &server_cert).unwrap();
    fs::write(work.join("server.key"), &server_key).unwrap();
    // The listener's certificate and its CA: the PEM chain the browser uploads as a trust store.
    fs::write(work.join("chain.pem"), format!("{server_cert}{ca}")).unwrap();
    fs::write(
        work.join("bundle.p12"),
        base64::engine::general_purpose::STANDARD
            .decode(&p12)
            .unwrap(),
    )
    .unwrap();
    // A destination as SAP's cockpit exports it (Java properties, escaped colons).
    fs::write(
        work.join("cockpit-export.properties"),
        "#\n#Tue Dec 01 10:00:00 UTC 2026\nName=cockpit-export\nType=HTTP\n\
         URL=https\\://cockpit.example.com/api\nAuthentication=OAuth2ClientCredentials\n\
         ProxyType=Internet\nclientId=cockpit-client\nclientSecret=from-the-cockpit\n\
         tokenServiceURL=https\\://cockpit.example.com/oauth/token\n",
    )
    .unwrap();

    let data = work.join("data");
    let server = ServerProcess::start(
        ServerOptions::new(&data)
            .tls(&work.join("server.pem"), &work.join("server.key"))
            // The check targets are on loopback.
            .env("SIGNPOST_ALLOW_PRIVATE_NETWORKS", "true"),
    )
    .await;
    let key_file = data.join("default-service-key.json");
    let key: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&key_file).unwrap()).unwrap();

    let out_dir = dir.join("test-output");
    let _ = fs::remove_dir_all(&out_dir);
    let run = Command::new("node")
        .arg("editor.test.mjs")
        .current_dir(&dir)
        .env("CHROMIUM", &browser)
        .env("EDITOR_URL", server.url("/"))
        .env("SERVICE_KEY_FILE", &key_file)
        .env("BROKER_USER", &server.broker_user)
        .env("BROKER_PASSWORD", &server.broker_password)
        .env("HTTPS_URL", format!("{}/healthz", server.tls_base()))
        .env("CLOSED_URL", format!("http://127.0.0.1:{}/", free_port()))
        .env("CHAIN_PEM", work.join("chain.pem"))
        .env("P12_FILE", work.join("bundle.p12"))
        .env("P12_PASSWORD", P12_PASSWORD)
        .env("IMPORT_FILE", work.join("cockpit-export.properties"))
        .env("OUT_DIR", &out_dir)
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    println!("{stdout}");
    assert!(
        run.status.success(),
        "the browser test failed ({}); screenshots in {}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log:\n{}",
        run.status,
        out_dir.display(),
        server.stderr()
    );

    // The server's log holds none of what the browser handled as a secret.
    let log = format!("{}{}", server.stderr(), server.stdout());
    for secret in [
        key["clientsecret"].as_str().unwrap(),
        server.broker_password.as_str(),
        P12_PASSWORD,
        "editor-basic-secret",
        "from-the-cockpit",
        "Bearer ey",
    ] {
        assert!(
            !log.contains(secret),
            "the server logged a secret: {secret}"
        );
    }
    // (stdout holds the first-run help, whose curl example names the header.)
    for line in server.stderr().lines() {
        assert!(
            !line.to_ascii_lowercase().contains("authorization:"),
            "the server logged an Authorization header: {line}"
        );
    }

    for view in DOCS_IMAGES {
        assert!(
            out_dir.join(format!("{view}.png")).exists(),
            "no screenshot of {view}"
        );
    }
    if std::env::var_os("SIGNPOST_EDITOR_DOCS_IMAGES").is_some() {
        let docs = support::workspace_root().join("docs/images");
        fs::create_dir_all(&docs).unwrap();
        for view in DOCS_IMAGES {
            fs::copy(
                out_dir.join(format!("{view}.png")),
                docs.join(format!("editor-{view}.png")),
            )
            .unwrap();
        }
    }
}
