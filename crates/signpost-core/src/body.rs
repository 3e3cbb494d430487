//! The entity body codec: an entity's stored JSON (destination and fragment properties,
//! certificate bodies) and what the API shows of it. Shared by the use cases that write and read
//! entities (entities, certificates, find, the broker's configuration JSON).

use serde_json::{Map, Value};
use signpost_model::{Certificate, EntityKind, Properties};
use signpost_store::StoredEntity;
use signpost_wire::{certificate_to_json, properties_to_json};

use crate::{Error, Result};

/// The stored JSON of a destination or fragment.
pub(crate) fn properties_body(props: &Properties) -> Vec<u8> {
    serde_json::to_vec(&properties_to_json(props)).unwrap_or_default()
}

/// The stored JSON of a certificate.
pub(crate) fn certificate_body(cert: &Certificate) -> Vec<u8> {
    serde_json::to_vec(&certificate_to_json(cert)).unwrap_or_default()
}

/// What the API returns of a stored entity: certificates without their password and bookkeeping.
pub(crate) fn public_body(entity: &StoredEntity) -> Result<Map<String, Value>> {
    let mut body = body_json(entity)?;
    if entity.kind == EntityKind::Certificate {
        body.retain(|k, _| !signpost_wire::CERTIFICATE_PRIVATE_KEYS.contains(&k.as_str()));
    }
    Ok(body)
}

pub(crate) fn body_json(entity: &StoredEntity) -> Result<Map<String, Value>> {
    serde_json::from_slice(&entity.body)
        .map_err(|e| Error::Internal(format!("stored entity is not JSON: {e}")))
}
