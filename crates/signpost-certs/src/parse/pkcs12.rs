//! PKCS#12 (PFX/P12): the outline of its bags, friendly names, local key ids, Java's trust
//! attribute.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const OID_DATA: &str = "1.2.840.113549.1.7.1";
pub(super) const OID_ENCRYPTED_DATA: &str = "1.2.840.113549.1.7.6";
pub(super) const OID_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.1";
pub(super) const OID_SHROUDED_KEY_BAG: &str = "1.2.840.113549.1.12.10.1.2";
pub(super) const OID_CERT_BAG: &str = "1.2.840.113549.1.12.10.1.3";
pub(super) const OID_SAFE_CONTENTS_BAG: &str = "1.2.840.113549.1.12.10.1.6";
pub(super) const OID_X509_CERT: &str = "1.2.840.113549.1.9.22.1";
pub(super) const OID_FRIENDLY_NAME: &str = "1.2.840.113549.1.9.20";
pub(super) const OID_LOCAL_KEY_ID: &str = "1.2.840.113549.1.9.21";
pub(super) const OID_JAVA_TRUSTED: &str = "2.16.840.1.113894.746875.1.1";

/// What can be read of a PKCS#12 file without its password.
#[derive(Default)]
pub(super) struct P12Outline {
    pub(super) has_mac: bool,
    pub(super) encrypted: bool,
    /// The key derivations seen before any ran, and the first that went over a limit.
    pub(super) budget: KdfBudget,
    pub(super) refused: Option<ParseError>,
    pub(super) certs: Vec<RawCert>,
    pub(super) keys: Vec<RawKey>,
}

pub(super) fn parse_pkcs12(
    bytes: &[u8],
    password: Option<&str>,
) -> Result<ParsedStore, ParseError> {
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

pub(super) fn p12_outline(bytes: &[u8]) -> Result<P12Outline, ParseError> {
    let corrupt = |reason: &str| ParseError::Corrupt {
        format: Format::Pkcs12,
        reason: reason.to_string(),
    };
    let (pfx, _) = tlv::read(bytes).ok_or_else(|| corrupt("the PFX structure is not valid DER"))?;
    let items =
        tlv::read_all(pfx.value).ok_or_else(|| corrupt("the PFX structure is not valid DER"))?;
    let (version, auth_safe, mac) = match items.as_slice() {
        [v, a] => (v, a, None),
        [v, a, m] => (v, a, Some(m)),
        _ => return Err(corrupt("the PFX structure has the wrong number of fields")),
    };
    if version.tag != tlv::INTEGER || version.value != [3] {
        return Err(corrupt("unsupported PFX version (expected 3)"));
    }
    let mut out = P12Outline {
        has_mac: mac.is_some(),
        ..Default::default()
    };
    // MacData ::= SEQUENCE { mac DigestInfo, macSalt OCTET STRING, iterations INTEGER DEFAULT 1 }
    if let Some(mac) = mac {
        let iterations = tlv::read_all(mac.value)
            .and_then(|items| {
                items
                    .get(2)
                    .filter(|i| i.tag == tlv::INTEGER)
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
        .and_then(|d| tlv::read(d).filter(|(s, rest)| s.tag == tlv::SEQUENCE && rest.is_empty()))
        .and_then(|(s, _)| tlv::read_all(s.value))
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
                let alg = tlv::read_all(content.value)
                    .and_then(|items| items.get(1).copied())
                    .and_then(|eci| tlv::read_all(eci.value))
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
pub(super) fn content_info<'a>(tlv: &tlv::Tlv<'a>) -> Option<(String, tlv::Tlv<'a>)> {
    if tlv.tag != tlv::SEQUENCE {
        return None;
    }
    let items = tlv::read_all(tlv.value)?;
    let [oid, explicit] = items.as_slice() else {
        return None;
    };
    if oid.tag != tlv::OID || explicit.tag != 0xa0 {
        return None;
    }
    let (content, rest) = tlv::read(explicit.value)?;
    rest.is_empty()
        .then(|| (tlv::oid_to_string(oid.value), content))
}

pub(super) fn octet_string(tlv: tlv::Tlv<'_>) -> Option<&[u8]> {
    (tlv.tag == tlv::OCTET_STRING).then_some(tlv.value)
}

pub(super) fn walk_bags(data: &[u8], out: &mut P12Outline, depth: u8) -> Result<(), &'static str> {
    pub(super) const BAD: &str = "a bag is malformed";
    if depth > 4 {
        return Err("safe contents are nested too deeply");
    }
    let (seq, rest) = tlv::read(data).ok_or(BAD)?;
    if seq.tag != tlv::SEQUENCE || !rest.is_empty() {
        return Err(BAD);
    }
    for bag in tlv::read_all(seq.value).ok_or(BAD)? {
        if bag.tag != tlv::SEQUENCE {
            return Err(BAD);
        }
        let items = tlv::read_all(bag.value).ok_or(BAD)?;
        let (id, value, attrs) = match items.as_slice() {
            [id, value] => (id, value, None),
            [id, value, attrs] => (id, value, Some(attrs)),
            _ => return Err(BAD),
        };
        if id.tag != tlv::OID || value.tag != 0xa0 {
            return Err(BAD);
        }
        let (value, rest) = tlv::read(value.value).ok_or(BAD)?;
        if !rest.is_empty() {
            return Err(BAD);
        }
        let mut alias = None;
        let mut local_key_id = None;
        let mut trusted = false;
        if let Some(attrs) = attrs {
            if attrs.tag != tlv::SET {
                return Err(BAD);
            }
            for attr in tlv::read_all(attrs.value).ok_or(BAD)? {
                let parts = tlv::read_all(attr.value).ok_or(BAD)?;
                let [oid, values] = parts.as_slice() else {
                    return Err(BAD);
                };
                let first = tlv::read_all(values.value).ok_or(BAD)?.into_iter().next();
                match (tlv::oid_to_string(oid.value).as_str(), first) {
                    (OID_FRIENDLY_NAME, Some(v)) if v.tag == tlv::BMP_STRING => {
                        alias = utf16be(v.value)
                    }
                    (OID_LOCAL_KEY_ID, Some(v)) if v.tag == tlv::OCTET_STRING => {
                        local_key_id = Some(v.value.to_vec())
                    }
                    (OID_JAVA_TRUSTED, Some(_)) => trusted = true,
                    _ => {}
                }
            }
        }
        match tlv::oid_to_string(id.value).as_str() {
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
                if let Some(alg) = tlv::read_all(value.value).and_then(|i| i.first().copied()) {
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
                let parts = tlv::read_all(value.value).ok_or(BAD)?;
                let [cert_id, explicit] = parts.as_slice() else {
                    return Err(BAD);
                };
                if tlv::oid_to_string(cert_id.value) != OID_X509_CERT {
                    continue;
                }
                let (cert, _) = tlv::read(explicit.value).ok_or(BAD)?;
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

pub(super) fn utf16be(b: &[u8]) -> Option<String> {
    if !b.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).ok()
}
