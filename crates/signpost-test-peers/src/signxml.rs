//! The independent SAML verifier of the tests: Python's `signxml` (lxml + cryptography) through
//! `e2e/saml/verify.py`, run by the Python of the virtual environment `e2e/saml/.venv` (Debian's
//! own `python3` refuses system-wide `pip install`). On first use the environment is made with
//! `python3 -m venv` (Debian: `apt-get install python3-venv`) and `e2e/saml/requirements.txt`
//! installed into it, as `e2e/test` does.

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

/// `e2e/saml/.venv`.
pub fn venv() -> PathBuf {
    workspace_root().join("e2e/saml/.venv")
}

/// The virtual environment's Python, which runs verify.py.
pub fn python() -> PathBuf {
    venv().join("bin/python")
}

fn deps_ok() -> bool {
    python().exists()
        && Command::new(python())
            .arg(verifier())
            .arg("check-deps")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn run_ok(cmd: &mut Command, what: &str, hint: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}; {hint}"));
    assert!(
        out.status.success(),
        "{what} failed; {hint}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure the pinned signxml is importable by [`python`], making the virtual environment and
/// installing it once if not.
pub fn ensure_signxml() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        // nextest runs each test in its own process: serialise a possible install across them.
        let lock = File::create(std::env::temp_dir().join("signpost-saml-signxml.lock")).unwrap();
        lock.lock().unwrap();
        if deps_ok() {
            return;
        }
        let venv = venv();
        let requirements = workspace_root().join("e2e/saml/requirements.txt");
        // `--clear`: a broken environment (e.g. made by a Python that is gone) is made anew.
        run_ok(
            Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv),
            &format!("`python3 -m venv {}`", venv.display()),
            "the SAML assertions are verified with signxml in a virtual environment: install \
             python3 with its venv module (Debian: apt-get install python3-venv) or run e2e/test",
        );
        run_ok(
            Command::new(python())
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
            &format!(
                "`{} -m pip install -r {}`",
                python().display(),
                requirements.display()
            ),
            "signxml could not be installed into the virtual environment (is the package index \
             reachable?)",
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
    let out = Command::new(python())
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
