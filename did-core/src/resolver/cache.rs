//! The resolver's bounded memory: documents (did:web ones for a TTL) and recent did:web failures.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::did::Did;
use crate::doc::DidDocument;

/// Entries with an insertion time, at most `capacity`; when full, the oldest insertion is
/// evicted (FIFO: hits do not refresh).
struct Bounded<K, V> {
    map: HashMap<K, (V, Instant)>,
    capacity: usize,
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded { map: HashMap::new(), capacity: capacity.max(1) }
    }

    fn get(&self, k: &K) -> Option<(&V, Instant)> {
        self.map.get(k).map(|(v, at)| (v, *at))
    }

    fn put(&mut self, k: K, v: V, ttl: Option<Duration>) {
        if self.map.len() >= self.capacity && !self.map.contains_key(&k) {
            if let Some(ttl) = ttl {
                self.map.retain(|_, (_, at)| at.elapsed() < ttl);
            }
            if self.map.len() >= self.capacity {
                if let Some(oldest) = self.map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone()) {
                    self.map.remove(&oldest);
                }
            }
        }
        self.map.insert(k, (v, Instant::now()));
    }

    fn remove(&mut self, k: &K) {
        self.map.remove(k);
    }
}

/// Resolved documents and remembered failures.
pub(super) struct Cache {
    docs: Bounded<Did, Arc<DidDocument>>,
    failures: Bounded<Did, ()>,
    ttl: Duration,
    negative_ttl: Duration,
}

impl Cache {
    pub(super) fn new(capacity: usize, ttl: Duration, negative_capacity: usize, negative_ttl: Duration) -> Cache {
        Cache { docs: Bounded::new(capacity), failures: Bounded::new(negative_capacity), ttl, negative_ttl }
    }

    /// A cached document; did:web documents only within the TTL (derived methods never change).
    pub(super) fn get(&self, did: &Did) -> Option<Arc<DidDocument>> {
        let (doc, at) = self.docs.get(did)?;
        (!fetched(did) || at.elapsed() < self.ttl).then(|| doc.clone())
    }

    /// Whether resolving `did` failed within the negative TTL.
    pub(super) fn failed_recently(&self, did: &Did) -> bool {
        self.failures.get(did).is_some_and(|(_, at)| at.elapsed() < self.negative_ttl)
    }

    pub(super) fn put(&mut self, doc: Arc<DidDocument>) {
        let ttl = fetched(&doc.id).then_some(self.ttl);
        self.failures.remove(&doc.id);
        self.docs.put(doc.id.clone(), doc, ttl);
    }

    pub(super) fn put_failure(&mut self, did: &Did) {
        self.failures.put(did.clone(), (), Some(self.negative_ttl));
    }

    pub(super) fn invalidate(&mut self, did: &Did) {
        self.docs.remove(did);
        self.failures.remove(did);
    }

    pub(super) fn set_capacity(&mut self, capacity: usize) {
        self.docs.capacity = capacity.max(1);
    }
}

/// Methods whose documents come from the network (and so can change and can fail for a while).
pub(super) fn fetched(did: &Did) -> bool {
    did.method() == "web"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_evicts_oldest_and_expired() {
        let mut b = Bounded::new(2);
        b.put(1, "a", None);
        b.put(2, "b", None);
        b.put(3, "c", None);
        assert!(b.get(&1).is_none() && b.get(&2).is_some() && b.get(&3).is_some());
        assert_eq!(b.map.len(), 2);
        let mut e = Bounded::new(2);
        e.put(1, "a", Some(Duration::ZERO));
        e.put(2, "b", Some(Duration::ZERO));
        e.put(3, "c", Some(Duration::ZERO));
        assert_eq!(e.map.len(), 1, "expired entries are dropped before evicting");
    }

    #[test]
    fn failures_expire() {
        let did = Did::parse("did:web:example.com").unwrap();
        let mut c = Cache::new(4, Duration::from_secs(60), 4, Duration::from_secs(60));
        assert!(!c.failed_recently(&did));
        c.put_failure(&did);
        assert!(c.failed_recently(&did));
        c.invalidate(&did);
        assert!(!c.failed_recently(&did));
        let mut z = Cache::new(4, Duration::from_secs(60), 4, Duration::ZERO);
        z.put_failure(&did);
        assert!(!z.failed_recently(&did));
    }
}
