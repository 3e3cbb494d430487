//! The assertion: its parameters, their checks (defaults, XML-safe text, IDs, times), and the
//! signed document, written in canonical form in two halves around its enveloped signature.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime, UtcOffset};

use super::keys::SigningKey;
use super::xml::{is_xml_char, Writer};
#[allow(clippy::wildcard_imports)]
use super::*;

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

pub(super) fn whole_seconds(t: OffsetDateTime) -> Result<OffsetDateTime, SamlError> {
    t.to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| SamlError::InvalidTime(e.to_string()))
}

/// `xs:dateTime` in UTC with whole seconds: `2024-05-01T12:00:00Z`.
pub(super) fn xs_date_time(t: OffsetDateTime) -> Result<String, SamlError> {
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
