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
}
