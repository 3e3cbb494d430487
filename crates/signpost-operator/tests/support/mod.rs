//! A real Kubernetes API server (1.20, with etcd) on loopback for the tests, from
//! `../shared/tools/kube-apiserver-run`; stopped on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of the shared test tools: `SIGNPOST_SHARED_TOOLS`, else `../shared/tools` beside
/// the repository.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("SIGNPOST_SHARED_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools"))
}

/// Where `kube-apiserver-build` put the binaries: `SIGNPOST_KUBE_DIR/bin`, default
/// `~/.cache/signpost-kube/bin`.
pub fn kube_bin_dir() -> PathBuf {
    let base = std::env::var_os("SIGNPOST_KUBE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/signpost-kube")
        });
    base.join("bin")
}

#[derive(Debug)]
pub struct KubeApi {
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl KubeApi {
    pub fn start() -> KubeApi {
        let bin = kube_bin_dir();
        assert!(
            bin.join("kube-apiserver").exists() && bin.join("etcd").exists(),
            "no kube-apiserver in {}: run e2e/test (it builds one with ../shared/tools/kube-apiserver-build)",
            bin.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(tools_dir().join("kube-apiserver-run"))
            .arg(dir.path())
            .arg(&bin)
            .output()
            .expect("../shared/tools/kube-apiserver-run");
        assert!(
            out.status.success(),
            "kube-apiserver-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kubeconfig = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        KubeApi { dir, kubeconfig }
    }

    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if let Ok(pids) = std::fs::read_to_string(self.dir.path().join("pids")) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").arg(pid).status();
            }
        }
    }
}
