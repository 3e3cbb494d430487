//! Copying everything from one store to another (`signpost store copy`): tenancy records, keys,
//! secrets and entities, decrypted from the source and encrypted again under the target's data key.

use signpost_model::EntityKind;

use crate::records::*;
use crate::{Result, Store};

/// How many records of each kind a store holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub subaccounts: usize,
    pub instances: usize,
    pub bindings: usize,
    pub destinations: usize,
    pub fragments: usize,
    pub certificates: usize,
    pub signing_keys: usize,
    pub saml_keys: usize,
    pub secrets: usize,
}

/// Server secrets that exist by name (the built-in CA).
const SECRET_NAMES: &[&str] = &["signpost-ca"];

/// Counts what a store holds.
pub async fn counts(store: &dyn Store) -> Result<Counts> {
    let subaccounts = store.list_subaccounts().await?;
    let instances = store.list_instances().await?;
    let mut c = Counts {
        subaccounts: subaccounts.len(),
        instances: instances.len(),
        ..Default::default()
    };
    for i in &instances {
        c.bindings += store.list_bindings(&i.id).await?.len();
    }
    c.destinations = store.all_entities(EntityKind::Destination).await?.len();
    c.fragments = store.all_entities(EntityKind::Fragment).await?.len();
    c.certificates = store.all_entities(EntityKind::Certificate).await?.len();
    c.signing_keys = store.signing_keys().await?.len();
    for s in &subaccounts {
        c.saml_keys += store.saml_keys(&s.id).await?.len();
    }
    for name in SECRET_NAMES {
        c.secrets += usize::from(store.get_secret(name).await?.is_some());
    }
    Ok(c)
}

/// Copies everything from `from` into `to` in one atomic write (signing keys are inserted one by
/// one before it). The target must be empty of tenancy records; returns the source's counts.
pub async fn copy_all(from: &dyn Store, to: &dyn Store) -> Result<Counts> {
    if !to.list_instances().await?.is_empty() || !to.list_subaccounts().await?.is_empty() {
        return Err(crate::Error::Invalid(
            "the target database is not empty".into(),
        ));
    }
    let mut ops = Vec::new();
    let subaccounts = from.list_subaccounts().await?;
    for s in &subaccounts {
        ops.push(WriteOp::EnsureSubaccount(s.clone()));
    }
    // Subscriptions after every instance and subaccount they name.
    let mut subscriptions = Vec::new();
    for i in from.list_instances().await? {
        let id = i.id.clone();
        ops.push(WriteOp::CreateInstance(i));
        for b in from.list_bindings(&id).await? {
            ops.push(WriteOp::CreateBinding(b));
        }
        subscriptions.extend(from.list_subscriptions(&id).await?);
    }
    ops.extend(subscriptions.into_iter().map(WriteOp::Subscribe));
    for kind in [
        EntityKind::Certificate,
        EntityKind::Fragment,
        EntityKind::Destination,
    ] {
        for e in from.all_entities(kind).await? {
            let labels = (!e.labels.is_empty()).then(|| WriteOp::SetLabels {
                owner: e.owner.clone(),
                kind,
                name: e.name.clone(),
                labels: e.labels,
            });
            ops.push(WriteOp::PutEntity {
                owner: e.owner,
                kind,
                name: e.name,
                body: e.body,
                mode: PutMode::Create,
            });
            ops.extend(labels);
        }
    }
    for s in &subaccounts {
        for k in from.saml_keys(&s.id).await? {
            ops.push(WriteOp::PutSamlKey(k));
        }
    }
    for name in SECRET_NAMES {
        if let Some(value) = from.get_secret(name).await? {
            // The target made its own CA when it was opened by a server; the source's wins.
            ops.push(WriteOp::PutSecret {
                name: (*name).to_owned(),
                value,
                if_absent: false,
            });
        }
    }
    let existing: Vec<String> = to
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| k.kid)
        .collect();
    for k in from.signing_keys().await? {
        if !existing.contains(&k.kid) {
            to.insert_signing_key(k).await?;
        }
    }
    to.write(ops).await?;
    counts(from).await
}
