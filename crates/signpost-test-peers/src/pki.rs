//! Test certificates made by the real `openssl` CLI: self-signed certificates with their keys,
//! chains, and PKCS#12 keystores, as base64 `Content` for the API.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

/// One certificate with its key, in PEM.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for test certificates: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A self-signed EC P-256 certificate for `CN=<cn>`, valid `days` days.
pub fn self_signed(cn: &str, days: u32) -> Pem {
    let dir = tempfile::tempdir().expect("temp dir");
    let subj = format!("/CN={cn}");
    let days = days.to_string();
    openssl(
        dir.path(),
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            &subj,
            "-days",
            &days,
        ],
    );
    Pem {
        cert: read(dir.path(), "cert.pem"),
        key: read(dir.path(), "key.pem"),
    }
}

/// A PKCS#12 keystore (base64) with the certificate and key of `pem`, under `password`.
pub fn pkcs12(pem: &Pem, password: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("cert.pem"), &pem.cert).expect("write");
    std::fs::write(dir.path().join("key.pem"), &pem.key).expect("write");
    let pass = format!("pass:{password}");
    openssl(
        dir.path(),
        &[
            "pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-out", "ks.p12",
            "-passout", &pass, "-name", "client",
        ],
    );
    b64(&std::fs::read(dir.path().join("ks.p12")).expect("read"))
}

/// Base64 of bytes, as the API's `Content`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `Content` of a PEM certificate (without its key): what a trust store upload holds.
pub fn cert_content(cn: &str) -> String {
    b64(self_signed(cn, 30).cert.as_bytes())
}

/// A test CA, a server certificate for 127.0.0.1 and a client PKCS#12 (with the CA in it),
/// all made by openssl: `(ca_pem, server_cert, server_key, client_p12_base64)`.
pub fn mtls_material(password: &str) -> (String, String, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=mTLS Test CA",
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:true",
    ]);
    run(&a);
    for (name, subj, ext) in [
        (
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:false\nextendedKeyUsage=serverAuth\n",
        ),
        (
            "client",
            "/CN=signpost-client",
            "basicConstraints=CA:false\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        let mut a = vec!["req", "-new"];
        a.extend(ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        a.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
        run(&a);
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "30",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
    let pass = format!("pass:{password}");
    run(&[
        "pkcs12",
        "-export",
        "-in",
        "client.pem",
        "-inkey",
        "client.key",
        "-certfile",
        "ca.pem",
        "-out",
        "client.p12",
        "-passout",
        &pass,
        "-name",
        "client",
    ]);
    let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap();
    let p12 = b64(&std::fs::read(d.join("client.p12")).unwrap());
    (read("ca.pem"), read("server.pem"), read("server.key"), p12)
}
