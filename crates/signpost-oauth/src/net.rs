//! Outbound HTTP to token services: rustls clients, per-destination timeouts, and the guard that
//! keeps `ProxyType=Internet` token requests off loopback, link-local and private addresses
//! (checked on every resolution, so a DNS answer cannot smuggle a private address in later).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True for addresses a token request to "the Internet" must not reach.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || v6.is_multicast()
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared address space 100.64.0.0/10
        || o[0] == 0
}

/// A resolver that drops private addresses; a name with nothing else left fails to resolve.
#[derive(Debug, Clone, Copy)]
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!(
                    "{host} resolves only to private, loopback or link-local addresses"
                )
                .into());
            }
            let it: Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

/// Why a URL may not be used as a token service.
pub async fn check_public(url: &reqwest::Url) -> Result<(), String> {
    let Some(host) = url.host() else {
        return Err("the token service URL has no host".into());
    };
    let ips: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(d) => {
            let port = url.port_or_known_default().unwrap_or(443);
            match tokio::net::lookup_host((d, port)).await {
                Ok(it) => it.map(|a| a.ip()).collect(),
                Err(e) => {
                    return Err(format!(
                        "the token service host {d} could not be resolved: {e}"
                    ))
                }
            }
        }
    };
    if let Some(ip) = ips.iter().find(|ip| is_private(**ip)) {
        return Err(format!(
            "the token service URL resolves to the private address {ip}, which is refused for ProxyType Internet"
        ));
    }
    Ok(())
}

/// Builds a client for one pair of timeouts and TLS settings; `guarded` clients resolve public
/// addresses only.
pub fn client(
    connect_timeout: Duration,
    read_timeout: Duration,
    guarded: bool,
    tls: &crate::TlsSettings,
) -> Result<reqwest::Client, String> {
    use secrecy::ExposeSecret;
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("signpost/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    if guarded {
        b = b.dns_resolver(Arc::new(PublicOnly));
    }
    if let Some(pem) = &tls.identity_pem {
        let identity =
            reqwest::Identity::from_pem(pem.expose_secret().as_bytes()).map_err(|_| {
                "the token service key store cannot be used as a TLS client certificate".to_string()
            })?;
        b = b.identity(identity);
    }
    if let Some(pem) = &tls.trust_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
            .map_err(|_| "the trust store holds no usable certificate".to_string())?;
        for root in roots {
            b = b.add_root_certificate(root);
        }
    }
    b.build()
        .map_err(|_| "the HTTP client for the token service could not be built".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn literal_and_named_hosts() {
        assert!(check_public(&"http://127.0.0.1:9/token".parse().unwrap())
            .await
            .is_err());
        assert!(check_public(&"http://[::1]/token".parse().unwrap())
            .await
            .is_err());
        assert!(check_public(&"http://localhost/token".parse().unwrap())
            .await
            .is_err());
        assert!(
            check_public(&"http://169.254.169.254/latest".parse().unwrap())
                .await
                .is_err()
        );
        assert!(
            check_public(&"https://93.184.215.14/token".parse().unwrap())
                .await
                .is_ok()
        );
    }
}
