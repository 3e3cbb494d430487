//! A real nginx (Debian's package) on loopback for tests: an HTTPS reverse proxy that demands a
//! client certificate (`ssl_verify_client on`) in front of an HTTP upstream.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    pub port: u16,
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

impl Nginx {
    /// `https://127.0.0.1:<port>` with `server_cert`/`server_key`, requiring client certificates
    /// issued by `client_ca` (all PEM text), proxying to `upstream` (`http://host:port`).
    pub fn mtls_proxy(
        upstream: &str,
        server_cert: &str,
        server_key: &str,
        client_ca: &str,
    ) -> Nginx {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is needed for the mTLS tests: apt-get install nginx");
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
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/logs/error.log warn;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n\
                 ssl_client_certificate {d}/client-ca.pem;\n    ssl_verify_client on;\n\
                 location / {{ proxy_pass http://{upstream}; proxy_set_header X-Client-Verify $ssl_client_verify; }}\n  }}\n}}\n",
            d = d.display()
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("conf");
        let child = Command::new(bin)
            .args([
                "-p",
                &d.display().to_string(),
                "-c",
                &d.join("nginx.conf").display().to_string(),
                "-g",
                "daemon off;",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
