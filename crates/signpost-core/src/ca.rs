//! Signpost's own certificate authority: made on first start, kept encrypted in the store (one
//! for every process on the database), used for generated certificates and X.509 bindings.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use signpost_certs::ca::CertificateAuthority;
use signpost_store::{Store, WriteOp};

use crate::{Error, Result};

const CA_SECRET: &str = "signpost-ca";

#[derive(Serialize, Deserialize)]
struct StoredCa {
    certificate_pem: String,
    private_key_pem: String,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Internal(e.to_string())
}

/// Loads the CA, making it first if the database has none (whoever stores first wins).
pub(crate) async fn load_or_create(store: &dyn Store) -> Result<CertificateAuthority> {
    if store.get_secret(CA_SECRET).await?.is_none() {
        let material =
            CertificateAuthority::generate("Signpost CA", time::OffsetDateTime::now_utc())
                .map_err(internal)?;
        let stored = StoredCa {
            certificate_pem: material.certificate_pem,
            private_key_pem: material.private_key_pem.expose_secret().to_owned(),
        };
        let text = serde_json::to_string(&stored).map_err(internal)?;
        store
            .write(vec![WriteOp::PutSecret {
                name: CA_SECRET.into(),
                value: SecretString::from(text),
                if_absent: true,
            }])
            .await?;
    }
    let text = store
        .get_secret(CA_SECRET)
        .await?
        .ok_or_else(|| internal("the CA vanished"))?;
    let stored: StoredCa = serde_json::from_str(text.expose_secret()).map_err(internal)?;
    CertificateAuthority::from_pem(&stored.certificate_pem, &stored.private_key_pem)
        .map_err(internal)
}
