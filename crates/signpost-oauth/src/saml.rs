//! SAML 2.0 assertions for the `OAuth2SAMLBearerAssertion` and `SAMLAssertion` authentication
//! types, the subaccount trust key pair that signs them, and the IdP metadata that
//! `/v1/saml2Metadata` hands out so that a token service can trust that key.
//!
//! # Why a small signer instead of a general XML-signature library
//!
//! Signpost only ever *produces* one fixed document shape, so it does not need to parse or
//! canonicalise arbitrary XML. [`build_signed_assertion`] writes the assertion directly in
//! Exclusive XML Canonicalization form (`http://www.w3.org/2001/10/xml-exc-c14n#`, without
//! comments):
//!
//! * no XML declaration, no whitespace between elements, empty elements as start/end tag pairs;
//! * every namespace declared once, on the first element that uses its prefix (`saml2` on the
//!   `Assertion`, `ds` on the `Signature`), and no declaration that is not visibly used;
//! * attributes, all unqualified, in lexicographic order of their names;
//! * text escaped as `&amp;` `&lt;` `&gt;` `&#xD;`, attribute values as `&amp;` `&lt;` `&quot;`
//!   `&#x9;` `&#xA;` `&#xD;`; everything else, non-ASCII included, written as UTF-8;
//! * characters that XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) rejected.
//!
//! Because the output already is its own canonical form, the bytes that are digested (the
//! assertion without its `ds:Signature`, which is what the enveloped-signature transform leaves)
//! and the bytes that are signed (the `ds:SignedInfo`, which as the apex of its own
//! canonicalisation carries `xmlns:ds`) are exactly what any conforming verifier computes. The
//! crate's tests check that claim with an independent verifier (Python `signxml` on lxml).
//!
//! The RSA private-key operation runs in `ring` (constant-time), not in the `rsa` crate, whose
//! private-key operations carry the RUSTSEC-2023-0071 timing advisory; `rsa` is used to generate
//! keys and, in tests, for public-key verification only.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey as _;
use rsa::pkcs8::der::asn1::{AnyRef, GeneralizedTime, UtcTime};
use rsa::pkcs8::der::{self, Decode as _, Reader as _, SliceReader, Tag, TagNumber};
use rsa::pkcs8::{DecodePublicKey as _, EncodePrivateKey as _, LineEnding};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime, UtcOffset};

/// Namespace of SAML 2.0 assertions (prefix `saml2`).
pub const SAML2_ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// Namespace of SAML 2.0 metadata (prefix `md`).
pub const SAML2_METADATA_NS: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
/// The SAML 2.0 protocol, as named in `protocolSupportEnumeration`.
pub const SAML2_PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
/// Namespace of XML Signature (prefix `ds`).
pub const XMLDSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Exclusive XML Canonicalization 1.0, without comments.
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The enveloped-signature transform.
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
/// RSASSA-PKCS1-v1_5 with SHA-256.
pub const RSA_SHA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
/// SHA-256 digest.
pub const DIGEST_SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";
/// The default NameID format.
pub const NAME_ID_FORMAT_UNSPECIFIED: &str =
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
/// The bearer subject-confirmation method.
pub const SUBJECT_CONFIRMATION_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// The default authentication context class.
pub const AUTHN_CONTEXT_PREVIOUS_SESSION: &str =
    "urn:oasis:names:tc:SAML:2.0:ac:classes:PreviousSession";
/// The `NameFormat` of the attributes in the `AttributeStatement`.
pub const ATTRNAME_FORMAT_UNSPECIFIED: &str =
    "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified";
/// The binding named by the metadata's `SingleSignOnService`.
pub const BINDING_HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// How long an assertion is valid when [`AssertionParams::not_on_or_after`] is not given.
pub const DEFAULT_ASSERTION_LIFETIME: Duration = Duration::minutes(10);
/// Size of the RSA keys that [`generate_trust_keypair`] makes.
pub const TRUST_KEY_BITS: usize = 2048;

/// How far back a generated certificate's `notBefore` is set, so that a verifier whose clock is a
/// little behind ours already accepts it.
const CERT_BACKDATE: Duration = Duration::minutes(5);

/// Everything that can go wrong while making keys, assertions or metadata. No variant carries key
/// material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SamlError {
    /// A caller-supplied value is empty, malformed or cannot be carried by XML 1.0.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input.
        field: &'static str,
        /// What is wrong with it (never the value itself).
        reason: String,
    },
    /// A timestamp cannot be written as an `xs:dateTime` or the validity window is empty.
    #[error("invalid time: {0}")]
    InvalidTime(String),
    /// The RSA key could not be generated.
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    /// The private key could not be read or is not a usable RSA key.
    #[error("invalid private key: {0}")]
    InvalidKey(String),
    /// The certificate could not be made, read, or does not belong to the private key.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The signature could not be computed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// A subaccount's SAML trust key pair: an RSA private key and the self-signed X.509 certificate
/// that token services import to trust assertions signed with it.
///
/// The fields are the persisted form; everything else (DER, validity, the signing key) is derived
/// from them on demand, so a value loaded from storage and a freshly generated one behave alike.
/// `Debug` shows the certificate but never the key.
#[derive(Clone)]
pub struct TrustKeyPair {
    /// The RSA private key, PEM (`PRIVATE KEY`, PKCS#8; `RSA PRIVATE KEY`, PKCS#1, is accepted
    /// too).
    pub private_key_pem: SecretString,
    /// The X.509 certificate, PEM (`CERTIFICATE`).
    pub certificate_pem: String,
}

impl fmt::Debug for TrustKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustKeyPair")
            .field("private_key_pem", &"[REDACTED]")
            .field("certificate_pem", &self.certificate_pem)
            .finish()
    }
}

impl TrustKeyPair {
    /// Loads a key pair from its persisted PEMs, checking that the key is a usable RSA key and that
    /// the certificate carries its public key.
    pub fn from_pem(
        private_key_pem: SecretString,
        certificate_pem: String,
    ) -> Result<Self, SamlError> {
        let pair = Self {
            private_key_pem,
            certificate_pem,
        };
        let signer = SigningKey::from_pem(&pair.private_key_pem)?;
        let cert = parse_certificate(&pair.certificate_der()?)?;
        let key_public = rsa::RsaPublicKey::from_pkcs1_der(signer.public_key_pkcs1())
            .map_err(|e| SamlError::InvalidKey(format!("public key: {e}")))?;
        if key_public != cert.public_key {
            return Err(SamlError::InvalidCertificate(
                "the certificate's public key does not belong to the private key".into(),
            ));
        }
        Ok(pair)
    }

    /// The certificate, DER-encoded (the first `CERTIFICATE` block of [`Self::certificate_pem`]).
    pub fn certificate_der(&self) -> Result<Vec<u8>, SamlError> {
        certificate_der_from_pem(&self.certificate_pem)
    }

    /// The certificate, as the bare base64 of its DER: what `ds:X509Certificate` carries.
    pub fn certificate_base64(&self) -> Result<String, SamlError> {
        Ok(STANDARD.encode(self.certificate_der()?))
    }

    /// The certificate's `notBefore`.
    pub fn not_before(&self) -> Result<OffsetDateTime, SamlError> {
        Ok(parse_certificate(&self.certificate_der()?)?.not_before)
    }

    /// The certificate's `notAfter`: after this the key pair should be renewed.
    pub fn not_after(&self) -> Result<OffsetDateTime, SamlError> {
        Ok(parse_certificate(&self.certificate_der()?)?.not_after)
    }
}

/// Generates a subaccount trust key pair: a fresh RSA-2048 key and a self-signed certificate with
/// subject `CN=<common_name>`, valid from a few minutes ago for `validity_days` days.
pub fn generate_trust_keypair(
    common_name: &str,
    validity_days: u32,
) -> Result<TrustKeyPair, SamlError> {
    generate_trust_keypair_at(common_name, validity_days, OffsetDateTime::now_utc())
}

/// [`generate_trust_keypair`] with an explicit "now", for tests and for callers with a clock.
pub fn generate_trust_keypair_at(
    common_name: &str,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<TrustKeyPair, SamlError> {
    if common_name.trim().is_empty() {
        return Err(invalid("common_name", "must not be empty"));
    }
    if validity_days == 0 {
        return Err(invalid("validity_days", "must be at least 1"));
    }
    let now = now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| SamlError::InvalidTime(e.to_string()))?;
    let not_before = now
        .checked_sub(CERT_BACKDATE)
        .ok_or_else(|| SamlError::InvalidTime("notBefore out of range".into()))?;
    let not_after = now
        .checked_add(Duration::days(i64::from(validity_days)))
        .ok_or_else(|| SamlError::InvalidTime("notAfter out of range".into()))?;

    let mut rng = rand::rngs::OsRng;
    let key = rsa::RsaPrivateKey::new(&mut rng, TRUST_KEY_BITS)
        .map_err(|e| SamlError::KeyGeneration(e.to_string()))?;
    let key_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| SamlError::KeyGeneration(format!("PKCS#8 encoding: {e}")))?;
    drop(key);

    let rcgen_key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| SamlError::KeyGeneration(format!("loading the key for signing: {e}")))?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(|e| SamlError::InvalidCertificate(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = not_before;
    params.not_after = not_after;
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rng, &mut serial);
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and without a leading zero byte to strip
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::ContentCommitment,
    ];
    let cert = params
        .self_signed(&rcgen_key)
        .map_err(|e| SamlError::InvalidCertificate(e.to_string()))?;

    Ok(TrustKeyPair {
        private_key_pem: SecretString::from(key_pem.as_str()),
        certificate_pem: cert.pem(),
    })
}

/// What goes into an assertion. Build one with [`AssertionParams::new`] and set the optional
/// fields directly.
///
/// Times are truncated to whole seconds. When not given, `issue_instant` is now,
/// `not_before` is `issue_instant` and `not_on_or_after` is `not_before + lifetime`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssertionParams {
    /// `saml2:Issuer` (the destination's `assertionIssuer`).
    pub issuer: String,
    /// `saml2:Audience` in the `AudienceRestriction` (the destination's `audience`).
    pub audience: String,
    /// `Recipient` of the bearer `SubjectConfirmationData` (`assertionRecipient`, by default the
    /// token service URL).
    pub recipient: String,
    /// The user, as `saml2:NameID`.
    pub name_id: String,
    /// The NameID `Format`; [`NAME_ID_FORMAT_UNSPECIFIED`] by default.
    pub name_id_format: String,
    /// The NameID `NameQualifier` (the destination's `nameQualifier`), if any.
    pub name_qualifier: Option<String>,
    /// `saml2:AuthnContextClassRef`; [`AUTHN_CONTEXT_PREVIOUS_SESSION`] by default.
    pub authn_context_class_ref: String,
    /// Attributes for the `AttributeStatement`, each a name and its values, in order. No
    /// `AttributeStatement` is written when empty.
    pub attributes: Vec<(String, Vec<String>)>,
    /// The assertion `ID`; a fresh `_<uuid>` when not given. Must be an XML name of ASCII
    /// letters, digits, `_`, `-` and `.`, starting with a letter or `_`.
    pub id: Option<String>,
    /// `IssueInstant` (and `AuthnInstant`).
    pub issue_instant: Option<OffsetDateTime>,
    /// `NotBefore` of the `Conditions`.
    pub not_before: Option<OffsetDateTime>,
    /// `NotOnOrAfter` of the `Conditions` and of the `SubjectConfirmationData`.
    pub not_on_or_after: Option<OffsetDateTime>,
    /// Used when `not_on_or_after` is not given.
    pub lifetime: Duration,
}

impl AssertionParams {
    /// Parameters with the required values and every default.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        recipient: impl Into<String>,
        name_id: impl Into<String>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            recipient: recipient.into(),
            name_id: name_id.into(),
            name_id_format: NAME_ID_FORMAT_UNSPECIFIED.to_owned(),
            name_qualifier: None,
            authn_context_class_ref: AUTHN_CONTEXT_PREVIOUS_SESSION.to_owned(),
            attributes: Vec::new(),
            id: None,
            issue_instant: None,
            not_before: None,
            not_on_or_after: None,
            lifetime: DEFAULT_ASSERTION_LIFETIME,
        }
    }
}

/// Builds a SAML 2.0 `saml2:Assertion` and signs it (enveloped `ds:Signature`, RSA-SHA256,
/// SHA-256 digest, exclusive C14N) with `key`. With `include_certificate` the signature carries
/// the certificate in `ds:KeyInfo/ds:X509Data`.
///
/// The result is a complete XML document without an XML declaration, already in exclusive
/// canonical form; encode it with [`encode`] for the wire.
pub fn build_signed_assertion(
    params: &AssertionParams,
    key: &TrustKeyPair,
    include_certificate: bool,
) -> Result<String, SamlError> {
    let p = Validated::new(params)?;
    let signer = SigningKey::from_pem(&key.private_key_pem)?;
    let certificate = if include_certificate {
        Some(key.certificate_base64()?)
    } else {
        None
    };

    // The assertion is written in two halves around the place of the signature (after Issuer, as
    // the schema wants); together they are what the enveloped-signature transform leaves.
    let mut head = Writer::default();
    head.open(
        "saml2:Assertion",
        Some(("saml2", SAML2_ASSERTION_NS)),
        &[
            ("ID", &p.id),
            ("IssueInstant", &p.issue_instant),
            ("Version", "2.0"),
        ],
    );
    head.leaf("saml2:Issuer", &[], &params.issuer);

    let mut tail = Writer::default();
    tail.open("saml2:Subject", None, &[]);
    let mut name_id_attrs = vec![("Format", params.name_id_format.as_str())];
    if let Some(q) = &params.name_qualifier {
        name_id_attrs.push(("NameQualifier", q.as_str()));
    }
    tail.leaf("saml2:NameID", &name_id_attrs, &params.name_id);
    tail.open(
        "saml2:SubjectConfirmation",
        None,
        &[("Method", SUBJECT_CONFIRMATION_BEARER)],
    );
    tail.leaf(
        "saml2:SubjectConfirmationData",
        &[
            ("NotOnOrAfter", &p.not_on_or_after),
            ("Recipient", &params.recipient),
        ],
        "",
    );
    tail.close("saml2:SubjectConfirmation");
    tail.close("saml2:Subject");
    tail.open(
        "saml2:Conditions",
        None,
        &[
            ("NotBefore", &p.not_before),
            ("NotOnOrAfter", &p.not_on_or_after),
        ],
    );
    tail.open("saml2:AudienceRestriction", None, &[]);
    tail.leaf("saml2:Audience", &[], &params.audience);
    tail.close("saml2:AudienceRestriction");
    tail.close("saml2:Conditions");
    tail.open(
        "saml2:AuthnStatement",
        None,
        &[("AuthnInstant", &p.issue_instant)],
    );
    tail.open("saml2:AuthnContext", None, &[]);
    tail.leaf(
        "saml2:AuthnContextClassRef",
        &[],
        &params.authn_context_class_ref,
    );
    tail.close("saml2:AuthnContext");
    tail.close("saml2:AuthnStatement");
    if !params.attributes.is_empty() {
        tail.open("saml2:AttributeStatement", None, &[]);
        for (name, values) in &params.attributes {
            tail.open(
                "saml2:Attribute",
                None,
                &[("Name", name), ("NameFormat", ATTRNAME_FORMAT_UNSPECIFIED)],
            );
            for value in values {
                tail.leaf("saml2:AttributeValue", &[], value);
            }
            tail.close("saml2:Attribute");
        }
        tail.close("saml2:AttributeStatement");
    }
    tail.close("saml2:Assertion");

    let mut digest = Sha256::new();
    digest.update(head.out.as_bytes());
    digest.update(tail.out.as_bytes());
    let digest_b64 = STANDARD.encode(digest.finalize());

    let reference_uri = format!("#{}", p.id);
    let mut signed_info = Writer::default();
    signed_info.leaf("ds:CanonicalizationMethod", &[("Algorithm", EXC_C14N)], "");
    signed_info.leaf("ds:SignatureMethod", &[("Algorithm", RSA_SHA256)], "");
    signed_info.open("ds:Reference", None, &[("URI", &reference_uri)]);
    signed_info.open("ds:Transforms", None, &[]);
    signed_info.leaf("ds:Transform", &[("Algorithm", ENVELOPED_SIGNATURE)], "");
    signed_info.leaf("ds:Transform", &[("Algorithm", EXC_C14N)], "");
    signed_info.close("ds:Transforms");
    signed_info.leaf("ds:DigestMethod", &[("Algorithm", DIGEST_SHA256)], "");
    signed_info.leaf("ds:DigestValue", &[], &digest_b64);
    signed_info.close("ds:Reference");

    // Canonicalised on its own, SignedInfo is the apex and declares the `ds` prefix it uses; in
    // the document the declaration sits on Signature instead.
    let mut to_sign = Writer::default();
    to_sign.open("ds:SignedInfo", Some(("ds", XMLDSIG_NS)), &[]);
    to_sign.out.push_str(&signed_info.out);
    to_sign.close("ds:SignedInfo");
    let signature_b64 = STANDARD.encode(signer.sign(to_sign.out.as_bytes())?);

    let mut signature = Writer::default();
    signature.open("ds:Signature", Some(("ds", XMLDSIG_NS)), &[]);
    signature.open("ds:SignedInfo", None, &[]);
    signature.out.push_str(&signed_info.out);
    signature.close("ds:SignedInfo");
    signature.leaf("ds:SignatureValue", &[], &signature_b64);
    if let Some(cert) = &certificate {
        signature.open("ds:KeyInfo", None, &[]);
        signature.open("ds:X509Data", None, &[]);
        signature.leaf("ds:X509Certificate", &[], cert);
        signature.close("ds:X509Data");
        signature.close("ds:KeyInfo");
    }
    signature.close("ds:Signature");

    let mut out = head.out;
    out.reserve(signature.out.len() + tail.out.len());
    out.push_str(&signature.out);
    out.push_str(&tail.out);
    Ok(out)
}

/// Encodes an assertion for the wire (`samlAssertionEncoding`): standard base64 with padding, or
/// with `url_safe` base64url without padding and without line breaks, as RFC 7522 §2.1 wants for
/// the `assertion` parameter.
pub fn encode(assertion: &str, url_safe: bool) -> String {
    if url_safe {
        URL_SAFE_NO_PAD.encode(assertion.as_bytes())
    } else {
        STANDARD.encode(assertion.as_bytes())
    }
}

/// SAML 2.0 IdP metadata for a subaccount: an `md:EntityDescriptor` whose `md:IDPSSODescriptor`
/// carries one signing `md:KeyDescriptor` per certificate (the active one first, then a passive
/// one during rotation, so token services can trust both). `/v1/saml2Metadata` returns this
/// base64-encoded.
///
/// Never fails, since its inputs are Signpost's own: a certificate that cannot be read is left out
/// (and logged), and characters that XML cannot carry in `entity_id` become U+FFFD. The schema
/// requires at least one `SingleSignOnService`; Signpost performs no browser SSO, so the one
/// written is a placeholder (HTTP-POST at `entity_id`).
pub fn idp_metadata(entity_id: &str, certificate_pems: &[&str]) -> String {
    let entity_id: String = entity_id
        .chars()
        .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
        .collect();
    let mut w = Writer::default();
    w.out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    w.open(
        "md:EntityDescriptor",
        Some(("md", SAML2_METADATA_NS)),
        &[("entityID", &entity_id)],
    );
    w.open(
        "md:IDPSSODescriptor",
        None,
        &[
            ("WantAuthnRequestsSigned", "false"),
            ("protocolSupportEnumeration", SAML2_PROTOCOL_NS),
        ],
    );
    for (index, pem) in certificate_pems.iter().enumerate() {
        let der = match certificate_der_from_pem(pem)
            .and_then(|der| parse_certificate(&der).map(|_| der))
        {
            Ok(der) => der,
            Err(error) => {
                tracing::warn!(index, %error, "certificate left out of the SAML metadata");
                continue;
            }
        };
        w.open("md:KeyDescriptor", None, &[("use", "signing")]);
        w.open("ds:KeyInfo", Some(("ds", XMLDSIG_NS)), &[]);
        w.open("ds:X509Data", None, &[]);
        w.leaf("ds:X509Certificate", &[], &STANDARD.encode(&der));
        w.close("ds:X509Data");
        w.close("ds:KeyInfo");
        w.close("md:KeyDescriptor");
    }
    w.leaf("md:NameIDFormat", &[], NAME_ID_FORMAT_UNSPECIFIED);
    w.leaf(
        "md:SingleSignOnService",
        &[("Binding", BINDING_HTTP_POST), ("Location", &entity_id)],
        "",
    );
    w.close("md:IDPSSODescriptor");
    w.close("md:EntityDescriptor");
    w.out
}

// ---------------------------------------------------------------------------------------------
// Validation

/// [`AssertionParams`] checked, with defaults filled in and times formatted.
struct Validated {
    id: String,
    issue_instant: String,
    not_before: String,
    not_on_or_after: String,
}

impl Validated {
    fn new(p: &AssertionParams) -> Result<Self, SamlError> {
        check_text("issuer", &p.issuer, true)?;
        check_text("audience", &p.audience, true)?;
        check_text("recipient", &p.recipient, true)?;
        check_text("name_id", &p.name_id, true)?;
        check_text("name_id_format", &p.name_id_format, true)?;
        if let Some(q) = &p.name_qualifier {
            check_text("name_qualifier", q, false)?;
        }
        check_text("authn_context_class_ref", &p.authn_context_class_ref, true)?;
        for (name, values) in &p.attributes {
            check_text("attributes", name, true)?;
            for value in values {
                check_text("attributes", value, false)?;
            }
        }
        let id = match &p.id {
            Some(id) => {
                check_id(id)?;
                id.clone()
            }
            None => format!("_{}", uuid::Uuid::new_v4().simple()),
        };

        let issue = match p.issue_instant {
            Some(t) => t,
            None => OffsetDateTime::now_utc(),
        };
        let issue = whole_seconds(issue)?;
        let not_before = match p.not_before {
            Some(t) => whole_seconds(t)?,
            None => issue,
        };
        let not_on_or_after = match p.not_on_or_after {
            Some(t) => whole_seconds(t)?,
            None => {
                if p.lifetime <= Duration::ZERO {
                    return Err(SamlError::InvalidTime("lifetime must be positive".into()));
                }
                let t = not_before
                    .checked_add(p.lifetime)
                    .ok_or_else(|| SamlError::InvalidTime("NotOnOrAfter out of range".into()))?;
                whole_seconds(t)?
            }
        };
        if not_on_or_after <= not_before {
            return Err(SamlError::InvalidTime(
                "NotOnOrAfter must be later than NotBefore".into(),
            ));
        }
        Ok(Self {
            id,
            issue_instant: xs_date_time(issue)?,
            not_before: xs_date_time(not_before)?,
            not_on_or_after: xs_date_time(not_on_or_after)?,
        })
    }
}

fn invalid(field: &'static str, reason: &str) -> SamlError {
    SamlError::InvalidInput {
        field,
        reason: reason.to_owned(),
    }
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production).
fn is_xml_char(c: char) -> bool {
    matches!(c,
        '\t' | '\n' | '\r'
        | '\u{20}'..='\u{D7FF}'
        | '\u{E000}'..='\u{FFFD}'
        | '\u{10000}'..='\u{10FFFF}')
}

fn check_text(field: &'static str, value: &str, required: bool) -> Result<(), SamlError> {
    if required && value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
        return Err(SamlError::InvalidInput {
            field,
            reason: format!(
                "contains U+{:04X}, which XML 1.0 cannot carry",
                u32::from(c)
            ),
        });
    }
    Ok(())
}

/// A conservative subset of `xs:ID` (an NCName): what a verifier's `#id` lookup surely finds.
fn check_id(id: &str) -> Result<(), SamlError> {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(invalid(
            "id",
            "must start with a letter or '_' and contain only ASCII letters, digits, '_', '-' and '.'",
        ))
    }
}

fn whole_seconds(t: OffsetDateTime) -> Result<OffsetDateTime, SamlError> {
    t.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| SamlError::InvalidTime(e.to_string()))
}

/// `xs:dateTime` in UTC with whole seconds: `2024-05-01T12:00:00Z`.
fn xs_date_time(t: OffsetDateTime) -> Result<String, SamlError> {
    let t = t.to_offset(UtcOffset::UTC);
    if !(1..=9999).contains(&t.year()) {
        return Err(SamlError::InvalidTime(format!(
            "year {} cannot be written as xs:dateTime",
            t.year()
        )));
    }
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

// ---------------------------------------------------------------------------------------------
// Canonical XML writing

/// Writes elements directly in exclusive canonical form (see the module docs). Callers pass
/// unqualified attribute names only and declare at most one namespace per element, on the first
/// element that uses its prefix; all text must have passed [`check_text`].
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn open(&mut self, name: &str, xmlns: Option<(&str, &str)>, attrs: &[(&str, &str)]) {
        self.out.push('<');
        self.out.push_str(name);
        if let Some((prefix, uri)) = xmlns {
            self.out.push_str(" xmlns:");
            self.out.push_str(prefix);
            self.out.push_str("=\"");
            escape_attr_into(&mut self.out, uri);
            self.out.push('"');
        }
        let mut sorted: Vec<&(&str, &str)> = attrs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (key, value) in sorted {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_attr_into(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    /// An element holding only text (or nothing: canonical form has no empty-element tags).
    fn leaf(&mut self, name: &str, attrs: &[(&str, &str)], text: &str) {
        self.open(name, None, attrs);
        escape_text_into(&mut self.out, text);
        self.close(name);
    }
}

/// Text node escaping of canonical XML.
fn escape_text_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Attribute value escaping of canonical XML (whitespace other than the space as character
/// references, so that attribute-value normalisation keeps it).
fn escape_attr_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Keys and certificates

/// The private key, parsed for signing with `ring`.
struct SigningKey(ring::rsa::KeyPair);

impl SigningKey {
    fn from_pem(pem: &SecretString) -> Result<Self, SamlError> {
        let block = pem_decode(pem.expose_secret(), &["PRIVATE KEY", "RSA PRIVATE KEY"])
            .map_err(SamlError::InvalidKey)?;
        let key = if block.label == "PRIVATE KEY" {
            ring::rsa::KeyPair::from_pkcs8(&block.der)
        } else {
            ring::rsa::KeyPair::from_der(&block.der)
        }
        .map_err(|e| SamlError::InvalidKey(format!("not a usable RSA key ({e})")))?;
        Ok(Self(key))
    }

    /// The public key as a PKCS#1 `RSAPublicKey`.
    fn public_key_pkcs1(&self) -> &[u8] {
        self.0.public().as_ref()
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SamlError> {
        let mut signature = vec![0u8; self.0.public().modulus_len()];
        self.0
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| SamlError::Signing("the RSA operation failed".into()))?;
        Ok(signature)
    }
}

struct PemBlock {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

/// Reads the first PEM block whose label is one of `labels`. Lenient about surrounding text,
/// indentation, line length and CRLF; refuses encrypted (RFC 1421 header) blocks. Errors never
/// quote the input.
fn pem_decode(pem: &str, labels: &[&str]) -> Result<PemBlock, String> {
    let mut lines = pem.lines().map(str::trim);
    let label = loop {
        let Some(line) = lines.next() else {
            return Err(format!("no PEM block labelled {}", labels.join(" or ")));
        };
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        {
            if labels.contains(&label) {
                break label.to_owned();
            }
        }
    };
    let end = format!("-----END {label}-----");
    let mut body = Zeroizing::new(String::new());
    let mut ended = false;
    for line in lines {
        if line == end {
            ended = true;
            break;
        }
        if line.contains(':') {
            return Err("encrypted or annotated PEM blocks are not supported".into());
        }
        body.extend(line.chars().filter(|c| !c.is_ascii_whitespace()));
    }
    if !ended {
        return Err(format!("the {label} PEM block has no END line"));
    }
    let der = STANDARD
        .decode(body.as_bytes())
        .map_err(|_| format!("the {label} PEM block is not valid base64"))?;
    Ok(PemBlock {
        label,
        der: Zeroizing::new(der),
    })
}

fn certificate_der_from_pem(pem: &str) -> Result<Vec<u8>, SamlError> {
    let block = pem_decode(pem, &["CERTIFICATE"]).map_err(SamlError::InvalidCertificate)?;
    Ok(block.der.to_vec())
}

/// What Signpost needs from an X.509 certificate.
struct CertificateInfo {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    public_key: rsa::RsaPublicKey,
}

/// Reads validity and the RSA public key from a DER certificate (RFC 5280 `Certificate`). The
/// certificate's own signature is not checked: these are the subaccount's self-signed
/// certificates, trusted because Signpost stored them.
fn parse_certificate(der_bytes: &[u8]) -> Result<CertificateInfo, SamlError> {
    let cert_err = |e: der::Error| SamlError::InvalidCertificate(format!("malformed DER: {e}"));
    let mut reader = SliceReader::new(der_bytes).map_err(cert_err)?;
    let (not_before, not_after, spki) = reader
        .sequence(|cert| {
            let fields = cert.sequence(|tbs| {
                let version_tag = Tag::ContextSpecific {
                    constructed: true,
                    number: TagNumber::N0,
                };
                if tbs.peek_tag()? == version_tag {
                    AnyRef::decode(tbs)?;
                }
                AnyRef::decode(tbs)?; // serialNumber
                AnyRef::decode(tbs)?; // signature
                AnyRef::decode(tbs)?; // issuer
                let validity =
                    tbs.sequence(|v| Ok((decode_x509_time(v)?, decode_x509_time(v)?)))?;
                AnyRef::decode(tbs)?; // subject
                let spki = tbs.tlv_bytes()?.to_vec();
                while !tbs.is_finished() {
                    AnyRef::decode(tbs)?; // unique ids, extensions
                }
                Ok((validity.0, validity.1, spki))
            })?;
            AnyRef::decode(cert)?; // signatureAlgorithm
            AnyRef::decode(cert)?; // signatureValue
            Ok(fields)
        })
        .map_err(cert_err)?;
    reader.finish(()).map_err(cert_err)?;

    let public_key = rsa::RsaPublicKey::from_public_key_der(&spki).map_err(|e| {
        SamlError::InvalidCertificate(format!("the certificate holds no RSA public key ({e})"))
    })?;
    let to_time = |d: std::time::Duration| {
        i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| SamlError::InvalidCertificate("validity out of range".into()))
    };
    Ok(CertificateInfo {
        not_before: to_time(not_before)?,
        not_after: to_time(not_after)?,
        public_key,
    })
}

/// An X.509 `Time`: `UTCTime` or `GeneralizedTime`, as time since the Unix epoch.
fn decode_x509_time<'a, R: der::Reader<'a>>(r: &mut R) -> der::Result<std::time::Duration> {
    if r.peek_tag()? == Tag::UtcTime {
        Ok(UtcTime::decode(r)?.to_unix_duration())
    } else {
        Ok(GeneralizedTime::decode(r)?.to_unix_duration())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rsa::signature::Verifier as _;
    use std::sync::OnceLock;

    /// One key pair per test process: RSA key generation is the slow part.
    fn keypair() -> &'static TrustKeyPair {
        static KEY: OnceLock<TrustKeyPair> = OnceLock::new();
        KEY.get_or_init(|| generate_trust_keypair("signpost-test", 30).unwrap())
    }

    fn params() -> AssertionParams {
        let mut p = AssertionParams::new(
            "https://issuer.example/sub-1",
            "https://sp.example/audience",
            "https://tokens.example/oauth/token",
            "alice@example.com",
        );
        p.id = Some("_fixed1".into());
        p.issue_instant = Some(OffsetDateTime::from_unix_timestamp(1_714_564_800).unwrap());
        p
    }

    fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
        let i = s.find(start).unwrap() + start.len();
        let j = s[i..].find(end).unwrap() + i;
        &s[i..j]
    }

    /// A verifier for our own output, written independently of the builder: it relies on the
    /// output being canonical (checked against lxml in `tests/saml_signxml.rs`), so the
    /// enveloped-signature transform is "cut out the Signature element".
    fn verify(xml: &str, cert_der: &[u8]) -> Result<(), String> {
        let sig_start = xml.find("<ds:Signature ").ok_or("no Signature")?;
        let sig_end_tag = "</ds:Signature>";
        let sig_end = xml.find(sig_end_tag).ok_or("no Signature end")? + sig_end_tag.len();
        let payload = format!("{}{}", &xml[..sig_start], &xml[sig_end..]);
        let signature = &xml[sig_start..sig_end];

        let id = between(xml, " ID=\"", "\"");
        let uri = between(signature, "<ds:Reference URI=\"", "\"");
        if uri != format!("#{id}") {
            return Err("reference does not point at the assertion".into());
        }
        let digest = STANDARD.encode(Sha256::digest(payload.as_bytes()));
        if between(signature, "<ds:DigestValue>", "</ds:DigestValue>") != digest {
            return Err("digest mismatch".into());
        }
        let signed_info = format!(
            "<ds:SignedInfo xmlns:ds=\"{XMLDSIG_NS}\">{}</ds:SignedInfo>",
            between(signature, "<ds:SignedInfo>", "</ds:SignedInfo>")
        );
        let sig_bytes = STANDARD
            .decode(between(
                signature,
                "<ds:SignatureValue>",
                "</ds:SignatureValue>",
            ))
            .map_err(|e| e.to_string())?;
        let public = parse_certificate(cert_der)
            .map_err(|e| e.to_string())?
            .public_key;
        let verifying = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public);
        let sig =
            rsa::pkcs1v15::Signature::try_from(sig_bytes.as_slice()).map_err(|e| e.to_string())?;
        verifying
            .verify(signed_info.as_bytes(), &sig)
            .map_err(|_| "signature mismatch".to_string())
    }

    #[test]
    fn generated_keypair_is_consistent_and_debug_hides_the_key() {
        let now = OffsetDateTime::now_utc();
        let kp = keypair();
        assert!(kp
            .private_key_pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(kp
            .certificate_pem
            .starts_with("-----BEGIN CERTIFICATE-----"));
        let not_after = kp.not_after().unwrap();
        assert!((not_after - (now + Duration::days(30))).abs() < Duration::minutes(2));
        assert!(kp.not_before().unwrap() < now);
        let info = parse_certificate(&kp.certificate_der().unwrap()).unwrap();
        assert_eq!(
            rsa::traits::PublicKeyParts::size(&info.public_key) * 8,
            TRUST_KEY_BITS
        );
        // from_pem accepts what generate made.
        TrustKeyPair::from_pem(kp.private_key_pem.clone(), kp.certificate_pem.clone()).unwrap();

        let debug = format!("{kp:?}");
        assert!(debug.contains("[REDACTED]"));
        assert!(!debug.contains("PRIVATE KEY"));
        let key_body: Vec<&str> = kp.private_key_pem.expose_secret().lines().collect();
        for line in &key_body[1..key_body.len() - 1] {
            assert!(!debug.contains(line), "Debug leaks key material");
        }
    }

    #[test]
    fn from_pem_rejects_a_foreign_certificate_and_garbage() {
        let other = generate_trust_keypair("other", 1).unwrap();
        let err = TrustKeyPair::from_pem(
            keypair().private_key_pem.clone(),
            other.certificate_pem.clone(),
        )
        .unwrap_err();
        assert!(matches!(err, SamlError::InvalidCertificate(_)), "{err}");
        let err =
            TrustKeyPair::from_pem(SecretString::from("nope"), other.certificate_pem).unwrap_err();
        assert!(matches!(err, SamlError::InvalidKey(_)), "{err}");
        let err = TrustKeyPair::from_pem(
            keypair().private_key_pem.clone(),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
        )
        .unwrap_err();
        assert!(matches!(err, SamlError::InvalidCertificate(_)), "{err}");
    }

    #[test]
    fn generation_rejects_bad_input() {
        assert!(matches!(
            generate_trust_keypair(" ", 10),
            Err(SamlError::InvalidInput {
                field: "common_name",
                ..
            })
        ));
        assert!(matches!(
            generate_trust_keypair("x", 0),
            Err(SamlError::InvalidInput {
                field: "validity_days",
                ..
            })
        ));
    }

    #[test]
    fn assertion_has_the_expected_canonical_structure() {
        let xml = build_signed_assertion(&params(), keypair(), true).unwrap();
        let ns = SAML2_ASSERTION_NS;
        assert!(xml.starts_with(&format!(
            "<saml2:Assertion xmlns:saml2=\"{ns}\" ID=\"_fixed1\" IssueInstant=\"2024-05-01T12:00:00Z\" Version=\"2.0\"><saml2:Issuer>https://issuer.example/sub-1</saml2:Issuer><ds:Signature xmlns:ds=\"{XMLDSIG_NS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"{RSA_SHA256}\"></ds:SignatureMethod><ds:Reference URI=\"#_fixed1\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED_SIGNATURE}\"></ds:Transform><ds:Transform Algorithm=\"{EXC_C14N}\"></ds:Transform></ds:Transforms><ds:DigestMethod Algorithm=\"{DIGEST_SHA256}\"></ds:DigestMethod><ds:DigestValue>"
        )), "{xml}");
        let tail = &xml[xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len()..];
        assert_eq!(
            tail,
            format!(
                "<saml2:Subject><saml2:NameID Format=\"{NAME_ID_FORMAT_UNSPECIFIED}\">alice@example.com</saml2:NameID><saml2:SubjectConfirmation Method=\"{SUBJECT_CONFIRMATION_BEARER}\"><saml2:SubjectConfirmationData NotOnOrAfter=\"2024-05-01T12:10:00Z\" Recipient=\"https://tokens.example/oauth/token\"></saml2:SubjectConfirmationData></saml2:SubjectConfirmation></saml2:Subject><saml2:Conditions NotBefore=\"2024-05-01T12:00:00Z\" NotOnOrAfter=\"2024-05-01T12:10:00Z\"><saml2:AudienceRestriction><saml2:Audience>https://sp.example/audience</saml2:Audience></saml2:AudienceRestriction></saml2:Conditions><saml2:AuthnStatement AuthnInstant=\"2024-05-01T12:00:00Z\"><saml2:AuthnContext><saml2:AuthnContextClassRef>{AUTHN_CONTEXT_PREVIOUS_SESSION}</saml2:AuthnContextClassRef></saml2:AuthnContext></saml2:AuthnStatement></saml2:Assertion>"
            )
        );
        assert!(xml.contains("<ds:KeyInfo><ds:X509Data><ds:X509Certificate>"));
        assert!(!xml.contains("AttributeStatement"));
        assert!(!xml.contains("<?xml"));
        assert!(
            !xml.contains("/>"),
            "canonical form has no empty-element tags"
        );
        assert!(!xml.contains(">\n") && !xml.contains("> <"));
        assert_eq!(xml.matches("xmlns:").count(), 2);
        verify(&xml, &keypair().certificate_der().unwrap()).unwrap();
    }

    #[test]
    fn optional_parts() {
        let mut p = params();
        p.name_qualifier = Some("sub.example".into());
        p.name_id_format = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into();
        p.authn_context_class_ref = "urn:oasis:names:tc:SAML:2.0:ac:classes:X509".into();
        p.attributes = vec![
            ("mail".into(), vec!["a@example.com".into()]),
            ("groups".into(), vec!["g1".into(), "g2".into()]),
            ("empty".into(), vec![]),
        ];
        p.not_before = Some(OffsetDateTime::from_unix_timestamp(1_714_564_700).unwrap());
        p.lifetime = Duration::seconds(30);
        let xml = build_signed_assertion(&p, keypair(), false).unwrap();
        assert!(!xml.contains("KeyInfo"));
        assert!(xml.contains("<saml2:NameID Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\" NameQualifier=\"sub.example\">"));
        assert!(xml.contains(&format!(
            "<saml2:AttributeStatement><saml2:Attribute Name=\"mail\" NameFormat=\"{ATTRNAME_FORMAT_UNSPECIFIED}\"><saml2:AttributeValue>a@example.com</saml2:AttributeValue></saml2:Attribute><saml2:Attribute Name=\"groups\" NameFormat=\"{ATTRNAME_FORMAT_UNSPECIFIED}\"><saml2:AttributeValue>g1</saml2:AttributeValue><saml2:AttributeValue>g2</saml2:AttributeValue></saml2:Attribute><saml2:Attribute Name=\"empty\" NameFormat=\"{ATTRNAME_FORMAT_UNSPECIFIED}\"></saml2:Attribute></saml2:AttributeStatement></saml2:Assertion>"
        )));
        // NotOnOrAfter counts from NotBefore.
        assert!(xml.contains(
            "<saml2:Conditions NotBefore=\"2024-05-01T11:58:20Z\" NotOnOrAfter=\"2024-05-01T11:58:50Z\">"
        ));
        assert!(xml.contains("<saml2:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:X509</saml2:AuthnContextClassRef>"));
        verify(&xml, &keypair().certificate_der().unwrap()).unwrap();
    }

    #[test]
    fn defaults_fill_in_a_fresh_id_and_current_times() {
        let p = AssertionParams::new("i", "a", "r", "n");
        let before = OffsetDateTime::now_utc().unix_timestamp();
        let xml = build_signed_assertion(&p, keypair(), false).unwrap();
        let id = between(&xml, " ID=\"", "\"");
        assert!(id.starts_with('_') && id.len() == 33, "{id}");
        let other = build_signed_assertion(&p, keypair(), false).unwrap();
        assert_ne!(id, between(&other, " ID=\"", "\""));
        let issued = OffsetDateTime::parse(
            between(&xml, "IssueInstant=\"", "\""),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert!((before - 1..=before + 5).contains(&issued));
        let expires = OffsetDateTime::parse(
            between(&xml, "NotOnOrAfter=\"", "\""),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        assert_eq!(expires - issued, 600);
    }

    #[test]
    fn escaping_of_text_and_attributes() {
        let mut text = String::new();
        escape_text_into(&mut text, "a&b<c>d\"e'f\rg\nh\ti Ünï 日本 😀");
        assert_eq!(text, "a&amp;b&lt;c&gt;d\"e'f&#xD;g\nh\ti Ünï 日本 😀");
        let mut attr = String::new();
        escape_attr_into(&mut attr, "a&b<c>d\"e'f\rg\nh\ti Ünï");
        assert_eq!(attr, "a&amp;b&lt;c>d&quot;e'f&#xD;g&#xA;h&#x9;i Ünï");
    }

    #[test]
    fn tricky_characters_are_escaped_and_still_verify() {
        let mut p = params();
        p.issuer = "issuer & <co> \"quoted\" 'single'".into();
        p.name_id = "O'Brien & <Söhne> \"Ünïcødé\" 日本\r\n\tend]]>".into();
        p.recipient = "https://t.example/token?a=1&b=\"2\"\t<x>".into();
        p.name_qualifier = Some("q&\"<>\n".into());
        p.attributes = vec![("na&me \"<x>\"".into(), vec!["v&<>\"\r\n😀".into()])];
        let xml = build_signed_assertion(&p, keypair(), true).unwrap();
        assert!(xml
            .contains("<saml2:Issuer>issuer &amp; &lt;co&gt; \"quoted\" 'single'</saml2:Issuer>"));
        assert!(xml.contains(
            ">O'Brien &amp; &lt;Söhne&gt; \"Ünïcødé\" 日本&#xD;\n\tend]]&gt;</saml2:NameID>"
        ));
        assert!(xml
            .contains("Recipient=\"https://t.example/token?a=1&amp;b=&quot;2&quot;&#x9;&lt;x>\""));
        assert!(xml.contains("NameQualifier=\"q&amp;&quot;&lt;>&#xA;\""));
        assert!(xml.contains("<saml2:Attribute Name=\"na&amp;me &quot;&lt;x>&quot;\""));
        assert!(
            xml.contains("<saml2:AttributeValue>v&amp;&lt;&gt;\"&#xD;\n😀</saml2:AttributeValue>")
        );
        verify(&xml, &keypair().certificate_der().unwrap()).unwrap();
    }

    #[test]
    fn characters_xml_cannot_carry_are_rejected() {
        for bad in ["a\u{0}b", "a\u{1b}b", "\u{FFFE}", "\u{FFFF}", "x\u{8}"] {
            let mut p = params();
            p.name_id = bad.into();
            let err = build_signed_assertion(&p, keypair(), false).unwrap_err();
            assert!(
                matches!(
                    err,
                    SamlError::InvalidInput {
                        field: "name_id",
                        ..
                    }
                ),
                "{err}"
            );
            assert!(!err.to_string().contains(bad));
        }
        let mut p = params();
        p.attributes = vec![("a".into(), vec!["\u{7}".into()])];
        assert!(matches!(
            build_signed_assertion(&p, keypair(), false),
            Err(SamlError::InvalidInput {
                field: "attributes",
                ..
            })
        ));
    }

    #[test]
    fn required_fields_ids_and_times_are_checked() {
        for field in ["issuer", "audience", "recipient", "name_id"] {
            let mut p = params();
            match field {
                "issuer" => p.issuer.clear(),
                "audience" => p.audience = "  ".into(),
                "recipient" => p.recipient.clear(),
                _ => p.name_id.clear(),
            }
            let err = build_signed_assertion(&p, keypair(), false).unwrap_err();
            assert!(
                matches!(&err, SamlError::InvalidInput { field: f, .. } if *f == field),
                "{err}"
            );
        }
        for bad_id in ["", "1abc", "a b", "a\"b", "#x", "é"] {
            let mut p = params();
            p.id = Some(bad_id.into());
            assert!(
                matches!(
                    build_signed_assertion(&p, keypair(), false),
                    Err(SamlError::InvalidInput { field: "id", .. })
                ),
                "{bad_id:?}"
            );
        }
        let mut p = params();
        p.not_on_or_after = p.issue_instant;
        assert!(matches!(
            build_signed_assertion(&p, keypair(), false),
            Err(SamlError::InvalidTime(_))
        ));
        let mut p = params();
        p.lifetime = Duration::ZERO;
        assert!(matches!(
            build_signed_assertion(&p, keypair(), false),
            Err(SamlError::InvalidTime(_))
        ));
        let mut p = params();
        p.issue_instant = Some(OffsetDateTime::from_unix_timestamp(-70_000_000_000).unwrap());
        assert!(matches!(
            build_signed_assertion(&p, keypair(), false),
            Err(SamlError::InvalidTime(_))
        ));
    }

    #[test]
    fn times_are_utc_whole_seconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_714_564_800_999_000_000)
            .unwrap()
            .to_offset(UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(
            xs_date_time(whole_seconds(t).unwrap()).unwrap(),
            "2024-05-01T12:00:00Z"
        );
        let t = OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(xs_date_time(t).unwrap(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let kp = keypair();
        let cert = kp.certificate_der().unwrap();
        let xml = build_signed_assertion(&params(), kp, true).unwrap();
        verify(&xml, &cert).unwrap();

        let tampered = xml.replace("alice@example.com", "alicf@example.com");
        assert_eq!(verify(&tampered, &cert).unwrap_err(), "digest mismatch");
        let tampered = xml.replace("2024-05-01T12:10:00Z", "2024-05-01T13:10:00Z");
        assert_eq!(verify(&tampered, &cert).unwrap_err(), "digest mismatch");

        // A changed SignedInfo (here: its digest, recomputed for a changed assertion) no longer
        // matches the signature.
        let changed = xml.replace("alice@example.com", "mallory@example.com");
        let sig_start = changed.find("<ds:Signature ").unwrap();
        let sig_end = changed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        let payload = format!("{}{}", &changed[..sig_start], &changed[sig_end..]);
        let old_digest = between(&changed, "<ds:DigestValue>", "</ds:DigestValue>").to_owned();
        let new_digest = STANDARD.encode(Sha256::digest(payload.as_bytes()));
        let forged = changed.replace(&old_digest, &new_digest);
        assert_eq!(verify(&forged, &cert).unwrap_err(), "signature mismatch");

        // Flipping any single byte of the signature value is caught.
        let sig_b64 = between(&xml, "<ds:SignatureValue>", "</ds:SignatureValue>");
        let mut sig = STANDARD.decode(sig_b64).unwrap();
        sig[100] ^= 0x01;
        let flipped = xml.replace(sig_b64, &STANDARD.encode(&sig));
        assert_eq!(verify(&flipped, &cert).unwrap_err(), "signature mismatch");

        // Another key's certificate does not verify it.
        let other = generate_trust_keypair("other", 1).unwrap();
        assert_eq!(
            verify(&xml, &other.certificate_der().unwrap()).unwrap_err(),
            "signature mismatch"
        );
    }

    #[test]
    fn encode_standard_and_url_safe() {
        let xml = "<a>\u{fb}\u{ff}\u{fe}??>>></a>";
        let std = encode(xml, false);
        assert_eq!(STANDARD.decode(&std).unwrap(), xml.as_bytes());
        let url = encode(xml, true);
        assert!(!url.contains(['+', '/', '=']));
        assert_eq!(URL_SAFE_NO_PAD.decode(&url).unwrap(), xml.as_bytes());
        assert!(std.contains(['+', '/']) || std.contains('='), "{std}");
    }

    #[test]
    fn idp_metadata_carries_the_signing_certificates() {
        let kp = keypair();
        let other = generate_trust_keypair("passive", 1).unwrap();
        let md = idp_metadata(
            "https://signpost.example/sub & 1",
            &[&kp.certificate_pem, &other.certificate_pem],
        );
        assert!(md.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" entityID=\"https://signpost.example/sub &amp; 1\"><md:IDPSSODescriptor"));
        let key_descriptor = |cert: &str| {
            format!(
                "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"{XMLDSIG_NS}\"><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
            )
        };
        let both = format!(
            "{}{}",
            key_descriptor(&kp.certificate_base64().unwrap()),
            key_descriptor(&other.certificate_base64().unwrap())
        );
        assert!(md.contains(&both), "{md}");
        assert!(!md.contains("-----"));

        // Unreadable certificates are left out; the rest is still written.
        let md = idp_metadata("x\u{1}", &["not a pem", &kp.certificate_pem]);
        assert_eq!(md.matches("<md:KeyDescriptor").count(), 1);
        assert!(md.contains("entityID=\"x\u{FFFD}\""));
        assert!(md.contains("<md:SingleSignOnService Binding="));
    }

    #[test]
    fn pem_reading_is_lenient_about_layout_but_not_content() {
        let kp = keypair();
        let crlf = format!(
            "junk before\r\n  {}\r\n",
            kp.certificate_pem.replace('\n', "\r\n  ")
        );
        assert_eq!(
            certificate_der_from_pem(&crlf).unwrap(),
            kp.certificate_der().unwrap()
        );
        assert!(pem_decode("-----BEGIN CERTIFICATE-----\nAAA", &["CERTIFICATE"]).is_err());
        assert!(pem_decode(
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----",
            &["RSA PRIVATE KEY"]
        )
        .is_err());
        assert!(pem_decode(
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
            &["CERTIFICATE"]
        )
        .is_err());
    }

    #[test]
    fn pkcs1_private_keys_are_accepted() {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let kp = keypair();
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(kp.private_key_pem.expose_secret()).unwrap();
        let pkcs1 = key.to_pkcs1_pem(LineEnding::CRLF).unwrap();
        let loaded = TrustKeyPair::from_pem(
            SecretString::from(pkcs1.as_str()),
            kp.certificate_pem.clone(),
        )
        .unwrap();
        let xml = build_signed_assertion(&params(), &loaded, false).unwrap();
        verify(&xml, &kp.certificate_der().unwrap()).unwrap();
    }
}
