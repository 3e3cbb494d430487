//! A read-through cache in front of any engine for single-entity reads, the hot path of find
//! destination. Every write through [`CachedStore::write`] invalidates what it touched; on a
//! database shared by several processes the engine's change feed ([`crate::feed`]) invalidates
//! what the others wrote, and while that feed is not known to work the cache is bypassed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use async_trait::async_trait;
use moka::sync::Cache;
use signpost_model::{EntityKind, Level, OwnerRef};

use crate::feed::{self, Change};
use crate::records::*;
use crate::{Result, Store};

type Key = (Level, String, EntityKind, String);
type Collection = (Level, String, EntityKind);

/// Budget of cached entity bytes of [`CachedStore::new`].
const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Budget of cached page-anchor bytes of [`CachedStore::new`].
const MAX_ANCHOR_BYTES: u64 = 16 * 1024 * 1024;

/// One in-process cache's figures, for `/metrics`: lookups answered from it and not, and the
/// bytes it holds (as its weigher counts them) against its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    pub name: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub capacity_bytes: u64,
}

/// Hit and miss counters of one cache.
#[derive(Debug, Default)]
pub struct HitCounter {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl HitCounter {
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures of a moka cache counted by this.
    pub fn stats<K, V, S>(
        &self,
        name: &'static str,
        cache: &Cache<K, V, S>,
        capacity_bytes: u64,
    ) -> CacheStats
    where
        K: std::hash::Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        S: std::hash::BuildHasher + Clone + Send + Sync + 'static,
    {
        CacheStats {
            name,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: cache.weighted_size(),
            capacity_bytes,
        }
    }
}
/// A page anchor every this many names: a page anywhere in a collection skips fewer rows than
/// this (keyset paging behind SAP's page numbers).
pub const ANCHOR_EVERY: u64 = 256;
/// What an entry costs besides its strings, found by measuring: the cache's own bookkeeping (its
/// node, hash, access-order links, the key tuple) and the allocations of the key's and the
/// entity's strings. Without it a full 32 MiB budget (random finds over 200,000 destinations, half
/// of the entries misses) grew the server's resident memory by 109 MiB, with it by 56 MiB
/// (`bench/cache-memory`, bench/README.md).
const ENTRY_OVERHEAD: usize = 320;

/// What an entry of the collections' presence costs besides its owner id: the cache's own
/// bookkeeping and the key (no entity behind it).
const PRESENCE_OVERHEAD: usize = 160;

/// How many recent invalidations are remembered with what they touched.
const RECENT: usize = 1024;
/// Slots of the entity cache's [`Doorkeeper`] (a power of two; 8 bytes each).
const DOORKEEPER_SLOTS: usize = 1 << 16;

/// Admission to a full entity cache: a name read for the first time in a while is not cached
/// (TinyLFU's "doorkeeper"). Finds spread over more names than the budget holds would otherwise
/// insert an entry on nearly every read that the cache's policy evicts or refuses again at once:
/// work on every request (the insert, the eviction, the table's rehashing) for no later hit.
/// A name seen a second time while its slot still holds it is cached as before. One hash per
/// slot, direct-mapped: a collision only makes a name wait for its next read.
struct Doorkeeper {
    seen: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Doorkeeper {
    fn new() -> Self {
        Self {
            seen: (0..DOORKEEPER_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// True when `k` was offered before while its slot held it; remembers it otherwise.
    fn seen_before(&self, k: &Key) -> bool {
        use std::hash::BuildHasher as _;
        let h = self.hasher.hash_one(k) | 1;
        // The slot is the low bits; the whole hash tells names of one slot apart.
        let slot = &self.seen[(h as usize >> 1) & (DOORKEEPER_SLOTS - 1)];
        if slot.load(Ordering::Relaxed) == h {
            return true;
        }
        slot.store(h, Ordering::Relaxed);
        false
    }
}

/// What one invalidation touched.
#[derive(Debug, Clone)]
enum Touched {
    Collection(Collection),
    Owner(Level, String),
    All,
}

impl Touched {
    fn covers(&self, c: &Collection) -> bool {
        match self {
            Touched::Collection(t) => t == c,
            Touched::Owner(level, id) => *level == c.0 && *id == c.1,
            Touched::All => true,
        }
    }
}

pub struct CachedStore {
    inner: Arc<dyn Store>,
    state: Arc<State>,
}

struct State {
    entities: Cache<Key, Option<Arc<StoredEntity>>>,
    entity_lookups: HitCounter,
    entity_bytes: u64,
    /// Whether a collection holds anything ([`Store::has_entities`]): a find skips the levels
    /// known to be empty (most instances keep no destinations of their own, so a find would
    /// otherwise probe the instance level before the subaccount level every time). Dropped
    /// with any change in the collection, as the page anchors are.
    presence: Cache<Collection, bool>,
    presence_lookups: HitCounter,
    presence_bytes: u64,
    doorkeeper: Doorkeeper,
    anchor_lookups: HitCounter,
    anchor_bytes: u64,
    /// Page anchors of collections ([`Store::page_anchors`]), dropped with any change in them.
    anchors: Cache<Collection, Arc<Vec<String>>>,
    /// Bumped by every invalidation, under `fence`; a read inserts only if no invalidation
    /// happened since it began, so a stale row read before a commit never lands in the cache
    /// after its invalidation.
    generation: AtomicU64,
    fence: RwLock<()>,
    /// The last [`RECENT`] invalidations (generation, what they touched), so that anchors built
    /// while other collections changed can still be kept: building them scans a collection,
    /// and on a busy service some invalidation happens during almost every scan.
    recent: Mutex<VecDeque<(u64, Touched)>>,
    /// The engine's feed epoch the cached entries belong to.
    epoch: AtomicU64,
    /// How many times anchors were built (tests).
    #[cfg(test)]
    anchor_builds: AtomicU64,
}

impl State {
    /// Runs `drop` under the fence, bumps the generation and remembers what it touched.
    fn invalidate(&self, touched: Touched, drop: impl FnOnce(&Self)) {
        let _fence = self.fence.write().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((generation, touched));
        drop(self);
    }

    /// Drops everything cached (call through [`Self::invalidate`]).
    fn drop_all(&self) {
        self.entities.invalidate_all();
        self.anchors.invalidate_all();
        self.presence.invalidate_all();
    }

    /// Whether a read of `k` that missed may be cached: always while the cache has room (an
    /// eighth of its budget), else once the [`Doorkeeper`] has seen it before.
    fn admit(&self, k: &Key) -> bool {
        self.entities.weighted_size() < self.entity_bytes - self.entity_bytes / 8
            || self.doorkeeper.seen_before(k)
    }

    /// True when no invalidation since generation `began` touched collection `c`. Call under
    /// the fence's read side.
    fn untouched_since(&self, began: u64, c: &Collection) -> bool {
        let now = self.generation.load(Ordering::Acquire);
        if now == began {
            return true;
        }
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        // Every invalidation after `began` must still be remembered, else assume the worst.
        match recent.front() {
            Some((oldest, _)) if *oldest <= began + 1 => recent
                .iter()
                .filter(|(g, _)| *g > began)
                .all(|(_, t)| !t.covers(c)),
            _ => false,
        }
    }

    /// True when the cache may be used now: the feed is live, and whatever was cached under an
    /// earlier epoch has been dropped.
    fn usable(&self, inner: &dyn Store) -> bool {
        if !inner.coherent() {
            return false;
        }
        let epoch = inner.epoch();
        if self.epoch.load(Ordering::Acquire) != epoch {
            self.invalidate(Touched::All, |s| {
                s.drop_all();
                s.epoch.store(epoch, Ordering::Release);
            });
        }
        true
    }

    fn apply(&self, change: &Change) {
        match change {
            Change::Entity { name, .. } => {
                if let (Some(owner), Some(kind)) = (change.owner_ref(), change.entity_kind()) {
                    let collection = (owner.level, owner.id.clone(), kind);
                    self.invalidate(Touched::Collection(collection.clone()), |s| {
                        s.entities.invalidate(&key(&owner, kind, name));
                        s.anchors.invalidate(&collection);
                        s.presence.invalidate(&collection);
                    });
                }
            }
            Change::Owner { .. } => {
                if let Some(owner) = change.owner_ref() {
                    let touched = Touched::Owner(owner.level, owner.id.clone());
                    self.invalidate(touched, |s| {
                        let o = owner.clone();
                        // Only fails when closures are not enabled, which they are.
                        let _ = s
                            .entities
                            .invalidate_entries_if(move |k, _| k.0 == o.level && k.1 == o.id);
                        let o = owner.clone();
                        let _ = s
                            .anchors
                            .invalidate_entries_if(move |k, _| k.0 == o.level && k.1 == o.id);
                        let _ = s.presence.invalidate_entries_if(move |k, _| {
                            k.0 == owner.level && k.1 == owner.id
                        });
                    });
                }
            }
            Change::Everything => self.invalidate(Touched::All, Self::drop_all),
            Change::Credentials | Change::SamlKeys { .. } | Change::SigningKeys => {}
        }
    }
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("entries", &self.state.entities.entry_count())
            .finish()
    }
}

/// What a cached entity holds, roughly, in bytes: its texts and a fixed part for the rest.
fn entity_size(e: &StoredEntity) -> usize {
    let labels: usize = e
        .labels
        .iter()
        .map(|l| l.key.len() + l.values.iter().map(|v| v.len() + 24).sum::<usize>() + 48)
        .sum();
    // The struct itself, the Arc around it and five allocations (owner id, name, body, etag,
    // labels).
    e.body.len() + e.etag.len() + e.name.len() + e.owner.id.len() + labels + 240
}

fn key(owner: &OwnerRef, kind: EntityKind, name: &str) -> Key {
    (owner.level, owner.id.clone(), kind, name.to_owned())
}

/// Applies the engine's change feed until the store or the feed goes away.
async fn follow(state: Weak<State>, mut changes: feed::Changes) {
    while let Some(change) = changes.next().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        state.apply(&change);
    }
}

impl CachedStore {
    /// The collection's page anchors, from the cache or built (one scan of its names).
    async fn anchors(&self, owner: &OwnerRef, kind: EntityKind) -> Result<Arc<Vec<String>>> {
        let state = &self.state;
        let k = (owner.level, owner.id.clone(), kind);
        if let Some(hit) = state.anchors.get(&k) {
            state.anchor_lookups.hit();
            return Ok(hit);
        }
        state.anchor_lookups.miss();
        let began = self.begin();
        #[cfg(test)]
        state.anchor_builds.fetch_add(1, Ordering::Relaxed);
        let built = Arc::new(self.inner.page_anchors(owner, kind, ANCHOR_EVERY).await?);
        self.keep_if_untouched(began, Some(&k), || {
            state.anchors.insert(k.clone(), built.clone())
        });
        Ok(built)
    }

    /// The generation and the feed's epoch when a read of the engine begins, for
    /// [`Self::keep_if_untouched`].
    fn begin(&self) -> (u64, u64) {
        (
            self.state.generation.load(Ordering::Acquire),
            self.inner.epoch(),
        )
    }

    /// Runs `keep` (an insert of what a read that began at `began` found) under the fence when
    /// nothing invalidated meanwhile what the read depends on (collection `c`; with `None`,
    /// anything at all) and the feed did not go down and up (it may have lost the notification
    /// of a write that came after the read; a feed that went down has bumped the generation too).
    fn keep_if_untouched(
        &self,
        (began, began_epoch): (u64, u64),
        c: Option<&Collection>,
        keep: impl FnOnce(),
    ) {
        let state = &self.state;
        let _fence = state.fence.read().unwrap_or_else(|p| p.into_inner());
        let untouched = match c {
            Some(c) => state.untouched_since(began, c),
            None => state.generation.load(Ordering::Acquire) == began,
        };
        if untouched && self.inner.coherent() && self.inner.epoch() == began_epoch {
            keep();
        }
    }

    /// True when `owner` is known to hold no entity of `kind`: from the cache, or asked once
    /// and kept until the collection changes.
    async fn known_empty(&self, owner: &OwnerRef, kind: EntityKind) -> Result<bool> {
        let state = &self.state;
        let k = (owner.level, owner.id.clone(), kind);
        if let Some(has) = state.presence.get(&k) {
            state.presence_lookups.hit();
            return Ok(!has);
        }
        state.presence_lookups.miss();
        let began = self.begin();
        let has = self.inner.has_entities(owner, kind).await?;
        self.keep_if_untouched(began, Some(&k), || state.presence.insert(k.clone(), has));
        Ok(!has)
    }

    /// Wraps `inner` with the default budgets (64 MiB of entities, 16 MiB of page anchors); on
    /// an engine with a change feed this spawns its follower, so it must be called inside a
    /// Tokio runtime then.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        Self::with_budget(inner, MAX_BYTES, MAX_ANCHOR_BYTES)
    }

    /// Wraps `inner` caching at most `entity_bytes` of entities (an eighth of it for which
    /// collections hold anything) and `anchor_bytes` of page anchors (each at least 1), as their
    /// weighers count them.
    pub fn with_budget(inner: Arc<dyn Store>, entity_bytes: u64, anchor_bytes: u64) -> Self {
        let presence_bytes = (entity_bytes / 8).max(1);
        let entity_bytes = entity_bytes.saturating_sub(presence_bytes).max(1);
        let anchor_bytes = anchor_bytes.max(1);
        let entities = Cache::builder()
            .max_capacity(entity_bytes)
            .weigher(|k: &Key, v: &Option<Arc<StoredEntity>>| {
                let size = k.1.len()
                    + k.3.len()
                    + v.as_ref().map_or(0, |e| entity_size(e))
                    + ENTRY_OVERHEAD;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        let presence = Cache::builder()
            .max_capacity(presence_bytes)
            .weigher(|k: &Collection, _: &bool| {
                u32::try_from(k.1.len() + PRESENCE_OVERHEAD).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        let anchors = Cache::builder()
            .max_capacity(anchor_bytes)
            .weigher(|k: &Collection, v: &Arc<Vec<String>>| {
                let size = k.1.len() + v.iter().map(|n| n.len() + 24).sum::<usize>() + 64;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .build();
        let state = Arc::new(State {
            entities,
            entity_lookups: HitCounter::default(),
            entity_bytes,
            presence,
            presence_lookups: HitCounter::default(),
            presence_bytes,
            doorkeeper: Doorkeeper::new(),
            anchor_lookups: HitCounter::default(),
            anchor_bytes,
            anchors,
            generation: AtomicU64::new(0),
            fence: RwLock::new(()),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
            epoch: AtomicU64::new(inner.epoch()),
            #[cfg(test)]
            anchor_builds: AtomicU64::new(0),
        });
        if let Some(changes) = inner.changes() {
            tokio::spawn(follow(Arc::downgrade(&state), changes));
        }
        Self { inner, state }
    }
}

#[async_trait]
impl Store for CachedStore {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn changes(&self) -> Option<feed::Changes> {
        self.inner.changes()
    }

    fn coherent(&self) -> bool {
        self.inner.coherent()
    }

    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    fn cache_stats(&self) -> Vec<CacheStats> {
        let s = &self.state;
        vec![
            s.entity_lookups
                .stats("entities", &s.entities, s.entity_bytes),
            s.anchor_lookups
                .stats("page_anchors", &s.anchors, s.anchor_bytes),
            s.presence_lookups
                .stats("collections", &s.presence, s.presence_bytes),
        ]
    }

    async fn get_subaccount(&self, id: &str) -> Result<Option<SubaccountRecord>> {
        self.inner.get_subaccount(id).await
    }

    async fn get_instance(&self, id: &str) -> Result<Option<InstanceRecord>> {
        self.inner.get_instance(id).await
    }

    async fn get_binding(&self, id: &str) -> Result<Option<BindingRecord>> {
        self.inner.get_binding(id).await
    }

    async fn get_binding_by_client(&self, client_id: &str) -> Result<Option<BindingRecord>> {
        self.inner.get_binding_by_client(client_id).await
    }

    async fn get_binding_by_certificate(&self, sha256: &str) -> Result<Option<BindingRecord>> {
        self.inner.get_binding_by_certificate(sha256).await
    }

    async fn list_subaccounts(&self) -> Result<Vec<SubaccountRecord>> {
        self.inner.list_subaccounts().await
    }

    async fn list_instances(&self) -> Result<Vec<InstanceRecord>> {
        self.inner.list_instances().await
    }

    async fn list_bindings(&self, instance_id: &str) -> Result<Vec<BindingRecord>> {
        self.inner.list_bindings(instance_id).await
    }

    async fn list_subscriptions(&self, instance_id: &str) -> Result<Vec<SubscriptionRecord>> {
        self.inner.list_subscriptions(instance_id).await
    }

    async fn get_subscription(
        &self,
        instance_id: &str,
        subaccount_id: &str,
    ) -> Result<Option<SubscriptionRecord>> {
        self.inner
            .get_subscription(instance_id, subaccount_id)
            .await
    }

    async fn subaccounts_by_subdomain(&self, subdomain: &str) -> Result<Vec<SubaccountRecord>> {
        self.inner.subaccounts_by_subdomain(subdomain).await
    }

    async fn get_entity(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        if !self.state.usable(self.inner.as_ref()) {
            return self.inner.get_entity(owner, kind, name).await;
        }
        let state = &self.state;
        let k = key(owner, kind, name);
        if let Some(hit) = state.entities.get(&k) {
            state.entity_lookups.hit();
            return Ok(hit.as_deref().cloned());
        }
        state.entity_lookups.miss();
        let began = self.begin();
        let found = self.inner.get_entity(owner, kind, name).await?;
        self.keep_if_untouched(began, None, || {
            if state.admit(&k) {
                state.entities.insert(k, found.clone().map(Arc::new));
            }
        });
        Ok(found)
    }

    /// The owners' cached answers in order, skipping the levels known to hold nothing of
    /// `kind`; at the first one not cached, one read of the engine for it and the owners after
    /// it that may hold the name, whose answers (absent up to the one that has the name) are
    /// cached as single reads are.
    async fn find_entity(
        &self,
        owners: &[OwnerRef],
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        if !self.state.usable(self.inner.as_ref()) {
            return self.inner.find_entity(owners, kind, name).await;
        }
        let state = &self.state;
        // The levels the engine is asked for.
        let mut rest: Vec<OwnerRef> = Vec::new();
        for (i, owner) in owners.iter().enumerate() {
            let last = i + 1 == owners.len();
            // Before the last level, whether the level holds anything is asked first: most
            // instances keep no destinations of their own, and their level then needs no
            // entry per name. The last level is looked for in the entity cache first, where
            // most finds are answered.
            if !last && self.known_empty(owner, kind).await? {
                continue;
            }
            if rest.is_empty() {
                match state.entities.get(&key(owner, kind, name)) {
                    Some(Some(hit)) => {
                        state.entity_lookups.hit();
                        return Ok(Some(StoredEntity::clone(&hit)));
                    }
                    Some(None) => {
                        state.entity_lookups.hit();
                        continue;
                    }
                    None => {}
                }
            }
            if last && self.known_empty(owner, kind).await? {
                continue;
            }
            rest.push(owner.clone());
        }
        if rest.is_empty() {
            return Ok(None);
        }
        state.entity_lookups.miss();
        let began = self.begin();
        let found = self.inner.find_entity(&rest, kind, name).await?;
        self.keep_if_untouched(began, None, || {
            if !state.admit(&key(&rest[0], kind, name)) {
                return;
            }
            for owner in &rest {
                let here = found.as_ref().filter(|f| f.owner == *owner);
                state
                    .entities
                    .insert(key(owner, kind, name), here.cloned().map(Arc::new));
                if here.is_some() {
                    break;
                }
            }
        });
        Ok(found)
    }

    async fn has_entities(&self, owner: &OwnerRef, kind: EntityKind) -> Result<bool> {
        self.inner.has_entities(owner, kind).await
    }

    async fn list_entities(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<ListPage> {
        let deep = query.offset >= ANCHOR_EVERY
            && query.filter == NameFilter::All
            && query.labels.is_empty()
            && query.from.is_none()
            && self.state.usable(self.inner.as_ref());
        if !deep {
            return self.inner.list_entities(owner, kind, query).await;
        }
        let anchors = self.anchors(owner, kind).await?;
        let index = usize::try_from(query.offset / ANCHOR_EVERY).unwrap_or(usize::MAX);
        let keyset = match anchors.get(index) {
            Some(from) => ListQuery {
                from: Some(from.clone()),
                offset: query.offset % ANCHOR_EVERY,
                ..query.clone()
            },
            // Past the end: no items (the total, when asked for, still comes from the engine).
            None => ListQuery {
                limit: Some(0),
                offset: 0,
                ..query.clone()
            },
        };
        self.inner.list_entities(owner, kind, &keyset).await
    }

    async fn page_anchors(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        every: u64,
    ) -> Result<Vec<String>> {
        self.inner.page_anchors(owner, kind, every).await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let changes = feed::changes_of(&ops);
        let result = self.inner.write(ops).await;
        // Invalidate even after a failure: the engine may not say how far it got.
        for change in &changes {
            self.state.apply(change);
        }
        result
    }

    async fn saml_keys(&self, subaccount_id: &str) -> Result<Vec<SamlKeyRecord>> {
        self.inner.saml_keys(subaccount_id).await
    }

    async fn get_secret(&self, name: &str) -> Result<Option<secrecy::SecretString>> {
        self.inner.get_secret(name).await
    }

    async fn all_entities(&self, kind: EntityKind) -> Result<Vec<StoredEntity>> {
        self.inner.all_entities(kind).await
    }

    async fn try_lease(&self, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        self.inner.try_lease(name, holder, now_ms, ttl_ms).await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.inner.signing_keys().await
    }

    async fn insert_signing_key(&self, key: SigningKeyRecord) -> Result<()> {
        self.inner.insert_signing_key(key).await
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool> {
        self.inner.delete_signing_key(kid).await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<()> {
        self.inner.record_audit(events).await
    }

    async fn audit_events(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        self.inner.audit_events(query).await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        self.inner.prune_audit(before_ms).await
    }

    fn digest(&self, parts: &[&[u8]]) -> String {
        self.inner.digest(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MasterKey, SqliteStore};

    fn put(owner: &str, name: &str) -> WriteOp {
        WriteOp::PutEntity {
            owner: OwnerRef::subaccount(owner),
            kind: EntityKind::Destination,
            name: name.into(),
            body: b"{}".to_vec(),
            mode: PutMode::Upsert,
        }
    }

    /// A cache over a SQLite file in `dir`.
    async fn cached_sqlite(dir: &std::path::Path) -> CachedStore {
        let url = format!("sqlite://{}", dir.join("c.db").display());
        let sqlite = SqliteStore::open(&url, &MasterKey::generate(), 10_000)
            .await
            .unwrap();
        CachedStore::new(Arc::new(sqlite))
    }

    async fn deep_page(store: &CachedStore, owner: &str) -> Vec<String> {
        let query = ListQuery {
            offset: 300,
            limit: Some(2),
            ..Default::default()
        };
        let page = store
            .list_entities(
                &OwnerRef::subaccount(owner),
                EntityKind::Destination,
                &query,
            )
            .await
            .unwrap();
        page.items.into_iter().map(|e| e.name).collect()
    }

    #[tokio::test]
    async fn anchors_are_rebuilt_only_when_their_collection_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = cached_sqlite(dir.path()).await;
        let names: Vec<String> = (0..600).map(|i| format!("d{i:04}")).collect();
        store
            .write(names.iter().map(|n| put("a", n)).collect())
            .await
            .unwrap();
        let builds = || store.state.anchor_builds.load(Ordering::Relaxed);
        assert_eq!(deep_page(&store, "a").await, ["d0300", "d0301"]);
        assert_eq!(deep_page(&store, "a").await, ["d0300", "d0301"]);
        assert_eq!(builds(), 1, "kept");
        store.write(vec![put("b", "x")]).await.unwrap();
        assert_eq!(deep_page(&store, "a").await, ["d0300", "d0301"]);
        assert_eq!(builds(), 1, "another collection changed");
        store.write(vec![put("a", "d0000a")]).await.unwrap();
        assert_eq!(deep_page(&store, "a").await, ["d0299", "d0300"]);
        assert_eq!(builds(), 2, "its own collection changed");
    }

    #[tokio::test]
    async fn finds_skip_a_level_known_to_be_empty_until_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = cached_sqlite(dir.path()).await;
        let (instance, sub) = (OwnerRef::instance("i"), OwnerRef::subaccount("s"));
        let put_at = |owner: &OwnerRef| WriteOp::PutEntity {
            owner: owner.clone(),
            kind: EntityKind::Destination,
            name: "d".into(),
            body: b"{}".to_vec(),
            mode: PutMode::Upsert,
        };
        let owners = [instance.clone(), sub.clone()];
        let found = || async {
            store
                .find_entity(&owners, EntityKind::Destination, "d")
                .await
                .unwrap()
                .map(|e| e.owner)
        };
        let presence = |o: &OwnerRef| {
            store
                .state
                .presence
                .get(&(o.level, o.id.clone(), EntityKind::Destination))
        };
        assert_eq!(found().await, None);
        assert_eq!(presence(&instance), Some(false));
        assert_eq!(presence(&sub), Some(false));

        store.write(vec![put_at(&sub)]).await.unwrap();
        assert_eq!(presence(&sub), None, "dropped with the change");
        assert_eq!(found().await, Some(sub.clone()));
        assert_eq!(found().await, Some(sub.clone()), "from the cache");
        assert_eq!(
            presence(&instance),
            Some(false),
            "the empty level is skipped"
        );
        let key_at = |o: &OwnerRef| key(o, EntityKind::Destination, "d");
        assert!(
            store.state.entities.get(&key_at(&instance)).is_none(),
            "no entry per name on a level known to be empty"
        );

        // The same name on instance level wins at once, and the subaccount's again once it goes.
        store.write(vec![put_at(&instance)]).await.unwrap();
        assert_eq!(presence(&instance), None);
        assert_eq!(found().await, Some(instance.clone()));
        assert_eq!(presence(&instance), Some(true));
        store
            .write(vec![WriteOp::DeleteEntity {
                owner: instance.clone(),
                kind: EntityKind::Destination,
                name: "d".into(),
            }])
            .await
            .unwrap();
        assert_eq!(found().await, Some(sub.clone()));
        assert_eq!(presence(&instance), Some(false));

        // A level that is not empty is read with the name: another name there is a miss.
        let other = store
            .find_entity(&owners, EntityKind::Destination, "none")
            .await
            .unwrap();
        assert!(other.is_none());
    }

    /// What a read found is kept only when nothing it depends on changed while it ran: the
    /// guard every read of the engine goes through (entities, anchors, presence).
    #[tokio::test]
    async fn a_read_overtaken_by_a_write_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = cached_sqlite(dir.path()).await;
        let a: Collection = (Level::Subaccount, "a".into(), EntityKind::Destination);
        let b: Collection = (Level::Subaccount, "b".into(), EntityKind::Destination);
        let kept = |scope: Option<&Collection>, began| {
            let mut kept = false;
            store.keep_if_untouched(began, scope, || kept = true);
            kept
        };
        let began = store.begin();
        assert!(kept(None, began), "nothing happened");
        assert!(kept(Some(&a), began));
        store.write(vec![put("b", "d")]).await.unwrap();
        assert!(!kept(None, began), "an entity read depends on everything");
        assert!(!kept(Some(&b), began), "its collection changed");
        assert!(kept(Some(&a), began), "another collection changed");
        store.write(vec![put("a", "d")]).await.unwrap();
        assert!(!kept(Some(&a), began));
        assert!(kept(Some(&a), store.begin()), "a read that began after");
    }

    #[test]
    fn untouched_since_looks_at_what_each_invalidation_touched() {
        let state = State {
            entities: Cache::new(10),
            entity_lookups: HitCounter::default(),
            entity_bytes: 10,
            presence: Cache::new(10),
            presence_lookups: HitCounter::default(),
            presence_bytes: 10,
            doorkeeper: Doorkeeper::new(),
            anchor_lookups: HitCounter::default(),
            anchor_bytes: 10,
            anchors: Cache::new(10),
            generation: AtomicU64::new(0),
            fence: RwLock::new(()),
            recent: Mutex::new(VecDeque::new()),
            epoch: AtomicU64::new(0),
            anchor_builds: AtomicU64::new(0),
        };
        let a: Collection = (Level::Subaccount, "a".into(), EntityKind::Destination);
        let b: Collection = (Level::Subaccount, "b".into(), EntityKind::Destination);
        let began = state.generation.load(Ordering::Acquire);
        assert!(state.untouched_since(began, &a));
        state.invalidate(Touched::Collection(b.clone()), |_| {});
        state.invalidate(Touched::Owner(Level::Instance, "a".into()), |_| {});
        assert!(state.untouched_since(began, &a));
        state.invalidate(Touched::Owner(Level::Subaccount, "a".into()), |_| {});
        assert!(!state.untouched_since(began, &a));
        assert!(!state.untouched_since(began, &b), "b itself was touched");
        let began = state.generation.load(Ordering::Acquire);
        state.invalidate(Touched::All, |_| {});
        assert!(!state.untouched_since(began, &b));
        // More invalidations than remembered: assume the worst.
        let began = state.generation.load(Ordering::Acquire);
        for _ in 0..=RECENT {
            state.invalidate(Touched::Collection(b.clone()), |_| {});
        }
        assert!(!state.untouched_since(began, &a));
    }

    fn k(name: &str) -> Key {
        (
            Level::Subaccount,
            "s".into(),
            EntityKind::Destination,
            name.into(),
        )
    }

    #[test]
    fn the_doorkeeper_lets_a_name_in_at_its_second_read() {
        let d = Doorkeeper::new();
        assert!(!d.seen_before(&k("a")));
        assert!(d.seen_before(&k("a")));
        assert!(d.seen_before(&k("a")));
        // Many other names: most go to other slots, so "b" still waits for one more read only.
        assert!(!d.seen_before(&k("b")));
        for i in 0..100 {
            d.seen_before(&k(&format!("other-{i}")));
        }
        let admitted = (0..1000)
            .filter(|i| d.seen_before(&k(&format!("new-{i}"))))
            .count();
        assert!(admitted < 10, "{admitted} of 1000 first reads admitted");
    }
}
