//! `signpost login`, `instance` and `key` against a real server on loopback.
#![allow(clippy::unwrap_used)]

mod cli_common;
mod support;

use cli_common::{mode, Cli};
use support::{free_port, ServerOptions, ServerProcess, BROKER_PASSWORD, BROKER_USER};
use tempfile::TempDir;

async fn server() -> (TempDir, ServerProcess) {
    let dir = TempDir::new().unwrap();
    let server = ServerProcess::start(ServerOptions::new(&dir.path().join("data"))).await;
    (dir, server)
}

fn login(cli: &Cli, server: &ServerProcess) {
    cli.run(&[
        "login",
        &server.base,
        "--broker-user",
        BROKER_USER,
        "--broker-password",
        BROKER_PASSWORD,
    ])
    .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn login_instances_and_keys_through_their_life() {
    let (_dir, server) = server().await;
    let cli = Cli::new();

    // A wrong password is refused with the broker's message and nothing is stored.
    cli.run(&[
        "login",
        &server.base,
        "--broker-user",
        BROKER_USER,
        "--broker-password",
        "wrong",
    ])
    .fails(1, "Broker credentials (HTTP Basic) are missing or wrong");
    assert!(!cli.config_dir().join("platform.json").exists());

    // The password from SIGNPOST_BROKER_PASSWORD.
    cli.run_env(
        &["login", &server.base, "--broker-user", BROKER_USER],
        &[("SIGNPOST_BROKER_PASSWORD", BROKER_PASSWORD)],
    )
    .ok();
    let platform = cli.config_dir().join("platform.json");
    assert_eq!(mode(&platform), 0o600);
    assert_eq!(mode(&cli.config_dir()), 0o700);

    // Create with a configuration JSON, in a named subaccount.
    let config = cli.file(
        "config.json",
        r#"{"init_data": {"instance": {"destinations": [{"Name": "hello", "Type": "HTTP",
            "URL": "https://example.org", "Authentication": "NoAuthentication", "ProxyType": "Internet"}]}}}"#,
    );
    let out = cli.run(&[
        "instance",
        "create",
        "demo",
        "-c",
        &config,
        "--subaccount",
        "team-a",
    ]);
    out.ok();
    assert!(
        out.stderr
            .contains("instance 'demo' created in subaccount 'team-a'"),
        "{}",
        out.stderr
    );
    cli.run(&["instance", "create", "plain"]).ok();

    let list = cli.run(&["instance", "list"]);
    let table = list.ok();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("demo   team-a"), "{table}");
    let json = cli.run(&["instance", "list", "-o", "json"]).json();
    assert_eq!(json[0]["name"], "demo");
    assert_eq!(json[1]["name"], "plain");
    assert_eq!(json[1]["subaccount"], "default");

    // key create prints the service key; -o json is exactly the broker's credentials.
    let key = cli
        .run(&["key", "create", "demo", "k1", "-o", "json"])
        .json();
    assert_eq!(key["instanceid"], "demo");
    assert!(key["clientsecret"].is_string());
    let again = cli
        .run(&["key", "create", "demo", "k1", "-o", "json"])
        .json();
    assert_eq!(key, again, "a repeated bind answers with the same key");
    let pretty = cli.run(&["key", "create", "demo", "k2"]);
    let k2: serde_json::Value = serde_json::from_str(pretty.ok()).unwrap();
    assert_eq!(k2["instanceid"], "demo");
    let yaml = cli.run(&["key", "create", "demo", "k2", "-o", "yaml"]);
    assert!(yaml.ok().contains("clientid: sb-k2"), "{}", yaml.stdout);

    let keys = cli.run(&["key", "list", "-o", "json"]).json();
    assert_eq!(
        keys,
        serde_json::json!([{"instance": "demo", "key": "k1"}, {"instance": "demo", "key": "k2"}])
    );
    assert!(cli
        .run(&["key", "list", "demo"])
        .ok()
        .contains("demo      k1"));
    cli.run(&["key", "list", "nope"])
        .fails(1, "instance 'nope' was not created through this CLI");

    // The key works as a tenant target and finds the configured destination.
    let key_file = cli.file("k1.json", &key.to_string());
    cli.run(&["login", "--service-key", &key_file]).ok();
    assert_eq!(mode(&cli.config_dir().join("tenant.json")), 0o600);
    let found = cli.run(&["dest", "find", "hello", "-o", "json"]).json();
    assert_eq!(
        found["destinationConfiguration"]["URL"],
        "https://example.org"
    );

    // Update adds a destination.
    let update = cli.file(
        "update.json",
        r#"{"init_data": {"instance": {"destinations": [{"Name": "second", "Type": "HTTP",
            "URL": "https://example.com", "Authentication": "NoAuthentication", "ProxyType": "Internet"}]}}}"#,
    );
    cli.run(&["instance", "update", "demo", "-c", &update]).ok();
    cli.run(&["dest", "get", "second", "--level", "instance"])
        .ok();
    cli.run(&["instance", "update", "nope", "-c", &update])
        .fails(1, "instance 'nope' does not exist");

    // Deleting a key revokes it; deleting it again says it does not exist.
    cli.run(&["key", "delete", "demo", "k1"]).ok();
    cli.run(&["key", "delete", "demo", "k1"])
        .fails(1, "service key 'k1' of instance 'demo' does not exist");
    cli.run(&["dest", "list"]).fails(
        1,
        "Bad client credentials (HTTP 401 from the token service): log in with a valid service key",
    );
    assert_eq!(
        cli.run(&["key", "list", "-o", "json"]).json()[0]["key"],
        "k2"
    );

    cli.run(&["instance", "delete", "demo"]).ok();
    cli.run(&["instance", "delete", "demo"])
        .fails(1, "instance 'demo' does not exist");
    let json = cli.run(&["instance", "list", "-o", "json"]).json();
    assert_eq!(json.as_array().unwrap().len(), 1);
    cli.run(&["target"]).ok();
    cli.run(&["logout"]).ok();
    cli.run(&["instance", "list"])
        .fails(1, "not logged in to a platform: run `signpost login");
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_verbs_report_bad_input() {
    let (_dir, server) = server().await;
    let cli = Cli::new();
    cli.run(&["instance", "create", "x"]).fails(
        1,
        "not logged in to a platform: run `signpost login URL --broker-user USER` first",
    );
    login(&cli, &server);

    cli.run(&["key", "create", "nope", "k"])
        .fails(1, "instance 'nope' does not exist");
    cli.run(&["instance", "delete", "nope"])
        .fails(1, "instance 'nope' does not exist");

    let broken = cli.file("broken.json", "{\"init_data\": ");
    cli.run(&["instance", "create", "x", "-c", &broken])
        .fails(2, "broken.json: not valid JSON");
    cli.run(&["instance", "create", "x", "-c", "missing.json"])
        .fails(2, "cannot read missing.json");
    let list = cli.file("list.json", "[1]");
    cli.run(&["instance", "create", "x", "-c", &list])
        .fails(2, "must be a JSON object");
    // The server's validation of the configuration JSON, with its JSON path.
    let bad = cli.file(
        "bad.json",
        r#"{"init_data": {"instance": {"destinations": [{"Name": "x"}]}}}"#,
    );
    cli.run(&["instance", "create", "x", "-c", &bad])
        .fails(1, "init_data.instance.destinations[0]");
    // Usage errors are clap's exit code 2.
    cli.run(&["instance", "create"]).fails(2, "NAME");
    cli.run(&["login", "http://x", "--service-key", "k.json"])
        .fails(2, "cannot be used with");

    // A server that is not there.
    let gone = format!("http://127.0.0.1:{}", free_port());
    cli.run(&[
        "login",
        &gone,
        "--broker-user",
        "u",
        "--broker-password",
        "p",
    ])
    .fails(1, &format!("cannot reach {gone}"));
    cli.run(&[
        "login",
        "not a url",
        "--broker-user",
        "u",
        "--broker-password",
        "p",
    ])
    .fails(2, "is not a URL");
}

#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_from_the_cli() {
    let (_dir, server) = server().await;
    let cli = Cli::new();
    login(&cli, &server);
    cli.run(&["instance", "create", "saas", "--subaccount", "provider"])
        .ok();

    let out = cli.run(&[
        "subscription",
        "create",
        "saas",
        "customer-a",
        "--subdomain",
        "customer-a",
        "-o",
        "json",
    ]);
    let created = out.json();
    assert_eq!(created["subaccountId"], "customer-a");
    assert_eq!(created["subdomain"], "customer-a");
    // Again with another subdomain: it changes.
    cli.run(&[
        "subscription",
        "create",
        "saas",
        "customer-a",
        "--subdomain",
        "customer-a-new",
    ])
    .ok();
    let table = cli.run(&["subscription", "list", "saas"]).ok().to_owned();
    assert!(
        table.contains("SUBACCOUNT") && table.contains("customer-a-new"),
        "{table}"
    );

    // Bad input: the server's message, exit code 1.
    cli.run(&[
        "subscription",
        "create",
        "saas",
        "customer-b",
        "--subdomain",
        "Not_A_Label",
    ])
    .fails(1, "subdomain must be");
    cli.run(&["subscription", "list", "no-such-instance"])
        .fails(1, "does not exist");

    cli.run(&["subscription", "delete", "saas", "customer-a"])
        .ok();
    assert_eq!(
        cli.run(&["subscription", "list", "saas", "-o", "json"])
            .json(),
        serde_json::json!([])
    );
    cli.run(&["subscription", "delete", "saas", "customer-a"])
        .fails(1, "not subscribed");
}
