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

use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::Serialize;
use sha2::Digest as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate, X509Error, X509Name};

use crate::jks;

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
    spki_raw: Vec<u8>,
}

impl CertInfo {
    /// The certificate's `SubjectPublicKeyInfo`, DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki_raw
    }
}

/// One DER certificate (RFC 5280), nothing after it; the error says what is wrong without
/// quoting the input.
pub fn certificate(der: &[u8]) -> Result<CertInfo, String> {
    cert_info(der, false)
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
    fn algorithm(&mut self, what: &str, alg: &tlv::Tlv<'_>) -> Result<(), ParseError> {
        use pkcs5::der::Decode as _;
        let Some((oid, params)) = tlv::read(alg.value) else {
            return Ok(());
        };
        let oid = tlv::oid_to_string(oid.value);
        if oid == OID_PBES2 {
            if let Ok(p) = pkcs5::pbes2::Parameters::from_der(params) {
                return self.pbes2(what, &p);
            }
        } else if oid.starts_with("1.2.840.113549.1.12.1.") {
            let iterations = tlv::read(params)
                .and_then(|(seq, _)| tlv::read_all(seq.value))
                .and_then(|items| {
                    items
                        .get(1)
                        .filter(|i| i.tag == tlv::INTEGER)
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
        crate::pem::encode("CERTIFICATE", &self.der)
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

mod assemble;
mod chain;
mod detect;
mod keys;
mod pem_reader;
mod pkcs12;
mod tlv;
mod views;
mod x509;

use assemble::*;
use chain::*;

use keys::*;
use pem_reader::*;
use pkcs12::*;
use x509::*;

pub use assemble::MAX_CERTIFICATES;
pub use chain::validate_chain;
pub use detect::parse;
pub use views::{client_identity_pem, public_keys};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::detect::*;
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
        let pem = crate::pem::encode("CERTIFICATE", &[0u8; 100]);
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(pem::parse(&pem).unwrap().contents(), &[0u8; 100][..]);
    }
}
