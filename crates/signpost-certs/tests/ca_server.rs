//! The HTTPS listener's certificates from Signpost's CA: names, key usage, validity and chain
//! checked by x509-parser and by the real `openssl verify` (host name and IP checks, purpose
//! `sslserver`), and the renewal decision.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use secrecy::ExposeSecret as _;
use signpost_certs::ca::{
    server_certificate_renewal_due, CaError, ServerCertificate, SubjectAltName,
    CLOCK_SKEW_ALLOWANCE, SERVER_CERTIFICATE_RENEW_BEFORE, SERVER_CERTIFICATE_VALIDITY,
};
use support::{ca_at, Tools};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer as _, X509Certificate};

fn dns(name: &str) -> SubjectAltName {
    SubjectAltName::Dns(name.to_owned())
}

fn ip(addr: impl Into<IpAddr>) -> SubjectAltName {
    SubjectAltName::Ip(addr.into())
}

/// What `signpost serve` asks for with `--public-url https://signpost.example.com`.
fn listener_names() -> Vec<SubjectAltName> {
    vec![
        dns("signpost.example.com"),
        dns("localhost"),
        ip(Ipv4Addr::LOCALHOST),
    ]
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn pem(der: &[u8]) -> String {
    signpost_certs::pem::encode("CERTIFICATE", der)
}

#[test]
fn a_server_certificate_names_its_hosts_and_is_for_server_auth() {
    let now = OffsetDateTime::now_utc();
    let ca = ca_at(now - Duration::days(1));
    let issued = ca.issue_server_certificate(&listener_names(), now).unwrap();
    let cert = parse(&issued.certificate_der);

    // Subject and issuer.
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["signpost.example.com"]);
    let ca_cert = parse(ca.certificate_der());
    assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
    cert.verify_signature(Some(ca_cert.public_key())).unwrap();

    // DNS names as DNS names, the address as an IP address, nothing else.
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert!(!san.critical);
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(b) => format!("IP:{b:?}"),
            other => format!("other:{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "DNS:signpost.example.com",
            "DNS:localhost",
            "IP:[127, 0, 0, 1]"
        ]
    );

    // A leaf for TLS servers only.
    assert!(!cert.is_ca());
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth, "{eku:?}");
    assert!(!eku.client_auth && !eku.any, "{eku:?}");
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign(), "{ku:?}");
    let oids: Vec<String> = cert
        .extensions()
        .iter()
        .map(|e| e.oid.to_id_string())
        .collect();
    for (oid, what) in [
        ("2.5.29.14", "subject key identifier"),
        ("2.5.29.35", "authority key identifier"),
    ] {
        assert!(oids.iter().any(|o| o == oid), "{what} missing: {oids:?}");
    }

    // 90 days from the moment of issue (to the second), the start a little before.
    let start = now.replace_nanosecond(0).unwrap();
    assert_eq!(issued.not_before, start - CLOCK_SKEW_ALLOWANCE);
    assert_eq!(issued.not_after, start + SERVER_CERTIFICATE_VALIDITY);
    assert_eq!(SERVER_CERTIFICATE_VALIDITY, Duration::days(90));
    assert_eq!(
        cert.validity().not_before.timestamp(),
        issued.not_before.unix_timestamp()
    );
    assert_eq!(
        cert.validity().not_after.timestamp(),
        issued.not_after.unix_timestamp()
    );
    assert_eq!(issued.serial_hex, hex::encode_upper(cert.raw_serial()));
}

#[test]
fn openssl_verifies_the_chain_for_each_name_and_refuses_others() {
    let work = Tools::new();
    let now = OffsetDateTime::now_utc();
    let ca = ca_at(now - Duration::days(1));
    let issued = ca.issue_server_certificate(&listener_names(), now).unwrap();
    work.write("ca.pem", ca.certificate_pem());
    work.write("leaf.pem", pem(&issued.certificate_der));
    let verify = |check: &[&str]| {
        let mut args = vec!["verify", "-CAfile", "ca.pem", "-purpose", "sslserver"];
        args.extend_from_slice(check);
        args.push("leaf.pem");
        work.try_run("openssl", &args)
    };
    for check in [
        ["-verify_hostname", "signpost.example.com"],
        ["-verify_hostname", "localhost"],
        ["-verify_ip", "127.0.0.1"],
    ] {
        let (ok, out) = verify(&check);
        assert!(ok && out.contains("leaf.pem: OK"), "{check:?}: {out}");
    }
    for check in [
        ["-verify_hostname", "other.example.com"],
        ["-verify_hostname", "example.com"],
        ["-verify_ip", "127.0.0.2"],
        ["-verify_ip", "::1"],
    ] {
        let (ok, out) = verify(&check);
        assert!(!ok, "{check:?} should not verify: {out}");
    }
    // Not a client certificate, and not trusted without the CA.
    let (ok, out) = work.try_run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "ca.pem",
            "-purpose",
            "sslclient",
            "leaf.pem",
        ],
    );
    assert!(!ok, "{out}");
    let other = ca_at(now - Duration::days(1));
    work.write("other-ca.pem", other.certificate_pem());
    let (ok, out) = work.try_run(
        "openssl",
        &["verify", "-CAfile", "other-ca.pem", "leaf.pem"],
    );
    assert!(!ok, "{out}");

    // The key is the certificate's (PKCS#8, EC P-256).
    work.write("key.der", issued.private_key_pkcs8_der.expose_secret());
    let (ok, from_key) = work.try_run(
        "openssl",
        &["pkey", "-inform", "DER", "-in", "key.der", "-pubout"],
    );
    assert!(ok, "{from_key}");
    let (ok, from_cert) =
        work.try_run("openssl", &["x509", "-in", "leaf.pem", "-noout", "-pubkey"]);
    assert!(ok, "{from_cert}");
    assert_eq!(from_key, from_cert);
    let (ok, text) = work.try_run("openssl", &["x509", "-in", "leaf.pem", "-noout", "-text"]);
    assert!(ok && text.contains("prime256v1"), "{text}");
}

#[test]
fn ip_only_and_ipv6_names_and_duplicates() {
    let now = OffsetDateTime::now_utc();
    let ca = ca_at(now - Duration::days(1));
    let names = [
        ip(Ipv4Addr::new(10, 1, 2, 3)),
        dns("localhost"),
        ip(Ipv4Addr::LOCALHOST),
        ip(Ipv6Addr::LOCALHOST),
        dns("localhost"),
        ip(Ipv4Addr::LOCALHOST),
    ];
    let issued = ca.issue_server_certificate(&names, now).unwrap();
    let cert = parse(&issued.certificate_der);
    let cn: Vec<&str> = cert
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["10.1.2.3"]);
    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let mut v6 = [0u8; 16];
    v6[15] = 1;
    assert_eq!(
        san.general_names,
        [
            GeneralName::IPAddress(&[10, 1, 2, 3]),
            GeneralName::DNSName("localhost"),
            GeneralName::IPAddress(&[127, 0, 0, 1]),
            GeneralName::IPAddress(&v6),
        ]
    );
    assert!(matches!(
        ca.issue_server_certificate(&[], now),
        Err(CaError::NoServerNames)
    ));
}

#[test]
fn hosts_of_urls_become_dns_names_or_addresses() {
    for (host, expect) in [
        ("signpost.example.com", dns("signpost.example.com")),
        ("Signpost.Example.COM.", dns("signpost.example.com")),
        ("signpost", dns("signpost")),
        ("dest-1.svc.cluster.local", dns("dest-1.svc.cluster.local")),
        ("localhost", dns("localhost")),
        ("127.0.0.1", ip(Ipv4Addr::LOCALHOST)),
        ("192.168.10.5", ip(Ipv4Addr::new(192, 168, 10, 5))),
        ("[::1]", ip(Ipv6Addr::LOCALHOST)),
        ("::1", ip(Ipv6Addr::LOCALHOST)),
        ("[fd00::17]", ip("fd00::17".parse::<Ipv6Addr>().unwrap())),
    ] {
        assert_eq!(SubjectAltName::from_host(host).unwrap(), expect, "{host}");
    }
    for bad in [
        "",
        ".",
        "[signpost]",
        "[::1",
        "a..b",
        "-a.example.com",
        "a-.example.com",
        "under_score.example.com",
        "*.example.com",
        "bücher.example",
        "1.2.3",
        "999.1.1.1",
        "host:8443",
        &"a".repeat(64),
        &format!("{}.com", "a.".repeat(126)),
    ] {
        match SubjectAltName::from_host(bad) {
            Err(CaError::InvalidServerName { name }) => assert_eq!(name, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    assert_eq!(dns("localhost").to_string(), "DNS:localhost");
    assert_eq!(ip(Ipv6Addr::LOCALHOST).to_string(), "IP:::1");
    assert_eq!(ip(Ipv6Addr::LOCALHOST).name(), "::1");
}

#[test]
fn the_validity_stays_within_the_cas() {
    let t0 = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let ca = ca_at(t0);
    // Ten days before the CA ends: the certificate ends with it.
    let late = ca.not_after() - Duration::days(10);
    let issued = ca
        .issue_server_certificate(&listener_names(), late)
        .unwrap();
    assert_eq!(issued.not_after, ca.not_after());
    assert!(matches!(
        ca.issue_server_certificate(&listener_names(), ca.not_after() + Duration::seconds(1)),
        Err(CaError::CaExpiresTooSoon { .. })
    ));
    assert!(matches!(
        ca.issue_server_certificate(&listener_names(), t0 - Duration::days(1)),
        Err(CaError::CaNotYetValid { .. })
    ));
}

#[test]
fn renewal_is_due_with_thirty_days_left() {
    assert_eq!(SERVER_CERTIFICATE_RENEW_BEFORE, Duration::days(30));
    let now = OffsetDateTime::now_utc();
    let ca = ca_at(now - Duration::days(1));
    let first = ca.issue_server_certificate(&listener_names(), now).unwrap();
    let due_at = first.not_after - Duration::days(30);
    assert!(!server_certificate_renewal_due(first.not_after, now));
    assert!(!server_certificate_renewal_due(
        first.not_after,
        now + Duration::days(59)
    ));
    assert!(!server_certificate_renewal_due(
        first.not_after,
        due_at - Duration::seconds(1)
    ));
    assert!(server_certificate_renewal_due(first.not_after, due_at));
    assert!(server_certificate_renewal_due(
        first.not_after,
        first.not_after + Duration::days(1)
    ));

    // Renewed at the due moment: a new key and serial, 90 days from then, not due again.
    let second = ca
        .issue_server_certificate(&listener_names(), due_at)
        .unwrap();
    assert_ne!(second.serial_hex, first.serial_hex);
    assert_ne!(
        parse(&second.certificate_der).public_key().raw,
        parse(&first.certificate_der).public_key().raw
    );
    assert!(second.not_after > first.not_after);
    assert!(!server_certificate_renewal_due(second.not_after, due_at));
}

#[test]
fn debug_shows_no_key() {
    let now = OffsetDateTime::now_utc();
    let ca = ca_at(now - Duration::days(1));
    let issued: ServerCertificate = ca.issue_server_certificate(&listener_names(), now).unwrap();
    let shown = format!("{issued:?}");
    let key = issued.private_key_pkcs8_der.expose_secret();
    assert!(!shown.contains(&hex::encode(key)), "{shown}");
    assert!(!shown.contains(&format!("{key:?}")), "{shown}");
    assert!(shown.contains(&issued.serial_hex), "{shown}");
}
