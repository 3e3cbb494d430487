//! The soak run: a real `signpost serve` and a real `signpost-proxy` in front of it, on loopback,
//! under a steady mix of finds (plain and with an OAuth flow), writes (create, update, delete),
//! token requests, certificate uploads and deletions, and proxy traffic, for
//! `SIGNPOST_SOAK_SECONDS` (default 60; docs/RELIABILITY.md records a 10-minute run).
//! Checked: no answer is a 5xx (nor any status the mix does not expect), neither log holds a
//! warning or an error, and the resident memory and the open file descriptors of both
//! processes stay flat: the last quarter's peak within 1.5× (or 32 MiB) of the peak after the
//! first quarter's warm-up, descriptors within 16 of it. The curve is printed.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use signpost_test_utils::pki;
use support::{free_port, http_client, request_token, ServerOptions, ServerProcess};
use tempfile::TempDir;

const API: &str = "/destination-configuration/v1";
/// Concurrent clients of the mix.
const WORKERS: usize = 4;
/// Names the writers and uploaders cycle through (so the data stays bounded).
const CYCLE: usize = 25;
/// Seconds between samples of memory and descriptors.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

fn seconds() -> u64 {
    std::env::var("SIGNPOST_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// Resident memory (KiB) and open descriptors of a process.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

/// The `signpost-proxy` binary beside `signpost`, built when this test runs alone.
fn proxy_binary() -> PathBuf {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "-p",
            "signpost-proxy",
            "--bin",
            "signpost-proxy",
        ])
        .current_dir(support::workspace_root())
        .status()
        .unwrap();
    assert!(status.success(), "building signpost-proxy failed");
    Path::new(env!("CARGO_BIN_EXE_signpost")).with_file_name("signpost-proxy")
}

struct ProxyProcess {
    child: Child,
    port: u16,
    admin: u16,
    log: PathBuf,
}

impl ProxyProcess {
    async fn start(dir: &Path, key: &Value) -> Self {
        let credentials = dir.join("credentials");
        std::fs::create_dir_all(&credentials).unwrap();
        std::fs::write(credentials.join("dest.json"), key.to_string()).unwrap();
        let config = dir.join("config.yaml");
        std::fs::write(
            &config,
            "config:\n  integration:\n    destinationService:\n      defaultInstanceName: dest\n      \
             instances:\n        - name: dest\n          serviceCredentials: {secretName: dest-key, secretKey: key.json}\n\
             destinations:\n  - name: plain\n    namespace: default\n    spec:\n      destinationRef: {name: plain}\n",
        )
        .unwrap();
        let binary = proxy_binary();
        for _ in 0..3 {
            let (port, admin) = (free_port(), free_port());
            let log = dir.join(format!("proxy-{port}.log"));
            let child = Command::new(&binary)
                .arg("--config")
                .arg(&config)
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .arg("--credentials-dir")
                .arg(&credentials)
                .arg("--allow-private-networks")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut proxy = Self {
                child,
                port,
                admin,
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if proxy.child.try_wait().unwrap().is_some() {
                    break;
                }
                let ready = http_client()
                    .get(format!("http://127.0.0.1:{}/healthz", proxy.admin))
                    .send()
                    .await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return proxy;
                }
                assert!(
                    Instant::now() < deadline,
                    "the proxy did not start: {}",
                    proxy.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                proxy.log().contains("Address already in use"),
                "the proxy exited: {}",
                proxy.log()
            );
        }
        panic!("the proxy found no free port");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the workers saw: answers by operation and status.
#[derive(Default)]
struct Tally(Mutex<BTreeMap<(String, u16), u64>>);

impl Tally {
    fn add(&self, op: &str, status: u16) {
        *self
            .0
            .lock()
            .unwrap()
            .entry((op.to_owned(), status))
            .or_default() += 1;
    }
}

/// One round of the mix for worker `w`, round `i`.
#[allow(clippy::too_many_arguments)]
async fn round(
    client: &reqwest::Client,
    server: &str,
    proxy: u16,
    key: &Value,
    token: &str,
    cert: &str,
    w: usize,
    i: usize,
    tally: &Tally,
) {
    let dest = |path: &str| format!("{server}{API}{path}");
    let status =
        |r: reqwest::Result<reqwest::Response>| r.map(|r| r.status().as_u16()).unwrap_or(0);

    let s = status(
        client
            .get(dest("/destinations/plain"))
            .bearer_auth(token)
            .send()
            .await,
    );
    tally.add("find plain", s);
    let res = client
        .get(dest("/destinations/oauth"))
        .bearer_auth(token)
        .send()
        .await;
    match res {
        Ok(r) => {
            let s = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            // The flow's own failure would be an error in authTokens, not a status.
            let ok = body["authTokens"][0]["value"].is_string();
            tally.add(
                if ok {
                    "find oauth"
                } else {
                    "find oauth without a token"
                },
                s,
            );
        }
        Err(_) => tally.add("find oauth", 0),
    }

    let name = format!("soak-{w}-{}", i % CYCLE);
    let body = json!({"Name": name, "Type": "HTTP", "URL": format!("https://soak-{i}.example.org"),
        "Authentication": "BasicAuthentication", "ProxyType": "Internet", "User": "u",
        "Password": format!("pw-soak-{w}-{i}")});
    let s = status(
        client
            .put(dest("/subaccountDestinations"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await,
    );
    // An update of a name not there yet is a 404: then it is created.
    if s == 404 {
        let s = status(
            client
                .post(dest("/subaccountDestinations"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await,
        );
        tally.add("create", s);
    } else {
        tally.add("update", s);
    }
    if i % 5 == 4 {
        let s = status(
            client
                .delete(dest(&format!("/subaccountDestinations/{name}")))
                .bearer_auth(token)
                .send()
                .await,
        );
        tally.add("delete", s);
    }

    let (s, _) = request_token(client, server, key).await;
    tally.add("token", s);

    let cert_name = format!("soak-{w}-{}.pem", i % CYCLE);
    let s = status(
        client
            .post(dest("/instanceCertificates"))
            .bearer_auth(token)
            .json(&json!({"Name": cert_name, "Type": "CERTIFICATE", "Content": cert}))
            .send()
            .await,
    );
    tally.add("upload certificate", s);
    let s = status(
        client
            .delete(dest(&format!("/instanceCertificates/{cert_name}")))
            .bearer_auth(token)
            .send()
            .await,
    );
    tally.add("delete certificate", s);

    let s = status(
        client
            .get(format!("http://127.0.0.1:{proxy}/healthz"))
            .header("Host", "plain.default")
            .send()
            .await,
    );
    tally.add("proxy", s);
}

/// The statuses each operation of the mix may answer.
fn expected(op: &str, status: u16) -> bool {
    match op {
        "find plain" | "find oauth" | "update" | "token" | "delete certificate" | "proxy" => {
            status == 200
        }
        "create" | "upload certificate" => status == 201,
        "delete" => status == 200 || status == 204,
        _ => false,
    }
}

fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_mixed_traffic_keeps_memory_and_descriptors_flat() {
    let dir = TempDir::new().unwrap();
    let server = ServerProcess::start(
        ServerOptions::new(&dir.path().join("data"))
            .arg("--rate-limit")
            .arg("0")
            .arg("--allow-private-networks"),
    )
    .await;
    server.provision("inst-soak", "sub-soak", json!({})).await;
    let key = server.bind("inst-soak", "bind-soak").await;
    let token = server.token(&key).await;
    let client = http_client();
    // `plain` is Signpost's own /healthz (what the proxy forwards to); `oauth` gets a token from
    // Signpost's own token endpoint with the service key (a real client-credentials flow).
    for body in [
        json!({"Name": "plain", "Type": "HTTP", "URL": server.url(""), "Authentication": "NoAuthentication", "ProxyType": "Internet"}),
        json!({"Name": "oauth", "Type": "HTTP", "URL": "https://api.example.org", "Authentication": "OAuth2ClientCredentials",
            "ProxyType": "Internet", "tokenServiceURL": server.url("/oauth/token"),
            "clientId": key["clientid"], "clientSecret": key["clientsecret"]}),
    ] {
        let res = client
            .post(server.url(&format!("{API}/instanceDestinations")))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let proxy = ProxyProcess::start(dir.path(), &key).await;
    let pem = pki::self_signed("soak", 30);
    let cert = pki::b64(format!("{}{}", pem.cert, pem.key).as_bytes());

    let duration = Duration::from_secs(seconds());
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (client, base, key, token, cert) = (
            client.clone(),
            server.url(""),
            key.clone(),
            token.clone(),
            cert.clone(),
        );
        let (stop, tally, rounds, port) = (stop.clone(), tally.clone(), rounds.clone(), proxy.port);
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                round(&client, &base, port, &key, &token, &cert, w, i, &tally).await;
                rounds.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        tokio::time::sleep(SAMPLE_EVERY).await;
        samples.push(Sample {
            t: started.elapsed().as_secs(),
            server: usage(server.pid()),
            proxy: usage(proxy.child.id()),
            rounds: rounds.load(Ordering::Relaxed),
        });
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    println!("t (s)  signpost RSS (MiB) fds  proxy RSS (MiB) fds  rounds");
    for s in &samples {
        println!(
            "{:>5}  {:>18.1} {:>4}  {:>15.1} {:>4}  {:>6}",
            s.t,
            s.server.0 as f64 / 1024.0,
            s.server.1,
            s.proxy.0 as f64 / 1024.0,
            s.proxy.1,
            s.rounds
        );
    }
    let tally = tally.0.lock().unwrap().clone();
    let total: u64 = tally.values().sum();
    println!("{total} requests in {} s: {tally:?}", duration.as_secs());

    let unexpected: Vec<_> = tally
        .iter()
        .filter(|((op, status), _)| !expected(op, *status))
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected answers: {unexpected:?}; signpost log:\n{}\nproxy log:\n{}",
        server.stderr(),
        proxy.log()
    );
    for (who, log) in [("signpost", server.stderr()), ("the proxy", proxy.log())] {
        let w = warnings(&log);
        assert!(w.is_empty(), "warnings in the log of {who}: {w:#?}");
    }

    // Flat: after the first quarter (warm-up), the last quarter's peaks stay near the second
    // quarter's.
    assert!(
        samples.len() >= 4,
        "too short a run to judge: {} samples",
        samples.len()
    );
    let quarter = samples.len() / 4;
    let peak = |range: &[Sample], pick: Pick| {
        range
            .iter()
            .map(pick)
            .fold((0, 0), |(a, b), (r, d)| (a.max(r), b.max(d)))
    };
    let warm = &samples[quarter..2 * quarter];
    let last = &samples[samples.len() - quarter..];
    let processes: [(&str, Pick); 2] = [("signpost", |s| s.server), ("the proxy", |s| s.proxy)];
    for (who, pick) in processes {
        let (warm_rss, warm_fds) = peak(warm, pick);
        let (last_rss, last_fds) = peak(last, pick);
        println!(
            "{who}: RSS {:.1} -> {:.1} MiB ({:.2}x), fds {warm_fds} -> {last_fds}",
            warm_rss as f64 / 1024.0,
            last_rss as f64 / 1024.0,
            last_rss as f64 / warm_rss.max(1) as f64
        );
        let allowed = (warm_rss * 3 / 2).max(warm_rss + 32 * 1024);
        assert!(
            last_rss <= allowed,
            "{who}'s memory grew: {warm_rss} KiB after warm-up, {last_rss} KiB at the end"
        );
        assert!(
            last_fds <= warm_fds + 16,
            "{who}'s descriptors grew: {warm_fds} after warm-up, {last_fds} at the end"
        );
    }
}

/// Which process of a sample: (RSS KiB, descriptors).
type Pick = fn(&Sample) -> (u64, usize);

/// One sample: seconds since the start, (RSS KiB, descriptors) of each process, rounds done.
struct Sample {
    t: u64,
    server: (u64, usize),
    proxy: (u64, usize),
    rounds: usize,
}
