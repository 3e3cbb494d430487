//! The request vocabulary: validity and its units, key kinds, output formats, the generation
//! request, serials, what a generation gives back, X.509 binding parameters.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    pub(super) fn validate(self) -> Result<(), CaError> {
        match self {
            KeyKind::Rsa { bits } if !RSA_KEY_SIZES.contains(&bits) => {
                Err(CaError::UnsupportedKeySize { bits })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn describe(self) -> String {
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
