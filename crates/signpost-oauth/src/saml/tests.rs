//! The SAML code against an independent verifier of its signatures (`rsa`) and its own
//! expectations of the document.
#![allow(clippy::unwrap_used)]

use super::assertion::{whole_seconds, xs_date_time};
use super::keys::{certificate_der_from_pem, parse_certificate, read_pem_block};
use super::xml::{escape_attr_into, escape_text_into};
#[allow(clippy::wildcard_imports)]
use super::*;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs8::LineEnding;
use rsa::signature::Verifier as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use std::sync::OnceLock;
use time::{Duration, OffsetDateTime, UtcOffset};

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
    assert!(
        xml.contains("<saml2:Issuer>issuer &amp; &lt;co&gt; \"quoted\" 'single'</saml2:Issuer>")
    );
    assert!(xml.contains(
        ">O'Brien &amp; &lt;Söhne&gt; \"Ünïcødé\" 日本&#xD;\n\tend]]&gt;</saml2:NameID>"
    ));
    assert!(
        xml.contains("Recipient=\"https://t.example/token?a=1&amp;b=&quot;2&quot;&#x9;&lt;x>\"")
    );
    assert!(xml.contains("NameQualifier=\"q&amp;&quot;&lt;>&#xA;\""));
    assert!(xml.contains("<saml2:Attribute Name=\"na&amp;me &quot;&lt;x>&quot;\""));
    assert!(xml.contains("<saml2:AttributeValue>v&amp;&lt;&gt;\"&#xD;\n😀</saml2:AttributeValue>"));
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
    assert!(read_pem_block("-----BEGIN CERTIFICATE-----\nAAA", &["CERTIFICATE"]).is_err());
    assert!(read_pem_block(
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n-----END RSA PRIVATE KEY-----",
        &["RSA PRIVATE KEY"]
    )
    .is_err());
    assert!(read_pem_block(
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
