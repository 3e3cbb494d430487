//! The npm test peers under `e2e/` (the OAuth2 server, SAP's Cloud SDK, the editor's browser
//! driver): `npm ci` in a peer's folder unless its `node_modules` holds every version that its
//! `package.json` pins. An exclusive lock on `<dir>/.npm-ci.lock` (released by the OS even if a
//! test process dies) makes test processes running in parallel install once. A missing `node`
//! or `npm` fails the test with what to install; nothing is skipped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// `<workspace>/e2e/<name>`.
pub fn e2e_dir(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    root.join("e2e").join(name)
}

/// Fails (does not skip) when a tool is missing; `purpose` says which test needs it.
pub fn require(tool: &str, purpose: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{tool} --version` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("`{tool}` is needed for {purpose} ({e}); install Node.js 20+ and npm"),
    }
}

/// The `dependencies` of `dir/package.json` with their pinned versions.
fn pinned(dir: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(dir.join("package.json"))
        .unwrap_or_else(|e| panic!("cannot read {}/package.json: {e}", dir.display()));
    let pkg: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}/package.json is not JSON: {e}", dir.display()));
    pkg["dependencies"]
        .as_object()
        .map(|deps| {
            deps.iter()
                .map(|(name, version)| (name.clone(), version.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The pinned packages that `node_modules` does not hold in their pinned version.
fn missing(dir: &Path) -> Vec<String> {
    pinned(dir)
        .into_iter()
        .filter(|(name, want)| {
            let manifest = dir.join("node_modules").join(name).join("package.json");
            let have = fs::read_to_string(manifest)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["version"].as_str().map(str::to_owned));
            have.as_deref() != Some(want.as_str())
        })
        .map(|(name, want)| format!("{name}@{want}"))
        .collect()
}

/// Makes sure `dir/node_modules` holds what `dir/package.json` pins: `npm ci` under a lock.
pub fn ensure_installed(dir: &Path, purpose: &str) {
    require("node", purpose);
    if missing(dir).is_empty() {
        return;
    }
    require("npm", purpose);
    let lock_path = dir.join(".npm-ci.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if !missing(dir).is_empty() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run `npm ci` in {}: {e}", dir.display()));
        assert!(
            out.status.success(),
            "`npm ci` in {} failed:\n{}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = lock.unlock();
    let still = missing(dir);
    assert!(
        still.is_empty(),
        "`npm ci` in {} did not install {}",
        dir.display(),
        still.join(", ")
    );
}
