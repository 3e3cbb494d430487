//! Why a token flow gave no token: which side failed, with the sentence (never a secret) that
//! `authTokens[].error` carries as its `Display`.

use crate::UserTokenError;

/// A token flow's failure, by the side that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The destination lacks a property the flow needs, or has one it cannot use
    /// (`tokenServiceURL`, `clientId`, timeouts, `ProxyType`, SAML settings).
    #[error("{0}")]
    Destination(String),
    /// The find request lacks a header the flow needs (`X-user-token`, `X-refresh-token`,
    /// `X-code`, `X-subject-token`, `X-samlAssertion`) or sends one the destination does not allow
    /// (`X-tenant`).
    #[error("{0}")]
    Request(String),
    /// The user token was refused.
    #[error("The user token was refused: {0}")]
    UserToken(UserTokenError),
    /// The token service's address is refused (a private address for `ProxyType: Internet`) or it
    /// could not be reached, or its answer could not be read.
    #[error("{0}")]
    Network(String),
    /// The token service answered with an error, or without a usable token.
    #[error("{0}")]
    TokenService(String),
    /// The key store or trust store for the token service cannot be used.
    #[error("{0}")]
    Tls(String),
    /// The SAML assertion could not be made (no signing key, no user name in the token).
    #[error("{0}")]
    Saml(String),
}
