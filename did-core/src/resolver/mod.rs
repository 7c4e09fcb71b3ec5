//! DID resolution behind one async trait, with a bounded cache and a network policy
//! ([`ResolverPolicy`]: which addresses did:web may reach, timeouts, size and cache bounds).

mod cache;
pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{Error, Result};
use crate::method::{key, peer, pkh, web};

pub use policy::{AddrClass, Reach, ResolverPolicy, ENV_RESOLVE_PRIVATE};

/// Resolves DIDs to documents.
#[async_trait]
pub trait DidResolver: Send + Sync {
    /// Resolves `did`.
    async fn resolve(&self, did: &Did) -> Result<Arc<DidDocument>>;
}

#[async_trait]
impl<R: DidResolver + ?Sized> DidResolver for Arc<R> {
    async fn resolve(&self, did: &Did) -> Result<Arc<DidDocument>> {
        (**self).resolve(did).await
    }
}

/// Default capacity of the resolver cache.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;
/// How long a did:web document is cached by default ([`ResolverPolicy::cache_ttl`]).
pub const WEB_TTL: Duration = Duration::from_secs(300);

/// The standard resolver: did:key, did:peer:0/2, did:pkh, did:web (when given an
/// [`web::HttpFetch`]), plus documents registered with [`Resolver::insert`].
/// Results are cached: derived methods until evicted, did:web for the policy's
/// `cache_ttl`; did:web failures are remembered for its `negative_ttl`.
pub struct Resolver {
    http: Option<Arc<dyn web::HttpFetch>>,
    policy: ResolverPolicy,
    pinned: RwLock<HashMap<Did, Arc<DidDocument>>>,
    cache: Mutex<cache::Cache>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(None)
    }
}

impl Resolver {
    /// A resolver with the default (strict) policy; did:web is available only with an HTTP
    /// fetcher. The fetcher alone decides which addresses it connects to: give it the same
    /// policy (as [`Resolver::with_http_policy`] does).
    pub fn new(http: Option<Arc<dyn web::HttpFetch>>) -> Resolver {
        Resolver::with_fetcher(http, ResolverPolicy::default())
    }

    /// A resolver with `policy` for its cache and did:web handling, fetching with `http`.
    pub fn with_fetcher(http: Option<Arc<dyn web::HttpFetch>>, policy: ResolverPolicy) -> Resolver {
        let cache = cache::Cache::new(
            policy.cache_entries,
            policy.cache_ttl,
            policy.negative_cache_entries,
            policy.negative_ttl,
        );
        Resolver { http, policy, pinned: RwLock::default(), cache: Mutex::new(cache) }
    }

    /// A resolver that fetches did:web documents with reqwest under
    /// [`ResolverPolicy::process_default`]: public addresses only, unless the program set
    /// another default or the environment sets [`ENV_RESOLVE_PRIVATE`].
    #[cfg(feature = "http")]
    pub fn with_http() -> Result<Resolver> {
        Resolver::with_http_policy(ResolverPolicy::process_default()?)
    }

    /// A resolver that fetches did:web documents with reqwest under `policy`.
    #[cfg(feature = "http")]
    pub fn with_http_policy(policy: ResolverPolicy) -> Result<Resolver> {
        let fetch = web::ReqwestFetch::new(&policy)?;
        Ok(Resolver::with_fetcher(Some(Arc::new(fetch)), policy))
    }

    /// The policy in force.
    pub fn policy(&self) -> &ResolverPolicy {
        &self.policy
    }

    /// Sets the cache capacity (entries).
    pub fn with_capacity(self, capacity: usize) -> Resolver {
        self.lock_cache().set_capacity(capacity);
        self
    }

    /// Registers a document that resolves without any method logic (e.g. a
    /// did:example test party, or a document received out of band).
    pub fn insert(&self, doc: DidDocument) {
        let mut pinned = self.pinned.write().unwrap_or_else(|e| e.into_inner());
        pinned.insert(doc.id.clone(), Arc::new(doc));
    }

    /// Whether `did` is answered without any network access: pinned, cached, or of a method
    /// derived from the DID itself (did:key, did:peer, did:pkh).
    pub fn resolves_offline(&self, did: &Did) -> bool {
        !cache::fetched(did) || self.cached(did).is_some()
    }

    /// Drops a cached document or remembered failure (e.g. after a did:web update).
    pub fn invalidate(&self, did: &Did) {
        self.lock_cache().invalidate(did);
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, cache::Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, did: &Did) -> Option<Arc<DidDocument>> {
        if let Some(doc) = self.pinned.read().unwrap_or_else(|e| e.into_inner()).get(did) {
            return Some(doc.clone());
        }
        self.lock_cache().get(did)
    }

    async fn resolve_uncached(&self, did: &Did) -> Result<DidDocument> {
        match did.method() {
            "key" => key::resolve(did),
            "peer" => peer::resolve(did),
            "pkh" => pkh::resolve(did).await,
            "web" => match &self.http {
                Some(http) => {
                    if self.lock_cache().failed_recently(did) {
                        return Err(web::unreachable(did));
                    }
                    let result = web::resolve(did, http.as_ref(), &self.policy).await;
                    if matches!(&result, Err(Error::Resolution { reason, .. }) if reason == web::UNREACHABLE) {
                        self.lock_cache().put_failure(did);
                    }
                    result
                }
                None => Err(Error::Resolution {
                    did: did.to_string(),
                    reason: "did:web needs network access, which this resolver was built without".into(),
                }),
            },
            other => Err(Error::UnsupportedMethod(other.to_owned())),
        }
    }
}

#[async_trait]
impl DidResolver for Resolver {
    async fn resolve(&self, did: &Did) -> Result<Arc<DidDocument>> {
        if let Some(doc) = self.cached(did) {
            return Ok(doc);
        }
        let doc = Arc::new(self.resolve_uncached(did).await?);
        self.lock_cache().put(doc.clone());
        Ok(doc)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    struct CountingFetch(std::sync::atomic::AtomicUsize, String);

    #[async_trait]
    impl web::HttpFetch for CountingFetch {
        async fn get(&self, url: &str, _max: usize) -> std::result::Result<Vec<u8>, web::FetchError> {
            assert_eq!(url, "https://example.com/.well-known/did.json");
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.1.clone().into_bytes())
        }
    }

    #[tokio::test]
    async fn caches_and_checks_web_ids() {
        let body = r#"{"id": "did:web:example.com"}"#.to_owned();
        let fetch = Arc::new(CountingFetch(Default::default(), body));
        let r = Resolver::new(Some(fetch.clone())).with_capacity(1);
        let did = Did::parse("did:web:example.com").unwrap();
        r.resolve(&did).await.unwrap();
        r.resolve(&did).await.unwrap();
        assert_eq!(fetch.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        // capacity 1: resolving another DID evicts the web document
        r.resolve(&Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap()).await.unwrap();
        r.resolve(&did).await.unwrap();
        assert_eq!(fetch.0.load(std::sync::atomic::Ordering::SeqCst), 2);

        let liar_fetch = Arc::new(CountingFetch(Default::default(), r#"{"id": "did:web:evil.com"}"#.into()));
        let liar = Resolver::new(Some(liar_fetch.clone()));
        assert!(matches!(liar.resolve(&did).await, Err(Error::Resolution { .. })));
        // the failure is remembered: no second fetch within the negative TTL
        assert!(liar.resolve(&did).await.is_err());
        assert_eq!(liar_fetch.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(!liar.resolves_offline(&did));
        assert!(r.resolves_offline(&did), "cached");
        assert!(matches!(Resolver::default().resolve(&did).await, Err(Error::Resolution { .. })));
        assert!(matches!(
            Resolver::default().resolve(&Did::parse("did:example:x").unwrap()).await,
            Err(Error::UnsupportedMethod(_))
        ));
    }
}
