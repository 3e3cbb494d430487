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
