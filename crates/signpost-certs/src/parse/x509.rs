//! Certificates: `CertInfo` from DER, RFC 4514 names, serials, fingerprints, key sizes, alternative
//! names.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn x509_reason(e: &x509_parser::nom::Err<X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Incomplete(_) => "the certificate is truncated".into(),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            format!("not a valid X.509 certificate ({e})")
        }
    }
}

pub(super) fn cert_info(der: &[u8], allow_trailing: bool) -> Result<CertInfo, String> {
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
        spki_raw: cert.public_key().raw.to_vec(),
        der,
    })
}

pub(super) fn ip_string(b: &[u8]) -> String {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        return std::net::Ipv4Addr::from(v4).to_string();
    }
    if let Ok(v6) = <[u8; 16]>::try_from(b) {
        return std::net::Ipv6Addr::from(v6).to_string();
    }
    hex::encode_upper(b) // an address with a netmask (name constraints) or garbage
}

pub(super) fn key_description(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> (String, Option<u32>) {
    let oid = spki.algorithm.algorithm.to_id_string();
    let key: &[u8] = &spki.subject_public_key.data;
    let rsa_bits = || {
        let (seq, _) = tlv::read(key)?;
        let n = tlv::read_all(seq.value)?.into_iter().next()?;
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
pub(super) fn rfc4514(name: &X509Name<'_>) -> String {
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
                        // A value that came out of a parsed certificate always fits a DER length.
                        let _ = tlv::write(tag, value.data, &mut tlv);
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

pub(super) fn attr_string(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Option<String> {
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

pub(super) fn escape_rfc4514(s: &str) -> String {
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
