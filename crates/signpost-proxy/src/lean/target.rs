//! The target side of the lean path: the worker's keep-alive pool of target connections,
//! connecting through the private-address guard, the exchange of a request head for an answer
//! head, and the relay of the answer's body by its framing (RFC 9112 §6.3).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::chunked::ChunkScanner;
use super::{push_all, Step, CHUNK, MAX_HEAD, MAX_HEADERS, POOL_IDLE, POOL_MAX};
use crate::egress::SendError;
use crate::forward::{self, PlainTarget};

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

pub(super) fn send_error(connect: bool, e: impl Into<crate::body::BoxError>) -> SendError {
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
pub(super) async fn exchange(
    plain: &PlainTarget,
    guarded: bool,
    connect_timeout: Duration,
    out: &[u8],
    idempotent: bool,
    head_request: bool,
) -> Result<Answer, SendError> {
    let mut kept = if idempotent {
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
pub enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the target closes.
    Close,
}

/// The target's answer, its head read and rewritten for the workload.
#[derive(Debug)]
pub(super) struct Answer {
    conn: TcpStream,
    pub(super) status: u16,
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
            let parsed = parse_head(&buf, head_request).and_then(|parsed| match parsed {
                None if buf.len() >= MAX_HEAD => {
                    Err("the target's answer head is too large".to_owned())
                }
                parsed => Ok(parsed),
            });
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
    pub(super) async fn relay(
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

/// One answer head at the start of `buf`: `None` while it is incomplete; else the bytes it
/// takes, its status, and for a final answer (not 1xx) the head rewritten for the workload
/// ([`rewrite`]) with its framing and whether the target keeps the connection.
pub(super) type ParsedHead = (usize, u16, Option<(Vec<u8>, Framing, bool)>);

/// Parses the answer head at the start of `buf` ([`ParsedHead`]); an error as the workload's 502
/// says it.
pub(super) fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<ParsedHead>, String> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut fields);
    match res.parse(buf) {
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
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("the target's answer is not HTTP/1.1: {e}")),
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
    let code = StatusCode::from_u16(res.code.unwrap_or(0))
        .map_err(|_| "the target's answer has no valid status code")?;
    let status = code.as_u16();
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
        .or_else(|| code.canonical_reason())
        .unwrap_or("");
    let mut out = Vec::with_capacity(512);
    push_all(
        &mut out,
        &[
            b"HTTP/1.1 ",
            code.as_str().as_bytes(),
            b" ",
            reason.as_bytes(),
            b"\r\n",
        ],
    );
    for field in res.headers.iter() {
        let is = |n: &str| field.name.eq_ignore_ascii_case(n);
        let dropped = (is("transfer-encoding") && framing != Framing::Chunked)
            // A length beside a transfer coding is void (RFC 9112 §6.3): never forwarded.
            || (is("content-length") && chunked.is_some())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
