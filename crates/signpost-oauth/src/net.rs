//! Outbound HTTP to token services: rustls clients, per-destination timeouts, and the guard that
//! keeps `ProxyType=Internet` token requests off loopback, link-local and private addresses
//! (checked on every resolution, so a DNS answer cannot smuggle a private address in later). The
//! address rules themselves live in `signpost-net`.

use std::sync::Arc;
use std::time::Duration;

use signpost_net::{NotPublic, PublicOnly};

pub use signpost_net::is_private;

/// Why a URL may not be used as a token service, in the token service's words.
pub async fn check_public(url: &reqwest::Url) -> Result<(), String> {
    signpost_net::check_public(url).await.map_err(|e| match e {
        NotPublic::NoHost => "the token service URL has no host".to_string(),
        NotPublic::Unresolvable { host, reason } => {
            format!("the token service host {host} could not be resolved: {reason}")
        }
        NotPublic::Private { ip, .. } => format!(
            "the token service URL resolves to the private address {ip}, which is refused for ProxyType Internet"
        ),
    })
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
