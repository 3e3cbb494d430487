//! `signpost export` and `import` against a real server on loopback.
#![allow(clippy::unwrap_used)]

mod cli_common;
mod support;

use cli_common::Cli;
use serde_json::{json, Value};
use support::{ServerOptions, ServerProcess};
use tempfile::TempDir;

async fn tenant() -> (TempDir, ServerProcess, Cli) {
    let dir = TempDir::new().unwrap();
    // Room for more than SAP's 1,000 per level: the policy checks add to a full level.
    let options = ServerOptions::new(&dir.path().join("data"))
        .arg("--max-entities")
        .arg("2000");
    let server = ServerProcess::start(options).await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key1").await;
    let cli = Cli::new();
    let key_file = cli.file("key.json", &key.to_string());
    cli.run(&["login", "--service-key", &key_file]).ok();
    (dir, server, cli)
}

fn destination(i: usize) -> Value {
    json!({
        "Name": format!("dest-{i:04}"),
        "Type": "HTTP",
        "URL": format!("https://host-{i}.example.org/api"),
        "Authentication": "NoAuthentication",
        "ProxyType": "Internet",
        "Description": format!("destination number {i}"),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_destinations_round_trip_to_an_identical_file() {
    let (_dir, _server, cli) = tenant().await;
    let bundle = json!({
        "destinations": (0..1000).map(destination).collect::<Vec<_>>(),
        "fragments": [{"FragmentName": "f1", "URL": "https://fragment.example.org"}],
        "certificates": [],
    });
    let input = cli.file(
        "in.json",
        &format!("{}\n", serde_json::to_string_pretty(&bundle).unwrap()),
    );
    let out = cli.run(&["import", &input]);
    out.ok();
    assert!(
        out.stderr.contains("1001 created, 0 updated"),
        "{}",
        out.stderr
    );
    let exported = cli.path("out.json");
    cli.run(&["export", "-f", exported.to_str().unwrap()]).ok();
    assert!(
        std::fs::read_to_string(&input).unwrap() == std::fs::read_to_string(&exported).unwrap(),
        "the export differs from the imported file"
    );
    // Also to stdout, and as YAML that imports again.
    let stdout = cli.run(&["export"]);
    assert_eq!(stdout.ok(), std::fs::read_to_string(&input).unwrap());
    let yaml = cli.path("out.yaml");
    cli.run(&["export", "-f", yaml.to_str().unwrap()]).ok();

    // Policies: fail (default) imports nothing when anything clashes.
    let mixed = json!({"destinations": [destination(5000), destination(1)]});
    let mixed = cli.file("mixed.json", &mixed.to_string());
    cli.run(&["import", &mixed]).fails(
        1,
        "nothing imported: 1 entity exist on subaccount level already: destination 'dest-0001'; use --policy update or --policy ignore",
    );
    cli.run(&["dest", "get", "dest-5000"]).fails(1, "HTTP 404");
    cli.run(&["import", &yaml.display().to_string()])
        .fails(1, "1001 entities exist");
    let out = cli.run(&["import", &mixed, "--policy", "ignore"]);
    out.ok();
    assert!(
        out.stderr
            .contains("1 created, 0 updated, 1 kept as they were"),
        "{}",
        out.stderr
    );
    let mut changed = destination(2);
    changed["URL"] = json!("https://changed.example.org");
    let changed = cli.file("changed.yaml", &format!(
        "destinations:\n  - Name: dest-0002\n    Type: HTTP\n    URL: {}\n    Authentication: NoAuthentication\n    ProxyType: Internet\n",
        changed["URL"].as_str().unwrap()
    ));
    cli.run(&["import", &changed, "--policy", "update"]).ok();
    assert_eq!(
        cli.run(&["dest", "get", "dest-0002", "-o", "json"]).json()["URL"],
        "https://changed.example.org"
    );

    // The YAML export imports into the instance level.
    let out = cli.run(&["import", yaml.to_str().unwrap(), "--level", "instance"]);
    out.ok();
    assert!(
        out.stderr
            .contains("imported into instance level: 1001 created"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn import_reads_cockpit_properties_and_refuses_bad_files() {
    let (_dir, _server, cli) = tenant().await;
    let props = cli.file(
        "my-dest",
        "#\n#Tue Jan 02 10:00:00 UTC 2024\nDescription=Exported\\: from the cockpit\nType=HTTP\nAuthentication=BasicAuthentication\nUser=alice\nPassword=p\\=w\nURL=https\\://cockpit.example.org\\:443/path\nName=my-dest\nProxyType=Internet\n",
    );
    cli.run(&["import", &props]).ok();
    let dest = cli
        .run(&[
            "dest",
            "get",
            "my-dest",
            "-o",
            "json",
            "--level",
            "subaccount",
        ])
        .json();
    assert_eq!(dest["URL"], "https://cockpit.example.org:443/path");
    assert_eq!(dest["Password"], "p=w");
    assert_eq!(dest["Description"], "Exported: from the cockpit");

    let broken = cli.file("broken.json", "{\"destinations\": [");
    cli.run(&["import", &broken])
        .fails(2, "broken.json: not valid JSON");
    let unknown = cli.file("unknown.json", r#"{"destinations": [], "secrets": []}"#);
    cli.run(&["import", &unknown])
        .fails(2, "unknown key 'secrets'");
    let twice = cli.file("twice.json", r#"[{"Name": "a"}, {"Name": "a"}]"#);
    cli.run(&["import", &twice])
        .fails(2, "destinations lists 'a' twice");
    let nameless = cli.file("nameless.yaml", "destinations:\n  - URL: https://x\n");
    cli.run(&["import", &nameless])
        .fails(2, "destinations[0] has no name");
    cli.run(&["import", "missing.json"])
        .fails(2, "cannot read missing.json");
    // An entity the server refuses: reported with its cause, exit 1.
    let invalid = cli.file("invalid.json", r#"[{"Name": "b", "URL": "https://b"}]"#);
    cli.run(&["import", &invalid]).fails(1, "destination 'b':");
}

#[tokio::test(flavor = "multi_thread")]
async fn labels_from_the_command_line_travel_with_exports() {
    let (_dir, _server, cli) = tenant().await;
    let file = cli.file("d.json", &destination(1).to_string());
    cli.run(&["dest", "create", "-f", &file]).ok();
    let frag = cli.file(
        "f.json",
        &json!({"FragmentName": "f1", "URL": "https://fragment.example.org"}).to_string(),
    );
    cli.run(&["fragment", "create", "-f", &frag]).ok();
    cli.run(&["cert", "generate", "c1.pem", "--cn", "labels.example"])
        .ok();

    let labels = |args: &[&str]| cli.run(args).json();
    assert_eq!(
        labels(&["dest", "label", "get", "dest-0001", "-o", "json"]),
        json!([])
    );
    assert_eq!(
        labels(&[
            "dest",
            "label",
            "set",
            "dest-0001",
            "env=prod,eu",
            "team=payments",
            "-o",
            "json"
        ]),
        json!([{"key": "env", "values": ["prod", "eu"]}, {"key": "team", "values": ["payments"]}])
    );
    assert_eq!(
        labels(&[
            "dest",
            "label",
            "add",
            "dest-0001",
            "env=us",
            "tier=gold",
            "-o",
            "json"
        ]),
        json!([{"key": "env", "values": ["prod", "eu", "us"]}, {"key": "team", "values": ["payments"]}, {"key": "tier", "values": ["gold"]}])
    );
    assert_eq!(
        labels(&[
            "dest",
            "label",
            "remove",
            "dest-0001",
            "env=eu,us",
            "tier",
            "-o",
            "json"
        ]),
        json!([{"key": "env", "values": ["prod"]}, {"key": "team", "values": ["payments"]}])
    );
    // The table.
    let table = cli.run(&["dest", "label", "get", "dest-0001"]);
    let table = table.ok();
    assert!(
        table.contains("KEY") && table.contains("env") && table.contains("prod"),
        "{table}"
    );
    labels(&[
        "fragment",
        "label",
        "set",
        "f1",
        "region=eu10",
        "-o",
        "json",
    ]);
    labels(&["cert", "label", "set", "c1.pem", "use=mtls", "-o", "json"]);

    // Bad input: a usage error before anything is sent, or the server's 400.
    cli.run(&["dest", "label", "add", "dest-0001", "team"])
        .fails(2, "is not a label");
    cli.run(&["dest", "label", "set", "dest-0001", "bad key=v"])
        .fails(1, "HTTP 400");
    cli.run(&["dest", "label", "get", "missing"])
        .fails(1, "HTTP 404");
    assert_eq!(
        labels(&["dest", "label", "get", "dest-0001", "-o", "json"]),
        json!([{"key": "env", "values": ["prod"]}, {"key": "team", "values": ["payments"]}]),
        "a refused write changed nothing"
    );

    // The export carries the labels as `$labels`; an import into the instance level sets them.
    let exported = cli.path("labelled.json");
    cli.run(&["export", "-f", exported.to_str().unwrap()]).ok();
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(
        bundle["destinations"][0]["$labels"],
        json!([{"key": "env", "values": ["prod"]}, {"key": "team", "values": ["payments"]}])
    );
    assert_eq!(
        bundle["fragments"][0]["$labels"],
        json!([{"key": "region", "values": ["eu10"]}])
    );
    assert_eq!(
        bundle["certificates"][0]["$labels"],
        json!([{"key": "use", "values": ["mtls"]}])
    );
    cli.run(&["import", exported.to_str().unwrap(), "--level", "instance"])
        .ok();
    assert_eq!(
        labels(&[
            "dest",
            "label",
            "get",
            "dest-0001",
            "--level",
            "instance",
            "-o",
            "json"
        ]),
        bundle["destinations"][0]["$labels"]
    );
    assert_eq!(
        labels(&["fragment", "label", "get", "f1", "--level", "instance", "-o", "json"]),
        bundle["fragments"][0]["$labels"]
    );
    assert_eq!(
        labels(&["cert", "label", "get", "c1.pem", "--level", "instance", "-o", "json"]),
        bundle["certificates"][0]["$labels"]
    );
    // `$labels` is not stored as a property of the destination.
    let got = cli
        .run(&[
            "dest",
            "get",
            "dest-0001",
            "--level",
            "instance",
            "-o",
            "json",
        ])
        .json();
    assert!(got.get("$labels").is_none(), "{got}");
    // A file whose `$labels` is not a list is refused before anything is sent.
    let mut bad = destination(7);
    bad["$labels"] = json!("env=prod");
    let bad = cli.file("bad-labels.json", &bad.to_string());
    cli.run(&["import", &bad])
        .fails(2, "$labels must be a list");
    cli.run(&["dest", "get", "dest-0007"]).fails(1, "HTTP 404");
}
