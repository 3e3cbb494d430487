//! The write operations of a batch, written once for both engines: each [`WriteOp`] as the
//! statements that carry it out, over the few primitives an engine provides ([`Statements`]).
//! The SQL is the dialect both engines share (`$n` placeholders, `ON CONFLICT`, `RETURNING`);
//! the one place they differ, locking a checked row, is a [`Dialect`] setting.

use async_trait::async_trait;
use secrecy::ExposeSecret;
use signpost_model::{patch_labels, validate_labels, EntityKind, OwnerRef};

use crate::crypto::Cipher;
use crate::records::{AuditEvent, PutMode, SamlKeyRecord, WriteOp, WriteOutcome};
use crate::shared::{
    binding_aad, deleted, entity_aad, expect, labels_from_column, labels_to_column, saml_aad,
    scopes_to_column, secret_aad,
};
use crate::{Error, Result};

/// A value bound to a statement's next placeholder.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    Text(&'a str),
    OptText(Option<&'a str>),
    Int(i64),
    Blob(&'a [u8]),
    OptBlob(Option<&'a [u8]>),
}

/// What an engine's connection (inside the batch's transaction) runs for [`Writer`].
#[async_trait]
pub(crate) trait Statements: Send {
    /// Runs `sql` with `args`; the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;
    /// The integer in the first column of the first row, if there is a row.
    async fn int(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<i64>>;
    /// The text in the first column of the first row, if there is a row.
    async fn text(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<String>>;
    /// The text in the first column of every row.
    async fn texts(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<String>>;
}

/// [`Statements`] for an engine's connection type (`$conn`, of the sqlx database `$db`): binding
/// the [`Arg`]s and reading the first column are the same on every engine, only the types differ.
macro_rules! impl_statements {
    ($conn:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::ops::Statements for $conn {
            async fn execute(
                &mut self,
                sql: &str,
                args: &[$crate::ops::Arg<'_>],
            ) -> $crate::Result<u64> {
                Ok(bind_args(sqlx::query(sql), args)
                    .execute(self)
                    .await?
                    .rows_affected())
            }

            async fn int(
                &mut self,
                sql: &str,
                args: &[$crate::ops::Arg<'_>],
            ) -> $crate::Result<Option<i64>> {
                let row = bind_args(sqlx::query(sql), args)
                    .fetch_optional(self)
                    .await?;
                Ok(row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()?)
            }

            async fn text(
                &mut self,
                sql: &str,
                args: &[$crate::ops::Arg<'_>],
            ) -> $crate::Result<Option<String>> {
                let row = bind_args(sqlx::query(sql), args)
                    .fetch_optional(self)
                    .await?;
                Ok(row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()?)
            }

            async fn texts(
                &mut self,
                sql: &str,
                args: &[$crate::ops::Arg<'_>],
            ) -> $crate::Result<Vec<String>> {
                let rows = bind_args(sqlx::query(sql), args).fetch_all(self).await?;
                rows.iter()
                    .map(|r| sqlx::Row::try_get(r, 0).map_err(Into::into))
                    .collect()
            }
        }

        fn bind_args<'q>(
            mut q: sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>,
            args: &[$crate::ops::Arg<'q>],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            use $crate::ops::Arg;
            for arg in args {
                q = match *arg {
                    Arg::Text(v) => q.bind(v),
                    Arg::OptText(v) => q.bind(v),
                    Arg::Int(v) => q.bind(v),
                    Arg::Blob(v) => q.bind(v),
                    Arg::OptBlob(v) => q.bind(v),
                };
            }
            q
        }
    };
}
pub(crate) use impl_statements;

/// Where the engines' SQL differs.
#[derive(Clone, Copy)]
pub(crate) struct Dialect {
    /// Appended to the read of an [`WriteOp::ExpectEntity`]: locks the row until the batch
    /// commits where the engine can (SQLite's single writer makes that unnecessary).
    pub lock_row: &'static str,
}

/// Applies write operations with an engine's data key and entity limit.
pub(crate) struct Writer<'a> {
    pub cipher: &'a Cipher,
    pub max_entities: u32,
    pub dialect: Dialect,
}

fn created(rows: u64) -> WriteOutcome {
    if rows == 1 {
        WriteOutcome::Created { etag: None }
    } else {
        WriteOutcome::Unchanged
    }
}

impl Writer<'_> {
    /// Applies a batch's `ops` in order at time `now`: a run of creations in one collection goes
    /// in multi-row statements ([`INSERT_CHUNK`] rows each, one count update per statement),
    /// everything else one [`Self::apply`] at a time. The outcomes are those `apply` would give.
    pub async fn apply_all<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        ops: &[WriteOp],
        now: i64,
    ) -> Result<Vec<WriteOutcome>> {
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut index = 0;
        while index < ops.len() {
            let run = creation_run(&ops[index..]);
            if run > 1 {
                self.insert_entities(conn, index, &ops[index..index + run], now, &mut outcomes)
                    .await?;
                index += run;
            } else {
                outcomes.push(self.apply(conn, index, &ops[index], now).await?);
                index += 1;
            }
        }
        Ok(outcomes)
    }

    /// Inserts a run of [`creation_run`] (`ops[0]` is the batch's `first`th operation) in one
    /// statement, then counts the new rows once; pushes an outcome per operation.
    async fn insert_entities<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        first: usize,
        ops: &[WriteOp],
        now: i64,
        outcomes: &mut Vec<WriteOutcome>,
    ) -> Result<()> {
        let WriteOp::PutEntity {
            owner, kind, mode, ..
        } = &ops[0]
        else {
            unreachable!("creation_run counts entity creations only")
        };
        let (kind, mode) = (*kind, *mode);
        let rows: Vec<(&str, Vec<u8>, String)> = ops
            .iter()
            .map(|op| {
                let WriteOp::PutEntity { name, body, .. } = op else {
                    unreachable!("creation_run counts entity creations only")
                };
                let etag = self.cipher.digest(&[kind.as_str().as_bytes(), body]);
                let blob = self.cipher.encrypt(body, &entity_aad(owner, kind, name));
                (name.as_str(), blob, etag)
            })
            .collect();
        let key = entity_key(owner, kind, "");
        let mut args = vec![key[0], key[1], key[2], Arg::Int(now)];
        let mut sql = String::with_capacity(80 + rows.len() * 24);
        sql.push_str(
            "INSERT INTO entities (level, owner_id, kind, name, body, etag, modified_at) VALUES ",
        );
        for (i, (name, blob, etag)) in rows.iter().enumerate() {
            let n = 5 + 3 * i;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("($1, $2, $3, ${n}, ${}, ${}, $4)", n + 1, n + 2));
            args.extend([Arg::Text(name), Arg::Blob(blob), Arg::Text(etag)]);
        }
        sql.push_str(" ON CONFLICT (level, owner_id, kind, name) DO NOTHING RETURNING name");
        let mut inserted = conn.texts(&sql, &args).await?;
        // Which rows went in, in order (a name given twice went in the first time only).
        let went_in: Vec<bool> = rows
            .iter()
            .map(|(name, ..)| match inserted.iter().position(|n| n == name) {
                Some(at) => {
                    inserted.swap_remove(at);
                    true
                }
                None => false,
            })
            .collect();
        let conflict = (mode == PutMode::Create)
            .then(|| went_in.iter().position(|w| !w))
            .flatten();
        let created = went_in.iter().filter(|w| **w).count() as i64;
        if created > 0 {
            let count = conn
                .int(
                    "INSERT INTO entity_owners (level, owner_id, kind, entity_count) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (level, owner_id, kind) DO UPDATE SET entity_count = entity_owners.entity_count + $4
                     RETURNING entity_count",
                    &[key[0], key[1], key[2], Arg::Int(created)],
                )
                .await?
                .unwrap_or_default();
            // The row at which one-at-a-time inserts would have passed the limit, if any.
            let room = i64::from(self.max_entities) - (count - created);
            let over = went_in
                .iter()
                .enumerate()
                .filter(|(_, w)| **w)
                .nth(usize::try_from(room.max(0)).unwrap_or(usize::MAX))
                .map(|(i, _)| i);
            if over.is_some_and(|o| conflict.is_none_or(|c| o < c)) {
                return Err(Error::LimitExceeded {
                    kind: kind.noun(),
                    level: owner.level.as_str(),
                    limit: self.max_entities,
                });
            }
        }
        if let Some(at) = conflict {
            return Err(Error::Conflict {
                index: first + at,
                kind: kind.noun(),
                name: rows[at].0.to_owned(),
            });
        }
        outcomes.extend(rows.into_iter().zip(went_in).map(|((_, _, etag), w)| {
            if w {
                WriteOutcome::Created { etag: Some(etag) }
            } else {
                WriteOutcome::Unchanged
            }
        }));
        Ok(())
    }

    /// Applies `op`, the `index`th of its batch, at time `now`.
    pub async fn apply<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        index: usize,
        op: &WriteOp,
        now: i64,
    ) -> Result<WriteOutcome> {
        use Arg::*;
        match op {
            WriteOp::EnsureSubaccount(s) => {
                let rows = conn
                    .execute(
                        "INSERT INTO subaccounts (id, subdomain, created_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                        &[Text(&s.id), Text(&s.subdomain), Int(now)],
                    )
                    .await?;
                Ok(created(rows))
            }
            WriteOp::CreateInstance(i) => {
                let rows = conn
                    .execute(
                        "INSERT INTO instances (id, subaccount_id, service_id, plan_id, organization_guid, space_guid, context, request_digest, created_at, updated_at, subscriber_access)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) ON CONFLICT (id) DO NOTHING",
                        &[
                            Text(&i.id),
                            Text(&i.subaccount_id),
                            Text(&i.service_id),
                            Text(&i.plan_id),
                            OptText(i.organization_guid.as_deref()),
                            OptText(i.space_guid.as_deref()),
                            Text(&i.context),
                            Text(&i.request_digest),
                            Int(now),
                            OptText(i.subscriber_access.as_deref()),
                        ],
                    )
                    .await?;
                if rows == 0 {
                    return Err(Error::Conflict {
                        index,
                        kind: "instance",
                        name: i.id.clone(),
                    });
                }
                Ok(WriteOutcome::Created { etag: None })
            }
            WriteOp::UpdateInstance(i) => {
                let rows = conn
                    .execute(
                        "UPDATE instances SET plan_id = $1, context = $2, request_digest = $3, updated_at = $4, subscriber_access = $5 WHERE id = $6",
                        &[
                            Text(&i.plan_id),
                            Text(&i.context),
                            Text(&i.request_digest),
                            Int(now),
                            OptText(i.subscriber_access.as_deref()),
                            Text(&i.id),
                        ],
                    )
                    .await?;
                if rows == 0 {
                    return Err(Error::NotFound {
                        index,
                        kind: "instance",
                        name: i.id.clone(),
                    });
                }
                Ok(WriteOutcome::Updated { etag: None })
            }
            WriteOp::DeleteInstance { id } => {
                conn.execute("DELETE FROM bindings WHERE instance_id = $1", &[Text(id)])
                    .await?;
                // The instance's own level ('<id>') and its subscription levels ('<id>/<subaccount>').
                let prefix = format!("{id}/");
                for table in ["entities", "entity_owners"] {
                    conn.execute(
                        &format!(
                            "DELETE FROM {table} WHERE level = 'instance' AND (owner_id = $1 OR substr(owner_id, 1, length($2)) = $2)"
                        ),
                        &[Text(id), Text(&prefix)],
                    )
                    .await?;
                }
                conn.execute(
                    "DELETE FROM subscriptions WHERE instance_id = $1",
                    &[Text(id)],
                )
                .await?;
                let rows = conn
                    .execute("DELETE FROM instances WHERE id = $1", &[Text(id)])
                    .await?;
                Ok(deleted(rows))
            }
            WriteOp::Subscribe(sub) => {
                let known = conn
                    .int(
                        "SELECT (SELECT COUNT(*) FROM instances WHERE id = $1) + (SELECT COUNT(*) FROM subaccounts WHERE id = $2)",
                        &[Text(&sub.instance_id), Text(&sub.subaccount_id)],
                    )
                    .await?;
                if known != Some(2) {
                    return Err(Error::NotFound {
                        index,
                        kind: "instance or subaccount",
                        name: format!("{}/{}", sub.instance_id, sub.subaccount_id),
                    });
                }
                let rows = conn
                    .execute(
                        "INSERT INTO subscriptions (instance_id, subaccount_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (instance_id, subaccount_id) DO NOTHING",
                        &[Text(&sub.instance_id), Text(&sub.subaccount_id), Int(now)],
                    )
                    .await?;
                Ok(created(rows))
            }
            WriteOp::Unsubscribe {
                instance_id,
                subaccount_id,
            } => {
                let rows = conn
                    .execute(
                        "DELETE FROM subscriptions WHERE instance_id = $1 AND subaccount_id = $2",
                        &[Text(instance_id), Text(subaccount_id)],
                    )
                    .await?;
                if rows == 0 {
                    return Err(Error::NotFound {
                        index,
                        kind: "subscription",
                        name: format!("{instance_id}/{subaccount_id}"),
                    });
                }
                let owner = OwnerRef::subscription(instance_id, subaccount_id);
                for table in ["entities", "entity_owners"] {
                    conn.execute(
                        &format!("DELETE FROM {table} WHERE level = 'instance' AND owner_id = $1"),
                        &[Text(&owner.id)],
                    )
                    .await?;
                }
                Ok(WriteOutcome::Deleted)
            }
            WriteOp::SetSubdomain {
                subaccount_id,
                subdomain,
            } => {
                let rows = conn
                    .execute(
                        "UPDATE subaccounts SET subdomain = $1 WHERE id = $2",
                        &[Text(subdomain), Text(subaccount_id)],
                    )
                    .await?;
                if rows == 0 {
                    return Err(Error::NotFound {
                        index,
                        kind: "subaccount",
                        name: subaccount_id.clone(),
                    });
                }
                Ok(WriteOutcome::Updated { etag: None })
            }
            WriteOp::CreateBinding(b) => {
                let secret = b.client_secret.as_ref().map(|s| {
                    self.cipher
                        .encrypt(s.expose_secret().as_bytes(), &binding_aad(&b.id))
                });
                let scopes = scopes_to_column(&b.scopes);
                let rows = conn
                    .execute(
                        "INSERT INTO bindings (id, instance_id, client_id, secret, credential_type, request_digest, created_at, certificate, certificate_sha256, scopes)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                        &[
                            Text(&b.id),
                            Text(&b.instance_id),
                            Text(&b.client_id),
                            OptBlob(secret.as_deref()),
                            Text(&b.credential_type),
                            Text(&b.request_digest),
                            Int(now),
                            OptText(b.certificate.as_deref()),
                            OptText(b.certificate_sha256.as_deref()),
                            OptText(scopes.as_deref()),
                        ],
                    )
                    .await?;
                if rows == 0 {
                    return Err(Error::Conflict {
                        index,
                        kind: "binding",
                        name: b.id.clone(),
                    });
                }
                Ok(WriteOutcome::Created { etag: None })
            }
            WriteOp::DeleteBinding { id } => {
                let rows = conn
                    .execute("DELETE FROM bindings WHERE id = $1", &[Text(id)])
                    .await?;
                Ok(deleted(rows))
            }
            WriteOp::PutEntity {
                owner,
                kind,
                name,
                body,
                mode,
            } => {
                self.put_entity(conn, index, owner, *kind, name, body, *mode, now)
                    .await
            }
            WriteOp::PutSamlKey(k) => {
                self.saml_key(conn, k, now, "DO UPDATE SET private_key = excluded.private_key, certificate = excluded.certificate, created_at = excluded.created_at")
                    .await?;
                Ok(WriteOutcome::Updated { etag: None })
            }
            WriteOp::CreateSamlKey(k) => {
                Ok(created(self.saml_key(conn, k, now, "DO NOTHING").await?))
            }
            WriteOp::PutSecret {
                name,
                value,
                if_absent,
            } => {
                let blob = self
                    .cipher
                    .encrypt(value.expose_secret().as_bytes(), &secret_aad(name));
                let sql = if *if_absent {
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
                } else {
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, created_at = excluded.created_at"
                };
                let rows = conn
                    .execute(sql, &[Text(name), Blob(&blob), Int(now)])
                    .await?;
                Ok(created(rows))
            }
            WriteOp::DeleteSamlKey {
                subaccount_id,
                slot,
            } => {
                let rows = conn
                    .execute(
                        "DELETE FROM saml_keys WHERE subaccount_id = $1 AND slot = $2",
                        &[Text(subaccount_id), Text(slot.as_str())],
                    )
                    .await?;
                Ok(deleted(rows))
            }
            WriteOp::ExpectEntity {
                owner,
                kind,
                name,
                etags,
            } => {
                let sql = format!(
                    "SELECT etag FROM entities WHERE level = $1 AND owner_id = $2 AND kind = $3 AND name = $4{}",
                    self.dialect.lock_row
                );
                let current = conn.text(&sql, &entity_key(owner, *kind, name)).await?;
                expect(index, *kind, name, etags, current)
            }
            WriteOp::SetLabels {
                owner,
                kind,
                name,
                labels,
            } => {
                let column = labels_to_column(labels);
                self.set_labels(conn, index, owner, *kind, name, column.as_deref())
                    .await
            }
            WriteOp::PatchLabels {
                owner,
                kind,
                name,
                action,
                labels,
            } => {
                // Whether the row exists and what it holds: its labels, or '' for none.
                let sql = format!(
                    "SELECT COALESCE(labels, '') FROM entities WHERE level = $1 AND owner_id = $2 AND kind = $3 AND name = $4{}",
                    self.dialect.lock_row
                );
                let current = conn
                    .text(&sql, &entity_key(owner, *kind, name))
                    .await?
                    .ok_or_else(|| Error::NotFound {
                        index,
                        kind: kind.noun(),
                        name: name.to_owned(),
                    })?;
                let current = labels_from_column((!current.is_empty()).then_some(current))?;
                let next = patch_labels(&current, *action, labels);
                validate_labels(&next).map_err(|e| Error::Invalid(e.to_string()))?;
                let column = labels_to_column(&next);
                self.set_labels(conn, index, owner, *kind, name, column.as_deref())
                    .await
            }
            WriteOp::DeleteEntity { owner, kind, name } => {
                let key = entity_key(owner, *kind, name);
                let rows = conn
                    .execute(
                        "DELETE FROM entities WHERE level = $1 AND owner_id = $2 AND kind = $3 AND name = $4",
                        &key,
                    )
                    .await?;
                if rows > 0 {
                    conn.execute(
                        "UPDATE entity_owners SET entity_count = entity_count - 1 WHERE level = $1 AND owner_id = $2 AND kind = $3",
                        &key[..3],
                    )
                    .await?;
                }
                Ok(deleted(rows))
            }
        }
    }

    /// Writes an entity's labels column; NotFound when the entity does not exist.
    async fn set_labels<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        index: usize,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
        column: Option<&str>,
    ) -> Result<WriteOutcome> {
        let key = entity_key(owner, kind, name);
        let rows = conn
            .execute(
                "UPDATE entities SET labels = $5 WHERE level = $1 AND owner_id = $2 AND kind = $3 AND name = $4",
                &[key[0], key[1], key[2], key[3], Arg::OptText(column)],
            )
            .await?;
        if rows == 0 {
            return Err(Error::NotFound {
                index,
                kind: kind.noun(),
                name: name.to_owned(),
            });
        }
        Ok(WriteOutcome::Updated { etag: None })
    }

    /// Inserts a SAML key pair; `on_conflict` says what an occupied slot does. The rows changed.
    async fn saml_key<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        k: &SamlKeyRecord,
        now: i64,
        on_conflict: &str,
    ) -> Result<u64> {
        let blob = self.cipher.encrypt(
            k.private_key_pem.expose_secret().as_bytes(),
            &saml_aad(&k.subaccount_id, k.slot),
        );
        conn.execute(
            &format!(
                "INSERT INTO saml_keys (subaccount_id, slot, private_key, certificate, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (subaccount_id, slot) {on_conflict}"
            ),
            &[
                Arg::Text(&k.subaccount_id),
                Arg::Text(k.slot.as_str()),
                Arg::Blob(&blob),
                Arg::Text(&k.certificate_pem),
                Arg::Int(now),
            ],
        )
        .await
    }

    /// One entity write. Each mode is decided by the database in one statement where it can be
    /// (insert-if-absent, update-if-present), never by a read followed by a blind write, so
    /// concurrent writers of one name get the same answers as serial ones.
    #[allow(clippy::too_many_arguments)]
    async fn put_entity<S: Statements + ?Sized>(
        &self,
        conn: &mut S,
        index: usize,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
        body: &[u8],
        mode: PutMode,
        now: i64,
    ) -> Result<WriteOutcome> {
        let etag = self.cipher.digest(&[kind.as_str().as_bytes(), body]);
        let blob = self.cipher.encrypt(body, &entity_aad(owner, kind, name));
        let key = entity_key(owner, kind, name);
        let values = [Arg::Blob(&blob), Arg::Text(&etag), Arg::Int(now)];
        let row: [Arg<'_>; 7] = [
            key[0], key[1], key[2], key[3], values[0], values[1], values[2],
        ];
        let created = match mode {
            PutMode::Create => {
                if conn.execute(INSERT_ENTITY, &row).await? == 0 {
                    return Err(Error::Conflict {
                        index,
                        kind: kind.noun(),
                        name: name.to_owned(),
                    });
                }
                true
            }
            PutMode::CreateIfAbsent => {
                if conn.execute(INSERT_ENTITY, &row).await? == 0 {
                    return Ok(WriteOutcome::Unchanged);
                }
                true
            }
            PutMode::Replace => {
                if conn.execute(UPDATE_ENTITY, &row).await? == 0 {
                    return Err(Error::NotFound {
                        index,
                        kind: kind.noun(),
                        name: name.to_owned(),
                    });
                }
                false
            }
            PutMode::Upsert => {
                // Update, else insert; if a concurrent writer inserted in between, update that.
                if conn.execute(UPDATE_ENTITY, &row).await? == 1 {
                    false
                } else if conn.execute(INSERT_ENTITY, &row).await? == 1 {
                    true
                } else {
                    conn.execute(UPDATE_ENTITY, &row).await?;
                    false
                }
            }
        };
        if !created {
            return Ok(WriteOutcome::Updated { etag: Some(etag) });
        }
        let count = conn
            .int(
                "INSERT INTO entity_owners (level, owner_id, kind, entity_count) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (level, owner_id, kind) DO UPDATE SET entity_count = entity_owners.entity_count + 1
                 RETURNING entity_count",
                &key[..3],
            )
            .await?
            .unwrap_or_default();
        if count > i64::from(self.max_entities) {
            return Err(Error::LimitExceeded {
                kind: kind.noun(),
                level: owner.level.as_str(),
                limit: self.max_entities,
            });
        }
        Ok(WriteOutcome::Created { etag: Some(etag) })
    }
}

/// Records audit events (inside the caller's transaction), up to [`AUDIT_CHUNK`] rows a statement.
pub(crate) async fn insert_audit<S: Statements + ?Sized>(
    conn: &mut S,
    events: &[AuditEvent],
) -> Result<()> {
    const COLUMNS: usize = 10;
    for chunk in events.chunks(AUDIT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO audit_events (at_ms, actor, subaccount_id, instance_id, action, entity_kind, entity_name, outcome, status, request_id) VALUES ",
        );
        let mut args = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, e) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..COLUMNS {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i * COLUMNS + c + 1));
            }
            sql.push(')');
            args.extend([
                Arg::Int(e.at_ms),
                Arg::Text(&e.actor),
                Arg::OptText(e.subaccount_id.as_deref()),
                Arg::OptText(e.instance_id.as_deref()),
                Arg::Text(&e.action),
                Arg::OptText(e.entity_kind.as_deref()),
                Arg::OptText(e.entity_name.as_deref()),
                Arg::Text(e.outcome()),
                Arg::Int(i64::from(e.status)),
                Arg::OptText(e.request_id.as_deref()),
            ]);
        }
        conn.execute(&sql, &args).await?;
    }
    Ok(())
}

/// The most audit events one insert of [`insert_audit`] carries (10 placeholders each).
const AUDIT_CHUNK: usize = 100;

/// The most rows one multi-row insert of [`Writer::apply_all`] carries (3 placeholders each).
const INSERT_CHUNK: usize = 100;

/// How many of the first operations of `ops` (at most [`INSERT_CHUNK`]) create entities in one
/// collection with one mode, `Create` or `CreateIfAbsent`: what one multi-row insert can carry.
fn creation_run(ops: &[WriteOp]) -> usize {
    let Some(WriteOp::PutEntity {
        owner, kind, mode, ..
    }) = ops.first()
    else {
        return 0;
    };
    if !matches!(mode, PutMode::Create | PutMode::CreateIfAbsent) {
        return 0;
    }
    ops.iter()
        .take(INSERT_CHUNK)
        .take_while(|op| {
            matches!(op, WriteOp::PutEntity { owner: o, kind: k, mode: m, .. }
                if o == owner && k == kind && m == mode)
        })
        .count()
}

/// Inserts an entity unless its name exists (arguments: the key, then body, etag, modified_at).
const INSERT_ENTITY: &str = "INSERT INTO entities (level, owner_id, kind, name, body, etag, modified_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (level, owner_id, kind, name) DO NOTHING";

/// Replaces an entity's body if its name exists (the same arguments as [`INSERT_ENTITY`]).
const UPDATE_ENTITY: &str = "UPDATE entities SET body = $5, etag = $6, modified_at = $7
     WHERE level = $1 AND owner_id = $2 AND kind = $3 AND name = $4";

/// The key columns of an entity row: level, owner, kind, name.
fn entity_key<'a>(owner: &'a OwnerRef, kind: EntityKind, name: &'a str) -> [Arg<'a>; 4] {
    [
        Arg::Text(owner.level.as_str()),
        Arg::Text(&owner.id),
        Arg::Text(kind.as_str()),
        Arg::Text(name),
    ]
}
