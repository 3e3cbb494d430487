//! A small in-memory cache of facts derived from the store (verified tokens, parsed SAML
//! signers), bounded in size and in age, and tied to the epoch of the store's change feed
//! ([`signpost_store::Store::epoch`]): when the feed comes back after it was down, notifications
//! may have been lost, so everything cached under the old epoch is dropped before the map is read
//! again, and a value worked out under an old epoch is not kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

pub(crate) struct EpochMap<V> {
    map: moka::sync::Cache<String, V>,
    /// Its budget: entries, or bytes when made with a weigher.
    capacity: u64,
    lookups: signpost_store::HitCounter,
    epoch: AtomicU64,
    /// Held for writing while the epoch moves, for reading while a value is put: a put never
    /// lands between the check of its epoch and the move.
    moving: RwLock<()>,
}

impl<V> std::fmt::Debug for EpochMap<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EpochMap")
            .field("entries", &self.map.entry_count())
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish()
    }
}

impl<V: Clone + Send + Sync + 'static> EpochMap<V> {
    /// At most `max` entries (the least useful go first), each kept at most `ttl`.
    pub(crate) fn new(max: u64, ttl: Duration) -> Self {
        Self::of(
            moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_live(ttl)
                .build(),
            max,
        )
    }

    /// At most `bytes` as `weigh` counts each entry (key and value), each kept at most `ttl`.
    pub(crate) fn weighted(bytes: u64, ttl: Duration, weigh: fn(&str, &V) -> usize) -> Self {
        let bytes = bytes.max(1);
        Self::of(
            moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(move |k: &String, v: &V| u32::try_from(weigh(k, v)).unwrap_or(u32::MAX))
                .time_to_live(ttl)
                .build(),
            bytes,
        )
    }

    fn of(map: moka::sync::Cache<String, V>, capacity: u64) -> Self {
        Self {
            map,
            capacity,
            lookups: signpost_store::HitCounter::default(),
            epoch: AtomicU64::new(0),
            moving: RwLock::new(()),
        }
    }

    /// Its figures for `/metrics` (`bytes` and `capacity_bytes` count entries when it was made
    /// without a weigher).
    pub(crate) fn stats(&self, name: &'static str) -> signpost_store::CacheStats {
        self.lookups.stats(name, &self.map, self.capacity)
    }

    /// Drops everything cached under another epoch.
    pub(crate) fn sync_epoch(&self, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            let _moving = self.moving.write().unwrap_or_else(|p| p.into_inner());
            self.map.invalidate_all();
            self.epoch.store(epoch, Ordering::Release);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let found = self.map.get(key);
        match found {
            Some(_) => self.lookups.hit(),
            None => self.lookups.miss(),
        }
        found
    }

    /// Keeps a value worked out under `epoch`, unless the epoch moved meanwhile.
    pub(crate) fn put(&self, key: &str, value: V, epoch: u64) {
        let _still = self.moving.read().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        self.map.insert(key.to_owned(), value);
    }

    pub(crate) fn remove(&self, key: &str) {
        self.map.invalidate(key);
    }

    pub(crate) fn clear(&self) {
        self.map.invalidate_all();
    }

    /// How many entries are kept (after pending evictions ran).
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.map.run_pending_tasks();
        self.map.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::EpochMap;
    use std::time::Duration;

    #[test]
    fn a_new_epoch_drops_everything_and_refuses_late_values() {
        let m = EpochMap::new(100, Duration::from_secs(60));
        m.put("a", 1, 0);
        assert_eq!(m.get("a"), Some(1));
        m.sync_epoch(1);
        assert_eq!(m.get("a"), None);
        m.put("late", 2, 0);
        assert_eq!(m.get("late"), None, "worked out under the old epoch");
        m.put("b", 3, 1);
        assert_eq!(m.get("b"), Some(3));
        m.remove("b");
        assert_eq!(m.get("b"), None);
    }

    #[test]
    fn thousands_of_keys_stay_within_the_capacity() {
        let m = EpochMap::new(500, Duration::from_secs(60));
        for i in 0..5_000 {
            m.put(&format!("token-{i}"), i, 0);
        }
        let kept = m.len();
        assert!(kept > 0 && kept <= 500, "{kept} entries kept");
    }

    #[test]
    fn a_weighted_map_stays_within_its_bytes_and_counts_lookups() {
        let m = EpochMap::weighted(10_000, Duration::from_secs(60), |k, v: &String| {
            k.len() + v.len()
        });
        for i in 0..1_000 {
            m.put(&format!("token-{i}"), "x".repeat(90), 0);
        }
        m.map.run_pending_tasks();
        let stats = m.stats("t");
        assert!(stats.bytes > 0 && stats.bytes <= 10_000, "{stats:?}");
        assert_eq!(stats.capacity_bytes, 10_000);
        let kept = m.len();
        assert!(
            kept > 0 && kept <= 10_000 / 97,
            "{kept} entries of 97 to 99 bytes kept"
        );
        m.put("hit", "v".into(), 0);
        assert!(m.get("hit").is_some());
        assert!(m.get("nope").is_none());
        let stats = m.stats("t");
        assert_eq!((stats.hits, stats.misses), (1, 1));
    }

    #[test]
    fn entries_expire() {
        let m = EpochMap::new(10, Duration::from_millis(50));
        m.put("a", 1, 0);
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(m.get("a"), None);
    }
}
