//! Runs the real `signpost` binary for process-level tests: a free loopback port, a data
//! directory, captured stderr, `/healthz` polling, SIGTERM, and broker/token helpers.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use signpost_store::MasterKey;
use tempfile::TempDir;

pub const BROKER_USER: &str = "process-broker";
pub const BROKER_PASSWORD: &str = "process-broker-password";

/// How long a server may take to answer `/healthz` or to exit.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(25);

/// The workspace root (`crates/signpost/../..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Takes the proxy variables out of `cmd`'s environment: the test peers' servers are on loopback.
pub fn without_proxies(cmd: &mut Command) -> &mut Command {
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "http_proxy",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    cmd
}

/// A plain HTTP client that never goes through a proxy.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// An HTTPS client that trusts the PEM certificate at `cert`.
pub fn https_client(cert: &Path) -> reqwest::Client {
    let pem = fs::read(cert).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// A self-signed certificate (not a CA) for IP 127.0.0.1, made with the `openssl` CLI:
/// returns `(cert.pem, key.pem)` inside `dir`.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg("ec_paramgen_curve:prime256v1")
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("the openssl CLI is needed to make a test certificate: {e}"));
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// How to start one server process.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    /// Extra arguments after `serve --listen .. --data-dir ..`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Set `SIGNPOST_BROKER_USER`/`_PASSWORD` to [`BROKER_USER`]/[`BROKER_PASSWORD`].
    pub broker_env: bool,
    /// Also start an HTTPS listener on a free port with this `(cert, key)`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Also start an HTTPS listener on a free port with a certificate from the built-in CA
    /// (`--tls-listen` alone; the CA is then in [`ServerProcess::ca_file`]).
    pub builtin_tls: bool,
    /// Listen on this port (e.g. a restart on the port of the previous run) instead of a free one.
    pub port: Option<u16>,
}

impl ServerOptions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            broker_env: true,
            tls: None,
            builtin_tls: false,
            port: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn without_broker_env(mut self) -> Self {
        self.broker_env = false;
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.to_owned(), key.to_owned()));
        self
    }

    pub fn builtin_tls(mut self) -> Self {
        self.builtin_tls = true;
        self
    }
}

/// A `signpost` command with a clean `SIGNPOST_*` environment, stdout written next to stderr and stderr
/// written to `stderr`.
fn command(args: &[String], env: &[(String, String)], stderr: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signpost"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SIGNPOST_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(fs::File::create(stderr.with_extension("stdout")).unwrap())
        .stderr(fs::File::create(stderr).unwrap());
    cmd
}

/// Runs `signpost <args>` to its end (it must exit within the startup timeout): exit status and
/// stderr. For configurations the server refuses.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let logs = TempDir::new().unwrap();
    let stderr = logs.path().join("stderr.log");
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut child = command(&args, &env, &stderr).spawn().unwrap();
    let status = wait_timeout(&mut child, STARTUP_TIMEOUT);
    let text = fs::read_to_string(&stderr).unwrap_or_default();
    match status {
        Some(status) => (status, text),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("signpost {args:?} did not exit; stderr:\n{text}");
        }
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// One running `signpost serve`. Killed (SIGKILL) on drop if still running.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub port: u16,
    /// Port of the HTTPS listener, if any.
    pub tls_port: Option<u16>,
    pub data_dir: PathBuf,
    pub broker_user: String,
    pub broker_password: String,
    pub client: reqwest::Client,
    stderr_path: PathBuf,
    _logs: TempDir,
    exit: Option<ExitStatus>,
    /// `SIGNPOST_MASTER_KEY` when the test set it (else the data directory's `master.key`).
    master_key: Option<String>,
    /// `--database-url` or `SIGNPOST_DATABASE_URL` when the test gave one (PostgreSQL).
    database_url: Option<String>,
}

/// Why a start did not give a healthy server.
#[derive(Debug)]
pub enum StartError {
    /// The process exited; its status and stderr.
    Exited(ExitStatus, String),
    /// `/healthz` did not answer in time; stderr.
    Timeout(String),
}

impl ServerProcess {
    /// Starts a server and waits for `/healthz`; panics (with stderr) if it does not come up.
    pub async fn start(opts: ServerOptions) -> Self {
        match Self::try_start(opts).await {
            Ok(server) => server,
            Err(StartError::Exited(status, stderr)) => {
                panic!("signpost exited during startup ({status}); stderr:\n{stderr}")
            }
            Err(StartError::Timeout(stderr)) => {
                panic!("signpost did not answer /healthz within {STARTUP_TIMEOUT:?}; stderr:\n{stderr}")
            }
        }
    }

    /// Starts a server and waits for `/healthz`. Retries with new ports when a port picked as
    /// free was taken in between.
    pub async fn try_start(opts: ServerOptions) -> Result<Self, StartError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match Self::start_once(&opts).await {
                Err(StartError::Exited(_, stderr))
                    if attempts < 5 && stderr.contains("cannot listen on") =>
                {
                    continue
                }
                other => return other,
            }
        }
    }

    async fn start_once(opts: &ServerOptions) -> Result<Self, StartError> {
        let port = opts.port.unwrap_or_else(free_port);
        let tls_port = (opts.tls.is_some() || opts.builtin_tls).then(free_port);
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            opts.data_dir.display().to_string(),
        ];
        if let (Some((cert, key)), Some(tls_port)) = (&opts.tls, tls_port) {
            args.extend([
                "--tls-listen".into(),
                format!("127.0.0.1:{tls_port}"),
                "--tls-cert".into(),
                cert.display().to_string(),
                "--tls-key".into(),
                key.display().to_string(),
            ]);
        } else if let Some(tls_port) = tls_port {
            args.extend(["--tls-listen".into(), format!("127.0.0.1:{tls_port}")]);
        }
        args.extend(opts.args.iter().cloned());
        let mut env = opts.env.clone();
        if opts.broker_env {
            env.push(("SIGNPOST_BROKER_USER".into(), BROKER_USER.into()));
            env.push(("SIGNPOST_BROKER_PASSWORD".into(), BROKER_PASSWORD.into()));
        }
        let logs = TempDir::new().unwrap();
        let stderr_path = logs.path().join("stderr.log");
        let child = command(&args, &env, &stderr_path).spawn().unwrap();
        let mut server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            tls_port,
            data_dir: opts.data_dir.clone(),
            broker_user: BROKER_USER.into(),
            broker_password: BROKER_PASSWORD.into(),
            client: http_client(),
            stderr_path,
            _logs: logs,
            exit: None,
            master_key: env
                .iter()
                .find(|(k, _)| k == "SIGNPOST_MASTER_KEY")
                .map(|(_, v)| v.clone()),
            database_url: args
                .iter()
                .position(|a| a == "--database-url")
                .and_then(|i| args.get(i + 1))
                .or_else(|| {
                    env.iter()
                        .find(|(k, _)| k == "SIGNPOST_DATABASE_URL")
                        .map(|(_, v)| v)
                })
                .filter(|url| url.starts_with("postgres"))
                .cloned(),
        };
        server.wait_healthy().await?;
        if !opts.broker_env {
            let creds: Value = serde_json::from_str(
                &fs::read_to_string(opts.data_dir.join("broker-credentials.json")).unwrap(),
            )
            .unwrap();
            server.broker_user = creds["user"].as_str().unwrap().into();
            server.broker_password = creds["password"].as_str().unwrap().into();
        }
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let url = self.url("/healthz");
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exit = Some(status);
                return Err(StartError::Exited(status, self.stderr()));
            }
            if let Ok(res) = self.client.get(&url).send().await {
                if res.status() == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::Timeout(self.stderr()));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the server printed on stdout (the first-run help).
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.stderr_path().with_extension("stdout")).unwrap_or_default()
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The body of `GET <path>` (no credentials), as text.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `<data-dir>/ca.pem`: the built-in CA that issued the HTTPS listener's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("ca.pem")
    }

    /// `https://127.0.0.1:<tls port>`.
    pub fn tls_base(&self) -> String {
        format!("https://127.0.0.1:{}", self.tls_port.unwrap())
    }

    /// SIGKILL, as a crash or the OOM killer would end it, and the exit. Stderr stays readable.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        self.exit = Some(status);
        status
    }

    /// Sends SIGTERM and waits for the exit; panics (with stderr) if it does not exit in time.
    /// Stderr stays readable afterwards.
    pub async fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM {} failed", self.child.id());
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.exit = Some(status);
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "signpost did not exit within {STARTUP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A broker request (`/v2...`) with the broker credentials and API version.
    pub fn broker(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(&self.broker_user, Some(&self.broker_password))
            .header("X-Broker-API-Version", "2.17")
    }

    /// `(service_id, plan_id)` from `GET /v2/catalog`.
    pub async fn catalog_ids(&self) -> (String, String) {
        let res = self
            .broker(Method::GET, "/v2/catalog")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "catalog failed");
        let catalog: Value = res.json().await.unwrap();
        let service = &catalog["services"][0];
        (
            service["id"].as_str().unwrap().to_owned(),
            service["plans"][0]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// The body of a provisioning in `subaccount` (subdomain `<subaccount>-sub`) with a
    /// configuration JSON, for the catalog's service and plan.
    pub async fn provision_body(&self, subaccount: &str, parameters: Value) -> Value {
        let (service_id, plan_id) = self.catalog_ids().await;
        json!({
            "service_id": service_id,
            "plan_id": plan_id,
            "organization_guid": "org-guid",
            "space_guid": "space-guid",
            "context": {
                "platform": "cloudfoundry",
                "subaccount_id": subaccount,
                "subdomain": format!("{subaccount}-sub"),
            },
            "parameters": parameters,
        })
    }

    /// Provisions `instance` in `subaccount` with a configuration JSON; asserts 201.
    pub async fn provision(&self, instance: &str, subaccount: &str, parameters: Value) {
        let body = self.provision_body(subaccount, parameters).await;
        let res = self
            .broker(Method::PUT, &format!("/v2/service_instances/{instance}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert_eq!(status, 201, "provision failed: {body}");
    }

    /// Binds and returns the service key (`credentials`); asserts 201.
    pub async fn bind(&self, instance: &str, binding: &str) -> Value {
        let (status, body) = self.try_bind(instance, binding).await;
        assert_eq!(status, 201, "bind failed: {body}");
        body["credentials"].clone()
    }

    /// Binds: the status and the JSON body (or the text, if it is not JSON).
    pub async fn try_bind(&self, instance: &str, binding: &str) -> (u16, Value) {
        let (service_id, plan_id) = self.catalog_ids().await;
        let res = self
            .broker(
                Method::PUT,
                &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
            )
            .json(&json!({"service_id": service_id, "plan_id": plan_id}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// An access token for `key` from this server's own token endpoint (whatever URL the key
    /// names: a restarted or restored server listens elsewhere); asserts 200.
    pub async fn token(&self, key: &Value) -> String {
        let (status, body) = request_token(&self.client, &self.url(""), key).await;
        assert_eq!(status, 200, "token request failed: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// The names of the destinations at `path` (e.g. `instanceDestinations`), sorted.
    pub async fn destination_names(&self, token: &str, path: &str) -> Vec<String> {
        let res = self
            .client
            .get(self.url(&format!("/destination-configuration/v1/{path}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let list: Vec<Value> = res.json().await.unwrap();
        let mut names: Vec<String> = list
            .iter()
            .map(|d| d["Name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Every secret it held, searched for in its logs and its data directory's files.
        let master = self
            .master_key
            .clone()
            .or_else(|| fs::read_to_string(self.data_dir.join("master.key")).ok())
            .and_then(|text| MasterKey::parse(&text).ok());
        signpost_test_utils::leaks::check_server(
            signpost_test_utils::leaks::ServerData {
                data_dir: &self.data_dir,
                database_url: self.database_url.as_deref(),
            },
            master.as_ref(),
            &[
                self.stderr_path.clone(),
                self.stderr_path.with_extension("stdout"),
            ],
            &[("the broker password", &self.broker_password)],
        );
    }
}

/// `POST <token_base>/oauth/token` (client credentials in the form body): the response status
/// and JSON body.
pub async fn request_token(
    client: &reqwest::Client,
    token_base: &str,
    key: &Value,
) -> (u16, Value) {
    let res = client
        .post(format!("{token_base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", key["clientid"].as_str().unwrap()),
            ("client_secret", key["clientsecret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// An access token for a service key from `<key.url>/oauth/token`; asserts 200.
pub async fn token(client: &reqwest::Client, key: &Value) -> String {
    let (status, body) = request_token(client, key["url"].as_str().unwrap(), key).await;
    assert_eq!(status, 200, "token request failed: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// `GET <base>/destination-configuration/v1/destinations/<name>` with a bearer token: the status
/// and JSON body.
pub async fn find(client: &reqwest::Client, base: &str, token: &str, name: &str) -> (u16, Value) {
    let res = client
        .get(format!(
            "{base}/destination-configuration/v1/destinations/{name}"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
