//! Output: PEM, leaf keys, CSRs, and the PKCS#12 and JKS writers.

#[allow(clippy::wildcard_imports)]
use super::*;

/// A generated leaf key: the rcgen pair (PKCS#8 inside) and, for RSA, the rsa-crate key (for
/// PKCS#1 output).
pub(super) struct LeafKey {
    pub(super) pair: KeyPair,
    pub(super) rsa: Option<rsa::RsaPrivateKey>,
}

pub(super) fn generate_key(kind: KeyKind) -> Result<LeafKey, CaError> {
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
pub(super) struct CsrPublicKey {
    /// The subjectPublicKey BIT STRING contents.
    pub(super) raw: Vec<u8>,
    /// Carries the SPKI algorithm identifier rcgen writes.
    pub(super) alg: &'static SignatureAlgorithm,
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
pub(super) fn parse_csr(input: &str) -> Result<CsrPublicKey, CaError> {
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
    let (_, der) = crate::pem::read_block(
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
pub(super) fn write_pkcs12(
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
pub(super) fn write_jks(
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
