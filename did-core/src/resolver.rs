//! DID resolution behind one async trait, with a bounded cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{Error, Result};
use crate::method::{key, peer, pkh, web};

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
/// How long a did:web document is cached.
pub const WEB_TTL: Duration = Duration::from_secs(300);

/// The standard resolver: did:key, did:peer:0/2, did:pkh, did:web (when given an
/// [`web::HttpFetch`]), plus documents registered with [`Resolver::insert`].
/// Results are cached: derived methods until evicted, did:web for [`WEB_TTL`].
pub struct Resolver {
    http: Option<Arc<dyn web::HttpFetch>>,
    pinned: RwLock<HashMap<Did, Arc<DidDocument>>>,
    cache: Mutex<HashMap<Did, (Arc<DidDocument>, Instant)>>,
    capacity: usize,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(None)
    }
}

impl Resolver {
    /// A resolver; did:web is available only with an HTTP fetcher.
    pub fn new(http: Option<Arc<dyn web::HttpFetch>>) -> Resolver {
        Resolver { http, pinned: RwLock::default(), cache: Mutex::default(), capacity: DEFAULT_CACHE_ENTRIES }
    }

    /// A resolver that fetches did:web documents with reqwest.
    #[cfg(feature = "http")]
    pub fn with_http() -> Result<Resolver> {
        Ok(Resolver::new(Some(Arc::new(web::ReqwestFetch::new()?))))
    }

    /// Sets the cache capacity (entries).
    pub fn with_capacity(mut self, capacity: usize) -> Resolver {
        self.capacity = capacity.max(1);
        self
    }

    /// Registers a document that resolves without any method logic (e.g. a
    /// did:example test party, or a document received out of band).
    pub fn insert(&self, doc: DidDocument) {
        let mut pinned = self.pinned.write().unwrap_or_else(|e| e.into_inner());
        pinned.insert(doc.id.clone(), Arc::new(doc));
    }

    /// Drops a cached document (e.g. after a did:web update).
    pub fn invalidate(&self, did: &Did) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(did);
    }

    fn cached(&self, did: &Did) -> Option<Arc<DidDocument>> {
        if let Some(doc) = self.pinned.read().unwrap_or_else(|e| e.into_inner()).get(did) {
            return Some(doc.clone());
        }
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let (doc, at) = cache.get(did)?;
        (did.method() != "web" || at.elapsed() < WEB_TTL).then(|| doc.clone())
    }

    fn remember(&self, doc: Arc<DidDocument>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.capacity && !cache.contains_key(&doc.id) {
            if let Some(oldest) = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(d, _)| d.clone()) {
                cache.remove(&oldest);
            }
        }
        cache.insert(doc.id.clone(), (doc, Instant::now()));
    }

    async fn resolve_uncached(&self, did: &Did) -> Result<DidDocument> {
        match did.method() {
            "key" => key::resolve(did),
            "peer" => peer::resolve(did),
            "pkh" => pkh::resolve(did).await,
            "web" => match &self.http {
                Some(http) => web::resolve(did, http.as_ref()).await,
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
        self.remember(doc.clone());
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct CountingFetch(std::sync::atomic::AtomicUsize, String);

    #[async_trait]
    impl web::HttpFetch for CountingFetch {
        async fn get(&self, url: &str, _max: usize) -> Result<Vec<u8>> {
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

        let liar =
            Resolver::new(Some(Arc::new(CountingFetch(Default::default(), r#"{"id": "did:web:evil.com"}"#.into()))));
        assert!(matches!(liar.resolve(&did).await, Err(Error::Resolution { .. })));
        assert!(matches!(Resolver::default().resolve(&did).await, Err(Error::Resolution { .. })));
        assert!(matches!(
            Resolver::default().resolve(&Did::parse("did:example:x").unwrap()).await,
            Err(Error::UnsupportedMethod(_))
        ));
    }
}
