//! `signpost-net`: the private-address guard shared by everything in Signpost that sends requests
//! to addresses it did not choose itself (token services of destinations, the proxy's targets).
//! [`is_private`] says which IP addresses count as private (loopback, RFC 1918, link-local,
//! CGNAT, benchmarking, multicast, IPv6 ULA and friends, and IPv4 addresses embedded in IPv6);
//! [`check_public`] checks a URL's host once; [`PublicOnly`] is a reqwest DNS resolver that drops
//! private addresses on every resolution, so that a later DNS answer cannot smuggle a private
//! address in. Small on purpose: it must not depend on the store, the API or the OAuth crate.
#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True for addresses a request to "the Internet" must not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

/// IPv4: `0.0.0.0/8`, loopback `127/8`, RFC 1918 (`10/8`, `172.16/12`, `192.168/16`),
/// link-local `169.254/16`, CGNAT `100.64/10`, IETF protocol assignments `192.0.0/24`,
/// benchmarking `198.18/15`, multicast `224/4`, reserved `240/4` and broadcast.
fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space (CGNAT) 100.64.0.0/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments 192.0.0.0/24
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || ip.is_multicast()
        || o[0] >= 240 // reserved 240.0.0.0/4 and broadcast 255.255.255.255
}

/// IPv6: loopback, unspecified, link-local `fe80::/10`, unique local `fc00::/7`, site-local
/// `fec0::/10`, multicast, and IPv4 addresses embedded as IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` or 6to4 `2002::/16` when the IPv4
/// address is private.
fn is_private_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if ip.is_loopback()
        || ip.is_unspecified()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
        || ip.is_multicast()
    {
        return true;
    }
    embedded_v4(ip).is_some_and(is_private_v4)
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96` (deprecated), NAT64 `64:ff9b::/96`, or 6to4 `2002::/16` (bits 16..48).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |a: u16, b: u16| Ipv4Addr::new((a >> 8) as u8, a as u8, (b >> 8) as u8, b as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return Some(low(s[6], s[7])); // IPv4-compatible (:: and ::1 are caught before)
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low(s[6], s[7])); // NAT64 well-known prefix
    }
    if s[0] == 0x2002 {
        return Some(low(s[1], s[2])); // 6to4
    }
    None
}

/// Why a URL may not be used as an Internet target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotPublic {
    /// The URL has no host.
    NoHost,
    /// The host name could not be resolved.
    Unresolvable { host: String, reason: String },
    /// The host is, or resolves to, a private address.
    Private { host: String, ip: IpAddr },
}

impl fmt::Display for NotPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotPublic::NoHost => f.write_str("the URL has no host"),
            NotPublic::Unresolvable { host, reason } => {
                write!(f, "the host {host} could not be resolved: {reason}")
            }
            NotPublic::Private { host, ip } if host == &ip.to_string() => {
                write!(f, "{ip} is a private address")
            }
            NotPublic::Private { host, ip } => {
                write!(f, "{host} resolves to the private address {ip}")
            }
        }
    }
}

impl std::error::Error for NotPublic {}

/// Checks once that `url`'s host is, or resolves only to, public addresses. (A connection made
/// later resolves again: use [`PublicOnly`] on the client too.)
pub async fn check_public(url: &url::Url) -> Result<(), NotPublic> {
    let Some(host) = url.host() else {
        return Err(NotPublic::NoHost);
    };
    let (name, ips): (String, Vec<IpAddr>) = match host {
        url::Host::Ipv4(ip) => (ip.to_string(), vec![IpAddr::V4(ip)]),
        url::Host::Ipv6(ip) => (ip.to_string(), vec![IpAddr::V6(ip)]),
        url::Host::Domain(d) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::net::lookup_host((d, port)).await {
                Ok(it) => (d.to_owned(), it.map(|a| a.ip()).collect()),
                Err(e) => {
                    return Err(NotPublic::Unresolvable {
                        host: d.to_owned(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    };
    match ips.into_iter().find(|ip| is_private(*ip)) {
        Some(ip) => Err(NotPublic::Private { host: name, ip }),
        None => Ok(()),
    }
}

/// Checks a URL whose host is an IP literal, without DNS: resolvers never run for literals, so
/// this is the half of the guard that [`PublicOnly`] cannot do. Every literal form the URL parser
/// accepts is covered, because the parser turns them into one address first: decimal
/// (`http://2130706433/`), octal (`http://0177.0.0.1/`), hexadecimal (`http://0x7f.1/`), short
/// (`http://127.1/`) and bracketed IPv6 with embedded IPv4 (`http://[::ffff:127.0.0.1]/`).
/// Names pass (the resolver checks them on every connection); a URL without a host fails.
pub fn check_literal(url: &url::Url) -> Result<(), NotPublic> {
    let ip = match url.host() {
        None => return Err(NotPublic::NoHost),
        Some(url::Host::Domain(_)) => return Ok(()),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
    };
    if is_private(ip) {
        return Err(NotPublic::Private {
            host: ip.to_string(),
            ip,
        });
    }
    Ok(())
}

/// The one HTTP client for requests whose URL comes from stored data (token services, JWKS,
/// later the proxy and "check connection"). Built through [`GuardedClient::build`], it never
/// follows redirects (a redirect's target would skip the check), resolves names with
/// [`PublicOnly`] (every connection, so a later DNS answer cannot smuggle a private address in),
/// and [`GuardedClient::request`] refuses private IP literals before anything is sent. With
/// `guarded = false` (`--allow-private-networks`) it is a plain client that still does not follow
/// redirects.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    client: reqwest::Client,
    guarded: bool,
}

impl GuardedClient {
    /// Finishes `builder` (timeouts, TLS and so on set by the caller). The builder must not set
    /// an HTTP proxy: with a proxy, the proxy resolves the target and the resolver half of the
    /// guard does not apply.
    pub fn build(builder: reqwest::ClientBuilder, guarded: bool) -> reqwest::Result<Self> {
        let mut b = builder.redirect(reqwest::redirect::Policy::none());
        if guarded {
            b = b.dns_resolver(public_only_resolver());
        }
        Ok(Self {
            client: b.build()?,
            guarded,
        })
    }

    /// Whether private addresses are refused.
    pub fn guarded(&self) -> bool {
        self.guarded
    }

    /// A request to `url`, or why it may not be sent.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: url::Url,
    ) -> Result<reqwest::RequestBuilder, NotPublic> {
        if self.guarded {
            check_literal(&url)?;
        }
        Ok(self.client.request(method, url))
    }
}

/// Why a response body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// The body is longer than the limit (in bytes).
    TooLarge { limit: usize },
    /// Reading failed.
    Read(reqwest::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => {
                write!(f, "its answer is larger than {} bytes", limit)
            }
            BodyError::Read(_) => f.write_str("its answer could not be read"),
        }
    }
}

impl std::error::Error for BodyError {}

/// One MiB: the most Signpost reads of a token service's or JWKS endpoint's answer.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Reads a response body of at most `limit` bytes; a longer one (by `Content-Length` or by what
/// arrives) is refused without reading the rest.
pub async fn read_capped(mut res: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if res
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge { limit });
    }
    let mut out = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(BodyError::Read)? {
        if out.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A reqwest DNS resolver that drops private addresses; a name with nothing else left fails to
/// resolve. Use with `reqwest::ClientBuilder::dns_resolver(Arc::new(PublicOnly))`. (URLs with a
/// literal IP address bypass resolvers: check those with [`is_private`] or [`check_public`].)
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let it: Addrs = Box::new(resolve_public(name.as_str()).await?.into_iter());
            Ok(it)
        })
    }
}

/// The public addresses of `host` (with port 0), as [`PublicOnly`] resolves it for reqwest, for
/// other connectors (the proxy's own). A name with nothing public fails with [`NotPublic`]
/// (downcast the error to tell it from other failures).
pub async fn resolve_public(
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) = tokio::net::lookup_host((host, 0))
        .await?
        .partition(|a| !is_private(a.ip()));
    if public.is_empty() {
        let host = host.to_owned();
        if let Some(ip) = private.first().map(SocketAddr::ip) {
            return Err(Box::new(NotPublic::Private { host, ip }));
        }
        return Err(Box::new(NotPublic::Unresolvable {
            host,
            reason: "no address".into(),
        }));
    }
    Ok(public)
}

/// [`PublicOnly`] as the `Arc` that `reqwest::ClientBuilder::dns_resolver` takes.
pub fn public_only_resolver() -> Arc<PublicOnly> {
    Arc::new(PublicOnly)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn private(ip: &str) -> bool {
        is_private(ip.parse().unwrap())
    }

    #[test]
    fn ipv4_loopback_and_unspecified() {
        assert!(private("127.0.0.1"));
        assert!(private("127.255.255.254"));
        assert!(private("0.0.0.0"));
        assert!(private("0.1.2.3"));
    }

    #[test]
    fn ipv4_rfc1918() {
        for ip in [
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
        ] {
            assert!(private(ip), "{ip}");
        }
        for ip in ["172.15.255.255", "172.32.0.1", "192.169.0.1", "11.0.0.1"] {
            assert!(!private(ip), "{ip}");
        }
    }

    #[test]
    fn ipv4_link_local_cgnat_and_benchmarking() {
        assert!(private("169.254.169.254"));
        assert!(private("100.64.0.1"));
        assert!(private("100.127.255.255"));
        assert!(!private("100.63.255.255"));
        assert!(!private("100.128.0.1"));
        assert!(private("198.18.0.1"));
        assert!(private("198.19.255.255"));
        assert!(!private("198.20.0.1"));
        assert!(!private("198.17.255.255"));
        assert!(private("192.0.0.8"));
    }

    #[test]
    fn ipv4_multicast_reserved_and_broadcast() {
        assert!(private("224.0.0.1"));
        assert!(private("239.255.255.250"));
        assert!(private("240.0.0.1"));
        assert!(private("255.255.255.255"));
    }

    #[test]
    fn ipv4_public() {
        for ip in ["8.8.8.8", "1.1.1.1", "93.184.215.14", "223.255.255.255"] {
            assert!(!private(ip), "{ip}");
        }
    }

    #[test]
    fn ipv6_loopback_unspecified_link_local_ula_multicast() {
        for ip in [
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(private(ip), "{ip}");
        }
        for ip in ["2606:4700::1111", "2001:4860:4860::8888", "fe00::1"] {
            assert!(!private(ip), "{ip}");
        }
    }

    #[test]
    fn ipv4_mapped() {
        assert!(private("::ffff:127.0.0.1"));
        assert!(private("::ffff:10.0.0.1"));
        assert!(private("::ffff:169.254.169.254"));
        assert!(!private("::ffff:8.8.8.8"));
    }

    #[test]
    fn ipv4_compatible() {
        assert!(private("::127.0.0.1"));
        assert!(private("::10.1.2.3"));
        assert!(private("::192.168.0.1"));
        assert!(!private("::8.8.8.8"));
    }

    #[test]
    fn nat64() {
        assert!(private("64:ff9b::127.0.0.1"));
        assert!(private("64:ff9b::10.0.0.1"));
        assert!(private("64:ff9b::a9fe:a9fe")); // 169.254.169.254
        assert!(!private("64:ff9b::8.8.8.8"));
    }

    #[test]
    fn six_to_four() {
        assert!(private("2002:7f00:1::1")); // 127.0.0.1
        assert!(private("2002:c0a8:101::1")); // 192.168.1.1
        assert!(private("2002:a00:1::")); // 10.0.0.1
        assert!(!private("2002:808:808::1")); // 8.8.8.8
    }

    #[tokio::test]
    async fn literal_and_named_hosts() {
        let check = |u: &str| {
            let url: url::Url = u.parse().unwrap();
            async move { check_public(&url).await }
        };
        assert_eq!(
            check("http://127.0.0.1:9/token").await,
            Err(NotPublic::Private {
                host: "127.0.0.1".into(),
                ip: "127.0.0.1".parse().unwrap()
            })
        );
        assert!(check("http://[::1]/token").await.is_err());
        assert!(check("http://[::ffff:7f00:1]/token").await.is_err());
        let e = check("http://localhost/token").await.unwrap_err();
        assert!(e.to_string().contains("private address"), "{e}");
        assert!(!e.to_string().contains("token service"));
        assert!(check("http://169.254.169.254/latest").await.is_err());
        assert!(check("https://93.184.215.14/token").await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses() {
        let client = reqwest::Client::builder()
            .dns_resolver(public_only_resolver())
            .no_proxy()
            .build()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(text.contains("private"), "{text}");
    }
    /// Every literal spelling of a private address, as a URL host.
    pub(crate) const PRIVATE_LITERALS: &[&str] = &[
        "127.0.0.1",
        "2130706433",       // decimal
        "0177.0.0.1",       // octal
        "0x7f.0x0.0x0.0x1", // hexadecimal
        "0x7f000001",
        "127.1", // short form
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "198.18.0.1",
        "224.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fd00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:7f00:1::1]",
        "[2002:a9fe:a9fe::]",
    ];

    #[test]
    fn every_literal_form_is_checked_without_dns() {
        for host in PRIVATE_LITERALS {
            let url: url::Url = format!("http://{host}:8080/token").parse().unwrap();
            assert!(
                matches!(check_literal(&url), Err(NotPublic::Private { .. })),
                "{host} ({url})"
            );
        }
        for ok in [
            "http://93.184.215.14/",
            "http://[2606:4700::1111]/",
            "http://[2002:808:808::1]/",
            "http://localhost/",
        ] {
            assert_eq!(check_literal(&ok.parse().unwrap()), Ok(()), "{ok}");
        }
    }

    #[tokio::test]
    async fn the_guarded_client_sends_nothing_to_a_private_literal() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = accepted.clone();
        let server = tokio::spawn(async move {
            loop {
                if listener.accept().await.is_ok() {
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        let guarded = GuardedClient::build(reqwest::Client::builder().no_proxy(), true).unwrap();
        for host in [
            "127.0.0.1",
            "2130706433",
            "0177.0.0.1",
            "0x7f000001",
            "127.1",
            "0.0.0.0",
            "[::ffff:127.0.0.1]",
            "localhost",
        ] {
            let url: url::Url = format!("http://{host}:{port}/").parse().unwrap();
            match guarded.request(reqwest::Method::GET, url) {
                Err(NotPublic::Private { .. }) => {}
                Err(e) => panic!("{host}: {e}"),
                // Names are refused by the resolver when the connection is made.
                Ok(r) => assert!(r.send().await.is_err(), "{host}"),
            }
        }
        // The same listener is reachable: the refusals above were the guard's.
        let open = GuardedClient::build(reqwest::Client::builder().no_proxy(), false).unwrap();
        let url: url::Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let _ = open
            .request(reqwest::Method::GET, url)
            .unwrap()
            .timeout(std::time::Duration::from_millis(300))
            .send()
            .await;
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        server.abort();
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            s.write_all(b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let open = GuardedClient::build(reqwest::Client::builder().no_proxy(), false).unwrap();
        let url: url::Url = format!("http://127.0.0.1:{port}/").parse().unwrap();
        let res = open
            .request(reqwest::Method::GET, url)
            .unwrap()
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 302);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn bodies_are_capped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            // Announced length, then chunked without a length.
            for head in [
                "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n",
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
            ] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(head.as_bytes()).await;
                if head.contains("chunked") {
                    for _ in 0..20 {
                        let _ = s.write_all(b"64\r\n").await;
                        let _ = s.write_all(&[b'x'; 100]).await;
                        let _ = s.write_all(b"\r\n").await;
                    }
                    let _ = s.write_all(b"0\r\n\r\n").await;
                } else {
                    let n = if head.contains("2000") { 2000 } else { 100 };
                    let _ = s.write_all(&vec![b'x'; n]).await;
                }
            }
        });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("http://127.0.0.1:{port}/");
        for expect_ok in [false, false, true] {
            let res = client.get(&url).send().await.unwrap();
            let got = read_capped(res, 1000).await;
            match got {
                Ok(b) => assert!(expect_ok && b.len() == 100),
                Err(BodyError::TooLarge { limit }) => assert!(!expect_ok && limit == 1000),
                Err(e) => panic!("{e}"),
            }
        }
        server.await.unwrap();
    }
}
