//! Private keys: PKCS#1 and SEC1 to PKCS#8, encrypted PKCS#8 (PBES2), and whether a key matches a
//! certificate.

#[allow(clippy::wildcard_imports)]
use super::*;
use der::{Decode as _, Encode as _};

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

/// The parts of a PKCS#8 `PrivateKeyInfo`: algorithm OID (dotted), the private key octets and
/// the optional public key (`[1]`, PKCS#8 v2).
pub(super) struct Pkcs8Parts<'a> {
    pub(super) algorithm: String,
    pub(super) private_key: &'a [u8],
    pub(super) public_key: Option<&'a [u8]>,
}

pub(super) fn pkcs8_parts(der: &[u8]) -> Option<Pkcs8Parts<'_>> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).ok()?;
    Some(Pkcs8Parts {
        algorithm: info.algorithm.oid.to_string(),
        private_key: info.private_key.as_bytes(),
        public_key: info.public_key.and_then(|k| k.as_bytes()),
    })
}

pub(super) fn check_pkcs8(der: &[u8]) -> Result<(), String> {
    pkcs8_parts(der)
        .map(|_| ())
        .ok_or_else(|| "is not a valid PKCS#8 private key".to_string())
}

/// A PKCS#8 `PrivateKeyInfo` (v1) holding `private_key` of the algorithm `oid` with `parameters`.
fn wrap_pkcs8(
    oid: der::asn1::ObjectIdentifier,
    parameters: der::asn1::AnyRef<'_>,
    private_key: &[u8],
) -> Result<Vec<u8>, String> {
    let too_large = |_| "is too large".to_string();
    let info = pkcs8::PrivateKeyInfoRef::new(
        spki::AlgorithmIdentifierRef {
            oid,
            parameters: Some(parameters),
        },
        der::asn1::OctetStringRef::new(private_key).map_err(too_large)?,
    );
    info.to_der().map_err(too_large)
}

/// PKCS#1 `RSAPrivateKey` → PKCS#8.
pub(super) fn pkcs1_to_pkcs8(pkcs1: &[u8]) -> Result<Vec<u8>, String> {
    pkcs1::RsaPrivateKeyRef::from_der(pkcs1)
        .map_err(|_| "is not a valid PKCS#1 RSA private key".to_string())?;
    wrap_pkcs8(pkcs1::ALGORITHM_OID, der::asn1::AnyRef::NULL, pkcs1)
}

/// SEC1 `ECPrivateKey` (with its curve in `[0]`) → PKCS#8.
pub(super) fn sec1_to_pkcs8(sec1: &[u8]) -> Result<Vec<u8>, String> {
    let key = sec1::EcPrivateKey::from_der(sec1)
        .map_err(|_| "is not a valid SEC1 EC private key".to_string())?;
    let curve = key
        .parameters
        .ok_or_else(|| "has no curve parameters".to_string())?
        .named_curve()
        .ok_or_else(|| "uses explicit curve parameters, which are not supported".to_string())?;
    let curve = curve
        .to_der()
        .map_err(|_| "has an invalid curve".to_string())?;
    let curve =
        der::asn1::AnyRef::from_der(&curve).map_err(|_| "has an invalid curve".to_string())?;
    wrap_pkcs8(sec1::ALGORITHM_OID, curve, sec1)
}

/// Decrypt a PKCS#8 `EncryptedPrivateKeyInfo` protected with PBES2.
pub(super) fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<SecretSlice<u8>, ParseError> {
    let corrupt = || ParseError::Corrupt {
        format: Format::Pem,
        reason: "the encrypted private key is not a valid PKCS#8 EncryptedPrivateKeyInfo".into(),
    };
    let info = EncryptedKeyInfo::from_der(der).map_err(|_| corrupt())?;
    let oid = info.algorithm.oid.to_string();
    if oid != OID_PBES2 {
        return Err(ParseError::UnsupportedAlgorithm(format!(
            "the private key is encrypted with {oid}; only PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc) is supported"
        )));
    }
    let params = info
        .algorithm
        .parameters
        .and_then(|p| p.to_der().ok())
        .unwrap_or_default();
    let params = pkcs5::pbes2::Parameters::from_der(&params).map_err(|_| {
        ParseError::UnsupportedAlgorithm(
            "the PBES2 parameters of the private key are not supported".into(),
        )
    })?;
    KdfBudget::default().pbes2("the private key", &params)?;
    let plain = params
        .decrypt(password.as_bytes(), info.data.as_bytes())
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
            let private = pkcs1::RsaPrivateKeyRef::from_der(key.private_key).ok()?;
            let public = pkcs1::RsaPublicKeyRef::from_der(cert_key).ok()?;
            Some(private.modulus.as_bytes() == public.modulus.as_bytes())
        }
        OID_EC => {
            let private = sec1::EcPrivateKey::from_der(key.private_key).ok()?;
            Some(private.public_key? == cert_key)
        }
        OID_ED25519 => {
            if let Some(public) = key.public_key {
                return Some(public == cert_key);
            }
            let seed = <&der::asn1::OctetStringRef>::from_der(key.private_key).ok()?;
            let pair =
                ring::signature::Ed25519KeyPair::from_seed_unchecked(seed.as_bytes()).ok()?;
            Some(ring::signature::KeyPair::public_key(&pair).as_ref() == cert_key)
        }
        _ => key.public_key.map(|p| p == cert_key),
    }
}

/// A PKCS#8 `EncryptedPrivateKeyInfo` with its algorithm undecided: `pkcs8`'s own type decodes
/// only the schemes it supports, and an unsupported one deserves its name in the error.
#[derive(der::Sequence)]
struct EncryptedKeyInfo<'a> {
    algorithm: spki::AlgorithmIdentifierRef<'a>,
    data: &'a der::asn1::OctetStringRef,
}
