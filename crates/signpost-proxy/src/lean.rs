//! The lean path of the data plane: the common request (HTTP/1.1, no body, no header that
//! steers the proxy, a static route to a plain `http://` target reached directly) served without
//! hyper's two state machines and header maps. Its head is parsed once in place (`httparse`), the
//! target's head written in one buffer, the answer's head read in place and its body relayed as it
//! comes (its own length, raw chunks, or until the target closes), over a keep-alive pool of the
//! worker's own target connections. Everything else (a body, `Expect`, upgrades, HTTP/1.0 and
//! HTTP/2, TLS targets, a connectivity or corporate proxy, shared tenant mode, the headers of
//! PROXY.md §3.2) goes to hyper (`forward`): the connection is handed over with the bytes read so
//! far ([`Replay`]) and stays with hyper. Resolution, the injected headers and the errors are
//! `forward`'s own, so both paths answer alike (`tests/proxy.rs` compares them in
//! `the_lean_path_and_hyper_send_and_answer_alike`).
//!
//! Its modules: `target` (the worker's pool of target connections, the exchange, the answer's
//! framing and relay), `chunked` (where a chunked body ends), `replay` (the handover to hyper).

mod chunked;
mod replay;
mod target;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

pub use replay::Replay;
use target::exchange;
pub use target::Framing;

use crate::body::ProxyBody;
use crate::config::TenantMode;
use crate::egress::{SendError, Sender};
use crate::error::{Origin, ProxyError};
use crate::forward::{self, PlainTarget};
use crate::metrics::Metrics;
use crate::resolve::{Cached, CallerCredentials};
use crate::routing;
use crate::state::{Shared, Snapshot};

/// Longest request or answer head.
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a head.
pub const MAX_HEADERS: usize = 96;
/// How long a workload may take to send a head, and how long a connection may idle between
/// requests (hyper's `header_read_timeout` on the other path).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an idle target connection is kept, and how many per target and worker.
const POOL_IDLE: Duration = Duration::from_secs(60);
const POOL_MAX: usize = 256;
/// Read size while relaying a body.
const CHUNK: usize = 64 * 1024;

/// Serves `stream` on the lean path until it closes (`None`) or a request needs hyper: then the
/// connection with every byte read and not yet served (`Some`). Between requests it ends when
/// `stopping` turns true (the proxy is shutting down).
pub async fn serve(
    shared: &Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    stopping: &mut watch::Receiver<bool>,
) -> Option<Replay> {
    let mut buf = BytesMut::with_capacity(4 * 1024);
    let mut conn = Connection {
        peer_ip: peer.ip().to_string(),
        memo: None,
    };
    loop {
        let mut searched = 0;
        let head_len = loop {
            if let Some(end) = head_end(&buf, searched) {
                break end;
            }
            if buf.len() >= MAX_HEAD {
                return Some(Replay::new(stream, buf.freeze()));
            }
            searched = buf.len().saturating_sub(3);
            let idle = buf.is_empty();
            buf.reserve(4 * 1024);
            let read = tokio::select! {
                r = tokio::time::timeout(HEAD_TIMEOUT, stream.read_buf(&mut buf)) => r,
                _ = stopping.wait_for(|s| *s), if idle => return None,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                // Closed, failed, or silent for too long: a head begun is not answered (hyper
                // does the same).
                _ => return None,
            }
        };
        let head = buf.split_to(head_len);
        match handle(shared, &head, &mut conn, &mut stream).await {
            Step::Next if !*stopping.borrow() => {}
            Step::Next | Step::Close => return None,
            Step::Handover => {
                let mut all = BytesMut::with_capacity(head.len() + buf.len());
                all.extend_from_slice(&head);
                all.extend_from_slice(&buf);
                return Some(Replay::new(stream, all.freeze()));
            }
        }
    }
}

/// The end of the head (after its blank line) in `buf`, looked for from `from` on.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4)
}

/// What the lean path keeps of one workload connection between its requests.
#[derive(Debug)]
struct Connection {
    peer_ip: String,
    /// What its last request resolved to: a workload sends its requests to one destination,
    /// mostly, and those then skip routing and the resolver's shared map.
    memo: Option<Memo>,
}

/// A request's route and fresh destination, valid while the snapshot is the same one (its
/// `generation`) and the cached answer fresh.
#[derive(Debug)]
struct Memo {
    generation: u64,
    host: String,
    snapshot: Arc<Snapshot>,
    route: usize,
    /// The destination's name, for errors.
    destination: String,
    cached: Arc<Cached>,
    prepared: Arc<forward::Prepared>,
}

/// What comes after one request.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Answered; the connection stays open for the next request.
    Next,
    /// The connection ends (answered until the target closed, or a side failed).
    Close,
    /// Nothing was written: hyper serves this request and the rest of the connection.
    Handover,
}

/// Serves the request whose complete head is `head`.
async fn handle(
    shared: &Arc<Shared>,
    head: &[u8],
    conn: &mut Connection,
    down: &mut TcpStream,
) -> Step {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return Step::Handover;
    }
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Step::Handover;
    };
    let Some(caller) = Caller::of(method, target, req.headers) else {
        return Step::Handover;
    };
    let head_request = method == "HEAD";
    let request_id = signpost_wire::request_id::request_id(caller.request_id);
    let started = Instant::now();
    // Read before the snapshot: a swap after this read invalidates what this request memoises.
    let generation = shared.generation();
    let memo = conn.memo.take().filter(|m| {
        m.generation == generation
            && m.host == caller.host
            && m.cached.fresh(m.snapshot.config.cache_ttl, started)
    });
    let (memo, stale) = match memo {
        Some(m) => {
            Metrics::inc(&shared.metrics.cache_hits);
            (m, false)
        }
        None => {
            let snapshot = shared.snapshot();
            if snapshot.config.tenant_mode != TenantMode::Dedicated {
                return Step::Handover;
            }
            let Some(route) = snapshot.routes.position(caller.host) else {
                let e = ProxyError::new(
                    StatusCode::NOT_FOUND,
                    Origin::Proxy,
                    format!("No Destination resource serves the host '{}'", caller.host),
                );
                return respond(
                    down,
                    forward::fail(shared, "-", &request_id, e),
                    head_request,
                )
                .await;
            };
            let entry = &snapshot.routes.routes()[route];
            let fail = |e| forward::fail(shared, &entry.id, &request_id, e);
            let lookup = match routing::lookup_for(&entry.route, &HeaderMap::new()) {
                Ok(l) => l,
                Err(e) => return respond(down, fail(e), head_request).await,
            };
            let creds = CallerCredentials::default();
            let prepared =
                forward::prepare(shared, &snapshot, entry, &lookup, &creds, None, &request_id)
                    .await;
            let (resolved, prepared) = match prepared {
                Ok(p) => p,
                Err(e) => return respond(down, fail(e), head_request).await,
            };
            let stale = resolved.stale.is_some();
            let memo = Memo {
                generation,
                host: caller.host.to_owned(),
                snapshot,
                route,
                destination: lookup.name,
                cached: resolved.cached,
                prepared,
            };
            (memo, stale)
        }
    };
    let entry = &memo.snapshot.routes.routes()[memo.route];
    let prepared = &memo.prepared;
    let Some(plain) = &prepared.plain else {
        return Step::Handover;
    };
    if !matches!(prepared.client.get(), Sender::Direct(_)) {
        return Step::Handover;
    }
    let out = caller.target_head(prepared, plain, &conn.peer_ip);
    let guarded = !shared.egress.allow_private();
    let profile = &prepared.profile;
    let retry = &memo.snapshot.config.retry;
    let mut attempt = 0u32;
    let answer = loop {
        let sent = Instant::now();
        let outcome = tokio::time::timeout(
            profile.read_timeout,
            exchange(
                plain,
                guarded,
                profile.connect_timeout,
                &out,
                caller.idempotent,
                head_request,
            ),
        )
        .await
        .unwrap_or_else(|elapsed| {
            Err(SendError {
                connect: false,
                timeout: true,
                source: Box::new(elapsed),
            })
        });
        shared.metrics.target_latency(sent.elapsed());
        let retryable = match &outcome {
            Ok(a) => retry.status_codes.contains(&a.status),
            Err(e) => e.connect || e.timeout,
        };
        if retryable && attempt < retry.max_retries {
            attempt += 1;
            tracing::debug!(request_id = %request_id, attempt, "retrying the target");
            continue;
        }
        match outcome {
            Ok(a) => break a,
            Err(e) => {
                let e = forward::target_error(&e, &memo.destination, memo.prepared.reasons);
                let res = forward::fail(shared, &entry.id, &request_id, e);
                return respond(down, res, head_request).await;
            }
        }
    };
    let status = answer.status;
    let step = answer.relay(down, plain, profile.read_timeout).await;
    entry.counters.count(status);
    tracing::debug!(
        request_id = %request_id,
        route = %entry.id,
        status,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "forwarded"
    );
    // An answer served stale is not memoised: the next request tries the service again.
    if !stale {
        conn.memo = Some(memo);
    }
    step
}

/// What the lean path takes from a workload's request head.
#[derive(Debug)]
struct Caller<'h> {
    method: &'h str,
    path: &'h str,
    query: Option<&'h str>,
    host: &'h str,
    forwarded_for: Option<&'h str>,
    request_id: Option<&'h str>,
    /// Whether the target may be sent it again on another connection (RFC 9110 §9.2.2).
    idempotent: bool,
    fields: &'h [httparse::Header<'h>],
}

impl<'h> Caller<'h> {
    /// The request, when the lean path serves it.
    fn of(method: &'h str, target: &'h str, fields: &'h [httparse::Header<'h>]) -> Option<Self> {
        if method == "CONNECT" || !target.starts_with('/') {
            return None;
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        if !plain_path(path) || !query.is_none_or(plain_query) {
            return None;
        }
        let mut host = None;
        let mut forwarded_for = None;
        let mut request_id = None;
        let mut length = false;
        for field in fields {
            let name = field.name;
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            let value = std::str::from_utf8(field.value).ok()?;
            if is("host") {
                if host.replace(value.trim()).is_some() {
                    return None;
                }
            } else if is("content-length") {
                // Only an empty body: anything else is streamed by hyper.
                if length || value.trim() != "0" {
                    return None;
                }
                length = true;
            } else if is("connection") {
                if !value.trim().eq_ignore_ascii_case("keep-alive") {
                    return None;
                }
            } else if is("x-forwarded-for") {
                if forwarded_for.replace(value.trim()).is_some() {
                    return None;
                }
            } else if is("x-request-id") {
                request_id = Some(value);
            } else if is("expect")
                || routing::steers(name)
                || forward::HOP_BY_HOP.iter().any(|h| is(h))
            {
                // A body in chunks, an upgrade, a header of PROXY.md §3.2: hyper's and
                // `forward`'s.
                return None;
            }
        }
        Some(Self {
            method,
            path,
            query,
            host: host.filter(|h| !h.is_empty())?,
            forwarded_for,
            request_id,
            idempotent: matches!(
                method,
                "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE" | "TRACE"
            ),
            fields,
        })
    }

    /// The head of the request to the target: `forward`'s URL joining, injected headers and
    /// `X-Forwarded-*`, written as HTTP/1.1.
    fn target_head(
        &self,
        prepared: &forward::Prepared,
        plain: &PlainTarget,
        peer_ip: &str,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        if self.path != "/" || prepared.base_path.is_empty() {
            out.extend_from_slice(prepared.base_path.as_bytes());
            out.extend_from_slice(self.path.as_bytes());
        } else {
            out.extend_from_slice(prepared.url.path().as_bytes());
        }
        let mut has_query = true;
        match (
            prepared.base_query.as_deref(),
            self.query.filter(|q| !q.is_empty()),
        ) {
            (_, None) => match prepared.url.query() {
                Some(b) => push_all(&mut out, &[b"?", b.as_bytes()]),
                None => has_query = false,
            },
            (None, Some(q)) => push_all(&mut out, &[b"?", q.as_bytes()]),
            (Some(b), Some(q)) => push_all(&mut out, &[b"?", b.as_bytes(), b"&", q.as_bytes()]),
        }
        for (k, v) in &prepared.queries {
            if !has_query {
                out.push(b'?');
                has_query = true;
            } else if out.last() != Some(&b'?') {
                out.push(b'&');
            }
            for part in url::form_urlencoded::byte_serialize(k.as_bytes()) {
                out.extend_from_slice(part.as_bytes());
            }
            out.push(b'=');
            for part in url::form_urlencoded::byte_serialize(v.as_bytes()) {
                out.extend_from_slice(part.as_bytes());
            }
        }
        push_all(
            &mut out,
            &[b" HTTP/1.1\r\nhost: ", plain.authority.as_bytes(), b"\r\n"],
        );
        for field in self.fields {
            let name = field.name;
            let is = |n: &str| name.eq_ignore_ascii_case(n);
            let dropped = is("host")
                || is("connection")
                || is("x-forwarded-for")
                || is("x-forwarded-proto")
                || is("x-forwarded-host")
                || prepared.set_headers.iter().any(|(n, _)| is(n.as_str()));
            if !dropped {
                push_all(&mut out, &[name.as_bytes(), b": ", field.value, b"\r\n"]);
            }
        }
        for (name, value) in prepared.set_headers.iter().chain(&prepared.add_headers) {
            push_all(
                &mut out,
                &[name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"],
            );
        }
        match self.forwarded_for {
            Some(prev) => push_all(
                &mut out,
                &[
                    b"x-forwarded-for: ",
                    prev.as_bytes(),
                    b", ",
                    peer_ip.as_bytes(),
                    b"\r\n",
                ],
            ),
            None => push_all(
                &mut out,
                &[b"x-forwarded-for: ", peer_ip.as_bytes(), b"\r\n"],
            ),
        }
        push_all(
            &mut out,
            &[
                b"x-forwarded-proto: http\r\nx-forwarded-host: ",
                self.host.as_bytes(),
                b"\r\n\r\n",
            ],
        );
        out
    }
}

fn push_all(out: &mut Vec<u8>, parts: &[&[u8]]) {
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// A path the URL parser keeps as it is (no dot segments, nothing it would percent-encode), so
/// that joining it here gives what `forward` gives.
fn plain_path(path: &str) -> bool {
    !path.contains("/.")
        && !path.to_ascii_lowercase().contains("%2e")
        && path.bytes().all(|b| kept_by_url(b) || b == b'\'')
}

/// A query the URL parser keeps as it is (it encodes `'` in a query, not in a path).
fn plain_query(query: &str) -> bool {
    query.bytes().all(|b| kept_by_url(b) || b == b'?')
}

/// Bytes the URL parser leaves alone in a path and in a query: unreserved characters, the
/// sub-delimiters but `'`, `:`, `@`, `/` and `%` (escapes stay as they are).
fn kept_by_url(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'%'
        )
}

/// Writes `res` (one of the proxy's own answers, small) and keeps the connection.
async fn respond(down: &mut TcpStream, res: http::Response<ProxyBody>, head_request: bool) -> Step {
    let (parts, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(256 + body.len());
    let reason = parts.status.canonical_reason().unwrap_or("");
    push_all(
        &mut out,
        &[
            b"HTTP/1.1 ",
            parts.status.as_str().as_bytes(),
            b" ",
            reason.as_bytes(),
            b"\r\n",
        ],
    );
    for (name, value) in &parts.headers {
        push_all(
            &mut out,
            &[name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"],
        );
    }
    push_all(
        &mut out,
        &[
            b"content-length: ",
            body.len().to_string().as_bytes(),
            b"\r\n\r\n",
        ],
    );
    if !head_request {
        out.extend_from_slice(&body);
    }
    match down.write_all(&out).await {
        Ok(()) => Step::Next,
        Err(_) => Step::Close,
    }
}

/// What the lean path makes of a target's answer, read from bytes instead of a connection: for
/// the fuzz target `proxy_answer` (`crates/signpost-fuzz`), which checks it against itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerSeen {
    pub status: u16,
    /// The head written to the workload.
    pub head: Vec<u8>,
    pub framing: Framing,
    pub keep_alive: bool,
    /// For a chunked body: where it ends in the bytes after the head.
    pub chunked: Option<ChunkedEnd>,
}

/// Where a chunked body ends in the bytes read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedEnd {
    /// After this many bytes: what follows belongs to the next answer.
    Found(usize),
    /// Not in these bytes: more must be read.
    Open,
    /// They are not a chunked body: the proxy closes both connections.
    Broken,
}

/// Reads `raw` as [`target`]'s `Answer::read` and `relay` do: interim (1xx) answers skipped, the
/// final head rewritten for the workload, and for a chunked body its end looked for in what
/// follows, fed to the scanner in the pieces `cuts` gives (byte offsets). `None` when the head is
/// incomplete; an error as the proxy would give it (a 502).
pub fn read_answer(
    raw: &[u8],
    head_request: bool,
    cuts: &[usize],
) -> Result<Option<AnswerSeen>, String> {
    let mut at = 0;
    loop {
        let Some((len, status, final_head)) = target::parse_head(&raw[at..], head_request)? else {
            return Ok(None);
        };
        // An interim answer (1xx): the final one follows.
        let Some((head, framing, keep_alive)) = final_head else {
            at += len;
            continue;
        };
        let body = &raw[at + len..];
        let chunked = (framing == Framing::Chunked).then(|| {
            let mut scanner = chunked::ChunkScanner::default();
            let mut used = 0;
            let mut from = 0;
            for to in cuts.iter().copied().chain([body.len()]) {
                let to = to.clamp(from, body.len());
                match scanner.feed(&body[from..to]) {
                    Ok(n) => used += n,
                    Err(()) => return ChunkedEnd::Broken,
                }
                if scanner.done() {
                    return ChunkedEnd::Found(used);
                }
                from = to;
            }
            ChunkedEnd::Open
        });
        return Ok(Some(AnswerSeen {
            status,
            head,
            framing,
            keep_alive,
            chunked,
        }));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nGET", 0), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
        // The search goes on three bytes before where the last one ended.
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\n", 17 - 3), Some(18));
        assert_eq!(head_end(b"", 0), None);
    }

    #[test]
    fn only_plain_requests_take_the_lean_path() {
        let parse = |head: &'static [u8]| {
            let fields = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
            let req = Box::leak(Box::new(httparse::Request::new(fields)));
            // What httparse refuses goes to hyper too (which answers 400).
            matches!(req.parse(head), Ok(httparse::Status::Complete(_)))
                && Caller::of(req.method.unwrap(), req.path.unwrap(), req.headers).is_some()
        };
        assert!(parse(
            b"GET /a/b.txt?x=1&y=%20 HTTP/1.1\r\nHost: d.default\r\nAccept: */*\r\n\r\n"
        ));
        assert!(parse(
            b"DELETE /a HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"
        ));
        for head in [
            &b"GET /a HTTP/1.1\r\n\r\n"[..],
            b"GET /a HTTP/1.1\r\nHost: d\r\nHost: e\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\n",
            b"POST /a HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nAuthorization: Bearer x\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nX-Destination-Name: x\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nX-Chain-Var-Subject: x\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: d\r\nExpect: 100-continue\r\n\r\n",
            b"GET /a/../b HTTP/1.1\r\nHost: d\r\n\r\n",
            b"GET /a/%2E%2e/b HTTP/1.1\r\nHost: d\r\n\r\n",
            b"GET /a b HTTP/1.1\r\nHost: d\r\n\r\n",
            b"GET /a?q=\"x\" HTTP/1.1\r\nHost: d\r\n\r\n",
            b"GET http://d/a HTTP/1.1\r\nHost: d\r\n\r\n",
            b"CONNECT d:80 HTTP/1.1\r\nHost: d\r\n\r\n",
        ] {
            assert!(!parse(head), "{}", String::from_utf8_lossy(head));
        }
    }
}
