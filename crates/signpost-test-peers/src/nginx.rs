//! A real nginx (Debian's package) on loopback for tests, in three shapes:
//!
//! - [`Nginx::mtls_proxy`]: an HTTPS reverse proxy that demands a client certificate
//!   (`ssl_verify_client on`) in front of an HTTP upstream;
//! - [`Nginx::static_files`] / [`Nginx::static_dir`]: plain HTTP serving files (the upstream of
//!   the proxy benchmark, `bench/proxy`, which writes the same configuration itself);
//! - [`Nginx::reverse_proxy_with_header`]: plain HTTP reverse proxy that adds one fixed header
//!   (e.g. `Authorization: Bearer x`) through a keep-alive upstream pool: the reference the
//!   proxy is compared with.
//!
//! Each runs as a non-daemon master with one worker in a temporary prefix of its own (config,
//! pid file, logs, temp paths) on a free port, and is stopped on drop.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
    scheme: &'static str,
    child: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn nginx_bin() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is needed for these tests: apt-get install nginx")
}

/// The `http {}` lines every shape shares: no access log, temp paths inside the prefix.
fn http_common(d: &str) -> String {
    format!(
        "  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         \x20 fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n"
    )
}

/// A temp prefix that nginx's workers (`nobody` when the tests run as root) can enter.
fn prefix_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    set_mode(dir.path(), 0o755);
    std::fs::create_dir_all(dir.path().join("logs")).expect("logs");
    dir
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A value nginx takes literally between double quotes.
fn check_literal(what: &str, value: &str) {
    assert!(
        !value.is_empty()
            && !value
                .chars()
                .any(|c| matches!(c, '"' | '\\' | '$' | ';' | '{' | '}') || c.is_control()),
        "{what} {value:?}: nginx configs here take no quotes, backslashes, $, ;, braces or control characters"
    );
}

impl Nginx {
    /// `https://127.0.0.1:<port>` with `server_cert`/`server_key`, requiring client certificates
    /// issued by `client_ca` (all PEM text), proxying to `upstream` (`http://host:port`).
    pub fn mtls_proxy(
        upstream: &str,
        server_cert: &str,
        server_key: &str,
        client_ca: &str,
    ) -> Nginx {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        for (name, text) in [
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client-ca.pem", client_ca),
        ] {
            std::fs::write(d.join(name), text).expect("write");
        }
        std::fs::create_dir_all(d.join("logs")).expect("logs");
        let port = free_port();
        let upstream = upstream.trim_start_matches("http://");
        let ds = d.display().to_string();
        let conf = format!(
            "http {{\n{common}\
               server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
                 ssl_client_certificate {d}/client-ca.pem;\n    ssl_verify_client on;\n\
                 location / {{ proxy_pass http://{upstream}; proxy_set_header X-Client-Verify $ssl_client_verify; }}\n  }}\n}}\n",
            common = http_common(&ds),
            d = ds
        );
        Self::launch(dir, port, "https", &conf)
    }

    /// `http://127.0.0.1:<port>/<name>` serves each `(name, content)` (names may contain `/`),
    /// `Content-Type` by extension (`.txt` text/plain, `.json` application/json, `.html`
    /// text/html, else application/octet-stream), with `sendfile` and keep-alive.
    pub fn static_files(files: &[(&str, &[u8])]) -> Nginx {
        let dir = prefix_dir();
        let www = dir.path().join("www");
        std::fs::create_dir_all(&www).expect("www");
        set_mode(&www, 0o755);
        for (name, content) in files {
            let name = name.trim_start_matches('/');
            assert!(
                !name.split('/').any(|p| p == ".." || p.is_empty()),
                "static file name {name:?}"
            );
            let path = www.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
                let mut p = parent;
                while p != www {
                    set_mode(p, 0o755);
                    p = p.parent().expect("inside www");
                }
            }
            std::fs::write(&path, content).expect("write static file");
            set_mode(&path, 0o644);
        }
        Self::static_root(dir, &www)
    }

    /// Like [`Self::static_files`] for the files under an existing directory. When the tests run
    /// as root, nginx's worker runs as `nobody`: the directory must be readable by others.
    pub fn static_dir(root: &Path) -> Nginx {
        let root = root.canonicalize().expect("static root");
        Self::static_root(prefix_dir(), &root)
    }

    fn static_root(dir: tempfile::TempDir, root: &Path) -> Nginx {
        let port = free_port();
        let root = root.display().to_string();
        check_literal("static root", &root);
        let conf = format!(
            "http {{\n{common}\
             \x20 sendfile on;\n  tcp_nodelay on;\n  keepalive_timeout 75s;\n  keepalive_requests 1000000;\n\
             \x20 types {{ text/plain txt; application/json json; text/html html; }}\n\
             \x20 default_type application/octet-stream;\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    location / {{ }}\n  }}\n}}\n",
            common = http_common(&dir.path().display().to_string()),
        );
        Self::launch(dir, port, "http", &conf)
    }

    /// `http://127.0.0.1:<port>` proxies every request to `upstream` (`http://host:port` or
    /// `host:port`) through a keep-alive pool (`upstream { keepalive 32; }`, HTTP/1.1,
    /// `Connection: ""`), with `Host: <upstream host:port>` and `<header_name>: <header_value>`
    /// set (replacing what the client sent). Responses larger than nginx's memory buffers are
    /// passed on as they come (`proxy_max_temp_file_size 0`), never spooled to disk.
    pub fn reverse_proxy_with_header(
        upstream: &str,
        header_name: &str,
        header_value: &str,
    ) -> Nginx {
        let upstream = upstream.trim_start_matches("http://").trim_end_matches('/');
        check_literal("upstream", upstream);
        check_literal("header name", header_name);
        check_literal("header value", header_value);
        assert!(
            !header_name.contains(char::is_whitespace) && !upstream.contains(char::is_whitespace),
            "no whitespace in the upstream or the header name"
        );
        let dir = prefix_dir();
        let port = free_port();
        let conf = format!(
            "http {{\n{common}\
             \x20 tcp_nodelay on;\n  keepalive_timeout 75s;\n  keepalive_requests 1000000;\n\
             \x20 upstream backend {{\n    server {upstream};\n    keepalive 32;\n    keepalive_requests 1000000;\n  }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             \x20     proxy_pass http://backend;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n      proxy_set_header Host \"{upstream}\";\n\
             \x20     proxy_set_header {header_name} \"{header_value}\";\n\
             \x20     proxy_max_temp_file_size 0;\n    }}\n  }}\n}}\n",
            common = http_common(&dir.path().display().to_string()),
        );
        Self::launch(dir, port, "http", &conf)
    }

    /// `http(s)://127.0.0.1:<port>`, no trailing slash.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.port)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Writes `<prefix>/nginx.conf` (the global lines, then `http_block`), starts nginx in the
    /// foreground and waits until the port accepts connections.
    fn launch(dir: tempfile::TempDir, port: u16, scheme: &'static str, http_block: &str) -> Nginx {
        let d = dir.path();
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
             events {{ worker_connections 1024; }}\n{http_block}",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("conf");
        let child = Command::new(nginx_bin())
            .args([
                "-p",
                &d.display().to_string(),
                "-e",
                &d.join("logs/error.log").display().to_string(),
                "-c",
                &d.join("nginx.conf").display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            port,
            scheme,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = nginx.child.try_wait().ok().flatten();
            assert!(
                Instant::now() < deadline && exited.is_none(),
                "nginx did not start ({exited:?}): {}",
                std::fs::read_to_string(nginx._dir.path().join("logs/error.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // Graceful (QUIT: in-flight requests finish), then fast (TERM: the master stops its
        // workers at once) when a connection keeps it busy; KILL only as the last resort, since
        // it would leave the worker (and its listening socket) behind.
        for (signal, wait) in [("-QUIT", 3), ("-TERM", 2)] {
            let _ = Command::new("kill")
                .args([signal, &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(wait);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
