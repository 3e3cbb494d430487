use std::fmt;

use secrecy::SecretString;
use signpost_model::{EntityKind, Label, LabelAction, OwnerRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubaccountRecord {
    pub id: String,
    pub subdomain: String,
}

/// A subscriber subaccount subscribed to a provider's service instance. The subscription's own
/// entities (the subscription level) are owned by [`OwnerRef::subscription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRecord {
    pub instance_id: String,
    pub subaccount_id: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    pub id: String,
    pub subaccount_id: String,
    pub service_id: String,
    pub plan_id: String,
    pub organization_guid: Option<String>,
    pub space_guid: Option<String>,
    /// The OSB `context` object as JSON text (no secrets in it).
    pub context: String,
    /// Keyed digest of the provisioning request, to tell an identical repeat from a clash.
    pub request_digest: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// The configuration JSON's `subscriber_access` as JSON text (no secrets in it).
    pub subscriber_access: Option<String>,
}

#[derive(Clone)]
pub struct BindingRecord {
    pub id: String,
    pub instance_id: String,
    pub client_id: String,
    /// The client secret (`binding-secret`), or the private key PEM of a generated X.509
    /// binding; `None` for self-provided X.509 bindings. Encrypted at rest.
    pub client_secret: Option<SecretString>,
    /// X.509 bindings: the certificate chain (PEM) and the SHA-256 fingerprint (hex) of its leaf.
    pub certificate: Option<String>,
    pub certificate_sha256: Option<String>,
    pub credential_type: String,
    pub request_digest: String,
    pub created_at: i64,
    /// The scopes its tokens carry besides the service's own (bind parameter `scopes`).
    pub scopes: Vec<String>,
}

impl fmt::Debug for BindingRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BindingRecord")
            .field("id", &self.id)
            .field("instance_id", &self.instance_id)
            .field("client_id", &self.client_id)
            .field("credential_type", &self.credential_type)
            .finish_non_exhaustive()
    }
}

/// A token signing key pair; the private key (PKCS#1 PEM) is encrypted at rest.
#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub private_key_pem: SecretString,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    pub created_at: i64,
}

impl fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A subaccount's SAML trust key pair in one slot (`active` or `passive`); the private key
/// (PKCS#8 PEM) is encrypted at rest.
#[derive(Clone)]
pub struct SamlKeyRecord {
    pub subaccount_id: String,
    pub slot: SamlSlot,
    pub private_key_pem: SecretString,
    pub certificate_pem: String,
    pub created_at: i64,
}

impl fmt::Debug for SamlKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlKeyRecord")
            .field("subaccount_id", &self.subaccount_id)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SamlSlot {
    Active,
    Passive,
}

impl SamlSlot {
    pub fn as_str(self) -> &'static str {
        match self {
            SamlSlot::Active => "active",
            SamlSlot::Passive => "passive",
        }
    }
}

/// One stored destination, fragment or certificate. `body` is the decrypted JSON of the entity.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEntity {
    pub owner: OwnerRef,
    pub kind: EntityKind,
    pub name: String,
    pub body: Vec<u8>,
    pub etag: String,
    /// Unix time in milliseconds.
    pub modified_at: i64,
    /// Its labels (not secret), in the order they were set.
    pub labels: Vec<Label>,
}

impl fmt::Debug for StoredEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredEntity")
            .field("owner", &self.owner)
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

/// Which names a list returns (a domain type of `signpost-model`, re-exported here).
pub use signpost_model::NameFilter;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListQuery {
    pub filter: NameFilter,
    /// Only names from this one on (keyset paging: with an anchor from
    /// [`crate::Store::page_anchors`] the offset stays small wherever the page is).
    pub from: Option<String>,
    /// Skip this many (in name order, after `from`).
    pub offset: u64,
    /// At most this many; `None` for all.
    pub limit: Option<u64>,
    /// Also count all matches (for `Page-Count` and `Entity-Count`).
    pub count_total: bool,
    /// Only entities with every one of these labels (each: the key with any of its values).
    pub labels: Vec<Label>,
}

#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub items: Vec<StoredEntity>,
    pub total: Option<u64>,
}

/// How an entity write treats an existing entry of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Fails with [`crate::Error::Conflict`] when it exists.
    Create,
    /// Fails with [`crate::Error::NotFound`] when it does not exist.
    Replace,
    /// Creates or replaces.
    Upsert,
    /// Creates, or leaves the existing entry as it is.
    CreateIfAbsent,
}

/// One operation of an atomic batch. `Debug` shows what is written where, never an entity's
/// body (its properties, passwords and keystores) or a secret.
#[derive(Clone)]
pub enum WriteOp {
    /// Creates the subaccount if it is new (an existing one keeps its subdomain).
    EnsureSubaccount(SubaccountRecord),
    /// Creates an instance; fails with Conflict when the id exists.
    CreateInstance(InstanceRecord),
    /// Replaces an instance's record; fails with NotFound when missing.
    UpdateInstance(InstanceRecord),
    /// Deletes an instance with its bindings, subscriptions, instance-level and
    /// subscription-level entities.
    DeleteInstance {
        id: String,
    },
    /// Subscribes a subaccount (which must exist) to an instance; `Unchanged` when it is
    /// subscribed already, NotFound when the instance or the subaccount is missing.
    Subscribe(SubscriptionRecord),
    /// Ends a subscription with its subscription-level entities; NotFound when there is none.
    Unsubscribe {
        instance_id: String,
        subaccount_id: String,
    },
    /// Changes a subaccount's subdomain; NotFound when the subaccount is missing.
    SetSubdomain {
        subaccount_id: String,
        subdomain: String,
    },
    /// Creates a binding; fails with Conflict when the id or client id exists.
    CreateBinding(BindingRecord),
    DeleteBinding {
        id: String,
    },
    PutEntity {
        owner: OwnerRef,
        kind: EntityKind,
        name: String,
        body: Vec<u8>,
        mode: PutMode,
    },
    DeleteEntity {
        owner: OwnerRef,
        kind: EntityKind,
        name: String,
    },
    /// Replaces an entity's labels (its body and ETag stay); NotFound when it does not exist.
    /// The labels must be valid ([`signpost_model::validate_labels`]).
    SetLabels {
        owner: OwnerRef,
        kind: EntityKind,
        name: String,
        labels: Vec<Label>,
    },
    /// Adds or removes labels of an entity ([`signpost_model::patch_labels`]) on its current
    /// labels, read in the batch's transaction with the row locked where the engine can;
    /// NotFound when it does not exist, Invalid when the result breaks a limit.
    PatchLabels {
        owner: OwnerRef,
        kind: EntityKind,
        name: String,
        action: LabelAction,
        labels: Vec<Label>,
    },
    /// A precondition (`If-Match`): fails with [`crate::Error::Precondition`] unless the entity
    /// exists with one of `etags`. Checked in the batch's transaction, with the row locked where
    /// the engine can, so that the writes after it see the entity it checked.
    ExpectEntity {
        owner: OwnerRef,
        kind: EntityKind,
        name: String,
        etags: Vec<String>,
    },
    /// Creates or replaces the key pair in a slot.
    PutSamlKey(SamlKeyRecord),
    /// Creates the key pair in a slot unless the slot holds one (then `Unchanged`): the first
    /// of concurrent first uses wins, and the others read what it stored.
    CreateSamlKey(SamlKeyRecord),
    /// Stores a named server secret; with `if_absent` an existing one is kept (`Unchanged`).
    PutSecret {
        name: String,
        value: SecretString,
        if_absent: bool,
    },
    DeleteSamlKey {
        subaccount_id: String,
        slot: SamlSlot,
    },
}

impl fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteOp::EnsureSubaccount(r) => f.debug_tuple("EnsureSubaccount").field(r).finish(),
            WriteOp::CreateInstance(r) => f.debug_tuple("CreateInstance").field(r).finish(),
            WriteOp::UpdateInstance(r) => f.debug_tuple("UpdateInstance").field(r).finish(),
            WriteOp::DeleteInstance { id } => {
                f.debug_struct("DeleteInstance").field("id", id).finish()
            }
            WriteOp::Subscribe(r) => f.debug_tuple("Subscribe").field(r).finish(),
            WriteOp::Unsubscribe {
                instance_id,
                subaccount_id,
            } => f
                .debug_struct("Unsubscribe")
                .field("instance_id", instance_id)
                .field("subaccount_id", subaccount_id)
                .finish(),
            WriteOp::SetSubdomain {
                subaccount_id,
                subdomain,
            } => f
                .debug_struct("SetSubdomain")
                .field("subaccount_id", subaccount_id)
                .field("subdomain", subdomain)
                .finish(),
            WriteOp::CreateBinding(r) => f.debug_tuple("CreateBinding").field(r).finish(),
            WriteOp::DeleteBinding { id } => {
                f.debug_struct("DeleteBinding").field("id", id).finish()
            }
            WriteOp::PutEntity {
                owner,
                kind,
                name,
                body,
                mode,
            } => f
                .debug_struct("PutEntity")
                .field("owner", owner)
                .field("kind", kind)
                .field("name", name)
                .field("body", &format_args!("<{} bytes>", body.len()))
                .field("mode", mode)
                .finish(),
            WriteOp::SetLabels {
                owner,
                kind,
                name,
                labels,
            } => f
                .debug_struct("SetLabels")
                .field("owner", owner)
                .field("kind", kind)
                .field("name", name)
                .field("labels", labels)
                .finish(),
            WriteOp::PatchLabels {
                owner,
                kind,
                name,
                action,
                labels,
            } => f
                .debug_struct("PatchLabels")
                .field("owner", owner)
                .field("kind", kind)
                .field("name", name)
                .field("action", action)
                .field("labels", labels)
                .finish(),
            WriteOp::DeleteEntity { owner, kind, name } => f
                .debug_struct("DeleteEntity")
                .field("owner", owner)
                .field("kind", kind)
                .field("name", name)
                .finish(),
            WriteOp::ExpectEntity {
                owner,
                kind,
                name,
                etags,
            } => f
                .debug_struct("ExpectEntity")
                .field("owner", owner)
                .field("kind", kind)
                .field("name", name)
                .field("etags", etags)
                .finish(),
            WriteOp::PutSamlKey(r) => f.debug_tuple("PutSamlKey").field(r).finish(),
            WriteOp::CreateSamlKey(r) => f.debug_tuple("CreateSamlKey").field(r).finish(),
            WriteOp::PutSecret {
                name, if_absent, ..
            } => f
                .debug_struct("PutSecret")
                .field("name", name)
                .field("if_absent", if_absent)
                .finish_non_exhaustive(),
            WriteOp::DeleteSamlKey {
                subaccount_id,
                slot,
            } => f
                .debug_struct("DeleteSamlKey")
                .field("subaccount_id", subaccount_id)
                .field("slot", slot)
                .finish(),
        }
    }
}

/// What one operation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Created {
        etag: Option<String>,
    },
    Updated {
        etag: Option<String>,
    },
    /// `CreateIfAbsent` found an existing entry and left it.
    Unchanged,
    Deleted,
    /// A delete found nothing.
    Missing,
    /// A precondition held.
    Checked,
}

/// One event of the audit log: who did what to which entity, and how it ended. It holds names
/// and ids only, never a secret or a property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Given by the store when it records the event (0 before); grows with every event.
    pub id: i64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    /// The binding's client id, `broker` for the platform, `signpost` for the server's own jobs.
    pub actor: String,
    pub subaccount_id: Option<String>,
    pub instance_id: Option<String>,
    /// What was done (`create`, `provision`, `issue`, ...).
    pub action: String,
    /// What it was done to (`destination`, `instance`, `token`, ...) and its name.
    pub entity_kind: Option<String>,
    pub entity_name: Option<String>,
    /// The HTTP status the operation ended with; below 400 is a success.
    pub status: u16,
    /// The request's `x-request-id`, when the event comes from a request.
    pub request_id: Option<String>,
}

impl AuditEvent {
    /// `success` or `failure`, from the status.
    pub fn outcome(&self) -> &'static str {
        if self.status < 400 {
            "success"
        } else {
            "failure"
        }
    }
}

/// Which audit events to read: newest first, from `since_ms` on, after the position `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuditQuery {
    pub since_ms: Option<i64>,
    /// Only events older than this one, in the order of the log (`(at_ms, id)`): the last event
    /// of the previous page.
    pub before: Option<(i64, i64)>,
    pub limit: u32,
}
