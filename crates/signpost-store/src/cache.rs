//! A read-through cache in front of any engine for single-entity reads, the hot path of find
//! destination. Exact for one process: every write goes through [`CachedStore::write`], which
//! invalidates what it touched. (Replicas on a shared database need cross-process invalidation;
//! until that exists, run them without this cache.)

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use moka::sync::Cache;
use signpost_model::{EntityKind, Level, OwnerRef};

use crate::records::*;
use crate::{Result, Store};

type Key = (Level, String, EntityKind, String);

/// Budget of cached entity bytes.
const MAX_BYTES: u64 = 64 * 1024 * 1024;

pub struct CachedStore {
    inner: Arc<dyn Store>,
    entities: Cache<Key, Option<Arc<StoredEntity>>>,
    /// Bumped by every write, under `fence`; a read inserts only if no write happened since it
    /// began, so a stale row read before a commit never lands in the cache after its invalidation.
    generation: AtomicU64,
    fence: RwLock<()>,
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("inner", &self.inner)
            .field("entries", &self.entities.entry_count())
            .finish()
    }
}

fn key(owner: &OwnerRef, kind: EntityKind, name: &str) -> Key {
    (owner.level, owner.id.clone(), kind, name.to_owned())
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        let entities = Cache::builder()
            .max_capacity(MAX_BYTES)
            .weigher(|k: &Key, v: &Option<Arc<StoredEntity>>| {
                let size = k.1.len()
                    + k.3.len()
                    + v.as_ref().map_or(0, |e| e.body.len() + e.etag.len())
                    + 64;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            inner,
            entities,
            generation: AtomicU64::new(0),
            fence: RwLock::new(()),
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    fn engine(&self) -> &'static str {
        self.inner.engine()
    }

    fn shared(&self) -> bool {
        self.inner.shared()
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

    async fn get_entity(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        name: &str,
    ) -> Result<Option<StoredEntity>> {
        let k = key(owner, kind, name);
        if let Some(hit) = self.entities.get(&k) {
            return Ok(hit.as_deref().cloned());
        }
        let began = self.generation.load(Ordering::Acquire);
        let found = self.inner.get_entity(owner, kind, name).await?;
        let _fence = self.fence.read().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) == began {
            self.entities.insert(k, found.clone().map(Arc::new));
        }
        Ok(found)
    }

    async fn list_entities(
        &self,
        owner: &OwnerRef,
        kind: EntityKind,
        query: &ListQuery,
    ) -> Result<ListPage> {
        self.inner.list_entities(owner, kind, query).await
    }

    async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<WriteOutcome>> {
        let mut touched = Vec::new();
        let mut everything = false;
        for op in &ops {
            match op {
                WriteOp::PutEntity {
                    owner, kind, name, ..
                }
                | WriteOp::DeleteEntity { owner, kind, name } => {
                    touched.push(key(owner, *kind, name));
                }
                WriteOp::DeleteInstance { .. } => everything = true,
                _ => {}
            }
        }
        let result = self.inner.write(ops).await;
        // Invalidate even after a failure: the engine may not say how far it got.
        let _fence = self.fence.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        if everything {
            self.entities.invalidate_all();
        }
        for k in &touched {
            self.entities.invalidate(k);
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

    fn digest(&self, parts: &[&[u8]]) -> String {
        self.inner.digest(parts)
    }
}
