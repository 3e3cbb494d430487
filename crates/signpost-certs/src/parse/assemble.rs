//! Assembling entries: keys paired with their certificates, the rest grouped into chains (leaf
//! first).

#[allow(clippy::wildcard_imports)]
use super::*;

/// At most this many certificates sharing an issuer name are tried as the issuer.
pub(super) const MAX_CANDIDATES: usize = 8;
/// At most this many certificates in one file.
pub const MAX_CERTIFICATES: usize = 1000;

pub(super) fn check_count(n: usize) -> Result<(), ParseError> {
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
pub(super) fn issuer_links(certs: &[&CertInfo]) -> Vec<Option<usize>> {
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

pub(super) fn walk(start: usize, links: &[Option<usize>]) -> Vec<usize> {
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
pub(super) fn assemble(
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
