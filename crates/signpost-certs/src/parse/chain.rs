//! Chain validation: each certificate issued and signed by the next, ending in a self-signed root.

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Clone)]
pub(super) enum Sig {
    Valid,
    Invalid,
    Unsupported(String),
}

/// Whether `issuer`'s key signed `child`: x509-parser's `verify_signature` (ring), with a
/// fallback through the `rsa` crate for RSA keys below 2048 bits and RSASSA-PSS, which ring's
/// fixed algorithm set rejects.
pub(super) fn check_signature(child: &CertInfo, issuer: &CertInfo) -> Sig {
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

pub(super) fn rsa_fallback(
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
pub(super) fn pss_params(contents: &[u8]) -> Option<(&'static str, usize)> {
    let mut hash = None;
    let mut salt = 20usize;
    for item in tlv::read_all(contents)? {
        match item.tag {
            0xa0 => {
                let (alg, _) = tlv::read(item.value)?;
                let (oid, _) = tlv::read(alg.value)?;
                hash = match tlv::oid_to_string(oid.value).as_str() {
                    "2.16.840.1.101.3.4.2.1" => Some("2.16.840.1.101.3.4.2.1"),
                    "2.16.840.1.101.3.4.2.2" => Some("2.16.840.1.101.3.4.2.2"),
                    "2.16.840.1.101.3.4.2.3" => Some("2.16.840.1.101.3.4.2.3"),
                    _ => return None,
                };
            }
            0xa2 => {
                let (n, _) = tlv::read(item.value)?;
                if n.tag != tlv::INTEGER || n.value.len() > 4 {
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
pub(super) struct Verifier {
    pub(super) checked: RefCell<HashMap<(String, String), Sig>>,
    pub(super) complete: RefCell<HashSet<String>>,
}

impl Verifier {
    pub(super) fn check(&self, child: &CertInfo, issuer: &CertInfo) -> Sig {
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

pub(super) fn check_link(
    v: &Verifier,
    child: &CertInfo,
    issuer: &CertInfo,
) -> Result<(), ChainError> {
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
pub(super) fn complete_to_root(
    v: &Verifier,
    cert: &CertInfo,
    pool: &[&CertInfo],
) -> Result<(), ChainError> {
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
