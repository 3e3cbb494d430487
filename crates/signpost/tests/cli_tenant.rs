//! `signpost dest`, `fragment` and `cert` against a real server on loopback.
#![allow(clippy::unwrap_used)]

mod cli_common;
mod support;

use cli_common::Cli;
use serde_json::{json, Value};
use support::{free_port, ServerOptions, ServerProcess};
use tempfile::TempDir;

struct Tenant {
    _dir: TempDir,
    server: ServerProcess,
    cli: Cli,
    key: Value,
    key_file: String,
}

/// A server with instance `inst` in subaccount `sub`, a key, and a CLI logged in with it.
async fn tenant() -> Tenant {
    let dir = TempDir::new().unwrap();
    let server = ServerProcess::start(ServerOptions::new(&dir.path().join("data"))).await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key1").await;
    let cli = Cli::new();
    let key_file = cli.file("key.json", &serde_json::to_string_pretty(&key).unwrap());
    cli.run(&["login", "--service-key", &key_file]).ok();
    Tenant {
        _dir: dir,
        server,
        cli,
        key,
        key_file,
    }
}

/// The raw body of a GET with the key's token.
async fn api_get(t: &Tenant, path: &str) -> String {
    let token = support::token(&t.server.client, &t.key).await;
    let res = t
        .server
        .client
        .get(t.server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.text().await.unwrap()
}

const BACKEND: &str = r#"{"Name": "backend", "Type": "HTTP", "URL": "https://backend.example.org",
  "Authentication": "BasicAuthentication", "ProxyType": "Internet", "User": "alice", "Password": "s3cret"}"#;

#[tokio::test(flavor = "multi_thread")]
async fn destinations_crud_find_and_output_formats() {
    let t = tenant().await;
    let cli = &t.cli;
    let file = cli.file("backend.json", BACKEND);
    let out = cli.run(&["dest", "create", "-f", &file]);
    out.ok();
    assert!(
        out.stderr
            .contains("destination 'backend' created on subaccount level"),
        "{}",
        out.stderr
    );
    cli.run(&["dest", "create", "-f", &file])
        .fails(1, "HTTP 409");

    // Table with masked secrets; --show-secrets shows them.
    let list = cli.run(&["dest", "list"]);
    assert!(
        list.ok().starts_with("NAME     TYPE  URL"),
        "{}",
        list.stdout
    );
    assert!(list
        .stdout
        .contains("backend  HTTP  https://backend.example.org  BasicAuthentication  Internet"));
    let get = cli.run(&["dest", "get", "backend"]);
    assert!(
        get.ok().contains("Password        ********"),
        "{}",
        get.stdout
    );
    assert!(!get.stdout.contains("s3cret"));
    assert!(cli
        .run(&["dest", "get", "backend", "--show-secrets"])
        .ok()
        .contains("s3cret"));

    // -o json is exactly the API's JSON.
    let raw = api_get(
        &t,
        "/destination-configuration/v1/subaccountDestinations/backend",
    )
    .await;
    assert_eq!(
        cli.run(&["dest", "get", "backend", "-o", "json"])
            .ok()
            .trim_end(),
        raw
    );
    let yaml: Value =
        serde_norway_free_yaml(cli.run(&["dest", "get", "backend", "-o", "yaml"]).ok());
    assert_eq!(yaml["URL"], "https://backend.example.org");
    let listed = cli.run(&["dest", "list", "-o", "json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // find: table masks the token; -o json is exactly the API's answer.
    let find = cli.run(&["dest", "find", "backend"]);
    assert!(
        find.ok().contains("Found on subaccount sub level"),
        "{}",
        find.stdout
    );
    assert!(
        find.stdout
            .lines()
            .any(|l| l.starts_with("Basic ") && l.contains("********")),
        "{}",
        find.stdout
    );
    let raw = api_get(&t, "/destination-configuration/v1/destinations/backend").await;
    assert_eq!(
        cli.run(&["dest", "find", "backend", "-o", "json"])
            .ok()
            .trim_end(),
        raw
    );
    cli.run(&["dest", "find", "nope"]).fails(
        1,
        "Configuration with the specified name was not found (HTTP 404)",
    );

    // Update from YAML; instance level from SAP cockpit's properties export; find with a fragment.
    let yaml = cli.file(
        "backend.yaml",
        "Name: backend\nType: HTTP\nURL: https://v2.example.org\nAuthentication: NoAuthentication\nProxyType: Internet\n",
    );
    cli.run(&["dest", "update", "-f", &yaml]).ok();
    let props = cli.file(
        "cockpit",
        "#\n#Mon Mar 04 10:00:00 UTC 2024\nDescription=from the cockpit\nType=HTTP\nURL=https\\://inst.example.org\\:8443\nName=backend\nProxyType=Internet\nAuthentication=NoAuthentication\n",
    );
    cli.run(&["dest", "create", "-f", &props, "--level", "instance"])
        .ok();
    cli.file(
        "frag.json",
        r#"{"FragmentName": "f1", "URL": "https://fragment.example.org"}"#,
    );
    cli.run(&[
        "fragment",
        "create",
        "-f",
        "frag.json",
        "--level",
        "instance",
    ])
    .ok();
    let found = cli.run(&["dest", "find", "backend", "-o", "json"]).json();
    assert_eq!(
        found["destinationConfiguration"]["URL"],
        "https://inst.example.org:8443"
    );
    assert_eq!(found["owner"]["InstanceId"], "inst");
    let merged = cli
        .run(&["dest", "find", "backend", "--fragment", "f1", "-o", "json"])
        .json();
    assert_eq!(
        merged["destinationConfiguration"]["URL"],
        "https://fragment.example.org"
    );
    assert_eq!(merged["destinationConfiguration"]["FragmentName"], "f1");
    cli.run(&["dest", "find", "backend", "--fragment", "nope"])
        .fails(1, "HTTP 404");

    // Arrays are bulk writes; a failed item is reported and exits 1.
    let many = cli.file(
        "many.json",
        r#"[{"Name": "a", "Type": "HTTP", "URL": "https://a.example.org", "Authentication": "NoAuthentication", "ProxyType": "Internet"},
            {"Name": "backend", "Type": "HTTP", "URL": "https://b.example.org", "Authentication": "NoAuthentication", "ProxyType": "Internet"}]"#,
    );
    cli.run(&["dest", "create", "-f", &many])
        .fails(1, "1 destination(s) failed:\n  backend:");
    cli.run(&["dest", "get", "a"]).ok();

    cli.run(&["dest", "delete", "a"]).ok();
    cli.run(&["dest", "get", "a"]).fails(1, "HTTP 404");
    cli.run(&["dest", "delete", "a"]).fails(1, "HTTP 404");
}

/// YAML through the CLI's own output parsed back as JSON values (no YAML parser in the tests).
fn serde_norway_free_yaml(text: &str) -> Value {
    let mut map = serde_json::Map::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(": ") {
            map.insert(k.to_owned(), Value::String(v.to_owned()));
        }
    }
    Value::Object(map)
}

#[tokio::test(flavor = "multi_thread")]
async fn fragments_crud() {
    let t = tenant().await;
    let cli = &t.cli;
    cli.file(
        "f.json",
        r#"{"FragmentName": "eu10", "URL": "https://eu10.example.org", "clientSecret": "x"}"#,
    );
    cli.run(&["fragment", "create", "-f", "f.json"]).ok();
    assert!(cli.run(&["fragment", "list"]).ok().contains("eu10"));
    let get = cli.run(&["fragment", "get", "eu10"]);
    assert!(
        get.ok().contains("clientSecret  ********"),
        "{}",
        get.stdout
    );
    let raw = api_get(
        &t,
        "/destination-configuration/v1/subaccountDestinationFragments/eu10",
    )
    .await;
    assert_eq!(
        cli.run(&["fragment", "get", "eu10", "-o", "json"])
            .ok()
            .trim_end(),
        raw
    );
    cli.file(
        "f2.json",
        r#"{"FragmentName": "eu10", "URL": "https://new.example.org"}"#,
    );
    cli.run(&["fragment", "update", "-f", "f2.json"]).ok();
    assert_eq!(
        cli.run(&["fragment", "get", "eu10", "-o", "json"]).json()["URL"],
        "https://new.example.org"
    );
    cli.run(&["fragment", "delete", "eu10"]).ok();
    cli.run(&["fragment", "get", "eu10"]).fails(1, "HTTP 404");
    assert_eq!(
        cli.run(&["fragment", "list", "-o", "json"]).json(),
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_generate_upload_show_list_delete() {
    let t = tenant().await;
    let cli = &t.cli;
    let out = cli.run(&[
        "cert",
        "generate",
        "client.pem",
        "--cn",
        "my-app",
        "--validity",
        "30d",
        "--auto-renew",
    ]);
    out.ok();
    assert!(out
        .stderr
        .contains("certificate 'client.pem' generated on subaccount level"));
    cli.run(&["cert", "generate", "x.p12", "--cn", "x", "--type", "p12"])
        .fails(1, "HTTP 400");
    cli.run(&[
        "cert",
        "generate",
        "x.p12",
        "--cn",
        "x",
        "--type",
        "p12",
        "--password",
        "pw",
        "--validity",
        "1y",
    ])
    .ok();
    cli.run(&["cert", "generate", "y", "--cn", "y", "--validity", "soon"])
        .fails(2, "not a duration");

    // show: -o json is exactly the details view.
    let raw = api_get(&t, "/signpost/v1/certificates/subaccount/client.pem").await;
    assert_eq!(
        cli.run(&["cert", "show", "client.pem", "-o", "json"])
            .ok()
            .trim_end(),
        raw
    );
    let show = cli.run(&["cert", "show", "client.pem"]);
    assert!(
        show.ok().contains("automaticRenewal  true"),
        "{}",
        show.stdout
    );
    assert!(show.stdout.contains("CN=my-app"), "{}", show.stdout);

    // Upload a PEM made by openssl under another name, on instance level.
    let (pem, _) = support::self_signed_cert(cli.work.path());
    cli.run(&[
        "cert",
        "upload",
        pem.to_str().unwrap(),
        "--name",
        "server.pem",
        "--level",
        "instance",
    ])
    .ok();
    let details = cli
        .run(&[
            "cert",
            "show",
            "server.pem",
            "--level",
            "instance",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(details["origin"], "uploaded");
    let broken = cli.file(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    cli.run(&["cert", "upload", &broken]).fails(1, "HTTP 400");
    cli.run(&["cert", "upload", "missing.pem"])
        .fails(2, "cannot read missing.pem");

    // list, with the expiry filter.
    let list = cli.run(&["cert", "list"]);
    assert!(list.ok().contains("client.pem"), "{}", list.stdout);
    assert!(list.stdout.contains("x.p12"));
    let soon = cli
        .run(&["cert", "list", "--expiring-within", "60d", "-o", "json"])
        .json();
    let names: Vec<&str> = soon
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["client.pem"]);
    let instance = cli
        .run(&[
            "cert",
            "list",
            "--level",
            "instance",
            "--expiring-within",
            "7",
            "-o",
            "json",
        ])
        .json();
    assert_eq!(instance[0]["name"], "server.pem");
    cli.run(&["cert", "list", "--expiring-within", "1y"])
        .fails(2, "takes days");

    cli.run(&["cert", "delete", "client.pem"]).ok();
    cli.run(&["cert", "show", "client.pem"])
        .fails(1, "HTTP 404");
    cli.run(&["cert", "delete", "client.pem"])
        .fails(1, "cannot delete certificate 'client.pem'");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_verbs_report_bad_input() {
    let t = tenant().await;
    let fresh = Cli::new();
    fresh.run(&["dest", "list"]).fails(
        1,
        "not logged in to a tenant: run `signpost login --service-key FILE` or pass --service-key FILE",
    );
    // --service-key on any call.
    fresh
        .run(&["dest", "list", "--service-key", &t.key_file])
        .ok();

    // A wrong secret.
    let mut wrong = t.key.clone();
    wrong["clientsecret"] = json!("wrong");
    let wrong = fresh.file("wrong.json", &wrong.to_string());
    fresh
        .run(&["login", "--service-key", &wrong])
        .fails(1, "the service key was refused: Bad client credentials");
    fresh
        .run(&["dest", "list", "--service-key", &wrong])
        .fails(1, "Bad client credentials");
    let not_key = fresh.file("not-key.json", r#"{"hello": 1}"#);
    fresh
        .run(&["login", "--service-key", &not_key])
        .fails(2, "not a service key");
    fresh
        .run(&["login", "--service-key", "nope.json"])
        .fails(2, "cannot read the service key");

    // Malformed entity files.
    let cli = &t.cli;
    let broken = cli.file("broken.json", "{\"Name\": ");
    cli.run(&["dest", "create", "-f", &broken])
        .fails(2, "broken.json: not valid JSON");
    let junk = cli.file("junk.txt", "# nothing\n");
    cli.run(&["dest", "create", "-f", &junk])
        .fails(2, "not JSON, YAML or a properties file");
    let bad = cli.file("bad.json", r#"{"Name": "x", "URL": "https://x"}"#);
    cli.run(&["dest", "create", "-f", &bad])
        .fails(1, "HTTP 400");
    cli.run(&["dest", "list", "--level", "tenant"])
        .fails(2, "invalid value 'tenant'");

    // A server that is not there.
    let mut gone = t.key.clone();
    let base = format!("http://127.0.0.1:{}", free_port());
    gone["url"] = json!(base);
    gone["uri"] = json!(base);
    let gone = cli.file("gone.json", &gone.to_string());
    cli.run(&["dest", "list", "--service-key", &gone])
        .fails(1, &format!("cannot reach the token service at {base}"));
}

/// `signpost dest check`: a checklist of the steps, exit code 1 when one fails, `-o json` the
/// API's report.
#[tokio::test(flavor = "multi_thread")]
async fn dest_check_prints_the_steps_and_fails_with_them() {
    let dir = TempDir::new().unwrap();
    let server = ServerProcess::start(
        ServerOptions::new(&dir.path().join("data")).arg("--allow-private-networks"),
    )
    .await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key1").await;
    let cli = Cli::new();
    let key_file = cli.file("key.json", &serde_json::to_string_pretty(&key).unwrap());
    cli.run(&["login", "--service-key", &key_file]).ok();
    let dests = json!([
        {"Name": "self", "Type": "HTTP", "URL": server.url("/healthz"), "ProxyType": "Internet", "Authentication": "NoAuthentication"},
        {"Name": "closed", "Type": "HTTP", "URL": format!("http://127.0.0.1:{}/", free_port()), "ProxyType": "Internet", "Authentication": "NoAuthentication"},
    ]);
    let file = cli.file("dests.json", &dests.to_string());
    cli.run(&["dest", "create", "-f", &file]).ok();

    let out = cli.run(&["dest", "check", "self"]);
    let text = out.ok();
    assert!(text.contains("Check of self (subaccount level)"), "{text}");
    for step in ["token", "dns", "tcp", "http"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(step)),
            "{step}: {text}"
        );
    }
    assert!(text.contains("HEAD 200"), "{text}");

    let out = cli.run(&["dest", "check", "closed"]);
    assert!(out.stdout.contains("FAILED"), "{}", out.stdout);
    out.fails(1, "the check of 'closed' failed");
    let json_out = cli.run(&["dest", "check", "closed", "-o", "json"]);
    let report: Value = serde_json::from_str(json_out.stdout.trim()).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["steps"][2]["step"], "tcp");
    assert_eq!(report["steps"][2]["ok"], false);
    cli.run(&["dest", "check", "ghost"]).fails(1, "404");
}
