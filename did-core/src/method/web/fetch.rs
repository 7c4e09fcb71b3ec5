//! [`HttpFetch`] over reqwest, confined by a [`ResolverPolicy`].
//!
//! Every address is checked before it is connected to: an IP-literal host (in any form the URL
//! parser accepts, e.g. `2130706433` is 127.0.0.1) is classified directly; a name is looked up
//! by [`FilteringDns`], which hands reqwest only the permitted addresses, so the connection goes
//! to exactly the addresses that were checked (no second lookup a rebinding DNS server could
//! answer differently). No proxy (it would do its own lookups), no redirects, short timeouts,
//! a body cap, a bound on concurrent fetches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;
use tokio::sync::Semaphore;

use super::{FetchError, HttpFetch};
use crate::error::{Error, Result};
use crate::resolver::{Reach, ResolverPolicy};

/// [`HttpFetch`] over reqwest (rustls) under a policy.
#[derive(Clone)]
pub struct ReqwestFetch {
    client: reqwest::Client,
    reach: Reach,
    timeout: Duration,
    permits: Arc<Semaphore>,
}

impl ReqwestFetch {
    /// A client confined by `policy` (reach, timeouts, concurrency).
    pub fn new(policy: &ResolverPolicy) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(FilteringDns { reach: policy.reach }))
            .user_agent(concat!("didmpc/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Resolution { did: String::new(), reason: format!("HTTP client: {e}") })?;
        Ok(ReqwestFetch {
            client,
            reach: policy.reach,
            timeout: policy.timeout,
            permits: Arc::new(Semaphore::new(policy.max_concurrent_fetches.max(1))),
        })
    }

    /// Refuses URLs whose host the policy forbids without a lookup: IP literals of forbidden
    /// networks and the names that always mean this machine.
    fn check_host(&self, url: &Url) -> std::result::Result<(), FetchError> {
        let allowed = match url.host() {
            Some(url::Host::Ipv4(ip)) => self.reach.permits(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.reach.permits(ip.into()),
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.reach.permits_localhost() || !(name == "localhost" || name.ends_with(".localhost"))
            }
            None => return Err(FetchError::Failed("URL without a host".into())),
        };
        if allowed {
            Ok(())
        } else {
            Err(FetchError::Forbidden)
        }
    }

    async fn fetch(&self, url: Url, max_bytes: usize) -> std::result::Result<Vec<u8>, FetchError> {
        let fail = |e: reqwest::Error| FetchError::Failed(e.to_string());
        let mut resp = self
            .client
            .get(url)
            .header("accept", "application/did+json, application/json")
            .send()
            .await
            .map_err(fail)?;
        let status = resp.status();
        if !status.is_success() {
            let what = if status.is_redirection() { " (redirects are not followed)" } else { "" };
            return Err(FetchError::Failed(format!("HTTP {status}{what}")));
        }
        if resp.content_length().is_some_and(|n| n > max_bytes as u64) {
            return Err(FetchError::Failed(format!("document larger than {max_bytes} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(fail)? {
            if body.len() + chunk.len() > max_bytes {
                return Err(FetchError::Failed(format!("document larger than {max_bytes} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

#[async_trait]
impl HttpFetch for ReqwestFetch {
    async fn get(&self, url: &str, max_bytes: usize) -> std::result::Result<Vec<u8>, FetchError> {
        let url = Url::parse(url).map_err(|e| FetchError::Failed(format!("bad URL: {e}")))?;
        self.check_host(&url)?;
        let Ok(Ok(_permit)) = tokio::time::timeout(self.timeout, self.permits.acquire()).await else {
            return Err(FetchError::Busy);
        };
        self.fetch(url, max_bytes).await
    }
}

/// A DNS resolver that returns only the addresses `reach` permits (an error when none is).
pub struct FilteringDns {
    /// What may be connected to.
    pub reach: Reach,
}

impl Resolve for FilteringDns {
    fn resolve(&self, name: Name) -> Resolving {
        let reach = self.reach;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| reach.permits(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!("{host} has no address the resolution policy permits").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
