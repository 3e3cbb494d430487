//! Runs the real `signpost` binary as a CLI: a temp `XDG_CONFIG_HOME` and `HOME`, a clean
//! `SIGNPOST_*` and proxy environment, no standard input; exit code, stdout and stderr.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// One CLI user: its own configuration directory and a work directory for files.
#[derive(Debug)]
pub struct Cli {
    home: TempDir,
    pub work: TempDir,
}

/// What one run gave.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts exit code 0 and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "expected success; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        &self.stdout
    }

    /// Asserts the exit code and that stderr contains `message`.
    #[track_caller]
    pub fn fails(&self, code: i32, message: &str) {
        assert_eq!(
            self.code, code,
            "exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        assert!(
            self.stderr.contains(message),
            "stderr should contain {message:?}:\n{}",
            self.stderr
        );
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl Cli {
    pub fn new() -> Self {
        Self {
            home: TempDir::new().unwrap(),
            work: TempDir::new().unwrap(),
        }
    }

    /// `$XDG_CONFIG_HOME/signpost`.
    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("config").join("signpost")
    }

    /// Writes `contents` to a file in the work directory and returns its path as a string.
    pub fn file(&self, name: &str, contents: &str) -> String {
        let path = self.work.path().join(name);
        fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy().to_ascii_uppercase();
            if k.starts_with("SIGNPOST_") || k.ends_with("_PROXY") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .args(args)
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("HOME", self.home.path())
            .envs(env.iter().copied())
            .current_dir(self.work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}
