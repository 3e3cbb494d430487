//! The change feed: what a write changed, as far as processes cache it, so that replicas on one
//! database can drop what they hold in memory.
//!
//! On PostgreSQL every write transaction publishes its [`Change`]s with `pg_notify` (delivered to
//! listeners only if it commits, after it commits), and every process listens on one dedicated
//! connection. Notifications are transient: a listener that loses its connection misses what was
//! sent meanwhile. So the feed is only trusted while it is known to work: each process sends
//! itself a heartbeat through the database every [`HEARTBEAT`] and counts the feed down when its
//! own heartbeat has not come back within [`STALE_AFTER`]. While it is down, caches are bypassed
//! (every read goes to the database); when it comes back, everything cached is dropped once
//! ([`Change::Everything`]) before the caches are trusted again. An engine without LISTEN/NOTIFY
//! (CockroachDB, YugabyteDB) never brings the feed up and simply runs without caches.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use signpost_model::{EntityKind, Level, OwnerRef};
use tokio::sync::broadcast;

use crate::records::WriteOp;

pub(crate) mod postgres;

/// The notification channel of the PostgreSQL engine.
pub(crate) const CHANNEL: &str = "signpost_changes";
/// How often a process sends itself a heartbeat through the database.
pub(crate) const HEARTBEAT: Duration = Duration::from_millis(200);
/// After how long without its own heartbeat a process stops trusting its caches. With the
/// heartbeat period this bounds how long a lost notification can leave a stale cache entry.
pub(crate) const STALE_AFTER: Duration = Duration::from_millis(600);
/// A notification payload stays below PostgreSQL's limit of 8,000 bytes.
const MAX_PAYLOAD: usize = 7_000;
/// Above this many changed entities of one owner in one batch, the batch invalidates the owner.
const OWNER_COLLAPSE: usize = 32;

/// Something a process may hold in memory was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Change {
    /// One entity was created, replaced or deleted.
    Entity {
        level: String,
        owner: String,
        kind: String,
        name: String,
    },
    /// Any entity of the owner may have changed (a deleted instance, a large batch).
    Owner { level: String, owner: String },
    /// A binding or an instance went away: verified tokens must be checked again.
    Credentials,
    /// A subaccount's SAML trust keys changed.
    SamlKeys { subaccount: String },
    /// The token signing keys changed (a rotation).
    SigningKeys,
    /// Changes may have been missed: drop everything.
    Everything,
}

impl Change {
    fn entity(owner: &OwnerRef, kind: EntityKind, name: &str) -> Self {
        Change::Entity {
            level: owner.level.as_str().to_owned(),
            owner: owner.id.clone(),
            kind: kind.as_str().to_owned(),
            name: name.to_owned(),
        }
    }

    fn owner(owner: &OwnerRef) -> Self {
        Change::Owner {
            level: owner.level.as_str().to_owned(),
            owner: owner.id.clone(),
        }
    }

    /// The owner of an entity or owner change.
    pub fn owner_ref(&self) -> Option<OwnerRef> {
        match self {
            Change::Entity { level, owner, .. } | Change::Owner { level, owner } => {
                Some(OwnerRef {
                    level: Level::parse(level)?,
                    id: owner.clone(),
                })
            }
            _ => None,
        }
    }

    /// The kind of an entity change.
    pub fn entity_kind(&self) -> Option<EntityKind> {
        match self {
            Change::Entity { kind, .. } => EntityKind::parse(kind),
            _ => None,
        }
    }
}

/// What a batch changes of what processes cache. Many entities of one owner collapse into one
/// owner change.
pub fn changes_of(ops: &[WriteOp]) -> Vec<Change> {
    let mut out: Vec<Change> = Vec::new();
    for op in ops {
        let change = match op {
            WriteOp::PutEntity {
                owner, kind, name, ..
            }
            | WriteOp::DeleteEntity { owner, kind, name }
            // Cached entities carry their labels.
            | WriteOp::SetLabels {
                owner, kind, name, ..
            }
            | WriteOp::PatchLabels {
                owner, kind, name, ..
            } => Change::entity(owner, *kind, name),
            // The instance's subscription levels go with it: every cache is dropped (rare).
            WriteOp::DeleteInstance { .. } => Change::Everything,
            // The subscriber's tokens stop working; its subscription level is gone.
            WriteOp::Unsubscribe {
                instance_id,
                subaccount_id,
            } => {
                out.push(Change::Credentials);
                Change::owner(&OwnerRef::subscription(instance_id, subaccount_id))
            }
            // Tokens carry the subdomain (`ext_attr.zdn`).
            WriteOp::SetSubdomain { .. } => Change::Credentials,
            WriteOp::DeleteBinding { .. } => Change::Credentials,
            WriteOp::PutSamlKey(k) | WriteOp::CreateSamlKey(k) => Change::SamlKeys {
                subaccount: k.subaccount_id.clone(),
            },
            WriteOp::DeleteSamlKey { subaccount_id, .. } => Change::SamlKeys {
                subaccount: subaccount_id.clone(),
            },
            WriteOp::EnsureSubaccount(_)
            | WriteOp::CreateInstance(_)
            | WriteOp::UpdateInstance(_)
            | WriteOp::CreateBinding(_)
            | WriteOp::Subscribe(_)
            | WriteOp::PutSecret { .. }
            | WriteOp::ExpectEntity { .. } => continue,
        };
        if !out.contains(&change) {
            out.push(change);
        }
    }
    collapse(out)
}

/// Replaces the entity changes of an owner with more than [`OWNER_COLLAPSE`] of them by one owner
/// change.
fn collapse(changes: Vec<Change>) -> Vec<Change> {
    let mut counts: std::collections::HashMap<OwnerRef, usize> = std::collections::HashMap::new();
    for c in &changes {
        if let (Change::Entity { .. }, Some(o)) = (c, c.owner_ref()) {
            *counts.entry(o).or_default() += 1;
        }
    }
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match (&c, c.owner_ref()) {
            (Change::Entity { .. }, Some(o)) if counts[&o] > OWNER_COLLAPSE => {
                let owner = Change::owner(&o);
                if !out.contains(&owner) {
                    out.push(owner);
                }
            }
            _ => {
                if !out.contains(&c) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The notification payloads of a batch's changes: JSON arrays, each under the size limit.
pub(crate) fn payloads(changes: &[Change]) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::from("[");
    for c in changes {
        let Ok(json) = serde_json::to_string(c) else {
            continue;
        };
        if json.len() + 2 > MAX_PAYLOAD {
            // A name this long cannot be sent: drop everything instead.
            out.push(r#"[{"c":"everything"}]"#.to_owned());
            continue;
        }
        if current.len() + json.len() + 2 > MAX_PAYLOAD {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        out.push(current);
    }
    out
}

/// The changes in one payload; an unreadable payload (another version's) means everything.
pub(crate) fn parse_payload(payload: &str) -> Vec<Change> {
    serde_json::from_str(payload).unwrap_or_else(|_| vec![Change::Everything])
}

/// A subscription to the change feed ([`crate::Store::changes`]).
#[derive(Debug)]
pub struct Changes(broadcast::Receiver<Change>);

impl Changes {
    /// The next change; [`Change::Everything`] when this subscriber fell behind and missed some;
    /// `None` once the feed is gone.
    pub async fn next(&mut self) -> Option<Change> {
        match self.0.recv().await {
            Ok(change) => Some(change),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Everything),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The receiving end of the feed inside one process: subscribers and whether the feed is live.
#[derive(Debug)]
pub(crate) struct Feed {
    tx: broadcast::Sender<Change>,
    live: AtomicBool,
    /// Counts the times the feed came (back) up; a cache that saw another value drops everything.
    epoch: AtomicU64,
    /// When this process last saw its own heartbeat come back (milliseconds of a monotonic clock).
    last_beat_ms: AtomicI64,
    started: std::time::Instant,
}

impl Feed {
    pub(crate) fn new() -> Arc<Self> {
        let (tx, _) = broadcast::channel(4096);
        Arc::new(Self {
            tx,
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            last_beat_ms: AtomicI64::new(0),
            started: std::time::Instant::now(),
        })
    }

    pub(crate) fn subscribe(&self) -> Changes {
        Changes(self.tx.subscribe())
    }

    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, change: Change) {
        // No subscriber is not an error.
        let _ = self.tx.send(change);
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Our own heartbeat came back: the feed works. Coming back up drops everything first.
    pub(crate) fn beat(&self) {
        self.last_beat_ms.store(self.now_ms(), Ordering::Release);
        if !self.is_live() {
            // A new epoch before going live: a reader that sees the feed live also sees that
            // the epoch moved, and drops what it cached before, synchronously.
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.publish(Change::Everything);
            if self
                .live
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                tracing::info!("change feed is live: in-process caches are on");
            }
        }
    }

    /// The feed may have lost notifications: stop trusting caches (readers check
    /// [`Feed::is_live`]; what was cached is dropped when the feed comes back).
    pub(crate) fn down(&self, why: &str) {
        if self
            .live
            .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            tracing::warn!(
                reason = why,
                "change feed is down: in-process caches are off"
            );
            self.publish(Change::Everything);
        }
    }

    /// Counts the feed down when the last heartbeat is older than [`STALE_AFTER`].
    pub(crate) fn check_staleness(&self) {
        let stale = self.now_ms() - self.last_beat_ms.load(Ordering::Acquire);
        if self.is_live() && stale > i64::try_from(STALE_AFTER.as_millis()).unwrap_or(i64::MAX) {
            self.down("heartbeat overdue");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(owner: &str, name: &str) -> WriteOp {
        WriteOp::PutEntity {
            owner: OwnerRef {
                level: Level::Subaccount,
                id: owner.into(),
            },
            kind: EntityKind::Destination,
            name: name.into(),
            body: vec![],
            mode: crate::records::PutMode::Upsert,
        }
    }

    #[test]
    fn a_few_entities_stay_entities_and_many_collapse_into_their_owner() {
        let few = changes_of(&[put("s", "a"), put("s", "b"), put("s", "a")]);
        assert_eq!(few.len(), 2);
        assert!(matches!(&few[0], Change::Entity { name, .. } if name == "a"));
        let many: Vec<_> = (0..100).map(|i| put("s", &format!("d{i}"))).collect();
        let mut ops = many;
        ops.push(put("t", "x"));
        ops.push(WriteOp::DeleteBinding { id: "b".into() });
        let changes = changes_of(&ops);
        assert_eq!(
            changes,
            vec![
                Change::Owner {
                    level: "subaccount".into(),
                    owner: "s".into()
                },
                Change::entity(
                    &OwnerRef {
                        level: Level::Subaccount,
                        id: "t".into()
                    },
                    EntityKind::Destination,
                    "x"
                ),
                Change::Credentials,
            ]
        );
    }

    #[test]
    fn payloads_stay_under_the_limit_and_round_trip() {
        let changes: Vec<_> = (0..500)
            .map(|i| Change::Entity {
                level: "subaccount".into(),
                owner: format!("owner-{i}"),
                kind: "destination".into(),
                name: format!("destination-with-a-long-name-{i}"),
            })
            .collect();
        let sent = payloads(&changes);
        assert!(sent.len() > 1);
        assert!(sent.iter().all(|p| p.len() <= MAX_PAYLOAD));
        let back: Vec<Change> = sent.iter().flat_map(|p| parse_payload(p)).collect();
        assert_eq!(back, changes);
        assert_eq!(parse_payload("not json"), vec![Change::Everything]);
        let huge = Change::Entity {
            level: "subaccount".into(),
            owner: "o".into(),
            kind: "destination".into(),
            name: "n".repeat(MAX_PAYLOAD),
        };
        assert_eq!(
            payloads(&[huge]),
            vec![r#"[{"c":"everything"}]"#.to_owned()]
        );
    }
}
