//! Detection of the format from the content, and the DER and JKS readers.

#[allow(clippy::wildcard_imports)]
use super::*;

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
    if bytes.first() == Some(&tlv::SEQUENCE) {
        return parse_der(bytes, password);
    }
    Err(ParseError::NotACertificate)
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(super) enum DerKind {
    Certificate,
    Pkcs12,
    PrivateKey,
    Pkcs7,
    Unknown,
}

pub(super) fn classify_der(bytes: &[u8]) -> DerKind {
    let Some((_, hlen, _)) = tlv::header(bytes) else {
        return DerKind::Unknown;
    };
    let inner = bytes.get(hlen..).unwrap_or_default();
    match tlv::header(inner) {
        Some((tlv::SEQUENCE, _, _)) => DerKind::Certificate,
        Some((tlv::INTEGER, ihlen, 1)) => match inner.get(ihlen) {
            Some(3) => DerKind::Pkcs12,
            Some(0 | 1) => DerKind::PrivateKey,
            _ => DerKind::Unknown,
        },
        Some((tlv::OID, _, _)) => match tlv::read(inner) {
            Some((oid, _)) if tlv::oid_to_string(oid.value) == "1.2.840.113549.1.7.2" => {
                DerKind::Pkcs7
            }
            _ => DerKind::Unknown,
        },
        _ => DerKind::Unknown,
    }
}

pub(super) fn parse_der(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
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
    if let Some((_, hlen, len)) = tlv::header(bytes) {
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

pub(super) fn parse_jks(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
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
