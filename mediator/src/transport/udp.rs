//! UDP: the reflexive-address probe (`relay::reflex`). Parties learn from which address
//! their NAT lets their UDP socket out, a candidate for a direct path between them. Two
//! sockets on different ports let a party tell an endpoint-independent NAT mapping (the
//! same external port for both) from a symmetric one.
//!
//! Probes are answered only with a key granted over the party's authenticated DIDComm
//! link (`protocols::reflex`), never with more bytes than the probe, and at most
//! `answers_per_second` per key; everything else is dropped and counted.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use relay::reflex::{self, Refusal, KEY_ID_LEN};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::Mediator;

/// `[udp]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// Addresses whose UDP sockets answer probes (default none: no probes; give two ports
    /// so parties can tell NAT kinds apart). `--udp` overrides.
    pub listen: Vec<SocketAddr>,
    /// `host:port` parties send probes to (default: each bound socket, with an unspecified
    /// address replaced by the host of the first public URL).
    pub advertise: Vec<String>,
    /// Lifetime of a probe key, seconds (default 600).
    pub key_ttl_secs: u64,
    /// Answers per key and second; bursts of twice as many (default 10).
    pub answers_per_second: u32,
    /// Keys tracked by the rate limiter at once (default 65,536); probes with further keys
    /// are dropped until old entries expire.
    pub max_keys: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig { listen: vec![], advertise: vec![], key_ttl_secs: 600, answers_per_second: 10, max_keys: 65_536 }
    }
}

/// The probe sockets, bound when the mediator opens.
#[derive(Default)]
pub struct Sockets {
    /// Bound, not yet served.
    pub bound: std::sync::Mutex<Vec<std::net::UdpSocket>>,
    /// What the key grant tells parties.
    pub advertised: Vec<String>,
}

/// Binds the configured sockets and works out what to advertise.
pub fn bind(cfg: &UdpConfig, base_urls: &[String]) -> Result<Sockets> {
    let mut bound = Vec::new();
    let mut advertised = Vec::new();
    let host = base_urls.first().and_then(|u| url_host(u)).unwrap_or_else(|| "localhost".into());
    for addr in &cfg.listen {
        let s = std::net::UdpSocket::bind(addr).map_err(|e| Error::Config(format!("udp.listen {addr}: {e}")))?;
        s.set_nonblocking(true).map_err(|e| Error::Config(format!("udp.listen {addr}: {e}")))?;
        let local = s.local_addr().map_err(|e| Error::Config(e.to_string()))?;
        if cfg.advertise.is_empty() {
            advertised.push(if local.ip().is_unspecified() {
                format!("{host}:{}", local.port())
            } else {
                local.to_string()
            });
        }
        bound.push(s);
    }
    if !cfg.advertise.is_empty() {
        advertised = cfg.advertise.clone();
    }
    Ok(Sockets { bound: std::sync::Mutex::new(bound), advertised })
}

/// The host part of `http(s)://host[:port][/…]` (brackets kept for IPv6).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if authority.starts_with('[') {
        authority.split_once(']').map(|(h, _)| format!("{h}]"))?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_owned()
    };
    (!host.is_empty()).then_some(host)
}

/// Serves every bound socket until the tasks are aborted.
pub fn spawn(m: &Arc<Mediator>) -> Vec<tokio::task::JoinHandle<()>> {
    let sockets = std::mem::take(&mut *m.udp.bound.lock().unwrap_or_else(|e| e.into_inner()));
    let limiter = Arc::new(std::sync::Mutex::new(Limiter::new(&m.config.udp)));
    let mut tasks = Vec::new();
    for s in sockets {
        match tokio::net::UdpSocket::from_std(s) {
            Ok(sock) => tasks.push(tokio::spawn(run(sock, m.clone(), limiter.clone()))),
            Err(e) => tracing::warn!(error = %e, "cannot serve a UDP socket"),
        }
    }
    tasks
}

async fn run(sock: tokio::net::UdpSocket, m: Arc<Mediator>, limiter: Arc<std::sync::Mutex<Limiter>>) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            // ICMP errors of earlier answers surface here on some systems: keep serving.
            Err(_) => continue,
        };
        let now = did_core::didcomm::message::now();
        let counter = match reflex::check_probe(&m.reflex, &buf[..n], now) {
            Ok((probe, key)) => {
                let ok = limiter.lock().unwrap_or_else(|e| e.into_inner()).allow(&probe.key_id, Instant::now());
                if ok {
                    let answer = reflex::answer(&key, &probe.txid, from);
                    debug_assert!(answer.len() <= n);
                    let _ = sock.send_to(&answer, from).await;
                    &m.metrics.reflex_answered
                } else {
                    &m.metrics.reflex_rate_limited
                }
            }
            Err(Refusal::Malformed) => &m.metrics.reflex_malformed,
            Err(Refusal::Expired) => &m.metrics.reflex_expired,
            Err(Refusal::BadMac) => &m.metrics.reflex_bad_mac,
        };
        Metrics::inc(counter);
    }
}

/// A token bucket per key id, bounded in entries.
struct Limiter {
    rate: f64,
    burst: f64,
    max: usize,
    keys: HashMap<[u8; KEY_ID_LEN], (f64, Instant)>,
}

impl Limiter {
    fn new(cfg: &UdpConfig) -> Limiter {
        let rate = f64::from(cfg.answers_per_second.max(1));
        Limiter { rate, burst: 2.0 * rate, max: cfg.max_keys.max(1), keys: HashMap::new() }
    }

    fn allow(&mut self, key: &[u8; KEY_ID_LEN], now: Instant) -> bool {
        if !self.keys.contains_key(key) && self.keys.len() >= self.max {
            // Forget full buckets (idle keys) before refusing a new key.
            let (rate, burst) = (self.rate, self.burst);
            self.keys.retain(|_, (t, at)| *t + rate * now.saturating_duration_since(*at).as_secs_f64() < burst);
            if self.keys.len() >= self.max {
                return false;
            }
        }
        let (tokens, at) = self.keys.entry(*key).or_insert((self.burst, now));
        *tokens = (*tokens + self.rate * now.saturating_duration_since(*at).as_secs_f64()).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_urls() {
        assert_eq!(url_host("http://203.0.113.1:7080").as_deref(), Some("203.0.113.1"));
        assert_eq!(url_host("https://m.example.com/x").as_deref(), Some("m.example.com"));
        assert_eq!(url_host("http://[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(url_host("nonsense"), None);
    }

    #[test]
    fn the_limiter_bounds_answers_per_key_and_keys() {
        let cfg = UdpConfig { answers_per_second: 10, max_keys: 2, ..UdpConfig::default() };
        let mut l = Limiter::new(&cfg);
        let t0 = Instant::now();
        let answered = (0..100).filter(|_| l.allow(&[1; 16], t0)).count();
        assert_eq!(answered, 20, "a burst of twice the rate");
        assert!(!l.allow(&[1; 16], t0 + std::time::Duration::from_millis(50)));
        assert!(l.allow(&[1; 16], t0 + std::time::Duration::from_millis(150)), "refills at the rate");
        assert!(l.allow(&[2; 16], t0));
        assert!(!l.allow(&[3; 16], t0), "no room for a third key while two are busy");
        assert!(l.allow(&[3; 16], t0 + std::time::Duration::from_secs(10)), "idle keys are forgotten");
    }
}
