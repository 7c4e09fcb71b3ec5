//! did:web: the DID names an HTTPS URL of a `did.json` (plain HTTP only for loopback hosts,
//! which the default policy does not reach at all).

use async_trait::async_trait;

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{clip, Error, Result};
use crate::resolver::ResolverPolicy;

#[cfg(feature = "http")]
mod fetch;
#[cfg(feature = "http")]
pub use fetch::ReqwestFetch;

/// Largest did.json accepted by default ([`ResolverPolicy::max_document_bytes`]).
pub const MAX_DOC_BYTES: usize = 256 * 1024;

/// Why a fetch returned no document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The policy forbids the URL's host outright; nothing was sent.
    Forbidden,
    /// Too many fetches are in flight; nothing was sent.
    Busy,
    /// Anything else (DNS, connection, TLS, timeout, HTTP status, redirect, size). The text is
    /// for local debug logs only: it may name ports and answers the caller must not learn.
    Failed(String),
}

/// Fetches a URL; the one place did:web resolution touches the network.
#[async_trait]
pub trait HttpFetch: Send + Sync {
    /// GETs `url` without following redirects, failing when the body exceeds `max_bytes`.
    async fn get(&self, url: &str, max_bytes: usize) -> std::result::Result<Vec<u8>, FetchError>;
}

/// The URL of a did:web's document.
pub fn document_url(did: &Did) -> Result<String> {
    if did.method() != "web" {
        return Err(Error::UnsupportedMethod(did.method().to_owned()));
    }
    let mut parts = did.method_specific_id().split(':');
    let host_enc = parts.next().unwrap_or_default();
    let host = host_enc.replace("%3A", ":").replace("%3a", ":");
    if host.is_empty() || host.contains(['%', '/', '@']) {
        return Err(Error::InvalidDid { input: clip(did.as_str()), reason: "did:web host is not a plain host[:port]" });
    }
    let path: Vec<&str> = parts.collect();
    if path.iter().any(|p| p.is_empty() || p.contains('%') || *p == "." || *p == "..") {
        return Err(Error::InvalidDid {
            input: clip(did.as_str()),
            reason: "did:web path segment is empty or encoded",
        });
    }
    let hostname = host.rsplit_once(':').map_or(host.as_str(), |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host.as_str()
        }
    });
    let scheme = if is_loopback(hostname) { "http" } else { "https" };
    let path = if path.is_empty() { ".well-known".to_owned() } else { path.join("/") };
    Ok(format!("{scheme}://{host}/{path}/did.json"))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// The reason of every did:web failure that involved the network: whether the host did not
/// answer, refused, redirected, sent too much, sent something that is not this DID's document,
/// or timed out, the caller learns only this (so resolution is no port scanner and no way to
/// read other services' answers). Details go to debug logs.
pub const UNREACHABLE: &str = "unreachable or not a DID document";

/// The reason when the policy forbids the host outright (an IP address literal of a loopback,
/// private or other non-public network, or `localhost`); decided before any network access.
pub const FORBIDDEN: &str = "its host is a loopback, private or other non-public address, which the resolution policy \
forbids (DIDMPC_RESOLVE_PRIVATE=1, or a mediator's resolver.allow_private_addresses, allows it)";

/// The uniform failure for `did`.
pub(crate) fn unreachable(did: &Did) -> Error {
    Error::Resolution { did: did.to_string(), reason: UNREACHABLE.into() }
}

/// Fetches and checks a did:web document (its `id` must be the DID) under `policy`.
pub async fn resolve(did: &Did, http: &dyn HttpFetch, policy: &ResolverPolicy) -> Result<DidDocument> {
    let url = document_url(did)?;
    let fail = |reason: &str| Error::Resolution { did: did.to_string(), reason: reason.into() };
    let body = match http.get(&url, policy.max_document_bytes).await {
        Ok(b) => b,
        Err(FetchError::Forbidden) => return Err(fail(FORBIDDEN)),
        Err(FetchError::Busy) => return Err(fail("too many did:web resolutions in progress; try again")),
        Err(FetchError::Failed(detail)) => {
            tracing::debug!(%did, %url, %detail, "did:web fetch failed");
            return Err(unreachable(did));
        }
    };
    let doc = std::str::from_utf8(&body)
        .map_err(|_| "the body is not UTF-8".to_owned())
        .and_then(|text| DidDocument::from_json(text).map_err(|e| e.to_string()))
        .and_then(|doc| if doc.id == *did { Ok(doc) } else { Err(format!("the document describes {}", doc.id)) });
    doc.map_err(|detail| {
        tracing::debug!(%did, %url, %detail, "did:web document refused");
        unreachable(did)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = |s: &str| document_url(&Did::parse(s).unwrap());
        assert_eq!(u("did:web:w3c-ccg.github.io").unwrap(), "https://w3c-ccg.github.io/.well-known/did.json");
        assert_eq!(u("did:web:w3c-ccg.github.io:user:alice").unwrap(), "https://w3c-ccg.github.io/user/alice/did.json");
        assert_eq!(u("did:web:example.com%3A3000:user:alice").unwrap(), "https://example.com:3000/user/alice/did.json");
        assert_eq!(u("did:web:localhost%3A8080").unwrap(), "http://localhost:8080/.well-known/did.json");
        assert_eq!(u("did:web:127.0.0.1%3A8080:m").unwrap(), "http://127.0.0.1:8080/m/did.json");
        assert!(u("did:web:example.com::x").is_err());
        assert!(u("did:web:example.com%2Fevil").is_err());
        assert!(u("did:key:z6Mk").is_err());
    }
}
