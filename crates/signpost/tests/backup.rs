//! `signpost store backup` and `restore` against real server processes on SQLite: a backup taken
//! while destinations are being written holds a consistent prefix of them, and a server started
//! on the restored directory serves it (secrets included) with the same master key. The refusals
//! leave what exists untouched.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use support::{http_client, run_to_exit, ServerOptions, ServerProcess};
use tempfile::TempDir;

const API: &str = "/destination-configuration/v1";

fn destination(i: usize) -> Value {
    json!({
        "Name": format!("d-{i:05}"),
        "Type": "HTTP",
        "URL": format!("https://host-{i}.example.org"),
        "Authentication": "BasicAuthentication",
        "ProxyType": "Internet",
        "User": "user",
        "Password": format!("secret-{i}"),
    })
}

/// A server with one instance and its service key.
async fn server(data: &Path) -> (ServerProcess, Value) {
    let server = ServerProcess::start(ServerOptions::new(data)).await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key").await;
    (server, key)
}

/// `signpost store backup --to <to> --data-dir <data>`: success and stderr.
fn run_backup(to: &Path, data: &Path) -> (bool, String) {
    let (status, stderr) = run_to_exit(
        &["store", "backup", "--to", arg(to), "--data-dir", arg(data)],
        &[],
    );
    (status.success(), stderr)
}

/// `signpost store restore --from <from> --data-dir <data>` with `env`: exit status and stderr.
fn run_restore(from: &Path, data: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
    run_to_exit(
        &[
            "store",
            "restore",
            "--from",
            arg(from),
            "--data-dir",
            arg(data),
        ],
        env,
    )
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_during_writes_is_a_consistent_prefix_and_restores_with_the_same_key() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (server, key) = server(&data).await;
    let token = server.token(&key).await;

    // One writer creates d-00000, d-00001, ... one after the other; `acked` counts the answers.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, url, token) = (
            acked.clone(),
            stop.clone(),
            server.url(&format!("{API}/instanceDestinations")),
            token.clone(),
        );
        tokio::spawn(async move {
            let client = http_client();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let res = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&destination(i))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
                i += 1;
                acked.store(i, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let backup = dir.path().join("backup.db");
    let before = acked.load(Ordering::SeqCst);
    let (ok, stderr) = {
        let (data, backup) = (data.clone(), backup.clone());
        tokio::task::spawn_blocking(move || run_backup(&backup, &data))
            .await
            .unwrap()
    };
    let after = acked.load(Ordering::SeqCst);
    assert!(ok, "{stderr}");
    // The writes went on during the backup, and after it.
    while acked.load(Ordering::SeqCst) < after + 20 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(!stderr.contains("secret-"), "{stderr}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&backup).unwrap().permissions());
    assert_eq!(mode & 0o077, 0, "the backup is readable by the owner only");

    // Restored into an empty data directory, with the master key of the first.
    let master = std::fs::read_to_string(data.join("master.key")).unwrap();
    let restored = dir.path().join("restored");
    let (status, stderr) = run_restore(
        &backup,
        &restored,
        &[("SIGNPOST_MASTER_KEY", master.trim())],
    );
    assert!(status.success(), "{stderr}");
    let second = ServerProcess::start(
        ServerOptions::new(&restored).env("SIGNPOST_MASTER_KEY", master.trim()),
    )
    .await;
    // The binding's secret and the signing keys came back: the same service key gets a token.
    let token = second.token(&key).await;
    let names = second
        .destination_names(&token, "instanceDestinations")
        .await;
    let held = names.len();
    // A prefix: every destination acknowledged before the backup began, none after it ended
    // (one in flight may have committed), and no gap.
    assert!(
        (before..=after + 1).contains(&held),
        "{held} not in {before}..={}",
        after + 1
    );
    eprintln!(
        "backup during writes: {before} destinations acknowledged when it began, {after} when it ended, {held} in the backup"
    );
    let expected: Vec<String> = (0..held).map(|i| format!("d-{i:05}")).collect();
    assert_eq!(names, expected);
    // Secrets decrypt under the same master key.
    let last = held - 1;
    let res = second
        .client
        .get(second.url(&format!("{API}/instanceDestinations/d-{last:05}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["Password"], format!("secret-{last}"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_leave_what_exists_untouched() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let (mut server, _key) = server(&data).await;
    server.stop().await;
    let master = std::fs::read_to_string(data.join("master.key")).unwrap();
    let with_key = [("SIGNPOST_MASTER_KEY", master.trim())];

    // A backup never overwrites a file.
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, "keep me").unwrap();
    let (ok, stderr) = run_backup(&existing, &data);
    assert!(!ok);
    assert!(stderr.contains("exists already"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "keep me");

    // No database to back up.
    let (ok, stderr) = run_backup(&dir.path().join("x.db"), &dir.path().join("none"));
    assert!(!ok);
    assert!(stderr.contains("there is no database"), "{stderr}");

    // PostgreSQL: pg_dump.
    let (status, stderr) = run_to_exit(
        &[
            "store",
            "backup",
            "--to",
            "x.db",
            "--database-url",
            "postgres://u:pw@localhost/db",
        ],
        &[],
    );
    assert!(!status.success());
    assert!(stderr.contains("pg_dump"), "{stderr}");
    assert!(!stderr.contains("pw@"), "{stderr}");

    let backup = dir.path().join("backup.db");
    let (ok, stderr) = run_backup(&backup, &data);
    assert!(ok, "{stderr}");

    // Into a directory that has a database: refused, the database unchanged.
    let db = data.join("signpost.db");
    let before = std::fs::read(&db).unwrap();
    let (status, stderr) = run_restore(&backup, &data, &[]);
    assert!(!status.success());
    assert!(stderr.contains("without a database"), "{stderr}");
    assert_eq!(std::fs::read(&db).unwrap(), before);

    // Without the master key: refused (a new key would never open it), nothing written.
    let empty = dir.path().join("empty");
    let (status, stderr) = run_restore(&backup, &empty, &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs the master key"), "{stderr}");
    assert!(!empty.join("master.key").exists());

    // With another master key: refused, nothing left behind.
    let other = "A".repeat(43) + "=";
    let (status, stderr) = run_restore(&backup, &empty, &[("SIGNPOST_MASTER_KEY", &other)]);
    assert!(!status.success());
    assert!(stderr.contains("master key does not open"), "{stderr}");
    assert_eq!(leftovers(&empty), Vec::<String>::new());

    // Not a database, and a damaged one: refused, nothing left behind.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![7u8; 8192]).unwrap();
    let (status, stderr) = run_restore(&garbage, &empty, &with_key);
    assert!(!status.success());
    assert!(stderr.contains("not a SQLite database"), "{stderr}");
    assert_eq!(leftovers(&empty), Vec::<String>::new());
    let mut damaged = std::fs::read(&backup).unwrap();
    let half = damaged.len() / 2;
    damaged.truncate(half);
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, damaged).unwrap();
    let (status, stderr) = run_restore(&truncated, &empty, &with_key);
    assert!(!status.success(), "{stderr}");
    assert_eq!(leftovers(&empty), Vec::<String>::new());

    // And the good one with the right key.
    let (status, stderr) = run_restore(&backup, &empty, &with_key);
    assert!(status.success(), "{stderr}");
    assert_eq!(leftovers(&empty), vec!["signpost.db".to_owned()]);
}

/// The files in `dir` (none if it does not exist).
fn leftovers(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
