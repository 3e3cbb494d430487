//! The audit log (docs/SECURITY.md, "Audit log"): every write of the use cases and every issued
//! token is recorded as an [`AuditEvent`] in the store, with the actor, where it happened, what
//! was done to which entity, the status it ended with and the request id. Only names and ids go
//! in, never a secret or a property value.
//!
//! The request id comes from the HTTP layer through a task-local ([`with_request_id`]), so that
//! the use cases keep their signatures; events made outside a request (the certificate job, the
//! first-run bootstrap) have none.

use std::future::Future;

use signpost_store::{AuditEvent, AuditQuery};
use signpost_wire::AuditEntry;

use crate::{Error, Principal, Result, Signpost};

/// The actor of the platform's calls (broker and Signpost's admin endpoints).
pub const ACTOR_BROKER: &str = "broker";
/// The actor of the server's own jobs (renewal of generated certificates).
pub const ACTOR_SIGNPOST: &str = "signpost";

/// Most events one read returns.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Runs `f` (a request's handling) with `id` as the request id of the events it records.
pub async fn with_request_id<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

fn request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Who did something where, and to what: an event before its outcome is known.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    actor: String,
    subaccount: Option<String>,
    instance: Option<String>,
    action: &'static str,
    kind: &'static str,
    name: Option<String>,
}

impl Entry {
    pub(crate) fn new(actor: impl Into<String>, action: &'static str, kind: &'static str) -> Self {
        Self {
            actor: actor.into(),
            subaccount: None,
            instance: None,
            action,
            kind,
            name: None,
        }
    }

    /// An action of the platform.
    pub(crate) fn broker(action: &'static str, kind: &'static str) -> Self {
        Self::new(ACTOR_BROKER, action, kind)
    }

    /// An action of a tenant's client on an entity of `level` (the instance is named only for
    /// instance-level entities).
    pub(crate) fn tenant(
        who: &Principal,
        level: signpost_model::Level,
        action: &'static str,
        kind: &'static str,
    ) -> Self {
        let entry = Self::new(who.client_id.clone(), action, kind).subaccount(&who.subaccount_id);
        match level {
            signpost_model::Level::Subaccount => entry,
            signpost_model::Level::Instance => entry.instance(&who.instance_id),
        }
    }

    pub(crate) fn action(mut self, action: &'static str) -> Self {
        self.action = action;
        self
    }

    pub(crate) fn subaccount(mut self, id: impl Into<String>) -> Self {
        self.subaccount = Some(id.into());
        self
    }

    pub(crate) fn instance(mut self, id: impl Into<String>) -> Self {
        self.instance = Some(id.into());
        self
    }

    pub(crate) fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into()).filter(|n: &String| !n.is_empty());
        self
    }

    /// The event of this entry ending with `status`, now.
    fn event(self, status: u16, at_ms: i64, request_id: Option<String>) -> AuditEvent {
        AuditEvent {
            id: 0,
            at_ms,
            actor: self.actor,
            subaccount_id: self.subaccount,
            instance_id: self.instance,
            action: self.action.into(),
            entity_kind: Some(self.kind.into()),
            entity_name: self.name,
            status,
            request_id,
        }
    }
}

/// One page of the audit log and the position after its last event, when there may be more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub events: Vec<AuditEntry>,
    /// The cursor of the next page (`before` of [`Signpost::audit_log`]).
    pub next: Option<String>,
}

/// The cursor after an event: `<unix ms>.<id>`.
fn cursor_of(e: &AuditEvent) -> String {
    format!("{}.{}", e.at_ms, e.id)
}

/// Reads a cursor made by [`cursor_of`].
pub fn parse_cursor(text: &str) -> Option<(i64, i64)> {
    let (at, id) = text.split_once('.')?;
    Some((at.parse().ok()?, id.parse().ok()?))
}

fn entry_of(e: AuditEvent) -> AuditEntry {
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            )
        })
        .unwrap_or_default();
    AuditEntry {
        id: e.id,
        time,
        outcome: e.outcome().into(),
        actor: e.actor,
        subaccount: e.subaccount_id,
        instance: e.instance_id,
        action: e.action,
        entity_kind: e.entity_kind,
        entity_name: e.entity_name,
        status: e.status,
        request_id: e.request_id,
    }
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default(),
    )
    .unwrap_or(i64::MAX)
}

impl Signpost {
    /// Records what `entries` ended with. A failure to record is logged and does not undo or
    /// fail the operation, which has happened.
    pub(crate) async fn audit(&self, entries: Vec<(Entry, u16)>) {
        if entries.is_empty() {
            return;
        }
        let at = now_ms();
        let rid = request_id();
        let events: Vec<AuditEvent> = entries
            .into_iter()
            .map(|(entry, status)| entry.event(status, at, rid.clone()))
            .collect();
        if let Err(e) = self.store().record_audit(&events).await {
            tracing::error!(error = %e, events = events.len(), "audit events could not be recorded");
        }
    }

    /// Records one entry with the status of `result` (`ok` when it succeeded) and passes the
    /// result on.
    pub(crate) async fn audited<T>(&self, entry: Entry, ok: u16, result: Result<T>) -> Result<T> {
        let status = match &result {
            Ok(_) => ok,
            Err(e) => e.status(),
        };
        self.audit(vec![(entry, status)]).await;
        result
    }

    /// `GET /signpost/v1/audit`: at most `limit` events newest first, none older than `since_ms`,
    /// after the cursor `before` of the previous page.
    pub async fn audit_log(
        &self,
        since_ms: Option<i64>,
        before: Option<&str>,
        limit: u32,
    ) -> Result<AuditPage> {
        if !(1..=MAX_AUDIT_LIMIT).contains(&limit) {
            return Err(Error::BadRequest(format!(
                "limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}"
            )));
        }
        let before = match before {
            None => None,
            Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                Error::BadRequest(
                    "cursor is not a cursor of this log; take it from the Link header".into(),
                )
            })?),
        };
        // One more than asked tells whether there is a next page.
        let mut events = self
            .store()
            .audit_events(&AuditQuery {
                since_ms,
                before,
                limit: limit + 1,
            })
            .await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next = more.then(|| events.last().map(cursor_of)).flatten();
        Ok(AuditPage {
            events: events.into_iter().map(entry_of).collect(),
            next,
        })
    }

    /// Deletes the audit events older than `retention_days` days; returns how many.
    pub async fn prune_audit(&self, retention_days: u32) -> Result<u64> {
        let before = now_ms().saturating_sub(i64::from(retention_days) * 86_400_000);
        Ok(self.store().prune_audit(before).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_times() {
        let e = AuditEvent {
            id: 7,
            at_ms: 1_764_633_600_123,
            actor: "a".into(),
            subaccount_id: None,
            instance_id: None,
            action: "create".into(),
            entity_kind: None,
            entity_name: None,
            status: 201,
            request_id: None,
        };
        assert_eq!(parse_cursor(&cursor_of(&e)), Some((e.at_ms, 7)));
        assert_eq!(parse_cursor("12"), None);
        assert_eq!(parse_cursor("x.1"), None);
        let entry = entry_of(e);
        assert_eq!(entry.time, "2025-12-02T00:00:00.123Z");
        assert_eq!(entry.outcome, "success");
    }
}
