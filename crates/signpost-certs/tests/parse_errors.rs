//! Bad input: empty, random, a PDF, truncated files of every format, wrong passwords, keys without
//! or not matching certificates, unsupported algorithms, and chains with gaps or bad signatures.
#![allow(clippy::unwrap_used)]

mod support;

use signpost_certs::parse::{parse, validate_chain, ChainError, Format, ParseError};
use support::{Tools, INT_DN, LEAF_DN, ROOT_DN};

/// A small deterministic generator (xorshift), so failures reproduce.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn empty_random_and_pdf_are_not_certificates() {
    assert_eq!(parse(b"", None).unwrap_err(), ParseError::Empty);
    assert_eq!(parse(b"", Some("pw")).unwrap_err(), ParseError::Empty);
    let pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n";
    assert_eq!(parse(pdf, None).unwrap_err(), ParseError::NotACertificate);
    assert_eq!(
        parse(b"hello, world\n", Some("x")).unwrap_err(),
        ParseError::NotACertificate
    );
    assert_eq!(
        parse(
            b"-----BEGIN CERTIFICATE REQUEST-----\nMAA=\n-----END CERTIFICATE REQUEST-----\n",
            None
        )
        .unwrap_err(),
        ParseError::NotACertificate
    );
    let err = ParseError::NotACertificate.to_string();
    assert!(
        err.contains("PEM") && err.contains("PKCS#12") && err.contains("JKS"),
        "{err}"
    );

    for seed in 0..2000u64 {
        let len = (seed as usize * 37) % 3000 + 1;
        let mut bytes = random_bytes(seed, len);
        // Also random bytes behind each format's first bytes, so every parser sees garbage.
        match seed % 4 {
            1 => bytes.splice(0..0, [0x30, 0x82, 0x01, 0x00]).for_each(drop),
            2 => bytes
                .splice(0..0, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2])
                .for_each(drop),
            3 => bytes
                .splice(0..0, b"-----BEGIN CERTIFICATE-----\n".iter().copied())
                .for_each(drop),
            _ => {}
        }
        for password in [None, Some("hunter2-xyz")] {
            if let Err(e) = parse(&bytes, password) {
                assert!(!e.to_string().is_empty());
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
        }
    }
}

/// Cut `bytes` at several lengths; each cut must be a clean error.
fn assert_truncations_fail(name: &str, bytes: &[u8], password: Option<&str>, format: Format) {
    let n = bytes.len();
    let mut cuts: Vec<usize> = vec![
        1,
        2,
        3,
        4,
        5,
        8,
        11,
        16,
        50,
        100,
        n / 4,
        n / 3,
        n / 2,
        2 * n / 3,
        n - 20,
        n - 2,
        n - 1,
    ];
    cuts.extend((1..n).step_by((n / 40).max(1)));
    for cut in cuts.into_iter().filter(|c| *c > 0 && *c < n) {
        match parse(&bytes[..cut], password) {
            Err(ParseError::Corrupt { format: f, reason }) => {
                assert_eq!(f, format, "{name} cut at {cut}: {reason}");
                assert!(!reason.is_empty());
            }
            Err(ParseError::NotACertificate) => {
                assert!(cut < 12, "{name} cut at {cut}: NotACertificate")
            }
            // A PEM cut right after an END line is a shorter, valid PEM; a cut PKCS#12 may fail
            // its MAC, which reads as a wrong password.
            Ok(store) => assert_eq!(format, Format::Pem, "{name} cut at {cut} parsed: {store:?}"),
            Err(ParseError::WrongPassword { .. }) if format == Format::Pkcs12 => {}
            Err(other) => panic!("{name} cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn truncated_files_of_every_format_are_corrupt() {
    let t = Tools::new();
    t.chain("rsa");
    t.openssl(&[
        "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
    ]);
    for (file, legacy) in [("modern.p12", false), ("legacy.p12", true)] {
        let mut args = vec!["pkcs12", "-export"];
        if legacy {
            args.push("-legacy");
        }
        args.extend([
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "cas.pem",
            "-passout",
            "pass:secret",
            "-out",
            file,
        ]);
        t.openssl(&args);
    }
    t.keytool(&[
        "-importkeystore",
        "-srckeystore",
        "modern.p12",
        "-srcstoretype",
        "PKCS12",
        "-srcstorepass",
        "secret",
        "-destkeystore",
        "k.jks",
        "-deststoretype",
        "JKS",
        "-deststorepass",
        "secret",
        "-noprompt",
    ]);
    let pem = [t.read("leaf.key"), t.read("chain.pem")].concat();

    assert_truncations_fail("pem", &pem, None, Format::Pem);
    assert_truncations_fail("der", &t.read("leaf.der"), None, Format::Der);
    for password in [None, Some("secret")] {
        assert_truncations_fail(
            "modern.p12",
            &t.read("modern.p12"),
            password,
            Format::Pkcs12,
        );
        assert_truncations_fail(
            "legacy.p12",
            &t.read("legacy.p12"),
            password,
            Format::Pkcs12,
        );
        assert_truncations_fail("jks", &t.read("k.jks"), password, Format::Jks);
    }
    // Cut in the middle of a PEM block: named as such.
    let cut = &pem[..pem.len() - 100];
    let err = parse(cut, None).unwrap_err();
    assert!(err.to_string().contains("no matching END"), "{err}");
    // Trailing garbage after a DER certificate.
    let mut der = t.read("leaf.der");
    der.extend_from_slice(b"garbage");
    assert!(matches!(
        parse(&der, None),
        Err(ParseError::Corrupt {
            format: Format::Der,
            ..
        })
    ));
}

#[test]
fn wrong_passwords_are_reported_per_format() {
    let t = Tools::new();
    t.chain("ec");
    t.openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "leaf.pem",
        "-inkey",
        "leaf.key",
        "-passout",
        "pass:right!",
        "-out",
        "m.p12",
    ]);
    t.openssl(&[
        "pkcs12",
        "-export",
        "-legacy",
        "-in",
        "leaf.pem",
        "-inkey",
        "leaf.key",
        "-passout",
        "pass:right!",
        "-out",
        "l.p12",
    ]);
    t.keytool(&[
        "-importkeystore",
        "-srckeystore",
        "m.p12",
        "-srcstoretype",
        "PKCS12",
        "-srcstorepass",
        "right!",
        "-destkeystore",
        "k.jks",
        "-deststoretype",
        "JKS",
        "-deststorepass",
        "right!",
        "-noprompt",
    ]);
    let enc = t.openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "leaf.key",
        "-passout",
        "pass:right!",
    ]);
    let pem = [enc.into_bytes(), t.read("chain.pem")].concat();
    for (file, bytes, format) in [
        ("m.p12", t.read("m.p12"), Format::Pkcs12),
        ("l.p12", t.read("l.p12"), Format::Pkcs12),
        ("k.jks", t.read("k.jks"), Format::Jks),
        ("enc.pem", pem, Format::Pem),
    ] {
        parse(&bytes, Some("right!")).unwrap_or_else(|e| panic!("{file}: {e}"));
        let err = parse(&bytes, Some("wrong")).unwrap_err();
        assert_eq!(err, ParseError::WrongPassword { format }, "{file}");
        assert!(
            err.to_string().contains("password") && !err.to_string().contains("wrong\""),
            "{err}"
        );
        assert_eq!(
            parse(&bytes, Some("")).unwrap_err(),
            ParseError::WrongPassword { format },
            "{file}"
        );
    }
}

#[test]
fn keys_without_or_not_matching_a_certificate() {
    let t = Tools::new();
    t.chain("rsa");
    assert_eq!(
        parse(&t.read("leaf.key"), None).unwrap_err(),
        ParseError::KeyWithoutCertificate
    );
    // The same key as DER.
    t.openssl(&[
        "pkey",
        "-in",
        "leaf.key",
        "-outform",
        "DER",
        "-out",
        "leaf.key.der",
    ]);
    assert_eq!(
        parse(&t.read("leaf.key.der"), None).unwrap_err(),
        ParseError::KeyWithoutCertificate
    );
    // A PKCS#12 of a key alone.
    t.openssl(&[
        "pkcs12",
        "-export",
        "-nocerts",
        "-inkey",
        "leaf.key",
        "-passout",
        "pass:secret",
        "-out",
        "k.p12",
    ]);
    assert_eq!(
        parse(&t.read("k.p12"), Some("secret")).unwrap_err(),
        ParseError::KeyWithoutCertificate
    );
    // The intermediate's key with the leaf's certificate.
    let pem = [t.read("int.key"), t.read("leaf.pem")].concat();
    assert_eq!(parse(&pem, None).unwrap_err(), ParseError::KeyMismatch);
    let err = ParseError::KeyWithoutCertificate.to_string();
    assert!(err.contains("no certificate"), "{err}");
}

#[test]
fn unsupported_algorithms() {
    let t = Tools::new();
    t.chain("rsa");
    // OpenSSL's legacy PEM encryption.
    let legacy = t.openssl(&[
        "rsa",
        "-in",
        "leaf.key",
        "-traditional",
        "-aes256",
        "-passout",
        "pass:secret",
    ]);
    assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"));
    let err = parse(
        [legacy.into_bytes(), t.read("chain.pem")]
            .concat()
            .as_slice(),
        Some("secret"),
    )
    .unwrap_err();
    assert!(
        matches!(err, ParseError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("Proc-Type"), "{err}");
    // PBES1 encrypted PKCS#8.
    let pbes1 = t.openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "leaf.key",
        "-v1",
        "PBE-SHA1-3DES",
        "-passout",
        "pass:secret",
    ]);
    let err = parse(
        [pbes1.into_bytes(), t.read("chain.pem")]
            .concat()
            .as_slice(),
        Some("secret"),
    )
    .unwrap_err();
    assert!(
        matches!(err, ParseError::UnsupportedAlgorithm(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("PBES2"), "{err}");
}

#[test]
fn a_gap_in_the_chain_names_the_missing_issuer() {
    let t = Tools::new();
    t.chain("rsa");
    // Leaf and root, no intermediate.
    let pem = [t.read("leaf.pem"), t.read("root.pem")].concat();
    let store = parse(&pem, None).unwrap();
    let err = validate_chain(&store).unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: LEAF_DN.into(),
            issuer: INT_DN.into()
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(INT_DN) && msg.contains("not in the file"),
        "{msg}"
    );
    // A leaf alone (DER) and a key with its leaf only.
    t.openssl(&[
        "x509", "-in", "leaf.pem", "-outform", "DER", "-out", "leaf.der",
    ]);
    let err = validate_chain(&parse(&t.read("leaf.der"), None).unwrap()).unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: LEAF_DN.into(),
            issuer: INT_DN.into()
        }
    );
    let err =
        validate_chain(&parse(&[t.read("leaf.key"), t.read("leaf.pem")].concat(), None).unwrap())
            .unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: LEAF_DN.into(),
            issuer: INT_DN.into()
        }
    );
    // Leaf and intermediate: the root is missing.
    let err =
        validate_chain(&parse(&[t.read("leaf.pem"), t.read("int.pem")].concat(), None).unwrap())
            .unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: INT_DN.into(),
            issuer: ROOT_DN.into()
        }
    );
    // A PKCS#12 without the CA certificates.
    t.openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "leaf.pem",
        "-inkey",
        "leaf.key",
        "-passout",
        "pass:secret",
        "-out",
        "l.p12",
    ]);
    let err = validate_chain(&parse(&t.read("l.p12"), Some("secret")).unwrap()).unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: LEAF_DN.into(),
            issuer: INT_DN.into()
        }
    );
}

#[test]
fn a_certificate_signed_by_another_key_under_the_issuer_name_is_a_bad_signature() {
    let t = Tools::new();
    t.chain("ec");
    // An impostor root with the same DN and another key signs a second intermediate.
    t.root(
        "evil",
        "ec",
        "/C=DE/O=Signpost Test/CN=Signpost Test Root CA",
    );
    t.issue(
        "evilint",
        "ec",
        "/C=DE/O=Signpost Test/CN=Evil Intermediate",
        "evil",
        true,
        "",
    );
    let pem = [t.read("evilint.pem"), t.read("root.pem")].concat();
    let store = parse(&pem, None).unwrap();
    let err = validate_chain(&store).unwrap_err();
    assert_eq!(
        err,
        ChainError::BadSignature {
            subject: "CN=Evil Intermediate,O=Signpost Test,C=DE".into(),
            issuer: ROOT_DN.into()
        }
    );
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[test]
fn distinct_variants_have_distinct_messages() {
    let errors = [
        ParseError::Empty,
        ParseError::NotACertificate,
        ParseError::Corrupt {
            format: Format::Jks,
            reason: "x".into(),
        },
        ParseError::WrongPassword {
            format: Format::Pkcs12,
        },
        ParseError::UnsupportedAlgorithm("y".into()),
        ParseError::KeyWithoutCertificate,
        ParseError::KeyMismatch,
    ];
    let messages: std::collections::HashSet<String> =
        errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), errors.len());
}

#[test]
fn too_many_certificates_and_many_chains_sharing_their_cas() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_params = |cn: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params("Many Root").self_signed(&root_key).unwrap();
    let int_key = KeyPair::generate().unwrap();
    let int = ca_params("Many Intermediate")
        .signed_by(&int_key, &root, &root_key)
        .unwrap();
    let mut pem = [root.pem(), int.pem()].concat();
    for i in 0..300 {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec![format!("host{i}.example")]).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, format!("leaf {i}"));
        pem.push_str(&p.signed_by(&key, &int, &int_key).unwrap().pem());
    }
    let started = std::time::Instant::now();
    let store = parse(pem.as_bytes(), None).unwrap();
    assert_eq!(store.entries.len(), 300);
    assert!(store.entries.iter().all(|e| e.chain.len() == 3));
    validate_chain(&store).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let many = root
        .pem()
        .repeat(signpost_certs::parse::MAX_CERTIFICATES + 1);
    assert_eq!(
        parse(many.as_bytes(), None).unwrap_err(),
        ParseError::TooManyCertificates {
            limit: signpost_certs::parse::MAX_CERTIFICATES
        }
    );
}

#[test]
fn pkcs7_bundles_and_ber_are_unsupported_formats() {
    let t = Tools::new();
    t.chain("ec");
    for form in ["PEM", "DER"] {
        let out = format!("chain.p7b.{form}");
        t.openssl(&[
            "crl2pkcs7",
            "-nocrl",
            "-certfile",
            "chain.pem",
            "-outform",
            form,
            "-out",
            &out,
        ]);
        let err = parse(&t.read(&out), None).unwrap_err();
        assert!(
            matches!(err, ParseError::UnsupportedFormat(_)),
            "{form}: {err:?}"
        );
        assert!(err.to_string().contains("PKCS#7"), "{err}");
    }
    let err = parse(&[0x30, 0x80, 0x02, 0x01, 0x03, 0x00, 0x00], None).unwrap_err();
    assert!(matches!(err, ParseError::UnsupportedFormat(_)), "{err:?}");
}
