//! The HTTPS listener's certificate and key: from `--tls-cert`/`--tls-key` (PEM files), with
//! errors that name the flag, or issued by the built-in CA and renewed while the listener runs
//! ([`BuiltInCertificate`]); the listener itself is `signpost_api::tls`.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::Result;
use secrecy::ExposeSecret as _;
use signpost_certs::ca::{server_certificate_renewal_due, SubjectAltName};
use signpost_core::Signpost;
use time::OffsetDateTime;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
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

/// The HTTPS listener's certificate from the built-in CA (`--tls-listen` without
/// `--tls-cert`/`--tls-key`): issued at start for the configured names, served to every
/// handshake, and replaced by [`BuiltInCertificate::renew_if_due`] once it nears its end, so the
/// listener never serves an expired certificate and never restarts. Each process issues its own
/// (nothing is stored); clients trust the CA.
pub struct BuiltInCertificate {
    core: Signpost,
    names: Vec<SubjectAltName>,
    current: RwLock<Issued>,
}

struct Issued {
    key: Arc<CertifiedKey>,
    not_after: OffsetDateTime,
    serial_hex: String,
}

impl fmt::Debug for BuiltInCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("BuiltInCertificate")
            .field("names", &self.names)
            .field("not_after", &current.not_after)
            .field("serial_hex", &current.serial_hex)
            .finish_non_exhaustive()
    }
}

fn issue(core: &Signpost, names: &[SubjectAltName]) -> Result<Issued> {
    let cert = core.issue_server_certificate(names)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        cert.private_key_pkcs8_der.expose_secret().to_vec(),
    ));
    let key =
        signpost_api::tls::certified_key(vec![CertificateDer::from(cert.certificate_der)], &key)?;
    Ok(Issued {
        key: Arc::new(key),
        not_after: cert.not_after,
        serial_hex: cert.serial_hex,
    })
}

impl BuiltInCertificate {
    /// Issues the first certificate.
    pub fn new(core: Signpost, names: Vec<SubjectAltName>) -> Result<Arc<Self>> {
        let current = issue(&core, &names)?;
        Ok(Arc::new(Self {
            core,
            names,
            current: RwLock::new(current),
        }))
    }

    /// The listener's TLS configuration, serving whichever certificate is current.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>> {
        Ok(signpost_api::tls::server_config_with_resolver(
            self.clone(),
        )?)
    }

    /// The serial number (hex) and end of the certificate served now.
    pub fn current(&self) -> (String, OffsetDateTime) {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (current.serial_hex.clone(), current.not_after)
    }

    /// Issues a new certificate when the current one is due for renewal at `now`
    /// (`signpost_certs::ca::server_certificate_renewal_due`); true when it did. The new one is
    /// served from the next handshake on; connections already open keep theirs.
    pub fn renew_if_due(&self, now: OffsetDateTime) -> Result<bool> {
        let (_, not_after) = self.current();
        if !server_certificate_renewal_due(not_after, now) {
            return Ok(false);
        }
        let issued = issue(&self.core, &self.names)?;
        tracing::info!(
            serial = %issued.serial_hex,
            not_after = %issued.not_after,
            "the HTTPS listener's certificate was renewed"
        );
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = issued;
        Ok(true)
    }
}

impl ResolvesServerCert for BuiltInCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(current.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signpost_core::CoreConfig;
    use signpost_store::{MasterKey, SqliteStore};

    #[tokio::test]
    async fn the_built_in_certificate_is_renewed_only_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signpost.db");
        let store = SqliteStore::open(&path.display().to_string(), &MasterKey::generate(), 10)
            .await
            .unwrap();
        let core = Signpost::new(
            Arc::new(store),
            CoreConfig {
                public_url: "https://127.0.0.1:8443".into(),
                uaadomain: "127.0.0.1:8443".into(),
                token_lifetime_secs: 3600,
                oauth: signpost_core::OAuthConfig::default(),
                cert_url: None,
                principal_cache_bytes: signpost_core::DEFAULT_PRINCIPAL_CACHE_BYTES,
            },
        )
        .await
        .unwrap();
        let names = vec![
            SubjectAltName::Dns("localhost".into()),
            SubjectAltName::Ip(std::net::Ipv4Addr::LOCALHOST.into()),
        ];
        let cert = BuiltInCertificate::new(core, names).unwrap();
        let (first, not_after) = cert.current();
        let now = OffsetDateTime::now_utc();
        // 90 days: not due now, nor 59 days on; due with less than 30 days left.
        assert!((not_after - now - time::Duration::days(90)).abs() < time::Duration::minutes(10));
        assert!(!cert.renew_if_due(now).unwrap());
        assert!(!cert.renew_if_due(now + time::Duration::days(59)).unwrap());
        assert_eq!(cert.current().0, first);
        assert!(cert.renew_if_due(now + time::Duration::days(61)).unwrap());
        let (second, _) = cert.current();
        assert_ne!(second, first, "a new certificate is served");
        // The resolver hands out the current one; its DER carries the new serial.
        let served = cert.current.read().unwrap().key.clone();
        let der = served.cert[0].as_ref();
        let serial = hex::decode(&second).unwrap();
        assert!(
            der.windows(serial.len()).any(|w| w == serial),
            "the served certificate is the renewed one"
        );
        // The listener's configuration builds with it.
        cert.server_config().unwrap();
    }
}
