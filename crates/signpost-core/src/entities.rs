//! The destination configuration API v1: list, create, update, get, delete and bulk delete of
//! destinations, fragments and certificates on subaccount and instance level.

use serde_json::{json, Map, Value};
use signpost_model::{EntityKind, Label, Level, OwnerRef};
use signpost_store::{ListQuery, NameFilter, PutMode, WriteOp, WriteOutcome};
use signpost_wire::{
    certificate_from_json, destination_from_json, fragment_from_json, BodyShape, BulkDeleteItem,
    BulkItem, EntityError,
};

use crate::access::Access;
use crate::audit::Entry;
use crate::body::{body_json, certificate_body, properties_body, public_body};
use crate::{Error, Principal, Result, Signpost};

/// A list request's mode (API.md §1.1); the modes exclude each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListMode {
    Default {
        filter: NameFilter,
        /// `Label['key'] HAS ('v', ...)` clauses, all of which an entity must satisfy.
        labels: Vec<Label>,
        include_metadata: bool,
    },
    /// `$select=Name`.
    NamesOnly,
    Page {
        page: u64,
        page_size: u64,
        page_count: bool,
        entity_count: bool,
    },
}

#[derive(Debug, Clone, Default)]
pub struct ListResult {
    pub items: Vec<Value>,
    pub page_count: Option<u64>,
    pub entity_count: Option<u64>,
    /// `(previous, next)` page numbers for the `Link` header in paging mode.
    pub links: Option<(Option<u64>, Option<u64>)>,
}

/// POST or PUT result: one object, or an array with a result per item (`all_ok` tells 201/200
/// from 207).
#[derive(Debug, Clone)]
pub enum WriteResult {
    One,
    Many { items: Vec<BulkItem>, all_ok: bool },
}

#[derive(Debug, Clone)]
pub struct DeleteSummary {
    pub count: u64,
    pub summary: Vec<BulkDeleteItem>,
}

/// Destination properties that name a certificate.
const CERTIFICATE_REFERENCES: &[&str] = &[
    "KeyStoreLocation",
    "TrustStoreLocation",
    "tokenService.KeyStoreLocation",
    "tokenService.TrustStoreLocation",
];

/// A validated entity ready to be written.
struct Parsed {
    name: String,
    body: Vec<u8>,
}

fn parse_entity(kind: EntityKind, value: &Value) -> std::result::Result<Parsed, EntityError> {
    match kind {
        EntityKind::Destination => destination_from_json(value).map(|d| Parsed {
            name: d.name().to_owned(),
            body: properties_body(d.properties()),
        }),
        EntityKind::Fragment => fragment_from_json(value).map(|f| Parsed {
            name: f.name().to_owned(),
            body: properties_body(f.properties()),
        }),
        EntityKind::Certificate => {
            let c = certificate_from_json(value)?;
            // Validated now: the format from the content, the password, complete chains.
            let bytes =
                crate::certificates::decode_content(&c.content).map_err(|reason| EntityError {
                    name: Some(c.name.clone()),
                    reason,
                })?;
            crate::certificates::validate_file(&bytes, c.password.as_deref()).map_err(
                |reason| EntityError {
                    name: Some(c.name.clone()),
                    reason,
                },
            )?;
            Ok(Parsed {
                name: c.name.clone(),
                body: certificate_body(&c),
            })
        }
    }
}

impl Signpost {
    /// A body item made ready to store: validated, or for a certificate with `Attributes`,
    /// generated from the built-in CA.
    async fn prepare(&self, kind: EntityKind, value: &Value) -> Result<Parsed> {
        if kind == EntityKind::Certificate && value.get("Attributes").is_some() {
            let gen = crate::certificates::generation(value)?;
            let (name, body) = self.generate_certificate(gen).await?;
            return Ok(Parsed { name, body });
        }
        let parsed = if kind == EntityKind::Certificate {
            // Decrypting an uploaded keystore (PBKDF2, scrypt) runs on the CPU pool.
            let value = value.clone();
            signpost_oauth::cpu::run(move || parse_entity(kind, &value))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?
        } else {
            parse_entity(kind, value)
        };
        parsed.map_err(|e| Error::BadRequest(invalid(kind, &e)))
    }
}

fn invalid(kind: EntityKind, e: &EntityError) -> String {
    match &e.name {
        Some(n) => format!("Invalid {} '{n}': {}", kind.noun(), e.reason),
        None => format!("Invalid {}: {}", kind.noun(), e.reason),
    }
}

impl Signpost {
    pub async fn list_entities(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        mode: ListMode,
    ) -> Result<ListResult> {
        self.may(who, level, kind, Access::Read).await?;
        let owner = who.owner(level);
        let (query, metadata, names_only) = match &mode {
            ListMode::Default {
                filter,
                labels,
                include_metadata,
            } => (
                ListQuery {
                    filter: filter.clone(),
                    labels: labels.clone(),
                    ..Default::default()
                },
                *include_metadata,
                false,
            ),
            ListMode::NamesOnly => (ListQuery::default(), false, true),
            ListMode::Page {
                page, page_size, ..
            } => (
                ListQuery {
                    filter: NameFilter::All,
                    // A page far past the end is an empty page, never an overflow: both engines
                    // take a signed 64-bit OFFSET.
                    offset: page
                        .saturating_sub(1)
                        .saturating_mul(*page_size)
                        .min(i64::MAX as u64),
                    limit: Some(*page_size),
                    count_total: true,
                    from: None,
                    labels: Vec::new(),
                },
                false,
                false,
            ),
        };
        let page = self.store().list_entities(&owner, kind, &query).await?;
        let mut items = Vec::with_capacity(page.items.len());
        for e in &page.items {
            if names_only {
                items.push(json!({ "Name": e.name }));
                continue;
            }
            let mut obj = public_body(e)?;
            if metadata {
                obj.insert(
                    "$metadata".into(),
                    json!({ "modification_time": rfc3339_ms(e.modified_at), "etag": e.etag }),
                );
            }
            items.push(Value::Object(obj));
        }
        let mut result = ListResult {
            items,
            ..Default::default()
        };
        if let ListMode::Page {
            page: p,
            page_size,
            page_count,
            entity_count,
        } = mode
        {
            let total = page.total.unwrap_or_default();
            let pages = total.div_ceil(page_size).max(1);
            if p > pages && total > 0 {
                return Err(Error::BadRequest(format!(
                    "$page {p} is beyond the last page ({pages})"
                )));
            }
            result.page_count = page_count.then_some(pages);
            result.entity_count = entity_count.then_some(total);
            result.links = Some(((p > 1).then(|| p - 1), (p < pages).then(|| p + 1)));
        }
        Ok(result)
    }

    /// One write of one entity, after the `If-Match` precondition when there is one; maps store
    /// errors to this API's errors.
    async fn put_one(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        parsed: Parsed,
        mode: PutMode,
        if_match: Option<&[String]>,
    ) -> Result<Option<String>> {
        let mut ops = Vec::with_capacity(2);
        if let Some(etags) = if_match {
            ops.push(WriteOp::ExpectEntity {
                owner: owner.clone(),
                kind,
                name: parsed.name.clone(),
                etags: etags.to_vec(),
            });
        }
        ops.push(WriteOp::PutEntity {
            owner: owner.clone(),
            kind,
            name: parsed.name,
            body: parsed.body,
            mode,
        });
        let outcome = self.write(ops).await?;
        Ok(outcome.into_iter().find_map(|o| match o {
            WriteOutcome::Created { etag } | WriteOutcome::Updated { etag } => etag,
            _ => None,
        }))
    }

    pub async fn create_entities(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        body: BodyShape,
    ) -> Result<WriteResult> {
        self.write_entities(who, level, kind, body, PutMode::Create, None)
            .await
    }

    /// PUT of one entity or an array. `if_match` (the ETags of an `If-Match` header, `*` left
    /// out) is a precondition of a single entity: it is replaced only while its ETag is one of
    /// them, else a 412 with the current ETag.
    pub async fn update_entities(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        body: BodyShape,
        if_match: Option<&[String]>,
    ) -> Result<WriteResult> {
        if if_match.is_some() && matches!(body, BodyShape::Many(_)) {
            return Err(Error::BadRequest(
                "If-Match applies to one entity, not to an array".into(),
            ));
        }
        self.write_entities(who, level, kind, body, PutMode::Replace, if_match)
            .await
    }

    /// POST (`Create`, 201) or PUT (`Replace`, 200) of one object or an array; every item is
    /// an event of the audit log.
    async fn write_entities(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        body: BodyShape,
        mode: PutMode,
        if_match: Option<&[String]>,
    ) -> Result<WriteResult> {
        self.may(who, level, kind, Access::Write).await?;
        let owner = who.owner(level);
        let ok = if mode == PutMode::Create { 201 } else { 200 };
        match body {
            BodyShape::One(v) => {
                let written = async {
                    let parsed = self.prepare(kind, &v).await?;
                    self.put_one(&owner, kind, parsed, mode, if_match).await
                }
                .await;
                let entry = write_entry(who, level, kind, &v, mode);
                self.audited(entry, ok, written).await?;
                Ok(WriteResult::One)
            }
            BodyShape::Many(values) => {
                let items = self.bulk(&owner, kind, &values, mode, ok).await;
                let entries = values
                    .iter()
                    .zip(&items)
                    .map(|(v, item)| (write_entry(who, level, kind, v, mode), item.status))
                    .collect();
                self.audit(entries).await;
                let all_ok = items.iter().all(|i| i.status == ok);
                Ok(WriteResult::Many { items, all_ok })
            }
        }
    }

    /// Array bodies: every item on its own (SAP's 207 semantics), in order. The valid items
    /// are written in one transaction, creations as create-if-absent so that a name that exists
    /// fails its item alone (409, as written one at a time); if that transaction fails as a whole
    /// (a replaced name that does not exist, the entity limit, the database), each valid item is
    /// written on its own instead, so every item gets the answer it would get alone.
    async fn bulk(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        values: &[Value],
        mode: PutMode,
        ok: u16,
    ) -> Vec<BulkItem> {
        let mut prepared = Vec::with_capacity(values.len());
        for v in values {
            prepared.push(self.prepare(kind, v).await);
        }
        let batch_mode = if mode == PutMode::Create {
            PutMode::CreateIfAbsent
        } else {
            mode
        };
        let ops: Vec<WriteOp> = prepared
            .iter()
            .flatten()
            .map(|p| WriteOp::PutEntity {
                owner: owner.clone(),
                kind,
                name: p.name.clone(),
                body: p.body.clone(),
                mode: batch_mode,
            })
            .collect();
        let mut at_once = match ops.len() {
            0 => Some(Vec::new().into_iter()),
            _ => self.write(ops).await.ok().map(Vec::into_iter),
        };
        let mut items = Vec::with_capacity(values.len());
        for (v, parsed) in values.iter().zip(prepared) {
            let name = item_name(kind, v).to_owned();
            let written = match (parsed, at_once.as_mut()) {
                (Err(e), _) => Err(e),
                (Ok(parsed), None) => self.put_one(owner, kind, parsed, mode, None).await,
                (Ok(parsed), Some(outcomes)) => match outcomes.next() {
                    Some(WriteOutcome::Created { etag } | WriteOutcome::Updated { etag }) => {
                        Ok(etag)
                    }
                    _ => Err(Error::from(signpost_store::Error::Conflict {
                        index: 0,
                        kind: kind.noun(),
                        name: parsed.name,
                    })),
                },
            };
            items.push(match written {
                Ok(etag) => BulkItem {
                    name,
                    status: ok,
                    etag,
                    cause: None,
                },
                Err(e) => BulkItem {
                    name,
                    status: e.status(),
                    etag: None,
                    cause: Some(e.to_string()),
                },
            });
        }
        items
    }

    pub async fn get_entity(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        name: &str,
    ) -> Result<(Map<String, Value>, String)> {
        self.may(who, level, kind, Access::Read).await?;
        let owner = who.owner(level);
        let entity = self
            .store()
            .get_entity(&owner, kind, name)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "The {} '{name}' does not exist on {level} level",
                    kind.noun()
                ))
            })?;
        Ok((public_body(&entity)?, entity.etag))
    }

    /// DELETE of one entity; `if_match` as for [`Self::update_entities`].
    pub async fn delete_entity(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        name: &str,
        if_match: Option<&[String]>,
    ) -> Result<()> {
        self.may(who, level, kind, Access::Write).await?;
        let deleted = async {
            if kind == EntityKind::Certificate {
                self.refuse_if_referenced(who, level, &[name.to_owned()])
                    .await?;
            }
            let mut ops = Vec::with_capacity(2);
            if let Some(etags) = if_match {
                ops.push(WriteOp::ExpectEntity {
                    owner: who.owner(level),
                    kind,
                    name: name.into(),
                    etags: etags.to_vec(),
                });
            }
            ops.push(WriteOp::DeleteEntity {
                owner: who.owner(level),
                kind,
                name: name.into(),
            });
            let outcome = self.write(ops).await?;
            match outcome.last() {
                Some(WriteOutcome::Deleted) => Ok(()),
                _ => Err(Error::NotFound(format!(
                    "The {} '{name}' does not exist on {level} level",
                    kind.noun()
                ))),
            }
        }
        .await;
        let entry = Entry::tenant(who, level, "delete", kind.as_str()).name(name);
        self.audited(entry, 200, deleted).await
    }

    /// Bulk DELETE with `$filter=Name in (...)`: one transaction, a summary per name.
    pub async fn delete_entities(
        &self,
        who: &Principal,
        level: Level,
        kind: EntityKind,
        names: Vec<String>,
    ) -> Result<DeleteSummary> {
        self.may(who, level, kind, Access::Write).await?;
        let entry = |name: &str| Entry::tenant(who, level, "delete", kind.as_str()).name(name);
        let written = async {
            if kind == EntityKind::Certificate {
                self.refuse_if_referenced(who, level, &names).await?;
            }
            let owner = who.owner(level);
            let ops = names
                .iter()
                .map(|n| WriteOp::DeleteEntity {
                    owner: owner.clone(),
                    kind,
                    name: n.clone(),
                })
                .collect();
            self.write(ops).await.map_err(Error::from)
        }
        .await;
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let status = e.status();
                self.audit(names.iter().map(|n| (entry(n), status)).collect())
                    .await;
                return Err(e);
            }
        };
        let mut count = 0;
        let mut events = Vec::with_capacity(names.len());
        let summary = names
            .into_iter()
            .zip(outcomes)
            .map(|(name, o)| {
                let deleted = o == WriteOutcome::Deleted;
                events.push((entry(&name), if deleted { 200 } else { 404 }));
                if deleted {
                    count += 1;
                    BulkDeleteItem {
                        name,
                        status: "DELETED".into(),
                        reason: None,
                    }
                } else {
                    BulkDeleteItem {
                        name,
                        status: "NOT_FOUND".into(),
                        reason: Some("Could not find configuration".into()),
                    }
                }
            })
            .collect();
        self.audit(events).await;
        Ok(DeleteSummary { count, summary })
    }
}

/// The name an item of a write body gives itself (empty when it gives none).
fn item_name(kind: EntityKind, v: &Value) -> &str {
    let key = if kind == EntityKind::Fragment {
        "FragmentName"
    } else {
        "Name"
    };
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The audit entry of writing one item: `create` or `update`, or `generate` for a certificate
/// made from `Attributes` by the built-in CA.
fn write_entry(who: &Principal, level: Level, kind: EntityKind, v: &Value, mode: PutMode) -> Entry {
    let action = if kind == EntityKind::Certificate && v.get("Attributes").is_some() {
        "generate"
    } else if mode == PutMode::Create {
        "create"
    } else {
        "update"
    };
    Entry::tenant(who, level, action, kind.as_str()).name(item_name(kind, v))
}

impl Signpost {
    /// A certificate that a destination uses cannot be deleted (409 naming the destinations).
    /// Instance-level destinations fall back to subaccount-level certificates, so those count
    /// for a subaccount-level certificate unless their instance has its own of that name.
    async fn refuse_if_referenced(
        &self,
        who: &Principal,
        level: Level,
        names: &[String],
    ) -> Result<()> {
        let mut owners = vec![who.owner(level)];
        if level == Level::Subaccount {
            owners.push(who.owner(Level::Instance));
        }
        let mut users = Vec::new();
        for owner in owners {
            let all = self
                .store()
                .list_entities(&owner, EntityKind::Destination, &ListQuery::default())
                .await?;
            for dest in &all.items {
                let props = body_json(dest)?;
                for key in CERTIFICATE_REFERENCES {
                    let Some(cert) = props.get(*key).and_then(Value::as_str) else {
                        continue;
                    };
                    if !names.iter().any(|n| n == cert) {
                        continue;
                    }
                    if owner.level != level
                        && self
                            .store()
                            .get_entity(&owner, EntityKind::Certificate, cert)
                            .await?
                            .is_some()
                    {
                        continue; // the instance's own certificate of that name shadows it
                    }
                    users.push(format!("'{}' ({} level, {key})", dest.name, owner.level));
                }
            }
        }
        if users.is_empty() {
            return Ok(());
        }
        Err(Error::Conflict(format!(
            "The certificate {} is used by the destination{} {}; change or delete {} first",
            names
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", "),
            if users.len() > 1 { "s" } else { "" },
            users.join(", "),
            if users.len() > 1 { "them" } else { "it" }
        )))
    }
}

fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(crate::rfc3339)
        .unwrap_or_default()
}
