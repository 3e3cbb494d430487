//! The independent SAML verifier of the tests: Python's `signxml` (lxml + cryptography) through
//! `e2e/saml/verify.py`, installed from `e2e/saml/requirements.txt` on first use.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn verifier() -> PathBuf {
    workspace_root().join("e2e/saml/verify.py")
}

fn deps_ok() -> bool {
    Command::new("python3")
        .arg(verifier())
        .arg("check-deps")
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to verify SAML assertions with signxml: {e}"))
        .status
        .success()
}

/// Makes sure the pinned signxml is importable, installing it once if not.
pub fn ensure_signxml() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        // nextest runs each test in its own process: serialise a possible install across them.
        let lock = File::create(std::env::temp_dir().join("signpost-saml-signxml.lock")).unwrap();
        lock.lock().unwrap();
        if deps_ok() {
            return;
        }
        let requirements = workspace_root().join("e2e/saml/requirements.txt");
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .output()
            .unwrap_or_else(|e| panic!("could not run python3 -m pip: {e}"));
        assert!(
            out.status.success(),
            "signxml is not installed and `python3 -m pip install -r {}` failed; the SAML \
             assertions cannot be verified independently.\nstdout:\n{}\nstderr:\n{}",
            requirements.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            deps_ok(),
            "pip installed {} but the pinned signxml is still not importable",
            requirements.display()
        );
    });
}

/// What verify.py said: its exit code and JSON.
#[derive(Debug)]
pub struct Verdict {
    pub code: i32,
    pub out: Value,
}

impl Verdict {
    pub fn assert_ok(&self) -> &Value {
        assert_eq!(self.code, 0, "signxml rejected the assertion: {}", self.out);
        assert_eq!(self.out["ok"], true);
        &self.out
    }

    pub fn assert_rejected(&self, stage: &str) -> String {
        assert_eq!(self.code, 1, "expected a rejection, got {}", self.out);
        assert_eq!(self.out["ok"], false);
        assert_eq!(self.out["stage"], stage, "{}", self.out);
        self.out["error"].as_str().unwrap().to_owned()
    }
}

pub fn run_verifier(args: &[&str], files: &[(&str, &str)]) -> Verdict {
    ensure_signxml();
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    let out = Command::new("python3")
        .arg(verifier())
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "verify.py printed no JSON ({e}).\nstdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Verdict {
        code: out.status.code().unwrap_or(-1),
        out: parsed,
    }
}

/// Verifies an assertion against a certificate and the expected signed content.
pub fn verify(xml: &str, cert_pem: &str, expect: &Value) -> Verdict {
    run_verifier(
        &[
            "assertion",
            "assertion.xml",
            "cert.pem",
            "--expect",
            "expect.json",
        ],
        &[
            ("assertion.xml", xml),
            ("cert.pem", cert_pem),
            ("expect.json", &expect.to_string()),
        ],
    )
}
