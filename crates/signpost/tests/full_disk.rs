//! A full disk under the SQLite data directory: the data directory is a small tmpfs (mounted by
//! this test, which needs root), a filler file takes most of it, and destinations are written
//! until the disk is full. Checked: the writes that do not fit get a clear 507 (or 503) with a
//! JSON error, never a 500; everything acknowledged before stays readable; once the filler is
//! removed writes succeed again without a restart; after a clean stop SQLite's own integrity
//! check (Python's `sqlite3`, independent of Signpost) says `ok` and every acknowledged
//! destination is there after a restart.
#![allow(clippy::unwrap_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use support::{http_client, ServerOptions, ServerProcess};
use tempfile::TempDir;

const API: &str = "/destination-configuration/v1";
/// The tmpfs: room for the database, its WAL and the filler.
const TMPFS_MB: u64 = 8;
/// Left free by the filler when the server runs: a few dozen destinations fit.
const LEFT_FREE_KB: usize = 640;
/// A large, non-secret property: each destination takes about this much space.
const PAYLOAD_BYTES: usize = 16 * 1024;
/// Writes tried after the disk is full (each must be refused cleanly).
const REFUSED_TRIES: usize = 10;

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts it; `None` (the test is reported as not run) when this process is not root.
    fn mount(megabytes: u64) -> Option<Self> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("NOT RUN: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        let dir = TempDir::new().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mount -t tmpfs failed as root");
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn destination(i: usize) -> Value {
    json!({
        "Name": format!("full-{i:04}"),
        "Type": "HTTP",
        "URL": format!("https://host-{i}.example.org"),
        "Authentication": "BasicAuthentication",
        "ProxyType": "Internet",
        "User": "user",
        "Password": format!("pw-full-{i}"),
        "Payload": "x".repeat(PAYLOAD_BYTES),
    })
}

async fn post(server: &ServerProcess, token: &str, body: &Value) -> (u16, Value) {
    let res = http_client()
        .post(server.url(&format!("{API}/subaccountDestinations")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn find_password(server: &ServerProcess, token: &str, name: &str) -> Option<String> {
    let res = http_client()
        .get(server.url(&format!("{API}/subaccountDestinations/{name}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(
        res.status() == 200 || res.status() == 404,
        "reading {name}: {}",
        res.status()
    );
    if res.status() != 200 {
        return None;
    }
    let body: Value = res.json().await.unwrap();
    body["Password"].as_str().map(str::to_owned)
}

/// SQLite's `PRAGMA integrity_check` through Python's own sqlite3 module.
fn integrity_check(db: &Path) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print('; '.join(r[0] for r in c.execute('PRAGMA integrity_check')))",
        ])
        .arg(db)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Fills the tmpfs with a file until `left` bytes are free.
fn fill(tmpfs: &Tmpfs, left: u64) -> PathBuf {
    let filler = tmpfs.path().join("filler");
    let size = tmpfs.free_bytes().saturating_sub(left);
    let status = Command::new("dd")
        .args(["if=/dev/zero", "bs=4096", "status=none"])
        .arg(format!("of={}", filler.display()))
        .arg(format!("count={}", size / 4096))
        .status()
        .unwrap();
    assert!(status.success());
    filler
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_a_clear_error_loses_nothing_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount(TMPFS_MB) else {
        return;
    };
    let data = tmpfs.path().join("data");
    let options = || ServerOptions::new(&data).arg("--rate-limit").arg("0");
    let mut server = ServerProcess::start(options()).await;
    server.provision("inst-full", "sub-full", json!({})).await;
    let key = server.bind("inst-full", "bind-full").await;
    let token = server.token(&key).await;

    let filler = fill(&tmpfs, LEFT_FREE_KB as u64 * 1024);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    let mut i = 0;
    // Until the disk is full, then a few more: each of those must be refused the same way.
    while refused.len() < REFUSED_TRIES {
        assert!(i < 10 * LEFT_FREE_KB, "the disk never filled up");
        let (status, body) = post(&server, &token, &destination(i)).await;
        match status {
            201 => acknowledged.push(i),
            507 | 503 => {
                assert!(
                    body["ErrorMessage"].is_string(),
                    "a {status} without a JSON ErrorMessage: {body}"
                );
                refused.push((i, status, body["ErrorMessage"].as_str().unwrap().to_owned()));
            }
            other => panic!(
                "write {i} answered {other}: {body}; stderr:\n{}",
                server.stderr()
            ),
        }
        i += 1;
    }
    assert!(
        !acknowledged.is_empty(),
        "nothing fitted: the filler left too little room"
    );
    eprintln!(
        "disk full after {} acknowledged writes of ~{} KiB; refused: {:?}",
        acknowledged.len(),
        PAYLOAD_BYTES / 1024,
        refused
            .iter()
            .map(|(_, s, m)| format!("{s} {m}"))
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        refused.iter().any(|(_, s, _)| *s == 507),
        "a full disk is a 507 at least once: {refused:?}"
    );

    // While full: what was acknowledged is readable, with its secret; the refused are absent.
    for &n in &acknowledged {
        assert_eq!(
            find_password(&server, &token, &format!("full-{n:04}"))
                .await
                .as_deref(),
            Some(format!("pw-full-{n}").as_str()),
            "acknowledged write {n} while the disk is full; stderr:\n{}",
            server.stderr()
        );
    }
    for (n, _, _) in &refused {
        assert_eq!(
            find_password(&server, &token, &format!("full-{n:04}")).await,
            None
        );
    }
    assert_eq!(
        server
            .client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Space freed: writes succeed again, without a restart.
    fs::remove_file(&filler).unwrap();
    for (n, _, _) in &refused {
        let (status, body) = post(&server, &token, &destination(*n)).await;
        assert_eq!(status, 201, "after freeing space: {body}");
        acknowledged.push(*n);
    }
    let log = server.stderr();
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    assert!(
        !log.contains("pw-full-"),
        "a secret in the log (the refused writes carried them)"
    );
    let stopped = server.stop().await;
    assert!(stopped.success(), "stop: {stopped}");

    let check = integrity_check(&data.join("signpost.db"));
    assert_eq!(check, "ok", "PRAGMA integrity_check after a full disk");
    eprintln!("PRAGMA integrity_check: {check}");

    // Everything acknowledged, once, after a restart.
    let server = ServerProcess::start(options()).await;
    let token = server.token(&key).await;
    let names = server
        .destination_names(&token, "subaccountDestinations")
        .await;
    let mut expected: Vec<String> = acknowledged
        .iter()
        .map(|n| format!("full-{n:04}"))
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    for &n in acknowledged.iter().step_by(7) {
        assert_eq!(
            find_password(&server, &token, &format!("full-{n:04}"))
                .await
                .as_deref(),
            Some(format!("pw-full-{n}").as_str())
        );
    }
}
