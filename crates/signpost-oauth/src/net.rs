//! Outbound HTTP to token services: rustls clients, per-destination timeouts, and the guard that
//! keeps `ProxyType=Internet` token requests off loopback, link-local and private addresses
//! (checked on every resolution, so a DNS answer cannot smuggle a private address in later). The
//! address rules themselves live in `signpost-net`.

use std::time::Duration;

use signpost_net::NotPublic;

use crate::FlowError;
pub use signpost_net::{read_capped, GuardedClient, MAX_BODY_BYTES};

pub use signpost_net::is_private;

/// Why a URL may not be used as a token service, in the token service's words.
pub async fn check_public(url: &reqwest::Url) -> Result<(), FlowError> {
    signpost_net::check_public(url)
        .await
        .map_err(|e| FlowError::Network(refused("the token service URL", &e)))
}

/// What a refusal of the guard says in `authTokens`: `what` names the URL ("the token service
/// URL", "the JWKS URL").
pub fn refused(what: &str, e: &NotPublic) -> String {
    match e {
        NotPublic::NoHost => format!("{what} has no host"),
        NotPublic::Unresolvable { host, reason } => {
            format!("{what}'s host {host} could not be resolved: {reason}")
        }
        NotPublic::Private { host, ip } if host == &ip.to_string() => format!(
            "{what} names the private address {ip}, which is refused for ProxyType Internet"
        ),
        NotPublic::Private { ip, .. } => format!(
            "{what} resolves to the private address {ip}, which is refused for ProxyType Internet"
        ),
    }
}

/// Builds a client for one pair of timeouts and TLS settings; `guarded` clients refuse private
/// addresses (literals before sending, names on every resolution) and none follows redirects.
pub fn client(
    connect_timeout: Duration,
    read_timeout: Duration,
    guarded: bool,
    tls: &crate::TlsSettings,
) -> Result<GuardedClient, FlowError> {
    use secrecy::ExposeSecret;
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .read_timeout(read_timeout)
        .user_agent(concat!("signpost/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    if let Some(pem) = &tls.identity_pem {
        let identity =
            reqwest::Identity::from_pem(pem.expose_secret().as_bytes()).map_err(|_| {
                FlowError::Tls(
                    "the token service key store cannot be used as a TLS client certificate"
                        .to_string(),
                )
            })?;
        b = b.identity(identity);
    }
    if let Some(pem) = &tls.trust_pem {
        let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|_| {
            FlowError::Tls("the trust store holds no usable certificate".to_string())
        })?;
        for root in roots {
            b = b.add_root_certificate(root);
        }
    }
    GuardedClient::build(b, guarded).map_err(|_| {
        FlowError::Tls("the HTTP client for the token service could not be built".to_string())
    })
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
