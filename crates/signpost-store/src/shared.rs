//! What every engine shares so that their data stays interchangeable: the associated data that
//! binds each ciphertext to its row, and the bootstrap of the data key wrapped by the master key.

use secrecy::SecretString;
use signpost_model::{labels_match, EntityKind, Label, OwnerRef};

use crate::crypto::{Cipher, MasterKey};
use crate::records::{ListPage, ListQuery, SamlSlot, StoredEntity};
use crate::{Error, Result};

/// The `meta` row holding the wrapped data key.
pub(crate) const DATA_KEY: &str = "data_key";
const DATA_KEY_AAD: &[u8] = b"signpost data key v1";

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Associated data binding an entity ciphertext to its row.
pub(crate) fn entity_aad(owner: &OwnerRef, kind: EntityKind, name: &str) -> Vec<u8> {
    format!(
        "entity\0{}\0{}\0{}\0{}",
        owner.level.as_str(),
        owner.id,
        kind.as_str(),
        name
    )
    .into_bytes()
}

pub(crate) fn binding_aad(id: &str) -> Vec<u8> {
    format!("binding\0{id}").into_bytes()
}

pub(crate) fn saml_aad(subaccount: &str, slot: SamlSlot) -> Vec<u8> {
    format!("saml-key\0{subaccount}\0{}", slot.as_str()).into_bytes()
}

pub(crate) fn secret_aad(name: &str) -> Vec<u8> {
    format!("secret\0{name}").into_bytes()
}

pub(crate) fn key_aad(kid: &str) -> Vec<u8> {
    format!("signing-key\0{kid}").into_bytes()
}

/// A fresh random data key wrapped by `master`, for an engine to insert if no key is stored yet.
pub(crate) fn new_wrapped_data_key(master: &MasterKey) -> Vec<u8> {
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
    master.cipher().encrypt(&key, DATA_KEY_AAD)
}

/// Unwraps the stored data key with `master`.
pub(crate) fn open_data_key(master: &MasterKey, stored: &[u8]) -> Result<Cipher> {
    let plain = master
        .cipher()
        .decrypt(stored, DATA_KEY_AAD)
        .ok_or(Error::WrongMasterKey)?;
    let arr: [u8; 32] = plain.try_into().map_err(|_| Error::WrongMasterKey)?;
    Ok(Cipher::from_key(&arr))
}

/// Decrypts a secret stored as UTF-8 text.
pub(crate) fn decrypt_text(cipher: &Cipher, blob: &[u8], aad: &[u8]) -> Result<SecretString> {
    let plain = cipher.decrypt(blob, aad).ok_or(Error::Decrypt)?;
    Ok(SecretString::from(
        String::from_utf8(plain).map_err(|_| Error::Decrypt)?,
    ))
}

/// Reads one column of a row of either engine.
fn col<'r, R, T>(row: &'r R, name: &'static str) -> Result<T>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(row.try_get(name)?)
}

/// A `subscriptions` row, on either engine.
pub(crate) fn subscription_from_row<'r, R>(row: &'r R) -> Result<crate::records::SubscriptionRecord>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::records::SubscriptionRecord {
        instance_id: col(row, "instance_id")?,
        subaccount_id: col(row, "subaccount_id")?,
        created_at: col(row, "created_at")?,
    })
}

/// A `subaccounts` row, on either engine.
pub(crate) fn subaccount_from_row<'r, R>(row: &'r R) -> Result<crate::records::SubaccountRecord>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::records::SubaccountRecord {
        id: col(row, "id")?,
        subdomain: col(row, "subdomain")?,
    })
}

/// An `instances` row, on either engine.
pub(crate) fn instance_from_row<'r, R>(row: &'r R) -> Result<crate::records::InstanceRecord>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(crate::records::InstanceRecord {
        id: col(row, "id")?,
        subaccount_id: col(row, "subaccount_id")?,
        service_id: col(row, "service_id")?,
        plan_id: col(row, "plan_id")?,
        organization_guid: col(row, "organization_guid")?,
        space_guid: col(row, "space_guid")?,
        context: col(row, "context")?,
        request_digest: col(row, "request_digest")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        subscriber_access: col(row, "subscriber_access")?,
    })
}

/// A binding's `scopes` column: a JSON array of strings, or NULL for none.
pub(crate) fn scopes_from_column(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The `scopes` column of a binding's scopes.
pub(crate) fn scopes_to_column(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| serde_json::to_string(scopes).unwrap_or_default())
}

/// The outcome of a delete that touched `rows` rows.
pub(crate) fn deleted(rows: u64) -> crate::records::WriteOutcome {
    if rows == 1 {
        crate::records::WriteOutcome::Deleted
    } else {
        crate::records::WriteOutcome::Missing
    }
}

/// An `audit_events` row, on either engine.
pub(crate) fn audit_from_row<'r, R>(row: &'r R) -> Result<crate::records::AuditEvent>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: i64 = col(row, "status")?;
    Ok(crate::records::AuditEvent {
        id: col(row, "id")?,
        at_ms: col(row, "at_ms")?,
        actor: col(row, "actor")?,
        subaccount_id: col(row, "subaccount_id")?,
        instance_id: col(row, "instance_id")?,
        action: col(row, "action")?,
        entity_kind: col(row, "entity_kind")?,
        entity_name: col(row, "entity_name")?,
        status: u16::try_from(status).unwrap_or(u16::MAX),
        request_id: col(row, "request_id")?,
    })
}

/// The columns an audit query reads, in `audit_from_row`'s names.
pub(crate) const AUDIT_COLUMNS: &str = "id, at_ms, actor, subaccount_id, instance_id, action, entity_kind, entity_name, status, request_id";

/// The answer of a [`crate::WriteOp::ExpectEntity`] given the entity's `current` ETag.
pub(crate) fn expect(
    index: usize,
    kind: EntityKind,
    name: &str,
    etags: &[String],
    current: Option<String>,
) -> Result<crate::WriteOutcome> {
    match current {
        Some(etag) if etags.iter().any(|e| e == &etag) => Ok(crate::WriteOutcome::Checked),
        current => Err(Error::Precondition {
            index,
            kind: kind.noun(),
            name: name.to_owned(),
            current,
        }),
    }
}

/// An entity's labels from their column (NULL when it has none).
pub(crate) fn labels_from_column(column: Option<String>) -> Result<Vec<Label>> {
    match column {
        None => Ok(Vec::new()),
        // Unreadable stored labels are the database's fault, not the request's: a decode error.
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| Error::Database(sqlx::Error::Decode(e.into())))
        }
    }
}

/// The column value of a set of labels (NULL for none).
pub(crate) fn labels_to_column(labels: &[Label]) -> Option<String> {
    if labels.is_empty() {
        None
    } else {
        Some(serde_json::to_string(labels).unwrap_or_else(|_| "[]".into()))
    }
}

/// The query without its label filter and without its window: every entity the rest of the
/// filter selects, for [`select_labelled`] to filter and cut.
pub(crate) fn unlabelled(query: &ListQuery) -> ListQuery {
    ListQuery {
        labels: Vec::new(),
        offset: 0,
        limit: None,
        count_total: false,
        ..query.clone()
    }
}

/// The page of `query` out of `all` (in name order): the entities whose labels match every
/// clause of the query's label filter, counted, then offset and limited.
pub(crate) fn select_labelled(all: Vec<StoredEntity>, query: &ListQuery) -> ListPage {
    let matching: Vec<StoredEntity> = all
        .into_iter()
        .filter(|e| labels_match(&e.labels, &query.labels))
        .collect();
    let total = query.count_total.then_some(matching.len() as u64);
    let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
    let limit = query
        .limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(usize::MAX);
    ListPage {
        items: matching.into_iter().skip(offset).take(limit).collect(),
        total,
    }
}

/// The columns of an `entities` row as stored (`name`, `body` still encrypted, `etag`,
/// `modified_at`, `labels`), however they were read.
pub(crate) struct EntityColumns {
    pub name: String,
    pub body: Vec<u8>,
    pub etag: String,
    pub modified_at: i64,
    pub labels: Option<String>,
}

impl EntityColumns {
    /// The entity of `owner`, its body decrypted.
    pub(crate) fn decrypt(
        self,
        cipher: &Cipher,
        owner: &OwnerRef,
        kind: EntityKind,
    ) -> Result<StoredEntity> {
        let body = cipher
            .decrypt(&self.body, &entity_aad(owner, kind, &self.name))
            .ok_or(Error::Decrypt)?;
        Ok(StoredEntity {
            owner: owner.clone(),
            kind,
            name: self.name,
            body,
            etag: self.etag,
            modified_at: self.modified_at,
            labels: labels_from_column(self.labels)?,
        })
    }
}

/// An `entities` row (`name`, `body`, `etag`, `modified_at`, `labels`) of `owner`, decrypted, on
/// either engine.
pub(crate) fn entity_from_row<'r, R>(
    cipher: &Cipher,
    row: &'r R,
    owner: &OwnerRef,
    kind: EntityKind,
) -> Result<StoredEntity>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    EntityColumns {
        name: col(row, "name")?,
        body: col(row, "body")?,
        etag: col(row, "etag")?,
        modified_at: col(row, "modified_at")?,
        labels: col(row, "labels")?,
    }
    .decrypt(cipher, owner, kind)
}
