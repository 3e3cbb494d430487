//! Fixtures made by real tools (`openssl`, Java's `keytool`) in a temporary directory.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub const ROOT_DN: &str = "CN=Signpost Test Root CA,O=Signpost Test,C=DE";
pub const INT_DN: &str = "CN=Signpost Test Intermediate CA,O=Signpost Test,C=DE";
pub const LEAF_DN: &str = "CN=leaf.example.com,OU=Apps,O=Signpost Test,C=DE";

/// A working directory for one test, with helpers to run the tools in it.
pub struct Tools {
    pub dir: tempfile::TempDir,
}

impl Tools {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    pub fn read_string(&self, name: &str) -> String {
        String::from_utf8(self.read(name)).unwrap()
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    /// Run a tool in the directory; panics with its output unless it succeeds.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.try_run(program, args);
        assert!(out.0, "{program} {args:?} failed:\n{}", out.1);
        out.1
    }

    /// Run a tool; (success, stdout + stderr).
    pub fn try_run(&self, program: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (is it installed? keytool: apt-get install default-jre-headless): {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    pub fn openssl(&self, args: &[&str]) -> String {
        self.run("openssl", args)
    }

    pub fn keytool(&self, args: &[&str]) -> String {
        self.run("keytool", args)
    }

    /// A new key pair: `rsa` (2048), `ec` (P-256), `ec384`, `ed25519`.
    fn newkey_args(alg: &str) -> Vec<&'static str> {
        match alg {
            "rsa" => vec!["-newkey", "rsa:2048"],
            "ec" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "ec384" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "ed25519" => vec!["-newkey", "ed25519"],
            other => panic!("unknown algorithm {other}"),
        }
    }

    /// A self-signed root CA `{name}.pem` / `{name}.key`.
    pub fn root(&self, name: &str, alg: &str, subj: &str) {
        let key = format!("{name}.key");
        let cert = format!("{name}.pem");
        let mut args = vec!["req", "-x509", "-noenc"];
        args.extend(Self::newkey_args(alg));
        args.extend([
            "-keyout",
            &key,
            "-out",
            &cert,
            "-subj",
            subj,
            "-days",
            "3650",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        self.openssl(&args);
    }

    /// A certificate `{name}.pem` / `{name}.key` issued by `{issuer}.pem` / `{issuer}.key`.
    pub fn issue(
        &self,
        name: &str,
        alg: &str,
        subj: &str,
        issuer: &str,
        ca: bool,
        extra_ext: &str,
    ) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let cert = format!("{name}.pem");
        let ext = format!("{name}.ext");
        let mut args = vec!["req", "-noenc"];
        args.extend(Self::newkey_args(alg));
        args.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
        self.openssl(&args);
        let mut ext_text = if ca {
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n".to_string()
        } else {
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth,serverAuth\n".to_string()
        };
        ext_text.push_str(extra_ext);
        self.write(&ext, ext_text);
        let ca_cert = format!("{issuer}.pem");
        let ca_key = format!("{issuer}.key");
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "365",
            "-extfile",
            &ext,
        ]);
    }

    /// root → int → leaf, all with `alg`; leaf has DNS and IP subject alternative names.
    pub fn chain(&self, alg: &str) {
        self.root(
            "root",
            alg,
            "/C=DE/O=Signpost Test/CN=Signpost Test Root CA",
        );
        self.issue(
            "int",
            alg,
            "/C=DE/O=Signpost Test/CN=Signpost Test Intermediate CA",
            "root",
            true,
            "",
        );
        self.issue(
            "leaf",
            alg,
            "/C=DE/O=Signpost Test/OU=Apps/CN=leaf.example.com",
            "int",
            false,
            "subjectAltName=DNS:leaf.example.com,IP:10.0.0.1\n",
        );
        let chain = [
            self.read_string("leaf.pem"),
            self.read_string("int.pem"),
            self.read_string("root.pem"),
        ]
        .concat();
        self.write("chain.pem", chain);
        let cas = [self.read_string("int.pem"), self.read_string("root.pem")].concat();
        self.write("cas.pem", cas);
    }

    /// `openssl x509 -noout -<what>` of a PEM certificate file, value after `=`.
    pub fn x509_field(&self, file: &str, what: &[&str]) -> String {
        let mut args = vec!["x509", "-in", file, "-noout"];
        args.extend(what);
        let out = self.openssl(&args);
        out.trim()
            .split_once('=')
            .map(|(_, v)| v.to_string())
            .unwrap_or(out)
    }

    /// The SubjectPublicKeyInfo PEM of a certificate file.
    pub fn cert_pubkey(&self, file: &str) -> String {
        self.openssl(&["x509", "-in", file, "-noout", "-pubkey"])
    }

    /// The SubjectPublicKeyInfo PEM of a private key PEM given as text.
    pub fn key_pubkey(&self, key_pem: &str) -> String {
        let name = format!("k{}.pem", rand_suffix());
        self.write(&name, key_pem);
        self.openssl(&["pkey", "-in", &name, "-pubout"])
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

/// A fresh CA of Signpost's (`CN=Signpost Test CA`) made at `now`, read back from its PEMs as the
/// service loads it.
pub fn ca_at(now: time::OffsetDateTime) -> signpost_certs::ca::CertificateAuthority {
    use secrecy::ExposeSecret as _;
    let material =
        signpost_certs::ca::CertificateAuthority::generate("Signpost Test CA", now).unwrap();
    signpost_certs::ca::CertificateAuthority::from_pem(
        &material.certificate_pem,
        material.private_key_pem.expose_secret(),
    )
    .unwrap()
}
