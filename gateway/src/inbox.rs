//! The inbox pipeline: what the agent does with queued messages before anyone reads them.
//! Strangers can put messages in anyone's queue, so opening them must cost little and
//! bounded time whatever they contain:
//!
//! - **No fetches for strangers.** An authcrypted message names its sender's key (`skid`);
//!   checking it means resolving the sender's DID. did:key, did:peer and did:pkh resolve
//!   offline; did:web needs the network, so it is resolved only for DIDs this party expects
//!   ([`Expected`]): the hosts and roster members of its sessions, hosts it joined before,
//!   trusted issuers. A message from any other did:web is refused unread, with no request.
//!   (`didmpc inbox`, a person reading their messages, opens the gate.)
//! - **Bounded, concurrent unpacking.** A batch is opened [`UNPACK_AT_ONCE`] at a time, each
//!   within [`UNPACK_TIMEOUT`], in queue order for the reader.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use did_core::{Did, DidDocument, DidResolver};

/// Messages opened at once.
pub const UNPACK_AT_ONCE: usize = 8;
/// Longest time one message may take to open (resolution included). Longer than the
/// resolver's own time limit for one fetch (5 s), so a failed fetch ends there first and is
/// remembered (the resolver's failure cache), not cut off and tried again.
pub const UNPACK_TIMEOUT: Duration = Duration::from_secs(8);
/// Most DIDs remembered as expected.
pub const MAX_EXPECTED: usize = 10_000;

/// The DIDs whose documents this party may fetch over the network.
#[derive(Default)]
pub struct Expected {
    open: AtomicBool,
    dids: RwLock<HashSet<String>>,
}

impl Expected {
    /// Expects `did` (a roster member, a host, an issuer).
    pub fn add(&self, did: &str) {
        let mut set = self.dids.write().unwrap_or_else(|e| e.into_inner());
        if set.len() < MAX_EXPECTED {
            set.insert(did.to_owned());
        }
    }

    /// Lets every DID through (a person reading their own inbox chose to).
    pub fn open_all(&self) {
        self.open.store(true, Ordering::Relaxed);
    }

    /// Whether `did` may be resolved.
    pub fn allows(&self, did: &Did) -> bool {
        did.method() != "web"
            || self.open.load(Ordering::Relaxed)
            || self.dids.read().unwrap_or_else(|e| e.into_inner()).contains(did.as_str())
    }
}

/// A resolver that resolves only what [`Expected`] allows.
pub struct Gated<'a> {
    /// The resolver behind the gate.
    pub inner: &'a dyn DidResolver,
    /// The gate.
    pub expected: &'a Expected,
}

#[async_trait]
impl DidResolver for Gated<'_> {
    async fn resolve(&self, did: &Did) -> did_core::Result<Arc<DidDocument>> {
        if !self.expected.allows(did) {
            return Err(did_core::Error::Resolution {
                did: did.to_string(),
                reason: "not fetched: not a party, host or issuer this agent expects".into(),
            });
        }
        self.inner.resolve(did).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panics;

    #[async_trait]
    impl DidResolver for Panics {
        async fn resolve(&self, did: &Did) -> did_core::Result<Arc<DidDocument>> {
            Err(did_core::Error::Resolution { did: did.to_string(), reason: "reached the network".into() })
        }
    }

    #[tokio::test]
    async fn strangers_did_web_is_never_fetched() {
        let expected = Expected::default();
        let g = Gated { inner: &Panics, expected: &expected };
        let web = Did::parse("did:web:127.0.0.1%3A9:internal").unwrap();
        let e = g.resolve(&web).await.unwrap_err().to_string();
        assert!(e.contains("not fetched"), "{e}");
        expected.add(web.as_str());
        let e = g.resolve(&web).await.unwrap_err().to_string();
        assert!(e.contains("reached the network"), "an expected DID is resolved: {e}");
        let key = Did::parse("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK").unwrap();
        assert!(expected.allows(&key), "offline methods always resolve");
    }
}
