//! [`ServiceKey`]: the fields of a Destination service binding's `credentials` (API.md §5) the
//! client needs, for client-secret and X.509 keys; and [`AccessToken`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The fields of a service key (a binding's `credentials`) the client needs; the whole JSON is
/// kept in `raw`. `Debug` shows neither `clientsecret` nor `key`.
#[derive(Clone, Deserialize, Serialize)]
pub struct ServiceKey {
    pub clientid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clientsecret: Option<String>,
    /// The token service's base URL (`<url>/oauth/token`).
    pub url: String,
    /// The Destination service's base URL.
    pub uri: String,
    /// `credential-type`: `binding-secret`, `instance-secret` or `x509`.
    #[serde(
        rename = "credential-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub credential_type: Option<String>,
    /// X.509 keys: the client certificate chain (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// X.509 keys: the certificate's private key (PEM); absent when the client brought its own
    /// certificate (see [`ServiceKey::with_private_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// X.509 keys: the token service's base URL for mTLS (`<certurl>/oauth/token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certurl: Option<String>,
    /// The key's whole JSON as read.
    #[serde(skip)]
    pub raw: Value,
}

impl fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("ServiceKey")
            .field("clientid", &self.clientid)
            .field("clientsecret", &redacted(&self.clientsecret))
            .field("url", &self.url)
            .field("uri", &self.uri)
            .field("credential_type", &self.credential_type)
            .field("certificate", &self.certificate.as_ref().map(|_| "<PEM>"))
            .field("key", &redacted(&self.key))
            .field("certurl", &self.certurl)
            .finish_non_exhaustive()
    }
}

impl ServiceKey {
    /// Reads a service key from its JSON: the key itself, or a bind answer / `cf service-key`
    /// style object with the key under `credentials`.
    pub fn from_json(value: &Value) -> Result<Self> {
        let inner = match value.get("credentials") {
            Some(c) if c.is_object() => c,
            _ => value,
        };
        let mut key: ServiceKey = serde_json::from_value(inner.clone()).map_err(|e| {
            Error::Invalid(format!(
                "not a service key (it needs clientid, url and uri, and clientsecret or certificate): {e}"
            ))
        })?;
        key.raw = inner.clone();
        Ok(key)
    }

    /// True for an X.509 key: `credential-type: x509`, or a certificate and no client secret.
    pub fn is_x509(&self) -> bool {
        match self.credential_type.as_deref() {
            Some(t) => t.eq_ignore_ascii_case("x509"),
            None => self.clientsecret.is_none() && self.certificate.is_some(),
        }
    }

    /// The key with `pem` as the certificate's private key (for X.509 keys whose certificate the
    /// client brought itself, so the binding carries no `key`).
    pub fn with_private_key(mut self, pem: String) -> Self {
        self.key = Some(pem);
        self
    }

    /// The token service's base URL for this key: `certurl` for X.509 keys (else `url`).
    pub(crate) fn token_base(&self) -> &str {
        match (&self.certurl, self.is_x509()) {
            (Some(c), true) => c,
            _ => &self.url,
        }
    }
}

/// An access token from the token service. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl AccessToken {
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token itself, for an `Authorization: Bearer` header.
    pub fn secret(&self) -> &str {
        &self.0
    }
}
