//! `signpost-client`: a typed async HTTP client of Signpost's public API (and of SAP's
//! Destination service, which speaks the same contract, API.md).
//!
//! - [`DestinationClient`] is what an application (or Signpost's proxy) uses: with a
//!   [`ServiceKey`] (client secret or X.509) it gets tokens (cached, renewed before expiry, one
//!   fetch shared by concurrent callers) and finds destinations ([`FindRequest`]: v1 or v2
//!   `@level`, fragments, every `X-*` header), revalidating with `If-None-Match`.
//! - [`BrokerClient`] speaks the Open Service Broker API 2.17 (catalog, provision, update,
//!   deprovision, bind, unbind) and Signpost's platform endpoints (token signing keys) with the
//!   platform's HTTP Basic credentials.
//! - [`TenantClient`] manages destinations, fragments and certificates on subaccount and
//!   instance level with a service key's token, finds destinations and reads Signpost's
//!   certificate details view. Entities stay `serde_json::Value`s so that callers see exactly the
//!   server's JSON.
//!
//! Every failure is an [`Error`] that says which side failed (token service or Destination
//! service) and carries the server's own message (`ErrorMessage`, OSB `description` or OAuth
//! `error_description`); no error or `Debug` output contains a secret. This crate is only a
//! client: it holds no server code.

mod broker;
mod destination;
mod error;
mod find;
mod http;
mod key;
mod tenant;
mod token;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use broker::{BrokerClient, CatalogIds, ProvisionContext, Rotation, SigningKey};
pub use destination::DestinationClient;
pub use error::{Error, Result, Side};
pub use find::{FindRequest, Found, FragmentRef, LookupLevel};
pub use http::{error_message, ClientOptions};
pub use key::{AccessToken, ServiceKey};
pub use signpost_wire::{
    AuditEntry, AuthToken, CertificateItem, FindResponse, HttpHeader, Owner, Subscription,
};
pub use tenant::{BulkItem, GenerateRequest, TenantClient, ValidityUnit};
pub use token::{Clock, SystemClock, Tenant};

/// The OSB API version this client sends.
pub const BROKER_API_VERSION: &str = "2.17";

/// Entity level of the configuration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Subaccount,
    Instance,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Subaccount => "subaccount",
            Level::Instance => "instance",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Entity kind of the configuration API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Destination,
    Fragment,
    Certificate,
}

impl Kind {
    /// The collection's path segment on `level`, e.g. `subaccountDestinations`.
    pub fn collection(self, level: Level) -> String {
        let kind = match self {
            Kind::Destination => "Destinations",
            Kind::Fragment => "DestinationFragments",
            Kind::Certificate => "Certificates",
        };
        format!("{}{kind}", level.as_str())
    }

    /// A human name, e.g. `destination`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Destination => "destination",
            Kind::Fragment => "fragment",
            Kind::Certificate => "certificate",
        }
    }
}

/// Options of the broker and tenant clients: long reads (bulk imports), default trust.
/// The options of the command-line clients (`TenantClient::login`, the broker's): long
/// timeouts, and the PEM bundle of `SSL_CERT_FILE`, when it names a readable file, trusted on top
/// of the web PKI roots, as other tools do (so `SSL_CERT_FILE=<data-dir>/ca.pem` trusts a server
/// on the built-in CA's certificate).
pub(crate) fn admin_options() -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(120),
        extra_roots_pem: std::env::var_os("SSL_CERT_FILE")
            .and_then(|path| std::fs::read_to_string(path).ok())
            .filter(|pem| pem.contains("-----BEGIN CERTIFICATE-----")),
        ..ClientOptions::default()
    }
}

pub(crate) fn admin_http() -> Result<reqwest::Client> {
    http::build_client(&admin_options(), None)
}

// ---------------------------------------------------------------------------------------------
// Token (one-shot)

/// One token for `key` (client secret or X.509), without caching: `POST <url>/oauth/token`, or
/// `<certurl>/oauth/token` over mTLS. Prefer [`DestinationClient::token`], which caches.
pub async fn client_credentials_token(key: &ServiceKey) -> Result<AccessToken> {
    DestinationClient::new(key.clone(), ClientOptions::default())?
        .token()
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::http::{join, parse_base};
    use reqwest::StatusCode;
    use serde_json::json;

    #[test]
    fn collections_and_paths() {
        assert_eq!(
            Kind::Fragment.collection(Level::Instance),
            "instanceDestinationFragments"
        );
        let base = parse_base("http://h:1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            join(&base, &["a", "b c/d"]).as_str(),
            "http://h:1/a/b%20c%2Fd"
        );
        assert!(parse_base("ftp://x").is_err());
    }

    #[test]
    fn error_messages_come_from_the_body() {
        let s = StatusCode::BAD_REQUEST;
        assert_eq!(error_message(s, br#"{"ErrorMessage":"bad"}"#), "bad");
        assert_eq!(
            error_message(s, br#"{"error":"BadRequest","description":"osb"}"#),
            "osb"
        );
        assert_eq!(error_message(s, b""), "Bad Request");
    }

    #[test]
    fn service_keys_read_nested_credentials() {
        let v =
            json!({"credentials": {"clientid": "c", "clientsecret": "s", "url": "u", "uri": "i"}});
        let key = ServiceKey::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.clientid, "c");
        assert!(!format!("{key:?}").contains("\"s\""));
        assert!(ServiceKey::from_json(&json!({"x": 1})).is_err());
    }

    #[test]
    fn x509_keys() {
        let v = json!({
            "clientid": "c", "url": "https://uaa", "uri": "https://dest",
            "credential-type": "x509", "certurl": "https://cert.uaa",
            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            "key": "-----BEGIN PRIVATE KEY-----\nsecret-key-body\n-----END PRIVATE KEY-----\n",
            "uaadomain": "uaa"
        });
        let key = ServiceKey::from_json(&v).unwrap_or_else(|e| panic!("{e}"));
        assert!(key.is_x509());
        assert_eq!(key.token_base(), "https://cert.uaa");
        assert_eq!(key.raw["uaadomain"], "uaa");
        let debug = format!("{key:?}");
        assert!(!debug.contains("secret-key-body"), "{debug}");
        assert!(debug.contains("cert.uaa"));
        // No certurl: the token service is `url`.
        let mut no_certurl = key.clone();
        no_certurl.certurl = None;
        assert_eq!(no_certurl.token_base(), "https://uaa");
        // A certificate without credential-type and without secret is X.509 too.
        let mut implicit = key.clone();
        implicit.credential_type = None;
        assert!(implicit.is_x509());
        // Self-provided certificate: the key comes separately.
        let mut own = key.clone();
        own.key = None;
        let own = own.with_private_key("PEM".into());
        assert_eq!(own.key.as_deref(), Some("PEM"));
        // Client-secret keys.
        let secret = ServiceKey::from_json(&json!({
            "clientid": "c", "clientsecret": "very-secret", "url": "u", "uri": "i",
            "credential-type": "binding-secret"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!secret.is_x509());
        assert_eq!(secret.token_base(), "u");
        assert!(!format!("{secret:?}").contains("very-secret"));
    }

    #[test]
    fn error_sides_statuses_and_timeouts() {
        let api = Error::Api {
            status: 404,
            message: "Not Found".into(),
        };
        assert_eq!(api.side(), Some(Side::DestinationService));
        assert_eq!(api.status(), Some(404));
        assert_eq!(api.to_string(), "Not Found (HTTP 404)");
        let token = Error::TokenService {
            status: 401,
            message: "Bad client credentials".into(),
        };
        assert_eq!(token.side(), Some(Side::TokenService));
        assert_eq!(token.status(), Some(401));
        assert_eq!(
            token.to_string(),
            "Bad client credentials (HTTP 401 from the token service)"
        );
        let slow = Error::Unreachable {
            side: Side::DestinationService,
            url: "https://dest".into(),
            reason: "operation timed out".into(),
            timeout: true,
        };
        assert!(slow.is_timeout());
        assert_eq!(slow.status(), None);
        assert_eq!(
            slow.to_string(),
            "https://dest did not answer in time: operation timed out"
        );
        let refused = Error::Unreachable {
            side: Side::TokenService,
            url: "http://127.0.0.1:9".into(),
            reason: "connection refused".into(),
            timeout: false,
        };
        assert!(!refused.is_timeout());
        assert_eq!(
            refused.to_string(),
            "cannot reach the token service at http://127.0.0.1:9: connection refused"
        );
        let decode = Error::Decode {
            side: Side::TokenService,
            url: "https://uaa/oauth/token".into(),
            reason: "no access_token in the answer".into(),
        };
        assert_eq!(decode.side(), Some(Side::TokenService));
        assert_eq!(Error::Invalid("x".into()).side(), None);
        assert_eq!(Side::TokenService.to_string(), "token service");
        assert_eq!(Side::DestinationService.to_string(), "Destination service");
    }

    #[test]
    fn decode_reasons_never_quote_the_body() {
        let e = serde_json::from_str::<FindResponse>(
            r#"{"destinationConfiguration": {}, "authTokens": [{"type": 1, "value": "secret-token"}]}"#,
        )
        .unwrap_err();
        assert!(!http::decode_reason(&e).contains("secret"));
        let e = serde_json::from_str::<FindResponse>(r#"{"owner": null}"#).unwrap_err();
        assert!(
            http::decode_reason(&e).contains("destinationConfiguration"),
            "{}",
            http::decode_reason(&e)
        );
    }

    #[test]
    fn client_debug_shows_no_secret() {
        let key = ServiceKey::from_json(&json!({
            "clientid": "c", "clientsecret": "very-secret", "url": "http://uaa", "uri": "http://dest"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let client =
            DestinationClient::new(key, ClientOptions::default()).unwrap_or_else(|e| panic!("{e}"));
        let debug = format!("{client:?}");
        assert!(
            debug.contains("http://dest") && !debug.contains("very-secret"),
            "{debug}"
        );
        assert_eq!(client.service_key().clientid, "c");
        let options = ClientOptions::default();
        assert_eq!(options.connect_timeout, Duration::from_secs(5));
        assert_eq!(options.read_timeout, Duration::from_secs(10));
        assert_eq!(options.renew_before, Duration::from_secs(60));
        assert!(options.extra_roots_pem.is_none());
        let bad_roots = ClientOptions {
            extra_roots_pem: Some("not pem".into()),
            ..ClientOptions::default()
        };
        assert!(matches!(
            DestinationClient::new(client.service_key().clone(), bad_roots),
            Err(Error::Invalid(_))
        ));
    }
}
