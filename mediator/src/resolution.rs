//! Which DIDs the mediator resolves, and for whom.
//!
//! The mediator must resolve the DID behind an authcrypt sender key (`skid`) before it can
//! decrypt, behind a signature (`kid`) before it can verify, and behind a `from_prior` issuer:
//! in each case before the message is authenticated, and the DID comes from whoever wrote the
//! message. did:key, did:peer and did:pkh documents are derived from the DID itself, so those
//! cost nothing. A did:web is an HTTPS fetch of a URL the author chose. [`Gate`] is the resolver
//! the router unpacks with: it passes derived methods and cached documents through, and fetches
//! a did:web only if the mediator has a reason to know it (`[resolver] web_senders`): its own
//! DIDs, clients holding a grant, the admission allowlist, `web_allow`. Everyone else gets
//! `e.m.did.unresolvable` without any network access. What a permitted fetch may reach is the
//! did-core [`did_core::ResolverPolicy`] built from this configuration (public addresses only
//! by default). See `specs/threat-model.md`.

use std::sync::Arc;

use async_trait::async_trait;
use did_core::{Did, DidDocument, DidResolver};
use serde::Deserialize;

use crate::quota::Refusal;
use crate::state::Mediator;

/// The reason given when a did:web is not fetched.
pub const NOT_FETCHED: &str = "this mediator fetches did:web documents only for the parties it serves (a mediation \
grant) or admits by configuration; write from a did:key or did:peer, or ask the operator";

/// `[resolver]`
///
/// The mediator resolves a DID when a message names it as the authcrypt sender (`skid`), the
/// signer (`kid`) or a `from_prior` issuer: before it can check anything else about the
/// message. did:key, did:peer and did:pkh resolve without the network. did:web means an HTTPS
/// fetch of a URL the message's author chose, so the mediator fetches only the did:web DIDs it
/// has a reason to know (`web_senders`), and only from addresses the policy allows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Let did:web fetches connect to loopback, private (RFC 1918), CGNAT-shared, link-local,
    /// unique-local and reserved addresses (default false: public addresses only). For an
    /// intranet mediator or a local test, never for one that strangers can reach.
    pub allow_private_addresses: bool,
    /// Whose did:web documents are fetched: `known` (default): the mediator's own DIDs, DIDs
    /// holding a mediation grant, `policy.allowlist` and `web_allow`; others are refused with
    /// `e.m.did.unresolvable` without any fetch. `any`: every did:web a message names (strangers
    /// then choose what the mediator fetches, within the address policy).
    pub web_senders: WebSenders,
    /// did:web DIDs that may be fetched without a grant (e.g. did:web parties that are yet to
    /// request mediation).
    pub web_allow: Vec<String>,
    /// Time for one whole did:web fetch, milliseconds (default 5,000; connecting gets at most
    /// 3,000 of it).
    pub timeout_ms: u64,
    /// Most resolved documents cached (default 10,000).
    pub cache_entries: usize,
    /// How long a fetched did:web document is used, seconds (default 300).
    pub cache_ttl_secs: u64,
    /// How long a did:web failure is remembered and answered without a fetch, seconds (default 60).
    pub negative_ttl_secs: u64,
}

/// Which did:web DIDs the mediator fetches.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WebSenders {
    /// Its own, granted clients, the admission allowlist and `web_allow`.
    #[default]
    Known,
    /// Any.
    Any,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            allow_private_addresses: false,
            web_senders: WebSenders::Known,
            web_allow: vec![],
            timeout_ms: 5_000,
            cache_entries: 10_000,
            cache_ttl_secs: 300,
            negative_ttl_secs: 60,
        }
    }
}

impl ResolverConfig {
    /// The did-core resolver policy this configuration means.
    pub fn policy(&self) -> did_core::ResolverPolicy {
        use did_core::{Reach, ResolverPolicy};
        use std::time::Duration;
        let reach = if self.allow_private_addresses { Reach::Private } else { Reach::PublicOnly };
        let mut p = ResolverPolicy::with_reach(reach);
        p.timeout = Duration::from_millis(self.timeout_ms);
        p.connect_timeout = p.connect_timeout.min(p.timeout);
        p.cache_entries = self.cache_entries;
        p.cache_ttl = Duration::from_secs(self.cache_ttl_secs);
        p.negative_ttl = Duration::from_secs(self.negative_ttl_secs);
        p
    }
}

/// The resolver the router unpacks with (see the module docs).
pub(crate) struct Gate<'a> {
    pub(crate) m: &'a Mediator,
}

impl Gate<'_> {
    async fn may_fetch(&self, did: &Did) -> bool {
        let (m, d) = (self.m, did.as_str());
        if m.config.resolver.web_senders == WebSenders::Any
            || m.own_dids.iter().any(|o| o == d)
            || m.config.resolver.web_allow.iter().any(|a| a == d)
            || m.config.policy.allowlist.iter().any(|a| a == d)
        {
            return true;
        }
        m.store.is_granted(d).await.unwrap_or(false)
    }
}

#[async_trait]
impl DidResolver for Gate<'_> {
    async fn resolve(&self, did: &Did) -> did_core::Result<Arc<DidDocument>> {
        if !self.m.resolver.resolves_offline(did) && !self.may_fetch(did).await {
            self.m.metrics.refused.inc(Refusal::DidWebUnknown);
            tracing::debug!(%did, "did:web not fetched for a stranger");
            return Err(did_core::Error::Resolution { did: did.to_string(), reason: NOT_FETCHED.into() });
        }
        self.m.resolver.resolve(did).await
    }
}
