//! A real OAuth2 server on loopback for token-flow tests: [`OAuthPeer`] runs
//! `e2e/oauth-server/server.mjs`, which is the npm package `oauth2-mock-server` (pinned in
//! `e2e/oauth-server/package.json`) with checked client authentication, checked grants
//! (client_credentials, password, refresh_token, authorization_code with PKCE, jwt-bearer,
//! token-exchange, saml2-bearer) and control endpoints added through its extension points.
//!
//! Needs Node.js and npm: `npm ci` runs once, under a file lock, when
//! `e2e/oauth-server/node_modules` is missing or holds another version of the server.
//!
//! ```ignore
//! let peer = OAuthPeer::start().await;
//! peer.configure(json!({"clients": [{"id": "c", "secret": "s"}]})).await;
//! // … point a destination's tokenServiceURL at peer.token_url() …
//! let seen = peer.requests().await;
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// How long the server may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One running `e2e/oauth-server/server.mjs` on `127.0.0.1:<free port>`; killed on drop.
#[derive(Debug)]
pub struct OAuthPeer {
    url: String,
    client: reqwest::Client,
    child: Child,
    /// Held open: the server exits when it closes (also when this test process dies).
    _stdin: Option<ChildStdin>,
}

impl OAuthPeer {
    /// Installs the npm package if needed, starts the server and waits until it is ready.
    /// Panics with a clear message when node or npm is missing or the server does not start.
    pub async fn start() -> OAuthPeer {
        let dir = crate::npm::e2e_dir("oauth-server");
        let ensure_dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            crate::npm::ensure_installed(&ensure_dir, "the OAuth test server in e2e/oauth-server")
        })
        .await
        .expect("npm install task panicked");

        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("--port")
            .arg("0")
            .arg("--watch-stdin")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `node` for the OAuth test server ({e}); install Node.js 18.12+")
            });
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");

        let (tx, rx) = tokio::sync::oneshot::channel::<Result<String, String>>();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = match reader.read_line(&mut line) {
                Ok(0) => Err("the OAuth test server exited before it was ready".to_owned()),
                Ok(_) => Ok(line.trim().to_owned()),
                Err(e) => Err(format!("reading the OAuth test server's stdout: {e}")),
            };
            let _ = tx.send(first);
            // Keep draining so the server never blocks on a full pipe.
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });

        let line = match tokio::time::timeout(READY_TIMEOUT, rx).await {
            Ok(Ok(Ok(line))) => line,
            Ok(Ok(Err(e))) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!("{e} (exit status {status:?}; see its stderr above)");
            }
            Ok(Err(_)) => {
                let _ = child.kill();
                panic!("the OAuth test server's stdout reader went away");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the OAuth test server printed no ready line within {READY_TIMEOUT:?}");
            }
        };
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("bad ready line from the OAuth test server {line:?}: {e}"));
        let url = ready["url"]
            .as_str()
            .unwrap_or_else(|| panic!("ready line without url: {line}"))
            .to_owned();
        OAuthPeer {
            url,
            client: reqwest::Client::new(),
            child,
            _stdin: stdin,
        }
    }

    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token endpoint, `<url>/token`. Any path ending in `/token` works too, e.g.
    /// `<url>/<tenant>/oauth/token`; [`Self::requests`] tells which path was used.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.url)
    }

    /// The JWKS with the server's RS256 public key, `<url>/jwks` (also at `<url>/token_keys`).
    pub fn jwks_url(&self) -> String {
        format!("{}/jwks", self.url)
    }

    /// The `iss` of every token this server signs: the same as [`Self::url`].
    pub fn issuer(&self) -> &str {
        &self.url
    }

    /// `POST /__config`: the keys given replace the current ones, the others stay
    /// (`{"reset": true}` first restores the defaults). Returns the whole config now in force.
    /// Panics when the server rejects it.
    ///
    /// Keys: `clients` `[{id, secret?, assertion?}]`, `users` `[{username, password, claims?}]`,
    /// `codes` `[{code, redirect_uri?, code_verifier?, single_use?, sub?, claims?}]`,
    /// `refresh_tokens` (`null` = any non-empty, or a list), `token_lifetime` (seconds, 300),
    /// `fail` `{status, body, count, content_type?}` or `null`, `delay_ms`, `extra_claims`,
    /// `extra_response`.
    pub async fn configure(&self, config: Value) -> Value {
        let res = self
            .client
            .post(format!("{}/__config", self.url))
            .json(&config)
            .send()
            .await
            .expect("POST /__config");
        let status = res.status();
        let body = res.text().await.expect("POST /__config body");
        assert!(status.is_success(), "POST /__config: {status} {body}");
        serde_json::from_str(&body).expect("POST /__config answered no JSON")
    }

    /// Restores the default configuration (no clients, users or codes) and forgets issued
    /// refresh tokens and used codes. The request log stays.
    pub async fn reset(&self) {
        self.configure(serde_json::json!({"reset": true})).await;
    }

    /// Every request to the token endpoint so far, oldest first: `method`, `path`, `query`,
    /// `raw_query`, `headers` (lowercase names), `form`, `raw_body`, `timestamp` (ms since the
    /// epoch), `timestamp_iso`, `client_auth` (`{method: basic|body|client_assertion|none,
    /// client_id}` or null), `status` (null while in flight), and per grant `assertion_claims`,
    /// `saml_assertion_xml`, `saml_name_id`, `injected_failure`. A form field sent more than
    /// once is an array of its values.
    pub async fn requests(&self) -> Vec<Value> {
        self.client
            .get(format!("{}/__requests", self.url))
            .send()
            .await
            .expect("GET /__requests")
            .error_for_status()
            .expect("GET /__requests status")
            .json()
            .await
            .expect("GET /__requests JSON")
    }

    /// Forgets the recorded requests.
    pub async fn clear_requests(&self) {
        self.client
            .delete(format!("{}/__requests", self.url))
            .send()
            .await
            .expect("DELETE /__requests")
            .error_for_status()
            .expect("DELETE /__requests status");
    }

    /// A user JWT signed (RS256) with this server's key: `iss` = [`Self::issuer`], `iat` = now,
    /// `exp` = now + 1 h, then `claims` on top (they may override any of those).
    pub async fn user_token(&self, claims: Value) -> String {
        let body: Value = self
            .client
            .post(format!("{}/__user_token", self.url))
            .json(&claims)
            .send()
            .await
            .expect("POST /__user_token")
            .error_for_status()
            .expect("POST /__user_token status")
            .json()
            .await
            .expect("POST /__user_token JSON");
        body["token"]
            .as_str()
            .expect("POST /__user_token answered no token")
            .to_owned()
    }

    /// The server's JWKS (`{"keys": [...]}`, one RS256 public key).
    pub async fn jwks(&self) -> Value {
        self.client
            .get(self.jwks_url())
            .send()
            .await
            .expect("GET /jwks")
            .error_for_status()
            .expect("GET /jwks status")
            .json()
            .await
            .expect("GET /jwks JSON")
    }
}

impl Drop for OAuthPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
