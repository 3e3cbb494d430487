//! Independent verification of the SAML assertions that `signpost_oauth::saml` signs, with the
//! Python `signxml` library (lxml + cryptography) through `e2e/saml/verify.py`: what a token
//! service with a maintained XML-signature stack would do.
//!
//! Needs `python3`. When the pinned signxml is missing, the first test installs
//! `e2e/saml/requirements.txt` with pip and fails loudly if that does not work.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use serde_json::{json, Value};
use signpost_oauth::saml::{
    build_signed_assertion, generate_trust_keypair, idp_metadata, AssertionParams, TrustKeyPair,
    AUTHN_CONTEXT_PREVIOUS_SESSION, NAME_ID_FORMAT_UNSPECIFIED,
};
use signpost_test_peers::signxml::{run_verifier, verify};
use time::{Duration, OffsetDateTime};

/// One key pair per test process.
fn keypair() -> &'static TrustKeyPair {
    static KEY: OnceLock<TrustKeyPair> = OnceLock::new();
    KEY.get_or_init(|| generate_trust_keypair("signpost-signxml-test", 2).unwrap())
}

fn other_keypair() -> &'static TrustKeyPair {
    static KEY: OnceLock<TrustKeyPair> = OnceLock::new();
    KEY.get_or_init(|| generate_trust_keypair("someone-else", 2).unwrap())
}

fn params() -> AssertionParams {
    AssertionParams::new(
        "https://signpost.example/subaccount/1234",
        "https://sp.example/saml/audience",
        "https://tokens.example/oauth/token",
        "alice@example.com",
    )
}

fn expectations(p: &AssertionParams) -> Value {
    json!({
        "issuer": p.issuer,
        "audience": p.audience,
        "recipient": p.recipient,
        "name_id": p.name_id,
        "name_id_format": p.name_id_format,
        "name_qualifier": p.name_qualifier,
        "authn_context_class_ref": p.authn_context_class_ref,
        "attributes": p.attributes,
        "canonical": true,
    })
}

#[test]
fn signxml_accepts_an_assertion_with_embedded_certificate_and_attributes() {
    let mut p = params();
    p.attributes = vec![
        ("mail".into(), vec!["alice@example.com".into()]),
        ("groups".into(), vec!["admins".into(), "users".into()]),
        ("no_values".into(), vec![]),
    ];
    p.name_qualifier = Some("example.com".into());
    let xml = build_signed_assertion(&p, keypair(), true).unwrap();
    let verdict = verify(&xml, &keypair().certificate_pem, &expectations(&p));
    let out = verdict.assert_ok();
    assert_eq!(out["embedded_certificate"], true);
    assert_eq!(out["name_id_format"], NAME_ID_FORMAT_UNSPECIFIED);
    assert_eq!(
        out["authn_context_class_ref"],
        AUTHN_CONTEXT_PREVIOUS_SESSION
    );
}

#[test]
fn signxml_accepts_an_assertion_without_embedded_certificate() {
    let p = params();
    let xml = build_signed_assertion(&p, keypair(), false).unwrap();
    let verdict = verify(&xml, &keypair().certificate_pem, &expectations(&p));
    let out = verdict.assert_ok();
    assert_eq!(out["embedded_certificate"], false);
    assert_eq!(out["attributes"], json!([]));
}

#[test]
fn signxml_accepts_tricky_characters() {
    let mut p = params();
    p.issuer = "issuer & <co> \"quoted\" 'single' Ünïcødé".into();
    p.audience = "urn:aud?x=1&y=<2>".into();
    p.recipient = "https://t.example/token?a=1&b=\"2\"\t<x>".into();
    p.name_id = "O'Brien & <Söhne> \"Ünïcødé\" 日本\r\n\tend]]> 😀".into();
    p.name_qualifier = Some("q&\"<>\r\n".into());
    p.authn_context_class_ref = "urn:ctx&<>".into();
    p.attributes = vec![
        (
            "na&me \"<x>\"\t".into(),
            vec!["v&<>\"\r\n😀".into(), " ".into()],
        ),
        ("Ünï".into(), vec!["日本語".into()]),
    ];
    for include_certificate in [true, false] {
        let xml = build_signed_assertion(&p, keypair(), include_certificate).unwrap();
        verify(&xml, &keypair().certificate_pem, &expectations(&p)).assert_ok();
    }
}

#[test]
fn signxml_rejects_a_tampered_assertion() {
    let p = params();
    let xml = build_signed_assertion(&p, keypair(), true).unwrap();
    let cert = &keypair().certificate_pem;
    verify(&xml, cert, &json!({})).assert_ok();

    let tampered = xml.replace("alice@example.com", "mallory@example.com");
    let error = verify(&tampered, cert, &json!({})).assert_rejected("signature");
    assert!(error.contains("Digest mismatch"), "{error}");

    let tampered = xml.replace("https://sp.example/saml/audience", "https://evil.example/");
    verify(&tampered, cert, &json!({})).assert_rejected("signature");

    // A changed SignedInfo (the digest method's neighbour, the reference digest) breaks the
    // signature itself.
    let start = xml.find("<ds:DigestValue>").unwrap() + "<ds:DigestValue>".len();
    let mut chars: Vec<char> = xml.chars().collect();
    let idx = xml[..start].chars().count();
    chars[idx] = if chars[idx] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    verify(&tampered, cert, &json!({})).assert_rejected("signature");

    // So does a changed signature value.
    let sig_start = xml.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len() + 10;
    let mut bytes = xml.clone().into_bytes();
    bytes[sig_start] = if bytes[sig_start] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    verify(&tampered, cert, &json!({})).assert_rejected("signature");
}

#[test]
fn signxml_rejects_the_wrong_certificate() {
    let p = params();
    for include_certificate in [true, false] {
        let xml = build_signed_assertion(&p, keypair(), include_certificate).unwrap();
        let error =
            verify(&xml, &other_keypair().certificate_pem, &json!({})).assert_rejected("signature");
        assert!(error.contains("Signature verification failed"), "{error}");
    }
}

#[test]
fn the_verifier_checks_content_and_validity_window() {
    // The checks after the signature can fail too: a wrong expectation ...
    let p = params();
    let xml = build_signed_assertion(&p, keypair(), false).unwrap();
    let mut expect = expectations(&p);
    expect["audience"] = json!("https://other.example/");
    let error = verify(&xml, &keypair().certificate_pem, &expect).assert_rejected("expectations");
    assert!(error.contains("audience"), "{error}");

    // ... and an assertion whose window has passed, though validly signed.
    let mut p = params();
    p.issue_instant = Some(OffsetDateTime::now_utc() - Duration::hours(1));
    let xml = build_signed_assertion(&p, keypair(), false).unwrap();
    let error =
        verify(&xml, &keypair().certificate_pem, &expectations(&p)).assert_rejected("expectations");
    assert!(error.contains("outside"), "{error}");

    // ... or has not begun.
    let mut p = params();
    p.not_before = Some(OffsetDateTime::now_utc() + Duration::minutes(5));
    let xml = build_signed_assertion(&p, keypair(), false).unwrap();
    verify(&xml, &keypair().certificate_pem, &expectations(&p)).assert_rejected("expectations");
}

#[test]
fn idp_metadata_names_the_signing_certificates() {
    let entity_id = "https://signpost.example/subaccount/1234?x=&<";
    let active = &keypair().certificate_pem;
    let passive = &other_keypair().certificate_pem;
    let metadata = idp_metadata(entity_id, &[active, passive]);
    for cert in [active, passive] {
        let verdict = run_verifier(
            &[
                "metadata",
                "metadata.xml",
                "cert.pem",
                "--entity-id",
                entity_id,
            ],
            &[("metadata.xml", &metadata), ("cert.pem", cert)],
        );
        let out = verdict.assert_ok();
        assert_eq!(out["entity_id"], entity_id);
        assert_eq!(out["signing_certificates"], 2);
    }

    // The metadata of another key pair does not name this certificate.
    let other = idp_metadata(entity_id, &[passive]);
    run_verifier(
        &["metadata", "metadata.xml", "cert.pem"],
        &[("metadata.xml", &other), ("cert.pem", active)],
    )
    .assert_rejected("expectations");
}
