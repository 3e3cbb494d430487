//! Memory is a setting (issue 17 §2): `SIGNPOST_CACHE_MB` bounds the in-process caches together,
//! and `/metrics` shows each cache's hits, misses, size and budget. Against the real binary: a
//! 1 MiB budget holds a fraction of 3,000 destinations, however many are found, and the hit
//! rate moves as finds repeat. The other setting of the server's resources,
//! `SIGNPOST_WORKER_THREADS`, is here too.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;

use serde_json::{json, Value};
use support::{find, run_to_exit, ServerOptions, ServerProcess};

/// `metric{cache="name"} value` lines of `/metrics`, by (metric, cache).
async fn cache_metrics(server: &ServerProcess) -> HashMap<(String, String), u64> {
    let text = server.get_text("/metrics").await;
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with("signpost_cache_")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (metric, labels) = series.split_once('{').unwrap();
        let cache = labels
            .strip_prefix("cache=\"")
            .and_then(|l| l.strip_suffix("\"}"))
            .unwrap();
        out.insert(
            (metric.to_owned(), cache.to_owned()),
            value.parse().unwrap(),
        );
    }
    out
}

fn get(m: &HashMap<(String, String), u64>, metric: &str, cache: &str) -> u64 {
    *m.get(&(metric.to_owned(), cache.to_owned()))
        .unwrap_or_else(|| panic!("{metric}{{cache=\"{cache}\"}} missing: {m:?}"))
}

fn destination(i: usize) -> Value {
    json!({
        "Name": format!("dest-{i:05}"),
        "Type": "HTTP",
        "URL": format!("https://host-{i}.example.org/{}", "p".repeat(200)),
        "Authentication": "BasicAuthentication",
        "User": "user",
        "Password": format!("secret-{i}"),
        "ProxyType": "Internet",
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_small_cache_budget_bounds_the_caches_and_metrics_show_their_hit_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        ServerOptions::new(&tmp.path().join("data"))
            .env("SIGNPOST_CACHE_MB", "1")
            .env("SIGNPOST_MAX_ENTITIES", "5000"),
    )
    .await;
    server.provision("inst", "sub", json!({})).await;
    let key = server.bind("inst", "key").await;
    let token = server.token(&key).await;
    for chunk in (0..3000).collect::<Vec<_>>().chunks(500) {
        let body: Vec<Value> = chunk.iter().map(|i| destination(*i)).collect();
        let res = server
            .client
            .post(server.url("/destination-configuration/v1/subaccountDestinations"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }

    // The budgets: 1 MiB shared out (half for entities, an eighth of that for which
    // collections hold anything; 3/16 each for the two token caches, 1/8 for page anchors).
    let m = cache_metrics(&server).await;
    let mib = 1024 * 1024;
    assert_eq!(
        get(&m, "signpost_cache_capacity_bytes", "entities"),
        mib / 2 - mib / 16
    );
    assert_eq!(
        get(&m, "signpost_cache_capacity_bytes", "collections"),
        mib / 16
    );
    assert_eq!(
        get(&m, "signpost_cache_capacity_bytes", "bearer_tokens"),
        mib * 3 / 16
    );
    assert_eq!(
        get(&m, "signpost_cache_capacity_bytes", "destination_tokens"),
        mib * 3 / 16
    );
    assert_eq!(
        get(&m, "signpost_cache_capacity_bytes", "page_anchors"),
        mib / 8
    );
    let budget: u64 = [
        "entities",
        "collections",
        "bearer_tokens",
        "destination_tokens",
        "page_anchors",
    ]
    .iter()
    .map(|c| get(&m, "signpost_cache_capacity_bytes", c))
    .sum();
    assert_eq!(budget, mib, "the caches together hold SIGNPOST_CACHE_MB");

    // Every destination found (on subaccount level: the instance level, known to hold none, is
    // not looked at): the entity cache fills to its budget and no further.
    for i in 0..3000 {
        let (status, body) = find(
            &server.client,
            &server.base,
            &token,
            &format!("dest-{i:05}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let m = cache_metrics(&server).await;
    let held = get(&m, "signpost_cache_size_bytes", "entities");
    assert!(held > 0, "{m:?}");
    assert!(
        held <= mib / 2 - mib / 16,
        "{held} bytes held over a budget of {}",
        mib / 2 - mib / 16
    );
    let misses = get(&m, "signpost_cache_misses_total", "entities");
    assert!(misses >= 3000, "each first find misses: {m:?}");
    // A few names found again and again: hits. The cache is full, so a name is admitted at its
    // second read and kept once it is found more often than what it would evict (moka's
    // frequency sketch decides, and may turn a name away while its count is still low): the
    // first rounds warm them up, the later ones are counted.
    let finds_of_ten = |rounds: usize| {
        let (client, base, token) = (&server.client, &server.base, &token);
        async move {
            for _ in 0..rounds {
                for i in 2990..3000 {
                    let (status, _) = find(client, base, token, &format!("dest-{i:05}")).await;
                    assert_eq!(status, 200);
                }
            }
        }
    };
    finds_of_ten(10).await;
    let hits_before = get(
        &cache_metrics(&server).await,
        "signpost_cache_hits_total",
        "entities",
    );
    finds_of_ten(10).await;
    let m = cache_metrics(&server).await;
    let hits = get(&m, "signpost_cache_hits_total", "entities") - hits_before;
    // 100 finds of 10 names found 10 times each already.
    assert!(
        hits >= 95,
        "the recently found names are cached: {hits} hits of 100"
    );
    // Every find after the first verified the token once: the rest came from the cache.
    assert!(
        get(&m, "signpost_cache_hits_total", "bearer_tokens") >= 3000,
        "{m:?}"
    );
    assert!(get(&m, "signpost_cache_size_bytes", "bearer_tokens") <= mib * 3 / 16);
    // Each level was asked once whether it holds anything; after that the answer was known.
    assert!(
        get(&m, "signpost_cache_misses_total", "collections") <= 4,
        "{m:?}"
    );
    assert!(
        get(&m, "signpost_cache_hits_total", "collections") >= 3000,
        "{m:?}"
    );
}

/// `serve` with each of `bad` in `var` exits with 2, and stderr names the setting (one of
/// `names`).
fn refused_at_start(var: &str, bad: &[&str], names: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for bad in bad {
        let (status, stderr) = run_to_exit(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
            ],
            &[(var, bad)],
        );
        assert_eq!(status.code(), Some(2), "{bad}: {stderr}");
        assert!(
            names.iter().any(|name| stderr.contains(name)),
            "{bad}: {stderr}"
        );
    }
}

#[test]
fn a_bad_cache_budget_is_refused_at_start() {
    refused_at_start(
        "SIGNPOST_CACHE_MB",
        &["0", "65537", "much"],
        &["SIGNPOST_CACHE_MB", "cache-mb"],
    );
}

#[test]
fn a_bad_worker_thread_count_is_refused_at_start() {
    refused_at_start(
        "SIGNPOST_WORKER_THREADS",
        &["0", "1025", "some"],
        &["worker-threads"],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_are_a_setting() {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    for (setting, want) in [(Some("1"), 1), (Some("3"), 3), (None, cores)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut opts = ServerOptions::new(&tmp.path().join("data"));
        if let Some(n) = setting {
            opts = opts.env("SIGNPOST_WORKER_THREADS", n);
        }
        let server = ServerProcess::start(opts).await;
        server.provision("inst", "sub", json!({})).await;
        let key = server.bind("inst", "key").await;
        let token = server.token(&key).await;
        let res = server
            .client
            .post(server.url("/destination-configuration/v1/subaccountDestinations"))
            .bearer_auth(&token)
            .json(&destination(1))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let (status, body) = find(&server.client, &server.base, &token, "dest-00001").await;
        assert_eq!(status, 200, "{body}");
        let metrics = server.get_text("/metrics").await;
        let line = format!("signpost_worker_threads {want}");
        assert!(
            metrics.lines().any(|l| l == line),
            "{setting:?}: no `{line}` in /metrics"
        );
    }
}
