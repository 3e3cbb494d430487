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
//!
//! # Modules
//!
//! * `assertion`: what goes into an assertion, its checks, and the signed document;
//! * `xml`: the writer of exclusive canonical XML and its escaping;
//! * `keys`: the trust key pair (generated with `rcgen`, read through `signpost-certs`) and the
//!   RSA signer;
//! * `metadata`: the IdP metadata document.

mod assertion;
mod keys;
mod metadata;
#[cfg(test)]
mod tests;
mod xml;

use time::Duration;

pub use assertion::{build_signed_assertion, encode, AssertionParams};
pub use keys::{generate_trust_keypair, generate_trust_keypair_at, TrustKeyPair};
pub use metadata::idp_metadata;

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

pub(crate) fn invalid(field: &'static str, reason: &str) -> SamlError {
    SamlError::InvalidInput {
        field,
        reason: reason.to_owned(),
    }
}
