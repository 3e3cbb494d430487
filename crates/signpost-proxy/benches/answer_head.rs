//! The proxy's own work on a target's answer head, per request of the lean path: parse it and
//! write the workload's head (hop-by-hop headers dropped, the body's framing found). The
//! reference in the same process is `httparse` parsing the same bytes into as many header slots
//! (the proxy's `MAX_HEADERS`), the least any proxy must do. The head is the one nginx sends for
//! the 1 KB static file of `bench/proxy` (bench/README.md has the figures and how they compare
//! with a whole request).
//!
//! Run: `cargo bench -p signpost-proxy --bench answer_head` (add `-- --quick` for a short run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

/// nginx's answer to `GET /bench.txt` in `bench/proxy`, with the start of its body.
const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Mon, 07 Dec 2026 18:12:18 GMT\r\n\
Content-Type: text/plain\r\n\
Content-Length: 1024\r\n\
Last-Modified: Mon, 07 Dec 2026 18:10:02 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6936c38a-400\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n\
xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn answer_head(c: &mut Criterion) {
    let seen = signpost_proxy::read_answer(ANSWER, false, &[])
        .unwrap()
        .expect("the head is complete");
    assert_eq!(seen.status, 200);
    assert!(seen.keep_alive);

    let mut group = c.benchmark_group("answer_head");
    group.bench_function("httparse_only", |b| {
        b.iter(|| {
            let mut fields = [httparse::EMPTY_HEADER; signpost_proxy::MAX_HEADERS];
            let mut res = httparse::Response::new(&mut fields);
            let parsed = res.parse(black_box(ANSWER)).unwrap();
            black_box((parsed, res.code, res.headers.len()))
        });
    });
    group.bench_function("read_answer", |b| {
        b.iter(|| signpost_proxy::read_answer(black_box(ANSWER), false, &[]).unwrap());
    });
    group.finish();
}

criterion_group!(benches, answer_head);
criterion_main!(benches);
