//! The subaccount's trust key pair: generated (RSA-2048 and a self-signed certificate, with
//! `rcgen`), loaded from its PEMs (read and the certificate parsed by `signpost-certs`),
//! and the `ring` signer made from its private key.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _, LineEnding};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret as _, SecretString};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::{invalid, SamlError, TRUST_KEY_BITS};

/// How far back a generated certificate's `notBefore` is set, so that a verifier whose clock is a
/// little behind ours already accepts it.
const CERT_BACKDATE: Duration = Duration::minutes(5);

/// A subaccount's SAML trust key pair: an RSA private key and the self-signed X.509 certificate
/// that token services import to trust assertions signed with it.
///
/// The fields are the persisted form; everything else (DER, validity, the signing key) is derived
/// from them on demand, so a value loaded from storage and a freshly generated one behave alike.
/// `Debug` shows the certificate but never the key.
#[derive(Clone)]
pub struct TrustKeyPair {
    /// The RSA private key, PEM (`PRIVATE KEY`, PKCS#8; `RSA PRIVATE KEY`, PKCS#1, is accepted
    /// too).
    pub private_key_pem: SecretString,
    /// The X.509 certificate, PEM (`CERTIFICATE`).
    pub certificate_pem: String,
}

impl fmt::Debug for TrustKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustKeyPair")
            .field("private_key_pem", &"[REDACTED]")
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

impl TrustKeyPair {
    /// Loads a key pair from its persisted PEMs, checking that the key is a usable RSA key and that
    /// the certificate carries its public key.
    pub fn from_pem(
        private_key_pem: SecretString,
        certificate_pem: String,
    ) -> Result<Self, SamlError> {
        let pair = Self {
            private_key_pem,
            certificate_pem,
        };
        let signer = SigningKey::from_pem(&pair.private_key_pem)?;
        let cert = parse_certificate(&pair.certificate_der()?)?;
        let key_public = rsa::RsaPublicKey::from_pkcs1_der(signer.public_key_pkcs1())
            .map_err(|e| SamlError::InvalidKey(format!("public key: {e}")))?;
        if key_public != cert.public_key {
            return Err(SamlError::InvalidCertificate(
                "the certificate's public key does not belong to the private key".into(),
            ));
        }
        Ok(pair)
    }

    /// The certificate, DER-encoded (the first `CERTIFICATE` block of [`Self::certificate_pem`]).
    pub fn certificate_der(&self) -> Result<Vec<u8>, SamlError> {
        certificate_der_from_pem(&self.certificate_pem)
    }

    /// The certificate, as the bare base64 of its DER: what `ds:X509Certificate` carries.
    pub fn certificate_base64(&self) -> Result<String, SamlError> {
        Ok(STANDARD.encode(self.certificate_der()?))
    }

    /// The certificate's `notBefore`.
    pub fn not_before(&self) -> Result<OffsetDateTime, SamlError> {
        Ok(parse_certificate(&self.certificate_der()?)?.not_before)
    }

    /// The certificate's `notAfter`: after this the key pair should be renewed.
    pub fn not_after(&self) -> Result<OffsetDateTime, SamlError> {
        Ok(parse_certificate(&self.certificate_der()?)?.not_after)
    }
}

/// Generates a subaccount trust key pair: a fresh RSA-2048 key and a self-signed certificate with
/// subject `CN=<common_name>`, valid from a few minutes ago for `validity_days` days.
pub fn generate_trust_keypair(
    common_name: &str,
    validity_days: u32,
) -> Result<TrustKeyPair, SamlError> {
    generate_trust_keypair_at(common_name, validity_days, OffsetDateTime::now_utc())
}

/// [`generate_trust_keypair`] with an explicit "now", for tests and for callers with a clock.
pub fn generate_trust_keypair_at(
    common_name: &str,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<TrustKeyPair, SamlError> {
    if common_name.trim().is_empty() {
        return Err(invalid("common_name", "must not be empty"));
    }
    if validity_days == 0 {
        return Err(invalid("validity_days", "must be at least 1"));
    }
    let now = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| SamlError::InvalidTime(e.to_string()))?;
    let not_before = now
        .checked_sub(CERT_BACKDATE)
        .ok_or_else(|| SamlError::InvalidTime("notBefore out of range".into()))?;
    let not_after = now
        .checked_add(Duration::days(i64::from(validity_days)))
        .ok_or_else(|| SamlError::InvalidTime("notAfter out of range".into()))?;

    let mut rng = rand::rngs::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, TRUST_KEY_BITS)
        .map_err(|e| SamlError::KeyGeneration(e.to_string()))?;
    let key_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| SamlError::KeyGeneration(format!("PKCS#8 encoding: {e}")))?;
    drop(key);

    let rcgen_key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| SamlError::KeyGeneration(format!("loading the key for signing: {e}")))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| SamlError::InvalidCertificate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rng, &mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and without a leading zero byte to strip
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
    ];
    let cert = params
        .self_signed(&rcgen_key)
        .map_err(|e| SamlError::InvalidCertificate(e.to_string()))?;

    Ok(TrustKeyPair {
        private_key_pem: SecretString::from(key_pem.as_str()),
        certificate_pem: cert.pem(),
    })
}

/// The private key, parsed for signing with `ring`.
pub(super) struct SigningKey(ring::rsa::KeyPair);

impl SigningKey {
    pub(super) fn from_pem(pem: &SecretString) -> Result<Self, SamlError> {
        let (label, der) = read_pem_block(pem.expose_secret(), &["PRIVATE KEY", "RSA PRIVATE KEY"])
            .map_err(SamlError::InvalidKey)?;
        let key = if label == "PRIVATE KEY" {
            ring::rsa::KeyPair::from_pkcs8(&der)
        } else {
            ring::rsa::KeyPair::from_der(&der)
        }
        .map_err(|e| SamlError::InvalidKey(format!("not a usable RSA key ({e})")))?;
        Ok(Self(key))
    }

    /// The public key as a PKCS#1 `RSAPublicKey`.
    pub(super) fn public_key_pkcs1(&self) -> &[u8] {
        self.0.public().as_ref()
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256.
    pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SamlError> {
        let mut signature = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SamlError::Signing("the RSA operation failed".into()))?;
        Ok(signature)
    }
}

/// The first PEM block whose label is one of `labels` (`signpost_certs::pem`: surrounding
/// text, line length and CRLF do not matter; encrypted blocks are refused). Errors never quote
/// the input.
pub(super) fn read_pem_block(
    text: &str,
    labels: &[&str],
) -> Result<(String, Zeroizing<Vec<u8>>), String> {
    let (label, der) = signpost_certs::pem::read_block(text.as_bytes(), labels)?;
    Ok((label, Zeroizing::new(der)))
}

pub(super) fn certificate_der_from_pem(text: &str) -> Result<Vec<u8>, SamlError> {
    let (_, der) = read_pem_block(text, &["CERTIFICATE"]).map_err(SamlError::InvalidCertificate)?;
    Ok(der.to_vec())
}

/// What Signpost needs from an X.509 certificate.
pub(super) struct CertificateInfo {
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
    pub(super) public_key: rsa::RsaPublicKey,
}

/// Reads validity and the RSA public key from a DER certificate (`signpost-certs`). The
/// certificate's own signature is not checked: these are the subaccount's self-signed
/// certificates, trusted because Signpost stored them.
pub(super) fn parse_certificate(der: &[u8]) -> Result<CertificateInfo, SamlError> {
    let info = signpost_certs::parse::certificate(der).map_err(SamlError::InvalidCertificate)?;
    let public_key =
        rsa::RsaPublicKey::from_public_key_der(info.public_key_der()).map_err(|e| {
            SamlError::InvalidCertificate(format!("the certificate holds no RSA public key ({e})"))
        })?;
    Ok(CertificateInfo {
        not_before: info.not_before,
        not_after: info.not_after,
        public_key,
    })
}
