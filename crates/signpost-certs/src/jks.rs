//! Java KeyStore (JKS): a reader and writer of Sun's proprietary keystore format.
//!
//! The `jks` crate does not build against current `p12-keystore`, and the format is small, so this
//! module implements it from its documented layout (`sun.security.provider.JavaKeyStore`):
//!
//! ```text
//! u32 magic 0xFEEDFEED, u32 version (1 or 2), u32 entry count
//! per entry: u32 tag (1 = private key, 2 = trusted certificate), alias (Java modified UTF-8 with a
//!   u16 length), u64 creation time in milliseconds since the epoch, then
//!   tag 1: u32 length + EncryptedPrivateKeyInfo (DER), u32 chain length, per certificate:
//!          certificate type (UTF, version 2 only, "X.509"), u32 length + certificate DER
//!   tag 2: certificate type (UTF, version 2 only), u32 length + certificate DER
//! 20 bytes SHA-1( password as UTF-16BE || "Mighty Aphrodite" || everything before the digest )
//! ```
//!
//! Private keys are protected with Sun's key protector (OID 1.3.6.1.4.1.42.2.17.1.1): a 20-byte
//! salt, the PKCS#8 key XORed with the keystream `SHA-1(password || salt)`, `SHA-1(password ||
//! previous block)`, …, and a trailing check digest `SHA-1(password || plaintext key)`. The
//! password is again taken as UTF-16BE.
//!
//! Reading without a password gives every certificate but leaves the integrity digest unchecked
//! and the private keys encrypted ([`PrivateKeyEntry::decrypt_key`] opens one later). Reading with
//! a wrong password is [`JksError::WrongPassword`]. Nothing here panics on any input; every length
//! read from the file is checked against the bytes that are left.

use der::asn1::ObjectIdentifier;
use der::{Decode as _, Encode as _};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};
use sha1::{Digest, Sha1};
use spki::AlgorithmIdentifierRef;

/// The magic number every JKS file starts with.
pub const MAGIC: u32 = 0xFEED_FEED;
/// The magic number of JCEKS, Sun's other proprietary keystore (not supported).
pub const JCEKS_MAGIC: u32 = 0xCECE_CECE;
/// The version this writer produces (version 2 records the certificate type).
pub const VERSION: u32 = 2;

const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
const WHITENER: &[u8] = b"Mighty Aphrodite";
const DIGEST_LEN: usize = 20;
const SALT_LEN: usize = 20;
const CERT_TYPE_X509: &str = "X.509";
/// DER contents of OID 1.3.6.1.4.1.42.2.17.1.1 (Sun's JKS key protector).
const KEY_PROTECTOR_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.42.2.17.1.1");

/// What can go wrong reading or writing a JKS keystore. Messages never contain a password or key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JksError {
    /// The bytes do not start with the JKS magic number.
    #[error("not a JKS keystore: the file does not start with the magic number FEEDFEED")]
    NotJks,
    /// A JCEKS keystore (magic CECECECE), which uses a different key protection.
    #[error(
        "JCEKS keystores are not supported; convert it to PKCS#12 or JKS with keytool -importkeystore"
    )]
    Jceks,
    /// A version other than 1 and 2.
    #[error("unsupported JKS version {0} (supported: 1 and 2)")]
    UnsupportedVersion(u32),
    /// The file ends before the structure it announces.
    #[error("the JKS keystore is truncated: it ends inside {0}")]
    Truncated(&'static str),
    /// The structure is inconsistent.
    #[error("the JKS keystore is corrupt: {0}")]
    Corrupt(String),
    /// A certificate of a type other than X.509.
    #[error(
        "the JKS keystore holds a certificate of unsupported type '{0}' (only X.509 is supported)"
    )]
    UnsupportedCertificateType(String),
    /// The integrity digest does not match: wrong password or altered file (JKS cannot tell).
    #[error("the keystore password is wrong, or the keystore was tampered with (its integrity check failed)")]
    WrongPassword,
    /// The password does not open this private key.
    #[error("the password does not unlock the private key of entry '{alias}'")]
    WrongKeyPassword {
        /// The entry's alias.
        alias: String,
    },
    /// The private key is protected by an algorithm other than Sun's JKS key protector.
    #[error(
        "the private key of entry '{alias}' is protected with an unsupported algorithm (OID {oid})"
    )]
    UnsupportedKeyProtection {
        /// The entry's alias.
        alias: String,
        /// The protection algorithm's OID, dotted.
        oid: String,
    },
    /// The writer was given a private key without its certificate chain.
    #[error("the private key entry '{0}' needs its certificate chain")]
    EmptyChain(String),
    /// The writer was asked to store two entries under one alias (aliases are case-insensitive).
    #[error("duplicate alias '{0}' (JKS aliases are case-insensitive)")]
    DuplicateAlias(String),
    /// Something the format cannot represent (an alias longer than 65,535 bytes, more than 2³² entries…).
    #[error("cannot write the JKS keystore: {0}")]
    TooLarge(&'static str),
}

/// A JKS keystore: its entries in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keystore {
    /// The entries, in the order of the file.
    pub entries: Vec<JksEntry>,
    integrity_checked: bool,
}

/// One entry of a JKS keystore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JksEntry {
    /// A private key with its certificate chain (tag 1).
    PrivateKey(PrivateKeyEntry),
    /// A trusted certificate (tag 2).
    TrustedCertificate(TrustedCertEntry),
}

impl JksEntry {
    /// The entry's alias.
    pub fn alias(&self) -> &str {
        match self {
            Self::PrivateKey(e) => &e.alias,
            Self::TrustedCertificate(e) => &e.alias,
        }
    }
}

/// A private key entry. The key stays encrypted (as in the file) until [`Self::decrypt_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateKeyEntry {
    /// The alias.
    pub alias: String,
    /// Creation time, milliseconds since the Unix epoch (as Java stores it).
    pub created_millis: i64,
    /// The DER `EncryptedPrivateKeyInfo` holding the protected key (not secret without the password).
    pub protected_key: Vec<u8>,
    /// The certificate chain, DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

/// A trusted certificate entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedCertEntry {
    /// The alias.
    pub alias: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_millis: i64,
    /// The certificate, DER.
    pub certificate: Vec<u8>,
}

impl Keystore {
    /// An empty keystore.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read a JKS keystore. With `Some(password)`, the integrity digest is checked
    /// ([`JksError::WrongPassword`] when it does not match); with `None` it is not, and the
    /// private keys can only be opened later with [`PrivateKeyEntry::decrypt_key`].
    pub fn from_bytes(bytes: &[u8], password: Option<&str>) -> Result<Self, JksError> {
        let mut r = Reader {
            data: bytes,
            pos: 0,
        };
        let magic = r.u32("the header")?;
        if magic == JCEKS_MAGIC {
            return Err(JksError::Jceks);
        }
        if magic != MAGIC {
            return Err(JksError::NotJks);
        }
        let version = r.u32("the header")?;
        if version != 1 && version != 2 {
            return Err(JksError::UnsupportedVersion(version));
        }
        let count = r.u32("the header")?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let tag = r.u32("an entry tag")?;
            let alias = r.utf("an alias")?;
            let created_millis = r.i64("an entry date")?;
            match tag {
                TAG_PRIVATE_KEY => {
                    let len = r.u32("a private key length")?;
                    let protected_key = r.bytes(len as usize, "a protected private key")?.to_vec();
                    let chain_len = r.u32("a certificate chain length")?;
                    let mut chain = Vec::new();
                    for _ in 0..chain_len {
                        chain.push(r.certificate(version)?);
                    }
                    entries.push(JksEntry::PrivateKey(PrivateKeyEntry {
                        alias,
                        created_millis,
                        protected_key,
                        chain,
                    }));
                }
                TAG_TRUSTED_CERT => {
                    let certificate = r.certificate(version)?;
                    entries.push(JksEntry::TrustedCertificate(TrustedCertEntry {
                        alias,
                        created_millis,
                        certificate,
                    }));
                }
                // Tag 3 is JCEKS' secret key entry; JKS has none.
                other => {
                    return Err(JksError::Corrupt(format!(
                        "unknown entry tag {other} (JKS has 1 = private key and 2 = trusted certificate)"
                    )))
                }
            }
        }
        let body_end = r.pos;
        let digest = r.bytes(DIGEST_LEN, "the integrity digest")?;
        if r.pos != bytes.len() {
            return Err(JksError::Corrupt(format!(
                "{} unexpected bytes after the integrity digest",
                bytes.len() - r.pos
            )));
        }
        let integrity_checked = match password {
            Some(password) => {
                let expected =
                    integrity_digest(password, bytes.get(..body_end).unwrap_or_default());
                if !constant_time_eq(&expected, digest) {
                    return Err(JksError::WrongPassword);
                }
                true
            }
            None => false,
        };
        Ok(Self {
            entries,
            integrity_checked,
        })
    }

    /// Whether the integrity digest was checked (read with a password, or built here).
    pub fn integrity_checked(&self) -> bool {
        self.integrity_checked
    }

    /// Add a private key entry: `pkcs8_der` is the unencrypted PKCS#8 `PrivateKeyInfo`, protected
    /// here with `key_password`; `chain` is the certificate chain (DER, leaf first). Java stores
    /// aliases in lower case and so does this writer.
    pub fn add_private_key(
        &mut self,
        alias: &str,
        pkcs8_der: &[u8],
        key_password: &str,
        chain: Vec<Vec<u8>>,
        created: time::OffsetDateTime,
    ) -> Result<(), JksError> {
        let alias = self.new_alias(alias)?;
        if chain.is_empty() {
            return Err(JksError::EmptyChain(alias));
        }
        let protected_key = protect_key(pkcs8_der, key_password)?;
        self.entries.push(JksEntry::PrivateKey(PrivateKeyEntry {
            alias,
            created_millis: millis(created),
            protected_key,
            chain,
        }));
        Ok(())
    }

    /// Add a trusted certificate entry (`certificate` is DER).
    pub fn add_trusted_certificate(
        &mut self,
        alias: &str,
        certificate: Vec<u8>,
        created: time::OffsetDateTime,
    ) -> Result<(), JksError> {
        let alias = self.new_alias(alias)?;
        self.entries
            .push(JksEntry::TrustedCertificate(TrustedCertEntry {
                alias,
                created_millis: millis(created),
                certificate,
            }));
        Ok(())
    }

    fn new_alias(&self, alias: &str) -> Result<String, JksError> {
        let alias = alias.to_lowercase();
        if self.entries.iter().any(|e| e.alias() == alias) {
            return Err(JksError::DuplicateAlias(alias));
        }
        Ok(alias)
    }

    /// Serialize as JKS version 2, with the integrity digest keyed by `store_password`.
    pub fn to_bytes(&self, store_password: &str) -> Result<Vec<u8>, JksError> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        let count = u32::try_from(self.entries.len())
            .map_err(|_| JksError::TooLarge("too many entries"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for entry in &self.entries {
            match entry {
                JksEntry::PrivateKey(e) => {
                    out.extend_from_slice(&TAG_PRIVATE_KEY.to_be_bytes());
                    write_utf(&mut out, &e.alias)?;
                    out.extend_from_slice(&e.created_millis.to_be_bytes());
                    write_blob(&mut out, &e.protected_key)?;
                    let n = u32::try_from(e.chain.len())
                        .map_err(|_| JksError::TooLarge("chain too long"))?;
                    out.extend_from_slice(&n.to_be_bytes());
                    for cert in &e.chain {
                        write_utf(&mut out, CERT_TYPE_X509)?;
                        write_blob(&mut out, cert)?;
                    }
                }
                JksEntry::TrustedCertificate(e) => {
                    out.extend_from_slice(&TAG_TRUSTED_CERT.to_be_bytes());
                    write_utf(&mut out, &e.alias)?;
                    out.extend_from_slice(&e.created_millis.to_be_bytes());
                    write_utf(&mut out, CERT_TYPE_X509)?;
                    write_blob(&mut out, &e.certificate)?;
                }
            }
        }
        let digest = integrity_digest(store_password, &out);
        out.extend_from_slice(&digest);
        Ok(out)
    }
}

impl PrivateKeyEntry {
    /// Decrypt the private key with `password` (the key password, in practice the keystore
    /// password). Returns the PKCS#8 `PrivateKeyInfo` DER.
    pub fn decrypt_key(&self, password: &str) -> Result<SecretSlice<u8>, JksError> {
        let encrypted = self.encrypted_key_bytes()?;
        if encrypted.len() < SALT_LEN + DIGEST_LEN {
            return Err(JksError::Corrupt(format!(
                "the protected key of entry '{}' is too short",
                self.alias
            )));
        }
        let (salt, rest) = encrypted.split_at(SALT_LEN);
        let (cipher, check) = rest.split_at(rest.len() - DIGEST_LEN);
        let pw = password_bytes(password);
        let mut plain = keystream(pw.expose_secret(), salt, cipher.len());
        for (p, c) in plain.iter_mut().zip(cipher) {
            *p ^= c;
        }
        let plain = SecretSlice::from(plain);
        let mut h = Sha1::new();
        h.update(pw.expose_secret());
        h.update(plain.expose_secret());
        if !constant_time_eq(&h.finalize(), check) {
            return Err(JksError::WrongKeyPassword {
                alias: self.alias.clone(),
            });
        }
        Ok(plain)
    }

    /// The protector's output (salt ‖ encrypted key ‖ check digest) from the `EncryptedPrivateKeyInfo`.
    fn encrypted_key_bytes(&self) -> Result<&[u8], JksError> {
        let corrupt = || {
            JksError::Corrupt(format!(
                "the protected key of entry '{}' is not a valid EncryptedPrivateKeyInfo",
                self.alias
            ))
        };
        let info = EncryptedKeyInfo::from_der(&self.protected_key).map_err(|_| corrupt())?;
        if info.algorithm.oid != KEY_PROTECTOR_OID {
            return Err(JksError::UnsupportedKeyProtection {
                alias: self.alias.clone(),
                oid: info.algorithm.oid.to_string(),
            });
        }
        // Java writes NULL parameters; accept them absent too.
        if info
            .algorithm
            .parameters
            .is_some_and(|p| p != der::asn1::AnyRef::NULL)
        {
            return Err(corrupt());
        }
        Ok(info.data.as_bytes())
    }
}

/// Protect a PKCS#8 key with Sun's JKS key protector; returns the DER `EncryptedPrivateKeyInfo`
/// (an error only for a key too large for DER's lengths).
pub fn protect_key(pkcs8_der: &[u8], password: &str) -> Result<Vec<u8>, JksError> {
    let mut salt = [0u8; SALT_LEN];
    rand::thread_rng().fill_bytes(&mut salt);
    let pw = password_bytes(password);
    let mut encrypted = keystream(pw.expose_secret(), &salt, pkcs8_der.len());
    for (k, p) in encrypted.iter_mut().zip(pkcs8_der) {
        *k ^= p;
    }
    let mut h = Sha1::new();
    h.update(pw.expose_secret());
    h.update(pkcs8_der);
    let check = h.finalize();

    let mut protected = Vec::with_capacity(SALT_LEN + encrypted.len() + DIGEST_LEN);
    protected.extend_from_slice(&salt);
    protected.extend_from_slice(&encrypted);
    protected.extend_from_slice(&check);

    let too_large = |_| JksError::Corrupt("the private key is too large for a keystore".into());
    EncryptedKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: KEY_PROTECTOR_OID,
            parameters: Some(der::asn1::AnyRef::NULL),
        },
        data: der::asn1::OctetStringRef::new(&protected).map_err(too_large)?,
    }
    .to_der()
    .map_err(too_large)
}

/// An `EncryptedPrivateKeyInfo` (PKCS#8) with any algorithm: Sun's key protector is no PBES
/// scheme, so `pkcs8`'s own type, which knows only those, does not fit.
#[derive(der::Sequence)]
struct EncryptedKeyInfo<'a> {
    algorithm: AlgorithmIdentifierRef<'a>,
    data: &'a der::asn1::OctetStringRef,
}

/// The keystream: SHA-1(pw ‖ salt), SHA-1(pw ‖ previous digest), … cut to `len` bytes.
fn keystream(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + DIGEST_LEN);
    let mut prev: Vec<u8> = salt.to_vec();
    while out.len() < len {
        let mut h = Sha1::new();
        h.update(password);
        h.update(&prev);
        prev = h.finalize().to_vec();
        out.extend_from_slice(&prev);
    }
    out.truncate(len);
    out
}

/// SHA-1(password as UTF-16BE ‖ "Mighty Aphrodite" ‖ data).
fn integrity_digest(password: &str, data: &[u8]) -> [u8; DIGEST_LEN] {
    let mut h = Sha1::new();
    h.update(password_bytes(password).expose_secret());
    h.update(WHITENER);
    h.update(data);
    h.finalize().into()
}

/// Java's password bytes: each UTF-16 code unit, big-endian.
fn password_bytes(password: &str) -> SecretSlice<u8> {
    password
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect::<Vec<u8>>()
        .into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn millis(t: time::OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn write_blob(out: &mut Vec<u8>, data: &[u8]) -> Result<(), JksError> {
    let len = u32::try_from(data.len())
        .map_err(|_| JksError::TooLarge("an entry is larger than 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Java's `DataOutputStream.writeUTF`: modified UTF-8 (NUL as C0 80, supplementary characters as
/// two 3-byte surrogates) with a u16 length.
fn write_utf(out: &mut Vec<u8>, s: &str) -> Result<(), JksError> {
    let mut buf = Vec::with_capacity(s.len());
    for unit in s.encode_utf16() {
        match unit {
            0x0001..=0x007f => buf.push(unit as u8),
            0x0000 | 0x0080..=0x07ff => {
                buf.push(0xc0 | (unit >> 6) as u8);
                buf.push(0x80 | (unit & 0x3f) as u8);
            }
            _ => {
                buf.push(0xe0 | (unit >> 12) as u8);
                buf.push(0x80 | ((unit >> 6) & 0x3f) as u8);
                buf.push(0x80 | (unit & 0x3f) as u8);
            }
        }
    }
    let len = u16::try_from(buf.len())
        .map_err(|_| JksError::TooLarge("an alias is longer than 65,535 bytes"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&buf);
    Ok(())
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JksError> {
        let end = self.pos.checked_add(n).ok_or(JksError::Truncated(what))?;
        let out = self
            .data
            .get(self.pos..end)
            .ok_or(JksError::Truncated(what))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], JksError> {
        let b = self.bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, JksError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, JksError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    /// Java's `DataInputStream.readUTF`.
    fn utf(&mut self, what: &'static str) -> Result<String, JksError> {
        let len = u16::from_be_bytes(self.array(what)?);
        let b = self.bytes(usize::from(len), what)?;
        let bad = || JksError::Corrupt(format!("{what} is not valid modified UTF-8"));
        let mut units = Vec::with_capacity(b.len());
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            let cont = |j: usize| -> Result<u16, JksError> {
                match b.get(j) {
                    Some(&x) if x & 0xc0 == 0x80 => Ok(u16::from(x & 0x3f)),
                    _ => Err(bad()),
                }
            };
            match c >> 4 {
                0..=7 => {
                    units.push(u16::from(c));
                    i += 1;
                }
                12 | 13 => {
                    units.push((u16::from(c & 0x1f) << 6) | cont(i + 1)?);
                    i += 2;
                }
                14 => {
                    units.push((u16::from(c & 0x0f) << 12) | (cont(i + 1)? << 6) | cont(i + 2)?);
                    i += 3;
                }
                _ => return Err(bad()),
            }
        }
        String::from_utf16(&units).map_err(|_| bad())
    }

    fn certificate(&mut self, version: u32) -> Result<Vec<u8>, JksError> {
        if version == 2 {
            let cert_type = self.utf("a certificate type")?;
            if cert_type != CERT_TYPE_X509 {
                return Err(JksError::UnsupportedCertificateType(cert_type));
            }
        }
        let len = self.u32("a certificate length")?;
        Ok(self.bytes(len as usize, "a certificate")?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn modified_utf8_round_trips() {
        for s in ["plain", "über", "nul\0here", "emoji 😀", ""] {
            let mut out = Vec::new();
            write_utf(&mut out, s).unwrap();
            let mut r = Reader { data: &out, pos: 0 };
            assert_eq!(r.utf("x").unwrap(), s);
            assert_eq!(r.pos, out.len());
        }
    }

    #[test]
    fn key_protection_round_trips_and_rejects_a_wrong_password() {
        let key: Vec<u8> = (0..=255u8).cycle().take(1234).collect();
        let entry = PrivateKeyEntry {
            alias: "a".into(),
            created_millis: 0,
            protected_key: protect_key(&key, "pw").unwrap(),
            chain: vec![],
        };
        assert_eq!(
            entry.decrypt_key("pw").unwrap().expose_secret(),
            key.as_slice()
        );
        assert_eq!(
            entry.decrypt_key("other").unwrap_err(),
            JksError::WrongKeyPassword { alias: "a".into() }
        );
    }

    #[test]
    fn empty_keystore_round_trips() {
        let bytes = Keystore::new().to_bytes("pw").unwrap();
        let ks = Keystore::from_bytes(&bytes, Some("pw")).unwrap();
        assert!(ks.entries.is_empty() && ks.integrity_checked());
        assert_eq!(
            Keystore::from_bytes(&bytes, Some("nope")),
            Err(JksError::WrongPassword)
        );
        assert!(!Keystore::from_bytes(&bytes, None)
            .unwrap()
            .integrity_checked());
    }
}
