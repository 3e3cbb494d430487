//! Views for the API: SAP's `publicKeys` items and the PEM pair a TLS client presents.

#[allow(clippy::wildcard_imports)]
use super::*;

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
            SecretString::from(crate::pem::encode("PRIVATE KEY", key.expose_secret())),
        ))
    })
}
