//! The IdP metadata of a subaccount: the document `/v1/saml2Metadata` hands out.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::keys::{certificate_der_from_pem, parse_certificate};
use super::xml::{is_xml_char, Writer};
use super::{
    BINDING_HTTP_POST, NAME_ID_FORMAT_UNSPECIFIED, SAML2_METADATA_NS, SAML2_PROTOCOL_NS, XMLDSIG_NS,
};

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
