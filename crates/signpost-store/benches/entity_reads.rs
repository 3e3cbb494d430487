//! Single-entity reads, the store's part of find destination, on SQLite files of 100 and of
//! 1,000,000 destinations (issue 17's sizes; `BENCH_ENTITIES="100 1000000"` sets the sizes), one
//! store of each size in the same process, so that every case of the large store has its
//! reference beside it: the same case on the small one, and `cached_hit`. The cases:
//!
//! - `cached_hit`: one name answered by the read-through cache (the reference: what a find of a
//!   hot name costs the store);
//! - `store_one_name`: one name read from SQLite each time, past the cache (SQLite's pages of it
//!   stay in its own page cache: the read, the decryption and the row's copies, nothing cold);
//! - `store_random`: random names read from SQLite past the cache (what a miss costs: most pages
//!   come from the operating system's page cache);
//! - `cached_random`: random names through the cache with the server's default entity budget
//!   (32 MiB of `SIGNPOST_CACHE_MB=64`), which holds a few percent of them: the path of a find of
//!   a random name.
//!
//! Every lookup asks for the instance level first and the subaccount level second, as find
//! destination v1 does; the destinations are on subaccount level.
//!
//! Run: `cargo bench -p signpost-store --bench entity_reads` (add `-- --quick` for a short run);
//! bench/README.md has the figures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use signpost_model::{EntityKind, OwnerRef};
use signpost_store::*;

/// The server's entity budget at the default `SIGNPOST_CACHE_MB=64` (signpost's `CacheBudget`).
const DEFAULT_ENTITY_BYTES: u64 = 32 * 1024 * 1024;
const SUBACCOUNT: &str = "5c0e3a52-8a7e-4a61-9a55-0d1f2b3c4d5e";
const INSTANCE: &str = "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c5d";
/// Random names drawn once and read in turn (a cycle longer than any cache here holds).
const DRAWN: usize = 1 << 20;

struct Fixture {
    _dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    store: Arc<SqliteStore>,
    cached: CachedStore,
    names: Vec<String>,
    owners: [OwnerRef; 2],
}

fn name(i: usize) -> String {
    format!("dest-{i:07}")
}

/// A destination as `bench/scale` creates them.
fn body(i: usize) -> Vec<u8> {
    serde_json::json!({
        "Name": name(i), "Type": "HTTP", "URL": format!("https://host-{i}.example.org/api"),
        "Authentication": "BasicAuthentication", "ProxyType": "Internet",
        "User": "alice", "Password": format!("s3cret-{i}"),
        "Description": format!("scale benchmark destination {i}"),
    })
    .to_string()
    .into_bytes()
}

/// The sizes to measure: `BENCH_ENTITIES`, counts separated by spaces.
fn sizes() -> Vec<usize> {
    std::env::var("BENCH_ENTITIES")
        .unwrap_or_else(|_| "100 1000000".into())
        .split_whitespace()
        .map(|v| v.parse().expect("BENCH_ENTITIES holds counts"))
        .collect()
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let started = Instant::now();
    let (store, cached) = runtime.block_on(async {
        let store = Arc::new(
            SqliteStore::open(&url, &MasterKey::generate(), u32::MAX)
                .await
                .unwrap(),
        );
        store
            .write(vec![WriteOp::EnsureSubaccount(SubaccountRecord {
                id: SUBACCOUNT.into(),
                subdomain: "bench".into(),
            })])
            .await
            .unwrap();
        let owner = OwnerRef::subaccount(SUBACCOUNT);
        for start in (0..n).step_by(1000) {
            let ops = (start..(start + 1000).min(n))
                .map(|i| WriteOp::PutEntity {
                    owner: owner.clone(),
                    kind: EntityKind::Destination,
                    name: name(i),
                    body: body(i),
                    mode: PutMode::Create,
                })
                .collect();
            store.write(ops).await.unwrap();
        }
        let inner: Arc<dyn Store> = store.clone();
        let cached = CachedStore::with_budget(inner, DEFAULT_ENTITY_BYTES, 8 * 1024 * 1024);
        (store, cached)
    });
    eprintln!(
        "entity_reads: {n} destinations written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let names = (0..DRAWN.min(n.max(1) * 4))
        .map(|_| name(rng.gen_range(0..n.max(1))))
        .collect();
    Fixture {
        _dir: dir,
        runtime,
        store,
        cached,
        names,
        owners: [
            OwnerRef::instance(INSTANCE),
            OwnerRef::subaccount(SUBACCOUNT),
        ],
    }
}

fn entity_reads(c: &mut Criterion) {
    for n in sizes() {
        measure(c, n);
    }
}

fn measure(c: &mut Criterion, n: usize) {
    let f = fixture(n);
    let kind = EntityKind::Destination;
    let hot = f.names[0].clone();
    let find = |store: &dyn Store, name: &str| {
        let found = f
            .runtime
            .block_on(store.find_entity(&f.owners, kind, name))
            .unwrap();
        assert!(found.is_some(), "{name} is stored");
        found
    };
    // Twice: a name is cached on its second read.
    find(&f.cached, &hot);
    find(&f.cached, &hot);

    let mut group = c.benchmark_group(format!("find_entity/{n}"));
    group.bench_function("cached_hit", |b| b.iter(|| find(&f.cached, &hot)));
    group.bench_function("store_one_name", |b| b.iter(|| find(&*f.store, &hot)));
    let mut next = 0usize;
    let mut random = |store: &dyn Store| {
        next = (next + 1) % f.names.len();
        find(store, &f.names[next])
    };
    group.bench_function("store_random", |b| b.iter(|| random(&*f.store)));
    group.bench_function("cached_random", |b| b.iter(|| random(&f.cached)));
    group.finish();
}

criterion_group!(benches, entity_reads);
criterion_main!(benches);
