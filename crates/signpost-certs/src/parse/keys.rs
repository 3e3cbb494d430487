//! Private keys: PKCS#1 and SEC1 to PKCS#8, encrypted PKCS#8 (PBES2), and whether a key matches a
//! certificate.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const OID_RSA: &str = "1.2.840.113549.1.1.1";
pub(super) const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
pub(super) const OID_EC: &str = "1.2.840.10045.2.1";
pub(super) const OID_ED25519: &str = "1.3.101.112";
pub(super) const OID_ED448: &str = "1.3.101.113";
pub(super) const OID_DSA: &str = "1.2.840.10040.4.1";
pub(super) const OID_PBES2: &str = "1.2.840.113549.1.5.13";

pub(super) struct RawKey {
    pub(super) alias: Option<String>,
    pub(super) local_key_id: Option<Vec<u8>>,
    pub(super) pkcs8: Option<SecretSlice<u8>>,
}

impl RawKey {
    pub(super) fn open(pkcs8: Vec<u8>) -> Self {
        Self {
            alias: None,
            local_key_id: None,
            pkcs8: Some(SecretSlice::from(pkcs8)),
        }
    }
}

pub(super) struct RawCert {
    pub(super) alias: Option<String>,
    pub(super) local_key_id: Option<Vec<u8>>,
    pub(super) trusted: bool,
    pub(super) info: CertInfo,
}

/// The parts of a PKCS#8 `PrivateKeyInfo`: algorithm OID (dotted), its parameters' TLV, the
/// private key octets and the optional public key (`[1]`, PKCS#8 v2).
pub(super) struct Pkcs8Parts<'a> {
    pub(super) algorithm: String,
    pub(super) private_key: &'a [u8],
    pub(super) public_key: Option<&'a [u8]>,
}

pub(super) fn pkcs8_parts(der: &[u8]) -> Option<Pkcs8Parts<'_>> {
    let (seq, rest) = der::read(der)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return None;
    }
    let items = der::read_all(seq.value)?;
    let mut it = items.into_iter();
    let version = it.next()?;
    let alg = it.next()?;
    let key = it.next()?;
    if version.tag != der::INTEGER || alg.tag != der::SEQUENCE || key.tag != der::OCTET_STRING {
        return None;
    }
    let (oid, _) = der::read(alg.value)?;
    if oid.tag != der::OID {
        return None;
    }
    let public_key = it.find(|t| t.tag == 0x81 || t.tag == 0xa1).and_then(|t| {
        if t.tag == 0x81 {
            t.value.get(1..) // implicit BIT STRING: skip the unused-bits byte
        } else {
            None
        }
    });
    Some(Pkcs8Parts {
        algorithm: der::oid_to_string(oid.value),
        private_key: key.value,
        public_key,
    })
}

pub(super) fn check_pkcs8(der: &[u8]) -> Result<(), String> {
    pkcs8_parts(der)
        .map(|_| ())
        .ok_or_else(|| "is not a valid PKCS#8 private key".to_string())
}

pub(super) fn wrap_pkcs8(algorithm: &[u8], private_key: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    der::write(der::INTEGER, &[0], &mut body);
    der::write(der::SEQUENCE, algorithm, &mut body);
    der::write(der::OCTET_STRING, private_key, &mut body);
    let mut out = Vec::new();
    der::write(der::SEQUENCE, &body, &mut out);
    out
}

/// PKCS#1 `RSAPrivateKey` → PKCS#8.
pub(super) fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "is not a valid PKCS#1 RSA private key".to_string();
    let (seq, rest) = der::read(pkcs1).ok_or_else(bad)?;
    let items = der::read_all(seq.value).ok_or_else(bad)?;
    if seq.tag != der::SEQUENCE
        || !rest.is_empty()
        || items.len() < 9
        || items.iter().any(|i| i.tag != der::INTEGER)
    {
        return Err(bad());
    }
    let mut alg = Vec::new();
    der::write(
        der::OID,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        &mut alg,
    );
    der::write(der::NULL, &[], &mut alg);
    Ok(wrap_pkcs8(&alg, pkcs1))
}

/// SEC1 `ECPrivateKey` (with its curve in `[0]`) → PKCS#8.
pub(super) fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, String> {
    let bad = || "is not a valid SEC1 EC private key".to_string();
    let (seq, rest) = der::read(sec1).ok_or_else(bad)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(bad());
    }
    let items = der::read_all(seq.value).ok_or_else(bad)?;
    let params = items
        .iter()
        .find(|t| t.tag == 0xa0)
        .ok_or_else(|| "has no curve parameters".to_string())?;
    let (curve, _) = der::read(params.value).ok_or_else(bad)?;
    if curve.tag != der::OID {
        return Err("uses explicit curve parameters, which are not supported".into());
    }
    let mut alg = Vec::new();
    der::write(
        der::OID,
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        &mut alg,
    );
    alg.extend_from_slice(curve.raw);
    Ok(wrap_pkcs8(&alg, sec1))
}

/// Decrypt a PKCS#8 `EncryptedPrivateKeyInfo` protected with PBES2.
pub(super) fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<SecretSlice<u8>, ParseError> {
    use pkcs5::der::Decode as _;
    let corrupt = || ParseError::Corrupt {
        format: Format::Pem,
        reason: "the encrypted private key is not a valid PKCS#8 EncryptedPrivateKeyInfo".into(),
    };
    let (seq, rest) = der::read(der).ok_or_else(corrupt)?;
    if seq.tag != der::SEQUENCE || !rest.is_empty() {
        return Err(corrupt());
    }
    let items = der::read_all(seq.value).ok_or_else(corrupt)?;
    let [alg, data] = items.as_slice() else {
        return Err(corrupt());
    };
    if alg.tag != der::SEQUENCE || data.tag != der::OCTET_STRING {
        return Err(corrupt());
    }
    let (oid, params) = der::read(alg.value).ok_or_else(corrupt)?;
    let oid = der::oid_to_string(oid.value);
    if oid != OID_PBES2 {
        return Err(ParseError::UnsupportedAlgorithm(format!(
            "the private key is encrypted with {oid}; only PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc) is supported"
        )));
    }
    let params = pkcs5::pbes2::Parameters::from_der(params).map_err(|_| {
        ParseError::UnsupportedAlgorithm(
            "the PBES2 parameters of the private key are not supported".into(),
        )
    })?;
    KdfBudget::default().pbes2("the private key", &params)?;
    let plain = params
        .decrypt(password.as_bytes(), data.value)
        .map_err(|e| match e {
            pkcs5::Error::DecryptFailed => ParseError::WrongPassword {
                format: Format::Pem,
            },
            pkcs5::Error::UnsupportedAlgorithm { oid } => {
                ParseError::UnsupportedAlgorithm(format!("private key encryption algorithm {oid}"))
            }
            _ => ParseError::UnsupportedAlgorithm(
                "the PBES2 parameters of the private key are not supported".into(),
            ),
        })?;
    let plain = SecretSlice::from(plain);
    // A wrong password passes the padding check now and then; the result is then no PKCS#8.
    if check_pkcs8(plain.expose_secret()).is_err() {
        return Err(ParseError::WrongPassword {
            format: Format::Pem,
        });
    }
    Ok(plain)
}

pub(super) fn strip_zeros(b: &[u8]) -> &[u8] {
    let skip = b.iter().take_while(|x| **x == 0).count();
    b.get(skip..).unwrap_or_default()
}

/// Whether the PKCS#8 key belongs to the certificate: `Some(true/false)`, or `None` when that
/// cannot be told (an EC key without its public point, an unknown algorithm).
pub(super) fn key_matches(pkcs8: &[u8], cert: &CertInfo) -> Option<bool> {
    let key = pkcs8_parts(pkcs8)?;
    let (_, x509) = X509Certificate::from_der(&cert.der).ok()?;
    let spki = x509.public_key();
    let cert_alg = spki.algorithm.algorithm.to_id_string();
    let cert_key: &[u8] = &spki.subject_public_key.data;
    if key.algorithm != cert_alg {
        return Some(false);
    }
    match key.algorithm.as_str() {
        OID_RSA | OID_RSA_PSS => {
            let (seq, _) = der::read(key.private_key)?;
            let items = der::read_all(seq.value)?;
            let n = items.get(1)?;
            let (cseq, _) = der::read(cert_key)?;
            let cn = der::read_all(cseq.value)?.into_iter().next()?;
            Some(strip_zeros(n.value) == strip_zeros(cn.value))
        }
        OID_EC => {
            let (seq, _) = der::read(key.private_key)?;
            let items = der::read_all(seq.value)?;
            let public = items.iter().find(|t| t.tag == 0xa1)?;
            let (bits, _) = der::read(public.value)?;
            Some(bits.value.get(1..)? == cert_key)
        }
        OID_ED25519 => {
            if let Some(public) = key.public_key {
                return Some(public == cert_key);
            }
            let (seed, _) = der::read(key.private_key)?;
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.value).ok()?;
            Some(ring::signature::KeyPair::public_key(&pair).as_ref() == cert_key)
        }
        _ => key.public_key.map(|p| p == cert_key),
    }
}
