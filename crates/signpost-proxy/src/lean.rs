//! The lean path of the data plane: the common request (HTTP/1.1, no body, no header that
//! steers the proxy, a static route to a plain `http://` target reached directly) served without
//! hyper's two state machines and header maps. Its head is parsed once in place (`httparse`), the
//! target's head written in one buffer, the answer's head read in place and its body relayed as it
//! comes (its own length, raw chunks, or until the target closes), over a keep-alive pool of the
//! worker's own target connections. Everything else (a body, `Expect`, upgrades, HTTP/1.0 and
//! HTTP/2, TLS targets, a connectivity or corporate proxy, shared tenant mode, the headers of
//! PROXY.md §3.2) goes to hyper (`forward`): the connection is handed over with the bytes read so
//! far ([`Replay`]) and stays with hyper. Resolution, the injected headers and the errors are
//! `forward`'s own, so both paths answer alike (tests/lean.rs compares them).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

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
const MAX_HEADERS: usize = 96;
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
                &caller,
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
                let e = forward::target_error(&e, &memo.destination);
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
            } else if is("expect") || steers(name) || forward::HOP_BY_HOP.iter().any(|h| is(h)) {
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

/// A header of PROXY.md §3.2 (the control headers, `x-chain-var-*`, `Authorization`, the location
/// id): `forward` reads those.
fn steers(name: &str) -> bool {
    let lower = |n: &str| name.eq_ignore_ascii_case(n);
    name.get(..12)
        .is_some_and(|p| p.eq_ignore_ascii_case("x-chain-var-"))
        || routing::CONTROL_HEADERS.iter().any(|h| lower(h))
        || routing::OTHER_SINGLE_HEADERS.iter().any(|h| lower(h))
}

/// A path the URL parser keeps as it is (no dot segments, nothing it would percent-encode), so
/// that joining it here gives what `forward` gives.
fn plain_path(path: &str) -> bool {
    !path.contains("/.")
        && !path.to_ascii_lowercase().contains("%2e")
        && path.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
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
        })
}

/// A query the URL parser keeps as it is.
fn plain_query(query: &str) -> bool {
    query.bytes().all(|b| {
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
                    | b'?'
                    | b'%'
            )
    })
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

// ------------------------------------------------------------------ the target

thread_local! {
    /// The worker's idle target connections by [`PlainTarget::pool_key`], newest last.
    static POOL: RefCell<HashMap<String, Vec<(TcpStream, Instant)>>> = RefCell::new(HashMap::new());
}

fn take_idle(key: &str) -> Option<TcpStream> {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = pool.get_mut(key)?;
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < POOL_IDLE {
                return Some(conn);
            }
        }
        None
    })
}

fn put_idle(key: &str, conn: TcpStream) {
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let idle = match pool.get_mut(key) {
            Some(idle) => idle,
            None => pool.entry(key.to_owned()).or_default(),
        };
        let expired = idle
            .iter()
            .take_while(|(_, since)| since.elapsed() >= POOL_IDLE)
            .count();
        let over = (idle.len() + 1).saturating_sub(POOL_MAX);
        idle.drain(..expired.max(over));
        idle.push((conn, Instant::now()));
    });
}

fn send_error(connect: bool, e: impl Into<crate::body::BoxError>) -> SendError {
    let source = e.into();
    let timeout = source
        .downcast_ref::<io::Error>()
        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
    SendError {
        connect,
        timeout,
        source,
    }
}

/// A new connection to `plain`; `guarded`: only to public addresses.
async fn connect(
    plain: &PlainTarget,
    guarded: bool,
    timeout: Duration,
) -> Result<TcpStream, SendError> {
    let addrs: Vec<SocketAddr> = if guarded {
        signpost_net::resolve_public(&plain.host)
            .await
            .map_err(|e| send_error(true, e))?
            .into_iter()
            .map(|a| SocketAddr::new(a.ip(), plain.port))
            .collect()
    } else if let Ok(ip) = plain.host.parse::<IpAddr>() {
        vec![SocketAddr::new(ip, plain.port)]
    } else {
        tokio::net::lookup_host((plain.host.as_str(), plain.port))
            .await
            .map_err(|e| send_error(true, e))?
            .collect()
    };
    let attempt = async {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(conn) => {
                    let _ = conn.set_nodelay(true);
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(send_error(true, e)),
        Err(_) => Err(send_error(
            true,
            io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"),
        )),
    }
}

/// Sends the request head `out` and reads the answer's head. A kept connection the target closed
/// meanwhile is replaced by a new one when nothing of the answer came (only for idempotent
/// requests: others always get a new connection).
async fn exchange(
    plain: &PlainTarget,
    guarded: bool,
    connect_timeout: Duration,
    out: &[u8],
    caller: &Caller<'_>,
    head_request: bool,
) -> Result<Answer, SendError> {
    let mut kept = if caller.idempotent {
        take_idle(&plain.pool_key)
    } else {
        None
    };
    loop {
        let reused = kept.is_some();
        let mut conn = match kept.take() {
            Some(c) => c,
            None => connect(plain, guarded, connect_timeout).await?,
        };
        if let Err(e) = conn.write_all(out).await {
            if reused {
                kept = take_idle(&plain.pool_key);
                continue;
            }
            return Err(send_error(false, e));
        }
        match Answer::read(conn, head_request).await {
            Ok(answer) => return Ok(answer),
            Err((nothing, _)) if nothing && reused => {
                kept = take_idle(&plain.pool_key);
            }
            Err((_, e)) => return Err(e),
        }
    }
}

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the target closes.
    Close,
}

/// The target's answer, its head read and rewritten for the workload.
#[derive(Debug)]
struct Answer {
    conn: TcpStream,
    status: u16,
    /// The head for the workload.
    head: Vec<u8>,
    framing: Framing,
    /// The target keeps the connection open after this answer.
    keep_alive: bool,
    /// What was read after the head.
    rest: BytesMut,
}

impl Answer {
    /// Reads the answer's head; the error says whether nothing at all came.
    async fn read(mut conn: TcpStream, head_request: bool) -> Result<Self, (bool, SendError)> {
        let mut buf = BytesMut::with_capacity(8 * 1024);
        let mut received = false;
        loop {
            let parsed = {
                let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut res = httparse::Response::new(&mut fields);
                match res.parse(&buf) {
                    Ok(httparse::Status::Complete(len)) => {
                        let status = res.code.unwrap_or(0);
                        if status == 101 {
                            Err("the target switched protocols without being asked to".into())
                        } else if (100..200).contains(&status) {
                            Ok(Some((len, status, None)))
                        } else {
                            rewrite(&res, head_request)
                                .map(|head| Some((len, status, Some(head))))
                                .map_err(String::from)
                        }
                    }
                    Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => Ok(None),
                    Ok(httparse::Status::Partial) => {
                        Err("the target's answer head is too large".to_owned())
                    }
                    Err(e) => Err(format!("the target's answer is not HTTP/1.1: {e}")),
                }
            };
            match parsed {
                Err(e) => return Err((false, send_error(false, e))),
                // An interim answer (100 Continue, 103 Early Hints): the final one follows.
                Ok(Some((len, _, None))) => {
                    buf.advance(len);
                    continue;
                }
                Ok(Some((len, status, Some((head, framing, keep_alive))))) => {
                    buf.advance(len);
                    return Ok(Self {
                        conn,
                        status,
                        head,
                        framing,
                        keep_alive,
                        rest: buf,
                    });
                }
                Ok(None) => {}
            }
            buf.reserve(8 * 1024);
            match conn.read_buf(&mut buf).await {
                Ok(0) => {
                    return Err((
                        !received,
                        send_error(false, "the target closed the connection before answering"),
                    ))
                }
                Ok(_) => received = true,
                Err(e) => return Err((!received, send_error(false, e))),
            }
        }
    }

    /// Relays the head and the body to the workload, then keeps the target connection for the
    /// next request when it can be.
    async fn relay(
        self,
        down: &mut TcpStream,
        plain: &PlainTarget,
        read_timeout: Duration,
    ) -> Step {
        let Self {
            mut conn,
            head,
            framing,
            keep_alive,
            mut rest,
            ..
        } = self;
        let mut out = head;
        let mut chunks = ChunkScanner::default();
        // What the first read holds of the body, and what is left to come.
        let (first, mut left) = match framing {
            Framing::Empty => (0, 0),
            Framing::Length(n) => {
                let first = rest.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                (first, n - first as u64)
            }
            Framing::Chunked => match chunks.feed(&rest) {
                Ok(used) => (used, u64::from(!chunks.done())),
                Err(()) => return Step::Close,
            },
            Framing::Close => (rest.len(), 1),
        };
        out.extend_from_slice(&rest[..first]);
        let mut extra = rest.len() > first;
        if down.write_all(&out).await.is_err() {
            return Step::Close;
        }
        drop(out);
        while left > 0 {
            rest.clear();
            rest.reserve(CHUNK);
            let n = match tokio::time::timeout(read_timeout, conn.read_buf(&mut rest)).await {
                Ok(Ok(n)) => n,
                // The target failed or went quiet mid-body: the workload's answer is cut off.
                _ => return Step::Close,
            };
            if n == 0 {
                if framing == Framing::Close {
                    break;
                }
                return Step::Close;
            }
            let used = match framing {
                Framing::Length(_) => {
                    let used = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    left -= used as u64;
                    used
                }
                Framing::Chunked => match chunks.feed(&rest) {
                    Ok(used) => {
                        left = u64::from(!chunks.done());
                        used
                    }
                    Err(()) => return Step::Close,
                },
                _ => rest.len(),
            };
            extra = rest.len() > used;
            if down.write_all(&rest[..used]).await.is_err() {
                return Step::Close;
            }
        }
        if framing == Framing::Close {
            let _ = down.shutdown().await;
            return Step::Close;
        }
        if keep_alive && !extra {
            put_idle(&plain.pool_key, conn);
        }
        Step::Next
    }
}

/// The workload's head for the target's answer `res`: hop-by-hop headers and those its
/// `Connection` names removed (`Transfer-Encoding` kept when the chunks are relayed as they are),
/// `Connection: close` added when the body ends with the connection. With the body's framing and
/// whether the target keeps the connection.
fn rewrite(
    res: &httparse::Response<'_, '_>,
    head_request: bool,
) -> Result<(Vec<u8>, Framing, bool), &'static str> {
    let status = res.code.unwrap_or(0);
    let mut named: Vec<&str> = Vec::new();
    let mut close = res.version != Some(1);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for field in res.headers.iter() {
        let is = |n: &str| field.name.eq_ignore_ascii_case(n);
        let value = std::str::from_utf8(field.value).unwrap_or("");
        if is("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") && res.version == Some(0) {
                    close = false;
                } else if !token.is_empty() {
                    named.push(token);
                }
            }
        } else if is("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(chunked.unwrap_or(true) && last.eq_ignore_ascii_case("chunked"));
        } else if is("content-length") {
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| "the target's Content-Length is not a number")?;
            if length.is_some_and(|l| l != n) {
                return Err("the target sent two different Content-Length headers");
            }
            length = Some(n);
        }
    }
    let framing = if head_request || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    let reason = res
        .reason
        .filter(|r| !r.is_empty())
        .or_else(|| {
            StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
        })
        .unwrap_or("");
    let mut out = Vec::with_capacity(512);
    push_all(
        &mut out,
        &[
            b"HTTP/1.1 ",
            &status_digits(status),
            b" ",
            reason.as_bytes(),
            b"\r\n",
        ],
    );
    for field in res.headers.iter() {
        let is = |n: &str| field.name.eq_ignore_ascii_case(n);
        let dropped = (is("transfer-encoding") && framing != Framing::Chunked)
            || (is("content-length") && framing == Framing::Chunked)
            || (forward::HOP_BY_HOP.iter().any(|h| is(h)) && !is("transfer-encoding"))
            || named.iter().any(|n| is(n));
        if !dropped {
            push_all(
                &mut out,
                &[field.name.as_bytes(), b": ", field.value, b"\r\n"],
            );
        }
    }
    if framing == Framing::Close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((out, framing, !close && framing != Framing::Close))
}

/// A status code's three digits.
fn status_digits(status: u16) -> [u8; 3] {
    let digit = |d: u16| b'0' + (d % 10) as u8;
    [digit(status / 100), digit(status / 10), digit(status)]
}

/// Finds the end of a chunked body (RFC 9112 §7.1) in the bytes as they come, without decoding
/// it: the chunks are relayed as they are.
#[derive(Debug, Default)]
struct ChunkScanner {
    state: Chunk,
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    #[default]
    Size,
    /// A chunk extension, up to the line's end.
    Extension,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: a trailer field or the final blank line.
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl ChunkScanner {
    fn done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Reads `bytes`; how many of them belong to the body (all, until its end).
    fn feed(&mut self, bytes: &[u8]) -> Result<usize, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                Chunk::Done => return Ok(i),
                Chunk::Data(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    if take == left {
                        self.state = Chunk::DataCr;
                    } else {
                        self.state = Chunk::Data(left - take);
                    }
                    continue;
                }
                Chunk::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16).ok_or(())?;
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err(());
                        }
                        self.size = self.size * 16 + u64::from(digit);
                        Chunk::Size
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => Chunk::Extension,
                    b'\r' if self.digits > 0 => Chunk::SizeLf,
                    _ => return Err(()),
                },
                Chunk::Extension => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\n' => return Err(()),
                    _ => Chunk::Extension,
                },
                Chunk::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    let size = std::mem::take(&mut self.size);
                    self.digits = 0;
                    if size == 0 {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Data(size)
                    }
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataLf if b == b'\n' => Chunk::Size,
                Chunk::DataCr | Chunk::DataLf => return Err(()),
                Chunk::TrailerStart if b == b'\r' => Chunk::EndLf,
                Chunk::TrailerStart | Chunk::Trailer if b != b'\r' => Chunk::Trailer,
                Chunk::Trailer => Chunk::TrailerLf,
                Chunk::TrailerLf if b == b'\n' => Chunk::TrailerStart,
                Chunk::EndLf if b == b'\n' => Chunk::Done,
                Chunk::TrailerStart | Chunk::TrailerLf | Chunk::EndLf => return Err(()),
            };
            i += 1;
        }
        Ok(i)
    }
}

// ------------------------------------------------------------------ the handover

/// A workload's connection handed to hyper: what was read of it already comes first.
#[derive(Debug)]
pub struct Replay {
    stream: TcpStream,
    read: Bytes,
}

impl Replay {
    pub fn new(stream: TcpStream, read: Bytes) -> Self {
        Self { stream, read }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let n = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read[..n]);
        self.read.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scan(parts: &[&[u8]]) -> Result<(usize, bool), ()> {
        let mut s = ChunkScanner::default();
        let mut used = 0;
        for p in parts {
            used += s.feed(p)?;
        }
        Ok((used, s.done()))
    }

    #[test]
    fn the_end_of_a_chunked_body_is_found_however_it_is_split() {
        let body: &[u8] =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 0..=body.len() {
            let (a, b) = body.split_at(split);
            assert_eq!(scan(&[a, b]), Ok((body.len(), true)), "split at {split}");
        }
        // Byte by byte, and with the next answer behind it.
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(scan(&bytes), Ok((body.len(), true)));
        let mut more = body.to_vec();
        more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(scan(&[&more]), Ok((body.len(), true)));
        assert_eq!(scan(&[b"0\r\n\r\n"]), Ok((5, true)));
        assert_eq!(scan(&[b"3\r\nabc\r\n"]), Ok((8, false)));
    }

    #[test]
    fn a_broken_chunked_body_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"3\nabc",
            b"ffffffffffffffff\r\n",
            b"0\r\n\rX",
        ] {
            assert_eq!(scan(&[bad]), Err(()), "{}", String::from_utf8_lossy(bad));
        }
    }

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

    #[test]
    fn answers_keep_their_framing_and_lose_hop_by_hop_headers() {
        let head = |raw: &'static [u8], head_request: bool| {
            let fields = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
            let res = Box::leak(Box::new(httparse::Response::new(fields)));
            res.parse(raw).unwrap();
            let (out, framing, keep) = rewrite(res, head_request).unwrap();
            (String::from_utf8(out).unwrap(), framing, keep)
        };
        let (out, framing, keep) = head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\nKeep-Alive: timeout=5\r\nETag: \"a\"\r\n\r\n",
            false,
        );
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"a\"\r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Length(5), true));
        let (out, framing, _) = head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            false,
        );
        assert_eq!(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(framing, Framing::Chunked);
        let (out, framing, keep) = head(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", false);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nServer: x\r\nconnection: close\r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Close, false));
        let (_, framing, keep) = head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true);
        assert_eq!((framing, keep), (Framing::Empty, true));
        let (_, framing, keep) = head(
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!((framing, keep), (Framing::Empty, false));
        let fields = Box::leak(Box::new([httparse::EMPTY_HEADER; MAX_HEADERS]));
        let res = Box::leak(Box::new(httparse::Response::new(fields)));
        res.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")
            .unwrap();
        assert!(rewrite(res, false).is_err());
    }
}
