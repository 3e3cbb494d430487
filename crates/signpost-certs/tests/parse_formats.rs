//! Every supported format, made by openssl and keytool, read by `parse`, with the details view,
//! public keys, client identity and chain validation.
#![allow(clippy::unwrap_used)]

mod support;

use secrecy::ExposeSecret;
use signpost_certs::parse::{
    client_identity_pem, parse, public_keys, validate_chain, EntryKind, Format, ParseError,
    ParsedStore,
};
use support::{Tools, INT_DN, LEAF_DN, ROOT_DN};
use time::OffsetDateTime;

fn subjects(store: &ParsedStore, entry: usize) -> Vec<String> {
    store.entries[entry]
        .chain
        .iter()
        .map(|c| c.subject.clone())
        .collect()
}

/// The key of the (first) private key entry belongs to `cert_file`, as openssl sees it.
fn assert_key_belongs(t: &Tools, store: &ParsedStore, cert_file: &str) {
    let (certs, key) = client_identity_pem(store).expect("a client identity");
    assert!(certs.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(key
        .expose_secret()
        .starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_eq!(t.key_pubkey(key.expose_secret()), t.cert_pubkey(cert_file));
}

#[test]
fn pem_chain_in_any_order_is_one_entry_leaf_to_root_with_the_details_openssl_shows() {
    let t = Tools::new();
    t.chain("rsa");
    // Root first, then leaf, then intermediate.
    let shuffled = [
        t.read_string("root.pem"),
        t.read_string("leaf.pem"),
        t.read_string("int.pem"),
    ]
    .concat();
    let store = parse(shuffled.as_bytes(), None).unwrap();
    assert_eq!(store.format, Format::Pem);
    assert!(!store.locked);
    assert_eq!(store.entries.len(), 1);
    let e = &store.entries[0];
    assert_eq!(e.kind, EntryKind::Certificate);
    assert_eq!(e.alias, None);
    assert!(e.private_key_der.is_none());
    assert_eq!(subjects(&store, 0), [LEAF_DN, INT_DN, ROOT_DN]);
    validate_chain(&store).unwrap();

    let leaf = &e.chain[0];
    assert_eq!(leaf.issuer, INT_DN);
    assert_eq!(leaf.key_algorithm, "RSA");
    assert_eq!(leaf.key_size, Some(2048));
    assert!(!leaf.is_ca);
    assert!(e.chain[1].is_ca && e.chain[2].is_ca);
    assert_eq!(
        leaf.subject_alt_names,
        ["DNS:leaf.example.com", "IP:10.0.0.1"]
    );
    assert_eq!(
        leaf.serial_number,
        t.x509_field("leaf.pem", &["-serial"])
            .trim_start_matches("00")
    );
    assert_eq!(
        leaf.sha256_fingerprint,
        t.x509_field("leaf.pem", &["-fingerprint", "-sha256"])
            .replace(' ', "")
    );
    let openssl_end = t.x509_field("leaf.pem", &["-enddate", "-dateopt", "iso_8601"]);
    let end = leaf.not_after;
    let ours = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
        end.year(),
        u8::from(end.month()),
        end.day(),
        end.hour(),
        end.minute(),
        end.second()
    );
    assert_eq!(ours, openssl_end);
    assert_eq!(leaf.not_after, end);
    let now = OffsetDateTime::now_utc();
    assert!(
        (363..=365).contains(&leaf.days_left(now)),
        "{}",
        leaf.days_left(now)
    );
    assert_eq!(
        leaf.days_left(leaf.not_after + time::Duration::hours(1)),
        -1
    );
    assert_eq!(
        leaf.days_left(leaf.not_after - time::Duration::hours(23)),
        0
    );

    // The details view: the field names of the issue, RFC 3339 times.
    let json = store.details_json(now);
    assert_eq!(json["format"], "PEM");
    assert_eq!(json["locked"], false);
    assert_eq!(json["entries"][0]["kind"], "certificate");
    assert!(json["entries"][0]["alias"].is_null());
    let c = &json["entries"][0]["chain"][0];
    for field in [
        "subject",
        "issuer",
        "serialNumber",
        "notBefore",
        "notAfter",
        "daysLeft",
        "keyAlgorithm",
        "keySize",
        "sha256Fingerprint",
        "subjectAltNames",
        "isCA",
    ] {
        assert!(c.get(field).is_some(), "missing {field} in {c}");
    }
    assert_eq!(c.as_object().unwrap().len(), 11, "{c}");
    assert_eq!(c["subject"], LEAF_DN);
    assert_eq!(c["isCA"], false);
    let not_after = c["notAfter"].as_str().unwrap();
    assert_eq!(
        OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339).unwrap(),
        end
    );

    // SAP's publicKeys: no alias for PEM, the chain as PEM, the leaf's DN.
    let pk = public_keys(&store);
    assert_eq!(pk.len(), 1);
    assert_eq!(pk[0].alias, None);
    assert_eq!(pk[0].subject_dn, LEAF_DN);
    assert_eq!(pk[0].content.matches("BEGIN CERTIFICATE").count(), 3);
    let v = serde_json::to_value(&pk[0]).unwrap();
    assert!(v.get("Alias").is_none() && v["Content"].is_string() && v["SubjectDN"] == LEAF_DN);
    // The PEM openssl reads back is the same leaf.
    t.write("pk.pem", &pk[0].content);
    assert_eq!(
        t.x509_field("pk.pem", &["-fingerprint", "-sha256"]),
        t.x509_field("leaf.pem", &["-fingerprint", "-sha256"])
    );
    assert!(client_identity_pem(&store).is_none());
}

#[test]
fn pem_private_keys_pkcs8_pkcs1_sec1_with_their_chain() {
    let t = Tools::new();
    t.chain("rsa");
    let rsa8 = t.read_string("leaf.key");
    assert!(rsa8.contains("BEGIN PRIVATE KEY"));
    let rsa1 = t.openssl(&["rsa", "-in", "leaf.key", "-traditional"]);
    assert!(rsa1.contains("BEGIN RSA PRIVATE KEY"));
    let t2 = Tools::new();
    t2.chain("ec");
    let sec1 = t2.openssl(&["ec", "-in", "leaf.key"]);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));

    for (tools, key) in [
        (&t, &rsa8),
        (&t, &rsa1),
        (&t2, &sec1),
        (&t2, &t2.read_string("leaf.key")),
    ] {
        // Key after the chain, and with the root before the key: order does not matter.
        let pem = [
            tools.read_string("root.pem"),
            key.clone(),
            tools.read_string("leaf.pem"),
            tools.read_string("int.pem"),
        ]
        .concat();
        let store = parse(pem.as_bytes(), None).unwrap();
        assert_eq!(store.format, Format::Pem);
        assert_eq!(store.entries.len(), 1, "{store:?}");
        let e = &store.entries[0];
        assert_eq!(e.kind, EntryKind::PrivateKey);
        assert_eq!(subjects(&store, 0), [LEAF_DN, INT_DN, ROOT_DN]);
        assert!(e.private_key_der.is_some());
        validate_chain(&store).unwrap();
        assert_key_belongs(tools, &store, "leaf.pem");
        // The key never shows in Debug.
        let debug = format!("{store:?}");
        assert!(debug.contains("REDACTED"), "{debug}");
        let key_der = e.private_key_der.as_ref().unwrap().expose_secret();
        assert!(!debug.contains(&format!("{:?}", &key_der[..16])));
    }
    let ec = parse(t2.read("leaf.pem").as_slice(), None).unwrap();
    assert_eq!(ec.entries[0].chain[0].key_algorithm, "EC");
    assert_eq!(ec.entries[0].chain[0].key_size, Some(256));
}

#[test]
fn pem_encrypted_pkcs8_key_opens_with_the_password_and_is_locked_without() {
    let t = Tools::new();
    t.chain("ec");
    let enc = t.openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        "leaf.key",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "pass:s3cret",
    ]);
    assert!(enc.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let pem = [enc, t.read_string("chain.pem")].concat();

    let open = parse(pem.as_bytes(), Some("s3cret")).unwrap();
    assert!(!open.locked);
    assert_eq!(open.entries.len(), 1);
    assert_key_belongs(&t, &open, "leaf.pem");

    let locked = parse(pem.as_bytes(), None).unwrap();
    assert!(locked.locked);
    assert_eq!(locked.entries[0].kind, EntryKind::PrivateKey);
    assert!(locked.entries[0].private_key_der.is_none());
    assert_eq!(subjects(&locked, 0), [LEAF_DN, INT_DN, ROOT_DN]);
    assert!(client_identity_pem(&locked).is_none());

    assert_eq!(
        parse(pem.as_bytes(), Some("wrong")).unwrap_err(),
        ParseError::WrongPassword {
            format: Format::Pem
        }
    );
}

#[test]
fn der_certificate_and_pem_cer_crt() {
    let t = Tools::new();
    t.chain("rsa");
    t.openssl(&[
        "x509", "-in", "root.pem", "-outform", "DER", "-out", "root.der",
    ]);
    let store = parse(&t.read("root.der"), None).unwrap();
    assert_eq!(store.format, Format::Der);
    assert_eq!(subjects(&store, 0), [ROOT_DN]);
    assert_eq!(store.entries[0].kind, EntryKind::Certificate);
    validate_chain(&store).unwrap();
    // A PEM .crt of one root.
    let pem = parse(&t.read("root.pem"), None).unwrap();
    assert_eq!(pem.format, Format::Pem);
    assert_eq!(pem.entries[0].chain[0].der, store.entries[0].chain[0].der);
}

#[test]
fn pkcs12_modern_and_legacy_from_openssl() {
    let t = Tools::new();
    t.chain("rsa");
    let base = [
        "-export",
        "-in",
        "leaf.pem",
        "-inkey",
        "leaf.key",
        "-certfile",
        "cas.pem",
        "-name",
        "My Key",
    ];
    let mut modern = vec!["pkcs12"];
    modern.extend(base);
    modern.extend(["-passout", "pass:s3cret", "-out", "modern.p12"]);
    t.openssl(&modern);
    let mut legacy = vec!["pkcs12", "-legacy"];
    legacy.extend(base);
    legacy.extend(["-passout", "pass:s3cret", "-out", "legacy.p12"]);
    t.openssl(&legacy);
    assert!(t
        .run(
            "openssl",
            &[
                "pkcs12",
                "-in",
                "legacy.p12",
                "-info",
                "-noout",
                "-passin",
                "pass:s3cret",
                "-legacy"
            ]
        )
        .contains("RC2"));
    assert!(t
        .run(
            "openssl",
            &[
                "pkcs12",
                "-in",
                "modern.p12",
                "-info",
                "-noout",
                "-passin",
                "pass:s3cret"
            ]
        )
        .contains("AES-256-CBC"));

    for file in ["modern.p12", "legacy.p12"] {
        let bytes = t.read(file);
        let store = parse(&bytes, Some("s3cret")).unwrap();
        assert_eq!(store.format, Format::Pkcs12, "{file}");
        assert!(!store.locked);
        assert_eq!(store.entries.len(), 1, "{file}: {store:?}");
        let e = &store.entries[0];
        assert_eq!(e.kind, EntryKind::PrivateKey);
        assert_eq!(e.alias.as_deref(), Some("My Key"));
        assert_eq!(subjects(&store, 0), [LEAF_DN, INT_DN, ROOT_DN]);
        validate_chain(&store).unwrap();
        assert_key_belongs(&t, &store, "leaf.pem");
        let pk = public_keys(&store);
        assert_eq!(pk[0].alias.as_deref(), Some("My Key"));
        assert_eq!(pk[0].content.matches("BEGIN CERTIFICATE").count(), 3);

        // Without the password: kept, locked, and nothing readable (the certificates are encrypted).
        let locked = parse(&bytes, None).unwrap();
        assert!(locked.locked, "{file}");
        assert!(locked.entries.iter().all(|e| e.private_key_der.is_none()));
        assert!(locked.certificates().next().is_none(), "{file}: {locked:?}");
        validate_chain(&locked).unwrap();
        assert_eq!(
            parse(&bytes, Some("wrong")).unwrap_err(),
            ParseError::WrongPassword {
                format: Format::Pkcs12
            },
            "{file}"
        );
    }

    // Certificates left unencrypted (-certpbe NONE): listed without the password, key closed.
    let mut plain_certs = vec!["pkcs12"];
    plain_certs.extend(base);
    plain_certs.extend([
        "-certpbe",
        "NONE",
        "-passout",
        "pass:s3cret",
        "-out",
        "plain-certs.p12",
    ]);
    t.openssl(&plain_certs);
    let locked = parse(&t.read("plain-certs.p12"), None).unwrap();
    assert!(locked.locked);
    assert_eq!(locked.entries.len(), 1, "{locked:?}");
    assert_eq!(locked.entries[0].kind, EntryKind::PrivateKey);
    assert_eq!(locked.entries[0].alias.as_deref(), Some("My Key"));
    assert!(locked.entries[0].private_key_der.is_none());
    assert_eq!(subjects(&locked, 0), [LEAF_DN, INT_DN, ROOT_DN]);
    validate_chain(&locked).unwrap();

    // A certificate-only PKCS#12 (a trust store made by openssl).
    t.openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        "cas.pem",
        "-passout",
        "pass:s3cret",
        "-out",
        "cas.p12",
    ]);
    let cas = parse(&t.read("cas.p12"), Some("s3cret")).unwrap();
    assert_eq!(cas.entries.len(), 1, "{cas:?}");
    assert_eq!(cas.entries[0].kind, EntryKind::Certificate);
    assert_eq!(subjects(&cas, 0), [INT_DN, ROOT_DN]);
    validate_chain(&cas).unwrap();
}

#[test]
fn pkcs12_from_keytool_key_pair_and_trust_store() {
    let t = Tools::new();
    t.keytool(&[
        "-genkeypair",
        "-alias",
        "client",
        "-keyalg",
        "EC",
        "-groupname",
        "secp384r1",
        "-dname",
        "CN=keytool client,O=Signpost Test,C=DE",
        "-validity",
        "30",
        "-storetype",
        "PKCS12",
        "-keystore",
        "client.p12",
        "-storepass",
        "changeit",
    ]);
    let store = parse(&t.read("client.p12"), Some("changeit")).unwrap();
    assert_eq!(store.format, Format::Pkcs12);
    assert_eq!(store.entries.len(), 1);
    let e = &store.entries[0];
    assert_eq!(e.kind, EntryKind::PrivateKey);
    assert_eq!(e.alias.as_deref(), Some("client"));
    assert_eq!(e.chain[0].subject, "CN=keytool client,O=Signpost Test,C=DE");
    assert_eq!(
        (e.chain[0].key_algorithm.as_str(), e.chain[0].key_size),
        ("EC", Some(384))
    );
    validate_chain(&store).unwrap();
    t.keytool(&[
        "-exportcert",
        "-rfc",
        "-alias",
        "client",
        "-keystore",
        "client.p12",
        "-storepass",
        "changeit",
        "-file",
        "client.pem",
    ]);
    assert_key_belongs(&t, &store, "client.pem");
    assert_eq!(
        parse(&t.read("client.p12"), Some("nope")).unwrap_err(),
        ParseError::WrongPassword {
            format: Format::Pkcs12
        }
    );

    // keytool's PKCS#12 trust store: trusted certificate entries.
    t.chain("rsa");
    for (alias, file) in [("root", "root.pem"), ("int", "int.pem")] {
        t.keytool(&[
            "-importcert",
            "-noprompt",
            "-alias",
            alias,
            "-file",
            file,
            "-storetype",
            "PKCS12",
            "-keystore",
            "trust.p12",
            "-storepass",
            "changeit",
        ]);
    }
    let trust = parse(&t.read("trust.p12"), Some("changeit")).unwrap();
    assert_eq!(trust.entries.len(), 2);
    assert!(trust
        .entries
        .iter()
        .all(|e| e.kind == EntryKind::TrustedCertificate));
    let mut aliases: Vec<_> = trust
        .entries
        .iter()
        .map(|e| e.alias.clone().unwrap())
        .collect();
    aliases.sort();
    assert_eq!(aliases, ["int", "root"]);
    validate_chain(&trust).unwrap();
    assert_eq!(
        trust.details_json(OffsetDateTime::now_utc())["entries"][0]["kind"],
        "trustedCertificate"
    );
}

#[test]
fn ed25519_and_p384_certificates() {
    let t = Tools::new();
    t.root("ed", "ed25519", "/CN=Ed Root");
    t.issue("edleaf", "ed25519", "/CN=Ed Leaf", "ed", false, "");
    let pem = [
        t.read_string("edleaf.key"),
        t.read_string("edleaf.pem"),
        t.read_string("ed.pem"),
    ]
    .concat();
    let store = parse(pem.as_bytes(), None).unwrap();
    assert_eq!(store.entries.len(), 1);
    assert_eq!(store.entries[0].chain[0].key_algorithm, "Ed25519");
    assert_eq!(store.entries[0].chain[0].key_size, Some(255));
    validate_chain(&store).unwrap();
    assert_key_belongs(&t, &store, "edleaf.pem");

    t.root("p384", "ec384", "/CN=P384 Root");
    let store = parse(&t.read("p384.pem"), None).unwrap();
    assert_eq!(store.entries[0].chain[0].key_size, Some(384));
    validate_chain(&store).unwrap();
}

#[test]
fn a_bundle_of_ca_certificates_is_one_entry_per_ca() {
    let t = Tools::new();
    t.root("a", "rsa", "/CN=Root A");
    t.root("b", "ec", "/CN=Root B");
    let pem = [t.read_string("a.pem"), t.read_string("b.pem")].concat();
    let store = parse(pem.as_bytes(), None).unwrap();
    assert_eq!(store.entries.len(), 2);
    assert_eq!(subjects(&store, 0), ["CN=Root A"]);
    assert_eq!(subjects(&store, 1), ["CN=Root B"]);
    validate_chain(&store).unwrap();
}

#[test]
fn text_around_pem_blocks_and_other_blocks_are_ignored() {
    let t = Tools::new();
    t.chain("ec");
    t.openssl(&[
        "pkcs12",
        "-export",
        "-in",
        "leaf.pem",
        "-inkey",
        "leaf.key",
        "-certfile",
        "cas.pem",
        "-passout",
        "pass:x",
        "-out",
        "x.p12",
    ]);
    // openssl's dump: "Bag Attributes", "subject=" lines around every block.
    let dump = t.openssl(&["pkcs12", "-in", "x.p12", "-passin", "pass:x", "-noenc"]);
    assert!(dump.contains("Bag Attributes"));
    let csr = t.read_string("leaf.csr");
    let store = parse([dump, csr].concat().as_bytes(), None).unwrap();
    assert_eq!(store.entries.len(), 1, "{store:?}");
    assert_eq!(subjects(&store, 0), [LEAF_DN, INT_DN, ROOT_DN]);
    assert_key_belongs(&t, &store, "leaf.pem");
}

#[test]
fn rsa_pss_chain_verifies() {
    let t = Tools::new();
    t.openssl(&[
        "req",
        "-x509",
        "-noenc",
        "-newkey",
        "rsa-pss",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-keyout",
        "pss.key",
        "-out",
        "pss.pem",
        "-subj",
        "/CN=PSS Root",
        "-days",
        "30",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
        "-sha256",
    ]);
    t.openssl(&[
        "req",
        "-noenc",
        "-newkey",
        "rsa:1024",
        "-keyout",
        "small.key",
        "-out",
        "small.csr",
        "-subj",
        "/CN=Small",
    ]);
    t.openssl(&[
        "x509",
        "-req",
        "-in",
        "small.csr",
        "-CA",
        "pss.pem",
        "-CAkey",
        "pss.key",
        "-out",
        "small.pem",
        "-days",
        "10",
        "-sigopt",
        "rsa_padding_mode:pss",
        "-sigopt",
        "rsa_pss_saltlen:32",
        "-sha256",
    ]);
    let pem = [t.read_string("small.pem"), t.read_string("pss.pem")].concat();
    let store = parse(pem.as_bytes(), None).unwrap();
    assert_eq!(subjects(&store, 0), ["CN=Small", "CN=PSS Root"]);
    assert_eq!(store.entries[0].chain[1].key_algorithm, "RSASSA-PSS");
    assert_eq!(store.entries[0].chain[0].key_size, Some(1024));
    validate_chain(&store).unwrap();

    // A 1024-bit RSA root signing with SHA-256 (below ring's minimum for that algorithm).
    t.openssl(&[
        "req",
        "-x509",
        "-noenc",
        "-newkey",
        "rsa:1024",
        "-keyout",
        "old.key",
        "-out",
        "old.pem",
        "-subj",
        "/CN=Old Root",
        "-days",
        "30",
        "-sha256",
    ]);
    t.openssl(&[
        "x509",
        "-req",
        "-in",
        "small.csr",
        "-CA",
        "old.pem",
        "-CAkey",
        "old.key",
        "-out",
        "small2.pem",
        "-days",
        "10",
        "-sha512",
    ]);
    let pem = [t.read_string("small2.pem"), t.read_string("old.pem")].concat();
    let store = parse(pem.as_bytes(), None).unwrap();
    assert_eq!(subjects(&store, 0), ["CN=Small", "CN=Old Root"]);
    validate_chain(&store).unwrap();
}
