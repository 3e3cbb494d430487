//! The proxy under test: the real `signpost-proxy` binary on free loopback ports, with its
//! configuration written to a temporary directory and its log kept for inspection.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `signpost-proxy`; killed on drop.
#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    pub admin: u16,
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub client: reqwest::Client,
}

impl Proxy {
    /// The config file's path in this proxy's directory.
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("config.yaml")
    }

    /// Starts the binary with `config` (YAML) and `args`, and waits for `/healthz`.
    pub async fn start(config: &str, args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Self::config_path(dir.path()), config).unwrap();
        Self::start_in(dir, args).await
    }

    /// Starts the binary with the `config.yaml` already in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Proxy {
        Self::start_in_env(dir, args, &[]).await
    }

    /// Like [`Proxy::start`], with extra environment variables.
    pub async fn start_env(config: &str, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Self::config_path(dir.path()), config).unwrap();
        Self::start_in_env(dir, args, env).await
    }

    /// Starts the binary without waiting for it: for a start that is to fail.
    pub async fn start_failing(config: &str, args: &[&str]) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(Self::config_path(dir.path()), config).unwrap();
        Self::spawn_in_env(dir, args, &[])
    }

    async fn start_in_env(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let mut proxy = Self::spawn_in_env(dir, args, env);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut attempts = 0;
        loop {
            if let Some(status) = proxy.child.as_mut().unwrap().try_wait().unwrap() {
                let log = proxy.log();
                // A port picked as free was taken in between: again, on other ports.
                if log.contains("Address already in use") && attempts < 3 {
                    attempts += 1;
                    let dir = std::mem::replace(&mut proxy.dir, tempfile::tempdir().unwrap());
                    drop(proxy);
                    proxy = Self::spawn_in_env(dir, args, env);
                    continue;
                }
                panic!("signpost-proxy exited with {status}: {log}");
            }
            if let Ok(r) = proxy.client.get(proxy.admin_url("/healthz")).send().await {
                if r.status() == 200 {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the proxy did not start: {}",
                proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy
    }

    fn spawn_in_env(dir: tempfile::TempDir, args: &[&str], env: &[(&str, &str)]) -> Proxy {
        let port = free_port();
        let admin = free_port();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_signpost-proxy"))
            .arg("--config")
            .arg(Self::config_path(dir.path()))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--reload-interval-ms", "200"])
            .args(args)
            .env(
                "SIGNPOST_LOG",
                "debug,hyper=info,reqwest=info,h2=info,rustls=info",
            )
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .envs(env.iter().copied())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Proxy {
            port,
            admin,
            dir,
            child: Some(child),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// The text of an admin page.
    pub async fn admin_text(&self, path: &str) -> String {
        let res = self.client.get(self.admin_url(path)).send().await.unwrap();
        res.text().await.unwrap()
    }

    /// The status and JSON of an admin page.
    pub async fn admin_json(&self, path: &str) -> (u16, Value) {
        let res = self.client.get(self.admin_url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// A request through the proxy for `host`.
    pub fn req(&self, method: reqwest::Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Host", host)
    }

    /// GET through the proxy; the status and the body as JSON (null when not JSON).
    pub async fn get_json(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.req(reqwest::Method::GET, host, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let h = res.headers().clone();
        let body = res.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
            h,
        )
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to end.
    pub async fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmHWM:")
    }

    /// Current resident memory (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Writes a Kubernetes-style secret mount: `<root>/<ns>/<name>/..<stamp>/<key>` files, a `..data`
/// symlink to the stamp directory and one symlink per key through `..data`.
pub fn write_secret(root: &Path, namespace: &str, name: &str, keys: &[(&str, &str)]) {
    let dir = root.join(namespace).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let stamp = format!("..{}", uuid_like());
    let data = dir.join(&stamp);
    std::fs::create_dir_all(&data).unwrap();
    for (k, v) in keys {
        std::fs::write(data.join(k), v).unwrap();
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (k, _) in keys {
        let link = dir.join(k);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{k}"), &link).unwrap();
        }
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "2026_11_29_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A workload speaking HTTP/1.1 over one raw connection: for what a client library hides
/// (pipelining, one connection across several requests, the exact answer head).
#[derive(Debug)]
pub struct Raw {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// An answer as [`Raw`] read it: header names lowercase, the body de-chunked.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Raw {
    pub async fn connect(port: u16) -> Raw {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false at the end of the connection.
    async fn more(&mut self) -> bool {
        use tokio::io::AsyncReadExt as _;
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(20), self.stream.read(&mut chunk))
            .await
            .expect("the proxy answers within 20 s")
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..p].to_vec()).unwrap();
                self.buf.drain(..p + 2);
                return line;
            }
            assert!(self.more().await, "the connection ended mid-line");
        }
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.more().await, "the connection ended mid-body");
        }
        self.buf.drain(..n).collect()
    }

    /// True when the proxy closed the connection (nothing more to read).
    pub async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.more().await
    }

    /// The next answer; `head_request`: it has no body.
    pub async fn answer(&mut self, head_request: bool) -> RawAnswer {
        let status_line = self.line().await;
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status: u16 = parts.next().unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (n, v) = line.split_once(':').unwrap();
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
        let mut answer = RawAnswer {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 {
            return answer;
        }
        if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = self.line().await;
                let size =
                    usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
                if size == 0 {
                    while !self.line().await.is_empty() {}
                    break;
                }
                let data = self.take(size).await;
                answer.body.extend_from_slice(&data);
                assert_eq!(self.take(2).await, b"\r\n");
            }
        } else if let Some(n) = answer.header("content-length") {
            let n: usize = n.parse().unwrap();
            answer.body = self.take(n).await;
        } else {
            while self.more().await {}
            answer.body = std::mem::take(&mut self.buf);
        }
        answer
    }
}
