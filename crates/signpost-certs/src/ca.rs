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
//!   ([`CertificateAuthority::verify_client_certificate`]).
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
use secrecy::{ExposeSecret as _, SecretString};
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

// ---------------------------------------------------------------------------------------------
// Request vocabulary
// ---------------------------------------------------------------------------------------------

/// Unit of a [`Validity`], spelled as in SAP's `Validity.TimeUnit` and XSUAA's `validity-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TimeUnit {
    /// `DAYS`
    Days,
    /// `MONTHS` (calendar months; the 31st plus one month is the last day of the next month)
    Months,
    /// `YEARS` (calendar years)
    Years,
}

impl TimeUnit {
    /// The wire spelling: `DAYS`, `MONTHS` or `YEARS`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Days => "DAYS",
            TimeUnit::Months => "MONTHS",
            TimeUnit::Years => "YEARS",
        }
    }

    /// Parses the wire spelling, ignoring case.
    pub fn parse(s: &str) -> Option<Self> {
        [TimeUnit::Days, TimeUnit::Months, TimeUnit::Years]
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long a generated certificate is valid: SAP's `{"TimeUnit": "DAYS", "Value": 30}`.
/// Allowed: 1 day to 1 year, that is 1-365 `DAYS`, 1-12 `MONTHS` or 1 `YEARS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Validity {
    /// The unit.
    #[serde(rename = "TimeUnit")]
    pub unit: TimeUnit,
    /// The amount (signed so that a negative number is a clear validation error, not a
    /// deserialization failure).
    #[serde(rename = "Value")]
    pub value: i64,
}

impl Validity {
    /// `value` days.
    pub fn days(value: i64) -> Self {
        Validity {
            unit: TimeUnit::Days,
            value,
        }
    }

    /// `value` calendar months.
    pub fn months(value: i64) -> Self {
        Validity {
            unit: TimeUnit::Months,
            value,
        }
    }

    /// `value` calendar years.
    pub fn years(value: i64) -> Self {
        Validity {
            unit: TimeUnit::Years,
            value,
        }
    }

    /// Checks the 1 day to 1 year range.
    pub fn validate(&self) -> Result<(), CaError> {
        let max = match self.unit {
            TimeUnit::Days => 365,
            TimeUnit::Months => 12,
            TimeUnit::Years => 1,
        };
        if (1..=max).contains(&self.value) {
            Ok(())
        } else {
            Err(CaError::InvalidValidity {
                value: self.value,
                unit: self.unit,
            })
        }
    }

    /// The end of a validity starting at `start` (calendar arithmetic for months and years).
    pub fn end_from(&self, start: OffsetDateTime) -> Result<OffsetDateTime, CaError> {
        match self.unit {
            TimeUnit::Days => self
                .value
                .checked_mul(86_400)
                .and_then(|secs| start.checked_add(Duration::seconds(secs))),
            TimeUnit::Months => add_months(start, self.value),
            TimeUnit::Years => self
                .value
                .checked_mul(12)
                .and_then(|m| add_months(start, m)),
        }
        .ok_or(CaError::TimeOutOfRange)
    }
}

impl Default for Validity {
    /// One year, the longest allowed.
    fn default() -> Self {
        Validity::years(1)
    }
}

/// The key pair generated for a certificate (ignored when a CSR brings its own key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// RSA with the given modulus size (2048, 3072 or 4096), signatures with SHA-256.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA on NIST P-256.
    EcP256,
}

impl Default for KeyKind {
    /// RSA-2048: what every consumer (Java, SAP Cloud Connector, old appliances) accepts.
    fn default() -> Self {
        KeyKind::Rsa { bits: 2048 }
    }
}

impl KeyKind {
    fn validate(self) -> Result<(), CaError> {
        match self {
            KeyKind::Rsa { bits } if !RSA_KEY_SIZES.contains(&bits) => {
                Err(CaError::UnsupportedKeySize { bits })
            }
            _ => Ok(()),
        }
    }

    fn describe(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("RSA-{bits}"),
            KeyKind::EcP256 => "EC P-256".to_owned(),
        }
    }
}

/// The file format of a generated certificate, as in the certificate `Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum OutputFormat {
    /// PEM: the certificate, the CA certificate and (unless a CSR was given) the unencrypted
    /// PKCS#8 private key.
    #[default]
    #[serde(rename = "PEM")]
    Pem,
    /// PKCS#12 (`.p12`/`.pfx`), password-protected (PBES2 AES-256-CBC, HMAC-SHA256 MAC).
    #[serde(rename = "PKCS12")]
    Pkcs12,
    /// Java KeyStore, password-protected.
    #[serde(rename = "JKS")]
    Jks,
}

impl OutputFormat {
    /// The wire spelling: `PEM`, `PKCS12` or `JKS`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Pem => "PEM",
            OutputFormat::Pkcs12 => "PKCS12",
            OutputFormat::Jks => "JKS",
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to generate: the `Attributes` of a certificate generation request (API.md §1.3),
/// already decoded. Keep it (password encrypted) to renew the certificate later.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    /// `CN` of the subject; also a DNS subject alternative name when it looks like a host name
    /// (or an IP address SAN when it is one). 1 to 64 characters, trimmed.
    pub common_name: String,
    /// How long the certificate is valid.
    pub validity: Validity,
    /// The key to generate when there is no CSR.
    pub key: KeyKind,
    /// A PKCS#10 request in PEM (or base64-encoded PEM, as in `Attributes.CSR`): its public key is
    /// certified, its subject and extensions are ignored (Signpost's own DN is used).
    pub csr_pem: Option<String>,
    /// Protects PKCS#12 and JKS output (required for those; ignored for PEM).
    pub password: Option<SecretString>,
    /// The output format.
    pub format: OutputFormat,
    /// Alias of the key entry in PKCS#12/JKS output; defaults to the lower-cased common name.
    pub alias: Option<String>,
}

impl GenerateRequest {
    /// A PEM request for `common_name` with a default (RSA-2048) key.
    pub fn new(common_name: impl Into<String>, validity: Validity) -> Self {
        GenerateRequest {
            common_name: common_name.into(),
            validity,
            key: KeyKind::default(),
            csr_pem: None,
            password: None,
            format: OutputFormat::Pem,
            alias: None,
        }
    }

    /// The alias of the key entry in keystore output.
    pub fn entry_alias(&self) -> String {
        match &self.alias {
            Some(alias) if !alias.trim().is_empty() => alias.trim().to_owned(),
            _ => self.common_name.trim().to_lowercase(),
        }
    }
}

/// A random, positive certificate serial number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 128 random bits (top bit cleared so the DER INTEGER is positive without padding).
    pub fn random() -> Self {
        let mut bytes = vec![0u8; SERIAL_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        if let Some(first) = bytes.first_mut() {
            *first = (*first & 0x7f).max(1);
        }
        Serial(bytes)
    }

    /// A serial from big-endian bytes (for tests); leading zero bytes are dropped. Returns `None`
    /// for zero, for negative values (top bit set) and for more than 20 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let start = bytes.iter().position(|b| *b != 0)?;
        let bytes = &bytes[start..];
        if bytes.len() > 20 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        Some(Serial(bytes.to_vec()))
    }

    /// The big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Upper-case hex without separators, as `openssl x509 -serial` prints it.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A generated certificate.
pub struct Generated {
    /// The file as if it had been uploaded, in `format`. For PEM without CSR, and for the
    /// keystores, it holds the private key: store it encrypted like an uploaded keystore.
    pub file_bytes: Vec<u8>,
    /// The format of `file_bytes`.
    pub format: OutputFormat,
    /// The issued (leaf) certificate alone, PEM.
    pub certificate_pem: String,
    /// Its `notBefore` ([`CLOCK_SKEW_ALLOWANCE`] before the moment of issue).
    pub not_before: OffsetDateTime,
    /// Its `notAfter` (moment of issue plus the validity).
    pub not_after: OffsetDateTime,
    /// Its serial number, upper-case hex.
    pub serial_hex: String,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field(
                "file_bytes",
                &format_args!("<{} bytes>", self.file_bytes.len()),
            )
            .field("format", &self.format)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("serial_hex", &self.serial_hex)
            .finish_non_exhaustive()
    }
}

/// The X.509 options of an XSUAA-style binding:
/// `{"key-length": 2048, "validity": 7, "validity-type": "DAYS"}` (all optional, these defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct X509BindingParams {
    /// RSA modulus size: 2048, 3072 or 4096.
    pub key_length: u32,
    /// Amount of `validity_type`.
    pub validity: i64,
    /// `DAYS`, `MONTHS` or `YEARS`.
    pub validity_type: TimeUnit,
}

impl Default for X509BindingParams {
    fn default() -> Self {
        X509BindingParams {
            key_length: 2048,
            validity: 7,
            validity_type: TimeUnit::Days,
        }
    }
}

impl X509BindingParams {
    /// The validity these parameters ask for.
    pub fn validity(&self) -> Validity {
        Validity {
            unit: self.validity_type,
            value: self.validity,
        }
    }
}

/// Credentials of an X.509 binding generated by Signpost's CA.
pub struct ClientCertificate {
    /// `certificate`: the client certificate followed by the CA certificate, PEM.
    pub certificate_chain_pem: String,
    /// `key`: the client's private key, PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`) like XSUAA's.
    pub private_key_pem: SecretString,
    /// The client certificate alone, DER (to recognise it when presented).
    pub certificate_der: Vec<u8>,
    /// SHA-256 of `certificate_der`, upper-case hex pairs separated by colons (as
    /// `openssl x509 -fingerprint -sha256` and the parser's details view print it).
    pub sha256_fingerprint: String,
    /// Serial number, upper-case hex.
    pub serial_hex: String,
    /// `notBefore`.
    pub not_before: OffsetDateTime,
    /// `notAfter`.
    pub not_after: OffsetDateTime,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// A freshly generated CA: store both, the key encrypted.
pub struct CaMaterial {
    /// The self-signed CA certificate, PEM (public).
    pub certificate_pem: String,
    /// Its private key, unencrypted PKCS#8 PEM.
    pub private_key_pem: SecretString,
}

impl fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaMaterial").finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// The CA
// ---------------------------------------------------------------------------------------------

/// Signpost's CA, loaded and ready to sign.
pub struct CertificateAuthority {
    certificate_pem: String,
    certificate_der: Vec<u8>,
    subject_raw: Vec<u8>,
    spki_der: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// The CA as rcgen needs it for issuing (subject DN and key identifier).
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a new self-signed CA: subject `O=Signpost, CN=<common_name>` (RFC 4514:
    /// `CN=<common_name>,O=Signpost`), ECDSA P-256,
    /// `basicConstraints CA:true, pathlen:0` (critical), `keyCertSign, cRLSign, digitalSignature`,
    /// valid from `now` (less [`CLOCK_SKEW_ALLOWANCE`]) for [`CA_VALIDITY_YEARS`] years.
    pub fn generate(common_name: &str, now: OffsetDateTime) -> Result<CaMaterial, CaError> {
        let cn = validate_common_name(common_name)?;
        let (not_before, start) = start_times(now)?;
        let not_after = add_months(start, CA_VALIDITY_YEARS * 12).ok_or(CaError::TimeOutOfRange)?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| {
            CaError::KeyGeneration {
                kind: "EC P-256".to_owned(),
            }
        })?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, CA_ORGANIZATION);
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(Serial::random().as_bytes()));
        let cert = params.self_signed(&key).map_err(signing_error)?;

        Ok(CaMaterial {
            certificate_pem: pem_encode("CERTIFICATE", cert.der()),
            private_key_pem: SecretString::from(pem_encode("PRIVATE KEY", key.serialized_der())),
        })
    }

    /// Loads a CA from its certificate (PEM) and unencrypted PKCS#8 private key (PEM). The
    /// certificate must be a CA (`basicConstraints CA:true`) and the key must be its key.
    pub fn from_pem(certificate_pem: &str, private_key_pem: &str) -> Result<Self, CaError> {
        let certificate_der = read_pem_block(certificate_pem.as_bytes(), &["CERTIFICATE"])
            .map_err(|reason| CaError::InvalidCaCertificate { reason })?;
        let (_, cert) = X509Certificate::from_der(&certificate_der).map_err(|e| {
            CaError::InvalidCaCertificate {
                reason: format!("not an X.509 certificate ({e})"),
            }
        })?;
        if !cert.is_ca() {
            return Err(CaError::InvalidCaCertificate {
                reason: "basicConstraints CA:true is missing".to_owned(),
            });
        }
        let subject_raw = cert.subject().as_raw().to_vec();
        let spki_der = cert.public_key().raw.to_vec();
        let cert_public_key = cert.public_key().subject_public_key.data.to_vec();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();

        let key = KeyPair::from_pem(private_key_pem).map_err(|_| CaError::InvalidCaKey)?;
        if key.public_key_raw() != cert_public_key.as_slice() {
            return Err(CaError::CaKeyMismatch);
        }
        let params = CertificateParams::from_ca_cert_der(&certificate_der.as_slice().into())
            .map_err(|e| CaError::InvalidCaCertificate {
                reason: e.to_string(),
            })?;
        // Re-signing gives rcgen the issuer it needs (subject DN, key identifier); the result
        // is used for nothing else.
        let issuer = params.self_signed(&key).map_err(signing_error)?;

        Ok(CertificateAuthority {
            certificate_pem: pem_encode("CERTIFICATE", &certificate_der),
            certificate_der,
            subject_raw,
            spki_der,
            not_before,
            not_after,
            issuer,
            key,
        })
    }

    /// The CA certificate, PEM (what `GET /signpost/v1/ca.pem` serves).
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The CA certificate's `notBefore`.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// The CA certificate's `notAfter`.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Issues a certificate for `req` at `now` with `serial` (use [`Serial::random`]).
    ///
    /// The subject is `CN=<common_name>`; extensions: `basicConstraints CA:false`,
    /// `keyUsage digitalSignature` (critical), `extendedKeyUsage clientAuth`, subject and
    /// authority key identifiers, and a `subjectAltName` DNS name (or IP address) when the CN is
    /// a host name (or IP address). Validated first, in this order: CN, validity, key size,
    /// CSR vs. format, password; then the CSR is parsed and its signature checked.
    pub fn issue(
        &self,
        req: &GenerateRequest,
        now: OffsetDateTime,
        serial: Serial,
    ) -> Result<Generated, CaError> {
        let cn = validate_common_name(&req.common_name)?;
        req.validity.validate()?;
        if req.csr_pem.is_none() {
            req.key.validate()?;
        }
        let password = match (&req.csr_pem, req.format) {
            (Some(_), OutputFormat::Pkcs12 | OutputFormat::Jks) => {
                return Err(CaError::CsrRequiresPem { format: req.format });
            }
            (_, OutputFormat::Pem) => None,
            (None, format) => Some(require_password(req.password.as_ref(), format)?),
        };
        let (not_before, not_after) = self.window(&req.validity, now)?;

        let (leaf_der, key) = match &req.csr_pem {
            Some(csr) => {
                let public_key = parse_csr(csr)?;
                let der = self.sign_leaf(cn, &public_key, not_before, not_after, &serial)?;
                (der, None)
            }
            None => {
                let key = generate_key(req.key)?;
                let der = self.sign_leaf(cn, &key.pair, not_before, not_after, &serial)?;
                (der, Some(key))
            }
        };

        let certificate_pem = pem_encode("CERTIFICATE", &leaf_der);
        let file_bytes = match (req.format, &key, password) {
            (OutputFormat::Pem, key, _) => {
                let mut pem = certificate_pem.clone();
                pem.push_str(&self.certificate_pem);
                if let Some(key) = key {
                    pem.push_str(&pem_encode("PRIVATE KEY", key.pair.serialized_der()));
                }
                pem.into_bytes()
            }
            (OutputFormat::Pkcs12, Some(key), Some(password)) => write_pkcs12(
                &req.entry_alias(),
                key.pair.serialized_der(),
                &[&leaf_der, &self.certificate_der],
                password,
            )?,
            (OutputFormat::Jks, Some(key), Some(password)) => write_jks(
                &req.entry_alias(),
                key.pair.serialized_der(),
                &[&leaf_der, &self.certificate_der],
                password,
                now,
            )?,
            // Excluded above: keystores always have a generated key and a password.
            (format, _, _) => return Err(CaError::CsrRequiresPem { format }),
        };

        Ok(Generated {
            file_bytes,
            format: req.format,
            certificate_pem,
            not_before,
            not_after,
            serial_hex: serial.to_hex(),
        })
    }

    /// Renews a generated certificate: the same request (CN, validity length, key kind, format,
    /// password) issued again at `now` with a new random serial and a new key. With a CSR the
    /// requester's key is certified again (Signpost cannot make a new key for it).
    pub fn renew(
        &self,
        previous: &GenerateRequest,
        now: OffsetDateTime,
    ) -> Result<Generated, CaError> {
        self.issue(previous, now, Serial::random())
    }

    /// Issues the client certificate of an X.509 binding (XSUAA's generated credential type):
    /// an RSA key of `key_length_bits` and a certificate for `CN=<common_name>` valid for
    /// `validity` (1 day to 1 year), clientAuth. Returns the chain (client, CA) and the key.
    pub fn issue_client_certificate(
        &self,
        common_name: &str,
        key_length_bits: u32,
        validity: Validity,
        now: OffsetDateTime,
    ) -> Result<ClientCertificate, CaError> {
        let cn = validate_common_name(common_name)?;
        validity.validate()?;
        let kind = KeyKind::Rsa {
            bits: key_length_bits,
        };
        kind.validate()?;
        let (not_before, not_after) = self.window(&validity, now)?;
        let key = generate_key(kind)?;
        let serial = Serial::random();
        let der = self.sign_leaf(cn, &key.pair, not_before, not_after, &serial)?;
        let private_key_pem = match &key.rsa {
            Some(rsa) => {
                use rsa::pkcs1::EncodeRsaPrivateKey as _;
                let pem = rsa.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|_| {
                    CaError::KeyGeneration {
                        kind: kind.describe(),
                    }
                })?;
                SecretString::from(pem.as_str())
            }
            None => SecretString::from(pem_encode("PRIVATE KEY", key.pair.serialized_der())),
        };
        let mut certificate_chain_pem = pem_encode("CERTIFICATE", &der);
        certificate_chain_pem.push_str(&self.certificate_pem);
        Ok(ClientCertificate {
            certificate_chain_pem,
            private_key_pem,
            sha256_fingerprint: crate::sha256_fingerprint(&der),
            certificate_der: der,
            serial_hex: serial.to_hex(),
            not_before,
            not_after,
        })
    }

    /// Whether `presented_der` (a certificate presented on the mTLS listener) was issued by this
    /// CA and is usable for client authentication at `now`: issuer DN is the CA's subject, the
    /// signature verifies with the CA's key, `now` is within its validity, it is not a CA, and
    /// an extended key usage, if present, allows clientAuth.
    pub fn verify_client_certificate(&self, presented_der: &[u8], now: OffsetDateTime) -> bool {
        let Ok((rest, cert)) = X509Certificate::from_der(presented_der) else {
            return false;
        };
        if !rest.is_empty() || cert.issuer().as_raw() != self.subject_raw.as_slice() {
            return false;
        }
        let Ok((_, ca_spki)) =
            x509_parser::x509::SubjectPublicKeyInfo::from_der(self.spki_der.as_slice())
        else {
            return false;
        };
        if cert.verify_signature(Some(&ca_spki)).is_err() {
            return false;
        }
        let now = now.to_offset(UtcOffset::UTC);
        let validity = cert.validity();
        if now < validity.not_before.to_datetime() || now > validity.not_after.to_datetime() {
            return false;
        }
        if cert.is_ca() {
            return false;
        }
        match cert.extended_key_usage() {
            Ok(None) => true,
            Ok(Some(eku)) => eku.value.client_auth || eku.value.any,
            Err(_) => false,
        }
    }

    /// `notBefore`/`notAfter` for a certificate of `validity` issued at `now`, checked against
    /// the CA's own validity.
    fn window(
        &self,
        validity: &Validity,
        now: OffsetDateTime,
    ) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
        let (not_before, start) = start_times(now)?;
        let not_after = validity.end_from(start)?;
        if start < self.not_before {
            return Err(CaError::CaNotYetValid {
                not_before: rfc3339(self.not_before),
            });
        }
        if not_after > self.not_after {
            return Err(CaError::CaExpiresTooSoon {
                ca_not_after: rfc3339(self.not_after),
                requested_not_after: rfc3339(not_after),
            });
        }
        Ok((not_before, not_after))
    }

    /// Signs a leaf certificate for `public_key`; returns its DER.
    fn sign_leaf(
        &self,
        cn: &str,
        public_key: &impl PublicKeyData,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        serial: &Serial,
    ) -> Result<Vec<u8>, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        if let Ok(ip) = cn.parse::<IpAddr>() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        } else if looks_like_host_name(cn) {
            if let Ok(name) = cn.to_ascii_lowercase().try_into() {
                params.subject_alt_names.push(SanType::DnsName(name));
            }
        }
        let cert = params
            .signed_by(public_key, &self.issuer, &self.key)
            .map_err(signing_error)?;
        Ok(cert.der().to_vec())
    }
}

/// Whether a certificate valid from `not_before` to `not_after` is due for automatic renewal at
/// `now`: from two thirds of its lifetime on (and always once expired, or when the validity is
/// empty or inverted).
pub fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let lifetime = not_after - not_before;
    if lifetime <= Duration::ZERO {
        return true;
    }
    match not_after.checked_sub(lifetime / 3) {
        Some(due_at) => now >= due_at,
        None => true,
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn validate_common_name(cn: &str) -> Result<&str, CaError> {
    let cn = cn.trim();
    if cn.is_empty() {
        return Err(CaError::EmptyCommonName);
    }
    let chars = cn.chars().count();
    if chars > MAX_COMMON_NAME_CHARS {
        return Err(CaError::CommonNameTooLong { chars });
    }
    if cn.chars().any(char::is_control) {
        return Err(CaError::CommonNameControlCharacter);
    }
    Ok(cn)
}

fn require_password(
    password: Option<&SecretString>,
    format: OutputFormat,
) -> Result<&str, CaError> {
    match password.map(|p| p.expose_secret()) {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(CaError::PasswordRequired { format }),
    }
}

/// `(notBefore, start)`: `start` is `now` in UTC to the whole second (X.509 has no fractions),
/// `notBefore` that less the clock-skew allowance.
fn start_times(now: OffsetDateTime) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let start = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|_| CaError::TimeOutOfRange)?;
    let not_before = start
        .checked_sub(CLOCK_SKEW_ALLOWANCE)
        .ok_or(CaError::TimeOutOfRange)?;
    Ok((not_before, start))
}

/// Adds calendar months, clamping the day to the end of the target month.
fn add_months(t: OffsetDateTime, months: i64) -> Option<OffsetDateTime> {
    let total = i64::from(t.year())
        .checked_mul(12)?
        .checked_add(i64::from(u8::from(t.month())) - 1)?
        .checked_add(months)?;
    let year = i32::try_from(total.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1).ok()?).ok()?;
    let day = t.day().min(time::util::days_in_month(month, year));
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(t.replace_date(date))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// A DNS-name-shaped CN (at least two labels, or `localhost`; a leading `*.` is allowed).
fn looks_like_host_name(cn: &str) -> bool {
    let name = cn.strip_prefix("*.").unwrap_or(cn);
    if name.len() > 253 || (!name.contains('.') && !name.eq_ignore_ascii_case("localhost")) {
        return false;
    }
    let labels_ok = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // An all-numeric last label is not a host name (e.g. "1.2.3" or a mistyped address).
    let tld_ok = name
        .rsplit('.')
        .next()
        .is_some_and(|tld| !tld.bytes().all(|b| b.is_ascii_digit()));
    labels_ok && tld_ok
}

fn signing_error(e: rcgen::Error) -> CaError {
    CaError::Signing {
        reason: e.to_string(),
    }
}

/// PEM with 64-character lines and LF line ends.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// The contents of the first PEM block with one of `labels`. The error is a reason without the
/// input.
fn read_pem_block(input: &[u8], labels: &[&str]) -> Result<Vec<u8>, String> {
    let mut saw_pem = false;
    for pem in x509_parser::pem::Pem::iter_from_buffer(input) {
        match pem {
            Ok(pem) => {
                saw_pem = true;
                if labels.contains(&pem.label.as_str()) {
                    return Ok(pem.contents);
                }
            }
            Err(_) if saw_pem => break,
            Err(_) => return Err("no PEM block found".to_owned()),
        }
    }
    Err(format!("no PEM block labelled {}", labels.join(" or ")))
}

/// A generated leaf key: the rcgen pair (PKCS#8 inside) and, for RSA, the rsa-crate key (for
/// PKCS#1 output).
struct LeafKey {
    pair: KeyPair,
    rsa: Option<rsa::RsaPrivateKey>,
}

fn generate_key(kind: KeyKind) -> Result<LeafKey, CaError> {
    let fail = || CaError::KeyGeneration {
        kind: kind.describe(),
    };
    match kind {
        KeyKind::EcP256 => {
            let pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|_| fail())?;
            Ok(LeafKey { pair, rsa: None })
        }
        KeyKind::Rsa { bits } => {
            use rsa::pkcs8::EncodePrivateKey as _;
            kind.validate()?;
            let bits = usize::try_from(bits).map_err(|_| fail())?;
            let rsa = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(|_| fail())?;
            let pkcs8 = rsa.to_pkcs8_der().map_err(|_| fail())?;
            let pair = KeyPair::try_from(pkcs8.as_bytes()).map_err(|_| fail())?;
            Ok(LeafKey {
                pair,
                rsa: Some(rsa),
            })
        }
    }
}

/// The public key of a verified CSR, in the shape rcgen signs.
struct CsrPublicKey {
    /// The subjectPublicKey BIT STRING contents.
    raw: Vec<u8>,
    /// Carries the SPKI algorithm identifier rcgen writes.
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        self.alg
    }
}

/// Parses a CSR (PEM, or base64 of PEM as in `Attributes.CSR`), verifies its self-signature and
/// returns its public key. Its subject and requested extensions are ignored.
fn parse_csr(input: &str) -> Result<CsrPublicKey, CaError> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::public_key::PublicKey;

    let invalid = |reason: &str| CaError::InvalidCsr {
        reason: reason.to_owned(),
    };
    let trimmed = input.trim();
    let pem_text: std::borrow::Cow<'_, [u8]> = if trimmed.starts_with("-----BEGIN") {
        trimmed.as_bytes().into()
    } else {
        let compact: String = trimmed.split_ascii_whitespace().collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| invalid("neither PEM nor base64-encoded PEM"))?
            .into()
    };
    let der = read_pem_block(
        &pem_text,
        &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"],
    )
    .map_err(|reason| CaError::InvalidCsr { reason })?;
    let (rest, csr) = X509CertificationRequest::from_der(&der)
        .map_err(|_| invalid("the PEM block is not a PKCS#10 request"))?;
    if !rest.is_empty() {
        return Err(invalid("trailing data after the PKCS#10 request"));
    }
    let spki = &csr.certification_request_info.subject_pki;
    let alg: &'static SignatureAlgorithm = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < MIN_CSR_RSA_BITS {
                return Err(CaError::UnsupportedCsrKey {
                    reason: format!(
                        "RSA-{bits} is too short, at least {MIN_CSR_RSA_BITS} bits are required"
                    ),
                });
            }
            &rcgen::PKCS_RSA_SHA256
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(oid) if oid == x509_parser::oid_registry::OID_EC_P256 => {
                    &rcgen::PKCS_ECDSA_P256_SHA256
                }
                Some(oid) if oid == x509_parser::oid_registry::OID_NIST_EC_P384 => {
                    &rcgen::PKCS_ECDSA_P384_SHA384
                }
                _ => {
                    return Err(CaError::UnsupportedCsrKey {
                        reason: "only the EC curves P-256 and P-384 are supported".to_owned(),
                    });
                }
            }
        }
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            &rcgen::PKCS_ED25519
        }
        _ => {
            return Err(CaError::UnsupportedCsrKey {
                reason: format!(
                    "key algorithm {} is not supported (use RSA, EC P-256/P-384 or Ed25519)",
                    spki.algorithm.algorithm
                ),
            });
        }
    };
    // Checked after the key so that a too-short RSA key is reported as such (ring refuses
    // to verify with RSA keys below 2048 bits).
    csr.verify_signature().map_err(|e| match e {
        x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
            CaError::UnsupportedCsrKey {
                reason: "its signature algorithm is not supported (use RSA with SHA-256/384/512, \
                     ECDSA P-256/P-384 or Ed25519)"
                    .to_owned(),
            }
        }
        _ => CaError::CsrSignature,
    })?;

    Ok(CsrPublicKey {
        raw: spki.subject_public_key.data.to_vec(),
        alg,
    })
}

/// PKCS#12 with one private-key entry (key, leaf, CA), AES-256/PBES2 and an HMAC-SHA256 MAC
/// (the p12-keystore defaults, read by OpenSSL 1.1+/3 and Java 11+).
fn write_pkcs12(
    alias: &str,
    key_pkcs8_der: &[u8],
    chain_der: &[&[u8]],
    password: &str,
) -> Result<Vec<u8>, CaError> {
    let fail = |what: &str| CaError::Pkcs12 {
        reason: what.to_owned(),
    };
    let key = p12_keystore::PrivateKey::from_der(key_pkcs8_der)
        .map_err(|_| fail("the private key could not be encoded"))?;
    let certs = chain_der
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| fail("a certificate could not be encoded"))?;
    let local_key_id = chain_der
        .first()
        .map(|leaf| sha1::Sha1::digest(leaf).to_vec())
        .unwrap_or_default();
    let chain = p12_keystore::PrivateKeyChain::new(local_key_id, key, certs);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(alias, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    store.writer(password).write().map_err(|e| CaError::Pkcs12 {
        reason: e.to_string(),
    })
}

/// JKS with one private-key entry (key, leaf, CA; key password = store password), written by
/// [`crate::jks`].
fn write_jks(
    alias: &str,
    key_pkcs8_der: &[u8],
    chain_der: &[&[u8]],
    password: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CaError> {
    let fail = |e: crate::jks::JksError| CaError::Jks {
        reason: e.to_string(),
    };
    let mut store = crate::jks::Keystore::new();
    let chain = chain_der.iter().map(|der| der.to_vec()).collect();
    store
        .add_private_key(alias, key_pkcs8_der, password, chain, now)
        .map_err(fail)?;
    store.to_bytes(password).map_err(fail)
}
