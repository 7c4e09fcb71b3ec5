//! A bounded, in-memory cache of the ECDH-1PU static-static shared secret `Zs`.
//!
//! Authcrypt (ECDH-1PU, `specs/didcomm-profile.md` §4.4) derives each recipient's KEK from
//! `Z = Ze || Zs`. `Ze` involves the fresh ephemeral key and is computed for every message,
//! but `Zs` = ECDH(our static secret, the other party's static public key) is the same for
//! every message between the same two keys: the sender computes ECDH(sender secret,
//! recipient public), the recipient ECDH(recipient secret, sender public). This cache lets
//! both sides compute it once per key pair instead of once per message.
//!
//! **It holds key-equivalent material, in memory only.** Whoever reads a cached `Zs` can
//! forge authcrypt messages between those two keys (choosing the ephemeral key
//! themselves) just as if they held one of the two secret keys. Therefore:
//! - entries are never written anywhere: no disk, no logs, no `Debug` output;
//! - values, and the copies handed out, are [`Zeroizing`] buffers, wiped when evicted or
//!   dropped;
//! - an entry is keyed by SHA-256 over (a domain tag, the curve, *our secret key bytes*,
//!   the other party's public key bytes), never by key ids: a different secret key (for
//!   instance the same kid after a rotation, or another identity in the same process)
//!   never finds another key's entry, and a key id names no entry at all;
//! - the cache holds at most [`CAPACITY`] entries; when full, the oldest entry is evicted
//!   (first in, first out).
//!
//! A cache hit makes the 1PU part of pack/unpack faster, so the time an unpack takes can
//! tell an observer whether that sender key was used with ours recently. Only `Zs` is
//! cached; failed key agreements (for instance a low-order X25519 key) are not.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::Result;
use crate::keys::{PublicKey, SecretKey};

/// Most entries the process-wide cache holds.
pub const CAPACITY: usize = 4096;

/// Domain separation for the cache key digest.
const DOMAIN: &[u8] = b"did-core/ecdh-1pu/zs-cache/v1";

static CACHE: LazyLock<ZsCache> = LazyLock::new(|| ZsCache::new(CAPACITY));

/// `Zs` = ECDH(`ours`, `theirs`) through the process-wide cache.
pub(crate) fn static_z(ours: &SecretKey, theirs: &PublicKey) -> Result<Zeroizing<Vec<u8>>> {
    CACHE.get_or_compute(ours, theirs)
}

/// A bounded map from a key-pair digest to its ECDH result.
pub(crate) struct ZsCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<[u8; 32], Zeroizing<Vec<u8>>>,
    /// Insertion order, oldest first; holds exactly the keys of `map`.
    order: VecDeque<[u8; 32]>,
}

impl ZsCache {
    /// An empty cache holding at most `capacity` (≥ 1) entries.
    pub(crate) fn new(capacity: usize) -> ZsCache {
        ZsCache { capacity: capacity.max(1), inner: Mutex::default() }
    }

    /// ECDH(`ours`, `theirs`), from the cache when present, else computed and remembered.
    pub(crate) fn get_or_compute(&self, ours: &SecretKey, theirs: &PublicKey) -> Result<Zeroizing<Vec<u8>>> {
        let key = cache_key(ours, theirs);
        if let Some(z) = self.lock().map.get(&key) {
            return Ok(z.clone());
        }
        // Computed without holding the lock; two threads may both compute a missing
        // entry, which is harmless (the result is the same).
        let z = ours.ecdh(theirs)?;
        let mut inner = self.lock();
        if !inner.map.contains_key(&key) {
            while inner.map.len() >= self.capacity {
                let Some(oldest) = inner.order.pop_front() else {
                    break;
                };
                inner.map.remove(&oldest);
            }
            inner.map.insert(key, z.clone());
            inner.order.push_back(key);
        }
        Ok(z)
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// SHA-256(domain ‖ curve ‖ len ‖ our secret key bytes ‖ len ‖ their public key bytes).
fn cache_key(ours: &SecretKey, theirs: &PublicKey) -> [u8; 32] {
    let secret = ours.to_bytes();
    let public = theirs.to_bytes();
    let mut h = Sha256::new();
    h.update(DOMAIN);
    for part in [ours.kind().crv().as_bytes(), theirs.kind().crv().as_bytes(), secret.as_slice(), public.as_slice()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;

    #[test]
    fn hits_equal_fresh_ecdh_on_every_curve() {
        let cache = ZsCache::new(16);
        for kind in [KeyKind::X25519, KeyKind::P256, KeyKind::P384, KeyKind::P521, KeyKind::Secp256k1] {
            let a = SecretKey::generate(kind);
            let b = SecretKey::generate(kind);
            let direct = a.ecdh(&b.public_key()).unwrap();
            let miss = cache.get_or_compute(&a, &b.public_key()).unwrap();
            let hit = cache.get_or_compute(&a, &b.public_key()).unwrap();
            assert_eq!(*miss, *direct);
            assert_eq!(*hit, *direct);
            // The other side's entry is separate and agrees.
            assert_eq!(*cache.get_or_compute(&b, &a.public_key()).unwrap(), *direct);
        }
        assert_eq!(cache.len(), 10);
    }

    #[test]
    fn different_secret_keys_never_share_an_entry() {
        let cache = ZsCache::new(64);
        let peer = SecretKey::generate(KeyKind::X25519).public_key();
        let mine: Vec<SecretKey> = (0..8).map(|_| SecretKey::generate(KeyKind::X25519)).collect();
        for _ in 0..2 {
            for k in &mine {
                assert_eq!(*cache.get_or_compute(k, &peer).unwrap(), *k.ecdh(&peer).unwrap());
            }
        }
        assert_eq!(cache.len(), mine.len());
        let keys: std::collections::HashSet<[u8; 32]> = mine.iter().map(|k| cache_key(k, &peer)).collect();
        assert_eq!(keys.len(), mine.len());
        // Same secret, different peers: different entries too.
        let other = SecretKey::generate(KeyKind::X25519).public_key();
        assert_ne!(cache_key(&mine[0], &peer), cache_key(&mine[0], &other));
    }

    #[test]
    fn bounded_and_evicts_oldest_first() {
        let cache = ZsCache::new(3);
        let me = SecretKey::generate(KeyKind::X25519);
        let peers: Vec<PublicKey> = (0..5).map(|_| SecretKey::generate(KeyKind::X25519).public_key()).collect();
        for p in &peers {
            cache.get_or_compute(&me, p).unwrap();
            assert!(cache.len() <= 3);
        }
        let inner = cache.lock();
        assert_eq!(inner.order.len(), inner.map.len());
        let kept: Vec<[u8; 32]> = peers[2..].iter().map(|p| cache_key(&me, p)).collect();
        assert_eq!(inner.order.iter().copied().collect::<Vec<_>>(), kept);
    }

    #[test]
    fn failures_are_not_cached() {
        let cache = ZsCache::new(4);
        let me = SecretKey::generate(KeyKind::X25519);
        let low_order = PublicKey::from_bytes(KeyKind::X25519, &[0u8; 32]).unwrap();
        assert!(cache.get_or_compute(&me, &low_order).is_err());
        let p256 = SecretKey::generate(KeyKind::P256).public_key();
        assert!(cache.get_or_compute(&me, &p256).is_err());
        assert_eq!(cache.len(), 0);
    }
}
