//! A small in-memory map of facts derived from the store (verified tokens, parsed SAML signers),
//! tied to the epoch of the store's change feed ([`signpost_store::Store::epoch`]): when the feed
//! comes back after it was down, notifications may have been lost, so everything cached under
//! the old epoch is dropped before the map is read again, and a value worked out under an old
//! epoch is not kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

#[derive(Debug)]
pub(crate) struct EpochMap<V> {
    map: RwLock<HashMap<String, V>>,
    epoch: AtomicU64,
    /// At this many entries a put starts over with an empty map.
    max: usize,
}

impl<V: Clone> EpochMap<V> {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            max,
        }
    }

    /// Drops everything cached under another epoch.
    pub(crate) fn sync_epoch(&self, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            map.clear();
            self.epoch.store(epoch, Ordering::Release);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Keeps a value worked out under `epoch`, unless the epoch moved meanwhile.
    pub(crate) fn put(&self, key: &str, value: V, epoch: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if map.len() >= self.max {
            map.clear();
        }
        map.insert(key.to_owned(), value);
    }

    pub(crate) fn remove(&self, key: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub(crate) fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::EpochMap;

    #[test]
    fn a_new_epoch_drops_everything_and_refuses_late_values() {
        let m = EpochMap::new(2);
        m.put("a", 1, 0);
        assert_eq!(m.get("a"), Some(1));
        m.sync_epoch(1);
        assert_eq!(m.get("a"), None);
        m.put("late", 2, 0);
        assert_eq!(m.get("late"), None, "worked out under the old epoch");
        m.put("b", 3, 1);
        m.put("c", 4, 1);
        m.put("d", 5, 1);
        assert_eq!(
            (m.get("b"), m.get("d")),
            (None, Some(5)),
            "full: starts over"
        );
    }
}
