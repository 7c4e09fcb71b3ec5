//! did:web: the DID names an HTTPS URL of a `did.json` (plain HTTP only for loopback hosts).

use async_trait::async_trait;

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{clip, Error, Result};

/// Largest did.json accepted.
pub const MAX_DOC_BYTES: usize = 256 * 1024;

/// Fetches a URL; the one place did:web resolution touches the network.
#[async_trait]
pub trait HttpFetch: Send + Sync {
    /// GETs `url`, failing when the body exceeds `max_bytes`.
    async fn get(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>>;
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

/// Fetches and checks a did:web document (its `id` must be the DID).
pub async fn resolve(did: &Did, http: &dyn HttpFetch) -> Result<DidDocument> {
    let url = document_url(did)?;
    let body = http.get(&url, MAX_DOC_BYTES).await.map_err(|e| match e {
        Error::Resolution { reason, .. } => Error::Resolution { did: did.to_string(), reason },
        other => other,
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Error::Resolution { did: did.to_string(), reason: format!("{url} is not UTF-8") })?;
    let doc = DidDocument::from_json(text)
        .map_err(|e| Error::Resolution { did: did.to_string(), reason: format!("{url}: {e}") })?;
    if doc.id != *did {
        return Err(Error::Resolution { did: did.to_string(), reason: format!("{url} describes {} instead", doc.id) });
    }
    Ok(doc)
}

/// [`HttpFetch`] over reqwest (rustls, 10 s timeout, at most 3 redirects).
#[cfg(feature = "http")]
#[derive(Clone)]
pub struct ReqwestFetch {
    client: reqwest::Client,
}

#[cfg(feature = "http")]
impl ReqwestFetch {
    /// A client with sane timeouts.
    pub fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("didmpc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Resolution { did: String::new(), reason: format!("HTTP client: {e}") })?;
        Ok(ReqwestFetch { client })
    }
}

#[cfg(feature = "http")]
#[async_trait]
impl HttpFetch for ReqwestFetch {
    async fn get(&self, url: &str, max_bytes: usize) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Resolution { did: String::new(), reason: format!("GET {url}: {reason}") };
        let mut resp = self
            .client
            .get(url)
            .header("accept", "application/did+json, application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > max_bytes {
                return Err(fail(format!("document larger than {max_bytes} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
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
