//! [`Error`]: every failure of the client, with the side that failed (token service or
//! Destination service) so that a caller (e.g. a proxy) can map it to its own answer. No variant
//! ever carries a secret: URLs are reduced to scheme, host and port, and messages are the
//! servers' own sentences.

use std::fmt;

/// Which remote service a failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The OAuth token service of the service key (`url` or `certurl`).
    TokenService,
    /// The Destination service (`uri`), or Signpost's service broker.
    DestinationService,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::TokenService => "token service",
            Side::DestinationService => "Destination service",
        })
    }
}

/// What can go wrong talking to Signpost (or SAP's Destination service).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The Destination service (or the broker) answered with an error status; `message` is its
    /// own sentence (`ErrorMessage`, OSB `description`).
    #[error("{message} (HTTP {status})")]
    Api { status: u16, message: String },
    /// The token service answered with an error status; `message` is its `error_description`
    /// (else `error`).
    #[error("{message} (HTTP {status} from the token service)")]
    TokenService { status: u16, message: String },
    /// The service could not be reached: connecting failed, TLS failed, or it did not answer in
    /// time (`timeout`). `url` is only `scheme://host[:port]`.
    #[error("{}", unreachable_text(*.side, .url, .reason, *.timeout))]
    Unreachable {
        side: Side,
        url: String,
        reason: String,
        timeout: bool,
    },
    /// The service's answer was not what the API promises.
    #[error("unexpected answer from {}: {reason}", place(*.side, .url))]
    Decode {
        side: Side,
        url: String,
        reason: String,
    },
    /// A URL, key or argument the client cannot use.
    #[error("{0}")]
    Invalid(String),
}

/// `the token service at <url>`, or just `<url>` for the Destination service (or broker): the
/// server the caller addressed itself.
fn place(side: Side, url: &str) -> String {
    match side {
        Side::TokenService => format!("the token service at {url}"),
        Side::DestinationService => url.to_owned(),
    }
}

fn unreachable_text(side: Side, url: &str, reason: &str, timeout: bool) -> String {
    let place = place(side, url);
    if timeout {
        format!("{place} did not answer in time: {reason}")
    } else {
        format!("cannot reach {place}: {reason}")
    }
}

impl Error {
    /// The service the failure came from; `None` for [`Error::Invalid`].
    pub fn side(&self) -> Option<Side> {
        match self {
            Error::Api { .. } => Some(Side::DestinationService),
            Error::TokenService { .. } => Some(Side::TokenService),
            Error::Unreachable { side, .. } | Error::Decode { side, .. } => Some(*side),
            Error::Invalid(_) => None,
        }
    }

    /// The HTTP status of an error answer ([`Error::Api`] or [`Error::TokenService`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::TokenService { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True when a service did not answer in time (connect or read timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Unreachable { timeout: true, .. })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
