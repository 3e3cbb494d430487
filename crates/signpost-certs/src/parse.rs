//! Parse and validate what users upload: PEM, DER (CER/CRT), PKCS#12 (PFX/P12) and JKS.
//!
//! [`parse`] detects the format from the content (never from a file name) and returns a
//! [`ParsedStore`]: its [`Format`], whether it is `locked` (password-protected and read without
//! the password), and its entries, each with an optional alias, a [`EntryKind`], a certificate
//! chain of [`CertInfo`] (leaf first) and, for a private key entry whose key could be opened, the
//! key as PKCS#8 DER (secret; redacted in `Debug`).
//!
//! [`validate_chain`] checks that every chain is complete (each certificate issued and signed by
//! the next, ending in a self-signed root). [`ParsedStore::details`] gives the details view of
//! Signpost's certificate API, [`public_keys`] SAP's `/publicKeys` items and
//! [`client_identity_pem`] the PEM pair a TLS client presents.
//!
//! Decisions:
//!
//! - **Detection.** `FEEDFEED` → JKS (`CECECECE`, JCEKS, is an unsupported format); text with a
//!   `-----BEGIN ` line → PEM (text before, between and after the blocks is ignored, as in
//!   `openssl pkcs12` output with its "Bag Attributes"); a DER `SEQUENCE` holding `INTEGER 3` and
//!   a content info → PKCS#12; a DER `SEQUENCE` starting with a `SEQUENCE` → X.509 certificate;
//!   a DER PKCS#8 key alone → [`ParseError::KeyWithoutCertificate`]; anything else
//!   [`ParseError::NotACertificate`].
//! - **A key without a certificate is an error** ([`ParseError::KeyWithoutCertificate`]): Signpost
//!   stores certificates and keystores for destinations, and a bare key can serve neither as a
//!   trust store nor as a client identity.
//! - **PEM.** Certificates (`CERTIFICATE`, `X509 CERTIFICATE`, `TRUSTED CERTIFICATE`) and private
//!   keys in PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) and SEC1 (`EC PRIVATE KEY`),
//!   converted to PKCS#8. `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2: PBKDF2 or scrypt, AES-CBC)
//!   is decrypted with the password; without one the store is `locked` and the key stays closed.
//!   PBES1 and OpenSSL's legacy `Proc-Type: 4,ENCRYPTED` keys are
//!   [`ParseError::UnsupportedAlgorithm`]. Other blocks (`EC PARAMETERS`, `PUBLIC KEY`, CSRs…)
//!   are ignored. Each key is paired with the certificate holding its public key (a key that
//!   matches none is [`ParseError::KeyMismatch`]) and that certificate's chain; the certificates
//!   left over are grouped into chains (leaf → root, in any file order), one
//!   [`EntryKind::Certificate`] entry per chain, so a file of one chain is one entry and a bundle
//!   of CA certificates is one entry per CA.
//! - **PKCS#12** (legacy RC2/3DES and modern PBES2/AES, through `p12-keystore`). Aliases are the
//!   friendly names. A key is paired with the certificate of the same local key ID (or the same
//!   public key); certificates marked trusted (Java's trust attribute) are
//!   [`EntryKind::TrustedCertificate`] entries; the rest are grouped into chains as for PEM.
//!   Without a password a protected PKCS#12 is `locked`: only certificates in unencrypted bags
//!   are listed (usually none), and the MAC is not checked.
//! - **JKS** (see [`crate::jks`]). Without a password the store is `locked`: every certificate is
//!   listed, private keys stay closed and the integrity digest is unchecked. A key whose password
//!   differs from the keystore password is [`ParseError::KeyPassword`].
//! - **CertInfo.** DNs in RFC 4514 form (most specific RDN first, `CN=leaf,O=Acme,C=DE`; the
//!   RFC 4514 keywords plus `SERIALNUMBER` and `emailAddress`, other attributes as `OID=#hex`);
//!   the serial number in upper-case hex without colons or leading zero bytes (as `openssl x509
//!   -serial`); the SHA-256 fingerprint in upper-case hex pairs separated by colons (as
//!   `keytool -list -v` and `openssl x509 -fingerprint`); key sizes as Java reports them (RSA
//!   modulus bits, EC curve bits, 255 for Ed25519, 448 for Ed448); subject alternative names with
//!   a type prefix (`DNS:`, `IP:`, `email:`, `URI:`, `DirName:`, `RID:`).
//!   [`CertInfo::days_left`] is the number of whole days until `notAfter`, rounded down (negative
//!   once expired).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Serialize;
use sha2::Digest as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate, X509Error, X509Name};

use crate::jks::{self, der};

/// The format of an uploaded file, detected from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Format {
    /// PEM text: certificates, chains, private keys.
    #[serde(rename = "PEM")]
    Pem,
    /// One DER-encoded X.509 certificate (CER/CRT).
    #[serde(rename = "DER")]
    Der,
    /// PKCS#12 (PFX/P12).
    #[serde(rename = "PKCS12")]
    Pkcs12,
    /// Java KeyStore.
    #[serde(rename = "JKS")]
    Jks,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pem => "PEM",
            Self::Der => "DER",
            Self::Pkcs12 => "PKCS#12",
            Self::Jks => "JKS",
        })
    }
}

/// What an entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum EntryKind {
    /// A private key with its certificate chain (a key store entry).
    PrivateKey,
    /// A certificate a keystore marks as trusted (a trust store entry).
    TrustedCertificate,
    /// A certificate (with its chain) without a key.
    Certificate,
}

/// A parsed upload.
#[derive(Debug, Clone)]
pub struct ParsedStore {
    /// The detected format.
    pub format: Format,
    /// True when the file is password-protected and was read without the password: private keys
    /// are closed, and for PKCS#12 certificates in encrypted bags are not listed.
    pub locked: bool,
    /// The entries, in file order where the format has one.
    pub entries: Vec<Entry>,
}

/// One entry of a [`ParsedStore`].
#[derive(Debug, Clone)]
pub struct Entry {
    /// The alias (JKS) or friendly name (PKCS#12); `None` for PEM and DER.
    pub alias: Option<String>,
    /// What the entry holds.
    pub kind: EntryKind,
    /// The certificate chain, leaf first. May be empty only for a private key entry whose
    /// certificate is missing (which [`validate_chain`] rejects).
    pub chain: Vec<CertInfo>,
    /// The private key as PKCS#8 `PrivateKeyInfo` DER; only for [`EntryKind::PrivateKey`] entries
    /// whose key could be opened. Redacted in `Debug`.
    pub private_key_der: Option<SecretSlice<u8>>,
}

/// What Signpost shows about one certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// Issuer DN, RFC 4514.
    pub issuer: String,
    /// Serial number, upper-case hex without leading zero bytes.
    pub serial_number: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, `DSA`, `RSASSA-PSS`, or the dotted OID of another algorithm.
    pub key_algorithm: String,
    /// Key size in bits, when known.
    pub key_size: Option<u32>,
    /// SHA-256 of the DER, upper-case hex pairs separated by colons.
    pub sha256_fingerprint: String,
    /// Subject alternative names, each with a type prefix (`DNS:example.com`, `IP:10.0.0.1`…).
    pub subject_alt_names: Vec<String>,
    /// Whether basic constraints mark it as a CA.
    pub is_ca: bool,
    /// The certificate, DER.
    pub der: Vec<u8>,
    subject_raw: Vec<u8>,
    issuer_raw: Vec<u8>,
}

impl fmt::Debug for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertInfo")
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("serial_number", &self.serial_number)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_algorithm", &self.key_algorithm)
            .field("key_size", &self.key_size)
            .field("sha256_fingerprint", &self.sha256_fingerprint)
            .field("subject_alt_names", &self.subject_alt_names)
            .field("is_ca", &self.is_ca)
            .field("der", &format_args!("<{} bytes>", self.der.len()))
            .finish()
    }
}

/// The details view of one certificate (Signpost's `GET /signpost/v1/certificates/{level}/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CertDetails {
    /// Subject DN, RFC 4514.
    pub subject: String,
    /// Issuer DN, RFC 4514.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// RFC 3339.
    pub not_before: String,
    /// RFC 3339.
    pub not_after: String,
    /// Whole days until `notAfter`, rounded down.
    pub days_left: i64,
    /// Key algorithm.
    pub key_algorithm: String,
    /// Key size in bits (`null` when unknown).
    pub key_size: Option<u32>,
    /// SHA-256 fingerprint.
    pub sha256_fingerprint: String,
    /// Subject alternative names.
    pub subject_alt_names: Vec<String>,
    /// Basic constraints CA flag.
    #[serde(rename = "isCA")]
    pub is_ca: bool,
}

/// The details view of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryDetails {
    /// Alias, `null` for PEM and DER.
    pub alias: Option<String>,
    /// `privateKey`, `trustedCertificate` or `certificate`.
    pub kind: EntryKind,
    /// The chain, leaf first.
    pub chain: Vec<CertDetails>,
}

/// The details view of a store: `format`, `locked` and `entries`; the API adds `name`, `origin`,
/// `automaticRenewal` and `lastRenewal` (e.g. with `#[serde(flatten)]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreDetails {
    /// `PEM`, `DER`, `PKCS12` or `JKS`.
    pub format: Format,
    /// Password-protected and read without the password.
    pub locked: bool,
    /// The entries.
    pub entries: Vec<EntryDetails>,
}

/// One item of SAP's `GET .../certificates/{name}/publicKeys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicKeyItem {
    /// The alias, for keystores only.
    #[serde(rename = "Alias", skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The entry's certificate chain as PEM, leaf first.
    #[serde(rename = "Content")]
    pub content: String,
    /// The leaf's subject DN, RFC 4514.
    #[serde(rename = "SubjectDN")]
    pub subject_dn: String,
}

/// Why an upload could not be read. Messages are for the user and never contain a password or
/// key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Zero bytes.
    #[error("the file is empty")]
    Empty,
    /// Not PEM, DER, PKCS#12 or JKS at all.
    #[error(
        "the file is not a certificate or keystore: expected PEM, DER (CER/CRT), PKCS#12 (PFX/P12) or JKS content"
    )]
    NotACertificate,
    /// A recognised format whose content is broken or cut short.
    #[error("the {format} file is corrupt or truncated: {reason}")]
    Corrupt {
        /// The detected format.
        format: Format,
        /// What is wrong, for the user.
        reason: String,
    },
    /// The password does not open the file.
    #[error("the password for the {format} file is wrong")]
    WrongPassword {
        /// The detected format.
        format: Format,
    },
    /// The password opens a JKS keystore but not one of its keys.
    #[error(
        "the password opens the keystore but not the private key of entry '{alias}'; the key password must be the keystore password"
    )]
    KeyPassword {
        /// The entry whose key stays closed.
        alias: String,
    },
    /// An encryption, MAC or key-protection algorithm Signpost cannot handle.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A keystore format Signpost does not read (JCEKS, PKCS#7…).
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// Private key(s) but no certificate.
    #[error(
        "the file holds a private key but no certificate; upload the key together with its certificate chain"
    )]
    KeyWithoutCertificate,
    /// More certificates than [`MAX_CERTIFICATES`].
    #[error("the file holds more than {limit} certificates")]
    TooManyCertificates {
        /// The limit.
        limit: usize,
    },
    /// A PEM private key that belongs to none of the file's certificates.
    #[error("the private key does not belong to any certificate in the file")]
    KeyMismatch,
    /// The file asks for more key-derivation work (PBKDF2 iterations, scrypt memory) than
    /// Signpost does for one upload; refused before any derivation runs.
    #[error("the file asks for too much key-derivation work: {0}")]
    TooMuchKeyDerivation(String),
}

/// Most PBKDF2 (or PKCS#12 KDF) iterations of one derivation.
pub const MAX_PBKDF2_ITERATIONS: u64 = 1_000_000;
/// Most iterations of all derivations of one file together (MAC, encrypted safes, keys).
pub const MAX_KDF_ITERATIONS_TOTAL: u64 = 2_000_000;
/// Most memory of one scrypt derivation: 128 · N · r bytes.
pub const MAX_SCRYPT_MEMORY: u64 = 64 << 20;
/// Most scrypt work of one derivation: 128 · N · r · p bytes processed.
pub const MAX_SCRYPT_WORK: u64 = 256 << 20;

/// The key derivations a file asks for, added up and checked against the limits before any runs.
#[derive(Default)]
struct KdfBudget {
    iterations: u64,
}

impl KdfBudget {
    fn pbkdf2(&mut self, what: &str, iterations: u64) -> Result<(), ParseError> {
        if iterations > MAX_PBKDF2_ITERATIONS {
            return Err(ParseError::TooMuchKeyDerivation(format!(
                "{what} uses {iterations} iterations; the limit is {MAX_PBKDF2_ITERATIONS} per derivation"
            )));
        }
        self.iterations = self.iterations.saturating_add(iterations);
        if self.iterations > MAX_KDF_ITERATIONS_TOTAL {
            return Err(ParseError::TooMuchKeyDerivation(format!(
                "its derivations use {} iterations together; the limit is {MAX_KDF_ITERATIONS_TOTAL} per file",
                self.iterations
            )));
        }
        Ok(())
    }

    fn scrypt(&mut self, what: &str, n: u64, r: u64, p: u64) -> Result<(), ParseError> {
        let memory = 128u64.saturating_mul(n).saturating_mul(r);
        if memory > MAX_SCRYPT_MEMORY {
            return Err(ParseError::TooMuchKeyDerivation(format!(
                "{what} uses scrypt with {} MiB of memory (N={n}, r={r}); the limit is {} MiB",
                memory >> 20,
                MAX_SCRYPT_MEMORY >> 20
            )));
        }
        let work = memory.saturating_mul(p);
        if work > MAX_SCRYPT_WORK {
            return Err(ParseError::TooMuchKeyDerivation(format!(
                "{what} uses scrypt with N·r·p·128 = {} MiB (N={n}, r={r}, p={p}); the limit is {} MiB",
                work >> 20,
                MAX_SCRYPT_WORK >> 20
            )));
        }
        Ok(())
    }

    /// PBES2 parameters (PBKDF2 or scrypt).
    fn pbes2(&mut self, what: &str, params: &pkcs5::pbes2::Parameters) -> Result<(), ParseError> {
        match &params.kdf {
            pkcs5::pbes2::Kdf::Pbkdf2(p) => self.pbkdf2(what, u64::from(p.iteration_count)),
            pkcs5::pbes2::Kdf::Scrypt(p) => self.scrypt(
                what,
                p.cost_parameter,
                u64::from(p.block_size),
                u64::from(p.parallelization),
            ),
            // Unknown KDFs are refused by the decoder.
            _ => Ok(()),
        }
    }

    /// An `AlgorithmIdentifier` of a PKCS#12 safe or key bag: PBES2, or a PKCS#12 PBE scheme
    /// (`SEQUENCE { salt, iterations }`). Others are left to the decoder, which refuses them.
    fn algorithm(&mut self, what: &str, alg: &der::Tlv<'_>) -> Result<(), ParseError> {
        use pkcs5::der::Decode as _;
        let Some((oid, params)) = der::read(alg.value) else {
            return Ok(());
        };
        let oid = der::oid_to_string(oid.value);
        if oid == OID_PBES2 {
            if let Ok(p) = pkcs5::pbes2::Parameters::from_der(params) {
                return self.pbes2(what, &p);
            }
        } else if oid.starts_with("1.2.840.113549.1.12.1.") {
            let iterations = der::read(params)
                .and_then(|(seq, _)| der::read_all(seq.value))
                .and_then(|items| {
                    items
                        .get(1)
                        .filter(|i| i.tag == der::INTEGER)
                        .map(|i| uint(i.value))
                });
            if let Some(n) = iterations {
                return self.pbkdf2(what, n);
            }
        }
        Ok(())
    }
}

/// A DER INTEGER's contents as an unsigned number, saturating.
fn uint(bytes: &[u8]) -> u64 {
    let b = strip_zeros(bytes);
    if b.len() > 8 {
        return u64::MAX;
    }
    b.iter().fold(0u64, |n, x| (n << 8) | u64::from(*x))
}

/// Why a store's chains are not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// A certificate's issuer is not in the file.
    #[error("the certificate chain is incomplete: the issuer \"{issuer}\" of \"{subject}\" is not in the file")]
    MissingIssuer {
        /// The certificate whose issuer is missing (RFC 4514).
        subject: String,
        /// The missing issuer's DN (RFC 4514).
        issuer: String,
    },
    /// A chain in which a certificate is followed by one that did not issue it.
    #[error("the certificate chain is out of order: \"{subject}\" is followed by \"{next}\", which did not issue it")]
    NotIssuedByNext {
        /// The certificate.
        subject: String,
        /// The certificate that follows it.
        next: String,
    },
    /// The issuer's name matches but its key did not sign the certificate.
    #[error(
        "the signature of \"{subject}\" does not verify with the key of its issuer \"{issuer}\""
    )]
    BadSignature {
        /// The certificate.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// A signature algorithm that cannot be verified here.
    #[error("the signature of \"{subject}\" cannot be verified: unsupported signature algorithm {algorithm}")]
    UnsupportedSignature {
        /// The certificate.
        subject: String,
        /// The signature algorithm (dotted OID).
        algorithm: String,
    },
    /// A private key entry without a certificate.
    #[error("the private key entry {alias} has no certificate")]
    NoCertificate {
        /// The entry's alias, quoted, or "without alias".
        alias: String,
    },
}

impl CertInfo {
    /// Parse one DER certificate (the whole input must be the certificate).
    pub fn from_der(der: &[u8]) -> Result<Self, ParseError> {
        cert_info(der, false).map_err(|reason| ParseError::Corrupt {
            format: Format::Der,
            reason,
        })
    }

    /// Whole days from `now` until `not_after`, rounded down; negative once expired.
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.not_after - now).whole_seconds().div_euclid(86_400)
    }

    /// The details view of this certificate at `now`.
    pub fn details(&self, now: OffsetDateTime) -> CertDetails {
        CertDetails {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            serial_number: self.serial_number.clone(),
            not_before: rfc3339(self.not_before),
            not_after: rfc3339(self.not_after),
            days_left: self.days_left(now),
            key_algorithm: self.key_algorithm.clone(),
            key_size: self.key_size,
            sha256_fingerprint: self.sha256_fingerprint.clone(),
            subject_alt_names: self.subject_alt_names.clone(),
            is_ca: self.is_ca,
        }
    }

    /// The certificate as a PEM block.
    pub fn to_pem(&self) -> String {
        write_pem_block("CERTIFICATE", &self.der)
    }

    fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    fn issued_by_name(&self, issuer: &CertInfo) -> bool {
        self.issuer_raw == issuer.subject_raw
    }
}

impl ParsedStore {
    /// The details view at `now` (see [`StoreDetails`]).
    pub fn details(&self, now: OffsetDateTime) -> StoreDetails {
        StoreDetails {
            format: self.format,
            locked: self.locked,
            entries: self
                .entries
                .iter()
                .map(|e| EntryDetails {
                    alias: e.alias.clone(),
                    kind: e.kind,
                    chain: e.chain.iter().map(|c| c.details(now)).collect(),
                })
                .collect(),
        }
    }

    /// [`Self::details`] as JSON.
    pub fn details_json(&self, now: OffsetDateTime) -> serde_json::Value {
        serde_json::to_value(self.details(now)).unwrap_or_default()
    }

    /// Every certificate of every entry (duplicates included).
    pub fn certificates(&self) -> impl Iterator<Item = &CertInfo> {
        self.entries.iter().flat_map(|e| e.chain.iter())
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

// ---------------------------------------------------------------------------------------------
// Detection and the formats
// ---------------------------------------------------------------------------------------------

/// Parse an uploaded certificate or keystore, detecting its format from the content.
///
/// `password` opens PKCS#12 and JKS keystores and encrypted PEM keys; without it a protected file
/// is returned with `locked: true` (see the module docs for what stays readable). Never panics.
pub fn parse(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(magic) = bytes.get(..4) {
        if magic == jks::MAGIC.to_be_bytes() {
            return parse_jks(bytes, password);
        }
        if magic == jks::JCEKS_MAGIC.to_be_bytes() {
            return Err(ParseError::UnsupportedFormat(
                "JCEKS keystores are not supported; convert it to PKCS#12 or JKS with keytool -importkeystore".into(),
            ));
        }
    }
    if find(bytes, b"-----BEGIN ").is_some() {
        return parse_pem(bytes, password);
    }
    if bytes.first() == Some(&der::SEQUENCE) {
        return parse_der(bytes, password);
    }
    Err(ParseError::NotACertificate)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

enum DerKind {
    Certificate,
    Pkcs12,
    PrivateKey,
    Pkcs7,
    Unknown,
}

fn classify_der(bytes: &[u8]) -> DerKind {
    let Some((_, hlen, _)) = der::header(bytes) else {
        return DerKind::Unknown;
    };
    let inner = bytes.get(hlen..).unwrap_or_default();
    match der::header(inner) {
        Some((der::SEQUENCE, _, _)) => DerKind::Certificate,
        Some((der::INTEGER, ihlen, 1)) => match inner.get(ihlen) {
            Some(3) => DerKind::Pkcs12,
            Some(0 | 1) => DerKind::PrivateKey,
            _ => DerKind::Unknown,
        },
        Some((der::OID, _, _)) => match der::read(inner) {
            Some((oid, _)) if der::oid_to_string(oid.value) == "1.2.840.113549.1.7.2" => {
                DerKind::Pkcs7
            }
            _ => DerKind::Unknown,
        },
        _ => DerKind::Unknown,
    }
}

fn parse_der(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    if bytes.get(1) == Some(&0x80) {
        return Err(ParseError::UnsupportedFormat(
            "BER (indefinite-length) encoding is not supported; re-export the file with openssl or keytool".into(),
        ));
    }
    let kind = classify_der(bytes);
    let format = match kind {
        DerKind::Pkcs7 => {
            return Err(ParseError::UnsupportedFormat(
                "PKCS#7 certificate bundles are not supported; upload the certificates as PEM (openssl pkcs7 -print_certs)".into(),
            ))
        }
        DerKind::Pkcs12 => Format::Pkcs12,
        DerKind::Certificate => Format::Der,
        DerKind::PrivateKey => return Err(ParseError::KeyWithoutCertificate),
        DerKind::Unknown => return Err(ParseError::NotACertificate),
    };
    if let Some((_, hlen, len)) = der::header(bytes) {
        let declared = hlen.saturating_add(len);
        if declared > bytes.len() {
            return Err(ParseError::Corrupt {
                format,
                reason: format!("it declares {declared} bytes but has only {}", bytes.len()),
            });
        }
        if declared < bytes.len() {
            return Err(ParseError::Corrupt {
                format,
                reason: format!(
                    "{} unexpected bytes after the end of the structure",
                    bytes.len() - declared
                ),
            });
        }
    }
    match kind {
        DerKind::Pkcs12 => parse_pkcs12(bytes, password),
        _ => {
            let cert =
                cert_info(bytes, false).map_err(|reason| ParseError::Corrupt { format, reason })?;
            Ok(ParsedStore {
                format,
                locked: false,
                entries: vec![Entry {
                    alias: None,
                    kind: EntryKind::Certificate,
                    chain: vec![cert],
                    private_key_der: None,
                }],
            })
        }
    }
}

fn parse_jks(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    let corrupt = |reason: String| ParseError::Corrupt {
        format: Format::Jks,
        reason,
    };
    let ks = jks::Keystore::from_bytes(bytes, password).map_err(|e| match e {
        jks::JksError::WrongPassword => ParseError::WrongPassword {
            format: Format::Jks,
        },
        jks::JksError::Jceks => ParseError::UnsupportedFormat(e.to_string()),
        jks::JksError::UnsupportedVersion(_) | jks::JksError::UnsupportedCertificateType(_) => {
            ParseError::UnsupportedFormat(e.to_string())
        }
        other => corrupt(other.to_string()),
    })?;
    check_count(
        ks.entries
            .iter()
            .map(|e| match e {
                jks::JksEntry::PrivateKey(k) => k.chain.len(),
                jks::JksEntry::TrustedCertificate(_) => 1,
            })
            .sum(),
    )?;
    let mut entries = Vec::with_capacity(ks.entries.len());
    for entry in &ks.entries {
        match entry {
            jks::JksEntry::PrivateKey(e) => {
                let chain = e
                    .chain
                    .iter()
                    .map(|der| cert_info(der, false))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|r| corrupt(format!("entry '{}': {r}", e.alias)))?;
                let key = match password {
                    None => None,
                    Some(pw) => Some(e.decrypt_key(pw).map_err(|err| match err {
                        jks::JksError::WrongKeyPassword { alias } => {
                            ParseError::KeyPassword { alias }
                        }
                        jks::JksError::UnsupportedKeyProtection { .. } => {
                            ParseError::UnsupportedAlgorithm(err.to_string())
                        }
                        other => corrupt(other.to_string()),
                    })?),
                };
                if let Some(key) = &key {
                    check_pkcs8(key.expose_secret()).map_err(|r| {
                        corrupt(format!("the private key of entry '{}' {r}", e.alias))
                    })?;
                }
                entries.push(Entry {
                    alias: Some(e.alias.clone()),
                    kind: EntryKind::PrivateKey,
                    chain,
                    private_key_der: key,
                });
            }
            jks::JksEntry::TrustedCertificate(e) => {
                let cert = cert_info(&e.certificate, false)
                    .map_err(|r| corrupt(format!("entry '{}': {r}", e.alias)))?;
                entries.push(Entry {
                    alias: Some(e.alias.clone()),
                    kind: EntryKind::TrustedCertificate,
                    chain: vec![cert],
                    private_key_der: None,
                });
            }
        }
    }
    Ok(ParsedStore {
        format: Format::Jks,
        locked: password.is_none(),
        entries,
    })
}

// --- PEM -------------------------------------------------------------------------------------

fn parse_pem(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    let corrupt = |reason: String| ParseError::Corrupt {
        format: Format::Pem,
        reason,
    };
    let blocks = pem::parse_many(bytes).map_err(|e| corrupt(format!("{e}")))?;
    let begins = bytes.windows(11).filter(|w| *w == b"-----BEGIN ").count();
    if blocks.len() < begins {
        return Err(corrupt(format!(
            "{} of its {begins} PEM blocks have no matching END line",
            begins - blocks.len()
        )));
    }
    let mut certs = Vec::new();
    let mut keys = Vec::new();
    let mut locked = false;
    for (i, block) in blocks.iter().enumerate() {
        let n = i + 1;
        match block.tag() {
            "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE" => {
                let allow_trailing = block.tag() == "TRUSTED CERTIFICATE";
                let cert = cert_info(block.contents(), allow_trailing)
                    .map_err(|r| corrupt(format!("PEM block {n} ({}): {r}", block.tag())))?;
                certs.push(RawCert { alias: None, local_key_id: None, trusted: false, info: cert });
            }
            "PRIVATE KEY" => {
                check_pkcs8(block.contents()).map_err(|r| corrupt(format!("PEM block {n} (PRIVATE KEY) {r}")))?;
                keys.push(RawKey::open(block.contents().to_vec()));
            }
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" | "DSA PRIVATE KEY" => {
                if block.headers().get("Proc-Type").is_some_and(|v| v.contains("ENCRYPTED")) {
                    return Err(ParseError::UnsupportedAlgorithm(format!(
                        "the {} is encrypted with OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED); convert it to PKCS#8 (openssl pkcs8 -topk8)",
                        block.tag()
                    )));
                }
                let pkcs8 = match block.tag() {
                    "RSA PRIVATE KEY" => pkcs1_to_pkcs8(block.contents()),
                    "EC PRIVATE KEY" => sec1_to_pkcs8(block.contents()),
                    _ => {
                        return Err(ParseError::UnsupportedAlgorithm(
                            "DSA private keys are not supported".into(),
                        ))
                    }
                }
                .map_err(|r| corrupt(format!("PEM block {n} ({}) {r}", block.tag())))?;
                keys.push(RawKey::open(pkcs8));
            }
            "ENCRYPTED PRIVATE KEY" => match password {
                None => {
                    locked = true;
                    keys.push(RawKey { alias: None, local_key_id: None, pkcs8: None });
                }
                Some(pw) => {
                    let key = decrypt_pkcs8(block.contents(), pw)?;
                    keys.push(RawKey { alias: None, local_key_id: None, pkcs8: Some(key) });
                }
            },
            "PKCS7" | "CMS" => {
                return Err(ParseError::UnsupportedFormat(
                    "PKCS#7 certificate bundles are not supported; upload the certificates as PEM (openssl pkcs7 -print_certs)".into(),
                ))
            }
            _ => {} // EC PARAMETERS, PUBLIC KEY, CERTIFICATE REQUEST, X509 CRL…
        }
    }
    if certs.is_empty() {
        if !keys.is_empty() {
            return Err(ParseError::KeyWithoutCertificate);
        }
        return Err(ParseError::NotACertificate);
    }
    check_count(certs.len())?;
    let entries = assemble(keys, certs, true)?;
    Ok(ParsedStore {
        format: Format::Pem,
        locked,
        entries,
    })
}

// --- PKCS#12 ---------------------------------------------------------------------------------

const OID_DATA: &str = "1.2.840.113549.1.7.1";
const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
const OID_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
const OID_CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
const OID_SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
const OID_X509_CERT: &str = "1.2.840.113549.1.9.22.1";
const OID_FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
const OID_LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
const OID_JAVA_TRUSTED: &str = "2.16.840.1.113894.746875.1.1";

/// What can be read of a PKCS#12 file without its password.
#[derive(Default)]
struct P12Outline {
    has_mac: bool,
    encrypted: bool,
    /// The key derivations seen before any ran, and the first that went over a limit.
    budget: KdfBudget,
    refused: Option<ParseError>,
    certs: Vec<RawCert>,
    keys: Vec<RawKey>,
}

fn parse_pkcs12(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    let corrupt = |reason: String| ParseError::Corrupt {
        format: Format::Pkcs12,
        reason,
    };
    let outline = p12_outline(bytes)?;
    let protected = outline.has_mac || outline.encrypted;
    let (keys, certs, locked) = match password {
        Some(pw) if protected => {
            let archive = p12_keystore::Pkcs12Archive::from_pkcs12(bytes, pw).map_err(|e| {
                use p12_keystore::error::Error as E;
                match e {
                    E::MacError(_) => ParseError::WrongPassword { format: Format::Pkcs12 },
                    E::UnpadError | E::Pkcs5Error(_) | E::InvalidPrivateKey if !outline.has_mac => {
                        ParseError::WrongPassword { format: Format::Pkcs12 }
                    }
                    E::UnsupportedEncryptionScheme => {
                        ParseError::UnsupportedAlgorithm("the PKCS#12 encryption scheme is not supported".into())
                    }
                    E::UnsupportedMacAlgorithm => {
                        ParseError::UnsupportedAlgorithm("the PKCS#12 MAC algorithm is not supported".into())
                    }
                    E::UnsupportedContentType => ParseError::UnsupportedAlgorithm(
                        "the PKCS#12 content type is not supported (only password-based protection is)".into(),
                    ),
                    E::UnsupportedCertificateType => {
                        ParseError::UnsupportedAlgorithm("the PKCS#12 holds a certificate that is not X.509".into())
                    }
                    E::InvalidParameters => ParseError::UnsupportedAlgorithm(
                        "the PKCS#12 key derivation parameters exceed the supported limits (at most 1,000,000 iterations)".into(),
                    ),
                    other => corrupt(format!("{other}")),
                }
            })?;
            let certs = archive
                .certs
                .into_iter()
                .map(|c| {
                    cert_info(c.cert.as_der(), false)
                        .map(|info| RawCert {
                            alias: c.friendly_name,
                            local_key_id: c.local_key_id,
                            trusted: c.trusted,
                            info,
                        })
                        .map_err(corrupt)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let keys = archive
                .keys
                .into_iter()
                .map(|k| RawKey {
                    alias: k.friendly_name,
                    local_key_id: k.local_key_id.map(|id| id.0),
                    pkcs8: Some(SecretSlice::from(k.key.as_der().to_vec())),
                })
                .collect();
            (keys, certs, false)
        }
        _ => (outline.keys, outline.certs, password.is_none() && protected),
    };
    if certs.is_empty() && !locked {
        return Err(if keys.is_empty() {
            corrupt("it holds no certificate".into())
        } else {
            ParseError::KeyWithoutCertificate
        });
    }
    check_count(certs.len())?;
    let entries = assemble(keys, certs, false)?;
    Ok(ParsedStore {
        format: Format::Pkcs12,
        locked,
        entries,
    })
}

fn p12_outline(bytes: &[u8]) -> Result<P12Outline, ParseError> {
    let corrupt = |reason: &str| ParseError::Corrupt {
        format: Format::Pkcs12,
        reason: reason.to_string(),
    };
    let (pfx, _) = der::read(bytes).ok_or_else(|| corrupt("the PFX structure is not valid DER"))?;
    let items =
        der::read_all(pfx.value).ok_or_else(|| corrupt("the PFX structure is not valid DER"))?;
    let (version, auth_safe, mac) = match items.as_slice() {
        [v, a] => (v, a, None),
        [v, a, m] => (v, a, Some(m)),
        _ => return Err(corrupt("the PFX structure has the wrong number of fields")),
    };
    if version.tag != der::INTEGER || version.value != [3] {
        return Err(corrupt("unsupported PFX version (expected 3)"));
    }
    let mut out = P12Outline {
        has_mac: mac.is_some(),
        ..Default::default()
    };
    // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
    if let Some(mac) = mac {
        let iterations = der::read_all(mac.value)
            .and_then(|items| {
                items
                    .get(2)
                    .filter(|i| i.tag == der::INTEGER)
                    .map(|i| uint(i.value))
            })
            .unwrap_or(1);
        out.budget.pbkdf2("the PKCS#12 MAC", iterations)?;
    }
    let (oid, content) =
        content_info(auth_safe).ok_or_else(|| corrupt("the authenticated safe is malformed"))?;
    if oid != OID_DATA {
        return Err(ParseError::UnsupportedAlgorithm(
            "PKCS#12 with public-key integrity protection is not supported".into(),
        ));
    }
    let safes = octet_string(content)
        .and_then(|d| der::read(d).filter(|(s, rest)| s.tag == der::SEQUENCE && rest.is_empty()))
        .and_then(|(s, _)| der::read_all(s.value))
        .ok_or_else(|| {
            corrupt("the authenticated safe is malformed (BER-encoded PKCS#12 is not supported)")
        })?;
    for safe in safes {
        let (oid, content) = content_info(&safe).ok_or_else(|| corrupt("a safe is malformed"))?;
        match oid.as_str() {
            OID_DATA => {
                let data = octet_string(content).ok_or_else(|| corrupt("a safe is malformed"))?;
                walk_bags(data, &mut out, 0).map_err(corrupt)?;
                if let Some(e) = out.refused.take() {
                    return Err(e);
                }
            }
            OID_ENCRYPTED_DATA => {
                out.encrypted = true;
                // EncryptedData ::= SEQUENCE { version, EncryptedContentInfo ::= SEQUENCE {
                //   contentType, contentEncryptionAlgorithm, [0] encryptedContent } }
                let alg = der::read_all(content.value)
                    .and_then(|items| items.get(1).copied())
                    .and_then(|eci| der::read_all(eci.value))
                    .and_then(|items| items.get(1).copied());
                if let Some(alg) = alg {
                    out.budget.algorithm("an encrypted PKCS#12 safe", &alg)?;
                }
            }
            _ => {
                return Err(ParseError::UnsupportedAlgorithm(
                    "PKCS#12 with public-key encrypted contents is not supported".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// `ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }` → (OID, content TLV).
fn content_info<'a>(tlv: &der::Tlv<'a>) -> Option<(String, der::Tlv<'a>)> {
    if tlv.tag != der::SEQUENCE {
        return None;
    }
    let items = der::read_all(tlv.value)?;
    let [oid, explicit] = items.as_slice() else {
        return None;
    };
    if oid.tag != der::OID || explicit.tag != 0xa0 {
        return None;
    }
    let (content, rest) = der::read(explicit.value)?;
    rest.is_empty()
        .then(|| (der::oid_to_string(oid.value), content))
}

fn octet_string(tlv: der::Tlv<'_>) -> Option<&[u8]> {
    (tlv.tag == der::OCTET_STRING).then_some(tlv.value)
}

fn walk_bags(data: &[u8], out: &mut P12Outline, depth: u8) -> Result<(), &'static str> {
    const BAD: &str = "a bag is malformed";
    if depth > 4 {
        return Err("safe contents are nested too deeply");
    }
    let (seq, rest) = der::read(data).ok_or(BAD)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(BAD);
    }
    for bag in der::read_all(seq.value).ok_or(BAD)? {
        if bag.tag != der::SEQUENCE {
            return Err(BAD);
        }
        let items = der::read_all(bag.value).ok_or(BAD)?;
        let (id, value, attrs) = match items.as_slice() {
            [id, value] => (id, value, None),
            [id, value, attrs] => (id, value, Some(attrs)),
            _ => return Err(BAD),
        };
        if id.tag != der::OID || value.tag != 0xa0 {
            return Err(BAD);
        }
        let (value, rest) = der::read(value.value).ok_or(BAD)?;
        if !rest.is_empty() {
            return Err(BAD);
        }
        let mut alias = None;
        let mut local_key_id = None;
        let mut trusted = false;
        if let Some(attrs) = attrs {
            if attrs.tag != der::SET {
                return Err(BAD);
            }
            for attr in der::read_all(attrs.value).ok_or(BAD)? {
                let parts = der::read_all(attr.value).ok_or(BAD)?;
                let [oid, values] = parts.as_slice() else {
                    return Err(BAD);
                };
                let first = der::read_all(values.value).ok_or(BAD)?.into_iter().next();
                match (der::oid_to_string(oid.value).as_str(), first) {
                    (OID_FRIENDLY_NAME, Some(v)) if v.tag == der::BMP_STRING => {
                        alias = utf16be(v.value)
                    }
                    (OID_LOCAL_KEY_ID, Some(v)) if v.tag == der::OCTET_STRING => {
                        local_key_id = Some(v.value.to_vec())
                    }
                    (OID_JAVA_TRUSTED, Some(_)) => trusted = true,
                    _ => {}
                }
            }
        }
        match der::oid_to_string(id.value).as_str() {
            OID_KEY_BAG => {
                check_pkcs8(value.raw).map_err(|_| "a key bag does not hold a PKCS#8 key")?;
                out.keys.push(RawKey {
                    alias,
                    local_key_id,
                    pkcs8: Some(SecretSlice::from(value.raw.to_vec())),
                });
            }
            OID_SHROUDED_KEY_BAG => {
                out.encrypted = true;
                // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm, encryptedData }
                if let Some(alg) = der::read_all(value.value).and_then(|i| i.first().copied()) {
                    if let Err(e) = out.budget.algorithm("a PKCS#12 key", &alg) {
                        out.refused.get_or_insert(e);
                    }
                }
                out.keys.push(RawKey {
                    alias,
                    local_key_id,
                    pkcs8: None,
                });
            }
            OID_CERT_BAG => {
                let parts = der::read_all(value.value).ok_or(BAD)?;
                let [cert_id, explicit] = parts.as_slice() else {
                    return Err(BAD);
                };
                if der::oid_to_string(cert_id.value) != OID_X509_CERT {
                    continue;
                }
                let (cert, _) = der::read(explicit.value).ok_or(BAD)?;
                let der = octet_string(cert).ok_or(BAD)?;
                let info = cert_info(der, false)
                    .map_err(|_| "a certificate bag does not hold a valid X.509 certificate")?;
                out.certs.push(RawCert {
                    alias,
                    local_key_id,
                    trusted,
                    info,
                });
            }
            OID_SAFE_CONTENTS_BAG => walk_bags(value.raw, out, depth + 1)?,
            _ => {}
        }
    }
    Ok(())
}

fn utf16be(b: &[u8]) -> Option<String> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_DSA: &str = "1.2.840.10040.4.1";
const OID_PBES2: &str = "1.2.840.113549.1.5.13";

struct RawKey {
    alias: Option<String>,
    local_key_id: Option<Vec<u8>>,
    pkcs8: Option<SecretSlice<u8>>,
}

impl RawKey {
    fn open(pkcs8: Vec<u8>) -> Self {
        Self {
            alias: None,
            local_key_id: None,
            pkcs8: Some(SecretSlice::from(pkcs8)),
        }
    }
}

struct RawCert {
    alias: Option<String>,
    local_key_id: Option<Vec<u8>>,
    trusted: bool,
    info: CertInfo,
}

/// The parts of a PKCS#8 `PrivateKeyInfo`: algorithm OID (dotted), its parameters' TLV, the
/// private key octets and the optional public key (`[1]`, PKCS#8 v2).
struct Pkcs8Parts<'a> {
    algorithm: String,
    private_key: &'a [u8],
    public_key: Option<&'a [u8]>,
}

fn pkcs8_parts(der: &[u8]) -> Option<Pkcs8Parts<'_>> {
    let (seq, rest) = der::read(der)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return None;
    }
    let items = der::read_all(seq.value)?;
    let mut it = items.into_iter();
    let version = it.next()?;
    let alg = it.next()?;
    let key = it.next()?;
    if version.tag != der::INTEGER || alg.tag != der::SEQUENCE || key.tag != der::OCTET_STRING {
        return None;
    }
    let (oid, _) = der::read(alg.value)?;
    if oid.tag != der::OID {
        return None;
    }
    let public_key = it.find(|t| t.tag == 0x81 || t.tag == 0xa1).and_then(|t| {
        if t.tag == 0x81 {
            t.value.get(1..) // implicit BIT STRING: skip the unused-bits byte
        } else {
            None
        }
    });
    Some(Pkcs8Parts {
        algorithm: der::oid_to_string(oid.value),
        private_key: key.value,
        public_key,
    })
}

fn check_pkcs8(der: &[u8]) -> Result<(), String> {
    pkcs8_parts(der)
        .map(|_| ())
        .ok_or_else(|| "is not a valid PKCS#8 private key".to_string())
}

fn wrap_pkcs8(algorithm: &[u8], private_key: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    der::write(der::INTEGER, &[0], &mut body);
    der::write(der::SEQUENCE, algorithm, &mut body);
    der::write(der::OCTET_STRING, private_key, &mut body);
    let mut out = Vec::new();
    der::write(der::SEQUENCE, &body, &mut out);
    out
}

/// PKCS#1 `RSAPrivateKey` → PKCS#8.
fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "is not a valid PKCS#1 RSA private key".to_string();
    let (seq, rest) = der::read(pkcs1).ok_or_else(bad)?;
    let items = der::read_all(seq.value).ok_or_else(bad)?;
    if seq.tag != der::SEQUENCE
        || !rest.is_empty()
        || items.len() < 9
        || items.iter().any(|i| i.tag != der::INTEGER)
    {
        return Err(bad());
    }
    let mut alg = Vec::new();
    der::write(
        der::OID,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        &mut alg,
    );
    der::write(der::NULL, &[], &mut alg);
    Ok(wrap_pkcs8(&alg, pkcs1))
}

/// SEC1 `ECPrivateKey` (with its curve in `[0]`) → PKCS#8.
fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "is not a valid SEC1 EC private key".to_string();
    let (seq, rest) = der::read(sec1).ok_or_else(bad)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(bad());
    }
    let items = der::read_all(seq.value).ok_or_else(bad)?;
    let params = items
        .iter()
        .find(|t| t.tag == 0xa0)
        .ok_or_else(|| "has no curve parameters".to_string())?;
    let (curve, _) = der::read(params.value).ok_or_else(bad)?;
    if curve.tag != der::OID {
        return Err("uses explicit curve parameters, which are not supported".into());
    }
    let mut alg = Vec::new();
    der::write(
        der::OID,
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        &mut alg,
    );
    alg.extend_from_slice(curve.raw);
    Ok(wrap_pkcs8(&alg, sec1))
}

/// Decrypt a PKCS#8 `EncryptedPrivateKeyInfo` protected with PBES2.
fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<SecretSlice<u8>, ParseError> {
    use pkcs5::der::Decode as _;
    let corrupt = || ParseError::Corrupt {
        format: Format::Pem,
        reason: "the encrypted private key is not a valid PKCS#8 EncryptedPrivateKeyInfo".into(),
    };
    let (seq, rest) = der::read(der).ok_or_else(corrupt)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(corrupt());
    }
    let items = der::read_all(seq.value).ok_or_else(corrupt)?;
    let [alg, data] = items.as_slice() else {
        return Err(corrupt());
    };
    if alg.tag != der::SEQUENCE || data.tag != der::OCTET_STRING {
        return Err(corrupt());
    }
    let (oid, params) = der::read(alg.value).ok_or_else(corrupt)?;
    let oid = der::oid_to_string(oid.value);
    if oid != OID_PBES2 {
        return Err(ParseError::UnsupportedAlgorithm(format!(
            "the private key is encrypted with {oid}; only PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc) is supported"
        )));
    }
    let params = pkcs5::pbes2::Parameters::from_der(params).map_err(|_| {
        ParseError::UnsupportedAlgorithm(
            "the PBES2 parameters of the private key are not supported".into(),
        )
    })?;
    KdfBudget::default().pbes2("the private key", &params)?;
    let plain = params
        .decrypt(password.as_bytes(), data.value)
        .map_err(|e| match e {
            pkcs5::Error::DecryptFailed => ParseError::WrongPassword {
                format: Format::Pem,
            },
            pkcs5::Error::UnsupportedAlgorithm { oid } => {
                ParseError::UnsupportedAlgorithm(format!("private key encryption algorithm {oid}"))
            }
            _ => ParseError::UnsupportedAlgorithm(
                "the PBES2 parameters of the private key are not supported".into(),
            ),
        })?;
    let plain = SecretSlice::from(plain);
    // A wrong password passes the padding check now and then; the result is then no PKCS#8.
    if check_pkcs8(plain.expose_secret()).is_err() {
        return Err(ParseError::WrongPassword {
            format: Format::Pem,
        });
    }
    Ok(plain)
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let skip = b.iter().take_while(|x| **x == 0).count();
    b.get(skip..).unwrap_or_default()
}

/// Whether the PKCS#8 key belongs to the certificate: `Some(true/false)`, or `None` when that
/// cannot be told (an EC key without its public point, an unknown algorithm).
fn key_matches(pkcs8: &[u8], cert: &CertInfo) -> Option<bool> {
    let key = pkcs8_parts(pkcs8)?;
    let (_, x509) = X509Certificate::from_der(&cert.der).ok()?;
    let spki = x509.public_key();
    let cert_alg = spki.algorithm.algorithm.to_id_string();
    let cert_key: &[u8] = &spki.subject_public_key.data;
    if key.algorithm != cert_alg {
        return Some(false);
    }
    match key.algorithm.as_str() {
        OID_RSA | OID_RSA_PSS => {
            let (seq, _) = der::read(key.private_key)?;
            let items = der::read_all(seq.value)?;
            let n = items.get(1)?;
            let (cseq, _) = der::read(cert_key)?;
            let cn = der::read_all(cseq.value)?.into_iter().next()?;
            Some(strip_zeros(n.value) == strip_zeros(cn.value))
        }
        OID_EC => {
            let (seq, _) = der::read(key.private_key)?;
            let items = der::read_all(seq.value)?;
            let public = items.iter().find(|t| t.tag == 0xa1)?;
            let (bits, _) = der::read(public.value)?;
            Some(bits.value.get(1..)? == cert_key)
        }
        OID_ED25519 => {
            if let Some(public) = key.public_key {
                return Some(public == cert_key);
            }
            let (seed, _) = der::read(key.private_key)?;
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.value).ok()?;
            Some(ring::signature::KeyPair::public_key(&pair).as_ref() == cert_key)
        }
        _ => key.public_key.map(|p| p == cert_key),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

fn x509_reason(e: &x509_parser::nom::Err<X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Incomplete(_) => "the certificate is truncated".into(),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            format!("not a valid X.509 certificate ({e})")
        }
    }
}

fn cert_info(der: &[u8], allow_trailing: bool) -> Result<CertInfo, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| x509_reason(&e))?;
    if !rest.is_empty() && !allow_trailing {
        return Err(format!(
            "{} unexpected bytes after the certificate",
            rest.len()
        ));
    }
    let der = der
        .get(..der.len() - rest.len())
        .unwrap_or_default()
        .to_vec();
    let serial = strip_zeros(cert.tbs_certificate.raw_serial());
    let serial_number = if serial.is_empty() {
        "00".to_string()
    } else {
        hex::encode_upper(serial)
    };
    let sha256_fingerprint = crate::sha256_fingerprint(&der);
    let (key_algorithm, key_size) = key_description(cert.public_key());
    let mut subject_alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            subject_alt_names.push(match name {
                GeneralName::DNSName(s) => format!("DNS:{s}"),
                GeneralName::RFC822Name(s) => format!("email:{s}"),
                GeneralName::URI(s) => format!("URI:{s}"),
                GeneralName::IPAddress(b) => format!("IP:{}", ip_string(b)),
                GeneralName::DirectoryName(n) => format!("DirName:{}", rfc4514(n)),
                GeneralName::RegisteredID(oid) => format!("RID:{}", oid.to_id_string()),
                GeneralName::OtherName(oid, _) => format!("othername:{}", oid.to_id_string()),
                GeneralName::X400Address(_) => "X400Address".into(),
                GeneralName::EDIPartyName(_) => "EdiPartyName".into(),
            });
        }
    }
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    Ok(CertInfo {
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        serial_number,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        key_algorithm,
        key_size,
        sha256_fingerprint,
        subject_alt_names,
        is_ca,
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
        der,
    })
}

fn ip_string(b: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return std::net::Ipv4Addr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(b) {
        return std::net::Ipv6Addr::from(v6).to_string();
    }
    hex::encode_upper(b) // an address with a netmask (name constraints) or garbage
}

fn key_description(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> (String, Option<u32>) {
    let oid = spki.algorithm.algorithm.to_id_string();
    let key: &[u8] = &spki.subject_public_key.data;
    let rsa_bits = || {
        let (seq, _) = der::read(key)?;
        let n = der::read_all(seq.value)?.into_iter().next()?;
        let n = strip_zeros(n.value);
        let first = *n.first()?;
        u32::try_from((n.len() - 1) * 8)
            .ok()
            .map(|b| b + 8 - first.leading_zeros())
    };
    match oid.as_str() {
        OID_RSA => ("RSA".into(), rsa_bits()),
        OID_RSA_PSS => ("RSASSA-PSS".into(), rsa_bits()),
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = match curve.as_deref() {
                Some("1.2.840.10045.3.1.7")
                | Some("1.3.132.0.10")
                | Some("1.3.36.3.3.2.8.1.1.7") => Some(256),
                Some("1.3.132.0.34") | Some("1.3.36.3.3.2.8.1.1.11") => Some(384),
                Some("1.3.132.0.35") => Some(521),
                Some("1.3.36.3.3.2.8.1.1.13") => Some(512),
                _ => u32::try_from(key.len().saturating_sub(1) / 2 * 8)
                    .ok()
                    .filter(|b| *b > 0),
            };
            ("EC".into(), bits)
        }
        OID_ED25519 => ("Ed25519".into(), Some(255)),
        OID_ED448 => ("Ed448".into(), Some(448)),
        OID_DSA => ("DSA".into(), None),
        _ => (oid, None),
    }
}

/// A name in RFC 4514 form: most specific RDN first, `,` between RDNs, `+` inside one.
fn rfc4514(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<String> = Vec::new();
    for rdn in name.iter() {
        let parts: Vec<String> = rdn
            .iter()
            .map(|atv| {
                let oid = atv.attr_type().to_id_string();
                let keyword = match oid.as_str() {
                    "2.5.4.3" => Some("CN"),
                    "2.5.4.7" => Some("L"),
                    "2.5.4.8" => Some("ST"),
                    "2.5.4.10" => Some("O"),
                    "2.5.4.11" => Some("OU"),
                    "2.5.4.6" => Some("C"),
                    "2.5.4.9" => Some("STREET"),
                    "0.9.2342.19200300.100.1.25" => Some("DC"),
                    "0.9.2342.19200300.100.1.1" => Some("UID"),
                    "2.5.4.5" => Some("SERIALNUMBER"),
                    "1.2.840.113549.1.9.1" => Some("emailAddress"),
                    _ => None,
                };
                let value = atv.attr_value();
                let text = if keyword.is_some() {
                    attr_string(value)
                } else {
                    None
                };
                match (keyword, text) {
                    (Some(k), Some(t)) => format!("{k}={}", escape_rfc4514(&t)),
                    (k, _) => {
                        let mut tlv = Vec::new();
                        let tag = ((value.header.class() as u8) << 6)
                            | if value.header.is_constructed() {
                                0x20
                            } else {
                                0
                            }
                            | (value.header.tag().0 & 0x1f) as u8;
                        der::write(tag, value.data, &mut tlv);
                        format!(
                            "{}=#{}",
                            k.map(str::to_string).unwrap_or(oid),
                            hex::encode(tlv)
                        )
                    }
                }
            })
            .collect();
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    rdns.join(",")
}

fn attr_string(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Option<String> {
    if value.header.class() != x509_parser::der_parser::asn1_rs::Class::Universal {
        return None;
    }
    let data = value.data;
    match value.header.tag().0 {
        12 | 18 | 19 | 22 | 26 => std::str::from_utf8(data).ok().map(str::to_string),
        20 => Some(data.iter().map(|b| char::from(*b)).collect()),
        30 => utf16be(data),
        28 => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn escape_rfc4514(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Assembling entries and chains
// ---------------------------------------------------------------------------------------------

/// At most this many certificates sharing an issuer name are tried as the issuer.
const MAX_CANDIDATES: usize = 8;
/// At most this many certificates in one file.
pub const MAX_CERTIFICATES: usize = 1000;

fn check_count(n: usize) -> Result<(), ParseError> {
    if n > MAX_CERTIFICATES {
        return Err(ParseError::TooManyCertificates {
            limit: MAX_CERTIFICATES,
        });
    }
    Ok(())
}

/// For each certificate, the index of its issuer among `certs` (by name; when several share the
/// name, the one whose key verifies the signature). `None` for a self-issued certificate or when
/// the issuer is not there.
fn issuer_links(certs: &[&CertInfo]) -> Vec<Option<usize>> {
    certs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.is_self_issued() {
                return None;
            }
            let candidates: Vec<usize> = (0..certs.len())
                .filter(|&j| j != i && certs.get(j).is_some_and(|p| c.issued_by_name(p)))
                .collect();
            match candidates.as_slice() {
                [] => None,
                [only] => Some(*only),
                many => many
                    .iter()
                    .copied()
                    .take(MAX_CANDIDATES)
                    .find(|&j| {
                        certs
                            .get(j)
                            .is_some_and(|p| matches!(check_signature(c, p), Sig::Valid))
                    })
                    .or(many.first().copied()),
            }
        })
        .collect()
}

fn walk(start: usize, links: &[Option<usize>]) -> Vec<usize> {
    let mut chain = vec![start];
    let mut seen = vec![false; links.len()];
    if let Some(s) = seen.get_mut(start) {
        *s = true;
    }
    let mut cur = start;
    while let Some(Some(next)) = links.get(cur) {
        match seen.get_mut(*next) {
            Some(s) if !*s => *s = true,
            _ => break,
        }
        chain.push(*next);
        cur = *next;
    }
    chain
}

/// Turn keys and certificates into entries (see the module docs). `strict_keys`: a key that
/// provably matches no certificate is [`ParseError::KeyMismatch`] (PEM); otherwise it becomes an
/// entry without a chain.
fn assemble(
    keys: Vec<RawKey>,
    certs: Vec<RawCert>,
    strict_keys: bool,
) -> Result<Vec<Entry>, ParseError> {
    // Deduplicate certificates, keeping the first occurrence's metadata.
    let mut unique: Vec<RawCert> = Vec::new();
    for c in certs {
        match unique.iter_mut().find(|u| u.info.der == c.info.der) {
            Some(u) => {
                u.alias = u.alias.take().or(c.alias);
                u.local_key_id = u.local_key_id.take().or(c.local_key_id);
                u.trusted |= c.trusted;
            }
            None => unique.push(c),
        }
    }
    let infos: Vec<&CertInfo> = unique.iter().map(|c| &c.info).collect();
    let links = issuer_links(&infos);
    let is_parent: Vec<bool> = (0..infos.len()).map(|j| links.contains(&Some(j))).collect();
    let leaves: Vec<usize> = (0..infos.len())
        .filter(|&j| !is_parent.get(j).copied().unwrap_or(true))
        .collect();
    let mut used = vec![false; unique.len()];
    let mut entries = Vec::new();
    let single_key = keys.len() == 1;
    for key in keys {
        let by_id = key.local_key_id.as_ref().and_then(|id| {
            unique
                .iter()
                .position(|c| c.local_key_id.as_ref() == Some(id))
        });
        let mut leaf = by_id;
        if leaf.is_none() {
            if let Some(pkcs8) = &key.pkcs8 {
                let verdicts: Vec<Option<bool>> = unique
                    .iter()
                    .map(|c| key_matches(pkcs8.expose_secret(), &c.info))
                    .collect();
                leaf = verdicts.iter().position(|v| *v == Some(true));
                if leaf.is_none()
                    && strict_keys
                    && !verdicts.is_empty()
                    && verdicts.iter().all(|v| *v == Some(false))
                {
                    return Err(ParseError::KeyMismatch);
                }
            }
        }
        if leaf.is_none() && single_key {
            if let [only] = leaves.as_slice() {
                leaf = Some(*only);
            }
        }
        let chain_idx = leaf.map(|l| walk(l, &links)).unwrap_or_default();
        for &i in &chain_idx {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        let alias = key.alias.or_else(|| {
            leaf.and_then(|l| unique.get(l))
                .and_then(|c| c.alias.clone())
        });
        entries.push(Entry {
            alias,
            kind: EntryKind::PrivateKey,
            chain: chain_idx
                .iter()
                .filter_map(|&i| unique.get(i))
                .map(|c| c.info.clone())
                .collect(),
            private_key_der: key.pkcs8,
        });
    }
    // Trusted certificates: one entry each, also when a key's chain holds the same certificate.
    for (i, c) in unique.iter().enumerate() {
        if c.trusted {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
            entries.push(Entry {
                alias: c.alias.clone(),
                kind: EntryKind::TrustedCertificate,
                chain: vec![c.info.clone()],
                private_key_der: None,
            });
        }
    }
    // The rest: grouped into chains, starting from the leaves, then from anything left (cycles).
    let rest: Vec<usize> = (0..unique.len())
        .filter(|&i| !used.get(i).copied().unwrap_or(true))
        .collect();
    let rest_is_parent = |j: usize| rest.iter().any(|&i| links.get(i) == Some(&Some(j)));
    let starts: Vec<usize> = rest
        .iter()
        .copied()
        .filter(|&j| !rest_is_parent(j))
        .chain(rest.iter().copied())
        .collect();
    for start in starts {
        if used.get(start).copied().unwrap_or(true) {
            continue;
        }
        let chain_idx = walk(start, &links);
        for &i in &chain_idx {
            if let Some(u) = used.get_mut(i) {
                *u = true;
            }
        }
        entries.push(Entry {
            alias: unique.get(start).and_then(|c| c.alias.clone()),
            kind: EntryKind::Certificate,
            chain: chain_idx
                .iter()
                .filter_map(|&i| unique.get(i))
                .map(|c| c.info.clone())
                .collect(),
            private_key_der: None,
        });
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------------------------
// Chain validation
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
enum Sig {
    Valid,
    Invalid,
    Unsupported(String),
}

/// Whether `issuer`'s key signed `child`: x509-parser's `verify_signature` (ring), with a
/// fallback through the `rsa` crate for RSA keys below 2048 bits and RSASSA-PSS, which ring's
/// fixed algorithm set rejects.
fn check_signature(child: &CertInfo, issuer: &CertInfo) -> Sig {
    let (Ok((_, c)), Ok((_, p))) = (
        X509Certificate::from_der(&child.der),
        X509Certificate::from_der(&issuer.der),
    ) else {
        return Sig::Invalid;
    };
    match c.verify_signature(Some(p.public_key())) {
        Ok(()) => Sig::Valid,
        Err(e) => match rsa_fallback(&c, p.public_key()) {
            Some(true) => Sig::Valid,
            Some(false) => Sig::Invalid,
            None if e == X509Error::SignatureUnsupportedAlgorithm => {
                Sig::Unsupported(c.signature_algorithm.algorithm.to_id_string())
            }
            None => Sig::Invalid,
        },
    }
}

fn rsa_fallback(
    cert: &X509Certificate<'_>,
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Option<bool> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use sha2::{Sha224, Sha256, Sha384, Sha512};
    let key_oid = spki.algorithm.algorithm.to_id_string();
    if key_oid != OID_RSA && key_oid != OID_RSA_PSS {
        return None;
    }
    let key = rsa::RsaPublicKey::from_pkcs1_der(&spki.subject_public_key.data).ok()?;
    let tbs = cert.tbs_certificate.as_ref();
    let sig: &[u8] = &cert.signature_value.data;
    let pkcs1 =
        |scheme: rsa::Pkcs1v15Sign, hashed: &[u8]| Some(key.verify(scheme, hashed, sig).is_ok());
    match cert.signature_algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.11" => pkcs1(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(tbs)),
        "1.2.840.113549.1.1.12" => pkcs1(rsa::Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(tbs)),
        "1.2.840.113549.1.1.13" => pkcs1(rsa::Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(tbs)),
        "1.2.840.113549.1.1.14" => pkcs1(rsa::Pkcs1v15Sign::new::<Sha224>(), &Sha224::digest(tbs)),
        OID_RSA_PSS => {
            let params = cert.signature_algorithm.parameters.as_ref()?;
            let (hash, salt) = pss_params(params.data)?;
            let ok = match hash {
                "2.16.840.1.101.3.4.2.1" => key
                    .verify(
                        rsa::Pss::new_with_salt::<Sha256>(salt),
                        &Sha256::digest(tbs),
                        sig,
                    )
                    .is_ok(),
                "2.16.840.1.101.3.4.2.2" => key
                    .verify(
                        rsa::Pss::new_with_salt::<Sha384>(salt),
                        &Sha384::digest(tbs),
                        sig,
                    )
                    .is_ok(),
                "2.16.840.1.101.3.4.2.3" => key
                    .verify(
                        rsa::Pss::new_with_salt::<Sha512>(salt),
                        &Sha512::digest(tbs),
                        sig,
                    )
                    .is_ok(),
                _ => return None,
            };
            Some(ok)
        }
        _ => None,
    }
}

/// RSASSA-PSS-params contents → (hash OID, salt length). SHA-1 defaults are not supported.
fn pss_params(contents: &[u8]) -> Option<(&'static str, usize)> {
    let mut hash = None;
    let mut salt = 20usize;
    for item in der::read_all(contents)? {
        match item.tag {
            0xa0 => {
                let (alg, _) = der::read(item.value)?;
                let (oid, _) = der::read(alg.value)?;
                hash = match der::oid_to_string(oid.value).as_str() {
                    "2.16.840.1.101.3.4.2.1" => Some("2.16.840.1.101.3.4.2.1"),
                    "2.16.840.1.101.3.4.2.2" => Some("2.16.840.1.101.3.4.2.2"),
                    "2.16.840.1.101.3.4.2.3" => Some("2.16.840.1.101.3.4.2.3"),
                    _ => return None,
                };
            }
            0xa2 => {
                let (n, _) = der::read(item.value)?;
                if n.tag != der::INTEGER || n.value.len() > 4 {
                    return None;
                }
                salt = n
                    .value
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            }
            _ => {}
        }
    }
    hash.map(|h| (h, salt))
}

/// Signature checks with a cache, and the certificates already known to reach a root, so that a
/// file of many chains sharing their CAs verifies each link once.
#[derive(Default)]
struct Verifier {
    checked: RefCell<HashMap<(String, String), Sig>>,
    complete: RefCell<HashSet<String>>,
}

impl Verifier {
    fn check(&self, child: &CertInfo, issuer: &CertInfo) -> Sig {
        let key = (
            child.sha256_fingerprint.clone(),
            issuer.sha256_fingerprint.clone(),
        );
        if let Some(sig) = self.checked.borrow().get(&key) {
            return sig.clone();
        }
        let sig = check_signature(child, issuer);
        self.checked.borrow_mut().insert(key, sig.clone());
        sig
    }
}

fn check_link(v: &Verifier, child: &CertInfo, issuer: &CertInfo) -> Result<(), ChainError> {
    match v.check(child, issuer) {
        Sig::Valid => Ok(()),
        Sig::Invalid => Err(ChainError::BadSignature {
            subject: child.subject.clone(),
            issuer: issuer.subject.clone(),
        }),
        Sig::Unsupported(algorithm) => Err(ChainError::UnsupportedSignature {
            subject: child.subject.clone(),
            algorithm,
        }),
    }
}

/// Check that every chain of `store` is complete: each certificate issued and signed by the next,
/// ending in a self-signed root. A chain that stops below its root is completed from the other
/// certificates of the file (a JKS key entry whose CA is a trusted entry of the same file is
/// complete). Trusted certificate entries must each be a root or chain to one in the file.
///
/// A root's self-signature is verified when its algorithm is supported (old roots signed with
/// MD5 and the like are accepted by name). A locked store is checked for what is readable.
pub fn validate_chain(store: &ParsedStore) -> Result<(), ChainError> {
    let mut pool: Vec<&CertInfo> = Vec::new();
    for c in store.certificates() {
        if !pool.iter().any(|p| p.der == c.der) {
            pool.push(c);
        }
    }
    let v = Verifier::default();
    for entry in &store.entries {
        let Some(first) = entry.chain.first() else {
            if entry.kind == EntryKind::PrivateKey && !store.locked {
                return Err(ChainError::NoCertificate {
                    alias: entry
                        .alias
                        .as_ref()
                        .map(|a| format!("'{a}'"))
                        .unwrap_or_else(|| "without alias".into()),
                });
            }
            continue;
        };
        match entry.kind {
            EntryKind::TrustedCertificate => {
                for cert in &entry.chain {
                    complete_to_root(&v, cert, &pool)?;
                }
            }
            EntryKind::PrivateKey | EntryKind::Certificate => {
                let mut last = first;
                for next in entry.chain.iter().skip(1) {
                    if !last.issued_by_name(next) {
                        if pool.iter().any(|p| last.issued_by_name(p)) {
                            return Err(ChainError::NotIssuedByNext {
                                subject: last.subject.clone(),
                                next: next.subject.clone(),
                            });
                        }
                        return Err(ChainError::MissingIssuer {
                            subject: last.subject.clone(),
                            issuer: last.issuer.clone(),
                        });
                    }
                    check_link(&v, last, next)?;
                    last = next;
                }
                complete_to_root(&v, last, &pool)?;
            }
        }
    }
    Ok(())
}

/// Follow issuers through `pool` from `cert` up to a self-signed root.
fn complete_to_root(v: &Verifier, cert: &CertInfo, pool: &[&CertInfo]) -> Result<(), ChainError> {
    let mut cur = cert;
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut path: Vec<&str> = Vec::new();
    loop {
        if v.complete.borrow().contains(&cur.sha256_fingerprint) {
            break;
        }
        path.push(&cur.sha256_fingerprint);
        if cur.is_self_issued() {
            match v.check(cur, cur) {
                Sig::Valid | Sig::Unsupported(_) => break,
                Sig::Invalid => {
                    return Err(ChainError::BadSignature {
                        subject: cur.subject.clone(),
                        issuer: cur.issuer.clone(),
                    })
                }
            }
        }
        seen.push(&cur.der);
        let candidates: Vec<&CertInfo> = pool
            .iter()
            .copied()
            .filter(|p| cur.issued_by_name(p) && !seen.contains(&p.der.as_slice()))
            .collect();
        let Some(first) = candidates.first().copied() else {
            return Err(ChainError::MissingIssuer {
                subject: cur.subject.clone(),
                issuer: cur.issuer.clone(),
            });
        };
        let issuer = candidates
            .iter()
            .copied()
            .take(MAX_CANDIDATES)
            .find(|p| matches!(v.check(cur, p), Sig::Valid))
            .unwrap_or(first);
        check_link(v, cur, issuer)?;
        cur = issuer;
    }
    v.complete
        .borrow_mut()
        .extend(path.into_iter().map(str::to_string));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Views for the API
// ---------------------------------------------------------------------------------------------

fn write_pem_block(tag: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * tag.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(tag);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(tag);
    out.push_str("-----\n");
    out
}

/// SAP's `/publicKeys` items: one per entry with certificates, its chain as PEM (leaf first) and
/// the leaf's subject DN; `alias` only for keystores (PKCS#12, JKS). The API answers SAP's 400
/// ("The keystore is password-protected and public keys cannot be retrieved") itself when the
/// store is `locked`.
pub fn public_keys(store: &ParsedStore) -> Vec<PublicKeyItem> {
    let keystore = matches!(store.format, Format::Pkcs12 | Format::Jks);
    store
        .entries
        .iter()
        .filter_map(|e| {
            let leaf = e.chain.first()?;
            Some(PublicKeyItem {
                alias: if keystore { e.alias.clone() } else { None },
                content: e.chain.iter().map(CertInfo::to_pem).collect(),
                subject_dn: leaf.subject.clone(),
            })
        })
        .collect()
}

/// The first private key entry with an open key and a certificate, as PEM: the chain (leaf
/// first) and the key as PKCS#8 `PRIVATE KEY`, ready for `reqwest::Identity::from_pem` (which
/// takes both concatenated).
pub fn client_identity_pem(store: &ParsedStore) -> Option<(String, SecretString)> {
    store.entries.iter().find_map(|e| {
        let key = e.private_key_der.as_ref()?;
        if e.kind != EntryKind::PrivateKey || e.chain.is_empty() {
            return None;
        }
        let certs: String = e.chain.iter().map(CertInfo::to_pem).collect();
        Some((
            certs,
            SecretString::from(write_pem_block("PRIVATE KEY", key.expose_secret())),
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514(" #x "), "\\ #x\\ ");
        assert_eq!(escape_rfc4514("#x"), "\\#x");
        assert_eq!(escape_rfc4514("q\"<>;\\"), "q\\\"\\<\\>\\;\\\\");
    }

    #[test]
    fn classify() {
        assert!(matches!(
            classify_der(&[0x30, 0x03, 0x02, 0x01, 0x03]),
            DerKind::Pkcs12
        ));
        assert!(matches!(
            classify_der(&[0x30, 0x03, 0x02, 0x01, 0x00]),
            DerKind::PrivateKey
        ));
        assert!(matches!(
            classify_der(&[0x30, 0x02, 0x30, 0x00]),
            DerKind::Certificate
        ));
        assert!(matches!(classify_der(&[0x30]), DerKind::Unknown));
    }

    #[test]
    fn written_pem_blocks_wrap_at_64() {
        let pem = write_pem_block("CERTIFICATE", &[0u8; 100]);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem::parse(&pem).unwrap().contents(), &[0u8; 100][..]);
    }
}
