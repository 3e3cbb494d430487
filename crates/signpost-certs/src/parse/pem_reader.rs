//! PEM: certificates and private keys (PKCS#8, PKCS#1, SEC1, encrypted PKCS#8), paired up.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn parse_pem(bytes: &[u8], password: Option<&str>) -> Result<ParsedStore, ParseError> {
    let corrupt = |reason: String| ParseError::Corrupt {
        format: Format::Pem,
        reason,
    };
    let blocks = crate::pem::blocks(bytes).map_err(corrupt)?;
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
