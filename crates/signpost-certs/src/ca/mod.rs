//! Signpost's built-in certificate authority.
//!
//! Signpost keeps one self-signed CA (an ECDSA P-256 key, ten years, `CA:true`, `keyCertSign`).
//! Its certificate is public (served at `GET /signpost/v1/ca.pem` so remote servers can trust it);
//! its private key is a secret the caller keeps encrypted at rest. From it Signpost issues:
//!
//! * **generated certificates** ([`CertificateAuthority::issue`]), the `POST .../certificates`
//!   with an `Attributes` body (API.md §1.3): a client certificate for `CN`, valid 1 day to 1
//!   year, returned as PEM, PKCS#12 or JKS — or, with a `CSR`, a certificate for the requester's
//!   public key under Signpost's own subject DN (PEM only: Signpost never sees that key);
//! * **renewals** of those ([`CertificateAuthority::renew`], [`renewal_due`]): same request, new
//!   key and serial, a validity of the same length starting now;
//! * **X.509 binding credentials** ([`CertificateAuthority::issue_client_certificate`]) after
//!   XSUAA's `{"key-length": 2048, "validity": 7, "validity-type": "DAYS"}` parameters, and the
//!   check that a certificate presented on the mTLS listener was issued here
//!   ([`CertificateAuthority::verify_client_certificate`]);
//! * **the HTTPS listener's certificate** ([`CertificateAuthority::issue_server_certificate`],
//!   [`server_certificate_renewal_due`]) when no `--tls-cert`/`--tls-key` is given: serverAuth
//!   for the public URL's host, `localhost` and `127.0.0.1`, 90 days, renewed with 30 days left.
//!
//! Everything here is synchronous and CPU-bound (RSA key generation can take a second); async
//! callers run it on `tokio::task::spawn_blocking`. Nothing panics: every failure is a
//! [`CaError`] whose message names the problem but never contains key material or passwords.
//! Time is always passed in (`now`), so tests inject a clock instead of sleeping.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use rand::RngCore as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, SignatureAlgorithm,
};
use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use serde::{Deserialize, Serialize};
use sha1::Digest as _;
use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};
use x509_parser::prelude::{FromDer as _, X509Certificate};

/// Lifetime of a CA made by [`CertificateAuthority::generate`], in years.
pub const CA_VALIDITY_YEARS: i64 = 10;

/// How far `notBefore` is set before the moment of issue, so that a peer whose clock runs a
/// little behind Signpost's accepts a certificate the moment it is handed out (an automatically
/// renewed certificate replaces the old one at once). `notAfter` is not affected.
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::minutes(5);

/// Longest common name accepted, in characters (X.520 `ub-common-name`).
pub const MAX_COMMON_NAME_CHARS: usize = 64;

/// RSA key sizes Signpost generates.
pub const RSA_KEY_SIZES: [u32; 3] = [2048, 3072, 4096];

/// Smallest RSA key accepted in a CSR.
pub const MIN_CSR_RSA_BITS: usize = 2048;

/// Organization attribute of the CA's subject DN.
const CA_ORGANIZATION: &str = "Signpost";

/// Length of the random serial numbers, in bytes (RFC 5280 allows up to 20; CA/B asks for at
/// least 64 bits of randomness).
const SERIAL_LEN: usize = 16;

/// Why a CA operation failed. Messages are meant for API users (a 400 for the request errors,
/// a 500 for the CA ones) and never contain secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The common name is empty or blank.
    #[error("CN must not be empty")]
    EmptyCommonName,
    /// The common name is longer than [`MAX_COMMON_NAME_CHARS`].
    #[error("CN is {chars} characters long; at most {MAX_COMMON_NAME_CHARS} are allowed")]
    CommonNameTooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// The common name contains a control character.
    #[error("CN must not contain control characters")]
    CommonNameControlCharacter,
    /// The requested validity is outside 1 day to 1 year.
    #[error(
        "Validity must be between 1 day and 1 year (1-365 DAYS, 1-12 MONTHS or 1 YEARS), \
         got {value} {unit}"
    )]
    InvalidValidity {
        /// The requested amount.
        value: i64,
        /// The requested unit.
        unit: TimeUnit,
    },
    /// An RSA key size Signpost does not generate.
    #[error("unsupported RSA key length {bits}; use 2048, 3072 or 4096")]
    UnsupportedKeySize {
        /// The requested size.
        bits: u32,
    },
    /// A CSR was given together with a keystore format.
    #[error(
        "a certificate for a CSR can only be produced as PEM, not {format}: the private key \
         stays with the requester, so there is nothing to put into a keystore"
    )]
    CsrRequiresPem {
        /// The requested format.
        format: OutputFormat,
    },
    /// A keystore format was requested without a (non-empty) password.
    #[error("{format} output needs a non-empty Password to protect the keystore")]
    PasswordRequired {
        /// The requested format.
        format: OutputFormat,
    },
    /// The CSR is not a PEM (or base64-encoded PEM) PKCS#10 request.
    #[error("CSR is not a valid PEM certificate signing request: {reason}")]
    InvalidCsr {
        /// What is wrong with it.
        reason: String,
    },
    /// The CSR's self-signature does not verify with its own public key.
    #[error("CSR signature does not verify against the CSR's public key")]
    CsrSignature,
    /// The CSR's public key is of a kind Signpost does not certify.
    #[error("CSR public key is not supported: {reason}")]
    UnsupportedCsrKey {
        /// Which kind, and what is supported.
        reason: String,
    },
    /// The CA is not yet valid at the moment of issue.
    #[error("the CA certificate is not valid before {not_before}")]
    CaNotYetValid {
        /// The CA's `notBefore` (RFC 3339).
        not_before: String,
    },
    /// The CA would expire before the certificate to be issued.
    #[error(
        "the CA certificate expires at {ca_not_after}, before the requested certificate would \
         (at {requested_not_after}); the CA needs to be replaced"
    )]
    CaExpiresTooSoon {
        /// The CA's `notAfter` (RFC 3339).
        ca_not_after: String,
        /// The requested `notAfter` (RFC 3339).
        requested_not_after: String,
    },
    /// The CA certificate given to [`CertificateAuthority::from_pem`] is unusable.
    #[error("CA certificate is invalid: {reason}")]
    InvalidCaCertificate {
        /// What is wrong with it.
        reason: String,
    },
    /// The CA private key given to [`CertificateAuthority::from_pem`] is unusable.
    #[error("CA private key is invalid (expected an unencrypted PKCS#8 PEM key, EC P-256/P-384, Ed25519 or RSA)")]
    InvalidCaKey,
    /// The CA private key does not belong to the CA certificate.
    #[error("CA private key does not match the CA certificate's public key")]
    CaKeyMismatch,
    /// A time computation left the representable range.
    #[error("certificate validity is out of the representable time range")]
    TimeOutOfRange,
    /// Generating a key pair failed.
    #[error("generating the {kind} key pair failed")]
    KeyGeneration {
        /// Which kind of key.
        kind: String,
    },
    /// Building or signing the certificate failed.
    #[error("signing the certificate failed: {reason}")]
    Signing {
        /// What failed.
        reason: String,
    },
    /// Writing the PKCS#12 keystore failed.
    #[error("writing the PKCS#12 keystore failed: {reason}")]
    Pkcs12 {
        /// What failed.
        reason: String,
    },
    /// Writing the JKS keystore failed.
    #[error("writing the JKS keystore failed: {reason}")]
    Jks {
        /// What failed.
        reason: String,
    },
    /// A server certificate was asked for without a name.
    #[error("a server certificate needs at least one host name or IP address")]
    NoServerNames,
    /// A host that is neither an IP address nor a DNS name.
    #[error("'{name}' is neither a DNS name nor an IP address, so a certificate cannot name it")]
    InvalidServerName {
        /// The host as given.
        name: String,
    },
}

impl CaError {
    /// Whether the error is the requester's fault (HTTP 400) rather than Signpost's (500).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            CaError::EmptyCommonName
                | CaError::CommonNameTooLong { .. }
                | CaError::CommonNameControlCharacter
                | CaError::InvalidValidity { .. }
                | CaError::UnsupportedKeySize { .. }
                | CaError::CsrRequiresPem { .. }
                | CaError::PasswordRequired { .. }
                | CaError::InvalidCsr { .. }
                | CaError::CsrSignature
                | CaError::UnsupportedCsrKey { .. }
        )
    }
}

mod authority;
mod output;
mod request;
mod rules;
mod server;

pub use authority::*;
use output::*;
pub use request::*;
use rules::*;
pub use server::*;
