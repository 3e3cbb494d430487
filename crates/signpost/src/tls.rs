//! The HTTPS listener's certificate and key from `--tls-cert`/`--tls-key` (PEM files), with errors
//! that name the flag; the listener itself is `signpost_api::tls`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

use crate::config::ConfigError;

pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError(format!("--tls-cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ConfigError(format!(
            "--tls-cert {}: no certificate in the file",
            cert.display()
        ))
        .into());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError(format!("--tls-key {}: {e}", key.display())))?;
    signpost_api::tls::server_config(certs, key).map_err(|e| {
        ConfigError(format!(
            "--tls-cert/--tls-key do not form a usable pair: {e}"
        ))
        .into()
    })
}
