//! The real Kubernetes tools for tests: `helm` and `kubectl`, and a real kube-apiserver (1.20, with
//! etcd) on loopback, started by the shared tool `kube-apiserver-run` in a temporary directory and
//! stopped on drop. Only the API server runs (no pods, no controllers): enough for server-side dry
//! runs, `helm install` and an operator's custom resources.
//!
//! Where the tools are:
//! - `SIGNPOST_KUBE_DIR` (default `~/.cache/signpost-kube`): `bin/helm`, `bin/kubectl`,
//!   `bin/kube-apiserver`, `bin/etcd`, as `kube-apiserver-build` and `helm-kubectl-install` put them;
//! - `SIGNPOST_SHARED_TOOLS` (default `../shared/tools` beside the workspace): `kube-apiserver-run`.
//!
//! `e2e/test` builds and installs them when they are missing. A test that needs a tool that is not
//! there fails and says so: it never passes without having run.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const KUBE_DIR_VAR: &str = "SIGNPOST_KUBE_DIR";
const SHARED_TOOLS_VAR: &str = "SIGNPOST_SHARED_TOOLS";

/// What a tool printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with the tool's stderr unless it succeeded; `what` names the call.
    #[track_caller]
    pub fn expect_ok(self, what: &str) -> Run {
        assert!(
            self.success(),
            "{what} failed ({}):\n{}\n{}",
            self.status,
            self.stderr,
            self.stdout
        );
        self
    }
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The text of a Secret's `data` value (base64, as `kubectl get -o yaml` and `helm template` show it).
#[track_caller]
pub fn secret_text(value: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value)
        .unwrap_or_else(|e| panic!("a Secret's data value that is not base64: {e}"));
    String::from_utf8(bytes).expect("a Secret's data value that is not UTF-8")
}

/// `helm`, `kubectl` and the API server's binaries and start script, found or reported missing.
#[derive(Debug, Clone)]
pub struct KubeTools {
    /// The directory of `helm`, `kubectl`, `kube-apiserver` and `etcd`.
    pub bin: PathBuf,
    /// The directory of `kube-apiserver-run`.
    pub shared_tools: PathBuf,
}

impl KubeTools {
    /// The tools' places (whether they exist is checked when one is used).
    pub fn locate() -> KubeTools {
        let kube_dir = match std::env::var_os(KUBE_DIR_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                Path::new(&home).join(".cache/signpost-kube")
            }
        };
        let shared_tools = match std::env::var_os(SHARED_TOOLS_VAR) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => {
                let dir = workspace_root().join("../shared/tools");
                dir.canonicalize().unwrap_or(dir)
            }
        };
        KubeTools {
            bin: kube_dir.join("bin"),
            shared_tools,
        }
    }

    /// The tools, after checking that `helm` and `kubectl` are there.
    #[track_caller]
    pub fn find() -> KubeTools {
        let tools = Self::locate();
        tools.require(&tools.bin.join("helm"));
        tools.require(&tools.bin.join("kubectl"));
        tools
    }

    #[track_caller]
    fn require(&self, path: &Path) {
        assert!(
            path.is_file(),
            "{} is missing: run e2e/test, which builds and installs the Kubernetes tools \
             ({}/kube-apiserver-build and helm-kubectl-install), or point {KUBE_DIR_VAR} \
             (binaries in <dir>/bin) and {SHARED_TOOLS_VAR} at them",
            path.display(),
            self.shared_tools.display()
        );
    }

    /// Runs `helm args...` without a cluster (lint, template).
    pub fn helm(&self, args: &[&str]) -> Run {
        run(self.bin.join("helm"), args, None)
    }

    /// Runs `kubectl args...` against the cluster of `kubeconfig`.
    pub fn kubectl(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        run(self.bin.join("kubectl"), args, Some(kubeconfig))
    }

    /// Runs `helm args...` against the cluster of `kubeconfig`.
    pub fn helm_on(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        run(self.bin.join("helm"), args, Some(kubeconfig))
    }
}

fn run(program: PathBuf, args: &[&str], kubeconfig: Option<&Path>) -> Run {
    let mut cmd = Command::new(&program);
    cmd.args(args).stdin(Stdio::null());
    match kubeconfig {
        Some(path) => cmd.env("KUBECONFIG", path),
        // No cluster: nothing the developer's own kubeconfig names is touched.
        None => cmd.env("KUBECONFIG", "/dev/null"),
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running etcd and kube-apiserver on free loopback ports; both stopped on drop.
#[derive(Debug)]
pub struct ApiServer {
    /// A kubeconfig of the cluster admin (`system:masters`), namespace `default`.
    pub kubeconfig: PathBuf,
    pub tools: KubeTools,
    pids: Vec<u32>,
    _dir: tempfile::TempDir,
}

impl ApiServer {
    /// Starts etcd and the API server (about 3 seconds) and waits until it is ready.
    #[track_caller]
    pub fn start() -> ApiServer {
        let tools = KubeTools::find();
        for bin in ["kube-apiserver", "etcd"] {
            tools.require(&tools.bin.join(bin));
        }
        let script = tools.shared_tools.join("kube-apiserver-run");
        tools.require(&script);
        let dir = tempfile::Builder::new()
            .prefix("signpost-kube-")
            .tempdir()
            .expect("temp dir");
        let run_dir = dir.path().join("run");
        let out = Command::new(&script)
            .arg(&run_dir)
            .arg(&tools.bin)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let pids = read_pids(&run_dir);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = PathBuf::from(stdout.trim());
        let server = ApiServer {
            kubeconfig,
            tools,
            pids,
            _dir: dir,
        };
        assert!(
            out.status.success() && server.kubeconfig.is_file(),
            "kube-apiserver-run failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(run_dir.join("apiserver.log")).unwrap_or_default()
        );
        server
    }

    /// Runs `kubectl args...` against this server.
    pub fn kubectl(&self, args: &[&str]) -> Run {
        self.tools.kubectl(&self.kubeconfig, args)
    }

    /// Runs `helm args...` against this server.
    pub fn helm(&self, args: &[&str]) -> Run {
        self.tools.helm_on(&self.kubeconfig, args)
    }
}

fn read_pids(run_dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(run_dir.join("pids"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether a process runs (a zombie does not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // The API server first, then etcd (the order of the pids file is etcd, apiserver).
        for pid in self.pids.iter().rev() {
            let _ = Command::new("kill")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.pids.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for &pid in &self.pids {
            if alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
