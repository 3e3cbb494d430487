//! JKS round trips with Java's keytool: keystores keytool made, read here; keystores written here,
//! read by keytool (`-list -v`, `-importkeystore` to PKCS#12) and by openssl after that.
#![allow(clippy::unwrap_used)]

mod support;

use secrecy::ExposeSecret;
use signpost_certs::jks::{JksEntry, JksError, Keystore};
use signpost_certs::parse::{
    client_identity_pem, parse, validate_chain, ChainError, EntryKind, Format, ParseError,
};
use support::{Tools, INT_DN, LEAF_DN, ROOT_DN};
use time::OffsetDateTime;

fn genkeypair(t: &Tools, file: &str, alias: &str, alg: &[&str], storepass: &str, keypass: &str) {
    let mut args = vec!["-genkeypair", "-alias", alias];
    args.extend(alg);
    args.extend([
        "-dname",
        "CN=keytool key,OU=Java,O=Signpost Test,C=DE",
        "-validity",
        "30",
        "-storetype",
        "JKS",
        "-keystore",
        file,
        "-storepass",
        storepass,
        "-keypass",
        keypass,
    ]);
    t.keytool(&args);
}

#[test]
fn keytool_jks_is_read_with_and_without_the_password() {
    let t = Tools::new();
    genkeypair(
        &t,
        "k.jks",
        "rsakey",
        &["-keyalg", "RSA", "-keysize", "2048"],
        "changeit",
        "changeit",
    );
    genkeypair(
        &t,
        "k.jks",
        "eckey",
        &["-keyalg", "EC", "-groupname", "secp256r1"],
        "changeit",
        "changeit",
    );
    t.chain("rsa");
    t.keytool(&[
        "-importcert",
        "-noprompt",
        "-alias",
        "MyRoot",
        "-file",
        "root.pem",
        "-storetype",
        "JKS",
        "-keystore",
        "k.jks",
        "-storepass",
        "changeit",
    ]);
    let bytes = t.read("k.jks");
    assert_eq!(&bytes[..4], &[0xfe, 0xed, 0xfe, 0xed]);

    // The low-level reader.
    let ks = Keystore::from_bytes(&bytes, Some("changeit")).unwrap();
    assert!(ks.integrity_checked());
    assert_eq!(ks.entries.len(), 3);
    let mut aliases: Vec<&str> = ks.entries.iter().map(JksEntry::alias).collect();
    aliases.sort();
    assert_eq!(aliases, ["eckey", "myroot", "rsakey"]); // Java lower-cases aliases
    for e in &ks.entries {
        if let JksEntry::PrivateKey(k) = e {
            assert_eq!(k.chain.len(), 1);
            assert!(k.created_millis > 1_600_000_000_000);
            assert!(k.decrypt_key("changeit").is_ok());
            assert!(matches!(
                k.decrypt_key("wrong"),
                Err(JksError::WrongKeyPassword { .. })
            ));
        }
    }
    assert_eq!(
        Keystore::from_bytes(&bytes, Some("wrong")).unwrap_err(),
        JksError::WrongPassword
    );

    // parse(): with the password, keys open; each belongs to its certificate (as openssl sees it).
    let store = parse(&bytes, Some("changeit")).unwrap();
    assert_eq!(store.format, Format::Jks);
    assert!(!store.locked);
    assert_eq!(store.entries.len(), 3);
    for e in &store.entries {
        let alias = e.alias.as_deref().unwrap();
        match alias {
            "rsakey" | "eckey" => {
                assert_eq!(e.kind, EntryKind::PrivateKey);
                assert_eq!(
                    e.chain[0].subject,
                    "CN=keytool key,OU=Java,O=Signpost Test,C=DE"
                );
                let one = signpost_certs::parse::ParsedStore {
                    format: store.format,
                    locked: false,
                    entries: vec![e.clone()],
                };
                let (certs, key) = client_identity_pem(&one).unwrap();
                t.write("c.pem", &certs);
                assert_eq!(t.key_pubkey(key.expose_secret()), t.cert_pubkey("c.pem"));
                let expected = if alias == "rsakey" {
                    ("RSA", Some(2048))
                } else {
                    ("EC", Some(256))
                };
                assert_eq!(
                    (e.chain[0].key_algorithm.as_str(), e.chain[0].key_size),
                    expected
                );
            }
            "myroot" => {
                assert_eq!(e.kind, EntryKind::TrustedCertificate);
                assert_eq!(e.chain[0].subject, ROOT_DN);
            }
            other => panic!("unexpected alias {other}"),
        }
    }
    validate_chain(&store).unwrap();

    // Without the password: locked, certificates readable, keys closed.
    let locked = parse(&bytes, None).unwrap();
    assert!(locked.locked);
    assert_eq!(locked.entries.len(), 3);
    assert!(locked
        .entries
        .iter()
        .all(|e| e.private_key_der.is_none() && e.chain.len() == 1));
    assert!(client_identity_pem(&locked).is_none());
    validate_chain(&locked).unwrap();

    // With a wrong one: an error.
    assert_eq!(
        parse(&bytes, Some("wrong")).unwrap_err(),
        ParseError::WrongPassword {
            format: Format::Jks
        }
    );
}

#[test]
fn a_key_password_other_than_the_store_password_is_reported() {
    let t = Tools::new();
    genkeypair(
        &t,
        "k.jks",
        "k",
        &["-keyalg", "RSA", "-keysize", "2048"],
        "storepass",
        "otherkeypass",
    );
    let err = parse(&t.read("k.jks"), Some("storepass")).unwrap_err();
    assert_eq!(err, ParseError::KeyPassword { alias: "k".into() });
    assert!(err.to_string().contains("'k'"));
    // The keystore itself is fine without the password.
    assert!(parse(&t.read("k.jks"), None).unwrap().locked);
}

#[test]
fn keytool_jks_with_a_ca_signed_chain() {
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
        "-name",
        "client",
        "-passout",
        "pass:secret",
        "-out",
        "c.p12",
    ]);
    t.keytool(&[
        "-importkeystore",
        "-srckeystore",
        "c.p12",
        "-srcstoretype",
        "PKCS12",
        "-srcstorepass",
        "secret",
        "-destkeystore",
        "c.jks",
        "-deststoretype",
        "JKS",
        "-deststorepass",
        "secret",
        "-noprompt",
    ]);
    let store = parse(&t.read("c.jks"), Some("secret")).unwrap();
    assert_eq!(store.entries.len(), 1);
    let e = &store.entries[0];
    assert_eq!(e.alias.as_deref(), Some("client"));
    let subjects: Vec<_> = e.chain.iter().map(|c| c.subject.as_str()).collect();
    assert_eq!(subjects, [LEAF_DN, INT_DN, ROOT_DN]);
    validate_chain(&store).unwrap();
    let (_, key) = client_identity_pem(&store).unwrap();
    assert_eq!(t.key_pubkey(key.expose_secret()), t.cert_pubkey("leaf.pem"));
}

fn pem_der(t: &Tools, file: &str) -> Vec<u8> {
    let store = parse(&t.read(file), None).unwrap();
    store.entries[0].chain[0].der.clone()
}

#[test]
fn our_jks_is_read_by_keytool_and_converts_to_pkcs12() {
    let t = Tools::new();
    t.chain("rsa");
    let key_store = parse(&[t.read("leaf.key"), t.read("leaf.pem")].concat(), None).unwrap();
    let pkcs8 = key_store.entries[0]
        .private_key_der
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_vec();
    let chain = vec![
        pem_der(&t, "leaf.pem"),
        pem_der(&t, "int.pem"),
        pem_der(&t, "root.pem"),
    ];
    let now = OffsetDateTime::now_utc();
    let mut ks = Keystore::new();
    ks.add_private_key("Client-Ü", &pkcs8, "s3cret", chain.clone(), now)
        .unwrap();
    ks.add_trusted_certificate("root", chain[2].clone(), now)
        .unwrap();
    assert_eq!(
        ks.add_trusted_certificate("ROOT", chain[2].clone(), now)
            .unwrap_err(),
        JksError::DuplicateAlias("root".into())
    );
    let bytes = ks.to_bytes("s3cret").unwrap();
    t.write("ours.jks", &bytes);

    let list = t.keytool(&[
        "-list",
        "-v",
        "-keystore",
        "ours.jks",
        "-storepass",
        "s3cret",
        "-storetype",
        "JKS",
    ]);
    assert!(list.contains("Your keystore contains 2 entries"), "{list}");
    assert!(list.contains("Alias name: client-ü"), "{list}");
    assert!(list.contains("Entry type: PrivateKeyEntry"), "{list}");
    assert!(list.contains("Certificate chain length: 3"), "{list}");
    assert!(list.contains("Entry type: trustedCertEntry"), "{list}");
    assert!(
        list.contains("Owner: CN=leaf.example.com, OU=Apps, O=Signpost Test, C=DE"),
        "{list}"
    );
    let short = t.keytool(&[
        "-list",
        "-keystore",
        "ours.jks",
        "-storepass",
        "s3cret",
        "-storetype",
        "JKS",
    ]);
    assert!(short.contains("PrivateKeyEntry"), "{short}");
    // keytool checks the integrity digest: a wrong password fails.
    let (ok, out) = t.try_run(
        "keytool",
        &[
            "-list",
            "-keystore",
            "ours.jks",
            "-storepass",
            "wrong!",
            "-storetype",
            "JKS",
        ],
    );
    assert!(!ok, "{out}");

    // keytool decrypts our key protection: -importkeystore to PKCS#12, which openssl reads.
    t.keytool(&[
        "-importkeystore",
        "-srckeystore",
        "ours.jks",
        "-srcstoretype",
        "JKS",
        "-srcstorepass",
        "s3cret",
        "-destkeystore",
        "ours.p12",
        "-deststoretype",
        "PKCS12",
        "-deststorepass",
        "s3cret",
        "-noprompt",
    ]);
    let key = t.openssl(&[
        "pkcs12",
        "-in",
        "ours.p12",
        "-passin",
        "pass:s3cret",
        "-nocerts",
        "-noenc",
    ]);
    assert_eq!(t.key_pubkey(&key), t.cert_pubkey("leaf.pem"));
    let p12 = parse(&t.read("ours.p12"), Some("s3cret")).unwrap();
    assert!(p12
        .entries
        .iter()
        .any(|e| e.kind == EntryKind::PrivateKey && e.chain.len() == 3));
    assert!(p12
        .entries
        .iter()
        .any(|e| e.kind == EntryKind::TrustedCertificate));

    // And we read it back.
    let back = parse(&bytes, Some("s3cret")).unwrap();
    assert_eq!(back.entries.len(), 2);
    assert_eq!(back.entries[0].alias.as_deref(), Some("client-ü"));
    assert_eq!(
        back.entries[0]
            .private_key_der
            .as_ref()
            .unwrap()
            .expose_secret(),
        pkcs8.as_slice()
    );
    validate_chain(&back).unwrap();
}

#[test]
fn keytool_jks_round_trips_through_our_reader_and_writer() {
    let t = Tools::new();
    genkeypair(
        &t,
        "k.jks",
        "first",
        &["-keyalg", "Ed25519"],
        "changeit",
        "changeit",
    );
    genkeypair(
        &t,
        "k.jks",
        "second",
        &["-keyalg", "RSA", "-keysize", "3072"],
        "changeit",
        "changeit",
    );
    let ks = Keystore::from_bytes(&t.read("k.jks"), Some("changeit")).unwrap();
    // Rewrite with a new store password (keys keep their protection).
    let bytes = ks.to_bytes("newpass").unwrap();
    t.write("re.jks", &bytes);
    let list = t.keytool(&[
        "-list",
        "-v",
        "-keystore",
        "re.jks",
        "-storepass",
        "newpass",
        "-storetype",
        "JKS",
    ]);
    assert!(
        list.contains("Alias name: first") && list.contains("Alias name: second"),
        "{list}"
    );
    assert!(list.contains("Ed25519"), "{list}");
    t.keytool(&[
        "-importkeystore",
        "-srckeystore",
        "re.jks",
        "-srcstoretype",
        "JKS",
        "-srcstorepass",
        "newpass",
        "-srckeypass",
        "changeit",
        "-srcalias",
        "second",
        "-destkeystore",
        "re.p12",
        "-deststoretype",
        "PKCS12",
        "-deststorepass",
        "changeit",
        "-noprompt",
    ]);
    let p12 = parse(&t.read("re.p12"), Some("changeit")).unwrap();
    assert_eq!(p12.entries[0].chain[0].key_size, Some(3072));
    // The same entries come back.
    assert_eq!(
        Keystore::from_bytes(&bytes, Some("newpass"))
            .unwrap()
            .entries,
        ks.entries
    );
    let ed = parse(&t.read("k.jks"), Some("changeit")).unwrap();
    let first = ed
        .entries
        .iter()
        .find(|e| e.alias.as_deref() == Some("first"))
        .unwrap();
    assert_eq!(first.chain[0].key_algorithm, "Ed25519");
}

#[test]
fn jks_trust_store_and_chain_order() {
    let t = Tools::new();
    t.chain("ec");
    let now = OffsetDateTime::now_utc();
    let (leaf, int, root) = (
        pem_der(&t, "leaf.pem"),
        pem_der(&t, "int.pem"),
        pem_der(&t, "root.pem"),
    );

    // A trust store of the intermediate alone: it does not chain to a root in the file.
    let mut ks = Keystore::new();
    ks.add_trusted_certificate("int", int.clone(), now).unwrap();
    let store = parse(&ks.to_bytes("pw").unwrap(), Some("pw")).unwrap();
    let err = validate_chain(&store).unwrap_err();
    assert_eq!(
        err,
        ChainError::MissingIssuer {
            subject: INT_DN.into(),
            issuer: ROOT_DN.into()
        }
    );
    // With the root as well, it does.
    ks.add_trusted_certificate("root", root.clone(), now)
        .unwrap();
    validate_chain(&parse(&ks.to_bytes("pw").unwrap(), Some("pw")).unwrap()).unwrap();

    // A key entry whose chain is out of order.
    let pkcs8 = parse(&[t.read("leaf.key"), t.read("leaf.pem")].concat(), None)
        .unwrap()
        .entries[0]
        .private_key_der
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_vec();
    let mut ks = Keystore::new();
    ks.add_private_key(
        "k",
        &pkcs8,
        "pw",
        vec![leaf.clone(), root.clone(), int.clone()],
        now,
    )
    .unwrap();
    let store = parse(&ks.to_bytes("pw").unwrap(), Some("pw")).unwrap();
    assert_eq!(
        validate_chain(&store).unwrap_err(),
        ChainError::NotIssuedByNext {
            subject: LEAF_DN.into(),
            next: ROOT_DN.into()
        }
    );
    // A key entry with the leaf only, whose CAs are trusted entries of the same file: complete.
    let mut ks = Keystore::new();
    ks.add_private_key("k", &pkcs8, "pw", vec![leaf.clone()], now)
        .unwrap();
    ks.add_trusted_certificate("int", int, now).unwrap();
    ks.add_trusted_certificate("root", root, now).unwrap();
    validate_chain(&parse(&ks.to_bytes("pw").unwrap(), Some("pw")).unwrap()).unwrap();
    // The leaf alone: the intermediate is missing.
    let mut ks = Keystore::new();
    ks.add_private_key("k", &pkcs8, "pw", vec![leaf], now)
        .unwrap();
    let err = validate_chain(&parse(&ks.to_bytes("pw").unwrap(), Some("pw")).unwrap()).unwrap_err();
    assert!(err.to_string().contains(INT_DN), "{err}");
}

#[test]
fn jceks_is_an_unsupported_format() {
    let t = Tools::new();
    t.keytool(&[
        "-genkeypair",
        "-alias",
        "k",
        "-keyalg",
        "EC",
        "-dname",
        "CN=x",
        "-storetype",
        "JCEKS",
        "-keystore",
        "k.jceks",
        "-storepass",
        "changeit",
        "-keypass",
        "changeit",
    ]);
    let err = parse(&t.read("k.jceks"), Some("changeit")).unwrap_err();
    assert!(matches!(err, ParseError::UnsupportedFormat(_)), "{err:?}");
    assert!(err.to_string().contains("JCEKS"));
}
