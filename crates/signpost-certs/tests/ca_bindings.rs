//! X.509 binding credentials from Signpost's CA, checked by the real `openssl`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use secrecy::ExposeSecret as _;
use signpost_certs::ca::{CaError, CertificateAuthority, TimeUnit, Validity, X509BindingParams};
use time::{Duration, OffsetDateTime};

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Self {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap()
    }

    fn openssl(&self, args: &[&str]) -> String {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

fn ca_at(now: OffsetDateTime, cn: &str) -> (CertificateAuthority, String) {
    let material = CertificateAuthority::generate(cn, now).unwrap();
    let ca = CertificateAuthority::from_pem(
        &material.certificate_pem,
        material.private_key_pem.expose_secret(),
    )
    .unwrap();
    (ca, material.private_key_pem.expose_secret().to_owned())
}

fn pem_to_der(work: &Work, pem: &str) -> Vec<u8> {
    work.write("in.pem", pem);
    work.openssl(&[
        "x509", "-in", "in.pem", "-outform", "DER", "-out", "out.der",
    ]);
    work.read("out.der")
}

#[test]
fn xsuaa_parameters_parse_with_defaults() {
    let p: X509BindingParams =
        serde_json::from_str(r#"{"key-length": 4096, "validity": 3, "validity-type": "MONTHS"}"#)
            .unwrap();
    assert_eq!(p.key_length, 4096);
    assert_eq!(p.validity(), Validity::months(3));
    let d: X509BindingParams = serde_json::from_str("{}").unwrap();
    assert_eq!(d, X509BindingParams::default());
    assert_eq!(
        (d.key_length, d.validity, d.validity_type),
        (2048, 7, TimeUnit::Days)
    );
}

#[test]
fn generated_client_certificate_verifies_and_is_recognised() {
    let work = Work::new();
    let t = OffsetDateTime::now_utc();
    let (ca, _) = ca_at(t, "Signpost Test CA");
    work.write("ca.pem", ca.certificate_pem());
    let params = X509BindingParams::default();
    let cred = ca
        .issue_client_certificate("sb-binding-1234", params.key_length, params.validity(), t)
        .unwrap();

    // `certificate` is client then CA.
    let chain = &cred.certificate_chain_pem;
    assert_eq!(chain.matches("-----BEGIN CERTIFICATE-----").count(), 2);
    assert!(chain.ends_with(ca.certificate_pem()));
    work.write("chain.pem", chain);
    assert_eq!(
        work.openssl(&[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslclient",
            "chain.pem"
        ])
        .trim(),
        "chain.pem: OK"
    );
    let info = work.openssl(&[
        "x509",
        "-in",
        "chain.pem",
        "-noout",
        "-subject",
        "-serial",
        "-fingerprint",
        "-sha256",
        "-ext",
        "extendedKeyUsage",
        "-nameopt",
        "RFC2253",
    ]);
    assert!(info.contains("subject=CN=sb-binding-1234\n"), "{info}");
    assert!(
        info.contains(&format!("serial={}\n", cred.serial_hex)),
        "{info}"
    );
    assert!(info.contains("TLS Web Client Authentication"), "{info}");
    assert!(
        info.contains(&format!("sha256 Fingerprint={}\n", cred.sha256_fingerprint)),
        "{info}"
    );
    assert_eq!(
        cred.not_after - cred.not_before,
        Duration::days(7) + Duration::minutes(5)
    );

    // `key` is PKCS#1 RSA-2048, like XSUAA's, and pairs with the certificate.
    let key = cred.private_key_pem.expose_secret();
    assert!(
        key.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "unexpected key format"
    );
    work.write("key.pem", key);
    let key_pub = work.openssl(&["pkey", "-in", "key.pem", "-pubout"]);
    let cert_pub = work.openssl(&["x509", "-in", "chain.pem", "-noout", "-pubkey"]);
    assert_eq!(key_pub, cert_pub);
    let text = work.openssl(&["x509", "-in", "chain.pem", "-noout", "-text"]);
    assert!(text.contains("Public-Key: (2048 bit)"), "{text}");
    assert!(!format!("{cred:?}").contains("PRIVATE"));

    // The presented certificate is recognised at the mTLS listener...
    let der = pem_to_der(&work, chain);
    assert_eq!(der, cred.certificate_der);
    assert!(ca.verify_client_certificate(&der, t));
    assert!(ca.verify_client_certificate(&der, t + Duration::days(6)));
    // ... but not once expired, nor before its validity.
    assert!(!ca.verify_client_certificate(&der, t + Duration::days(8)));
    assert!(!ca.verify_client_certificate(&der, t - Duration::hours(1)));
    // The CA certificate itself is not a client certificate.
    assert!(!ca.verify_client_certificate(ca.certificate_der(), t));
    // Garbage and truncated input.
    assert!(!ca.verify_client_certificate(b"garbage", t));
    assert!(!ca.verify_client_certificate(&der[..der.len() / 2], t));
    let mut tampered = der.clone();
    let last = tampered.len() - 40;
    tampered[last] ^= 0x01;
    assert!(!ca.verify_client_certificate(&tampered, t));
}

#[test]
fn certificates_from_other_issuers_are_not_recognised() {
    let work = Work::new();
    let t = OffsetDateTime::now_utc();
    let (ca, _) = ca_at(t, "Signpost Test CA");
    // Another Signpost CA with the very same subject DN: same issuer name, other key.
    let (impostor, _) = ca_at(t, "Signpost Test CA");
    let foreign = impostor
        .issue_client_certificate("sb-binding-1234", 2048, Validity::days(7), t)
        .unwrap();
    assert!(impostor.verify_client_certificate(&foreign.certificate_der, t));
    assert!(!ca.verify_client_certificate(&foreign.certificate_der, t));

    // A self-signed openssl certificate claiming the CA's name.
    work.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "k.pem",
        "-out",
        "self.pem",
        "-days",
        "1",
        "-subj",
        "/O=Signpost/CN=Signpost Test CA",
    ]);
    let pem = String::from_utf8(work.read("self.pem")).unwrap();
    let der = pem_to_der(&work, &pem);
    assert!(!ca.verify_client_certificate(&der, t));
}

#[test]
fn binding_parameters_are_validated() {
    let t = OffsetDateTime::now_utc();
    let (ca, _) = ca_at(t, "Signpost Test CA");
    let err = ca
        .issue_client_certificate("sb-1", 1024, Validity::days(7), t)
        .unwrap_err();
    assert!(
        matches!(err, CaError::UnsupportedKeySize { bits: 1024 }),
        "{err}"
    );
    let err = ca
        .issue_client_certificate("sb-1", 2048, Validity::years(3), t)
        .unwrap_err();
    assert!(matches!(err, CaError::InvalidValidity { .. }), "{err}");
    let err = ca
        .issue_client_certificate("", 2048, Validity::days(7), t)
        .unwrap_err();
    assert!(matches!(err, CaError::EmptyCommonName), "{err}");
}
